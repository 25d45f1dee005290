/* api/vdi.c - VDI.* messages on the SR drivers of storage/ (xapi's ocaml/idl/datamodel*.ml "VDI").
 *
 * A VDI of an ext/file SR is the file <uuid>.vhd in the SR's directory; its
 * record's location is that uuid and sm_config holds vdi_type=vhd and, once a
 * snapshot or clone made it a child, vhd-parent=<base uuid>. Every operation
 * that touches files needs the SR plugged on this host (storage_sr_path), does
 * the file work first and then writes the records in one batch; when the batch
 * fails, the file work is undone (a new file deleted), so records never name
 * a file that does not exist.
 *
 * Rules kept from xapi: VDI.create rounds virtual_size up to what the backend
 * allocates (2 MiB VHD blocks) and answers SR_FULL [requested, maximum] when
 * it does not fit; destroy, resize and forget refuse a VDI with an attached
 * VBD (VDI_IN_USE [vdi, op]); destroy takes the VDI's unattached VBDs with it;
 * resize only grows (VDI_TOO_SMALL [vdi, current size]); a snapshot has
 * is_a_snapshot, snapshot_of and snapshot_time, a clone none of them.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/disk_servers.h"
#include "api/storage_api.h"
#include "api/storage_gc.h"
#include "common/cleanup.h"
#include "common/log.h"
#include "common/testhook.h"
#include "db/db.h"
#include "rpc/ctx.h"
#include "storage/sr_file.h"
#include "vhd/vhd.h"
#include "xapi_handlers.h"
#include "xapi_errors.h"

#define NULL_REF "OpaqueRef:NULL"


/* ------------------------------------------------------------------ helpers */

static void
attached_peek(void *opaque, const void *rec)
{
    if (((const struct xapi_vbd_record *)rec)->currently_attached)
        *(bool *)opaque = true;
}

/* True when a VBD of @v is attached (plugged into a running VM). */
static bool
vdi_attached(struct db *db, const struct xapi_vdi_record *v)
{
    bool attached = false;
    for (size_t i = 0; i < v->VBDs.n && !attached; i++)
        db_with(db, &xapi_class_vbd, v->VBDs.items[i], attached_peek, &attached, NULL);
    return attached;
}

/* SR_FULL [requested, maximum] for a storage/ -ENOSPC or -EFBIG, else storage_fail. */
static bool
vdi_fail(struct xerr **errp, int rc, const char *sr, const char *vdi, const char *path,
         uint64_t requested)
{
    if (rc != -ENOSPC && rc != -EFBIG)
        return storage_fail(errp, rc, sr, vdi);
    uint64_t size = 0, avail = 0;
    sr_file_space(path, &size, &avail);
    if (avail > VHD_MAX_SIZE_BYTES || rc == -EFBIG)
        avail = avail > VHD_MAX_SIZE_BYTES ? VHD_MAX_SIZE_BYTES : avail;
    char req[24], max[24];
    snprintf(req, sizeof(req), "%" PRIu64, requested);
    snprintf(max, sizeof(max), "%" PRIu64, avail);
    return xerr_sr_full(errp, req, max);
}

/* The VDI record @ref and its SR's directory; both new. */
static bool
vdi_open(struct call_ctx *ctx, const char *ref, struct xapi_vdi_record **rec, char **path,
         struct xerr **errp)
{
    if (!db_get(ctx->db, &xapi_class_vdi, ref, (void **)rec, errp))
        return false;
    if (!storage_sr_path(ctx->db, ctx->srv->host_ref, (*rec)->SR, path, errp)) {
        xapi_vdi_record_free(*rec);
        *rec = NULL;
        return false;
    }
    return true;
}

static bool
vdi_sm_parent(struct xapi_vdi_record *v, const char *parent_uuid)
{
    struct xmap *sm = (struct xmap *)&v->sm_config;
    if (xmap_put_str(sm, "vdi_type", "vhd") < 0)
        return false;
    if (parent_uuid && parent_uuid[0])
        return xmap_put_str(sm, "vhd-parent", parent_uuid) == 0;
    xmap_remove_key(&xapi_type_string_string_map, sm, "vhd-parent");
    return true;
}

/* ------------------------------------------------------------------ create, destroy */

