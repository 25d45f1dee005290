/* api/vm_import.c - PUT /import and PUT /import_metadata: a VM in from an XVA.
 *
 *   PUT /import?sr_id=<SR>|sr_uuid=<uuid>[&restore=true][&force=true][&task_id=]
 *   PUT /import_metadata?[restore=true][&force=true][&task_id=]
 *
 * The body is read as it arrives through wire/xva_read.c (gzip and zstd
 * recognised by their magic bytes). When ova.xml is in, the objects are made
 * as xapi's import.ml handlers make them, class by class: SRs map to the
 * target SR (metadata import: the SR of that uuid), VDIs are created there
 * (metadata import: found by uuid), the VM gets a new uuid and MAC seed
 * unless restore=true, networks are found by name_label then bridge or made,
 * VBDs and VIFs are created against the new VM (VIFs with new MACs unless
 * restore=true). Every record comes from the export's snapshot by one loop
 * over the class descriptors: the fields a constructor takes (SRO and RW),
 * each reference replaced by the new object of that export id or
 * OpaqueRef:NULL. Then each chunk, checked against its checksum, is written
 * into its VDI through the VHD library (zeros are not written: a new VDI
 * reads as zeros).
 *
 * Any failure - a damaged or truncated archive, a checksum mismatch, a
 * hostile member name, a chunk beyond its disk, a record the constructors
 * refuse - fails the task with a XenAPI error and removes, newest first,
 * every object the import made, with the VDIs' files (xapi's cleanup stack;
 * force=true keeps them, and lets checksum mismatches pass, as xapi).
 *
 * Snapshots in the archive (export_metadata with export_snapshots) are made
 * as VMs and then linked as xapi's update_snapshot_and_parent_links does.
 * Not imported: VM metrics and guest metrics records (the constructors make
 * their own), hosts, GPUs, VTPMs.
 *
 * Invariant: the task is finished exactly once, by imp_end(), on every path;
 * the connection's thread owns the import until then.
 */
#include "api/vm_import.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/forward.h"
#include "api/storage_api.h"
#include "api/storage_gc.h"
#include "api/transfer_auth.h"
#include "api/vm_ops.h"
#include "common/log.h"
#include "db/db.h"
#include "http/fetch.h"
#include "http/http.h"
#include "rpc/ctx.h"
#include "rpc/task.h"
#include "storage/sr_file.h"
#include "vhd/vhd.h"
#include "wire/wire.h"
#include "wire/xva.h"
#include "xapi_errors.h"
#include "xapi_handlers.h"
#include "xapi_model.h"

#define NULL_REF "OpaqueRef:NULL"

struct mapped {
    const struct xclass *cls;
    const char *id;  /* the export's id (borrowed from the header) */
    char *ref;       /* the object here */
    bool created;    /* by this import: removed on failure */
    bool snapshot;   /* a VM that is a snapshot (not in the task's result) */
};

struct disk {
    const char *id;  /* "Ref:3" */
    char *vdi, *uuid;
    uint64_t size;
    struct vhd_chain *chain;
    bool gc_writer;
};

struct vm_import {
    struct server *srv;
    struct call_ctx ctx;
    char *user;
    char *peer; /* copied: an aborted import is cleaned up after its request is gone */
    char *task;
    char *sr;       /* full import: the target SR */
    char *sr_path;
    bool metadata, restore, force;
    struct xva_reader *reader;
    struct xva_header hdr;
    bool have_hdr;
    struct mapped *map;
    size_t n_map;
    struct disk *disks;
    size_t n_disks;
    int64_t body_len;
    uint64_t received;
    double progress;
    struct xerr *err;
    bool ended;
    bool finish_task; /* false: the dispatcher finishes it (Async VM.import) */
};

/*==== The table of export ids ====*/

static const char *
map_lookup(const struct vm_import *im, const char *id)
{
    for (size_t i = 0; i < im->n_map; i++)
        if (strcmp(im->map[i].id, id) == 0)
            return im->map[i].ref;
    return NULL;
}

static bool
map_add(struct vm_import *im, const struct xclass *cls, const char *id, char *ref, bool created)
{
    struct mapped *m = realloc(im->map, (im->n_map + 1) * sizeof(*m));
    if (!m) {
        free(ref);
        return xerr_nomem(&im->err);
    }
    im->map = m;
    im->map[im->n_map++] = (struct mapped){cls, id, ref, created, false};
    return true;
}

static const struct xva_object *
export_object(const struct vm_import *im, const char *id)
{
    for (size_t i = 0; i < im->hdr.n_objects; i++)
        if (strcmp(im->hdr.objects[i].id, id) == 0)
            return &im->hdr.objects[i];
    return NULL;
}

