/* vhd/header.c - the 1024-byte dynamic disk header and its parent locators.
 *
 * Dynamic and differencing disks carry this header at footer.data_offset (512 in every
 * writer we know). It locates the BAT, gives the block size and, for differencing disks,
 * names the parent: its UUID, its file name in UTF-16BE, and up to eight platform locators
 * (we write MacX, W2ku and W2ru, all holding the path relative to the child's directory).
 * Validation here is what an open needs to trust the BAT location (spec 5 rows 7-12);
 * locators are only decoded for `check`, never used to find a parent (row 22).
 * Facts: the VHD specification (Microsoft's Virtual Hard Disk Image Format Specification), 5 rows 7-12 and 21-22.
 */
#include <errno.h>

#include "vhd/vhd_int.h"

static bool
bytes_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i])
            return false;
    }
    return true;
}

int
vhd_header_parse(const uint8_t buf[VHD_HEADER_SIZE], struct vhd_header *h)
{
    memset(h, 0, sizeof(*h));
    memcpy(h->cookie, buf, 8);
    h->data_offset = vhd_be64_load(buf + 8);
    h->table_offset = vhd_be64_load(buf + 16);
    h->version = vhd_be32_load(buf + 24);
    h->max_bat_entries = vhd_be32_load(buf + 28);
    h->block_size = vhd_be32_load(buf + 32);
    h->checksum = vhd_be32_load(buf + 36);
    memcpy(h->parent_uuid, buf + 40, 16);
    h->parent_timestamp = vhd_be32_load(buf + 56);
    memcpy(h->parent_name, buf + 64, 512);
    for (size_t i = 0; i < 8; i++) {
        const uint8_t *l = buf + 576 + i * 24;
        h->loc[i].code = vhd_be32_load(l);
        h->loc[i].data_space = vhd_be32_load(l + 4);
        h->loc[i].data_len = vhd_be32_load(l + 8);
        h->loc[i].reserved = vhd_be32_load(l + 12);
        h->loc[i].data_offset = vhd_be64_load(l + 16);
    }
    h->reserved_nonzero = !bytes_zero(buf + 60, 4) || !bytes_zero(buf + 768, 256);
    if (memcmp(h->cookie, VHD_COOKIE_HEADER, 8) != 0)
        return -EINVAL;
    if (vhd_checksum(buf, VHD_HEADER_SIZE, 36) != h->checksum)
        return -EINVAL;
    return 0;
}

void
vhd_header_serialize(const struct vhd_header *h, uint8_t buf[VHD_HEADER_SIZE])
{
    memset(buf, 0, VHD_HEADER_SIZE);
    memcpy(buf, h->cookie, 8);
    vhd_be64_store(buf + 8, h->data_offset);
    vhd_be64_store(buf + 16, h->table_offset);
    vhd_be32_store(buf + 24, h->version);
    vhd_be32_store(buf + 28, h->max_bat_entries);
    vhd_be32_store(buf + 32, h->block_size);
    memcpy(buf + 40, h->parent_uuid, 16);
    vhd_be32_store(buf + 56, h->parent_timestamp);
    memcpy(buf + 64, h->parent_name, 512);
    for (size_t i = 0; i < 8; i++) {
        uint8_t *l = buf + 576 + i * 24;
        vhd_be32_store(l, h->loc[i].code);
        vhd_be32_store(l + 4, h->loc[i].data_space);
        vhd_be32_store(l + 8, h->loc[i].data_len);
        vhd_be32_store(l + 12, h->loc[i].reserved);
        vhd_be64_store(l + 16, h->loc[i].data_offset);
    }
    vhd_be32_store(buf + 36, vhd_checksum(buf, VHD_HEADER_SIZE, 36));
}

