/* storage/sr_file.c - the local directory SR: VDIs as VHD files in one directory.
 *
 * Design. A VDI is the leaf <uuid>.vhd; a snapshot or clone never copies data:
 * the leaf is hard-linked to <base>.base.vhd, two empty differencing children
 * of that base are made (one for the new VDI, one that replaces the old leaf by
 * rename), and the old name's link is thereby dropped. Every step leaves the
 * VDI's name on a sound chain, so a crash costs at most an orphan file (which
 * sr_file_scan reports and the caller may adopt or delete). Bases are chmod'ed
 * read-only; a base with no children left is deleted with the last of them
 * (sr_file.h invariants 1 and 2). Parents are found by file name in the same
 * directory (the VHD library's rule), so the directory can be moved whole.
 *
 * Space: VHDs are thin; a create or a resize is refused (-ENOSPC) when the
 * virtual size it adds exceeds what statvfs says is free, as SM's file SR does
 * with its "SR full" check. Facts: the VHD specification (Microsoft's Virtual Hard Disk Image Format Specification) (VHD layout, chain
 * rules), xapi's ocaml/idl/datamodel*.ml "VDI"/"SR".
 */
#include "storage/sr_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/testhook.h"
#include "storage/sr_file_int.h"
#include "vhd/vhd.h"

/* Renames and unlinks of every SR of this process: O(1) work, held briefly
 * (the garbage collector's final merge of a small leaf is the longest). */
pthread_mutex_t sr_file_names_lock = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local char last_error[256];

void
sr_file_clear_error(void)
{
    last_error[0] = '\0';
}

int
sr_file_fail(int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof(last_error), fmt, ap);
    va_end(ap);
    return rc;
}

/* The VHD library's reason for @rc, kept before anything else runs. */
int
sr_file_fail_vhd(int rc, const char *what)
{
    const char *why = vhd_last_error();
    return sr_file_fail(rc, "%s: %s", what, why && why[0] ? why : strerror(-rc));
}

const char *
sr_file_last_error(void)
{
    return last_error;
}

uint64_t
sr_file_round_size(uint64_t size)
{
    if (size > UINT64_MAX - SR_FILE_BLOCK_BYTES)
        return UINT64_MAX - (UINT64_MAX % SR_FILE_BLOCK_BYTES);
    return (size + SR_FILE_BLOCK_BYTES - 1) / SR_FILE_BLOCK_BYTES * SR_FILE_BLOCK_BYTES;
}

bool
sr_file_uuid_valid(const char *s)
{
    if (strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
                                   (s[i] >= 'A' && s[i] <= 'F')))
            return false;
    }
    return true;
}

/* Splits a directory entry into uuid and kind; false when it is not ours. */
bool
sr_file_name_parse(const char *name, char uuid[37], bool *hidden)
{
    size_t n = strlen(name);
    if (n == 36 + strlen(BASE_SUFFIX) && strcmp(name + 36, BASE_SUFFIX) == 0)
        *hidden = true;
    else if (n == 36 + strlen(LEAF_SUFFIX) && strcmp(name + 36, LEAF_SUFFIX) == 0)
        *hidden = false;
    else
        return false;
    memcpy(uuid, name, 36);
    uuid[36] = '\0';
    return sr_file_uuid_valid(uuid);
}

int
sr_file_join(char *out, size_t len, const char *dir, const char *uuid, const char *suffix)
{
    if (!sr_file_uuid_valid(uuid))
        return sr_file_fail(-EINVAL, "not a uuid: %s", uuid);
    int n = snprintf(out, len, "%s/%s%s", dir, uuid, suffix);
    if (n < 0 || (size_t)n >= len)
        return sr_file_fail(-ENAMETOOLONG, "path too long under %s", dir);
    return 0;
}

int
sr_file_vdi_path(const char *path, const char *uuid, char *out, size_t len)
{
    return sr_file_join(out, len, path, uuid, LEAF_SUFFIX);
}

int
sr_file_chain_open(const char *file, unsigned flags, struct vhd_chain **out)
{
    /* a collector step renames or removes a parent under this lock: never
     * between the opens of two links of one chain */
    pthread_mutex_lock(&sr_file_names_lock);
    int rc = vhd_chain_open(file, flags, out);
    pthread_mutex_unlock(&sr_file_names_lock);
    return rc;
}

