/* cli/commands.c - xe's hand-written commands: the table, help, VM views,
 * vm-clone/copy/install, tasks, event-wait.
 *
 * Commands other than the generic <class>-<verb> ones (generic.c) are the
 * views and verbs xe users expect (xapi's ocaml/xapi-cli-server/cli_frontend.ml and records.ml): vm-list hides
 * templates and snapshots, template-list and snapshot-list show them;
 * vm-clone, vm-copy and vm-install run as Async calls with progress;
 * event-wait blocks on event.from until a record matches. The other verbs
 * live by subject (cli.h lists the files) and are listed in the table here.
 * cli_dispatch checks the table's required parameters before a command
 * runs, so a missing one is reported without a server.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/cmds.h"
#include "client/xclient.h"
#include "xapi_client.h"

/* ------------------------------------------------------------------ VM views */

static int
cmd_vm_list(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    static const char *const extra[] = {"is-a-template=false", "is-a-snapshot=false", NULL};
    return cli_cmd_list(c, &xapi_class_vm, a, extra, NULL, errp) ? 0 : 1;
}

static int
cmd_template_list(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    static const char *const extra[] = {"is-a-template=true", NULL};
    return cli_cmd_list(c, &xapi_class_vm, a, extra, "uuid,name-label,name-description", errp)
               ? 0
               : 1;
}

static int
cmd_snapshot_list(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    static const char *const extra[] = {"is-a-snapshot=true", NULL};
    return cli_cmd_list(c, &xapi_class_vm, a, extra, "uuid,name-label,name-description", errp)
               ? 0
               : 1;
}

/* ------------------------------------------------------------------ VM verbs */

/* VM.clone, or VM.copy into @sr (NULL ref: each disk within its own SR). */
static bool
clone_or_copy(struct cli_ctx *c, const char *vm, const char *name, bool copy, const char *sr,
              char **new_vm, struct xerr **errp)
{
    const struct xtype *t[3] = {&xapi_type_ref_VM, &xapi_type_string, &xapi_type_ref_SR};
    const void *v[3] = {&vm, &name, &sr};
    return cli_async(c, copy ? "VM.copy" : "VM.clone", copy ? 3 : 2, t, v,
                     copy ? "Copying" : "Cloning", &xapi_type_string, new_vm, errp);
}

static int
cmd_vm_clone_copy(struct cli_ctx *c, const struct cli_args *a, bool copy, struct xerr **errp)
{
    static const char *const skip[] = {"new-name-label", "new-name-description", "sr-uuid", NULL};
    const char *name = cli_arg_get(a, "new-name-label");
    const char *sr_uuid = cli_arg_get(a, "sr-uuid");
    char *vm = NULL, *sr = NULL, *new_vm = NULL;
    bool ok = cli_select_one_vm(c, a, "vm", skip, CLI_VM_ANY, &vm, errp);
    if (ok)
        ok = sr_uuid ? cli_uuid_ref(c, "SR", sr_uuid, &sr, errp)
                     : (sr = strdup("OpaqueRef:NULL")) != NULL || xerr_nomem(errp);
    ok = ok && clone_or_copy(c, vm, name, copy, sr, &new_vm, errp);
    const char *desc = cli_arg_get(a, "new-name-description");
    if (ok && desc)
        ok = xc_vm_set_name_description(c->xc, new_vm, desc, errp);
    if (ok)
        cli_print_uuid_of(c, "VM", new_vm);
    free(vm);
    free(sr);
    free(new_vm);
    return ok ? 0 : 1;
}

static int
cmd_vm_clone(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    return cmd_vm_clone_copy(c, a, false, errp);
}

static int
cmd_vm_copy(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    return cmd_vm_clone_copy(c, a, true, errp);
}

/* @xml with the value of every sr="..." attribute replaced by @uuid. */
static char *
disks_with_sr(const char *xml, const char *uuid)
{
    struct strbuf sb = STRBUF_INIT;
    const char *p = xml, *hit;
    while ((hit = strstr(p, "sr=\"")) != NULL) {
        /* only the attribute named sr, not e.g. "usr=" */
        bool attr = hit == xml || hit[-1] == ' ' || hit[-1] == '\t' || hit[-1] == '\n';
        const char *val = hit + 4, *close = strchr(val, '"');
        if (!close)
            break;
        strbuf_append(&sb, p, (size_t)(val - p));
        strbuf_puts(&sb, attr ? uuid : "");
        if (!attr)
            strbuf_append(&sb, val, (size_t)(close - val));
        p = close;
    }
    strbuf_puts(&sb, p);
    return strbuf_steal(&sb, NULL);
}

