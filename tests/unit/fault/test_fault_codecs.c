/* tests/unit/fault/test_fault_codecs.c - the wire codecs under failing allocations.
 *
 * A request is parsed, and a reply written, with the n-th allocation failing
 * for every n along the way: the parser must answer a negative errno (never a
 * crash, never a half-built value handed back), the writer must report the
 * failure through strbuf_ok(), and ASan (the suite's second run) checks that
 * nothing leaked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/strbuf.h"
#include "common/xval.h"
#include "fault_walk.h"
#include "wire/jsonrpc.h"
#include "wire/wire.h"
#include "wire/xmlrpc.h"

static const char xml_call[] =
    "<?xml version=\"1.0\"?><methodCall><methodName>VM.set_other_config</methodName><params>"
    "<param><value>OpaqueRef:5c0e</value></param><param><value><string>OpaqueRef:1</string>"
    "</value></param><param><value><struct><member><name>a</name><value>1</value></member>"
    "<member><name>b</name><value><array><data><value><i4>7</i4></value><value><boolean>1"
    "</boolean></value><value><double>2.5</double></value></data></array></value></member>"
    "</struct></value></param></params></methodCall>";

static const char json_call[] =
    "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"VM.set_other_config\",\"params\":"
    "[\"OpaqueRef:5c0e\",\"OpaqueRef:1\",{\"a\":\"1\",\"b\":[7,true,2.5,null]}]}";

static bool
xml_step(void *opaque)
{
    char *method = NULL, why[128];
    struct xval *params = NULL;
    int rc = xmlrpc_parse_call(xml_call, sizeof(xml_call) - 1, &method, &params, why, sizeof(why));
    bool ok = rc == 0 && method && params && params->arr.n == 3;
    if (rc < 0 && (method || params))
        fail_msg("a failed parse handed back a value");
    free(method);
    xval_free(params);
    return ok;
}

static bool
json_step(void *opaque)
{
    struct jsonrpc_call call;
    memset(&call, 0, sizeof(call));
    char why[128];
    int rc = jsonrpc_parse_call(json_call, sizeof(json_call) - 1, &call, why, sizeof(why));
    bool ok = rc == 0 && call.params && call.params->arr.n == 3;
    jsonrpc_call_release(&call);
    return ok;
}

static bool
reply_step(void *opaque)
{
    enum wire_format format = *(enum wire_format *)opaque;
    struct strbuf sb = STRBUF_INIT;
    struct wire_writer w;
    wire_writer_init(&w, format, &sb);
    if (format == WIRE_JSON)
        jsonrpc_begin_success(&w, JSONRPC_V2);
    else
        xmlrpc_begin_success(&w);
    wire_begin_struct(&w);
    for (int i = 0; i < 50; i++) {
        char key[16];
        snprintf(key, sizeof(key), "key%d", i);
        wire_member(&w, key);
        wire_string(&w, "a value long enough to make the buffer grow a few times over");
    }
    wire_end_struct(&w);
    if (format == WIRE_JSON)
        jsonrpc_end_success(&w, JSONRPC_V2, NULL);
    else
        xmlrpc_end_success(&w);
    size_t len = 0;
    char *body = strbuf_steal(&sb, &len);
    bool ok = body != NULL && len > 2000;
    free(body);
    return ok;
}

static void
no_state(void *opaque, bool ok, unsigned long n, const char *site)
{
    /* the codecs hold no state between calls: ASan's leak check is the invariant */
}

static void
test_codecs_under_faults(void **state)
{
    unsigned long points = 0;
    points += fault_walk("xmlrpc.parse_call", FAULT_ALLOC, xml_step, no_state, NULL);
    points += fault_walk("jsonrpc.parse_call", FAULT_ALLOC, json_step, no_state, NULL);
    enum wire_format xml = WIRE_XMLRPC, json = WIRE_JSON;
    points += fault_walk("xmlrpc.reply", FAULT_ALLOC, reply_step, no_state, &xml);
    points += fault_walk("jsonrpc.reply", FAULT_ALLOC, reply_step, no_state, &json);
    assert_true(points >= 10);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codecs_under_faults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
