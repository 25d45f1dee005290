/* api/guest_kernel.c - guest kernels and ramdisks only from allowed directories.
 *
 * PV_kernel and PV_ramdisk are plain strings any vm-admin may set, and the
 * file they name is read by the host: without a check, a guest booted with
 * /etc/shadow as its initrd reads it. As xapi does (xapi_xenops.ml,
 * kernel_path and allowed_dom0_directories_for_boot_files, there
 * /var/lib/xcp/guest/), the field stays free text and the check happens when
 * a domain is built: the path is resolved with realpath(3), so symlinks and
 * ".." cannot lead out, must name a regular file, and must lie under one of
 * the directories vesseld was given (--guest-kernel-dir, default
 * DATA/guest-kernels). The refusal is xapi's: INVALID_VALUE [field, file,
 * reason]. The domain is then built from the resolved path, and the device
 * model receives the file as a descriptor vesseld opened with O_NOFOLLOW
 * (xenops/qemu.c), so a file swapped in later cannot be read instead.
 * Invariant: the allowed directories are writable by root only (the admin's
 * duty, docs/security.md); what lies in them is trusted to boot guests.
 */
#include "api/guest_kernel.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "xapi_errors.h"

static bool
refuse(const char *field, const char *path, const char *reason, struct xerr **errp)
{
    log_info("vm.boot_file_refused", "field=%s file=\"%s\" reason=\"%s\"", field, path, reason);
    /* xapi raises INVALID_VALUE with a third parameter, the reason */
    return xerr_raise(errp, "INVALID_VALUE", field, path, reason);
}

static bool
under(const char *dir, const char *path)
{
    size_t n = strlen(dir);
    if (n == 1 && dir[0] == '/')
        return path[0] == '/';
    return strncmp(dir, path, n) == 0 && path[n] == '/';
}

bool
guest_kernel_resolve(const struct server *srv, const char *field, const char *path,
                     char **resolved, struct xerr **errp)
{
    if (path[0] != '/') /* else vesseld's working directory would decide */
        return refuse(field, path, "Is not an absolute path", errp);
    char *real = realpath(path, NULL);
    if (!real) {
        if (errno == ENOMEM)
            return xerr_nomem(errp);
        return refuse(field, path, errno == ENOENT ? "File does not exist" : strerror(errno), errp);
    }
    bool allowed = false;
    for (size_t i = 0; i < srv->n_guest_kernel_dirs && !allowed; i++)
        allowed = under(srv->guest_kernel_dirs[i], real);
    struct stat st;
    const char *why = NULL;
    if (!allowed)
        why = "Is not in any of the allowed kernel directories";
    else if (stat(real, &st) != 0 || !S_ISREG(st.st_mode))
        why = "Is not a regular file";
    else if (srv->qemu_uid_base && !(st.st_mode & S_IROTH))
        /* the device model reopens the descriptor vesseld hands it under its
         * own uid: a file only root may read would fail there, later */
        why = "Is not readable by the device model (make it world-readable)";
    if (why) {
        free(real);
        return refuse(field, path, why, errp);
    }
    *resolved = real;
    return true;
}

static int
add_dir(struct server *srv, const char *dir)
{
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        return -errno;
    char *real = realpath(dir, NULL);
    if (!real)
        return -errno;
    struct stat st;
    if (stat(real, &st) != 0 || !S_ISDIR(st.st_mode)) {
        free(real);
        return -ENOTDIR;
    }
    char **v = realloc(srv->guest_kernel_dirs, (srv->n_guest_kernel_dirs + 1) * sizeof(*v));
    if (!v) {
        free(real);
        return -ENOMEM;
    }
    srv->guest_kernel_dirs = v;
    v[srv->n_guest_kernel_dirs++] = real;
    log_info("vesseld.guest_kernel_dir", "dir=%s", real);
    return 0;
}

int
guest_kernel_dirs_init(struct server *srv, const char *const *dirs, size_t n, const char **bad)
{
    char def[4096];
    const char *one[1] = {def};
    if (n == 0) {
        snprintf(def, sizeof(def), "%s/guest-kernels", srv->data_dir);
        dirs = one;
        n = 1;
    }
    for (size_t i = 0; i < n; i++) {
        int rc = add_dir(srv, dirs[i]);
        if (rc < 0) {
            *bad = dirs[i];
            return rc;
        }
    }
    return 0;
}

void
guest_kernel_dirs_free(struct server *srv)
{
    for (size_t i = 0; i < srv->n_guest_kernel_dirs; i++)
        free(srv->guest_kernel_dirs[i]);
    free(srv->guest_kernel_dirs);
    srv->guest_kernel_dirs = NULL;
    srv->n_guest_kernel_dirs = 0;
}
