/* db/store_etcd.c - the pool store: the durable backend on etcd's v3 API,
 * through its JSON gateway over HTTP/1.1 (etcd's Documentation/dev-guide/
 * api_grpc_gateway.md: POST /v3/kv/range, /v3/kv/txn, /v3/watch; keys and
 * values are base64 in JSON, 64-bit numbers are strings).
 *
 * Layout under the pool's prefix P (one etcd cluster may hold many pools):
 *   P/obj/<class>/<ref>   the record, the same JSON row SQLite keeps; the
 *                         key's create_revision and mod_revision are the
 *                         object's gen_created and gen_modified
 *   P/tomb/<class>/<ref>  {"gen_created":N}: a deleted object; the key's
 *                         mod_revision is the generation of the deletion
 * So a generation is an etcd revision, and an event.from token names one.
 * Tombstones are keys rather than etcd's history so that a token stays
 * answerable across restarts and etcd compactions, as SQLite's tombstone
 * table does on one host.
 *
 * A batch is one transaction (/v3/kv/txn) guarded by the revisions it read:
 * each object it writes must still have the mod_revision the batch saw
 * (create_revision 0 for a new one), else nothing is written and commit
 * answers -EAGAIN with the revision to catch up to.
 *
 * Other writers' commits arrive through a watch of the prefix from the
 * loaded revision + 1, on a thread of its own, grouped by revision. When
 * etcd has compacted the revision the watch needs (this host was cut off for
 * long), the prefix is read again and every object and tombstone newer than
 * the last revision seen is reported as one change.
 *
 * A watch can go quiet without an error: its member is cut off from the
 * others but not from us, or our link to it was down a while and its
 * stream waits out TCP's retransmission backoff. Our own commits come back
 * through the watch, so one that has not come back WATCH_STALE_MS after it
 * committed means the watch is stale: it starts again on the next member.
 * So does a revision another host has applied (etcd_expect: a call that
 * host forwarded here) and that does not come within that time.
 *
 * Endpoints are tried in turn when one refuses connections. A transaction
 * that failed otherwise (the leader died under it, an election, a timeout)
 * may or may not have committed, so each one also writes a marker key of
 * this store's own, P/txn/commit/<instance> (deleted at close), with a
 * nonce: reading the marker back says whether it did, and one that did not
 * is sent again (safe: it is a compare-and-swap) until COMMIT_DEADLINE_MS. So losing a member, the
 * leader included, costs a slow commit, not a failed one; losing quorum
 * fails the commit once the deadline passes.
 */
#include "db/store.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/testhook.h"
#include "common/strbuf.h"
#include "db/db.h"
#include "db/etcd_codec.h"
#include "db/etcd_http.h"

#define CONNECT_TIMEOUT_MS 1000L
/* Longer than etcd's own request timeout (5 s + 2 election timeouts), so
 * that a member without quorum answers with its reason first. */
#define REQUEST_TIMEOUT_MS 10000L
/* No new attempt of a commit starts after this: enough for an election
 * after a leader's death (etcd's default election timeout is 1 s) and
 * etcd's 7 s timeout of a proposal the dead leader took with it. */
#define COMMIT_DEADLINE_MS 10000L
#define RETRY_PAUSE_MS 200
#define WATCH_RETRY_MS 200
#define WATCH_STALE_MS 3000

struct loaded {
    const struct xclass *cls;
    char *ref;
    uint64_t gen_created, gen_modified;
    char *value;
    size_t len;
    bool tomb;
};

struct store_etcd {
    struct store base;
    char **endpoints;
    size_t n_endpoints;
    atomic_size_t cur; /* the endpoint that last answered */
    char *prefix;      /* without a trailing '/' */
    char *marker;      /* P/txn/<instance>: which of our commits happened */
    uint64_t n_commits;
    CURL *curl;        /* for db.c's calls (under its write lock) */

    json_t *compare, *success; /* the open transaction */
    uint64_t revision;         /* of the load */
    struct loaded *rows;
    size_t n_rows;

    pthread_t watcher;
    bool watching;
    atomic_bool stop;
    store_change_fn *on_change;
    void *opaque;
    uint64_t next_rev; /* the watch's next revision (watch thread only) */
    /* a revision known to exist (our last commit, or one another host has
     * applied) and since when: the watch's staleness check */
    _Atomic uint64_t awaited_rev;
    _Atomic long awaited_ms;

