/* api/net_admin.c - the PIF, Bond and VIF messages beyond plugging and
 * addressing (xapi's ocaml/xapi/xapi_pif.ml, xapi_bond.ml, xapi_vif.ml).
 *
 * As everywhere in api/ (docs/networking.md), nothing here changes the
 * host's own networking unless the message means exactly that:
 *  - PIF.introduce/forget/db_introduce/db_forget make and drop records;
 *    introduce requires the NIC to exist here with that MAC, as xapi's does;
 *  - PIF.set_property (gro) and the IPv6 configuration are recorded; a
 *    Static IPv6 address is not put on the link (net/ sets IPv4 only), as
 *    gateway and DNS are recorded only for IPv4 (api/pif.c);
 *  - Bond.create checks what xapi checks and makes the records: the bond
 *    master PIF is created unplugged and no bond link is made (net/ has no
 *    bonding), so its members keep working as they are;
 *  - VIF.move takes a running VIF's tap to the new network's bridge at once;
 *    VIF.configure_ipv4/6 need the guest agent's feature-static-ip-setting
 *    (VM_LACKS_FEATURE otherwise, as xapi: QEMU guests here have no Xen
 *    guest agent, so only a guest that reports the feature gets the record).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/net_api.h"
#include "db/db.h"
#include "net/net.h"
#include "rpc/ctx.h"
#include "xapi_errors.h"
#include "xapi_handlers.h"

#define NULL_REF "OpaqueRef:NULL"

static bool
is_null(const char *ref)
{
    return !ref[0] || strcmp(ref, NULL_REF) == 0;
}

static bool
copy_map(struct xapi_string_string_map *dst, const struct xapi_string_string_map *src)
{
    xtype_value_clear(&xapi_type_string_string_map, dst);
    return xtype_value_copy(&xapi_type_string_string_map, dst, src) == 0;
}

/* "address/prefix" of @family (xapi's Helpers.assert_is_valid_cidr). */
static bool
valid_cidr(int family, const char *s)
{
    const char *slash = strchr(s, '/');
    if (!slash || !slash[1])
        return false;
    char addr[64];
    size_t n = (size_t)(slash - s);
    if (n >= sizeof(addr))
        return false;
    memcpy(addr, s, n);
    addr[n] = '\0';
    char *end;
    long prefix = strtol(slash + 1, &end, 10);
    unsigned char buf[16];
    return *end == '\0' && prefix >= 0 && prefix <= (family == AF_INET ? 32 : 128) &&
           inet_pton(family, addr, buf) == 1;
}

static bool
valid_ip(int family, const char *s)
{
    unsigned char buf[16];
    return inet_pton(family, s, buf) == 1;
}

/*==== PIF ====*/

typedef bool pif_edit_fn(struct xapi_pif_record *p, const void *arg, struct xerr **errp);

struct pif_edit {
    pif_edit_fn *fn;
    const void *arg;
};

static bool
pif_edit_apply(void *opaque, void *rec, struct xerr **errp)
{
    const struct pif_edit *e = opaque;
    return e->fn(rec, e->arg, errp);
}

static bool
pif_edit(struct call_ctx *ctx, const char *pif, pif_edit_fn *fn, const void *arg,
         struct xerr **errp)
{
    struct pif_edit e = {fn, arg};
    return db_update(ctx->db, &xapi_class_pif, pif, pif_edit_apply, &e, errp);
}

struct kv {
    const char *key, *value;
};

/* xapi_pif.ml: one property, gro (on|off), on a physical PIF that is not a
 * bond member, or a bond master. */
static bool
set_gro(struct xapi_pif_record *p, const void *arg, struct xerr **errp)
{
    const struct kv *kv = arg;
    bool has_properties = (p->physical && is_null(p->bond_slave_of)) || p->bond_master_of.n;
    if (!has_properties || !is_null(p->bond_slave_of))
        return xerr_cannot_change_pif_properties(errp, p->uuid);
    return xmap_put_str((struct xmap *)&p->properties, kv->key, kv->value) == 0 ||
           xerr_nomem(errp);
}

