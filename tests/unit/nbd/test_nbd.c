/* tests/unit/nbd/test_nbd.c - the NBD server against a scripted client on a socketpair.
 *
 * A thread runs nbd_serve_fd() on one end with a 1 MiB memory backend (second half a
 * hole); the test speaks the protocol on the other end (spec section 3) and checks every
 * reply: handshake, GO with block sizes, simple and structured reads (OFFSET_HOLE for the
 * hole), writes, errors (range, read-only, BLOCK_STATUS without a context), unknown options
 * answered UNSUP, and disconnection on oversized options or a bad request magic; many
 * requests in flight on one connection served by several threads, or corked by one; the
 * chunks of one structured reply back to back when threads answer at once.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "nbd/conn.h"
#include "nbd/nbd.h"
#include "nbd/proto.h"

#define DISK (1024 * 1024)
static uint8_t disk[DISK];

/* test_chunks_whole: the backend takes this long per call, so that the threads of one
 * connection overlap */
static unsigned backend_delay_us;

static int
be_read(void *o, void *buf, uint64_t off, uint32_t len)
{
    if (backend_delay_us)
        usleep(backend_delay_us);
    memcpy(buf, disk + off, len);
    return 0;
}

static int
be_write(void *o, const void *buf, uint64_t off, uint32_t len, bool fua)
{
    memcpy(disk + off, buf, len);
    return 0;
}

static int
be_flush(void *o)
{
    return 0;
}

static int
be_status(void *o, uint64_t off, uint64_t len, uint64_t *run, bool *alloc)
{
    if (backend_delay_us)
        usleep(backend_delay_us);
    *alloc = off < DISK / 2;
    uint64_t end = *alloc ? DISK / 2 : DISK;
    *run = end - off < len ? end - off : len;
    return 0;
}

static const struct nbd_backend_ops ops = {
    .read = be_read, .write = be_write, .flush = be_flush, .block_status = be_status,
};

struct server {
    int fd;
    struct nbd_export exp;
    int rc;
    pthread_t thread;
};

static void *
server_main(void *arg)
{
    struct server *s = arg;
    s->rc = nbd_serve_fd(s->fd, &s->exp);
    shutdown(s->fd, SHUT_RDWR);
    return NULL;
}

/* Start a server with @threads per connection; returns the client fd. */
static int
start_threads(struct server *s, bool ro, unsigned threads)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    s->fd = sv[0];
    s->exp = (struct nbd_export){.name = "", .size = DISK, .read_only = ro, .ops = &ops,
                                 .n_workers = threads};
    assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
    return sv[1];
}

static int
start(struct server *s, bool ro)
{
    return start_threads(s, ro, 0);
}

static int
finish(struct server *s, int cfd)
{
    close(cfd);
    pthread_join(s->thread, NULL);
    close(s->fd);
    return s->rc;
}

static void
rd(int fd, void *buf, size_t n)
{
    assert_int_equal(recv(fd, buf, n, MSG_WAITALL), (ssize_t)n);
}

static void
wr(int fd, const void *buf, size_t n)
{
    assert_int_equal(write(fd, buf, n), (ssize_t)n);
}

static void
send_opt(int fd, uint32_t opt, const void *data, uint32_t len)
{
    uint8_t h[16];
    nbd_put64(h, NBD_IHAVEOPT);
    nbd_put32(h + 8, opt);
    nbd_put32(h + 12, len);
    wr(fd, h, 16);
    if (len)
        wr(fd, data, len);
}

/* Read one option reply; returns its type, data into @data (len in *@len). */
static uint32_t
opt_reply(int fd, uint32_t opt, uint8_t *data, uint32_t *len)
{
    uint8_t h[20];
    rd(fd, h, 20);
    assert_true(nbd_get64(h) == NBD_REP_MAGIC);
    assert_int_equal(nbd_get32(h + 8), opt);
    *len = nbd_get32(h + 16);
    assert_true(*len <= 256);
    if (*len)
        rd(fd, data, *len);
    return nbd_get32(h + 12);
}

