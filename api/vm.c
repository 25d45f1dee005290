/* api/vm.c - VM.* messages built so far: clone and copy of a halted VM or a
 * template, metadata only (no disks exist yet: VBDs are not copied; that is
 * the storage issue's work, VM.provision's too).
 *
 * xapi's rules kept: the source must be Halted (VM_BAD_POWER_STATE [vm,
 * halted, actual]); the copy gets a new uuid, the given name, its own
 * VM_metrics, is_default_template false (a copy of a shipped template is the
 * user's), no snapshots and no parent link.
 */
#include <stdlib.h>
#include <string.h>

#include "api/vm_ops.h"
#include "db/db.h"
#include "rpc/ctx.h"
#include "xapi_handlers.h"

static const char *
power_state_lower(enum xapi_vm_power_state ps)
{
    static const char *const names[] = {"halted", "paused", "running", "suspended"};
    return (unsigned)ps < 4 ? names[ps] : "unknown";
}

static bool
copy_vm(struct call_ctx *ctx, const char *vm, const char *new_name, char **result,
        struct xerr **errp)
{
    struct xapi_vm_record *src = NULL;
    if (!db_get(ctx->db, &xapi_class_vm, vm, (void **)&src, errp))
        return false;
    if (src->is_control_domain) {
        xapi_vm_record_free(src);
        return xerr_raise(errp, "OPERATION_NOT_ALLOWED", "the control domain cannot be copied");
    }
    if (src->power_state != XAPI_VM_POWER_STATE_HALTED) {
        bool ok = xerr_vm_bad_power_state(errp, vm, "halted", power_state_lower(src->power_state));
        xapi_vm_record_free(src);
        return ok;
    }
    struct xapi_vm_record *dst = src;
    char *name = strdup(new_name);
    if (!name) {
        xapi_vm_record_free(dst);
        return xerr_nomem(errp);
    }
    free(dst->uuid);
    dst->uuid = strdup("");
    free(dst->name_label);
    dst->name_label = name;
    dst->is_default_template = false;
    dst->is_a_snapshot = false;
    free(dst->snapshot_of);
    dst->snapshot_of = strdup("OpaqueRef:NULL");
    free(dst->parent);
    dst->parent = strdup("OpaqueRef:NULL");
    xtype_value_clear(&xapi_type_string_vm_operations_map, &dst->current_operations);
    if (!dst->uuid || !dst->snapshot_of || !dst->parent || !vm_ops_refresh(dst)) {
        xapi_vm_record_free(dst);
        return xerr_nomem(errp);
    }
    db_batch_begin(ctx->db);
    char *metrics = NULL;
    bool ok = vm_metrics_create(ctx->db, dst, &metrics, errp);
    if (ok) {
        free(dst->metrics);
        dst->metrics = metrics;
        ok = db_create(ctx->db, &xapi_class_vm, NULL, dst, result, errp);
    } else {
        xapi_vm_record_free(dst);
    }
    return db_batch_end(ctx->db, ok, errp);
}

bool
api_vm_clone(struct call_ctx *ctx, const char *vm, const char *new_name, char **result,
             struct xerr **errp)
{
    return copy_vm(ctx, vm, new_name, result, errp);
}

bool
api_vm_copy(struct call_ctx *ctx, const char *vm, const char *new_name, const char *sr,
            char **result, struct xerr **errp)
{
    if (strcmp(sr, "OpaqueRef:NULL") != 0 && !db_exists(ctx->db, &xapi_class_sr, sr))
        return xerr_handle_invalid(errp, "SR", sr);
    return copy_vm(ctx, vm, new_name, result, errp);
}
