/* common/rrd.h - round-robin databases as xapi keeps them (ocaml/libs/xapi-rrd).
 *
 * One rrd holds data sources (gauges sampled every step seconds) and, for
 * each consolidation function (AVERAGE, MIN, MAX), four archives: 5 s for
 * 10 min, 1 min for 2 h, 1 h for a week, 1 day for a year (xapi's
 * rrd_timescales with a 5 s step). Not thread-safe: the caller locks.
 */
#ifndef VESSEL_COMMON_RRD_H
#define VESSEL_COMMON_RRD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/strbuf.h"

#define RRD_STEP_S 5
#define RRD_MAX_DS 1024
#define RRD_N_CF 3
#define RRD_N_TIMESCALES 4

enum rrd_cf { RRD_CF_AVERAGE, RRD_CF_MIN, RRD_CF_MAX };

struct rrd;

/* A new rrd with no data source, step @step_s (> 0). NULL when out of memory. */
struct rrd *rrd_new(unsigned step_s);
void rrd_free(struct rrd *r);

/* The index of data source @name, adding it (its past is NaN) when missing.
 * -ENOSPC past RRD_MAX_DS, -EINVAL for an empty name or one with a control
 * character, -ENOMEM. */
int rrd_ds_index(struct rrd *r, const char *name);
/* Drops data source @name and every archived value of it (xapi's
 * Rrd.rrd_remove_ds); the others keep theirs. 0, or -ENOENT when missing. */
int rrd_ds_remove(struct rrd *r, const char *name);
/* The index of data source @name, or -ENOENT. */
int rrd_ds_find(const struct rrd *r, const char *name);
unsigned rrd_n_ds(const struct rrd *r);
const char *rrd_ds_name(const struct rrd *r, unsigned i);

/* Records one sample at unix time @t: @values[i] for data source i, NaN for
 * "unknown" (@n may be less than rrd_n_ds(); the rest are NaN). Steps missed
 * since the last update are NaN. A @t in the same step as, or before, the
 * last update is ignored (-EAGAIN). 0 on success. */
int rrd_update(struct rrd *r, int64_t t, const double *values, unsigned n);
/* Time of the last update (aligned to the step), 0 before the first. */
int64_t rrd_last_updated(const struct rrd *r);
/* The newest consolidated value of data source @ds in the finest archive of
 * @cf (NaN when none). */
double rrd_latest(const struct rrd *r, unsigned ds, enum rrd_cf cf);

/* "AVERAGE", "MIN", "MAX"; rrd_cf_parse gives -1 for anything else. */
const char *rrd_cf_name(enum rrd_cf cf);
int rrd_cf_parse(const char *s);

struct rrd_source {
    const char *prefix; /* "host:UUID:" or "vm:UUID:" */
    const struct rrd *rrd;
};

/* xapi's rrd_updates document for @n sources (same step), in rrdtool's
 * "xport" XML or, with @json, xapi's JSON, appended to @out. @start: unix
 * time of the oldest row wanted (negative: seconds before the newest
 * update); @interval: the wanted row spacing in seconds (the finest archive
 * at least that coarse which still covers @start is used); @cf: one
 * function, or -1 for all three. Rows newest first, as xapi writes them.
 * -ENODATA when no source has data yet. */
int rrd_updates_export(const struct rrd_source *src, size_t n, int64_t start, int64_t interval,
                       int cf, bool json, struct strbuf *out);

/* The whole rrd as xapi's RRD XML dump (Rrd.xml_to_output: GET /host_rrd,
 * GET /vm_rrd), appended to @out: version 0003, step, lastupdate, one <ds>
 * per data source, one <rra> per archive with its rows oldest first. */
int rrd_dump_xml(const struct rrd *r, struct strbuf *out);

/* A whole rrd to and from bytes (vesseld's own format, for persistence
 * across restarts). rrd_load checks every size against @len: -EINVAL for
 * anything malformed, -ENOMEM. */
int rrd_save(const struct rrd *r, struct strbuf *out);
int rrd_load(const char *data, size_t len, struct rrd **out);

#endif