/* Points the disks of the template's other-config:disks at @sr (xapi's ocaml/idl/datamodel*.ml
 * 3.5); a VM without the key is left alone. */
static bool
rewrite_disks_sr(struct cli_ctx *c, const char *vm, const char *sr, struct xerr **errp)
{
    struct xapi_string_string_map oc = {0};
    if (!xc_vm_get_other_config(c->xc, vm, &oc, errp))
        return false;
    const char *disks = NULL;
    for (size_t i = 0; i < oc.n; i++)
        if (strcmp(oc.keys[i], "disks") == 0)
            disks = oc.values[i];
    const char *uuid = disks ? cli_ref_uuid(c, "SR", sr) : NULL;
    bool ok = true;
    if (disks && !uuid)
        ok = cli_err_syntax(errp, "Error: the SR for the disks is not in the database");
    if (ok && disks) {
        char *xml = disks_with_sr(disks, uuid);
        ok = xml ? xc_vm_remove_from_other_config(c->xc, vm, "disks", errp) &&
                       xc_vm_add_to_other_config(c->xc, vm, "disks", xml, errp)
                 : xerr_nomem(errp);
        free(xml);
    }
    xtype_value_clear(&xapi_type_string_string_map, &oc);
    return ok;
}

/* vm-install (xapi's ocaml/xapi/xapi_vm_clone.ml): clone the template (copy into the SR when one is
 * named), point the disks of other-config:disks at the chosen SR (the pool's
 * default without sr-uuid=/sr-name-label=), then VM.provision, which creates
 * the disks and makes the clone a VM. A failed provision destroys the clone. */
static int
cmd_vm_install(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    static const char *const skip[] = {"new-name-label", "new-name-description", "sr-uuid",
                                       "sr-name-label", NULL};
    const char *name = cli_arg_get(a, "new-name-label");
    const char *sel = cli_arg_get(a, "template")        ? "template"
                      : cli_arg_get(a, "template-uuid") ? "template-uuid"
                      : cli_arg_get(a, "template-name") ? "template-name"
                                                        : NULL;
    if (!sel)
        return cli_err_required(errp, "template"), 1;
    char *tmpl = NULL, *sr = NULL, *new_vm = NULL;
    bool given = false;
    bool ok = cli_select_one_vm(c, a, sel, skip, CLI_VM_TEMPLATE, &tmpl, errp) &&
              cli_sr_arg(c, a, false, &sr, &given, errp) &&
              clone_or_copy(c, tmpl, name, given, sr, &new_vm, errp);
    const char *desc = cli_arg_get(a, "new-name-description");
    bool made = ok;
    if (ok && desc)
        ok = xc_vm_set_name_description(c->xc, new_vm, desc, errp);
    if (ok && strcmp(sr, "OpaqueRef:NULL") != 0)
        ok = xc_vm_set_suspend_sr(c->xc, new_vm, sr, errp) && rewrite_disks_sr(c, new_vm, sr, errp);
    if (ok) {
        const struct xtype *t = &xapi_type_ref_VM;
        const void *v = &new_vm;
        ok = cli_async(c, "VM.provision", 1, &t, &v, "Provisioning", NULL, NULL, errp);
    }
    if (ok) {
        cli_print_uuid_of(c, "VM", new_vm);
    } else if (made) {
        /* rollback: the half-made VM goes (the provisioner removed its disks) */
        struct xerr *ignored = NULL;
        if (!xc_vm_destroy(c->xc, new_vm, &ignored))
            xerr_free(ignored);
    }
    free(tmpl);
    free(sr);
    free(new_vm);
    return ok ? 0 : 1;
}

/* ------------------------------------------------------------------ tasks, users */

static int
cmd_task_cancel(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    char *ref = NULL;
    bool ok = cli_ref_from_uuid_arg(c, &xapi_class_task, a, &ref, errp) &&
              xc_task_cancel(c->xc, ref, errp);
    free(ref);
    return ok ? 0 : 1;
}

