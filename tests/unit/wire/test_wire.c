/* tests/unit/wire/test_wire.c - the streaming writers and the datetime form.
 *
 * Output is compared byte for byte: XML-RPC as xapi writes it (no whitespace
 * between tags, untyped strings and int64s, shared/spec/xenapi.md 1.2) and
 * JSON per 1.3 / RFC 8259, including what happens to bytes either format
 * cannot carry.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <math.h>

#include "common/strbuf.h"
#include "common/xval.h"
#include "wire/wire.h"

struct fixture {
    struct strbuf sb;
    struct wire_writer w;
};

static struct fixture fx;

static void
start(enum wire_format f)
{
    strbuf_release(&fx.sb);
    wire_writer_init(&fx.w, f, &fx.sb);
}

static const char *
out(void)
{
    assert_true(strbuf_ok(&fx.sb));
    return fx.sb.buf ? fx.sb.buf : "";
}

static int
teardown(void **state)
{
    (void)state;
    strbuf_release(&fx.sb);
    return 0;
}

/* ---- XML ---- */

static void
test_xml_scalars(void **state)
{
    (void)state;
    start(WIRE_XMLRPC);
    wire_string(&fx.w, "OpaqueRef:NULL");
    wire_string(&fx.w, NULL);
    wire_int(&fx.w, 4294967296);
    wire_int(&fx.w, INT64_MIN);
    wire_int32(&fx.w, -7);
    wire_double(&fx.w, 60.1);
    wire_double(&fx.w, 1e300);
    wire_double(&fx.w, NAN);
    wire_bool(&fx.w, true);
    wire_bool(&fx.w, false);
    wire_datetime(&fx.w, 0);
    assert_string_equal(out(), "<value>OpaqueRef:NULL</value>"
                               "<value></value>"
                               "<value>4294967296</value>"
                               "<value>-9223372036854775808</value>"
                               "<value><i4>-7</i4></value>"
                               "<value><double>60.1</double></value>"
                               "<value><double>1e+300</double></value>"
                               "<value><double>0</double></value>"
                               "<value><boolean>1</boolean></value>"
                               "<value><boolean>0</boolean></value>"
                               "<value><dateTime.iso8601>19700101T00:00:00Z</dateTime.iso8601>"
                               "</value>");
}

static void
test_xml_escaping(void **state)
{
    (void)state;
    start(WIRE_XMLRPC);
    wire_string(&fx.w, "a&b<c>d\"e'f");
    wire_string(&fx.w, "tab\tlf\ncr\rbell\x07nul-less\x1f" "end");
    /* invalid UTF-8: lone continuation, truncated sequence, overlong, surrogate */
    wire_string(&fx.w, "x\x80y\xe2\x82z\xc0\xafw\xed\xa0\x80v");
    /* valid multi-byte text passes unchanged; U+FFFE is not an XML Char */
    wire_string(&fx.w, "\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80 \xef\xbf\xbe");
    assert_string_equal(out(), "<value>a&amp;b&lt;c&gt;d&quot;e'f</value>"
                               "<value>tab\tlf\ncr&#13;bellnul-lessend</value>"
                               "<value>x\xef\xbf\xbdy\xef\xbf\xbdz\xef\xbf\xbd\xef\xbf\xbdw"
                               "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdv</value>"
                               "<value>\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80 \xef\xbf\xbd</value>");
}

static void
test_xml_stringn_embedded_nul_dropped(void **state)
{
    (void)state;
    start(WIRE_XMLRPC);
    wire_stringn(&fx.w, "a\0b", 3);
    assert_int_equal(fx.sb.len, strlen("<value>ab</value>"));
    assert_string_equal(out(), "<value>ab</value>");
}

