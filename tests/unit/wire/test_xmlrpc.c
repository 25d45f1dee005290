/* tests/unit/wire/test_xmlrpc.c - XML-RPC parsing and XenAPI reply framing.
 *
 * Replies are compared whole against golden files in data/ (exact bytes, as
 * xapi writes them: xapi's doc/content/xen-api/wire-protocol.md). Parsing is checked for every
 * value type in the forms clients send, and against hostile bodies: each
 * data/xmlrpc/fail-<what>.xml must be refused with the errno and reason named
 * in fail-<what>.fault ("EINVAL some words of the reason").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/strbuf.h"
#include "common/xval.h"
#include "wire/wire.h"
#include "wire/xmlrpc.h"

static char why[256];

/* ---- helpers ---- */

static char *
read_data(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", WIRE_TEST_DATA, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    struct strbuf sb = STRBUF_INIT;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        strbuf_append(&sb, buf, n);
    fclose(f);
    return strbuf_steal(&sb, len);
}

static int
parse_call(const char *body, char **method, struct xval **params)
{
    *method = NULL;
    *params = NULL;
    return xmlrpc_parse_call(body, strlen(body), method, params, why, sizeof(why));
}

/* Parses a call whose only param is @value_xml; returns the param (owned). */
static struct xval *
parse_one(const char *value_xml, int want_rc)
{
    struct strbuf sb = STRBUF_INIT;
    strbuf_printf(&sb,
                  "<?xml version=\"1.0\"?><methodCall><methodName>m</methodName>"
                  "<params><param>%s</param></params></methodCall>",
                  value_xml);
    char *method;
    struct xval *params;
    int rc = parse_call(sb.buf, &method, &params);
    strbuf_release(&sb);
    if (rc != want_rc)
        fail_msg("%s: rc %d (want %d) %s", value_xml, rc, want_rc, why);
    if (rc != 0)
        return NULL;
    free(method);
    assert_int_equal(params->kind, XVAL_ARRAY);
    assert_int_equal(params->arr.n, 1);
    struct xval *v = params->arr.items[0];
    params->arr.n = 0;
    xval_free(params);
    return v;
}

static void
assert_no_whitespace_between_tags(const char *s)
{
    for (const char *p = strchr(s, '>'); p && p[1]; p = strchr(p + 1, '>'))
        if (p[1] == ' ' || p[1] == '\n' || p[1] == '\t' || p[1] == '\r')
            fail_msg("whitespace after tag at offset %td", p - s);
}

/* ---- replies: golden files ---- */

static void
test_success_reply_golden(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    struct wire_writer w;
    wire_writer_init(&w, WIRE_XMLRPC, &sb);
    xmlrpc_begin_success(&w);
    wire_begin_struct(&w);
    wire_member(&w, "uuid");
    wire_string(&w, "6c1e0b7a-5b36-4bcb-93f6-2b2e6e3c9a11");
    wire_member(&w, "name_label");
    wire_string(&w, "web & db <prod>");
    wire_member(&w, "power_state");
    wire_string(&w, "Halted");
    wire_member(&w, "memory_static_max");
    wire_int(&w, 4294967296);
    wire_member(&w, "VCPUs_utilisation");
    wire_double(&w, 0.25);
    wire_member(&w, "is_a_template");
    wire_bool(&w, false);
    wire_member(&w, "last_booted");
    wire_datetime(&w, 1787277623);
    wire_member(&w, "VBDs");
    wire_begin_array(&w);
    wire_string(&w, "OpaqueRef:1");
    wire_string(&w, "OpaqueRef:2");
    wire_end_array(&w);
    wire_member(&w, "other_config");
    wire_begin_struct(&w);
    wire_end_struct(&w);
    wire_member(&w, "valid_ref_counts");
    wire_begin_struct(&w);
    wire_member(&w, "task");
    wire_int32(&w, 3);
    wire_end_struct(&w);
    wire_end_struct(&w);
    xmlrpc_end_success(&w);
    assert_true(strbuf_ok(&sb));

    size_t len;
    char *golden = read_data("success-vm-record.xml", &len);
    assert_int_equal(sb.len, len);
    assert_string_equal(sb.buf, golden);
    assert_no_whitespace_between_tags(sb.buf);

    /* and our own parser reads it back as the Status/Value struct */
    struct xval *v = NULL;
    assert_int_equal(xmlrpc_parse_response(sb.buf, sb.len, &v, why, sizeof(why)), 0);
    assert_string_equal(xval_struct_get(v, "Status")->str.s, "Success");
    const struct xval *rec = xval_struct_get(v, "Value");
    assert_int_equal(rec->kind, XVAL_STRUCT);
    assert_int_equal(rec->st.n, 10);
    assert_string_equal(xval_struct_get(rec, "name_label")->str.s, "web & db <prod>");
    assert_string_equal(xval_struct_get(rec, "memory_static_max")->str.s, "4294967296");
    assert_int_equal(xval_struct_get(rec, "last_booted")->kind, XVAL_DATETIME);
    assert_string_equal(xval_struct_get(rec, "last_booted")->str.s, "20260821T02:00:23Z");
    assert_int_equal(xval_struct_get(xval_struct_get(rec, "valid_ref_counts"), "task")->i, 3);
    xval_free(v);
    free(golden);
    strbuf_release(&sb);
}

