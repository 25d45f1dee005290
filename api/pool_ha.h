/* api/pool_ha.h - HA on a pool: what the master does when a host dies, and
 * what a host does when it can no longer prove it is alive (fencing).
 *
 * Called by api/pool_live.c (the lease, the watches) and by the pool.*_ha
 * messages (api/pool_ha.c). Any thread.
 */
#ifndef VESSEL_API_POOL_HA_H
#define VESSEL_API_POOL_HA_H

#include <stdbool.h>

#include "rpc/ctx.h"

/* pool.ha_enabled. */
bool pool_ha_enabled(struct server *srv);

/* The master saw host @host_ref's lease end with HA on: every VM resident on
 * it becomes Halted (resident_on cleared), and the protected ones (priority
 * "restart", then "best-effort", each by VM.order) are restarted, on a worker
 * thread; returns at once. */
void pool_ha_host_died(struct server *srv, const char *host_ref);

/* Restarts protected VM @vm after its host died: on the host VM.start
 * without a host would pick (api/placement.h; this host first when it can
 * run it), forwarded there when it is another (rpc/peers.h). */
bool ha_restart_vm(struct server *srv, const char *vm, struct xerr **errp);

/* Fencing: kills every guest this host runs, now (SIGKILL of each device
 * model, then the domain's own hard stop). Returns how many were running;
 * *@killed their uuids, NULL-terminated (free each and the array), or NULL. */
int pool_ha_fence(struct server *srv, char ***killed);
/* After a fencing that the lease survived (renewed before it ended, so the
 * master saw no death): the VMs of @uuids (taken) still resident here are
 * reset to Halted and the protected ones restarted here, on a worker. */
void pool_ha_recover_fenced(struct server *srv, char **uuids);

#endif