static const char *
snap_str(const struct xval *snap, const char *key)
{
    const struct xval *v = xval_struct_get(snap, key);
    return v && v->kind == XVAL_STRING ? v->str.s : "";
}

static bool
snap_bool(const struct xval *snap, const char *key)
{
    const struct xval *v = xval_struct_get(snap, key);
    return v && ((v->kind == XVAL_BOOL && v->b) ||
                 (v->kind == XVAL_STRING && strcmp(v->str.s, "true") == 0));
}

/*==== Records from the export ====*/

/* A new record of @cls holding what a constructor may be given (SRO and RW
 * fields) from @snap; references mapped through the table, sets and maps of
 * references left empty. A value this build cannot read (an enum value of a
 * newer xapi) keeps the schema's default: an export from elsewhere must not
 * fail on a field nobody here uses. NULL when out of memory. */
static void *
record_from_snapshot(struct vm_import *im, const struct xclass *cls, const struct xval *snap)
{
    void *rec = xrecord_new(cls);
    if (!rec)
        return NULL;
    for (size_t i = 0; i < snap->st.n; i++) {
        const struct xfield *f = xclass_wire_field(cls, snap->st.keys[i]);
        if (!f || f->qual == XQ_DRO || f->inverse_class)
            continue;
        const struct xtype *t = f->type;
        const struct xval *v = snap->st.vals[i];
        void *slot = xrecord_field_ptr(rec, f);
        if (t->kind == XT_REF) {
            const char *to = v->kind == XVAL_STRING ? map_lookup(im, v->str.s) : NULL;
            if (!xstr_set(slot, to ? to : NULL_REF)) {
                xrecord_free(cls, rec);
                return NULL;
            }
            continue;
        }
        if ((t->kind == XT_SET && t->elem->kind == XT_REF) ||
            (t->kind == XT_MAP && ((t->key && t->key->kind == XT_REF) || t->elem->kind == XT_REF)))
            continue;
        union xvalue_storage tmp;
        struct xerr *e = NULL;
        if (!xtype_value_decode(t, v, &tmp, f->name, &e)) {
            log_info("vm.import_field", "class=%s field=%s reason=\"unreadable, default kept\"",
                     cls->name, f->name);
            xerr_free(e);
            continue;
        }
        xtype_value_clear(t, slot);
        memcpy(slot, &tmp, t->size);
    }
    return rec;
}

/*==== The handlers, in import.ml's order ====*/

static bool
sr_of_export(struct vm_import *im, const struct xva_object *o)
{
    if (strcmp(snap_str(o->snapshot, "content_type"), "iso") == 0)
        return true; /* its disks are CDs: ejected below */
    if (!im->metadata) {
        char *ref = strdup(im->sr);
        return ref ? map_add(im, &xapi_class_sr, o->id, ref, false) : xerr_nomem(&im->err);
    }
    char *ref = NULL;
    if (db_ref_by_uuid(im->srv->db, &xapi_class_sr, snap_str(o->snapshot, "uuid"), &ref, NULL))
        return map_add(im, &xapi_class_sr, o->id, ref, false);
    return true;
}

static bool
vdi_of_export(struct vm_import *im, const struct xva_object *o)
{
    const struct xval *sr_id = xval_struct_get(o->snapshot, "SR");
    const struct xva_object *sr =
        sr_id && sr_id->kind == XVAL_STRING ? export_object(im, sr_id->str.s) : NULL;
    if (sr && strcmp(snap_str(sr->snapshot, "content_type"), "iso") == 0)
        return true; /* a CD: the VBD is made empty (xapi looks for the ISO by location) */
    if (im->metadata) {
        char *ref = NULL;
        if (db_ref_by_uuid(im->srv->db, &xapi_class_vdi, snap_str(o->snapshot, "uuid"), &ref,
                           NULL))
            return map_add(im, &xapi_class_vdi, o->id, ref, false);
        return true; /* a VBD of it fails with IMPORT_ERROR_FAILED_TO_FIND_OBJECT */
    }
    struct xapi_vdi_record *v = record_from_snapshot(im, &xapi_class_vdi, o->snapshot);
    if (!v)
        return xerr_nomem(&im->err);
    bool ok = xstr_set(&v->SR, im->sr) &&
              xmap_put_str((struct xmap *)&v->sm_config, "import_task", im->task) == 0;
    if (!ok) {
        xapi_vdi_record_free(v);
        return xerr_nomem(&im->err);
    }
    char *ref = NULL;
    ok = storage_vdi_create(&im->ctx, v, &ref, &im->err);
    xapi_vdi_record_free(v);
    if (!ok || !map_add(im, &xapi_class_vdi, o->id, ref, true))
        return false;
    struct xapi_vdi_record *made = NULL;
    if (!db_get(im->srv->db, &xapi_class_vdi, ref, (void **)&made, &im->err))
        return false;
    struct disk *d = realloc(im->disks, (im->n_disks + 1) * sizeof(*d));
    if (d) {
        im->disks = d;
        d = &im->disks[im->n_disks];
        *d = (struct disk){.id = o->id, .size = (uint64_t)made->virtual_size};
        d->vdi = strdup(ref);
        d->uuid = strdup(made->uuid);
        im->n_disks++;
    }
    xapi_vdi_record_free(made);
    ok = d && d->vdi && d->uuid;
    return ok || xerr_nomem(&im->err);
}

