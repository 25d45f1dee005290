/* api/vm_migrate.h - live migration of a running VM, in two halves.
 *
 * The destination half runs on the host that receives the VM, the source
 * half on the host it runs on. A localhost migration (xapi's too:
 * VM.pool_migrate to the VM's own host) runs both in one vesseld
 * (vm_migrate_local); between two hosts of the pool the source calls the
 * destination's half through the hidden messages
 * VM.pool_migrate_receive_begin/_wait/_end over peers_call
 * (api/vm_migrate_pool.c, vm_migrate_pool), only strings and numbers crossing:
 *
 *   source                                  destination
 *   vm_migrate_check(..., host), vm_migrate_source_geometry(vm)
 *                                 --->      vm_migrate_receive_begin(vm, listen_host, geometry)
 *                                 <---        -> uri "tcp:ADDR:PORT", domid
 *   vm_migrate_send(vm, uri)  (QEMU over TLS, progress, task.cancel)
 *     failed/cancelled:           --->      vm_migrate_receive_end(vm, domid, abort)
 *   completed:                    --->      vm_migrate_receive_wait(vm)
 *     failed: vm_migrate_send_rollback(vm) and --->  vm_migrate_receive_end(abort)
 *   vm_migrate_send_stop(vm)  (source qemu killed; its disk servers flushed, closed,
 *                              their VDIs' writer keys kept for the destination)
 *                                 --->      vm_migrate_receive_end(vm, domid, commit)
 *                                             (writer keys taken over, disk servers
 *                                              activated, `cont`)
 *     failed: vm_migrate_send_lost(vm)  (the keys kept go)
 *   vm_migrate_send_reap(vm)  (the killed qemu's exit, its taps; on one host
 *                              before the receive_end, whose domain needs
 *                              the source's gone)
 * The record (domid, resident_on, metrics) is written by the caller of
 * vm_migrate_local (api/vm_lifecycle.c) once the destination runs.
 */
#ifndef VESSEL_API_VM_MIGRATE_H
#define VESSEL_API_VM_MIGRATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rpc/ctx.h"
#include "xapi_model.h"

/* What VM.pool_migrate and VM.assert_can_migrate check before anything
 * moves: @vm may be migrated now (power state, template, nomigrate) to
 * @host. Another host of the pool: every disk on a shared SR
 * (VM_REQUIRES_SR), then the destination as VM.assert_can_boot_here sees it
 * (HOST_DISABLED, HOST_NOT_LIVE, its SRs plugged, its free memory). */
bool vm_migrate_check(struct call_ctx *ctx, const char *vm_ref, const struct xapi_vm_record *vm,
                      const char *host, struct xerr **errp);

/* Destination half (any thread; this host's srv). */
/* @geometry: the source's vm_migrate_source_geometry (its disks' logical
 * geometry, which the destination's devices must have). @peer_ca: a PEM file
 * with the source host's certificate, the only one its QEMU may present
 * (NULL: this host's own, a localhost migration). */
bool vm_migrate_receive_begin(struct server *srv, const char *vm_ref, const char *listen_host,
                              const char *geometry, const char *peer_ca, char *uri,
                              size_t uri_len, int64_t *domid, struct xerr **errp);
bool vm_migrate_receive_wait(struct server *srv, const char *vm_ref, struct xerr **errp);
/* @commit: activate and run the received domain; else stop it and undo. */
bool vm_migrate_receive_end(struct server *srv, const char *vm_ref, int64_t domid, bool commit,
                            struct xerr **errp);

/* Source half: migrates @vm to @uri reporting progress 0.05..0.95 into the
 * call's task; task.cancel ends it with TASK_CANCELLED and the guest runs on.
 * *@paused_at_ms gets when QEMU stopped the guest on the source
 * (CLOCK_MONOTONIC ms): the start of the guest's pause. @peer_ca: a PEM file with the
 * destination host's certificate, which must name @peer_name (NULL, NULL:
 * this host's own, the URI's address). */
bool vm_migrate_send(struct call_ctx *ctx, const struct xapi_vm_record *vm, const char *uri,
                     const char *peer_ca, const char *peer_name, uint64_t *paused_at_ms,
                     struct xerr **errp);
void vm_migrate_send_stop(struct server *srv, const struct xapi_vm_record *vm);
void vm_migrate_send_reap(struct server *srv, const struct xapi_vm_record *vm);
/* The destination could not run after vm_migrate_send_stop: the VM is lost,
 * and its disks' writer keys, kept for the destination, go. */
void vm_migrate_send_lost(struct server *srv, const struct xapi_vm_record *vm);
/* What the destination needs to know of the source's devices (see
 * vm_migrate_receive_begin), a string of at most 1 KiB. */
bool vm_migrate_source_geometry(struct server *srv, const struct xapi_vm_record *vm, char *out,
                                size_t len);
bool vm_migrate_send_rollback(struct server *srv, const struct xapi_vm_record *vm,
                              struct xerr **errp);

/* Both halves on this host, in the order above; *@domid the new domain's.
 * false: the VM runs on in its old domain, or (*@lost) it was lost because
 * its destination failed after its source had gone. */
bool vm_migrate_local(struct call_ctx *ctx, const char *vm_ref, const struct xapi_vm_record *vm,
                      int64_t *domid, bool *lost, struct xerr **errp);

/* A failure of the machinery as xapi's VM_MIGRATE_FAILED [vm, source,
 * destination, msg] (@err consumed; a cancel and a refusal stay what they
 * are); false. */
bool vm_migrate_failed(struct server *srv, const char *vm_ref, const char *destination,
                       struct xerr *err, struct xerr **errp);

/* Both halves, the destination on @host, another host of the pool, in the
 * order above; on success the destination has recorded the VM as its own.
 * false: the VM runs on here, or (*@lost) it was lost because its
 * destination failed after its source had gone. */
bool vm_migrate_pool(struct call_ctx *ctx, const char *vm_ref, const struct xapi_vm_record *vm,
                     const char *host, bool *lost, struct xerr **errp);

#endif
