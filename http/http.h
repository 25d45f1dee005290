/* http/http.h - the HTTP front: listeners, requests, deferred replies.
 *
 * Built on libmicrohttpd (internal polling thread + a small thread pool). One
 * http_server owns up to three listeners: a unix socket (local clients, xe),
 * plain HTTP (default 127.0.0.1:8080) and HTTPS (default 0.0.0.0:8443, with a
 * key and self-signed certificate generated with GnuTLS on first start in the
 * data dir when none is given).
 *
 * A request reaches the handler once, with its whole body (bodies over
 * HTTP_MAX_BODY are refused with 413 before the handler runs). The handler
 * answers with http_reply() either before it returns or later, from any
 * thread: until then the connection is suspended and holds no thread (this is
 * how event.from long-polls). Exactly one http_reply() per request; the
 * request object stays valid until then and is freed by http_reply().
 *
 * Keep-alive is HTTP/1.1's default; every reply carries
 * Access-Control-Allow-Origin: * and Access-Control-Allow-Headers:
 * X-Requested-With. OPTIONS on any path is answered here (CORS pre-flight).
 */
#ifndef VESSEL_HTTP_HTTP_H
#define VESSEL_HTTP_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/* RPC bodies (docs/request-limits.md); xapi allows 300 KiB, we allow bulk
 * creates. Kept as a decimal literal too, for the 413's text. */
#define HTTP_MAX_BODY_BYTES 4194304 /* 4 MiB */
#define HTTP_MAX_BODY ((unsigned)HTTP_MAX_BODY_BYTES)
#define HTTP_STR_(x) #x
#define HTTP_STR(x) HTTP_STR_(x)

enum http_transport { HTTP_TRANSPORT_UNIX, HTTP_TRANSPORT_TCP, HTTP_TRANSPORT_TLS };

struct http_request; /* opaque */

/* Called on a thread of the server's pool. Must not block for long: work that
 * waits (long polls, async tasks) is handed elsewhere and replied to later. */
typedef void http_handler_fn(void *opaque, struct http_request *req);

struct http_config {
    const char *unix_path;   /* NULL: no unix listener. The socket file is replaced. */
    const char *listen;      /* "HOST:PORT" plain HTTP; NULL or "none": none */
    const char *tls_listen;  /* "HOST:PORT" HTTPS; NULL or "none": none */
    const char *tls_key_pem_path;  /* key and cert files; created (0600 key) if both missing */
    const char *tls_cert_pem_path;
    const char *tls_hostname;      /* CN/SAN for a generated certificate */
    unsigned n_threads;            /* request threads per listener; 0 = half the CPUs, at least 1 */
    http_handler_fn *handler;
    void *opaque;
    bool debug;                    /* libmicrohttpd's own error messages go to stderr */
    /* Connection limits (see "Connection limits" below); 0 = the default. */
    unsigned max_connections;      /* per TCP or TLS listener */
    unsigned max_per_address;      /* per client address, TCP and TLS together */
    unsigned unauth_timeout_s;     /* idle limit before an authenticated request */
};

struct http_server;

/* Binds every configured listener and starts serving. Returns 0 and *out, or a
 * negative errno (-EADDRINUSE, -EACCES, ...) with a reason in @why. */
int http_server_start(const struct http_config *cfg, struct http_server **out, char *why,
                      size_t why_len);
/* Stops accepting, waits for handlers to return, drops suspended requests
 * (their connections are closed), frees everything. */
void http_server_stop(struct http_server *srv);
/* The TCP port actually bound by the plain listener (useful with port 0), or 0. */
int http_server_port(const struct http_server *srv);
int http_server_tls_port(const struct http_server *srv);

/* Request accessors; strings are borrowed from @req, valid until the reply. */
const char *http_request_method(const struct http_request *req); /* "POST" */
const char *http_request_path(const struct http_request *req);   /* "/jsonrpc", no query */
const char *http_request_query(const struct http_request *req, const char *key); /* or NULL */
const char *http_request_header(const struct http_request *req, const char *name); /* case-insensitive */
/* The query arguments again as "k=v&k2=v2" (percent-encoded; "" for none),
 * e.g. to redirect the request elsewhere. NULL when out of memory; free(). */