bool
api_pif_set_property(struct call_ctx *ctx, const char *self, const char *name,
                     const char *value, struct xerr **errp)
{
    if (strcmp(name, "gro") != 0 || (strcmp(value, "on") != 0 && strcmp(value, "off") != 0)) {
        char text[512];
        snprintf(text, sizeof(text), "%s = %s", name, value);
        return xerr_invalid_value(errp, "properties", text);
    }
    if (!db_exists(ctx->db, &xapi_class_pif, self))
        return xerr_handle_invalid(errp, "PIF", self);
    struct kv kv = {name, value};
    return pif_edit(ctx, self, set_gro, &kv, errp);
}

static bool
set_disallow_unplug(struct xapi_pif_record *p, const void *arg, struct xerr **errp)
{
    p->disallow_unplug = *(const bool *)arg;
    return true;
}

bool
api_pif_set_disallow_unplug(struct call_ctx *ctx, const char *self, bool value,
                            struct xerr **errp)
{
    return pif_edit(ctx, self, set_disallow_unplug, &value, errp); /* no clustering here */
}

static bool
set_primary(struct xapi_pif_record *p, const void *arg, struct xerr **errp)
{
    p->primary_address_type = *(const enum xapi_primary_address_type *)arg;
    return true;
}

bool
api_pif_set_primary_address_type(struct call_ctx *ctx, const char *self,
                                 enum xapi_primary_address_type primary_address_type,
                                 struct xerr **errp)
{
    struct xapi_pif_record *p = NULL;
    if (!db_get(ctx->db, &xapi_class_pif, self, (void **)&p, errp))
        return false;
    bool management = p->management;
    xapi_pif_record_free(p);
    if (management)
        return xerr_pif_is_management_interface(errp, self);
    return pif_edit(ctx, self, set_primary, &primary_address_type, errp);
}

struct ipv6_conf {
    enum xapi_ipv6_configuration_mode mode;
    const char *ip, *gateway, *dns;
};

static bool
set_ipv6(struct xapi_pif_record *p, const void *arg, struct xerr **errp)
{
    const struct ipv6_conf *c = arg;
    xtype_value_clear(&xapi_type_string_set, &p->IPv6);
    if (c->ip[0] && xset_append_str((struct xset *)&p->IPv6, c->ip) < 0)
        return xerr_nomem(errp);
    p->ipv6_configuration_mode = c->mode;
    return (xstr_set(&p->ipv6_gateway, c->gateway) && xstr_set(&p->DNS, c->dns)) ||
           xerr_nomem(errp);
}

/* xapi_pif.ml reconfigure_ipv6: the gateway an address, the address a CIDR,
 * and the management PIF keeps an address of its primary type. */
bool
api_pif_reconfigure_ipv6(struct call_ctx *ctx, const char *self,
                         enum xapi_ipv6_configuration_mode mode, const char *IPv6,
                         const char *gateway, const char *DNS, struct xerr **errp)
{
    struct xapi_pif_record *p = NULL;
    if (!db_get(ctx->db, &xapi_class_pif, self, (void **)&p, errp))
        return false;
    bool managed = p->managed, management = p->management;
    enum xapi_primary_address_type primary = p->primary_address_type;
    xapi_pif_record_free(p);
    if (!managed)
        return xerr_pif_unmanaged(errp, self);
    if (gateway[0] && !valid_ip(AF_INET6, gateway))
        return xerr_invalid_ip_address_specified(errp, "gateway");
    if (IPv6[0] && !valid_cidr(AF_INET6, IPv6))
        return xerr_invalid_cidr_address_specified(errp, "IPv6");
    if (management && primary == XAPI_PRIMARY_ADDRESS_TYPE_IPV6 &&
        mode == XAPI_IPV6_CONFIGURATION_MODE_NONE)
        return xerr_pif_is_management_interface(errp, self);
    struct ipv6_conf c = {mode, IPv6, gateway, DNS};
    return pif_edit(ctx, self, set_ipv6, &c, errp);
}

/* Drops PIF @self's record and its metrics (xapi's Db.PIF.destroy, which
 * takes the metrics with it in forget_internal). */
static bool
pif_records_drop(struct call_ctx *ctx, const char *self, struct xerr **errp)
{
    struct xapi_pif_record *p = NULL;
    if (!db_get(ctx->db, &xapi_class_pif, self, (void **)&p, errp))
        return false;
    db_batch_begin(ctx->db);
    bool ok = db_destroy(ctx->db, &xapi_class_pif, self, errp);
    if (ok && db_exists(ctx->db, &xapi_class_pif_metrics, p->metrics))
        ok = db_destroy(ctx->db, &xapi_class_pif_metrics, p->metrics, errp);
    xapi_pif_record_free(p);
    return db_batch_end(ctx->db, ok, errp);
}

