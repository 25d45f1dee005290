/* common/rrd.c - round-robin databases as xapi keeps them.
 *
 * Facts from xapi's ocaml/libs/xapi-rrd: archives (RRAs) of consolidated
 * data points (CDPs), each of pdp_cnt primary points (one per step); the
 * timescales of rrd_timescales (120 x 5 s, 120 x 1 min, 168 x 1 h, 366 x 1
 * day) for each of AVERAGE, MIN and MAX; a CDP ends at a multiple of its
 * length in unix time, so every rrd with the same step lines up; NaN is
 * "unknown" and an average ignores unknown points. The rrd_updates document
 * (Rrd_updates.export) lists "CF:prefix+name" legends and rows newest first,
 * numbers printed as "%0.15g" with NaN, Infinity and "0.0" spelled as xapi
 * spells them (Rrd_utils.f_to_s).
 *
 * Data: each RRA keeps rows x n_ds doubles in a ring (row-major, newest at
 * head) and, for the CDP in progress, one accumulator per data source.
 * Adding a data source grows every ring (its past is NaN).
 */
#include "common/rrd.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    unsigned pdp_cnt, rows;
} timescales[RRD_N_TIMESCALES] = {{1, 120}, {12, 120}, {720, 168}, {17280, 366}};

#define N_RRA (RRD_N_CF * RRD_N_TIMESCALES)

struct rra {
    enum rrd_cf cf;
    unsigned pdp_cnt, rows;
    unsigned head;         /* ring index of the newest row */
    int64_t last_cdp;      /* end time of the newest row; 0: none yet */
    double *ring;          /* rows x n_ds */
    double *acc;           /* n_ds: sum, min or max so far in this CDP */
    uint32_t *acc_n;       /* n_ds: known points in acc */
};

struct rrd {
    unsigned step;
    int64_t last_updated;
    unsigned n_ds;
    char **names;
    struct rra rra[N_RRA];
};

const char *
rrd_cf_name(enum rrd_cf cf)
{
    return cf == RRD_CF_MIN ? "MIN" : cf == RRD_CF_MAX ? "MAX" : "AVERAGE";
}

int
rrd_cf_parse(const char *s)
{
    if (!s)
        return -1;
    for (int cf = 0; cf < RRD_N_CF; cf++)
        if (strcmp(s, rrd_cf_name((enum rrd_cf)cf)) == 0)
            return cf;
    return -1;
}

struct rrd *
rrd_new(unsigned step_s)
{
    if (!step_s)
        return NULL;
    struct rrd *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->step = step_s;
    for (int i = 0; i < N_RRA; i++) {
        r->rra[i].cf = (enum rrd_cf)(i / RRD_N_TIMESCALES);
        r->rra[i].pdp_cnt = timescales[i % RRD_N_TIMESCALES].pdp_cnt;
        r->rra[i].rows = timescales[i % RRD_N_TIMESCALES].rows;
    }
    return r;
}

void
rrd_free(struct rrd *r)
{
    if (!r)
        return;
    for (unsigned i = 0; i < r->n_ds; i++)
        free(r->names[i]);
    free(r->names);
    for (int i = 0; i < N_RRA; i++) {
        free(r->rra[i].ring);
        free(r->rra[i].acc);
        free(r->rra[i].acc_n);
    }
    free(r);
}

unsigned
rrd_n_ds(const struct rrd *r)
{
    return r->n_ds;
}

const char *
rrd_ds_name(const struct rrd *r, unsigned i)
{
    return i < r->n_ds ? r->names[i] : NULL;
}

int64_t
rrd_last_updated(const struct rrd *r)
{
    return r->last_updated;
}

static void
acc_reset(struct rra *a, unsigned n_ds)
{
    for (unsigned d = 0; d < n_ds; d++) {
        a->acc[d] = 0;
        a->acc_n[d] = 0;
    }
}