int
sr_file_sync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

/* ------------------------------------------------------------------ the SR */

int
sr_file_attach(const char *path, bool create)
{
    struct stat st;
    last_error[0] = '\0';
    if (!path[0] || path[0] != '/')
        return sr_file_fail(-EINVAL, "the SR path must be absolute: \"%s\"", path);
    if (stat(path, &st) < 0) {
        int rc = -errno;
        if (rc != -ENOENT || !create)
            return sr_file_fail(rc, "%s: %s", path, strerror(-rc));
        if ((rc = fileio_mkdir_p(path, 0700)) < 0)
            return sr_file_fail(rc, "cannot create %s: %s", path, strerror(-rc));
        return 0;
    }
    if (!S_ISDIR(st.st_mode))
        return sr_file_fail(-ENOTDIR, "%s is not a directory", path);
    if (access(path, W_OK | X_OK) < 0)
        return sr_file_fail(-errno, "%s is not writable: %s", path, strerror(errno));
    return 0;
}

int
sr_file_space(const char *path, uint64_t *size_bytes, uint64_t *free_bytes)
{
    struct statvfs sv;
    if (statvfs(path, &sv) < 0)
        return sr_file_fail(-errno, "statvfs %s: %s", path, strerror(errno));
    *size_bytes = (uint64_t)sv.f_blocks * sv.f_frsize;
    *free_bytes = (uint64_t)sv.f_bavail * sv.f_frsize;
    return 0;
}

#define MARK_NAME ".sr-uuid"

int
sr_file_mark(const char *path, const char *uuid)
{
    char file[PATH_MAX], work[PATH_MAX];
    if (!sr_file_uuid_valid(uuid))
        return sr_file_fail(-EINVAL, "not a uuid: %s", uuid);
    if (snprintf(file, sizeof(file), "%s/%s", path, MARK_NAME) >= (int)sizeof(file) ||
        snprintf(work, sizeof(work), "%s/%s.part", path, MARK_NAME) >= (int)sizeof(work))
        return sr_file_fail(-ENAMETOOLONG, "path too long under %s", path);
    FILE *f = fopen(work, "w");
    if (!f)
        return sr_file_fail(-errno, "%s: %s", work, strerror(errno));
    bool ok = fprintf(f, "%s\n", uuid) > 0 && fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(work, file) < 0) {
        int rc = sr_file_fail(-errno, "%s: %s", file, strerror(errno));
        unlink(work);
        return rc;
    }
    sr_file_sync_dir(path);
    return 0;
}

