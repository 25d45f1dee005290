/* xenops/xenops.h - the domain manager: run guests through a backend.
 *
 * A struct xenops is one backend instance ("qemu": one qemu-system-x86_64 per
 * domain; "sim": in memory). It knows nothing of the XenAPI: api/ turns a VM
 * record into a struct xenops_domain_config, calls these functions, and turns
 * the -errno they return into XenAPI errors. Domains are named by their uuid.
 *
 * Threads: every function may be called from any thread, concurrently; calls
 * on one domain are serialised inside. The event callback runs on a backend
 * thread (never on the caller's), must not block for long, and may call back
 * into this API except xenops_free().
 *
 * Errors (all functions returning int): 0, or -errno:
 *   -ENOENT   no such running domain;        -EEXIST  the uuid already runs;
 *   -EINVAL   a bad config or argument;      -EBUSY   wrong state for the call
 *                                                     (e.g. unpause a running one);
 *   -ETIMEDOUT the guest did not comply in time (clean shutdown/reboot);
 *   -EIO      the device model misbehaved (QMP error, died during the call);
 *   others from the system (spawn, files).
 */
#ifndef VESSEL_XENOPS_XENOPS_H
#define VESSEL_XENOPS_XENOPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- domain description ---- */

enum xenops_machine { XENOPS_MACHINE_MICROVM, XENOPS_MACHINE_PC, XENOPS_MACHINE_Q35 };
enum xenops_boot { XENOPS_BOOT_DIRECT, XENOPS_BOOT_FIRMWARE };
enum xenops_accel { XENOPS_ACCEL_AUTO, XENOPS_ACCEL_KVM, XENOPS_ACCEL_TCG };
enum xenops_disk_format { XENOPS_DISK_RAW, XENOPS_DISK_NBD };
/* What happens after a guest powers off / reboots / crashes (xapi's
 * actions_after_*): DESTROY leaves it halted, RESTART starts it again,
 * PRESERVE keeps a crashed domain paused for inspection (crash only). */
enum xenops_action { XENOPS_ACTION_DESTROY, XENOPS_ACTION_RESTART, XENOPS_ACTION_PRESERVE };

struct xenops_disk {
    char *path;     /* RAW: a file or block device; NBD: the server's unix socket */
    char *export_name; /* NBD only, may be NULL */
    enum xenops_disk_format format;
    bool read_only;
    bool cdrom;     /* an IDE/SATA CD-ROM (implies read-only); else virtio-blk */
    /* virtio-blk's logical geometry; 0: QEMU guesses it from the disk's first
     * sector when the device is made. A migration's destination is given its
     * source's (xenops_disk_geometry): the same guest-visible device, and no
     * read of a disk its source still owns. Not part of the JSON form. */
    unsigned cyls, heads, secs;
};

/* A NIC: a tap the caller made (and put on a bridge), given to a virtio-net
 * device with the guest's MAC. The tap's name (unique on the host) also names
 * the NIC inside qemu: netdev "net-<tap>", device "nic-<tap>", so a NIC
 * hotplugged later, or one found again by xenops_recover(), is addressed the
 * same way as one given at start. */
struct xenops_nic {
    char *tap;     /* the host tap device's name */
    char *mac;     /* "aa:bb:cc:dd:ee:ff" */
    unsigned port; /* q35: 1 + the index of the hotplug port it sits on; 0: not
                      chosen (the backend takes the first free one; with none
                      free it goes on pcie.0 and cannot be unplugged) */
    unsigned qemu_fd; /* the tap as a descriptor qemu was given (the qemu
                         backend's, not in the JSON config); 0: qemu opens
                         the tap by its name */
};

/* The first this many NICs of a domain get their taps as descriptors. */
#define XENOPS_NIC_FDS 16

/* A q35 domain has this many hotplug ports (pcie-root-port "vport0".. with
 * no I/O window: virtio devices on PCIe need none), one per NIC. */
#define XENOPS_Q35_PORTS 8