    char err[256];
};

static char *
key_of(struct store_etcd *st, const char *kind, const char *cls, const char *ref)
{
    char *k = NULL;
    if (asprintf(&k, "%s/%s/%s/%s", st->prefix, kind, cls, ref) < 0)
        return NULL;
    return k;
}

/* Splits a decoded key "P/<kind>/<class>/<ref>": false when it is not ours. */
static bool
key_parse(struct store_etcd *st, const char *key, bool *tomb, const struct xclass **cls,
          const char **ref)
{
    size_t pl = strlen(st->prefix);
    if (strncmp(key, st->prefix, pl) != 0 || key[pl] != '/')
        return false;
    const char *p = key + pl + 1;
    if (strncmp(p, "obj/", 4) == 0)
        *tomb = false;
    else if (strncmp(p, "tomb/", 5) == 0)
        *tomb = true;
    else
        return false;
    p = strchr(p, '/') + 1;
    const char *slash = strchr(p, '/');
    if (!slash || !slash[1] || slash - p >= 64)
        return false;
    char name[64];
    memcpy(name, p, (size_t)(slash - p));
    name[slash - p] = 0;
    *cls = xapi_class_by_name(name);
    *ref = slash + 1;
    return *cls != NULL;
}

/* ------------------------------------------------------------------ HTTP */

/* One POST of @body to endpoint @ep. 0 and *resp, or -EIO with the reason in
 * st->err; *@sent is false when the request surely never reached etcd, and
 * -EINVAL when etcd refused it as such (HTTP 4xx: a bad or too large
 * request), which sending again cannot change. */
static int
post_once(struct store_etcd *st, CURL *c, size_t ep, const char *path, const char *body,
          json_t **resp, bool *sent)
{
    return etcd_http_post(c, st->endpoints[ep], path, body, CONNECT_TIMEOUT_MS,
                          REQUEST_TIMEOUT_MS, resp, sent, st->err, sizeof(st->err));
}

/* POSTs @req to @path, starting with the endpoint that last answered. The
 * next endpoint is tried when the request never left, and after any failure
 * when @idempotent (a read). Returns 0 and *resp (json_decref), or -EIO
 * (-EINVAL when etcd refused the request itself) with the reason in st->err
 * (etcd's own message when it answered with an error); after a failure the
 * next call starts with another endpoint. */
static int
etcd_call(struct store_etcd *st, CURL *c, const char *path, json_t *req, bool idempotent,
          json_t **resp)
{
    char *body = json_dumps(req, JSON_COMPACT);
    if (!body) {
        snprintf(st->err, sizeof(st->err), "out of memory");
        return -ENOMEM;
    }
    size_t first = atomic_load(&st->cur), ep = first;
    int rc = -EIO;
    for (size_t i = 0; i < st->n_endpoints; i++) {
        ep = (first + i) % st->n_endpoints;
        bool sent;
        rc = post_once(st, c, ep, path, body, resp, &sent);
        if (rc == 0 || rc == -EINVAL || (sent && !idempotent))
            break;
    }
    free(body);
    atomic_store(&st->cur, rc == 0 || rc == -EINVAL ? ep : (ep + 1) % st->n_endpoints);
    return rc;
}

static json_t *
range_request(struct store_etcd *st)
{
    char *from = NULL, *to = NULL;
    json_t *req = NULL;
    if (asprintf(&from, "%s/", st->prefix) >= 0 && asprintf(&to, "%s0", st->prefix) >= 0)
        req = json_pack("{s:o, s:o}", "key", json_b64(from, strlen(from)), "range_end",
                        json_b64(to, strlen(to)));
    free(from);
    free(to);
    return req;
}

/* Reads every key of the prefix: *rows (free with rows_free), the revision. */
static void
rows_free(struct loaded *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(rows[i].ref);
        free(rows[i].value);
    }
    free(rows);
}

