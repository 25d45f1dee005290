/* api/pool_live.c - liveness, the master's election and the fencing
 * watchdog of a pool host, on etcd leases (db/etcd_lease.h).
 *
 * Keys under the pool's prefix P:
 *   P/live/<host uuid>  on the host's lease; its value is the host's ref
 *   P/master            the master's host uuid, on the master's lease
 * Invariants:
 *  (1) P/master is only ever created when absent (a transaction), or moved
 *      by a compare-and-replace from the holder named in it (designate), or
 *      put by an operator's emergency_transition_to_master; so two hosts
 *      never both read themselves as its holder from one revision.
 *  (2) Only the holder of P/master writes host_metrics.live of other hosts,
 *      and it writes pool.master to itself when it differs: pool.master in
 *      the store is what every other module reads.
 *  (3) A lease ends at etcd no earlier than TTL after the request that last
 *      renewed it was sent (etcd counts from when its leader received it, a
 *      new leader extends every lease). The watchdog measures from the send
 *      time of the last renewal that succeeded, and fences at TTL - TTL/3:
 *      that third (2 s at the default TTL) bounds the watchdog's period
 *      (100 ms), a SIGKILL and the device model's exit (milliseconds), with
 *      room for a stalled scheduler. xapi's Xapi_ha fences through its
 *      watchdog the same way, before its own liveness timeout.
 *  (4) A fenced host starts no guest again by itself until a renewal
 *      succeeds: its guests' deaths are not acted on (pool_live_fenced, read
 *      by vm_lifecycle_on_domain_event), or an actions_after_shutdown of
 *      "restart" would run a guest the master is restarting elsewhere. Nor
 *      is the exit of a domain the fencing killed, whenever it is handled
 *      (pool_live_ignores_exit): a guest's exit is handled after its disk
 *      servers stop, which may wait for etcd, and a renewal may succeed
 *      meanwhile; acted on, a "destroy" would record Halted a guest that the
 *      fencing's recovery or the master is about to restart.
 *
 * A dead master's key ends with its lease; every host watches P/master, and
 * the first one whose create succeeds is master, within one renewal period
 * of the expiry. xapi moves its master by itself only with HA on; here it
 * always does.
 */
#include "api/pool_live.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/pool_ha.h"
#include "api/pool_holders.h"
#include "common/log.h"
#include "db/db.h"
#include "db/etcd_lease.h"
#include "xapi_errors.h"
#include "xapi_model.h"

#define WATCHDOG_MS 100
#define REQUEST_TIMEOUT_MS 1000L
#define HANDOVER_WAIT_MS 15000
/* the held keys whose holder calls are routed by (api/forward.c: a shared
 * SR's collector), watched so that asking is a read of memory */
#define WATCHED_HELD "sr-gc/"

struct pool_live {
    struct server *srv;
    struct etcd_lease *el;
    int renew_ms;
    _Atomic long ttl_ms;       /* the lease's TTL as etcd last gave it */
    char uuid[64];             /* this host's */
    char live_key[80];

    pthread_mutex_t lock;
    pthread_cond_t wake;       /* the heartbeat and the watchdog sleep on it */
    pthread_cond_t role_wake;  /* the role thread sleeps on it */
    bool stop;
    _Atomic int64_t lease;     /* 0: none; written by the heartbeat thread */
    char master[64];           /* P/master's holder, "" none */
    bool master_known;         /* the master watch has listed */
    bool master_listed;        /* a PUT came within the current listing */
    bool was_master;           /* role thread only */
    char **live;               /* uuids with a live key */
    size_t n_live;
    char **listing;            /* being listed by the live watch */
    size_t n_listing;
    bool live_known;
    struct pool_holders *holders; /* WATCHED_HELD keys (api/pool_holders.h) */

    _Atomic long last_ok_ms;   /* send time of the last renewal that succeeded */
    /* pool.ha_enabled as the heartbeat last read it: the watchdog never
     * touches the store, whose reads wait while a commit retries against an
     * etcd that is out of reach (db/db.c holds its lock over the commit) */
    atomic_bool ha;
    _Atomic long fenced_ok_ms; /* the last_ok_ms a fencing was for (watchdog) */
    char **fenced;             /* the uuids it killed, until recovered (lock) */
    char **reaping;            /* the uuids it killed, until their exits are seen (lock) */
    size_t n_reaping;
    int64_t fenced_lease;      /* the lease then (lock) */
    /* Three threads, so that renewing the lease never waits for the store:
     * the heartbeat talks to etcd only; the role thread reads and writes the
     * store (pool.master, liveness, the HA flag); the watchdog reads neither. */
    pthread_t heartbeat, role, watchdog;
    bool running;
};

