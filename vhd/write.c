/* vhd/write.c - writing into the leaf: block allocation, bitmaps, durability order.
 *
 * A write that allocates a block keeps the file readable after a crash at any point:
 *  (1) the old trailing footer is cut off and the file extended over the new block with
 *      zeros (ftruncate twice), so no stale byte is ever inside a block and the BAT can
 *      never name bytes past EOF;
 *  (2) data, then bitmap are written, then fdatasync: a BAT entry is written only after
 *      its block's bitmap and data are durable;
 *  (3) then the one BAT sector naming the block; then the trailing footer after the block.
 * A crash before (3) completes leaves an unreferenced block and no trailing footer: the
 * next read-only open falls back to the footer copy at 0 and `vhd repair` rewrites the
 * trailing one. The head copy never changes during writes. vhd_image_write() is the only
 * writer of BAT entries and bitmaps at run time.
 *
 * Bitmaps: in a dynamic (root) image a new block gets an all-ones bitmap, because every
 * sector of it is zero until written (by (1)), exactly what a clear bit would mean; this
 * keeps later writes free of bitmap updates and matches QEMU's files. In a differencing
 * image only the written sectors' bits are set (clear bits fall through to the parent);
 * a write into an allocated block writes data first, then the changed bitmap sector.
 * Unaligned heads and tails are read-modify-written through the chain.
 *
 * Batched allocation (vhd_image_batch_begin(), used by coalesce, which allocates thousands
 * of blocks): steps (1) and (2) minus the fdatasync run per block, the BAT entry is set in
 * memory only and the block queued; vhd_image_batch_commit() (every 64 blocks, at flush and
 * at close) then does one fdatasync, writes the queued BAT sectors, the footer, and one
 * more fdatasync. Rule (2) holds: no BAT entry reaches the disk before its data is durable.
 * A crash mid-batch leaves unreferenced blocks and no trailing footer, as (3) describes.
 * Facts: the VHD specification (Microsoft's Virtual Hard Disk Image Format Specification), 1.6, 3.3.
 */
#include <errno.h>

#include "vhd/vhd_int.h"

/* Sector where a new block's bitmap goes: at or after end_of_data, placed so that the data
 * part starts on a 4 KiB boundary (tapdisk's layout, spec 1.5). */
static uint64_t
next_block_sector(const struct vhd_image *img)
{
    uint64_t s = img->end_of_data / VHD_SECTOR;
    uint64_t bm_sectors = img->bitmap_bytes / VHD_SECTOR;
    while ((s + bm_sectors) % 8 != 0)
        s++;
    return s;
}

static int
allocate_block(struct vhd_image *img, uint32_t block, const void *buf, uint64_t in_block,
               size_t len)
{
    uint64_t sector = next_block_sector(img);
    uint64_t start = sector * VHD_SECTOR;
    uint64_t end = start + img->bitmap_bytes + img->block_size;
    if (end / VHD_SECTOR > VHD_MAX_FILE_SECTORS - 1)
        return -ENOSPC;     /* a 32-bit BAT entry cannot name it (spec 5 row 16) */
    uint8_t *bm = calloc(1, img->bitmap_bytes);
    if (!bm)
        return -ENOMEM;
    bool full = img->footer.type != VHD_TYPE_DIFF || len == img->block_size;
    if (full) {
        memset(bm, 0xFF, img->bitmap_bytes);
    } else {
        for (uint64_t b = in_block / VHD_SECTOR; b < (in_block + len) / VHD_SECTOR; b++)
            bm[b / 8] |= (uint8_t)(0x80 >> (b % 8));
    }
    int rc = 0;
    if (ftruncate(img->fd, (off_t)img->end_of_data) != 0 ||     /* (1) */
        ftruncate(img->fd, (off_t)end) != 0)
        rc = -errno;
    if (rc == 0)
        rc = vhd_io_pwrite(img->fd, buf, len, start + img->bitmap_bytes + in_block);
    if (rc == 0)
        rc = vhd_io_pwrite(img->fd, bm, img->bitmap_bytes, start);
    if (rc == 0 && !img->batching && fdatasync(img->fd) != 0)   /* (2) */
        rc = -errno;
    if (rc < 0) {
        free(bm);
        img->footer_dirty = true;   /* the footer was cut: put it back at end_of_data */
        return rc;
    }
    img->bat[block] = (uint32_t)sector;
    img->bitmaps[block] = bm;
    img->bitmap_full[block] = full ? 1 : (uint8_t)vhd_bitmap_all_set(bm, img->sectors_per_block);
    img->end_of_data = end;
    img->file_size = end;
    img->footer_dirty = true;
    if (img->batching) {
        img->pending[img->n_pending++] = block;
        if (img->n_pending < sizeof(img->pending) / sizeof(img->pending[0]))
            return 0;
        return vhd_image_batch_commit(img);
    }
    rc = vhd_bat_write_entry(img, block);                       /* (3) */
    if (rc < 0)
        return rc;
    return vhd_image_sync_footer(img);
}

void
vhd_image_batch_begin(struct vhd_image *img)
{
    img->batching = true;
}

/* Make the queued blocks part of the image: data durable, then their BAT sectors, then the
 * footer, then durable. Batching stays on; a no-op without queued blocks. */
