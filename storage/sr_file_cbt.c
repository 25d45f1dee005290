/* storage/sr_file_cbt.c - changed block tracking logs of the directory SR.
 *
 * The shape is SM's (xapi-project/sm drivers/VDI.py, cbtutil.py): every VDI
 * with tracking has a log `<uuid>.cbtlog` beside its VHD, holding a bitmap of
 * 64 KiB blocks and the uuids of the logs before (parent) and after (child)
 * it. A snapshot hands the VDI's bitmap (the blocks written since the
 * previous snapshot) to the snapshot's new log and starts the VDI's afresh,
 * so the logs of a disk form one list, oldest first, and the blocks changed
 * between two of them are the union of the bitmaps after the first up to the
 * second. A snapshot's log outlives its data (VDI.data_destroy) and the
 * collector, which never reads it.
 *
 * Where the bits come from: tapdisk sets them as writes go by. Here the disk
 * server needs no part in it, because the VHD records the same thing: a
 * snapshot leaves the VDI on a fresh, empty leaf node, and every write after
 * it allocates its sectors in that node (a differencing leaf records exactly
 * the sectors written, data and bitmap made durable before the write is
 * acknowledged). So a live log's bits are its saved bitmap plus the blocks
 * its leaf node holds, read when they are needed. That holds while the leaf
 * node is one that started empty under the log: snapshots and clones (the
 * only operations that replace a tracked leaf here; the collector leaves
 * tracked leaves alone, sr_file_gc_find) first fold the node's blocks into
 * the saved bitmap and then record the new node's footer uuid. A leaf node
 * that is not the recorded one was replaced behind our back (a file copied
 * in, a tool run by hand): a write could have been missed, so the log is
 * reset, its list cut (SM's VDI_CBT_METADATA_INCONSISTENT). A crash never
 * needs a reset: each step below leaves the logs reporting at least every
 * change, at worst some twice.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fileio.h"
#include "storage/sr_file_int.h"
#include "vhd/vhd.h"

#define CBT_SUFFIX ".cbtlog"
#define CBT_MAGIC "VCBT1"
#define CBT_MAX_WALK 4096

struct cbt_log {
    uint64_t size;   /* bytes of the disk the bitmap covers */
    char parent[37]; /* "" when none */
    char child[37];
    char node[37];   /* live logs: the leaf node whose blocks count too; "" = adopt */
    bool live;       /* the log of a VDI that is written (not a snapshot's) */
    uint8_t *bits;   /* (size / 64 KiB rounded up) bits, most significant first */
};

static size_t
bitmap_bytes(uint64_t size)
{
    uint64_t blocks = (size + SR_FILE_CBT_BLOCK - 1) / SR_FILE_CBT_BLOCK;
    return (size_t)((blocks + 7) / 8);
}

static void
log_free(struct cbt_log *l)
{
    free(l->bits);
    l->bits = NULL;
}

static int
log_path(char *out, size_t len, const char *path, const char *uuid)
{
    return sr_file_join(out, len, path, uuid, CBT_SUFFIX);
}

static const char *
or_dash(const char *s)
{
    return s[0] ? s : "-";
}

/* A uuid field of the header; false when it is neither a uuid nor "-". */
static bool
from_dash(char out[37], const char *s)
{
    out[0] = '\0';
    if (strcmp(s, "-") == 0)
        return true;
    if (!sr_file_uuid_valid(s))
        return false;
    memcpy(out, s, 37);
    return true;
}

/* Parses a log file's bytes (@file names it in errors). -EINVAL when they
 * are not a log. */