/* Every ring and accumulator one data source wider (n_ds -> n_ds + 1). */
static int
grow(struct rrd *r)
{
    unsigned old = r->n_ds, wide = old + 1;
    for (int i = 0; i < N_RRA; i++) {
        struct rra *a = &r->rra[i];
        double *ring = malloc(sizeof(double) * a->rows * wide);
        double *acc = realloc(a->acc, sizeof(double) * wide);
        if (acc)
            a->acc = acc;
        uint32_t *acc_n = realloc(a->acc_n, sizeof(uint32_t) * wide);
        if (acc_n)
            a->acc_n = acc_n;
        if (!ring || !acc || !acc_n) {
            free(ring);
            return -ENOMEM;
        }
        for (unsigned row = 0; row < a->rows; row++) {
            for (unsigned d = 0; d < old; d++)
                ring[row * wide + d] = a->ring[row * old + d];
            ring[row * wide + old] = NAN;
        }
        free(a->ring);
        a->ring = ring;
        a->acc[old] = 0;
        a->acc_n[old] = 0;
    }
    return 0;
}

int
rrd_ds_index(struct rrd *r, const char *name)
{
    if (!name || !*name || strlen(name) > 255)
        return -EINVAL;
    for (const char *p = name; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == '<' || *p == '>' || *p == '&' || *p == '"')
            return -EINVAL; /* names go into XML and JSON unescaped, as xapi's do */
    for (unsigned i = 0; i < r->n_ds; i++)
        if (strcmp(r->names[i], name) == 0)
            return (int)i;
    if (r->n_ds >= RRD_MAX_DS)
        return -ENOSPC;
    char *copy = strdup(name);
    char **names = realloc(r->names, sizeof(*names) * (r->n_ds + 1));
    if (names)
        r->names = names;
    if (!copy || !names || grow(r) < 0) {
        free(copy);
        return -ENOMEM;
    }
    r->names[r->n_ds] = copy;
    return (int)r->n_ds++;
}

int
rrd_ds_find(const struct rrd *r, const char *name)
{
    for (unsigned i = 0; i < r->n_ds; i++)
        if (strcmp(r->names[i], name) == 0)
            return (int)i;
    return -ENOENT;
}

int
rrd_ds_remove(struct rrd *r, const char *name)
{
    unsigned k = 0;
    while (k < r->n_ds && strcmp(r->names[k], name) != 0)
        k++;
    if (k == r->n_ds)
        return -ENOENT;
    unsigned old = r->n_ds, narrow = old - 1;
    /* in place: row by row, each row moves left over the removed column */
    for (int i = 0; i < N_RRA; i++) {
        struct rra *a = &r->rra[i];
        for (unsigned row = 0; row < a->rows; row++)
            for (unsigned d = 0; d < narrow; d++)
                a->ring[row * narrow + d] = a->ring[row * old + d + (d >= k)];
        memmove(a->acc + k, a->acc + k + 1, sizeof(*a->acc) * (old - k - 1));
        memmove(a->acc_n + k, a->acc_n + k + 1, sizeof(*a->acc_n) * (old - k - 1));
    }
    free(r->names[k]);
    memmove(r->names + k, r->names + k + 1, sizeof(*r->names) * (old - k - 1));
    r->n_ds = narrow;
    return 0;
}

/* One primary data point at time @t (a multiple of the step). */
static void
push_pdp(struct rrd *r, int64_t t, const double *v, unsigned n)
{
    for (int i = 0; i < N_RRA; i++) {
        struct rra *a = &r->rra[i];
        for (unsigned d = 0; d < r->n_ds; d++) {
            double x = d < n ? v[d] : NAN;
            if (isnan(x))
                continue;
            if (a->acc_n[d] == 0)
                a->acc[d] = x;
            else if (a->cf == RRD_CF_AVERAGE)
                a->acc[d] += x;
            else if (a->cf == RRD_CF_MIN ? x < a->acc[d] : x > a->acc[d])
                a->acc[d] = x;
            a->acc_n[d]++;
        }
        int64_t len = (int64_t)r->step * a->pdp_cnt;
        if (t % len != 0)
            continue; /* the CDP goes on */
        a->head = (a->head + 1) % a->rows;
        double *row = a->ring + (size_t)a->head * r->n_ds;
        for (unsigned d = 0; d < r->n_ds; d++) {
            if (!a->acc_n[d])
                row[d] = NAN;
            else
                row[d] = a->cf == RRD_CF_AVERAGE ? a->acc[d] / a->acc_n[d] : a->acc[d];
        }
        a->last_cdp = t;
        acc_reset(a, r->n_ds);
    }
}

