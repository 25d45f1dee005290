/* api/domains.c - VM records to domains, through xenops/ (qemu or sim).
 *
 * A VM record becomes a struct xenops_domain_config: memory_static_max sizes
 * it and its balloon is set to memory_dynamic_max; VCPUs_at_startup vCPUs run
 * and it may grow to VCPUs_max; PV_kernel/PV_ramdisk/PV_args mean a direct
 * kernel boot, otherwise firmware boot with HVM_boot_params:order. The
 * machine is pc unless platform:machine says q35 or microvm (firmware boot:
 * q35 unless it says pc): pc gives a stock kernel everything (ACPI power
 * button, PCI hotplug of disks and NICs, vCPU hotplug) for about 0.3 s more
 * boot under TCG than microvm, which stays a choice (with ACPI unless
 * platform:acpi=0, and no hotplug); platform:accel (kvm|tcg|auto)
 * chooses the accelerator; actions_after_reboot is handed to xenops (a reboot
 * restarts in place), crashes are decided by the API when they happen. Disks: each attached VBD's VDI is
 * served by its own `vhd serve` process over NBD (api/disk_servers.c); each
 * VIF gets a tap vif<domid>.<device> on its network's bridge (api/vif.c).
 *
 * Events from xenops arrive on its thread and go to
 * vm_lifecycle_on_domain_event, which ignores them while an API operation
 * is in progress on the VM (that operation records the outcome itself).
 *
 * Domain ids: xenops names domains by uuid; the domid the API shows is a
 * counter of this process (0 is the control domain), as xapi's are per boot.
 */
#include "api/domains.h"

#include <errno.h>
#include <inttypes.h>
#include <net/if.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/disk_servers.h"
#include "api/guest_metrics.h"
#include "api/guest_kernel.h"
#include "api/helper_ids.h"
#include "api/net_api.h"
#include "common/log.h"
#include "common/workpool.h"
#include "db/db.h"
#include "net/net.h"
#include "xenops/xenops.h"
#include "xapi_errors.h"

/* How long clean_shutdown/clean_reboot wait for the guest: xapi's default
 * clean shutdown timeout is 120 s too; vesseld --clean-shutdown-timeout. */
static unsigned
clean_timeout_s(const struct server *srv)
{
    return srv->clean_shutdown_timeout_s > 0 ? (unsigned)srv->clean_shutdown_timeout_s : 120;
}

struct domains {
    struct server *srv;
    domains_event_fn *on_event;
    struct xenops *x;
    atomic_llong next_domid;
};

static void
on_xenops_event(void *opaque, const char *uuid, enum xenops_event ev)
{
    struct domains *d = opaque;
    struct server *srv = d->srv;
    switch (ev) {
    case XENOPS_EVENT_HALTED:
        /* first: a VM whose actions say restart gets new disk servers */
        disk_servers_stop(srv, uuid);
        d->on_event(srv, uuid, DOMAIN_HALTED);
        break;
    case XENOPS_EVENT_REBOOTED:
        d->on_event(srv, uuid, DOMAIN_REBOOTED);
        break;
    case XENOPS_EVENT_CRASHED:
        d->on_event(srv, uuid, DOMAIN_CRASHED);
        break;
    case XENOPS_EVENT_PAUSED:
        d->on_event(srv, uuid, DOMAIN_PAUSED);
        break;
    case XENOPS_EVENT_RESUMED:
        d->on_event(srv, uuid, DOMAIN_RESUMED);
        break;
    case XENOPS_EVENT_SUSPENDED:
        break; /* only VM.suspend suspends, and it records the outcome */
    case XENOPS_EVENT_AGENT:
        guest_metrics_kick(srv);
        break;
    }
}

static bool
on_path(const char *prog)
{
    const char *path = getenv("PATH");
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s", path ? path : "/usr/bin:/bin");
    for (char *dir = strtok(buf, ":"); dir; dir = strtok(NULL, ":")) {
        char full[4200];
        snprintf(full, sizeof(full), "%s/%s", dir, prog);
        if (access(full, X_OK) == 0)
            return true;
    }
    return false;
}

static bool
max_domid_one(void *opaque, const char *ref, const void *rec)
{
    int64_t *max = opaque;
    (void)ref;
    if (((const struct xapi_vm_record *)rec)->domid > *max)
        *max = ((const struct xapi_vm_record *)rec)->domid;
    return true;
}

