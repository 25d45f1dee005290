/* nbd/sock.c - the TCP transport with STARTTLS and a negotiation deadline (nbd/sock.h).
 *
 * Every wait is a poll() on the socket bounded by the deadline (negotiation) or by the
 * send timeout, so a silent client costs a thread only that long. GnuTLS reads and writes
 * the socket through pull/push functions of ours that use the same waits; its record
 * layer does the buffering once TLS is up. Facts: the NBD protocol (NetworkBlockDevice/nbd
 * doc/proto.md, "TLS support"); the GnuTLS manual ("Setting up the transport layer",
 * "Thread safety": one thread may send while another receives on a session).
 */
#include "nbd/sock.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct nbd_sock {
    struct nbd_transport t;
    int fd;
    gnutls_certificate_credentials_t cred;
    nbd_sock_tls_init_fn *init;
    gnutls_session_t tls;       /* NULL until STARTTLS */
    int64_t deadline_ms;        /* CLOCK_MONOTONIC; 0 once negotiated */
};

static int64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for @events: 0, -ETIMEDOUT, or -errno. @write: a send (its own timeout). */
static int
wait_fd(struct nbd_sock *s, short events, bool write)
{
    for (;;) {
        int timeout = -1;
        int64_t dl = __atomic_load_n(&s->deadline_ms, __ATOMIC_RELAXED);
        if (dl) {
            int64_t left = dl - now_ms();
            if (left <= 0)
                return -ETIMEDOUT;
            timeout = (int)left;
        }
        if (write && (timeout < 0 || timeout > NBD_SOCK_SEND_TIMEOUT_MS))
            timeout = NBD_SOCK_SEND_TIMEOUT_MS;
        struct pollfd p = {.fd = s->fd, .events = events};
        int n = poll(&p, 1, timeout);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -ETIMEDOUT;
        return 0;   /* readable, writable, or an error the next call reports */
    }
}

/* One read of at most @len bytes: >0, -ECONNRESET at EOF, -errno. */
static ssize_t
raw_read(struct nbd_sock *s, void *buf, size_t len)
{
    for (;;) {
        ssize_t n = recv(s->fd, buf, len, MSG_DONTWAIT);
        if (n > 0)
            return n;
        if (n == 0)
            return -ECONNRESET;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        int rc = wait_fd(s, POLLIN, false);
        if (rc < 0)
            return rc;
    }
}

/* One write of at most @len bytes: >0 or -errno. */
static ssize_t
raw_write(struct nbd_sock *s, const struct iovec *iov, int n_iov)
{
    for (;;) {
        struct msghdr m = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n_iov};
        ssize_t n = sendmsg(s->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        int rc = wait_fd(s, POLLOUT, true);
        if (rc < 0)
            return rc;
    }
}

/*==== GnuTLS's transport ====*/

static ssize_t
tls_pull(gnutls_transport_ptr_t p, void *buf, size_t len)
{
    struct nbd_sock *s = p;
    ssize_t n = raw_read(s, buf, len);
    if (n == -ECONNRESET)
        return 0;   /* EOF, as GnuTLS expects it */
    if (n < 0) {
        gnutls_transport_set_errno(s->tls, n == -ETIMEDOUT ? ETIMEDOUT : (int)-n);
        return -1;
    }
    return n;
}

static int
tls_pull_timeout(gnutls_transport_ptr_t p, unsigned int ms)
{
    struct nbd_sock *s = p;
    struct pollfd pf = {.fd = s->fd, .events = POLLIN};
    int n;
    do
        n = poll(&pf, 1, ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int)ms);
    while (n < 0 && errno == EINTR);
    return n;
}

static ssize_t
tls_push(gnutls_transport_ptr_t p, const giovec_t *iov, int n_iov)
{
    struct nbd_sock *s = p;
    ssize_t n = raw_write(s, (const struct iovec *)iov, n_iov);
    if (n < 0) {
        gnutls_transport_set_errno(s->tls, (int)-n);
        return -1;
    }
    return n;
}

/*==== The NBD transport ====*/

static int
tls_error(int grc)
{
    switch (grc) {
    case GNUTLS_E_PREMATURE_TERMINATION:
    case 0:
        return -ECONNRESET;
    case GNUTLS_E_PUSH_ERROR:
    case GNUTLS_E_PULL_ERROR:
        return -EIO;
    case GNUTLS_E_MEMORY_ERROR:
        return -ENOMEM;
    default:
        return -EPROTO;
    }
}

