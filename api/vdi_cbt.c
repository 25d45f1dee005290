/* api/vdi_cbt.c - VDI.enable_cbt, VDI.disable_cbt, VDI.list_changed_blocks.
 *
 * Changed block tracking as the XenAPI shows it (xapi's ocaml/xapi/xapi_vdi.ml,
 * ocaml/idl/datamodel.ml): a flag on the VDI, inherited by its snapshots, and
 * list_changed_blocks(vdi_from, vdi_to) answering which 64 KiB blocks differ
 * as a base64 bitmap (bit i, most significant first in its byte, is the block
 * at i * 64 KiB of vdi_to).
 *
 * Here the answer comes from the VHD chains themselves rather than from a
 * separate write log: in a directory SR a snapshot turns the leaf into a
 * read-only base with two new children, so every write made after a snapshot
 * lives in a node that the snapshot's chain does not contain. The blocks that
 * may differ are then exactly the sectors allocated in the nodes of either
 * chain that the other lacks (nodes are told apart by their footer uuids;
 * shared nodes hold the same data for both). That stays exact while both VDIs
 * exist, garbage collection included: the collector folds a child into a base
 * only when the base has that single child (docs/storage-gc.md), and the
 * lowest node the two chains share has two children, one towards each VDI.
 * Reported blocks are never fewer than those written; at most rewrites of
 * identical data are reported too.
 *
 * Not built: VDI.data_destroy (a snapshot's CBT metadata outliving its data),
 * which needs a log that outlives the chain node; until then both VDIs must
 * still have their data. vdi_to may not be attached (xapi's rule: its leaf
 * could be changing under the comparison).
 */
#include <errno.h>
#include <nettle/base64.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/storage_api.h"
#include "common/cleanup.h"
#include "common/log.h"
#include "db/db.h"
#include "rpc/ctx.h"
#include "storage/sr_file.h"
#include "vhd/vhd.h"
#include "xapi_errors.h"
#include "xapi_handlers.h"
#include "xapi_model.h"

#define CBT_BLOCK (64u * 1024)
#define NULL_REF "OpaqueRef:NULL"

/*==== enable_cbt, disable_cbt ====*/

/* xapi_vdi.ml check_operation_error for `enable_cbt | `disable_cbt. */
static bool
cbt_configurable(struct call_ctx *ctx, const char *self, struct xerr **errp)
{
    _cleanup_(xapi_vdi_record_freep) struct xapi_vdi_record *v = NULL;
    _cleanup_free_ char *path = NULL;
    if (!db_get(ctx->db, &xapi_class_vdi, self, (void **)&v, errp))
        return false;
    char msg[160];
    snprintf(msg, sizeof(msg), "VDI is a snapshot: %s", self);
    if (v->is_a_snapshot)
        return xerr_operation_not_allowed(errp, msg);
    if (v->type != XAPI_VDI_TYPE_USER && v->type != XAPI_VDI_TYPE_SYSTEM)
        return xerr_vdi_incompatible_type(errp, self, xenum_name(&xapi_enum_vdi_type,
                                                                  (int)v->type));
    if (v->on_boot == XAPI_ON_BOOT_RESET)
        return xerr_vdi_on_boot_mode_incompatible_with_operation(errp);
    return storage_sr_path(ctx->db, ctx->srv->host_ref, v->SR, &path, errp);
}

static bool
set_cbt(void *opaque, void *rec, struct xerr **errp)
{
    ((struct xapi_vdi_record *)rec)->cbt_enabled = *(const bool *)opaque;
    return true;
}

static bool
change_cbt(struct call_ctx *ctx, const char *self, bool on, struct xerr **errp)
{
    if (!cbt_configurable(ctx, self, errp) ||
        !db_update(ctx->db, &xapi_class_vdi, self, set_cbt, &on, errp))
        return false;
    log_info("vdi.cbt", "vdi=%s enabled=%d", self, on);
    return true;
}

bool
api_vdi_enable_cbt(struct call_ctx *ctx, const char *self, struct xerr **errp)
{
    return change_cbt(ctx, self, true, errp);
}

bool
api_vdi_disable_cbt(struct call_ctx *ctx, const char *self, struct xerr **errp)
{
    return change_cbt(ctx, self, false, errp);
}

/*==== list_changed_blocks ====*/

#define MAX_NODES VHD_MAX_CHAIN_DEPTH

struct chain_nodes {
    size_t n;
    uint8_t uuid[MAX_NODES][16];
    char path[MAX_NODES][4200];
    uint64_t size; /* the leaf's virtual size */
};

