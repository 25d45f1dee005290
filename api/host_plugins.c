/* api/host_plugins.c - host.call_plugin, host.call_extension, host.has_extension.
 *
 * xapi runs a plugin as an executable of /etc/xapi.d/plugins with an XML-RPC
 * call as its argument (ocaml/xapi/xapi_plugins.ml). vesseld has no plugin
 * directory: the plugins it answers are built in, each a function of this
 * host's own facts, and the rest get xapi's answer for a plugin that is not
 * installed, XENAPI_MISSING_PLUGIN [name]; a known plugin asked for an unknown
 * function answers what XenAPIPlugin.py raises, UNKNOWN_XENAPI_PLUGIN_FUNCTION
 * [fn]. Xen Orchestra treats both as "not available" for its optional host
 * panels (hyperthreading.py, smartctl.py, lsblk.py, zfs.py: packages/xo-server
 * src/xapi/index.mjs, api/sr.mjs) and calls updater.py only on XCP-ng hosts.
 *
 * Built in:
 *  - hyperthreading.py get_hyperthreading: "true" or "false" (XO's host
 *    panel), from the kernel's SMT control.
 *
 * Extensions (xapi's /etc/xapi.d/extensions, ocaml/xapi/xapi_extensions.ml):
 * none are installed, so has_extension is false and call_extension answers
 * xapi's error for a missing one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "db/db.h"
#include "rpc/ctx.h"
#include "wire/jsonrpc.h"
#include "xapi_errors.h"
#include "xapi_handlers.h"

typedef bool plugin_fn(struct call_ctx *ctx, const struct xapi_string_string_map *args,
                       char **result, struct xerr **errp);

static bool
hyperthreading_get(struct call_ctx *ctx, const struct xapi_string_string_map *args, char **result,
                   struct xerr **errp)
{
    char *s = NULL;
    size_t len = 0;
    bool on = fileio_read_all("/sys/devices/system/cpu/smt/active", 16, &s, &len) == 0 && len > 0 &&
              s[0] == '1';
    free(s);
    return (*result = strdup(on ? "true" : "false")) != NULL || xerr_nomem(errp);
}

static const struct builtin_plugin {
    const char *plugin;
    const char *fn;
    plugin_fn *call;
} builtin_plugins[] = {
    {"hyperthreading.py", "get_hyperthreading", hyperthreading_get},
};

bool
api_host_call_plugin(struct call_ctx *ctx, const char *host, const char *plugin, const char *fn,
                     const struct xapi_string_string_map *args_, char **result,
                     struct xerr **errp)
{
    if (!db_exists(ctx->db, &xapi_class_host, host))
        return xerr_handle_invalid(errp, "host", host);
    bool known = false;
    for (size_t i = 0; i < sizeof(builtin_plugins) / sizeof(builtin_plugins[0]); i++) {
        if (strcmp(builtin_plugins[i].plugin, plugin) != 0)
            continue;
        known = true;
        if (strcmp(builtin_plugins[i].fn, fn) == 0)
            return builtin_plugins[i].call(ctx, args_, result, errp);
    }
    if (known)
        return xerr_unknown_xenapi_plugin_function(errp, fn);
    return xerr_xenapi_missing_plugin(errp, plugin);
}

bool
api_host_has_extension(struct call_ctx *ctx, const char *host, const char *name, bool *result,
                       struct xerr **errp)
{
    if (!db_exists(ctx->db, &xapi_class_host, host))
        return xerr_handle_invalid(errp, "host", host);
    *result = false;
    return true;
}

/* xapi_extensions.ml: the call names an extension by its method; none is
 * installed, so the lookup fails as xapi's does for a missing file. */
bool
api_host_call_extension(struct call_ctx *ctx, const char *host, const char *call, char **result,
                        struct xerr **errp)
{
    if (!db_exists(ctx->db, &xapi_class_host, host))
        return xerr_handle_invalid(errp, "host", host);
    struct jsonrpc_call rpc;
    char why[128];
    if (jsonrpc_parse_call(call, strlen(call), &rpc, why, sizeof(why)) < 0)
        return xerr_internal(errp, "call_extension: %s", why);
    bool ok = xerr_message_method_unknown(errp, rpc.method);
    jsonrpc_call_release(&rpc);
    return ok;
}
