/* cli/storage.c - xe's storage verbs: vdi-create/destroy/forget/snapshot/
 * clone/copy/resize, vbd-create/plug/unplug/destroy, sr-create/scan/destroy/
 * forget, pbd-plug/unplug.
 *
 * Each is one or two client stubs; creators print the new object's uuid.
 * Sizes take units (cli_parse_size: 10GiB, 512MiB, bytes). Arguments are
 * checked before the first call, so usage errors need no server. vdi-copy
 * runs Async with progress (a full copy of the data); the rest are quick.
 * vdi-import/vdi-export are absent: they need the HTTP transfer handlers
 * (/import_raw_vdi, /export_raw_vdi) the server does not have yet.
 * API: xapi's ocaml/idl/datamodel*.ml (SR, PBD, VDI, VBD) and 8.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cmds.h"
#include "client/xclient.h"
#include "xapi_client.h"

static bool
size_arg(const struct cli_args *a, const char *key, int64_t *out, struct xerr **errp)
{
    const char *v = cli_arg_get(a, key);
    if (!v)
        return cli_err_required(errp, key);
    if (cli_parse_size(v, out) < 0)
        return cli_err_syntax(errp, "Syntax error: %s=%s is not a size (bytes, or with a unit: "
                                    "512MiB, 10GiB)",
                              key, v);
    return true;
}

static bool
bool_arg(const struct cli_args *a, const char *key, bool dflt, bool *out, struct xerr **errp)
{
    const char *v = cli_arg_get(a, key);
    *out = dflt;
    if (v && !cli_parse_bool(v, out))
        return cli_err_syntax(errp, "Syntax error: %s=%s is not a boolean (true or false)", key,
                              v);
    return true;
}

static bool
set_str(char **field, const char *v, struct xerr **errp)
{
    char *s = strdup(v ? v : "");
    if (!s)
        return xerr_nomem(errp);
    free(*field);
    *field = s;
    return true;
}

/* ------------------------------------------------------------------ VDI */

int
cli_cmd_vdi_create(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    struct xapi_vdi_record *r = xrecord_new(&xapi_class_vdi);
    if (!r)
        return xerr_nomem(errp), 1;
    bool given;
    r->type = XAPI_VDI_TYPE_USER;
    char *vdi = NULL;
    bool ok = size_arg(a, "virtual-size", &r->virtual_size, errp) &&
              cli_typed_arg(NULL, a, "type", &xapi_type_vdi_type, &r->type, &given, errp) &&
              bool_arg(a, "sharable", false, &r->sharable, errp) &&
              bool_arg(a, "read-only", false, &r->read_only, errp) &&
              set_str(&r->name_label, cli_arg_get(a, "name-label"), errp) &&
              set_str(&r->name_description, cli_arg_get(a, "name-description"), errp);
    if (ok) {
        free(r->SR);
        r->SR = NULL;
        ok = cli_ref_arg(c, a, "sr-uuid", "SR", &r->SR, errp) && xc_vdi_create(c->xc, r, &vdi,
                                                                              errp);
    }
    if (ok)
        cli_print_uuid_of(c, "VDI", vdi);
    xapi_vdi_record_free(r);
    free(vdi);
    return ok ? 0 : 1;
}

int
cli_cmd_vdi_destroy(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    return cli_verb_on_uuid(c, a, "VDI", xc_vdi_destroy, errp);
}

int
cli_cmd_vdi_forget(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    return cli_verb_on_uuid(c, a, "VDI", xc_vdi_forget, errp);
}

