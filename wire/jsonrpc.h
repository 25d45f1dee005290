/* wire/jsonrpc.h - JSON-RPC 1.0 and 2.0 requests in, XenAPI-shaped replies out.
 *
 * shared/spec/xenapi.md 1.3: "jsonrpc":"2.0" selects v2, absence v1, any other
 * value is a parse failure; the id (string or integer) is required; v1 params
 * must be an array, v2 params may be omitted (no params) and a named-params
 * object is passed as one struct argument. Parsing uses jansson with a depth
 * limit, rejecting duplicate keys and NUL bytes inside strings. Thread-safe.
 */
#ifndef VESSEL_WIRE_JSONRPC_H
#define VESSEL_WIRE_JSONRPC_H

#include <stddef.h>

#include "common/xval.h"
#include "wire/wire.h"

#define JSONRPC_MAX_DEPTH 32

enum jsonrpc_version { JSONRPC_V1 = 1, JSONRPC_V2 = 2 };

struct jsonrpc_call {
    enum jsonrpc_version version;
    char *method;
    struct xval *params; /* XVAL_ARRAY */
    struct xval *id;     /* XVAL_STRING or XVAL_INT, echoed in the reply */
};

/* Parses a request. Returns 0 and fills @call (release with
 * jsonrpc_call_release), or -EINVAL/-E2BIG/-ENOMEM with a reason in @why.
 * JSON numbers: integers that fit int64 become XVAL_INT, others XVAL_DOUBLE;
 * true/false XVAL_BOOL, null XVAL_NIL, strings XVAL_STRING. */
int jsonrpc_parse_call(const char *body, size_t len, struct jsonrpc_call *call, char *why,
                       size_t why_len);
void jsonrpc_call_release(struct jsonrpc_call *call);

/* Parses any JSON text into an xval with the same mapping (used by db/ to read
 * stored records, and by our client for replies). 0 or negative errno.
 * Nesting up to WIRE_MAX_DEPTH + 2 is accepted (whatever the writer wrote,
 * inside a reply envelope); JSONRPC_MAX_DEPTH bounds a request's params. */
int json_parse_xval(const char *text, size_t len, struct xval **out, char *why, size_t why_len);

/* Reply framing, @w a WIRE_JSON writer:
 *   v1 success: {"result":VALUE,"error":null,"id":ID}
 *   v2 success: {"jsonrpc":"2.0","result":VALUE,"id":ID}
 * jsonrpc_begin_success(w, version) writes up to and including "result":,
 * then the caller writes VALUE, then jsonrpc_end_success(w, version, id). */
void jsonrpc_begin_success(struct wire_writer *w, enum jsonrpc_version version);
void jsonrpc_end_success(struct wire_writer *w, enum jsonrpc_version version,
                         const struct xval *id);
/*   v1 failure: {"result":null,"error":[CODE,p1,...],"id":ID}
 *   v2 failure: {"jsonrpc":"2.0","error":{"code":1,"message":CODE,"data":[p1,...]},"id":ID} */
void jsonrpc_write_failure(struct wire_writer *w, enum jsonrpc_version version,
                           const struct xval *id, const char *code, const char *const *params,
                           size_t n_params);

/* Request framing for our client (v2): {"jsonrpc":"2.0","method":M,"id":ID,"params":[
 * then one value per argument, then jsonrpc_end_call. */
void jsonrpc_begin_call(struct wire_writer *w, const char *method, int64_t id);
void jsonrpc_end_call(struct wire_writer *w);

#endif