static int
read_prefix(struct store_etcd *st, CURL *c, struct loaded **rows_out, size_t *n_out,
            uint64_t *rev)
{
    json_t *req = range_request(st), *resp = NULL;
    if (!req)
        return -ENOMEM;
    int rc = etcd_call(st, c, "/v3/kv/range", req, true, &resp);
    json_decref(req);
    if (rc < 0)
        return rc;
    *rev = json_u64(json_object_get(resp, "header"), "revision");
    json_t *kvs = json_object_get(resp, "kvs");
    size_t n = json_array_size(kvs), k = 0;
    struct loaded *rows = calloc(n ? n : 1, sizeof(*rows));
    if (!rows) {
        json_decref(resp);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *kv = json_array_get(kvs, i);
        size_t klen, vlen = 0;
        char *key = b64_decode(json_string_value(json_object_get(kv, "key")) ?: "", &klen);
        const char *v64 = json_string_value(json_object_get(kv, "value"));
        char *value = b64_decode(v64 ? v64 : "", &vlen);
        struct loaded *l = &rows[k];
        const char *ref;
        if (key && value && key_parse(st, key, &l->tomb, &l->cls, &ref) && (l->ref = strdup(ref))) {
            l->gen_created = json_u64(kv, "create_revision");
            l->gen_modified = json_u64(kv, "mod_revision");
            l->value = value;
            l->len = vlen;
            value = NULL;
            k++;
        }
        free(key);
        free(value);
    }
    json_decref(resp);
    *rows_out = rows;
    *n_out = k;
    return 0;
}

/* ------------------------------------------------------------------ loading */

