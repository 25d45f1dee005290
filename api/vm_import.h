/* api/vm_import.h - a VM in from an XVA over HTTP.
 *
 *   PUT /import?sr_id=<SR>|sr_uuid=<uuid>[&restore=true][&force=true][&task_id=]
 *   PUT /import_metadata?[restore=true][&force=true][&task_id=]
 *
 * Authenticated as the other transfer routes (api/transfer_auth.h). The
 * task's result is the new VMs' refs (an XML-RPC array), as xapi's. The
 * format: wire/xva.h.
 */
#ifndef VESSEL_API_VM_IMPORT_H
#define VESSEL_API_VM_IMPORT_H

#include <stdbool.h>

struct http_server;
struct server;

/* Adds the routes to @http, served with @srv (which must outlive @http).
 * Call once, after http_server_start(). false after logging why. */
bool vm_import_register(struct server *srv, struct http_server *http);

#endif
