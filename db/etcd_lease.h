/* db/etcd_lease.h - etcd leases and the few small keys that hang on them: a
 * host's liveness key and the pool master's key (api/pool_live.c). SQLite has
 * no counterpart: a standalone host is always live and always master, so
 * nothing here is opened for it.
 *
 * Keys are given relative to the pool's prefix ("live/<uuid>", "master").
 * Every call is one HTTP request (or a few, over the endpoints) bounded by the
 * timeout given at open, so a caller that must act on time (fencing) knows
 * how long a call can take. Any thread may call any function at once, except
 * etcd_lease_close. Errors are -errno: -ENOENT (no such lease or key), -EIO
 * (etcd did not answer or refused; etcd_lease_error() says why, for this
 * thread), -ENOMEM.
 */
#ifndef VESSEL_DB_ETCD_LEASE_H
#define VESSEL_DB_ETCD_LEASE_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

struct etcd_lease;

/* @spec is the pool store's "ENDPOINT[,ENDPOINT...];/PREFIX" (db/store.h).
 * @timeout_ms bounds each request (connection included). */
int etcd_lease_open(const char *spec, long timeout_ms, struct etcd_lease **out, char *why,
                    size_t why_len);
/* Stops the watch (if any) and frees. Leases are left to expire: revoke first
 * for a clean exit. */
void etcd_lease_close(struct etcd_lease *el);
/* The last error of the calling thread, for logs. */
const char *etcd_lease_error(void);

/* A new lease of @ttl_s seconds: *@id, and *@granted_s, the TTL etcd gave
 * (etcd raises a TTL below its minimum, 1.5 election timeouts). */
int etcd_lease_grant(struct etcd_lease *el, int ttl_s, int64_t *id, int *granted_s);
/* Renews lease @id: *@ttl_s is its full TTL again. -ENOENT when it expired
 * or was revoked (its keys are gone). */
int etcd_lease_keepalive(struct etcd_lease *el, int64_t id, int *ttl_s);
/* Ends lease @id now: its keys are deleted. */
int etcd_lease_revoke(struct etcd_lease *el, int64_t id);

/* Puts @key = @value attached to @lease (0: none). */
int etcd_lease_put(struct etcd_lease *el, const char *key, const char *value, int64_t lease);
/* Puts @key = @value on @lease only if @key does not exist, in one
 * transaction: *@created says whether it did. */
int etcd_lease_create(struct etcd_lease *el, const char *key, const char *value, int64_t lease,
                      bool *created);
/* Puts @key = @value on @lease only if @key holds @expect now: *@done. */
int etcd_lease_replace(struct etcd_lease *el, const char *key, const char *expect,
                       const char *value, int64_t lease, bool *done);
/* Deletes @key if it holds @expect (any value when NULL). */
int etcd_lease_delete(struct etcd_lease *el, const char *key, const char *expect);
/* *@value (free()) and *@lease (when not NULL) of @key; -ENOENT without it. */
int etcd_lease_get(struct etcd_lease *el, const char *key, char **value, int64_t *lease);

/* What a watch reports: ETCD_WATCH_RESET starts a full listing of the keys
 * in range (after the watch started or restarted: changes may have been
 * missed), each key then as a PUT, and ETCD_WATCH_SYNCED ends it; afterwards
 * each change as it commits. @key is relative to the prefix. */
enum etcd_watch_event { ETCD_WATCH_RESET, ETCD_WATCH_SYNCED, ETCD_WATCH_PUT, ETCD_WATCH_DELETE };
typedef void etcd_watch_fn(void *opaque, enum etcd_watch_event ev, const char *key,
                           const char *value);
/* Watches every key starting with @key_prefix, on a thread of its own that
 * calls @fn in commit order until etcd_lease_close (up to 4 watches). */
int etcd_lease_watch(struct etcd_lease *el, const char *key_prefix, etcd_watch_fn *fn,
                     void *opaque);

#endif
