/* api/rrd_store.c - the host's and the VMs' round-robin databases.
 *
 * One thread samples every RRD_STEP_S seconds, at multiples of the step in
 * unix time so that every rrd's rows line up (xapi's rrdd does the same):
 *  - host (xapi's data source names): cpu<N> and cpu_avg (fraction busy,
 *    from /proc/stat deltas), loadavg, memory_total_kib and memory_free_kib
 *    (/proc/meminfo MemTotal, MemAvailable), xapi_memory_usage_kib (this
 *    daemon's VmRSS), pif_<device>_rx/_tx in bytes per second (/proc/net/dev
 *    for this host's PIFs);
 *    and, not recorded until host.record_data_source asks (xapi's rrdp-netdev
 *    makes them non-default), pif_<device>_rx_errors/_tx_errors;
 *  - each running VM: cpu<N> (fraction of one CPU per vCPU, from the
 *    backend's vCPU times), memory (bytes resident) and memory_target
 *    (bytes configured), from xenops_domain_stats; vif_<device>_rx/_tx in
 *    bytes per second from its attached VIFs' VIF_metrics; for each attached
 *    VBD served by a disk server, xapi's rrdp-iostat names
 *    vbd_<device>_{read,write} (B/s), _{read,write}_latency (us per request),
 *    _iops_{read,write,total}, _io_throughput_{read,write,total} (MiB/s),
 *    _iowait (s/s) and _inflight, from the server's "stats" counters.
 * The lock covers the rrds only; /proc, the backend and the disk servers
 * are read outside it.
 *
 * Data sources, as xcp-rrdd keeps them (rrdd_server.ml): each rrd has the
 * sources its last sample produced (the "live" ones, with units, range and
 * whether they are standard) and the ones it records. A standard source is
 * recorded as soon as it appears; another only after record_data_source.
 * forget_data_source_archives drops a recorded source and its history (a
 * standard one starts again at the next sample). get_data_sources lists
 * the union; query_data_source reads the newest 5 s average of a recorded one.
 *
 * Persistence: DATA/rrd/host.rrd and DATA/rrd/<vm uuid>.rrd (common/rrd.c's
 * format), written atomically every minute and at stop, read at start, so
 * graphs survive a restart (the missed steps read NaN).
 *
 * HTTP: /rrd_updates is xapi's (any role may read it, as xapi's
 * http/get_rrd_updates allows read-only), the same document Xen Orchestra
 * reads for its stats; /host_rrd and /vm_rrd?uuid= dump one rrd whole. /metrics is the newest 5 s AVERAGE of every data
 * source in Prometheus' text format, behind a session too.
 */
#include "api/rrd_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api/disk_servers.h"
#include "api/host_owns.h"
#include "api/domains.h"
#include "common/log.h"
#include "common/rrd.h"
#include "common/strbuf.h"
#include "db/db.h"
#include "rpc/session.h"
#include "xapi_model.h"
#include "xenops/xenops.h"

#define MAX_CPUS 256
#define MAX_VMS 4096
#define SAVE_EVERY_STEPS 12 /* one minute */

/* What a data source is, as xapi's Ds.ds_make describes it. */
struct ds_def {
    const char *description, *units;
    double min, max;
    bool standard; /* xapi's ds_default: recorded without being asked */
};

/* A data source of the last sample: name, kind, value. */
struct live_ds {
    char name[48];
    const struct ds_def *def;
    double value;
};

struct live_set {
    struct live_ds *ds;
    unsigned n;
};

/* A VBD's previous disk server counters, for rates. */
struct vbd_prev {
    char device[16];
    struct disk_io_stats st;
    uint64_t when_ns;
};

#define MAX_VBDS 16

struct vm_rrd {
    char uuid[40];
    struct rrd *rrd;
    struct live_set live;
    uint64_t vcpu_ns[64]; /* previous sample, for rates */
    uint64_t when_ns;
    unsigned vcpus;
    struct vbd_prev vbds[MAX_VBDS];
    unsigned n_vbds;
};

struct rrd_store {
    struct server *srv;
    char *dir;
    char host_uuid[40];
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool stop;
    pthread_t thread;
    struct rrd *host;
    struct live_set host_live;
    struct vm_rrd *vms;
    size_t n_vms;
    /* previous host counters (sampler thread only) */
    unsigned long long cpu_busy[MAX_CPUS + 1], cpu_total[MAX_CPUS + 1];
    bool have_cpu;
    struct pif_counter {
        char dev[32];
        unsigned long long rx, tx, rx_err, tx_err;
    } pifs[32];
    size_t n_pifs;
    uint64_t pif_when_ns;
};

static uint64_t
mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------ samples */

/* Units and ranges as xapi's plugins declare them (rrdp-cpu, rrdp-netdev,
 * rrdp-iostat, xcp-rrdd's own host and VM memory); the descriptions are ours. */