int
sr_file_probe(const char *path, char uuid[37])
{
    char file[PATH_MAX], line[64];
    struct stat st;
    if (stat(path, &st) < 0)
        return sr_file_fail(-errno, "%s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return sr_file_fail(-ENOTDIR, "%s is not a directory", path);
    if (snprintf(file, sizeof(file), "%s/%s", path, MARK_NAME) >= (int)sizeof(file))
        return sr_file_fail(-ENAMETOOLONG, "path too long under %s", path);
    FILE *f = fopen(file, "r");
    if (!f)
        return errno == ENOENT ? 0 : sr_file_fail(-errno, "%s: %s", file, strerror(errno));
    bool got = fgets(line, sizeof(line), f) != NULL;
    fclose(f);
    line[strcspn(line, "\n")] = '\0';
    if (!got || !sr_file_uuid_valid(line))
        return 0; /* not a mark of ours: as if absent */
    memcpy(uuid, line, 37); /* valid: 36 characters and the NUL */
    return 1;
}

/* Unlinks every file of ours (and work files) in @path. */
int
sr_file_destroy(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return errno == ENOENT ? 0 : sr_file_fail(-errno, "%s: %s", path, strerror(errno));
    int rc = 0;
    struct dirent *e;
    pthread_mutex_lock(&sr_file_names_lock);
    while ((e = readdir(d))) {
        char uuid[37];
        bool hidden;
        size_t n = strlen(e->d_name);
        bool part = (e->d_name[0] == '.' &&
                     ((n > 5 && strcmp(e->d_name + n - 5, ".part") == 0) ||
                      (n > 7 && strcmp(e->d_name + n - 7, ".intent") == 0))) ||
                    (n == 36 + 7 && strcmp(e->d_name + 36, ".cbtlog") == 0);
        if (!part && strcmp(e->d_name, MARK_NAME) != 0 && !sr_file_name_parse(e->d_name, uuid, &hidden))
            continue;
        if (unlinkat(dirfd(d), e->d_name, 0) < 0 && errno != ENOENT && rc == 0)
            rc = sr_file_fail(-errno, "unlink %s/%s: %s", path, e->d_name, strerror(errno));
    }
    pthread_mutex_unlock(&sr_file_names_lock);
    closedir(d);
    if (rc == 0 && rmdir(path) < 0 && errno != ENOTEMPTY && errno != EEXIST && errno != ENOENT)
        rc = sr_file_fail(-errno, "rmdir %s: %s", path, strerror(errno));
    return rc;
}

/* ------------------------------------------------------------------ reading the directory */

/* The uuid of a parent named @name (ours, either kind), or "" when foreign. */
static void
parent_uuid_of(const char *name, char out[37])
{
    bool hidden;
    if (!sr_file_name_parse(name, out, &hidden))
        out[0] = '\0';
}

int
sr_file_describe(const char *file, const char *uuid, bool hidden, struct sr_file_vhd *out)
{
    struct vhd_chain *c = NULL;
    struct vhd_info info;
    /* a file a disk server is extending may lack its trailing footer for a moment:
     * the copy at offset 0 describes it as well */
    int rc = vhd_chain_open(file, VHD_OPEN_RDONLY | VHD_OPEN_NO_PARENTS | VHD_OPEN_HEAD_FOOTER, &c);
    if (rc < 0)
        return sr_file_fail_vhd(rc, file);
    rc = vhd_chain_info(c, 0, &info);
    vhd_chain_close(c);
    if (rc < 0)
        return sr_file_fail_vhd(rc, file);
    memset(out, 0, sizeof(*out));
    snprintf(out->uuid, sizeof(out->uuid), "%s", uuid);
    out->hidden = hidden;
    out->virtual_size = info.size_bytes;
    out->physical_size = info.file_size_bytes;
    if (info.type == VHD_TYPE_DIFF)
        parent_uuid_of(info.parent_name, out->parent_uuid);
    return 0;
}

int
sr_file_vdi_info(const char *path, const char *uuid, struct sr_file_vhd *out)
{
    char file[PATH_MAX];
    int rc = sr_file_join(file, sizeof(file), path, uuid, LEAF_SUFFIX);
    if (rc < 0)
        return rc;
    if (access(file, F_OK) < 0)
        return sr_file_fail(-errno, "%s: %s", file, strerror(errno));
    return sr_file_describe(file, uuid, false, out);
}

/* sr_file_scan(), or with @whole sr_file_scan_whole(). */
static int
scan(const char *path, bool whole, struct sr_file_vhd **out, size_t *n_out)
{
    DIR *d = opendir(path);
    if (!d)
        return sr_file_fail(-errno, "%s: %s", path, strerror(errno));
    struct sr_file_vhd *v = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char uuid[37], file[PATH_MAX];
        bool hidden;
        if (!sr_file_name_parse(e->d_name, uuid, &hidden))
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct sr_file_vhd *nv = realloc(v, ncap * sizeof(*nv));
            if (!nv) {
                free(v);
                closedir(d);
                return sr_file_fail(-ENOMEM, "out of memory");
            }
            v = nv;
            cap = ncap;
        }
        snprintf(file, sizeof(file), "%s/%s", path, e->d_name);
        int rc = sr_file_describe(file, uuid, hidden, &v[n]);
        if (rc == 0) {
            n++;
        } else if (whole && rc != -ENOENT) { /* gone since readdir: no child of anyone */
            free(v);
            closedir(d);
            return rc;
        }
    }
    closedir(d);
    *out = v;
    *n_out = n;
    last_error[0] = '\0';
    return 0;
}

