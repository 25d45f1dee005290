/* common/tar.c - ustar headers out, a push-mode tar reader in.
 *
 * The reader is a small state machine over the input: gather a 512-byte
 * header, then hand out the member's data as it arrives, then skip the
 * padding, then the next header. Meta members (GNU 'L' long name, pax 'x')
 * are gathered whole (bounded by TAR_NAME_MAX and PAX_MAX) and name the
 * member that follows. Every number in a header is checked before it is
 * used: a size is octal digits or GNU base-256 below 2^63, the checksum is
 * the unsigned or the signed byte sum (both exist in the wild).
 *
 * Facts: POSIX.1-2001 "pax" (ustar header layout, the pax extended header),
 * GNU tar's manual "Basic Tar Format" (base-256 numbers, 'L' records).
 */
#include "common/tar.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAX_MAX 65536

/* Offsets of the ustar header's fields. */
enum {
    H_NAME = 0,
    H_MODE = 100,
    H_UID = 108,
    H_GID = 116,
    H_SIZE = 124,
    H_MTIME = 136,
    H_CHKSUM = 148,
    H_TYPE = 156,
    H_LINK = 157,
    H_MAGIC = 257,
    H_VERSION = 263,
    H_UNAME = 265,
    H_GNAME = 297,
    H_PREFIX = 345,
};

/*==== Writer ====*/

static void
put_octal(char *field, size_t width, uint64_t v)
{
    /* width-1 digits, zero-padded, then NUL */
    snprintf(field, width, "%0*" PRIo64, (int)(width - 1), v);
}

static unsigned
header_sum(const unsigned char *h, bool is_signed)
{
    unsigned sum = 0;
    for (size_t i = 0; i < TAR_BLOCK; i++) {
        unsigned char c = (i >= H_CHKSUM && i < H_CHKSUM + 8) ? ' ' : h[i];
        sum += is_signed ? (unsigned)(int)(signed char)c : c;
    }
    return sum;
}

int
tar_header_encode(char out[TAR_BLOCK], const char *name, uint64_t size, uint64_t mtime)
{
    memset(out, 0, TAR_BLOCK);
    size_t len = strlen(name);
    if (size >= (1ull << 33))
        return -EFBIG;
    if (len <= 100) {
        memcpy(out + H_NAME, name, len);
    } else {
        /* split at a '/' so that prefix <= 155 and name <= 100 */
        const char *cut = NULL;
        for (const char *p = name; *p; p++)
            if (*p == '/' && (size_t)(p - name) <= 155 && len - (size_t)(p - name) - 1 <= 100 &&
                len - (size_t)(p - name) - 1 > 0)
                cut = p;
        if (!cut)
            return -ENAMETOOLONG;
        memcpy(out + H_PREFIX, name, (size_t)(cut - name));
        memcpy(out + H_NAME, cut + 1, len - (size_t)(cut - name) - 1);
    }
    put_octal(out + H_MODE, 8, 0644);
    put_octal(out + H_UID, 8, 0);
    put_octal(out + H_GID, 8, 0);
    put_octal(out + H_SIZE, 12, size);
    put_octal(out + H_MTIME, 12, mtime & 077777777777ull);
    out[H_TYPE] = '0';
    memcpy(out + H_MAGIC, "ustar", 6);
    memcpy(out + H_VERSION, "00", 2);
    unsigned sum = header_sum((const unsigned char *)out, false);
    snprintf(out + H_CHKSUM, 8, "%06o", sum); /* six digits, NUL, then the space */
    out[H_CHKSUM + 7] = ' ';
    return 0;
}

size_t
tar_pad_len(uint64_t size)
{
    return (size_t)((TAR_BLOCK - size % TAR_BLOCK) % TAR_BLOCK);
}

/*==== Reader ====*/

enum tar_state {
    S_HEADER, /* gathering a header block */
    S_DATA,   /* a regular member's data */
    S_META,   /* a 'L' or 'x' member's data, gathered into meta */
    S_PAD,    /* zeros after data */
    S_END,    /* after the end-of-archive block */
    S_ERROR,
};

struct tar_reader {
    const struct tar_reader_ops *ops;
    void *opaque;
    enum tar_state state;
    int err;
    char why[160];
    unsigned char hdr[TAR_BLOCK];
    size_t hdr_fill;
    uint64_t left; /* of S_DATA, S_META or S_PAD */
    uint64_t pad_after;
    char type;     /* of the meta member being gathered */
    char *meta;    /* its bytes */
    size_t meta_len;
    char long_name[TAR_NAME_MAX + 1]; /* from 'L' or 'x', for the next member */
    bool have_long_name;
};

