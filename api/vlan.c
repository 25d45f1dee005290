/* api/vlan.c - VLAN.create, VLAN.destroy, pool.create_VLAN (xenapi.md 2.3
 * "Others": VLAN; docs/networking.md).
 *
 * A VLAN is a tagged link "<device>.<tag>" on top of the tagged PIF's device,
 * made a port of the VLAN network's own bridge (both vesseld's: the only
 * links it ever puts in a bridge besides taps), plus an untagged PIF (device
 * of the tagged one, VLAN = tag, not physical, attached, VLAN_master_of the
 * VLAN) and the VLAN record. xapi's checks: tag 0..4094 (VLAN_TAG_INVALID
 * [tag]); the tagged PIF is not itself a VLAN PIF (PIF_IS_VLAN [pif]); no
 * VLAN with that tag on it yet (PIF_VLAN_EXISTS [device]); the network has no
 * PIF on this host yet (NETWORK_ALREADY_CONNECTED [network, pif]). The host
 * side is made first and rolled back when the records cannot be written.
 * On a kernel without 802.1Q support the create is an INTERNAL_ERROR that
 * says so, and nothing is left behind. VLAN.destroy removes the link (the
 * bridge stays: it is the network's, removed with it) and the records; it
 * refuses the management PIF (PIF_IS_MANAGEMENT_INTERFACE [pif]).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/net_api.h"
#include "common/log.h"
#include "db/db.h"
#include "net/net.h"
#include "rpc/ctx.h"
#include "xapi_handlers.h"

#define NULL_REF "OpaqueRef:NULL"


/* A PIF_metrics record for a new PIF (the VLAN's here, a scanned NIC's in
 * api/pif.c). */
bool
net_pif_metrics_new(struct db *db, bool carrier, char **ref, struct xerr **errp)
{
    struct xapi_pif_metrics_record *m = xrecord_new(&xapi_class_pif_metrics);
    if (!m)
        return xerr_nomem(errp);
    m->carrier = carrier;
    m->last_updated = time(NULL);
    return db_create(db, &xapi_class_pif_metrics, NULL, m, ref, errp);
}

bool
net_vlan_link_name(const char *device, int64_t tag, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s.%lld", device, (long long)tag);
    return n > 0 && (size_t)n < len && n < IFNAMSIZ;
}

/* ------------------------------------------------------------------ checks */

struct tagged {
    char device[IFNAMSIZ];
    char host[128];
    char mac[NET_MAC_STRLEN + 8];
    int64_t vlan;
};

static void
tagged_peek(void *opaque, const void *rec)
{
    struct tagged *t = opaque;
    const struct xapi_pif_record *p = rec;
    snprintf(t->device, sizeof(t->device), "%s", p->device);
    snprintf(t->host, sizeof(t->host), "%s", p->host);
    snprintf(t->mac, sizeof(t->mac), "%s", p->MAC);
    t->vlan = p->VLAN;
}

struct vlan_exists {
    const char *pif;
    int64_t tag;
    bool found;
};

static bool
vlan_exists_one(void *opaque, const char *ref, const void *rec)
{
    struct vlan_exists *v = opaque;
    const struct xapi_vlan_record *r = rec;
    (void)ref;
    v->found = strcmp(r->tagged_PIF, v->pif) == 0 && r->tag == v->tag;
    return !v->found;
}

struct net_on_host {
    const char *network, *host;
    char pif[128];
    bool found;
};

static bool
net_on_host_one(void *opaque, const char *ref, const void *rec)
{
    struct net_on_host *n = opaque;
    const struct xapi_pif_record *p = rec;
    if (strcmp(p->network, n->network) == 0 && strcmp(p->host, n->host) == 0) {
        snprintf(n->pif, sizeof(n->pif), "%s", ref);
        n->found = true;
    }
    return !n->found;
}

struct net_info {
    int64_t mtu;
};

static void
net_info_peek(void *opaque, const void *rec)
{
    ((struct net_info *)opaque)->mtu = ((const struct xapi_network_record *)rec)->MTU;
}

/* ------------------------------------------------------------------ records */

