/* tests/unit/vhd/fixture.h - what the vhd/ unit tests share: a fresh temporary
 * directory per case, file names in it, known patterns, and "vhd check passes".
 * Included once per test program (the definitions are static). */
#ifndef VESSEL_TESTS_VHD_FIXTURE_H
#define VESSEL_TESTS_VHD_FIXTURE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "vhd/vhd.h"

static char dir[64];

static int
setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/vhd-unit.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int
teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* @name in the case's directory; the last four results stay valid. */
static const char *
path(const char *name)
{
    static char p[4][128];
    static int i;
    i = (i + 1) % 4;
    snprintf(p[i], sizeof(p[i]), "%s/%s", dir, name);
    return p[i];
}

/* A pattern that differs per sector and per @seed. */
static void
fill(uint8_t *buf, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 9));
}

static void
assert_sound(const char *p)
{
    struct vhd_check_report r;
    int rc = vhd_check(p, &r);
    if (rc != 0 && r.n_problems)
        print_error("%s\n", r.problems[0]);
    assert_int_equal(rc, 0);
}

#endif