static void
test_void_success_reply(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    struct wire_writer w;
    wire_writer_init(&w, WIRE_XMLRPC, &sb);
    xmlrpc_begin_success(&w);
    wire_string(&w, "");
    xmlrpc_end_success(&w);
    assert_string_equal(sb.buf, "<?xml version=\"1.0\"?><methodResponse><params><param><value>"
                                "<struct><member><name>Status</name><value>Success</value>"
                                "</member><member><name>Value</name><value></value></member>"
                                "</struct></value></param></params></methodResponse>");
    strbuf_release(&sb);
}

static void
test_failure_reply_golden(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    struct wire_writer w;
    wire_writer_init(&w, WIRE_XMLRPC, &sb);
    const char *params[] = {"VM", "OpaqueRef:<bad>&"};
    xmlrpc_write_failure(&w, "HANDLE_INVALID", params, 2);
    size_t len;
    char *golden = read_data("failure-handle-invalid.xml", &len);
    assert_string_equal(sb.buf, golden);
    assert_no_whitespace_between_tags(sb.buf);
    free(golden);

    strbuf_reset(&sb);
    wire_writer_init(&w, WIRE_XMLRPC, &sb);
    xmlrpc_write_failure(&w, "SESSION_INVALID", NULL, 0);
    assert_string_equal(sb.buf, "<?xml version=\"1.0\"?><methodResponse><params><param><value>"
                                "<struct><member><name>Status</name><value>Failure</value>"
                                "</member><member><name>ErrorDescription</name><value><array>"
                                "<data><value>SESSION_INVALID</value></data></array></value>"
                                "</member></struct></value></param></params></methodResponse>");
    strbuf_release(&sb);
}

static void
test_bare_reply(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    struct wire_writer w;
    wire_writer_init(&w, WIRE_XMLRPC, &sb);
    xmlrpc_begin_bare(&w);
    wire_begin_array(&w);
    wire_string(&w, "VM.get_all_records");
    wire_string(&w, "system.listMethods");
    wire_end_array(&w);
    xmlrpc_end_bare(&w);
    size_t len;
    char *golden = read_data("list-methods-bare.xml", &len);
    assert_string_equal(sb.buf, golden);
    free(golden);
    struct xval *v = NULL;
    assert_int_equal(xmlrpc_parse_response(sb.buf, sb.len, &v, why, sizeof(why)), 0);
    assert_int_equal(v->kind, XVAL_ARRAY);
    assert_int_equal(v->arr.n, 2);
    xval_free(v);
    strbuf_release(&sb);
}

static void
test_call_framing_round_trip(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    struct wire_writer w;
    wire_writer_init(&w, WIRE_XMLRPC, &sb);
    xmlrpc_begin_call(&w, "VM.start");
    xmlrpc_begin_param(&w);
    wire_string(&w, "OpaqueRef:s");
    xmlrpc_end_param(&w);
    xmlrpc_begin_param(&w);
    wire_bool(&w, true);
    xmlrpc_end_param(&w);
    xmlrpc_end_call(&w);
    assert_string_equal(sb.buf, "<?xml version=\"1.0\"?><methodCall><methodName>VM.start"
                                "</methodName><params><param><value>OpaqueRef:s</value>"
                                "</param><param><value><boolean>1</boolean></value></param>"
                                "</params></methodCall>");
    char *method;
    struct xval *params;
    assert_int_equal(parse_call(sb.buf, &method, &params), 0);
    assert_string_equal(method, "VM.start");
    assert_int_equal(params->arr.n, 2);
    assert_true(params->arr.items[1]->b);
    free(method);
    xval_free(params);
    strbuf_release(&sb);
}

/* ---- parsing what clients send ---- */

