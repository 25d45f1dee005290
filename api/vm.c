/* api/vm.c - VM.create, destroy, clone and copy (power operations are in
 * api/vm_lifecycle.c; disks and NICs of copies in api/vm_devices.c).
 *
 * xapi's rules kept: the source must be Halted (VM_BAD_POWER_STATE [vm,
 * halted, actual]); the copy gets a new uuid, the given name, its own
 * VM_metrics, is_default_template false (a copy of a shipped template is the
 * user's), no snapshots and no parent link.
 */
#include <stdlib.h>
#include <string.h>

#include "api/domains.h"
#include "api/vm_devices.h"
#include "api/vm_ops.h"
#include "db/db.h"
#include "rpc/ctx.h"
#include "xapi_handlers.h"
#include "xapi_errors.h"

static bool
copy_vm(struct call_ctx *ctx, const char *vm, const char *new_name, enum vm_copy_mode mode,
        const char *sr, char **result, struct xerr **errp)
{
    struct xapi_vm_record *src = NULL;
    if (!db_get(ctx->db, &xapi_class_vm, vm, (void **)&src, errp))
        return false;
    /* Suspended sources need their memory image copied too: not yet. */
    if (!vm_op_check(src, vm, XAPI_VM_OPERATIONS_CLONE, errp) ||
        (src->power_state != XAPI_VM_POWER_STATE_HALTED &&
         !xerr_vm_bad_power_state(errp, vm, "halted", vm_power_state_lower(src->power_state)))) {
        xapi_vm_record_free(src);
        return false;
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
    /* xapi_vm_clone.ml drops the key too: Xen Orchestra takes a VM that has it
     * for a built-in template and refuses to delete it */
    xmap_remove_key(&xapi_type_string_string_map, (struct xmap *)&dst->other_config,
                    "default_template");
    dst->is_a_snapshot = false;
    dst->domid = -1;
    free(dst->snapshot_of);
    dst->snapshot_of = strdup("OpaqueRef:NULL");
    free(dst->parent);
    dst->parent = strdup("OpaqueRef:NULL");
    xtype_value_clear(&xapi_type_string_vm_operations_map, &dst->current_operations);
    /* a copy's NICs get new MACs: a new mac_seed (xapi does the same) */
    char *seed = db_new_uuid();
    bool seeded = seed && xmap_put_str((struct xmap *)&dst->other_config, "mac_seed", seed) == 0;
    free(seed);
    if (!seeded || !dst->uuid || !dst->snapshot_of || !dst->parent || !vm_ops_refresh(dst)) {
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
    if (!db_batch_end(ctx->db, ok, errp))
        return false;
    /* Disks and NICs after the record, outside the batch: a disk copy is long. */
    struct xapi_vm_record *src_now = NULL;
    ok = db_get(ctx->db, &xapi_class_vm, vm, (void **)&src_now, errp) &&
         vm_devices_copy(ctx, src_now, *result, mode, sr, NULL, errp);
    xapi_vm_record_free(src_now);
    if (!ok) {
        struct xerr *ignored = NULL;
        api_vm_destroy(ctx, *result, &ignored);
        xerr_free(ignored);
    }
    return ok;
}

bool
api_vm_clone(struct call_ctx *ctx, const char *vm, const char *new_name, char **result,
             struct xerr **errp)
{
    return copy_vm(ctx, vm, new_name, VM_COPY_CLONE, NULL, result, errp);
}

bool
api_vm_copy(struct call_ctx *ctx, const char *vm, const char *new_name, const char *sr,
            char **result, struct xerr **errp)
{
    if (strcmp(sr, "OpaqueRef:NULL") != 0 && !db_exists(ctx->db, &xapi_class_sr, sr))
        return xerr_handle_invalid(errp, "SR", sr);
    return copy_vm(ctx, vm, new_name, VM_COPY_COPY, sr, result, errp);
}

bool
api_vm_create(struct call_ctx *ctx, const struct xapi_vm_record *args, char **result,
              struct xerr **errp)
{
    struct xapi_vm_record *vm = xapi_vm_record_copy(args);
    if (!vm)
        return xerr_nomem(errp);
    /* A new VM is Halted whatever the record says; the server owns these. */
    vm->power_state = XAPI_VM_POWER_STATE_HALTED;
    vm->domid = -1; /* a schema default of 0 would name dom0 */
    vm->is_control_domain = false;
    if (!(vm->memory_static_min <= vm->memory_dynamic_min &&
          vm->memory_dynamic_min <= vm->memory_dynamic_max &&
          vm->memory_dynamic_max <= vm->memory_static_max)) {
        xapi_vm_record_free(vm);
        return xerr_memory_constraint_violation(
            errp, "memory_static_min <= memory_dynamic_min <= memory_dynamic_max <= memory_static_max");
    }
    if (vm->VCPUs_at_startup > vm->VCPUs_max || vm->VCPUs_at_startup < 1) {
        xapi_vm_record_free(vm);
        return xerr_value_not_supported(errp, "VCPUs_at_startup", "",
                          "VCPUs_at_startup must be between 1 and VCPUs_max");
    }
    /* xapi's mac_seed: MACs generated for this VM's VIFs derive from it */
    char *seed = db_new_uuid();
    bool seeded = seed && (xmap_get_str((const struct xmap *)&vm->other_config, "mac_seed") ||
                           xmap_put_str((struct xmap *)&vm->other_config, "mac_seed", seed) == 0);
    free(seed);
    if (!seeded || !vm_ops_refresh(vm)) {
        xapi_vm_record_free(vm);
        return xerr_nomem(errp);
    }
    db_batch_begin(ctx->db);
    char *metrics = NULL;
    bool ok = vm_metrics_create(ctx->db, vm, &metrics, errp);
    if (ok) {
        free(vm->metrics);
        vm->metrics = metrics;
        ok = db_create(ctx->db, &xapi_class_vm, NULL, vm, result, errp);
    } else {
        xapi_vm_record_free(vm);
    }
    return db_batch_end(ctx->db, ok, errp);
}

static bool
destroy_all(struct db *db, const struct xclass *cls, const struct xapi_ref_set *refs,
            struct xerr **errp)
{
    for (size_t i = 0; i < refs->n; i++)
        if (db_exists(db, cls, refs->items[i]) && !db_destroy(db, cls, refs->items[i], errp))
            return false;
    return true;
}

static bool
destroy_one(struct db *db, const struct xclass *cls, const char *ref, struct xerr **errp)
{
    return !db_exists(db, cls, ref) || db_destroy(db, cls, ref, errp);
}

/* Devices go with their metrics records. */
static bool
destroy_devices(struct db *db, const struct xclass *cls, const struct xclass *metrics_cls,
                const struct xapi_ref_set *refs, struct xerr **errp)
{
    const struct xfield *mf = xclass_field(cls, "metrics");
    for (size_t i = 0; i < refs->n; i++) {
        char *metrics = NULL;
        if (mf && db_get_field(db, cls, refs->items[i], mf, &metrics, NULL)) {
            bool ok = destroy_one(db, metrics_cls, metrics, errp);
            free(metrics);
            if (!ok)
                return false;
        }
        if (!destroy_one(db, cls, refs->items[i], errp))
            return false;
    }
    return true;
}

/* Removes the VM with its VBDs, VIFs, consoles and metrics - not its VDIs
 * (xapi's ocaml/xapi/xapi_vm_lifecycle.ml: the disks are the user's to destroy). */
bool
api_vm_destroy(struct call_ctx *ctx, const char *self, struct xerr **errp)
{
    struct xapi_vm_record *vm = NULL;
    if (!db_get(ctx->db, &xapi_class_vm, self, (void **)&vm, errp))
        return false;
    bool ok = true;
    if (vm->is_control_domain)
        ok = xerr_operation_not_allowed(errp, "This operation is not allowed on dom0");
    else
        ok = vm_op_check(vm, self, XAPI_VM_OPERATIONS_DESTROY, errp);
    if (ok) {
        db_batch_begin(ctx->db);
        ok = destroy_devices(ctx->db, &xapi_class_vbd, &xapi_class_vbd_metrics, &vm->VBDs, errp) &&
             destroy_devices(ctx->db, &xapi_class_vif, &xapi_class_vif_metrics, &vm->VIFs, errp) &&
             destroy_all(ctx->db, &xapi_class_console, &vm->consoles, errp) &&
             destroy_one(ctx->db, &xapi_class_vm_metrics, vm->metrics, errp) &&
             destroy_one(ctx->db, &xapi_class_vm_guest_metrics, vm->guest_metrics, errp) &&
             db_destroy(ctx->db, &xapi_class_vm, self, errp);
        ok = db_batch_end(ctx->db, ok, errp);
    }
    if (ok && vm->power_state == XAPI_VM_POWER_STATE_SUSPENDED)
        vm_lifecycle_image_drop(ctx->srv, vm->uuid); /* a checkpoint's memory */
    xapi_vm_record_free(vm);
    return ok;
}
