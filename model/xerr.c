/* model/xerr.c - building, copying and describing XenAPI errors.
 *
 * The first error set wins (later setters are no-ops), so a failure deep down
 * reaches the client with its own code even when callers add context on the
 * way up. Allocation failure while recording an error must still yield an
 * error: a static INTERNAL_ERROR stands in.
 */
#include "model/xerr.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char oom_code[] = "INTERNAL_ERROR";
static char oom_param[] = "out of memory while reporting an error";
static char *oom_params[] = {oom_param};
static struct xerr oom_error = {oom_code, oom_params, 1, __FILE__, __LINE__};

bool
xerr_set_at(struct xerr **errp, const char *file, int line, const char *code, size_t n,
            const char *const *params)
{
    if (!errp || *errp)
        return false;
    struct xerr *e = calloc(1, sizeof(*e));
    if (!e)
        goto oom;
    e->file = file;
    e->line = line;
    e->code = strdup(code);
    e->params = calloc(n ? n : 1, sizeof(char *));
    if (!e->code || !e->params)
        goto oom;
    for (size_t i = 0; i < n; i++) {
        e->params[i] = strdup(params[i] ? params[i] : "");
        if (!e->params[i])
            goto oom;
        e->n_params = i + 1;
    }
    *errp = e;
    return false;
oom:
    xerr_free(e);
    *errp = &oom_error;
    return false;
}

bool
xerr_internal_at(struct xerr **errp, const char *file, int line, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    const char *p[] = {msg};
    return xerr_set_at(errp, file, line, "INTERNAL_ERROR", 1, p);
}

void
xerr_free(struct xerr *e)
{
    if (!e || e == &oom_error)
        return;
    for (size_t i = 0; i < e->n_params; i++)
        free(e->params[i]);
    free(e->params);
    free(e->code);
    free(e);
}

void
xerr_freep(struct xerr **e)
{
    xerr_free(*e);
    *e = NULL;
}

struct xerr *
xerr_copy(const struct xerr *e)
{
    struct xerr *c = NULL;
    xerr_set_at(&c, e->file, e->line, e->code, e->n_params, (const char *const *)e->params);
    return c;
}

bool
xerr_propagate(struct xerr **errp, struct xerr **src)
{
    if (errp && !*errp)
        *errp = *src;
    else
        xerr_free(*src);
    *src = NULL;
    return false;
}

const char *
xerr_describe(const struct xerr *e, char *buf, size_t len)
{
    size_t off = (size_t)snprintf(buf, len, "%s [", e->code);
    for (size_t i = 0; i < e->n_params && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? ", " : "", e->params[i]);
    if (off < len)
        snprintf(buf + off, len - off, "]");
    return buf;
}
