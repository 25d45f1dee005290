/* tests/unit/http/test_http_stream.c - streamed bodies and replies (http/http_stream.c).
 *
 * A server on loopback TCP (port 0) with stream routes:
 *   PUT  /sink      counts and checksums the body; finish() replies "N SUM" (or,
 *                   with ?defer=1, from another thread); ?fail_after=K makes
 *                   write() fail once K bytes are in (finish() replies 400);
 *                   ?deny=1 makes begin() reply 401 without reading the body
 *   GET  /source    a streamed reply of ?n= pattern bytes (?chunked=1: no
 *                   Content-Length), from a stream route's finish()
 * and the ordinary handler, which answers /gen (a streamed reply from a
 * handler) and everything else with 200 "plain". The client is a few lines of
 * plain sockets here, so what is tested is what a client sees on the wire.
 * Bodies are larger than HTTP_MAX_BODY to show the cap does not apply.
 * Debug a failure with the case name: `meson test -C BUILD --suite http -v`.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "http/http.h"

#define BIG (HTTP_MAX_BODY * 3 + 12345) /* over the buffered cap on purpose */

static atomic_uint n_aborts, n_finishes, n_frees, n_begins;
static atomic_uint n_reads_begun, n_reads_done; /* source_read() calls */
static atomic_uint n_writes_begun;                /* sink_write() calls */
static atomic_ullong n_written; /* bytes every sink took */

static unsigned char
pattern(uint64_t i)
{
    return (unsigned char)((i * 7 + (i >> 13)) & 0xff);
}

static int64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define WAIT_FOR(cond)                                                                           \
    do {                                                                                         \
        int64_t deadline_ = now_ms() + 5000;                                                     \
        while (!(cond) && now_ms() < deadline_)                                                  \
            usleep(2000);                                                                        \
        assert_true(cond);                                                                       \
    } while (0)

/*==== The server side ====*/

struct sink_ctx {
    uint64_t n;
    uint64_t sum;
    uint64_t fail_after; /* 0: never */
    unsigned slow_ms;    /* the first write first sleeps this long (a slow disk) */
    bool defer;
    bool mismatch; /* a byte differed from pattern() */
};

static int
sink_write(void *ctx, const char *data, size_t len)
{
    struct sink_ctx *s = ctx;
    atomic_fetch_add(&n_writes_begun, 1);
    if (s->slow_ms && s->n == 0)
        usleep(s->slow_ms * 1000u);
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)data[i] != pattern(s->n + i))
            s->mismatch = true;
        s->sum += (unsigned char)data[i];
    }
    s->n += len;
    atomic_fetch_add(&n_written, len);
    if (s->fail_after && s->n >= s->fail_after)
        return -ENOSPC;
    return 0;
}

struct deferred {
    struct http_request *req;
    char text[128];
};

static void *
deferred_main(void *arg)
{
    struct deferred *d = arg;
    usleep(50 * 1000);
    http_reply(d->req, 200, "text/plain", d->text, strlen(d->text));
    free(d);
    return NULL;
}

static void
sink_finish(void *ctx, struct http_request *req)
{
    struct sink_ctx *s = ctx;
    atomic_fetch_add(&n_finishes, 1);
    char text[128];
    snprintf(text, sizeof(text), "%llu %llu%s", (unsigned long long)s->n,
             (unsigned long long)s->sum, s->mismatch ? " mismatch" : "");
    if (s->fail_after && s->n >= s->fail_after) {
        http_reply(req, 400, "text/plain", "full\n", 5);
    } else if (s->defer) {
        struct deferred *d = calloc(1, sizeof(*d));
        d->req = req;
        snprintf(d->text, sizeof(d->text), "%s", text);
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, deferred_main, d), 0);
        pthread_detach(t);
    } else {
        http_reply(req, 200, "text/plain", text, strlen(text));
    }
    free(s);
}

static void
sink_abort(void *ctx)
{
    atomic_fetch_add(&n_aborts, 1);
    free(ctx);
}

static uint64_t
query_u64(struct http_request *req, const char *key)
{
    const char *v = http_request_query(req, key);
    return v ? strtoull(v, NULL, 10) : 0;
}

