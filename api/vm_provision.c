/* api/vm_provision.c - VM.provision: a template's other_config:disks become
 * real VDIs and VBDs, and the template becomes a VM (xapi's ocaml/xapi/xapi_vm_clone.ml).
 *
 * The XML, <provision><disk device="0" size="BYTES" sr="SR-UUID"
 * bootable="true" type="system"/>...</provision>, is parsed whole with expat
 * and every disk is checked before anything is made: an SR uuid that names no
 * SR is UUID_INVALID ["sr", uuid], sr="" means pool.default_SR, a bad size or
 * type is INVALID_VALUE. Then, in one batch: per disk a VDI (name_label the
 * device, description "Created by template provisioner", sm_config vmhint =
 * the VM's uuid) and a VBD (RW Disk, unpluggable unless the VDI is of type
 * system, other_config owner=""), then other_config loses disks and
 * postinstall and is_a_template goes false. A failure rolls the batch back and
 * deletes the files made so far, so the template is left as it was.
 */
#include <expat.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/storage_api.h"
#include "api/vm_ops.h"
#include "db/db.h"
#include "rpc/ctx.h"
#include "xapi_handlers.h"

#define NULL_REF "OpaqueRef:NULL"
#define MAX_DISKS 16

struct disk {
    char device[16];
    int64_t size;
    char sr[128];   /* the SR ref once resolved */
    char sr_uuid[64];
    bool bootable;
    int type;       /* enum xapi_vdi_type */
    char vdi_uuid[37];
};

struct parse {
    struct disk disks[MAX_DISKS];
    size_t n;
    char bad_field[16], bad_value[128];
    bool too_many;
};

static void
bad(struct parse *p, const char *field, const char *value)
{
    if (p->bad_field[0])
        return;
    snprintf(p->bad_field, sizeof(p->bad_field), "%s", field);
    snprintf(p->bad_value, sizeof(p->bad_value), "%s", value);
}

static void XMLCALL
on_start(void *opaque, const XML_Char *name, const XML_Char **attrs)
{
    struct parse *p = opaque;
    if (strcmp(name, "disk") != 0)
        return;
    if (p->n == MAX_DISKS) {
        p->too_many = true;
        return;
    }
    struct disk *d = &p->disks[p->n++];
    memset(d, 0, sizeof(*d));
    d->type = XAPI_VDI_TYPE_SYSTEM;
    for (size_t i = 0; attrs[i] && attrs[i + 1]; i += 2) {
        const char *k = attrs[i], *v = attrs[i + 1];
        if (strcmp(k, "device") == 0) {
            if (strlen(v) >= sizeof(d->device))
                bad(p, "device", v);
            snprintf(d->device, sizeof(d->device), "%s", v);
        } else if (strcmp(k, "size") == 0) {
            char *end;
            d->size = strtoll(v, &end, 10);
            if (!v[0] || *end || d->size <= 0)
                bad(p, "size", v);
        } else if (strcmp(k, "sr") == 0) {
            if (strlen(v) >= sizeof(d->sr_uuid))
                bad(p, "sr", v);
            snprintf(d->sr_uuid, sizeof(d->sr_uuid), "%s", v);
        } else if (strcmp(k, "bootable") == 0) {
            d->bootable = strcmp(v, "true") == 0;
        } else if (strcmp(k, "type") == 0) {
            d->type = xenum_parse(&xapi_enum_vdi_type, v);
            if (d->type < 0)
                bad(p, "type", v);
        }
    }
    if (!d->device[0])
        bad(p, "device", "");
    if (d->size <= 0)
        bad(p, "size", "");
}

/* Parses @xml into @p; INVALID_VALUE for XML or attribute errors. */
static bool
disks_parse(const char *xml, struct parse *p, struct xerr **errp)
{
    memset(p, 0, sizeof(*p));
    XML_Parser x = XML_ParserCreate("UTF-8");
    if (!x)
        return xerr_nomem(errp);
    XML_SetUserData(x, p);
    XML_SetElementHandler(x, on_start, NULL);
    bool parsed = XML_Parse(x, xml, (int)strlen(xml), 1) == XML_STATUS_OK;
    XML_ParserFree(x);
    if (!parsed)
        return xerr_invalid_value(errp, "other_config:disks", xml);
    if (p->too_many)
        return xerr_invalid_value(errp, "other_config:disks", "more than 16 disks");
    if (p->bad_field[0])
        return xerr_invalid_value(errp, p->bad_field, p->bad_value);
    return true;
}

static void
default_sr_peek(void *opaque, const void *rec)
{
    snprintf(opaque, 128, "%s", ((const struct xapi_pool_record *)rec)->default_SR);
}

