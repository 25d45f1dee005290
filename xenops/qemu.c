/* xenops/qemu.c - the qemu backend: one qemu-system-x86_64 per domain.
 *
 * Each domain has a directory <run_dir>/<uuid>/ holding qemu.pid, config.json
 * and accel (ours) and qemu.log (qemu's stderr), and in it dm/, qemu's working
 * directory, where qemu makes qmp.sock, console.sock and vnc.sock. qemu is
 * spawned detached (double fork + setsid) under the domain's own uid, in
 * namespaces and a cgroup of its own (xenops/spawn.c says what it keeps): it is
 * nobody's child we must reap and outlives the toolstack, which finds it
 * again through that directory (qemu_recover). Supervision is a pidfd.
 *
 * One supervisor thread per domain polls the pidfd, the QMP socket and the
 * console socket. It alone reads QMP: replies go to the one caller waiting
 * (commands on a domain are serialised by d->cmd_lock), events are turned
 * into xenops events there, so events always come from the backend's thread.
 * Invariants:
 *  (1) a domain is in the map exactly while its qemu is believed alive; the
 *      supervisor removes it, after the pidfd fired, before emitting the
 *      exit event, so a new start with the same uuid cannot race the old one;
 *      a caller that ended qemu (shutdown, suspend) returns once those events
 *      are out (d->announced), so that no late event of the old domain (its
 *      handler stops the VM's disk servers) can meet the next start's;
 *  (2) d->exit_event, when set by a caller before it stops qemu (hard
 *      shutdown, suspend), decides the exit's event; otherwise the last QMP
 *      SHUTDOWN reason does (guest-shutdown: poweroff; guest-reset with
 *      -action reboot=shutdown: reboot; guest-panic: crash), and no SHUTDOWN
 *      at all means qemu died: crashed;
 *  (3) a struct qdom is freed when its refcount (map, supervisor, each
 *      caller holding it) drops to zero;
 *  (4) d->cfg->nics is the domain's NIC list as qemu has it: changed only under
 *      d->nic_lock (and d->lock, which readers take), after the QMP commands
 *      succeeded, and written to config.json at once, so recovery and a
 *      respawn see hotplugged NICs;
 *  (5) what qemu's uid may change is dm/ and nothing we read back: d->dir and
 *      the files we write there are root's (a config.json qemu could write
 *      would choose the next qemu's uid); names in dm/ are only connected
 *      to, and the peer checked (peer_is), never opened or followed;
 *  (6) a live migration's destination on this host runs beside its source
 *      under the same uuid: until it is committed it is "incoming", in a map
 *      of its own (b->incoming), named "<uuid>.in" (directory, cgroup) and
 *      silent (its events would be taken for the source's); commit renames
 *      both and moves it into the map once the source is gone
 *      (xenops/qemu_migrate.c). A source whose state went away is silent too:
 *      its exit is no halt of the VM.
 * Facts: QEMU docs/interop/qmp-spec.txt, qapi/run-state.json (SHUTDOWN reasons,
 * RESET, STOP, RESUME, GUEST_PANICKED), qapi/migration.json (migrate fd:,
 * query-migrate), qapi/machine.json (query-cpus-fast thread-id), proc(5);
 * hotplug: qapi/net.json (netdev_add, netdev_del), qapi/qdev.json
 * (device_add, device_del, DEVICE_DELETED: "the guest has acknowledged").
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "common/fileio.h"
#include "common/hashmap.h"
#include "common/log.h"
#include "xenops/qemu_int.h"

struct qbackend {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct hashmap doms; /* uuid -> struct qdom (a reference) */
    struct hashmap incoming; /* uuid -> an incoming struct qdom (6) */
    int n_threads;       /* live supervisors; fini waits for 0 */
    bool stopping;       /* fini has begun: attach refuses */
};

static char *read_small(const char *dir, const char *name);
static int qemu_spawn_domain(struct xenops *x, const struct xenops_domain_config *cfg,
                             const char *resume_path, bool announce, bool incoming);

/* ================= references ================= */

void
qdom_unref(struct qdom *d)
{
    pthread_mutex_lock(&d->lock);
    bool last = --d->refs == 0;
    pthread_mutex_unlock(&d->lock);
    if (!last)
        return;
    int fds[] = {d->pidfd, d->qmp_fd, d->con_fd, d->wake_fd, d->log_fd, d->mntns_fd};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
        if (fds[i] >= 0)
            close(fds[i]);
    for (size_t i = 0; i < d->n_taps; i++)
        close(d->taps[i].fd);
    while (d->subs) {
        struct console_sub *s = d->subs;
        d->subs = s->next;
        free(s);
    }
    json_decref(d->reply);
    qdom_agent_close(d);
    free(d->agent_in);
    xenops_config_free(d->cfg);
    free(d->dir);
    free(d->dm_dir);
    pthread_mutex_destroy(&d->lock);
    pthread_mutex_destroy(&d->cmd_lock);
    pthread_mutex_destroy(&d->con_lock);
    pthread_mutex_destroy(&d->nic_lock);
    pthread_mutex_destroy(&d->agent_lock);
    pthread_cond_destroy(&d->cond);
    free(d);
}

void
qdom_unrefp(struct qdom **d)
{
    if (*d)
        qdom_unref(*d);
}

/* A new reference to the running domain @uuid, or NULL. */
struct qdom *
qdom_get(struct xenops *x, const char *uuid)
{
    struct qbackend *b = x->priv;
    pthread_mutex_lock(&b->lock);
    struct qdom *d = hashmap_get(&b->doms, uuid);
    if (d) {
        pthread_mutex_lock(&d->lock);
        d->refs++;
        pthread_mutex_unlock(&d->lock);
    }
    pthread_mutex_unlock(&b->lock);
    return d;
}

struct qdom *
qdom_get_incoming(struct xenops *x, const char *uuid)
{
    struct qbackend *b = x->priv;
    pthread_mutex_lock(&b->lock);
    struct qdom *d = hashmap_get(&b->incoming, uuid);
    if (d) {
        pthread_mutex_lock(&d->lock);
        d->refs++;
        pthread_mutex_unlock(&d->lock);
    }
    pthread_mutex_unlock(&b->lock);
    return d;
}

void
qdom_emit(struct xenops *x, struct qdom *d, enum xenops_event ev)
{
    pthread_mutex_lock(&d->lock);
    bool silent = d->silent;
    pthread_mutex_unlock(&d->lock);
    if (!silent)
        xenops_emit(x, d->uuid, ev);
}

static struct qdom *
qdom_new(struct xenops *x, const struct xenops_domain_config *cfg, bool incoming)
{
    struct qdom *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->refs = 1;
    d->pidfd = d->qmp_fd = d->con_fd = d->wake_fd = d->log_fd = d->agent_fd = d->mntns_fd = -1;
    d->exit_event = -1;
    snprintf(d->uuid, sizeof(d->uuid), "%s", cfg->uuid);
    snprintf(d->name, sizeof(d->name), "%s%s", cfg->uuid, incoming ? ".in" : "");
    d->incoming = d->silent = incoming;
    pthread_mutex_init(&d->lock, NULL);
    pthread_mutex_init(&d->cmd_lock, NULL);
    pthread_mutex_init(&d->con_lock, NULL);
    pthread_mutex_init(&d->nic_lock, NULL);
    pthread_mutex_init(&d->agent_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (!(d->cfg = xenops_config_copy(cfg)) ||
        asprintf(&d->dir, "%s/%s", x->run_dir, d->name) < 0) {
        d->dir = NULL;
        qdom_unref(d);
        return NULL;
    }
    if (asprintf(&d->dm_dir, "%s/dm", d->dir) < 0) {
        d->dm_dir = NULL;
        qdom_unref(d);
        return NULL;
    }
    return d;
}

/* Waits on d->cond (d->lock held) until @deadline_ms; false on timeout. */
bool
qdom_wait(struct qdom *d, uint64_t deadline_ms)
{
    uint64_t now = xenops_now_ms();
    if (now >= deadline_ms)
        return false;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + (deadline_ms - now) * 1000000;
    ts.tv_sec += (time_t)(ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    pthread_cond_timedwait(&d->cond, &d->lock, &ts);
    return true;
}

/* ================= QMP commands ================= */

/* Runs @cmd (consumed) and returns its "return" value in *ret (may be NULL;
 * a new reference). -EIO on a QMP error, -ESRCH if qemu went away. */
int
qdom_qmp_fd(struct qdom *d, json_t *cmd, int pass_fd, json_t **ret)
{
    if (!cmd)
        return -ENOMEM;
    pthread_mutex_lock(&d->cmd_lock);
    pthread_mutex_lock(&d->lock);
    json_decref(d->reply);
    d->reply = NULL;
    int rc = d->exited ? -ESRCH : 0;
    json_int_t id = (json_int_t)++d->cmd_seq;
    pthread_mutex_unlock(&d->lock);
    /* the id pairs the reply with this command: a fire-and-forget command's
     * late reply (quit, on_crash) must not be taken for ours */
    if (rc == 0 && json_object_set_new(cmd, "id", json_integer(id)) < 0)
        rc = -ENOMEM;
    if (rc == 0)
        rc = qmp_send(d->qmp_fd, cmd, pass_fd);
    json_decref(cmd);
    json_t *reply = NULL;
    pthread_mutex_lock(&d->lock);
    uint64_t deadline = xenops_now_ms() + QMP_TIMEOUT_MS;
    for (;;) {
        if (d->reply && json_integer_value(json_object_get(d->reply, "id")) != id) {
            json_decref(d->reply); /* a stale reply */
            d->reply = NULL;
        }
        if (rc != 0 || d->reply || d->exited || d->stop)
            break;
        if (!qdom_wait(d, deadline))
            rc = -ETIMEDOUT;
    }
    reply = d->reply;
    d->reply = NULL;
    if (rc == 0 && !reply)
        rc = -ESRCH;
    pthread_mutex_unlock(&d->lock);
    pthread_mutex_unlock(&d->cmd_lock);
    if (rc == 0 && !json_object_get(reply, "return")) {
        json_t *desc = json_object_get(json_object_get(reply, "error"), "desc");
        log_warn("xenops.qmp_error", "vm=%s desc=\"%s\"", d->uuid,
                 json_is_string(desc) ? json_string_value(desc) : "?");
        rc = -EIO;
    }
    if (rc == 0 && ret)
        *ret = json_incref(json_object_get(reply, "return"));
    json_decref(reply);
    return rc;
}

int
qdom_qmp(struct qdom *d, const char *command, json_t **ret)
{
    return qdom_qmp_fd(d, json_pack("{s:s}", "execute", command), -1, ret);
}

/* ================= console ================= */

static void
console_log_open(struct xenops *x, struct qdom *d)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s.log", x->log_dir, d->uuid);
    d->log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    struct stat st;
    d->log_size = d->log_fd >= 0 && fstat(d->log_fd, &st) == 0 ? (size_t)st.st_size : 0;
}

/* Appends guest output to the ring and the log, and hands it to the
 * subscribers. Runs on the supervisor thread with con_lock held. */
static void
console_feed(struct xenops *x, struct qdom *d, const char *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        d->ring[(d->ring_head + d->ring_len) % CONSOLE_RING] = buf[i];
        if (d->ring_len < CONSOLE_RING)
            d->ring_len++;
        else
            d->ring_head = (d->ring_head + 1) % CONSOLE_RING;
    }
    if (d->log_fd >= 0 && d->log_size + n > x->log_max_bytes) {
        char a[4096], b2[4200];
        snprintf(a, sizeof(a), "%s/%s.log", x->log_dir, d->uuid);
        snprintf(b2, sizeof(b2), "%s.1", a);
        close(d->log_fd);
        rename(a, b2);
        console_log_open(x, d);
    }
    if (d->log_fd >= 0 && write(d->log_fd, buf, n) == (ssize_t)n)
        d->log_size += n;
    for (struct console_sub *s = d->subs; s; s = s->next)
        s->fn(s->opaque, buf, n);
}

