/* common/workpool.h - an elastic pool of worker threads running queued jobs.
 *
 * Async XenAPI calls, long synchronous ones and VDI transfers run here, never
 * on the HTTP threads. A job may block for minutes (a clean shutdown waits up
 * to 120 s for a guest), so the pool never lets running jobs delay a new one:
 * a job submitted while no thread is idle gets a new thread at once, up to
 * max_threads. Threads above min_threads exit after idle_ms without work.
 * Only beyond max_threads do jobs queue (FIFO), and the owner hears of it
 * through on_saturated. workpool_stop waits for running jobs and drops
 * (frees, without running) queued ones.
 *
 * Threads: every function but workpool_stop may be called from any thread,
 * including from a job. workpool_stop must not be called from a job.
 */
#ifndef VESSEL_COMMON_WORKPOOL_H
#define VESSEL_COMMON_WORKPOOL_H

#include <stddef.h>

struct workpool;
typedef void workpool_job_fn(void *opaque);

struct workpool_stats {
    unsigned threads;   /* alive now (running a job or idle) */
    unsigned idle;      /* waiting for a job */
    unsigned peak;      /* most threads alive at once since start */
    size_t queued;      /* jobs waiting for a thread */
    unsigned long saturations; /* times a job had to queue at max_threads */
};

/* Called on the submitting thread, outside the pool's lock, the first time a
 * job queues because max_threads are all busy; again only after the queue has
 * drained once. May log; must not call workpool_stop. */
typedef void workpool_saturated_fn(void *opaque, const struct workpool_stats *st);

struct workpool_config {
    unsigned min_threads; /* started at once and kept while idle; >= 1 */
    unsigned max_threads; /* >= min_threads */
    unsigned idle_ms;     /* a thread above min_threads idle this long exits */
    workpool_saturated_fn *on_saturated; /* may be NULL */
    void *opaque;
};

/* 0 and *@out, or -EINVAL (a bad config), -ENOMEM, -EAGAIN (no thread could
 * be started). Free with workpool_stop(). */
int workpool_start(const struct workpool_config *cfg, struct workpool **out);
/* Queues @fn(@opaque); @drop(@opaque) is called instead if the pool stops
 * first. Starts a thread when none is idle and fewer than max_threads run.
 * 0 or -ENOMEM / -ESHUTDOWN. */
int workpool_submit(struct workpool *wp, workpool_job_fn *fn, workpool_job_fn *drop, void *opaque);
void workpool_get_stats(struct workpool *wp, struct workpool_stats *out);
void workpool_stop(struct workpool *wp);

#endif
