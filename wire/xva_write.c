/* wire/xva_write.c - writing an XVA stream, and the checksum texts.
 *
 * The writer appends tar members through the chosen compressor into one
 * buffer that the caller drains as its consumer (an HTTP reply) takes bytes:
 * memory stays at about one chunk plus what the consumer has not taken.
 * Chunks carry an .xxhash member as xapi's stream_vdi.ml write_block does
 * (XXH64, seed 0, "%016LX").
 */
#include "wire/xva.h"

#include <errno.h>
#include <nettle/sha1.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include <zlib.h>
#include <zstd.h>

#include "common/tar.h"

#define COMP_BUF (64 * 1024)

struct xva_writer {
    enum xva_compression comp;
    struct strbuf out;
    size_t out_pos; /* consumed bytes at the buffer's head */
    z_stream zs;
    bool zs_live;
    ZSTD_CStream *zc;
    char *tmp;
};

enum xva_compression
xva_compression_parse(const char *s)
{
    if (s && (strcmp(s, "true") == 0 || strcmp(s, "gzip") == 0))
        return XVA_COMPRESS_GZIP;
    if (s && strcmp(s, "zstd") == 0)
        return XVA_COMPRESS_ZSTD;
    return XVA_COMPRESS_NONE;
}

void
xva_xxhash_text(const void *data, size_t len, char out[17])
{
    snprintf(out, 17, "%016llX", (unsigned long long)XXH64(data, len, 0));
}

void
xva_sha1_text(const void *data, size_t len, char out[41])
{
    struct sha1_ctx c;
    uint8_t d[SHA1_DIGEST_SIZE];
    sha1_init(&c);
    sha1_update(&c, len, data);
    sha1_digest(&c, sizeof(d), d);
    for (size_t i = 0; i < sizeof(d); i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

struct xva_writer *
xva_writer_new(enum xva_compression c)
{
    struct xva_writer *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->comp = c;
    strbuf_init(&w->out);
    bool ok = c == XVA_COMPRESS_NONE || (w->tmp = malloc(COMP_BUF)) != NULL;
    /* gzip: the gzip wrapper (15 + 16) at the level gzip(1) uses by default */
    if (ok && c == XVA_COMPRESS_GZIP)
        ok = w->zs_live =
            deflateInit2(&w->zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK;
    if (ok && c == XVA_COMPRESS_ZSTD)
        ok = (w->zc = ZSTD_createCStream()) != NULL &&
             !ZSTD_isError(ZSTD_CCtx_setParameter(w->zc, ZSTD_c_compressionLevel, 3));
    if (!ok) {
        xva_writer_free(w);
        return NULL;
    }
    return w;
}

void
xva_writer_free(struct xva_writer *w)
{
    if (!w)
        return;
    if (w->zs_live)
        deflateEnd(&w->zs);
    ZSTD_freeCStream(w->zc);
    strbuf_release(&w->out);
    free(w->tmp);
    free(w);
}

/* Compacts the buffer once the consumer has taken most of it. */
static void
out_compact(struct xva_writer *w)
{
    if (w->out_pos == 0)
        return;
    if (w->out_pos == w->out.len) {
        strbuf_reset(&w->out);
        w->out_pos = 0;
    } else if (w->out_pos > (1u << 20)) {
        memmove(w->out.buf, w->out.buf + w->out_pos, w->out.len - w->out_pos);
        w->out.len -= w->out_pos;
        w->out.buf[w->out.len] = '\0';
        w->out_pos = 0;
    }
}

static int
emit(struct xva_writer *w, const void *data, size_t len, bool end)
{
    out_compact(w);
    if (w->comp == XVA_COMPRESS_NONE) {
        strbuf_append(&w->out, data, len);
    } else if (w->comp == XVA_COMPRESS_GZIP) {
        w->zs.next_in = (unsigned char *)data;
        w->zs.avail_in = (unsigned)len;
        int zrc;
        do {
            w->zs.next_out = (unsigned char *)w->tmp;
            w->zs.avail_out = COMP_BUF;
            zrc = deflate(&w->zs, end ? Z_FINISH : Z_NO_FLUSH);
            if (zrc == Z_STREAM_ERROR)
                return -EINVAL;
            strbuf_append(&w->out, w->tmp, COMP_BUF - w->zs.avail_out);
        } while (w->zs.avail_out == 0 || (end && zrc != Z_STREAM_END));
    } else {
        ZSTD_inBuffer in = {data, len, 0};
        size_t left;
        do {
            ZSTD_outBuffer out = {w->tmp, COMP_BUF, 0};
            left = ZSTD_compressStream2(w->zc, &out, &in, end ? ZSTD_e_end : ZSTD_e_continue);
            if (ZSTD_isError(left))
                return -EINVAL;
            strbuf_append(&w->out, w->tmp, out.pos);
        } while (in.pos < in.size || (end && left != 0));
    }
    return strbuf_ok(&w->out) ? 0 : -ENOMEM;
}

static int
member(struct xva_writer *w, const char *name, const void *data, size_t len, uint64_t mtime)
{
    static const char zeros[TAR_BLOCK];
    char hdr[TAR_BLOCK];
    int rc = tar_header_encode(hdr, name, len, mtime);
    if (rc < 0)
        return rc;
    if ((rc = emit(w, hdr, sizeof(hdr), false)) < 0 || (rc = emit(w, data, len, false)) < 0)
        return rc;
    return emit(w, zeros, tar_pad_len(len), false);
}

int
xva_writer_file(struct xva_writer *w, const char *name, const void *data, size_t len,
                uint64_t mtime)
{
    return member(w, name, data, len, mtime);
}

int
xva_writer_chunk(struct xva_writer *w, const char *prefix, uint64_t chunk_no, const void *data,
                 size_t len)
{
    char name[256], csum[17];
    if ((size_t)snprintf(name, sizeof(name) - 8, "%s/%08llu", prefix,
                         (unsigned long long)chunk_no) >= sizeof(name) - 8)
        return -ENAMETOOLONG;
    int rc = member(w, name, data, len, 0);
    if (rc < 0)
        return rc;
    xva_xxhash_text(data, len, csum);
    strcat(name, ".xxhash");
    return member(w, name, csum, 16, 0);
}

int
xva_writer_end(struct xva_writer *w)
{
    static const char zeros[2 * TAR_BLOCK];
    return emit(w, zeros, sizeof(zeros), true);
}

void
xva_writer_output(const struct xva_writer *w, const char **data, size_t *len)
{
    *data = w->out.buf ? w->out.buf + w->out_pos : "";
    *len = w->out.len - w->out_pos;
}

void
xva_writer_consume(struct xva_writer *w, size_t n)
{
    w->out_pos += n;
}