static bool
vm_of_export(struct vm_import *im, const struct xva_object *o)
{
    if (snap_bool(o->snapshot, "is_control_domain"))
        return true; /* a host's own domain is never imported */
    struct xapi_vm_record *vm = record_from_snapshot(im, &xapi_class_vm, o->snapshot);
    if (!vm)
        return xerr_nomem(&im->err);
    /* xapi's VM handler: a fresh MAC seed unless restoring, so the copy's
     * NICs get MACs of their own; restore keeps the uuid too. */
    const char *uuid = snap_str(o->snapshot, "uuid");
    char *clash = NULL;
    bool keep_uuid = im->restore && uuid[0] &&
                     !db_ref_by_uuid(im->srv->db, &xapi_class_vm, uuid, &clash, NULL);
    free(clash);
    if (!im->restore)
        xmap_remove_key(&xapi_type_string_string_map, (struct xmap *)&vm->other_config,
                        "mac_seed");
    if (keep_uuid && !xstr_set(&vm->uuid, uuid)) {
        xapi_vm_record_free(vm);
        return xerr_nomem(&im->err);
    }
    char *ref = NULL;
    bool ok = api_vm_create(&im->ctx, vm, &ref, &im->err);
    bool tmpl = vm->is_a_template; /* a template or snapshot (snapshot-export-to-template) */
    xapi_vm_record_free(vm);
    if (!ok || !map_add(im, &xapi_class_vm, o->id, ref, true))
        return false;
    im->map[im->n_map - 1].snapshot = snap_bool(o->snapshot, "is_a_snapshot");
    /* nobody starts it while its disks are written (xapi: "import" operation);
     * nobody starts a template anyway, and no operation may be recorded on one */
    return im->metadata || tmpl ||
           vm_op_begin(im->srv->db, ref, XAPI_VM_OPERATIONS_IMPORT, im->task, &im->err);
}

struct net_find {
    const char *label, *bridge;
    char *by_label, *by_bridge;
};

static bool
net_find_visit(void *opaque, const char *ref, const void *rec)
{
    struct net_find *f = opaque;
    const struct xapi_network_record *n = rec;
    if (!f->by_label && strcmp(n->name_label, f->label) == 0)
        f->by_label = strdup(ref);
    if (!f->by_bridge && f->bridge[0] && strcmp(n->bridge, f->bridge) == 0)
        f->by_bridge = strdup(ref);
    return !f->by_label;
}

/* import.ml's Net: by name_label, then by bridge, else a new network. */
static bool
network_of_export(struct vm_import *im, const struct xva_object *o)
{
    struct net_find f = {snap_str(o->snapshot, "name_label"), snap_str(o->snapshot, "bridge"),
                         NULL, NULL};
    db_foreach(im->srv->db, &xapi_class_network, net_find_visit, &f);
    if (f.by_label || f.by_bridge) {
        free(f.by_label ? f.by_bridge : NULL);
        return map_add(im, &xapi_class_network, o->id, f.by_label ? f.by_label : f.by_bridge,
                       false);
    }
    struct xapi_network_record *n = record_from_snapshot(im, &xapi_class_network, o->snapshot);
    if (!n)
        return xerr_nomem(&im->err);
    bool ok = xstr_set(&n->bridge, "") && /* a bridge name of this host's choosing */
              xmap_put_str((struct xmap *)&n->other_config, "import_task", im->task) == 0;
    char *ref = NULL;
    ok = ok ? api_network_create(&im->ctx, n, &ref, &im->err) : xerr_nomem(&im->err);
    xapi_network_record_free(n);
    return ok && map_add(im, &xapi_class_network, o->id, ref, true);
}

