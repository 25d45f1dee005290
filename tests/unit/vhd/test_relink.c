/* tests/unit/vhd/test_relink.c - chains from descriptors, re-parenting, the hidden flag,
 * coalescing an interior node while readers keep the chain open.
 *
 * Every case builds base <- mid <- leaf in a fresh directory with known bytes per layer
 * (base: block 0; mid: sectors in block 0 and all of block 2; leaf: block 1) and compares
 * whole-disk reads with the expected image kept in memory. Error cases check the errno
 * each function documents in vhd/vhd.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "vhd/vhd_int.h"

#include "tests/unit/vhd/fixture.h"

#define DISK (8u << 20)

static uint8_t expect[DISK], got[DISK];

static void
write_at(const char *p, uint64_t off, size_t len, unsigned seed)
{
    static uint8_t buf[2 << 20];
    struct vhd_chain *c;
    assert_true(len <= sizeof(buf));
    fill(buf, len, seed);
    assert_int_equal(vhd_chain_open(p, VHD_OPEN_RDWR, &c), 0);
    assert_int_equal(vhd_chain_write(c, buf, off, len, false), 0);
    assert_int_equal(vhd_chain_close(c), 0);
    memcpy(expect + off, buf, len);
}

/* base <- mid <- leaf named @prefix-{base,mid,leaf}.vhd; expect = what leaf reads. */
static void
make_chain(const char *prefix)
{
    char b[64], m[64], l[64];
    snprintf(b, sizeof(b), "%s-base.vhd", prefix);
    snprintf(m, sizeof(m), "%s-mid.vhd", prefix);
    snprintf(l, sizeof(l), "%s-leaf.vhd", prefix);
    memset(expect, 0, sizeof(expect));
    assert_int_equal(vhd_create(path(b), DISK, VHD_TYPE_DYNAMIC), 0);
    write_at(path(b), 0, 2 << 20, 1);
    assert_int_equal(vhd_snapshot(path(b), path(m)), 0);
    write_at(path(m), 4096, 1024, 2);
    write_at(path(m), 4 << 20, 2 << 20, 3);
    assert_int_equal(vhd_snapshot(path(m), path(l)), 0);
    write_at(path(l), (2 << 20) + 512, 8192, 4);
}

static void
assert_reads_expect(struct vhd_chain *c)
{
    memset(got, 0xAA, sizeof(got));
    assert_int_equal(vhd_chain_read(c, got, 0, DISK), 0);
    assert_memory_equal(got, expect, DISK);
}

static void
assert_path_reads_expect(const char *p, unsigned depth)
{
    struct vhd_chain *c;
    assert_int_equal(vhd_chain_open(p, VHD_OPEN_RDONLY, &c), 0);
    assert_int_equal(vhd_chain_depth(c), depth);
    assert_reads_expect(c);
    vhd_chain_close(c);
}

static void
test_open_fds(void **state)
{
    make_chain("f");
    int leaf = open(path("f-leaf.vhd"), O_RDWR), mid = open(path("f-mid.vhd"), O_RDWR),
        base = open(path("f-base.vhd"), O_RDONLY), leaf_ro = open(path("f-leaf.vhd"), O_RDONLY);
    assert_true(leaf >= 0 && mid >= 0 && base >= 0 && leaf_ro >= 0);
    struct vhd_chain *c;
    int fds[3] = {leaf, mid, base};
    assert_int_equal(vhd_chain_open_fds(fds, 3, VHD_OPEN_RDWR, &c), 0);
    close(leaf);                                   /* the chain holds its own dups */
    close(mid);
    close(base);
    close(leaf_ro);
    assert_int_equal(vhd_chain_depth(c), 3);
    assert_true(c->images[0]->writable);
    assert_false(c->images[1]->writable);          /* parents read-only even if O_RDWR */
    assert_reads_expect(c);
    uint8_t w[512];
    fill(w, sizeof(w), 9);
    assert_int_equal(vhd_chain_write(c, w, 6 << 20, sizeof(w), true), 0);
    memcpy(expect + (6 << 20), w, sizeof(w));
    assert_int_equal(vhd_chain_close(c), 0);
    assert_path_reads_expect(path("f-leaf.vhd"), 3);
}

