/* api/vm_config.c - VM setters with rules: vCPUs and memory (xapi's ocaml/xapi/xapi_vm_lifecycle.ml).
 *
 * vCPUs: 1 <= VCPUs_at_startup <= VCPUs_max, changed while Halted
 * (changing_VCPUs). Memory: static_min <= dynamic_min <= dynamic_max <=
 * static_max always (MEMORY_CONSTRAINT_VIOLATION otherwise); the static range
 * changes while Halted (changing_static_range), the dynamic range also while
 * Running (changing_dynamic_range), when the guest's balloon follows. The
 * check and the write are one db_update, so a concurrent start cannot slip
 * between them. vCPUs change live by hotplug (changing_VCPUs_live).
 */
#include <inttypes.h>
#include <stdio.h>

#include "api/domains.h"
#include "api/vm_ops.h"
#include "db/db.h"
#include "rpc/ctx.h"
#include "xapi_handlers.h"
#include "xapi_errors.h"

enum change { VCPUS_MAX, VCPUS_AT_STARTUP, MEMORY };

struct vm_change {
    const char *ref;
    enum change what;
    int64_t value;
    int64_t smin, smax, dmin, dmax; /* MEMORY: new values; -1 keeps the current */
    enum xapi_vm_operations op;
};

static bool
apply_change(void *opaque, void *rec, struct xerr **errp)
{
    const struct vm_change *c = opaque;
    struct xapi_vm_record *vm = rec;
    if (!vm_op_check(vm, c->ref, c->op, errp))
        return false;
    char v[32];
    snprintf(v, sizeof(v), "%" PRId64, c->value);
    switch (c->what) {
    case VCPUS_MAX:
        if (c->value < 1 || c->value > 64)
            return xerr_value_not_supported(errp, "VCPUs_max", v, "must be between 1 and 64");
        if (c->value < vm->VCPUs_at_startup)
            return xerr_value_not_supported(errp, "VCPUs_max", v,
                              "VCPUs_max must be at least VCPUs_at_startup");
        vm->VCPUs_max = c->value;
        break;
    case VCPUS_AT_STARTUP:
        if (c->value < 1 || c->value > vm->VCPUs_max)
            return xerr_value_not_supported(errp, "VCPUs_at_startup", v,
                              "VCPUs_at_startup must be between 1 and VCPUs_max");
        vm->VCPUs_at_startup = c->value;
        break;
    case MEMORY: {
        int64_t smin = c->smin >= 0 ? c->smin : vm->memory_static_min;
        int64_t smax = c->smax >= 0 ? c->smax : vm->memory_static_max;
        int64_t dmin = c->dmin >= 0 ? c->dmin : vm->memory_dynamic_min;
        int64_t dmax = c->dmax >= 0 ? c->dmax : vm->memory_dynamic_max;
        if (!(0 <= smin && smin <= dmin && dmin <= dmax && dmax <= smax))
            return xerr_memory_constraint_violation(
                errp, "memory_static_min <= memory_dynamic_min <= memory_dynamic_max <= "
                      "memory_static_max");
        vm->memory_static_min = smin;
        vm->memory_static_max = smax;
        vm->memory_dynamic_min = dmin;
        vm->memory_dynamic_max = dmax;
        break;
    }
    }
    return vm_ops_refresh(vm) || xerr_nomem(errp);
}

static bool
change(struct call_ctx *ctx, struct vm_change *c, struct xerr **errp)
{
    return db_update(ctx->db, &xapi_class_vm, c->ref, apply_change, c, errp);
}

static bool
memory(struct call_ctx *ctx, const char *self, int64_t smin, int64_t smax, int64_t dmin,
       int64_t dmax, enum xapi_vm_operations op, struct xerr **errp)
{
    struct vm_change c = {self, MEMORY, 0, smin, smax, dmin, dmax, op};
    return change(ctx, &c, errp);
}

bool
api_vm_set_VCPUs_max(struct call_ctx *ctx, const char *self, int64_t value, struct xerr **errp)
{
    struct vm_change c = {self, VCPUS_MAX, value, 0, 0, 0, 0, XAPI_VM_OPERATIONS_CHANGING_VCPUS};
    return change(ctx, &c, errp);
}

bool
api_vm_set_VCPUs_at_startup(struct call_ctx *ctx, const char *self, int64_t value,
                            struct xerr **errp)
{
    struct vm_change c = {self, VCPUS_AT_STARTUP, value, 0, 0, 0, 0,
                          XAPI_VM_OPERATIONS_CHANGING_VCPUS};
    return change(ctx, &c, errp);
}

bool
api_vm_set_memory_limits(struct call_ctx *ctx, const char *self, int64_t static_min,
                         int64_t static_max, int64_t dynamic_min, int64_t dynamic_max,
                         struct xerr **errp)
{
    return memory(ctx, self, static_min, static_max, dynamic_min, dynamic_max,
                  XAPI_VM_OPERATIONS_CHANGING_MEMORY_LIMITS, errp);
}

bool
api_vm_set_memory_static_range(struct call_ctx *ctx, const char *self, int64_t min, int64_t max,
                               struct xerr **errp)
{
    return memory(ctx, self, min, max, -1, -1, XAPI_VM_OPERATIONS_CHANGING_STATIC_RANGE, errp);
}

bool
api_vm_set_memory_static_min(struct call_ctx *ctx, const char *self, int64_t value,
                             struct xerr **errp)
{
    return memory(ctx, self, value, -1, -1, -1, XAPI_VM_OPERATIONS_CHANGING_STATIC_RANGE, errp);
}

