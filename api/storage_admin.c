/* api/storage_admin.c - the SR, VDI, PBD and VBD messages that check or set
 * rather than move data (xapi's ocaml/xapi/xapi_sr.ml, xapi_vdi.ml,
 * xapi_pbd.ml, xapi_vbd.ml, xha_statefile.ml, as message_forwarding.ml
 * routes them on one host).
 *
 * The SR drivers here (ext, file: directories of VHD files) advertise
 * neither SR_METADATA nor VDI_GENERATE_CONFIG/VDI_ATTACH_OFFLINE, so they
 * hold no disaster-recovery metadata VDI and no HA statefile: xapi's checks
 * run in its order and end in SR_OPERATION_NOT_SUPPORTED [sr]. No metadata
 * VDI exists, so VDI.open_database refuses every VDI by its type and
 * read_database_pool_uuid finds no cached database ("").
 *
 * A VDI's location on these SRs is its uuid (the file <uuid>.vhd), so
 * VDI.introduce takes back a file whose record was forgotten.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api/storage_api.h"
#include "api/vm_ops.h"
#include "db/db.h"
#include "rpc/ctx.h"
#include "storage/sr_file.h"
#include "xapi_errors.h"
#include "xapi_handlers.h"

#define NULL_REF "OpaqueRef:NULL"

/*==== SR: replication, statefile, sizes ====*/

struct sr_pbds {
    const char *sr;
    size_t n, plugged;
};

static bool
count_pbd(void *opaque, const char *ref, const void *rec)
{
    struct sr_pbds *c = opaque;
    const struct xapi_pbd_record *p = rec;
    if (strcmp(p->SR, c->sr) == 0) {
        c->n++;
        c->plugged += p->currently_attached;
    }
    return true;
}

struct sm_caps {
    const char *type;
    bool found, metadata, statefile;
};

static bool
sm_caps_one(void *opaque, const char *ref, const void *rec)
{
    struct sm_caps *c = opaque;
    const struct xapi_sm_record *sm = rec;
    if (strcmp(sm->type, c->type) != 0)
        return true;
    c->found = true;
    const struct xset *caps = (const struct xset *)&sm->capabilities;
    c->metadata = xset_contains_str(caps, "SR_METADATA");
    c->statefile = xset_contains_str(caps, "VDI_GENERATE_CONFIG") ||
                   xset_contains_str(caps, "VDI_ATTACH_OFFLINE");
    return false;
}

/* xapi's shared precheck: a PBD on every host (here: one), each plugged
 * (SR_HAS_NO_PBDS either way); then the driver's capabilities. */
static bool
sr_check_capability(struct call_ctx *ctx, const char *sr, bool statefile, struct xerr **errp)
{
    struct xapi_sr_record *s = NULL;
    if (!db_get(ctx->db, &xapi_class_sr, sr, (void **)&s, errp))
        return false;
    struct sr_pbds c = {sr, 0, 0};
    db_foreach(ctx->db, &xapi_class_pbd, count_pbd, &c);
    struct sm_caps caps = {s->type, false, false, false};
    db_foreach(ctx->db, &xapi_class_sm, sm_caps_one, &caps);
    xapi_sr_record_free(s);
    if (c.n == 0 || c.plugged < c.n)
        return xerr_sr_has_no_pbds(errp, sr);
    if (!caps.found)
        return xerr_internal(errp, "SR does not have corresponding SM record: %s", sr);
    if (statefile ? !caps.statefile : !caps.metadata)
        return xerr_sr_operation_not_supported(errp, sr);
    return true;
}

bool
api_sr_assert_supports_database_replication(struct call_ctx *ctx, const char *sr,
                                            struct xerr **errp)
{
    return sr_check_capability(ctx, sr, false, errp);
}

bool
api_sr_enable_database_replication(struct call_ctx *ctx, const char *sr, struct xerr **errp)
{
    return sr_check_capability(ctx, sr, false, errp);
}

/* Disables replication to this pool's metadata VDIs on @sr: there are none. */
bool
api_sr_disable_database_replication(struct call_ctx *ctx, const char *sr, struct xerr **errp)
{
    return db_exists(ctx->db, &xapi_class_sr, sr) || xerr_handle_invalid(errp, "SR", sr);
}

bool
api_sr_assert_can_host_ha_statefile(struct call_ctx *ctx, const char *sr, struct xerr **errp)
{
    return sr_check_capability(ctx, sr, true, errp);
}

