/* api/pool_master.c - who is the pool's master: pool.designate_new_master,
 * pool.emergency_transition_to_master, pool.recover_slaves (xapi's
 * ocaml/xapi/xapi_pool.ml and message_forwarding.ml).
 *
 * xapi moves a master by a two-phase commit to every host's local database
 * and tells each member its new master's address. Here pool.master lives in
 * the pool store that every host reads, and the master is whoever holds the
 * etcd key P/master (api/pool_live.c): a hand-over moves that key to the new
 * master's lease, and the new master writes pool.master. Members need not be
 * told, so recover_slaves has nothing to send: it answers the live hosts
 * that follow this master, which is what xapi's list of recovered hosts
 * means to its caller.
 */
#include <stdlib.h>
#include <string.h>

#include "api/pool_live.h"
#include "db/db.h"
#include "xapi_errors.h"
#include "xapi_handlers.h"
#include "xapi_model.h"

bool
api_pool_designate_new_master(struct call_ctx *ctx, const char *host, struct xerr **errp)
{
    return pool_live_designate(ctx->srv, host, errp);
}

bool
api_pool_emergency_transition_to_master(struct call_ctx *ctx, struct xerr **errp)
{
    return pool_live_take_master(ctx->srv, errp);
}

struct followers {
    struct server *srv;
    struct xapi_ref_set *out;
    bool oom;
};

static bool
collect_follower(void *opaque, const char *ref, const void *rec)
{
    (void)rec;
    struct followers *f = opaque;
    if (strcmp(ref, f->srv->host_ref) != 0 && pool_live_host_is_live(f->srv, ref) &&
        xset_add_str((struct xset *)f->out, ref) < 0)
        f->oom = true;
    return !f->oom;
}

bool
api_pool_recover_slaves(struct call_ctx *ctx, struct xapi_ref_set *result, struct xerr **errp)
{
    struct followers f = {ctx->srv, result, false};
    if (pool_live_is_master(ctx->srv))
        db_foreach(ctx->db, &xapi_class_host, collect_follower, &f);
    return f.oom ? xerr_nomem(errp) : true;
}
