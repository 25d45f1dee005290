/* tests/fuzz/jsonrpc_fuzz.c - fuzz target for the JSON-RPC parser and writer.
 *
 * Each input is parsed as a JSON-RPC request and as plain JSON. Whatever
 * parses must survive a round trip: the request's params written back with
 * jsonrpc_begin_call/wire_xval/jsonrpc_end_call and parsed again give the
 * same method and the same tree, exactly (strings, int64s and doubles all
 * round-trip in JSON); the id echoed through the success framing reads back
 * unchanged. As a cross-check the params also go through XML-RPC, where an
 * int comes back as the string of its digits and a double as the value of
 * its %.16g text (what xapi's XML-RPC says). A mismatch aborts: libFuzzer
 * reports it as a crash.
 *
 * Debugging a failure: build the gcc replay (tests/fuzz/jsonrpc_replay) and
 * run it on the crashing file; it prints which check failed.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/strbuf.h"
#include "common/xval.h"
#include "wire/jsonrpc.h"
#include "wire/wire.h"
#include "wire/xmlrpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "jsonrpc_fuzz: round trip failed: %s\n", what);
        abort();
    }
}

/* Rewrites the valid UTF-8 text @s in place into what XML can carry (as
 * wire/wire.c writes it): C0 controls other than TAB/LF/CR dropped, U+FFFE
 * and U+FFFF replaced by U+FFFD (same length). Returns the new length. */
static size_t
xml_text(char *s, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
            continue;
        if (c == 0xef && i + 2 < len && (unsigned char)s[i + 1] == 0xbf &&
            ((unsigned char)s[i + 2] == 0xbe || (unsigned char)s[i + 2] == 0xbf)) {
            memcpy(s + o, "\xef\xbf\xbd", 3);
            o += 3;
            i += 2;
            continue;
        }
        s[o++] = (char)c;
    }
    s[o] = '\0';
    return o;
}

/* Rewrites @v in place into what an XML round trip makes of it. */
static void
normalise_for_xml(struct xval *v)
{
    switch (v->kind) {
    case XVAL_STRING:
    case XVAL_DATETIME:
        v->str.len = xml_text(v->str.s, v->str.len);
        return;
    case XVAL_INT: {
        char buf[24];
        int n = snprintf(buf, sizeof(buf), "%" PRId64, v->i);
        char *s = malloc((size_t)n + 1);
        check(s != NULL, "out of memory");
        memcpy(s, buf, (size_t)n + 1);
        v->kind = XVAL_STRING;
        v->str.s = s;
        v->str.len = (size_t)n;
        return;
    }
    case XVAL_DOUBLE: {
        char buf[40];
        snprintf(buf, sizeof(buf), "%.16g", v->d);
        v->d = strtod(buf, NULL);
        return;
    }
    case XVAL_ARRAY:
        for (size_t i = 0; i < v->arr.n; i++)
            normalise_for_xml(v->arr.items[i]);
        return;
    case XVAL_STRUCT:
        for (size_t i = 0; i < v->st.n; i++) {
            xml_text(v->st.keys[i], strlen(v->st.keys[i]));
            normalise_for_xml(v->st.vals[i]);
        }
        return;
    default:
        return;
    }
}

static void
check_xml_round_trip(const char *method, const struct xval *params)
{
    struct strbuf sb = STRBUF_INIT;
    struct wire_writer w;
    wire_writer_init(&w, WIRE_XMLRPC, &sb);
    xmlrpc_begin_call(&w, method);
    for (size_t i = 0; i < params->arr.n; i++) {
        xmlrpc_begin_param(&w);
        wire_xval(&w, params->arr.items[i]);
        xmlrpc_end_param(&w);
    }
    xmlrpc_end_call(&w);
    check(strbuf_ok(&sb) && !w.overflow, "XML write");
    char *method2 = NULL;
    struct xval *params2 = NULL;
    char why[160];
    int rc = xmlrpc_parse_call(sb.buf, sb.len, &method2, &params2, why, sizeof(why));
    if (rc != 0)
        fprintf(stderr, "xml: %s\n%s\n", why, sb.buf);
    check(rc == 0, "XML re-parse");
    char *want_method = strdup(method);
    check(want_method != NULL, "out of memory");
    xml_text(want_method, strlen(want_method));
    check(strcmp(want_method, method2) == 0, "XML method name differs");
    free(want_method);
    struct xval *want = xval_copy(params);
    check(want != NULL, "out of memory");
    normalise_for_xml(want);
    check(xval_equal(want, params2), "XML params differ");
    xval_free(want);
    xval_free(params2);
    free(method2);
    strbuf_release(&sb);
}

