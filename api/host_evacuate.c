/* api/host_evacuate.c - host.evacuate, host.get_vms_which_prevent_evacuation,
 * host.assert_can_evacuate and host.declare_dead (xapi's ocaml/xapi/xapi_host.ml).
 *
 * The plan (xapi_host.ml compute_evacuation_plan_no_wlb), per VM resident on
 * the host other than its control domain (halted and suspended VMs are not
 * resident anywhere, so they stay where they are, as in xapi):
 *   - the targets are the pool's other enabled hosts; none: NO_HOSTS_AVAILABLE [vm];
 *   - with HA on, a VM that is not protected: HOST_EVACUATE_VM_NOT_HA_PROTECTED [vm];
 *   - a VM that cannot boot on every target without the memory check
 *     (VM.assert_can_boot_here: a disk on an SR a target does not see is
 *     VM_REQUIRES_SR [vm, sr], a dead target HOST_NOT_LIVE) has that error;
 *   - a VM whose state forbids pool_migrate now has that error (replacing the above);
 *   - the others are placed by memory (api/host_evacuate.h); one that fits
 *     nowhere: HOST_NOT_ENOUGH_FREE_MEMORY [vm]; a placed one is checked again
 *     on its host.
 * get_vms_which_prevent_evacuation answers the errors as VM -> [code, params...];
 * assert_can_evacuate raises CANNOT_EVACUATE_HOST ["code,p1,...|code,..."].
 *
 * evacuate runs on the host it empties (datamodel "forward": host): each VM
 * goes by VM.pool_migrate's own handler (checks, the VM's operation lock, the
 * two halves in api/vm_migrate_pool.c), one at a time (xapi runs
 * evacuate_batch_size at once; here the argument is accepted and the
 * migrations are sequential), progress k/n on the task after the k-th VM. A
 * plan with any error raises that error and moves nothing. A migration that
 * fails stops the evacuation with its error (VMs moved so far stay moved; the
 * failed VM runs on here, or is Halted if it was lost half-way, as
 * VM.pool_migrate leaves it); one whose VM was halted meanwhile
 * (VM_BAD_POWER_STATE) is skipped, as xapi does. task.cancel is honoured
 * between two VMs. The host's enabled flag is left as it is: xapi's
 * evacuate does not change it (clients disable the host first, as
 * XenCenter's maintenance mode does). Only one evacuation of the host runs
 * at a time (xapi's with_host_operation `evacuate`, kept in this process,
 * not in host.current_operations).
 */
#include "api/host_evacuate.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/placement.h"
#include "api/vm_ops.h"
#include "common/log.h"
#include "db/db.h"
#include "rpc/ctx.h"
#include "xapi_errors.h"
#include "xapi_handlers.h"
#include "xapi_model.h"

/* ------------------------------------------------------------------ binpack */

void
evacuate_binpack(struct evac_vm *vms, size_t n_vms, struct evac_host *hosts, size_t n_hosts)
{
    bool *placed = calloc(n_vms ? n_vms : 1, sizeof(*placed));
    for (size_t i = 0; i < n_vms; i++)
        vms[i].target = NULL;
    for (size_t round = 0; placed && round < n_vms; round++) {
        size_t big = n_vms;
        for (size_t i = 0; i < n_vms; i++)
            if (!placed[i] && (big == n_vms || vms[i].memory > vms[big].memory))
                big = i;
        placed[big] = true;
        size_t best = n_hosts;
        for (size_t h = 0; h < n_hosts; h++) {
            bool fits = hosts[h].free < 0 || hosts[h].free >= vms[big].memory;
            if (!fits)
                continue;
            if (best == n_hosts ||
                (hosts[best].free >= 0 && (hosts[h].free < 0 || hosts[h].free > hosts[best].free)))
                best = h;
        }
        if (best == n_hosts)
            continue;
        vms[big].target = hosts[best].ref;
        if (hosts[best].free >= 0)
            hosts[best].free -= vms[big].memory;
    }
    free(placed);
}

/* ------------------------------------------------------------------ the plan */

struct plan_vm {
    char *ref;
    struct xapi_vm_record *rec;
    struct xerr *err; /* why it cannot move, or NULL */
    const char *target;
};

struct plan {
    struct plan_vm *vms;
    size_t n;
    char **targets;
    size_t n_targets;
    bool oom;
};

static void
plan_free(struct plan *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->vms[i].ref);
        xapi_vm_record_free(p->vms[i].rec);
        xerr_free(p->vms[i].err);
    }
    free(p->vms);
    for (size_t i = 0; i < p->n_targets; i++)
        free(p->targets[i]);
    free(p->targets);
}

