/* api/pif.c - PIF.scan, plug, unplug, reconfigure_ip, destroy, create_VLAN
 * and host.management_reconfigure (xapi's ocaml/idl/datamodel*.ml "PIF"; docs/networking.md).
 *
 * Safety first (issue 6, point 3): nothing here changes the host's own
 * networking unless the call asks for exactly that. PIF.scan only makes
 * records: a NIC it finds gets a PIF (physical, unplugged, with PIF_metrics:
 * carrier, last_updated) and a network of its own ("Pool-wide network
 * associated with <dev>", bridge xenbr<N> - the bridge is not made, and the
 * NIC is never put in one); a NIC that has a PIF on this host (same device or
 * MAC, untagged) only gets its metrics and MAC/MTU refreshed. A NIC is what
 * net/ calls physical (/sys/class/net/<dev>/device), or a name listed in the
 * environment variable VESSEL_NET_EXTRA_NICS (comma-separated: a test's veth).
 *
 * PIF.plug/unplug set the link up/down and record currently_attached;
 * unplug refuses the management PIF (PIF_IS_MANAGEMENT_INTERFACE) and a PIF
 * with disallow_unplug (PIF_DOES_NOT_ALLOW_UNPLUG). PIF.reconfigure_ip:
 * Static puts IP/netmask on the PIF's layer-3 link (the network's bridge when
 * the device is a port of it, as after bridging by hand, or for a VLAN PIF;
 * else the device) through netlink; gateway and DNS are recorded only (no
 * route or resolv.conf is changed). DHCP is recorded only: no DHCP client is
 * run. None records, and removes the addresses only when the mode was Static
 * (addresses vesseld put there). host.management_reconfigure records which
 * PIF is the management one and the host's address: nothing is moved.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/net_api.h"
#include "common/log.h"
#include "db/db.h"
#include "net/net.h"
#include "rpc/ctx.h"
#include "xapi_handlers.h"
#include "xapi_errors.h"

#define NULL_REF "OpaqueRef:NULL"

/* ------------------------------------------------------------------ scan */

static bool
extra_nic(const char *name)
{
    const char *list = getenv("VESSEL_NET_EXTRA_NICS");
    size_t n = strlen(name);
    while (list && *list) {
        const char *end = strchr(list, ',');
        size_t len = end ? (size_t)(end - list) : strlen(list);
        if (len == n && strncmp(list, name, n) == 0)
            return true;
        list = end ? end + 1 : NULL;
    }
    return false;
}

struct pif_find {
    const char *host, *device, *mac;
    char ref[128];
    char metrics[128];
    bool found;
};

static bool
pif_find_one(void *opaque, const char *ref, const void *rec)
{
    struct pif_find *f = opaque;
    const struct xapi_pif_record *p = rec;
    if (strcmp(p->host, f->host) != 0 || p->VLAN != -1)
        return true;
    if (strcmp(p->device, f->device) == 0 || (f->mac && strcasecmp(p->MAC, f->mac) == 0)) {
        snprintf(f->ref, sizeof(f->ref), "%s", ref);
        snprintf(f->metrics, sizeof(f->metrics), "%s", p->metrics);
        f->found = true;
        return false;
    }
    return true;
}

struct pif_refresh {
    const char *mac;
    int64_t mtu;
};

static bool
pif_refresh_apply(void *opaque, void *rec, struct xerr **errp)
{
    const struct pif_refresh *r = opaque;
    struct xapi_pif_record *p = rec;
    p->MTU = r->mtu;
    return xstr_set(&p->MAC, r->mac) || xerr_nomem(errp);
}

static bool
carrier_apply(void *opaque, void *rec, struct xerr **errp)
{
    struct xapi_pif_metrics_record *m = rec;
    (void)errp;
    m->carrier = *(const bool *)opaque;
    m->last_updated = time(NULL);
    return true;
}

struct bridge_probe {
    const char *name;
    bool used;
};

static bool
bridge_probe_one(void *opaque, const char *ref, const void *rec)
{
    struct bridge_probe *b = opaque;
    (void)ref;
    b->used = strcmp(((const struct xapi_network_record *)rec)->bridge, b->name) == 0;
    return !b->used;
}

/* A network for a newly found NIC, with the first xenbr<N> no network uses
 * (records only: the bridge is made at the first VIF attach, empty). */
static bool
scan_new_network(struct db *db, const char *device, int64_t mtu, char **ref, struct xerr **errp)
{
    char label[IFNAMSIZ + 64], bridge[IFNAMSIZ];
    for (unsigned i = 0;; i++) {
        snprintf(bridge, sizeof(bridge), "xenbr%u", i);
        struct bridge_probe bp = {bridge, false};
        db_foreach(db, &xapi_class_network, bridge_probe_one, &bp);
        if (!bp.used)
            break;
    }
    snprintf(label, sizeof(label), "Pool-wide network associated with %s", device);
    struct xapi_network_record *n = xrecord_new(&xapi_class_network);
    if (!n || !xstr_set(&n->name_label, label) || !xstr_set(&n->bridge, bridge)) {
        xrecord_free(&xapi_class_network, n);
        return xerr_nomem(errp);
    }
    n->MTU = mtu;
    return db_create(db, &xapi_class_network, NULL, n, ref, errp);
}

