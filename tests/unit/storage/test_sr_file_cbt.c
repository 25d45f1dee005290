/* tests/unit/storage/test_sr_file_cbt.c - the changed block logs of the
 * directory SR (storage/sr_file_cbt.c).
 *
 * Each case works in a fresh temporary directory, writing with the vhd/
 * library as a disk server does: the blocks changed between two snapshots
 * are exactly those written between them, from logs alone once the
 * snapshots' files are gone; destroying a log hands its blocks to the next;
 * the collector leaves a tracked leaf alone; a leaf replaced behind the
 * driver's back resets the log and cuts the list; disable ends the list.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "storage/sr_file.h"
#include "vhd/vhd.h"

#define MiB (1024ull * 1024)
#define K64 (64ull * 1024)
#define VDI "11111111-1111-4111-8111-111111111111"
#define S1 "22222222-2222-4222-8222-222222222222"
#define S2 "33333333-3333-4333-8333-333333333333"
#define S3 "44444444-4444-4444-8444-444444444444"

static char dir[64];

static int
setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/cbt-unit.XXXXXX");
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

static void
write_at(uint64_t off, size_t len)
{
    char f[128];
    snprintf(f, sizeof(f), "%s/%s.vhd", dir, VDI);
    struct vhd_chain *c = NULL;
    assert_int_equal(vhd_chain_open(f, VHD_OPEN_RDWR, &c), 0);
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    memset(buf, 0x5a, len);
    assert_int_equal(vhd_chain_write(c, buf, off, len, true), 0);
    free(buf);
    assert_int_equal(vhd_chain_close(c), 0);
}

/* A snapshot as api/vdi.c makes one: the files, then the logs. */
static void
snapshot(const char *snap)
{
    char base[37];
    assert_int_equal(sr_file_vdi_snapshot(dir, VDI, snap, base), 0);
    assert_int_equal(sr_file_cbt_snapshot(dir, VDI, snap), 0);
}

/* The changed blocks from @from to @to as a bit string "0101..." of the
 * first @n blocks, or the error. */
static int
changed(const char *from, const char *to, char *out, size_t n)
{
    uint8_t *bits = NULL;
    uint64_t size = 0;
    int rc = sr_file_cbt_changed(dir, from, to, &bits, &size);
    if (rc < 0)
        return rc;
    assert_int_equal(size, 16 * MiB);
    for (size_t i = 0; i < n; i++)
        out[i] = bits[i / 8] & (0x80u >> (i % 8)) ? '1' : '0';
    out[n] = '\0';
    free(bits);
    return 0;
}

static void
test_list(void **state)
{
    (void)state;
    char got[64];
    assert_int_equal(sr_file_vdi_create(dir, VDI, 16 * MiB), 0);
    assert_int_equal(sr_file_cbt_enable(dir, VDI), 0);
    assert_true(sr_file_cbt_exists(dir, VDI));
    write_at(0, 2 * MiB); /* before the first snapshot: counted in no answer */
    snapshot(S1);
    write_at(K64 + 512, 512);     /* block 1 */
    write_at(3 * K64 - 1, 2);     /* blocks 2 and 3 */
    snapshot(S2);
    write_at(10 * K64, K64);      /* block 10 */
    assert_int_equal(changed(S1, S2, got, 12), 0);
    assert_string_equal(got, "011100000000");
    assert_int_equal(changed(S2, VDI, got, 12), 0); /* the live leaf's own blocks */
    assert_string_equal(got, "000000000010");
    assert_int_equal(changed(S1, VDI, got, 12), 0);
    assert_string_equal(got, "011100000010");
    assert_int_equal(changed(S2, S1, got, 12), -ENOENT); /* the list goes forwards */
    assert_int_equal(changed(S1, S1, got, 12), -ENOENT);
    /* the snapshots' data goes (data_destroy), the logs answer as before */
    assert_int_equal(sr_file_vdi_destroy(dir, S1), 0);
    assert_int_equal(sr_file_vdi_destroy(dir, S2), 0);
    assert_int_equal(changed(S1, VDI, got, 12), 0);
    assert_string_equal(got, "011100000010");
    snapshot(S3);
    assert_int_equal(changed(S2, S3, got, 12), 0);
    assert_string_equal(got, "000000000010");
    /* a middle log destroyed: its blocks go to the next one */
    assert_int_equal(sr_file_cbt_remove(dir, S2), 0);
    assert_false(sr_file_cbt_exists(dir, S2));
    assert_int_equal(changed(S1, S3, got, 12), 0);
    assert_string_equal(got, "011100000010");
    assert_int_equal(sr_file_cbt_remove(dir, S2), 0); /* gone already: nothing to do */
    /* disable: the VDI's log goes, the last snapshot ends the list */
    assert_int_equal(sr_file_cbt_disable(dir, VDI), 0);
    assert_false(sr_file_cbt_exists(dir, VDI));
    assert_int_equal(changed(S3, VDI, got, 12), -ENOENT);
    assert_int_equal(changed(S1, S3, got, 12), 0);
}

static void
test_collector_keeps_tracked_leaf(void **state)
{
    (void)state;
    struct sr_file_gc_candidate c;
    assert_int_equal(sr_file_vdi_create(dir, VDI, 16 * MiB), 0);
    write_at(0, 4096);
    assert_int_equal(sr_file_cbt_enable(dir, VDI), 0);
    snapshot(S1);
    write_at(5 * K64, 4096);
    assert_int_equal(sr_file_vdi_destroy(dir, S1), 0);
    /* the base has one child, the tracked leaf: no candidate */
    assert_int_equal(sr_file_gc_find(dir, NULL, NULL, &c), 0);
    assert_int_equal(sr_file_cbt_disable(dir, VDI), 0);
    assert_int_equal(sr_file_gc_find(dir, NULL, NULL, &c), 1);
    assert_true(c.child_is_leaf);
}

static void
test_replaced_leaf_resets(void **state)
{
    (void)state;
    char got[64], f[128];
    assert_int_equal(sr_file_vdi_create(dir, VDI, 16 * MiB), 0);
    assert_int_equal(sr_file_cbt_enable(dir, VDI), 0);
    snapshot(S1);
    write_at(0, 512);
    assert_int_equal(sr_file_cbt_check(dir, VDI), 0); /* its own node: nothing to reset */
    assert_int_equal(changed(S1, VDI, got, 4), 0);
    assert_string_equal(got, "1000");
    /* another file in its place: writes may have been missed */
    snprintf(f, sizeof(f), "%s/%s.vhd", dir, VDI);
    assert_int_equal(unlink(f), 0);
    assert_int_equal(vhd_create(f, 16 * MiB, VHD_TYPE_DYNAMIC), 0);
    assert_int_equal(sr_file_cbt_check(dir, VDI), 1);
    assert_int_equal(sr_file_cbt_check(dir, VDI), 0); /* once */
    assert_int_equal(changed(S1, VDI, got, 4), -ENOENT);
    /* tracking goes on from the new node */
    snapshot(S2);
    write_at(2 * K64, 512);
    assert_int_equal(changed(S2, VDI, got, 4), 0);
    assert_string_equal(got, "0010");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_collector_keeps_tracked_leaf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replaced_leaf_resets, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
