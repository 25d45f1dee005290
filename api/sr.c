/* api/sr.c - SR.* messages (the helpers they share with the other storage
 * files are api/sr_records.c's).
 *
 * Types built: "ext" and "file", both storage/sr_file.c (a directory of VHDs;
 * device_config:path, default DATA_DIR/sr/<uuid>). Anything else is
 * SR_UNKNOWN_DRIVER [type]. An SR is usable from a host while that host's PBD
 * is plugged (currently_attached); VDI operations without one fail with
 * SR_HAS_NO_PBDS / SR_NOT_ATTACHED [sr] (xapi's ocaml/idl/datamodel*.ml "SR", "PBD", 6).
 * SR.destroy and SR.forget refuse while a PBD is plugged (SR_HAS_PBD [sr]),
 * and take the SR's PBDs, VDIs and the VBDs of those VDIs with them.
 * SR.scan reconciles records with files: a VHD without a record becomes a VDI,
 * a VDI whose file vanished is removed, sizes and vhd-parent are refreshed.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/sr_records.h"
#include "api/sr_shared.h"
#include "api/storage_api.h"
#include "api/storage_gc.h"
#include "common/log.h"
#include "db/db.h"
#include "rpc/ctx.h"
#include "storage/sr_file.h"
#include "xapi_handlers.h"
#include "xapi_errors.h"

#define NULL_REF "OpaqueRef:NULL"


static bool
type_known(const char *type)
{
    return strcmp(type, "ext") == 0 || strcmp(type, "file") == 0;
}

bool
api_sr_scan(struct call_ctx *ctx, const char *sr, struct xerr **errp)
{
    char *path = NULL;
    if (!storage_sr_path(ctx->db, ctx->srv->host_ref, sr, &path, errp))
        return false;
    bool ok = sr_scan_path(ctx->db, sr, path, true, errp);
    free(path);
    if (ok)
        storage_gc_kick(ctx->srv); /* as SM's scan starts its collector */
    return ok;
}

/* ------------------------------------------------------------------ create, introduce */

/* The SR record and this host's plugged PBD; *@sr_ref new. */
static bool
sr_records_create(struct db *db, const char *host, const char *uuid, const char *path,
                  const struct xapi_string_string_map *device_config, const char *name_label,
                  const char *name_description, const char *type, const char *content_type,
                  bool shared, const struct xapi_string_string_map *sm_config,
                  const char *local_marker, char **sr_ref, struct xerr **errp)
{
    struct xapi_sr_record *s = xrecord_new(&xapi_class_sr);
    struct xapi_pbd_record *p = xrecord_new(&xapi_class_pbd);
    bool ok = s && p && xstr_set(&s->uuid, uuid) && xstr_set(&s->name_label, name_label) &&
              xstr_set(&s->name_description, name_description) && xstr_set(&s->type, type) &&
              xstr_set(&s->content_type, content_type) && sr_ops_set(s, true) &&
              xstr_set(&p->host, host);
    if (ok && sm_config) {
        xtype_value_clear(&xapi_type_string_string_map, &s->sm_config);
        ok = xtype_value_copy(&xapi_type_string_string_map, &s->sm_config, sm_config) == 0;
    }
    if (ok && device_config) {
        xtype_value_clear(&xapi_type_string_string_map, &p->device_config);
        ok = xtype_value_copy(&xapi_type_string_string_map, &p->device_config,
                              device_config) == 0;
    }
    ok = ok && xmap_put_str((struct xmap *)&p->device_config, "path", path) == 0;
    if (ok && local_marker)
        ok = xmap_put_str((struct xmap *)&s->other_config, "vessel-local", local_marker) == 0;
    if (!ok) {
        xapi_sr_record_free(s);
        xapi_pbd_record_free(p);
        return xerr_nomem(errp);
    }
    s->shared = shared;
    p->currently_attached = true;
    char *ref = NULL;
    if (!db_create(db, &xapi_class_sr, NULL, s, &ref, errp)) {
        xapi_pbd_record_free(p);
        return false;
    }
    if (!xstr_set(&p->SR, ref)) {
        free(ref);
        xapi_pbd_record_free(p);
        return xerr_nomem(errp);
    }
    if (!db_create(db, &xapi_class_pbd, NULL, p, NULL, errp)) {
        free(ref);
        return false;
    }
    *sr_ref = ref;
    return true;
}

