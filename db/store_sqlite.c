/* db/store_sqlite.c - the durable backend on SQLite.
 *
 * One table per class ("obj_<Class>": ref, generations, the record as JSON),
 * a table of tombstones (deletions, for event.from tokens that predate a
 * restart) and a meta table holding the store's generation. WAL mode with
 * synchronous=NORMAL: a commit is in the WAL before store_commit returns, so a
 * killed process loses nothing committed (power loss may lose the last
 * commits; xapi itself only flushes its database periodically). Prepared
 * statements are cached per class.
 */
#include "db/store.h"

#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fault.h"

struct class_stmts {
    sqlite3_stmt *put;
    sqlite3_stmt *del;
};

struct store_sqlite {
    struct store base;
    sqlite3 *db;
    struct class_stmts *stmts; /* by class id */
    sqlite3_stmt *tomb_put;
    sqlite3_stmt *meta_put;
    char err[256];
};

static void sqlite_close(struct store *st_);
static void sqlite_rollback(struct store *st_);

static int
exec_sql(struct store_sqlite *st, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(st->err, sizeof(st->err), "%s: %s", sql, msg ? msg : "?");
        sqlite3_free(msg);
        return -EIO;
    }
    return 0;
}

static int
prepare(struct store_sqlite *st, const char *sql, sqlite3_stmt **out)
{
    if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL) != SQLITE_OK) {
        snprintf(st->err, sizeof(st->err), "%s: %s", sql, sqlite3_errmsg(st->db));
        return -EIO;
    }
    return 0;
}

static int
create_schema(struct store_sqlite *st)
{
    int rc = exec_sql(st, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                          "PRAGMA foreign_keys=OFF;"
                          "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);"
                          "CREATE TABLE IF NOT EXISTS tombstone (gen INTEGER NOT NULL,"
                          " class TEXT NOT NULL, ref TEXT NOT NULL, gen_created INTEGER NOT NULL,"
                          " PRIMARY KEY (class, ref, gen));");
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < xapi_n_classes; i++) {
        char sql[512];
        const char *name = xapi_classes[i]->name;
        snprintf(sql, sizeof(sql),
                 "CREATE TABLE IF NOT EXISTS \"obj_%s\" (ref TEXT PRIMARY KEY,"
                 " gen_created INTEGER NOT NULL, gen_modified INTEGER NOT NULL,"
                 " data TEXT NOT NULL);",
                 name);
        if ((rc = exec_sql(st, sql)) < 0)
            return rc;
        /* an upsert changes the row where it is: OR REPLACE deletes it and
         * inserts it anew under a new rowid, which for a VM's 7 KB row wrote
         * three times the WAL bytes (36 against 12 KiB a commit) */
        snprintf(sql, sizeof(sql),
                 "INSERT INTO \"obj_%s\" (ref, gen_created, gen_modified, data)"
                 " VALUES (?, ?, ?, ?) ON CONFLICT (ref) DO UPDATE SET"
                 " gen_created = excluded.gen_created, gen_modified = excluded.gen_modified,"
                 " data = excluded.data",
                 name);
        if ((rc = prepare(st, sql, &st->stmts[i].put)) < 0)
            return rc;
        snprintf(sql, sizeof(sql), "DELETE FROM \"obj_%s\" WHERE ref = ?", name);
        if ((rc = prepare(st, sql, &st->stmts[i].del)) < 0)
            return rc;
    }
    if ((rc = prepare(st,
                      "INSERT OR REPLACE INTO tombstone (gen, class, ref, gen_created)"
                      " VALUES (?, ?, ?, ?)",
                      &st->tomb_put)) < 0)
        return rc;
    return prepare(st, "INSERT INTO meta (key, value) VALUES ('generation', ?)"
                       " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                   &st->meta_put);
}

static const struct store_ops sqlite_ops;