static bool
vbd_of_export(struct vm_import *im, const struct xva_object *o)
{
    const char *vm = map_lookup(im, snap_str(o->snapshot, "VM"));
    if (!vm)
        return true; /* a snapshot's device */
    struct xapi_vbd_record *v = record_from_snapshot(im, &xapi_class_vbd, o->snapshot);
    if (!v)
        return xerr_nomem(&im->err);
    const char *vdi_id = snap_str(o->snapshot, "VDI");
    bool ok = true;
    if (strcmp(v->VDI, NULL_REF) == 0 && strcmp(vdi_id, NULL_REF) != 0 && !v->empty) {
        if (v->type == XAPI_VBD_TYPE_CD)
            v->empty = true; /* xapi ejects a CD whose ISO is not found */
        else
            ok = xerr_import_error_failed_to_find_object(&im->err, vdi_id);
    }
    char *ref = NULL;
    v->currently_attached = false;
    ok = ok && api_vbd_create(&im->ctx, v, &ref, &im->err);
    xapi_vbd_record_free(v);
    return ok && map_add(im, &xapi_class_vbd, o->id, ref, true);
}

static bool
vif_of_export(struct vm_import *im, const struct xva_object *o)
{
    if (!map_lookup(im, snap_str(o->snapshot, "VM")))
        return true;
    struct xapi_vif_record *v = record_from_snapshot(im, &xapi_class_vif, o->snapshot);
    if (!v)
        return xerr_nomem(&im->err);
    bool ok = true;
    if (strcmp(v->network, NULL_REF) == 0)
        ok = xerr_import_error_failed_to_find_object(&im->err, snap_str(o->snapshot, "network"));
    if (ok && !im->restore && !xstr_set(&v->MAC, "")) /* regenerated from the new seed */
        ok = xerr_nomem(&im->err);
    char *ref = NULL;
    ok = ok && api_vif_create(&im->ctx, v, &ref, &im->err);
    xapi_vif_record_free(v);
    return ok && map_add(im, &xapi_class_vif, o->id, ref, true);
}

struct snap_links {
    struct vm_import *im;
    const struct xval *snap;
};

static bool
apply_snap_links(void *opaque, void *rec, struct xerr **errp)
{
    const struct snap_links *l = opaque;
    struct xapi_vm_record *vm = rec;
    const char *of = map_lookup(l->im, snap_str(l->snap, "snapshot_of"));
    const char *parent = map_lookup(l->im, snap_str(l->snap, "parent"));
    const struct xval *when = xval_struct_get(l->snap, "snapshot_time");
    int64_t t = 0;
    struct xerr *ignored = NULL;
    if (when && !xtype_value_decode(&xapi_type_datetime, when, &t, "snapshot_time", &ignored))
        xerr_free(ignored);
    vm->is_a_snapshot = snap_bool(l->snap, "is_a_snapshot");
    vm->snapshot_time = t;
    return (xstr_set(&vm->snapshot_of, of ? of : NULL_REF) &&
            xstr_set(&vm->parent, parent ? parent : NULL_REF) &&
            xstr_set(&vm->transportable_snapshot_id,
                     snap_str(l->snap, "transportable_snapshot_id"))) ||
           xerr_nomem(errp);
}

/* xapi's update_snapshot_and_parent_links: a snapshot VM made by the import
 * is a snapshot again, of the VM made from its snapshot_of (constructors
 * cannot set these fields). */
static bool
snapshot_links(struct vm_import *im)
{
    for (size_t i = 0; i < im->n_map; i++) {
        const struct xva_object *o = export_object(im, im->map[i].id);
        if (im->map[i].cls != &xapi_class_vm || !im->map[i].created || !o)
            continue;
        struct snap_links l = {im, o->snapshot};
        if ((im->map[i].snapshot || map_lookup(im, snap_str(o->snapshot, "parent"))) &&
            !db_update(im->srv->db, &xapi_class_vm, im->map[i].ref, apply_snap_links, &l,
                       &im->err))
            return false;
    }
    return true;
}

/* More objects than any VM has: an archive naming more is refused before
 * anything is made (each would be a file in the SR). */
#define MAX_IMPORT_OBJECTS 4096

static bool
create_objects(struct vm_import *im)
{
    if (im->hdr.n_objects > MAX_IMPORT_OBJECTS)
        return xerr_import_error(&im->err, "ova.xml names more than 4096 objects");
    static const struct {
        const char *cls;
        bool (*fn)(struct vm_import *, const struct xva_object *);
    } handlers[] = {
        {"SR", sr_of_export},           {"VDI", vdi_of_export}, {"VM", vm_of_export},
        {"network", network_of_export}, {"VBD", vbd_of_export}, {"VIF", vif_of_export},
    };
    for (size_t h = 0; h < sizeof(handlers) / sizeof(handlers[0]); h++)
        for (size_t i = 0; i < im->hdr.n_objects; i++)
            if (strcmp(im->hdr.objects[i].cls, handlers[h].cls) == 0 &&
                !handlers[h].fn(im, &im->hdr.objects[i]))
                return false;
    if (!snapshot_links(im))
        return false;
    for (size_t i = 0; i < im->n_map; i++)
        if (im->map[i].cls == &xapi_class_vm)
            return true;
    return xerr_import_error(&im->err, "the archive holds no VM");
}

