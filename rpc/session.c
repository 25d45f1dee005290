/* rpc/session.c - checking the session of every call; creating and expiring them.
 *
 * A check is one hash lookup in the store plus, for accounts that are not the
 * local superuser, one more for the subject's roles. last_active is refreshed
 * in memory only (db_set_volatile), at most every SESSION_TOUCH_S seconds: it
 * decides expiry, it is not worth a commit per call.
 *
 * Role refs are deterministic (xapi's doc/content/xen-api/wire-protocol.md): the uuid is the MD5 of the
 * role's name laid out as a uuid, so every host agrees on them.
 */
#include "rpc/session.h"

#include <gnutls/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db/db.h"
#include "xapi_model.h"
#include "xapi_errors.h"

#define SESSION_TOUCH_S 30

static char role_uuids[XR_COUNT][37];
static char role_refs[XR_COUNT][48];
static pthread_once_t roles_once = PTHREAD_ONCE_INIT;

static void
roles_init(void)
{
    for (int r = 0; r < XR_COUNT; r++) {
        unsigned char md5[16];
        gnutls_hash_fast(GNUTLS_DIG_MD5, xrole_names[r], strlen(xrole_names[r]), md5);
        snprintf(role_uuids[r], sizeof(role_uuids[r]),
                 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", md5[0],
                 md5[1], md5[2], md5[3], md5[4], md5[5], md5[6], md5[7], md5[8], md5[9], md5[10],
                 md5[11], md5[12], md5[13], md5[14], md5[15]);
        memcpy(role_refs[r], "OpaqueRef:", 10);
        memcpy(role_refs[r] + 10, role_uuids[r], 37);
    }
}

const char *
session_role_ref(enum xrole r)
{
    pthread_once(&roles_once, roles_init);
    return role_refs[r];
}

const char *
session_role_uuid(enum xrole r)
{
    pthread_once(&roles_once, roles_init);
    return role_uuids[r];
}

int
session_role_of_ref(const char *ref)
{
    pthread_once(&roles_once, roles_init);
    for (int r = 0; r < XR_COUNT; r++)
        if (strcmp(role_refs[r], ref) == 0)
            return r;
    return -1;
}

void
session_info_release(struct session_info *si)
{
    free(si->user);
    free(si->originator);
    si->user = si->originator = NULL;
}

struct session_peek {
    char *user;
    char *originator;
    char *subject;
    bool superuser;
    bool pool;
    int64_t last_active;
};

static void
peek_session(void *opaque, const void *rec)
{
    const struct xapi_session_record *s = rec;
    struct session_peek *p = opaque;
    p->user = strdup(s->auth_user_name);
    p->originator = strdup(s->originator);
    p->subject = strdup(s->subject);
    p->superuser = s->is_local_superuser;
    p->pool = s->pool;
    p->last_active = s->last_active;
}

static void
peek_roles(void *opaque, const void *rec)
{
    const struct xapi_subject_record *s = rec;
    int *best = opaque;
    for (size_t i = 0; i < s->roles.n; i++) {
        int r = session_role_of_ref(s->roles.items[i]);
        if (r > *best)
            *best = r;
    }
}

bool
session_check(struct server *srv, const char *ref, struct session_info *out, struct xerr **errp)
{
    struct session_peek p = {0};
    if (!db_with(srv->db, &xapi_class_session, ref, peek_session, &p, NULL))
        return xerr_session_invalid(errp, ref);
    time_t now = time(NULL);
    bool expired = srv->session_idle_s > 0 && p.last_active + srv->session_idle_s < now;
    int role = -1;
    if (!p.superuser && !expired)
        db_with(srv->db, &xapi_class_subject, p.subject, peek_roles, &role, NULL);
    free(p.subject);
    if (expired || !p.user || !p.originator || (!p.superuser && role < 0)) {
        free(p.user);
        free(p.originator);
        /* A session whose subject lost every role can no longer act. */
        return xerr_session_invalid(errp, ref);
    }
    if (now - p.last_active >= SESSION_TOUCH_S) {
        int64_t t = now;
        db_set_volatile(srv->db, &xapi_class_session, ref,
                        xclass_field(&xapi_class_session, "last_active"), &t, NULL);
    }
    out->user = p.user;
    out->originator = p.originator;
    out->superuser = p.superuser;
    out->pool = p.pool;
    out->role = p.superuser ? XR_POOL_ADMIN : (enum xrole)role;
    return true;
}

