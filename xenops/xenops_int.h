/* xenops/xenops_int.h - what the backends share: the ops table, the instance,
 * cleanup helpers (no common/cleanup.h yet). Not for use outside xenops/.
 */
#ifndef VESSEL_XENOPS_INT_H
#define VESSEL_XENOPS_INT_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "xenops/xenops.h"

/* The guest agent's virtio-serial port: the name qemu-ga opens in the guest,
 * and the id of its device (QEMU's VSERPORT_CHANGE events carry it). */
#define XENOPS_AGENT_PORT "org.qemu.guest_agent.0"
#define XENOPS_AGENT_DEVICE "agent0"

/* The backend interface. Each op has the contract of the xenops_* function
 * of the same name in xenops.h; the front end (xenops.c) checks arguments. */
struct xenops_ops {
    const char *name;
    int (*init)(struct xenops *x);
    void (*fini)(struct xenops *x);
    int (*recover)(struct xenops *x);
    int (*start)(struct xenops *x, const struct xenops_domain_config *cfg, const char *resume_path);
    int (*pause)(struct xenops *x, const char *uuid);
    int (*unpause)(struct xenops *x, const char *uuid);
    int (*shutdown)(struct xenops *x, const char *uuid, bool hard, unsigned timeout_ms);
    /* NULL when the backend has none (-ENOTSUP: shutdown, hard) */
    int (*destroy)(struct xenops *x, const char *uuid, xenops_destroy_fn *step, void *opaque);
    /* NULL when the backend has none (-ENOTSUP) */
    int (*kill)(struct xenops *x, const char *uuid);
    int (*reboot)(struct xenops *x, const char *uuid, bool hard, unsigned timeout_ms);
    int (*cancel_waits)(struct xenops *x, const char *uuid);
    int (*suspend)(struct xenops *x, const char *uuid, const char *path);
    int (*stats)(struct xenops *x, const char *uuid, struct xenops_stats *out);
    int (*list)(struct xenops *x, char ***uuids, size_t *n);
    int (*console_read)(struct xenops *x, const char *uuid, char **buf, size_t *len);
    int (*console_subscribe)(struct xenops *x, const char *uuid, xenops_console_fn *fn,
                             void *opaque, bool replay, uint64_t *id);
    void (*console_unsubscribe)(struct xenops *x, const char *uuid, uint64_t id);
    int (*console_write)(struct xenops *x, const char *uuid, const char *data, size_t len);
    int (*vnc_path)(struct xenops *x, const char *uuid, char **path);
    /* NIC hotplug: NULL when the backend has none (-ENOTSUP) */
    int (*nic_plug)(struct xenops *x, const char *uuid, const struct xenops_nic *nic);
    int (*nic_unplug)(struct xenops *x, const char *uuid, const char *tap, bool force,
                      unsigned timeout_ms);
    int (*nic_present)(struct xenops *x, const char *uuid, const char *tap);
    /* disk hotplug: NULL when the backend has none (-ENOTSUP) */
    int (*disk_plug)(struct xenops *x, const char *uuid, unsigned slot,
                     const struct xenops_disk *disk);
    int (*disk_unplug)(struct xenops *x, const char *uuid, unsigned slot, unsigned timeout_ms);
    /* the guest agent: NULL when the backend has none (-ENOTSUP) */
    int (*agent_info)(struct xenops *x, const char *uuid, unsigned timeout_ms,
                      struct xenops_guest_info **out);
    int (*set_memory_target)(struct xenops *x, const char *uuid, uint64_t bytes);
    int (*set_vcpus)(struct xenops *x, const char *uuid, unsigned vcpus, unsigned timeout_ms);
    /* live migration: NULL when the backend has none (-ENOTSUP) */
    int (*start_incoming)(struct xenops *x, const struct xenops_domain_config *cfg,
                          const char *listen, const struct xenops_tls *tls, char *uri,
                          size_t uri_len);
    int (*incoming_wait)(struct xenops *x, const char *uuid, unsigned timeout_ms);
    int (*incoming_commit)(struct xenops *x, const char *uuid);
    int (*incoming_abort)(struct xenops *x, const char *uuid);
    int (*migrate_send)(struct xenops *x, const char *uuid, const char *dest_uri,
                        const struct xenops_tls *tls, const char *tls_hostname,
                        xenops_migrate_fn *fn, void *opaque, struct xenops_migrate_stats *out);
    int (*migrate_finish)(struct xenops *x, const char *uuid, bool wait);
    int (*migrate_rollback)(struct xenops *x, const char *uuid);
    int (*disk_geometry)(struct xenops *x, const char *uuid, unsigned slot, unsigned *cyls,
                         unsigned *heads, unsigned *secs);
};

/* xenops/qemu_migrate.c: the qemu backend's live migration (the ops above). */
int qemu_start_incoming(struct xenops *x, const struct xenops_domain_config *cfg,
                        const char *listen, const struct xenops_tls *tls, char *uri,
                        size_t uri_len);
