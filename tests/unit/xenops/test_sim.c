/* tests/unit/xenops/test_sim.c - the sim backend: the lifecycle with its
 * events and errors, then 1,000 domains through every transition (the scale
 * api/ is tested at), with a delay so events really arrive asynchronously.
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
#include <time.h>
#include <unistd.h>

#include "xenops/xenops.h"

#define N_DOMS 1000

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static unsigned counts[6];
static pthread_t cb_thread;
static bool cb_thread_set, cb_on_caller;

static void
on_event(void *opaque, const char *uuid, enum xenops_event ev)
{
    pthread_mutex_lock(&lock);
    if (!cb_thread_set) {
        cb_thread = pthread_self();
        cb_thread_set = true;
    }
    if (pthread_equal(pthread_self(), *(pthread_t *)opaque))
        cb_on_caller = true;
    counts[ev]++;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
}

static bool
wait_count(enum xenops_event ev, unsigned n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    pthread_mutex_lock(&lock);
    while (counts[ev] < n)
        if (pthread_cond_timedwait(&cond, &lock, &ts) != 0)
            break;
    bool ok = counts[ev] >= n;
    pthread_mutex_unlock(&lock);
    if (!ok)
        fprintf(stderr, "# %s: %u of %u\n", xenops_event_name(ev), counts[ev], n);
    return ok;
}

static pthread_t main_thread;

static struct xenops *
new_sim(unsigned delay_ms)
{
    memset(counts, 0, sizeof(counts));
    main_thread = pthread_self();
    struct xenops_init init = {.backend = "sim", .sim_delay_ms = delay_ms, .on_event = on_event,
                               .opaque = &main_thread};
    struct xenops *x = NULL;
    assert_int_equal(xenops_new(&init, &x), 0);
    assert_string_equal(xenops_backend_name(x), "sim");
    return x;
}

static void
cfg_init(struct xenops_domain_config *c, char *uuid, unsigned i)
{
    snprintf(uuid, 37, "51300000-0000-4000-8000-%012u", i);
    memset(c, 0, sizeof(*c));
    c->uuid = uuid;
    c->memory_bytes = 256u << 20;
    c->vcpus = 2;
    c->boot = XENOPS_BOOT_DIRECT;
    c->machine = XENOPS_MACHINE_MICROVM;
    c->kernel = "/k";
}

static void
test_lifecycle(void **state)
{
    (void)state;
    struct xenops *x = new_sim(1);
    char uuid[37];
    struct xenops_domain_config c;
    cfg_init(&c, uuid, 1);
    assert_int_equal(xenops_domain_pause(x, uuid), -ENOENT);
    assert_int_equal(xenops_domain_start(x, &c), 0);
    assert_int_equal(xenops_domain_start(x, &c), -EEXIST);
    struct xenops_stats st;
    assert_int_equal(xenops_domain_stats(x, uuid, &st), 0);
    assert_int_equal(st.power, XENOPS_POWER_RUNNING);
    assert_int_equal(st.memory_actual_bytes, 256u << 20);
    assert_int_equal(st.vcpus, 2);
    char *con = NULL;
    size_t len = 0;
    assert_int_equal(xenops_console_write(x, uuid, "hi\n", 3), 0);
    assert_int_equal(xenops_console_read(x, uuid, &con, &len), 0);
    assert_string_equal(con, "VESSEL-GUEST-UP\nhi\n");
    free(con);
    /* NIC hotplug: the front end checks the NIC as at start; sim has none */
    struct xenops_nic nic = {.tap = "vif1.0", .mac = "aa:00:00:00:00:01"};
    assert_int_equal(xenops_nic_plug(x, uuid, &nic), -ENOTSUP);
    assert_int_equal(xenops_nic_unplug(x, uuid, "vif1.0", false, 10), -ENOTSUP);
    assert_int_equal(xenops_nic_present(x, uuid, "vif1.0"), -ENOTSUP);
    nic.mac = "aa:00:00:00:00";
    assert_int_equal(xenops_nic_plug(x, uuid, &nic), -EINVAL);
    nic.mac = "aa:00:00:00:00:01";
    nic.tap = "vif1.0,script=x";
    assert_int_equal(xenops_nic_plug(x, uuid, &nic), -EINVAL);
    nic.tap = "a-tap-name-too-long";
    assert_int_equal(xenops_nic_plug(x, uuid, &nic), -EINVAL);
    assert_int_equal(xenops_nic_plug(x, NULL, &nic), -EINVAL);
    /* disk hotplug: checked as at start; sim only serves disks, so it accepts */
    struct xenops_disk disk = {.path = "/run/d.sock", .format = XENOPS_DISK_NBD};
    assert_int_equal(xenops_disk_plug(x, uuid, 1, &disk), 0);
    assert_int_equal(xenops_disk_unplug(x, uuid, 1, 10), 0);
    assert_int_equal(xenops_disk_plug(x, "00000000-0000-4000-8000-000000000000", 1, &disk),
                     -ENOENT);
    assert_int_equal(xenops_disk_plug(x, uuid, 1, NULL), -EINVAL);
    assert_int_equal(xenops_disk_plug(x, uuid, 256, &disk), -EINVAL);
    disk.path = "/run/d.sock,x=y";
    assert_int_equal(xenops_disk_plug(x, uuid, 1, &disk), -EINVAL);
    disk.path = "/run/d.sock";
    disk.format = XENOPS_DISK_RAW;
    assert_int_equal(xenops_disk_plug(x, uuid, 1, &disk), -EINVAL);
    disk.format = XENOPS_DISK_NBD;
    disk.cdrom = true;
    assert_int_equal(xenops_disk_plug(x, uuid, 1, &disk), -ENOTSUP);
    assert_int_equal(xenops_domain_unpause(x, uuid), -EBUSY);
    assert_int_equal(xenops_domain_pause(x, uuid), 0);
    assert_true(wait_count(XENOPS_EVENT_PAUSED, 1));
    assert_int_equal(xenops_domain_shutdown(x, uuid, false, 100), -ETIMEDOUT);
    assert_int_equal(xenops_domain_unpause(x, uuid), 0);
    assert_true(wait_count(XENOPS_EVENT_RESUMED, 1));
    assert_int_equal(xenops_domain_reboot(x, uuid, false, 100), 0);
    assert_true(wait_count(XENOPS_EVENT_REBOOTED, 1));

    char img[] = "/tmp/xenops-sim-XXXXXX";
    int fd = mkstemp(img);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(xenops_domain_suspend(x, uuid, img), 0);
    assert_true(wait_count(XENOPS_EVENT_SUSPENDED, 1));
    assert_int_equal(xenops_domain_stats(x, uuid, &st), -ENOENT);
    char other[37];
    struct xenops_domain_config c2;
    cfg_init(&c2, other, 2);
    assert_int_equal(xenops_domain_resume(x, &c2, img), -EINVAL); /* not its image */
    assert_int_equal(xenops_domain_resume(x, &c, img), 0);
    assert_true(wait_count(XENOPS_EVENT_RESUMED, 2));
    unlink(img);

    assert_int_equal(xenops_domain_shutdown(x, uuid, false, 100), 0);
    assert_true(wait_count(XENOPS_EVENT_HALTED, 1));
    assert_int_equal(xenops_domain_shutdown(x, uuid, true, 0), -ENOENT);
    /* the sim has no split hard shutdown: callers fall back to the above */
    assert_int_equal(xenops_domain_destroy(x, uuid, NULL, NULL), -ENOTSUP);
    c.memory_bytes = 1000; /* refused before the backend */
    assert_int_equal(xenops_domain_start(x, &c), -EINVAL);
    xenops_free(x);
    assert_false(cb_on_caller); /* events come from the backend's thread */
}