static long
now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000L + t.tv_nsec / 1000000L;
}

/* ------------------------------------------------------------------ the store's side */

struct host_peek {
    char *uuid, *metrics, *address;
};

static void
peek_host(void *opaque, const void *rec)
{
    struct host_peek *p = opaque;
    const struct xapi_host_record *h = rec;
    p->uuid = strdup(h->uuid);
    p->metrics = strdup(h->metrics);
    p->address = strdup(h->address);
}

static void
host_peek_free(struct host_peek *p)
{
    free(p->uuid);
    free(p->metrics);
    free(p->address);
}

static bool
apply_live(void *opaque, void *rec, struct xerr **errp)
{
    (void)errp;
    struct xapi_host_metrics_record *m = rec;
    bool live = *(const bool *)opaque;
    if (m->live != live) { /* unchanged: nothing written (db_update) */
        m->live = live;
        m->last_updated = time(NULL);
    }
    return true;
}

static void
set_host_live(struct server *srv, const char *host_ref, bool live)
{
    struct host_peek p = {0};
    struct xerr *err = NULL;
    if (db_with(srv->db, &xapi_class_host, host_ref, peek_host, &p, NULL) && p.metrics &&
        !db_update(srv->db, &xapi_class_host_metrics, p.metrics, apply_live, &live, &err)) {
        char d[256];
        log_warn("pool.live.write", "host=%s live=%d error=\"%s\"", host_ref, live,
                 xerr_describe(err, d, sizeof(d)));
        xerr_free(err);
    }
    host_peek_free(&p);
}

static void
peek_master(void *opaque, const void *rec)
{
    *(char **)opaque = strdup(((const struct xapi_pool_record *)rec)->master);
}

static char *
pool_master(struct server *srv)
{
    char *m = NULL;
    db_with(srv->db, &xapi_class_pool, srv->pool_ref, peek_master, &m, NULL);
    return m;
}

bool
pool_live_shared(struct server *srv)
{
    return srv->live && srv->live->el;
}

bool
pool_live_cut_off(struct server *srv)
{
    struct pool_live *pl = srv->live;
    if (!pl || !pl->el)
        return false;
    long ok = atomic_load(&pl->last_ok_ms), ttl = atomic_load(&pl->ttl_ms);
    return ok && now_ms() - ok >= ttl - ttl / 3;
}

bool
pool_live_is_master(struct server *srv)
{
    char *m = pool_master(srv);
    bool yes = m && strcmp(m, srv->host_ref) == 0 && !pool_live_cut_off(srv);
    free(m);
    return yes;
}

char *
pool_live_master_address(struct server *srv)
{
    char *m = pool_master(srv);
    struct host_peek p = {0};
    if (m)
        db_with(srv->db, &xapi_class_host, m, peek_host, &p, NULL);
    free(m);
    char *a = p.address;
    p.address = NULL;
    host_peek_free(&p);
    return a;
}

static bool
apply_master(void *opaque, void *rec, struct xerr **errp)
{
    struct xapi_pool_record *p = rec;
    return strcmp(p->master, opaque) == 0 || xstr_set(&p->master, opaque) || xerr_nomem(errp);
}

struct host_list {
    char **refs, **uuids;
    size_t n;
};

static bool
collect_host(void *opaque, const char *ref, const void *rec)
{
    struct host_list *l = opaque;
    char **r = realloc(l->refs, (l->n + 1) * sizeof(*r));
    if (r)
        l->refs = r;
    char **u = r ? realloc(l->uuids, (l->n + 1) * sizeof(*u)) : NULL;
    if (!u)
        return false;
    l->uuids = u;
    r[l->n] = strdup(ref);
    u[l->n] = strdup(((const struct xapi_host_record *)rec)->uuid);
    if (r[l->n] && u[l->n])
        l->n++;
    else {
        free(r[l->n]);
        free(u[l->n]);
    }
    return true;
}

