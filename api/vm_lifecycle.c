/* api/vm_lifecycle.c - VM power operations with xapi's semantics (xapi's ocaml/xapi/xapi_vm_lifecycle.ml).
 *
 * Every operation runs the same way:
 *   1. vm_op_begin: check the operation against state, templates, other
 *      operations (vm_ops.c) and record it in current_operations - one commit;
 *   2. do the work through the domain manager (api/domains.c), without locks;
 *   3. record the outcome (power_state, domid, resident_on, metrics,
 *      consoles, devices attached) in one batch, and vm_op_end.
 * A guest that changes by itself (powers off, reboots, crashes) reaches
 * vm_lifecycle_on_domain_event, which applies the VM's actions_after_* the same
 * way. Entering Halted resets the running state (xapi's ocaml/xapi/xapi_vm_lifecycle.ml).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/disk_servers.h"
#include "api/domains.h"
#include "api/host_owns.h"
#include "api/guest_metrics.h"
#include "api/net_api.h"
#include "api/placement.h"
#include "api/pool_live.h"
#include "api/vm_migrate.h"
#include "api/vm_ops.h"
#include "common/log.h"
#include "db/db.h"
#include "rpc/ctx.h"
#include "rpc/task.h"
#include "xapi_handlers.h"
#include "xapi_errors.h"

#define NULL_REF "OpaqueRef:NULL"

/* ------------------------------------------------------------------ recording states */

struct running_state {
    struct server *srv;
    enum xapi_vm_power_state ps;
    int64_t domid;
};

static bool
apply_power_state(void *opaque, void *rec, struct xerr **errp)
{
    struct running_state *st = opaque;
    struct xapi_vm_record *vm = rec;
    vm->power_state = st->ps;
    if (st->ps == XAPI_VM_POWER_STATE_HALTED || st->ps == XAPI_VM_POWER_STATE_SUSPENDED) {
        vm->domid = -1;
        vm->guest_agent = false; /* its guest metrics go (record_power_state) */
        if (!xstr_set(&vm->guest_metrics, NULL_REF))
            return xerr_nomem(errp);
        if (!xstr_set(&vm->resident_on, NULL_REF) ||
            !xstr_set(&vm->scheduled_to_be_resident_on, NULL_REF))
            return xerr_nomem(errp);
        vm->requires_reboot = false;
    } else {
        if (st->domid >= 0)
            vm->domid = st->domid;
        /* a simulated guest has every feature, as xapi treats a PV guest;
         * a real one has the agent's once it answers (api/guest_metrics.c) */
        if (!strcmp(domains_backend_name(st->srv->domains), "sim"))
            vm->guest_agent = true;
        if (!xstr_set(&vm->resident_on, st->srv->host_ref))
            return xerr_nomem(errp);
    }
    return vm_ops_refresh(vm) || xerr_nomem(errp);
}

struct metrics_state {
    enum xapi_vm_power_state ps;
    int64_t memory;
    int64_t vcpus;
    bool started;
};

static bool
apply_metrics(void *opaque, void *rec, struct xerr **errp)
{
    struct metrics_state *m = opaque;
    struct xapi_vm_metrics_record *vmm = rec;
    bool halted = m->ps == XAPI_VM_POWER_STATE_HALTED || m->ps == XAPI_VM_POWER_STATE_SUSPENDED;
    vmm->memory_actual = halted ? 0 : m->memory;
    vmm->VCPUs_number = halted ? 0 : m->vcpus;
    if (m->started)
        vmm->start_time = time(NULL);
    vmm->last_updated = time(NULL);
    xtype_value_clear(&xapi_type_string_set, &vmm->state);
    const char *state = halted ? "halted" : m->ps == XAPI_VM_POWER_STATE_PAUSED ? "paused" : "running";
    return xset_add_str((struct xset *)&vmm->state, state) == 0 || xerr_nomem(errp);
}

static bool
apply_device_attached(void *opaque, void *rec, struct xerr **errp)
{
    /* VBD and VIF both have currently_attached as a bool at a known field */
    const struct xfield *f = ((const struct xfield *const *)opaque)[0];
    bool value = *((const bool *const *)opaque)[1];
    *(bool *)xrecord_field_ptr(rec, f) = value;
    (void)errp;
    return true;
}

static bool
set_devices_attached(struct db *db, const struct xclass *cls, const struct xapi_ref_set *refs,
                     bool attached, struct xerr **errp)
{
    const struct xfield *f = xclass_field(cls, "currently_attached");
    const void *args[2] = {f, &attached};
    for (size_t i = 0; i < refs->n; i++)
        if (db_exists(db, cls, refs->items[i]) &&
            !db_update(db, cls, refs->items[i], apply_device_attached, args, errp))
            return false;
    return true;
}

static bool
create_consoles(struct server *srv, const char *vm_ref, const struct xapi_vm_record *vm,
                struct xerr **errp)
{
    char *address = NULL;
    struct xapi_host_record *host = NULL;
    if (db_get(srv->db, &xapi_class_host, srv->host_ref, (void **)&host, NULL))
        address = strdup(host->address);
    xapi_host_record_free(host);
    for (int proto = 0; proto < 2; proto++) {
        struct xapi_console_record *c = xapi_console_record_new();
        char *ref = db_new_ref();
        char loc[300];
        snprintf(loc, sizeof(loc), "https://%s/console?ref=%s", address ? address : "127.0.0.1",
                 ref ? ref : "");
        if (!c || !ref || !xstr_set(&c->location, loc) || !xstr_set(&c->VM, vm_ref)) {
            xapi_console_record_free(c);
            free(ref);
            free(address);
            return xerr_nomem(errp);
        }
        c->protocol = proto == 0 ? XAPI_CONSOLE_PROTOCOL_RFB : XAPI_CONSOLE_PROTOCOL_VT100;
        bool ok = db_create(srv->db, &xapi_class_console, ref, c, NULL, errp);
        free(ref);
        if (!ok) {
            free(address);
            return false;
        }
    }
    free(address);
    (void)vm;
    return true;
}

