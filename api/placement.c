/* api/placement.c - choosing a host for a VM, hosts' free memory
 * (api/placement.h). */
#include "api/placement.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cleanup.h"
#include "db/db.h"
#include "rpc/ctx.h"
#include "xapi_errors.h"
#include "xapi_model.h"

struct host_use {
    const char *host;
    const char *except_vm; /* the VM being placed: not counted against itself */
    int64_t used;
};

/* ------------------------------------------------------------------ promises
 *
 * Memory promised to a start, resume or incoming migration that is not yet
 * recorded as running on the promise's host. Without it two starts at once
 * see the same free memory and both go (xapi keeps
 * scheduled_to_be_resident_on for this). A promise lives in the process that
 * makes it, which is where the next decision about that memory is taken:
 * the host that places a VM (the master, for the calls clients make) and
 * the host that admits a start onto itself. */

struct promise {
    char *vm, *host;
    int64_t bytes;
    int64_t made_ms;
};

#define PROMISES_MAX 256
/* A promise for a VM that shows no operation any more (the forwarded start
 * failed, or was never sent) is dropped after this: long enough for the
 * target host's claim of the start to reach this host's view. */
#define PROMISE_GRACE_MS 2000
/* and any promise after this, whatever the VM shows */
#define PROMISE_MAX_AGE_MS 120000

static struct promise promises[PROMISES_MAX];
static size_t n_promises;
static pthread_mutex_t promises_mu = PTHREAD_MUTEX_INITIALIZER;
/* One placement or admission decision at a time, from reading free memory
 * to making its promise. */
static pthread_mutex_t decide_mu = PTHREAD_MUTEX_INITIALIZER;

static int64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct vm_progress {
    const char *host; /* the promise's */
    bool found, running_there, busy;
};

static void
peek_progress(void *opaque, const void *rec)
{
    const struct xapi_vm_record *vm = rec;
    struct vm_progress *p = opaque;
    p->found = true;
    /* a migrating VM runs, elsewhere, until its record moves here */
    p->running_there = (vm->power_state == XAPI_VM_POWER_STATE_RUNNING ||
                        vm->power_state == XAPI_VM_POWER_STATE_PAUSED) &&
                       strcmp(vm->resident_on, p->host) == 0;
    p->busy = vm->current_operations.n > 0;
}

static void
drop_promise_locked(size_t i)
{
    free(promises[i].vm);
    free(promises[i].host);
    promises[i] = promises[--n_promises];
}

/* Bytes promised on @host to VMs other than @except_vm; drops the promises
 * that are kept (the VM runs: its resident_on counts it now) or void. The
 * records are read without promises_mu held, so that no lock order between
 * it and the database's exists. */
static int64_t
promised(struct db *db, const char *host, const char *except_vm)
{
    struct promise seen[PROMISES_MAX];
    size_t n = 0;
    pthread_mutex_lock(&promises_mu);
    for (size_t i = 0; i < n_promises; i++) {
        seen[n] = promises[i];
        seen[n].vm = strdup(promises[i].vm);
        seen[n].host = strdup(promises[i].host);
        if (seen[n].vm && seen[n].host)
            n++;
        else {
            free(seen[n].vm);
            free(seen[n].host);
        }
    }
    pthread_mutex_unlock(&promises_mu);
    int64_t sum = 0, now = now_ms();
    for (size_t i = 0; i < n; i++) {
        struct vm_progress vp = {.host = seen[i].host};
        db_with(db, &xapi_class_vm, seen[i].vm, peek_progress, &vp, NULL);
        int64_t age = now - seen[i].made_ms;
        bool kept_or_void = !vp.found || vp.running_there || age > PROMISE_MAX_AGE_MS ||
                            (!vp.busy && age > PROMISE_GRACE_MS);
        if (kept_or_void) {
            pthread_mutex_lock(&promises_mu);
            for (size_t j = 0; j < n_promises; j++)
                if (promises[j].made_ms == seen[i].made_ms && !strcmp(promises[j].vm, seen[i].vm)) {
                    drop_promise_locked(j);
                    break;
                }
            pthread_mutex_unlock(&promises_mu);
        } else if (strcmp(seen[i].host, host) == 0 &&
                   (!except_vm || strcmp(seen[i].vm, except_vm) != 0)) {
            sum += seen[i].bytes;
        }
        free(seen[i].vm);
        free(seen[i].host);
    }
    return sum;
}

