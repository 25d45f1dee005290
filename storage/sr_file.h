/* storage/sr_file.h - the local directory SR driver ("ext" and "file" types).
 *
 * An SR of this kind is a directory of VHD files. It knows files, never XenAPI
 * records: api/ maps records to these calls and -errno to XenAPI errors.
 *
 * Names in the directory (invariant 1): a VDI is the file <vdi-uuid>.vhd, always
 * a chain's leaf; a hidden base - the read-only parent a snapshot or clone left
 * behind - is <base-uuid>.base.vhd; anything else (work files named .*.part,
 * intents .<uuid>.intent, a user's notes) is ignored by every function here
 * but sr_file_recover and sr_file_destroy.
 * Invariant 2: a base is never written again and is removed as soon as no file
 * in the directory names it as its parent (sr_file_vdi_destroy walks up).
 *
 * Threads: any thread may call any function; operations that change the
 * directory's names are serialised inside (one process-wide lock), reads of
 * data are not. Return values: 0 or a negative errno; sr_file_last_error()
 * then says why in a sentence (the VHD library's reason when it failed).
 */
#ifndef VESSEL_STORAGE_SR_FILE_H
#define VESSEL_STORAGE_SR_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* VHD sizes are whole 2 MiB blocks here (what tapdisk and SM create). */
#define SR_FILE_BLOCK_BYTES (2ull * 1024 * 1024)

/* Called with bytes done and total during long copies. */
typedef void sr_file_progress_fn(void *opaque, uint64_t done, uint64_t total);

/* One VHD found in the directory. */
struct sr_file_vhd {
    char uuid[37];           /* from the file name */
    bool hidden;             /* a base (<uuid>.base.vhd): not a VDI */
    uint64_t virtual_size;   /* bytes the guest sees */
    uint64_t physical_size;  /* bytes the file occupies */
    char parent_uuid[37];    /* the parent's uuid (from its file name), "" when none */
};

/* Why the last failing call of this thread failed; "" when none. */
const char *sr_file_last_error(void);

/* @size rounded up to whole VHD blocks; 0 stays 0. Saturates near UINT64_MAX. */
uint64_t sr_file_round_size(uint64_t size);

/* Make @path usable as an SR: with @create, create it (and missing parents,
 * mode 0700) when absent. Errors: -ENOTDIR, -ENOENT (absent and !@create),
 * -EACCES (not writable). */
int sr_file_attach(const char *path, bool create);

/* Marks @path as the directory of SR @uuid (the file .sr-uuid), so that
 * SR.probe finds which SR a directory holds after an SR.forget. */
int sr_file_mark(const char *path, const char *uuid);
/* The SR uuid marked in @path into @uuid: 1, or 0 when unmarked. Errors:
 * -ENOENT, -ENOTDIR. */
int sr_file_probe(const char *path, char uuid[37]);

/* The file system's size and free bytes under @path (statvfs). */
int sr_file_space(const char *path, uint64_t *size_bytes, uint64_t *free_bytes);

/* Remove every VHD (VDIs and bases) and work file of the SR, then the
 * directory itself when it is empty afterwards. */
int sr_file_destroy(const char *path);

/* Every VHD of the directory: *@out is an array of *@n, freed with free().
 * A file the library refuses to open is left out (the caller's VDI then looks
 * missing). */
int sr_file_scan(const char *path, struct sr_file_vhd **out, size_t *n);

/* As sr_file_scan, but a file of ours that the library refuses to open fails the
 * scan with its error (a file gone since the directory was read is left out).
 * For whoever deletes or folds a base because it counts no other child: a
 * child it could not read must not look absent. */
int sr_file_scan_whole(const char *path, struct sr_file_vhd **out, size_t *n);

/* What sr_file_scan says of VDI @uuid alone. -ENOENT when it has no file. */
int sr_file_vdi_info(const char *path, const char *uuid, struct sr_file_vhd *out);

/* The file of VDI @uuid into @out (PATH_MAX). -ENAMETOOLONG. */
int sr_file_vdi_path(const char *path, const char *uuid, char *out, size_t len);

/* vhd_chain_open of @file, a VDI of an SR of this driver (sr_file_vdi_path),
 * with the SR's names held still: the collector renames and removes parents,
 * and a chain must not be opened half before and half after. Use it for every
 * chain opened by name; the errors are vhd_chain_open's. */
struct vhd_chain;
int sr_file_chain_open(const char *file, unsigned flags, struct vhd_chain **out);

/* A new empty dynamic VHD of @size_bytes (rounded up to blocks) for VDI @uuid.
 * Errors: -EEXIST, -ENOSPC when the virtual size exceeds the free space,
 * -EFBIG beyond VHD_MAX_SIZE_BYTES, -EINVAL for 0. */
int sr_file_vdi_create(const char *path, const char *uuid, uint64_t size_bytes);

