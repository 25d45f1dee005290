/* api/vif_tap.c - the host side of a VIF on the qemu backend: its tap
 * "vif<domid>.<device>" on the network's bridge, the rate limit on what the
 * guest sends, the address lock, and the counters behind VIF_metrics.
 *
 * The messages (api/vif.c) decide; this file makes the host agree, at
 * attach (net_vif_attach, when the domain starts or the VIF is plugged) and
 * live when a setting changes on a running VIF (net_vif_qos_apply,
 * net_vif_locking_apply). QoS "ratelimit" shapes what the guest sends to
 * kbps*1024 bytes/s (net/qdisc.c: the tap's ingress redirected through
 * ifb<domid>.<device> with a tbf); locking_mode disabled keeps the tap out of
 * the bridge, locked puts an nf_tables filter on what the tap brings into the
 * bridge (net/nft.c: the guest may send only from its MAC and its allowed
 * addresses).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/helper_ids.h"
#include "api/net_api.h"
#include "common/log.h"
#include "db/db.h"
#include "net/net.h"
#include "rpc/ctx.h"
#include "xapi_errors.h"
#include "xapi_model.h"
#include "xenops/xenops.h"

/* ------------------------------------------------------------------ rate limit */

struct vif_qos {
    bool ratelimit;
    uint64_t kbps;
};

static void
vif_qos_one(void *opaque, const void *rec)
{
    struct vif_qos *q = opaque;
    const struct xapi_vif_record *v = rec;
    const char *kbps = xmap_get_str((const struct xmap *)&v->qos_algorithm_params, "kbps");
    q->ratelimit = strcmp(v->qos_algorithm_type, "ratelimit") == 0 && kbps;
    q->kbps = kbps ? strtoull(kbps, NULL, 10) : 0;
}

/* The ifb that shapes what the guest sends on @tap: "ifb<domid>.<device>". */
static bool
vif_ifb_name(const char *tap, char ifb[IFNAMSIZ])
{
    return strncmp(tap, "vif", 3) == 0 && snprintf(ifb, IFNAMSIZ, "ifb%s", tap + 3) < IFNAMSIZ;
}

/* Makes what the guest sends on @tap limited as VIF @vif_ref's QoS fields say:
 * kbps * 1024 bytes/s (xenopsd's reading of kbps: kilobytes per second),
 * shaped through an ifb (net_rx_limit_set), or not at all. */
bool
net_vif_qos_apply(struct server *srv, const char *vif_ref, const char *tap, struct xerr **errp)
{
    struct vif_qos q = {0};
    char ifb[IFNAMSIZ];
    if (!db_with(srv->db, &xapi_class_vif, vif_ref, vif_qos_one, &q, errp))
        return false;
    if (!vif_ifb_name(tap, ifb))
        return xerr_internal(errp, "no ifb name for tap %s", tap);
    int rc = q.ratelimit && q.kbps ? net_rx_limit_set(tap, ifb, q.kbps * 1024)
                                   : net_rx_limit_clear(tap, ifb);
    if (rc < 0)
        return net_api_errno(errp, rc, "rate limit (ifb, tbf)", tap);
    log_info("vif.qos", "vif=%s tap=%s ifb=%s kbps=%llu", vif_ref, tap, ifb,
             q.ratelimit ? (unsigned long long)q.kbps : 0ull);
    return true;
}

/* ------------------------------------------------------------------ taps, locking */

static void
net_mtu_peek(void *opaque, const void *rec)
{
    *(int64_t *)opaque = ((const struct xapi_network_record *)rec)->MTU;
}


bool
net_vif_tap_name(int64_t domid, const char *device, char *buf, size_t len)
{
    int n = snprintf(buf, len, "vif%lld.%s", (long long)domid, device);
    return n > 0 && (size_t)n < len && n < IFNAMSIZ;
}

struct vif_net {
    char device[16];
    char network[128];
    enum xapi_vif_locking_mode mode;
};

