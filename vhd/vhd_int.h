/* vhd/vhd_int.h - private to vhd/: on-disk structures, one open image, helpers.
 *
 * On-disk layout facts: the VHD specification (Microsoft's Virtual Hard Disk Image Format Specification) (footer 1.2, header 1.3, BAT 1.4,
 * bitmaps 1.5, batmap 1.8). Every field is big-endian on disk; the structs below hold host
 * order values and are converted only in footer.c / header.c / bat.c.
 *
 * Invariants of struct vhd_image (established by vhd_image_open, kept by write.c):
 *  (1) every allocated BAT entry names a block [bitmap + data] that lies after all metadata,
 *      ends at or before end_of_data, and overlaps no other block;
 *  (2) end_of_data is a multiple of 512 and the trailing footer lives at end_of_data when
 *      footer_dirty is false;
 *  (3) bitmaps[i], when non-NULL, equals the on-disk bitmap of block i.
 */
#ifndef VESSEL_VHD_INT_H
#define VESSEL_VHD_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "vhd/vhd.h"

#define VHD_FOOTER_SIZE 512u
#define VHD_HEADER_SIZE 1024u
#define VHD_BAT_UNUSED 0xFFFFFFFFu
#define VHD_COOKIE_FOOTER "conectix"
#define VHD_COOKIE_HEADER "cxsparse"
#define VHD_COOKIE_BATMAP "tdbatmap"
#define VHD_FEATURES_RESERVED 0x00000002u
#define VHD_FILE_VERSION 0x00010000u
#define VHD_HEADER_VERSION 0x00010000u
#define VHD_BATMAP_VERSION 0x00010002u
#define VHD_CREATOR_VERSION 0x00010003u  /* tap 1.3: QEMU trusts current_size (spec 1.2.2) */
#define VHD_DATA_OFFSET_NONE 0xFFFFFFFFFFFFFFFFull
#define VHD_EPOCH_OFFSET 946684800u      /* Unix time of 2000-01-01 00:00:00 UTC */
/* Reading cap on block size (spec 5 row 9); we create only 2 MiB. */
#define VHD_MAX_BLOCK_SIZE (256u * 1024 * 1024)
/* A BAT entry is a 32-bit sector number: no block may end beyond 2^32 sectors (spec 1.4). */
#define VHD_MAX_FILE_SECTORS 0x100000000ull
#define VHD_LOCATOR_MAX_BYTES 4096u

#define VHD_PLAT_NONE 0u
#define VHD_PLAT_W2RU 0x57327275u
#define VHD_PLAT_W2KU 0x57326B75u
#define VHD_PLAT_MACX 0x4D616358u
#define VHD_PLAT_WI2R 0x57693272u
#define VHD_PLAT_WI2K 0x5769326Bu
#define VHD_PLAT_MAC 0x4D616320u

struct vhd_footer {
    char cookie[8];
    uint32_t features;
    uint32_t version;
    uint64_t data_offset;
    uint32_t timestamp;
    char creator_app[4];
    uint32_t creator_version;
    uint32_t creator_os;
    uint64_t orig_size;
    uint64_t curr_size;
    uint32_t geometry;
    uint32_t type;
    uint32_t checksum;
    uint8_t uuid[16];
    uint8_t saved;
    uint8_t hidden;
    bool reserved_nonzero;
};

struct vhd_locator {
    uint32_t code;
    uint32_t data_space;
    uint32_t data_len;
    uint32_t reserved;
    uint64_t data_offset;
};

struct vhd_header {
    char cookie[8];
    uint64_t data_offset;
    uint64_t table_offset;
    uint32_t version;
    uint32_t max_bat_entries;
    uint32_t block_size;
    uint32_t checksum;
    uint8_t parent_uuid[16];
    uint32_t parent_timestamp;
    uint8_t parent_name[512];      /* UTF-16BE as on disk */
    struct vhd_locator loc[8];
    bool reserved_nonzero;
};

struct vhd_image {
    int fd;
    bool writable;
    dev_t dev;
    ino_t ino;
    char *path;                    /* as opened, or NULL for vhd_chain_open_fd() */
    struct vhd_footer footer;
    struct vhd_header header;      /* zeroed for fixed disks */
    bool head_footer_used;
    bool grew_while_opened;        /* read-only: a writer appended while the BAT was read,
                                    * so blocks may end where the file ends (image.c) */
    uint64_t file_size;
    /* dynamic and differencing images only: */
    uint32_t *bat;                 /* n_bat entries, host order */
    uint32_t n_bat;                /* entries covering curr_size (<= max_bat_entries) */
    uint32_t block_size;
    uint32_t sectors_per_block;
    uint32_t bitmap_bytes;         /* padded to a sector multiple */
    uint64_t meta_end;             /* first byte after every metadata structure */
    uint64_t end_of_data;          /* first byte after the last block (invariant 2) */
    uint8_t **bitmaps;             /* n_bat lazily loaded bitmaps (invariant 3) */
    uint8_t *bitmap_full;          /* n_bat flags: 1 = every bit set, 0 = unknown/not */
    bool footer_dirty;             /* trailing footer must be rewritten at end_of_data */
    /* batched allocation (write.c, used by coalesce): blocks whose data is written but whose
     * BAT entry is only in memory until vhd_image_batch_commit() */
    bool batching;
    uint32_t n_pending;
    uint32_t pending[64];
};

