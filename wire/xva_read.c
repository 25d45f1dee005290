/* wire/xva_read.c - reading an XVA stream: decompression, tar, chunk order,
 * checksums, and ova.xml's header.
 *
 * Bytes flow: feed -> (gzip | zstd | nothing, chosen by the first four bytes:
 * what xapi's import.ml with_open_archive tries) -> common/tar.c -> the
 * member callbacks below. A chunk is held (at most XVA_CHUNK_SIZE) until its
 * checksum member has been read and compared, and only then handed to the
 * caller: a damaged chunk never reaches a disk.
 *
 * Invariants:
 *  (1) ova.xml is the first member; nothing is handed out before it;
 *  (2) each disk's chunks come in one run, in increasing chunk order (xapi's
 *      stream_vdi.ml recv_all_vdi refuses anything else: "Invalid XVA file");
 *  (3) every chunk is followed by its checksum member of the same name.
 */
#include "wire/xva.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>
#include <zstd.h>

#include "common/tar.h"
#include "wire/xmlrpc.h"

#define MAX_DISKS 4096
#define MAX_CSUM_TEXT 128
#define OUT_BUF (128 * 1024)

enum member_kind { M_NONE, M_OVA, M_CHUNK, M_CSUM };

struct xva_reader {
    const struct xva_reader_ops *ops;
    void *opaque;
    bool verify;
    int err;
    char why[TAR_NAME_MAX + 160];
    char unexpected[TAR_NAME_MAX + 1];
    /* decompression */
    enum xva_compression comp;
    bool comp_known;
    unsigned char magic[4];
    size_t magic_fill;
    z_stream zs;
    bool zs_live, zs_ended;
    ZSTD_DStream *zd;
    size_t zd_hint; /* 0 once a frame is complete */
    char *out;      /* decompressed output */
    uint64_t bytes;
    /* tar */
    struct tar_reader *tar;
    enum member_kind kind;
    char *buf; /* the member being gathered: ova.xml, a chunk, or a checksum */
    size_t buf_len, buf_cap;
    bool seen_ova;
    /* chunks */
    char disk[TAR_NAME_MAX + 1]; /* the current disk's prefix */
    uint64_t last_chunk;
    bool have_last, last_empty;
    char **done_disks;
    size_t n_done;
    bool pending;      /* a chunk waits for its checksum */
    uint64_t pending_no;
    char *chunk;       /* its data */
    size_t chunk_len, chunk_cap;
    char csum_ext[16];
};

static int
fail(struct xva_reader *r, int err, const char *fmt, const char *arg)
{
    if (!r->err) {
        r->err = err;
        snprintf(r->why, sizeof(r->why), fmt, arg ? arg : "");
    }
    return r->err;
}

/*==== Names ====*/

bool
xva_name_is_safe(const char *name)
{
    if (!name[0] || name[0] == '/')
        return false;
    const char *comp = name;
    for (const char *p = name;; p++) {
        if (*p == '\\' || (*p && (unsigned char)*p < 0x20) || *p == 0x7f)
            return false;
        if (*p == '/' || *p == '\0') {
            size_t n = (size_t)(p - comp);
            if (n == 0 || (n == 1 && comp[0] == '.') || (n == 2 && comp[0] == '.' && comp[1] == '.'))
                return false;
            if (*p == '\0')
                return true;
            comp = p + 1;
        }
    }
}

bool
xva_chunk_name_parse(const char *name, size_t *prefix_len, uint64_t *chunk_no, const char **ext)
{
    const char *slash = strchr(name, '/');
    if (!slash || slash == name || strchr(slash + 1, '/'))
        return false;
    const char *p = slash + 1;
    uint64_t n = 0;
    size_t digits = 0;
    for (; *p >= '0' && *p <= '9'; p++, digits++) {
        if (digits >= 12)
            return false; /* 10^12 MiB: no disk is that large */
        n = n * 10 + (uint64_t)(*p - '0');
    }
    if (digits == 0)
        return false;
    *prefix_len = (size_t)(slash - name);
    *chunk_no = n;
    *ext = p;
    return true;
}

/*==== Chunks and checksums ====*/

