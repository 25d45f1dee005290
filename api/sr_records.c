/* api/sr_records.c - how an SR's records follow its files and PBDs.
 *
 * Shared by the storage messages (api/storage_api.h) and by api/sr.c
 * (api/sr_records.h): where an SR's files are (its plugged PBD), its sizes and
 * allowed operations, the VDI records reconciled with the files (SR.scan, and
 * the size refresh after every change), the errors of storage/ as XenAPI
 * errors. Nothing here calls another file of api/, so sr.c, vdi.c,
 * disk_servers.c and storage_gc.c all stand on it without a circle.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "api/sr_records.h"
#include "api/disk_order.h"
#include "api/storage_api.h"
#include "common/log.h"
#include "db/db.h"
#include "storage/sr_file.h"
#include "xapi_errors.h"

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

bool
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
    disk_servers_settle(); /* the caller opens a VDI's files next */
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
bool
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
bool
sr_ops_refresh(struct db *db, const char *sr, struct xerr **errp)
{
    struct pbd_find f = {.sr = sr};
    db_foreach(db, &xapi_class_pbd, pbd_find_one, &f);
    bool attached = f.n_attached > 0;
    return db_update(db, &xapi_class_sr, sr, sr_ops_apply, &attached, errp);
}

bool
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

void
ref_list_free(struct ref_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->refs[i]);
    free(l->refs);
}

bool
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

bool
storage_vdi_ops_refresh(struct xapi_vdi_record *vdi, bool attached)
{
    enum xapi_vdi_operations ops[8];
    size_t n = 0;
    ops[n++] = XAPI_VDI_OPERATIONS_CLONE;
    ops[n++] = XAPI_VDI_OPERATIONS_COPY;
    ops[n++] = XAPI_VDI_OPERATIONS_SNAPSHOT;
    if (!attached) {
        ops[n++] = XAPI_VDI_OPERATIONS_RESIZE;
        ops[n++] = XAPI_VDI_OPERATIONS_DESTROY;
        ops[n++] = XAPI_VDI_OPERATIONS_FORGET;
    }
    enum xapi_vdi_operations *items = malloc(n * sizeof(*items));
    if (!items)
        return false;
    memcpy(items, ops, n * sizeof(*items));
    free(vdi->allowed_operations.items);
    vdi->allowed_operations.items = items;
    vdi->allowed_operations.n = n;
    return true;
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
        else if (adopt && !file_exists(path, l.uuids[i]) &&
                 !sr_file_cbt_exists(path, l.uuids[i])) /* data_destroy leaves the log */
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

bool
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

/* ------------------------------------------------------------------ local SRs */

struct local_srs {
    storage_sr_keep_fn *keep;
    char **refs;
    size_t n;
    bool nomem;
};

static bool
local_sr_one(void *opaque, const char *ref, const void *rec)
{
    struct local_srs *l = opaque;
    const struct xapi_sr_record *s = rec;
    if ((strcmp(s->type, "ext") != 0 && strcmp(s->type, "file") != 0) || s->shared ||
        (l->keep && !l->keep(s)))
        return true;
    char **grown = realloc(l->refs, (l->n + 1) * sizeof(*grown));
    if (!grown || !(grown[l->n] = strdup(ref))) {
        if (grown)
            l->refs = grown;
        l->nomem = true;
        return false;
    }
    l->refs = grown;
    l->n++;
    return true;
}

bool
storage_local_srs(struct db *db, storage_sr_keep_fn *keep, char ***refs, size_t *n)
{
    struct local_srs l = {keep, NULL, 0, false};
    db_foreach(db, &xapi_class_sr, local_sr_one, &l);
    *refs = l.refs;
    *n = l.n;
    return !l.nomem;
}