int
rrd_update(struct rrd *r, int64_t t, const double *values, unsigned n)
{
    int64_t pdp = t - t % r->step;
    if (pdp <= r->last_updated)
        return -EAGAIN;
    if (r->last_updated) {
        int64_t missed = (pdp - r->last_updated) / r->step - 1;
        /* A gap longer than the daily CDP leaves every archive's rows stale:
         * skip it rather than loop over it (its rows stay what they were). */
        int64_t max_fill = (int64_t)timescales[RRD_N_TIMESCALES - 1].pdp_cnt;
        if (missed > max_fill) {
            for (int i = 0; i < N_RRA; i++)
                acc_reset(&r->rra[i], r->n_ds);
        } else {
            for (int64_t k = 1; k <= missed; k++)
                push_pdp(r, r->last_updated + k * r->step, NULL, 0);
        }
    }
    push_pdp(r, pdp, values, n);
    r->last_updated = pdp;
    return 0;
}

static const struct rra *
rra_of(const struct rrd *r, enum rrd_cf cf, unsigned scale)
{
    return &r->rra[cf * RRD_N_TIMESCALES + scale];
}

double
rrd_latest(const struct rrd *r, unsigned ds, enum rrd_cf cf)
{
    const struct rra *a = rra_of(r, cf, 0);
    if (ds >= r->n_ds || !a->last_cdp)
        return NAN;
    return a->ring[(size_t)a->head * r->n_ds + ds];
}

/* Value of row time @t in @a (NaN outside what the ring holds). */
static double
rra_at(const struct rrd *r, const struct rra *a, int64_t t, unsigned ds)
{
    int64_t len = (int64_t)r->step * a->pdp_cnt;
    if (!a->last_cdp || t > a->last_cdp || (a->last_cdp - t) % len)
        return NAN;
    int64_t back = (a->last_cdp - t) / len;
    if (back >= a->rows)
        return NAN;
    unsigned idx = (unsigned)((a->head + a->rows - (unsigned)back) % a->rows);
    return a->ring[(size_t)idx * r->n_ds + ds];
}

/* Rrd_utils.f_to_s */
static void
put_number(struct strbuf *out, double v)
{
    if (isnan(v))
        strbuf_puts(out, "NaN");
    else if (isinf(v))
        strbuf_puts(out, v > 0 ? "Infinity" : "-Infinity");
    else if (v == 0)
        strbuf_puts(out, "0.0");
    else
        strbuf_printf(out, "%0.15g", v);
}