/* vdi-snapshot and vdi-clone: (vdi, driver_params = {}) -> new VDI. */
static int
vdi_derive(struct cli_ctx *c, const struct cli_args *a, bool snapshot, struct xerr **errp)
{
    char *vdi = NULL, *out = NULL;
    struct xapi_string_string_map none = {0};
    bool ok = cli_ref_arg(c, a, "uuid", "VDI", &vdi, errp) &&
              (snapshot ? xc_vdi_snapshot(c->xc, vdi, &none, &out, errp)
                        : xc_vdi_clone(c->xc, vdi, &none, &out, errp));
    const char *name = cli_arg_get(a, "new-name-label");
    if (ok && name)
        ok = xc_vdi_set_name_label(c->xc, out, name, errp);
    if (ok)
        cli_print_uuid_of(c, "VDI", out);
    free(vdi);
    free(out);
    return ok ? 0 : 1;
}

int
cli_cmd_vdi_snapshot(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    return vdi_derive(c, a, true, errp);
}

int
cli_cmd_vdi_clone(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    return vdi_derive(c, a, false, errp);
}

int
cli_cmd_vdi_copy(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    char *vdi = NULL, *sr = NULL, *out = NULL;
    const char *null = "OpaqueRef:NULL";
    const struct xtype *t[4] = {&xapi_type_ref_VDI, &xapi_type_ref_SR, &xapi_type_ref_VDI,
                                &xapi_type_ref_VDI};
    const void *v[4] = {&vdi, &sr, &null, &null};
    bool ok = cli_ref_arg(c, a, "uuid", "VDI", &vdi, errp) &&
              cli_ref_arg(c, a, "sr-uuid", "SR", &sr, errp) &&
              cli_async(c, "VDI.copy", 4, t, v, "Copying", &xapi_type_string, &out, errp);
    if (ok)
        cli_print_uuid_of(c, "VDI", out);
    free(vdi);
    free(sr);
    free(out);
    return ok ? 0 : 1;
}

int
cli_cmd_vdi_resize(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    int64_t size;
    char *vdi = NULL;
    bool ok = size_arg(a, "disk-size", &size, errp) &&
              cli_ref_arg(c, a, "uuid", "VDI", &vdi, errp) &&
              xc_vdi_resize(c->xc, vdi, size, errp);
    free(vdi);
    return ok ? 0 : 1;
}

int
cli_cmd_vdi_enable_cbt(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    return cli_verb_on_uuid(c, a, "VDI", xc_vdi_enable_cbt, errp);
}

int
cli_cmd_vdi_disable_cbt(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    return cli_verb_on_uuid(c, a, "VDI", xc_vdi_disable_cbt, errp);
}

int
cli_cmd_vdi_data_destroy(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    return cli_verb_on_uuid(c, a, "VDI", xc_vdi_data_destroy, errp);
}

/* The bitmap as VDI.list_changed_blocks gives it (base64), on stdout. */
int
cli_cmd_vdi_list_changed_blocks(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    char *from = NULL, *to = NULL, *bitmap = NULL;
    bool ok = cli_ref_arg(c, a, "vdi-from-uuid", "VDI", &from, errp) &&
              cli_ref_arg(c, a, "vdi-to-uuid", "VDI", &to, errp) &&
              xc_vdi_list_changed_blocks(c->xc, from, to, &bitmap, errp);
    if (ok)
        fprintf(c->out, "%s\n", bitmap);
    free(from);
    free(to);
    free(bitmap);
    return ok ? 0 : 1;
}

/* ------------------------------------------------------------------ VBD */

/* vbd-create: a Disk (vdi-uuid= required) or a CD drive (empty without
 * vdi-uuid=); mode RW for disks, RO for CDs unless mode= says. */