static void
test_open_fds_errors(void **state)
{
    make_chain("e");
    int leaf = open(path("e-leaf.vhd"), O_RDWR), mid = open(path("e-mid.vhd"), O_RDONLY),
        base = open(path("e-base.vhd"), O_RDONLY), leaf_ro = open(path("e-leaf.vhd"), O_RDONLY);
    struct vhd_chain *c = NULL;
    int ok[3] = {leaf, mid, base};
    assert_int_equal(vhd_chain_open_fds(ok, 0, 0, &c), -EINVAL);
    int many[VHD_MAX_CHAIN_DEPTH + 1];
    for (size_t i = 0; i < VHD_MAX_CHAIN_DEPTH + 1; i++)
        many[i] = base;
    assert_int_equal(vhd_chain_open_fds(many, VHD_MAX_CHAIN_DEPTH + 1, 0, &c), -ELOOP);
    int missing[2] = {leaf, mid};
    assert_int_equal(vhd_chain_open_fds(missing, 2, 0, &c), -ENOENT);
    int skipped[2] = {leaf, base};
    assert_int_equal(vhd_chain_open_fds(skipped, 2, 0, &c), -ESTALE);
    assert_true(strstr(vhd_last_error(), "UUID") != NULL);
    int not_diff[2] = {base, base};
    assert_int_equal(vhd_chain_open_fds(not_diff, 2, 0, &c), -ESTALE);
    int loop[4] = {leaf, leaf_ro, mid, base};
    assert_int_equal(vhd_chain_open_fds(loop, 4, 0, &c), -ELOOP);
    int ro_leaf[3] = {leaf_ro, mid, base};
    assert_int_equal(vhd_chain_open_fds(ro_leaf, 3, VHD_OPEN_RDWR, &c), -EBADF);
    assert_int_equal(vhd_chain_open_fds(ro_leaf, 3, VHD_OPEN_RDONLY, &c), 0);
    vhd_chain_close(c);
    int bad[3] = {leaf, 9999, base};
    assert_int_equal(vhd_chain_open_fds(bad, 3, 0, &c), -EBADF);
    int null_dev = open("/dev/null", O_RDONLY);
    int dev[1] = {null_dev};
    assert_int_equal(vhd_chain_open_fds(dev, 1, 0, &c), -EINVAL);   /* not a regular file */
    close(null_dev);
    close(leaf);
    close(mid);
    close(base);
    close(leaf_ro);
}

/* Coalesce mid into a hidden base while a reader keeps leaf's chain open, re-parent leaf
 * onto base, drop mid: the open reader and a fresh open both read the same bytes. */
static void
test_online_coalesce_reparent(void **state)
{
    make_chain("c");
    assert_int_equal(vhd_set_hidden(path("c-base.vhd"), true), 0);
    assert_int_equal(vhd_set_hidden(path("c-mid.vhd"), true), 0);
    struct vhd_chain *reader, *mid_reader;
    assert_int_equal(vhd_chain_open(path("c-leaf.vhd"), VHD_OPEN_RDONLY, &reader), 0);
    assert_int_equal(vhd_chain_open(path("c-mid.vhd"), VHD_OPEN_RDONLY, &mid_reader), 0);
    assert_reads_expect(reader);
    assert_int_equal(vhd_coalesce(path("c-mid.vhd"), NULL, NULL), 0);
    assert_reads_expect(reader);                     /* unaffected while open */
    assert_int_equal(vhd_chain_read(mid_reader, got, 0, DISK), 0);
    vhd_chain_close(mid_reader);
    assert_sound(path("c-base.vhd"));
    struct vhd_info in;
    struct vhd_chain *c;
    assert_int_equal(vhd_chain_open(path("c-base.vhd"), VHD_OPEN_RDONLY, &c), 0);
    assert_int_equal(vhd_chain_info(c, 0, &in), 0);
    assert_true(in.hidden);                          /* coalesce keeps the flag */
    vhd_chain_close(c);
    assert_int_equal(vhd_reparent(path("c-leaf.vhd"), path("c-base.vhd")), 0);
    assert_reads_expect(reader);
    vhd_chain_close(reader);
    assert_int_equal(unlink(path("c-mid.vhd")), 0);
    assert_path_reads_expect(path("c-leaf.vhd"), 2);
    assert_sound(path("c-leaf.vhd"));
    assert_int_equal(vhd_chain_open(path("c-leaf.vhd"), VHD_OPEN_RDONLY, &c), 0);
    assert_int_equal(vhd_chain_info(c, 0, &in), 0);
    assert_string_equal(in.parent_name, "c-base.vhd");
    vhd_chain_close(c);
}

