/* api/bootstrap.c - the objects a host has from its first start (xapi's ocaml/idl/datamodel*.ml,
 * 3.6, 9): the pool, this host with its CPUs and metrics, the control domain,
 * the roles, the SM drivers, a network (and PIF) per physical NIC, and the
 * built-in templates. Later starts find them again (the pool is the marker)
 * and refresh only what the machine itself says (memory, CPUs are not
 * re-created). Everything is created in one batch: a crash half way leaves
 * nothing, and the next start begins again.
 *
 * Versions: API 2.21 with platform_version 3.4.0 and xencenter_min/max 2.21,
 * as the spec recommends (xapi's ocaml/idl/datamodel_common.ml); product_brand "Vessel".
 */
#include "api/bootstrap.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <dirent.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "api/inventory.h"
#include "api/role.h"
#include "api/sr_shared.h"
#include "api/storage_api.h"
#include "api/vm_ops.h"
#include "common/log.h"
#include "db/db.h"
#include "rpc/session.h"
#include "xapi_model.h"

#define VESSEL_VERSION "0.1.0"

/* ------------------------------------------------------------------ helpers */

static bool
put(void *map, const char *k, const char *v)
{
    return xmap_put_str(map, k, v ? v : "") == 0;
}

static bool
add(void *set_, const char *v)
{
    return xset_add_str(set_, v) == 0;
}

/* ------------------------------------------------------------------ machine facts */

struct cpu_facts {
    char vendor[64];
    char modelname[128];
    char flags[4096];
    char family[16], model[16], stepping[16];
    long mhz;
    long count;
};

static void
read_cpu_facts(struct cpu_facts *c)
{
    memset(c, 0, sizeof(*c));
    c->count = sysconf(_SC_NPROCESSORS_ONLN);
    if (c->count < 1)
        c->count = 1;
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[8192];
    while (fgets(line, sizeof(line), f)) {
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        char *v = colon + 1;
        while (*v == ' ')
            v++;
        v[strcspn(v, "\n")] = '\0';
        char *k = line;
        *colon = '\0';
        k[strcspn(k, "\t")] = '\0';
        if (!strcmp(k, "vendor_id") && !c->vendor[0])
            snprintf(c->vendor, sizeof(c->vendor), "%s", v);
        else if (!strcmp(k, "model name") && !c->modelname[0])
            snprintf(c->modelname, sizeof(c->modelname), "%s", v);
        else if (!strcmp(k, "flags") && !c->flags[0])
            snprintf(c->flags, sizeof(c->flags), "%s", v);
        else if (!strcmp(k, "cpu family") && !c->family[0])
            snprintf(c->family, sizeof(c->family), "%s", v);
        else if (!strcmp(k, "model") && !c->model[0])
            snprintf(c->model, sizeof(c->model), "%s", v);
        else if (!strcmp(k, "stepping") && !c->stepping[0])
            snprintf(c->stepping, sizeof(c->stepping), "%s", v);
        else if (!strcmp(k, "cpu MHz") && !c->mhz)
            c->mhz = atol(v);
    }
    fclose(f);
}

static long long
meminfo_bytes(const char *key)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return 0;
    char line[256];
    long long kb = 0;
    size_t n = strlen(key);
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, key, n) == 0 && line[n] == ':') {
            kb = atoll(line + n + 1);
            break;
        }
    fclose(f);
    return kb * 1024;
}

static void
primary_address(char *out, size_t len)
{
    snprintf(out, len, "127.0.0.1");
    struct ifaddrs *ifs = NULL;
    if (getifaddrs(&ifs) != 0)
        return;
    for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || (i->ifa_flags & IFF_LOOPBACK))
            continue;
        inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, out, (socklen_t)len);
        break;
    }
    freeifaddrs(ifs);
}

static void
read_sys(const char *nic, const char *what, char *out, size_t len)
{
    char path[256];
    snprintf(path, sizeof(path), "/sys/class/net/%s/%s", nic, what);
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    if (fgets(out, (int)len, f))
        out[strcspn(out, "\n")] = '\0';
    fclose(f);
}

/* ------------------------------------------------------------------ objects */