static int
qemu_console_read(struct xenops *x, const char *uuid, char **buf, size_t *len)
{
    _cleanup_(qdom_unrefp) struct qdom *d = qdom_get(x, uuid);
    if (!d)
        return -ENOENT;
    pthread_mutex_lock(&d->con_lock);
    char *out = malloc(d->ring_len + 1);
    if (out) {
        for (size_t i = 0; i < d->ring_len; i++)
            out[i] = d->ring[(d->ring_head + i) % CONSOLE_RING];
        out[d->ring_len] = '\0';
        *len = d->ring_len;
    }
    pthread_mutex_unlock(&d->con_lock);
    *buf = out;
    return out ? 0 : -ENOMEM;
}

static int
qemu_console_subscribe(struct xenops *x, const char *uuid, xenops_console_fn *fn, void *opaque,
                       bool replay, uint64_t *id)
{
    _cleanup_(qdom_unrefp) struct qdom *d = qdom_get(x, uuid);
    if (!d)
        return -ENOENT;
    struct console_sub *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->fn = fn;
    s->opaque = opaque;
    pthread_mutex_lock(&d->con_lock);
    if (replay && d->ring_len) {
        /* the ring as one chunk: its two halves when it has wrapped */
        char *flat = malloc(d->ring_len);
        if (!flat) {
            pthread_mutex_unlock(&d->con_lock);
            free(s);
            return -ENOMEM;
        }
        for (size_t i = 0; i < d->ring_len; i++)
            flat[i] = d->ring[(d->ring_head + i) % CONSOLE_RING];
        fn(opaque, flat, d->ring_len);
        free(flat);
    }
    *id = s->id = ++d->next_sub;
    s->next = d->subs;
    d->subs = s;
    pthread_mutex_unlock(&d->con_lock);
    return 0;
}

static void
qemu_console_unsubscribe(struct xenops *x, const char *uuid, uint64_t id)
{
    _cleanup_(qdom_unrefp) struct qdom *d = qdom_get(x, uuid);
    if (!d)
        return;
    pthread_mutex_lock(&d->con_lock);
    for (struct console_sub **p = &d->subs; *p; p = &(*p)->next) {
        if ((*p)->id == id) {
            struct console_sub *s = *p;
            *p = s->next;
            free(s);
            break;
        }
    }
    pthread_mutex_unlock(&d->con_lock);
}