static int
cmd_user_password_change(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    const char *old = cli_arg_get(a, "old");
    const char *new_pw = cli_arg_get(a, "new");
    if (!new_pw)
        return cli_err_required(errp, "new"), 1;
    return xc_session_change_password(c->xc, old ? old : "", new_pw, errp) ? 0 : 1;
}

/* ------------------------------------------------------------------ event-wait */

/* Whether @rec meets every condition (field=value, field=/=value). */
static bool
conditions_hold(struct cli_ctx *c, const struct xclass *cls, const void *rec,
                const struct cli_args *a, struct xerr **errp)
{
    for (size_t i = 0; i < a->n; i++) {
        struct cli_arg arg = a->v[i];
        if (!arg.value || strcmp(arg.key, "class") == 0 || strcmp(arg.key, "timeout") == 0)
            continue;
        bool negate = strncmp(arg.value, "/=", 2) == 0;
        if (negate)
            arg.value += 2;
        struct cli_args one = {.v = &arg, .n = 1};
        struct xerr *e = NULL;
        bool m = cli_record_matches(c, cls, rec, &one, NULL, &e);
        if (e)
            return xerr_propagate(errp, &e);
        if (m == negate)
            return false;
    }
    return true;
}

/* Checks the events of one event.from batch; *@token becomes the next token. */
static bool
scan_batch(struct cli_ctx *c, const struct xclass *cls, const struct cli_args *a,
           const struct xval *batch, char **token, bool *found, struct xerr **errp)
{
    const struct xval *evs = batch->kind == XVAL_STRUCT ? xval_struct_get(batch, "events") : NULL;
    const struct xval *tok = batch->kind == XVAL_STRUCT ? xval_struct_get(batch, "token") : NULL;
    if (!evs || evs->kind != XVAL_ARRAY || !tok || tok->kind != XVAL_STRING)
        return xerr_internal(errp, "xe: unexpected event.from reply");
    for (size_t i = 0; i < evs->arr.n && !*found; i++) {
        const struct xval *ev = evs->arr.items[i];
        const struct xval *op = xval_struct_get(ev, "operation");
        const struct xval *snap = xval_struct_get(ev, "snapshot");
        if (!snap || snap->kind != XVAL_STRUCT || (op && op->kind == XVAL_STRING &&
                                                   strcmp(op->str.s, "del") == 0))
            continue;
        void *rec = xrecord_new(cls);
        if (!rec)
            return xerr_nomem(errp);
        struct xerr *e = NULL;
        if (xrecord_decode(cls, snap, rec, true, false, &e))
            *found = conditions_hold(c, cls, rec, a, &e);
        xrecord_free(cls, rec);
        if (e)
            return xerr_propagate(errp, &e);
    }
    free(*token);
    *token = strdup(tok->str.s);
    return *token ? true : xerr_nomem(errp);
}

static int
cmd_event_wait(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    const char *cname = cli_arg_get(a, "class");
    if (!cname)
        return cli_err_required(errp, "class"), 1;
    const struct xclass *cls = cli_class_by_cli_name(cname);
    if (!cls || !cls->events)
        return cli_err_syntax(errp, "Unknown class '%s'", cname), 1;
    const char *timeout_s = cli_arg_get(a, "timeout");
    double timeout = timeout_s ? atof(timeout_s) : 0;
    time_t end = timeout > 0 ? time(NULL) + (time_t)timeout + 1 : 0;
    char *token = strdup("");
    bool found = false, ok = token != NULL;
    while (ok && !found) {
        struct xval *classes = xval_new_array(), *tokv = xval_new_string(token),
                    *to = xval_new_double(30.0), *batch = NULL;
        if (classes)
            xval_array_append(classes, xval_new_string(cls->name));
        const struct xval *args[3] = {classes, tokv, to};
        if (!classes || !tokv || !to)
            ok = xerr_nomem(errp);
        else
            ok = xclient_call_xval(c->xc, "event.from", true, args, 3, &batch, errp) &&
                 scan_batch(c, cls, a, batch, &token, &found, errp);
        xval_free(classes);
        xval_free(tokv);
        xval_free(to);
        xval_free(batch);
        if (ok && !found && end && time(NULL) >= end)
            ok = cli_err_syntax(errp, "Timed out waiting for the event");
    }
    free(token);
    return ok ? 0 : 1;
}

