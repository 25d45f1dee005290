/* api/guest_metrics.c - VM_guest_metrics from the guests' agents
 * (api/guest_metrics.h says what the record means).
 *
 * One thread asks each running VM's agent in turn (domains_agent_info: a
 * few commands, each bounded), every period, every half second while a guest's
 * agent answers but its NICs have no IPv4 address yet (DHCP at boot: clients
 * wait for the address), and all of them after a kick. What the agent
 * says is written in xapi's shapes, as XenServer's Linux guest tools report
 * them and clients read them (xapi's ocaml/xapi/xapi_guest_agent.ml):
 *  - os_version: name (the pretty name), distro, major, minor, uname;
 *  - networks: "<VIF device>/ip", "<device>/ipv4/<n>", "<device>/ipv6/<n>",
 *    the guest's NICs matched to the VM's VIFs by MAC address;
 *  - PV_drivers_version: major, minor, micro, build of the agent (qemu-ga
 *    7.2.19 -> 7, 2, 19, 0): a version there is what xapi calls "has PV
 *    drivers", which gives a guest every feature (xapi_vm_lifecycle.ml);
 *  - disks (a deprecated map xapi leaves empty): "<n>/mount_point",
 *    "<n>/type", "<n>/total", "<n>/used" per file system the agent lists;
 *  - other: the feature-* flags the guest has through its agent.
 * The VM's internal guest_agent flag follows, in the same batch: the
 * allowed operations read it (api/vm_ops.c).
 */
#include "api/guest_metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api/domains.h"
#include "common/hashmap.h"
#include "common/log.h"
#include "db/db.h"
#include "rpc/ctx.h"
#include "api/vm_ops.h"
#include "xapi_errors.h"
#include "xenops/xenops.h"

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    bool running, kicked, stop;
    unsigned period_s;
    struct server *srv;
} gm = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

/* ---- building the maps ---- */

static bool
map_clear(void *rec, const char *field)
{
    const struct xfield *f = xclass_field(&xapi_class_vm_guest_metrics, field);
    xtype_value_clear(f->type, (char *)rec + f->offset);
    return true;
}

static bool
put(struct xapi_string_string_map *m, const char *k, const char *v)
{
    return !v || xmap_put_str((struct xmap *)m, k, v) == 0;
}

