/* storage/sr_file_gc.c - the directory SR's garbage collection steps.
 *
 * What is collected and why it is safe is in sr_file.h ("garbage
 * collection"); the order of steps and who is paused is the caller's
 * (api/storage_gc.c). Each step re-reads the directory under the names lock
 * before it changes a name, because VDIs may have been snapshotted or
 * destroyed while a long fold ran; a candidate that no longer holds is
 * -ESTALE and the caller simply looks again. Each reads the directory whole
 * (sr_file_scan_whole): a VHD it cannot open may be a child of any base, so
 * the step fails rather than find a base childless or single-childed without
 * it (the next pass looks again; a file that stays unreadable stops the
 * collector of that SR, with its reason in the log, until it is repaired).
 *
 * Crash safety: a fold only writes sectors into the parent that its child
 * holds, so the chain reads the same at every instant; a relink re-parents
 * children one header at a time (each child's chain reads the same through
 * the folded parent as through the child) and deletes the child last; a
 * merge renames the folded parent over the VDI's name in one step.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/sr_file_int.h"
#include "vhd/vhd.h"

/* Bytes of data the image @file holds by itself (its allocated blocks). */
static uint64_t
data_bytes(const char *file)
{
    struct vhd_chain *c = NULL;
    struct vhd_info info;
    if (vhd_chain_open(file, VHD_OPEN_RDONLY | VHD_OPEN_NO_PARENTS | VHD_OPEN_HEAD_FOOTER, &c) < 0)
        return UINT64_MAX;
    uint64_t bytes = UINT64_MAX;
    if (vhd_chain_info(c, 0, &info) == 0)
        bytes = info.type == VHD_TYPE_FIXED
                    ? info.size_bytes
                    : (uint64_t)info.allocated_blocks * info.block_size;
    vhd_chain_close(c);
    return bytes;
}

static int
file_of(char *out, size_t len, const char *path, const struct sr_file_vhd *v)
{
    return sr_file_join(out, len, path, v->uuid, v->hidden ? BASE_SUFFIX : LEAF_SUFFIX);
}

static const struct sr_file_vhd *
find_base(const struct sr_file_vhd *v, size_t n, const char *uuid)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].hidden && strcmp(v[i].uuid, uuid) == 0)
            return &v[i];
    return NULL;
}

int
sr_file_gc_find(const char *path, bool (*skip)(void *opaque, const char *child_uuid), void *opaque,
                struct sr_file_gc_candidate *out)
{
    struct sr_file_vhd *v = NULL;
    size_t n = 0, leaf_at = SIZE_MAX, base_at = SIZE_MAX;
    int rc = sr_file_scan_whole(path, &v, &n);
    if (rc < 0)
        return rc;
    /* Interior candidates first: they need nobody paused. */
    for (size_t i = 0; i < n && base_at == SIZE_MAX; i++) {
        size_t only = 0;
        if (!v[i].hidden || sr_file_count_children(v, n, v[i].uuid, &only) != 1 ||
            (skip && skip(opaque, v[only].uuid)))
            continue;
        /* A tracked leaf keeps its node: its changed blocks are the blocks
         * that node holds (sr_file_cbt.c), which a merge or split would mix
         * with older data. Its interior nodes are still folded. */
        if (!v[only].hidden && sr_file_cbt_exists(path, v[only].uuid))
            continue;
        if (v[only].hidden)
            base_at = only;
        else if (leaf_at == SIZE_MAX)
            leaf_at = only;
    }
    size_t at = base_at != SIZE_MAX ? base_at : leaf_at;
    if (at == SIZE_MAX) {
        free(v);
        return 0;
    }
    char file[PATH_MAX];
    memset(out, 0, sizeof(*out));
    memcpy(out->parent, v[at].parent_uuid, sizeof(out->parent));
    memcpy(out->child, v[at].uuid, sizeof(out->child));
    out->child_is_leaf = !v[at].hidden;
    rc = file_of(file, sizeof(file), path, &v[at]);
    out->child_data = rc < 0 ? UINT64_MAX : data_bytes(file);
    free(v);
    return rc < 0 ? rc : 1;
}

