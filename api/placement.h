/* api/placement.h - where a VM can run in the pool, and how much memory a
 * host has left (xapi's xapi_vm_helpers.ml choose_host_for_vm and
 * memory_check.ml host_compute_free_memory).
 *
 * A host's free memory is the smaller of what its metrics measure
 * (host_metrics.memory_free: the kernel's MemAvailable) and what the
 * records leave of its memory_total once every guest resident on it or
 * scheduled to it (not the control domain) has its memory_dynamic_max: the
 * first catches what really runs there, the second a guest whose pages are
 * not touched yet (a fresh qemu guest, any sim guest). Starts in flight
 * count too: the host that places a VM and the host that admits it promise
 * its memory until the start's outcome is recorded, so two starts at once
 * cannot both take the same memory.
 */
#ifndef VESSEL_API_PLACEMENT_H
#define VESSEL_API_PLACEMENT_H

#include <stdbool.h>
#include <stdint.h>

#include "model/xerr.h"

struct call_ctx;
struct db;
struct server;
struct xapi_vm_record;

/* host_metrics.live of @host (false when it has none). */
bool placement_host_live(struct db *db, const char *host);

/* Bytes @host can still give a guest, less what is promised to starts on
 * their way there; -1 when its metrics are unknown. */
int64_t placement_host_free_memory(struct db *db, const char *host);

/* The same for @vm: neither its own record nor its own promise counts. */
int64_t placement_free_memory_for(struct db *db, const char *host, const char *vm);

/* Admission of a start, resume or incoming migration onto this host:
 * HOST_NOT_ENOUGH_FREE_MEMORY when @bytes do not fit, else the bytes are
 * promised to @vm until placement_release(), which the caller calls once
 * its outcome is recorded. */
bool placement_admit(struct server *srv, const char *vm_ref, int64_t bytes,
                     struct xerr **errp);
void placement_release(const char *vm_ref);

/* xapi_vm_helpers.ml assert_can_boot_here on one host (api/vm_settings.c):
 * the VM's own constraints, the host enabled and live, every SR of its
 * disks plugged there, and, with @memory, enough free memory. */
bool vm_can_boot_here(struct call_ctx *ctx, const char *vm_ref, const struct xapi_vm_record *vm,
                      const char *host, bool memory, struct xerr **errp);

/* The host VM.start without a host runs @vm on: its affinity host, this
 * host, then the others by most free memory, the first where it can boot;
 * if none has the memory, the first that passes every other check (the
 * start there then fails with that host's memory error, as in xapi). *host
 * is NULL when that is this host or when no host passes (the local start
 * then raises the reason). */
bool placement_choose_host(struct call_ctx *ctx, const char *vm_ref, char **host,
                           struct xerr **errp);

#endif
