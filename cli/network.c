/* cli/network.c - xe's network verbs: network-create/destroy, vif-create/
 * plug/unplug/destroy, pif-scan, pif-reconfigure-ip, vlan-create.
 *
 * One or two client stubs each; creators print the new uuid. A VIF without
 * mac= gets a MAC from the server (MAC "" means autogenerate, as in xapi).
 * API: xapi's ocaml/idl/datamodel*.ml (network, VIF, PIF, VLAN) and 8.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cmds.h"
#include "client/xclient.h"
#include "xapi_client.h"

static bool
replace_str(char **field, const char *v, struct xerr **errp)
{
    char *s = strdup(v ? v : "");
    if (!s)
        return xerr_nomem(errp);
    free(*field);
    *field = s;
    return true;
}

/* MTU=: 68..65535 (IPv4's minimum up to the largest frame). */
static bool
mtu_arg(const struct cli_args *a, int64_t dflt, int64_t *out, struct xerr **errp)
{
    const char *v = cli_arg_get(a, "MTU");
    if (!v)
        v = cli_arg_get(a, "mtu");
    *out = dflt;
    if (!v)
        return true;
    char *end;
    long long n = strtoll(v, &end, 10);
    if (!*v || *end || n < 68 || n > 65535)
        return cli_err_syntax(errp, "Syntax error: MTU=%s is not a number from 68 to 65535", v);
    *out = n;
    return true;
}

int
cli_cmd_network_create(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    struct xapi_network_record *r = xrecord_new(&xapi_class_network);
    if (!r)
        return xerr_nomem(errp), 1;
    char *net = NULL;
    bool ok = mtu_arg(a, 1500, &r->MTU, errp) &&
              replace_str(&r->name_label, cli_arg_get(a, "name-label"), errp) &&
              replace_str(&r->name_description, cli_arg_get(a, "name-description"), errp) &&
              replace_str(&r->bridge, cli_arg_get(a, "bridge"), errp) &&
              xc_network_create(c->xc, r, &net, errp);
    if (ok)
        cli_print_uuid_of(c, "network", net);
    xapi_network_record_free(r);
    free(net);
    return ok ? 0 : 1;
}

int
cli_cmd_network_destroy(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    return cli_verb_on_uuid(c, a, "network", xc_network_destroy, errp);
}

int
cli_cmd_vif_create(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    struct xapi_vif_record *r = xrecord_new(&xapi_class_vif);
    if (!r)
        return xerr_nomem(errp), 1;
    char *vif = NULL;
    bool ok = mtu_arg(a, 0, &r->MTU, errp) &&
              replace_str(&r->device, cli_arg_get(a, "device"), errp) &&
              replace_str(&r->MAC, cli_arg_get(a, "mac"), errp);
    if (ok) {
        free(r->VM);
        free(r->network);
        r->VM = r->network = NULL;
        ok = cli_ref_arg(c, a, "vm-uuid", "VM", &r->VM, errp) &&
             cli_ref_arg(c, a, "network-uuid", "network", &r->network, errp);
    }
    if (ok && r->MTU == 0)
        ok = xc_network_get_mtu(c->xc, r->network, &r->MTU, errp);
    ok = ok && xc_vif_create(c->xc, r, &vif, errp);
    if (ok)
        cli_print_uuid_of(c, "VIF", vif);
    xapi_vif_record_free(r);
    free(vif);
    return ok ? 0 : 1;
}

int
cli_cmd_vif_plug(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    return cli_verb_on_uuid(c, a, "VIF", xc_vif_plug, errp);
}

int
cli_cmd_vif_unplug(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    bool force;
    if (cli_arg_force(a, &force) < 0)
        return cli_err_syntax(errp, "Syntax error: force=%s is not a boolean (true or false)",
                              cli_arg_get(a, "force")),
               1;
    return cli_verb_on_uuid(c, a, "VIF", force ? xc_vif_unplug_force : xc_vif_unplug, errp);
}

int
cli_cmd_vif_destroy(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    return cli_verb_on_uuid(c, a, "VIF", xc_vif_destroy, errp);
}

int
cli_cmd_pif_scan(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    char *host = NULL;
    bool ok = cli_ref_arg(c, a, "host-uuid", "host", &host, errp) &&
              xc_pif_scan(c->xc, host, errp);
    free(host);
    return ok ? 0 : 1;
}

/* mode=static needs IP= and netmask=; dhcp and none take no address. */
int
cli_cmd_pif_reconfigure_ip(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    enum xapi_ip_configuration_mode mode = XAPI_IP_CONFIGURATION_MODE_NONE;
    bool given;
    if (!cli_typed_arg(NULL, a, "mode", &xapi_type_ip_configuration_mode, &mode, &given, errp))
        return 1;
    const char *ip = cli_arg_get(a, "IP"), *mask = cli_arg_get(a, "netmask");
    const char *gw = cli_arg_get(a, "gateway"), *dns = cli_arg_get(a, "DNS");
    if (mode == XAPI_IP_CONFIGURATION_MODE_STATIC && !ip)
        return cli_err_required(errp, "IP"), 1;
    if (mode == XAPI_IP_CONFIGURATION_MODE_STATIC && !mask)
        return cli_err_required(errp, "netmask"), 1;
    char *pif = NULL;
    bool ok = cli_ref_arg(c, a, "uuid", "PIF", &pif, errp) &&
              xc_pif_reconfigure_ip(c->xc, pif, mode, ip ? ip : "", mask ? mask : "",
                                    gw ? gw : "", dns ? dns : "", errp);
    free(pif);
    return ok ? 0 : 1;
}

int
cli_cmd_vlan_create(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    const char *tag_s = cli_arg_get(a, "vlan");
    char *end;
    long long tag = tag_s ? strtoll(tag_s, &end, 10) : -1;
    if (!tag_s || !*tag_s || *end || tag < 0 || tag > 4094)
        return cli_err_syntax(errp, "Syntax error: vlan=%s is not a VLAN tag (0 to 4094)",
                              tag_s ? tag_s : ""),
               1;
    char *pif = NULL, *net = NULL, *vlan = NULL;
    bool ok = cli_ref_arg(c, a, "pif-uuid", "PIF", &pif, errp) &&
              cli_ref_arg(c, a, "network-uuid", "network", &net, errp) &&
              xc_vlan_create(c->xc, pif, tag, net, &vlan, errp);
    if (ok)
        cli_print_uuid_of(c, "VLAN", vlan);
    free(pif);
    free(net);
    free(vlan);
    return ok ? 0 : 1;
}
