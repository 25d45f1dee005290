/* api/transfer_auth.c - who may move bulk data over HTTP, how a refused or
 * failed transfer is answered, and what every transfer route shares (task
 * progress, zero blocks, route registration).
 *
 * Shared by the stream routes (api/vdi_transfer.c, api/vm_export.c,
 * api/vm_import.c): the caller is authenticated by session_id (query or
 * cookie) or HTTP Basic credentials and must hold vm-admin; an error is
 * answered with an HTTP status and "CODE param..." on one line.
 *
 * Facts: xapi's doc/content/xen-api/wire-protocol.md (session_id as query
 * parameter, cookie or Basic auth; task_id).
 */
#include "api/transfer_auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "db/db.h"
#include "http/http.h"
#include "rpc/auth.h"
#include "rpc/ctx.h"
#include "rpc/session.h"
#include "rpc/task.h"
#include "xapi_errors.h"
#include "xapi_model.h"

unsigned
transfer_http_status(const struct xerr *e)
{
    static const struct {
        const char *code;
        unsigned status;
    } map[] = {
        {"SESSION_INVALID", 401},       {"SESSION_AUTHENTICATION_FAILED", 401},
        {"SESSION_AUTHORIZATION_FAILED", 401}, {"RBAC_PERMISSION_DENIED", 403},
        {"HANDLE_INVALID", 404},        {"VDI_MISSING", 404},
        {"INVALID_VALUE", 400},         {"VDI_TOO_SMALL", 400},
        {"IMPORT_ERROR", 400},          {"IMPORT_ERROR_PREMATURE_EOF", 400},
        {"IMPORT_ERROR_UNEXPECTED_FILE", 400}, {"IMPORT_ERROR_SOME_CHECKSUMS_FAILED", 400},
        {"IMPORT_ERROR_FAILED_TO_FIND_OBJECT", 400}, {"UUID_INVALID", 404},
        {"VM_BAD_POWER_STATE", 409},    {"OTHER_OPERATION_IN_PROGRESS", 409},
        {"OPERATION_NOT_ALLOWED", 409}, {"SR_OPERATION_NOT_SUPPORTED", 400},
        {"SR_FULL", 507},          {"VDI_IN_USE", 409},
        {"VDI_READONLY", 409},
    };
    for (size_t i = 0; e && i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(e->code, map[i].code) == 0)
            return map[i].status;
    return 500;
}

/* Answers @req with @err's status; the body is "CODE param..." on one line. */
void
transfer_reply_error(struct http_request *req, const char *task, const struct xerr *err)
{
    char body[1024];
    size_t n = (size_t)snprintf(body, sizeof(body), "%s", err ? err->code : "INTERNAL_ERROR");
    for (size_t i = 0; err && i < err->n_params && n < sizeof(body); i++)
        n += (size_t)snprintf(body + n, sizeof(body) - n, " %s", err->params[i]);
    if (n >= sizeof(body) - 1)
        n = sizeof(body) - 2;
    body[n++] = '\n';
    unsigned status = transfer_http_status(err);
    char task_hdr[160];
    const char *hdrs[2];
    size_t n_hdrs = 0;
    if (task) {
        snprintf(task_hdr, sizeof(task_hdr), "Task-Id: %s", task);
        hdrs[n_hdrs++] = task_hdr;
    }
    if (status == 401)
        hdrs[n_hdrs++] = "WWW-Authenticate: Basic realm=\"xapi\"";
    http_reply_with_headers(req, status, "text/plain", hdrs, n_hdrs, body, n);
}

struct subject_role {
    const char *name;
    int role;
};

static bool
subject_role_visit(void *opaque, const char *ref, const void *rec)
{
    struct subject_role *f = opaque;
    const struct xapi_subject_record *s = rec;
    const char *name = xmap_get_str((const struct xmap *)&s->other_config, "subject-name");
    if (!name || strcmp(name, f->name) != 0)
        return true;
    for (size_t i = 0; i < s->roles.n; i++) {
        int r = session_role_of_ref(s->roles.items[i]);
        if (r > f->role)
            f->role = r;
    }
    return false;
}

/* HTTP Basic credentials, checked as session.login_with_password does (on
 * the unix socket any password is root's). */
