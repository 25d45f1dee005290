/* tests/unit/vhd/test_footer.c - footer, header and geometry codecs of vhd/.
 *
 * Known answers from the VHD specification (Microsoft's Virtual Hard Disk Image Format Specification): checksum rule, big-endian fields,
 * the hidden-byte quirk, CHS geometry, UTF-16BE parent names.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "vhd/vhd_int.h"

static void
test_checksum_rule(void **state)
{
    uint8_t buf[16] = {1, 2, 3, 0xFF, 0xFF, 0xFF, 0xFF, 4};
    /* bytes 3..6 are the checksum field: counted as zero */
    assert_int_equal(vhd_checksum(buf, 8, 3), ~(uint32_t)(1 + 2 + 3 + 4));
}

static void
test_footer_round_trip(void **state)
{
    struct vhd_footer f, g;
    uint8_t buf[VHD_FOOTER_SIZE];
    vhd_footer_init(&f, VHD_TYPE_DYNAMIC, 64ull << 20);
    vhd_footer_serialize(&f, buf);
    assert_memory_equal(buf, "conectix", 8);
    assert_int_equal(vhd_be64_load(buf + 48), 64ull << 20);     /* big-endian on disk */
    assert_int_equal(vhd_be32_load(buf + 60), 3);
    assert_memory_equal(buf + 28, "tap\0", 4);
    assert_int_equal(vhd_footer_parse(buf, &g), 0);
    assert_int_equal(vhd_footer_validate(&g), 0);
    assert_int_equal(g.curr_size, f.curr_size);
    assert_memory_equal(g.uuid, f.uuid, 16);
}

static void
test_footer_rejects(void **state)
{
    struct vhd_footer f, g;
    uint8_t buf[VHD_FOOTER_SIZE];
    vhd_footer_init(&f, VHD_TYPE_DYNAMIC, 1 << 20);
    vhd_footer_serialize(&f, buf);
    buf[100] ^= 1;                                  /* one bit: checksum must catch it */
    assert_int_equal(vhd_footer_parse(buf, &g), -EINVAL);
    vhd_footer_serialize(&f, buf);
    buf[0] = 'X';
    assert_int_equal(vhd_footer_parse(buf, &g), -EINVAL);
    f.type = 5;
    assert_int_equal(vhd_footer_validate(&f), -EINVAL);
    f.type = VHD_TYPE_DYNAMIC;
    f.curr_size = 1000;
    assert_int_equal(vhd_footer_validate(&f), -EINVAL);
    f.curr_size = 3ull << 40;
    assert_int_equal(vhd_footer_validate(&f), -EFBIG);
    f.curr_size = 1 << 20;
    f.data_offset = 100;
    assert_int_equal(vhd_footer_validate(&f), -EINVAL);
}

static void
test_hidden_quirk(void **state)
{
    struct vhd_footer f, g;
    uint8_t buf[VHD_FOOTER_SIZE];
    vhd_footer_init(&f, VHD_TYPE_DYNAMIC, 1 << 20);
    f.creator_version = 0x00010001;                 /* tap 1.1 */
    vhd_footer_serialize(&f, buf);
    buf[85] = 1;                                    /* hidden set, checksum not updated */
    assert_int_equal(vhd_footer_parse(buf, &g), 0);
    memcpy(buf + 28, "vpc ", 4);                    /* not tap: no quirk */
    assert_int_equal(vhd_footer_parse(buf, &g), -EINVAL);
}

static void
test_geometry(void **state)
{
    /* 64 MiB = 131072 sectors: 17 s/t, 8 heads, 963 cylinders; QEMU rounds up to 964
     * cylinders = 67,125,248 bytes (spec 4.5), consistent with this. */
    uint32_t g = vhd_geometry_chs(64ull << 20);
    assert_int_equal(g & 0xFF, 17);
    assert_int_equal((g >> 8) & 0xFF, 8);
    assert_int_equal(g >> 16, 963);
    g = vhd_geometry_chs(200ull << 30);             /* saturated */
    assert_int_equal(g, 65535u << 16 | 16u << 8 | 255u);
}

static void
test_parent_name(void **state)
{
    struct vhd_header h = {0};
    char out[256];
    assert_int_equal(vhd_header_set_parent_name(&h, "base-\xc3\xa9.vhd"), 0);
    assert_int_equal(h.parent_name[0], 0);          /* UTF-16BE: 'b' = 00 62 */
    assert_int_equal(h.parent_name[1], 'b');
    assert_int_equal(vhd_header_parent_name(&h, out, sizeof(out)), 0);
    assert_string_equal(out, "base-\xc3\xa9.vhd");
    h.parent_name[0] = 0xDC;                        /* lone low surrogate */
    assert_int_equal(vhd_header_parent_name(&h, out, sizeof(out)), -EINVAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checksum_rule),  cmocka_unit_test(test_footer_round_trip),
        cmocka_unit_test(test_footer_rejects), cmocka_unit_test(test_hidden_quirk),
        cmocka_unit_test(test_geometry),       cmocka_unit_test(test_parent_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
