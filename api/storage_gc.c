/* api/storage_gc.c - the collector's thread: which SRs, which order, who is paused.
 *
 * One pass per plugged file SR of this host repeats: find a base with a
 * single child (sr_file_gc_find), then
 *  - an interior child: fold it into its parent while everything runs, then
 *    relink its children and hand the VDIs below their shorter chains
 *    (pause, reload: as long as opening a chain takes);
 *  - a leaf holding at most MERGE_MAX_BYTES: pause its disk servers (a
 *    flush), merge, reload, resume. That pause is the only one guests feel,
 *    and it lasts as long as copying that little data;
 *  - a bigger leaf: split it (pause for a snapshot's file work, reload),
 *    which turns its data into an interior case for the next step.
 * Every step is ordered against disk servers starting and stopping by
 * disk_servers_lock, and records are refreshed once the pass changed
 * anything. This is SM's cleanup.py (coalesce, leaf-coalesce through a
 * snapshot) in the shape of this SR. A shared SR has one collector in the
 * pool, the host that holds its key in etcd (pass_shared).
 */
#include "api/storage_gc.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/disk_servers.h"
#include "api/pool_live.h"
#include "api/storage_api.h"
#include "common/log.h"
#include "db/db.h"
#include "storage/sr_file.h"
#include "xapi_model.h"

/* A leaf with more data than this is split first rather than merged while
 * its guest waits: 16 MiB copies in a few tens of milliseconds. */
#define MERGE_MAX_BYTES (16ull * 1024 * 1024)
#define STEPS_PER_PASS 64
#define FAILED_MAX 64

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    bool running, kicked, stop;
    unsigned period_s;
    struct server *srv;
    /* VDIs with a writer that is not a disk server, and children whose
     * step failed: both skipped (the failed ones until restart). */
    char (*writers)[37];
    size_t n_writers;
    char failed[FAILED_MAX][37];
    size_t n_failed;
} gc = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

bool
storage_gc_writer_begin(const char *uuid)
{
    /* under the lock the collector holds while it replaces a leaf: after this
     * returns, no merge or split of @uuid is under way or can start */
    disk_servers_lock();
    pthread_mutex_lock(&gc.lock);
    char(*grown)[37] = realloc(gc.writers, (gc.n_writers + 1) * sizeof(*gc.writers));
    if (grown) {
        gc.writers = grown;
        snprintf(grown[gc.n_writers++], 37, "%s", uuid);
    }
    pthread_mutex_unlock(&gc.lock);
    disk_servers_unlock();
    return grown != NULL;
}

void
storage_gc_writer_end(const char *uuid)
{
    pthread_mutex_lock(&gc.lock);
    for (size_t i = 0; i < gc.n_writers; i++) {
        if (strcasecmp(gc.writers[i], uuid) == 0) {
            memmove(&gc.writers[i], &gc.writers[i + 1], (gc.n_writers - i - 1) * sizeof(*gc.writers));
            gc.n_writers--;
            break;
        }
    }
    pthread_mutex_unlock(&gc.lock);
}

/* VDI @uuid's other_config:leaf-coalesce=false (SM's switch) keeps it as it is. */
static bool
leaf_coalesce_off(struct server *srv, const char *uuid)
{
    char *ref = NULL;
    struct xapi_vdi_record *v = NULL;
    bool off = false;
    if (db_ref_by_uuid(srv->db, &xapi_class_vdi, uuid, &ref, NULL) &&
        db_get(srv->db, &xapi_class_vdi, ref, (void **)&v, NULL)) {
        const char *flag = xmap_get_str((const struct xmap *)&v->other_config, "leaf-coalesce");
        off = flag && strcmp(flag, "false") == 0;
    }
    xapi_vdi_record_free(v);
    free(ref);
    return off;
}

struct vbd_elsewhere {
    const char *host;
    bool found;
};

static void
peek_vm_elsewhere(void *opaque, const void *rec)
{
    const struct xapi_vm_record *vm = rec;
    struct vbd_elsewhere *e = opaque;
    e->found = (vm->power_state == XAPI_VM_POWER_STATE_RUNNING ||
                vm->power_state == XAPI_VM_POWER_STATE_PAUSED) &&
               strcmp(vm->resident_on, e->host) != 0;
}

/* Whether VDI @uuid is attached to a VM of another host: in a shared SR its
 * disk server there is out of reach of this host's pause, so its leaf stays
 * as it is (interior folds are safe: that server reads the same data
 * through the descriptors it holds). */
