/* api/task.c - task.* messages.
 *
 * A client may make its own task (task.create) and drive it with set_*; a
 * task made by an Async call is driven by the server. Changing, cancelling or
 * destroying a task takes being its owner (same account) or pool-operator,
 * which holds xapi's "task.destroy/any" permission (xapi's
 * ocaml/xapi/taskHelper.ml assert_op_valid, run by every task.* write).
 */
#include <stdlib.h>
#include <string.h>

#include "api/domains.h"
#include "db/db.h"
#include "rpc/ctx.h"
#include "rpc/task.h"
#include "xapi_handlers.h"
#include "xapi_errors.h"

bool
api_task_create(struct call_ctx *ctx, const char *label, const char *description, char **result,
                struct xerr **errp)
{
    return task_create(ctx->srv, label, description, ctx->user, false, result, errp);
}

static bool
assert_owner(struct call_ctx *ctx, const char *task, struct xerr **errp)
{
    return task_assert_owner(ctx->srv, task, ctx->user, ctx->superuser, ctx->role, errp);
}

static void
peek_status(void *opaque, const void *rec)
{
    const struct xapi_task_record *t = rec;
    *(int *)opaque = (int)t->status;
}

bool
api_task_destroy(struct call_ctx *ctx, const char *self, struct xerr **errp)
{
    int status = 0;
    if (!assert_owner(ctx, self, errp) ||
        !db_with(ctx->db, &xapi_class_task, self, peek_status, &status, errp))
        return false;
    if (status == XAPI_TASK_STATUS_TYPE_PENDING) {
        /* A running task is removed by the GC once it completes. */
        task_request_cancel(ctx->srv, self);
        return true;
    }
    return db_destroy(ctx->db, &xapi_class_task, self, errp);
}

bool
api_task_cancel(struct call_ctx *ctx, const char *task, struct xerr **errp)
{
    int status = 0;
    if (!assert_owner(ctx, task, errp) ||
        !db_with(ctx->db, &xapi_class_task, task, peek_status, &status, errp))
        return false;
    if (status == XAPI_TASK_STATUS_TYPE_PENDING) {
        task_request_cancel(ctx->srv, task);
        vm_lifecycle_cancel_task(ctx->srv, task); /* a wait for a guest ends now */
    }
    return true;
}

static bool
set_status_cb(void *opaque, void *rec, struct xerr **errp)
{
    struct xapi_task_record *t = rec;
    (void)errp;
    t->status = *(const enum xapi_task_status_type *)opaque;
    return true;
}

bool
api_task_set_status(struct call_ctx *ctx, const char *self, enum xapi_task_status_type value,
                    struct xerr **errp)
{
    return assert_owner(ctx, self, errp) &&
           db_update(ctx->db, &xapi_class_task, self, set_status_cb, &value, errp);
}

static bool
set_progress_cb(void *opaque, void *rec, struct xerr **errp)
{
    struct xapi_task_record *t = rec;
    double p = *(const double *)opaque;
    if (!(p >= 0.0 && p <= 1.0))
        return xerr_invalid_value(errp, "progress", "must be between 0.0 and 1.0");
    t->progress = p;
    return true;
}

bool
api_task_set_progress(struct call_ctx *ctx, const char *self, double value, struct xerr **errp)
{
    return assert_owner(ctx, self, errp) &&
           db_update(ctx->db, &xapi_class_task, self, set_progress_cb, &value, errp);
}

bool
api_task_set_result(struct call_ctx *ctx, const char *self, const char *value, struct xerr **errp)
{
    return assert_owner(ctx, self, errp) &&
           db_set_field(ctx->db, &xapi_class_task, self,
                        xclass_field(&xapi_class_task, "result"), &value, errp);
}

bool
api_task_set_error_info(struct call_ctx *ctx, const char *self,
                        const struct xapi_string_set *value, struct xerr **errp)
{
    return assert_owner(ctx, self, errp) &&
           db_set_field(ctx->db, &xapi_class_task, self,
                        xclass_field(&xapi_class_task, "error_info"), value, errp);
}