char *http_request_query_string(const struct http_request *req);
const char *http_request_cookie(const struct http_request *req, const char *name);
const char *http_request_body(const struct http_request *req, size_t *len);
enum http_transport http_request_transport(const struct http_request *req);
/* The peer's address as text ("127.0.0.1", "::1", "unix"). */
const char *http_request_peer(const struct http_request *req);

/* Sends the reply and frees @req. @body is copied. Any thread. Extra headers:
 * http_reply_with_headers(). A status >= 500 also closes the connection.
 * @content_type is sent as given (no charset is appended). */
void http_reply(struct http_request *req, unsigned status, const char *content_type,
                const char *body, size_t len);
/* Same, taking ownership of a malloc'd @body (no copy). */
void http_reply_take(struct http_request *req, unsigned status, const char *content_type,
                     char *body, size_t len);

/* ---- Additions (after the first contract) ---- */

/* Notes on the calls above, as implemented:
 * - Accessors read a copy taken before the handler runs, so they work from
 *   any thread until the reply, even after the client or the server is gone.
 *   The body is also NUL-terminated (not counted in *len); "" when empty.
 * - A body over HTTP_MAX_BODY: 413 (text/plain, naming the limit) and close
 *   when Content-Length says so; the body is read and dropped first when it
 *   is at most 16 MiB and no Expect header asks for an early answer, so a
 *   client that sends it whole still reads the status. A chunked body that
 *   grows past the limit has its connection cut. The handler never sees any.
 * - Framing that could be read two ways is refused before the handler runs
 *   (400 and close): Content-Length repeated with different values, or
 *   together with Transfer-Encoding (RFC 9110 8.6, RFC 9112 6.3); a
 *   Transfer-Encoding other than "chunked" gets 501 (RFC 9112 6.1).
 * - The unix socket file is replaced when stale; a live server answering
 *   on it makes start fail with -EADDRINUSE; a non-socket file, -EEXIST.
 * - http_server_stop() must not be called from a handler or tunnel thread
 *   (it waits for them). A tunnel callback that ignores EOF blocks it. */

/* http_reply() with @n_headers extra "Name: value" strings (copied), e.g.
 * "WWW-Authenticate: Basic realm=\"xapi\"". A malformed string (no colon) is
 * skipped. @content_type may be NULL (no Content-Type header). */
void http_reply_with_headers(struct http_request *req, unsigned status,
                             const char *content_type, const char *const *headers,
                             size_t n_headers, const char *body, size_t len);

/* A tunnel (console proxy). Runs on a thread of its own and may block for
 * the tunnel's whole life, reading and writing @fd (a connected, blocking
 * stream socket whose other end is the client, after the HTTP reply line).
 * @fd belongs to the server: do not close it; return when it reads EOF or
 * fails. http_server_stop() shuts @fd down, which makes such reads end. */
typedef void http_tunnel_fn(void *opaque, int fd);

/* Answers @req with a tunnel and frees @req; any thread, instead of
 * http_reply(). For CONNECT the client gets "HTTP/1.1 200 OK" and an empty
 * header block; for any other method "HTTP/1.1 101 Switching Protocols" with
 * "Connection: Upgrade" and the request's Upgrade header echoed. Then
 * @fn(@opaque, fd) runs; when it returns, the connection is closed. If the
 * client is already gone (or the server stopping) @fn is still called, with a
 * socket that reads EOF (or, out of descriptors, with -1), so that @opaque
 * is released on one path only.
 * Bytes the client sent after its request head, before the reply, are lost
 * (clients wait for the reply line before speaking: RFB, xapi's CONNECT). */
void http_reply_upgrade(struct http_request *req, http_tunnel_fn *fn, void *opaque);