struct xenops_domain_config {
    char *uuid;          /* required, 36 chars */
    char *name;          /* may be NULL */
    uint64_t memory_bytes; /* multiple of 1 MiB */
    unsigned vcpus;
    enum xenops_boot boot;
    enum xenops_machine machine;  /* FIRMWARE boot requires PC or Q35 */
    bool no_acpi;        /* microvm only: without ACPI (no power button, and a
                            stock kernel finds no virtio-mmio device) */
    unsigned vcpus_max;  /* vCPUs it may grow to (pc/q35 hotplug); 0 = vcpus */
    char *kernel, *initrd, *cmdline;  /* DIRECT boot; initrd and cmdline may be NULL */
    char *boot_order;    /* FIRMWARE boot: e.g. "cd"; NULL = "cd" */
    struct xenops_disk *disks;
    size_t n_disks;
    struct xenops_nic *nics;
    size_t n_nics;
    enum xenops_accel accel;
    bool start_paused;
    enum xenops_action on_poweroff, on_reboot, on_crash;
    /* sim only, a test aid: the guest ignores clean shutdown and reboot, so
     * they wait their whole timeout (as a guest without ACPI support would).
     * Not part of the JSON form. */
    bool sim_ignore_shutdown;
    /* qemu backend: the device model's own uid and gid (0: as the caller);
     * the caller hands out ids no other process uses (api/domains.c) */
    uid_t uid;
    gid_t gid;
    /* xapi's VCPUs_params: weight (Xen credit scheduler, 1..65535, 256 the
     * default; 0 = default) and cap (% of one CPU, 0 = none): the domain's
     * cgroup gets cpu.weight and cpu.max from them (xenops/cgroup.c) */
    unsigned cpu_weight, cpu_cap;
};

/* Frees every string and the disk array, then @cfg itself. NULL is a no-op. */
void xenops_config_free(struct xenops_domain_config *cfg);
void xenops_config_freep(struct xenops_domain_config **cfg);
/* A deep copy, or NULL on ENOMEM. Free with xenops_config_free(). */
struct xenops_domain_config *xenops_config_copy(const struct xenops_domain_config *cfg);
/* On q35, gives each NIC without a port the first free one (see struct
 * xenops_nic); a no-op for other machines. */
void xenops_config_assign_ports(struct xenops_domain_config *cfg);
/* 0 when @cfg can be started; else -EINVAL and a static reason in *why. */
int xenops_config_check(const struct xenops_domain_config *cfg, const char **why);
/* JSON form (the run dir's config.json, and the argv golden tests):
 * {"uuid":..,"name":..,"memory_bytes":..,"vcpus":..,"boot":"direct|firmware",
 *  "machine":"microvm|pc|q35","kernel":..,"initrd":..,"cmdline":..,"boot_order":..,
 *  "disks":[{"path":..,"format":"raw|nbd","export":..,"read_only":b,"cdrom":b}],
 *  "nics":[{"tap":..,"mac":..,"port":n}]   (port optional, 0..XENOPS_Q35_PORTS),
 *  "accel":"auto|kvm|tcg","start_paused":b,
 *  "on_poweroff"/"on_reboot"/"on_crash":"destroy|restart|preserve",
 *  "uid":n,"gid":n,"cpu_weight":n,"cpu_cap":n,"vcpus_max":n,"no_acpi":b}
 *  (the last six optional: 0, false).
 * Parse: 0 and *out (free with xenops_config_free), or -EINVAL. Unparse: a
 * malloc'd string or NULL on ENOMEM. */
int xenops_config_from_json(const char *json, struct xenops_domain_config **out);
char *xenops_config_to_json(const struct xenops_domain_config *cfg);

/* ---- events ---- */

enum xenops_event {
    XENOPS_EVENT_HALTED,    /* no longer running: guest poweroff or hard shutdown */
    XENOPS_EVENT_REBOOTED,  /* guest reboot or hard/clean reboot; running again */
    XENOPS_EVENT_CRASHED,   /* device model died or guest panicked; on_crash applied
                               after this event (a RESTART is followed by REBOOTED,
                               DESTROY by HALTED, PRESERVE by PAUSED) */
    XENOPS_EVENT_PAUSED,
    XENOPS_EVENT_RESUMED,
    XENOPS_EVENT_SUSPENDED, /* its memory is in the suspend file; no longer running */
    XENOPS_EVENT_AGENT,     /* the guest opened or closed its agent's port */
};
const char *xenops_event_name(enum xenops_event ev); /* "halted", ... */

