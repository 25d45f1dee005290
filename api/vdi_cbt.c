/* api/vdi_cbt.c - VDI.enable_cbt, disable_cbt, list_changed_blocks, data_destroy.
 *
 * Changed block tracking as the XenAPI shows it (xapi's ocaml/xapi/xapi_vdi.ml,
 * ocaml/idl/datamodel.ml): a flag on the VDI, inherited by its snapshots, and
 * list_changed_blocks(vdi_from, vdi_to) answering which 64 KiB blocks differ
 * as a base64 bitmap (bit i, most significant first in its byte, is the block
 * at i * 64 KiB of vdi_to).
 *
 * The answer comes from the SR's changed block logs (storage/sr_file_cbt.c,
 * SM's design): each snapshot of a tracked disk keeps the blocks changed
 * since the previous snapshot, so list_changed_blocks(a, b) is the union of
 * the logs after a up to b. That outlives the data: VDI.data_destroy leaves
 * a snapshot as its log alone (type cbt_metadata, xapi's rules below), and
 * the collector never touches a log. Between two VDIs that both still have
 * their data but no list of logs joins (snapshots taken before the logs
 * existed, or the other way round), the answer is read from the VHD chains:
 * the sectors allocated in the nodes one chain has and the other lacks
 * (nodes told apart by footer uuid) are the blocks that may differ.
 * Reported blocks are never fewer than those written; at most rewrites of
 * identical data and whole 64 KiB blocks around a partial write are
 * reported too. vdi_to may not be attached (xapi's rule: its leaf could be
 * changing under the comparison), except to a snapshot VM (a checkpoint's).
 */
#include <errno.h>
#include <nettle/base64.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/vdi_delta.h"
#include "api/storage_api.h"
#include "api/storage_gc.h"
#include "common/cleanup.h"
#include "common/log.h"
#include "db/db.h"
#include "rpc/ctx.h"
#include "storage/sr_file.h"
#include "xapi_errors.h"
#include "xapi_handlers.h"
#include "xapi_model.h"

#define CBT_BLOCK (64u * 1024)
#define NULL_REF "OpaqueRef:NULL"

/*==== enable_cbt, disable_cbt ====*/

const char *
vdi_type_words(enum xapi_vdi_type t)
{
    /* xapi's Record_util.vdi_type_to_string, used in its error parameters */
    switch (t) {
    case XAPI_VDI_TYPE_SYSTEM: return "System";
    case XAPI_VDI_TYPE_USER: return "User";
    case XAPI_VDI_TYPE_EPHEMERAL: return "Ephemeral";
    case XAPI_VDI_TYPE_SUSPEND: return "Suspend";
    case XAPI_VDI_TYPE_CRASHDUMP: return "Crashdump";
    case XAPI_VDI_TYPE_HA_STATEFILE: return "HA statefile";
    case XAPI_VDI_TYPE_METADATA: return "Metadata";
    case XAPI_VDI_TYPE_REDO_LOG: return "Redo log";
    case XAPI_VDI_TYPE_RRD: return "rrd";
    case XAPI_VDI_TYPE_PVS_CACHE: return "PVS cache";
    case XAPI_VDI_TYPE_CBT_METADATA: return "CBT metadata";
    default: return xenum_name(&xapi_enum_vdi_type, (int)t);
    }
}

bool
vdi_cbt_op_check(const struct xapi_vdi_record *v, const char *ref, bool needs_data,
                 bool refused_when_tracked, struct xerr **errp)
{
    /* xapi_vdi.ml check_operation_error: allowed_for_cbt_metadata_vdi, then
     * allowed_when_cbt_enabled */
    if (needs_data && v->type == XAPI_VDI_TYPE_CBT_METADATA)
        return xerr_vdi_incompatible_type(errp, ref, vdi_type_words(v->type));
    if (refused_when_tracked && v->cbt_enabled)
        return xerr_vdi_cbt_enabled(errp, ref);
    return true;
}