static int
qemu_console_write(struct xenops *x, const char *uuid, const char *data, size_t len)
{
    _cleanup_(qdom_unrefp) struct qdom *d = qdom_get(x, uuid);
    if (!d)
        return -ENOENT;
    while (len) {
        ssize_t n = send(d->con_fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            poll(&(struct pollfd){.fd = d->con_fd, .events = POLLOUT}, 1, 1000);
            continue;
        }
        if (n < 0)
            return -errno;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static int
qemu_vnc_path(struct xenops *x, const char *uuid, char **path)
{
    _cleanup_(qdom_unrefp) struct qdom *d = qdom_get(x, uuid);
    if (!d)
        return -ENOENT;
    if (d->cfg->machine == XENOPS_MACHINE_MICROVM)
        return -ENOTSUP;
    return asprintf(path, "%s/vnc.sock", d->dm_dir) < 0 ? -ENOMEM : 0;
}

/* ================= supervision ================= */

/* When QEMU stopped or resumed the guest, by its own clock (the event's
 * timestamp, wall time): a migration's pause is the destination's RESUME less
 * the source's STOP (bench/guests/migrate_net_bench.py). */
static void
log_run_state(const struct qdom *d, const char *ev, json_t *event)
{
    json_t *ts = json_object_get(event, "timestamp");
    json_int_t s = json_integer_value(json_object_get(ts, "seconds"));
    json_int_t us = json_integer_value(json_object_get(ts, "microseconds"));
    log_info("xenops.run_state", "vm=%s event=%s qemu_time_us=%lld", d->uuid, ev,
             (long long)(s * 1000000 + us));
}

/* A QMP line from qemu: a reply for the waiting caller, or an event. */
static void
qdom_qmp_line(struct xenops *x, struct qdom *d, const char *line)
{
    json_t *j = json_loads(line, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return;
    }
    const char *ev = json_string_value(json_object_get(j, "event"));
    if (!ev) {
        pthread_mutex_lock(&d->lock);
        json_decref(d->reply);
        d->reply = j;
        pthread_cond_broadcast(&d->cond);
        pthread_mutex_unlock(&d->lock);
        return;
    }
    json_t *data = json_object_get(j, "data");
    if (!strcmp(ev, "SHUTDOWN")) {
        const char *reason = json_string_value(json_object_get(data, "reason"));
        pthread_mutex_lock(&d->lock);
        snprintf(d->shutdown_reason, sizeof(d->shutdown_reason), "%s", reason ? reason : "");
        pthread_mutex_unlock(&d->lock);
    } else if (!strcmp(ev, "RESET")) {
        pthread_mutex_lock(&d->lock);
        d->reboots++;
        pthread_cond_broadcast(&d->cond);
        pthread_mutex_unlock(&d->lock);
        qdom_emit(x, d, XENOPS_EVENT_REBOOTED);
    } else if (!strcmp(ev, "MIGRATION")) {
        pthread_mutex_lock(&d->lock);
        d->migration_events++;
        pthread_cond_broadcast(&d->cond);
        pthread_mutex_unlock(&d->lock);
    } else if (!strcmp(ev, "STOP")) {
        log_run_state(d, ev, j);
        qdom_emit(x, d, XENOPS_EVENT_PAUSED);
    } else if (!strcmp(ev, "RESUME")) {
        log_run_state(d, ev, j);
        pthread_mutex_lock(&d->lock);
        bool announce = d->announce_resume;
        d->announce_resume = true;
        pthread_mutex_unlock(&d->lock);
        if (announce)
            qdom_emit(x, d, XENOPS_EVENT_RESUMED);
    } else if (!strcmp(ev, "DEVICE_DELETED")) {
        const char *dev = json_string_value(json_object_get(data, "device"));
        pthread_mutex_lock(&d->lock);
        if (dev && !strcmp(dev, d->nic_waiting)) {
            d->nic_deleted = true;
            pthread_cond_broadcast(&d->cond);
        }
        pthread_mutex_unlock(&d->lock);
    } else if (!strcmp(ev, "VSERPORT_CHANGE")) {
        const char *id = json_string_value(json_object_get(data, "id"));
        if (id && !strcmp(id, XENOPS_AGENT_DEVICE)) {
            pthread_mutex_lock(&d->lock);
            d->agent_port = json_is_true(json_object_get(data, "open"));
            pthread_mutex_unlock(&d->lock);
            qdom_emit(x, d, XENOPS_EVENT_AGENT);
        }
    } else if (!strcmp(ev, "BALLOON_CHANGE")) {
        json_t *actual = json_object_get(data, "actual");
        pthread_mutex_lock(&d->lock);
        if (json_is_integer(actual) && json_integer_value(actual) > 0)
            d->balloon_actual = (uint64_t)json_integer_value(actual);
        pthread_mutex_unlock(&d->lock);
    } else if (!strcmp(ev, "GUEST_PANICKED")) {
        qdom_emit(x, d, XENOPS_EVENT_CRASHED);
        /* on_crash, applied without waiting on our own reply: the supervisor
         * is the QMP reader, so it sends and lets the reply be dropped. */
        const char *cmd = d->cfg->on_crash == XENOPS_ACTION_RESTART    ? "system_reset"
                          : d->cfg->on_crash == XENOPS_ACTION_PRESERVE ? "stop"
                                                                        : "quit";
        if (d->cfg->on_crash == XENOPS_ACTION_DESTROY) {
            pthread_mutex_lock(&d->lock);
            d->exit_event = XENOPS_EVENT_HALTED;
            pthread_mutex_unlock(&d->lock);
        }
        json_t *c = json_pack("{s:s}", "execute", cmd);
        if (c)
            qmp_send(d->qmp_fd, c, -1);
        json_decref(c);
    }
    json_decref(j);
}

/* Removes every file we or qemu left in the domain's directory. qemu's own
 * directory may hold anything its uid could make there: each entry goes
 * (unlinkat does not follow symlinks), one level deep. */
static void
qdom_clean_dir(struct qdom *d)
{
    static const char *const files[] = {"qemu.pid", "config.json", "config.json.new", "accel",
                                        "qemu.log"};
    char path[4400];
    DIR *dm = opendir(d->dm_dir);
    struct dirent *e;
    while (dm && (e = readdir(dm)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
            unlinkat(dirfd(dm), e->d_name, 0) < 0)
            unlinkat(dirfd(dm), e->d_name, AT_REMOVEDIR);
    if (dm)
        closedir(dm);
    rmdir(d->dm_dir);
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", d->dir, files[i]);
        unlink(path);
    }
    rmdir(d->dir);
}

/* The name a dead domain's directory takes until its files are removed:
 * "<run_dir>/.gone.<name>.<pid>" (qemu_recover removes one left by a crash). */
#define GONE_PREFIX ".gone."

/* Removes domain directory @dir (qdom_clean_dir), given its path alone. */
static void
clean_dir_at(const char *dir)
{
    char dm[4300];
    snprintf(dm, sizeof(dm), "%s/dm", dir);
    struct qdom tmp = {.dir = (char *)dir, .dm_dir = dm};
    qdom_clean_dir(&tmp);
}

/* Takes d's directory out of the way at once, by renaming it to @gone (a
 * start of the same domain makes a new one meanwhile); @gone is "" when the
 * rename failed and the directory was removed here. Unlinking its files
 * took 1-3 ms on this host under load: that is done after the exit is
 * announced (qdom_supervise), with nobody waiting for it. */
static void
qdom_put_dir_aside(struct xenops *x, struct qdom *d, char *gone, size_t len)
{
    pthread_mutex_lock(&d->lock);
    snprintf(gone, len, "%s/" GONE_PREFIX "%s.%d", x->run_dir, d->name, (int)d->pid);
    bool moved = rename(d->dir, gone) == 0;
    pthread_mutex_unlock(&d->lock);
    if (!moved) {
        gone[0] = '\0';
        qdom_clean_dir(d);
    }
}

/* qemu is gone: (1) out of the map, then the event per (2), then the action.
 * *@clean_us: the time its directory and cgroup took to go; @gone, what is
 * left to remove of the directory (qdom_put_dir_aside). */
static void
qdom_exited(struct xenops *x, struct qdom *d, uint64_t *clean_us, char *gone, size_t gone_len)
{
    uint64_t t0 = log_clock_us();
    struct qbackend *b = x->priv;
    pthread_mutex_lock(&b->lock);
    bool mapped = hashmap_get(&b->doms, d->uuid) == d;
    if (mapped)
        hashmap_remove(&b->doms, d->uuid);
    if (!mapped && hashmap_get(&b->incoming, d->uuid) == d) {
        hashmap_remove(&b->incoming, d->uuid);
        mapped = true;
    }
    pthread_mutex_unlock(&b->lock);
    if (mapped)
        qdom_unref(d); /* the map's; the supervisor still holds its own (3) */
    /* before anyone waiting hears of the exit: a start right after a shutdown
     * must find the directory gone, not fail on it (1) */
    qdom_put_dir_aside(x, d, gone, gone_len);
    pthread_mutex_lock(&d->lock);
    char name[sizeof(d->name)];
    snprintf(name, sizeof(name), "%s", d->name);
    pthread_mutex_unlock(&d->lock);
    xenops_cgroup_remove(x, name);
    *clean_us = log_clock_us() - t0;
    pthread_mutex_lock(&d->lock);
    d->exited = true;
    int ev = d->exit_event;
    char reason[32];
    snprintf(reason, sizeof(reason), "%s", d->shutdown_reason);
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
    enum xenops_action action = XENOPS_ACTION_DESTROY;
    if (ev < 0) {
        if (!strcmp(reason, "guest-shutdown")) {
            ev = XENOPS_EVENT_HALTED;
            action = d->cfg->on_poweroff;
        } else if (!strcmp(reason, "guest-reset")) {
            ev = XENOPS_EVENT_HALTED; /* on_reboot is DESTROY, else qemu had reset */
        } else if (reason[0] && strcmp(reason, "guest-panic")) {
            ev = XENOPS_EVENT_HALTED; /* host-qmp-quit, host-signal ... */
        } else {
            ev = XENOPS_EVENT_CRASHED;
            action = d->cfg->on_crash;
        }
    }
    log_info("xenops.qemu_exit", "vm=%s pid=%d reason=%s event=%s", d->uuid, (int)d->pid,
             reason[0] ? reason : "none", xenops_event_name((enum xenops_event)ev));
    if (action == XENOPS_ACTION_RESTART) {
        if (ev == XENOPS_EVENT_CRASHED)
            qdom_emit(x, d, XENOPS_EVENT_CRASHED);
        pthread_mutex_lock(&d->lock); /* (4) */
        _cleanup_(xenops_config_freep) struct xenops_domain_config *cfg =
            xenops_config_copy(d->cfg);
        pthread_mutex_unlock(&d->lock);
        /* the same taps again: a tap takes one descriptor at a time, and
         * ours of the dead qemu's would refuse the new one's (EBUSY) */
        qdom_taps_close(d, NULL);
        int rc = cfg ? qemu_spawn_domain(x, cfg, NULL, false, false) : -ENOMEM;
        if (rc == 0) {
            qdom_emit(x, d, XENOPS_EVENT_REBOOTED);
            return;
        }
        log_warn_errno(-rc, "xenops.restart_failed", "vm=%s", d->uuid);
        qdom_emit(x, d, XENOPS_EVENT_HALTED);
        return;
    }
    qdom_emit(x, d, (enum xenops_event)ev);
    if (ev == XENOPS_EVENT_CRASHED)
        qdom_emit(x, d, XENOPS_EVENT_HALTED);
}

struct supervise_arg {
    struct xenops *x;
    struct qdom *d;
};

static void *
qdom_supervise(void *arg)
{
    struct xenops *x = ((struct supervise_arg *)arg)->x;
    struct qdom *d = ((struct supervise_arg *)arg)->d; /* the thread's reference */
    free(arg);
    struct qbackend *b = x->priv;
    bool gone = false, qmp_open = true, con_open = d->con_fd >= 0;
    for (;;) {
        struct pollfd p[4] = {{.fd = d->pidfd, .events = POLLIN},
                              {.fd = d->wake_fd, .events = POLLIN},
                              {.fd = qmp_open ? d->qmp_fd : -1, .events = POLLIN},
                              {.fd = con_open ? d->con_fd : -1, .events = POLLIN}};
        if (poll(p, 4, -1) < 0 && errno != EINTR)
            break;
        if (p[1].revents)
            break; /* xenops_free: leave qemu running */
        if (p[3].revents) {
            char buf[4096];
            ssize_t n = read(d->con_fd, buf, sizeof(buf));
            if (n > 0) {
                pthread_mutex_lock(&d->con_lock);
                console_feed(x, d, buf, (size_t)n);
                pthread_mutex_unlock(&d->con_lock);
            } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
                con_open = false;
            }
        }
        if (p[2].revents) {
            char *line;
            int rc;
            while ((rc = qmp_read_line(&d->qmp_in, d->qmp_fd, &line)) == 1)
                qdom_qmp_line(x, d, line);
            if (rc < 0)
                qmp_open = false; /* QMP hang-up: qemu is dying; the pidfd says when */
            if (rc < 0 && poll(&(struct pollfd){.fd = d->pidfd, .events = POLLIN}, 1, 2000) == 0) {
                log_warn("xenops.qmp_hangup", "vm=%s pid=%d: killed", d->uuid, (int)d->pid);
                syscall(SYS_pidfd_send_signal, d->pidfd, SIGKILL, NULL, 0);
            }
        }
        if (p[0].revents) {
            gone = true;
            break;
        }
    }
    if (gone) {
        uint64_t t_gone = log_clock_us();
        /* drain the console: the guest's last words precede its exit */
        char buf[4096];
        ssize_t n;
        while (con_open && (n = recv(d->con_fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
            pthread_mutex_lock(&d->con_lock);
            console_feed(x, d, buf, (size_t)n);
            pthread_mutex_unlock(&d->con_lock);
        }
        char *line;
        while (qmp_open && qmp_read_line(&d->qmp_in, d->qmp_fd, &line) == 1)
            qdom_qmp_line(x, d, line);
        uint64_t t_drained = log_clock_us(), clean_us = 0;
        char aside[4300];
        qdom_exited(x, d, &clean_us, aside, sizeof(aside));
        uint64_t t_announced = log_clock_us();
        pthread_mutex_lock(&d->lock);
        d->announced = true; /* (1) */
        int mntns = d->mntns_fd;
        d->mntns_fd = -1;
        pthread_cond_broadcast(&d->cond);
        pthread_mutex_unlock(&d->lock);
        /* the taps' release (xenops/taps.c) first: it is what drops their
         * carrier, which tells the bridge the guest is no longer there */
        qdom_taps_close(d, NULL);
        if (mntns >= 0)
            close(mntns); /* its teardown, here, after the waiting caller went on */
        if (aside[0])
            clean_dir_at(aside); /* so are its files */
        /* drained: console and QMP read; clean: files and cgroup gone; events:
         * the exit's handlers (api/domains.c); exited: all, the namespace's
         * teardown after the announcement included */
        log_debug("xenops.exit_steps",
                  "vm=%s drained_ms=%.2f clean_ms=%.2f events_ms=%.2f exited_ms=%.2f", d->uuid,
                  (double)(t_drained - t_gone) / 1e3, (double)clean_us / 1e3,
                  (double)(t_announced - t_drained - clean_us) / 1e3,
                  (double)(log_clock_us() - t_gone) / 1e3);
    }
    qdom_unref(d);
    pthread_mutex_lock(&b->lock);
    b->n_threads--;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

/* 0 when the process at the other end of @fd is @pid: qemu's directory is its
 * own (5), so a name in it may be a link to some other socket; the kernel's
 * word on the peer is what counts (SO_PEERCRED: the pid as our namespace
 * sees it). -EPERM otherwise. */
int
peer_is(int fd, pid_t pid)
{
    struct ucred peer;
    socklen_t len = sizeof(peer);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) < 0)
        return -errno;
    return peer.pid == pid ? 0 : -EPERM;
}

/* Holds d's qemu's mount namespace (its own, xenops/spawn.c) open until the
 * supervisor has announced its exit. A namespace's last holder tears down
 * its copy of the mount tree (an RCU grace period: about 2 ms here, more
 * under load); were that qemu, the teardown would come before its exit
 * shows on the pidfd, delaying every hard shutdown. Held here, it happens
 * after the stop's caller went on. Nothing runs in it by then. */
static void
qdom_hold_mntns(struct qdom *d)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/ns/mnt", (int)d->pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    /* the pidfd still quiet: the pid was qemu's when opened */
    if (fd >= 0 && poll(&(struct pollfd){.fd = d->pidfd, .events = POLLIN}, 1, 0) != 0) {
        close(fd);
        fd = -1;
    }
    d->mntns_fd = fd;
}

/* Connects QMP and the console of d's qemu (pid/pidfd known), starts its
 * supervisor and puts it in the map. On failure the caller kills qemu. */
static int
qdom_attach(struct xenops *x, struct qdom *d, unsigned timeout_ms)
{
    struct qbackend *b = x->priv;
    char path[4200];
    uint64_t deadline = xenops_now_ms() + timeout_ms;
    snprintf(path, sizeof(path), "%s/qmp.sock", d->dm_dir);
    if ((d->qmp_fd = qmp_connect(path, d->pidfd, deadline)) < 0)
        return d->qmp_fd;
    int rc = peer_is(d->qmp_fd, d->pid);
    if (rc == 0)
        rc = qmp_handshake(&d->qmp_in, d->qmp_fd, timeout_ms);
    if (rc < 0)
        return rc;
    snprintf(path, sizeof(path), "%s/console.sock", d->dm_dir);
    if ((d->con_fd = qmp_connect(path, d->pidfd, deadline)) < 0)
        return d->con_fd;
    if ((rc = peer_is(d->con_fd, d->pid)) < 0)
        return rc;
    if ((d->wake_fd = eventfd(0, EFD_CLOEXEC)) < 0)
        return -errno;
    /* the supervisor reads whatever is there and goes back to poll: it must
     * never block in read() on one socket while the other has data */
    if (fcntl(d->qmp_fd, F_SETFL, O_NONBLOCK) < 0 || fcntl(d->con_fd, F_SETFL, O_NONBLOCK) < 0)
        return -errno;
    console_log_open(x, d);
    struct supervise_arg *a = malloc(sizeof(*a));
    if (!a)
        return -ENOMEM;
    a->x = x;
    a->d = d;
    pthread_mutex_lock(&b->lock);
    struct hashmap *map = d->incoming ? &b->incoming : &b->doms;
    if (b->stopping || hashmap_get(map, d->uuid)) {
        rc = b->stopping ? -ESHUTDOWN : -EEXIST;
        pthread_mutex_unlock(&b->lock);
        free(a);
        return rc;
    }
    if ((rc = hashmap_put(map, d->uuid, d)) < 0) {
        pthread_mutex_unlock(&b->lock);
        free(a);
        return rc;
    }
    d->refs += 2; /* the map's and the supervisor's; no other thread sees d yet */
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    rc = -pthread_create(&t, &attr, qdom_supervise, a);
    pthread_attr_destroy(&attr);
    if (rc < 0) {
        hashmap_remove(map, d->uuid);
        d->refs -= 2;
        free(a);
    } else {
        b->n_threads++;
    }
    pthread_mutex_unlock(&b->lock);
    return rc;
}

/* ================= spawning ================= */

/* Resolves @name along PATH (before fork: execv in the child allocates nothing). */
static char *
find_binary(const char *name)
{
    if (strchr(name, '/'))
        return strdup(name);
    const char *path = getenv("PATH");
    _cleanup_free_ char *copy = strdup(path ? path : "/usr/bin:/bin");
    char *save = NULL;
    for (char *dir = copy ? strtok_r(copy, ":", &save) : NULL; dir;
         dir = strtok_r(NULL, ":", &save)) {
        char *full;
        if (asprintf(&full, "%s/%s", dir, name) < 0)
            return NULL;
        if (access(full, X_OK) == 0)
            return full;
        free(full);
    }
    return NULL;
}

int
qdom_write_file(const char *dir, const char *name, const char *text)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    size_t len = strlen(text);
    return write(fd, text, len) == (ssize_t)len ? 0 : -EIO;
}

