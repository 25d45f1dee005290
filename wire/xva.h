/* wire/xva.h - the XVA format: a VM and its disks in one tar stream.
 *
 * Layout (xapi's ocaml/xapi/export.ml, stream_vdi.ml, import.ml):
 *   ova.xml                   first member: an XML-RPC <value><struct> with
 *                             "version" (hostname, date, product_version,
 *                             product_brand, build_number, xapi_major,
 *                             xapi_minor, export_vsn) and "objects", an array
 *                             of {class, id, snapshot} (snapshot: the record
 *                             as get_record gives it, refs replaced by the
 *                             export's own ids "Ref:<n>" or OpaqueRef:NULL)
 *   Ref:<n>/<8-digit chunk>   1 MiB of disk <n> at chunk * 1 MiB (the last
 *                             one shorter); chunks that read as zeros are
 *                             left out except the first and the last
 *   Ref:<n>/<chunk>.xxhash    right after each chunk: its XXH64 as %016LX
 *   (or .checksum)            (older xapi: SHA-1 as 40 lowercase hex)
 *   two zero blocks
 * The whole stream may be gzip- or zstd-compressed (use_compression=true|
 * gzip|zstd on export; import recognises the magic bytes).
 *
 * This module knows the format, not the XenAPI: it hands ova.xml's text and
 * each verified chunk to its caller, which decides what they mean. Every
 * reader input may be hostile: names with "..", absolute names, members out
 * of order, chunks above 1 MiB, ova.xml above XVA_MAX_OVA_XML, decompression
 * errors - each a negative errno and a reason. Not thread-safe per object.
 */
#ifndef VESSEL_WIRE_XVA_H
#define VESSEL_WIRE_XVA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/strbuf.h"
#include "common/xval.h"

#define XVA_CHUNK_SIZE (1024 * 1024)
#define XVA_OVA_XML "ova.xml"
#define XVA_MAX_OVA_XML (64u << 20)
/* xapi's Xapi_globs.export_vsn: 2 = checksums inline, none at the end */
#define XVA_EXPORT_VSN 2

enum xva_compression { XVA_COMPRESS_NONE, XVA_COMPRESS_GZIP, XVA_COMPRESS_ZSTD };

/* use_compression as xapi reads it: "true" and "gzip" gzip, "zstd" zstd,
 * anything else (or NULL) none. */
enum xva_compression xva_compression_parse(const char *s);

/*==== Reading ====*/

/* Errors of the reader, beyond -ENOMEM and what callbacks return:
 *   -EINVAL    malformed (tar, compression, a hostile or unknown name)
 *   -ENOMSG    the first member is not ova.xml (xva_reader_unexpected())
 *   -EBADMSG   a chunk's checksum does not match (xva_reader_why())
 *   -EFBIG     a member larger than its kind may be
 */
struct xva_reader_ops {
    /* ova.xml's text (NUL-terminated, @len bytes); once, before any chunk. */
    int (*ova_xml)(void *opaque, const char *xml, size_t len);
    /* A chunk of disk @prefix ("Ref:3") at @chunk_no, its checksum checked
     * (unless the reader was made with verify false); len <= XVA_CHUNK_SIZE.
     * Chunks of one disk come in increasing order; a disk's chunks may be
     * interleaved with none of another's (each disk once). */
    int (*chunk)(void *opaque, const char *prefix, uint64_t chunk_no, const char *data,
                 size_t len);
};

struct xva_reader;

/* NULL when out of memory. With @verify false a checksum mismatch is logged
 * by nobody and passes (xapi's force=true). */
struct xva_reader *xva_reader_new(const struct xva_reader_ops *ops, void *opaque, bool verify);
void xva_reader_free(struct xva_reader *r);

/* The next @len bytes of the (possibly compressed) stream. 0 or an error
 * above; after an error every call returns it again. */
int xva_reader_feed(struct xva_reader *r, const char *data, size_t len);

/* The input is over. 0 when the archive is complete (an end-of-archive
 * block, or a stream that stops between members after ova.xml when
 * @boundary_ok); -EPIPE when it stopped early; an earlier error again. */
int xva_reader_finish(struct xva_reader *r, bool boundary_ok);

/* Why the last error: short, never NULL. */
const char *xva_reader_why(const struct xva_reader *r);
/* The name found where ova.xml was expected (after -ENOMSG), else "". */
const char *xva_reader_unexpected(const struct xva_reader *r);
/* Decompressed bytes read so far. */
uint64_t xva_reader_bytes(const struct xva_reader *r);

/* Whether @name may appear in an archive at all: not empty, not absolute,
 * no "." or ".." component, no empty component, no backslash or control
 * character. */
bool xva_name_is_safe(const char *name);

/* Splits "<prefix>/<digits>[<ext>]": true with *@prefix_len, *@chunk_no and
 * *@ext (points into @name: "" or ".checksum"/".xxhash"/other) when @name
 * has that shape. */
bool xva_chunk_name_parse(const char *name, size_t *prefix_len, uint64_t *chunk_no,
                          const char **ext);

/*==== ova.xml ====*/

struct xva_object {
    const char *cls;             /* borrowed from the tree */
    const char *id;
    const struct xval *snapshot; /* a struct */
};

struct xva_header {
    struct xval *tree;           /* owns everything below */
    int64_t xapi_major, xapi_minor, export_vsn;
    const char *hostname;        /* "" when absent */
    struct xva_object *objects;
    size_t n_objects;
};

/* Parses ova.xml. 0, or -EINVAL with @why (not XML-RPC, no "objects" array,
 * an object without a string class/id or a struct snapshot), -ENOMEM. Free
 * with xva_header_release(). */
int xva_header_parse(const char *xml, size_t len, struct xva_header *out, char *why,
                     size_t why_len);
void xva_header_release(struct xva_header *h);

/*==== Writing ====*/

struct xva_writer;

/* A writer whose (compressed) output accumulates in its buffer, to be taken
 * with xva_writer_output()/xva_writer_consume(). NULL when out of memory. */
struct xva_writer *xva_writer_new(enum xva_compression c);
void xva_writer_free(struct xva_writer *w);

/* Appends member @name with @len bytes of @data. 0, -ENOMEM, -EINVAL. */
int xva_writer_file(struct xva_writer *w, const char *name, const void *data, size_t len,
                    uint64_t mtime);
/* Appends chunk @chunk_no of disk @prefix and its .xxhash member. */
int xva_writer_chunk(struct xva_writer *w, const char *prefix, uint64_t chunk_no,
                     const void *data, size_t len);
/* Appends the end-of-archive blocks and flushes the compressor. */
int xva_writer_end(struct xva_writer *w);

/* The output not yet consumed. */
void xva_writer_output(const struct xva_writer *w, const char **data, size_t *len);
void xva_writer_consume(struct xva_writer *w, size_t n);

/* The checksum texts xapi writes: XXH64 as 16 uppercase hex digits, SHA-1 as
 * 40 lowercase ones (out NUL-terminated). */
void xva_xxhash_text(const void *data, size_t len, char out[17]);
void xva_sha1_text(const void *data, size_t len, char out[41]);

#endif
