/* api/bootstrap.h - first start and every start: make sure the host's own
 * objects exist, then fill srv->pool_ref and srv->host_ref. */
#ifndef VESSEL_API_BOOTSTRAP_H
#define VESSEL_API_BOOTSTRAP_H

#include "rpc/ctx.h"

bool bootstrap_run(struct server *srv, struct xerr **errp);

#endif
