/* api/event.c - event.register/unregister/inject/get_current_id; event.from
 * and event.next wait and are served by rpc/events.c (xapi's ocaml/xapi/xapi_event.ml).
 */
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "rpc/ctx.h"
#include "rpc/events.h"
#include "xapi_handlers.h"
#include "xapi_errors.h"

bool
api_event_register(struct call_ctx *ctx, const struct xapi_string_set *classes,
                   struct xerr **errp)
{
    return events_register(ctx->srv->events, ctx->session, (const struct xset *)classes, true,
                           errp);
}

bool
api_event_unregister(struct call_ctx *ctx, const struct xapi_string_set *classes,
                     struct xerr **errp)
{
    return events_register(ctx->srv->events, ctx->session, (const struct xset *)classes, false,
                           errp);
}

/* Touches the object and answers a token from just before the touch, so that
 * event.from(token) reports at least this change. */
bool
api_event_inject(struct call_ctx *ctx, const char *class, const char *ref, char **result,
                 struct xerr **errp)
{
    const struct xclass *cls = xapi_class_by_name_ci(class);
    if (!cls)
        return xerr_handle_invalid(errp, class, ref);
    uint64_t before = db_generation(ctx->db);
    if (!db_touch(ctx->db, cls, ref, errp))
        return false;
    char token[48];
    /* Any commit between the read and the touch only makes the report larger. */
    events_format_token(before, token);
    return (*result = strdup(token)) ? true : xerr_nomem(errp);
}

bool
api_event_get_current_id(struct call_ctx *ctx, int64_t *result, struct xerr **errp)
{
    (void)errp;
    *result = (int64_t)db_generation(ctx->db);
    return true;
}
