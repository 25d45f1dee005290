/* api/forward.h - the bulk-transfer routes of a pool: a request for another
 * host's disks is redirected there (xapi's export.ml, import.ml,
 * import_raw_vdi.ml, export_raw_vdi.ml answer 302 with the same path and
 * query on that host's address; XenAPI clients and Xen Orchestra follow
 * it). The API's own calls are forwarded by rpc/dispatch.c instead
 * (api/forward.c's resolvers). */
#ifndef VESSEL_API_FORWARD_H
#define VESSEL_API_FORWARD_H

#include <stdbool.h>

#include "http/http.h"

struct server;

enum forward_object { FORWARD_VM, FORWARD_SR, FORWARD_VDI };

/* When @ref (a ref, or a uuid when @by_uuid) of @what belongs to another
 * host and the caller holds @permission, answers @req with a 302 to that
 * host and returns true; false otherwise (@req untouched: the route serves
 * or refuses it as without a pool). */
bool forward_transfer_redirect(struct server *srv, struct http_request *req,
                               const char *permission, enum forward_object what, const char *ref,
                               bool by_uuid);

#endif