static int
etcd_load(struct store *st_, const struct xclass *cls, store_row_fn *fn, void *opaque)
{
    struct store_etcd *st = (struct store_etcd *)st_;
    for (size_t i = 0; i < st->n_rows; i++) {
        const struct loaded *l = &st->rows[i];
        if (l->tomb || l->cls != cls)
            continue;
        int rc = fn(opaque, l->ref, l->gen_created, l->gen_modified, l->value, l->len);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static uint64_t
tomb_gen_created(const struct loaded *l)
{
    json_t *v = json_loadb(l->value, l->len, 0, NULL);
    uint64_t g = json_u64(v, "gen_created");
    json_decref(v);
    return g;
}

static int
etcd_load_tombstones(struct store *st_, store_tomb_fn *fn, void *opaque)
{
    struct store_etcd *st = (struct store_etcd *)st_;
    for (size_t i = 0; i < st->n_rows; i++) {
        const struct loaded *l = &st->rows[i];
        if (!l->tomb)
            continue;
        int rc = fn(opaque, l->gen_modified, l->cls->name, l->ref, tomb_gen_created(l));
        if (rc < 0)
            return rc;
    }
    return 0;
}

static uint64_t
etcd_generation(struct store *st_)
{
    return ((struct store_etcd *)st_)->revision;
}

/* A caller's barrier (db_catch_up): the revision etcd's leader has now, by a
 * count-only range read on a fresh handle, so that it races neither db.c's
 * handle nor st->err. Short timeouts: a barrier that cannot be had is
 * skipped, never waited out. */
#define LATEST_CONNECT_MS 500L
#define LATEST_TOTAL_MS 2000L

static int
etcd_latest(struct store *st_, uint64_t *gen)
{
    struct store_etcd *st = (struct store_etcd *)st_;
    json_t *req = json_object(), *resp = NULL;
    json_t *key = json_b64(st->prefix, strlen(st->prefix));
    char *body = NULL;
    if (req && key && json_object_set_new(req, "key", key) == 0 &&
        json_object_set_new(req, "count_only", json_true()) == 0)
        body = json_dumps(req, JSON_COMPACT);
    else
        json_decref(key);
    json_decref(req);
    CURL *c = body ? curl_easy_init() : NULL;
    int rc = c ? -EIO : -ENOMEM;
    char err[256];
    size_t first = atomic_load(&st->cur);
    for (size_t i = 0; c && i < st->n_endpoints && rc < 0; i++) {
        bool sent = false;
        rc = etcd_http_post(c, st->endpoints[(first + i) % st->n_endpoints], "/v3/kv/range", body,
                            LATEST_CONNECT_MS, LATEST_TOTAL_MS, &resp, &sent, err, sizeof(err));
    }
    if (rc == 0) {
        *gen = json_u64(json_object_get(resp, "header"), "revision");
        json_decref(resp);
    }
    if (c)
        curl_easy_cleanup(c);
    free(body);
    return rc;
}

/* ------------------------------------------------------------------ transactions */

static void
txn_clear(struct store_etcd *st)
{
    json_decref(st->compare);
    json_decref(st->success);
    st->compare = st->success = NULL;
}

static int
etcd_begin(struct store *st_)
{
    struct store_etcd *st = (struct store_etcd *)st_;
    txn_clear(st);
    st->compare = json_array();
    st->success = json_array();
    return st->compare && st->success ? 0 : -ENOMEM;
}

/* The guard: @key still as the batch read it (or still absent). */
static int
add_compare(struct store_etcd *st, const char *key, uint64_t gen_read)
{
    json_t *k = json_b64(key, strlen(key));
    json_t *c = gen_read ? json_pack("{s:o, s:s, s:s, s:o}", "key", k, "target", "MOD", "result",
                                     "EQUAL", "mod_revision", json_u64_string(gen_read))
                         : json_pack("{s:o, s:s, s:s, s:o}", "key", k, "target", "CREATE",
                                     "result", "EQUAL", "create_revision", json_string("0"));
    return c && json_array_append_new(st->compare, c) == 0 ? 0 : -ENOMEM;
}

static int
add_put(struct store_etcd *st, const char *key, const char *value, size_t len)
{
    json_t *p = json_pack("{s:{s:o, s:o}}", "request_put", "key", json_b64(key, strlen(key)),
                          "value", json_b64(value, len));
    return p && json_array_append_new(st->success, p) == 0 ? 0 : -ENOMEM;
}

static int
etcd_put(struct store *st_, const struct xclass *cls, const char *ref, uint64_t gen_created,
         uint64_t gen_modified, uint64_t gen_read, const char *json, size_t len)
{
    (void)gen_created; /* etcd gives the revisions */
    (void)gen_modified;
    struct store_etcd *st = (struct store_etcd *)st_;
    char *key = key_of(st, "obj", cls->name, ref);
    int rc = key ? add_compare(st, key, gen_read) : -ENOMEM;
    if (rc == 0)
        rc = add_put(st, key, json, len);
    free(key);
    return rc;
}

static int
etcd_delete(struct store *st_, const struct xclass *cls, const char *ref, uint64_t gen,
            uint64_t gen_created, uint64_t gen_read)
{
    (void)gen;
    struct store_etcd *st = (struct store_etcd *)st_;
    char *key = key_of(st, "obj", cls->name, ref);
    char *tomb = key_of(st, "tomb", cls->name, ref);
    char value[48];
    int n = snprintf(value, sizeof(value), "{\"gen_created\":%" PRIu64 "}", gen_created);
    int rc = key && tomb ? add_compare(st, key, gen_read) : -ENOMEM;
    json_t *d = rc == 0 ? json_pack("{s:{s:o}}", "request_delete_range", "key",
                                    json_b64(key, strlen(key)))
                        : NULL;
    if (rc == 0 && (!d || json_array_append_new(st->success, d) < 0))
        rc = -ENOMEM;
    if (rc == 0)
        rc = add_put(st, tomb, value, (size_t)n);
    free(key);
    free(tomb);
    return rc;
}

static long
now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000L + t.tv_nsec / 1000000L;
}

/* Revision @rev exists: a watch that has not brought it WATCH_STALE_MS from
 * now is stale. The time goes first, so that watch_progress never pairs the
 * new revision with an older time. */
static void
note_awaited(struct store_etcd *st, uint64_t rev)
{
    uint64_t cur = atomic_load(&st->awaited_rev);
    if (rev <= cur)
        return;
    atomic_store(&st->awaited_ms, now_ms());
    while (rev > cur && !atomic_compare_exchange_weak(&st->awaited_rev, &cur, rev))
        ;
}

static void
etcd_expect(struct store *st_, uint64_t gen)
{
    note_awaited((struct store_etcd *)st_, gen);
}

static long
ms_since(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - t0->tv_sec) * 1000L + (now.tv_nsec - t0->tv_nsec) / 1000000L;
}

static void
sleep_ms(int ms)
{
    nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000L}, NULL);
}

/* After a failed attempt: 1 and *@rev when the marker holds @nonce (the
 * transaction committed at *@rev), 0 when it does not (it did not), -EIO
 * when etcd cannot tell before the deadline. */
