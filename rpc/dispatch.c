/* rpc/dispatch.c - parse, check, run and answer one XenAPI call.
 *
 * Order of checks (xapi's doc/content/xen-api/wire-protocol.md), the first failure being the one reported:
 *   1. the body parses (else HTTP 500, as xapi);
 *   2. system.* methods need no session;
 *   3. unknown method: MESSAGE_METHOD_UNKNOWN, after the session check when
 *      the first argument looks like a session;
 *   4. the session (SESSION_INVALID);
 *   5. arity (MESSAGE_PARAMETER_COUNT_MISMATCH [method, expected, received],
 *      both without the session; expected counts parameters without defaults);
 *   6. the role (RBAC_PERMISSION_DENIED);
 *   7. removed / not yet built messages;
 * then the call runs: as a task on the worker pool for Async.*, in
 * rpc/events.c for event.from/next, and otherwise synchronously: here for
 * messages that cannot be Async (quick ones: field reads and writes), on the
 * worker pool with the connection suspended for those that can (they may wait
 * minutes, e.g. a clean shutdown, and must not hold an HTTP thread that
 * serves other connections) and for the few that cannot but are slow all the
 * same (runs_long: whole-class reads, the first event.from, logins).
 *
 * Replies are built in one strbuf: on failure the partly written success is
 * dropped and the failure written in its place.
 */
#include "rpc/dispatch.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "common/workpool.h"
#include "db/db.h"
#include "rpc/audit.h"
#include "rpc/events.h"
#include "rpc/implicit.h"
#include "rpc/peers.h"
#include "rpc/session.h"
#include "rpc/task.h"
#include "wire/xmlrpc.h"
#include "xapi_errors.h"
#include "xapi_model.h"

static void
reply_http_error(struct http_request *req, unsigned status, const char *why)
{
    char body[512];
    int n = snprintf(body, sizeof(body), "<html><body><h1>HTTP %u</h1><p>%s</p></body></html>",
                     status, why);
    http_reply(req, status, "text/html", body, (size_t)n);
}

/* ------------------------------------------------------------------ system.* */

static void
write_method_list(void *opaque, struct wire_writer *w)
{
    (void)opaque;
    wire_begin_array(w);
    wire_string(w, "system.listMethods");
    wire_string(w, "system.isAlive");
    for (size_t i = 0; i < xapi_n_messages; i++)
        wire_string(w, xapi_messages[i].wire_name);
    wire_end_array(w);
}

static void
serve_list_methods(struct rpc_call *call)
{
    if (call->format == WIRE_JSON) {
        rpc_call_reply_success(call, write_method_list, NULL);
        return;
    }
    /* XML-RPC: the bare array, not a Status struct (xapi's doc/content/xen-api/wire-protocol.md). */
    struct strbuf sb = STRBUF_INIT;
    struct wire_writer w;
    wire_writer_init(&w, WIRE_XMLRPC, &sb);
    xmlrpc_begin_bare(&w);
    write_method_list(NULL, &w);
    xmlrpc_end_bare(&w);
    rpc_call_reply_bytes(call, &sb);
}

static void
write_xval(void *opaque, struct wire_writer *w)
{
    const struct xval *v = opaque;
    if (v)
        wire_xval(w, v);
    else
        wire_string(w, "");
}

/* A session is logged by a hash of its ref only: a session ref is a bearer token. */
static void
log_failure(const struct rpc_call *call, const struct xerr *err)
{
    if (log_threshold < LOG_DEBUG)
        return;
    char d[256], sid[14], named[14];
    audit_session_id(call->session_ref, sid);
    /* These errors echo a session ref the client sent: log its hash instead. */
    bool session_param =
        (strcmp(err->code, "SESSION_INVALID") == 0 && err->n_params >= 1) ||
        (strcmp(err->code, "HANDLE_INVALID") == 0 && err->n_params >= 2 &&
         strcmp(err->params[0], "session") == 0);
    if (session_param) {
        audit_session_id(err->params[err->n_params - 1], named);
        snprintf(d, sizeof(d), "%s [%s]", err->code, named);
    } else {
        xerr_describe(err, d, sizeof(d));
    }
    log_debug("rpc.fail", "method=%s session=%s user=%s peer=%s error=\"%s\" at=%s:%d",
              call->method, sid, call->user ? call->user : "", call->ctx.peer, d,
              err->file ? err->file : "", err->line);
}

