/* api/host.c - host.* messages built so far. */
#include <time.h>

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
