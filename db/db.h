/* db/db.h - the object store: every record of every class, and its changes.
 *
 * All objects live in memory as typed records (model/xtype.h), indexed by ref
 * and uuid; every write is also committed to a durable backend (SQLite, WAL:
 * db/store_sqlite.c) before the call that made it returns, so a kill -9 loses
 * nothing a client was told succeeded. On open, the backend is read back.
 *
 * Changes carry generations: one counter for the whole store, bumped by every
 * committed write; each object remembers the generation that created it and
 * the one that last changed it, and a deleted object leaves a tombstone with
 * the generation of its deletion. event.from (rpc/events.c) reads changes
 * since a generation from here; it never needs a log of every write.
 *
 * Reverse links (VM.VBDs from VBD.VM, ...) are kept here: when a forward ref
 * field changes, the target's set is updated in the same transaction (and the
 * target gets a mod event), and on open the sets are rebuilt from the forward
 * fields rather than trusted from disk.
 *
 * Threads: any thread may call any function. Reads share a lock; writes are
 * serialised (one writer at a time, readers wait during a commit). A callback
 * given to db_update/db_foreach runs under the lock: it must not call back
 * into db/.
 */
#ifndef VESSEL_DB_DB_H
#define VESSEL_DB_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/xerr.h"
#include "model/xtype.h"
#include "wire/wire.h"

struct db;

/* Called after each commit, outside the lock, with the new generation. */
typedef void db_commit_fn(void *opaque, uint64_t gen);

/* Opens (creating when missing) the store at @path ("x.db"; ":memory:" for a
 * store that does not outlive the process; "etcd:URL[,URL...];/PREFIX" for a
 * pool's store shared with other hosts, db/store_etcd.c). Returns 0 and
 * *out, or a negative errno with a reason in @why. */
int db_open(const char *path, struct db **out, char *why, size_t why_len);
void db_close(struct db *db);
void db_set_commit_hook(struct db *db, db_commit_fn *fn, void *opaque);

/* A new ref "OpaqueRef:<uuid v4>" / uuid, from the kernel's random source. */
char *db_new_ref(void);
char *db_new_uuid(void);
void db_uuid_generate(char out[37]);

/* ---- reads ---- */

bool db_exists(struct db *db, const struct xclass *cls, const char *ref);
/* A copy of the record; free with xrecord_free. HANDLE_INVALID [class, ref]. */
bool db_get(struct db *db, const struct xclass *cls, const char *ref, void **out,
            struct xerr **errp);
/* A copy of one field's value into @out (uninitialised; xtype_value_clear it). */
bool db_get_field(struct db *db, const struct xclass *cls, const char *ref,
                  const struct xfield *f, void *out, struct xerr **errp);
/* Writes the record / one field straight to @w (no copy). */
bool db_encode(struct db *db, const struct xclass *cls, const char *ref, struct wire_writer *w,
               struct xerr **errp);
bool db_encode_field(struct db *db, const struct xclass *cls, const char *ref,
                     const struct xfield *f, struct wire_writer *w, struct xerr **errp);
/* Called for each object of a class under the read lock; return false to stop. */
typedef bool db_visit_fn(void *opaque, const char *ref, const void *rec);
void db_foreach(struct db *db, const struct xclass *cls, db_visit_fn *fn, void *opaque);
/* UUID_INVALID [class, uuid]. *ref is new (free()). */
bool db_ref_by_uuid(struct db *db, const struct xclass *cls, const char *uuid, char **ref,
                    struct xerr **errp);
size_t db_count(struct db *db, const struct xclass *cls);
/* Calls @fn with the live record under the read lock (no copy).
 * HANDLE_INVALID when @ref is not an object of @cls. */
typedef void db_with_fn(void *opaque, const void *rec);
bool db_with(struct db *db, const struct xclass *cls, const char *ref, db_with_fn *fn,
             void *opaque, struct xerr **errp);
uint64_t db_generation(struct db *db);
/* True when the store is shared with other hosts (a pool's etcd): a commit
 * may then lose to another host's, or wait out an outage. */