int
sr_file_scan(const char *path, struct sr_file_vhd **out, size_t *n_out)
{
    return scan(path, false, out, n_out);
}

int
sr_file_scan_whole(const char *path, struct sr_file_vhd **out, size_t *n_out)
{
    return scan(path, true, out, n_out);
}

size_t
sr_file_count_children(const struct sr_file_vhd *v, size_t n, const char *uuid, size_t *last)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i].parent_uuid, uuid) == 0) {
            count++;
            if (last)
                *last = i;
        }
    }
    return count;
}

/* ------------------------------------------------------------------ VDI operations */

static int
check_free(const char *path, uint64_t adding)
{
    uint64_t size, avail;
    int rc = sr_file_space(path, &size, &avail);
    if (rc < 0)
        return rc;
    if (adding > avail)
        return sr_file_fail(-ENOSPC, "%llu bytes requested, %llu free", (unsigned long long)adding,
                    (unsigned long long)avail);
    return 0;
}

int
sr_file_vdi_create(const char *path, const char *uuid, uint64_t size_bytes)
{
    char file[PATH_MAX];
    int rc = sr_file_join(file, sizeof(file), path, uuid, LEAF_SUFFIX);
    if (rc < 0)
        return rc;
    if (size_bytes == 0)
        return sr_file_fail(-EINVAL, "a VDI needs a size");
    uint64_t size = sr_file_round_size(size_bytes);
    if (size > VHD_MAX_SIZE_BYTES)
        return sr_file_fail(-EFBIG, "%llu bytes is beyond the VHD limit of %llu",
                    (unsigned long long)size, (unsigned long long)VHD_MAX_SIZE_BYTES);
    if ((rc = check_free(path, size)) < 0)
        return rc;
    if ((rc = vhd_create(file, size, VHD_TYPE_DYNAMIC)) < 0)
        return sr_file_fail_vhd(rc, file);
    last_error[0] = '\0';
    return 0;
}

static int
destroy_locked(const char *path, const char *uuid, const char *file)
{
    struct sr_file_vhd self, *v = NULL;
    size_t n = 0;
    int rc;
    if (access(file, F_OK) < 0)
        return sr_file_fail(-errno, "%s: %s", file, strerror(errno));
    if (sr_file_describe(file, uuid, false, &self) < 0)
        self.parent_uuid[0] = '\0'; /* a damaged leaf is deleted; its bases stay */
    if (sr_file_scan_whole(path, &v, &n) < 0) {
        /* a file it cannot read may be another child of the bases above: they stay, for
         * the collector once it reads every file (sr_file_gc_remove_garbage) */
        self.parent_uuid[0] = '\0';
        if ((rc = sr_file_scan(path, &v, &n)) < 0)
            return rc;
    }
    if (sr_file_count_children(v, n, uuid, NULL) > 0) {
        free(v);
        return sr_file_fail(-EBUSY, "%s is the parent of another file", file);
    }
    if (unlink(file) < 0) {
        free(v);
        return sr_file_fail(-errno, "unlink %s: %s", file, strerror(errno));
    }
    for (size_t i = 0; i < n; i++)
        if (!v[i].hidden && strcmp(v[i].uuid, uuid) == 0)
            v[i].parent_uuid[0] = '\0'; /* gone: its link no longer counts */
    /* Invariant 2: walk up, deleting bases that lost their last child. */
    char parent[37], base[PATH_MAX];
    memcpy(parent, self.parent_uuid, sizeof(parent));
    while (parent[0]) {
        size_t at = n;
        for (size_t i = 0; i < n; i++)
            if (v[i].hidden && strcmp(v[i].uuid, parent) == 0)
                at = i;
        if (at == n || sr_file_count_children(v, n, parent, NULL) > 0)
            break;
        if (sr_file_join(base, sizeof(base), path, parent, BASE_SUFFIX) < 0 || unlink(base) < 0)
            break;
        memcpy(parent, v[at].parent_uuid, sizeof(parent));
        v[at].parent_uuid[0] = '\0';
    }
    free(v);
    sr_file_sync_dir(path);
    last_error[0] = '\0';
    return 0;
}

