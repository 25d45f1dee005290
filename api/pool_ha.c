/* api/pool_ha.c - HA with xapi's messages (ocaml/xapi/xapi_ha.ml,
 * xapi_pool.ml, xapi_vm.ml set_ha_restart_priority), on etcd leases.
 *
 * xapi's HA needs a heartbeat through a state file on a shared SR and a
 * network heartbeat (xhad). Here the etcd leases of api/pool_live.c are the
 * heartbeat: a host is live while its lease is, and a host that cannot renew
 * its lease fences itself before the lease ends. pool.enable_ha still takes
 * heartbeat_srs, as clients send it: each must be an SR, none gets a state
 * file, and pool.ha_statefiles stays empty.
 *
 * When the master sees a host's lease end with HA on (pool_ha_host_died),
 * every VM resident on that host is reset to Halted (VM.power_state_reset),
 * then the protected ones restart: priority "restart" before "best-effort",
 * each in VM.order, through ha_restart_vm, placed as VM.start without a host
 * (api/placement.h: the master first when it can run the VM) and forwarded
 * to the chosen host (rpc/peers.h). A failed "restart" is logged with
 * its error; xapi retries in its monitor loop, which is not built here.
 *
 * The failover plan (ha_compute_max_host_failures_to_tolerate) is a memory
 * bound rather than xapi's bin packing (Xapi_ha_vm_failover): the largest n
 * such that, when the n hosts carrying the most protected memory fail, the
 * free memory of the others holds all of it and the largest such VM fits on
 * one survivor.
 */
#include "api/pool_ha.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/domains.h"
#include "api/placement.h"
#include "api/pool_live.h"
#include "common/log.h"
#include "common/workpool.h"
#include "db/db.h"
#include "rpc/peers.h"
#include "xapi_errors.h"
#include "xapi_handlers.h"
#include "xapi_model.h"

#define NULL_REF "OpaqueRef:NULL"

/* pool.ha_prevent_restarts_for: no restart before this (CLOCK_MONOTONIC s) */
static _Atomic long restarts_blocked_until;

static long
mono_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec;
}

/* A superuser context for work the toolstack does by itself. */
static struct call_ctx
system_ctx(struct server *srv)
{
    return (struct call_ctx){.srv = srv, .db = srv->db, .session = "", .user = "root",
                             .superuser = true, .peer = "local", .originator = "HA"};
}

static void
peek_ha(void *opaque, const void *rec)
{
    *(bool *)opaque = ((const struct xapi_pool_record *)rec)->ha_enabled;
}

bool
pool_ha_enabled(struct server *srv)
{
    bool on = false;
    db_with(srv->db, &xapi_class_pool, srv->pool_ref, peek_ha, &on, NULL);
    return on;
}

/* ------------------------------------------------------------------ fencing */

int
pool_ha_fence(struct server *srv, char ***killed)
{
    struct xenops *x = domains_xenops(srv);
    char **uuids = NULL;
    size_t n = 0;
    *killed = NULL;
    if (!x || xenops_domain_list(x, &uuids, &n) < 0)
        return 0;
    /* every device model first, at once: the stops below may each wait */
    for (size_t i = 0; i < n; i++) {
        struct xenops_stats st;
        /* marked first: a domain still there after the mark has its exit
         * events to come, and they are the fencing's; one gone already had
         * its own */
        pool_live_fencing_kills(srv, uuids[i], true);
        int rc = xenops_domain_stats(x, uuids[i], &st);
        if (rc == -ENOENT)
            pool_live_fencing_kills(srv, uuids[i], false);
        else if (rc == 0 && st.pid > 0)
            kill(st.pid, SIGKILL);
    }
    for (size_t i = 0; i < n; i++) {
        domains_stop(srv, uuids[i], false, NULL); /* sim domains, and the bookkeeping */
        log_warn("pool.fence.guest", "vm=%s", uuids[i]);
    }
    char **list = realloc(uuids, (n + 1) * sizeof(*list));
    if (!list) {
        for (size_t i = 0; i < n; i++)
            free(uuids[i]);
        free(uuids);
        return (int)n;
    }
    list[n] = NULL;
    *killed = list;
    return (int)n;
}

/* ------------------------------------------------------------------ restarts */