static bool
set_physical_size(void *opaque, void *rec, struct xerr **errp)
{
    ((struct xapi_sr_record *)rec)->physical_size = *(const int64_t *)opaque;
    return true;
}

bool
api_sr_set_physical_size(struct call_ctx *ctx, const char *self, int64_t value,
                         struct xerr **errp)
{
    return db_update(ctx->db, &xapi_class_sr, self, set_physical_size, &value, errp);
}

bool
api_sr_make(struct call_ctx *ctx, const char *host,
            const struct xapi_string_string_map *device_config, int64_t physical_size,
            const char *name_label, const char *name_description, const char *type,
            const char *content_type, const struct xapi_string_string_map *sm_config,
            char **result, struct xerr **errp)
{
    return xerr_message_deprecated(errp); /* xapi_sr.ml: use SR.create */
}

/*==== VDI ====*/

bool
api_vdi_read_database_pool_uuid(struct call_ctx *ctx, const char *self, char **result,
                                struct xerr **errp)
{
    if (!db_exists(ctx->db, &xapi_class_vdi, self))
        return xerr_handle_invalid(errp, "VDI", self);
    return (*result = strdup("")) != NULL || xerr_nomem(errp);
}

bool
api_vdi_open_database(struct call_ctx *ctx, const char *self, char **result,
                      struct xerr **errp)
{
    struct xapi_vdi_record *v = NULL;
    if (!db_get(ctx->db, &xapi_class_vdi, self, (void **)&v, errp))
        return false;
    enum xapi_vdi_type type = v->type;
    xapi_vdi_record_free(v);
    if (type != XAPI_VDI_TYPE_METADATA)
        return xerr_vdi_incompatible_type(errp, self, xenum_name(&xapi_enum_vdi_type, (int)type));
    /* unreachable with these drivers: no metadata VDI can be made */
    return xerr_could_not_import_database(errp, "no database can be read from this VDI");
}

static bool
set_allow_caching(void *opaque, void *rec, struct xerr **errp)
{
    ((struct xapi_vdi_record *)rec)->allow_caching = *(const bool *)opaque;
    return true;
}

/* IntelliCache: recorded as xapi does; no host here has a cache SR. */
bool
api_vdi_set_allow_caching(struct call_ctx *ctx, const char *self, bool value, struct xerr **errp)
{
    return db_update(ctx->db, &xapi_class_vdi, self, set_allow_caching, &value, errp);
}

static bool
set_on_boot(void *opaque, void *rec, struct xerr **errp)
{
    ((struct xapi_vdi_record *)rec)->on_boot = *(const enum xapi_on_boot *)opaque;
    return true;
}

/* The SR must be plugged (xapi asks SM to make the VDI persistent or not). */
bool
api_vdi_set_on_boot(struct call_ctx *ctx, const char *self, enum xapi_on_boot value,
                    struct xerr **errp)
{
    struct xapi_vdi_record *v = NULL;
    if (!db_get(ctx->db, &xapi_class_vdi, self, (void **)&v, errp))
        return false;
    char *path = NULL;
    bool ok = vdi_cbt_op_check(v, self, true, true, errp) &&
              storage_sr_path(ctx->db, ctx->srv->host_ref, v->SR, &path, errp);
    xapi_vdi_record_free(v);
    free(path);
    return ok && db_update(ctx->db, &xapi_class_vdi, self, set_on_boot, &value, errp);
}

/* The record again from the SR (xapi's VDI.stat): sizes and vhd-parent. */
bool
api_vdi_update(struct call_ctx *ctx, const char *vdi, struct xerr **errp)
{
    struct xapi_vdi_record *v = NULL;
    if (!db_get(ctx->db, &xapi_class_vdi, vdi, (void **)&v, errp))
        return false;
    char *path = NULL;
    bool ok = storage_sr_path(ctx->db, ctx->srv->host_ref, v->SR, &path, errp) &&
              storage_sr_refresh_vdis(ctx->db, v->SR, path, errp);
    xapi_vdi_record_free(v);
    free(path);
    return ok;
}

struct location_check {
    const char *sr, *location, *uuid;
    bool clash;
};

static bool
location_one(void *opaque, const char *ref, const void *rec)
{
    struct location_check *c = opaque;
    const struct xapi_vdi_record *v = rec;
    if (strcmp(v->SR, c->sr) == 0 && strcmp(v->location, c->location) == 0 &&
        strcmp(v->uuid, c->uuid) != 0)
        c->clash = true;
    return !c->clash;
}

