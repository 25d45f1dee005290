/* vhd/batmap.c - blktap's batmap: one "block is full" bit per block, after the BAT.
 *
 * We write creator "tap\0" 1.3 (spec 1.2.2), so we must keep a valid batmap: a 512-byte
 * header (cookie "tdbatmap", map offset, map size in sectors, version 1.2, checksum) right
 * after the sector-padded BAT, and the map in the following sectors. We only ever write
 * maps with every bit clear: a clear bit merely makes a reader consult the block's bitmap,
 * while a stale set bit would hide parent data (spec 1.8). Reading, the batmap is a hint we
 * never need; `check` validates it. Facts: shared/spec/storage.md 1.8, 5 row 18.
 */
#include <errno.h>
#include <stdio.h>

#include "vhd/vhd_int.h"

uint64_t
vhd_batmap_header_offset(const struct vhd_header *h)
{
    return h->table_offset + vhd_round_up((uint64_t)h->max_bat_entries * 4, VHD_SECTOR);
}

uint32_t
vhd_batmap_sectors(uint32_t max_bat_entries)
{
    uint64_t bytes = ((uint64_t)max_bat_entries + 7) / 8;
    return (uint32_t)((bytes + VHD_SECTOR - 1) / VHD_SECTOR);
}

/* Write an all-clear batmap for a header @h: header sector then map sectors. */
int
vhd_batmap_write_empty(int fd, const struct vhd_header *h, uint32_t n_blocks)
{
    uint64_t hoff = vhd_batmap_header_offset(h);
    uint32_t sectors = vhd_batmap_sectors(n_blocks);
    uint8_t hdr[VHD_SECTOR] = {0};
    memcpy(hdr, VHD_COOKIE_BATMAP, 8);
    vhd_be64_store(hdr + 8, hoff + VHD_SECTOR);
    vhd_be32_store(hdr + 16, sectors);
    vhd_be32_store(hdr + 20, VHD_BATMAP_VERSION);
    vhd_be32_store(hdr + 24, ~0u);   /* NOT of the sum of an all-zero map */
    int rc = vhd_io_pwrite(fd, hdr, sizeof(hdr), hoff);
    if (rc < 0)
        return rc;
    _cleanup_free_ uint8_t *map = calloc(sectors, VHD_SECTOR);
    if (!map)
        return -ENOMEM;
    return vhd_io_pwrite(fd, map, (size_t)sectors * VHD_SECTOR, hoff + VHD_SECTOR);
}

/* Validate the batmap of a "tap" image: 0 if sound or absent by rule (not tap >= 1.2),
 * -EINVAL with @why filled otherwise. */
int
vhd_batmap_check(const struct vhd_image *img, char *why, size_t why_size)
{
    const struct vhd_footer *f = &img->footer;
    if (memcmp(f->creator_app, "tap", 4) != 0 || f->creator_version < 0x00010002u)
        return 0;
    uint64_t hoff = vhd_batmap_header_offset(&img->header);
    uint8_t hdr[VHD_SECTOR];
    if (hoff + VHD_SECTOR > img->file_size || vhd_io_pread(img->fd, hdr, sizeof(hdr), hoff) < 0) {
        snprintf(why, why_size, "batmap header at %llu is outside the file",
                 (unsigned long long)hoff);
        return -EINVAL;
    }
    if (memcmp(hdr, VHD_COOKIE_BATMAP, 8) != 0) {
        snprintf(why, why_size, "batmap cookie missing at offset %llu", (unsigned long long)hoff);
        return -EINVAL;
    }
    uint64_t moff = vhd_be64_load(hdr + 8);
    uint32_t sectors = vhd_be32_load(hdr + 16);
    uint32_t version = vhd_be32_load(hdr + 20);
    uint32_t checksum = vhd_be32_load(hdr + 24);
    if (version != VHD_BATMAP_VERSION && version != 0x00010001u) {
        snprintf(why, why_size, "batmap version 0x%08x unknown", version);
        return -EINVAL;
    }
    if (moff % VHD_SECTOR != 0 || sectors == 0 || sectors > VHD_MAX_FILE_SECTORS / 8 ||
        moff + (uint64_t)sectors * VHD_SECTOR > img->file_size - VHD_FOOTER_SIZE ||
        (uint64_t)sectors * VHD_SECTOR * 8 < img->n_bat) {
        snprintf(why, why_size, "batmap offset %llu / size %u sectors invalid",
                 (unsigned long long)moff, sectors);
        return -EINVAL;
    }
    _cleanup_free_ uint8_t *map = malloc((size_t)sectors * VHD_SECTOR);
    if (!map)
        return -ENOMEM;
    int rc = vhd_io_pread(img->fd, map, (size_t)sectors * VHD_SECTOR, moff);
    if (rc < 0)
        return rc;
    uint32_t sum = 0;
    for (size_t i = 0; i < (size_t)sectors * VHD_SECTOR; i++)
        sum += version == VHD_BATMAP_VERSION ? map[i] : (uint32_t)(int32_t)(int8_t)map[i];
    if (~sum != checksum) {
        snprintf(why, why_size, "batmap checksum 0x%08x, expected 0x%08x", checksum, ~sum);
        return -EINVAL;
    }
    for (uint32_t b = 0; b < img->n_bat; b++) {
        if ((map[b / 8] & (0x80 >> (b % 8))) && img->bat[b] == VHD_BAT_UNUSED) {
            snprintf(why, why_size, "batmap marks unallocated block %u full", b);
            return -EINVAL;
        }
    }
    return 0;
}