static bool
disk_done_before(struct xva_reader *r, const char *prefix)
{
    for (size_t i = 0; i < r->n_done; i++)
        if (strcmp(r->done_disks[i], prefix) == 0)
            return true;
    return false;
}

static int
disk_switch(struct xva_reader *r, const char *prefix, size_t len)
{
    if (strlen(r->disk) == len && memcmp(r->disk, prefix, len) == 0)
        return 0;
    char name[TAR_NAME_MAX + 1];
    memcpy(name, prefix, len);
    name[len] = '\0';
    if (disk_done_before(r, name))
        return fail(r, -EINVAL, "chunks of disk %s are not in one run", name);
    if (r->disk[0]) {
        if (r->n_done >= MAX_DISKS)
            return fail(r, -EFBIG, "too many disks%s", NULL);
        char **d = realloc(r->done_disks, (r->n_done + 1) * sizeof(*d));
        if (!d)
            return fail(r, -ENOMEM, "out of memory%s", NULL);
        r->done_disks = d;
        if (!(d[r->n_done] = strdup(r->disk)))
            return fail(r, -ENOMEM, "out of memory%s", NULL);
        r->n_done++;
    }
    memcpy(r->disk, name, len + 1);
    r->have_last = false;
    return 0;
}

static int
chunk_member(struct xva_reader *r, const char *name, uint64_t size)
{
    size_t plen;
    uint64_t no;
    const char *ext;
    if (!xva_chunk_name_parse(name, &plen, &no, &ext))
        return fail(r, -EINVAL, "unexpected member %s", name);
    if (ext[0] == '\0') {
        if (r->pending)
            return fail(r, -EINVAL, "a chunk without its checksum before %s", name);
        if (size > XVA_CHUNK_SIZE)
            return fail(r, -EFBIG, "chunk %s is larger than 1 MiB", name);
        int rc = disk_switch(r, name, plen);
        if (rc < 0)
            return rc;
        /* an empty chunk is xapi's keep-alive: the real one may reuse its number */
        if (r->have_last && (no < r->last_chunk || (no == r->last_chunk && !r->last_empty)))
            return fail(r, -EINVAL, "chunk %s is out of order", name);
        r->pending = true;
        r->pending_no = no;
        r->kind = M_CHUNK;
        return 0;
    }
    if (strcmp(ext, ".checksum") != 0 && strcmp(ext, ".xxhash") != 0)
        return fail(r, -EINVAL, "unexpected member %s", name);
    if (!r->pending || no != r->pending_no || strlen(r->disk) != plen ||
        memcmp(r->disk, name, plen) != 0)
        return fail(r, -EINVAL, "checksum %s follows no chunk of that name", name);
    if (size > MAX_CSUM_TEXT)
        return fail(r, -EFBIG, "checksum member %s too large", name);
    snprintf(r->csum_ext, sizeof(r->csum_ext), "%s", ext);
    r->kind = M_CSUM;
    return 0;
}

static int
csum_done(struct xva_reader *r)
{
    size_t n = r->buf_len;
    while (n > 0 && (r->buf[n - 1] == '\n' || r->buf[n - 1] == ' ' || r->buf[n - 1] == '\r'))
        n--;
    char want[41];
    if (strcmp(r->csum_ext, ".xxhash") == 0)
        xva_xxhash_text(r->chunk, r->chunk_len, want);
    else
        xva_sha1_text(r->chunk, r->chunk_len, want);
    char name[TAR_NAME_MAX + 32];
    snprintf(name, sizeof(name), "%s/%08llu", r->disk, (unsigned long long)r->pending_no);
    if (r->verify && (n != strlen(want) || strncasecmp(r->buf, want, n) != 0))
        return fail(r, -EBADMSG, "checksum of %s does not match its data", name);
    r->pending = false;
    r->have_last = true;
    r->last_chunk = r->pending_no;
    r->last_empty = r->chunk_len == 0;
    if (r->chunk_len == 0)
        return 0;
    int rc = r->ops->chunk ? r->ops->chunk(r->opaque, r->disk, r->pending_no, r->chunk,
                                           r->chunk_len)
                           : 0;
    return rc < 0 ? fail(r, rc, "%s", "stopped by the importer") : 0;
}