static int
sock_recv(void *opaque, void *buf, size_t len)
{
    struct nbd_sock *s = opaque;
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n;
        if (s->tls) {
            do
                n = gnutls_record_recv(s->tls, p, len);
            while (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED);
            if (n <= 0)
                return tls_error((int)n);
        } else {
            n = raw_read(s, p, len);
            if (n < 0)
                return (int)n;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int
tls_send_all(gnutls_session_t tls, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n = gnutls_record_send(tls, p, len);
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
            continue;
        if (n < 0)
            return tls_error((int)n);
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* TLS: the first record gathers the small pieces (a reply's header) with the start of the
 * payload, so that a header never costs a record of its own; the rest of the payload goes
 * to GnuTLS as it is, which cuts it into full records without copying it first. */
#define TLS_FIRST_RECORD 16384u

static int
tls_send_iov(struct nbd_sock *s, const struct iovec *iov, int n_iov)
{
    uint8_t first[TLS_FIRST_RECORD];
    size_t fill = 0;
    int i = 0;
    size_t skip = 0;    /* bytes of iov[i] already in @first */
    for (; i < n_iov; i++) {
        size_t room = sizeof(first) - fill;
        size_t take = iov[i].iov_len < room ? iov[i].iov_len : room;
        memcpy(first + fill, iov[i].iov_base, take);
        fill += take;
        if (take < iov[i].iov_len) {
            skip = take;
            break;
        }
    }
    int rc = fill ? tls_send_all(s->tls, first, fill) : 0;
    for (; rc == 0 && i < n_iov; i++, skip = 0)
        rc = tls_send_all(s->tls, (const uint8_t *)iov[i].iov_base + skip, iov[i].iov_len - skip);
    return rc;
}

static int
sock_send(void *opaque, const struct iovec *iov_in, int n_iov)
{
    struct nbd_sock *s = opaque;
    if (s->tls)
        return tls_send_iov(s, iov_in, n_iov);
    struct iovec iov[4];
    if (n_iov > 4)
        return -EINVAL;
    memcpy(iov, iov_in, sizeof(*iov) * (size_t)n_iov);
    struct iovec *v = iov;
    while (n_iov > 0) {
        ssize_t n = raw_write(s, v, n_iov);
        if (n < 0)
            return (int)n;
        while (n_iov > 0 && (size_t)n >= v->iov_len) {
            n -= (ssize_t)v->iov_len;
            v++;
            n_iov--;
        }
        if (n_iov > 0) {
            v->iov_base = (uint8_t *)v->iov_base + n;
            v->iov_len -= (size_t)n;
        }
    }
    return 0;
}

static int
sock_starttls(void *opaque)
{
    struct nbd_sock *s = opaque;
    gnutls_session_t tls;
    if (gnutls_init(&tls, GNUTLS_SERVER | GNUTLS_NO_SIGNAL) < 0)
        return -ENOMEM;
    s->tls = tls;
    int rc = gnutls_credentials_set(tls, GNUTLS_CRD_CERTIFICATE, s->cred);
    if (rc >= 0 && s->init)
        rc = s->init(tls);
    else if (rc >= 0)
        rc = gnutls_set_default_priority(tls);
    if (rc < 0)
        return -EPROTO;
    gnutls_certificate_server_set_request(tls, GNUTLS_CERT_IGNORE);
    gnutls_transport_set_ptr(tls, s);
    gnutls_transport_set_pull_function(tls, tls_pull);
    gnutls_transport_set_pull_timeout_function(tls, tls_pull_timeout);
    gnutls_transport_set_vec_push_function(tls, tls_push);
    do
        rc = gnutls_handshake(tls);
    while (rc < 0 && !gnutls_error_is_fatal(rc));
    return rc < 0 ? -EPROTO : 0;
}

static void
sock_negotiated(void *opaque)
{
    struct nbd_sock *s = opaque;
    __atomic_store_n(&s->deadline_ms, 0, __ATOMIC_RELAXED);
}

int
nbd_sock_new(int fd, gnutls_certificate_credentials_t cred, nbd_sock_tls_init_fn *init,
             unsigned negotiate_ms, struct nbd_sock **out)
{
    struct nbd_sock *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->fd = fd;
    s->cred = cred;
    s->init = init;
    s->deadline_ms = now_ms() + (negotiate_ms ? negotiate_ms : 1);
    s->t = (struct nbd_transport){.opaque = s,
                                  .recv = sock_recv,
                                  .send = sock_send,
                                  .starttls = cred ? sock_starttls : NULL,
                                  .negotiated = sock_negotiated};
    *out = s;
    return 0;
}

const struct nbd_transport *
nbd_sock_transport(struct nbd_sock *s)
{
    return &s->t;
}

bool
nbd_sock_tls(const struct nbd_sock *s)
{
    return s->tls != NULL;
}

void
nbd_sock_free(struct nbd_sock *s)
{
    if (!s)
        return;
    if (s->tls) {
        /* best effort: the client may be gone, and a stalled one must not hold us */
        __atomic_store_n(&s->deadline_ms, now_ms() + 1000, __ATOMIC_RELAXED);
        gnutls_bye(s->tls, GNUTLS_SHUT_WR);
        gnutls_deinit(s->tls);
    }
    free(s);
}