static int
log_parse(const char *file, const char *text, size_t len, struct cbt_log *out)
{
    memset(out, 0, sizeof(*out));
    const char *nl = memchr(text, '\n', len < 256 ? len : 256);
    char line[256], parent[40], child[40], node[40], tail;
    int live = 0;
    if (!nl)
        return sr_file_fail(-EINVAL, "%s: not a changed block log", file);
    memcpy(line, text, (size_t)(nl - text));
    line[nl - text] = '\0';
    /* %c after the last field: nothing may follow it on the line */
    if (sscanf(line, CBT_MAGIC " size=%" SCNu64 " parent=%39s child=%39s node=%39s live=%d%c",
               &out->size, parent, child, node, &live, &tail) != 5 ||
        strncmp(line, CBT_MAGIC " size=", sizeof(CBT_MAGIC " size=") - 1) != 0 ||
        (live != 0 && live != 1))
        return sr_file_fail(-EINVAL, "%s: not a changed block log", file);
    size_t head = (size_t)(nl - text) + 1, n = bitmap_bytes(out->size);
    if (out->size > ((uint64_t)1 << 50) || len - head != n)
        return sr_file_fail(-EINVAL, "%s: its bitmap is %zu bytes, not %zu", file, len - head, n);
    if (!from_dash(out->parent, parent) || !from_dash(out->child, child) ||
        !from_dash(out->node, node))
        return sr_file_fail(-EINVAL, "%s: a link is not a uuid", file);
    out->live = live != 0;
    if (!(out->bits = calloc(n + 1, 1)))
        return -ENOMEM;
    memcpy(out->bits, text + head, n);
    return 0;
}

/* The bytes of log @l, freed with free(). */
static int
log_format(const struct cbt_log *l, uint8_t **out, size_t *len)
{
    char head[256];
    int h = snprintf(head, sizeof(head), CBT_MAGIC " size=%" PRIu64 " parent=%s child=%s node=%s live=%d\n",
                     l->size, or_dash(l->parent), or_dash(l->child), or_dash(l->node), l->live);
    size_t n = bitmap_bytes(l->size);
    uint8_t *buf = malloc((size_t)h + n + 1);
    if (!buf)
        return -ENOMEM;
    memcpy(buf, head, (size_t)h);
    if (n)
        memcpy(buf + h, l->bits, n);
    *out = buf;
    *len = (size_t)h + n;
    return 0;
}

/* -ENOENT when @uuid has no log. */
static int
log_read(const char *path, const char *uuid, struct cbt_log *out)
{
    char file[PATH_MAX], *text = NULL;
    size_t len = 0;
    memset(out, 0, sizeof(*out)); /* callers free it whatever happens */
    int rc = log_path(file, sizeof(file), path, uuid);
    if (rc < 0)
        return rc;
    if ((rc = fileio_read_all(file, (size_t)1 << 30, &text, &len)) < 0)
        return rc;
    rc = log_parse(file, text, len, out);
    free(text);
    return rc;
}

int
sr_file_cbt_parse_roundtrip(const char *data, size_t len)
{
    struct cbt_log a, b;
    int rc = log_parse("input", data, len, &a);
    if (rc < 0)
        return rc;
    uint8_t *buf = NULL;
    size_t n = 0;
    if ((rc = log_format(&a, &buf, &n)) == 0) {
        if ((rc = log_parse("formatted", (const char *)buf, n, &b)) == 0) {
            bool same = a.size == b.size && a.live == b.live && !strcmp(a.parent, b.parent) &&
                        !strcmp(a.child, b.child) && !strcmp(a.node, b.node) &&
                        memcmp(a.bits, b.bits, bitmap_bytes(a.size)) == 0;
            log_free(&b);
            rc = same ? 0 : -EPROTO;
        }
        free(buf);
    }
    log_free(&a);
    return rc;
}

/* Replaces @uuid's log in one step (write to a new file, fsync, rename). */
static int
log_write(const char *path, const char *uuid, const struct cbt_log *l)
{
    char file[PATH_MAX];
    uint8_t *buf = NULL;
    size_t n = 0;
    int rc = log_path(file, sizeof(file), path, uuid);
    if (rc < 0 || (rc = log_format(l, &buf, &n)) < 0)
        return rc;
    rc = fileio_write_atomic(file, buf, n, 0600);
    free(buf);
    return rc < 0 ? sr_file_fail(rc, "write %s: %s", file, strerror(-rc)) : 0;
}

/* Grows or shrinks @l's bitmap to @size bytes of disk (a resize). */
static int
log_resize(struct cbt_log *l, uint64_t size)
{
    size_t old = bitmap_bytes(l->size), n = bitmap_bytes(size);
    uint8_t *bits = realloc(l->bits, n + 1);
    if (!bits)
        return -ENOMEM;
    if (n > old)
        memset(bits + old, 0, n - old);
    l->bits = bits;
    l->size = size;
    return 0;
}

