/* api/pool_objects.c - a host's own objects between two stores
 * (api/pool_objects.h). */
#include "api/pool_objects.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "db/db.h"
#include "xapi_model.h"

/* ------------------------------------------------------------------ ref lists */

bool
refs_has(const struct refs *r, const char *ref)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->v[i], ref) == 0)
            return true;
    return false;
}

bool
ref_is_null(const char *ref)
{
    return !ref || !*ref || strcmp(ref, "OpaqueRef:NULL") == 0;
}

/* Appends @ref, also when present. */
static bool
refs_push(struct refs *r, const char *ref)
{
    char **grown = realloc(r->v, (r->n + 1) * sizeof(char *));
    if (!grown)
        return false;
    r->v = grown;
    if (!(r->v[r->n] = strdup(ref)))
        return false;
    r->n++;
    return true;
}

/* Appends @ref unless null or present. */
bool
refs_add(struct refs *r, const char *ref)
{
    return ref_is_null(ref) || refs_has(r, ref) || refs_push(r, ref);
}

void
refs_free(struct refs *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->v[i]);
    free(r->v);
    r->v = NULL;
    r->n = 0;
}

/* ------------------------------------------------------------------ carrying the objects */

struct carry {
    struct db *from, *to;
    const char *host;
    bool diskless_need_affinity;
    struct owned *o;
};

static bool
clear_reverse_links(const struct xclass *cls, void *rec)
{
    for (size_t i = 0; i < cls->n_fields; i++) {
        const struct xfield *f = &cls->fields[i];
        if (!f->inverse_class)
            continue;
        void *p = xrecord_field_ptr(rec, f);
        xtype_value_clear(f->type, p);
        if (xtype_value_init(f->type, p) < 0)
            return false;
    }
    return true;
}

static bool
set_str(void *rec, const struct xclass *cls, const char *field, const char *value)
{
    char **p = xrecord_field_ptr(rec, xclass_field(cls, field));
    char *v = strdup(value);
    if (!v)
        return false;
    free(*p);
    *p = v;
    return true;
}

/* The destination's ref for network @ref of the source. */
static const char *
mapped_network(const struct owned *o, const char *ref)
{
    for (size_t i = 0; i < o->net_from.n; i++)
        if (strcmp(o->net_from.v[i], ref) == 0)
            return o->net_to.v[i];
    return ref;
}

/* Copies one object of @from into @to, same ref and uuid; @network names a
 * field to map to @to's network. A host arrives without an eject mark: the
 * mark belongs to the store it was set in. */
static bool
carry_one(struct carry *c, const struct xclass *cls, const char *ref, const char *network,
          struct xerr **errp)
{
    if (ref_is_null(ref) || !db_exists(c->from, cls, ref))
        return true;
    void *rec = NULL;
    if (!db_get(c->from, cls, ref, &rec, errp))
        return false;
    bool ok = clear_reverse_links(cls, rec);
    if (cls == &xapi_class_host)
        ((struct xapi_host_record *)rec)->eject_requested = false;
    if (ok && network) {
        const char *was = *(char **)xrecord_field_ptr(rec, xclass_field(cls, network));
        ok = ref_is_null(was) || set_str(rec, cls, network, mapped_network(c->o, was));
    }
    if (!ok) {
        xrecord_free(cls, rec);
        return xerr_nomem(errp);
    }
    return db_create(c->to, cls, ref, rec, NULL, errp);
}

static bool
carry_list(struct carry *c, const struct xclass *cls, const struct refs *r, const char *network,
           struct xerr **errp)
{
    for (size_t i = 0; i < r->n; i++)
        if (!carry_one(c, cls, r->v[i], network, errp))
            return false;
    return true;
}

struct by_field {
    const struct xclass *cls;
    const char *field; /* NULL: every object */
    const char *value;
    const struct refs *values; /* or: the field's value is one of these */
    struct refs *out;
    bool nomem;
};

static bool
match_field(void *opaque, const char *ref, const void *rec)
{
    struct by_field *b = opaque;
    const char *v = b->field ? *(char *const *)xrecord_field_cptr(
                                   rec, xclass_field(b->cls, b->field))
                             : NULL;
    bool take = !b->field || (v && (b->values ? refs_has(b->values, v) : strcmp(v, b->value) == 0));
    if (take && !refs_add(b->out, ref))
        b->nomem = true;
    return !b->nomem;
}