int
store_sqlite_open(const char *path, struct store **out, char *why, size_t why_len)
{
    struct store_sqlite *st = calloc(1, sizeof(*st));
    if (!st)
        return -ENOMEM;
    st->stmts = calloc(xapi_n_classes, sizeof(*st->stmts));
    if (!st->stmts) {
        free(st);
        return -ENOMEM;
    }
    st->base.ops = &sqlite_ops;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &st->db, flags, NULL) != SQLITE_OK) {
        snprintf(why, why_len, "sqlite open %s: %s", path,
                 st->db ? sqlite3_errmsg(st->db) : "out of memory");
        sqlite_close(&st->base);
        return -EIO;
    }
    sqlite3_busy_timeout(st->db, 5000);
    if (create_schema(st) < 0) {
        snprintf(why, why_len, "%s", st->err);
        sqlite_close(&st->base);
        return -EIO;
    }
    *out = &st->base;
    return 0;
}

static void
sqlite_close(struct store *st_)
{
    struct store_sqlite *st = (struct store_sqlite *)st_;
    if (!st)
        return;
    for (size_t i = 0; st->stmts && i < xapi_n_classes; i++) {
        sqlite3_finalize(st->stmts[i].put);
        sqlite3_finalize(st->stmts[i].del);
    }
    sqlite3_finalize(st->tomb_put);
    sqlite3_finalize(st->meta_put);
    sqlite3_close(st->db);
    free(st->stmts);
    free(st);
}

static int
sqlite_load(struct store *st_, const struct xclass *cls, store_row_fn *fn, void *opaque)
{
    struct store_sqlite *st = (struct store_sqlite *)st_;
    char sql[256];
    sqlite3_stmt *s;
    snprintf(sql, sizeof(sql), "SELECT ref, gen_created, gen_modified, data FROM \"obj_%s\"",
             cls->name);
    if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
        snprintf(st->err, sizeof(st->err), "%s", sqlite3_errmsg(st->db));
        return -EIO;
    }
    int rc = 0, step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        const char *ref = (const char *)sqlite3_column_text(s, 0);
        const char *data = (const char *)sqlite3_column_text(s, 3);
        if (!ref || !data)
            continue;
        rc = fn(opaque, ref, (uint64_t)sqlite3_column_int64(s, 1),
                (uint64_t)sqlite3_column_int64(s, 2), data, (size_t)sqlite3_column_bytes(s, 3));
        if (rc < 0)
            break;
    }
    if (rc == 0 && step != SQLITE_DONE) {
        snprintf(st->err, sizeof(st->err), "%s", sqlite3_errmsg(st->db));
        rc = -EIO;
    }
    sqlite3_finalize(s);
    return rc;
}

static int
sqlite_load_tombstones(struct store *st_, store_tomb_fn *fn, void *opaque)
{
    struct store_sqlite *st = (struct store_sqlite *)st_;
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(st->db, "SELECT gen, class, ref, gen_created FROM tombstone ORDER BY gen",
                           -1, &s, NULL) != SQLITE_OK)
        return -EIO;
    int rc = 0;
    while (sqlite3_step(s) == SQLITE_ROW) {
        const char *cls = (const char *)sqlite3_column_text(s, 1);
        const char *ref = (const char *)sqlite3_column_text(s, 2);
        if (!cls || !ref)
            continue;
        if ((rc = fn(opaque, (uint64_t)sqlite3_column_int64(s, 0), cls, ref,
                     (uint64_t)sqlite3_column_int64(s, 3))) < 0)
            break;
    }
    sqlite3_finalize(s);
    return rc;
}

static uint64_t
sqlite_generation(struct store *st_)
{
    struct store_sqlite *st = (struct store_sqlite *)st_;
    sqlite3_stmt *s;
    uint64_t gen = 0;
    if (sqlite3_prepare_v2(st->db, "SELECT value FROM meta WHERE key = 'generation'", -1, &s,
                           NULL) != SQLITE_OK)
        return 0;
    if (sqlite3_step(s) == SQLITE_ROW)
        gen = (uint64_t)strtoull((const char *)sqlite3_column_text(s, 0), NULL, 10);
    sqlite3_finalize(s);
    return gen;
}

/* The fault-injection sites of the store (common/fault.h): an injected failure
 * looks like a failed statement. */
static bool
injected(struct store_sqlite *st, const char *site)
{
    if (!FAULT_POINT(site))
        return false;
    snprintf(st->err, sizeof(st->err), "injected fault at %s", site);
    return true;
}