static bool
create_sm(struct db *db, const char *type, const char *label, const char *descr,
          struct xerr **errp)
{
    struct xapi_sm_record *sm = xapi_sm_record_new();
    if (!sm || !xstr_set(&sm->name_label, label) || !xstr_set(&sm->name_description, descr) ||
        !xstr_set(&sm->type, type) || !xstr_set(&sm->vendor, "Vessel") ||
        !xstr_set(&sm->copyright, "(C) the Vessel authors") || !xstr_set(&sm->version, VESSEL_VERSION) ||
        !xstr_set(&sm->required_api_version, "1.0") || !add(&sm->capabilities, "VDI_CREATE") ||
        !add(&sm->capabilities, "VDI_DELETE") || !add(&sm->capabilities, "VDI_SNAPSHOT") ||
        !add(&sm->capabilities, "VDI_CLONE") || !add(&sm->capabilities, "VDI_RESIZE") ||
        !add(&sm->capabilities, "SR_SCAN") || !put(&sm->configuration, "path", "directory")) {
        xapi_sm_record_free(sm);
        return xerr_nomem(errp);
    }
    return db_create(db, &xapi_class_sm, NULL, sm, NULL, errp);
}

static bool
create_host_cpus(struct db *db, const char *host, const struct cpu_facts *c, struct xerr **errp)
{
    for (long i = 0; i < c->count; i++) {
        struct xapi_host_cpu_record *cpu = xapi_host_cpu_record_new();
        if (!cpu || !xstr_set(&cpu->host, host) || !xstr_set(&cpu->vendor, c->vendor) ||
            !xstr_set(&cpu->modelname, c->modelname) || !xstr_set(&cpu->stepping, c->stepping) ||
            !xstr_set(&cpu->flags, c->flags) || !xstr_set(&cpu->features, "")) {
            xapi_host_cpu_record_free(cpu);
            return xerr_nomem(errp);
        }
        cpu->number = i;
        cpu->speed = c->mhz;
        cpu->family = atol(c->family);
        cpu->model = atol(c->model);
        if (!db_create(db, &xapi_class_host_cpu, NULL, cpu, NULL, errp))
            return false;
    }
    return true;
}

static bool
create_host_metrics(struct db *db, char **ref, struct xerr **errp)
{
    struct xapi_host_metrics_record *m = xapi_host_metrics_record_new();
    if (!m)
        return xerr_nomem(errp);
    m->memory_total = meminfo_bytes("MemTotal");
    m->memory_free = meminfo_bytes("MemAvailable");
    m->live = true;
    m->last_updated = time(NULL);
    return db_create(db, &xapi_class_host_metrics, NULL, m, ref, errp);
}

/* The machine's SMBIOS strings under xapi's keys (ocaml/xapi/bios_strings.ml,
 * which reads dmidecode; the kernel exports the same in /sys/class/dmi/id):
 * VM.copy_bios_strings gives them to a guest. */
static bool
fill_bios_strings(struct xapi_host_record *h)
{
    static const char *const keys[][2] = {
        {"bios-vendor", "bios_vendor"},
        {"bios-version", "bios_version"},
        {"system-manufacturer", "sys_vendor"},
        {"system-product-name", "product_name"},
        {"system-version", "product_version"},
        {"system-serial-number", "product_serial"},
        {"baseboard-manufacturer", "board_vendor"},
        {"baseboard-product-name", "board_name"},
        {"baseboard-version", "board_version"},
        {"baseboard-serial-number", "board_serial"},
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char path[128], v[256] = "";
        snprintf(path, sizeof(path), "/sys/class/dmi/id/%s", keys[i][1]);
        FILE *f = fopen(path, "r"); /* absent without SMBIOS: "" as dmidecode's */
        if (f) {
            if (fgets(v, (int)sizeof(v), f))
                v[strcspn(v, "\n")] = '\0';
            fclose(f);
        }
        if (!put(&h->bios_strings, keys[i][0], v))
            return false;
    }
    return put(&h->bios_strings, "hp-rombios", "");
}