static void
host_list_free(struct host_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->refs[i]);
        free(l->uuids[i]);
    }
    free(l->refs);
    free(l->uuids);
}

/* ------------------------------------------------------------------ the live set */

static bool
in_set(char **set, size_t n, const char *uuid)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(set[i], uuid) == 0)
            return true;
    return false;
}

static void
set_add(char ***set, size_t *n, const char *uuid)
{
    if (in_set(*set, *n, uuid))
        return;
    char **s = realloc(*set, (*n + 1) * sizeof(*s));
    if (!s)
        return;
    *set = s;
    if ((s[*n] = strdup(uuid)))
        (*n)++;
}

static void
set_remove(char **set, size_t *n, const char *uuid)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp(set[i], uuid) == 0) {
            free(set[i]);
            set[i] = set[--*n];
            return;
        }
}

static void
set_free(char **set, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(set[i]);
    free(set);
}

static void
set_free_null(char **set)
{
    for (size_t i = 0; set && set[i]; i++)
        free(set[i]);
    free(set);
}

static bool
holds_master(struct pool_live *pl)
{
    pthread_mutex_lock(&pl->lock);
    bool mine = pl->master_known && strcmp(pl->master, pl->uuid) == 0;
    pthread_mutex_unlock(&pl->lock);
    return mine;
}

bool
pool_live_fenced(struct server *srv)
{
    struct pool_live *pl = srv->live;
    return pl && pl->el && atomic_load(&pl->fenced_ok_ms) &&
           atomic_load(&pl->fenced_ok_ms) == atomic_load(&pl->last_ok_ms);
}

void
pool_live_fencing_kills(struct server *srv, const char *uuid, bool kills)
{
    struct pool_live *pl = srv->live;
    if (!pl || !pl->el)
        return;
    pthread_mutex_lock(&pl->lock);
    if (kills)
        set_add(&pl->reaping, &pl->n_reaping, uuid);
    else
        set_remove(pl->reaping, &pl->n_reaping, uuid);
    pthread_mutex_unlock(&pl->lock);
}

bool
pool_live_ignores_exit(struct server *srv, const char *uuid, bool last)
{
    struct pool_live *pl = srv->live;
    if (!pl || !pl->el)
        return false;
    pthread_mutex_lock(&pl->lock);
    bool killed = in_set(pl->reaping, pl->n_reaping, uuid);
    if (killed && last)
        set_remove(pl->reaping, &pl->n_reaping, uuid);
    pthread_mutex_unlock(&pl->lock);
    return killed || pool_live_fenced(srv);
}

bool
pool_live_hold(struct server *srv, const char *key)
{
    struct pool_live *pl = srv->live;
    if (!pl || !pl->el)
        return true;
    int64_t lease = atomic_load(&pl->lease), on = 0;
    if (!lease)
        return false; /* between two leases: nobody can rely on this host */
    char *holder = NULL;
    bool held = false;
    int rc = etcd_lease_get(pl->el, key, &holder, &on);
    if (rc == -ENOENT)
        rc = etcd_lease_create(pl->el, key, pl->uuid, lease, &held);
    else if (rc == 0 && strcmp(holder, pl->uuid) == 0)
        /* ours, maybe on a lease that expired since: put it on this one */
        rc = on == lease ? (held = true, 0)
                         : etcd_lease_replace(pl->el, key, pl->uuid, pl->uuid, lease, &held);
    if (rc < 0 && rc != -ENOENT)
        log_warn("pool.live.hold", "key=%s error=\"%s\"", key, etcd_lease_error());
    free(holder);
    return held;
}

bool
pool_live_take(struct server *srv, const char *key, const char *from_uuid)
{
    struct pool_live *pl = srv->live;
    if (!pl || !pl->el)
        return true;
    int64_t lease = atomic_load(&pl->lease);
    bool taken = false;
    if (lease && from_uuid && strcmp(from_uuid, pl->uuid) != 0 &&
        etcd_lease_replace(pl->el, key, from_uuid, pl->uuid, lease, &taken) < 0)
        log_warn("pool.live.take", "key=%s error=\"%s\"", key, etcd_lease_error());
    return taken || pool_live_hold(srv, key);
}