/* xapi's Hashtbl.replace: a later finding replaces an earlier one. */
static void
plan_set_error(struct plan_vm *v, struct xerr *err)
{
    xerr_free(v->err);
    v->err = err;
}

struct collect {
    struct plan *p;
    const char *host;
};

static bool
collect_vm(void *opaque, const char *ref, const void *rec)
{
    struct collect *c = opaque;
    const struct xapi_vm_record *vm = rec;
    if (vm->is_control_domain || strcmp(vm->resident_on, c->host) != 0)
        return true;
    struct plan_vm *grown = realloc(c->p->vms, (c->p->n + 1) * sizeof(*grown));
    if (!grown) {
        c->p->oom = true;
        return false;
    }
    c->p->vms = grown;
    struct plan_vm *v = &grown[c->p->n];
    *v = (struct plan_vm){strdup(ref), NULL, NULL, NULL};
    if (!v->ref) {
        c->p->oom = true;
        return false;
    }
    c->p->n++;
    return true;
}

static bool
collect_target(void *opaque, const char *ref, const void *rec)
{
    struct collect *c = opaque;
    const struct xapi_host_record *h = rec;
    if (!h->enabled || strcmp(ref, c->host) == 0)
        return true;
    char **grown = realloc(c->p->targets, (c->p->n_targets + 1) * sizeof(*grown));
    if (!grown || !(grown[c->p->n_targets] = strdup(ref))) {
        if (grown)
            c->p->targets = grown;
        c->p->oom = true;
        return false;
    }
    c->p->targets = grown;
    c->p->n_targets++;
    return true;
}

/* Helpers.vm_should_always_run: what HA protects. */
static bool
ha_protected(const struct xapi_vm_record *vm)
{
    return vm->ha_always_run && strcmp(vm->ha_restart_priority, "restart") == 0;
}

static bool
pool_ha_enabled(struct call_ctx *ctx)
{
    bool ha = false;
    db_get_field(ctx->db, &xapi_class_pool, ctx->srv->pool_ref,
                 xclass_field(&xapi_class_pool, "ha_enabled"), &ha, NULL);
    return ha;
}

/* The first error VM @v meets booting on each of @hosts (no memory check). */
static struct xerr *
boot_error(struct call_ctx *ctx, const struct plan_vm *v, char *const *hosts, size_t n)
{
    struct xerr *err = NULL;
    for (size_t i = 0; i < n && !err; i++)
        vm_can_boot_here(ctx, v->ref, v->rec, hosts[i], false, &err);
    return err;
}

static bool
placement_by_memory(struct call_ctx *ctx, struct plan *p, const bool *movable)
{
    struct evac_vm *vms = calloc(p->n ? p->n : 1, sizeof(*vms));
    struct evac_host *hosts = calloc(p->n_targets ? p->n_targets : 1, sizeof(*hosts));
    size_t *index = calloc(p->n ? p->n : 1, sizeof(*index));
    bool ok = vms && hosts && index;
    size_t n = 0;
    for (size_t i = 0; ok && i < p->n; i++)
        if (movable[i]) {
            vms[n] = (struct evac_vm){p->vms[i].ref, p->vms[i].rec->memory_dynamic_max, NULL};
            index[n++] = i;
        }
    for (size_t h = 0; ok && h < p->n_targets; h++)
        hosts[h] = (struct evac_host){p->targets[h],
                                      placement_host_free_memory(ctx->db, p->targets[h])};
    if (ok)
        evacuate_binpack(vms, n, hosts, p->n_targets);
    for (size_t k = 0; ok && k < n; k++) {
        struct plan_vm *v = &p->vms[index[k]];
        struct xerr *err = NULL;
        if (!vms[k].target) {
            xerr_host_not_enough_free_memory_vm(&err, v->ref);
            plan_set_error(v, err);
            continue;
        }
        if (!vm_can_boot_here(ctx, v->ref, v->rec, vms[k].target, false, &err)) {
            plan_set_error(v, err);
            continue;
        }
        if (!v->err)
            v->target = vms[k].target; /* points into p->targets */
    }
    free(vms);
    free(hosts);
    free(index);
    return ok;
}

