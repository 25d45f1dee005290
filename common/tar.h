/* common/tar.h - tar archives, written member by member and read as a stream.
 *
 * The writer makes POSIX ustar headers (what xapi's XVA export writes: a
 * 512-byte header, the data, zeros to the next 512-byte boundary, and two
 * zero blocks at the end). The reader is push-mode: bytes arrive in pieces of
 * any size (an HTTP body, a decompressor's output) and the reader calls back
 * at each member's head, for each piece of its data, and at its end. It
 * accepts ustar, old-style (v7) and GNU headers, GNU long names ('L') and a
 * pax header's "path" ('x'); it refuses links, devices and anything else a
 * file tree would need, since an XVA holds only regular files. Sizes may be
 * octal or GNU base-256. A header whose checksum is wrong is malformed.
 *
 * No I/O, no allocation beyond the reader itself; not thread-safe per reader.
 */
#ifndef VESSEL_COMMON_TAR_H
#define VESSEL_COMMON_TAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TAR_BLOCK 512
/* Longest member name the reader hands out (a GNU or pax long name). */
#define TAR_NAME_MAX 1024

/* Writes a ustar header for regular file @name of @size bytes into @out.
 * Names longer than 100 bytes are split into ustar's prefix and name at a
 * '/'. 0, or -ENAMETOOLONG when the name cannot be split so, -EFBIG when
 * @size does not fit 11 octal digits (8 GiB). */
int tar_header_encode(char out[TAR_BLOCK], const char *name, uint64_t size, uint64_t mtime);

/* Zero bytes that follow @size bytes of data to the next block boundary. */
size_t tar_pad_len(uint64_t size);

/* What the reader calls. Each returns 0 to go on or a negative errno, which
 * stops the reader and comes back from tar_reader_feed(). */
struct tar_reader_ops {
    /* A regular file member begins: @name (NUL-terminated, as stored: the
     * caller judges it), @size bytes of data follow. */
    int (*member)(void *opaque, const char *name, uint64_t size);
    /* The next piece of the current member's data (len > 0). */
    int (*data)(void *opaque, const char *data, size_t len);
    /* The current member's data is complete. */
    int (*member_end)(void *opaque);
};

struct tar_reader;

/* A new reader calling @ops with @opaque; NULL when out of memory. Free with
 * tar_reader_free(). */
struct tar_reader *tar_reader_new(const struct tar_reader_ops *ops, void *opaque);
void tar_reader_free(struct tar_reader *r);

/* Feeds the next @len bytes of the archive. 0; -EINVAL for a malformed or
 * refused header (tar_reader_why() says which); or what a callback returned.
 * After an error the reader refuses everything with the same error. Bytes
 * after the end-of-archive block are ignored. */
int tar_reader_feed(struct tar_reader *r, const char *data, size_t len);

enum tar_end {
    TAR_END_MARKED,   /* an end-of-archive block was read */
    TAR_END_BOUNDARY, /* no end block, but the input stopped between members */
    TAR_END_TRUNCATED /* the input stopped inside a header or a member */
};
/* Where the input stopped. */
enum tar_end tar_reader_end(const struct tar_reader *r);

/* Why the last -EINVAL: a short human text, never NULL. */
const char *tar_reader_why(const struct tar_reader *r);

#endif
