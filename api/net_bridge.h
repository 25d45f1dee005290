/* api/net_bridge.h - what api/network.c takes from api/net_bridge.c beyond
 * api/net_api.h (which declares net_network_ensure_bridge and net_api_errno).
 */
#ifndef VESSEL_API_NET_BRIDGE_H
#define VESSEL_API_NET_BRIDGE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/xerr.h"

struct db;

/* other_config key of a network whose bridge vesseld made (and so removes). */
#define CREATED_KEY "vessel_bridge_created"

/* Held while bridge names are chosen and bridges made or removed. */
extern pthread_mutex_t net_lock;

/* Does any network record name bridge @name? */
bool bridge_name_used(struct db *db, const char *name);
/* Under net_lock: the first "xapi<N>" free in the store and on the host. */
void bridge_name_pick(struct db *db, char *out, size_t len);
/* Under net_lock: makes bridge @name (MTU @mtu) exist and be up; *@created
 * tells whether this call made it. 0, -EMEDIUMTYPE when @name is a link of
 * another kind, or the errno of the failing step in *@step. */
int bridge_make(const char *name, int64_t mtu, bool *created, const char **step);
/* bridge_make's failure as a XenAPI error: BRIDGE_NAME_EXISTS [name] or INTERNAL_ERROR. */
bool bridge_make_err(struct xerr **errp, int rc, const char *step, const char *name);

#endif
