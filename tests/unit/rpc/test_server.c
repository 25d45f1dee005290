/* tests/unit/rpc/test_server.c - the server half of rpc/: dispatch, sessions,
 * tasks and events, in one process.
 *
 * A store in memory, the bootstrap objects, the worker pool and the events
 * thread, and the HTTP front on a unix socket of a temporary directory: the
 * tests send raw XML-RPC bodies and read the replies, or call the modules'
 * functions directly. No guest backend is opened: the calls made here never
 * reach one.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "api/bootstrap.h"
#include "api/vm_ops.h"
#include "common/workpool.h"
#include "db/db.h"
#include "http/http.h"
#include "model/xmodel.h"
#include "rpc/auth.h"
#include "rpc/dispatch.h"
#include "rpc/events.h"
#include "rpc/session.h"
#include "rpc/task.h"
#include "xapi_errors.h"
#include "xapi_model.h"

struct fx {
    char dir[64];
    char sock[96];
    struct server srv;
    struct http_server *http;
};

static struct fx *F;

static int
setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/vessel-rpc-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->sock, sizeof(f->sock), "%s/xapi.sock", f->dir);
    char why[256], passwd[128];
    snprintf(passwd, sizeof(passwd), "%s/passwd", f->dir);
    struct server *s = &f->srv;
    s->data_dir = f->dir;
    s->session_idle_s = 3600;
    s->task_keep_s = 3600;
    s->clean_shutdown_timeout_s = 120;
    vm_ops_register();
    struct workpool_config wc = {.min_threads = 2, .max_threads = 16, .idle_ms = 1000};
    struct xerr *err = NULL;
    if (xmodel_init() < 0 || db_open(":memory:", &s->db, why, sizeof(why)) < 0 ||
        tasks_new(&s->tasks) < 0 || workpool_start(&wc, &s->workers) < 0 ||
        auth_open(passwd, &s->auth) < 0 || auth_set_password(s->auth, "root", "rootpw") < 0 ||
        auth_set_password(s->auth, "reader", "readerpw") < 0 || !bootstrap_run(s, false, &err) ||
        events_start(s, &s->events) < 0)
        return -1;
    db_set_commit_hook(s->db, events_on_commit, s->events);
    struct http_config hc = {.unix_path = f->sock, .handler = rpc_handle_http, .opaque = s};
    if (http_server_start(&hc, &f->http, why, sizeof(why)) < 0)
        return -1;
    F = f;
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;
    events_stop(f->srv.events);
    http_server_stop(f->http);
    events_free(f->srv.events);
    workpool_stop(f->srv.workers);
    tasks_free(f->srv.tasks);
    auth_close(f->srv.auth);
    db_close(f->srv.db);
    free(f->srv.pool_ref);
    free(f->srv.host_ref);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

/* POSTs @body to / on the unix socket; the reply's status and body (new). */
static char *
post(const char *body, int *status)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", F->sock);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     strlen(body));
    assert_int_equal(write(fd, head, (size_t)n), n);
    assert_int_equal(write(fd, body, strlen(body)), (ssize_t)strlen(body));
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    ssize_t r;
    while ((r = read(fd, buf + len, cap - len - 1)) > 0) {
        len += (size_t)r;
        if (len + 1 == cap)
            buf = realloc(buf, cap *= 2);
    }
    close(fd);
    buf[len] = '\0';
    *status = 0;
    sscanf(buf, "HTTP/1.1 %d", status);
    char *b = strstr(buf, "\r\n\r\n");
    char *out = strdup(b ? b + 4 : "");
    free(buf);
    return out;
}

/* A call's reply body: methodName and string params. */
static char *
call(const char *method, const char *const *params, size_t n, int *status)
{
    char body[8192];
    size_t len = (size_t)snprintf(body, sizeof(body),
                                  "<?xml version=\"1.0\"?><methodCall><methodName>%s"
                                  "</methodName><params>",
                                  method);
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(body + len, sizeof(body) - len,
                                "<param><value><string>%s</string></value></param>", params[i]);
    snprintf(body + len, sizeof(body) - len, "</params></methodCall>");
    return post(body, status);
}

static void
assert_fails_with(const char *reply, const char *code)
{
    if (!strstr(reply, "<value>Failure</value>") || !strstr(reply, code))
        fail_msg("expected %s, got: %.600s", code, reply);
}

/* The session ref a login on the unix socket (the local superuser) returns. */
static char *
login_root(void)
{
    int st;
    const char *p[] = {"root", "anything"};
    char *r = call("session.login_with_password", p, 2, &st);
    assert_int_equal(st, 200);
    char *v = strstr(r, "OpaqueRef:");
    assert_non_null(v);
    char *ref = strndup(v, strcspn(v, "<"));
    free(r);
    return ref;
}

