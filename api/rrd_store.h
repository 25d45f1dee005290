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

/* Answers GET /rrd_updates, /host_rrd, /vm_rrd and /metrics; false for any
 * other request. */
bool rrd_store_http_handle(struct rrd_store *rs, struct http_request *req);

#endif
