/* api/session.c - session.* messages: logging in and out (xapi's ocaml/xapi/rbac.ml and xapi_session.ml).
 *
 * Who may log in: an account of DATA/passwd (root is created on first start);
 * root is the local superuser, any other account needs a subject whose
 * other_config:subject-name is the account name, and gets that subject's
 * roles. On the unix socket, as in xapi, every login is the local superuser:
 * reaching the socket already takes root on the host. A wrong user or
 * password costs the same hashing work and answers
 * SESSION_AUTHENTICATION_FAILED [user, reason]; too many failures from one
 * address are refused for a while (rpc/auth.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/pool_live.h"
#include "common/log.h"
#include "db/db.h"
#include "rpc/auth.h"
#include "rpc/ctx.h"
#include "rpc/peers.h"
#include "rpc/session.h"
#include "xapi_handlers.h"
#include "xapi_errors.h"

struct subject_find {
    const char *name;
    char *ref;
    size_t n_roles;
};

static bool
find_subject(void *opaque, const char *ref, const void *rec)
{
    struct subject_find *f = opaque;
    const struct xapi_subject_record *s = rec;
    const char *name = xmap_get_str((const struct xmap *)&s->other_config, "subject-name");
    if (name && strcmp(name, f->name) == 0) {
        f->ref = strdup(ref);
        f->n_roles = s->roles.n;
        return false;
    }
    return true;
}

static bool
login(struct call_ctx *ctx, const char *uname, const char *pwd, const char *originator,
      char **result, struct xerr **errp)
{
    bool local = ctx->transport == HTTP_TRANSPORT_UNIX;
    if (!local) {
        enum auth_result ar = auth_check(ctx->srv->auth, uname, pwd, ctx->peer);
        if (ar != AUTH_OK) {
            log_warn("session.login_failed", "user=%s peer=%s reason=%s", uname, ctx->peer,
                     ar == AUTH_THROTTLED ? "throttled" : "bad-credentials");
            return xerr_session_authentication_failed(
                errp, uname,
                ar == AUTH_THROTTLED ? "Too many failed logins from this address; try later"
                                     : "Authentication failure");
        }
    }
    bool superuser = local || strcmp(uname, "root") == 0;
    struct subject_find f = {uname, NULL, 0};
    if (!superuser) {
        db_foreach(ctx->db, &xapi_class_subject, find_subject, &f);
        if (!f.ref)
            return xerr_session_authorization_failed(errp, uname,
                              "The account has no subject with a role in this pool");
        if (f.n_roles == 0) { /* xapi_session.ml: a subject without roles may not log in */
            free(f.ref);
            return xerr_rbac_permission_denied(errp, "session.login_with_password",
                                               "The subject has no roles in this pool");
        }
    }
    bool ok = session_create(ctx->srv, local ? "root" : uname, superuser, f.ref, originator,
                             result, errp);
    free(f.ref);
    if (ok)
        log_info("session.login", "user=%s peer=%s originator=%s", uname, ctx->peer, originator);
    return ok;
}

bool
api_session_login_with_password(struct call_ctx *ctx, const char *uname, const char *pwd,
                                const char *version, const char *originator, char **result,
                                struct xerr **errp)
{
    (void)version;
    /* xapi_session.ml: a member sends clients to its master. The local
     * socket stays local: it is xe's on this host, and xe on an xapi member
     * works too (its CLI server forwards). */
    if (ctx->transport != HTTP_TRANSPORT_UNIX && !pool_live_is_master(ctx->srv)) {
        /* a host cut off from the pool's etcd may name a master that is no
         * more (itself included): xapi's word for a host without its master */
        if (pool_live_cut_off(ctx->srv))
            return xerr_host_in_emergency_mode(errp);
        char *master = pool_live_master_address(ctx->srv);
        bool r = xerr_host_is_slave(errp, master ? master : "");
        free(master);
        return r;
    }
    return login(ctx, uname, pwd, originator, result, errp);
}

bool
api_session_slave_local_login_with_password(struct call_ctx *ctx, const char *uname,
                                            const char *pwd, char **result, struct xerr **errp)
{
    return login(ctx, uname, pwd, "", result, errp);
}

bool
api_session_logout(struct call_ctx *ctx, struct xerr **errp)
{
    return db_destroy(ctx->db, &xapi_class_session, ctx->session, errp);
}

