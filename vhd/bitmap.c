/* vhd/bitmap.c - per-block sector bitmaps: load, cache, test runs, set bits.
 *
 * Each allocated block starts with a bitmap, one bit per data sector, MSB first, padded to
 * whole sectors; bit set = this file holds the sector (spec 1.5). Bitmaps are loaded on
 * first use and kept (invariant 3 of vhd_int.h); a per-block "full" flag lets reads of
 * full blocks skip bit scanning. Bits beyond the virtual size are ignored (row 17).
 * Facts: the VHD specification (Microsoft's Virtual Hard Disk Image Format Specification), 1.7.
 */
#include <errno.h>

#include "vhd/vhd_int.h"

bool
vhd_bitmap_all_set(const uint8_t *bm, uint32_t n_bits)
{
    uint32_t full = n_bits / 8;
    for (uint32_t i = 0; i < full; i++) {
        if (bm[i] != 0xFF)
            return false;
    }
    for (uint32_t b = full * 8; b < n_bits; b++) {
        if (!(bm[b / 8] & (0x80 >> (b % 8))))
            return false;
    }
    return true;
}

/* Bits of block @block that matter: the sectors of the block inside the virtual size. */
static uint32_t
bits_in_block(const struct vhd_image *img, uint32_t block)
{
    uint64_t vstart = (uint64_t)block * img->block_size;
    uint64_t data = img->footer.curr_size - vstart;
    if (data > img->block_size)
        data = img->block_size;
    return (uint32_t)((data + VHD_SECTOR - 1) / VHD_SECTOR);
}

/* *@out = the cached bitmap of allocated block @block (loaded now if needed).
 * Concurrent readers of one chain may call this at once (vhd/vhd.h): a bitmap is published
 * with one compare-and-swap after its bitmap_full flag is set, so a reader sees either no
 * bitmap or a complete one with its flag; the loser of a race frees its copy. Writers
 * (which modify cached bitmaps in place) run alone. */
int
vhd_bitmap_get(struct vhd_image *img, uint32_t block, const uint8_t **out)
{
    uint8_t *cur = __atomic_load_n(&img->bitmaps[block], __ATOMIC_ACQUIRE);
    if (!cur) {
        uint8_t *bm = malloc(img->bitmap_bytes);
        if (!bm)
            return -ENOMEM;
        int rc = vhd_io_pread(img->fd, bm, img->bitmap_bytes,
                              (uint64_t)img->bat[block] * VHD_SECTOR);
        if (rc < 0) {
            free(bm);
            return rc;
        }
        __atomic_store_n(&img->bitmap_full[block],
                         (uint8_t)vhd_bitmap_all_set(bm, bits_in_block(img, block)),
                         __ATOMIC_RELAXED);
        if (__atomic_compare_exchange_n(&img->bitmaps[block], &cur, bm, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE)) {
            cur = bm;
        } else {
            free(bm);           /* another reader published the same bytes first */
        }
    }
    *out = cur;
    return 0;
}

/* Length of the run of equal bits starting at bit @first, at most @limit bits; *@set gets
 * the bit's value. */
uint32_t
vhd_bitmap_run(const uint8_t *bm, uint32_t first, uint32_t limit, bool *set)
{
    bool v = bm[first / 8] & (0x80 >> (first % 8));
    uint8_t whole = v ? 0xFF : 0x00;
    uint32_t b = first + 1;
    uint32_t end = first + limit;
    while (b < end) {
        if (b % 8 == 0 && b + 8 <= end && bm[b / 8] == whole) {
            b += 8;
            continue;
        }
        if ((bool)(bm[b / 8] & (0x80 >> (b % 8))) != v)
            break;
        b++;
    }
    *set = v;
    return b - first;
}

/* Set bits [@first, @first + @count) of allocated block @block in the cache and, if
 * @write_now, write the bitmap sectors that changed. */
int
vhd_bitmap_set_range(struct vhd_image *img, uint32_t block, uint32_t first, uint32_t count,
                     bool write_now)
{
    const uint8_t *cur;
    int rc = vhd_bitmap_get(img, block, &cur);
    if (rc < 0)
        return rc;
    uint8_t *bm = img->bitmaps[block];
    uint32_t lo_changed = UINT32_MAX, hi_changed = 0;
    for (uint32_t b = first; b < first + count; b++) {
        uint8_t mask = (uint8_t)(0x80 >> (b % 8));
        if (!(bm[b / 8] & mask)) {
            bm[b / 8] |= mask;
            if (lo_changed == UINT32_MAX)
                lo_changed = b;
            hi_changed = b;
        }
    }
    if (lo_changed == UINT32_MAX)
        return 0;
    img->bitmap_full[block] = vhd_bitmap_all_set(bm, bits_in_block(img, block));
    if (!write_now)
        return 0;
    uint32_t s0 = lo_changed / 8 / VHD_SECTOR, s1 = hi_changed / 8 / VHD_SECTOR;
    return vhd_io_pwrite(img->fd, bm + (size_t)s0 * VHD_SECTOR, (size_t)(s1 - s0 + 1) * VHD_SECTOR,
                         (uint64_t)img->bat[block] * VHD_SECTOR + (uint64_t)s0 * VHD_SECTOR);
}