/* Waits for an incoming migration (resume) to finish: status leaves "inmigrate". */
static int
qdom_wait_incoming(struct qdom *d)
{
    uint64_t deadline = xenops_now_ms() + 60000;
    while (xenops_now_ms() < deadline) {
        json_t *r = NULL;
        int rc = qdom_qmp(d, "query-status", &r);
        if (rc < 0)
            return rc;
        const char *st = json_string_value(json_object_get(r, "status"));
        bool done = st && strcmp(st, "inmigrate") != 0;
        bool bad = st && (!strcmp(st, "internal-error") || !strcmp(st, "shutdown"));
        json_decref(r);
        if (bad)
            return -EIO;
        if (done)
            return 0;
        poll(NULL, 0, 20);
    }
    return -ETIMEDOUT;
}

/* @path as qemu names it from its working directory d->dm_dir (5): a socket
 * under the run dir (a disk server's, DATA/run/disks/) relative to it, so
 * that qemu needs no search permission above the run dir (DATA is 0700).
 * Other paths as they are. Malloc'd, or NULL. */
static char *
qemu_path(struct xenops *x, const char *path)
{
    size_t n = strlen(x->run_dir);
    char *out = NULL;
    if (!strncmp(path, x->run_dir, n) && path[n] == '/')
        return asprintf(&out, "../../%s", path + n + 1) < 0 ? NULL : out;
    return strdup(path);
}

/* The config the command line is made from: @cfg as qemu sees it (5): the
 * kernel and initrd as the descriptors it inherits, disks by qemu_path(). */
static struct xenops_domain_config *
qemu_view(struct xenops *x, const struct xenops_domain_config *cfg)
{
    _cleanup_(xenops_config_freep) struct xenops_domain_config *v = xenops_config_copy(cfg);
    if (!v)
        return NULL;
    char fdpath[32];
    if (v->kernel) {
        free(v->kernel);
        snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", QEMU_FD_KERNEL);
        if (!(v->kernel = strdup(fdpath)))
            return NULL;
    }
    if (v->initrd) {
        free(v->initrd);
        snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", QEMU_FD_INITRD);
        if (!(v->initrd = strdup(fdpath)))
            return NULL;
    }
    for (size_t i = 0; i < v->n_disks; i++) {
        char *p = qemu_path(x, v->disks[i].path);
        if (!p)
            return NULL;
        free(v->disks[i].path);
        v->disks[i].path = p;
    }
    return steal_ptr(&v);
}

