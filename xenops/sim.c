/* xenops/sim.c - the sim backend: domains in memory, same interface and events.
 *
 * It lets api/ be tested at scale (thousands of domains in seconds) with the
 * code that drives real guests. A call changes the domain's state at once,
 * under one lock, and queues its event; one thread per instance delivers
 * events in order, each no earlier than sim_delay_ms after its call, so the
 * caller sees the same asynchrony as with qemu (events on a backend thread,
 * after the call returned or while it waits). Suspend writes a small file
 * holding the uuid, so resume can check it was given a real suspend image.
 * The console is a byte buffer: "VESSEL-GUEST-UP\n" at start, writes echoed,
 * to the buffer and live to up to SIM_CONSOLE_SUBS subscribers (called under
 * the lock, as xenops.h allows: they only copy or forward the bytes).
 * A domain started with cfg->sim_ignore_shutdown is a guest that ignores the
 * power button: clean shutdown and reboot wait their timeout, as qemu's do for
 * such a guest, and end early only when the domain goes (hard shutdown).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "common/hashmap.h"
#include "xenops/xenops_int.h"

struct sim_dom {
    struct sim_dom *prev, *next; /* the list of all domains, for sim_list */
    char uuid[37];
    enum xenops_power power;
    struct xenops_domain_config *cfg;
    uint64_t start_time_ms;
    uint64_t cancels; /* cancel_waits calls: a stubborn guest's waiters end */
    uint64_t memory_target; /* the balloon's target; 0: none set (all memory) */
    char console[256];
    size_t console_len;
    struct sim_console_sub {
        xenops_console_fn *fn; /* NULL: a free slot */
        void *opaque;
        uint64_t id;
    } subs[4];
};
#define SIM_CONSOLE_SUBS 4

struct sim_event {
    struct sim_event *next;
    uint64_t due_ms;
    enum xenops_event ev;
    char uuid[37];
};

struct sim {
    uint64_t next_sub_id;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_cond_t gone; /* a domain was unlinked (stubborn guests' waiters) */
    struct hashmap doms; /* uuid -> struct sim_dom */
    struct sim_dom *all;  /* the same domains, listed */
    struct sim_event *head, *tail;
    bool stop;
    pthread_t thread;
};

static void *
sim_thread(void *arg)
{
    struct xenops *x = arg;
    struct sim *s = x->priv;
    pthread_mutex_lock(&s->lock);
    while (!s->stop) {
        struct sim_event *e = s->head;
        if (!e) {
            pthread_cond_wait(&s->cond, &s->lock);
            continue;
        }
        uint64_t now = xenops_now_ms();
        if (e->due_ms > now) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            uint64_t ns = (uint64_t)ts.tv_nsec + (e->due_ms - now) * 1000000;
            ts.tv_sec += (time_t)(ns / 1000000000);
            ts.tv_nsec = (long)(ns % 1000000000);
            pthread_cond_timedwait(&s->cond, &s->lock, &ts);
            continue;
        }
        s->head = e->next;
        if (!s->head)
            s->tail = NULL;
        pthread_mutex_unlock(&s->lock);
        xenops_emit(x, e->uuid, e->ev);
        free(e);
        pthread_mutex_lock(&s->lock);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* Called with s->lock held. Events are queued in call order; due times are
 * monotonic since the delay is constant. */
static void
sim_queue(struct xenops *x, const char *uuid, enum xenops_event ev)
{
    struct sim *s = x->priv;
    struct sim_event *e = calloc(1, sizeof(*e));
    if (!e)
        return; /* an event lost to ENOMEM: the state is still right */
    e->due_ms = xenops_now_ms() + x->sim_delay_ms;
    e->ev = ev;
    snprintf(e->uuid, sizeof(e->uuid), "%s", uuid);
    if (s->tail)
        s->tail->next = e;
    else
        s->head = e;
    s->tail = e;
    pthread_cond_signal(&s->cond);
}

static void
sim_link(struct sim *s, struct sim_dom *d)
{
    d->next = s->all;
    if (s->all)
        s->all->prev = d;
    s->all = d;
}

static void
sim_unlink(struct sim *s, struct sim_dom *d)
{
    pthread_cond_broadcast(&s->gone);
    hashmap_remove(&s->doms, d->uuid);
    if (d->prev)
        d->prev->next = d->next;
    else
        s->all = d->next;
    if (d->next)
        d->next->prev = d->prev;
}

static int
sim_init(struct xenops *x)
{
    struct sim *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &ca);
    pthread_cond_init(&s->gone, &ca);
    pthread_condattr_destroy(&ca);
    hashmap_init(&s->doms);
    x->priv = s;
    int rc = pthread_create(&s->thread, NULL, sim_thread, x);
    if (rc) {
        hashmap_release(&s->doms);
        free(s);
        return -rc;
    }
    return 0;
}

