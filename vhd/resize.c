/* vhd/resize.c - grow a fixed, dynamic or differencing image.
 *
 * Fixed: the new trailing footer is written at the new end first (the file is valid at
 * every step), then the old footer sector, now guest data, is zeroed.
 * Sparse, BAT large enough (max_bat_entries covers the new size): the new BAT slots are
 * cleared, then both footer copies get the new size.
 * Sparse, BAT too small: the metadata area must grow (BAT, batmap, locators), so the data
 * blocks lying where it will be are moved to the end of the file first, one at a time:
 * copy, fdatasync, then repoint the BAT entry in the old BAT (still valid), as in write.c.
 * Only then is the larger BAT written (its prefix equals the old BAT), then the batmap and
 * locators at their new places, then the header, then the footers. Shrinking is refused:
 * it would drop guest data. Facts: shared/spec/storage.md 1.3-1.8, 2.5 (`resize`).
 */
#include <errno.h>

#include "vhd/vhd_int.h"

static int
write_footers(struct vhd_image *img)
{
    int rc = vhd_footer_write(img, 0);
    if (rc < 0)
        return rc;
    img->footer_dirty = true;
    rc = vhd_image_sync_footer(img);
    if (rc < 0)
        return rc;
    return fdatasync(img->fd) == 0 ? 0 : -errno;
}

static int
resize_fixed(struct vhd_image *img, uint64_t new_size)
{
    uint64_t old = img->footer.curr_size;
    img->footer.curr_size = new_size;
    img->footer.geometry = vhd_geometry_chs(new_size);
    int rc = vhd_footer_write(img, new_size);
    if (rc == 0 && fdatasync(img->fd) != 0)
        rc = -errno;
    if (rc < 0)
        return rc;
    static const uint8_t zero[VHD_FOOTER_SIZE];
    rc = vhd_io_pwrite(img->fd, zero, sizeof(zero), old);
    if (rc == 0 && ftruncate(img->fd, (off_t)(new_size + VHD_FOOTER_SIZE)) != 0)
        rc = -errno;
    return rc == 0 && fdatasync(img->fd) != 0 ? -errno : rc;
}

/* Move block @b to the end of the file (see the ordering in the file comment). */
static int
move_block(struct vhd_image *img, uint32_t b, uint8_t *buf)
{
    size_t len = img->bitmap_bytes + img->block_size;
    uint64_t from = (uint64_t)img->bat[b] * VHD_SECTOR;
    uint64_t s = img->end_of_data / VHD_SECTOR;
    while ((s + img->bitmap_bytes / VHD_SECTOR) % 8 != 0)
        s++;
    if ((s * VHD_SECTOR + len) / VHD_SECTOR >= VHD_MAX_FILE_SECTORS)
        return -ENOSPC;
    int rc = vhd_io_pread(img->fd, buf, len, from);
    if (rc < 0)
        return rc;
    img->footer_dirty = true;
    if (ftruncate(img->fd, (off_t)img->end_of_data) != 0 ||
        ftruncate(img->fd, (off_t)(s * VHD_SECTOR + len)) != 0)
        return -errno;
    rc = vhd_io_pwrite(img->fd, buf, len, s * VHD_SECTOR);
    if (rc == 0 && fdatasync(img->fd) != 0)
        rc = -errno;
    if (rc < 0)
        return rc;
    img->bat[b] = (uint32_t)s;
    img->end_of_data = s * VHD_SECTOR + len;
    rc = vhd_bat_write_entry(img, b);
    return rc == 0 && fdatasync(img->fd) != 0 ? -errno : rc;
}