static bool
destroy_consoles(struct db *db, const struct xapi_ref_set *consoles, struct xerr **errp)
{
    for (size_t i = 0; i < consoles->n; i++)
        if (db_exists(db, &xapi_class_console, consoles->items[i]) &&
            !db_destroy(db, &xapi_class_console, consoles->items[i], errp))
            return false;
    return true;
}

static void
vbd_drive_peek(void *opaque, const void *rec)
{
    const struct xapi_vbd_record *b = rec;
    *(bool *)opaque = b->empty || strcmp(b->VDI, "OpaqueRef:NULL") == 0;
}

/* A running VM's VBD is attached when its disk server runs (an unplugged one
 * stays unplugged across a pause or an in-place reboot); an empty drive is
 * there while the VM runs. */
static bool
vbd_set_attached(struct server *srv, const char *vm_uuid, const char *vbd, bool running,
                 struct xerr **errp)
{
    bool empty = false;
    if (!db_exists(srv->db, &xapi_class_vbd, vbd))
        return true; /* destroyed meanwhile: nothing to record */
    if (!db_with(srv->db, &xapi_class_vbd, vbd, vbd_drive_peek, &empty, errp))
        return false;
    bool attached = running && (empty || disk_servers_slot(srv, vm_uuid, vbd) >= 0);
    struct xapi_ref_set one = {.n = 1, .items = (char **)&vbd};
    return set_devices_attached(srv->db, &xapi_class_vbd, &one, attached, errp);
}

/* Records @ps for @vm_ref with everything that goes with it, in one batch;
 * with @op_key (not NULL) the operation of that key ends in the same commit. */
static bool
record_power_state(struct server *srv, const char *vm_ref, enum xapi_vm_power_state ps,
                   int64_t domid, bool started, const char *op_key, struct xerr **errp)
{
    struct xapi_vm_record *vm = NULL;
    if (!db_get(srv->db, &xapi_class_vm, vm_ref, (void **)&vm, errp))
        return false;
    bool running = ps == XAPI_VM_POWER_STATE_RUNNING || ps == XAPI_VM_POWER_STATE_PAUSED;
    db_batch_begin(srv->db);
    struct running_state st = {srv, ps, domid};
    struct metrics_state ms = {ps, vm->memory_dynamic_max, vm->VCPUs_at_startup, started};
    bool ok = running || guest_metrics_forget(srv, vm, errp);
    ok = ok && db_update(srv->db, &xapi_class_vm, vm_ref, apply_power_state, &st, errp);
    if (ok && db_exists(srv->db, &xapi_class_vm_metrics, vm->metrics))
        ok = db_update(srv->db, &xapi_class_vm_metrics, vm->metrics, apply_metrics, &ms, errp);
    for (size_t i = 0; ok && i < vm->VBDs.n; i++)
        ok = vbd_set_attached(srv, vm->uuid, vm->VBDs.items[i], running, errp);
    /* VIFs through the network API: it keeps their allowed_operations too */
    for (size_t i = 0; ok && i < vm->VIFs.n; i++)
        ok = net_vif_set_attached(srv, vm->VIFs.items[i], running, errp);
    if (ok && !running) {
        ok = destroy_consoles(srv->db, &vm->consoles, errp);
        domains_detach_nics(srv, vm); /* vm still holds the old domid */
    }
    if (ok && running && vm->consoles.n == 0)
        ok = create_consoles(srv, vm_ref, vm, errp);
    if (ok && op_key) /* one commit for the outcome and the operation's end */
        ok = vm_op_end_in_batch(srv->db, vm_ref, op_key, errp);
    xapi_vm_record_free(vm);
    return db_batch_end(srv->db, ok, errp);
}

bool
vm_lifecycle_record_migrated(struct server *srv, const char *vm_ref, int64_t domid,
                             struct xerr **errp)
{
    struct xapi_vm_record *vm = NULL;
    if (!db_get(srv->db, &xapi_class_vm, vm_ref, (void **)&vm, errp))
        return false;
    /* the consoles name the old host's address: record_power_state makes
     * this host's once there are none */
    bool ok = destroy_consoles(srv->db, &vm->consoles, errp) &&
              record_power_state(srv, vm_ref, vm->power_state, domid, false, NULL, errp);
    xapi_vm_record_free(vm);
    return ok;
}

/* ------------------------------------------------------------------ checks */

static bool
check_memory(const struct xapi_vm_record *vm, struct xerr **errp)
{
    if (!(vm->memory_static_min <= vm->memory_dynamic_min &&
          vm->memory_dynamic_min <= vm->memory_dynamic_max &&
          vm->memory_dynamic_max <= vm->memory_static_max))
        return xerr_memory_constraint_violation(
            errp, "memory_static_min <= memory_dynamic_min <= memory_dynamic_max <= memory_static_max");
    if (vm->memory_dynamic_max <= 0 || vm->VCPUs_at_startup <= 0)
        return xerr_value_not_supported(errp, "memory_dynamic_max",
                          "0", "a VM needs memory and at least one vCPU");
    return true;
}

/* ------------------------------------------------------------------ operations */

/* What one power operation does once it is recorded in current_operations:
 * the work on the domain and the new state, given the VM as it was. */
struct power_op {
    enum xapi_vm_operations op;
    bool paused;      /* start/resume: paused afterwards */
    bool clean;       /* stop/reboot: ask the guest */
    bool try_clean;   /* VM.shutdown: clean, and hard when that fails */
    const char *host; /* VM.pool_migrate: the destination */
    const char *key;  /* run_power_op's current_operations key: the work's
                         record_power_state ends the operation with its outcome */
    bool (*work)(struct call_ctx *ctx, const char *ref, const struct xapi_vm_record *vm,
                 const struct power_op *p, struct xerr **errp);
};

/* ------------------------------------------------------------------ hard overrides clean */

/* The operations a hard shutdown or reboot cancels and waits out before it
 * acts (xapi's message_forwarding.ml VM.hard_shutdown / hard_reboot): that is
 * how an administrator gets rid of a guest that ignores its power button. */
