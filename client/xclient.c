/* client/xclient.c - XML-RPC over HTTP/1.1 keep-alive, on a unix socket, TCP or TLS.
 *
 * One xclient holds at most one connection, opened at the first call. A call
 * is: write the whole request (headers and body, built in memory), read the
 * reply head up to the blank line, then exactly Content-Length bytes (or the
 * chunks of a chunked body), so the connection stays usable for the next
 * call. When a kept-alive connection turns out to be closed by the server
 * (the write fails, or EOF arrives before any byte of the reply), the call is
 * retried once on a fresh connection; a connection that breaks mid-reply is
 * an error, since the server may have acted on the call.
 *
 * TLS (GnuTLS): with a pinned SHA-256 fingerprint or tls_insecure the chain is
 * not verified, the pin is compared with the leaf certificate after the
 * handshake; otherwise the system CAs verify the chain and the host name.
 * Either way the leaf's fingerprint is kept for xclient_peer_fingerprint(), so
 * that `xe` can remember a server on first use.
 *
 * Replies (xapi's doc/content/xen-api/wire-protocol.md): a struct with Status "Success" and
 * Value, or "Failure" and ErrorDescription [code, params...]; a response
 * without Status is taken whole as the value (system.listMethods).
 */
#include "client/xclient.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "wire/xmlrpc.h"

#define XCLIENT_MAX_HEAD (64 * 1024)
#define XCLIENT_MAX_BODY (256 * 1024 * 1024)

struct xclient {
    enum xclient_transport transport;
    char *unix_path;
    char *host;
    int port;
    char *tls_fingerprint;
    bool tls_insecure;
    int timeout_ms;

    char *session;
    char *task_id;                /* sent as "task-id" (xapi's http.ml), or NULL */
    uint64_t generation;          /* sent as "vessel-generation" unless 0 */
    bool transport_failed;        /* the last call failed before a XenAPI reply */
    int fd;                       /* -1: not connected */
    gnutls_session_t tls;         /* NULL unless XCLIENT_TLS and connected */
    gnutls_certificate_credentials_t cred;
    char peer_fp[65];             /* hex SHA-256 of the server's certificate, or "" */
    int64_t deadline_ms;          /* of the call in progress; 0 = none */

    /* Bytes read past the end of the previous reply (none in practice: the
     * server answers one request at a time), and the read buffer. */
    char *rbuf;
    size_t rlen, rcap;
};

static int64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *
strdup_or_null(const char *s, bool *oom)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *oom = true;
    return d;
}

int
xclient_new(const struct xclient_config *cfg, struct xclient **out)
{
    *out = NULL;
    if (cfg->transport == XCLIENT_UNIX && !cfg->unix_path)
        return -EINVAL;
    if (cfg->transport != XCLIENT_UNIX && (!cfg->host || cfg->port <= 0 || cfg->port > 65535))
        return -EINVAL;
    struct xclient *xc = calloc(1, sizeof(*xc));
    if (!xc)
        return -ENOMEM;
    bool oom = false;
    xc->transport = cfg->transport;
    xc->unix_path = strdup_or_null(cfg->unix_path, &oom);
    xc->host = strdup_or_null(cfg->host, &oom);
    xc->port = cfg->port;
    xc->tls_fingerprint = strdup_or_null(cfg->tls_fingerprint, &oom);
    xc->tls_insecure = cfg->tls_insecure;
    xc->timeout_ms = cfg->timeout_ms;
    xc->fd = -1;
    if (oom) {
        xclient_free(xc);
        return -ENOMEM;
    }
    /* A server that closes the connection must not kill the caller. */
    signal(SIGPIPE, SIG_IGN);
    *out = xc;
    return 0;
}

static void
xclient_disconnect(struct xclient *xc)
{
    if (xc->tls) {
        gnutls_deinit(xc->tls);
        xc->tls = NULL;
    }
    if (xc->fd >= 0) {
        close(xc->fd);
        xc->fd = -1;
    }
    xc->rlen = 0;
}