int
domains_open(struct server *srv, const char *backend, domains_event_fn *on_event,
             struct domains **out, char *why, size_t why_len)
{
    struct domains *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->srv = srv;
    d->on_event = on_event;
    atomic_init(&d->next_domid, 1);
    const char *name = backend;
    if (strcmp(backend, "auto") == 0)
        name = on_path("qemu-system-x86_64") ? "qemu" : "sim";
    char run_dir[4096], log_dir[4096];
    snprintf(run_dir, sizeof(run_dir), "%s/run", srv->data_dir);
    snprintf(log_dir, sizeof(log_dir), "%s/console", srv->data_dir);
    mkdir(log_dir, 0700);
    struct xenops_init init = {
        .backend = name,
        .run_dir = run_dir,
        .log_dir = log_dir,
        .log_max_bytes = 4u << 20,
        .cgroup_root = srv->cgroup_root,
        .on_event = on_xenops_event,
        .opaque = d,
    };
    /* a test point: the sim's events come this late, as a loaded host's
     * may (what a late event must not do: tests/integration/test_lifecycle.py) */
    const char *sim_delay = getenv("VESSEL_TEST_SIM_EVENT_DELAY_MS");
    if (sim_delay)
        init.sim_delay_ms = (unsigned)strtoul(sim_delay, NULL, 10) % 10001;
    int rc = xenops_new(&init, &d->x);
    if (rc < 0) {
        snprintf(why, why_len, "cannot start the %s backend: %s", name, strerror(-rc));
        free(d);
        return rc;
    }
    srv->domains = d;
    /* domids go on from the highest one recorded: a domain adopted below
     * keeps its domid, and its taps vif<domid>.<n> must not be taken */
    int64_t max = 0;
    if (srv->db)
        db_foreach(srv->db, &xapi_class_vm, max_domid_one, &max);
    atomic_store(&d->next_domid, max + 1);
    char **live = NULL;
    size_t n = 0;
    if (xenops_recover(d->x, &live, &n) == 0 && n)
        log_info("domains.recovered", "backend=%s running=%zu", name, n);
    xenops_strv_free(live, n);
    *out = d;
    return 0;
}

void
domains_close(struct domains *d)
{
    if (!d)
        return;
    xenops_free(d->x); /* guests keep running: a restart adopts them */
    free(d);
}

const char *
domains_backend_name(const struct domains *d)
{
    return xenops_backend_name(d->x);
}

/* ------------------------------------------------------------------ config */

static uint64_t
mib_up(int64_t bytes)
{
    return ((uint64_t)bytes + (1u << 20) - 1) & ~(uint64_t)((1u << 20) - 1);
}

