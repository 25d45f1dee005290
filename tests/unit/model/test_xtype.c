/* tests/unit/model/test_xtype.c - decoding what clients send, encoding what
 * they read, defaults, copies (model/xtype.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

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

/* The key reported is the first one a scan in order finds repeated, as
 * before the pairwise scan was replaced; equal means equal once decoded. */
static void
test_map_duplicate_reported_key(void **state)
{
    struct xmap m;
    struct xerr *err = NULL;
    /* (JSON with duplicate members is refused by the parser, so build it) */
    struct xval *v = xval_new_struct();
    const char *keys[] = {"a", "b", "c", "b", "a"};
    for (size_t i = 0; i < 5; i++)
        xval_struct_append(v, keys[i], xval_new_string("x"));
    assert_false(xtype_value_decode(&xapi_type_string_string_map, v, &m, "other_config", &err));
    assert_string_equal(err->code, "MAP_DUPLICATE_KEY");
    assert_string_equal(err->params[1], "other_config");
    assert_string_equal(err->params[3], "b");
    xerr_free(err);
    xval_free(v);
    err = NULL;
    v = json("{\"7\": 1.0, \"2\": 2.0, \"007\": 3.0}"); /* distinct text, equal ints */
    assert_false(xtype_value_decode(&xapi_type_int_float_map, v, &m, "m", &err));
    assert_string_equal(err->code, "MAP_DUPLICATE_KEY");
    assert_string_equal(err->params[3], "007"); /* as the client spelled it */
    xerr_free(err);
    xval_free(v);
    v = json("{\"7\": 1.0, \"2\": 2.0, \"-7\": 3.0}");
    assert_true(xtype_value_decode(&xapi_type_int_float_map, v, &m, "m", NULL));
    assert_int_equal(m.n, 3);
    xtype_value_clear(&xapi_type_int_float_map, &m);
    xval_free(v);
}

/* A (string -> string) map of @n keys "k<i>", the last one @last if given. */
static struct xval *
big_map(size_t n, const char *last)
{
    struct xval *v = xval_new_struct();
    assert_non_null(v);
    for (size_t i = 0; i < n; i++) {
        char k[32];
        snprintf(k, sizeof(k), "k%06zu", i);
        assert_int_equal(xval_struct_append(v, last && i == n - 1 ? last : k,
                                            xval_new_string("v")), 0);
    }
    return v;
}

static double
cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Issue 11 finding 9: 100,000 keys cost 43 s in the pairwise check. */
static void
test_map_many_keys(void **state)
{
    struct xmap m;
    struct xerr *err = NULL;
    struct xval *v = big_map(100000, NULL);
    double t0 = cpu_seconds();
    assert_true(xtype_value_decode(&xapi_type_string_string_map, v, &m, "other_config", NULL));
    print_message("# 100,000 distinct keys decoded in %.3f s of CPU\n", cpu_seconds() - t0);
    assert_int_equal(m.n, 100000);
    xtype_value_clear(&xapi_type_string_string_map, &m);
    /* ... but not from a client: VALUE_NOT_SUPPORTED before anything is built */
    assert_false(xtype_arg_decode(&xapi_type_string_string_map, v, &m, "other_config", &err));
    assert_string_equal(err->code, "VALUE_NOT_SUPPORTED");
    assert_int_equal(err->n_params, 3);
    assert_string_equal(err->params[0], "other_config");
    assert_string_equal(err->params[1], "100000 keys");
    assert_string_equal(err->params[2], "a map holds at most 10000 keys");
    assert_null(m.keys);
    xerr_free(err);
    xval_free(v);
    /* a duplicate as the very last key is found */
    v = big_map(100000, "k000017");
    err = NULL;
    t0 = cpu_seconds();
    assert_false(xtype_value_decode(&xapi_type_string_string_map, v, &m, "other_config", &err));
    print_message("# a duplicate among 100,000 keys found in %.3f s of CPU\n", cpu_seconds() - t0);
    assert_string_equal(err->code, "MAP_DUPLICATE_KEY");
    assert_string_equal(err->params[3], "k000017");
    xerr_free(err);
    xval_free(v);
    /* the limit itself is accepted, one more is not */
    v = big_map(XTYPE_MAX_MAP_KEYS, NULL);
    assert_true(xtype_arg_decode(&xapi_type_string_string_map, v, &m, "other_config", NULL));
    assert_int_equal(m.n, XTYPE_MAX_MAP_KEYS);
    xtype_value_clear(&xapi_type_string_string_map, &m);
    xval_free(v);
    v = big_map(XTYPE_MAX_MAP_KEYS + 1, NULL);
    err = NULL;
    assert_false(xtype_arg_decode(&xapi_type_string_string_map, v, &m, "other_config", &err));
    assert_string_equal(err->code, "VALUE_NOT_SUPPORTED");
    xerr_free(err);
    xval_free(v);
}

/* The limit reaches maps inside a constructor's record; the store's lenient
 * load (a record written before the limit) is not held to it. */
static void
test_map_limit_in_records(void **state)
{
    struct xval *rec = json("{\"name_label\": \"n\", \"name_description\": \"\", \"MTU\": \"1500\"}");
    assert_int_equal(xval_struct_append(rec, "other_config", big_map(XTYPE_MAX_MAP_KEYS + 1, NULL)),
                     0);
    struct xapi_network_record *n = NULL;
    struct xerr *err = NULL;
    assert_false(xtype_ctor_decode(&xapi_type_network_record, rec, &n, "args", &err));
    assert_string_equal(err->code, "VALUE_NOT_SUPPORTED");
    assert_string_equal(err->params[0], "other_config");
    assert_null(n);
    xerr_free(err);
    n = xapi_network_record_new();
    assert_true(xrecord_decode(&xapi_class_network, rec, n, true, false, NULL));
    assert_int_equal(n->other_config.n, XTYPE_MAX_MAP_KEYS + 1);
    xapi_network_record_free(n);
    xval_free(rec);
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
        cmocka_unit_test(test_map_duplicate_reported_key),
        cmocka_unit_test(test_map_many_keys),
        cmocka_unit_test(test_map_limit_in_records),
        cmocka_unit_test(test_datetime_forms),
        cmocka_unit_test(test_defaults_and_copy),
        cmocka_unit_test(test_ctor_decoding),
        cmocka_unit_test(test_message_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