static int
qemu_spawn_domain(struct xenops *x, const struct xenops_domain_config *cfg,
                  const char *resume_path, bool announce, bool incoming)
{
    uint64_t t_begin = log_clock_us(), t_spawn = 0, t_spawned = 0, t_attached = 0;
    _cleanup_(qdom_unrefp) struct qdom *d = qdom_new(x, cfg, incoming);
    if (!d)
        return -ENOMEM;
    xenops_config_assign_ports(d->cfg); /* (4): recorded as the argv uses them */
    const char *accel = cfg->accel == XENOPS_ACCEL_KVM   ? "kvm"
                        : cfg->accel == XENOPS_ACCEL_TCG ? "tcg"
                                                         : xenops_kvm_probe(x->qemu_binary, 3000);
    snprintf(d->accel, sizeof(d->accel), "%s", accel);
    /* the files qemu boots from, opened here: it gets descriptors (5) */
    _cleanup_close_ int kernel_fd = -1, initrd_fd = -1;
    if (cfg->boot == XENOPS_BOOT_DIRECT &&
        (kernel_fd = open(cfg->kernel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
        return errno == ELOOP ? -EINVAL : -errno;
    if (cfg->boot == XENOPS_BOOT_DIRECT && cfg->initrd &&
        (initrd_fd = open(cfg->initrd, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
        return errno == ELOOP ? -EINVAL : -errno;
    _cleanup_(xenops_config_freep) struct xenops_domain_config *view = qemu_view(x, d->cfg);
    if (!view)
        return -ENOMEM;
    /* before the argv, which names them by number; d closes them on failure */
    int rc = qdom_taps_open(d, view);
    if (rc < 0) {
        log_warn_errno(-rc, "xenops.start_failed", "vm=%s step=tap", cfg->uuid);
        return rc;
    }
    char **argv = NULL;
    size_t argc = 0;
    rc = xenops_qemu_argv(view, accel, ".", x->qemu_binary, &argv, &argc);
    if (rc < 0)
        return rc;
    if (resume_path || incoming) {
        char **v = realloc(argv, (argc + 3) * sizeof(*v));
        if (!v) {
            xenops_strv_free(argv, argc);
            return -ENOMEM;
        }
        argv = v;
        argv[argc++] = strdup("-incoming");
        /* a migration's destination is configured over QMP first (TLS,
         * capabilities), then told where to listen: migrate-incoming */
        argv[argc++] = strdup(incoming ? "defer" : "fd:3");
        argv[argc] = NULL;
        if (!argv[argc - 1] || !argv[argc - 2]) {
            xenops_strv_free(argv, argc);
            return -ENOMEM;
        }
    }
    _cleanup_free_ char *bin = find_binary(argv[0]);
    _cleanup_free_ char *cfg_json = xenops_config_to_json(d->cfg);
    _cleanup_close_ int resume_fd = resume_path ? open(resume_path, O_RDONLY | O_CLOEXEC) : -1;
    if (rc == 0 && (!bin || !cfg_json))
        rc = bin ? -ENOMEM : -ENOENT;
    if (rc == 0 && resume_path && resume_fd < 0)
        rc = -errno;
    /* (5) ours 0711 (qemu passes through to dm/), dm/ qemu's alone */
    if (rc == 0 && mkdir(d->dir, 0711) < 0)
        rc = errno == EEXIST ? -EEXIST : -errno; /* (1): a live or unrecovered domain */
    if (rc == 0 && (chmod(d->dir, 0711) < 0 || mkdir(d->dm_dir, 0700) < 0))
        rc = -errno;
    if (rc == 0 && cfg->uid && chown(d->dm_dir, cfg->uid, cfg->gid) < 0)
        rc = -errno;
    char logpath[4200];
    snprintf(logpath, sizeof(logpath), "%s/qemu.log", d->dir);
    _cleanup_close_ int logfd = rc ? -1 : open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (rc == 0 && logfd < 0)
        rc = -errno;
    if (rc == 0)
        rc = qdom_write_file(d->dir, "config.json", cfg_json);
    if (rc == 0)
        rc = qdom_write_file(d->dir, "accel", accel);
    char cgroup[4200] = "";
    if (rc == 0)
        xenops_cgroup_create_named(x, d->cfg, d->name, accel, cgroup, sizeof(cgroup));
    char procs[4300];
    snprintf(procs, sizeof(procs), "%s/cgroup.procs", cgroup);
    _cleanup_close_ int cgroup_fd = cgroup[0] ? open(procs, O_WRONLY | O_CLOEXEC) : -1;
    int nic_fds[XENOPS_NIC_FDS];
    size_t n_nic_fds = 0;
    qdom_taps_fds(d, nic_fds, &n_nic_fds);
    struct xenops_spawn_plan plan = {.bin = bin, .argv = argv, .dm_dir = d->dm_dir, .logfd = logfd,
                              .keep = {resume_fd, kernel_fd, initrd_fd}, .cgroup_fd = cgroup_fd,
                              .nic_fds = nic_fds, .n_nic_fds = n_nic_fds,
                              .uid = cfg->uid, .gid = cfg->gid};
    struct group *kvm = NULL, kvm_buf;
    char kvm_text[1024];
    /* /dev/kvm is the kvm group's (Debian's udev rule); TCG needs no group */
    if (!strcmp(accel, "kvm") && getgrnam_r("kvm", &kvm_buf, kvm_text, sizeof(kvm_text), &kvm) == 0 &&
        kvm) {
        plan.groups[0] = kvm->gr_gid;
        plan.n_groups = 1;
    }
    const char *step = "prepare"; /* for the log of a failure */
    if (rc == 0) {
        int ns_errno = 0;
        step = "spawn";
        t_spawn = log_clock_us();
        d->start_time_ms = xenops_realtime_ms();
        d->pid = xenops_spawn_detached(&plan, &ns_errno);
        if (d->pid < 0)
            rc = d->pid;
        if (rc == 0 && ns_errno)
            log_warn_errno(ns_errno, "xenops.namespaces", "vm=%s: qemu runs without mount, "
                           "PID and IPC namespaces of its own", cfg->uuid);
    }
    xenops_strv_free(argv, argc);
    if (rc == 0 && (d->pidfd = (int)syscall(SYS_pidfd_open, d->pid, 0)) < 0)
        rc = -errno;
    if (rc == 0)
        qdom_hold_mntns(d);
    if (rc == 0) {
        char pidtext[32];
        step = "pidfile";
        snprintf(pidtext, sizeof(pidtext), "%d\n", (int)d->pid);
        rc = qdom_write_file(d->dir, "qemu.pid", pidtext);
    }
    d->announce_resume = announce;
    /* a resumed or migrated guest may hold its agent's port open since
     * before: QEMU migrates that state without an event, so ask */
    d->agent_port = resume_path || incoming ? -1 : 0;
    bool attached = false;
    t_spawned = log_clock_us();
    if (rc == 0 && (step = "attach"))
        attached = (rc = qdom_attach(x, d, 10000)) == 0;
    t_attached = log_clock_us();
    if (rc == 0 && resume_path && (step = "incoming"))
        rc = qdom_wait_incoming(d);
    if (rc == 0 && !cfg->start_paused && !incoming && (step = "cont"))
        rc = qdom_qmp(d, "cont", NULL);
    if (rc < 0 && rc != -EEXIST) {
        /* rollback: the qemu we started (if any) goes, and its directory */
        /* what qemu said on its way out is the reason a user needs */
        _cleanup_free_ char *said = read_small(d->dir, "qemu.log");
        char *tail = said ? said + (strlen(said) > 300 ? strlen(said) - 300 : 0) : NULL;
        for (char *c = tail; c && *c; c++)
            if (*c == '\n' || *c == '"')
                *c = ' ';
        log_warn_errno(-rc, "xenops.start_failed", "vm=%s pid=%d step=%s qemu=\"%s\"", cfg->uuid,
                       (int)d->pid, step, tail ? tail : "");
        pthread_mutex_lock(&d->lock);
        d->exit_event = XENOPS_EVENT_HALTED;
        pthread_mutex_unlock(&d->lock);
        if (d->pid > 0)
            kill(d->pid, SIGKILL);
        if (!attached) { /* else its supervisor sees the exit and cleans up */
            qdom_clean_dir(d);
            xenops_cgroup_remove(x, d->name);
        }
        return rc;
    }
    if (rc == 0)
        log_info("xenops.qemu_start", "vm=%s pid=%d accel=%s uid=%u", d->uuid, (int)d->pid,
                 accel, (unsigned)cfg->uid);
    /* the steps to the guest's first instruction (cont): bench/guests/api_bench.py */
    uint64_t t_end = log_clock_us();
    if (rc == 0)
        log_debug("xenops.start_steps", "vm=%s prepare_ms=%.2f spawn_ms=%.2f attach_ms=%.2f "
                  "cont_ms=%.2f", d->uuid, (double)(t_spawn - t_begin) / 1e3,
                  (double)(t_spawned - t_spawn) / 1e3, (double)(t_attached - t_spawned) / 1e3,
                  (double)(t_end - t_attached) / 1e3);
    return rc;
}

/* ================= lifecycle ops ================= */

static int
qemu_start(struct xenops *x, const struct xenops_domain_config *cfg, const char *resume_path)
{
    _cleanup_(qdom_unrefp) struct qdom *old = qdom_get(x, cfg->uuid);
    if (old)
        return -EEXIST;
    return qemu_spawn_domain(x, cfg, resume_path, resume_path != NULL, false);
}

int
qemu_spawn_incoming(struct xenops *x, const struct xenops_domain_config *cfg)
{
    _cleanup_(qdom_unrefp) struct qdom *old = qdom_get_incoming(x, cfg->uuid);
    if (old)
        return -EEXIST;
    return qemu_spawn_domain(x, cfg, NULL, false, true);
}

int
qdom_incoming_commit(struct xenops *x, const char *uuid)
{
    struct qbackend *b = x->priv;
    pthread_mutex_lock(&b->lock);
    struct qdom *d = hashmap_get(&b->incoming, uuid);
    int rc = !d ? -ENOENT : hashmap_get(&b->doms, uuid) ? -EEXIST : 0;
    char *dir = NULL, *dm_dir = NULL;
    if (rc == 0 && (asprintf(&dir, "%s/%s", x->run_dir, uuid) < 0 ||
                    asprintf(&dm_dir, "%s/%s/dm", x->run_dir, uuid) < 0))
        rc = -ENOMEM;
    /* the source's directory went with its exit (1); qemu's working
     * directory follows the rename, and its sockets are connected already */
    if (rc == 0 && rename(d->dir, dir) < 0)
        rc = -errno;
    /* the map keeps the key's pointer: the domain's own copy (1) */
    if (rc == 0 && (rc = hashmap_put(&b->doms, d->uuid, d)) == 0) {
        hashmap_remove(&b->incoming, d->uuid);
        xenops_cgroup_rename(x, d->name, uuid);
        pthread_mutex_lock(&d->lock);
        free(d->dir);
        free(d->dm_dir);
        d->dir = steal_ptr(&dir);
        d->dm_dir = steal_ptr(&dm_dir);
        snprintf(d->name, sizeof(d->name), "%s", uuid);
        d->incoming = false;
        d->silent = false;
        pthread_mutex_unlock(&d->lock);
    }
    pthread_mutex_unlock(&b->lock);
    free(dir);
    free(dm_dir);
    return rc;
}

static int
qdom_status(struct qdom *d, bool *running)
{
    json_t *r = NULL;
    int rc = qdom_qmp(d, "query-status", &r);
    if (rc == 0)
        *running = json_is_true(json_object_get(r, "running"));
    json_decref(r);
    return rc;
}

static int
qemu_pause(struct xenops *x, const char *uuid)
{
    _cleanup_(qdom_unrefp) struct qdom *d = qdom_get(x, uuid);
    bool running;
    if (!d)
        return -ENOENT;
    int rc = qdom_status(d, &running);
    if (rc == 0 && !running)
        rc = -EBUSY;
    return rc < 0 ? rc : qdom_qmp(d, "stop", NULL);
}

static int
qemu_unpause(struct xenops *x, const char *uuid)
{
    _cleanup_(qdom_unrefp) struct qdom *d = qdom_get(x, uuid);
    bool running;
    if (!d)
        return -ENOENT;
    int rc = qdom_status(d, &running);
    if (rc == 0 && running)
        rc = -EBUSY;
    return rc < 0 ? rc : qdom_qmp(d, "cont", NULL);
}

/* Waits until the supervisor saw qemu exit and announced it (1); false on
 * timeout. */
bool
qdom_wait_exit(struct qdom *d, unsigned timeout_ms)
{
    uint64_t deadline = xenops_now_ms() + timeout_ms;
    pthread_mutex_lock(&d->lock);
    while (!d->announced && qdom_wait(d, deadline))
        ;
    bool exited = d->announced;
    pthread_mutex_unlock(&d->lock);
    return exited;
}

/* A clean shutdown's wait for qemu to go: 0 when it went, -ETIMEDOUT after
 * @timeout_ms, -ECANCELED when cancel_waits was called since @cancels. */
static int
qdom_wait_clean_exit(struct qdom *d, uint64_t cancels, unsigned timeout_ms)
{
    uint64_t deadline = xenops_now_ms() + timeout_ms;
    pthread_mutex_lock(&d->lock);
    while (!d->announced && d->cancels == cancels && qdom_wait(d, deadline))
        ;
    int rc = d->announced ? 0 : d->cancels != cancels ? -ECANCELED : -ETIMEDOUT;
    pthread_mutex_unlock(&d->lock);
    return rc;
}

int
qdom_kill(struct qdom *d, int exit_event)
{
    pthread_mutex_lock(&d->lock);
    d->exit_event = exit_event;
    pthread_mutex_unlock(&d->lock);
    json_t *c = json_pack("{s:s}", "execute", "quit");
    pthread_mutex_lock(&d->cmd_lock);
    if (c)
        qmp_send(d->qmp_fd, c, -1); /* its reply may never come: qemu goes */
    pthread_mutex_unlock(&d->cmd_lock);
    json_decref(c);
    if (qdom_wait_exit(d, 2000))
        return 0;
    syscall(SYS_pidfd_send_signal, d->pidfd, SIGKILL, NULL, 0);
    return qdom_wait_exit(d, 5000) ? 0 : -EIO;
}

/* A hard shutdown is the domain's destruction (xapi's hard_shutdown destroys
 * the Xen domain): SIGKILL at once, as a bare `kill -9` would, rather than
 * QMP quit, which waits for qemu's main loop (slow on a busy TCG host) to tear
 * down devices nothing needs torn down: a write the guest saw complete is
 * already with its disk server (NBD) or in the host's page cache (a raw
 * file), and its disk servers flush when they stop (api/disk_servers.c). The
 * pidfd says when it is gone; the supervisor cleans up per (1). */
int
qdom_sigkill(struct qdom *d)
{
    pthread_mutex_lock(&d->lock);
    d->exit_event = XENOPS_EVENT_HALTED;
    if (!d->sigkill_us)
        d->sigkill_us = log_clock_us();
    pthread_mutex_unlock(&d->lock);
    if (syscall(SYS_pidfd_send_signal, d->pidfd, SIGKILL, NULL, 0) < 0 && errno != ESRCH)
        return -errno;
    return 0;
}

/* The hard shutdown (qdom_sigkill); @step (may be NULL) runs once the signal
 * is sent, while the kernel tears qemu down, and once qemu has exited, while
 * the supervisor cleans up (xenops.h). */
static int
qdom_destroy(struct qdom *d, xenops_destroy_fn *step, void *opaque)
{
    int rc = qdom_sigkill(d);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&d->lock);
    uint64_t t0 = d->sigkill_us; /* the first SIGKILL's (xenops_domain_kill) */
    pthread_mutex_unlock(&d->lock);
    if (step)
        step(opaque, XENOPS_DESTROYED); /* the guest runs no more; d is still held */
    /* the kernel's part (qemu's exit) and ours (the supervisor's clean-up,
     * its own line xenops.exit_steps, then this thread woken) */
    struct pollfd p = {.fd = d->pidfd, .events = POLLIN};
    bool gone = poll(&p, 1, 5000) == 1;
    uint64_t t1 = log_clock_us();
    /* beside the supervisor's clean-up rather than after it: its pidfd woke
     * both threads, and on a host of two CPUs each has one */
    if (step && gone)
        step(opaque, XENOPS_EXITED);
    uint64_t t2 = log_clock_us();
    /* generous: the exit's handlers may stop disk servers, which flush (their
     * wait is 10 s at most, api/disk_servers.c) */
    bool exited = qdom_wait_exit(d, 30000);
    /* supervisor: what of its clean-up was left after the caller's step */
    log_debug("xenops.destroy_steps", "vm=%s kill_ms=%.2f exited_step_ms=%.2f supervisor_ms=%.2f",
              d->uuid, (double)(t1 - t0) / 1e3, (double)(t2 - t1) / 1e3,
              (double)(log_clock_us() - t2) / 1e3);
    return exited ? 0 : -EIO;
}

static int
qemu_shutdown(struct xenops *x, const char *uuid, bool hard, unsigned timeout_ms)
{
    _cleanup_(qdom_unrefp) struct qdom *d = qdom_get(x, uuid);
    if (!d)
        return -ENOENT;
    if (hard)
        return qdom_destroy(d, NULL, NULL);
    /* a clean shutdown is a halt whatever on_poweroff says (2) */
    pthread_mutex_lock(&d->lock);
    d->exit_event = XENOPS_EVENT_HALTED;
    uint64_t cancels = d->cancels;
    pthread_mutex_unlock(&d->lock);
    /* the agent first (it also reaches a guest that ignores ACPI), then the
     * power button; nothing is ever typed on the guest's console */
    int rc = qdom_agent_shutdown(d, "powerdown");
    if (rc == -ENOTSUP && !d->cfg->no_acpi)
        rc = qdom_qmp(d, "system_powerdown", NULL);
    if (rc == 0)
        rc = qdom_wait_clean_exit(d, cancels, timeout_ms);
    if (rc < 0) {
        pthread_mutex_lock(&d->lock);
        if (!d->exited)
            d->exit_event = -1;
        pthread_mutex_unlock(&d->lock);
    }
    return rc == -ESRCH ? 0 : rc;
}

static int
qemu_destroy(struct xenops *x, const char *uuid, xenops_destroy_fn *step, void *opaque)
{
    _cleanup_(qdom_unrefp) struct qdom *d = qdom_get(x, uuid);
    return d ? qdom_destroy(d, step, opaque) : -ENOENT;
}

static int
qemu_kill(struct xenops *x, const char *uuid)
{
    _cleanup_(qdom_unrefp) struct qdom *d = qdom_get(x, uuid);
    return d ? qdom_sigkill(d) : -ENOENT;
}

static int
qemu_cancel_waits(struct xenops *x, const char *uuid)
{
    _cleanup_(qdom_unrefp) struct qdom *d = qdom_get(x, uuid);
    if (!d)
        return -ENOENT;
    pthread_mutex_lock(&d->lock);
    d->cancels++;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
    return 0;
}

static int
qemu_reboot(struct xenops *x, const char *uuid, bool hard, unsigned timeout_ms)
{
    _cleanup_(qdom_unrefp) struct qdom *d = qdom_get(x, uuid);
    if (!d)
        return -ENOENT;
    pthread_mutex_lock(&d->lock);
    uint64_t before = d->reboots, cancels = d->cancels;
    pthread_mutex_unlock(&d->lock);
    /* ACPI has no reboot button: without an agent a clean reboot cannot be
     * asked for (-ENOTSUP), as xapi refuses it to a guest lacking the feature */
    int rc = hard ? qdom_qmp(d, "system_reset", NULL) : qdom_agent_shutdown(d, "reboot");
    if (rc < 0)
        return rc;
    uint64_t deadline = xenops_now_ms() + (hard ? 5000 : timeout_ms);
    pthread_mutex_lock(&d->lock);
    while (d->reboots == before && !d->exited && d->cancels == cancels && qdom_wait(d, deadline))
        ;
    rc = d->reboots != before ? 0 : d->exited ? 0 : d->cancels != cancels ? -ECANCELED : -ETIMEDOUT;
    pthread_mutex_unlock(&d->lock);
    return rc;
}

static int
qemu_suspend(struct xenops *x, const char *uuid, const char *path)
{
    _cleanup_(qdom_unrefp) struct qdom *d = qdom_get(x, uuid);
    if (!d)
        return -ENOENT;
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    bool running;
    int rc = qdom_status(d, &running);
    if (rc == 0 && running)
        rc = qdom_qmp(d, "stop", NULL);
    if (rc == 0)
        rc = qdom_qmp_fd(d, json_pack("{s:s,s:{s:s}}", "execute", "getfd", "arguments", "fdname",
                                      "vessel-suspend"), fd, NULL);
    if (rc == 0)
        rc = qdom_qmp_fd(d, json_pack("{s:s,s:{s:s}}", "execute", "migrate", "arguments", "uri",
                                      "fd:vessel-suspend"), -1, NULL);
    uint64_t deadline = xenops_now_ms() + 120000;
    while (rc == 0) {
        json_t *r = NULL;
        if ((rc = qdom_qmp(d, "query-migrate", &r)) < 0)
            break;
        const char *st = json_string_value(json_object_get(r, "status"));
        bool done = st && !strcmp(st, "completed");
        bool failed = !st || !strcmp(st, "failed") || !strcmp(st, "cancelled");
        json_decref(r);
        if (done)
            break;
        if (failed)
            rc = -EIO;
        else if (xenops_now_ms() > deadline)
            rc = -ETIMEDOUT;
        else
            poll(NULL, 0, 20);
    }
    if (rc < 0) {
        log_warn_errno(-rc, "xenops.suspend_failed", "vm=%s", uuid);
        unlink(path);
        if (running)
            qdom_qmp(d, "cont", NULL); /* rollback: it keeps running */
        return rc;
    }
    if (fsync(fd) < 0)
        rc = -errno;
    return rc < 0 ? rc : qdom_kill(d, XENOPS_EVENT_SUSPENDED);
}

/* The id our namespace gives thread @ns_tid of @pid: qemu is pid 1 of a PID
 * namespace of its own, and QMP reports its threads' ids as it sees them.
 * NSpid in /proc/PID/task/TID/status lists a thread's id in each namespace,
 * ours first (proc(5)). @ns_tid itself when @pid has no namespace of its own. */
static long
host_tid(pid_t pid, long ns_tid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *dir = opendir(path);
    struct dirent *e;
    long found = ns_tid;
    bool done = false;
    while (dir && !done && (e = readdir(dir))) {
        if (e->d_name[0] == '.')
            continue;
        char spath[320], line[256];
        snprintf(spath, sizeof(spath), "/proc/%d/task/%s/status", (int)pid, e->d_name);
        FILE *f = fopen(spath, "re");
        while (f && fgets(line, sizeof(line), f)) {
            if (strncmp(line, "NSpid:", 6))
                continue;
            long ids[8];
            int k = 0, off = 6, used;
            while (k < 8 && sscanf(line + off, "%ld%n", &ids[k], &used) == 1) {
                off += used;
                k++;
            }
            if (k > 1 && ids[k - 1] == ns_tid) {
                found = ids[0];
                done = true;
            }
            break;
        }
        if (f)
            fclose(f);
    }
    if (dir)
        closedir(dir);
    return found;
}

/* utime + stime of /proc/<pid>/task/<tid>/stat, in ns. */
static uint64_t
thread_cpu_ns(pid_t pid, long tid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/task/%ld/stat", (int)pid, tid);
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* comm may contain spaces */
    unsigned long long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return 0;
    return (ut + st) * (1000000000ull / (uint64_t)sysconf(_SC_CLK_TCK));
}

static int
qemu_stats(struct xenops *x, const char *uuid, struct xenops_stats *out)
{
    _cleanup_(qdom_unrefp) struct qdom *d = qdom_get(x, uuid);
    if (!d)
        return -ENOENT;
    bool running;
    int rc = qdom_status(d, &running);
    if (rc < 0)
        return rc;
    out->power = running ? XENOPS_POWER_RUNNING : XENOPS_POWER_PAUSED;
    out->pid = d->pid;
    out->memory_bytes = d->cfg->memory_bytes;
    pthread_mutex_lock(&d->lock);
    /* the balloon's word once it spoke; before, the guest has all it was given */
    out->memory_actual_bytes = d->balloon_actual ? d->balloon_actual : d->cfg->memory_bytes;
    out->vcpus = d->cfg->vcpus;
    pthread_mutex_unlock(&d->lock);
    out->start_time_ms = d->start_time_ms;
    snprintf(out->accel, sizeof(out->accel), "%s", d->accel);
    json_t *cpus = NULL;
    if (qdom_qmp(d, "query-cpus-fast", &cpus) == 0) {
        size_t i;
        json_t *c;
        json_array_foreach(cpus, i, c) {
            json_int_t idx = json_integer_value(json_object_get(c, "cpu-index"));
            json_int_t tid = json_integer_value(json_object_get(c, "thread-id"));
            if (idx >= 0 && idx < 64 && tid > 0)
                out->vcpu_time_ns[idx] = thread_cpu_ns(d->pid, host_tid(d->pid, (long)tid));
        }
    }
    json_decref(cpus);
    return 0;
}

static int
qemu_list(struct xenops *x, char ***uuids, size_t *n)
{
    struct qbackend *b = x->priv;
    pthread_mutex_lock(&b->lock);
    char **v = calloc(b->doms.n + 1, sizeof(*v));
    size_t k = 0;
    int rc = v ? 0 : -ENOMEM;
    /* the map has no iterator: the run dir lists the same uuids (1) */
    DIR *dir = v ? opendir(x->run_dir) : NULL;
    struct dirent *e;
    while (dir && (e = readdir(dir)) && k < b->doms.n)
        if (hashmap_get(&b->doms, e->d_name) && !(v[k++] = strdup(e->d_name)))
            rc = -ENOMEM;
    if (dir)
        closedir(dir);
    pthread_mutex_unlock(&b->lock);
    if (rc < 0) {
        xenops_strv_free(v, k);
        return rc;
    }
    *uuids = v;
    *n = k;
    return 0;
}

/* ================= NIC hotplug ================= */

/* The index of the NIC on @tap in d->cfg, or -1. d->lock held. */
static ssize_t
nic_find(const struct qdom *d, const char *tap)
{
    for (size_t i = 0; i < d->cfg->n_nics; i++)
        if (!strcmp(d->cfg->nics[i].tap, tap))
            return (ssize_t)i;
    return -1;
}

/* config.json from d->cfg, replaced atomically (a crash leaves the old or the
 * new one). d->nic_lock held. */
int
qdom_save_config(struct qdom *d)
{
    pthread_mutex_lock(&d->lock);
    _cleanup_free_ char *json = xenops_config_to_json(d->cfg);
    pthread_mutex_unlock(&d->lock);
    if (!json)
        return -ENOMEM;
    int rc = qdom_write_file(d->dir, "config.json.new", json);
    char from[4200], to[4200];
    snprintf(from, sizeof(from), "%s/config.json.new", d->dir);
    snprintf(to, sizeof(to), "%s/config.json", d->dir);
    if (rc == 0 && rename(from, to) < 0)
        rc = -errno;
    if (rc < 0)
        unlink(from);
    return rc;
}

static int
qemu_nic_plug(struct xenops *x, const char *uuid, const struct xenops_nic *nic)
{
    _cleanup_(qdom_unrefp) struct qdom *d = qdom_get(x, uuid);
    if (!d)
        return -ENOENT;
    if (d->cfg->machine == XENOPS_MACHINE_MICROVM)
        return -ENOTSUP; /* virtio-mmio: no hotplug */
    char netdev[XENOPS_NIC_ID_LEN], dev[XENOPS_NIC_ID_LEN], bus[16] = "";
    xenops_nic_ids(nic->tap, netdev, dev);
    pthread_mutex_lock(&d->nic_lock);
    pthread_mutex_lock(&d->lock);
    int rc = nic_find(d, nic->tap) >= 0 ? -EEXIST : 0;
    unsigned port = 0; /* q35: the first free hotplug port */
    bool used[XENOPS_Q35_PORTS + 1] = {false};
    for (size_t i = 0; i < d->cfg->n_nics; i++)
        used[d->cfg->nics[i].port <= XENOPS_Q35_PORTS ? d->cfg->nics[i].port : 0] = true;
    for (unsigned p = 1; d->cfg->machine == XENOPS_MACHINE_Q35 && !port && p <= XENOPS_Q35_PORTS;
         p++)
        if (!used[p])
            port = p;
    if (rc == 0 && d->cfg->machine == XENOPS_MACHINE_Q35 && !port)
        rc = -ENOSPC;
    if (port)
        snprintf(bus, sizeof(bus), "vport%u", port - 1);
    pthread_mutex_unlock(&d->lock);
    if (rc == 0)
        rc = qdom_qmp_fd(d, json_pack("{s:s,s:{s:s,s:s,s:s,s:s,s:s}}", "execute", "netdev_add",
                                      "arguments", "type", "tap", "id", netdev, "ifname",
                                      nic->tap, "script", "no", "downscript", "no"),
                         -1, NULL);
    bool netdev_added = rc == 0;
    /* the same device as a NIC given at start (argv.c add_nics) */
    json_t *args = rc == 0 ? json_pack("{s:s,s:s,s:s,s:s,s:b}", "driver", "virtio-net-pci", "id",
                                       dev, "netdev", netdev, "mac", nic->mac, "guest_announce",
                                       0)
                           : NULL;
    if (args && port)
        json_object_set_new(args, "bus", json_string(bus));
    if (rc == 0)
        rc = qdom_qmp_fd(d, json_pack("{s:s,s:o}", "execute", "device_add", "arguments", args),
                         -1, NULL);
    if (rc == 0) {
        pthread_mutex_lock(&d->lock);
        struct xenops_nic *v = realloc(d->cfg->nics, (d->cfg->n_nics + 1) * sizeof(*v));
        if (v) {
            d->cfg->nics = v;
            v[d->cfg->n_nics].tap = strdup(nic->tap);
            v[d->cfg->n_nics].mac = strdup(nic->mac);
            v[d->cfg->n_nics].port = port;
            if (v[d->cfg->n_nics].tap && v[d->cfg->n_nics].mac) {
                d->cfg->n_nics++;
            } else {
                free(v[d->cfg->n_nics].tap);
                free(v[d->cfg->n_nics].mac);
                v = NULL;
            }
        }
        pthread_mutex_unlock(&d->lock);
        rc = v ? qdom_save_config(d) : -ENOMEM;
        if (rc < 0)
            log_warn_errno(-rc, "xenops.nic_config", "vm=%s tap=%s: not recorded", uuid,
                           nic->tap);
        rc = 0; /* the NIC is in the guest: that is what the caller asked */
    } else if (netdev_added) { /* rollback */
        qdom_qmp_fd(d, json_pack("{s:s,s:{s:s}}", "execute", "netdev_del", "arguments", "id",
                                 netdev), -1, NULL);
    }
    pthread_mutex_unlock(&d->nic_lock);
    if (rc == 0)
        log_info("xenops.nic_plug", "vm=%s tap=%s mac=%s port=%u", uuid, nic->tap, nic->mac,
                 port);
    return rc == -ESRCH ? -ENOENT : rc;
}

/* Drops the NIC on @tap from d->cfg and config.json. d->nic_lock held. */
static void
nic_forget(struct qdom *d, const char *tap)
{
    pthread_mutex_lock(&d->lock);
    ssize_t i = nic_find(d, tap);
    if (i >= 0) {
        free(d->cfg->nics[i].tap);
        free(d->cfg->nics[i].mac);
        memmove(&d->cfg->nics[i], &d->cfg->nics[i + 1],
                (d->cfg->n_nics - (size_t)i - 1) * sizeof(d->cfg->nics[0]));
        d->cfg->n_nics--;
    }
    pthread_mutex_unlock(&d->lock);
    int rc = qdom_save_config(d);
    if (rc < 0)
        log_warn_errno(-rc, "xenops.nic_config", "vm=%s tap=%s: not recorded", d->uuid, tap);
}

/* QMP device_del of device @dev, then a wait of up to
 * @timeout_ms for the guest to let go: its DEVICE_DELETED. d->nic_lock held
 * (one unplug at a time owns nic_waiting). 0, -ETIMEDOUT, or -ENOENT when the
 * domain exited meanwhile. */
int
qdom_device_del(struct qdom *d, const char *dev, unsigned timeout_ms)
{
    pthread_mutex_lock(&d->lock);
    snprintf(d->nic_waiting, sizeof(d->nic_waiting), "%s", dev);
    d->nic_deleted = false;
    pthread_mutex_unlock(&d->lock);
    /* an error here is "no such device": an earlier unplug that timed out
     * finished since (the guest let go late), so the backend is what is left */
    bool gone = qdom_qmp_fd(d, json_pack("{s:s,s:{s:s}}", "execute", "device_del", "arguments",
                                         "id", dev), -1, NULL) == -EIO;
    uint64_t deadline = xenops_now_ms() + timeout_ms;
    int rc = 0;
    pthread_mutex_lock(&d->lock);
    while (rc == 0 && !gone && !d->nic_deleted && !d->exited)
        if (!qdom_wait(d, deadline))
            rc = -ETIMEDOUT;
    if (d->exited)
        rc = -ENOENT;
    d->nic_waiting[0] = '\0';
    pthread_mutex_unlock(&d->lock);
    return rc;
}

static int
qemu_nic_unplug(struct xenops *x, const char *uuid, const char *tap, bool force,
                unsigned timeout_ms)
{
    _cleanup_(qdom_unrefp) struct qdom *d = qdom_get(x, uuid);
    if (!d)
        return -ENOENT;
    char netdev[XENOPS_NIC_ID_LEN], dev[XENOPS_NIC_ID_LEN];
    xenops_nic_ids(tap, netdev, dev);
    pthread_mutex_lock(&d->nic_lock);
    pthread_mutex_lock(&d->lock);
    ssize_t idx = nic_find(d, tap);
    int rc = idx < 0 ? -ENOENT : 0;
    /* device_del cannot succeed on microvm, nor on q35's pcie.0 */
    if (rc == 0 && (d->cfg->machine == XENOPS_MACHINE_MICROVM ||
                    (d->cfg->machine == XENOPS_MACHINE_Q35 && !d->cfg->nics[idx].port)))
        rc = -ENOTSUP;
    pthread_mutex_unlock(&d->lock);
    /* @force waits for the guest too: QEMU cannot take a PCI device from a
     * guest that holds it, and a netdev deleted under a device the guest
     * still holds makes QEMU 10.0's vCPU thread fault once the guest lets go
     * (seen: integration-guest-network; 7.2 survived it). */
    if (rc == 0)
        rc = qdom_device_del(d, dev, timeout_ms);
    if (rc == 0) {
        int r = qdom_qmp_fd(d, json_pack("{s:s,s:{s:s}}", "execute", "netdev_del", "arguments",
                                         "id", netdev), -1, NULL);
        if (r < 0 && r != -EIO) /* -EIO: already gone */
            rc = r == -ESRCH ? -ENOENT : r;
    }
    if (rc == 0) {
        nic_forget(d, tap);
        qdom_taps_close(d, tap); /* qemu let go of it with the netdev */
    }
    pthread_mutex_unlock(&d->nic_lock);
    log_info("xenops.nic_unplug", "vm=%s tap=%s force=%d rc=%d", uuid, tap, force, rc);
    return rc;
}

static int
qemu_nic_present(struct xenops *x, const char *uuid, const char *tap)
{
    _cleanup_(qdom_unrefp) struct qdom *d = qdom_get(x, uuid);
    if (!d)
        return -ENOENT;
    pthread_mutex_lock(&d->lock);
    int rc = nic_find(d, tap) >= 0;
    pthread_mutex_unlock(&d->lock);
    return rc;
}

/* ================= disk hotplug ================= */

static int
qemu_disk_plug(struct xenops *x, const char *uuid, unsigned slot, const struct xenops_disk *disk)
{
    _cleanup_(qdom_unrefp) struct qdom *d = qdom_get(x, uuid);
    if (!d)
        return -ENOENT;
    if (d->cfg->machine != XENOPS_MACHINE_PC)
        return -ENOTSUP; /* q35's hotplug ports are the NICs'; microvm has none */
    char node[XENOPS_DISK_ID_LEN], dev[XENOPS_DISK_ID_LEN];
    xenops_disk_ids(slot, node, dev);
    _cleanup_free_ char *path = qemu_path(x, disk->path);
    if (!path)
        return -ENOMEM;
    pthread_mutex_lock(&d->nic_lock); /* one hotplug at a time: it owns nic_waiting */
    int rc = qdom_qmp_fd(d, json_pack("{s:s,s:{s:s,s:s,s:{s:s,s:s},s:b}}", "execute",
                                      "blockdev-add", "arguments", "driver", "nbd", "node-name",
                                      node, "server", "type", "unix", "path", path,
                                      "read-only", disk->read_only),
                         -1, NULL);
    bool node_added = rc == 0;
    if (rc == 0)
        rc = qdom_qmp_fd(d, json_pack("{s:s,s:{s:s,s:s,s:s}}", "execute", "device_add",
                                      "arguments", "driver", "virtio-blk-pci", "drive", node,
                                      "id", dev),
                         -1, NULL);
    if (rc < 0 && node_added) /* rollback */
        qdom_qmp_fd(d, json_pack("{s:s,s:{s:s}}", "execute", "blockdev-del", "arguments",
                                 "node-name", node), -1, NULL);
    pthread_mutex_unlock(&d->nic_lock);
    log_info("xenops.disk_plug", "vm=%s slot=%u socket=%s ro=%d rc=%d", uuid, slot, disk->path,
             disk->read_only, rc);
    return rc == -ESRCH ? -ENOENT : rc;
}

static int
qemu_disk_unplug(struct xenops *x, const char *uuid, unsigned slot, unsigned timeout_ms)
{
    _cleanup_(qdom_unrefp) struct qdom *d = qdom_get(x, uuid);
    if (!d)
        return -ENOENT;
    char node[XENOPS_DISK_ID_LEN], dev[XENOPS_DISK_ID_LEN];
    xenops_disk_ids(slot, node, dev);
    pthread_mutex_lock(&d->nic_lock);
    int rc = qdom_device_del(d, dev, timeout_ms);
    if (rc == 0) {
        int r = qdom_qmp_fd(d, json_pack("{s:s,s:{s:s}}", "execute", "blockdev-del",
                                         "arguments", "node-name", node), -1, NULL);
        if (r < 0 && r != -EIO) /* -EIO: already gone */
            rc = r;
    }
    pthread_mutex_unlock(&d->nic_lock);
    log_info("xenops.disk_unplug", "vm=%s slot=%u rc=%d", uuid, slot, rc);
    return rc == -ESRCH ? -ENOENT : rc;
}

/* ================= recovery ================= */

/* A file of a domain's run directory (pid, config, accelerator), or NULL. */
static char *
read_small(const char *dir, const char *name)
{
    char path[4200];
    char *text = NULL;
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
        return NULL;
    return fileio_read_all(path, 1u << 20, &text, NULL) == 0 ? text : NULL;
}

/* True when @pid's command line is domain @uuid's qemu ("-uuid" "<uuid>"):
 * it is our qemu, not a process that reused the pid. */
static bool
pid_is_domain(pid_t pid, const char *uuid)
{
    char path[64], buf[8192];
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
    if (n <= 0)
        return false;
    buf[n] = '\0';
    for (const char *a = buf; a < buf + n; a += strlen(a) + 1)
        if (!strcmp(a, "-uuid") && a + strlen(a) + 1 < buf + n && !strcmp(a + strlen(a) + 1, uuid))
            return true;
    return false;
}

static void
recover_one(struct xenops *x, const char *name)
{
    char dir[4200];
    snprintf(dir, sizeof(dir), "%s/%s", x->run_dir, name);
    _cleanup_free_ char *pidtext = read_small(dir, "qemu.pid");
    _cleanup_free_ char *json = read_small(dir, "config.json");
    _cleanup_free_ char *accel = read_small(dir, "accel");
    _cleanup_(xenops_config_freep) struct xenops_domain_config *cfg = NULL;
    if (!json || xenops_config_from_json(json, &cfg) < 0 || !cfg->uuid || strcmp(cfg->uuid, name))
        cfg = NULL;
    pid_t pid = pidtext ? (pid_t)atoi(pidtext) : 0;
    _cleanup_(qdom_unrefp) struct qdom *d = cfg ? qdom_new(x, cfg, false) : NULL;
    int rc = d ? 0 : -ENOENT;
    if (rc == 0 && (pid <= 0 || (d->pidfd = (int)syscall(SYS_pidfd_open, pid, 0)) < 0 ||
                    !pid_is_domain(pid, name)))
        rc = -ESRCH;
    if (rc == 0) {
        d->pid = pid;
        d->announce_resume = true;
        d->agent_port = -1; /* its guest may have opened the port long ago */
        snprintf(d->accel, sizeof(d->accel), "%s", accel ? accel : "tcg");
        struct stat st;
        char p[4300];
        snprintf(p, sizeof(p), "%s/qemu.pid", dir);
        d->start_time_ms = stat(p, &st) == 0 ? (uint64_t)st.st_mtime * 1000 : 0;
        rc = qdom_attach(x, d, 5000);
    }
    log_info("xenops.recover", "vm=%s pid=%d alive=%s", name, (int)pid, rc == 0 ? "yes" : "no");
    if (rc == 0 || rc == -EEXIST)
        return;
    if (d && d->pid > 0 && rc != -ESRCH) {
        /* alive but QMP does not answer us (another toolstack holds it?):
         * leave it and its directory alone; a later recover may adopt it */
        log_warn_errno(-rc, "xenops.recover_failed", "vm=%s pid=%d", name, (int)pid);
        return;
    }
    /* a qemu that died with the toolstack (a host's power lost) left its
     * device model's directory too: opendir(NULL) would crash the start */
    char dm[4300];
    snprintf(dm, sizeof(dm), "%s/dm", dir);
    struct qdom tmp = {.dir = dir, .dm_dir = dm};
    qdom_clean_dir(&tmp);
}

/* A migration's destination left by an earlier instance: the migration it
 * belonged to ended with that instance (its source kept the VM, or lost it
 * with the same crash), so it is killed and its directory removed (6). */
static void
recover_incoming(struct xenops *x, const char *name)
{
    char dir[4200], uuid[37];
    snprintf(dir, sizeof(dir), "%s/%s", x->run_dir, name);
    snprintf(uuid, sizeof(uuid), "%.36s", name);
    _cleanup_free_ char *pidtext = read_small(dir, "qemu.pid");
    pid_t pid = pidtext ? (pid_t)atoi(pidtext) : 0;
    int pidfd = pid > 0 ? (int)syscall(SYS_pidfd_open, pid, 0) : -1;
    if (pidfd >= 0 && pid_is_domain(pid, uuid)) {
        syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
        poll(&(struct pollfd){.fd = pidfd, .events = POLLIN}, 1, 5000);
    }
    if (pidfd >= 0)
        close(pidfd);
    char dm[4300];
    snprintf(dm, sizeof(dm), "%s/dm", dir);
    struct qdom tmp = {.dir = dir, .dm_dir = dm};
    qdom_clean_dir(&tmp);
    xenops_cgroup_remove(x, name);
    log_info("xenops.recover_incoming", "vm=%s pid=%d: killed", uuid, (int)pid);
}

/* A dead domain's directory that an earlier instance put aside and did not
 * get to remove (qdom_put_dir_aside): its qemu had exited. */
static void
recover_gone(struct xenops *x, const char *name)
{
    char dir[4200];
    snprintf(dir, sizeof(dir), "%s/%s", x->run_dir, name);
    clean_dir_at(dir);
}

static int
qemu_recover(struct xenops *x)
{
    DIR *dir = opendir(x->run_dir);
    if (!dir)
        return -errno;
    struct dirent *e;
    while ((e = readdir(dir)))
        if (strlen(e->d_name) == 36)
            recover_one(x, e->d_name);
        else if (strlen(e->d_name) == 39 && !strcmp(e->d_name + 36, ".in"))
            recover_incoming(x, e->d_name);
        else if (!strncmp(e->d_name, GONE_PREFIX, strlen(GONE_PREFIX)))
            recover_gone(x, e->d_name);
    closedir(dir);
    return 0;
}

/* ================= instance ================= */

static int
qemu_init(struct xenops *x)
{
    struct qbackend *b = calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->cond, NULL);
    hashmap_init(&b->doms);
    hashmap_init(&b->incoming);
    x->priv = b;
    return 0;
}

static void
unref_value(void *p)
{
    qdom_unref(p);
}

/* Tells every supervisor in the map to stop (qemu keeps running). */
static void
qemu_stop_supervisors(struct xenops *x)
{
    char **v = NULL;
    size_t n = 0;
    if (qemu_list(x, &v, &n) < 0)
        return;
    /* and the incoming ones (6), found by their directories' names */
    DIR *dir = opendir(x->run_dir);
    struct dirent *e;
    while (dir && (e = readdir(dir))) {
        char **w;
        if (strlen(e->d_name) != 39 || strcmp(e->d_name + 36, ".in") ||
            !(w = realloc(v, (n + 1) * sizeof(*v))))
            continue;
        v = w;
        if ((v[n] = strndup(e->d_name, 36)))
            n++;
    }
    if (dir)
        closedir(dir);
    for (size_t i = 0; i < n * 2; i++) {
        _cleanup_(qdom_unrefp) struct qdom *d =
            i < n ? qdom_get(x, v[i]) : qdom_get_incoming(x, v[i - n]);
        if (!d)
            continue;
        pthread_mutex_lock(&d->lock);
        d->stop = true;
        pthread_cond_broadcast(&d->cond);
        pthread_mutex_unlock(&d->lock);
        uint64_t one = 1;
        (void)!write(d->wake_fd, &one, sizeof(one));
    }
    xenops_strv_free(v, n);
}

static void
qemu_fini(struct xenops *x)
{
    struct qbackend *b = x->priv;
    pthread_mutex_lock(&b->lock);
    b->stopping = true; /* no new supervisors (a restart in flight fails) */
    pthread_mutex_unlock(&b->lock);
    for (;;) {
        qemu_stop_supervisors(x);
        pthread_mutex_lock(&b->lock);
        int left = b->n_threads;
        if (left > 0) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 100 * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&b->cond, &b->lock, &ts);
        }
        pthread_mutex_unlock(&b->lock);
        if (left == 0)
            break;
    }
    hashmap_release_with(&b->doms, unref_value);
    hashmap_release_with(&b->incoming, unref_value);
    pthread_mutex_destroy(&b->lock);
    pthread_cond_destroy(&b->cond);
    free(b);
}

const struct xenops_ops xenops_qemu_ops = {
    .name = "qemu",
    .init = qemu_init,
    .fini = qemu_fini,
    .recover = qemu_recover,
    .start = qemu_start,
    .pause = qemu_pause,
    .unpause = qemu_unpause,
    .shutdown = qemu_shutdown,
    .destroy = qemu_destroy,
    .kill = qemu_kill,
    .cancel_waits = qemu_cancel_waits,
    .reboot = qemu_reboot,
    .suspend = qemu_suspend,
    .stats = qemu_stats,
    .list = qemu_list,
    .console_read = qemu_console_read,
    .console_subscribe = qemu_console_subscribe,
    .console_unsubscribe = qemu_console_unsubscribe,
    .console_write = qemu_console_write,
    .vnc_path = qemu_vnc_path,
    .nic_plug = qemu_nic_plug,
    .nic_unplug = qemu_nic_unplug,
    .nic_present = qemu_nic_present,
    .disk_plug = qemu_disk_plug,
    .disk_unplug = qemu_disk_unplug,
    .agent_info = qemu_agent_info,
    .set_memory_target = qemu_set_memory_target,
    .set_vcpus = qemu_set_vcpus,
    .start_incoming = qemu_start_incoming,
    .incoming_wait = qemu_incoming_wait,
    .incoming_commit = qemu_incoming_commit,
    .incoming_abort = qemu_incoming_abort,
    .migrate_send = qemu_migrate_send,
    .migrate_finish = qemu_migrate_finish,
    .migrate_rollback = qemu_migrate_rollback,
    .disk_geometry = qemu_disk_geometry,
};