static char *
dup_or_null(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

static enum xenops_action
action_of(int xapi_action)
{
    return xapi_action == XAPI_ON_NORMAL_EXIT_RESTART ? XENOPS_ACTION_RESTART
                                                      : XENOPS_ACTION_DESTROY;
}

/* One tap per VIF, on its network's bridge (qemu only: sim guests have no
 * NICs to connect). On failure the taps made are removed again. */
static bool
attach_nics(struct server *srv, const struct xapi_vm_record *vm, int64_t domid,
            struct xenops_domain_config *c, struct xerr **errp)
{
    if (strcmp(xenops_backend_name(srv->domains->x), "qemu") != 0 || vm->VIFs.n == 0)
        return true;
    if (!(c->nics = calloc(vm->VIFs.n, sizeof(*c->nics))))
        return xerr_nomem(errp);
    for (size_t i = 0; i < vm->VIFs.n; i++) {
        char tap[32];
        char *mac = NULL;
        bool ok = db_get_field(srv->db, &xapi_class_vif, vm->VIFs.items[i],
                               xclass_field(&xapi_class_vif, "MAC"), &mac, errp) &&
                  net_vif_attach(srv, vm->VIFs.items[i], domid, tap, sizeof(tap), errp);
        if (ok && (!(c->nics[i].tap = strdup(tap)) || !(c->nics[i].mac = strdup(mac))))
            ok = xerr_nomem(errp);
        free(mac);
        c->n_nics = i + 1;
        if (!ok) {
            for (size_t j = 0; j <= i; j++)
                net_vif_detach(srv, vm->VIFs.items[j], domid, NULL);
            return false;
        }
    }
    return true;
}

/* The taps of a domain that is gone, removed off the caller's path. */
struct taps_job {
    size_t n;
    char names[][IFNAMSIZ];
};

/* The taps a job is removing: a stop queues its domain's taps as soon as
 * qemu has exited (vm_lifecycle.c stop_work), and the records' halt asks
 * again; the second finds them here and leaves them to the first. Names
 * carry the domid, so the set is the process's, not a server's. */
static pthread_mutex_t taps_going_lock = PTHREAD_MUTEX_INITIALIZER;
static char (*taps_going)[IFNAMSIZ];
static size_t n_taps_going, cap_taps_going;

/* Adds @name to the set: false when it is there already. With no room for
 * it, it is removed untracked (true): a second removal finds it gone. */
static bool
tap_going_add(const char *name)
{
    pthread_mutex_lock(&taps_going_lock);
    bool added = false;
    size_t i = 0;
    while (i < n_taps_going && strcmp(taps_going[i], name) != 0)
        i++;
    if (i == n_taps_going) {
        if (n_taps_going == cap_taps_going) {
            size_t cap = cap_taps_going ? 2 * cap_taps_going : 16;
            char (*more)[IFNAMSIZ] = realloc(taps_going, cap * sizeof(*more));
            if (more) {
                taps_going = more;
                cap_taps_going = cap;
            }
        }
        if (n_taps_going < cap_taps_going)
            snprintf(taps_going[n_taps_going++], IFNAMSIZ, "%s", name);
        added = true;
    }
    pthread_mutex_unlock(&taps_going_lock);
    return added;
}

static void
tap_going_remove(const char *name)
{
    pthread_mutex_lock(&taps_going_lock);
    for (size_t i = 0; i < n_taps_going; i++)
        if (strcmp(taps_going[i], name) == 0) {
            memcpy(taps_going[i], taps_going[--n_taps_going], IFNAMSIZ);
            break;
        }
    pthread_mutex_unlock(&taps_going_lock);
}

static void
taps_remove(void *opaque)
{
    struct taps_job *j = opaque;
    for (size_t i = 0; i < j->n; i++) {
        int rc = net_vif_tap_remove(j->names[i]);
        if (rc < 0)
            log_warn_errno(-rc, "vif.detach_failed", "tap=%s", j->names[i]);
        tap_going_remove(j->names[i]);
    }
    free(j);
}

/* The names are read now (the VIFs may be destroyed next); the taps go on a
 * worker (a job of the pool; inline when there is none). That is safe: a
 * tap's name carries its domid, and every start takes a new domid, so a
 * start of the same VM right after makes other taps and never meets these;
 * their qemu has exited, so they carry nothing meanwhile; and should one
 * outlive a restart of vesseld that hands its domid out again,
 * net_vif_attach deletes a tap of that name that no qemu holds. A tap that
 * is gone already, or going, is left alone. */
void
domains_detach_nics(struct server *srv, const struct xapi_vm_record *vm)
{
    if (!srv->domains || strcmp(xenops_backend_name(srv->domains->x), "qemu") != 0 ||
        vm->domid < 0 || vm->VIFs.n == 0)
        return;
    struct taps_job *j = calloc(1, sizeof(*j) + vm->VIFs.n * sizeof(j->names[0]));
    for (size_t i = 0; j && i < vm->VIFs.n; i++)
        if (net_vif_tap_of(srv, vm->VIFs.items[i], vm->domid, j->names[j->n], IFNAMSIZ, NULL) &&
            if_nametoindex(j->names[j->n]) != 0 && tap_going_add(j->names[j->n]))
            j->n++;
    if (!j || !j->n) {
        free(j);
        return;
    }
    if (!srv->workers || workpool_submit(srv->workers, taps_remove, taps_remove, j) < 0)
        taps_remove(j);
}

bool
domains_machine(const struct xapi_vm_record *vm, enum xenops_machine *out)
{
    const char *machine = xmap_get_str((const struct xmap *)&vm->platform, "machine");
    if (!machine)
        *out = vm->PV_kernel[0] ? XENOPS_MACHINE_PC : XENOPS_MACHINE_Q35;
    else if (!strcmp(machine, "pc"))
        *out = XENOPS_MACHINE_PC;
    else if (!strcmp(machine, "q35"))
        *out = XENOPS_MACHINE_Q35;
    else if (!strcmp(machine, "microvm"))
        *out = XENOPS_MACHINE_MICROVM;
    else
        return false;
    return true;
}

bool
domains_no_acpi(const struct xapi_vm_record *vm)
{
    enum xenops_machine m;
    const char *acpi = xmap_get_str((const struct xmap *)&vm->platform, "acpi");
    return domains_machine(vm, &m) && m == XENOPS_MACHINE_MICROVM && acpi && !strcmp(acpi, "0");
}

/* Stops the disk servers build_config started: a migration's destination's
 * are standby servers beside its source's, which must not be touched. */
static void
stop_servers(struct server *srv, const char *uuid, bool standby)
{
    if (standby)
        disk_servers_stop_standby(srv, uuid);
    else
        disk_servers_stop(srv, uuid);
}

/* The taps of a starting domain, made on a thread of their own while its
 * disk servers start: neither waits for the other (c->nics and c->disks are
 * apart). */
struct nics_job {
    struct server *srv;
    const struct xapi_vm_record *vm;
    int64_t domid;
    struct xenops_domain_config *c;
    struct xerr *err;
    bool ok;
};

static void *
nics_thread(void *opaque)
{
    struct nics_job *j = opaque;
    j->ok = attach_nics(j->srv, j->vm, j->domid, j->c, &j->err);
    return NULL;
}

/* Disk servers and taps for @c, at the same time when there are both. On
 * failure neither is left. @standby: a migration's destination's servers. */
static bool
attach_devices(struct server *srv, const char *ref, const struct xapi_vm_record *vm,
               int64_t domid, bool standby, struct xenops_domain_config *c, struct xerr **errp)
{
    struct nics_job j = {srv, vm, domid, c, NULL, true};
    pthread_t t;
    bool threaded = vm->VBDs.n > 0 && vm->VIFs.n > 0 &&
                    pthread_create(&t, NULL, nics_thread, &j) == 0;
    bool disks_ok = standby ? disk_servers_start_standby(srv, vm, domid, c, errp)
                            : disk_servers_start(srv, ref, vm, domid, c, errp);
    if (threaded)
        pthread_join(t, NULL);
    else if (disks_ok)
        nics_thread(&j);
    if (disks_ok && j.ok)
        return true;
    if (disks_ok)
        stop_servers(srv, vm->uuid, standby);
    if (j.ok && threaded)
        for (size_t i = 0; i < vm->VIFs.n && i < c->n_nics; i++)
            net_vif_detach(srv, vm->VIFs.items[i], domid, NULL);
    if (!disks_ok)
        xerr_free(j.err); /* the disks' error is the one told */
    else if (errp)
        *errp = j.err;
    else
        xerr_free(j.err);
    return false;
}

/* @standby: for a migration's destination (disk_servers_start_standby). */
static bool
build_config(struct server *srv, const char *ref, const struct xapi_vm_record *vm, bool paused,
             int64_t domid, bool standby, struct xenops_domain_config **out, struct xerr **errp)
{
    struct xenops_domain_config *c = calloc(1, sizeof(*c));
    if (!c)
        return xerr_nomem(errp);
    c->uuid = strdup(vm->uuid);
    c->name = strdup(vm->name_label);
    c->memory_bytes = mib_up(vm->memory_static_max > vm->memory_dynamic_max
                                         ? vm->memory_static_max
                                         : vm->memory_dynamic_max);
    c->vcpus = (unsigned)vm->VCPUs_at_startup;
    c->vcpus_max = vm->VCPUs_max > vm->VCPUs_at_startup ? (unsigned)vm->VCPUs_max : 0;
    const struct xmap *platform = (const struct xmap *)&vm->platform;
    const char *machine = xmap_get_str(platform, "machine");
    enum xenops_machine m;
    if (!domains_machine(vm, &m)) {
        xenops_config_free(c);
        return xerr_value_not_supported(errp, "platform:machine", machine,
                                        "the machine types are pc, q35 and microvm");
    }
    if (!vm->PV_kernel[0] && m == XENOPS_MACHINE_MICROVM) {
        xenops_config_free(c);
        return xerr_value_not_supported(errp, "platform:machine", machine,
                                        "microvm has no firmware: it needs a direct kernel boot");
    }
    c->machine = m;
    if (vm->PV_kernel[0]) {
        c->boot = XENOPS_BOOT_DIRECT;
        /* before anything starts: the files must come from an allowed directory */
        if (!guest_kernel_resolve(srv, "kernel", vm->PV_kernel, &c->kernel, errp) ||
            (vm->PV_ramdisk[0] &&
             !guest_kernel_resolve(srv, "ramdisk", vm->PV_ramdisk, &c->initrd, errp))) {
            xenops_config_free(c);
            return false;
        }
        c->cmdline = dup_or_null(vm->PV_args);
        c->no_acpi = domains_no_acpi(vm);
    } else {
        c->boot = XENOPS_BOOT_FIRMWARE;
        const char *order = xmap_get_str((const struct xmap *)&vm->HVM_boot_params, "order");
        c->boot_order = strdup(order && *order ? order : "cd");
    }
    const char *accel = xmap_get_str(platform, "accel");
    c->accel = accel && !strcmp(accel, "kvm")   ? XENOPS_ACCEL_KVM
               : accel && !strcmp(accel, "tcg") ? XENOPS_ACCEL_TCG
                                                : XENOPS_ACCEL_AUTO;
    c->start_paused = paused;
    /* a test aid for the sim backend (docs/guests.md) */
    const char *stubborn =
        xmap_get_str((const struct xmap *)&vm->other_config, "sim-ignore-shutdown");
    c->sim_ignore_shutdown = stubborn && !strcmp(stubborn, "true");
    c->uid = c->gid = domains_qemu_uid(srv, domid);
    const struct xmap *sched = (const struct xmap *)&vm->VCPUs_params;
    const char *weight = xmap_get_str(sched, "weight"), *cap = xmap_get_str(sched, "cap");
    /* xapi's ranges (Xen credit: weight 1..65535, cap 0..100 * vCPUs);
     * anything else is the default, as xenopsd ignores what it cannot parse */
    unsigned long w = weight ? strtoul(weight, NULL, 10) : 0;
    unsigned long k = cap ? strtoul(cap, NULL, 10) : 0;
    c->cpu_weight = w <= 65535 ? (unsigned)w : 0;
    c->cpu_cap = k <= 100ul * c->vcpus ? (unsigned)k : 0;
    c->on_poweroff = XENOPS_ACTION_DESTROY; /* the API decides: actions_after_shutdown */
    c->on_reboot = action_of((int)vm->actions_after_reboot);
    /* A crash is decided by the API with the actions in force when it happens
     * (vm_lifecycle_on_domain_event); only preserve must be known up front. */
    c->on_crash = vm->actions_after_crash == XAPI_ON_CRASH_BEHAVIOUR_PRESERVE
                      ? XENOPS_ACTION_PRESERVE
                      : XENOPS_ACTION_DESTROY;
    if (!c->uuid || !c->name || (c->boot == XENOPS_BOOT_DIRECT && !c->kernel) ||
        (c->boot == XENOPS_BOOT_FIRMWARE && !c->boot_order)) {
        xenops_config_free(c);
        return xerr_nomem(errp);
    }
    if (!attach_devices(srv, ref, vm, domid, standby, c, errp)) {
        xenops_config_free(c);
        return false;
    }
    const char *why = NULL;
    if (xenops_config_check(c, &why) < 0) {
        stop_servers(srv, vm->uuid, standby);
        for (size_t i = 0; i < vm->VIFs.n && i < c->n_nics; i++)
            net_vif_detach(srv, vm->VIFs.items[i], domid, NULL);
        xenops_config_free(c);
        return xerr_value_not_supported(errp, "VM", ref, why ? why : "bad domain");
    }
    *out = c;
    return true;
}

/* -errno from xenops, as a XenAPI error about @uuid. */
static bool
fail(const struct server *srv, int rc, const char *what, const char *uuid, struct xerr **errp)
{
    if (rc == -ETIMEDOUT) {
        /* xapi_xenops.ml: [the VM's ref, the timeout as OCaml's string_of_float] */
        char s[24], *ref = NULL;
        snprintf(s, sizeof(s), "%u.", clean_timeout_s(srv));
        db_ref_by_uuid(srv->db, &xapi_class_vm, uuid, &ref, NULL);
        bool ok = xerr_vm_shutdown_timeout(errp, ref ? ref : uuid, s);
        free(ref);
        return ok;
    }
    if (rc == -ECANCELED) /* the task's ref is filled in when the task finishes */
        return xerr_task_cancelled(errp, "OpaqueRef:NULL");
    if (rc == -ENOTSUP) { /* no agent, and for a shutdown no ACPI either */
        char *ref = NULL;
        db_ref_by_uuid(srv->db, &xapi_class_vm, uuid, &ref, NULL);
        bool ok = xerr_vm_lacks_feature(errp, ref ? ref : uuid);
        free(ref);
        return ok;
    }
    return xerr_internal(errp, "%s of VM %s failed: %s", what, uuid, strerror(-rc));
}

/* ------------------------------------------------------------------ operations */

bool
domains_start(struct server *srv, const char *ref, const struct xapi_vm_record *vm, bool paused,
              int64_t *domid, struct xerr **errp)
{
    struct domains *d = srv->domains;
    struct xenops_domain_config *c = NULL;
    int64_t id = atomic_fetch_add(&d->next_domid, 1); /* names the taps */
    uint64_t t0 = log_clock_us();
    if (!build_config(srv, ref, vm, paused, id, false, &c, errp))
        return false;
    uint64_t t1 = log_clock_us();
    int rc = xenops_domain_start(d->x, c);
    uint64_t t2 = log_clock_us();
    /* the balloon holds what dynamic_max does not give (xapi's squeezed
     * without memory pressure: every guest at its dynamic_max) */
    uint64_t target = mib_up(vm->memory_dynamic_max);
    if (rc == 0 && target < c->memory_bytes &&
        xenops_domain_set_memory_target(d->x, vm->uuid, target) < 0)
        log_warn("domains.balloon", "vm=%s target=%" PRIu64 ": not set", vm->uuid, target);
    if (rc < 0) {
        disk_servers_stop(srv, vm->uuid);
        for (size_t i = 0; i < vm->VIFs.n && i < c->n_nics; i++)
            net_vif_detach(srv, vm->VIFs.items[i], id, NULL);
    }
    if (rc == 0)
        log_debug("domains.start_steps", "vm=%s disks=%zu nics=%zu devices_ms=%.2f xenops_ms=%.2f "
                  "balloon_ms=%.2f", vm->uuid, c->n_disks, c->n_nics, (double)(t1 - t0) / 1e3,
                  (double)(t2 - t1) / 1e3, (double)(log_clock_us() - t2) / 1e3);
    xenops_config_free(c);
    if (rc == -EINVAL)
        return xerr_bootloader_failed(errp, ref,
                          "the guest's kernel or firmware could not be started");
    if (rc < 0)
        return fail(srv, rc, "start", vm->uuid, errp);
    *domid = id;
    return true;
}

/* A hard shutdown destroys the domain: qemu gets SIGKILL, and its disk
 * servers are stopped at once, while the kernel tears qemu down (freeing its
 * memory: most of a destroy's time), instead of after its exit. Nothing is
 * lost by not waiting for qemu:
 *  - the guest runs no more once SIGKILL is sent (xenops_domain_destroy), so
 *    no write can be acknowledged to it afterwards; a write qemu sent that
 *    its server had not answered was never acknowledged to the guest, and a
 *    hard shutdown owes it nothing (as a power cut, or xapi destroying the
 *    Xen domain under its tapdisks);
 *  - a server's own state ends consistent: on SIGTERM `vhd serve` takes its
 *    chain lock exclusively, so a write in progress (data, then the BAT and
 *    bitmap) completes first and none starts after; it then writes the
 *    footer, fdatasyncs and exits (tools/vhd/serve.c). A request qemu sends
 *    meanwhile is never answered;
 *  - the stop is signalled under disk_servers_lock: a live snapshot's pause
 *    and reload, or the collector's, are never cut in half;
 *  - on a standalone host the call does not wait for the servers' exits
 *    (disk_servers_stop_behind): their flush and exit would compete with
 *    qemu's teardown for the CPUs and lengthen it. What comes next waits
 *    for them instead: every disk_servers_lock (a start, a plug, a
 *    snapshot, the collector) and every VDI operation that opens the files
 *    (storage_sr_path settles), so nothing reads or changes a VDI before
 *    its server flushed and closed it. In a pool the call waits, since a
 *    VDI's writer key, which another host's start needs, goes only once
 *    its server exited;
 *  - qemu's exit then stops nothing more (on_xenops_event finds no server
 *    left), and the call returns after it, as before (xenops/qemu.c (1)).
 * qemu's exit is seen on the caller's thread, which then records the halt
 * (vm_lifecycle.c record_halted, through domains_stop_then) while the
 * supervisor cleans up on its own, instead of after it: both woke on the
 * pidfd, and on a host of two CPUs each has one. The call returns once the
 * supervisor announced the exit, as before, so a start that follows finds
 * the domain's directory and disk servers gone.
 * The taps go once qemu has exited, beside the records' commit (the same
 * record_halted): deleting them while qemu died, tried, made its exit
 * 0.6-0.9 ms later even with vesseld holding their last descriptors
 * (xenops/taps.c): a deletion's RCU grace periods and netlink work take the
 * CPU the kernel's teardown of qemu needs, on a host of two.
 */
struct destroying {
    struct server *srv;
    const char *uuid;
    void (*exited)(void *);
    void *opaque;
    bool disks_stopped;
    double disks_ms;
};

static void
on_destroy_step(void *opaque, enum xenops_destroy_step step)
{
    struct destroying *k = opaque;
    if (step == XENOPS_EXITED) {
        if (k->exited)
            k->exited(k->opaque);
        return;
    }
    uint64_t t0 = log_clock_us();
    disk_servers_stop_behind(k->srv, k->uuid);
    k->disks_stopped = true;
    k->disks_ms = (double)(log_clock_us() - t0) / 1e3;
}

static bool
stop_domain(struct server *srv, const char *uuid, bool clean, void (*exited)(void *),
            void *opaque, struct xerr **errp)
{
    uint64_t t0 = log_clock_us();
    struct destroying k = {srv, uuid, exited, opaque, false, 0};
    int rc = clean ? -ENOTSUP
                   : xenops_domain_destroy(srv->domains->x, uuid, on_destroy_step, &k);
    if (rc == -ENOTSUP)
        rc = xenops_domain_shutdown(srv->domains->x, uuid, !clean, clean_timeout_s(srv) * 1000);
    if (rc == -ENOENT)
        rc = 0; /* already gone: the goal is reached */
    uint64_t t1 = log_clock_us();
    if (rc == 0 && !k.disks_stopped)
        disk_servers_stop(srv, uuid);
    if (rc == 0)
        log_debug("domains.stop_steps",
                  "vm=%s clean=%d early_disks_ms=%.2f domain_ms=%.2f disks_ms=%.2f", uuid, clean,
                  k.disks_ms, (double)(t1 - t0) / 1e3 - k.disks_ms,
                  (double)(log_clock_us() - t1) / 1e3);
    return rc == 0 || fail(srv, rc, clean ? "clean shutdown" : "hard shutdown", uuid, errp);
}

bool
domains_stop(struct server *srv, const char *uuid, bool clean, struct xerr **errp)
{
    return stop_domain(srv, uuid, clean, NULL, NULL, errp);
}

bool
domains_stop_then(struct server *srv, const char *uuid, void (*exited)(void *), void *opaque,
                  struct xerr **errp)
{
    return stop_domain(srv, uuid, false, exited, opaque, errp);
}

void
domains_kill(struct server *srv, const char *uuid)
{
    if (srv->domains)
        xenops_domain_kill(srv->domains->x, uuid);
}

void
domains_cancel_waits(struct server *srv, const char *uuid)
{
    xenops_domain_cancel_waits(srv->domains->x, uuid); /* no domain: nothing waits */
}

bool
domains_reboot(struct server *srv, const char *uuid, bool clean, struct xerr **errp)
{
    int rc = xenops_domain_reboot(srv->domains->x, uuid, !clean, clean_timeout_s(srv) * 1000);
    return rc == 0 || fail(srv, rc, "reboot", uuid, errp);
}

bool
domains_pause(struct server *srv, const char *uuid, bool pause, struct xerr **errp)
{
    int rc = pause ? xenops_domain_pause(srv->domains->x, uuid)
                   : xenops_domain_unpause(srv->domains->x, uuid);
    return rc == 0 || fail(srv, rc, pause ? "pause" : "unpause", uuid, errp);
}

bool
domains_suspend(struct server *srv, const char *uuid, const char *path, struct xerr **errp)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
        mkdir(dir, 0700);
    }
    int rc = xenops_domain_suspend(srv->domains->x, uuid, path);
    if (rc == 0)
        disk_servers_stop(srv, uuid);
    return rc == 0 || fail(srv, rc, "suspend", uuid, errp);
}

