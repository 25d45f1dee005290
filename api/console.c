/* api/console.c - HTTP CONNECT (or GET with Upgrade) on a console's location.
 *
 * A GET with "Upgrade: websocket" gets the WebSocket handshake (RFC 6455
 * 4.2.2: Sec-WebSocket-Accept, and the "binary" subprotocol when offered, as
 * noVNC asks) and the same tunnel inside binary frames (http/websocket.c), so
 * a browser can reach the consoles. A WebSocket authenticated by a cookie
 * must come from this host's own origin (a page elsewhere could otherwise
 * open it with the user's cookie: cross-site WebSocket hijacking); one with
 * session_id in its URL proves its own right.
 *
 * console.location is https://<host>/console?ref=<console ref>; a client
 * connects with its session as the session_id query parameter or cookie
 * (xapi's doc/content/xen-api/wire-protocol.md). After checking the session and its role (vm-operator, as
 * xapi's http/connect_console), the connection becomes a tunnel:
 *  - rfb: bytes both ways between the client and the domain's VNC socket;
 *  - vt100: the last 64 KiB of the serial console first, then live output,
 *    and the client's keystrokes to the guest (xenops console calls).
 * A tunnel runs on a thread of the HTTP server for its whole life.
 *
 * vt100 output reaches a reader through a buffer of its own: the guest's
 * supervisor thread, which also writes the console log and feeds every
 * other reader, only appends to it (never a socket call that could block),
 * and the tunnel's thread sends from it as the client takes the bytes.
 * Invariants:
 *  (1) vt100_output() never blocks on a client: it copies or drops;
 *  (2) a reader whose buffer would pass CONSOLE_READER_MAX_BYTES is dropped
 *      (its connection shut down, its subscription ended by its own
 *      thread): a reader that does not read costs at most that much memory
 *      and never slows the guest, its log or the other readers.
 */
#include "api/console.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "api/domains.h"
#include "common/log.h"
#include "db/db.h"
#include "rpc/session.h"
#include "http/websocket.h"
#include "xenops/xenops.h"

/* What one vt100 reader may have waiting before it is dropped (invariant 2):
 * a screenful is a few KiB, so this is minutes of a chatty guest's output. */
#define CONSOLE_READER_MAX_BYTES (1u << 20)
#define CONSOLE_SOCKET_SNDBUF (64 * 1024)

struct tunnel {
    struct server *srv;
    char uuid[40];
    int peer_fd;  /* rfb: the VNC socket */
    pthread_mutex_t mu;
    int client_fd; /* vt100: the client's socket, -1 before the tunnel starts */
    /* vt100, under mu: output not yet sent, buf[head, head + len) */
    char *buf;
    size_t head, len, cap;
    bool dropped;  /* the reader fell behind: no more output is taken */
    int wake[2];   /* pipe: the supervisor tells the tunnel's thread "more" */
};

static bool
write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && (errno == EINTR || errno == EAGAIN)) {
            struct pollfd pw = {fd, POLLOUT, 0};
            poll(&pw, 1, 1000);
            continue;
        }
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* ------------------------------------------------------------------ rfb */

static void
rfb_tunnel(void *opaque, int fd)
{
    struct tunnel *t = opaque;
    char buf[16384];
    struct pollfd p[2] = {{fd, POLLIN, 0}, {t->peer_fd, POLLIN, 0}};
    while (fd >= 0 && poll(p, 2, -1) > 0) {
        for (int i = 0; i < 2; i++) {
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t n = read(p[i].fd, buf, sizeof(buf));
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (n <= 0 || !write_all(p[1 - i].fd, buf, (size_t)n))
                goto done;
        }
    }
done:
    close(t->peer_fd);
    free(t);
}

/* ------------------------------------------------------------------ vt100 */

/* Appends to the reader's buffer; t->mu held. false: it would pass the
 * bound (or memory ran out), and the reader is to be dropped. */