static const struct ds_def
    DS_CPU = {"Physical CPU busy, fraction of time", "(fraction)", 0, 1, true},
    DS_CPU_AVG = {"Average busy fraction of all physical CPUs", "(fraction)", 0, 1, true},
    DS_LOADAVG = {"Domain 0 load average", "(fraction)", 0, INFINITY, true},
    DS_MEM_TOTAL = {"Total memory of the host", "KiB", 0, INFINITY, true},
    DS_MEM_FREE = {"Memory available on the host", "KiB", 0, INFINITY, true},
    DS_XAPI_MEM = {"Memory used by the toolstack (resident)", "KiB", 0, INFINITY, true},
    DS_PIF_RX = {"Bytes per second received on the physical interface", "B/s", 0, INFINITY, true},
    DS_PIF_TX = {"Bytes per second sent on the physical interface", "B/s", 0, INFINITY, true},
    DS_PIF_RX_ERR = {"Receive errors per second on the physical interface", "err/s", 0,
                     INFINITY, false},
    DS_PIF_TX_ERR = {"Transmit errors per second on the physical interface", "err/s", 0,
                     INFINITY, false},
    DS_VCPU = {"Virtual CPU busy, fraction of one physical CPU", "(fraction)", 0, 1, true},
    DS_VM_MEM = {"Memory the VM's domain uses", "B", 0, INFINITY, true},
    DS_VM_TARGET = {"Memory the VM's domain is given", "B", 0, INFINITY, true},
    DS_VIF_RX = {"Bytes per second the virtual interface received", "B/s", 0, INFINITY, true},
    DS_VIF_TX = {"Bytes per second the virtual interface sent", "B/s", 0, INFINITY, true},
    DS_VBD_READ = {"Bytes per second read from the virtual disk", "B/s", 0, INFINITY, true},
    DS_VBD_WRITE = {"Bytes per second written to the virtual disk", "B/s", 0, INFINITY, true},
    DS_VBD_RLAT = {"Average time to serve a read, in microseconds", "\u03bcs", 0, INFINITY, true},
    DS_VBD_WLAT = {"Average time to serve a write, in microseconds", "\u03bcs", 0, INFINITY,
                   true},
    DS_VBD_TPUT = {"Virtual disk throughput, in MiB per second", "MiB/s", 0, INFINITY, true},
    DS_VBD_IOPS = {"Virtual disk requests per second", "requests/s", 0, INFINITY, true},
    DS_VBD_IOWAIT = {"Time spent serving the virtual disk's requests, per second", "s/s", 0,
                     INFINITY, true},
    DS_VBD_INFLIGHT = {"Virtual disk requests being served", "requests", 0, INFINITY, true};

#define DS_CAP (MAX_CPUS + 80 + MAX_VBDS * 12)

struct ds_values {
    struct live_ds ds[DS_CAP];
    unsigned n;
};

static void
ds_put(struct ds_values *dv, const char *name, double v, const struct ds_def *def)
{
    if (dv->n >= DS_CAP)
        return;
    struct live_ds *d = &dv->ds[dv->n++];
    snprintf(d->name, sizeof(d->name), "%s", name);
    d->def = def;
    d->value = v;
}

static void
live_release(struct live_set *l)
{
    free(l->ds);
    l->ds = NULL;
    l->n = 0;
}

static const struct live_ds *
live_find(const struct live_set *l, const char *name)
{
    for (unsigned i = 0; i < l->n; i++)
        if (strcmp(l->ds[i].name, name) == 0)
            return &l->ds[i];
    return NULL;
}

/* Into @r under the lock: the sample becomes the live set; recorded sources
 * and new standard ones get their value, in one update at @t. */
static void
ds_record(struct rrd *r, struct live_set *live, const struct ds_values *dv, int64_t t)
{
    struct live_ds *copy = malloc(sizeof(*copy) * (dv->n ? dv->n : 1));
    if (copy) {
        memcpy(copy, dv->ds, sizeof(*copy) * dv->n);
        live_release(live);
        live->ds = copy;
        live->n = dv->n;
    }
    double row[RRD_MAX_DS];
    unsigned n = 0;
    for (unsigned i = 0; i < RRD_MAX_DS; i++)
        row[i] = NAN;
    for (unsigned i = 0; i < dv->n; i++) {
        int idx = rrd_ds_find(r, dv->ds[i].name);
        if (idx < 0 && dv->ds[i].def->standard)
            idx = rrd_ds_index(r, dv->ds[i].name);
        if (idx < 0)
            continue;
        row[idx] = dv->ds[i].value;
        if ((unsigned)idx + 1 > n)
            n = (unsigned)idx + 1;
    }
    (void)rrd_update(r, t, row, n);
}

static void
sample_cpus(struct rrd_store *rs, struct ds_values *dv)
{
    FILE *f = fopen("/proc/stat", "re");
    if (!f)
        return;
    char line[512];
    unsigned long long busy[MAX_CPUS + 1] = {0}, total[MAX_CPUS + 1] = {0};
    int max_cpu = -1;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "cpu", 3) != 0)
            break;
        int idx = MAX_CPUS; /* "cpu " is the total */
        char *p = line + 3;
        if (*p != ' ') {
            idx = (int)strtol(p, &p, 10);
            if (idx < 0 || idx >= MAX_CPUS)
                continue;
            if (idx > max_cpu)
                max_cpu = idx;
        }
        unsigned long long v[8] = {0};
        sscanf(p, "%llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
               &v[5], &v[6], &v[7]);
        unsigned long long t = 0;
        for (int i = 0; i < 8; i++)
            t += v[i];
        total[idx] = t;
        busy[idx] = t - v[3] - v[4]; /* idle and iowait are not busy */
    }
    fclose(f);
    if (rs->have_cpu) {
        for (int i = 0; i <= max_cpu; i++) {
            unsigned long long dt = total[i] - rs->cpu_total[i];
            char name[16];
            snprintf(name, sizeof(name), "cpu%d", i);
            ds_put(dv, name, dt ? (double)(busy[i] - rs->cpu_busy[i]) / (double)dt : 0, &DS_CPU);
        }
        unsigned long long dt = total[MAX_CPUS] - rs->cpu_total[MAX_CPUS];
        ds_put(dv, "cpu_avg",
               dt ? (double)(busy[MAX_CPUS] - rs->cpu_busy[MAX_CPUS]) / (double)dt : 0,
               &DS_CPU_AVG);
    }
    memcpy(rs->cpu_busy, busy, sizeof(busy));
    memcpy(rs->cpu_total, total, sizeof(total));
    rs->have_cpu = true;
}

static long long
kib_field(const char *path, const char *key)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    char line[256];
    size_t kl = strlen(key);
    long long v = -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, key, kl) == 0) {
            v = atoll(line + kl);
            break;
        }
    fclose(f);
    return v;
}