static bool
vlan_records(struct call_ctx *ctx, const char *tagged_pif, const struct tagged *t, int64_t tag,
             const char *network, int64_t mtu, char **vlan_out, char **pif_out,
             struct xerr **errp)
{
    char *vlan_ref = db_new_ref(), *pif_ref = db_new_ref(), *metrics = NULL;
    struct xapi_pif_record *p = xrecord_new(&xapi_class_pif);
    struct xapi_vlan_record *v = xrecord_new(&xapi_class_vlan);
    bool ok = (vlan_ref && pif_ref && p && v) || xerr_nomem(errp);
    db_batch_begin(ctx->db);
    ok = ok && net_pif_metrics_new(ctx->db, true, &metrics, errp);
    if (ok && (!xstr_set(&p->device, t->device) || !xstr_set(&p->network, network) ||
               !xstr_set(&p->host, t->host) || !xstr_set(&p->MAC, t->mac) ||
               !xstr_set(&p->metrics, metrics) || !xstr_set(&p->VLAN_master_of, vlan_ref) ||
               !xstr_set(&v->tagged_PIF, tagged_pif) || !xstr_set(&v->untagged_PIF, pif_ref)))
        ok = xerr_nomem(errp);
    if (ok) {
        p->MTU = mtu;
        p->VLAN = tag;
        p->physical = false;
        p->currently_attached = true;
        p->managed = true;
        v->tag = tag;
        /* db_create takes the record, also on failure */
        ok = db_create(ctx->db, &xapi_class_pif, pif_ref, p, NULL, errp);
        p = NULL;
        ok = ok && db_create(ctx->db, &xapi_class_vlan, vlan_ref, v, NULL, errp);
        if (ok)
            v = NULL;
    }
    ok = db_batch_end(ctx->db, ok, errp);
    xrecord_free(&xapi_class_pif, p);
    xrecord_free(&xapi_class_vlan, v);
    free(metrics);
    if (ok && vlan_out) {
        *vlan_out = vlan_ref;
        vlan_ref = NULL;
    }
    if (ok && pif_out) {
        *pif_out = pif_ref;
        pif_ref = NULL;
    }
    free(vlan_ref);
    free(pif_ref);
    return ok;
}

/* ------------------------------------------------------------------ create */

bool
net_vlan_make(struct call_ctx *ctx, const char *tagged_pif, int64_t tag, const char *network,
              char **vlan, char **pif, struct xerr **errp)
{
    char tagbuf[24];
    snprintf(tagbuf, sizeof(tagbuf), "%lld", (long long)tag);
    if (tag < 0 || tag > 4094)
        return xerr_vlan_tag_invalid(errp, tagbuf);
    struct tagged t;
    struct net_info ni;
    if (!db_with(ctx->db, &xapi_class_pif, tagged_pif, tagged_peek, &t, errp) ||
        !db_with(ctx->db, &xapi_class_network, network, net_info_peek, &ni, errp))
        return false;
    if (t.vlan >= 0)
        return xerr_pif_is_vlan(errp, tagged_pif);
    struct vlan_exists ve = {tagged_pif, tag, false};
    db_foreach(ctx->db, &xapi_class_vlan, vlan_exists_one, &ve);
    if (ve.found)
        return xerr_pif_vlan_exists(errp, t.device);
    struct net_on_host nh = {.network = network, .host = t.host};
    db_foreach(ctx->db, &xapi_class_pif, net_on_host_one, &nh);
    if (nh.found)
        return xerr_network_already_connected(errp, network, nh.pif);
    char link[IFNAMSIZ], bridge[IFNAMSIZ];
    if (!net_vlan_link_name(t.device, tag, link, sizeof(link)))
        return xerr_internal(errp, "VLAN link name too long for %s", t.device);
    /* host side: the tagged link, in the network's bridge, all up */
    if (!net_network_ensure_bridge(ctx->srv, network, bridge, sizeof(bridge), errp))
        return false;
    int rc = net_vlan_create(link, t.device, (unsigned)tag);
    if (rc == -EOPNOTSUPP)
        return xerr_internal(errp, "this host's kernel has no 802.1Q VLAN support (8021q)");
    if (rc < 0)
        return net_api_errno(errp, rc, "vlan create", link);
    const char *step = "bridge add port";
    if ((rc = net_bridge_add_port(bridge, link)) < 0 ||
        (step = "link up", rc = net_link_set_up(t.device, true)) < 0 ||
        (rc = net_link_set_up(link, true)) < 0) {
        net_link_delete(link); /* rollback */
        return net_api_errno(errp, rc, step, link);
    }
    int64_t mtu = ni.mtu > 0 ? ni.mtu : 1500;
    if (!vlan_records(ctx, tagged_pif, &t, tag, network, mtu, vlan, pif, errp)) {
        net_link_delete(link); /* rollback */
        return false;
    }
    log_info("vlan.create", "link=%s tag=%lld bridge=%s", link, (long long)tag, bridge);
    return true;
}

