/* cli/call.c - xe's calls: typed arguments from descriptors, uuids, errors, tasks.
 *
 * Generic commands call messages that they know only by descriptor
 * (VM.set_name_label, host.add_to_other_config ...): cli_call() encodes typed
 * arguments and decodes the typed result through the same three xclient calls
 * the generated stubs use, so nothing is marshalled by hand. Refs are shown as
 * uuids: each is looked up once (<class>.get_uuid) and cached for the run;
 * records fetched whole seed the cache.
 *
 * Long calls run as Async.<method>; cli_task_wait() polls the task every
 * 200 ms, drawing a bar on a terminal and plain lines otherwise (only for
 * tasks that last over a second, so that scripts see no noise from quick ones).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "client/xclient.h"
#include "wire/xmlrpc.h"
#include "xapi_client.h"
#include "xapi_errors.h"

struct uuid_entry {
    char *ref;
    char *uuid; /* NULL: names nothing */
};

static void
uuid_entry_free(void *p)
{
    struct uuid_entry *e = p;
    free(e->ref);
    free(e->uuid);
    free(e);
}

void
cli_ctx_init(struct cli_ctx *c, struct xclient *xc)
{
    memset(c, 0, sizeof(*c));
    c->xc = xc;
    c->out = stdout;
    c->err = stderr;
    hashmap_init(&c->uuids);
}

void
cli_ctx_release(struct cli_ctx *c)
{
    hashmap_release_with(&c->uuids, uuid_entry_free);
}

bool
cli_call(struct cli_ctx *c, const char *method, size_t n, const struct xtype *const *types,
         const void *const *vals, const struct xtype *rt, void *result, struct xerr **errp)
{
    struct xclient_call call;
    if (c->debug)
        fprintf(c->err, "xe: call %s\n", method);
    xclient_call_begin(c->xc, &call, method, true);
    for (size_t i = 0; i < n; i++)
        xclient_call_arg(&call, types[i], vals[i]);
    return xclient_call_finish(&call, rt, result, errp);
}

static void
cache_put(struct cli_ctx *c, const char *ref, const char *uuid)
{
    struct uuid_entry *e = calloc(1, sizeof(*e));
    if (!e)
        return;
    e->ref = strdup(ref);
    e->uuid = uuid ? strdup(uuid) : NULL;
    if (!e->ref || (uuid && !e->uuid) || hashmap_put(&c->uuids, e->ref, e) < 0) {
        uuid_entry_free(e);
        return;
    }
}

void
cli_cache_uuid(struct cli_ctx *c, const char *ref, const char *uuid)
{
    struct uuid_entry *old = hashmap_remove(&c->uuids, ref);
    if (old)
        uuid_entry_free(old);
    cache_put(c, ref, uuid);
}

/* @ref's field @field (a string) through <@ref_class>.get_<field>, cached
 * under @key; NULL when the call fails (the ref names nothing). */
static const char *
cached_field(struct cli_ctx *c, const char *ref_class, const char *ref, const char *field,
             const char *key)
{
    struct uuid_entry *e = hashmap_get(&c->uuids, key);
    if (e)
        return e->uuid;
    char method[128];
    snprintf(method, sizeof(method), "%s.get_%s", ref_class, field);
    char *value = NULL;
    const struct xtype *t = &xapi_type_string;
    const void *v = &ref;
    struct xerr *err = NULL;
    if (!cli_call(c, method, 1, &t, &v, &xapi_type_string, &value, &err)) {
        xerr_free(err);
        value = NULL;
    }
    cache_put(c, key, value);
    free(value);
    e = hashmap_get(&c->uuids, key);
    return e ? e->uuid : NULL;
}

const char *
cli_ref_uuid(void *opaque, const char *ref_class, const char *ref)
{
    return cached_field(opaque, ref_class, ref, "uuid", ref);
}

const char *
cli_ref_name_label(struct cli_ctx *c, const char *ref_class, const char *ref)
{
    char key[300]; /* names share the uuid cache under their own keys */
    snprintf(key, sizeof(key), "name-label/%s", ref);
    return cached_field(c, ref_class, ref, "name_label", key);
}

