/* api/role.c - the static RBAC roles and permissions, and role.* messages.
 *
 * xapi's RBAC (ocaml/idl/ocaml_backend/gen_rbac.ml, ocaml/xapi/xapi_role.ml):
 * every message, every http action and a few extra rights are permissions,
 * and a permission is itself a `role` record with no subroles and
 * is_internal = true, its name label the lower-cased name ("vm.start"), its
 * uuid the MD5 of the name. The six roles are records whose subroles are all
 * their permissions, flat: a higher role's list includes every lower role's.
 * The table comes from the generator (xapi_permissions, written from
 * datamodel/ by gen/vgen.py), so a new message is a new permission with no
 * hand edit. The records are kept in the store so that every implicit read
 * (get_all_records, get_by_name_label, get_all_records_where) answers as
 * xapi's static table does; role has no events, as in xapi, where roles are
 * not covered by event.from (XenCenter reads them with role.get_all_records).
 *
 * Invariants:
 *  (1) after role_bootstrap the store holds exactly the six roles and one
 *      record per entry of xapi_permissions, whatever an older version left;
 *  (2) a role's subroles are its permissions, never another role: a
 *      permission's roles are found from its least role alone.
 *
 * Not modelled: the `/key:` permissions of map keys (vm.add_to_other_config/
 * key:folder ...) and xapi's internal client-cert role.
 */
#include "api/role.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "rpc/ctx.h"
#include "rpc/session.h"
#include "xapi_errors.h"
#include "xapi_handlers.h"

/* xapi's ocaml/idl/datamodel_roles.ml, indexed by enum xrole. */
static const char *const role_descriptions[XR_COUNT] = {
    "The Read-Only role can log in with basic read-only access",
    "The VM Operator role can use VMs and interact with VM consoles",
    "The VM Administrator role can manage VMs and templates",
    "The VM Power Administrator role has full access to VM and template management and can "
    "choose where to start VMs and use the dynamic memory control and VM snapshot features",
    "The Pool Operator role manages host- and pool-wide resources, including setting up "
    "storage, creating resource pools and managing patches, high availability (HA) and "
    "workload balancing (WLB)",
    "The Pool Administrator role has full access to all features and settings, including "
    "accessing Dom0 and managing subjects, roles and external authentication",
};

#define PERMISSION_DESCRIPTION "A basic permission"

static void
ref_set_clear(struct xapi_ref_set *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->items[i]);
    free(s->items);
    *s = (struct xapi_ref_set){0, NULL};
}

static void
permission_ref(const struct xperm *p, char out[48])
{
    snprintf(out, 48, "OpaqueRef:%s", p->uuid);
}