struct victim {
    char *ref;
    int rank; /* 0 restart, 1 best-effort, 2 not protected */
    int64_t order;
};

struct victims {
    const char *host;
    struct victim *v;
    size_t n;
};

static bool
collect_victim(void *opaque, const char *ref, const void *rec)
{
    struct victims *vs = opaque;
    const struct xapi_vm_record *vm = rec;
    if (vm->is_control_domain || strcmp(vm->resident_on, vs->host) != 0 ||
        vm->power_state == XAPI_VM_POWER_STATE_HALTED)
        return true;
    struct victim *g = realloc(vs->v, (vs->n + 1) * sizeof(*g));
    if (!g)
        return false;
    vs->v = g;
    int rank = !strcmp(vm->ha_restart_priority, "restart")       ? 0
               : !strcmp(vm->ha_restart_priority, "best-effort") ? 1
                                                                  : 2;
    if ((g[vs->n].ref = strdup(ref))) {
        g[vs->n].rank = rank;
        g[vs->n].order = vm->order;
        vs->n++;
    }
    return true;
}

static int
victim_cmp(const void *a, const void *b)
{
    const struct victim *x = a, *y = b;
    if (x->rank != y->rank)
        return x->rank - y->rank;
    return x->order < y->order ? -1 : x->order > y->order;
}

static bool
apply_no_domid(void *opaque, void *rec, struct xerr **errp)
{
    (void)opaque, (void)errp;
    /* the domid was the dead host's: nothing of it (its taps) is here */
    ((struct xapi_vm_record *)rec)->domid = -1;
    return true;
}

bool
ha_restart_vm(struct server *srv, const char *vm, struct xerr **errp)
{
    struct call_ctx ctx = system_ctx(srv);
    char *host = NULL;
    /* VM.start without a host, as a client's would be placed (api/placement.h):
     * a live, enabled host that sees the VM's SRs and has the memory */
    if (!placement_choose_host(&ctx, vm, &host, errp))
        return false;
    if (!host)
        return api_vm_start(&ctx, vm, false, false, errp);
    struct xval *args[3] = {xval_new_string(vm), xval_new_bool(false), xval_new_bool(false)};
    struct xval *out = NULL;
    bool ok = args[0] && args[1] && args[2]
                  ? peers_call(srv, host, "VM.start", true, (const struct xval *const *)args, 3,
                               NULL, &out, errp)
                  : xerr_nomem(errp);
    for (size_t i = 0; i < 3; i++)
        xval_free(args[i]);
    xval_free(out);
    if (ok)
        log_info("pool.ha.restart", "vm=%s placed_on=%s", vm, host);
    free(host);
    return ok;
}

struct died {
    struct server *srv;
    char *host;
};

static void
died_free(void *opaque)
{
    struct died *d = opaque;
    free(d->host);
    free(d);
}

static void
host_died_job(void *opaque)
{
    struct died *d = opaque;
    struct server *srv = d->srv;
    struct victims vs = {.host = d->host};
    db_foreach(srv->db, &xapi_class_vm, collect_victim, &vs);
    if (vs.n)
        log_warn("pool.ha.host_died", "host=%s vms=%zu", d->host, vs.n);
    qsort(vs.v, vs.n, sizeof(*vs.v), victim_cmp);
    struct call_ctx ctx = system_ctx(srv);
    for (size_t i = 0; i < vs.n; i++) {
        struct xerr *err = NULL;
        if (!db_update(srv->db, &xapi_class_vm, vs.v[i].ref, apply_no_domid, NULL, &err) ||
            !api_vm_power_state_reset(&ctx, vs.v[i].ref, &err)) {
            char m[256];
            log_error("pool.ha.reset", "vm=%s error=\"%s\"", vs.v[i].ref,
                      xerr_describe(err, m, sizeof(m)));
            xerr_free(err);
            vs.v[i].rank = 2;
        }
    }
    for (size_t i = 0; i < vs.n; i++) {
        if (vs.v[i].rank < 2) {
            long wait = atomic_load(&restarts_blocked_until) - mono_s();
            if (wait > 0) {
                log_info("pool.ha.restart", "vm=%s delayed_s=%ld", vs.v[i].ref, wait);
                nanosleep(&(struct timespec){wait, 0}, NULL);
            }
            struct xerr *err = NULL;
            if (ha_restart_vm(srv, vs.v[i].ref, &err)) {
                log_info("pool.ha.restart", "vm=%s host=%s priority=%s", vs.v[i].ref,
                         srv->host_ref, vs.v[i].rank ? "best-effort" : "restart");
            } else {
                char m[256];
                log_error("pool.ha.restart", "vm=%s priority=%s error=\"%s\"", vs.v[i].ref,
                          vs.v[i].rank ? "best-effort" : "restart",
                          xerr_describe(err, m, sizeof(m)));
                xerr_free(err);
            }
        }
        free(vs.v[i].ref);
    }
    free(vs.v);
    died_free(d);
}

