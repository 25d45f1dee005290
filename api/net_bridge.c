/* api/net_bridge.c - a network's bridge on this host, for every network file.
 *
 * What api/network.c (create, destroy), api/vif_tap.c (a VIF's tap joins the
 * bridge) and the VLAN code share: the lock under which bridge names are
 * chosen and bridges made or removed, the free "xapi<N>" names, making a
 * bridge exist and be up, and netlink errors as XenAPI errors. The rules are
 * network.c's (its header); nothing here calls another file of api/.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/net_api.h"
#include "api/net_bridge.h"
#include "db/db.h"
#include "net/net.h"
#include "xapi_errors.h"

pthread_mutex_t net_lock = PTHREAD_MUTEX_INITIALIZER;

bool
net_api_errno(struct xerr **errp, int rc, const char *what, const char *name)
{
    return xerr_internal(errp, "%s %s: %s", what, name ? name : "", strerror(rc < 0 ? -rc : rc));
}

/* ------------------------------------------------------------------ bridge names */

struct bridge_use {
    const char *name;
    const char *except; /* a network ref not to count */
    bool used;
};

static bool
bridge_used_one(void *opaque, const char *ref, const void *rec)
{
    struct bridge_use *u = opaque;
    const struct xapi_network_record *n = rec;
    if ((!u->except || strcmp(ref, u->except) != 0) && strcmp(n->bridge, u->name) == 0)
        u->used = true;
    return !u->used;
}

bool
bridge_name_used(struct db *db, const char *name)
{
    struct bridge_use u = {.name = name};
    db_foreach(db, &xapi_class_network, bridge_used_one, &u);
    return u.used;
}

/* Under net_lock: the first "xapi<N>" free in the store and on the host. */
void
bridge_name_pick(struct db *db, char *out, size_t len)
{
    for (unsigned n = 0;; n++) {
        snprintf(out, len, "xapi%u", n);
        if (!bridge_name_used(db, out) && !net_link_exists(out))
            return;
    }
}

/* Under net_lock: makes bridge @name (MTU @mtu) exist and be up; *@created
 * tells whether this call made it. 0, -EMEDIUMTYPE when @name is a link of
 * another kind, or the errno of the failing step in *@step. */
int
bridge_make(const char *name, int64_t mtu, bool *created, const char **step)
{
    *created = false;
    *step = "bridge create";
    int rc = net_bridge_create(name, mtu > 0 ? (unsigned)mtu : 0);
    if (rc == -EEXIST) {
        struct net_link l;
        if (net_link_get(name, &l) == 0 && strcmp(l.kind, "bridge") != 0)
            return -EMEDIUMTYPE;
    } else if (rc < 0) {
        return rc;
    } else {
        *created = true;
    }
    *step = "bridge up";
    if ((rc = net_link_set_up(name, true)) < 0) {
        if (*created)
            net_bridge_delete(name);
        *created = false;
        return rc;
    }
    return 0;
}

bool
bridge_make_err(struct xerr **errp, int rc, const char *step, const char *name)
{
    if (rc == -EMEDIUMTYPE)
        return xerr_bridge_name_exists(errp, name);
    return net_api_errno(errp, rc, step, name);
}

/* ------------------------------------------------------------------ for VIFs, VLANs */

struct net_peek {
    char bridge[IFNAMSIZ];
    int64_t mtu;
    bool managed;
    bool bad_name;
};

static void
net_peek_one(void *opaque, const void *rec)
{
    struct net_peek *p = opaque;
    const struct xapi_network_record *n = rec;
    p->bad_name = !net_name_valid(n->bridge);
    snprintf(p->bridge, sizeof(p->bridge), "%s", n->bridge);
    p->mtu = n->MTU;
    p->managed = n->managed;
}

static bool
mark_created(void *opaque, void *rec, struct xerr **errp)
{
    struct xapi_network_record *n = rec;
    (void)opaque;
    return xmap_put_str((struct xmap *)&n->other_config, CREATED_KEY, "true") == 0 ||
           xerr_nomem(errp);
}

bool
net_network_ensure_bridge(struct server *srv, const char *net, char *bridge, size_t len,
                          struct xerr **errp)
{
    struct net_peek p;
    if (!db_with(srv->db, &xapi_class_network, net, net_peek_one, &p, errp))
        return false;
    if (p.bad_name)
        return xerr_bridge_not_available(errp, p.bridge);
    snprintf(bridge, len, "%s", p.bridge);
    struct net_link l;
    if (net_link_get(p.bridge, &l) == 0 && strcmp(l.kind, "bridge") == 0)
        return l.up || net_link_set_up(p.bridge, true) == 0 ||
               net_api_errno(errp, -EIO, "bridge up", p.bridge);
    if (!p.managed)
        return xerr_bridge_not_available(errp, p.bridge);
    pthread_mutex_lock(&net_lock);
    bool created = false;
    const char *step;
    int rc = bridge_make(p.bridge, p.mtu, &created, &step);
    pthread_mutex_unlock(&net_lock);
    bool ok = rc == 0 || bridge_make_err(errp, rc, step, p.bridge);
    if (ok && created)
        ok = db_update(srv->db, &xapi_class_network, net, mark_created, NULL, errp);
    return ok;
}