/* One audit line for a state-changing call (rpc/audit.h): the object acted on
 * is the first argument after the session when it is a ref; a login names the
 * account it tried. */
static void
audit_call(const struct rpc_call *call, const struct xmsg *m, const struct xval *const *args,
           size_t n_args, const char *task, const struct xerr *err)
{
    if (!m || !call->srv->audit || !audit_wants(m))
        return;
    /* The arguments are the run's once collected, the call's before. */
    const struct xval *params = call->params;
    size_t first = m->session ? 1 : 0;
    const struct xval *arg = NULL;
    if (n_args > 0)
        arg = args[0];
    else if (params && params->kind == XVAL_ARRAY && params->arr.n > first)
        arg = params->arr.items[first];
    const char *text = arg && arg->kind == XVAL_STRING ? arg->str.s : NULL;
    struct audit_entry e = {
        .user = call->user,
        .session = call->session_ref,
        .peer = call->ctx.peer,
        .call = call->method,
        .task = task,
        .outcome = err ? err->code : "ok",
    };
    if (!m->session)
        e.user = text; /* session.login_with_password(uname, ...) */
    else if (text && strncmp(text, "OpaqueRef:", 10) == 0)
        e.self = text;
    audit_write(call->srv->audit, &e);
}

/* ------------------------------------------------------------------ running a message */

struct run {
    struct rpc_call *call;
    const struct xmsg *msg;
    struct xval **args; /* n_params, defaults filled in */
    size_t n_args;
    char *task;
    char *forward_host; /* the host that runs it, when not this one */
    uint64_t seen_gen;  /* from a pool peer: the generation its view had */
};

static void
run_free(struct run *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_args; i++)
        xval_free(r->args[i]);
    free(r->args);
    free(r->task);
    free(r->forward_host);
    free(r);
}

static void fail(struct rpc_call *call, const struct xmsg *m, struct run *r, struct xerr *err);

/* xapi's message_forwarding.ml set_forwarding_on_task: the caller's task
 * says where its work runs. */
static bool
mark_forwarded(void *opaque, void *rec, struct xerr **errp)
{
    struct xapi_task_record *t = rec;
    (void)errp;
    t->forwarded = true;
    return xstr_set(&t->forwarded_to, opaque) && xstr_set(&t->resident_on, opaque);
}

/* The call as the caller made it, run by the host that owns what it acts
 * on; an Async call's task travels in the task-id header, so that host
 * reports progress into it (tasks are in the pool's store) and the result
 * or error lands in it here. */
static bool
run_forwarded(struct run *r, struct wire_writer *w, struct xerr **errp)
{
    struct server *srv = r->call->srv;
    if (r->task) {
        db_update(srv->db, &xapi_class_task, r->task, mark_forwarded, r->forward_host, NULL);
        /* a cancel that came before the mark stayed here: the work never starts */
        if (task_cancel_requested(srv, r->task))
            return xerr_task_cancelled(errp, r->task);
    }
    struct xval *v = NULL;
    bool called = peers_call(srv, r->forward_host, r->msg->wire_name, r->msg->session,
                             (const struct xval *const *)r->args, r->n_args, r->task, &v, errp);
    /* the caller's next call, here, must see what the other host changed */
    if (!db_catch_up(srv->db))
        log_warn("rpc.forward_catch_up", "host=%s method=%s: this host's view may lag",
                 r->forward_host, r->msg->wire_name);
    if (!called)
        return false;
    /* through the result's type, as a local run writes it: the peer spoke
     * XML-RPC, the caller may speak JSON-RPC (ints, dates) */
    const struct xtype *t = r->msg->result;
    bool ok = true;
    if (!t) {
        wire_string(w, "");
    } else {
        void *value = calloc(1, t->size);
        ok = value ? xtype_value_decode(t, v, value, "result", errp) : xerr_nomem(errp);
        if (ok)
            xtype_value_encode(t, value, w);
        if (value)
            xtype_value_clear(t, value);
        free(value);
    }
    xval_free(v);
    return ok;
}

/* The "vessel-generation" header of a pool peer's call (rpc/peers.c sends
 * it): the store generation the peer had applied; 0 when absent or not a
 * plain decimal number. */
static uint64_t
peer_generation(struct http_request *req)
{
    const char *v = http_request_header(req, "vessel-generation");
    if (!v || !*v || strlen(v) > 19 || strspn(v, "0123456789") != strlen(v))
        return 0;
    return strtoull(v, NULL, 10);
}