/* ------------------------------------------------------------------ table */

static int cmd_help(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp);

const struct cli_cmd cli_commands[] = {
    {"help", cmd_help, "", "--all,--minimal", "Print help: the commands, or one command's."},
    /* VM views */
    {"vm-list", cmd_vm_list, "", "params,--minimal,<field filters>",
     "List the VMs (the control domain included; templates and snapshots are hidden)."},
    {"template-list", cmd_template_list, "", "params,--minimal,<field filters>",
     "List the templates."},
    {"snapshot-list", cmd_snapshot_list, "", "params,--minimal,<field filters>",
     "List the VM snapshots."},
    {"vm-disk-list", cli_cmd_vm_disk_list, "", "vm,vbd-params,vdi-params,<vm filters>",
     "The VM's disks: each VBD's record then its VDI's (vbd-params=, vdi-params= choose the "
     "columns)."},
    {"vm-cd-list", cli_cmd_vm_cd_list, "", "vm,vbd-params,vdi-params,<vm filters>",
     "The VM's CD drives: each VBD's record then its CD's VDI (none when empty)."},
    {"vm-export", cli_cmd_vm_export, "filename",
     "vm,compress,metadata,include-snapshots,preserve-power-state,<vm filters>",
     "Export a VM to an XVA file (compress=true|gzip|zstd; metadata=true: ova.xml alone)."},
    {"snapshot-export-to-template", cli_cmd_snapshot_export_to_template,
     "filename,snapshot-uuid", "compress,metadata,preserve-power-state,excluded-device-types",
     "Export a snapshot to an XVA file, which imports as a VM."},
    {"vm-import", cli_cmd_vm_import, "",
     "filename,url,sr-uuid,sr-name-label,preserve,force,metadata",
     "Import a VM from an XVA file (or one the server downloads from url=) into the SR (the "
     "pool's default without one); preserve=true keeps uuid and MACs; prints the new VM's "
     "uuid."},
    {"vdi-export", cli_cmd_vdi_export, "uuid,filename", "format,base,progress,--progress",
     "Write a VDI's content to a file (format=raw or vhd)."},
    {"vdi-import", cli_cmd_vdi_import, "uuid,filename", "format,progress,--progress",
     "Write a file (format=raw or vhd) over a VDI's content."},
    {"vm-vif-list", cli_cmd_vm_vif_list, "", "vm,params,--minimal,<vm filters>",
     "List the VIFs of a VM."},
    /* VM power */
    {"vm-start", cli_cmd_vm_start, "", "vm,on,paused,force,--force,--multiple,<vm filters>",
     "Start the selected VMs (on=<host> picks the host; paused=true leaves them paused)."},
    {"vm-shutdown", cli_cmd_vm_shutdown, "", "vm,force,--force,--multiple,<vm filters>",
     "Shut down the selected VMs: cleanly, or at once with --force (force=true)."},
    {"vm-reboot", cli_cmd_vm_reboot, "", "vm,force,--force,--multiple,<vm filters>",
     "Reboot the selected VMs: cleanly, or at once with --force (force=true)."},
    {"vm-suspend", cli_cmd_vm_suspend, "", "vm,--multiple,<vm filters>",
     "Suspend the selected running VMs to disk."},
    {"vm-resume", cli_cmd_vm_resume, "", "vm,on,paused,force,--force,--multiple,<vm filters>",
     "Resume the selected suspended VMs (on=<host> picks the host)."},
    {"vm-pause", cli_cmd_vm_pause, "", "vm,--multiple,<vm filters>",
     "Pause the selected running VMs."},
    {"vm-unpause", cli_cmd_vm_unpause, "", "vm,--multiple,<vm filters>",
     "Unpause the selected paused VMs."},
    {"vm-migrate", cli_cmd_vm_migrate, "", "vm,host,host-uuid,host-name,live,force,copy,"
     "compress,--live,--force,--multiple,<vm filters>",
     "Migrate the selected running VMs live to another host of the pool (host= its name or "
     "uuid)."},
    {"vm-reset-powerstate", cli_cmd_vm_reset_powerstate, "", "vm,force,--force,--multiple,"
     "<vm filters>",
     "Mark the selected VMs halted without touching a domain (after a host died); needs "
     "--force."},
    /* VM lifecycle */
    {"vm-install", cmd_vm_install, "new-name-label",
     "template,template-uuid,template-name,new-name-description,sr-uuid,sr-name-label",
     "Install a new VM from a template: clone it (copy into the SR when one is named), point "
     "its disks at the SR (the pool's default without one), provision them; prints its uuid."},
    {"vm-clone", cmd_vm_clone, "new-name-label", "vm,new-name-description,<vm filters>",
     "Clone a halted VM (fast copy of its disks); prints the new VM's uuid."},
    {"vm-copy", cmd_vm_copy, "new-name-label", "vm,new-name-description,sr-uuid,<vm filters>",
     "Copy a halted VM (full copy of its disks, into sr-uuid= if given)."},
    {"vm-snapshot", cli_cmd_vm_snapshot, "new-name-label",
     "vm,new-name-description,<vm filters>", "Snapshot a VM; prints the snapshot's uuid."},
    {"vm-checkpoint", cli_cmd_vm_checkpoint, "new-name-label",
     "vm,new-name-description,<vm filters>",
     "Checkpoint a VM: a snapshot of its disks and, running, of its memory; prints its uuid."},
    {"snapshot-revert", cli_cmd_snapshot_revert, "", "snapshot-uuid,uuid",
     "Revert a VM to a snapshot (the VM is halted first)."},
    {"vm-uninstall", cli_cmd_vm_uninstall, "", "vm,force,--force,--multiple,<vm filters>",
     "Destroy the selected VMs and their disks (disks another VM uses are kept); asks first "
     "unless --force."},
    {"vm-disk-add", cli_cmd_vm_disk_add, "disk-size", "vm,sr-uuid,sr-name-label,device,"
     "<vm filters>",
     "Add a new disk (VDI and VBD) to a VM on the first free device; prints the VDI's uuid."},
    {"vm-cd-insert", cli_cmd_vm_cd_insert, "cd-name", "vm,<vm filters>",
     "Insert the CD named cd-name into the VM's empty CD drive."},
    {"vm-cd-eject", cli_cmd_vm_cd_eject, "", "vm,<vm filters>",
     "Eject the CD in the VM's CD drive."},
    /* storage */
    {"vdi-create", cli_cmd_vdi_create, "sr-uuid,name-label,virtual-size",
     "type,name-description,sharable,read-only",
     "Create a VDI (virtual-size in bytes or with a unit: 10GiB); prints its uuid."},
    {"vdi-destroy", cli_cmd_vdi_destroy, "uuid", "", "Destroy a VDI and its data."},
    {"vdi-forget", cli_cmd_vdi_forget, "uuid", "", "Forget a VDI, keeping its data."},
    {"vdi-snapshot", cli_cmd_vdi_snapshot, "uuid", "new-name-label",
     "Snapshot a VDI; prints the snapshot's uuid."},
    {"vdi-clone", cli_cmd_vdi_clone, "uuid", "new-name-label",
     "Clone a VDI (copy-on-write); prints the clone's uuid."},
    {"vdi-copy", cli_cmd_vdi_copy, "uuid,sr-uuid", "",
     "Copy a VDI into an SR (a full copy, with progress); prints the copy's uuid."},
    {"vdi-resize", cli_cmd_vdi_resize, "uuid,disk-size", "",
     "Grow a VDI to disk-size (bytes or with a unit)."},
    {"vdi-enable-cbt", cli_cmd_vdi_enable_cbt, "uuid", "",
     "Enable changed block tracking on a VDI."},
    {"vdi-disable-cbt", cli_cmd_vdi_disable_cbt, "uuid", "",
     "Disable changed block tracking on a VDI."},
    {"vdi-data-destroy", cli_cmd_vdi_data_destroy, "uuid", "",
     "Delete the data of the VDI, but keep its changed block tracking metadata."},
    {"vdi-list-changed-blocks", cli_cmd_vdi_list_changed_blocks, "vdi-from-uuid,vdi-to-uuid", "",
     "Write the changed blocks between the two given VDIs to the standard output as a "
     "base64-encoded bitmap string."},
    {"vbd-create", cli_cmd_vbd_create, "vm-uuid,device", "vdi-uuid,bootable,type,mode,unpluggable",
     "Create a VBD: a disk (type=Disk, vdi-uuid=) or a CD drive (type=CD, empty without "
     "vdi-uuid=); prints its uuid."},
    {"vbd-plug", cli_cmd_vbd_plug, "uuid", "", "Hot-plug a VBD into its running VM."},
    {"vbd-unplug", cli_cmd_vbd_unplug, "uuid", "", "Hot-unplug a VBD from its running VM."},
    {"vbd-destroy", cli_cmd_vbd_destroy, "uuid", "", "Destroy a VBD (not its VDI)."},
    {"sr-create", cli_cmd_sr_create, "name-label,type",
     "device-config:,host-uuid,shared,physical-size,content-type,name-description",
     "Create an SR (type=ext or file with device-config:path=<dir>); prints its uuid."},
    {"sr-scan", cli_cmd_sr_scan, "uuid", "", "Rescan an SR for VDIs and sizes."},
    {"sr-destroy", cli_cmd_sr_destroy, "uuid", "", "Destroy an SR and everything in it."},
    {"sr-forget", cli_cmd_sr_forget, "uuid", "", "Forget an SR, keeping its data."},
    {"pbd-plug", cli_cmd_pbd_plug, "uuid", "", "Attach an SR to its host."},
    {"pbd-unplug", cli_cmd_pbd_unplug, "uuid", "", "Detach an SR from its host."},
    /* network */
    {"network-create", cli_cmd_network_create, "name-label", "name-description,MTU,bridge",
     "Create a network (a bridge on each host); prints its uuid."},
    {"network-destroy", cli_cmd_network_destroy, "uuid", "", "Destroy a network."},
    {"vif-create", cli_cmd_vif_create, "vm-uuid,network-uuid,device", "mac,MTU",
     "Create a VIF (a MAC is generated without mac=); prints its uuid."},
    {"vif-plug", cli_cmd_vif_plug, "uuid", "", "Hot-plug a VIF into its running VM."},
    {"vif-unplug", cli_cmd_vif_unplug, "uuid", "force,--force",
     "Hot-unplug a VIF from its running VM."},
    {"vif-destroy", cli_cmd_vif_destroy, "uuid", "", "Destroy a VIF."},
    {"pif-scan", cli_cmd_pif_scan, "host-uuid", "", "Create PIFs for the host's new NICs."},
    {"pif-reconfigure-ip", cli_cmd_pif_reconfigure_ip, "uuid,mode", "IP,netmask,gateway,DNS",
     "Set a PIF's IP configuration: mode=static (IP=, netmask=), dhcp or none."},
    {"vlan-create", cli_cmd_vlan_create, "pif-uuid,network-uuid,vlan", "",
     "Create a VLAN on a PIF, into a network; prints the VLAN's uuid."},
    /* hosts, tasks, users, console */
    {"host-data-source-list", cli_cmd_host_data_source_list, "", "uuid,host,name-label",
     "List the data sources that can be recorded for a host."},
    {"vm-data-source-list", cli_cmd_vm_data_source_list, "", "vm,<vm filters>",
     "List the data sources that can be recorded for a VM."},
    {"pool-join", cli_cmd_pool_join, "master-address,master-username,master-password", "force",
     "Instruct host to join an existing pool."},
    {"pool-eject", cli_cmd_pool_eject, "host-uuid", "", "Instruct host to leave an existing pool."},
    {"pool-designate-new-master", cli_cmd_pool_designate_new_master, "host-uuid", "",
     "Request an orderly handover of the role of master to another host."},
    {"pool-ha-enable", cli_cmd_pool_ha_enable, "", "heartbeat-sr-uuids,ha-config:",
     "Enable HA on this Pool."},
    {"pool-ha-disable", cli_cmd_pool_ha_disable, "", "", "Disable HA on this Pool."},
    {"pool-ha-prevent-restarts-for", cli_cmd_pool_ha_prevent_restarts_for, "seconds", "",
     "Prevent HA VM restarts for a given number of seconds"},
    {"pool-ha-compute-max-host-failures-to-tolerate",
     cli_cmd_pool_ha_compute_max_host_failures_to_tolerate, "", "",
     "Compute the maximum number of host failures to tolerate under the current Pool "
     "configuration"},
    {"host-disable", cli_cmd_host_disable, "", "uuid",
     "Disable the host (the pool master without uuid=): no new VMs start there."},
    {"host-enable", cli_cmd_host_enable, "", "uuid", "Enable the host."},
    {"host-cpu-info", cli_cmd_host_cpu_info, "", "uuid",
     "The CPUs of a host (the pool master by default)."},
    {"host-get-vms-which-prevent-evacuation", cli_cmd_host_get_vms_which_prevent_evacuation,
     "", "uuid",
     "Return a list of VMs which prevent the evacuation of a specific host and display "
     "reasons for each one."},
    {"host-evacuate", cli_cmd_host_evacuate, "", "uuid,network-uuid,batch-size",
     "Migrate all VMs off a host (uuid=, the pool master without it)."},
    {"task-cancel", cmd_task_cancel, "uuid", "", "Ask a pending task to cancel."},
    {"event-wait", cmd_event_wait, "class", "timeout,<field>=<value>,<field>=/=<value>",
     "Block until an object of the class meets every condition."},
    {"user-password-change", cmd_user_password_change, "new", "old",
     "Change the password of the logged-in user."},
    {"console", cli_cmd_console, "", "vm,<vm filters>",
     "Attach to the VM's text console: live output, keystrokes to the guest; Ctrl-] quits. "
     "Without a terminal, copies stdin to the guest and the guest to stdout until EOF."},
    {NULL, NULL, NULL, NULL, NULL},
};