static void
vif_net_one(void *opaque, const void *rec)
{
    struct vif_net *p = opaque;
    const struct xapi_vif_record *v = rec;
    snprintf(p->device, sizeof(p->device), "%s", v->device);
    snprintf(p->network, sizeof(p->network), "%s", v->network);
    p->mode = v->locking_mode;
}

static void
net_default_mode(void *opaque, const void *rec)
{
    *(bool *)opaque = ((const struct xapi_network_record *)rec)->default_locking_mode ==
                      XAPI_NETWORK_DEFAULT_LOCKING_MODE_DISABLED;
}

/* The address lock of a VIF whose locking_mode is locked: on @tap, frames
 * from its MAC with a source address of ipv4_allowed/ipv6_allowed only (none
 * listed: nothing passes); for any other mode, no filter. */
static bool
vif_lock_filter(struct server *srv, const char *vif_ref, const char *tap, struct xerr **errp)
{
    struct xapi_vif_record *v = NULL;
    if (!db_get(srv->db, &xapi_class_vif, vif_ref, (void **)&v, errp))
        return false;
    int rc = 0;
    if (v->locking_mode != XAPI_VIF_LOCKING_MODE_LOCKED) {
        rc = net_lock_clear(tap);
    } else if (v->ipv4_allowed.n > 64 || v->ipv6_allowed.n > 64) {
        rc = -E2BIG;
    } else {
        uint8_t mac[NET_MAC_LEN];
        struct in_addr v4[64];
        struct in6_addr v6[64];
        struct net_lock l = {.mac = mac, .v4 = v4, .n_v4 = v->ipv4_allowed.n, .v6 = v6,
                             .n_v6 = v->ipv6_allowed.n};
        for (size_t i = 0; i < l.n_v4; i++)
            if (inet_pton(AF_INET, v->ipv4_allowed.items[i], &v4[i]) != 1)
                rc = -EINVAL; /* checked when stored: cannot happen */
        for (size_t i = 0; i < l.n_v6; i++)
            if (inet_pton(AF_INET6, v->ipv6_allowed.items[i], &v6[i]) != 1)
                rc = -EINVAL;
        if (rc == 0 && (rc = net_mac_parse(v->MAC, mac)) == 0)
            rc = net_lock_set(tap, &l);
    }
    bool locked = v->locking_mode == XAPI_VIF_LOCKING_MODE_LOCKED;
    xapi_vif_record_free(v);
    if (rc < 0)
        return net_api_errno(errp, rc, "address lock (nf_tables)", tap);
    if (locked)
        log_info("vif.locked", "vif=%s tap=%s", vif_ref, tap);
    return true;
}

/* Whether VIF @v's effective locking mode is disabled (network_default takes
 * its network's default_locking_mode). */
static bool
vif_disabled(struct server *srv, const struct vif_net *v, bool *disabled, struct xerr **errp)
{
    *disabled = v->mode == XAPI_VIF_LOCKING_MODE_DISABLED;
    return v->mode != XAPI_VIF_LOCKING_MODE_NETWORK_DEFAULT ||
           db_with(srv->db, &xapi_class_network, v->network, net_default_mode, disabled, errp);
}

/* A running VIF's tap in the bridge, or out of it when disabled. */
bool
net_vif_locking_apply(struct server *srv, const char *vif_ref, const char *tap, struct xerr **errp)
{
    struct vif_net v;
    bool disabled;
    char bridge[IFNAMSIZ];
    struct net_link l;
    if (!db_with(srv->db, &xapi_class_vif, vif_ref, vif_net_one, &v, errp) ||
        !vif_disabled(srv, &v, &disabled, errp) ||
        !net_network_ensure_bridge(srv, v.network, bridge, sizeof(bridge), errp))
        return false;
    int rc = net_link_get(tap, &l);
    int br = rc == 0 ? (int)if_nametoindex(bridge) : 0;
    if (rc == 0 && disabled && l.master)
        rc = net_bridge_remove_port(bridge, tap);
    else if (rc == 0 && !disabled && l.master != br)
        rc = net_bridge_add_port(bridge, tap);
    if (rc < 0)
        return net_api_errno(errp, rc, disabled ? "bridge remove port" : "bridge add port", tap);
    if (!vif_lock_filter(srv, vif_ref, tap, errp))
        return false;
    log_info("vif.locking", "vif=%s tap=%s bridge=%s disabled=%d", vif_ref, tap, bridge,
             disabled);
    return true;
}

