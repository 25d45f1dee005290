/* api/vm_export.h - a VM out as an XVA over HTTP.
 *
 *   GET /export?ref=<VM>|uuid=<uuid>[&use_compression=true|gzip|zstd][&task_id=]
 *   GET /export_metadata?ref=|uuid=[&export_snapshots=true|false][&task_id=]
 *
 * Authenticated as the other transfer routes (api/transfer_auth.h). The
 * format: wire/xva.h.
 */
#ifndef VESSEL_API_VM_EXPORT_H
#define VESSEL_API_VM_EXPORT_H

#include <stdbool.h>

struct http_server;
struct server;

/* Adds the routes to @http, served with @srv (which must outlive @http).
 * Call once, after http_server_start(). false after logging why. */
bool vm_export_register(struct server *srv, struct http_server *http);

#endif
