/* api/network.c - network.create and network.destroy: a network is a Linux
 * bridge on this host (xenapi.md 2.3 "network"; docs/networking.md).
 *
 * create is the implicit constructor plus the bridge: named by the record's
 * `bridge`, or "xapi<N>" with the smallest N no network record and no link
 * uses, like xapi. A managed network's bridge is made on the host, empty and
 * up, with the network's MTU; a bridge of that name that exists already is
 * used as it is (the administrator's, see docs: "bridging the host's NIC"),
 * any other link of that name is BRIDGE_NAME_EXISTS. Only a bridge vesseld
 * made (other_config vessel_bridge_created=true) is removed by destroy, so a
 * bridge the administrator made, and a NIC in it, survive every API call.
 * Without CAP_NET_ADMIN (a developer's unprivileged run) the record is made
 * and the bridge is left to the first VIF attach, with a warning.
 *
 * Invariants: (1) vesseld never makes a host NIC a port of any bridge;
 * (2) a bridge is deleted only when vesseld created it and no PIF or VIF
 * record uses its network. Bridge names are chosen and created under
 * net_lock, so two creates never pick the same xapi<N>.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/net_api.h"
#include "api/net_bridge.h"
#include "common/log.h"
#include "db/db.h"
#include "net/net.h"
#include "rpc/ctx.h"
#include "xapi_handlers.h"

/* ------------------------------------------------------------------ create, destroy */

static bool
network_create_locked(struct call_ctx *ctx, struct xapi_network_record *n, char **result,
                      struct xerr **errp)
{
    char name[IFNAMSIZ];
    if (n->bridge[0] == '\0') {
        bridge_name_pick(ctx->db, name, sizeof(name));
        char *b = strdup(name);
        if (!b)
            return xerr_nomem(errp);
        free(n->bridge);
        n->bridge = b;
    } else if (!net_name_valid(n->bridge)) {
        return xerr_invalid_value(errp, "bridge", n->bridge);
    } else if (bridge_name_used(ctx->db, n->bridge)) {
        return xerr_bridge_name_exists(errp, n->bridge);
    }
    if (n->MTU < 68 || n->MTU > 65535)
        return xerr_invalid_value(errp, "MTU", "must be between 68 and 65535");
    bool created = false;
    if (n->managed) {
        const char *step;
        int rc = bridge_make(n->bridge, n->MTU, &created, &step);
        if (rc == -EPERM) /* unprivileged: the record only (see the header) */
            log_warn("network.bridge", "bridge=%s reason=\"no CAP_NET_ADMIN: record only\"",
                     n->bridge);
        else if (rc < 0)
            return bridge_make_err(errp, rc, step, n->bridge);
    }
    if (created && xmap_put_str((struct xmap *)&n->other_config, CREATED_KEY, "true") != 0) {
        net_bridge_delete(n->bridge);
        return xerr_nomem(errp);
    }
    char bridge[IFNAMSIZ];
    snprintf(bridge, sizeof(bridge), "%s", n->bridge);
    struct xapi_network_record *rec = xrecord_copy(&xapi_class_network, n);
    if (!rec || !db_create(ctx->db, &xapi_class_network, NULL, rec, result,
                           rec ? errp : NULL)) {
        if (created)
            net_bridge_delete(bridge); /* rollback: the record was not made */
        return rec ? false : xerr_nomem(errp);
    }
    log_info("network.create", "bridge=%s created=%d", bridge, created);
    return true;
}

bool
api_network_create(struct call_ctx *ctx, const struct xapi_network_record *args, char **result,
                   struct xerr **errp)
{
    struct xapi_network_record *n = xrecord_copy(&xapi_class_network, args);
    if (!n)
        return xerr_nomem(errp);
    /* The server owns these (DRO): a constructor cannot set them. */
    xtype_value_clear(&xapi_type_string_network_operations_map, &n->current_operations);
    pthread_mutex_lock(&net_lock);
    bool ok = network_create_locked(ctx, n, result, errp);
    pthread_mutex_unlock(&net_lock);
    xapi_network_record_free(n);
    return ok;
}

static bool
raise_refs(struct xerr **errp, const char *code, const struct xapi_ref_set *refs)
{
    return xerr_set_at(errp, __FILE__, __LINE__, code, refs->n, (const char *const *)refs->items);
}

