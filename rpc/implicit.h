/* rpc/implicit.h - the messages every class gets from the data model alone:
 * get_record, get_all(_records)(_where), get_by_uuid, get_by_name_label,
 * get_/set_<field>, add_to_/remove_from_<map>, add_/remove_<set>, create and
 * destroy (xenapi.md 2.1). One generic implementation serves all classes
 * from the descriptors; a class that needs more declares the message by hand
 * in its datamodel file and api/ implements it.
 */
#ifndef VESSEL_RPC_IMPLICIT_H
#define VESSEL_RPC_IMPLICIT_H

#include "model/xmsg.h"
#include "rpc/ctx.h"

/* A class whose records carry derived fields (VM.allowed_operations) registers
 * a hook that re-derives them; implicit setters run it in the same update as
 * the write. Call before the listeners start. */
typedef bool implicit_after_write_fn(void *rec, struct xerr **errp);
void rpc_implicit_after_write(const struct xclass *cls, implicit_after_write_fn *fn);

bool rpc_implicit_call(struct call_ctx *ctx, const struct xmsg *m, struct xval *const *args,
                       struct wire_writer *out, struct xerr **errp);

#endif