/* Called on a backend thread; @uuid is valid during the call only. */
typedef void xenops_event_fn(void *opaque, const char *uuid, enum xenops_event ev);

/* ---- the instance ---- */

struct xenops_init {
    const char *backend;  /* "qemu" or "sim" */
    const char *run_dir;  /* qemu: one subdirectory per domain (pid, QMP, console,
                             VNC sockets, config.json); created 0700 if missing */
    const char *log_dir;  /* qemu: console logs <uuid>.log (+ .log.1 rotated);
                             NULL = run_dir */
    size_t log_max_bytes; /* rotate a console log past this; 0 = 1 MiB */
    const char *cgroup_root; /* qemu: a cgroup v2 mount; each domain gets a group
                                under <root>/vessel.slice/ (xenops/cgroup.c);
                                NULL or not cgroup v2: none, with a warning */
    const char *qemu_binary; /* NULL = "qemu-system-x86_64" from PATH */
    unsigned sim_delay_ms;   /* sim: power transitions complete after this delay */
    xenops_event_fn *on_event;
    void *opaque;
};

struct xenops;

/* A new instance in *out (free with xenops_free). Finds no domains by itself:
 * call xenops_recover() to adopt ones left running by an earlier instance. */
int xenops_new(const struct xenops_init *init, struct xenops **out);
/* Stops supervising and frees; running domains keep running (a later
 * xenops_recover() adopts them). No event is delivered after it returns.
 * Must not race other calls on @x. */
void xenops_free(struct xenops *x);
const char *xenops_backend_name(const struct xenops *x);

/* Adopts every domain left running in the run dir (qemu: its pid file names a
 * live qemu whose QMP answers); cleans up after dead ones. *uuids (may be NULL)
 * receives a malloc'd array of malloc'd uuid strings of the live ones, freed
 * with xenops_strv_free(); *n their count. */
int xenops_recover(struct xenops *x, char ***uuids, size_t *n);
void xenops_strv_free(char **v, size_t n);

/* ---- lifecycle (xenops_domain_*) ---- */

/* Builds and starts a domain (paused if cfg->start_paused). Returns when it
 * runs (or is paused); -EEXIST if the uuid runs already. @cfg is copied. */
int xenops_domain_start(struct xenops *x, const struct xenops_domain_config *cfg);
int xenops_domain_pause(struct xenops *x, const char *uuid);
int xenops_domain_unpause(struct xenops *x, const char *uuid);
/* Clean: asks the guest through standard channels only, never its console:
 * the guest agent's guest-shutdown when an agent answers, else the ACPI
 * power button (pc, q35, microvm with ACPI); -ENOTSUP when the domain has
 * neither (microvm with acpi off). Waits up to @timeout_ms for it to halt:
 * -ETIMEDOUT if not, the guest keeps running. Hard: the domain is destroyed
 * (the device model gets SIGKILL) and the call returns once it is gone. Both
 * emit HALTED and ignore on_poweroff. */
int xenops_domain_shutdown(struct xenops *x, const char *uuid, bool hard, unsigned timeout_ms);
/* A hard shutdown that lets the caller act while the domain goes, on the
 * caller's thread, @step(@opaque, ...) at two points:
 *  - XENOPS_DESTROYED: the device model got SIGKILL, so the guest runs no
 *    more, though its exit has not shown yet; its disks may be torn down
 *    meanwhile;
 *  - XENOPS_EXITED: the device model has exited (it holds no memory, device
 *    or socket any more), while the backend's own clean-up and the HALTED
 *    event may still be under way; the records may say halted there.
 * Then, as a hard xenops_domain_shutdown, the call returns once the domain is
 * gone and HALTED is out. Neither step is called when the destruction
 * failed, EXITED not when the exit did not show in time. @step may be NULL.
 * -ENOENT: no such domain; -ENOTSUP: the backend has no such split (use
 * xenops_domain_shutdown). */
enum xenops_destroy_step { XENOPS_DESTROYED, XENOPS_EXITED };
typedef void xenops_destroy_fn(void *opaque, enum xenops_destroy_step step);
int xenops_domain_destroy(struct xenops *x, const char *uuid, xenops_destroy_fn *step,
                          void *opaque);