char *
pool_live_holder(struct server *srv, const char *key)
{
    struct pool_live *pl = srv->live;
    char *holder = NULL;
    if (pl && pl->holders && strncmp(key, WATCHED_HELD, strlen(WATCHED_HELD)) == 0 &&
        pool_holders_get(pl->holders, key, &holder))
        return holder;
    /* asked again once: a holder not known is a call run elsewhere than on
     * the host whose locks order it (a shared SR's collector) */
    for (int i = 0; pl && pl->el && i < 2; i++) {
        int rc = etcd_lease_get(pl->el, key, &holder, NULL);
        if (rc == 0 || rc == -ENOENT)
            return rc == 0 ? holder : NULL;
        holder = NULL;
        log_warn("pool.live.holder", "key=%s try=%d error=\"%s\"", key, i + 1,
                 etcd_lease_error());
    }
    return holder;
}

void
pool_live_release(struct server *srv, const char *key)
{
    struct pool_live *pl = srv->live;
    if (pl && pl->el && etcd_lease_delete(pl->el, key, pl->uuid) < 0)
        log_warn("pool.live.release", "key=%s error=\"%s\"", key, etcd_lease_error());
}

bool
pool_live_host_is_live(struct server *srv, const char *host_ref)
{
    struct pool_live *pl = srv->live;
    if (!pl || !pl->el)
        return strcmp(host_ref, srv->host_ref) == 0;
    struct host_peek p = {0};
    db_with(srv->db, &xapi_class_host, host_ref, peek_host, &p, NULL);
    pthread_mutex_lock(&pl->lock);
    bool live = p.uuid && in_set(pl->live, pl->n_live, p.uuid);
    pthread_mutex_unlock(&pl->lock);
    host_peek_free(&p);
    return live;
}

/* The master's view of every host from the live set: host_metrics.live, and
 * with HA on the VMs of hosts that died while nobody was master (2). */
static void
reconcile_all(struct pool_live *pl)
{
    pthread_mutex_lock(&pl->lock);
    bool known = pl->live_known;
    pthread_mutex_unlock(&pl->lock);
    if (!known)
        return; /* before the live watch listed, every other host would look dead:
                 * its SYNCED does this once it has */
    struct host_list hosts = {0};
    db_foreach(pl->srv->db, &xapi_class_host, collect_host, &hosts);
    bool ha = pool_ha_enabled(pl->srv);
    for (size_t i = 0; i < hosts.n; i++) {
        pthread_mutex_lock(&pl->lock);
        bool live = in_set(pl->live, pl->n_live, hosts.uuids[i]) ||
                    strcmp(hosts.uuids[i], pl->uuid) == 0;
        pthread_mutex_unlock(&pl->lock);
        set_host_live(pl->srv, hosts.refs[i], live);
        if (!live && ha)
            pool_ha_host_died(pl->srv, hosts.refs[i]);
    }
    host_list_free(&hosts);
}

/* One host's key came or went: the master records it (2). */
static void
host_changed(struct pool_live *pl, const char *uuid, bool live)
{
    char *ref = NULL;
    if (!db_ref_by_uuid(pl->srv->db, &xapi_class_host, uuid, &ref, NULL))
        return; /* a host being joined or destroyed */
    log_info("pool.live.host", "host=%s uuid=%s live=%d", ref, uuid, live);
    set_host_live(pl->srv, ref, live);
    if (!live && pool_ha_enabled(pl->srv))
        pool_ha_host_died(pl->srv, ref);
    free(ref);
}

static void
on_live_key(void *opaque, enum etcd_watch_event ev, const char *key, const char *value)
{
    (void)value;
    struct pool_live *pl = opaque;
    const char *uuid = key ? key + strlen("live/") : NULL;
    pthread_mutex_lock(&pl->lock);
    switch (ev) {
    case ETCD_WATCH_RESET:
        set_free(pl->listing, pl->n_listing);
        pl->listing = NULL;
        pl->n_listing = 0;
        pl->live_known = false;
        break;
    case ETCD_WATCH_PUT:
        if (!pl->live_known) {
            set_add(&pl->listing, &pl->n_listing, uuid);
            break;
        }
        bool added = !in_set(pl->live, pl->n_live, uuid);
        set_add(&pl->live, &pl->n_live, uuid);
        pthread_mutex_unlock(&pl->lock);
        if (added && holds_master(pl))
            host_changed(pl, uuid, true);
        return;
    case ETCD_WATCH_DELETE:
        set_remove(pl->live, &pl->n_live, uuid);
        pthread_mutex_unlock(&pl->lock);
        if (holds_master(pl))
            host_changed(pl, uuid, false);
        return;
    case ETCD_WATCH_SYNCED:
        set_free(pl->live, pl->n_live);
        pl->live = pl->listing;
        pl->n_live = pl->n_listing;
        pl->listing = NULL;
        pl->n_listing = 0;
        pl->live_known = true;
        pthread_mutex_unlock(&pl->lock);
        if (holds_master(pl))
            reconcile_all(pl);
        return;
    }
    pthread_mutex_unlock(&pl->lock);
}

