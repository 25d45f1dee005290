/* vhd/check.c - every structural rule of a VHD chain, reported, never trusted.
 *
 * vhd_check() walks the chain from the given file toward the root. Per file it checks the
 * rules of `vhd-util check` as listed in spec 2.5 (footers, header, BAT, batmap, locators)
 * plus the hostile-input caps of spec 5, collecting one sentence per problem; the BAT rules
 * (inside the file, after metadata, no overlaps) are those of the open path (bat.c), so
 * what `check` passes, an open accepts. Parent links: the parent must resolve by file name
 * in the child's directory, open, carry the recorded UUID, and not repeat a file already
 * seen (loop), within VHD_MAX_CHAIN_DEPTH. Facts: shared/spec/storage.md 2.5, 5.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>

#include "vhd/vhd_int.h"

struct check_ctx {
    struct vhd_check_report *report;
    const char *name;               /* file being checked, for messages */
};

static void __attribute__((format(printf, 2, 3)))
problem(struct check_ctx *cx, const char *fmt, ...)
{
    struct vhd_check_report *r = cx->report;
    if (r->n_problems < VHD_CHECK_MAX_PROBLEMS) {
        char msg[128];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        const char *base = strrchr(cx->name, '/');
        snprintf(r->problems[r->n_problems], sizeof(r->problems[0]), "%.30s: %s",
                 base ? base + 1 : cx->name, msg);
    }
    r->n_problems++;
}

static bool
zero_bytes(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i])
            return false;
    }
    return true;
}

/* Rules on a parsed footer beyond those an open needs. */
static void
check_footer_fields(struct check_ctx *cx, const struct vhd_footer *f)
{
    if (!(f->features & VHD_FEATURES_RESERVED) || (f->features & ~3u))
        problem(cx, "footer features 0x%08x invalid", f->features);
    if (f->version != VHD_FILE_VERSION)
        problem(cx, "footer version 0x%08x unsupported", f->version);
    if (f->timestamp > vhd_time_now() + 86400)
        problem(cx, "footer timestamp in the future");
    if (memcmp(f->creator_app, "tap", 4) == 0 && f->creator_version > VHD_CREATOR_VERSION)
        problem(cx, "unsupported tap creator version 0x%08x", f->creator_version);
    uint32_t chs = vhd_geometry_chs(f->curr_size);
    uint64_t have = (uint64_t)(f->geometry >> 16) * ((f->geometry >> 8) & 0xFF) * (f->geometry & 0xFF);
    uint64_t max = (uint64_t)(chs >> 16) * ((chs >> 8) & 0xFF) * (chs & 0xFF);
    if (have > max && f->geometry != (65535u << 16 | 16u << 8 | 255u))
        problem(cx, "geometry larger than the size allows");
    if (f->saved > 1 || f->hidden > 1)
        problem(cx, "saved/hidden flags not 0 or 1");
    if (f->reserved_nonzero)
        problem(cx, "footer reserved bytes not zero");
    if (zero_bytes(f->uuid, 16))
        problem(cx, "footer UUID is null");
}

static int
read_footer_at(int fd, uint64_t off, struct vhd_footer *f)
{
    uint8_t buf[VHD_FOOTER_SIZE];
    int rc = vhd_io_pread(fd, buf, sizeof(buf), off);
    if (rc < 0)
        return rc;
    rc = vhd_footer_parse(buf, f);
    return rc < 0 ? rc : vhd_footer_validate(f);
}

/* Both footer copies. Returns true if at least one usable footer exists. */
static bool
check_footers(struct check_ctx *cx, int fd, uint64_t size)
{
    struct vhd_footer tail, head;
    int rt = read_footer_at(fd, size - VHD_FOOTER_SIZE, &tail);
    if (rt < 0 && size % VHD_SECTOR == 511)
        rt = read_footer_at(fd, size - 511, &tail);
    int rh = read_footer_at(fd, 0, &head);
    if (rt == 0) {
        check_footer_fields(cx, &tail);
        if (tail.type != VHD_TYPE_FIXED) {
            if (rh < 0)
                problem(cx, "footer copy at offset 0 is missing or damaged");
            else if (memcmp(&head, &tail, offsetof(struct vhd_footer, reserved_nonzero)) != 0)
                problem(cx, "primary and backup footers differ");
        }
        return true;
    }
    if (rh == 0 && head.type != VHD_TYPE_FIXED) {
        problem(cx, "trailing footer missing or damaged (the copy at 0 is valid: repairable)");
        check_footer_fields(cx, &head);
        return true;
    }
    problem(cx, "no valid footer (bad cookie, checksum, type or size)");
    return false;
}

