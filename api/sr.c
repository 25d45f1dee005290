/* api/sr.c - SR.* messages, and the SR helpers the other storage files share
 * (api/storage_api.h): where an SR's files are, its sizes, its errors.
 *
 * Types built: "ext" and "file", both storage/sr_file.c (a directory of VHDs;
 * device_config:path, default DATA_DIR/sr/<uuid>). Anything else is
 * SR_UNKNOWN_DRIVER [type]. An SR is usable from a host while that host's PBD
 * is plugged (currently_attached); VDI operations without one fail with
 * SR_HAS_NO_PBDS / SR_NOT_ATTACHED [sr] (xenapi.md 2.3 "SR", "PBD", 6).
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

#include "api/storage_api.h"
#include "api/storage_gc.h"
#include "common/log.h"
#include "db/db.h"
#include "rpc/ctx.h"
#include "storage/sr_file.h"
#include "xapi_handlers.h"

#define NULL_REF "OpaqueRef:NULL"


static bool
type_known(const char *type)
{
    return strcmp(type, "ext") == 0 || strcmp(type, "file") == 0;
}

/* A path starts a token: at the start, or after a blank, quote or bracket. */
static bool
path_starts(const char *in, size_t i)
{
    return in[i] == '/' && (i == 0 || strchr(" \t\"'([=", in[i - 1]));
}

const char *
storage_public_text(const char *in, char *out, size_t len)
{
    size_t n = 0;
    if (len == 0)
        return out;
    for (size_t i = 0; in[i] && n + 1 < len;) {
        if (!path_starts(in, i)) {
            out[n++] = in[i++];
            continue;
        }
        size_t end = i, last = i;
        while (in[end] && !strchr(" \t\"'):,;", in[end])) {
            if (in[end] == '/')
                last = end + 1;
            end++;
        }
        for (size_t k = last; k < end && n + 1 < len; k++)
            out[n++] = in[k];
        i = end;
    }
    out[n] = '\0';
    return out;
}

bool
storage_fail(struct xerr **errp, int rc, const char *sr, const char *vdi)
{
    if (rc == -ENOMEM)
        return xerr_nomem(errp);
    if (rc == -ENOENT && vdi && vdi[0])
        return xerr_vdi_missing(errp, sr, vdi);
    char status[16], pub[256];
    snprintf(status, sizeof(status), "%d", -rc);
    const char *why = sr_file_last_error();
    if (!why[0])
        why = strerror(-rc);
    /* the full text, paths included, is for the host's log only */
    log_info("storage.error_detail", "sr=%s vdi=%s err=%d detail=\"%s\"", sr, vdi ? vdi : "",
             -rc, why);
    return xerr_sr_backend_failure(errp, status, "", storage_public_text(why, pub, sizeof(pub)));
}

/* ------------------------------------------------------------------ PBD lookups */

struct pbd_find {
    const char *sr, *host;
    char *ref;      /* the PBD of sr on host */
    char *path;     /* its device_config:path */
    bool attached;
    size_t n_attached; /* PBDs of sr plugged anywhere */
};

static bool
pbd_find_one(void *opaque, const char *ref, const void *rec)
{
    struct pbd_find *f = opaque;
    const struct xapi_pbd_record *p = rec;
    if (strcmp(p->SR, f->sr) != 0)
        return true;
    if (p->currently_attached)
        f->n_attached++;
    if (f->host && !f->ref && strcmp(p->host, f->host) == 0) {
        const char *path = xmap_get_str((const struct xmap *)&p->device_config, "path");
        f->ref = strdup(ref);
        f->path = strdup(path ? path : "");
        f->attached = p->currently_attached;
    }
    return true;
}

bool
storage_sr_path(struct db *db, const char *host, const char *sr, char **path,
                struct xerr **errp)
{
    if (!db_exists(db, &xapi_class_sr, sr))
        return xerr_handle_invalid(errp, "SR", sr);
    struct pbd_find f = {.sr = sr, .host = host};
    db_foreach(db, &xapi_class_pbd, pbd_find_one, &f);
    bool ok;
    if (!f.ref)
        ok = xerr_sr_has_no_pbds(errp, sr);
    else if (!f.attached)
        ok = xerr_sr_not_attached(errp, sr);
    else if (!f.path)
        ok = xerr_nomem(errp);
    else {
        *path = f.path;
        f.path = NULL;
        ok = true;
    }
    free(f.ref);
    free(f.path);
    return ok;
}