const struct cli_cmd *
cli_command_find(const char *name)
{
    for (const struct cli_cmd *cmd = cli_commands; cmd->name; cmd++)
        if (strcmp(cmd->name, name) == 0)
            return cmd;
    return NULL;
}

/* Splits "<class>-<op>" for a generic op; false when @name is none. */
static bool
generic_split(const char *name, const struct xclass **cls, const char **op)
{
    for (const char *const *o = cli_generic_ops; *o; o++) {
        size_t nl = strlen(name), ol = strlen(*o);
        if (nl <= ol + 1 || strcmp(name + nl - ol, *o) != 0 || name[nl - ol - 1] != '-')
            continue;
        char cname[128];
        if (nl - ol - 1 >= sizeof(cname))
            return false;
        memcpy(cname, name, nl - ol - 1);
        cname[nl - ol - 1] = '\0';
        if ((*cls = cli_class_by_cli_name(cname))) {
            *op = *o;
            return true;
        }
    }
    return false;
}

bool
cli_command_exists(const char *name)
{
    const struct xclass *cls;
    const char *op;
    return cli_command_find(name) || generic_split(name, &cls, &op);
}

bool
cli_check_required(const struct cli_cmd *cmd, const struct cli_args *a, struct xerr **errp)
{
    const char *p = cmd->reqd;
    while (*p) {
        size_t len = strcspn(p, ",");
        char name[64];
        snprintf(name, sizeof(name), "%.*s", (int)len, p);
        bool given = false;
        for (size_t i = 0; i < a->n && !given; i++)
            given = a->v[i].value && strcmp(a->v[i].key, name) == 0;
        if (!given)
            return cli_err_required(errp, name);
        p += len + (p[len] == ',');
    }
    return true;
}