static void
on_master_key(void *opaque, enum etcd_watch_event ev, const char *key, const char *value)
{
    struct pool_live *pl = opaque;
    if (key && strcmp(key, "master") != 0)
        return; /* "master..." keys of something else */
    pthread_mutex_lock(&pl->lock);
    switch (ev) {
    case ETCD_WATCH_RESET:
        pl->master_listed = false;
        break;
    case ETCD_WATCH_PUT:
        snprintf(pl->master, sizeof(pl->master), "%s", value);
        pl->master_listed = true;
        break;
    case ETCD_WATCH_DELETE:
        pl->master[0] = 0;
        log_info("pool.master.gone", "uuid=%s", pl->uuid);
        break;
    case ETCD_WATCH_SYNCED:
        if (!pl->master_listed)
            pl->master[0] = 0;
        pl->master_known = true;
        break;
    }
    pthread_cond_broadcast(&pl->role_wake); /* an election may be due */
    pthread_mutex_unlock(&pl->lock);
}

/* ------------------------------------------------------------------ the heartbeat */

static int
put_live_key(struct pool_live *pl)
{
    return etcd_lease_put(pl->el, pl->live_key, pl->srv->host_ref, atomic_load(&pl->lease));
}

/* Grants a lease and puts the live key on it; 0 or -errno. */
static int
take_lease(struct pool_live *pl, long t_send)
{
    int64_t id;
    int ttl;
    int rc = etcd_lease_grant(pl->el, (int)(atomic_load(&pl->ttl_ms) / 1000), &id, &ttl);
    if (rc < 0)
        return rc;
    atomic_store(&pl->lease, id);
    if ((rc = put_live_key(pl)) < 0) {
        etcd_lease_revoke(pl->el, id);
        atomic_store(&pl->lease, 0);
        return rc;
    }
    atomic_store(&pl->ttl_ms, ttl * 1000L);
    atomic_store(&pl->last_ok_ms, t_send);
    log_info("pool.live.lease", "host=%s lease=%" PRIx64 " ttl_s=%d", pl->srv->host_ref,
             (uint64_t)id, ttl);
    return 0;
}

/* The master key: taken when absent (1); its holder makes pool.master say so. */
static void
elect(struct pool_live *pl, int64_t lease)
{
    pthread_mutex_lock(&pl->lock);
    bool absent = pl->master_known && !pl->master[0];
    bool mine = pl->master_known && strcmp(pl->master, pl->uuid) == 0;
    pthread_mutex_unlock(&pl->lock);
    if (absent) {
        bool created = false;
        if (etcd_lease_create(pl->el, "master", pl->uuid, lease, &created) == 0 && created) {
            log_info("pool.master.elected", "host=%s uuid=%s", pl->srv->host_ref, pl->uuid);
            pthread_mutex_lock(&pl->lock);
            snprintf(pl->master, sizeof(pl->master), "%s", pl->uuid);
            pthread_mutex_unlock(&pl->lock);
            mine = true;
        }
    }
    if (!mine) {
        pl->was_master = false;
        return;
    }
    struct xerr *err = NULL;
    if (!db_update(pl->srv->db, &xapi_class_pool, pl->srv->pool_ref, apply_master,
                   pl->srv->host_ref, &err)) {
        char d[256];
        log_warn("pool.master.write", "error=\"%s\"", xerr_describe(err, d, sizeof(d)));
        xerr_free(err);
        return; /* again next round */
    }
    if (!pl->was_master) {
        pl->was_master = true;
        log_info("pool.master.now", "host=%s", pl->srv->host_ref);
        reconcile_all(pl);
    }
}