bool
domains_resume(struct server *srv, const char *ref, const struct xapi_vm_record *vm,
               const char *path, bool paused, int64_t *domid, struct xerr **errp)
{
    if (access(path, R_OK) != 0)
        return xerr_vm_has_no_suspend_vdi(errp, ref);
    struct xenops_domain_config *c = NULL;
    int64_t id = atomic_fetch_add(&srv->domains->next_domid, 1);
    if (!build_config(srv, ref, vm, paused, id, false, &c, errp))
        return false;
    int rc = xenops_domain_resume(srv->domains->x, c, path);
    if (rc < 0) {
        disk_servers_stop(srv, vm->uuid);
        for (size_t i = 0; i < vm->VIFs.n && i < c->n_nics; i++)
            net_vif_detach(srv, vm->VIFs.items[i], id, NULL);
    }
    xenops_config_free(c);
    if (rc < 0)
        return fail(srv, rc, "resume", vm->uuid, errp);
    unlink(path); /* consumed, as xapi destroys the suspend VDI */
    *domid = id;
    guest_metrics_kick(srv); /* its agent may answer at once: no port event says so */
    return true;
}

bool
domains_set_memory_target(struct server *srv, const char *uuid, int64_t bytes, struct xerr **errp)
{
    int rc = xenops_domain_set_memory_target(srv->domains->x, uuid, mib_up(bytes));
    return rc == 0 || fail(srv, rc, "memory target", uuid, errp);
}