void
storage_vdi_delete_file(struct call_ctx *ctx, const char *sr, const char *uuid)
{
    char *path = NULL;
    if (storage_sr_path(ctx->db, ctx->srv->host_ref, sr, &path, NULL)) {
        sr_file_vdi_destroy(path, uuid);
        sr_file_intent_end(path, uuid);
    }
    free(path);
}

/* The end of a creation's intent (storage/sr_file.h): now when its record is
 * committed; inside a caller's batch it stays, and the next start's recovery
 * finds the record and drops it. */
static void
intent_done(struct call_ctx *ctx, const char *path, const char *uuid)
{
    if (!db_in_batch(ctx->db))
        sr_file_intent_end(path, uuid);
}

bool
storage_vdi_create(struct call_ctx *ctx, const struct xapi_vdi_record *args, char **ref,
                   struct xerr **errp)
{
    _cleanup_free_ char *path = NULL;
    char uuid[37];
    if (!storage_sr_path(ctx->db, ctx->srv->host_ref, args->SR, &path, errp))
        return false;
    if (args->virtual_size <= 0) {
        char v[24];
        snprintf(v, sizeof(v), "%" PRId64, args->virtual_size);
        return xerr_invalid_value(errp, "virtual_size", v);
    }
    uint64_t size = sr_file_round_size((uint64_t)args->virtual_size);
    db_uuid_generate(uuid);
    int rc = sr_file_intent_begin(path, uuid, "create");
    if (rc == 0 && (rc = sr_file_vdi_create(path, uuid, size)) < 0)
        sr_file_intent_end(path, uuid);
    if (rc < 0)
        return vdi_fail(errp, rc, args->SR, "", path, size);
    struct sr_file_vhd info = {.physical_size = 0};
    sr_file_vdi_info(path, uuid, &info);
    _cleanup_(xapi_vdi_record_freep) struct xapi_vdi_record *v =
        xrecord_copy(&xapi_class_vdi, args);
    if (!v || !xstr_set(&v->uuid, uuid) || !xstr_set(&v->location, uuid) ||
        !vdi_sm_parent(v, NULL) || !storage_vdi_ops_refresh(v, false)) {
        sr_file_vdi_destroy(path, uuid); /* rollback */
        sr_file_intent_end(path, uuid);
        return xerr_nomem(errp);
    }
    xtype_value_clear(&xapi_type_string_vdi_operations_map, &v->current_operations);
    v->virtual_size = (int64_t)size;
    v->physical_utilisation = (int64_t)info.physical_size;
    v->managed = true;
    v->missing = false;
    test_crash_point("vdi.create.before_commit");
    if (!db_create(ctx->db, &xapi_class_vdi, NULL, steal_ptr(&v), ref, errp)) {
        sr_file_vdi_destroy(path, uuid); /* rollback */
        sr_file_intent_end(path, uuid);
        return false;
    }
    intent_done(ctx, path, uuid);
    storage_sr_refresh(ctx->db, args->SR, path, NULL);
    return true;
}

bool
api_vdi_create(struct call_ctx *ctx, const struct xapi_vdi_record *args, char **result,
               struct xerr **errp)
{
    return storage_vdi_create(ctx, args, result, errp);
}

/* Drops VDI @ref's record and its (unattached) VBDs. */
static bool
vdi_records_destroy(struct db *db, const struct xapi_vdi_record *v, const char *ref,
                    struct xerr **errp)
{
    db_batch_begin(db);
    bool ok = true;
    for (size_t i = 0; ok && i < v->VBDs.n; i++)
        ok = db_destroy(db, &xapi_class_vbd, v->VBDs.items[i], errp);
    ok = ok && db_destroy(db, &xapi_class_vdi, ref, errp);
    return db_batch_end(db, ok, errp);
}

