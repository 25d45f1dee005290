/* storage/serve_ctl.c - vesseld's side of the disk servers' control socket. */
#include "storage/serve_ctl.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_FDS 64

int
serve_ctl_connect(const char *path, int *fd)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -errno;
    /* A pause waits for the server's in-flight requests and a flush. */
    struct timeval tv = {60, 0};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int rc = -errno;
        close(s);
        return rc;
    }
    *fd = s;
    return 0;
}

static int
send_line(int fd, const char *line, const int *fds, unsigned n_fds)
{
    char buf[256];
    int len = snprintf(buf, sizeof(buf), "%s\n", line);
    if (len < 0 || (size_t)len >= sizeof(buf) || n_fds > MAX_FDS)
        return -EINVAL;
    struct iovec iov = {buf, (size_t)len};
    union {
        char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
        struct cmsghdr align;
    } control;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (n_fds) {
        memset(&control, 0, sizeof(control));
        msg.msg_control = control.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * n_fds);
    }
    ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n < 0)
        return -errno;
    return n == len ? 0 : -EIO; /* one short line: a unix socket takes it whole */
}

static int
read_line(int fd, char *reply, size_t len)
{
    size_t at = 0;
    for (;;) {
        char ch;
        ssize_t n = read(fd, &ch, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
        if (n == 0)
            return -EPIPE;
        if (ch == '\n')
            break;
        if (at + 1 < len)
            reply[at++] = ch;
    }
    reply[at] = '\0';
    return 0;
}

int
serve_ctl_command(int fd, const char *line, const int *fds, unsigned n_fds, char *reply,
                  size_t len)
{
    char local[256];
    if (!reply || len == 0) {
        reply = local;
        len = sizeof(local);
    }
    reply[0] = '\0';
    int rc = send_line(fd, line, fds, n_fds);
    if (rc == 0)
        rc = read_line(fd, reply, len);
    if (rc < 0)
        return rc;
    if (strcmp(reply, "ok") == 0 || strncmp(reply, "ok ", 3) == 0)
        return 0;
    return strncmp(reply, "error", 5) == 0 ? -EIO : -EPROTO;
}
