/* common/hashmap.c - open addressing with linear probing (FNV-1a hashes).
 *
 * Invariant: cap is 0 or a power of two and used < cap * 7 / 10 after every
 * insert, so a probe always meets an empty slot and stops.
 */
#include "common/hashmap.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct hashmap_slot {
    const char *key; /* NULL: empty; TOMBSTONE: deleted */
    void *value;
    uint64_t hash;
};

static const char tombstone_mark;
#define TOMBSTONE (&tombstone_mark)

static uint64_t
hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

void
hashmap_init(struct hashmap *h)
{
    memset(h, 0, sizeof(*h));
}

void
hashmap_release(struct hashmap *h)
{
    free(h->slots);
    hashmap_init(h);
}

void
hashmap_release_with(struct hashmap *h, void (*free_value)(void *))
{
    for (size_t i = 0; i < h->cap; i++)
        if (h->slots[i].key && h->slots[i].key != TOMBSTONE)
            free_value(h->slots[i].value);
    hashmap_release(h);
}

static struct hashmap_slot *
find(const struct hashmap *h, const char *key, uint64_t hash)
{
    if (!h->cap)
        return NULL;
    size_t mask = h->cap - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        struct hashmap_slot *s = &h->slots[i];
        if (!s->key)
            return NULL;
        if (s->key != TOMBSTONE && s->hash == hash && strcmp(s->key, key) == 0)
            return s;
    }
}

void *
hashmap_get(const struct hashmap *h, const char *key)
{
    struct hashmap_slot *s = find(h, key, hash_str(key));
    return s ? s->value : NULL;
}

static int
grow(struct hashmap *h)
{
    size_t cap = h->cap ? h->cap * 2 : 16;
    if (h->n * 2 < h->cap / 2)
        cap = h->cap; /* mostly tombstones: rehash in place size */
    struct hashmap_slot *slots = calloc(cap, sizeof(*slots));
    if (!slots)
        return -ENOMEM;
    for (size_t i = 0; i < h->cap; i++) {
        struct hashmap_slot *s = &h->slots[i];
        if (!s->key || s->key == TOMBSTONE)
            continue;
        size_t j = s->hash & (cap - 1);
        while (slots[j].key)
            j = (j + 1) & (cap - 1);
        slots[j] = *s;
    }
    free(h->slots);
    h->slots = slots;
    h->cap = cap;
    h->used = h->n;
    return 0;
}

int
hashmap_put(struct hashmap *h, const char *key, void *value)
{
    uint64_t hash = hash_str(key);
    struct hashmap_slot *s = find(h, key, hash);
    if (s) {
        s->key = key;
        s->value = value;
        return 0;
    }
    if ((h->used + 1) * 10 >= h->cap * 7 && grow(h) < 0)
        return -ENOMEM;
    size_t mask = h->cap - 1;
    size_t i = hash & mask;
    while (h->slots[i].key && h->slots[i].key != TOMBSTONE)
        i = (i + 1) & mask;
    if (!h->slots[i].key)
        h->used++;
    h->slots[i].key = key;
    h->slots[i].value = value;
    h->slots[i].hash = hash;
    h->n++;
    /* the invariant: a probe always meets an empty slot */
    assert((h->cap & (h->cap - 1)) == 0 && h->used * 10 < h->cap * 7 && h->n <= h->used);
    return 0;
}

void *
hashmap_remove(struct hashmap *h, const char *key)
{
    struct hashmap_slot *s = find(h, key, hash_str(key));
    if (!s)
        return NULL;
    void *v = s->value;
    s->key = TOMBSTONE;
    s->value = NULL;
    h->n--;
    return v;
}