/* Delete VDI @uuid's file and every base that no file needs any more
 * (invariant 2). -ENOENT when absent; -EBUSY when another file has it as its
 * parent (made behind our back: we never make a VDI a parent). */
int sr_file_vdi_destroy(const char *path, const char *uuid);

/* O(1) snapshot (also clone: the files are the same): VDI @uuid's leaf becomes
 * the hidden base <base>.base.vhd, VDI @uuid gets a new empty child of it and
 * VDI @new_uuid another. Afterwards both read what @uuid read. The base's uuid
 * goes to @base_uuid_out. Crash-safe: @uuid's file names a sound chain at every
 * instant (the base is a hard link first; the new leaf replaces it by rename).
 * Errors: those of vhd_snapshot (-EMLINK when the chain would be too deep). */
int sr_file_vdi_snapshot(const char *path, const char *uuid, const char *new_uuid,
                         char base_uuid_out[37]);

/* The first half of a snapshot: VDI @uuid's leaf becomes the hidden base
 * <base>.base.vhd and the name gets a new empty child of it (no second VDI).
 * Used to move a VDI's writers off data the collector is about to fold, and
 * by live snapshots. Same guarantees and errors as sr_file_vdi_snapshot. */
int sr_file_vdi_split(const char *path, const char *uuid, char base_uuid_out[37]);

/* Undoes sr_file_vdi_snapshot/split of VDI @uuid (base @base_uuid, snapshot
 * VDI @new_uuid or NULL) when nothing was written to the new leaf yet: the
 * base is renamed back over the VDI's name. For a live snapshot whose disk
 * server could not be moved to the new chain. */
int sr_file_vdi_unsplit(const char *path, const char *uuid, const char *base_uuid,
                        const char *new_uuid);

/* Opens the files of VDI @uuid's chain for a disk server that cannot open
 * them itself: @fds[0] the leaf (read-write), then each parent (read-only),
 * *@n of them. Each link is checked by the library when the fds are used.
 * On failure nothing is left open. -ENOENT, -ELOOP (more than @max). */
int sr_file_vdi_chain_fds(const char *path, const char *uuid, int *fds, unsigned max,
                          unsigned *n);

/* ---- intents and crash recovery (sr_file_intent.c) ----
 * A VDI's file is made before its record commits. Whoever makes one
 * (VDI.create, clone, snapshot, copy) calls sr_file_intent_begin first and
 * sr_file_intent_end once the record committed or the file is gone again;
 * sr_file_recover, run while no such operation is in flight, then tells a
 * crashed creation's file from a user's disk by the intent alone. */

/* Records durably that VDI @uuid's file is about to be made in @path; @what
 * (one line, e.g. "clone <leaf-uuid>") is kept for the log. -errno. */
int sr_file_intent_begin(const char *path, const char *uuid, const char *what);
/* Drops the intent of @uuid (absent: nothing happens). */
void sr_file_intent_end(const char *path, const char *uuid);
/* Whether a creation of @uuid is unfinished (SR.scan must not adopt it). */
bool sr_file_intent_exists(const char *path, const char *uuid);

/* Whether VDI @uuid has a committed record. */
typedef bool sr_file_committed_fn(void *opaque, const char *uuid);
/* Told of each file recovery removed, with a few words why. */
typedef void sr_file_removed_fn(void *opaque, const char *file, const char *why);
/* Removes what a crash left in @path: the file of every creation whose intent
 * has no committed record, every intent, every work file (.*.part), every
 * base that is a hard link of a VDI's leaf (a snapshot stopped before its
 * rename). Only while no operation on the SR is in flight. A file with no
 * intent is never touched. *@n_removed (may be NULL) counts files removed. */
int sr_file_recover(const char *path, sr_file_committed_fn *committed, sr_file_removed_fn *removed,
                    void *opaque, unsigned *n_removed);

/* ---- garbage collection (sr_file_gc.c) ----
 * A base with exactly one child is a node no snapshot needs any more (its
 * other children were destroyed): the child's data is folded into it and the
 * child leaves the chain, so chains stay as short as the snapshots kept.
 * Two cases, as SM's collector has them:
 *  - interior: the child is a base too. It is never written, so folding it
 *    into its parent is safe while guests read through it (a reader never
 *    reads the parent's sectors the child holds); then its children are
 *    re-parented onto the parent and it is deleted (relink).
 *  - leaf: the child is a VDI. Folding is done with its writers stopped
 *    (merge), so the caller first makes a big leaf small: it splits it
 *    (sr_file_vdi_split, which turns its data into an interior case) and
 *    merges only a leaf holding little data. */

struct sr_file_gc_candidate {
    char parent[37];      /* the base with one child */
    char child[37];       /* its only child */
    bool child_is_leaf;   /* the child is a VDI (<child>.vhd), else a base */
    uint64_t child_data;  /* bytes of data blocks the child holds: what a fold copies */
};