/* Replaces any promise @vm has. Out of memory or slots, nothing is promised:
 * the target host's own admission still stops an overcommit. */
static void
promise(const char *vm, const char *host, int64_t bytes)
{
    pthread_mutex_lock(&promises_mu);
    for (size_t i = 0; i < n_promises; i++)
        if (strcmp(promises[i].vm, vm) == 0) {
            drop_promise_locked(i);
            break;
        }
    if (n_promises < PROMISES_MAX) {
        struct promise *p = &promises[n_promises];
        p->vm = strdup(vm);
        p->host = strdup(host);
        p->bytes = bytes;
        p->made_ms = now_ms();
        if (p->vm && p->host)
            n_promises++;
        else {
            free(p->vm);
            free(p->host);
        }
    }
    pthread_mutex_unlock(&promises_mu);
}

void
placement_release(const char *vm)
{
    pthread_mutex_lock(&promises_mu);
    for (size_t i = 0; i < n_promises; i++)
        if (strcmp(promises[i].vm, vm) == 0) {
            drop_promise_locked(i);
            break;
        }
    pthread_mutex_unlock(&promises_mu);
}

static bool
valid_ref(const char *ref)
{
    return ref[0] && strcmp(ref, "OpaqueRef:NULL") != 0;
}

static bool
add_guest(void *opaque, const char *ref, const void *rec)
{
    struct host_use *u = opaque;
    const struct xapi_vm_record *vm = rec;
    if (vm->is_control_domain || vm->is_a_template || vm->is_a_snapshot ||
        (u->except_vm && strcmp(ref, u->except_vm) == 0))
        return true;
    bool running = vm->power_state == XAPI_VM_POWER_STATE_RUNNING ||
                   vm->power_state == XAPI_VM_POWER_STATE_PAUSED;
    if ((running && strcmp(vm->resident_on, u->host) == 0) ||
        (valid_ref(vm->scheduled_to_be_resident_on) &&
         strcmp(vm->scheduled_to_be_resident_on, u->host) == 0))
        u->used += vm->memory_dynamic_max;
    return true;
}

struct host_mem {
    int64_t total, free;
    bool known;
};

static void
peek_metrics(void *opaque, const void *rec)
{
    const struct xapi_host_metrics_record *m = rec;
    struct host_mem *hm = opaque;
    hm->total = m->memory_total;
    hm->free = m->memory_free;
    hm->known = true;
}

static void
peek_metrics_ref(void *opaque, const void *rec)
{
    xstr_set(opaque, ((const struct xapi_host_record *)rec)->metrics);
}

bool
placement_host_live(struct db *db, const char *host)
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

int64_t
placement_host_free_memory(struct db *db, const char *host)
{
    return placement_free_memory_for(db, host, NULL);
}

int64_t
placement_free_memory_for(struct db *db, const char *host, const char *vm)
{
    _cleanup_free_ char *metrics = NULL;
    struct host_mem hm = {0};
    if (!db_with(db, &xapi_class_host, host, peek_metrics_ref, &metrics, NULL) || !metrics ||
        !db_with(db, &xapi_class_host_metrics, metrics, peek_metrics, &hm, NULL) || !hm.known)
        return -1;
    /* The promises are read before the running guests: a start recorded
     * running between the two reads is then counted twice (a refusal, in a
     * window of microseconds) rather than nowhere. Read the other way round,
     * its promise was dropped as kept after the guests were summed without
     * it, and two starts at once could both be admitted (seen under ASan). */
    int64_t promised_bytes = promised(db, host, vm);
    struct host_use u = {host, vm, 0};
    db_foreach(db, &xapi_class_vm, add_guest, &u);
    int64_t left = hm.total - u.used - promised_bytes;
    if (left < 0)
        left = 0;
    return hm.free < left ? hm.free : left;
}

