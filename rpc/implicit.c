/* rpc/implicit.c - one implementation of the implicit messages for every class.
 *
 * Reads encode straight from the store under its read lock (no record copy):
 * get_record and get_all_records are the calls clients make most. Writes go
 * through db_update so a change commits, relinks reverse sets and produces its
 * event in one step. Rules from xenapi.md 2.1: add_to_<map> with a present key
 * is MAP_DUPLICATE_KEY [class, field, uuid, key]; remove_from_<map> of a
 * missing key and add_/remove_<set> of a present/absent value are no-ops; a
 * ref written into a field must name a live object of its class (or be
 * OpaqueRef:NULL).
 */
#include "rpc/implicit.h"

#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "rpc/task.h"
#include "rpc/where.h"
#include "xapi_errors.h"
#include "xapi_model.h"

#define NULL_REF "OpaqueRef:NULL"

#define MAX_CLASSES 64
static implicit_after_write_fn *after_write[MAX_CLASSES];

void
rpc_implicit_after_write(const struct xclass *cls, implicit_after_write_fn *fn)
{
    if (cls->id < MAX_CLASSES)
        after_write[cls->id] = fn;
}

static const char *
arg_text(const struct xval *v)
{
    return v && (v->kind == XVAL_STRING || v->kind == XVAL_DATETIME) ? v->str.s : "";
}

/* ------------------------------------------------------------------ listing */

struct lister {
    struct wire_writer *w;
    size_t remaining; /* objects after the first, for sizing the reply */
    bool reserved;
    const struct xclass *cls;
    const struct where_expr *where;
    const char *label;
    bool records;
};

static bool
list_one(void *opaque, const char *ref, const void *rec)
{
    struct lister *l = opaque;
    if (l->where && !where_match(l->where, rec))
        return true;
    if (l->label) {
        const struct xfield *f = &l->cls->fields[l->cls->name_label_field];
        if (strcmp(*(char *const *)xrecord_field_cptr(rec, f), l->label) != 0)
            return true;
    }
    if (l->records) {
        size_t before = l->w->out->len;
        wire_member(l->w, ref);
        xrecord_encode(l->cls, rec, l->w, false);
        if (l->remaining && !l->reserved) {
            /* One allocation for the whole reply, sized on the first record. */
            strbuf_reserve_more(l->w->out, (l->w->out->len - before) * l->remaining * 11 / 10);
            l->reserved = true;
        }
    } else {
        wire_string(l->w, ref);
    }
    return true;
}

static bool
list_objects(struct call_ctx *ctx, const struct xclass *cls, const char *where_text,
             const char *label, bool records, struct wire_writer *w, struct xerr **errp)
{
    struct where_expr *where = NULL;
    if (where_text && !(where = where_compile(cls, where_text, errp)))
        return false;
    size_t n = db_count(ctx->db, cls);
    struct lister l = {w, n > 1 && !where && !label ? n - 1 : 0, false, cls, where, label, records};
    if (records)
        wire_begin_struct(w);
    else
        wire_begin_array(w);
    db_foreach(ctx->db, cls, list_one, &l);
    if (records)
        wire_end_struct(w);
    else
        wire_end_array(w);
    where_free(where);
    return true;
}

/* ------------------------------------------------------------------ writes */

/* A ref value must name a live object of the ref's class (NULL is allowed). */
static bool
check_refs(struct call_ctx *ctx, const struct xtype *t, const void *p, struct xerr **errp)
{
    switch (t->kind) {
    case XT_REF: {
        const char *ref = *(char *const *)p;
        if (!t->cls || strcmp(ref, NULL_REF) == 0 || db_exists(ctx->db, t->cls, ref))
            return true;
        return xerr_raise(errp, "HANDLE_INVALID", t->ref_class, ref);
    }
    case XT_SET: {
        const struct xset *s = p;
        for (size_t i = 0; i < s->n; i++)
            if (!check_refs(ctx, t->elem, (const char *)s->items + i * t->elem->size, errp))
                return false;
        return true;
    }
    case XT_MAP: {
        const struct xmap *m = p;
        for (size_t i = 0; i < m->n; i++)
            if (!check_refs(ctx, t->key, (const char *)m->keys + i * t->key->size, errp) ||
                !check_refs(ctx, t->elem, (const char *)m->values + i * t->elem->size, errp))
                return false;
        return true;
    }
    default:
        return true;
    }
}

struct field_op {
    const struct xclass *cls;
    const struct xfield *f;
    enum xmsg_kind kind;
    union xvalue_storage key;   /* map key / set element */
    union xvalue_storage value; /* new value / map value */
    const char *key_text;
};

