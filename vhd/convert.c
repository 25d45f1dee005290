/* vhd/convert.c - whole-disk copies: chain to raw, chain to a flat dynamic VHD, raw to VHD.
 *
 * Copies walk the source by allocation (vhd_chain_block_status for a chain, SEEK_DATA /
 * SEEK_HOLE for a raw file) so that holes cost nothing, read allocated runs in chunks of
 * up to 2 MiB (one block: one pread per image run), and skip chunks that are all zeros so
 * the destination stays sparse. The destination is created with O_EXCL and removed again
 * if the copy fails. Facts: shared/spec/storage.md 4.5 (qemu-img convert as the anchor).
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "vhd/vhd_int.h"

#define CONVERT_CHUNK (2u * 1024 * 1024)

static bool
all_zero(const uint8_t *p, size_t n)
{
    /* word-wise: n is a multiple of 8 whenever it is a multiple of 512 */
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w)
            return false;
    }
    for (; i < n; i++) {
        if (p[i])
            return false;
    }
    return true;
}

/* Sink of a copy: a raw fd or a VHD chain opened read-write. */
struct sink {
    int fd;
    struct vhd_chain *vhd;
};

static int
sink_write(struct sink *s, const uint8_t *buf, uint64_t off, size_t len)
{
    if (all_zero(buf, len))
        return 0;
    if (s->vhd)
        return vhd_chain_write(s->vhd, buf, off, len, false);
    return vhd_io_pwrite(s->fd, buf, len, off);
}

static int
copy_chain(struct vhd_chain *c, struct sink *s, vhd_progress_fn *progress, void *opaque)
{
    uint64_t size = vhd_chain_size(c), off = 0;
    _cleanup_free_ uint8_t *buf = malloc(CONVERT_CHUNK);
    if (!buf)
        return -ENOMEM;
    while (off < size) {
        uint64_t run;
        bool allocated;
        int rc = vhd_chain_block_status(c, off, size - off, &run, &allocated);
        if (rc < 0)
            return rc;
        for (uint64_t end = off + run; allocated && off < end;) {
            size_t n = end - off < CONVERT_CHUNK ? (size_t)(end - off) : CONVERT_CHUNK;
            rc = vhd_chain_read(c, buf, off, n);
            if (rc == 0)
                rc = sink_write(s, buf, off, n);
            if (rc < 0)
                return rc;
            off += n;
            if (progress)
                progress(opaque, off, size);
        }
        if (!allocated)
            off += run;
    }
    if (progress)
        progress(opaque, size, size);
    return 0;
}

int
vhd_convert_to(struct vhd_chain *c, const char *out_path, bool to_vhd, vhd_progress_fn *progress,
               void *opaque)
{
    struct sink s = {.fd = -1};
    int rc;
    if (to_vhd) {
        rc = vhd_create(out_path, vhd_chain_size(c), VHD_TYPE_DYNAMIC);
        if (rc < 0)
            return rc;
        rc = vhd_chain_open(out_path, VHD_OPEN_RDWR, &s.vhd);
    } else {
        s.fd = open(out_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        rc = s.fd < 0 ? vhd_fail(-errno, "cannot create %s: %s", out_path, strerror(errno)) : 0;
        if (rc == 0 && ftruncate(s.fd, (off_t)vhd_chain_size(c)) != 0)
            rc = -errno;
    }
    if (rc == 0)
        rc = copy_chain(c, &s, progress, opaque);
    if (s.vhd) {
        int rc2 = vhd_chain_close(s.vhd);
        rc = rc < 0 ? rc : rc2;
    }
    if (s.fd >= 0) {
        if (rc == 0)
            rc = vhd_io_sync(s.fd, false);
        close(s.fd);
    }
    if (rc < 0 && rc != -EEXIST)
        unlink(out_path);
    return rc;
}

static int
copy_raw(int fd, uint64_t raw_size, struct vhd_chain *dst, vhd_progress_fn *progress,
         void *opaque)
{
    _cleanup_free_ uint8_t *buf = malloc(CONVERT_CHUNK);
    if (!buf)
        return -ENOMEM;
    struct sink s = {.fd = -1, .vhd = dst};
    uint64_t off = 0;
    while (off < raw_size) {
        off_t data = lseek(fd, (off_t)off, SEEK_DATA);
        if (data < 0)
            break;      /* ENXIO: only a hole remains */
        off_t hole = lseek(fd, data, SEEK_HOLE);
        if (hole < 0)
            hole = (off_t)raw_size;
        off = (uint64_t)data / VHD_SECTOR * VHD_SECTOR;
        while (off < (uint64_t)hole) {
            uint64_t want = (uint64_t)hole - off;
            size_t n = want < CONVERT_CHUNK ? (size_t)vhd_round_up(want, VHD_SECTOR) : CONVERT_CHUNK;
            size_t avail = off + n > raw_size ? (size_t)(raw_size - off) : n;
            memset(buf + avail, 0, n - avail);
            int rc = vhd_io_pread(fd, buf, avail, off);
            if (rc == 0)
                rc = sink_write(&s, buf, off, n);
            if (rc < 0)
                return rc;
            off += n;
            if (progress)
                progress(opaque, off, raw_size);
        }
    }
    if (progress)
        progress(opaque, raw_size, raw_size);
    return 0;
}

int
vhd_convert_from_raw(const char *raw_path, const char *out_path, vhd_progress_fn *progress,
                     void *opaque)
{
    _cleanup_close_ int fd = open(raw_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return vhd_fail(-errno, "cannot open %s: %s", raw_path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    if (!S_ISREG(st.st_mode) || st.st_size == 0)
        return vhd_fail(-EINVAL, "%s is not a non-empty regular file", raw_path);
    uint64_t raw_size = (uint64_t)st.st_size;
    int rc = vhd_create(out_path, vhd_round_up(raw_size, VHD_SECTOR), VHD_TYPE_DYNAMIC);
    if (rc < 0)
        return rc;
    struct vhd_chain *dst;
    rc = vhd_chain_open(out_path, VHD_OPEN_RDWR, &dst);
    if (rc == 0) {
        rc = copy_raw(fd, raw_size, dst, progress, opaque);
        int rc2 = vhd_chain_close(dst);
        rc = rc < 0 ? rc : rc2;
    }
    if (rc < 0)
        unlink(out_path);
    return rc;
}
