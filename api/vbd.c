/* api/vbd.c - VBD.* messages: a VM's disk and CD slots (xapi's ocaml/idl/datamodel*.ml "VBD").
 *
 * VBD.create applies xapi's checks in xapi's order (xapi_vbd.ml create): the
 * VDI must exist unless the drive is empty; a CD must be read-only
 * (VBD_CDS_MUST_BE_READONLY []); only a CD may be empty
 * (VBD_NOT_REMOVABLE_MEDIA ["in constructor"]); a RW VBD cannot point at a
 * read-only VDI (VDI_READONLY [vdi]); userdevice is a slot "0".."15", a Linux
 * name (xvda, hdb, sdc: the letter is the slot) or "autodetect" (the first free
 * slot), else INVALID_DEVICE [userdevice]; a slot in use on the VM, in either
 * spelling, is DEVICE_ALREADY_EXISTS [userdevice]. The check and the create are
 * one batch, so two creates cannot take one slot.
 *
 * On a halted VM a VBD is only a record: the VM attaches it at start. Hotplug
 * (plug/unplug) needs a running guest: VM_BAD_POWER_STATE [vm, running,
 * actual] on any other. plug starts the VBD's disk server (api/disk_servers.c)
 * and adds the disk to the guest (xenops: virtio-blk, pc machine only, else
 * OPERATION_NOT_ALLOWED); unplug asks the guest to let go (ACPI eject, up to
 * VBD_UNPLUG_TIMEOUT_MS: DEVICE_DETACH_REJECTED [VBD, vbd, msg] otherwise),
 * then stops the server, which flushes. A CD drive is not hotplugged
 * (OPERATION_NOT_ALLOWED): insert/eject change which VDI it holds.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/disk_servers.h"
#include "api/domains.h"
#include "api/storage_api.h"
#include "api/vm_ops.h"
#include "db/db.h"
#include "rpc/ctx.h"
#include "xapi_handlers.h"

#define NULL_REF "OpaqueRef:NULL"
#define VBD_SLOTS 16
#define VBD_UNPLUG_TIMEOUT_MS 30000 /* a TCG guest answers ACPI eject slowly */


/* The slot a userdevice names, or -1. "autodetect" is the caller's business. */
static int
slot_of(const char *dev)
{
    if (dev[0] >= '0' && dev[0] <= '9') {
        char *end;
        long v = strtol(dev, &end, 10);
        return *end == '\0' && v >= 0 && v < VBD_SLOTS && (dev[0] != '0' || !dev[1]) ? (int)v
                                                                                     : -1;
    }
    const char *prefixes[] = {"xvd", "hd", "sd"};
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(prefixes[i]);
        if (strncmp(dev, prefixes[i], n) == 0 && dev[n] >= 'a' && dev[n] < 'a' + VBD_SLOTS &&
            dev[n + 1] == '\0')
            return dev[n] - 'a';
    }
    return -1;
}

static bool
vbd_ops_set(struct xapi_vbd_record *b)
{
    enum xapi_vbd_operations ops[4];
    size_t n = 0;
    if (!b->currently_attached)
        ops[n++] = XAPI_VBD_OPERATIONS_ATTACH;
    if (b->type == XAPI_VBD_TYPE_CD)
        ops[n++] = b->empty ? XAPI_VBD_OPERATIONS_INSERT : XAPI_VBD_OPERATIONS_EJECT;
    enum xapi_vbd_operations *items = malloc((n ? n : 1) * sizeof(*items));
    if (!items)
        return false;
    memcpy(items, ops, n * sizeof(*items));
    free(b->allowed_operations.items);
    b->allowed_operations.items = items;
    b->allowed_operations.n = n;
    return true;
}

/* ------------------------------------------------------------------ create, destroy */

struct slots {
    const char *vm;
    bool used[VBD_SLOTS];
};

