/* api/vm_settings.c - VM messages that check, compute or set, without a
 * power operation: placement checks (assert_can_boot_here,
 * get_possible_hosts, assert_agile), memory arithmetic
 * (compute_memory_overhead, maximise_memory), operation checks, NVRAM and
 * BIOS strings, disaster-recovery checks, plugins (xapi's
 * ocaml/xapi/xapi_vm.ml, xapi_vm_helpers.ml, agility.ml, memory_check.ml).
 *
 * Memory follows xapi's model (ocaml/xapi-idl/memory/memory.ml): a guest's
 * overhead is 1 MiB inside and 1 MiB outside it (none inside for PV), its
 * shadow (one page per MiB of static_max twice, 256 pages per vCPU, times
 * the shadow multiplier, at least 1 MiB) and 38 pages per vCPU; a
 * PV-in-PVH guest adds its shim. The host's free memory is what VM.start
 * checks (host_metrics.memory_free).
 *
 * A standalone host answers as xapi's own code does with one host: the pool
 * is this host, so an SR is "properly shared" only when marked shared and
 * plugged here, and every network reaches every (the one) host.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/domains.h"
#include "api/placement.h"
#include "api/vm_ops.h"
#include "db/db.h"
#include "rpc/ctx.h"
#include "rpc/session.h"
#include "xapi_errors.h"
#include "xapi_handlers.h"

#define MIB (1024 * 1024)
#define PAGES_PER_MIB 256

/*==== Helpers ====*/

static bool
vm_get(struct call_ctx *ctx, const char *vm, struct xapi_vm_record **out, struct xerr **errp)
{
    return db_get(ctx->db, &xapi_class_vm, vm, (void **)out, errp);
}

static int64_t
mib_used(int64_t bytes)
{
    return (bytes + MIB - 1) / MIB;
}

static int64_t
pages_to_mib_used(int64_t pages)
{
    return (pages + PAGES_PER_MIB - 1) / PAGES_PER_MIB;
}

/* xapi's Memory_model.overhead_mib for @domain_type (memory.ml). */
static int64_t
overhead_mib(enum xapi_domain_type domain_type, int64_t static_max_mib, int64_t vcpus,
             double multiplier)
{
    int64_t internal = domain_type == XAPI_DOMAIN_TYPE_PV ? 0 : 1, external = 1;
    int64_t shim = domain_type == XAPI_DOMAIN_TYPE_PV_IN_PVH ? 23 + static_max_mib / 90 : 0;
    int64_t shadow = pages_to_mib_used(256 * vcpus + 2 * static_max_mib);
    shadow = (int64_t)((double)shadow * multiplier);
    if (shadow < 1)
        shadow = 1;
    return internal + external + shadow + pages_to_mib_used(38 * vcpus) + shim;
}

static int64_t
vm_overhead_bytes(const struct xapi_vm_record *vm, int64_t static_max, int64_t vcpus)
{
    return overhead_mib(vm->domain_type, mib_used(static_max), vcpus,
                        vm->HVM_shadow_multiplier) * MIB;
}

typedef bool vm_edit_fn(struct xapi_vm_record *vm, const void *arg);

struct vm_edit {
    vm_edit_fn *fn;
    const void *arg;
};

static bool
vm_edit_apply(void *opaque, void *rec, struct xerr **errp)
{
    const struct vm_edit *e = opaque;
    return (e->fn(rec, e->arg) && vm_ops_refresh(rec)) || xerr_nomem(errp);
}

static bool
vm_edit(struct call_ctx *ctx, const char *vm, vm_edit_fn *fn, const void *arg,
        struct xerr **errp)
{
    struct vm_edit e = {fn, arg};
    return db_update(ctx->db, &xapi_class_vm, vm, vm_edit_apply, &e, errp);
}

/*==== Memory ====*/

