/* api/domains.h - the bridge between VM records and the domain manager (xenops/).
 *
 * api/vm_lifecycle.c decides what may happen to a VM and records it; this
 * module turns a VM record into a domain description, calls the chosen
 * backend (qemu or sim), and routes the backend's events (the guest powered
 * off, rebooted, crashed) to the handler given at open (daemon/main.c gives
 * vm_lifecycle_on_domain_event: the layer above is called back, never named
 * here). Domains are
 * named by the VM's uuid, so they are found again after a restart.
 */
#ifndef VESSEL_API_DOMAINS_H
#define VESSEL_API_DOMAINS_H

#include <stdbool.h>
#include <stdint.h>

#include "rpc/ctx.h"
#include "xapi_model.h"
#include "xenops/xenops.h"

enum domain_event {
    DOMAIN_HALTED,   /* the guest powered off */
    DOMAIN_REBOOTED, /* the guest asked for a reboot */
    DOMAIN_CRASHED,  /* the device model died or the guest crashed */
    DOMAIN_PAUSED,
    DOMAIN_RESUMED,
};

struct domains;
struct xenops;

/* A domain changed by itself (any thread). */
typedef void domains_event_fn(struct server *srv, const char *uuid, enum domain_event ev);

/* @backend: "qemu", "sim" or "auto" (qemu when qemu-system-x86_64 is there).
 * @on_event gets every change a domain makes by itself, from the first one
 * (domains adopted while opening included). */
int domains_open(struct server *srv, const char *backend, domains_event_fn *on_event,
                 struct domains **out, char *why, size_t why_len);
void domains_close(struct domains *d);
const char *domains_backend_name(const struct domains *d);

/* Builds and starts the domain of @vm (ref @ref). *@domid is its number. */
bool domains_start(struct server *srv, const char *ref, const struct xapi_vm_record *vm,
                   bool paused, int64_t *domid, struct xerr **errp);
bool domains_stop(struct server *srv, const char *uuid, bool clean, struct xerr **errp);
/* A hard domains_stop that calls @exited(@opaque) on the caller's thread
 * once qemu has exited, while the rest of its clean-up is still under way
 * (xenops_domain_destroy's XENOPS_EXITED): there the records may say
 * halted, beside that clean-up instead of after it. Not called when the
 * backend has no such split, there is no domain, or its exit did not show:
 * the caller then records after the return. */
bool domains_stop_then(struct server *srv, const char *uuid, void (*exited)(void *),
                       void *opaque, struct xerr **errp);
/* A hard stop's SIGKILL alone, sent now (microseconds: it may be sent under
 * the database's lock); domains_stop then waits for the exit and cleans up.
 * Nothing when the backend has no such split or there is no domain. */
void domains_kill(struct server *srv, const char *uuid);
bool domains_reboot(struct server *srv, const char *uuid, bool clean, struct xerr **errp);
/* Ends the clean shutdowns and reboots of @uuid waiting for its guest: they
 * fail with TASK_CANCELLED and the guest is left as it is. */
void domains_cancel_waits(struct server *srv, const char *uuid);
bool domains_pause(struct server *srv, const char *uuid, bool pause, struct xerr **errp);
/* Saves the domain's memory to @path and destroys it / rebuilds it from @path. */
bool domains_suspend(struct server *srv, const char *uuid, const char *path, struct xerr **errp);
bool domains_resume(struct server *srv, const char *ref, const struct xapi_vm_record *vm,
                    const char *path, bool paused, int64_t *domid, struct xerr **errp);
/* Is the domain of VM @uuid alive (used to reconcile power states at start). */
bool domains_alive(struct server *srv, const char *uuid);
/* The machine @vm runs on: its platform:machine, else pc for a direct kernel
 * boot and q35 for firmware. false for a name that is no machine type (VM.start
 * refuses it). */
bool domains_machine(const struct xapi_vm_record *vm, enum xenops_machine *out);
/* A microvm asked to run without ACPI (platform:acpi=0): no power button. */
bool domains_no_acpi(const struct xapi_vm_record *vm);
/* The balloon's target, @bytes rounded up to 1 MiB (VM.set_memory_dynamic_range). */
bool domains_set_memory_target(struct server *srv, const char *uuid, int64_t bytes,
                               struct xerr **errp);
/* vCPU hotplug to @vcpus (VM.set_VCPUs_number_live): OPERATION_NOT_ALLOWED
 * where the machine cannot (microvm) or the guest would not let go. */
bool domains_set_vcpus(struct server *srv, const char *uuid, unsigned vcpus, struct xerr **errp);
/* The guest agent's report of domain @uuid (xenops_agent_info): 0 and *out,
 * -ENOTCONN when its port is closed, -ETIMEDOUT when no agent answers,
 * -ENOTSUP for a backend without agents, -ENOENT. */