static bool
slots_one(void *opaque, const char *ref, const void *rec)
{
    struct slots *s = opaque;
    const struct xapi_vbd_record *b = rec;
    (void)ref;
    int slot;
    if (strcmp(b->VM, s->vm) == 0 && (slot = slot_of(b->userdevice)) >= 0)
        s->used[slot] = true;
    return true;
}

static void
vdi_ro_peek(void *opaque, const void *rec)
{
    *(bool *)opaque = ((const struct xapi_vdi_record *)rec)->read_only;
}

/* Under the caller's batch: the slot is free now and stays so until it ends. */
static bool
vbd_create_locked(struct call_ctx *ctx, const struct xapi_vbd_record *args, char **ref,
                  struct xerr **errp)
{
    bool vdi_ro = false;
    if (!db_exists(ctx->db, &xapi_class_vm, args->VM))
        return xerr_handle_invalid(errp, "VM", args->VM);
    if (!args->empty &&
        !db_with(ctx->db, &xapi_class_vdi, args->VDI, vdi_ro_peek, &vdi_ro, errp))
        return false;
    if (args->type == XAPI_VBD_TYPE_CD && args->mode != XAPI_VBD_MODE_RO)
        return xerr_vbd_cds_must_be_readonly(errp);
    if (args->type != XAPI_VBD_TYPE_CD && args->empty)
        return xerr_vbd_not_removable_media(errp, "in constructor");
    if (!args->empty && args->mode == XAPI_VBD_MODE_RW && vdi_ro)
        return xerr_vdi_readonly(errp, args->VDI);
    struct slots s = {.vm = args->VM};
    db_foreach(ctx->db, &xapi_class_vbd, slots_one, &s);
    char chosen[8];
    if (strcmp(args->userdevice, "autodetect") == 0) {
        int slot = 0;
        while (slot < VBD_SLOTS && s.used[slot])
            slot++;
        if (slot == VBD_SLOTS)
            return xerr_invalid_device(errp, args->userdevice);
        snprintf(chosen, sizeof(chosen), "%d", slot);
    } else {
        int slot = slot_of(args->userdevice);
        if (slot < 0)
            return xerr_invalid_device(errp, args->userdevice);
        if (s.used[slot])
            return xerr_device_already_exists(errp, args->userdevice);
        snprintf(chosen, sizeof(chosen), "%s", args->userdevice);
    }
    struct xapi_vbd_record *b = xrecord_copy(&xapi_class_vbd, args);
    if (!b || !xstr_set(&b->userdevice, chosen) || !xstr_set(&b->device, "") ||
        (b->empty && !xstr_set(&b->VDI, NULL_REF)) || !vbd_ops_set(b)) {
        xapi_vbd_record_free(b);
        return xerr_nomem(errp);
    }
    xtype_value_clear(&xapi_type_string_vbd_operations_map, &b->current_operations);
    b->currently_attached = false;
    return db_create(ctx->db, &xapi_class_vbd, NULL, b, ref, errp);
}

bool
storage_vbd_create(struct call_ctx *ctx, const struct xapi_vbd_record *args, char **ref,
                   struct xerr **errp)
{
    db_batch_begin(ctx->db);
    bool ok = vbd_create_locked(ctx, args, ref, errp);
    if (!db_batch_end(ctx->db, ok, errp)) {
        if (ok) {
            free(*ref);
            *ref = NULL;
        }
        return false;
    }
    return true;
}

bool
api_vbd_create(struct call_ctx *ctx, const struct xapi_vbd_record *args, char **result,
               struct xerr **errp)
{
    return storage_vbd_create(ctx, args, result, errp);
}

static void
vbd_attached_peek(void *opaque, const void *rec)
{
    *(bool *)opaque = ((const struct xapi_vbd_record *)rec)->currently_attached;
}

