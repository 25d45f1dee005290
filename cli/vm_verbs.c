/* cli/vm_verbs.c - VM verbs beyond power: vm-snapshot, snapshot-revert,
 * vm-uninstall, vm-disk-add, vm-cd-insert, vm-cd-eject, vm-vif-list.
 *
 * vm-uninstall is xe's: the VM goes (hard-shut-down first if it runs) and so
 * do its disks, the VDIs of its Disk VBDs, unless another VM also has a VBD
 * on one (a shared disk is kept); CDs are never destroyed. Without --force
 * it lists what it will destroy and asks on a terminal, and refuses
 * otherwise. vm-disk-add creates a VDI and a VBD on the first free device
 * (plugged at once when the VM runs). The CD verbs work on the VM's CD
 * drives: insert into an empty one (none: VM_NO_EMPTY_CD_VBD), eject a full
 * one. API: xapi's ocaml/xapi/xapi_vm_lifecycle.ml and 2 (VBD, VDI).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cmds.h"
#include "client/xclient.h"
#include "xapi_client.h"
#include "xapi_errors.h"

/* ------------------------------------------------------------------ snapshots */

/* vm-snapshot and vm-checkpoint (xapi's vm_clone_aux): the VM selected, the
 * new snapshot's name and description, its uuid printed. */
static int
snapshot_like(struct cli_ctx *c, const struct cli_args *a, bool checkpoint, struct xerr **errp)
{
    static const char *const skip[] = {"new-name-label", "new-name-description", NULL};
    const char *name = cli_arg_get(a, "new-name-label");
    char *vm = NULL, *snap = NULL;
    struct xapi_ref_set none = {0};
    const struct xtype *t[3] = {&xapi_type_ref_VM, &xapi_type_string, &xapi_type_ref_VDI_set};
    const void *v[3] = {&vm, &name, &none};
    bool ok = cli_select_one_vm(c, a, "vm", skip, CLI_VM_PLAIN, &vm, errp) &&
              cli_async(c, checkpoint ? "VM.checkpoint" : "VM.snapshot", checkpoint ? 2 : 3, t,
                        v, checkpoint ? "Checkpointing" : "Snapshotting", &xapi_type_string,
                        &snap, errp);
    const char *desc = cli_arg_get(a, "new-name-description");
    if (ok && desc)
        ok = xc_vm_set_name_description(c->xc, snap, desc, errp);
    if (ok)
        cli_print_uuid_of(c, "VM", snap);
    free(vm);
    free(snap);
    return ok ? 0 : 1;
}

int
cli_cmd_vm_snapshot(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    return snapshot_like(c, a, false, errp);
}

int
cli_cmd_vm_checkpoint(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    return snapshot_like(c, a, true, errp);
}

int
cli_cmd_snapshot_revert(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    const char *key = cli_arg_get(a, "snapshot-uuid") ? "snapshot-uuid" : "uuid";
    if (!cli_arg_get(a, key))
        return cli_err_required(errp, "snapshot-uuid"), 1;
    char *snap = NULL;
    const struct xtype *t = &xapi_type_ref_VM;
    const void *v = &snap;
    bool ok = cli_ref_arg(c, a, key, "VM", &snap, errp) &&
              cli_async(c, "VM.revert", 1, &t, &v, "Reverting", NULL, NULL, errp);
    free(snap);
    return ok ? 0 : 1;
}

/* ------------------------------------------------------------------ vm-uninstall */

/* Whether a VBD of another VM than @vm uses @vdi. */
static bool
vdi_shared(struct cli_ctx *c, const char *vm, const char *vdi, bool *shared, struct xerr **errp)
{
    struct xapi_ref_set vbds = {0};
    if (!xc_vdi_get_vbds(c->xc, vdi, &vbds, errp))
        return false;
    bool ok = true;
    *shared = false;
    for (size_t i = 0; ok && i < vbds.n && !*shared; i++) {
        char *owner = NULL;
        ok = xc_vbd_get_vm(c->xc, vbds.items[i], &owner, errp);
        *shared = ok && strcmp(owner, vm) != 0;
        free(owner);
    }
    xtype_value_clear(&xapi_type_string_set, &vbds);
    return ok;
}

