/* api/host_membership.c - host.disable, host.enable and host.destroy
 * (xapi's ocaml/xapi/xapi_host.ml).
 *
 * disable/enable flip host.enabled (a disabled host gets no new VMs; what
 * runs there stays). xapi's refusals that need HA or a pending reboot do not
 * arise here. host.destroy removes the record of a host that is gone: never
 * this host nor a live one (HOST_IS_LIVE [host]), never one with VMs
 * resident (HOST_HAS_RESIDENT_VMS [host]); with it go its control domain,
 * metrics, CPUs, PIFs and PBDs (xapi leaves these to its database GC).
 */
#include <stdlib.h>
#include <string.h>

#include "api/placement.h"
#include "api/pool_objects.h"
#include "rpc/ctx.h"
#include "common/log.h"
#include "db/db.h"
#include "xapi_handlers.h"
#include "xapi_model.h"

static bool
set_enabled(void *opaque, void *rec, struct xerr **errp)
{
    (void)errp;
    ((struct xapi_host_record *)rec)->enabled = *(const bool *)opaque;
    return true;
}

static bool
host_set_enabled(struct call_ctx *ctx, const char *host, bool on, struct xerr **errp)
{
    if (!db_exists(ctx->db, &xapi_class_host, host))
        return xerr_handle_invalid(errp, "host", host);
    if (!db_update(ctx->db, &xapi_class_host, host, set_enabled, &on, errp))
        return false;
    log_info(on ? "host.enable" : "host.disable", "host=%s", host);
    return true;
}

bool
api_host_disable(struct call_ctx *ctx, const char *host, struct xerr **errp)
{
    return host_set_enabled(ctx, host, false, errp);
}

/* xapi's assert_safe_to_reenable refuses only under HA (unplugged PBDs) or
 * after host.disable's auto_enable=false, neither of which exists here. */
bool
api_host_enable(struct call_ctx *ctx, const char *host, struct xerr **errp)
{
    return host_set_enabled(ctx, host, true, errp);
}

struct residents {
    const char *host;
    struct refs dom0s;
    bool other, nomem;
};

static bool
resident_vm(void *opaque, const char *ref, const void *rec)
{
    struct residents *r = opaque;
    const struct xapi_vm_record *vm = rec;
    if (!vm->resident_on || strcmp(vm->resident_on, r->host) != 0)
        return true;
    if (vm->is_control_domain)
        r->nomem |= !refs_add(&r->dom0s, ref);
    else
        r->other = true;
    return true;
}

bool
api_host_destroy(struct call_ctx *ctx, const char *self, struct xerr **errp)
{
    if (!db_exists(ctx->db, &xapi_class_host, self))
        return xerr_handle_invalid(errp, "host", self);
    if (strcmp(self, ctx->srv->host_ref) == 0 || placement_host_live(ctx->db, self))
        return xerr_host_is_live(errp, self);
    bool ha = false;
    if (db_get_field(ctx->db, &xapi_class_pool, ctx->srv->pool_ref,
                     xclass_field(&xapi_class_pool, "ha_enabled"), &ha, NULL) && ha)
        return xerr_ha_is_enabled(errp);
    struct residents r = {self, {0}, false, false};
    db_foreach(ctx->db, &xapi_class_vm, resident_vm, &r);
    if (r.nomem) {
        refs_free(&r.dom0s);
        return xerr_nomem(errp);
    }
    if (r.other) {
        refs_free(&r.dom0s);
        return xerr_host_has_resident_vms(errp, self);
    }
    /* what goes with the record: its metrics, CPUs, PIFs, PBDs and control
     * domains; its SRs, their VDIs and its halted VMs stay the pool's */
    struct owned o;
    if (!pool_objects_find(ctx->db, ctx->db, self, true, &o, errp)) {
        refs_free(&r.dom0s);
        return false;
    }
    struct refs *keep[] = {&o.srs, &o.vdis, &o.vms, &o.vbds, &o.vifs, &o.guest_metrics,
                           &o.vm_metrics};
    for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
        refs_free(keep[i]);
    o.vms = r.dom0s;
    db_batch_begin(ctx->db);
    bool ok = db_batch_end(ctx->db, pool_objects_delete(ctx->db, &o, errp), errp);
    pool_objects_free(&o);
    if (ok)
        log_info("host.destroy", "host=%s", self);
    return ok;
}