void
xclient_free(struct xclient *xc)
{
    if (!xc)
        return;
    xclient_disconnect(xc);
    if (xc->cred)
        gnutls_certificate_free_credentials(xc->cred);
    free(xc->unix_path);
    free(xc->host);
    free(xc->tls_fingerprint);
    free(xc->task_id);
    free(xc->session);
    free(xc->rbuf);
    free(xc);
}

void
xclient_set_session(struct xclient *xc, const char *session_ref)
{
    free(xc->session);
    xc->session = session_ref ? strdup(session_ref) : NULL;
}

int
xclient_set_task_id(struct xclient *xc, const char *task_id)
{
    char *t = NULL;
    if (task_id && !(t = strdup(task_id)))
        return -ENOMEM;
    free(xc->task_id);
    xc->task_id = t;
    return 0;
}

void
xclient_set_generation(struct xclient *xc, uint64_t gen)
{
    xc->generation = gen;
}

bool
xclient_transport_failed(const struct xclient *xc)
{
    return xc->transport_failed;
}

const char *
xclient_session(const struct xclient *xc)
{
    return xc->session;
}

const char *
xclient_peer_fingerprint(const struct xclient *xc)
{
    return xc->peer_fp[0] ? xc->peer_fp : NULL;
}

/* ------------------------------------------------------------------ connecting */

/* Milliseconds left before the call's deadline (-1: none; 0: expired). */
static int
time_left(const struct xclient *xc)
{
    if (!xc->deadline_ms)
        return -1;
    int64_t left = xc->deadline_ms - now_ms();
    return left > 0 ? (int)left : 0;
}

static int
wait_fd(struct xclient *xc, short events)
{
    struct pollfd p = {.fd = xc->fd, .events = events};
    for (;;) {
        int rc = poll(&p, 1, time_left(xc));
        if (rc > 0)
            return 0;
        if (rc == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

static int
connect_unix(struct xclient *xc, char *why, size_t why_len)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(xc->unix_path) >= sizeof(sa.sun_path)) {
        snprintf(why, why_len, "socket path too long: %s", xc->unix_path);
        return -ENAMETOOLONG;
    }
    strcpy(sa.sun_path, xc->unix_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        snprintf(why, why_len, "cannot connect to %s: %s", xc->unix_path, strerror(e));
        close(fd);
        return -e;
    }
    xc->fd = fd;
    return 0;
}

/* Non-blocking connect bounded by the call's deadline, then back to blocking
 * (all later waits go through poll). */
static int
connect_addr(struct xclient *xc, const struct addrinfo *ai)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return -errno;
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc < 0 && errno == EINPROGRESS) {
        xc->fd = fd;
        rc = wait_fd(xc, POLLOUT);
        xc->fd = -1;
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (rc == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr)
            rc = -soerr;
    } else if (rc < 0) {
        rc = -errno;
    }
    if (rc < 0) {
        close(fd);
        return rc;
    }
    fcntl(fd, F_SETFL, fl);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    xc->fd = fd;
    return 0;
}

static int
connect_tcp(struct xclient *xc, char *why, size_t why_len)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", xc->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int g = getaddrinfo(xc->host, port, &hints, &res);
    if (g != 0) {
        snprintf(why, why_len, "cannot resolve %s: %s", xc->host, gai_strerror(g));
        return -EHOSTUNREACH;
    }
    int rc = -ECONNREFUSED;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
        if ((rc = connect_addr(xc, ai)) == 0)
            break;
    freeaddrinfo(res);
    if (rc < 0)
        snprintf(why, why_len, "cannot connect to %s:%d: %s", xc->host, xc->port, strerror(-rc));
    return rc;
}

