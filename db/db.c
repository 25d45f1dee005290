/* db/db.c - the in-memory object store with write-through commits.
 *
 * Layout: per class, objects indexed by ref and by uuid (common/hashmap) and
 * threaded on a list in order of last change, so "what changed after
 * generation g" walks back from the tail and stops at the first older object.
 * Deletions leave tombstones, oldest first, bounded by TOMB_MAX.
 *
 * Writes: every write runs inside a batch (an implicit one for single calls).
 * Invariants:
 *  (1) a batch holds the write lock from begin to end, so no reader sees a
 *      half-done batch;
 *  (2) the first time a batch touches an object it saves how the object was
 *      (undo entry), so a failed batch - in SQLite or in the caller - puts
 *      memory back exactly;
 *  (3) every object a batch touches ends with gen_modified = the batch's
 *      generation, and db->gen moves to it only once the backend committed;
 *  (4) reverse-link sets are only written by relink(): they always equal the
 *      set of objects whose forward ref names the object.
 *
 * A shared store (etcd: db/store_etcd.c) has other writers. Then a commit's
 * generation is the one the backend gave it (the etcd revision), stamped on
 * the batch's objects after the commit; db->gen, the generation event.from
 * reports complete up to, moves only as the backend's follower reports
 * generations in order (apply_remote), our own commits included, so no
 * token ever skips another writer's earlier commit; a write returns once
 * its own generation came back that way, so a token read after it covers
 * it, as on one host. A commit that lost a
 * compare-and-swap (-EAGAIN) is rolled back in memory like any failed batch;
 * the single-object writes (db_update, db_create, db_destroy, db_touch) wait
 * for the follower to bring the other writer's change, then run again.
 */
#include "db/db.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "common/hashmap.h"
#include "common/log.h"
#include "common/strbuf.h"
#include "db/enc_cache.h"
#include "db/store.h"
#include "wire/jsonrpc.h"
#include "xapi_errors.h"

#define TOMB_MAX 100000
/* How long a single-object write keeps trying while other hosts' commits
 * to the same object keep winning (a host writing one object in a loop wins
 * until it stops: its own memory is always current). */
#define CONFLICT_RETRY_MS 10000
#define CATCH_UP_WAIT_MS 5000

struct dbobj {
    char *ref;
    void *rec;
    char *uuid; /* copy of the uuid the object is indexed under */
    uint64_t gen_created;
    uint64_t gen_modified;
    uint64_t batch_seen; /* the batch that saved an undo entry for it */
    struct dbobj *prev, *next;
    bool linked;
    struct enc_cache enc; /* reply bytes of gen_modified (db/enc_cache.h) */
};

struct tomb {
    uint64_t gen;
    uint64_t gen_created;
    const struct xclass *cls;
    char *ref;
};

/* A reverse link: a change to forward field @fwd of this class updates set
 * @set of class @target (xfield.inverse_*). */
struct revlink {
    const struct xfield *fwd;
    const struct xclass *target;
    const struct xfield *set;
};

struct dbclass {
    const struct xclass *cls;
    struct hashmap by_ref;
    struct hashmap by_uuid;
    struct dbobj *head, *tail;
    size_t n;
    struct revlink *links;
    size_t n_links;
};

struct unconfirmed_del {
    char *ref;
    uint64_t gen;
};

struct undo {
    const struct xclass *cls;
    struct dbobj *obj;  /* the live object (or the removed one, when deleted) */
    bool existed;       /* before the batch */
    void *old_rec;      /* copy of the record before the batch */
    uint64_t old_gen_modified;
    bool deleted;       /* removed from the indexes by this batch */
};

struct db {
    struct store *store;
    pthread_rwlock_t lock;
    pthread_mutex_t writer; /* held for a whole batch (invariant 1) */
    int batch_depth; /* of the thread holding the writer lock (this_batch_db) */
    bool batch_failed;
    uint64_t batch_gen;
    uint64_t batch_id;
    struct undo *undo;
    size_t n_undo, cap_undo;

    uint64_t gen;
    uint64_t lost_before; /* changes before this generation are not all known */
    struct dbclass *classes;
    struct tomb *tombs; /* ring, oldest at tomb_head */
    size_t tomb_head, n_tombs;

    db_commit_fn *on_commit;
    void *on_commit_opaque;

    bool shared;             /* store_shared(): other writers commit too */
    /* Shared store: objects this process deleted whose deletion the follower
     * has not reported yet (struct unconfirmed_del by ref), so that an
     * earlier commit arriving meanwhile does not bring them back. */
    struct hashmap unconfirmed_dels;
    pthread_mutex_t gen_mu;  /* with gen_cv: waits for db->gen to reach a generation */
    pthread_cond_t gen_cv;
};

/* ------------------------------------------------------------------ ids */

void
db_uuid_generate(char out[37])
{
    unsigned char b[16];
    size_t got = 0;
    while (got < sizeof(b)) {
        ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
        if (n > 0)
            got += (size_t)n;
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
             b[13], b[14], b[15]);
}

char *
db_new_uuid(void)
{
    char u[37];
    db_uuid_generate(u);
    return strdup(u);
}

char *
db_new_ref(void)
{
    char u[37];
    db_uuid_generate(u);
    char *r = malloc(sizeof("OpaqueRef:") + 36);
    if (r)
        snprintf(r, sizeof("OpaqueRef:") + 36, "OpaqueRef:%s", u);
    return r;
}

/* ------------------------------------------------------------------ indexes */

static struct dbclass *
dbclass_of(struct db *db, const struct xclass *cls)
{
    return &db->classes[cls->id];
}

static struct dbobj *
lookup(struct db *db, const struct xclass *cls, const char *ref)
{
    if (!cls->stored || !ref)
        return NULL;
    return hashmap_get(&dbclass_of(db, cls)->by_ref, ref);
}

static void
list_unlink(struct dbclass *dc, struct dbobj *o)
{
    if (!o->linked)
        return;
    if (o->prev)
        o->prev->next = o->next;
    else
        dc->head = o->next;
    if (o->next)
        o->next->prev = o->prev;
    else
        dc->tail = o->prev;
    o->prev = o->next = NULL;
    o->linked = false;
}

/* Keeps the list ordered by gen_modified: insert before the first newer one
 * from the tail (almost always: at the tail). */