/* Every object of @cls whose ref field @field is @value (or one of
 * @values; every object when @field is NULL). */
static bool
collect(struct db *db, const struct xclass *cls, const char *field, const char *value,
        const struct refs *values, struct refs *out)
{
    struct by_field b = {cls, field, value, values, out, false};
    db_foreach(db, cls, match_field, &b);
    return !b.nomem;
}

/* Adds the value of ref field @field of each of @from (of @cls) to @out. */
static bool
collect_field(struct db *db, const struct xclass *cls, const struct refs *from, const char *field,
              struct refs *out)
{
    for (size_t i = 0; i < from->n; i++) {
        char *v = NULL;
        if (!db_get_field(db, cls, from->v[i], xclass_field(cls, field), &v, NULL))
            continue;
        bool ok = refs_add(out, v);
        free(v);
        if (!ok)
            return false;
    }
    return true;
}

struct bridge_find {
    const char *bridge;
    char *ref;
};

static bool
find_bridge(void *opaque, const char *ref, const void *rec)
{
    struct bridge_find *b = opaque;
    const struct xapi_network_record *n = rec;
    if (n->bridge && strcmp(n->bridge, b->bridge) == 0) {
        b->ref = strdup(ref);
        return false;
    }
    return true;
}

/* The joiner's networks @nets in the pool: the pool's network with the same
 * bridge, or the joiner's own, carried. */
static bool
map_networks(struct carry *c, const struct refs *nets, struct xerr **errp)
{
    for (size_t i = 0; i < nets->n; i++) {
        struct xapi_network_record *n = NULL;
        if (!db_get(c->from, &xapi_class_network, nets->v[i], (void **)&n, errp))
            return false;
        struct bridge_find b = {n->bridge ? n->bridge : "", NULL};
        if (*b.bridge)
            db_foreach(c->to, &xapi_class_network, find_bridge, &b);
        xapi_network_record_free(n);
        bool ok = refs_push(&c->o->net_from, nets->v[i]) &&
                  refs_push(&c->o->net_to, b.ref ? b.ref : nets->v[i]) &&
                  (b.ref || refs_add(&c->o->networks, nets->v[i]));
        free(b.ref);
        if (!ok)
            return xerr_nomem(errp);
    }
    return true;
}

static bool
vdi_on_carried_sr(struct carry *c, const char *vdi)
{
    char *sr = NULL;
    bool ok = db_get_field(c->from, &xapi_class_vdi, vdi, xclass_field(&xapi_class_vdi, "SR"),
                           &sr, NULL) &&
              refs_has(&c->o->srs, sr);
    free(sr);
    return ok;
}

static bool
disks_carried(struct carry *c, const struct xapi_vm_record *vm)
{
    if (!ref_is_null(vm->suspend_VDI) && !vdi_on_carried_sr(c, vm->suspend_VDI))
        return false;
    for (size_t i = 0; i < vm->VBDs.n; i++) {
        struct xapi_vbd_record *vbd = NULL;
        if (!db_get(c->from, &xapi_class_vbd, vm->VBDs.items[i], (void **)&vbd, NULL))
            return false;
        bool ok = vbd->empty || ref_is_null(vbd->VDI) || vdi_on_carried_sr(c, vbd->VDI);
        xapi_vbd_record_free(vbd);
        if (!ok)
            return false;
    }
    return true;
}

/* The VMs that are this host's: its control domain, the VMs resident on it,
 * and the halted or suspended VMs other than the built-in templates whose
 * disks are all on its SRs (db_get outside db_foreach: it takes the lock). */
