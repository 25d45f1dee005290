/* tests/unit/vhd/test_chain.c - create, write, read, snapshot, check of vhd/ chains.
 *
 * Known-answer chains (spec 4.5: QEMU cannot verify chains): a parent with a pattern, a
 * child with sector-granular writes, expected bytes per sector; hostile links (loop,
 * missing parent, UUID mismatch) must fail with their documented errno.
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


static void
test_dynamic_write_read(void **state)
{
    struct vhd_chain *c;
    static uint8_t w[3 << 20], r[3 << 20];
    assert_int_equal(vhd_create(path("d.vhd"), 16 << 20, VHD_TYPE_DYNAMIC), 0);
    assert_int_equal(vhd_create(path("d.vhd"), 16 << 20, VHD_TYPE_DYNAMIC), -EEXIST);
    assert_int_equal(vhd_chain_open(path("d.vhd"), VHD_OPEN_RDWR, &c), 0);
    assert_int_equal(vhd_chain_size(c), 16 << 20);
    fill(w, sizeof(w), 1);
    assert_int_equal(vhd_chain_write(c, w, (1 << 20) + 3, sizeof(w) - 7, false), 0);  /* spans blocks, unaligned */
    assert_int_equal(vhd_chain_read(c, r, 0, sizeof(r)), 0);
    for (size_t i = 0; i < (1 << 20) + 3; i++)
        assert_int_equal(r[i], 0);
    assert_memory_equal(r + (1 << 20) + 3, w, sizeof(r) - (1 << 20) - 3);
    assert_int_equal(vhd_chain_read(c, r, (16 << 20) - 512, 1024), -EINVAL);
    uint64_t run;
    bool alloc;
    assert_int_equal(vhd_chain_block_status(c, 0, 16 << 20, &run, &alloc), 0);
    assert_true(alloc);                 /* dynamic: whole blocks 0 and 1 are allocated */
    assert_int_equal(run, 4 << 20);
    assert_int_equal(vhd_chain_block_status(c, 4 << 20, 12 << 20, &run, &alloc), 0);
    assert_false(alloc);
    assert_int_equal(run, 12 << 20);
    vhd_chain_close(c);
}

static void
test_dynamic_reopen(void **state)
{
    struct vhd_chain *c;
    static uint8_t w[8192], r[8192];
    assert_int_equal(vhd_create(path("e.vhd"), 8 << 20, VHD_TYPE_DYNAMIC), 0);
    assert_int_equal(vhd_chain_open(path("e.vhd"), VHD_OPEN_RDWR, &c), 0);
    fill(w, sizeof(w), 2);
    assert_int_equal(vhd_chain_write(c, w, 5 << 20, sizeof(w), true), 0);
    assert_int_equal(vhd_chain_close(c), 0);
    assert_sound(path("e.vhd"));
    assert_int_equal(vhd_chain_open(path("e.vhd"), VHD_OPEN_RDONLY, &c), 0);
    assert_int_equal(vhd_chain_read(c, r, 5 << 20, sizeof(r)), 0);
    assert_memory_equal(r, w, sizeof(w));
    assert_int_equal(vhd_chain_write(c, w, 0, 512, false), -EROFS);
    uint64_t run;
    bool alloc;
    assert_int_equal(vhd_chain_block_status(c, 4 << 20, 4 << 20, &run, &alloc), 0);
    assert_true(alloc);                          /* the block holding 5 MiB */
    assert_int_equal(run, 2 << 20);
    vhd_chain_close(c);
}

static void
test_fixed(void **state)
{
    struct vhd_chain *c;
    uint8_t w[1024], r[1024];
    assert_int_equal(vhd_create(path("f.vhd"), 1 << 20, VHD_TYPE_FIXED), 0);
    struct stat st;
    assert_int_equal(stat(path("f.vhd"), &st), 0);
    assert_int_equal(st.st_size, (1 << 20) + 512);
    assert_int_equal(vhd_chain_open(path("f.vhd"), VHD_OPEN_RDWR, &c), 0);
    fill(w, sizeof(w), 3);
    assert_int_equal(vhd_chain_write(c, w, 100, sizeof(w), false), 0);
    assert_int_equal(vhd_chain_read(c, r, 100, sizeof(r)), 0);
    assert_memory_equal(r, w, sizeof(w));
    vhd_chain_close(c);
    assert_sound(path("f.vhd"));
}