static bool
begin_sink(void *opaque, struct http_request *req, struct http_body_sink *sink)
{
    atomic_fetch_add(&n_begins, 1);
    assert_string_equal(http_request_method(req), "PUT");
    if (query_u64(req, "deny")) {
        http_reply(req, 401, "text/plain", "no\n", 3);
        return false;
    }
    struct sink_ctx *s = calloc(1, sizeof(*s));
    s->fail_after = query_u64(req, "fail_after");
    s->slow_ms = (unsigned)query_u64(req, "slow_ms");
    s->defer = query_u64(req, "defer") != 0;
    *sink = (struct http_body_sink){sink_write, sink_finish, sink_abort, s};
    return true;
}

struct source {
    uint64_t n;
    unsigned slow_ms; /* each read first sleeps this long (a slow disk) */
};

static ssize_t
source_read(void *opaque, uint64_t pos, char *buf, size_t max)
{
    struct source *src = opaque;
    atomic_fetch_add(&n_reads_begun, 1);
    if (src->slow_ms)
        usleep(src->slow_ms * 1000u);
    atomic_fetch_add(&n_reads_done, 1);
    if (pos >= src->n)
        return 0;
    size_t len = src->n - pos < max ? (size_t)(src->n - pos) : max;
    for (size_t i = 0; i < len; i++)
        buf[i] = (char)pattern(pos + i);
    return (ssize_t)len;
}

static void
source_free(void *opaque)
{
    atomic_fetch_add(&n_frees, 1);
    free(opaque);
}

static void
reply_source(struct http_request *req)
{
    struct source *src = calloc(1, sizeof(*src));
    src->n = query_u64(req, "n");
    src->slow_ms = (unsigned)query_u64(req, "slow_ms");
    bool chunked = query_u64(req, "chunked") != 0;
    const char *hdr[] = {"X-Source: yes"};
    http_reply_stream(req, 200, "application/octet-stream", hdr, 1,
                      chunked ? -1 : (int64_t)src->n, source_read, source_free, src);
}

static void
source_finish(void *ctx, struct http_request *req)
{
    reply_source(req);
}

static void
source_abort(void *ctx)
{
    atomic_fetch_add(&n_aborts, 1);
}

static bool
begin_source(void *opaque, struct http_request *req, struct http_body_sink *sink)
{
    *sink = (struct http_body_sink){.write = sink_write, /* a GET has no body */
                                    .finish = source_finish,
                                    .abort = source_abort};
    return true;
}

static void
handler(void *opaque, struct http_request *req)
{
    if (strcmp(http_request_path(req), "/gen") == 0) {
        reply_source(req);
        return;
    }
    http_reply(req, 200, "text/plain", "plain", 5);
}

static int
setup_threads(void **state, unsigned n_threads)
{
    atomic_store(&n_reads_begun, 0);
    atomic_store(&n_reads_done, 0);
    atomic_store(&n_writes_begun, 0);
    atomic_store(&n_aborts, 0);
    atomic_store(&n_finishes, 0);
    atomic_store(&n_frees, 0);
    atomic_store(&n_begins, 0);
    atomic_store(&n_written, 0);
    struct http_config cfg = {.listen = "127.0.0.1:0", .n_threads = n_threads, .handler = handler};
    struct http_server *srv = NULL;
    char why[256];
    if (http_server_start(&cfg, &srv, why, sizeof(why)) != 0)
        fail_msg("http_server_start: %s", why);
    assert_int_equal(http_server_add_stream_route(srv, "PUT", "/sink", begin_sink, NULL), 0);
    assert_int_equal(http_server_add_stream_route(srv, "GET", "/source", begin_source, NULL), 0);
    *state = srv;
    return 0;
}

static int
setup(void **state)
{
    return setup_threads(state, 2);
}

/* One request thread: every connection shares the thread that serves a stream. */
static int
setup_one_thread(void **state)
{
    return setup_threads(state, 1);
}

static int
teardown(void **state)
{
    http_server_stop(*state);
    return 0;
}

/*==== The client side ====*/

