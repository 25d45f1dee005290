/* api/bootstrap.h - first start and every start: make sure the pool's and the
 * host's own objects exist, then fill srv->pool_ref and srv->host_ref. */
#ifndef VESSEL_API_BOOTSTRAP_H
#define VESSEL_API_BOOTSTRAP_H

#include "rpc/ctx.h"

/* The host is the one DATA/inventory names (api/inventory.h), made when the
 * store lacks it. A new store gets a pool with this host as master; with
 * @member the store must already have a pool, which the host joins. */
bool bootstrap_run(struct server *srv, bool member, struct xerr **errp);

#endif