static bool
auth_basic(struct server *srv, struct http_request *req, const char *user, const char *pwd,
           bool *superuser, int *role, struct xerr **errp)
{
    bool local = http_request_transport(req) == HTTP_TRANSPORT_UNIX;
    if (!local) {
        enum auth_result ar = auth_check(srv->auth, user, pwd, http_request_peer(req));
        if (ar != AUTH_OK)
            return xerr_session_authentication_failed(
                errp, user, ar == AUTH_THROTTLED ? "Too many failed logins; try later"
                                                 : "Authentication failure");
    }
    *superuser = local || strcmp(user, "root") == 0;
    if (*superuser)
        return true;
    struct subject_role f = {user, -1};
    db_foreach(srv->db, &xapi_class_subject, subject_role_visit, &f);
    if (f.role < 0)
        return xerr_session_authorization_failed(errp, user,
                          "The account has no subject with a role in this pool");
    *role = f.role;
    return true;
}

bool
transfer_authorise(struct server *srv, struct http_request *req, const char *permission,
               struct transfer_caller *who, struct xerr **errp)
{
    const char *session = http_request_query(req, "session_id");
    if (!session)
        session = http_request_cookie(req, "session_id");
    bool superuser = false;
    int role = -1;
    char *user = NULL;
    if (session) {
        struct session_info si = {0};
        if (!session_check(srv, session, &si, errp))
            return false;
        superuser = si.superuser;
        role = (int)si.role;
        user = si.user;
        si.user = NULL;
        session_info_release(&si);
    } else {
        char *pwd = NULL;
        if (!http_request_basic_auth(req, &user, &pwd))
            return xerr_session_invalid(errp, "");
        bool ok = auth_basic(srv, req, user, pwd, &superuser, &role, errp);
        free(pwd);
        if (!ok) {
            free(user);
            return false;
        }
    }
    if (!superuser && role < (int)XR_VM_ADMIN) {
        free(user);
        return xerr_rbac_permission_denied(errp, permission,
                                           "The vm-admin role is needed for this transfer");
    }
    who->user = user;
    who->superuser = superuser;
    who->role = superuser ? XR_POOL_ADMIN : (enum xrole)role;
    http_request_set_authenticated(req); /* a transfer may pause longer than a stranger */
    return true;
}


bool
transfer_task(struct server *srv, struct http_request *req, const struct transfer_caller *who,
              const char *label, char **task, struct xerr **errp)
{
    const char *given = http_request_query(req, "task_id");
    if (!given)
        return task_create(srv, label, "", who->user, true, task, errp);
    if (!task_assert_owner(srv, given, who->user, who->superuser, who->role, errp))
        return false; /* a client reports only into a task it may change */
    return (*task = strdup(given)) != NULL || xerr_nomem(errp);
}

void
transfer_progress(struct server *srv, const char *task, double *last, uint64_t done,
                  uint64_t total)
{
    double p = total ? (double)done / (double)total : 0.0;
    if (p > 0.99)
        p = 0.99; /* 1.0 is the finish's (xapi's ocaml/xapi/taskHelper.ml) */
    if (p - *last >= 0.01) {
        *last = p;
        task_set_progress(srv, task, p);
    }
}

bool
transfer_block_is_zero(const char *p, size_t len)
{
    static const char zeros[4096];
    for (size_t off = 0; off < len; off += sizeof(zeros)) {
        size_t n = len - off < sizeof(zeros) ? len - off : sizeof(zeros);
        if (memcmp(p + off, zeros, n) != 0)
            return false;
    }
    return true;
}

bool
transfer_add_routes(struct server *srv, struct http_server *http, const char *method,
                    const struct transfer_route *routes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc = http_server_add_stream_route(http, method, routes[i].path, routes[i].begin, srv);
        if (rc < 0) {
            log_error("transfer.routes", "path=%s reason=\"cannot add the route: %s\"",
                      routes[i].path, strerror(-rc));
            return false;
        }
    }
    return true;
}

void
transfer_reply_outcome(struct http_request *req, const char *task, const struct xerr *err)
{
    if (err) {
        transfer_reply_error(req, task, err);
        return;
    }
    char hdr[160];
    snprintf(hdr, sizeof(hdr), "Task-Id: %s", task);
    const char *hdrs[] = {hdr};
    http_reply_with_headers(req, 200, "text/plain", hdrs, 1, "", 0);
}
