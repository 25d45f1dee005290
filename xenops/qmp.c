/* xenops/qmp.c - the QMP wire: one JSON object per line over a unix socket.
 *
 * QEMU sends a greeting, then answers each command with {"return":..} or
 * {"error":..}, interleaved with {"event":..} lines at any time. Framing is
 * by newline (QEMU never puts a raw newline inside a JSON text it sends).
 * File descriptors ride along as SCM_RIGHTS on the command that uses them
 * (getfd). Facts: QEMU docs/interop/qmp-spec.txt (sections 2.2-2.4),
 * qapi/misc.json (getfd).
 */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "common/log.h"
#include "xenops/qmp.h"
#include "xenops/xenops_int.h"

int
qmp_connect(const char *path, int pidfd, uint64_t deadline_ms)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    for (;;) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -errno;
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            return fd;
        int err = errno;
        close(fd);
        if (err != ENOENT && err != ECONNREFUSED)
            return -err;
        if (pidfd >= 0) {
            struct pollfd p = {.fd = pidfd, .events = POLLIN};
            if (poll(&p, 1, 0) > 0)
                return -ECHILD;
        }
        if (xenops_now_ms() >= deadline_ms)
            return -ETIMEDOUT;
        poll(NULL, 0, 5);
    }
}

static char *
take_line(struct qmp_reader *r, char *nl)
{
    static __thread char line[65536];
    size_t n = (size_t)(nl - r->buf);
    memcpy(line, r->buf, n);
    line[n] = '\0';
    memmove(r->buf, nl + 1, r->len - n - 1);
    r->len -= n + 1;
    return line;
}

int
qmp_read_line(struct qmp_reader *r, int fd, char **line)
{
    *line = NULL;
    char *nl = memchr(r->buf, '\n', r->len);
    if (nl) {
        *line = take_line(r, nl);
        return 1;
    }
    if (r->len == sizeof(r->buf))
        return -EMSGSIZE;
    ssize_t n = read(fd, r->buf + r->len, sizeof(r->buf) - r->len);
    if (n == 0)
        return -EPIPE;
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -errno;
    r->len += (size_t)n;
    nl = memchr(r->buf, '\n', r->len);
    if (!nl)
        return 0;
    *line = take_line(r, nl);
    return 1;
}

int
qmp_read_line_wait(struct qmp_reader *r, int fd, char **line, unsigned timeout_ms)
{
    uint64_t end = xenops_now_ms() + timeout_ms;
    for (;;) {
        if (memchr(r->buf, '\n', r->len))
            return qmp_read_line(r, fd, line);
        uint64_t now = xenops_now_ms();
        if (now >= end)
            return -ETIMEDOUT;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int pr = poll(&p, 1, (int)(end - now));
        if (pr < 0 && errno != EINTR)
            return -errno;
        if (pr <= 0)
            continue;
        int rc = qmp_read_line(r, fd, line);
        if (rc != 0)
            return rc;
    }
}

int
qmp_send(int fd, json_t *cmd, int pass_fd)
{
    char *s = json_dumps(cmd, JSON_COMPACT);
    if (!s)
        return -ENOMEM;
    size_t len = strlen(s);
    s[len++] = '\n'; /* replaces the NUL: json_dumps gave len+1 bytes */
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct iovec iov = {.iov_base = s, .iov_len = len};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (pass_fd >= 0) {
        memset(&u, 0, sizeof(u));
        msg.msg_control = u.buf;
        msg.msg_controllen = sizeof(u.buf);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
    }
    int rc = 0;
    size_t off = 0;
    while (off < len) {
        iov.iov_base = s + off;
        iov.iov_len = len - off;
        ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) { /* the socket is non-blocking */
            poll(&(struct pollfd){.fd = fd, .events = POLLOUT}, 1, 1000);
            continue;
        }
        if (n < 0) {
            rc = -errno;
            break;
        }
        off += (size_t)n;
        msg.msg_control = NULL; /* the fd went with the first bytes */
        msg.msg_controllen = 0;
    }
    free(s);
    return rc;
}

/* Under QEMU before 10.0 (Debian 12's is 7.2) some guests live-migrated
 * while they receive network traffic arrive with their virtio-net state
 * corrupted (docs/guests.md, "A QEMU 7.2 defect"): said once, from the
 * first greeting that shows such a version. */
static void
warn_if_old(const char *greeting)
{
    static atomic_bool said;
    if (atomic_load(&said)) /* one parse per greeting is a start's cost */
        return;
    json_t *g = json_loads(greeting, 0, NULL);
    json_t *v = json_object_get(json_object_get(json_object_get(g, "QMP"), "version"), "qemu");
    json_int_t major = json_integer_value(json_object_get(v, "major"));
    json_int_t minor = json_integer_value(json_object_get(v, "minor"));
    if (major > 0 && major < 10 && !atomic_exchange(&said, true))
        log_warn("xenops.qemu_version",
                 "version=%lld.%lld reason=\"live migration of a guest that receives network "
                 "traffic can corrupt its virtio-net state before QEMU 10.0: install QEMU from "
                 "bookworm-backports (scripts/install-deps.sh)\"",
                 (long long)major, (long long)minor);
    json_decref(g);
}

int
qmp_handshake(struct qmp_reader *r, int fd, unsigned timeout_ms)
{
    char *line;
    int rc = qmp_read_line_wait(r, fd, &line, timeout_ms);
    if (rc < 0)
        return rc;
    if (!strstr(line, "\"QMP\""))
        return -EPROTO;
    warn_if_old(line);
    json_t *cmd = json_pack("{s:s}", "execute", "qmp_capabilities");
    rc = cmd ? qmp_send(fd, cmd, -1) : -ENOMEM;
    json_decref(cmd);
    while (rc == 0) {
        if ((rc = qmp_read_line_wait(r, fd, &line, timeout_ms)) < 0)
            return rc;
        if (strstr(line, "\"return\""))
            return 0;
        if (strstr(line, "\"error\""))
            return -EPROTO;
        rc = 0; /* an event before the reply: skip */
    }
    return rc;
}
