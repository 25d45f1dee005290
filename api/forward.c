/* api/forward.c - which host runs a message that acts on one host's things
 * (datamodel "forward", datamodel/README.md; xapi's message_forwarding.ml).
 *
 * Each resolver gets the ref the message names and answers the host that
 * owns what it acts on, or NULL for "this host": also when the ref names
 * nothing (the local handler then answers HANDLE_INVALID, as it would
 * without a pool). rpc/dispatch.c forwards the call when the answer is
 * another host.
 *   vm:        the resident host of a running or paused VM (forward_vm_op);
 *              a halted or suspended VM's operations run where called
 *   vm_srs:    as vm, but a VM that is not running goes to the host of the
 *              first of its disks on a non-shared SR, if any, else where a
 *              disk's shared SR is plugged (as SR): its disk operations
 *              (snapshot, clone, copy, export) need the disks
 *              (forward_to_access_srs)
 *   placement: VM.start: a host the VM can boot on (api/placement.h)
 *   host:      that host (host.* messages, VM.start_on, SR.create ...)
 *   VBD, VIF:  their VM's, as vm (forward_vbd_op, forward_vif_op)
 *   PBD, PIF:  their host
 *   SR:        a non-shared SR's host (the host of its PBD); a shared SR's
 *              operations run on its collector's host (xapi's SR master),
 *              else where called when its PBD there is plugged, else on a
 *              live host whose PBD is (every such host sees it)
 *   VDI:       the host of a running VM that has it attached (its disk
 *              servers are paused for a change of its chain), else its
 *              SR's, as SR
 *   task:      the host a pending task's call was forwarded to (task.cancel
 *              reaches the operation where it runs)
 *
 * The transfer routes redirect instead (forward_transfer_redirect).
 */
#include "api/forward.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/placement.h"
#include "api/pool_live.h"
#include "api/transfer_auth.h"
#include "common/log.h"
#include "db/db.h"
#include "rpc/ctx.h"
#include "xapi_errors.h"
#include "xapi_handlers.h"

static bool
valid_ref(const char *ref)
{
    return ref && ref[0] && strcmp(ref, "OpaqueRef:NULL") != 0;
}

/* *host = a copy of @ref when it names a host. */
static bool
answer(struct db *db, const char *ref, char **host, struct xerr **errp)
{
    *host = NULL;
    if (!valid_ref(ref) || !db_exists(db, &xapi_class_host, ref))
        return true;
    return (*host = strdup(ref)) != NULL || xerr_nomem(errp);
}

struct vm_place {
    char *resident; /* running or paused: where */
    struct xapi_ref_set vbds;
};

static void
peek_vm(void *opaque, const void *rec)
{
    const struct xapi_vm_record *vm = rec;
    struct vm_place *p = opaque;
    if (vm->power_state == XAPI_VM_POWER_STATE_RUNNING ||
        vm->power_state == XAPI_VM_POWER_STATE_PAUSED)
        xstr_set(&p->resident, vm->resident_on);
    else
        xtype_value_copy(&xapi_type_ref_VBD_set, &p->vbds, &vm->VBDs);
}

static void
peek_vbd_vdi(void *opaque, const void *rec)
{
    const struct xapi_vbd_record *b = rec;
    if (!b->empty)
        xstr_set(opaque, b->VDI);
}

static bool vdi_host(struct call_ctx *ctx, const char *ref, bool shared_too, char **host,
                     struct xerr **errp);

static bool
vm_host(struct call_ctx *ctx, const char *ref, bool disks, char **host, struct xerr **errp)
{
    struct vm_place p = {0};
    *host = NULL;
    db_with(ctx->db, &xapi_class_vm, ref, peek_vm, &p, NULL);
    bool ok = true;
    if (p.resident) {
        ok = answer(ctx->db, p.resident, host, errp);
    } else if (disks) {
        /* a disk on a host's own SR decides; else one on a shared SR that
         * is not plugged here */
        for (int shared = 0; shared <= 1; shared++)
            for (size_t i = 0; ok && !*host && i < p.vbds.n; i++) {
                char *vdi = NULL;
                db_with(ctx->db, &xapi_class_vbd, p.vbds.items[i], peek_vbd_vdi, &vdi, NULL);
                ok = !vdi || vdi_host(ctx, vdi, shared, host, errp);
                free(vdi);
            }
    }
    free(p.resident);
    xtype_value_clear(&xapi_type_ref_VBD_set, &p.vbds);
    return ok;
}