static void
test_reparent_errors(void **state)
{
    make_chain("r");
    assert_int_equal(vhd_reparent(path("r-base.vhd"), path("r-mid.vhd")), -EINVAL);
    assert_int_equal(vhd_reparent(path("r-leaf.vhd"), path("r-leaf.vhd")), -ELOOP);
    assert_int_equal(vhd_reparent(path("r-mid.vhd"), path("r-leaf.vhd")), -ELOOP);
    assert_int_equal(vhd_reparent(path("r-leaf.vhd"), "/tmp"), -EXDEV);
    assert_int_equal(vhd_reparent(path("r-leaf.vhd"), path("nope.vhd")), -ENOENT);
    assert_int_equal(vhd_create(path("r-big.vhd"), 2 * DISK, VHD_TYPE_DYNAMIC), 0);
    assert_int_equal(vhd_reparent(path("r-leaf.vhd"), path("r-big.vhd")), -EINVAL);
    /* a smaller parent is accepted: beyond its end the chain reads zeros */
    assert_int_equal(vhd_create(path("r-small.vhd"), DISK / 2, VHD_TYPE_DYNAMIC), 0);
    assert_int_equal(vhd_reparent(path("r-leaf.vhd"), path("r-small.vhd")), 0);
    assert_sound(path("r-leaf.vhd"));
    /* and back: the chain reads as before */
    assert_int_equal(vhd_reparent(path("r-leaf.vhd"), path("r-mid.vhd")), 0);
    assert_sound(path("r-leaf.vhd"));
    assert_path_reads_expect(path("r-leaf.vhd"), 3);
}

static void
test_set_hidden(void **state)
{
    struct vhd_chain *c;
    struct vhd_info in;
    assert_int_equal(vhd_create(path("h.vhd"), DISK, VHD_TYPE_DYNAMIC), 0);
    assert_int_equal(vhd_create(path("hf.vhd"), 1 << 20, VHD_TYPE_FIXED), 0);
    memset(expect, 0, sizeof(expect));
    write_at(path("h.vhd"), 1 << 20, 4096, 5);
    const char *names[2] = {"h.vhd", "hf.vhd"};
    for (int i = 0; i < 2; i++) {
        for (int v = 1; v >= 0; v--) {
            assert_int_equal(vhd_set_hidden(path(names[i]), v), 0);
            assert_sound(path(names[i]));
            assert_int_equal(vhd_chain_open(path(names[i]), VHD_OPEN_RDONLY, &c), 0);
            assert_int_equal(vhd_chain_info(c, 0, &in), 0);
            assert_int_equal(in.hidden, v);
            vhd_chain_close(c);
        }
    }
    assert_int_equal(vhd_set_hidden(path("h.vhd"), true), 0);
    assert_path_reads_expect(path("h.vhd"), 1);
    /* both copies agree: the head copy alone says hidden too */
    int fd = open(path("h.vhd"), O_RDONLY);
    uint8_t buf[512];
    struct vhd_footer f;
    assert_int_equal(pread(fd, buf, 512, 0), 512);
    close(fd);
    assert_int_equal(vhd_footer_parse(buf, &f), 0);
    assert_int_equal(f.hidden, 1);
    assert_int_equal(vhd_set_hidden(path("absent.vhd"), true), -ENOENT);
}

/* Coalesce allocating more blocks than one batch holds (64), into a dynamic base and into
 * a differencing parent; both read exactly what the child's chain read. */
