/* http/http.c - the HTTP front of vesseld on libmicrohttpd (MHD).
 *
 * Each listener (unix socket, plain TCP, TLS) is an MHD daemon of its own,
 * with an internal polling thread pool and suspend/resume. We create and bind
 * the listening sockets ourselves (precise errors, port 0, unix socket mode)
 * and hand them over with MHD_OPTION_LISTEN_SOCKET; MHD closes them at stop.
 *
 * A request is accumulated (body capped at HTTP_MAX_BODY), its headers,
 * query arguments and cookies are copied out of MHD, and the handler is
 * called once. The copy is what lets a request outlive its connection: the
 * handler's owner may reply after the client has gone or the server stopped.
 * Streamed replies and bodies (bulk transfers) have threads of their own:
 * http/http_stream.c; the structures both files use are in http/http_int.h.
 *
 * A reply never touches the connection directly; it is stored in the request
 * and queued by the access handler, which MHD calls either when the handler
 * returns or after MHD_resume_connection().
 *
 * State machine (enum req_state; every transition under srv->lock):
 *
 *   READING -> HANDLING -> REPLIED ------------------> SENT
 *                 |         ^  (http_reply; resumes if suspended)
 *                 +-> SUSPENDED   (handler returned with no reply)
 *                 +-> TUNNEL -> TUNNELING -> DROPPED (tunnel over, closing)
 *   SUSPENDED, HANDLING -> DROPPED   (server stopping: reply only frees)
 *
 * Invariants:
 *  (1) a request holds one reference for MHD (dropped in on_completed) and,
 *      from the handler call until http_reply*(), one for the application
 *      (a tunnel keeps that one until its thread ends);
 *  (2) req->conn is used outside MHD's own callbacks only in SUSPENDED and
 *      TUNNELING, and a streamed reply's or body's connection only while it
 *      waits for data or room (suspended); MHD never closes a suspended
 *      connection, so it is live;
 *  (3) a connection is never suspended when MHD_stop_daemon() runs (MHD
 *      panics): stop resumes every SUSPENDED request and every waiting
 *      stream or body, waits for every tunnel to end, and sets srv->stopping
 *      so no new suspension, tunnel, producer or consumer starts;
 *  (4) lock order: srv->lock, then MHD's internal mutexes (MHD_suspend/
 *      resume_connection are called under srv->lock). MHD calls our callbacks
 *      without holding its mutexes because MHD_ALLOW_UPGRADE is not used.
 *
 * Connection limits (http.h): libmicrohttpd's per-listener limit and idle
 * timeout, an accept policy and connection notifications that count
 * connections per address (http/http_limit.c) and hand each TLS session the
 * current protocol policy (http/tls_policy.c), and a per-connection timeout
 * that on_request_ready() sets on the connection's thread, the only place
 * libmicrohttpd allows it: short until a request is authenticated, long
 * afterwards. Setting it also restarts the idle clock, which matters after a
 * handler that ran longer than the timeout: libmicrohttpd checks the timeout
 * before it sends a reply that was queued late.
 *
 * Facts: xapi's doc/content/xen-api/wire-protocol.md (endpoints, CORS headers, close on 500),
 * what real clients send (Xen Orchestra's xen-api package, the XenAPI SDKs) (Content-Type exactly as given), RFC 9110 9.3.6
 * (CONNECT), RFC 7617 (Basic), RFC 9110 8.6 and RFC 9112 6.1, 6.3 (message
 * framing: Content-Length and Transfer-Encoding).
 */
#include "http/http.h"

#include "http/http_int.h"
#include "http/http_limit.h"
#include "http/tls_cert.h"
#include "http/tls_policy.h"

#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <microhttpd.h>

#include "common/errtext.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/strbuf.h"

/* HTTP_IDLE_TIMEOUT_S (http.h): event.from long-polls for up to ~65 s, but
 * suspended connections do not time out in MHD; it only closes idle
 * keep-alive connections. The backlog absorbs bursts of connects while the
 * listener threads accept. */
#define HTTP_LISTEN_BACKLOG 1024

/* *req_cls of requests that get no http_request: a 413 answered at the first
 * call (MHD then reads no body and closes), and an OPTIONS pre-flight, which
 * is answered at its last call: an answer at the first call would make MHD
 * close the connection, and pre-flights precede the real POST on it. */
static char answered_early;
static char options_pending;
/* A body whose Content-Length is over HTTP_MAX_BODY but not over
 * HTTP_DRAIN_MAX: read and dropped, then 413. Answering before the body
 * would close on a client still sending it, which then sees a reset
 * (EPIPE/ECONNRESET) instead of the status; reading costs time, no memory. */
static char too_large_draining;
#define HTTP_DRAIN_MAX (16u << 20)

/*==== Parsers (pure; fuzzed by tests/fuzz/http_headers_fuzz.c) ====*/

static bool
parse_port(const char *s, unsigned *port)
{
    unsigned v = 0;
    size_t n = 0;
    for (; s[n]; n++) {
        if (s[n] < '0' || s[n] > '9' || n >= 5)
            return false;
        v = v * 10 + (unsigned)(s[n] - '0');
    }
    if (n == 0 || v > 65535)
        return false;
    *port = v;
    return true;
}

int
http_parse_listen(const char *spec, struct sockaddr_storage *addr, socklen_t *addr_len)
{
    char host[INET6_ADDRSTRLEN];
    const char *port_s;
    bool v6 = false;
    unsigned port;

    if (!spec)
        return -EINVAL;
    if (spec[0] == '[') {
        const char *end = strchr(spec, ']');
        if (!end || end[1] != ':' || (size_t)(end - spec - 1) >= sizeof(host))
            return -EINVAL;
        memcpy(host, spec + 1, (size_t)(end - spec - 1));
        host[end - spec - 1] = '\0';
        port_s = end + 2;
        v6 = true;
    } else {
        const char *colon = strrchr(spec, ':');
        if (!colon || memchr(spec, ':', (size_t)(colon - spec)) ||
            (size_t)(colon - spec) >= sizeof(host))
            return -EINVAL; /* a bare IPv6 address is ambiguous: brackets required */
        memcpy(host, spec, (size_t)(colon - spec));
        host[colon - spec] = '\0';
        port_s = colon + 1;
    }
    if (!parse_port(port_s, &port))
        return -EINVAL;

    memset(addr, 0, sizeof(*addr));
    if (v6) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)addr;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1)
            return -EINVAL;
        *addr_len = sizeof(*a6);
        return 0;
    }
    struct sockaddr_in *a4 = (struct sockaddr_in *)addr;
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    if (host[0] == '\0' || strcmp(host, "*") == 0)
        a4->sin_addr.s_addr = htonl(INADDR_ANY);
    else if (strcmp(host, "localhost") == 0)
        a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    else if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
        return -EINVAL;
    *addr_len = sizeof(*a4);
    return 0;
}

bool
http_header_has_token(const char *value, const char *token)
{
    size_t tlen = strlen(token);
    if (!value || tlen == 0)
        return false;
    const char *p = value;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *start = p;
        while (*p && *p != ',')
            p++;
        const char *end = p;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        if ((size_t)(end - start) == tlen && strncasecmp(start, token, tlen) == 0)
            return true;
    }
    return false;
}

static int
base64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Standard alphabet; '=' padding optional but, if present, only at the end.
 * Returns a new buffer of *out_len bytes plus a NUL, or NULL. */