/* Runs the message, writing its result value to @w. */
static bool
run_message(struct run *r, struct wire_writer *w, struct xerr **errp)
{
    struct call_ctx *ctx = &r->call->ctx;
    ctx->msg = r->msg;
    ctx->task = r->task;
    /* A peer forwarded this after its caller saw that peer's view: run on a
     * view at least as new. Else a VM the caller just shut down there reads
     * Running here, where the watch of the store was still catching up
     * after a cut cable, and VM.start_on answers VM_BAD_POWER_STATE. */
    if (r->seen_gen && !db_catch_up_to(ctx->db, r->seen_gen))
        log_warn("rpc.peer_catch_up", "method=%s generation=%" PRIu64 " have=%" PRIu64
                 ": this host's view may lag", r->msg->wire_name, r->seen_gen,
                 db_generation(ctx->db));
    if (r->forward_host)
        return run_forwarded(r, w, errp);
    if (r->msg->kind == XM_EXPLICIT)
        return r->msg->call(ctx, r->args, w, errp);
    return rpc_implicit_call(ctx, r->msg, r->args, w, errp);
}

static void
run_sync(struct run *r)
{
    struct rpc_call *call = r->call;
    struct strbuf sb = STRBUF_INIT;
    struct wire_writer w;
    struct xerr *err = NULL;
    wire_writer_init(&w, call->format, &sb);
    if (call->format == WIRE_JSON)
        jsonrpc_begin_success(&w, call->json_version);
    else
        xmlrpc_begin_success(&w);
    bool ok = run_message(r, &w, &err);
    audit_call(call, r->msg, (const struct xval *const *)r->args, r->n_args, NULL, err);
    if (ok) {
        if (call->format == WIRE_JSON)
            jsonrpc_end_success(&w, call->json_version, call->json_id);
        else
            xmlrpc_end_success(&w);
        /* a session-less message that succeeded is a login: the client
         * proved a password, its next call follows on this connection */
        if (!r->msg->session && call->req)
            http_request_set_authenticated(call->req);
    } else {
        log_failure(call, err);
        strbuf_reset(&sb);
        wire_writer_init(&w, call->format, &sb);
        rpc_call_write_failure(call, &w, err);
        xerr_free(err);
    }
    if (r->task) /* another host's task (task-id): its cancel request was ours only */
        task_forget_cancel(call->srv, r->task);
    r->call = NULL;
    run_free(r);
    rpc_call_reply_bytes(call, &sb);
}

static void
run_sync_job(void *opaque)
{
    run_sync(opaque);
}

static void
drop_sync_job(void *opaque)
{
    struct run *r = opaque;
    struct rpc_call *call = r->call;
    struct xerr *err = NULL;
    xerr_task_cancelled(&err, "OpaqueRef:NULL"); /* a sync call has no task */
    fail(call, r->msg, r, err);
}

/* event.from and event.next (rpc/events.c), which own the reply from here. */
static void
run_special(struct run *r)
{
    struct rpc_call *call = r->call;
    const struct xmsg *m = r->msg;
    struct xval **args = r->args;
    size_t n = r->n_args;
    r->args = NULL;
    r->n_args = 0;
    r->call = NULL;
    run_free(r);
    if (strcmp(m->name, "from") == 0)
        events_from(call->srv->events, call, args);
    else
        events_next(call->srv->events, call);
    for (size_t i = 0; i < n; i++)
        xval_free(args[i]);
    free(args);
}

static void
run_special_job(void *opaque)
{
    run_special(opaque);
}

/* A message without an Async form normally runs on the HTTP thread that
 * read it, which serves other connections too. These have none either but
 * run as jobs: their cost grows with the pool (every object of a class;
 * event.from from the empty token sends every object of the subscribed
 * classes; VM.get_all_records of 5,000 VMs is a 36 MB reply, 0.1-0.2 s), or
 * they hash a password (yescrypt, ~20 ms). The hand-off costs them a
 * fraction of a millisecond (tests/integration/test_big_reads.py). */
static bool
runs_long(const struct run *r)
{
    const struct xmsg *m = r->msg;
    switch (m->kind) {
    case XM_GET_ALL:
    case XM_GET_ALL_WHERE:
    case XM_GET_ALL_RECORDS:
    case XM_GET_ALL_RECORDS_WHERE:
        return true;
    case XM_SPECIAL:
        return strcmp(m->name, "from") == 0 && r->n_args > 1 && r->args[1]->kind == XVAL_STRING &&
               r->args[1]->str.s[0] == '\0';
    default:
        return !m->session ||
               (m->cls == &xapi_class_session && strcmp(m->name, "change_password") == 0);
    }
}

