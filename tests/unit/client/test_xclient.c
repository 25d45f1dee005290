/* tests/unit/client/test_xclient.c - the client against a scripted server on
 * a unix socket: a Success reply decoded into its C type, a Failure reply
 * (chunked) into an xerr, keep-alive (two calls, one connection), a retry on
 * a fresh connection when the server closed the kept-alive one, and HTTP 500.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "client/xclient.h"
#include "xapi_client.h"

#define OK_BODY "<?xml version=\"1.0\"?><methodResponse><params><param><value><struct>" \
    "<member><name>Status</name><value>Success</value></member><member><name>Value</name>" \
    "<value>OpaqueRef:s1</value></member></struct></value></param></params></methodResponse>"
#define FAIL_BODY "<?xml version=\"1.0\"?><methodResponse><params><param><value><struct>" \
    "<member><name>Status</name><value>Failure</value></member><member><name>" \
    "ErrorDescription</name><value><array><data><value>UUID_INVALID</value><value>VM</value>" \
    "<value>u1</value></data></array></value></member></struct></value></param></params>" \
    "</methodResponse>"

struct server {
    int lfd;
    char path[108];
    int accepts;
};

/* Reads one request (head + Content-Length body); false at EOF. */
static bool
read_request(int fd)
{
    char buf[8192];
    size_t len = 0;
    char *end;
    while (!(end = (len ? strstr(buf, "\r\n\r\n") : NULL))) {
        ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (n <= 0)
            return false;
        len += (size_t)n;
        buf[len] = '\0';
    }
    char *cl = strcasestr(buf, "Content-Length:");
    size_t want = cl ? strtoul(cl + 15, NULL, 10) : 0;
    size_t have = len - (size_t)(end + 4 - buf);
    while (have < want) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0)
            return false;
        have += (size_t)n;
    }
    return true;
}

static void
reply(int fd, const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

static void *
serve(void *opaque)
{
    struct server *s = opaque;
    char head[256];
    /* connection 1: success, chunked failure, then close without answering */
    int fd = accept(s->lfd, NULL, NULL);
    s->accepts++;
    read_request(fd);
    snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n",
             strlen(OK_BODY));
    reply(fd, head);
    reply(fd, OK_BODY);
    read_request(fd);
    reply(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    size_t half = strlen(FAIL_BODY) / 2;
    snprintf(head, sizeof(head), "%zx\r\n", half);
    reply(fd, head);
    if (write(fd, FAIL_BODY, half) < 0)
        return NULL;
    snprintf(head, sizeof(head), "\r\n%zx\r\n", strlen(FAIL_BODY) - half);
    reply(fd, head);
    reply(fd, FAIL_BODY + half);
    reply(fd, "\r\n0\r\n\r\n");
    close(fd);
    /* connection 2: the retried call, then an HTTP 500 */
    fd = accept(s->lfd, NULL, NULL);
    s->accepts++;
    read_request(fd);
    snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n",
             strlen(OK_BODY));
    reply(fd, head);
    reply(fd, OK_BODY);
    read_request(fd);
    reply(fd, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\nConnection: close\r\n"
              "\r\noops!");
    close(fd);
    return NULL;
}

static void
test_calls(void **state)
{
    (void)state;
    struct server s = {0};
    snprintf(s.path, sizeof(s.path), "/tmp/xclient-test-%d.sock", (int)getpid());
    unlink(s.path);
    s.lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, s.path);
    assert_int_equal(bind(s.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(s.lfd, 4), 0);
    pthread_t th;
    pthread_create(&th, NULL, serve, &s);

    struct xclient *xc = NULL;
    struct xclient_config cfg = {.transport = XCLIENT_UNIX, .unix_path = s.path,
                                 .timeout_ms = 5000};
    assert_int_equal(xclient_new(&cfg, &xc), 0);
    char *ref = NULL;
    struct xerr *err = NULL;
    assert_true(xc_vm_get_by_uuid(xc, "u0", &ref, &err));
    assert_string_equal(ref, "OpaqueRef:s1");
    free(ref);
    ref = NULL;
    assert_false(xc_vm_get_by_uuid(xc, "u1", &ref, &err));
    assert_string_equal(err->code, "UUID_INVALID");
    assert_int_equal(err->n_params, 2);
    assert_string_equal(err->params[1], "u1");
    xerr_free(err);
    err = NULL;
    /* the server closed the kept-alive connection: retried on a new one */
    assert_true(xc_vm_get_by_uuid(xc, "u2", &ref, &err));
    assert_string_equal(ref, "OpaqueRef:s1");
    free(ref);
    assert_false(xc_vm_get_by_uuid(xc, "u3", &ref, &err));
    assert_string_equal(err->code, "INTERNAL_ERROR");
    assert_non_null(strstr(err->params[0], "HTTP status 500"));
    xerr_free(err);
    pthread_join(th, NULL);
    assert_int_equal(s.accepts, 2);
    xclient_free(xc);
    close(s.lfd);
    unlink(s.path);
}

static void
test_connect_refused(void **state)
{
    (void)state;
    struct xclient *xc = NULL;
    struct xclient_config cfg = {.transport = XCLIENT_UNIX, .unix_path = "/nonexistent/x.sock"};
    assert_int_equal(xclient_new(&cfg, &xc), 0);
    struct xerr *err = NULL;
    char *ref = NULL;
    assert_false(xc_vm_get_by_uuid(xc, "u", &ref, &err));
    assert_string_equal(err->code, "INTERNAL_ERROR");
    assert_non_null(strstr(err->params[0], "cannot connect to /nonexistent/x.sock"));
    xerr_free(err);
    xclient_free(xc);
    struct xclient_config bad = {.transport = XCLIENT_TCP, .host = NULL};
    assert_int_equal(xclient_new(&bad, &xc), -EINVAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_calls),
        cmocka_unit_test(test_connect_refused),
    };
    return cmocka_run_group_tests_name("xclient", tests, NULL, NULL);
}