static bool field_op_write(struct field_op *op, void *rec, struct xerr **errp);

static bool
field_op_apply(void *opaque, void *rec, struct xerr **errp)
{
    struct field_op *op = opaque;
    if (!field_op_write(op, rec, errp))
        return false;
    implicit_after_write_fn *hook = op->cls->id < MAX_CLASSES ? after_write[op->cls->id] : NULL;
    return !hook || hook(rec, errp);
}

static bool
field_op_write(struct field_op *op, void *rec, struct xerr **errp)
{
    const struct xtype *t = op->f->type;
    void *slot = xrecord_field_ptr(rec, op->f);
    switch (op->kind) {
    case XM_SET_FIELD: {
        union xvalue_storage copy;
        if (xtype_value_copy(t, &copy, &op->value) < 0)
            return xerr_nomem(errp);
        xtype_value_clear(t, slot);
        memcpy(slot, &copy, t->size);
        return true;
    }
    case XM_MAP_ADD: {
        struct xmap *m = slot;
        if (xmap_find_str(t, m, op->key_text))
            return xerr_raise(errp, "MAP_DUPLICATE_KEY", op->cls->name, op->f->name,
                              xrecord_uuid(op->cls, rec), op->key_text);
        if (m->n >= XTYPE_MAX_MAP_KEYS) /* what a set_ of the whole map may hold */
            return xerr_raise(errp, "VALUE_NOT_SUPPORTED", op->f->name, op->key_text,
                              "a map holds at most " XTYPE_STR(XTYPE_MAX_MAP_KEYS) " keys");
        void *keys = realloc(m->keys, (m->n + 1) * t->key->size);
        if (keys)
            m->keys = keys;
        void *values = realloc(m->values, (m->n + 1) * t->elem->size);
        if (values)
            m->values = values;
        if (!keys || !values)
            return xerr_nomem(errp);
        if (xtype_value_copy(t->key, (char *)m->keys + m->n * t->key->size, &op->key) < 0)
            return xerr_nomem(errp);
        if (xtype_value_copy(t->elem, (char *)m->values + m->n * t->elem->size, &op->value) < 0) {
            xtype_value_clear(t->key, (char *)m->keys + m->n * t->key->size);
            return xerr_nomem(errp);
        }
        m->n++;
        return true;
    }
    case XM_MAP_REMOVE:
        xmap_remove_key(t, slot, op->key_text);
        return true;
    case XM_SET_ADD: {
        struct xset *s = slot;
        for (size_t i = 0; i < s->n; i++)
            if (xtype_value_equal(t->elem, (char *)s->items + i * t->elem->size, &op->key))
                return true;
        void *items = realloc(s->items, (s->n + 1) * t->elem->size);
        if (!items)
            return xerr_nomem(errp);
        s->items = items;
        if (xtype_value_copy(t->elem, (char *)s->items + s->n * t->elem->size, &op->key) < 0)
            return xerr_nomem(errp);
        s->n++;
        return true;
    }
    case XM_SET_REMOVE: {
        struct xset *s = slot;
        for (size_t i = 0; i < s->n; i++) {
            char *item = (char *)s->items + i * t->elem->size;
            if (!xtype_value_equal(t->elem, item, &op->key))
                continue;
            xtype_value_clear(t->elem, item);
            memmove(item, item + t->elem->size, (s->n - i - 1) * t->elem->size);
            s->n--;
            return true;
        }
        return true;
    }
    default:
        return xerr_internal(errp, "not a field write");
    }
}

static bool
field_write(struct call_ctx *ctx, const struct xmsg *m, struct xval *const *args,
            struct xerr **errp)
{
    const struct xfield *f = m->field;
    const struct xtype *t = f->type;
    struct field_op op = {.cls = m->cls, .f = f, .kind = m->kind};
    const char *self = arg_text(args[0]);
    bool ok = false, have_key = false, have_value = false;
    const struct xtype *key_t = t->kind == XT_MAP ? t->key : t->elem;
    switch (m->kind) {
    case XM_SET_FIELD:
        if (!xtype_arg_decode(t, args[1], &op.value, f->name, errp))
            return false;
        have_value = true;
        if (!check_refs(ctx, t, &op.value, errp))
            goto out;
        break;
    case XM_MAP_ADD:
        if (!xtype_arg_decode(key_t, args[1], &op.key, "key", errp))
            return false;
        have_key = true;
        if (!xtype_arg_decode(t->elem, args[2], &op.value, "value", errp))
            goto out;
        have_value = true;
        op.key_text = arg_text(args[1]);
        break;
    case XM_MAP_REMOVE:
        op.key_text = arg_text(args[1]);
        break;
    case XM_SET_ADD:
    case XM_SET_REMOVE:
        if (!xtype_arg_decode(key_t, args[1], &op.key, "value", errp))
            return false;
        have_key = true;
        if (m->kind == XM_SET_ADD && !check_refs(ctx, key_t, &op.key, errp))
            goto out;
        break;
    default:
        return xerr_internal(errp, "not a field write");
    }
    ok = db_update(ctx->db, m->cls, self, field_op_apply, &op, errp);
out:
    if (have_key)
        xtype_value_clear(key_t, &op.key);
    if (have_value)
        xtype_value_clear(m->kind == XM_SET_FIELD ? t : t->elem, &op.value);
    return ok;
}

