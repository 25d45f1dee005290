/* xenops/cgroup.c - one cgroup v2 group per domain, with the VM's limits.
 *
 * <cgroup_root>/vessel.slice/vm-<uuid>/ holds one domain's qemu (it joins
 * before it execs, xenops/qemu.c) and carries the limits its VM implies:
 * cpu.weight from VCPUs_params:weight, cpu.max from VCPUs_params:cap (xapi's
 * meaning: percent of one physical CPU, 0 = no cap), memory.max from the
 * guest's memory plus the device model's own. Like libvirt's machine groups,
 * but without systemd: vesseld writes cgroupfs itself.
 * Degrades, never fails a start: no cgroup v2 at the root (a v1 or hybrid
 * host), a root not writable, a controller not enabled (cgroup.controllers
 * lacks it): a warning, and the domain runs without that limit.
 * Facts: Linux Documentation/admin-guide/cgroup-v2.rst (cpu.weight 1..10000
 * default 100; cpu.max "$MAX $PERIOD"; memory.max; "no internal process"
 * rule: vessel.slice itself holds no process); statfs(2) CGROUP2_SUPER_MAGIC;
 * xapi's VCPUs_params (weight 1..65535 default 256, cap in % of a CPU) as Xen's
 * credit scheduler defines them (xl-sched-credit(1)).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>

#include "common/log.h"
#include "xenops/xenops_int.h"

#define SLICE "vessel.slice"

void
xenops_cgroup_limits(const struct xenops_domain_config *cfg, const char *accel,
                     unsigned *cpu_weight, char *cpu_max, size_t cpu_max_len,
                     uint64_t *memory_max)
{
    uint64_t w = cfg->cpu_weight ? cfg->cpu_weight : 256;
    w = (w * 100 + 128) / 256; /* xapi's default 256 is cgroup's default 100 */
    *cpu_weight = (unsigned)(w < 1 ? 1 : w > 10000 ? 10000 : w);
    unsigned cap = cfg->cpu_cap > 100000 ? 100000 : cfg->cpu_cap;
    if (cap)
        snprintf(cpu_max, cpu_max_len, "%u 100000", cap * 1000);
    else
        snprintf(cpu_max, cpu_max_len, "max 100000");
    *memory_max = cfg->memory_bytes + XENOPS_QEMU_OVERHEAD_BYTES + cfg->memory_bytes / 16 +
                  (accel && !strcmp(accel, "tcg") ? XENOPS_TCG_CACHE_BYTES : 0);
}

static int
write_text(const char *dir, const char *name, const char *text)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t len = strlen(text);
    int rc = write(fd, text, len) == (ssize_t)len ? 0 : -errno;
    close(fd);
    return rc;
}

/* Enables @ctl for the children of @dir when @dir offers it. */
static void
enable_controller(const char *dir, const char *ctl)
{
    char path[4200], have[512] = "";
    snprintf(path, sizeof(path), "%s/cgroup.controllers", dir);
    FILE *f = fopen(path, "re");
    if (f) {
        if (!fgets(have, sizeof(have), f))
            have[0] = '\0';
        fclose(f);
    }
    bool offered = false;
    for (char *save = NULL, *w = strtok_r(have, " \n", &save); w; w = strtok_r(NULL, " \n", &save))
        offered |= !strcmp(w, ctl);
    char plus[32];
    snprintf(plus, sizeof(plus), "+%s", ctl);
    int rc = offered ? write_text(dir, "cgroup.subtree_control", plus) : -ENOENT;
    if (rc < 0)
        log_warn_errno(-rc, "xenops.cgroup_controller", "dir=%s controller=%s: no %s limits",
                       dir, ctl, ctl);
}

