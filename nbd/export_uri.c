/* nbd/export_uri.c - export names of the form "/<path>?<key>=<value>&...".
 *
 * xapi's xapi-nbd reads the export name as a URI reference (ocaml/nbd/src/main.ml: the path
 * without its leading '/' names the VDI by uuid, the query parameter session_id carries the
 * session), so both parts are percent-decoded as RFC 3986 section 2.1 says; '+' stays '+'
 * (it is not a form encoding). Only the first occurrence of @key counts, as
 * Uri.get_query_param answers. Nothing is allocated.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "nbd/nbd.h"

static int
hex_value(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Percent-decodes [@s, @s + @n) into @out (@out_len bytes with the NUL). */
static int
decode(const char *s, size_t n, char *out, size_t out_len)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '%') {
            if (i + 2 >= n)
                return -EINVAL;
            int hi = hex_value(s[i + 1]);
            int lo = hex_value(s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -EINVAL;
            ch = (char)(hi << 4 | lo);
            i += 2;
        }
        if (o + 1 >= out_len)
            return -ENAMETOOLONG;
        out[o++] = ch;
    }
    if (out_len == 0)
        return -ENAMETOOLONG;
    out[o] = 0;
    return 0;
}

int
nbd_export_uri_parse(const char *name, char *path, size_t path_len, const char *key,
                     char *value, size_t value_len)
{
    if (name[0] != '/')
        return -EINVAL;
    const char *q = strchr(name, '?');
    size_t plen = q ? (size_t)(q - name) : strlen(name);
    const char *hash = memchr(name, '#', plen);
    if (hash)
        plen = (size_t)(hash - name);
    int rc = decode(name + 1, plen - 1, path, path_len);
    if (rc < 0)
        return rc;
    if (!q)
        return -ENOENT;
    size_t klen = strlen(key);
    for (const char *p = q + 1; *p && *p != '#';) {
        size_t n = strcspn(p, "&#");
        const char *eq = memchr(p, '=', n);
        if (eq && (size_t)(eq - p) == klen && memcmp(p, key, klen) == 0)
            return decode(eq + 1, n - klen - 1, value, value_len);
        p += n;
        if (*p == '&')
            p++;
    }
    return -ENOENT;
}