static int
sqlite_begin(struct store *st_)
{
    struct store_sqlite *st = (struct store_sqlite *)st_;
    if (injected(st, "db.begin"))
        return -EIO;
    return exec_sql(st, "BEGIN IMMEDIATE");
}

static int
run(struct store_sqlite *st, sqlite3_stmt *s)
{
    if (injected(st, "db.write")) {
        sqlite3_clear_bindings(s);
        return -EIO;
    }
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc != SQLITE_DONE) {
        snprintf(st->err, sizeof(st->err), "%s", sqlite3_errmsg(st->db));
        return -EIO;
    }
    return 0;
}

static int
sqlite_put(struct store *st_, const struct xclass *cls, const char *ref, uint64_t gen_created,
           uint64_t gen_modified, uint64_t gen_read, const char *json, size_t len)
{
    (void)gen_read; /* one writer: nothing to compare with */
    struct store_sqlite *st = (struct store_sqlite *)st_;
    sqlite3_stmt *s = st->stmts[cls->id].put;
    sqlite3_bind_text(s, 1, ref, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)gen_created);
    sqlite3_bind_int64(s, 3, (sqlite3_int64)gen_modified);
    sqlite3_bind_text(s, 4, json, (int)len, SQLITE_STATIC);
    return run(st, s);
}

static int
sqlite_delete(struct store *st_, const struct xclass *cls, const char *ref, uint64_t gen,
              uint64_t gen_created, uint64_t gen_read)
{
    (void)gen_read;
    struct store_sqlite *st = (struct store_sqlite *)st_;
    sqlite3_stmt *s = st->stmts[cls->id].del;
    sqlite3_bind_text(s, 1, ref, -1, SQLITE_STATIC);
    int rc = run(st, s);
    if (rc < 0)
        return rc;
    s = st->tomb_put;
    sqlite3_bind_int64(s, 1, (sqlite3_int64)gen);
    sqlite3_bind_text(s, 2, cls->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, ref, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, (sqlite3_int64)gen_created);
    return run(st, s);
}

static int
sqlite_commit(struct store *st_, uint64_t gen, uint64_t *committed)
{
    struct store_sqlite *st = (struct store_sqlite *)st_;
    char text[32];
    snprintf(text, sizeof(text), "%" PRIu64, gen);
    sqlite3_bind_text(st->meta_put, 1, text, -1, SQLITE_TRANSIENT);
    int rc = run(st, st->meta_put);
    if (rc < 0) {
        sqlite_rollback(st_);
        return rc;
    }
    if (injected(st, "db.commit") || (rc = exec_sql(st, "COMMIT")) < 0) {
        /* A failed COMMIT (disk full, I/O error) may leave the transaction
         * open; the next BEGIN would then fail for good. */
        sqlite_rollback(st_);
        return -EIO;
    }
    *committed = gen;
    return 0;
}

static void
sqlite_rollback(struct store *st_)
{
    struct store_sqlite *st = (struct store_sqlite *)st_;
    char *msg = NULL;
    sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, &msg);
    sqlite3_free(msg);
}

static int
sqlite_prune_tombstones(struct store *st_, uint64_t gen)
{
    struct store_sqlite *st = (struct store_sqlite *)st_;
    char sql[128];
    snprintf(sql, sizeof(sql), "DELETE FROM tombstone WHERE gen < %" PRIu64, gen);
    return exec_sql(st, sql);
}

static const char *
sqlite_error(struct store *st_)
{
    struct store_sqlite *st = (struct store_sqlite *)st_;
    return st->err;
}

static const struct store_ops sqlite_ops = {
    .close = sqlite_close,
    .load = sqlite_load,
    .load_tombstones = sqlite_load_tombstones,
    .generation = sqlite_generation,
    .begin = sqlite_begin,
    .put = sqlite_put,
    .del = sqlite_delete,
    .commit = sqlite_commit,
    .rollback = sqlite_rollback,
    .prune_tombstones = sqlite_prune_tombstones,
    .error = sqlite_error,
    .follow = NULL,
};
