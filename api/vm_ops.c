/* api/vm_ops.c - may this VM do this operation now? (xapi's ocaml/xapi/xapi_vm_lifecycle.ml)
 *
 * One check serves three uses: the advisory allowed_operations list (strict),
 * the gate a message passes before it starts, and the compare-and-set that
 * records it in current_operations - so the list a client reads and what the
 * server accepts cannot disagree. The order of the checks is xapi's, since
 * the first failing one is the error the client sees.
 */
#include "api/vm_ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/domains.h"
#include "db/db.h"
#include "rpc/ctx.h"
#include "rpc/implicit.h"
#include "xapi_errors.h"

#define PS(x) (1u << XAPI_VM_POWER_STATE_##x)
#define HALTED PS(HALTED)
#define RUNNING PS(RUNNING)
#define PAUSED PS(PAUSED)
#define SUSPENDED PS(SUSPENDED)
#define ANY (HALTED | RUNNING | PAUSED | SUSPENDED)

static unsigned
allowed_states(enum xapi_vm_operations op)
{
    switch (op) {
    case XAPI_VM_OPERATIONS_START:
    case XAPI_VM_OPERATIONS_START_ON:
    case XAPI_VM_OPERATIONS_PROVISION:
    case XAPI_VM_OPERATIONS_MAKE_INTO_TEMPLATE:
    case XAPI_VM_OPERATIONS_CHANGING_STATIC_RANGE:
    case XAPI_VM_OPERATIONS_CHANGING_MEMORY_LIMITS:
    case XAPI_VM_OPERATIONS_CHANGING_SHADOW_MEMORY:
    case XAPI_VM_OPERATIONS_CHANGING_VCPUS:
    case XAPI_VM_OPERATIONS_CHANGING_NVRAM:
    case XAPI_VM_OPERATIONS_CREATE_VTPM:
        return HALTED;
    case XAPI_VM_OPERATIONS_CLONE:
    case XAPI_VM_OPERATIONS_COPY:
    case XAPI_VM_OPERATIONS_EXPORT:
    case XAPI_VM_OPERATIONS_DESTROY:
        return HALTED | SUSPENDED;
    case XAPI_VM_OPERATIONS_CLEAN_SHUTDOWN:
    case XAPI_VM_OPERATIONS_CLEAN_REBOOT:
    case XAPI_VM_OPERATIONS_PAUSE:
    case XAPI_VM_OPERATIONS_SUSPEND:
    case XAPI_VM_OPERATIONS_POOL_MIGRATE:
    case XAPI_VM_OPERATIONS_CHANGING_VCPUS_LIVE:
    case XAPI_VM_OPERATIONS_SEND_SYSRQ:
    case XAPI_VM_OPERATIONS_SEND_TRIGGER:
    case XAPI_VM_OPERATIONS_CALL_PLUGIN:
        return RUNNING;
    case XAPI_VM_OPERATIONS_UNPAUSE:
        return PAUSED;
    case XAPI_VM_OPERATIONS_HARD_REBOOT:
        return RUNNING | PAUSED;
    case XAPI_VM_OPERATIONS_HARD_SHUTDOWN:
    case XAPI_VM_OPERATIONS_SHUTDOWN:
        return RUNNING | PAUSED | SUSPENDED;
    case XAPI_VM_OPERATIONS_RESUME:
    case XAPI_VM_OPERATIONS_RESUME_ON:
        return SUSPENDED;
    case XAPI_VM_OPERATIONS_CHECKPOINT:
        return RUNNING | PAUSED | SUSPENDED;
    case XAPI_VM_OPERATIONS_CHANGING_DYNAMIC_RANGE:
        return HALTED | RUNNING;
    case XAPI_VM_OPERATIONS_MIGRATE_SEND:
        return HALTED | RUNNING | SUSPENDED;
    default:
        return ANY;
    }
}

