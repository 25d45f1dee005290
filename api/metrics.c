/* api/metrics.c - the numbers that move: VM_metrics, host_metrics, VIF_metrics.
 *
 * Called from vesseld's housekeeping every METRICS_PERIOD_S seconds. For each
 * running VM the domain manager's stats give memory_actual (the device
 * model's resident memory) and per-vCPU CPU time, from which
 * VCPUs_utilisation is the fraction of one CPU used since the last sample;
 * host_metrics.memory_free is MemAvailable; each attached VIF's counters are
 * read from its tap (api/vif.c). xapi samples these through its RRD daemon
 * and writes them to the database periodically; a write here is a mod event,
 * which is why the period is seconds, not milliseconds.
 */
#include "api/metrics.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/domains.h"
#include "api/host_owns.h"
#include "api/net_api.h"
#include "db/db.h"
#include "xapi_model.h"
#include "xenops/xenops.h"

struct running {
    char *ref, *uuid, *metrics;
    struct xapi_ref_set vifs;
    int64_t domid;
};

/* The previous sample of a VM's vCPU times, to turn totals into rates. */
struct sample {
    char uuid[40];
    uint64_t when_ns;
    uint64_t vcpu_ns[64];
    unsigned vcpus;
};

#define MAX_SAMPLES 1024
static struct sample samples[MAX_SAMPLES]; /* housekeeping runs on one thread */

static struct sample *
sample_of(const char *uuid)
{
    struct sample *free_slot = NULL;
    for (size_t i = 0; i < MAX_SAMPLES; i++) {
        if (strcmp(samples[i].uuid, uuid) == 0)
            return &samples[i];
        if (!free_slot && !samples[i].uuid[0])
            free_slot = &samples[i];
    }
    if (free_slot) {
        memset(free_slot, 0, sizeof(*free_slot));
        snprintf(free_slot->uuid, sizeof(free_slot->uuid), "%s", uuid);
    }
    return free_slot;
}

static uint64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct collect_ctx {
    const char *host;
    struct running *list;
};

static bool
collect(void *opaque, const char *ref, const void *rec)
{
    const struct xapi_vm_record *vm = rec;
    struct collect_ctx *c = opaque;
    struct running **list = &c->list;
    if (vm->is_control_domain || !host_owns_vm(c->host, vm) ||
        (vm->power_state != XAPI_VM_POWER_STATE_RUNNING &&
                                  vm->power_state != XAPI_VM_POWER_STATE_PAUSED))
        return true;
    size_t n = 0;
    while (*list && (*list)[n].ref)
        n++;
    struct running *grown = realloc(*list, (n + 2) * sizeof(**list));
    if (!grown)
        return false;
    *list = grown;
    memset(&grown[n], 0, 2 * sizeof(*grown));
    grown[n].ref = strdup(ref);
    grown[n].uuid = strdup(vm->uuid);
    grown[n].metrics = strdup(vm->metrics);
    grown[n].domid = vm->domid;
    if (xtype_value_copy(&xapi_type_ref_VIF_set, &grown[n].vifs, &vm->VIFs) < 0)
        memset(&grown[n].vifs, 0, sizeof(grown[n].vifs));
    return true;
}

struct vm_numbers {
    int64_t memory;
    unsigned vcpus;
    double util[64];
};

static bool
apply_vm_metrics(void *opaque, void *rec, struct xerr **errp)
{
    const struct vm_numbers *v = opaque;
    struct xapi_vm_metrics_record *m = rec;
    m->memory_actual = v->memory;
    m->last_updated = time(NULL);
    struct xapi_int_float_map u = {0};
    if (v->vcpus) {
        u.keys = calloc(v->vcpus, sizeof(*u.keys));
        u.values = calloc(v->vcpus, sizeof(*u.values));
        if (!u.keys || !u.values) {
            free(u.keys);
            free(u.values);
            return xerr_nomem(errp);
        }
        for (unsigned i = 0; i < v->vcpus; i++) {
            u.keys[i] = i;
            u.values[i] = v->util[i];
        }
        u.n = v->vcpus;
    }
    xtype_value_clear(&xapi_type_int_float_map, &m->VCPUs_utilisation);
    m->VCPUs_utilisation = u;
    return true;
}

