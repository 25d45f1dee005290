/* tests/unit/api/test_host_evacuate.c - the memory half of an evacuation
 * plan (api/host_evacuate.h evacuate_binpack). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "api/host_evacuate.h"

#define MIB (1024 * 1024LL)

/* the biggest VM goes first, to the host with the most memory left */
static void
biggest_first_to_most_free(void **state)
{
    (void)state;
    struct evac_vm vms[] = {{"small", 100 * MIB, "x"}, {"big", 700 * MIB, NULL},
                            {"mid", 300 * MIB, NULL}};
    struct evac_host hosts[] = {{"A", 800 * MIB}, {"B", 500 * MIB}};
    evacuate_binpack(vms, 3, hosts, 2);
    assert_string_equal(vms[1].target, "A"); /* 700 of A's 800 */
    assert_string_equal(vms[2].target, "B"); /* 300 of B's 500 */
    assert_string_equal(vms[0].target, "B"); /* B has 200 left, A 100 */
    assert_int_equal(hosts[0].free, 100 * MIB);
    assert_int_equal(hosts[1].free, 100 * MIB);
}

/* a VM no host can hold is left without a target; the others still go */
static void
too_big_left_unplaced(void **state)
{
    (void)state;
    struct evac_vm vms[] = {{"huge", 900 * MIB, NULL}, {"fits", 200 * MIB, NULL}};
    struct evac_host hosts[] = {{"A", 600 * MIB}, {"B", 250 * MIB}};
    evacuate_binpack(vms, 2, hosts, 2);
    assert_null(vms[0].target);
    assert_string_equal(vms[1].target, "A");
    assert_int_equal(hosts[0].free, 400 * MIB);
    assert_int_equal(hosts[1].free, 250 * MIB);
}

/* memory placed on a host counts for the next VM: two that fit one by one
 * but not together go to two hosts, or one waits */
static void
placed_memory_counts(void **state)
{
    (void)state;
    struct evac_vm vms[] = {{"v1", 400 * MIB, NULL}, {"v2", 400 * MIB, NULL},
                            {"v3", 400 * MIB, NULL}};
    struct evac_host hosts[] = {{"A", 500 * MIB}, {"B", 500 * MIB}};
    evacuate_binpack(vms, 3, hosts, 2);
    assert_string_equal(vms[0].target, "A"); /* ties: the earlier host, VMs in order */
    assert_string_equal(vms[1].target, "B");
    assert_null(vms[2].target);
}

/* a host whose free memory is unknown (negative) is not limited, and is
 * preferred over any known amount */
static void
unknown_memory_not_limited(void **state)
{
    (void)state;
    struct evac_vm vms[] = {{"v1", 400 * MIB, NULL}, {"v2", 400 * MIB, NULL}};
    struct evac_host hosts[] = {{"A", 500 * MIB}, {"U", -1}};
    evacuate_binpack(vms, 2, hosts, 2);
    assert_string_equal(vms[0].target, "U");
    assert_string_equal(vms[1].target, "U");
    assert_int_equal(hosts[1].free, -1);
    assert_int_equal(hosts[0].free, 500 * MIB);
}

/* no hosts, no VMs */
static void
empty_sides(void **state)
{
    (void)state;
    struct evac_vm vms[] = {{"v1", 1, "stale"}};
    evacuate_binpack(vms, 1, NULL, 0);
    assert_null(vms[0].target);
    struct evac_host hosts[] = {{"A", 10}};
    evacuate_binpack(NULL, 0, hosts, 1);
    assert_int_equal(hosts[0].free, 10);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(biggest_first_to_most_free),
        cmocka_unit_test(too_big_left_unplaced),
        cmocka_unit_test(placed_memory_counts),
        cmocka_unit_test(unknown_memory_not_limited),
        cmocka_unit_test(empty_sides),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