/*==== Tar callbacks ====*/

static int
buf_reserve(struct xva_reader *r, size_t n)
{
    if (n + 1 <= r->buf_cap)
        return 0;
    char *b = realloc(r->buf, n + 1);
    if (!b)
        return fail(r, -ENOMEM, "out of memory%s", NULL);
    r->buf = b;
    r->buf_cap = n + 1;
    return 0;
}

static int
on_member(void *opaque, const char *name, uint64_t size)
{
    struct xva_reader *r = opaque;
    if (!xva_name_is_safe(name))
        return fail(r, -EINVAL, "hostile member name \"%s\"", name);
    r->buf_len = 0;
    if (!r->seen_ova) {
        if (strcmp(name, XVA_OVA_XML) != 0) {
            snprintf(r->unexpected, sizeof(r->unexpected), "%s", name);
            return fail(r, -ENOMSG, "expected ova.xml, found %s", name);
        }
        if (size > XVA_MAX_OVA_XML)
            return fail(r, -EFBIG, "ova.xml is larger than 64 MiB%s", NULL);
        r->kind = M_OVA;
        return buf_reserve(r, (size_t)size);
    }
    int rc = chunk_member(r, name, size);
    if (rc < 0)
        return rc;
    return buf_reserve(r, (size_t)size);
}

static int
on_data(void *opaque, const char *data, size_t len)
{
    struct xva_reader *r = opaque;
    memcpy(r->buf + r->buf_len, data, len); /* reserved at the member's head */
    r->buf_len += len;
    return 0;
}

static int
on_member_end(void *opaque)
{
    struct xva_reader *r = opaque;
    r->buf[r->buf_len] = '\0';
    switch (r->kind) {
    case M_OVA: {
        r->seen_ova = true;
        int rc = r->ops->ova_xml ? r->ops->ova_xml(r->opaque, r->buf, r->buf_len) : 0;
        return rc < 0 ? fail(r, rc, "%s", "stopped by the importer") : 0;
    }
    case M_CHUNK: { /* the chunk's bytes move aside until its checksum is in */
        char *t = r->chunk;
        size_t t_cap = r->chunk_cap;
        r->chunk = r->buf;
        r->chunk_cap = r->buf_cap;
        r->chunk_len = r->buf_len;
        r->buf = t;
        r->buf_cap = t_cap;
        r->buf_len = 0;
        return 0;
    }
    case M_CSUM:
        return csum_done(r);
    default:
        return 0;
    }
}

static const struct tar_reader_ops tar_ops = {on_member, on_data, on_member_end};

/*==== Decompression ====*/

struct xva_reader *
xva_reader_new(const struct xva_reader_ops *ops, void *opaque, bool verify)
{
    struct xva_reader *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->ops = ops;
    r->opaque = opaque;
    r->verify = verify;
    r->tar = tar_reader_new(&tar_ops, r);
    if (!r->tar) {
        free(r);
        return NULL;
    }
    return r;
}

void
xva_reader_free(struct xva_reader *r)
{
    if (!r)
        return;
    tar_reader_free(r->tar);
    if (r->zs_live)
        inflateEnd(&r->zs);
    ZSTD_freeDStream(r->zd);
    for (size_t i = 0; i < r->n_done; i++)
        free(r->done_disks[i]);
    free(r->done_disks);
    free(r->out);
    free(r->buf);
    free(r->chunk);
    free(r);
}

static int
tar_feed(struct xva_reader *r, const char *data, size_t len)
{
    r->bytes += len;
    int rc = tar_reader_feed(r->tar, data, len);
    if (rc == -EINVAL && !r->err)
        return fail(r, -EINVAL, "%s", tar_reader_why(r->tar));
    return rc < 0 ? fail(r, rc, "%s", tar_reader_why(r->tar)) : 0;
}

