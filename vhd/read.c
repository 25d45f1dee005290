/* vhd/read.c - what one image holds at an offset, and reading it.
 *
 * vhd_image_read_status() answers, for a byte range inside one image, how long the run is
 * over which the image uniformly holds data or not: a fixed disk holds everything, a sparse
 * one nothing in an unallocated block and, in an allocated block, what the sector bitmap
 * says (runs split where a bit changes). chain.c walks images with it (spec 1.7).
 * Facts: the VHD specification (Microsoft's Virtual Hard Disk Image Format Specification), 1.5, 1.7.
 */
#include <errno.h>

#include "vhd/vhd_int.h"

int
vhd_image_read_status(struct vhd_image *img, uint64_t off, uint64_t len, uint64_t *run,
                      bool *present)
{
    if (!vhd_image_is_sparse(img)) {
        *run = len;
        *present = true;
        return 0;
    }
    uint32_t block = (uint32_t)(off / img->block_size);
    uint64_t in_block = off % img->block_size;
    uint64_t to_block_end = img->block_size - in_block;
    uint64_t limit = len < to_block_end ? len : to_block_end;
    if (img->bat[block] == VHD_BAT_UNUSED) {
        *run = limit;
        *present = false;
        return 0;
    }
    const uint8_t *bm;
    int rc = vhd_bitmap_get(img, block, &bm);
    if (rc < 0)
        return rc;
    if (__atomic_load_n(&img->bitmap_full[block], __ATOMIC_RELAXED)) {   /* see bitmap.c */
        *run = limit;
        *present = true;
        return 0;
    }
    uint32_t first = (uint32_t)(in_block / VHD_SECTOR);
    uint64_t last_byte = in_block + limit - 1;
    uint32_t n_bits = (uint32_t)(last_byte / VHD_SECTOR) - first + 1;
    bool set;
    uint32_t bits = vhd_bitmap_run(bm, first, n_bits, &set);
    uint64_t run_end = (uint64_t)(first + bits) * VHD_SECTOR;   /* within the block */
    uint64_t r = run_end - in_block;
    *run = r < limit ? r : limit;
    *present = set;
    return 0;
}

/* Read @len bytes at @off that vhd_image_read_status() reported present (one run). */
int
vhd_image_read_data(struct vhd_image *img, void *buf, uint64_t off, size_t len)
{
    if (!vhd_image_is_sparse(img))
        return vhd_io_pread(img->fd, buf, len, off);
    uint32_t block = (uint32_t)(off / img->block_size);
    uint64_t pos = (uint64_t)img->bat[block] * VHD_SECTOR + img->bitmap_bytes +
                   off % img->block_size;
    return vhd_io_pread(img->fd, buf, len, pos);
}