static bool
collect_pif(void *opaque, const char *ref, const void *rec)
{
    const struct xapi_pif_record *p = rec;
    struct rrd_store *rs = opaque;
    if (rs->n_pifs < 32 && p->device && *p->device &&
        strcmp(p->host, rs->srv->host_ref ? rs->srv->host_ref : "") == 0) {
        bool seen = false;
        for (size_t i = 0; i < rs->n_pifs; i++)
            seen = seen || strcmp(rs->pifs[i].dev, p->device) == 0;
        if (!seen)
            snprintf(rs->pifs[rs->n_pifs++].dev, sizeof(rs->pifs[0].dev), "%s", p->device);
    }
    return true;
}

static void
sample_pifs(struct rrd_store *rs, struct ds_values *dv)
{
    struct pif_counter prev[32];
    size_t n_prev = rs->n_pifs;
    memcpy(prev, rs->pifs, sizeof(prev));
    rs->n_pifs = 0;
    db_foreach(rs->srv->db, &xapi_class_pif, collect_pif, rs);
    uint64_t now = mono_ns();
    double dt = rs->pif_when_ns ? (double)(now - rs->pif_when_ns) / 1e9 : 0;
    rs->pif_when_ns = now;
    FILE *f = fopen("/proc/net/dev", "re");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof(line), f)) {
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        *colon = '\0';
        char *dev = line;
        while (*dev == ' ')
            dev++;
        /* rx: bytes packets errs drop fifo frame compressed multicast; tx: bytes packets errs */
        unsigned long long rx = 0, tx = 0, rx_err = 0, tx_err = 0, skip;
        if (sscanf(colon + 1, "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &rx, &skip,
                   &rx_err, &skip, &skip, &skip, &skip, &skip, &tx, &skip, &tx_err) != 11)
            continue;
        for (size_t i = 0; i < rs->n_pifs; i++) {
            if (strcmp(rs->pifs[i].dev, dev) != 0)
                continue;
            rs->pifs[i].rx = rx;
            rs->pifs[i].tx = tx;
            rs->pifs[i].rx_err = rx_err;
            rs->pifs[i].tx_err = tx_err;
            for (size_t j = 0; j < n_prev && dt > 0; j++) {
                if (strcmp(prev[j].dev, dev) != 0)
                    continue;
                char name[48];
                snprintf(name, sizeof(name), "pif_%.30s_rx", dev);
                ds_put(dv, name, (double)(rx - prev[j].rx) / dt, &DS_PIF_RX);
                snprintf(name, sizeof(name), "pif_%.30s_tx", dev);
                ds_put(dv, name, (double)(tx - prev[j].tx) / dt, &DS_PIF_TX);
                snprintf(name, sizeof(name), "pif_%.30s_rx_errors", dev);
                ds_put(dv, name, (double)(rx_err - prev[j].rx_err) / dt, &DS_PIF_RX_ERR);
                snprintf(name, sizeof(name), "pif_%.30s_tx_errors", dev);
                ds_put(dv, name, (double)(tx_err - prev[j].tx_err) / dt, &DS_PIF_TX_ERR);
            }
        }
    }
    fclose(f);
}

static void
sample_host(struct rrd_store *rs, int64_t t)
{
    struct ds_values *dv = calloc(1, sizeof(*dv));
    if (!dv)
        return;
    sample_cpus(rs, dv);
    double load = 0;
    FILE *f = fopen("/proc/loadavg", "re");
    if (f) {
        if (fscanf(f, "%lf", &load) == 1)
            ds_put(dv, "loadavg", load, &DS_LOADAVG);
        fclose(f);
    }
    long long total = kib_field("/proc/meminfo", "MemTotal:");
    long long avail = kib_field("/proc/meminfo", "MemAvailable:");
    long long rss = kib_field("/proc/self/status", "VmRSS:");
    if (total >= 0)
        ds_put(dv, "memory_total_kib", (double)total, &DS_MEM_TOTAL);
    if (avail >= 0)
        ds_put(dv, "memory_free_kib", (double)avail, &DS_MEM_FREE);
    if (rss >= 0)
        ds_put(dv, "xapi_memory_usage_kib", (double)rss, &DS_XAPI_MEM);
    sample_pifs(rs, dv);
    pthread_mutex_lock(&rs->mu);
    if (rs->host)
        ds_record(rs->host, &rs->host_live, dv, t);
    pthread_mutex_unlock(&rs->mu);
    free(dv);
}

struct running_vm {
    char uuid[40];
    char ref[48];
};

/* An attached VIF: its VM, device and metrics object. */
struct vif_row {
    char vm[48];
    char device[16];
    char metrics[48];
};

static bool
collect_vif(void *opaque, const char *ref, const void *rec)
{
    const struct xapi_vif_record *v = rec;
    struct strbuf *sb = opaque;
    if (!v->currently_attached)
        return true;
    struct vif_row r;
    memset(&r, 0, sizeof(r));
    snprintf(r.vm, sizeof(r.vm), "%s", v->VM);
    snprintf(r.device, sizeof(r.device), "%s", v->device);
    snprintf(r.metrics, sizeof(r.metrics), "%s", v->metrics);
    strbuf_append(sb, (const char *)&r, sizeof(r));
    return sb->len < MAX_VMS * 8 * sizeof(r);
}

/* vif_<device>_rx/_tx in bytes per second, as xapi names them, from the
 * VIF_metrics that api/vif_tap.c keeps (io_read_kbs: what the guest got). */
