/* api/disk_servers.h - the disk servers (`vhd serve`) of a VM's domain.
 *
 * disk_servers_start adds one NBD disk to @cfg per VBD of @vm that has a VDI
 * (starting its server first); disk_servers_stop stops every server of the VM
 * named by its uuid (idempotent: nothing running is fine). */
#ifndef VESSEL_API_DISK_SERVERS_H
#define VESSEL_API_DISK_SERVERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/disk_order.h"
#include "rpc/ctx.h"
#include "xapi_model.h"
#include "xenops/xenops.h"

/* @domid: the domain being built (its helpers' uids, api/domains.h). */
bool disk_servers_start(struct server *srv, const char *vm_ref, const struct xapi_vm_record *vm,
                        int64_t domid, struct xenops_domain_config *cfg, struct xerr **errp);
void disk_servers_stop(struct server *srv, const char *vm_uuid);
/* A live migration's source: as disk_servers_stop, but the writer keys of the
 * VDIs stay this host's, for the destination's disk_servers_activate to take
 * over in one etcd transaction each (a delete here and a create there would
 * both fall in the guest's pause). If the destination does not take them,
 * disk_servers_release_writer gives each up (when no server here writes the
 * VDI). */
void disk_servers_stop_handing_over(struct server *srv, const char *vm_uuid);
/* A hard shutdown's stop: as disk_servers_stop, but on a standalone host it
 * returns once the servers are signalled, and a thread waits for their
 * exits (each flushes and closes its chain first); the next
 * disk_servers_lock or disk_servers_settle waits for them
 * (api/disk_order.h). In a pool it is disk_servers_stop. */
void disk_servers_stop_behind(struct server *srv, const char *vm_uuid);
void disk_servers_release_writer(struct server *srv, const char *vdi_uuid);

/* A live migration's destination: a standby server (`vhd serve --standby`,
 * files in-<vm uuid>.<n>.*) for each VBD of @vm whose server runs now, added
 * to @cfg as disk_servers_start does; they hold all I/O and read no metadata
 * until disk_servers_activate, called once the source's servers have exited
 * (disk_servers_stop: flushed and closed). Activation takes each writable
 * VDI's writer key over from host @from_host (its uuid; NULL: none to take
 * over), hands each server its chain as it is on disk then and gives it the
 * VM's names; a failure leaves the rest in standby. disk_servers_stop_standby stops those still in standby. */
bool disk_servers_start_standby(struct server *srv, const struct xapi_vm_record *vm,
                                int64_t domid, struct xenops_domain_config *cfg,
                                struct xerr **errp);
bool disk_servers_activate(struct server *srv, const char *vm_uuid, const char *from_host,
                           struct xerr **errp);
void disk_servers_stop_standby(struct server *srv, const char *vm_uuid);

/* Hotplug: a server for VBD @vbd_ref of running VM @vm in the first free
 * slot; the disk to hand to the device model goes to @disk (its path is the
 * caller's to free) and the slot, which names it there, to @slot. An empty
 * CD drive: OPERATION_NOT_ALLOWED. */
bool disk_servers_plug(struct server *srv, const struct xapi_vm_record *vm, const char *vbd_ref,
                       unsigned *slot, struct xenops_disk *disk, struct xerr **errp);
/* Stops the server of VBD @vbd_ref of VM @vm_uuid (none: nothing). */
void disk_servers_unplug(struct server *srv, const char *vm_uuid, const char *vbd_ref);
/* The slot of VBD @vbd_ref's server in VM @vm_uuid, or -1 when none runs.
 * Reads the files without disk_servers_lock: safe inside a db batch. */
int disk_servers_slot(struct server *srv, const char *vm_uuid, const char *vbd_ref);

/* A disk server's I/O counters since it started (`vhd serve` "stats"). */
struct disk_io_stats {
    uint64_t rd_reqs, rd_bytes, rd_usec; /* usec: time spent serving, summed */
    uint64_t wr_reqs, wr_bytes, wr_usec;
    unsigned inflight;
};
/* The counters of VBD @vbd_ref's server in VM @vm_uuid, asked on its control
 * socket (a second at most; no lock taken). 0, -ENOENT when none runs,
 * another -errno when it did not answer. */
int disk_servers_stats(struct server *srv, const char *vm_uuid, const char *vbd_ref,
                       struct disk_io_stats *out);

/* At start, once the host holds its lease (api/pool_live.h): the writer
 * keys of the VDIs this host's surviving servers write, which the previous
 * run's lease took with it. */
void disk_servers_claim_writers(struct server *srv);

/* Every running server of VDI @uuid in SR directory @sr_path, paused: their
 * in-flight requests done and the chain flushed; the guests' I/O waits.
 * *@out holds them (maybe none) until disk_servers_resume. -errno when a
 * server could not be paused (none is left paused then). */
struct disk_pause;
int disk_servers_pause(struct server *srv, const char *sr_path, const char *uuid,
                       struct disk_pause **out);
/* How many servers @p holds. */
size_t disk_servers_paused_count(const struct disk_pause *p);
/* Hands the VDI's chain as it is on disk now to every paused server, which
 * then goes on with it, one after the other until one fails: -errno
 * (logged). The servers before it have the new chain; the one that failed
 * kept its old chain if it said so, and its state is unknown if it did not
 * answer; the ones after it have their old chain. */
int disk_servers_reload(struct disk_pause *p);
/* After a failed reload: every server is known to be on its old chain, so
 * the chain change may be undone. Otherwise one server may write to the new
 * chain and another to the old: the change must stay, and
 * disk_servers_abandon() stop the servers not known to be on the new one. */
bool disk_servers_all_on_old_chain(const struct disk_pause *p);
/* Lets every server of @p go on (those reloaded already have) and frees @p. */
void disk_servers_resume(struct disk_pause *p);
/* For a chain change that stays after a failed reload: the servers that did
 * not take the new chain are killed (their guests see their disk fail)
 * rather than let them write into a file no longer the VDI's; the others go
 * on. Frees @p. */
void disk_servers_abandon(struct disk_pause *p);

#endif
