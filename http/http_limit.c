/* http/http_limit.c - connections per client address.
 *
 * A chained hash table of IPv6 addresses (IPv4 as v4-mapped) with a count
 * each. libmicrohttpd's own MHD_OPTION_PER_IP_CONNECTION_LIMIT cannot make an
 * exception for loopback, where every local client (and a reverse proxy)
 * comes from: with it, one local process could lock all the others out. So
 * the accept policy callback asks http_limit_admit(), and the connection
 * notifications count (acquire at start, release at close; libmicrohttpd
 * pairs them on every path, daemon.c new_connection_process_).
 *
 * Invariant: an entry is in the table while its count is > 0, and freed
 * when the count drops to 0; every live connection that acquired it holds
 * one count, so the pointer it keeps stays valid until its release.
 */
#include "http/http_limit.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define HTTP_LIMIT_BUCKETS 1024u

struct http_limit_entry {
    struct in6_addr addr;
    unsigned count;
    struct http_limit_entry *next;
};

struct http_limit {
    pthread_mutex_t lock;
    unsigned max_per_address;
    struct http_limit_entry *buckets[HTTP_LIMIT_BUCKETS];
};

struct http_limit *
http_limit_new(unsigned max_per_address)
{
    struct http_limit *lim = calloc(1, sizeof(*lim));
    if (!lim)
        return NULL;
    pthread_mutex_init(&lim->lock, NULL);
    lim->max_per_address = max_per_address;
    return lim;
}

void
http_limit_free(struct http_limit *lim)
{
    if (!lim)
        return;
    for (unsigned i = 0; i < HTTP_LIMIT_BUCKETS; i++) {
        while (lim->buckets[i]) { /* defensive: every connection released */
            struct http_limit_entry *e = lim->buckets[i];
            lim->buckets[i] = e->next;
            free(e);
        }
    }
    pthread_mutex_destroy(&lim->lock);
    free(lim);
}

/* @sa as an IPv6 address; false when it is not IP or it is exempt. */
static bool
limited_key(const struct sockaddr *sa, struct in6_addr *key)
{
    if (!sa)
        return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a4 = (const struct sockaddr_in *)sa;
        if (a4->sin_addr.s_addr == htonl(INADDR_LOOPBACK))
            return false;
        memset(key, 0, sizeof(*key));
        key->s6_addr[10] = key->s6_addr[11] = 0xff;
        memcpy(&key->s6_addr[12], &a4->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        *key = ((const struct sockaddr_in6 *)sa)->sin6_addr;
        static const uint8_t mapped_lo[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1};
        return !IN6_IS_ADDR_LOOPBACK(key) && memcmp(key->s6_addr, mapped_lo, 16) != 0;
    }
    return false;
}

static unsigned
key_bucket(const struct in6_addr *key)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (int i = 0; i < 16; i++)
        h = (h ^ key->s6_addr[i]) * 16777619u;
    return h % HTTP_LIMIT_BUCKETS;
}

/* lim->lock held */
static struct http_limit_entry *
entry_find(struct http_limit *lim, const struct in6_addr *key)
{
    for (struct http_limit_entry *e = lim->buckets[key_bucket(key)]; e; e = e->next)
        if (memcmp(&e->addr, key, sizeof(*key)) == 0)
            return e;
    return NULL;
}

bool
http_limit_admit(struct http_limit *lim, const struct sockaddr *sa, socklen_t len)
{
    struct in6_addr key;
    if (lim->max_per_address == 0 || !limited_key(sa, &key))
        return true;
    (void)len;
    pthread_mutex_lock(&lim->lock);
    struct http_limit_entry *e = entry_find(lim, &key);
    bool ok = !e || e->count < lim->max_per_address;
    pthread_mutex_unlock(&lim->lock);
    return ok;
}

struct http_limit_entry *
http_limit_acquire(struct http_limit *lim, const struct sockaddr *sa)
{
    struct in6_addr key;
    if (lim->max_per_address == 0 || !limited_key(sa, &key))
        return NULL;
    pthread_mutex_lock(&lim->lock);
    struct http_limit_entry *e = entry_find(lim, &key);
    if (!e && (e = calloc(1, sizeof(*e)))) {
        unsigned b = key_bucket(&key);
        e->addr = key;
        e->next = lim->buckets[b];
        lim->buckets[b] = e;
    }
    if (e)
        e->count++;
    pthread_mutex_unlock(&lim->lock);
    return e;
}

void
http_limit_release(struct http_limit *lim, struct http_limit_entry *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&lim->lock);
    if (--e->count == 0) {
        for (struct http_limit_entry **p = &lim->buckets[key_bucket(&e->addr)]; *p;
             p = &(*p)->next) {
            if (*p == e) {
                *p = e->next;
                break;
            }
        }
        free(e);
    }
    pthread_mutex_unlock(&lim->lock);
}

unsigned
http_limit_count(struct http_limit *lim, const struct sockaddr *sa)
{
    struct in6_addr key;
    if (!limited_key(sa, &key))
        return 0;
    pthread_mutex_lock(&lim->lock);
    struct http_limit_entry *e = entry_find(lim, &key);
    unsigned n = e ? e->count : 0;
    pthread_mutex_unlock(&lim->lock);
    return n;
}
