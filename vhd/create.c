/* vhd/create.c - new fixed, dynamic and differencing (snapshot) images.
 *
 * Layout written (spec 6.1, tapdisk's): fixed = [data][footer]. Dynamic and differencing =
 * [footer copy][header at 512][BAT at 1536, sector-padded][batmap header][batmap]
 * [differencing only: MacX, W2ku, W2ru locators, one sector each][footer]. The first data
 * block is appended at end of metadata by write.c. Creator "tap\0" 1.3 with a valid
 * (all-clear) batmap, so QEMU and vhd-util agree on current_size (spec 1.2.2). All the
 * metadata goes out in one pwrite, then the trailing footer, then fsync: a create is
 * O(BAT size), a few milliseconds even for 2040 GiB.
 * A snapshot is an empty differencing child of a sound parent in the same directory; the
 * parent is not modified. Facts: shared/spec/storage.md 1.2-1.8, 2.2, 6.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>

#include "vhd/vhd_int.h"

static int
check_size(uint64_t size_bytes)
{
    if (size_bytes == 0 || size_bytes % VHD_SECTOR != 0)
        return vhd_fail(-EINVAL, "size %llu is not a positive multiple of 512",
                        (unsigned long long)size_bytes);
    if (size_bytes > VHD_MAX_SIZE_BYTES)
        return vhd_fail(-EFBIG, "size %llu exceeds the VHD limit of 2040 GiB",
                        (unsigned long long)size_bytes);
    return 0;
}

static int
create_fixed(int fd, uint64_t size_bytes)
{
    struct vhd_image img = {.fd = fd};
    vhd_footer_init(&img.footer, VHD_TYPE_FIXED, size_bytes);
    if (ftruncate(fd, (off_t)size_bytes) != 0)
        return -errno;
    return vhd_footer_write(&img, size_bytes);
}

/* Platform codes of the locators we write, in slot order. */
static const uint32_t locator_codes[3] = {VHD_PLAT_MACX, VHD_PLAT_W2KU, VHD_PLAT_W2RU};

/* Encode locator data of platform @code for @parent_name into @dst (VHD_SECTOR * 2 bytes,
 * zero-filled by the caller); returns the data length. */
static size_t
locator_encode(uint32_t code, const char *parent_name, uint8_t *dst)
{
    char path[1100];
    if (code == VHD_PLAT_MACX) {
        snprintf(path, sizeof(path), "file://./%s", parent_name);
        size_t n = strlen(path);
        memcpy(dst, path, n);
        return n;
    }
    snprintf(path, sizeof(path), ".\\%s", parent_name);
    return vhd_utf16_encode(path, dst, VHD_SECTOR * 2, false);
}

/* Fill the three locators of @h, placed from @off on, and write their data into @meta. */
static void
add_locators(struct vhd_header *h, uint8_t *meta, uint64_t off, const char *parent_name)
{
    for (size_t i = 0; i < 3; i++) {
        size_t n = locator_encode(locator_codes[i], parent_name, meta + off);
        h->loc[i] = (struct vhd_locator){.code = locator_codes[i], .data_space = VHD_SECTOR * 2,
                                         .data_len = (uint32_t)n, .data_offset = off};
        off += VHD_SECTOR * 2;
    }
}

static int
create_sparse(int fd, uint64_t size_bytes, enum vhd_type type, const struct vhd_image *parent,
              const char *parent_name)
{
    struct vhd_image img = {.fd = fd};
    vhd_footer_init(&img.footer, type, size_bytes);
    struct vhd_header *h = &img.header;
    memcpy(h->cookie, VHD_COOKIE_HEADER, 8);
    h->data_offset = VHD_DATA_OFFSET_NONE;
    h->table_offset = VHD_SECTOR + VHD_HEADER_SIZE;
    h->version = VHD_HEADER_VERSION;
    h->block_size = VHD_BLOCK_SIZE_DEFAULT;
    h->max_bat_entries = (uint32_t)((size_bytes + h->block_size - 1) / h->block_size);
    uint64_t bat_bytes = vhd_round_up((uint64_t)h->max_bat_entries * 4, VHD_SECTOR);
    uint64_t batmap_off = h->table_offset + bat_bytes;
    uint64_t meta_end =
        batmap_off + VHD_SECTOR + (uint64_t)vhd_batmap_sectors(h->max_bat_entries) * VHD_SECTOR;
    if (type == VHD_TYPE_DIFF)
        meta_end += 3 * 2 * VHD_SECTOR;
    _cleanup_free_ uint8_t *meta = calloc(1, meta_end);
    if (!meta)
        return -ENOMEM;
    if (type == VHD_TYPE_DIFF) {
        memcpy(h->parent_uuid, parent->footer.uuid, 16);
        struct stat st;
        if (fstat(parent->fd, &st) == 0 && st.st_mtime > (time_t)VHD_EPOCH_OFFSET)
            h->parent_timestamp = (uint32_t)((uint64_t)st.st_mtime - VHD_EPOCH_OFFSET);
        int rc = vhd_header_set_parent_name(h, parent_name);
        if (rc < 0)
            return vhd_fail(rc, "parent file name too long");
        add_locators(h, meta, meta_end - 3 * 2 * VHD_SECTOR, parent_name);
    }
    vhd_footer_serialize(&img.footer, meta);
    vhd_header_serialize(h, meta + VHD_SECTOR);
    memset(meta + h->table_offset, 0xFF, (size_t)h->max_bat_entries * 4);
    int rc = vhd_io_pwrite(fd, meta, meta_end, 0);
    if (rc < 0)
        return rc;
    rc = vhd_batmap_write_empty(fd, h, h->max_bat_entries);
    if (rc < 0)
        return rc;
    return vhd_footer_write(&img, meta_end);
}