static void
test_xml_containers(void **state)
{
    (void)state;
    start(WIRE_XMLRPC);
    wire_begin_struct(&fx.w);
    wire_member(&fx.w, "name_label");
    wire_string(&fx.w, "vm");
    wire_member(&fx.w, "VBDs");
    wire_begin_array(&fx.w);
    wire_string(&fx.w, "OpaqueRef:1");
    wire_begin_struct(&fx.w);
    wire_end_struct(&fx.w);
    wire_begin_array(&fx.w);
    wire_end_array(&fx.w);
    wire_end_array(&fx.w);
    wire_member(&fx.w, "k&<");
    wire_begin_struct(&fx.w);
    wire_member(&fx.w, "x");
    wire_int32(&fx.w, 0);
    wire_end_struct(&fx.w);
    wire_end_struct(&fx.w);
    assert_int_equal(fx.w.depth, 0);
    assert_false(fx.w.overflow);
    assert_string_equal(out(), "<value><struct>"
                               "<member><name>name_label</name><value>vm</value></member>"
                               "<member><name>VBDs</name><value><array><data>"
                               "<value>OpaqueRef:1</value>"
                               "<value><struct></struct></value>"
                               "<value><array><data></data></array></value>"
                               "</data></array></value></member>"
                               "<member><name>k&amp;&lt;</name><value><struct>"
                               "<member><name>x</name><value><i4>0</i4></value></member>"
                               "</struct></value></member>"
                               "</struct></value>");
}

static void
test_depth_limit(void **state)
{
    (void)state;
    for (int f = 0; f < 2; f++) {
        start(f ? WIRE_JSON : WIRE_XMLRPC);
        for (int i = 0; i < WIRE_MAX_DEPTH; i++)
            wire_begin_array(&fx.w);
        assert_false(fx.w.overflow);
        size_t len = fx.sb.len;
        wire_begin_array(&fx.w); /* one too many: nothing written */
        wire_begin_struct(&fx.w);
        wire_member(&fx.w, "x");
        wire_string(&fx.w, "lost");
        wire_end_struct(&fx.w);
        wire_end_array(&fx.w);
        assert_true(fx.w.overflow);
        assert_int_equal(fx.sb.len, len);
        for (int i = 0; i < WIRE_MAX_DEPTH; i++)
            wire_end_array(&fx.w);
        assert_int_equal(fx.w.depth, 0);
        /* balanced output: as many closes as opens */
        const char *o = out();
        if (f) {
            assert_int_equal(strlen(o), 2 * WIRE_MAX_DEPTH);
            assert_int_equal(o[WIRE_MAX_DEPTH - 1], '[');
            assert_int_equal(o[WIRE_MAX_DEPTH], ']');
        }
        /* an unbalanced end writes nothing */
        len = fx.sb.len;
        wire_end_array(&fx.w);
        wire_end_struct(&fx.w);
        assert_int_equal(fx.sb.len, len);
        assert_int_equal(fx.w.depth, 0);
    }
}

static void
test_xml_no_whitespace_between_tags(void **state)
{
    (void)state;
    start(WIRE_XMLRPC);
    wire_begin_struct(&fx.w);
    for (int i = 0; i < 20; i++) {
        wire_member(&fx.w, "m");
        wire_begin_array(&fx.w);
        wire_bool(&fx.w, i & 1);
        wire_double(&fx.w, i * 0.5);
        wire_end_array(&fx.w);
    }
    wire_end_struct(&fx.w);
    const char *o = out();
    for (const char *p = strchr(o, '>'); p; p = strchr(p + 1, '>'))
        if (p[1] != '\0')
            assert_int_not_equal(p[1] == ' ' || p[1] == '\n' || p[1] == '\t', 1);
}

/* ---- JSON ---- */

static void
test_json_scalars(void **state)
{
    (void)state;
    start(WIRE_JSON);
    wire_begin_array(&fx.w);
    wire_string(&fx.w, "s");
    wire_string(&fx.w, NULL);
    wire_int(&fx.w, INT64_MAX);
    wire_int(&fx.w, INT64_MIN);
    wire_int32(&fx.w, INT32_MIN);
    wire_double(&fx.w, 60.1);
    wire_double(&fx.w, 3.0);
    wire_double(&fx.w, -0.0);
    wire_double(&fx.w, 0.1 + 0.2);
    wire_double(&fx.w, 1e300);
    wire_double(&fx.w, INFINITY);
    wire_double(&fx.w, NAN);
    wire_bool(&fx.w, true);
    wire_bool(&fx.w, false);
    wire_datetime(&fx.w, 1795361045);
    wire_end_array(&fx.w);
    assert_string_equal(out(), "[\"s\",\"\",9223372036854775807,-9223372036854775808,"
                               "-2147483648,60.1,3.0,-0.0,0.30000000000000004,1e+300,"
                               "0.0,0.0,true,false,\"20261122T15:24:05Z\"]");
}