/* Removes what the import made, newest first (xapi's cleanup stack). */
static void
rollback(struct vm_import *im)
{
    for (size_t i = 0; i < im->n_disks; i++)
        if (im->disks[i].chain) {
            vhd_chain_close(im->disks[i].chain);
            im->disks[i].chain = NULL;
        }
    for (size_t i = im->n_map; i-- > 0;) {
        struct mapped *m = &im->map[i];
        if (!m->created)
            continue;
        struct xerr *e = NULL;
        bool ok = true;
        if (m->cls == &xapi_class_vm) {
            vm_op_end(im->srv->db, m->ref, im->task);
            ok = api_vm_destroy(&im->ctx, m->ref, &e);
        } else if (m->cls == &xapi_class_vdi) {
            ok = api_vdi_destroy(&im->ctx, m->ref, &e);
        } else if (m->cls == &xapi_class_network) {
            ok = api_network_destroy(&im->ctx, m->ref, &e);
        } else if (m->cls == &xapi_class_vbd || m->cls == &xapi_class_vif) {
            ok = true; /* gone with their VM */
        }
        if (!ok) {
            char d[256];
            log_warn("vm.import_cleanup", "class=%s ref=%s error=\"%s\"", m->cls->name, m->ref,
                     xerr_describe(e, d, sizeof(d)));
        }
        xerr_free(e);
        m->created = false;
    }
}

/*==== Data ====*/

static void
imp_progress(struct vm_import *im)
{
    if (im->body_len > 0)
        transfer_progress(im->srv, im->task, &im->progress, im->received,
                          (uint64_t)im->body_len);
}

static int
storage_error(struct vm_import *im, const struct disk *d, int rc, const char *what)
{
    log_info("vm.import_detail", "vdi=%s step=\"%s\" err=%d detail=\"%s\"", d->vdi, what, -rc,
             vhd_last_error());
    if (rc == -ENOMEM)
        xerr_nomem(&im->err);
    else if (rc == -ENOSPC)
        xerr_sr_full(&im->err, "0", "0");
    else
        xerr_vdi_io_error(&im->err, "Device I/O errors");
    return -EIO;
}

static int
on_chunk(void *opaque, const char *prefix, uint64_t no, const char *data, size_t len)
{
    struct vm_import *im = opaque;
    if (im->metadata)
        return xerr_import_error(&im->err, "a metadata import holds no disk data"), -EINVAL;
    struct disk *d = NULL;
    for (size_t i = 0; i < im->n_disks; i++)
        if (strcmp(im->disks[i].id, prefix) == 0)
            d = &im->disks[i];
    if (!d) {
        xerr_import_error_failed_to_find_object(&im->err, prefix);
        return -EINVAL;
    }
    uint64_t off = no * XVA_CHUNK_SIZE;
    if (no > UINT64_MAX / XVA_CHUNK_SIZE || off > d->size || len > d->size - off) {
        char why[160];
        snprintf(why, sizeof(why), "chunk %s/%08" PRIu64 " lies beyond the disk's %" PRIu64
                 " bytes", prefix, no, d->size);
        xerr_import_error(&im->err, why);
        return -EINVAL;
    }
    for (size_t i = 0; i < im->n_disks; i++) /* one disk open at a time: they come in runs */
        if (&im->disks[i] != d && im->disks[i].chain) {
            int rc = vhd_chain_close(im->disks[i].chain);
            im->disks[i].chain = NULL;
            if (rc < 0)
                return storage_error(im, &im->disks[i], rc, "flush");
        }
    if (!d->chain) {
        char path[4096];
        int rc = sr_file_vdi_path(im->sr_path, d->uuid, path, sizeof(path));
        if (rc == 0)
            rc = sr_file_chain_open(path, VHD_OPEN_RDWR, &d->chain);
        if (rc < 0)
            return storage_error(im, d, rc, "open");
    }
    if (transfer_block_is_zero(data, len))
        return 0; /* a new VDI reads as zeros */
    int rc = vhd_chain_write(d->chain, data, off, len, false);
    if (rc < 0)
        return storage_error(im, d, rc, "write");
    if (task_cancel_requested(im->srv, im->task)) {
        xerr_task_cancelled(&im->err, im->task);
        return -ECANCELED;
    }
    return 0;
}