static int
grow_bat(struct vhd_image *img, uint32_t new_max)
{
    struct vhd_header *h = &img->header;
    uint64_t bat_bytes = vhd_round_up((uint64_t)new_max * 4, VHD_SECTOR);
    uint64_t batmap_off = h->table_offset + bat_bytes;
    uint64_t loc_off = batmap_off + VHD_SECTOR + (uint64_t)vhd_batmap_sectors(new_max) * VHD_SECTOR;
    bool diff = img->footer.type == VHD_TYPE_DIFF;
    uint64_t new_meta_end = loc_off + (diff ? 3 * 2 * VHD_SECTOR : 0);

    /* Locator data is read before anything can overwrite it. */
    uint8_t loc_data[3][2 * VHD_SECTOR] = {{0}};
    struct vhd_locator new_loc[8] = {{0}};
    size_t n_loc = 0;
    for (size_t i = 0; diff && i < 8 && n_loc < 3; i++) {
        struct vhd_locator *l = &h->loc[i];
        if (l->code == VHD_PLAT_NONE || l->data_len > 2 * VHD_SECTOR ||
            l->data_offset + l->data_len > img->file_size)
            continue;
        if (vhd_io_pread(img->fd, loc_data[n_loc], l->data_len, l->data_offset) < 0)
            continue;
        new_loc[n_loc] = (struct vhd_locator){.code = l->code, .data_space = 2 * VHD_SECTOR,
                                              .data_len = l->data_len,
                                              .data_offset = loc_off + n_loc * 2 * VHD_SECTOR};
        n_loc++;
    }
    _cleanup_free_ uint8_t *buf = malloc(img->bitmap_bytes + img->block_size);
    if (!buf)
        return -ENOMEM;
    /* Cut the old trailing footer now: moved blocks must land after the new metadata. */
    img->footer_dirty = true;
    if (ftruncate(img->fd, (off_t)img->end_of_data) != 0)
        return -errno;
    if (img->end_of_data < new_meta_end)
        img->end_of_data = new_meta_end;
    for (uint32_t b = 0; b < img->n_bat; b++) {
        if (img->bat[b] != VHD_BAT_UNUSED && (uint64_t)img->bat[b] * VHD_SECTOR < new_meta_end) {
            int rc = move_block(img, b, buf);
            if (rc < 0)
                return rc;
        }
    }
    /* The larger BAT: entries of the old BAT, then unused slots. */
    _cleanup_free_ uint8_t *bat = malloc(bat_bytes);
    if (!bat)
        return -ENOMEM;
    memset(bat, 0xFF, bat_bytes);
    for (uint32_t b = 0; b < img->n_bat; b++)
        vhd_be32_store(bat + (size_t)b * 4, img->bat[b]);
    int rc = vhd_io_pwrite(img->fd, bat, bat_bytes, h->table_offset);
    h->max_bat_entries = new_max;
    if (rc == 0)
        rc = vhd_batmap_write_empty(img->fd, h, new_max);
    for (size_t i = 0; rc == 0 && i < n_loc; i++) {
        uint8_t sec[2 * VHD_SECTOR] = {0};
        memcpy(sec, loc_data[i], new_loc[i].data_len);
        rc = vhd_io_pwrite(img->fd, sec, sizeof(sec), new_loc[i].data_offset);
    }
    if (rc == 0 && fdatasync(img->fd) != 0)
        rc = -errno;
    if (rc < 0)
        return rc;
    if (diff)
        memcpy(h->loc, new_loc, sizeof(new_loc));
    uint8_t hbuf[VHD_HEADER_SIZE];
    vhd_header_serialize(h, hbuf);
    rc = vhd_io_pwrite(img->fd, hbuf, sizeof(hbuf), img->footer.data_offset);
    return rc == 0 && fdatasync(img->fd) != 0 ? -errno : rc;
}

static int
resize_sparse(struct vhd_image *img, uint64_t new_size)
{
    uint64_t needed = (new_size + img->block_size - 1) / img->block_size;
    int rc;
    if (needed > img->header.max_bat_entries) {
        rc = grow_bat(img, (uint32_t)needed);
    } else {
        /* Clear slots between the old and the new size: they may hold garbage. */
        uint32_t old_n = img->n_bat;
        uint32_t *grown = realloc(img->bat, needed * sizeof(*grown));
        if (!grown)
            return -ENOMEM;
        img->bat = grown;
        for (uint32_t b = old_n; b < needed; b++)
            img->bat[b] = VHD_BAT_UNUSED;
        img->n_bat = (uint32_t)needed;
        rc = 0;
        for (uint32_t b = old_n; rc == 0 && b < needed; b += 128)
            rc = vhd_bat_write_entry(img, b);
        img->n_bat = old_n;     /* bitmaps[] still has old_n slots; image is closed next */
        if (rc == 0 && fdatasync(img->fd) != 0)
            rc = -errno;
    }
    if (rc < 0)
        return rc;
    img->footer.curr_size = new_size;
    img->footer.geometry = vhd_geometry_chs(new_size);
    return write_footers(img);
}

int
vhd_resize(const char *path, uint64_t size_bytes)
{
    if (size_bytes == 0 || size_bytes % VHD_SECTOR != 0)
        return vhd_fail(-EINVAL, "size must be a positive multiple of 512");
    if (size_bytes > VHD_MAX_SIZE_BYTES)
        return vhd_fail(-EFBIG, "size exceeds the VHD limit of 2040 GiB");
    struct vhd_chain *c;
    int rc = vhd_chain_open(path, VHD_OPEN_RDWR | VHD_OPEN_NO_PARENTS, &c);
    if (rc < 0)
        return rc;
    struct vhd_image *img = c->images[0];
    uint64_t cur = img->footer.curr_size;
    if (size_bytes < cur)
        rc = vhd_fail(-EINVAL, "shrinking is not supported (would drop data)");
    else if (size_bytes > cur)
        rc = vhd_image_is_sparse(img) ? resize_sparse(img, size_bytes)
                                      : resize_fixed(img, size_bytes);
    int rc2 = vhd_chain_close(c);
    return rc < 0 ? rc : rc2;
}
