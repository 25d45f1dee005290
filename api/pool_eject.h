/* api/pool_eject.h - the member's side of pool.eject.
 *
 * pool.eject (api/pool_eject.c) marks the host (host.eject_requested, an
 * internal field) and waits for its record to leave the store. Each member
 * watches its own mark: when set, it copies its own objects
 * (api/pool_objects.h) into a fresh DATA/vessel.db with a pool of its own,
 * deletes them from the pool's store, removes DATA/pool.conf and
 * DATA/ptoken, and restarts standalone. */
#ifndef VESSEL_API_POOL_EJECT_H
#define VESSEL_API_POOL_EJECT_H

#include "rpc/ctx.h"

/* Starts the watch (a thread reading this host's record, in memory, every
 * 200 ms) on a store shared with other hosts; nothing on SQLite. */
int pool_eject_watch_start(struct server *srv);
void pool_eject_watch_stop(struct server *srv);

#endif