bool
api_vdi_destroy(struct call_ctx *ctx, const char *self, struct xerr **errp)
{
    _cleanup_(xapi_vdi_record_freep) struct xapi_vdi_record *v = NULL;
    _cleanup_free_ char *path = NULL;
    if (!vdi_open(ctx, self, &v, &path, errp))
        return false;
    bool ok;
    int rc;
    if (vdi_attached(ctx->db, v))
        ok = xerr_vdi_in_use(errp, self, "destroy");
    else if ((rc = sr_file_vdi_destroy(path, v->uuid)) < 0 && rc != -ENOENT)
        ok = storage_fail(errp, rc, v->SR, self);
    else if ((rc = sr_file_cbt_remove(path, v->uuid)) < 0) /* its blocks go to the next log */
        ok = storage_fail(errp, rc, v->SR, self);
    else
        ok = vdi_records_destroy(ctx->db, v, self, errp);
    if (ok)
        sr_file_intent_end(path, v->uuid); /* one a batch left behind */
    if (ok) {
        storage_sr_refresh(ctx->db, v->SR, path, NULL);
        storage_gc_kick(ctx->srv); /* its base may now have a single child */
    }
    return ok;
}

bool
api_vdi_forget(struct call_ctx *ctx, const char *vdi, struct xerr **errp)
{
    _cleanup_(xapi_vdi_record_freep) struct xapi_vdi_record *v = NULL;
    if (!db_get(ctx->db, &xapi_class_vdi, vdi, (void **)&v, errp))
        return false;
    return vdi_attached(ctx->db, v) ? xerr_vdi_in_use(errp, vdi, "forget")
                                    : vdi_records_destroy(ctx->db, v, vdi, errp);
}

/* ------------------------------------------------------------------ snapshot, clone */

struct parent_set {
    const char *parent;
    int64_t physical;
};

static bool
parent_apply(void *opaque, void *rec, struct xerr **errp)
{
    const struct parent_set *p = opaque;
    struct xapi_vdi_record *v = rec;
    v->physical_utilisation = p->physical;
    return vdi_sm_parent(v, p->parent) || xerr_nomem(errp);
}

/* The files of a snapshot or clone of VDI @uuid as @new_uuid. A VDI whose
 * disk is served to a running guest is snapshotted live: its servers are
 * paused (in-flight writes done, flushed) for the few file operations, then
 * handed the new chain - the pause lasts a flush and a chain open. */
static int
snapshot_files(struct server *srv, const char *path, const char *uuid, const char *new_uuid,
               char base[37])
{
    struct disk_pause *p = NULL;
    disk_servers_lock();
    int rc = disk_servers_pause(srv, path, uuid, &p);
    if (rc < 0) {
        disk_servers_unlock();
        return rc;
    }
    rc = sr_file_vdi_snapshot(path, uuid, new_uuid, base);
    if (rc == 0 && disk_servers_reload(p) < 0) {
        if (disk_servers_all_on_old_chain(p)) {
            /* nothing was written to the new leaf: the old chain is made whole again */
            sr_file_vdi_unsplit(path, uuid, base, new_uuid);
        } else {
            /* a server may write to the new leaf already: undoing the split
             * would lose that, so it stays; the snapshot's file goes, and
             * the servers that may still write into the old leaf (the base
             * now) are stopped */
            sr_file_vdi_destroy(path, new_uuid);
            disk_servers_abandon(p);
            p = NULL;
        }
        rc = -EIO;
    }
    if (rc == 0 && disk_servers_paused_count(p) > 0)
        log_info("vdi.snapshot_live", "vdi=%s servers=%zu", uuid, disk_servers_paused_count(p));
    disk_servers_resume(p);
    disk_servers_unlock();
    return rc;
}