bool
domains_set_vcpus(struct server *srv, const char *uuid, unsigned vcpus, struct xerr **errp)
{
    int rc = xenops_domain_set_vcpus(srv->domains->x, uuid, vcpus, 10000);
    char n[16];
    snprintf(n, sizeof(n), "%u", vcpus);
    if (rc == -ENOTSUP)
        return xerr_operation_not_allowed(
            errp, "vCPU hotplug needs platform:machine pc or q35: microvm has no CPU hotplug");
    if (rc == -EINVAL)
        return xerr_invalid_value(errp, "VCPU values must satisfy: 0 < VCPUs \u2264 VCPUs_max",
                                  n);
    if (rc == -ETIMEDOUT)
        return xerr_operation_not_allowed(errp, "the guest did not release the vCPUs in time");
    return rc == 0 || fail(srv, rc, "vCPU change", uuid, errp);
}

int
domains_agent_info(struct server *srv, const char *uuid, struct xenops_guest_info **out)
{
    return xenops_agent_info(srv->domains->x, uuid, 3000, out); /* -ENOTCONN: port closed */
}

bool
domains_alive(struct server *srv, const char *uuid)
{
    struct xenops_stats st;
    return xenops_domain_stats(srv->domains->x, uuid, &st) == 0;
}

int64_t
domains_memory_actual(struct server *srv, const char *uuid)
{
    struct xenops_stats st;
    if (xenops_domain_stats(srv->domains->x, uuid, &st) < 0)
        return 0;
    return (int64_t)st.memory_actual_bytes;
}