void
xenops_cgroup_probe(struct xenops *x)
{
    if (!x->cgroup_root)
        return;
    struct statfs sf;
    char slice[4200];
    snprintf(slice, sizeof(slice), "%s/" SLICE, x->cgroup_root);
    const char *why = NULL;
    if (statfs(x->cgroup_root, &sf) != 0 || sf.f_type != CGROUP2_SUPER_MAGIC)
        why = "not a cgroup v2 mount";
    else if (mkdir(slice, 0755) < 0 && errno != EEXIST)
        why = strerror(errno);
    if (why) {
        log_warn("xenops.cgroup_unavailable", "root=%s reason=\"%s\": guests run without "
                 "per-VM cgroups", x->cgroup_root, why);
        free(x->cgroup_root);
        x->cgroup_root = NULL;
        return;
    }
    enable_controller(x->cgroup_root, "cpu");
    enable_controller(x->cgroup_root, "memory");
    enable_controller(slice, "cpu");
    enable_controller(slice, "memory");
}

void
xenops_cgroup_create(struct xenops *x, const struct xenops_domain_config *cfg, const char *accel,
                     char *path, size_t len)
{
    xenops_cgroup_create_named(x, cfg, cfg->uuid, accel, path, len);
}

void
xenops_cgroup_rename(struct xenops *x, const char *from, const char *to)
{
    if (!x->cgroup_root)
        return;
    char a[4200], b[4200];
    snprintf(a, sizeof(a), "%s/" SLICE "/vm-%s", x->cgroup_root, from);
    snprintf(b, sizeof(b), "%s/" SLICE "/vm-%s", x->cgroup_root, to);
    /* cgroup v2 renames a group within its parent (cgroup-v2.rst) */
    if (rename(a, b) < 0 && errno != ENOENT)
        log_warn_errno(errno, "xenops.cgroup_rename", "from=%s to=%s", a, b);
}

void
xenops_cgroup_create_named(struct xenops *x, const struct xenops_domain_config *cfg,
                           const char *name, const char *accel, char *path, size_t len)
{
    path[0] = '\0';
    if (!x->cgroup_root)
        return;
    char dir[4200];
    snprintf(dir, sizeof(dir), "%s/" SLICE "/vm-%s", x->cgroup_root, name);
    /* EEXIST: left by a crash of ours, empty since its qemu is gone */
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        log_warn_errno(errno, "xenops.cgroup_create", "vm=%s dir=%s", cfg->uuid, dir);
        return;
    }
    unsigned weight;
    char cpu_max[32], text[32];
    uint64_t mem;
    xenops_cgroup_limits(cfg, accel, &weight, cpu_max, sizeof(cpu_max), &mem);
    snprintf(text, sizeof(text), "%u", weight);
    int rw = write_text(dir, "cpu.weight", text);
    int rc = write_text(dir, "cpu.max", cpu_max);
    snprintf(text, sizeof(text), "%" PRIu64, mem);
    int rm = write_text(dir, "memory.max", text);
    if (rw < 0 || rc < 0 || rm < 0)
        log_warn("xenops.cgroup_limits", "vm=%s cpu.weight=%s cpu.max=%s memory.max=%s", cfg->uuid,
                 rw < 0 ? "unset" : "set", rc < 0 ? "unset" : "set", rm < 0 ? "unset" : "set");
    snprintf(path, len, "%s", dir);
}

void
xenops_cgroup_remove(struct xenops *x, const char *uuid)
{
    if (!x->cgroup_root)
        return;
    char dir[4200];
    snprintf(dir, sizeof(dir), "%s/" SLICE "/vm-%s", x->cgroup_root, uuid);
    /* the exited qemu leaves the group once it is reaped, which its reaper
     * (init: qemu is detached) does a moment after the pidfd fired */
    for (int i = 0; i < 200; i++) {
        if (rmdir(dir) == 0 || errno == ENOENT)
            return;
        if (errno != EBUSY)
            break;
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    log_warn_errno(errno, "xenops.cgroup_remove", "vm=%s dir=%s", uuid, dir);
}