static int
marker_check(struct store_etcd *st, const char *nonce, const struct timespec *t0, uint64_t *rev)
{
    while (ms_since(t0) < COMMIT_DEADLINE_MS) {
        sleep_ms(RETRY_PAUSE_MS);
        json_t *req = json_pack("{s:o}", "key", json_b64(st->marker, strlen(st->marker)));
        json_t *resp = NULL;
        char saved[sizeof(st->err)];
        memcpy(saved, st->err, sizeof(saved));
        int rc = req ? etcd_call(st, st->curl, "/v3/kv/range", req, true, &resp) : -ENOMEM;
        json_decref(req);
        if (rc < 0) {
            memcpy(st->err, saved, sizeof(saved)); /* the commit's reason is the one to tell */
            continue;
        }
        json_t *kv = json_array_get(json_object_get(resp, "kvs"), 0);
        size_t len = 0;
        const char *v64 = json_string_value(json_object_get(kv, "value"));
        char *value = v64 ? b64_decode(v64, &len) : NULL;
        int found = value && strcmp(value, nonce) == 0;
        if (found)
            *rev = json_u64(kv, "mod_revision");
        free(value);
        json_decref(resp);
        return found;
    }
    return -EIO;
}

static int
etcd_commit(struct store *st_, uint64_t gen, uint64_t *committed)
{
    (void)gen;
    struct store_etcd *st = (struct store_etcd *)st_;
    char nonce[40];
    snprintf(nonce, sizeof(nonce), "%" PRIu64 "-%ld", ++st->n_commits, (long)time(NULL));
    int rc = add_put(st, st->marker, nonce, strlen(nonce));
    json_t *req = rc == 0 ? json_pack("{s:O, s:O}", "compare", st->compare, "success", st->success)
                          : NULL;
    txn_clear(st);
    if (!req)
        return -ENOMEM;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    json_t *resp = NULL;
    for (;;) {
        rc = etcd_call(st, st->curl, "/v3/kv/txn", req, false, &resp);
        if (rc == 0 || rc == -ENOMEM || rc == -EINVAL)
            break; /* -EINVAL: refused as it stands, so surely not committed */
        int done = marker_check(st, nonce, &t0, committed);
        if (done != 0) {
            json_decref(req);
            if (done > 0) {
                log_info("db.etcd.commit", "revision=%" PRIu64 " after=\"%s\"", *committed,
                         st->err);
                note_awaited(st, *committed);
            }
            return done > 0 ? 0 : -EIO;
        }
        if (ms_since(&t0) >= COMMIT_DEADLINE_MS)
            break; /* it did not commit: say why */
        log_info("db.etcd.commit", "again=true reason=\"%s\"", st->err);
    }
    json_decref(req);
    if (rc < 0)
        return rc;
    *committed = json_u64(json_object_get(resp, "header"), "revision");
    if (!json_is_true(json_object_get(resp, "succeeded"))) {
        snprintf(st->err, sizeof(st->err), "another writer changed an object (revision %" PRIu64 ")",
                 *committed);
        rc = -EAGAIN;
    } else {
        note_awaited(st, *committed);
    }
    json_decref(resp);
    return rc;
}

static void
etcd_rollback(struct store *st_)
{
    txn_clear((struct store_etcd *)st_);
}

static int
etcd_prune_tombstones(struct store *st_, uint64_t gen)
{
    (void)st_;
    (void)gen;
    return 0; /* kept, as tokens from any host may name them */
}

static const char *
etcd_error(struct store *st_)
{
    return ((struct store_etcd *)st_)->err;
}

/* ------------------------------------------------------------------ the watch */

struct watch_stream {
    struct store_etcd *st;
    struct strbuf line;
    bool compacted;
    bool failed;
    bool stale;
    long started_ms;
};

