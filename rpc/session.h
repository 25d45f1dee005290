/* rpc/session.h - sessions: creating them at login, checking them on every call.
 *
 * A session is a `session` record in the store (so sessions survive a restart
 * of vesseld, as xapi's do); its ref is a random bearer token. The caller's
 * role is not stored in the session: it is read from the session's subject
 * (a local account's subject record lists its roles), so a role change
 * applies at once. Local superuser sessions (root, or any login on the unix
 * socket) have every permission.
 */
#ifndef VESSEL_RPC_SESSION_H
#define VESSEL_RPC_SESSION_H

#include <stdbool.h>

#include "model/xerr.h"
#include "model/xmsg.h"
#include "rpc/ctx.h"

struct session_info {
    char *user;
    char *originator;
    enum xrole role;
    bool superuser;
    bool pool; /* a slave session (session.slave_login) */
};

void session_info_release(struct session_info *si);

/* SESSION_INVALID [ref] when @ref names no live session (or an expired one). */
bool session_check(struct server *srv, const char *ref, struct session_info *out,
                   struct xerr **errp);
/* A new session for @user; @subject is the account's subject ref or NULL. */
bool session_create(struct server *srv, const char *user, bool superuser, const char *subject,
                    const char *originator, char **ref_out, struct xerr **errp);
/* A slave session for another host of the pool (session.slave_login): every
 * permission, `pool` set, its user name the host's ref. */
bool session_create_pool(struct server *srv, const char *host, char **ref_out,
                         struct xerr **errp);
/* Destroys sessions idle for longer than srv->session_idle_s; returns how many. */
unsigned session_gc(struct server *srv);
/* The role refs (deterministic: MD5 of the name laid out as a uuid). */
const char *session_role_ref(enum xrole r);
const char *session_role_uuid(enum xrole r);
int session_role_of_ref(const char *ref); /* enum xrole or -1 */

#endif
