/* db/enc_cache.c - a record's reply bytes, encoded once per change (db/enc_cache.h).
 *
 * Readers race to fill an empty slot with a compare-and-swap; the loser frees
 * its copy. Bytes in a slot are never changed, and freed only under the write
 * lock, so a reader may copy them without a lock of its own.
 */
#include "db/enc_cache.h"

#include <stdlib.h>
#include <string.h>

#include "common/strbuf.h"

/* A record nests a few containers (maps of sets); the bytes were made at depth
 * 0, so they are reused only where the writer's own depth limit cannot cut
 * them short. */
#define ENC_CACHE_MAX_DEPTH (WIRE_MAX_DEPTH / 2)

struct enc_blob {
    uint64_t gen;
    size_t len;
    char bytes[];
};

static atomic_size_t cached_bytes;

void
enc_cache_encode(struct enc_cache *c, uint64_t gen, const struct xclass *cls, const void *rec,
                 struct wire_writer *w)
{
    unsigned f = (unsigned)w->format;
    if (f > 1 || w->depth > ENC_CACHE_MAX_DEPTH) {
        xrecord_encode(cls, rec, w, false);
        return;
    }
    struct enc_blob *b = atomic_load_explicit(&c->by_format[f], memory_order_acquire);
    if (b && b->gen == gen) {
        wire_raw_value(w, b->bytes, b->len);
        return;
    }
    if (b) { /* (3): stale, and only the write lock may free it */
        xrecord_encode(cls, rec, w, false);
        return;
    }
    struct strbuf sb = STRBUF_INIT;
    struct wire_writer tmp;
    wire_writer_init(&tmp, w->format, &sb);
    xrecord_encode(cls, rec, &tmp, false);
    if (!strbuf_ok(&sb) || tmp.overflow) {
        strbuf_release(&sb);
        xrecord_encode(cls, rec, w, false);
        return;
    }
    wire_raw_value(w, sb.buf, sb.len);
    size_t cost = sizeof(*b) + sb.len;
    if (atomic_fetch_add(&cached_bytes, cost) + cost > ENC_CACHE_BUDGET ||
        !(b = malloc(cost))) {
        atomic_fetch_sub(&cached_bytes, cost);
        strbuf_release(&sb);
        return;
    }
    b->gen = gen;
    b->len = sb.len;
    memcpy(b->bytes, sb.buf, sb.len);
    strbuf_release(&sb);
    struct enc_blob *none = NULL;
    if (!atomic_compare_exchange_strong_explicit(&c->by_format[f], &none, b,
                                                 memory_order_release, memory_order_relaxed)) {
        atomic_fetch_sub(&cached_bytes, cost);
        free(b); /* another reader filled it first */
    }
}

void
enc_cache_drop(struct enc_cache *c)
{
    for (unsigned f = 0; f < 2; f++) {
        struct enc_blob *b = atomic_exchange_explicit(&c->by_format[f], NULL, memory_order_relaxed);
        if (b) {
            atomic_fetch_sub(&cached_bytes, sizeof(*b) + b->len);
            free(b);
        }
    }
}