static void
vif_values(struct rrd_store *rs, const struct strbuf *vifs, const char *vm_ref,
           struct ds_values *dv)
{
    const struct vif_row *rows = (const struct vif_row *)vifs->buf;
    for (size_t i = 0; i < vifs->len / sizeof(*rows); i++) {
        if (strcmp(rows[i].vm, vm_ref) != 0)
            continue;
        struct xapi_vif_metrics_record *m = NULL;
        if (!db_get(rs->srv->db, &xapi_class_vif_metrics, rows[i].metrics, (void **)&m, NULL))
            continue;
        char name[48];
        snprintf(name, sizeof(name), "vif_%s_rx", rows[i].device);
        ds_put(dv, name, m->io_read_kbs * 1024, &DS_VIF_RX);
        snprintf(name, sizeof(name), "vif_%s_tx", rows[i].device);
        ds_put(dv, name, m->io_write_kbs * 1024, &DS_VIF_TX);
        xapi_vif_metrics_record_free(m);
    }
}

/* An attached VBD with a disk: its VM and the device that names it. */
struct vbd_row {
    char vm[48];
    char ref[48];
    char device[16];
};

static bool
collect_vbd(void *opaque, const char *ref, const void *rec)
{
    const struct xapi_vbd_record *v = rec;
    struct strbuf *sb = opaque;
    if (!v->currently_attached || v->empty)
        return true;
    struct vbd_row r;
    memset(&r, 0, sizeof(r));
    snprintf(r.vm, sizeof(r.vm), "%s", v->VM);
    snprintf(r.ref, sizeof(r.ref), "%s", ref);
    /* xapi's rrdp-iostat names a VBD by its device ("xvda"); before the
     * backend names one, the name xapi gives userdevice N: xvd + letter N */
    char *end = NULL;
    long n = strtol(v->userdevice, &end, 10);
    if (*v->device)
        snprintf(r.device, sizeof(r.device), "%s", v->device);
    else if (end && end != v->userdevice && !*end && n >= 0 && n < 26)
        snprintf(r.device, sizeof(r.device), "xvd%c", (char)('a' + n));
    else
        snprintf(r.device, sizeof(r.device), "%s", v->userdevice);
    strbuf_append(sb, (const char *)&r, sizeof(r));
    return sb->len < MAX_VMS * 8 * sizeof(r);
}

/* A VBD's counters read this sample (outside the lock). */
struct vbd_now {
    char device[16];
    struct disk_io_stats st;
    uint64_t when_ns;
};

static unsigned
vbd_read_all(struct rrd_store *rs, const struct strbuf *vbds, const char *vm_ref,
             const char *vm_uuid, struct vbd_now *out)
{
    const struct vbd_row *rows = (const struct vbd_row *)vbds->buf;
    unsigned n = 0;
    for (size_t i = 0; i < vbds->len / sizeof(*rows) && n < MAX_VBDS; i++) {
        if (strcmp(rows[i].vm, vm_ref) != 0 || !rows[i].device[0])
            continue;
        if (disk_servers_stats(rs->srv, vm_uuid, rows[i].ref, &out[n].st) < 0)
            continue;
        memcpy(out[n].device, rows[i].device, sizeof(out[n].device));
        out[n++].when_ns = mono_ns();
    }
    return n;
}

static void
vbd_put(struct ds_values *dv, const char *device, const char *what, double v,
        const struct ds_def *def)
{
    char name[48];
    snprintf(name, sizeof(name), "vbd_%.15s_%.24s", device, what);
    ds_put(dv, name, v, def);
}

/* Rates since the previous sample of the same device (lock held: @v). */
static void
vbd_values(struct vm_rrd *v, const struct vbd_now *now, unsigned n, struct ds_values *dv)
{
    for (unsigned i = 0; i < n; i++) {
        const struct vbd_prev *p = NULL;
        for (unsigned j = 0; j < v->n_vbds; j++)
            if (strcmp(v->vbds[j].device, now[i].device) == 0)
                p = &v->vbds[j];
        const struct disk_io_stats *a = p ? &p->st : NULL, *b = &now[i].st;
        /* a new server (hotplug, restart) starts from zero: no rate this time */
        if (!a || now[i].when_ns <= p->when_ns || b->rd_reqs < a->rd_reqs ||
            b->wr_reqs < a->wr_reqs)
            continue;
        double dt = (double)(now[i].when_ns - p->when_ns) / 1e9;
        double rd = (double)(b->rd_reqs - a->rd_reqs), wr = (double)(b->wr_reqs - a->wr_reqs);
        double rb = (double)(b->rd_bytes - a->rd_bytes), wb = (double)(b->wr_bytes - a->wr_bytes);
        double ru = (double)(b->rd_usec - a->rd_usec), wu = (double)(b->wr_usec - a->wr_usec);
        const char *d = now[i].device;
        vbd_put(dv, d, "read", rb / dt, &DS_VBD_READ);
        vbd_put(dv, d, "write", wb / dt, &DS_VBD_WRITE);
        vbd_put(dv, d, "read_latency", rd > 0 ? ru / rd : 0, &DS_VBD_RLAT);
        vbd_put(dv, d, "write_latency", wr > 0 ? wu / wr : 0, &DS_VBD_WLAT);
        vbd_put(dv, d, "io_throughput_read", rb / dt / 1048576, &DS_VBD_TPUT);
        vbd_put(dv, d, "io_throughput_write", wb / dt / 1048576, &DS_VBD_TPUT);
        vbd_put(dv, d, "io_throughput_total", (rb + wb) / dt / 1048576, &DS_VBD_TPUT);
        vbd_put(dv, d, "iops_read", rd / dt, &DS_VBD_IOPS);
        vbd_put(dv, d, "iops_write", wr / dt, &DS_VBD_IOPS);
        vbd_put(dv, d, "iops_total", (rd + wr) / dt, &DS_VBD_IOPS);
        vbd_put(dv, d, "iowait", (ru + wu) / 1e6 / dt, &DS_VBD_IOWAIT);
        vbd_put(dv, d, "inflight", b->inflight, &DS_VBD_INFLIGHT);
    }
    v->n_vbds = 0;
    for (unsigned i = 0; i < n; i++) {
        struct vbd_prev *p = &v->vbds[v->n_vbds++];
        memcpy(p->device, now[i].device, sizeof(p->device));
        p->st = now[i].st;
        p->when_ns = now[i].when_ns;
    }
}

