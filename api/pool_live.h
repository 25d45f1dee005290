/* api/pool_live.h - a pool host's liveness, the master's election and
 * fencing, on etcd leases (db/etcd_lease.h).
 *
 * Each host of a pool on etcd holds a lease it renews, and the key
 * P/live/<host uuid> on it; the master is whoever holds P/master (created on
 * its holder's lease only when absent), and writes host_metrics.live of every
 * host as their keys come and go. A standalone host (SQLite) has no lease: it
 * is always live and always master, and nothing here runs for it.
 *
 * Started by daemon/main.c once the listeners run, stopped before the store
 * closes. The other functions may be called from any thread.
 */
#ifndef VESSEL_API_POOL_LIVE_H
#define VESSEL_API_POOL_LIVE_H

#include <stdbool.h>

#include "rpc/ctx.h"

struct pool_live_config {
    /* the pool store's "ENDPOINTS;/PREFIX" (db/store.h), NULL for SQLite */
    const char *etcd_spec;
    int ttl_s;    /* the lease's TTL (--lease-ttl) */
    int renew_ms; /* how often it is renewed (--lease-renew-ms) */
};

/* Defaults, and why: a dead host is noticed within TTL (6 s: a few seconds
 * is what an HA restart may cost; etcd's own floor is 1.5 election timeouts,
 * 1.5 s by default). Renewing every second lets four renewals fail before
 * fencing starts at TTL - TTL/3, so a short hiccup of etcd (a leader
 * election takes ~1 s) costs nothing. */
#define POOL_LIVE_TTL_S 6
#define POOL_LIVE_RENEW_MS 1000

/* For a store on etcd: grants the lease, puts this host's live key, starts
 * the renewals, the watches and the fencing watchdog. For SQLite: marks the
 * host live. Returns 0, or -errno with the reason in @why. */
int pool_live_start(struct server *srv, const struct pool_live_config *cfg, char *why,
                    size_t why_len);
/* Revokes the lease (this host is not live any more, the master key moves at
 * once when it held it) and stops the threads. */
void pool_live_stop(struct server *srv);

/* Whether this host's keys live in a pool's etcd (false for SQLite): other
 * hosts then see its writer keys and leases. */
bool pool_live_shared(struct server *srv);
/* Whether this host is the pool's master: pool.master names it and it is not
 * cut off (its lease may have gone to another master meanwhile). */
bool pool_live_is_master(struct server *srv);
/* Whether this host of a pool on etcd renewed no lease for two thirds of its
 * TTL (the fencing's threshold, when HA is on): what it knows of the pool may
 * be stale, and its master key may have expired. Never for a standalone host. */
bool pool_live_cut_off(struct server *srv);
/* The master's host.address (a new string, free()), NULL without one. */
char *pool_live_master_address(struct server *srv);
/* Whether this host fenced itself and has not renewed its lease since: it
 * then acts on no guest's own change (no restart after a fencing kill). */
bool pool_live_fenced(struct server *srv);
/* Called by the fencing before it kills domain @uuid (@kills true): that
 * domain's exit is the fencing's, whenever it is handled; with @kills false,
 * the domain was gone already and the mark is taken back. */
void pool_live_fencing_kills(struct server *srv, const char *uuid, bool kills);
/* Whether a domain event of @uuid is not to be acted on: this host is fenced,
 * or the fencing killed that domain and this is its exit's event (@last: its
 * final one, HALTED, which ends that). The exit of a guest with disks is
 * handled after its disk servers stop, which may wait for an etcd out of
 * reach: a renewal may succeed in between. */
bool pool_live_ignores_exit(struct server *srv, const char *uuid, bool last);
/* Whether host @ref's live key exists (a standalone host: always). */
bool pool_live_host_is_live(struct server *srv, const char *host_ref);

/* Holds @key (relative to the pool's prefix, e.g. "sr-gc/<sr uuid>") on this
 * host's lease, so that one host of the pool at a time does a job (the
 * collector of a shared SR): the key is created when absent, and moves to
 * this host's new lease when its old one expired. true while this host holds
 * it; false when another host does or etcd cannot say. A standalone host
 * always holds it. */
bool pool_live_hold(struct server *srv, const char *key);
/* pool_live_hold for a key host @from_uuid holds and hands over (a VDI's
 * writer after a live migration): one transaction moves it to this host's
 * lease when @from_uuid still holds it; otherwise as pool_live_hold. */
bool pool_live_take(struct server *srv, const char *key, const char *from_uuid);
/* The host uuid @key names (a new string, free()), NULL when none or a
 * standalone host. */
char *pool_live_holder(struct server *srv, const char *key);
/* Deletes @key when this host holds it (a standalone host: nothing). */
void pool_live_release(struct server *srv, const char *key);

/* pool.designate_new_master: hands the master key over to live host @host
 * and waits (bounded) until pool.master names it. */
bool pool_live_designate(struct server *srv, const char *host, struct xerr **errp);
/* pool.emergency_transition_to_master: takes the master key whoever holds it. */
bool pool_live_take_master(struct server *srv, struct xerr **errp);

#endif