static bool
sr_create_at(struct server *srv, const char *host,
             const struct xapi_string_string_map *device_config, const char *name_label,
             const char *name_description, const char *type, const char *content_type,
             bool shared, const struct xapi_string_string_map *sm_config,
             const char *default_path, const char *local_marker, char **result,
             struct xerr **errp)
{
    if (!type_known(type))
        return xerr_sr_unknown_driver(errp, type);
    if (!db_exists(srv->db, &xapi_class_host, host))
        return xerr_handle_invalid(errp, "host", host);
    char uuid[37], *path = NULL;
    db_uuid_generate(uuid);
    const char *given = xmap_get_str((const struct xmap *)device_config, "path");
    if (given && given[0])
        path = strdup(given);
    else if (default_path)
        path = strdup(default_path);
    else if (asprintf(&path, "%s/sr/%s", srv->data_dir, uuid) < 0)
        path = NULL;
    if (!path)
        return xerr_nomem(errp);
    int rc = sr_file_attach(path, true);
    if (rc == 0)
        rc = sr_file_mark(path, uuid);
    if (rc < 0) {
        free(path);
        return storage_fail(errp, rc, "", NULL);
    }
    char *ref = NULL;
    db_batch_begin(srv->db);
    bool ok = sr_records_create(srv->db, host, uuid, path, device_config, name_label,
                                name_description, type, content_type, shared, sm_config,
                                local_marker, &ref, errp);
    if (!db_batch_end(srv->db, ok, errp)) {
        free(ref);
        free(path);
        return false;
    }
    /* Files already in the directory (an SR re-created on its old path) become VDIs. */
    ok = sr_scan_path(srv->db, ref, path, true, errp);
    free(path);
    if (!ok) {
        free(ref);
        return false;
    }
    *result = ref;
    return true;
}

bool
api_sr_create(struct call_ctx *ctx, const char *host,
              const struct xapi_string_string_map *device_config, int64_t physical_size,
              const char *name_label, const char *name_description, const char *type,
              const char *content_type, bool shared,
              const struct xapi_string_string_map *sm_config, char **result,
              struct xerr **errp)
{
    /* a shared SR gets a PBD on every host of the pool, each plugged there
     * (xapi_sr.ml create) */
    if (!sr_create_at(ctx->srv, host, device_config, name_label, name_description, type,
                      content_type, shared, sm_config, NULL, NULL, result, errp))
        return false;
    if (shared && !sr_shared_pbds_create(ctx->srv, *result, errp)) {
        free(*result);
        *result = NULL;
        return false;
    }
    return true;
}

/* 8-4-4-4-12 hex digits (RFC 9562 section 4), written lower-case into @out. */
static bool
uuid_canonical(const char *in, char out[37])
{
    if (strlen(in) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        char c = (char)tolower((unsigned char)in[i]);
        if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
        out[i] = c;
    }
    out[36] = '\0';
    return true;
}

bool
api_sr_introduce(struct call_ctx *ctx, const char *uuid, const char *name_label,
                 const char *name_description, const char *type, const char *content_type,
                 bool shared, const struct xapi_string_string_map *sm_config, char **result,
                 struct xerr **errp)
{
    /* xapi_sr.ml introduce: "" means a new uuid, a taken one SR_UUID_EXISTS.
     * xapi stores any other string as given; the uuid names the SR in its
     * directory's mark file and in SR.probe's XML, so anything but a UUID is
     * refused here. */
    char canon[37] = "";
    if (uuid[0] && !uuid_canonical(uuid, canon))
        return xerr_invalid_value(errp, "uuid", uuid);
    char *taken = NULL;
    if (canon[0] && db_ref_by_uuid(ctx->db, &xapi_class_sr, canon, &taken, NULL)) {
        free(taken);
        return xerr_sr_uuid_exists(errp, canon);
    }
    struct xapi_sr_record *s = xrecord_new(&xapi_class_sr);
    if (!s || !xstr_set(&s->uuid, canon) || !xstr_set(&s->name_label, name_label) ||
        !xstr_set(&s->name_description, name_description) || !xstr_set(&s->type, type) ||
        !xstr_set(&s->content_type, content_type) || !sr_ops_set(s, false)) {
        xapi_sr_record_free(s);
        return xerr_nomem(errp);
    }
    xtype_value_clear(&xapi_type_string_string_map, &s->sm_config);
    if (xtype_value_copy(&xapi_type_string_string_map, &s->sm_config, sm_config) < 0) {
        xapi_sr_record_free(s);
        return xerr_nomem(errp);
    }
    s->shared = shared;
    return db_create(ctx->db, &xapi_class_sr, NULL, s, result, errp);
}

/* ------------------------------------------------------------------ forget, destroy */