struct fenced {
    struct server *srv;
    char **uuids; /* NULL-terminated */
};

static void
fenced_free(void *opaque)
{
    struct fenced *f = opaque;
    for (size_t i = 0; f->uuids && f->uuids[i]; i++)
        free(f->uuids[i]);
    free(f->uuids);
    free(f);
}

/* The guests a fencing killed, once the lease is renewed again: still this
 * host's (the master saw no death), so this host resets them and restarts
 * the protected ones itself. */
static void
recover_fenced_job(void *opaque)
{
    struct fenced *f = opaque;
    struct server *srv = f->srv;
    struct victims vs = {.host = srv->host_ref};
    for (size_t i = 0; f->uuids[i]; i++) {
        char *ref = NULL;
        if (db_ref_by_uuid(srv->db, &xapi_class_vm, f->uuids[i], &ref, NULL)) {
            struct victims one = {.host = srv->host_ref};
            struct xapi_vm_record *vm = NULL;
            if (db_get(srv->db, &xapi_class_vm, ref, (void **)&vm, NULL)) {
                collect_victim(&one, ref, vm);
                xapi_vm_record_free(vm);
            }
            struct victim *g = one.n ? realloc(vs.v, (vs.n + 1) * sizeof(*g)) : NULL;
            if (g) {
                vs.v = g;
                vs.v[vs.n++] = one.v[0];
            } else if (one.n) {
                free(one.v[0].ref);
            }
            free(one.v);
        }
        free(ref);
    }
    qsort(vs.v, vs.n, sizeof(*vs.v), victim_cmp);
    struct call_ctx ctx = system_ctx(srv);
    bool ha = pool_ha_enabled(srv);
    for (size_t i = 0; i < vs.n; i++) {
        struct xerr *err = NULL;
        if (api_vm_power_state_reset(&ctx, vs.v[i].ref, &err)) {
            log_warn("pool.ha.fenced_reset", "vm=%s", vs.v[i].ref);
            if (ha && vs.v[i].rank < 2 && ha_restart_vm(srv, vs.v[i].ref, &err))
                log_info("pool.ha.restart", "vm=%s host=%s after=fencing", vs.v[i].ref,
                         srv->host_ref);
        }
        if (err) {
            char m[256];
            log_error("pool.ha.fenced_reset", "vm=%s error=\"%s\"", vs.v[i].ref,
                      xerr_describe(err, m, sizeof(m)));
            xerr_free(err);
        }
        free(vs.v[i].ref);
    }
    free(vs.v);
    fenced_free(f);
}

void
pool_ha_recover_fenced(struct server *srv, char **uuids)
{
    struct fenced *f = calloc(1, sizeof(*f));
    if (f) {
        f->srv = srv;
        f->uuids = uuids;
        if (workpool_submit(srv->workers, recover_fenced_job, fenced_free, f) == 0)
            return;
    }
    log_error("pool.ha.fenced_reset", "reason=out-of-memory");
    if (f)
        fenced_free(f);
    else {
        for (size_t i = 0; uuids && uuids[i]; i++)
            free(uuids[i]);
        free(uuids);
    }
}

void
pool_ha_host_died(struct server *srv, const char *host_ref)
{
    if (strcmp(host_ref, srv->host_ref) == 0)
        return; /* the master is live: it is running this */
    struct died *d = calloc(1, sizeof(*d));
    if (d && (d->host = strdup(host_ref))) {
        d->srv = srv;
        if (workpool_submit(srv->workers, host_died_job, died_free, d) == 0)
            return;
    }
    log_error("pool.ha.host_died", "host=%s reason=out-of-memory", host_ref);
    if (d)
        died_free(d);
}