static void
test_json_escaping(void **state)
{
    (void)state;
    start(WIRE_JSON);
    wire_string(&fx.w, "q\"b\\s/\b\f\n\r\t\x01\x1f\x7f");
    wire_string(&fx.w, "\xc3\xa9\xf0\x9f\x98\x80\xef\xbf\xbe");
    wire_string(&fx.w, "bad\xff\xc3(\xf4\x90\x80\x80");
    assert_string_equal(out(), "\"q\\\"b\\\\s/\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\","
                               "\"\xc3\xa9\xf0\x9f\x98\x80\xef\xbf\xbe\","
                               "\"bad\xef\xbf\xbd\xef\xbf\xbd(\xef\xbf\xbd\xef\xbf\xbd"
                               "\xef\xbf\xbd\xef\xbf\xbd\"");
}

static void
test_json_containers_and_commas(void **state)
{
    (void)state;
    start(WIRE_JSON);
    wire_begin_struct(&fx.w);
    wire_member(&fx.w, "a");
    wire_begin_array(&fx.w);
    wire_end_array(&fx.w);
    wire_member(&fx.w, "b");
    wire_begin_struct(&fx.w);
    wire_end_struct(&fx.w);
    wire_member(&fx.w, "c\"");
    wire_begin_array(&fx.w);
    wire_int(&fx.w, 1);
    wire_begin_struct(&fx.w);
    wire_member(&fx.w, "x");
    wire_int(&fx.w, 2);
    wire_member(&fx.w, "y");
    wire_begin_array(&fx.w);
    wire_int(&fx.w, 3);
    wire_int(&fx.w, 4);
    wire_end_array(&fx.w);
    wire_end_struct(&fx.w);
    wire_string(&fx.w, "z");
    wire_end_array(&fx.w);
    wire_member(&fx.w, "d");
    wire_bool(&fx.w, false);
    wire_end_struct(&fx.w);
    assert_string_equal(out(), "{\"a\":[],\"b\":{},\"c\\\"\":[1,{\"x\":2,\"y\":[3,4]},\"z\"],"
                               "\"d\":false}");
}

static void
test_xval_writer_both_formats(void **state)
{
    (void)state;
    struct xval *v = xval_new_struct();
    assert_non_null(v);
    struct xval *a = xval_new_array();
    assert_int_equal(xval_array_append(a, xval_new_nil()), 0);
    assert_int_equal(xval_array_append(a, xval_new_datetime("20260821T02:00:23Z")), 0);
    assert_int_equal(xval_array_append(a, xval_new_int(-5)), 0);
    assert_int_equal(xval_struct_append(v, "list", a), 0);
    assert_int_equal(xval_struct_append(v, "s", xval_new_stringn("a<b", 3)), 0);
    assert_int_equal(xval_struct_append(v, "f", xval_new_double(2.5)), 0);
    assert_int_equal(xval_struct_append(v, "b", xval_new_bool(true)), 0);

    start(WIRE_XMLRPC);
    wire_xval(&fx.w, v);
    assert_string_equal(out(), "<value><struct><member><name>list</name><value><array><data>"
                               "<value><nil/></value>"
                               "<value><dateTime.iso8601>20260821T02:00:23Z</dateTime.iso8601>"
                               "</value><value>-5</value></data></array></value></member>"
                               "<member><name>s</name><value>a&lt;b</value></member>"
                               "<member><name>f</name><value><double>2.5</double></value>"
                               "</member><member><name>b</name><value><boolean>1</boolean>"
                               "</value></member></struct></value>");
    start(WIRE_JSON);
    wire_xval(&fx.w, v);
    wire_xval(&fx.w, NULL);
    assert_string_equal(out(), "{\"list\":[null,\"20260821T02:00:23Z\",-5],\"s\":\"a<b\","
                               "\"f\":2.5,\"b\":true},\"\"");
    xval_free(v);
}

/* ---- datetimes ---- */