/* Reports one revision's events [from, to) of @events. */
static void
report(struct store_etcd *st, uint64_t rev, json_t *events, size_t from, size_t to)
{
    struct store_change *ch = calloc(to - from + 1, sizeof(*ch));
    char **bufs = calloc(2 * (to - from) + 1, sizeof(*bufs));
    size_t n = 0, nb = 0;
    if (!ch || !bufs) {
        log_error("db.etcd.watch", "reason=out-of-memory revision=%" PRIu64, rev);
        free(ch);
        free(bufs);
        return;
    }
    for (size_t i = from; i < to; i++) {
        json_t *ev = json_array_get(events, i), *kv = json_object_get(ev, "kv");
        bool del = json_is_string(json_object_get(ev, "type")) &&
                   strcmp(json_string_value(json_object_get(ev, "type")), "DELETE") == 0;
        size_t klen, vlen = 0;
        char *key = b64_decode(json_string_value(json_object_get(kv, "key")) ?: "", &klen);
        bool tomb;
        const struct xclass *cls;
        const char *ref;
        if (!key || !key_parse(st, key, &tomb, &cls, &ref) || tomb) {
            free(key); /* tombstones follow from the deletions */
            continue;
        }
        bufs[nb++] = key;
        ch[n] = (struct store_change){.cls = cls, .ref = ref,
                                      .gen_created = json_u64(kv, "create_revision")};
        if (!del) {
            const char *v64 = json_string_value(json_object_get(kv, "value"));
            char *value = b64_decode(v64 ? v64 : "", &vlen);
            if (!value)
                continue;
            bufs[nb++] = value;
            ch[n].json = value;
            ch[n].len = vlen;
        }
        n++;
    }
    /* a test aid: a host whose view of the others' commits lags */
    test_delay_point("VESSEL_TEST_WATCH_DELAY_MS");
    st->on_change(st->opaque, rev, ch, n);
    for (size_t i = 0; i < nb; i++)
        free(bufs[i]);
    free(bufs);
    free(ch);
}

static void
watch_line(struct watch_stream *ws, const char *text, size_t len)
{
    struct store_etcd *st = ws->st;
    json_t *msg = json_loadb(text, len, 0, NULL);
    json_t *res = json_object_get(msg, "result");
    if (!res) {
        const char *why = json_string_value(json_object_get(json_object_get(msg, "error"), "message"));
        log_warn("db.etcd.watch", "reason=\"%s\"", why ? why : "unexpected answer");
        ws->failed = true;
        json_decref(msg);
        return;
    }
    if (json_u64(res, "compact_revision") >= st->next_rev) {
        ws->compacted = true;
    } else if (json_is_true(json_object_get(res, "canceled"))) {
        const char *why = json_string_value(json_object_get(res, "cancel_reason"));
        log_warn("db.etcd.watch", "canceled=\"%s\"", why ? why : "");
        ws->failed = true;
    }
    json_t *events = json_object_get(res, "events");
    size_t n = json_array_size(events);
    for (size_t i = 0; i < n;) {
        uint64_t rev = json_u64(json_object_get(json_array_get(events, i), "kv"), "mod_revision");
        size_t j = i + 1;
        while (j < n &&
               json_u64(json_object_get(json_array_get(events, j), "kv"), "mod_revision") == rev)
            j++;
        if (rev >= st->next_rev) {
            report(st, rev, events, i, j);
            st->next_rev = rev + 1;
        }
        i = j;
    }
    json_decref(msg);
}

static size_t
watch_data(char *data, size_t size, size_t n, void *opaque)
{
    struct watch_stream *ws = opaque;
    size_t len = size * n;
    for (size_t i = 0; i < len; i++) {
        if (data[i] != '\n') {
            strbuf_putc(&ws->line, data[i]);
            continue;
        }
        watch_line(ws, ws->line.buf ? ws->line.buf : "", ws->line.len);
        strbuf_reset(&ws->line);
        if (ws->compacted || ws->failed)
            return 0; /* ends the stream: start again */
    }
    return len;
}

static int
watch_progress(void *opaque, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    struct watch_stream *ws = opaque;
    struct store_etcd *st = ws->st;
    if (atomic_load(&st->stop))
        return 1;
    uint64_t rev = atomic_load(&st->awaited_rev);
    long since = atomic_load(&st->awaited_ms);
    if (since < ws->started_ms)
        since = ws->started_ms; /* a new stream gets its time too */
    if (rev >= st->next_rev && now_ms() - since > WATCH_STALE_MS) {
        ws->stale = true; /* a revision known to exist has not come */
        return 1;
    }
    return 0;
}

/* After a compaction passed next_rev: every object and tombstone newer than
 * what this host saw, as one change at the revision read. */
