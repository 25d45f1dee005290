/* storage/sr_file_intent.c - intents, and recovery of what a crash left in a
 * directory SR.
 *
 * A VDI's file is made before its record commits (the record must not name a
 * file that is not there), so a crash in between leaves a <uuid>.vhd that no
 * record owns. Such a file looks exactly like a disk a user copied into the
 * SR, which SR.scan adopts as a new VDI (SM's behaviour), so it cannot be
 * recognised by its name or content. The creator therefore first writes an
 * intent, .<uuid>.intent, durably (file and directory synced), then makes the
 * files, then commits the record, then drops the intent. Recovery, run while
 * no operation is under way (vesseld's start, before it listens), decides by
 * the intent alone:
 *  - intent and record: the creation committed; the intent goes;
 *  - intent, no record: it did not; <uuid>.vhd and the intent go;
 *  - no intent: not ours to judge; the file stays (a user's disk).
 * Two more kinds of leftovers need no intent:
 *  - work files .*.part: only ever written by an operation in flight, and
 *    none is in flight during recovery;
 *  - a base <b>.base.vhd that is a hard link of a VDI's leaf (same inode): a
 *    snapshot or split stopped between its link and its rename (sr_file.c);
 *    the leaf holds the data, the link goes (its children went as work files
 *    or uncommitted VDIs).
 * The intent's content is one line, the operation and for a clone the VDI it
 * split: "clone <leaf-uuid>", for the log.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/sr_file_int.h"

#define INTENT_SUFFIX ".intent"

static int
intent_path(char *out, size_t len, const char *path, const char *uuid)
{
    if (!sr_file_uuid_valid(uuid))
        return sr_file_fail(-EINVAL, "not a uuid: %s", uuid);
    int n = snprintf(out, len, "%s/.%s%s", path, uuid, INTENT_SUFFIX);
    if (n < 0 || (size_t)n >= len)
        return sr_file_fail(-ENAMETOOLONG, "path too long under %s", path);
    return 0;
}

int
sr_file_intent_begin(const char *path, const char *uuid, const char *what)
{
    char file[PATH_MAX];
    int rc = intent_path(file, sizeof(file), path, uuid);
    if (rc < 0)
        return rc;
    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return sr_file_fail(-errno, "%s: %s", file, strerror(errno));
    size_t len = strlen(what);
    bool ok = write(fd, what, len) == (ssize_t)len && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    rc = ok ? 0 : -(errno ? errno : EIO);
    close(fd);
    if (rc == 0)
        rc = sr_file_sync_dir(path); /* durable before any file it vouches for */
    if (rc < 0) {
        unlink(file);
        return sr_file_fail(rc, "%s: %s", file, strerror(-rc));
    }
    return 0;
}

void
sr_file_intent_end(const char *path, const char *uuid)
{
    char file[PATH_MAX];
    if (intent_path(file, sizeof(file), path, uuid) == 0)
        unlink(file); /* not synced: a stale intent only repeats a decided outcome */
}

bool
sr_file_intent_exists(const char *path, const char *uuid)
{
    char file[PATH_MAX];
    return intent_path(file, sizeof(file), path, uuid) == 0 && access(file, F_OK) == 0;
}

/* ------------------------------------------------------------------ recovery */

struct recovery {
    const char *path;
    sr_file_committed_fn *committed;
    sr_file_removed_fn *removed;
    void *opaque;
    unsigned n;
};

static void
remove_file(struct recovery *r, const char *name, const char *why)
{
    char file[PATH_MAX];
    if (snprintf(file, sizeof(file), "%s/%s", r->path, name) >= (int)sizeof(file))
        return;
    if (unlink(file) < 0)
        return; /* already gone (ENOENT), or refused: left for the next start */
    r->n++;
    if (r->removed)
        r->removed(r->opaque, file, why);
}

/* The uuid of ".<uuid>.intent", or false. */
static bool
intent_name(const char *name, char uuid[37])
{
    size_t n = strlen(name);
    if (n != 1 + 36 + strlen(INTENT_SUFFIX) || name[0] != '.' ||
        strcmp(name + 37, INTENT_SUFFIX) != 0)
        return false;
    memcpy(uuid, name + 1, 36);
    uuid[36] = '\0';
    return sr_file_uuid_valid(uuid);
}

