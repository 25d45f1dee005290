/* tests/unit/model/test_xtype.c - decoding what clients send, encoding what
 * they read, defaults, copies (model/xtype.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/strbuf.h"
#include "model/xmodel.h"
#include "model/xmsg.h"
#include "wire/jsonrpc.h"
#include "xapi_model.h"

static struct xval *
json(const char *text)
{
    struct xval *v = NULL;
    char why[128];
    assert_int_equal(json_parse_xval(text, strlen(text), &v, why, sizeof(why)), 0);
    return v;
}

static char *
encode(const struct xtype *t, const void *value, enum wire_format f)
{
    struct strbuf sb = STRBUF_INIT;
    struct wire_writer w;
    wire_writer_init(&w, f, &sb);
    xtype_value_encode(t, value, &w);
    return strbuf_steal(&sb, NULL);
}

static void
test_int_accepts_strings(void **state)
{
    int64_t i = 0;
    struct xval *v = json("\"17179869184\"");
    assert_true(xtype_value_decode(&xapi_type_int, v, &i, "x", NULL));
    assert_int_equal(i, 17179869184LL);
    xval_free(v);
    struct xerr *err = NULL;
    v = json("\"12abc\"");
    assert_false(xtype_value_decode(&xapi_type_int, v, &i, "memory", &err));
    assert_string_equal(err->code, "INVALID_VALUE");
    assert_string_equal(err->params[0], "memory");
    xerr_free(err);
    xval_free(v);
    char *xml = encode(&xapi_type_int, &(int64_t){42}, WIRE_XMLRPC);
    assert_string_equal(xml, "<value>42</value>"); /* ints travel as strings */
    free(xml);
}

static void
test_enum_any_case_canonical_out(void **state)
{
    int e = -1;
    struct xval *v = json("\"running\"");
    assert_true(xtype_value_decode(&xapi_type_vm_power_state, v, &e, "x", NULL));
    assert_int_equal(e, XAPI_VM_POWER_STATE_RUNNING);
    char *out = encode(&xapi_type_vm_power_state, &e, WIRE_JSON);
    assert_string_equal(out, "\"Running\"");
    free(out);
    xval_free(v);
    struct xerr *err = NULL;
    v = json("\"Sleeping\"");
    assert_false(xtype_value_decode(&xapi_type_vm_power_state, v, &e, "power_state", &err));
    assert_string_equal(err->code, "INVALID_VALUE");
    xerr_free(err);
    xval_free(v);
}

static void
test_type_mismatch(void **state)
{
    char *s = NULL;
    struct xerr *err = NULL;
    struct xval *v = json("[1,2]");
    assert_false(xtype_value_decode(&xapi_type_string, v, &s, "name_label", &err));
    assert_string_equal(err->code, "FIELD_TYPE_ERROR");
    assert_string_equal(err->params[0], "name_label");
    assert_null(s);
    xerr_free(err);
    xval_free(v);
}

static void
test_map_duplicate_key(void **state)
{
    struct xmap m;
    struct xerr *err = NULL;
    /* the parser keeps duplicate members in order; the decoder refuses them */
    struct xval *v = xval_new_struct();
    xval_struct_append(v, "k", xval_new_string("1"));
    xval_struct_append(v, "k", xval_new_string("2"));
    assert_false(xtype_value_decode(&xapi_type_string_string_map, v, &m, "other_config", &err));
    assert_string_equal(err->code, "MAP_DUPLICATE_KEY");
    xerr_free(err);
    xval_free(v);
}

