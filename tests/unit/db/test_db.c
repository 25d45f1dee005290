/* tests/unit/db/test_db.c - the object store: writes, batches, reverse links,
 * generations and tombstones, and what survives a reopen. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/strbuf.h"
#include "db/db.h"
#include "model/xmodel.h"
#include "xapi_model.h"

static char db_path[256];

static struct db *
open_db(void)
{
    struct db *db = NULL;
    char why[256] = "";
    assert_int_equal(db_open(db_path, &db, why, sizeof(why)), 0);
    return db;
}

static int
setup(void **state)
{
    snprintf(db_path, sizeof(db_path), "/tmp/vessel-test-db-%d-XXXXXX", (int)getpid());
    int fd = mkstemp(db_path);
    close(fd);
    unlink(db_path);
    *state = open_db();
    return 0;
}

static int
teardown(void **state)
{
    db_close(*state);
    char p[300];
    unlink(db_path);
    snprintf(p, sizeof(p), "%s-wal", db_path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", db_path);
    unlink(p);
    return 0;
}

static char *
new_vm(struct db *db, const char *name)
{
    struct xapi_vm_record *vm = xapi_vm_record_new();
    free(vm->name_label);
    vm->name_label = strdup(name);
    char *ref = NULL;
    struct xerr *err = NULL;
    assert_true(db_create(db, &xapi_class_vm, NULL, vm, &ref, &err));
    assert_null(err);
    return ref;
}

static void
test_create_get_destroy(void **state)
{
    struct db *db = *state;
    char *ref = new_vm(db, "a");
    struct xapi_vm_record *got = NULL;
    assert_true(db_get(db, &xapi_class_vm, ref, (void **)&got, NULL));
    assert_string_equal(got->name_label, "a");
    assert_int_equal(strlen(got->uuid), 36); /* filled in */
    assert_int_equal(got->power_state, XAPI_VM_POWER_STATE_HALTED); /* schema default */
    char *by_uuid = NULL;
    assert_true(db_ref_by_uuid(db, &xapi_class_vm, got->uuid, &by_uuid, NULL));
    assert_string_equal(by_uuid, ref);
    struct xerr *err = NULL;
    assert_true(db_destroy(db, &xapi_class_vm, ref, &err));
    struct xapi_vm_record *none = NULL;
    assert_false(db_get(db, &xapi_class_vm, ref, (void **)&none, &err));
    assert_null(none);
    assert_string_equal(err->code, "HANDLE_INVALID");
    assert_string_equal(err->params[0], "VM");
    xerr_free(err);
    err = NULL;
    assert_false(db_destroy(db, &xapi_class_vm, ref, &err));
    assert_string_equal(err->code, "HANDLE_INVALID");
    xerr_free(err);
    xapi_vm_record_free(got);
    free(by_uuid);
    free(ref);
}

static void
test_duplicate_uuid_refused(void **state)
{
    struct db *db = *state;
    char *ref = new_vm(db, "a");
    struct xapi_vm_record *got = NULL;
    assert_true(db_get(db, &xapi_class_vm, ref, (void **)&got, NULL));
    struct xerr *err = NULL;
    assert_false(db_create(db, &xapi_class_vm, NULL, got, NULL, &err)); /* same uuid */
    assert_string_equal(err->code, "DB_UNIQUENESS_CONSTRAINT_VIOLATION");
    xerr_free(err);
    assert_int_equal(db_count(db, &xapi_class_vm), 1);
    free(ref);
}

static bool
rename_then_fail(void *opaque, void *rec, struct xerr **errp)
{
    struct xapi_vm_record *vm = rec;
    free(vm->name_label);
    vm->name_label = strdup("half-done");
    return xerr_raise(errp, "OPERATION_NOT_ALLOWED", (const char *)opaque);
}

static void
test_failed_update_restores(void **state)
{
    struct db *db = *state;
    char *ref = new_vm(db, "before");
    uint64_t gen = db_generation(db);
    struct xerr *err = NULL;
    assert_false(db_update(db, &xapi_class_vm, ref, rename_then_fail, "no", &err));
    assert_string_equal(err->code, "OPERATION_NOT_ALLOWED");
    xerr_free(err);
    struct xapi_vm_record *got = NULL;
    assert_true(db_get(db, &xapi_class_vm, ref, (void **)&got, NULL));
    assert_string_equal(got->name_label, "before");
    assert_int_equal(db_generation(db), gen); /* nothing committed */
    xapi_vm_record_free(got);
    free(ref);
}