static bool
vt100_buffer_put(struct tunnel *t, const char *data, size_t len)
{
    if (len > CONSOLE_READER_MAX_BYTES - t->len)
        return false;
    if (t->head + t->len + len > t->cap) {
        if (t->head > 0) { /* slide the unsent bytes to the front first */
            memmove(t->buf, t->buf + t->head, t->len);
            t->head = 0;
        }
        if (t->len + len > t->cap) {
            size_t cap = t->cap ? t->cap : 16384;
            while (cap < t->len + len)
                cap *= 2;
            char *grown = realloc(t->buf, cap);
            if (!grown)
                return false;
            t->buf = grown;
            t->cap = cap;
        }
    }
    memcpy(t->buf + t->head + t->len, data, len);
    t->len += len;
    return true;
}

/* On the guest's supervisor thread, under its console lock: copies, never
 * blocks (invariant 1). */
static void
vt100_output(void *opaque, const char *data, size_t len)
{
    struct tunnel *t = opaque;
    bool wake = false;
    pthread_mutex_lock(&t->mu);
    if (t->dropped) {
        /* nothing: its thread is on its way out */
    } else if (vt100_buffer_put(t, data, len)) {
        wake = t->len == len; /* it was empty: the thread polls for input only */
    } else {
        t->dropped = wake = true;
        /* the client sees its connection end; the tunnel's thread wakes up,
         * logs, and unsubscribes (which is not allowed from here) */
        if (t->client_fd >= 0)
            shutdown(t->client_fd, SHUT_RDWR);
    }
    pthread_mutex_unlock(&t->mu);
    if (wake) {
        char one = 1;
        ssize_t ignored = write(t->wake[1], &one, 1); /* full pipe: a wake-up is pending */
        (void)ignored;
    }
}

/* Sends what the client's socket takes now; false when it is gone. */
static bool
vt100_flush(struct tunnel *t, int fd)
{
    pthread_mutex_lock(&t->mu);
    bool ok = true;
    while (t->len > 0) {
        ssize_t n = send(fd, t->buf + t->head, t->len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            ok = false;
            break;
        }
        t->head += (size_t)n;
        t->len -= (size_t)n;
    }
    if (t->len == 0)
        t->head = 0;
    pthread_mutex_unlock(&t->mu);
    return ok;
}

/* The tunnel's loop: output from the buffer when the client takes it,
 * keystrokes to the guest, until the client leaves or is dropped. */
static void
vt100_pump(struct tunnel *t, struct xenops *x, int fd)
{
    char buf[1024];
    for (;;) {
        pthread_mutex_lock(&t->mu);
        bool pending = t->len > 0, dropped = t->dropped;
        pthread_mutex_unlock(&t->mu);
        if (dropped)
            return;
        struct pollfd p[2] = {{fd, (short)(POLLIN | (pending ? POLLOUT : 0)), 0},
                              {t->wake[0], POLLIN, 0}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        if (p[1].revents & POLLIN) {
            while (read(t->wake[0], buf, sizeof(buf)) > 0) {
            }
        }
        if ((p[0].revents & POLLOUT) && !vt100_flush(t, fd))
            return;
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                continue;
            if (n <= 0)
                return;
            xenops_console_write(x, t->uuid, buf, (size_t)n);
        }
    }
}

static void
vt100_tunnel(void *opaque, int fd)
{
    struct tunnel *t = opaque;
    struct xenops *x = domains_xenops(t->srv);
    uint64_t sub = 0;
    bool subscribed = false;
    if (fd >= 0 && x && pipe2(t->wake, O_CLOEXEC | O_NONBLOCK) == 0) {
        /* The kernel's send buffer would otherwise grow (autotuning) to
         * megabytes that invariant 2 does not count: keep it small, the
         * reader's backlog lives in t->buf. */
        http_tunnel_set_sndbuf(fd, CONSOLE_SOCKET_SNDBUF);
        pthread_mutex_lock(&t->mu);
        t->client_fd = fd;
        pthread_mutex_unlock(&t->mu);
        /* the replay comes as the first chunk, atomically with the subscription */
        subscribed = xenops_console_subscribe_replay(x, t->uuid, vt100_output, t, &sub) == 0;
        if (subscribed)
            vt100_pump(t, x, fd);
    }
    if (subscribed)
        xenops_console_unsubscribe(x, t->uuid, sub); /* vt100_output no longer runs */
    if (t->dropped)
        log_warn("console.reader_dropped", "vm=%s backlog_bytes=%zu limit_bytes=%u", t->uuid,
                 t->len, CONSOLE_READER_MAX_BYTES);
    if (t->wake[0] >= 0) {
        close(t->wake[0]);
        close(t->wake[1]);
    }
    pthread_mutex_destroy(&t->mu);
    free(t->buf);
    free(t);
}