static bool
pick_vms(struct carry *c, struct xerr **errp)
{
    struct refs all = {NULL, 0};
    bool ok = collect(c->from, &xapi_class_vm, NULL, NULL, NULL, &all);
    for (size_t i = 0; ok && i < all.n; i++) {
        struct xapi_vm_record *vm = NULL;
        if (!db_get(c->from, &xapi_class_vm, all.v[i], (void **)&vm, NULL))
            continue;
        bool resident = vm->resident_on && strcmp(vm->resident_on, c->host) == 0;
        bool candidate = !vm->is_control_domain && !vm->is_default_template;
        bool halted = vm->power_state == XAPI_VM_POWER_STATE_HALTED ||
                      vm->power_state == XAPI_VM_POWER_STATE_SUSPENDED;
        bool has_disk = !ref_is_null(vm->suspend_VDI);
        for (size_t j = 0; j < vm->VBDs.n && !has_disk; j++) {
            char *vdi = NULL;
            if (db_get_field(c->from, &xapi_class_vbd, vm->VBDs.items[j],
                             xclass_field(&xapi_class_vbd, "VDI"), &vdi, NULL))
                has_disk = !ref_is_null(vdi);
            free(vdi);
        }
        bool mine = has_disk || !c->diskless_need_affinity ||
                    (vm->affinity && strcmp(vm->affinity, c->host) == 0);
        bool take = resident || (candidate && halted && mine && disks_carried(c, vm));
        if (candidate && halted && mine && !take)
            log_warn("pool.objects", "vm=%s moved=false reason=\"a disk is not on this host's SRs\"",
                     vm->uuid);
        xapi_vm_record_free(vm);
        ok = !take || refs_add(&c->o->vms, all.v[i]);
    }
    refs_free(&all);
    return ok ? true : xerr_nomem(errp);
}

static bool
sr_not_shared(struct db *db, const char *sr)
{
    bool shared = true;
    db_get_field(db, &xapi_class_sr, sr, xclass_field(&xapi_class_sr, "shared"), &shared, NULL);
    return !shared;
}

bool
pool_objects_find(struct db *from, struct db *to, const char *host, bool diskless_need_affinity,
                  struct owned *o, struct xerr **errp)
{
    memset(o, 0, sizeof(*o));
    struct carry c = {from, to, host, diskless_need_affinity, o};
    struct refs pbds = {0}, srs = {0}, nets = {0};
    char *metrics = NULL;
    bool ok = db_get_field(from, &xapi_class_host, host, xclass_field(&xapi_class_host, "metrics"),
                           &metrics, errp);
    if (!ok)
        return false;
    ok = refs_add(&o->host, host) && refs_add(&o->host_metrics, metrics) &&
         collect(from, &xapi_class_pbd, "host", host, NULL, &pbds) &&
         collect_field(from, &xapi_class_pbd, &pbds, "SR", &srs);
    free(metrics);
    for (size_t i = 0; ok && i < srs.n; i++)
        ok = !sr_not_shared(from, srs.v[i]) || refs_add(&o->srs, srs.v[i]);
    for (size_t i = 0; ok && i < pbds.n; i++) {
        char *sr = NULL;
        if (db_get_field(from, &xapi_class_pbd, pbds.v[i], xclass_field(&xapi_class_pbd, "SR"),
                         &sr, NULL) &&
            !refs_has(&o->srs, sr))
            ok = refs_add(&o->shared_pbds, pbds.v[i]);
        free(sr);
    }
    ok = ok && collect(from, &xapi_class_pbd, "SR", NULL, &o->srs, &o->pbds) &&
         collect(from, &xapi_class_vdi, "SR", NULL, &o->srs, &o->vdis) &&
         collect(from, &xapi_class_pif, "host", host, NULL, &o->pifs) &&
         collect_field(from, &xapi_class_pif, &o->pifs, "metrics", &o->pif_metrics) &&
         collect(from, &xapi_class_host_cpu, "host", host, NULL, &o->cpus);
    refs_free(&pbds);
    refs_free(&srs);
    if (!ok) {
        pool_objects_free(o);
        return xerr_nomem(errp);
    }
    if (!pick_vms(&c, errp)) {
        pool_objects_free(o);
        return false;
    }
    ok = collect(from, &xapi_class_vbd, "VM", NULL, &o->vms, &o->vbds) &&
         collect(from, &xapi_class_vif, "VM", NULL, &o->vms, &o->vifs) &&
         collect_field(from, &xapi_class_vm, &o->vms, "metrics", &o->vm_metrics) &&
         collect_field(from, &xapi_class_vm, &o->vms, "guest_metrics", &o->guest_metrics) &&
         collect_field(from, &xapi_class_pif, &o->pifs, "network", &nets) &&
         collect_field(from, &xapi_class_vif, &o->vifs, "network", &nets);
    if (!ok)
        xerr_nomem(errp);
    ok = ok && map_networks(&c, &nets, errp);
    refs_free(&nets);
    if (!ok)
        pool_objects_free(o);
    return ok;
}

