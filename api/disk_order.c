/* api/disk_order.c - the lock that orders disk servers and a VDI's files,
 * and the stops that end after their call (api/disk_order.h). */
#include "api/disk_order.h"

#include <pthread.h>

static pthread_mutex_t switch_lock = PTHREAD_MUTEX_INITIALIZER;

/* The stops behind, under a lock of their own: the thread that ends one
 * takes no other lock, so a waiter may hold any (the switch lock, the
 * store's) without a deadlock. */
static pthread_mutex_t behind_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t behind_done = PTHREAD_COND_INITIALIZER;
static unsigned behind;

void
disk_servers_lock(void)
{
    pthread_mutex_lock(&switch_lock);
    disk_servers_settle();
}

void
disk_servers_lock_to_stop(void)
{
    pthread_mutex_lock(&switch_lock);
}

void
disk_servers_unlock(void)
{
    pthread_mutex_unlock(&switch_lock);
}

void
disk_servers_settle(void)
{
    pthread_mutex_lock(&behind_lock);
    while (behind)
        pthread_cond_wait(&behind_done, &behind_lock);
    pthread_mutex_unlock(&behind_lock);
}

void
disk_servers_behind_begin(void)
{
    pthread_mutex_lock(&behind_lock);
    behind++;
    pthread_mutex_unlock(&behind_lock);
}

void
disk_servers_behind_end(void)
{
    pthread_mutex_lock(&behind_lock);
    if (--behind == 0)
        pthread_cond_broadcast(&behind_done);
    pthread_mutex_unlock(&behind_lock);
}
