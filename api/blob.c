/* api/blob.c - blob.create, blob.destroy and <class>.create_new_blob.
 *
 * A blob is a named binary object a client attaches to a VM, host, SR,
 * network or the pool (xapi's ocaml/xapi/xapi_blob.ml): XenCenter keeps
 * its saved searches and VM "notes" this way. The record holds the MIME
 * type, whether it is public, its size and time of last update; the bytes
 * are written and read over HTTP at /blob?ref=... (xapi's put_blob/get_blob
 * actions). create_new_blob makes the blob and names it in the object's
 * `blobs` map in one batch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db/db.h"
#include "rpc/ctx.h"
#include "xapi_errors.h"
#include "xapi_handlers.h"

bool
api_blob_create(struct call_ctx *ctx, const char *mime_type, bool public, char **result,
                struct xerr **errp)
{
    struct xapi_blob_record *b = xapi_blob_record_new();
    if (!b || !xstr_set(&b->mime_type, mime_type)) {
        xapi_blob_record_free(b);
        return xerr_nomem(errp);
    }
    b->public = public;
    b->last_updated = time(NULL);
    return db_create(ctx->db, &xapi_class_blob, NULL, b, result, errp);
}

bool
api_blob_destroy(struct call_ctx *ctx, const char *self, struct xerr **errp)
{
    struct xapi_blob_record *b = NULL;
    if (!db_get(ctx->db, &xapi_class_blob, self, (void **)&b, errp))
        return false;
    char path[4200];
    snprintf(path, sizeof(path), "%s/blobs/%s", ctx->srv->data_dir, b->uuid);
    xapi_blob_record_free(b);
    if (!db_destroy(ctx->db, &xapi_class_blob, self, errp))
        return false;
    unlink(path); /* absent when nothing was ever written */
    return true;
}

struct blob_name {
    const struct xclass *cls;
    const char *name;
    const char *blob;
};

static bool
name_blob(void *opaque, void *rec, struct xerr **errp)
{
    const struct blob_name *n = opaque;
    struct xmap *blobs = xrecord_field_ptr(rec, xclass_field(n->cls, "blobs"));
    return xmap_put_str(blobs, n->name, n->blob) == 0 || xerr_nomem(errp);
}

/* A new blob named @name in the `blobs` map of @ref (of @cls). */
static bool
create_new_blob(struct call_ctx *ctx, const struct xclass *cls, const char *ref,
                const char *name, const char *mime_type, bool public, char **result,
                struct xerr **errp)
{
    if (!db_exists(ctx->db, cls, ref))
        return xerr_handle_invalid(errp, cls->name, ref);
    db_batch_begin(ctx->db);
    char *blob = NULL;
    bool ok = api_blob_create(ctx, mime_type, public, &blob, errp);
    struct blob_name n = {cls, name, blob};
    ok = ok && db_update(ctx->db, cls, ref, name_blob, &n, errp);
    if (!db_batch_end(ctx->db, ok, errp)) {
        free(blob);
        return false;
    }
    *result = blob;
    return true;
}

bool
api_host_create_new_blob(struct call_ctx *ctx, const char *host, const char *name,
                         const char *mime_type, bool public, char **result, struct xerr **errp)
{
    return create_new_blob(ctx, &xapi_class_host, host, name, mime_type, public, result, errp);
}

bool
api_vm_create_new_blob(struct call_ctx *ctx, const char *vm, const char *name,
                       const char *mime_type, bool public, char **result, struct xerr **errp)
{
    return create_new_blob(ctx, &xapi_class_vm, vm, name, mime_type, public, result, errp);
}

bool
api_sr_create_new_blob(struct call_ctx *ctx, const char *sr, const char *name,
                       const char *mime_type, bool public, char **result, struct xerr **errp)
{
    return create_new_blob(ctx, &xapi_class_sr, sr, name, mime_type, public, result, errp);
}

bool
api_network_create_new_blob(struct call_ctx *ctx, const char *network, const char *name,
                            const char *mime_type, bool public, char **result,
                            struct xerr **errp)
{
    return create_new_blob(ctx, &xapi_class_network, network, name, mime_type, public, result,
                           errp);
}
