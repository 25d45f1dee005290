/* vhd/io.c - whole-buffer pread/pwrite for the VHD library.
 *
 * Every on-disk access of vhd/ goes through these two helpers so that short transfers and
 * EINTR are handled once: a short read at end of file is -EIO (a structure the file claims
 * to have is not there), never a partially filled buffer.
 */
#include <errno.h>
#include <unistd.h>

#include "vhd/vhd_int.h"

int
vhd_io_pread(int fd, void *buf, size_t len, uint64_t off)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pread(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EIO;
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

int
vhd_io_pwrite(int fd, const void *buf, size_t len, uint64_t off)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EIO;
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}
