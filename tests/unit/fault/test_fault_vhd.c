/* tests/unit/fault/test_fault_vhd.c - the VHD library under failing allocations and I/O.
 *
 * vhd/ promises that any failure leaves a readable VHD (vhd/write.c's ordering
 * rules): each operation is walked with the n-th allocation, read, write or
 * sync failing, and after every failure the files must pass vhd_check and
 * read back either the old or the new data, never a mix within a block.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "fault_walk.h"
#include "vhd/vhd.h"

#define MiB (1024u * 1024u)
#define DISK (8u * MiB)
#define CHUNK (64u * 1024u)

struct fx {
    char dir[64];
    char base[128], child[128];
    uint8_t *old_data, *new_data;
};

static void
path_in(struct fx *f, char *out, const char *name)
{
    snprintf(out, 128, "%s/%s", f->dir, name);
}

static bool
exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

static void
assert_sound(const char *path)
{
    struct vhd_check_report r;
    memset(&r, 0, sizeof(r));
    int rc = vhd_check(path, &r);
    if (rc != 0)
        fail_msg("%s fails vhd check (%d): %s", path, rc, r.n_problems ? r.problems[0] : "?");
}

/* The bytes at @off..+CHUNK of the chain at @path. */
static void
read_chunk(const char *path, uint64_t off, uint8_t *out)
{
    struct vhd_chain *c = NULL;
    assert_int_equal(vhd_chain_open(path, 0, &c), 0);
    assert_int_equal(vhd_chain_read(c, out, off, CHUNK), 0);
    assert_int_equal(vhd_chain_close(c), 0);
}

/* ---- create ---- */

static bool
create_step(void *opaque)
{
    struct fx *f = opaque;
    return vhd_create(f->child, DISK, VHD_TYPE_DYNAMIC) == 0;
}

static void
create_check(void *opaque, bool ok, unsigned long n, const char *site)
{
    struct fx *f = opaque;
    if (exists(f->child)) { /* a create that failed must not leave a broken file */
        if (!ok)
            assert_sound(f->child);
        unlink(f->child);
    }
}

/* ---- snapshot ---- */

static bool
snapshot_step(void *opaque)
{
    struct fx *f = opaque;
    return vhd_snapshot(f->base, f->child) == 0;
}

static void
snapshot_check(void *opaque, bool ok, unsigned long n, const char *site)
{
    struct fx *f = opaque;
    assert_sound(f->base);
    uint8_t buf[CHUNK];
    read_chunk(f->base, 0, buf);
    assert_memory_equal(buf, f->old_data, CHUNK);
    if (exists(f->child)) {
        if (!ok)
            assert_sound(f->child);
        unlink(f->child);
    }
}

/* ---- write ---- */

static bool
write_step(void *opaque)
{
    struct fx *f = opaque;
    struct vhd_chain *c = NULL;
    if (vhd_chain_open(f->child, VHD_OPEN_RDWR, &c) < 0)
        return false;
    int rc = vhd_chain_write(c, f->new_data, 3 * MiB, CHUNK, true);
    int rc2 = vhd_chain_close(c);
    return rc == 0 && rc2 == 0;
}

static void
write_check(void *opaque, bool ok, unsigned long n, const char *site)
{
    struct fx *f = opaque;
    assert_sound(f->child);
    uint8_t buf[CHUNK];
    read_chunk(f->child, 3 * MiB, buf);
    bool is_new = memcmp(buf, f->new_data, CHUNK) == 0;
    bool is_old = memcmp(buf, f->old_data + 0, CHUNK) == 0 || buf[0] == 0;
    if (ok)
        assert_true(is_new);
    else if (!is_new && !is_old)
        fail_msg("a failed write at %s left a mix of old and new data", site);
    /* start the next attempt from a fresh child */
    unlink(f->child);
    assert_int_equal(vhd_snapshot(f->base, f->child), 0);
}

static int
setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/vessel-fault-vhd-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    path_in(f, f->base, "base.vhd");
    path_in(f, f->child, "child.vhd");
    f->old_data = malloc(CHUNK);
    f->new_data = malloc(CHUNK);
    for (unsigned i = 0; i < CHUNK; i++) {
        f->old_data[i] = (uint8_t)(i * 13 + 1);
        f->new_data[i] = (uint8_t)(i * 7 + 5);
    }
    assert_int_equal(vhd_create(f->base, DISK, VHD_TYPE_DYNAMIC), 0);
    struct vhd_chain *c = NULL;
    assert_int_equal(vhd_chain_open(f->base, VHD_OPEN_RDWR, &c), 0);
    assert_int_equal(vhd_chain_write(c, f->old_data, 0, CHUNK, true), 0);
    assert_int_equal(vhd_chain_close(c), 0);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f->old_data);
    free(f->new_data);
    free(f);
    return 0;
}

static void
test_vhd_under_faults(void **state)
{
    struct fx *f = *state;
    unsigned long points = 0;
    points += fault_walk("vhd.create", FAULT_ALLOC | FAULT_IO, create_step, create_check, f);
    assert_sound(f->child); /* the walk's last, unfailed run */
    unlink(f->child);
    points += fault_walk("vhd.snapshot", FAULT_ALLOC | FAULT_IO, snapshot_step, snapshot_check, f);
    assert_sound(f->child); /* the write walk starts from this child */
    points += fault_walk("vhd.write", FAULT_ALLOC | FAULT_IO, write_step, write_check, f);
    assert_true(points >= 10);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_vhd_under_faults, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