static double
secs_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static void
test_thousand(void **state)
{
    (void)state;
    struct xenops *x = new_sim(2);
    static char uuids[N_DOMS][37];
    struct xenops_domain_config c;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (unsigned i = 0; i < N_DOMS; i++) {
        cfg_init(&c, uuids[i], i);
        assert_int_equal(xenops_domain_start(x, &c), 0);
    }
    char **v = NULL;
    size_t n = 0;
    assert_int_equal(xenops_domain_list(x, &v, &n), 0);
    assert_int_equal(n, N_DOMS);
    xenops_strv_free(v, n);
    for (unsigned i = 0; i < N_DOMS; i++)
        assert_int_equal(xenops_domain_pause(x, uuids[i]), 0);
    assert_true(wait_count(XENOPS_EVENT_PAUSED, N_DOMS));
    for (unsigned i = 0; i < N_DOMS; i++)
        assert_int_equal(xenops_domain_unpause(x, uuids[i]), 0);
    assert_true(wait_count(XENOPS_EVENT_RESUMED, N_DOMS));
    for (unsigned i = 0; i < N_DOMS; i++)
        assert_int_equal(xenops_domain_reboot(x, uuids[i], true, 0), 0);
    assert_true(wait_count(XENOPS_EVENT_REBOOTED, N_DOMS));
    for (unsigned i = 0; i < N_DOMS; i++) {
        struct xenops_stats st;
        assert_int_equal(xenops_domain_stats(x, uuids[i], &st), 0);
        assert_int_equal(st.power, XENOPS_POWER_RUNNING);
    }
    for (unsigned i = 0; i < N_DOMS; i++)
        assert_int_equal(xenops_domain_shutdown(x, uuids[i], i % 2 == 0, 100), 0);
    assert_true(wait_count(XENOPS_EVENT_HALTED, N_DOMS));
    assert_int_equal(xenops_domain_list(x, &v, &n), 0);
    assert_int_equal(n, 0);
    xenops_strv_free(v, n);
    double s = secs_since(&t0);
    fprintf(stderr, "# %d domains, 5 transitions each, %u events: %.3f s\n", N_DOMS,
            counts[0] + counts[1] + counts[3] + counts[4], s);
    assert_true(s < 5.0);
    xenops_free(x);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lifecycle),
        cmocka_unit_test(test_thousand),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
