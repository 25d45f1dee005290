/* vhd/image.c - open, validate and close one VHD file.
 *
 * Opening is where hostile input stops: the trailing footer is read (the 511-byte
 * variant too), then, for dynamic and differencing disks, the header, the BAT and the
 * metadata extents (BAT, batmap, locators) from which "metadata ends here" is computed, and
 * the BAT is validated against them (bat.c). Only the trailing footer is trusted for
 * anything writable; the copy at 0 serves read-only opens when the trailing one is missing
 * or damaged (spec 5 rows 2-3), and never decides that a file is dynamic (row 6).
 *
 * Read-only opens meet files that their one writer is extending: a leaf `vhd serve`
 * writes (a VDI exported or its changed blocks listed while its guest runs) and a base
 * the collector folds a child into (vhd_coalesce(), while live snapshots and exports open
 * chains through that base). An allocation cuts the trailing footer and puts it back
 * after the new block (write.c (1)-(3)); a batched one (coalesce) leaves the file without
 * it for up to 64 blocks. Such a file is whole up to its last complete footer: the
 * header never changes, the copy at 0 neither (written at creation, an appending writer
 * never touches it), and every BAT entry on disk names a block the file already holds,
 * data written first. So a reader takes the copy at 0 when the trailing footer is not there,
 * and checks the BAT it read against the size the file has once it was read (the file
 * never shrinks below a block the BAT names: a cut only removes the footer after the
 * last block). A reader never writes, and the sectors a fold writes later are sectors
 * the child above holds, so the view it opened reads right for as long as it is open.
 * Facts: the VHD specification (Microsoft's Virtual Hard Disk Image Format Specification), 5 rows 1-16, 24-25.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>

#include "vhd/vhd_int.h"

void
vhd_image_free(struct vhd_image *img)
{
    if (!img)
        return;
    if (img->bitmaps) {
        for (uint32_t i = 0; i < img->n_bat; i++)
            free(img->bitmaps[i]);
    }
    free(img->bitmaps);
    free(img->bitmap_full);
    free(img->bat);
    free(img->path);
    if (img->fd >= 0)
        close(img->fd);
    free(img);
}

static void
vhd_image_freep(struct vhd_image **p)
{
    vhd_image_free(*p);
}

static _Thread_local char last_error[160];

const char *
vhd_last_error(void)
{
    return last_error;
}

/* Record why an open failed (for vhd_last_error()) and return @rc. */
int
vhd_fail(int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof(last_error), fmt, ap);
    va_end(ap);
    return rc;
}

bool
vhd_image_is_sparse(const struct vhd_image *img)
{
    return img->footer.type != VHD_TYPE_FIXED;
}

/* Read and validate the trailing footer (or the 511-byte one of old Virtual PC). */
static int
read_trailing_footer(struct vhd_image *img)
{
    uint8_t buf[VHD_FOOTER_SIZE];
    uint64_t size = img->file_size;
    int rc = vhd_io_pread(img->fd, buf, VHD_FOOTER_SIZE, size - VHD_FOOTER_SIZE);
    if (rc < 0)
        return rc;
    rc = vhd_footer_parse(buf, &img->footer);
    if (rc < 0 && size % VHD_SECTOR == 511) {
        memset(buf, 0, sizeof(buf));
        rc = vhd_io_pread(img->fd, buf, 511, size - 511);
        if (rc == 0)
            rc = vhd_footer_parse(buf, &img->footer);
    }
    if (rc < 0)
        return vhd_fail(rc, "trailing footer: bad cookie or checksum");
    rc = vhd_footer_validate(&img->footer);
    if (rc < 0)
        return vhd_fail(rc, "trailing footer: invalid type %u or size %llu", img->footer.type,
                        (unsigned long long)img->footer.curr_size);
    return 0;
}

static int
read_head_footer(int fd, struct vhd_footer *out)
{
    uint8_t buf[VHD_FOOTER_SIZE];
    int rc = vhd_io_pread(fd, buf, VHD_FOOTER_SIZE, 0);
    if (rc < 0)
        return rc;
    rc = vhd_footer_parse(buf, out);
    if (rc < 0)
        return rc;
    if (out->type == VHD_TYPE_FIXED)
        return -EINVAL;     /* sector 0 of a fixed disk is guest data (row 6) */
    return vhd_footer_validate(out);
}