/* xapi_vdi.ml check_operation_error for `enable_cbt | `disable_cbt. */
static bool
cbt_configurable(struct call_ctx *ctx, const char *self, struct xapi_vdi_record **vp,
                 char **path, struct xerr **errp)
{
    if (!db_get(ctx->db, &xapi_class_vdi, self, (void **)vp, errp))
        return false;
    struct xapi_vdi_record *v = *vp;
    char msg[160];
    snprintf(msg, sizeof(msg), "VDI is a snapshot: %s", self);
    const char *type = vdi_type_words(v->type);
    if (v->type == XAPI_VDI_TYPE_CBT_METADATA) /* xapi checks that first */
        return xerr_vdi_incompatible_type(errp, self, type);
    if (v->is_a_snapshot)
        return xerr_operation_not_allowed(errp, msg);
    if (v->type != XAPI_VDI_TYPE_USER && v->type != XAPI_VDI_TYPE_SYSTEM)
        return xerr_vdi_incompatible_type(errp, self, type);
    if (v->on_boot == XAPI_ON_BOOT_RESET)
        return xerr_vdi_on_boot_mode_incompatible_with_operation(errp);
    return storage_sr_path(ctx->db, ctx->srv->host_ref, v->SR, path, errp);
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
    _cleanup_(xapi_vdi_record_freep) struct xapi_vdi_record *v = NULL;
    _cleanup_free_ char *path = NULL;
    if (!cbt_configurable(ctx, self, &v, &path, errp))
        return false;
    /* the log first: a flag without its log would answer from nothing */
    int rc = on ? sr_file_cbt_enable(path, v->uuid) : sr_file_cbt_disable(path, v->uuid);
    if (rc < 0)
        return storage_fail(errp, rc, v->SR, self);
    if (!db_update(ctx->db, &xapi_class_vdi, self, set_cbt, &on, errp)) {
        if (on && !v->cbt_enabled)
            sr_file_cbt_disable(path, v->uuid);
        return false;
    }
    log_info("vdi.cbt", "vdi=%s enabled=%d", v->uuid, on);
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

void
vdi_cbt_check(struct call_ctx *ctx, const char *path, const char *vdi_uuid)
{
    vdi_cbt_check_srv(ctx->srv, path, vdi_uuid);
}

void
vdi_cbt_check_srv(struct server *srv, const char *path, const char *vdi_uuid)
{
    if (sr_file_cbt_check(path, vdi_uuid) != 1)
        return;
    /* SM's alert, with its words (drivers/VDI.py) */
    log_warn("vdi.cbt_reset", "vdi=%s reason=\"leaf replaced outside vesseld\"", vdi_uuid);
    struct call_ctx c = {.srv = srv, .db = srv->db};
    char body[160], *msg = NULL;
    snprintf(body, sizeof(body), "Changed Block Tracking metadata is inconsistent for disk %s.",
             vdi_uuid);
    if (api_message_create(&c, "VDI_CBT_METADATA_INCONSISTENT", 3, XAPI_CLS_VDI, vdi_uuid, body,
                           &msg, NULL))
        free(msg);
}

/*==== list_changed_blocks ====*/

struct peek {
    char uuid[37];
    char sr[128];
    bool cbt;
    bool data; /* not a cbt_metadata VDI */
};

static void
peek_vdi(void *opaque, const void *rec)
{
    struct peek *p = opaque;
    const struct xapi_vdi_record *v = rec;
    snprintf(p->uuid, sizeof(p->uuid), "%s", v->uuid);
    snprintf(p->sr, sizeof(p->sr), "%s", v->SR);
    p->cbt = v->cbt_enabled;
    p->data = v->type != XAPI_VDI_TYPE_CBT_METADATA;
}

struct attached {
    struct db *db;
    const char *vdi;
    bool yes;
};

static bool
vm_is_snapshot(struct db *db, const char *vm)
{
    _cleanup_(xapi_vm_record_freep) struct xapi_vm_record *r = NULL;
    return db_get(db, &xapi_class_vm, vm, (void **)&r, NULL) && r->is_a_snapshot;
}

/* xapi: VBDs of snapshot VMs do not count (a checkpoint's may be marked
 * attached). */
static bool
attached_visit(void *opaque, const char *ref, const void *rec)
{
    struct attached *a = opaque;
    const struct xapi_vbd_record *v = rec;
    if (v->currently_attached && strcmp(v->VDI, a->vdi) == 0 &&
        !vm_is_snapshot(a->db, v->VM))
        a->yes = true;
    return !a->yes;
}

/* The blocks of vdi_to that may differ from vdi_from's, from the VHD chains
 * (both VDIs have their data): api/vdi_delta.c, which a delta export uses. */
static int
chain_changed(const char *dir, const char *from_uuid, const char *to_uuid, uint8_t **out,
              uint64_t *size, bool *related)
{
    char from[4200], to[4200];
    *related = false;
    int rc = sr_file_vdi_path(dir, from_uuid, from, sizeof(from));
    if (rc == 0)
        rc = sr_file_vdi_path(dir, to_uuid, to, sizeof(to));
    uint8_t *bits = NULL;
    size_t n_bits = 0;
    if (rc == 0)
        rc = vdi_delta_blocks(dir, from, to, CBT_BLOCK, &bits, &n_bits, related);
    if (rc < 0 || !*related) {
        free(bits);
        return rc;
    }
    *out = bits;
    *size = (uint64_t)n_bits * CBT_BLOCK;
    return 0;
}

bool
api_vdi_list_changed_blocks(struct call_ctx *ctx, const char *vdi_from, const char *vdi_to,
                            char **result, struct xerr **errp)
{
    struct peek pf, pt;
    if (!db_with(ctx->db, &xapi_class_vdi, vdi_from, peek_vdi, &pf, errp) ||
        !db_with(ctx->db, &xapi_class_vdi, vdi_to, peek_vdi, &pt, errp))
        return false;
    struct attached at = {ctx->db, vdi_to, false};
    db_foreach(ctx->db, &xapi_class_vbd, attached_visit, &at);
    if (at.yes)
        return xerr_vdi_in_use(errp, vdi_to, "list_changed_blocks");
    if (!pf.cbt)
        return xerr_vdi_no_cbt_metadata(errp, vdi_from);
    if (!pt.cbt)
        return xerr_vdi_no_cbt_metadata(errp, vdi_to);
    if (strcmp(pf.sr, pt.sr) != 0) /* a copy elsewhere shares no history with it */
        return xerr_vdi_no_cbt_metadata(errp, vdi_from);
    _cleanup_free_ char *dir = NULL;
    if (!storage_sr_path(ctx->db, ctx->srv->host_ref, pt.sr, &dir, errp))
        return false;
    if (pt.data)
        vdi_cbt_check(ctx, dir, pt.uuid); /* a replaced leaf resets its log */
    _cleanup_free_ uint8_t *bits = NULL;
    uint64_t size = 0;
    int rc = sr_file_cbt_changed(dir, pf.uuid, pt.uuid, &bits, &size);
    if (rc == -ENOENT && pf.data && pt.data) {
        bool related = false;
        rc = chain_changed(dir, pf.uuid, pt.uuid, &bits, &size, &related);
        if (rc == 0 && !related)
            rc = -ENOENT;
    }
    if (rc == -ENOENT) /* unrelated disks, or a list cut by a reset */
        return xerr_vdi_no_cbt_metadata(errp, vdi_from);
    if (rc < 0)
        return storage_fail(errp, rc, pt.sr, vdi_to);
    size_t n_bytes = (size_t)(((size + CBT_BLOCK - 1) / CBT_BLOCK + 7) / 8);
    char *text = malloc(BASE64_ENCODE_RAW_LENGTH(n_bytes) + 1);
    if (!text)
        return xerr_nomem(errp);
    base64_encode_raw(text, n_bytes, bits);
    text[BASE64_ENCODE_RAW_LENGTH(n_bytes)] = '\0';
    *result = text;
    return true;
}

/*==== data_destroy ====*/

static bool
set_type(void *opaque, void *rec, struct xerr **errp)
{
    ((struct xapi_vdi_record *)rec)->type = *(const enum xapi_vdi_type *)opaque;
    return true;
}

/* xapi waits this long for the VDI's VBDs to be unplugged and destroyed
 * (xapi_vdi.ml data_destroy ~timeout:4). */
#define DATA_DESTROY_WAIT_MS 4000

static bool
vbds_gone(struct call_ctx *ctx, const char *self)
{
    for (unsigned waited = 0;; waited += 100) {
        _cleanup_(xapi_vdi_record_freep) struct xapi_vdi_record *v = NULL;
        if (!db_get(ctx->db, &xapi_class_vdi, self, (void **)&v, NULL) || v->VBDs.n == 0)
            return true;
        if (waited >= DATA_DESTROY_WAIT_MS)
            return false;
        struct timespec ts = {0, 100 * 1000000};
        nanosleep(&ts, NULL);
    }
}

/* xapi_vdi.ml: a CBT-enabled snapshot's data goes, its changed block log
 * stays: the VDI becomes type cbt_metadata, which list_changed_blocks still
 * reads and VDI.destroy finally removes. */
bool
api_vdi_data_destroy(struct call_ctx *ctx, const char *self, struct xerr **errp)
{
    _cleanup_(xapi_vdi_record_freep) struct xapi_vdi_record *v = NULL;
    _cleanup_free_ char *path = NULL;
    if (!db_get(ctx->db, &xapi_class_vdi, self, (void **)&v, errp))
        return false;
    if (v->type == XAPI_VDI_TYPE_CBT_METADATA)
        return true; /* already done: xapi does nothing */
    char msg[160];
    snprintf(msg, sizeof(msg), "VDI is not a snapshot: %s", self);
    if (!v->is_a_snapshot)
        return xerr_operation_not_allowed(errp, msg);
    if (!v->cbt_enabled)
        return xerr_vdi_no_cbt_metadata(errp, self);
    if (v->type == XAPI_VDI_TYPE_RRD)
        return xerr_vdi_has_rrds(errp, self);
    if (!storage_sr_path(ctx->db, ctx->srv->host_ref, v->SR, &path, errp))
        return false;
    if (!sr_file_cbt_exists(path, v->uuid)) /* tracked before the logs existed */
        return xerr_vdi_no_cbt_metadata(errp, self);
    /* marked first, as xapi does, so that no new VBD comes meanwhile */
    enum xapi_vdi_type meta = XAPI_VDI_TYPE_CBT_METADATA, was = v->type;
    if (!db_update(ctx->db, &xapi_class_vdi, self, set_type, &meta, errp))
        return false;
    bool ok = true;
    int rc;
    if (!vbds_gone(ctx, self))
        ok = xerr_vdi_in_use(errp, self, "data_destroy");
    else if ((rc = sr_file_vdi_destroy(path, v->uuid)) < 0 && rc != -ENOENT)
        ok = storage_fail(errp, rc, v->SR, self);
    if (!ok) {
        db_update(ctx->db, &xapi_class_vdi, self, set_type, &was, NULL);
        return false;
    }
    log_info("vdi.data_destroy", "vdi=%s", v->uuid);
    storage_sr_refresh(ctx->db, v->SR, path, NULL);
    storage_gc_kick(ctx->srv); /* its base may now have a single child */
    return true;
}