bool
api_vlan_create(struct call_ctx *ctx, const char *tagged_PIF, int64_t tag, const char *network,
                char **result, struct xerr **errp)
{
    return net_vlan_make(ctx, tagged_PIF, tag, network, result, NULL, errp);
}

struct dev_pifs {
    const char *device;
    struct xapi_ref_set refs;
    bool nomem;
};

static bool
dev_pifs_one(void *opaque, const char *ref, const void *rec)
{
    struct dev_pifs *d = opaque;
    const struct xapi_pif_record *p = rec;
    if (strcmp(p->device, d->device) == 0 && p->VLAN == -1 &&
        xset_add_str((struct xset *)&d->refs, ref) != 0)
        d->nomem = true;
    return !d->nomem;
}

bool
api_pool_create_VLAN(struct call_ctx *ctx, const char *device, const char *network, int64_t VLAN,
                     struct xapi_ref_set *result, struct xerr **errp)
{
    struct dev_pifs d = {.device = device};
    db_foreach(ctx->db, &xapi_class_pif, dev_pifs_one, &d);
    bool ok = !d.nomem || xerr_nomem(errp);
    if (ok && d.refs.n == 0)
        ok = xerr_invalid_value(errp, "device", device);
    memset(result, 0, sizeof(*result));
    for (size_t i = 0; ok && i < d.refs.n; i++) {
        char *pif = NULL;
        ok = net_vlan_make(ctx, d.refs.items[i], VLAN, network, NULL, &pif, errp);
        if (ok && xset_add_str((struct xset *)result, pif) != 0)
            ok = xerr_nomem(errp);
        free(pif);
    }
    xtype_value_clear(&xapi_type_ref_PIF_set, &d.refs);
    if (!ok)
        xtype_value_clear(&xapi_type_ref_PIF_set, result);
    return ok;
}

/* ------------------------------------------------------------------ destroy */

struct untagged {
    char pif[128];
    char device[IFNAMSIZ];
    char metrics[128];
    int64_t tag;
    bool management;
};

static void
vlan_peek(void *opaque, const void *rec)
{
    const struct xapi_vlan_record *v = rec;
    snprintf(((struct untagged *)opaque)->pif, 128, "%s", v->untagged_PIF);
    ((struct untagged *)opaque)->tag = v->tag;
}

static void
untagged_peek(void *opaque, const void *rec)
{
    struct untagged *u = opaque;
    const struct xapi_pif_record *p = rec;
    snprintf(u->device, sizeof(u->device), "%s", p->device);
    snprintf(u->metrics, sizeof(u->metrics), "%s", p->metrics);
    u->management = p->management;
}

bool
net_vlan_remove(struct call_ctx *ctx, const char *vlan, struct xerr **errp)
{
    struct untagged u = {.device = ""};
    if (!db_with(ctx->db, &xapi_class_vlan, vlan, vlan_peek, &u, errp))
        return false;
    bool has_pif = db_with(ctx->db, &xapi_class_pif, u.pif, untagged_peek, &u, NULL);
    if (has_pif && u.management)
        return xerr_pif_is_management_interface(errp, u.pif);
    char link[IFNAMSIZ];
    if (has_pif && net_vlan_link_name(u.device, u.tag, link, sizeof(link))) {
        int rc = net_link_delete(link);
        if (rc < 0 && rc != -ENODEV)
            return net_api_errno(errp, rc, "vlan delete", link);
    }
    db_batch_begin(ctx->db);
    bool ok = true;
    if (has_pif) {
        ok = (!db_exists(ctx->db, &xapi_class_pif_metrics, u.metrics) ||
              db_destroy(ctx->db, &xapi_class_pif_metrics, u.metrics, errp)) &&
             db_destroy(ctx->db, &xapi_class_pif, u.pif, errp);
    }
    ok = ok && db_destroy(ctx->db, &xapi_class_vlan, vlan, errp);
    ok = db_batch_end(ctx->db, ok, errp);
    if (ok)
        log_info("vlan.destroy", "device=%s tag=%lld", u.device, (long long)u.tag);
    return ok;
}

bool
api_vlan_destroy(struct call_ctx *ctx, const char *self, struct xerr **errp)
{
    return net_vlan_remove(ctx, self, errp);
}