struct running_here {
    struct strbuf *sb;
    const char *host;
};

static bool
collect_running(void *opaque, const char *ref, const void *rec)
{
    const struct xapi_vm_record *vm = rec;
    struct running_here *h = opaque;
    struct strbuf *sb = h->sb;
    if (vm->is_control_domain || !host_owns_vm(h->host, vm) ||
        (vm->power_state != XAPI_VM_POWER_STATE_RUNNING &&
                                  vm->power_state != XAPI_VM_POWER_STATE_PAUSED))
        return true;
    struct running_vm r = {{0}, {0}};
    snprintf(r.uuid, sizeof(r.uuid), "%s", vm->uuid);
    snprintf(r.ref, sizeof(r.ref), "%s", ref);
    strbuf_append(sb, (const char *)&r, sizeof(r));
    return sb->len < MAX_VMS * sizeof(r);
}

/* The vm_rrd of @uuid, made when missing; lock held. */
static struct vm_rrd *
vm_rrd_of(struct rrd_store *rs, const char *uuid, bool create)
{
    for (size_t i = 0; i < rs->n_vms; i++)
        if (strcmp(rs->vms[i].uuid, uuid) == 0)
            return &rs->vms[i];
    if (!create || rs->n_vms >= MAX_VMS)
        return NULL;
    struct vm_rrd *grown = realloc(rs->vms, sizeof(*grown) * (rs->n_vms + 1));
    if (!grown)
        return NULL;
    rs->vms = grown;
    struct vm_rrd *v = &rs->vms[rs->n_vms];
    memset(v, 0, sizeof(*v));
    if (!(v->rrd = rrd_new(RRD_STEP_S)))
        return NULL;
    snprintf(v->uuid, sizeof(v->uuid), "%s", uuid);
    rs->n_vms++;
    return v;
}

static void
sample_vms(struct rrd_store *rs, int64_t t)
{
    struct strbuf sb = STRBUF_INIT, vifs = STRBUF_INIT, vbds = STRBUF_INIT;
    struct running_here here = {&sb, rs->srv->host_ref};
    db_foreach(rs->srv->db, &xapi_class_vm, collect_running, &here); /* this host's VMs */
    db_foreach(rs->srv->db, &xapi_class_vif, collect_vif, &vifs);
    db_foreach(rs->srv->db, &xapi_class_vbd, collect_vbd, &vbds);
    struct vbd_now vbd_now[MAX_VBDS];
    struct xenops *x = domains_xenops(rs->srv);
    size_t n = sb.len / sizeof(struct running_vm);
    const struct running_vm *list = (const struct running_vm *)sb.buf;
    struct ds_values *dv = calloc(1, sizeof(*dv));
    for (size_t i = 0; x && dv && i < n; i++) {
        struct xenops_stats st;
        if (xenops_domain_stats(x, list[i].uuid, &st) < 0)
            continue;
        uint64_t now = mono_ns();
        dv->n = 0;
        vif_values(rs, &vifs, list[i].ref, dv); /* reads the store: outside our lock */
        unsigned n_vbd = vbd_read_all(rs, &vbds, list[i].ref, list[i].uuid, vbd_now);
        pthread_mutex_lock(&rs->mu);
        struct vm_rrd *v = vm_rrd_of(rs, list[i].uuid, true);
        if (v) {
            unsigned vcpus = st.vcpus < 64 ? st.vcpus : 64;
            if (v->when_ns && now > v->when_ns) {
                for (unsigned c = 0; c < vcpus && c < v->vcpus; c++) {
                    double used = (double)(st.vcpu_time_ns[c] - v->vcpu_ns[c]) /
                                  (double)(now - v->when_ns);
                    char name[16];
                    snprintf(name, sizeof(name), "cpu%u", c);
                    ds_put(dv, name, used < 0 ? 0 : used, &DS_VCPU);
                }
            }
            v->when_ns = now;
            v->vcpus = vcpus;
            memcpy(v->vcpu_ns, st.vcpu_time_ns, sizeof(v->vcpu_ns));
            ds_put(dv, "memory", (double)st.memory_actual_bytes, &DS_VM_MEM);
            ds_put(dv, "memory_target", (double)st.memory_bytes, &DS_VM_TARGET);
            vbd_values(v, vbd_now, n_vbd, dv);
            ds_record(v->rrd, &v->live, dv, t);
        }
        pthread_mutex_unlock(&rs->mu);
    }
    free(dv);
    strbuf_release(&sb);
    strbuf_release(&vifs);
    strbuf_release(&vbds);
}

void
rrd_store_sample(struct rrd_store *rs)
{
    int64_t t = (int64_t)time(NULL);
    sample_host(rs, t);
    sample_vms(rs, t);
}

/* ------------------------------------------------------------------ persistence */

static void
save_one(const char *dir, const char *name, const struct rrd *r)
{
    struct strbuf sb = STRBUF_INIT;
    char path[PATH_MAX], tmp[PATH_MAX + 8];
    snprintf(path, sizeof(path), "%s/%s.rrd", dir, name);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (rrd_save(r, &sb) < 0) {
        strbuf_release(&sb);
        return;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    bool ok = fd >= 0;
    size_t off = 0;
    while (ok && off < sb.len) {
        ssize_t w = write(fd, sb.buf + off, sb.len - off);
        if (w < 0 && errno == EINTR)
            continue;
        ok = w > 0;
        off += ok ? (size_t)w : 0;
    }
    if (fd >= 0 && close(fd) < 0)
        ok = false;
    if (ok && rename(tmp, path) == 0)
        ok = true;
    else {
        if (fd >= 0)
            unlink(tmp);
        log_warn_errno(errno, "rrd.save", "file=%s", path);
    }
    strbuf_release(&sb);
}

/* Under the lock: a few hundred KiB a minute, and the sampler waits anyway. */
static void
save_all(struct rrd_store *rs)
{
    pthread_mutex_lock(&rs->mu);
    if (rs->host)
        save_one(rs->dir, "host", rs->host);
    for (size_t i = 0; i < rs->n_vms; i++)
        save_one(rs->dir, rs->vms[i].uuid, rs->vms[i].rrd);
    pthread_mutex_unlock(&rs->mu);
}

static struct rrd *
load_one(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return NULL;
    struct stat st;
    struct rrd *r = NULL;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
        st.st_size < (64 << 20)) {
        char *buf = malloc((size_t)st.st_size);
        if (buf && read(fd, buf, (size_t)st.st_size) == st.st_size) {
            int rc = rrd_load(buf, (size_t)st.st_size, &r);
            if (rc < 0)
                log_warn_errno(-rc, "rrd.load", "file=%s", path);
        }
        free(buf);
    }
    close(fd);
    return r;
}

