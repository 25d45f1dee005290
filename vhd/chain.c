/* vhd/chain.c - a leaf and its parents: opening, reading through, block status.
 *
 * A chain is opened from its leaf: each differencing image names its parent by file name
 * (header parent name, UTF-16BE); the name must be a plain file name and is resolved in the
 * child's directory only (never an absolute path or a locator from the file, spec 5 row 22).
 * Every parent is opened read-only; its footer UUID must equal the child's recorded parent
 * UUID (row 20); a visited set of (device, inode) and a depth cap stop loops (row 19).
 * Reads walk from the leaf toward the root per run of sectors (spec 1.7): the run shrinks
 * to what every image above agrees on, the first image holding it supplies the bytes, and
 * a run nobody holds reads as zeros. A parent smaller than the child (the child was grown)
 * reads as zeros beyond its end.
 * Facts: shared/spec/storage.md 1.3, 1.7, 5 rows 19-22.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "vhd/vhd_int.h"

unsigned
vhd_chain_depth(const struct vhd_chain *c)
{
    return c->n_images;
}

uint64_t
vhd_chain_size(const struct vhd_chain *c)
{
    return c->images[0]->footer.curr_size;
}

static void
vhd_chain_freep(struct vhd_chain **p)
{
    if (*p)
        vhd_chain_close(*p);
}

int
vhd_chain_close(struct vhd_chain *c)
{
    int first = 0;
    if (!c)
        return 0;
    for (unsigned i = 0; i < c->n_images; i++) {
        struct vhd_image *img = c->images[i];
        if (img->writable) {
            int rc = vhd_image_batch_commit(img);
            if (rc == 0)
                rc = vhd_image_sync_footer(img);
            if (rc == 0)
                rc = vhd_io_sync(img->fd, true);
            if (rc < 0 && first == 0)
                first = rc;
        }
        vhd_image_free(img);
    }
    free(c);
    return first;
}

/* Path of the parent of @child: its directory plus the header's parent file name. */
static int
parent_path(const struct vhd_image *child, char **out)
{
    char name[256 * 3];
    if (vhd_header_parent_name(&child->header, name, sizeof(name)) < 0 || name[0] == '\0' ||
        strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return vhd_fail(-EINVAL, "parent name is not a plain file name");
    const char *slash = strrchr(child->path, '/');
    int n;
    if (slash)
        n = asprintf(out, "%.*s/%s", (int)(slash - child->path), child->path, name);
    else
        n = asprintf(out, "%s", name);
    return n < 0 ? -ENOMEM : 0;
}

static int
open_one(const char *path, unsigned flags, struct vhd_image **out)
{
    int fd = open(path, ((flags & VHD_OPEN_RDWR) ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0)
        return vhd_fail(-errno, "cannot open %s: %s", path, strerror(errno));
    int rc = vhd_image_open_fd(fd, flags, path, out);
    if (rc < 0 && vhd_last_error()[0] == '\0')
        vhd_fail(rc, "%s: %s", path, strerror(-rc));
    return rc;
}

static int
open_parents(struct vhd_chain *c, unsigned flags)
{
    for (;;) {
        struct vhd_image *child = c->images[c->n_images - 1];
        if (child->footer.type != VHD_TYPE_DIFF)
            return 0;
        if (c->n_images == VHD_MAX_CHAIN_DEPTH)
            return vhd_fail(-ELOOP, "chain deeper than %d images", VHD_MAX_CHAIN_DEPTH);
        _cleanup_free_ char *ppath = NULL;
        int rc = parent_path(child, &ppath);
        if (rc < 0)
            return rc;
        struct vhd_image *parent;
        rc = open_one(ppath, flags & (VHD_OPEN_HEAD_FOOTER | VHD_OPEN_LINKS_ONLY), &parent);
        if (rc == -ENOENT)
            return vhd_fail(-ENOENT, "parent %s is missing", ppath);
        if (rc < 0)
            return rc;
        c->images[c->n_images++] = parent;
        for (unsigned i = 0; i + 1 < c->n_images; i++) {
            if (c->images[i]->dev == parent->dev && c->images[i]->ino == parent->ino)
                return vhd_fail(-ELOOP, "parent loop: %s is already in the chain", ppath);
        }
        if (memcmp(parent->footer.uuid, child->header.parent_uuid, 16) != 0)
            return vhd_fail(-ESTALE, "parent %s has UUID different from the one recorded",
                            ppath);
    }
}

int
vhd_chain_open(const char *path, unsigned flags, struct vhd_chain **out)
{
    _cleanup_(vhd_chain_freep) struct vhd_chain *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    int rc = open_one(path, flags, &c->images[0]);
    if (rc < 0)
        return rc;
    c->n_images = 1;
    if (!(flags & VHD_OPEN_NO_PARENTS)) {
        rc = open_parents(c, flags);
        if (rc < 0)
            return rc;
    }
    *out = c;
    c = NULL;
    return 0;
}

int
vhd_chain_open_fd(int fd, unsigned flags, struct vhd_chain **out)
{
    int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0)
        return -errno;
    struct vhd_chain *c = calloc(1, sizeof(*c));
    if (!c) {
        close(dup_fd);
        return -ENOMEM;
    }
    int rc = vhd_image_open_fd(dup_fd, flags & ~VHD_OPEN_NO_PARENTS, NULL, &c->images[0]);
    if (rc < 0) {
        free(c);
        return rc;
    }
    c->n_images = 1;
    *out = c;
    return 0;
}

/* Check the link from image @i to image @i + 1 of @c (both open): the child must be
 * differencing and record the parent's UUID; the parent must be no image already in the
 * chain. Used by vhd_chain_open_fds(), where no file name is there to follow. */
static int
check_fd_link(const struct vhd_chain *c, unsigned i)
{
    const struct vhd_image *child = c->images[i], *parent = c->images[i + 1];
    if (child->footer.type != VHD_TYPE_DIFF)
        return vhd_fail(-ESTALE, "image %u is not differencing but has a parent", i);
    for (unsigned k = 0; k <= i; k++) {
        if (c->images[k]->dev == parent->dev && c->images[k]->ino == parent->ino)
            return vhd_fail(-ELOOP, "parent loop: image %u is image %u again", i + 1, k);
    }
    if (memcmp(parent->footer.uuid, child->header.parent_uuid, 16) != 0)
        return vhd_fail(-ESTALE, "image %u has a UUID different from the one image %u records",
                        i + 1, i);
    return 0;
}

int
vhd_chain_open_fds(const int *fds, unsigned n, unsigned flags, struct vhd_chain **out)
{
    if (n == 0 || (flags & VHD_OPEN_NO_PARENTS))
        return vhd_fail(-EINVAL, "no descriptors, or NO_PARENTS asked of a full chain");
    if (n > VHD_MAX_CHAIN_DEPTH)
        return vhd_fail(-ELOOP, "chain deeper than %d images", VHD_MAX_CHAIN_DEPTH);
    _cleanup_(vhd_chain_freep) struct vhd_chain *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    if (flags & VHD_OPEN_RDWR) {
        int fl = fcntl(fds[0], F_GETFL);
        if (fl < 0)
            return vhd_fail(-errno, "descriptor 0: %s", strerror(errno));
        if ((fl & O_ACCMODE) != O_RDWR)
            return vhd_fail(-EBADF, "the leaf descriptor is not open for reading and writing");
    }
    for (unsigned i = 0; i < n; i++) {
        int dup_fd = fcntl(fds[i], F_DUPFD_CLOEXEC, 0);
        if (dup_fd < 0)
            return vhd_fail(-errno, "descriptor %u: %s", i, strerror(errno));
        /* parents are read-only whatever the descriptor allows (invariant of a chain) */
        unsigned f = i == 0 ? flags : flags & VHD_OPEN_HEAD_FOOTER;
        int rc = vhd_image_open_fd(dup_fd, f, NULL, &c->images[i]);
        if (rc < 0) {
            if (vhd_last_error()[0] == '\0')
                vhd_fail(rc, "image %u: %s", i, strerror(-rc));
            return rc;
        }
        c->n_images = i + 1;
        if (i > 0 && (rc = check_fd_link(c, i - 1)) < 0)
            return rc;
    }
    if (c->images[n - 1]->footer.type == VHD_TYPE_DIFF)
        return vhd_fail(-ENOENT, "image %u is differencing: its parent is missing", n - 1);
    *out = c;
    c = NULL;
    return 0;
}

/* Find which image (index into the chain, or n_images for "none") supplies the bytes
 * starting at @off, and over how many bytes (<= @len) that answer holds. */
static int
chain_locate(struct vhd_chain *c, uint64_t off, uint64_t len, unsigned *which, uint64_t *run)
{
    uint64_t limit = len;
    for (unsigned i = 0; i < c->n_images; i++) {
        struct vhd_image *img = c->images[i];
        uint64_t size = img->footer.curr_size;
        if (off >= size)
            break;              /* a smaller parent: zeros beyond its end */
        if (limit > size - off)
            limit = size - off;
        uint64_t r;
        bool present;
        int rc = vhd_image_read_status(img, off, limit, &r, &present);
        if (rc < 0)
            return rc;
        if (present) {
            *which = i;
            *run = r;
            return 0;
        }
        limit = r;
        if (img->footer.type != VHD_TYPE_DIFF)
            break;
    }
    *which = c->n_images;
    *run = limit;
    return 0;
}

int
vhd_chain_read(struct vhd_chain *c, void *buf, uint64_t off, size_t len)
{
    uint64_t size = vhd_chain_size(c);
    if (off > size || len > size - off)
        return -EINVAL;
    uint8_t *p = buf;
    while (len > 0) {
        unsigned which;
        uint64_t run;
        int rc = chain_locate(c, off, len, &which, &run);
        if (rc < 0)
            return rc;
        if (which == c->n_images) {
            memset(p, 0, run);
        } else {
            rc = vhd_image_read_data(c->images[which], p, off, run);
            if (rc < 0)
                return rc;
        }
        p += run;
        off += run;
        len -= run;
    }
    return 0;
}

int
vhd_chain_block_status(struct vhd_chain *c, uint64_t off, uint64_t len, uint64_t *run_len,
                       bool *allocated)
{
    uint64_t size = vhd_chain_size(c);
    if (len == 0 || off >= size || len > size - off)
        return -EINVAL;
    uint64_t total = 0;
    bool first_alloc = false;
    while (total < len) {
        unsigned which;
        uint64_t run;
        int rc = chain_locate(c, off + total, len - total, &which, &run);
        if (rc < 0)
            return rc;
        bool alloc = which < c->n_images;
        if (total == 0)
            first_alloc = alloc;
        else if (alloc != first_alloc)
            break;
        total += run;
    }
    *run_len = total;
    *allocated = first_alloc;
    return 0;
}

int
vhd_chain_info(const struct vhd_chain *c, unsigned index, struct vhd_info *out)
{
    if (index >= c->n_images)
        return -EINVAL;
    const struct vhd_image *img = c->images[index];
    memset(out, 0, sizeof(*out));
    out->type = (enum vhd_type)img->footer.type;
    out->size_bytes = img->footer.curr_size;
    out->file_size_bytes = img->file_size;
    memcpy(out->uuid, img->footer.uuid, 16);
    memcpy(out->creator, img->footer.creator_app, 4);
    for (int i = 0; i < 4; i++) {
        if ((unsigned char)out->creator[i] < 0x20 || (unsigned char)out->creator[i] > 0x7e)
            out->creator[i] = out->creator[i] ? '?' : '\0';
    }
    out->creator_version = img->footer.creator_version;
    out->cylinders = img->footer.geometry >> 16;
    out->heads = (img->footer.geometry >> 8) & 0xFF;
    out->sectors_per_track = img->footer.geometry & 0xFF;
    out->hidden = img->footer.hidden != 0;
    out->head_footer_used = img->head_footer_used;
    out->depth = c->n_images - index;
    if (vhd_image_is_sparse(img)) {
        out->block_size = img->block_size;
        out->max_bat_entries = img->header.max_bat_entries;
        for (uint32_t i = 0; i < img->n_bat; i++)
            out->allocated_blocks += img->bat[i] != VHD_BAT_UNUSED;
    }
    if (img->footer.type == VHD_TYPE_DIFF) {
        memcpy(out->parent_uuid, img->header.parent_uuid, 16);
        if (vhd_header_parent_name(&img->header, out->parent_name, sizeof(out->parent_name)) < 0)
            snprintf(out->parent_name, sizeof(out->parent_name), "<undecodable>");
    }
    return 0;
}
