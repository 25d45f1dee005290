/* api/xva_meta.c - ova.xml from the store, as xapi's export.ml writes it.
 *
 * Two passes, as export.ml: first a table of the objects to include, each
 * given an export id "Ref:<n>" in the order met (the VM; each VIF and its
 * network; each VBD, its VDI and the VDI's SR; with snapshot metadata the
 * snapshots likewise; the VM's metrics and guest metrics); then each object's
 * record, every reference in it replaced by the referenced object's export
 * id or OpaqueRef:NULL, reference sets keeping only exported members, and
 * the operation fields emptied. That rewrite is one loop over the class
 * descriptors, so a field added to the schema is exported rightly without a
 * line here. Hosts are not exported (xapi exports the VM's resident_on and
 * affinity hosts; their records mean nothing on another pool).
 *
 * Objects are written grouped by class in export.ml's make_all order: VMs,
 * VM_metrics, VM_guest_metrics, VBDs, VIFs, networks, VDIs, SRs.
 */
#include "api/xva_meta.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cleanup.h"
#include "db/db.h"
#include "wire/wire.h"
#include "wire/xva.h"
#include "xapi_errors.h"
#include "xapi_model.h"

#define NULL_REF "OpaqueRef:NULL"
#define MAX_OBJECTS 100000

struct entry {
    const struct xclass *cls;
    char *ref;
};

struct table {
    struct entry *e;
    size_t n;
    bool oom;
};

static int
table_find(const struct table *t, const char *ref)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->e[i].ref, ref) == 0)
            return (int)i;
    return -1;
}

/* Adds @ref of @cls unless present or NULL; true when it was added. */
static bool
table_add(struct table *t, const struct xclass *cls, const char *ref)
{
    if (!ref || strcmp(ref, NULL_REF) == 0 || table_find(t, ref) >= 0 || t->n >= MAX_OBJECTS)
        return false;
    struct entry *e = realloc(t->e, (t->n + 1) * sizeof(*e));
    char *copy = strdup(ref);
    if (!e || !copy) {
        if (e)
            t->e = e;
        free(copy);
        t->oom = true;
        return false;
    }
    t->e = e;
    t->e[t->n++] = (struct entry){cls, copy};
    return true;
}

static void
table_release(struct table *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->e[i].ref);
    free(t->e);
}

/*==== Pass 1: what to export ====*/

static void
add_vdi(struct db *db, struct table *t, const char *vdi)
{
    struct xapi_vdi_record *v = NULL;
    if (!db_get(db, &xapi_class_vdi, vdi, (void **)&v, NULL))
        return;
    table_add(t, &xapi_class_vdi, vdi);
    table_add(t, &xapi_class_sr, v->SR);
    xapi_vdi_record_free(v);
}

/* xapi's update_table, less hosts, VGPUs, PVS proxies and VTPMs (none here). */
static void
add_vm(struct db *db, struct table *t, const char *ref, bool snapshots)
{
    struct xapi_vm_record *vm = NULL;
    if (!db_get(db, &xapi_class_vm, ref, (void **)&vm, NULL) ||
        !table_add(t, &xapi_class_vm, ref)) {
        xapi_vm_record_free(vm);
        return;
    }
    for (size_t i = 0; i < vm->VIFs.n; i++) {
        struct xapi_vif_record *vif = NULL;
        if (!db_get(db, &xapi_class_vif, vm->VIFs.items[i], (void **)&vif, NULL))
            continue;
        table_add(t, &xapi_class_vif, vm->VIFs.items[i]);
        table_add(t, &xapi_class_network, vif->network);
        xapi_vif_record_free(vif);
    }
    for (size_t i = 0; i < vm->VBDs.n; i++) {
        struct xapi_vbd_record *vbd = NULL;
        if (!db_get(db, &xapi_class_vbd, vm->VBDs.items[i], (void **)&vbd, NULL))
            continue;
        table_add(t, &xapi_class_vbd, vm->VBDs.items[i]);
        if (!vbd->empty)
            add_vdi(db, t, vbd->VDI);
        xapi_vbd_record_free(vbd);
    }
    if (snapshots)
        for (size_t i = 0; i < vm->snapshots.n; i++)
            add_vm(db, t, vm->snapshots.items[i], false);
    table_add(t, &xapi_class_vm_metrics, vm->metrics);
    table_add(t, &xapi_class_vm_guest_metrics, vm->guest_metrics);
    if (snapshots)
        add_vm(db, t, vm->parent, false);
    xapi_vm_record_free(vm);
}

/*==== Pass 2: the records ====*/

static const char *
export_id(const struct table *t, const char *ref, char buf[32])
{
    int i = table_find(t, ref);
    if (i < 0)
        return NULL_REF;
    snprintf(buf, 32, "Ref:%d", i);
    return buf;
}

