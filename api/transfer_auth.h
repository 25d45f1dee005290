/* api/transfer_auth.h - authorising and answering the bulk-transfer routes.
 * Any HTTP connection thread or worker may call these. */
#ifndef VESSEL_API_TRANSFER_AUTH_H
#define VESSEL_API_TRANSFER_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/http.h"

#include "model/xerr.h"
#include "model/xmsg.h"

struct server;

/* Who is transferring: the account name ("" for none; the caller frees it),
 * whether local root, the effective role. */
struct transfer_caller {
    char *user;
    bool superuser;
    enum xrole role;
};

/* The caller of @req, who must hold vm-admin: RBAC_PERMISSION_DENIED
 * [@permission, text] otherwise, SESSION_INVALID / SESSION_AUTHENTICATION_FAILED
 * / SESSION_AUTHORIZATION_FAILED for bad credentials. Marks the request
 * authenticated on success. */
bool transfer_authorise(struct server *srv, struct http_request *req, const char *permission,
                        struct transfer_caller *who, struct xerr **errp);

/* The task a transfer reports into: the request's task_id, which @who must
 * be allowed to change (HANDLE_INVALID, RBAC_PERMISSION_DENIED), or a new
 * cancellable task labelled @label owned by @who. *@task is new (free()). */
bool transfer_task(struct server *srv, struct http_request *req, const struct transfer_caller *who,
                   const char *label, char **task, struct xerr **errp);

/* The HTTP status that answers @e (500 for codes not listed). */
unsigned transfer_http_status(const struct xerr *e);

/* Answers @req with @err's status; the body is "CODE param..." on one line,
 * with a Task-Id header when @task is given. */
void transfer_reply_error(struct http_request *req, const char *task, const struct xerr *err);

/* Answers @req with @err as above, or 200 with an empty body and the
 * Task-Id header when @err is NULL. */
void transfer_reply_outcome(struct http_request *req, const char *task, const struct xerr *err);

/* Sets @task's progress to @done/@total when it moved by 1% since *@last
 * (kept below 1.0: the finish sets that). */
void transfer_progress(struct server *srv, const char *task, double *last, uint64_t done,
                       uint64_t total);

/* Whether @len bytes at @p are all zero (a block a sparse disk need not hold). */
bool transfer_block_is_zero(const char *p, size_t len);

struct transfer_route {
    const char *path;
    http_stream_begin_fn *begin;
};
/* Adds @n stream routes for @method served with @srv; false after logging. */
bool transfer_add_routes(struct server *srv, struct http_server *http, const char *method,
                         const struct transfer_route *routes, size_t n);

#endif