static bool
vdi_snapshot_or_clone(struct call_ctx *ctx, const char *vdi, bool snapshot, char **result,
                      struct xerr **errp)
{
    _cleanup_(xapi_vdi_record_freep) struct xapi_vdi_record *src = NULL;
    _cleanup_free_ char *path = NULL;
    char uuid[37], base[37];
    if (!vdi_open(ctx, vdi, &src, &path, errp))
        return false;
    if (!vdi_cbt_op_check(src, vdi, true, false, errp)) /* no data to snapshot (xapi) */
        return false;
    db_uuid_generate(uuid);
    char what[64];
    snprintf(what, sizeof(what), "%s %s", snapshot ? "snapshot" : "clone", src->uuid);
    int rc = sr_file_intent_begin(path, uuid, what);
    if (rc == 0 && (rc = snapshot_files(ctx->srv, path, src->uuid, uuid, base)) < 0)
        sr_file_intent_end(path, uuid);
    if (rc < 0)
        return storage_fail(errp, rc, src->SR, vdi);
    /* a tracked disk's changes since its previous snapshot become the new
     * snapshot's log (storage/sr_file_cbt.c); one tracked before the logs
     * existed starts its list here */
    if (snapshot && src->cbt_enabled &&
        (rc = sr_file_cbt_snapshot(path, src->uuid, uuid)) == -ENOENT)
        rc = sr_file_cbt_enable(path, src->uuid);
    if (rc < 0) {
        sr_file_vdi_destroy(path, uuid);
        sr_file_intent_end(path, uuid);
        return storage_fail(errp, rc, src->SR, vdi);
    }
    struct sr_file_vhd leaf = {.physical_size = 0}, fresh = {.physical_size = 0};
    sr_file_vdi_info(path, src->uuid, &leaf);
    sr_file_vdi_info(path, uuid, &fresh);
    struct xapi_vdi_record *dst = xrecord_copy(&xapi_class_vdi, src);
    bool ok = dst && xstr_set(&dst->uuid, uuid) && xstr_set(&dst->location, uuid) &&
              xstr_set(&dst->snapshot_of, snapshot ? vdi : NULL_REF) &&
              vdi_sm_parent(dst, base) && storage_vdi_ops_refresh(dst, false);
    if (!ok) {
        xapi_vdi_record_free(dst);
        ok = xerr_nomem(errp);
    } else {
        xtype_value_clear(&xapi_type_string_vdi_operations_map, &dst->current_operations);
        xtype_value_clear(&xapi_type_ref_VBD_set, &dst->VBDs);
        xtype_value_clear(&xapi_type_ref_VDI_set, &dst->snapshots);
        dst->is_a_snapshot = snapshot;
        dst->snapshot_time = snapshot ? (int64_t)time(NULL) : 0;
        dst->cbt_enabled = snapshot && src->cbt_enabled; /* a clone starts untracked (xapi) */
        dst->physical_utilisation = (int64_t)fresh.physical_size;
        struct parent_set ps = {base, (int64_t)leaf.physical_size};
        test_crash_point("vdi.clone.before_commit");
        db_batch_begin(ctx->db);
        ok = db_create(ctx->db, &xapi_class_vdi, NULL, dst, result, errp) &&
             db_update(ctx->db, &xapi_class_vdi, vdi, parent_apply, &ps, errp);
        ok = db_batch_end(ctx->db, ok, errp);
    }
    if (!ok) {
        sr_file_vdi_destroy(path, uuid); /* the base stays: vdi's leaf is its child */
        sr_file_cbt_remove(path, uuid);  /* its blocks go back to vdi's log */
        sr_file_intent_end(path, uuid);
    } else {
        intent_done(ctx, path, uuid);
        storage_sr_refresh(ctx->db, src->SR, path, NULL);
    }
    return ok;
}

bool
api_vdi_snapshot(struct call_ctx *ctx, const char *vdi,
                 const struct xapi_string_string_map *driver_params, char **result,
                 struct xerr **errp)
{
    return vdi_snapshot_or_clone(ctx, vdi, true, result, errp);
}

bool
api_vdi_clone(struct call_ctx *ctx, const char *vdi,
              const struct xapi_string_string_map *driver_params, char **result,
              struct xerr **errp)
{
    return vdi_snapshot_or_clone(ctx, vdi, false, result, errp);
}

/* ------------------------------------------------------------------ copy, resize */

static void
copy_progress(void *opaque, uint64_t done, uint64_t total)
{
    if (total)
        ctx_progress(opaque, (double)done / (double)total);
}

/* VDI.copy with into_vdi: @vdi's content written over the existing @into
 * (only the blocks that differ from @base when one is given: xapi's
 * incremental copy, for a target known to hold @base already). */