static bool
fill_host(struct xapi_host_record *h, const struct cpu_facts *c, const char *hostname,
          const char *address)
{
    struct utsname u;
    uname(&u);
    char count[24], mhz[24];
    snprintf(count, sizeof(count), "%ld", c->count);
    snprintf(mhz, sizeof(mhz), "%ld", c->mhz);
    char date[32];
    time_t now = time(NULL);
    strftime(date, sizeof(date), "%Y-%m-%d", gmtime(&now));
    return xstr_set(&h->name_label, hostname) && xstr_set(&h->hostname, hostname) &&
           xstr_set(&h->address, address) && xstr_set(&h->API_version_vendor, "XenSource") &&
           xstr_set(&h->sched_policy, "credit") && xstr_set(&h->edition, "free") &&
           put(&h->software_version, "product_version", VESSEL_VERSION) &&
           put(&h->software_version, "product_version_text", VESSEL_VERSION) &&
           put(&h->software_version, "product_version_text_short", VESSEL_VERSION) &&
           put(&h->software_version, "platform_name", "Vessel") &&
           put(&h->software_version, "platform_version", "3.4.0") &&
           put(&h->software_version, "product_brand", "Vessel") &&
           put(&h->software_version, "build_number", VESSEL_VERSION) &&
           put(&h->software_version, "hostname", hostname) &&
           put(&h->software_version, "date", date) && put(&h->software_version, "xapi", "24.0") &&
           put(&h->software_version, "xapi_build", VESSEL_VERSION) &&
           put(&h->software_version, "linux", u.release) &&
           put(&h->software_version, "xencenter_min", "2.21") &&
           put(&h->software_version, "xencenter_max", "2.21") &&
           put(&h->software_version, "network_backend", "bridge") &&
           put(&h->software_version, "db_schema", "5.909") &&
           put(&h->cpu_info, "cpu_count", count) && put(&h->cpu_info, "socket_count", "1") &&
           put(&h->cpu_info, "vendor", c->vendor) && put(&h->cpu_info, "speed", mhz) &&
           put(&h->cpu_info, "modelname", c->modelname) && put(&h->cpu_info, "family", c->family) &&
           put(&h->cpu_info, "model", c->model) && put(&h->cpu_info, "stepping", c->stepping) &&
           put(&h->cpu_info, "flags", c->flags) && add(&h->capabilities, "hvm-3.0-x86_64") &&
           add(&h->capabilities, "hvm-3.0-x86_32") && add(&h->supported_bootloaders, "pygrub") &&
           add(&h->supported_bootloaders, "eliloader") && fill_bios_strings(h);
}

static bool
create_dom0(struct db *db, const char *host, const char *hostname, const struct cpu_facts *c,
            char **ref, struct xerr **errp)
{
    struct xapi_vm_record *vm = xapi_vm_record_new();
    char label[300];
    snprintf(label, sizeof(label), "Control domain on host: %s", hostname);
    if (!vm || !xstr_set(&vm->name_label, label) ||
        !xstr_set(&vm->name_description, "The domain which manages physical devices and manages other domains") ||
        !xstr_set(&vm->resident_on, host) || !xstr_set(&vm->affinity, host)) {
        xapi_vm_record_free(vm);
        return xerr_nomem(errp);
    }
    long long mem = meminfo_bytes("MemTotal");
    vm->is_control_domain = true;
    vm->power_state = XAPI_VM_POWER_STATE_RUNNING;
    vm->domid = 0;
    vm->memory_static_max = vm->memory_dynamic_max = vm->memory_dynamic_min =
        vm->memory_static_min = vm->memory_target = mem;
    vm->VCPUs_max = vm->VCPUs_at_startup = c->count;
    vm->user_version = 1;
    vm->domain_type = XAPI_DOMAIN_TYPE_PV;
    vm->actions_after_shutdown = XAPI_ON_NORMAL_EXIT_DESTROY;
    vm->actions_after_reboot = XAPI_ON_NORMAL_EXIT_DESTROY;
    vm->actions_after_crash = XAPI_ON_CRASH_BEHAVIOUR_DESTROY;
    char *metrics = NULL;
    if (!vm_ops_refresh(vm) || !vm_metrics_create(db, vm, &metrics, errp)) {
        xapi_vm_record_free(vm);
        return errp && *errp ? false : xerr_nomem(errp);
    }
    free(vm->metrics);
    vm->metrics = metrics;
    return db_create(db, &xapi_class_vm, NULL, vm, ref, errp);
}

