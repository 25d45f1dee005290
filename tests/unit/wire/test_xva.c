/* tests/unit/wire/test_xva.c - the XVA reader and writer, and common/tar.c.
 *
 * Archives are made by the writer (all three compressions) or by hand with
 * tar_header_encode, then read back in pieces of every awkward size; damaged
 * ones (a wrong checksum, a cut, a hostile name, a wrong first member, an
 * oversized chunk, chunks out of order) must give their own error and hand
 * no bad chunk to the caller.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/strbuf.h"
#include "common/tar.h"
#include "wire/xva.h"

#define OVA "<value><struct><member><name>version</name><value><struct><member><name>" \
            "xapi_major</name><value><int>1</int></value></member><member><name>"     \
            "export_vsn</name><value><int>2</int></value></member></struct></value>"  \
            "</member><member><name>objects</name><value><array><data><value><struct>" \
            "<member><name>class</name><value>VM</value></member><member><name>id"    \
            "</name><value>Ref:0</value></member><member><name>snapshot</name><value>" \
            "<struct><member><name>name_label</name><value>x</value></member>"        \
            "</struct></value></member></struct></value></data></array></value>"      \
            "</member></struct></value>"

struct seen {
    int ova;
    size_t n_chunks;
    char prefixes[8][16];
    uint64_t nos[8];
    size_t lens[8];
    unsigned char first[8];
};

static int
on_ova(void *opaque, const char *xml, size_t len)
{
    struct seen *s = opaque;
    struct xva_header h;
    char why[128];
    assert_int_equal(xva_header_parse(xml, len, &h, why, sizeof(why)), 0);
    assert_int_equal(h.n_objects, 1);
    assert_string_equal(h.objects[0].cls, "VM");
    assert_string_equal(h.objects[0].id, "Ref:0");
    assert_int_equal(h.export_vsn, 2);
    xva_header_release(&h);
    s->ova++;
    return 0;
}

static int
on_chunk(void *opaque, const char *prefix, uint64_t no, const char *data, size_t len)
{
    struct seen *s = opaque;
    assert_true(s->n_chunks < 8);
    snprintf(s->prefixes[s->n_chunks], 16, "%s", prefix);
    s->nos[s->n_chunks] = no;
    s->lens[s->n_chunks] = len;
    s->first[s->n_chunks] = (unsigned char)data[0];
    s->n_chunks++;
    return 0;
}

static const struct xva_reader_ops ops = {on_ova, on_chunk};

/* Writes ova.xml, two chunks of Ref:1 (0 and 3) and one of Ref:2, then the end. */
static char *
make_archive(enum xva_compression c, size_t *len)
{
    struct xva_writer *w = xva_writer_new(c);
    assert_non_null(w);
    char *block = malloc(XVA_CHUNK_SIZE);
    assert_int_equal(xva_writer_file(w, "ova.xml", OVA, strlen(OVA), 0), 0);
    memset(block, 0xa1, XVA_CHUNK_SIZE);
    assert_int_equal(xva_writer_chunk(w, "Ref:1", 0, block, XVA_CHUNK_SIZE), 0);
    memset(block, 0xb2, XVA_CHUNK_SIZE);
    assert_int_equal(xva_writer_chunk(w, "Ref:1", 3, block, 1000), 0);
    memset(block, 0xc3, XVA_CHUNK_SIZE);
    assert_int_equal(xva_writer_chunk(w, "Ref:2", 0, block, 4096), 0);
    assert_int_equal(xva_writer_end(w), 0);
    const char *p;
    xva_writer_output(w, &p, len);
    char *copy = malloc(*len);
    memcpy(copy, p, *len);
    xva_writer_free(w);
    free(block);
    return copy;
}

/* Feeds @len bytes in pieces of @step; returns the first error or finish's. */
static int
read_all(const char *data, size_t len, size_t step, bool verify, struct seen *s)
{
    struct xva_reader *r = xva_reader_new(&ops, s, verify);
    assert_non_null(r);
    int rc = 0;
    for (size_t off = 0; off < len && rc == 0; off += step)
        rc = xva_reader_feed(r, data + off, len - off < step ? len - off : step);
    if (rc == 0)
        rc = xva_reader_finish(r, false);
    xva_reader_free(r);
    return rc;
}

static void
check_seen(const struct seen *s)
{
    assert_int_equal(s->ova, 1);
    assert_int_equal(s->n_chunks, 3);
    assert_string_equal(s->prefixes[0], "Ref:1");
    assert_int_equal(s->nos[1], 3);
    assert_int_equal(s->lens[1], 1000);
    assert_int_equal(s->first[1], 0xb2);
    assert_string_equal(s->prefixes[2], "Ref:2");
    assert_int_equal(s->lens[2], 4096);
    assert_int_equal(s->first[2], 0xc3);
}