/* ------------------------------------------------------------------ the plan */

struct plan_host {
    char *ref;
    int64_t total, used, protected_mem, largest;
};

struct plan {
    struct plan_host *h;
    size_t n;
    const char *extra; /* a VM counted as protected (set_ha_restart_priority) */
};

static bool
plan_host(void *opaque, const char *ref, const void *rec)
{
    struct plan *p = opaque;
    const struct xapi_host_record *h = rec;
    struct plan_host *g = realloc(p->h, (p->n + 1) * sizeof(*g));
    if (!g)
        return false;
    p->h = g;
    g[p->n] = (struct plan_host){.ref = strdup(ref)};
    (void)h;
    p->n++;
    return true;
}

static void
peek_total(void *opaque, const void *rec)
{
    *(int64_t *)opaque = ((const struct xapi_host_metrics_record *)rec)->memory_total;
}

static bool
plan_vm(void *opaque, const char *ref, const void *rec)
{
    struct plan *p = opaque;
    const struct xapi_vm_record *vm = rec;
    if (vm->is_control_domain || (vm->power_state != XAPI_VM_POWER_STATE_RUNNING &&
                                  vm->power_state != XAPI_VM_POWER_STATE_PAUSED))
        return true;
    for (size_t i = 0; i < p->n; i++) {
        if (strcmp(p->h[i].ref, vm->resident_on) != 0)
            continue;
        p->h[i].used += vm->memory_static_max;
        if (!strcmp(vm->ha_restart_priority, "restart") || (p->extra && !strcmp(p->extra, ref))) {
            p->h[i].protected_mem += vm->memory_static_max;
            if (vm->memory_static_max > p->h[i].largest)
                p->h[i].largest = vm->memory_static_max;
        }
    }
    return true;
}

static int
by_protected_desc(const void *a, const void *b)
{
    const struct plan_host *x = a, *y = b;
    return x->protected_mem < y->protected_mem ? 1 : x->protected_mem > y->protected_mem ? -1 : 0;
}

static void
peek_metrics_ref(void *opaque, const void *rec)
{
    *(char **)opaque = strdup(((const struct xapi_host_record *)rec)->metrics);
}

static int64_t
max_failures(struct server *srv, const char *extra)
{
    struct plan p = {.extra = extra};
    db_foreach(srv->db, &xapi_class_host, plan_host, &p);
    for (size_t i = 0; i < p.n; i++) {
        char *m = NULL;
        if (p.h[i].ref)
            db_with(srv->db, &xapi_class_host, p.h[i].ref, peek_metrics_ref, &m, NULL);
        if (m)
            db_with(srv->db, &xapi_class_host_metrics, m, peek_total, &p.h[i].total, NULL);
        free(m);
    }
    db_foreach(srv->db, &xapi_class_vm, plan_vm, &p);
    qsort(p.h, p.n, sizeof(*p.h), by_protected_desc);
    int64_t best = 0;
    for (size_t n = p.n ? p.n - 1 : 0; n > 0; n--) {
        int64_t need = 0, largest = 0, free_mem = 0, room = 0;
        for (size_t i = 0; i < n; i++) {
            need += p.h[i].protected_mem;
            if (p.h[i].largest > largest)
                largest = p.h[i].largest;
        }
        for (size_t i = n; i < p.n; i++) {
            int64_t f = p.h[i].total - p.h[i].used;
            free_mem += f > 0 ? f : 0;
            if (f > room)
                room = f;
        }
        if (need <= free_mem && largest <= room) {
            best = (int64_t)n;
            break;
        }
    }
    for (size_t i = 0; i < p.n; i++)
        free(p.h[i].ref);
    free(p.h);
    return best;
}

struct status {
    int64_t max;
    bool force_plan;
};

/* xapi's Xapi_ha_vm_failover.update_pool_status: the plan covers
 * min(ha_host_failures_to_tolerate, what the pool can take). */
