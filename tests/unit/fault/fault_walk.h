/* tests/unit/fault/fault_walk.h - the walk every fault test makes.
 *
 * fault_walk() runs @step with the n-th fallible call failing, for n = 1, 2,
 * ... until a run passes every point without a failure firing; @check runs
 * after each failed run and asserts that nothing was half done. It returns how
 * many failure points the request passed, which the tests print, so the suite
 * shows how much of each path was covered.
 */
#ifndef VESSEL_TESTS_FAULT_WALK_H
#define VESSEL_TESTS_FAULT_WALK_H

#include <stdbool.h>
#include <stdio.h>

#include "common/fault.h"

/* One attempt: true on success, false on a clean failure. */
typedef bool fault_step_fn(void *opaque);
/* After an attempt whose n-th point failed at @site: assert the invariants.
 * @ok: the attempt still succeeded (the failure was absorbed); the check then
 * undoes it, so each attempt starts from the same state. */
typedef void fault_check_fn(void *opaque, bool ok, unsigned long n, const char *site);

static inline unsigned long
fault_walk(const char *name, unsigned kinds, fault_step_fn *step, fault_check_fn *check,
           void *opaque)
{
    for (unsigned long n = 1;; n++) {
        fault_arm(kinds, n);
        bool ok = step(opaque);
        bool fired = fault_fired();
        const char *site = fault_site();
        fault_disarm();
        if (!fired) {
            if (!ok) {
                fprintf(stderr, "%s: failed with no fault injected (n=%lu)\n", name, n);
                return 0;
            }
            printf("# %s: %lu failure points, each a clean error\n", name, n - 1);
            fflush(stdout);
            return n - 1;
        }
        check(opaque, ok, n, site ? site : "?");
    }
}

#endif
