/* common/defer.h - work a call leaves for after its reply.
 *
 * Clean-up the caller need not wait for (a dead domain's taps) competes, on a
 * host of few CPUs, with what the caller does wait for: the call's last
 * records and its reply. A thread that answers calls opens a scope around
 * each (defer_begin, defer_end); code in between hands such work to
 * defer_job, and the scope's owner runs it with defer_run once the reply is
 * out (rpc/dispatch.c: when the HTTP request ends, http_request_on_end).
 * Outside a scope defer_job refuses, and the caller runs the work itself.
 *
 * Threads: a scope is its thread's own; defer_run may be called on any
 * thread. Scopes nest: an inner one adds to the outer.
 */
#ifndef VESSEL_COMMON_DEFER_H
#define VESSEL_COMMON_DEFER_H

#include <stdbool.h>

#include "common/workpool.h"

struct defer_list;

/* Opens this thread's scope; deferred jobs will go to @pool (NULL: run on
 * the thread that calls defer_run). */
void defer_begin(struct workpool *pool);
/* Closes it: what was deferred, for defer_run, or NULL when nothing was
 * (or an outer scope goes on, which keeps it). */
struct defer_list *defer_end(void);
/* Leaves @fn(@opaque) to the current scope: false when this thread has none
 * (or no memory for it), and the caller runs it now. */
bool defer_job(workpool_job_fn *fn, void *opaque);
/* Submits each job of @list (a struct defer_list *, or NULL) to its pool,
 * running it here when the pool refuses it, and frees the list. Cheap
 * enough for an HTTP thread. */
void defer_run(void *list);

#endif