static bool
vdi_copy_into(struct call_ctx *ctx, const char *vdi, const char *base, const char *into,
              char **result, struct xerr **errp)
{
    _cleanup_(xapi_vdi_record_freep) struct xapi_vdi_record *src = NULL;
    _cleanup_(xapi_vdi_record_freep) struct xapi_vdi_record *dst = NULL;
    _cleanup_(xapi_vdi_record_freep) struct xapi_vdi_record *b = NULL;
    _cleanup_free_ char *src_path = NULL;
    _cleanup_free_ char *dst_path = NULL;
    _cleanup_free_ char *base_path = NULL;
    bool ok = vdi_open(ctx, vdi, &src, &src_path, errp) &&
              vdi_open(ctx, into, &dst, &dst_path, errp) &&
              (strcmp(base, NULL_REF) == 0 || vdi_open(ctx, base, &b, &base_path, errp));
    bool writer = false;
    if (ok) {
        char size[24];
        snprintf(size, sizeof(size), "%" PRId64, src->virtual_size);
        if (dst->read_only)
            ok = xerr_vdi_readonly(errp, into);
        else if (dst->virtual_size < src->virtual_size)
            ok = xerr_vdi_too_small(errp, into, size);
        else if (vdi_attached(ctx->db, dst))
            ok = xerr_vdi_in_use(errp, into, "copy");
        else if (b && b->virtual_size != src->virtual_size)
            ok = xerr_value_not_supported(errp, "base_vdi", base,
                            "the base must have the size of the VDI copied");
        else if (strcmp(vdi, into) == 0)
            ok = xerr_value_not_supported(errp, "into_vdi", into,
                            "a VDI cannot be copied into itself");
    }
    if (ok) {
        writer = storage_gc_writer_begin(dst->uuid); /* the collector leaves it alone */
        ok = writer || xerr_nomem(errp);
    }
    if (ok) {
        int rc = sr_file_vdi_copy_into(src_path, src->uuid, base_path, b ? b->uuid : NULL,
                                       dst_path, dst->uuid, copy_progress, ctx);
        ok = rc == 0 || storage_fail(errp, rc, dst->SR, into);
        ok = ok && storage_sr_refresh_vdis(ctx->db, dst->SR, dst_path, errp);
        ok = ok && ((*result = strdup(into)) || xerr_nomem(errp));
    }
    if (writer)
        storage_gc_writer_end(dst->uuid);
    return ok;
}

bool
api_vdi_copy(struct call_ctx *ctx, const char *vdi, const char *sr, const char *base_vdi,
             const char *into_vdi, char **result, struct xerr **errp)
{
    {
        _cleanup_(xapi_vdi_record_freep) struct xapi_vdi_record *v = NULL;
        if (db_get(ctx->db, &xapi_class_vdi, vdi, (void **)&v, NULL) &&
            !vdi_cbt_op_check(v, vdi, true, false, errp)) /* no data to copy (xapi) */
            return false;
    }
    if (strcmp(into_vdi, NULL_REF) != 0)
        return vdi_copy_into(ctx, vdi, base_vdi, into_vdi, result, errp);
    if (strcmp(base_vdi, NULL_REF) != 0 && !db_exists(ctx->db, &xapi_class_vdi, base_vdi))
        return xerr_handle_invalid(errp, "VDI", base_vdi);
    _cleanup_(xapi_vdi_record_freep) struct xapi_vdi_record *src = NULL;
    _cleanup_free_ char *src_path = NULL;
    _cleanup_free_ char *dst_path = NULL;
    char uuid[37];
    if (!vdi_open(ctx, vdi, &src, &src_path, errp))
        return false;
    const char *dst_sr = strcmp(sr, NULL_REF) != 0 ? sr : src->SR;
    if (!storage_sr_path(ctx->db, ctx->srv->host_ref, dst_sr, &dst_path, errp))
        return false;
    db_uuid_generate(uuid);
    bool ok;
    char what[64];
    snprintf(what, sizeof(what), "copy %s", src->uuid);
    int rc = sr_file_intent_begin(dst_path, uuid, what);
    if (rc == 0 && (rc = sr_file_vdi_copy(src_path, src->uuid, dst_path, uuid, copy_progress,
                                          ctx)) < 0)
        sr_file_intent_end(dst_path, uuid);
    struct xapi_vdi_record *dst = NULL;
    if (rc < 0) {
        ok = vdi_fail(errp, rc, dst_sr, vdi, dst_path, (uint64_t)src->virtual_size);
    } else if (!(dst = xrecord_copy(&xapi_class_vdi, src)) || !xstr_set(&dst->uuid, uuid) ||
               !xstr_set(&dst->location, uuid) || !xstr_set(&dst->SR, dst_sr) ||
               !xstr_set(&dst->snapshot_of, NULL_REF) || !vdi_sm_parent(dst, NULL) ||
               !storage_vdi_ops_refresh(dst, false)) {
        xapi_vdi_record_free(dst);
        ok = xerr_nomem(errp);
    } else {
        struct sr_file_vhd info = {.physical_size = 0};
        sr_file_vdi_info(dst_path, uuid, &info);
        xtype_value_clear(&xapi_type_string_vdi_operations_map, &dst->current_operations);
        xtype_value_clear(&xapi_type_ref_VBD_set, &dst->VBDs);
        xtype_value_clear(&xapi_type_ref_VDI_set, &dst->snapshots);
        dst->is_a_snapshot = false;
        dst->snapshot_time = 0;
        dst->cbt_enabled = false; /* a copy has no history with the original's chain */
        dst->physical_utilisation = (int64_t)info.physical_size;
        test_crash_point("vdi.copy.before_commit");
        ok = db_create(ctx->db, &xapi_class_vdi, NULL, dst, result, errp);
    }
    if (!ok && rc == 0) {
        sr_file_vdi_destroy(dst_path, uuid);
        sr_file_intent_end(dst_path, uuid);
    }
    if (ok) {
        intent_done(ctx, dst_path, uuid);
        storage_sr_refresh(ctx->db, dst_sr, dst_path, NULL);
    }
    return ok;
}