static bool
putf(struct xapi_string_string_map *m, const char *k, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool
putf(struct xapi_string_string_map *m, const char *k, const char *fmt, ...)
{
    char v[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v, sizeof(v), fmt, ap);
    va_end(ap);
    return put(m, k, v);
}

/* A VIF of the VM: its device number and MAC, to name the guest's NICs. */
struct vif_mac {
    char device[16];
    char mac[18];
};

struct report {
    const struct xenops_guest_info *info; /* NULL: the agent is gone */
    const struct vif_mac *vifs;
    size_t n_vifs;
    bool hotplug;      /* the machine has ACPI PCI and CPU hotplug (not microvm) */
    bool disk_hotplug; /* and takes hotplugged disks (pc: api/vbd.c) */
};

static const char *
vif_device(const struct report *r, const char *mac)
{
    for (size_t i = 0; mac && i < r->n_vifs; i++)
        if (!strcasecmp(r->vifs[i].mac, mac))
            return r->vifs[i].device;
    return NULL;
}

static bool
fill_os(struct xapi_vm_guest_metrics_record *g, const struct xenops_guest_info *in)
{
    char major[32] = "", minor[32] = "";
    if (in->os_version_id)
        sscanf(in->os_version_id, "%31[0-9].%31[0-9]", major, minor);
    return put(&g->os_version, "name", in->os_pretty_name ? in->os_pretty_name : in->os_name) &&
           put(&g->os_version, "distro", in->os_id) &&
           (!major[0] || put(&g->os_version, "major", major)) &&
           (!minor[0] || put(&g->os_version, "minor", minor)) &&
           put(&g->os_version, "uname", in->kernel_release);
}

static bool
fill_networks(struct xapi_vm_guest_metrics_record *g, const struct report *r)
{
    for (size_t i = 0; i < r->info->n_nics; i++) {
        const struct xenops_guest_nic *n = &r->info->nics[i];
        const char *dev = vif_device(r, n->mac);
        if (!dev)
            continue; /* loopback, or a NIC that is none of the VM's VIFs */
        char k[64];
        snprintf(k, sizeof(k), "%s/ip", dev);
        if (n->n_ipv4 && !put(&g->networks, k, n->ipv4[0]))
            return false;
        for (size_t a = 0; a < n->n_ipv4; a++) {
            snprintf(k, sizeof(k), "%s/ipv4/%zu", dev, a);
            if (!put(&g->networks, k, n->ipv4[a]))
                return false;
        }
        for (size_t a = 0; a < n->n_ipv6; a++) {
            snprintf(k, sizeof(k), "%s/ipv6/%zu", dev, a);
            if (!put(&g->networks, k, n->ipv6[a]))
                return false;
        }
    }
    return true;
}

static bool
fill_disks(struct xapi_vm_guest_metrics_record *g, const struct xenops_guest_info *in)
{
    for (size_t i = 0; i < in->n_fs; i++) {
        const struct xenops_guest_fs *f = &in->fs[i];
        char k[48];
        snprintf(k, sizeof(k), "%zu/mount_point", i);
        if (!put(&g->disks, k, f->mountpoint))
            return false;
        snprintf(k, sizeof(k), "%zu/type", i);
        if (!put(&g->disks, k, f->type))
            return false;
        if (!f->total_bytes)
            continue;
        snprintf(k, sizeof(k), "%zu/total", i);
        if (!putf(&g->disks, k, "%" PRIu64, f->total_bytes))
            return false;
        snprintf(k, sizeof(k), "%zu/used", i);
        if (!putf(&g->disks, k, "%" PRIu64, f->used_bytes))
            return false;
    }
    return true;
}

static bool
fill_drivers(struct xapi_vm_guest_metrics_record *g, const struct report *r)
{
    unsigned v[3] = {0, 0, 0};
    if (r->info->agent_version)
        sscanf(r->info->agent_version, "%u.%u.%u", &v[0], &v[1], &v[2]);
    static const char *const features[] = {"feature-shutdown", "feature-poweroff",
                                           "feature-reboot", "feature-balloon"};
    for (size_t i = 0; i < sizeof(features) / sizeof(features[0]); i++)
        if (!put(&g->other, features[i], "1"))
            return false;
    return putf(&g->PV_drivers_version, "major", "%u", v[0]) &&
           putf(&g->PV_drivers_version, "minor", "%u", v[1]) &&
           putf(&g->PV_drivers_version, "micro", "%u", v[2]) &&
           put(&g->PV_drivers_version, "build", "0") &&
           (!r->hotplug || put(&g->other, "feature-vcpu-hotplug", "1"));
}

static bool
apply_report(void *opaque, void *rec, struct xerr **errp)
{
    const struct report *r = opaque;
    struct xapi_vm_guest_metrics_record *g = rec;
    g->last_updated = time(NULL);
    map_clear(g, "PV_drivers_version");
    map_clear(g, "other");
    if (!r->info) { /* keep what it said last (addresses, OS): clients show them */
        g->live = g->PV_drivers_detected = false;
        g->can_use_hotplug_vbd = g->can_use_hotplug_vif = XAPI_TRISTATE_TYPE_UNSPECIFIED;
        return true;
    }
    map_clear(g, "os_version");
    map_clear(g, "networks");
    map_clear(g, "disks");
    g->live = g->PV_drivers_detected = g->PV_drivers_up_to_date = true;
    g->can_use_hotplug_vbd = r->disk_hotplug ? XAPI_TRISTATE_TYPE_YES : XAPI_TRISTATE_TYPE_NO;
    g->can_use_hotplug_vif = r->hotplug ? XAPI_TRISTATE_TYPE_YES : XAPI_TRISTATE_TYPE_NO;
    return (fill_os(g, r->info) && fill_networks(g, r) && fill_disks(g, r->info) &&
            fill_drivers(g, r)) ||
           xerr_nomem(errp);
}

/* ---- the VM side ---- */

struct vm_link {
    const char *gm_ref;
    bool agent;
};

static bool
apply_vm_link(void *opaque, void *rec, struct xerr **errp)
{
    const struct vm_link *l = opaque;
    struct xapi_vm_record *vm = rec;
    /* a VM that stopped meanwhile has had its record dropped: none again */
    if (vm->power_state != XAPI_VM_POWER_STATE_RUNNING &&
        vm->power_state != XAPI_VM_POWER_STATE_PAUSED)
        return xerr_vm_bad_power_state(errp, "", "running", "halted");
    vm->guest_agent = l->agent;
    if (l->gm_ref && !xstr_set(&vm->guest_metrics, l->gm_ref))
        return xerr_nomem(errp);
    return vm_ops_refresh(vm) || xerr_nomem(errp);
}

/* The VIFs of @vm (device, MAC): *out malloc'd. */
static size_t
vm_vifs(struct db *db, const struct xapi_vm_record *vm, struct vif_mac **out)
{
    *out = calloc(vm->VIFs.n + 1, sizeof(**out));
    size_t n = 0;
    for (size_t i = 0; *out && i < vm->VIFs.n; i++) {
        struct xapi_vif_record *vif = NULL;
        if (!db_get(db, &xapi_class_vif, vm->VIFs.items[i], (void **)&vif, NULL))
            continue;
        snprintf((*out)[n].device, sizeof((*out)[n].device), "%s", vif->device);
        snprintf((*out)[n].mac, sizeof((*out)[n].mac), "%s", vif->MAC);
        n++;
        xapi_vif_record_free(vif);
    }
    return n;
}

/* What a refresh found: no agent (the next kick says when one comes), an
 * agent whose guest has an IPv4 address on a VIF (settled: the period), or
 * one without yet (its network is coming up: ask again soon). */
enum refresh { REFRESH_NO_AGENT, REFRESH_SETTLED, REFRESH_UNSETTLED };

static bool
has_vif_ipv4(const struct report *r)
{
    if (!r->n_vifs)
        return true; /* no NIC to wait for */
    for (size_t i = 0; r->info && i < r->info->n_nics; i++)
        if (r->info->nics[i].n_ipv4 && vif_device(r, r->info->nics[i].mac))
            return true;
    return false;
}

/* One VM: ask its agent, write what it said (or that it is gone). */
static enum refresh
refresh_one(struct server *srv, const char *uuid)
{
    struct xenops_guest_info *info = NULL;
    int rc = domains_agent_info(srv, uuid, &info);
    if (rc == -ENOTSUP || rc == -ENOENT)
        return REFRESH_NO_AGENT; /* a simulated guest (every feature implicitly), or gone */
    char *vm_ref = NULL;
    struct xapi_vm_record *vm = NULL;
    if (!db_ref_by_uuid(srv->db, &xapi_class_vm, uuid, &vm_ref, NULL) ||
        !db_get(srv->db, &xapi_class_vm, vm_ref, (void **)&vm, NULL)) {
        free(vm_ref);
        xenops_guest_info_free(info);
        return REFRESH_NO_AGENT;
    }
    bool have = db_exists(srv->db, &xapi_class_vm_guest_metrics, vm->guest_metrics);
    if (rc < 0 && (!have || !vm->guest_agent)) {
        /* no agent, and nothing said otherwise: nothing to write */
        xapi_vm_record_free(vm);
        free(vm_ref);
        return REFRESH_NO_AGENT;
    }
    struct vif_mac *vifs = NULL;
    enum xenops_machine m;
    if (!domains_machine(vm, &m))
        m = XENOPS_MACHINE_PC; /* not reached: VM.start refuses such a name */
    struct report r = {.info = rc == 0 ? info : NULL,
                       .n_vifs = vm_vifs(srv->db, vm, &vifs),
                       .hotplug = m != XENOPS_MACHINE_MICROVM,
                       .disk_hotplug = m == XENOPS_MACHINE_PC};
    r.vifs = vifs;
    struct xerr *err = NULL;
    char *gm_ref = NULL;
    db_batch_begin(srv->db);
    bool ok = true;
    if (!have) {
        struct xapi_vm_guest_metrics_record *g = xapi_vm_guest_metrics_record_new();
        ok = g && db_create(srv->db, &xapi_class_vm_guest_metrics, NULL, g, &gm_ref, &err);
    }
    ok = ok && db_update(srv->db, &xapi_class_vm_guest_metrics, have ? vm->guest_metrics : gm_ref,
                         apply_report, &r, &err);
    struct vm_link link = {gm_ref, rc == 0};
    ok = ok && db_update(srv->db, &xapi_class_vm, vm_ref, apply_vm_link, &link, &err);
    db_batch_end(srv->db, ok, NULL);
    if (!ok && err && strcmp(err->code, "VM_BAD_POWER_STATE"))
        log_warn("guest_metrics.write", "vm=%s error=%s", uuid, err->code);
    else if (ok && (!have || !vm->guest_agent) && rc == 0)
        log_info("guest_metrics.agent", "vm=%s agent=%s os=\"%s\"", uuid,
                 info->agent_version ? info->agent_version : "?",
                 info->os_pretty_name ? info->os_pretty_name : "?");
    else if (ok && rc < 0)
        log_info("guest_metrics.agent_gone", "vm=%s rc=%d", uuid, rc);
    enum refresh result = rc < 0          ? REFRESH_NO_AGENT
                          : has_vif_ipv4(&r) ? REFRESH_SETTLED
                                             : REFRESH_UNSETTLED;
    xerr_free(err);
    free(gm_ref);
    free(vifs);
    xapi_vm_record_free(vm);
    free(vm_ref);
    xenops_guest_info_free(info);
    return result;
}

/* When each domain is next asked: for FAST_FOR_MS after its agent first
 * answers, a guest still without an address every UNSETTLED_MS (DHCP takes
 * seconds; clients wait for the address), others every period. Keyed by the
 * entry's own uuid. */
#define UNSETTLED_MS 500u
#define FAST_FOR_MS 120000u
struct due {
    char uuid[37];
    uint64_t next_ms;
    uint64_t fast_until; /* 0: its agent has not answered since it was seen without */
};

static uint64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* One pass over the running domains: refreshes those due (all of them after
 * a kick); *dues is replaced by the entries of the domains that still run.
 * Returns the soonest next time. */
static uint64_t
refresh_due(struct server *srv, struct hashmap *dues, bool all, unsigned period_s)
{
    struct hashmap next;
    hashmap_init(&next);
    uint64_t soonest = now_ms() + period_s * 1000ull;
    char **uuids = NULL;
    size_t n = 0;
    struct xenops *x = domains_xenops(srv);
    if (x && xenops_domain_list(x, &uuids, &n) < 0)
        n = 0;
    for (size_t i = 0; i < n && !gm.stop; i++) {
        struct due *e = hashmap_remove(dues, uuids[i]);
        if (!e && (e = calloc(1, sizeof(*e))))
            snprintf(e->uuid, sizeof(e->uuid), "%s", uuids[i]);
        if (!e)
            continue;
        uint64_t now = now_ms();
        if (all || now >= e->next_ms) {
            enum refresh r = refresh_one(srv, e->uuid);
            if (r == REFRESH_NO_AGENT)
                e->fast_until = 0;
            else if (!e->fast_until)
                e->fast_until = now + FAST_FOR_MS;
            bool fast = r == REFRESH_UNSETTLED && now < e->fast_until;
            e->next_ms = now_ms() + (fast ? UNSETTLED_MS : period_s * 1000ull);
        }
        if (e->next_ms < soonest)
            soonest = e->next_ms;
        if (hashmap_put(&next, e->uuid, e) < 0)
            free(e);
    }
    xenops_strv_free(uuids, n);
    hashmap_release_with(dues, free);
    *dues = next;
    return soonest;
}

static void *
gm_thread(void *arg)
{
    (void)arg;
    struct hashmap dues;
    hashmap_init(&dues);
    pthread_mutex_lock(&gm.lock);
    while (!gm.stop) {
        bool all = gm.kicked;
        gm.kicked = false;
        struct server *srv = gm.srv;
        unsigned period_s = gm.period_s;
        pthread_mutex_unlock(&gm.lock);
        uint64_t soonest = refresh_due(srv, &dues, all, period_s);
        pthread_mutex_lock(&gm.lock);
        uint64_t now = now_ms();
        if (gm.kicked || gm.stop || soonest <= now)
            continue;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + (soonest - now) * 1000000ull;
        ts.tv_sec += (time_t)(ns / 1000000000ull);
        ts.tv_nsec = (long)(ns % 1000000000ull);
        while (!gm.kicked && !gm.stop &&
               pthread_cond_timedwait(&gm.wake, &gm.lock, &ts) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&gm.lock);
    hashmap_release_with(&dues, free);
    return NULL;
}

int
guest_metrics_start(struct server *srv, unsigned period_s)
{
    pthread_mutex_lock(&gm.lock);
    gm.srv = srv;
    gm.period_s = period_s ? period_s : 10;
    gm.stop = false;
    int rc = gm.running ? 0 : -pthread_create(&gm.thread, NULL, gm_thread, NULL);
    if (rc == 0)
        gm.running = true;
    pthread_mutex_unlock(&gm.lock);
    return rc;
}

void
guest_metrics_kick(struct server *srv)
{
    (void)srv;
    pthread_mutex_lock(&gm.lock);
    gm.kicked = true;
    pthread_cond_signal(&gm.wake);
    pthread_mutex_unlock(&gm.lock);
}

void
guest_metrics_stop(struct server *srv)
{
    (void)srv;
    pthread_mutex_lock(&gm.lock);
    bool running = gm.running;
    gm.stop = true;
    gm.running = false;
    pthread_cond_signal(&gm.wake);
    pthread_mutex_unlock(&gm.lock);
    if (running)
        pthread_join(gm.thread, NULL);
}

bool
guest_metrics_forget(struct server *srv, const struct xapi_vm_record *vm, struct xerr **errp)
{
    if (!db_exists(srv->db, &xapi_class_vm_guest_metrics, vm->guest_metrics))
        return true;
    return db_destroy(srv->db, &xapi_class_vm_guest_metrics, vm->guest_metrics, errp);
}