static void
test_batch_rollback(void **state)
{
    struct db *db = *state;
    char *keep = new_vm(db, "keep");
    size_t n = db_count(db, &xapi_class_vm);
    db_batch_begin(db);
    char *a = new_vm(db, "batch-a");
    assert_true(db_destroy(db, &xapi_class_vm, keep, NULL));
    struct xerr *err = NULL;
    assert_false(db_batch_end(db, false, &err));
    assert_int_equal(db_count(db, &xapi_class_vm), n);
    assert_true(db_exists(db, &xapi_class_vm, keep));
    assert_false(db_exists(db, &xapi_class_vm, a));
    free(a);
    free(keep);
}

/* db_encode's bytes, as the store encodes them now (from its cache or not),
 * inside an array after one element: JSON needs the comma. */
static char *
encode(struct db *db, const char *ref, enum wire_format f)
{
    struct strbuf sb = STRBUF_INIT;
    struct wire_writer w;
    wire_writer_init(&w, f, &sb);
    wire_begin_array(&w);
    wire_int(&w, 1);
    assert_true(db_encode(db, &xapi_class_vm, ref, &w, NULL));
    wire_end_array(&w);
    return strbuf_steal(&sb, NULL);
}

/* The same, from a copy of the record: what db_encode must equal. */
static char *
encode_copy(struct db *db, const char *ref, enum wire_format f)
{
    void *rec = NULL;
    assert_true(db_get(db, &xapi_class_vm, ref, &rec, NULL));
    struct strbuf sb = STRBUF_INIT;
    struct wire_writer w;
    wire_writer_init(&w, f, &sb);
    wire_begin_array(&w);
    wire_int(&w, 1);
    xrecord_encode(&xapi_class_vm, rec, &w, false);
    wire_end_array(&w);
    xrecord_free(&xapi_class_vm, rec);
    return strbuf_steal(&sb, NULL);
}

static void
expect_encoding(struct db *db, const char *ref, const char *name)
{
    for (int f = WIRE_XMLRPC; f <= WIRE_JSON; f++)
        for (int i = 0; i < 2; i++) { /* the second one from the cache */
            char *got = encode(db, ref, (enum wire_format)f), *want = encode_copy(db, ref, (enum wire_format)f);
            assert_string_equal(got, want);
            assert_non_null(strstr(got, name));
            free(got);
            free(want);
        }
}

static bool
rename_to(void *opaque, void *rec, struct xerr **errp)
{
    struct xapi_vm_record *vm = rec;
    free(vm->name_label);
    vm->name_label = strdup(opaque);
    return vm->name_label || xerr_nomem(errp);
}

/* Encoded records are reused only while nothing changed them. */
static void
test_encode_follows_changes(void **state)
{
    struct db *db = *state;
    char *ref = new_vm(db, "enc-one");
    expect_encoding(db, ref, "enc-one");
    assert_true(db_update(db, &xapi_class_vm, ref, rename_to, "enc-two", NULL));
    expect_encoding(db, ref, "enc-two");
    char *three = "enc-three";
    const struct xfield *f = xclass_field(&xapi_class_vm, "name_label");
    assert_true(db_set_volatile(db, &xapi_class_vm, ref, f, &three, NULL));
    expect_encoding(db, ref, "enc-three");
    /* a batch sees its own change; after a rollback the old bytes again */
    db_batch_begin(db);
    assert_true(db_update(db, &xapi_class_vm, ref, rename_to, "enc-four", NULL));
    char *inside = encode(db, ref, WIRE_XMLRPC);
    assert_non_null(strstr(inside, "enc-four"));
    free(inside);
    assert_false(db_batch_end(db, false, NULL));
    expect_encoding(db, ref, "enc-three");
    assert_true(db_destroy(db, &xapi_class_vm, ref, NULL));
    free(ref);
}