int
sr_file_vdi_destroy(const char *path, const char *uuid)
{
    char file[PATH_MAX];
    int rc = sr_file_join(file, sizeof(file), path, uuid, LEAF_SUFFIX);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&sr_file_names_lock);
    rc = destroy_locked(path, uuid, file);
    pthread_mutex_unlock(&sr_file_names_lock);
    return rc;
}

void
sr_file_uuid_generate(char out[37])
{
    uint8_t b[16];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, b, sizeof(b)) != (ssize_t)sizeof(b)) {
        for (size_t i = 0; i < sizeof(b); i++) /* defensive: /dev/urandom cannot fail */
            b[i] = (uint8_t)(rand() ^ (int)getpid());
    }
    if (fd >= 0)
        close(fd);
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    vhd_uuid_format(b, out);
}

/* Under sr_file_names_lock: link, two children (one when @fresh is NULL: a
 * split), rename (see the file header). */
static int
snapshot_locked(const char *leaf, const char *base, const char *fresh, const char *work)
{
    int rc;
    if (fresh && access(fresh, F_OK) == 0)
        return sr_file_fail(-EEXIST, "%s exists", fresh);
    if (link(leaf, base) < 0)
        return sr_file_fail(-errno, "link %s: %s", leaf, strerror(errno));
    unlink(work);
    if ((rc = vhd_snapshot(base, work)) < 0) {
        rc = sr_file_fail_vhd(rc, leaf);
        unlink(base);
        return rc;
    }
    if (fresh && (rc = vhd_snapshot(base, fresh)) < 0) {
        rc = sr_file_fail_vhd(rc, fresh);
        unlink(work);
        unlink(base);
        return rc;
    }
    test_crash_point("sr_file.snapshot.before_rename");
    if (rename(work, leaf) < 0) {
        rc = sr_file_fail(-errno, "rename onto %s: %s", leaf, strerror(errno));
        if (fresh)
            unlink(fresh);
        unlink(work);
        unlink(base);
        return rc;
    }
    chmod(base, 0400); /* invariant 2: never written again */
    return 0;
}

static int
snapshot(const char *path, const char *uuid, const char *new_uuid, char base_uuid_out[37])
{
    char leaf[PATH_MAX], base[PATH_MAX], fresh[PATH_MAX], work[PATH_MAX];
    char base_uuid[37];
    int rc;
    sr_file_uuid_generate(base_uuid);
    if ((rc = sr_file_join(leaf, sizeof(leaf), path, uuid, LEAF_SUFFIX)) < 0 ||
        (new_uuid && (rc = sr_file_join(fresh, sizeof(fresh), path, new_uuid, LEAF_SUFFIX)) < 0) ||
        (rc = sr_file_join(base, sizeof(base), path, base_uuid, BASE_SUFFIX)) < 0)
        return rc;
    if (snprintf(work, sizeof(work), "%s/.%s.part", path, uuid) >= (int)sizeof(work))
        return sr_file_fail(-ENAMETOOLONG, "path too long under %s", path);
    pthread_mutex_lock(&sr_file_names_lock);
    /* the leaf node is about to become the base: its blocks go to the log */
    rc = sr_file_cbt_fold_locked(path, uuid);
    if (rc == 0)
        rc = snapshot_locked(leaf, base, new_uuid ? fresh : NULL, work);
    if (rc == 0)
        sr_file_cbt_track_locked(path, uuid); /* failing, the next check adopts it */
    pthread_mutex_unlock(&sr_file_names_lock);
    if (rc < 0)
        return rc;
    sr_file_sync_dir(path);
    memcpy(base_uuid_out, base_uuid, 37);
    sr_file_clear_error();
    return 0;
}

int
sr_file_vdi_snapshot(const char *path, const char *uuid, const char *new_uuid,
                     char base_uuid_out[37])
{
    return snapshot(path, uuid, new_uuid, base_uuid_out);
}

int
sr_file_vdi_split(const char *path, const char *uuid, char base_uuid_out[37])
{
    return snapshot(path, uuid, NULL, base_uuid_out);
}