static bool
create_template(struct db *db, const char *label, const char *descr, bool direct_boot,
                struct xerr **errp)
{
    struct xapi_vm_record *vm = xapi_vm_record_new();
    if (!vm || !xstr_set(&vm->name_label, label) || !xstr_set(&vm->name_description, descr)) {
        xapi_vm_record_free(vm);
        return xerr_nomem(errp);
    }
    vm->is_a_template = true;
    vm->is_default_template = true;
    vm->domid = -1;
    vm->user_version = 1;
    vm->memory_static_max = vm->memory_dynamic_max = 256ll << 20;
    vm->memory_static_min = vm->memory_dynamic_min = 128ll << 20;
    vm->VCPUs_max = vm->VCPUs_at_startup = 1;
    vm->actions_after_shutdown = XAPI_ON_NORMAL_EXIT_DESTROY;
    vm->actions_after_reboot = XAPI_ON_NORMAL_EXIT_RESTART;
    vm->actions_after_crash = XAPI_ON_CRASH_BEHAVIOUR_RESTART;
    bool ok;
    if (direct_boot) {
        vm->domain_type = XAPI_DOMAIN_TYPE_PVH;
        ok = xstr_set(&vm->PV_args, "console=ttyS0") &&
             put(&vm->platform, "machine", "pc") && put(&vm->platform, "acpi", "1") &&
             put(&vm->other_config, "default_template", "true") &&
             put(&vm->other_config, "disks",
                 "<provision><disk device=\"0\" size=\"1073741824\" sr=\"\" bootable=\"true\" "
                 "type=\"system\"/></provision>");
    } else {
        vm->domain_type = XAPI_DOMAIN_TYPE_HVM;
        ok = xstr_set(&vm->HVM_boot_policy, "BIOS order") && put(&vm->HVM_boot_params, "order", "cd") &&
             put(&vm->platform, "machine", "q35") && put(&vm->platform, "acpi", "1") &&
             put(&vm->platform, "apic", "true") &&
             put(&vm->other_config, "default_template", "true") &&
             put(&vm->other_config, "install-methods", "cdrom") &&
             put(&vm->other_config, "disks",
                 "<provision><disk device=\"0\" size=\"8589934592\" sr=\"\" bootable=\"true\" "
                 "type=\"system\"/></provision>");
    }
    if (!ok || !vm_ops_refresh(vm)) {
        xapi_vm_record_free(vm);
        return xerr_nomem(errp);
    }
    return db_create(db, &xapi_class_vm, NULL, vm, NULL, errp);
}

struct bridge_find {
    const char *bridge;
    char *ref;
};

static bool
bridge_find_one(void *opaque, const char *ref, const void *rec)
{
    struct bridge_find *f = opaque;
    const struct xapi_network_record *n = rec;
    if (strcmp(n->bridge, f->bridge) != 0)
        return true;
    f->ref = strdup(ref);
    return false;
}

/* The pool's network on @bridge (a new reference), or NULL. */
static char *
network_by_bridge(struct db *db, const char *bridge)
{
    struct bridge_find f = {bridge, NULL};
    db_foreach(db, &xapi_class_network, bridge_find_one, &f);
    return f.ref;
}

static bool
create_networks(struct db *db, const char *host, struct xerr **errp)
{
    DIR *d = opendir("/sys/class/net");
    unsigned n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char path[320], mac[64], mtu[16], carrier[8];
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "/sys/class/net/%s/device", e->d_name);
        if (access(path, F_OK) != 0)
            continue; /* not a physical NIC (lo, bridges, taps, veths) */
        read_sys(e->d_name, "address", mac, sizeof(mac));
        read_sys(e->d_name, "mtu", mtu, sizeof(mtu));
        read_sys(e->d_name, "carrier", carrier, sizeof(carrier));
        char label[320], bridge[64];
        snprintf(label, sizeof(label), "Pool-wide network associated with %s", e->d_name);
        snprintf(bridge, sizeof(bridge), "xenbr%u", n);
        long net_mtu = atol(mtu) > 0 ? atol(mtu) : 1500;
        /* A pool's hosts share a network per bridge name, as xapi's join does. */
        char *net_ref = network_by_bridge(db, bridge), *metrics_ref = NULL;
        struct xapi_network_record *net = net_ref ? NULL : xapi_network_record_new();
        if (!net_ref && (!net || !xstr_set(&net->name_label, label) ||
                         !xstr_set(&net->bridge, bridge))) {
            xapi_network_record_free(net);
            closedir(d);
            return xerr_nomem(errp);
        }
        if (net)
            net->MTU = net_mtu;
        struct xapi_pif_metrics_record *pm = xapi_pif_metrics_record_new();
        if (pm) {
            pm->carrier = carrier[0] == '1';
            pm->last_updated = time(NULL);
        }
        struct xapi_pif_record *pif = xapi_pif_record_new();
        bool ok = (net_ref || db_create(db, &xapi_class_network, NULL, net, &net_ref, errp)) &&
                  pm && db_create(db, &xapi_class_pif_metrics, NULL, pm, &metrics_ref, errp);
        if (!ok || !pif || !xstr_set(&pif->device, e->d_name) || !xstr_set(&pif->MAC, mac) ||
            !xstr_set(&pif->network, net_ref) || !xstr_set(&pif->host, host) ||
            !xstr_set(&pif->metrics, metrics_ref)) {
            if (ok)
                xerr_nomem(errp);
            else if (!pm)
                xerr_nomem(errp);
            xapi_pif_record_free(pif);
            free(net_ref);
            free(metrics_ref);
            closedir(d);
            return false;
        }
        pif->MTU = net_mtu;
        pif->VLAN = -1;
        pif->physical = true;
        pif->currently_attached = carrier[0] == '1';
        pif->managed = true;
        free(net_ref);
        free(metrics_ref);
        if (!db_create(db, &xapi_class_pif, NULL, pif, NULL, errp)) {
            closedir(d);
            return false;
        }
        n++;
    }
    if (d)
        closedir(d);
    if (n > 0)
        return true;
    /* No physical NIC (a container, a test namespace): one host-internal network
     * (one per pool). */
    char *internal = network_by_bridge(db, "xenapi");
    if (internal) {
        free(internal);
        return true;
    }
    struct xapi_network_record *net = xapi_network_record_new();
    if (!net || !xstr_set(&net->name_label, "Host internal management network") ||
        !xstr_set(&net->bridge, "xenapi") ||
        !put(&net->other_config, "is_host_internal_management_network", "true")) {
        xapi_network_record_free(net);
        return xerr_nomem(errp);
    }
    net->MTU = 1500;
    return db_create(db, &xapi_class_network, NULL, net, NULL, errp);
}