/* ------------------------------------------------------------------ WebSocket */

static void reply_text(struct http_request *req, unsigned status, const char *text);

struct ws_wrap {
    http_tunnel_fn *fn;
    void *opaque;
};

static void
ws_tunnel(void *opaque, int fd)
{
    struct ws_wrap *w = opaque;
    ws_bridge_run(fd, NULL, w->fn, w->opaque);
    free(w);
}

/* Whether @origin ("scheme://host[:port]") names the host the client asked
 * for in its Host header. */
static bool
same_origin(const char *origin, const char *host)
{
    const char *sep = origin ? strstr(origin, "://") : NULL;
    return sep && host && strcasecmp(sep + 3, host) == 0;
}

/* Checks a WebSocket handshake; on success @accept holds the answer's
 * Sec-WebSocket-Accept value. Otherwise answers @req and returns false. */
static bool
ws_handshake_check(struct http_request *req, bool cookie_session, char accept[29])
{
    if (strcmp(http_request_method(req), "GET") != 0) {
        reply_text(req, 405, "console: a WebSocket handshake is a GET\n");
        return false;
    }
    const char *version = http_request_header(req, "Sec-WebSocket-Version");
    if (!version || strcmp(version, "13") != 0) {
        static const char *const hdr[] = {"Sec-WebSocket-Version: 13"};
        static const char msg[] = "console: WebSocket version 13 only\n";
        http_reply_with_headers(req, 426, "text/plain", hdr, 1, msg, sizeof(msg) - 1);
        return false;
    }
    if (!ws_accept_key(http_request_header(req, "Sec-WebSocket-Key"), accept)) {
        reply_text(req, 400, "console: bad Sec-WebSocket-Key\n");
        return false;
    }
    const char *origin = http_request_header(req, "Origin");
    if (cookie_session && origin && !same_origin(origin, http_request_header(req, "Host"))) {
        reply_text(req, 403, "console: a cookie session from another origin\n");
        return false;
    }
    return true;
}

static bool
is_websocket(struct http_request *req)
{
    const char *up = http_request_header(req, "Upgrade");
    return up && strcasecmp(up, "websocket") == 0;
}

/* ------------------------------------------------------------------ entry */

struct console_peek {
    char *vm;
    int protocol;
};

static void
peek_console(void *opaque, const void *rec)
{
    const struct xapi_console_record *c = rec;
    struct console_peek *p = opaque;
    p->vm = strdup(c->VM);
    p->protocol = (int)c->protocol;
}

static void
reply_text(struct http_request *req, unsigned status, const char *text)
{
    http_reply(req, status, "text/plain", text, strlen(text));
}

static int
connect_unix(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (fd < 0 || strlen(path) >= sizeof(a.sun_path)) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    memcpy(a.sun_path, path, strlen(path) + 1);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* The tunnel, in WebSocket frames when the client asked for them. */
static void
reply_tunnel(struct http_request *req, bool ws, const char *accept, http_tunnel_fn *fn,
             void *opaque)
{
    struct ws_wrap *w = ws ? malloc(sizeof(*w)) : NULL;
    if (!w) {
        if (ws) {
            fn(opaque, -1); /* releases @opaque on its one path */
            reply_text(req, 500, "console: out of memory\n");
            return;
        }
        http_reply_upgrade(req, fn, opaque);
        return;
    }
    *w = (struct ws_wrap){fn, opaque};
    char accept_hdr[64];
    snprintf(accept_hdr, sizeof(accept_hdr), "Sec-WebSocket-Accept: %s", accept);
    const char *headers[] = {accept_hdr, "Sec-WebSocket-Protocol: binary"};
    bool binary = ws_protocol_offered(http_request_header(req, "Sec-WebSocket-Protocol"), "binary");
    http_reply_upgrade_with_headers(req, headers, binary ? 2 : 1, ws_tunnel, w);
}

/* @fd, connected to domain @uuid's VNC socket, leads to that domain's device
 * model: the socket lives in qemu's own directory, where qemu (its own uid)
 * could have left a link to another socket we, root, may reach. The
 * kernel's word on the peer decides (SO_PEERCRED). Else @fd is closed, -1. */
static int
vnc_peer_checked(struct xenops *x, const char *uuid, int fd)
{
    struct xenops_stats st;
    struct ucred peer;
    socklen_t len = sizeof(peer);
    if (fd >= 0 && (xenops_domain_stats(x, uuid, &st) < 0 ||
                    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) < 0 ||
                    peer.pid != st.pid)) {
        log_warn("console.vnc_peer", "vm=%s: the VNC socket leads elsewhere", uuid);
        close(fd);
        return -1;
    }
    return fd;
}

