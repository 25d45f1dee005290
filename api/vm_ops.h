/* api/vm_ops.h - what a VM may do in its state: allowed_operations.
 *
 * One function decides, from power state and template/snapshot/control-domain
 * flags, the operations a VM allows; every writer of power_state calls it in
 * the same db_update, so allowed_operations is never stale (xenapi.md 3.4).
 */
#ifndef VESSEL_API_VM_OPS_H
#define VESSEL_API_VM_OPS_H

#include <stdbool.h>

#include "xapi_model.h"

struct db;

/* Rewrites @vm->allowed_operations. false only when out of memory. */
bool vm_ops_refresh(struct xapi_vm_record *vm);
/* A new VM_metrics record for a VM of @vm's shape, created in the store. */
bool vm_metrics_create(struct db *db, const struct xapi_vm_record *vm, char **ref_out,
                       struct xerr **errp);

#endif