static int
on_ova_xml(void *opaque, const char *xml, size_t len)
{
    struct vm_import *im = opaque;
    char why[256];
    int rc = xva_header_parse(xml, len, &im->hdr, why, sizeof(why));
    if (rc < 0) {
        if (rc == -ENOMEM)
            xerr_nomem(&im->err);
        else
            xerr_import_error(&im->err, why);
        return rc;
    }
    im->have_hdr = true;
    if (!create_objects(im))
        return -ECANCELED;
    for (size_t i = 0; i < im->n_disks; i++)
        if (storage_gc_writer_begin(im->disks[i].uuid))
            im->disks[i].gc_writer = true;
    return 0;
}

static const struct xva_reader_ops reader_ops = {on_ova_xml, on_chunk};

/* The reader's error @rc as a XenAPI error, unless a callback set one. */
static void
reader_fail(struct vm_import *im, int rc)
{
    if (im->err)
        return;
    const char *why = xva_reader_why(im->reader);
    if (rc == -EPIPE)
        xerr_import_error_premature_eof(&im->err);
    else if (rc == -ENOMSG)
        xerr_import_error_unexpected_file(&im->err, XVA_OVA_XML,
                                          xva_reader_unexpected(im->reader));
    else if (rc == -EBADMSG)
        xerr_import_error_some_checksums_failed(&im->err);
    else if (rc == -ENOMEM)
        xerr_nomem(&im->err);
    else
        xerr_import_error(&im->err, why[0] ? why : strerror(-rc));
}

/*==== The request ====*/

/* Whether map entry @i is one of the import's result: its VMs, less the
 * snapshots unless there are only snapshots (import.ml complete_import). */
static bool
imp_result_vm(const struct vm_import *im, size_t i)
{
    if (im->map[i].cls != &xapi_class_vm)
        return false;
    if (!im->map[i].snapshot)
        return true;
    for (size_t k = 0; k < im->n_map; k++)
        if (im->map[k].cls == &xapi_class_vm && !im->map[k].snapshot)
            return false;
    return true;
}

static void
imp_end(struct vm_import *im)
{
    if (im->ended)
        return;
    im->ended = true;
    if (im->err && !im->force)
        rollback(im);
    for (size_t i = 0; i < im->n_map; i++)
        if (im->map[i].cls == &xapi_class_vm && im->map[i].created)
            vm_op_end(im->srv->db, im->map[i].ref, im->task);
    char d[512];
    if (im->err) {
        if (im->finish_task)
            task_finish_failure(im->srv, im->task, im->err);
        log_warn("vm.import", "task=%s metadata=%d bytes=%" PRIu64 " error=\"%s\"", im->task,
                 im->metadata, im->received, xerr_describe(im->err, d, sizeof(d)));
        return;
    }
    struct strbuf sb = STRBUF_INIT; /* the task's result: the new VMs (import.ml) */
    struct wire_writer w;
    wire_writer_init(&w, WIRE_XMLRPC, &sb);
    wire_begin_array(&w);
    for (size_t i = 0; i < im->n_map; i++)
        if (imp_result_vm(im, i))
            wire_string(&w, im->map[i].ref);
    wire_end_array(&w);
    if (im->finish_task)
        task_finish_success(im->srv, im->task, strbuf_ok(&sb) ? sb.buf : "");
    strbuf_release(&sb);
    log_info("vm.import", "task=%s metadata=%d bytes=%" PRIu64 " objects=%zu disks=%zu",
             im->task, im->metadata, im->received, im->n_map, im->n_disks);
}

static void
imp_free(struct vm_import *im)
{
    if (!im)
        return;
    if (im->task)
        imp_end(im);
    for (size_t i = 0; i < im->n_disks; i++) {
        if (im->disks[i].chain)
            vhd_chain_close(im->disks[i].chain);
        if (im->disks[i].gc_writer)
            storage_gc_writer_end(im->disks[i].uuid);
        free(im->disks[i].vdi);
        free(im->disks[i].uuid);
    }
    free(im->disks);
    for (size_t i = 0; i < im->n_map; i++)
        free(im->map[i].ref);
    free(im->map);
    if (im->have_hdr)
        xva_header_release(&im->hdr);
    xva_reader_free(im->reader);
    xerr_free(im->err);
    free(im->user);
    free(im->peer);
    free(im->task);
    free(im->sr);
    free(im->sr_path);
    free(im);
}