static void
test_parse_python_login(void **state)
{
    (void)state;
    /* Python's xmlrpc.client: newlines between tags, <string>, <int> */
    const char *body = "<?xml version='1.0'?>\n<methodCall>\n"
                       "<methodName>session.login_with_password</methodName>\n<params>\n"
                       "<param>\n<value><string>root</string></value>\n</param>\n"
                       "<param>\n<value><string>pa&amp;ss</string></value>\n</param>\n"
                       "<param>\n<value><string>1.1</string></value>\n</param>\n"
                       "<param>\n<value><int>7</int></value>\n</param>\n"
                       "</params>\n</methodCall>\n";
    char *method;
    struct xval *params;
    assert_int_equal(parse_call(body, &method, &params), 0);
    assert_string_equal(method, "session.login_with_password");
    assert_int_equal(params->arr.n, 4);
    assert_int_equal(params->arr.items[0]->kind, XVAL_STRING);
    assert_string_equal(params->arr.items[0]->str.s, "root");
    assert_string_equal(params->arr.items[1]->str.s, "pa&ss");
    assert_int_equal(params->arr.items[3]->kind, XVAL_INT);
    assert_int_equal(params->arr.items[3]->i, 7);
    free(method);
    xval_free(params);

    /* no <params> at all, and an empty <params/> */
    assert_int_equal(parse_call("<methodCall><methodName>system.listMethods</methodName>"
                                "</methodCall>", &method, &params), 0);
    assert_int_equal(params->kind, XVAL_ARRAY);
    assert_int_equal(params->arr.n, 0);
    free(method);
    xval_free(params);
    assert_int_equal(parse_call("<methodCall><methodName>x</methodName><params/></methodCall>",
                                &method, &params), 0);
    assert_int_equal(params->arr.n, 0);
    free(method);
    xval_free(params);
}

static void
test_parse_every_type(void **state)
{
    (void)state;
    struct xval *v;

    v = parse_one("<value>untyped &lt;text&gt;</value>", 0);
    assert_int_equal(v->kind, XVAL_STRING);
    assert_string_equal(v->str.s, "untyped <text>");
    xval_free(v);
    v = parse_one("<value></value>", 0);
    assert_int_equal(v->kind, XVAL_STRING);
    assert_int_equal(v->str.len, 0);
    xval_free(v);
    v = parse_one("<value/>", 0);
    assert_int_equal(v->kind, XVAL_STRING);
    assert_string_equal(v->str.s, "");
    xval_free(v);
    v = parse_one("<value>  </value>", 0); /* whitespace-only text is the string */
    assert_string_equal(v->str.s, "  ");
    xval_free(v);
    v = parse_one("<value><string/></value>", 0);
    assert_string_equal(v->str.s, "");
    xval_free(v);
    v = parse_one("<value>\n  <string> a b </string>\n</value>", 0);
    assert_string_equal(v->str.s, " a b ");
    xval_free(v);
    v = parse_one("<value><![CDATA[<x>&]]>y</value>", 0);
    assert_string_equal(v->str.s, "<x>&y");
    xval_free(v);
    v = parse_one("<value>a&#13;&#10;b&#xe9;</value>", 0);
    assert_string_equal(v->str.s, "a\r\nb\xc3\xa9");
    xval_free(v);
    v = parse_one("<value><i4>-12</i4></value>", 0);
    assert_int_equal(v->kind, XVAL_INT);
    assert_int_equal(v->i, -12);
    xval_free(v);
    v = parse_one("<value><i8>8589934592</i8></value>", 0);
    assert_int_equal(v->i, 8589934592LL);
    xval_free(v);
    v = parse_one("<value><int> +5 </int></value>", 0);
    assert_int_equal(v->i, 5);
    xval_free(v);
    v = parse_one("<value><double>60.1</double></value>", 0);
    assert_int_equal(v->kind, XVAL_DOUBLE);
    assert_true(v->d == 60.1);
    xval_free(v);
    v = parse_one("<value><double>3</double></value>", 0);
    assert_true(v->d == 3.0);
    xval_free(v);
    v = parse_one("<value><double>-1.5E-3</double></value>", 0);
    assert_true(v->d == -1.5e-3);
    xval_free(v);
    v = parse_one("<value><double>1e-400</double></value>", 0); /* underflow: 0 */
    assert_true(v->d == 0);
    xval_free(v);
    v = parse_one("<value><boolean>1</boolean></value>", 0);
    assert_int_equal(v->kind, XVAL_BOOL);
    assert_true(v->b);
    xval_free(v);
    v = parse_one("<value><boolean>0</boolean></value>", 0);
    assert_false(v->b);
    xval_free(v);
    v = parse_one("<value><dateTime.iso8601>20260821T02:00:23Z</dateTime.iso8601></value>", 0);
    assert_int_equal(v->kind, XVAL_DATETIME);
    assert_string_equal(v->str.s, "20260821T02:00:23Z");
    xval_free(v);
    v = parse_one("<value><base64>aGVs\nbG8=</base64></value>", 0);
    assert_int_equal(v->kind, XVAL_STRING);
    assert_string_equal(v->str.s, "aGVs\nbG8=");
    xval_free(v);
    v = parse_one("<value><nil/></value>", 0);
    assert_int_equal(v->kind, XVAL_NIL);
    xval_free(v);
    v = parse_one("<value><array><data/></array></value>", 0);
    assert_int_equal(v->kind, XVAL_ARRAY);
    assert_int_equal(v->arr.n, 0);
    xval_free(v);
    v = parse_one("<value><array><data><value>a</value><value><int>1</int></value>"
                  "<value><array><data><value/></data></array></value></data></array></value>",
                  0);
    assert_int_equal(v->arr.n, 3);
    assert_string_equal(v->arr.items[0]->str.s, "a");
    assert_int_equal(v->arr.items[1]->i, 1);
    assert_int_equal(v->arr.items[2]->arr.n, 1);
    xval_free(v);
    v = parse_one("<value><struct/></value>", 0);
    assert_int_equal(v->kind, XVAL_STRUCT);
    assert_int_equal(v->st.n, 0);
    xval_free(v);
    /* members keep order; duplicates are kept; value before name is fine */
    v = parse_one("<value><struct><member><name>b</name><value>1</value></member>"
                  "<member><value>2</value><name>a</name></member>"
                  "<member><name>b</name><value>3</value></member>"
                  "<member><name></name><value/></member></struct></value>",
                  0);
    assert_int_equal(v->st.n, 4);
    assert_string_equal(v->st.keys[0], "b");
    assert_string_equal(v->st.keys[1], "a");
    assert_string_equal(v->st.vals[1]->str.s, "2");
    assert_string_equal(v->st.keys[2], "b");
    assert_string_equal(v->st.keys[3], "");
    assert_string_equal(xval_struct_get(v, "b")->str.s, "1");
    xval_free(v);
}