/* Hex SHA-256 of the peer's leaf certificate into xc->peer_fp. */
static int
tls_record_fingerprint(struct xclient *xc)
{
    unsigned n = 0;
    const gnutls_datum_t *certs = gnutls_certificate_get_peers(xc->tls, &n);
    if (!certs || n == 0)
        return -EPROTO;
    unsigned char dig[32];
    size_t dlen = sizeof(dig);
    if (gnutls_fingerprint(GNUTLS_DIG_SHA256, &certs[0], dig, &dlen) < 0 || dlen != 32)
        return -EPROTO;
    for (size_t i = 0; i < 32; i++)
        snprintf(xc->peer_fp + 2 * i, 3, "%02x", dig[i]);
    return 0;
}

/* A fingerprint as users write it: any case, with or without colons. */
static bool
fingerprint_matches(const char *want, const char *have)
{
    size_t j = 0;
    for (const char *p = want; *p; p++) {
        if (*p == ':')
            continue;
        if (!have[j] || tolower((unsigned char)*p) != have[j])
            return false;
        j++;
    }
    return have[j] == '\0';
}

static int
tls_handshake(struct xclient *xc, char *why, size_t why_len)
{
    bool verify = !xc->tls_fingerprint && !xc->tls_insecure;
    int rc;
    if (!xc->cred) {
        if (gnutls_certificate_allocate_credentials(&xc->cred) < 0)
            return -ENOMEM;
        if (verify)
            gnutls_certificate_set_x509_system_trust(xc->cred);
    }
    if ((rc = gnutls_init(&xc->tls, GNUTLS_CLIENT)) < 0) {
        xc->tls = NULL;
        return -ENOMEM;
    }
    gnutls_set_default_priority(xc->tls);
    gnutls_credentials_set(xc->tls, GNUTLS_CRD_CERTIFICATE, xc->cred);
    gnutls_server_name_set(xc->tls, GNUTLS_NAME_DNS, xc->host, strlen(xc->host));
    if (verify)
        gnutls_session_set_verify_cert(xc->tls, xc->host, 0);
    gnutls_transport_set_int(xc->tls, xc->fd);
    do {
        rc = gnutls_handshake(xc->tls);
        if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
            int w = wait_fd(xc, gnutls_record_get_direction(xc->tls) ? POLLOUT : POLLIN);
            if (w < 0) {
                snprintf(why, why_len, "TLS handshake with %s: timed out", xc->host);
                return w;
            }
        }
    } while (rc < 0 && !gnutls_error_is_fatal(rc));
    if (rc < 0) {
        snprintf(why, why_len, "TLS handshake with %s failed: %s", xc->host, gnutls_strerror(rc));
        return -EPROTO;
    }
    if (tls_record_fingerprint(xc) < 0) {
        snprintf(why, why_len, "TLS: %s sent no certificate", xc->host);
        return -EPROTO;
    }
    if (xc->tls_fingerprint && !fingerprint_matches(xc->tls_fingerprint, xc->peer_fp)) {
        snprintf(why, why_len,
                 "TLS: the certificate of %s has fingerprint %s, expected %s (server changed, "
                 "or someone is in the middle)",
                 xc->host, xc->peer_fp, xc->tls_fingerprint);
        return -EPERM;
    }
    return 0;
}

static int
xclient_connect_now(struct xclient *xc, char *why, size_t why_len)
{
    int rc;
    xclient_disconnect(xc);
    if (xc->transport == XCLIENT_UNIX)
        rc = connect_unix(xc, why, why_len);
    else
        rc = connect_tcp(xc, why, why_len);
    if (rc == 0 && xc->transport == XCLIENT_TLS)
        rc = tls_handshake(xc, why, why_len);
    if (rc < 0)
        xclient_disconnect(xc);
    return rc;
}

bool
xclient_connect(struct xclient *xc, struct xerr **errp)
{
    char why[512] = "";
    xc->deadline_ms = xc->timeout_ms > 0 ? now_ms() + xc->timeout_ms : 0;
    int rc = xclient_connect_now(xc, why, sizeof(why));
    if (rc < 0)
        return xerr_internal(errp, "xclient: %s", why[0] ? why : strerror(-rc));
    return true;
}

/* ------------------------------------------------------------------ bytes */