int
sr_file_vdi_unsplit(const char *path, const char *uuid, const char *base_uuid,
                    const char *new_uuid)
{
    char leaf[PATH_MAX], base[PATH_MAX], fresh[PATH_MAX];
    int rc;
    if ((rc = sr_file_join(leaf, sizeof(leaf), path, uuid, LEAF_SUFFIX)) < 0 ||
        (new_uuid && (rc = sr_file_join(fresh, sizeof(fresh), path, new_uuid, LEAF_SUFFIX)) < 0) ||
        (rc = sr_file_join(base, sizeof(base), path, base_uuid, BASE_SUFFIX)) < 0)
        return rc;
    pthread_mutex_lock(&sr_file_names_lock);
    chmod(base, 0600);
    if (rename(base, leaf) < 0)
        rc = sr_file_fail(-errno, "rename %s back: %s", base, strerror(errno));
    else if (new_uuid)
        unlink(fresh);
    pthread_mutex_unlock(&sr_file_names_lock);
    sr_file_sync_dir(path);
    return rc;
}

int
sr_file_vdi_resize(const char *path, const char *uuid, uint64_t size_bytes)
{
    char file[PATH_MAX];
    struct sr_file_vhd now;
    int rc = sr_file_join(file, sizeof(file), path, uuid, LEAF_SUFFIX);
    if (rc < 0 || (rc = sr_file_vdi_info(path, uuid, &now)) < 0)
        return rc;
    uint64_t size = sr_file_round_size(size_bytes);
    if (size < now.virtual_size)
        return sr_file_fail(-EINVAL, "shrinking from %llu to %llu bytes is not supported",
                    (unsigned long long)now.virtual_size, (unsigned long long)size);
    if (size == now.virtual_size)
        return 0;
    if (size > VHD_MAX_SIZE_BYTES)
        return sr_file_fail(-EFBIG, "%llu bytes is beyond the VHD limit", (unsigned long long)size);
    if ((rc = check_free(path, size - now.virtual_size)) < 0)
        return rc;
    /* under the lock: the collector's merge may replace this file by rename */
    pthread_mutex_lock(&sr_file_names_lock);
    rc = vhd_resize(file, size);
    pthread_mutex_unlock(&sr_file_names_lock);
    if (rc < 0)
        return sr_file_fail_vhd(rc, file);
    last_error[0] = '\0';
    return 0;
}

struct copy_progress {
    sr_file_progress_fn *fn;
    void *opaque;
};

static void
copy_progress(void *opaque, uint64_t done, uint64_t total)
{
    struct copy_progress *p = opaque;
    if (p->fn)
        p->fn(p->opaque, done, total);
}

int
sr_file_vdi_copy(const char *src_path, const char *uuid, const char *dst_path,
                 const char *new_uuid, sr_file_progress_fn *progress, void *opaque)
{
    char src[PATH_MAX], dst[PATH_MAX], work[PATH_MAX];
    struct sr_file_vhd info;
    int rc;
    if ((rc = sr_file_join(src, sizeof(src), src_path, uuid, LEAF_SUFFIX)) < 0 ||
        (rc = sr_file_join(dst, sizeof(dst), dst_path, new_uuid, LEAF_SUFFIX)) < 0 ||
        (rc = sr_file_vdi_info(src_path, uuid, &info)) < 0)
        return rc;
    if (snprintf(work, sizeof(work), "%s/.%s.part", dst_path, new_uuid) >= (int)sizeof(work))
        return sr_file_fail(-ENAMETOOLONG, "path too long under %s", dst_path);
    if (access(dst, F_OK) == 0)
        return sr_file_fail(-EEXIST, "%s exists", dst);
    if ((rc = check_free(dst_path, info.virtual_size)) < 0)
        return rc;
    struct vhd_chain *c = NULL;
    if ((rc = sr_file_chain_open(src, VHD_OPEN_RDONLY, &c)) < 0)
        return sr_file_fail_vhd(rc, src);
    unlink(work);
    struct copy_progress p = {progress, opaque};
    rc = vhd_convert_to(c, work, true, copy_progress, &p);
    if (rc < 0)
        rc = sr_file_fail_vhd(rc, src);
    vhd_chain_close(c);
    if (rc == 0 && rename(work, dst) < 0)
        rc = sr_file_fail(-errno, "rename onto %s: %s", dst, strerror(errno));
    if (rc < 0) {
        unlink(work);
        return rc;
    }
    sr_file_sync_dir(dst_path);
    last_error[0] = '\0';
    return 0;
}