static void
test_parse_bad_scalars(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "<value><int>9223372036854775808</int></value>",
        "<value><int>-9223372036854775809</int></value>",
        "<value><int>99999999999999999999999</int></value>",
        "<value><int>12a</int></value>",
        "<value><int></int></value>",
        "<value><int>-</int></value>",
        "<value><int>0x10</int></value>",
        "<value><int>1.0</int></value>",
        "<value><i4>1 2</i4></value>",
        "<value><double>nan</double></value>",
        "<value><double>inf</double></value>",
        "<value><double>-Infinity</double></value>",
        "<value><double>1e999</double></value>",
        "<value><double>0x1p3</double></value>",
        "<value><double></double></value>",
        "<value><double>.</double></value>",
        "<value><double>1e</double></value>",
        "<value><double>1,5</double></value>",
        "<value><boolean>true</boolean></value>",
        "<value><boolean>2</boolean></value>",
        "<value><boolean></boolean></value>",
        "<value><nil>x</nil></value>",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        parse_one(bad[i], -EINVAL);
    struct xval *v = parse_one("<value><int>9223372036854775807</int></value>", 0);
    assert_true(v->i == INT64_MAX);
    xval_free(v);
    v = parse_one("<value><int>-9223372036854775808</int></value>", 0);
    assert_true(v->i == INT64_MIN);
    xval_free(v);
}

