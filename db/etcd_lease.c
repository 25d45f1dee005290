/* db/etcd_lease.c - etcd leases and small keys on them, through etcd's JSON
 * gateway (Documentation/dev-guide/api_grpc_gateway.md): POST /v3/lease/grant,
 * /v3/lease/keepalive (one request, one answer: an expired lease answers
 * without a TTL), /v3/lease/revoke, /v3/kv/put, /v3/kv/txn, /v3/kv/range,
 * /v3/kv/deleterange, /v3/watch.
 *
 * Unlike the pool store (db/store_etcd.c) nothing here retries for long: a
 * caller that renews a lease must learn within its own deadline that etcd is
 * out of reach, so each request is bounded by the timeout given at open and
 * the endpoints are tried in turn within that bound, starting with the one
 * that last answered. A write that failed after it was sent is not sent to
 * another member (it may have committed); the caller's next round decides.
 *
 * A watch runs on its own thread: it lists its range (ETCD_WATCH_RESET ...
 * SYNCED), then streams changes from the listing's revision + 1; when the
 * stream ends for any reason it lists again, so a consumer never needs
 * history that etcd may have compacted.
 */
#include "db/etcd_lease.h"

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

#include "common/strbuf.h"
#include "db/etcd_codec.h"
#include "db/etcd_http.h"

#define MAX_WATCHES 4
#define WATCH_RETRY_MS 200

struct etcd_watch {
    struct etcd_lease *el;
    char *key, *range_end; /* absolute */
    etcd_watch_fn *fn;
    void *opaque;
    pthread_t thread;
    uint64_t next_rev;
};

struct etcd_lease {
    char **endpoints;
    size_t n_endpoints;
    atomic_size_t cur; /* the endpoint that last answered */
    char *prefix;      /* without a trailing '/' */
    long timeout_ms;
    atomic_bool stop;
    struct etcd_watch watches[MAX_WATCHES];
    size_t n_watches;
};

static _Thread_local char last_error[256];

const char *
etcd_lease_error(void)
{
    return last_error;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void
curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static char *
abs_key(struct etcd_lease *el, const char *key)
{
    char *k = NULL;
    return asprintf(&k, "%s/%s", el->prefix, key) < 0 ? NULL : k;
}

/* The end of the range of keys starting with @k: @k with its last byte + 1. */
static char *
range_end_of(const char *k)
{
    char *e = strdup(k);
    size_t n = e ? strlen(e) : 0;
    if (n)
        e[n - 1]++;
    return e;
}

/* ------------------------------------------------------------------ HTTP */

static long
now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000L + t.tv_nsec / 1000000L;
}

/* One POST to endpoint @ep within @budget_ms. *@sent is false when the
 * request surely never reached etcd. */
static int
post_once(struct etcd_lease *el, CURL *c, size_t ep, const char *path, const char *body,
          long budget_ms, json_t **resp, bool *sent)
{
    int rc = etcd_http_post(c, el->endpoints[ep], path, body, budget_ms, budget_ms, resp, sent,
                            last_error, sizeof(last_error));
    return rc < 0 ? -EIO : 0;
}

/* POSTs @req (taken) to @path within the client's timeout, over the
 * endpoints in turn; a write (!@idempotent) that reached one is not sent to
 * another. 0 and *@resp (json_decref), or -errno. */
static int
call(struct etcd_lease *el, const char *path, json_t *req, bool idempotent, json_t **resp)
{
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    CURL *c = body ? curl_easy_init() : NULL;
    if (!c) {
        free(body);
        snprintf(last_error, sizeof(last_error), "out of memory");
        return -ENOMEM;
    }
    long deadline = now_ms() + el->timeout_ms;
    size_t first = atomic_load(&el->cur), ep = first;
    int rc = -EIO;
    for (size_t i = 0; i < el->n_endpoints; i++) {
        long left = deadline - now_ms();
        if (left <= 0)
            break;
        ep = (first + i) % el->n_endpoints;
        bool sent;
        rc = post_once(el, c, ep, path, body, left, resp, &sent);
        if (rc == 0 || (sent && !idempotent))
            break;
    }
    curl_easy_cleanup(c);
    free(body);
    atomic_store(&el->cur, rc == 0 ? ep : (ep + 1) % el->n_endpoints);
    return rc;
}

/* ------------------------------------------------------------------ leases */

int
etcd_lease_grant(struct etcd_lease *el, int ttl_s, int64_t *id, int *granted_s)
{
    json_t *resp = NULL;
    int rc = call(el, "/v3/lease/grant", json_pack("{s:o}", "TTL", json_u64_string((uint64_t)ttl_s)),
                  false, &resp);
    if (rc < 0)
        return rc;
    *id = (int64_t)json_u64(resp, "ID");
    *granted_s = (int)json_u64(resp, "TTL");
    json_decref(resp);
    if (!*id || *granted_s <= 0) {
        snprintf(last_error, sizeof(last_error), "etcd granted no lease");
        return -EIO;
    }
    return 0;
}

