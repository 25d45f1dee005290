/* tests/unit/common/test_rrd.c - common/rrd.c: consolidation, gaps, new data
 * sources, the rrd_updates document (XML and JSON) and persistence.
 * Times are multiples of the 5 s step from a fixed epoch so results are
 * exact. Debug with `meson test -C BUILD common-rrd -v`.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/rrd.h"

#define T0 1800000000LL /* a multiple of 5 s and of 60 s */

static void
averages_min_max_per_minute(void **state)
{
    (void)state;
    struct rrd *r = rrd_new(5);
    assert_int_equal(rrd_ds_index(r, "cpu0"), 0);
    int64_t t = T0;
    /* 12 samples 1..12 in the minute ending at t + 60 */
    for (int i = 1; i <= 12; i++) {
        double v = i;
        assert_int_equal(rrd_update(r, t + 5 * i, &v, 1), 0);
    }
    assert_true(rrd_latest(r, 0, RRD_CF_AVERAGE) == 12.0);
    struct strbuf sb = STRBUF_INIT;
    /* interval 60: the 1-minute archive; its newest row is the minute just done */
    assert_int_equal(rrd_updates_export(&(struct rrd_source){"host:h:", r}, 1, t, 60, -1, false,
                                        &sb), 0);
    assert_non_null(strstr(sb.buf, "<step>60</step>"));
    assert_non_null(strstr(sb.buf, "<entry>AVERAGE:host:h:cpu0</entry><entry>MIN:host:h:cpu0"
                                   "</entry><entry>MAX:host:h:cpu0</entry>"));
    char row[128];
    snprintf(row, sizeof(row), "<row><t>%lld</t><v>6.5</v><v>1</v><v>12</v></row>",
             (long long)(t + 60));
    assert_non_null(strstr(sb.buf, row));
    strbuf_release(&sb);
    rrd_free(r);
}

static void
five_second_rows_json_and_gaps(void **state)
{
    (void)state;
    struct rrd *r = rrd_new(5);
    rrd_ds_index(r, "memory");
    int64_t t = T0;
    double v = 1.5;
    rrd_update(r, t, &v, 1);
    assert_int_equal(rrd_update(r, t + 2, &v, 1), -EAGAIN); /* same step */
    v = 0;
    rrd_update(r, t + 15, &v, 1); /* t+5 and t+10 missed */
    struct strbuf sb = STRBUF_INIT;
    assert_int_equal(rrd_updates_export(&(struct rrd_source){"vm:u:", r}, 1, -15, 5,
                                        RRD_CF_AVERAGE, true, &sb), 0);
    char want[512];
    snprintf(want, sizeof(want),
             "{\"meta\":{\"start\":%lld,\"step\":5,\"end\":%lld,\"rows\":4,\"columns\":1,"
             "\"legend\":[\"AVERAGE:vm:u:memory\"]},\"data\":[{\"t\":%lld,\"values\":[\"0.0\"]},"
             "{\"t\":%lld,\"values\":[\"NaN\"]},{\"t\":%lld,\"values\":[\"NaN\"]},"
             "{\"t\":%lld,\"values\":[\"1.5\"]}]}",
             (long long)t, (long long)(t + 15), (long long)(t + 15), (long long)(t + 10),
             (long long)(t + 5), (long long)t);
    assert_string_equal(sb.buf, want);
    strbuf_release(&sb);
    rrd_free(r);
}

static void
new_data_source_has_nan_past(void **state)
{
    (void)state;
    struct rrd *r = rrd_new(5);
    rrd_ds_index(r, "a");
    double v[2] = {1, 2};
    rrd_update(r, T0, v, 1);
    assert_int_equal(rrd_ds_index(r, "b"), 1);
    assert_int_equal(rrd_ds_index(r, "a"), 0);
    rrd_update(r, T0 + 5, v, 2);
    struct strbuf sb = STRBUF_INIT;
    rrd_updates_export(&(struct rrd_source){"", r}, 1, T0, 5, RRD_CF_MAX, false, &sb);
    char want[256];
    snprintf(want, sizeof(want), "<row><t>%lld</t><v>1</v><v>2</v></row><row><t>%lld</t><v>1</v>"
             "<v>NaN</v></row>", (long long)(T0 + 5), (long long)T0);
    assert_non_null(strstr(sb.buf, want));
    strbuf_release(&sb);
    assert_int_equal(rrd_ds_index(r, "x<y"), -EINVAL);
    assert_int_equal(rrd_ds_index(r, ""), -EINVAL);
    rrd_free(r);
}

/* Removing the middle data source keeps the other two columns' archives and
 * accumulators exact; a missing name is -ENOENT; a re-added name starts over. */