int
rrd_updates_export(const struct rrd_source *src, size_t n, int64_t start, int64_t interval,
                   int cf, bool json, struct strbuf *out)
{
    const struct rrd *first = NULL;
    int64_t newest = 0;
    for (size_t i = 0; i < n; i++) {
        if (src[i].rrd->last_updated > newest) {
            newest = src[i].rrd->last_updated;
            first = src[i].rrd;
        }
    }
    if (!first)
        return -ENODATA;
    unsigned step = first->step;
    if (start < 0)
        start += newest;
    /* Rrd.find_best_rras: the finest timescale at least @interval apart
     * whose span still reaches back to @start; else the coarsest. */
    unsigned scale = RRD_N_TIMESCALES - 1;
    for (unsigned s = 0; s < RRD_N_TIMESCALES; s++) {
        int64_t len = (int64_t)step * timescales[s].pdp_cnt;
        int64_t oldest = newest - len * timescales[s].rows;
        if (len >= interval && start > oldest) {
            scale = s;
            break;
        }
    }
    int64_t len = (int64_t)step * timescales[scale].pdp_cnt;
    int64_t end = newest - newest % len;
    int cf_lo = cf >= 0 ? cf : 0, cf_hi = cf >= 0 ? cf : RRD_N_CF - 1;
    size_t columns = 0;
    for (size_t i = 0; i < n; i++)
        if (src[i].rrd->step == step)
            columns += (size_t)(cf_hi - cf_lo + 1) * src[i].rrd->n_ds;
    /* Rows from the newest CDP back to @start, at most the archive's length. */
    size_t rows = 0;
    for (int64_t t = end; t >= start && rows < timescales[scale].rows; t -= len)
        rows++;
    int64_t first_t = end - (int64_t)(rows ? rows - 1 : 0) * len;

    if (json)
        strbuf_printf(out, "{\"meta\":{\"start\":%lld,\"step\":%lld,\"end\":%lld,\"rows\":%zu,"
                      "\"columns\":%zu,\"legend\":[",
                      (long long)first_t, (long long)len, (long long)end, rows, columns);
    else
        strbuf_printf(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<xport><meta><start>%lld"
                      "</start><step>%lld</step><end>%lld</end><rows>%zu</rows><columns>%zu"
                      "</columns><legend>",
                      (long long)first_t, (long long)len, (long long)end, rows, columns);
    bool comma = false;
    for (size_t i = 0; i < n; i++) {
        const struct rrd *r = src[i].rrd;
        if (r->step != step)
            continue;
        for (int c = cf_lo; c <= cf_hi; c++)
            for (unsigned d = 0; d < r->n_ds; d++) {
                if (json)
                    strbuf_printf(out, "%s\"%s:%s%s\"", comma ? "," : "",
                                  rrd_cf_name((enum rrd_cf)c), src[i].prefix, r->names[d]);
                else
                    strbuf_printf(out, "<entry>%s:%s%s</entry>", rrd_cf_name((enum rrd_cf)c),
                                  src[i].prefix, r->names[d]);
                comma = true;
            }
    }
    strbuf_puts(out, json ? "]},\"data\":[" : "</legend></meta><data>");
    int64_t t = end;
    for (size_t row = 0; row < rows; row++, t -= len) {
        if (json)
            strbuf_printf(out, "%s{\"t\":%lld,\"values\":[", row ? "," : "", (long long)t);
        else
            strbuf_printf(out, "<row><t>%lld</t>", (long long)t);
        comma = false;
        for (size_t i = 0; i < n; i++) {
            const struct rrd *r = src[i].rrd;
            if (r->step != step)
                continue;
            for (int c = cf_lo; c <= cf_hi; c++) {
                const struct rra *a = rra_of(r, (enum rrd_cf)c, scale);
                for (unsigned d = 0; d < r->n_ds; d++) {
                    strbuf_puts(out, json ? (comma ? ",\"" : "\"") : "<v>");
                    put_number(out, rra_at(r, a, t, d));
                    strbuf_puts(out, json ? "\"" : "</v>");
                    comma = true;
                }
            }
        }
        strbuf_puts(out, json ? "]}" : "</row>");
    }
    strbuf_puts(out, json ? "]}" : "</data></xport>");
    return strbuf_ok(out) ? 0 : -ENOMEM;
}

int
rrd_dump_xml(const struct rrd *r, struct strbuf *out)
{
    strbuf_printf(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rrd><version>0003</version>"
                  "<step>%u</step><lastupdate>%lld</lastupdate>",
                  r->step, (long long)r->last_updated);
    for (unsigned d = 0; d < r->n_ds; d++) {
        /* Gauges with no bounds; the heartbeat is xapi's default for its
         * data sources (300 s); last_ds is the newest sample. */
        strbuf_printf(out, "<ds><name>%s</name><type>GAUGE</type><minimal_heartbeat>300.0"
                      "</minimal_heartbeat><min>-Infinity</min><max>Infinity</max><last_ds>",
                      r->names[d]);
        put_number(out, rrd_latest(r, d, RRD_CF_AVERAGE));
        strbuf_puts(out, "</last_ds><value>0.0</value><unknown_sec>0</unknown_sec></ds>");
    }
    for (unsigned scale = 0; scale < RRD_N_TIMESCALES; scale++) {
        for (int cf = 0; cf < RRD_N_CF; cf++) {
            const struct rra *a = rra_of(r, (enum rrd_cf)cf, scale);
            strbuf_printf(out, "<rra><cf>%s</cf><pdp_per_row>%u</pdp_per_row><params><xff>0.5"
                          "</xff></params><cdp_prep>",
                          rrd_cf_name((enum rrd_cf)cf), a->pdp_cnt);
            for (unsigned d = 0; d < r->n_ds; d++) {
                double v = a->acc_n[d] == 0 ? NAN
                           : a->cf == RRD_CF_AVERAGE ? a->acc[d] / a->acc_n[d] : a->acc[d];
                strbuf_puts(out, "<ds><primary_value>0.0</primary_value><secondary_value>0.0"
                                 "</secondary_value><value>");
                put_number(out, v);
                strbuf_printf(out, "</value><unknown_datapoints>%u</unknown_datapoints></ds>", 0u);
            }
            strbuf_puts(out, "</cdp_prep><database>");
            for (unsigned row = 0; row < a->rows; row++) {
                /* oldest first: the row after head is the oldest */
                unsigned idx = (a->head + 1 + row) % a->rows;
                strbuf_puts(out, "<row>");
                for (unsigned d = 0; d < r->n_ds; d++) {
                    strbuf_puts(out, "<v>");
                    put_number(out, a->ring[(size_t)idx * r->n_ds + d]);
                    strbuf_puts(out, "</v>");
                }
                strbuf_puts(out, "</row>");
            }
            strbuf_puts(out, "</database></rra>");
        }
    }
    strbuf_puts(out, "</rrd>");
    return strbuf_ok(out) ? 0 : -ENOMEM;
}