bool
api_forward_by_vm(struct call_ctx *ctx, const char *ref, char **host, struct xerr **errp)
{
    return vm_host(ctx, ref, false, host, errp);
}

bool
api_forward_by_vm_srs(struct call_ctx *ctx, const char *ref, char **host, struct xerr **errp)
{
    return vm_host(ctx, ref, true, host, errp);
}

static void
peek_halted(void *opaque, const void *rec)
{
    *(bool *)opaque = ((const struct xapi_vm_record *)rec)->power_state == XAPI_VM_POWER_STATE_HALTED;
}

bool
api_forward_by_placement(struct call_ctx *ctx, const char *ref, char **host, struct xerr **errp)
{
    bool halted = false;
    *host = NULL;
    db_with(ctx->db, &xapi_class_vm, ref, peek_halted, &halted, NULL);
    if (!halted) /* the local handler answers VM_BAD_POWER_STATE */
        return true;
    return placement_choose_host(ctx, ref, host, errp);
}

bool
api_forward_by_host(struct call_ctx *ctx, const char *ref, char **host, struct xerr **errp)
{
    return answer(ctx->db, ref, host, errp);
}

static void
peek_vbd_vm(void *opaque, const void *rec)
{
    xstr_set(opaque, ((const struct xapi_vbd_record *)rec)->VM);
}

bool
api_forward_by_VBD(struct call_ctx *ctx, const char *ref, char **host, struct xerr **errp)
{
    char *vm = NULL;
    *host = NULL;
    db_with(ctx->db, &xapi_class_vbd, ref, peek_vbd_vm, &vm, NULL);
    bool ok = !vm || api_forward_by_vm(ctx, vm, host, errp);
    free(vm);
    return ok;
}

static void
peek_vif_vm(void *opaque, const void *rec)
{
    xstr_set(opaque, ((const struct xapi_vif_record *)rec)->VM);
}

bool
api_forward_by_VIF(struct call_ctx *ctx, const char *ref, char **host, struct xerr **errp)
{
    char *vm = NULL;
    *host = NULL;
    db_with(ctx->db, &xapi_class_vif, ref, peek_vif_vm, &vm, NULL);
    bool ok = !vm || api_forward_by_vm(ctx, vm, host, errp);
    free(vm);
    return ok;
}

static void
peek_pbd_host(void *opaque, const void *rec)
{
    xstr_set(opaque, ((const struct xapi_pbd_record *)rec)->host);
}

bool
api_forward_by_PBD(struct call_ctx *ctx, const char *ref, char **host, struct xerr **errp)
{
    char *h = NULL;
    db_with(ctx->db, &xapi_class_pbd, ref, peek_pbd_host, &h, NULL);
    bool ok = answer(ctx->db, h, host, errp);
    free(h);
    return ok;
}

static void
peek_pif_host(void *opaque, const void *rec)
{
    xstr_set(opaque, ((const struct xapi_pif_record *)rec)->host);
}

bool
api_forward_by_PIF(struct call_ctx *ctx, const char *ref, char **host, struct xerr **errp)
{
    char *h = NULL;
    db_with(ctx->db, &xapi_class_pif, ref, peek_pif_host, &h, NULL);
    bool ok = answer(ctx->db, h, host, errp);
    free(h);
    return ok;
}

struct sr_place {
    char uuid[37];
    bool shared;
    char *pbd;            /* a non-shared SR's first PBD */
    struct xapi_ref_set pbds; /* a shared SR's */
};

static void
peek_sr_pbd(void *opaque, const void *rec)
{
    const struct xapi_sr_record *sr = rec;
    struct sr_place *p = opaque;
    p->shared = sr->shared;
    snprintf(p->uuid, sizeof(p->uuid), "%s", sr->uuid);
    if (!sr->shared && sr->PBDs.n > 0)
        xstr_set(&p->pbd, sr->PBDs.items[0]);
    else if (sr->shared)
        xtype_value_copy(&xapi_type_ref_PBD_set, &p->pbds, &sr->PBDs);
}

