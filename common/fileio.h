/* common/fileio.h - whole files in and out, complete writes, directory trees.
 *
 * Small helpers every folder wrote for itself. They return 0 or a negative
 * errno and never print; any thread may call them.
 */
#ifndef VESSEL_COMMON_FILEIO_H
#define VESSEL_COMMON_FILEIO_H

#include <stddef.h>
#include <sys/types.h>

/* Reads the whole of @path into *@out (NUL-terminated, freed with free()),
 * its length in *@len (may be NULL). A file larger than @max_bytes is not read:
 * -EFBIG. Errors: open/read's errno, -ENOMEM. */
int fileio_read_all(const char *path, size_t max_bytes, char **out, size_t *len);

/* Writes all of @buf to @fd, through short writes and EINTR. 0 or -errno
 * (-EAGAIN on a non-blocking fd that filled up: what was written is lost to
 * the caller, so use it on blocking fds). */
int fileio_write_all(int fd, const void *buf, size_t len);

/* The same on a socket: send(2) with MSG_NOSIGNAL, so a peer that closed is
 * -EPIPE, never SIGPIPE. For blocking sockets (-EAGAIN otherwise). */
int fileio_send_all(int fd, const void *buf, size_t len);

/* Replaces @path with @len bytes of @data: "@path.tmp" created anew
 * (O_EXCL, @mode less the umask), fsync, rename, fsync of the directory, so a
 * crash leaves the old file or the new one, never a mix. One writer per @path
 * at a time. 0 or -errno; the temporary is removed on error. */
int fileio_write_atomic(const char *path, const void *data, size_t len, mode_t mode);

/* mkdir -p: makes @path and any missing parent, each with @mode (less the
 * umask); existing directories are left as they are. 0 or -errno (-ENOTDIR when
 * a component exists and is not a directory). */
int fileio_mkdir_p(const char *path, mode_t mode);

#endif
