/* api/data_sources.c - host.* and VM.* data source messages over the rrds
 * (api/rrd_store.h), with xapi's semantics (ocaml/xapi/xapi_host.ml and
 * xapi_vm.ml call xcp-rrdd's rrdd_server.ml):
 *  - get_data_sources: every source the last sample produced (enabled when
 *    recorded, standard when recorded by default) and every source only the
 *    archives hold (disabled, "description not available", units
 *    "unknown"), sorted by name; value is always 0 (xapi's
 *    Rrdd_helper.to_API_data_source). A VM with no rrd has none.
 *  - query_data_source: the newest 5 s average of a recorded source.
 *  - record_data_source: starts recording a source the last sample produced
 *    (its past is unknown); recording one already recorded changes nothing.
 *  - forget_data_source_archives: drops a recorded source and its history
 *    (an unknown name is no error; a standard source comes back, empty).
 * A VM's rrd counts only while the VM runs (xcp-rrdd keeps the rrds of the
 * VMs resident on its host). xcp-rrdd's Datasource_missing and
 * Rrd.Invalid_data_source reach xapi's clients as INTERNAL_ERROR with the
 * exception's text, and so they do here.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/rrd_store.h"
#include "db/db.h"
#include "rpc/ctx.h"
#include "xapi_errors.h"
#include "xapi_handlers.h"

static bool
missing(struct xerr **errp, const char *what)
{
    char msg[160];
    snprintf(msg, sizeof(msg), "Rrd_interface.Rrdd_error(Datasource_missing(\"%.100s\"))", what);
    return xerr_internal_error(errp, msg);
}

static bool
invalid(struct xerr **errp, const char *name)
{
    char msg[200];
    snprintf(msg, sizeof(msg),
             "Rrd_interface.Rrdd_error(Rrdd_internal_error(\"Rrd.Invalid_data_source(\\\"%.100s\\\")\"))",
             name);
    return xerr_internal_error(errp, msg);
}

/* The VM's uuid into @uuid, and whether its rrd counts (running or paused). */
static bool
vm_of(struct call_ctx *ctx, const char *self, char *uuid, size_t len, bool *live,
      struct xerr **errp)
{
    struct xapi_vm_record *vm = NULL;
    if (!db_get(ctx->db, &xapi_class_vm, self, (void **)&vm, NULL))
        return xerr_handle_invalid(errp, "VM", self);
    snprintf(uuid, len, "%s", vm->uuid);
    *live = vm->power_state == XAPI_VM_POWER_STATE_RUNNING ||
            vm->power_state == XAPI_VM_POWER_STATE_PAUSED;
    xapi_vm_record_free(vm);
    return true;
}

static bool
list(struct call_ctx *ctx, const char *vm_uuid, struct xapi_data_source_record_set *result,
     struct xerr **errp)
{
    struct rrd_ds_info *ds = NULL;
    size_t n = 0;
    if (ctx->srv->rrd && rrd_store_data_sources(ctx->srv->rrd, vm_uuid, &ds, &n) < 0)
        return xerr_nomem(errp);
    result->items = calloc(n ? n : 1, sizeof(*result->items));
    if (!result->items) {
        free(ds);
        return xerr_nomem(errp);
    }
    for (size_t i = 0; i < n; i++) {
        struct xapi_data_source_record *r = xapi_data_source_record_new();
        if (!r)
            break;
        result->items[result->n++] = r;
        free(r->name_label);
        free(r->name_description);
        free(r->units);
        r->name_label = strdup(ds[i].name);
        r->name_description = strdup(ds[i].description);
        r->units = strdup(ds[i].units);
        r->enabled = ds[i].enabled;
        r->standard = ds[i].standard;
        r->min = ds[i].min;
        r->max = ds[i].max;
        if (!r->name_label || !r->name_description || !r->units)
            break;
    }
    bool ok = result->n == n && (!n || result->items[n - 1]->units);
    free(ds);
    return ok ? true : xerr_nomem(errp); /* the wrapper clears what was made */
}

static bool
query(struct call_ctx *ctx, const char *vm_uuid, const char *name, double *result,
      struct xerr **errp)
{
    int rc = ctx->srv->rrd ? rrd_store_query(ctx->srv->rrd, vm_uuid, name, result) : -ENOENT;
    if (rc == -ESRCH)
        return invalid(errp, name);
    if (rc < 0) {
        char what[64];
        snprintf(what, sizeof(what), "VM: %s", vm_uuid ? vm_uuid : "");
        return missing(errp, vm_uuid ? what : "No host datasource!");
    }
    return true;
}

static bool
record(struct call_ctx *ctx, const char *vm_uuid, const char *name, struct xerr **errp)
{
    int rc = ctx->srv->rrd ? rrd_store_record(ctx->srv->rrd, vm_uuid, name) : -ENOENT;
    if (rc == -ESRCH)
        return missing(errp, name);
    if (rc == -ENOENT && vm_uuid) {
        char what[64];
        snprintf(what, sizeof(what), "VM: %s", vm_uuid);
        return missing(errp, what);
    }
    if (rc == -ENOENT)
        return true; /* xcp-rrdd: no host rrd yet, nothing to do */
    return rc < 0 ? xerr_nomem(errp) : true;
}