static void
test_parse_bad_structure(void **state)
{
    (void)state;
    static const char *const bad_values[] = {
        "<value><string>a</string><string>b</string></value>", /* two typed children */
        "<value>text<string>a</string></value>",                /* mixed content */
        "<value><string>a</string>text</value>",
        "<value><int><i4>1</i4></int></value>",
        "<value><array><value>a</value></array></value>", /* no <data> */
        "<value><array><data/><data/></array></value>",
        "<value><struct><value>a</value></struct></value>",
        "<value><struct><member><value>a</value></member></struct></value>",
        "<value><struct><member><name>a</name></member></struct></value>",
        ("<value><struct><member><name>a</name><name>b</name><value/></member></struct>"
         "</value>"),
        "<value><struct><member><name>a</name><value/><value/></member></struct></value>",
        "<value><struct><member><name><b/></name><value/></member></struct></value>",
        "<value><string>a</string></value><value>b</value>",
        "<value><value>a</value></value>",
        "<value><struct>junk<member><name>a</name><value/></member></struct></value>",
        "<value><unknown/></value>",
        "<value><String>a</String></value>",
    };
    for (size_t i = 0; i < sizeof(bad_values) / sizeof(bad_values[0]); i++)
        parse_one(bad_values[i], -EINVAL);

    static const char *const bad_calls[] = {
        "",
        "not xml",
        "<methodCall>",
        "<methodCall><methodName>x</methodName><params><param><value>a</value></param>",
        "<methodResponse><params/></methodResponse>",
        "<methodCall><params/></methodCall>",
        "<methodCall><methodName></methodName></methodCall>",
        "<methodCall><methodName>a</methodName><methodName>b</methodName></methodCall>",
        "<methodCall><methodName>a<b/></methodName></methodCall>",
        "<methodCall><methodName>x</methodName><param><value/></param></methodCall>",
        "<methodCall><methodName>x</methodName><params><param/></params></methodCall>",
        ("<methodCall><methodName>x</methodName><params><param><value/><value/></param>"
         "</params></methodCall>"),
        "<methodCall><methodName>x</methodName><params><value/></params></methodCall>",
        "<methodCall><methodName>x</methodName><params/><params/></methodCall>",
        "<methodCall><methodName>x</methodName>text</methodCall>",
        "<methodCall><methodName>x</methodName></methodCall><methodCall/>",
        "<methodCall><methodName>x</methodName></methodCall>trailing",
        "<methodCall><methodName>x</methodName></methodcall>",
        "<methodCall><methodName>x\xff</methodName></methodCall>", /* invalid UTF-8 */
        "<methodCall><methodName>x\xc0\xaf</methodName></methodCall>",
        "<methodCall><methodName>x&#0;</methodName></methodCall>",
        "<methodCall><methodName>x&#1;</methodName></methodCall>",
        "<methodCall><methodName>x\x01</methodName></methodCall>",
        "<methodCall><methodName>&undefined;</methodName></methodCall>",
        ("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><methodCall><methodName>caf\xe9"
         "</methodName></methodCall>"),
    };
    for (size_t i = 0; i < sizeof(bad_calls) / sizeof(bad_calls[0]); i++) {
        char *method;
        struct xval *params;
        int rc = parse_call(bad_calls[i], &method, &params);
        if (rc != -EINVAL)
            fail_msg("accepted (%d): %s", rc, bad_calls[i]);
        assert_null(method);
        assert_null(params);
        assert_true(strlen(why) > 0);
    }

    /* a NUL byte inside the body */
    char *method;
    struct xval *params;
    const char nul_body[] = "<methodCall><methodName>a\0b</methodName></methodCall>";
    assert_int_equal(xmlrpc_parse_call(nul_body, sizeof(nul_body) - 1, &method, &params, why,
                                       sizeof(why)),
                     -EINVAL);
    /* the length is honoured: a body need not be NUL-terminated */
    const char *twice = "<methodCall><methodName>a</methodName></methodCall>XXXX";
    assert_int_equal(xmlrpc_parse_call(twice, strlen(twice) - 4, &method, &params, why,
                                       sizeof(why)),
                     0);
    free(method);
    xval_free(params);
}

static void
test_hostile_doctype_and_entities(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        /* billion laughs */
        ("<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">"
         "<!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">"
         "<!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">"
         "<!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">"
         "<!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">"
         "<!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">"
         "<!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">"
         "<!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">"
         "<!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">"
         "<!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">]>"
         "<methodCall><methodName>&lol9;</methodName></methodCall>"),
        /* external entity (XXE) */
        ("<?xml version=\"1.0\"?><!DOCTYPE m [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>"
         "<methodCall><methodName>&xxe;</methodName></methodCall>"),
        /* parameter entity */
        ("<!DOCTYPE m [<!ENTITY % p SYSTEM \"http://127.0.0.1/x.dtd\"> %p;]>"
         "<methodCall><methodName>x</methodName></methodCall>"),
        /* a harmless DOCTYPE is refused too */
        "<!DOCTYPE methodCall><methodCall><methodName>x</methodName></methodCall>",
        ("<!DOCTYPE methodCall SYSTEM \"http://example.com/x.dtd\">"
         "<methodCall><methodName>x</methodName></methodCall>"),
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        char *method;
        struct xval *params;
        assert_int_equal(parse_call(bodies[i], &method, &params), -EINVAL);
        assert_non_null(strstr(why, "DOCTYPE"));
    }
}

/* @n nested arrays around a string, as a call's one param. */
static char *
nested_arrays(int n)
{
    struct strbuf sb = STRBUF_INIT;
    strbuf_puts(&sb, "<methodCall><methodName>m</methodName><params><param>");
    for (int i = 0; i < n; i++)
        strbuf_puts(&sb, "<value><array><data>");
    strbuf_puts(&sb, "<value>x</value>");
    for (int i = 0; i < n; i++)
        strbuf_puts(&sb, "</data></array></value>");
    strbuf_puts(&sb, "</param></params></methodCall>");
    return strbuf_steal(&sb, NULL);
}

/* A thread reuses its parser: whatever the last body did to it (cut short,
 * refused mid-way, a DOCTYPE), the next one starts from a clean state. */
static void
test_parse_after_failures(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "<methodCall><methodName>a.b</methodName><params><param><value><struct>",
        "<methodCall><methodName>a.b</methodName><params><param><value><i4>x</i4>",
        "<!DOCTYPE x [<!ENTITY e \"boom\">]><methodCall><methodName>&e;</methodName>"
        "</methodCall>",
        "<methodCall><methodName>a.b</methodName></methodCall><extra/>",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *method;
        struct xval *params;
        assert_true(parse_call(bad[i], &method, &params) < 0);
        assert_null(method);
        assert_int_equal(parse_call("<methodCall><methodName>VM.get_record</methodName><params>"
                                    "<param><value>s</value></param></params></methodCall>",
                                    &method, &params),
                         0);
        assert_string_equal(method, "VM.get_record");
        assert_int_equal(params->arr.n, 1);
        assert_string_equal(params->arr.items[0]->str.s, "s");
        free(method);
        xval_free(params);
    }
}