struct pbd_state {
    char *host;
    bool attached;
};

static void
peek_pbd_state(void *opaque, const void *rec)
{
    const struct xapi_pbd_record *p = rec;
    struct pbd_state *st = opaque;
    xstr_set(&st->host, p->host);
    st->attached = p->currently_attached;
}

static void
peek_host_uuid(void *opaque, const void *rec)
{
    snprintf(opaque, 37, "%s", ((const struct xapi_host_record *)rec)->uuid);
}

/* A shared SR: the host that runs its collector (the holder of
 * P/sr-gc/<sr uuid>, api/storage_gc.c) when its PBD is plugged and it is
 * live, so that the SR's chain changes and its collector are ordered by
 * one host's locks, as xapi sends a shared SR's operations to its SR
 * master; else this host when its PBD is plugged, else a live host whose
 * PBD is (the directory is the same from every host that plugged it),
 * else here (the local handler answers SR_NOT_ATTACHED or SR_HAS_NO_PBDS). */
static bool
shared_sr_host(struct call_ctx *ctx, const char *sr_uuid, const struct xapi_ref_set *pbds,
               char **host, struct xerr **errp)
{
    char key[64];
    snprintf(key, sizeof(key), "sr-gc/%s", sr_uuid);
    char *holder = pool_live_holder(ctx->srv, key), *other = NULL, *chosen = NULL;
    bool here = false;
    for (size_t i = 0; i < pbds->n && !chosen; i++) {
        struct pbd_state st = {0};
        db_with(ctx->db, &xapi_class_pbd, pbds->items[i], peek_pbd_state, &st, NULL);
        bool self = st.host && strcmp(st.host, ctx->srv->host_ref) == 0;
        if (st.attached && st.host && (self || pool_live_host_is_live(ctx->srv, st.host))) {
            char uuid[37] = "";
            db_with(ctx->db, &xapi_class_host, st.host, peek_host_uuid, uuid, NULL);
            if (holder && strcmp(uuid, holder) == 0)
                chosen = strdup(st.host);
            else if (self)
                here = true;
            else if (!other)
                other = strdup(st.host);
        }
        free(st.host);
    }
    const char *to = chosen ? chosen : here ? NULL : other;
    bool ok = !to || strcmp(to, ctx->srv->host_ref) == 0 || answer(ctx->db, to, host, errp);
    free(holder);
    free(other);
    free(chosen);
    return ok;
}

/* The host of @ref's SR; a shared SR only when @shared_too. */
static bool
sr_host(struct call_ctx *ctx, const char *ref, bool shared_too, char **host, struct xerr **errp)
{
    struct sr_place p = {0};
    *host = NULL;
    db_with(ctx->db, &xapi_class_sr, ref, peek_sr_pbd, &p, NULL);
    bool ok = p.pbd ? api_forward_by_PBD(ctx, p.pbd, host, errp)
              : p.shared && shared_too ? shared_sr_host(ctx, p.uuid, &p.pbds, host, errp)
                                       : true;
    free(p.pbd);
    xtype_value_clear(&xapi_type_ref_PBD_set, &p.pbds);
    return ok;
}

bool
api_forward_by_SR(struct call_ctx *ctx, const char *ref, char **host, struct xerr **errp)
{
    return sr_host(ctx, ref, true, host, errp);
}

struct vdi_place {
    char *sr;
    struct xapi_ref_set vbds;
};

static void
peek_vdi_sr(void *opaque, const void *rec)
{
    const struct xapi_vdi_record *v = rec;
    struct vdi_place *p = opaque;
    xstr_set(&p->sr, v->SR);
    xtype_value_copy(&xapi_type_ref_VBD_set, &p->vbds, &v->VBDs);
}

static void
peek_vbd_attached(void *opaque, const void *rec)
{
    const struct xapi_vbd_record *b = rec;
    if (b->currently_attached)
        xstr_set(opaque, b->VM);
}

/* A VDI attached to a running VM: that VM's host, whose disk servers an
 * operation on the VDI's chain must pause (a shared SR's VDI may be
 * attached on another host than the one where the call came). Else its
 * SR's host, as SR. */