bool
cli_uuid_ref(void *opaque, const char *ref_class, const char *uuid, char **ref,
             struct xerr **errp)
{
    struct cli_ctx *c = opaque;
    char method[128];
    snprintf(method, sizeof(method), "%s.get_by_uuid", ref_class);
    const struct xtype *t = &xapi_type_string;
    const void *v = &uuid;
    return cli_call(c, method, 1, &t, &v, &xapi_type_string, ref, errp);
}

/* ------------------------------------------------------------------ errors */

#define XE_USAGE "XE_USAGE" /* ours: a usage error, printed as its one parameter */

bool
cli_err_required(struct xerr **errp, const char *param)
{
    char msg[256];
    snprintf(msg, sizeof(msg), "Required parameter not found: %s", param);
    return xerr_xe_usage(errp, msg);
}

bool
cli_err_syntax(struct xerr **errp, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return xerr_xe_usage(errp, msg);
}

static const struct {
    const char *code;
    const char *text;
} friendly[] = {
    {"HANDLE_INVALID", "You gave an invalid object reference. The object may have recently been "
                       "deleted."},
    {"UUID_INVALID", "The uuid you supplied was invalid."},
    {"SESSION_AUTHENTICATION_FAILED", "The credentials given by the user are incorrect, so "
                                      "access has been denied."},
    {"SESSION_INVALID", "You gave an invalid session reference. It may have been invalidated by "
                        "a server restart, or timed out."},
    {"PERMISSION_DENIED", "You do not have the required permissions to perform this operation."},
    {"RBAC_PERMISSION_DENIED", "You do not have the required permissions to perform this "
                               "operation."},
    {"MESSAGE_METHOD_UNKNOWN", "You tried to call a method that does not exist."},
    {"NOT_IMPLEMENTED", "The function is not implemented."},
    {"VM_BAD_POWER_STATE", "You attempted an operation on a VM that was not in an appropriate "
                           "power state at the time."},
    {"OTHER_OPERATION_IN_PROGRESS", "Another operation involving the object is currently in "
                                    "progress."},
    {"MAP_DUPLICATE_KEY", "You tried to add a key-value pair to a map, but that key is already "
                          "there."},
    {"INVALID_VALUE", "The value given is invalid."},
    {"FIELD_TYPE_ERROR", "The value specified is of the wrong type."},
    {"TASK_CANCELLED", "The request was asynchronously cancelled."},
    {"VM_IS_TEMPLATE", "The operation attempted is not valid for a template VM."},
    {"VM_NO_EMPTY_CD_VBD", "The VM has no empty CD drive (VBD)."},
    {"VBD_NOT_EMPTY", "Operation could not be performed because the drive is not empty."},
    {"VBD_IS_EMPTY", "Operation could not be performed because the drive is empty."},
    {"VBD_NOT_REMOVABLE_MEDIA", "Media could not be ejected because it is not removable."},
    {"SR_HAS_PBD", "The SR is still connected to a host via a PBD. It cannot be destroyed or "
                   "forgotten."},
    {"SR_FULL", "The SR is full. Requested new size exceeds the maximum size."},
    {"VDI_IN_USE", "This operation cannot be performed because this VDI is in use by some other "
                   "operation."},
    {"NETWORK_CONTAINS_VIF", "The network contains active VIFs and cannot be deleted."},
    {"NETWORK_CONTAINS_PIF", "The network contains active PIFs and cannot be deleted."},
    {"HOST_NOT_ENOUGH_FREE_MEMORY", "Not enough host memory is available to perform this "
                                    "operation."},
    {"VM_REQUIRES_SR", "You attempted to run a VM on a host which doesn't have access to an SR "
                       "needed by the VM."},
    {"PROVISION_ONLY_ALLOWED_ON_TEMPLATE", "The provision call can only be invoked on "
                                           "templates, not regular VMs."},
    {"REVERT_ONLY_ALLOWED_ON_SNAPSHOT", "Only snapshots can be reverted."},
    {"VM_IS_SNAPSHOT", "The operation attempted is not valid for a snapshot."},
    {"OPERATION_NOT_ALLOWED", "You attempted an operation that was not allowed."},
    {"VM_SHUTDOWN_TIMEOUT", "VM failed to shutdown before the timeout expired."},
    {"VM_LACKS_FEATURE", "You attempted an operation on a VM which lacks the feature."},
    {"INTERNAL_ERROR", "The server failed to handle your request, due to an internal error."},
};