bool
api_host_get_data_sources(struct call_ctx *ctx, const char *host,
                          struct xapi_data_source_record_set *result, struct xerr **errp)
{
    if (!db_exists(ctx->db, &xapi_class_host, host))
        return xerr_handle_invalid(errp, "host", host);
    return list(ctx, NULL, result, errp);
}

bool
api_host_query_data_source(struct call_ctx *ctx, const char *host, const char *data_source,
                           double *result, struct xerr **errp)
{
    if (!db_exists(ctx->db, &xapi_class_host, host))
        return xerr_handle_invalid(errp, "host", host);
    return query(ctx, NULL, data_source, result, errp);
}

bool
api_host_record_data_source(struct call_ctx *ctx, const char *host, const char *data_source,
                            struct xerr **errp)
{
    if (!db_exists(ctx->db, &xapi_class_host, host))
        return xerr_handle_invalid(errp, "host", host);
    return record(ctx, NULL, data_source, errp);
}

bool
api_host_forget_data_source_archives(struct call_ctx *ctx, const char *host,
                                     const char *data_source, struct xerr **errp)
{
    if (!db_exists(ctx->db, &xapi_class_host, host))
        return xerr_handle_invalid(errp, "host", host);
    if (ctx->srv->rrd)
        rrd_store_forget(ctx->srv->rrd, NULL, data_source);
    return true;
}

bool
api_vm_get_data_sources(struct call_ctx *ctx, const char *self,
                        struct xapi_data_source_record_set *result, struct xerr **errp)
{
    char uuid[40];
    bool live;
    if (!vm_of(ctx, self, uuid, sizeof(uuid), &live, errp))
        return false;
    if (!live)
        return true;
    return list(ctx, uuid, result, errp);
}

bool
api_vm_query_data_source(struct call_ctx *ctx, const char *self, const char *data_source,
                         double *result, struct xerr **errp)
{
    char uuid[40];
    bool live;
    if (!vm_of(ctx, self, uuid, sizeof(uuid), &live, errp))
        return false;
    if (!live) {
        char what[64];
        snprintf(what, sizeof(what), "VM: %s", uuid);
        return missing(errp, what);
    }
    return query(ctx, uuid, data_source, result, errp);
}

bool
api_vm_record_data_source(struct call_ctx *ctx, const char *self, const char *data_source,
                          struct xerr **errp)
{
    char uuid[40];
    bool live;
    if (!vm_of(ctx, self, uuid, sizeof(uuid), &live, errp))
        return false;
    if (!live) {
        char what[64];
        snprintf(what, sizeof(what), "VM: %s", uuid);
        return missing(errp, what);
    }
    return record(ctx, uuid, data_source, errp);
}

bool
api_vm_forget_data_source_archives(struct call_ctx *ctx, const char *self,
                                   const char *data_source, struct xerr **errp)
{
    char uuid[40];
    bool live;
    if (!vm_of(ctx, self, uuid, sizeof(uuid), &live, errp))
        return false;
    if (live && ctx->srv->rrd)
        rrd_store_forget(ctx->srv->rrd, uuid, data_source);
    return true;
}

/* ---- SRs: xcp-rrdd keeps rrds for SRs whose driver reports statistics
 * (xapi_sr.ml calls Rrdd.query_possible_sr_dss ...); the file SR reports
 * none, so an SR has no data sources: an empty list, and xcp-rrdd's
 * Datasource_missing for a query or a record. ---- */

static bool
sr_uuid(struct call_ctx *ctx, const char *sr, char *uuid, size_t len, struct xerr **errp)
{
    struct xapi_sr_record *rec = NULL;
    if (!db_get(ctx->db, &xapi_class_sr, sr, (void **)&rec, NULL))
        return xerr_handle_invalid(errp, "SR", sr);
    snprintf(uuid, len, "%s", rec->uuid);
    xapi_sr_record_free(rec);
    return true;
}

bool
api_sr_get_data_sources(struct call_ctx *ctx, const char *sr,
                        struct xapi_data_source_record_set *result, struct xerr **errp)
{
    char uuid[40];
    (void)result;
    return sr_uuid(ctx, sr, uuid, sizeof(uuid), errp);
}

static bool
sr_missing(struct call_ctx *ctx, const char *sr, struct xerr **errp)
{
    char uuid[40], what[64];
    if (!sr_uuid(ctx, sr, uuid, sizeof(uuid), errp))
        return false;
    snprintf(what, sizeof(what), "SR: %s", uuid);
    return missing(errp, what);
}

bool
api_sr_query_data_source(struct call_ctx *ctx, const char *sr, const char *data_source,
                         double *result, struct xerr **errp)
{
    (void)data_source;
    (void)result;
    return sr_missing(ctx, sr, errp);
}

bool
api_sr_record_data_source(struct call_ctx *ctx, const char *sr, const char *data_source,
                          struct xerr **errp)
{
    (void)data_source;
    return sr_missing(ctx, sr, errp);
}

bool
api_sr_forget_data_source_archives(struct call_ctx *ctx, const char *sr, const char *data_source,
                                   struct xerr **errp)
{
    char uuid[40];
    (void)data_source;
    return sr_uuid(ctx, sr, uuid, sizeof(uuid), errp); /* nothing kept: nothing to forget */
}
