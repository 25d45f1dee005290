/* vhd/io.c - whole-buffer pread/pwrite and syncs for the VHD library.
 *
 * Every on-disk access of vhd/ goes through these helpers so that short transfers and
 * EINTR are handled once: a short read at end of file is -EIO (a structure the file claims
 * to have is not there), never a partially filled buffer. They are also the library's
 * fault-injection sites (common/fault.h): a test fails the n-th read, write or sync.
 */
#include <errno.h>
#include <unistd.h>

#include "common/fault.h"
#include "vhd/vhd_int.h"

int
vhd_io_pread(int fd, void *buf, size_t len, uint64_t off)
{
    uint8_t *p = buf;
    if (FAULT_POINT("vhd.pread"))
        return -EIO;
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
    if (FAULT_POINT("vhd.pwrite"))
        return -ENOSPC;
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

int
vhd_io_sync(int fd, bool data_only)
{
    if (FAULT_POINT("vhd.sync"))
        return -EIO;
    int rc = data_only ? fdatasync(fd) : fsync(fd);
    return rc == 0 ? 0 : -errno;
}