static bool
copy_map(struct xapi_string_string_map *dst, const struct xapi_string_string_map *src)
{
    xtype_value_clear(&xapi_type_string_string_map, dst);
    return xtype_value_copy(&xapi_type_string_string_map, dst, src) == 0;
}

bool
api_vdi_introduce(struct call_ctx *ctx, const char *uuid, const char *name_label,
                  const char *name_description, const char *SR, enum xapi_vdi_type type,
                  bool sharable, bool read_only,
                  const struct xapi_string_string_map *other_config, const char *location,
                  const struct xapi_string_string_map *xenstore_data,
                  const struct xapi_string_string_map *sm_config, bool managed,
                  int64_t virtual_size, int64_t physical_utilisation,
                  const char *metadata_of_pool, bool is_a_snapshot, int64_t snapshot_time,
                  const char *snapshot_of, char **result, struct xerr **errp)
{
    char *path = NULL;
    if (!storage_sr_path(ctx->db, ctx->srv->host_ref, SR, &path, errp))
        return false;
    const char *id = uuid[0] ? uuid : location;
    struct location_check c = {SR, location, id, false};
    db_foreach(ctx->db, &xapi_class_vdi, location_one, &c);
    struct sr_file_vhd *files = NULL;
    size_t n = 0;
    const struct sr_file_vhd *f = NULL;
    bool ok = true;
    if (c.clash) {
        ok = xerr_location_not_unique(errp, SR, location);
    } else if (strcasecmp(id, location) != 0) {
        ok = xerr_invalid_value(errp, "uuid", uuid); /* the file is named by the VDI's uuid */
    } else {
        int rc = sr_file_scan(path, &files, &n);
        if (rc < 0)
            ok = storage_fail(errp, rc, SR, NULL);
        for (size_t i = 0; ok && i < n && !f; i++)
            if (!files[i].hidden && strcasecmp(files[i].uuid, location) == 0)
                f = &files[i];
        if (ok && !f)
            ok = xerr_vdi_location_missing(errp, SR, location);
    }
    free(path);
    struct xapi_vdi_record *v = ok ? xrecord_new(&xapi_class_vdi) : NULL;
    if (ok && (!v || !xstr_set(&v->uuid, f->uuid) || !xstr_set(&v->SR, SR) ||
               !xstr_set(&v->location, f->uuid) || !xstr_set(&v->name_label, name_label) ||
               !xstr_set(&v->name_description, name_description) ||
               !copy_map(&v->other_config, other_config) ||
               !copy_map(&v->xenstore_data, xenstore_data) ||
               !copy_map(&v->sm_config, sm_config) ||
               xmap_put_str((struct xmap *)&v->sm_config, "vdi_type", "vhd") < 0 ||
               (f->parent_uuid[0] &&
                xmap_put_str((struct xmap *)&v->sm_config, "vhd-parent", f->parent_uuid) < 0) ||
               !storage_vdi_ops_refresh(v, false)))
        ok = xerr_nomem(errp);
    if (ok) {
        v->type = type;
        v->sharable = sharable;
        v->read_only = read_only;
        v->managed = true;
        v->virtual_size = (int64_t)f->virtual_size;
        v->physical_utilisation = (int64_t)f->physical_size;
        ok = db_create(ctx->db, &xapi_class_vdi, NULL, v, result, errp);
        v = NULL;
    }
    xapi_vdi_record_free(v);
    free(files);
    return ok;
}

/*==== PBD ====*/

static bool
set_device_config(void *opaque, void *rec, struct xerr **errp)
{
    struct xapi_pbd_record *p = rec;
    const struct xapi_string_string_map *value = opaque;
    const char *now = xmap_get_str((const struct xmap *)&p->device_config, "path");
    const char *next = xmap_get_str((const struct xmap *)value, "path");
    /* the directory a plugged SR serves from cannot move under its disks */
    if (p->currently_attached && (now || next) && (!now || !next || strcmp(now, next) != 0))
        return xerr_operation_not_allowed(errp, "device_config:path of a plugged PBD");
    return copy_map(&p->device_config, value) || xerr_nomem(errp);
}

bool
api_pbd_set_device_config(struct call_ctx *ctx, const char *self,
                          const struct xapi_string_string_map *value, struct xerr **errp)
{
    const char *master = xmap_get_str((const struct xmap *)value, "SRmaster");
    if (master) /* xapi_pbd.ml assert_no_srmaster_key */
        return xerr_value_not_supported(errp, "SRmaster", master,
                                         "This key is for internal use only");
    return db_update(ctx->db, &xapi_class_pbd, self, set_device_config, (void *)value, errp);
}

