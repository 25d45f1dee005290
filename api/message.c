/* api/message.c - message.* (alerts): create, destroy, get_since, get.
 * Messages are ordinary stored objects here; xapi keeps them apart from its
 * database, which is why the model declares their listing by hand.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db/db.h"
#include "rpc/ctx.h"
#include "xapi_handlers.h"

bool
api_message_create(struct call_ctx *ctx, const char *name, int64_t priority, enum xapi_cls cls,
                   const char *obj_uuid, const char *body, char **result, struct xerr **errp)
{
    struct xapi_message_record *m = xapi_message_record_new();
    if (!m)
        return xerr_nomem(errp);
    char *n = strdup(name), *o = strdup(obj_uuid), *b = strdup(body);
    if (!n || !o || !b) {
        free(n);
        free(o);
        free(b);
        xapi_message_record_free(m);
        return xerr_nomem(errp);
    }
    free(m->name);
    m->name = n;
    free(m->obj_uuid);
    m->obj_uuid = o;
    free(m->body);
    m->body = b;
    m->priority = priority;
    m->cls = cls;
    m->timestamp = time(NULL);
    return db_create(ctx->db, &xapi_class_message, NULL, m, result, errp);
}

bool
api_message_destroy(struct call_ctx *ctx, const char *self, struct xerr **errp)
{
    return db_destroy(ctx->db, &xapi_class_message, self, errp);
}

struct since_filter {
    int64_t since;
    bool by_object;
    enum xapi_cls cls;
    const char *obj_uuid;
    struct xapi_ref_message_record_map *out;
    bool oom;
};

static bool
collect_message(void *opaque, const char *ref, const void *rec)
{
    struct since_filter *f = opaque;
    const struct xapi_message_record *m = rec;
    if (m->timestamp <= f->since)
        return true;
    if (f->by_object && (m->cls != f->cls || strcmp(m->obj_uuid, f->obj_uuid) != 0))
        return true;
    struct xapi_ref_message_record_map *out = f->out;
    char **keys = realloc(out->keys, (out->n + 1) * sizeof(char *));
    if (keys)
        out->keys = keys;
    struct xapi_message_record **values = realloc(out->values, (out->n + 1) * sizeof(*values));
    if (values)
        out->values = values;
    char *k = strdup(ref);
    struct xapi_message_record *v = xapi_message_record_copy(m);
    if (!keys || !values || !k || !v) {
        free(k);
        xapi_message_record_free(v);
        f->oom = true;
        return false;
    }
    out->keys[out->n] = k;
    out->values[out->n++] = v;
    return true;
}

bool
api_message_get_since(struct call_ctx *ctx, int64_t since,
                      struct xapi_ref_message_record_map *result, struct xerr **errp)
{
    struct since_filter f = {.since = since, .out = result};
    db_foreach(ctx->db, &xapi_class_message, collect_message, &f);
    return f.oom ? xerr_nomem(errp) : true;
}

bool
api_message_get(struct call_ctx *ctx, enum xapi_cls cls, const char *obj_uuid, int64_t since,
                struct xapi_ref_message_record_map *result, struct xerr **errp)
{
    struct since_filter f = {since, true, cls, obj_uuid, result, false};
    db_foreach(ctx->db, &xapi_class_message, collect_message, &f);
    return f.oom ? xerr_nomem(errp) : true;
}

/* xapi_message.ml: each destroyed in turn; here all or none (one batch), so
 * an unknown ref in the list (HANDLE_INVALID) leaves every message. */
bool
api_message_destroy_many(struct call_ctx *ctx, const struct xapi_ref_set *messages,
                         struct xerr **errp)
{
    db_batch_begin(ctx->db);
    bool ok = true;
    for (size_t i = 0; ok && i < messages->n; i++)
        ok = db_destroy(ctx->db, &xapi_class_message, messages->items[i], errp);
    return db_batch_end(ctx->db, ok, errp);
}