static char *
base64_decode(const char *in, size_t in_len, size_t *out_len)
{
    while (in_len > 0 && in[in_len - 1] == '=')
        in_len--;
    if (in_len % 4 == 1)
        return NULL;
    char *out = malloc(in_len / 4 * 3 + 3);
    if (!out)
        return NULL;
    size_t o = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < in_len; i++) {
        int v = base64_value((unsigned char)in[i]);
        if (v < 0) {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    out[o] = '\0';
    *out_len = o;
    return out;
}

bool
http_parse_basic_auth(const char *value, char **user, char **password)
{
    if (!value)
        return false;
    while (*value == ' ')
        value++;
    if (strncasecmp(value, "Basic", 5) != 0 || (value[5] != ' ' && value[5] != '\t'))
        return false;
    value += 5;
    while (*value == ' ' || *value == '\t')
        value++;
    size_t len = strlen(value);
    while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t'))
        len--;
    size_t n;
    char *plain = base64_decode(value, len, &n);
    if (!plain)
        return false;
    char *colon = memchr(plain, ':', n);
    if (!colon || memchr(plain, '\0', n)) {
        free(plain);
        return false;
    }
    *colon = '\0';
    char *u = strdup(plain), *p = strdup(colon + 1);
    free(plain);
    if (!u || !p) {
        free(u);
        free(p);
        return false;
    }
    *user = u;
    *password = p;
    return true;
}

/*==== Requests: lifetime, copies, accessors ====*/

void
server_unref(struct http_server *srv)
{
    if (atomic_fetch_sub(&srv->refs, 1) != 1)
        return;
    pthread_mutex_destroy(&srv->lock);
    pthread_cond_destroy(&srv->tunnels_done);
    pthread_cond_destroy(&srv->transfers_done);
    free(srv);
}

static void
req_unref(struct http_request *req)
{
    if (atomic_fetch_sub(&req->refs, 1) != 1)
        return;
    struct http_server *srv = req->srv;
    if (req->resp)
        MHD_destroy_response(req->resp);
    free(req->kv);
    free(req->body);
    free(req->tunnel_headers);
    free(req);
    server_unref(srv);
}

/* a.b.c.d of a network-order IPv4 address into @out (at least 16 bytes):
 * inet_ntop's IPv4 form goes through sprintf, a noticeable part of a small
 * request's CPU (issue 18). */
static void
ipv4_format(const struct in_addr *a, char *out)
{
    const unsigned char *b = (const unsigned char *)&a->s_addr;
    char *p = out;
    for (int i = 0; i < 4; i++) {
        unsigned v = b[i];
        if (v >= 100)
            *p++ = (char)('0' + v / 100);
        if (v >= 10)
            *p++ = (char)('0' + v / 10 % 10);
        *p++ = (char)('0' + v % 10);
        *p++ = i < 3 ? '.' : '\0';
    }
}

static void
peer_format(struct http_request *req)
{
    if (req->transport == HTTP_TRANSPORT_UNIX) {
        snprintf(req->peer, sizeof(req->peer), "unix");
        return;
    }
    snprintf(req->peer, sizeof(req->peer), "unknown");
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET) {
        ipv4_format(&((const struct sockaddr_in *)sa)->sin_addr, req->peer);
    } else if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a)) /* a dual-stack socket: show the IPv4 peer */
            ipv4_format((const struct in_addr *)&a->s6_addr[12], req->peer);
        else
            inet_ntop(AF_INET6, a, req->peer, sizeof(req->peer));
    }
}

static struct http_request *
req_new(struct http_listener *lst, struct MHD_Connection *conn, const char *url,
        const char *method)
{
    /* the method and path live in the same allocation: a small call's
     * allocations are a noticeable part of its CPU (issue 18) */
    size_t method_size = strlen(method) + 1, path_size = strlen(url) + 1;
    struct http_request *req = calloc(1, sizeof(*req) + method_size + path_size);
    if (!req)
        return NULL;
    char *strings = (char *)(req + 1);
    req->method = memcpy(strings, method, method_size);
    req->path = memcpy(strings + method_size, url, path_size);
    req->srv = lst->srv;
    req->conn = conn;
    req->transport = lst->transport;
    req->state = REQ_READING;
    req->tunnel_fd = -1;
    atomic_init(&req->refs, 1); /* MHD's, invariant 1 */
    atomic_fetch_add(&lst->srv->refs, 1);
    peer_format(req);
    return req;
}

/* The request's headers, query arguments and cookies are copied out of MHD
 * (a handler may answer after MHD's callback has returned) into one
 * allocation: the entries, then their strings. A first pass measures. */
struct kv_fill {
    struct http_request *req;
    size_t n, bytes; /* measured */
    char *strings;   /* next free byte of the block */
};

static const enum MHD_ValueKind kv_kinds[] = {MHD_HEADER_KIND, MHD_GET_ARGUMENT_KIND,
                                              MHD_COOKIE_KIND};

static enum MHD_Result
kv_measure(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    struct kv_fill *f = cls;
    (void)kind;
    f->n++;
    f->bytes += strlen(key ? key : "") + strlen(value ? value : "") + 2;
    return MHD_YES;
}

static char *
kv_put(struct kv_fill *f, const char *s)
{
    size_t size = strlen(s) + 1;
    char *at = memcpy(f->strings, s, size);
    f->strings += size;
    return at;
}

static enum MHD_Result
kv_copy(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    struct kv_fill *f = cls;
    struct http_request *req = f->req;
    if (req->n_kv == req->kv_cap)
        return MHD_NO; /* cannot happen: measured in the same callback */
    /* "?flag" has no value: MHD gives NULL, we give "" */
    char *k = kv_put(f, key ? key : "");
    char *v = kv_put(f, value ? value : "");
    req->kv[req->n_kv++] = (struct http_kv){kind, k, v};
    return MHD_YES;
}

static bool
req_copy_values(struct http_request *req)
{
    struct kv_fill f = {.req = req};
    for (size_t i = 0; i < sizeof(kv_kinds) / sizeof(kv_kinds[0]); i++)
        MHD_get_connection_values(req->conn, kv_kinds[i], kv_measure, &f);
    if (!(req->kv = malloc(f.n * sizeof(struct http_kv) + f.bytes + 1)))
        return false;
    req->kv_cap = f.n;
    f.strings = (char *)(req->kv + f.n);
    for (size_t i = 0; i < sizeof(kv_kinds) / sizeof(kv_kinds[0]); i++)
        MHD_get_connection_values(req->conn, kv_kinds[i], kv_copy, &f);
    return true;
}

static const char *
req_lookup(const struct http_request *req, enum MHD_ValueKind kind, const char *key)
{
    if (!key)
        return NULL;
    for (size_t i = 0; i < req->n_kv; i++) {
        const struct http_kv *kv = &req->kv[i];
        if (kv->kind != kind)
            continue;
        /* field names are case-insensitive (RFC 9110 5.1); arguments are not */
        if (kind == MHD_HEADER_KIND ? strcasecmp(kv->key, key) == 0 : strcmp(kv->key, key) == 0)
            return kv->value;
    }
    return NULL;
}

const char *
http_request_method(const struct http_request *req)
{
    return req->method;
}

const char *
http_request_path(const struct http_request *req)
{
    return req->path;
}

const char *
http_request_query(const struct http_request *req, const char *key)
{
    return req_lookup(req, MHD_GET_ARGUMENT_KIND, key);
}