/* The destruction's first half alone: the device model gets SIGKILL and the
 * call returns at once (a few microseconds: it may be made under a lock). A
 * destroy of the domain afterwards waits for its exit as usual. -ENOENT: no
 * such domain; -ENOTSUP: the backend has no such split. */
int xenops_domain_kill(struct xenops *x, const char *uuid);
/* Clean: the guest agent's guest-shutdown mode=reboot, waiting up to
 * @timeout_ms for the guest to reset (-ETIMEDOUT if it does not); -ENOTSUP
 * when no agent answers (ACPI has no reboot button: xapi refuses a clean
 * reboot to a guest without the feature). Hard: a system reset. Both emit
 * REBOOTED when on_reboot is RESTART; with DESTROY, qemu follows its reboot
 * action and the domain halts (HALTED). */
int xenops_domain_reboot(struct xenops *x, const char *uuid, bool hard, unsigned timeout_ms);
/* Ends every clean shutdown or reboot of domain @uuid waiting for its guest
 * now: they return -ECANCELED and the guest is left as it is (a hard
 * shutdown that overrides them, task.cancel). -ENOENT: no such domain. */
int xenops_domain_cancel_waits(struct xenops *x, const char *uuid);
/* Pauses, writes the domain's state to @path (created 0600), stops it: emits
 * SUSPENDED. */
int xenops_domain_suspend(struct xenops *x, const char *uuid, const char *path);
/* Starts @cfg from the state in @path (as written by suspend); running
 * afterwards unless cfg->start_paused. Emits RESUMED. */
int xenops_domain_resume(struct xenops *x, const struct xenops_domain_config *cfg,
                         const char *path);

/* ---- live migration ---- */

/* QEMU's migration stream runs over TCP inside TLS (QEMU's tls-creds-x509,
 * docs "TLS setup for network services"), both ends presenting a
 * certificate and verifying the other's. Files are PEM, read by the caller's
 * process and copied for qemu (whose uid cannot read them in place). */
struct xenops_tls {
    const char *ca_path;   /* the certificates a peer's must be or chain to */
    const char *cert_path; /* this host's certificate */
    const char *key_path;  /* its private key */
};

/* A running migration as QEMU's query-migrate reports it. */
struct xenops_migrate_progress {
    const char *status;      /* "setup", "active", "device", "completed"... */
    uint64_t ram_total, ram_transferred, ram_remaining; /* bytes */
    uint64_t passes;         /* dirty-sync-count: passes over guest memory */
};
/* Called on the caller's thread about every 50 ms while a migration runs. */
typedef void xenops_migrate_fn(void *opaque, const struct xenops_migrate_progress *p);
/* A completed migration, from query-migrate on the source. */
struct xenops_migrate_stats {
    uint64_t total_ms;     /* total-time */
    uint64_t downtime_ms;  /* downtime: the guest stopped on the source until
                              the stream's end was sent */
    uint64_t transferred;  /* ram transferred, bytes */
    uint64_t paused_at_ms; /* when the guest stopped on the source
                              (xenops_now_ms's clock): the start of what
                              the guest sees as the migration's pause */
};

/* The destination half. Starts @cfg's device model waiting for a migration
 * (qemu -incoming defer, -S): paused, its disks' images inactive until it is
 * continued (late-block-activate: QEMU reads or writes nothing of them before
 * `cont`), TLS server credentials from @tls, listening on @listen
 * ("tcp:HOST:PORT", PORT 0 = any). The URI the source must connect to goes
 * to @uri. On the host of a running domain of the same uuid (a localhost
 * migration) it runs beside it, apart and silent (no events) until
 * committed. -EEXIST: one is incoming already; -ENOTSUP: sim. */
int xenops_domain_start_incoming(struct xenops *x, const struct xenops_domain_config *cfg,
                                 const char *listen, const struct xenops_tls *tls, char *uri,
                                 size_t uri_len);
/* Waits up to @timeout_ms for the incoming migration of @uuid to end: 0 when
 * the whole state arrived (the domain is paused), -EIO when it failed (the
 * device model exits then: call xenops_domain_incoming_abort), -ETIMEDOUT. */
