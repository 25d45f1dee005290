/* api/subject.c - subject.add_to_roles / remove_from_roles.
 * A subject is an account allowed into the pool (a local account named by
 * other_config:subject-name, here) with its roles; the roles must be role
 * objects. As in xapi with RBAC on (ocaml/xapi/xapi_subject.ml, create): a new
 * subject has no role until one is added, and a subject may lose its last one,
 * after which it can no longer log in or act (rpc/session.c, api/session.c).
 */
#include <string.h>

#include "api/role.h"
#include "db/db.h"
#include "rpc/ctx.h"
#include "rpc/session.h"
#include "xapi_handlers.h"
#include "xapi_errors.h"

struct role_change {
    const char *role;
    bool add;
};

static bool
change_roles(void *opaque, void *rec, struct xerr **errp)
{
    struct role_change *c = opaque;
    struct xapi_subject_record *s = rec;
    struct xset *roles = (struct xset *)&s->roles;
    if (c->add)
        return xset_add_str(roles, c->role) == 0 || xerr_nomem(errp);
    if (!xset_contains_str(roles, c->role))
        return xerr_role_not_found(errp);
    xset_remove_str(roles, c->role);
    return true;
}

bool
api_subject_add_to_roles(struct call_ctx *ctx, const char *self, const char *role,
                         struct xerr **errp)
{
    if (session_role_of_ref(role) < 0)
        return xerr_role_not_found(errp);
    struct role_change c = {role, true};
    return db_update(ctx->db, &xapi_class_subject, self, change_roles, &c, errp);
}

bool
api_subject_remove_from_roles(struct call_ctx *ctx, const char *self, const char *role,
                              struct xerr **errp)
{
    struct role_change c = {role, false};
    return db_update(ctx->db, &xapi_class_subject, self, change_roles, &c, errp);
}

/* The union of the permissions of the subject's roles (xapi_subject.ml). */
bool
api_subject_get_permissions_name_label(struct call_ctx *ctx, const char *self,
                                       struct xapi_string_set *result, struct xerr **errp)
{
    struct xapi_subject_record *s = NULL;
    if (!db_get(ctx->db, &xapi_class_subject, self, (void **)&s, errp))
        return false;
    bool ok = true;
    for (size_t i = 0; ok && i < s->roles.n; i++)
        ok = role_permissions_name_label(ctx->db, s->roles.items[i], (struct xset *)result, errp);
    xapi_subject_record_free(s);
    return ok;
}

/*==== auth.* (xapi's ocaml/xapi/xapi_auth.ml) ====
 * The directory behind the subjects is vesseld's own accounts (rpc/auth.c):
 * a subject names one by other_config:subject-name; an identifier no
 * subject has cannot be resolved (SUBJECT_CANNOT_BE_RESOLVED, as xapi's
 * call_with_exception_handler says for Not_found). Local accounts belong to
 * no groups. */

struct subject_find {
    const char *identifier, *name; /* one of them */
    struct xapi_subject_record *found;
};

static bool
subject_find_one(void *opaque, const char *ref, const void *rec)
{
    struct subject_find *f = opaque;
    const struct xapi_subject_record *s = rec;
    const char *name = xmap_get_str((const struct xmap *)&s->other_config, "subject-name");
    bool hit = f->identifier ? strcmp(s->subject_identifier, f->identifier) == 0
                             : name && strcmp(name, f->name) == 0;
    if (hit)
        f->found = xapi_subject_record_copy(s);
    return !hit;
}

static bool
subject_lookup(struct call_ctx *ctx, const char *identifier, const char *name,
               struct xapi_subject_record **out, struct xerr **errp)
{
    struct subject_find f = {identifier, name, NULL};
    db_foreach(ctx->db, &xapi_class_subject, subject_find_one, &f);
    if (!f.found)
        return xerr_subject_cannot_be_resolved(errp);
    *out = f.found;
    return true;
}

bool
api_auth_get_subject_identifier(struct call_ctx *ctx, const char *subject_name, char **result,
                                struct xerr **errp)
{
    struct xapi_subject_record *s = NULL;
    if (!subject_lookup(ctx, NULL, subject_name, &s, errp))
        return false;
    *result = strdup(s->subject_identifier);
    xapi_subject_record_free(s);
    return *result != NULL || xerr_nomem(errp);
}

/* xapi_subject.ml query_subject_information_from_db: the subject's
 * other_config (subject-name, and what else a client stored there). */
bool
api_auth_get_subject_information_from_identifier(struct call_ctx *ctx,
                                                 const char *subject_identifier,
                                                 struct xapi_string_string_map *result,
                                                 struct xerr **errp)
{
    struct xapi_subject_record *s = NULL;
    if (!subject_lookup(ctx, subject_identifier, NULL, &s, errp))
        return false;
    *result = s->other_config;
    s->other_config = (struct xapi_string_string_map){0, NULL, NULL};
    xapi_subject_record_free(s);
    return true;
}

bool
api_auth_get_group_membership(struct call_ctx *ctx, const char *subject_identifier,
                              struct xapi_string_set *result, struct xerr **errp)
{
    struct xapi_subject_record *s = NULL;
    if (!subject_lookup(ctx, subject_identifier, NULL, &s, errp))
        return false;
    xapi_subject_record_free(s);
    return true; /* no groups */
}
