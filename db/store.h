/* db/store.h - the durable backend under db/: put, delete and list records by
 * class, in transactions. Narrow on purpose (ARCHITECTURE.md "State and
 * events"): the SQLite backend is one implementation; an etcd one can take
 * its place without touching db.c. Records travel as JSON text.
 *
 * Called by db.c under its write lock only (loads: before any other thread).
 */
#ifndef VESSEL_DB_STORE_H
#define VESSEL_DB_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/xtype.h"

struct store;

int store_open(const char *path, struct store **out, char *why, size_t why_len);
void store_close(struct store *st);

typedef int store_row_fn(void *opaque, const char *ref, uint64_t gen_created,
                         uint64_t gen_modified, const char *json, size_t len);
/* Calls @fn for every stored record of @cls; stops at a negative return. */
int store_load(struct store *st, const struct xclass *cls, store_row_fn *fn, void *opaque);
typedef int store_tomb_fn(void *opaque, uint64_t gen, const char *cls, const char *ref,
                          uint64_t gen_created);
int store_load_tombstones(struct store *st, store_tomb_fn *fn, void *opaque);
/* The generation saved by the last commit, 0 for a new store. */
uint64_t store_generation(struct store *st);

/* A transaction: begin, any number of puts/deletes, then commit or rollback.
 * Each returns 0 or a negative errno (-EIO with the backend's reason logged). */
int store_begin(struct store *st);
int store_put(struct store *st, const struct xclass *cls, const char *ref, uint64_t gen_created,
              uint64_t gen_modified, const char *json, size_t len);
int store_delete(struct store *st, const struct xclass *cls, const char *ref, uint64_t gen,
                 uint64_t gen_created);
int store_commit(struct store *st, uint64_t gen);
void store_rollback(struct store *st);
/* Drops tombstones older than @gen (kept: newer ones). */
int store_prune_tombstones(struct store *st, uint64_t gen);
/* The last error text, for logs. */
const char *store_error(struct store *st);

#endif