static bool
create_object(struct call_ctx *ctx, const struct xmsg *m, const struct xval *arg,
              struct wire_writer *w, struct xerr **errp)
{
    const struct xclass *cls = m->cls;
    void *rec = NULL;
    if (!xtype_ctor_decode(m->params[0].type, arg, &rec, "args", errp))
        return false;
    for (size_t i = 0; i < cls->n_fields; i++) {
        const struct xfield *f = &cls->fields[i];
        if (f->qual != XQ_DRO && !check_refs(ctx, f->type, xrecord_field_cptr(rec, f), errp)) {
            xrecord_free(cls, rec);
            return false;
        }
    }
    char *ref = NULL;
    if (!db_create(ctx->db, cls, NULL, rec, &ref, errp))
        return false;
    wire_string(w, ref);
    free(ref);
    return true;
}

/* ------------------------------------------------------------------ entry */

/* A session's ref is its bearer token: an account other than the local
 * superuser reads only the session it holds. Another session is answered as
 * if it did not exist, so its existence leaks nothing either. */
static bool
session_visible(const struct call_ctx *ctx, const struct xclass *cls, const char *ref)
{
    return cls != &xapi_class_session || ctx->superuser || strcmp(ref, ctx->session) == 0;
}

bool
rpc_implicit_call(struct call_ctx *ctx, const struct xmsg *m, struct xval *const *args,
                  struct wire_writer *out, struct xerr **errp)
{
    const struct xclass *cls = m->cls;
    switch (m->kind) {
    case XM_GET_RECORD:
        if (!session_visible(ctx, cls, arg_text(args[0])))
            return xerr_handle_invalid(errp, cls->name, arg_text(args[0]));
        return db_encode(ctx->db, cls, arg_text(args[0]), out, errp);
    case XM_GET_FIELD:
        if (!session_visible(ctx, cls, arg_text(args[0])))
            return xerr_handle_invalid(errp, cls->name, arg_text(args[0]));
        return db_encode_field(ctx->db, cls, arg_text(args[0]), m->field, out, errp);
    case XM_GET_BY_UUID: {
        char *ref = NULL;
        if (!db_ref_by_uuid(ctx->db, cls, arg_text(args[0]), &ref, errp))
            return false;
        if (!session_visible(ctx, cls, ref)) {
            free(ref);
            return xerr_uuid_invalid(errp, cls->name, arg_text(args[0]));
        }
        wire_string(out, ref);
        free(ref);
        return true;
    }
    case XM_GET_BY_NAME_LABEL:
        return list_objects(ctx, cls, NULL, arg_text(args[0]), false, out, errp);
    case XM_GET_ALL:
        return list_objects(ctx, cls, NULL, NULL, false, out, errp);
    case XM_GET_ALL_RECORDS:
        return list_objects(ctx, cls, NULL, NULL, true, out, errp);
    case XM_GET_ALL_WHERE:
        return list_objects(ctx, cls, arg_text(args[0]), NULL, false, out, errp);
    case XM_GET_ALL_RECORDS_WHERE:
        return list_objects(ctx, cls, arg_text(args[0]), NULL, true, out, errp);
    case XM_SET_FIELD:
    case XM_MAP_ADD:
    case XM_MAP_REMOVE:
    case XM_SET_ADD:
    case XM_SET_REMOVE:
        /* A task's other_config is its owner's (xapi's assert_can_modify_other_config). */
        if (cls == &xapi_class_task && !task_assert_owner(ctx->srv, arg_text(args[0]), ctx->user,
                                                          ctx->superuser, ctx->role, errp))
            return false;
        if (!field_write(ctx, m, args, errp))
            return false;
        wire_string(out, "");
        return true;
    case XM_CREATE:
        return create_object(ctx, m, args[0], out, errp);
    case XM_DESTROY:
        if (!db_destroy(ctx->db, cls, arg_text(args[0]), errp))
            return false;
        wire_string(out, "");
        return true;
    default:
        return xerr_internal(errp, "%s is not an implicit message", m->wire_name);
    }
}