struct xenops *
domains_xenops(struct server *srv)
{
    return srv->domains ? srv->domains->x : NULL;
}

/* ------------------------------------------------------------------ live migration */

bool
domains_disk_geometry(struct server *srv, const struct xapi_vm_record *vm, char *out, size_t len)
{
    size_t used = 0;
    out[0] = '\0';
    for (unsigned slot = 0; slot < vm->VBDs.n; slot++) {
        unsigned c = 0, h = 0, k = 0;
        /* a slot without a virtio disk (a CD, an empty drive) is 0/0/0 */
        int rc = xenops_disk_geometry(srv->domains->x, vm->uuid, slot, &c, &h, &k);
        if (rc < 0)
            log_warn("domains.geometry", "vm=%s slot=%u error=\"%s\"", vm->uuid, slot,
                     strerror(-rc));
        int n = snprintf(out + used, len - used, "%s%u/%u/%u", slot ? ";" : "", c, h, k);
        if (n < 0 || (size_t)n >= len - used)
            return false;
        used += (size_t)n;
    }
    return true;
}

/* Gives @c's disks the geometry @geometry lists ("C/H/S;..." by slot). */
static void
apply_geometry(struct xenops_domain_config *c, const char *geometry)
{
    const char *p = geometry;
    for (size_t i = 0; p && *p && i < c->n_disks; i++) {
        unsigned cy = 0, h = 0, k = 0;
        if (sscanf(p, "%u/%u/%u", &cy, &h, &k) == 3 && !c->disks[i].cdrom) {
            c->disks[i].cyls = cy;
            c->disks[i].heads = h;
            c->disks[i].secs = k;
        }
        p = strchr(p, ';');
        if (p)
            p++;
    }
}