/* Adds to @vdis the disks of @vm that uninstall destroys. */
static bool
own_disks(struct cli_ctx *c, const char *vm, struct xset *vdis, struct xerr **errp)
{
    struct xapi_ref_set vbds = {0};
    if (!xc_vm_get_vbds(c->xc, vm, &vbds, errp))
        return false;
    bool ok = true;
    for (size_t i = 0; ok && i < vbds.n; i++) {
        struct xapi_vbd_record *r = NULL;
        bool shared = false;
        if (!(ok = xc_vbd_get_record(c->xc, vbds.items[i], &r, errp)))
            break;
        if (r->type != XAPI_VBD_TYPE_CD && !r->empty && strcmp(r->VDI, "OpaqueRef:NULL") != 0 &&
            (ok = vdi_shared(c, vm, r->VDI, &shared, errp)) && !shared &&
            xset_add_str(vdis, r->VDI) < 0)
            ok = xerr_nomem(errp);
        xapi_vbd_record_free(r);
    }
    xtype_value_clear(&xapi_type_string_set, &vbds);
    return ok;
}

/* Lists what goes and asks; false (with the error set) unless "yes". */
static bool
confirm(struct cli_ctx *c, const struct xset *vms, const struct xset *vdis, struct xerr **errp)
{
    if (!isatty(STDIN_FILENO))
        return cli_err_syntax(errp, "This operation destroys VMs and their disks: use --force "
                                    "(or force=true) when not on a terminal");
    fprintf(c->out, "The following items are about to be destroyed\n");
    for (size_t i = 0; i < vms->n; i++)
        fprintf(c->out, "VM : %s\n", cli_ref_uuid(c, "VM", ((char **)vms->items)[i]));
    for (size_t i = 0; i < vdis->n; i++)
        fprintf(c->out, "VDI: %s\n", cli_ref_uuid(c, "VDI", ((char **)vdis->items)[i]));
    fprintf(c->out, "Type 'yes' to continue\n");
    fflush(c->out);
    char line[32] = "";
    if (!fgets(line, sizeof(line), stdin) || strcmp(line, "yes\n") != 0)
        return cli_err_syntax(errp, "Aborted");
    return true;
}

static bool
uninstall_one(struct cli_ctx *c, const char *vm, struct xerr **errp)
{
    enum xapi_vm_power_state ps;
    if (!xc_vm_get_power_state(c->xc, vm, &ps, errp))
        return false;
    if (ps != XAPI_VM_POWER_STATE_HALTED && !xc_vm_hard_shutdown(c->xc, vm, errp))
        return false;
    return xc_vm_destroy(c->xc, vm, errp);
}

int
cli_cmd_vm_uninstall(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    static const char *const skip[] = {"force", NULL};
    bool force;
    if (cli_arg_force(a, &force) < 0)
        return cli_err_syntax(errp, "Syntax error: force=%s is not a boolean (true or false)",
                              cli_arg_get(a, "force")),
               1;
    struct xset vms = {0}, vdis = {0};
    bool ok = cli_select_vms(c, a, "vm", skip, CLI_VM_PLAIN, &vms, errp);
    for (size_t i = 0; ok && i < vms.n; i++)
        ok = own_disks(c, ((char **)vms.items)[i], &vdis, errp);
    if (ok && !force)
        ok = confirm(c, &vms, &vdis, errp);
    for (size_t i = 0; ok && i < vms.n; i++)
        ok = uninstall_one(c, ((char **)vms.items)[i], errp);
    for (size_t i = 0; ok && i < vdis.n; i++)
        ok = xc_vdi_destroy(c->xc, ((char **)vdis.items)[i], errp);
    xtype_value_clear(&xapi_type_string_set, &vms);
    xtype_value_clear(&xapi_type_string_set, &vdis);
    return ok ? 0 : 1;
}

/* ------------------------------------------------------------------ disks and CDs */

