/* api/vdi_delta.c - changed blocks between two VDIs' chains, and the delta VHD.
 *
 * xapi's export_raw_vdi.ml with base= runs vhd-tool with --relative-to the base's VHD,
 * whose stream (ocaml-vhd's Vhd_input.vhd ?from) is a differencing image holding what
 * the disk's chain has that the base's chain does not. Here the delta is made as a
 * work file: an empty differencing child of the base's file (vhd_snapshot, which leaves
 * the base untouched), into which the marked blocks are copied from the VDI's chain. So
 * its header names the base by uuid, as the blocks' owner expects, and the sectors it
 * holds are exactly the marked blocks: the same blocks VDI.list_changed_blocks reports
 * between the two (both at 64 KiB when the caller passes xapi's CBT block).
 */
#include "api/vdi_delta.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/sr_file.h"

#define MAX_NODES VHD_MAX_CHAIN_DEPTH

struct nodes {
    size_t n;
    uint8_t uuid[MAX_NODES][16];
    char path[MAX_NODES][4200];
    uint64_t size;
};

/* The files of the chain at @leaf (leaf first) with their footer uuids. */
static int
nodes_of(const char *dir, const char *leaf, struct nodes *out)
{
    struct vhd_chain *c = NULL;
    if ((size_t)snprintf(out->path[0], sizeof(out->path[0]), "%s", leaf) >= sizeof(out->path[0]))
        return -ENAMETOOLONG;
    int rc = sr_file_chain_open(leaf, VHD_OPEN_RDONLY, &c); /* not mid-collector step */
    if (rc < 0)
        return rc;
    out->size = vhd_chain_size(c);
    out->n = vhd_chain_depth(c);
    for (size_t i = 0; rc == 0 && i < out->n && i < MAX_NODES; i++) {
        struct vhd_info info;
        if ((rc = vhd_chain_info(c, (unsigned)i, &info)) < 0)
            break;
        memcpy(out->uuid[i], info.uuid, 16);
        if (i + 1 < out->n &&
            (strchr(info.parent_name, '/') || !info.parent_name[0] ||
             (size_t)snprintf(out->path[i + 1], sizeof(out->path[i + 1]), "%s/%s", dir,
                              info.parent_name) >= sizeof(out->path[i + 1])))
            rc = -EINVAL;
    }
    vhd_chain_close(c);
    return rc;
}

static bool
has_node(const struct nodes *c, const uint8_t uuid[16])
{
    for (size_t i = 0; i < c->n; i++)
        if (memcmp(c->uuid[i], uuid, 16) == 0)
            return true;
    return false;
}

/* Marks the blocks below @limit where the file @path alone holds sectors. */
static int
mark(const char *path, uint64_t limit, uint32_t block, uint8_t *bits)
{
    struct vhd_chain *c = NULL;
    int rc = vhd_chain_open(path, VHD_OPEN_RDONLY | VHD_OPEN_NO_PARENTS, &c);
    if (rc < 0)
        return rc;
    uint64_t size = vhd_chain_size(c) < limit ? vhd_chain_size(c) : limit;
    for (uint64_t off = 0; rc == 0 && off < size;) {
        uint64_t run = 0;
        bool allocated = false;
        if ((rc = vhd_chain_block_status(c, off, size - off, &run, &allocated)) < 0 || run == 0)
            break;
        if (allocated)
            for (uint64_t b = off / block; b <= (off + run - 1) / block; b++)
                bits[b / 8] |= (uint8_t)(0x80u >> (b % 8));
        off += run;
    }
    vhd_chain_close(c);
    return rc;
}

int
vdi_delta_blocks(const char *dir, const char *from_path, const char *to_path, uint32_t block,
                 uint8_t **bits_out, size_t *n_bits, bool *related)
{
    struct nodes *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
    uint8_t *bits = NULL;
    int rc = a && b ? 0 : -ENOMEM;
    if (rc == 0)
        rc = nodes_of(dir, from_path, a);
    if (rc == 0)
        rc = nodes_of(dir, to_path, b);
    bool common = false;
    for (size_t i = 0; rc == 0 && i < b->n && !common; i++)
        common = has_node(a, b->uuid[i]);
    if (related)
        *related = common;
    size_t n = rc == 0 ? (size_t)((b->size + block - 1) / block) : 0;
    if (rc == 0 && !(bits = calloc((n + 7) / 8 + 1, 1)))
        rc = -ENOMEM;
    for (size_t i = 0; rc == 0 && i < b->n; i++)
        if (!has_node(a, b->uuid[i]))
            rc = mark(b->path[i], b->size, block, bits);
    for (size_t i = 0; rc == 0 && i < a->n; i++) /* the base's own sectors are undone too */
        if (!has_node(b, a->uuid[i]))
            rc = mark(a->path[i], b->size, block, bits);
    free(a);
    free(b);
    if (rc < 0) {
        free(bits);
        return rc;
    }
    *bits_out = bits;
    *n_bits = n;
    return 0;
}

int
vdi_delta_write(struct vhd_chain *to, const char *base_path, const char *out_path,
                const uint8_t *bits, uint32_t block, vhd_progress_fn *progress, void *opaque)
{
    uint64_t size = vhd_chain_size(to);
    struct vhd_chain *base = NULL;
    int rc = vhd_chain_open(base_path, VHD_OPEN_RDONLY, &base);
    if (rc < 0)
        return rc;
    uint64_t base_size = vhd_chain_size(base);
    vhd_chain_close(base);
    if (base_size > size)
        return -EINVAL;
    if ((rc = vhd_snapshot(base_path, out_path)) < 0)
        return rc;
    if (size > base_size)
        rc = vhd_resize(out_path, size);
    struct vhd_chain *out = NULL;
    if (rc == 0)
        rc = vhd_chain_open(out_path, VHD_OPEN_RDWR, &out);
    char *buf = rc == 0 ? malloc(block) : NULL;
    if (rc == 0 && !buf)
        rc = -ENOMEM;
    uint64_t n = (size + block - 1) / block;
    for (uint64_t b = 0; rc == 0 && b < n; b++) {
        if (!(bits[b / 8] & (0x80u >> (b % 8))))
            continue;
        uint64_t off = b * block;
        size_t len = size - off < block ? (size_t)(size - off) : block;
        rc = vhd_chain_read(to, buf, off, len);
        if (rc == 0)
            rc = vhd_chain_write(out, buf, off, len, false);
        if (rc == 0 && progress)
            progress(opaque, off + len, size);
    }
    free(buf);
    int crc = out ? vhd_chain_close(out) : 0;
    if (rc == 0)
        rc = crc;
    if (rc < 0)
        unlink(out_path);
    return rc;
}
