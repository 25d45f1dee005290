/* nbd/server.c - serving one connection, the socket transport, the listening socket.
 *
 * nbd_serve() runs negotiation then the request loop for one client over any transport;
 * nbd_serve_fd() supplies the socket one (full reads; sendmsg with MSG_NOSIGNAL so a
 * vanished client is an error, not a SIGPIPE). nbd_listen_unix() binds a unix socket,
 * replacing a stale socket file but never any other kind of file.
 * Facts: shared/spec/storage.md 3.
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

int
nbd_serve(const struct nbd_transport *t, const struct nbd_export *exp)
{
    struct nbd_conn c = {.t = t, .exp = exp};
    int rc = nbd_handshake(&c);
    if (rc == 0)
        rc = nbd_transmission(&c);
    else if (rc == 1)
        rc = 0;
    free(c.buf);
    return rc;
}

static int
fd_recv(void *opaque, void *buf, size_t len)
{
    int fd = *(int *)opaque;
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = recv(fd, p, len, MSG_WAITALL);
        if (n < 0 && errno == ENOTSOCK)
            n = read(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -ECONNRESET;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int
fd_send(void *opaque, const struct iovec *iov_in, int n_iov)
{
    int fd = *(int *)opaque;
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
    struct nbd_transport t = {.opaque = &fd, .recv = fd_recv, .send = fd_send};
    return nbd_serve(&t, exp);
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