static void
sim_dom_free(void *p)
{
    struct sim_dom *d = p;
    xenops_config_free(d->cfg);
    free(d);
}

static void
sim_fini(struct xenops *x)
{
    struct sim *s = x->priv;
    pthread_mutex_lock(&s->lock);
    s->stop = true;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    while (s->head) {
        struct sim_event *e = s->head;
        s->head = e->next;
        free(e);
    }
    hashmap_release_with(&s->doms, sim_dom_free);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    pthread_cond_destroy(&s->gone);
    free(s);
}

static int
sim_recover(struct xenops *x)
{
    return 0; /* nothing outlives a sim instance */
}

static int
sim_start(struct xenops *x, const struct xenops_domain_config *cfg, const char *resume_path)
{
    struct sim *s = x->priv;
    if (resume_path) {
        char buf[64] = "";
        FILE *f = fopen(resume_path, "r");
        if (!f)
            return -errno;
        bool ok = fgets(buf, sizeof(buf), f) && strncmp(buf, cfg->uuid, 36) == 0;
        fclose(f);
        if (!ok)
            return -EINVAL;
    }
    struct sim_dom *d = calloc(1, sizeof(*d));
    if (!d || !(d->cfg = xenops_config_copy(cfg))) {
        free(d);
        return -ENOMEM;
    }
    snprintf(d->uuid, sizeof(d->uuid), "%s", cfg->uuid);
    d->power = cfg->start_paused ? XENOPS_POWER_PAUSED : XENOPS_POWER_RUNNING;
    d->start_time_ms = xenops_realtime_ms();
    d->console_len = (size_t)snprintf(d->console, sizeof(d->console), "VESSEL-GUEST-UP\n");
    pthread_mutex_lock(&s->lock);
    int rc = hashmap_get(&s->doms, d->uuid) ? -EEXIST : hashmap_put(&s->doms, d->uuid, d);
    if (rc == 0)
        sim_link(s, d);
    if (rc == 0 && resume_path)
        sim_queue(x, d->uuid, XENOPS_EVENT_RESUMED);
    pthread_mutex_unlock(&s->lock);
    if (rc < 0)
        sim_dom_free(d);
    return rc;
}

/* Looks @uuid up with the lock held; NULL (and unlocked) when absent. */
static struct sim_dom *
sim_get_locked(struct sim *s, const char *uuid)
{
    pthread_mutex_lock(&s->lock);
    struct sim_dom *d = hashmap_get(&s->doms, uuid);
    if (!d)
        pthread_mutex_unlock(&s->lock);
    return d;
}

