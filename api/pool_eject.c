/* api/pool_eject.c - pool.eject: a member goes back to being a host of its
 * own (xapi's ocaml/xapi/xapi_pool.ml eject, eject_self).
 *
 * No host-to-host call: the host that takes the call marks the ejected host
 * (host.eject_requested, internal) and waits for its record to leave the
 * store (at most EJECT_WAIT_S; HOST_OFFLINE [host] when it does not, and the
 * mark is taken back). The ejected host sees its mark (a watch of its own
 * record) and does the rest itself (api/pool_eject.h). Unlike xapi, which
 * re-initialises the ejected host's local SRs, the host keeps its SRs, their
 * VDIs and its VMs on them: they are copied back into its own database.
 */
#include "api/pool_eject.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/host_admin.h"
#include "rpc/ctx.h"
#include "api/pool_conf.h"
#include "api/pool_objects.h"
#include "common/log.h"
#include "db/db.h"
#include "xapi_handlers.h"
#include "xapi_model.h"

#define EJECT_WAIT_S 60
#define WATCH_PERIOD_MS 200

/* ------------------------------------------------------------------ the call */

static bool
set_mark(void *opaque, void *rec, struct xerr **errp)
{
    (void)errp;
    ((struct xapi_host_record *)rec)->eject_requested = *(const bool *)opaque;
    return true;
}

struct busy_host {
    const char *host;
    bool busy; /* a VM other than the control domain is not halted there */
};

static bool
vm_running_here(void *opaque, const char *ref, const void *rec)
{
    const struct xapi_vm_record *vm = rec;
    struct busy_host *c = opaque;
    (void)ref;
    if (!vm->is_control_domain && vm->resident_on && strcmp(vm->resident_on, c->host) == 0 &&
        vm->power_state != XAPI_VM_POWER_STATE_HALTED)
        c->busy = true;
    return !c->busy;
}

bool
api_pool_eject(struct call_ctx *ctx, const char *host, struct xerr **errp)
{
    struct xapi_pool_record *pool = NULL;
    if (!db_exists(ctx->db, &xapi_class_host, host))
        return xerr_handle_invalid(errp, "host", host);
    if (!db_get(ctx->db, &xapi_class_pool, ctx->srv->pool_ref, (void **)&pool, errp))
        return false;
    bool ha = pool->ha_enabled, master = strcmp(pool->master, host) == 0;
    xapi_pool_record_free(pool);
    if (ha)
        return xerr_ha_is_enabled(errp);
    if (master) /* xapi raises its exception Cannot_eject_master */
        return xerr_internal(errp, "Xapi_pool.Cannot_eject_master");
    struct busy_host c = {host, false};
    db_foreach(ctx->db, &xapi_class_vm, vm_running_here, &c);
    if (c.busy)
        return xerr_operation_not_allowed(errp, "VM resident on host");
    bool on = true;
    if (!db_update(ctx->db, &xapi_class_host, host, set_mark, &on, errp))
        return false;
    log_info("pool.eject", "host=%s marked=true", host);
    if (strcmp(host, ctx->srv->host_ref) == 0)
        return true; /* this host: its watch does the rest once we answered */
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        if (!db_exists(ctx->db, &xapi_class_host, host)) {
            log_info("pool.eject", "host=%s ejected=true", host);
            return true;
        }
        usleep(100 * 1000);
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while (now.tv_sec - t0.tv_sec < EJECT_WAIT_S);
    bool off = false;
    struct xerr *ignored = NULL;
    if (!db_update(ctx->db, &xapi_class_host, host, set_mark, &off, &ignored))
        xerr_free(ignored);
    log_warn("pool.eject", "host=%s ejected=false reason=\"no answer in %d s\"", host,
             EJECT_WAIT_S);
    return xerr_host_offline(errp, host);
}

/* ------------------------------------------------------------------ the ejected host */

struct pick {
    struct refs sms, templates;
    bool nomem;
};

static bool
pick_sm(void *opaque, const char *ref, const void *rec)
{
    struct pick *p = opaque;
    (void)rec;
    p->nomem |= !refs_add(&p->sms, ref);
    return !p->nomem;
}

static bool
pick_template(void *opaque, const char *ref, const void *rec)
{
    struct pick *p = opaque;
    if (((const struct xapi_vm_record *)rec)->is_default_template)
        p->nomem |= !refs_add(&p->templates, ref);
    return !p->nomem;
}

/* The fresh database's pool: this host its master, its first SR the default. */
static bool
create_own_pool(struct db *fresh, const char *host, const struct owned *o, struct xerr **errp)
{
    struct xapi_pool_record *p = xapi_pool_record_new();
    const char *sr = o->srs.n ? o->srs.v[0] : "OpaqueRef:NULL";
    if (!p || !xstr_set(&p->master, host) || !xstr_set(&p->default_SR, sr) ||
        !xstr_set(&p->suspend_image_SR, sr) || !xstr_set(&p->crash_dump_SR, sr)) {
        xapi_pool_record_free(p);
        return xerr_nomem(errp);
    }
    return db_create(fresh, &xapi_class_pool, NULL, p, NULL, errp);
}

static char *
data_path(const struct server *srv, const char *name)
{
    char *p = NULL;
    return asprintf(&p, "%s/%s", srv->data_dir, name) < 0 ? NULL : p;
}

