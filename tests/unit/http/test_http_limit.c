/* tests/unit/http/test_http_limit.c - connections per address (http/http_limit.c).
 *
 * The table alone, no sockets: an address is admitted up to its limit and
 * again once a connection is released; IPv4 and its v4-mapped IPv6 form are
 * one address; 127.0.0.1, ::1 and ::ffff:127.0.0.1 are never limited, but
 * other 127/8 addresses are; a limit of 0 admits everything.
 * Debug a failure with the case name: `meson test -C BUILD http-limit -v`.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "http/http_limit.h"

static struct sockaddr_storage
addr(const char *text)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, text, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
    } else {
        assert_int_equal(inet_pton(AF_INET6, text, &a6->sin6_addr), 1);
        a6->sin6_family = AF_INET6;
    }
    return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

static void
limit_then_release(void **state)
{
    struct http_limit *lim = http_limit_new(3);
    struct sockaddr_storage a = addr("192.0.2.7"), b = addr("192.0.2.8");
    struct http_limit_entry *e[3];
    for (int i = 0; i < 3; i++) {
        assert_true(http_limit_admit(lim, SA(a), sizeof(a)));
        e[i] = http_limit_acquire(lim, SA(a));
        assert_non_null(e[i]);
    }
    assert_false(http_limit_admit(lim, SA(a), sizeof(a)));
    assert_true(http_limit_admit(lim, SA(b), sizeof(b))); /* others are not affected */
    assert_int_equal(http_limit_count(lim, SA(a)), 3);
    http_limit_release(lim, e[1]);
    assert_true(http_limit_admit(lim, SA(a), sizeof(a)));
    http_limit_release(lim, e[0]);
    http_limit_release(lim, e[2]);
    assert_int_equal(http_limit_count(lim, SA(a)), 0); /* the entry is gone */
    http_limit_free(lim);
}

static void
v4_mapped_is_the_same_address(void **state)
{
    struct http_limit *lim = http_limit_new(1);
    struct sockaddr_storage v4 = addr("198.51.100.1"), mapped = addr("::ffff:198.51.100.1");
    struct http_limit_entry *e = http_limit_acquire(lim, SA(v4));
    assert_false(http_limit_admit(lim, SA(mapped), sizeof(mapped)));
    http_limit_release(lim, e);
    assert_true(http_limit_admit(lim, SA(mapped), sizeof(mapped)));
    http_limit_free(lim);
}

static void
loopback_is_exempt(void **state)
{
    struct http_limit *lim = http_limit_new(1);
    const char *exempt[] = {"127.0.0.1", "::1", "::ffff:127.0.0.1"};
    for (size_t i = 0; i < 3; i++) {
        struct sockaddr_storage a = addr(exempt[i]);
        for (int n = 0; n < 5; n++) {
            assert_true(http_limit_admit(lim, SA(a), sizeof(a)));
            assert_null(http_limit_acquire(lim, SA(a))); /* nothing counted */
        }
    }
    struct sockaddr_storage other = addr("127.0.0.2"); /* loopback, but limited */
    struct http_limit_entry *e = http_limit_acquire(lim, SA(other));
    assert_non_null(e);
    assert_false(http_limit_admit(lim, SA(other), sizeof(other)));
    http_limit_release(lim, e);
    http_limit_free(lim);
}

static void
zero_means_no_limit(void **state)
{
    struct http_limit *lim = http_limit_new(0);
    struct sockaddr_storage a = addr("203.0.113.5");
    for (int n = 0; n < 1000; n++) {
        assert_true(http_limit_admit(lim, SA(a), sizeof(a)));
        assert_null(http_limit_acquire(lim, SA(a)));
    }
    assert_true(http_limit_admit(lim, NULL, 0)); /* not IP (unix): admitted */
    http_limit_release(lim, NULL);
    http_limit_free(lim);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(limit_then_release),
        cmocka_unit_test(v4_mapped_is_the_same_address),
        cmocka_unit_test(loopback_is_exempt),
        cmocka_unit_test(zero_means_no_limit),
    };
    return cmocka_run_group_tests_name("http-limit", tests, NULL, NULL);
}