/* ------------------------------------------------------------------ sizes and operations */

struct vdi_sum {
    const char *sr;
    int64_t virtual_bytes;
};

static bool
vdi_sum_one(void *opaque, const char *ref, const void *rec)
{
    struct vdi_sum *s = opaque;
    const struct xapi_vdi_record *v = rec;
    if (strcmp(v->SR, s->sr) == 0)
        s->virtual_bytes += v->virtual_size;
    return true;
}

struct sr_sizes {
    int64_t size, used, allocated;
};

static bool
sr_sizes_apply(void *opaque, void *rec, struct xerr **errp)
{
    const struct sr_sizes *z = opaque;
    struct xapi_sr_record *s = rec;
    s->physical_size = z->size;
    s->physical_utilisation = z->used;
    s->virtual_allocation = z->allocated;
    return true;
}

bool
storage_sr_refresh(struct db *db, const char *sr, const char *path, struct xerr **errp)
{
    uint64_t size = 0, avail = 0;
    int rc = sr_file_space(path, &size, &avail);
    if (rc < 0)
        return storage_fail(errp, rc, sr, NULL);
    struct vdi_sum sum = {sr, 0};
    db_foreach(db, &xapi_class_vdi, vdi_sum_one, &sum);
    struct sr_sizes z = {(int64_t)size, (int64_t)(size - avail), sum.virtual_bytes};
    return db_update(db, &xapi_class_sr, sr, sr_sizes_apply, &z, errp);
}

/* allowed_operations of an SR of a type we drive, plugged here or not. */
static bool
sr_ops_set(struct xapi_sr_record *s, bool attached)
{
    static const enum xapi_storage_operations plugged[] = {
        XAPI_STORAGE_OPERATIONS_SCAN,        XAPI_STORAGE_OPERATIONS_UNPLUG,
        XAPI_STORAGE_OPERATIONS_VDI_CREATE,  XAPI_STORAGE_OPERATIONS_VDI_DESTROY,
        XAPI_STORAGE_OPERATIONS_VDI_RESIZE,  XAPI_STORAGE_OPERATIONS_VDI_CLONE,
        XAPI_STORAGE_OPERATIONS_VDI_SNAPSHOT, XAPI_STORAGE_OPERATIONS_PBD_CREATE,
        XAPI_STORAGE_OPERATIONS_PBD_DESTROY,
    };
    static const enum xapi_storage_operations unplugged[] = {
        XAPI_STORAGE_OPERATIONS_PLUG,       XAPI_STORAGE_OPERATIONS_DESTROY,
        XAPI_STORAGE_OPERATIONS_FORGET,     XAPI_STORAGE_OPERATIONS_PBD_CREATE,
        XAPI_STORAGE_OPERATIONS_PBD_DESTROY,
    };
    const enum xapi_storage_operations *src = attached ? plugged : unplugged;
    size_t n = attached ? sizeof(plugged) / sizeof(*src) : sizeof(unplugged) / sizeof(*src);
    enum xapi_storage_operations *items = malloc(n * sizeof(*items));
    if (!items)
        return false;
    memcpy(items, src, n * sizeof(*items));
    free(s->allowed_operations.items);
    s->allowed_operations.items = items;
    s->allowed_operations.n = n;
    return true;
}

static bool
sr_ops_apply(void *opaque, void *rec, struct xerr **errp)
{
    return sr_ops_set(rec, *(const bool *)opaque) || xerr_nomem(errp);
}

/* Recomputes @sr's allowed_operations from whether any PBD of it is plugged. */
static bool
sr_ops_refresh(struct db *db, const char *sr, struct xerr **errp)
{
    struct pbd_find f = {.sr = sr};
    db_foreach(db, &xapi_class_pbd, pbd_find_one, &f);
    bool attached = f.n_attached > 0;
    return db_update(db, &xapi_class_sr, sr, sr_ops_apply, &attached, errp);
}

/* ------------------------------------------------------------------ scan */

struct vdi_list {
    const char *sr;
    char **refs, **uuids;
    size_t n, cap;
    bool nomem;
};