bool
api_vm_compute_memory_overhead(struct call_ctx *ctx, const char *vm, int64_t *result,
                               struct xerr **errp)
{
    struct xapi_vm_record *r = NULL;
    if (!vm_get(ctx, vm, &r, errp))
        return false;
    *result = vm_overhead_bytes(r, r->memory_static_max, r->VCPUs_max);
    xapi_vm_record_free(r);
    return true;
}

/* The largest static_max (rounded down to a MiB) whose footprint, memory
 * and overhead, fits in @total (xapi_vm.ml maximise_memory); @approximate
 * assumes 64 vCPUs, the most a guest may have. */
bool
api_vm_maximise_memory(struct call_ctx *ctx, const char *self, int64_t total, bool approximate,
                       int64_t *result, struct xerr **errp)
{
    struct xapi_vm_record *r = NULL;
    if (!vm_get(ctx, self, &r, errp))
        return false;
    int64_t vcpus = approximate ? 64 : r->VCPUs_max;
    int64_t lo = 0, hi = total > 0 ? total : 0;
    while (lo < hi) { /* the largest m in [0, total] with m + overhead(m) <= total */
        int64_t mid = lo + (hi - lo + 1) / 2;
        if (mid + vm_overhead_bytes(r, mid, vcpus) <= total)
            lo = mid;
        else
            hi = mid - 1;
    }
    xapi_vm_record_free(r);
    *result = lo / MIB * MIB;
    return true;
}

static bool
set_multiplier(struct xapi_vm_record *vm, const void *arg)
{
    vm->HVM_shadow_multiplier = *(const double *)arg;
    vm->memory_overhead = vm_overhead_bytes(vm, vm->memory_static_max, vm->VCPUs_max);
    return true;
}

/* QEMU guests have no shadow page tables to grow: the multiplier is the
 * guest's figure in the overhead arithmetic, as for a halted VM. */
bool
api_vm_set_shadow_multiplier_live(struct call_ctx *ctx, const char *self, double multiplier,
                                  struct xerr **errp)
{
    struct xapi_vm_record *r = NULL;
    if (!vm_get(ctx, self, &r, errp))
        return false;
    enum xapi_vm_power_state ps = r->power_state;
    xapi_vm_record_free(r);
    if (ps != XAPI_VM_POWER_STATE_RUNNING)
        return xerr_vm_bad_power_state(errp, self, "running", vm_power_state_lower(ps));
    if (multiplier < 1.0) {
        char v[32];
        snprintf(v, sizeof(v), "%g", multiplier);
        return xerr_invalid_value(errp, "multiplier", v);
    }
    return vm_edit(ctx, self, set_multiplier, &multiplier, errp);
}

static bool
record_memory_actual(void *opaque, void *rec, struct xerr **errp)
{
    ((struct xapi_vm_metrics_record *)rec)->memory_actual = *(const int64_t *)opaque;
    return true;
}

/* No balloon driver moves a guest's memory here, so a guest whose memory is
 * not within 1 MiB of its target never will be: xapi's wait (up to its
 * 256 s timeout) would end in the same error. */
bool
api_vm_wait_memory_target_live(struct call_ctx *ctx, const char *self, struct xerr **errp)
{
    struct xapi_vm_record *r = NULL;
    if (!vm_get(ctx, self, &r, errp))
        return false;
    bool ok = true;
    if (r->power_state != XAPI_VM_POWER_STATE_RUNNING) {
        ok = xerr_vm_bad_power_state(errp, self, "running", vm_power_state_lower(r->power_state));
    } else {
        int64_t actual = domains_memory_actual(ctx->srv, r->uuid);
        if (actual <= 0)
            actual = r->memory_target;
        int64_t diff = actual > r->memory_target ? actual - r->memory_target
                                                 : r->memory_target - actual;
        if (diff > MIB)
            ok = xerr_vm_memory_target_wait_timeout(errp, ctx->task ? ctx->task : "");
        else
            ok = db_update(ctx->db, &xapi_class_vm_metrics, r->metrics, record_memory_actual,
                           &actual, errp);
    }
    xapi_vm_record_free(r);
    return ok;
}