struct tar_reader *
tar_reader_new(const struct tar_reader_ops *ops, void *opaque)
{
    struct tar_reader *r = calloc(1, sizeof(*r));
    if (r) {
        r->ops = ops;
        r->opaque = opaque;
    }
    return r;
}

void
tar_reader_free(struct tar_reader *r)
{
    if (!r)
        return;
    free(r->meta);
    free(r);
}

const char *
tar_reader_why(const struct tar_reader *r)
{
    return r->why;
}

enum tar_end
tar_reader_end(const struct tar_reader *r)
{
    if (r->state == S_END)
        return TAR_END_MARKED;
    if (r->state == S_HEADER && r->hdr_fill == 0)
        return TAR_END_BOUNDARY;
    return TAR_END_TRUNCATED;
}

static int
fail(struct tar_reader *r, int err, const char *why)
{
    r->state = S_ERROR;
    r->err = err;
    if (why)
        snprintf(r->why, sizeof(r->why), "%s", why);
    return err;
}

/* An octal field (spaces and NULs around the digits), or GNU base-256. */
static bool
parse_number(const unsigned char *f, size_t width, uint64_t *out)
{
    if (f[0] & 0x80) { /* base-256: big-endian, top bit of the first byte set */
        if (f[0] != 0x80)
            return false; /* negative or above 2^(8*(width-1)) */
        uint64_t v = 0;
        for (size_t i = 1; i < width; i++) {
            if (v >> 55)
                return false;
            v = (v << 8) | f[i];
        }
        *out = v;
        return v <= INT64_MAX;
    }
    size_t i = 0;
    while (i < width && f[i] == ' ')
        i++;
    uint64_t v = 0;
    bool digits = false;
    for (; i < width && f[i] >= '0' && f[i] <= '7'; i++) {
        if (v >> 60)
            return false;
        v = v * 8 + (uint64_t)(f[i] - '0');
        digits = true;
    }
    for (; i < width; i++)
        if (f[i] != ' ' && f[i] != '\0')
            return false;
    *out = v;
    return digits || width == 0;
}

static bool
block_is_zero(const unsigned char *b)
{
    for (size_t i = 0; i < TAR_BLOCK; i++)
        if (b[i])
            return false;
    return true;
}

/* The pax record "path=..." of the gathered meta member, if any. Records are
 * "<len> <key>=<value>\n"; a malformed one is an error. */
static int
pax_path(struct tar_reader *r)
{
    size_t off = 0;
    while (off < r->meta_len) {
        size_t n = 0, i = off;
        while (i < r->meta_len && r->meta[i] >= '0' && r->meta[i] <= '9' && n < PAX_MAX)
            n = n * 10 + (size_t)(r->meta[i++] - '0');
        if (i >= r->meta_len || r->meta[i] != ' ' || n <= i - off + 1 || off + n > r->meta_len ||
            r->meta[off + n - 1] != '\n')
            return fail(r, -EINVAL, "malformed pax extended header");
        const char *kv = r->meta + i + 1;
        size_t kv_len = off + n - 1 - (i + 1);
        if (kv_len >= 5 && memcmp(kv, "path=", 5) == 0) {
            if (kv_len - 5 > TAR_NAME_MAX || memchr(kv + 5, '\0', kv_len - 5))
                return fail(r, -EINVAL, "pax path too long or holds a NUL");
            memcpy(r->long_name, kv + 5, kv_len - 5);
            r->long_name[kv_len - 5] = '\0';
            r->have_long_name = true;
        }
        off += n;
    }
    return 0;
}

static int
meta_done(struct tar_reader *r)
{
    if (r->type == 'L') {
        size_t n = strnlen(r->meta, r->meta_len);
        if (n == 0 || n > TAR_NAME_MAX)
            return fail(r, -EINVAL, "GNU long name empty or too long");
        memcpy(r->long_name, r->meta, n);
        r->long_name[n] = '\0';
        r->have_long_name = true;
    } else if (r->type == 'x' && pax_path(r) < 0) {
        return r->err;
    }
    free(r->meta);
    r->meta = NULL;
    r->meta_len = 0;
    return 0;
}

static int
after_data(struct tar_reader *r)
{
    r->left = r->pad_after;
    r->state = r->left ? S_PAD : S_HEADER;
    r->hdr_fill = 0;
    return 0;
}

