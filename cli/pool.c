/* cli/pool.c - pool-join, pool-eject, host-disable, host-enable, with xe's
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