/* The lowest userdevice number no VBD of @vm uses, as text. */
static bool
free_device(struct cli_ctx *c, const char *vm, char *dev, size_t len, struct xerr **errp)
{
    struct xapi_ref_set vbds = {0};
    if (!xc_vm_get_vbds(c->xc, vm, &vbds, errp))
        return false;
    unsigned long used = 0; /* bit i: device i taken (0..63) */
    bool ok = true;
    for (size_t i = 0; ok && i < vbds.n; i++) {
        char *ud = NULL;
        if ((ok = xc_vbd_get_userdevice(c->xc, vbds.items[i], &ud, errp))) {
            char *end;
            unsigned long d = strtoul(ud, &end, 10);
            if (*ud && !*end && d < 64)
                used |= 1UL << d;
        }
        free(ud);
    }
    xtype_value_clear(&xapi_type_string_set, &vbds);
    unsigned d = 0;
    while (d < 64 && (used & (1UL << d)))
        d++;
    snprintf(dev, len, "%u", d);
    return ok;
}

/* A new VDI of @size bytes in @sr, named @name; *vdi its ref. */
static bool
make_vdi(struct cli_ctx *c, const char *sr, const char *name, int64_t size, char **vdi,
         struct xerr **errp)
{
    struct xapi_vdi_record *r = xrecord_new(&xapi_class_vdi);
    if (!r)
        return xerr_nomem(errp);
    free(r->SR);
    free(r->name_label);
    r->SR = strdup(sr);
    r->name_label = strdup(name);
    r->virtual_size = size;
    r->type = XAPI_VDI_TYPE_USER;
    bool ok = r->SR && r->name_label ? xc_vdi_create(c->xc, r, vdi, errp) : xerr_nomem(errp);
    xapi_vdi_record_free(r);
    return ok;
}

/* A new Disk VBD of @vm on @vdi at @device, RW. */
static bool
make_disk_vbd(struct cli_ctx *c, const char *vm, const char *vdi, const char *device,
              bool bootable, char **vbd, struct xerr **errp)
{
    struct xapi_vbd_record *r = xrecord_new(&xapi_class_vbd);
    if (!r)
        return xerr_nomem(errp);
    free(r->VM);
    free(r->VDI);
    free(r->userdevice);
    r->VM = strdup(vm);
    r->VDI = strdup(vdi);
    r->userdevice = strdup(device);
    r->bootable = bootable;
    r->mode = XAPI_VBD_MODE_RW;
    r->type = XAPI_VBD_TYPE_DISK;
    r->unpluggable = true;
    bool ok = r->VM && r->VDI && r->userdevice ? xc_vbd_create(c->xc, r, vbd, errp)
                                               : xerr_nomem(errp);
    xapi_vbd_record_free(r);
    return ok;
}

int
cli_cmd_vm_disk_add(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    static const char *const skip[] = {"disk-size", "sr-uuid", "device", NULL};
    int64_t size;
    if (cli_parse_size(cli_arg_get(a, "disk-size"), &size) < 0)
        return cli_err_syntax(errp, "Syntax error: disk-size=%s is not a size (bytes, or with "
                                    "a unit: 512MiB, 10GiB)",
                              cli_arg_get(a, "disk-size")),
               1;
    char *vm = NULL, *sr = NULL, *vdi = NULL, *vbd = NULL;
    char dev[16];
    const char *device = cli_arg_get(a, "device");
    bool given;
    enum xapi_vm_power_state ps = XAPI_VM_POWER_STATE_HALTED;
    bool ok = cli_select_one_vm(c, a, "vm", skip, CLI_VM_PLAIN, &vm, errp) &&
              cli_sr_arg(c, a, true, &sr, &given, errp) &&
              (device || free_device(c, vm, dev, sizeof(dev), errp));
    char name[64] = "";
    if (ok) {
        device = device ? device : dev;
        snprintf(name, sizeof(name), "disk %s", device);
        ok = make_vdi(c, sr, name, size, &vdi, errp);
    }
    if (ok && !make_disk_vbd(c, vm, vdi, device, false, &vbd, errp)) {
        struct xerr *ignored = NULL; /* rollback: the VDI made for it */
        if (!xc_vdi_destroy(c->xc, vdi, &ignored))
            xerr_free(ignored);
        ok = false;
    }
    if (ok && xc_vm_get_power_state(c->xc, vm, &ps, errp) && ps == XAPI_VM_POWER_STATE_RUNNING)
        ok = xc_vbd_plug(c->xc, vbd, errp);
    if (ok)
        cli_print_uuid_of(c, "VDI", vdi);
    free(vm);
    free(sr);
    free(vdi);
    free(vbd);
    return ok ? 0 : 1;
}

