/* common/defer.c - the per-thread scope of deferred jobs (common/defer.h). */
#include "common/defer.h"

#include <stdlib.h>

struct defer_job {
    workpool_job_fn *fn;
    void *opaque;
};

struct defer_list {
    struct workpool *pool;
    struct defer_job *jobs;
    size_t n, cap;
};

static _Thread_local struct defer_list *scope;
static _Thread_local unsigned depth;

void
defer_begin(struct workpool *pool)
{
    if (depth++ > 0)
        return; /* an inner scope adds to the outer */
    scope = calloc(1, sizeof(*scope)); /* NULL: defer_job refuses */
    if (scope)
        scope->pool = pool;
}

struct defer_list *
defer_end(void)
{
    if (depth == 0 || --depth > 0)
        return NULL;
    struct defer_list *l = scope;
    scope = NULL;
    if (l && l->n == 0) {
        free(l);
        l = NULL;
    }
    return l;
}

bool
defer_job(workpool_job_fn *fn, void *opaque)
{
    struct defer_list *l = scope;
    if (!l)
        return false;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 4;
        struct defer_job *more = realloc(l->jobs, cap * sizeof(*more));
        if (!more)
            return false;
        l->jobs = more;
        l->cap = cap;
    }
    l->jobs[l->n++] = (struct defer_job){fn, opaque};
    return true;
}

void
defer_run(void *list)
{
    struct defer_list *l = list;
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++) {
        struct defer_job *j = &l->jobs[i];
        /* a stopping pool runs nothing more: the job runs here */
        if (!l->pool || workpool_submit(l->pool, j->fn, j->fn, j->opaque) < 0)
            j->fn(j->opaque);
    }
    free(l->jobs);
    free(l);
}
