/* rpc/login_throttle.c - backoff per (address, account), with bounded tables.
 *
 * Each table is a hash map over a list kept in order of last use, so expiry
 * and eviction take the list's head: every operation is O(1) whatever an
 * attacker sprays. Keys: "u:<address>\n<account>" for a pair, "p:<address>" for
 * an address; a trusted pair uses the pair's key in its own table.
 */
#include "rpc/login_throttle.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hashmap.h"

struct entry {
    char *key;
    unsigned failures;
    time_t last;  /* last failure, or last success for a trusted pair */
    time_t until; /* refused unchecked before this */
    struct entry *prev, *next;
};

struct lru_table {
    struct hashmap map;
    struct entry *head, *tail; /* head: least recently used */
    size_t cap;
};

struct login_throttle {
    struct lru_table failures;
    struct lru_table trusted;
};

static void
list_unlink(struct lru_table *t, struct entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        t->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        t->tail = e->prev;
    e->prev = e->next = NULL;
}

static void
list_append(struct lru_table *t, struct entry *e)
{
    e->prev = t->tail;
    e->next = NULL;
    if (t->tail)
        t->tail->next = e;
    else
        t->head = e;
    t->tail = e;
}

static void
entry_drop(struct lru_table *t, struct entry *e)
{
    hashmap_remove(&t->map, e->key);
    list_unlink(t, e);
    free(e->key);
    free(e);
}

/* Drops entries last used @max_age seconds ago or earlier. */
static void
table_expire(struct lru_table *t, time_t now, time_t max_age)
{
    while (t->head && now - t->head->last >= max_age)
        entry_drop(t, t->head);
}

static struct entry *
table_get(struct lru_table *t, const char *key)
{
    return hashmap_get(&t->map, key);
}

/* The entry for @key, made if missing (evicting the least recently used one
 * beyond the capacity) and moved to the list's tail. NULL when out of memory. */
static struct entry *
table_touch(struct lru_table *t, const char *key, time_t now)
{
    struct entry *e = table_get(t, key);
    if (e) {
        list_unlink(t, e);
    } else {
        if (t->map.n >= t->cap && t->head)
            entry_drop(t, t->head);
        e = calloc(1, sizeof(*e));
        if (!e || !(e->key = strdup(key)) || hashmap_put(&t->map, e->key, e) < 0) {
            if (e)
                free(e->key);
            free(e);
            return NULL;
        }
    }
    e->last = now;
    list_append(t, e);
    return e;
}

static void
table_release(struct lru_table *t)
{
    while (t->head)
        entry_drop(t, t->head);
    hashmap_release(&t->map);
}

struct login_throttle *
login_throttle_new(size_t max_failures, size_t max_trusted)
{
    struct login_throttle *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    hashmap_init(&t->failures.map);
    hashmap_init(&t->trusted.map);
    t->failures.cap = max_failures ? max_failures : 1;
    t->trusted.cap = max_trusted ? max_trusted : 1;
    return t;
}

void
login_throttle_free(struct login_throttle *t)
{
    if (!t)
        return;
    table_release(&t->failures);
    table_release(&t->trusted);
    free(t);
}

size_t
login_throttle_size(const struct login_throttle *t, bool trusted)
{
    return trusted ? t->trusted.map.n : t->failures.map.n;
}

/* An IPv6 address counts by its /64; anything else as it is. */
static void
address_key(const char *peer, char *out, size_t len)
{
    struct in6_addr a6;
    if (strchr(peer, ':') && inet_pton(AF_INET6, peer, &a6) == 1 &&
        !IN6_IS_ADDR_V4MAPPED(&a6)) {
        memset(a6.s6_addr + 8, 0, 8);
        char text[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &a6, text, sizeof(text));
        snprintf(out, len, "%s/64", text);
        return;
    }
    snprintf(out, len, "%s", peer);
}

/* Keys are cut at a fixed length: a longer user name shares its entry with
 * others of the same prefix, which only makes throttling stricter. */
#define KEY_MAX 320

static void
pair_key(const char *peer, const char *user, char out[KEY_MAX])
{
    char addr[INET6_ADDRSTRLEN + 8];
    address_key(peer, addr, sizeof(addr));
    snprintf(out, KEY_MAX, "u:%s\n%s", addr, user);
}

static void
peer_key(const char *peer, char out[KEY_MAX])
{
    char addr[INET6_ADDRSTRLEN + 8];
    address_key(peer, addr, sizeof(addr));
    snprintf(out, KEY_MAX, "p:%s", addr);
}

static void
expire(struct login_throttle *t, time_t now)
{
    table_expire(&t->failures, now, THROTTLE_FORGET_S);
    table_expire(&t->trusted, now, THROTTLE_TRUST_S);
}

static bool
blocked(const struct entry *e, time_t now)
{
    return e && now < e->until;
}

bool
login_throttle_admit(struct login_throttle *t, const char *peer, const char *user, time_t now)
{
    char pk[KEY_MAX], ak[KEY_MAX];
    pair_key(peer, user, pk);
    peer_key(peer, ak);
    expire(t, now);
    struct entry *pair = table_get(&t->failures, pk);
    if (!blocked(pair, now) && !blocked(table_get(&t->failures, ak), now))
        return true;
    return table_get(&t->trusted, pk) &&
           (!pair || pair->failures < THROTTLE_TRUSTED_MAX_FAILURES);
}

static void
count_failure(struct lru_table *t, const char *key, unsigned free_failures, time_t now)
{
    struct entry *e = table_touch(t, key, now);
    if (!e)
        return;
    e->failures++;
    if (e->failures < free_failures)
        return;
    unsigned shift = e->failures - free_failures;
    time_t backoff = shift >= 7 ? THROTTLE_MAX_BACKOFF_S : (time_t)4 << shift;
    e->until = now + (backoff < THROTTLE_MAX_BACKOFF_S ? backoff : THROTTLE_MAX_BACKOFF_S);
}

void
login_throttle_failed(struct login_throttle *t, const char *peer, const char *user, time_t now)
{
    char pk[KEY_MAX], ak[KEY_MAX];
    pair_key(peer, user, pk);
    peer_key(peer, ak);
    expire(t, now);
    count_failure(&t->failures, pk, THROTTLE_FREE_FAILURES, now);
    count_failure(&t->failures, ak, THROTTLE_PEER_FREE_FAILURES, now);
}

void
login_throttle_succeeded(struct login_throttle *t, const char *peer, const char *user,
                         time_t now)
{
    char pk[KEY_MAX];
    pair_key(peer, user, pk);
    expire(t, now);
    struct entry *pair = table_get(&t->failures, pk);
    if (pair)
        entry_drop(&t->failures, pair);
    table_touch(&t->trusted, pk, now);
}
