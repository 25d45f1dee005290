/* common/fault.c - the fault countdown (common/fault.h). */
#include "common/fault.h"

#include <stdatomic.h>
#include <stddef.h>

static atomic_uint armed_kinds;
static atomic_ulong countdown;
static atomic_ulong calls;
static atomic_bool fired;
static const char *_Atomic fired_site;

void
fault_arm(unsigned kinds, unsigned long n)
{
    atomic_store(&calls, 0);
    atomic_store(&fired, false);
    atomic_store(&fired_site, NULL);
    atomic_store(&countdown, n);
    atomic_store(&armed_kinds, kinds);
}

void
fault_disarm(void)
{
    atomic_store(&armed_kinds, 0);
}

unsigned long
fault_calls(void)
{
    return atomic_load(&calls);
}

bool
fault_fired(void)
{
    return atomic_load(&fired);
}

const char *
fault_site(void)
{
    return atomic_load(&fired_site);
}

bool
fault_check(enum fault_kind kind, const char *site)
{
    if (!(atomic_load_explicit(&armed_kinds, memory_order_relaxed) & (unsigned)kind))
        return false;
    atomic_fetch_add(&calls, 1);
    if (atomic_fetch_sub(&countdown, 1) != 1)
        return false;
    atomic_store(&fired, true);
    atomic_store(&fired_site, site);
    return true;
}