bool
net_pif_new(struct db *db, const char *host, const struct net_link *l, char **ref_out,
            struct xerr **errp)
{
    char mac[NET_MAC_STRLEN] = "";
    char *net = NULL, *metrics = NULL;
    if (l->has_mac)
        net_mac_format(l->mac, mac);
    if (!scan_new_network(db, l->name, l->mtu, &net, errp))
        return false;
    struct xapi_pif_record *p = NULL;
    bool ok = net_pif_metrics_new(db, l->carrier, &metrics, errp);
    if (ok && (!(p = xrecord_new(&xapi_class_pif)) || !xstr_set(&p->device, l->name) ||
               !xstr_set(&p->MAC, mac) || !xstr_set(&p->network, net) ||
               !xstr_set(&p->host, host) || !xstr_set(&p->metrics, metrics)))
        ok = xerr_nomem(errp);
    free(net);
    free(metrics);
    if (!ok) {
        xrecord_free(&xapi_class_pif, p);
        return false;
    }
    p->MTU = l->mtu;
    p->VLAN = -1;
    p->physical = true;
    p->currently_attached = false;
    p->managed = true;
    log_info("pif.scan", "device=%s mac=%s carrier=%d", l->name, mac, l->carrier);
    return db_create(db, &xapi_class_pif, NULL, p, ref_out, errp);
}

bool
api_pif_scan(struct call_ctx *ctx, const char *host, struct xerr **errp)
{
    if (!db_exists(ctx->db, &xapi_class_host, host))
        return xerr_handle_invalid(errp, "host", host);
    struct net_link *links = NULL;
    size_t n = 0;
    int rc = net_link_list(&links, &n);
    if (rc < 0)
        return net_api_errno(errp, rc, "link list", "");
    db_batch_begin(ctx->db);
    bool ok = true;
    for (size_t i = 0; ok && i < n; i++) {
        const struct net_link *l = &links[i];
        if (!l->physical && !extra_nic(l->name))
            continue;
        char mac[NET_MAC_STRLEN] = "";
        if (l->has_mac)
            net_mac_format(l->mac, mac);
        struct pif_find f = {.host = host, .device = l->name, .mac = l->has_mac ? mac : NULL};
        db_foreach(ctx->db, &xapi_class_pif, pif_find_one, &f);
        if (!f.found) {
            ok = net_pif_new(ctx->db, host, l, NULL, errp);
            continue;
        }
        struct pif_refresh r = {mac, l->mtu};
        bool carrier = l->carrier;
        ok = db_update(ctx->db, &xapi_class_pif, f.ref, pif_refresh_apply, &r, errp) &&
             (!db_exists(ctx->db, &xapi_class_pif_metrics, f.metrics) ||
              db_update(ctx->db, &xapi_class_pif_metrics, f.metrics, carrier_apply, &carrier,
                        errp));
    }
    free(links);
    return db_batch_end(ctx->db, ok, errp);
}

/* ------------------------------------------------------------------ plug, unplug */

struct pif_peek {
    char device[IFNAMSIZ];
    char network[128];
    char host[128];
    char vlan_master_of[128];
    int64_t vlan;
    bool physical, management, disallow_unplug, attached;
    enum xapi_ip_configuration_mode mode;
};

static void
pif_peek_one(void *opaque, const void *rec)
{
    struct pif_peek *p = opaque;
    const struct xapi_pif_record *r = rec;
    snprintf(p->device, sizeof(p->device), "%s", r->device);
    snprintf(p->network, sizeof(p->network), "%s", r->network);
    snprintf(p->host, sizeof(p->host), "%s", r->host);
    snprintf(p->vlan_master_of, sizeof(p->vlan_master_of), "%s", r->VLAN_master_of);
    p->vlan = r->VLAN;
    p->physical = r->physical;
    p->management = r->management;
    p->disallow_unplug = r->disallow_unplug;
    p->attached = r->currently_attached;
    p->mode = r->ip_configuration_mode;
}

/* The link a PIF names on this host: its device, or "<device>.<tag>". */
static bool
pif_link(const struct pif_peek *p, char *buf, size_t len, struct xerr **errp)
{
    if (p->vlan < 0) {
        snprintf(buf, len, "%s", p->device);
        return true;
    }
    return net_vlan_link_name(p->device, p->vlan, buf, len) ||
           xerr_internal(errp, "VLAN link name too long for %s", p->device);
}