static void
greet(int fd)
{
    uint8_t g[18];
    rd(fd, g, 18);
    assert_true(nbd_get64(g) == NBD_MAGIC);
    assert_true(nbd_get64(g + 8) == NBD_IHAVEOPT);
    assert_int_equal(nbd_get16(g + 16), 3);
    uint8_t f[4];
    nbd_put32(f, 3);
    wr(fd, f, 4);
}

static void
negotiate(int fd, bool structured)
{
    uint8_t d[256];
    uint32_t len;
    greet(fd);
    send_opt(fd, 11, NULL, 0);      /* EXTENDED_HEADERS: must be UNSUP, then go on */
    assert_int_equal(opt_reply(fd, 11, d, &len), NBD_REP_ERR_UNSUP);
    if (structured) {
        send_opt(fd, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
        assert_int_equal(opt_reply(fd, NBD_OPT_STRUCTURED_REPLY, d, &len), NBD_REP_ACK);
        uint8_t q[4 + 4 + 4 + 15];
        nbd_put32(q, 0);
        nbd_put32(q + 4, 1);
        nbd_put32(q + 8, 15);
        memcpy(q + 12, "base:allocation", 15);
        send_opt(fd, NBD_OPT_SET_META_CONTEXT, q, sizeof(q));
        assert_int_equal(opt_reply(fd, NBD_OPT_SET_META_CONTEXT, d, &len), NBD_REP_META_CONTEXT);
        assert_int_equal(nbd_get32(d), NBD_META_BASE_ALLOCATION_ID);
        assert_int_equal(opt_reply(fd, NBD_OPT_SET_META_CONTEXT, d, &len), NBD_REP_ACK);
    }
    uint8_t go[4 + 2 + 2];
    nbd_put32(go, 0);
    nbd_put16(go + 4, 1);
    nbd_put16(go + 6, NBD_INFO_BLOCK_SIZE);
    send_opt(fd, NBD_OPT_GO, go, sizeof(go));
    assert_int_equal(opt_reply(fd, NBD_OPT_GO, d, &len), NBD_REP_INFO);
    assert_int_equal(len, 12);
    assert_true(nbd_get64(d + 2) == DISK);
    assert_int_equal(opt_reply(fd, NBD_OPT_GO, d, &len), NBD_REP_INFO);
    assert_int_equal(nbd_get16(d), NBD_INFO_BLOCK_SIZE);
    assert_int_equal(nbd_get32(d + 2), 512);
    assert_int_equal(nbd_get32(d + 10), 32u << 20);
    assert_int_equal(opt_reply(fd, NBD_OPT_GO, d, &len), NBD_REP_ACK);
}

static void
request(int fd, uint16_t flags, uint16_t type, uint64_t cookie, uint64_t off, uint32_t len)
{
    uint8_t h[28];
    nbd_put32(h, NBD_REQUEST_MAGIC);
    nbd_put16(h + 4, flags);
    nbd_put16(h + 6, type);
    nbd_put64(h + 8, cookie);
    nbd_put64(h + 16, off);
    nbd_put32(h + 24, len);
    wr(fd, h, 28);
}

static uint32_t
simple_reply(int fd, uint64_t cookie)
{
    uint8_t h[16];
    rd(fd, h, 16);
    assert_int_equal(nbd_get32(h), NBD_SIMPLE_REPLY_MAGIC);
    assert_true(nbd_get64(h + 8) == cookie);
    return nbd_get32(h + 4);
}

static void
test_simple_read_write(void **state)
{
    struct server s;
    int fd = start(&s, false);
    negotiate(fd, false);
    uint8_t w[4096], r[4096];
    memset(w, 0xA5, sizeof(w));
    request(fd, NBD_CMD_FLAG_FUA, NBD_CMD_WRITE, 7, 8192, sizeof(w));
    wr(fd, w, sizeof(w));
    assert_int_equal(simple_reply(fd, 7), 0);
    request(fd, 0, NBD_CMD_READ, 8, 8192, sizeof(r));
    assert_int_equal(simple_reply(fd, 8), 0);
    rd(fd, r, sizeof(r));
    assert_memory_equal(r, w, sizeof(w));
    request(fd, 0, NBD_CMD_READ, 9, DISK - 512, 1024);          /* past the end */
    assert_int_equal(simple_reply(fd, 9), NBD_EINVAL);
    request(fd, 0, NBD_CMD_WRITE, 10, DISK, 512);               /* payload still consumed */
    wr(fd, w, 512);
    assert_int_equal(simple_reply(fd, 10), NBD_ENOSPC);
    request(fd, 0, NBD_CMD_BLOCK_STATUS, 11, 0, 4096);          /* no context negotiated */
    assert_int_equal(simple_reply(fd, 11), NBD_EINVAL);
    request(fd, 0, NBD_CMD_FLUSH, 12, 0, 0);
    assert_int_equal(simple_reply(fd, 12), 0);
    request(fd, 0, 99, 13, 0, 512);
    assert_int_equal(simple_reply(fd, 13), NBD_EINVAL);
    request(fd, 0, NBD_CMD_DISC, 14, 0, 0);
    assert_int_equal(finish(&s, fd), 0);
}

static void
test_structured(void **state)
{
    struct server s;
    int fd = start(&s, false);
    negotiate(fd, true);
    memset(disk, 0x3C, DISK / 2);
    /* a read across the data/hole boundary: OFFSET_DATA then OFFSET_HOLE (DONE) */
    request(fd, 0, NBD_CMD_READ, 1, DISK / 2 - 4096, 8192);
    uint8_t h[20], p[4096 + 8];
    rd(fd, h, 20);
    assert_int_equal(nbd_get32(h), NBD_STRUCTURED_REPLY_MAGIC);
    assert_int_equal(nbd_get16(h + 6), NBD_REPLY_TYPE_OFFSET_DATA);
    assert_int_equal(nbd_get16(h + 4), 0);
    assert_int_equal(nbd_get32(h + 16), 8 + 4096);
    rd(fd, p, 8 + 4096);
    assert_true(nbd_get64(p) == DISK / 2 - 4096);
    assert_int_equal(p[8], 0x3C);
    rd(fd, h, 20);
    assert_int_equal(nbd_get16(h + 6), NBD_REPLY_TYPE_OFFSET_HOLE);
    assert_int_equal(nbd_get16(h + 4), NBD_REPLY_FLAG_DONE);
    rd(fd, p, 12);
    assert_int_equal(nbd_get32(p + 8), 4096);
    /* block status over the whole disk: two extents */
    request(fd, 0, NBD_CMD_BLOCK_STATUS, 2, 0, DISK);
    rd(fd, h, 20);
    assert_int_equal(nbd_get16(h + 6), NBD_REPLY_TYPE_BLOCK_STATUS);
    assert_int_equal(nbd_get32(h + 16), 4 + 16);
    rd(fd, p, 20);
    assert_int_equal(nbd_get32(p + 4), DISK / 2);
    assert_int_equal(nbd_get32(p + 8), 0);
    assert_int_equal(nbd_get32(p + 16), NBD_STATE_HOLE | NBD_STATE_ZERO);
    /* REQ_ONE: a single extent */
    request(fd, NBD_CMD_FLAG_REQ_ONE, NBD_CMD_BLOCK_STATUS, 3, 0, DISK);
    rd(fd, h, 20);
    assert_int_equal(nbd_get32(h + 16), 4 + 8);
    rd(fd, p, 12);
    /* an error is an ERROR chunk now */
    request(fd, 0, NBD_CMD_READ, 4, DISK, 512);
    rd(fd, h, 20);
    assert_int_equal(nbd_get16(h + 6), NBD_REPLY_TYPE_ERROR);
    rd(fd, p, nbd_get32(h + 16));
    assert_int_equal(nbd_get32(p), NBD_EINVAL);
    request(fd, 0, NBD_CMD_DISC, 5, 0, 0);
    assert_int_equal(finish(&s, fd), 0);
}

static void
test_read_only(void **state)
{
    struct server s;
    int fd = start(&s, true);
    negotiate(fd, false);
    uint8_t w[512] = {0};
    request(fd, 0, NBD_CMD_WRITE, 1, 0, 512);
    wr(fd, w, 512);
    assert_int_equal(simple_reply(fd, 1), NBD_EPERM);
    request(fd, 0, NBD_CMD_TRIM, 2, 0, 512);
    assert_int_equal(simple_reply(fd, 2), NBD_EPERM);
    request(fd, 0, NBD_CMD_DISC, 3, 0, 0);
    assert_int_equal(finish(&s, fd), 0);
}

static void
test_hostile_client(void **state)
{
    struct server s;
    uint8_t d[256];
    uint32_t len;
    /* oversized option: connection dropped before the body is read */
    int fd = start(&s, false);
    greet(fd);
    uint8_t h[16];
    nbd_put64(h, NBD_IHAVEOPT);
    nbd_put32(h + 8, NBD_OPT_GO);
    nbd_put32(h + 12, 0xFFFFFFFF);
    wr(fd, h, 16);
    assert_int_equal(finish(&s, fd), -EPROTO);
    /* SET_META_CONTEXT before STRUCTURED_REPLY; GO with a lying count; then a bad magic */
    fd = start(&s, false);
    greet(fd);
    uint8_t q[8] = {0};
    send_opt(fd, NBD_OPT_SET_META_CONTEXT, q, sizeof(q));
    assert_int_equal(opt_reply(fd, NBD_OPT_SET_META_CONTEXT, d, &len), NBD_REP_ERR_INVALID);
    uint8_t go[6];
    nbd_put32(go, 0);
    nbd_put16(go + 4, 9);
    send_opt(fd, NBD_OPT_GO, go, sizeof(go));
    assert_int_equal(opt_reply(fd, NBD_OPT_GO, d, &len), NBD_REP_ERR_INVALID);
    uint8_t named[4 + 4 + 2];
    nbd_put32(named, 4);
    memcpy(named + 4, "nope", 4);
    nbd_put16(named + 8, 0);
    send_opt(fd, NBD_OPT_GO, named, sizeof(named));
    assert_int_equal(opt_reply(fd, NBD_OPT_GO, d, &len), NBD_REP_ERR_UNKNOWN);
    send_opt(fd, NBD_OPT_LIST, NULL, 0);
    assert_int_equal(opt_reply(fd, NBD_OPT_LIST, d, &len), NBD_REP_SERVER);
    assert_int_equal(opt_reply(fd, NBD_OPT_LIST, d, &len), NBD_REP_ACK);
    nbd_put64(h, 0x1122334455667788ull);
    wr(fd, h, 16);
    assert_int_equal(finish(&s, fd), -EPROTO);
    /* unknown client flag bits */
    fd = start(&s, false);
    uint8_t g[18], f[4];
    rd(fd, g, 18);
    nbd_put32(f, 0x80000001u);
    wr(fd, f, 4);
    assert_int_equal(finish(&s, fd), -EPROTO);
    /* a WRITE announcing 64 MiB: dropped without allocating */
    fd = start(&s, false);
    negotiate(fd, false);
    request(fd, 0, NBD_CMD_WRITE, 1, 0, 64u << 20);
    assert_int_equal(finish(&s, fd), -EPROTO);
}

/* Many requests in flight on one connection, answered out of order by several threads
 * (or corked by one): every reply arrives whole, a READ sent after a WRITE sees it, DISC
 * waits for the reads in flight, a bad magic still ends the connection. */
static void
pipelined(unsigned threads)
{
    struct server s;
    int fd = start_threads(&s, false, threads);
    negotiate(fd, false);
    enum { N = 64, LEN = 4096 };
    for (size_t i = 0; i < DISK / 2; i++)
        disk[i] = (uint8_t)(i * 13 + (i >> 12));
    uint8_t w[LEN];
    memset(w, 0x5A, sizeof(w));
    for (uint64_t k = 0; k < N; k++) {
        request(fd, 0, NBD_CMD_READ, k, (k * 7919 % 128) * LEN, LEN);
        if (k == N / 2) {       /* a write then a read of the same range, still pipelined */
            request(fd, 0, NBD_CMD_WRITE, 1000, 200 * LEN, LEN);
            wr(fd, w, LEN);
            request(fd, 0, NBD_CMD_READ, 1001, 200 * LEN, LEN);
        }
    }
    request(fd, 0, NBD_CMD_DISC, 2000, 0, 0);
    bool seen[N] = {false}, wrote = false, reread = false;
    for (int r = 0; r < N + 2; r++) {
        uint8_t h[16], data[LEN];
        rd(fd, h, 16);
        assert_int_equal(nbd_get32(h), NBD_SIMPLE_REPLY_MAGIC);
        assert_int_equal(nbd_get32(h + 4), 0);
        uint64_t cookie = nbd_get64(h + 8);
        if (cookie == 1000) {
            wrote = true;
            continue;
        }
        rd(fd, data, LEN);
        if (cookie == 1001) {
            assert_memory_equal(data, w, LEN);
            reread = true;
            continue;
        }
        assert_true(cookie < N && !seen[cookie]);
        seen[cookie] = true;
        assert_memory_equal(data, disk + (cookie * 7919 % 128) * LEN, LEN);
    }
    assert_true(wrote && reread);
    assert_int_equal(finish(&s, fd), 0);
    fd = start_threads(&s, false, threads);
    negotiate(fd, false);
    for (uint64_t k = 0; k < 8; k++)
        request(fd, 0, NBD_CMD_READ, k, 0, LEN);
    uint8_t bad[28] = {0};
    wr(fd, bad, sizeof(bad));
    for (uint64_t k = 0; k < 8; k++) {     /* requests read before the bad one are answered */
        uint8_t h[16], data[LEN];
        rd(fd, h, 16);
        assert_int_equal(nbd_get32(h + 4), 0);
        rd(fd, data, LEN);
    }
    assert_int_equal(finish(&s, fd), -EPROTO);
}

/* Structured READs in flight on one connection served by several threads: each reply's
 * chunks (data, then the hole) arrive back to back, none of another reply between them.
 * The protocol allows interleaving, but with it QEMU 7.2 guests crashed far more often
 * after live migrations (docs/storage.md, "Interleaved replies"). */
static void
test_chunks_whole(void **state)
{
    struct server s;
    int fd = start_threads(&s, false, 4);
    negotiate(fd, true);
    enum { N = 32, LEN = 8192 };
    for (size_t i = 0; i < DISK / 2; i++)
        disk[i] = (uint8_t)(i * 7 + 1);
    backend_delay_us = 300;
    for (uint64_t k = 0; k < N; k++)    /* each across the data/hole boundary */
        request(fd, 0, NBD_CMD_READ, k, DISK / 2 - LEN / 2, LEN);
    bool done[N] = {false};
    uint64_t current = UINT64_MAX;       /* the reply whose chunks are coming */
    for (int replies = 0; replies < N;) {
        uint8_t h[20], p[LEN + 8];
        rd(fd, h, 20);
        assert_int_equal(nbd_get32(h), NBD_STRUCTURED_REPLY_MAGIC);
        uint16_t flags = nbd_get16(h + 4), type = nbd_get16(h + 6);
        uint64_t cookie = nbd_get64(h + 8);
        uint32_t len = nbd_get32(h + 16);
        assert_true(cookie < N && !done[cookie]);
        if (current != UINT64_MAX)
            assert_true(cookie == current);   /* no other reply's chunk in between */
        assert_true(len <= sizeof(p));
        rd(fd, p, len);
        if (type == NBD_REPLY_TYPE_OFFSET_DATA)
            assert_memory_equal(p + 8, disk + nbd_get64(p), len - 8);
        else
            assert_int_equal(type, NBD_REPLY_TYPE_OFFSET_HOLE);
        current = cookie;
        if (flags & NBD_REPLY_FLAG_DONE) {
            done[cookie] = true;
            current = UINT64_MAX;
            replies++;
        }
    }
    backend_delay_us = 0;
    request(fd, 0, NBD_CMD_DISC, N, 0, 0);
    assert_int_equal(finish(&s, fd), 0);
}

static void
test_pipelined_threads(void **state)
{
    pipelined(4);
}

static void
test_pipelined_one_thread(void **state)
{
    pipelined(0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_read_write),
        cmocka_unit_test(test_structured),
        cmocka_unit_test(test_read_only),
        cmocka_unit_test(test_hostile_client),
        cmocka_unit_test(test_pipelined_threads),
        cmocka_unit_test(test_pipelined_one_thread),
        cmocka_unit_test(test_chunks_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