struct still_running {
    int64_t domid;
    bool yes;
};

static void
peek_still_running(void *opaque, const void *rec)
{
    const struct xapi_vm_record *vm = rec;
    struct still_running *sr = opaque;
    sr->yes = (vm->power_state == XAPI_VM_POWER_STATE_RUNNING ||
               vm->power_state == XAPI_VM_POWER_STATE_PAUSED) && vm->domid == sr->domid;
}

static void
update_vm(struct server *srv, struct xenops *x, const struct running *r)
{
    struct xenops_stats st;
    if (!x || xenops_domain_stats(x, r->uuid, &st) < 0)
        return;
    struct vm_numbers v = {.memory = (int64_t)st.memory_actual_bytes};
    v.vcpus = st.vcpus < 64 ? st.vcpus : 64;
    struct sample *s = sample_of(r->uuid);
    uint64_t t = now_ns();
    if (s && s->when_ns && t > s->when_ns) {
        for (unsigned i = 0; i < v.vcpus && i < s->vcpus; i++) {
            double used = (double)(st.vcpu_time_ns[i] - s->vcpu_ns[i]) / (double)(t - s->when_ns);
            v.util[i] = used < 0 ? 0 : used > 1 ? 1 : used;
        }
    }
    if (s) {
        s->when_ns = t;
        s->vcpus = v.vcpus;
        memcpy(s->vcpu_ns, st.vcpu_time_ns, sizeof(s->vcpu_ns));
    }
    /* the sample is written only if the VM still runs in the domain
     * sampled, checked in the batch that writes: a shutdown that landed
     * since keeps its memory_actual of 0 */
    db_batch_begin(srv->db);
    struct still_running sr = {r->domid, false};
    db_with(srv->db, &xapi_class_vm, r->ref, peek_still_running, &sr, NULL);
    bool ok = sr.yes && db_exists(srv->db, &xapi_class_vm_metrics, r->metrics) &&
              db_update(srv->db, &xapi_class_vm_metrics, r->metrics, apply_vm_metrics, &v, NULL);
    db_batch_end(srv->db, ok, NULL);
    for (size_t i = 0; i < r->vifs.n; i++) {
        char tap[32], *device = NULL;
        if (db_get_field(srv->db, &xapi_class_vif, r->vifs.items[i],
                         xclass_field(&xapi_class_vif, "device"), &device, NULL) &&
            net_vif_tap_name(r->domid, device, tap, sizeof(tap)))
            net_vif_metrics_update(srv, r->vifs.items[i], tap, NULL);
        free(device);
    }
}

static long long
mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return -1;
    char line[256];
    long long kb = -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "MemAvailable:", 13) == 0) {
            kb = atoll(line + 13);
            break;
        }
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

static bool
apply_host_metrics(void *opaque, void *rec, struct xerr **errp)
{
    struct xapi_host_metrics_record *m = rec;
    (void)errp;
    m->memory_free = *(const long long *)opaque;
    m->last_updated = time(NULL);
    m->live = true;
    return true;
}

void
metrics_update(struct server *srv)
{
    struct collect_ctx c = {srv->host_ref, NULL};
    db_foreach(srv->db, &xapi_class_vm, collect, &c); /* this host's VMs only */
    struct running *list = c.list;
    struct xenops *x = domains_xenops(srv);
    for (size_t i = 0; list && list[i].ref; i++) {
        update_vm(srv, x, &list[i]);
        free(list[i].ref);
        free(list[i].uuid);
        free(list[i].metrics);
        xtype_value_clear(&xapi_type_ref_VIF_set, &list[i].vifs);
    }
    free(list);
    long long avail = mem_available();
    struct xapi_host_record *host = NULL;
    if (avail >= 0 && db_get(srv->db, &xapi_class_host, srv->host_ref, (void **)&host, NULL))
        db_update(srv->db, &xapi_class_host_metrics, host->metrics, apply_host_metrics, &avail,
                  NULL);
    xapi_host_record_free(host);
}