bool
api_network_destroy(struct call_ctx *ctx, const char *self, struct xerr **errp)
{
    struct xapi_network_record *n = NULL;
    pthread_mutex_lock(&net_lock);
    bool ok = db_get(ctx->db, &xapi_class_network, self, (void **)&n, errp);
    if (ok && n->PIFs.n > 0)
        ok = raise_refs(errp, "NETWORK_CONTAINS_PIF", &n->PIFs);
    if (ok && n->VIFs.n > 0)
        ok = raise_refs(errp, "NETWORK_CONTAINS_VIF", &n->VIFs);
    if (ok)
        ok = db_destroy(ctx->db, &xapi_class_network, self, errp);
    if (ok) {
        const char *created = xmap_get_str((const struct xmap *)&n->other_config, CREATED_KEY);
        int rc = 0;
        if (n->managed && created && strcmp(created, "true") == 0 &&
            (rc = net_bridge_delete(n->bridge)) < 0 && rc != -ENODEV)
            log_warn_errno(-rc, "network.destroy", "bridge=%s reason=\"bridge left\"", n->bridge);
        log_info("network.destroy", "bridge=%s removed=%d", n->bridge, created && rc == 0);
    }
    pthread_mutex_unlock(&net_lock);
    xapi_network_record_free(n);
    return ok;
}

/* ------------------------------------------------------------------ locking default, purpose */

static bool
default_mode_apply(void *opaque, void *rec, struct xerr **errp)
{
    (void)errp;
    ((struct xapi_network_record *)rec)->default_locking_mode =
        *(const enum xapi_network_default_locking_mode *)opaque;
    return true;
}

bool
api_network_set_default_locking_mode(struct call_ctx *ctx, const char *network,
                                     enum xapi_network_default_locking_mode value,
                                     struct xerr **errp)
{
    struct xapi_network_record *n = NULL;
    if (!db_update(ctx->db, &xapi_class_network, network, default_mode_apply, &value, errp) ||
        !db_get(ctx->db, &xapi_class_network, network, (void **)&n, errp))
        return false;
    /* Running VIFs that follow their network's default take the new one now,
     * as in xapi; a tap that cannot is logged and takes it at its next attach. */
    for (size_t i = 0; i < n->VIFs.n; i++) {
        char tap[IFNAMSIZ];
        struct xerr *err = NULL;
        if (net_vif_live_tap(ctx->srv, n->VIFs.items[i], tap) &&
            !net_vif_locking_apply(ctx->srv, n->VIFs.items[i], tap, &err)) {
            log_warn("network.locking", "vif=%s tap=%s error=%s", n->VIFs.items[i], tap,
                     err ? err->code : "?");
            xerr_free(err);
        }
    }
    xapi_network_record_free(n);
    return true;
}

struct purpose_change {
    enum xapi_network_purpose value;
    bool add;
};

static bool
purpose_apply(void *opaque, void *rec, struct xerr **errp)
{
    const struct purpose_change *c = opaque;
    struct xapi_network_purpose_set *set = &((struct xapi_network_record *)rec)->purpose;
    size_t at = set->n;
    for (size_t i = 0; i < set->n; i++) {
        if (set->items[i] == c->value)
            at = i;
        /* nbd serves with TLS, insecure_nbd without: one network offers one (xapi) */
        else if (c->add && (set->items[i] == XAPI_NETWORK_PURPOSE_NBD ||
                            set->items[i] == XAPI_NETWORK_PURPOSE_INSECURE_NBD))
            return xerr_raise(errp, "NETWORK_INCOMPATIBLE_PURPOSES",
                              xenum_name(&xapi_enum_network_purpose, (int)c->value),
                              xenum_name(&xapi_enum_network_purpose, (int)set->items[i]));
    }
    if (c->add && at == set->n) {
        enum xapi_network_purpose *items = realloc(set->items, (set->n + 1) * sizeof(*items));
        if (!items)
            return xerr_nomem(errp);
        items[set->n++] = c->value;
        set->items = items;
    } else if (!c->add && at < set->n) {
        memmove(&set->items[at], &set->items[at + 1], (set->n - at - 1) * sizeof(*set->items));
        set->n--;
    }
    return true;
}

bool
api_network_add_purpose(struct call_ctx *ctx, const char *self, enum xapi_network_purpose value,
                        struct xerr **errp)
{
    struct purpose_change c = {value, true};
    return db_update(ctx->db, &xapi_class_network, self, purpose_apply, &c, errp);
}

bool
api_network_remove_purpose(struct call_ctx *ctx, const char *self,
                           enum xapi_network_purpose value, struct xerr **errp)
{
    struct purpose_change c = {value, false};
    return db_update(ctx->db, &xapi_class_network, self, purpose_apply, &c, errp);
}
