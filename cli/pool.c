/* cli/pool.c - pool-join, pool-eject, host-disable, host-enable, the master
 * hand-over and HA, with xe's
 * syntax and messages (xapi's ocaml/xapi-cli-server/cli_operations.ml). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cmds.h"
#include "client/xclient.h"
#include "xapi_client.h"

int
cli_cmd_pool_join(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    const char *addr = cli_arg_get(a, "master-address"), *user = cli_arg_get(a, "master-username"),
               *pw = cli_arg_get(a, "master-password"), *force_s = cli_arg_get(a, "force");
    bool force = false;
    if (!addr)
        return cli_err_required(errp, "master-address"), 1;
    if (!user)
        return cli_err_required(errp, "master-username"), 1;
    if (!pw)
        return cli_err_required(errp, "master-password"), 1;
    if (force_s && !cli_parse_bool(force_s, &force))
        return cli_err_syntax(errp, "Syntax error: force=%s is not a boolean", force_s), 1;
    bool ok = force ? xc_pool_join_force(c->xc, addr, user, pw, errp)
                    : xc_pool_join(c->xc, addr, user, pw, errp);
    if (!ok)
        return 1;
    printf("Host agent will restart and attempt to join pool in 1.000 seconds...\n");
    return 0;
}

int
cli_cmd_pool_eject(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    char *host = NULL;
    bool ok = cli_ref_arg(c, a, "host-uuid", "host", &host, errp) && xc_pool_eject(c->xc, host, errp);
    free(host);
    if (!ok)
        return 1;
    printf("Specified host will attempt to restart as a master of a new pool in 1.000 "
           "seconds...\n");
    return 0;
}

static int
host_verb(struct cli_ctx *c, const struct cli_args *a, bool enable, struct xerr **errp)
{
    char *host = NULL;
    bool ok = cli_host_arg(c, a, "uuid", &host, errp) &&
              (enable ? xc_host_enable(c->xc, host, errp) : xc_host_disable(c->xc, host, errp));
    free(host);
    return ok ? 0 : 1;
}

int
cli_cmd_host_disable(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    return host_verb(c, a, false, errp);
}

int
cli_cmd_host_enable(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    return host_verb(c, a, true, errp);
}

int
cli_cmd_pool_designate_new_master(struct cli_ctx *c, const struct cli_args *a,
                                  struct xerr **errp)
{
    char *host = NULL;
    bool ok = cli_ref_arg(c, a, "host-uuid", "host", &host, errp) &&
              xc_pool_designate_new_master(c->xc, host, errp);
    free(host);
    return ok ? 0 : 1;
}

/* heartbeat-sr-uuids=<uuid>,<uuid> and ha-config:<k>=<v>, as xapi's
 * cli_operations.ml pool_ha_enable reads them. */
int
cli_cmd_pool_ha_enable(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    struct xapi_ref_set srs = {0, NULL};
    struct xapi_string_string_map config = {0, NULL, NULL};
    bool ok = true;
    for (size_t i = 0; ok && i < a->n; i++)
        if (a->v[i].subkey && a->v[i].value && strcmp(a->v[i].key, "ha-config") == 0 &&
            xmap_put_str((struct xmap *)&config, a->v[i].subkey, a->v[i].value) < 0)
            ok = xerr_nomem(errp);
    const char *uuids = cli_arg_get(a, "heartbeat-sr-uuids");
    char *list = uuids ? strdup(uuids) : NULL, *save = NULL;
    if (uuids && !list)
        ok = xerr_nomem(errp);
    for (char *u = list ? strtok_r(list, ",", &save) : NULL; ok && u;
         u = strtok_r(NULL, ",", &save)) {
        char *ref = NULL;
        ok = cli_uuid_ref(c, "SR", u, &ref, errp) &&
             (xset_add_str((struct xset *)&srs, ref) == 0 || xerr_nomem(errp));
        free(ref);
    }
    ok = ok && xc_pool_enable_ha(c->xc, &srs, &config, errp);
    free(list);
    xtype_value_clear(&xapi_type_ref_SR_set, &srs);
    xtype_value_clear(&xapi_type_string_string_map, &config);
    return ok ? 0 : 1;
}

int
cli_cmd_pool_ha_disable(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    (void)a;
    return xc_pool_disable_ha(c->xc, errp) ? 0 : 1;
}

int
cli_cmd_pool_ha_prevent_restarts_for(struct cli_ctx *c, const struct cli_args *a,
                                     struct xerr **errp)
{
    const char *s = cli_arg_get(a, "seconds");
    char *end = NULL;
    long long n = s ? strtoll(s, &end, 10) : 0;
    if (!s)
        return cli_err_required(errp, "seconds"), 1;
    if (!*s || *end)
        return cli_err_syntax(errp, "Syntax error: seconds=%s is not a number", s), 1;
    return xc_pool_ha_prevent_restarts_for(c->xc, n, errp) ? 0 : 1;
}

int
cli_cmd_pool_ha_compute_max_host_failures_to_tolerate(struct cli_ctx *c,
                                                      const struct cli_args *a,
                                                      struct xerr **errp)
{
    (void)a;
    int64_t n = 0;
    if (!xc_pool_ha_compute_max_host_failures_to_tolerate(c->xc, &n, errp))
        return 1;
    printf("%lld\n", (long long)n);
    return 0;
}