static void
round_trip_call(const struct jsonrpc_call *call)
{
    struct strbuf sb = STRBUF_INIT;
    struct wire_writer w;
    wire_writer_init(&w, WIRE_JSON, &sb);
    jsonrpc_begin_call(&w, call->method, 42);
    for (size_t i = 0; i < call->params->arr.n; i++)
        wire_xval(&w, call->params->arr.items[i]);
    jsonrpc_end_call(&w);
    check(strbuf_ok(&sb) && !w.overflow, "JSON write");

    struct jsonrpc_call back;
    char why[160];
    int rc = jsonrpc_parse_call(sb.buf, sb.len, &back, why, sizeof(why));
    if (rc != 0)
        fprintf(stderr, "call: %s\n%s\n", why, sb.buf);
    check(rc == 0, "call re-parse");
    check(back.version == JSONRPC_V2, "version");
    check(strcmp(back.method, call->method) == 0, "method differs");
    check(back.id->kind == XVAL_INT && back.id->i == 42, "id");
    check(xval_equal(back.params, call->params), "params differ");
    jsonrpc_call_release(&back);
    strbuf_release(&sb);

    /* the id goes back out unchanged in a reply */
    wire_writer_init(&w, WIRE_JSON, &sb);
    jsonrpc_begin_success(&w, call->version);
    wire_string(&w, "");
    jsonrpc_end_success(&w, call->version, call->id);
    struct xval *reply = NULL;
    rc = json_parse_xval(sb.buf, sb.len, &reply, why, sizeof(why));
    check(rc == 0, "reply re-parse");
    check(xval_equal(xval_struct_get(reply, "id"), call->id), "id differs");
    xval_free(reply);
    strbuf_release(&sb);

    check_xml_round_trip(call->method, call->params);
}

static void
round_trip_value(const struct xval *v)
{
    struct strbuf sb = STRBUF_INIT;
    struct wire_writer w;
    wire_writer_init(&w, WIRE_JSON, &sb);
    wire_xval(&w, v);
    check(strbuf_ok(&sb), "JSON write");
    if (w.overflow) { /* deeper than the writer goes: nothing to compare */
        strbuf_release(&sb);
        return;
    }
    struct xval *back = NULL;
    char why[160];
    int rc = json_parse_xval(sb.buf, sb.len, &back, why, sizeof(why));
    if (rc != 0)
        fprintf(stderr, "value: %s\n%s\n", why, sb.buf);
    check(rc == 0, "value re-parse");
    check(xval_equal(v, back), "value differs");
    xval_free(back);
    strbuf_release(&sb);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    char why[160];

    struct jsonrpc_call call;
    if (jsonrpc_parse_call(body, size, &call, why, sizeof(why)) == 0) {
        check(call.method && call.params && call.params->kind == XVAL_ARRAY && call.id,
              "call shape");
        check(call.id->kind == XVAL_STRING || call.id->kind == XVAL_INT, "id kind");
        round_trip_call(&call);
        jsonrpc_call_release(&call);
    }

    struct xval *v = NULL;
    if (json_parse_xval(body, size, &v, why, sizeof(why)) == 0) {
        check(v != NULL, "value shape");
        round_trip_value(v);
        xval_free(v);
    }
    return 0;
}