/* http_reply_upgrade() whose 101 also carries @n_headers "Name: value"
 * strings (copied; one with a line break or no colon is skipped; all of them
 * together at most 1 KiB, else none), e.g. a WebSocket handshake's
 * Sec-WebSocket-Accept. Ignored for CONNECT. */
void http_reply_upgrade_with_headers(struct http_request *req, const char *const *headers,
                                     size_t n_headers, http_tunnel_fn *fn, void *opaque);

/* From a tunnel callback: bounds the kernel's send buffer towards the client
 * at about @bytes (SO_SNDBUF; autotuning would otherwise let it grow to
 * megabytes), for an application that keeps and bounds its own backlog.
 * @fd is the callback's; behind TLS the setting carries over to the client's
 * socket before the application's first byte is forwarded. */
void http_tunnel_set_sndbuf(int fd, int bytes);

/* Requests whose connection is suspended waiting for http_reply(). For tests
 * and diagnostics. */
unsigned http_server_n_suspended(const struct http_server *srv);

/* HTTP Basic credentials of @req (Authorization header). true and two new
 * strings (free()) or false (absent, not Basic, malformed). */
bool http_request_basic_auth(const struct http_request *req, char **user, char **password);

/* ---- Streamed bodies and streamed replies (bulk transfers) ---- */

#define HTTP_MAX_STREAM_ROUTES 16

/* Where a stream route's body goes. The server calls these on a thread of
 * the body's own (never on an HTTP thread), one at a time, in this order:
 * write() for each piece of the body as it arrives (Content-Length or
 * chunked; never capped; up to 1 MiB is read ahead of the writes), then
 * exactly one of finish() or abort(); always before http_server_stop()
 * returns. */
struct http_body_sink {
    /* The next @len (> 0) bytes of the body. 0, or a negative errno when the
     * sink gives up: later pieces are read from the client and discarded, and
     * finish() still comes (the sink answers with its error there). May block
     * (a synchronous disk write is fine: it is the back-pressure). */
    int (*write)(void *ctx, const char *data, size_t len);
    /* The whole body has arrived: answer @req with exactly one http_reply*()
     * (now or later, from any thread), as a handler would. */
    void (*finish)(void *ctx, struct http_request *req);
    /* The client went away, or the server is stopping, before the body was
     * complete: release @ctx. No reply (the request is gone). A close is
     * usually seen at once; one whose FIN arrives together with the last
     * data (edge-triggered polling) only at the idle timeout (120 s). */
    void (*abort)(void *ctx);
    void *ctx;
};

/* Called on the connection's thread once a stream route's request head is in
 * (every accessor works; http_request_body() is ""). Either fills @sink and
 * returns true (the body is then streamed into it), or returns false and
 * answers @req itself with one http_reply*(), now or later, like a handler;
 * the body is then never read (the connection closes after the reply). */
typedef bool http_stream_begin_fn(void *opaque, struct http_request *req,
                                  struct http_body_sink *sink);

/* Routes requests whose method is @method and whose path (no query) is exactly
 * @path to @begin instead of the server's handler, without HTTP_MAX_BODY. Any
 * thread, before or while serving (a request already under way keeps the route
 * it got). @method and @path are copied. 0, -EEXIST (that route exists),
 * -ENOSPC (HTTP_MAX_STREAM_ROUTES reached), -ENOMEM, -EINVAL. */
int http_server_add_stream_route(struct http_server *srv, const char *method, const char *path,
                                 http_stream_begin_fn *begin, void *opaque);

/* Produces bytes of a streamed reply from offset @pos: up to @max bytes into
 * @buf; returns how many (> 0), 0 at the end of the stream, or a negative
 * errno (the connection is then closed: the client sees a short reply).
 * Called in order, one call at a time, on a thread of the reply's own that
 * reads a few blocks ahead of the client (never on an HTTP thread); may
 * block (disk reads, compression). */
typedef ssize_t http_stream_read_fn(void *opaque, uint64_t pos, char *buf, size_t max);
/* Releases @opaque; called exactly once, never during a read, when the reply
 * is done, the client gone, or the reply could not be set up (then possibly
 * before http_reply_stream() returns); on any thread, and always before
 * http_server_stop() returns. */