static void
resync(struct store_etcd *st, CURL *c)
{
    struct loaded *rows = NULL;
    size_t n = 0;
    uint64_t rev = 0;
    if (read_prefix(st, c, &rows, &n, &rev) < 0) {
        log_warn("db.etcd.resync", "reason=\"%s\"", st->err);
        return;
    }
    struct store_change *ch = calloc(n + 1, sizeof(*ch));
    size_t k = 0;
    for (size_t i = 0; ch && i < n; i++) {
        if (rows[i].gen_modified < st->next_rev)
            continue;
        ch[k++] = (struct store_change){.cls = rows[i].cls, .ref = rows[i].ref,
                                        .gen_created = rows[i].tomb ? tomb_gen_created(&rows[i])
                                                                    : rows[i].gen_created,
                                        .json = rows[i].tomb ? NULL : rows[i].value,
                                        .len = rows[i].tomb ? 0 : rows[i].len};
    }
    if (ch) {
        log_warn("db.etcd.resync", "from=%" PRIu64 " to=%" PRIu64 " changed=%zu", st->next_rev,
                 rev, k);
        st->on_change(st->opaque, rev, ch, k);
        st->next_rev = rev + 1;
    }
    free(ch);
    rows_free(rows, n);
}

static void
pause_ms(struct store_etcd *st, int ms)
{
    for (int i = 0; i < ms / 10 && !atomic_load(&st->stop); i++)
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
}

static void *
watch_main(void *opaque)
{
    struct store_etcd *st = opaque;
    CURL *c = curl_easy_init();
    char *from = NULL, *to = NULL;
    if (!c || asprintf(&from, "%s/", st->prefix) < 0 || asprintf(&to, "%s0", st->prefix) < 0) {
        log_error("db.etcd.watch", "reason=out-of-memory");
        goto out;
    }
    while (!atomic_load(&st->stop)) {
        json_t *req = json_pack("{s:{s:o, s:o, s:o}}", "create_request", "key",
                                json_b64(from, strlen(from)), "range_end",
                                json_b64(to, strlen(to)), "start_revision",
                                json_u64_string(st->next_rev));
        char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
        json_decref(req);
        size_t ep = atomic_load(&st->cur);
        char url[512];
        snprintf(url, sizeof(url), "%s/v3/watch", st->endpoints[ep]);
        struct watch_stream ws = {.st = st, .line = STRBUF_INIT, .started_ms = now_ms()};
        curl_easy_reset(c);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, watch_data);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &ws);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, watch_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, &ws);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        etcd_http_setup(c);
        CURLcode cc = curl_easy_perform(c);
        free(body);
        strbuf_release(&ws.line);
        if (atomic_load(&st->stop))
            break;
        if (ws.compacted) {
            resync(st, c);
            continue;
        }
        log_warn("db.etcd.watch", "endpoint=%s next=%" PRIu64 " reason=\"%s\"",
                 st->endpoints[ep], st->next_rev,
                 ws.stale ? "stale: a revision known to exist did not come"
                 : ws.failed ? "stream failed" : curl_easy_strerror(cc));
        /* The next member, unless a request meanwhile found a better one. */
        size_t expected = ep;
        atomic_compare_exchange_strong(&st->cur, &expected, (ep + 1) % st->n_endpoints);
        pause_ms(st, WATCH_RETRY_MS);
    }
out:
    free(from);
    free(to);
    curl_easy_cleanup(c);
    return NULL;
}

static int
etcd_follow(struct store *st_, store_change_fn *fn, void *opaque)
{
    struct store_etcd *st = (struct store_etcd *)st_;
    rows_free(st->rows, st->n_rows); /* loaded: db.c has them now */
    st->rows = NULL;
    st->n_rows = 0;
    st->on_change = fn;
    st->opaque = opaque;
    st->next_rev = st->revision + 1;
    if (pthread_create(&st->watcher, NULL, watch_main, st) != 0)
        return -EAGAIN;
    st->watching = true;
    return 0;
}

/* ------------------------------------------------------------------ open / close */