static bool
vdi_list_one(void *opaque, const char *ref, const void *rec)
{
    struct vdi_list *l = opaque;
    const struct xapi_vdi_record *v = rec;
    if (strcmp(v->SR, l->sr) != 0)
        return true;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char **r = realloc(l->refs, cap * sizeof(*r));
        if (r)
            l->refs = r;
        char **u = r ? realloc(l->uuids, cap * sizeof(*u)) : NULL;
        if (!u) {
            l->nomem = true;
            return false;
        }
        l->uuids = u;
        l->cap = cap;
    }
    l->refs[l->n] = strdup(ref);
    l->uuids[l->n] = strdup(v->uuid);
    l->n++;
    if (!l->refs[l->n - 1] || !l->uuids[l->n - 1])
        l->nomem = true;
    return !l->nomem;
}

static void
vdi_list_free(struct vdi_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->refs[i]);
        free(l->uuids[i]);
    }
    free(l->refs);
    free(l->uuids);
}

static bool
vdi_sizes_apply(void *opaque, void *rec, struct xerr **errp)
{
    const struct sr_file_vhd *f = opaque;
    struct xapi_vdi_record *v = rec;
    v->virtual_size = (int64_t)f->virtual_size;
    v->physical_utilisation = (int64_t)f->physical_size;
    v->missing = false;
    struct xmap *sm = (struct xmap *)&v->sm_config;
    if (f->parent_uuid[0] ? xmap_put_str(sm, "vhd-parent", f->parent_uuid) < 0
                          : (xmap_remove_key(&xapi_type_string_string_map, sm, "vhd-parent"), 0))
        return xerr_nomem(errp);
    return true;
}

/* A VDI record for a VHD found on disk. */
static bool
vdi_adopt(struct db *db, const char *sr, const struct sr_file_vhd *f, struct xerr **errp)
{
    struct xapi_vdi_record *v = xrecord_new(&xapi_class_vdi);
    if (!v || !xstr_set(&v->uuid, f->uuid) || !xstr_set(&v->SR, sr) ||
        !xstr_set(&v->location, f->uuid) ||
        xmap_put_str((struct xmap *)&v->sm_config, "vdi_type", "vhd") < 0 ||
        (f->parent_uuid[0] &&
         xmap_put_str((struct xmap *)&v->sm_config, "vhd-parent", f->parent_uuid) < 0) ||
        !storage_vdi_ops_refresh(v, false)) {
        xapi_vdi_record_free(v);
        return xerr_nomem(errp);
    }
    v->virtual_size = (int64_t)f->virtual_size;
    v->physical_utilisation = (int64_t)f->physical_size;
    v->type = XAPI_VDI_TYPE_USER;
    v->managed = true;
    return db_create(db, &xapi_class_vdi, NULL, v, NULL, errp);
}

/* Destroys VDI @ref's record and the VBDs that point at it. */
static bool vdi_records_drop(struct db *db, const char *ref, struct xerr **errp);

/* Sizes and vhd-parent of @sr's VDI records from their files (@files), and
 * with @adopt, records dropped for VDIs whose file is gone and made for files
 * without one (SR.scan). */
static bool
file_exists(const char *path, const char *uuid)
{
    char file[4096];
    return sr_file_vdi_path(path, uuid, file, sizeof(file)) == 0 && access(file, F_OK) == 0;
}

static bool
sr_reconcile(struct db *db, const char *sr, const char *path, struct sr_file_vhd *files,
             size_t n_files, bool adopt, struct xerr **errp)
{
    struct vdi_list l = {.sr = sr};
    db_foreach(db, &xapi_class_vdi, vdi_list_one, &l);
    bool ok = !l.nomem || xerr_nomem(errp);
    db_batch_begin(db);
    for (size_t i = 0; ok && i < l.n; i++) {
        size_t j;
        for (j = 0; j < n_files; j++)
            if (!files[j].hidden && strcasecmp(files[j].uuid, l.uuids[i]) == 0)
                break;
        if (j < n_files)
            ok = db_update(db, &xapi_class_vdi, l.refs[i], vdi_sizes_apply, &files[j], errp);
        else if (adopt && !file_exists(path, l.uuids[i]))
            ok = vdi_records_drop(db, l.refs[i], errp);
        /* a file that exists but could not be read now (being written, damaged)
         * keeps its record: a scan never forgets a VDI whose data is there */
    }
    for (size_t j = 0; adopt && ok && j < n_files; j++) {
        if (files[j].hidden)
            continue;
        bool known = false;
        for (size_t i = 0; i < l.n && !known; i++)
            known = strcasecmp(files[j].uuid, l.uuids[i]) == 0;
        /* a creation in flight (its record is not committed yet) is not a
         * user's disk to adopt (storage/sr_file.h, intents) */
        if (!known && !sr_file_intent_exists(path, files[j].uuid))
            ok = vdi_adopt(db, sr, &files[j], errp);
    }
    ok = db_batch_end(db, ok, errp);
    vdi_list_free(&l);
    return ok;
}