static void
load_all(struct rrd_store *rs)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/host.rrd", rs->dir);
    rs->host = load_one(path);
    DIR *d = opendir(rs->dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l != 36 + 4 || strcmp(e->d_name + 36, ".rrd") != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", rs->dir, e->d_name);
        struct rrd *r = load_one(path);
        char uuid[40];
        snprintf(uuid, sizeof(uuid), "%.36s", e->d_name);
        struct vm_rrd *v = r ? vm_rrd_of(rs, uuid, true) : NULL;
        if (v) {
            rrd_free(v->rrd);
            v->rrd = r;
        } else {
            rrd_free(r);
        }
    }
    if (d)
        closedir(d);
}

/* ------------------------------------------------------------------ thread */

static void *
sampler_main(void *arg)
{
    struct rrd_store *rs = arg;
    unsigned steps = 0;
    pthread_mutex_lock(&rs->mu);
    while (!rs->stop) {
        /* wake at the next multiple of the step, in unix time */
        struct timespec now, at;
        clock_gettime(CLOCK_REALTIME, &now);
        at.tv_sec = now.tv_sec - now.tv_sec % RRD_STEP_S + RRD_STEP_S;
        at.tv_nsec = 50 * 1000 * 1000;
        int rc = 0;
        while (!rs->stop && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&rs->cond, &rs->mu, &at);
        if (rs->stop)
            break;
        pthread_mutex_unlock(&rs->mu);
        uint64_t t0 = mono_ns();
        rrd_store_sample(rs);
        if (++steps % SAVE_EVERY_STEPS == 0)
            save_all(rs);
        log_debug("rrd.sample", "us=%" PRIu64, (mono_ns() - t0) / 1000);
        pthread_mutex_lock(&rs->mu);
    }
    pthread_mutex_unlock(&rs->mu);
    return NULL;
}