static void
list_insert_ordered(struct dbclass *dc, struct dbobj *o)
{
    struct dbobj *after = dc->tail;
    while (after && after->gen_modified > o->gen_modified)
        after = after->prev;
    o->prev = after;
    o->next = after ? after->next : dc->head;
    if (o->next)
        o->next->prev = o;
    else
        dc->tail = o;
    if (after)
        after->next = o;
    else
        dc->head = o;
    o->linked = true;
}

static int
index_add(struct dbclass *dc, struct dbobj *o)
{
    if (hashmap_put(&dc->by_ref, o->ref, o) < 0)
        return -ENOMEM;
    if (hashmap_put(&dc->by_uuid, o->uuid, o) < 0) {
        hashmap_remove(&dc->by_ref, o->ref);
        return -ENOMEM;
    }
    list_insert_ordered(dc, o);
    dc->n++;
    return 0;
}

static void
index_remove(struct dbclass *dc, struct dbobj *o)
{
    hashmap_remove(&dc->by_ref, o->ref);
    hashmap_remove(&dc->by_uuid, o->uuid);
    list_unlink(dc, o);
    dc->n--;
}

static void
obj_free(const struct xclass *cls, struct dbobj *o)
{
    if (!o)
        return;
    enc_cache_drop(&o->enc);
    xrecord_free(cls, o->rec);
    free(o->ref);
    free(o->uuid);
    free(o);
}

/* ------------------------------------------------------------------ batches */

/* Which store this thread holds a batch of. Per thread, not a field of the
 * store: another thread must never read "a batch is open" as its own (it
 * would then skip taking the read lock, or release one it does not hold). */
static _Thread_local struct db *this_batch_db;

static bool
in_batch(struct db *db)
{
    return this_batch_db == db;
}

bool
db_in_batch(struct db *db)
{
    return in_batch(db);
}

void
db_batch_begin(struct db *db)
{
    if (in_batch(db)) {
        db->batch_depth++;
        return;
    }
    pthread_mutex_lock(&db->writer);
    pthread_rwlock_wrlock(&db->lock);
    this_batch_db = db;
    db->batch_depth = 1;
    db->batch_failed = false;
    db->batch_gen = db->gen + 1;
    db->batch_id++;
    db->n_undo = 0;
}

/* Invariant 2: remember the object as it was before this batch. */
static int
save_undo(struct db *db, const struct xclass *cls, struct dbobj *o, bool existed)
{
    assert(in_batch(db));
    enc_cache_drop(&o->enc); /* the write lock is held: no reader has the bytes */
    if (o->batch_seen == db->batch_id)
        return 0;
    if (db->n_undo == db->cap_undo) {
        size_t cap = db->cap_undo ? db->cap_undo * 2 : 16;
        struct undo *u = realloc(db->undo, cap * sizeof(*u));
        if (!u)
            return -ENOMEM;
        db->undo = u;
        db->cap_undo = cap;
    }
    struct undo *u = &db->undo[db->n_undo];
    memset(u, 0, sizeof(*u));
    u->cls = cls;
    u->obj = o;
    u->existed = existed;
    u->old_gen_modified = o->gen_modified;
    if (existed && !(u->old_rec = xrecord_copy(cls, o->rec)))
        return -ENOMEM;
    db->n_undo++;
    o->batch_seen = db->batch_id;
    return 0;
}

static struct undo *
undo_of(struct db *db, struct dbobj *o)
{
    for (size_t i = db->n_undo; i-- > 0;)
        if (db->undo[i].obj == o)
            return &db->undo[i];
    return NULL;
}

/* Invariant 3: a touched object moves to the tail with the batch's generation. */
static void
mark_modified(struct db *db, const struct xclass *cls, struct dbobj *o)
{
    struct dbclass *dc = dbclass_of(db, cls);
    o->gen_modified = db->batch_gen;
    list_unlink(dc, o);
    list_insert_ordered(dc, o);
}

static void
rollback_memory(struct db *db)
{
    for (size_t i = db->n_undo; i-- > 0;) {
        struct undo *u = &db->undo[i];
        struct dbclass *dc = dbclass_of(db, u->cls);
        struct dbobj *o = u->obj;
        if (!u->deleted)
            index_remove(dc, o);
        if (!u->existed) {
            obj_free(u->cls, o);
            continue;
        }
        xrecord_free(u->cls, o->rec);
        o->rec = u->old_rec;
        u->old_rec = NULL;
        o->gen_modified = u->old_gen_modified;
        o->batch_seen = 0;
        if (index_add(dc, o) < 0)
            obj_free(u->cls, o); /* cannot happen: the slots were just freed */
    }
}

static char *
record_json(const struct xclass *cls, const void *rec, size_t *len)
{
    struct strbuf sb = STRBUF_INIT;
    struct wire_writer w;
    wire_writer_init(&w, WIRE_JSON, &sb);
    xrecord_encode(cls, rec, &w, true);
    return strbuf_steal(&sb, len);
}

static void
tomb_add(struct db *db, const struct xclass *cls, const char *ref, uint64_t gen,
         uint64_t gen_created)
{
    char *r = strdup(ref);
    if (!r) {
        db->lost_before = gen + 1; /* cannot remember it: say so to old tokens */
        return;
    }
    if (db->n_tombs == TOMB_MAX) {
        struct tomb *old = &db->tombs[db->tomb_head];
        db->lost_before = old->gen + 1;
        free(old->ref);
        db->tomb_head = (db->tomb_head + 1) % TOMB_MAX;
        db->n_tombs--;
    }
    struct tomb *t = &db->tombs[(db->tomb_head + db->n_tombs) % TOMB_MAX];
    t->gen = gen;
    t->gen_created = gen_created;
    t->cls = cls;
    t->ref = r;
    db->n_tombs++;
}

static int
persist(struct db *db, uint64_t *committed)
{
    int rc = store_begin(db->store);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < db->n_undo && rc == 0; i++) {
        struct undo *u = &db->undo[i];
        struct dbobj *o = u->obj;
        if (u->deleted) {
            if (u->existed)
                rc = store_delete(db->store, u->cls, o->ref, db->batch_gen, o->gen_created,
                                  u->old_gen_modified);
            continue;
        }
        size_t len;
        char *json = record_json(u->cls, o->rec, &len);
        if (!json) {
            rc = -ENOMEM;
            break;
        }
        rc = store_put(db->store, u->cls, o->ref, o->gen_created, o->gen_modified,
                       u->existed ? u->old_gen_modified : 0, json, len);
        free(json);
    }
    if (rc == 0)
        return store_commit(db->store, db->batch_gen, committed);
    store_rollback(db->store);
    return rc;
}