static int
imp_write(void *ctx, const char *data, size_t len)
{
    struct vm_import *im = ctx;
    if (im->err)
        return -ECANCELED;
    im->received += len;
    int rc = xva_reader_feed(im->reader, data, len);
    if (rc < 0) {
        reader_fail(im, rc);
        return rc;
    }
    imp_progress(im);
    return 0;
}

/* The input is over: the archive must be complete; the disks are flushed. */
static void
imp_complete(struct vm_import *im)
{
    if (!im->err) {
        int rc = xva_reader_finish(im->reader, false);
        if (rc < 0)
            reader_fail(im, rc);
    }
    for (size_t i = 0; !im->err && i < im->n_disks; i++)
        if (im->disks[i].chain) {
            int rc = vhd_chain_close(im->disks[i].chain);
            im->disks[i].chain = NULL;
            if (rc < 0)
                storage_error(im, &im->disks[i], rc, "flush");
        }
    if (!im->err && !im->metadata)
        storage_sr_refresh_vdis(im->srv->db, im->sr, im->sr_path, NULL);
    imp_end(im);
}

static void
imp_finish(void *ctx, struct http_request *req)
{
    struct vm_import *im = ctx;
    imp_complete(im);
    transfer_reply_outcome(req, im->task, im->err);
    imp_free(im);
}

static void
imp_abort(void *ctx)
{
    struct vm_import *im = ctx;
    if (!im->err)
        xerr_import_error_premature_eof(&im->err); /* the client went away */
    imp_free(im);
}

static bool
query_flag(struct http_request *req, const char *key)
{
    const char *v = http_request_query(req, key);
    return v && strcmp(v, "true") == 0;
}

static bool sr_usable(struct vm_import *im, struct xerr **errp);

/* The target SR: sr_id, sr_uuid, or the pool's default SR (import.ml). */
static bool
target_sr(struct vm_import *im, struct http_request *req, struct xerr **errp)
{
    struct db *db = im->srv->db;
    const char *id = http_request_query(req, "sr_id");
    const char *uuid = http_request_query(req, "sr_uuid");
    if (id) {
        if (!db_exists(db, &xapi_class_sr, id))
            return xerr_handle_invalid(errp, "SR", id);
        im->sr = strdup(id);
    } else if (uuid) {
        if (!db_ref_by_uuid(db, &xapi_class_sr, uuid, &im->sr, errp))
            return false;
    } else {
        struct xapi_pool_record *p = NULL;
        if (!db_get(db, &xapi_class_pool, im->srv->pool_ref, (void **)&p, errp))
            return false;
        bool found = db_exists(db, &xapi_class_sr, p->default_SR);
        if (found)
            im->sr = strdup(p->default_SR);
        else
            xerr_default_sr_not_found(errp, p->default_SR);
        xapi_pool_record_free(p);
        if (!found)
            return false;
    }
    if (!im->sr)
        return xerr_nomem(errp);
    return sr_usable(im, errp);
}

/* im->sr takes imports: not an ISO library, plugged here (its directory). */
static bool
sr_usable(struct vm_import *im, struct xerr **errp)
{
    struct db *db = im->srv->db;
    struct xapi_sr_record *sr = NULL;
    if (!db_get(db, &xapi_class_sr, im->sr, (void **)&sr, errp))
        return false;
    bool iso = strcmp(sr->content_type, "iso") == 0;
    xapi_sr_record_free(sr);
    if (iso)
        return xerr_sr_operation_not_supported(errp, im->sr);
    return storage_sr_path(db, im->srv->host_ref, im->sr, &im->sr_path, errp);
}

static bool
imp_prepare(struct vm_import *im, struct http_request *req, struct transfer_caller *who,
            struct xerr **errp)
{
    im->restore = query_flag(req, "restore");
    im->force = query_flag(req, "force");
    const char *cl = http_request_header(req, "Content-Length");
    im->body_len = cl ? (int64_t)strtoull(cl, NULL, 10) : -1;
    im->user = who->user;
    who->user = NULL;
    im->ctx = (struct call_ctx){
        .srv = im->srv,
        .db = im->srv->db,
        .session = "",
        .user = im->user ? im->user : "",
        .role = who->role,
        .superuser = who->superuser,
        .task = im->task,
        .peer = (im->peer = strdup(http_request_peer(req))) ? im->peer : "",
        .transport = http_request_transport(req),
        .originator = "",
    };
    if (!im->metadata && !target_sr(im, req, errp))
        return false;
    im->reader = xva_reader_new(&reader_ops, im, !im->force);
    return im->reader || xerr_nomem(errp);
}