void
cli_print_error(struct cli_ctx *c, const struct xerr *e)
{
    FILE *f = c ? c->err : stderr;
    if (strcmp(e->code, XE_USAGE) == 0) {
        fprintf(f, "%s\n", e->n_params ? e->params[0] : "usage error");
        return;
    }
    for (size_t i = 0; i < sizeof(friendly) / sizeof(friendly[0]); i++)
        if (strcmp(friendly[i].code, e->code) == 0)
            fprintf(f, "%s\n", friendly[i].text);
    fprintf(f, "Error code: %s\n", e->code);
    fprintf(f, "Error parameters: ");
    for (size_t i = 0; i < e->n_params; i++)
        fprintf(f, "%s%s", i ? ", " : "", e->params[i]);
    fprintf(f, "\n");
}

/* ------------------------------------------------------------------ tasks */

int64_t
cli_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
cli_progress_draw(struct cli_ctx *c, const char *label, double progress, int64_t elapsed_ms,
                  int *last_shown)
{
    int pct = (int)(progress * 100.0 + 0.5);
    if (pct < 0)
        pct = 0;
    if (pct > 100)
        pct = 100;
    if (c->progress_tty) {
        char bar[41];
        int fill = pct * 40 / 100;
        for (int i = 0; i < 40; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[40] = '\0';
        fprintf(c->err, "\r%s [%s] %3d%%", label, bar, pct);
        fflush(c->err);
        *last_shown = pct;
    } else if (elapsed_ms >= 1000 && pct >= *last_shown + 10) {
        fprintf(c->err, "%s: %d%%\n", label, pct);
        *last_shown = pct;
    }
}

/* A failed task's error_info as *errp. */
static bool
task_error(struct cli_ctx *c, const char *task, struct xerr **errp)
{
    struct xapi_string_set info = {0};
    if (!xc_task_get_error_info(c->xc, task, &info, errp))
        return false;
    char **items = info.items;
    if (info.n == 0)
        xerr_internal(errp, "the task failed without saying why");
    else
        xerr_set_at(errp, __FILE__, __LINE__, items[0], info.n - 1,
                    (const char *const *)items + 1);
    xtype_value_clear(&xapi_type_string_set, &info);
    return false;
}

static bool
task_result(struct cli_ctx *c, const char *task, const struct xtype *rt, void *result,
            struct xerr **errp)
{
    char *text = NULL;
    if (!xc_task_get_result(c->xc, task, &text, errp))
        return false;
    struct xval *v = NULL;
    char why[128];
    int rc = xmlrpc_parse_value(text, strlen(text), &v, why, sizeof(why));
    free(text);
    if (rc < 0)
        return xerr_internal(errp, "xe: cannot parse the task's result: %s", why);
    bool ok = xtype_value_decode(rt, v, result, "task result", errp);
    xval_free(v);
    return ok;
}

bool
cli_task_wait(struct cli_ctx *c, const char *task, const char *label, const struct xtype *rt,
              void *result, struct xerr **errp)
{
    int64_t start = cli_mono_ms();
    int last_shown = c->progress_tty ? -1 : 0;
    enum xapi_task_status_type st = XAPI_TASK_STATUS_TYPE_PENDING;
    bool ok = true;
    for (;;) {
        if (!xc_task_get_status(c->xc, task, &st, errp))
            return false;
        if (st != XAPI_TASK_STATUS_TYPE_PENDING && st != XAPI_TASK_STATUS_TYPE_CANCELLING)
            break;
        double progress = 0;
        if (!xc_task_get_progress(c->xc, task, &progress, errp))
            return false;
        cli_progress_draw(c, label, progress, cli_mono_ms() - start, &last_shown);
        usleep(200 * 1000);
    }
    if (c->progress_tty && last_shown >= 0) {
        if (st == XAPI_TASK_STATUS_TYPE_SUCCESS)
            cli_progress_draw(c, label, 1.0, cli_mono_ms() - start, &last_shown);
        fprintf(c->err, "\n");
    }
    if (st == XAPI_TASK_STATUS_TYPE_SUCCESS)
        ok = !rt || task_result(c, task, rt, result, errp);
    else if (st == XAPI_TASK_STATUS_TYPE_CANCELLED)
        ok = xerr_task_cancelled(errp, task);
    else
        ok = task_error(c, task, errp);
    struct xerr *ignored = NULL;
    if (!xc_task_destroy(c->xc, task, &ignored))
        xerr_free(ignored);
    return ok;
}