int
vhd_image_batch_commit(struct vhd_image *img)
{
    if (img->n_pending == 0)
        return 0;
    if (fdatasync(img->fd) != 0)                                /* (2) */
        return -errno;
    uint32_t last_sector = UINT32_MAX;
    for (uint32_t i = 0; i < img->n_pending; i++) {
        uint32_t sector = img->pending[i] / 128;  /* 128 entries per BAT sector */
        if (sector == last_sector)
            continue;   /* written whole from memory just now */
        int rc = vhd_bat_write_entry(img, img->pending[i]);    /* (3) */
        if (rc < 0)
            return rc;
        last_sector = sector;
    }
    img->n_pending = 0;
    int rc = vhd_image_sync_footer(img);
    if (rc < 0)
        return rc;
    return fdatasync(img->fd) == 0 ? 0 : -errno;
}

/* Write @len bytes at @off (both sector-aligned, inside the disk) into @img. */
int
vhd_image_write(struct vhd_image *img, const void *buf, uint64_t off, size_t len,
                bool full_block_hint)
{
    if (!img->writable)
        return -EROFS;
    if (!vhd_image_is_sparse(img))
        return vhd_io_pwrite(img->fd, buf, len, off);
    const uint8_t *p = buf;
    while (len > 0) {
        uint32_t block = (uint32_t)(off / img->block_size);
        uint64_t in_block = off % img->block_size;
        size_t piece = img->block_size - in_block;
        if (piece > len)
            piece = len;
        int rc;
        if (img->bat[block] == VHD_BAT_UNUSED) {
            rc = allocate_block(img, block, p, in_block, piece);
        } else {
            rc = vhd_io_pwrite(img->fd, p, piece,
                               (uint64_t)img->bat[block] * VHD_SECTOR + img->bitmap_bytes +
                                   in_block);
            if (rc == 0 && img->footer.type == VHD_TYPE_DIFF && !img->bitmap_full[block])
                rc = vhd_bitmap_set_range(img, block, (uint32_t)(in_block / VHD_SECTOR),
                                          (uint32_t)(piece / VHD_SECTOR), true);
        }
        if (rc < 0)
            return rc;
        p += piece;
        off += piece;
        len -= piece;
    }
    (void)full_block_hint;
    return 0;
}

static int
check_writable(struct vhd_chain *c, uint64_t off, uint64_t len)
{
    if (!c->images[0]->writable)
        return -EROFS;
    uint64_t size = vhd_chain_size(c);
    if (off > size || len > size - off)
        return -EINVAL;
    return 0;
}

/* Read-modify-write the sector containing [@off, @off + @len) (len < 512, no crossing). */
static int
write_partial_sector(struct vhd_chain *c, const uint8_t *buf, uint64_t off, size_t len)
{
    uint8_t sec[VHD_SECTOR];
    uint64_t base = off / VHD_SECTOR * VHD_SECTOR;
    int rc = vhd_chain_read(c, sec, base, VHD_SECTOR);
    if (rc < 0)
        return rc;
    memcpy(sec + (off - base), buf, len);
    return vhd_image_write(c->images[0], sec, base, VHD_SECTOR, false);
}

int
vhd_chain_write(struct vhd_chain *c, const void *buf, uint64_t off, size_t len, bool fua)
{
    int rc = check_writable(c, off, len);
    if (rc < 0)
        return rc;
    const uint8_t *p = buf;
    if (off % VHD_SECTOR != 0 && len > 0) {
        size_t head = VHD_SECTOR - off % VHD_SECTOR;
        if (head > len)
            head = len;
        rc = write_partial_sector(c, p, off, head);
        if (rc < 0)
            return rc;
        p += head;
        off += head;
        len -= head;
    }
    size_t middle = len / VHD_SECTOR * VHD_SECTOR;
    if (middle > 0) {
        rc = vhd_image_write(c->images[0], p, off, middle, false);
        if (rc < 0)
            return rc;
        p += middle;
        off += middle;
        len -= middle;
    }
    if (len > 0) {
        rc = write_partial_sector(c, p, off, len);
        if (rc < 0)
            return rc;
    }
    return fua ? vhd_chain_flush(c) : 0;
}

int
vhd_chain_flush(struct vhd_chain *c)
{
    struct vhd_image *leaf = c->images[0];
    if (!leaf->writable)
        return 0;
    int rc = vhd_image_batch_commit(leaf);
    if (rc < 0)
        return rc;
    rc = vhd_image_sync_footer(leaf);
    if (rc < 0)
        return rc;
    return fdatasync(leaf->fd) == 0 ? 0 : -errno;
}

static const uint8_t zero_chunk[64 * 1024];

int
vhd_chain_zero(struct vhd_chain *c, uint64_t off, uint64_t len, bool fua)
{
    int rc = check_writable(c, off, len);
    if (rc < 0)
        return rc;
    while (len > 0) {
        /* Skip what already reads as zeros everywhere in the chain. */
        uint64_t run;
        bool allocated;
        rc = vhd_chain_block_status(c, off, len, &run, &allocated);
        if (rc < 0)
            return rc;
        if (!allocated) {
            off += run;
            len -= run;
            continue;
        }
        while (run > 0) {
            size_t n = run < sizeof(zero_chunk) ? (size_t)run : sizeof(zero_chunk);
            rc = vhd_chain_write(c, zero_chunk, off, n, false);
            if (rc < 0)
                return rc;
            off += n;
            len -= n;
            run -= n;
        }
    }
    return fua ? vhd_chain_flush(c) : 0;
}