static bool
pool_sr_unset(void *opaque, void *rec, struct xerr **errp)
{
    struct xapi_pool_record *p = rec;
    char **slots[] = {&p->default_SR, &p->suspend_image_SR, &p->crash_dump_SR};
    for (size_t i = 0; i < 3; i++)
        if (strcmp(*slots[i], opaque) == 0 && !xstr_set(slots[i], NULL_REF))
            return xerr_nomem(errp);
    return true;
}

/* Removes every record of @sr: VDIs (and their VBDs), PBDs, the SR. In a batch. */
static bool
sr_records_drop(struct call_ctx *ctx, const char *sr, struct xerr **errp)
{
    struct ref_list vdis = {.match = sr, .field_offset = offsetof(struct xapi_vdi_record, SR)};
    struct ref_list pbds = {.match = sr, .field_offset = offsetof(struct xapi_pbd_record, SR)};
    db_foreach(ctx->db, &xapi_class_vdi, ref_list_one, &vdis);
    db_foreach(ctx->db, &xapi_class_pbd, ref_list_one, &pbds);
    bool ok = (!vdis.nomem && !pbds.nomem) || xerr_nomem(errp);
    db_batch_begin(ctx->db);
    for (size_t i = 0; ok && i < vdis.n; i++)
        ok = vdi_records_drop(ctx->db, vdis.refs[i], errp);
    for (size_t i = 0; ok && i < pbds.n; i++)
        ok = db_destroy(ctx->db, &xapi_class_pbd, pbds.refs[i], errp);
    ok = ok && db_update(ctx->db, &xapi_class_pool, ctx->srv->pool_ref, pool_sr_unset,
                         (void *)sr, errp);
    ok = ok && db_destroy(ctx->db, &xapi_class_sr, sr, errp);
    ok = db_batch_end(ctx->db, ok, errp);
    ref_list_free(&vdis);
    ref_list_free(&pbds);
    return ok;
}

/* SR_HAS_PBD [sr] while a PBD of @sr is plugged; *@path (new, may be NULL)
 * names the directory from this host's PBD. */
static bool
sr_assert_unplugged(struct call_ctx *ctx, const char *sr, char **path, struct xerr **errp)
{
    if (!db_exists(ctx->db, &xapi_class_sr, sr))
        return xerr_handle_invalid(errp, "SR", sr);
    struct pbd_find f = {.sr = sr, .host = ctx->srv->host_ref};
    db_foreach(ctx->db, &xapi_class_pbd, pbd_find_one, &f);
    free(f.ref);
    if (f.n_attached > 0) {
        free(f.path);
        return xerr_sr_has_pbd(errp, sr);
    }
    if (path)
        *path = f.path;
    else
        free(f.path);
    return true;
}

bool
api_sr_forget(struct call_ctx *ctx, const char *sr, struct xerr **errp)
{
    return sr_assert_unplugged(ctx, sr, NULL, errp) && sr_records_drop(ctx, sr, errp);
}

bool
api_sr_destroy(struct call_ctx *ctx, const char *sr, struct xerr **errp)
{
    char *path = NULL;
    struct xapi_sr_record *s = NULL;
    if (!sr_assert_unplugged(ctx, sr, &path, errp))
        return false;
    if (!db_get(ctx->db, &xapi_class_sr, sr, (void **)&s, errp)) {
        free(path);
        return false;
    }
    bool known = type_known(s->type);
    xapi_sr_record_free(s);
    if (known && path && path[0]) {
        int rc = sr_file_destroy(path);
        if (rc < 0) {
            free(path);
            return storage_fail(errp, rc, sr, NULL);
        }
    }
    free(path);
    return sr_records_drop(ctx, sr, errp);
}

/* ------------------------------------------------------------------ small messages */

bool
api_sr_get_supported_types(struct call_ctx *ctx, struct xapi_string_set *result,
                           struct xerr **errp)
{
    if (xset_add_str((struct xset *)result, "ext") < 0 ||
        xset_add_str((struct xset *)result, "file") < 0)
        return xerr_nomem(errp);
    return true;
}

bool
api_sr_set_name_label(struct call_ctx *ctx, const char *sr, const char *value,
                      struct xerr **errp)
{
    return db_set_field(ctx->db, &xapi_class_sr, sr, xclass_field(&xapi_class_sr, "name_label"),
                        &value, errp);
}

bool
api_sr_set_name_description(struct call_ctx *ctx, const char *sr, const char *value,
                            struct xerr **errp)
{
    return db_set_field(ctx->db, &xapi_class_sr, sr,
                        xclass_field(&xapi_class_sr, "name_description"), &value, errp);
}