int
etcd_lease_keepalive(struct etcd_lease *el, int64_t id, int *ttl_s)
{
    json_t *resp = NULL;
    int rc = call(el, "/v3/lease/keepalive",
                  json_pack("{s:o}", "ID", json_u64_string((uint64_t)id)), true, &resp);
    if (rc < 0)
        return rc;
    *ttl_s = (int)json_u64(json_object_get(resp, "result"), "TTL");
    json_decref(resp);
    if (*ttl_s <= 0) {
        snprintf(last_error, sizeof(last_error), "lease %" PRIx64 " expired", (uint64_t)id);
        return -ENOENT;
    }
    return 0;
}

int
etcd_lease_revoke(struct etcd_lease *el, int64_t id)
{
    json_t *resp = NULL;
    int rc = call(el, "/v3/lease/revoke", json_pack("{s:o}", "ID", json_u64_string((uint64_t)id)),
                  true, &resp);
    json_decref(resp);
    return rc;
}

/* ------------------------------------------------------------------ keys */

static json_t *
put_op(const char *key, const char *value, int64_t lease)
{
    json_t *put = json_pack("{s:o, s:o}", "key", json_b64(key, strlen(key)), "value",
                            json_b64(value, strlen(value)));
    if (put && lease)
        json_object_set_new(put, "lease", json_u64_string((uint64_t)lease));
    return put;
}

int
etcd_lease_put(struct etcd_lease *el, const char *key, const char *value, int64_t lease)
{
    char *k = abs_key(el, key);
    json_t *resp = NULL;
    int rc = k ? call(el, "/v3/kv/put", put_op(k, value, lease), false, &resp) : -ENOMEM;
    json_decref(resp);
    free(k);
    return rc;
}

/* One transaction: if @cmp then @op; *@done = succeeded. */
static int
txn(struct etcd_lease *el, json_t *cmp, json_t *op, bool *done)
{
    json_t *resp = NULL;
    json_t *req = cmp && op ? json_pack("{s:[o], s:[o]}", "compare", cmp, "success", op) : NULL;
    if (!req) {
        json_decref(cmp);
        json_decref(op);
        return -ENOMEM;
    }
    int rc = call(el, "/v3/kv/txn", req, false, &resp);
    if (rc == 0)
        *done = json_is_true(json_object_get(resp, "succeeded"));
    json_decref(resp);
    return rc;
}

int
etcd_lease_create(struct etcd_lease *el, const char *key, const char *value, int64_t lease,
                  bool *created)
{
    char *k = abs_key(el, key);
    if (!k)
        return -ENOMEM;
    json_t *cmp = json_pack("{s:o, s:s, s:s, s:s}", "key", json_b64(k, strlen(k)), "target",
                            "CREATE", "result", "EQUAL", "create_revision", "0");
    json_t *op = json_pack("{s:o}", "request_put", put_op(k, value, lease));
    free(k);
    return txn(el, cmp, op, created);
}

static json_t *
value_equals(const char *k, const char *expect)
{
    return json_pack("{s:o, s:s, s:s, s:o}", "key", json_b64(k, strlen(k)), "target", "VALUE",
                     "result", "EQUAL", "value", json_b64(expect, strlen(expect)));
}

int
etcd_lease_replace(struct etcd_lease *el, const char *key, const char *expect, const char *value,
                   int64_t lease, bool *done)
{
    char *k = abs_key(el, key);
    if (!k)
        return -ENOMEM;
    json_t *cmp = value_equals(k, expect);
    json_t *op = json_pack("{s:o}", "request_put", put_op(k, value, lease));
    free(k);
    return txn(el, cmp, op, done);
}

int
etcd_lease_delete(struct etcd_lease *el, const char *key, const char *expect)
{
    char *k = abs_key(el, key);
    if (!k)
        return -ENOMEM;
    json_t *del = json_pack("{s:o}", "key", json_b64(k, strlen(k)));
    int rc;
    if (expect) {
        bool done;
        json_t *cmp = value_equals(k, expect);
        rc = txn(el, cmp, json_pack("{s:o}", "request_delete_range", del), &done);
    } else {
        json_t *resp = NULL;
        rc = call(el, "/v3/kv/deleterange", del, false, &resp);
        json_decref(resp);
    }
    free(k);
    return rc;
}

