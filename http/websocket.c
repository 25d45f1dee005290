/* http/websocket.c - WebSocket (RFC 6455) for the consoles: handshake key,
 * frame parser and writer, and a bridge to a plain byte stream.
 *
 * The consoles' tunnels (api/console.c) speak raw bytes on a socket. A browser
 * can only open a WebSocket, so ws_bridge_run() puts a framing layer between
 * the two: the tunnel callback gets one end of a socketpair and runs on a
 * thread of its own, unchanged; this thread reads frames from the client,
 * checks them, and writes their payload to the other end; bytes from the
 * tunnel go back as binary frames (noVNC's "binary" subprotocol, RFC 6455
 * 5.6). Message boundaries carry no meaning for RFB or a terminal, so
 * fragmented messages are streamed, never reassembled; text frames are
 * passed through as bytes (their UTF-8 is the terminal's business).
 *
 * Limits: a client frame's payload is at most max_payload bytes (1 MiB:
 * noVNC's largest client message is a clipboard paste), larger is closed
 * with 1009; the client's input buffer is bounded by it. Writes to the
 * client never block without bound: a client that accepts no byte for
 * send_timeout_ms is dropped, so a reader that stalls cannot pin the tunnel.
 */
#include "http/websocket.h"

#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/fileio.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" /* RFC 6455 1.3 */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void
base64_encode(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = b64[(v >> 18) & 63];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? b64[v & 63] : '=';
    }
    out[o] = '\0';
}

bool
ws_accept_key(const char *key, char out[29])
{
    /* 16 bytes in base64: 22 characters and "==" (4.1, item 7). */
    if (!key || strlen(key) != 24 || key[22] != '=' || key[23] != '=')
        return false;
    for (int i = 0; i < 22; i++)
        if (!strchr(b64, key[i]) || key[i] == '\0')
            return false;
    char joined[24 + sizeof(WS_GUID)];
    memcpy(joined, key, 24);
    memcpy(joined + 24, WS_GUID, sizeof(WS_GUID));
    uint8_t digest[20];
    if (gnutls_hash_fast(GNUTLS_DIG_SHA1, joined, strlen(joined), digest) < 0)
        return false;
    base64_encode(digest, sizeof(digest), out);
    return true;
}

bool
ws_protocol_offered(const char *offered, const char *proto)
{
    return offered && http_header_has_token(offered, proto);
}

ssize_t
ws_frame_parse(uint8_t *buf, size_t len, size_t max_payload, struct ws_frame *f)
{
    if (len < 2)
        return 0;
    uint8_t b0 = buf[0], b1 = buf[1];
    if (b0 & 0x70)
        return -EPROTO; /* RSV1-3: no extension was negotiated */
    uint8_t op = b0 & 0x0F;
    bool control = op & 0x8;
    if (op != WS_OP_CONTINUATION && op != WS_OP_TEXT && op != WS_OP_BINARY &&
        op != WS_OP_CLOSE && op != WS_OP_PING && op != WS_OP_PONG)
        return -EPROTO;
    if (!(b1 & 0x80))
        return -EPROTO; /* every client frame is masked */
    bool fin = b0 & 0x80;
    uint64_t plen = b1 & 0x7F;
    size_t at = 2;
    if (plen == 126) {
        if (len < 4)
            return 0;
        plen = (uint64_t)buf[2] << 8 | buf[3];
        at = 4;
    } else if (plen == 127) {
        if (len < 10)
            return 0;
        plen = 0;
        for (int i = 0; i < 8; i++)
            plen = plen << 8 | buf[2 + i];
        if (plen >> 63)
            return -EPROTO;
        at = 10;
    }
    if (control && (!fin || plen > 125))
        return -EPROTO;
    if (plen > max_payload)
        return -EMSGSIZE;
    if (len < at + 4)
        return 0;
    const uint8_t *mask = buf + at;
    at += 4;
    if (len - at < plen)
        return 0;
    uint8_t *p = buf + at;
    for (uint64_t i = 0; i < plen; i++)
        p[i] ^= mask[i & 3];
    *f = (struct ws_frame){.fin = fin, .opcode = op, .len = plen, .payload = p};
    return (ssize_t)(at + plen);
}

size_t
ws_frame_header(uint8_t hdr[10], uint8_t opcode, uint64_t len)
{
    hdr[0] = 0x80 | (opcode & 0x0F);
    if (len < 126) {
        hdr[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xFFFF) {
        hdr[1] = 126;
        hdr[2] = (uint8_t)(len >> 8);
        hdr[3] = (uint8_t)len;
        return 4;
    }
    hdr[1] = 127;
    for (int i = 0; i < 8; i++)
        hdr[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}

int
ws_sequence_next(struct ws_sequence *s, const struct ws_frame *f)
{
    if (f->opcode & 0x8)
        return 0; /* control frames may come anywhere */
    if (f->opcode == WS_OP_CONTINUATION) {
        if (!s->in_message)
            return -EPROTO;
    } else if (s->in_message) {
        return -EPROTO; /* a new message before the last one ended */
    }
    s->in_message = !f->fin;
    return 0;
}

/* ------------------------------------------------------------------ bridge */

static int64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sends all of @p within @timeout_ms of progress-free waiting in total; false
 * on an error or when the client took too long. */
static bool
send_timed(int fd, const uint8_t *p, size_t n, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            deadline = now_ms() + timeout_ms; /* progress: the clock starts again */
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int64_t left = deadline - now_ms();
            if (left <= 0)
                return false;
            struct pollfd pw = {fd, POLLOUT, 0};
            if (poll(&pw, 1, (int)left) < 0 && errno != EINTR)
                return false;
            continue;
        }
        return false;
    }
    return true;
}

