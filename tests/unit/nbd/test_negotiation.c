/* tests/unit/nbd/test_negotiation.c - exports found by name, STARTTLS, TLS required.
 *
 * A thread runs nbd_serve_server() on one end of a socketpair through a plain transport
 * whose starttls hook only records that it ran (the TLS itself is nbd/sock.c's, driven by
 * real clients in tests/integration/test_vdi_nbd.py); the test speaks the protocol on the
 * other end (NBD proto.md, "TLS support" and "Option types") and checks each reply: options
 * refused with ERR_TLS_REQD before STARTTLS, EXPORT_NAME closing the connection then,
 * STARTTLS refused when repeated, with a body or without a TLS-capable transport, the
 * negotiated state forgotten after it, open()'s refusals mapped to ERR_UNKNOWN/ERR_POLICY,
 * names with a NUL refused, INFO closing what it opened, LIST refused, the payload cap
 * advertised and enforced, the negotiated hook called once; and nbd_export_uri_parse on
 * xapi-nbd's export names.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "nbd/conn.h"
#include "nbd/nbd.h"
#include "nbd/proto.h"

#define DISK (256 * 1024)
#define CAP 8192u

static int
be_read(void *o, void *buf, uint64_t off, uint32_t len)
{
    (void)o;
    memset(buf, (int)(off / 4096) & 0xff, len);
    return 0;
}

static const struct nbd_backend_ops ops = {.read = be_read};

struct srv {
    int fd;
    bool tls_capable;
    bool tls_required;
    int starttls_calls;
    int negotiated_calls;
    int opens, closes;
    struct nbd_export exp;
    int rc;
    pthread_t thread;
};

static int
t_recv(void *o, void *buf, size_t len)
{
    struct srv *s = o;
    ssize_t n = recv(s->fd, buf, len, MSG_WAITALL);
    return n == (ssize_t)len ? 0 : -ECONNRESET;
}

static int
t_send(void *o, const struct iovec *iov, int n)
{
    struct srv *s = o;
    struct msghdr m = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n};
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    return sendmsg(s->fd, &m, MSG_NOSIGNAL) == (ssize_t)total ? 0 : -EPIPE;
}

static int
t_starttls(void *o)
{
    ((struct srv *)o)->starttls_calls++;
    return 0;
}

static void
t_negotiated(void *o)
{
    ((struct srv *)o)->negotiated_calls++;
}

/* "good" is served; "secret" is refused; everything else is unknown. */
static int
s_open(void *o, const char *name, bool tls, const struct nbd_export **out)
{
    struct srv *s = o;
    if (strcmp(name, "secret") == 0)
        return -EACCES;
    if (strcmp(name, "good") != 0)
        return -ENOENT;
    s->opens++;
    *out = &s->exp;
    return 0;
}

static void
s_close(void *o, const struct nbd_export *exp)
{
    struct srv *s = o;
    assert_ptr_equal(exp, &s->exp);
    s->closes++;
}

static void *
server_main(void *arg)
{
    struct srv *s = arg;
    struct nbd_transport t = {.opaque = s, .recv = t_recv, .send = t_send,
                              .starttls = s->tls_capable ? t_starttls : NULL,
                              .negotiated = t_negotiated};
    struct nbd_server srv = {.tls_required = s->tls_required, .open = s_open, .close = s_close,
                             .opaque = s};
    s->rc = nbd_serve_server(&t, &srv);
    shutdown(s->fd, SHUT_RDWR);
    return NULL;
}

static int
start(struct srv *s, bool tls_capable, bool tls_required)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    memset(s, 0, sizeof(*s));
    s->fd = sv[0];
    s->tls_capable = tls_capable;
    s->tls_required = tls_required;
    s->exp = (struct nbd_export){.name = "good", .size = DISK, .read_only = true, .ops = &ops,
                                 .max_payload = CAP};
    assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
    return sv[1];
}

static int
finish(struct srv *s, int cfd)
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
    uint8_t f[4];
    nbd_put32(f, 3);
    wr(fd, f, 4);
}

/* The reply type to INFO or GO of @name (length @nlen), the replies drained. */
static uint32_t
info_go(int fd, uint32_t opt, const char *name, uint32_t nlen, uint32_t *max_block)
{
    uint8_t q[4 + 64 + 4];
    nbd_put32(q, nlen);
    memcpy(q + 4, name, nlen);
    nbd_put16(q + 4 + nlen, 1);
    nbd_put16(q + 6 + nlen, NBD_INFO_BLOCK_SIZE);
    send_opt(fd, opt, q, 8 + nlen);
    uint8_t d[256];
    uint32_t len, type;
    while ((type = opt_reply(fd, opt, d, &len)) == NBD_REP_INFO) {
        if (nbd_get16(d) == NBD_INFO_BLOCK_SIZE && max_block)
            *max_block = nbd_get32(d + 10);
    }
    return type;
}

/* Whether the server closed the connection (EOF on the next read). */
static bool
closed(int fd)
{
    uint8_t b;
    return recv(fd, &b, 1, MSG_WAITALL) == 0;
}