/* Whether two footers describe one image: what no writer changes after creation (the size
 * grows, the hidden flag flips, both in place). */
static bool
footers_same_image(const struct vhd_footer *a, const struct vhd_footer *b)
{
    return a->type == b->type && a->data_offset == b->data_offset &&
           memcmp(a->uuid, b->uuid, sizeof(a->uuid)) == 0;
}

/* Raise meta_end over the batmap and locator areas that lie inside the file. Invalid ones
 * do not count (check reports them) but a block may then not overlap what they claim. */
static void
extend_meta_end(struct vhd_image *img)
{
    uint64_t eof = img->file_size;
    uint64_t hoff = vhd_batmap_header_offset(&img->header);
    uint8_t hdr[VHD_SECTOR];
    if (hoff + VHD_SECTOR <= eof && vhd_io_pread(img->fd, hdr, sizeof(hdr), hoff) == 0 &&
        memcmp(hdr, VHD_COOKIE_BATMAP, 8) == 0) {
        uint64_t moff = vhd_be64_load(hdr + 8);
        uint64_t mend = moff + (uint64_t)vhd_be32_load(hdr + 16) * VHD_SECTOR;
        if (moff >= hoff && mend <= eof && mend > img->meta_end)
            img->meta_end = mend;
        else if (hoff + VHD_SECTOR > img->meta_end)
            img->meta_end = hoff + VHD_SECTOR;
    }
    if (img->footer.type != VHD_TYPE_DIFF)
        return;
    for (size_t i = 0; i < 8; i++) {
        const struct vhd_locator *l = &img->header.loc[i];
        if (l->code == VHD_PLAT_NONE)
            continue;
        uint64_t space = l->data_space < VHD_SECTOR ? (uint64_t)l->data_space * VHD_SECTOR
                                                    : l->data_space;
        if (l->data_offset < eof && space <= eof - l->data_offset &&
            l->data_offset + space > img->meta_end)
            img->meta_end = l->data_offset + space;
    }
}

static int
open_sparse(struct vhd_image *img, unsigned flags, char *why, size_t why_size)
{
    uint64_t doff = img->footer.data_offset;
    if (doff + VHD_HEADER_SIZE > img->file_size - VHD_FOOTER_SIZE)
        return vhd_fail(-EINVAL, "header offset %llu outside the file", (unsigned long long)doff);
    uint8_t buf[VHD_HEADER_SIZE];
    int rc = vhd_io_pread(img->fd, buf, sizeof(buf), doff);
    if (rc < 0)
        return rc;
    rc = vhd_header_parse(buf, &img->header);
    if (rc < 0)
        return vhd_fail(rc, "dynamic header: bad cookie or checksum");
    rc = vhd_header_validate(&img->header, &img->footer, img->file_size);
    if (rc < 0)
        return vhd_fail(rc, "dynamic header: invalid block size, table offset or BAT size");
    img->block_size = img->header.block_size;
    img->sectors_per_block = img->block_size / VHD_SECTOR;
    img->bitmap_bytes = (uint32_t)vhd_round_up((img->sectors_per_block + 7) / 8, VHD_SECTOR);
    img->n_bat = (uint32_t)((img->footer.curr_size + img->block_size - 1) / img->block_size);
    img->meta_end = vhd_batmap_header_offset(&img->header);
    if (doff + VHD_HEADER_SIZE > img->meta_end)
        img->meta_end = doff + VHD_HEADER_SIZE;
    if (flags & VHD_OPEN_LINKS_ONLY)
        return 0;       /* header validated; the BAT is neither loaded nor trusted */
    extend_meta_end(img);
    rc = vhd_bat_load(img);
    if (rc < 0)
        return rc;
    if (!img->writable) {
        /* entries appended since the fstat() end within the file's size now (file header) */
        struct stat st;
        if (fstat(img->fd, &st) != 0)
            return -errno;
        if ((uint64_t)st.st_size != img->file_size) {
            img->file_size = (uint64_t)st.st_size;
            img->grew_while_opened = true;
        }
    }
    rc = vhd_bat_validate(img, why, why_size);
    if (rc < 0)
        return vhd_fail(rc, "%s", why);
    img->bitmaps = calloc(img->n_bat ? img->n_bat : 1, sizeof(*img->bitmaps));
    img->bitmap_full = calloc(img->n_bat ? img->n_bat : 1, 1);
    if (!img->bitmaps || !img->bitmap_full)
        return -ENOMEM;
    /* A writable image keeps its trailing footer at end_of_data (invariant 2); when the
     * file has slack after the last block the footer moves there at the next sync. */
    if (!img->head_footer_used && img->file_size - VHD_FOOTER_SIZE != img->end_of_data)
        img->footer_dirty = true;
    return 0;
}

