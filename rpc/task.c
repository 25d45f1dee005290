/* rpc/task.c - task records: creation, completion in xapi's order, cancel
 * requests, garbage collection (xapi's ocaml/xapi/taskHelper.ml).
 *
 * Completion writes finished, progress, result/error_info and status in one
 * commit, status included: a watcher can never see status done with the
 * result still missing. Cancel requests are kept in memory (a running
 * operation polls them) and shown in the task's current_operations.
 */
#include "rpc/task.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/hashmap.h"
#include "db/db.h"
#include "xapi_errors.h"
#include "xapi_model.h"

struct tasks {
    pthread_mutex_t mu;
    struct hashmap cancel; /* task ref -> (void *)1; keys owned here */
};

int
tasks_new(struct tasks **out)
{
    struct tasks *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    pthread_mutex_init(&t->mu, NULL);
    hashmap_init(&t->cancel);
    *out = t;
    return 0;
}

void
tasks_free(struct tasks *t)
{
    if (!t)
        return;
    hashmap_release_with(&t->cancel, free); /* key == value, strdup'd */
    pthread_mutex_destroy(&t->mu);
    free(t);
}

bool
task_create(struct server *srv, const char *label, const char *description, const char *owner,
            bool cancellable, char **ref_out, struct xerr **errp)
{
    struct xapi_task_record *t = xapi_task_record_new();
    if (!t)
        return xerr_nomem(errp);
    char *l = strdup(label), *d = strdup(description), *h = strdup(srv->host_ref),
         *o = strdup(owner ? owner : "");
    if (!l || !d || !h || !o) {
        free(l);
        free(d);
        free(h);
        free(o);
        xapi_task_record_free(t);
        return xerr_nomem(errp);
    }
    free(t->owner);
    t->owner = o;
    free(t->name_label);
    t->name_label = l;
    free(t->name_description);
    t->name_description = d;
    free(t->resident_on);
    t->resident_on = h;
    t->created = time(NULL);
    t->finished = 0;
    t->status = XAPI_TASK_STATUS_TYPE_PENDING;
    t->progress = 0.0;
    if (cancellable) {
        enum xapi_task_allowed_operations *ops = malloc(sizeof(*ops));
        if (ops) {
            ops[0] = XAPI_TASK_ALLOWED_OPERATIONS_CANCEL;
            t->allowed_operations.items = ops;
            t->allowed_operations.n = 1;
        }
    }
    return db_create(srv->db, &xapi_class_task, NULL, t, ref_out, errp);
}

static void
peek_owner(void *opaque, const void *rec)
{
    const struct xapi_task_record *t = rec;
    *(char **)opaque = strdup(t->owner);
}

bool
task_assert_owner(struct server *srv, const char *ref, const char *user, bool superuser,
                  enum xrole role, struct xerr **errp)
{
    char *owner = NULL;
    if (!db_with(srv->db, &xapi_class_task, ref, peek_owner, &owner, errp))
        return false;
    bool own = owner && *owner && user && strcmp(owner, user) == 0;
    free(owner);
    if (own || superuser || role >= XR_POOL_OPERATOR)
        return true;
    return xerr_rbac_permission_denied(errp, "task.destroy/any",
                                       "Only the task's owner or a pool-operator may change it");
}

struct finish {
    const char *result;
    const struct xerr *err;
    enum xapi_task_status_type status;
};

static bool
apply_finish(void *opaque, void *rec, struct xerr **errp)
{
    const struct finish *f = opaque;
    struct xapi_task_record *t = rec;
    if (t->status != XAPI_TASK_STATUS_TYPE_PENDING && t->status != XAPI_TASK_STATUS_TYPE_CANCELLING)
        return true; /* finishing twice keeps the first outcome */
    t->finished = time(NULL);
    t->progress = 1.0;
    xtype_value_clear(&xapi_type_task_allowed_operations_set, &t->allowed_operations);
    if (f->result) {
        char *r = strdup(f->result);
        if (!r)
            return xerr_nomem(errp);
        free(t->result);
        t->result = r;
    }
    if (f->err) {
        struct xapi_string_set info = {0};
        info.items = calloc(f->err->n_params + 1, sizeof(char *));
        if (!info.items)
            return xerr_nomem(errp);
        info.items[info.n++] = strdup(f->err->code);
        for (size_t i = 0; i < f->err->n_params; i++)
            info.items[info.n++] = strdup(f->err->params[i]);
        for (size_t i = 0; i < info.n; i++)
            if (!info.items[i]) {
                xtype_value_clear(&xapi_type_string_set, &info);
                return xerr_nomem(errp);
            }
        xtype_value_clear(&xapi_type_string_set, &t->error_info);
        t->error_info = info;
    }
    t->status = f->status;
    return true;
}

static void
forget_cancel(struct server *srv, const char *ref)
{
    pthread_mutex_lock(&srv->tasks->mu);
    void *v = hashmap_get(&srv->tasks->cancel, ref);
    if (v) {
        hashmap_remove(&srv->tasks->cancel, ref);
        free(v);
    }
    pthread_mutex_unlock(&srv->tasks->mu);
}

