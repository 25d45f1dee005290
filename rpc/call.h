/* rpc/call.h - one XenAPI call in flight: who asked, how to answer.
 *
 * A call is made by rpc/dispatch.c for each request and answered exactly once,
 * from any thread (rpc/events.c answers long polls from its own): the reply
 * functions write the body in the call's codec, hand it to the HTTP front and
 * free the call.
 */
#ifndef VESSEL_RPC_CALL_H
#define VESSEL_RPC_CALL_H

#include "common/strbuf.h"
#include "common/xval.h"
#include "http/http.h"
#include "rpc/ctx.h"
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

/* Answering a call (any thread), then freeing it. The success writer gets a
 * wire_writer positioned where the result value goes. */
typedef void rpc_result_fn(void *opaque, struct wire_writer *w);
void rpc_call_reply_success(struct rpc_call *call, rpc_result_fn *fn, void *opaque);
void rpc_call_reply_error(struct rpc_call *call, const struct xerr *err);
void rpc_call_free(struct rpc_call *call);

/* Sends @sb (taken) as the call's reply body, then frees the call. */
void rpc_call_reply_bytes(struct rpc_call *call, struct strbuf *sb);
/* Writes @err as a failure in the call's codec. */
void rpc_call_write_failure(struct rpc_call *call, struct wire_writer *w, const struct xerr *err);

#endif