static void
percent_encode(struct strbuf *sb, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~' || c == ':')
            strbuf_append(sb, s, 1);
        else
            strbuf_printf(sb, "%%%02X", c);
    }
}

char *
http_request_query_string(const struct http_request *req)
{
    struct strbuf sb = STRBUF_INIT;
    for (size_t i = 0; i < req->n_kv; i++) {
        const struct http_kv *kv = &req->kv[i];
        if (kv->kind != MHD_GET_ARGUMENT_KIND)
            continue;
        if (sb.len)
            strbuf_puts(&sb, "&");
        percent_encode(&sb, kv->key);
        if (kv->value) {
            strbuf_puts(&sb, "=");
            percent_encode(&sb, kv->value);
        }
    }
    return strbuf_steal(&sb, NULL);
}

const char *
http_request_header(const struct http_request *req, const char *name)
{
    return req_lookup(req, MHD_HEADER_KIND, name);
}

const char *
http_request_cookie(const struct http_request *req, const char *name)
{
    return req_lookup(req, MHD_COOKIE_KIND, name);
}

const char *
http_request_body(const struct http_request *req, size_t *len)
{
    if (len)
        *len = req->body_len;
    return req->body ? req->body : "";
}

enum http_transport
http_request_transport(const struct http_request *req)
{
    return req->transport;
}

const char *
http_request_peer(const struct http_request *req)
{
    return req->peer;
}

bool
http_request_basic_auth(const struct http_request *req, char **user, char **password)
{
    return http_parse_basic_auth(http_request_header(req, "Authorization"), user, password);
}

void
http_request_set_authenticated(struct http_request *req)
{
    atomic_store(&req->authenticated, true);
}

/*==== Replies ====*/

static void
response_add_cors(struct MHD_Response *r)
{
    MHD_add_response_header(r, "Access-Control-Allow-Origin", "*");
    MHD_add_response_header(r, "Access-Control-Allow-Headers", "X-Requested-With");
}

/* "Name: value" -> a response header; a string without a colon is skipped. */
static void
response_add_raw_header(struct MHD_Response *r, const char *line)
{
    const char *colon = strchr(line, ':');
    if (!colon || colon == line)
        return;
    size_t name_len = (size_t)(colon - line);
    char *name = strndup(line, name_len);
    if (!name)
        return;
    const char *value = colon + 1;
    while (*value == ' ' || *value == '\t')
        value++;
    MHD_add_response_header(r, name, value);
    free(name);
}

void
response_decorate(struct MHD_Response *r, unsigned status, const char *content_type,
                  const char *const *headers, size_t n_headers)
{
    if (content_type)
        MHD_add_response_header(r, "Content-Type", content_type);
    response_add_cors(r);
    for (size_t i = 0; i < n_headers; i++)
        if (headers[i])
            response_add_raw_header(r, headers[i]);
    /* xapi closes after a 500 (a body it could not parse: the stream may be
     * out of step); MHD closes after sending when it sees this header. */
    if (status >= 500)
        MHD_add_response_header(r, "Connection", "close");
}

/* Takes @body whatever happens when @mode is MHD_RESPMEM_MUST_FREE. */
static struct MHD_Response *
response_build(unsigned status, const char *content_type, const char *const *headers,
               size_t n_headers, char *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
    if (!r) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(body);
        return NULL;
    }
    response_decorate(r, status, content_type, headers, n_headers);
    return r;
}

static void
list_remove(struct http_request **head, struct http_request *req)
{
    if (req->prev)
        req->prev->next = req->next;
    else
        *head = req->next;
    if (req->next)
        req->next->prev = req->prev;
    req->prev = req->next = NULL;
}

static void
list_push(struct http_request **head, struct http_request *req)
{
    req->prev = NULL;
    req->next = *head;
    if (*head)
        (*head)->prev = req;
    *head = req;
}

/* Stores @resp (may be NULL: close without reply) as @req's answer, wakes
 * the connection if it sleeps, and drops the application's reference. */
void
reply_store(struct http_request *req, unsigned status, struct MHD_Response *resp)
{
    struct http_server *srv = req->srv;
    pthread_mutex_lock(&srv->lock);
    switch (req->state) {
    case REQ_HANDLING:
        req->resp = resp;
        req->status = status;
        req->state = REQ_REPLIED; /* queued when the handler returns */
        break;
    case REQ_SUSPENDED:
        req->resp = resp;
        req->status = status;
        req->state = REQ_REPLIED;
        list_remove(&srv->suspended, req);
        srv->n_suspended--;
        MHD_resume_connection(req->conn); /* invariant 2: the connection is live */
        break;
    case REQ_DROPPED:
        if (resp)
            MHD_destroy_response(resp);
        break;
    default:
        /* A second reply to one request: a caller bug, not client input. The
         * first reply dropped the application's reference; do not drop it
         * again (the request may even be gone: ASan is the real check). */
        assert(!"http_reply twice");
        if (resp)
            MHD_destroy_response(resp);
        pthread_mutex_unlock(&srv->lock);
        return;
    }
    pthread_mutex_unlock(&srv->lock);
    req_unref(req);
}

void
http_reply(struct http_request *req, unsigned status, const char *content_type,
           const char *body, size_t len)
{
    http_reply_with_headers(req, status, content_type, NULL, 0, body, len);
}

void
http_reply_take(struct http_request *req, unsigned status, const char *content_type,
                char *body, size_t len)
{
    reply_store(req, status,
                response_build(status, content_type, NULL, 0, body, len, MHD_RESPMEM_MUST_FREE));
}

void
http_reply_with_headers(struct http_request *req, unsigned status, const char *content_type,
                        const char *const *headers, size_t n_headers, const char *body,
                        size_t len)
{
    reply_store(req, status,
                response_build(status, content_type, headers, n_headers, (char *)body, len,
                               MHD_RESPMEM_MUST_COPY));
}

/* http_reply_stream(): http/http_stream.c */

int
http_server_add_stream_route(struct http_server *srv, const char *method, const char *path,
                             http_stream_begin_fn *begin, void *opaque)
{
    if (!srv || !method || !path || !begin)
        return -EINVAL;
    char *m = strdup(method), *p = strdup(path);
    if (!m || !p) {
        free(m);
        free(p);
        return -ENOMEM;
    }
    int rc = 0;
    pthread_mutex_lock(&srv->lock);
    for (unsigned i = 0; i < srv->n_routes && rc == 0; i++)
        if (strcmp(srv->routes[i].method, m) == 0 && strcmp(srv->routes[i].path, p) == 0)
            rc = -EEXIST;
    if (rc == 0 && srv->n_routes == HTTP_MAX_STREAM_ROUTES)
        rc = -ENOSPC;
    if (rc == 0)
        srv->routes[srv->n_routes++] = (struct http_stream_route){m, p, begin, opaque};
    pthread_mutex_unlock(&srv->lock);
    if (rc < 0) {
        free(m);
        free(p);
    }
    return rc;
}

/* The stream route for @method @url, copied into *@out; srv->lock held. */
static bool
route_find(struct http_server *srv, const char *method, const char *url,
           struct http_stream_route *out)
{
    for (unsigned i = 0; i < srv->n_routes; i++) {
        if (strcmp(srv->routes[i].method, method) == 0 && strcmp(srv->routes[i].path, url) == 0) {
            *out = srv->routes[i];
            return true;
        }
    }
    return false;
}