int xenops_domain_incoming_wait(struct xenops *x, const char *uuid, unsigned timeout_ms);
/* The received domain becomes the domain of @uuid (its events are delivered
 * from now on) and runs, its NICs announcing themselves at once (the
 * switches learn its new port). -EEXIST while the source still runs on this
 * instance (xenops_domain_migrate_finish first), -ENOENT. */
int xenops_domain_incoming_commit(struct xenops *x, const char *uuid);
/* Stops the incoming domain of @uuid, silently. -ENOENT when there is none. */
int xenops_domain_incoming_abort(struct xenops *x, const char *uuid);

/* The source half: migrates running or paused domain @uuid to @dest_uri
 * (the destination's URI, TLS with client credentials @tls; the peer's
 * certificate must name @tls_hostname, NULL: the URI's host). @fn (may be
 * NULL) follows progress. xenops_domain_cancel_waits (task.cancel) cancels
 * it: -ECANCELED, and the guest runs on here as before, as after any failure
 * (-EIO). 0: completed; the domain is paused here with its disk images
 * flushed and released by QEMU (inactive), and must not run again: stop it
 * with xenops_domain_migrate_finish. *@out (may be NULL) gets QEMU's
 * figures. */
int xenops_domain_migrate_send(struct xenops *x, const char *uuid, const char *dest_uri,
                               const struct xenops_tls *tls, const char *tls_hostname,
                               xenops_migrate_fn *fn, void *opaque,
                               struct xenops_migrate_stats *out);
/* Stops the source of a completed migration silently (no HALTED: the guest
 * runs on at the destination): SIGKILL, as its images are flushed and
 * inactive already. @wait: returns once it exited; otherwise once signalled,
 * and a call with @wait later waits for the exit (-ENOENT once gone). */
int xenops_domain_migrate_finish(struct xenops *x, const char *uuid, bool wait);
/* Runs the source of a completed migration again, when its destination
 * failed to load the state (before xenops_domain_migrate_finish): it takes
 * its disk images back and its events are delivered again. */
int xenops_domain_migrate_rollback(struct xenops *x, const char *uuid);

enum xenops_power { XENOPS_POWER_RUNNING, XENOPS_POWER_PAUSED };
struct xenops_stats {
    enum xenops_power power;
    pid_t pid;                 /* the device model's pid; 0 for sim */
    uint64_t memory_bytes;     /* configured */
    uint64_t memory_actual_bytes; /* what the guest has: memory less its balloon */
    unsigned vcpus;
    uint64_t vcpu_time_ns[64]; /* per vCPU, from its thread's utime+stime */
    uint64_t start_time_ms;    /* CLOCK_REALTIME when started */
    char accel[8];             /* "kvm" or "tcg" */
};
int xenops_domain_stats(struct xenops *x, const char *uuid, struct xenops_stats *out);
/* Uuids of all running or paused domains, as for xenops_recover(). */
int xenops_domain_list(struct xenops *x, char ***uuids, size_t *n);

/* ---- the guest agent ---- */

/* What the guest's agent (qemu-ga) reports; any string may be NULL and any
 * list empty when the agent lacks the command. */
struct xenops_guest_nic {
    char *name, *mac;
    char **ipv4, **ipv6; /* addresses without prefix length */
    size_t n_ipv4, n_ipv6;
};
struct xenops_guest_fs {
    char *mountpoint, *type;
    uint64_t total_bytes, used_bytes; /* 0 when the agent did not say */
};
struct xenops_guest_info {
    char *agent_version;                     /* guest-info: "7.2.19" */
    char *os_id, *os_name, *os_pretty_name;  /* guest-get-osinfo (os-release) */
    char *os_version, *os_version_id;
    char *kernel_release, *kernel_version, *machine; /* uname */
    struct xenops_guest_nic *nics;
    size_t n_nics;
    struct xenops_guest_fs *fs;
    size_t n_fs;
};
void xenops_guest_info_free(struct xenops_guest_info *info);
void xenops_guest_info_freep(struct xenops_guest_info **info);

