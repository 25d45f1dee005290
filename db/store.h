/* db/store.h - the durable backend under db/: put, delete and list records by
 * class, in transactions. Narrow on purpose (ARCHITECTURE.md "State and
 * events"): SQLite (db/store_sqlite.c) for a single host, etcd
 * (db/store_etcd.c) for a pool; db.c does not know which one it talks to.
 * Records travel as JSON text.
 *
 * Called by db.c under its write lock only (loads: before any other thread),
 * except the change callback of store_follow, which the backend calls from
 * its own thread.
 */
#ifndef VESSEL_DB_STORE_H
#define VESSEL_DB_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/xtype.h"

struct store;

/* @path is a SQLite file (or ":memory:"), or "etcd:ENDPOINTS;PREFIX" for the
 * pool store (db/store_etcd.h). */
int store_open(const char *path, struct store **out, char *why, size_t why_len);
void store_close(struct store *st);

typedef int store_row_fn(void *opaque, const char *ref, uint64_t gen_created,
                         uint64_t gen_modified, const char *json, size_t len);
/* Calls @fn for every stored record of @cls; stops at a negative return. */
int store_load(struct store *st, const struct xclass *cls, store_row_fn *fn, void *opaque);
typedef int store_tomb_fn(void *opaque, uint64_t gen, const char *cls, const char *ref,
                          uint64_t gen_created);
int store_load_tombstones(struct store *st, store_tomb_fn *fn, void *opaque);
/* The generation of the data loaded: the last commit's, 0 for a new store. */
uint64_t store_generation(struct store *st);

/* A transaction: begin, any number of puts/deletes, then commit or rollback.
 * Each returns 0 or a negative errno (-EIO with the backend's reason logged).
 * @gen_read is the object's gen_modified when the batch read it (0: a new
 * object): a backend shared with other writers commits only if no object
 * changed since (compare-and-swap), else store_commit fails with -EAGAIN. */
int store_begin(struct store *st);
int store_put(struct store *st, const struct xclass *cls, const char *ref, uint64_t gen_created,
              uint64_t gen_modified, uint64_t gen_read, const char *json, size_t len);
int store_delete(struct store *st, const struct xclass *cls, const char *ref, uint64_t gen,
                 uint64_t gen_created, uint64_t gen_read);
/* Commits as generation @gen. *@committed is the generation the backend gave
 * the commit: @gen for SQLite; for etcd the transaction's revision (> @gen
 * when other writers committed meanwhile). On -EAGAIN (another writer changed
 * an object the batch wrote), *@committed is a generation whose changes,
 * once applied through store_follow, make a retry worthwhile. */
int store_commit(struct store *st, uint64_t gen, uint64_t *committed);
void store_rollback(struct store *st);
/* Drops tombstones older than @gen (kept: newer ones). */
int store_prune_tombstones(struct store *st, uint64_t gen);
/* The last error text, for logs. */
const char *store_error(struct store *st);

/* One changed object in another writer's commit. @json is NULL for a deletion. */
struct store_change {
    const struct xclass *cls;
    const char *ref;
    uint64_t gen_created;
    const char *json;
    size_t len;
};
/* Called from the backend's thread, in order, once per generation that
 * changed records (its own commits included: the callback recognises them).
 * @n may be 0: the generation only says the backend is complete up to it. */
typedef void store_change_fn(void *opaque, uint64_t gen, const struct store_change *changes,
                             size_t n);
/* Whether other writers share this store: then db.c's generation follows
 * store_follow's callback rather than its own commits. */
bool store_shared(struct store *st);
/* Starts reporting other writers' commits after store_generation(). 0 (and
 * never a call) for a store nobody else writes. Stopped by store_close. */
int store_follow(struct store *st, store_change_fn *fn, void *opaque);
/* The newest generation any writer has committed, read from the backend
 * itself (linearizable), within a couple of seconds; any thread. For a store
 * nobody else writes, store_generation(). 0 or -errno. */
int store_latest(struct store *st, uint64_t *gen);
/* Generation @gen exists (another host has applied it): a follower that
 * does not report it soon is stale and starts again. Nothing for a store
 * nobody else writes. */
void store_expect(struct store *st, uint64_t gen);

/* ---- for the backends ---- */
struct store_ops {
    void (*close)(struct store *st);
    int (*load)(struct store *st, const struct xclass *cls, store_row_fn *fn, void *opaque);
    int (*load_tombstones)(struct store *st, store_tomb_fn *fn, void *opaque);
    uint64_t (*generation)(struct store *st);
    int (*begin)(struct store *st);
    int (*put)(struct store *st, const struct xclass *cls, const char *ref, uint64_t gen_created,
               uint64_t gen_modified, uint64_t gen_read, const char *json, size_t len);
    int (*del)(struct store *st, const struct xclass *cls, const char *ref, uint64_t gen,
               uint64_t gen_created, uint64_t gen_read);
    int (*commit)(struct store *st, uint64_t gen, uint64_t *committed);
    void (*rollback)(struct store *st);
    int (*prune_tombstones)(struct store *st, uint64_t gen);
    const char *(*error)(struct store *st);
    int (*follow)(struct store *st, store_change_fn *fn, void *opaque); /* NULL: not shared */
    int (*latest)(struct store *st, uint64_t *gen); /* NULL: generation() */
    void (*expect)(struct store *st, uint64_t gen); /* NULL: not shared */
};
/* Every backend's state begins with this. */
struct store {
    const struct store_ops *ops;
};
int store_sqlite_open(const char *path, struct store **out, char *why, size_t why_len);
/* @spec is "ENDPOINT[,ENDPOINT...];PREFIX" (db/store_etcd.c). */
int store_etcd_open(const char *spec, struct store **out, char *why, size_t why_len);

#endif
