/* client/xclient.h - our XenAPI client: one connection, typed calls.
 *
 * The generated stubs (build/gen/xapi_client.h, one function per message:
 * xc_vm_get_record(xc, self, &rec, &err) ...) are written on these three
 * calls: begin a call, add typed arguments, finish (send, receive, decode the
 * result into its C type or the XenAPI error into *errp). The transport is
 * XML-RPC over HTTP/1.1 with keep-alive, on a unix socket (the local default,
 * as xe uses), plain TCP or TLS. Used by `xe`, the tests and the benchmarks.
 *
 * Not thread-safe: one xclient per thread.
 */
#ifndef VESSEL_CLIENT_XCLIENT_H
#define VESSEL_CLIENT_XCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/strbuf.h"
#include "model/xerr.h"
#include "model/xtype.h"
#include "wire/wire.h"

struct xclient;

enum xclient_transport { XCLIENT_UNIX, XCLIENT_TCP, XCLIENT_TLS };

struct xclient_config {
    enum xclient_transport transport;
    const char *unix_path; /* XCLIENT_UNIX */
    const char *host;      /* XCLIENT_TCP / XCLIENT_TLS */
    int port;
    /* TLS: accept the server's certificate when its SHA-256 fingerprint (hex,
     * lower case, no colons) equals this; NULL: verify against the system CAs. */
    const char *tls_fingerprint;
    bool tls_insecure; /* accept any certificate (tests, --nossl-like escape hatch) */
    int timeout_ms;    /* per call; 0 = none */
};

/* Connects lazily (at the first call); reconnects once if a kept-alive
 * connection was closed by the server. 0 or -errno with a reason in @why. */
int xclient_new(const struct xclient_config *cfg, struct xclient **out);
void xclient_free(struct xclient *xc);

/* The session the stubs put first for messages that take one. */
void xclient_set_session(struct xclient *xc, const char *session_ref);
const char *xclient_session(const struct xclient *xc);

/* The task the server should report into, sent with every call as the
 * "task-id" header (xapi's http.ml; a pool's hosts forward calls with it);
 * NULL: none. 0 or -ENOMEM. */
int xclient_set_task_id(struct xclient *xc, const char *task_id);
/* The newest store generation the caller's host has applied, sent with
 * every call as the "vessel-generation" header (a pool's hosts send it with
 * the calls they forward, so that the host running one first sees what the
 * caller saw: rpc/dispatch.c); 0: none. */
void xclient_set_generation(struct xclient *xc, uint64_t gen);
/* Whether the last call failed in transport (no connection, a broken or
 * non-200 reply) rather than with a XenAPI error from the server. */
bool xclient_transport_failed(const struct xclient *xc);

/* ---- what the generated stubs call ---- */
struct xclient_call {
    struct xclient *xc;
    struct strbuf body;
    struct wire_writer w;
    bool failed; /* an argument could not be encoded */
};

/* Starts "<methodCall>"; with @with_session the session is the first param. */
void xclient_call_begin(struct xclient *xc, struct xclient_call *call, const char *method,
                        bool with_session);
/* Adds one argument of type @t whose C value is at @value (layouts: model/xtype.h;
 * a record argument is passed as the record pointer itself). */
void xclient_call_arg(struct xclient_call *call, const struct xtype *t, const void *value);
/* Sends the call and waits. On success decodes the Value into @result (of
 * type @t; NULL t for void) and returns true. A Failure reply becomes *errp
 * with its code and parameters; transport problems are INTERNAL_ERROR
 * ["xclient: ..."]. */
bool xclient_call_finish(struct xclient_call *call, const struct xtype *t, void *result,
                         struct xerr **errp);

/* A raw call with already encoded XML params (for generic tools): @params_xml
 * is the inside of <params>...</params>. The decoded Value is returned in *out
 * (an xval tree). */
bool xclient_call_raw(struct xclient *xc, const char *method, const char *params_xml,
                      struct xval **out, struct xerr **errp);

/* ---- additions ---- */

/* Connects now (instead of at the first call), e.g. to learn the server's
 * certificate. Transport problems are INTERNAL_ERROR ["xclient: ..."]. */
bool xclient_connect(struct xclient *xc, struct xerr **errp);

/* TLS: the lower-case hex SHA-256 fingerprint of the server's certificate,
 * once connected; NULL before, and for unix/TCP. Borrowed, valid until the
 * next call. */
const char *xclient_peer_fingerprint(const struct xclient *xc);

/* As xclient_call_raw, with the arguments as value trees (session first when
 * @with_session). The decoded Value is returned in *out (free with xval_free). */
bool xclient_call_xval(struct xclient *xc, const char *method, bool with_session,
                       const struct xval *const *args, size_t n_args, struct xval **out,
                       struct xerr **errp);

#endif