static void
wait_ms(pthread_cond_t *cond, pthread_mutex_t *lock, long ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    long ns = until.tv_nsec + (ms % 1000) * 1000000L;
    until.tv_sec += ms / 1000 + ns / 1000000000L;
    until.tv_nsec = ns % 1000000000L;
    pthread_cond_timedwait(cond, lock, &until);
}

static void *
heartbeat_main(void *opaque)
{
    struct pool_live *pl = opaque;
    bool failing = false;
    pthread_mutex_lock(&pl->lock);
    while (!pl->stop) {
        pthread_mutex_unlock(&pl->lock);
        long t_send = now_ms();
        int rc, ttl = 0;
        int64_t lease = atomic_load(&pl->lease);
        if (!lease) {
            rc = take_lease(pl, t_send);
        } else if ((rc = etcd_lease_keepalive(pl->el, lease, &ttl)) == 0) {
            atomic_store(&pl->ttl_ms, ttl * 1000L);
            atomic_store(&pl->last_ok_ms, t_send);
        } else if (rc == -ENOENT) {
            log_warn("pool.live.lease", "host=%s lease=%" PRIx64 " reason=expired",
                     pl->srv->host_ref, (uint64_t)lease);
            atomic_store(&pl->lease, 0);
        }
        if (rc < 0 && !failing)
            log_warn("pool.live.renew", "host=%s reason=\"%s\"", pl->srv->host_ref,
                     etcd_lease_error());
        else if (rc == 0 && failing)
            log_info("pool.live.renew", "host=%s renewed=again", pl->srv->host_ref);
        failing = rc < 0;
        pthread_mutex_lock(&pl->lock);
        if (rc == 0)
            pthread_cond_broadcast(&pl->role_wake);
        if (pl->stop || rc == -ENOENT)
            continue; /* a new lease at once */
        wait_ms(&pl->wake, &pl->lock, pl->renew_ms);
    }
    pthread_mutex_unlock(&pl->lock);
    return NULL;
}

/* A renewal came after a fencing. If it renewed the lease the fencing was
 * under, the master saw no death: the killed VMs are this host's to reset
 * and restart. Under a new lease the master has them (pool_ha_host_died). */
static void
recover_fenced(struct pool_live *pl, int64_t lease)
{
    if (pool_live_fenced(pl->srv))
        return;
    pthread_mutex_lock(&pl->lock);
    char **killed = pl->fenced;
    bool same = lease && lease == pl->fenced_lease;
    pl->fenced = NULL;
    pthread_mutex_unlock(&pl->lock);
    if (!killed)
        return;
    log_warn("pool.fence.over", "host=%s lease=%s", pl->srv->host_ref,
             same ? "kept" : "new: the master restarts them");
    if (same)
        pool_ha_recover_fenced(pl->srv, killed);
    else
        set_free_null(killed);
}

/* After each renewal, and when the master key changes: the HA flag the
 * watchdog uses, and the election. */
static void *
role_main(void *opaque)
{
    struct pool_live *pl = opaque;
    pthread_mutex_lock(&pl->lock);
    while (!pl->stop) {
        wait_ms(&pl->role_wake, &pl->lock, pl->renew_ms);
        if (pl->stop)
            break;
        pthread_mutex_unlock(&pl->lock);
        int64_t lease = atomic_load(&pl->lease);
        recover_fenced(pl, lease);
        atomic_store(&pl->ha, pool_ha_enabled(pl->srv));
        if (lease)
            elect(pl, lease);
        else
            pl->was_master = false;
        pthread_mutex_lock(&pl->lock);
    }
    pthread_mutex_unlock(&pl->lock);
    return NULL;
}

/* ------------------------------------------------------------------ fencing */