static void
test_round_trip_all_compressions(void **state)
{
    enum xva_compression cs[] = {XVA_COMPRESS_NONE, XVA_COMPRESS_GZIP, XVA_COMPRESS_ZSTD};
    size_t steps[] = {1 << 20, 511, 7};
    for (size_t i = 0; i < 3; i++) {
        size_t len;
        char *a = make_archive(cs[i], &len);
        if (cs[i] == XVA_COMPRESS_GZIP)
            assert_memory_equal(a, "\x1f\x8b", 2);
        if (cs[i] == XVA_COMPRESS_ZSTD)
            assert_memory_equal(a, "\x28\xb5\x2f\xfd", 4);
        for (size_t j = 0; j < 3; j++) {
            if (steps[j] == 7 && cs[i] == XVA_COMPRESS_NONE)
                continue; /* 4 MiB one byte at a time adds nothing */
            struct seen s = {0};
            assert_int_equal(read_all(a, len, steps[j], true, &s), 0);
            check_seen(&s);
        }
        free(a);
    }
}

/* Offset of the data of member @name in uncompressed archive @a. */
static size_t
member_data_off(const char *a, size_t len, const char *name)
{
    for (size_t off = 0; off + TAR_BLOCK <= len;) {
        uint64_t size = strtoull(a + off + 124, NULL, 8);
        if (strcmp(a + off, name) == 0)
            return off + TAR_BLOCK;
        off += TAR_BLOCK + size + tar_pad_len(size);
    }
    fail_msg("no member %s", name);
    return 0;
}

static void
test_corrupt_chunk_is_refused_before_it_is_handed_out(void **state)
{
    size_t len;
    char *a = make_archive(XVA_COMPRESS_NONE, &len);
    a[member_data_off(a, len, "Ref:1/00000003") + 10] ^= 1;
    struct seen s = {0};
    assert_int_equal(read_all(a, len, 65536, true, &s), -EBADMSG);
    assert_int_equal(s.n_chunks, 1); /* chunk 0 only */
    memset(&s, 0, sizeof(s));
    assert_int_equal(read_all(a, len, 65536, false, &s), 0); /* force */
    assert_int_equal(s.n_chunks, 3);
    free(a);
}

static void
test_truncated_anywhere_is_premature_eof(void **state)
{
    enum xva_compression cs[] = {XVA_COMPRESS_NONE, XVA_COMPRESS_GZIP, XVA_COMPRESS_ZSTD};
    for (size_t i = 0; i < 3; i++) {
        size_t len;
        char *a = make_archive(cs[i], &len);
        size_t cuts[] = {0, 3, 100, 600, len / 2, len > 1030 ? len - 1030 : len - 1};
        for (size_t j = 0; j < sizeof(cuts) / sizeof(cuts[0]); j++) {
            if (cuts[j] >= len)
                continue; /* a compressed archive is short */
            struct seen s = {0};
            int rc = read_all(a, cuts[j], 4096, true, &s);
            assert_true(rc == -EPIPE || (cs[i] != XVA_COMPRESS_NONE && rc == -EINVAL));
        }
        free(a);
    }
}

/* A hand-made archive of @n members (names and sizes), data all 'x'. */
static char *
hand_archive(const char *const *names, const size_t *sizes, size_t n, size_t *len)
{
    struct strbuf sb = STRBUF_INIT;
    for (size_t i = 0; i < n; i++) {
        char hdr[TAR_BLOCK];
        assert_int_equal(tar_header_encode(hdr, names[i], sizes[i], 0), 0);
        strbuf_append(&sb, hdr, TAR_BLOCK);
        const char *data = strcmp(names[i], "ova.xml") == 0 ? OVA : NULL;
        for (size_t k = 0; k < sizes[i]; k++)
            strbuf_putc(&sb, data ? data[k] : 'x');
        for (size_t k = 0; k < tar_pad_len(sizes[i]); k++)
            strbuf_putc(&sb, '\0');
    }
    for (size_t k = 0; k < 2 * TAR_BLOCK; k++)
        strbuf_putc(&sb, '\0');
    return strbuf_steal(&sb, len);
}

