/* tests/unit/http/test_http.c - http/http.c driven over real sockets.
 *
 * Each case starts its own server (loopback TCP on port 0, a unix socket in
 * a temporary directory, TLS with a certificate generated there) and talks
 * to it with a small HTTP/1.1 client written here on plain sockets or a
 * GnuTLS client session, so what is tested is what a client sees on the
 * wire. The handler routes on the path:
 *   /echo    reply 200 application/json with the request body
 *   /info    reply 200 text/plain describing the request (method, peer, ...)
 *   /defer   keep the request; the test replies later (deferred_reply_all)
 *   /delay   reply from another thread after 200 ms
 *   /race    reply from another thread while the handler is still running
 *   /jitter  echo the body, at once (?ms=0) or from another thread ms later
 *   /fail    reply 500
 *   /tunnel  reply with a tunnel whose callback echoes bytes
 * Debug a failure with the case name: `meson test -C BUILD --suite http -v`.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
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
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "http/http.h"
#include "http/tls_cert.h"

#define MAX_DEFERRED 64
#define TEST_HOSTNAME "vessel-test.example"

/*==== The test handler ====*/

static struct {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    struct http_request *held[MAX_DEFERRED];
    unsigned n_held;
    atomic_uint n_calls;
    atomic_uint n_tunnels_done;
} th = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {NULL}, 0, 0, 0};

static void *
delay_main(void *arg)
{
    struct timespec ts = {0, 200 * 1000 * 1000};
    nanosleep(&ts, NULL);
    http_reply(arg, 200, "text/plain", "late", 4);
    return NULL;
}

static void *
race_main(void *arg)
{
    http_reply(arg, 200, "text/plain", "raced", 5);
    return NULL;
}

static void *
jitter_main(void *arg)
{
    struct http_request *req = arg;
    usleep((useconds_t)atoi(http_request_query(req, "ms")) * 1000);
    size_t len;
    const char *body = http_request_body(req, &len);
    http_reply(req, 200, "application/json", body, len);
    return NULL;
}

static void
tunnel_echo(void *opaque, int fd)
{
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        if (send(fd, buf, (size_t)n, MSG_NOSIGNAL) != n)
            break;
    atomic_fetch_add(&th.n_tunnels_done, 1);
}

static const char *
transport_name(enum http_transport t)
{
    return t == HTTP_TRANSPORT_UNIX ? "unix" : t == HTTP_TRANSPORT_TCP ? "tcp" : "tls";
}

static void
reply_info(struct http_request *req)
{
    char buf[1024];
    const char *q = http_request_query(req, "q");
    const char *flag = http_request_query(req, "flag");
    const char *cookie = http_request_cookie(req, "session_id");
    const char *hdr = http_request_header(req, "x-test"); /* sent as X-Test */
    char *user = NULL, *pass = NULL;
    bool basic = http_request_basic_auth(req, &user, &pass);
    int n = snprintf(buf, sizeof(buf),
                     "method=%s path=%s peer=%s transport=%s q=%s flag=%s cookie=%s hdr=%s "
                     "basic=%s:%s",
                     http_request_method(req), http_request_path(req), http_request_peer(req),
                     transport_name(http_request_transport(req)), q ? q : "-",
                     flag ? flag : "-", cookie ? cookie : "-", hdr ? hdr : "-",
                     basic ? user : "-", basic ? pass : "-");
    free(user);
    free(pass);
    http_reply(req, 200, "text/plain", buf, (size_t)n);
}

static void
test_handler(void *opaque, struct http_request *req)
{
    const char *path = http_request_path(req);
    atomic_fetch_add(&th.n_calls, 1);
    if (strcmp(path, "/echo") == 0) {
        size_t len;
        const char *body = http_request_body(req, &len);
        char *copy = malloc(len ? len : 1);
        memcpy(copy, body, len);
        http_reply_take(req, 200, "application/json", copy, len);
    } else if (strcmp(path, "/info") == 0) {
        reply_info(req);
    } else if (strcmp(path, "/defer") == 0) {
        pthread_mutex_lock(&th.lock);
        assert_true(th.n_held < MAX_DEFERRED);
        th.held[th.n_held++] = req;
        pthread_cond_broadcast(&th.changed);
        pthread_mutex_unlock(&th.lock);
    } else if (strcmp(path, "/delay") == 0) {
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, delay_main, req), 0);
        pthread_detach(t);
    } else if (strcmp(path, "/jitter") == 0) {
        const char *ms = http_request_query(req, "ms");
        if (!ms || atoi(ms) == 0) {
            size_t len;
            const char *body = http_request_body(req, &len);
            http_reply(req, 200, "application/json", body, len);
        } else {
            pthread_t t;
            assert_int_equal(pthread_create(&t, NULL, jitter_main, req), 0);
            pthread_detach(t);
        }
    } else if (strcmp(path, "/race") == 0) {
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, race_main, req), 0);
        pthread_join(t, NULL); /* replied before the handler returns, from elsewhere */
    } else if (strcmp(path, "/fail") == 0) {
        http_reply(req, 500, "text/html", "<html>boom</html>", 17);
    } else if (strcmp(path, "/tunnel") == 0) {
        http_reply_upgrade(req, tunnel_echo, NULL);
    } else if (strcmp(path, "/headers") == 0) {
        const char *h[] = {"WWW-Authenticate: Basic realm=\"xapi\"", "no-colon", "X-A:  b"};
        http_reply_with_headers(req, 401, NULL, h, 3, "", 0);
    } else {
        http_reply(req, 404, "text/plain", "no", 2);
    }
}

