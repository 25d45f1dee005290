/* api/vm_config.c - VM setters with rules: vCPUs and memory (xapi's ocaml/xapi/xapi_vm_lifecycle.ml).
 *
 * vCPUs: 1 <= VCPUs_at_startup <= VCPUs_max, changed while Halted
 * (changing_VCPUs). Memory: static_min <= dynamic_min <= dynamic_max <=
 * static_max always (MEMORY_CONSTRAINT_VIOLATION otherwise); the static range
 * changes while Halted (changing_static_range), the dynamic range also while
 * Running (changing_dynamic_range). The check and the write are one
 * db_update, so a concurrent start cannot slip between them.
 */
#include <inttypes.h>
#include <stdio.h>

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

bool
api_vm_set_memory_dynamic_range(struct call_ctx *ctx, const char *self, int64_t min, int64_t max,
                                struct xerr **errp)
{
    return memory(ctx, self, -1, -1, min, max, XAPI_VM_OPERATIONS_CHANGING_DYNAMIC_RANGE, errp);
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
