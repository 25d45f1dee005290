/* api/vm_ops.h - what a VM may do in its state: the operation check,
 * allowed_operations, and current_operations as a compare-and-set.
 *
 * vm_op_check is xapi's check_operation_error (xapi's ocaml/xapi/xapi_vm_lifecycle.ml), in its order.
 * vm_op_begin runs it inside the same db_update that records the operation in
 * current_operations, so two conflicting calls cannot both start: the second
 * gets OTHER_OPERATION_IN_PROGRESS. Every writer of a VM's state calls
 * vm_ops_refresh in the same update, so allowed_operations is never stale.
 */
#ifndef VESSEL_API_VM_OPS_H
#define VESSEL_API_VM_OPS_H

#include <stdbool.h>

#include "xapi_errors.h"
#include "xapi_model.h"

struct db;

/* true when @op may start on @vm (named @ref in errors) now. */
bool vm_op_check(const struct xapi_vm_record *vm, const char *ref, enum xapi_vm_operations op,
                 struct xerr **errp);
/* Rewrites @vm->allowed_operations. false only when out of memory. */
bool vm_ops_refresh(struct xapi_vm_record *vm);
/* The key an operation is recorded under in current_operations (@len >= 64). */
struct call_ctx;
void vm_op_key(const struct call_ctx *ctx, char *out, size_t len);
/* Checks @op and records current_operations[@key] = @op in one commit; @key is
 * the caller's task ref (or another unique string for sync calls). */
bool vm_op_begin(struct db *db, const char *vm, enum xapi_vm_operations op, const char *key,
                 struct xerr **errp);
/* The same, and @claimed(@opaque, record) is called inside that update once
 * the check has passed, before the key is added: under the database's write
 * lock, so no other writer sees the VM between the check, the claim and what
 * @claimed does. It may run again when a pool's store makes the update retry. */
typedef void vm_op_claimed_fn(void *opaque, const struct xapi_vm_record *vm);
bool vm_op_begin_then(struct db *db, const char *vm, enum xapi_vm_operations op, const char *key,
                      vm_op_claimed_fn *claimed, void *opaque, struct xerr **errp);
/* Forgets current_operations[@key]: no commit when it is gone already. */
void vm_op_end(struct db *db, const char *vm, const char *key);
/* The same as one change of a batch the caller holds open (db_batch_begin):
 * an operation that records its outcome ends with it, in one commit. */
bool vm_op_end_in_batch(struct db *db, const char *vm, const char *key, struct xerr **errp);
/* Makes implicit setters of VM fields re-derive allowed_operations. */
void vm_ops_register(void);
const char *vm_power_state_lower(enum xapi_vm_power_state ps);
/* A new VM_metrics record for a VM of @vm's shape, created in the store. */
bool vm_metrics_create(struct db *db, const struct xapi_vm_record *vm, char **ref_out,
                       struct xerr **errp);

#endif
