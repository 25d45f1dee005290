/* api/pool_holders.h - this host's view of the keys one pool host holds at a
 * time (pool_live_hold: P/sr-gc/<sr uuid>, the holder a host uuid), kept by
 * an etcd watch (db/etcd_lease.h), so that asking who holds one is a read of
 * memory: a request to etcd could time out on a loaded host, and a call
 * routed by its answer would then run on the wrong host.
 *
 * Feed pool_holders_on_event to etcd_lease_watch; the other functions may be
 * called from any thread.
 */
#ifndef VESSEL_API_POOL_HOLDERS_H
#define VESSEL_API_POOL_HOLDERS_H

#include <stdbool.h>

#include "db/etcd_lease.h"

struct pool_holders;

struct pool_holders *pool_holders_new(void);
void pool_holders_free(struct pool_holders *h);
/* An etcd_watch_fn (@opaque the view): keys relative to the watch's prefix. */
void pool_holders_on_event(void *opaque, enum etcd_watch_event ev, const char *key,
                           const char *value);
/* false until the watch listed the keys (and while it lists them again);
 * true with *@holder the holder of @key, NULL for none (a new string). */
bool pool_holders_get(struct pool_holders *h, const char *key, char **holder);

#endif
