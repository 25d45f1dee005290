/* tests/unit/api/test_pool_holders.c - the view of held keys a watch keeps
 * (api/pool_holders.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/pool_holders.h"

/* *@holder for @key after asserting that the view answers. */
static char *
holder_of(struct pool_holders *h, const char *key)
{
    char *holder = (char *)"unset";
    assert_true(pool_holders_get(h, key, &holder));
    return holder;
}

static void
test_unknown_until_listed(void **state)
{
    (void)state;
    struct pool_holders *h = pool_holders_new();
    assert_non_null(h);
    char *holder = (char *)"unset";
    assert_false(pool_holders_get(h, "sr-gc/a", &holder)); /* ask etcd */
    assert_null(holder);
    pool_holders_on_event(h, ETCD_WATCH_RESET, NULL, NULL);
    pool_holders_on_event(h, ETCD_WATCH_PUT, "sr-gc/a", "host-1");
    assert_false(pool_holders_get(h, "sr-gc/a", &holder)); /* listing: not yet */
    pool_holders_on_event(h, ETCD_WATCH_SYNCED, NULL, NULL);
    char *got = holder_of(h, "sr-gc/a");
    assert_string_equal(got, "host-1");
    free(got);
    assert_null(holder_of(h, "sr-gc/b")); /* known: nobody holds it */
    pool_holders_free(h);
}

static void
test_changes_after_listing(void **state)
{
    (void)state;
    struct pool_holders *h = pool_holders_new();
    pool_holders_on_event(h, ETCD_WATCH_RESET, NULL, NULL);
    pool_holders_on_event(h, ETCD_WATCH_PUT, "sr-gc/a", "host-1");
    pool_holders_on_event(h, ETCD_WATCH_PUT, "sr-gc/b", "host-2");
    pool_holders_on_event(h, ETCD_WATCH_SYNCED, NULL, NULL);
    pool_holders_on_event(h, ETCD_WATCH_PUT, "sr-gc/a", "host-3"); /* the collector moved */
    pool_holders_on_event(h, ETCD_WATCH_DELETE, "sr-gc/b", NULL);
    pool_holders_on_event(h, ETCD_WATCH_PUT, "sr-gc/c", "host-1");
    char *a = holder_of(h, "sr-gc/a"), *c = holder_of(h, "sr-gc/c");
    assert_string_equal(a, "host-3");
    assert_string_equal(c, "host-1");
    assert_null(holder_of(h, "sr-gc/b"));
    free(a);
    free(c);
    pool_holders_free(h);
}

static void
test_relisting_replaces(void **state)
{
    (void)state;
    struct pool_holders *h = pool_holders_new();
    pool_holders_on_event(h, ETCD_WATCH_RESET, NULL, NULL);
    pool_holders_on_event(h, ETCD_WATCH_PUT, "sr-gc/a", "host-1");
    pool_holders_on_event(h, ETCD_WATCH_SYNCED, NULL, NULL);
    /* the watch restarted (changes may have been missed): a's key went */
    pool_holders_on_event(h, ETCD_WATCH_RESET, NULL, NULL);
    char *holder = NULL;
    assert_false(pool_holders_get(h, "sr-gc/a", &holder));
    pool_holders_on_event(h, ETCD_WATCH_PUT, "sr-gc/b", "host-2");
    pool_holders_on_event(h, ETCD_WATCH_SYNCED, NULL, NULL);
    assert_null(holder_of(h, "sr-gc/a"));
    char *b = holder_of(h, "sr-gc/b");
    assert_string_equal(b, "host-2");
    free(b);
    pool_holders_free(h);
    pool_holders_free(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_until_listed),
        cmocka_unit_test(test_changes_after_listing),
        cmocka_unit_test(test_relisting_replaces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