/* ------------------------------------------------------------------ persistence */

#define RRD_MAGIC "VESSEL-RRD-1\n"

static void
put_u32(struct strbuf *out, uint32_t v)
{
    strbuf_append(out, (const char *)&v, sizeof(v));
}

static void
put_i64(struct strbuf *out, int64_t v)
{
    strbuf_append(out, (const char *)&v, sizeof(v));
}

int
rrd_save(const struct rrd *r, struct strbuf *out)
{
    strbuf_puts(out, RRD_MAGIC);
    put_u32(out, r->step);
    put_i64(out, r->last_updated);
    put_u32(out, r->n_ds);
    for (unsigned d = 0; d < r->n_ds; d++) {
        uint32_t l = (uint32_t)strlen(r->names[d]);
        put_u32(out, l);
        strbuf_append(out, r->names[d], l);
    }
    for (int i = 0; i < N_RRA; i++) {
        const struct rra *a = &r->rra[i];
        put_u32(out, a->head);
        put_i64(out, a->last_cdp);
        strbuf_append(out, (const char *)a->acc, sizeof(double) * r->n_ds);
        strbuf_append(out, (const char *)a->acc_n, sizeof(uint32_t) * r->n_ds);
        strbuf_append(out, (const char *)a->ring, sizeof(double) * r->n_ds * a->rows);
    }
    return strbuf_ok(out) ? 0 : -ENOMEM;
}

struct reader {
    const char *p;
    size_t left;
};

static bool
take(struct reader *rd, void *dst, size_t n)
{
    if (rd->left < n)
        return false;
    memcpy(dst, rd->p, n);
    rd->p += n;
    rd->left -= n;
    return true;
}

int
rrd_load(const char *data, size_t len, struct rrd **out)
{
    struct reader rd = {data, len};
    char magic[sizeof(RRD_MAGIC) - 1];
    uint32_t step, n_ds;
    int64_t last;
    if (!take(&rd, magic, sizeof(magic)) || memcmp(magic, RRD_MAGIC, sizeof(magic)) != 0 ||
        !take(&rd, &step, 4) || !take(&rd, &last, 8) || !take(&rd, &n_ds, 4) || step == 0 ||
        step > 86400 || n_ds > RRD_MAX_DS || last < 0)
        return -EINVAL;
    struct rrd *r = rrd_new(step);
    if (!r)
        return -ENOMEM;
    int rc = 0;
    for (uint32_t d = 0; d < n_ds && rc == 0; d++) {
        uint32_t l;
        char name[256];
        if (!take(&rd, &l, 4) || l == 0 || l > 255 || !take(&rd, name, l)) {
            rc = -EINVAL;
            break;
        }
        name[l] = '\0';
        int idx = rrd_ds_index(r, name);
        rc = idx < 0 ? (idx == -ENOMEM ? -ENOMEM : -EINVAL) : (unsigned)idx != d ? -EINVAL : 0;
    }
    for (int i = 0; i < N_RRA && rc == 0; i++) {
        struct rra *a = &r->rra[i];
        uint32_t head = 0;
        if (!take(&rd, &head, 4) || head >= a->rows || !take(&rd, &a->last_cdp, 8) ||
            a->last_cdp < 0 || (n_ds && (!take(&rd, a->acc, sizeof(double) * n_ds) ||
                                         !take(&rd, a->acc_n, sizeof(uint32_t) * n_ds) ||
                                         !take(&rd, a->ring, sizeof(double) * n_ds * a->rows))))
            rc = -EINVAL;
        a->head = head;
    }
    if (rc == 0 && rd.left)
        rc = -EINVAL;
    if (rc < 0) {
        rrd_free(r);
        return rc;
    }
    r->last_updated = last;
    *out = r;
    return 0;
}