/* ORs @src (@src_size bytes of disk) into @dst (@dst_size). */
static void
bits_or(uint8_t *dst, uint64_t dst_size, const uint8_t *src, uint64_t src_size)
{
    size_t n = bitmap_bytes(dst_size < src_size ? dst_size : src_size);
    for (size_t i = 0; i < n; i++)
        dst[i] |= src[i];
}

/* The leaf node of VDI @uuid: its footer uuid and virtual size. */
static int
leaf_node(const char *path, const char *uuid, char node[37], uint64_t *size)
{
    char file[PATH_MAX];
    struct vhd_chain *c = NULL;
    struct vhd_info info;
    int rc = sr_file_join(file, sizeof(file), path, uuid, LEAF_SUFFIX);
    if (rc < 0)
        return rc;
    if ((rc = vhd_chain_open(file, VHD_OPEN_RDONLY | VHD_OPEN_NO_PARENTS, &c)) < 0)
        return sr_file_fail_vhd(rc, file);
    rc = vhd_chain_info(c, 0, &info);
    if (rc == 0) {
        vhd_uuid_format(info.uuid, node);
        *size = vhd_chain_size(c);
    }
    vhd_chain_close(c);
    return rc;
}

/* ORs into @bits (for @size bytes of disk) the blocks VDI @uuid's leaf node
 * holds by itself. */
static int
mark_leaf(const char *path, const char *uuid, uint8_t *bits, uint64_t size)
{
    char file[PATH_MAX];
    struct vhd_chain *c = NULL;
    int rc = sr_file_join(file, sizeof(file), path, uuid, LEAF_SUFFIX);
    if (rc < 0)
        return rc;
    if ((rc = vhd_chain_open(file, VHD_OPEN_RDONLY | VHD_OPEN_NO_PARENTS, &c)) < 0)
        return sr_file_fail_vhd(rc, file);
    uint64_t end = vhd_chain_size(c) < size ? vhd_chain_size(c) : size;
    for (uint64_t off = 0; off < end;) {
        uint64_t run = 0;
        bool allocated = false;
        if ((rc = vhd_chain_block_status(c, off, end - off, &run, &allocated)) < 0 || run == 0)
            break;
        if (allocated)
            for (uint64_t b = off / SR_FILE_CBT_BLOCK; b <= (off + run - 1) / SR_FILE_CBT_BLOCK; b++)
                bits[b / 8] |= (uint8_t)(0x80u >> (b % 8));
        off += run;
    }
    vhd_chain_close(c);
    return rc < 0 ? sr_file_fail_vhd(rc, file) : 0;
}

/* Sets @uuid's log's @which link ("parent" or "child") to @value, if it has
 * a log. */
static int
relink(const char *path, const char *uuid, bool parent, const char *value)
{
    struct cbt_log l;
    if (!uuid[0])
        return 0;
    int rc = log_read(path, uuid, &l);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return rc;
    snprintf(parent ? l.parent : l.child, 37, "%s", value);
    rc = log_write(path, uuid, &l);
    log_free(&l);
    return rc;
}

/* Checks live log @l of @uuid against its leaf node (see the file header);
 * a replaced node resets it. Returns 1 after a reset, 0, or -errno. Writes
 * the log when it changed. */
static int
check_locked(const char *path, const char *uuid, struct cbt_log *l)
{
    char node[37];
    uint64_t size = 0;
    int rc = leaf_node(path, uuid, node, &size);
    if (rc < 0)
        return rc;
    bool reset = l->node[0] && strcmp(l->node, node) != 0;
    bool changed = reset || !l->node[0] || size != l->size;
    if (reset) {
        if ((rc = relink(path, l->parent, false, "")) < 0)
            return rc;
        l->parent[0] = '\0';
        memset(l->bits, 0, bitmap_bytes(l->size));
    }
    if (size != l->size && (rc = log_resize(l, size)) < 0)
        return rc;
    memcpy(l->node, node, sizeof(l->node));
    if (changed && (rc = log_write(path, uuid, l)) < 0)
        return rc;
    return reset ? 1 : 0;
}

