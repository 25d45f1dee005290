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
 *   placement: VM.start: a host the VM can boot on (api/placement.h)
 *   host:      that host (host.* messages, VM.start_on, SR.create ...)
 *   VBD, VIF:  their VM's, as vm (forward_vbd_op, forward_vif_op)
 *   PBD, PIF:  their host
 *   SR:        a non-shared SR's host (the host of its PBD); a shared SR's
 *              operations run where called (every host sees it)
 *   VDI:       its SR's, as SR
 */
#include <stdlib.h>
#include <string.h>

#include "api/placement.h"
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

static void
peek_vm(void *opaque, const void *rec)
{
    const struct xapi_vm_record *vm = rec;
    if (vm->power_state == XAPI_VM_POWER_STATE_RUNNING ||
        vm->power_state == XAPI_VM_POWER_STATE_PAUSED)
        xstr_set(opaque, vm->resident_on);
}

bool
api_forward_by_vm(struct call_ctx *ctx, const char *ref, char **host, struct xerr **errp)
{
    char *resident = NULL;
    db_with(ctx->db, &xapi_class_vm, ref, peek_vm, &resident, NULL);
    bool ok = answer(ctx->db, resident, host, errp);
    free(resident);
    return ok;
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

static void
peek_sr_pbd(void *opaque, const void *rec)
{
    const struct xapi_sr_record *sr = rec;
    if (!sr->shared && sr->PBDs.n > 0)
        xstr_set(opaque, sr->PBDs.items[0]);
}

bool
api_forward_by_SR(struct call_ctx *ctx, const char *ref, char **host, struct xerr **errp)
{
    char *pbd = NULL;
    *host = NULL;
    db_with(ctx->db, &xapi_class_sr, ref, peek_sr_pbd, &pbd, NULL);
    bool ok = !pbd || api_forward_by_PBD(ctx, pbd, host, errp);
    free(pbd);
    return ok;
}

static void
peek_vdi_sr(void *opaque, const void *rec)
{
    xstr_set(opaque, ((const struct xapi_vdi_record *)rec)->SR);
}

bool
api_forward_by_VDI(struct call_ctx *ctx, const char *ref, char **host, struct xerr **errp)
{
    char *sr = NULL;
    *host = NULL;
    db_with(ctx->db, &xapi_class_vdi, ref, peek_vdi_sr, &sr, NULL);
    bool ok = !sr || api_forward_by_SR(ctx, sr, host, errp);
    free(sr);
    return ok;
}