static int
send_all(struct xclient *xc, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n;
        if (xc->tls) {
            n = gnutls_record_send(xc->tls, p, len);
            if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
                continue;
            if (n < 0)
                return -EPIPE;
        } else {
            int w = wait_fd(xc, POLLOUT);
            if (w < 0)
                return w;
            n = send(xc->fd, p, len, MSG_NOSIGNAL);
            if (n < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (n < 0)
                return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads more bytes into rbuf. Returns the count, 0 at EOF, or -errno. */
static ssize_t
recv_more(struct xclient *xc)
{
    if (xc->rcap - xc->rlen < 16384) {
        size_t cap = xc->rcap ? xc->rcap * 2 : 65536;
        char *nb = realloc(xc->rbuf, cap + 1);
        if (!nb)
            return -ENOMEM;
        xc->rbuf = nb;
        xc->rcap = cap;
    }
    for (;;) {
        if (!xc->tls || gnutls_record_check_pending(xc->tls) == 0) {
            int w = wait_fd(xc, POLLIN);
            if (w < 0)
                return w;
        }
        ssize_t n;
        if (xc->tls) {
            n = gnutls_record_recv(xc->tls, xc->rbuf + xc->rlen, xc->rcap - xc->rlen);
            if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
                continue;
            if (n == GNUTLS_E_PREMATURE_TERMINATION)
                n = 0;
            if (n < 0)
                return -EPROTO;
        } else {
            n = recv(xc->fd, xc->rbuf + xc->rlen, xc->rcap - xc->rlen, 0);
            if (n < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (n < 0)
                return -errno;
        }
        xc->rlen += (size_t)n;
        xc->rbuf[xc->rlen] = '\0';
        return n;
    }
}

/* Drops the first @n bytes of rbuf. */
static void
consume(struct xclient *xc, size_t n)
{
    memmove(xc->rbuf, xc->rbuf + n, xc->rlen - n);
    xc->rlen -= n;
    if (xc->rbuf)
        xc->rbuf[xc->rlen] = '\0';
}

/* ------------------------------------------------------------------ HTTP */

struct http_reply {
    int status;
    bool close;   /* the server will close after this reply */
    bool chunked;
    long long content_length; /* -1: not given */
};

static const char *
header_value(const char *line, const char *name)
{
    size_t n = strlen(name);
    if (strncasecmp(line, name, n) != 0 || line[n] != ':')
        return NULL;
    line += n + 1;
    while (*line == ' ' || *line == '\t')
        line++;
    return line;
}

/* Parses the head in rbuf[0..head_len) (NUL-terminated lines ending CRLF). */
static int
parse_head(char *head, struct http_reply *r, char *why, size_t why_len)
{
    r->content_length = -1;
    r->chunked = false;
    r->close = false;
    int minor = 1;
    if (sscanf(head, "HTTP/1.%d %d", &minor, &r->status) != 2) {
        snprintf(why, why_len, "not an HTTP reply");
        return -EPROTO;
    }
    if (minor == 0)
        r->close = true;
    for (char *line = strstr(head, "\r\n"); line; line = strstr(line, "\r\n")) {
        line += 2;
        char *eol = strstr(line, "\r\n");
        if (eol)
            *eol = '\0';
        const char *v;
        if ((v = header_value(line, "Content-Length"))) {
            char *end;
            r->content_length = strtoll(v, &end, 10);
            if (r->content_length < 0 || r->content_length > XCLIENT_MAX_BODY) {
                snprintf(why, why_len, "bad Content-Length");
                return -EPROTO;
            }
        } else if ((v = header_value(line, "Transfer-Encoding")) && strcasestr(v, "chunked")) {
            r->chunked = true;
        } else if ((v = header_value(line, "Connection"))) {
            if (strcasestr(v, "close"))
                r->close = true;
            else if (strcasestr(v, "keep-alive"))
                r->close = false;
        }
        if (!eol)
            break;
        *eol = '\r';
    }
    return 0;
}

/* Reads until rbuf holds at least @n bytes. 0, or -errno (EOF: -ECONNRESET). */
static int
read_at_least(struct xclient *xc, size_t n)
{
    while (xc->rlen < n) {
        ssize_t r = recv_more(xc);
        if (r < 0)
            return (int)r;
        if (r == 0)
            return -ECONNRESET;
    }
    return 0;
}

/* Reads one CRLF-terminated line; returns its length without CRLF, or -errno. */
static ssize_t
read_line(struct xclient *xc)
{
    for (;;) {
        char *eol = xc->rlen ? strstr(xc->rbuf, "\r\n") : NULL;
        if (eol)
            return eol - xc->rbuf;
        if (xc->rlen > XCLIENT_MAX_HEAD)
            return -EPROTO;
        ssize_t r = recv_more(xc);
        if (r < 0)
            return r;
        if (r == 0)
            return -ECONNRESET;
    }
}

static int
read_chunked(struct xclient *xc, struct strbuf *body)
{
    for (;;) {
        ssize_t ll = read_line(xc);
        if (ll < 0)
            return (int)ll;
        char *end;
        unsigned long long size = strtoull(xc->rbuf, &end, 16);
        if (end == xc->rbuf || body->len + size > XCLIENT_MAX_BODY)
            return -EPROTO;
        consume(xc, (size_t)ll + 2);
        if (size == 0) {
            /* trailers, up to the empty line */
            while ((ll = read_line(xc)) > 0)
                consume(xc, (size_t)ll + 2);
            if (ll < 0)
                return (int)ll;
            consume(xc, 2);
            return 0;
        }
        int rc = read_at_least(xc, size + 2);
        if (rc < 0)
            return rc;
        strbuf_append(body, xc->rbuf, size);
        consume(xc, size + 2);
    }
}

/* Reads one reply. *@got_any tells whether any byte arrived (a retry on a
 * fresh connection is safe only when none did). */
static int
read_reply(struct xclient *xc, struct http_reply *r, struct strbuf *body, bool *got_any,
           char *why, size_t why_len)
{
    *got_any = xc->rlen > 0;
    char *end;
    while (!(end = xc->rlen ? strstr(xc->rbuf, "\r\n\r\n") : NULL)) {
        if (xc->rlen > XCLIENT_MAX_HEAD) {
            snprintf(why, why_len, "reply head too long");
            return -EPROTO;
        }
        ssize_t n = recv_more(xc);
        if (n < 0)
            return (int)n;
        if (n == 0)
            return -ECONNRESET;
        *got_any = true;
    }
    size_t head_len = (size_t)(end - xc->rbuf) + 4;
    end[2] = '\0';
    int rc = parse_head(xc->rbuf, r, why, why_len);
    if (rc < 0)
        return rc;
    consume(xc, head_len);
    if (r->chunked) {
        if ((rc = read_chunked(xc, body)) < 0)
            return rc;
    } else if (r->content_length >= 0) {
        if ((rc = read_at_least(xc, (size_t)r->content_length)) < 0)
            return rc;
        strbuf_append(body, xc->rbuf, (size_t)r->content_length);
        consume(xc, (size_t)r->content_length);
    } else {
        /* No length: the body runs to EOF. */
        for (;;) {
            ssize_t n = recv_more(xc);
            if (n < 0)
                return (int)n;
            if (n == 0)
                break;
            if (xc->rlen > XCLIENT_MAX_BODY)
                return -E2BIG;
        }
        strbuf_append(body, xc->rbuf, xc->rlen);
        consume(xc, xc->rlen);
        r->close = true;
    }
    return strbuf_ok(body) ? 0 : -ENOMEM;
}

/* POSTs @xml to "/" and returns the reply body in @body. */
static bool
http_post(struct xclient *xc, const char *xml, size_t xml_len, struct strbuf *body,
          struct xerr **errp)
{
    struct strbuf req = STRBUF_INIT;
    const char *host = xc->transport == XCLIENT_UNIX ? "localhost" : xc->host;
    xc->transport_failed = false;
    strbuf_printf(&req,
                  "POST / HTTP/1.1\r\nHost: %s\r\nUser-Agent: vessel-xclient/0.1\r\n"
                  "Content-Type: text/xml\r\nContent-Length: %zu\r\n"
                  "Connection: keep-alive\r\n",
                  host, xml_len);
    if (xc->task_id)
        strbuf_printf(&req, "task-id: %s\r\n", xc->task_id);
    if (xc->generation)
        strbuf_printf(&req, "vessel-generation: %" PRIu64 "\r\n", xc->generation);
    strbuf_puts(&req, "\r\n");
    strbuf_append(&req, xml, xml_len);
    if (!strbuf_ok(&req)) {
        strbuf_release(&req);
        return xerr_nomem(errp);
    }
    xc->deadline_ms = xc->timeout_ms > 0 ? now_ms() + xc->timeout_ms : 0;
    char why[512] = "";
    int rc = 0;
    struct http_reply r = {0};
    for (int attempt = 0; attempt < 2; attempt++) {
        bool reused = xc->fd >= 0;
        why[0] = '\0';
        if (!reused && (rc = xclient_connect_now(xc, why, sizeof(why))) < 0)
            break;
        bool got_any = false;
        rc = send_all(xc, req.buf, req.len);
        if (rc == 0) {
            strbuf_reset(body);
            rc = read_reply(xc, &r, body, &got_any, why, sizeof(why));
        }
        if (rc == 0)
            break;
        xclient_disconnect(xc);
        /* Only a kept-alive connection that died before answering is retried. */
        if (!reused || got_any || rc == -ETIMEDOUT)
            break;
    }
    strbuf_release(&req);
    xc->transport_failed = rc < 0 || r.status != 200;
    if (rc < 0) {
        xclient_disconnect(xc);
        if (rc == -ETIMEDOUT)
            return xerr_internal(errp, "xclient: timed out after %d ms", xc->timeout_ms);
        if (rc == -ECONNRESET && !why[0])
            snprintf(why, sizeof(why), "the server closed the connection");
        return xerr_internal(errp, "xclient: %s", why[0] ? why : strerror(-rc));
    }
    if (r.close)
        xclient_disconnect(xc);
    if (r.status != 200)
        return xerr_internal(errp, "xclient: HTTP status %d: %.200s", r.status,
                             body->buf ? body->buf : "");
    return true;
}

/* ------------------------------------------------------------------ XML-RPC */

/* Turns a parsed reply into the Value (*@out, owned) or *errp. */
static bool
unwrap_reply(struct xval *reply, struct xval **out, struct xerr **errp)
{
    const struct xval *status =
        reply->kind == XVAL_STRUCT ? xval_struct_get(reply, "Status") : NULL;
    if (!status) {
        *out = reply; /* a bare value: system.listMethods */
        return true;
    }
    if (status->kind == XVAL_STRING && strcmp(status->str.s, "Success") == 0) {
        const struct xval *v = xval_struct_get(reply, "Value");
        *out = v ? xval_copy(v) : xval_new_string("");
        xval_free(reply);
        return *out ? true : xerr_nomem(errp);
    }
    const struct xval *ed = xval_struct_get(reply, "ErrorDescription");
    if (!ed || ed->kind != XVAL_ARRAY || ed->arr.n == 0 || ed->arr.items[0]->kind != XVAL_STRING) {
        xval_free(reply);
        return xerr_internal(errp, "xclient: Failure without an ErrorDescription");
    }
    size_t n = ed->arr.n - 1;
    const char **params = calloc(n ? n : 1, sizeof(*params));
    if (!params) {
        xval_free(reply);
        return xerr_nomem(errp);
    }
    for (size_t i = 0; i < n; i++) {
        const struct xval *p = ed->arr.items[i + 1];
        params[i] = (p->kind == XVAL_STRING || p->kind == XVAL_DATETIME) ? p->str.s : "";
    }
    xerr_set_at(errp, __FILE__, __LINE__, ed->arr.items[0]->str.s, n, params);
    free(params);
    xval_free(reply);
    return false;
}

static bool
post_call(struct xclient *xc, const struct strbuf *xml, struct xval **out, struct xerr **errp)
{
    struct strbuf body = STRBUF_INIT;
    if (!http_post(xc, xml->buf, xml->len, &body, errp)) {
        strbuf_release(&body);
        return false;
    }
    struct xval *reply = NULL;
    char why[256] = "";
    int rc = xmlrpc_parse_response(body.buf ? body.buf : "", body.len, &reply, why, sizeof(why));
    strbuf_release(&body);
    if (rc == -EPROTO) {
        xval_free(reply);
        return xerr_internal(errp, "xclient: XML-RPC fault");
    }
    if (rc < 0)
        return xerr_internal(errp, "xclient: bad reply: %s", why);
    return unwrap_reply(reply, out, errp);
}

void
xclient_call_begin(struct xclient *xc, struct xclient_call *call, const char *method,
                   bool with_session)
{
    call->xc = xc;
    call->failed = false;
    strbuf_init(&call->body);
    wire_writer_init(&call->w, WIRE_XMLRPC, &call->body);
    xmlrpc_begin_call(&call->w, method);
    if (with_session) {
        xmlrpc_begin_param(&call->w);
        wire_string(&call->w, xc->session ? xc->session : "OpaqueRef:NULL");
        xmlrpc_end_param(&call->w);
    }
}

void
xclient_call_arg(struct xclient_call *call, const struct xtype *t, const void *value)
{
    xmlrpc_begin_param(&call->w);
    if (t->kind == XT_RECORD)
        xtype_value_encode(t, &value, &call->w); /* the record pointer itself */
    else
        xtype_value_encode(t, value, &call->w);
    xmlrpc_end_param(&call->w);
}

bool
xclient_call_finish(struct xclient_call *call, const struct xtype *t, void *result,
                    struct xerr **errp)
{
    xmlrpc_end_call(&call->w);
    bool bad = call->failed || call->w.overflow || !strbuf_ok(&call->body);
    struct xval *v = NULL;
    bool ok = !bad && post_call(call->xc, &call->body, &v, errp);
    strbuf_release(&call->body);
    if (bad)
        return xerr_internal(errp, "xclient: an argument could not be encoded");
    if (!ok)
        return false;
    if (t)
        ok = xtype_value_decode(t, v, result, "result", errp);
    xval_free(v);
    return ok;
}

bool
xclient_call_raw(struct xclient *xc, const char *method, const char *params_xml,
                 struct xval **out, struct xerr **errp)
{
    struct strbuf xml = STRBUF_INIT;
    struct wire_writer w;
    wire_writer_init(&w, WIRE_XMLRPC, &xml);
    xmlrpc_begin_call(&w, method);
    strbuf_puts(&xml, params_xml ? params_xml : "");
    xmlrpc_end_call(&w);
    if (!strbuf_ok(&xml)) {
        strbuf_release(&xml);
        return xerr_nomem(errp);
    }
    bool ok = post_call(xc, &xml, out, errp);
    strbuf_release(&xml);
    return ok;
}

bool
xclient_call_xval(struct xclient *xc, const char *method, bool with_session,
                  const struct xval *const *args, size_t n_args, struct xval **out,
                  struct xerr **errp)
{
    struct xclient_call call;
    xclient_call_begin(xc, &call, method, with_session);
    for (size_t i = 0; i < n_args; i++) {
        xmlrpc_begin_param(&call.w);
        wire_xval(&call.w, args[i]);
        xmlrpc_end_param(&call.w);
    }
    xmlrpc_end_call(&call.w);
    bool ok;
    if (call.w.overflow || !strbuf_ok(&call.body))
        ok = xerr_internal(errp, "xclient: an argument could not be encoded");
    else
        ok = post_call(xc, &call.body, out, errp);
    strbuf_release(&call.body);
    return ok;
}