static bool
all_zero(const uint8_t *p, size_t n)
{
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* The block loop of sr_file_vdi_copy_into over open chains. */
static int
copy_blocks(struct vhd_chain *src, struct vhd_chain *base, struct vhd_chain *dst,
            sr_file_progress_fn *progress, void *opaque)
{
    uint64_t size = vhd_chain_size(src);
    uint8_t *buf = malloc(SR_FILE_BLOCK_BYTES), *old = base ? malloc(SR_FILE_BLOCK_BYTES) : NULL;
    int rc = 0;
    if (!buf || (base && !old))
        rc = -ENOMEM;
    for (uint64_t off = 0; rc == 0 && off < size; off += SR_FILE_BLOCK_BYTES) {
        size_t len = (size_t)(size - off < SR_FILE_BLOCK_BYTES ? size - off : SR_FILE_BLOCK_BYTES);
        uint64_t run = 0;
        bool allocated = true;
        if (!base && (rc = vhd_chain_block_status(src, off, len, &run, &allocated)) < 0)
            break;
        if (!base && !allocated && run == len) {
            rc = vhd_chain_zero(dst, off, len, false);
        } else if ((rc = vhd_chain_read(src, buf, off, len)) == 0) {
            /* with a base, the target holds the base already: only what differs moves */
            if (base && (rc = vhd_chain_read(base, old, off, len)) == 0 && !memcmp(buf, old, len))
                ;
            else if (rc == 0)
                rc = all_zero(buf, len) ? vhd_chain_zero(dst, off, len, false)
                                        : vhd_chain_write(dst, buf, off, len, false);
        }
        if (rc == 0 && progress)
            progress(opaque, off + len, size);
    }
    free(buf);
    free(old);
    return rc < 0 ? rc : vhd_chain_flush(dst);
}

int
sr_file_vdi_copy_into(const char *src_path, const char *uuid, const char *base_path,
                      const char *base_uuid, const char *dst_path, const char *dst_uuid,
                      sr_file_progress_fn *progress, void *opaque)
{
    char src[PATH_MAX], base[PATH_MAX], dst[PATH_MAX];
    int rc;
    if ((rc = sr_file_join(src, sizeof(src), src_path, uuid, LEAF_SUFFIX)) < 0 ||
        (rc = sr_file_join(dst, sizeof(dst), dst_path, dst_uuid, LEAF_SUFFIX)) < 0 ||
        (base_path && (rc = sr_file_join(base, sizeof(base), base_path, base_uuid, LEAF_SUFFIX)) < 0))
        return rc;
    struct vhd_chain *s = NULL, *b = NULL, *d = NULL;
    if ((rc = sr_file_chain_open(src, VHD_OPEN_RDONLY, &s)) < 0)
        return sr_file_fail_vhd(rc, src);
    if (base_path && (rc = sr_file_chain_open(base, VHD_OPEN_RDONLY, &b)) < 0) {
        rc = sr_file_fail_vhd(rc, base);
    } else if ((rc = sr_file_chain_open(dst, VHD_OPEN_RDWR, &d)) < 0) {
        rc = sr_file_fail_vhd(rc, dst);
    } else if (vhd_chain_size(d) < vhd_chain_size(s)) {
        rc = sr_file_fail(-EFBIG, "%s is smaller than %s", dst, src);
    } else if (b && vhd_chain_size(b) != vhd_chain_size(s)) {
        rc = sr_file_fail(-EINVAL, "the base %s differs in size from %s", base, src);
    } else if ((rc = copy_blocks(s, b, d, progress, opaque)) < 0) {
        rc = sr_file_fail_vhd(rc, dst);
    }
    int closed = vhd_chain_close(d);
    vhd_chain_close(b);
    vhd_chain_close(s);
    if (rc == 0 && closed < 0)
        rc = sr_file_fail_vhd(closed, dst);
    if (rc == 0)
        sr_file_clear_error();
    return rc;
}