static bool
apply_status(void *opaque, void *rec, struct xerr **errp)
{
    (void)errp;
    const struct status *s = opaque;
    struct xapi_pool_record *p = rec;
    p->ha_overcommitted = p->ha_host_failures_to_tolerate > s->max;
    p->ha_plan_exists_for = p->ha_host_failures_to_tolerate < s->max
                                ? p->ha_host_failures_to_tolerate : s->max;
    return true;
}

static bool
update_status(struct server *srv, struct xerr **errp)
{
    struct status s = {.max = max_failures(srv, NULL)};
    return db_update(srv->db, &xapi_class_pool, srv->pool_ref, apply_status, &s, errp);
}

/* ------------------------------------------------------------------ the messages */

struct ha_settings {
    bool enable;
    const struct xapi_string_string_map *configuration;
};

static bool
apply_ha(void *opaque, void *rec, struct xerr **errp)
{
    const struct ha_settings *s = opaque;
    struct xapi_pool_record *p = rec;
    p->ha_enabled = s->enable;
    xtype_value_clear(&xapi_type_string_string_map, &p->ha_configuration);
    xtype_value_clear(&xapi_type_string_set, &p->ha_statefiles); /* no state file (file header) */
    if (s->enable && xtype_value_copy(&xapi_type_string_string_map, &p->ha_configuration,
                                      s->configuration) < 0)
        return xerr_nomem(errp);
    if (!s->enable) {
        p->ha_plan_exists_for = 0;
        p->ha_overcommitted = false;
    }
    return true;
}

struct offline {
    struct server *srv;
    char *host;
};

static void
peek_live(void *opaque, const void *rec)
{
    *(bool *)opaque = ((const struct xapi_host_metrics_record *)rec)->live;
}

static bool
find_offline(void *opaque, const char *ref, const void *rec)
{
    struct offline *o = opaque;
    const struct xapi_host_record *h = rec;
    bool live = false;
    db_with(o->srv->db, &xapi_class_host_metrics, h->metrics, peek_live, &live, NULL);
    if (live && pool_live_host_is_live(o->srv, ref))
        return true;
    o->host = strdup(ref);
    return false;
}

bool
api_pool_enable_ha(struct call_ctx *ctx, const struct xapi_ref_set *heartbeat_srs,
                   const struct xapi_string_string_map *configuration, struct xerr **errp)
{
    if (pool_ha_enabled(ctx->srv))
        return xerr_ha_is_enabled(errp);
    for (size_t i = 0; i < heartbeat_srs->n; i++)
        if (!db_exists(ctx->db, &xapi_class_sr, heartbeat_srs->items[i]))
            return xerr_handle_invalid(errp, "SR", heartbeat_srs->items[i]);
    /* xapi_ha.ml: every host must be live, or the liveset cannot form */
    struct offline o = {ctx->srv, NULL};
    db_foreach(ctx->db, &xapi_class_host, find_offline, &o);
    if (o.host) {
        bool r = xerr_host_offline(errp, o.host);
        free(o.host);
        return r;
    }
    struct ha_settings s = {true, configuration};
    if (!db_update(ctx->db, &xapi_class_pool, ctx->srv->pool_ref, apply_ha, &s, errp) ||
        !update_status(ctx->srv, errp))
        return false;
    log_info("pool.ha", "enabled=1 heartbeat=etcd-leases heartbeat_srs=%zu", heartbeat_srs->n);
    return true;
}

bool
api_pool_disable_ha(struct call_ctx *ctx, struct xerr **errp)
{
    if (!pool_ha_enabled(ctx->srv))
        return xerr_ha_not_enabled(errp);
    struct ha_settings s = {false, NULL};
    if (!db_update(ctx->db, &xapi_class_pool, ctx->srv->pool_ref, apply_ha, &s, errp))
        return false;
    log_info("pool.ha", "enabled=0");
    return true;
}

static void
peek_pool_plan(void *opaque, const void *rec)
{
    const struct xapi_pool_record *p = rec;
    int64_t *out = opaque;
    out[0] = p->ha_plan_exists_for;
    out[1] = p->ha_allow_overcommit;
    out[2] = p->ha_host_failures_to_tolerate;
    out[3] = p->ha_enabled;
}

static bool
apply_ftt(void *opaque, void *rec, struct xerr **errp)
{
    (void)errp;
    ((struct xapi_pool_record *)rec)->ha_host_failures_to_tolerate = *(const int64_t *)opaque;
    return true;
}