struct candidate {
    char *host;
    int64_t free;
};

struct candidates {
    struct candidate *v;
    size_t n;
    bool oom;
};

static bool
collect_host(void *opaque, const char *ref, const void *rec)
{
    struct candidates *c = opaque;
    (void)rec;
    struct candidate *grown = realloc(c->v, (c->n + 1) * sizeof(*grown));
    if (!grown || !(grown[c->n].host = strdup(ref))) {
        if (grown)
            c->v = grown;
        c->oom = true;
        return false;
    }
    c->v = grown;
    c->n++;
    return true;
}

/* The order in which hosts are tried: affinity, this host, then most free
 * memory first. */
static int
rank(const struct candidate *a, const char *affinity, const char *self)
{
    if (strcmp(a->host, affinity) == 0)
        return 0;
    return strcmp(a->host, self) == 0 ? 1 : 2;
}

bool
placement_choose_host(struct call_ctx *ctx, const char *vm_ref, char **host, struct xerr **errp)
{
    *host = NULL;
    _cleanup_(xapi_vm_record_freep) struct xapi_vm_record *vm = NULL;
    if (!db_get(ctx->db, &xapi_class_vm, vm_ref, (void **)&vm, NULL))
        return true; /* the local handler answers HANDLE_INVALID */
    pthread_mutex_lock(&decide_mu);
    struct candidates c = {0};
    db_foreach(ctx->db, &xapi_class_host, collect_host, &c);
    bool ok = !c.oom || xerr_nomem(errp);
    for (size_t i = 0; ok && i < c.n; i++)
        c.v[i].free = placement_free_memory_for(ctx->db, c.v[i].host, vm_ref);
    /* insertion sort: a pool has a few hosts */
    for (size_t i = 1; ok && i < c.n; i++)
        for (size_t j = i; j > 0; j--) {
            int ra = rank(&c.v[j - 1], vm->affinity, ctx->srv->host_ref);
            int rb = rank(&c.v[j], vm->affinity, ctx->srv->host_ref);
            if (ra < rb || (ra == rb && c.v[j - 1].free >= c.v[j].free))
                break;
            struct candidate t = c.v[j - 1];
            c.v[j - 1] = c.v[j];
            c.v[j] = t;
        }
    const char *chosen = NULL;
    bool fits = false;
    for (int memory = 1; ok && memory >= 0 && !chosen; memory--)
        for (size_t i = 0; i < c.n && !chosen; i++)
            if (vm_can_boot_here(ctx, vm_ref, vm, c.v[i].host, memory, NULL)) {
                chosen = c.v[i].host;
                fits = memory;
            }
    if (ok && chosen && strcmp(chosen, ctx->srv->host_ref) != 0) {
        if (!(*host = strdup(chosen)))
            ok = xerr_nomem(errp);
        else if (fits) /* this host admits its own starts itself */
            promise(vm_ref, chosen, vm->memory_dynamic_max);
    }
    pthread_mutex_unlock(&decide_mu);
    for (size_t i = 0; i < c.n; i++)
        free(c.v[i].host);
    free(c.v);
    return ok;
}

bool
placement_admit(struct server *srv, const char *vm_ref, int64_t bytes, struct xerr **errp)
{
    pthread_mutex_lock(&decide_mu);
    int64_t free_bytes = placement_free_memory_for(srv->db, srv->host_ref, vm_ref);
    bool ok = free_bytes < 0 || bytes <= free_bytes;
    if (ok)
        promise(vm_ref, srv->host_ref, bytes);
    pthread_mutex_unlock(&decide_mu);
    if (!ok) {
        char need[32], have[32];
        snprintf(need, sizeof(need), "%" PRId64, bytes);
        snprintf(have, sizeof(have), "%" PRId64, free_bytes);
        return xerr_host_not_enough_free_memory(errp, need, have);
    }
    return true;
}
