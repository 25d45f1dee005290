/* api/host.c - host.* messages built so far.
 *
 * host.set_ssl_legacy: xapi's Host.ssl_legacy (ocaml/idl/datamodel_host.ml)
 * allowed older TLS/SSL versions and suites for old clients; xapi applied a
 * change by restarting its TLS service. Here the field picks the HTTPS
 * listener's policy (http/tls_policy.h): false, TLS 1.2 and 1.3 with AEAD
 * suites only; true, TLS 1.0 and 1.1 as well. A change applies to the next
 * connection, without a restart, and persists in the host record, which
 * daemon/main.c reads at start.
 */
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "db/db.h"
#include "http/tls_policy.h"
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
    if (!db_set_field(ctx->db, &xapi_class_host, self,
                      xclass_field(&xapi_class_host, "ssl_legacy"), &value, errp))
        return false; /* HANDLE_INVALID for a host that is not there */
    /* another host's record is that host's business (one host per store today) */
    if (ctx->srv->host_ref && strcmp(self, ctx->srv->host_ref) == 0) {
        if (tls_policy_set_legacy(value) < 0)
            return xerr_internal(errp, "TLS priority strings refused by GnuTLS");
        log_info("host.ssl_legacy", "value=%s", value ? "true" : "false");
    }
    return true;
}
