/* db/etcd_codec.h - base64 and number helpers for etcd's JSON gateway
 * (db/etcd_codec.c). Any thread. */
#ifndef VESSEL_DB_ETCD_CODEC_H
#define VESSEL_DB_ETCD_CODEC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* A new NUL-terminated base64 text of @in (free()), NULL without memory. */
char *b64_encode(const char *in, size_t len);
/* A new NUL-terminated string (free()), *len its length; NULL when @in is
 * not base64 or memory runs out. */
char *b64_decode(const char *in, size_t *len);
/* etcd's gateway writes int64 as strings and leaves out zero values: 0 then. */
uint64_t json_u64(const json_t *obj, const char *key);
/* A new JSON string holding @s base64-encoded (NULL without memory). */
json_t *json_b64(const char *s, size_t len);
/* A new JSON string holding @v in decimal, as etcd wants int64s. */
json_t *json_u64_string(uint64_t v);

#endif
