/* vhd/bat.c - the block allocation table of a dynamic or differencing VHD.
 *
 * The BAT maps virtual block i to the sector where the block's bitmap starts, or
 * VHD_BAT_UNUSED. It is read whole at open (only the entries covering the virtual size, a
 * count already bounded by the file size through vhd_header_validate), then checked once:
 * every block after all metadata, before the trailing footer, below the 2 TiB limit of a
 * 32-bit sector number, and overlapping no other block (sort + one sweep, O(n log n)).
 * It is written back one 512-byte sector at a time, only after the block it names is
 * durable (ordering: vhd/write.c). Layout: the VHD specification (Microsoft's Virtual Hard Disk Image Format Specification), 5 rows 10-16.
 */
#include <errno.h>
#include <stdio.h>

#include "vhd/vhd_int.h"

int
vhd_bat_load(struct vhd_image *img)
{
    size_t bytes = (size_t)img->n_bat * 4;
    _cleanup_free_ uint8_t *raw = malloc(bytes ? bytes : 1);
    img->bat = malloc(bytes ? bytes : 1);
    if (!raw || !img->bat)
        return -ENOMEM;
    int rc = vhd_io_pread(img->fd, raw, bytes, img->header.table_offset);
    if (rc < 0)
        return rc;
    for (uint32_t i = 0; i < img->n_bat; i++)
        img->bat[i] = vhd_be32_load(raw + (size_t)i * 4);
    return 0;
}

/* End (byte offset) of the block whose bitmap starts at sector @entry. The last block of a
 * disk whose size is not a block multiple only needs the sectors that hold virtual data. */
uint64_t
vhd_bat_block_end(const struct vhd_image *img, uint32_t entry)
{
    return (uint64_t)entry * VHD_SECTOR + img->bitmap_bytes + img->block_size;
}

static uint64_t
block_end_for(const struct vhd_image *img, uint32_t block)
{
    uint64_t start = (uint64_t)img->bat[block] * VHD_SECTOR;
    uint64_t vstart = (uint64_t)block * img->block_size;
    uint64_t data = img->footer.curr_size - vstart;
    if (data > img->block_size)
        data = img->block_size;
    return start + img->bitmap_bytes + vhd_round_up(data, VHD_SECTOR);
}

struct bat_span {
    uint64_t start;
    uint64_t end;
    uint32_t block;
};

static int
span_compare(const void *a, const void *b)
{
    const struct bat_span *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* Invariant (1) of vhd_int.h. Sets img->end_of_data. -EINVAL with @why on violation. */
int
vhd_bat_validate(struct vhd_image *img, char *why, size_t why_size)
{
    bool footer_at_end = !img->head_footer_used && !img->grew_while_opened;
    uint64_t limit = img->file_size - (footer_at_end ? VHD_FOOTER_SIZE : 0);
    uint32_t n_alloc = 0;
    for (uint32_t i = 0; i < img->n_bat; i++)
        n_alloc += img->bat[i] != VHD_BAT_UNUSED;
    _cleanup_free_ struct bat_span *spans = malloc((n_alloc ? n_alloc : 1) * sizeof(*spans));
    if (!spans)
        return -ENOMEM;
    uint32_t n = 0;
    for (uint32_t i = 0; i < img->n_bat; i++) {
        if (img->bat[i] == VHD_BAT_UNUSED)
            continue;
        uint64_t start = (uint64_t)img->bat[i] * VHD_SECTOR;
        uint64_t end = block_end_for(img, i);
        if (start < img->meta_end) {
            snprintf(why, why_size, "BAT entry %u (sector %u) points into metadata", i,
                     img->bat[i]);
            return -EINVAL;
        }
        if (end > limit || end > VHD_MAX_FILE_SECTORS * VHD_SECTOR) {
            snprintf(why, why_size, "BAT entry %u (sector %u) runs past the end of the file", i,
                     img->bat[i]);
            return -EINVAL;
        }
        spans[n++] = (struct bat_span){start, end, i};
    }
    qsort(spans, n, sizeof(*spans), span_compare);
    uint64_t eod = vhd_round_up(img->meta_end, VHD_SECTOR);
    for (uint32_t k = 0; k < n; k++) {
        if (k > 0 && spans[k].start < spans[k - 1].end) {
            snprintf(why, why_size, "BAT entries %u and %u overlap", spans[k - 1].block,
                     spans[k].block);
            return -EINVAL;
        }
        if (spans[k].end > eod)
            eod = spans[k].end;
    }
    img->end_of_data = eod;
    return 0;
}

/* Write the 512-byte BAT sector holding entry @block from memory. Entries past n_bat
 * (slots beyond the virtual size) are written unused. */
int
vhd_bat_write_entry(struct vhd_image *img, uint32_t block)
{
    uint8_t sec[VHD_SECTOR];
    uint32_t first = block / 128 * 128;
    for (uint32_t k = 0; k < 128; k++) {
        uint32_t i = first + k;
        vhd_be32_store(sec + k * 4, i < img->n_bat ? img->bat[i] : VHD_BAT_UNUSED);
    }
    return vhd_io_pwrite(img->fd, sec, sizeof(sec),
                         img->header.table_offset + (uint64_t)first * 4);
}