int
vhd_create_image(const char *path, uint64_t size_bytes, enum vhd_type type,
                 const struct vhd_image *parent, const char *parent_name)
{
    int rc = check_size(size_bytes);
    if (rc < 0)
        return rc;
    if (type != VHD_TYPE_FIXED && type != VHD_TYPE_DYNAMIC && type != VHD_TYPE_DIFF)
        return -EINVAL;
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return vhd_fail(-errno, "cannot create %s: %s", path, strerror(errno));
    if (type == VHD_TYPE_FIXED)
        rc = create_fixed(fd, size_bytes);
    else
        rc = create_sparse(fd, size_bytes, type, parent, parent_name);
    if (rc == 0)
        rc = vhd_io_sync(fd, false);
    close(fd);
    if (rc < 0)
        unlink(path);
    return rc;
}

int
vhd_create(const char *path, uint64_t size_bytes, enum vhd_type type)
{
    if (type == VHD_TYPE_DIFF)
        return -EINVAL;
    return vhd_create_image(path, size_bytes, type, NULL, NULL);
}

/* realpath() of the directory holding @path into @out (PATH_MAX bytes). */
static int
dir_of(const char *path, char *out)
{
    _cleanup_free_ char *copy = strdup(path);
    if (!copy)
        return -ENOMEM;
    if (!realpath(dirname(copy), out))
        return -errno;
    return 0;
}

int
vhd_snapshot(const char *parent_path, const char *child_path)
{
    char pdir[PATH_MAX], cdir[PATH_MAX];
    int rc = dir_of(parent_path, pdir);
    if (rc == 0)
        rc = dir_of(child_path, cdir);
    if (rc < 0)
        return vhd_fail(rc, "cannot resolve the directories of %s and %s", parent_path,
                        child_path);
    if (strcmp(pdir, cdir) != 0)
        return vhd_fail(-EXDEV, "parent and child must be in the same directory");
    /* Footers, headers, UUID links, loops and depth are what a child needs; the BATs are
     * validated whenever the new chain is opened (O(depth) small reads, not O(BATs)). */
    struct vhd_chain *c;
    rc = vhd_chain_open(parent_path, VHD_OPEN_LINKS_ONLY, &c);
    if (rc < 0)
        return rc;
    if (vhd_chain_depth(c) + 1 > VHD_MAX_SNAPSHOT_DEPTH) {
        vhd_chain_close(c);
        return vhd_fail(-EMLINK, "chain would be deeper than %d", VHD_MAX_SNAPSHOT_DEPTH);
    }
    const char *slash = strrchr(parent_path, '/');
    const char *name = slash ? slash + 1 : parent_path;
    rc = vhd_create_image(child_path, vhd_chain_size(c), VHD_TYPE_DIFF, c->images[0], name);
    vhd_chain_close(c);
    return rc;
}

/* Space in bytes of locator @l if it can take one of our locators in @img: inside the
 * metadata (after the header, before the first block and the trailing footer), sector
 * aligned, at least VHD_SECTOR * 2 bytes. 0 otherwise. */
static uint64_t
locator_slot_space(const struct vhd_image *img, const struct vhd_locator *l)
{
    uint64_t space = l->data_space < VHD_SECTOR ? (uint64_t)l->data_space * VHD_SECTOR
                                                : l->data_space;
    if (l->code == VHD_PLAT_NONE || space < VHD_SECTOR * 2 || l->data_offset % VHD_SECTOR ||
        l->data_offset < img->footer.data_offset + VHD_HEADER_SIZE ||
        l->data_offset > img->meta_end || space > img->meta_end - l->data_offset ||
        l->data_offset + space > img->file_size - VHD_FOOTER_SIZE)
        return 0;
    for (uint32_t i = 0; i < img->n_bat; i++) {     /* invariant (1): blocks follow meta_end */
        if (img->bat[i] != VHD_BAT_UNUSED &&
            (uint64_t)img->bat[i] * VHD_SECTOR < l->data_offset + space)
            return 0;       /* defensive: cannot happen after vhd_bat_validate() */
    }
    return space;
}