/* Rules an open relies on. @file_size is the size of the whole file. */
int
vhd_header_validate(const struct vhd_header *h, const struct vhd_footer *f, uint64_t file_size)
{
    if (h->version != VHD_HEADER_VERSION || h->data_offset != VHD_DATA_OFFSET_NONE)
        return -EINVAL;
    uint32_t bs = h->block_size;
    if (bs < VHD_SECTOR || bs > VHD_MAX_BLOCK_SIZE || (bs & (bs - 1)) != 0)
        return -EINVAL;
    uint64_t needed = (f->curr_size + bs - 1) / bs;
    if (h->max_bat_entries < needed)
        return -EINVAL;
    if (h->table_offset % VHD_SECTOR != 0 || h->table_offset < f->data_offset + VHD_HEADER_SIZE)
        return -EINVAL;
    /* The whole BAT (padded) lies before the trailing footer: this also bounds any
     * allocation made from max_bat_entries by the file's real size (spec 5 row 10). */
    uint64_t bat_end = h->table_offset + vhd_round_up((uint64_t)h->max_bat_entries * 4, VHD_SECTOR);
    if (file_size < VHD_FOOTER_SIZE || bat_end > file_size - VHD_FOOTER_SIZE)
        return -EINVAL;
    if (f->type == VHD_TYPE_DIFF) {
        if (bytes_zero(h->parent_uuid, 16))
            return -EINVAL;     /* a raw parent: never opened from file metadata (row 22) */
    }
    return 0;
}

