/* common/workpool.c - the elastic worker pool: a FIFO job queue under one
 * mutex, threads started on demand and retired when idle.
 *
 * Invariants (all under wp->mu):
 *  (1) after workpool_submit returns, queued jobs <= idle or starting threads, or
 *      n_threads == max_threads: no job waits while a thread could be started
 *      for it, so a job's start is never delayed by jobs that block;
 *  (2) a worker counted in n_idle takes the queue's head before waiting again,
 *      so an idle thread never sleeps while a job is queued;
 *  (3) a thread that ends puts its handle on wp->exited before dropping the
 *      lock for the last time; each handle there is joined exactly once (by
 *      the next submit, or by stop), so no thread outlives the pool.
 * The condition variables use CLOCK_MONOTONIC: idle timeouts ignore clock
 * changes.
 */
#include "common/workpool.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

struct job {
    workpool_job_fn *fn;
    workpool_job_fn *drop;
    void *opaque;
    struct job *next;
};

struct worker {
    struct workpool *wp;
    pthread_t tid;
    struct worker *next; /* on wp->exited */
};

struct workpool {
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* a job was queued, or the pool stops */
    pthread_cond_t gone_cv; /* a worker ended (stop waits for all) */
    struct job *head, *tail;
    struct workpool_config cfg;
    struct workpool_stats st;
    struct worker *exited; /* invariant 3 */
    unsigned starting;     /* started, not yet waiting or serving: as good as idle */
    bool stopping;
    bool saturated; /* on_saturated was called and the queue has not drained */
};

static struct timespec
deadline_after(unsigned ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)ms * 1000000u;
    ts.tv_sec += (time_t)(ns / 1000000000u);
    ts.tv_nsec = (long)(ns % 1000000000u);
    return ts;
}

/* Waits for a job (wp->mu held); false when this thread should end. */
static bool
worker_wait(struct workpool *wp)
{
    bool may_retire = wp->st.threads > wp->cfg.min_threads;
    struct timespec until = deadline_after(wp->cfg.idle_ms);
    while (!wp->head && !wp->stopping) {
        wp->st.idle++;
        int rc = may_retire ? pthread_cond_timedwait(&wp->work_cv, &wp->mu, &until)
                            : pthread_cond_wait(&wp->work_cv, &wp->mu);
        wp->st.idle--;
        if (rc == ETIMEDOUT && !wp->head && wp->st.threads > wp->cfg.min_threads)
            return false;
        may_retire = wp->st.threads > wp->cfg.min_threads;
    }
    return !wp->stopping;
}

static void *
worker_main(void *arg)
{
    struct worker *self = arg;
    struct workpool *wp = self->wp;
    pthread_mutex_lock(&wp->mu);
    wp->starting--;
    while (worker_wait(wp)) {
        struct job *j = wp->head;
        wp->head = j->next;
        if (!wp->head) {
            wp->tail = NULL;
            wp->saturated = false;
        }
        wp->st.queued--;
        pthread_mutex_unlock(&wp->mu);
        j->fn(j->opaque);
        free(j);
        pthread_mutex_lock(&wp->mu);
    }
    wp->st.threads--;
    self->next = wp->exited; /* invariant 3 */
    wp->exited = self;
    pthread_cond_broadcast(&wp->gone_cv);
    pthread_mutex_unlock(&wp->mu);
    return NULL;
}

/* Starts one worker (wp->mu held); 0 or -errno. */
static int
worker_spawn(struct workpool *wp)
{
    struct worker *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->wp = wp;
    int rc = pthread_create(&w->tid, NULL, worker_main, w);
    if (rc != 0) {
        free(w);
        return -rc;
    }
    wp->starting++;
    if (++wp->st.threads > wp->st.peak)
        wp->st.peak = wp->st.threads;
    return 0;
}

/* Joins and frees every handle of @list (wp->mu not held). */
static void
workers_join(struct worker *list)
{
    for (struct worker *w = list, *next; w; w = next) {
        next = w->next;
        pthread_join(w->tid, NULL);
        free(w);
    }
}

int
workpool_start(const struct workpool_config *cfg, struct workpool **out)
{
    if (!cfg || cfg->min_threads == 0 || cfg->max_threads < cfg->min_threads)
        return -EINVAL;
    struct workpool *wp = calloc(1, sizeof(*wp));
    if (!wp)
        return -ENOMEM;
    wp->cfg = *cfg;
    pthread_mutex_init(&wp->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&wp->work_cv, &ca);
    pthread_cond_init(&wp->gone_cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_lock(&wp->mu);
    for (unsigned i = 0; i < cfg->min_threads; i++)
        if (worker_spawn(wp) < 0)
            break;
    unsigned started = wp->st.threads;
    pthread_mutex_unlock(&wp->mu);
    if (started == 0) {
        workpool_stop(wp);
        return -EAGAIN;
    }
    *out = wp;
    return 0;
}

int
workpool_submit(struct workpool *wp, workpool_job_fn *fn, workpool_job_fn *drop, void *opaque)
{
    struct job *j = calloc(1, sizeof(*j));
    if (!j)
        return -ENOMEM;
    j->fn = fn;
    j->drop = drop;
    j->opaque = opaque;
    pthread_mutex_lock(&wp->mu);
    if (wp->stopping) {
        pthread_mutex_unlock(&wp->mu);
        free(j);
        return -ESHUTDOWN;
    }
    if (wp->tail)
        wp->tail->next = j;
    else
        wp->head = j;
    wp->tail = j;
    wp->st.queued++;
    /* invariant 1; a failed spawn leaves the job to the threads there are */
    while (wp->st.queued > wp->st.idle + wp->starting && wp->st.threads < wp->cfg.max_threads)
        if (worker_spawn(wp) < 0)
            break;
    bool notify = false;
    struct workpool_stats st = {0};
    if (wp->st.queued > wp->st.idle + wp->starting && !wp->saturated) {
        wp->saturated = notify = true;
        wp->st.saturations++;
        st = wp->st;
    }
    struct worker *exited = wp->exited;
    wp->exited = NULL;
    pthread_cond_signal(&wp->work_cv);
    pthread_mutex_unlock(&wp->mu);
    workers_join(exited);
    if (notify && wp->cfg.on_saturated)
        wp->cfg.on_saturated(wp->cfg.opaque, &st);
    return 0;
}

void
workpool_get_stats(struct workpool *wp, struct workpool_stats *out)
{
    pthread_mutex_lock(&wp->mu);
    *out = wp->st;
    pthread_mutex_unlock(&wp->mu);
}

void
workpool_stop(struct workpool *wp)
{
    if (!wp)
        return;
    pthread_mutex_lock(&wp->mu);
    wp->stopping = true;
    pthread_cond_broadcast(&wp->work_cv);
    while (wp->st.threads > 0)
        pthread_cond_wait(&wp->gone_cv, &wp->mu);
    struct worker *exited = wp->exited;
    wp->exited = NULL;
    pthread_mutex_unlock(&wp->mu);
    workers_join(exited);
    for (struct job *j = wp->head, *next; j; j = next) {
        next = j->next;
        if (j->drop)
            j->drop(j->opaque);
        free(j);
    }
    pthread_mutex_destroy(&wp->mu);
    pthread_cond_destroy(&wp->work_cv);
    pthread_cond_destroy(&wp->gone_cv);
    free(wp);
}