static void
test_reverse_links(void **state)
{
    struct db *db = *state;
    char *vm = new_vm(db, "with-vbd");
    struct xapi_vbd_record *vbd = xapi_vbd_record_new();
    free(vbd->VM);
    vbd->VM = strdup(vm);
    char *vbd_ref = NULL;
    assert_true(db_create(db, &xapi_class_vbd, NULL, vbd, &vbd_ref, NULL));
    struct xapi_vm_record *got = NULL;
    assert_true(db_get(db, &xapi_class_vm, vm, (void **)&got, NULL));
    assert_int_equal(got->VBDs.n, 1);
    assert_string_equal(got->VBDs.items[0], vbd_ref);
    xapi_vm_record_free(got);
    /* moving the VBD away empties the set; destroying it leaves it empty */
    const char *null_ref = "OpaqueRef:NULL";
    assert_true(db_set_field(db, &xapi_class_vbd, vbd_ref, xclass_field(&xapi_class_vbd, "VM"),
                             &null_ref, NULL));
    assert_true(db_get(db, &xapi_class_vm, vm, (void **)&got, NULL));
    assert_int_equal(got->VBDs.n, 0);
    xapi_vm_record_free(got);
    free(vm);
    free(vbd_ref);
}

struct seen {
    int adds, mods, dels;
};

static void
count_changes(void *opaque, const struct xclass *cls, enum db_change_op op, const char *ref,
              uint64_t gen, const void *rec)
{
    struct seen *s = opaque;
    if (op == DB_CHANGE_ADD)
        s->adds++;
    else if (op == DB_CHANGE_MOD)
        s->mods++;
    else
        s->dels++;
}

static void
test_changes_since(void **state)
{
    struct db *db = *state;
    uint64_t mask[4] = {0};
    mask[xapi_class_vm.id / 64] |= 1ull << (xapi_class_vm.id % 64);
    char *a = new_vm(db, "a");
    uint64_t token = db_generation(db);
    char *b = new_vm(db, "b");                         /* add */
    assert_true(db_touch(db, &xapi_class_vm, a, NULL)); /* mod */
    char *c = new_vm(db, "c");
    assert_true(db_destroy(db, &xapi_class_vm, c, NULL)); /* created and deleted: nothing */
    assert_true(db_destroy(db, &xapi_class_vm, a, NULL)); /* existed at token: del */
    struct seen s = {0};
    uint64_t now = 0;
    assert_true(db_changes_since(db, token, mask, count_changes, &s, &now));
    assert_int_equal(s.adds, 1);
    assert_int_equal(s.mods, 0);
    assert_int_equal(s.dels, 1);
    assert_int_equal(now, db_generation(db));
    /* a token from the future is refused */
    assert_false(db_changes_since(db, now + 10, mask, count_changes, &s, &now));
    free(a);
    free(b);
    free(c);
}

static void
test_survives_reopen(void **state)
{
    struct db *db = *state;
    char *vm = new_vm(db, "persistent");
    struct xapi_vbd_record *vbd = xapi_vbd_record_new();
    free(vbd->VM);
    vbd->VM = strdup(vm);
    assert_true(db_create(db, &xapi_class_vbd, NULL, vbd, NULL, NULL));
    char *gone = new_vm(db, "gone");
    assert_true(db_destroy(db, &xapi_class_vm, gone, NULL));
    uint64_t gen = db_generation(db);
    db_close(db);
    *state = db = open_db();
    assert_int_equal(db_generation(db), gen);
    struct xapi_vm_record *got = NULL;
    assert_true(db_get(db, &xapi_class_vm, vm, (void **)&got, NULL));
    assert_string_equal(got->name_label, "persistent");
    assert_int_equal(got->VBDs.n, 1); /* rebuilt from the forward ref */
    xapi_vm_record_free(got);
    assert_false(db_exists(db, &xapi_class_vm, gone));
    /* the deletion is still reported to a token from before it */
    uint64_t mask[4] = {0};
    mask[xapi_class_vm.id / 64] |= 1ull << (xapi_class_vm.id % 64);
    struct seen s = {0};
    uint64_t now;
    assert_true(db_changes_since(db, gen - 1, mask, count_changes, &s, &now));
    assert_int_equal(s.dels, 1);
    free(vm);
    free(gone);
}

int
main(void)
{
    if (xmodel_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_get_destroy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_uuid_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_update_restores, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_rollback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_encode_follows_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reverse_links, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changes_since, setup, teardown),
        cmocka_unit_test_setup_teardown(test_survives_reopen, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
