/* tests/unit/rpc/test_peers.c - the pool secret check and host addresses.
 *
 * session.slave_login's check accepts exactly DATA/ptoken's secret (a
 * trailing newline in the file is tolerated, not in what a peer sends) and
 * nothing when the host has none.
 * host.address parses as ADDR[:PORT], [V6]:PORT or a bare IPv6 address.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/fileio.h"
#include "rpc/peers.h"

static char dir[] = "/tmp/vessel-test-peers-XXXXXX";

static void
write_secret(const char *text)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/ptoken", dir);
    assert_int_equal(fileio_write_atomic(path, text, strlen(text), 0600), 0);
}

static void
test_no_secret_no_login(void **state)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/ptoken", dir);
    unlink(path);
    assert_false(pool_secret_check(dir, ""));
    assert_false(pool_secret_check(dir, "anything"));
    write_secret("\n");
    assert_false(pool_secret_check(dir, ""));
}

static void
test_secret_check_is_exact(void **state)
{
    const char *s = "3b9f0c1d2e4a5b6c7d8e9f00112233445566778899aabbccddeeff0011223344";
    write_secret(s);
    assert_true(pool_secret_check(dir, s));
    char longer[80], shorter[80], other[80], body[80];
    snprintf(longer, sizeof(longer), "%s0", s);
    snprintf(shorter, sizeof(shorter), "%.63s", s);
    snprintf(other, sizeof(other), "%s", s);
    other[10] = other[10] == 'a' ? 'b' : 'a';
    assert_false(pool_secret_check(dir, longer));
    assert_false(pool_secret_check(dir, shorter));
    assert_false(pool_secret_check(dir, other));
    assert_false(pool_secret_check(dir, NULL));
    /* the file as a person or pool.join may write it: with a newline */
    snprintf(body, sizeof(body), "%s\n", s);
    write_secret(body);
    assert_true(pool_secret_check(dir, s));
    assert_false(pool_secret_check(dir, body));
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
    check_address("[::1]:", false, NULL, 0);
    check_address("[]:1", false, NULL, 0);
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
        cmocka_unit_test(test_no_secret_no_login),
        cmocka_unit_test(test_secret_check_is_exact),
        cmocka_unit_test(test_addresses),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
