/* rpc/call.c - one XenAPI call in flight: answering it in its codec, freeing it.
 *
 * Shared by rpc/dispatch.c, which makes calls and answers most of them, and
 * rpc/events.c, which answers the long polls it holds.
 */
#include "rpc/call.h"

#include <stdlib.h>

#include "wire/xmlrpc.h"

void
rpc_call_reply_bytes(struct rpc_call *call, struct strbuf *sb)
{
    size_t len;
    char *body = strbuf_steal(sb, &len);
    const char *ctype = call->format == WIRE_JSON ? "application/json" : "text/xml";
    if (!body) {
        http_reply(call->req, 500, "text/html", "<html><body>out of memory</body></html>", 39);
    } else {
        http_reply_take(call->req, 200, ctype, body, len);
    }
    call->req = NULL;
    rpc_call_free(call);
}

void
rpc_call_write_failure(struct rpc_call *call, struct wire_writer *w, const struct xerr *err)
{
    if (call->format == WIRE_JSON)
        jsonrpc_write_failure(w, call->json_version, call->json_id, err->code,
                              (const char *const *)err->params, err->n_params);
    else
        xmlrpc_write_failure(w, err->code, (const char *const *)err->params, err->n_params);
}

void
rpc_call_reply_error(struct rpc_call *call, const struct xerr *err)
{
    struct strbuf sb = STRBUF_INIT;
    struct wire_writer w;
    wire_writer_init(&w, call->format, &sb);
    rpc_call_write_failure(call, &w, err);
    rpc_call_reply_bytes(call, &sb);
}

void
rpc_call_reply_success(struct rpc_call *call, rpc_result_fn *fn, void *opaque)
{
    struct strbuf sb = STRBUF_INIT;
    struct wire_writer w;
    wire_writer_init(&w, call->format, &sb);
    if (call->format == WIRE_JSON) {
        jsonrpc_begin_success(&w, call->json_version);
        fn(opaque, &w);
        jsonrpc_end_success(&w, call->json_version, call->json_id);
    } else {
        xmlrpc_begin_success(&w);
        fn(opaque, &w);
        xmlrpc_end_success(&w);
    }
    rpc_call_reply_bytes(call, &sb);
}

void
rpc_call_free(struct rpc_call *call)
{
    if (!call)
        return;
    xval_free(call->json_id);
    xval_free(call->params);
    free(call->method);
    free(call->session_ref);
    free(call->user);
    free(call->originator);
    free(call->peer);
    free(call);
}