int
rrd_store_start(struct server *srv, struct rrd_store **out)
{
    struct rrd_store *rs = calloc(1, sizeof(*rs));
    if (!rs)
        return -ENOMEM;
    rs->srv = srv;
    if (asprintf(&rs->dir, "%s/rrd", srv->data_dir) < 0) {
        free(rs);
        return -ENOMEM;
    }
    if (mkdir(rs->dir, 0700) < 0 && errno != EEXIST) {
        int err = errno;
        free(rs->dir);
        free(rs);
        return -err;
    }
    struct xapi_host_record *host = NULL;
    if (srv->host_ref && db_get(srv->db, &xapi_class_host, srv->host_ref, (void **)&host, NULL))
        snprintf(rs->host_uuid, sizeof(rs->host_uuid), "%s", host->uuid);
    xapi_host_record_free(host);
    pthread_mutex_init(&rs->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_cond_init(&rs->cond, &ca); /* CLOCK_REALTIME: wakes on step boundaries */
    pthread_condattr_destroy(&ca);
    load_all(rs);
    if (!rs->host)
        rs->host = rrd_new(RRD_STEP_S);
    if (!rs->host || pthread_create(&rs->thread, NULL, sampler_main, rs) != 0) {
        rrd_store_stop(rs);
        return -ENOMEM;
    }
    *out = rs;
    return 0;
}

void
rrd_store_stop(struct rrd_store *rs)
{
    if (!rs)
        return;
    pthread_mutex_lock(&rs->mu);
    bool running = !rs->stop && rs->thread;
    rs->stop = true;
    pthread_cond_broadcast(&rs->cond);
    pthread_mutex_unlock(&rs->mu);
    if (running)
        pthread_join(rs->thread, NULL);
    save_all(rs);
    rrd_free(rs->host);
    live_release(&rs->host_live);
    for (size_t i = 0; i < rs->n_vms; i++) {
        rrd_free(rs->vms[i].rrd);
        live_release(&rs->vms[i].live);
    }
    free(rs->vms);
    pthread_cond_destroy(&rs->cond);
    pthread_mutex_destroy(&rs->mu);
    free(rs->dir);
    free(rs);
}

/* ------------------------------------------------------------------ data sources */

/* The rrd and live set of the host (@vm_uuid NULL) or of a VM; lock held.
 * NULL when that VM has none. */
static struct rrd *
rrd_of(struct rrd_store *rs, const char *vm_uuid, struct live_set **live)
{
    if (!vm_uuid) {
        *live = &rs->host_live;
        return rs->host;
    }
    struct vm_rrd *v = vm_rrd_of(rs, vm_uuid, false);
    *live = v ? &v->live : NULL;
    return v ? v->rrd : NULL;
}

static int
by_name(const void *a, const void *b)
{
    return strcmp(((const struct rrd_ds_info *)a)->name, ((const struct rrd_ds_info *)b)->name);
}

int
rrd_store_data_sources(struct rrd_store *rs, const char *vm_uuid, struct rrd_ds_info **out,
                       size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    pthread_mutex_lock(&rs->mu);
    struct live_set *live;
    struct rrd *r = rrd_of(rs, vm_uuid, &live);
    if (!r) {
        pthread_mutex_unlock(&rs->mu);
        return 0;
    }
    size_t cap = live->n + rrd_n_ds(r), n = 0;
    struct rrd_ds_info *list = calloc(cap ? cap : 1, sizeof(*list));
    if (!list) {
        pthread_mutex_unlock(&rs->mu);
        return -ENOMEM;
    }
    /* the live ones, enabled when recorded; then what only the archives know */
    for (unsigned i = 0; i < live->n; i++) {
        const struct live_ds *d = &live->ds[i];
        list[n++] = (struct rrd_ds_info){.description = d->def->description,
                                         .units = d->def->units,
                                         .min = d->def->min,
                                         .max = d->def->max,
                                         .standard = d->def->standard,
                                         .enabled = rrd_ds_find(r, d->name) >= 0};
        snprintf(list[n - 1].name, sizeof(list[0].name), "%s", d->name);
    }
    for (unsigned i = 0; i < rrd_n_ds(r); i++) {
        if (live_find(live, rrd_ds_name(r, i)))
            continue;
        list[n++] = (struct rrd_ds_info){.description = "description not available",
                                         .units = "unknown",
                                         .min = -INFINITY,
                                         .max = INFINITY};
        snprintf(list[n - 1].name, sizeof(list[0].name), "%s", rrd_ds_name(r, i));
    }
    pthread_mutex_unlock(&rs->mu);
    qsort(list, n, sizeof(*list), by_name);
    *out = list;
    *n_out = n;
    return 0;
}

int
rrd_store_query(struct rrd_store *rs, const char *vm_uuid, const char *name, double *value)
{
    pthread_mutex_lock(&rs->mu);
    struct live_set *live;
    struct rrd *r = rrd_of(rs, vm_uuid, &live);
    int idx = r ? rrd_ds_find(r, name) : -ENOENT;
    int rc = !r ? -ENOENT : idx < 0 ? -ESRCH : 0;
    if (rc == 0)
        *value = rrd_latest(r, (unsigned)idx, RRD_CF_AVERAGE);
    pthread_mutex_unlock(&rs->mu);
    return rc;
}

int
rrd_store_record(struct rrd_store *rs, const char *vm_uuid, const char *name)
{
    pthread_mutex_lock(&rs->mu);
    struct live_set *live;
    struct rrd *r = rrd_of(rs, vm_uuid, &live);
    int rc = !r ? -ENOENT : !live_find(live, name) ? -ESRCH : 0;
    if (rc == 0) {
        int idx = rrd_ds_index(r, name); /* its past is NaN, as xapi's rrd_add_ds */
        rc = idx < 0 ? idx : 0;
    }
    pthread_mutex_unlock(&rs->mu);
    return rc;
}

void
rrd_store_forget(struct rrd_store *rs, const char *vm_uuid, const char *name)
{
    pthread_mutex_lock(&rs->mu);
    struct live_set *live;
    struct rrd *r = rrd_of(rs, vm_uuid, &live);
    if (r)
        (void)rrd_ds_remove(r, name); /* none: nothing, as xapi's rrd_remove_ds */
    pthread_mutex_unlock(&rs->mu);
}

/* ------------------------------------------------------------------ HTTP */

static void
reply_text(struct http_request *req, unsigned status, const char *text)
{
    http_reply(req, status, "text/plain; charset=utf-8", text, strlen(text));
}

/* A session from ?session_id=, the session_id cookie or "Authorization:
 * Bearer <session ref>" (what a Prometheus scrape config can send). */
static bool
check_session(struct rrd_store *rs, struct http_request *req)
{
    const char *s = http_request_query(req, "session_id");
    if (!s)
        s = http_request_cookie(req, "session_id");
    const char *auth = http_request_header(req, "Authorization");
    if (!s && auth && strncasecmp(auth, "Bearer ", 7) == 0)
        s = auth + 7;
    struct session_info si = {0};
    if (!s || !session_check(rs->srv, s, &si, NULL)) {
        static const char *const hdr[] = {"WWW-Authenticate: Bearer realm=\"xapi\""};
        static const char msg[] = "a valid session_id is needed\n";
        http_reply_with_headers(req, 401, "text/plain; charset=utf-8", hdr, 1, msg,
                                sizeof(msg) - 1);
        return false;
    }
    session_info_release(&si);
    return true;
}

static bool
parse_i64(const char *s, int64_t *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

/* Only VM rrds updated in the newest step are shown, as xapi shows only
 * running VMs: a halted VM's rows would be all NaN. */
static bool
vm_is_current(const struct rrd_store *rs, const struct vm_rrd *v)
{
    return rrd_last_updated(v->rrd) + 2 * RRD_STEP_S >= rrd_last_updated(rs->host);
}

static void
serve_rrd_updates(struct rrd_store *rs, struct http_request *req)
{
    int64_t start = 0, interval = 0;
    if (!parse_i64(http_request_query(req, "start"), &start)) {
        reply_text(req, 400, "rrd_updates: start (unix time, or negative seconds) is needed\n");
        return;
    }
    const char *iv = http_request_query(req, "interval");
    if (iv && (!parse_i64(iv, &interval) || interval < 0)) {
        reply_text(req, 400, "rrd_updates: bad interval\n");
        return;
    }
    const char *cfs = http_request_query(req, "cf");
    int cf = cfs ? rrd_cf_parse(cfs) : -1;
    if (cfs && cf < 0) {
        reply_text(req, 400, "rrd_updates: cf is AVERAGE, MIN or MAX\n");
        return;
    }
    const char *host = http_request_query(req, "host");
    const char *json = http_request_query(req, "json");
    const char *vm_uuid = http_request_query(req, "vm_uuid");
    bool as_json = json && strcmp(json, "true") == 0;
    pthread_mutex_lock(&rs->mu);
    struct rrd_source *src = calloc(rs->n_vms + 1, sizeof(*src));
    char (*prefixes)[48] = calloc(rs->n_vms + 1, sizeof(*prefixes));
    size_t n = 0;
    struct strbuf out = STRBUF_INIT;
    int rc = -ENOMEM;
    if (src && prefixes) {
        if (host && strcmp(host, "true") == 0) {
            snprintf(prefixes[n], sizeof(prefixes[0]), "host:%s:", rs->host_uuid);
            src[n] = (struct rrd_source){prefixes[n], rs->host};
            n++;
        }
        for (size_t i = 0; i < rs->n_vms; i++) {
            const struct vm_rrd *v = &rs->vms[i];
            if ((vm_uuid && strcmp(vm_uuid, v->uuid) != 0) || (!vm_uuid && !vm_is_current(rs, v)))
                continue;
            snprintf(prefixes[n], sizeof(prefixes[0]), "vm:%s:", v->uuid);
            src[n] = (struct rrd_source){prefixes[n], v->rrd};
            n++;
        }
        rc = rrd_updates_export(src, n, start, interval, cf, as_json, &out);
    }
    pthread_mutex_unlock(&rs->mu);
    free(src);
    free(prefixes);
    if (rc == -ENODATA) {
        strbuf_release(&out);
        reply_text(req, 404, "rrd_updates: no data for this request yet\n");
        return;
    }
    if (rc < 0) {
        strbuf_release(&out);
        reply_text(req, 500, "rrd_updates: out of memory\n");
        return;
    }
    size_t len = 0;
    char *body = strbuf_steal(&out, &len);
    http_reply_take(req, 200, as_json ? "application/json" : "text/xml", body, len);
}

/* Prometheus' text exposition format: a metric name [a-zA-Z_:][a-zA-Z0-9_:]*,
 * label values with \, " and newline escaped. */
static void
prom_family(struct strbuf *sb, const char *prefix, const char *label, const char *id,
            const struct rrd *r)
{
    for (unsigned d = 0; d < rrd_n_ds(r); d++) {
        double v = rrd_latest(r, d, RRD_CF_AVERAGE);
        if (isnan(v))
            continue;
        strbuf_printf(sb, "%s{%s=\"%s\",ds=\"", prefix, label, id);
        for (const char *p = rrd_ds_name(r, d); *p; p++) {
            if (*p == '\\' || *p == '"')
                strbuf_putc(sb, '\\');
            strbuf_putc(sb, *p);
        }
        strbuf_printf(sb, "\"} %.15g %lld000\n", v, (long long)rrd_last_updated(r));
    }
}

static void
serve_metrics(struct rrd_store *rs, struct http_request *req)
{
    struct strbuf sb = STRBUF_INIT;
    strbuf_puts(&sb, "# HELP vessel_host A host data source (xapi's name in ds), 5 s average.\n"
                     "# TYPE vessel_host gauge\n");
    pthread_mutex_lock(&rs->mu);
    prom_family(&sb, "vessel_host", "host", rs->host_uuid, rs->host);
    strbuf_puts(&sb, "# HELP vessel_vm A VM data source (xapi's name in ds), 5 s average.\n"
                     "# TYPE vessel_vm gauge\n");
    for (size_t i = 0; i < rs->n_vms; i++)
        if (vm_is_current(rs, &rs->vms[i]))
            prom_family(&sb, "vessel_vm", "vm", rs->vms[i].uuid, rs->vms[i].rrd);
    pthread_mutex_unlock(&rs->mu);
    if (!strbuf_ok(&sb)) {
        strbuf_release(&sb);
        reply_text(req, 500, "metrics: out of memory\n");
        return;
    }
    size_t len = 0;
    char *body = strbuf_steal(&sb, &len);
    http_reply_take(req, 200, "text/plain; version=0.0.4; charset=utf-8", body, len);
}

/* GET /host_rrd, GET /vm_rrd?uuid=: one rrd whole, as xapi dumps it. */
static void
serve_rrd_dump(struct rrd_store *rs, struct http_request *req, bool host)
{
    const char *uuid = host ? NULL : http_request_query(req, "uuid");
    if (!host && !uuid) {
        reply_text(req, 400, "vm_rrd: uuid= is needed\n");
        return;
    }
    struct strbuf out = STRBUF_INIT;
    int rc = -ENOENT;
    pthread_mutex_lock(&rs->mu);
    const struct vm_rrd *v = host ? NULL : vm_rrd_of(rs, uuid, false);
    if (host || v)
        rc = rrd_dump_xml(host ? rs->host : v->rrd, &out);
    pthread_mutex_unlock(&rs->mu);
    if (rc < 0) {
        strbuf_release(&out);
        reply_text(req, rc == -ENOENT ? 404 : 500,
                   rc == -ENOENT ? "vm_rrd: no metrics for this VM\n" : "rrd: out of memory\n");
        return;
    }
    size_t len = 0;
    char *body = strbuf_steal(&out, &len);
    http_reply_take(req, 200, "text/xml", body, len);
}

bool
rrd_store_http_handle(struct rrd_store *rs, struct http_request *req)
{
    const char *path = http_request_path(req);
    bool updates = strcmp(path, "/rrd_updates") == 0, metrics = strcmp(path, "/metrics") == 0;
    bool host_rrd = strcmp(path, "/host_rrd") == 0, vm_rrd = strcmp(path, "/vm_rrd") == 0;
    if (!rs || (!updates && !metrics && !host_rrd && !vm_rrd))
        return false;
    if (strcmp(http_request_method(req), "GET") != 0) {
        reply_text(req, 405, "use GET\n");
        return true;
    }
    if (!check_session(rs, req))
        return true;
    if (updates)
        serve_rrd_updates(rs, req);
    else if (metrics)
        serve_metrics(rs, req);
    else
        serve_rrd_dump(rs, req, host_rrd);
    return true;
}
