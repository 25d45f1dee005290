/* vhd/footer.c - the 512-byte hard disk footer: parse, validate, serialise, write.
 *
 * The footer is the one structure every VHD has: the last 512 bytes of the file, plus a
 * copy at offset 0 for dynamic and differencing disks. Parsing converts big-endian fields
 * to host order and verifies the checksum (NOT of the byte sum with the checksum field
 * counted as zero, with blktap's "hidden byte" quirk); validation applies the rules an open
 * needs (type, size, data offset); the stricter cosmetic rules live in check.c. Creation
 * defaults (creator "tap\0" 1.3, CHS geometry) follow spec 1.2.2 so that QEMU, vhd-util and
 * we all read the same virtual size. Facts: the VHD specification (Microsoft's Virtual Hard Disk Image Format Specification), 1.2, 5 rows 1-6, 11.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sys/random.h>
#include <time.h>

#include "vhd/vhd_int.h"

uint32_t
vhd_checksum(const uint8_t *buf, size_t len, size_t checksum_off)
{
    uint32_t sum = 0;
    for (size_t i = 0; i < len; i++) {
        if (i >= checksum_off && i < checksum_off + 4)
            continue;
        sum += buf[i];
    }
    return ~sum;
}

static bool
footer_reserved_zero(const uint8_t *buf)
{
    for (size_t i = 86; i < VHD_FOOTER_SIZE; i++) {
        if (buf[i])
            return false;
    }
    return true;
}

/* Parse @buf into @f. -EINVAL if the cookie or the checksum is wrong. */
int
vhd_footer_parse(const uint8_t buf[VHD_FOOTER_SIZE], struct vhd_footer *f)
{
    memset(f, 0, sizeof(*f));
    memcpy(f->cookie, buf, 8);
    f->features = vhd_be32_load(buf + 8);
    f->version = vhd_be32_load(buf + 12);
    f->data_offset = vhd_be64_load(buf + 16);
    f->timestamp = vhd_be32_load(buf + 24);
    memcpy(f->creator_app, buf + 28, 4);
    f->creator_version = vhd_be32_load(buf + 32);
    f->creator_os = vhd_be32_load(buf + 36);
    f->orig_size = vhd_be64_load(buf + 40);
    f->curr_size = vhd_be64_load(buf + 48);
    f->geometry = vhd_be32_load(buf + 56);
    f->type = vhd_be32_load(buf + 60);
    f->checksum = vhd_be32_load(buf + 64);
    memcpy(f->uuid, buf + 68, 16);
    f->saved = buf[84];
    f->hidden = buf[85];
    f->reserved_nonzero = !footer_reserved_zero(buf);

    if (memcmp(f->cookie, VHD_COOKIE_FOOTER, 8) != 0)
        return -EINVAL;
    uint32_t sum = vhd_checksum(buf, VHD_FOOTER_SIZE, 64);
    if (sum == f->checksum)
        return 0;
    /* Early tapdisk set "hidden" without updating the checksum (spec 1.2.1). */
    bool old_tap = memcmp(f->creator_app, "tap", 4) == 0 &&
                   (f->creator_version == 0x00000001u || f->creator_version == 0x00010001u);
    if (old_tap && f->hidden && sum + f->hidden == f->checksum)
        return 0;
    return -EINVAL;
}

void
vhd_footer_serialize(const struct vhd_footer *f, uint8_t buf[VHD_FOOTER_SIZE])
{
    memset(buf, 0, VHD_FOOTER_SIZE);
    memcpy(buf, f->cookie, 8);
    vhd_be32_store(buf + 8, f->features);
    vhd_be32_store(buf + 12, f->version);
    vhd_be64_store(buf + 16, f->data_offset);
    vhd_be32_store(buf + 24, f->timestamp);
    memcpy(buf + 28, f->creator_app, 4);
    vhd_be32_store(buf + 32, f->creator_version);
    vhd_be32_store(buf + 36, f->creator_os);
    vhd_be64_store(buf + 40, f->orig_size);
    vhd_be64_store(buf + 48, f->curr_size);
    vhd_be32_store(buf + 56, f->geometry);
    vhd_be32_store(buf + 60, f->type);
    memcpy(buf + 68, f->uuid, 16);
    buf[84] = f->saved;
    buf[85] = f->hidden;
    vhd_be32_store(buf + 64, vhd_checksum(buf, VHD_FOOTER_SIZE, 64));
}

/* Rules an open relies on (spec 5 rows 5, 7, 11). */
int
vhd_footer_validate(const struct vhd_footer *f)
{
    if (f->type != VHD_TYPE_FIXED && f->type != VHD_TYPE_DYNAMIC && f->type != VHD_TYPE_DIFF)
        return -EINVAL;
    if (f->curr_size == 0 || f->curr_size % VHD_SECTOR != 0)
        return -EINVAL;
    if (f->curr_size > VHD_MAX_SIZE_BYTES)
        return -EFBIG;
    if (f->type == VHD_TYPE_FIXED) {
        /* QEMU writes all ones; some writers wrote 0xFFFFFFFF only. */
        if (f->data_offset != VHD_DATA_OFFSET_NONE && f->data_offset != 0xFFFFFFFFull)
            return -EINVAL;
    } else if (f->data_offset < VHD_SECTOR || f->data_offset % VHD_SECTOR != 0 ||
               f->data_offset > VHD_MAX_FILE_SECTORS * VHD_SECTOR) {
        return -EINVAL;
    }
    return 0;
}

