/* daemon/data_dir.c - the data directory is made private at start.
 *
 * Files created afterwards are private too: main() sets umask 077 before the
 * store opens, so SQLite's database, WAL and shared-memory files, sockets and
 * logs start 0600 (SQLite creates its files 0644 less the umask).
 */
#include "daemon/data_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"

static int
make_private(int dirfd, const char *name, const struct stat *st, mode_t mode)
{
    if (!(st->st_mode & 077))
        return 0;
    int rc = dirfd < 0 ? chmod(name, mode) : fchmodat(dirfd, name, mode, 0);
    if (rc != 0)
        return -errno;
    log_warn("vesseld.data_dir_private", "path=%s old_mode=%04o new_mode=%04o", name,
             (unsigned)(st->st_mode & 07777), (unsigned)mode);
    return 0;
}

int
data_dir_make_private(const char *dir)
{
    struct stat st;
    if (lstat(dir, &st) != 0)
        return -errno;
    if (!S_ISDIR(st.st_mode))
        return -ENOTDIR;
    if (st.st_uid != geteuid())
        return -EPERM;
    int rc = make_private(-1, dir, &st, 0700);
    if (rc < 0)
        return rc;
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    struct dirent *e;
    while ((e = readdir(d))) {
        /* Only regular files: SR directories and sockets keep their own modes. */
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
            continue;
        if ((rc = make_private(dirfd(d), e->d_name, &st, 0600)) < 0)
            break;
    }
    closedir(d);
    return rc < 0 ? rc : 0;
}