static void
run_async_job(void *opaque)
{
    struct run *r = opaque;
    struct server *srv = r->call->srv;
    struct strbuf sb = STRBUF_INIT;
    struct wire_writer w;
    struct xerr *err = NULL;
    /* task.result is an XML-RPC <value> fragment whatever the caller's codec. */
    wire_writer_init(&w, WIRE_XMLRPC, &sb);
    bool ok = run_message(r, &w, &err);
    audit_call(r->call, r->msg, (const struct xval *const *)r->args, r->n_args, r->task, err);
    if (ok) {
        size_t len;
        char *xml = strbuf_steal(&sb, &len);
        task_finish_success(srv, r->task, xml ? xml : "");
        free(xml);
    } else {
        log_failure(r->call, err);
        task_finish_failure(srv, r->task, err);
        xerr_free(err);
        strbuf_release(&sb);
    }
    rpc_call_free(r->call);
    r->call = NULL;
    run_free(r);
}

static void
drop_async_job(void *opaque)
{
    struct run *r = opaque;
    struct xerr *err = NULL;
    xerr_task_cancelled(&err, r->task);
    task_finish_failure(r->call->srv, r->task, err);
    xerr_free(err);
    rpc_call_free(r->call);
    r->call = NULL;
    run_free(r);
}

static void
write_task_ref(void *opaque, struct wire_writer *w)
{
    wire_string(w, opaque);
}

static void
start_async(struct run *r)
{
    struct rpc_call *call = r->call;
    struct xerr *err = NULL;
    char label[256];
    snprintf(label, sizeof(label), "Async.%s", r->msg->wire_name);
    if (!task_create(call->srv, label, "", call->user, false, &r->task, &err)) {
        r->call = NULL;
        run_free(r);
        rpc_call_reply_error(call, err);
        xerr_free(err);
        return;
    }
    /* The reply (the task ref) goes now; the call object lives on in the job,
     * so the reply must not free it: answer from a copy of what it needs. */
    struct rpc_call *answer = calloc(1, sizeof(*answer));
    if (answer) {
        answer->srv = call->srv;
        answer->req = call->req;
        answer->format = call->format;
        answer->json_version = call->json_version;
        answer->json_id = call->json_id;
        call->json_id = NULL;
        call->req = NULL;
    }
    char *task = strdup(r->task);
    if (!answer || !task || workpool_submit(call->srv->workers, run_async_job, drop_async_job, r) < 0) {
        struct xerr *e = NULL;
        xerr_nomem(&e);
        task_finish_failure(call->srv, r->task, e);
        if (answer)
            rpc_call_reply_error(answer, e);
        else
            http_reply(call->req, 500, "text/html", "", 0);
        xerr_free(e);
        free(task);
        run_free(r);
        rpc_call_free(call);
        return;
    }
    rpc_call_reply_success(answer, write_task_ref, task);
    free(task);
}

/* ------------------------------------------------------------------ checks */

static bool
looks_like_session(const struct xval *v)
{
    return v && v->kind == XVAL_STRING && strncmp(v->str.s, "OpaqueRef:", 10) == 0;
}

static bool
check_session(struct rpc_call *call, const struct xval *arg, struct xerr **errp)
{
    if (!arg || arg->kind != XVAL_STRING)
        return xerr_session_invalid(errp, arg && arg->kind == XVAL_STRING ? arg->str.s : "");
    struct session_info si = {0};
    if (!session_check(call->srv, arg->str.s, &si, errp))
        return false;
    call->session_ref = strdup(arg->str.s);
    call->user = si.user;
    call->originator = si.originator;
    if (!call->session_ref)
        return xerr_nomem(errp);
    call->ctx.session = call->session_ref;
    call->ctx.user = call->user;
    call->ctx.originator = call->originator;
    call->ctx.role = si.role;
    call->ctx.superuser = si.superuser;
    call->ctx.pool_session = si.pool;
    if (call->req) /* its connection may now idle as long as a client's (http/http.h) */
        http_request_set_authenticated(call->req);
    return true;
}

