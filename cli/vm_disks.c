/* cli/vm_disks.c - vm-disk-list and vm-cd-list: a VM's disks or CD drives,
 * each as its VBD's block then its VDI's (none for an empty drive).
 *
 * As xapi's xe (ocaml/xapi-cli-server/cli_operations.ml vm_disk_list_aux):
 * "Disk <n> VBD:" / "Disk <n> VDI:" headings ("CD <n>" for CDs), the VBD's
 * uuid, vm-name-label and userdevice (and empty for CDs), the VDI's uuid,
 * name-label, virtual-size and sr-name-label; vbd-params= and vdi-params=
 * choose other columns, fields or records.ml aliases.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cmds.h"
#include "client/xclient.h"
#include "xapi_client.h"

static int
disk_list(struct cli_ctx *c, const struct cli_args *a, bool cds, struct xerr **errp)
{
    static const char *const skip[] = {"vbd-params", "vdi-params", NULL};
    const char *vbd_cols = cli_arg_get(a, "vbd-params");
    const char *vdi_cols = cli_arg_get(a, "vdi-params");
    if (!vbd_cols)
        vbd_cols = cds ? "uuid,vm-name-label,userdevice,empty" : "uuid,vm-name-label,userdevice";
    if (!vdi_cols)
        vdi_cols = "uuid,name-label,virtual-size,sr-name-label";
    char *vm = NULL;
    if (!cli_select_one_vm(c, a, "vm", skip, CLI_VM_ANY, &vm, errp))
        return 1;
    struct xapi_ref_set vbds = {0};
    bool ok = xc_vm_get_vbds(c->xc, vm, &vbds, errp);
    for (size_t i = 0, n = 0; ok && i < vbds.n; i++) {
        struct xapi_vbd_record *vbd = NULL;
        if (!xc_vbd_get_record(c->xc, ((char **)vbds.items)[i], &vbd, errp)) {
            ok = false;
            break;
        }
        if ((vbd->type == XAPI_VBD_TYPE_CD) == cds) {
            const char *noun = cds ? "CD" : "Disk";
            fprintf(c->out, "%s %zu VBD:\n", noun, n);
            ok = cli_print_record(c, &xapi_class_vbd, vbd, vbd_cols, errp);
            struct xapi_vdi_record *vdi = NULL;
            if (ok && !vbd->empty && strcmp(vbd->VDI, "OpaqueRef:NULL") != 0 &&
                (ok = xc_vdi_get_record(c->xc, vbd->VDI, &vdi, errp))) {
                fprintf(c->out, "%s %zu VDI:\n", noun, n);
                ok = cli_print_record(c, &xapi_class_vdi, vdi, vdi_cols, errp);
                xapi_vdi_record_free(vdi);
            }
            n++;
        }
        xapi_vbd_record_free(vbd);
    }
    xtype_value_clear(&xapi_type_ref_VBD_set, &vbds);
    free(vm);
    return ok ? 0 : 1;
}

int
cli_cmd_vm_disk_list(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    return disk_list(c, a, false, errp);
}

int
cli_cmd_vm_cd_list(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    return disk_list(c, a, true, errp);
}
