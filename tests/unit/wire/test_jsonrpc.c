/* tests/unit/wire/test_jsonrpc.c - JSON-RPC request parsing and reply framing.
 *
 * shared/spec/xenapi.md 1.3: version detection, the required id, params
 * rules per version, reply shapes (compared whole), and hostile bodies
 * (duplicate keys, NUL bytes, invalid UTF-8, deep nesting, huge numbers).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/strbuf.h"
#include "common/xval.h"
#include "wire/jsonrpc.h"
#include "wire/wire.h"

static char why[256];

static int
parse(const char *body, struct jsonrpc_call *call)
{
    return jsonrpc_parse_call(body, strlen(body), call, why, sizeof(why));
}

static void
test_parse_xo_login_v2(void **state)
{
    (void)state;
    struct jsonrpc_call c;
    assert_int_equal(parse("{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":"
                           "\"session.login_with_password\",\"params\":[\"root\",\"pw\"]}",
                           &c),
                     0);
    assert_int_equal(c.version, JSONRPC_V2);
    assert_string_equal(c.method, "session.login_with_password");
    assert_int_equal(c.id->kind, XVAL_INT);
    assert_int_equal(c.id->i, 0);
    assert_int_equal(c.params->kind, XVAL_ARRAY);
    assert_int_equal(c.params->arr.n, 2);
    assert_string_equal(c.params->arr.items[1]->str.s, "pw");
    jsonrpc_call_release(&c);
    assert_null(c.method);
    assert_null(c.params);
}

static void
test_parse_v1(void **state)
{
    (void)state;
    struct jsonrpc_call c;
    assert_int_equal(parse(" {\"method\": \"VM.get_record\", \"params\": [\"s\", \"r\"],"
                           " \"id\": \"abc\", \"extra\": {}}\n",
                           &c),
                     0);
    assert_int_equal(c.version, JSONRPC_V1);
    assert_int_equal(c.id->kind, XVAL_STRING);
    assert_string_equal(c.id->str.s, "abc");
    assert_int_equal(c.params->arr.n, 2);
    jsonrpc_call_release(&c);
}

static void
test_parse_v2_params_forms(void **state)
{
    (void)state;
    struct jsonrpc_call c;
    /* omitted: no params */
    assert_int_equal(parse("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.listMethods\"}",
                           &c),
                     0);
    assert_int_equal(c.params->kind, XVAL_ARRAY);
    assert_int_equal(c.params->arr.n, 0);
    jsonrpc_call_release(&c);
    /* named params: one struct argument, members in order */
    assert_int_equal(parse("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"VM.create\","
                           "\"params\":{\"z\":1,\"a\":[true,null]}}",
                           &c),
                     0);
    assert_int_equal(c.params->arr.n, 1);
    const struct xval *st = c.params->arr.items[0];
    assert_int_equal(st->kind, XVAL_STRUCT);
    assert_int_equal(st->st.n, 2);
    assert_string_equal(st->st.keys[0], "z");
    assert_string_equal(st->st.keys[1], "a");
    assert_int_equal(st->st.vals[1]->arr.items[0]->kind, XVAL_BOOL);
    assert_int_equal(st->st.vals[1]->arr.items[1]->kind, XVAL_NIL);
    jsonrpc_call_release(&c);
}