bool
ctx_require_role(const struct call_ctx *ctx, enum xrole needed, const char *permission,
                 struct xerr **errp)
{
    if (ctx->superuser || ctx->role >= needed)
        return true;
    char roles[256] = "";
    size_t off = 0;
    for (int r = XR_POOL_ADMIN; r >= (int)needed && off < sizeof(roles); r--)
        off += (size_t)snprintf(roles + off, sizeof(roles) - off, "%s%s",
                                r == XR_POOL_ADMIN ? "" : ", ", xrole_names[r]);
    char text[400];
    snprintf(text, sizeof(text), "No permission in user session. (Roles with this permission: %s)",
             roles);
    return xerr_rbac_permission_denied(errp, permission, text);
}

static bool
check_role(const struct call_ctx *ctx, const struct xmsg *m, struct xerr **errp)
{
    char perm[200];
    size_t i = 0;
    for (; m->wire_name[i] && i < sizeof(perm) - 1; i++)
        perm[i] = (char)((m->wire_name[i] >= 'A' && m->wire_name[i] <= 'Z')
                             ? m->wire_name[i] - 'A' + 'a'
                             : m->wire_name[i]);
    perm[i] = '\0';
    return ctx_require_role(ctx, m->role, perm, errp);
}

/* Arity, then defaults: the run gets exactly n_params decoded-later values. */
static bool
collect_args(struct run *r, struct xval *params, size_t first, const char *wire_name,
             struct xerr **errp)
{
    const struct xmsg *m = r->msg;
    size_t got = params->arr.n - first;
    if (got < m->n_required || got > m->n_params) {
        char expected[24], received[24];
        snprintf(expected, sizeof(expected), "%zu", m->n_required);
        snprintf(received, sizeof(received), "%zu", got);
        return xerr_message_parameter_count_mismatch(errp, wire_name, expected, received);
    }
    r->args = calloc(m->n_params ? m->n_params : 1, sizeof(*r->args));
    if (!r->args)
        return xerr_nomem(errp);
    for (size_t i = 0; i < m->n_params; i++, r->n_args++) {
        if (i < got) {
            r->args[i] = params->arr.items[first + i];
            params->arr.items[first + i] = NULL;
            continue;
        }
        char why[64];
        const char *d = m->params[i].default_json;
        if (!d || json_parse_xval(d, strlen(d), &r->args[i], why, sizeof(why)) < 0)
            return xerr_internal(errp, "default of %s.%s", wire_name, m->params[i].name);
    }
    return true;
}

static void
fail(struct rpc_call *call, const struct xmsg *m, struct run *r, struct xerr *err)
{
    log_failure(call, err);
    if (r && r->args)
        audit_call(call, m, (const struct xval *const *)r->args, r->n_args, NULL, err);
    else
        audit_call(call, m, NULL, 0, NULL, err);
    if (r) {
        r->call = NULL;
        run_free(r);
    }
    rpc_call_reply_error(call, err);
    xerr_free(err);
}

