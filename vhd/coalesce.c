/* vhd/coalesce.c - merge a differencing image's data into its parent.
 *
 * Every sector the child holds (bitmap bit set) is copied into the parent, which is opened
 * read-write for the purpose (with its own parents, so a differencing parent records the
 * sectors in its bitmap) and first grown if the child is larger. The child is only read:
 * if the copy stops half-way, the chain still reads the same bytes (the child shadows every
 * sector copied so far), so a coalesce can simply be run again. Afterwards the child adds
 * nothing and may be deleted; children of the child would have to be re-parented, which is
 * the caller's business (vhd_reparent()). Only safe when the parent has no other child.
 * The parent's new blocks are allocated in batches (write.c): data of up to 64 blocks, one
 * fdatasync, their BAT sectors, one fdatasync - never a BAT entry before its data.
 * Online: other processes may keep the child's chain (and so the parent) open read-only
 * meanwhile; they never read the parent's sectors that the child holds, and nothing else of
 * the parent changes. Facts: shared/spec/storage.md 2.4.
 */
#include <errno.h>

#include "vhd/vhd_int.h"

#define COALESCE_CHUNK (2u * 1024 * 1024)

static int
copy_present(struct vhd_chain *child, struct vhd_chain *parent, vhd_progress_fn *progress,
             void *opaque)
{
    struct vhd_image *img = child->images[0];
    uint64_t size = img->footer.curr_size, off = 0, done = 0, total = 0;
    for (uint32_t i = 0; i < img->n_bat; i++)
        total += img->bat[i] != VHD_BAT_UNUSED ? img->block_size : 0;
    _cleanup_free_ uint8_t *buf = malloc(COALESCE_CHUNK);
    if (!buf)
        return -ENOMEM;
    while (off < size) {
        uint64_t run;
        bool present;
        int rc = vhd_image_read_status(img, off, size - off, &run, &present);
        if (rc < 0)
            return rc;
        if (present) {
            for (uint64_t end = off + run; off < end;) {
                size_t n = end - off < COALESCE_CHUNK ? (size_t)(end - off) : COALESCE_CHUNK;
                rc = vhd_image_read_data(img, buf, off, n);
                if (rc == 0)
                    rc = vhd_chain_write(parent, buf, off, n, false);
                if (rc < 0)
                    return rc;
                off += n;
                done += n;
            }
        } else {
            off += run;
        }
        if (off % img->block_size == 0 && progress)
            progress(opaque, done < total ? done : total, total);
    }
    if (progress)
        progress(opaque, total, total);
    return vhd_chain_flush(parent);
}

int
vhd_coalesce(const char *child_path, vhd_progress_fn *progress, void *opaque)
{
    struct vhd_chain *full;
    int rc = vhd_chain_open(child_path, VHD_OPEN_RDONLY, &full);
    if (rc < 0)
        return rc;
    if (full->images[0]->footer.type != VHD_TYPE_DIFF) {
        vhd_chain_close(full);
        return vhd_fail(-EINVAL, "%s is not a differencing disk", child_path);
    }
    _cleanup_free_ char *parent_path = strdup(full->images[1]->path);
    uint64_t child_size = vhd_chain_size(full);
    uint64_t parent_size = full->images[1]->footer.curr_size;
    vhd_chain_close(full);
    if (!parent_path)
        return -ENOMEM;
    if (child_size > parent_size) {
        rc = vhd_resize(parent_path, child_size);
        if (rc < 0)
            return rc;
    }
    struct vhd_chain *child, *parent;
    rc = vhd_chain_open(child_path, VHD_OPEN_RDONLY | VHD_OPEN_NO_PARENTS, &child);
    if (rc < 0)
        return rc;
    rc = vhd_chain_open(parent_path, VHD_OPEN_RDWR, &parent);
    if (rc < 0) {
        vhd_chain_close(child);
        return rc;
    }
    vhd_image_batch_begin(parent->images[0]);     /* one fdatasync per 64 blocks */
    rc = copy_present(child, parent, progress, opaque);
    int rc2 = vhd_chain_close(parent);
    vhd_chain_close(child);
    return rc < 0 ? rc : rc2;
}
