/* vhd/vhd.h - the VHD library: fixed, dynamic and differencing images and their chains.
 *
 * Contract, for every function below:
 *  - Returns 0 (or a documented non-negative value) on success and a negative errno on failure.
 *    The library never prints, never exits, never aborts on anything a file can contain.
 *  - A struct vhd_chain is not thread-safe, with one exception: vhd_chain_read(),
 *    vhd_chain_block_status(), vhd_chain_size(), vhd_chain_depth() and vhd_chain_info() may
 *    run concurrently with each other on one chain (they only pread and publish cached
 *    bitmaps atomically); every other call on a chain needs it to itself (`vhd serve` holds
 *    a read-write lock: reads shared, everything else exclusive). Chains are independent.
 *  - Offsets and lengths are in bytes of the virtual disk unless a name says otherwise.
 *  - Errors a hostile or damaged file produces: -EINVAL (structure invalid: bad cookie,
 *    checksum, field out of range, BAT entry past EOF or overlapping), -EFBIG (size beyond
 *    VHD limits), -ELOOP (parent loop or chain deeper than VHD_MAX_CHAIN_DEPTH), -ENOENT
 *    (missing parent), -ESTALE (parent UUID differs from the child's record), -ENOSPC (the
 *    32-bit BAT cannot address more file), -EROFS (write to an image opened read-only),
 *    -EIO / other errno from the system calls.
 * Files are written in the layout of the VHD specification (Microsoft's Virtual Hard Disk Image Format Specification): footer copy at 0,
 * header at 512, BAT at 1536, batmap after the BAT, creator "tap\0" 1.3, 2 MiB blocks with
 * 4 KiB-aligned data, three parent locators for differencing disks.
 */
#ifndef VESSEL_VHD_H
#define VESSEL_VHD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VHD_SECTOR 512u
#define VHD_BLOCK_SIZE_DEFAULT (2u * 1024 * 1024)
/* Largest virtual size we create or open: 2040 GiB (QEMU's and SM's cap, spec 1.9). */
#define VHD_MAX_SIZE_BYTES (2040ull * 1024 * 1024 * 1024)
/* Parents followed before a chain is refused with -ELOOP (spec 5 row 19). */
#define VHD_MAX_CHAIN_DEPTH 64
/* vhd_snapshot() refuses to make a chain deeper than this (SM's limit, spec 2.2). */
#define VHD_MAX_SNAPSHOT_DEPTH 30

enum vhd_type {
    VHD_TYPE_FIXED = 2,
    VHD_TYPE_DYNAMIC = 3,
    VHD_TYPE_DIFF = 4,
};

/* Flags of vhd_chain_open(). */
enum {
    VHD_OPEN_RDONLY = 0,
    VHD_OPEN_RDWR = 1 << 0,        /* the leaf only; parents are always opened read-only */
    VHD_OPEN_NO_PARENTS = 1 << 1,  /* open the file alone: unresolved sectors read as zeros */
    VHD_OPEN_HEAD_FOOTER = 1 << 2, /* accept the footer copy at 0 when the trailing footer is
                                    * missing or damaged (spec 5 row 2). Implied by every
                                    * read-only open (the file may be mid-append, vhd/image.c);
                                    * a read-write open never does */
};

struct vhd_chain;

/* ---- create ---------------------------------------------------------------------------- */

/* Create a new fixed or dynamic VHD of @size_bytes (a multiple of 512, 1 sector ..
 * VHD_MAX_SIZE_BYTES) at @path; fails with -EEXIST if @path exists. The file is durable on
 * return. Errors: -EINVAL (size not a multiple of 512 or 0, bad type), -EFBIG (too large). */
int vhd_create(const char *path, uint64_t size_bytes, enum vhd_type type);

/* Create @child_path, an empty differencing VHD whose parent is @parent_path. The parent
 * must be in the same directory as the child (parents are resolved by file name inside the
 * child's directory, spec 5 row 22) and the new chain no deeper than VHD_MAX_SNAPSHOT_DEPTH.
 * Of the parent chain, footers, headers, UUID links, loops and depth are checked, not the
 * BATs (so the cost does not grow with disk size times depth): every open of the new chain
 * validates them as usual. The parent is left untouched: from now on it must only be read
 * (every chain opens parents read-only). Errors: -EEXIST, -EXDEV (different directory),
 * -EMLINK (chain too deep), and those of vhd_chain_open() on the parent. */
int vhd_snapshot(const char *parent_path, const char *child_path);

/* ---- open, read, write ------------------------------------------------------------------ */

/* Open the VHD at @path and, unless VHD_OPEN_NO_PARENTS, its parents. Every image is
 * validated (spec 6.3) before this returns. An image opened read-only (every parent, the
 * leaf without VHD_OPEN_RDWR) may be extended by its writer meanwhile (a served leaf, a
 * base being folded into): it opens on the footer copy at 0 if the trailing footer is not
 * there, with the blocks its BAT named when read. On success *@out is freed with
 * vhd_chain_close(). */