static void
execute(struct rpc_call *call)
{
    struct xerr *err = NULL;
    const char *name = call->method;
    struct xval *params = call->params;

    if (strcmp(name, "system.listMethods") == 0) {
        serve_list_methods(call);
        return;
    }
    if (strncmp(name, "system.isAlive", 14) == 0) {
        rpc_call_reply_success(call, write_xval, params->arr.n ? params->arr.items[0] : NULL);
        return;
    }
    bool async = strncmp(name, "Async.", 6) == 0;
    const char *bare = async ? name + 6 : name;
    const struct xmsg *m = xmsg_lookup(bare);
    if (!m) {
        if (params->arr.n > 0 && looks_like_session(params->arr.items[0]) &&
            !check_session(call, params->arr.items[0], &err)) {
            fail(call, NULL, NULL, err);
            return;
        }
        xerr_message_method_unknown(&err, name);
        fail(call, NULL, NULL, err);
        return;
    }
    size_t first = 0;
    if (m->session) {
        if (!check_session(call, params->arr.n ? params->arr.items[0] : NULL, &err)) {
            fail(call, m, NULL, err);
            return;
        }
        first = 1;
    }
    struct run *r = calloc(1, sizeof(*r));
    if (!r) {
        xerr_nomem(&err);
        fail(call, m, NULL, err);
        return;
    }
    r->call = call;
    r->msg = m;
    if (!collect_args(r, params, first, m->wire_name, &err) ||
        (m->session && !check_role(&call->ctx, m, &err))) {
        fail(call, m, r, err);
        return;
    }
    if (m->flags & XMF_REMOVED) {
        xerr_message_removed(&err);
        fail(call, m, r, err);
        return;
    }
    if (m->kind == XM_TODO) {
        xerr_not_implemented(&err, m->wire_name);
        fail(call, m, r, err);
        return;
    }
    if (m->forward && !call->ctx.pool_session && call->srv->peers) {
        /* the generated resolver (datamodel "forward") names the host */
        char *host = NULL;
        if (!m->forward(&call->ctx, (struct xval *const *)r->args, &host, &err)) {
            fail(call, m, r, err);
            return;
        }
        if (host && strcmp(host, call->srv->host_ref) != 0)
            r->forward_host = host;
        else
            free(host);
    }
    if (call->ctx.pool_session && call->req)
        r->seen_gen = peer_generation(call->req);
    if (!async && call->ctx.pool_session && call->req) {
        /* forwarded by another host: report into the caller's task there */
        const char *task = http_request_header(call->req, "task-id");
        if (task && db_exists(call->srv->db, &xapi_class_task, task) && !(r->task = strdup(task))) {
            xerr_nomem(&err);
            fail(call, m, r, err);
            return;
        }
    }
    if (async) {
        if (!m->async) {
            char text[300];
            snprintf(text, sizeof(text), "No async mode for this operation (rpc: %s)", name);
            xerr_fault(&err, text);
            fail(call, m, r, err);
            return;
        }
        start_async(r);
        return;
    }
    if (m->kind == XM_SPECIAL) {
        if (runs_long(r) &&
            workpool_submit(call->srv->workers, run_special_job, drop_sync_job, r) == 0)
            return;
        run_special(r);
        return;
    }
    if ((m->async || r->forward_host || runs_long(r) ||
         (r->seen_gen && r->seen_gen > db_generation(call->srv->db))) && /* waits in run_message */
        workpool_submit(call->srv->workers, run_sync_job, drop_sync_job, r) == 0)
        return; /* the job replies (rpc/http.c suspends the connection meanwhile) */
    run_sync(r);
}

/* ------------------------------------------------------------------ HTTP entry */

void
rpc_handle_http(void *opaque, struct http_request *req)
{
    struct server *srv = opaque;
    const char *method = http_request_method(req);
    const char *path = http_request_path(req);
    if (strcmp(method, "POST") != 0) {
        if (strcmp(method, "GET") == 0 && strcmp(path, "/") == 0) {
            static const char page[] =
                "<html><head><title>Vessel</title></head><body><h1>Vessel</h1>"
                "<p>This host serves the XenAPI: XML-RPC on POST /, JSON-RPC on POST /jsonrpc."
                "</p></body></html>";
            http_reply(req, 200, "text/html", page, sizeof(page) - 1);
        } else {
            reply_http_error(req, 404, "not found");
        }
        return;
    }
    size_t len;
    const char *body = http_request_body(req, &len);
    struct rpc_call *call = calloc(1, sizeof(*call));
    if (!call) {
        reply_http_error(req, 500, "out of memory");
        return;
    }
    call->srv = srv;
    call->req = req;
    call->ctx.srv = srv;
    call->ctx.db = srv->db;
    call->ctx.session = "";
    call->ctx.user = "";
    /* A copy: an Async call's job outlives the request it came in on. */
    call->peer = strdup(http_request_peer(req));
    if (!call->peer) {
        free(call);
        reply_http_error(req, 500, "out of memory");
        return;
    }
    call->ctx.peer = call->peer;
    call->ctx.transport = http_request_transport(req);
    char why[256] = "";
    int rc;
    if (strcmp(path, "/jsonrpc") == 0) {
        struct jsonrpc_call jc;
        call->format = WIRE_JSON;
        rc = jsonrpc_parse_call(body, len, &jc, why, sizeof(why));
        if (rc == 0) {
            call->json_version = jc.version;
            call->method = jc.method;
            call->params = jc.params;
            call->json_id = jc.id;
        }
    } else {
        call->format = WIRE_XMLRPC;
        rc = xmlrpc_parse_call(body, len, &call->method, &call->params, why, sizeof(why));
    }
    if (rc < 0) {
        call->req = NULL;
        rpc_call_free(call);
        /* xapi answers a body it cannot parse with HTTP 500 and closes. */
        char text[400];
        snprintf(text, sizeof(text), "cannot parse the request: %s", why[0] ? why : strerror(-rc));
        reply_http_error(req, 500, text);
        return;
    }
    execute(call);
}