/* ------------------------------------------------------------------ entry */

struct first_ref {
    char *ref;
};

static bool
take_first(void *opaque, const char *ref, const void *rec)
{
    struct first_ref *f = opaque;
    (void)rec;
    f->ref = strdup(ref);
    return false;
}

/* This host's own objects, with @uuid: its metrics, record, CPUs, control
 * domain, and a PIF per NIC on the pool's network of that bridge. */
static bool
create_host(struct db *db, const char *host_ref, const char *uuid, const struct cpu_facts *cpu,
            struct xerr **errp)
{
    char hostname[256] = "localhost", address[64];
    gethostname(hostname, sizeof(hostname) - 1);
    primary_address(address, sizeof(address));
    char *metrics = NULL, *dom0 = NULL;
    struct xapi_host_record *h = xapi_host_record_new();
    if (!h)
        return xerr_nomem(errp);
    bool ok = create_host_metrics(db, &metrics, errp);
    if (ok && (!fill_host(h, cpu, hostname, address) || !xstr_set(&h->metrics, metrics) ||
               !xstr_set(&h->uuid, uuid)))
        ok = xerr_nomem(errp);
    if (ok) {
        h->API_version_major = 2;
        h->API_version_minor = 21;
        h->enabled = true;
        ok = db_create(db, &xapi_class_host, host_ref, h, NULL, errp);
        h = NULL;
    }
    ok = ok && create_host_cpus(db, host_ref, cpu, errp) &&
         create_dom0(db, host_ref, hostname, cpu, &dom0, errp) &&
         db_set_field(db, &xapi_class_host, host_ref,
                      xclass_field(&xapi_class_host, "control_domain"), &dom0, errp) &&
         create_networks(db, host_ref, errp);
    xapi_host_record_free(h);
    free(metrics);
    free(dom0);
    return ok;
}

/* A new store: the pool with this host as its master, the roles, the SM
 * drivers and the built-in templates. */
static bool
create_pool(struct db *db, const char *host_ref, const struct cpu_facts *cpu, struct xerr **errp)
{
    struct xapi_pool_record *pool = xapi_pool_record_new();
    if (!pool)
        return xerr_nomem(errp);
    char count[24];
    snprintf(count, sizeof(count), "%ld", cpu->count);
    bool ok = role_bootstrap(db, errp) &&
              create_sm(db, "ext", "Local EXT3 VHD", "SR plugin representing disks as VHD files stored on a local path", errp) &&
              create_sm(db, "file", "Local Path VHD", "SR plugin representing disks as VHD files stored on a local or shared path", errp);
    if (ok && (!xstr_set(&pool->master, host_ref) || !put(&pool->cpu_info, "cpu_count", count) ||
               !put(&pool->cpu_info, "socket_count", "1") ||
               !put(&pool->cpu_info, "vendor", cpu->vendor)))
        ok = xerr_nomem(errp);
    if (ok) {
        ok = db_create(db, &xapi_class_pool, NULL, pool, NULL, errp);
        pool = NULL;
    }
    ok = ok &&
         create_template(db, "Direct kernel boot",
                         "A guest booted from a kernel, initrd and command line on the host "
                         "(PV_kernel, PV_ramdisk, PV_args)",
                         true, errp) &&
         create_template(db, "Other install media",
                         "A guest installed from a CD image with firmware boot", false, errp);
    xapi_pool_record_free(pool);
    return ok;
}