/* Asks the agent (within @timeout_ms per command) for everything in
 * struct xenops_guest_info: 0 and *out (free with xenops_guest_info_free),
 * -ENOTCONN when the guest holds the agent's port closed (QEMU's
 * VSERPORT_CHANGE; a change emits XENOPS_EVENT_AGENT), -ETIMEDOUT when no
 * agent answers, -ENOENT, -ENOTSUP for a backend without agents (sim: a
 * guest that implicitly has every feature, as xapi treats a PV guest). */
int xenops_agent_info(struct xenops *x, const char *uuid, unsigned timeout_ms,
                      struct xenops_guest_info **out);

/* ---- live memory and vCPUs ---- */

/* Sets the balloon's target (virtio-balloon; a multiple of 1 MiB, at most
 * the domain's memory): the guest gives memory back or takes it again as its
 * balloon driver complies. -ENOENT, -EINVAL above the domain's memory. */
int xenops_domain_set_memory_target(struct xenops *x, const char *uuid, uint64_t bytes);
/* Plugs or unplugs vCPUs until the domain has @vcpus (1..cfg->vcpus_max):
 * pc and q35 (ACPI CPU hotplug), -ENOTSUP on microvm. Unplugging waits up to
 * @timeout_ms for the guest to let each one go (-ETIMEDOUT: it kept some). */
int xenops_domain_set_vcpus(struct xenops *x, const char *uuid, unsigned vcpus,
                            unsigned timeout_ms);

/* ---- NIC hotplug ---- */

/* Adds @nic to running domain @uuid (qemu: QMP netdev_add tap,ifname=<tap> +
 * device_add virtio-net-pci with the MAC; the tap must exist; @nic->port is
 * ignored). The domain's config (config.json) then lists it: xenops_recover()
 * and a restart of the device model keep it. Hotplug slots: pc (ACPI PCI
 * hotplug on i440fx) and q35 (a free one of its XENOPS_Q35_PORTS PCIe hotplug
 * ports, else -ENOSPC); -ENOTSUP for microvm (virtio-mmio) and for sim.
 * -EEXIST when the domain has a NIC on that tap; -EIO when qemu refuses (the
 * netdev is removed again). */
int xenops_nic_plug(struct xenops *x, const char *uuid, const struct xenops_nic *nic);
/* Removes the NIC on tap @tap from domain @uuid (-ENOTSUP where it cannot be:
 * microvm, or a q35 NIC that got no hotplug port): QMP device_del, then waits up
 * to @timeout_ms for the guest to release it (the DEVICE_DELETED event) before
 * netdev_del. -ETIMEDOUT when the guest did not: the NIC stays listed, qemu may
 * still remove the device later (a retry then completes). @force is the same
 * (a netdev deleted before the guest let go of its device crashes QEMU 10.0
 * when it does: xenops/qemu.c). -ENOENT when the domain runs no such NIC (or
 * does not run), -ENOTSUP for sim. */
int xenops_nic_unplug(struct xenops *x, const char *uuid, const char *tap, bool force,
                      unsigned timeout_ms);
/* 1 when domain @uuid has a NIC on tap @tap, 0 when not, -ENOENT when the domain
 * does not run, -ENOTSUP for sim. */
int xenops_nic_present(struct xenops *x, const char *uuid, const char *tap);

/* ---- disk hotplug ---- */

/* Adds @disk (an NBD virtio-blk disk) to running domain @uuid as slot @slot:
 * the same names a disk given at start has at that index (node "disk<slot>",
 * device "vbd<slot>"), so the caller picks a slot no disk of the domain uses.
 * qemu: QMP blockdev-add + device_add virtio-blk-pci; pc machine only (ACPI
 * PCI hotplug): -ENOTSUP elsewhere; CDs: -ENOTSUP. -EIO when qemu refuses
 * (the node is removed again). sim: nothing to do, 0. Disks are not recorded
 * in config.json: a domain keeps them across an in-place reboot, and a new
 * start attaches every VBD again. */
int xenops_disk_plug(struct xenops *x, const char *uuid, unsigned slot,
                     const struct xenops_disk *disk);
/* The logical geometry QEMU gave virtio-blk disk slot @slot of domain @uuid
 * (qom-get of its cyls, heads, secs). -ENOENT, -EIO; -ENOTSUP: sim. */
