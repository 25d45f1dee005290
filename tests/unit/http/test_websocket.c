/* tests/unit/http/test_websocket.c - http/websocket.c: handshake key, frame
 * parser and writer, fragmentation rules, and the bridge over a socketpair.
 *
 * Frames are built here as a client builds them (masked). The bridge runs on
 * a thread with an inner tunnel that echoes its input upper-cased (or floods
 * its output, for the client that never reads). Expected values come from
 * RFC 6455 (the handshake example in 1.3, the frame examples in 5.7).
 * Debug with `meson test -C BUILD http-websocket -v`.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "http/websocket.h"

/* A masked client frame of @op with @payload into @out; returns its size. */
static size_t
client_frame(uint8_t *out, bool fin, uint8_t op, const void *payload, size_t len)
{
    static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t at = 0;
    out[at++] = (uint8_t)((fin ? 0x80 : 0) | op);
    if (len < 126) {
        out[at++] = (uint8_t)(0x80 | len);
    } else if (len <= 0xFFFF) {
        out[at++] = 0x80 | 126;
        out[at++] = (uint8_t)(len >> 8);
        out[at++] = (uint8_t)len;
    } else {
        out[at++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            out[at++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    memcpy(out + at, mask, 4);
    at += 4;
    for (size_t i = 0; i < len; i++)
        out[at + i] = ((const uint8_t *)payload)[i] ^ mask[i & 3];
    return at + len;
}

static void
accept_key_matches_rfc(void **state)
{
    (void)state;
    char out[29];
    assert_true(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out));
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_false(ws_accept_key("short", out));
    assert_false(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ=x", out));
    assert_false(ws_accept_key("dGhlIHNhbXBsZSBub25j\r\n==", out));
    assert_false(ws_accept_key(NULL, out));
    assert_true(ws_protocol_offered("base64, binary", "binary"));
    assert_false(ws_protocol_offered("base64", "binary"));
    assert_false(ws_protocol_offered(NULL, "binary"));
}

static void
parse_rfc_examples(void **state)
{
    (void)state;
    /* 5.7: a single-frame masked text message "Hello" */
    uint8_t hello[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    struct ws_frame f;
    for (size_t n = 0; n < sizeof(hello); n++)
        assert_int_equal(ws_frame_parse(hello, n, 1024, &f), 0); /* partial: need more */
    assert_int_equal(ws_frame_parse(hello, sizeof(hello), 1024, &f), sizeof(hello));
    assert_true(f.fin);
    assert_int_equal(f.opcode, WS_OP_TEXT);
    assert_int_equal(f.len, 5);
    assert_memory_equal(f.payload, "Hello", 5);
    /* the same unmasked (a server's frame) is refused from a client */
    uint8_t unmasked[] = {0x81, 0x05, 'H', 'e', 'l', 'l', 'o'};
    assert_int_equal(ws_frame_parse(unmasked, sizeof(unmasked), 1024, &f), -EPROTO);
}

static void
parse_lengths_and_limits(void **state)
{
    (void)state;
    static uint8_t buf[70000 + 14], payload[70000];
    memset(payload, 'x', sizeof(payload));
    struct ws_frame f;
    size_t n = client_frame(buf, true, WS_OP_BINARY, payload, 300); /* 16-bit length */
    assert_int_equal(ws_frame_parse(buf, n, 1024, &f), (ssize_t)n);
    assert_int_equal(f.len, 300);
    n = client_frame(buf, true, WS_OP_BINARY, payload, 70000); /* 64-bit length */
    assert_int_equal(ws_frame_parse(buf, n, 100000, &f), (ssize_t)n);
    assert_int_equal(f.len, 70000);
    assert_int_equal(ws_frame_parse(buf, n, 65536, &f), -EMSGSIZE);
    assert_int_equal(ws_frame_parse(buf, 10, 65536, &f), -EMSGSIZE); /* known from the head */
    uint8_t huge[] = {0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1};       /* top bit set */
    assert_int_equal(ws_frame_parse(huge, sizeof(huge), 1024, &f), -EPROTO);
    n = client_frame(buf, true, WS_OP_PING, payload, 126); /* control > 125 */
    assert_int_equal(ws_frame_parse(buf, n, 1024, &f), -EPROTO);
    n = client_frame(buf, false, WS_OP_PING, payload, 1); /* fragmented control */
    assert_int_equal(ws_frame_parse(buf, n, 1024, &f), -EPROTO);
    n = client_frame(buf, true, 0x3, payload, 1); /* reserved opcode */
    assert_int_equal(ws_frame_parse(buf, n, 1024, &f), -EPROTO);
    n = client_frame(buf, true, WS_OP_BINARY, payload, 1);
    buf[0] |= 0x40; /* RSV1 */
    assert_int_equal(ws_frame_parse(buf, n, 1024, &f), -EPROTO);
}

static void
header_writer(void **state)
{
    (void)state;
    uint8_t h[10];
    assert_int_equal(ws_frame_header(h, WS_OP_BINARY, 5), 2);
    assert_int_equal(h[0], 0x82);
    assert_int_equal(h[1], 5);
    assert_int_equal(ws_frame_header(h, WS_OP_BINARY, 256), 4); /* 5.7's 256-byte example */
    assert_int_equal(h[1], 126);
    assert_int_equal(h[2], 0x01);
    assert_int_equal(h[3], 0x00);
    assert_int_equal(ws_frame_header(h, WS_OP_BINARY, 65536), 10);
    assert_int_equal(h[1], 127);
    assert_int_equal(h[7], 0x01);
    assert_int_equal(h[8], 0x00);
}

static void
fragmentation_rules(void **state)
{
    (void)state;
    struct ws_sequence s = {false};
    struct ws_frame cont = {.fin = true, .opcode = WS_OP_CONTINUATION};
    assert_int_equal(ws_sequence_next(&s, &cont), -EPROTO);
    struct ws_frame first = {.fin = false, .opcode = WS_OP_TEXT};
    struct ws_frame ping = {.fin = true, .opcode = WS_OP_PING};
    struct ws_frame mid = {.fin = false, .opcode = WS_OP_CONTINUATION};
    struct ws_frame bin = {.fin = true, .opcode = WS_OP_BINARY};
    assert_int_equal(ws_sequence_next(&s, &first), 0);
    assert_int_equal(ws_sequence_next(&s, &ping), 0); /* control between fragments */
    assert_int_equal(ws_sequence_next(&s, &mid), 0);
    assert_int_equal(ws_sequence_next(&s, &bin), -EPROTO); /* new message inside one */
    assert_int_equal(ws_sequence_next(&s, &cont), 0);
    assert_int_equal(ws_sequence_next(&s, &bin), 0);
}

/* ---------------------------------------------------------------- the bridge */

static void
upper_echo(void *opaque, int fd)
{
    (void)opaque;
    char buf[256];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] >= 'a' && buf[i] <= 'z')
                buf[i] = (char)(buf[i] - 32);
        if (write(fd, buf, (size_t)n) != n)
            break;
    }
}

static void
flood(void *opaque, int fd)
{
    (void)opaque;
    static char buf[65536];
    while (send(fd, buf, sizeof(buf), MSG_NOSIGNAL) > 0) {
    }
}

struct bridge {
    int fd;
    struct ws_bridge_limits lim;
    http_tunnel_fn *inner;
    pthread_t t;
    int client;
};

static void *
bridge_main(void *arg)
{
    struct bridge *b = arg;
    ws_bridge_run(b->fd, &b->lim, b->inner, NULL);
    shutdown(b->fd, SHUT_RDWR);
    return NULL;
}

static void
bridge_start(struct bridge *b, http_tunnel_fn *inner, size_t max_payload, int timeout_ms)
{
    int sp[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    b->fd = sp[1];
    b->client = sp[0];
    b->lim = (struct ws_bridge_limits){max_payload, timeout_ms};
    b->inner = inner;
    assert_int_equal(pthread_create(&b->t, NULL, bridge_main, b), 0);
}

static void
bridge_end(struct bridge *b)
{
    pthread_join(b->t, NULL);
    close(b->client);
    close(b->fd);
}

/* Reads one server frame (unmasked) from @fd into @payload; returns its opcode. */
static int
read_frame(int fd, uint8_t *payload, size_t *len)
{
    uint8_t h[2];
    if (recv(fd, h, 2, MSG_WAITALL) != 2)
        return -1;
    assert_int_equal(h[1] & 0x80, 0); /* servers do not mask */
    size_t n = h[1] & 0x7F;
    if (n == 126) {
        uint8_t e[2];
        assert_int_equal(recv(fd, e, 2, MSG_WAITALL), 2);
        n = (size_t)e[0] << 8 | e[1];
    }
    assert_true(n <= 4096);
    if (n)
        assert_int_equal(recv(fd, payload, n, MSG_WAITALL), (ssize_t)n);
    *len = n;
    return h[0] & 0x0F;
}

static void
bridge_echo_ping_close(void **state)
{
    (void)state;
    struct bridge b;
    bridge_start(&b, upper_echo, 1024, 2000);
    uint8_t f[256], p[4096];
    size_t n = client_frame(f, true, WS_OP_BINARY, "abc", 3), len;
    assert_int_equal(send(b.client, f, n, 0), (ssize_t)n);
    assert_int_equal(read_frame(b.client, p, &len), WS_OP_BINARY);
    assert_int_equal(len, 3);
    assert_memory_equal(p, "ABC", 3);
    /* fragmented: a text frame and its continuation, a ping between */
    n = client_frame(f, false, WS_OP_TEXT, "de", 2);
    n += client_frame(f + n, true, WS_OP_PING, "hi", 2);
    n += client_frame(f + n, true, WS_OP_CONTINUATION, "f", 1);
    assert_int_equal(send(b.client, f, n, 0), (ssize_t)n);
    assert_int_equal(read_frame(b.client, p, &len), WS_OP_PONG);
    assert_memory_equal(p, "hi", 2);
    char got[8] = "";
    size_t have = 0;
    while (have < 3) { /* "DE" and "F" may come as one frame or two */
        assert_int_equal(read_frame(b.client, p, &len), WS_OP_BINARY);
        memcpy(got + have, p, len);
        have += len;
    }
    assert_memory_equal(got, "DEF", 3);
    uint8_t code[2] = {0x03, 0xE8}; /* 1000 */
    n = client_frame(f, true, WS_OP_CLOSE, code, 2);
    assert_int_equal(send(b.client, f, n, 0), (ssize_t)n);
    assert_int_equal(read_frame(b.client, p, &len), WS_OP_CLOSE);
    assert_int_equal(len, 2);
    assert_memory_equal(p, code, 2);
    bridge_end(&b);
}

static void
bridge_oversized_frame_closes_1009(void **state)
{
    (void)state;
    struct bridge b;
    bridge_start(&b, upper_echo, 16, 2000);
    uint8_t f[256], p[4096];
    char big[100];
    memset(big, 'a', sizeof(big));
    size_t n = client_frame(f, true, WS_OP_BINARY, big, sizeof(big)), len;
    assert_int_equal(send(b.client, f, n, 0), (ssize_t)n);
    assert_int_equal(read_frame(b.client, p, &len), WS_OP_CLOSE);
    assert_int_equal(p[0] << 8 | p[1], WS_CLOSE_TOO_BIG);
    bridge_end(&b);
}

static void
bridge_protocol_error_closes_1002(void **state)
{
    (void)state;
    struct bridge b;
    bridge_start(&b, upper_echo, 1024, 2000);
    uint8_t f[] = {0x82, 0x03, 'a', 'b', 'c'}, p[4096]; /* unmasked */
    size_t len;
    assert_int_equal(send(b.client, f, sizeof(f), 0), (ssize_t)sizeof(f));
    assert_int_equal(read_frame(b.client, p, &len), WS_OP_CLOSE);
    assert_int_equal(p[0] << 8 | p[1], WS_CLOSE_PROTOCOL_ERROR);
    bridge_end(&b);
}

static void
bridge_drops_a_client_that_never_reads(void **state)
{
    (void)state;
    struct bridge b;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    bridge_start(&b, flood, 1024, 300);
    pthread_join(b.t, NULL); /* returns although the client reads nothing */
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true(t1.tv_sec - t0.tv_sec < 20);
    close(b.client);
    close(b.fd);
}

static void
bridge_client_gone(void **state)
{
    (void)state;
    struct bridge b;
    bridge_start(&b, upper_echo, 1024, 2000);
    shutdown(b.client, SHUT_RDWR);
    bridge_end(&b); /* the inner tunnel saw EOF and returned */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(accept_key_matches_rfc),
        cmocka_unit_test(parse_rfc_examples),
        cmocka_unit_test(parse_lengths_and_limits),
        cmocka_unit_test(header_writer),
        cmocka_unit_test(fragmentation_rules),
        cmocka_unit_test(bridge_echo_ping_close),
        cmocka_unit_test(bridge_oversized_frame_closes_1009),
        cmocka_unit_test(bridge_protocol_error_closes_1002),
        cmocka_unit_test(bridge_drops_a_client_that_never_reads),
        cmocka_unit_test(bridge_client_gone),
    };
    return cmocka_run_group_tests_name("http-websocket", tests, NULL, NULL);
}