static int
header_done(struct tar_reader *r)
{
    const unsigned char *h = r->hdr;
    if (block_is_zero(h)) {
        r->state = S_END;
        return 0;
    }
    uint64_t stored, size;
    if (!parse_number(h + H_CHKSUM, 8, &stored) ||
        (stored != header_sum(h, false) && stored != header_sum(h, true)))
        return fail(r, -EINVAL, "tar header checksum mismatch");
    if (!parse_number(h + H_SIZE, 12, &size))
        return fail(r, -EINVAL, "tar header size is not a number");
    char type = (char)h[H_TYPE];
    r->pad_after = tar_pad_len(size);
    r->hdr_fill = 0;
    if (type == 'L' || type == 'x') {
        if (size > (type == 'L' ? TAR_NAME_MAX + 1 : PAX_MAX))
            return fail(r, -EINVAL, "tar meta member too large");
        r->type = type;
        r->meta = malloc(size + 1);
        if (!r->meta)
            return fail(r, -ENOMEM, "out of memory");
        r->meta_len = 0;
        r->left = size;
        r->state = S_META;
        return size ? 0 : (meta_done(r) < 0 ? r->err : after_data(r));
    }
    if (type == 'g') { /* pax global header: nothing of it matters here */
        r->meta = NULL;
        r->type = 'g';
        r->left = size + r->pad_after;
        r->pad_after = 0;
        r->state = r->left ? S_PAD : S_HEADER;
        return 0;
    }
    if (type != '0' && type != '\0' && type != '7')
        return fail(r, -EINVAL, "tar member is not a regular file");
    char name[TAR_NAME_MAX + 1];
    if (r->have_long_name) {
        snprintf(name, sizeof(name), "%s", r->long_name);
        r->have_long_name = false;
    } else {
        size_t nl = strnlen((const char *)h + H_NAME, 100);
        size_t pl = memcmp(h + H_MAGIC, "ustar", 5) == 0 && memcmp(h + H_MAGIC, "ustar ", 6) != 0
                        ? strnlen((const char *)h + H_PREFIX, 155)
                        : 0; /* GNU headers keep other data there */
        size_t n = 0;
        if (pl) {
            memcpy(name, h + H_PREFIX, pl);
            name[pl] = '/';
            n = pl + 1;
        }
        memcpy(name + n, h + H_NAME, nl);
        name[n + nl] = '\0';
    }
    if (name[0] == '\0')
        return fail(r, -EINVAL, "tar member without a name");
    int rc = r->ops->member ? r->ops->member(r->opaque, name, size) : 0;
    if (rc < 0)
        return fail(r, rc, NULL);
    r->left = size;
    r->state = S_DATA;
    if (size == 0) {
        rc = r->ops->member_end ? r->ops->member_end(r->opaque) : 0;
        if (rc < 0)
            return fail(r, rc, NULL);
        return after_data(r);
    }
    return 0;
}

int
tar_reader_feed(struct tar_reader *r, const char *data, size_t len)
{
    while (len > 0) {
        size_t n;
        int rc;
        switch (r->state) {
        case S_ERROR:
            return r->err;
        case S_END:
            return 0;
        case S_HEADER:
            n = TAR_BLOCK - r->hdr_fill < len ? TAR_BLOCK - r->hdr_fill : len;
            memcpy(r->hdr + r->hdr_fill, data, n);
            r->hdr_fill += n;
            if (r->hdr_fill == TAR_BLOCK && (rc = header_done(r)) < 0)
                return rc;
            break;
        case S_DATA:
            n = r->left < len ? (size_t)r->left : len;
            rc = r->ops->data ? r->ops->data(r->opaque, data, n) : 0;
            if (rc < 0)
                return fail(r, rc, NULL);
            r->left -= n;
            if (r->left == 0) {
                rc = r->ops->member_end ? r->ops->member_end(r->opaque) : 0;
                if (rc < 0)
                    return fail(r, rc, NULL);
                after_data(r);
            }
            break;
        case S_META:
            n = r->left < len ? (size_t)r->left : len;
            memcpy(r->meta + r->meta_len, data, n);
            r->meta_len += n;
            r->left -= n;
            if (r->left == 0) {
                if (meta_done(r) < 0)
                    return r->err;
                after_data(r);
            }
            break;
        case S_PAD:
            n = r->left < len ? (size_t)r->left : len;
            r->left -= n;
            if (r->left == 0) {
                r->state = S_HEADER;
                r->hdr_fill = 0;
            }
            break;
        default:
            return fail(r, -EINVAL, "reader state");
        }
        data += n;
        len -= n;
    }
    return r->state == S_ERROR ? r->err : 0;
}