/* ------------------------------------------------------------------ dispatch */

static void
test_dispatch_checks_in_order(void **state)
{
    int st;
    char *r = post("<methodCall><methodName>x</methodName><params>", &st);
    assert_int_equal(st, 500); /* a body that does not parse: HTTP 500, as xapi */
    free(r);
    const char *bad[] = {"OpaqueRef:not-a-session"};
    r = call("VM.get_all", bad, 1, &st);
    assert_int_equal(st, 200);
    assert_fails_with(r, "SESSION_INVALID");
    free(r);
    r = call("VM.no_such_message", NULL, 0, &st);
    assert_fails_with(r, "MESSAGE_METHOD_UNKNOWN");
    free(r);
    char *root = login_root();
    const char *one[] = {root};
    r = call("VM.get_record", one, 1, &st); /* arity before anything else */
    assert_fails_with(r, "MESSAGE_PARAMETER_COUNT_MISMATCH");
    assert_non_null(strstr(r, "<value>1</value>"));
    assert_non_null(strstr(r, "<value>0</value>"));
    free(r);
    r = call("VM.get_all", one, 1, &st);
    assert_non_null(strstr(r, "<value>Success</value>"));
    free(r);
    r = call("system.listMethods", NULL, 0, &st);
    assert_non_null(strstr(r, "VM.get_all_records"));
    free(r);
    free(root);
}

static void
test_dispatch_denies_by_role(void **state)
{
    struct fx *f = *state;
    /* a read-only account's session, made directly */
    struct xapi_subject_record *s = xapi_subject_record_new();
    xmap_put_str((struct xmap *)&s->other_config, "subject-name", "reader");
    xset_add_str((struct xset *)&s->roles, session_role_ref(XR_READ_ONLY));
    char *subj = NULL, *ro = NULL;
    assert_true(db_create(f->srv.db, &xapi_class_subject, NULL, s, &subj, NULL));
    assert_true(session_create(&f->srv, "reader", false, subj, "", &ro, NULL));
    int st;
    char *pool = NULL;
    {
        const char *p[] = {ro};
        char *r = call("pool.get_all", p, 1, &st);
        char *v = strstr(r, "OpaqueRef:");
        assert_non_null(v);
        pool = strndup(v, strcspn(v, "<"));
        free(r);
    }
    const char *p[] = {ro, pool, "renamed"};
    char *r = call("pool.set_name_label", p, 3, &st);
    assert_fails_with(r, "RBAC_PERMISSION_DENIED");
    assert_non_null(strstr(r, "pool.set_name_label"));
    free(r);
    free(pool);
    free(ro);
    free(subj);
}

/* ------------------------------------------------------------------ sessions */

static void
test_sessions(void **state)
{
    struct fx *f = *state;
    struct session_info si = {0};
    struct xerr *err = NULL;
    char *ref = NULL;
    assert_true(session_create(&f->srv, "root", true, NULL, "unit", &ref, NULL));
    assert_true(session_check(&f->srv, ref, &si, NULL));
    assert_true(si.superuser);
    assert_string_equal(si.user, "root");
    session_info_release(&si);
    /* an idle session expires, and the collector removes it */
    int64_t old = time(NULL) - 7200;
    assert_true(db_set_volatile(f->srv.db, &xapi_class_session, ref,
                                xclass_field(&xapi_class_session, "last_active"), &old, NULL));
    assert_false(session_check(&f->srv, ref, &si, &err));
    assert_string_equal(err->code, "SESSION_INVALID");
    xerr_free(err);
    err = NULL;
    assert_true(session_gc(&f->srv) >= 1);
    assert_false(db_exists(f->srv.db, &xapi_class_session, ref));
    free(ref);
    /* a subject's role is read at each check: losing it ends the session's rights */
    struct xapi_subject_record *s = xapi_subject_record_new();
    xset_add_str((struct xset *)&s->roles, session_role_ref(XR_VM_ADMIN));
    char *subj = NULL;
    assert_true(db_create(f->srv.db, &xapi_class_subject, NULL, s, &subj, NULL));
    assert_true(session_create(&f->srv, "alice", false, subj, "", &ref, NULL));
    assert_true(session_check(&f->srv, ref, &si, NULL));
    assert_int_equal(si.role, XR_VM_ADMIN);
    assert_false(si.superuser);
    session_info_release(&si);
    struct xapi_ref_set none = {0};
    assert_true(db_set_field(f->srv.db, &xapi_class_subject, subj,
                             xclass_field(&xapi_class_subject, "roles"), &none, NULL));
    assert_false(session_check(&f->srv, ref, &si, NULL));
    free(ref);
    free(subj);
}

/* ------------------------------------------------------------------ tasks */