bool
api_pif_db_forget(struct call_ctx *ctx, const char *self, struct xerr **errp)
{
    return pif_records_drop(ctx, self, errp);
}

/* xapi_pif.ml forget: never the management PIF, a bond member or master, a
 * PIF carrying VLANs or tunnels; the link itself is left as it is. */
bool
api_pif_forget(struct call_ctx *ctx, const char *self, struct xerr **errp)
{
    struct xapi_pif_record *p = NULL;
    if (!db_get(ctx->db, &xapi_class_pif, self, (void **)&p, errp))
        return false;
    bool ok = true;
    if (p->management)
        ok = xerr_pif_is_management_interface(errp, self);
    else if (!is_null(p->bond_slave_of) || p->bond_master_of.n)
        ok = xerr_pif_already_bonded(errp, self);
    else if (p->VLAN_slave_of.n)
        ok = xerr_pif_vlan_still_exists(errp, self);
    else if (p->tunnel_access_PIF_of.n || p->tunnel_transport_PIF_of.n)
        ok = xerr_pif_tunnel_still_exists(errp, self);
    xapi_pif_record_free(p);
    return ok && pif_records_drop(ctx, self, errp);
}

static bool
set_unmanaged(struct xapi_pif_record *p, const void *arg, struct xerr **errp)
{
    p->managed = false;
    return true;
}

struct device_taken {
    const char *host, *device;
    bool taken;
};

static bool
device_taken_one(void *opaque, const char *ref, const void *rec)
{
    struct device_taken *d = opaque;
    const struct xapi_pif_record *p = rec;
    if (strcmp(p->host, d->host) == 0 && strcmp(p->device, d->device) == 0)
        d->taken = true;
    return !d->taken;
}

/* xapi_pif.ml introduce: a NIC of this host named @device (with MAC @MAC,
 * or its own when empty) that no PIF names yet gets a PIF and a network,
 * as PIF.scan would make them. */
bool
api_pif_introduce(struct call_ctx *ctx, const char *host, const char *MAC, const char *device,
                  bool managed, char **result, struct xerr **errp)
{
    if (!db_exists(ctx->db, &xapi_class_host, host))
        return xerr_handle_invalid(errp, "host", host);
    struct net_link l;
    char mac[NET_MAC_STRLEN] = "";
    bool present = net_name_valid(device) && net_link_get(device, &l) == 0;
    if (present && l.has_mac)
        net_mac_format(l.mac, mac);
    const char *want = MAC[0] ? MAC : mac;
    uint8_t parsed[NET_MAC_LEN];
    if (net_mac_parse(want, parsed) < 0)
        return xerr_mac_invalid(errp, want);
    struct device_taken d = {host, device, false};
    db_foreach(ctx->db, &xapi_class_pif, device_taken_one, &d);
    if (d.taken)
        return xerr_duplicate_pif_device_name(errp, device);
    if (!present || strcasecmp(mac, want) != 0)
        return xerr_mac_does_not_exist(errp, want);
    char *ref = NULL;
    db_batch_begin(ctx->db);
    bool ok = net_pif_new(ctx->db, host, &l, &ref, errp);
    ok = ok && (managed || pif_edit(ctx, ref, set_unmanaged, NULL, errp));
    if (!db_batch_end(ctx->db, ok, errp)) {
        free(ref);
        return false;
    }
    *result = ref;
    return true;
}

/* xapi_pif.ml pool_introduce: a PIF record exactly as given, no checks (it
 * copies a pool member's PIF into the master's database). */