int
cli_dispatch(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    const struct cli_cmd *cmd = cli_command_find(a->command);
    const struct xclass *cls;
    const char *op;
    if (cmd)
        return cli_check_required(cmd, a, errp) ? cmd->run(c, a, errp) : 1;
    if (generic_split(a->command, &cls, &op))
        return cli_generic_run(c, cls, op, a, errp);
    cli_err_syntax(errp, "Unknown command: %s\nFor usage run: 'xe help'", a->command);
    return 1;
}

/* ------------------------------------------------------------------ help */

/* Every command name, hand-written first, then <class>-<op> for each class. */
static void
each_command(bool all, void (*fn)(void *opaque, const char *name), void *opaque)
{
    for (const struct cli_cmd *cmd = cli_commands; cmd->name; cmd++)
        fn(opaque, cmd->name);
    for (size_t i = 0; i < xapi_n_classes; i++) {
        const struct xclass *cls = xapi_classes[i];
        if (!cls->stored || (!all && !cls->get_all))
            continue;
        char cname[128], name[192];
        cli_class_cli_name(cls, cname, sizeof(cname));
        for (const char *const *o = cli_generic_ops; *o; o++) {
            snprintf(name, sizeof(name), "%s-%s", cname, *o);
            if (!cli_command_find(name))
                fn(opaque, name);
        }
    }
}