static bool
is_ops_field(const struct xfield *f)
{
    return strcmp(f->name, "current_operations") == 0 ||
           strcmp(f->name, "allowed_operations") == 0;
}

/* References to export ids, sets of references filtered, maps holding
 * references and the operation fields emptied (export.ml's make_*). */
static bool
rewrite_refs(const struct xclass *cls, void *rec, const struct table *t)
{
    char id[32];
    for (size_t i = 0; i < cls->n_fields; i++) {
        const struct xfield *f = &cls->fields[i];
        void *p = xrecord_field_ptr(rec, f);
        const struct xtype *ty = f->type;
        if (is_ops_field(f) || (ty->kind == XT_MAP && ((ty->key && ty->key->kind == XT_REF) ||
                                                       ty->elem->kind == XT_REF))) {
            xtype_value_clear(ty, p);
            if (xtype_value_init(ty, p) < 0)
                return false;
        } else if (ty->kind == XT_REF) {
            char **slot = p;
            if (!xstr_set(slot, export_id(t, *slot, id)))
                return false;
        } else if (ty->kind == XT_SET && ty->elem->kind == XT_REF) {
            struct xset *s = p;
            char **items = s->items;
            size_t kept = 0;
            for (size_t k = 0; k < s->n; k++) {
                const char *x = export_id(t, items[k], id);
                if (strcmp(x, NULL_REF) == 0) {
                    free(items[k]);
                    continue;
                }
                char *copy = strdup(x);
                if (!copy)
                    return false;
                free(items[k]);
                items[kept++] = copy;
            }
            s->n = kept;
        }
    }
    return true;
}

/* The per-class part of export.ml's make_vm, make_vbd, make_vif. */
static void
class_fixes(const struct xclass *cls, void *rec, const struct xva_meta_opts *o)
{
    if (cls == &xapi_class_vm) {
        struct xapi_vm_record *vm = rec;
        if (!o->preserve_power_state) {
            vm->power_state = XAPI_VM_POWER_STATE_HALTED;
            xstr_set(&vm->suspend_VDI, NULL_REF);
        }
        if (!o->with_snapshot_metadata) {
            vm->is_a_snapshot = false;
            vm->snapshot_time = 0;
            xstr_set(&vm->transportable_snapshot_id, "");
            xstr_set(&vm->snapshot_of, NULL_REF);
            xstr_set(&vm->parent, NULL_REF);
            xtype_value_clear(&xapi_type_ref_VM_set, &vm->snapshots);
        }
    } else if (cls == &xapi_class_vbd && !o->preserve_power_state) {
        ((struct xapi_vbd_record *)rec)->currently_attached = false;
    } else if (cls == &xapi_class_vif && !o->preserve_power_state) {
        ((struct xapi_vif_record *)rec)->currently_attached = false;
    }
}

static bool
write_object(struct db *db, const struct table *t, size_t i, const struct xva_meta_opts *o,
             struct wire_writer *w)
{
    const struct xclass *cls = t->e[i].cls;
    void *rec = NULL;
    if (!db_get(db, cls, t->e[i].ref, &rec, NULL))
        return true; /* gone meanwhile: xapi's filter by is_valid_ref */
    bool ok = rewrite_refs(cls, rec, t);
    class_fixes(cls, rec, o);
    char id[32];
    snprintf(id, sizeof(id), "Ref:%zu", i);
    wire_begin_struct(w);
    wire_member(w, "class");
    wire_string(w, cls->name);
    wire_member(w, "id");
    wire_string(w, id);
    wire_member(w, "snapshot");
    xrecord_encode(cls, rec, w, false);
    wire_end_struct(w);
    xrecord_free(cls, rec);
    return ok;
}

static void
write_version(struct db *db, const char *host, struct wire_writer *w)
{
    struct xapi_host_record *h = NULL;
    db_get(db, &xapi_class_host, host, (void **)&h, NULL);
    const struct xmap *sv = h ? (const struct xmap *)&h->software_version : NULL;
    const char *xapi = sv ? xmap_get_str(sv, "xapi") : NULL;
    long major = 0, minor = 0;
    if (xapi)
        sscanf(xapi, "%ld.%ld", &major, &minor);
    static const char *const keys[] = {"hostname", "date", "product_version", "product_brand",
                                       "build_number"};
    wire_begin_struct(w);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const char *v = sv ? xmap_get_str(sv, keys[i]) : NULL;
        wire_member(w, keys[i]);
        wire_string(w, v ? v : (i == 0 && h ? h->hostname : ""));
    }
    wire_member(w, "xapi_major");
    wire_int32(w, (int32_t)major);
    wire_member(w, "xapi_minor");
    wire_int32(w, (int32_t)minor);
    wire_member(w, "export_vsn");
    wire_int32(w, XVA_EXPORT_VSN);
    wire_end_struct(w);
    if (h)
        xapi_host_record_free(h);
}