int
etcd_lease_get(struct etcd_lease *el, const char *key, char **value, int64_t *lease)
{
    char *k = abs_key(el, key);
    json_t *resp = NULL;
    int rc = k ? call(el, "/v3/kv/range", json_pack("{s:o}", "key", json_b64(k, strlen(k))), true,
                      &resp)
               : -ENOMEM;
    free(k);
    if (rc < 0)
        return rc;
    json_t *kv = json_array_get(json_object_get(resp, "kvs"), 0);
    const char *v64 = json_string_value(json_object_get(kv, "value"));
    size_t len;
    rc = -ENOENT;
    if (kv) {
        *value = b64_decode(v64 ? v64 : "", &len);
        rc = *value ? 0 : -ENOMEM;
        if (lease)
            *lease = (int64_t)json_u64(kv, "lease");
    }
    json_decref(resp);
    return rc;
}

/* ------------------------------------------------------------------ watches */

/* The key relative to the prefix, or NULL when it is not under it. */
static const char *
rel_key(struct etcd_lease *el, const char *k)
{
    size_t pl = strlen(el->prefix);
    return strncmp(k, el->prefix, pl) == 0 && k[pl] == '/' ? k + pl + 1 : NULL;
}

static void
report_kv(struct etcd_watch *w, enum etcd_watch_event ev, json_t *kv)
{
    size_t klen, vlen;
    char *k = b64_decode(json_string_value(json_object_get(kv, "key")) ?: "", &klen);
    const char *v64 = json_string_value(json_object_get(kv, "value"));
    char *v = ev == ETCD_WATCH_PUT ? b64_decode(v64 ? v64 : "", &vlen) : NULL;
    const char *rel = k ? rel_key(w->el, k) : NULL;
    if (rel && (ev != ETCD_WATCH_PUT || v))
        w->fn(w->opaque, ev, rel, v);
    free(k);
    free(v);
}

/* Lists the range: RESET, a PUT per key, SYNCED; next_rev follows it. */
static int
watch_list(struct etcd_watch *w)
{
    json_t *resp = NULL;
    json_t *req = json_pack("{s:o, s:o}", "key", json_b64(w->key, strlen(w->key)), "range_end",
                            json_b64(w->range_end, strlen(w->range_end)));
    int rc = call(w->el, "/v3/kv/range", req, true, &resp);
    if (rc < 0)
        return rc;
    w->next_rev = json_u64(json_object_get(resp, "header"), "revision") + 1;
    w->fn(w->opaque, ETCD_WATCH_RESET, NULL, NULL);
    json_t *kvs = json_object_get(resp, "kvs");
    for (size_t i = 0; i < json_array_size(kvs); i++)
        report_kv(w, ETCD_WATCH_PUT, json_array_get(kvs, i));
    w->fn(w->opaque, ETCD_WATCH_SYNCED, NULL, NULL);
    json_decref(resp);
    return 0;
}

struct stream {
    struct etcd_watch *w;
    struct strbuf line;
    bool ended;
};

static void
stream_line(struct stream *s, const char *text, size_t len)
{
    json_t *msg = json_loadb(text, len, 0, NULL);
    json_t *res = json_object_get(msg, "result");
    if (!res || json_is_true(json_object_get(res, "canceled")) ||
        json_u64(res, "compact_revision")) {
        s->ended = true; /* list again */
        json_decref(msg);
        return;
    }
    json_t *events = json_object_get(res, "events");
    for (size_t i = 0; i < json_array_size(events); i++) {
        json_t *ev = json_array_get(events, i), *kv = json_object_get(ev, "kv");
        const char *type = json_string_value(json_object_get(ev, "type"));
        uint64_t rev = json_u64(kv, "mod_revision");
        bool del = type && strcmp(type, "DELETE") == 0;
        if (rev < s->w->next_rev)
            continue;
        report_kv(s->w, del ? ETCD_WATCH_DELETE : ETCD_WATCH_PUT, kv);
        s->w->next_rev = rev + 1;
    }
    json_decref(msg);
}

static size_t
stream_data(char *data, size_t size, size_t n, void *opaque)
{
    struct stream *s = opaque;
    for (size_t i = 0; i < size * n; i++) {
        if (data[i] != '\n') {
            strbuf_putc(&s->line, data[i]);
            continue;
        }
        stream_line(s, s->line.buf ? s->line.buf : "", s->line.len);
        strbuf_reset(&s->line);
        if (s->ended)
            return 0;
    }
    return size * n;
}

static int
stream_progress(void *opaque, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    struct stream *s = opaque;
    return atomic_load(&s->w->el->stop) ? 1 : 0;
}

static void
pause_ms(struct etcd_lease *el, int ms)
{
    for (int i = 0; i < ms / 10 && !atomic_load(&el->stop); i++)
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
}