static unsigned
held_count(void)
{
    pthread_mutex_lock(&th.lock);
    unsigned n = th.n_held;
    pthread_mutex_unlock(&th.lock);
    return n;
}

/* Replies "deferred-<i>" to every held request; returns how many. */
static unsigned
deferred_reply_all(void)
{
    pthread_mutex_lock(&th.lock);
    unsigned n = th.n_held;
    for (unsigned i = 0; i < n; i++) {
        char body[32];
        int len = snprintf(body, sizeof(body), "deferred-%u", i);
        http_reply(th.held[i], 200, "application/json", body, (size_t)len);
        th.held[i] = NULL;
    }
    th.n_held = 0;
    pthread_mutex_unlock(&th.lock);
    return n;
}

static int64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Polls @cond for up to 5 s; the server works on its own threads. */
#define WAIT_FOR(cond)                                                                           \
    do {                                                                                         \
        int64_t deadline_ = now_ms() + 5000;                                                     \
        while (!(cond) && now_ms() < deadline_)                                                  \
            usleep(2000);                                                                        \
        assert_true(cond);                                                                       \
    } while (0)

/*==== A minimal HTTP/1.1 client ====*/

struct client {
    int fd;
    gnutls_session_t tls;
    gnutls_certificate_credentials_t cred;
    char buf[1 << 16]; /* bytes read but not consumed yet */
    size_t len;
};

struct response {
    int status;
    char head[8192]; /* status line and headers */
    char *body;
    size_t body_len;
};

static void
client_timeouts(int fd)
{
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static struct client *
client_tcp(int port)
{
    struct client *c = calloc(1, sizeof(*c));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(c->fd >= 0);
    client_timeouts(c->fd);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return c;
}

static struct client *
client_unix(const char *path)
{
    struct client *c = calloc(1, sizeof(*c));
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    c->fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(c->fd >= 0);
    client_timeouts(c->fd);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return c;
}

/* No verification here: the cases compare the peer's certificate with the
 * file instead, which is what a pinning client (XenCenter) does. */
static struct client *
client_tls(int port)
{
    struct client *c = client_tcp(port);
    assert_int_equal(gnutls_certificate_allocate_credentials(&c->cred), 0);
    assert_int_equal(gnutls_init(&c->tls, GNUTLS_CLIENT), 0);
    assert_int_equal(gnutls_set_default_priority(c->tls), 0);
    assert_int_equal(gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, c->cred), 0);
    gnutls_transport_set_int(c->tls, c->fd);
    int rc;
    do {
        rc = gnutls_handshake(c->tls);
    } while (rc < 0 && !gnutls_error_is_fatal(rc));
    assert_int_equal(rc, 0);
    return c;
}

static void
client_close(struct client *c)
{
    if (c->tls) {
        gnutls_deinit(c->tls);
        gnutls_certificate_free_credentials(c->cred);
    }
    close(c->fd);
    free(c);
}

static void
client_send(struct client *c, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = c->tls ? gnutls_record_send(c->tls, p, len)
                           : send(c->fd, p, len, MSG_NOSIGNAL);
        assert_true(n > 0);
        p += n;
        len -= (size_t)n;
    }
}

static void
client_sendf(struct client *c, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    client_send(c, buf, (size_t)n);
}

/* Appends what arrives; returns bytes read, 0 at EOF, <0 on error/timeout. */
static ssize_t
client_fill(struct client *c)
{
    if (c->len == sizeof(c->buf))
        return -1;
    ssize_t n;
    if (c->tls) {
        do {
            n = gnutls_record_recv(c->tls, c->buf + c->len, sizeof(c->buf) - c->len);
        } while (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED);
        if (n == GNUTLS_E_PREMATURE_TERMINATION)
            n = 0;
    } else {
        n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
    }
    if (n > 0)
        c->len += (size_t)n;
    return n;
}