static void
remove_data_source(void **state)
{
    (void)state;
    struct rrd *r = rrd_new(5);
    rrd_ds_index(r, "a");
    rrd_ds_index(r, "b");
    rrd_ds_index(r, "c");
    for (int i = 1; i <= 18; i++) { /* a minute and a half: an open 1-minute CDP */
        double v[3] = {i, 100 + i, 1000 + i};
        rrd_update(r, T0 + 5 * i, v, 3);
    }
    assert_int_equal(rrd_ds_remove(r, "b"), 0);
    assert_int_equal(rrd_ds_remove(r, "b"), -ENOENT);
    assert_int_equal(rrd_n_ds(r), 2);
    assert_string_equal(rrd_ds_name(r, 0), "a");
    assert_string_equal(rrd_ds_name(r, 1), "c");
    assert_true(rrd_latest(r, 0, RRD_CF_AVERAGE) == 18.0);
    assert_true(rrd_latest(r, 1, RRD_CF_MAX) == 1018.0);
    for (int i = 19; i <= 24; i++) { /* closes the second minute */
        double v[2] = {i, 1000 + i};
        rrd_update(r, T0 + 5 * i, v, 2);
    }
    struct strbuf sb = STRBUF_INIT;
    assert_int_equal(rrd_updates_export(&(struct rrd_source){"h:", r}, 1, T0, 60, RRD_CF_AVERAGE,
                                        false, &sb), 0);
    assert_null(strstr(sb.buf, "h:b<"));
    char row[128];
    snprintf(row, sizeof(row), "<row><t>%lld</t><v>18.5</v><v>1018.5</v></row>",
             (long long)(T0 + 120));
    assert_non_null(strstr(sb.buf, row));
    strbuf_release(&sb);
    assert_int_equal(rrd_ds_index(r, "b"), 2);
    assert_true(isnan(rrd_latest(r, 2, RRD_CF_AVERAGE)));
    rrd_free(r);
}

static void
save_load_round_trip(void **state)
{
    (void)state;
    struct rrd *r = rrd_new(5);
    rrd_ds_index(r, "cpu0");
    rrd_ds_index(r, "memory");
    for (int i = 0; i < 300; i++) {
        double v[2] = {i * 0.01, 1e9 + i};
        rrd_update(r, T0 + 5 * i, v, 2);
    }
    struct strbuf a = STRBUF_INIT, b = STRBUF_INIT, x1 = STRBUF_INIT, x2 = STRBUF_INIT;
    assert_int_equal(rrd_save(r, &a), 0);
    struct rrd *back = NULL;
    assert_int_equal(rrd_load(a.buf, a.len, &back), 0);
    assert_int_equal(rrd_save(back, &b), 0);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.buf, b.buf, a.len);
    rrd_updates_export(&(struct rrd_source){"p:", r}, 1, -3600, 60, -1, false, &x1);
    rrd_updates_export(&(struct rrd_source){"p:", back}, 1, -3600, 60, -1, false, &x2);
    assert_string_equal(x1.buf, x2.buf);
    /* every truncation and a few corruptions are refused cleanly */
    for (size_t n = 0; n < a.len; n += 97) {
        struct rrd *bad = NULL;
        assert_int_equal(rrd_load(a.buf, n, &bad), -EINVAL);
    }
    struct rrd *bad = NULL;
    a.buf[0] ^= 1;
    assert_int_equal(rrd_load(a.buf, a.len, &bad), -EINVAL);
    rrd_free(back);
    rrd_free(r);
    strbuf_release(&a);
    strbuf_release(&b);
    strbuf_release(&x1);
    strbuf_release(&x2);
}

static void
xml_dump_layout(void **state)
{
    (void)state;
    struct rrd *r = rrd_new(5);
    rrd_ds_index(r, "cpu0");
    double v = 0.25;
    rrd_update(r, T0, &v, 1);
    struct strbuf sb = STRBUF_INIT;
    assert_int_equal(rrd_dump_xml(r, &sb), 0);
    char head[256];
    snprintf(head, sizeof(head), "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rrd><version>0003"
             "</version><step>5</step><lastupdate>%lld</lastupdate><ds><name>cpu0</name>"
             "<type>GAUGE</type>", (long long)T0);
    assert_memory_equal(sb.buf, head, strlen(head));
    size_t n_rra = 0, n_rows = 0;
    for (const char *p = sb.buf; (p = strstr(p, "<rra>")); p++)
        n_rra++;
    for (const char *p = sb.buf; (p = strstr(p, "<row>")); p++)
        n_rows++;
    assert_int_equal(n_rra, 12);
    assert_int_equal(n_rows, 3 * (120 + 120 + 168 + 366));
    /* the 5 s AVERAGE archive ends with the sample, oldest rows first */
    assert_non_null(strstr(sb.buf, "<v>NaN</v></row><row><v>0.25</v></row></database></rra>"));
    strbuf_release(&sb);
    rrd_free(r);
}

static void
export_needs_data(void **state)
{
    (void)state;
    struct rrd *r = rrd_new(5);
    struct strbuf sb = STRBUF_INIT;
    assert_int_equal(rrd_updates_export(&(struct rrd_source){"", r}, 1, 0, 5, -1, false, &sb),
                     -ENODATA);
    assert_int_equal(rrd_cf_parse("MIN"), RRD_CF_MIN);
    assert_int_equal(rrd_cf_parse("min"), -1);
    strbuf_release(&sb);
    rrd_free(r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(averages_min_max_per_minute),
        cmocka_unit_test(five_second_rows_json_and_gaps),
        cmocka_unit_test(new_data_source_has_nan_past),
        cmocka_unit_test(remove_data_source),
        cmocka_unit_test(save_load_round_trip),
        cmocka_unit_test(xml_dump_layout),
        cmocka_unit_test(export_needs_data),
    };
    return cmocka_run_group_tests_name("common-rrd", tests, NULL, NULL);
}
