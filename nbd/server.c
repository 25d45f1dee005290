/* nbd/server.c - serving one connection, the socket transport, the listening socket.
 *
 * nbd_serve() runs negotiation then the request loop for one client over any transport;
 * nbd_serve_fd() supplies the socket one (buffered reads, see fd_recv; sendmsg with
 * MSG_NOSIGNAL so a vanished client is an error, not a SIGPIPE). nbd_listen_unix() binds a unix socket,
 * replacing a stale socket file but never any other kind of file.
 * Facts: the NBD protocol (NetworkBlockDevice/nbd doc/proto.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "nbd/conn.h"
#include "nbd/proto.h"

static int
serve(const struct nbd_transport *t, const struct nbd_server *srv, bool fixed)
{
    struct nbd_conn c = {.t = t, .srv = srv, .fixed = fixed};
    int rc = nbd_handshake(&c);
    if (rc == 0 && t->negotiated)
        t->negotiated(t->opaque);
    if (rc == 0)
        rc = nbd_transmission(&c);
    else if (rc == 1)
        rc = 0;
    if (c.exp && srv->close)
        srv->close(srv->opaque, c.exp);
    free(c.buf);
    return rc;
}

int
nbd_serve_server(const struct nbd_transport *t, const struct nbd_server *srv)
{
    return serve(t, srv, false);
}

/* The one export of nbd_serve(): the default name "" or its own. */
static int
fixed_open(void *opaque, const char *name, bool tls, const struct nbd_export **out)
{
    (void)tls;
    const struct nbd_export *exp = opaque;
    if (name[0] && strcmp(name, exp->name ? exp->name : "") != 0)
        return -ENOENT;
    *out = exp;
    return 0;
}

int
nbd_serve(const struct nbd_transport *t, const struct nbd_export *exp)
{
    struct nbd_server srv = {.open = fixed_open, .opaque = (void *)exp};
    return serve(t, &srv, true);
}

/* The socket transport. Received bytes are buffered: one recv() takes whatever the client
 * has sent (up to FD_RBUF bytes), so a client with many requests in flight costs one
 * system call per batch of headers, not per header; large payloads bypass the buffer.
 * With one serving thread, replies are corked too: small ones are appended to wbuf, which
 * is sent in one sendmsg when it fills and, always, before the transport waits for the
 * client (recv on an empty buffer) and when serving ends. So a reply is never held back
 * while the client waits for it. With several threads (nbd_export.n_workers > 1) a reply
 * goes out at once: another thread may be waiting in recv. */
#define FD_RBUF (16u * 1024)
#define FD_WBUF (64u * 1024)

struct fd_transport {
    int fd;
    bool cork;
    size_t rpos, rlen;         /* unread bytes: rbuf[rpos, rlen) */
    size_t wlen;               /* unsent bytes: wbuf[0, wlen) */
    uint8_t rbuf[FD_RBUF];
    uint8_t wbuf[FD_WBUF];
};

static int fd_send_now(int fd, const struct iovec *iov_in, int n_iov);

static int
fd_flush(struct fd_transport *ft)
{
    if (ft->wlen == 0)
        return 0;
    struct iovec iov = {ft->wbuf, ft->wlen};
    ft->wlen = 0;
    return fd_send_now(ft->fd, &iov, 1);
}

/* One recv() of at most @len bytes (at least 1), or -errno; -ECONNRESET at EOF. */
static ssize_t
fd_recv_some(int fd, void *buf, size_t len, int flags)
{
    for (;;) {
        ssize_t n = recv(fd, buf, len, flags);
        if (n < 0 && errno == ENOTSOCK)
            n = read(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        return n == 0 ? -ECONNRESET : n;
    }
}

static int
fd_recv(void *opaque, void *buf, size_t len)
{
    struct fd_transport *ft = opaque;
    uint8_t *p = buf;
    size_t have = ft->rlen - ft->rpos;
    size_t take = have < len ? have : len;
    memcpy(p, ft->rbuf + ft->rpos, take);
    ft->rpos += take;
    p += take;
    len -= take;
    if (len > 0) {
        int frc = fd_flush(ft);
        if (frc < 0)
            return frc;
    }
    while (len >= FD_RBUF) {           /* a large payload: straight into the caller's buffer */
        ssize_t n = fd_recv_some(ft->fd, p, len, MSG_WAITALL);
        if (n < 0)
            return (int)n;
        p += n;
        len -= (size_t)n;
    }
    while (len > 0) {
        ssize_t n = fd_recv_some(ft->fd, ft->rbuf, FD_RBUF, 0);
        if (n < 0)
            return (int)n;
        ft->rpos = 0;
        ft->rlen = (size_t)n;
        take = (size_t)n < len ? (size_t)n : len;
        memcpy(p, ft->rbuf, take);
        ft->rpos = take;
        p += take;
        len -= take;
    }
    return 0;
}

static int
fd_send(void *opaque, const struct iovec *iov, int n_iov)
{
    struct fd_transport *ft = opaque;
    size_t total = 0;
    for (int i = 0; i < n_iov; i++)
        total += iov[i].iov_len;
    if (ft->cork && total <= FD_WBUF / 4) {
        if (ft->wlen + total > FD_WBUF) {
            int rc = fd_flush(ft);
            if (rc < 0)
                return rc;
        }
        for (int i = 0; i < n_iov; i++) {
            if (iov[i].iov_len)
                memcpy(ft->wbuf + ft->wlen, iov[i].iov_base, iov[i].iov_len);
            ft->wlen += iov[i].iov_len;
        }
        return 0;
    }
    int rc = fd_flush(ft);
    return rc < 0 ? rc : fd_send_now(ft->fd, iov, n_iov);
}

static int
fd_send_now(int fd, const struct iovec *iov_in, int n_iov)
{
    struct iovec iov[4];
    if (n_iov > 4)
        return -EINVAL;
    memcpy(iov, iov_in, sizeof(*iov) * (size_t)n_iov);
    struct iovec *v = iov;
    while (n_iov > 0) {
        struct msghdr m = {.msg_iov = v, .msg_iovlen = (size_t)n_iov};
        ssize_t n = sendmsg(fd, &m, MSG_NOSIGNAL);
        if (n < 0 && errno == ENOTSOCK)
            n = writev(fd, v, n_iov);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
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

int
nbd_serve_fd(int fd, const struct nbd_export *exp)
{
    struct fd_transport *ft = malloc(sizeof(*ft));
    if (!ft)
        return -ENOMEM;
    ft->fd = fd;
    ft->cork = exp->n_workers <= 1;
    ft->rpos = ft->rlen = ft->wlen = 0;
    struct nbd_transport t = {.opaque = ft, .recv = fd_recv, .send = fd_send};
    int rc = nbd_serve(&t, exp);
    int frc = fd_flush(ft);     /* replies to the last requests */
    free(ft);
    if (rc == 0 && frc < 0)
        rc = frc;
    return rc;
}

int
nbd_listen_unix(const char *path, int *out_fd)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return -EEXIST;
        unlink(path);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 16) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    *out_fd = fd;
    return 0;
}