static bool
plan_compute(struct call_ctx *ctx, const char *host, struct plan *p, struct xerr **errp)
{
    *p = (struct plan){0};
    if (!db_exists(ctx->db, &xapi_class_host, host))
        return xerr_handle_invalid(errp, "host", host);
    struct collect c = {p, host};
    db_foreach(ctx->db, &xapi_class_host, collect_target, &c);
    if (!p->oom)
        db_foreach(ctx->db, &xapi_class_vm, collect_vm, &c);
    for (size_t i = 0; !p->oom && i < p->n; i++)
        if (!db_get(ctx->db, &xapi_class_vm, p->vms[i].ref, (void **)&p->vms[i].rec, errp)) {
            plan_free(p);
            *p = (struct plan){0};
            return false;
        }
    if (p->oom) {
        plan_free(p);
        *p = (struct plan){0};
        return xerr_nomem(errp);
    }
    if (p->n_targets == 0) {
        for (size_t i = 0; i < p->n; i++) {
            struct xerr *err = NULL;
            xerr_no_hosts_available_vm(&err, p->vms[i].ref);
            plan_set_error(&p->vms[i], err);
        }
        return true;
    }
    bool ha = pool_ha_enabled(ctx);
    bool *movable = calloc(p->n ? p->n : 1, sizeof(*movable));
    if (!movable) {
        plan_free(p);
        *p = (struct plan){0};
        return xerr_nomem(errp);
    }
    for (size_t i = 0; i < p->n; i++) {
        struct plan_vm *v = &p->vms[i];
        struct xerr *err = NULL;
        if (ha && !ha_protected(v->rec))
            xerr_host_evacuate_vm_not_ha_protected(&err, v->ref);
        else
            err = boot_error(ctx, v, p->targets, p->n_targets);
        movable[i] = !err;
        if (err)
            plan_set_error(v, err);
    }
    /* Xapi_vm_lifecycle.get_operation_error ~op:`pool_migrate ~strict:true */
    for (size_t i = 0; i < p->n; i++) {
        struct xerr *err = NULL;
        if (!vm_op_check(p->vms[i].rec, p->vms[i].ref, XAPI_VM_OPERATIONS_POOL_MIGRATE, &err))
            plan_set_error(&p->vms[i], err);
    }
    bool ok = placement_by_memory(ctx, p, movable);
    free(movable);
    if (!ok) {
        plan_free(p);
        *p = (struct plan){0};
        return xerr_nomem(errp);
    }
    return true;
}

static void
log_plan(const char *host, const struct plan *p)
{
    for (size_t i = 0; i < p->n; i++) {
        char why[256] = "";
        if (p->vms[i].err)
            xerr_describe(p->vms[i].err, why, sizeof(why));
        log_info("host.evacuation_plan", "host=%s vm=%s target=%s error=\"%s\"", host,
                 p->vms[i].rec->uuid, p->vms[i].target ? p->vms[i].target : "", why);
    }
}

/* ------------------------------------------------------------------ the checks */

bool
api_host_get_vms_which_prevent_evacuation(struct call_ctx *ctx, const char *self,
                                          struct xapi_ref_string_set_map *result,
                                          struct xerr **errp)
{
    struct plan p;
    if (!plan_compute(ctx, self, &p, errp))
        return false;
    bool ok = true;
    size_t n = 0;
    for (size_t i = 0; i < p.n; i++)
        n += p.vms[i].err != NULL;
    result->n = 0;
    result->keys = calloc(n ? n : 1, sizeof(*result->keys));
    result->values = calloc(n ? n : 1, sizeof(*result->values));
    ok = result->keys && result->values;
    for (size_t i = 0; ok && i < p.n; i++) {
        const struct xerr *e = p.vms[i].err;
        if (!e)
            continue;
        struct xapi_string_set *set = &result->values[result->n];
        if (!(result->keys[result->n] = strdup(p.vms[i].ref))) {
            ok = false;
            break;
        }
        result->n++;
        ok = xset_append_str((struct xset *)set, e->code) == 0;
        for (size_t k = 0; ok && k < e->n_params; k++)
            ok = xset_append_str((struct xset *)set, e->params[k]) == 0;
    }
    log_plan(self, &p);
    plan_free(&p);
    return ok || xerr_nomem(errp);
}