/* New header of @child naming @parent (file name @name): UUID, timestamp, name, and
 * locators in the slots that fit (their data written now); other slots cleared. */
static int
relink_header(const struct vhd_image *child, int wfd, const struct vhd_image *parent,
              const char *name, struct vhd_header *h)
{
    *h = child->header;
    memcpy(h->parent_uuid, parent->footer.uuid, 16);
    struct stat st;
    h->parent_timestamp = 0;
    if (fstat(parent->fd, &st) == 0 && st.st_mtime > (time_t)VHD_EPOCH_OFFSET)
        h->parent_timestamp = (uint32_t)((uint64_t)st.st_mtime - VHD_EPOCH_OFFSET);
    int rc = vhd_header_set_parent_name(h, name);
    if (rc < 0)
        return vhd_fail(rc, "parent file name too long");
    size_t used = 0;
    for (size_t i = 0; i < 8; i++) {
        struct vhd_locator l = h->loc[i];
        uint64_t space = locator_slot_space(child, &l);
        h->loc[i] = (struct vhd_locator){0};
        if (space == 0 || used == 3)
            continue;
        uint8_t data[VHD_SECTOR * 2] = {0};
        size_t n = locator_encode(locator_codes[used], name, data);
        rc = vhd_io_pwrite(wfd, data, sizeof(data), l.data_offset);
        if (rc < 0)
            return rc;
        h->loc[i] = (struct vhd_locator){.code = locator_codes[used], .data_space = l.data_space,
                                         .data_len = (uint32_t)n, .data_offset = l.data_offset};
        used++;
    }
    return 0;
}

int
vhd_reparent(const char *child_path, const char *new_parent_path)
{
    char pdir[PATH_MAX], cdir[PATH_MAX];
    int rc = dir_of(new_parent_path, pdir);
    if (rc == 0)
        rc = dir_of(child_path, cdir);
    if (rc < 0)
        return vhd_fail(rc, "cannot resolve the directories of %s and %s", new_parent_path,
                        child_path);
    if (strcmp(pdir, cdir) != 0)
        return vhd_fail(-EXDEV, "parent and child must be in the same directory");
    /* The child alone, read-only: a concurrent `vhd serve` may be allocating a block, so
     * the trailing footer may be missing for a moment (the copy at 0 then serves). */
    struct vhd_chain *cc;
    rc = vhd_chain_open(child_path, VHD_OPEN_NO_PARENTS | VHD_OPEN_HEAD_FOOTER, &cc);
    if (rc < 0)
        return rc;
    _cleanup_(vhd_chain_closep) struct vhd_chain *child = cc;
    const struct vhd_image *ci = child->images[0];
    if (ci->footer.type != VHD_TYPE_DIFF)
        return vhd_fail(-EINVAL, "%s is not a differencing disk", child_path);
    rc = vhd_chain_open(new_parent_path, VHD_OPEN_RDONLY, &cc);
    if (rc < 0)
        return rc;
    _cleanup_(vhd_chain_closep) struct vhd_chain *parent = cc;
    for (unsigned i = 0; i < parent->n_images; i++) {
        if (parent->images[i]->dev == ci->dev && parent->images[i]->ino == ci->ino)
            return vhd_fail(-ELOOP, "%s is in the new parent's chain", child_path);
    }
    if (parent->n_images + 1 > VHD_MAX_CHAIN_DEPTH)
        return vhd_fail(-ELOOP, "chain would be deeper than %d", VHD_MAX_CHAIN_DEPTH);
    if (vhd_chain_size(parent) > ci->footer.curr_size)
        return vhd_fail(-EINVAL, "the new parent is larger than the child");
    _cleanup_close_ int wfd = open(child_path, O_WRONLY | O_CLOEXEC);
    if (wfd < 0)
        return vhd_fail(-errno, "cannot open %s for writing: %s", child_path, strerror(errno));
    struct stat st;
    if (fstat(wfd, &st) != 0)
        return -errno;
    if (st.st_dev != ci->dev || st.st_ino != ci->ino)
        return vhd_fail(-ESTALE, "%s was replaced while being re-parented", child_path);
    const char *slash = strrchr(new_parent_path, '/');
    struct vhd_header h;
    rc = relink_header(ci, wfd, parent->images[0], slash ? slash + 1 : new_parent_path, &h);
    if (rc < 0)
        return rc;
    if ((rc = vhd_io_sync(wfd, true)) < 0) /* locator data before the header that points at it */
        return rc;
    uint8_t buf[VHD_HEADER_SIZE];
    vhd_header_serialize(&h, buf);
    rc = vhd_io_pwrite(wfd, buf, sizeof(buf), ci->footer.data_offset);
    if (rc < 0)
        return rc;
    return vhd_io_sync(wfd, true);
}