bool
api_pool_set_ha_host_failures_to_tolerate(struct call_ctx *ctx, const char *self, int64_t value,
                                          struct xerr **errp)
{
    if (!db_exists(ctx->db, &xapi_class_pool, self))
        return xerr_handle_invalid(errp, "pool", self);
    if (value < 0) {
        char v[24];
        snprintf(v, sizeof(v), "%lld", (long long)value);
        return xerr_invalid_value(errp, "ha_host_failures_to_tolerate", v);
    }
    int64_t st[4] = {0};
    db_with(ctx->db, &xapi_class_pool, self, peek_pool_plan, st, NULL);
    /* xapi_pool.ml: a plan that exists must survive the change */
    if (st[0] > 0 && !st[1] && value > max_failures(ctx->srv, NULL))
        return xerr_ha_operation_would_break_failover_plan(errp);
    return db_update(ctx->db, &xapi_class_pool, self, apply_ftt, &value, errp) &&
           update_status(ctx->srv, errp);
}

bool
api_pool_ha_compute_max_host_failures_to_tolerate(struct call_ctx *ctx, int64_t *result,
                                                  struct xerr **errp)
{
    *result = max_failures(ctx->srv, NULL);
    return !pool_ha_enabled(ctx->srv) || update_status(ctx->srv, errp);
}

bool
api_pool_ha_prevent_restarts_for(struct call_ctx *ctx, int64_t seconds, struct xerr **errp)
{
    (void)ctx, (void)errp;
    /* xapi_ha.ml: accepted with HA off too, it may be about to be enabled */
    atomic_store(&restarts_blocked_until, seconds > 0 ? mono_s() + (long)seconds : 0);
    log_info("pool.ha", "restarts_blocked_s=%lld", (long long)seconds);
    return true;
}

struct vm_ha {
    const char *value;
    char *current;
    int ps;
};

static void
peek_vm_ha(void *opaque, const void *rec)
{
    struct vm_ha *h = opaque;
    const struct xapi_vm_record *vm = rec;
    h->current = strdup(vm->ha_restart_priority);
    h->ps = vm->power_state;
}

static bool
apply_priority(void *opaque, void *rec, struct xerr **errp)
{
    const char *value = opaque;
    struct xapi_vm_record *vm = rec;
    if (!xstr_set(&vm->ha_restart_priority, value))
        return xerr_nomem(errp);
    /* a running VM is protected (or not) at once: ha_always_run follows */
    if (vm->power_state == XAPI_VM_POWER_STATE_RUNNING)
        vm->ha_always_run = strcmp(value, "restart") == 0;
    return true;
}

bool
api_vm_set_ha_restart_priority(struct call_ctx *ctx, const char *self, const char *value,
                               struct xerr **errp)
{
    if (strcmp(value, "restart") && strcmp(value, "best-effort") && value[0])
        return xerr_invalid_value(errp, "ha_restart_priority", value);
    struct vm_ha h = {.value = value};
    if (!db_with(ctx->db, &xapi_class_vm, self, peek_vm_ha, &h, errp))
        return false;
    bool newly = h.current && strcmp(h.current, "restart") && !strcmp(value, "restart");
    free(h.current);
    if (newly && h.ps != XAPI_VM_POWER_STATE_HALTED) {
        int64_t st[4] = {0};
        db_with(ctx->db, &xapi_class_pool, ctx->srv->pool_ref, peek_pool_plan, st, NULL);
        /* Xapi_ha_vm_failover.assert_new_vm_preserves_ha_plan */
        if (st[3] && !st[1] && st[2] > max_failures(ctx->srv, self))
            return xerr_ha_operation_would_break_failover_plan(errp);
    }
    return db_update(ctx->db, &xapi_class_vm, self, apply_priority, (void *)value, errp) &&
           (!pool_ha_enabled(ctx->srv) || update_status(ctx->srv, errp));
}

bool
api_vm_set_ha_always_run(struct call_ctx *ctx, const char *self, bool value, struct xerr **errp)
{
    /* deprecated since Boston: xapi_vm.ml maps it onto the restart priority */
    return api_vm_set_ha_restart_priority(ctx, self, value ? "restart" : "", errp);
}
