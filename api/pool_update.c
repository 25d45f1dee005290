/* api/pool_update.c - pool_update.* (xapi's ocaml/xapi/xapi_pool_update.ml).
 *
 * xapi installs a hotfix from an ISO image in a VDI: it attaches the VDI,
 * mounts it and reads update.xml. vesseld is updated by its operating
 * system's packages, never from a VDI: a VDI holds a VHD disk here, so
 * introduce finds no update document and answers as xapi does for an ISO
 * without one (INVALID_UPDATE). No pool_update record can therefore be
 * made by this host; the messages on a record (one restored from another
 * store) keep xapi's checks: an update applied on a host cannot be
 * destroyed, and applying fails (UPDATE_APPLY_FAILED).
 */
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "rpc/ctx.h"
#include "xapi_errors.h"
#include "xapi_handlers.h"

bool
api_pool_update_introduce(struct call_ctx *ctx, const char *vdi, char **result,
                          struct xerr **errp)
{
    struct xapi_vdi_record *v = NULL;
    if (!db_get(ctx->db, &xapi_class_vdi, vdi, (void **)&v, errp))
        return false;
    enum xapi_vdi_type type = v->type;
    xapi_vdi_record_free(v);
    if (type == XAPI_VDI_TYPE_CBT_METADATA)
        return xerr_vdi_incompatible_type(errp, vdi, "cbt_metadata");
    return xerr_invalid_update(errp, "missing update document (update.xml) in the package.");
}

static bool
update_get(struct call_ctx *ctx, const char *self, struct xapi_pool_update_record **out,
           struct xerr **errp)
{
    return db_get(ctx->db, &xapi_class_pool_update, self, (void **)out, errp);
}

bool
api_pool_update_destroy(struct call_ctx *ctx, const char *self, struct xerr **errp)
{
    struct xapi_pool_update_record *u = NULL;
    if (!update_get(ctx, self, &u, errp))
        return false;
    bool applied = u->hosts.n > 0;
    xapi_pool_update_record_free(u);
    if (applied)
        return xerr_update_is_applied(errp);
    return db_destroy(ctx->db, &xapi_class_pool_update, self, errp);
}

static bool
clear_vdi(void *opaque, void *rec, struct xerr **errp)
{
    (void)opaque;
    return xstr_set(&((struct xapi_pool_update_record *)rec)->vdi, "OpaqueRef:NULL") ||
           xerr_nomem(errp);
}

/* The update's VDI is destroyed and forgotten by the record. */
bool
api_pool_update_pool_clean(struct call_ctx *ctx, const char *self, struct xerr **errp)
{
    struct xapi_pool_update_record *u = NULL;
    if (!update_get(ctx, self, &u, errp))
        return false;
    bool ok = true;
    if (db_exists(ctx->db, &xapi_class_vdi, u->vdi))
        ok = api_vdi_destroy(ctx, u->vdi, errp);
    xapi_pool_update_record_free(u);
    return ok && db_update(ctx->db, &xapi_class_pool_update, self, clear_vdi, NULL, errp);
}

static bool
applied_on(const struct xapi_pool_update_record *u, const char *host)
{
    return xset_contains_str((const struct xset *)&u->hosts, host);
}

bool
api_pool_update_precheck(struct call_ctx *ctx, const char *self, const char *host,
                         enum xapi_livepatch_status *result, struct xerr **errp)
{
    struct xapi_pool_update_record *u = NULL;
    if (!update_get(ctx, self, &u, errp))
        return false;
    bool ok;
    if (!db_exists(ctx->db, &xapi_class_host, host))
        ok = xerr_handle_invalid(errp, "host", host);
    else if (applied_on(u, host))
        ok = xerr_update_already_applied(errp, self);
    else
        ok = xerr_update_precheck_failed_unknown_error(
            errp, self, "this host is updated by its operating system's packages");
    xapi_pool_update_record_free(u);
    return ok;
}

bool
api_pool_update_apply(struct call_ctx *ctx, const char *self, const char *host,
                      struct xerr **errp)
{
    enum xapi_livepatch_status st;
    if (!api_pool_update_precheck(ctx, self, host, &st, errp))
        return false;
    return xerr_update_apply_failed(errp, "no update can be applied from a VDI");
}

bool
api_pool_update_pool_apply(struct call_ctx *ctx, const char *self, struct xerr **errp)
{
    return api_pool_update_apply(ctx, self, ctx->srv->host_ref, errp);
}