static void
client_consume(struct client *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

static const char *
resp_header(const struct response *r, const char *name)
{
    static _Thread_local char value[1024]; /* stress clients run in parallel */
    size_t nlen = strlen(name);
    for (const char *line = strstr(r->head, "\r\n"); line && line[2]; line = strstr(line + 2, "\r\n")) {
        const char *l = line + 2;
        if (strncasecmp(l, name, nlen) == 0 && l[nlen] == ':') {
            const char *v = l + nlen + 1;
            while (*v == ' ')
                v++;
            const char *end = strstr(v, "\r\n");
            size_t vlen = end ? (size_t)(end - v) : strlen(v);
            snprintf(value, sizeof(value), "%.*s", (int)vlen, v);
            return value;
        }
    }
    return NULL;
}

/* Reads one response (Content-Length framed). false on EOF/timeout before a
 * whole response. */
static bool
client_read_response(struct client *c, struct response *r)
{
    char *end;
    memset(r, 0, sizeof(*r));
    while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
        if (client_fill(c) <= 0)
            return false;
    size_t head_len = (size_t)(end - c->buf) + 4;
    assert_true(head_len < sizeof(r->head));
    memcpy(r->head, c->buf, head_len);
    r->head[head_len] = '\0';
    client_consume(c, head_len);
    assert_int_equal(sscanf(r->head, "HTTP/1.1 %d", &r->status), 1);
    const char *cl = resp_header(r, "Content-Length");
    size_t want = cl ? strtoul(cl, NULL, 10) : 0;
    r->body = malloc(want + 1);
    while (r->body_len < want) {
        if (c->len == 0 && client_fill(c) <= 0) {
            free(r->body);
            r->body = NULL;
            return false;
        }
        size_t n = c->len < want - r->body_len ? c->len : want - r->body_len;
        memcpy(r->body + r->body_len, c->buf, n);
        r->body_len += n;
        client_consume(c, n);
    }
    r->body[want] = '\0';
    return true;
}

/* Whether the server closed the connection (EOF within 5 s, nothing else). */
static bool
client_sees_eof(struct client *c)
{
    c->len = 0;
    ssize_t n = client_fill(c);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

static void
request(struct client *c, const char *method, const char *path, const char *body,
        struct response *r)
{
    size_t len = body ? strlen(body) : 0;
    client_sendf(c, "%s %s HTTP/1.1\r\nHost: test\r\nContent-Length: %zu\r\n\r\n", method, path,
                 len);
    if (len)
        client_send(c, body, len);
    assert_true(client_read_response(c, r));
}

/*==== Fixtures ====*/

struct fixture {
    char dir[64];
    char unix_path[128];
    char key_path[128];
    char cert_path[128];
    struct http_config cfg;
    struct http_server *srv;
};

static struct fixture *
fixture_new(void)
{
    struct fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/vessel-http-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->unix_path, sizeof(f->unix_path), "%s/xapi", f->dir);
    snprintf(f->key_path, sizeof(f->key_path), "%s/key.pem", f->dir);
    snprintf(f->cert_path, sizeof(f->cert_path), "%s/cert.pem", f->dir);
    f->cfg = (struct http_config){
        .unix_path = f->unix_path,
        .listen = "127.0.0.1:0",
        .tls_listen = "127.0.0.1:0",
        .tls_key_pem_path = f->key_path,
        .tls_cert_pem_path = f->cert_path,
        .tls_hostname = TEST_HOSTNAME,
        .n_threads = 2,
        .handler = test_handler,
    };
    return f;
}

static void
fixture_start(struct fixture *f)
{
    char why[256];
    int rc = http_server_start(&f->cfg, &f->srv, why, sizeof(why));
    if (rc != 0)
        fail_msg("http_server_start: %d %s", rc, why);
    assert_true(http_server_port(f->srv) > 0);
}

static int
setup(void **state)
{
    atomic_store(&th.n_calls, 0);
    atomic_store(&th.n_tunnels_done, 0);
    struct fixture *f = fixture_new();
    fixture_start(f);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;
    http_server_stop(f->srv);
    deferred_reply_all(); /* whatever a failed case left */
    unlink(f->key_path);
    unlink(f->cert_path);
    unlink(f->unix_path);
    rmdir(f->dir);
    free(f);
    return 0;
}

/*==== Cases ====*/

static void
post_body_delivered_whole(void **state)
{
    struct fixture *f = *state;
    size_t len = 300 * 1024; /* xapi's RPC limit: many reads on the server side */
    char *body = malloc(len + 1);
    for (size_t i = 0; i < len; i++)
        body[i] = (char)('a' + i % 26);
    body[len] = '\0';
    struct client *c = client_tcp(http_server_port(f->srv));
    struct response r;
    request(c, "POST", "/echo", body, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, len);
    assert_memory_equal(r.body, body, len);
    assert_string_equal(resp_header(&r, "Content-Type"), "application/json");
    assert_string_equal(resp_header(&r, "Access-Control-Allow-Origin"), "*");
    assert_string_equal(resp_header(&r, "Access-Control-Allow-Headers"), "X-Requested-With");
    free(r.body);
    free(body);
    client_close(c);
}

static void
keep_alive_two_requests(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_tcp(http_server_port(f->srv));
    struct response r1, r2;
    request(c, "POST", "/echo", "{\"id\":1}", &r1);
    request(c, "POST", "/echo", "{\"id\":2}", &r2);
    assert_int_equal(r1.status, 200);
    assert_int_equal(r2.status, 200);
    assert_string_equal(r1.body, "{\"id\":1}");
    assert_string_equal(r2.body, "{\"id\":2}");
    const char *conn = resp_header(&r2, "Connection");
    assert_true(conn == NULL || strcasecmp(conn, "close") != 0);
    free(r1.body);
    free(r2.body);
    client_close(c);
}

/* Pool of 2 threads, 50 requests suspended: a 51st is still answered at once,
 * so suspended requests hold no thread. Then the 50 are answered late. */
static void
suspended_requests_hold_no_thread(void **state)
{
    struct fixture *f = *state;
    enum { N = 50 };
    struct client *c[N];
    for (int i = 0; i < N; i++) {
        c[i] = client_tcp(http_server_port(f->srv));
        client_sendf(c[i], "POST /defer HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}");
    }
    WAIT_FOR(http_server_n_suspended(f->srv) == N);
    assert_int_equal(held_count(), N);

    struct client *extra = client_tcp(http_server_port(f->srv));
    struct response r;
    int64_t t0 = now_ms();
    request(extra, "GET", "/info", NULL, &r);
    assert_int_equal(r.status, 200);
    /* a held thread would mean no answer at all (client timeout 5 s) */
    assert_true(now_ms() - t0 < 2500);
    free(r.body);
    client_close(extra);

    assert_int_equal(deferred_reply_all(), N);
    assert_int_equal(http_server_n_suspended(f->srv), 0);
    for (int i = 0; i < N; i++) {
        assert_true(client_read_response(c[i], &r));
        assert_int_equal(r.status, 200);
        assert_int_equal(strncmp(r.body, "deferred-", 9), 0);
        assert_string_equal(resp_header(&r, "Content-Type"), "application/json");
        free(r.body);
        client_close(c[i]);
    }
}

/* A reply from another thread 200 ms later; meanwhile others are served. */
static void
deferred_reply_from_thread(void **state)
{
    struct fixture *f = *state;
    struct client *slow = client_tcp(http_server_port(f->srv));
    int64_t t0 = now_ms();
    client_sendf(slow, "GET /delay HTTP/1.1\r\nHost: t\r\n\r\n");
    struct response r;
    for (int i = 0; i < 3; i++) {
        struct client *fast = client_tcp(http_server_port(f->srv));
        request(fast, "GET", "/info", NULL, &r);
        assert_int_equal(r.status, 200);
        free(r.body);
        client_close(fast);
    }
    /* all three were answered while the slow one still waited (unless this
     * machine is so loaded that 200 ms went by: then nothing is proven) */
    struct pollfd p = {.fd = slow->fd, .events = POLLIN};
    if (now_ms() - t0 < 190)
        assert_int_equal(poll(&p, 1, 0), 0);
    assert_true(client_read_response(slow, &r));
    assert_true(now_ms() - t0 >= 200);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "late");
    free(r.body);
    /* the slow connection stays usable after its suspension */
    request(slow, "GET", "/info", NULL, &r);
    assert_int_equal(r.status, 200);
    free(r.body);
    client_close(slow);
}

