/* http/fetch.c - a one-shot HTTP/1.1 GET for the server's own downloads.
 *
 * URL -> (TLS?, host, port, path); connect to the first address that answers;
 * send "GET path" with Host and Connection: close; read the head (bounded by
 * HEAD_MAX); then the body, which RFC 9112 section 6.3 delimits by chunked
 * coding, by Content-Length, or by the close. A body is never buffered whole:
 * each piece goes to the caller as it arrives.
 */
#include "http/fetch.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define HEAD_MAX 16384
#define BUF_SIZE (256 * 1024)

struct conn {
    int fd;
    gnutls_session_t tls;
    gnutls_certificate_credentials_t cred;
    char *buf; /* read-ahead */
    size_t len, pos;
};

static int
say(char *why, size_t why_len, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
    return rc;
}

struct url {
    bool tls;
    char host[256];
    char port[8];
    const char *path;
};

static int
url_parse(const char *s, struct url *u)
{
    const char *rest;
    if (strncasecmp(s, "http://", 7) == 0) {
        u->tls = false;
        rest = s + 7;
    } else if (strncasecmp(s, "https://", 8) == 0) {
        u->tls = true;
        rest = s + 8;
    } else {
        return -EINVAL;
    }
    size_t hl = strcspn(rest, "/?#");
    const char *hp = rest, *colon = NULL;
    if (memchr(hp, '@', hl))
        return -EINVAL; /* credentials in URLs are not sent anywhere */
    if (hl > 0 && hp[0] == '[') { /* [v6]:port */
        const char *close = memchr(hp, ']', hl);
        if (!close)
            return -EINVAL;
        if ((size_t)(close - hp - 1) >= sizeof(u->host))
            return -EINVAL;
        memcpy(u->host, hp + 1, (size_t)(close - hp - 1));
        u->host[close - hp - 1] = '\0';
        colon = close + 1 < hp + hl && close[1] == ':' ? close + 1 : NULL;
    } else {
        colon = memchr(hp, ':', hl);
        size_t n = colon ? (size_t)(colon - hp) : hl;
        if (n == 0 || n >= sizeof(u->host))
            return -EINVAL;
        memcpy(u->host, hp, n);
        u->host[n] = '\0';
    }
    size_t pl = colon ? (size_t)(hp + hl - colon - 1) : 0;
    if (colon && (pl == 0 || pl >= sizeof(u->port) || strspn(colon + 1, "0123456789") < pl))
        return -EINVAL;
    if (colon) {
        memcpy(u->port, colon + 1, pl);
        u->port[pl] = '\0';
    } else {
        snprintf(u->port, sizeof(u->port), "%s", u->tls ? "443" : "80");
    }
    u->path = rest[hl] == '/' || rest[hl] == '?' ? rest + hl : "/";
    if (strpbrk(u->path, " \r\n"))
        return -EINVAL;
    return u->host[0] ? 0 : -EINVAL;
}

static int
conn_open(struct conn *c, const struct url *u, int timeout_ms, char *why, size_t why_len)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int g = getaddrinfo(u->host, u->port, &hints, &res);
    if (g != 0)
        return say(why, why_len, -EHOSTUNREACH, "cannot resolve %s: %s", u->host, gai_strerror(g));
    int err = -EHOSTUNREACH;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    for (struct addrinfo *ai = res; ai && c->fd < 0; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            c->fd = fd;
        else {
            err = -errno;
            close(fd);
        }
    }
    freeaddrinfo(res);
    if (c->fd < 0)
        return say(why, why_len, err, "cannot connect to %s:%s: %s", u->host, u->port,
                   strerror(-err));
    if (!u->tls)
        return 0;
    int rc = gnutls_certificate_allocate_credentials(&c->cred);
    if (rc >= 0 && (rc = gnutls_certificate_set_x509_system_trust(c->cred)) >= 0)
        rc = gnutls_init(&c->tls, GNUTLS_CLIENT);
    if (rc >= 0) {
        gnutls_set_default_priority(c->tls);
        gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, c->cred);
        gnutls_server_name_set(c->tls, GNUTLS_NAME_DNS, u->host, strlen(u->host));
        gnutls_session_set_verify_cert(c->tls, u->host, 0);
        gnutls_transport_set_int(c->tls, c->fd);
        do
            rc = gnutls_handshake(c->tls);
        while (rc < 0 && !gnutls_error_is_fatal(rc));
    }
    return rc < 0 ? say(why, why_len, -EPROTO, "TLS with %s failed: %s", u->host,
                        gnutls_strerror(rc))
                  : 0;
}

static void
conn_close(struct conn *c)
{
    if (c->tls) {
        gnutls_bye(c->tls, GNUTLS_SHUT_WR);
        gnutls_deinit(c->tls);
    }
    if (c->cred)
        gnutls_certificate_free_credentials(c->cred);
    if (c->fd >= 0)
        close(c->fd);
    free(c->buf);
}