bool
pool_objects_copy(struct db *from, struct db *to, const struct owned *o, struct xerr **errp)
{
    struct carry c = {from, to, NULL, false, (struct owned *)o};
    /* targets before the objects that point at them: the reverse sets
     * (host.PIFs, SR.VDIs ...) are made as the forward refs arrive */
    return carry_list(&c, &xapi_class_host, &o->host, NULL, errp) &&
           carry_list(&c, &xapi_class_host_metrics, &o->host_metrics, NULL, errp) &&
           carry_list(&c, &xapi_class_host_cpu, &o->cpus, NULL, errp) &&
           carry_list(&c, &xapi_class_network, &o->networks, NULL, errp) &&
           carry_list(&c, &xapi_class_pif_metrics, &o->pif_metrics, NULL, errp) &&
           carry_list(&c, &xapi_class_pif, &o->pifs, "network", errp) &&
           carry_list(&c, &xapi_class_sr, &o->srs, NULL, errp) &&
           carry_list(&c, &xapi_class_pbd, &o->pbds, NULL, errp) &&
           carry_list(&c, &xapi_class_vdi, &o->vdis, NULL, errp) &&
           carry_list(&c, &xapi_class_vm_metrics, &o->vm_metrics, NULL, errp) &&
           carry_list(&c, &xapi_class_vm_guest_metrics, &o->guest_metrics, NULL, errp) &&
           carry_list(&c, &xapi_class_vm, &o->vms, NULL, errp) &&
           carry_list(&c, &xapi_class_vbd, &o->vbds, NULL, errp) &&
           carry_list(&c, &xapi_class_vif, &o->vifs, "network", errp);
}

static bool
delete_list(struct db *db, const struct xclass *cls, const struct refs *r, struct xerr **errp)
{
    for (size_t i = 0; i < r->n; i++)
        if (db_exists(db, cls, r->v[i]) && !db_destroy(db, cls, r->v[i], errp))
            return false;
    return true;
}

bool
pool_objects_delete(struct db *db, const struct owned *o, struct xerr **errp)
{
    return delete_list(db, &xapi_class_vif, &o->vifs, errp) &&
           delete_list(db, &xapi_class_vbd, &o->vbds, errp) &&
           delete_list(db, &xapi_class_vm, &o->vms, errp) &&
           delete_list(db, &xapi_class_vm_guest_metrics, &o->guest_metrics, errp) &&
           delete_list(db, &xapi_class_vm_metrics, &o->vm_metrics, errp) &&
           delete_list(db, &xapi_class_vdi, &o->vdis, errp) &&
           delete_list(db, &xapi_class_pbd, &o->pbds, errp) &&
           delete_list(db, &xapi_class_pbd, &o->shared_pbds, errp) &&
           delete_list(db, &xapi_class_sr, &o->srs, errp) &&
           delete_list(db, &xapi_class_pif, &o->pifs, errp) &&
           delete_list(db, &xapi_class_pif_metrics, &o->pif_metrics, errp) &&
           delete_list(db, &xapi_class_host_cpu, &o->cpus, errp) &&
           delete_list(db, &xapi_class_host, &o->host, errp) &&
           delete_list(db, &xapi_class_host_metrics, &o->host_metrics, errp);
}

void
pool_objects_free(struct owned *o)
{
    struct refs *all[] = {&o->host, &o->host_metrics, &o->cpus, &o->networks, &o->pif_metrics,
                          &o->pifs, &o->srs, &o->pbds, &o->vdis, &o->vm_metrics,
                          &o->guest_metrics, &o->vms, &o->vbds, &o->vifs, &o->net_from,
                          &o->net_to, &o->shared_pbds};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        refs_free(all[i]);
}

bool
pool_objects_copy_refs(struct db *from, struct db *to, const struct xclass *cls,
                       const struct refs *r, struct xerr **errp)
{
    struct owned none = {0};
    struct carry c = {from, to, NULL, false, &none};
    return carry_list(&c, cls, r, NULL, errp);
}
