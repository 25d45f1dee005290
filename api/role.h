/* api/role.h - the static RBAC roles and permissions (api/role.c). Any
 * thread may call these. */
#ifndef VESSEL_API_ROLE_H
#define VESSEL_API_ROLE_H

#include <stdbool.h>

#include "model/xerr.h"
#include "model/xtype.h"

struct db;

/* Makes the store's role records exactly the six roles and one record per
 * generated permission (creating, updating, removing). Call inside a batch. */
bool role_bootstrap(struct db *db, struct xerr **errp);

/* Adds the name labels of @role's permissions to @out (a string set); a
 * permission's only permission is itself. HANDLE_INVALID [role, ref]. */
bool role_permissions_name_label(struct db *db, const char *role, struct xset *out,
                                 struct xerr **errp);

#endif
