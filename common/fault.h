/* common/fault.h - fault injection: fail the n-th allocation or I/O on demand.
 *
 * SQLite's way (src/test_malloc.c, test/malloc_common.tcl): a test arms a
 * countdown, runs one request, and the n-th fallible call of the armed kinds
 * fails; the test walks n upward until the request succeeds, checking at each
 * step that the failure came back as a clean error, leaked nothing (ASan) and
 * left nothing half-written.
 *
 * I/O sites are marked in the code with FAULT_POINT("db.commit"): a load and a
 * compare when nothing is armed, so they stay in every build. Allocations are
 * counted by the test executables only, which link tests/unit/fault/ wrappers
 * of malloc, calloc, realloc, strdup and strndup (ld --wrap): the product's
 * binaries never pay for them.
 *
 * The countdown is process-wide and meant for single-threaded tests.
 */
#ifndef VESSEL_COMMON_FAULT_H
#define VESSEL_COMMON_FAULT_H

#include <stdbool.h>

enum fault_kind {
    FAULT_ALLOC = 1 << 0,
    FAULT_IO = 1 << 1,
};

/* The @n-th (1: the next) call of a kind in @kinds fails; later ones succeed. */
void fault_arm(unsigned kinds, unsigned long n);
void fault_disarm(void);
/* Fallible calls of the armed kinds seen since fault_arm, and whether one failed. */
unsigned long fault_calls(void);
bool fault_fired(void);
/* The name of the site that failed, or NULL. */
const char *fault_site(void);

/* At a fallible site: true when this call must fail (the site then returns
 * its usual error: NULL, -EIO, ...). */
bool fault_check(enum fault_kind kind, const char *site);
#define FAULT_POINT(site) fault_check(FAULT_IO, (site))

#endif