/* The fast path for common calls gives what expat gives, on bodies it takes
 * and on near misses that it must leave to expat. */
static void
test_fast_path_same_as_expat(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        /* the fast shape: C clients, Python's xmlrpc.client, xe */
        "<methodCall><methodName>VM.get_record</methodName><params><param><value>"
        "OpaqueRef:1</value></param><param><value>OpaqueRef:2</value></param></params>"
        "</methodCall>",
        "<?xml version='1.0'?>\n<methodCall>\n<methodName>VM.get_power_state</methodName>\n"
        "<params>\n<param>\n<value><string>OpaqueRef:1</string></value>\n</param>\n"
        "</params>\n</methodCall>\n",
        "<?xml version=\"1.0\"?><methodCall><methodName>a.b</methodName><params></params>"
        "</methodCall>",
        "  <methodCall><methodName>a.b</methodName><params><param><value></value></param>"
        "<param><value> x\ty\n </value></param><param><value><string></string></value>"
        "</param></params></methodCall>\r\n",
        /* near misses: expat decides */
        "<methodCall><methodName>a.b</methodName><params><param><value>a&amp;b</value>"
        "</param></params></methodCall>",
        "<methodCall><methodName>a.b</methodName><params><param><value>x\ry</value>"
        "</param></params></methodCall>",
        "<methodCall><methodName>a.b</methodName><params><param><value>caf\xc3\xa9</value>"
        "</param></params></methodCall>",
        "<methodCall><methodName>a.b</methodName><params><param><value/></param></params>"
        "</methodCall>",
        "<methodCall><methodName>a.b</methodName><params><param><value><int>1</int></value>"
        "</param></params></methodCall>",
        "<methodCall><methodName>a b</methodName><params/></methodCall>",
        "<methodCall><methodName></methodName><params></params></methodCall>",
        "<methodCall><methodName>a.b</methodName><params></params></methodCall><x/>",
        "<methodCall><methodName>a.b</methodName><params></params></methodCall>junk",
        "<methodCall><methodName>a.b</methodName><params><param><value>x</value></param>",
        "<methodCall><methodName>a.b</methodName><params><param><value>a>b</value>"
        "</param></params></methodCall>",
        " <?xml version='1.0'?><methodCall><methodName>a.b</methodName><params></params>"
        "</methodCall>",
        "<methodCall><methodName>a.b</methodName><params><param><value><string>x</string>"
        " </value></param></params></methodCall>",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        char *m1 = NULL, *m2 = NULL;
        struct xval *p1 = NULL, *p2 = NULL;
        char why2[160];
        size_t len = strlen(bodies[i]);
        int rc1 = xmlrpc_parse_call(bodies[i], len, &m1, &p1, why, sizeof(why));
        int rc2 = xmlrpc_parse_call_expat(bodies[i], len, &m2, &p2, why2, sizeof(why2));
        assert_int_equal(rc1, rc2);
        assert_string_equal(why, why2);
        if (rc1 == 0) {
            assert_string_equal(m1, m2);
            assert_true(xval_equal(p1, p2));
        }
        free(m1);
        free(m2);
        xval_free(p1);
        xval_free(p2);
    }
}

static void
test_depth_limit(void **state)
{
    (void)state;
    char *method;
    struct xval *params;
    char *body = nested_arrays(XMLRPC_MAX_DEPTH);
    assert_int_equal(parse_call(body, &method, &params), 0);
    const struct xval *v = params->arr.items[0];
    for (int i = 0; i < XMLRPC_MAX_DEPTH; i++) {
        assert_int_equal(v->kind, XVAL_ARRAY);
        v = v->arr.items[0];
    }
    assert_string_equal(v->str.s, "x");
    free(method);
    xval_free(params);
    free(body);

    body = nested_arrays(XMLRPC_MAX_DEPTH + 1);
    assert_int_equal(parse_call(body, &method, &params), -E2BIG);
    free(body);
    body = nested_arrays(10000);
    assert_int_equal(parse_call(body, &method, &params), -E2BIG);
    free(body);

    /* structs count too, and mixed nesting */
    struct strbuf sb = STRBUF_INIT;
    strbuf_puts(&sb, "<value>");
    for (int i = 0; i < 10000; i++)
        strbuf_puts(&sb, "<struct><member><name>a</name><value>");
    parse_one(sb.buf, -E2BIG);
    strbuf_release(&sb);
    /* 10000 nested elements that are not even allowed */
    strbuf_puts(&sb, "<value>");
    for (int i = 0; i < 10000; i++)
        strbuf_puts(&sb, "<value>");
    parse_one(sb.buf, -EINVAL);
    strbuf_release(&sb);
}