void
task_finish_success(struct server *srv, const char *ref, const char *result_xml)
{
    struct finish f = {result_xml, NULL, XAPI_TASK_STATUS_TYPE_SUCCESS};
    db_update(srv->db, &xapi_class_task, ref, apply_finish, &f, NULL);
    forget_cancel(srv, ref);
}

void
task_finish_failure(struct server *srv, const char *ref, const struct xerr *err)
{
    struct finish f = {NULL, err, XAPI_TASK_STATUS_TYPE_FAILURE};
    if (strcmp(err->code, "TASK_CANCELLED") == 0) {
        /* error_info is [TASK_CANCELLED, task] whatever the operation said */
        struct xerr *c = NULL;
        xerr_task_cancelled(&c, ref);
        f.err = c;
        f.status = XAPI_TASK_STATUS_TYPE_CANCELLED;
        db_update(srv->db, &xapi_class_task, ref, apply_finish, &f, NULL);
        xerr_free(c);
    } else {
        db_update(srv->db, &xapi_class_task, ref, apply_finish, &f, NULL);
    }
    forget_cancel(srv, ref);
}

static bool
apply_progress(void *opaque, void *rec, struct xerr **errp)
{
    struct xapi_task_record *t = rec;
    (void)errp;
    if (t->status == XAPI_TASK_STATUS_TYPE_PENDING)
        t->progress = *(const double *)opaque;
    return true;
}

void
task_set_progress(struct server *srv, const char *ref, double progress)
{
    db_update(srv->db, &xapi_class_task, ref, apply_progress, &progress, NULL);
}

static bool
apply_cancel_request(void *opaque, void *rec, struct xerr **errp)
{
    struct xapi_task_record *t = rec;
    const char *session = opaque;
    (void)errp;
    enum xapi_task_allowed_operations op = XAPI_TASK_ALLOWED_OPERATIONS_CANCEL;
    const char *key = session;
    for (size_t i = 0; i < t->current_operations.n; i++)
        if (strcmp(t->current_operations.keys[i], key) == 0)
            return true;
    char **keys = realloc(t->current_operations.keys, (t->current_operations.n + 1) * sizeof(char *));
    if (!keys)
        return false;
    t->current_operations.keys = keys;
    enum xapi_task_allowed_operations *vals = realloc(
        t->current_operations.values, (t->current_operations.n + 1) * sizeof(*vals));
    if (!vals)
        return false;
    t->current_operations.values = vals;
    if (!(keys[t->current_operations.n] = strdup(key)))
        return false;
    vals[t->current_operations.n++] = op;
    return true;
}

void
task_request_cancel(struct server *srv, const char *ref)
{
    char *key = strdup(ref);
    if (!key)
        return;
    pthread_mutex_lock(&srv->tasks->mu);
    if (hashmap_get(&srv->tasks->cancel, ref) || hashmap_put(&srv->tasks->cancel, key, key) < 0)
        free(key);
    pthread_mutex_unlock(&srv->tasks->mu);
    db_update(srv->db, &xapi_class_task, ref, apply_cancel_request, (void *)"cancel", NULL);
}

void
task_forget_cancel(struct server *srv, const char *ref)
{
    forget_cancel(srv, ref);
}

bool
task_cancel_requested(struct server *srv, const char *ref)
{
    if (!ref)
        return false;
    pthread_mutex_lock(&srv->tasks->mu);
    bool yes = hashmap_get(&srv->tasks->cancel, ref) != NULL;
    pthread_mutex_unlock(&srv->tasks->mu);
    return yes;
}

bool
ctx_cancelled(const struct call_ctx *ctx)
{
    return task_cancel_requested(ctx->srv, ctx->task);
}

void
ctx_progress(const struct call_ctx *ctx, double progress)
{
    if (ctx->task)
        task_set_progress(ctx->srv, ctx->task, progress);
}

struct old_tasks {
    char **refs;
    size_t n;
    time_t cutoff;
};

static bool
collect_old(void *opaque, const char *ref, const void *rec)
{
    struct old_tasks *o = opaque;
    const struct xapi_task_record *t = rec;
    bool done = t->status != XAPI_TASK_STATUS_TYPE_PENDING &&
                t->status != XAPI_TASK_STATUS_TYPE_CANCELLING;
    if (!done || t->finished >= o->cutoff)
        return true;
    char **grown = realloc(o->refs, (o->n + 1) * sizeof(char *));
    if (!grown)
        return false;
    o->refs = grown;
    if ((o->refs[o->n] = strdup(ref)))
        o->n++;
    return true;
}

unsigned
task_gc(struct server *srv)
{
    struct old_tasks o = {NULL, 0, time(NULL) - srv->task_keep_s};
    db_foreach(srv->db, &xapi_class_task, collect_old, &o);
    unsigned n = 0;
    for (size_t i = 0; i < o.n; i++) {
        if (db_destroy(srv->db, &xapi_class_task, o.refs[i], NULL))
            n++;
        free(o.refs[i]);
    }
    free(o.refs);
    return n;
}