static void
test_parse_types(void **state)
{
    (void)state;
    struct jsonrpc_call c;
    assert_int_equal(parse("{\"jsonrpc\":\"2.0\",\"id\":9223372036854775807,\"method\":\"m\","
                           "\"params\":[\"s\\u00e9\\ud83d\\ude00\\n\",-9223372036854775808,"
                           "9223372036854775808,-9223372036854775809,"
                           "123456789012345678901234567890,60.1,1e2,-0.0,true,false,null,"
                           "[],{},\"20260821T02:00:23Z\",0]}",
                           &c),
                     0);
    assert_true(c.id->i == INT64_MAX);
    struct xval **p = c.params->arr.items;
    assert_int_equal(c.params->arr.n, 15);
    assert_int_equal(p[0]->kind, XVAL_STRING);
    assert_string_equal(p[0]->str.s, "s\xc3\xa9\xf0\x9f\x98\x80\n");
    assert_int_equal(p[1]->kind, XVAL_INT);
    assert_true(p[1]->i == INT64_MIN);
    /* integers beyond int64 become doubles */
    assert_int_equal(p[2]->kind, XVAL_DOUBLE);
    assert_true(p[2]->d == 9223372036854775808.0);
    assert_int_equal(p[3]->kind, XVAL_DOUBLE);
    assert_true(p[3]->d == -9223372036854775809.0);
    assert_int_equal(p[4]->kind, XVAL_DOUBLE);
    assert_true(p[4]->d == 123456789012345678901234567890.0);
    assert_int_equal(p[5]->kind, XVAL_DOUBLE);
    assert_true(p[5]->d == 60.1);
    assert_int_equal(p[6]->kind, XVAL_DOUBLE);
    assert_true(p[6]->d == 100.0);
    assert_int_equal(p[7]->kind, XVAL_DOUBLE);
    assert_int_equal(p[8]->kind, XVAL_BOOL);
    assert_true(p[8]->b);
    assert_false(p[9]->b);
    assert_int_equal(p[10]->kind, XVAL_NIL);
    assert_int_equal(p[11]->kind, XVAL_ARRAY);
    assert_int_equal(p[12]->kind, XVAL_STRUCT);
    assert_int_equal(p[13]->kind, XVAL_STRING); /* JSON has no datetime type */
    assert_int_equal(p[14]->kind, XVAL_INT);
    jsonrpc_call_release(&c);
}