static void
test_datetime_forms(void **state)
{
    const char *forms[] = {"\"20261122T15:04:05Z\"", "\"2026-11-22T15:04:05Z\"",
                           "\"20261122T15:04:05\""};
    for (size_t i = 0; i < 3; i++) {
        int64_t t = 0;
        struct xval *v = json(forms[i]);
        assert_true(xtype_value_decode(&xapi_type_datetime, v, &t, "d", NULL));
        assert_int_equal(t, 1795359845LL);
        xval_free(v);
    }
    char *xml = encode(&xapi_type_datetime, &(int64_t){1795359845LL}, WIRE_XMLRPC);
    assert_string_equal(xml, "<value><dateTime.iso8601>20261122T15:04:05Z</dateTime.iso8601></value>");
    free(xml);
}

static void
test_defaults_and_copy(void **state)
{
    struct xapi_vm_record *vm = xapi_vm_record_new();
    assert_int_equal(vm->power_state, XAPI_VM_POWER_STATE_HALTED);
    assert_string_equal(vm->snapshot_of, "OpaqueRef:NULL");
    assert_string_equal(vm->generation_id, "0:0");
    assert_true(vm->HVM_shadow_multiplier == 1.0);
    struct xapi_host_record *h = xapi_host_record_new();
    assert_string_equal(xmap_get_str((struct xmap *)&h->license_server, "port"), "27000");
    xapi_host_record_free(h);
    xmap_put_str((struct xmap *)&vm->other_config, "a", "b");
    struct xapi_vm_record *c = xapi_vm_record_copy(vm);
    assert_true(xtype_value_equal(&xapi_type_vm_record, &vm, &c));
    xmap_put_str((struct xmap *)&c->other_config, "a", "changed");
    assert_false(xtype_value_equal(&xapi_type_vm_record, &vm, &c));
    xapi_vm_record_free(c);
    xapi_vm_record_free(vm);
}

static void
test_ctor_decoding(void **state)
{
    struct xapi_network_record *n = xapi_network_record_new();
    struct xerr *err = NULL;
    struct xval *v = json("{\"name_label\": \"n\"}");
    assert_false(xrecord_decode(&xapi_class_network, v, n, false, true, &err));
    assert_string_equal(err->code, "FIELD_TYPE_ERROR"); /* a mandatory field is missing */
    xerr_free(err);
    xval_free(v);
    v = json("{\"name_label\": \"n\", \"name_description\": \"\", \"MTU\": \"9000\","
             " \"other_config\": {}, \"uuid\": \"ignored-dro\"}");
    assert_true(xrecord_decode(&xapi_class_network, v, n, false, true, NULL));
    assert_int_equal(n->MTU, 9000);
    assert_string_equal(n->uuid, ""); /* DRO fields are not taken from a constructor */
    xval_free(v);
    xapi_network_record_free(n);
}

static void
test_message_table(void **state)
{
    const struct xmsg *m = xmsg_lookup("VM.get_record");
    assert_non_null(m);
    assert_int_equal(m->kind, XM_GET_RECORD);
    assert_ptr_equal(xmsg_lookup("VM_get_record"), m);
    m = xmsg_lookup("session.login_with_password");
    assert_non_null(m);
    assert_false(m->session);
    assert_int_equal(m->n_params, 4);
    assert_int_equal(m->n_required, 2);
    assert_null(xmsg_lookup("VM.set_power_state")); /* DRO: no setter */
    assert_non_null(xmsg_lookup("VM.set_name_label"));
    assert_null(xmsg_lookup("pool.get_by_name_label")); /* pool's name_label is not namespaced */
    for (size_t i = 1; i < xapi_n_messages; i++)
        assert_true(strcmp(xapi_messages[i - 1].wire_name, xapi_messages[i].wire_name) < 0);
}

int
main(void)
{
    if (xmodel_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_int_accepts_strings),
        cmocka_unit_test(test_enum_any_case_canonical_out),
        cmocka_unit_test(test_type_mismatch),
        cmocka_unit_test(test_map_duplicate_key),
        cmocka_unit_test(test_datetime_forms),
        cmocka_unit_test(test_defaults_and_copy),
        cmocka_unit_test(test_ctor_decoding),
        cmocka_unit_test(test_message_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