static void
test_hostile_and_misplaced_members(void **state)
{
    struct {
        const char *names[2];
        size_t sizes[2];
        int want;
    } cases[] = {
        {{"../../etc/passwd", NULL}, {4, 0}, -EINVAL},
        {{"/etc/passwd", NULL}, {4, 0}, -EINVAL},
        {{"ova.xml", "Ref:1/../../x"}, {strlen(OVA), 4}, -EINVAL},
        {{"notova.xml", NULL}, {4, 0}, -ENOMSG},
        {{"ova.xml", "Ref:1/00000000"}, {strlen(OVA), XVA_CHUNK_SIZE + 1}, -EFBIG},
        {{"ova.xml", "Ref:1/00000000.checksum"}, {strlen(OVA), 40}, -EINVAL},
        {{"ova.xml", "Ref:1/bogus"}, {strlen(OVA), 4}, -EINVAL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = cases[i].names[1] ? 2 : 1, len;
        char *a = hand_archive(cases[i].names, cases[i].sizes, n, &len);
        struct seen s = {0};
        assert_int_equal(read_all(a, len, 4096, true, &s), cases[i].want);
        assert_int_equal(s.n_chunks, 0);
        free(a);
    }
}

static void
test_chunks_out_of_order(void **state)
{
    struct xva_writer *w = xva_writer_new(XVA_COMPRESS_NONE);
    char block[16] = "abc";
    assert_int_equal(xva_writer_file(w, "ova.xml", OVA, strlen(OVA), 0), 0);
    assert_int_equal(xva_writer_chunk(w, "Ref:1", 5, block, 16), 0);
    assert_int_equal(xva_writer_chunk(w, "Ref:1", 2, block, 16), 0);
    assert_int_equal(xva_writer_end(w), 0);
    const char *p;
    size_t len;
    xva_writer_output(w, &p, &len);
    struct seen s = {0};
    assert_int_equal(read_all(p, len, 1000, true, &s), -EINVAL);
    xva_writer_free(w);
}

static void
test_sha1_checksums_and_names(void **state)
{
    char t[41];
    xva_sha1_text("abc", 3, t);
    assert_string_equal(t, "a9993e364706816aba3e25717850c26c9cd0d89d");
    char x[17];
    xva_xxhash_text("", 0, x);
    assert_string_equal(x, "EF46DB3751D8E999");
    assert_true(xva_name_is_safe("Ref:1/00000001.xxhash"));
    assert_false(xva_name_is_safe("Ref:1/./x"));
    assert_false(xva_name_is_safe("a//b"));
    assert_false(xva_name_is_safe("a/.."));
    assert_false(xva_name_is_safe(""));
    size_t pl;
    uint64_t no;
    const char *ext;
    assert_true(xva_chunk_name_parse("Ref:12/00000042.checksum", &pl, &no, &ext));
    assert_int_equal(pl, 6);
    assert_int_equal(no, 42);
    assert_string_equal(ext, ".checksum");
    assert_false(xva_chunk_name_parse("ova.xml", &pl, &no, &ext));
    assert_int_equal(xva_compression_parse("true"), XVA_COMPRESS_GZIP);
    assert_int_equal(xva_compression_parse("zstd"), XVA_COMPRESS_ZSTD);
    assert_int_equal(xva_compression_parse("false"), XVA_COMPRESS_NONE);
}

static void
test_tar_long_names_and_bad_headers(void **state)
{
    char hdr[TAR_BLOCK];
    char longname[200];
    memset(longname, 'a', sizeof(longname));
    longname[120] = '/';
    longname[199] = '\0';
    assert_int_equal(tar_header_encode(hdr, longname, 1, 0), 0);
    memset(longname, 'a', sizeof(longname) - 1);
    assert_int_equal(tar_header_encode(hdr, longname, 1, 0), -ENAMETOOLONG);
    /* a header with a wrong checksum */
    assert_int_equal(tar_header_encode(hdr, "ova.xml", 1, 0), 0);
    hdr[0] = 'x';
    struct seen s = {0};
    assert_int_equal(read_all(hdr, TAR_BLOCK, TAR_BLOCK, true, &s), -EINVAL);
    /* a symlink member */
    assert_int_equal(tar_header_encode(hdr, "ova.xml", 0, 0), 0);
    hdr[156] = '2';
    unsigned sum = 0;
    memset(hdr + 148, ' ', 8);
    for (size_t i = 0; i < TAR_BLOCK; i++)
        sum += (unsigned char)hdr[i];
    snprintf(hdr + 148, 8, "%06o", sum);
    assert_int_equal(read_all(hdr, TAR_BLOCK, TAR_BLOCK, true, &s), -EINVAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_all_compressions),
        cmocka_unit_test(test_corrupt_chunk_is_refused_before_it_is_handed_out),
        cmocka_unit_test(test_truncated_anywhere_is_premature_eof),
        cmocka_unit_test(test_hostile_and_misplaced_members),
        cmocka_unit_test(test_chunks_out_of_order),
        cmocka_unit_test(test_sha1_checksums_and_names),
        cmocka_unit_test(test_tar_long_names_and_bad_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