static void
reply_from_thread_while_handler_runs(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_tcp(http_server_port(f->srv));
    struct response r;
    for (int i = 0; i < 20; i++) {
        request(c, "GET", "/race", NULL, &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "raced");
        free(r.body);
    }
    client_close(c);
}

static void
body_over_limit_is_413(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_tcp(http_server_port(f->srv));
    struct response r;
    /* a client that sends the whole body (as xmlrpc.client does) reads the
     * 413 after it: the body is read and dropped, never reset mid-send */
    client_sendf(c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %u\r\n\r\n",
                 HTTP_MAX_BODY + 1);
    static char block[65536];
    memset(block, 'x', sizeof(block));
    for (unsigned left = HTTP_MAX_BODY + 1; left > 0;) {
        size_t n = left < sizeof(block) ? left : sizeof(block);
        assert_int_equal(send(c->fd, block, n, MSG_NOSIGNAL), (ssize_t)n);
        left -= (unsigned)n;
    }
    assert_true(client_read_response(c, &r));
    assert_int_equal(r.status, 413);
    assert_string_equal(resp_header(&r, "Access-Control-Allow-Origin"), "*");
    assert_string_equal(r.body, "request body over the limit of 4194304 bytes\n");
    free(r.body);
    assert_true(client_sees_eof(c));
    client_close(c);
    assert_int_equal(atomic_load(&th.n_calls), 0);

    /* far over, or with Expect: answered before a byte of the body */
    const char *heads[] = {
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1073741824\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4194305\r\n"
        "Expect: 100-continue\r\n\r\n",
    };
    for (size_t i = 0; i < 2; i++) {
        c = client_tcp(http_server_port(f->srv));
        client_sendf(c, "%s", heads[i]);
        assert_true(client_read_response(c, &r));
        assert_int_equal(r.status, 413);
        free(r.body);
        assert_true(client_sees_eof(c));
        client_close(c);
    }
    assert_int_equal(atomic_load(&th.n_calls), 0);

    /* chunked: no length up front; the connection is cut once over the limit */
    c = client_tcp(http_server_port(f->srv));
    client_sendf(c, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    static char chunk[65536];
    memset(chunk, 'x', sizeof(chunk));
    bool cut = false;
    for (unsigned sent = 0; sent <= HTTP_MAX_BODY + sizeof(chunk) && !cut; sent += sizeof(chunk)) {
        char hdr[32];
        int n = snprintf(hdr, sizeof(hdr), "%zx\r\n", sizeof(chunk));
        cut = send(c->fd, hdr, (size_t)n, MSG_NOSIGNAL) < 0 ||
              send(c->fd, chunk, sizeof(chunk), MSG_NOSIGNAL) < 0 ||
              send(c->fd, "\r\n", 2, MSG_NOSIGNAL) < 0;
    }
    assert_true(cut || client_sees_eof(c));
    client_close(c);
    assert_int_equal(atomic_load(&th.n_calls), 0);
}

static void
options_is_cors_preflight(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_tcp(http_server_port(f->srv));
    struct response r;
    client_sendf(c, "OPTIONS /jsonrpc HTTP/1.1\r\nHost: t\r\nOrigin: http://x\r\n"
                    "Access-Control-Request-Method: POST\r\n\r\n");
    assert_true(client_read_response(c, &r));
    assert_int_equal(r.status, 200);
    assert_string_equal(resp_header(&r, "Access-Control-Allow-Origin"), "*");
    assert_string_equal(resp_header(&r, "Access-Control-Allow-Headers"), "X-Requested-With");
    assert_non_null(strstr(resp_header(&r, "Access-Control-Allow-Methods"), "POST"));
    free(r.body);
    /* and the connection goes on */
    request(c, "POST", "/echo", "x", &r);
    assert_int_equal(r.status, 200);
    free(r.body);
    client_close(c);
    assert_int_equal(atomic_load(&th.n_calls), 1); /* the POST only */
}

static void
status_500_closes_connection(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_tcp(http_server_port(f->srv));
    struct response r;
    request(c, "POST", "/fail", "<bad", &r);
    assert_int_equal(r.status, 500);
    assert_string_equal(resp_header(&r, "Content-Type"), "text/html");
    assert_string_equal(resp_header(&r, "Connection"), "close");
    free(r.body);
    assert_true(client_sees_eof(c));
    client_close(c);
}

static void
query_cookie_header_lookup(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_tcp(http_server_port(f->srv));
    struct response r;
    /* "alice:s3cret" */
    client_sendf(c, "GET /info?q=hello%%20world&flag HTTP/1.1\r\nHost: t\r\n"
                    "Cookie: other=1; session_id=OpaqueRef:abc\r\nX-Test: v1\r\n"
                    "Authorization: Basic YWxpY2U6czNjcmV0\r\n\r\n");
    assert_true(client_read_response(c, &r));
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "method=GET path=/info peer=127.0.0.1 transport=tcp "
                                "q=hello world flag= cookie=OpaqueRef:abc hdr=v1 "
                                "basic=alice:s3cret");
    assert_string_equal(resp_header(&r, "Content-Type"), "text/plain");
    free(r.body);

    request(c, "GET", "/headers", NULL, &r);
    assert_int_equal(r.status, 401);
    assert_string_equal(resp_header(&r, "WWW-Authenticate"), "Basic realm=\"xapi\"");
    assert_string_equal(resp_header(&r, "X-A"), "b");
    assert_null(resp_header(&r, "Content-Type"));
    free(r.body);
    client_close(c);
}