struct name_list {
    FILE *out;
    bool minimal;
    size_t n;
};

static void
print_name(void *opaque, const char *name)
{
    struct name_list *l = opaque;
    if (l->minimal)
        fprintf(l->out, "%s%s", l->n ? "," : "", name);
    else
        fprintf(l->out, "%s%s", l->n % 4 ? ", " : (l->n ? ",\n    " : "    "), name);
    l->n++;
}

/* The generic command's parameters: fields where they apply. */
static void
generic_params(const struct xclass *cls, const char *op, struct strbuf *reqd,
               struct strbuf *optional)
{
    bool list = strcmp(op, "list") == 0, set = strcmp(op, "param-set") == 0;
    if (!list)
        strbuf_puts(reqd, strcmp(op, "param-list") == 0 || set ? "uuid" : "uuid,param-name");
    if (strcmp(op, "param-get") == 0 || strcmp(op, "param-add") == 0 ||
        strcmp(op, "param-remove") == 0)
        strbuf_puts(optional, "param-key");
    if (!list && !set)
        return;
    if (list)
        strbuf_puts(optional, "params,--minimal");
    for (size_t i = 0; i < cls->n_fields; i++) {
        const struct xfield *f = &cls->fields[i];
        char name[128];
        if ((f->flags & XF_REMOVED) || (set && f->qual != XQ_RW))
            continue;
        cli_field_cli_name(f->name, name, sizeof(name));
        strbuf_printf(optional, "%s%s%s", optional->len ? "," : "", name,
                      f->type->kind == XT_MAP ? ":" : "");
    }
}