bool
net_vif_attach(struct server *srv, const char *vif_ref, int64_t domid, char *tap_name,
               size_t len, struct xerr **errp)
{
    struct vif_net v;
    int64_t mtu = 1500;
    char bridge[IFNAMSIZ], tap[IFNAMSIZ];
    if (!db_with(srv->db, &xapi_class_vif, vif_ref, vif_net_one, &v, errp) ||
        !db_with(srv->db, &xapi_class_network, v.network, net_mtu_peek, &mtu, errp))
        return false;
    bool disabled;
    if (!vif_disabled(srv, &v, &disabled, errp))
        return false;
    if (!net_vif_tap_name(domid, v.device, tap, sizeof(tap)))
        return xerr_internal(errp, "tap name too long for domain %lld", (long long)domid);
    if (!net_network_ensure_bridge(srv, v.network, bridge, sizeof(bridge), errp))
        return false;
    /* a tap of that name is stale (left by a crash) unless a qemu holds it
     * open, which the tun driver shows as carrier: never take a live one */
    struct net_link old;
    int rc = net_link_get(tap, &old);
    if (rc == 0 && old.carrier)
        return net_api_errno(errp, -EBUSY, "tap in use by a running domain", tap);
    rc = net_link_delete(tap);
    if (rc < 0 && rc != -ENODEV)
        return net_api_errno(errp, rc, "tap delete", tap);
    static const uint8_t host_mac[6] = {0xfe, 0xff, 0xff, 0xff, 0xff, 0xff};
    /* the device model opens the tap under its own uid (TUNSETIFF on a tap
     * it owns needs no CAP_NET_ADMIN): that domain's qemu, no other */
    unsigned owner = domains_qemu_uid(srv, domid);
    struct net_tap_opts o = {.owner = owner ? (uid_t)owner : (uid_t)-1, .persistent = true,
                             .mtu = mtu >= 68 && mtu <= 65535 ? (unsigned)mtu : 0,
                             .mac = host_mac};
    if ((rc = net_tap_create(tap, &o, NULL)) < 0)
        return net_api_errno(errp, rc, "tap create", tap);
    const char *step = "bridge add port";
    struct xerr *lerr = NULL;
    if (!vif_lock_filter(srv, vif_ref, tap, &lerr)) { /* before any frame can pass */
        net_link_delete(tap);                         /* rollback */
        if (errp)
            *errp = lerr;
        else
            xerr_free(lerr);
        return false;
    }
    if ((disabled || (rc = net_bridge_add_port(bridge, tap)) == 0) &&
        (step = "tap up", rc = net_link_set_up(tap, true)) == 0) {
        struct xerr *qerr = NULL;
        if (!net_vif_qos_apply(srv, vif_ref, tap, &qerr)) {
            /* the NIC works unlimited rather than not at all */
            char d[256];
            log_warn("vif.qos_failed", "vif=%s tap=%s error=\"%s\"", vif_ref, tap,
                     xerr_describe(qerr, d, sizeof(d)));
            xerr_free(qerr);
        }
        snprintf(tap_name, len, "%s", tap);
        log_info("vif.attach", "vif=%s tap=%s bridge=%s disabled=%d", vif_ref, tap, bridge,
                 disabled);
        return true;
    }
    net_lock_clear(tap); /* rollback */
    net_link_delete(tap);
    return net_api_errno(errp, rc, step, tap);
}

bool
net_vif_tap_of(struct server *srv, const char *vif_ref, int64_t domid, char *tap, size_t len,
               struct xerr **errp)
{
    struct vif_net v;
    return db_with(srv->db, &xapi_class_vif, vif_ref, vif_net_one, &v, errp) &&
           net_vif_tap_name(domid, v.device, tap, len);
}