static void
unix_socket_peer_is_unix(void **state)
{
    struct fixture *f = *state;
    struct stat st;
    assert_int_equal(stat(f->unix_path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);
    struct client *c = client_unix(f->unix_path);
    struct response r;
    request(c, "GET", "/info", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "peer=unix transport=unix"));
    free(r.body);
    request(c, "POST", "/echo", "again", &r); /* keep-alive on the unix socket too */
    assert_string_equal(r.body, "again");
    free(r.body);
    client_close(c);
}

/* A socket file left by a dead server is replaced; a live server's is not. */
static void
unix_socket_stale_replaced_live_kept(void **state)
{
    struct fixture *f = *state;
    char why[256];
    struct http_server *other = NULL;
    struct http_config cfg = {.unix_path = f->unix_path, .handler = test_handler};
    assert_int_equal(http_server_start(&cfg, &other, why, sizeof(why)), -EADDRINUSE);
    assert_null(other);
    assert_non_null(strstr(why, "another server"));

    http_server_stop(f->srv);
    f->srv = NULL;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0); /* a crashed server's leftover */
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    assert_true(strlen(f->unix_path) < sizeof(sa.sun_path));
    memcpy(sa.sun_path, f->unix_path, strlen(f->unix_path) + 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);
    fixture_start(f);
    struct client *c = client_unix(f->unix_path);
    struct response r;
    request(c, "GET", "/info", NULL, &r);
    assert_int_equal(r.status, 200);
    free(r.body);
    client_close(c);

    /* not a socket: left alone */
    http_server_stop(f->srv);
    f->srv = NULL;
    fd = open(f->unix_path, O_CREAT | O_WRONLY, 0600);
    close(fd);
    assert_int_equal(http_server_start(&cfg, &other, why, sizeof(why)), -EEXIST);
    unlink(f->unix_path);
}

static void
peer_cert_fingerprint(struct client *c, char *out, size_t out_len)
{
    unsigned n = 0;
    const gnutls_datum_t *certs = gnutls_certificate_get_peers(c->tls, &n);
    assert_true(certs && n >= 1);
    unsigned char digest[32];
    size_t dlen = sizeof(digest);
    assert_int_equal(gnutls_fingerprint(GNUTLS_DIG_SHA256, &certs[0], digest, &dlen), 0);
    for (size_t i = 0; i < dlen; i++)
        snprintf(out + 3 * i, out_len - 3 * i, i + 1 < dlen ? "%02X:" : "%02X", digest[i]);
}