/* Every disk's SR ref: UUID_INVALID ["sr", uuid] for an unknown uuid. */
static bool
disks_resolve(struct call_ctx *ctx, struct parse *p, struct xerr **errp)
{
    char def[128] = NULL_REF;
    db_with(ctx->db, &xapi_class_pool, ctx->srv->pool_ref, default_sr_peek, def, NULL);
    for (size_t i = 0; i < p->n; i++) {
        struct disk *d = &p->disks[i];
        if (!d->sr_uuid[0]) {
            if (strcmp(def, NULL_REF) == 0 || !db_exists(ctx->db, &xapi_class_sr, def))
                return xerr_uuid_invalid(errp, "sr", "");
            snprintf(d->sr, sizeof(d->sr), "%s", def);
            continue;
        }
        char *ref = NULL;
        if (!db_ref_by_uuid(ctx->db, &xapi_class_sr, d->sr_uuid, &ref, NULL))
            return xerr_uuid_invalid(errp, "sr", d->sr_uuid);
        snprintf(d->sr, sizeof(d->sr), "%s", ref);
        free(ref);
    }
    return true;
}

static bool
disk_make(struct call_ctx *ctx, const char *vm, const char *vm_uuid, struct disk *d,
          struct xerr **errp)
{
    struct xapi_vdi_record *v = xrecord_new(&xapi_class_vdi);
    struct xapi_vbd_record *b = xrecord_new(&xapi_class_vbd);
    bool ok = v && b;
    if (ok) {
        free(v->SR);
        free(v->name_label);
        free(v->name_description);
        v->SR = strdup(d->sr);
        v->name_label = strdup(d->device);
        v->name_description = strdup("Created by template provisioner");
        ok = v->SR && v->name_label && v->name_description &&
             xmap_put_str((struct xmap *)&v->sm_config, "vmhint", vm_uuid) == 0;
    }
    if (!ok) {
        xapi_vdi_record_free(v);
        xapi_vbd_record_free(b);
        return xerr_nomem(errp);
    }
    v->virtual_size = d->size;
    v->type = d->type;
    char *vdi = NULL, *vbd = NULL;
    ok = storage_vdi_create(ctx, v, &vdi, errp);
    xapi_vdi_record_free(v);
    if (!ok) {
        xapi_vbd_record_free(b);
        return false;
    }
    struct xapi_vdi_record *made = NULL;
    if (db_get(ctx->db, &xapi_class_vdi, vdi, (void **)&made, NULL)) {
        snprintf(d->vdi_uuid, sizeof(d->vdi_uuid), "%s", made->uuid);
        xapi_vdi_record_free(made);
    }
    free(b->VM);
    free(b->VDI);
    free(b->userdevice);
    b->VM = strdup(vm);
    b->VDI = vdi;
    b->userdevice = strdup(d->device);
    ok = b->VM && b->userdevice &&
         xmap_put_str((struct xmap *)&b->other_config, "owner", "") == 0;
    if (!ok) {
        xapi_vbd_record_free(b);
        return xerr_nomem(errp);
    }
    b->mode = XAPI_VBD_MODE_RW;
    b->type = XAPI_VBD_TYPE_DISK;
    b->bootable = d->bootable;
    b->unpluggable = d->type != XAPI_VDI_TYPE_SYSTEM;
    b->empty = false;
    ok = storage_vbd_create(ctx, b, &vbd, errp);
    xapi_vbd_record_free(b);
    free(vbd);
    return ok;
}

static bool
vm_finish(void *opaque, void *rec, struct xerr **errp)
{
    struct xapi_vm_record *vm = rec;
    struct xmap *oc = (struct xmap *)&vm->other_config;
    (void)opaque;
    xmap_remove_key(&xapi_type_string_string_map, oc, "disks");
    xmap_remove_key(&xapi_type_string_string_map, oc, "postinstall");
    vm->is_a_template = false;
    return vm_ops_refresh(vm) || xerr_nomem(errp);
}

bool
api_vm_provision(struct call_ctx *ctx, const char *vm, struct xerr **errp)
{
    struct xapi_vm_record *rec = NULL;
    if (!db_get(ctx->db, &xapi_class_vm, vm, (void **)&rec, errp))
        return false;
    struct parse *p = NULL;
    const char *xml = xmap_get_str((const struct xmap *)&rec->other_config, "disks");
    bool ok;
    if (!rec->is_a_template)
        ok = xerr_provision_only_allowed_on_template(errp);
    else if (!(p = calloc(1, sizeof(*p))))
        ok = xerr_nomem(errp);
    else
        ok = (!xml || disks_parse(xml, p, errp)) && disks_resolve(ctx, p, errp);
    if (!ok) {
        xapi_vm_record_free(rec);
        free(p);
        return false;
    }
    db_batch_begin(ctx->db);
    for (size_t i = 0; ok && i < p->n; i++) {
        ok = disk_make(ctx, vm, rec->uuid, &p->disks[i], errp);
        ctx_progress(ctx, (double)(i + 1) / (double)(p->n + 1));
    }
    ok = ok && db_update(ctx->db, &xapi_class_vm, vm, vm_finish, NULL, errp);
    ok = db_batch_end(ctx->db, ok, errp);
    if (!ok) /* the records are rolled back; the files go too */
        for (size_t i = 0; i < p->n; i++)
            if (p->disks[i].vdi_uuid[0])
                storage_vdi_delete_file(ctx, p->disks[i].sr, p->disks[i].vdi_uuid);
    xapi_vm_record_free(rec);
    free(p);
    return ok;
}