int qemu_incoming_wait(struct xenops *x, const char *uuid, unsigned timeout_ms);
int qemu_incoming_commit(struct xenops *x, const char *uuid);
int qemu_incoming_abort(struct xenops *x, const char *uuid);
int qemu_migrate_send(struct xenops *x, const char *uuid, const char *dest_uri,
                      const struct xenops_tls *tls, const char *tls_hostname,
                      xenops_migrate_fn *fn, void *opaque, struct xenops_migrate_stats *out);
int qemu_migrate_finish(struct xenops *x, const char *uuid, bool wait);
int qemu_migrate_rollback(struct xenops *x, const char *uuid);
int qemu_disk_geometry(struct xenops *x, const char *uuid, unsigned slot, unsigned *cyls,
                       unsigned *heads, unsigned *secs);

/* QMP ids of the NIC on @tap (xenops.h struct xenops_nic): "net-<tap>" and
 * "nic-<tap>"; buffers of XENOPS_NIC_ID_LEN. */
#define XENOPS_NIC_ID_LEN 32
static inline void
xenops_nic_ids(const char *tap, char *netdev, char *device)
{
    snprintf(netdev, XENOPS_NIC_ID_LEN, "net-%s", tap);
    snprintf(device, XENOPS_NIC_ID_LEN, "nic-%s", tap);
}

/* QMP/command-line ids of disk slot @slot (the disk's index at start, or the
 * slot a hotplug chose): block node "disk<slot>", device "vbd<slot>";
 * buffers of XENOPS_DISK_ID_LEN. */
#define XENOPS_DISK_ID_LEN 32
static inline void
xenops_disk_ids(size_t slot, char *node, char *device)
{
    snprintf(node, XENOPS_DISK_ID_LEN, "disk%zu", slot);
    snprintf(device, XENOPS_DISK_ID_LEN, "vbd%zu", slot);
}

extern const struct xenops_ops xenops_qemu_ops;
extern const struct xenops_ops xenops_sim_ops;

struct xenops {
    const struct xenops_ops *ops;
    char *run_dir, *log_dir, *qemu_binary;
    size_t log_max_bytes;
    char *cgroup_root; /* NULL: no per-domain groups (xenops/cgroup.c) */
    unsigned sim_delay_ms;
    xenops_event_fn *on_event;
    void *opaque;
    void *priv; /* the backend's state */
};

static inline void
xenops_emit(struct xenops *x, const char *uuid, enum xenops_event ev)
{
    if (x->on_event)
        x->on_event(x->opaque, uuid, ev);
}

/* xenops/cgroup.c: the group of domain @uuid, made with the limits of @cfg
 * (xenops_cgroup_limits); its directory in @path (empty when there is none:
 * no cgroup v2 root, or it could not be made, logged as a warning). A
 * missing controller file is a warning, not a failure. */
void xenops_cgroup_create(struct xenops *x, const struct xenops_domain_config *cfg,
                          const char *accel, char *path, size_t len);
/* The same for a group named vm-@name (a migration's destination beside its
 * source: "<uuid>.in"), and its rename to vm-@to once it is the domain. */
void xenops_cgroup_create_named(struct xenops *x, const struct xenops_domain_config *cfg,
                                const char *name, const char *accel, char *path, size_t len);
void xenops_cgroup_rename(struct xenops *x, const char *from, const char *to);
/* Removes the group vm-@name (it must be empty: its qemu has exited). */
void xenops_cgroup_remove(struct xenops *x, const char *name);
/* True when @x->cgroup_root is a writable cgroup v2 mount; sets it NULL
 * (with a warning) otherwise. */
void xenops_cgroup_probe(struct xenops *x);

/* What the grandchild needs to become a domain's qemu; everything is found,
 * opened and allocated before fork (the child of a threaded process may only
 * make async-signal-safe calls). */
struct xenops_spawn_plan {
    const char *bin;
    char **argv;
    const char *dm_dir;      /* the working directory: qemu names its files relative to it */
    int logfd;               /* stdout and stderr */
    int keep[3];             /* become fds 3, 4, 5 (or stay closed when -1): the resume
                                image, the kernel, the initrd (QEMU_FD_*) */
    const int *nic_fds;      /* become fds QEMU_FD_NIC0.. (the NICs' taps) */
    size_t n_nic_fds;        /* at most XENOPS_NIC_FDS */
    int cgroup_fd;           /* the domain group's cgroup.procs, or -1 */
    uid_t uid;               /* 0: keep ours */
    gid_t gid;
    gid_t groups[1];         /* supplementary: the kvm group when the accelerator is kvm */
    size_t n_groups;
};

enum { QEMU_FD_RESUME = 3, QEMU_FD_KERNEL = 4, QEMU_FD_INITRD = 5, QEMU_FD_ERR = 6,
       QEMU_FD_NIC0 = 7 };

/* xenops/spawn.c: starts @plan's qemu detached (double fork: init reaps it,
 * it outlives vesseld), as pid 1 of new PID, mount and IPC namespaces when
 * the kernel allows (else *@ns_errno says why). Returns its pid as we see it,
 * or -errno (a failed exec included). */
pid_t xenops_spawn_detached(const struct xenops_spawn_plan *plan, int *ns_errno);

uint64_t xenops_now_ms(void);          /* CLOCK_MONOTONIC */
uint64_t xenops_realtime_ms(void);     /* CLOCK_REALTIME */

#endif