static bool
overridden_by(enum xapi_vm_operations hard, enum xapi_vm_operations running)
{
    switch (running) {
    case XAPI_VM_OPERATIONS_CLEAN_SHUTDOWN:
    case XAPI_VM_OPERATIONS_CLEAN_REBOOT:
    case XAPI_VM_OPERATIONS_POOL_MIGRATE:
    case XAPI_VM_OPERATIONS_CALL_PLUGIN:
    case XAPI_VM_OPERATIONS_SUSPEND:
        return true;
    case XAPI_VM_OPERATIONS_HARD_REBOOT:
    case XAPI_VM_OPERATIONS_SHUTDOWN:
        return hard == XAPI_VM_OPERATIONS_HARD_SHUTDOWN;
    default:
        return false;
    }
}

struct overridden {
    enum xapi_vm_operations hard;
    const char *own_key;
    char uuid[37];
    char *keys[16];
    size_t n;
};

static void
peek_overridden(void *opaque, const void *rec)
{
    struct overridden *o = opaque;
    const struct xapi_vm_record *vm = rec;
    snprintf(o->uuid, sizeof(o->uuid), "%s", vm->uuid);
    o->n = 0;
    for (size_t i = 0; i < vm->current_operations.n && o->n < 16; i++)
        if (overridden_by(o->hard, vm->current_operations.values[i]) &&
            strcmp(vm->current_operations.keys[i], o->own_key) != 0 &&
            (o->keys[o->n] = strdup(vm->current_operations.keys[i])))
            o->n++;
}

static void
overridden_release(struct overridden *o)
{
    for (size_t i = 0; i < o->n; i++)
        free(o->keys[i]);
    o->n = 0;
}

#define OVERRIDE_WAIT_MS 10000

/* Cancels the operations @hard overrides on @vm_ref and waits (at most
 * OVERRIDE_WAIT_MS) until they have ended, each failing with
 * TASK_CANCELLED. Their tasks are marked cancelling; their waits for the
 * guest end at once (domains_cancel_waits). */