bool
api_host_assert_can_evacuate(struct call_ctx *ctx, const char *host, struct xerr **errp)
{
    struct plan p;
    if (!plan_compute(ctx, host, &p, errp))
        return false;
    /* the "Old Miami style" encoding: code,params joined by ",", errors by "|" */
    size_t len = 1;
    for (size_t i = 0; i < p.n; i++)
        if (p.vms[i].err) {
            len += strlen(p.vms[i].err->code) + 1;
            for (size_t k = 0; k < p.vms[i].err->n_params; k++)
                len += strlen(p.vms[i].err->params[k] ? p.vms[i].err->params[k] : "") + 1;
        }
    char *all = calloc(len, 1);
    bool ok = all != NULL;
    for (size_t i = 0; ok && i < p.n; i++) {
        const struct xerr *e = p.vms[i].err;
        if (!e)
            continue;
        if (all[0])
            strcat(all, "|");
        strcat(all, e->code);
        for (size_t k = 0; k < e->n_params; k++) {
            strcat(all, ",");
            strcat(all, e->params[k] ? e->params[k] : "");
        }
    }
    log_plan(host, &p);
    plan_free(&p);
    if (!ok)
        return xerr_nomem(errp);
    ok = !all[0] || xerr_cannot_evacuate_host(errp, all);
    free(all);
    return ok;
}

/* ------------------------------------------------------------------ evacuate */

/* with_host_operation `evacuate`: one evacuation of this host at a time */
static pthread_mutex_t evacuating_mu = PTHREAD_MUTEX_INITIALIZER;
static char evacuating[64]; /* the running one's task, "" when none */

static bool
evacuation_begin(struct call_ctx *ctx, const char *host, char *key, size_t len,
                 struct xerr **errp)
{
    vm_op_key(ctx, key, len);
    pthread_mutex_lock(&evacuating_mu);
    char other[64];
    snprintf(other, sizeof(other), "%s", evacuating);
    if (!other[0])
        snprintf(evacuating, sizeof(evacuating), "%s", key);
    pthread_mutex_unlock(&evacuating_mu);
    return !other[0] || xerr_other_operation_in_progress(errp, "host", host, "evacuate", other);
}

static void
evacuation_end(void)
{
    pthread_mutex_lock(&evacuating_mu);
    evacuating[0] = '\0';
    pthread_mutex_unlock(&evacuating_mu);
}

/* xapi's assert_valid_ip_configuration_on_network_for_host for each
 * destination of the plan. */
struct net_on_host {
    const char *network, *host;
    char *pif;
    bool attached, has_ip;
};

static bool
find_pif(void *opaque, const char *ref, const void *rec)
{
    struct net_on_host *n = opaque;
    const struct xapi_pif_record *pif = rec;
    if (strcmp(pif->network, n->network) != 0 || strcmp(pif->host, n->host) != 0)
        return true;
    n->pif = strdup(ref);
    n->attached = pif->currently_attached;
    n->has_ip = pif->IP[0] || pif->IPv6.n > 0;
    return false;
}

static bool
network_usable(struct call_ctx *ctx, const char *network, const struct plan *p,
               struct xerr **errp)
{
    if (!db_exists(ctx->db, &xapi_class_network, network))
        return xerr_handle_invalid(errp, "network", network);
    bool ok = true;
    for (size_t i = 0; ok && i < p->n; i++) {
        if (!p->vms[i].target)
            continue;
        struct net_on_host n = {network, p->vms[i].target, NULL, false, false};
        db_foreach(ctx->db, &xapi_class_pif, find_pif, &n);
        if (!n.pif)
            ok = xerr_pif_not_present(errp, p->vms[i].target, network);
        else if (!n.attached)
            ok = xerr_required_pif_is_unplugged(errp, n.pif);
        else if (!n.has_ip)
            ok = xerr_interface_has_no_ip(errp, n.pif);
        free(n.pif);
    }
    return ok;
}

static bool
valid_ref(const char *ref)
{
    return ref && ref[0] && strcmp(ref, "OpaqueRef:NULL") != 0;
}

static size_t
count_resident(struct call_ctx *ctx, const char *host)
{
    struct plan p = {0};
    struct collect c = {&p, host};
    db_foreach(ctx->db, &xapi_class_vm, collect_vm, &c);
    size_t n = p.n;
    plan_free(&p);
    return n;
}

