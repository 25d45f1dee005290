/* api/rrd_store.h - the host's and the VMs' round-robin databases (common/rrd.h),
 * sampled every RRD_STEP_S seconds on a thread of their own, persisted in
 * DATA/rrd/, and served over HTTP as xapi serves them:
 *   GET /rrd_updates?session_id=&start=&interval=&cf=&host=true[&json=true][&vm_uuid=]
 *   GET /host_rrd, GET /vm_rrd?uuid= (one rrd whole, xapi's XML dump)
 *   GET /metrics (Prometheus text format; session_id, cookie or Bearer session)
 * Start after the store and the backend are open; stop before they close.
 */
#ifndef VESSEL_API_RRD_STORE_H
#define VESSEL_API_RRD_STORE_H

#include <stdbool.h>

#include "rpc/ctx.h"
#include "http/http.h"

struct rrd_store;

/* Loads DATA/rrd/ (unreadable files are logged and skipped) and starts the
 * sampler. 0 and *@out, or a negative errno. */
int rrd_store_start(struct server *srv, struct rrd_store **out);
/* Stops the sampler, saves every rrd, frees. NULL is fine. */
void rrd_store_stop(struct rrd_store *rs);
/* Takes one sample now (tests and benchmarks; the thread does it every step). */
void rrd_store_sample(struct rrd_store *rs);

/* A data source as host.get_data_sources and VM.get_data_sources list it
 * (xapi's Data_source.t). */
struct rrd_ds_info {
    char name[48];
    const char *description, *units; /* static strings */
    double min, max;
    bool enabled, standard;
};

/* The data sources of the host (@vm_uuid NULL) or of a VM: those its last
 * sample produced and those its archives hold, sorted by name; none for a VM
 * with no rrd. *@out is the caller's to free. 0 or -ENOMEM. */
int rrd_store_data_sources(struct rrd_store *rs, const char *vm_uuid, struct rrd_ds_info **out,
                           size_t *n);
/* The newest 5 s average of recorded data source @name (NaN when unknown
 * yet). -ENOENT: no rrd; -ESRCH: not recorded. */
int rrd_store_query(struct rrd_store *rs, const char *vm_uuid, const char *name, double *value);
/* Starts recording data source @name, which the last sample produced.
 * -ENOENT: no rrd; -ESRCH: no such source. */
int rrd_store_record(struct rrd_store *rs, const char *vm_uuid, const char *name);
/* Drops @name and its archives (nothing when not recorded). */
void rrd_store_forget(struct rrd_store *rs, const char *vm_uuid, const char *name);

/* Answers GET /rrd_updates, /host_rrd, /vm_rrd and /metrics; false for any
 * other request. */
bool rrd_store_http_handle(struct rrd_store *rs, struct http_request *req);

#endif