static void
test_parse_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "[]",
        "\"x\"",
        "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":[]}",              /* no id */
        "{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"m\",\"params\":[]}",  /* null id */
        "{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"m\",\"params\":[]}",
        "{\"jsonrpc\":\"2.0\",\"id\":[1],\"method\":\"m\",\"params\":[]}",
        "{\"jsonrpc\":\"2.0\",\"id\":true,\"method\":\"m\",\"params\":[]}",
        "{\"jsonrpc\":\"3.0\",\"id\":1,\"method\":\"m\",\"params\":[]}",
        "{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"m\",\"params\":[]}",
        "{\"jsonrpc\":2.0,\"id\":1,\"method\":\"m\",\"params\":[]}",
        "{\"jsonrpc\":null,\"id\":1,\"method\":\"m\",\"params\":[]}",
        "{\"id\":1,\"params\":[]}",                                         /* no method */
        "{\"id\":1,\"method\":\"\",\"params\":[]}",
        "{\"id\":1,\"method\":7,\"params\":[]}",
        "{\"id\":1,\"method\":\"m\",\"params\":{\"a\":1}}",     /* v1: object params */
        "{\"id\":1,\"method\":\"m\"}",                          /* v1: params required */
        "{\"id\":1,\"method\":\"m\",\"params\":\"x\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":\"x\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":null}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":[]}x", /* trailing junk */
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":[]}{}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":[",       /* truncated */
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"id\":2,\"method\":\"m\",\"params\":[]}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":[{\"a\":1,\"a\":2}]}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":[\"a\\u0000b\"]}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":[{\"a\\u0000\":1}]}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":[\"\\ud800\"]}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":[\"\xff\"]}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":[\"\xc0\xaf\"]}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":[1e999]}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":[NaN]}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":[01]}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":[-]}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":['x']}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":[\"tab\there\"]}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":[00000000000000000000001]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct jsonrpc_call c;
        int rc = parse(bad[i], &c);
        if (rc != -EINVAL)
            fail_msg("rc %d for %s", rc, bad[i]);
        assert_true(strlen(why) > 0);
        assert_null(c.method);
        assert_null(c.params);
        assert_null(c.id);
    }
    /* a NUL byte in the raw body */
    const char body[] = "{\"id\":1,\"method\":\"m\0\",\"params\":[]}";
    struct jsonrpc_call c;
    assert_int_equal(jsonrpc_parse_call(body, sizeof(body) - 1, &c, why, sizeof(why)), -EINVAL);
}

static char *
nested(const char *prefix, int n, const char *open, const char *close, const char *suffix)
{
    struct strbuf sb = STRBUF_INIT;
    strbuf_puts(&sb, prefix);
    for (int i = 0; i < n; i++)
        strbuf_puts(&sb, open);
    strbuf_puts(&sb, "1");
    for (int i = 0; i < n; i++)
        strbuf_puts(&sb, close);
    strbuf_puts(&sb, suffix);
    return strbuf_steal(&sb, NULL);
}

static void
test_depth_limit(void **state)
{
    (void)state;
    const char *pre = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":[";
    struct jsonrpc_call c;
    char *body = nested(pre, JSONRPC_MAX_DEPTH, "[", "]", "]}");
    assert_int_equal(parse(body, &c), 0);
    const struct xval *v = c.params->arr.items[0];
    for (int i = 0; i < JSONRPC_MAX_DEPTH; i++)
        v = v->arr.items[0];
    assert_int_equal(v->i, 1);
    jsonrpc_call_release(&c);
    free(body);

    body = nested(pre, JSONRPC_MAX_DEPTH + 1, "[", "]", "]}");
    assert_int_equal(parse(body, &c), -E2BIG);
    free(body);
    body = nested(pre, 10000, "{\"a\":", "}", "]}");
    assert_int_equal(parse(body, &c), -E2BIG);
    free(body);
    /* unbalanced deep garbage is refused the same way, cheaply */
    body = nested("", 100000, "[", "", "");
    assert_int_equal(parse(body, &c), -E2BIG);
    free(body);
    /* brackets inside strings do not count */
    body = nested("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":[\"", 1000, "[{",
                  "", "\"]}");
    assert_int_equal(parse(body, &c), 0);
    assert_int_equal(c.params->arr.items[0]->str.len, 2001);
    jsonrpc_call_release(&c);
    free(body);
    /* escaped quotes do not end a string for the pre-scan */
    assert_int_equal(parse("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\","
                           "\"params\":[\"\\\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\\\"]}",
                           &c),
                     0);
    jsonrpc_call_release(&c);
}

static void
test_many_members(void **state)
{
    (void)state;
    enum { N = 100000 };
    struct strbuf sb = STRBUF_INIT;
    strbuf_puts(&sb, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":[{");
    for (int i = 0; i < N; i++)
        strbuf_printf(&sb, "%s\"k%d\":%d", i ? "," : "", i, i);
    strbuf_puts(&sb, "}]}");
    struct jsonrpc_call c;
    assert_int_equal(jsonrpc_parse_call(sb.buf, sb.len, &c, why, sizeof(why)), 0);
    const struct xval *st = c.params->arr.items[0];
    assert_int_equal(st->st.n, N);
    assert_string_equal(st->st.keys[N - 1], "k99999");
    assert_int_equal(st->st.vals[N - 1]->i, N - 1);
    jsonrpc_call_release(&c);
    strbuf_release(&sb);
}

static void
test_json_parse_xval(void **state)
{
    (void)state;
    struct xval *v = NULL;
    assert_int_equal(json_parse_xval("\"bare\"", 6, &v, why, sizeof(why)), 0);
    assert_string_equal(v->str.s, "bare");
    xval_free(v);
    assert_int_equal(json_parse_xval("  42 ", 5, &v, why, sizeof(why)), 0);
    assert_int_equal(v->i, 42);
    xval_free(v);
    assert_int_equal(json_parse_xval("null", 4, &v, why, sizeof(why)), 0);
    assert_int_equal(v->kind, XVAL_NIL);
    xval_free(v);
    /* the length is honoured */
    assert_int_equal(json_parse_xval("[1,2]garbage", 5, &v, why, sizeof(why)), 0);
    assert_int_equal(v->arr.n, 2);
    xval_free(v);
    assert_int_equal(json_parse_xval("{\"a\":1,\"a\":1}", 13, &v, why, sizeof(why)), -EINVAL);
    assert_int_equal(json_parse_xval("", 0, &v, why, sizeof(why)), -EINVAL);
    /* anything the writer can nest reads back */
    char *deep = nested("", WIRE_MAX_DEPTH, "[", "]", "");
    assert_int_equal(json_parse_xval(deep, strlen(deep), &v, why, sizeof(why)), 0);
    xval_free(v);
    free(deep);
    deep = nested("", 1000, "[", "]", "");
    assert_int_equal(json_parse_xval(deep, strlen(deep), &v, why, sizeof(why)), -E2BIG);
    free(deep);
}

/* ---- framing ---- */

static char *
frame_success(enum jsonrpc_version ver, const struct xval *id)
{
    struct strbuf sb = STRBUF_INIT;
    struct wire_writer w;
    wire_writer_init(&w, WIRE_JSON, &sb);
    jsonrpc_begin_success(&w, ver);
    wire_begin_struct(&w);
    wire_member(&w, "uuid");
    wire_string(&w, "u");
    wire_member(&w, "memory");
    wire_int(&w, 4294967296);
    wire_member(&w, "tags");
    wire_begin_array(&w);
    wire_string(&w, "a");
    wire_string(&w, "b");
    wire_end_array(&w);
    wire_end_struct(&w);
    jsonrpc_end_success(&w, ver, id);
    return strbuf_steal(&sb, NULL);
}

static void
test_success_framing(void **state)
{
    (void)state;
    struct xval *id = xval_new_int(7);
    char *s = frame_success(JSONRPC_V1, id);
    assert_string_equal(s, "{\"result\":{\"uuid\":\"u\",\"memory\":4294967296,\"tags\":"
                           "[\"a\",\"b\"]},\"error\":null,\"id\":7}");
    free(s);
    xval_free(id);
    id = xval_new_string("a\"b");
    s = frame_success(JSONRPC_V2, id);
    assert_string_equal(s, "{\"jsonrpc\":\"2.0\",\"result\":{\"uuid\":\"u\",\"memory\":"
                           "4294967296,\"tags\":[\"a\",\"b\"]},\"id\":\"a\\\"b\"}");
    /* the reply is valid JSON that reads back */
    struct xval *v = NULL;
    assert_int_equal(json_parse_xval(s, strlen(s), &v, why, sizeof(why)), 0);
    assert_string_equal(xval_struct_get(v, "id")->str.s, "a\"b");
    xval_free(v);
    free(s);
    xval_free(id);

    /* a void result, and a missing id */
    struct strbuf sb = STRBUF_INIT;
    struct wire_writer w;
    wire_writer_init(&w, WIRE_JSON, &sb);
    jsonrpc_begin_success(&w, JSONRPC_V2);
    wire_string(&w, "");
    jsonrpc_end_success(&w, JSONRPC_V2, NULL);
    assert_string_equal(sb.buf, "{\"jsonrpc\":\"2.0\",\"result\":\"\",\"id\":null}");
    strbuf_release(&sb);
}

static void
test_failure_framing(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    struct wire_writer w;
    struct xval *id = xval_new_int(3);
    const char *params[] = {"VM", "OpaqueRef:\"x\""};

    wire_writer_init(&w, WIRE_JSON, &sb);
    jsonrpc_write_failure(&w, JSONRPC_V1, id, "HANDLE_INVALID", params, 2);
    assert_string_equal(sb.buf, "{\"result\":null,\"error\":[\"HANDLE_INVALID\",\"VM\","
                                "\"OpaqueRef:\\\"x\\\"\"],\"id\":3}");
    strbuf_reset(&sb);
    wire_writer_init(&w, WIRE_JSON, &sb);
    jsonrpc_write_failure(&w, JSONRPC_V2, id, "HANDLE_INVALID", params, 2);
    assert_string_equal(sb.buf, "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":1,\"message\":"
                                "\"HANDLE_INVALID\",\"data\":[\"VM\",\"OpaqueRef:\\\"x\\\"\"]},"
                                "\"id\":3}");
    strbuf_reset(&sb);
    wire_writer_init(&w, WIRE_JSON, &sb);
    jsonrpc_write_failure(&w, JSONRPC_V1, id, "SESSION_INVALID", NULL, 0);
    assert_string_equal(sb.buf, "{\"result\":null,\"error\":[\"SESSION_INVALID\"],\"id\":3}");
    strbuf_reset(&sb);
    wire_writer_init(&w, WIRE_JSON, &sb);
    jsonrpc_write_failure(&w, JSONRPC_V2, id, "SESSION_INVALID", NULL, 0);
    assert_string_equal(sb.buf, "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":1,\"message\":"
                                "\"SESSION_INVALID\",\"data\":[]},\"id\":3}");
    xval_free(id);
    strbuf_release(&sb);
}

static void
test_call_framing_round_trip(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    struct wire_writer w;
    wire_writer_init(&w, WIRE_JSON, &sb);
    jsonrpc_begin_call(&w, "event.from", 12);
    wire_string(&w, "OpaqueRef:s");
    wire_begin_array(&w);
    wire_string(&w, "VM");
    wire_end_array(&w);
    wire_string(&w, "");
    wire_double(&w, 60.1);
    jsonrpc_end_call(&w);
    assert_string_equal(sb.buf, "{\"jsonrpc\":\"2.0\",\"method\":\"event.from\",\"id\":12,"
                                "\"params\":[\"OpaqueRef:s\",[\"VM\"],\"\",60.1]}");
    struct jsonrpc_call c;
    assert_int_equal(jsonrpc_parse_call(sb.buf, sb.len, &c, why, sizeof(why)), 0);
    assert_string_equal(c.method, "event.from");
    assert_int_equal(c.id->i, 12);
    assert_int_equal(c.params->arr.n, 4);
    assert_true(c.params->arr.items[3]->d == 60.1);
    jsonrpc_call_release(&c);
    strbuf_release(&sb);
}

static void
test_round_trip_every_type(void **state)
{
    (void)state;
    const char *text = "[\"s\\u0001\\\"\\\\\xc3\xa9\",\"\",9223372036854775807,"
                       "-9223372036854775808,0,1.5,-0.0,1e+300,5e-324,0.1,true,false,null,"
                       "[],{},{\"a\":{\"b\":[1,{\"c\":[]}]}}]";
    struct xval *v = NULL;
    assert_int_equal(json_parse_xval(text, strlen(text), &v, why, sizeof(why)), 0);
    struct strbuf sb = STRBUF_INIT;
    struct wire_writer w;
    wire_writer_init(&w, WIRE_JSON, &sb);
    wire_xval(&w, v);
    assert_string_equal(sb.buf, "[\"s\\u0001\\\"\\\\\xc3\xa9\",\"\",9223372036854775807,"
                                "-9223372036854775808,0,1.5,-0.0,1e+300,4.94065645841247e-324,"
                                "0.1,true,false,null,[],{},{\"a\":{\"b\":[1,{\"c\":[]}]}}]");
    struct xval *back = NULL;
    assert_int_equal(json_parse_xval(sb.buf, sb.len, &back, why, sizeof(why)), 0);
    assert_true(xval_equal(v, back));
    xval_free(back);
    xval_free(v);
    strbuf_release(&sb);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_xo_login_v2),
        cmocka_unit_test(test_parse_v1),
        cmocka_unit_test(test_parse_v2_params_forms),
        cmocka_unit_test(test_parse_types),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_many_members),
        cmocka_unit_test(test_json_parse_xval),
        cmocka_unit_test(test_success_framing),
        cmocka_unit_test(test_failure_framing),
        cmocka_unit_test(test_call_framing_round_trip),
        cmocka_unit_test(test_round_trip_every_type),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