static bool
migrate_all(struct call_ctx *ctx, const char *host, const char *network, struct plan *p,
            struct xerr **errp)
{
    struct xapi_string_string_map options = {0};
    bool ok = xmap_put_str((struct xmap *)&options, "live", "true") == 0 &&
              (!valid_ref(network) ||
               xmap_put_str((struct xmap *)&options, "network", network) == 0);
    if (!ok)
        return xerr_nomem(errp);
    /* each migration reports its own progress nowhere: the task shows VMs done */
    struct call_ctx one = *ctx;
    one.task = NULL;
    for (size_t i = 0; ok && i < p->n; i++) {
        if (ctx_cancelled(ctx)) {
            ok = xerr_task_cancelled(errp, ctx->task ? ctx->task : "OpaqueRef:NULL");
            break;
        }
        struct plan_vm *v = &p->vms[i];
        struct xerr *err = NULL;
        log_info("host.evacuate_vm", "host=%s vm=%s target=%s", host, v->rec->uuid, v->target);
        if (!api_vm_pool_migrate(&one, v->ref, v->target, &options, &err)) {
            if (!err)
                xerr_internal(&err, "migrating %s to %s failed", v->rec->uuid, v->target);
            char why[256];
            log_warn("host.evacuate_vm_failed", "host=%s vm=%s target=%s error=\"%s\"", host,
                     v->rec->uuid, v->target, xerr_describe(err, why, sizeof(why)));
            /* halted meanwhile: nothing to move (xapi's assert_success) */
            if (strcmp(err->code, "VM_BAD_POWER_STATE") != 0)
                ok = xerr_propagate(errp, &err);
            xerr_free(err);
        }
        ctx_progress(ctx, (double)(i + 1) / (double)p->n);
    }
    xtype_value_clear(&xapi_type_string_string_map, &options);
    return ok;
}

bool
api_host_evacuate(struct call_ctx *ctx, const char *host, const char *network,
                  int64_t evacuate_batch_size, struct xerr **errp)
{
    (void)evacuate_batch_size; /* the migrations run one at a time */
    if (!db_exists(ctx->db, &xapi_class_host, host))
        return xerr_handle_invalid(errp, "host", host);
    if (strcmp(host, ctx->srv->host_ref) != 0) /* rpc/dispatch.c forwards it there */
        return xerr_host_offline(errp, host);
    char key[64];
    if (!evacuation_begin(ctx, host, key, sizeof(key), errp))
        return false;
    struct plan p;
    bool ok = plan_compute(ctx, host, &p, errp);
    if (ok) {
        log_plan(host, &p);
        for (size_t i = 0; ok && i < p.n; i++)
            if (p.vms[i].err)
                ok = xerr_propagate(errp, &p.vms[i].err);
        ok = ok && (!valid_ref(network) || network_usable(ctx, network, &p, errp)) &&
             migrate_all(ctx, host, network, &p, errp);
        plan_free(&p);
    }
    if (ok) {
        size_t left = count_resident(ctx, host);
        if (left)
            ok = xerr_internal(errp, "evacuate: %zu VMs are still resident on %s", left, host);
    }
    ctx_progress(ctx, 1.0);
    evacuation_end();
    if (ok)
        log_info("host.evacuate", "host=%s", host);
    return ok;
}

/* ------------------------------------------------------------------ declare_dead */

static bool
host_live(struct db *db, const char *host)
{
    char *metrics = NULL;
    bool live = false;
    if (db_get_field(db, &xapi_class_host, host, xclass_field(&xapi_class_host, "metrics"),
                     &metrics, NULL))
        db_get_field(db, &xapi_class_host_metrics, metrics,
                     xclass_field(&xapi_class_host_metrics, "live"), &live, NULL);
    free(metrics);
    return live;
}

static bool
set_disabled(void *opaque, void *rec, struct xerr **errp)
{
    (void)opaque, (void)errp;
    ((struct xapi_host_record *)rec)->enabled = false;
    return true;
}

/* xapi_host.ml declare_dead: the administrator says the host is down for
 * good; its guests are recorded Halted (VM.power_state_reset, here on this
 * host: the dead host runs nothing) and the host disabled. Refused for this
 * host and a live one (precheck_destroy_declare_dead: HOST_IS_LIVE [host]). */
bool
api_host_declare_dead(struct call_ctx *ctx, const char *host, struct xerr **errp)
{
    if (!db_exists(ctx->db, &xapi_class_host, host))
        return xerr_handle_invalid(errp, "host", host);
    if (strcmp(host, ctx->srv->host_ref) == 0 || host_live(ctx->db, host))
        return xerr_host_is_live(errp, host);
    struct plan p = {0};
    struct collect c = {&p, host};
    db_foreach(ctx->db, &xapi_class_vm, collect_vm, &c);
    bool ok = !p.oom || xerr_nomem(errp);
    for (size_t i = 0; ok && i < p.n; i++) {
        ok = api_vm_power_state_reset(ctx, p.vms[i].ref, errp);
        if (ok)
            log_info("host.declare_dead_vm", "host=%s vm=%s halted", host, p.vms[i].ref);
    }
    plan_free(&p);
    ok = ok && db_update(ctx->db, &xapi_class_host, host, set_disabled, NULL, errp);
    if (ok)
        log_info("host.declare_dead", "host=%s", host);
    return ok;
}