int domains_agent_info(struct server *srv, const char *uuid, struct xenops_guest_info **out);
/* Memory the domain uses now, in bytes (0 when unknown). */
int64_t domains_memory_actual(struct server *srv, const char *uuid);

/* Live migration (api/vm_migrate.c). The destination half: domains_receive
 * starts @vm's domain waiting for the migration (new domid *@domid: its own
 * taps on the same networks' bridges, its own helper uids; standby disk
 * servers, api/disk_servers.h), listening on @listen ("tcp:HOST:0"), and
 * gives the URI the source must send to; domains_receive_wait waits for the
 * whole state; domains_receive_commit activates the disk servers (the
 * source's must have exited), makes it the VM's domain and runs it;
 * domains_receive_abort undoes domains_receive. The source half:
 * domains_migrate_send (task.cancel ends it through domains_cancel_waits:
 * TASK_CANCELLED, the guest runs on), then domains_migrate_source_stop kills
 * the paused source and stops its disk servers (flushed, closed; their writer
 * keys kept for the destination): the destination may write then.
 * domains_migrate_source_reap waits for the killed qemu's exit and removes
 * its taps: after the destination runs (on the same host, before: the
 * destination's domain waits for the source's to be gone). */
bool domains_receive(struct server *srv, const char *ref, const struct xapi_vm_record *vm,
                     const char *listen, const char *geometry, const struct xenops_tls *tls,
                     int64_t *domid, char *uri, size_t uri_len, struct xerr **errp);
/* The source side's word for domains_receive's @geometry: the logical
 * geometry QEMU gave each disk slot of running @vm, "C/H/S;C/H/S..." (a slot
 * without a virtio disk 0/0/0). false when @len is too small. */
bool domains_disk_geometry(struct server *srv, const struct xapi_vm_record *vm, char *out,
                           size_t len);
bool domains_receive_wait(struct server *srv, const char *uuid, struct xerr **errp);
/* @from_host: the source host's uuid, whose writer keys the disks take over */
bool domains_receive_commit(struct server *srv, const char *uuid, const char *from_host,
                            struct xerr **errp);
void domains_receive_abort(struct server *srv, const struct xapi_vm_record *vm, int64_t domid);
bool domains_migrate_send(struct server *srv, const char *uuid, const char *uri,
                          const struct xenops_tls *tls, const char *tls_hostname,
                          xenops_migrate_fn *fn, void *opaque, struct xenops_migrate_stats *out,
                          struct xerr **errp);
void domains_migrate_source_stop(struct server *srv, const struct xapi_vm_record *vm);
void domains_migrate_source_reap(struct server *srv, const struct xapi_vm_record *vm);
/* The destination did not run after domains_migrate_source_stop: the writer
 * keys the source kept for it go (those it took stay its own). */
void domains_migrate_source_release(struct server *srv, const struct xapi_vm_record *vm);
/* The destination failed after the source completed: the source runs on. */
bool domains_migrate_rollback(struct server *srv, const char *uuid, struct xerr **errp);

/* Removes the taps of @vm's VIFs for its current domid (it stopped). */
void domains_detach_nics(struct server *srv, const struct xapi_vm_record *vm);

/* The xenops instance behind the backend (consoles), or NULL. */
struct xenops *domains_xenops(struct server *srv);

/* api/vm_lifecycle.c's domains_event_fn: applies a domain's own change to its VM. */
void vm_lifecycle_on_domain_event(struct server *srv, const char *uuid, enum domain_event ev);
/* task.cancel of a VM operation's task: a wait of it for the guest (a clean
 * shutdown or reboot) ends at once with TASK_CANCELLED; the guest is left as
 * it is. */
void vm_lifecycle_cancel_task(struct server *srv, const char *task);
/* At start: every VM recorded as running on this host whose domain is gone
 * becomes Halted; those still running stay managed. */
void vm_lifecycle_reconcile(struct server *srv);
/* VM @to_uuid's memory image becomes a second name of VM @from_uuid's
 * (a checkpoint's, a revert to one); drop removes VM @uuid's. */
void vm_lifecycle_image_share(struct server *srv, const char *from_uuid, const char *to_uuid,
                              bool *ok, struct xerr **errp);
void vm_lifecycle_image_drop(struct server *srv, const char *uuid);
/* A VM that arrived here from another host by a live migration, now
 * running in domain @domid: resident_on this host, its domid, metrics,
 * devices attached here, and consoles of this host's address (the old
 * host's go). */
bool vm_lifecycle_record_migrated(struct server *srv, const char *vm_ref, int64_t domid,
                                  struct xerr **errp);

#endif