bool
api_pif_db_introduce(struct call_ctx *ctx, const char *device, const char *network,
                     const char *host, const char *MAC, int64_t MTU, int64_t VLAN, bool physical,
                     enum xapi_ip_configuration_mode ip_configuration_mode, const char *IP,
                     const char *netmask, const char *gateway, const char *DNS,
                     const char *bond_slave_of, const char *VLAN_master_of, bool management,
                     const struct xapi_string_string_map *other_config, bool disallow_unplug,
                     enum xapi_ipv6_configuration_mode ipv6_configuration_mode,
                     const struct xapi_string_set *IPv6, const char *ipv6_gateway,
                     enum xapi_primary_address_type primary_address_type, bool managed,
                     const struct xapi_string_string_map *properties, char **result,
                     struct xerr **errp)
{
    struct xapi_pif_record *p = xrecord_new(&xapi_class_pif);
    if (!p || !xstr_set(&p->device, device) || !xstr_set(&p->network, network) ||
        !xstr_set(&p->host, host) || !xstr_set(&p->MAC, MAC) || !xstr_set(&p->IP, IP) ||
        !xstr_set(&p->netmask, netmask) || !xstr_set(&p->gateway, gateway) ||
        !xstr_set(&p->DNS, DNS) || !xstr_set(&p->bond_slave_of, bond_slave_of) ||
        !xstr_set(&p->VLAN_master_of, VLAN_master_of) || !copy_map(&p->other_config, other_config) ||
        !xstr_set(&p->ipv6_gateway, ipv6_gateway) || !copy_map(&p->properties, properties) ||
        xtype_value_copy(&xapi_type_string_set, &p->IPv6, IPv6) < 0) {
        xapi_pif_record_free(p);
        return xerr_nomem(errp);
    }
    p->MTU = MTU;
    p->VLAN = VLAN;
    p->physical = physical;
    p->ip_configuration_mode = ip_configuration_mode;
    p->management = management;
    p->disallow_unplug = disallow_unplug;
    p->ipv6_configuration_mode = ipv6_configuration_mode;
    p->primary_address_type = primary_address_type;
    p->managed = managed;
    return db_create(ctx->db, &xapi_class_pif, NULL, p, result, errp);
}

/*==== Bond ====*/

/* xapi_bond.ml requirements_of_mode: the properties a mode takes, their
 * values and defaults (NULL: none). */
struct bond_prop {
    const char *key, *dflt;
    const char *const *values; /* NULL-terminated; NULL: an integer */
};

static const char *const lacp_hash[] = {"src_mac", "tcpudp_ports", NULL};
static const char *const lacp_time[] = {"fast", "slow", NULL};
static const char *const lacp_bool[] = {"true", "false", NULL};
static const struct bond_prop lacp_props[] = {
    {"hashing_algorithm", "tcpudp_ports", lacp_hash},
    {"lacp-time", "slow", lacp_time},
    {"lacp-aggregation-key", NULL, NULL},
    {"lacp-fallback-ab", "true", lacp_bool},
};

static size_t
mode_props(enum xapi_bond_mode mode, const struct bond_prop **out)
{
    *out = lacp_props;
    return mode == XAPI_BOND_MODE_LACP ? sizeof(lacp_props) / sizeof(lacp_props[0]) : 0;
}

/* Map_check.validate_kvpair: INVALID_VALUE ["properties", "k = v"]. */
static bool
bond_prop_valid(enum xapi_bond_mode mode, const char *key, const char *value)
{
    const struct bond_prop *props;
    size_t n = mode_props(mode, &props);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(props[i].key, key) != 0)
            continue;
        if (!props[i].values) {
            char *end;
            strtol(value, &end, 10);
            return value[0] && *end == '\0';
        }
        for (const char *const *v = props[i].values; *v; v++)
            if (strcmp(*v, value) == 0)
                return true;
        return false;
    }
    return false;
}

static bool
bond_prop_error(const char *key, const char *value, struct xerr **errp)
{
    char text[512];
    snprintf(text, sizeof(text), "%s = %s", key, value);
    return xerr_invalid_value(errp, "properties", text);
}

/* @in filtered to what @mode accepts, with its defaults added (set_mode). */
static bool
bond_props_for_mode(enum xapi_bond_mode mode, const struct xapi_string_string_map *in,
                    struct xapi_string_string_map *out)
{
    for (size_t i = 0; i < in->n; i++)
        if (bond_prop_valid(mode, in->keys[i], in->values[i]) &&
            xmap_put_str((struct xmap *)out, in->keys[i], in->values[i]) < 0)
            return false;
    const struct bond_prop *props;
    size_t n = mode_props(mode, &props);
    for (size_t i = 0; i < n; i++)
        if (props[i].dflt && !xmap_get_str((struct xmap *)out, props[i].key) &&
            xmap_put_str((struct xmap *)out, props[i].key, props[i].dflt) < 0)
            return false;
    return true;
}

struct bond_host_pifs {
    const char *host, *network;
    char connected[128];
    int bonds;
};