static int
sim_set_power(struct xenops *x, const char *uuid, enum xenops_power from, enum xenops_power to,
              enum xenops_event ev)
{
    struct sim *s = x->priv;
    struct sim_dom *d = sim_get_locked(s, uuid);
    if (!d)
        return -ENOENT;
    int rc = d->power == from ? 0 : -EBUSY;
    if (rc == 0) {
        d->power = to;
        sim_queue(x, uuid, ev);
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int
sim_pause(struct xenops *x, const char *uuid)
{
    return sim_set_power(x, uuid, XENOPS_POWER_RUNNING, XENOPS_POWER_PAUSED, XENOPS_EVENT_PAUSED);
}

static int
sim_unpause(struct xenops *x, const char *uuid)
{
    return sim_set_power(x, uuid, XENOPS_POWER_PAUSED, XENOPS_POWER_RUNNING, XENOPS_EVENT_RESUMED);
}

/* A stubborn guest (s->lock held, released here): waits @timeout_ms for the
 * domain to go by other means; 0 if it went, -ECANCELED when cancel_waits
 * came first, else -ETIMEDOUT. */
static int
sim_ignore(struct sim *s, struct sim_dom *d, unsigned timeout_ms)
{
    char uuid[37];
    memcpy(uuid, d->uuid, sizeof(uuid));
    uint64_t deadline = xenops_now_ms() + timeout_ms, cancels = d->cancels;
    int rc = -ETIMEDOUT;
    for (uint64_t now; (now = xenops_now_ms()) < deadline;) {
        if (hashmap_get(&s->doms, uuid) != d) {
            rc = 0;
            break;
        }
        if (d->cancels != cancels) {
            rc = -ECANCELED;
            break;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + (deadline - now) * 1000000;
        ts.tv_sec += (time_t)(ns / 1000000000);
        ts.tv_nsec = (long)(ns % 1000000000);
        pthread_cond_timedwait(&s->gone, &s->lock, &ts);
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int
sim_shutdown(struct xenops *x, const char *uuid, bool hard, unsigned timeout_ms)
{
    struct sim *s = x->priv;
    struct sim_dom *d = sim_get_locked(s, uuid);
    if (!d)
        return -ENOENT;
    if (!hard && d->cfg->sim_ignore_shutdown)
        return sim_ignore(s, d, timeout_ms);
    int rc = 0;
    if (!hard && d->power == XENOPS_POWER_PAUSED) {
        rc = -ETIMEDOUT; /* a paused guest cannot answer the power button */
    } else {
        sim_unlink(s, d);
        sim_queue(x, uuid, XENOPS_EVENT_HALTED);
        sim_dom_free(d);
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int
sim_cancel_waits(struct xenops *x, const char *uuid)
{
    struct sim *s = x->priv;
    struct sim_dom *d = sim_get_locked(s, uuid);
    if (!d)
        return -ENOENT;
    d->cancels++;
    pthread_cond_broadcast(&s->gone);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

static int
sim_reboot(struct xenops *x, const char *uuid, bool hard, unsigned timeout_ms)
{
    struct sim *s = x->priv;
    struct sim_dom *d = sim_get_locked(s, uuid);
    if (!d)
        return -ENOENT;
    if (!hard && d->cfg->sim_ignore_shutdown)
        return sim_ignore(s, d, timeout_ms);
    int rc = 0;
    if (!hard && d->power == XENOPS_POWER_PAUSED) {
        rc = -ETIMEDOUT;
    } else {
        d->power = XENOPS_POWER_RUNNING;
        d->start_time_ms = xenops_realtime_ms();
        sim_queue(x, uuid, XENOPS_EVENT_REBOOTED);
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int
sim_suspend(struct xenops *x, const char *uuid, const char *path)
{
    struct sim *s = x->priv;
    struct sim_dom *d = sim_get_locked(s, uuid);
    if (!d)
        return -ENOENT;
    int rc = 0;
    FILE *f = fopen(path, "w");
    if (!f || fprintf(f, "%s\n", uuid) < 0)
        rc = -errno;
    if (f && fclose(f) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0) {
        sim_unlink(s, d);
        sim_queue(x, uuid, XENOPS_EVENT_SUSPENDED);
        sim_dom_free(d);
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int
sim_stats(struct xenops *x, const char *uuid, struct xenops_stats *out)
{
    struct sim *s = x->priv;
    struct sim_dom *d = sim_get_locked(s, uuid);
    if (!d)
        return -ENOENT;
    out->power = d->power;
    out->memory_bytes = d->cfg->memory_bytes;
    /* a simulated balloon complies at once */
    out->memory_actual_bytes = d->memory_target ? d->memory_target : d->cfg->memory_bytes;
    out->vcpus = d->cfg->vcpus;
    out->start_time_ms = d->start_time_ms;
    snprintf(out->accel, sizeof(out->accel), "sim");
    pthread_mutex_unlock(&s->lock);
    return 0;
}

static int
sim_list(struct xenops *x, char ***uuids, size_t *n)
{
    struct sim *s = x->priv;
    pthread_mutex_lock(&s->lock);
    size_t cap = s->doms.n, k = 0;
    char **v = calloc(cap + 1, sizeof(*v));
    int rc = v ? 0 : -ENOMEM;
    for (struct sim_dom *d = s->all; v && d && k < cap; d = d->next)
        if (!(v[k++] = strdup(d->uuid)))
            rc = -ENOMEM;
    pthread_mutex_unlock(&s->lock);
    if (rc < 0) {
        xenops_strv_free(v, k);
        return rc;
    }
    *uuids = v;
    *n = k;
    return 0;
}

static int
sim_console_read(struct xenops *x, const char *uuid, char **buf, size_t *len)
{
    struct sim *s = x->priv;
    struct sim_dom *d = sim_get_locked(s, uuid);
    if (!d)
        return -ENOENT;
    *buf = strndup(d->console, d->console_len);
    *len = d->console_len;
    pthread_mutex_unlock(&s->lock);
    return *buf ? 0 : -ENOMEM;
}

static int
sim_console_subscribe(struct xenops *x, const char *uuid, xenops_console_fn *fn, void *opaque,
                      bool replay, uint64_t *id)
{
    struct sim *s = x->priv;
    struct sim_dom *d = sim_get_locked(s, uuid);
    if (!d)
        return -ENOENT;
    int rc = -ENOSPC;
    for (int i = 0; i < SIM_CONSOLE_SUBS; i++) {
        if (d->subs[i].fn)
            continue;
        d->subs[i] = (struct sim_console_sub){fn, opaque, ++s->next_sub_id};
        *id = d->subs[i].id;
        if (replay && d->console_len)
            fn(opaque, d->console, d->console_len);
        rc = 0;
        break;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static void
sim_console_unsubscribe(struct xenops *x, const char *uuid, uint64_t id)
{
    struct sim *s = x->priv;
    struct sim_dom *d = sim_get_locked(s, uuid);
    if (!d)
        return;
    for (int i = 0; i < SIM_CONSOLE_SUBS; i++)
        if (d->subs[i].fn && d->subs[i].id == id)
            d->subs[i].fn = NULL;
    pthread_mutex_unlock(&s->lock);
}

static int
sim_console_write(struct xenops *x, const char *uuid, const char *data, size_t len)
{
    struct sim *s = x->priv;
    struct sim_dom *d = sim_get_locked(s, uuid);
    if (!d)
        return -ENOENT;
    for (int i = 0; i < SIM_CONSOLE_SUBS; i++)
        if (d->subs[i].fn)
            d->subs[i].fn(d->subs[i].opaque, data, len);
    size_t room = sizeof(d->console) - 1 - d->console_len;
    if (len > room)
        len = room;
    memcpy(d->console + d->console_len, data, len);
    d->console_len += len;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

static int
sim_vnc_path(struct xenops *x, const char *uuid, char **path)
{
    return -ENOTSUP;
}

/* A simulated domain has no device model: its disks are only served. */
static int
sim_disk_hotplug(struct xenops *x, const char *uuid)
{
    struct sim *s = x->priv;
    struct sim_dom *d = sim_get_locked(s, uuid);
    if (!d)
        return -ENOENT;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

static int
sim_disk_plug(struct xenops *x, const char *uuid, unsigned slot, const struct xenops_disk *disk)
{
    return sim_disk_hotplug(x, uuid);
}

static int
sim_disk_unplug(struct xenops *x, const char *uuid, unsigned slot, unsigned timeout_ms)
{
    return sim_disk_hotplug(x, uuid);
}

static int
sim_set_memory_target(struct xenops *x, const char *uuid, uint64_t bytes)
{
    struct sim *s = x->priv;
    struct sim_dom *d = sim_get_locked(s, uuid);
    if (!d)
        return -ENOENT;
    int rc = bytes > d->cfg->memory_bytes ? -EINVAL : 0;
    if (rc == 0)
        d->memory_target = bytes;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* Simulated guests plug vCPUs like a pc machine: up to vcpus_max. */
static int
sim_set_vcpus(struct xenops *x, const char *uuid, unsigned vcpus, unsigned timeout_ms)
{
    struct sim *s = x->priv;
    struct sim_dom *d = sim_get_locked(s, uuid);
    if (!d)
        return -ENOENT;
    unsigned max = d->cfg->vcpus_max ? d->cfg->vcpus_max : d->cfg->vcpus;
    int rc = vcpus > max ? -EINVAL : 0;
    if (rc == 0)
        d->cfg->vcpus = vcpus;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

const struct xenops_ops xenops_sim_ops = {
    .name = "sim",
    .init = sim_init,
    .fini = sim_fini,
    .recover = sim_recover,
    .start = sim_start,
    .pause = sim_pause,
    .unpause = sim_unpause,
    .shutdown = sim_shutdown,
    .cancel_waits = sim_cancel_waits,
    .reboot = sim_reboot,
    .suspend = sim_suspend,
    .stats = sim_stats,
    .list = sim_list,
    .console_read = sim_console_read,
    .console_subscribe = sim_console_subscribe,
    .console_unsubscribe = sim_console_unsubscribe,
    .console_write = sim_console_write,
    .vnc_path = sim_vnc_path,
    .disk_plug = sim_disk_plug,
    .disk_unplug = sim_disk_unplug,
    .set_memory_target = sim_set_memory_target,
    .set_vcpus = sim_set_vcpus,
};