bool
api_vm_get_cooperative(struct call_ctx *ctx, const char *self, bool *result, struct xerr **errp)
{
    if (!db_exists(ctx->db, &xapi_class_vm, self))
        return xerr_handle_invalid(errp, "VM", self);
    *result = true; /* xapi: always true since ballooning stopped asking guests */
    return true;
}

/*==== Placement ====*/

struct sr_attached {
    const char *sr, *host;
    bool attached;
};

static bool
pbd_attached(void *opaque, const char *ref, const void *rec)
{
    struct sr_attached *a = opaque;
    const struct xapi_pbd_record *p = rec;
    if (strcmp(p->SR, a->sr) == 0 && strcmp(p->host, a->host) == 0 && p->currently_attached)
        a->attached = true;
    return !a->attached;
}

static bool
sr_attached_on(struct db *db, const char *sr, const char *host)
{
    struct sr_attached a = {sr, host, false};
    db_foreach(db, &xapi_class_pbd, pbd_attached, &a);
    return a.attached;
}

/* The SR of every disk of @vm (and of its suspend image) must be plugged on
 * @host: VM_REQUIRES_SR [vm, sr] names the first that is not. */
static bool
check_srs(struct call_ctx *ctx, const char *vm_ref, const struct xapi_vm_record *vm,
          const char *host, struct xerr **errp)
{
    for (size_t i = 0; i <= vm->VBDs.n; i++) {
        char *vdi = NULL;
        if (i == vm->VBDs.n) {
            if (!vm->suspend_VDI[0] || strcmp(vm->suspend_VDI, "OpaqueRef:NULL") == 0)
                break;
            vdi = strdup(vm->suspend_VDI);
        } else {
            struct xapi_vbd_record *b = NULL;
            if (!db_get(ctx->db, &xapi_class_vbd, vm->VBDs.items[i], (void **)&b, NULL))
                continue;
            if (!b->empty)
                vdi = strdup(b->VDI);
            xapi_vbd_record_free(b);
        }
        struct xapi_vdi_record *d = NULL;
        bool have = vdi && db_get(ctx->db, &xapi_class_vdi, vdi, (void **)&d, NULL);
        free(vdi);
        if (!have)
            continue;
        bool ok = sr_attached_on(ctx->db, d->SR, host) || xerr_vm_requires_sr(errp, vm_ref, d->SR);
        xapi_vdi_record_free(d);
        if (!ok)
            return false;
    }
    return true;
}

/* api/placement.h: the VM's own constraints, the host enabled and live,
 * its SRs there, and memory. */
