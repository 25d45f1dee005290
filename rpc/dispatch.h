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

#include "common/xval.h"
#include "rpc/ctx.h"
#include "http/http.h"
#include "wire/jsonrpc.h"

/* One call in flight: how to answer it and who asked. */
struct rpc_call {
    struct server *srv;
    struct http_request *req;
    enum wire_format format;
    enum jsonrpc_version json_version;
    struct xval *json_id;
    char *method;
    struct xval *params; /* XVAL_ARRAY */
    struct call_ctx ctx;
    char *session_ref;
    char *user;
    char *originator;
    char *peer; /* the client's address, owned: ctx.peer points here */
};

void rpc_handle_http(void *opaque, struct http_request *req);

/* Answering a call (any thread), then freeing it. The success writer gets a
 * wire_writer positioned where the result value goes. */
typedef void rpc_result_fn(void *opaque, struct wire_writer *w);
void rpc_call_reply_success(struct rpc_call *call, rpc_result_fn *fn, void *opaque);
void rpc_call_reply_error(struct rpc_call *call, const struct xerr *err);
void rpc_call_free(struct rpc_call *call);

#endif