static bool
bond_host_pif_one(void *opaque, const char *ref, const void *rec)
{
    struct bond_host_pifs *b = opaque;
    const struct xapi_pif_record *p = rec;
    if (strcmp(p->host, b->host) != 0)
        return true;
    if (strcmp(p->network, b->network) == 0 && !b->connected[0])
        snprintf(b->connected, sizeof(b->connected), "%s", ref);
    if (p->bond_master_of.n)
        b->bonds++;
    return true;
}

static bool
set_bond_slave(void *opaque, void *rec, struct xerr **errp)
{
    return xstr_set(&((struct xapi_pif_record *)rec)->bond_slave_of, opaque) || xerr_nomem(errp);
}

/* xapi_bond.ml create: at least two members, all physical PIFs of one host,
 * none bonded already or carrying VLANs; a network no PIF of that host is
 * on; a valid MAC (the first member's when empty); the mode's properties. */
bool
api_bond_create(struct call_ctx *ctx, const char *network, const struct xapi_ref_set *members,
                const char *MAC, enum xapi_bond_mode mode,
                const struct xapi_string_string_map *properties, char **result,
                struct xerr **errp)
{
    uint8_t mac_bytes[NET_MAC_LEN];
    if (MAC[0] && net_mac_parse(MAC, mac_bytes) < 0)
        return xerr_mac_invalid(errp, MAC);
    for (size_t i = 0; i < properties->n; i++)
        if (!bond_prop_valid(mode, properties->keys[i], properties->values[i]))
            return bond_prop_error(properties->keys[i], properties->values[i], errp);
    if (!db_exists(ctx->db, &xapi_class_network, network))
        return xerr_handle_invalid(errp, "network", network);
    if (members->n < 2)
        return xerr_pif_bond_needs_more_members(errp);
    char host[128] = "", first_mac[NET_MAC_STRLEN] = "";
    for (size_t i = 0; i < members->n; i++) {
        struct xapi_pif_record *p = NULL;
        if (!db_get(ctx->db, &xapi_class_pif, members->items[i], (void **)&p, errp))
            return false;
        bool ok = true;
        if (!host[0]) {
            snprintf(host, sizeof(host), "%s", p->host);
            snprintf(first_mac, sizeof(first_mac), "%s", p->MAC);
        }
        if (strcmp(p->host, host) != 0)
            ok = xerr_pif_cannot_bond_cross_host(errp);
        else if (!is_null(p->bond_slave_of) || p->bond_master_of.n)
            ok = xerr_pif_already_bonded(errp, members->items[i]);
        else if (p->VLAN != -1 || !is_null(p->VLAN_master_of))
            ok = xerr_pif_is_vlan(errp, members->items[i]);
        else if (!p->physical)
            ok = xerr_pif_is_not_physical(errp, members->items[i]);
        else if (p->VLAN_slave_of.n)
            ok = xerr_pif_vlan_still_exists(errp, members->items[i]);
        xapi_pif_record_free(p);
        if (!ok)
            return false;
    }
    struct bond_host_pifs b = {host, network, "", 0};
    db_foreach(ctx->db, &xapi_class_pif, bond_host_pif_one, &b);
    if (b.connected[0])
        return xerr_network_already_connected(errp, network, b.connected);
    char device[IFNAMSIZ];
    snprintf(device, sizeof(device), "bond%d", b.bonds);
    struct xapi_pif_record *m = xrecord_new(&xapi_class_pif);
    struct xapi_bond_record *bond = xrecord_new(&xapi_class_bond);
    char *metrics = NULL, *master = NULL, *bond_ref = NULL;
    db_batch_begin(ctx->db);
    bool ok = net_pif_metrics_new(ctx->db, false, &metrics, errp);
    if (ok && (!m || !bond || !xstr_set(&m->device, device) || !xstr_set(&m->network, network) ||
               !xstr_set(&m->host, host) || !xstr_set(&m->MAC, MAC[0] ? MAC : first_mac) ||
               !xstr_set(&m->metrics, metrics) ||
               !bond_props_for_mode(mode, properties, &bond->properties) ||
               !xstr_set(&bond->primary_slave, members->items[0])))
        ok = xerr_nomem(errp);
    if (ok) {
        m->MTU = 1500;
        m->VLAN = -1;
        m->managed = true;
        ok = db_create(ctx->db, &xapi_class_pif, NULL, m, &master, errp);
        m = NULL;
    }
    if (ok && !xstr_set(&bond->master, master))
        ok = xerr_nomem(errp);
    if (ok) {
        bond->mode = mode;
        bond->auto_update_mac = !MAC[0];
        ok = db_create(ctx->db, &xapi_class_bond, NULL, bond, &bond_ref, errp);
        bond = NULL;
    }
    for (size_t i = 0; ok && i < members->n; i++)
        ok = db_update(ctx->db, &xapi_class_pif, members->items[i], set_bond_slave, bond_ref,
                       errp);
    xapi_pif_record_free(m);
    xapi_bond_record_free(bond);
    free(metrics);
    free(master);
    if (!db_batch_end(ctx->db, ok, errp)) {
        free(bond_ref);
        return false;
    }
    *result = bond_ref;
    return true;
}