static bool
sr_scan_path(struct db *db, const char *sr, const char *path, bool adopt, struct xerr **errp)
{
    struct sr_file_vhd *files = NULL;
    size_t n_files = 0;
    int rc = sr_file_scan(path, &files, &n_files);
    if (rc < 0)
        return storage_fail(errp, rc, sr, NULL);
    bool ok = sr_reconcile(db, sr, path, files, n_files, adopt, errp);
    free(files);
    return ok && storage_sr_refresh(db, sr, path, errp);
}

bool
storage_sr_refresh_vdis(struct db *db, const char *sr, const char *path, struct xerr **errp)
{
    return sr_scan_path(db, sr, path, false, errp);
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
    return sr_create_at(ctx->srv, host, device_config, name_label, name_description, type,
                        content_type, shared, sm_config, NULL, NULL, result, errp);
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

struct ref_list {
    const char *match;
    size_t field_offset; /* offset of the char * field compared with match */
    char **refs;
    size_t n;
    bool nomem;
};

static bool
ref_list_one(void *opaque, const char *ref, const void *rec)
{
    struct ref_list *l = opaque;
    const char *v = *(char *const *)((const char *)rec + l->field_offset);
    if (strcmp(v, l->match) != 0)
        return true;
    char **r = realloc(l->refs, (l->n + 1) * sizeof(*r));
    if (!r || !(r[l->n] = strdup(ref))) {
        if (r)
            l->refs = r;
        l->nomem = true;
        return false;
    }
    l->refs = r;
    l->n++;
    return true;
}

static void
ref_list_free(struct ref_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->refs[i]);
    free(l->refs);
}

static bool
vdi_records_drop(struct db *db, const char *ref, struct xerr **errp)
{
    struct ref_list vbds = {.match = ref, .field_offset = offsetof(struct xapi_vbd_record, VDI)};
    db_foreach(db, &xapi_class_vbd, ref_list_one, &vbds);
    bool ok = !vbds.nomem || xerr_nomem(errp);
    for (size_t i = 0; ok && i < vbds.n; i++)
        ok = db_destroy(db, &xapi_class_vbd, vbds.refs[i], errp);
    ref_list_free(&vbds);
    return ok && db_destroy(db, &xapi_class_vdi, ref, errp);
}

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
    char *ref;
};

static bool
local_find_one(void *opaque, const char *ref, const void *rec)
{
    struct local_find *f = opaque;
    const struct xapi_sr_record *s = rec;
    const char *mark = xmap_get_str((const struct xmap *)&s->other_config, "vessel-local");
    if (mark && strcmp(mark, "true") == 0) {
        f->ref = strdup(ref);
        return false;
    }
    return true;
}

static bool
pool_sr_default(void *opaque, void *rec, struct xerr **errp)
{
    struct xapi_pool_record *p = rec;
    char **slots[] = {&p->default_SR, &p->suspend_image_SR, &p->crash_dump_SR};
    for (size_t i = 0; i < 3; i++)
        if ((i == 0 || strcmp(*slots[i], NULL_REF) == 0) && !xstr_set(slots[i], opaque))
            return xerr_nomem(errp);
    return true;
}

bool
sr_bootstrap_local(struct server *srv, struct xerr **errp)
{
    struct local_find f = {NULL};
    db_foreach(srv->db, &xapi_class_sr, local_find_one, &f);
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
        return xerr_raise(errp, "SR_BACKEND_FAILURE", "EINVAL", "",
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
