/* tests/fuzz/xmlrpc_fuzz.c - fuzz target for the XML-RPC parser and writer.
 *
 * Each input is fed to all three entry points (methodCall, methodResponse,
 * bare value). Whatever parses must survive a round trip: written back with
 * the wire writer (XML, and JSON as a cross-check) and parsed again, it must
 * give the same tree, up to what XML-RPC as xapi writes it cannot say:
 *  - an int is written untyped, so it comes back as the string of its digits;
 *  - a double is written with %.16g, so it comes back as that text's value.
 * The JSON cross-check is exact except that a datetime becomes a string and a
 * struct with a repeated member name cannot be read back (JSON rejects
 * duplicate keys). A mismatch aborts: libFuzzer reports it as a crash.
 *
 * A call is also parsed by expat alone: the fast path for common calls
 * (wire/xmlrpc.c) must give the same result.
 *
 * Debugging a failure: build the gcc replay (tests/fuzz/xmlrpc_replay) and run
 * it on the crashing file; it prints which check failed.
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
        fprintf(stderr, "xmlrpc_fuzz: round trip failed: %s\n", what);
        abort();
    }
}

/* Rewrites @v in place into what an XML round trip makes of it. */
static void
normalise_for_xml(struct xval *v)
{
    switch (v->kind) {
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
        for (size_t i = 0; i < v->st.n; i++)
            normalise_for_xml(v->st.vals[i]);
        return;
    default:
        return;
    }
}

/* Rewrites datetimes into strings (JSON has no datetime type). */
static void
normalise_for_json(struct xval *v)
{
    if (v->kind == XVAL_DATETIME)
        v->kind = XVAL_STRING;
    if (v->kind == XVAL_ARRAY)
        for (size_t i = 0; i < v->arr.n; i++)
            normalise_for_json(v->arr.items[i]);
    if (v->kind == XVAL_STRUCT)
        for (size_t i = 0; i < v->st.n; i++)
            normalise_for_json(v->st.vals[i]);
}

static bool
has_duplicate_keys(const struct xval *v)
{
    if (v->kind == XVAL_ARRAY) {
        for (size_t i = 0; i < v->arr.n; i++)
            if (has_duplicate_keys(v->arr.items[i]))
                return true;
    } else if (v->kind == XVAL_STRUCT) {
        for (size_t i = 0; i < v->st.n; i++) {
            for (size_t k = 0; k < i; k++)
                if (strcmp(v->st.keys[i], v->st.keys[k]) == 0)
                    return true;
            if (has_duplicate_keys(v->st.vals[i]))
                return true;
        }
    }
    return false;
}

/* JSON cross-check: @v written as JSON reads back as itself. */
static void
check_json_round_trip(const struct xval *v)
{
    if (has_duplicate_keys(v))
        return;
    struct strbuf sb = STRBUF_INIT;
    struct wire_writer w;
    wire_writer_init(&w, WIRE_JSON, &sb);
    wire_xval(&w, v);
    check(strbuf_ok(&sb) && !w.overflow, "JSON write");
    struct xval *back = NULL;
    char why[160];
    int rc = json_parse_xval(sb.buf, sb.len, &back, why, sizeof(why));
    if (rc != 0)
        fprintf(stderr, "json: %s\n%s\n", why, sb.buf);
    check(rc == 0, "JSON re-parse");
    struct xval *want = xval_copy(v);
    check(want != NULL, "out of memory");
    normalise_for_json(want);
    check(xval_equal(want, back), "JSON value differs");
    xval_free(want);
    xval_free(back);
    strbuf_release(&sb);
}

static void
round_trip_call(const char *method, const struct xval *params)
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
        fprintf(stderr, "call: %s\n%s\n", why, sb.buf);
    check(rc == 0, "call re-parse");
    check(strcmp(method, method2) == 0, "method name differs");
    struct xval *want = xval_copy(params);
    check(want != NULL, "out of memory");
    normalise_for_xml(want);
    check(xval_equal(want, params2), "params differ");
    check_json_round_trip(params);
    xval_free(want);
    xval_free(params2);
    free(method2);
    strbuf_release(&sb);
}

static void
round_trip_value(const struct xval *v, bool as_response)
{
    struct strbuf sb = STRBUF_INIT;
    struct wire_writer w;
    wire_writer_init(&w, WIRE_XMLRPC, &sb);
    if (as_response)
        xmlrpc_begin_bare(&w);
    wire_xval(&w, v);
    if (as_response)
        xmlrpc_end_bare(&w);
    check(strbuf_ok(&sb) && !w.overflow, "XML write");

    struct xval *back = NULL;
    char why[160];
    int rc = as_response ? xmlrpc_parse_response(sb.buf, sb.len, &back, why, sizeof(why))
                         : xmlrpc_parse_value(sb.buf, sb.len, &back, why, sizeof(why));
    if (rc != 0)
        fprintf(stderr, "value: %s\n%s\n", why, sb.buf);
    check(rc == 0, "value re-parse");
    struct xval *want = xval_copy(v);
    check(want != NULL, "out of memory");
    normalise_for_xml(want);
    check(xval_equal(want, back), "value differs");
    check_json_round_trip(v);
    xval_free(want);
    xval_free(back);
    strbuf_release(&sb);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    char why[160];

    char *method = NULL;
    struct xval *params = NULL;
    int call_rc = xmlrpc_parse_call(body, size, &method, &params, why, sizeof(why));
    /* The fast path must answer exactly as expat does (wire/xmlrpc.c). */
    char *method_x = NULL;
    struct xval *params_x = NULL;
    int call_rc_x = xmlrpc_parse_call_expat(body, size, &method_x, &params_x, why, sizeof(why));
    check(call_rc == call_rc_x || (call_rc < 0 && call_rc_x < 0), "fast path: result differs");
    if (call_rc == 0) {
        check(strcmp(method, method_x) == 0, "fast path: method differs");
        check(xval_equal(params, params_x), "fast path: params differ");
    }
    free(method_x);
    xval_free(params_x);
    if (call_rc == 0) {
        check(method != NULL && params != NULL && params->kind == XVAL_ARRAY, "call shape");
        round_trip_call(method, params);
        free(method);
        xval_free(params);
    }

    struct xval *v = NULL;
    int rc = xmlrpc_parse_response(body, size, &v, why, sizeof(why));
    if (rc == 0 || rc == -EPROTO) {
        check(v != NULL, "response shape");
        if (rc == 0)
            round_trip_value(v, true);
        xval_free(v);
    }

    v = NULL;
    if (xmlrpc_parse_value(body, size, &v, why, sizeof(why)) == 0) {
        check(v != NULL, "value shape");
        round_trip_value(v, false);
        xval_free(v);
    }
    return 0;
}
