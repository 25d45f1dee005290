/* common/workpool.h - a fixed pool of worker threads running queued jobs.
 *
 * Async XenAPI calls and background work run here, never on the HTTP threads.
 * Jobs run in submission order on the first free thread. workpool_stop waits
 * for running jobs and drops (frees, without running) queued ones.
 */
#ifndef VESSEL_COMMON_WORKPOOL_H
#define VESSEL_COMMON_WORKPOOL_H

#include <stddef.h>

struct workpool;
typedef void workpool_job_fn(void *opaque);

int workpool_start(unsigned n_threads, struct workpool **out);
/* Queues @fn(@opaque); @drop(@opaque) is called instead if the pool stops
 * first. 0 or -ENOMEM / -ESHUTDOWN. */
int workpool_submit(struct workpool *wp, workpool_job_fn *fn, workpool_job_fn *drop, void *opaque);
void workpool_stop(struct workpool *wp);

#endif