bool
vm_can_boot_here(struct call_ctx *ctx, const char *vm_ref, const struct xapi_vm_record *vm,
                 const char *host, bool memory, struct xerr **errp)
{
    struct xapi_host_record *h = NULL;
    if (!db_get(ctx->db, &xapi_class_host, host, (void **)&h, errp))
        return false;
    bool enabled = h->enabled;
    char *metrics = strdup(h->metrics);
    xapi_host_record_free(h);
    if (!metrics)
        return xerr_nomem(errp);
    struct xapi_host_metrics_record *m = NULL;
    bool live = true; /* this host answers: it is live */
    if (strcmp(host, ctx->srv->host_ref) != 0 &&
        db_get(ctx->db, &xapi_class_host_metrics, metrics, (void **)&m, NULL))
        live = m->live;
    xapi_host_metrics_record_free(m);
    free(metrics);
    int64_t free_bytes = memory ? placement_free_memory_for(ctx->db, host, vm_ref) : -1;
    if (!(vm->memory_static_min <= vm->memory_dynamic_min &&
          vm->memory_dynamic_min <= vm->memory_dynamic_max &&
          vm->memory_dynamic_max <= vm->memory_static_max))
        return xerr_memory_constraint_violation(
            errp, "memory_static_min <= memory_dynamic_min <= memory_dynamic_max <= "
                  "memory_static_max");
    if (vm->VCPUs_at_startup <= 0 || vm->VCPUs_at_startup > vm->VCPUs_max)
        return xerr_vm_no_vcpus(errp, vm_ref);
    if (!enabled && !vm->is_control_domain)
        return xerr_host_disabled(errp, host);
    if (!live)
        return xerr_host_not_live(errp);
    if (!check_srs(ctx, vm_ref, vm, host, errp))
        return false;
    bool resident_here = vm->power_state == XAPI_VM_POWER_STATE_RUNNING &&
                         strcmp(vm->resident_on, host) == 0;
    if (!resident_here && free_bytes >= 0 && vm->memory_dynamic_max > free_bytes) {
        char need[32], have[32];
        snprintf(need, sizeof(need), "%" PRId64, vm->memory_dynamic_max);
        snprintf(have, sizeof(have), "%" PRId64, free_bytes);
        return xerr_host_not_enough_free_memory(errp, need, have);
    }
    return true;
}

bool
api_vm_assert_can_boot_here(struct call_ctx *ctx, const char *self, const char *host,
                            struct xerr **errp)
{
    struct xapi_vm_record *r = NULL;
    if (!vm_get(ctx, self, &r, errp))
        return false;
    bool ok = vm_can_boot_here(ctx, self, r, host, true, errp);
    xapi_vm_record_free(r);
    return ok;
}

struct host_list {
    char **refs;
    size_t n;
    bool oom;
};

static bool
list_host(void *opaque, const char *ref, const void *rec)
{
    struct host_list *l = opaque;
    (void)rec;
    char **grown = realloc(l->refs, (l->n + 1) * sizeof(*grown));
    if (!grown || !(grown[l->n] = strdup(ref))) {
        if (grown)
            l->refs = grown;
        l->oom = true;
        return false;
    }
    l->refs = grown;
    l->n++;
    return true;
}

bool
api_vm_get_possible_hosts(struct call_ctx *ctx, const char *vm, struct xapi_ref_set *result,
                          struct xerr **errp)
{
    struct xapi_vm_record *r = NULL;
    if (!vm_get(ctx, vm, &r, errp))
        return false;
    bool scheduled = r->scheduled_to_be_resident_on[0] &&
                     strcmp(r->scheduled_to_be_resident_on, "OpaqueRef:NULL") != 0;
    struct host_list hosts = {0};
    bool ok = true;
    if (scheduled) {
        ok = xset_append_str((struct xset *)result, r->scheduled_to_be_resident_on) == 0;
    } else {
        /* every host of the pool the VM could boot on (xapi_vm.ml get_possible_hosts) */
        db_foreach(ctx->db, &xapi_class_host, list_host, &hosts);
        ok = !hosts.oom;
        for (size_t i = 0; ok && i < hosts.n; i++)
            if (vm_can_boot_here(ctx, vm, r, hosts.refs[i], true, NULL))
                ok = xset_append_str((struct xset *)result, hosts.refs[i]) == 0;
    }
    for (size_t i = 0; i < hosts.n; i++)
        free(hosts.refs[i]);
    free(hosts.refs);
    xapi_vm_record_free(r);
    return ok || xerr_nomem(errp);
}

/* agility.ml: no vGPU or USB passthrough, every disk on an SR that is
 * shared and plugged on every enabled host (here: this one). Every network
 * reaches the one host, so VIFs never make a VM non-agile here. */
