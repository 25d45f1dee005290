/* api/sr_shared.h - a shared SR's PBDs across the pool's hosts.
 *
 * A shared SR (SR.shared) of a file type is a directory every host sees at
 * the same path (a cluster file system or an NFS mount seen the same way
 * everywhere), so each host has its own PBD of it with the same
 * device_config, as in xapi (xapi_sr.ml create; create_storage.ml
 * initialise_storage for a host that starts without one).
 */
#ifndef VESSEL_API_SR_SHARED_H
#define VESSEL_API_SR_SHARED_H

#include <stdbool.h>

#include "rpc/ctx.h"

/* After SR.create of shared @sr on this host (whose PBD is plugged): a PBD
 * with @sr's device_config for every other host of the pool, each plugged on
 * its own host (PBD.plug, a host-to-host call). A host that is not live or
 * cannot plug keeps its PBD unplugged (logged: sr.shared.plug), as xapi's
 * create waits for the plugs without failing on them. */
bool sr_shared_pbds_create(struct server *srv, const char *sr, struct xerr **errp);

/* At start: a PBD of this host for each shared SR of a type we drive that
 * has none here (a host new to the pool), with the device_config of another
 * host's PBD, plugged when its directory is there (else left unplugged and
 * logged). Never fails the start for one SR. */
void sr_bootstrap_shared(struct server *srv);

#endif