struct client {
    int fd;
    char buf[1 << 16];
    size_t len;
};

static struct client *
client_new(struct http_server *srv)
{
    struct client *c = calloc(1, sizeof(*c));
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)http_server_port(srv))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(c->fd >= 0);
    struct timeval tv = {5, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return c;
}

static void
client_close(struct client *c)
{
    close(c->fd);
    free(c);
}

static void
client_send(struct client *c, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        assert_true(n > 0);
        p += n;
        len -= (size_t)n;
    }
}

static void
client_sendf(struct client *c, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    client_send(c, buf, (size_t)n);
}

/* Sends @n pattern bytes from offset @from, in pieces of @piece. */
static void
client_send_pattern(struct client *c, uint64_t from, uint64_t n, size_t piece)
{
    char *buf = malloc(piece);
    for (uint64_t off = 0; off < n; off += piece) {
        size_t len = n - off < piece ? (size_t)(n - off) : piece;
        for (size_t i = 0; i < len; i++)
            buf[i] = (char)pattern(from + off + i);
        client_send(c, buf, len);
    }
    free(buf);
}

static bool
client_fill(struct client *c)
{
    if (c->len == sizeof(c->buf))
        return false;
    ssize_t n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
    if (n <= 0)
        return false;
    c->len += (size_t)n;
    return true;
}

