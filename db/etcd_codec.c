/* db/etcd_codec.c - what every client of etcd's JSON gateway needs: keys
 * and values travel as base64, 64-bit numbers as strings (etcd's
 * Documentation/dev-guide/api_grpc_gateway.md). Shared by the pool store
 * (db/store_etcd.c) and the host leases (db/etcd_lease.c).
 */
#include "db/etcd_codec.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ base64 */

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *
b64_encode(const char *in, size_t len)
{
    char *out = malloc((len + 2) / 3 * 4 + 1);
    if (!out)
        return NULL;
    const unsigned char *p = (const unsigned char *)in;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < len)
            v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < len)
            v |= p[i + 2];
        out[o++] = b64chars[(v >> 18) & 63];
        out[o++] = b64chars[(v >> 12) & 63];
        out[o++] = i + 1 < len ? b64chars[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? b64chars[v & 63] : '=';
    }
    out[o] = 0;
    return out;
}

static int
b64_value(char c)
{
    const char *p = c ? strchr(b64chars, c) : NULL;
    return p ? (int)(p - b64chars) : -1;
}

/* A new NUL-terminated string (free()), *len its length; NULL when @in is
 * not base64 or memory runs out. */
char *
b64_decode(const char *in, size_t *len)
{
    size_t n = strlen(in);
    char *out = malloc(n / 4 * 3 + 3);
    if (!out || n % 4) {
        free(out);
        return NULL;
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int a = b64_value(in[i]), b = b64_value(in[i + 1]);
        int c = in[i + 2] == '=' ? 0 : b64_value(in[i + 2]);
        int d = in[i + 3] == '=' ? 0 : b64_value(in[i + 3]);
        if (a < 0 || b < 0 || c < 0 || d < 0) {
            free(out);
            return NULL;
        }
        unsigned v = (unsigned)a << 18 | (unsigned)b << 12 | (unsigned)c << 6 | (unsigned)d;
        out[o++] = (char)(v >> 16);
        if (in[i + 2] != '=')
            out[o++] = (char)(v >> 8 & 0xff);
        if (in[i + 3] != '=')
            out[o++] = (char)(v & 0xff);
    }
    out[o] = 0;
    *len = o;
    return out;
}

/* ------------------------------------------------------------------ JSON helpers */

/* etcd's gateway writes int64 as strings and leaves out zero values. */
uint64_t
json_u64(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    if (json_is_string(v))
        return strtoull(json_string_value(v), NULL, 10);
    if (json_is_integer(v))
        return (uint64_t)json_integer_value(v);
    return 0;
}

json_t *
json_b64(const char *s, size_t len)
{
    char *e = b64_encode(s, len);
    json_t *v = e ? json_string(e) : NULL;
    free(e);
    return v;
}

json_t *
json_u64_string(uint64_t v)
{
    char s[24];
    snprintf(s, sizeof(s), "%" PRIu64, v);
    return json_string(s);
}