int xenops_disk_geometry(struct xenops *x, const char *uuid, unsigned slot, unsigned *cyls,
                         unsigned *heads, unsigned *secs);
/* Removes disk slot @slot from domain @uuid: QMP device_del, waits up to
 * @timeout_ms for the guest to let go (DEVICE_DELETED; -ETIMEDOUT when it did
 * not, the disk stays), then blockdev-del. -ENOENT when the domain does not
 * run. sim: 0. */
int xenops_disk_unplug(struct xenops *x, const char *uuid, unsigned slot, unsigned timeout_ms);

/* ---- the serial console ---- */

/* The last (up to 64 KiB) bytes of output: *buf malloc'd (NUL-terminated for
 * convenience), *len its length. -ENOTSUP for sim when nothing was written. */
int xenops_console_read(struct xenops *x, const char *uuid, char **buf, size_t *len);
/* Live output: @fn is called on a backend thread with each chunk, in order,
 * until unsubscribed or the domain stops (then silently dropped). @fn runs
 * under the console's lock: it must not call xenops_console_* for the same
 * domain (deadlock) and should only copy or forward the bytes. Output between
 * an earlier xenops_console_read() and this call is not replayed. *id names
 * the subscription. -ENOSPC past the backend's subscriber limit (sim: 4). */
typedef void xenops_console_fn(void *opaque, const char *data, size_t len);
int xenops_console_subscribe(struct xenops *x, const char *uuid, xenops_console_fn *fn,
                             void *opaque, uint64_t *id);
/* The same, but @fn first receives the ring's content (the last 64 KiB) as
 * one chunk, atomically with the subscription: no byte is lost or repeated
 * between the replay and the live output (the vt100 console's contract). */
int xenops_console_subscribe_replay(struct xenops *x, const char *uuid, xenops_console_fn *fn,
                                    void *opaque, uint64_t *id);
/* After it returns, @fn is not running and will not be called again. */
void xenops_console_unsubscribe(struct xenops *x, const char *uuid, uint64_t id);
/* Keystrokes to the guest's serial port. */
int xenops_console_write(struct xenops *x, const char *uuid, const char *data, size_t len);
/* The unix socket of the domain's VNC server (malloc'd), or -ENOTSUP. */
int xenops_console_vnc_path(struct xenops *x, const char *uuid, char **path);

/* ---- the accelerator ---- */

/* "kvm" when /dev/kvm exists and a tiny real guest (a boot sector that writes
 * to isa-debug-exit) runs to completion under KVM within @timeout_ms; "tcg"
 * otherwise. Cached per process after the first call (any timeout). */
const char *xenops_kvm_probe(const char *qemu_binary, unsigned timeout_ms);

/* ---- pure helpers, exposed for tests ---- */

/* The cgroup v2 limits of a domain (xenops/cgroup.c): cpu.weight (1..10000)
 * from cfg->cpu_weight scaled so that xapi's default 256 is cgroup's 100;
 * cpu.max ("max 100000" or "<cap * 1000> 100000": cap % of one CPU per
 * 100 ms period); memory.max in bytes: the guest's memory plus the device
 * model's overhead (XENOPS_QEMU_OVERHEAD_BYTES + memory/16, and qemu's TCG
 * translation cache under @accel "tcg"). */
#define XENOPS_QEMU_OVERHEAD_BYTES (256ull << 20)
#define XENOPS_TCG_CACHE_BYTES (1ull << 30)
void xenops_cgroup_limits(const struct xenops_domain_config *cfg, const char *accel,
                          unsigned *cpu_weight, char *cpu_max, size_t cpu_max_len,
                          uint64_t *memory_max);

/* The qemu command line for @cfg with accelerator @accel ("kvm"/"tcg") and
 * the domain's run dir @dom_dir (sockets live there). *argv: NULL-terminated,
 * free with xenops_strv_free(argv, n). 0 or -EINVAL / -ENOMEM. */
int xenops_qemu_argv(const struct xenops_domain_config *cfg, const char *accel,
                     const char *dom_dir, const char *qemu_binary, char ***argv, size_t *n);

#endif