static void
test_many_members(void **state)
{
    (void)state;
    enum { N = 100000 };
    struct strbuf sb = STRBUF_INIT;
    strbuf_puts(&sb, "<value><struct>");
    for (int i = 0; i < N; i++)
        strbuf_printf(&sb, "<member><name>k%d</name><value><i4>%d</i4></value></member>", i, i);
    strbuf_puts(&sb, "</struct></value>");
    struct xval *v = NULL;
    assert_int_equal(xmlrpc_parse_value(sb.buf, sb.len, &v, why, sizeof(why)), 0);
    assert_int_equal(v->st.n, N);
    assert_string_equal(v->st.keys[N - 1], "k99999");
    assert_int_equal(v->st.vals[N - 1]->i, N - 1);
    xval_free(v);
    strbuf_release(&sb);

    strbuf_puts(&sb, "<value><array><data>");
    for (int i = 0; i < N; i++)
        strbuf_puts(&sb, "<value/>");
    strbuf_puts(&sb, "</data></array></value>");
    assert_int_equal(xmlrpc_parse_value(sb.buf, sb.len, &v, why, sizeof(why)), 0);
    assert_int_equal(v->arr.n, N);
    xval_free(v);
    strbuf_release(&sb);
}

static void
test_parse_response_and_fault(void **state)
{
    (void)state;
    struct xval *v = NULL;
    const char *fault = "<?xml version=\"1.0\"?><methodResponse><fault><value><struct>"
                        "<member><name>faultCode</name><value><int>4</int></value></member>"
                        "<member><name>faultString</name><value>Too many</value></member>"
                        "</struct></value></fault></methodResponse>";
    assert_int_equal(xmlrpc_parse_response(fault, strlen(fault), &v, why, sizeof(why)),
                     -EPROTO);
    assert_int_equal(xval_struct_get(v, "faultCode")->i, 4);
    xval_free(v);

    static const char *const bad[] = {
        ("<methodResponse><params><param><value>a</value></param><param><value>b</value>"
         "</param></params></methodResponse>"),
        "<methodResponse><params/></methodResponse>",
        ("<methodResponse><params><param><value>a</value></param></params><fault><value/>"
         "</fault></methodResponse>"),
        "<methodResponse><fault/></methodResponse>",
        "<methodResponse><params/><fault><value/></fault></methodResponse>",
        "<methodCall><methodName>x</methodName></methodCall>",
        "<value>a</value>",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = NULL;
        if (xmlrpc_parse_response(bad[i], strlen(bad[i]), &v, why, sizeof(why)) != -EINVAL)
            fail_msg("accepted %s", bad[i]);
        assert_null(v);
    }
}

static void
test_parse_value_fragment(void **state)
{
    (void)state;
    struct xval *v = NULL;
    const char *ref = "<value>OpaqueRef:0b6fd0c4-1e8e-4e5c-a2a1-6b1d0e0f0a55</value>";
    assert_int_equal(xmlrpc_parse_value(ref, strlen(ref), &v, why, sizeof(why)), 0);
    assert_string_equal(v->str.s, "OpaqueRef:0b6fd0c4-1e8e-4e5c-a2a1-6b1d0e0f0a55");
    xval_free(v);
    const char *bad = "<methodCall><methodName>x</methodName></methodCall>";
    assert_int_equal(xmlrpc_parse_value(bad, strlen(bad), &v, why, sizeof(why)), -EINVAL);
    assert_int_equal(xmlrpc_parse_value("", 0, &v, why, sizeof(why)), -EINVAL);
}

static void
test_why_buffer(void **state)
{
    (void)state;
    char small[8];
    memset(small, 'x', sizeof(small));
    char *method;
    struct xval *params;
    const char *body = "<methodCall><bogus/></methodCall>";
    assert_int_equal(xmlrpc_parse_call(body, strlen(body), &method, &params, small,
                                       sizeof(small)),
                     -EINVAL);
    assert_int_equal(strlen(small), sizeof(small) - 1);
    assert_int_equal(xmlrpc_parse_call(body, strlen(body), &method, &params, NULL, 0),
                     -EINVAL);
    assert_int_equal(xmlrpc_parse_call("junk", 4, &method, &params, small, 1), -EINVAL);
    assert_int_equal(small[0], '\0');
}