bool
api_sr_set_shared(struct call_ctx *ctx, const char *sr, bool value, struct xerr **errp)
{
    return db_set_field(ctx->db, &xapi_class_sr, sr, xclass_field(&xapi_class_sr, "shared"),
                        &value, errp);
}

bool
storage_sr_plugged(struct call_ctx *ctx, const char *sr, const char *path, struct xerr **errp)
{
    return sr_ops_refresh(ctx->db, sr, errp) &&
           (!path || storage_sr_refresh(ctx->db, sr, path, errp));
}

/* ------------------------------------------------------------------ first start */

struct local_find {
    struct db *db;
    const char *host;
    char *ref;
};

static bool
local_find_one(void *opaque, const char *ref, const void *rec)
{
    struct local_find *f = opaque;
    const struct xapi_pbd_record *pbd = rec;
    struct xapi_sr_record *s = NULL;
    if (strcmp(pbd->host, f->host) != 0 ||
        !db_get(f->db, &xapi_class_sr, pbd->SR, (void **)&s, NULL))
        return true;
    const char *mark = xmap_get_str((const struct xmap *)&s->other_config, "vessel-local");
    if (mark && strcmp(mark, "true") == 0)
        f->ref = strdup(pbd->SR);
    xapi_sr_record_free(s);
    (void)ref;
    return !f->ref;
}

/* The first host's local SR becomes the pool's default, suspend-image and
 * crash-dump SR; a host joining later leaves what the pool has. */
static bool
pool_sr_default(void *opaque, void *rec, struct xerr **errp)
{
    struct xapi_pool_record *p = rec;
    char **slots[] = {&p->default_SR, &p->suspend_image_SR, &p->crash_dump_SR};
    for (size_t i = 0; i < 3; i++)
        if (strcmp(*slots[i], NULL_REF) == 0 && !xstr_set(slots[i], opaque))
            return xerr_nomem(errp);
    return true;
}

bool
sr_bootstrap_local(struct server *srv, struct xerr **errp)
{
    struct local_find f = {srv->db, srv->host_ref, NULL};
    db_foreach(srv->db, &xapi_class_pbd, local_find_one, &f);
    if (f.ref) {
        free(f.ref);
        return true;
    }
    char *path = NULL;
    if (asprintf(&path, "%s/sr/local", srv->data_dir) < 0)
        return xerr_nomem(errp);
    struct xapi_string_string_map none = {0, NULL, NULL};
    char *ref = NULL;
    bool ok = sr_create_at(srv, srv->host_ref, &none, "Local storage",
                           "VHD files in the data directory", "ext", "user", false, &none, path,
                           "true", &ref, errp);
    free(path);
    ok = ok && db_update(srv->db, &xapi_class_pool, srv->pool_ref, pool_sr_default, ref, errp);
    free(ref);
    return ok;
}

/* ------------------------------------------------------------------ probe, update */

bool
api_sr_probe(struct call_ctx *ctx, const char *host,
             const struct xapi_string_string_map *device_config, const char *type,
             const struct xapi_string_string_map *sm_config, char **result, struct xerr **errp)
{
    (void)sm_config;
    if (!type_known(type))
        return xerr_sr_unknown_driver(errp, type);
    if (!db_exists(ctx->db, &xapi_class_host, host))
        return xerr_handle_invalid(errp, "host", host);
    const char *path = xmap_get_str((const struct xmap *)device_config, "path");
    if (!path || !path[0])
        return xerr_sr_backend_failure(errp, "EINVAL", "",
                          "device_config:path names the directory to probe");
    char uuid[37];
    int rc = sr_file_probe(path, uuid);
    if (rc < 0)
        return storage_fail(errp, rc, "", NULL);
    /* SM's answer for file-based SRs: the SRs found, by uuid */
    int n = rc > 0 ? asprintf(result,
                              "<?xml version=\"1.0\" ?>\n<SRlist>\n\t<SR>\n\t\t<UUID>%s</UUID>\n"
                              "\t</SR>\n</SRlist>\n",
                              uuid)
                   : asprintf(result, "<?xml version=\"1.0\" ?>\n<SRlist/>\n");
    return n >= 0 || xerr_nomem(errp);
}

bool
api_sr_update(struct call_ctx *ctx, const char *sr, struct xerr **errp)
{
    char *path = NULL;
    if (!storage_sr_path(ctx->db, ctx->srv->host_ref, sr, &path, errp))
        return false;
    bool ok = storage_sr_refresh_vdis(ctx->db, sr, path, errp);
    free(path);
    return ok;
}