typedef void http_stream_free_fn(void *opaque);

/* Answers @req with a body produced by @read as the client takes it, and frees
 * @req: any thread, instead of http_reply(). @content_length: the exact
 * number of bytes @read will give, or -1 for a chunked reply ending when
 * @read returns 0. @headers as in http_reply_with_headers() (may be NULL). */
void http_reply_stream(struct http_request *req, unsigned status, const char *content_type,
                       const char *const *headers, size_t n_headers, int64_t content_length,
                       http_stream_read_fn *read, http_stream_free_fn *free_fn, void *opaque);

/* ---- Connection limits ----
 *
 * What keeps one client from locking the others out (idle connections cost
 * the server a descriptor and a slot; they used to lock new clients out at
 * ~1,020 per listener, for up to 120 s):
 * - each TCP and TLS listener accepts at most max_connections (default
 *   HTTP_DEFAULT_MAX_CONNECTIONS), lowered at start to fit the descriptor
 *   limit: start raises the soft RLIMIT_NOFILE towards the hard one as far
 *   as the listeners need, and keeps HTTP_FD_RESERVE descriptors plus the
 *   unix listener's HTTP_UNIX_MAX_CONNECTIONS out of the TCP budget, so a
 *   TCP flood never starves the unix socket or the rest of the daemon;
 * - one client address holds at most max_per_address of them (default
 *   HTTP_DEFAULT_MAX_PER_ADDRESS); more are closed at accept. 127.0.0.1 and
 *   ::1 are exempt (local clients and a local reverse proxy share them);
 * - a TCP or TLS connection that has not yet made an authenticated request
 *   is closed after unauth_timeout_s idle seconds (default
 *   HTTP_DEFAULT_UNAUTH_TIMEOUT_S; a TLS handshake counts as idle time);
 *   once a request on it is marked with http_request_set_authenticated(),
 *   the connection may idle HTTP_IDLE_TIMEOUT_S between requests. A request
 *   waiting for its reply (event.from), a tunnel, and a transfer that moves
 *   bytes never time out;
 * - the unix listener (mode 0600) is a daemon of its own with its own
 *   limit, HTTP_UNIX_MAX_CONNECTIONS, and the long idle timeout. */
#define HTTP_DEFAULT_MAX_CONNECTIONS 10000u
#define HTTP_DEFAULT_MAX_PER_ADDRESS 128u
#define HTTP_DEFAULT_UNAUTH_TIMEOUT_S 10u
#define HTTP_IDLE_TIMEOUT_S 120u
#define HTTP_UNIX_MAX_CONNECTIONS 512u
#define HTTP_FD_RESERVE 1024u

/* The request carried valid credentials (a session, a password): its
 * connection gets the long idle timeout from its reply on. Any thread,
 * before the reply. */
void http_request_set_authenticated(struct http_request *req);
/* The connection limit each TCP and TLS listener got (after fitting the
 * descriptor limit), or 0 without such a listener. */
unsigned http_server_max_connections(const struct http_server *srv);

/* ---- Parsers, pure (no I/O); exposed for the fuzz target and tests ---- */

/* "HOST:PORT" -> a socket address. HOST: IPv4 dotted quad, [IPv6], "localhost"
 * (127.0.0.1), "*" or empty (0.0.0.0). PORT: 0..65535, 0 meaning ephemeral.
 * 0 or -EINVAL. */
int http_parse_listen(const char *spec, struct sockaddr_storage *addr, socklen_t *addr_len);
/* Whether comma-separated header @value (e.g. Connection) holds @token,
 * case-insensitively, ignoring spaces around items. */
bool http_header_has_token(const char *value, const char *token);
/* Value of an Authorization header "Basic base64(user:password)" -> two new
 * strings (free()); false if not Basic or malformed (bad base64, no colon,
 * a NUL byte inside). */
bool http_parse_basic_auth(const char *value, char **user, char **password);

#endif