/* Renames DATA/@from (and its -wal, -shm) to DATA/@to; a missing one is fine. */
static int
move_db(const struct server *srv, const char *from, const char *to)
{
    static const char *const suffix[] = {"", "-wal", "-shm"};
    int rc = 0;
    for (size_t i = 0; i < 3 && rc == 0; i++) {
        char a[512], b[512];
        snprintf(a, sizeof(a), "%s/%s%s", srv->data_dir, from, suffix[i]);
        snprintf(b, sizeof(b), "%s/%s%s", srv->data_dir, to, suffix[i]);
        if (rename(a, b) != 0 && errno != ENOENT)
            rc = -errno;
    }
    return rc;
}

static void
remove_db(const struct server *srv, const char *name)
{
    static const char *const suffix[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        char a[512];
        snprintf(a, sizeof(a), "%s/%s%s", srv->data_dir, name, suffix[i]);
        unlink(a);
    }
}

/* Copies this host's objects into DATA/vessel.db.eject (with a pool, the SMs
 * and the built-in templates), then deletes them from the pool's store. */
static bool
eject_self(struct server *srv, struct xerr **errp)
{
    remove_db(srv, "vessel.db.eject");
    char *path = data_path(srv, "vessel.db.eject"), why[256] = "";
    struct db *fresh = NULL;
    int rc = path ? db_open(path, &fresh, why, sizeof(why)) : -ENOMEM;
    free(path);
    if (rc < 0)
        return xerr_internal(errp, "cannot make the host's own database: %s", why);
    struct owned o;
    struct pick p = {{0}, {0}, false};
    bool found = pool_objects_find(srv->db, fresh, srv->host_ref, true, &o, errp), ok = found;
    if (ok) {
        db_foreach(srv->db, &xapi_class_sm, pick_sm, &p);
        db_foreach(srv->db, &xapi_class_vm, pick_template, &p);
        db_batch_begin(fresh);
        ok = p.nomem ? xerr_nomem(errp)
                     : pool_objects_copy(srv->db, fresh, &o, errp) &&
                           pool_objects_copy_refs(srv->db, fresh, &xapi_class_sm, &p.sms, errp) &&
                           pool_objects_copy_refs(srv->db, fresh, &xapi_class_vm, &p.templates,
                                                  errp) &&
                           create_own_pool(fresh, srv->host_ref, &o, errp);
        ok = db_batch_end(fresh, ok, errp);
    }
    db_close(fresh);
    if (ok) {
        db_batch_begin(srv->db);
        ok = db_batch_end(srv->db, pool_objects_delete(srv->db, &o, errp), errp);
    }
    if (ok)
        log_info("pool.eject", "self=true srs=%zu vdis=%zu vms=%zu", o.srs.n, o.vdis.n, o.vms.n);
    if (found)
        pool_objects_free(&o);
    refs_free(&p.sms);
    refs_free(&p.templates);
    if (!ok) {
        remove_db(srv, "vessel.db.eject");
        return false;
    }
    /* the database from before the join stays aside, under another name */
    if ((rc = move_db(srv, "vessel.db", "vessel.db.pre-join")) < 0 ||
        (rc = move_db(srv, "vessel.db.eject", "vessel.db")) < 0 ||
        (rc = pool_conf_remove(srv->data_dir)) < 0)
        return xerr_internal(errp, "cannot put the host's own database in place: %s",
                             strerror(-rc));
    char *ptoken = data_path(srv, "ptoken");
    if (ptoken)
        unlink(ptoken);
    free(ptoken);
    return true;
}

/* ------------------------------------------------------------------ the watch */

static struct {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool running, stop;
} watch = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

static bool
marked(struct server *srv)
{
    bool mark = false;
    return db_get_field(srv->db, &xapi_class_host, srv->host_ref,
                        xclass_field(&xapi_class_host, "eject_requested"), &mark, NULL) &&
           mark;
}

static void *
watch_main(void *arg)
{
    struct server *srv = arg;
    pthread_mutex_lock(&watch.lock);
    while (!watch.stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += WATCH_PERIOD_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&watch.wake, &watch.lock, &until);
        if (watch.stop || srv->stopping || !marked(srv))
            continue;
        pthread_mutex_unlock(&watch.lock);
        struct xerr *err = NULL;
        bool ok = eject_self(srv, &err);
        if (ok) {
            log_info("pool.eject", "self=true restart_in_s=1");
            srv->restart_store_from_data_dir = true;
            srv->restart_requested = true;
            ok = host_agent_stop_soon(&err);
        }
        if (!ok) {
            char d[512];
            log_error("pool.eject", "self=true error=\"%s\"", xerr_describe(err, d, sizeof(d)));
            xerr_free(err);
            bool off = false;
            struct xerr *ignored = NULL;
            if (!db_update(srv->db, &xapi_class_host, srv->host_ref, set_mark, &off, &ignored))
                xerr_free(ignored);
        }
        pthread_mutex_lock(&watch.lock);
        if (ok)
            break; /* leaving: nothing more to watch */
    }
    pthread_mutex_unlock(&watch.lock);
    return NULL;
}

int
pool_eject_watch_start(struct server *srv)
{
    if (!srv->store_spec || strncmp(srv->store_spec, "etcd:", 5) != 0)
        return 0;
    watch.stop = false;
    int rc = pthread_create(&watch.thread, NULL, watch_main, srv);
    if (rc != 0)
        return -rc;
    watch.running = true;
    return 0;
}

void
pool_eject_watch_stop(struct server *srv)
{
    (void)srv;
    if (!watch.running)
        return;
    pthread_mutex_lock(&watch.lock);
    watch.stop = true;
    pthread_cond_signal(&watch.wake);
    pthread_mutex_unlock(&watch.lock);
    pthread_join(watch.thread, NULL);
    watch.running = false;
}