int
sr_file_gc_remove_garbage(const char *path, unsigned *removed)
{
    *removed = 0;
    pthread_mutex_lock(&sr_file_names_lock);
    int rc = 0;
    for (bool again = true; again && rc == 0;) {
        struct sr_file_vhd *v = NULL;
        size_t n = 0;
        again = false;
        if ((rc = sr_file_scan_whole(path, &v, &n)) < 0)
            break;
        for (size_t i = 0; i < n; i++) {
            size_t only = 0;
            char file[PATH_MAX];
            if (!v[i].hidden || sr_file_count_children(v, n, v[i].uuid, &only) != 0 ||
                file_of(file, sizeof(file), path, &v[i]) < 0)
                continue;
            if (unlink(file) < 0) {
                rc = sr_file_fail(-errno, "unlink %s: %s", file, strerror(errno));
                break;
            }
            ++*removed;
            again = true; /* its parent may have lost its last child */
        }
        free(v);
    }
    pthread_mutex_unlock(&sr_file_names_lock);
    if (*removed)
        sr_file_sync_dir(path);
    return rc;
}

int
sr_file_gc_fold(const char *path, const struct sr_file_gc_candidate *c,
                sr_file_progress_fn *progress, void *opaque)
{
    char child[PATH_MAX], parent[PATH_MAX];
    int rc;
    if ((rc = sr_file_join(child, sizeof(child), path, c->child,
                           c->child_is_leaf ? LEAF_SUFFIX : BASE_SUFFIX)) < 0 ||
        (rc = sr_file_join(parent, sizeof(parent), path, c->parent, BASE_SUFFIX)) < 0)
        return rc;
    /* Bases are kept 0400 so that nothing writes them by mistake; this is
     * the one writer they have. */
    chmod(parent, 0600);
    rc = vhd_coalesce(child, progress, opaque);
    chmod(parent, 0400);
    if (rc < 0)
        return sr_file_fail_vhd(rc, child);
    sr_file_clear_error();
    return 0;
}

/* Whether @c still describes the directory @v: the parent is a base whose
 * only child is @c->child, of the kind @c says. */
static bool
candidate_holds(const struct sr_file_vhd *v, size_t n, const struct sr_file_gc_candidate *c)
{
    size_t only = 0;
    if (!find_base(v, n, c->parent) || sr_file_count_children(v, n, c->parent, &only) != 1)
        return false;
    return strcmp(v[only].uuid, c->child) == 0 && v[only].hidden == !c->child_is_leaf;
}

/* Appends the leaf VDIs below @uuid to @out (DFS over the scan). */
static int
leaves_below(const struct sr_file_vhd *v, size_t n, const char *uuid, char (**out)[37],
             size_t *n_out, unsigned depth)
{
    if (depth > VHD_MAX_CHAIN_DEPTH)
        return -ELOOP;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i].parent_uuid, uuid) != 0)
            continue;
        if (v[i].hidden) {
            int rc = leaves_below(v, n, v[i].uuid, out, n_out, depth + 1);
            if (rc < 0)
                return rc;
            continue;
        }
        char(*grown)[37] = realloc(*out, (*n_out + 1) * sizeof(**out));
        if (!grown)
            return -ENOMEM;
        *out = grown;
        memcpy(grown[(*n_out)++], v[i].uuid, 37);
    }
    return 0;
}

static int
relink_locked(const char *path, const struct sr_file_gc_candidate *c, char (**leaves)[37],
              size_t *n_leaves)
{
    struct sr_file_vhd *v = NULL;
    size_t n = 0;
    char parent[PATH_MAX], child[PATH_MAX], file[PATH_MAX];
    int rc = sr_file_scan_whole(path, &v, &n);
    if (rc < 0)
        return rc;
    if (c->child_is_leaf || !candidate_holds(v, n, c)) {
        free(v);
        return sr_file_fail(-ESTALE, "base %s no longer has base %s as its only child",
                            c->parent, c->child);
    }
    if ((rc = sr_file_join(parent, sizeof(parent), path, c->parent, BASE_SUFFIX)) < 0 ||
        (rc = sr_file_join(child, sizeof(child), path, c->child, BASE_SUFFIX)) < 0 ||
        (rc = leaves_below(v, n, c->child, leaves, n_leaves, 0)) < 0) {
        free(v);
        return rc;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (strcmp(v[i].parent_uuid, c->child) != 0)
            continue;
        if ((rc = file_of(file, sizeof(file), path, &v[i])) < 0)
            break;
        bool base = v[i].hidden;
        if (base)
            chmod(file, 0600);
        if ((rc = vhd_reparent(file, parent)) < 0)
            rc = sr_file_fail_vhd(rc, file);
        if (base)
            chmod(file, 0400);
    }
    free(v);
    if (rc < 0)
        return rc; /* the children re-parented so far read the same: nothing to undo */
    if (unlink(child) < 0)
        return sr_file_fail(-errno, "unlink %s: %s", child, strerror(errno));
    sr_file_sync_dir(path);
    return 0;
}

