/* bench/pool/poolbench.c - a commit's latency on the pool store (issue 15).
 *
 *   poolbench --etcd URL [--samples N] [--dir DIR]
 *
 * In one run, N times each (default 500):
 *   1. sqlite: db_set_field of one VM's name_label on a store in DIR
 *      (SQLite, WAL): a whole commit, memory and disk;
 *   2. etcd:   the same on the etcd store (db/store_etcd.c) at URL, under a
 *      prefix of its own: the transaction, then the wait for the watch to
 *      bring it back (a write returns once event.from can report it);
 *   3. raw:    an etcd transaction of the same shape sent by libcurl alone
 *      (compare one key's mod_revision, put the same record and the commit
 *      marker): etcd's own part, HTTP and JSON included;
 * then etcd's share of a commit = raw p50 / etcd p50 (the transaction's
 * round trip only; the watch's echo is counted as the store's). Prints a table and one
 * line starting with "POOLBENCH_JSON ". Exit status 0 when it ran, 1 on an
 * error.
 */
#include <curl/curl.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/strbuf.h"
#include "db/db.h"
#include "model/xmodel.h"
#include "wire/wire.h"
#include "xapi_model.h"

static double
now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

struct stats {
    double p50, p90, p99, mean;
};

static struct stats
summarise(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += v[i];
    return (struct stats){v[n / 2], v[n * 9 / 10], v[n * 99 / 100], sum / n};
}

static void
die(const char *what, const char *why)
{
    fprintf(stderr, "poolbench: %s: %s\n", what, why);
    exit(1);
}

/* N commits of one field on the store at @path. */
static struct stats
bench_store(const char *path, int n)
{
    struct db *db = NULL;
    char why[512] = "";
    if (db_open(path, &db, why, sizeof(why)) < 0)
        die(path, why);
    struct xapi_vm_record *vm = xapi_vm_record_new();
    char *ref = NULL;
    struct xerr *err = NULL;
    char d[256];
    if (!db_create(db, &xapi_class_vm, NULL, vm, &ref, &err))
        die("create", xerr_describe(err, d, sizeof(d)));
    const struct xfield *f = xclass_field(&xapi_class_vm, "name_label");
    double *lat = calloc((size_t)n, sizeof(*lat));
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof(name), "bench-%d", i);
        const char *v = name;
        double t0 = now_ms();
        if (!db_set_field(db, &xapi_class_vm, ref, f, &v, &err))
            die("set_field", xerr_describe(err, d, sizeof(d)));
        lat[i] = now_ms() - t0;
    }
    struct stats s = summarise(lat, n);
    free(lat);
    free(ref);
    db_close(db);
    return s;
}

static size_t
discard(char *p, size_t size, size_t n, void *opaque)
{
    (void)p;
    struct strbuf_lite {
        char buf[4096];
        size_t len;
    } *b = opaque;
    size_t len = size * n, room = sizeof(b->buf) - 1 - b->len;
    memcpy(b->buf + b->len, p, len < room ? len : room);
    b->len += len < room ? len : room;
    b->buf[b->len] = 0;
    return len;
}

static char *
b64(const char *s, size_t len)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *o = malloc((len + 2) / 3 * 4 + 1);
    size_t k = 0;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned char)s[i] << 16 | (i + 1 < len ? (unsigned char)s[i + 1] << 8 : 0) |
                     (i + 2 < len ? (unsigned char)s[i + 2] : 0);
        o[k++] = t[v >> 18 & 63];
        o[k++] = t[v >> 12 & 63];
        o[k++] = i + 1 < len ? t[v >> 6 & 63] : '=';
        o[k++] = i + 2 < len ? t[v & 63] : '=';
    }
    o[k] = 0;
    return o;
}

