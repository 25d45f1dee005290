/* model/xmsg.h - the message table: every wire method the server answers.
 *
 * Generated from datamodel/ (build/generated/xapi_dispatch.c): one entry per
 * method, implicit (get_record, get_<field>, set_<field> ...) and explicit
 * (VM.start ...). rpc/dispatch.c looks a wire name up here, checks the
 * session, the role and the arity, fills defaulted trailing parameters, and
 * calls the entry: an explicit message's generated wrapper decodes the
 * arguments into C types, calls the hand-written api_<class>_<message>() and
 * encodes its result; an implicit one goes to api/implicit.c, which serves
 * every class from the descriptors.
 */
#ifndef VESSEL_MODEL_XMSG_H
#define VESSEL_MODEL_XMSG_H

#include "model/xtype.h"

struct call_ctx; /* api/ctx.h */

enum xmsg_kind {
    XM_EXPLICIT,   /* hand-written api_<class>_<message> */
    XM_TODO,       /* in the XenAPI, not built yet: answers NOT_IMPLEMENTED */
    XM_SPECIAL,    /* served by rpc/ itself (event.from, event.next: long polls) */
    XM_GET_RECORD,
    XM_GET_ALL,
    XM_GET_ALL_RECORDS,
    XM_GET_ALL_WHERE,
    XM_GET_ALL_RECORDS_WHERE,
    XM_GET_BY_UUID,
    XM_GET_BY_NAME_LABEL,
    XM_GET_FIELD,
    XM_SET_FIELD,
    XM_MAP_ADD,
    XM_MAP_REMOVE,
    XM_SET_ADD,
    XM_SET_REMOVE,
    XM_CREATE,
    XM_DESTROY,
};

/* Roles, least privileged first: a session with role r may call a message
 * whose role is <= r (xapi's roles are nested). */
enum xrole {
    XR_READ_ONLY,
    XR_VM_OPERATOR,
    XR_VM_ADMIN,
    XR_VM_POWER_ADMIN,
    XR_POOL_OPERATOR,
    XR_POOL_ADMIN,
};
#define XR_COUNT 6
extern const char *const xrole_names[XR_COUNT]; /* "read-only" ... "pool-admin" */
int xrole_parse(const char *name);              /* index or -1 */

enum xmsg_flags {
    XMF_DEPRECATED = 1 << 0,
    XMF_REMOVED = 1 << 1,
};

struct xmsg_param {
    const char *name;
    const struct xtype *type;
    const char *default_json; /* trailing defaulted parameter, or NULL */
};

/* Decodes args[0..n_params), runs the message, writes its result (one value;
 * void is "") to @out. On failure returns false with *errp set; whatever was
 * written to @out is then discarded by the caller. */
typedef bool xmsg_call_fn(struct call_ctx *ctx, struct xval *const *args, struct wire_writer *out,
                          struct xerr **errp);
/* Names the host that must run the message (datamodel "forward"): *host is
 * a host ref owned by the caller, or NULL for this host; rpc/dispatch.c
 * forwards the call when it is another host (xapi's message_forwarding.ml). */
typedef bool xmsg_forward_fn(struct call_ctx *ctx, struct xval *const *args, char **host,
                             struct xerr **errp);

struct xmsg {
    const char *wire_name; /* "VM.start" */
    const struct xclass *cls;
    const char *name; /* "start" */
    enum xmsg_kind kind;
    const struct xfield *field; /* implicit field messages */
    const struct xmsg_param *params; /* without the session */
    size_t n_params;
    size_t n_required;
    const struct xtype *result; /* NULL: void */
    enum xrole role;
    bool session; /* first wire parameter is a session ref */
    bool async;   /* Async.<wire_name> allowed */
    unsigned flags;
    xmsg_call_fn *call; /* explicit: generated wrapper; implicit: NULL */
    xmsg_forward_fn *forward; /* NULL: runs on the host that received it */
};

/* A static RBAC permission (xapi's gen_rbac.ml): every message, http action
 * and extra permission, held by @role and every role above it. Its record
 * is a `role` with no subroles: ref "OpaqueRef:" + uuid. */
struct xperm {
    const char *name_label; /* "vm.start", "http/put_import_raw_vdi" */
    const char *uuid;       /* MD5 of the name as written ("VM.start") */
    enum xrole role;        /* the least role holding it */
};
extern const struct xperm xapi_permissions[]; /* sorted by name_label */
extern const size_t xapi_n_permissions;

extern const struct xmsg xapi_messages[];
extern const size_t xapi_n_messages;
/* Exact wire name ("VM.start"; also "VM_start" as xapi accepts), or NULL. */
const struct xmsg *xmsg_lookup(const char *wire_name);

#endif