bool
api_vbd_destroy(struct call_ctx *ctx, const char *self, struct xerr **errp)
{
    bool attached = false;
    if (!db_with(ctx->db, &xapi_class_vbd, self, vbd_attached_peek, &attached, errp))
        return false;
    if (attached)
        return xerr_operation_not_allowed(errp, "VBD is currently attached");
    return db_destroy(ctx->db, &xapi_class_vbd, self, errp);
}

/* ------------------------------------------------------------------ CDs */

struct media {
    const char *vdi; /* NULL: eject */
};

static bool
media_apply(void *opaque, void *rec, struct xerr **errp)
{
    const struct media *m = opaque;
    struct xapi_vbd_record *b = rec;
    if (!xstr_set(&b->VDI, m->vdi ? m->vdi : NULL_REF))
        return xerr_nomem(errp);
    b->empty = m->vdi == NULL;
    return vbd_ops_set(b) || xerr_nomem(errp);
}

static void
vbd_peek(void *opaque, const void *rec)
{
    const struct xapi_vbd_record *b = rec;
    int *state = opaque;
    state[0] = b->type == XAPI_VBD_TYPE_CD;
    state[1] = b->empty;
}

bool
api_vbd_insert(struct call_ctx *ctx, const char *vbd, const char *vdi, struct xerr **errp)
{
    int state[2];
    if (!db_with(ctx->db, &xapi_class_vbd, vbd, vbd_peek, state, errp))
        return false;
    if (!state[0])
        return xerr_vbd_not_removable_media(errp, vbd);
    if (!state[1])
        return xerr_vbd_not_empty(errp, vbd);
    if (!db_exists(ctx->db, &xapi_class_vdi, vdi))
        return xerr_handle_invalid(errp, "VDI", vdi);
    struct media m = {vdi};
    return db_update(ctx->db, &xapi_class_vbd, vbd, media_apply, &m, errp);
}

bool
api_vbd_eject(struct call_ctx *ctx, const char *vbd, struct xerr **errp)
{
    int state[2];
    if (!db_with(ctx->db, &xapi_class_vbd, vbd, vbd_peek, state, errp))
        return false;
    if (!state[0])
        return xerr_vbd_not_removable_media(errp, vbd);
    if (state[1])
        return xerr_vbd_is_empty(errp, vbd);
    struct media m = {NULL};
    return db_update(ctx->db, &xapi_class_vbd, vbd, media_apply, &m, errp);
}

/* ------------------------------------------------------------------ hotplug */

/* One VBD hotplug at a time: the attached check and the change cannot race. */
static pthread_mutex_t hotplug_lock = PTHREAD_MUTEX_INITIALIZER;

struct hotplug {
    char vm[128];
    bool attached;
    bool cd;
};

static void
hotplug_peek(void *opaque, const void *rec)
{
    const struct xapi_vbd_record *b = rec;
    struct hotplug *h = opaque;
    snprintf(h->vm, sizeof(h->vm), "%s", b->VM);
    h->attached = b->currently_attached;
    h->cd = b->type == XAPI_VBD_TYPE_CD;
}

static bool
attached_apply(void *opaque, void *rec, struct xerr **errp)
{
    struct xapi_vbd_record *b = rec;
    b->currently_attached = *(const bool *)opaque;
    return vbd_ops_set(b) || xerr_nomem(errp);
}

/* A disk server for the VBD, then the disk in the guest. */
static bool
disk_plug(struct server *srv, const struct xapi_vm_record *vm, const char *self,
          struct xerr **errp)
{
    unsigned slot = 0;
    struct xenops_disk disk;
    if (!disk_servers_plug(srv, vm, self, &slot, &disk, errp))
        return false;
    int rc = xenops_disk_plug(domains_xenops(srv), vm->uuid, slot, &disk);
    free(disk.path);
    free(disk.export_name);
    if (rc == 0)
        return true;
    disk_servers_unplug(srv, vm->uuid, self);
    if (rc == -ENOTSUP)
        return xerr_operation_not_allowed(errp, "disk hotplug needs a guest on the pc machine");
    return xerr_internal(errp, "the device model refused the disk: %s", strerror(-rc));
}