/* The etcd transaction a one-object commit sends, without vesseld around it. */
static struct stats
bench_raw(const char *url, int n, size_t record_len)
{
    char *rec = malloc(record_len + 1);
    memset(rec, 'x', record_len);
    rec[record_len] = 0;
    char key[64], marker[64];
    snprintf(key, sizeof(key), "/vessel-bench-raw/%d/obj", (int)getpid());
    snprintf(marker, sizeof(marker), "/vessel-bench-raw/%d/marker", (int)getpid());
    char *k64 = b64(key, strlen(key)), *m64 = b64(marker, strlen(marker));
    char *v64 = b64(rec, record_len);
    CURL *c = curl_easy_init();
    char endpoint[512];
    snprintf(endpoint, sizeof(endpoint), "%s/v3/kv/txn", url);
    struct {
        char buf[4096];
        size_t len;
    } out;
    uint64_t rev = 0; /* the key's mod_revision, from the previous answer */
    double *lat = calloc((size_t)n, sizeof(*lat));
    for (int i = -1; i < n; i++) {
        char r[24];
        snprintf(r, sizeof(r), "%" PRIu64, rev);
        json_t *cmp = rev ? json_pack("[{s:s, s:s, s:s, s:s}]", "key", k64, "target", "MOD",
                                      "result", "EQUAL", "mod_revision", r)
                          : json_array();
        json_t *req = json_pack("{s:o, s:[{s:{s:s, s:s}}, {s:{s:s, s:s}}]}", "compare", cmp,
                                "success", "request_put", "key", k64, "value", v64,
                                "request_put", "key", m64, "value", m64);
        char *body = json_dumps(req, JSON_COMPACT);
        json_decref(req);
        out.len = 0;
        curl_easy_setopt(c, CURLOPT_URL, endpoint);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
        double t0 = now_ms();
        CURLcode cc = curl_easy_perform(c);
        double t = now_ms() - t0;
        free(body);
        json_t *resp = cc == CURLE_OK ? json_loads(out.buf, 0, NULL) : NULL;
        if (!resp || !json_is_true(json_object_get(resp, "succeeded")))
            die("raw txn", cc != CURLE_OK ? curl_easy_strerror(cc) : out.buf);
        const char *got = json_string_value(
            json_object_get(json_object_get(resp, "header"), "revision"));
        rev = got ? strtoull(got, NULL, 10) : 0;
        json_decref(resp);
        if (i >= 0) /* the first one only creates the key */
            lat[i] = t;
    }
    curl_easy_cleanup(c);
    struct stats s = summarise(lat, n);
    free(lat);
    free(k64);
    free(m64);
    free(v64);
    free(rec);
    return s;
}

/* The JSON row the stores keep for a fresh VM (as db.c's record_json). */
static size_t
vm_record_len(void)
{
    struct xapi_vm_record *vm = xapi_vm_record_new();
    struct strbuf sb = STRBUF_INIT;
    struct wire_writer w;
    wire_writer_init(&w, WIRE_JSON, &sb);
    xrecord_encode(&xapi_class_vm, vm, &w, true);
    size_t len = sb.len;
    strbuf_release(&sb);
    xapi_vm_record_free(vm);
    return len;
}

int
main(int argc, char **argv)
{
    const char *url = NULL, *dir = "/tmp";
    int n = 500;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--etcd") == 0)
            url = argv[i + 1];
        else if (strcmp(argv[i], "--samples") == 0)
            n = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--dir") == 0)
            dir = argv[i + 1];
    }
    if (!url || n < 10) {
        fprintf(stderr, "usage: poolbench --etcd URL [--samples N>=10] [--dir DIR]\n");
        return 1;
    }
    if (xmodel_init() < 0)
        die("model", "init");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char sqlite_path[512], etcd_path[1024];
    snprintf(sqlite_path, sizeof(sqlite_path), "%s/poolbench.db", dir);
    snprintf(etcd_path, sizeof(etcd_path), "etcd:%s;/vessel-bench/%d", url, (int)getpid());
    struct stats sq = bench_store(sqlite_path, n);
    struct stats et = bench_store(etcd_path, n);
    struct stats raw = bench_raw(url, n, vm_record_len());
    double share = raw.p50 / et.p50;
    printf("%-34s %9s %9s %9s %9s\n", "commit of one VM field (ms)", "p50", "p90", "p99", "mean");
    printf("%-34s %9.3f %9.3f %9.3f %9.3f\n", "SQLite store (WAL, one host)", sq.p50, sq.p90,
           sq.p99, sq.mean);
    printf("%-34s %9.3f %9.3f %9.3f %9.3f\n", "etcd store (pool)", et.p50, et.p90, et.p99,
           et.mean);
    printf("%-34s %9.3f %9.3f %9.3f %9.3f\n", "etcd txn alone (libcurl)", raw.p50, raw.p90,
           raw.p99, raw.mean);
    printf("etcd's share of a pool commit (p50): %.0f%%; pool commit / SQLite commit (p50): %.1fx\n",
           share * 100, et.p50 / sq.p50);
    printf("POOLBENCH_JSON {\"bench\":\"pool\",\"samples\":%d,"
           "\"sqlite_commit_ms\":{\"p50\":%.4f,\"p99\":%.4f},"
           "\"etcd_commit_ms\":{\"p50\":%.4f,\"p99\":%.4f},"
           "\"etcd_txn_ms\":{\"p50\":%.4f,\"p99\":%.4f},\"etcd_share_p50\":%.3f}\n",
           n, sq.p50, sq.p99, et.p50, et.p99, raw.p50, raw.p99, share);
    curl_global_cleanup();
    return 0;
}