static void
test_datetime_format(void **state)
{
    (void)state;
    char buf[WIRE_DATETIME_SIZE];
    wire_format_datetime(0, buf);
    assert_string_equal(buf, "19700101T00:00:00Z");
    wire_format_datetime(1795361045, buf);
    assert_string_equal(buf, "20261122T15:24:05Z");
    wire_format_datetime(951782400, buf); /* leap day 2000 */
    assert_string_equal(buf, "20000229T00:00:00Z");
    wire_format_datetime(-1, buf);
    assert_string_equal(buf, "19691231T23:59:59Z");
    wire_format_datetime(-62135596800LL, buf);
    assert_string_equal(buf, "00010101T00:00:00Z");
    wire_format_datetime((time_t)INT64_MAX, buf); /* clamped */
    assert_string_equal(buf, "99991231T23:59:59Z");
    wire_format_datetime((time_t)INT64_MIN, buf);
    assert_string_equal(buf, "00000101T00:00:00Z");
    assert_int_equal(strlen(buf), WIRE_DATETIME_SIZE - 1);
}

static void
test_datetime_parse_forms(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int64_t t;
    } ok[] = {
        {"20261122T15:24:05Z", 1795361045},
        {"20261122T15:24:05", 1795361045},
        {"20261122T152405Z", 1795361045},
        {"2026-11-22T15:24:05Z", 1795361045},
        {"2026-11-22t15:24:05z", 1795361045},
        {"2026-11-22 15:24:05Z", 1795361045},
        {"2026-11-22T15:24:05.123456Z", 1795361045},
        {"2026-11-22T16:24:05+01:00", 1795361045},
        {"2026-11-22T10:54:05-04:30", 1795361045},
        {"20261122T16:24:05+0100", 1795361045},
        {"20261122T16:24:05+01", 1795361045},
        {"19700101T00:00:00Z", 0},
        {"19691231T23:59:59Z", -1},
        {"20000229T12:00:00Z", 951825600},
        {"20161231T23:59:60Z", 1483228800}, /* a leap second reads as the next */
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        time_t t = 42;
        int rc = wire_parse_datetime(ok[i].text, &t);
        if (rc != 0 || (int64_t)t != ok[i].t)
            fail_msg("%s: rc %d t %lld", ok[i].text, rc, (long long)t);
    }
    static const char *const bad[] = {
        "", "2026", "20261122", "20261122T", "20261122T15:24", "20261122T15:24:05ZZ",
        "2026-11-22T15:24:05 Z", "20261322T15:24:05Z", "20261100T15:24:05Z",
        "20250229T00:00:00Z", "20261122T24:00:00Z", "20261122T15:60:00Z",
        "20261122T15:24:61Z", "20261122T15:24:05+2400", "20261122T15:24:05+01:60",
        "20261122T15:24:05.Z", "2026-1122T15:24:05Z", "20261122X15:24:05Z", "abcd1122T15:24:05Z",
        "2026-11-22T15:24:05+1", " 20261122T15:24:05Z",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        time_t t = 42;
        if (wire_parse_datetime(bad[i], &t) != -EINVAL)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_int_equal(t, 42);
    }
    time_t t;
    assert_int_equal(wire_parse_datetime(NULL, &t), -EINVAL);
}

static void
test_datetime_round_trip(void **state)
{
    (void)state;
    char buf[WIRE_DATETIME_SIZE];
    /* every day over 1600 years, at a time of day that walks through the day */
    for (int64_t t = -11644473600LL; t < 4102444800LL; t += 86400 * 3 + 3607) {
        time_t back;
        wire_format_datetime((time_t)t, buf);
        assert_int_equal(wire_parse_datetime(buf, &back), 0);
        assert_int_equal((int64_t)back, t);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_xml_scalars, teardown),
        cmocka_unit_test_teardown(test_xml_escaping, teardown),
        cmocka_unit_test_teardown(test_xml_stringn_embedded_nul_dropped, teardown),
        cmocka_unit_test_teardown(test_xml_containers, teardown),
        cmocka_unit_test_teardown(test_depth_limit, teardown),
        cmocka_unit_test_teardown(test_xml_no_whitespace_between_tags, teardown),
        cmocka_unit_test_teardown(test_json_scalars, teardown),
        cmocka_unit_test_teardown(test_json_escaping, teardown),
        cmocka_unit_test_teardown(test_json_containers_and_commas, teardown),
        cmocka_unit_test_teardown(test_xval_writer_both_formats, teardown),
        cmocka_unit_test(test_datetime_format),
        cmocka_unit_test(test_datetime_parse_forms),
        cmocka_unit_test(test_datetime_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