bool
sr_file_cbt_exists(const char *path, const char *uuid)
{
    char file[PATH_MAX];
    return log_path(file, sizeof(file), path, uuid) == 0 && access(file, F_OK) == 0;
}

int
sr_file_cbt_enable(const char *path, const char *uuid)
{
    struct cbt_log l = {.live = true};
    pthread_mutex_lock(&sr_file_names_lock);
    int rc = sr_file_cbt_exists(path, uuid) ? 0 : leaf_node(path, uuid, l.node, &l.size);
    if (rc == 0 && !sr_file_cbt_exists(path, uuid)) {
        if (!(l.bits = calloc(bitmap_bytes(l.size) + 1, 1)))
            rc = -ENOMEM;
        else
            rc = log_write(path, uuid, &l);
    }
    pthread_mutex_unlock(&sr_file_names_lock);
    log_free(&l);
    return rc;
}

int
sr_file_cbt_disable(const char *path, const char *uuid)
{
    struct cbt_log l;
    char file[PATH_MAX];
    pthread_mutex_lock(&sr_file_names_lock);
    int rc = log_read(path, uuid, &l);
    if (rc == 0) {
        /* SM: the log goes and the one before it ends the list */
        rc = relink(path, l.parent, false, "");
        if (rc == 0 && (rc = log_path(file, sizeof(file), path, uuid)) == 0 && unlink(file) < 0)
            rc = sr_file_fail(-errno, "unlink %s: %s", file, strerror(errno));
        log_free(&l);
    }
    pthread_mutex_unlock(&sr_file_names_lock);
    return rc == -ENOENT ? 0 : rc;
}

int
sr_file_cbt_fold_locked(const char *path, const char *uuid)
{
    struct cbt_log l;
    int rc = log_read(path, uuid, &l);
    if (rc == -ENOENT)
        return 0;
    if (rc == 0 && l.live && (rc = check_locked(path, uuid, &l)) >= 0 &&
        (rc = mark_leaf(path, uuid, l.bits, l.size)) == 0) {
        l.node[0] = '\0'; /* the next node is adopted (sr_file_cbt_track_locked) */
        rc = log_write(path, uuid, &l);
    }
    log_free(&l);
    return rc;
}

int
sr_file_cbt_track_locked(const char *path, const char *uuid)
{
    struct cbt_log l;
    int rc = log_read(path, uuid, &l);
    if (rc == -ENOENT)
        return 0;
    if (rc == 0 && l.live)
        rc = check_locked(path, uuid, &l);
    log_free(&l);
    return rc < 0 ? rc : 0;
}

int
sr_file_cbt_snapshot(const char *path, const char *uuid, const char *snap_uuid)
{
    struct cbt_log l, s = {0};
    pthread_mutex_lock(&sr_file_names_lock);
    int rc = log_read(path, uuid, &l);
    if (rc == 0) {
        /* 1. the snapshot's log takes the bits; 2. the previous log points
         * to it; 3. the VDI starts afresh after it. A crash between two steps
         * leaves the bits in two logs of the list: reported twice, never
         * lost. */
        s.size = l.size;
        memcpy(s.parent, l.parent, sizeof(s.parent));
        snprintf(s.child, sizeof(s.child), "%s", uuid);
        s.bits = l.bits;
        rc = log_write(path, snap_uuid, &s);
        if (rc == 0)
            rc = relink(path, l.parent, false, snap_uuid);
        if (rc == 0) {
            snprintf(l.parent, sizeof(l.parent), "%s", snap_uuid);
            memset(l.bits, 0, bitmap_bytes(l.size));
            rc = log_write(path, uuid, &l);
        }
        log_free(&l);
    }
    pthread_mutex_unlock(&sr_file_names_lock);
    return rc;
}