static bool
attached_elsewhere(struct server *srv, const char *uuid)
{
    char *ref = NULL;
    struct xapi_vdi_record *v = NULL;
    struct vbd_elsewhere e = {srv->host_ref, false};
    if (db_ref_by_uuid(srv->db, &xapi_class_vdi, uuid, &ref, NULL) &&
        db_get(srv->db, &xapi_class_vdi, ref, (void **)&v, NULL))
        for (size_t i = 0; i < v->VBDs.n && !e.found; i++) {
            struct xapi_vbd_record *b = NULL;
            if (db_get(srv->db, &xapi_class_vbd, v->VBDs.items[i], (void **)&b, NULL) &&
                b->currently_attached)
                db_with(srv->db, &xapi_class_vm, b->VM, peek_vm_elsewhere, &e, NULL);
            xapi_vbd_record_free(b);
        }
    xapi_vdi_record_free(v);
    free(ref);
    return e.found;
}

static bool
skip_child(void *opaque, const char *uuid)
{
    if (opaque && (leaf_coalesce_off(opaque, uuid) || attached_elsewhere(opaque, uuid)))
        return true;
    bool skip = false;
    pthread_mutex_lock(&gc.lock);
    for (size_t i = 0; i < gc.n_writers && !skip; i++)
        skip = strcasecmp(gc.writers[i], uuid) == 0;
    for (size_t i = 0; i < gc.n_failed && !skip; i++)
        skip = strcasecmp(gc.failed[i], uuid) == 0;
    pthread_mutex_unlock(&gc.lock);
    return skip;
}

static void
remember_failed(const char *uuid)
{
    pthread_mutex_lock(&gc.lock);
    if (gc.n_failed < FAILED_MAX)
        snprintf(gc.failed[gc.n_failed++], 37, "%s", uuid);
    pthread_mutex_unlock(&gc.lock);
}

/* Hands VDI @uuid's servers its chain as it is now (after a relink). Their
 * old chain still reads right, so a failure only costs the shortening. */
static void
reload_servers(struct server *srv, const char *path, const char *uuid)
{
    struct disk_pause *p = NULL;
    if (disk_servers_pause(srv, path, uuid, &p) < 0)
        return;
    if (disk_servers_paused_count(p) > 0 && disk_servers_reload(p) == 0)
        log_info("gc.reload", "vdi=%s", uuid);
    disk_servers_resume(p);
}

static int
step_interior(struct server *srv, const char *path, const struct sr_file_gc_candidate *c)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = sr_file_gc_fold(path, c, NULL, NULL);
    if (rc < 0)
        return rc;
    char(*leaves)[37] = NULL;
    size_t n = 0;
    disk_servers_lock();
    rc = sr_file_gc_relink(path, c, &leaves, &n);
    for (size_t i = 0; rc == 0 && i < n; i++)
        reload_servers(srv, path, leaves[i]);
    disk_servers_unlock();
    free(leaves);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (rc == 0)
        log_info("gc.coalesce", "sr=%s base=%s into=%s bytes=%llu ms=%lld", path, c->child,
                 c->parent, (unsigned long long)c->child_data,
                 (long long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000));
    return rc;
}