bool
api_bond_destroy(struct call_ctx *ctx, const char *self, struct xerr **errp)
{
    struct xapi_bond_record *b = NULL;
    if (!db_get(ctx->db, &xapi_class_bond, self, (void **)&b, errp))
        return false;
    struct xapi_pif_record *m = NULL;
    bool ok = db_get(ctx->db, &xapi_class_pif, b->master, (void **)&m, errp);
    if (ok && m->management)
        ok = xerr_pif_is_management_interface(errp, b->master);
    else if (ok && m->VLAN_slave_of.n)
        ok = xerr_pif_vlan_still_exists(errp, b->master);
    if (ok) {
        db_batch_begin(ctx->db);
        for (size_t i = 0; ok && i < b->slaves.n; i++)
            ok = db_update(ctx->db, &xapi_class_pif, b->slaves.items[i], set_bond_slave,
                           (void *)NULL_REF, errp);
        ok = ok && db_destroy(ctx->db, &xapi_class_bond, self, errp) &&
             db_destroy(ctx->db, &xapi_class_pif, b->master, errp);
        if (ok && db_exists(ctx->db, &xapi_class_pif_metrics, m->metrics))
            ok = db_destroy(ctx->db, &xapi_class_pif_metrics, m->metrics, errp);
        ok = db_batch_end(ctx->db, ok, errp);
    }
    xapi_pif_record_free(m);
    xapi_bond_record_free(b);
    return ok;
}

static bool
set_bond_mode(void *opaque, void *rec, struct xerr **errp)
{
    struct xapi_bond_record *b = rec;
    enum xapi_bond_mode mode = *(const enum xapi_bond_mode *)opaque;
    struct xapi_string_string_map props = {0, NULL, NULL};
    if (!bond_props_for_mode(mode, &b->properties, &props)) {
        xtype_value_clear(&xapi_type_string_string_map, &props);
        return xerr_nomem(errp);
    }
    xtype_value_clear(&xapi_type_string_string_map, &b->properties);
    b->properties = props;
    b->mode = mode;
    return true;
}

bool
api_bond_set_mode(struct call_ctx *ctx, const char *self, enum xapi_bond_mode value,
                  struct xerr **errp)
{
    return db_update(ctx->db, &xapi_class_bond, self, set_bond_mode, &value, errp);
}

static bool
set_bond_prop(void *opaque, void *rec, struct xerr **errp)
{
    struct xapi_bond_record *b = rec;
    const struct kv *kv = opaque;
    if (!bond_prop_valid(b->mode, kv->key, kv->value))
        return bond_prop_error(kv->key, kv->value, errp);
    return xmap_put_str((struct xmap *)&b->properties, kv->key, kv->value) == 0 ||
           xerr_nomem(errp);
}

bool
api_bond_set_property(struct call_ctx *ctx, const char *self, const char *name,
                      const char *value, struct xerr **errp)
{
    struct kv kv = {name, value};
    return db_update(ctx->db, &xapi_class_bond, self, set_bond_prop, &kv, errp);
}

/*==== VIF ====*/

struct vif_ip {
    bool v6;
    int mode;
    const char *address, *gateway;
};