static bool
pif_attached_apply(void *opaque, void *rec, struct xerr **errp)
{
    (void)errp;
    ((struct xapi_pif_record *)rec)->currently_attached = *(const bool *)opaque;
    return true;
}

static bool
pif_set_link(struct call_ctx *ctx, const char *self, bool up, struct xerr **errp)
{
    struct pif_peek p;
    char link[IFNAMSIZ];
    if (!db_with(ctx->db, &xapi_class_pif, self, pif_peek_one, &p, errp))
        return false;
    if (!up && p.management)
        return xerr_pif_is_management_interface(errp, self);
    if (!up && p.disallow_unplug)
        return xerr_pif_does_not_allow_unplug(errp, self);
    if (!pif_link(&p, link, sizeof(link), errp))
        return false;
    int rc = net_link_set_up(link, up);
    if (rc < 0)
        return net_api_errno(errp, rc, up ? "link up" : "link down", link);
    log_info(up ? "pif.plug" : "pif.unplug", "device=%s", link);
    return db_update(ctx->db, &xapi_class_pif, self, pif_attached_apply, &up, errp);
}

bool
api_pif_plug(struct call_ctx *ctx, const char *self, struct xerr **errp)
{
    return pif_set_link(ctx, self, true, errp);
}

bool
api_pif_unplug(struct call_ctx *ctx, const char *self, struct xerr **errp)
{
    return pif_set_link(ctx, self, false, errp);
}

/* ------------------------------------------------------------------ IP */

struct ip_conf {
    enum xapi_ip_configuration_mode mode;
    const char *ip, *netmask, *gateway, *dns;
};

static bool
ip_apply(void *opaque, void *rec, struct xerr **errp)
{
    const struct ip_conf *c = opaque;
    struct xapi_pif_record *p = rec;
    p->ip_configuration_mode = c->mode;
    bool keep = c->mode == XAPI_IP_CONFIGURATION_MODE_STATIC;
    return (xstr_set(&p->IP, keep ? c->ip : "") && xstr_set(&p->netmask, keep ? c->netmask : "") &&
            xstr_set(&p->gateway, keep ? c->gateway : "") && xstr_set(&p->DNS, c->dns)) ||
           xerr_nomem(errp);
}

struct bridge_name {
    char name[IFNAMSIZ];
};

static void
bridge_of(void *opaque, const void *rec)
{
    snprintf(((struct bridge_name *)opaque)->name, IFNAMSIZ, "%s",
             ((const struct xapi_network_record *)rec)->bridge);
}

/* Where a PIF's address lives (see the header). */
static bool
l3_link(struct call_ctx *ctx, const struct pif_peek *p, char *buf, size_t len,
        struct xerr **errp)
{
    struct bridge_name b = {""};
    if (!db_with(ctx->db, &xapi_class_network, p->network, bridge_of, &b, errp) ||
        !pif_link(p, buf, len, errp))
        return false;
    struct net_link dev, br;
    if (b.name[0] && net_link_get(b.name, &br) == 0 && strcmp(br.kind, "bridge") == 0 &&
        net_link_get(buf, &dev) == 0 && dev.master == br.ifindex)
        snprintf(buf, len, "%s", b.name);
    return true;
}

static bool
valid_ipv4(const char *s)
{
    struct in_addr a;
    return inet_pton(AF_INET, s, &a) == 1;
}

bool
api_pif_reconfigure_ip(struct call_ctx *ctx, const char *self, enum xapi_ip_configuration_mode mode,
                       const char *IP, const char *netmask, const char *gateway, const char *DNS,
                       struct xerr **errp)
{
    struct pif_peek p;
    char link[IFNAMSIZ];
    if (!db_with(ctx->db, &xapi_class_pif, self, pif_peek_one, &p, errp))
        return false;
    int prefix = 0;
    if (mode == XAPI_IP_CONFIGURATION_MODE_STATIC) {
        if (!valid_ipv4(IP))
            return xerr_invalid_ip_address_specified(errp, "IP");
        if ((prefix = net_netmask_to_prefix(netmask)) < 0)
            return xerr_invalid_ip_address_specified(errp, "netmask");
        if (gateway[0] && !valid_ipv4(gateway))
            return xerr_invalid_ip_address_specified(errp, "gateway");
    }
    if (!l3_link(ctx, &p, link, sizeof(link), errp))
        return false;
    int rc = 0;
    if (mode == XAPI_IP_CONFIGURATION_MODE_STATIC)
        rc = net_addr_set_ipv4(link, IP, (unsigned)prefix);
    else if (p.mode == XAPI_IP_CONFIGURATION_MODE_STATIC)
        rc = net_addr_flush_ipv4(link); /* only what a Static mode put there */
    if (rc < 0)
        return net_api_errno(errp, rc, "address", link);
    log_info("pif.reconfigure_ip", "link=%s mode=%s ip=%s applied=%s", link,
             xenum_name(&xapi_enum_ip_configuration_mode, (int)mode), IP,
             mode == XAPI_IP_CONFIGURATION_MODE_DHCP ? "no (DHCP is recorded only)" : "yes");
    struct ip_conf c = {mode, IP, netmask, gateway, DNS};
    return db_update(ctx->db, &xapi_class_pif, self, ip_apply, &c, errp);
}