bool
api_vm_set_memory_static_max(struct call_ctx *ctx, const char *self, int64_t value,
                             struct xerr **errp)
{
    return memory(ctx, self, -1, value, -1, -1, XAPI_VM_OPERATIONS_CHANGING_STATIC_RANGE, errp);
}

/* A running VM's balloon follows its dynamic_max: xapi's squeezed gives
 * every guest its dynamic_max while the host has memory to spare. */
static bool
balloon_follows(struct call_ctx *ctx, const char *self, struct xerr **errp)
{
    struct xapi_vm_record *vm = NULL;
    if (!db_get(ctx->db, &xapi_class_vm, self, (void **)&vm, errp))
        return false;
    bool ok = vm->power_state != XAPI_VM_POWER_STATE_RUNNING ||
              domains_set_memory_target(ctx->srv, vm->uuid, vm->memory_dynamic_max, errp);
    xapi_vm_record_free(vm);
    return ok;
}

bool
api_vm_set_memory_dynamic_range(struct call_ctx *ctx, const char *self, int64_t min, int64_t max,
                                struct xerr **errp)
{
    return memory(ctx, self, -1, -1, min, max, XAPI_VM_OPERATIONS_CHANGING_DYNAMIC_RANGE, errp) &&
           balloon_follows(ctx, self, errp);
}

/* Deprecated in xapi (a no-op there, "use set_memory_dynamic_range"); here
 * it moves the running guest's balloon to @target within its dynamic range,
 * which is what its name promises, without changing the range. */
bool
api_vm_set_memory_target_live(struct call_ctx *ctx, const char *self, int64_t target,
                              struct xerr **errp)
{
    struct xapi_vm_record *vm = NULL;
    if (!db_get(ctx->db, &xapi_class_vm, self, (void **)&vm, errp))
        return false;
    bool ok = true;
    if (vm->power_state != XAPI_VM_POWER_STATE_RUNNING)
        ok = xerr_vm_bad_power_state(errp, self, "running",
                                     xenum_name(&xapi_enum_vm_power_state, (int)vm->power_state));
    else if (target < vm->memory_dynamic_min || target > vm->memory_dynamic_max)
        ok = xerr_memory_constraint_violation(
            errp, "memory_dynamic_min <= target <= memory_dynamic_max");
    else
        ok = domains_set_memory_target(ctx->srv, vm->uuid, target, errp);
    xapi_vm_record_free(vm);
    return ok;
}

struct vcpus_live {
    int64_t n;
};

static bool
apply_vcpus_live(void *opaque, void *rec, struct xerr **errp)
{
    struct xapi_vm_record *vm = rec;
    vm->VCPUs_at_startup = ((const struct vcpus_live *)opaque)->n;
    return vm_ops_refresh(vm) || xerr_nomem(errp);
}

static bool
apply_vcpus_number(void *opaque, void *rec, struct xerr **errp)
{
    ((struct xapi_vm_metrics_record *)rec)->VCPUs_number = ((const struct vcpus_live *)opaque)->n;
    return true;
}

/* xapi: VCPUs_at_startup and VM_metrics.VCPUs_number follow the live count
 * (xapi_xenops.ml set_vcpus); out of 1..VCPUs_max is INVALID_VALUE. */
bool
api_vm_set_VCPUs_number_live(struct call_ctx *ctx, const char *self, int64_t nvcpu,
                             struct xerr **errp)
{
    char key[64];
    vm_op_key(ctx, key, sizeof(key));
    if (!vm_op_begin(ctx->db, self, XAPI_VM_OPERATIONS_CHANGING_VCPUS_LIVE, key, errp))
        return false;
    struct xapi_vm_record *vm = NULL;
    bool ok = db_get(ctx->db, &xapi_class_vm, self, (void **)&vm, errp);
    char n[24];
    snprintf(n, sizeof(n), "%" PRId64, nvcpu);
    if (ok && (nvcpu < 1 || nvcpu > vm->VCPUs_max))
        ok = xerr_invalid_value(errp, "VCPU values must satisfy: 0 < VCPUs \u2264 VCPUs_max", n);
    ok = ok && domains_set_vcpus(ctx->srv, vm->uuid, (unsigned)nvcpu, errp);
    struct vcpus_live v = {nvcpu};
    ok = ok && db_update(ctx->db, &xapi_class_vm, self, apply_vcpus_live, &v, errp);
    if (ok && db_exists(ctx->db, &xapi_class_vm_metrics, vm->metrics))
        ok = db_update(ctx->db, &xapi_class_vm_metrics, vm->metrics, apply_vcpus_number, &v, errp);
    xapi_vm_record_free(vm);
    vm_op_end(ctx->db, self, key);
    return ok;
}

bool
api_vm_set_memory_dynamic_min(struct call_ctx *ctx, const char *self, int64_t value,
                              struct xerr **errp)
{
    return memory(ctx, self, -1, -1, value, -1, XAPI_VM_OPERATIONS_CHANGING_DYNAMIC_RANGE, errp);
}

bool
api_vm_set_memory_dynamic_max(struct call_ctx *ctx, const char *self, int64_t value,
                              struct xerr **errp)
{
    return memory(ctx, self, -1, -1, -1, value, XAPI_VM_OPERATIONS_CHANGING_DYNAMIC_RANGE, errp);
}

/* VM.set_memory sets all four to one value (xapi: a fixed-size VM). */
bool
api_vm_set_memory(struct call_ctx *ctx, const char *self, int64_t value, struct xerr **errp)
{
    return memory(ctx, self, value, value, value, value, XAPI_VM_OPERATIONS_CHANGING_MEMORY_LIMITS,
                  errp);
}