static char *
task_status(struct fx *f, const char *ref)
{
    void *rec = NULL;
    assert_true(db_get(f->srv.db, &xapi_class_task, ref, &rec, NULL));
    struct xapi_task_record *t = rec;
    char *s = strdup(xenum_name(&xapi_enum_task_status_type, (int)t->status));
    xrecord_free(&xapi_class_task, rec);
    return s;
}

static void
test_tasks(void **state)
{
    struct fx *f = *state;
    char *t = NULL;
    struct xerr *err = NULL;
    assert_true(task_create(&f->srv, "work", "", "alice", true, &t, NULL));
    /* the owner, and pool-operator and up, may change it; others may not */
    assert_true(task_assert_owner(&f->srv, t, "alice", false, XR_READ_ONLY, NULL));
    assert_true(task_assert_owner(&f->srv, t, "bob", false, XR_POOL_OPERATOR, NULL));
    assert_true(task_assert_owner(&f->srv, t, "bob", true, XR_READ_ONLY, NULL));
    assert_false(task_assert_owner(&f->srv, t, "bob", false, XR_VM_POWER_ADMIN, &err));
    assert_string_equal(err->code, "RBAC_PERMISSION_DENIED");
    assert_string_equal(err->params[0], "task.destroy/any");
    xerr_free(err);
    err = NULL;
    assert_false(task_assert_owner(&f->srv, "OpaqueRef:none", "alice", false, XR_READ_ONLY, &err));
    assert_string_equal(err->code, "HANDLE_INVALID");
    xerr_free(err);
    err = NULL;
    /* cancel is a request the operation polls; a cancelled failure says so */
    assert_false(task_cancel_requested(&f->srv, t));
    task_request_cancel(&f->srv, t);
    assert_true(task_cancel_requested(&f->srv, t));
    xerr_task_cancelled(&err, t);
    task_finish_failure(&f->srv, t, err);
    xerr_free(err);
    err = NULL;
    char *s = task_status(f, t);
    assert_string_equal(s, "cancelled");
    free(s);
    /* the first outcome stays */
    task_finish_success(&f->srv, t, "<value>x</value>");
    s = task_status(f, t);
    assert_string_equal(s, "cancelled");
    free(s);
    char *t2 = NULL;
    assert_true(task_create(&f->srv, "work2", "", "", false, &t2, NULL));
    task_set_progress(&f->srv, t2, 0.5);
    task_finish_success(&f->srv, t2, "<value>done</value>");
    s = task_status(f, t2);
    assert_string_equal(s, "success");
    free(s);
    /* finished tasks go after task_keep_s */
    f->srv.task_keep_s = -1;
    assert_true(task_gc(&f->srv) >= 2);
    f->srv.task_keep_s = 3600;
    assert_false(db_exists(f->srv.db, &xapi_class_task, t));
    free(t);
    free(t2);
}

/* ------------------------------------------------------------------ events */

static void
test_events(void **state)
{
    char tok[48];
    events_format_token(42, tok);
    assert_string_equal(tok, "00000000000000000042,00000000000000000000");
    char *root = login_root();
    int st;
    char body[1024];
    /* a fresh token answers at once, with every object as add: sessions never */
    snprintf(body, sizeof(body),
             "<methodCall><methodName>event.from</methodName><params><param><value>%s</value>"
             "</param><param><value><array><data><value>session</value><value>pool</value>"
             "</data></array></value></param><param><value></value></param><param><value>"
             "<double>0.1</double></value></param></params></methodCall>",
             root);
    char *r = post(body, &st);
    assert_int_equal(st, 200);
    assert_non_null(strstr(r, "<value>pool</value>"));
    assert_null(strstr(r, "<value>session</value>"));
    assert_null(strstr(r, root));
    free(r);
    /* a token that does not parse */
    snprintf(body, sizeof(body),
             "<methodCall><methodName>event.from</methodName><params><param><value>%s</value>"
             "</param><param><value><array><data><value>*</value></data></array></value>"
             "</param><param><value>not-a-token</value></param><param><value><double>0.1"
             "</double></value></param></params></methodCall>",
             root);
    r = post(body, &st);
    assert_fails_with(r, "EVENT_FROM_TOKEN_PARSE_FAILURE");
    free(r);
    /* a subscription that does not parse (legacy registration) */
    struct xerr *err = NULL;
    const char *bad = "OpaqueRef:x";
    struct xset classes = {.items = (char **)&bad, .n = 1};
    assert_false(events_register(F->srv.events, root, &classes, true, &err));
    assert_string_equal(err->code, "EVENT_SUBSCRIPTION_PARSE_FAILURE");
    xerr_free(err);
    free(root);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dispatch_checks_in_order),
        cmocka_unit_test(test_dispatch_denies_by_role),
        cmocka_unit_test(test_sessions),
        cmocka_unit_test(test_tasks),
        cmocka_unit_test(test_events),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