static void
unconfirmed_del_free(void *v)
{
    struct unconfirmed_del *d = v;
    free(d->ref);
    free(d);
}

static void
remember_deletion(struct db *db, const char *ref, uint64_t gen)
{
    struct unconfirmed_del *d = calloc(1, sizeof(*d));
    if (d)
        d->gen = gen;
    if (!d || !(d->ref = strdup(ref)) || hashmap_put(&db->unconfirmed_dels, d->ref, d) < 0) {
        if (d)
            free(d->ref);
        free(d);
        log_warn("db.remote", "ref=%s reason=out-of-memory", ref); /* at worst it reappears
                                                                      until the deletion comes */
    }
}

static void wait_for_gen(struct db *db, uint64_t gen);

/* A shared store gave the commit generation @gen, not batch_gen: the
 * batch's objects move to it (and to the tail of their lists). */
static void
restamp(struct db *db, uint64_t gen)
{
    for (size_t i = 0; i < db->n_undo; i++) {
        struct undo *u = &db->undo[i];
        if (u->deleted)
            continue;
        if (!u->existed)
            u->obj->gen_created = gen;
        u->obj->gen_modified = gen;
        struct dbclass *dc = dbclass_of(db, u->cls);
        list_unlink(dc, u->obj);
        list_insert_ordered(dc, u->obj);
    }
    db->batch_gen = gen;
}

/* Ends the outermost batch. On a lost compare-and-swap, *@conflict (when not
 * NULL) is the generation to wait for before trying again. */
static bool
batch_end(struct db *db, bool ok, struct xerr **errp, uint64_t *conflict)
{
    assert(in_batch(db) && db->batch_depth > 0); /* invariant 1: we hold the write lock */
    if (--db->batch_depth > 0) {
        if (!ok)
            db->batch_failed = true;
        return ok;
    }
    bool failed = !ok || db->batch_failed;
    int rc = 0;
    uint64_t committed = 0, stamped = 0, own = 0;
    if (!failed && db->n_undo > 0) {
        rc = persist(db, &stamped);
        if (rc < 0)
            failed = true;
    }
    if (failed) {
        rollback_memory(db);
    } else if (db->n_undo > 0) {
        /* invariant 3: one generation per batch */
        assert(db->shared ? stamped > db->gen : stamped == db->gen + 1);
        if (stamped != db->batch_gen)
            restamp(db, stamped);
        for (size_t i = 0; i < db->n_undo; i++) {
            struct undo *u = &db->undo[i];
            if (u->deleted) {
                if (u->existed) {
                    tomb_add(db, u->cls, u->obj->ref, db->batch_gen, u->obj->gen_created);
                    if (db->shared)
                        remember_deletion(db, u->obj->ref, db->batch_gen);
                }
                obj_free(u->cls, u->obj);
            }
        }
        if (!db->shared) {
            db->gen = db->batch_gen;
            committed = db->gen;
        } else {
            own = db->batch_gen; /* apply_remote reports it, in order */
        }
    }
    for (size_t i = 0; i < db->n_undo; i++)
        xrecord_free(db->undo[i].cls, db->undo[i].old_rec);
    db->n_undo = 0;
    db->batch_depth = 0;
    this_batch_db = NULL;
    pthread_rwlock_unlock(&db->lock);
    pthread_mutex_unlock(&db->writer);
    if (committed && db->on_commit)
        db->on_commit(db->on_commit_opaque, committed);
    /* A call that returns has its change in the generation event.from
     * answers from (a token read after a write covers it, as on one host):
     * wait for the watch to bring it back, a millisecond or so. */
    if (own)
        wait_for_gen(db, own);
    if (rc == -EAGAIN) {
        /* Another host changed an object this batch wrote: nothing was
         * written; the caller may try again on the newer state. */
        if (conflict)
            *conflict = stamped;
        return xerr_too_busy(errp);
    }
    if (rc < 0)
        return xerr_internal(errp, "database commit failed: %s", store_error(db->store));
    return !failed;
}

bool
db_batch_end(struct db *db, bool ok, struct xerr **errp)
{
    return batch_end(db, ok, errp, NULL);
}

/* Waits (bounded) until the follower applied generation @gen. */
static void
wait_for_gen(struct db *db, uint64_t gen)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += CATCH_UP_WAIT_MS / 1000;
    pthread_mutex_lock(&db->gen_mu);
    while (db_generation(db) < gen)
        if (pthread_cond_timedwait(&db->gen_cv, &db->gen_mu, &until) != 0)
            break;
    pthread_mutex_unlock(&db->gen_mu);
}

bool
db_catch_up(struct db *db)
{
    if (!store_shared(db->store))
        return true;
    uint64_t latest = 0;
    if (store_latest(db->store, &latest) < 0)
        return false;
    /* not store_expect: etcd's revision counts every key of the cluster, and
     * the watch reports only this pool's prefix, so @latest may never come */
    wait_for_gen(db, latest);
    return db_generation(db) >= latest;
}

bool
db_catch_up_to(struct db *db, uint64_t gen)
{
    if (!store_shared(db->store) || db_generation(db) >= gen)
        return true;
    /* @gen is what another host of the pool had applied: a revision of the
     * pool's prefix, which a follower that does not bring it has missed
     * (it starts again). Only a host that applied nothing since it loaded
     * names the cluster's revision then, which may be another prefix's. */
    store_expect(db->store, gen);
    wait_for_gen(db, gen);
    return db_generation(db) >= gen;
}

static long
ms_since(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - t0->tv_sec) * 1000L + (now.tv_nsec - t0->tv_nsec) / 1000000L;
}

/* Whether a single-object write that just ended should run again: it lost a
 * compare-and-swap, was not inside a caller's batch, and has time left. It
 * then waits for the winner's change, and a little more the more it lost
 * (up to 32 ms, at random), so that two hosts on one object take turns. */
