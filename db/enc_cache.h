/* db/enc_cache.h - a record's reply bytes, encoded once per change.
 *
 * VM.get_record and its kind encode the same unchanged record again and again;
 * the encoding was a fifth of the CPU a call costs (issue 18). Each object
 * keeps, per wire format, the bytes of its last encoding and the generation
 * (gen_modified) they were made from; a read of an unchanged object copies
 * them instead of encoding.
 *
 * Rules (db/db.c keeps them):
 *  (1) filled only by readers holding the read lock, outside any batch (a
 *      batch may read what it has not committed and may roll back);
 *  (2) dropped only under the write lock, so no reader holds the bytes: when
 *      a batch first touches the object, when a write skips the batch
 *      (db_set_volatile), when the object is freed;
 *  (3) bytes whose generation is not the object's are never used (a change
 *      that reached the record without (2) costs the cache, not the reply).
 * All objects' bytes together stay under ENC_CACHE_BUDGET; past it, reads
 * encode as before until changes free some.
 */
#ifndef VESSEL_DB_ENC_CACHE_H
#define VESSEL_DB_ENC_CACHE_H

#include <stdatomic.h>
#include <stdint.h>

#include "model/xtype.h"
#include "wire/wire.h"

#define ENC_CACHE_BUDGET (8u << 20) /* bytes, all objects and formats */

struct enc_blob;

struct enc_cache {
    _Atomic(struct enc_blob *) by_format[2]; /* WIRE_XMLRPC, WIRE_JSON */
};

/* Writes the record @rec of @cls, generation @gen, to @w as xrecord_encode()
 * would (internal fields left out), from the cache when it can (1). */
void enc_cache_encode(struct enc_cache *c, uint64_t gen, const struct xclass *cls,
                      const void *rec, struct wire_writer *w);
/* Forgets the bytes (2). */
void enc_cache_drop(struct enc_cache *c);

#endif
