/* api/disk_order.c - disk_servers_lock, moved out of api/disk_servers.c. */
#include "api/disk_order.h"

#include <pthread.h>

static pthread_mutex_t switch_lock = PTHREAD_MUTEX_INITIALIZER;

void
disk_servers_lock(void)
{
    pthread_mutex_lock(&switch_lock);
}

void
disk_servers_unlock(void)
{
    pthread_mutex_unlock(&switch_lock);
}