int vhd_chain_open(const char *path, unsigned flags, struct vhd_chain **out);

/* Why the last failed open (or check, snapshot, resize...) in this thread failed, as one
 * sentence; "" when no reason was recorded. Valid until the next call into the library. */
const char *vhd_last_error(void);

/* Open an already-open file descriptor as a single image (no parents are followed; a
 * differencing image reads unresolved sectors as zeros). The chain takes a dup of @fd. */
int vhd_chain_open_fd(int fd, unsigned flags, struct vhd_chain **out);

/* Open a chain from descriptors the caller already holds, without any path lookup (so it
 * works inside `vhd serve`'s sandbox): @fds[0] is the leaf, @fds[i + 1] the parent of
 * @fds[i], @n images in all. The chain takes dups (the caller still owns and closes its
 * descriptors). @flags as vhd_chain_open(): VHD_OPEN_RDWR applies to the leaf only (whose
 * descriptor must then be O_RDWR, else -EBADF); parents are used read-only even when their
 * descriptor is writable; VHD_OPEN_NO_PARENTS is refused (-EINVAL: use vhd_chain_open_fd).
 * Every image is validated as by vhd_chain_open() and every link checked: the child must
 * be differencing and record the parent's footer UUID (-ESTALE), no file twice (-ELOOP),
 * the last image not differencing (-ENOENT: its parent is missing). Errors also: -EINVAL
 * (@n == 0), -ELOOP (@n > VHD_MAX_CHAIN_DEPTH), -EBADF (a bad descriptor). The header's
 * parent file names are not compared: the caller chose the files. On success *@out is
 * freed with vhd_chain_close(); vhd_last_error() says why a link was refused. */
int vhd_chain_open_fds(const int *fds, unsigned n, unsigned flags, struct vhd_chain **out);

/* Write back what is pending (the trailing footer), fdatasync if writable, close every
 * file and free @c. Returns the first error met while flushing; @c is freed regardless.
 * NULL is a no-op. */
int vhd_chain_close(struct vhd_chain *c);

/* Virtual size in bytes of the leaf. */
uint64_t vhd_chain_size(const struct vhd_chain *c);

/* The virtual size of the image at @path from its footer alone, without reading its
 * header or BAT: the footer copy at offset 0 (dynamic and differencing images, written
 * once at creation, so stable while another process extends the file), else the
 * trailing footer (fixed images). For a disk server that must not read an image's
 * metadata while another process still writes it (a live migration's standby).
 * Errors: -EINVAL (no valid footer), I/O errors. */
int vhd_peek_size(const char *path, uint64_t *size);

/* Read @len bytes at @off through the chain (spec 1.7). Errors: -EINVAL if the range
 * leaves the disk; I/O errors. Any alignment is accepted. */
int vhd_chain_read(struct vhd_chain *c, void *buf, uint64_t off, size_t len);

/* Write @len bytes at @off into the leaf, allocating blocks as needed with the ordering
 * of vhd/write.c. Unaligned heads and tails are read-modify-written. If @fua, the data and
 * its metadata are durable on return. Errors: -EROFS, -EINVAL (range), -ENOSPC. */
int vhd_chain_write(struct vhd_chain *c, const void *buf, uint64_t off, size_t len, bool fua);

/* Make the range read as zeros. In a dynamic root, unallocated blocks stay unallocated;
 * elsewhere zeros are written. Same errors as vhd_chain_write(). */
int vhd_chain_zero(struct vhd_chain *c, uint64_t off, uint64_t len, bool fua);

/* Make every completed write durable (leaf fdatasync, footer rewritten). */
int vhd_chain_flush(struct vhd_chain *c);

/* Describe the extent starting at @off, at most @len bytes long: *@run_len receives its
 * length (> 0) and *@allocated whether any image in the chain holds data there (false =
 * reads as zeros). Granularity is the 512-byte sector. Errors: -EINVAL (range). */
int vhd_chain_block_status(struct vhd_chain *c, uint64_t off, uint64_t len, uint64_t *run_len,
                           bool *allocated);

/* ---- information ------------------------------------------------------------------------ */

struct vhd_info {
    enum vhd_type type;
    uint64_t size_bytes;          /* virtual size (footer current_size) */
    uint64_t file_size_bytes;     /* bytes the file occupies (st_size) */
    uint32_t block_size;          /* 0 for fixed disks */
    uint32_t max_bat_entries;     /* 0 for fixed disks */
    uint32_t allocated_blocks;    /* 0 for fixed disks */
    uint8_t uuid[16];
    uint8_t parent_uuid[16];      /* zero unless differencing */
    char parent_name[256];        /* UTF-8 parent file name, "" unless differencing */
    char creator[5];              /* creator application, NUL-terminated */
    uint32_t creator_version;
    uint32_t cylinders, heads, sectors_per_track;
    bool hidden;
    bool head_footer_used;        /* the trailing footer was bad; the copy at 0 was used */
    unsigned depth;               /* images in the chain, 1 for the file alone */
};