/* Internal open flag: validate footers, headers and links only; no BAT is loaded, so the
 * chain may not be read or written, only inspected (vhd_snapshot()). */
#define VHD_OPEN_LINKS_ONLY (1u << 16)

struct vhd_chain {
    unsigned n_images;
    struct vhd_image *images[VHD_MAX_CHAIN_DEPTH];  /* [0] = leaf */
};

/* ---- big-endian helpers ---- */
static inline uint16_t
vhd_be16_load(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint32_t
vhd_be32_load(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline uint64_t
vhd_be64_load(const uint8_t *p)
{
    return ((uint64_t)vhd_be32_load(p) << 32) | vhd_be32_load(p + 4);
}

static inline void
vhd_be16_store(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void
vhd_be32_store(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void
vhd_be64_store(uint8_t *p, uint64_t v)
{
    vhd_be32_store(p, (uint32_t)(v >> 32));
    vhd_be32_store(p + 4, (uint32_t)v);
}

static inline uint64_t
vhd_round_up(uint64_t v, uint64_t to)
{
    return (v + to - 1) / to * to;
}

/* ---- cleanup (common/cleanup.h) of the library's own types ---- */
static inline void
vhd_chain_closep(struct vhd_chain **c)
{
    vhd_chain_close(*c);        /* NULL is a no-op; flush errors are the owner's to fetch */
}

int vhd_fail(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- io.c ---- */
int vhd_io_pread(int fd, void *buf, size_t len, uint64_t off);
int vhd_io_pwrite(int fd, const void *buf, size_t len, uint64_t off);
/* fdatasync (@data_only) or fsync; 0 or -errno. */
int vhd_io_sync(int fd, bool data_only);

/* ---- footer.c ---- */
uint32_t vhd_checksum(const uint8_t *buf, size_t len, size_t checksum_off);
int vhd_footer_parse(const uint8_t buf[VHD_FOOTER_SIZE], struct vhd_footer *f);
void vhd_footer_serialize(const struct vhd_footer *f, uint8_t buf[VHD_FOOTER_SIZE]);
int vhd_footer_validate(const struct vhd_footer *f);
void vhd_footer_init(struct vhd_footer *f, enum vhd_type type, uint64_t size_bytes);
uint32_t vhd_geometry_chs(uint64_t size_bytes);
uint32_t vhd_time_now(void);
void vhd_uuid_generate(uint8_t uuid[16]);
int vhd_footer_write(struct vhd_image *img, uint64_t off);

/* ---- header.c ---- */
int vhd_header_parse(const uint8_t buf[VHD_HEADER_SIZE], struct vhd_header *h);
void vhd_header_serialize(const struct vhd_header *h, uint8_t buf[VHD_HEADER_SIZE]);
int vhd_header_validate(const struct vhd_header *h, const struct vhd_footer *f,
                        uint64_t file_size);
int vhd_header_parent_name(const struct vhd_header *h, char *out, size_t out_size);
int vhd_header_set_parent_name(struct vhd_header *h, const char *name);
int vhd_locator_decode(const struct vhd_image *img, const struct vhd_locator *l, char *out,
                       size_t out_size);
size_t vhd_utf16_encode(const char *utf8, uint8_t *out, size_t out_size, bool big_endian);

/* ---- batmap.c ---- */
uint64_t vhd_batmap_header_offset(const struct vhd_header *h);
uint32_t vhd_batmap_sectors(uint32_t max_bat_entries);
int vhd_batmap_write_empty(int fd, const struct vhd_header *h, uint32_t n_blocks);
int vhd_batmap_check(const struct vhd_image *img, char *why, size_t why_size);

/* ---- bat.c ---- */
int vhd_bat_load(struct vhd_image *img);
int vhd_bat_validate(struct vhd_image *img, char *why, size_t why_size);
int vhd_bat_write_entry(struct vhd_image *img, uint32_t block);
uint64_t vhd_bat_block_end(const struct vhd_image *img, uint32_t entry);

/* ---- bitmap.c ---- */
int vhd_bitmap_get(struct vhd_image *img, uint32_t block, const uint8_t **out);
int vhd_bitmap_set_range(struct vhd_image *img, uint32_t block, uint32_t first, uint32_t count,
                         bool write_now);
uint32_t vhd_bitmap_run(const uint8_t *bm, uint32_t first, uint32_t limit, bool *set);
bool vhd_bitmap_all_set(const uint8_t *bm, uint32_t n_bits);

/* ---- image.c ---- */
int vhd_image_open_fd(int fd, unsigned flags, const char *path, struct vhd_image **out);
void vhd_image_free(struct vhd_image *img);
int vhd_image_sync_footer(struct vhd_image *img);
bool vhd_image_is_sparse(const struct vhd_image *img);

/* ---- read.c ---- */
int vhd_image_read_status(struct vhd_image *img, uint64_t off, uint64_t len, uint64_t *run,
                          bool *present);
int vhd_image_read_data(struct vhd_image *img, void *buf, uint64_t off, size_t len);

/* ---- write.c ---- */
int vhd_image_write(struct vhd_image *img, const void *buf, uint64_t off, size_t len,
                    bool full_block_hint);
void vhd_image_batch_begin(struct vhd_image *img);
int vhd_image_batch_commit(struct vhd_image *img);

/* ---- create.c ---- */
int vhd_create_image(const char *path, uint64_t size_bytes, enum vhd_type type,
                     const struct vhd_image *parent, const char *parent_name);

#endif /* VESSEL_VHD_INT_H */