static void *
watchdog_main(void *opaque)
{
    struct pool_live *pl = opaque;
    pthread_mutex_lock(&pl->lock);
    while (!pl->stop) {
        pthread_mutex_unlock(&pl->lock);
        long ok = atomic_load(&pl->last_ok_ms), ttl = atomic_load(&pl->ttl_ms);
        long since = now_ms() - ok;
        if (ok && ok != atomic_load(&pl->fenced_ok_ms) && since >= ttl - ttl / 3 &&
            atomic_load(&pl->ha)) {
            atomic_store(&pl->fenced_ok_ms, ok); /* once per silence; before the kills (4) */
            char **killed = NULL;
            int64_t lease = atomic_load(&pl->lease);
            int n = pool_ha_fence(pl->srv, &killed);
            pthread_mutex_lock(&pl->lock);
            set_free_null(pl->fenced);
            pl->fenced = killed;
            pl->fenced_lease = lease;
            pthread_mutex_unlock(&pl->lock);
            log_warn("pool.fence", "host=%s guests_killed=%d since_renewal_ms=%ld "
                     "fenced_in_ms=%ld ttl_ms=%ld",
                     pl->srv->host_ref, n, since, now_ms() - ok, ttl);
        }
        pthread_mutex_lock(&pl->lock);
        wait_ms(&pl->wake, &pl->lock, WATCHDOG_MS);
    }
    pthread_mutex_unlock(&pl->lock);
    return NULL;
}

/* ------------------------------------------------------------------ master hand-over */

bool
pool_live_designate(struct server *srv, const char *host, struct xerr **errp)
{
    struct pool_live *pl = srv->live;
    if (!db_exists(srv->db, &xapi_class_host, host))
        return xerr_handle_invalid(errp, "host", host);
    if (pool_ha_enabled(srv))
        return xerr_ha_is_enabled(errp);
    char *m = pool_master(srv);
    bool already = m && strcmp(m, host) == 0;
    free(m);
    if (already)
        return true;
    if (!pl || !pl->el || !pool_live_host_is_live(srv, host))
        return xerr_host_offline(errp, host);
    struct host_peek p = {0};
    db_with(srv->db, &xapi_class_host, host, peek_host, &p, NULL);
    char key[80], *v = NULL, *holder = NULL;
    int64_t lease = 0;
    snprintf(key, sizeof(key), "live/%s", p.uuid ? p.uuid : "");
    int rc = etcd_lease_get(pl->el, key, &v, &lease);
    free(v);
    if (rc == 0)
        rc = etcd_lease_get(pl->el, "master", &holder, NULL);
    bool done = false;
    if (rc == 0)
        rc = etcd_lease_replace(pl->el, "master", holder, p.uuid, lease, &done);
    free(holder);
    host_peek_free(&p);
    if (rc == -ENOENT)
        return xerr_host_offline(errp, host);
    if (rc < 0)
        return xerr_internal(errp, "the master key: %s", etcd_lease_error());
    if (!done)
        return xerr_too_busy(errp);
    log_info("pool.master.designated", "host=%s by=%s", host, srv->host_ref);
    for (long t0 = now_ms(); now_ms() - t0 < HANDOVER_WAIT_MS;) {
        m = pool_master(srv);
        already = m && strcmp(m, host) == 0;
        free(m);
        if (already)
            return true;
        nanosleep(&(struct timespec){0, 50 * 1000000L}, NULL);
    }
    return xerr_internal(errp, "the new master did not take over in %d s", HANDOVER_WAIT_MS / 1000);
}

bool
pool_live_take_master(struct server *srv, struct xerr **errp)
{
    struct pool_live *pl = srv->live;
    if (pool_ha_enabled(srv))
        return xerr_ha_is_enabled(errp);
    if (!pl || !pl->el)
        return true; /* a standalone host is its own master */
    pthread_mutex_lock(&pl->lock);
    pthread_mutex_unlock(&pl->lock);
    int64_t lease = atomic_load(&pl->lease);
    if (!lease)
        return xerr_internal(errp, "this host holds no lease: etcd is out of reach");
    if (etcd_lease_put(pl->el, "master", pl->uuid, lease) < 0)
        return xerr_internal(errp, "the master key: %s", etcd_lease_error());
    log_warn("pool.master.emergency", "host=%s", srv->host_ref);
    pthread_mutex_lock(&pl->lock);
    snprintf(pl->master, sizeof(pl->master), "%s", pl->uuid);
    pthread_mutex_unlock(&pl->lock);
    return db_update(srv->db, &xapi_class_pool, srv->pool_ref, apply_master, srv->host_ref, errp);
}

/* ------------------------------------------------------------------ start / stop */