static void
tls_cert_generated_then_reused(void **state)
{
    struct fixture *f = *state;
    struct stat st;
    assert_int_equal(stat(f->key_path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char fp1[96], fp2[96], seen[96];
    assert_int_equal(tls_cert_fingerprint(f->cert_path, fp1, sizeof(fp1)), 0);

    /* the certificate names the host and localhost, and is what TLS serves */
    char *pem = NULL;
    assert_int_equal(tls_cert_read_file(f->cert_path, &pem), 0);
    gnutls_x509_crt_t crt;
    gnutls_datum_t d = {(unsigned char *)pem, (unsigned)strlen(pem)};
    assert_int_equal(gnutls_x509_crt_init(&crt), 0);
    assert_int_equal(gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM), 0);
    assert_true(gnutls_x509_crt_check_hostname(crt, TEST_HOSTNAME));
    assert_true(gnutls_x509_crt_check_hostname(crt, "localhost"));
    assert_true(gnutls_x509_crt_check_hostname(crt, "127.0.0.1"));
    assert_true(gnutls_x509_crt_get_expiration_time(crt) - time(NULL) > 9LL * 365 * 86400);
    gnutls_x509_crt_deinit(crt);
    free(pem);

    struct client *c = client_tls(http_server_tls_port(f->srv));
    peer_cert_fingerprint(c, seen, sizeof(seen));
    assert_string_equal(seen, fp1);
    struct response r;
    request(c, "POST", "/info", "x", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "transport=tls"));
    free(r.body);
    client_close(c);

    http_server_stop(f->srv);
    f->srv = NULL;
    fixture_start(f);
    assert_int_equal(tls_cert_fingerprint(f->cert_path, fp2, sizeof(fp2)), 0);
    assert_string_equal(fp1, fp2);
    c = client_tls(http_server_tls_port(f->srv));
    peer_cert_fingerprint(c, seen, sizeof(seen));
    assert_string_equal(seen, fp1);
    client_close(c);
}

static void
tls_half_pair_refused(void **state)
{
    struct fixture *f = *state;
    http_server_stop(f->srv);
    f->srv = NULL;
    assert_int_equal(unlink(f->key_path), 0);
    char why[256];
    f->cfg.unix_path = NULL;
    assert_int_equal(http_server_start(&f->cfg, &f->srv, why, sizeof(why)), -ENOENT);
    assert_null(f->srv);
    assert_non_null(strstr(why, "cert.pem"));
}

/* The client goes away while its request is suspended; the late reply is
 * dropped without harm (ASan checks the rest). */
static void
client_gone_while_suspended(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_tcp(http_server_port(f->srv));
    client_sendf(c, "POST /defer HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}");
    WAIT_FOR(http_server_n_suspended(f->srv) == 1);
    client_close(c);
    usleep(20000);
    assert_int_equal(deferred_reply_all(), 1);
    assert_int_equal(http_server_n_suspended(f->srv), 0);
    /* the server is unharmed */
    c = client_tcp(http_server_port(f->srv));
    struct response r;
    request(c, "GET", "/info", NULL, &r);
    assert_int_equal(r.status, 200);
    free(r.body);
    client_close(c);
}

/* Stop while requests are suspended: clients see EOF, and the replies that
 * come after stop only free their requests. */
static void
stop_with_suspended_requests(void **state)
{
    struct fixture *f = *state;
    enum { N = 5 };
    struct client *c[N];
    for (int i = 0; i < N; i++) {
        c[i] = i % 2 ? client_unix(f->unix_path) : client_tcp(http_server_port(f->srv));
        client_sendf(c[i], "GET /defer HTTP/1.1\r\nHost: t\r\n\r\n");
    }
    WAIT_FOR(http_server_n_suspended(f->srv) == N);
    http_server_stop(f->srv);
    f->srv = NULL;
    for (int i = 0; i < N; i++) {
        assert_true(client_sees_eof(c[i]));
        client_close(c[i]);
    }
    assert_int_equal(access(f->unix_path, F_OK), -1); /* the socket file is gone */
    assert_int_equal(deferred_reply_all(), N);
}

static void
tunnel_echo_roundtrip(struct client *c, const char *first_line)
{
    char *end;
    while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
        assert_true(client_fill(c) > 0);
    assert_int_equal(strncmp(c->buf, first_line, strlen(first_line)), 0);
    client_consume(c, (size_t)(end - c->buf) + 4);
    for (int i = 0; i < 3; i++) {
        char msg[32];
        int n = snprintf(msg, sizeof(msg), "RFB 003.00%d\n", i);
        client_send(c, msg, (size_t)n);
        while (c->len < (size_t)n)
            assert_true(client_fill(c) > 0);
        assert_memory_equal(c->buf, msg, (size_t)n);
        client_consume(c, (size_t)n);
    }
}

static void
connect_tunnel_plain_and_tls(void **state)
{
    struct fixture *f = *state;
    struct client *c = client_tcp(http_server_port(f->srv));
    client_sendf(c, "CONNECT /tunnel?ref=OpaqueRef:x HTTP/1.1\r\nHost: t\r\n\r\n");
    tunnel_echo_roundtrip(c, "HTTP/1.1 200 OK\r\n");
    client_close(c);
    WAIT_FOR(atomic_load(&th.n_tunnels_done) == 1);

    c = client_tls(http_server_tls_port(f->srv));
    client_sendf(c, "CONNECT /tunnel HTTP/1.1\r\nHost: t\r\n\r\n");
    tunnel_echo_roundtrip(c, "HTTP/1.1 200 OK\r\n");
    client_close(c);
    WAIT_FOR(atomic_load(&th.n_tunnels_done) == 2);

    c = client_unix(f->unix_path);
    client_sendf(c, "GET /tunnel HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\n"
                    "Upgrade: rfb\r\n\r\n");
    tunnel_echo_roundtrip(c, "HTTP/1.1 101 Switching Protocols\r\n");
    client_close(c);
    WAIT_FOR(atomic_load(&th.n_tunnels_done) == 3);
}

