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

/* Fill the three locators of @h, placed from @off on, and write their data into @meta. */
static void
add_locators(struct vhd_header *h, uint8_t *meta, uint64_t off, const char *parent_name)
{
    static const uint32_t codes[3] = {VHD_PLAT_MACX, VHD_PLAT_W2KU, VHD_PLAT_W2RU};
    for (size_t i = 0; i < 3; i++) {
        char path[1100];
        uint8_t *dst = meta + off;
        size_t n;
        if (codes[i] == VHD_PLAT_MACX) {
            snprintf(path, sizeof(path), "file://./%s", parent_name);
            n = strlen(path);
            memcpy(dst, path, n);
        } else {
            snprintf(path, sizeof(path), ".\\%s", parent_name);
            n = vhd_utf16_encode(path, dst, VHD_SECTOR * 2, false);
        }
        h->loc[i] = (struct vhd_locator){.code = codes[i], .data_space = VHD_SECTOR * 2,
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
    _vhd_cleanup_free_ uint8_t *meta = calloc(1, meta_end);
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
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
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
    _vhd_cleanup_free_ char *copy = strdup(path);
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
    struct vhd_chain *c;
    rc = vhd_chain_open(parent_path, VHD_OPEN_RDONLY, &c);
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