/*==== VBD ====*/

static bool
vbd_vm_halted(struct call_ctx *ctx, const char *vbd, struct xerr **errp)
{
    struct xapi_vbd_record *b = NULL;
    struct xapi_vm_record *vm = NULL;
    if (!db_get(ctx->db, &xapi_class_vbd, vbd, (void **)&b, errp))
        return false;
    bool ok = db_get(ctx->db, &xapi_class_vm, b->VM, (void **)&vm, errp);
    if (ok && vm->power_state != XAPI_VM_POWER_STATE_HALTED)
        ok = xerr_vm_bad_power_state(errp, b->VM, "halted",
                                     vm_power_state_lower(vm->power_state));
    xapi_vbd_record_free(b);
    xapi_vm_record_free(vm);
    return ok;
}

static bool
set_vbd_mode(void *opaque, void *rec, struct xerr **errp)
{
    ((struct xapi_vbd_record *)rec)->mode = *(const enum xapi_vbd_mode *)opaque;
    return true;
}

bool
api_vbd_set_mode(struct call_ctx *ctx, const char *self, enum xapi_vbd_mode value,
                 struct xerr **errp)
{
    return vbd_vm_halted(ctx, self, errp) &&
           db_update(ctx->db, &xapi_class_vbd, self, set_vbd_mode, &value, errp);
}

struct vdi_users {
    const char *vdi, *self;
    struct db *db;
    bool running_elsewhere;
};

static bool
vdi_user_one(void *opaque, const char *ref, const void *rec)
{
    struct vdi_users *u = opaque;
    const struct xapi_vbd_record *b = rec;
    if (b->empty || strcmp(b->VDI, u->vdi) != 0 || strcmp(ref, u->self) == 0)
        return true;
    if (b->currently_attached)
        u->running_elsewhere = true;
    return !u->running_elsewhere;
}

/* xapi_vbd_helpers.ml assert_attachable: whether the `attach` operation
 * would be valid now. */
bool
api_vbd_assert_attachable(struct call_ctx *ctx, const char *self, struct xerr **errp)
{
    struct xapi_vbd_record *b = NULL;
    if (!db_get(ctx->db, &xapi_class_vbd, self, (void **)&b, errp))
        return false;
    bool ok = true;
    struct xapi_vdi_record *v = NULL;
    if (b->currently_attached) {
        ok = xerr_device_already_attached(errp, self);
    } else if (!b->empty && db_get(ctx->db, &xapi_class_vdi, b->VDI, (void **)&v, errp)) {
        char *path = NULL;
        struct vdi_users u = {b->VDI, self, ctx->db, false};
        db_foreach(ctx->db, &xapi_class_vbd, vdi_user_one, &u);
        if (v->read_only && b->mode == XAPI_VBD_MODE_RW)
            ok = xerr_vdi_readonly(errp, b->VDI);
        else if (u.running_elsewhere && !v->sharable)
            ok = xerr_vdi_in_use(errp, b->VDI, "attach");
        else
            ok = storage_sr_path(ctx->db, ctx->srv->host_ref, v->SR, &path, errp);
        free(path);
    } else if (!b->empty) {
        ok = false; /* the VDI is gone: HANDLE_INVALID is set */
    }
    xapi_vdi_record_free(v);
    xapi_vbd_record_free(b);
    return ok;
}

/* QEMU removes a disk only once the guest lets go of it (ACPI eject), so
 * there is no removal that skips the guest: a forced unplug is the
 * unplug. */
bool
api_vbd_unplug_force(struct call_ctx *ctx, const char *self, struct xerr **errp)
{
    return api_vbd_unplug(ctx, self, errp);
}

/* SR.probe_ext is SMAPIv3's structured probe; xapi answers the drivers of
 * SMAPIv1 (a raw XML probe, as ext and file give: SR.probe) with
 * SR_OPERATION_NOT_SUPPORTED and no parameter (xapi_sr.ml). */
bool
api_sr_probe_ext(struct call_ctx *ctx, const char *host,
                 const struct xapi_string_string_map *device_config, const char *type,
                 const struct xapi_string_string_map *sm_config,
                 struct xapi_probe_result_record_set *result, struct xerr **errp)
{
    if (strcmp(type, "ext") != 0 && strcmp(type, "file") != 0)
        return xerr_sr_unknown_driver(errp, type);
    if (!db_exists(ctx->db, &xapi_class_host, host))
        return xerr_handle_invalid(errp, "host", host);
    return xerr_sr_operation_not_supported_bare(errp);
}