/* Stop while tunnels are open: their callbacks return, stop does not hang. */
static void
stop_with_open_tunnels(void **state)
{
    struct fixture *f = *state;
    struct client *a = client_tcp(http_server_port(f->srv));
    struct client *b = client_tls(http_server_tls_port(f->srv));
    client_sendf(a, "CONNECT /tunnel HTTP/1.1\r\nHost: t\r\n\r\n");
    client_sendf(b, "CONNECT /tunnel HTTP/1.1\r\nHost: t\r\n\r\n");
    tunnel_echo_roundtrip(a, "HTTP/1.1 200 OK\r\n");
    tunnel_echo_roundtrip(b, "HTTP/1.1 200 OK\r\n");
    http_server_stop(f->srv);
    f->srv = NULL;
    assert_int_equal(atomic_load(&th.n_tunnels_done), 2);
    assert_true(client_sees_eof(a));
    client_close(a);
    client_close(b);
}

static void
start_errors(void **state)
{
    struct fixture *f = *state;
    char why[256];
    struct http_server *srv = NULL;
    struct http_config cfg = {.listen = "127.0.0.1:99999", .handler = test_handler};
    assert_int_equal(http_server_start(&cfg, &srv, why, sizeof(why)), -EINVAL);
    assert_non_null(strstr(why, "99999"));
    char busy[32];
    snprintf(busy, sizeof(busy), "127.0.0.1:%d", http_server_port(f->srv));
    cfg.listen = busy;
    assert_int_equal(http_server_start(&cfg, &srv, why, sizeof(why)), -EADDRINUSE);
    assert_null(srv);
    /* IPv6 loopback, where the host has it */
    cfg.listen = "[::1]:0";
    int rc = http_server_start(&cfg, &srv, why, sizeof(why));
    if (rc == 0) {
        struct client *c = calloc(1, sizeof(*c));
        struct sockaddr_in6 sa = {.sin6_family = AF_INET6,
                                  .sin6_port = htons((uint16_t)http_server_port(srv)),
                                  .sin6_addr = IN6ADDR_LOOPBACK_INIT};
        c->fd = socket(AF_INET6, SOCK_STREAM, 0);
        client_timeouts(c->fd);
        assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        struct response r;
        request(c, "GET", "/info", NULL, &r);
        assert_non_null(strstr(r.body, "peer=::1 "));
        free(r.body);
        client_close(c);
        http_server_stop(srv);
    } else {
        assert_true(rc == -EADDRNOTAVAIL || rc == -EAFNOSUPPORT);
    }
}

struct stress_arg {
    int port;
    unsigned seed;
    unsigned ok;
};

/* One client: keep-alive requests answered at once or from another thread
 * 1-4 ms later; every fifth request is abandoned right after it is sent. */
static void *
stress_client(void *arg)
{
    struct stress_arg *a = arg;
    struct client *c = client_tcp(a->port);
    for (unsigned i = 0; i < 40; i++) {
        unsigned ms = (unsigned)rand_r(&a->seed) % 5;
        char body[64];
        int n = snprintf(body, sizeof(body), "{\"seed\":%u,\"i\":%u}", a->seed, i);
        client_sendf(c, "POST /jitter?ms=%u HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s",
                     ms, n, body);
        if (i % 5 == 4) {
            client_close(c);
            c = client_tcp(a->port);
            continue;
        }
        struct response r;
        if (!client_read_response(c, &r) || r.status != 200 || strcmp(r.body, body) != 0) {
            free(r.body);
            break;
        }
        free(r.body);
        a->ok++;
    }
    client_close(c);
    return NULL;
}

static void
stress_replies_and_disconnects(void **state)
{
    struct fixture *f = *state;
    enum { N = 8 };
    pthread_t t[N];
    struct stress_arg a[N];
    for (unsigned i = 0; i < N; i++) {
        a[i] = (struct stress_arg){http_server_port(f->srv), i + 1, 0};
        assert_int_equal(pthread_create(&t[i], NULL, stress_client, &a[i]), 0);
    }
    for (unsigned i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(a[i].ok, 32); /* 40 requests, 8 abandoned */
    }
    WAIT_FOR(atomic_load(&th.n_calls) == N * 40); /* abandoned ones were still handled */
}

static void *
late_replier(void *arg)
{
    for (;;) {
        pthread_mutex_lock(&th.lock);
        if (th.n_held == 0) {
            pthread_mutex_unlock(&th.lock);
            return NULL;
        }
        struct http_request *req = th.held[--th.n_held];
        pthread_mutex_unlock(&th.lock);
        http_reply(req, 200, "application/json", "late", 4);
        usleep(100);
    }
}