static bool
send_frame(int fd, uint8_t opcode, const uint8_t *payload, size_t len, int timeout_ms)
{
    uint8_t hdr[10];
    size_t h = ws_frame_header(hdr, opcode, len);
    return send_timed(fd, hdr, h, timeout_ms) && (!len || send_timed(fd, payload, len, timeout_ms));
}

static void
send_close(int fd, uint16_t code, int timeout_ms)
{
    uint8_t p[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    (void)send_frame(fd, WS_OP_CLOSE, p, sizeof(p), timeout_ms);
}

struct inner_run {
    http_tunnel_fn *fn;
    void *opaque;
    int fd;
};

static void *
inner_main(void *arg)
{
    struct inner_run *r = arg;
    r->fn(r->opaque, r->fd);
    shutdown(r->fd, SHUT_RDWR); /* EOF for the bridge: the tunnel is done */
    return NULL;
}

/* Handles every whole frame in buf[0..*have); keeps a partial one at the
 * front. Returns 0 to go on, or the close code to end with (0 never). */
static int
consume_frames(int client, int inner, uint8_t *buf, size_t *have, size_t max_payload,
               struct ws_sequence *seq, int timeout_ms, bool *close_echoed)
{
    size_t off = 0;
    int end = 0;
    while (!end) {
        struct ws_frame f;
        ssize_t n = ws_frame_parse(buf + off, *have - off, max_payload, &f);
        if (n == 0)
            break;
        if (n == -EMSGSIZE) {
            end = WS_CLOSE_TOO_BIG;
            break;
        }
        if (n < 0 || ws_sequence_next(seq, &f) < 0) {
            end = WS_CLOSE_PROTOCOL_ERROR;
            break;
        }
        off += (size_t)n;
        switch (f.opcode) {
        case WS_OP_CONTINUATION:
        case WS_OP_TEXT:
        case WS_OP_BINARY:
            if (f.len && fileio_send_all(inner, f.payload, (size_t)f.len) < 0)
                end = WS_CLOSE_GOING_AWAY;
            break;
        case WS_OP_PING:
            if (!send_frame(client, WS_OP_PONG, f.payload, (size_t)f.len, timeout_ms))
                end = WS_CLOSE_GOING_AWAY;
            break;
        case WS_OP_PONG:
            break;
        case WS_OP_CLOSE:
            /* echo the client's status code (5.5.1), or none when it sent none */
            (void)send_frame(client, WS_OP_CLOSE, f.payload, f.len >= 2 ? 2 : 0, timeout_ms);
            *close_echoed = true;
            end = WS_CLOSE_NORMAL;
            break;
        }
    }
    memmove(buf, buf + off, *have - off);
    *have -= off;
    return end;
}

void
ws_bridge_run(int client_fd, const struct ws_bridge_limits *limits, http_tunnel_fn *inner,
              void *opaque)
{
    if (client_fd < 0) {
        inner(opaque, -1);
        return;
    }
    size_t max_payload = limits && limits->max_payload ? limits->max_payload : WS_MAX_PAYLOAD;
    int timeout_ms = limits && limits->send_timeout_ms ? limits->send_timeout_ms
                                                       : WS_SEND_TIMEOUT_MS;
    size_t cap = max_payload + 14; /* one whole frame: header, mask, payload */
    uint8_t *in = malloc(cap);
    int sp[2] = {-1, -1};
    pthread_t thread;
    struct inner_run run = {inner, opaque, -1};
    if (!in || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0) {
        free(in);
        send_close(client_fd, WS_CLOSE_GOING_AWAY, 1000);
        inner(opaque, -1);
        return;
    }
    run.fd = sp[1];
    if (pthread_create(&thread, NULL, inner_main, &run) != 0) {
        close(sp[0]);
        close(sp[1]);
        free(in);
        send_close(client_fd, WS_CLOSE_GOING_AWAY, 1000);
        inner(opaque, -1);
        return;
    }

    size_t have = 0;
    struct ws_sequence seq = {false};
    bool close_echoed = false;
    int end = 0;
    uint8_t out[16384];
    while (!end) {
        struct pollfd p[2] = {{client_fd, POLLIN, 0}, {sp[0], POLLIN, 0}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            end = WS_CLOSE_GOING_AWAY;
            break;
        }
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = recv(client_fd, in + have, cap - have, MSG_DONTWAIT);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                continue;
            if (n <= 0) {
                close_echoed = true; /* the client is gone: nobody to tell */
                end = WS_CLOSE_GOING_AWAY;
                break;
            }
            have += (size_t)n;
            end = consume_frames(client_fd, sp[0], in, &have, max_payload, &seq, timeout_ms,
                                 &close_echoed);
            if (!end && have == cap)
                end = WS_CLOSE_TOO_BIG; /* cannot happen with a bounded frame; be safe */
        }
        if (!end && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t n = read(sp[0], out, sizeof(out));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                end = WS_CLOSE_NORMAL; /* the tunnel ended */
            else if (!send_frame(client_fd, WS_OP_BINARY, out, (size_t)n, timeout_ms)) {
                close_echoed = true; /* a client that does not read gets no close either */
                end = WS_CLOSE_GOING_AWAY;
            }
        }
    }
    if (!close_echoed)
        send_close(client_fd, (uint16_t)end, 1000);
    shutdown(sp[0], SHUT_RDWR); /* the inner callback reads EOF and returns */
    pthread_join(thread, NULL);
    close(sp[0]);
    close(sp[1]);
    free(in);
}
