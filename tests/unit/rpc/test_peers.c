/* tests/unit/rpc/test_peers.c - the pool secret file and host addresses.
 *
 * DATA/ptoken is made only when asked, 32 random bytes in hex with mode
 * 0600, never replaced once there; the check accepts exactly the secret
 * (a trailing newline in the file is tolerated, not in what a peer sends).
 * host.address parses as ADDR[:PORT], [V6]:PORT or a bare IPv6 address.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/fileio.h"
#include "rpc/peers.h"

static char dir[] = "/tmp/vessel-test-peers-XXXXXX";

static char *
read_secret(void)
{
    char path[128], *s = NULL;
    snprintf(path, sizeof(path), "%s/ptoken", dir);
    if (fileio_read_all(path, 4096, &s, NULL) < 0)
        return NULL;
    return s;
}

static void
test_secret_made_only_when_asked(void **state)
{
    char why[256] = "", path[128];
    snprintf(path, sizeof(path), "%s/ptoken", dir);
    unlink(path);
    assert_int_equal(pool_secret_ensure(dir, false, why, sizeof(why)), 0);
    assert_int_not_equal(access(path, F_OK), 0);
    assert_false(pool_secret_check(dir, ""));
    assert_int_equal(pool_secret_ensure(dir, true, why, sizeof(why)), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char *s = read_secret();
    assert_non_null(s);
    assert_int_equal(strlen(s), 64);
    assert_int_equal(strspn(s, "0123456789abcdef"), 64);
    /* a second start keeps it: the pool's hosts share it */
    assert_int_equal(pool_secret_ensure(dir, true, why, sizeof(why)), 0);
    char *again = read_secret();
    assert_string_equal(s, again);
    free(again);
    free(s);
}

static void
test_secret_check_is_exact(void **state)
{
    char why[256] = "";
    assert_int_equal(pool_secret_ensure(dir, true, why, sizeof(why)), 0);
    char *s = read_secret();
    assert_true(pool_secret_check(dir, s));
    char longer[80], shorter[80], other[80];
    snprintf(longer, sizeof(longer), "%s0", s);
    snprintf(shorter, sizeof(shorter), "%.63s", s);
    snprintf(other, sizeof(other), "%s", s);
    other[10] = other[10] == 'a' ? 'b' : 'a';
    assert_false(pool_secret_check(dir, longer));
    assert_false(pool_secret_check(dir, shorter));
    assert_false(pool_secret_check(dir, other));
    assert_false(pool_secret_check(dir, NULL));
    /* the file as a person or pool.join may write it: with a newline */
    char path[128], body[80];
    snprintf(path, sizeof(path), "%s/ptoken", dir);
    snprintf(body, sizeof(body), "%s\n", s);
    assert_int_equal(fileio_write_atomic(path, body, strlen(body), 0600), 0);
    assert_true(pool_secret_check(dir, s));
    assert_false(pool_secret_check(dir, body));
    free(s);
}

static void
check_address(const char *address, bool ok, const char *host, int port)
{
    char h[64] = "";
    int p = 0;
    assert_int_equal(peers_parse_address(address, h, sizeof(h), &p), ok);
    if (ok) {
        assert_string_equal(h, host);
        assert_int_equal(p, port);
    }
}

static void
test_addresses(void **state)
{
    check_address("10.0.0.1", true, "10.0.0.1", 443);
    check_address("10.0.0.1:8443", true, "10.0.0.1", 8443);
    check_address("host.example:1", true, "host.example", 1);
    check_address("[::1]:9443", true, "::1", 9443);
    check_address("[fe80::1]", true, "fe80::1", 443);
    check_address("fe80::1", true, "fe80::1", 443);
    check_address("", false, NULL, 0);
    check_address(":443", false, NULL, 0);
    check_address("10.0.0.1:", false, NULL, 0);
    check_address("10.0.0.1:0", false, NULL, 0);
    check_address("10.0.0.1:65536", false, NULL, 0);
    check_address("10.0.0.1:80x", false, NULL, 0);
    check_address("[::1]x", false, NULL, 0);
    check_address("[::1", false, NULL, 0);
    check_address("a-name-longer-than-the-buffer-the-caller-gave-for-it-0123456789abc", false,
                  NULL, 0);
}

static int
setup(void **state)
{
    return mkdtemp(dir) ? 0 : -1;
}

static int
teardown(void **state)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/ptoken", dir);
    unlink(path);
    rmdir(dir);
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_secret_made_only_when_asked),
        cmocka_unit_test(test_secret_check_is_exact),
        cmocka_unit_test(test_addresses),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