static int
comp_start(struct xva_reader *r)
{
    r->comp_known = true;
    if (r->magic_fill >= 2 && r->magic[0] == 0x1f && r->magic[1] == 0x8b)
        r->comp = XVA_COMPRESS_GZIP;
    else if (r->magic_fill == 4 && memcmp(r->magic, "\x28\xb5\x2f\xfd", 4) == 0)
        r->comp = XVA_COMPRESS_ZSTD;
    else
        r->comp = XVA_COMPRESS_NONE;
    if (r->comp != XVA_COMPRESS_NONE && !(r->out = malloc(OUT_BUF)))
        return fail(r, -ENOMEM, "out of memory%s", NULL);
    if (r->comp == XVA_COMPRESS_GZIP) {
        if (inflateInit2(&r->zs, 15 + 16) != Z_OK)
            return fail(r, -ENOMEM, "out of memory%s", NULL);
        r->zs_live = true;
    } else if (r->comp == XVA_COMPRESS_ZSTD) {
        if (!(r->zd = ZSTD_createDStream()) || ZSTD_isError(ZSTD_initDStream(r->zd)))
            return fail(r, -ENOMEM, "out of memory%s", NULL);
        r->zd_hint = 1;
    }
    return 0;
}

static int
gzip_feed(struct xva_reader *r, const char *data, size_t len)
{
    r->zs.next_in = (unsigned char *)data;
    r->zs.avail_in = (unsigned)len;
    while (r->zs.avail_in > 0) {
        if (r->zs_ended) { /* another gzip member follows (gzip allows it) */
            if (inflateReset(&r->zs) != Z_OK)
                return fail(r, -EINVAL, "gzip: cannot restart%s", NULL);
            r->zs_ended = false;
        }
        r->zs.next_out = (unsigned char *)r->out;
        r->zs.avail_out = OUT_BUF;
        int zrc = inflate(&r->zs, Z_NO_FLUSH);
        /* what came out before a damaged spot is read first, however the
         * input was split (the same archive gives the same answer) */
        size_t n = OUT_BUF - r->zs.avail_out;
        if (n && tar_feed(r, r->out, n) < 0)
            return r->err;
        if (zrc != Z_OK && zrc != Z_STREAM_END && zrc != Z_BUF_ERROR)
            return fail(r, -EINVAL, "gzip: %s", r->zs.msg ? r->zs.msg : "corrupt data");
        if (zrc == Z_STREAM_END)
            r->zs_ended = true;
        else if (zrc == Z_BUF_ERROR && n == 0)
            break;
    }
    return 0;
}

static int
zstd_feed(struct xva_reader *r, const char *data, size_t len)
{
    ZSTD_inBuffer in = {data, len, 0};
    while (in.pos < in.size) {
        ZSTD_outBuffer out = {r->out, OUT_BUF, 0};
        size_t zrc = ZSTD_decompressStream(r->zd, &out, &in);
        if (out.pos && tar_feed(r, r->out, out.pos) < 0)
            return r->err;
        if (ZSTD_isError(zrc))
            return fail(r, -EINVAL, "zstd: %s", ZSTD_getErrorName(zrc));
        r->zd_hint = zrc;
    }
    return 0;
}

static int
raw_feed(struct xva_reader *r, const char *data, size_t len)
{
    switch (r->comp) {
    case XVA_COMPRESS_GZIP:
        return gzip_feed(r, data, len);
    case XVA_COMPRESS_ZSTD:
        return zstd_feed(r, data, len);
    default:
        return tar_feed(r, data, len);
    }
}

int
xva_reader_feed(struct xva_reader *r, const char *data, size_t len)
{
    if (r->err)
        return r->err;
    if (!r->comp_known) {
        while (len > 0 && r->magic_fill < 4) {
            r->magic[r->magic_fill++] = (unsigned char)*data++;
            len--;
        }
        if (r->magic_fill < 4)
            return 0;
        if (comp_start(r) < 0 || raw_feed(r, (const char *)r->magic, 4) < 0)
            return r->err;
    }
    return len ? raw_feed(r, data, len) : 0;
}