/* ------------------------------------------------------------------ destroy, create_VLAN */

bool
api_pif_destroy(struct call_ctx *ctx, const char *self, struct xerr **errp)
{
    struct pif_peek p;
    if (!db_with(ctx->db, &xapi_class_pif, self, pif_peek_one, &p, errp))
        return false;
    if (p.physical || strcmp(p.vlan_master_of, NULL_REF) == 0)
        return xerr_pif_is_physical(errp, self);
    return net_vlan_remove(ctx, p.vlan_master_of, errp);
}

struct dev_find {
    const char *host, *device;
    char ref[128];
    bool found;
};

static bool
dev_find_one(void *opaque, const char *ref, const void *rec)
{
    struct dev_find *f = opaque;
    const struct xapi_pif_record *p = rec;
    if (strcmp(p->host, f->host) == 0 && strcmp(p->device, f->device) == 0 && p->VLAN == -1) {
        snprintf(f->ref, sizeof(f->ref), "%s", ref);
        f->found = true;
        return false;
    }
    return true;
}

bool
api_pif_create_VLAN(struct call_ctx *ctx, const char *device, const char *network,
                    const char *host, int64_t VLAN, char **result, struct xerr **errp)
{
    if (!db_exists(ctx->db, &xapi_class_host, host))
        return xerr_handle_invalid(errp, "host", host);
    struct dev_find f = {.host = host, .device = device};
    db_foreach(ctx->db, &xapi_class_pif, dev_find_one, &f);
    if (!f.found)
        return xerr_invalid_value(errp, "device", device);
    return net_vlan_make(ctx, f.ref, VLAN, network, NULL, result, errp);
}

/* ------------------------------------------------------------------ management */

static bool
mgmt_flag_apply(void *opaque, void *rec, struct xerr **errp)
{
    (void)errp;
    ((struct xapi_pif_record *)rec)->management = *(const bool *)opaque;
    return true;
}

struct pif_list {
    const char *host;
    struct xapi_ref_set refs;
    bool nomem;
};

static bool
pif_list_one(void *opaque, const char *ref, const void *rec)
{
    struct pif_list *l = opaque;
    if (strcmp(((const struct xapi_pif_record *)rec)->host, l->host) == 0 &&
        xset_add_str((struct xset *)&l->refs, ref) != 0)
        l->nomem = true;
    return !l->nomem;
}

struct pif_ip {
    char ip[64];
};

static void
pif_ip_one(void *opaque, const void *rec)
{
    snprintf(((struct pif_ip *)opaque)->ip, 64, "%s", ((const struct xapi_pif_record *)rec)->IP);
}

static bool
host_address_apply(void *opaque, void *rec, struct xerr **errp)
{
    return xstr_set(&((struct xapi_host_record *)rec)->address, opaque) || xerr_nomem(errp);
}

bool
api_host_management_reconfigure(struct call_ctx *ctx, const char *pif, struct xerr **errp)
{
    struct pif_peek p;
    struct pif_ip ip;
    if (!db_with(ctx->db, &xapi_class_pif, pif, pif_peek_one, &p, errp) ||
        !db_with(ctx->db, &xapi_class_pif, pif, pif_ip_one, &ip, errp))
        return false;
    if (p.mode == XAPI_IP_CONFIGURATION_MODE_NONE)
        return xerr_pif_has_no_network_configuration(errp, pif);
    struct pif_list l = {.host = p.host};
    db_foreach(ctx->db, &xapi_class_pif, pif_list_one, &l);
    bool ok = !l.nomem || xerr_nomem(errp);
    db_batch_begin(ctx->db);
    for (size_t i = 0; ok && i < l.refs.n; i++) {
        bool flag = strcmp(l.refs.items[i], pif) == 0;
        ok = db_update(ctx->db, &xapi_class_pif, l.refs.items[i], mgmt_flag_apply, &flag, errp);
    }
    if (ok && ip.ip[0])
        ok = db_update(ctx->db, &xapi_class_host, p.host, host_address_apply, ip.ip, errp);
    ok = db_batch_end(ctx->db, ok, errp);
    xtype_value_clear(&xapi_type_ref_PIF_set, &l.refs);
    if (ok)
        log_info("host.management_reconfigure", "device=%s ip=%s applied=no (recorded only)",
                 p.device, ip.ip);
    return ok;
}