int
net_vif_tap_remove(const char *tap)
{
    /* the tap first: it is what carried the guest's traffic (its ingress
     * qdisc goes with it); then what outlives it in the kernel, its chain
     * and its ifb */
    char ifb[IFNAMSIZ];
    int rc = net_link_delete(tap);
    net_lock_clear(tap);
    if (vif_ifb_name(tap, ifb))
        net_rx_limit_clear(tap, ifb);
    if (rc == 0)
        log_info("vif.detach", "tap=%s", tap);
    return rc == -ENODEV ? 0 : rc;
}

bool
net_vif_detach(struct server *srv, const char *vif_ref, int64_t domid, struct xerr **errp)
{
    char tap[IFNAMSIZ];
    struct xerr *err = NULL;
    if (!net_vif_tap_of(srv, vif_ref, domid, tap, sizeof(tap), &err)) {
        if (!err)
            return true; /* could never have been made */
        if (errp)
            *errp = err;
        else
            xerr_free(err);
        return false;
    }
    int rc = net_vif_tap_remove(tap);
    if (rc < 0)
        return net_api_errno(errp, rc, "tap delete", tap);
    return true;
}

/* ------------------------------------------------------------------ metrics */

struct sample {
    struct net_link_stats st;
    int64_t now_ms;
};

static uint64_t
map_u64(const struct xapi_string_string_map *m, const char *k)
{
    const char *v = xmap_get_str((const struct xmap *)m, k);
    return v ? strtoull(v, NULL, 10) : 0;
}

static bool
metrics_apply(void *opaque, void *rec, struct xerr **errp)
{
    const struct sample *s = opaque;
    struct xapi_vif_metrics_record *m = rec;
    uint64_t rx0 = map_u64(&m->other_config, "vessel_rx_bytes");
    uint64_t tx0 = map_u64(&m->other_config, "vessel_tx_bytes");
    int64_t t0 = (int64_t)map_u64(&m->other_config, "vessel_sample_ms");
    if (t0 > 0 && s->now_ms > t0 && s->st.rx_bytes >= rx0 && s->st.tx_bytes >= tx0) {
        double secs = (double)(s->now_ms - t0) / 1000.0;
        m->io_read_kbs = (double)(s->st.tx_bytes - tx0) / 1024.0 / secs;
        m->io_write_kbs = (double)(s->st.rx_bytes - rx0) / 1024.0 / secs;
    }
    m->last_updated = s->now_ms / 1000;
    char rx[24], tx[24], ms[24];
    snprintf(rx, sizeof(rx), "%llu", (unsigned long long)s->st.rx_bytes);
    snprintf(tx, sizeof(tx), "%llu", (unsigned long long)s->st.tx_bytes);
    snprintf(ms, sizeof(ms), "%lld", (long long)s->now_ms);
    struct xmap *oc = (struct xmap *)&m->other_config;
    return (xmap_put_str(oc, "vessel_rx_bytes", rx) == 0 &&
            xmap_put_str(oc, "vessel_tx_bytes", tx) == 0 &&
            xmap_put_str(oc, "vessel_sample_ms", ms) == 0) ||
           xerr_nomem(errp);
}

static void
metrics_peek(void *opaque, const void *rec)
{
    snprintf(opaque, 128, "%s", ((const struct xapi_vif_record *)rec)->metrics);
}

bool
net_vif_metrics_update(struct server *srv, const char *vif_ref, const char *tap,
                       struct xerr **errp)
{
    char metrics[128];
    if (!db_with(srv->db, &xapi_class_vif, vif_ref, metrics_peek, metrics, errp))
        return false;
    if (!db_exists(srv->db, &xapi_class_vif_metrics, metrics))
        return xerr_handle_invalid(errp, "VIF_metrics", metrics);
    struct sample s;
    int rc = net_link_stats(tap, &s.st);
    if (rc < 0)
        return net_api_errno(errp, rc, "tap counters", tap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    s.now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    return db_update(srv->db, &xapi_class_vif_metrics, metrics, metrics_apply, &s, errp);
}