int
sr_file_gc_relink(const char *path, const struct sr_file_gc_candidate *c, char (**leaves)[37],
                  size_t *n)
{
    *leaves = NULL;
    *n = 0;
    pthread_mutex_lock(&sr_file_names_lock);
    int rc = relink_locked(path, c, leaves, n);
    pthread_mutex_unlock(&sr_file_names_lock);
    if (rc < 0) {
        free(*leaves);
        *leaves = NULL;
        *n = 0;
        return rc;
    }
    sr_file_clear_error();
    return 0;
}

static int
merge_locked(const char *path, const struct sr_file_gc_candidate *c)
{
    struct sr_file_vhd *v = NULL;
    size_t n = 0;
    char parent[PATH_MAX], leaf[PATH_MAX];
    int rc;
    if ((rc = sr_file_join(parent, sizeof(parent), path, c->parent, BASE_SUFFIX)) < 0 ||
        (rc = sr_file_join(leaf, sizeof(leaf), path, c->child, LEAF_SUFFIX)) < 0 ||
        (rc = sr_file_scan_whole(path, &v, &n)) < 0)
        return rc;
    bool holds = c->child_is_leaf && candidate_holds(v, n, c);
    free(v);
    if (!holds)
        return sr_file_fail(-ESTALE, "base %s no longer has VDI %s as its only child", c->parent,
                            c->child);
    chmod(parent, 0600);
    if ((rc = vhd_coalesce(leaf, NULL, NULL)) < 0) {
        chmod(parent, 0400);
        return sr_file_fail_vhd(rc, leaf);
    }
    /* The parent now reads as the leaf did: it becomes the VDI. */
    if (rename(parent, leaf) < 0) {
        rc = sr_file_fail(-errno, "rename %s onto %s: %s", parent, leaf, strerror(errno));
        chmod(parent, 0400);
        return rc;
    }
    sr_file_sync_dir(path);
    return 0;
}

int
sr_file_gc_merge(const char *path, const struct sr_file_gc_candidate *c)
{
    pthread_mutex_lock(&sr_file_names_lock);
    int rc = merge_locked(path, c);
    pthread_mutex_unlock(&sr_file_names_lock);
    if (rc == 0)
        sr_file_clear_error();
    return rc;
}

int
sr_file_vdi_chain_fds(const char *path, const char *uuid, int *fds, unsigned max, unsigned *n)
{
    char file[PATH_MAX], cur[37];
    bool hidden = false;
    int rc = 0;
    *n = 0;
    snprintf(cur, sizeof(cur), "%s", uuid);
    pthread_mutex_lock(&sr_file_names_lock); /* no rename between two links */
    while (cur[0]) {
        struct sr_file_vhd self;
        if (*n == max) {
            rc = sr_file_fail(-ELOOP, "the chain of %s is deeper than %u", uuid, max);
            break;
        }
        if ((rc = sr_file_join(file, sizeof(file), path, cur, hidden ? BASE_SUFFIX : LEAF_SUFFIX)) <
            0)
            break;
        int fd = open(file, (hidden ? O_RDONLY : O_RDWR) | O_CLOEXEC);
        if (fd < 0) {
            rc = sr_file_fail(-errno, "%s: %s", file, strerror(errno));
            break;
        }
        fds[(*n)++] = fd;
        if ((rc = sr_file_describe(file, cur, hidden, &self)) < 0)
            break;
        memcpy(cur, self.parent_uuid, sizeof(cur));
        hidden = true;
    }
    pthread_mutex_unlock(&sr_file_names_lock);
    if (rc < 0) {
        for (unsigned i = 0; i < *n; i++)
            close(fds[i]);
        *n = 0;
    }
    return rc;
}