/* Which host of the store this one is: the inventory's uuid, else (a data
 * directory from before the inventory: one host) the pool's master. NULL when
 * the inventory names a host the store does not have yet. */
static char *
find_own_host(struct server *srv, const char *uuid, const char *pool_ref, struct xerr **errp)
{
    char *ref = NULL;
    if (uuid[0]) {
        struct xerr *miss = NULL;
        if (db_ref_by_uuid(srv->db, &xapi_class_host, uuid, &ref, &miss))
            return ref;
        xerr_free(miss);
        return NULL;
    }
    struct xapi_pool_record *p = NULL;
    if (!db_get(srv->db, &xapi_class_pool, pool_ref, (void **)&p, errp))
        return NULL;
    ref = strdup(p->master);
    xapi_pool_record_free(p);
    return ref;
}

bool
bootstrap_run(struct server *srv, bool member, struct xerr **errp)
{
    char uuid[37] = "";
    int rc = inventory_read(srv->data_dir, uuid);
    if (rc < 0 && rc != -ENOENT)
        return xerr_internal(errp, "%s/inventory names no host uuid (INSTALLATION_UUID=)",
                             srv->data_dir);
    struct first_ref pool = {NULL};
    db_foreach(srv->db, &xapi_class_pool, take_first, &pool);
    if (!pool.ref && member)
        return xerr_internal(errp, "the store has no pool yet: start its first vesseld without "
                                   "--pool-member");
    struct cpu_facts cpu;
    read_cpu_facts(&cpu);
    if (!uuid[0] && (member || !pool.ref))
        db_uuid_generate(uuid);
    char *host_ref = pool.ref ? find_own_host(srv, uuid, pool.ref, errp) : NULL;
    if (errp && *errp) {
        free(pool.ref);
        return false;
    }
    if (!host_ref) {
        /* A new store, or a host new to its pool: one batch, so that a crash
         * half way leaves nothing and the next start begins again. */
        if (!(host_ref = db_new_ref())) {
            free(pool.ref);
            return xerr_nomem(errp);
        }
        db_batch_begin(srv->db);
        bool ok = create_host(srv->db, host_ref, uuid, &cpu, errp) &&
                  (pool.ref || create_pool(srv->db, host_ref, &cpu, errp));
        if (!db_batch_end(srv->db, ok, errp)) {
            free(host_ref);
            free(pool.ref);
            return false;
        }
        log_info("bootstrap.first_start", "objects=created host_uuid=%s pool=%s", uuid,
                 pool.ref ? "joined" : "new");
        if (!pool.ref)
            db_foreach(srv->db, &xapi_class_pool, take_first, &pool);
    }
    srv->pool_ref = pool.ref;
    srv->host_ref = host_ref;
    if (!pool.ref)
        return xerr_internal(errp, "no pool after first start");
    if (!uuid[0]) { /* the host of a data directory from before the inventory */
        struct xapi_host_record *h = NULL;
        if (!db_get(srv->db, &xapi_class_host, host_ref, (void **)&h, errp))
            return false;
        snprintf(uuid, sizeof(uuid), "%s", h->uuid);
        xapi_host_record_free(h);
    }
    if ((rc = inventory_write(srv->data_dir, uuid)) < 0)
        return xerr_internal(errp, "cannot write %s/inventory: %s", srv->data_dir, strerror(-rc));
    /* Roles and permissions are fixed by the build: a store from another
     * version is brought to this one's. */
    db_batch_begin(srv->db);
    if (!db_batch_end(srv->db, role_bootstrap(srv->db, errp), errp))
        return false;
    /* The local SR (idempotent): made on first start, found again later;
     * then a PBD for each shared SR this host has none of yet. */
    if (!sr_bootstrap_local(srv, errp))
        return false;
    sr_bootstrap_shared(srv);
    return true;
}