int
pool_live_start(struct server *srv, const struct pool_live_config *cfg, char *why,
                size_t why_len)
{
    struct pool_live *pl = calloc(1, sizeof(*pl));
    if (!pl)
        return -ENOMEM;
    pl->srv = srv;
    pthread_mutex_init(&pl->lock, NULL);
    pthread_cond_init(&pl->wake, NULL);
    pthread_cond_init(&pl->role_wake, NULL);
    srv->live = pl;
    set_host_live(srv, srv->host_ref, true); /* a host says it is live itself, at start */
    if (!cfg->etcd_spec)
        return 0; /* SQLite: live and master, always */
    struct host_peek p = {0};
    db_with(srv->db, &xapi_class_host, srv->host_ref, peek_host, &p, NULL);
    snprintf(pl->uuid, sizeof(pl->uuid), "%s", p.uuid ? p.uuid : "");
    host_peek_free(&p);
    snprintf(pl->live_key, sizeof(pl->live_key), "live/%s", pl->uuid);
    pl->renew_ms = cfg->renew_ms > 0 ? cfg->renew_ms : POOL_LIVE_RENEW_MS;
    atomic_store(&pl->ttl_ms, (cfg->ttl_s > 0 ? cfg->ttl_s : POOL_LIVE_TTL_S) * 1000L);
    int rc = etcd_lease_open(cfg->etcd_spec, REQUEST_TIMEOUT_MS, &pl->el, why, why_len);
    if (rc < 0)
        return rc;
    atomic_store(&pl->ha, pool_ha_enabled(srv));
    if ((rc = take_lease(pl, now_ms())) < 0) {
        snprintf(why, why_len, "the host's lease: %s", etcd_lease_error());
        return rc;
    }
    pl->holders = pool_holders_new(); /* without it, etcd is asked */
    if ((rc = etcd_lease_watch(pl->el, "live/", on_live_key, pl)) < 0 ||
        (rc = etcd_lease_watch(pl->el, "master", on_master_key, pl)) < 0 ||
        (pl->holders &&
         (rc = etcd_lease_watch(pl->el, WATCHED_HELD, pool_holders_on_event, pl->holders)) < 0)) {
        snprintf(why, why_len, "cannot start the lease watches");
        return rc;
    }
    if (pthread_create(&pl->heartbeat, NULL, heartbeat_main, pl) != 0)
        return -EAGAIN;
    bool role = pthread_create(&pl->role, NULL, role_main, pl) == 0;
    if (!role || pthread_create(&pl->watchdog, NULL, watchdog_main, pl) != 0) {
        pthread_mutex_lock(&pl->lock);
        pl->stop = true;
        pthread_cond_broadcast(&pl->wake);
        pthread_cond_broadcast(&pl->role_wake);
        pthread_mutex_unlock(&pl->lock);
        pthread_join(pl->heartbeat, NULL);
        if (role)
            pthread_join(pl->role, NULL);
        return -EAGAIN;
    }
    pl->running = true;
    log_info("pool.live.start", "host=%s uuid=%s ttl_ms=%ld renew_ms=%d fence_after_ms=%ld",
             srv->host_ref, pl->uuid, atomic_load(&pl->ttl_ms), pl->renew_ms,
             atomic_load(&pl->ttl_ms) - atomic_load(&pl->ttl_ms) / 3);
    return 0;
}

void
pool_live_stop(struct server *srv)
{
    struct pool_live *pl = srv->live;
    if (!pl)
        return;
    if (pl->running) {
        pthread_mutex_lock(&pl->lock);
        pl->stop = true;
        pthread_cond_broadcast(&pl->wake);
        pthread_cond_broadcast(&pl->role_wake);
        pthread_mutex_unlock(&pl->lock);
        pthread_join(pl->heartbeat, NULL);
        pthread_join(pl->role, NULL);
        pthread_join(pl->watchdog, NULL);
    }
    if (pl->el && atomic_load(&pl->lease) && etcd_lease_revoke(pl->el, atomic_load(&pl->lease)) == 0)
        log_info("pool.live.stop", "host=%s lease=revoked", srv->host_ref);
    etcd_lease_close(pl->el); /* stops the watches */
    pool_holders_free(pl->holders);
    srv->live = NULL;
    set_free(pl->live, pl->n_live);
    set_free(pl->listing, pl->n_listing);
    set_free_null(pl->fenced);
    set_free(pl->reaping, pl->n_reaping);
    pthread_cond_destroy(&pl->wake);
    pthread_cond_destroy(&pl->role_wake);
    pthread_mutex_destroy(&pl->lock);
    free(pl);
}
