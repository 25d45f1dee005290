/* common/testhook.h - crash points, for tests of what a crash leaves behind,
 * and delay points, for tests of what must not depend on a path's speed.
 *
 * With VESSEL_TEST_CRASH_AT=<name> in its environment, a process that reaches
 * test_crash_point("<name>") kills itself with SIGKILL, exactly as a crash or
 * `kill -9` between two steps would. A test aid (the points are listed in
 * docs/storage.md); whoever sets a daemon's environment can kill it anyway.
 * With <ENV>=<ms> in its environment, test_delay_point("<ENV>") sleeps that
 * long (at most 10 s).
 */
#ifndef VESSEL_COMMON_TESTHOOK_H
#define VESSEL_COMMON_TESTHOOK_H

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline void
test_crash_point(const char *name)
{
    const char *at = getenv("VESSEL_TEST_CRASH_AT");
    if (at && strcmp(at, name) == 0)
        raise(SIGKILL);
}

static inline void
test_delay_point(const char *env)
{
    const char *v = getenv(env);
    long ms = v ? strtol(v, NULL, 10) : 0;
    if (ms > 0 && ms <= 10000) {
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

#endif
