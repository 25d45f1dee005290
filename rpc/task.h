/* rpc/task.h - task records for Async calls and long operations (xenapi.md 5).
 *
 * A task is created pending when an Async call is accepted; the worker that
 * runs the call finishes it in xapi's order (finished, progress 1.0, result or
 * error_info, then status), so a client that waits for status sees the rest.
 * task.cancel records a request the running operation polls through
 * ctx_cancelled(). Finished tasks are destroyed after srv->task_keep_s.
 */
#ifndef VESSEL_RPC_TASK_H
#define VESSEL_RPC_TASK_H

#include <stdbool.h>

#include "model/xerr.h"
#include "rpc/ctx.h"

struct tasks;

int tasks_new(struct tasks **out);
void tasks_free(struct tasks *t);

bool task_create(struct server *srv, const char *label, const char *description,
                 const char *session, bool cancellable, char **ref_out, struct xerr **errp);
void task_finish_success(struct server *srv, const char *ref, const char *result_xml);
void task_finish_failure(struct server *srv, const char *ref, const struct xerr *err);
void task_set_progress(struct server *srv, const char *ref, double progress);
/* Marks a cancel request; the operation notices it at its next check. */
void task_request_cancel(struct server *srv, const char *ref);
bool task_cancel_requested(struct server *srv, const char *ref);
/* Destroys tasks finished more than srv->task_keep_s ago; returns how many. */
unsigned task_gc(struct server *srv);

#endif