static bool
vdi_host(struct call_ctx *ctx, const char *ref, bool shared_too, char **host, struct xerr **errp)
{
    struct vdi_place p = {0};
    *host = NULL;
    db_with(ctx->db, &xapi_class_vdi, ref, peek_vdi_sr, &p, NULL);
    bool ok = true, found = false;
    for (size_t i = 0; ok && !found && i < p.vbds.n; i++) {
        char *vm = NULL;
        db_with(ctx->db, &xapi_class_vbd, p.vbds.items[i], peek_vbd_attached, &vm, NULL);
        struct vm_place where = {0};
        if (vm)
            db_with(ctx->db, &xapi_class_vm, vm, peek_vm, &where, NULL);
        if (where.resident) {
            found = true;
            ok = answer(ctx->db, where.resident, host, errp);
        }
        free(where.resident);
        xtype_value_clear(&xapi_type_ref_VBD_set, &where.vbds);
        free(vm);
    }
    if (ok && !found && p.sr)
        ok = sr_host(ctx, p.sr, shared_too, host, errp);
    free(p.sr);
    xtype_value_clear(&xapi_type_ref_VBD_set, &p.vbds);
    return ok;
}

bool
api_forward_by_VDI(struct call_ctx *ctx, const char *ref, char **host, struct xerr **errp)
{
    return vdi_host(ctx, ref, true, host, errp);
}

static void
peek_forwarded(void *opaque, const void *rec)
{
    const struct xapi_task_record *t = rec;
    if (t->forwarded && (t->status == XAPI_TASK_STATUS_TYPE_PENDING ||
                         t->status == XAPI_TASK_STATUS_TYPE_CANCELLING))
        xstr_set(opaque, t->forwarded_to);
}

bool
api_forward_by_task(struct call_ctx *ctx, const char *ref, char **host, struct xerr **errp)
{
    char *h = NULL;
    db_with(ctx->db, &xapi_class_task, ref, peek_forwarded, &h, NULL);
    bool ok = answer(ctx->db, h, host, errp);
    free(h);
    return ok;
}

/* ------------------------------------------------------------------ transfers */

static bool
redirect(struct server *srv, struct http_request *req, const char *host)
{
    char *address = NULL;
    db_get_field(srv->db, &xapi_class_host, host, xclass_field(&xapi_class_host, "address"),
                 &address, NULL);
    char *query = http_request_query_string(req);
    char *location = NULL;
    bool ok = address && address[0] && query &&
              asprintf(&location, "Location: https://%s%s%s%s", address, http_request_path(req),
                       query[0] ? "?" : "", query) >= 0;
    if (ok) {
        log_info("forward.redirect", "path=%s host=%s address=%s", http_request_path(req), host,
                 address);
        const char *headers[] = {location};
        http_reply_with_headers(req, 302, NULL, headers, 1, "", 0);
    }
    free(location);
    free(query);
    free(address);
    return ok;
}

bool
forward_transfer_redirect(struct server *srv, struct http_request *req, const char *permission,
                          enum forward_object what, const char *ref, bool by_uuid)
{
    static const struct xclass *const classes[] = {&xapi_class_vm, &xapi_class_sr,
                                                   &xapi_class_vdi};
    if (!ref)
        return false;
    char *owned = NULL;
    if (by_uuid && !db_ref_by_uuid(srv->db, classes[what], ref, &owned, NULL))
        return false;
    struct call_ctx ctx = {.srv = srv, .db = srv->db};
    char *host = NULL;
    const char *r = owned ? owned : ref;
    bool found = what == FORWARD_VM    ? api_forward_by_vm_srs(&ctx, r, &host, NULL)
                 : what == FORWARD_SR ? api_forward_by_SR(&ctx, r, &host, NULL)
                                      : api_forward_by_VDI(&ctx, r, &host, NULL);
    free(owned);
    bool done = false;
    if (found && host && strcmp(host, srv->host_ref) != 0) {
        /* credentials first, as xapi's handlers: a stranger learns nothing */
        struct transfer_caller who = {0};
        struct xerr *err = NULL;
        if (transfer_authorise(srv, req, permission, &who, &err))
            done = redirect(srv, req, host);
        free(who.user);
        xerr_free(err);
    }
    free(host);
    return done;
}
