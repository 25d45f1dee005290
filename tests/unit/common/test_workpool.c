/* tests/unit/common/test_workpool.c - the elastic worker pool: jobs that block
 * never delay a new job's start, the cap queues and reports once, idle
 * threads retire, stop drops what never ran.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "common/workpool.h"

/* A gate the blocking jobs wait on, and counters of what ran. */
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool open;
    unsigned blocked, ran, dropped;
};

static struct gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0, 0, 0};

static void
gate_reset(void)
{
    pthread_mutex_lock(&g.mu);
    g.open = false;
    g.blocked = g.ran = g.dropped = 0;
    pthread_mutex_unlock(&g.mu);
}

static void
blocker(void *opaque)
{
    (void)opaque;
    pthread_mutex_lock(&g.mu);
    g.blocked++;
    pthread_cond_broadcast(&g.cv);
    while (!g.open)
        pthread_cond_wait(&g.cv, &g.mu);
    g.blocked--;
    g.ran++;
    pthread_mutex_unlock(&g.mu);
}

static void
quick(void *opaque)
{
    (void)opaque;
    pthread_mutex_lock(&g.mu);
    g.ran++;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
}

static void
dropped(void *opaque)
{
    (void)opaque;
    pthread_mutex_lock(&g.mu);
    g.dropped++;
    pthread_mutex_unlock(&g.mu);
}

static void
gate_open(void)
{
    pthread_mutex_lock(&g.mu);
    g.open = true;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
}

/* Waits up to @ms for *@counter to reach @n; true when it did. */
static bool
wait_count(unsigned *counter, unsigned n, unsigned ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&g.mu);
    while (*counter < n)
        if (pthread_cond_timedwait(&g.cv, &g.mu, &ts) != 0)
            break;
    bool ok = *counter >= n;
    pthread_mutex_unlock(&g.mu);
    return ok;
}

static void
test_blocked_jobs_do_not_delay(void **state)
{
    (void)state;
    gate_reset();
    struct workpool_config c = {.min_threads = 4, .max_threads = 256, .idle_ms = 10000};
    struct workpool *wp = NULL;
    assert_int_equal(workpool_start(&c, &wp), 0);
    for (int i = 0; i < 40; i++) /* ten times the threads kept while idle */
        assert_int_equal(workpool_submit(wp, blocker, dropped, NULL), 0);
    assert_true(wait_count(&g.blocked, 40, 5000));
    /* every one of them is blocked, yet a new job starts */
    assert_int_equal(workpool_submit(wp, quick, dropped, NULL), 0);
    assert_true(wait_count(&g.ran, 1, 2000));
    struct workpool_stats st;
    workpool_get_stats(wp, &st);
    assert_int_equal(st.threads, 41);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.saturations, 0);
    gate_open();
    assert_true(wait_count(&g.ran, 41, 5000));
    workpool_stop(wp);
    assert_int_equal(g.dropped, 0);
}

struct saturation {
    unsigned calls;
    struct workpool_stats last;
};

static void
on_saturated(void *opaque, const struct workpool_stats *st)
{
    struct saturation *s = opaque;
    s->calls++;
    s->last = *st;
}

static void
test_cap_queues_and_reports_once(void **state)
{
    (void)state;
    gate_reset();
    struct saturation sat = {0};
    struct workpool_config c = {.min_threads = 1, .max_threads = 3, .idle_ms = 10000,
                                .on_saturated = on_saturated, .opaque = &sat};
    struct workpool *wp = NULL;
    assert_int_equal(workpool_start(&c, &wp), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(workpool_submit(wp, blocker, dropped, NULL), 0);
    assert_true(wait_count(&g.blocked, 3, 5000));
    assert_int_equal(sat.calls, 0);
    assert_int_equal(workpool_submit(wp, quick, dropped, NULL), 0);
    assert_int_equal(workpool_submit(wp, quick, dropped, NULL), 0);
    assert_int_equal(sat.calls, 1); /* once per episode, not per job */
    assert_int_equal(sat.last.threads, 3);
    assert_int_equal(sat.last.queued, 1);
    usleep(100000);
    assert_int_equal(g.ran, 0); /* at the cap they wait */
    gate_open();
    assert_true(wait_count(&g.ran, 5, 5000));
    workpool_stop(wp);
}

static void
test_idle_threads_retire(void **state)
{
    (void)state;
    gate_reset();
    struct workpool_config c = {.min_threads = 2, .max_threads = 64, .idle_ms = 50};
    struct workpool *wp = NULL;
    assert_int_equal(workpool_start(&c, &wp), 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(workpool_submit(wp, blocker, dropped, NULL), 0);
    assert_true(wait_count(&g.blocked, 10, 5000));
    gate_open();
    assert_true(wait_count(&g.ran, 10, 5000));
    struct workpool_stats st;
    for (int i = 0; i < 100; i++) { /* up to 2 s */
        workpool_get_stats(wp, &st);
        if (st.threads == 2)
            break;
        usleep(20000);
    }
    assert_int_equal(st.threads, 2);
    assert_int_equal(st.peak, 10);
    /* and the pool still works after retiring threads */
    assert_int_equal(workpool_submit(wp, quick, dropped, NULL), 0);
    assert_true(wait_count(&g.ran, 11, 2000));
    workpool_stop(wp);
}

static void *
open_later(void *arg)
{
    (void)arg;
    usleep(100000);
    gate_open();
    return NULL;
}

static void
test_stop_drops_queued(void **state)
{
    (void)state;
    gate_reset();
    struct workpool_config c = {.min_threads = 1, .max_threads = 1, .idle_ms = 1000};
    struct workpool *wp = NULL;
    assert_int_equal(workpool_start(&c, &wp), 0);
    assert_int_equal(workpool_submit(wp, blocker, dropped, NULL), 0);
    assert_true(wait_count(&g.blocked, 1, 5000));
    assert_int_equal(workpool_submit(wp, quick, dropped, NULL), 0);
    pthread_t t;
    pthread_create(&t, NULL, open_later, NULL);
    workpool_stop(wp); /* waits for the blocker, drops the queued one */
    pthread_join(t, NULL);
    assert_int_equal(g.ran, 1);
    assert_int_equal(g.dropped, 1);
}

static void
test_bad_config(void **state)
{
    (void)state;
    struct workpool *wp = NULL;
    struct workpool_config none = {.min_threads = 0, .max_threads = 4};
    struct workpool_config inverted = {.min_threads = 4, .max_threads = 2};
    assert_int_equal(workpool_start(&none, &wp), -EINVAL);
    assert_int_equal(workpool_start(&inverted, &wp), -EINVAL);
    assert_int_equal(workpool_start(NULL, &wp), -EINVAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blocked_jobs_do_not_delay),
        cmocka_unit_test(test_cap_queues_and_reports_once),
        cmocka_unit_test(test_idle_threads_retire),
        cmocka_unit_test(test_stop_drops_queued),
        cmocka_unit_test(test_bad_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