/* The first CD VBD of @vm that is empty (@empty) or full (!@empty); NULL
 * in *vbd when there is none. */
static bool
find_cd(struct cli_ctx *c, const char *vm, bool empty, char **vbd, struct xerr **errp)
{
    struct xapi_ref_set vbds = {0};
    if (!xc_vm_get_vbds(c->xc, vm, &vbds, errp))
        return false;
    bool ok = true;
    *vbd = NULL;
    for (size_t i = 0; ok && i < vbds.n && !*vbd; i++) {
        struct xapi_vbd_record *r = NULL;
        if ((ok = xc_vbd_get_record(c->xc, vbds.items[i], &r, errp)) &&
            r->type == XAPI_VBD_TYPE_CD && r->empty == empty &&
            !(*vbd = strdup(vbds.items[i])))
            ok = xerr_nomem(errp);
        xapi_vbd_record_free(r);
    }
    xtype_value_clear(&xapi_type_string_set, &vbds);
    return ok;
}

/* The first VDI named @name (the CD to insert). */
static bool
cd_by_name(struct cli_ctx *c, const char *name, char **vdi, struct xerr **errp)
{
    struct xapi_ref_set vdis = {0};
    if (!xc_vdi_get_by_name_label(c->xc, name, &vdis, errp))
        return false;
    bool ok = vdis.n > 0 ? (*vdi = strdup(vdis.items[0])) != NULL || xerr_nomem(errp)
                         : cli_err_syntax(errp, "Error: No matching CDs found (cd-name=%s)", name);
    xtype_value_clear(&xapi_type_string_set, &vdis);
    return ok;
}

int
cli_cmd_vm_cd_insert(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    static const char *const skip[] = {"cd-name", NULL};
    char *vm = NULL, *vbd = NULL, *vdi = NULL;
    bool ok = cli_select_one_vm(c, a, "vm", skip, CLI_VM_PLAIN, &vm, errp) &&
              cd_by_name(c, cli_arg_get(a, "cd-name"), &vdi, errp) &&
              find_cd(c, vm, true, &vbd, errp);
    if (ok && !vbd)
        ok = xerr_vm_no_empty_cd_vbd(errp, vm);
    if (ok)
        ok = xc_vbd_insert(c->xc, vbd, vdi, errp);
    free(vm);
    free(vbd);
    free(vdi);
    return ok ? 0 : 1;
}

int
cli_cmd_vm_cd_eject(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    static const char *const skip[] = {NULL};
    char *vm = NULL, *vbd = NULL;
    bool ok = cli_select_one_vm(c, a, "vm", skip, CLI_VM_PLAIN, &vm, errp) &&
              find_cd(c, vm, false, &vbd, errp);
    if (ok && !vbd)
        ok = cli_err_syntax(errp, "Error: No CDs found: the VM's CD drives are empty");
    if (ok)
        ok = xc_vbd_eject(c->xc, vbd, errp);
    free(vm);
    free(vbd);
    return ok ? 0 : 1;
}

/* vif-list restricted to the VM: the VIF list filtered on VM=<its uuid>. */
int
cli_cmd_vm_vif_list(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    static const char *const skip[] = {"params", NULL};
    char *vm = NULL;
    if (!cli_select_one_vm(c, a, "vm", skip, CLI_VM_ANY, &vm, errp))
        return 1;
    const char *uuid = cli_ref_uuid(c, "VM", vm);
    struct cli_arg v[2] = {{.key = "VM", .value = (char *)(uuid ? uuid : "")}};
    struct cli_args la = {.command = a->command, .v = v, .n = 1, .minimal = a->minimal};
    const char *params = cli_arg_get(a, "params");
    if (params)
        v[la.n++] = (struct cli_arg){.key = "params", .value = (char *)params};
    bool ok = cli_cmd_list(c, &xapi_class_vif, &la, NULL, NULL, errp);
    free(vm);
    return ok ? 0 : 1;
}
