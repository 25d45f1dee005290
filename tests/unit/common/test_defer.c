/* tests/unit/common/test_defer.c - common/defer.c: a thread's scope of jobs
 * left for after a call's reply. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/defer.h"
#include "common/workpool.h"

static void
count(void *opaque)
{
    atomic_fetch_add((atomic_int *)opaque, 1);
}

static void
no_scope_refuses(void **state)
{
    (void)state;
    atomic_int n = 0;
    assert_false(defer_job(count, &n)); /* the caller runs it itself */
    assert_null(defer_end());           /* an end without a begin: nothing */
    defer_run(NULL);
    assert_int_equal(n, 0);
}

static void
scope_keeps_jobs_until_run(void **state)
{
    (void)state;
    atomic_int n = 0;
    defer_begin(NULL);
    assert_true(defer_job(count, &n));
    assert_true(defer_job(count, &n));
    struct defer_list *l = defer_end();
    assert_non_null(l);
    assert_int_equal(n, 0); /* nothing ran yet */
    assert_false(defer_job(count, &n)); /* the scope is over */
    defer_run(l);
    assert_int_equal(n, 2);
}

static void
empty_scope_is_null(void **state)
{
    (void)state;
    defer_begin(NULL);
    assert_null(defer_end());
}

static void
inner_scope_adds_to_outer(void **state)
{
    (void)state;
    atomic_int n = 0;
    defer_begin(NULL);
    defer_begin(NULL);
    assert_true(defer_job(count, &n));
    assert_null(defer_end()); /* the outer scope goes on */
    assert_true(defer_job(count, &n));
    struct defer_list *l = defer_end();
    assert_non_null(l);
    defer_run(l);
    assert_int_equal(n, 2);
}

struct other {
    atomic_int *n;
    bool deferred;
};

static void *
other_thread(void *arg)
{
    struct other *o = arg;
    o->deferred = defer_job(count, o->n);
    return NULL;
}

static void
scope_is_the_threads_own(void **state)
{
    (void)state;
    atomic_int n = 0;
    defer_begin(NULL);
    struct other o = {&n, true};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, other_thread, &o), 0);
    pthread_join(t, NULL);
    assert_false(o.deferred);
    assert_null(defer_end());
}

static void
jobs_go_to_the_pool(void **state)
{
    (void)state;
    struct workpool_config cfg = {.min_threads = 1, .max_threads = 2, .idle_ms = 1000};
    struct workpool *wp = NULL;
    assert_int_equal(workpool_start(&cfg, &wp), 0);
    atomic_int n = 0;
    defer_begin(wp);
    for (int i = 0; i < 3; i++)
        assert_true(defer_job(count, &n));
    defer_run(defer_end());
    for (int i = 0; i < 5000 && atomic_load(&n) < 3; i++)
        usleep(1000);
    assert_int_equal(atomic_load(&n), 3);
    workpool_stop(wp);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(no_scope_refuses),
        cmocka_unit_test(scope_keeps_jobs_until_run),
        cmocka_unit_test(empty_scope_is_null),
        cmocka_unit_test(inner_scope_adds_to_outer),
        cmocka_unit_test(scope_is_the_threads_own),
        cmocka_unit_test(jobs_go_to_the_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