static void
test_snapshot_chain(void **state)
{
    struct vhd_chain *c;
    static uint8_t a[4 << 20], b[4096], r[4 << 20], expect[4 << 20];
    assert_int_equal(vhd_create(path("base.vhd"), 4 << 20, VHD_TYPE_DYNAMIC), 0);
    assert_int_equal(vhd_chain_open(path("base.vhd"), VHD_OPEN_RDWR, &c), 0);
    fill(a, sizeof(a), 4);
    assert_int_equal(vhd_chain_write(c, a, 0, sizeof(a), false), 0);
    vhd_chain_close(c);
    assert_int_equal(vhd_snapshot(path("base.vhd"), path("snap.vhd")), 0);
    assert_sound(path("snap.vhd"));
    assert_int_equal(vhd_snapshot(path("base.vhd"), "/nonexistent-dir/x.vhd"), -ENOENT);
    /* child: sectors 1 and 3 of block 0, and one sector at 2 MiB + 512 */
    assert_int_equal(vhd_chain_open(path("snap.vhd"), VHD_OPEN_RDWR, &c), 0);
    assert_int_equal(vhd_chain_depth(c), 2);
    fill(b, sizeof(b), 5);
    memcpy(expect, a, sizeof(a));
    assert_int_equal(vhd_chain_write(c, b, 512, 512, false), 0);
    assert_int_equal(vhd_chain_write(c, b + 512, 1536, 512, false), 0);
    assert_int_equal(vhd_chain_write(c, b + 1024, (2 << 20) + 512 + 10, 100, false), 0);
    memcpy(expect + 512, b, 512);
    memcpy(expect + 1536, b + 512, 512);
    memcpy(expect + (2 << 20) + 512 + 10, b + 1024, 100);
    assert_int_equal(vhd_chain_read(c, r, 0, sizeof(r)), 0);
    assert_memory_equal(r, expect, sizeof(r));
    /* zero a range spanning parent data: must read zeros, parent untouched */
    assert_int_equal(vhd_chain_zero(c, 3 << 20, 4096, false), 0);
    memset(expect + (3 << 20), 0, 4096);
    assert_int_equal(vhd_chain_read(c, r, 0, sizeof(r)), 0);
    assert_memory_equal(r, expect, sizeof(r));
    vhd_chain_close(c);
    assert_sound(path("snap.vhd"));
    assert_int_equal(vhd_chain_open(path("base.vhd"), VHD_OPEN_RDONLY, &c), 0);
    assert_int_equal(vhd_chain_read(c, r, 0, sizeof(r)), 0);
    assert_memory_equal(r, a, sizeof(a));
    vhd_chain_close(c);
    /* coalesce: the base then reads what the snapshot read */
    assert_int_equal(vhd_coalesce(path("snap.vhd"), NULL, NULL), 0);
    assert_sound(path("base.vhd"));
    assert_int_equal(vhd_chain_open(path("base.vhd"), VHD_OPEN_RDONLY, &c), 0);
    assert_int_equal(vhd_chain_read(c, r, 0, sizeof(r)), 0);
    assert_memory_equal(r, expect, sizeof(r));
    vhd_chain_close(c);
}

static void
test_resize(void **state)
{
    struct vhd_chain *c;
    static uint8_t w[1 << 20], r[1 << 20];
    assert_int_equal(vhd_create(path("g.vhd"), 4 << 20, VHD_TYPE_DYNAMIC), 0);
    assert_int_equal(vhd_chain_open(path("g.vhd"), VHD_OPEN_RDWR, &c), 0);
    fill(w, sizeof(w), 6);
    assert_int_equal(vhd_chain_write(c, w, 0, sizeof(w), false), 0);
    vhd_chain_close(c);
    assert_int_equal(vhd_resize(path("g.vhd"), 2 << 20), -EINVAL);
    assert_int_equal(vhd_resize(path("g.vhd"), 1ull << 30), 0);   /* BAT grows: block moves */
    assert_sound(path("g.vhd"));
    assert_int_equal(vhd_chain_open(path("g.vhd"), VHD_OPEN_RDWR, &c), 0);
    assert_int_equal(vhd_chain_size(c), 1ull << 30);
    assert_int_equal(vhd_chain_read(c, r, 0, sizeof(r)), 0);
    assert_memory_equal(r, w, sizeof(w));
    assert_int_equal(vhd_chain_write(c, w, (1ull << 30) - sizeof(w), sizeof(w), false), 0);
    vhd_chain_close(c);
    assert_sound(path("g.vhd"));
}