static bool
retry_after_conflict(struct db *db, bool ok, uint64_t conflict, struct timespec *t0,
                     int *attempt, struct xerr **errp)
{
    if (ok || !conflict)
        return false;
    if (*attempt == 0)
        clock_gettime(CLOCK_MONOTONIC, t0);
    else if (ms_since(t0) >= CONFLICT_RETRY_MS)
        return false;
    if (errp) {
        xerr_free(*errp);
        *errp = NULL;
    }
    wait_for_gen(db, conflict);
    unsigned r = 0;
    if (getrandom(&r, sizeof(r), 0) == sizeof(r)) {
        unsigned cap = *attempt < 5 ? 1u << *attempt : 32u;
        unsigned us = r % (cap * 1000u);
        nanosleep(&(struct timespec){0, (long)us * 1000L}, NULL);
    }
    ++*attempt;
    return true;
}

/* ------------------------------------------------------------------ reverse links */

static int
touch_in_batch(struct db *db, const struct xclass *cls, struct dbobj *o)
{
    if (save_undo(db, cls, o, true) < 0)
        return -ENOMEM;
    mark_modified(db, cls, o);
    return 0;
}

/* Invariant 4: object @ref of @cls went from @old to @new (either NULL). */
static int
relink(struct db *db, const struct xclass *cls, const char *ref, const void *old, const void *new)
{
    struct dbclass *dc = dbclass_of(db, cls);
    for (size_t i = 0; i < dc->n_links; i++) {
        const struct revlink *l = &dc->links[i];
        const char *was = old ? *(char *const *)xrecord_field_cptr(old, l->fwd) : NULL;
        const char *now = new ? *(char *const *)xrecord_field_cptr(new, l->fwd) : NULL;
        if (was && now && strcmp(was, now) == 0)
            continue;
        struct dbobj *t;
        if (was && (t = lookup(db, l->target, was))) {
            if (touch_in_batch(db, l->target, t) < 0)
                return -ENOMEM;
            xset_remove_str(xrecord_field_ptr(t->rec, l->set), ref);
        }
        if (now && (t = lookup(db, l->target, now))) {
            if (touch_in_batch(db, l->target, t) < 0 ||
                xset_add_str(xrecord_field_ptr(t->rec, l->set), ref) < 0)
                return -ENOMEM;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ writes */

static bool
create_once(struct db *db, const struct xclass *cls, const char *ref, void *rec, char **ref_out,
            struct xerr **errp, uint64_t *conflict)
{
    char **uuidp = xrecord_field_ptr(rec, &cls->fields[cls->uuid_field]);
    struct dbobj *o = calloc(1, sizeof(*o));
    if (!o) {
        xrecord_free(cls, rec);
        return xerr_nomem(errp);
    }
    o->rec = rec;
    o->ref = ref ? strdup(ref) : db_new_ref();
    if (!*uuidp || !**uuidp) {
        free(*uuidp);
        *uuidp = db_new_uuid();
    }
    o->uuid = *uuidp ? strdup(*uuidp) : NULL;
    if (!o->ref || !o->uuid) {
        obj_free(cls, o);
        return xerr_nomem(errp);
    }
    /* Reverse-link sets are derived (invariant 4): whatever the caller put there goes. */
    struct dbclass *dc = dbclass_of(db, cls);
    for (size_t i = 0; i < cls->n_fields; i++)
        if (cls->fields[i].inverse_class)
            xtype_value_clear(cls->fields[i].type, xrecord_field_ptr(rec, &cls->fields[i]));

    db_batch_begin(db);
    bool ok = false;
    if (hashmap_get(&dc->by_ref, o->ref)) {
        xerr_db_uniqueness_constraint_violation(errp, cls->name, "ref", o->ref);
    } else if (hashmap_get(&dc->by_uuid, o->uuid)) {
        xerr_db_uniqueness_constraint_violation(errp, cls->name, "uuid", o->uuid);
    } else {
        o->gen_created = o->gen_modified = db->batch_gen;
        if (index_add(dc, o) < 0) {
            xerr_nomem(errp);
        } else if (save_undo(db, cls, o, false) < 0) {
            index_remove(dc, o);
            xerr_nomem(errp);
        } else {
            o = NULL; /* owned by the store (or the undo log) now */
            ok = true;
        }
    }
    struct dbobj *created = ok ? db->undo[db->n_undo - 1].obj : NULL;
    if (ok && relink(db, cls, created->ref, NULL, created->rec) < 0)
        ok = xerr_nomem(errp);
    char *copy = NULL;
    if (ok && ref_out && !(copy = strdup(created->ref)))
        ok = xerr_nomem(errp);
    if (o)
        obj_free(cls, o);
    if (!batch_end(db, ok, errp, conflict)) {
        free(copy);
        return false;
    }
    if (ref_out)
        *ref_out = copy;
    return true;
}

bool
db_create(struct db *db, const struct xclass *cls, const char *ref, void *rec, char **ref_out,
          struct xerr **errp)
{
    if (!db->shared || in_batch(db))
        return create_once(db, cls, ref, rec, ref_out, errp, NULL);
    /* A retry needs the record again: each attempt gets a copy. */
    bool ok;
    int attempt = 0;
    struct timespec t0;
    uint64_t conflict;
    do {
        conflict = 0;
        void *copy = xrecord_copy(cls, rec);
        ok = copy ? create_once(db, cls, ref, copy, ref_out, errp, &conflict) : xerr_nomem(errp);
    } while (retry_after_conflict(db, ok, conflict, &t0, &attempt, errp));
    xrecord_free(cls, rec);
    return ok;
}

static bool
destroy_once(struct db *db, const struct xclass *cls, const char *ref, struct xerr **errp,
             uint64_t *conflict)
{
    db_batch_begin(db);
    struct dbobj *o = lookup(db, cls, ref);
    bool ok;
    if (!o) {
        ok = xerr_handle_invalid(errp, cls->name, ref);
    } else if (save_undo(db, cls, o, true) < 0) {
        ok = xerr_nomem(errp);
    } else {
        ok = relink(db, cls, o->ref, o->rec, NULL) == 0 || xerr_nomem(errp);
        if (ok) {
            index_remove(dbclass_of(db, cls), o);
            undo_of(db, o)->deleted = true;
        }
    }
    return batch_end(db, ok, errp, conflict);
}

bool
db_destroy(struct db *db, const struct xclass *cls, const char *ref, struct xerr **errp)
{
    bool outer = db->shared && !in_batch(db), ok;
    int attempt = 0;
    struct timespec t0;
    uint64_t conflict;
    do {
        conflict = 0;
        ok = destroy_once(db, cls, ref, errp, outer ? &conflict : NULL);
    } while (retry_after_conflict(db, ok, conflict, &t0, &attempt, errp));
    return ok;
}

static bool
update_once(struct db *db, const struct xclass *cls, const char *ref, db_update_fn *fn,
            void *opaque, struct xerr **errp, uint64_t *conflict)
{
    db_batch_begin(db);
    struct dbobj *o = lookup(db, cls, ref);
    bool ok;
    if (!o) {
        ok = xerr_handle_invalid(errp, cls->name, ref);
        return batch_end(db, ok, errp, conflict);
    }
    bool fresh = o->batch_seen != db->batch_id;
    void *before = xrecord_copy(cls, o->rec);
    if (!before)
        return db_batch_end(db, xerr_nomem(errp), errp);
    ok = fn(opaque, o->rec, errp);
    if (ok) {
        bool same = true;
        for (size_t i = 0; i < cls->n_fields && same; i++)
            same = xtype_value_equal(cls->fields[i].type, xrecord_field_cptr(before, &cls->fields[i]),
                                     xrecord_field_cptr(o->rec, &cls->fields[i]));
        if (!same) {
            /* Save the undo from `before`: fn already changed the live record. */
            if (fresh) {
                void *now = o->rec;
                o->rec = before;
                int rc = save_undo(db, cls, o, true);
                o->rec = now;
                if (rc < 0) {
                    /* No undo entry, so the batch's rollback cannot restore
                     * the record: put it back here, or memory would keep a
                     * change the store never got. */
                    ok = xerr_nomem(errp);
                    xrecord_free(cls, o->rec);
                    o->rec = before;
                    before = NULL;
                }
            }
            if (ok) {
                mark_modified(db, cls, o);
                if (relink(db, cls, o->ref, before, o->rec) < 0)
                    ok = xerr_nomem(errp);
            }
        }
    } else if (fresh) {
        /* fn failed after maybe changing the record: put it back. */
        xrecord_free(cls, o->rec);
        o->rec = before;
        before = NULL;
    }
    xrecord_free(cls, before);
    return batch_end(db, ok, errp, conflict);
}

bool
db_update(struct db *db, const struct xclass *cls, const char *ref, db_update_fn *fn,
          void *opaque, struct xerr **errp)
{
    bool outer = db->shared && !in_batch(db), ok;
    int attempt = 0;
    struct timespec t0;
    uint64_t conflict;
    do {
        conflict = 0;
        ok = update_once(db, cls, ref, fn, opaque, errp, outer ? &conflict : NULL);
    } while (retry_after_conflict(db, ok, conflict, &t0, &attempt, errp));
    return ok;
}

struct set_field_args {
    const struct xfield *f;
    const void *value;
};

static bool
set_field_cb(void *opaque, void *rec, struct xerr **errp)
{
    const struct set_field_args *a = opaque;
    union xvalue_storage tmp;
    if (xtype_value_copy(a->f->type, &tmp, a->value) < 0)
        return xerr_nomem(errp);
    void *slot = xrecord_field_ptr(rec, a->f);
    xtype_value_clear(a->f->type, slot);
    memcpy(slot, &tmp, a->f->type->size);
    return true;
}

bool
db_set_field(struct db *db, const struct xclass *cls, const char *ref, const struct xfield *f,
             const void *value, struct xerr **errp)
{
    struct set_field_args a = {f, value};
    return db_update(db, cls, ref, set_field_cb, &a, errp);
}

static bool
touch_once(struct db *db, const struct xclass *cls, const char *ref, struct xerr **errp,
           uint64_t *conflict)
{
    db_batch_begin(db);
    struct dbobj *o = lookup(db, cls, ref);
    bool ok;
    if (!o)
        ok = xerr_handle_invalid(errp, cls->name, ref);
    else
        ok = touch_in_batch(db, cls, o) == 0 || xerr_nomem(errp);
    return batch_end(db, ok, errp, conflict);
}

bool
db_touch(struct db *db, const struct xclass *cls, const char *ref, struct xerr **errp)
{
    bool outer = db->shared && !in_batch(db), ok;
    int attempt = 0;
    struct timespec t0;
    uint64_t conflict;
    do {
        conflict = 0;
        ok = touch_once(db, cls, ref, errp, outer ? &conflict : NULL);
    } while (retry_after_conflict(db, ok, conflict, &t0, &attempt, errp));
    return ok;
}

bool
db_set_volatile(struct db *db, const struct xclass *cls, const char *ref, const struct xfield *f,
                const void *value, struct xerr **errp)
{
    union xvalue_storage tmp;
    if (xtype_value_copy(f->type, &tmp, value) < 0)
        return xerr_nomem(errp);
    bool locked = !in_batch(db);
    if (locked)
        pthread_rwlock_wrlock(&db->lock);
    struct dbobj *o = lookup(db, cls, ref);
    if (o) {
        void *slot = xrecord_field_ptr(o->rec, f);
        xtype_value_clear(f->type, slot);
        memcpy(slot, &tmp, f->type->size);
        enc_cache_drop(&o->enc); /* a change without a generation */
    }
    if (locked)
        pthread_rwlock_unlock(&db->lock);
    if (!o) {
        xtype_value_clear(f->type, &tmp);
        return xerr_handle_invalid(errp, cls->name, ref);
    }
    return true;
}

/* ------------------------------------------------------------------ reads */

/* Reads inside a batch already hold the lock (write side) on this thread. */
static void
read_lock(struct db *db)
{
    if (!in_batch(db))
        pthread_rwlock_rdlock(&db->lock);
}

static void
read_unlock(struct db *db)
{
    if (!in_batch(db))
        pthread_rwlock_unlock(&db->lock);
}

bool
db_exists(struct db *db, const struct xclass *cls, const char *ref)
{
    read_lock(db);
    bool ok = lookup(db, cls, ref) != NULL;
    read_unlock(db);
    return ok;
}

bool
db_get(struct db *db, const struct xclass *cls, const char *ref, void **out, struct xerr **errp)
{
    read_lock(db);
    struct dbobj *o = lookup(db, cls, ref);
    void *copy = o ? xrecord_copy(cls, o->rec) : NULL;
    read_unlock(db);
    if (!o)
        return xerr_handle_invalid(errp, cls->name, ref ? ref : "");
    if (!copy)
        return xerr_nomem(errp);
    *out = copy;
    return true;
}

bool
db_get_field(struct db *db, const struct xclass *cls, const char *ref, const struct xfield *f,
             void *out, struct xerr **errp)
{
    read_lock(db);
    struct dbobj *o = lookup(db, cls, ref);
    int rc = o ? xtype_value_copy(f->type, out, xrecord_field_cptr(o->rec, f)) : 0;
    read_unlock(db);
    if (!o)
        return xerr_handle_invalid(errp, cls->name, ref ? ref : "");
    if (rc < 0)
        return xerr_nomem(errp);
    return true;
}

bool
db_encode(struct db *db, const struct xclass *cls, const char *ref, struct wire_writer *w,
          struct xerr **errp)
{
    read_lock(db);
    struct dbobj *o = lookup(db, cls, ref);
    if (o && in_batch(db))
        xrecord_encode(cls, o->rec, w, false); /* maybe uncommitted: not cached */
    else if (o)
        enc_cache_encode(&o->enc, o->gen_modified, cls, o->rec, w);
    read_unlock(db);
    if (!o)
        return xerr_handle_invalid(errp, cls->name, ref ? ref : "");
    return true;
}

bool
db_encode_field(struct db *db, const struct xclass *cls, const char *ref, const struct xfield *f,
                struct wire_writer *w, struct xerr **errp)
{
    read_lock(db);
    struct dbobj *o = lookup(db, cls, ref);
    if (o)
        xtype_value_encode(f->type, xrecord_field_cptr(o->rec, f), w);
    read_unlock(db);
    if (!o)
        return xerr_handle_invalid(errp, cls->name, ref ? ref : "");
    return true;
}

void
db_foreach(struct db *db, const struct xclass *cls, db_visit_fn *fn, void *opaque)
{
    if (!cls->stored)
        return;
    read_lock(db);
    for (struct dbobj *o = dbclass_of(db, cls)->head; o; o = o->next)
        if (!fn(opaque, o->ref, o->rec))
            break;
    read_unlock(db);
}

bool
db_ref_by_uuid(struct db *db, const struct xclass *cls, const char *uuid, char **ref,
               struct xerr **errp)
{
    read_lock(db);
    struct dbobj *o = cls->stored ? hashmap_get(&dbclass_of(db, cls)->by_uuid, uuid) : NULL;
    char *copy = o ? strdup(o->ref) : NULL;
    read_unlock(db);
    if (!o)
        return xerr_uuid_invalid(errp, cls->name, uuid);
    if (!copy)
        return xerr_nomem(errp);
    *ref = copy;
    return true;
}

bool
db_with(struct db *db, const struct xclass *cls, const char *ref, db_with_fn *fn, void *opaque,
        struct xerr **errp)
{
    read_lock(db);
    struct dbobj *o = lookup(db, cls, ref);
    if (o)
        fn(opaque, o->rec);
    read_unlock(db);
    if (!o)
        return xerr_handle_invalid(errp, cls->name, ref ? ref : "");
    return true;
}

size_t
db_count(struct db *db, const struct xclass *cls)
{
    read_lock(db);
    size_t n = cls->stored ? dbclass_of(db, cls)->n : 0;
    read_unlock(db);
    return n;
}

bool
db_is_shared(const struct db *db)
{
    return db->shared; /* set at open, never changed */
}

uint64_t
db_generation(struct db *db)
{
    read_lock(db);
    uint64_t g = db->gen;
    read_unlock(db);
    return g;
}

/* ------------------------------------------------------------------ changes */

static bool
masked(const uint64_t *mask, unsigned id)
{
    return mask[id / 64] & (1ull << (id % 64));
}

bool
db_changes_since(struct db *db, uint64_t since, const uint64_t *class_mask, db_change_fn *fn,
                 void *opaque, uint64_t *now)
{
    read_lock(db);
    if (since < db->lost_before || since > db->gen) {
        read_unlock(db);
        return false;
    }
    for (size_t c = 0; c < xapi_n_classes; c++) {
        const struct xclass *cls = xapi_classes[c];
        if (!masked(class_mask, cls->id))
            continue;
        struct dbobj *o = dbclass_of(db, cls)->tail;
        while (o && o->gen_modified > since)
            o = o->prev;
        /* Objects past db->gen: a shared store's own commits the follower
         * has not reported yet (they come with that generation). */
        for (o = o ? o->next : dbclass_of(db, cls)->head; o && o->gen_modified <= db->gen;
             o = o->next)
            fn(opaque, cls, o->gen_created > since ? DB_CHANGE_ADD : DB_CHANGE_MOD, o->ref,
               o->gen_modified, o->rec);
    }
    for (size_t i = 0; i < db->n_tombs; i++) {
        const struct tomb *t = &db->tombs[(db->tomb_head + i) % TOMB_MAX];
        if (t->gen > since && t->gen <= db->gen && t->gen_created <= since &&
            masked(class_mask, t->cls->id))
            fn(opaque, t->cls, DB_CHANGE_DEL, t->ref, t->gen, NULL);
    }
    *now = db->gen;
    read_unlock(db);
    return true;
}

void
db_report_all(struct db *db, const uint64_t *class_mask, db_change_fn *fn, void *opaque,
              uint64_t *now)
{
    read_lock(db);
    for (size_t c = 0; c < xapi_n_classes; c++) {
        const struct xclass *cls = xapi_classes[c];
        if (!masked(class_mask, cls->id))
            continue;
        for (struct dbobj *o = dbclass_of(db, cls)->head; o; o = o->next)
            fn(opaque, cls, DB_CHANGE_ADD, o->ref, o->gen_modified, o->rec);
    }
    *now = db->gen;
    read_unlock(db);
}

/* ------------------------------------------------------------------ open / close */

static int
build_links(struct db *db)
{
    for (size_t c = 0; c < xapi_n_classes; c++) {
        const struct xclass *target = xapi_classes[c];
        for (size_t i = 0; i < target->n_fields; i++) {
            const struct xfield *set = &target->fields[i];
            if (!set->inverse_class)
                continue;
            const struct xclass *src = xapi_class_by_name(set->inverse_class);
            const struct xfield *fwd = src ? xclass_field(src, set->inverse_field) : NULL;
            if (!fwd || fwd->type->kind != XT_REF)
                continue; /* many-to-many links are not kept (none in our model) */
            struct dbclass *dc = dbclass_of(db, src);
            struct revlink *l = realloc(dc->links, (dc->n_links + 1) * sizeof(*l));
            if (!l)
                return -ENOMEM;
            dc->links = l;
            dc->links[dc->n_links++] = (struct revlink){fwd, target, set};
        }
    }
    return 0;
}

struct load_ctx {
    struct db *db;
    const struct xclass *cls;
    char *why;
    size_t why_len;
};

static int
load_row(void *opaque, const char *ref, uint64_t gen_created, uint64_t gen_modified,
         const char *json, size_t len)
{
    struct load_ctx *lc = opaque;
    struct xval *v = NULL;
    char why[128];
    if (json_parse_xval(json, len, &v, why, sizeof(why)) < 0) {
        snprintf(lc->why, lc->why_len, "stored %s %s: %s", lc->cls->name, ref, why);
        return -EINVAL;
    }
    void *rec = xrecord_new(lc->cls);
    struct xerr *err = NULL;
    struct dbobj *o = calloc(1, sizeof(*o));
    if (!rec || !o || !xrecord_decode(lc->cls, v, rec, true, false, &err)) {
        char d[160];
        snprintf(lc->why, lc->why_len, "stored %s %s: %s", lc->cls->name, ref,
                 err ? xerr_describe(err, d, sizeof(d)) : "out of memory");
        xerr_free(err);
        xval_free(v);
        xrecord_free(lc->cls, rec);
        free(o);
        return -EINVAL;
    }
    xval_free(v);
    o->rec = rec;
    o->ref = strdup(ref);
    o->uuid = strdup(xrecord_uuid(lc->cls, rec));
    o->gen_created = gen_created;
    o->gen_modified = gen_modified;
    if (!o->ref || !o->uuid || index_add(dbclass_of(lc->db, lc->cls), o) < 0) {
        obj_free(lc->cls, o);
        return -ENOMEM;
    }
    return 0;
}

static int
load_tomb(void *opaque, uint64_t gen, const char *cls_name, const char *ref, uint64_t gen_created)
{
    struct db *db = opaque;
    const struct xclass *cls = xapi_class_by_name(cls_name);
    if (cls)
        tomb_add(db, cls, ref, gen, gen_created);
    return 0;
}

/* Invariant 4 after a load: rebuild every reverse set from the forward refs.
 * The sets start empty (they are never stored) and each object is added to
 * one target's set once per link, so no add needs the linear duplicate check:
 * with it, an object with 100,000 back-references cost O(n^2) at every start. */
static int
rebuild_links(struct db *db)
{
    for (size_t c = 0; c < xapi_n_classes; c++) {
        struct dbclass *dc = &db->classes[c];
        for (size_t i = 0; i < dc->n_links; i++) {
            const struct revlink *l = &dc->links[i];
            for (struct dbobj *o = dc->head; o; o = o->next) {
                const char *to = *(char *const *)xrecord_field_cptr(o->rec, l->fwd);
                struct dbobj *t = lookup(db, l->target, to);
                if (t && xset_append_str(xrecord_field_ptr(t->rec, l->set), o->ref) < 0)
                    return -ENOMEM;
            }
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ other writers */

static void *
decode_row(const struct xclass *cls, const char *ref, const char *json, size_t len)
{
    struct xval *v = NULL;
    char why[128];
    struct xerr *err = NULL;
    void *rec = NULL;
    if (json_parse_xval(json, len, &v, why, sizeof(why)) < 0) {
        log_warn("db.remote", "class=%s ref=%s reason=\"%s\"", cls->name, ref, why);
        return NULL;
    }
    if (!(rec = xrecord_new(cls)) || !xrecord_decode(cls, v, rec, true, false, &err) ||
        !xrecord_uuid(cls, rec)) {
        char d[160];
        log_warn("db.remote", "class=%s ref=%s reason=\"%s\"", cls->name, ref,
                 err ? xerr_describe(err, d, sizeof(d)) : "out of memory");
        xrecord_free(cls, rec);
        rec = NULL;
    }
    xerr_free(err);
    xval_free(v);
    return rec;
}

/* Step 1 of applying a change: the record replaced, added or removed; the
 * undo entry keeps the record as it was for step 2 (relink). */
static void
apply_one(struct db *db, uint64_t gen, const struct store_change *c, void *rec)
{
    struct dbclass *dc = dbclass_of(db, c->cls);
    struct dbobj *o = lookup(db, c->cls, c->ref);
    if (o && o->gen_modified >= gen) {
        xrecord_free(c->cls, rec); /* our own commit, applied when it was made */
        return;
    }
    struct unconfirmed_del *ours = hashmap_get(&db->unconfirmed_dels, c->ref);
    if (!c->json) {
        if (o && save_undo(db, c->cls, o, true) == 0) {
            index_remove(dc, o);
            undo_of(db, o)->deleted = true;
        }
        if (ours && gen >= ours->gen)
            unconfirmed_del_free(hashmap_remove(&db->unconfirmed_dels, c->ref));
        return;
    }
    if (!rec || (!o && ours && ours->gen > gen)) {
        xrecord_free(c->cls, rec); /* deleted here since: not back to life */
        return;
    }
    if (o) {
        if (save_undo(db, c->cls, o, true) < 0) {
            xrecord_free(c->cls, rec);
            return;
        }
        /* Reverse-link sets are derived here (invariant 4), never stored. */
        for (size_t i = 0; i < c->cls->n_fields; i++) {
            const struct xfield *f = &c->cls->fields[i];
            if (!f->inverse_class)
                continue;
            union xvalue_storage tmp;
            memcpy(&tmp, xrecord_field_ptr(rec, f), f->type->size);
            memcpy(xrecord_field_ptr(rec, f), xrecord_field_ptr(o->rec, f), f->type->size);
            memcpy(xrecord_field_ptr(o->rec, f), &tmp, f->type->size);
        }
        xrecord_free(c->cls, o->rec);
        o->rec = rec;
        mark_modified(db, c->cls, o);
        return;
    }
    o = calloc(1, sizeof(*o));
    if (!o || !(o->ref = strdup(c->ref)) || !(o->uuid = strdup(xrecord_uuid(c->cls, rec))) ||
        hashmap_get(&dc->by_uuid, o->uuid)) {
        log_warn("db.remote", "class=%s ref=%s reason=\"cannot add\"", c->cls->name, c->ref);
        if (o)
            o->rec = rec;
        obj_free(c->cls, o);
        return;
    }
    o->rec = rec;
    o->gen_created = c->gen_created ? c->gen_created : gen;
    o->gen_modified = gen;
    if (index_add(dc, o) < 0) {
        obj_free(c->cls, o);
        return;
    }
    if (save_undo(db, c->cls, o, false) < 0)
        log_warn("db.remote", "class=%s ref=%s reason=out-of-memory", c->cls->name, c->ref);
}

/* store_change_fn: another writer's commit (or our own, coming back) at
 * generation @gen, applied as a batch that the store already holds. */
static void
apply_remote(void *opaque, uint64_t gen, const struct store_change *changes, size_t n)
{
    struct db *db = opaque;
    void **recs = calloc(n + 1, sizeof(*recs));
    if (!recs) {
        log_error("db.remote", "generation=%" PRIu64 " reason=out-of-memory", gen);
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (changes[i].json)
            recs[i] = decode_row(changes[i].cls, changes[i].ref, changes[i].json, changes[i].len);

    pthread_mutex_lock(&db->writer);
    pthread_rwlock_wrlock(&db->lock);
    this_batch_db = db;
    db->batch_depth = 1;
    db->batch_id++;
    db->batch_gen = gen;
    db->n_undo = 0;
    /* All records first, then the links: a commit may add an object and
     * another that points at it, in any order. */
    for (size_t i = 0; i < n; i++)
        apply_one(db, gen, &changes[i], recs[i]);
    size_t applied = db->n_undo;
    for (size_t i = 0; i < applied; i++) {
        struct undo *u = &db->undo[i]; /* relink may move db->undo: index again each time */
        const struct xclass *cls = u->cls;
        struct dbobj *o = u->obj;
        if (relink(db, cls, o->ref, u->existed ? u->old_rec : NULL,
                   u->deleted ? NULL : o->rec) < 0)
            log_error("db.remote", "generation=%" PRIu64 " reason=out-of-memory", gen);
    }
    for (size_t i = 0; i < db->n_undo; i++) {
        struct undo *u = &db->undo[i];
        if (u->deleted) {
            tomb_add(db, u->cls, u->obj->ref, gen, u->obj->gen_created);
            obj_free(u->cls, u->obj);
        }
        xrecord_free(u->cls, u->old_rec);
    }
    db->n_undo = 0;
    db->batch_depth = 0;
    this_batch_db = NULL;
    bool advanced = gen > db->gen;
    if (advanced)
        db->gen = gen;
    pthread_rwlock_unlock(&db->lock);
    /* Still holding the writer lock: db_set_commit_hook(NULL) then waits
     * for this call, so the hook's owner may free it afterwards. */
    if (advanced && db->on_commit)
        db->on_commit(db->on_commit_opaque, gen);
    pthread_mutex_unlock(&db->writer);
    free(recs);

    pthread_mutex_lock(&db->gen_mu);
    pthread_cond_broadcast(&db->gen_cv);
    pthread_mutex_unlock(&db->gen_mu);
}

/* ------------------------------------------------------------------ open / close */

int
db_open(const char *path, struct db **out, char *why, size_t why_len)
{
    struct db *db = calloc(1, sizeof(*db));
    if (!db)
        return -ENOMEM;
    pthread_rwlock_init(&db->lock, NULL);
    pthread_mutex_init(&db->writer, NULL);
    pthread_mutex_init(&db->gen_mu, NULL);
    pthread_cond_init(&db->gen_cv, NULL);
    hashmap_init(&db->unconfirmed_dels);
    db->classes = calloc(xapi_n_classes, sizeof(*db->classes));
    db->tombs = calloc(TOMB_MAX, sizeof(*db->tombs));
    if (!db->classes || !db->tombs) {
        db_close(db);
        return -ENOMEM;
    }
    for (size_t c = 0; c < xapi_n_classes; c++) {
        db->classes[c].cls = xapi_classes[c];
        hashmap_init(&db->classes[c].by_ref);
        hashmap_init(&db->classes[c].by_uuid);
    }
    int rc = build_links(db);
    if (rc == 0)
        rc = store_open(path, &db->store, why, why_len);
    if (rc < 0) {
        db_close(db);
        return rc;
    }
    db->gen = store_generation(db->store);
    for (size_t c = 0; c < xapi_n_classes && rc == 0; c++) {
        struct load_ctx lc = {db, xapi_classes[c], why, why_len};
        rc = store_load(db->store, xapi_classes[c], load_row, &lc);
    }
    if (rc == 0)
        rc = store_load_tombstones(db->store, load_tomb, db);
    if (rc == 0)
        rc = rebuild_links(db);
    db->shared = store_shared(db->store);
    if (rc == 0 && (rc = store_follow(db->store, apply_remote, db)) < 0)
        snprintf(why, why_len, "following %s: %s", path, strerror(-rc));
    if (rc < 0) {
        if (!why[0])
            snprintf(why, why_len, "loading %s: %s", path, store_error(db->store));
        db_close(db);
        return rc;
    }
    *out = db;
    return 0;
}

void
db_close(struct db *db)
{
    if (!db)
        return;
    store_close(db->store); /* first: its follower calls into db */
    for (size_t c = 0; db->classes && c < xapi_n_classes; c++) {
        struct dbclass *dc = &db->classes[c];
        struct dbobj *o = dc->head;
        while (o) {
            struct dbobj *next = o->next;
            obj_free(dc->cls, o);
            o = next;
        }
        hashmap_release(&dc->by_ref);
        hashmap_release(&dc->by_uuid);
        free(dc->links);
    }
    for (size_t i = 0; db->tombs && i < db->n_tombs; i++)
        free(db->tombs[(db->tomb_head + i) % TOMB_MAX].ref);
    free(db->tombs);
    free(db->classes);
    free(db->undo);
    pthread_rwlock_destroy(&db->lock);
    pthread_mutex_destroy(&db->writer);
    pthread_mutex_destroy(&db->gen_mu);
    pthread_cond_destroy(&db->gen_cv);
    hashmap_release_with(&db->unconfirmed_dels, unconfirmed_del_free);
    free(db);
}

void
db_set_commit_hook(struct db *db, db_commit_fn *fn, void *opaque)
{
    pthread_mutex_lock(&db->writer); /* the follower's thread reads it */
    pthread_rwlock_wrlock(&db->lock);
    db->on_commit = fn;
    db->on_commit_opaque = opaque;
    pthread_rwlock_unlock(&db->lock);
    pthread_mutex_unlock(&db->writer);
}