static void
client_consume(struct client *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* Reads a response head into @head; returns the status, -1 on EOF. */
static int
client_read_head(struct client *c, char *head, size_t head_size)
{
    char *end;
    while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
        if (!client_fill(c))
            return -1;
    size_t n = (size_t)(end - c->buf) + 4;
    assert_true(n < head_size);
    memcpy(head, c->buf, n);
    head[n] = '\0';
    client_consume(c, n);
    int status = -1;
    assert_int_equal(sscanf(head, "HTTP/1.1 %d", &status), 1);
    return status;
}

static const char *
head_value(const char *head, const char *name, char *out, size_t out_size)
{
    size_t nlen = strlen(name);
    for (const char *l = strstr(head, "\r\n"); l && l[2]; l = strstr(l + 2, "\r\n")) {
        if (strncasecmp(l + 2, name, nlen) == 0 && l[2 + nlen] == ':') {
            const char *v = l + 3 + nlen;
            while (*v == ' ')
                v++;
            snprintf(out, out_size, "%.*s", (int)strcspn(v, "\r\n"), v);
            return out;
        }
    }
    return NULL;
}

/* Reads exactly @n body bytes and checks them against pattern(). */
static void
client_read_pattern(struct client *c, uint64_t from, uint64_t n)
{
    uint64_t got = 0;
    while (got < n) {
        if (c->len == 0)
            assert_true(client_fill(c));
        size_t take = c->len < n - got ? c->len : (size_t)(n - got);
        for (size_t i = 0; i < take; i++)
            if ((unsigned char)c->buf[i] != pattern(from + got + i))
                fail_msg("byte %llu differs", (unsigned long long)(from + got + i));
        got += take;
        client_consume(c, take);
    }
}

static void
client_read_exact(struct client *c, char *out, size_t n)
{
    while (c->len < n)
        assert_true(client_fill(c));
    memcpy(out, c->buf, n);
    client_consume(c, n);
}

/* A simple response with Content-Length: status, and the body into @body. */
static int
client_read_simple(struct client *c, char *body, size_t body_size)
{
    char head[4096], v[64];
    int status = client_read_head(c, head, sizeof(head));
    if (status < 0)
        return status;
    size_t n = head_value(head, "Content-Length", v, sizeof(v)) ? strtoul(v, NULL, 10) : 0;
    assert_true(n < body_size);
    client_read_exact(c, body, n);
    body[n] = '\0';
    return status;
}

static uint64_t
pattern_sum(uint64_t n)
{
    uint64_t sum = 0;
    for (uint64_t i = 0; i < n; i++)
        sum += pattern(i);
    return sum;
}

/*==== Cases ====*/

static void
put_content_length_streams_past_cap(void **state)
{
    struct client *c = client_new(*state);
    char expect[128], body[256];
    /* twice on one connection: keep-alive survives a streamed body */
    for (int round = 0; round < 2; round++) {
        client_sendf(c, "PUT /sink?defer=%d HTTP/1.1\r\nHost: t\r\nContent-Length: %u\r\n\r\n",
                     round, BIG);
        client_send_pattern(c, 0, BIG, 100000);
        assert_int_equal(client_read_simple(c, body, sizeof(body)), 200);
        snprintf(expect, sizeof(expect), "%u %llu", BIG, (unsigned long long)pattern_sum(BIG));
        assert_string_equal(body, expect);
    }
    assert_int_equal(atomic_load(&n_finishes), 2);
    assert_int_equal(atomic_load(&n_aborts), 0);
    client_close(c);
}

static void
put_chunked(void **state)
{
    struct client *c = client_new(*state);
    client_sendf(c, "PUT /sink HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    uint64_t off = 0;
    size_t sizes[] = {1, 4096, 1 << 20, 77, 3u << 20, 2u << 20};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        client_sendf(c, "%zx\r\n", sizes[i]);
        client_send_pattern(c, off, sizes[i], sizes[i]);
        client_sendf(c, "\r\n");
        off += sizes[i];
    }
    client_sendf(c, "0\r\n\r\n");
    char expect[128], body[256];
    assert_int_equal(client_read_simple(c, body, sizeof(body)), 200);
    snprintf(expect, sizeof(expect), "%llu %llu", (unsigned long long)off,
             (unsigned long long)pattern_sum(off));
    assert_string_equal(body, expect);
    client_close(c);
}

static void
begin_replies_without_reading(void **state)
{
    struct client *c = client_new(*state);
    /* the body is never sent: the answer must come from the head alone */
    client_sendf(c, "PUT /sink?deny=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000000\r\n"
                    "Expect: 100-continue\r\n\r\n");
    char body[64];
    assert_int_equal(client_read_simple(c, body, sizeof(body)), 401);
    assert_string_equal(body, "no\n");
    assert_int_equal(atomic_load(&n_finishes), 0);
    client_close(c);
}

static void
client_gone_mid_body_aborts(void **state)
{
    struct client *c = client_new(*state);
    client_sendf(c, "PUT /sink HTTP/1.1\r\nHost: t\r\nContent-Length: %u\r\n\r\n", BIG);
    client_send_pattern(c, 0, 1 << 20, 65536);
    /* Close only once the server has taken what was sent: MHD polls with
     * edge-triggered epoll, and a FIN that comes in the same wake-up as the
     * last data is noticed only by the idle timeout (documented in http.h). */
    WAIT_FOR(atomic_load(&n_written) == 1u << 20);
    client_close(c);
    WAIT_FOR(atomic_load(&n_aborts) == 1);
    assert_int_equal(atomic_load(&n_finishes), 0);
}

static void
failed_write_discards_then_finish_answers(void **state)
{
    struct client *c = client_new(*state);
    client_sendf(c, "PUT /sink?fail_after=1000 HTTP/1.1\r\nHost: t\r\nContent-Length: %u\r\n\r\n",
                 1u << 20);
    client_send_pattern(c, 0, 1u << 20, 65536);
    char body[64];
    assert_int_equal(client_read_simple(c, body, sizeof(body)), 400);
    assert_string_equal(body, "full\n");
    /* the rest was read and discarded, so the connection is still in step */
    client_sendf(c, "GET /other HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(client_read_simple(c, body, sizeof(body)), 200);
    assert_string_equal(body, "plain");
    client_close(c);
}

static void
other_paths_keep_the_cap(void **state)
{
    struct client *c = client_new(*state);
    /* /sink is routed for PUT only; POST /sink and PUT /sinks are buffered */
    /* (Expect: the 413 comes before the body, which this client never sends) */
    client_sendf(c, "POST /sink HTTP/1.1\r\nHost: t\r\nContent-Length: %u\r\n"
                    "Expect: 100-continue\r\n\r\n", BIG);
    char body[64];
    assert_int_equal(client_read_simple(c, body, sizeof(body)), 413);
    client_close(c);
    c = client_new(*state);
    client_sendf(c, "PUT /sinks HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nab");
    assert_int_equal(client_read_simple(c, body, sizeof(body)), 200);
    assert_string_equal(body, "plain");
    client_close(c);
    assert_int_equal(http_server_add_stream_route(*state, "PUT", "/sink", begin_sink, NULL),
                     -EEXIST);
}

static void
reply_stream_known_length(void **state)
{
    struct client *c = client_new(*state);
    const char *paths[] = {"/gen", "/source"}; /* from a handler, from a sink's finish() */
    for (int i = 0; i < 2; i++) {
        client_sendf(c, "GET %s?n=%u HTTP/1.1\r\nHost: t\r\n\r\n", paths[i], BIG);
        char head[4096], v[64];
        assert_int_equal(client_read_head(c, head, sizeof(head)), 200);
        assert_non_null(head_value(head, "Content-Length", v, sizeof(v)));
        assert_int_equal(strtoull(v, NULL, 10), BIG);
        assert_string_equal(head_value(head, "X-Source", v, sizeof(v)), "yes");
        assert_string_equal(head_value(head, "Content-Type", v, sizeof(v)),
                            "application/octet-stream");
        client_read_pattern(c, 0, BIG);
    }
    WAIT_FOR(atomic_load(&n_frees) == 2);
    client_close(c);
}

static void
reply_stream_chunked(void **state)
{
    struct client *c = client_new(*state);
    uint64_t n = (1u << 20) + 333;
    client_sendf(c, "GET /gen?n=%llu&chunked=1 HTTP/1.1\r\nHost: t\r\n\r\n",
                 (unsigned long long)n);
    char head[4096], v[64];
    assert_int_equal(client_read_head(c, head, sizeof(head)), 200);
    assert_null(head_value(head, "Content-Length", v, sizeof(v)));
    assert_string_equal(head_value(head, "Transfer-Encoding", v, sizeof(v)), "chunked");
    uint64_t got = 0;
    for (;;) {
        char *eol;
        while (!(eol = memmem(c->buf, c->len, "\r\n", 2)))
            assert_true(client_fill(c));
        size_t size = strtoul(c->buf, NULL, 16);
        client_consume(c, (size_t)(eol - c->buf) + 2);
        if (size == 0)
            break;
        client_read_pattern(c, got, size);
        got += size;
        char crlf[2];
        client_read_exact(c, crlf, 2);
        assert_memory_equal(crlf, "\r\n", 2);
    }
    assert_int_equal(got, n);
    WAIT_FOR(atomic_load(&n_frees) == 1);
    client_close(c);
}

static void
reply_stream_client_gone_frees(void **state)
{
    struct client *c = client_new(*state);
    client_sendf(c, "GET /gen?n=%u HTTP/1.1\r\nHost: t\r\n\r\n", 64u << 20);
    char head[4096];
    assert_int_equal(client_read_head(c, head, sizeof(head)), 200);
    client_read_pattern(c, 0, 1000);
    client_close(c);
    WAIT_FOR(atomic_load(&n_frees) == 1);
}

static void
stop_during_streamed_body(void **state)
{
    struct client *c = client_new(*state);
    client_sendf(c, "PUT /sink HTTP/1.1\r\nHost: t\r\nContent-Length: %u\r\n\r\n", BIG);
    client_send_pattern(c, 0, 4096, 4096);
    WAIT_FOR(atomic_load(&n_begins) == 1);
    http_server_stop(*state);
    *state = NULL;
    assert_int_equal(atomic_load(&n_aborts), 1);
    client_close(c);
}

/* A small request on a new connection, answered 200 "plain". */
static void
assert_plain_answered(struct http_server *srv)
{
    struct client *quick = client_new(srv);
    client_sendf(quick, "GET /plain HTTP/1.1\r\nHost: t\r\n\r\n");
    char body[64];
    assert_int_equal(client_read_simple(quick, body, sizeof(body)), 200);
    assert_string_equal(body, "plain");
    client_close(quick);
}

/* A streamed reply's reads run beside the HTTP thread: a read that takes
 * a second does not hold up another connection's request on the same (only)
 * thread. Before, the small request waited for the read. */
static void
slow_stream_read_does_not_hold_up_others(void **state)
{
    struct client *slow = client_new(*state);
    client_sendf(slow, "GET /gen?n=200000&slow_ms=1000 HTTP/1.1\r\nHost: t\r\n\r\n");
    WAIT_FOR(atomic_load(&n_reads_begun) == 1);
    assert_plain_answered(*state);
    assert_int_equal(atomic_load(&n_reads_done), 0); /* answered while the read sleeps */
    char head[4096];
    assert_int_equal(client_read_head(slow, head, sizeof(head)), 200);
    client_read_pattern(slow, 0, 200000);
    WAIT_FOR(atomic_load(&n_frees) == 1);
    client_close(slow);
}

/* A streamed body's writes run beside the HTTP thread too: while a write
 * takes a second, another connection's request on the same (only) thread is
 * answered, and the body (4 MiB: more than the pipe holds, so its connection
 * waits for room) arrives whole. */
static void
slow_sink_write_does_not_hold_up_others(void **state)
{
    const unsigned size = 4u << 20;
    struct client *slow = client_new(*state);
    client_sendf(slow, "PUT /sink?slow_ms=1000 HTTP/1.1\r\nHost: t\r\nContent-Length: %u\r\n\r\n",
                 size);
    client_send_pattern(slow, 0, 65536, 65536);
    WAIT_FOR(atomic_load(&n_writes_begun) == 1);
    assert_plain_answered(*state);
    assert_int_equal(atomic_load(&n_written), 0); /* answered while the write sleeps */
    client_send_pattern(slow, 65536, size - 65536, 1 << 20);
    char body[256];
    assert_int_equal(client_read_simple(slow, body, sizeof(body)), 200);
    char expect[128];
    snprintf(expect, sizeof(expect), "%u %llu", size, (unsigned long long)pattern_sum(size));
    assert_string_equal(body, expect);
    client_close(slow);
}

/* A stop while a stream's connection waits for its next block (suspended),
 * its producer in a read: the stop returns once free_fn has run, once. */
static void
stop_while_stream_waits(void **state)
{
    struct client *c = client_new(*state);
    client_sendf(c, "GET /gen?n=%u&slow_ms=200 HTTP/1.1\r\nHost: t\r\n\r\n", 1u << 20);
    WAIT_FOR(atomic_load(&n_reads_begun) == 1);
    usleep(20 * 1000); /* the reader has found nothing and suspended */
    http_server_stop(*state);
    *state = NULL;
    assert_int_equal(atomic_load(&n_frees), 1);
    assert_true(atomic_load(&n_reads_begun) <= 2); /* the producer stopped reading */
    client_close(c);
}

static int
teardown_maybe_stopped(void **state)
{
    if (*state)
        http_server_stop(*state);
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(put_content_length_streams_past_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(put_chunked, setup, teardown),
        cmocka_unit_test_setup_teardown(begin_replies_without_reading, setup, teardown),
        cmocka_unit_test_setup_teardown(client_gone_mid_body_aborts, setup, teardown),
        cmocka_unit_test_setup_teardown(failed_write_discards_then_finish_answers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(other_paths_keep_the_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(reply_stream_known_length, setup, teardown),
        cmocka_unit_test_setup_teardown(reply_stream_chunked, setup, teardown),
        cmocka_unit_test_setup_teardown(reply_stream_client_gone_frees, setup, teardown),
        cmocka_unit_test_setup_teardown(stop_during_streamed_body, setup,
                                        teardown_maybe_stopped),
        cmocka_unit_test_setup_teardown(slow_stream_read_does_not_hold_up_others,
                                        setup_one_thread, teardown),
        cmocka_unit_test_setup_teardown(stop_while_stream_waits, setup, teardown_maybe_stopped),
        cmocka_unit_test_setup_teardown(slow_sink_write_does_not_hold_up_others, setup_one_thread,
                                        teardown),
    };
    return cmocka_run_group_tests_name("http-stream", tests, NULL, NULL);
}