/* Ops never advertised in allowed_operations (xapi's ocaml/xapi/xapi_vm_lifecycle.ml). */
static bool
advertised(enum xapi_vm_operations op)
{
    switch (op) {
    case XAPI_VM_OPERATIONS_CREATE_TEMPLATE:
    case XAPI_VM_OPERATIONS_POWER_STATE_RESET:
    case XAPI_VM_OPERATIONS_CSVM:
    case XAPI_VM_OPERATIONS_GET_BOOT_RECORD:
    case XAPI_VM_OPERATIONS_SEND_SYSRQ:
    case XAPI_VM_OPERATIONS_SEND_TRIGGER:
    case XAPI_VM_OPERATIONS_QUERY_SERVICES:
    case XAPI_VM_OPERATIONS_SHUTDOWN:
    case XAPI_VM_OPERATIONS_CALL_PLUGIN:
    case XAPI_VM_OPERATIONS_CHANGING_MEMORY_LIVE:
    case XAPI_VM_OPERATIONS_AWAITING_MEMORY_LIVE:
    case XAPI_VM_OPERATIONS_CHANGING_MEMORY_LIMITS:
    case XAPI_VM_OPERATIONS_CHANGING_SHADOW_MEMORY_LIVE:
    case XAPI_VM_OPERATIONS_CHANGING_VCPUS:
    case XAPI_VM_OPERATIONS_ASSERT_OPERATION_VALID:
    case XAPI_VM_OPERATIONS_DATA_SOURCE_OP:
    case XAPI_VM_OPERATIONS_UPDATE_ALLOWED_OPERATIONS:
    case XAPI_VM_OPERATIONS_IMPORT:
    case XAPI_VM_OPERATIONS_REVERTING:
        return false;
    default:
        return true;
    }
}

/* Operations this build can carry out; others are never advertised. */
static bool
implemented(enum xapi_vm_operations op)
{
    switch (op) {
    case XAPI_VM_OPERATIONS_START:
    case XAPI_VM_OPERATIONS_START_ON:
    case XAPI_VM_OPERATIONS_CLEAN_SHUTDOWN:
    case XAPI_VM_OPERATIONS_HARD_SHUTDOWN:
    case XAPI_VM_OPERATIONS_SHUTDOWN:
    case XAPI_VM_OPERATIONS_CLEAN_REBOOT:
    case XAPI_VM_OPERATIONS_HARD_REBOOT:
    case XAPI_VM_OPERATIONS_PAUSE:
    case XAPI_VM_OPERATIONS_UNPAUSE:
    case XAPI_VM_OPERATIONS_SUSPEND:
    case XAPI_VM_OPERATIONS_RESUME:
    case XAPI_VM_OPERATIONS_RESUME_ON:
    case XAPI_VM_OPERATIONS_CLONE:
    case XAPI_VM_OPERATIONS_COPY:
    case XAPI_VM_OPERATIONS_PROVISION:
    case XAPI_VM_OPERATIONS_DESTROY:
    case XAPI_VM_OPERATIONS_CHANGING_DYNAMIC_RANGE:
    case XAPI_VM_OPERATIONS_CHANGING_STATIC_RANGE:
    case XAPI_VM_OPERATIONS_CHANGING_MEMORY_LIMITS:
    case XAPI_VM_OPERATIONS_CHANGING_VCPUS:
    case XAPI_VM_OPERATIONS_CHANGING_VCPUS_LIVE:
    case XAPI_VM_OPERATIONS_MAKE_INTO_TEMPLATE:
    case XAPI_VM_OPERATIONS_SNAPSHOT:
    case XAPI_VM_OPERATIONS_REVERT:
        return true;
    default:
        return false;
    }
}

const char *
vm_power_state_lower(enum xapi_vm_power_state ps)
{
    static const char *const names[] = {"halted", "paused", "running", "suspended"};
    return (unsigned)ps < 4 ? names[ps] : "unknown";
}