/* Replies race http_server_stop(): each client gets its reply or EOF. */
static void
stop_races_late_replies(void **state)
{
    struct fixture *f = *state;
    enum { N = 30 };
    struct client *c[N];
    for (int i = 0; i < N; i++) {
        c[i] = client_tcp(http_server_port(f->srv));
        client_sendf(c[i], "GET /defer HTTP/1.1\r\nHost: t\r\n\r\n");
    }
    WAIT_FOR(http_server_n_suspended(f->srv) == N);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, late_replier, NULL), 0);
    usleep(1000);
    http_server_stop(f->srv);
    f->srv = NULL;
    pthread_join(t, NULL);
    assert_int_equal(held_count(), 0);
    for (int i = 0; i < N; i++) {
        struct response r;
        if (client_read_response(c[i], &r)) {
            assert_int_equal(r.status, 200);
            assert_string_equal(r.body, "late");
            free(r.body);
        }
        client_close(c[i]);
    }
}

/*==== Pure parsers ====*/

static void
parse_listen_cases(void **state)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char text[INET6_ADDRSTRLEN];
    assert_int_equal(http_parse_listen("127.0.0.1:8080", &ss, &len), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 8080);
    assert_int_equal(http_parse_listen("0.0.0.0:0", &ss, &len), 0);
    assert_int_equal(http_parse_listen(":443", &ss, &len), 0);
    assert_int_equal(((struct sockaddr_in *)&ss)->sin_addr.s_addr, htonl(INADDR_ANY));
    assert_int_equal(http_parse_listen("localhost:80", &ss, &len), 0);
    assert_int_equal(((struct sockaddr_in *)&ss)->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
    assert_int_equal(http_parse_listen("[::1]:8443", &ss, &len), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(len, sizeof(struct sockaddr_in6));
    inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, text, sizeof(text));
    assert_string_equal(text, "::1");
    assert_int_equal(http_parse_listen("[::]:65535", &ss, &len), 0);
    static const char *bad[] = {"", ":", "1.2.3.4", "1.2.3.4:", "1.2.3.4:65536", "1.2.3.4:-1",
                                "1.2.3.4:80x", "::1:80", "[::1]80", "[::1:80", "[1.2.3.4]:80",
                                "host.example:80", "1.2.3.4:000080", "[]:80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (http_parse_listen(bad[i], &ss, &len) != -EINVAL)
            fail_msg("accepted \"%s\"", bad[i]);
    assert_int_equal(http_parse_listen(NULL, &ss, &len), -EINVAL);
}

static void
header_token_cases(void **state)
{
    assert_true(http_header_has_token("Upgrade", "upgrade"));
    assert_true(http_header_has_token("keep-alive, Upgrade", "upgrade"));
    assert_true(http_header_has_token(" keep-alive ,\tUPGRADE\t", "upgrade"));
    assert_false(http_header_has_token("upgraded", "upgrade"));
    assert_false(http_header_has_token("", "upgrade"));
    assert_false(http_header_has_token(",,", "upgrade"));
    assert_false(http_header_has_token(NULL, "upgrade"));
}

static void
basic_auth_cases(void **state)
{
    char *u, *p;
    assert_true(http_parse_basic_auth("Basic cm9vdDo=", &u, &p)); /* "root:" */
    assert_string_equal(u, "root");
    assert_string_equal(p, "");
    free(u);
    free(p);
    assert_true(http_parse_basic_auth("basic  YTpiOmM", &u, &p)); /* "a:b:c", no padding */
    assert_string_equal(u, "a");
    assert_string_equal(p, "b:c");
    free(u);
    free(p);
    assert_false(http_parse_basic_auth("Bearer abc", &u, &p));
    assert_false(http_parse_basic_auth("Basic cm9vdA==", &u, &p)); /* no colon */
    assert_false(http_parse_basic_auth("Basic cm9v!dDo=", &u, &p));
    assert_false(http_parse_basic_auth("Basic YQBiOmM=", &u, &p)); /* "a\0b:c" */
    assert_false(http_parse_basic_auth("Basic", &u, &p));
    assert_false(http_parse_basic_auth(NULL, &u, &p));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_listen_cases),
        cmocka_unit_test(header_token_cases),
        cmocka_unit_test(basic_auth_cases),
        cmocka_unit_test_setup_teardown(post_body_delivered_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(keep_alive_two_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(suspended_requests_hold_no_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(deferred_reply_from_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(reply_from_thread_while_handler_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(body_over_limit_is_413, setup, teardown),
        cmocka_unit_test_setup_teardown(options_is_cors_preflight, setup, teardown),
        cmocka_unit_test_setup_teardown(status_500_closes_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(query_cookie_header_lookup, setup, teardown),
        cmocka_unit_test_setup_teardown(unix_socket_peer_is_unix, setup, teardown),
        cmocka_unit_test_setup_teardown(unix_socket_stale_replaced_live_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(tls_cert_generated_then_reused, setup, teardown),
        cmocka_unit_test_setup_teardown(tls_half_pair_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(client_gone_while_suspended, setup, teardown),
        cmocka_unit_test_setup_teardown(stop_with_suspended_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(connect_tunnel_plain_and_tls, setup, teardown),
        cmocka_unit_test_setup_teardown(stop_with_open_tunnels, setup, teardown),
        cmocka_unit_test_setup_teardown(start_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(stress_replies_and_disconnects, setup, teardown),
        cmocka_unit_test_setup_teardown(stop_races_late_replies, setup, teardown),
    };
    return cmocka_run_group_tests_name("http", tests, NULL, NULL);
}