static int
step_leaf(struct server *srv, const char *path, const struct sr_file_gc_candidate *c)
{
    bool merge = c->child_data <= MERGE_MAX_BYTES;
    struct disk_pause *p = NULL;
    struct timespec t0, t1;
    char base[37] = "";
    disk_servers_lock();
    if (skip_child(NULL, c->child)) { /* an import started since the find */
        disk_servers_unlock();
        return -EBUSY;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0); /* the guest waits from here: in-flight I/O, flush */
    int rc = disk_servers_pause(srv, path, c->child, &p);
    if (rc < 0) {
        disk_servers_unlock();
        return rc;
    }
    rc = merge ? sr_file_gc_merge(path, c) : sr_file_vdi_split(path, c->child, base);
    if (rc == 0 && disk_servers_reload(p) < 0) {
        if (!merge && disk_servers_all_on_old_chain(p)) {
            sr_file_vdi_unsplit(path, c->child, base, NULL);
        } else {
            /* the old leaf is no longer the VDI's file, or a server may
             * write to the new one already: the change stays */
            disk_servers_abandon(p);
            p = NULL;
        }
        rc = -EIO;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    size_t paused = disk_servers_paused_count(p);
    disk_servers_resume(p);
    disk_servers_unlock();
    long long us = (t1.tv_sec - t0.tv_sec) * 1000000LL + (t1.tv_nsec - t0.tv_nsec) / 1000;
    if (rc == 0)
        log_info(merge ? "gc.merge" : "gc.split", "sr=%s vdi=%s parent=%s bytes=%llu servers=%zu paused_us=%lld",
                 path, c->child, c->parent, (unsigned long long)c->child_data, paused, us);
    return rc;
}

/* Whether the file system under @path has room for a fold of @bytes (the
 * parent may grow by as much as the child holds) with 1/16 to spare. */
static bool
room_for(const char *path, uint64_t bytes)
{
    uint64_t size = 0, avail = 0;
    if (sr_file_space(path, &size, &avail) < 0)
        return false;
    return avail / 16 * 15 > bytes;
}

static void
collect_sr(struct server *srv, const char *sr, const char *path)
{
    unsigned removed = 0;
    if (sr_file_gc_remove_garbage(path, &removed) < 0)
        log_warn("gc.garbage", "sr=%s error=\"%s\"", path, sr_file_last_error());
    bool changed = removed > 0;
    if (removed)
        log_info("gc.garbage", "sr=%s removed=%u", path, removed);
    for (int steps = 0; steps < STEPS_PER_PASS; steps++) {
        pthread_mutex_lock(&gc.lock);
        bool stop = gc.stop;
        pthread_mutex_unlock(&gc.lock);
        if (stop)
            break;
        struct sr_file_gc_candidate c;
        int rc = sr_file_gc_find(path, skip_child, srv, &c);
        if (rc <= 0) {
            if (rc < 0)
                log_warn("gc.find", "sr=%s error=\"%s\"", path, sr_file_last_error());
            break;
        }
        if (!room_for(path, c.child_data)) {
            log_warn("gc.space", "sr=%s child=%s bytes=%llu: not enough free space to coalesce",
                     path, c.child, (unsigned long long)c.child_data);
            break;
        }
        rc = c.child_is_leaf ? step_leaf(srv, path, &c) : step_interior(srv, path, &c);
        if (rc == -ESTALE || rc == -EBUSY)
            continue; /* the directory changed under the step: look again */
        if (rc < 0) {
            log_error("gc.step", "sr=%s child=%s parent=%s error=\"%s\"", path, c.child, c.parent,
                      sr_file_last_error()[0] ? sr_file_last_error() : strerror(-rc));
            remember_failed(c.child);
            continue;
        }
        changed = true;
    }
    struct xerr *err = NULL;
    if (changed && !storage_sr_refresh_vdis(srv->db, sr, path, &err)) {
        log_warn("gc.refresh", "sr=%s", sr);
        xerr_free(err);
    }
}

/* other_config:coalesce=false switches the collector off for an SR, as in SM. */
static bool
collectable(const struct xapi_sr_record *s)
{
    const char *flag = xmap_get_str((const struct xmap *)&s->other_config, "coalesce");
    return !flag || strcmp(flag, "false") != 0;
}

/* ------------------------------------------------------------------ shared SRs */

/* The shared SRs of a type we drive, collectable: (ref, uuid) pairs. */
struct shared_srs {
    char (*refs)[64];
    char (*uuids)[37];
    size_t n;
};

static bool
shared_sr_one(void *opaque, const char *ref, const void *rec)
{
    struct shared_srs *l = opaque;
    const struct xapi_sr_record *s = rec;
    if (!s->shared || (strcmp(s->type, "ext") != 0 && strcmp(s->type, "file") != 0) ||
        !collectable(s) || strlen(ref) >= 64)
        return true;
    char(*r)[64] = realloc(l->refs, (l->n + 1) * sizeof(*r));
    if (r)
        l->refs = r;
    char(*u)[37] = realloc(l->uuids, (l->n + 1) * sizeof(*u));
    if (u)
        l->uuids = u;
    if (!r || !u)
        return false; /* short list: the next pass */
    snprintf(l->refs[l->n], 64, "%s", ref);
    snprintf(l->uuids[l->n], 37, "%s", s->uuid);
    l->n++;
    return true;
}

/* The shared SRs whose collector this host was at the last pass, to log
 * when that changes. */
#define HELD_MAX 64
static char held[HELD_MAX][37];
static size_t n_held;

static bool
held_has(const char *uuid)
{
    for (size_t i = 0; i < n_held; i++)
        if (strcmp(held[i], uuid) == 0)
            return true;
    return false;
}

static void
held_note(const char *uuid, bool now)
{
    size_t i = 0;
    while (i < n_held && strcmp(held[i], uuid) != 0)
        i++;
    bool was = i < n_held;
    if (was == now)
        return;
    if (now && n_held < HELD_MAX)
        snprintf(held[n_held++], 37, "%s", uuid);
    else if (!now)
        memmove(&held[i], &held[i + 1], (n_held - i - 1) * sizeof(held[0]));
    n_held -= !now;
    log_info("gc.shared", "sr=%s collector=%s", uuid, now ? "this-host" : "another-host");
}

/* A shared SR is collected by one host of the pool at a time: the holder of
 * P/sr-gc/<sr uuid> on its lease (api/pool_live.h), which moves to another
 * host that has the SR plugged when the holder dies. Another host's guest
 * may write a leaf: attached_elsewhere keeps it out of the steps. */
static void
pass_shared(struct server *srv)
{
    struct shared_srs l = {0};
    db_foreach(srv->db, &xapi_class_sr, shared_sr_one, &l);
    for (size_t i = 0; i < l.n; i++) {
        char *path = NULL, key[64];
        struct xerr *err = NULL;
        snprintf(key, sizeof(key), "sr-gc/%s", l.uuids[i]);
        /* only a host that has the SR plugged may hold its key: one that
         * unplugged it lets another take it */
        bool plugged = storage_sr_path(srv->db, srv->host_ref, l.refs[i], &path, &err);
        bool mine = plugged && pool_live_hold(srv, key);
        if (!plugged && n_held && held_has(l.uuids[i]))
            pool_live_release(srv, key);
        held_note(l.uuids[i], mine);
        if (mine)
            collect_sr(srv, l.refs[i], path);
        xerr_free(err);
        free(path);
    }
    free(l.refs);
    free(l.uuids);
}

static void
pass(struct server *srv)
{
    char **refs = NULL;
    size_t n_refs = 0;
    storage_local_srs(srv->db, collectable, &refs, &n_refs); /* short on ENOMEM: next pass */
    for (size_t i = 0; i < n_refs; i++) {
        char *path = NULL;
        struct xerr *err = NULL;
        if (storage_sr_path(srv->db, srv->host_ref, refs[i], &path, &err))
            collect_sr(srv, refs[i], path);
        xerr_free(err);
        free(path);
        free(refs[i]);
    }
    free(refs);
    pass_shared(srv);
}

static void *
gc_main(void *arg)
{
    struct server *srv = arg;
    pthread_mutex_lock(&gc.lock);
    while (!gc.stop) {
        if (!gc.kicked) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += gc.period_s;
            while (!gc.kicked && !gc.stop &&
                   pthread_cond_timedwait(&gc.wake, &gc.lock, &until) != ETIMEDOUT)
                ;
        }
        if (gc.stop)
            break;
        gc.kicked = false;
        pthread_mutex_unlock(&gc.lock);
        pass(srv);
        pthread_mutex_lock(&gc.lock);
    }
    pthread_mutex_unlock(&gc.lock);
    return NULL;
}

void
storage_gc_start(struct server *srv, unsigned period_s)
{
    pthread_mutex_lock(&gc.lock);
    if (!gc.running) {
        gc.srv = srv;
        gc.period_s = period_s ? period_s : 1;
        gc.kicked = true; /* a first pass at start: collect what a crash left */
        gc.running = pthread_create(&gc.thread, NULL, gc_main, srv) == 0;
    }
    pthread_mutex_unlock(&gc.lock);
}

void
storage_gc_kick(struct server *srv)
{
    (void)srv;
    pthread_mutex_lock(&gc.lock);
    gc.kicked = true;
    pthread_cond_signal(&gc.wake);
    pthread_mutex_unlock(&gc.lock);
}

void
storage_gc_stop(struct server *srv)
{
    (void)srv;
    pthread_mutex_lock(&gc.lock);
    bool running = gc.running;
    gc.stop = true;
    pthread_cond_signal(&gc.wake);
    pthread_mutex_unlock(&gc.lock);
    if (running)
        pthread_join(gc.thread, NULL);
    pthread_mutex_lock(&gc.lock);
    gc.running = false;
    free(gc.writers);
    gc.writers = NULL;
    gc.n_writers = 0;
    pthread_mutex_unlock(&gc.lock);
}