static void
states_text(unsigned mask, char *out, size_t len)
{
    /* xapi lists expected states in this order */
    static const enum xapi_vm_power_state order[] = {
        XAPI_VM_POWER_STATE_PAUSED, XAPI_VM_POWER_STATE_SUSPENDED, XAPI_VM_POWER_STATE_RUNNING,
        XAPI_VM_POWER_STATE_HALTED};
    size_t off = 0;
    out[0] = '\0';
    for (size_t i = 0; i < 4 && off < len; i++)
        if (mask & (1u << order[i]))
            off += (size_t)snprintf(out + off, len - off, "%s%s", off ? ", " : "",
                                    vm_power_state_lower(order[i]));
}

/* Two operations that may run together (xapi's ocaml/xapi/xapi_vm_lifecycle.ml item 3). */
static bool
compatible(enum xapi_vm_operations running, enum xapi_vm_operations op)
{
#define IN(set, x) ((set) & (1ull << (x)))
    const unsigned long long copyish = (1ull << XAPI_VM_OPERATIONS_CLONE) |
                                       (1ull << XAPI_VM_OPERATIONS_COPY) |
                                       (1ull << XAPI_VM_OPERATIONS_EXPORT);
    const unsigned long long snapish = (1ull << XAPI_VM_OPERATIONS_SNAPSHOT) |
                                       (1ull << XAPI_VM_OPERATIONS_CHECKPOINT);
    if (IN(copyish, running) && IN(copyish, op))
        return true;
    if (IN(snapish, running) && IN(snapish, op))
        return true;
    if (op == XAPI_VM_OPERATIONS_HARD_SHUTDOWN)
        return running != XAPI_VM_OPERATIONS_HARD_SHUTDOWN;
    if (op == XAPI_VM_OPERATIONS_HARD_REBOOT)
        return running != XAPI_VM_OPERATIONS_HARD_SHUTDOWN &&
               running != XAPI_VM_OPERATIONS_HARD_REBOOT;
    return false;
#undef IN
}

/* What needs the guest's help (xapi_vm_lifecycle.ml check_op_for_feature):
 * a guest whose agent answers has every feature, as xapi's "has PV drivers";
 * without one a clean shutdown still has the ACPI power button (not on a
 * microvm with platform:acpi=0) and a clean reboot has nothing. vCPU hotplug
 * is the machine's: microvm has none. */
static bool
guest_features(const struct xapi_vm_record *vm, const char *ref, enum xapi_vm_operations op,
               struct xerr **errp)
{
    enum xenops_machine m;
    bool microvm = domains_machine(vm, &m) && m == XENOPS_MACHINE_MICROVM;
    if (op == XAPI_VM_OPERATIONS_CHANGING_VCPUS_LIVE && microvm)
        return xerr_operation_not_allowed(
            errp, "vCPU hotplug needs platform:machine pc or q35: microvm has no CPU hotplug");
    if (vm->power_state != XAPI_VM_POWER_STATE_RUNNING || vm->guest_agent)
        return true;
    if (op == XAPI_VM_OPERATIONS_CLEAN_REBOOT ||
        (op == XAPI_VM_OPERATIONS_CLEAN_SHUTDOWN && domains_no_acpi(vm)))
        return xerr_vm_lacks_feature(errp, ref);
    return true;
}

