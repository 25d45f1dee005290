/* api/pbd.c - PBD.plug / PBD.unplug / PBD.destroy: a host's attachment to an SR.
 *
 * Plugging checks the SR's driver (SR_UNKNOWN_DRIVER [type]) and that its
 * directory, device_config:path, is there and writable (SR_BACKEND_FAILURE
 * otherwise); plugging a plugged PBD or unplugging an unplugged one does
 * nothing, as in xapi. Unplugging refuses while a VBD of one of the SR's VDIs
 * is attached to a VM of the PBD's host (VDI_IN_USE [vdi, "unplug"]); destroying a plugged PBD is
 * OPERATION_NOT_ALLOWED. The SR's allowed_operations and sizes follow.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/storage_api.h"
#include "db/db.h"
#include "rpc/ctx.h"
#include "storage/sr_file.h"
#include "xapi_handlers.h"

static bool
set_attached(void *opaque, void *rec, struct xerr **errp)
{
    struct xapi_pbd_record *p = rec;
    p->currently_attached = *(const bool *)opaque;
    return true;
}

bool
api_pbd_plug(struct call_ctx *ctx, const char *self, struct xerr **errp)
{
    struct xapi_pbd_record *p = NULL;
    struct xapi_sr_record *s = NULL;
    if (!db_get(ctx->db, &xapi_class_pbd, self, (void **)&p, errp))
        return false;
    if (!db_get(ctx->db, &xapi_class_sr, p->SR, (void **)&s, errp)) {
        xapi_pbd_record_free(p);
        return false;
    }
    bool ok;
    const char *path = xmap_get_str((const struct xmap *)&p->device_config, "path");
    if (strcmp(s->type, "ext") != 0 && strcmp(s->type, "file") != 0) {
        ok = xerr_sr_unknown_driver(errp, s->type);
    } else if (p->currently_attached) {
        ok = true;
    } else if (!path || !path[0]) {
        ok = xerr_invalid_value(errp, "device_config:path", "");
    } else {
        int rc = sr_file_attach(path, false);
        bool on = true;
        ok = rc == 0 ? db_update(ctx->db, &xapi_class_pbd, self, set_attached, &on, errp)
                     : storage_fail(errp, rc, p->SR, NULL);
        ok = ok && storage_sr_plugged(ctx, p->SR, path, errp);
    }
    xapi_pbd_record_free(p);
    xapi_sr_record_free(s);
    return ok;
}

struct in_use {
    char **vdis; /* VDIs behind attached VBDs */
    char **vms;  /* and their VMs */
    size_t n;
    bool nomem;
};

static bool
in_use_one(void *opaque, const char *ref, const void *rec)
{
    struct in_use *u = opaque;
    const struct xapi_vbd_record *b = rec;
    (void)ref;
    if (!b->currently_attached || b->empty)
        return true;
    char **v = realloc(u->vdis, (u->n + 1) * sizeof(*v));
    if (v)
        u->vdis = v;
    char **m = realloc(u->vms, (u->n + 1) * sizeof(*m));
    if (m)
        u->vms = m;
    if (!v || !m || !(v[u->n] = strdup(b->VDI))) {
        u->nomem = true;
        return false;
    }
    if (!(m[u->n] = strdup(b->VM))) {
        free(v[u->n]);
        u->nomem = true;
        return false;
    }
    u->n++;
    return true;
}

struct sr_of {
    const char *sr;
    bool match;
};

static void
sr_of_peek(void *opaque, const void *rec)
{
    struct sr_of *o = opaque;
    o->match = strcmp(((const struct xapi_vdi_record *)rec)->SR, o->sr) == 0;
}

static void
resident_peek(void *opaque, const void *rec)
{
    xstr_set(opaque, ((const struct xapi_vm_record *)rec)->resident_on);
}

/* VDI_IN_USE [vdi, "unplug"] when a VM of @host has a VDI of @sr attached
 * (xapi_pbd.ml get_active_vdis_by_pbd: another host's guests on a shared SR
 * do not use this host's PBD). */
static bool
sr_assert_idle(struct db *db, const char *sr, const char *host, struct xerr **errp)
{
    /* Attached VBDs are few (running VMs' disks): list them, then look at each VDI. */
    struct in_use u = {NULL, NULL, 0, false};
    db_foreach(db, &xapi_class_vbd, in_use_one, &u);
    bool ok = !u.nomem || xerr_nomem(errp);
    for (size_t i = 0; i < u.n; i++) {
        struct sr_of o = {sr, false};
        char *resident = NULL;
        db_with(db, &xapi_class_vdi, u.vdis[i], sr_of_peek, &o, NULL);
        db_with(db, &xapi_class_vm, u.vms[i], resident_peek, &resident, NULL);
        if (ok && o.match && resident && strcmp(resident, host) == 0)
            ok = xerr_vdi_in_use(errp, u.vdis[i], "unplug");
        free(resident);
        free(u.vdis[i]);
        free(u.vms[i]);
    }
    free(u.vdis);
    free(u.vms);
    return ok;
}

bool
api_pbd_unplug(struct call_ctx *ctx, const char *self, struct xerr **errp)
{
    struct xapi_pbd_record *p = NULL;
    if (!db_get(ctx->db, &xapi_class_pbd, self, (void **)&p, errp))
        return false;
    bool off = false;
    bool ok = !p->currently_attached ||
              (sr_assert_idle(ctx->db, p->SR, p->host, errp) &&
               db_update(ctx->db, &xapi_class_pbd, self, set_attached, &off, errp) &&
               storage_sr_plugged(ctx, p->SR, NULL, errp));
    xapi_pbd_record_free(p);
    return ok;
}

static void
attached_peek(void *opaque, const void *rec)
{
    *(bool *)opaque = ((const struct xapi_pbd_record *)rec)->currently_attached;
}

bool
api_pbd_destroy(struct call_ctx *ctx, const char *self, struct xerr **errp)
{
    bool attached = false;
    if (!db_with(ctx->db, &xapi_class_pbd, self, attached_peek, &attached, errp))
        return false;
    if (attached)
        return xerr_operation_not_allowed(errp, "PBD is currently attached");
    return db_destroy(ctx->db, &xapi_class_pbd, self, errp);
}