bool
api_vm_assert_agile(struct call_ctx *ctx, const char *self, struct xerr **errp)
{
    struct xapi_vm_record *r = NULL;
    if (!vm_get(ctx, self, &r, errp))
        return false;
    bool ok = true;
    if (r->VGPUs.n)
        ok = xerr_vm_has_vgpu(errp, self);
    else if (r->VUSBs.n)
        ok = xerr_vm_has_vusbs(errp, self);
    for (size_t i = 0; ok && i < r->VBDs.n; i++) {
        struct xapi_vbd_record *b = NULL;
        struct xapi_vdi_record *d = NULL;
        struct xapi_sr_record *s = NULL;
        if (db_get(ctx->db, &xapi_class_vbd, r->VBDs.items[i], (void **)&b, NULL) && !b->empty &&
            db_get(ctx->db, &xapi_class_vdi, b->VDI, (void **)&d, NULL) &&
            db_get(ctx->db, &xapi_class_sr, d->SR, (void **)&s, NULL) &&
            !(s->shared && sr_attached_on(ctx->db, d->SR, ctx->srv->host_ref)))
            ok = xerr_ha_constraint_violation_sr_not_shared(errp, d->SR);
        xapi_vbd_record_free(b);
        xapi_vdi_record_free(d);
        xapi_sr_record_free(s);
    }
    xapi_vm_record_free(r);
    return ok;
}

bool
api_vm_retrieve_wlb_recommendations(struct call_ctx *ctx, const char *vm,
                                    struct xapi_ref_string_set_map *result, struct xerr **errp)
{
    if (!db_exists(ctx->db, &xapi_class_vm, vm))
        return xerr_handle_invalid(errp, "VM", vm);
    return xerr_wlb_not_initialized(errp); /* no WLB server is configured */
}

/*==== Operations ====*/

bool
api_vm_assert_operation_valid(struct call_ctx *ctx, const char *self, enum xapi_vm_operations op,
                              struct xerr **errp)
{
    struct xapi_vm_record *r = NULL;
    if (!vm_get(ctx, self, &r, errp))
        return false;
    bool ok = vm_op_check(r, self, op, errp);
    xapi_vm_record_free(r);
    return ok;
}

static bool
no_change(struct xapi_vm_record *vm, const void *arg)
{
    (void)vm;
    (void)arg;
    return true; /* vm_edit refreshes allowed_operations */
}

bool
api_vm_update_allowed_operations(struct call_ctx *ctx, const char *self, struct xerr **errp)
{
    return vm_edit(ctx, self, no_change, NULL, errp);
}

/* The device model is the whole guest here (one QEMU per VM): xapi restarts
 * a Xen guest's emulator under a running domain, which has no equivalent. */
bool
api_vm_restart_device_models(struct call_ctx *ctx, const char *self, struct xerr **errp)
{
    struct xapi_vm_record *r = NULL;
    if (!vm_get(ctx, self, &r, errp))
        return false;
    enum xapi_vm_power_state ps = r->power_state;
    bool tmpl = r->is_a_template;
    xapi_vm_record_free(r);
    if (ps != XAPI_VM_POWER_STATE_RUNNING)
        return xerr_vm_bad_power_state(errp, self, "running", vm_power_state_lower(ps));
    if (tmpl)
        return xerr_vm_is_template(errp, self, "restart_device_models");
    return xerr_operation_not_allowed(
        errp, "the device model is the guest's own process: restarting it restarts the guest");
}

bool
api_vm_get_boot_record(struct call_ctx *ctx, const char *self, struct xapi_vm_record **result,
                       struct xerr **errp)
{
    return vm_get(ctx, self, result, errp); /* xapi: the current record */
}

/*==== NVRAM, VCPUs_params, BIOS strings ====*/

struct kv {
    const char *key, *value;
};

static bool
nvram_put(struct xapi_vm_record *vm, const void *arg)
{
    const struct kv *kv = arg;
    return xmap_put_str((struct xmap *)&vm->NVRAM, kv->key, kv->value) == 0;
}

static bool
nvram_remove(struct xapi_vm_record *vm, const void *arg)
{
    xmap_remove_key(&xapi_type_string_string_map, (struct xmap *)&vm->NVRAM, arg);
    return true;
}