bool
vm_op_check(const struct xapi_vm_record *vm, const char *ref, enum xapi_vm_operations op,
            struct xerr **errp)
{
    const char *opname = xenum_name(&xapi_enum_vm_operations, (int)op);
    for (size_t i = 0; i < vm->blocked_operations.n; i++)
        if (vm->blocked_operations.keys[i] == op)
            return xerr_operation_blocked(errp, ref, vm->blocked_operations.values[i]);
    unsigned states = allowed_states(op);
    if (!(states & (1u << vm->power_state))) {
        char expected[64];
        states_text(states, expected, sizeof(expected));
        return xerr_vm_bad_power_state(errp, ref, expected, vm_power_state_lower(vm->power_state));
    }
    for (size_t i = 0; i < vm->current_operations.n; i++)
        if (!compatible(vm->current_operations.values[i], op))
            return xerr_other_operation_in_progress(errp, "VM", ref,
                              xenum_name(&xapi_enum_vm_operations,
                                         (int)vm->current_operations.values[i]),
                              vm->current_operations.keys[i]);
    if (!guest_features(vm, ref, op, errp))
        return false;
    if (vm->is_a_template && !vm->is_a_snapshot) {
        switch (op) {
        case XAPI_VM_OPERATIONS_CHANGING_DYNAMIC_RANGE:
        case XAPI_VM_OPERATIONS_CHANGING_STATIC_RANGE:
        case XAPI_VM_OPERATIONS_CHANGING_MEMORY_LIMITS:
        case XAPI_VM_OPERATIONS_CHANGING_SHADOW_MEMORY:
        case XAPI_VM_OPERATIONS_CHANGING_VCPUS:
        case XAPI_VM_OPERATIONS_CHANGING_NVRAM:
        case XAPI_VM_OPERATIONS_CLONE:
        case XAPI_VM_OPERATIONS_COPY:
        case XAPI_VM_OPERATIONS_EXPORT:
        case XAPI_VM_OPERATIONS_METADATA_EXPORT:
        case XAPI_VM_OPERATIONS_PROVISION:
            break;
        case XAPI_VM_OPERATIONS_DESTROY:
        case XAPI_VM_OPERATIONS_MIGRATE_SEND:
            if (!vm->is_default_template)
                break;
            if (op == XAPI_VM_OPERATIONS_DESTROY)
                return xerr_vm_cannot_delete_default_template(errp, ref);
            /* fall through */
        default:
            return xerr_vm_is_template(errp, ref, opname);
        }
    }
    if (vm->is_a_snapshot) {
        switch (op) {
        case XAPI_VM_OPERATIONS_REVERT:
        case XAPI_VM_OPERATIONS_CLONE:
        case XAPI_VM_OPERATIONS_COPY:
        case XAPI_VM_OPERATIONS_EXPORT:
        case XAPI_VM_OPERATIONS_DESTROY:
        case XAPI_VM_OPERATIONS_HARD_SHUTDOWN:
        case XAPI_VM_OPERATIONS_METADATA_EXPORT:
            break;
        default:
            return xerr_vm_is_snapshot(errp, ref, opname);
        }
    }
    if (op == XAPI_VM_OPERATIONS_PROVISION && !vm->is_a_template)
        return xerr_provision_only_allowed_on_template(errp);
    if (op == XAPI_VM_OPERATIONS_REVERT && !vm->is_a_snapshot)
        return xerr_revert_only_allowed_on_snapshot(errp);
    if ((op == XAPI_VM_OPERATIONS_SUSPEND || op == XAPI_VM_OPERATIONS_CHECKPOINT ||
         op == XAPI_VM_OPERATIONS_POOL_MIGRATE || op == XAPI_VM_OPERATIONS_MIGRATE_SEND) &&
        xmap_get_str((const struct xmap *)&vm->platform, "nomigrate") &&
        strcmp(xmap_get_str((const struct xmap *)&vm->platform, "nomigrate"), "true") == 0)
        return xerr_vm_is_immobile(errp, ref);
    if (vm->is_control_domain) {
        switch (op) {
        case XAPI_VM_OPERATIONS_DATA_SOURCE_OP:
        case XAPI_VM_OPERATIONS_CHANGING_MEMORY_LIVE:
        case XAPI_VM_OPERATIONS_AWAITING_MEMORY_LIVE:
        case XAPI_VM_OPERATIONS_METADATA_EXPORT:
        case XAPI_VM_OPERATIONS_CHANGING_DYNAMIC_RANGE:
        case XAPI_VM_OPERATIONS_CHANGING_MEMORY_LIMITS:
        case XAPI_VM_OPERATIONS_CHANGING_STATIC_RANGE:
            break;
        default:
            return xerr_operation_not_allowed(errp, "This operation is not allowed on a control domain");
        }
    }
    return true;
}