/* The files of @vdi's chain, leaf first, with their footer uuids. */
static int
chain_nodes(const char *dir, const char *vdi_uuid, struct chain_nodes *out)
{
    struct vhd_chain *c = NULL;
    int rc = sr_file_vdi_path(dir, vdi_uuid, out->path[0], sizeof(out->path[0]));
    if (rc == 0)
        rc = sr_file_chain_open(out->path[0], VHD_OPEN_RDONLY, &c);
    if (rc < 0)
        return rc;
    out->size = vhd_chain_size(c);
    out->n = vhd_chain_depth(c);
    for (size_t i = 0; rc == 0 && i < out->n && i < MAX_NODES; i++) {
        struct vhd_info info;
        if ((rc = vhd_chain_info(c, (unsigned)i, &info)) < 0)
            break;
        memcpy(out->uuid[i], info.uuid, 16);
        /* parents are resolved by name in the leaf's directory (vhd/vhd.h) */
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
has_node(const struct chain_nodes *c, const uint8_t uuid[16])
{
    for (size_t i = 0; i < c->n; i++)
        if (memcmp(c->uuid[i], uuid, 16) == 0)
            return true;
    return false;
}

/* Marks in @bits the 64 KiB blocks below @limit where the file at @path
 * alone holds sectors. */
static int
mark_allocated(const char *path, uint64_t limit, uint8_t *bits)
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
            for (uint64_t b = off / CBT_BLOCK; b <= (off + run - 1) / CBT_BLOCK; b++)
                bits[b / 8] |= (uint8_t)(0x80u >> (b % 8));
        off += run;
    }
    vhd_chain_close(c);
    return rc;
}

struct peek {
    char uuid[37];
    char sr[128];
    bool cbt;
};

static void
peek_vdi(void *opaque, const void *rec)
{
    struct peek *p = opaque;
    const struct xapi_vdi_record *v = rec;
    snprintf(p->uuid, sizeof(p->uuid), "%s", v->uuid);
    snprintf(p->sr, sizeof(p->sr), "%s", v->SR);
    p->cbt = v->cbt_enabled;
}

struct attached {
    const char *vdi;
    bool yes;
};

static bool
attached_visit(void *opaque, const char *ref, const void *rec)
{
    struct attached *a = opaque;
    const struct xapi_vbd_record *v = rec;
    if (v->currently_attached && strcmp(v->VDI, a->vdi) == 0)
        a->yes = true;
    return !a->yes;
}

/* Both VDIs' chains, or the error that stops the comparison. */
static bool
cbt_pair(struct call_ctx *ctx, const char *from, const char *to, struct chain_nodes *a,
         struct chain_nodes *b, struct xerr **errp)
{
    struct peek pf, pt;
    if (!db_with(ctx->db, &xapi_class_vdi, from, peek_vdi, &pf, errp) ||
        !db_with(ctx->db, &xapi_class_vdi, to, peek_vdi, &pt, errp))
        return false;
    struct attached at = {to, false};
    db_foreach(ctx->db, &xapi_class_vbd, attached_visit, &at);
    if (at.yes)
        return xerr_vdi_in_use(errp, to, "list_changed_blocks");
    if (!pf.cbt)
        return xerr_vdi_no_cbt_metadata(errp, from);
    if (!pt.cbt)
        return xerr_vdi_no_cbt_metadata(errp, to);
    if (strcmp(pf.sr, pt.sr) != 0) /* a copy elsewhere shares no history with it */
        return xerr_vdi_no_cbt_metadata(errp, from);
    _cleanup_free_ char *dir = NULL;
    if (!storage_sr_path(ctx->db, ctx->srv->host_ref, pt.sr, &dir, errp))
        return false;
    int rc = chain_nodes(dir, pf.uuid, a);
    if (rc < 0)
        return storage_fail(errp, rc, pf.sr, from);
    if ((rc = chain_nodes(dir, pt.uuid, b)) < 0)
        return storage_fail(errp, rc, pt.sr, to);
    bool shared = false;
    for (size_t i = 0; i < b->n && !shared; i++)
        shared = has_node(a, b->uuid[i]);
    return shared || xerr_vdi_no_cbt_metadata(errp, from); /* unrelated disks */
}

bool
api_vdi_list_changed_blocks(struct call_ctx *ctx, const char *vdi_from, const char *vdi_to,
                            char **result, struct xerr **errp)
{
    _cleanup_free_ struct chain_nodes *a = calloc(1, sizeof(*a));
    _cleanup_free_ struct chain_nodes *b = calloc(1, sizeof(*b));
    if (!a || !b)
        return xerr_nomem(errp);
    if (!cbt_pair(ctx, vdi_from, vdi_to, a, b, errp))
        return false;
    size_t n_bits = (size_t)((b->size + CBT_BLOCK - 1) / CBT_BLOCK);
    _cleanup_free_ uint8_t *bits = calloc((n_bits + 7) / 8 + 1, 1);
    if (!bits)
        return xerr_nomem(errp);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < b->n; i++)
        if (!has_node(a, b->uuid[i]))
            rc = mark_allocated(b->path[i], b->size, bits);
    for (size_t i = 0; rc == 0 && i < a->n; i++) /* vdi_from's own writes differ too */
        if (!has_node(b, a->uuid[i]))
            rc = mark_allocated(a->path[i], b->size, bits);
    if (rc < 0)
        return storage_fail(errp, rc, "", vdi_to);
    size_t n_bytes = (n_bits + 7) / 8;
    char *text = malloc(BASE64_ENCODE_RAW_LENGTH(n_bytes) + 1);
    if (!text)
        return xerr_nomem(errp);
    base64_encode_raw((char *)text, n_bytes, bits);
    text[BASE64_ENCODE_RAW_LENGTH(n_bytes)] = '\0';
    *result = text;
    return true;
}
