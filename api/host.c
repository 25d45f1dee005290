/* api/host.c - host.* messages built so far.
 *
 * host.set_ssl_legacy: xapi's Host.ssl_legacy (ocaml/idl/datamodel_host.ml)
 * once allowed older TLS/SSL versions for old clients; xapi since Stockholm
 * refuses true with VALUE_NOT_SUPPORTED and takes false as a no-op
 * (ocaml/xapi/xapi_host.ml), and so does vesseld: the HTTPS listener speaks
 * TLS 1.2 and 1.3 with AEAD suites only (http/tls_policy.h), always.
 */
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "db/db.h"
#include "rpc/ctx.h"
#include "xapi_handlers.h"

bool
api_host_get_servertime(struct call_ctx *ctx, const char *host, int64_t *result,
                        struct xerr **errp)
{
    if (!db_exists(ctx->db, &xapi_class_host, host))
        return xerr_handle_invalid(errp, "host", host);
    *result = time(NULL);
    return true;
}

bool
api_host_get_server_localtime(struct call_ctx *ctx, const char *host, int64_t *result,
                              struct xerr **errp)
{
    if (!db_exists(ctx->db, &xapi_class_host, host))
        return xerr_handle_invalid(errp, "host", host);
    /* The wire datetime is zone-less text: local wall-clock seconds. */
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    *result = now + tm.tm_gmtoff;
    return true;
}

bool
api_host_set_ssl_legacy(struct call_ctx *ctx, const char *self, bool value, struct xerr **errp)
{
    /* xapi since Stockholm (xapi_host.ml): legacy TLS cannot come back */
    if (!db_exists(ctx->db, &xapi_class_host, self))
        return xerr_handle_invalid(errp, "host", self);
    if (value)
        return xerr_value_not_supported(errp, "value", "true", "Legacy SSL support has been removed");
    return true;
}
