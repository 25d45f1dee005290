/* tests/unit/rpc/test_login_throttle.c - backoff per (address, account).
 *
 * The attacks of the security review, replayed against the table with a clock
 * the test sets: five bad passwords must not lock out the right one from an
 * address that logged in before; a stranger is refused; a spray of addresses
 * stays within the table's bound and old entries go.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

#include "rpc/login_throttle.h"

static void
fail_n(struct login_throttle *t, const char *peer, const char *user, int n, time_t now)
{
    for (int i = 0; i < n; i++)
        login_throttle_failed(t, peer, user, now);
}

static void
test_five_failures_lock_a_stranger(void **state)
{
    struct login_throttle *t = login_throttle_new(100, 100);
    time_t now = 1000;
    fail_n(t, "10.0.0.1", "alice", THROTTLE_FREE_FAILURES - 1, now);
    assert_true(login_throttle_admit(t, "10.0.0.1", "alice", now));
    login_throttle_failed(t, "10.0.0.1", "alice", now);
    assert_false(login_throttle_admit(t, "10.0.0.1", "alice", now));
    /* other accounts from the address, and the account from elsewhere, go on */
    assert_true(login_throttle_admit(t, "10.0.0.1", "bob", now));
    assert_true(login_throttle_admit(t, "10.0.0.2", "alice", now));
    /* the first backoff is 4 s */
    assert_false(login_throttle_admit(t, "10.0.0.1", "alice", now + 3));
    assert_true(login_throttle_admit(t, "10.0.0.1", "alice", now + 4));
    login_throttle_free(t);
}

static void
test_backoff_doubles_up_to_the_cap(void **state)
{
    struct login_throttle *t = login_throttle_new(100, 100);
    time_t now = 1000;
    fail_n(t, "10.0.0.1", "alice", THROTTLE_FREE_FAILURES + 1, now);
    assert_false(login_throttle_admit(t, "10.0.0.1", "alice", now + 7));
    assert_true(login_throttle_admit(t, "10.0.0.1", "alice", now + 8));
    fail_n(t, "10.0.0.1", "alice", 30, now);
    assert_false(login_throttle_admit(t, "10.0.0.1", "alice", now + THROTTLE_MAX_BACKOFF_S - 1));
    assert_true(login_throttle_admit(t, "10.0.0.1", "alice", now + THROTTLE_MAX_BACKOFF_S));
    login_throttle_free(t);
}

static void
test_right_password_passes_from_a_known_address(void **state)
{
    struct login_throttle *t = login_throttle_new(100, 100);
    time_t now = 1000;
    login_throttle_succeeded(t, "10.0.0.1", "alice", now);
    fail_n(t, "10.0.0.1", "alice", 6, now + 10);
    /* checked (so the right password passes) while backed off */
    assert_true(login_throttle_admit(t, "10.0.0.1", "alice", now + 10));
    /* a success clears the failures */
    login_throttle_succeeded(t, "10.0.0.1", "alice", now + 10);
    assert_true(login_throttle_admit(t, "10.0.0.1", "alice", now + 10));
    /* but a guesser sharing the address gets no unlimited tries */
    fail_n(t, "10.0.0.1", "alice", THROTTLE_TRUSTED_MAX_FAILURES, now + 11);
    assert_false(login_throttle_admit(t, "10.0.0.1", "alice", now + 11));
    /* a trusted pair is forgotten after THROTTLE_TRUST_S */
    login_throttle_free(t);
    t = login_throttle_new(100, 100);
    login_throttle_succeeded(t, "10.0.0.1", "alice", now);
    fail_n(t, "10.0.0.1", "alice", 6, now + THROTTLE_TRUST_S);
    assert_false(login_throttle_admit(t, "10.0.0.1", "alice", now + THROTTLE_TRUST_S));
    login_throttle_free(t);
}

static void
test_an_address_spraying_accounts_is_throttled(void **state)
{
    struct login_throttle *t = login_throttle_new(1000, 100);
    time_t now = 1000;
    login_throttle_succeeded(t, "10.0.0.1", "root", now);
    char user[32];
    for (int i = 0; i < THROTTLE_PEER_FREE_FAILURES; i++) {
        snprintf(user, sizeof(user), "user%d", i);
        login_throttle_failed(t, "10.0.0.1", user, now);
    }
    assert_false(login_throttle_admit(t, "10.0.0.1", "someone-else", now));
    assert_true(login_throttle_admit(t, "10.0.0.1", "root", now)); /* known pair */
    assert_true(login_throttle_admit(t, "10.0.0.9", "someone-else", now));
    login_throttle_free(t);
}

static void
test_ipv6_counts_by_prefix(void **state)
{
    struct login_throttle *t = login_throttle_new(100, 100);
    time_t now = 1000;
    fail_n(t, "2001:db8::1", "alice", THROTTLE_FREE_FAILURES, now);
    assert_false(login_throttle_admit(t, "2001:db8::ffff:2", "alice", now));
    assert_true(login_throttle_admit(t, "2001:db8:0:1::1", "alice", now));
    login_throttle_free(t);
}

static void
test_tables_stay_bounded_and_forget(void **state)
{
    struct login_throttle *t = login_throttle_new(1000, 10);
    time_t now = 1000;
    char peer[32];
    for (int i = 0; i < 100000; i++) {
        snprintf(peer, sizeof(peer), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
        login_throttle_failed(t, peer, "root", now);
        login_throttle_succeeded(t, peer, "x", now);
    }
    assert_true(login_throttle_size(t, false) <= 1000);
    assert_true(login_throttle_size(t, true) <= 10);
    /* the newest stay; after THROTTLE_FORGET_S quiet seconds nothing is left */
    fail_n(t, "10.1.134.159", "root", THROTTLE_FREE_FAILURES, now);
    assert_false(login_throttle_admit(t, "10.1.134.159", "root", now));
    assert_true(login_throttle_admit(t, "10.1.134.159", "root", now + THROTTLE_FORGET_S));
    assert_int_equal(login_throttle_size(t, false), 0);
    login_throttle_free(t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_five_failures_lock_a_stranger),
        cmocka_unit_test(test_backoff_doubles_up_to_the_cap),
        cmocka_unit_test(test_right_password_passes_from_a_known_address),
        cmocka_unit_test(test_an_address_spraying_accounts_is_throttled),
        cmocka_unit_test(test_ipv6_counts_by_prefix),
        cmocka_unit_test(test_tables_stay_bounded_and_forget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