static void
test_tls_required_refuses_options(void **state)
{
    struct srv s;
    int fd = start(&s, true, true);
    uint8_t d[256];
    uint32_t len;
    greet(fd);
    assert_int_equal(info_go(fd, NBD_OPT_INFO, "good", 4, NULL), NBD_REP_ERR_TLS_REQD);
    assert_int_equal(info_go(fd, NBD_OPT_GO, "good", 4, NULL), NBD_REP_ERR_TLS_REQD);
    send_opt(fd, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
    assert_int_equal(opt_reply(fd, NBD_OPT_STRUCTURED_REPLY, d, &len), NBD_REP_ERR_TLS_REQD);
    send_opt(fd, NBD_OPT_LIST, NULL, 0);
    assert_int_equal(opt_reply(fd, NBD_OPT_LIST, d, &len), NBD_REP_ERR_TLS_REQD);
    assert_int_equal(s.opens, 0);
    /* EXPORT_NAME has no error reply: the connection ends, nothing opened */
    send_opt(fd, NBD_OPT_EXPORT_NAME, "good", 4);
    assert_true(closed(fd));
    assert_true(finish(&s, fd) < 0);
    assert_int_equal(s.opens, 0);
    assert_int_equal(s.starttls_calls, 0);
    assert_int_equal(s.negotiated_calls, 0);
}

static void
test_starttls_then_go(void **state)
{
    struct srv s;
    int fd = start(&s, true, true);
    uint8_t d[256];
    uint32_t len;
    greet(fd);
    send_opt(fd, NBD_OPT_STARTTLS, "x", 1);     /* a body: invalid, nothing started */
    assert_int_equal(opt_reply(fd, NBD_OPT_STARTTLS, d, &len), NBD_REP_ERR_INVALID);
    assert_int_equal(s.starttls_calls, 0);
    send_opt(fd, NBD_OPT_STARTTLS, NULL, 0);
    assert_int_equal(opt_reply(fd, NBD_OPT_STARTTLS, d, &len), NBD_REP_ACK);
    send_opt(fd, NBD_OPT_STARTTLS, NULL, 0);    /* twice: invalid */
    assert_int_equal(opt_reply(fd, NBD_OPT_STARTTLS, d, &len), NBD_REP_ERR_INVALID);
    assert_int_equal(s.starttls_calls, 1);
    uint32_t max = 0;
    assert_int_equal(info_go(fd, NBD_OPT_INFO, "good", 4, &max), NBD_REP_ACK);
    assert_int_equal(max, CAP);
    assert_int_equal(s.opens, 1);
    assert_int_equal(info_go(fd, NBD_OPT_GO, "good", 4, NULL), NBD_REP_ACK);
    assert_int_equal(s.closes, 1);              /* INFO gave back what it opened */
    /* a READ within the cap, then one above it (EINVAL), then DISC */
    uint8_t h[28];
    nbd_put32(h, NBD_REQUEST_MAGIC);
    nbd_put16(h + 4, 0);
    nbd_put16(h + 6, NBD_CMD_READ);
    nbd_put64(h + 8, 7);
    nbd_put64(h + 16, 8192);
    nbd_put32(h + 24, CAP);
    wr(fd, h, 28);
    uint8_t r[16];
    static uint8_t data[CAP];
    rd(fd, r, 16);
    assert_int_equal(nbd_get32(r + 4), 0);
    rd(fd, data, CAP);
    assert_int_equal(data[0], 2);
    nbd_put32(h + 24, CAP + 512);
    wr(fd, h, 28);
    rd(fd, r, 16);
    assert_int_equal(nbd_get32(r + 4), NBD_EINVAL);
    nbd_put16(h + 6, NBD_CMD_DISC);
    nbd_put32(h + 24, 0);
    wr(fd, h, 28);
    assert_true(closed(fd));
    assert_int_equal(finish(&s, fd), 0);
    assert_int_equal(s.opens, 2);
    assert_int_equal(s.closes, 2);              /* the served export, when serving ended */
    assert_int_equal(s.negotiated_calls, 1);
}

static void
test_starttls_forgets_state(void **state)
{
    struct srv s;
    int fd = start(&s, true, false);
    uint8_t d[256];
    uint32_t len;
    greet(fd);
    /* not required: options work in clear */
    send_opt(fd, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
    assert_int_equal(opt_reply(fd, NBD_OPT_STRUCTURED_REPLY, d, &len), NBD_REP_ACK);
    send_opt(fd, NBD_OPT_STARTTLS, NULL, 0);
    assert_int_equal(opt_reply(fd, NBD_OPT_STARTTLS, d, &len), NBD_REP_ACK);
    /* structured replies were negotiated in clear: forgotten, so SET_META is invalid */
    uint8_t q[4 + 4 + 4 + 4 + 15];
    nbd_put32(q, 4);
    memcpy(q + 4, "good", 4);
    nbd_put32(q + 8, 1);
    nbd_put32(q + 12, 15);
    memcpy(q + 16, "base:allocation", 15);
    send_opt(fd, NBD_OPT_SET_META_CONTEXT, q, sizeof(q));
    assert_int_equal(opt_reply(fd, NBD_OPT_SET_META_CONTEXT, d, &len), NBD_REP_ERR_INVALID);
    send_opt(fd, NBD_OPT_ABORT, NULL, 0);
    assert_int_equal(opt_reply(fd, NBD_OPT_ABORT, d, &len), NBD_REP_ACK);
    assert_int_equal(finish(&s, fd), 0);
    assert_int_equal(s.negotiated_calls, 0);
}

static void
test_no_tls_transport(void **state)
{
    struct srv s;
    int fd = start(&s, false, false);
    uint8_t d[256];
    uint32_t len;
    greet(fd);
    send_opt(fd, NBD_OPT_STARTTLS, NULL, 0);
    assert_int_equal(opt_reply(fd, NBD_OPT_STARTTLS, d, &len), NBD_REP_ERR_POLICY);
    send_opt(fd, NBD_OPT_LIST, NULL, 0);        /* names are not enumerated */
    assert_int_equal(opt_reply(fd, NBD_OPT_LIST, d, &len), NBD_REP_ERR_POLICY);
    assert_int_equal(info_go(fd, NBD_OPT_GO, "nothing", 7, NULL), NBD_REP_ERR_UNKNOWN);
    assert_int_equal(info_go(fd, NBD_OPT_GO, "secret", 6, NULL), NBD_REP_ERR_POLICY);
    assert_int_equal(info_go(fd, NBD_OPT_GO, "go\0od", 5, NULL), NBD_REP_ERR_INVALID);
    assert_int_equal(s.opens, 0);
    /* EXPORT_NAME of an unknown name: closed */
    send_opt(fd, NBD_OPT_EXPORT_NAME, "nothing", 7);
    assert_true(closed(fd));
    assert_true(finish(&s, fd) < 0);
}

static void
test_export_name_option(void **state)
{
    struct srv s;
    int fd = start(&s, false, false);
    greet(fd);
    send_opt(fd, NBD_OPT_EXPORT_NAME, "good", 4);
    uint8_t r[10];
    rd(fd, r, 10);      /* NO_ZEROES was negotiated: size and flags only */
    assert_true(nbd_get64(r) == DISK);
    uint16_t flags = nbd_get16(r + 8);
    assert_true(flags & NBD_FLAG_READ_ONLY);
    assert_true(flags & NBD_FLAG_CAN_MULTI_CONN);
    assert_int_equal(finish(&s, fd), -ECONNRESET);
    assert_int_equal(s.negotiated_calls, 1);
    assert_int_equal(s.closes, 1);
}

static void
test_uri_parse(void **state)
{
    char p[64], v[64];
    assert_int_equal(nbd_export_uri_parse("/abc-1?session_id=OpaqueRef:x-y", p, sizeof(p),
                                          "session_id", v, sizeof(v)), 0);
    assert_string_equal(p, "abc-1");
    assert_string_equal(v, "OpaqueRef:x-y");
    assert_int_equal(nbd_export_uri_parse("/a%2Db?x=1&session_id=OpaqueRef%3Az&session_id=w",
                                          p, sizeof(p), "session_id", v, sizeof(v)), 0);
    assert_string_equal(p, "a-b");
    assert_string_equal(v, "OpaqueRef:z");          /* the first one counts */
    assert_int_equal(nbd_export_uri_parse("/u?sid=1", p, sizeof(p), "session_id", v,
                                          sizeof(v)), -ENOENT);
    assert_int_equal(nbd_export_uri_parse("/u", p, sizeof(p), "session_id", v, sizeof(v)),
                     -ENOENT);
    assert_string_equal(p, "u");
    assert_int_equal(nbd_export_uri_parse("u?session_id=1", p, sizeof(p), "session_id", v,
                                          sizeof(v)), -EINVAL);
    assert_int_equal(nbd_export_uri_parse("/u%2?session_id=1", p, sizeof(p), "session_id", v,
                                          sizeof(v)), -EINVAL);
    assert_int_equal(nbd_export_uri_parse("/u?session_id=%00", p, sizeof(p), "session_id", v,
                                          sizeof(v)), -EINVAL);
    assert_int_equal(nbd_export_uri_parse("/u?session_id=%zz", p, sizeof(p), "session_id", v,
                                          sizeof(v)), -EINVAL);
    assert_int_equal(nbd_export_uri_parse("/0123456789?session_id=1", p, 5, "session_id", v,
                                          sizeof(v)), -ENAMETOOLONG);
    assert_int_equal(nbd_export_uri_parse("/u?session_id=1#frag", p, sizeof(p), "session_id", v,
                                          sizeof(v)), 0);
    assert_string_equal(v, "1");
    assert_int_equal(nbd_export_uri_parse("/u?session_id=", p, sizeof(p), "session_id", v,
                                          sizeof(v)), 0);
    assert_string_equal(v, "");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls_required_refuses_options),
        cmocka_unit_test(test_starttls_then_go),
        cmocka_unit_test(test_starttls_forgets_state),
        cmocka_unit_test(test_no_tls_transport),
        cmocka_unit_test(test_export_name_option),
        cmocka_unit_test(test_uri_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
