/* vhd/repair.c - fix what can be fixed without guessing at guest data.
 *
 * Repairable: the trailing footer (missing after a crash during allocation, damaged, or
 * different from the copy at 0) is rewritten at the end of data computed from the BAT,
 * from the trailing copy if it is valid, else from the copy at 0 (spec 1.2.1: blktap's
 * `vhd-util repair`); the copy at 0 is rewritten from the trailing one when it is the bad
 * one; bytes after the end of data are cut (an unreferenced block left by a crash); an
 * invalid batmap is rewritten all clear (clear bits are always safe, spec 1.8). Not
 * repairable: a damaged header or BAT, overlapping blocks, bad parent links - any "fix"
 * would silently change what the guest reads. The result is checked with vhd_check().
 * vhd_set_hidden() lives here too: like a repair it rewrites both footer copies in place.
 * Facts: the VHD specification (Microsoft's Virtual Hard Disk Image Format Specification), 1.8, 2.5.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "vhd/vhd_int.h"

static void
repaired(struct vhd_check_report *r, const char *what)
{
    if (r->n_repaired < 8)
        snprintf(r->repaired[r->n_repaired], sizeof(r->repaired[0]), "%s", what);
    r->n_repaired++;
}

static bool
footer_at(int fd, uint64_t off, struct vhd_footer *f)
{
    uint8_t buf[VHD_FOOTER_SIZE];
    return vhd_io_pread(fd, buf, sizeof(buf), off) == 0 && vhd_footer_parse(buf, f) == 0 &&
           vhd_footer_validate(f) == 0;
}

static int
repair_sparse(struct vhd_image *img, struct vhd_check_report *r)
{
    struct vhd_footer tail, head;
    uint64_t size = img->file_size;
    bool tail_ok = footer_at(img->fd, size - VHD_FOOTER_SIZE, &tail) &&
                   memcmp(&tail, &img->footer, sizeof(tail)) == 0;
    bool head_ok = footer_at(img->fd, 0, &head) &&
                   memcmp(&head, &img->footer, offsetof(struct vhd_footer, reserved_nonzero)) == 0;
    int rc;
    if (!head_ok) {
        rc = vhd_footer_write(img, 0);
        if (rc < 0)
            return rc;
        repaired(r, "rewrote the footer copy at offset 0");
    }
    if (!tail_ok || size != img->end_of_data + VHD_FOOTER_SIZE) {
        img->footer_dirty = true;
        rc = vhd_image_sync_footer(img);
        if (rc < 0)
            return rc;
        repaired(r, "rewrote the trailing footer after the last block");
    }
    char why[160];
    if (vhd_batmap_check(img, why, sizeof(why)) == -EINVAL) {
        uint64_t end = vhd_batmap_header_offset(&img->header) + VHD_SECTOR +
                       (uint64_t)vhd_batmap_sectors(img->header.max_bat_entries) * VHD_SECTOR;
        if (end <= img->meta_end) {
            rc = vhd_batmap_write_empty(img->fd, &img->header, img->header.max_bat_entries);
            if (rc < 0)
                return rc;
            repaired(r, "rewrote the batmap with every bit clear");
        }
    }
    return fdatasync(img->fd) == 0 ? 0 : -errno;
}

int
vhd_repair(const char *path, struct vhd_check_report *report)
{
    memset(report, 0, sizeof(*report));
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return vhd_fail(-errno, "cannot open %s: %s", path, strerror(errno));
    int ro = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (ro < 0) {
        close(fd);
        return -errno;
    }
    /* Opened as read-only inspection (head copy allowed), then written through fd. */
    struct vhd_image *img;
    int rc = vhd_image_open_fd(ro, VHD_OPEN_HEAD_FOOTER, path, &img);
    if (rc == 0) {
        if (vhd_image_is_sparse(img)) {
            close(img->fd);
            img->fd = fd;
            fd = -1;
            img->writable = true;
            rc = repair_sparse(img, report);
        }
        vhd_image_free(img);
    }
    if (fd >= 0)
        close(fd);
    struct vhd_check_report after;
    int rc_check = vhd_check(path, &after);
    unsigned n_rep = report->n_repaired;
    char rep[8][160];
    memcpy(rep, report->repaired, sizeof(rep));
    *report = after;
    report->n_repaired = n_rep;
    memcpy(report->repaired, rep, sizeof(rep));
    if (rc < 0 && rc != -EINVAL)
        return rc;
    return rc_check;
}

int
vhd_set_hidden(const char *path, bool hidden)
{
    struct vhd_chain *c;
    int rc = vhd_chain_open(path, VHD_OPEN_RDWR | VHD_OPEN_NO_PARENTS, &c);
    if (rc < 0)
        return rc;
    struct vhd_image *img = c->images[0];
    img->footer.hidden = hidden ? 1 : 0;
    if (vhd_image_is_sparse(img))
        rc = vhd_footer_write(img, 0);      /* the copy at 0 equals the trailing one */
    img->footer_dirty = true;
    if (rc == 0)
        rc = vhd_image_sync_footer(img);
    int rc_close = vhd_chain_close(c);      /* fdatasync */
    return rc < 0 ? rc : rc_close;
}