static void
print_command_help(FILE *out, const char *name, const char *reqd, const char *optional,
                   const char *desc, bool minimal)
{
    if (minimal) {
        /* one line of parameter names, for completion */
        fprintf(out, "%s%s%s\n", reqd, *reqd && *optional ? "," : "", optional);
        return;
    }
    fprintf(out, "command name            : %s\n", name);
    fprintf(out, "        reqd params     : %s\n", reqd);
    fprintf(out, "        optional params : %s\n", optional);
    fprintf(out, "        description     : %s\n", desc);
}

int
cli_help(FILE *out, const struct cli_args *a, struct xerr **errp)
{
    const char *topic = NULL;
    for (size_t i = 0; i < a->n; i++)
        if (!a->v[i].value)
            topic = a->v[i].key;
    if (topic) {
        const struct cli_cmd *cmd = cli_command_find(topic);
        const struct xclass *cls;
        const char *op;
        if (cmd) {
            print_command_help(out, cmd->name, cmd->reqd, cmd->optional, cmd->help, a->minimal);
            return 0;
        }
        if (!generic_split(topic, &cls, &op)) {
            cli_err_syntax(errp, "Unknown command: %s\nFor usage run: 'xe help'", topic);
            return 1;
        }
        struct strbuf reqd = STRBUF_INIT, optional = STRBUF_INIT;
        strbuf_puts(&reqd, "");
        strbuf_puts(&optional, "");
        generic_params(cls, op, &reqd, &optional);
        char desc[256];
        snprintf(desc, sizeof(desc), "The %s verb of class %s (generated from the data model).",
                 op, cls->name);
        print_command_help(out, topic, reqd.buf, optional.buf, desc, a->minimal);
        strbuf_release(&reqd);
        strbuf_release(&optional);
        return 0;
    }
    struct name_list l = {out, a->minimal, 0};
    if (!a->minimal)
        fprintf(out, "Usage: xe <command> [-s server] [-p port] [-u user] [-pw password | -pwf "
                     "file] [--nossl] [--insecure] [--unix path] [key=value ...]\n\n"
                     "%s commands:\n",
                a->all ? "All" : "Common");
    each_command(a->all, print_name, &l);
    fprintf(out, "\n");
    if (!a->minimal && !a->all)
        fprintf(out, "\nFor every command: xe help --all. For one: xe help <command>.\n");
    return 0;
}

static int
cmd_help(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    return cli_help(c->out, a, errp);
}