/* One stream of changes from next_rev, until it ends or close stops it. */
static void
watch_stream(struct etcd_watch *w, CURL *c)
{
    struct etcd_lease *el = w->el;
    json_t *req = json_pack("{s:{s:o, s:o, s:o}}", "create_request", "key",
                            json_b64(w->key, strlen(w->key)), "range_end",
                            json_b64(w->range_end, strlen(w->range_end)), "start_revision",
                            json_u64_string(w->next_rev));
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (!body)
        return;
    char url[512];
    snprintf(url, sizeof(url), "%s/v3/watch", el->endpoints[atomic_load(&el->cur)]);
    struct stream s = {.w = w, .line = STRBUF_INIT};
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, stream_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, el->timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, stream_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &s);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    /* A stream through a member cut off from etcd's leader stays silent:
     * ending it when nothing arrived for long enough is cheap (a listing). */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 30L);
    etcd_http_setup(c);
    curl_easy_perform(c);
    strbuf_release(&s.line);
    free(body);
}

static void *
watch_main(void *opaque)
{
    struct etcd_watch *w = opaque;
    struct etcd_lease *el = w->el;
    CURL *c = curl_easy_init();
    while (c && !atomic_load(&el->stop)) {
        if (watch_list(w) == 0)
            watch_stream(w, c);
        if (!atomic_load(&el->stop)) {
            atomic_store(&el->cur, (atomic_load(&el->cur) + 1) % el->n_endpoints);
            pause_ms(el, WATCH_RETRY_MS);
        }
    }
    if (c)
        curl_easy_cleanup(c);
    return NULL;
}

int
etcd_lease_watch(struct etcd_lease *el, const char *key_prefix, etcd_watch_fn *fn, void *opaque)
{
    if (el->n_watches == MAX_WATCHES)
        return -ENOSPC;
    struct etcd_watch *w = &el->watches[el->n_watches];
    *w = (struct etcd_watch){.el = el, .fn = fn, .opaque = opaque};
    w->key = abs_key(el, key_prefix);
    w->range_end = w->key ? range_end_of(w->key) : NULL;
    if (!w->range_end || pthread_create(&w->thread, NULL, watch_main, w) != 0) {
        free(w->key);
        free(w->range_end);
        return -ENOMEM;
    }
    el->n_watches++;
    return 0;
}

/* ------------------------------------------------------------------ open / close */

void
etcd_lease_close(struct etcd_lease *el)
{
    if (!el)
        return;
    atomic_store(&el->stop, true);
    for (size_t i = 0; i < el->n_watches; i++) {
        pthread_join(el->watches[i].thread, NULL);
        free(el->watches[i].key);
        free(el->watches[i].range_end);
    }
    for (size_t i = 0; i < el->n_endpoints; i++)
        free(el->endpoints[i]);
    free(el->endpoints);
    free(el->prefix);
    free(el);
}

/* "ENDPOINT[,ENDPOINT...];/PREFIX", as the pool store reads it. */
static int
parse_spec(struct etcd_lease *el, const char *spec, char *why, size_t why_len)
{
    const char *semi = strchr(spec, ';');
    if (!semi || semi == spec || semi[1] != '/') {
        snprintf(why, why_len, "etcd leases \"%s\": want ENDPOINT[,ENDPOINT...];/PREFIX", spec);
        return -EINVAL;
    }
    if (!(el->prefix = strdup(semi + 1)))
        return -ENOMEM;
    size_t pl = strlen(el->prefix);
    while (pl > 1 && el->prefix[pl - 1] == '/')
        el->prefix[--pl] = 0;
    for (const char *p = spec; p < semi;) {
        const char *end = memchr(p, ',', (size_t)(semi - p));
        if (!end)
            end = semi;
        size_t len = (size_t)(end - p);
        while (len && p[len - 1] == '/')
            len--;
        if (len) {
            char **e = realloc(el->endpoints, (el->n_endpoints + 1) * sizeof(*e));
            if (!e)
                return -ENOMEM;
            el->endpoints = e;
            if (!(e[el->n_endpoints] = strndup(p, len)))
                return -ENOMEM;
            el->n_endpoints++;
        }
        p = end + 1;
    }
    if (!el->n_endpoints) {
        snprintf(why, why_len, "etcd leases: no endpoint");
        return -EINVAL;
    }
    return 0;
}

int
etcd_lease_open(const char *spec, long timeout_ms, struct etcd_lease **out, char *why,
                size_t why_len)
{
    pthread_once(&curl_once, curl_init_once);
    struct etcd_lease *el = calloc(1, sizeof(*el));
    if (!el)
        return -ENOMEM;
    el->timeout_ms = timeout_ms > 0 ? timeout_ms : 1000;
    int rc = parse_spec(el, spec, why, why_len);
    if (rc < 0) {
        etcd_lease_close(el);
        return rc;
    }
    *out = el;
    return 0;
}