static void
etcd_close(struct store *st_)
{
    struct store_etcd *st = (struct store_etcd *)st_;
    if (st->watching) {
        atomic_store(&st->stop, true);
        pthread_join(st->watcher, NULL);
    }
    if (st->n_commits && st->curl) { /* best effort: a crash leaves one small key */
        json_t *req = json_pack("{s:o}", "key", json_b64(st->marker, strlen(st->marker)));
        json_t *resp = NULL;
        if (req && etcd_call(st, st->curl, "/v3/kv/deleterange", req, false, &resp) == 0)
            json_decref(resp);
        json_decref(req);
    }
    txn_clear(st);
    rows_free(st->rows, st->n_rows);
    for (size_t i = 0; i < st->n_endpoints; i++)
        free(st->endpoints[i]);
    free(st->endpoints);
    free(st->marker);
    free(st->prefix);
    if (st->curl)
        curl_easy_cleanup(st->curl);
    free(st);
}

static const struct store_ops etcd_ops = {
    .close = etcd_close,
    .load = etcd_load,
    .load_tombstones = etcd_load_tombstones,
    .generation = etcd_generation,
    .begin = etcd_begin,
    .put = etcd_put,
    .del = etcd_delete,
    .commit = etcd_commit,
    .rollback = etcd_rollback,
    .prune_tombstones = etcd_prune_tombstones,
    .error = etcd_error,
    .follow = etcd_follow,
    .latest = etcd_latest,
    .expect = etcd_expect,
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void
curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int
parse_spec(struct store_etcd *st, const char *spec, char *why, size_t why_len)
{
    const char *semi = strchr(spec, ';');
    if (!semi || semi == spec || semi[1] != '/' || strchr(semi, '@')) {
        snprintf(why, why_len, "etcd store \"%s\": want ENDPOINT[,ENDPOINT...];/PREFIX", spec);
        return -EINVAL;
    }
    st->prefix = strdup(semi + 1);
    if (!st->prefix)
        return -ENOMEM;
    size_t pl = strlen(st->prefix);
    while (pl > 1 && st->prefix[pl - 1] == '/')
        st->prefix[--pl] = 0;
    for (const char *p = spec; p < semi;) {
        const char *end = memchr(p, ',', (size_t)(semi - p));
        if (!end)
            end = semi;
        size_t len = (size_t)(end - p);
        while (len && p[len - 1] == '/')
            len--; /* "http://a:2379/" and "http://a:2379" alike */
        if (len) {
            char **e = realloc(st->endpoints, (st->n_endpoints + 1) * sizeof(*e));
            if (!e)
                return -ENOMEM;
            st->endpoints = e;
            if (!(e[st->n_endpoints] = strndup(p, len)))
                return -ENOMEM;
            if (strncmp(e[st->n_endpoints], "http://", 7) && strncmp(e[st->n_endpoints], "https://", 8)) {
                snprintf(why, why_len, "etcd endpoint \"%s\": want http:// or https://",
                         e[st->n_endpoints]);
                free(e[st->n_endpoints]);
                return -EINVAL;
            }
            st->n_endpoints++;
        }
        p = end + 1;
    }
    if (!st->n_endpoints) {
        snprintf(why, why_len, "etcd store: no endpoint");
        return -EINVAL;
    }
    return 0;
}

int
store_etcd_open(const char *spec, struct store **out, char *why, size_t why_len)
{
    pthread_once(&curl_once, curl_init_once);
    struct store_etcd *st = calloc(1, sizeof(*st));
    if (!st)
        return -ENOMEM;
    st->base.ops = &etcd_ops;
    int rc = parse_spec(st, spec, why, why_len);
    if (rc == 0 && !(st->curl = curl_easy_init()))
        rc = -ENOMEM;
    char instance[37];
    db_uuid_generate(instance); /* this process's, not the host's: two may share a host */
    if (rc == 0 && !(st->marker = key_of(st, "txn", "commit", instance)))
        rc = -ENOMEM;
    if (rc == 0 && (rc = read_prefix(st, st->curl, &st->rows, &st->n_rows, &st->revision)) < 0)
        snprintf(why, why_len, "%s", st->err);
    if (rc < 0) {
        etcd_close(&st->base);
        return rc;
    }
    log_info("db.etcd.open", "prefix=%s endpoints=%zu revision=%" PRIu64 " keys=%zu", st->prefix,
             st->n_endpoints, st->revision, st->n_rows);
    *out = &st->base;
    return 0;
}