/* The disk out of the guest (it must let go), then its server. */
static bool
disk_unplug(struct server *srv, const struct xapi_vm_record *vm, const char *self,
            struct xerr **errp)
{
    int slot = disk_servers_slot(srv, vm->uuid, self);
    int rc = slot < 0 ? 0 : xenops_disk_unplug(domains_xenops(srv), vm->uuid, (unsigned)slot,
                                                VBD_UNPLUG_TIMEOUT_MS);
    if (rc == -ETIMEDOUT)
        return xerr_device_detach_rejected(errp, "VBD", self,
                                           "the guest did not release the disk");
    if (rc == -ENOTSUP)
        return xerr_operation_not_allowed(errp, "disk hotplug needs a guest on the pc machine");
    if (rc < 0 && rc != -ENOENT)
        return xerr_internal(errp, "the device model did not remove the disk: %s",
                             strerror(-rc));
    disk_servers_unplug(srv, vm->uuid, self);
    return true;
}

static bool
vbd_hotplug(struct call_ctx *ctx, const char *self, bool plug, struct xerr **errp)
{
    struct hotplug h;
    struct xapi_vm_record *vm = NULL;
    if (!db_with(ctx->db, &xapi_class_vbd, self, hotplug_peek, &h, errp) ||
        !db_get(ctx->db, &xapi_class_vm, h.vm, (void **)&vm, errp))
        return false;
    bool ok;
    if (vm->power_state != XAPI_VM_POWER_STATE_RUNNING)
        ok = xerr_vm_bad_power_state(errp, h.vm, "running", vm_power_state_lower(vm->power_state));
    else if (plug && h.attached)
        ok = xerr_device_already_attached(errp, self);
    else if (!plug && !h.attached)
        ok = xerr_device_already_detached(errp, self);
    else if (h.cd)
        ok = xerr_operation_not_allowed(errp, "a CD drive is not hotplugged: use VBD.insert "
                                              "and VBD.eject");
    else {
        pthread_mutex_lock(&hotplug_lock);
        ok = plug ? disk_plug(ctx->srv, vm, self, errp) : disk_unplug(ctx->srv, vm, self, errp);
        ok = ok && db_update(ctx->db, &xapi_class_vbd, self, attached_apply, &plug, errp);
        pthread_mutex_unlock(&hotplug_lock);
    }
    xapi_vm_record_free(vm);
    return ok;
}

bool
api_vbd_plug(struct call_ctx *ctx, const char *self, struct xerr **errp)
{
    return vbd_hotplug(ctx, self, true, errp);
}

bool
api_vbd_unplug(struct call_ctx *ctx, const char *self, struct xerr **errp)
{
    return vbd_hotplug(ctx, self, false, errp);
}

/* ------------------------------------------------------------------ VM.get_allowed_VBD_devices */

/* The free disk slots of @vm, as xapi_vm.ml's get_allowed_VBD_devices lists
 * them (xapi offers 0..254; a VM here has VBD_SLOTS). Clients call it to add a
 * disk without choosing its position (Xen Orchestra, Ansible's
 * xenserver_guest on every run). */
bool
api_vm_get_allowed_VBD_devices(struct call_ctx *ctx, const char *vm,
                               struct xapi_string_set *result, struct xerr **errp)
{
    if (!db_exists(ctx->db, &xapi_class_vm, vm))
        return xerr_handle_invalid(errp, "VM", vm);
    struct slots s = {.vm = vm};
    db_foreach(ctx->db, &xapi_class_vbd, slots_one, &s);
    for (int i = 0; i < VBD_SLOTS; i++) {
        char n[8];
        snprintf(n, sizeof(n), "%d", i);
        if (!s.used[i] && xset_add_str((struct xset *)result, n) < 0)
            return xerr_nomem(errp);
    }
    return true;
}