bool
api_vm_add_to_NVRAM(struct call_ctx *ctx, const char *self, const char *key, const char *value,
                    struct xerr **errp)
{
    struct kv kv = {key, value};
    return vm_edit(ctx, self, nvram_put, &kv, errp);
}

bool
api_vm_remove_from_NVRAM(struct call_ctx *ctx, const char *self, const char *key,
                         struct xerr **errp)
{
    return vm_edit(ctx, self, nvram_remove, key, errp);
}

static bool
vcpus_param_put(struct xapi_vm_record *vm, const void *arg)
{
    const struct kv *kv = arg;
    return xmap_put_str((struct xmap *)&vm->VCPUs_params, kv->key, kv->value) == 0;
}

/* Recorded in VCPUs_params; a running guest takes it at its next start
 * (its cgroup's cpu.weight and cpu.max are set then: xenops/cgroup.c). */
bool
api_vm_add_to_VCPUs_params_live(struct call_ctx *ctx, const char *self, const char *key,
                                const char *value, struct xerr **errp)
{
    struct xapi_vm_record *r = NULL;
    if (!vm_get(ctx, self, &r, errp))
        return false;
    enum xapi_vm_power_state ps = r->power_state;
    xapi_vm_record_free(r);
    if (ps != XAPI_VM_POWER_STATE_RUNNING)
        return xerr_vm_bad_power_state(errp, self, "running", vm_power_state_lower(ps));
    struct kv kv = {key, value};
    return vm_edit(ctx, self, vcpus_param_put, &kv, errp);
}

struct bios_copy {
    const struct xapi_string_string_map *strings;
    const char *host;
};

static bool
bios_set(struct xapi_vm_record *vm, const void *arg)
{
    const struct bios_copy *c = arg;
    for (size_t i = 0; i < c->strings->n; i++)
        if (xmap_put_str((struct xmap *)&vm->bios_strings, c->strings->keys[i],
                         c->strings->values[i]) < 0)
            return false;
    return xstr_set(&vm->affinity, c->host);
}

/* xapi_vm_helpers.ml: once only; the VM is then pinned to the host whose
 * strings it took (affinity). */
bool
api_vm_copy_bios_strings(struct call_ctx *ctx, const char *vm, const char *host,
                         struct xerr **errp)
{
    struct xapi_vm_record *r = NULL;
    struct xapi_host_record *h = NULL;
    if (!vm_get(ctx, vm, &r, errp))
        return false;
    bool set = r->bios_strings.n > 0;
    xapi_vm_record_free(r);
    if (set)
        return xerr_vm_bios_strings_already_set(errp);
    if (!db_get(ctx->db, &xapi_class_host, host, (void **)&h, errp))
        return false;
    struct bios_copy c = {&h->bios_strings, host};
    bool ok = vm_edit(ctx, vm, bios_set, &c, errp);
    xapi_host_record_free(h);
    return ok;
}

/*==== Disaster recovery ====*/

/* The SRs @vm's disks need that have no plugged PBD on this host (xapi
 * looks them up in the database @session_to names; a standalone host has
 * one database). */
static bool
srs_missing(struct call_ctx *ctx, const char *vm_ref, const struct xapi_vm_record *vm,
            struct xapi_ref_set *out, struct xerr **errp)
{
    for (size_t i = 0; i < vm->VBDs.n; i++) {
        struct xapi_vbd_record *b = NULL;
        struct xapi_vdi_record *d = NULL;
        bool ok = true;
        if (db_get(ctx->db, &xapi_class_vbd, vm->VBDs.items[i], (void **)&b, NULL) && !b->empty &&
            db_get(ctx->db, &xapi_class_vdi, b->VDI, (void **)&d, NULL) &&
            !sr_attached_on(ctx->db, d->SR, ctx->srv->host_ref))
            ok = xset_add_str((struct xset *)out, d->SR) == 0;
        xapi_vbd_record_free(b);
        xapi_vdi_record_free(d);
        if (!ok)
            return xerr_nomem(errp);
    }
    return true;
}