static void
test_round_trip_every_type(void **state)
{
    (void)state;
    struct strbuf sb = STRBUF_INIT;
    struct wire_writer w;
    wire_writer_init(&w, WIRE_XMLRPC, &sb);
    xmlrpc_begin_bare(&w);
    wire_begin_struct(&w);
    wire_member(&w, "s");
    wire_string(&w, "a & b <c> \"d\" \t\n\r \xc3\xa9");
    wire_member(&w, "empty");
    wire_string(&w, "");
    wire_member(&w, "i");
    wire_int(&w, INT64_MIN);
    wire_member(&w, "i4");
    wire_int32(&w, INT32_MAX);
    wire_member(&w, "d");
    wire_double(&w, -1234.5678e-10);
    wire_member(&w, "b");
    wire_bool(&w, true);
    wire_member(&w, "t");
    wire_datetime(&w, 1787277623);
    wire_member(&w, "a");
    wire_begin_array(&w);
    wire_begin_array(&w);
    wire_end_array(&w);
    wire_begin_struct(&w);
    wire_member(&w, "<k>");
    wire_string(&w, "v");
    wire_end_struct(&w);
    wire_end_array(&w);
    wire_end_struct(&w);
    xmlrpc_end_bare(&w);

    struct xval *v = NULL;
    assert_int_equal(xmlrpc_parse_response(sb.buf, sb.len, &v, why, sizeof(why)), 0);
    assert_string_equal(xval_struct_get(v, "s")->str.s, "a & b <c> \"d\" \t\n\r \xc3\xa9");
    assert_string_equal(xval_struct_get(v, "empty")->str.s, "");
    /* int64 travels as a string, int32 as <i4> */
    assert_int_equal(xval_struct_get(v, "i")->kind, XVAL_STRING);
    assert_string_equal(xval_struct_get(v, "i")->str.s, "-9223372036854775808");
    assert_int_equal(xval_struct_get(v, "i4")->kind, XVAL_INT);
    assert_int_equal(xval_struct_get(v, "i4")->i, INT32_MAX);
    assert_true(xval_struct_get(v, "d")->d == -1234.5678e-10);
    assert_true(xval_struct_get(v, "b")->b);
    const struct xval *t = xval_struct_get(v, "t");
    assert_int_equal(t->kind, XVAL_DATETIME);
    time_t back;
    assert_int_equal(wire_parse_datetime(t->str.s, &back), 0);
    assert_int_equal(back, 1787277623);
    const struct xval *a = xval_struct_get(v, "a");
    assert_int_equal(a->arr.n, 2);
    assert_int_equal(a->arr.items[0]->arr.n, 0);
    assert_string_equal(xval_struct_get(a->arr.items[1], "<k>")->str.s, "v");
    xval_free(v);
    strbuf_release(&sb);
}

/* Every data/xmlrpc/fail-*.xml is refused as its .fault file says. */
static void
test_fail_files(void **state)
{
    (void)state;
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/xmlrpc", WIRE_TEST_DATA);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (strncmp(e->d_name, "fail-", 5) != 0 || l < 4 || strcmp(e->d_name + l - 4, ".xml"))
            continue;
        char name[600], fault_name[600];
        snprintf(name, sizeof(name), "xmlrpc/%s", e->d_name);
        snprintf(fault_name, sizeof(fault_name), "xmlrpc/%.*s.fault", (int)(l - 4), e->d_name);
        size_t len, flen;
        char *body = read_data(name, &len);
        char *fault = read_data(fault_name, &flen);
        while (flen && (fault[flen - 1] == '\n'))
            fault[--flen] = '\0';
        char *reason = strchr(fault, ' ');
        assert_non_null(reason);
        *reason++ = '\0';
        int want = strcmp(fault, "E2BIG") == 0 ? -E2BIG : -EINVAL;
        char *method = NULL;
        struct xval *params = NULL;
        int rc = xmlrpc_parse_call(body, len, &method, &params, why, sizeof(why));
        if (rc != want || !strstr(why, reason))
            fail_msg("%s: rc %d why \"%s\", want %s \"%s\"", e->d_name, rc, why, fault, reason);
        free(body);
        free(fault);
        n++;
    }
    closedir(d);
    assert_true(n >= 5);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_success_reply_golden),
        cmocka_unit_test(test_void_success_reply),
        cmocka_unit_test(test_failure_reply_golden),
        cmocka_unit_test(test_bare_reply),
        cmocka_unit_test(test_call_framing_round_trip),
        cmocka_unit_test(test_parse_python_login),
        cmocka_unit_test(test_parse_every_type),
        cmocka_unit_test(test_parse_bad_scalars),
        cmocka_unit_test(test_parse_bad_structure),
        cmocka_unit_test(test_hostile_doctype_and_entities),
        cmocka_unit_test(test_parse_after_failures),
        cmocka_unit_test(test_fast_path_same_as_expat),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_many_members),
        cmocka_unit_test(test_parse_response_and_fault),
        cmocka_unit_test(test_parse_value_fragment),
        cmocka_unit_test(test_why_buffer),
        cmocka_unit_test(test_round_trip_every_type),
        cmocka_unit_test(test_fail_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