bool
domains_receive(struct server *srv, const char *ref, const struct xapi_vm_record *vm,
                const char *listen, const char *geometry, const struct xenops_tls *tls,
                int64_t *domid, char *uri, size_t uri_len, struct xerr **errp)
{
    struct xenops_domain_config *c = NULL;
    int64_t id = atomic_fetch_add(&srv->domains->next_domid, 1); /* its own taps and uids */
    if (!build_config(srv, ref, vm, true, id, true, &c, errp))
        return false;
    /* the source's geometry: QEMU would otherwise read sector 0 to guess it,
     * from a disk the source still owns (and the standby server holds) */
    apply_geometry(c, geometry);
    int rc = xenops_domain_start_incoming(srv->domains->x, c, listen, tls, uri, uri_len);
    if (rc < 0) {
        disk_servers_stop_standby(srv, vm->uuid);
        for (size_t i = 0; i < vm->VIFs.n && i < c->n_nics; i++)
            net_vif_detach(srv, vm->VIFs.items[i], id, NULL);
    }
    xenops_config_free(c);
    if (rc == -ENOTSUP)
        return xerr_operation_not_allowed(errp, "the sim backend has no live migration");
    if (rc < 0)
        return fail(srv, rc, "receiving the migration", vm->uuid, errp);
    *domid = id;
    return true;
}