static void
test_coalesce_batches(void **state)
{
    const uint64_t size = 300ull << 20;      /* 150 blocks */
    uint8_t sec[512];
    struct vhd_chain *c;
    static uint8_t want[512], have[512];
    assert_int_equal(vhd_create(path("bb.vhd"), size, VHD_TYPE_DYNAMIC), 0);
    assert_int_equal(vhd_snapshot(path("bb.vhd"), path("bm.vhd")), 0);
    assert_int_equal(vhd_snapshot(path("bm.vhd"), path("bl.vhd")), 0);
    const char *layers[2] = {"bm.vhd", "bl.vhd"};
    for (int k = 0; k < 2; k++) {
        assert_int_equal(vhd_chain_open(path(layers[k]), VHD_OPEN_RDWR, &c), 0);
        for (uint32_t b = (uint32_t)k; b < 150; b += 1 + (uint32_t)k) {
            fill(sec, sizeof(sec), b * 3 + (unsigned)k);
            assert_int_equal(vhd_chain_write(c, sec, (uint64_t)b * (2 << 20) + 512 * b, 512,
                                             false), 0);
        }
        assert_int_equal(vhd_chain_close(c), 0);
    }
    /* bl into bm (differencing parent, existing and new blocks), then bm into bb */
    assert_int_equal(vhd_coalesce(path("bl.vhd"), NULL, NULL), 0);
    assert_sound(path("bm.vhd"));
    assert_int_equal(vhd_coalesce(path("bm.vhd"), NULL, NULL), 0);
    assert_sound(path("bb.vhd"));
    assert_int_equal(vhd_chain_open(path("bb.vhd"), VHD_OPEN_RDONLY, &c), 0);
    struct vhd_info in;
    assert_int_equal(vhd_chain_info(c, 0, &in), 0);
    assert_int_equal(in.allocated_blocks, 150);
    for (uint32_t b = 0; b < 150; b++) {
        unsigned k = b % 2 == 1 ? 1 : 0;        /* the leaf wrote the odd blocks last */
        fill(want, sizeof(want), b * 3 + k);
        assert_int_equal(vhd_chain_read(c, have, (uint64_t)b * (2 << 20) + 512 * b, 512), 0);
        assert_memory_equal(have, want, 512);
    }
    vhd_chain_close(c);
}

/* Snapshot checks links and depth without the BATs; opening the result still checks all. */
static void
test_snapshot_links_only(void **state)
{
    char a[32], b[32];
    assert_int_equal(vhd_create(path("d0.vhd"), 4 << 20, VHD_TYPE_DYNAMIC), 0);
    int i;
    for (i = 1; i < VHD_MAX_SNAPSHOT_DEPTH; i++) {
        snprintf(a, sizeof(a), "d%d.vhd", i - 1);
        snprintf(b, sizeof(b), "d%d.vhd", i);
        assert_int_equal(vhd_snapshot(path(a), path(b)), 0);
    }
    snprintf(a, sizeof(a), "d%d.vhd", i - 1);
    assert_int_equal(vhd_snapshot(path(a), path("too-deep.vhd")), -EMLINK);
    /* a parent whose BAT names a block past EOF: snapshot succeeds, any open refuses */
    assert_int_equal(vhd_create(path("badbat.vhd"), 4 << 20, VHD_TYPE_DYNAMIC), 0);
    int fd = open(path("badbat.vhd"), O_RDWR);
    uint8_t e[4] = {0x00, 0x10, 0x00, 0x00};
    assert_int_equal(pwrite(fd, e, 4, 1536), 4);
    close(fd);
    assert_int_equal(vhd_snapshot(path("badbat.vhd"), path("onbad.vhd")), 0);
    struct vhd_chain *c;
    assert_int_equal(vhd_chain_open(path("onbad.vhd"), VHD_OPEN_RDONLY, &c), -EINVAL);
    /* links are still checked: a stale parent UUID refuses the snapshot */
    assert_int_equal(vhd_create(path("pp.vhd"), 4 << 20, VHD_TYPE_DYNAMIC), 0);
    assert_int_equal(vhd_snapshot(path("pp.vhd"), path("pc.vhd")), 0);
    assert_int_equal(unlink(path("pp.vhd")), 0);
    assert_int_equal(vhd_create(path("pp.vhd"), 4 << 20, VHD_TYPE_DYNAMIC), 0);
    assert_int_equal(vhd_snapshot(path("pc.vhd"), path("pcc.vhd")), -ESTALE);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_fds),
        cmocka_unit_test(test_open_fds_errors),
        cmocka_unit_test(test_online_coalesce_reparent),
        cmocka_unit_test(test_reparent_errors),
        cmocka_unit_test(test_set_hidden),
        cmocka_unit_test(test_coalesce_batches),
        cmocka_unit_test(test_snapshot_links_only),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