bool
api_session_local_logout(struct call_ctx *ctx, struct xerr **errp)
{
    return db_destroy(ctx->db, &xapi_class_session, ctx->session, errp);
}

bool
api_session_change_password(struct call_ctx *ctx, const char *old_pwd, const char *new_pwd,
                            struct xerr **errp)
{
    const char *user = ctx->user;
    /* Local superuser sessions opened on the unix socket need no old password. */
    if (!(ctx->superuser && ctx->transport == HTTP_TRANSPORT_UNIX) &&
        auth_check(ctx->srv->auth, user, old_pwd, ctx->peer) != AUTH_OK)
        return xerr_change_password_rejected(errp, "The old password is wrong");
    if (strlen(new_pwd) < 8)
        return xerr_change_password_rejected(errp, "The new password must have at least 8 characters");
    int rc = auth_set_password(ctx->srv->auth, user, new_pwd);
    if (rc < 0)
        return xerr_internal(errp, "cannot write the password file: %s", strerror(-rc));
    log_info("session.password_changed", "user=%s", user);
    return true;
}

struct identifiers {
    struct xapi_string_set *out;
    bool oom;
};

static bool
collect_identifier(void *opaque, const char *ref, const void *rec)
{
    struct identifiers *ids = opaque;
    const struct xapi_session_record *s = rec;
    if (!*s->auth_user_sid)
        return true;
    if (xset_add_str((struct xset *)ids->out, s->auth_user_sid) < 0)
        ids->oom = true;
    return !ids->oom;
}

bool
api_session_get_all_subject_identifiers(struct call_ctx *ctx, struct xapi_string_set *result,
                                        struct xerr **errp)
{
    struct identifiers ids = {result, false};
    db_foreach(ctx->db, &xapi_class_session, collect_identifier, &ids);
    return ids.oom ? xerr_nomem(errp) : true;
}

struct sid_sessions {
    const char *sid;
    char **refs;
    size_t n;
};

static bool
collect_by_sid(void *opaque, const char *ref, const void *rec)
{
    struct sid_sessions *s = opaque;
    const struct xapi_session_record *r = rec;
    if (strcmp(r->auth_user_sid, s->sid) != 0)
        return true;
    char **grown = realloc(s->refs, (s->n + 1) * sizeof(char *));
    if (!grown)
        return false;
    s->refs = grown;
    if ((s->refs[s->n] = strdup(ref)))
        s->n++;
    return true;
}

bool
api_session_logout_subject_identifier(struct call_ctx *ctx, const char *subject_identifier,
                                      struct xerr **errp)
{
    struct sid_sessions s = {subject_identifier, NULL, 0};
    db_foreach(ctx->db, &xapi_class_session, collect_by_sid, &s);
    for (size_t i = 0; i < s.n; i++) {
        db_destroy(ctx->db, &xapi_class_session, s.refs[i], NULL);
        free(s.refs[i]);
    }
    free(s.refs);
    (void)errp;
    return true;
}

/* xapi (xapi_session.ml) reads a database dump (its XML format) from
 * @filename into a second, read-only database and returns a session on it,
 * for disaster recovery. vesseld keeps one store and reads no foreign dump:
 * the file is checked, then refused as a database it cannot import. */
bool
api_session_create_from_db_file(struct call_ctx *ctx, const char *filename, char **result,
                                struct xerr **errp)
{
    if (access(filename, R_OK) != 0)
        return xerr_internal(errp, "%s: %s", filename, strerror(errno));
    return xerr_could_not_import_database(errp,
                                          "a database dump cannot be opened beside the store");
}

/* xapi_session.ml slave_login: another host of the pool proves the pool
 * secret (rpc/peers.h) and gets a session with every permission, through
 * which it forwards calls to this host. */
bool
api_session_slave_login(struct call_ctx *ctx, const char *host, const char *psecret,
                        char **result, struct xerr **errp)
{
    if (!pool_secret_check(ctx->srv->data_dir, psecret)) {
        log_warn("session.slave_login_failed", "host=%s peer=%s", host, ctx->peer);
        return xerr_session_authentication_failed(errp, host, "Pool credentials invalid");
    }
    if (!db_exists(ctx->db, &xapi_class_host, host))
        return xerr_handle_invalid(errp, "host", host);
    bool ok = session_create_pool(ctx->srv, host, result, errp);
    if (ok)
        log_info("session.slave_login", "host=%s peer=%s", host, ctx->peer);
    return ok;
}