static bool
check_session_to(struct call_ctx *ctx, const char *session_to, struct xerr **errp)
{
    struct session_info si = {0};
    if (!session_check(ctx->srv, session_to, &si, errp))
        return false;
    session_info_release(&si);
    return true;
}

bool
api_vm_get_SRs_required_for_recovery(struct call_ctx *ctx, const char *self,
                                     const char *session_to, struct xapi_ref_set *result,
                                     struct xerr **errp)
{
    struct xapi_vm_record *r = NULL;
    if (!vm_get(ctx, self, &r, errp))
        return false;
    bool ok = check_session_to(ctx, session_to, errp) && srs_missing(ctx, self, r, result, errp);
    xapi_vm_record_free(r);
    return ok;
}

bool
api_vm_assert_can_be_recovered(struct call_ctx *ctx, const char *self, const char *session_to,
                               struct xerr **errp)
{
    struct xapi_ref_set missing = {0, NULL};
    bool ok = api_vm_get_SRs_required_for_recovery(ctx, self, session_to, &missing, errp);
    if (ok && missing.n)
        ok = xerr_vm_requires_sr(errp, self, missing.items[0]);
    xtype_value_clear(&xapi_type_ref_SR_set, &missing);
    return ok;
}

/* Recovering a VM imports it from a foreign pool's metadata database (a VDI
 * opened with VDI.open_database) into session_to's pool; with one database
 * the VM is already there, which xapi's import reports as DUPLICATE_VM
 * unless forced to replace it (by itself, here: nothing changes). */
bool
api_vm_recover(struct call_ctx *ctx, const char *self, const char *session_to, bool force,
               struct xerr **errp)
{
    if (!api_vm_assert_can_be_recovered(ctx, self, session_to, errp))
        return false;
    return force || xerr_duplicate_vm(errp, self);
}

/*==== Plugins ====*/

/* xapi_vm.ml call_plugin: only the guest agent's plugin exists, and its
 * functions need the guest agent control feature of Xen's PV tools, which
 * QEMU guests here do not advertise. */
bool
api_vm_call_plugin(struct call_ctx *ctx, const char *vm, const char *plugin, const char *fn,
                   const struct xapi_string_string_map *args_, char **result, struct xerr **errp)
{
    if (!db_exists(ctx->db, &xapi_class_vm, vm))
        return xerr_handle_invalid(errp, "VM", vm);
    if (strcmp(plugin, "guest-agent-operation") != 0)
        return xerr_xenapi_missing_plugin(errp, plugin);
    char msg[512];
    bool known = strcmp(fn, "request-rdp-on") == 0 || strcmp(fn, "request-rdp-off") == 0 ||
                 strcmp(fn, "run-script") == 0;
    if (!known) {
        snprintf(msg, sizeof(msg), "The requested fn \"%s\" could not be found in plugin \"%s\".",
                 fn, plugin);
        return xerr_xenapi_plugin_failure(errp, "failed to find fn", msg, msg);
    }
    snprintf(msg, sizeof(msg),
             "The requested fn \"%s\" of plugin \"%s\" could not be executed for lack of guest "
             "agent control feature.",
             fn, plugin);
    return xerr_xenapi_plugin_failure(errp, "failed to execute fn", msg, msg);
}

/* Conversion from VMware runs in a conversion appliance that xapi finds
 * through its "conversion" host plugin, which is not installed here. */
bool
api_vm_import_convert(struct call_ctx *ctx, const char *type, const char *username,
                      const char *password, const char *sr,
                      const struct xapi_string_string_map *remote_config, struct xerr **errp)
{
    return xerr_xenapi_missing_plugin(errp, "conversion");
}