static void
peek_identifier(void *opaque, const void *rec)
{
    xstr_set(opaque, ((const struct xapi_subject_record *)rec)->subject_identifier);
}

static void
peek_all_roles(void *opaque, const void *rec)
{
    const struct xapi_subject_record *s = rec;
    bool *held = opaque;
    for (size_t i = 0; i < s->roles.n; i++) {
        int r = session_role_of_ref(s->roles.items[i]);
        if (r >= 0)
            held[r] = true;
    }
}

/* session.rbac_permissions as xapi's xapi_session.ml get_permissions makes
 * it at login: for each role of the subject its name, then the name labels
 * of its permissions (XenCenter finds the session's roles among these names
 * and builds its menus from the rest). The local superuser's list is empty:
 * it may do anything. Names are unique: a role's permissions are those whose
 * least role is at or below it. */
static bool
session_fill_permissions(struct server *srv, const char *subject, struct xset *out)
{
    bool held[XR_COUNT] = {false};
    db_with(srv->db, &xapi_class_subject, subject, peek_all_roles, held, NULL);
    int top = -1;
    for (int r = 0; r < XR_COUNT; r++) {
        if (!held[r])
            continue;
        top = r;
        if (xset_append_str(out, xrole_names[r]) < 0)
            return false;
    }
    for (size_t i = 0; top >= 0 && i < xapi_n_permissions; i++)
        if ((int)xapi_permissions[i].role <= top &&
            xset_append_str(out, xapi_permissions[i].name_label) < 0)
            return false;
    return true;
}

static bool
session_make(struct server *srv, const char *user, bool superuser, const char *subject,
             const char *originator, bool pool, char **ref_out, struct xerr **errp)
{
    struct xapi_session_record *s = xapi_session_record_new();
    if (!s)
        return xerr_nomem(errp);
    char *u = strdup(user), *o = strdup(originator ? originator : ""),
         *h = strdup(srv->host_ref), *sub = strdup(subject ? subject : "OpaqueRef:NULL");
    if (!u || !o || !h || !sub) {
        free(u);
        free(o);
        free(h);
        free(sub);
        xapi_session_record_free(s);
        return xerr_nomem(errp);
    }
    free(s->auth_user_name);
    s->auth_user_name = u;
    free(s->originator);
    s->originator = o;
    free(s->this_host);
    s->this_host = h;
    free(s->subject);
    s->subject = sub;
    s->is_local_superuser = superuser;
    s->pool = pool;
    s->last_active = s->validation_time = time(NULL);
    /* the subject's identifier, as xapi records an external user's SID */
    if (!superuser && subject)
        db_with(srv->db, &xapi_class_subject, subject, peek_identifier, &s->auth_user_sid, NULL);
    if (!superuser && subject && !session_fill_permissions(srv, subject, (struct xset *)&s->rbac_permissions)) {
        xapi_session_record_free(s);
        return xerr_nomem(errp);
    }
    return db_create(srv->db, &xapi_class_session, NULL, s, ref_out, errp);
}

bool
session_create(struct server *srv, const char *user, bool superuser, const char *subject,
               const char *originator, char **ref_out, struct xerr **errp)
{
    return session_make(srv, user, superuser, subject, originator, false, ref_out, errp);
}

bool
session_create_pool(struct server *srv, const char *host, char **ref_out, struct xerr **errp)
{
    /* xapi_session.ml slave_login: the host's ref as the user name, every permission */
    return session_make(srv, host, true, NULL, "", true, ref_out, errp);
}

struct expired {
    char **refs;
    size_t n;
    time_t cutoff;
};

static bool
collect_expired(void *opaque, const char *ref, const void *rec)
{
    struct expired *e = opaque;
    const struct xapi_session_record *s = rec;
    if (s->last_active >= e->cutoff)
        return true;
    char **grown = realloc(e->refs, (e->n + 1) * sizeof(char *));
    if (!grown)
        return false;
    e->refs = grown;
    if ((e->refs[e->n] = strdup(ref)))
        e->n++;
    return true;
}

unsigned
session_gc(struct server *srv)
{
    if (srv->session_idle_s <= 0)
        return 0;
    struct expired e = {NULL, 0, time(NULL) - srv->session_idle_s};
    db_foreach(srv->db, &xapi_class_session, collect_expired, &e);
    unsigned n = 0;
    for (size_t i = 0; i < e.n; i++) {
        if (db_destroy(srv->db, &xapi_class_session, e.refs[i], NULL))
            n++;
        free(e.refs[i]);
    }
    free(e.refs);
    return n;
}
