/* common/hashmap.h - string-keyed open-addressing hash table of borrowed keys.
 *
 * The table stores (key, value) pointers; keys are not copied, so a key must
 * stay valid while it is in the table (db/ keys objects by their own ref and
 * uuid strings). Linear probing with tombstones; grows at 70% load. Not
 * thread-safe: the owner locks.
 */
#ifndef VESSEL_COMMON_HASHMAP_H
#define VESSEL_COMMON_HASHMAP_H

#include <stddef.h>

struct hashmap {
    struct hashmap_slot *slots;
    size_t cap; /* power of two, or 0 */
    size_t n;   /* live entries */
    size_t used; /* live + tombstones */
};

void hashmap_init(struct hashmap *h);
void hashmap_release(struct hashmap *h);
/* Same, calling @free_value on each live value first. */
void hashmap_release_with(struct hashmap *h, void (*free_value)(void *));
/* The value under @key, or NULL. */
void *hashmap_get(const struct hashmap *h, const char *key);
/* Inserts or replaces. 0 or -ENOMEM. */
int hashmap_put(struct hashmap *h, const char *key, void *value);
/* Removes @key; returns its value or NULL. */
void *hashmap_remove(struct hashmap *h, const char *key);

#endif
