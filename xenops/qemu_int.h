/* xenops/qemu_int.h - what the qemu backend's files share: a running domain
 * (struct qdom, its invariants in xenops/qemu.c's header) and the calls that
 * run QMP commands on it. Internal to xenops/.
 */
#ifndef VESSEL_XENOPS_QEMU_INT_H
#define VESSEL_XENOPS_QEMU_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "xenops/qmp.h"
#include "xenops/xenops_int.h"

#define CONSOLE_RING 65536u
#define QMP_TIMEOUT_MS 10000u

struct console_sub {
    struct console_sub *next;
    uint64_t id;
    xenops_console_fn *fn;
    void *opaque;
};

struct qdom {
    int refs;                 /* (3) */
    char uuid[37];
    char name[48];            /* (6) its directory and cgroup: the uuid, or
                                 "<uuid>.in" while it receives a migration */
    bool incoming;            /* (6) in the backend's incoming map, not doms */
    char *dir;                /* (5) ours: root's, 0711 */
    char *dm_dir;             /* (5) qemu's: <dir>/dm, its uid's, 0700 */
    struct xenops_domain_config *cfg;
    char accel[8];
    pid_t pid;
    int pidfd, qmp_fd, con_fd, wake_fd;
    int mntns_fd;             /* qemu's mount namespace, held: see qdom_hold_mntns */
    uint64_t start_time_ms;
    struct qmp_reader qmp_in;

    pthread_mutex_t lock;     /* everything below */
    pthread_cond_t cond;
    pthread_mutex_t cmd_lock; /* one QMP command in flight */
    json_t *reply;            /* the waiting caller's reply, or NULL */
    bool exited;              /* (1) the supervisor saw qemu go */
    bool announced;           /* (1) and its exit events are out */
    bool stop;                /* xenops_free: stop supervising, leave qemu */
    int exit_event;           /* (2) -1 or an enum xenops_event */
    uint64_t sigkill_us;      /* when qdom_sigkill first signalled it (log_clock_us) */
    char shutdown_reason[32]; /* last SHUTDOWN event's reason */
    bool announce_resume;     /* RESUME events become RESUMED (not the initial cont) */
    bool silent;              /* (6) no events: an incoming domain, or a source whose
                                 state went to its destination */
    uint64_t reboots;         /* RESET events seen: clean reboot waits on it */
    uint64_t cancels;         /* cancel_waits calls: clean waits end when it moves */
    uint64_t cmd_seq;         /* QMP command ids */
    char nic_waiting[32];     /* (4) the device id an unplug waits for */
    bool nic_deleted;         /* its DEVICE_DELETED came */
    uint64_t migration_events; /* MIGRATION events seen (capability "events"):
                                 a migration's waits wake on them */
    pthread_mutex_t nic_lock; /* (4) one NIC hotplug at a time; taken before cmd_lock */

    int agent_port;           /* the guest's agent port: 1 open, 0 closed, -1 not
                                 known (an adopted domain); under d->lock */
    uint64_t balloon_actual;  /* BALLOON_CHANGE's last word; 0 none yet; d->lock */
    pthread_mutex_t agent_lock; /* the agent channel below: one exchange at a time */
    int agent_fd;             /* agent.sock, connected on first use; -1 */
    uint64_t agent_seq;       /* guest-sync ids */
    struct qmp_reader *agent_in;

    struct {                  /* the NICs' taps qemu was given (xenops/taps.c): */
        int fd;               /* our copy of each, closed once qemu has exited */
        char name[16];
    } taps[XENOPS_NIC_FDS];
    size_t n_taps;            /* under d->lock */

    pthread_mutex_t con_lock; /* ring, log, subscribers; held while calling them */
    char ring[CONSOLE_RING];
    size_t ring_head, ring_len;
    int log_fd;
    size_t log_size;
    struct console_sub *subs;
    uint64_t next_sub;
};

/* (6) The domain receiving a migration for @uuid (xenops_domain_start_incoming),
 * a new reference, or NULL. */