/* Make @child a differencing disk naming @parent_name with @uuid as the parent UUID. */
static void
make_diff(const char *child, const char *parent_name, const uint8_t uuid[16], bool own_uuid)
{
    struct vhd_image parent = {0};
    memcpy(parent.footer.uuid, uuid, 16);
    parent.fd = open("/dev/null", O_RDONLY);
    assert_int_equal(vhd_create_image(child, 1 << 20, VHD_TYPE_DIFF, &parent, parent_name), 0);
    close(parent.fd);
    if (own_uuid) {     /* rewrite the child's own UUID in both footers */
        int fd = open(child, O_RDWR);
        struct stat st;
        fstat(fd, &st);
        uint8_t buf[512];
        struct vhd_footer f;
        assert_int_equal(pread(fd, buf, 512, 0), 512);
        assert_int_equal(vhd_footer_parse(buf, &f), 0);
        memcpy(f.uuid, uuid, 16);
        vhd_footer_serialize(&f, buf);
        assert_int_equal(pwrite(fd, buf, 512, 0), 512);
        assert_int_equal(pwrite(fd, buf, 512, st.st_size - 512), 512);
        close(fd);
    }
}

static void
test_hostile_links(void **state)
{
    struct vhd_chain *c;
    struct vhd_check_report r;
    uint8_t u[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    make_diff(path("self.vhd"), "self.vhd", u, true);
    assert_int_equal(vhd_chain_open(path("self.vhd"), VHD_OPEN_RDONLY, &c), -ELOOP);
    assert_int_equal(vhd_check(path("self.vhd"), &r), -EINVAL);
    make_diff(path("orphan.vhd"), "missing.vhd", u, false);
    assert_int_equal(vhd_chain_open(path("orphan.vhd"), VHD_OPEN_RDONLY, &c), -ENOENT);
    assert_int_equal(vhd_check(path("orphan.vhd"), &r), -EINVAL);
    assert_int_equal(vhd_create(path("p.vhd"), 1 << 20, VHD_TYPE_DYNAMIC), 0);
    make_diff(path("stale.vhd"), "p.vhd", u, false);
    assert_int_equal(vhd_chain_open(path("stale.vhd"), VHD_OPEN_RDONLY, &c), -ESTALE);
    make_diff(path("escape.vhd"), "../p.vhd", u, false);
    assert_int_equal(vhd_chain_open(path("escape.vhd"), VHD_OPEN_RDONLY, &c), -EINVAL);
    /* alone, each still opens (inspection) and reads zeros */
    assert_int_equal(vhd_chain_open(path("self.vhd"), VHD_OPEN_NO_PARENTS, &c), 0);
    vhd_chain_close(c);
}

static void
test_torn_footer_repair(void **state)
{
    struct vhd_chain *c;
    struct vhd_check_report r;
    uint8_t w[4096];
    assert_int_equal(vhd_create(path("t.vhd"), 4 << 20, VHD_TYPE_DYNAMIC), 0);
    assert_int_equal(vhd_chain_open(path("t.vhd"), VHD_OPEN_RDWR, &c), 0);
    fill(w, sizeof(w), 7);
    assert_int_equal(vhd_chain_write(c, w, 0, sizeof(w), true), 0);
    vhd_chain_close(c);
    struct stat st;
    stat(path("t.vhd"), &st);
    assert_int_equal(truncate(path("t.vhd"), st.st_size - 512), 0);   /* crash mid-allocation */
    assert_int_equal(vhd_chain_open(path("t.vhd"), VHD_OPEN_RDWR, &c), -EINVAL);
    assert_int_equal(vhd_chain_open(path("t.vhd"), VHD_OPEN_HEAD_FOOTER, &c), 0);
    struct vhd_info in;
    vhd_chain_info(c, 0, &in);
    assert_true(in.head_footer_used);
    vhd_chain_close(c);
    assert_int_equal(vhd_check(path("t.vhd"), &r), -EINVAL);
    assert_int_equal(vhd_repair(path("t.vhd"), &r), 0);
    assert_true(r.n_repaired >= 1);
    assert_sound(path("t.vhd"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dynamic_write_read), cmocka_unit_test(test_dynamic_reopen),
        cmocka_unit_test(test_fixed),              cmocka_unit_test(test_snapshot_chain),
        cmocka_unit_test(test_resize),             cmocka_unit_test(test_hostile_links),
        cmocka_unit_test(test_torn_footer_repair),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
