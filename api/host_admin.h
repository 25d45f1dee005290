/* api/host_admin.h - what api/host_admin.c shares with the other host files. */
#ifndef VESSEL_API_HOST_ADMIN_H
#define VESSEL_API_HOST_ADMIN_H

#include <stdbool.h>

#include "model/xerr.h"

/* Stops vesseld cleanly (SIGTERM to itself) a second from now, after the
 * current call's reply; with srv->restart_requested set, main() then
 * executes it again. Errors: INTERNAL_ERROR when no thread can be made. */
bool host_agent_stop_soon(struct xerr **errp);

#endif