unsigned
http_server_n_suspended(const struct http_server *srv)
{
    struct http_server *s = (struct http_server *)srv; /* the lock is not part of the value */
    pthread_mutex_lock(&s->lock);
    unsigned n = s->n_suspended;
    pthread_mutex_unlock(&s->lock);
    return n;
}

/*==== Tunnels (CONNECT, Upgrade) ====*/

/* Calls a tunnel callback that has no client (gone, or server stopping) with
 * a socket that reads EOF at once, so @opaque is released on one path. */
static void
tunnel_run_dead(http_tunnel_fn *fn, void *opaque)
{
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0) {
        fn(opaque, -1); /* out of descriptors: the -1 http.h allows */
        return;
    }
    close(sp[1]);
    fn(opaque, sp[0]);
    close(sp[0]);
}

void
http_reply_upgrade(struct http_request *req, http_tunnel_fn *fn, void *opaque)
{
    struct http_server *srv = req->srv;
    bool dead = false;
    pthread_mutex_lock(&srv->lock);
    req->tunnel_fn = fn;
    req->tunnel_opaque = opaque;
    switch (req->state) {
    case REQ_HANDLING:
        req->state = REQ_TUNNEL;
        break;
    case REQ_SUSPENDED:
        req->state = REQ_TUNNEL;
        list_remove(&srv->suspended, req);
        srv->n_suspended--;
        MHD_resume_connection(req->conn);
        break;
    case REQ_DROPPED:
        dead = true;
        break;
    default:
        assert(!"http_reply twice"); /* see reply_store() */
        pthread_mutex_unlock(&srv->lock);
        return;
    }
    pthread_mutex_unlock(&srv->lock);
    /* otherwise the application's reference passes to the tunnel (invariant 1) */
    if (dead) {
        tunnel_run_dead(fn, opaque);
        req_unref(req);
    }
}

void
http_reply_upgrade_with_headers(struct http_request *req, const char *const *headers,
                                size_t n_headers, http_tunnel_fn *fn, void *opaque)
{
    size_t len = 1;
    for (size_t i = 0; i < n_headers; i++)
        len += strlen(headers[i]) + 2;
    char *block = len <= 1024 ? malloc(len) : NULL;
    if (block) {
        char *p = block;
        for (size_t i = 0; i < n_headers; i++) {
            /* a line break inside would end the header block early */
            if (strpbrk(headers[i], "\r\n") || !strchr(headers[i], ':'))
                continue;
            p += sprintf(p, "%s\r\n", headers[i]);
        }
        *p = '\0';
    }
    req->tunnel_headers = block; /* on failure the 101 goes without them */
    http_reply_upgrade(req, fn, opaque);
}

/* The session's socket is non-blocking (MHD's); wait for it as GnuTLS asks,
 * or until @hup_fd hangs up: the application ended the tunnel, and a client
 * that does not read (a console reader that was dropped) must not hold this
 * thread and its connection. */
static bool
send_all_tls(gnutls_session_t s, int fd, int hup_fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = gnutls_record_send(s, buf, len);
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
            struct pollfd p[2] = {
                {.fd = fd, .events = gnutls_record_get_direction(s) ? POLLOUT : POLLIN},
                {.fd = hup_fd, .events = 0}, /* POLLHUP is always reported */
            };
            if (poll(p, 2, -1) < 0 && errno != EINTR)
                return false;
            if (p[1].revents & (POLLHUP | POLLERR))
                return false;
            continue;
        }
        if (n <= 0)
            return false;
        buf += n;
        len -= (size_t)n;
    }
    return true;
}

struct tunnel_app {
    http_tunnel_fn *fn;
    void *opaque;
    int fd;
};

void
http_tunnel_set_sndbuf(int fd, int bytes)
{
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes));
}

static int
sndbuf_of(int fd)
{
    int v = 0;
    socklen_t len = sizeof(v);
    return getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, &len) == 0 ? v : 0;
}

static void *
tunnel_app_main(void *arg)
{
    struct tunnel_app *app = arg;
    app->fn(app->opaque, app->fd);
    /* EOF for the pump: the application is done with its end */
    shutdown(app->fd, SHUT_RDWR);
    return NULL;
}

/* Forwards between the client's TLS session and one end of a socketpair
 * whose other end the callback gets, until either side ends. */
static void
tunnel_pump_tls(struct http_request *req, const char *head, size_t head_len)
{
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0) {
        tunnel_run_dead(req->tunnel_fn, req->tunnel_opaque);
        return;
    }
    struct tunnel_app app = {req->tunnel_fn, req->tunnel_opaque, sp[1]};
    /* http_tunnel_set_sndbuf() on sp[1] is seen as a change from this */
    int app_sndbuf = sndbuf_of(sp[1]);
    bool sndbuf_checked = false;
    pthread_t app_thread;
    if (pthread_create(&app_thread, NULL, tunnel_app_main, &app) != 0) {
        close(sp[0]);
        close(sp[1]);
        tunnel_run_dead(req->tunnel_fn, req->tunnel_opaque);
        return;
    }
    gnutls_session_t s = req->tls;
    int fd = req->tunnel_fd;
    char buf[16384];
    bool ok = send_all_tls(s, fd, sp[0], head, head_len);
    while (ok) {
        struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = sp[0], .events = POLLIN}};
        /* records already decrypted into GnuTLS's buffer do not wake poll */
        bool pending = gnutls_record_check_pending(s) > 0;
        if (!pending && poll(p, 2, -1) < 0) {
            ok = errno == EINTR;
            continue;
        }
        if (pending || (p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t n = gnutls_record_recv(s, buf, sizeof(buf));
            if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
                continue;
            ok = n > 0 && fileio_send_all(sp[0], buf, (size_t)n) == 0;
        }
        if (ok && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t n = read(sp[0], buf, sizeof(buf));
            if (n < 0 && errno == EINTR)
                continue;
            if (n > 0 && !sndbuf_checked) {
                /* the application set its buffer before its first byte */
                int v = sndbuf_of(sp[1]);
                if (v > 0 && v != app_sndbuf)
                    http_tunnel_set_sndbuf(fd, v / 2); /* the kernel reports it doubled */
                sndbuf_checked = true;
            }
            ok = n > 0 && send_all_tls(s, fd, sp[0], buf, (size_t)n);
        }
    }
    shutdown(sp[0], SHUT_RDWR); /* the callback reads EOF and returns */
    pthread_join(app_thread, NULL);
    close(sp[0]);
    close(sp[1]);
}

static void *
tunnel_main(void *arg)
{
    struct http_request *req = arg;
    struct http_server *srv = req->srv;
    char head[2048];
    if (strcmp(req->method, "CONNECT") == 0) {
        snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\n\r\n");
    } else {
        const char *proto = http_request_header(req, "Upgrade");
        /* the echoed value must not break the header block */
        if (!proto || strpbrk(proto, "\r\n") || strlen(proto) > 256)
            proto = "";
        snprintf(head, sizeof(head),
                 "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %s\r\n%s\r\n",
                 proto, req->tunnel_headers ? req->tunnel_headers : "");
    }
    if (req->tls) {
        tunnel_pump_tls(req, head, strlen(head));
    } else {
        int fd = req->tunnel_fd;
        int flags = fcntl(fd, F_GETFL);
        /* the callback expects a blocking socket; MHD's is non-blocking, and
         * gets its flags back before MHD sees the socket again */
        if (flags >= 0)
            fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
        (void)fileio_send_all(fd, head, strlen(head)); /* on failure the callback reads EOF */
        req->tunnel_fn(req->tunnel_opaque, fd);
        shutdown(fd, SHUT_RDWR);
        if (flags >= 0)
            fcntl(fd, F_SETFL, flags);
    }
    pthread_mutex_lock(&srv->lock);
    list_remove(&srv->tunnels, req);
    srv->n_tunnels--;
    req->state = REQ_DROPPED; /* the access handler closes the connection */
    MHD_resume_connection(req->conn);
    pthread_cond_broadcast(&srv->tunnels_done);
    pthread_mutex_unlock(&srv->lock);
    req_unref(req); /* the application's reference, held by the tunnel */
    return NULL;
}

