/* common/workpool.c - mutex + condition variable job queue (FIFO singly linked). */
#include "common/workpool.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

struct job {
    workpool_job_fn *fn;
    workpool_job_fn *drop;
    void *opaque;
    struct job *next;
};

struct workpool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *head, *tail;
    bool stopping;
    unsigned n_threads;
    pthread_t *threads;
};

static void *
worker_main(void *arg)
{
    struct workpool *wp = arg;
    for (;;) {
        pthread_mutex_lock(&wp->mu);
        while (!wp->head && !wp->stopping)
            pthread_cond_wait(&wp->cv, &wp->mu);
        if (wp->stopping) {
            pthread_mutex_unlock(&wp->mu);
            return NULL;
        }
        struct job *j = wp->head;
        wp->head = j->next;
        if (!wp->head)
            wp->tail = NULL;
        pthread_mutex_unlock(&wp->mu);
        j->fn(j->opaque);
        free(j);
    }
}

int
workpool_start(unsigned n_threads, struct workpool **out)
{
    struct workpool *wp = calloc(1, sizeof(*wp));
    if (!wp)
        return -ENOMEM;
    wp->threads = calloc(n_threads, sizeof(pthread_t));
    if (!wp->threads) {
        free(wp);
        return -ENOMEM;
    }
    pthread_mutex_init(&wp->mu, NULL);
    pthread_cond_init(&wp->cv, NULL);
    for (unsigned i = 0; i < n_threads; i++) {
        if (pthread_create(&wp->threads[i], NULL, worker_main, wp) != 0)
            break;
        wp->n_threads++;
    }
    if (wp->n_threads == 0) {
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
    pthread_cond_signal(&wp->cv);
    pthread_mutex_unlock(&wp->mu);
    return 0;
}

void
workpool_stop(struct workpool *wp)
{
    if (!wp)
        return;
    pthread_mutex_lock(&wp->mu);
    wp->stopping = true;
    pthread_cond_broadcast(&wp->cv);
    pthread_mutex_unlock(&wp->mu);
    for (unsigned i = 0; i < wp->n_threads; i++)
        pthread_join(wp->threads[i], NULL);
    for (struct job *j = wp->head, *next; j; j = next) {
        next = j->next;
        if (j->drop)
            j->drop(j->opaque);
        free(j);
    }
    pthread_mutex_destroy(&wp->mu);
    pthread_cond_destroy(&wp->cv);
    free(wp->threads);
    free(wp);
}
