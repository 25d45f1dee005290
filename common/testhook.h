/* common/testhook.h - crash points, for tests of what a crash leaves behind.
 *
 * With VESSEL_TEST_CRASH_AT=<name> in its environment, a process that reaches
 * test_crash_point("<name>") kills itself with SIGKILL, exactly as a crash or
 * `kill -9` between two steps would. A test aid (the points are listed in
 * docs/storage.md); whoever sets a daemon's environment can kill it anyway.
 */
#ifndef VESSEL_COMMON_TESTHOOK_H
#define VESSEL_COMMON_TESTHOOK_H

#include <signal.h>
#include <stdlib.h>
#include <string.h>

static inline void
test_crash_point(const char *name)
{
    const char *at = getenv("VESSEL_TEST_CRASH_AT");
    if (at && strcmp(at, name) == 0)
        raise(SIGKILL);
}

#endif