static void
check_locators(struct check_ctx *cx, const struct vhd_image *img, const char *parent_name)
{
    uint32_t seen[8];
    size_t n_seen = 0;
    for (size_t i = 0; i < 8; i++) {
        const struct vhd_locator *l = &img->header.loc[i];
        if (l->code == VHD_PLAT_NONE) {
            if (l->data_space || l->data_len || l->data_offset || l->reserved)
                problem(cx, "unused parent locator %zu not zero", i);
            continue;
        }
        for (size_t k = 0; k < n_seen; k++) {
            if (seen[k] == l->code)
                problem(cx, "parent locator %zu duplicates a platform code", i);
        }
        seen[n_seen++] = l->code;
        if (l->code == VHD_PLAT_MAC || l->code == VHD_PLAT_WI2R || l->code == VHD_PLAT_WI2K)
            continue;   /* deprecated codes: kept, not decoded */
        char path[VHD_LOCATOR_MAX_BYTES * 2];
        if (l->reserved != 0 || vhd_locator_decode(img, l, path, sizeof(path)) < 0) {
            problem(cx, "parent locator %zu invalid (code, bounds or encoding)", i);
            continue;
        }
        const char *base = path + strlen(path);
        while (base > path && base[-1] != '/' && base[-1] != '\\')
            base--;
        if (parent_name && strcmp(base, parent_name) != 0)
            problem(cx, "parent locator %zu names %.40s, header names %.40s", i, base,
                    parent_name);
    }
}

static void
check_header_fields(struct check_ctx *cx, const struct vhd_image *img)
{
    const struct vhd_header *h = &img->header;
    if (h->reserved_nonzero)
        problem(cx, "header reserved bytes not zero");
    if (img->footer.type == VHD_TYPE_DIFF) {
        char name[800];
        if (vhd_header_parent_name(h, name, sizeof(name)) < 0 || !name[0]) {
            problem(cx, "parent name does not decode");
            check_locators(cx, img, NULL);
        } else {
            check_locators(cx, img, name);
        }
        if (h->parent_timestamp > vhd_time_now() + 86400)
            problem(cx, "parent timestamp in the future");
    } else {
        bool loc_zero = true;
        for (size_t i = 0; i < 8; i++)
            loc_zero &= h->loc[i].code == 0 && h->loc[i].data_offset == 0;
        if (!zero_bytes(h->parent_uuid, 16) || h->parent_timestamp || !loc_zero ||
            !zero_bytes(h->parent_name, sizeof(h->parent_name)))
            problem(cx, "parent fields set in a disk that is not differencing");
    }
    char why[160];
    if (vhd_batmap_check(img, why, sizeof(why)) < 0)
        problem(cx, "%s", why);
}

/* Check one file; *@img_out gets the opened image (or NULL if it cannot be opened). */
static void
check_file(struct check_ctx *cx, const char *path, struct vhd_image **img_out)
{
    *img_out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        problem(cx, "cannot open: %s", strerror(errno));
        return;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < VHD_FOOTER_SIZE) {
        problem(cx, "not a regular file of at least 512 bytes");
        close(fd);
        return;
    }
    uint64_t size = (uint64_t)st.st_size;
    if (size % VHD_SECTOR != 0 && size % VHD_SECTOR != 511)
        problem(cx, "invalid file size %llu (not a sector multiple)", (unsigned long long)size);
    if (!check_footers(cx, fd, size)) {
        close(fd);
        return;
    }
    struct vhd_image *img;
    int rc = vhd_image_open_fd(fd, VHD_OPEN_HEAD_FOOTER, path, &img);
    if (rc < 0) {
        problem(cx, "%s", vhd_last_error()[0] ? vhd_last_error() : strerror(-rc));
        return;
    }
    if (vhd_image_is_sparse(img))
        check_header_fields(cx, img);
    *img_out = img;
}

static int
parent_of(const struct vhd_image *child, char **out)
{
    char name[800];
    if (vhd_header_parent_name(&child->header, name, sizeof(name)) < 0 || !name[0] ||
        strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
        return -EINVAL;
    const char *slash = strrchr(child->path, '/');
    int n = slash ? asprintf(out, "%.*s/%s", (int)(slash - child->path), child->path, name)
                  : asprintf(out, "%s", name);
    return n < 0 ? -ENOMEM : 0;
}

int
vhd_check(const char *path, struct vhd_check_report *report)
{
    memset(report, 0, sizeof(*report));
    struct check_ctx cx = {.report = report, .name = path};
    struct vhd_image *chain[VHD_MAX_CHAIN_DEPTH] = {0};
    _cleanup_free_ char *cur = strdup(path);
    unsigned n = 0;
    if (!cur)
        return -ENOMEM;
    for (;;) {
        cx.name = cur;
        struct vhd_image *img;
        check_file(&cx, cur, &img);
        if (!img)
            break;
        chain[n++] = img;
        bool loop = false;
        for (unsigned i = 0; i + 1 < n; i++)
            loop |= chain[i]->dev == img->dev && chain[i]->ino == img->ino;
        if (loop) {
            problem(&cx, "parent loop: this file is already in the chain");
            break;
        }
        if (n >= 2 && memcmp(img->footer.uuid, chain[n - 2]->header.parent_uuid, 16) != 0)
            problem(&cx, "UUID differs from the parent UUID its child records");
        if (img->footer.type != VHD_TYPE_DIFF)
            break;
        if (n == VHD_MAX_CHAIN_DEPTH) {
            problem(&cx, "chain deeper than %d", VHD_MAX_CHAIN_DEPTH);
            break;
        }
        char *next;
        if (parent_of(img, &next) < 0) {
            problem(&cx, "parent name is not a plain file name");
            break;
        }
        if (access(next, F_OK) != 0) {
            problem(&cx, "parent %.60s is missing", next);
            free(next);
            break;
        }
        free(cur);
        cur = next;
    }
    for (unsigned i = 0; i < n; i++)
        vhd_image_free(chain[i]);
    return report->n_problems ? -EINVAL : 0;
}