int
sr_file_cbt_remove_locked(const char *path, const char *uuid)
{
    struct cbt_log l, c;
    char file[PATH_MAX];
    int rc = log_read(path, uuid, &l);
    if (rc < 0)
        return rc == -ENOENT ? 0 : rc;
    if (l.child[0]) {
        /* its changes become the next log's: the list still covers them */
        int crc = log_read(path, l.child, &c);
        if (crc == 0) {
            if (l.size > c.size)
                crc = log_resize(&c, l.size);
            if (crc == 0) {
                bits_or(c.bits, c.size, l.bits, l.size);
                memcpy(c.parent, l.parent, sizeof(c.parent));
                crc = log_write(path, l.child, &c);
            }
            log_free(&c);
        }
        if (crc < 0 && crc != -ENOENT)
            rc = crc;
    }
    if (rc == 0)
        rc = relink(path, l.parent, false, l.child);
    if (rc == 0 && (rc = log_path(file, sizeof(file), path, uuid)) == 0 && unlink(file) < 0 &&
        errno != ENOENT)
        rc = sr_file_fail(-errno, "unlink %s: %s", file, strerror(errno));
    log_free(&l);
    return rc;
}

int
sr_file_cbt_remove(const char *path, const char *uuid)
{
    pthread_mutex_lock(&sr_file_names_lock);
    int rc = sr_file_cbt_remove_locked(path, uuid);
    pthread_mutex_unlock(&sr_file_names_lock);
    return rc;
}

int
sr_file_cbt_check(const char *path, const char *uuid)
{
    struct cbt_log l;
    pthread_mutex_lock(&sr_file_names_lock);
    int rc = log_read(path, uuid, &l);
    if (rc == 0) {
        rc = l.live ? check_locked(path, uuid, &l) : 0;
        log_free(&l);
    }
    pthread_mutex_unlock(&sr_file_names_lock);
    return rc;
}

static int
changed_locked(const char *path, const char *from, const char *to, uint8_t **out,
               uint64_t *out_size)
{
    struct cbt_log l;
    int rc = log_read(path, from, &l);
    if (rc < 0)
        return rc;
    char cur[37];
    memcpy(cur, l.child, sizeof(cur));
    log_free(&l);
    uint8_t *acc = NULL;
    uint64_t acc_size = 0;
    for (unsigned steps = 0; rc == 0; steps++) {
        if (!cur[0] || steps == CBT_MAX_WALK || strcmp(cur, from) == 0) {
            rc = -ENOENT; /* the list ends (or loops) before @to */
            break;
        }
        if ((rc = log_read(path, cur, &l)) < 0)
            break;
        if (l.live && (rc = check_locked(path, cur, &l)) != 0) {
            log_free(&l);
            rc = rc > 0 ? -ENOENT : rc; /* reset: the list no longer reaches it */
            break;
        }
        if (l.live && (rc = mark_leaf(path, cur, l.bits, l.size)) < 0) {
            log_free(&l);
            break;
        }
        if (l.size > acc_size) {
            uint8_t *grown = realloc(acc, bitmap_bytes(l.size) + 1);
            if (!grown) {
                log_free(&l);
                rc = -ENOMEM;
                break;
            }
            memset(grown + bitmap_bytes(acc_size), 0,
                   bitmap_bytes(l.size) + 1 - bitmap_bytes(acc_size));
            acc = grown;
            acc_size = l.size;
        }
        bits_or(acc, acc_size, l.bits, l.size);
        bool done = strcmp(cur, to) == 0;
        memcpy(cur, l.child, sizeof(cur));
        uint64_t last_size = l.size;
        log_free(&l);
        if (done) {
            /* the answer covers @to's disk: a shrink drops the tail */
            size_t keep = bitmap_bytes(last_size);
            if (keep < bitmap_bytes(acc_size))
                memset(acc + keep, 0, bitmap_bytes(acc_size) - keep);
            uint64_t tail = (last_size + SR_FILE_CBT_BLOCK - 1) / SR_FILE_CBT_BLOCK;
            if (tail % 8 && keep)
                acc[keep - 1] &= (uint8_t)(0xffu << (8 - tail % 8));
            *out = acc;
            *out_size = last_size;
            return 0;
        }
    }
    free(acc);
    return rc;
}

int
sr_file_cbt_changed(const char *path, const char *from, const char *to, uint8_t **bits,
                    uint64_t *size)
{
    *bits = NULL;
    *size = 0;
    pthread_mutex_lock(&sr_file_names_lock);
    int rc = changed_locked(path, from, to, bits, size);
    pthread_mutex_unlock(&sr_file_names_lock);
    return rc;
}