struct qdom *qdom_get_incoming(struct xenops *x, const char *uuid);
/* Spawns @cfg's qemu with -incoming defer as an incoming domain (6), attached
 * and silent; returns once its QMP answers. */
int qemu_spawn_incoming(struct xenops *x, const struct xenops_domain_config *cfg);
/* (6) The incoming domain of @uuid becomes the domain of @uuid: its directory
 * and cgroup take the uuid's names, it moves to the map of running domains
 * and its events are delivered. -EEXIST while a domain of @uuid still runs
 * here (the source of a localhost migration must be gone first). */
int qdom_incoming_commit(struct xenops *x, const char *uuid);
/* Stops qemu (QMP quit, SIGKILL after 2 s) with @exit_event decided (2). */
int qdom_kill(struct qdom *d, int exit_event);
/* SIGKILL, its exit a halt (2); returns at once (qdom_wait_exit). */
int qdom_sigkill(struct qdom *d);
/* Waits up to @timeout_ms for its exit and its exit's events; false on
 * timeout. */
bool qdom_wait_exit(struct qdom *d, unsigned timeout_ms);
/* Emits @ev for @d unless it is silent (6). */
void qdom_emit(struct xenops *x, struct qdom *d, enum xenops_event ev);
/* Writes @text to @dir/@name (0600, created or truncated). */
int qdom_write_file(const char *dir, const char *name, const char *text);

/* A new reference to the running domain @uuid, or NULL; drop it with
 * qdom_unref (or _cleanup_(qdom_unrefp)). */
struct qdom *qdom_get(struct xenops *x, const char *uuid);
void qdom_unref(struct qdom *d);
void qdom_unrefp(struct qdom **d);
/* Waits on d->cond (d->lock held) until @deadline_ms; false on timeout. */
bool qdom_wait(struct qdom *d, uint64_t deadline_ms);
/* Runs @cmd (consumed), passing @pass_fd (if >= 0) with it, and returns its
 * "return" value in *ret (may be NULL; a new reference). -EIO on a QMP
 * error, -ESRCH if qemu went away. */
int qdom_qmp_fd(struct qdom *d, json_t *cmd, int pass_fd, json_t **ret);
int qdom_qmp(struct qdom *d, const char *command, json_t **ret);
/* QMP device_del of @dev and a wait of up to @timeout_ms for
 * its DEVICE_DELETED; d->nic_lock held. 0, -ETIMEDOUT, -ENOENT. */
int qdom_device_del(struct qdom *d, const char *dev, unsigned timeout_ms);
/* Writes d->cfg to config.json (atomically). */
int qdom_save_config(struct qdom *d);
/* 0 when the process at the other end of unix socket @fd is @pid. */
int peer_is(int fd, pid_t pid);

/* xenops/qemu_agent.c: the guest agent, the balloon and vCPU hotplug of a
 * running domain (the xenops.h contracts of the same names). */
int qdom_agent_shutdown(struct qdom *d, const char *mode);
void qdom_agent_close(struct qdom *d);
int qemu_agent_info(struct xenops *x, const char *uuid, unsigned timeout_ms,
                    struct xenops_guest_info **out);
int qemu_set_memory_target(struct xenops *x, const char *uuid, uint64_t bytes);
int qemu_set_vcpus(struct xenops *x, const char *uuid, unsigned vcpus, unsigned timeout_ms);

/* xenops/taps.c. Opens the taps of @view's first XENOPS_NIC_FDS NICs, keeps
 * them in @d and sets each NIC's qemu_fd: 0 or -errno (the taps opened so
 * far stay in @d, closed by qdom_taps_close). */
int qdom_taps_open(struct qdom *d, struct xenops_domain_config *view);
/* The descriptors, in the order of qemu_fd (QEMU_FD_NIC0 + i); @fds has
 * room for XENOPS_NIC_FDS. */
void qdom_taps_fds(struct qdom *d, int *fds, size_t *n);
/* Closes our copy of tap @name, or of every tap when NULL: after qemu let
 * go of it (a NIC's unplug) or exited. */
void qdom_taps_close(struct qdom *d, const char *name);

#endif