static bool
work_name(const char *name)
{
    size_t n = strlen(name);
    return name[0] == '.' && n > 5 && strcmp(name + n - 5, ".part") == 0;
}

static void
recover_intent(struct recovery *r, const char *name, const char *uuid)
{
    if (!r->committed(r->opaque, uuid)) {
        char vdi[64], what[160] = "", file[PATH_MAX], why[200];
        snprintf(file, sizeof(file), "%s/%s", r->path, name);
        FILE *f = fopen(file, "r");
        if (f) {
            if (!fgets(what, sizeof(what), f))
                what[0] = '\0';
            fclose(f);
        }
        what[strcspn(what, "\n")] = '\0';
        snprintf(vdi, sizeof(vdi), "%s%s", uuid, LEAF_SUFFIX);
        snprintf(why, sizeof(why), "uncommitted VDI (%s)", what[0] ? what : "unknown operation");
        remove_file(r, vdi, why);
        /* a snapshot's log hands its blocks back to the VDI's */
        if (sr_file_cbt_exists(r->path, uuid) && sr_file_cbt_remove_locked(r->path, uuid) == 0)
            r->removed(r->opaque, uuid, "its changed block log (.cbtlog) too");
    }
    remove_file(r, name, "intent");
}

/* A base that is a second name of a VDI's leaf: see the file header. */
static void
recover_links(struct recovery *r, DIR *d)
{
    struct entry {
        char name[64];
        ino_t ino;
        dev_t dev;
        bool hidden;
    } *v = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    rewinddir(d);
    while ((e = readdir(d))) {
        char uuid[37], file[PATH_MAX];
        bool hidden;
        struct stat st;
        if (strlen(e->d_name) >= sizeof(v->name) || !sr_file_name_parse(e->d_name, uuid, &hidden) ||
            snprintf(file, sizeof(file), "%s/%s", r->path, e->d_name) >= (int)sizeof(file) ||
            lstat(file, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink < 2)
            continue;
        if (n == cap) {
            size_t ncap = cap ? 2 * cap : 16;
            struct entry *nv = realloc(v, ncap * sizeof(*nv));
            if (!nv)
                break; /* out of memory: the links wait for the next start */
            v = nv;
            cap = ncap;
        }
        memcpy(v[n].name, e->d_name, strlen(e->d_name) + 1);
        v[n].ino = st.st_ino;
        v[n].dev = st.st_dev;
        v[n].hidden = hidden;
        n++;
    }
    for (size_t i = 0; i < n; i++) {
        if (!v[i].hidden)
            continue;
        for (size_t j = 0; j < n; j++) {
            if (!v[j].hidden && v[j].ino == v[i].ino && v[j].dev == v[i].dev) {
                char why[128];
                snprintf(why, sizeof(why), "unfinished snapshot of %s", v[j].name);
                remove_file(r, v[i].name, why);
                break;
            }
        }
    }
    free(v);
}

int
sr_file_recover(const char *path, sr_file_committed_fn *committed, sr_file_removed_fn *removed,
                void *opaque, unsigned *n_removed)
{
    struct recovery r = {path, committed, removed, opaque, 0};
    pthread_mutex_lock(&sr_file_names_lock);
    DIR *d = opendir(path);
    if (!d) {
        int rc = sr_file_fail(-errno, "%s: %s", path, strerror(errno));
        pthread_mutex_unlock(&sr_file_names_lock);
        return rc;
    }
    struct dirent *e;
    /* intents first: a rolled-back clone's VDI is a child of the base the
     * link check below may remove */
    while ((e = readdir(d))) {
        char uuid[37];
        if (intent_name(e->d_name, uuid))
            recover_intent(&r, e->d_name, uuid);
    }
    rewinddir(d);
    while ((e = readdir(d)))
        if (work_name(e->d_name))
            remove_file(&r, e->d_name, "work file");
    recover_links(&r, d);
    closedir(d);
    if (r.n)
        sr_file_sync_dir(path);
    pthread_mutex_unlock(&sr_file_names_lock);
    if (n_removed)
        *n_removed = r.n;
    sr_file_clear_error();
    return 0;
}