/* Open the file behind @fd (taken over: closed on failure too). */
int
vhd_image_open_fd(int fd, unsigned flags, const char *path, struct vhd_image **out)
{
    last_error[0] = '\0';
    _cleanup_(vhd_image_freep) struct vhd_image *img = calloc(1, sizeof(*img));
    if (!img) {
        close(fd);
        return -ENOMEM;
    }
    img->fd = fd;
    img->writable = flags & VHD_OPEN_RDWR;
    if (path && !(img->path = strdup(path)))
        return -ENOMEM;
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return vhd_fail(-EINVAL, "not a regular file");     /* row 24 */
    img->dev = st.st_dev;
    img->ino = st.st_ino;
    img->file_size = (uint64_t)st.st_size;
    if (img->file_size < VHD_FOOTER_SIZE)
        return vhd_fail(-EINVAL, "file truncated: %llu bytes", /* row 1 */
                        (unsigned long long)img->file_size);

    /* a writer needs the footer it will move (invariant 2); a reader may meet a file being
     * extended (file header) */
    struct vhd_footer head;
    bool head_ok = !img->writable && read_head_footer(fd, &head) == 0;
    int rc = read_trailing_footer(img);
    /* While a block is appended the file may end with that block's last sector: guest
     * data, which may look like a footer. In a sparse image sector 0 is metadata, so a
     * trailing "footer" naming another image than the copy at 0 is not this file's. */
    if (rc == 0 && head_ok && img->footer.type != VHD_TYPE_FIXED &&
        !footers_same_image(&img->footer, &head))
        rc = vhd_fail(-EINVAL, "trailing footer: uuid, type or header offset differ from the "
                               "copy at 0");
    if (rc < 0) {
        if (!head_ok)
            return rc;
        img->footer = head;
        img->head_footer_used = true;
    }
    if (img->writable && memcmp(img->footer.creator_app, "tap", 4) == 0 &&
        img->footer.creator_version > VHD_CREATOR_VERSION)
        return vhd_fail(-ENOTSUP, "tap creator version newer than 1.3: read-only"); /* row 25 */
    if (img->footer.type == VHD_TYPE_FIXED) {
        if (img->footer.curr_size > img->file_size - VHD_FOOTER_SIZE)
            return vhd_fail(-EINVAL, "fixed disk of %llu bytes in a file of %llu",
                            (unsigned long long)img->footer.curr_size,
                            (unsigned long long)img->file_size);
    } else {
        char why[160];
        rc = open_sparse(img, flags, why, sizeof(why));
        if (rc < 0)
            return rc;
    }
    *out = img;
    img = NULL;
    return 0;
}

/* Rewrite the trailing footer at end_of_data if it moved (invariant 2). The file is cut
 * just after it, so nothing stale follows the footer. */
int
vhd_image_sync_footer(struct vhd_image *img)
{
    if (!img->writable || !img->footer_dirty)
        return 0;
    uint64_t off = vhd_image_is_sparse(img) ? img->end_of_data : img->footer.curr_size;
    int rc = vhd_footer_write(img, off);
    if (rc < 0)
        return rc;
    if (ftruncate(img->fd, (off_t)(off + VHD_FOOTER_SIZE)) != 0)
        return -errno;
    img->file_size = off + VHD_FOOTER_SIZE;
    img->footer_dirty = false;
    return 0;
}