int
cli_cmd_vbd_create(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    struct xapi_vbd_record *r = xrecord_new(&xapi_class_vbd);
    if (!r)
        return xerr_nomem(errp), 1;
    bool given_type, given_mode;
    r->type = XAPI_VBD_TYPE_DISK;
    bool ok = cli_typed_arg(NULL, a, "type", &xapi_type_vbd_type, &r->type, &given_type, errp);
    r->mode = r->type == XAPI_VBD_TYPE_CD ? XAPI_VBD_MODE_RO : XAPI_VBD_MODE_RW;
    ok = ok && cli_typed_arg(NULL, a, "mode", &xapi_type_vbd_mode, &r->mode, &given_mode, errp) &&
         bool_arg(a, "bootable", false, &r->bootable, errp) &&
         bool_arg(a, "unpluggable", true, &r->unpluggable, errp) &&
         set_str(&r->userdevice, cli_arg_get(a, "device"), errp);
    if (ok && r->type != XAPI_VBD_TYPE_CD && !cli_arg_get(a, "vdi-uuid"))
        ok = cli_err_required(errp, "vdi-uuid");
    char *vbd = NULL;
    if (ok) {
        free(r->VM);
        r->VM = NULL;
        ok = cli_ref_arg(c, a, "vm-uuid", "VM", &r->VM, errp);
    }
    if (ok && cli_arg_get(a, "vdi-uuid")) {
        free(r->VDI);
        r->VDI = NULL;
        ok = cli_ref_arg(c, a, "vdi-uuid", "VDI", &r->VDI, errp);
    } else {
        r->empty = true;
    }
    if (ok && xc_vbd_create(c->xc, r, &vbd, errp))
        cli_print_uuid_of(c, "VBD", vbd);
    else
        ok = false;
    xapi_vbd_record_free(r);
    free(vbd);
    return ok ? 0 : 1;
}

int
cli_cmd_vbd_plug(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    return cli_verb_on_uuid(c, a, "VBD", xc_vbd_plug, errp);
}

int
cli_cmd_vbd_unplug(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    return cli_verb_on_uuid(c, a, "VBD", xc_vbd_unplug, errp);
}

int
cli_cmd_vbd_destroy(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    return cli_verb_on_uuid(c, a, "VBD", xc_vbd_destroy, errp);
}

/* ------------------------------------------------------------------ SR, PBD */

/* The device-config:<k>=<v> arguments as a map. */
static bool
device_config(const struct cli_args *a, struct xapi_string_string_map *m, struct xerr **errp)
{
    for (size_t i = 0; i < a->n; i++)
        if (a->v[i].subkey && a->v[i].value && strcmp(a->v[i].key, "device-config") == 0 &&
            xmap_put_str((struct xmap *)m, a->v[i].subkey, a->v[i].value) < 0)
            return xerr_nomem(errp);
    return true;
}

int
cli_cmd_sr_create(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    struct xapi_string_string_map dc = {0}, smc = {0};
    int64_t size = 0;
    bool shared;
    const char *ps = cli_arg_get(a, "physical-size");
    bool ok = bool_arg(a, "shared", false, &shared, errp) &&
              (!ps || size_arg(a, "physical-size", &size, errp)) && device_config(a, &dc, errp);
    char *host = NULL, *sr = NULL;
    const char *ct = cli_arg_get(a, "content-type");
    const char *desc = cli_arg_get(a, "name-description");
    ok = ok && cli_host_arg(c, a, "host-uuid", &host, errp) &&
         xc_sr_create(c->xc, host, &dc, size, cli_arg_get(a, "name-label"), desc ? desc : "",
                      cli_arg_get(a, "type"), ct ? ct : "", shared, &smc, &sr, errp);
    if (ok)
        cli_print_uuid_of(c, "SR", sr);
    xtype_value_clear(&xapi_type_string_string_map, &dc);
    free(host);
    free(sr);
    return ok ? 0 : 1;
}

int
cli_cmd_sr_scan(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    return cli_verb_on_uuid(c, a, "SR", xc_sr_scan, errp);
}

int
cli_cmd_sr_destroy(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    return cli_verb_on_uuid(c, a, "SR", xc_sr_destroy, errp);
}

int
cli_cmd_sr_forget(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    return cli_verb_on_uuid(c, a, "SR", xc_sr_forget, errp);
}

int
cli_cmd_pbd_plug(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    return cli_verb_on_uuid(c, a, "PBD", xc_pbd_plug, errp);
}

int
cli_cmd_pbd_unplug(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    return cli_verb_on_uuid(c, a, "PBD", xc_pbd_unplug, errp);
}