bool db_is_shared(const struct db *db);
/* Waits (5 s at most) until this db holds every commit any writer of a
 * shared store had made when it was called: after another host answered a
 * call it ran, its changes are here too (read your writes across hosts).
 * True at once for a store nobody else writes; false when the store could
 * not be asked or the wait ran out. */
bool db_catch_up(struct db *db);
/* The same for a generation known to exist: one another host had applied
 * when it forwarded a call here (rpc/dispatch.c). True at once when this db
 * holds it already, or for a store nobody else writes. */
bool db_catch_up_to(struct db *db, uint64_t gen);

/* ---- writes: each is one transaction unless inside db_batch ---- */

/* Adds @rec (taken, also on failure) under a new ref (or @ref when not NULL).
 * An empty uuid is filled in. On success *ref_out (when not NULL) is a new
 * copy of the ref. Errors: DB_UNIQUENESS_CONSTRAINT_VIOLATION on a duplicate
 * ref or uuid. */
bool db_create(struct db *db, const struct xclass *cls, const char *ref, void *rec,
               char **ref_out, struct xerr **errp);
bool db_destroy(struct db *db, const struct xclass *cls, const char *ref, struct xerr **errp);
/* Runs @fn on the live record under the write lock. If @fn returns false the
 * record is restored and its error returned; if it changed nothing, nothing is
 * written and no event is produced. On a shared store (etcd), @fn runs again
 * on the newer record when another host changed the object meanwhile: it must
 * decide from the record alone.
 *
 * On a shared store, a write that lost a compare-and-swap to another host
 * fails with TOO_BUSY, nothing written; the single-object writes here retry
 * by themselves unless called inside a db_batch. */
typedef bool db_update_fn(void *opaque, void *rec, struct xerr **errp);
bool db_update(struct db *db, const struct xclass *cls, const char *ref, db_update_fn *fn,
               void *opaque, struct xerr **errp);
/* Sets one field to a copy of *@value. */
bool db_set_field(struct db *db, const struct xclass *cls, const char *ref,
                  const struct xfield *f, const void *value, struct xerr **errp);
/* Marks the object changed (a mod event) without changing it: event.inject. */
bool db_touch(struct db *db, const struct xclass *cls, const char *ref, struct xerr **errp);
/* Changes a field in memory only: no commit, no event (session.last_active). */
bool db_set_volatile(struct db *db, const struct xclass *cls, const char *ref,
                     const struct xfield *f, const void *value, struct xerr **errp);

/* Groups the writes this thread makes until db_batch_end into one
 * transaction: all or none of them are committed, with one commit. Batches
 * do not nest across threads: other writers wait. Returns with the write lock
 * held; db_batch_end(db, ok=false) rolls everything back in memory too. */
void db_batch_begin(struct db *db);
/* Whether this thread has a batch of @db open: its writes are not committed
 * until the outermost db_batch_end. */
bool db_in_batch(struct db *db);
bool db_batch_end(struct db *db, bool ok, struct xerr **errp);

/* ---- changes (events) ---- */

enum db_change_op { DB_CHANGE_ADD, DB_CHANGE_MOD, DB_CHANGE_DEL };

/* Called under the read lock for each object of @cls changed after @since;
 * @rec is NULL for a deletion (then @snapshot is the last record, or NULL
 * when the tombstone came from disk). */
typedef void db_change_fn(void *opaque, const struct xclass *cls, enum db_change_op op,
                          const char *ref, uint64_t gen, const void *rec);
/* Reports changes of the classes whose bit is set in @class_mask (bit i =
 * xapi_classes[i]) after generation @since. Returns false when @since is
 * older than the oldest change kept (the caller answers EVENTS_LOST), else
 * true and *@now = the generation the report is complete up to. With
 * @since == 0 ... but see db_report_all for a full listing. */
bool db_changes_since(struct db *db, uint64_t since, const uint64_t *class_mask,
                      db_change_fn *fn, void *opaque, uint64_t *now);
/* Every live object of the masked classes, as ADD; *now as above. */
void db_report_all(struct db *db, const uint64_t *class_mask, db_change_fn *fn, void *opaque,
                   uint64_t *now);

#endif