/* The permission named @label, or NULL. */
static const struct xperm *
permission_by_label(const char *label)
{
    size_t lo = 0, hi = xapi_n_permissions;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(xapi_permissions[mid].name_label, label);
        if (c == 0)
            return &xapi_permissions[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* The permission whose record is @ref, or NULL (also for the roles). */
static const struct xperm *
permission_by_ref(struct db *db, const char *ref)
{
    struct xapi_role_record *rec = NULL;
    if (!db_get(db, &xapi_class_role, ref, (void **)&rec, NULL))
        return NULL;
    const struct xperm *p = rec->subroles.n == 0 ? permission_by_label(rec->name_label) : NULL;
    xapi_role_record_free(rec);
    return p;
}

/*==== Bootstrap (invariant 1) ====*/

static bool
set_role_fields(void *opaque, void *rec_, struct xerr **errp)
{
    enum xrole r = *(const enum xrole *)opaque;
    struct xapi_role_record *rec = rec_;
    struct xapi_ref_set want = {0, NULL};
    bool ok = true;
    for (size_t i = 0; ok && i < xapi_n_permissions; i++) {
        char ref[48];
        permission_ref(&xapi_permissions[i], ref);
        ok = xapi_permissions[i].role > r || xset_append_str((struct xset *)&want, ref) == 0;
    }
    bool same = ok && want.n == rec->subroles.n;
    for (size_t i = 0; same && i < want.n; i++)
        same = strcmp(want.items[i], rec->subroles.items[i]) == 0;
    if (ok && !same) {
        ref_set_clear(&rec->subroles);
        rec->subroles = want;
        want = (struct xapi_ref_set){0, NULL};
    }
    ref_set_clear(&want);
    if (ok && (!xstr_set(&rec->uuid, session_role_uuid(r)) ||
               !xstr_set(&rec->name_label, xrole_names[r]) ||
               !xstr_set(&rec->name_description, role_descriptions[r])))
        ok = false;
    rec->is_internal = false;
    return ok || xerr_nomem(errp);
}

static bool
ensure_role(struct db *db, enum xrole r, struct xerr **errp)
{
    const char *ref = session_role_ref(r);
    if (!db_exists(db, &xapi_class_role, ref)) {
        struct xapi_role_record *rec = xapi_role_record_new();
        if (!rec)
            return xerr_nomem(errp);
        if (!set_role_fields(&r, rec, errp)) {
            xapi_role_record_free(rec);
            return false;
        }
        return db_create(db, &xapi_class_role, ref, rec, NULL, errp);
    }
    return db_update(db, &xapi_class_role, ref, set_role_fields, &r, errp);
}

static bool
ensure_permission(struct db *db, const struct xperm *p, struct xerr **errp)
{
    char ref[48];
    permission_ref(p, ref);
    if (db_exists(db, &xapi_class_role, ref))
        return true;
    struct xapi_role_record *rec = xapi_role_record_new();
    if (!rec || !xstr_set(&rec->uuid, p->uuid) || !xstr_set(&rec->name_label, p->name_label) ||
        !xstr_set(&rec->name_description, PERMISSION_DESCRIPTION)) {
        xapi_role_record_free(rec);
        return xerr_nomem(errp);
    }
    rec->is_internal = true;
    return db_create(db, &xapi_class_role, ref, rec, NULL, errp);
}

struct stale {
    char **refs;
    size_t n;
    bool oom;
};

static bool
collect_stale(void *opaque, const char *ref, const void *rec_)
{
    struct stale *s = opaque;
    const struct xapi_role_record *rec = rec_;
    if (session_role_of_ref(ref) >= 0)
        return true;
    const struct xperm *p = permission_by_label(rec->name_label);
    char want[48] = "";
    if (p)
        permission_ref(p, want);
    if (strcmp(want, ref) == 0)
        return true;
    char **grown = realloc(s->refs, (s->n + 1) * sizeof(char *));
    if (!grown || !(grown[s->n] = strdup(ref))) {
        if (grown)
            s->refs = grown;
        s->oom = true;
        return false;
    }
    s->refs = grown;
    s->n++;
    return true;
}

bool
role_bootstrap(struct db *db, struct xerr **errp)
{
    for (size_t i = 0; i < xapi_n_permissions; i++)
        if (!ensure_permission(db, &xapi_permissions[i], errp))
            return false;
    for (int r = 0; r < XR_COUNT; r++)
        if (!ensure_role(db, (enum xrole)r, errp))
            return false;
    struct stale s = {NULL, 0, false};
    db_foreach(db, &xapi_class_role, collect_stale, &s);
    bool ok = !s.oom || xerr_nomem(errp);
    for (size_t i = 0; i < s.n; i++) {
        ok = ok && db_destroy(db, &xapi_class_role, s.refs[i], errp);
        free(s.refs[i]);
    }
    free(s.refs);
    return ok;
}

/*==== Queries ====*/

bool
role_permissions_name_label(struct db *db, const char *role, struct xset *out,
                            struct xerr **errp)
{
    int r = session_role_of_ref(role);
    if (r < 0) { /* a permission is its own only permission (xapi_role.ml) */
        struct xapi_role_record *rec = NULL;
        if (!db_get(db, &xapi_class_role, role, (void **)&rec, errp))
            return false;
        bool ok = xset_add_str(out, rec->name_label) == 0;
        xapi_role_record_free(rec);
        return ok || xerr_nomem(errp);
    }
    for (size_t i = 0; i < xapi_n_permissions; i++)
        if ((int)xapi_permissions[i].role <= r &&
            xset_add_str(out, xapi_permissions[i].name_label) < 0)
            return xerr_nomem(errp);
    return true;
}

bool
api_role_get_permissions(struct call_ctx *ctx, const char *self, struct xapi_ref_set *result,
                         struct xerr **errp)
{
    int r = session_role_of_ref(self);
    if (r < 0) {
        if (!db_exists(ctx->db, &xapi_class_role, self))
            return xerr_handle_invalid(errp, "role", self);
        return xset_append_str((struct xset *)result, self) == 0 || xerr_nomem(errp);
    }
    for (size_t i = 0; i < xapi_n_permissions; i++) {
        char ref[48];
        permission_ref(&xapi_permissions[i], ref);
        if ((int)xapi_permissions[i].role <= r &&
            xset_append_str((struct xset *)result, ref) < 0)
            return xerr_nomem(errp);
    }
    return true;
}

bool
api_role_get_permissions_name_label(struct call_ctx *ctx, const char *self,
                                    struct xapi_string_set *result, struct xerr **errp)
{
    return role_permissions_name_label(ctx->db, self, (struct xset *)result, errp);
}

/* The roles holding @p (invariant 2): @p itself is left out, as in xapi. */
static bool
roles_holding(const struct xperm *p, struct xapi_ref_set *result, struct xerr **errp)
{
    for (int r = p ? (int)p->role : XR_COUNT; r < XR_COUNT; r++)
        if (xset_append_str((struct xset *)result, session_role_ref((enum xrole)r)) < 0)
            return xerr_nomem(errp);
    return true;
}

bool
api_role_get_by_permission(struct call_ctx *ctx, const char *permission,
                           struct xapi_ref_set *result, struct xerr **errp)
{
    return roles_holding(permission_by_ref(ctx->db, permission), result, errp);
}

bool
api_role_get_by_permission_name_label(struct call_ctx *ctx, const char *label,
                                      struct xapi_ref_set *result, struct xerr **errp)
{
    (void)ctx;
    return roles_holding(permission_by_label(label), result, errp);
}