static bool
set_vif_ip(void *opaque, void *rec, struct xerr **errp)
{
    const struct vif_ip *c = opaque;
    struct xapi_vif_record *v = rec;
    struct xapi_string_set *addrs = c->v6 ? &v->ipv6_addresses : &v->ipv4_addresses;
    xtype_value_clear(&xapi_type_string_set, addrs);
    if (xset_append_str((struct xset *)addrs, c->address) < 0)
        return xerr_nomem(errp);
    if (c->v6)
        v->ipv6_configuration_mode = (enum xapi_vif_ipv6_configuration_mode)c->mode;
    else
        v->ipv4_configuration_mode = (enum xapi_vif_ipv4_configuration_mode)c->mode;
    return xstr_set(c->v6 ? &v->ipv6_gateway : &v->ipv4_gateway, c->gateway) || xerr_nomem(errp);
}

/* xapi_vif.ml configure_ipv4/6: a static address is a CIDR the VIF's address
 * lock allows, the gateway an address; then the guest must offer the agent
 * feature that applies it. */
static bool
vif_configure_ip(struct call_ctx *ctx, const char *self, const struct vif_ip *c,
                 struct xerr **errp)
{
    int family = c->v6 ? AF_INET6 : AF_INET;
    struct xapi_vif_record *v = NULL;
    if (!db_get(ctx->db, &xapi_class_vif, self, (void **)&v, errp))
        return false;
    bool ok = true;
    if (c->mode != 0) { /* Static (None is 0 in both enums) */
        if (!valid_cidr(family, c->address)) {
            ok = xerr_invalid_cidr_address_specified(errp, "address");
        } else if (v->locking_mode == XAPI_VIF_LOCKING_MODE_LOCKED) {
            char addr[64];
            snprintf(addr, sizeof(addr), "%.*s", (int)strcspn(c->address, "/"), c->address);
            const struct xset *allowed =
                (const struct xset *)(c->v6 ? &v->ipv6_allowed : &v->ipv4_allowed);
            if (!xset_contains_str(allowed, addr))
                ok = xerr_address_violates_locking_constraint(errp, c->address);
        }
        if (ok && c->gateway[0] && !valid_ip(family, c->gateway))
            ok = xerr_invalid_ip_address_specified(errp, "gateway");
    }
    struct xapi_vm_record *vm = NULL;
    struct xapi_vm_guest_metrics_record *gm = NULL;
    if (ok) {
        ok = db_get(ctx->db, &xapi_class_vm, v->VM, (void **)&vm, errp);
        const char *feature = NULL;
        if (ok && db_get(ctx->db, &xapi_class_vm_guest_metrics, vm->guest_metrics, (void **)&gm,
                         NULL))
            feature = xmap_get_str((const struct xmap *)&gm->other, "feature-static-ip-setting");
        if (ok && (!feature || strcmp(feature, "1") != 0))
            ok = xerr_vm_lacks_feature(errp, v->VM);
    }
    xapi_vm_record_free(vm);
    xapi_vm_guest_metrics_record_free(gm);
    xapi_vif_record_free(v);
    return ok && db_update(ctx->db, &xapi_class_vif, self, set_vif_ip, (void *)c, errp);
}

bool
api_vif_configure_ipv4(struct call_ctx *ctx, const char *self,
                       enum xapi_vif_ipv4_configuration_mode mode, const char *address,
                       const char *gateway, struct xerr **errp)
{
    struct vif_ip c = {false, (int)mode, address, gateway};
    return vif_configure_ip(ctx, self, &c, errp);
}

bool
api_vif_configure_ipv6(struct call_ctx *ctx, const char *self,
                       enum xapi_vif_ipv6_configuration_mode mode, const char *address,
                       const char *gateway, struct xerr **errp)
{
    struct vif_ip c = {true, (int)mode, address, gateway};
    return vif_configure_ip(ctx, self, &c, errp);
}

static bool
set_vif_network(void *opaque, void *rec, struct xerr **errp)
{
    return xstr_set(&((struct xapi_vif_record *)rec)->network, opaque) || xerr_nomem(errp);
}

/* The record, then a running VIF's tap joins the new network's bridge (the
 * port moves from the old one in one netlink change: api/vif_tap.c). */
bool
api_vif_move(struct call_ctx *ctx, const char *self, const char *network, struct xerr **errp)
{
    if (!db_exists(ctx->db, &xapi_class_network, network))
        return xerr_handle_invalid(errp, "network", network);
    if (!db_update(ctx->db, &xapi_class_vif, self, set_vif_network, (void *)network, errp))
        return false;
    char tap[IFNAMSIZ];
    if (!net_vif_live_tap(ctx->srv, self, tap))
        return true;
    return net_vif_locking_apply(ctx->srv, self, tap, errp);
}