/*==== The disks ====*/

static int
disk_cmp(const void *a, const void *b)
{
    return strcmp(((const struct xva_disk *)a)->prefix, ((const struct xva_disk *)b)->prefix);
}

void
xva_disks_free(struct xva_disk *disks, size_t n)
{
    for (size_t i = 0; disks && i < n; i++) {
        free(disks[i].vdi);
        free(disks[i].sr);
        free(disks[i].uuid);
    }
    free(disks);
}

/* export.ml's export: the VM's VBDs that are not CDs, whose VDI is exported
 * and not on an iso SR. */
static bool
list_disks(struct db *db, const char *vm_ref, const struct table *t, struct xva_disk **out,
           size_t *n_out)
{
    struct xapi_vm_record *vm = NULL;
    *out = NULL;
    *n_out = 0;
    if (!db_get(db, &xapi_class_vm, vm_ref, (void **)&vm, NULL))
        return true;
    struct xva_disk *d = calloc(vm->VBDs.n ? vm->VBDs.n : 1, sizeof(*d));
    size_t n = 0;
    bool ok = d != NULL;
    for (size_t i = 0; ok && i < vm->VBDs.n; i++) {
        struct xapi_vbd_record *vbd = NULL;
        struct xapi_vdi_record *vdi = NULL;
        struct xapi_sr_record *sr = NULL;
        if (db_get(db, &xapi_class_vbd, vm->VBDs.items[i], (void **)&vbd, NULL) &&
            vbd->type != XAPI_VBD_TYPE_CD && !vbd->empty && table_find(t, vbd->VDI) >= 0 &&
            db_get(db, &xapi_class_vdi, vbd->VDI, (void **)&vdi, NULL) &&
            db_get(db, &xapi_class_sr, vdi->SR, (void **)&sr, NULL) &&
            strcmp(sr->content_type, "iso") != 0) {
            bool dup = false;
            for (size_t k = 0; k < n; k++)
                dup = dup || strcmp(d[k].vdi, vbd->VDI) == 0;
            if (!dup) {
                snprintf(d[n].prefix, sizeof(d[n].prefix), "Ref:%d", table_find(t, vbd->VDI));
                d[n].vdi = strdup(vbd->VDI);
                d[n].sr = strdup(vdi->SR);
                d[n].uuid = strdup(vdi->uuid);
                d[n].virtual_size = (uint64_t)vdi->virtual_size;
                ok = d[n].vdi && d[n].sr && d[n].uuid;
                n++;
            }
        }
        if (vbd)
            xapi_vbd_record_free(vbd);
        if (vdi)
            xapi_vdi_record_free(vdi);
        if (sr)
            xapi_sr_record_free(sr);
    }
    xapi_vm_record_free(vm);
    if (!ok) {
        xva_disks_free(d, n);
        return false;
    }
    qsort(d, n, sizeof(*d), disk_cmp);
    *out = d;
    *n_out = n;
    return true;
}

bool
xva_meta_build(struct db *db, const char *host, const char *const *vms, size_t n_vms,
               const struct xva_meta_opts *opts, struct strbuf *xml, struct xva_disk **disks,
               size_t *n_disks, struct xerr **errp)
{
    for (size_t i = 0; i < n_vms; i++)
        if (!db_exists(db, &xapi_class_vm, vms[i]))
            return xerr_handle_invalid(errp, "VM", vms[i]);
    struct table t = {0};
    for (size_t i = 0; i < n_vms; i++)
        add_vm(db, &t, vms[i], opts->with_snapshot_metadata);
    static const struct xclass *const order[] = {
        &xapi_class_vm,  &xapi_class_vm_metrics, &xapi_class_vm_guest_metrics,
        &xapi_class_vbd, &xapi_class_vif,        &xapi_class_network,
        &xapi_class_vdi, &xapi_class_sr,
    };
    struct wire_writer w;
    wire_writer_init(&w, WIRE_XMLRPC, xml);
    wire_begin_struct(&w);
    wire_member(&w, "version");
    write_version(db, host, &w);
    wire_member(&w, "objects");
    wire_begin_array(&w);
    bool ok = !t.oom;
    for (size_t c = 0; ok && c < sizeof(order) / sizeof(order[0]); c++)
        for (size_t i = 0; ok && i < t.n; i++)
            if (t.e[i].cls == order[c])
                ok = write_object(db, &t, i, opts, &w);
    wire_end_array(&w);
    wire_end_struct(&w);
    ok = ok && strbuf_ok(xml) && !w.overflow;
    if (ok && disks)
        ok = list_disks(db, vms[0], &t, disks, n_disks);
    table_release(&t);
    return ok || xerr_nomem(errp);
}