/* CHS geometry of @size_bytes, the algorithm of the VHD specification's appendix as
 * described in spec 1.2.2: cylinders u16 << 16 | heads u8 << 8 | sectors-per-track u8. */
uint32_t
vhd_geometry_chs(uint64_t size_bytes)
{
    uint64_t total = size_bytes / VHD_SECTOR;
    uint64_t spt, heads, cth;

    if (total > 65535ull * 16 * 255)
        total = 65535ull * 16 * 255;
    if (total >= 65535ull * 16 * 63) {
        spt = 255;
        heads = 16;
        cth = total / spt;
    } else {
        spt = 17;
        cth = total / spt;
        heads = (cth + 1023) / 1024;
        if (heads < 4)
            heads = 4;
        if (cth >= heads * 1024 || heads > 16) {
            spt = 31;
            heads = 16;
            cth = total / spt;
        }
        if (cth >= heads * 1024) {
            spt = 63;
            heads = 16;
            cth = total / spt;
        }
    }
    uint64_t cyl = cth / heads;
    if (cyl > 65535)
        cyl = 65535;
    return (uint32_t)(cyl << 16 | heads << 8 | spt);
}

uint32_t
vhd_time_now(void)
{
    time_t now = time(NULL);
    if (now < (time_t)VHD_EPOCH_OFFSET)
        return 0;
    return (uint32_t)((uint64_t)now - VHD_EPOCH_OFFSET);
}

void
vhd_uuid_generate(uint8_t uuid[16])
{
    size_t got = 0;
    while (got < 16) {
        ssize_t n = getrandom(uuid + got, 16 - got, 0);
        if (n <= 0) {
            /* No entropy source: fall back to time and address bits, still unique enough
             * for a file name's sake. Defensive: getrandom does not fail on Linux >= 3.17. */
            uint64_t t = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)uuid;
            for (; got < 16; got++, t = t * 6364136223846793005ull + 1)
                uuid[got] = (uint8_t)(t >> 56);
            break;
        }
        got += (size_t)n;
    }
    uuid[6] = (uint8_t)((uuid[6] & 0x0f) | 0x40);
    uuid[8] = (uint8_t)((uuid[8] & 0x3f) | 0x80);
}

void
vhd_uuid_format(const uint8_t u[16], char out[37])
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[u[i] >> 4];
        out[o++] = hex[u[i] & 15];
    }
    out[o] = '\0';
}

void
vhd_footer_init(struct vhd_footer *f, enum vhd_type type, uint64_t size_bytes)
{
    memset(f, 0, sizeof(*f));
    memcpy(f->cookie, VHD_COOKIE_FOOTER, 8);
    f->features = VHD_FEATURES_RESERVED;
    f->version = VHD_FILE_VERSION;
    f->data_offset = type == VHD_TYPE_FIXED ? VHD_DATA_OFFSET_NONE : VHD_SECTOR;
    f->timestamp = vhd_time_now();
    memcpy(f->creator_app, "tap\0", 4);
    f->creator_version = VHD_CREATOR_VERSION;
    f->creator_os = 0;
    f->orig_size = size_bytes;
    f->curr_size = size_bytes;
    f->geometry = vhd_geometry_chs(size_bytes);
    f->type = (uint32_t)type;
    vhd_uuid_generate(f->uuid);
}

/* Write the footer of @img at @off (and nothing else). */
int
vhd_footer_write(struct vhd_image *img, uint64_t off)
{
    uint8_t buf[VHD_FOOTER_SIZE];
    vhd_footer_serialize(&img->footer, buf);
    return vhd_io_pwrite(img->fd, buf, sizeof(buf), off);
}

/* The footer copy at 0 first (spec 5: dynamic disks keep one there): it is written at
 * creation and never moves, while the trailing footer is cut and rewritten as blocks
 * are allocated by whoever writes the image now. A fixed image has only the trailing one. */
int
vhd_peek_size(const char *path, uint64_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    uint8_t buf[VHD_FOOTER_SIZE];
    struct vhd_footer f;
    struct stat st;
    int rc = vhd_io_pread(fd, buf, sizeof(buf), 0);
    if (rc == 0 && vhd_footer_parse(buf, &f) == 0 && f.type != VHD_TYPE_FIXED) {
        *size = f.curr_size;
        close(fd);
        return 0;
    }
    rc = fstat(fd, &st) < 0 ? -errno : 0;
    if (rc == 0 && st.st_size < (off_t)VHD_FOOTER_SIZE)
        rc = -EINVAL;
    if (rc == 0)
        rc = vhd_io_pread(fd, buf, sizeof(buf), (uint64_t)st.st_size - VHD_FOOTER_SIZE);
    if (rc == 0 && vhd_footer_parse(buf, &f) < 0)
        rc = -EINVAL;
    close(fd);
    if (rc == 0)
        *size = f.curr_size;
    return rc;
}
