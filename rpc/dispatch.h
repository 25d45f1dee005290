/* rpc/dispatch.h - from an HTTP request to a XenAPI reply.
 *
 * rpc_handle_http is the http_server's handler: it picks the codec by path
 * (/jsonrpc: JSON-RPC; any other POST: XML-RPC), parses, and runs the call
 * through the checks every message gets, in xapi's order (xenapi.md 1.4):
 * session, method, arity, role. Then a sync call runs on the request thread,
 * an Async one becomes a task on the worker pool, and event.from/next may wait
 * in rpc/events.c without a thread. A body that does not parse is answered
 * with HTTP 500 and an HTML reason, as xapi does; every other failure is a
 * XenAPI error in an HTTP 200 reply.
 */
#ifndef VESSEL_RPC_DISPATCH_H
#define VESSEL_RPC_DISPATCH_H

#include "http/http.h"
#include "rpc/call.h"

void rpc_handle_http(void *opaque, struct http_request *req);

#endif
