/* wire/xmlrpc.h - XML-RPC requests in, XenAPI-shaped XML-RPC replies out.
 *
 * Parsing uses expat with a hard limit on depth and size; any malformed or
 * hostile body gives a negative errno and a short human reason, never a crash.
 * Replies are written without whitespace between tags (what real clients send (Xen Orchestra's xen-api package, the XenAPI SDKs)).
 * Thread-safe: no shared state.
 */
#ifndef VESSEL_WIRE_XMLRPC_H
#define VESSEL_WIRE_XMLRPC_H

#include <stddef.h>

#include "common/strbuf.h"
#include "common/xval.h"
#include "wire/wire.h"

/* Deepest nesting of <array>/<struct> accepted in a request. */
#define XMLRPC_MAX_DEPTH 32

/* Parses a <methodCall>. On success returns 0, *method is a new string and
 * *params a new XVAL_ARRAY (possibly empty), both owned by the caller.
 * On failure returns -EINVAL (malformed: not XML, not a methodCall, bad value
 * element, bad <int>/<double>/<boolean> text, missing methodName), -E2BIG (too
 * deep) or -ENOMEM, and writes a one-line reason into @why (always
 * NUL-terminated when why_len > 0). Accepts <string>, untyped text, <int>,
 * <i4>, <i8>, <double>, <boolean>, <dateTime.iso8601>, <base64> (kept as its
 * text), <nil/>, <array>, <struct>. The document must be UTF-8 or ASCII.
 * Details: <int>/<i4>/<i8> take any decimal int64 and <double> any finite
 * decimal number (no hex, nan, inf), both with surrounding whitespace
 * ignored; <boolean> is 0 or 1; a <value> holding only text (even only
 * whitespace, or nothing: <value/>) is that string, elsewhere whitespace
 * between tags is ignored; struct members keep their order (and duplicates);
 * attributes are ignored; any DOCTYPE is refused (-EINVAL), so no entity is
 * ever declared or expanded; nesting beyond XMLRPC_MAX_DEPTH gives -E2BIG. */
int xmlrpc_parse_call(const char *body, size_t len, char **method, struct xval **params,
                      char *why, size_t why_len);
/* The same, always through expat: the common calls take a fast path in
 * xmlrpc_parse_call that must give the same result (checked by the fuzz
 * target and the unit tests). */
int xmlrpc_parse_call_expat(const char *body, size_t len, char **method, struct xval **params,
                            char *why, size_t why_len);

/* Parses a <methodResponse> holding one <param> (used by our client and by
 * task.result tests). Returns 0 and *value, or a negative errno as above. A
 * <fault> is returned as its struct value with -EPROTO. */
int xmlrpc_parse_response(const char *body, size_t len, struct xval **value, char *why,
                          size_t why_len);

/* Parses a bare <value>...</value> fragment (a task's result). */
int xmlrpc_parse_value(const char *text, size_t len, struct xval **value, char *why,
                       size_t why_len);

/* Reply framing. A success reply is
 *   xmlrpc_begin_success(w); <write the Value>; xmlrpc_end_success(w);
 * which yields <?xml version="1.0"?><methodResponse><params><param><value>
 * <struct><member><name>Status</name><value>Success</value></member><member>
 * <name>Value</name> VALUE </member></struct></value></param></params>
 * </methodResponse>. @w must be a WIRE_XMLRPC writer. */
void xmlrpc_begin_success(struct wire_writer *w);
void xmlrpc_end_success(struct wire_writer *w);
/* Failure reply: Status "Failure", ErrorDescription [code, params...]. */
void xmlrpc_write_failure(struct wire_writer *w, const char *code, const char *const *params,
                          size_t n_params);
/* A reply whose whole param is a bare value (system.listMethods): begin, value, end. */
void xmlrpc_begin_bare(struct wire_writer *w);
void xmlrpc_end_bare(struct wire_writer *w);

/* Request framing, for our client: <methodCall><methodName>m</methodName>
 * <params> then one xmlrpc_begin_param/value/xmlrpc_end_param per argument,
 * then xmlrpc_end_call. */
void xmlrpc_begin_call(struct wire_writer *w, const char *method);
void xmlrpc_begin_param(struct wire_writer *w);
void xmlrpc_end_param(struct wire_writer *w);
void xmlrpc_end_call(struct wire_writer *w);

#endif