static void
cancel_overridden(struct call_ctx *ctx, const char *vm_ref, enum xapi_vm_operations hard,
                  const char *own_key)
{
    struct overridden o = {.hard = hard, .own_key = own_key};
    if (!db_with(ctx->db, &xapi_class_vm, vm_ref, peek_overridden, &o, NULL) || o.n == 0)
        return;
    for (size_t i = 0; i < o.n; i++) {
        if (db_exists(ctx->db, &xapi_class_task, o.keys[i]))
            task_request_cancel(ctx->srv, o.keys[i]);
        log_info("vm.override", "vm=%s op=%s cancels=%s", o.uuid,
                 xenum_name(&xapi_enum_vm_operations, (int)hard), o.keys[i]);
    }
    domains_cancel_waits(ctx->srv, o.uuid);
    for (unsigned waited = 0; waited < OVERRIDE_WAIT_MS; waited += 10) {
        struct overridden now = {.hard = hard, .own_key = own_key};
        if (!db_with(ctx->db, &xapi_class_vm, vm_ref, peek_overridden, &now, NULL))
            break;
        bool pending = false;
        for (size_t i = 0; i < now.n && !pending; i++)
            for (size_t j = 0; j < o.n && !pending; j++)
                pending = strcmp(now.keys[i], o.keys[j]) == 0;
        overridden_release(&now);
        if (!pending)
            break;
        domains_cancel_waits(ctx->srv, o.uuid); /* one that began to wait after the first */
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
    overridden_release(&o);
}

struct task_op_find {
    const char *task;
    char uuid[37];
    bool found;
};

static bool
find_task_op(void *opaque, const char *ref, const void *rec)
{
    struct task_op_find *f = opaque;
    const struct xapi_vm_record *vm = rec;
    for (size_t i = 0; i < vm->current_operations.n && !f->found; i++)
        if (strcmp(vm->current_operations.keys[i], f->task) == 0) {
            snprintf(f->uuid, sizeof(f->uuid), "%s", vm->uuid);
            f->found = true;
        }
    return !f->found;
}

void
vm_lifecycle_cancel_task(struct server *srv, const char *task)
{
    struct task_op_find f = {.task = task};
    db_foreach(srv->db, &xapi_class_vm, find_task_op, &f);
    if (f.found)
        domains_cancel_waits(srv, f.uuid);
}

/* A hard shutdown of a VM that nothing else is being done to sends SIGKILL
 * inside its claim's update (vm_op_begin_then): the check, the claim and the
 * kill are one step for every other writer of the database (a domain event
 * that reads the VM finds the claim, and leaves the outcome to it), and the
 * claim's write to the store overlaps the kernel's teardown of qemu instead
 * of coming before it. With an operation in progress the kill waits until
 * that one has been cancelled and has ended (cancel_overridden): killed
 * first, a clean shutdown waiting for its guest would take the exit for its
 * own success. On a pool's shared store the old order stays too: there a
 * commit may lose to another host's or wait out an outage, and a VM killed
 * by a call that then fails would be taken for a guest that halted by
 * itself (actions_after_shutdown may restart it). On the local store a
 * commit fails only when its disk does. */
static void
kill_if_idle(void *opaque, const struct xapi_vm_record *vm)
{
    if (vm->current_operations.n == 0 && (vm->power_state == XAPI_VM_POWER_STATE_RUNNING ||
                                          vm->power_state == XAPI_VM_POWER_STATE_PAUSED))
        domains_kill(opaque, vm->uuid);
}

/* Every operation runs the same way (file header): record it, work, record
 * the outcome, forget it. */
static bool
run_power_op(struct call_ctx *ctx, const char *vm_ref, const char *host,
             const struct power_op *p, struct xerr **errp)
{
    if (host && strcmp(host, ctx->srv->host_ref) != 0) {
        if (!db_exists(ctx->db, &xapi_class_host, host))
            return xerr_handle_invalid(errp, "host", host);
        /* rpc/dispatch.c forwarded a call for another host there; one that
         * reaches this far came from another host and is not ours to run */
        return xerr_host_offline(errp, host);
    }
    char key[64];
    uint64_t t0 = log_clock_us();
    vm_op_key(ctx, key, sizeof(key));
    bool hard_stop = p->op == XAPI_VM_OPERATIONS_HARD_SHUTDOWN && !db_is_shared(ctx->db);
    if (!vm_op_begin_then(ctx->db, vm_ref, p->op, key, hard_stop ? kill_if_idle : NULL, ctx->srv,
                          errp))
        return false;
    if (p->op == XAPI_VM_OPERATIONS_HARD_SHUTDOWN || p->op == XAPI_VM_OPERATIONS_HARD_REBOOT)
        cancel_overridden(ctx, vm_ref, p->op, key);
    struct xapi_vm_record *vm = NULL;
    bool ok = db_get(ctx->db, &xapi_class_vm, vm_ref, (void **)&vm, errp);
    uint64_t t1 = log_clock_us();
    struct power_op keyed = *p;
    keyed.key = key;
    ok = ok && p->work(ctx, vm_ref, vm, &keyed, errp);
    uint64_t t2 = log_clock_us();
    if (ok)
        log_info("vm.power", "vm=%s op=%s", vm->uuid,
                 xenum_name(&xapi_enum_vm_operations, (int)p->op));
    vm_op_end(ctx->db, vm_ref, key);
    /* the steps of the call (bench/guests/api_bench.py, destroy_bench.py) */
    log_debug("vm.power_steps", "vm=%s op=%s ok=%d begin_ms=%.2f work_ms=%.2f end_ms=%.2f",
              vm ? vm->uuid : "?", xenum_name(&xapi_enum_vm_operations, (int)p->op), ok,
              (double)(t1 - t0) / 1e3, (double)(t2 - t1) / 1e3,
              (double)(log_clock_us() - t2) / 1e3);
    xapi_vm_record_free(vm);
    return ok;
}

static enum xapi_vm_power_state
live_state(bool paused)
{
    return paused ? XAPI_VM_POWER_STATE_PAUSED : XAPI_VM_POWER_STATE_RUNNING;
}

static bool
start_work(struct call_ctx *ctx, const char *ref, const struct xapi_vm_record *vm,
           const struct power_op *p, struct xerr **errp)
{
    int64_t domid = -1;
    uint64_t t0 = log_clock_us();
    if (!check_memory(vm, errp) ||
        !placement_admit(ctx->srv, ref, vm->memory_dynamic_max, errp))
        return false;
    if (!domains_start(ctx->srv, ref, vm, p->paused, &domid, errp)) {
        placement_release(ref);
        return false;
    }
    uint64_t t1 = log_clock_us();
    bool ok = record_power_state(ctx->srv, ref, live_state(p->paused), domid, true, p->key, errp);
    placement_release(ref); /* resident_on counts it now, or it did not start */
    if (ok) {
        log_debug("vm.start_steps", "vm=%s domain_ms=%.2f record_ms=%.2f", vm->uuid,
                  (double)(t1 - t0) / 1e3, (double)(log_clock_us() - t1) / 1e3);
        return true;
    }
    domains_stop(ctx->srv, vm->uuid, false, NULL); /* no guest that the records do not show */
    return false;
}

static void suspend_path(struct server *srv, const char *uuid, char *out, size_t len);

/* A stop's outcome, recorded once qemu has exited: by a hard stop while the
 * domain's clean-up goes on (domains_stop_then), else after it. */
struct halting {
    struct call_ctx *ctx;
    const char *ref;
    const struct xapi_vm_record *vm;
    const struct power_op *p;
    bool recorded, ok;
    struct xerr *err;
};

static void
record_halted(void *opaque)
{
    struct halting *h = opaque;
    uint64_t t0 = log_clock_us();
    /* its taps go now, beside the records' commit (record_power_state's own
     * call then finds them going) */
    domains_detach_nics(h->ctx->srv, h->vm);
    h->ok = record_power_state(h->ctx->srv, h->ref, XAPI_VM_POWER_STATE_HALTED, -1, false,
                               h->p->key, &h->err);
    h->recorded = true;
    if (h->ok)
        log_debug("vm.stop_steps", "vm=%s op=%s record_ms=%.2f", h->vm->uuid,
                  xenum_name(&xapi_enum_vm_operations, (int)h->p->op),
                  (double)(log_clock_us() - t0) / 1e3);
}

static bool
stop_work(struct call_ctx *ctx, const char *ref, const struct xapi_vm_record *vm,
          const struct power_op *p, struct xerr **errp)
{
    bool ok = true;
    struct halting h = {ctx, ref, vm, p, false, false, NULL};
    if (vm->power_state != XAPI_VM_POWER_STATE_SUSPENDED) {
        if (p->try_clean) {
            struct xerr *clean_err = NULL;
            if (vm->power_state != XAPI_VM_POWER_STATE_RUNNING ||
                !domains_stop(ctx->srv, vm->uuid, true, &clean_err)) {
                if (clean_err && strcmp(clean_err->code, "TASK_CANCELLED") == 0) {
                    /* overridden by a hard shutdown: that one halts the guest */
                    xerr_free(clean_err);
                    return xerr_task_cancelled(errp, "OpaqueRef:NULL");
                }
                ok = domains_stop_then(ctx->srv, vm->uuid, record_halted, &h, errp);
            }
            xerr_free(clean_err);
        } else if (p->clean) {
            ok = domains_stop(ctx->srv, vm->uuid, true, errp);
        } else {
            ok = domains_stop_then(ctx->srv, vm->uuid, record_halted, &h, errp);
        }
    }
    /* recorded already: qemu exited and the records say so; should the
     * domain's clean-up after have failed, its error is the call's */
    if (!h.recorded && ok) {
        if (vm->power_state == XAPI_VM_POWER_STATE_SUSPENDED) {
            /* its memory image goes, as xapi destroys the suspend VDI (a
             * checkpoint keeps its own name of a shared image) */
            char path[512];
            suspend_path(ctx->srv, vm->uuid, path, sizeof(path));
            unlink(path);
        }
        record_halted(&h);
    }
    if (ok && !h.ok)
        xerr_propagate(errp, &h.err);
    xerr_free(h.err);
    return ok && h.ok;
}

static bool
reboot_work(struct call_ctx *ctx, const char *ref, const struct xapi_vm_record *vm,
            const struct power_op *p, struct xerr **errp)
{
    return domains_reboot(ctx->srv, vm->uuid, p->clean, errp) &&
           record_power_state(ctx->srv, ref, XAPI_VM_POWER_STATE_RUNNING, -1, true, p->key, errp);
}

static bool
pause_work(struct call_ctx *ctx, const char *ref, const struct xapi_vm_record *vm,
           const struct power_op *p, struct xerr **errp)
{
    bool pause = p->op == XAPI_VM_OPERATIONS_PAUSE;
    return domains_pause(ctx->srv, vm->uuid, pause, errp) &&
           record_power_state(ctx->srv, ref, live_state(pause), -1, false, p->key, errp);
}

/* Suspend images live in DATA/suspend/<vm uuid>.img: the memory image is a
 * file of the host, not yet a VDI on the suspend SR. */
static void
suspend_path(struct server *srv, const char *uuid, char *out, size_t len)
{
    snprintf(out, len, "%s/suspend/%s.img", srv->data_dir, uuid);
}

static bool
suspend_work(struct call_ctx *ctx, const char *ref, const struct xapi_vm_record *vm,
             const struct power_op *p, struct xerr **errp)
{
    char path[512];
    suspend_path(ctx->srv, vm->uuid, path, sizeof(path));
    return domains_suspend(ctx->srv, vm->uuid, path, errp) &&
           record_power_state(ctx->srv, ref, XAPI_VM_POWER_STATE_SUSPENDED, -1, false, p->key,
                              errp);
}

static bool
resume_work(struct call_ctx *ctx, const char *ref, const struct xapi_vm_record *vm,
            const struct power_op *p, struct xerr **errp)
{
    char path[512];
    int64_t domid = -1;
    /* a suspended VM holds no memory: it needs room again, as a start does
     * (xapi's resume checks the host as its start) */
    if (!placement_admit(ctx->srv, ref, vm->memory_dynamic_max, errp))
        return false;
    suspend_path(ctx->srv, vm->uuid, path, sizeof(path));
    bool ok = domains_resume(ctx->srv, ref, vm, path, p->paused, &domid, errp) &&
              record_power_state(ctx->srv, ref, live_state(p->paused), domid, false, p->key, errp);
    placement_release(ref); /* resident_on counts it now, or it did not resume */
    return ok;
}

bool
api_vm_start(struct call_ctx *ctx, const char *vm, bool start_paused, bool force,
             struct xerr **errp)
{
    struct power_op p = {.op = XAPI_VM_OPERATIONS_START, .paused = start_paused, .work = start_work};
    (void)force;
    return run_power_op(ctx, vm, NULL, &p, errp);
}

bool
api_vm_start_on(struct call_ctx *ctx, const char *vm, const char *host, bool start_paused,
                bool force, struct xerr **errp)
{
    struct power_op p = {.op = XAPI_VM_OPERATIONS_START_ON, .paused = start_paused,
                         .work = start_work};
    (void)force;
    return run_power_op(ctx, vm, host, &p, errp);
}

bool
api_vm_clean_shutdown(struct call_ctx *ctx, const char *vm, struct xerr **errp)
{
    struct power_op p = {.op = XAPI_VM_OPERATIONS_CLEAN_SHUTDOWN, .clean = true, .work = stop_work};
    return run_power_op(ctx, vm, NULL, &p, errp);
}

bool
api_vm_hard_shutdown(struct call_ctx *ctx, const char *vm, struct xerr **errp)
{
    struct power_op p = {.op = XAPI_VM_OPERATIONS_HARD_SHUTDOWN, .work = stop_work};
    return run_power_op(ctx, vm, NULL, &p, errp);
}

bool
api_vm_shutdown(struct call_ctx *ctx, const char *vm, struct xerr **errp)
{
    struct power_op p = {.op = XAPI_VM_OPERATIONS_SHUTDOWN, .try_clean = true, .work = stop_work};
    return run_power_op(ctx, vm, NULL, &p, errp);
}

bool
api_vm_clean_reboot(struct call_ctx *ctx, const char *vm, struct xerr **errp)
{
    struct power_op p = {.op = XAPI_VM_OPERATIONS_CLEAN_REBOOT, .clean = true, .work = reboot_work};
    return run_power_op(ctx, vm, NULL, &p, errp);
}

bool
api_vm_hard_reboot(struct call_ctx *ctx, const char *vm, struct xerr **errp)
{
    struct power_op p = {.op = XAPI_VM_OPERATIONS_HARD_REBOOT, .work = reboot_work};
    return run_power_op(ctx, vm, NULL, &p, errp);
}

bool
api_vm_pause(struct call_ctx *ctx, const char *vm, struct xerr **errp)
{
    struct power_op p = {.op = XAPI_VM_OPERATIONS_PAUSE, .work = pause_work};
    return run_power_op(ctx, vm, NULL, &p, errp);
}

bool
api_vm_unpause(struct call_ctx *ctx, const char *vm, struct xerr **errp)
{
    struct power_op p = {.op = XAPI_VM_OPERATIONS_UNPAUSE, .work = pause_work};
    return run_power_op(ctx, vm, NULL, &p, errp);
}

bool
api_vm_suspend(struct call_ctx *ctx, const char *vm, struct xerr **errp)
{
    struct power_op p = {.op = XAPI_VM_OPERATIONS_SUSPEND, .work = suspend_work};
    return run_power_op(ctx, vm, NULL, &p, errp);
}

bool
api_vm_resume(struct call_ctx *ctx, const char *vm, bool start_paused, bool force,
              struct xerr **errp)
{
    struct power_op p = {.op = XAPI_VM_OPERATIONS_RESUME, .paused = start_paused,
                         .work = resume_work};
    (void)force;
    return run_power_op(ctx, vm, NULL, &p, errp);
}

bool
api_vm_resume_on(struct call_ctx *ctx, const char *vm, const char *host, bool start_paused,
                 bool force, struct xerr **errp)
{
    struct power_op p = {.op = XAPI_VM_OPERATIONS_RESUME_ON, .paused = start_paused,
                         .work = resume_work};
    (void)force;
    return run_power_op(ctx, vm, host, &p, errp);
}

/* VM.pool_migrate's work: the VM moves to a new domain and stays Running
 * (or Paused) in the record throughout; only the domid and the consoles'
 * host change. */
static bool
migrate_work(struct call_ctx *ctx, const char *ref, const struct xapi_vm_record *vm,
             const struct power_op *p, struct xerr **errp)
{
    int64_t domid = -1;
    bool lost = false;
    const char *host = p->host;
    if (host && strcmp(host, ctx->srv->host_ref) != 0) {
        /* the destination recorded the VM as its own when it continued it */
        if (vm_migrate_pool(ctx, ref, vm, host, &lost, errp))
            return true;
        if (lost)
            record_power_state(ctx->srv, ref, XAPI_VM_POWER_STATE_HALTED, -1, false, NULL, NULL);
        return false;
    }
    if (!vm_migrate_local(ctx, ref, vm, &domid, &lost, errp)) {
        if (lost) /* its source went before its destination failed */
            record_power_state(ctx->srv, ref, XAPI_VM_POWER_STATE_HALTED, -1, false, NULL, NULL);
        return false;
    }
    /* the new domain has its own taps (api/vif.c names them by domid) */
    return record_power_state(ctx->srv, ref, vm->power_state, domid, false, p->key, errp);
}

bool
api_vm_pool_migrate(struct call_ctx *ctx, const char *vm_ref, const char *host,
                    const struct xapi_string_string_map *options, struct xerr **errp)
{
    (void)options; /* xapi's "force" skips CPU checks, "network" picks the link: one host */
    struct xapi_vm_record *vm = NULL;
    if (!db_get(ctx->db, &xapi_class_vm, vm_ref, (void **)&vm, errp))
        return false;
    bool ok = vm_migrate_check(ctx, vm_ref, vm, host, errp);
    xapi_vm_record_free(vm);
    struct power_op p = {.op = XAPI_VM_OPERATIONS_POOL_MIGRATE, .host = host,
                         .work = migrate_work};
    return ok && run_power_op(ctx, vm_ref, NULL, &p, errp);
}

bool
api_vm_assert_can_migrate(struct call_ctx *ctx, const char *vm_ref,
                          const struct xapi_string_string_map *dest, bool live,
                          const struct xapi_ref_ref_map *vdi_map,
                          const struct xapi_ref_ref_map *vif_map,
                          const struct xapi_string_string_map *options,
                          const struct xapi_ref_ref_map *vgpu_map, struct xerr **errp)
{
    (void)live, (void)vdi_map, (void)vif_map, (void)options, (void)vgpu_map;
    /* dest is host.migrate_receive's answer: its "host" key names the
     * destination host (xapi_vm_migrate.ml _host); a host of this pool means
     * an intra-pool migration, what pool_migrate does */
    const char *host = xmap_get_str((const struct xmap *)dest, "host");
    if (!host)
        return xerr_value_not_supported(errp, "dest", "", "dest must name the destination "
                                        "host under the key \"host\" (host.migrate_receive)");
    if (!db_exists(ctx->db, &xapi_class_host, host))
        return xerr_operation_not_allowed(errp, "migration to another pool (a host this pool "
                                          "does not know) is not built");
    struct xapi_vm_record *vm = NULL;
    if (!db_get(ctx->db, &xapi_class_vm, vm_ref, (void **)&vm, errp))
        return false;
    bool ok = vm_migrate_check(ctx, vm_ref, vm, host, errp);
    xapi_vm_record_free(vm);
    return ok;
}

bool
api_vm_power_state_reset(struct call_ctx *ctx, const char *vm_ref, struct xerr **errp)
{
    struct xapi_vm_record *vm = NULL;
    if (!db_get(ctx->db, &xapi_class_vm, vm_ref, (void **)&vm, errp))
        return false;
    bool dom0 = vm->is_control_domain;
    if (!dom0 && vm->power_state != XAPI_VM_POWER_STATE_HALTED &&
        domains_alive(ctx->srv, vm->uuid))
        domains_stop(ctx->srv, vm->uuid, false, NULL);
    xapi_vm_record_free(vm);
    if (dom0)
        return xerr_cannot_reset_control_domain(errp, vm_ref);
    return record_power_state(ctx->srv, vm_ref, XAPI_VM_POWER_STATE_HALTED, -1, false, NULL, errp);
}

/* ------------------------------------------------------------------ guest-initiated changes */

struct find_uuid {
    const char *uuid;
    char *ref;
    bool busy; /* an API operation is running on it: it records the outcome */
    int ps;
    int after_shutdown, after_reboot, after_crash;
};

static void
read_found(void *opaque, const void *rec)
{
    struct find_uuid *f = opaque;
    const struct xapi_vm_record *vm = rec;
    f->busy = vm->current_operations.n > 0;
    f->ps = (int)vm->power_state;
    f->after_shutdown = (int)vm->actions_after_shutdown;
    f->after_reboot = (int)vm->actions_after_reboot;
    f->after_crash = (int)vm->actions_after_crash;
}

/* The VM of domain f->uuid, through the store's uuid index rather than a
 * look at every VM on each domain event; f->ref stays NULL when there is
 * none (destroyed meanwhile included). */
static void
find_by_uuid(struct server *srv, struct find_uuid *f)
{
    char *ref = NULL;
    if (!db_ref_by_uuid(srv->db, &xapi_class_vm, f->uuid, &ref, NULL))
        return;
    if (db_with(srv->db, &xapi_class_vm, ref, read_found, f, NULL))
        f->ref = ref;
    else
        free(ref);
}

/* Domains that crashed and whose halt is still to come: that halt follows
 * actions_after_crash, not actions_after_shutdown. Few at a time. */
#define MAX_CRASHED 64
static pthread_mutex_t crashed_mu = PTHREAD_MUTEX_INITIALIZER;
static char crashed[MAX_CRASHED][40];

static void
crashed_mark(const char *uuid)
{
    pthread_mutex_lock(&crashed_mu);
    for (int i = 0; i < MAX_CRASHED; i++)
        if (!crashed[i][0]) {
            snprintf(crashed[i], sizeof(crashed[i]), "%s", uuid);
            break;
        }
    pthread_mutex_unlock(&crashed_mu);
}

static bool
crashed_take(const char *uuid)
{
    bool found = false;
    pthread_mutex_lock(&crashed_mu);
    for (int i = 0; i < MAX_CRASHED && !found; i++)
        if (strcmp(crashed[i], uuid) == 0) {
            crashed[i][0] = '\0';
            found = true;
        }
    pthread_mutex_unlock(&crashed_mu);
    return found;
}

/* A domain that halted by itself: the VM's actions in force now say whether
 * it starts again - actions_after_crash after a crash, actions_after_shutdown
 * after a guest poweroff. (Reboots restart in place in the domain manager.) */
static bool
wants_restart(const struct find_uuid *f, bool after_crash)
{
    if (after_crash)
        return f->after_crash == XAPI_ON_CRASH_BEHAVIOUR_RESTART ||
               f->after_crash == XAPI_ON_CRASH_BEHAVIOUR_RENAME_RESTART ||
               f->after_crash == XAPI_ON_CRASH_BEHAVIOUR_COREDUMP_AND_RESTART;
    return f->after_shutdown == XAPI_ON_NORMAL_EXIT_RESTART;
}

static bool
has_domain(int ps)
{
    return ps != XAPI_VM_POWER_STATE_HALTED && ps != XAPI_VM_POWER_STATE_SUSPENDED;
}

/* A live domain's event (paused, resumed, rebooted in place): recorded only
 * while no operation owns the VM and the records still give it a domain,
 * both read in the batch that writes. An event can come late (a loaded
 * host): an operation that claimed the VM after the event was sent, a
 * shutdown after an unpause, wins, and the VM is not brought back to life
 * in the records. */
static void
record_live_event(struct server *srv, const char *uuid, enum domain_event ev)
{
    struct find_uuid f = {uuid, NULL, false, 0, 0, 0, 0};
    struct xerr *err = NULL;
    db_batch_begin(srv->db);
    find_by_uuid(srv, &f);
    bool ok = f.ref && !f.busy && has_domain(f.ps);
    if (ok && ev == DOMAIN_PAUSED)
        ok = record_power_state(srv, f.ref, XAPI_VM_POWER_STATE_PAUSED, -1, false, NULL, &err);
    else if (ok && ev == DOMAIN_RESUMED)
        ok = record_power_state(srv, f.ref, XAPI_VM_POWER_STATE_RUNNING, -1, false, NULL, &err);
    else if (ok) /* rebooted: running again, in place, a new start time */
        ok = record_power_state(srv, f.ref, XAPI_VM_POWER_STATE_RUNNING, -1, true, NULL, &err);
    db_batch_end(srv->db, ok, ok ? &err : NULL); /* not ok: nothing to write, or err says why */
    if (err) {
        char d[256];
        log_warn("vm.domain_event_failed", "vm=%s error=\"%s\"", uuid,
                 xerr_describe(err, d, sizeof(d)));
    }
    xerr_free(err);
    free(f.ref);
}

void
vm_lifecycle_on_domain_event(struct server *srv, const char *uuid, enum domain_event ev)
{
    if (srv->stopping || pool_live_ignores_exit(srv, uuid, ev == DOMAIN_HALTED))
        return; /* a fenced host restarts nothing (api/pool_live.c (4)) */
    static const char *const names[] = {"halted", "rebooted", "crashed", "paused", "resumed"};
    log_info("vm.domain_event", "vm=%s event=%s", uuid, names[ev]);
    if (ev != DOMAIN_HALTED && ev != DOMAIN_CRASHED) {
        record_live_event(srv, uuid, ev);
        return;
    }
    struct find_uuid f = {uuid, NULL, false, 0, 0, 0, 0};
    find_by_uuid(srv, &f);
    if (!f.ref || f.busy || !has_domain(f.ps)) {
        /* busy: the operation records the outcome; halted or suspended: an
         * operation already did (clean shutdown, suspend) */
        free(f.ref);
        return;
    }
    if (ev == DOMAIN_CRASHED) {
        crashed_mark(uuid); /* its halt follows as an event of its own */
        free(f.ref);
        return;
    }
    struct xerr *err = NULL;
    struct xapi_vm_record *vm = NULL;
    int64_t domid = -1;
    bool after_crash = crashed_take(uuid);
    if (wants_restart(&f, after_crash) &&
        db_get(srv->db, &xapi_class_vm, f.ref, (void **)&vm, NULL) &&
        (domains_detach_nics(srv, vm), true) && /* the old domain's taps */
        domains_start(srv, f.ref, vm, false, &domid, &err)) {
        record_power_state(srv, f.ref, XAPI_VM_POWER_STATE_RUNNING, domid, true, NULL, &err);
    } else {
        xerr_freep(&err);
        record_power_state(srv, f.ref, XAPI_VM_POWER_STATE_HALTED, -1, false, NULL, &err);
    }
    xapi_vm_record_free(vm);
    if (err) {
        char d[256];
        log_warn("vm.domain_event_failed", "vm=%s error=\"%s\"", uuid,
                 xerr_describe(err, d, sizeof(d)));
        xerr_free(err);
    }
    free(f.ref);
}

struct running_vms {
    struct server *srv;
    char **refs;
    char **uuids;
    size_t n;
};

static bool
collect_running(void *opaque, const char *ref, const void *rec)
{
    struct running_vms *r = opaque;
    const struct xapi_vm_record *vm = rec;
    if (vm->is_control_domain || !host_owns_vm(r->srv->host_ref, vm) ||
        (vm->power_state != XAPI_VM_POWER_STATE_RUNNING &&
                                  vm->power_state != XAPI_VM_POWER_STATE_PAUSED))
        return true;
    char **refs = realloc(r->refs, (r->n + 1) * sizeof(char *));
    if (refs)
        r->refs = refs;
    char **uuids = realloc(r->uuids, (r->n + 1) * sizeof(char *));
    if (uuids)
        r->uuids = uuids;
    if (!refs || !uuids)
        return false;
    r->refs[r->n] = strdup(ref);
    r->uuids[r->n] = strdup(vm->uuid);
    if (r->refs[r->n] && r->uuids[r->n])
        r->n++;
    return true;
}

void
vm_lifecycle_reconcile(struct server *srv)
{
    struct running_vms r = {srv, NULL, NULL, 0};
    db_foreach(srv->db, &xapi_class_vm, collect_running, &r);
    for (size_t i = 0; i < r.n; i++) {
        if (!domains_alive(srv, r.uuids[i])) {
            log_info("vm.reconcile", "vm=%s state=halted reason=domain-gone", r.uuids[i]);
            record_power_state(srv, r.refs[i], XAPI_VM_POWER_STATE_HALTED, -1, false, NULL, NULL);
        } else {
            log_info("vm.reconcile", "vm=%s state=running", r.uuids[i]);
        }
        free(r.refs[i]);
        free(r.uuids[i]);
    }
    free(r.refs);
    free(r.uuids);
}

/* ------------------------------------------------------------------ checkpoint */

static bool
checkpoint_mark(void *opaque, void *rec, struct xerr **errp)
{
    struct xapi_vm_record *snap = rec;
    const char *at = opaque;
    snap->power_state = XAPI_VM_POWER_STATE_SUSPENDED;
    /* xapi_vm_clone.ml snapshot_info */
    return (xmap_put_str((struct xmap *)&snap->snapshot_info, "power-state-at-snapshot", at) == 0 &&
            xmap_put_str((struct xmap *)&snap->snapshot_info, "disk-snapshot-type",
                         "crash_consistent") == 0) ||
           xerr_nomem(errp);
}

/* The memory image of VM @from becomes also @to's (a second name: the
 * image is never written again, and each name is dropped on its own). */
static bool
share_image(struct server *srv, const char *from, const char *to, struct xerr **errp)
{
    char a[512], b[512];
    suspend_path(srv, from, a, sizeof(a));
    suspend_path(srv, to, b, sizeof(b));
    unlink(b);
    if (link(a, b) == 0)
        return true;
    return xerr_internal(errp, "suspend image %s: %s", a, strerror(errno));
}

/* xapi_vm_snapshot.ml checkpoint: a running VM is suspended (its memory
 * saved, the guest stopped), its disks are snapshotted while nothing writes
 * them, the snapshot takes a copy of the memory image and the power state
 * Suspended, and the VM is resumed from the image. A suspended VM's
 * checkpoint shares its image; a paused one's is a disk snapshot. */
bool
api_vm_checkpoint(struct call_ctx *ctx, const char *vm_ref, const char *new_name, char **result,
                  struct xerr **errp)
{
    char key[64];
    vm_op_key(ctx, key, sizeof(key));
    if (!vm_op_begin(ctx->db, vm_ref, XAPI_VM_OPERATIONS_CHECKPOINT, key, errp))
        return false;
    struct xapi_vm_record *vm = NULL;
    bool ok = db_get(ctx->db, &xapi_class_vm, vm_ref, (void **)&vm, errp);
    enum xapi_vm_power_state was = ok ? vm->power_state : XAPI_VM_POWER_STATE_HALTED;
    struct power_op p = {.op = XAPI_VM_OPERATIONS_CHECKPOINT};
    if (ok && was == XAPI_VM_POWER_STATE_RUNNING && !suspend_work(ctx, vm_ref, vm, &p, errp))
        ok = false;
    char *snap = NULL;
    struct xapi_ref_set none = {0};
    if (ok)
        ok = api_vm_snapshot(ctx, vm_ref, new_name, &none, &snap, errp);
    bool memory = was == XAPI_VM_POWER_STATE_RUNNING || was == XAPI_VM_POWER_STATE_SUSPENDED;
    if (ok && memory) {
        struct xapi_vm_record *s = NULL;
        ok = db_get(ctx->db, &xapi_class_vm, snap, (void **)&s, errp) &&
             share_image(ctx->srv, vm->uuid, s->uuid, errp) &&
             db_update(ctx->db, &xapi_class_vm, snap, checkpoint_mark,
                       (void *)xenum_name(&xapi_enum_vm_power_state, (int)was), errp);
        xapi_vm_record_free(s);
    }
    /* the VM runs again whatever happened to the snapshot (xapi) */
    if (was == XAPI_VM_POWER_STATE_RUNNING && vm) {
        struct xerr *rerr = NULL;
        if (!resume_work(ctx, vm_ref, vm, &p, &rerr)) {
            if (ok)
                *errp = rerr;
            else
                xerr_free(rerr);
            ok = false;
        }
    }
    if (ok) {
        *result = snap;
        snap = NULL;
        log_info("vm.checkpoint", "vm=%s memory=%d", vm->uuid, memory);
    }
    free(snap);
    xapi_vm_record_free(vm);
    vm_op_end(ctx->db, vm_ref, key);
    return ok;
}

void
vm_lifecycle_image_share(struct server *srv, const char *from_uuid, const char *to_uuid,
                         bool *ok, struct xerr **errp)
{
    *ok = share_image(srv, from_uuid, to_uuid, errp);
}

void
vm_lifecycle_image_drop(struct server *srv, const char *uuid)
{
    char path[512];
    suspend_path(srv, uuid, path, sizeof(path));
    unlink(path);
}