static bool
size_apply(void *opaque, void *rec, struct xerr **errp)
{
    const struct sr_file_vhd *f = opaque;
    struct xapi_vdi_record *v = rec;
    v->virtual_size = (int64_t)f->virtual_size;
    v->physical_utilisation = (int64_t)f->physical_size;
    return true;
}

bool
api_vdi_resize(struct call_ctx *ctx, const char *vdi, int64_t size, struct xerr **errp)
{
    struct xapi_vdi_record *v = NULL;
    char *path = NULL;
    if (!vdi_open(ctx, vdi, &v, &path, errp))
        return false;
    bool ok = vdi_cbt_op_check(v, vdi, true, false, errp);
    int rc;
    char now[24];
    snprintf(now, sizeof(now), "%" PRId64, v->virtual_size);
    struct sr_file_vhd info;
    if (!ok)
        ;
    else if (vdi_attached(ctx->db, v))
        ok = xerr_vdi_in_use(errp, vdi, "resize");
    else if (size < v->virtual_size)
        ok = xerr_vdi_too_small(errp, vdi, now);
    else if ((rc = sr_file_vdi_resize(path, v->uuid, (uint64_t)size)) < 0)
        ok = vdi_fail(errp, rc, v->SR, vdi, path, sr_file_round_size((uint64_t)size));
    else if ((rc = sr_file_vdi_info(path, v->uuid, &info)) < 0)
        ok = storage_fail(errp, rc, v->SR, vdi);
    else
        ok = db_update(ctx->db, &xapi_class_vdi, vdi, size_apply, &info, errp) &&
             storage_sr_refresh(ctx->db, v->SR, path, errp);
    xapi_vdi_record_free(v);
    free(path);
    return ok;
}

/* ------------------------------------------------------------------ setters */

static bool
vdi_set(struct call_ctx *ctx, const char *self, const char *field, const void *value,
        struct xerr **errp)
{
    return db_set_field(ctx->db, &xapi_class_vdi, self, xclass_field(&xapi_class_vdi, field),
                        value, errp);
}

bool
api_vdi_set_name_label(struct call_ctx *ctx, const char *self, const char *value,
                       struct xerr **errp)
{
    return vdi_set(ctx, self, "name_label", &value, errp);
}

bool
api_vdi_set_name_description(struct call_ctx *ctx, const char *self, const char *value,
                             struct xerr **errp)
{
    return vdi_set(ctx, self, "name_description", &value, errp);
}

bool
api_vdi_set_read_only(struct call_ctx *ctx, const char *self, bool value, struct xerr **errp)
{
    return vdi_set(ctx, self, "read_only", &value, errp);
}

bool
api_vdi_set_sharable(struct call_ctx *ctx, const char *self, bool value, struct xerr **errp)
{
    return vdi_set(ctx, self, "sharable", &value, errp);
}
