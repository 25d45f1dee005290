/* api/vm_ops.c - allowed_operations by state (xenapi.md 3.2-3.4), for the
 * operations this build performs: lifecycle ones join the list as the domain
 * manager gains them. */
#include "api/vm_ops.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db/db.h"

bool
vm_ops_refresh(struct xapi_vm_record *vm)
{
    enum xapi_vm_operations ops[16];
    size_t n = 0;
    if (vm->is_control_domain) {
        /* dom0 is managed with the host, never through VM operations */
    } else if (vm->is_a_template) {
        ops[n++] = XAPI_VM_OPERATIONS_CLONE;
        ops[n++] = XAPI_VM_OPERATIONS_COPY;
        ops[n++] = XAPI_VM_OPERATIONS_EXPORT;
        ops[n++] = XAPI_VM_OPERATIONS_PROVISION;
        if (!vm->is_default_template)
            ops[n++] = XAPI_VM_OPERATIONS_DESTROY;
    } else if (vm->power_state == XAPI_VM_POWER_STATE_HALTED) {
        ops[n++] = XAPI_VM_OPERATIONS_CLONE;
        ops[n++] = XAPI_VM_OPERATIONS_COPY;
        ops[n++] = XAPI_VM_OPERATIONS_EXPORT;
        ops[n++] = XAPI_VM_OPERATIONS_DESTROY;
        ops[n++] = XAPI_VM_OPERATIONS_CHANGING_MEMORY_LIMITS;
        ops[n++] = XAPI_VM_OPERATIONS_CHANGING_STATIC_RANGE;
        ops[n++] = XAPI_VM_OPERATIONS_CHANGING_DYNAMIC_RANGE;
        ops[n++] = XAPI_VM_OPERATIONS_CHANGING_VCPUS;
        ops[n++] = XAPI_VM_OPERATIONS_MAKE_INTO_TEMPLATE;
    }
    enum xapi_vm_operations *items = NULL;
    if (n && !(items = malloc(n * sizeof(*items))))
        return false;
    if (n)
        memcpy(items, ops, n * sizeof(*items));
    free(vm->allowed_operations.items);
    vm->allowed_operations.items = items;
    vm->allowed_operations.n = n;
    return true;
}

bool
vm_metrics_create(struct db *db, const struct xapi_vm_record *vm, char **ref_out,
                  struct xerr **errp)
{
    struct xapi_vm_metrics_record *m = xapi_vm_metrics_record_new();
    if (!m)
        return xerr_nomem(errp);
    m->memory_actual = vm->power_state == XAPI_VM_POWER_STATE_HALTED ? 0 : vm->memory_dynamic_max;
    m->VCPUs_number = vm->power_state == XAPI_VM_POWER_STATE_HALTED ? 0 : vm->VCPUs_at_startup;
    m->install_time = m->last_updated = time(NULL);
    return db_create(db, &xapi_class_vm_metrics, NULL, m, ref_out, errp);
}