bool
console_http_handle(struct server *srv, struct http_request *req)
{
    if (strcmp(http_request_path(req), "/console") != 0)
        return false;
    const char *method = http_request_method(req);
    if (strcmp(method, "CONNECT") != 0 && !http_request_header(req, "Upgrade")) {
        reply_text(req, 405, "console: use CONNECT or GET with Upgrade\n");
        return true;
    }
    const char *session = http_request_query(req, "session_id");
    bool cookie_session = !session;
    if (!session)
        session = http_request_cookie(req, "session_id");
    bool ws = is_websocket(req);
    char accept[29] = "";
    if (ws && !ws_handshake_check(req, cookie_session, accept))
        return true;
    struct session_info si = {0};
    if (!session || !session_check(srv, session, &si, NULL)) {
        reply_text(req, 401, "console: no valid session_id\n");
        return true;
    }
    bool allowed = si.superuser || si.role >= XR_VM_OPERATOR;
    session_info_release(&si);
    http_request_set_authenticated(req);
    if (!allowed) {
        reply_text(req, 403, "console: RBAC_PERMISSION_DENIED (vm-operator needed)\n");
        return true;
    }
    const char *ref = http_request_query(req, "ref");
    struct console_peek p = {NULL, 0};
    if (!ref || !db_with(srv->db, &xapi_class_console, ref, peek_console, &p, NULL)) {
        reply_text(req, 404, "console: no such console\n");
        return true;
    }
    struct xapi_vm_record *vm = NULL;
    bool running = db_get(srv->db, &xapi_class_vm, p.vm, (void **)&vm, NULL) &&
                   (vm->power_state == XAPI_VM_POWER_STATE_RUNNING ||
                    vm->power_state == XAPI_VM_POWER_STATE_PAUSED);
    struct tunnel *t = running ? calloc(1, sizeof(*t)) : NULL;
    if (!t) {
        reply_text(req, running ? 500 : 404, "console: the VM is not running\n");
        goto out;
    }
    t->srv = srv;
    snprintf(t->uuid, sizeof(t->uuid), "%s", vm->uuid);
    t->client_fd = -1;
    t->wake[0] = t->wake[1] = -1;
    pthread_mutex_init(&t->mu, NULL);
    struct xenops *x = domains_xenops(srv);
    if (p.protocol == XAPI_CONSOLE_PROTOCOL_RFB) {
        char *path = NULL;
        t->peer_fd = x && xenops_console_vnc_path(x, vm->uuid, &path) == 0
                         ? vnc_peer_checked(x, vm->uuid, connect_unix(path))
                         : -1;
        free(path);
        if (t->peer_fd < 0) {
            pthread_mutex_destroy(&t->mu);
            free(t);
            reply_text(req, 503, "console: the VNC server cannot be reached\n");
            goto out;
        }
        log_info("console.connect", "vm=%s protocol=rfb websocket=%d", vm->uuid, ws);
        reply_tunnel(req, ws, accept, rfb_tunnel, t);
    } else {
        log_info("console.connect", "vm=%s protocol=vt100 websocket=%d", vm->uuid, ws);
        reply_tunnel(req, ws, accept, vt100_tunnel, t);
    }
out:
    xapi_vm_record_free(vm);
    free(p.vm);
    return true;
}