/* On the connection's thread, state REQ_TUNNEL, srv->lock held. Returns
 * false when the tunnel cannot start (the caller closes the connection and
 * runs the callback dead). */
static bool
tunnel_start(struct http_request *req)
{
    struct http_server *srv = req->srv;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (srv->stopping || !ci)
        return false;
    req->tunnel_fd = ci->connect_fd;
    req->tls = NULL;
    if (req->transport == HTTP_TRANSPORT_TLS) {
        ci = MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
        if (!ci || !ci->tls_session)
            return false;
        req->tls = ci->tls_session;
    }
    /* The thread's final MHD_resume_connection() takes srv->lock, which we
     * hold until the suspension below is done: resume cannot come first. And
     * MHD does not poll the socket meanwhile: this is the connection's thread. */
    if (!spawn_detached(tunnel_main, req))
        return false;
    req->state = REQ_TUNNELING;
    list_push(&srv->tunnels, req);
    srv->n_tunnels++;
    MHD_suspend_connection(req->conn);
    return true;
}

/*==== MHD callbacks ====*/

static enum MHD_Result
queue_simple(struct MHD_Connection *conn, unsigned status, bool options)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    response_add_cors(r);
    if (options)
        MHD_add_response_header(r, "Access-Control-Allow-Methods",
                                "GET, POST, PUT, CONNECT, OPTIONS");
    else
        MHD_add_response_header(r, "Connection", "close");
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* 413 (RFC 9110 15.5.14) with the limit in a text body, and close. */
static enum MHD_Result
queue_too_large(struct MHD_Connection *conn)
{
    static const char text[] = "request body over the limit of " HTTP_STR(HTTP_MAX_BODY_BYTES)
                               " bytes\n";
    struct MHD_Response *r =
        MHD_create_response_from_buffer(sizeof(text) - 1, (void *)text, MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    response_add_cors(r);
    MHD_add_response_header(r, "Content-Type", "text/plain");
    MHD_add_response_header(r, "Connection", "close");
    enum MHD_Result ret = MHD_queue_response(conn, 413, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result on_request_ready(struct http_request *req);
static void conn_timeout_refresh(struct http_request *req);

/* Framing headers as libmicrohttpd left them: it reads the body by the first
 * Content-Length, or by Transfer-Encoding when there is one, and says nothing
 * about the rest; a proxy in front may have framed the message otherwise. */
struct framing {
    const char *content_length; /* the first value */
    bool cl_conflict;           /* another Content-Length with a different value */
    const char *transfer_encoding;
    unsigned n_te;
};

static enum MHD_Result
framing_visit(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    struct framing *f = cls;
    (void)kind;
    if (!key)
        return MHD_YES;
    if (strcasecmp(key, "Content-Length") == 0) {
        if (!f->content_length)
            f->content_length = value ? value : "";
        else if (strcmp(f->content_length, value ? value : "") != 0)
            f->cl_conflict = true;
    } else if (strcasecmp(key, "Transfer-Encoding") == 0) {
        f->transfer_encoding = value ? value : "";
        f->n_te++;
    }
    return MHD_YES;
}

/* 0 when the request's framing is unambiguous, else the status to answer
 * (and close with): RFC 9110 8.6 / RFC 9112 6.3 (differing Content-Length:
 * 400; Content-Length with Transfer-Encoding: the server may reject, and
 * must close), RFC 9112 6.1 (a coding other than chunked: 501). */
static unsigned
framing_check(struct MHD_Connection *conn)
{
    struct framing f = {0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, framing_visit, &f);
    if (f.cl_conflict)
        return 400;
    if (f.transfer_encoding && f.content_length)
        return 400;
    if (f.transfer_encoding &&
        (f.n_te > 1 || strcasecmp(f.transfer_encoding, "chunked") != 0))
        return 501;
    return 0;
}

/* The first call for a stream route's request: the head is in. The begin
 * function runs as a handler would (state HANDLING, the application's
 * reference taken); when it hands back a sink, the request goes back to
 * READING and the reference returns to us until finish(). */
static enum MHD_Result
stream_start(struct http_listener *lst, struct MHD_Connection *conn, const char *url,
             const char *method, const struct http_stream_route *route, void **req_cls)
{
    struct http_server *srv = lst->srv;
    struct http_request *req = req_new(lst, conn, url, method);
    if (!req)
        return MHD_NO;
    *req_cls = req; /* on_completed releases it from here on */
    if (!req_copy_values(req))
        return MHD_NO;
    req->state = REQ_HANDLING;
    atomic_fetch_add(&req->refs, 1); /* the application's, invariant 1 */
    struct http_body_sink sink = {0};
    bool take = route->begin(route->opaque, req, &sink);
    pthread_mutex_lock(&srv->lock);
    if (take && req->state == REQ_HANDLING && sink.write && sink.finish && sink.abort &&
        !srv->stopping && (req->pipe = pipe_start(req, &sink))) {
        conn_timeout_refresh(req); /* a body that waits on the disk is not idle */
        req->sink_active = true;
        req->state = REQ_READING;
        pthread_mutex_unlock(&srv->lock);
        req_unref(req); /* not the last: MHD's is held */
        return MHD_YES;
    }
    if (take) {
        /* Defensive (a caller bug): an incomplete sink, or a begin that both
         * replied and returned true; or no consumer thread could start, or
         * the server stops. The sink is dropped, the reply kept. */
        bool replied = req->state != REQ_HANDLING;
        pthread_mutex_unlock(&srv->lock);
        if (sink.abort)
            sink.abort(sink.ctx);
        if (!replied) {
            static const char msg[] = "stream route without a sink\n";
            http_reply(req, 500, "text/plain", msg, sizeof(msg) - 1);
        }
        pthread_mutex_lock(&srv->lock);
    }
    return on_request_ready(req); /* a reply now, or a suspension until it comes */
}

/* The first call for a request: headers are in, no body yet. */
static enum MHD_Result
on_request_start(struct http_listener *lst, struct MHD_Connection *conn, const char *url,
                 const char *method, void **req_cls)
{
    unsigned bad = framing_check(conn);
    if (bad) {
        *req_cls = &answered_early;
        return queue_simple(conn, bad, false); /* no byte of the body is read */
    }
    if (strcmp(method, "OPTIONS") == 0) {
        *req_cls = &options_pending; /* CORS pre-flight, no handler */
        return MHD_YES;
    }
    struct http_server *srv = lst->srv;
    struct http_stream_route route;
    pthread_mutex_lock(&srv->lock);
    bool stopping = srv->stopping;
    bool streamed = !stopping && route_find(srv, method, url, &route);
    pthread_mutex_unlock(&srv->lock);
    if (stopping)
        return MHD_NO;
    if (streamed)
        return stream_start(lst, conn, url, method, &route, req_cls);
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    if (cl) {
        errno = 0;
        char *end;
        unsigned long long n = strtoull(cl, &end, 10);
        if (errno == 0 && end != cl && n > HTTP_MAX_BODY) {
            const char *expect = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Expect");
            if (n <= HTTP_DRAIN_MAX && !expect) {
                *req_cls = &too_large_draining;
                return MHD_YES;
            }
            *req_cls = &answered_early;
            return queue_too_large(conn); /* before a byte of the body is read */
        }
    }
    struct http_request *req = req_new(lst, conn, url, method);
    if (!req)
        return MHD_NO;
    *req_cls = req;
    return MHD_YES;
}

static bool
body_append(struct http_request *req, const char *data, size_t len)
{
    if (len > HTTP_MAX_BODY - req->body_len)
        return false; /* a chunked body over the limit: closed, no status */
    if (req->body_len + len + 1 > req->body_cap) {
        size_t cap = req->body_cap ? req->body_cap : 4096;
        while (cap < req->body_len + len + 1)
            cap *= 2;
        char *grown = realloc(req->body, cap);
        if (!grown)
            return false;
        req->body = grown;
        req->body_cap = cap;
    }
    memcpy(req->body + req->body_len, data, len);
    req->body_len += len;
    req->body[req->body_len] = '\0'; /* a convenience for text parsers */
    return true;
}

/* The connection's idle timeout after this request: long once a request was
 * authenticated, short before (unix: always long). Setting 0 first restarts
 * MHD's idle clock (MHD_set_connection_option() does only when the timeout
 * was 0), so a handler's own run time is not counted as idle time. On the
 * connection's thread, before a suspension. */
static void
conn_timeout_refresh(struct http_request *req)
{
    struct http_server *srv = req->srv;
    unsigned t = req->transport == HTTP_TRANSPORT_UNIX || atomic_load(&req->authenticated)
                     ? HTTP_IDLE_TIMEOUT_S
                     : srv->unauth_timeout_s;
    MHD_set_connection_option(req->conn, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
    MHD_set_connection_option(req->conn, MHD_CONNECTION_OPTION_TIMEOUT, t);
}

/* Acts on req->state after the handler returned or MHD resumed us;
 * srv->lock held, released on return. */
static enum MHD_Result
on_request_ready(struct http_request *req)
{
    struct http_server *srv = req->srv;
    enum MHD_Result ret = MHD_YES;
    struct MHD_Response *resp = NULL;
    bool run_dead = false;

    if (req->state == REQ_HANDLING || req->state == REQ_REPLIED)
        conn_timeout_refresh(req);

    switch (req->state) {
    case REQ_HANDLING: /* no reply yet */
        if (srv->stopping) {
            req->state = REQ_DROPPED;
            ret = MHD_NO;
            break;
        }
        req->state = REQ_SUSPENDED; /* holds no thread from here (the point of it) */
        list_push(&srv->suspended, req);
        srv->n_suspended++;
        MHD_suspend_connection(req->conn);
        break;
    case REQ_REPLIED:
        resp = req->resp;
        req->resp = NULL;
        req->state = REQ_SENT;
        ret = resp ? MHD_queue_response(req->conn, req->status, resp) : MHD_NO;
        break;
    case REQ_TUNNEL:
        if (!tunnel_start(req)) {
            req->state = REQ_DROPPED;
            run_dead = true;
            ret = MHD_NO;
        }
        break;
    case REQ_DROPPED:
        ret = MHD_NO;
        break;
    default: /* SUSPENDED, TUNNELING: MHD does not run suspended connections */
        break;
    }
    pthread_mutex_unlock(&srv->lock);
    if (resp)
        MHD_destroy_response(resp); /* MHD holds its own reference */
    if (run_dead) {
        tunnel_run_dead(req->tunnel_fn, req->tunnel_opaque);
        req_unref(req); /* the application's, which the tunnel would have dropped */
    }
    return ret;
}

static enum MHD_Result
on_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
          const char *version, const char *upload_data, size_t *upload_data_size,
          void **req_cls)
{
    struct http_listener *lst = cls;
    struct http_request *req = *req_cls;

    if (!req)
        return on_request_start(lst, conn, url, method, req_cls);
    if ((void *)req == &answered_early)
        return MHD_YES;
    if ((void *)req == &too_large_draining) {
        if (*upload_data_size > 0) {
            *upload_data_size = 0;
            return MHD_YES;
        }
        *req_cls = &answered_early;
        return queue_too_large(conn);
    }
    if ((void *)req == &options_pending) {
        if (*upload_data_size > 0) {
            *upload_data_size = 0; /* a pre-flight's body means nothing */
            return MHD_YES;
        }
        *req_cls = &answered_early;
        return queue_simple(conn, 200, true);
    }
    if (*upload_data_size > 0) {
        if (req->state != REQ_READING)
            return MHD_NO;
        if (req->sink_active) {
            if (req->pipe_was_full) { /* back from a suspension: not idle */
                req->pipe_was_full = false;
                conn_timeout_refresh(req);
            }
            int rc = pipe_offer(req->pipe, upload_data, *upload_data_size);
            if (rc < 0)
                return MHD_NO; /* closed: on_completed() aborts the sink */
            if (rc == 0) {
                req->pipe_was_full = true; /* suspended: MHD offers it again */
                return MHD_YES;
            }
        } else if (!body_append(req, upload_data, *upload_data_size)) {
            return MHD_NO;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    struct http_server *srv = lst->srv;
    if (req->state == REQ_READING && req->sink_active) {
        /* the whole streamed body is in: once the consumer has written it,
         * finish() answers like a handler */
        req->sink_active = false;
        req->state = REQ_HANDLING;
        atomic_fetch_add(&req->refs, 1); /* the application's, invariant 1 */
        pipe_end(req->pipe, false);
    } else if (req->state == REQ_READING) {
        /* only this thread knows the request yet: no lock needed to start it */
        if (!req_copy_values(req))
            return MHD_NO;
        req->state = REQ_HANDLING;
        atomic_fetch_add(&req->refs, 1); /* the application's, invariant 1 */
        srv->handler(srv->opaque, req);
    }
    pthread_mutex_lock(&srv->lock);
    return on_request_ready(req);
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
             enum MHD_RequestTerminationCode toe)
{
    struct http_request *req = *req_cls;
    *req_cls = NULL;
    if (!req || (void *)req == &answered_early || (void *)req == &options_pending ||
        (void *)req == &too_large_draining)
        return;
    struct http_server *srv = req->srv;
    bool run_dead = false;
    if (req->sink_active) { /* the body never completed: the client left */
        req->sink_active = false;
        pipe_end(req->pipe, true);
    }
    pthread_mutex_lock(&srv->lock);
    /* A tunnel reply whose start MHD never got to (closed at stop) */
    if (req->state == REQ_TUNNEL) {
        req->state = REQ_DROPPED;
        run_dead = true;
    } else if (req->state == REQ_REPLIED || req->state == REQ_HANDLING) {
        req->state = REQ_DROPPED;
    }
    pthread_mutex_unlock(&srv->lock);
    if (run_dead) {
        tunnel_run_dead(req->tunnel_fn, req->tunnel_opaque);
        req_unref(req);
    }
    req_unref(req); /* MHD's */
}

/* Accept policy of the TCP and TLS listeners: the per-address limit. */
static enum MHD_Result
on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    struct http_listener *lst = cls;
    return http_limit_admit(lst->srv->limit, addr, addrlen) ? MHD_YES : MHD_NO;
}

/* Connection start and end on the TCP and TLS listeners: MHD pairs them on
 * every path, and calls STARTED before any byte is read, so the TLS session
 * gets the current protocol policy before its handshake. */
static void
on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
              enum MHD_ConnectionNotificationCode code)
{
    struct http_listener *lst = cls;
    struct http_server *srv = lst->srv;
    if (code != MHD_CONNECTION_NOTIFY_STARTED) {
        http_limit_release(srv->limit, *socket_context);
        *socket_context = NULL;
        return;
    }
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    *socket_context = http_limit_acquire(srv->limit, ci ? ci->client_addr : NULL);
    if (lst->transport == HTTP_TRANSPORT_TLS) {
        ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
        /* on failure the session keeps MHD's priorities: the modern ones */
        if (ci && ci->tls_session)
            (void)tls_policy_apply((gnutls_session_t)ci->tls_session);
    }
}

static void
on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    fprintf(stderr, "http: mhd: ");
    vfprintf(stderr, fmt, ap);
}

/*==== Listeners and the server ====*/

static int
listen_unix(const char *path, char *why, size_t why_len)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path)) {
        errtext_set(why, why_len, "unix socket path too long: %s", path);
        return -ENAMETOOLONG;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            errtext_set(why, why_len, "%s exists and is not a socket", path);
            return -EEXIST;
        }
        /* replace a stale socket from a previous run, not a live daemon's */
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool live = probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0;
        if (probe >= 0)
            close(probe);
        if (live) {
            errtext_set(why, why_len, "%s: another server is listening there", path);
            return -EADDRINUSE;
        }
        (void)unlink(path);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    /* chmod before listen(): nobody can connect while the mode is the umask's */
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || chmod(path, 0600) != 0 ||
        listen(fd, HTTP_LISTEN_BACKLOG) != 0) {
        int e = errno;
        errtext_set(why, why_len, "unix socket %s: %s", path, strerror(e));
        close(fd);
        return -e;
    }
    return fd;
}