/* Finds one candidate in @path, interior ones first; @skip (may be NULL) is
 * asked about each candidate's child and returns true for one that must not
 * be touched now. Returns 1 found, 0 none, or -errno. */
int sr_file_gc_find(const char *path, bool (*skip)(void *opaque, const char *child_uuid),
                    void *opaque, struct sr_file_gc_candidate *out);

/* Deletes every base that no file names as its parent any more (what a
 * destroy cut short by a crash leaves), and so on up; *@removed counts them. */
int sr_file_gc_remove_garbage(const char *path, unsigned *removed);

/* Interior case, long: folds base @c->child into @c->parent. Runs without
 * the names lock; readers of the chain go on. */
int sr_file_gc_fold(const char *path, const struct sr_file_gc_candidate *c,
                    sr_file_progress_fn *progress, void *opaque);

/* Interior case, after the fold: every child of @c->child now names
 * @c->parent as its parent and @c->child is deleted. The uuids of the VDIs
 * whose chains changed (the leaves below) go to *@leaves (free()), *@n of
 * them. -ESTALE when the directory changed so that the candidate no longer
 * holds (nothing done). */
int sr_file_gc_relink(const char *path, const struct sr_file_gc_candidate *c,
                      char (**leaves)[37], size_t *n);

/* Leaf case: VDI @c->child's data is folded into @c->parent, which then takes
 * the VDI's name (its chain is one shorter). Takes time in proportion to
 * @c->child_data, under the names lock: the caller has stopped the VDI's
 * writers. -ESTALE when the candidate no longer holds. */
int sr_file_gc_merge(const char *path, const struct sr_file_gc_candidate *c);

/* Grow VDI @uuid to @size_bytes (rounded up to blocks). -EINVAL to shrink,
 * -ENOSPC when the growth exceeds the free space. */
int sr_file_vdi_resize(const char *path, const char *uuid, uint64_t size_bytes);

/* A flattened full copy of VDI @uuid of SR @src_path as VDI @new_uuid of SR
 * @dst_path (a dynamic VHD without parents; zero blocks skipped). Written to a
 * work file renamed into place at the end, so a failure leaves nothing. */
int sr_file_vdi_copy(const char *src_path, const char *uuid, const char *dst_path,
                     const char *new_uuid, sr_file_progress_fn *progress, void *opaque);

/* VDI @uuid's content written into the existing VDI @dst_uuid of SR
 * @dst_path (at least as large: -EFBIG; what lies beyond @uuid's size is left
 * as it was). With @base_path/@base_uuid (a VDI of the same size that
 * @dst_uuid is known to hold already, e.g. an earlier snapshot), only the
 * 2 MiB blocks where @uuid differs from the base are written: an incremental
 * copy. Without, every block is written, all-zero ones as zeros (sparse). */
int sr_file_vdi_copy_into(const char *src_path, const char *uuid, const char *base_path,
                          const char *base_uuid, const char *dst_path, const char *dst_uuid,
                          sr_file_progress_fn *progress, void *opaque);

/* ---- changed block tracking logs (sr_file_cbt.c) ----
 * `<uuid>.cbtlog` beside a VDI's file: the 64 KiB blocks changed between one
 * snapshot of a disk and the next, linked oldest first (the file's header
 * says how the bits are kept). Every call returns 0 or a negative errno. */
#define SR_FILE_CBT_BLOCK (64u * 1024)
/* Whether @uuid has a log. */
bool sr_file_cbt_exists(const char *path, const char *uuid);
/* Starts tracking VDI @uuid (a live log, empty, linked to nothing); a log
 * that exists is kept. */
int sr_file_cbt_enable(const char *path, const char *uuid);
/* Drops @uuid's log; the log before it then ends the list. */
int sr_file_cbt_disable(const char *path, const char *uuid);
/* After VDI @uuid's files were snapshotted as @snap_uuid: the snapshot's
 * log takes the blocks changed since the previous snapshot, and @uuid's log
 * starts afresh after it. */
int sr_file_cbt_snapshot(const char *path, const char *uuid, const char *snap_uuid);
/* Drops @uuid's log (its VDI is destroyed), handing its blocks to the next
 * log of the list so that the list still covers them. */
int sr_file_cbt_remove(const char *path, const char *uuid);
/* Checks VDI @uuid's live log against its leaf: 1 when the leaf was replaced
 * outside this driver and the log was reset (its list cut), else 0. */
int sr_file_cbt_check(const char *path, const char *uuid);
/* The blocks changed from log @from to log @to (a later one of the same
 * list): *@bits (freed with free()) covers *@size bytes of @to's disk, bit i
 * the block at i * 64 KiB, most significant first. -ENOENT when @from's list
 * does not reach @to. */
int sr_file_cbt_changed(const char *path, const char *from, const char *to, uint8_t **bits,
                        uint64_t *size);

#endif