/* Append code point @cp as UTF-8; false if it does not fit. */
static bool
utf8_put(char *out, size_t out_size, size_t *o, uint32_t cp)
{
    uint8_t tmp[4];
    size_t n;
    if (cp < 0x80) {
        tmp[0] = (uint8_t)cp;
        n = 1;
    } else if (cp < 0x800) {
        tmp[0] = (uint8_t)(0xC0 | cp >> 6);
        tmp[1] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        tmp[0] = (uint8_t)(0xE0 | cp >> 12);
        tmp[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        tmp[2] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        tmp[0] = (uint8_t)(0xF0 | cp >> 18);
        tmp[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
        tmp[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        tmp[3] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 4;
    }
    if (*o + n + 1 > out_size)
        return false;
    memcpy(out + *o, tmp, n);
    *o += n;
    return true;
}

/* Decode UTF-16 (@be: big-endian) of @len bytes into NUL-terminated UTF-8. Stops at a NUL
 * code unit. -EINVAL on odd length, lone surrogates or a NUL inside; -ENAMETOOLONG. */
static int
utf16_decode(const uint8_t *in, size_t len, bool be, char *out, size_t out_size)
{
    size_t o = 0;
    if (len % 2 != 0 || out_size == 0)
        return -EINVAL;
    for (size_t i = 0; i + 1 < len; i += 2) {
        uint32_t u = be ? vhd_be16_load(in + i) : (uint32_t)(in[i] | in[i + 1] << 8);
        if (u == 0)
            break;
        if (u >= 0xD800 && u < 0xDC00) {
            if (i + 3 >= len)
                return -EINVAL;
            uint32_t lo = be ? vhd_be16_load(in + i + 2) : (uint32_t)(in[i + 2] | in[i + 3] << 8);
            if (lo < 0xDC00 || lo >= 0xE000)
                return -EINVAL;
            u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
            i += 2;
        } else if (u >= 0xDC00 && u < 0xE000) {
            return -EINVAL;
        }
        if (!utf8_put(out, out_size, &o, u))
            return -ENAMETOOLONG;
    }
    out[o] = '\0';
    return 0;
}

size_t
vhd_utf16_encode(const char *utf8, uint8_t *out, size_t out_size, bool big_endian)
{
    const uint8_t *s = (const uint8_t *)utf8;
    size_t o = 0;
    while (*s) {
        uint32_t cp;
        size_t n;
        if (s[0] < 0x80) {
            cp = s[0];
            n = 1;
        } else if ((s[0] & 0xE0) == 0xC0 && (s[1] & 0xC0) == 0x80) {
            cp = (uint32_t)(s[0] & 0x1F) << 6 | (s[1] & 0x3F);
            n = 2;
        } else if ((s[0] & 0xF0) == 0xE0 && (s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80) {
            cp = (uint32_t)(s[0] & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
            n = 3;
        } else if ((s[0] & 0xF8) == 0xF0 && (s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80 &&
                   (s[3] & 0xC0) == 0x80) {
            cp = (uint32_t)(s[0] & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 |
                 (uint32_t)(s[2] & 0x3F) << 6 | (s[3] & 0x3F);
            n = 4;
        } else {
            return SIZE_MAX;
        }
        uint16_t units[2];
        size_t nu = 1;
        if (cp >= 0x10000) {
            units[0] = (uint16_t)(0xD800 + ((cp - 0x10000) >> 10));
            units[1] = (uint16_t)(0xDC00 + ((cp - 0x10000) & 0x3FF));
            nu = 2;
        } else {
            units[0] = (uint16_t)cp;
        }
        if (o + nu * 2 > out_size)
            return SIZE_MAX;
        for (size_t k = 0; k < nu; k++, o += 2) {
            if (big_endian) {
                vhd_be16_store(out + o, units[k]);
            } else {
                out[o] = (uint8_t)units[k];
                out[o + 1] = (uint8_t)(units[k] >> 8);
            }
        }
        s += n;
    }
    return o;
}

int
vhd_header_parent_name(const struct vhd_header *h, char *out, size_t out_size)
{
    return utf16_decode(h->parent_name, sizeof(h->parent_name), true, out, out_size);
}

int
vhd_header_set_parent_name(struct vhd_header *h, const char *name)
{
    memset(h->parent_name, 0, sizeof(h->parent_name));
    size_t n = vhd_utf16_encode(name, h->parent_name, sizeof(h->parent_name), true);
    return n == SIZE_MAX ? -ENAMETOOLONG : 0;
}

/* Bytes of locator data space: < 512 means sectors, a multiple of 512 bytes (spec 1.3). */
static int
locator_space_bytes(const struct vhd_locator *l, uint64_t *out)
{
    if (l->data_space < VHD_SECTOR)
        *out = (uint64_t)l->data_space * VHD_SECTOR;
    else if (l->data_space % VHD_SECTOR == 0)
        *out = l->data_space;
    else
        return -EINVAL;
    return 0;
}

/* Decode locator @l of @img into @out (UTF-8). Every length and offset is checked against
 * the file and VHD_LOCATOR_MAX_BYTES first (spec 5 row 21). */
int
vhd_locator_decode(const struct vhd_image *img, const struct vhd_locator *l, char *out,
                   size_t out_size)
{
    uint64_t space;
    if (locator_space_bytes(l, &space) < 0 || l->data_len == 0 || l->data_len > space ||
        l->data_len > VHD_LOCATOR_MAX_BYTES || l->data_offset % VHD_SECTOR != 0 ||
        l->data_offset < img->footer.data_offset + VHD_HEADER_SIZE ||
        l->data_offset + space > img->file_size - VHD_FOOTER_SIZE)
        return -EINVAL;
    uint8_t raw[VHD_LOCATOR_MAX_BYTES];
    int rc = vhd_io_pread(img->fd, raw, l->data_len, l->data_offset);
    if (rc < 0)
        return rc;
    switch (l->code) {
    case VHD_PLAT_W2RU:
    case VHD_PLAT_W2KU:
        return utf16_decode(raw, l->data_len, false, out, out_size);
    case VHD_PLAT_MACX: {
        if (l->data_len + 1 > out_size || memchr(raw, 0, l->data_len))
            return -EINVAL;
        memcpy(out, raw, l->data_len);
        out[l->data_len] = '\0';
        return 0;
    }
    default:
        return -EINVAL;
    }
}
