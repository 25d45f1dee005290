/* rpc/task.h - task records for Async calls and long operations (xapi's ocaml/xapi/taskHelper.ml).
 *
 * A task is created pending when an Async call is accepted; the worker that
 * runs the call finishes it in xapi's order (finished, progress 1.0, result or
 * error_info, then status), so a client that waits for status sees the rest.
 * task.cancel records a request the running operation polls through
 * ctx_cancelled(). Finished tasks are destroyed after srv->task_keep_s.
 *
 * A task belongs to the account that made it (its internal `owner` field,
 * never on the wire): only the owner changes, cancels or destroys it, or an
 * account holding xapi's "task.destroy/any" permission (pool-operator and up),
 * as xapi's TaskHelper.assert_op_valid decides.
 */
#ifndef VESSEL_RPC_TASK_H
#define VESSEL_RPC_TASK_H

#include <stdbool.h>

#include "model/xerr.h"
#include "rpc/ctx.h"

struct tasks;

int tasks_new(struct tasks **out);
void tasks_free(struct tasks *t);

/* A new pending task owned by account @owner ("" for the server's own work). */
bool task_create(struct server *srv, const char *label, const char *description,
                 const char *owner, bool cancellable, char **ref_out, struct xerr **errp);
/* May account @user (with @role; @superuser: local root) change task @ref?
 * HANDLE_INVALID [task, ref] when there is no such task, RBAC_PERMISSION_DENIED
 * [task.destroy/any, text] when it is another account's and @role is below
 * pool-operator. */
bool task_assert_owner(struct server *srv, const char *ref, const char *user, bool superuser,
                       enum xrole role, struct xerr **errp);
void task_finish_success(struct server *srv, const char *ref, const char *result_xml);
void task_finish_failure(struct server *srv, const char *ref, const struct xerr *err);
void task_set_progress(struct server *srv, const char *ref, double progress);
/* Marks a cancel request; the operation notices it at its next check. */
void task_request_cancel(struct server *srv, const char *ref);
bool task_cancel_requested(struct server *srv, const char *ref);
/* Drops this host's cancel request of @ref: another host's task, whose work
 * it did for a forwarded call (rpc/dispatch.c), ends there. */
void task_forget_cancel(struct server *srv, const char *ref);
/* Destroys tasks finished more than srv->task_keep_s ago; returns how many. */
unsigned task_gc(struct server *srv);

#endif