void
domains_receive_abort(struct server *srv, const struct xapi_vm_record *vm, int64_t domid)
{
    xenops_domain_incoming_abort(srv->domains->x, vm->uuid);
    disk_servers_stop_standby(srv, vm->uuid);
    for (size_t i = 0; i < vm->VIFs.n && domid >= 0; i++)
        net_vif_detach(srv, vm->VIFs.items[i], domid, NULL);
}

bool
domains_receive_wait(struct server *srv, const char *uuid, struct xerr **errp)
{
    int rc = xenops_domain_incoming_wait(srv->domains->x, uuid, 60000);
    return rc == 0 || fail(srv, rc, "receiving the migration", uuid, errp);
}

bool
domains_receive_commit(struct server *srv, const char *uuid, const char *from_host,
                       struct xerr **errp)
{
    uint64_t t0 = log_clock_us();
    if (!disk_servers_activate(srv, uuid, from_host, errp))
        return false;
    uint64_t t1 = log_clock_us();
    int rc = xenops_domain_incoming_commit(srv->domains->x, uuid); /* and runs it */
    if (rc < 0)
        return fail(srv, rc, "resuming the migrated domain", uuid, errp);
    log_info("domains.receive_commit", "vm=%s disks_us=%" PRIu64 " run_us=%" PRIu64, uuid,
             t1 - t0, log_clock_us() - t1);
    guest_metrics_kick(srv); /* its agent answers at once: no port event says so */
    return true;
}

bool
domains_migrate_send(struct server *srv, const char *uuid, const char *uri,
                     const struct xenops_tls *tls, const char *tls_hostname,
                     xenops_migrate_fn *fn, void *opaque, struct xenops_migrate_stats *out,
                     struct xerr **errp)
{
    int rc = xenops_domain_migrate_send(srv->domains->x, uuid, uri, tls, tls_hostname, fn,
                                        opaque, out);
    if (rc == -ENOTSUP)
        return xerr_operation_not_allowed(errp, "the sim backend has no live migration");
    return rc == 0 || fail(srv, rc, "migration", uuid, errp);
}

void
domains_migrate_source_stop(struct server *srv, const struct xapi_vm_record *vm)
{
    /* the source's qemu, paused with its images inactive since the
     * completion, writes nothing more: the guest waits for its disk servers
     * alone (each flushes and closes its chain, then exits; the writer keys
     * wait for the destination), not for qemu's exit */
    uint64_t t0 = log_clock_us();
    int rc = xenops_domain_migrate_finish(srv->domains->x, vm->uuid, false);
    if (rc < 0 && rc != -ENOENT)
        log_warn("domains.migrate_finish", "vm=%s error=\"%s\"", vm->uuid, strerror(-rc));
    uint64_t t1 = log_clock_us();
    disk_servers_stop_handing_over(srv, vm->uuid);
    log_info("domains.migrate_source_stop", "vm=%s kill_us=%" PRIu64 " disks_us=%" PRIu64,
             vm->uuid, t1 - t0, log_clock_us() - t1);
}

void
domains_migrate_source_reap(struct server *srv, const struct xapi_vm_record *vm)
{
    uint64_t t0 = log_clock_us();
    int rc = xenops_domain_migrate_finish(srv->domains->x, vm->uuid, true);
    if (rc < 0 && rc != -ENOENT)
        log_warn("domains.migrate_finish", "vm=%s error=\"%s\"", vm->uuid, strerror(-rc));
    log_debug("domains.migrate_source_reap", "vm=%s exit_us=%" PRIu64, vm->uuid,
              log_clock_us() - t0);
    domains_detach_nics(srv, vm); /* the old domid's taps, after qemu's close */
}

void
domains_migrate_source_release(struct server *srv, const struct xapi_vm_record *vm)
{
    for (size_t i = 0; i < vm->VBDs.n; i++) {
        char *vdi = NULL, *uuid = NULL;
        if (db_get_field(srv->db, &xapi_class_vbd, vm->VBDs.items[i],
                         xclass_field(&xapi_class_vbd, "VDI"), &vdi, NULL) &&
            db_get_field(srv->db, &xapi_class_vdi, vdi, xclass_field(&xapi_class_vdi, "uuid"),
                         &uuid, NULL))
            disk_servers_release_writer(srv, uuid);
        free(vdi);
        free(uuid);
    }
}

bool
domains_migrate_rollback(struct server *srv, const char *uuid, struct xerr **errp)
{
    int rc = xenops_domain_migrate_rollback(srv->domains->x, uuid);
    return rc == 0 || fail(srv, rc, "resuming the migration's source", uuid, errp);
}