/* Fill @out from image @index of the chain (0 = leaf). Errors: -EINVAL bad index. */
int vhd_chain_info(const struct vhd_chain *c, unsigned index, struct vhd_info *out);

/* Number of images in the chain (leaf included). */
unsigned vhd_chain_depth(const struct vhd_chain *c);

/* Format @uuid as 36 characters plus NUL into @out. */
void vhd_uuid_format(const uint8_t uuid[16], char out[37]);

/* ---- check and repair ------------------------------------------------------------------- */

#define VHD_CHECK_MAX_PROBLEMS 32

struct vhd_check_report {
    unsigned n_problems;                          /* problems found (may exceed the array) */
    char problems[VHD_CHECK_MAX_PROBLEMS][160];   /* one sentence each, NUL-terminated */
    unsigned n_repaired;                          /* vhd_repair(): fixes applied */
    char repaired[8][160];
};

/* Check the file at @path and its parents against every structural rule (spec 2.5 and 5):
 * both footers, header, BAT bounds and overlaps, batmap, parent locators, parent links.
 * Returns 0 if sound, -EINVAL if problems were found (listed in @report), or another
 * -errno if the file could not be examined at all. */
int vhd_check(const char *path, struct vhd_check_report *report);

/* Repair what is safely repairable in @path alone: a missing, damaged or differing trailing
 * footer or head copy (from whichever copy is valid, the trailing one preferred), a batmap
 * that is invalid (rewritten with every bit clear: always safe), bytes after the footer.
 * BAT or data damage is never "repaired" (that would lose data silently). Returns 0 when the
 * file is sound afterwards, -EINVAL when problems remain (listed), other -errno on I/O. */
int vhd_repair(const char *path, struct vhd_check_report *report);

/* ---- long operations -------------------------------------------------------------------- */

/* Called now and then with work done and total work, in bytes. */
typedef void vhd_progress_fn(void *opaque, uint64_t done, uint64_t total);

/* Copy every sector the differencing image @child_path holds into its parent, which is
 * opened read-write for the purpose and grown if the child is larger. Afterwards the child
 * adds nothing to the chain and may be deleted. Safe only when the parent has no other
 * child (the caller's rule, as in SM). Errors: -EINVAL (child not differencing), open and
 * I/O errors. */
int vhd_coalesce(const char *child_path, vhd_progress_fn *progress, void *opaque);

/* Make the differencing image @child_path name @new_parent_path as its parent: the
 * header's parent UUID, parent timestamp (the new parent's mtime) and parent name are
 * rewritten, and the parent locators the file has room for (each needs 1 KiB of locator
 * space inside the metadata) become the MacX, W2ku and W2ru locators vhd_snapshot()
 * writes; other locator slots are cleared. Only the header and locator sectors are
 * written (never a block, the BAT or a footer), in place, then fdatasync: durable on
 * return, and safe while `vhd serve` has @child_path open read-write (it never writes
 * those). The caller guarantees that the new parent chain reads the same as the old one
 * for every sector the child does not hold (e.g. the old parent was coalesced into it).
 * Checked here: the child is differencing (-EINVAL) and in the same directory as the new
 * parent (-EXDEV); the new parent opens as a sound chain (its errors), is not the child
 * nor has it in its chain (-ELOOP), is not larger than the child (-EINVAL), and the new
 * chain is at most VHD_MAX_CHAIN_DEPTH deep (-ELOOP). A crash during the one 1 KiB
 * header write can tear it (as with `vhd-util modify -p`); a crash before it leaves the
 * old parent named (the locators may already name the new one: `check` reports it). */
int vhd_reparent(const char *child_path, const char *new_parent_path);

/* Set or clear the hidden flag of the image at @path (blktap's footer byte 85: 1 = an
 * internal chain node, not a user-visible VDI, spec 1.2): both footer copies of a dynamic or
 * differencing disk (the one of a fixed disk) are rewritten with their checksum, then
 * fdatasync: durable on return. Not while another process has @path open read-write (the
 * trailing footer moves as blocks are allocated). Errors: those of vhd_chain_open() on
 * @path alone, I/O errors. */
int vhd_set_hidden(const char *path, bool hidden);

/* Grow the image at @path to @size_bytes (a multiple of 512). Shrinking is refused with
 * -EINVAL. A dynamic or differencing image whose BAT is too small has its first data blocks
 * moved to the end of the file to make room. */
int vhd_resize(const char *path, uint64_t size_bytes);

/* Convert: copy the whole virtual disk of @c to a new file @out_path, as a sparse raw file
 * (@to_vhd false) or a new dynamic VHD without parents (@to_vhd true). Blocks reading as
 * zero are skipped. -EEXIST if @out_path exists. */
int vhd_convert_to(struct vhd_chain *c, const char *out_path, bool to_vhd,
                   vhd_progress_fn *progress, void *opaque);

/* Import a raw file @raw_path as a new dynamic VHD @out_path (zero blocks skipped). */
int vhd_convert_from_raw(const char *raw_path, const char *out_path, vhd_progress_fn *progress,
                         void *opaque);

#endif /* VESSEL_VHD_H */
