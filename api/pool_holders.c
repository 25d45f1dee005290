/* api/pool_holders.c - the keys held on leases, as a watch sees them
 * (api/pool_holders.h). A pool has one such key per shared SR: a list. */
#include "api/pool_holders.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct held {
    char *key, *holder;
};

struct pool_holders {
    pthread_mutex_t lock;
    struct held *keys; /* what the last listing and the changes since say */
    size_t n;
    struct held *listing; /* being listed (RESET .. SYNCED) */
    size_t n_listing;
    bool known;
};

static void
held_free(struct held *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].key);
        free(v[i].holder);
    }
    free(v);
}

/* Sets @key's holder in *@v; out of memory, the key is dropped (asked of
 * etcd again: pool_holders_get answers false once known is cleared). */
static bool
held_put(struct held **v, size_t *n, const char *key, const char *holder)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*v)[i].key, key) == 0) {
            char *h = strdup(holder);
            if (!h)
                return false;
            free((*v)[i].holder);
            (*v)[i].holder = h;
            return true;
        }
    struct held *grown = realloc(*v, (*n + 1) * sizeof(**v));
    if (!grown)
        return false;
    *v = grown;
    grown[*n] = (struct held){strdup(key), strdup(holder)};
    if (!grown[*n].key || !grown[*n].holder) {
        free(grown[*n].key);
        free(grown[*n].holder);
        return false;
    }
    (*n)++;
    return true;
}

static void
held_remove(struct held *v, size_t *n, const char *key)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp(v[i].key, key) == 0) {
            free(v[i].key);
            free(v[i].holder);
            v[i] = v[--*n];
            return;
        }
}

struct pool_holders *
pool_holders_new(void)
{
    struct pool_holders *h = calloc(1, sizeof(*h));
    if (h)
        pthread_mutex_init(&h->lock, NULL);
    return h;
}

void
pool_holders_free(struct pool_holders *h)
{
    if (!h)
        return;
    held_free(h->keys, h->n);
    held_free(h->listing, h->n_listing);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

void
pool_holders_on_event(void *opaque, enum etcd_watch_event ev, const char *key,
                      const char *value)
{
    struct pool_holders *h = opaque;
    pthread_mutex_lock(&h->lock);
    switch (ev) {
    case ETCD_WATCH_RESET:
        held_free(h->listing, h->n_listing);
        h->listing = NULL;
        h->n_listing = 0;
        h->known = false;
        break;
    case ETCD_WATCH_PUT:
        if (!(h->known ? held_put(&h->keys, &h->n, key, value)
                       : held_put(&h->listing, &h->n_listing, key, value)))
            h->known = false; /* a change lost: etcd is asked until the next listing */
        break;
    case ETCD_WATCH_DELETE:
        held_remove(h->keys, &h->n, key);
        break;
    case ETCD_WATCH_SYNCED:
        held_free(h->keys, h->n);
        h->keys = h->listing;
        h->n = h->n_listing;
        h->listing = NULL;
        h->n_listing = 0;
        h->known = true;
        break;
    }
    pthread_mutex_unlock(&h->lock);
}

bool
pool_holders_get(struct pool_holders *h, const char *key, char **holder)
{
    *holder = NULL;
    pthread_mutex_lock(&h->lock);
    bool known = h->known;
    for (size_t i = 0; known && i < h->n && !*holder; i++)
        if (strcmp(h->keys[i].key, key) == 0 && !(*holder = strdup(h->keys[i].holder)))
            known = false;
    pthread_mutex_unlock(&h->lock);
    return known;
}
