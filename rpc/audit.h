/* rpc/audit.h - the audit log: who changed what, and how it ended.
 *
 * One line per call that changes state (and per login), whatever its outcome,
 * denied calls included, as xapi's audit log keeps them (ocaml/xapi/rbac_audit.ml):
 *   2026-12-06T13:02:03Z user=alice session=#3f2a9c0e41d7 peer=10.0.0.5
 *     call=VM.clean_shutdown self=OpaqueRef:… task=OpaqueRef:… outcome=ok
 * A session appears only as a hash of its ref (the ref is a bearer token);
 * arguments other than the object acted on are not written (they may hold
 * passwords or secrets). The file (mode 0600) is rotated at a size: audit.log
 * becomes audit.log.1, the oldest of AUDIT_KEEP_FILES goes. Thread-safe.
 */
#ifndef VESSEL_RPC_AUDIT_H
#define VESSEL_RPC_AUDIT_H

#include <stdbool.h>
#include <stddef.h>

#include "model/xmsg.h"

#define AUDIT_MAX_BYTES (16u << 20)
#define AUDIT_KEEP_FILES 5

struct audit;

/* Opens (appends to) @path, rotating at @max_bytes. 0 or negative errno. */
int audit_open(const char *path, size_t max_bytes, struct audit **out);
void audit_close(struct audit *a);

struct audit_entry {
    const char *user;    /* account name, or the login name tried */
    const char *session; /* the caller's session ref, or NULL */
    const char *peer;
    const char *call;    /* wire name, "Async." included */
    const char *self;    /* the object acted on, or NULL */
    const char *task;    /* the task an Async call runs in, or NULL */
    const char *outcome; /* "ok", or the error code */
};

/* Appends one line; a failure to write is logged once, never fatal. */
void audit_write(struct audit *a, const struct audit_entry *e);

/* Does message @m change state (anything but reads and event polls)? */
bool audit_wants(const struct xmsg *m);

/* A short, stable, non-reversible name for session @ref: "#" and 12 hex
 * digits of its SHA-256. Used by the audit log and vesseld's own log. */
void audit_session_id(const char *ref, char out[14]);

#endif