static bool
begin(struct server *srv, struct http_request *req, struct http_body_sink *sink, bool metadata)
{
    struct transfer_caller who = {0};
    struct xerr *err = NULL;
    struct vm_import *im = NULL;
    const char *perm = metadata ? "http/put_import_metadata" : "http/put_import";
    /* an SR of another host: import there (xapi's import.ml) */
    const char *sr_id = http_request_query(req, "sr_id");
    if (!metadata &&
        forward_transfer_redirect(srv, req, perm, FORWARD_SR,
                                  sr_id ? sr_id : http_request_query(req, "sr_uuid"), !sr_id))
        return false;
    if (transfer_authorise(srv, req, perm, &who, &err)) {
        im = calloc(1, sizeof(*im));
        if (!im) {
            xerr_nomem(&err);
        } else if (transfer_task(srv, req, &who, metadata ? "VM.import_metadata" : "VM.import",
                                 &im->task, &err)) {
            im->srv = srv;
            im->metadata = metadata;
            im->finish_task = true;
            if (imp_prepare(im, req, &who, &err)) {
                task_set_progress(srv, im->task, 0.0);
                *sink = (struct http_body_sink){imp_write, imp_finish, imp_abort, im};
                return true;
            }
        }
    }
    free(who.user);
    if (im && im->task)
        im->err = xerr_copy(err);
    transfer_reply_error(req, im ? im->task : NULL, err);
    xerr_free(err);
    imp_free(im);
    return false;
}

static bool
begin_import(void *opaque, struct http_request *req, struct http_body_sink *sink)
{
    return begin(opaque, req, sink, false);
}

static bool
begin_import_metadata(void *opaque, struct http_request *req, struct http_body_sink *sink)
{
    return begin(opaque, req, sink, true);
}

bool
vm_import_register(struct server *srv, struct http_server *http)
{
    static const struct transfer_route routes[] = {
        {"/import", begin_import},
        {"/import/", begin_import},
        {"/import_metadata", begin_import_metadata},
        {"/import_metadata/", begin_import_metadata},
    };
    return transfer_add_routes(srv, http, "PUT", routes, sizeof(routes) / sizeof(routes[0]));
}

/*==== VM.import (the URL form) ====*/

static int
fetched(void *opaque, const char *data, size_t len)
{
    return imp_write(opaque, data, len) < 0 ? -ECANCELED : 0;
}

/* xapi's VM.import: the server downloads the XVA at @url into @sr and
 * returns the new VMs. A sync call gets a task of its own for the import's
 * bookkeeping (operations, progress); an Async one reports into its own. */
bool
api_vm_import(struct call_ctx *ctx, const char *url, const char *sr, bool full_restore,
              bool force, struct xapi_ref_set *result, struct xerr **errp)
{
    if (!db_exists(ctx->db, &xapi_class_sr, sr))
        return xerr_handle_invalid(errp, "SR", sr);
    struct vm_import *im = calloc(1, sizeof(*im));
    if (!im)
        return xerr_nomem(errp);
    im->srv = ctx->srv;
    im->ctx = *ctx;
    im->restore = full_restore;
    im->force = force;
    im->body_len = -1;
    im->finish_task = !ctx->task;
    bool ok = ctx->task ? (im->task = strdup(ctx->task)) != NULL || xerr_nomem(errp)
                        : task_create(ctx->srv, "VM.import", url, ctx->user, true, &im->task,
                                      errp);
    if (ok && !(im->sr = strdup(sr)))
        ok = xerr_nomem(errp);
    if (ok)
        ok = sr_usable(im, errp);
    if (ok && !(im->reader = xva_reader_new(&reader_ops, im, !force)))
        ok = xerr_nomem(errp);
    if (!ok) {
        im->ended = true; /* nothing made; a task of our own still ends */
        if (im->task && im->finish_task) {
            struct xerr *e = NULL;
            xerr_internal(&e, "VM.import could not start");
            task_finish_failure(ctx->srv, im->task, errp && *errp ? *errp : e);
            xerr_free(e);
        }
        imp_free(im);
        return false;
    }
    im->ctx.task = im->task;
    char why[256];
    int rc = http_fetch(url, 120 * 1000, fetched, im, why, sizeof(why));
    if (rc < 0 && !im->err)
        xerr_import_error(&im->err, why);
    imp_complete(im);
    ok = !im->err;
    for (size_t i = 0; ok && i < im->n_map; i++)
        if (imp_result_vm(im, i) && xset_append_str((struct xset *)result, im->map[i].ref) < 0)
            ok = xerr_nomem(errp);
    if (!ok && im->err)
        xerr_propagate(errp, &im->err);
    imp_free(im);
    return ok;
}