int
xva_reader_finish(struct xva_reader *r, bool boundary_ok)
{
    if (r->err)
        return r->err;
    if (!r->comp_known && (comp_start(r) < 0 || raw_feed(r, (const char *)r->magic,
                                                         r->magic_fill) < 0))
        return r->err;
    enum tar_end end = tar_reader_end(r->tar);
    if (r->comp == XVA_COMPRESS_GZIP && !r->zs_ended && end != TAR_END_MARKED)
        return fail(r, -EPIPE, "the gzip stream stops early%s", NULL);
    if (r->comp == XVA_COMPRESS_ZSTD && r->zd_hint != 0 && end != TAR_END_MARKED)
        return fail(r, -EPIPE, "the zstd stream stops early%s", NULL);
    if (!r->seen_ova)
        return fail(r, -EPIPE, "the archive ends before ova.xml%s", NULL);
    if (r->pending)
        return fail(r, -EPIPE, "the archive ends before a chunk's checksum%s", NULL);
    if (end == TAR_END_MARKED || (end == TAR_END_BOUNDARY && boundary_ok))
        return 0;
    return fail(r, -EPIPE, "the archive stops inside a member%s", NULL);
}

const char *
xva_reader_why(const struct xva_reader *r)
{
    return r->why;
}

const char *
xva_reader_unexpected(const struct xva_reader *r)
{
    return r->unexpected;
}

uint64_t
xva_reader_bytes(const struct xva_reader *r)
{
    return r->bytes;
}

/*==== ova.xml ====*/

static const char *
member_str(const struct xval *st, const char *key)
{
    const struct xval *v = xval_struct_get(st, key);
    return v && v->kind == XVAL_STRING ? v->str.s : NULL;
}

static int64_t
member_int(const struct xval *st, const char *key)
{
    const struct xval *v = xval_struct_get(st, key);
    if (!v)
        return 0;
    if (v->kind == XVAL_INT)
        return v->i;
    if (v->kind == XVAL_STRING)
        return strtoll(v->str.s, NULL, 10);
    return 0;
}

int
xva_header_parse(const char *xml, size_t len, struct xva_header *out, char *why, size_t why_len)
{
    memset(out, 0, sizeof(*out));
    struct xval *tree = NULL;
    int rc = xmlrpc_parse_value(xml, len, &tree, why, why_len);
    if (rc < 0)
        return rc;
    const struct xval *objects = tree->kind == XVAL_STRUCT ? xval_struct_get(tree, "objects") : NULL;
    const struct xval *version = tree->kind == XVAL_STRUCT ? xval_struct_get(tree, "version") : NULL;
    if (!objects || objects->kind != XVAL_ARRAY || !version || version->kind != XVAL_STRUCT) {
        snprintf(why, why_len, "ova.xml has no version struct and objects array");
        xval_free(tree);
        return -EINVAL;
    }
    out->objects = calloc(objects->arr.n ? objects->arr.n : 1, sizeof(*out->objects));
    if (!out->objects) {
        xval_free(tree);
        return -ENOMEM;
    }
    for (size_t i = 0; i < objects->arr.n; i++) {
        const struct xval *o = objects->arr.items[i];
        const char *cls = o->kind == XVAL_STRUCT ? member_str(o, "class") : NULL;
        const char *id = o->kind == XVAL_STRUCT ? member_str(o, "id") : NULL;
        const struct xval *snap = o->kind == XVAL_STRUCT ? xval_struct_get(o, "snapshot") : NULL;
        if (!cls || !id || !snap || snap->kind != XVAL_STRUCT) {
            snprintf(why, why_len, "ova.xml object %zu lacks class, id or snapshot", i);
            free(out->objects);
            out->objects = NULL;
            xval_free(tree);
            return -EINVAL;
        }
        out->objects[i] = (struct xva_object){cls, id, snap};
    }
    out->n_objects = objects->arr.n;
    out->xapi_major = member_int(version, "xapi_major");
    out->xapi_minor = member_int(version, "xapi_minor");
    out->export_vsn = member_int(version, "export_vsn");
    const char *host = member_str(version, "hostname");
    out->hostname = host ? host : "";
    out->tree = tree;
    return 0;
}

void
xva_header_release(struct xva_header *h)
{
    free(h->objects);
    xval_free(h->tree);
    memset(h, 0, sizeof(*h));
}