bool
vm_ops_refresh(struct xapi_vm_record *vm)
{
    enum xapi_vm_operations ops[64];
    size_t n = 0;
    for (size_t op = 0; op < xapi_enum_vm_operations.n_values && n < 64; op++) {
        if (!advertised(op) || !implemented(op))
            continue;
        if (vm_op_check(vm, "", op, NULL))
            ops[n++] = op;
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

struct op_change {
    const char *ref;
    const char *key;
    enum xapi_vm_operations op;
    bool begin;
    vm_op_claimed_fn *claimed;
    void *opaque;
};

static bool
apply_op(void *opaque, void *rec, struct xerr **errp)
{
    struct op_change *c = opaque;
    struct xapi_vm_record *vm = rec;
    struct xapi_string_vm_operations_map *m = &vm->current_operations;
    if (c->begin) {
        if (!vm_op_check(vm, c->ref, c->op, errp))
            return false;
        if (c->claimed)
            c->claimed(c->opaque, vm);
        char **keys = realloc(m->keys, (m->n + 1) * sizeof(char *));
        if (!keys)
            return xerr_nomem(errp);
        m->keys = keys;
        enum xapi_vm_operations *values = realloc(m->values, (m->n + 1) * sizeof(*values));
        if (!values)
            return xerr_nomem(errp);
        m->values = values;
        if (!(keys[m->n] = strdup(c->key)))
            return xerr_nomem(errp);
        values[m->n++] = c->op;
    } else {
        xmap_remove_key(&xapi_type_string_vm_operations_map, (struct xmap *)m, c->key);
    }
    return vm_ops_refresh(vm) || xerr_nomem(errp);
}

/* The key an operation is recorded under: the task of an Async call, else a
 * fresh unique string (xapi makes a task for sync calls too). */
void
vm_op_key(const struct call_ctx *ctx, char *out, size_t len)
{
    if (ctx->task) {
        snprintf(out, len, "%s", ctx->task);
        return;
    }
    char *ref = db_new_ref();
    snprintf(out, len, "%s", ref ? ref : "OpaqueRef:sync");
    free(ref);
}

bool
vm_op_begin(struct db *db, const char *vm, enum xapi_vm_operations op, const char *key,
            struct xerr **errp)
{
    return vm_op_begin_then(db, vm, op, key, NULL, NULL, errp);
}

bool
vm_op_begin_then(struct db *db, const char *vm, enum xapi_vm_operations op, const char *key,
                 vm_op_claimed_fn *claimed, void *opaque, struct xerr **errp)
{
    struct op_change c = {vm, key, op, true, claimed, opaque};
    return db_update(db, &xapi_class_vm, vm, apply_op, &c, errp);
}

struct op_find {
    const char *key;
    bool found;
};

static void
peek_op(void *opaque, const void *rec)
{
    struct op_find *f = opaque;
    const struct xapi_string_vm_operations_map *m =
        &((const struct xapi_vm_record *)rec)->current_operations;
    for (size_t i = 0; i < m->n && !f->found; i++)
        f->found = strcmp(m->keys[i], f->key) == 0;
}

void
vm_op_end(struct db *db, const char *vm, const char *key)
{
    struct op_find f = {key, false};
    if (!db_with(db, &xapi_class_vm, vm, peek_op, &f, NULL) || !f.found)
        return; /* ended with the operation's record (vm_op_end_in_batch) */
    struct op_change c = {vm, key, 0, false, NULL, NULL};
    db_update(db, &xapi_class_vm, vm, apply_op, &c, NULL);
}

bool
vm_op_end_in_batch(struct db *db, const char *vm, const char *key, struct xerr **errp)
{
    struct op_change c = {vm, key, 0, false, NULL, NULL};
    return db_update(db, &xapi_class_vm, vm, apply_op, &c, errp);
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

static bool
vm_after_write(void *rec, struct xerr **errp)
{
    return vm_ops_refresh(rec) || xerr_nomem(errp);
}

void
vm_ops_register(void)
{
    rpc_implicit_after_write(&xapi_class_vm, vm_after_write);
}