static int
conn_send(struct conn *c, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = c->tls ? gnutls_record_send(c->tls, p, n) : send(c->fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && (c->tls ? w == GNUTLS_E_INTERRUPTED || w == GNUTLS_E_AGAIN : errno == EINTR))
            continue;
        if (w <= 0)
            return c->tls ? -EPIPE : (errno == EAGAIN ? -ETIMEDOUT : -errno);
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Refills the read-ahead: > 0 bytes, 0 at EOF, or -errno. */
static ssize_t
conn_fill(struct conn *c)
{
    if (c->pos < c->len)
        return (ssize_t)(c->len - c->pos);
    for (;;) {
        ssize_t r = c->tls ? gnutls_record_recv(c->tls, c->buf, BUF_SIZE)
                           : recv(c->fd, c->buf, BUF_SIZE, 0);
        if (r >= 0) {
            c->pos = 0;
            c->len = (size_t)r;
            return r;
        }
        if (c->tls ? r == GNUTLS_E_INTERRUPTED : errno == EINTR)
            continue;
        if (c->tls)
            return r == GNUTLS_E_PREMATURE_TERMINATION ? 0
                   : r == GNUTLS_E_AGAIN               ? -ETIMEDOUT
                                                       : -EPROTO;
        return errno == EAGAIN ? -ETIMEDOUT : -errno;
    }
}

/* A line of at most @cap - 1 bytes, without its CRLF. */
static int
conn_line(struct conn *c, char *line, size_t cap)
{
    size_t n = 0;
    for (;;) {
        ssize_t r = conn_fill(c);
        if (r <= 0)
            return r == 0 ? -EPIPE : (int)r;
        char ch = c->buf[c->pos++];
        if (ch == '\n')
            break;
        if (n + 1 >= cap)
            return -EPROTO;
        if (ch != '\r')
            line[n++] = ch;
    }
    line[n] = '\0';
    return 0;
}

/* Hands @left bytes (or everything to EOF when @to_eof) to @fn. */
static int
body_part(struct conn *c, uint64_t left, bool to_eof, http_fetch_body_fn *fn, void *opaque)
{
    while (to_eof || left > 0) {
        ssize_t r = conn_fill(c);
        if (r == 0 && to_eof)
            return 0;
        if (r <= 0)
            return r == 0 ? -EPIPE : (int)r;
        size_t n = (size_t)r;
        if (!to_eof && n > left)
            n = (size_t)left;
        int rc = fn(opaque, c->buf + c->pos, n);
        if (rc < 0)
            return rc;
        c->pos += n;
        left -= to_eof ? 0 : n;
    }
    return 0;
}

static int
read_body(struct conn *c, int64_t length, bool chunked, http_fetch_body_fn *fn, void *opaque)
{
    if (!chunked)
        return body_part(c, length < 0 ? 0 : (uint64_t)length, length < 0, fn, opaque);
    char line[256];
    for (;;) {
        int rc = conn_line(c, line, sizeof(line));
        if (rc < 0)
            return rc;
        char *end;
        unsigned long long n = strtoull(line, &end, 16);
        if (end == line)
            return -EPROTO;
        if (n == 0)
            return 0; /* trailers, if any, mean nothing here */
        if ((rc = body_part(c, n, false, fn, opaque)) < 0 ||
            (rc = conn_line(c, line, sizeof(line))) < 0)
            return rc;
    }
}

int
http_fetch(const char *url, int timeout_ms, http_fetch_body_fn *fn, void *opaque, char *why,
           size_t why_len)
{
    struct url u;
    if (why_len)
        why[0] = '\0';
    if (url_parse(url, &u) < 0)
        return say(why, why_len, -EINVAL, "not an http(s)://host[:port]/path URL");
    struct conn c = {.fd = -1};
    if (!(c.buf = malloc(BUF_SIZE)))
        return say(why, why_len, -ENOMEM, "out of memory");
    int rc = conn_open(&c, &u, timeout_ms, why, why_len);
    char *req = NULL;
    if (rc == 0 && asprintf(&req, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: vesseld\r\n"
                                  "Connection: close\r\n\r\n",
                            u.path, u.host) < 0)
        rc = say(why, why_len, -ENOMEM, "out of memory");
    if (rc == 0 && (rc = conn_send(&c, req, strlen(req))) < 0)
        say(why, why_len, rc, "cannot send the request: %s", strerror(-rc));
    free(req);
    char line[HEAD_MAX];
    unsigned status = 0;
    int64_t length = -1;
    bool chunked = false;
    if (rc == 0 && (rc = conn_line(&c, line, sizeof(line))) == 0 &&
        sscanf(line, "HTTP/%*d.%*d %u", &status) != 1)
        rc = -EPROTO;
    for (size_t total = 0; rc == 0;) {
        if ((rc = conn_line(&c, line, sizeof(line))) < 0 || line[0] == '\0')
            break;
        if ((total += strlen(line)) > HEAD_MAX)
            rc = -EPROTO;
        else if (strncasecmp(line, "Content-Length:", 15) == 0)
            length = strtoll(line + 15, NULL, 10);
        else if (strncasecmp(line, "Transfer-Encoding:", 18) == 0)
            chunked = strcasestr(line + 18, "chunked") != NULL;
    }
    if (rc < 0 && !why[0])
        say(why, why_len, rc, "no valid HTTP reply from %s", u.host);
    else if (rc == 0 && status != 200)
        rc = say(why, why_len, -EPROTO, "%s answered HTTP %u", u.host, status);
    else if (rc == 0 && (rc = read_body(&c, length, chunked, fn, opaque)) < 0 && rc != -ECANCELED)
        say(why, why_len, rc, "the download from %s stopped: %s", u.host, strerror(-rc));
    conn_close(&c);
    return rc;
}