static int
listen_tcp(const char *spec, int *port, bool *v6, char *why, size_t why_len)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (http_parse_listen(spec, &ss, &len) < 0) {
        errtext_set(why, why_len, "bad listen address \"%s\" (want HOST:PORT or [V6]:PORT)", spec);
        return -EINVAL;
    }
    *v6 = ss.ss_family == AF_INET6;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (*v6) /* "[::]:80" serves IPv6 only; IPv4 is a listener of its own */
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, HTTP_LISTEN_BACKLOG) != 0) {
        int e = errno;
        errtext_set(why, why_len, "listen on %s: %s", spec, strerror(e));
        close(fd);
        return -e;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    if (getsockname(fd, (struct sockaddr *)&bound, &blen) == 0)
        *port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                  : ((struct sockaddr_in *)&bound)->sin_port);
    return fd;
}

static int
listener_start(struct http_server *srv, struct http_listener *lst, unsigned n_threads, bool v6,
               char *why, size_t why_len)
{
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME;
    bool is_unix = lst->transport == HTTP_TRANSPORT_UNIX;
    if (srv->debug)
        flags |= MHD_USE_ERROR_LOG;
    if (v6)
        flags |= MHD_USE_IPv6;
    if (lst->transport == HTTP_TRANSPORT_TLS)
        flags |= MHD_USE_TLS;
    struct MHD_OptionItem opts[16] = {
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)on_mhd_log, NULL}, /* MHD wants it first */
        {MHD_OPTION_LISTEN_SOCKET, lst->listen_fd, NULL},
        {MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)n_threads, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, is_unix ? HTTP_IDLE_TIMEOUT_S : srv->unauth_timeout_s,
         NULL},
        {MHD_OPTION_CONNECTION_LIMIT,
         is_unix ? HTTP_UNIX_MAX_CONNECTIONS : srv->tcp_max_connections, NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, NULL},
    };
    size_t n = 6;
    if (!is_unix)
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION,
                                            (intptr_t)on_connection, lst};
    if (lst->transport == HTTP_TRANSPORT_TLS) {
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, srv->tls_key_pem};
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, srv->tls_cert_pem};
        /* the modern set, should a session ever miss on_connection()'s choice */
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0,
                                            (void *)TLS_POLICY_MODERN};
    }
    opts[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    lst->mhd = MHD_start_daemon(flags, 0, is_unix ? NULL : on_accept, lst, on_access, lst,
                                MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    if (!lst->mhd) {
        errtext_set(why, why_len, "cannot start the %s listener (libmicrohttpd)",
                lst->transport == HTTP_TRANSPORT_UNIX  ? "unix"
                : lst->transport == HTTP_TRANSPORT_TCP ? "http"
                                                       : "https");
        close(lst->listen_fd);
        lst->listen_fd = -1;
        return -EIO;
    }
    lst->listen_fd = -1; /* MHD closes it at stop */
    return 0;
}

static bool
listen_configured(const char *spec)
{
    return spec && *spec && strcmp(spec, "none") != 0;
}

static int
tls_material_load(struct http_server *srv, const struct http_config *cfg, char *why,
                  size_t why_len)
{
    if (!cfg->tls_key_pem_path || !cfg->tls_cert_pem_path) {
        errtext_set(why, why_len, "TLS listener without key and certificate paths");
        return -EINVAL;
    }
    int rc = tls_cert_ensure(cfg->tls_key_pem_path, cfg->tls_cert_pem_path, cfg->tls_hostname,
                             why, why_len);
    if (rc < 0)
        return rc;
    if ((rc = tls_cert_read_file(cfg->tls_key_pem_path, &srv->tls_key_pem)) < 0 ||
        (rc = tls_cert_read_file(cfg->tls_cert_pem_path, &srv->tls_cert_pem)) < 0) {
        errtext_set(why, why_len, "reading TLS key/certificate: %s", strerror(-rc));
        return rc;
    }
    return 0;
}

/* Raises the soft descriptor limit towards the hard one, as far as @want;
 * returns the soft limit in force afterwards. */
static rlim_t
nofile_raise(rlim_t want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1024;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        rlim_t to = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
        struct rlimit raised = {to, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
            rl.rlim_cur = to;
    }
    return rl.rlim_cur;
}

/* Each TCP/TLS listener's connection limit: what was asked, within the
 * descriptors left after the reserve and the unix listener (http.h). */
static void
server_budget(struct http_server *srv, const struct http_config *cfg)
{
    unsigned n_tcp = (unsigned)listen_configured(cfg->listen) +
                     (unsigned)listen_configured(cfg->tls_listen);
    unsigned want = cfg->max_connections ? cfg->max_connections : HTTP_DEFAULT_MAX_CONNECTIONS;
    rlim_t fixed = HTTP_FD_RESERVE + HTTP_UNIX_MAX_CONNECTIONS;
    rlim_t have = nofile_raise(fixed + (rlim_t)want * (n_tcp ? n_tcp : 1));
    rlim_t fit = have > fixed + 64u * (n_tcp ? n_tcp : 1) ? (have - fixed) / (n_tcp ? n_tcp : 1)
                                                          : 64u;
    srv->tcp_max_connections = fit < want ? (unsigned)fit : want;
    srv->unauth_timeout_s =
        cfg->unauth_timeout_s ? cfg->unauth_timeout_s : HTTP_DEFAULT_UNAUTH_TIMEOUT_S;
    srv->max_per_address =
        cfg->max_per_address ? cfg->max_per_address : HTTP_DEFAULT_MAX_PER_ADDRESS;
    if (n_tcp == 0)
        return;
    if (srv->tcp_max_connections < want)
        log_warn("http.limits", "max_connections=%u wanted=%u nofile=%llu reason=\"descriptor "
                 "limit; raise LimitNOFILE\"", srv->tcp_max_connections, want,
                 (unsigned long long)have);
    log_info("http.limits",
             "max_connections=%u max_per_address=%u unauth_timeout_s=%u idle_timeout_s=%u "
             "unix_max_connections=%u nofile=%llu",
             srv->tcp_max_connections, srv->max_per_address, srv->unauth_timeout_s,
             HTTP_IDLE_TIMEOUT_S, HTTP_UNIX_MAX_CONNECTIONS, (unsigned long long)have);
}

static int
server_listen_all(struct http_server *srv, const struct http_config *cfg, char *why,
                  size_t why_len)
{
    unsigned n_threads = cfg->n_threads;
    if (n_threads == 0) {
        /* Request threads only parse, answer quick calls and move bytes:
         * whatever may block runs elsewhere (jobs, a stream's producer or
         * consumer, a tunnel's thread). Fewer of them sleep and wake less
         * and handle more calls per wake: with wrk -c8 beside vesseld on 2
         * CPUs, 1 thread used 12.2 µs of CPU per VM.get_record against 14.6
         * for 2 (bench/api/peers.py --threads). The other half of the CPUs
         * is the guests'. */
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = n >= 4 ? (unsigned)(n / 2) : 1;
    }
    server_budget(srv, cfg);
    if (!(srv->limit = http_limit_new(srv->max_per_address)))
        return -ENOMEM;
    if (listen_configured(cfg->tls_listen) && tls_policy_init() < 0) {
        errtext_set(why, why_len, "GnuTLS refused the TLS priority strings");
        return -EINVAL;
    }
    int fd;
    bool v6 = false;
    if (cfg->unix_path) {
        if ((fd = listen_unix(cfg->unix_path, why, why_len)) < 0)
            return fd;
        if (!(srv->unix_path = strdup(cfg->unix_path))) {
            close(fd);
            return -ENOMEM;
        }
        srv->lst[LST_UNIX].listen_fd = fd;
        int rc = listener_start(srv, &srv->lst[LST_UNIX], n_threads, false, why, why_len);
        if (rc < 0)
            return rc;
    }
    if (listen_configured(cfg->listen)) {
        struct http_listener *l = &srv->lst[LST_TCP];
        if ((fd = listen_tcp(cfg->listen, &l->port, &v6, why, why_len)) < 0)
            return fd;
        l->listen_fd = fd;
        int rc = listener_start(srv, l, n_threads, v6, why, why_len);
        if (rc < 0)
            return rc;
    }
    if (listen_configured(cfg->tls_listen)) {
        struct http_listener *l = &srv->lst[LST_TLS];
        int rc = tls_material_load(srv, cfg, why, why_len);
        if (rc < 0)
            return rc;
        if ((fd = listen_tcp(cfg->tls_listen, &l->port, &v6, why, why_len)) < 0)
            return fd;
        l->listen_fd = fd;
        if ((rc = listener_start(srv, l, n_threads, v6, why, why_len)) < 0)
            return rc;
    }
    return 0;
}

int
http_server_start(const struct http_config *cfg, struct http_server **out, char *why,
                  size_t why_len)
{
    errtext_set(why, why_len, "%s", "");
    if (!cfg || !cfg->handler || !out) {
        errtext_set(why, why_len, "no configuration or handler");
        return -EINVAL;
    }
    struct http_server *srv = calloc(1, sizeof(*srv));
    if (!srv)
        return -ENOMEM;
    pthread_mutex_init(&srv->lock, NULL);
    pthread_cond_init(&srv->tunnels_done, NULL);
    pthread_cond_init(&srv->transfers_done, NULL);
    atomic_init(&srv->refs, 1);
    srv->handler = cfg->handler;
    srv->opaque = cfg->opaque;
    srv->debug = cfg->debug;
    static const enum http_transport transports[LST_COUNT] = {
        HTTP_TRANSPORT_UNIX, HTTP_TRANSPORT_TCP, HTTP_TRANSPORT_TLS};
    for (int i = 0; i < LST_COUNT; i++)
        srv->lst[i] = (struct http_listener){srv, NULL, transports[i], -1, 0};

    int rc = server_listen_all(srv, cfg, why, why_len);
    if (rc < 0) {
        http_server_stop(srv); /* whatever did start */
        return rc;
    }
    *out = srv;
    return 0;
}

void
http_server_stop(struct http_server *srv)
{
    if (!srv)
        return;
    pthread_mutex_lock(&srv->lock);
    srv->stopping = true;
    /* invariant 3: no connection stays suspended into MHD_stop_daemon() */
    while (srv->suspended) {
        struct http_request *req = srv->suspended;
        list_remove(&srv->suspended, req);
        srv->n_suspended--;
        req->state = REQ_DROPPED;
        MHD_resume_connection(req->conn);
    }
    for (struct http_request *t = srv->tunnels; t; t = t->next)
        shutdown(t->tunnel_fd, SHUT_RDWR); /* the callbacks read EOF and return */
    while (srv->n_tunnels > 0)
        pthread_cond_wait(&srv->tunnels_done, &srv->lock);
    transfers_close_all(srv);
    pthread_mutex_unlock(&srv->lock);

    for (int i = 0; i < LST_COUNT; i++) {
        if (srv->lst[i].mhd)
            MHD_stop_daemon(srv->lst[i].mhd); /* joins its threads, closes everything */
        if (srv->lst[i].listen_fd >= 0)
            close(srv->lst[i].listen_fd);
    }
    /* producers still in a read: their free_fn must have run when stop returns */
    pthread_mutex_lock(&srv->lock);
    while (srv->transfers)
        pthread_cond_wait(&srv->transfers_done, &srv->lock);
    pthread_mutex_unlock(&srv->lock);
    if (srv->unix_path) {
        (void)unlink(srv->unix_path);
        free(srv->unix_path);
    }
    free(srv->tls_key_pem);
    free(srv->tls_cert_pem);
    http_limit_free(srv->limit); /* every connection is closed: none holds an entry */
    srv->limit = NULL;
    for (unsigned i = 0; i < srv->n_routes; i++) { /* no connection is left to use them */
        free(srv->routes[i].method);
        free(srv->routes[i].path);
    }
    srv->n_routes = 0;
    server_unref(srv); /* requests still held by the application keep the rest */
}

int
http_server_port(const struct http_server *srv)
{
    return srv ? srv->lst[LST_TCP].port : 0;
}

int
http_server_tls_port(const struct http_server *srv)
{
    return srv ? srv->lst[LST_TLS].port : 0;
}

unsigned
http_server_max_connections(const struct http_server *srv)
{
    return srv && (srv->lst[LST_TCP].mhd || srv->lst[LST_TLS].mhd) ? srv->tcp_max_connections
                                                                   : 0;
}
