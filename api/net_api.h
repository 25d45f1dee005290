/* api/net_api.h - what the rest of api/ needs from the network classes
 * (api/network.c, api/pif.c, api/vif.c, api/vlan.c): a network's bridge on
 * this host, a VIF's tap for a running domain, VIF_metrics from tap counters.
 *
 * The domain manager integration calls net_vif_attach for each VIF of a VM
 * before it gives qemu "-netdev tap,ifname=<tap>,script=no,downscript=no"
 * with the VIF's MAC, and net_vif_detach after the domain is gone (also for
 * a domain found dead at start). Any thread may call these; they change the
 * host (netlink) and the store, never holding a db lock across netlink.
 */
#ifndef VESSEL_API_NET_API_H
#define VESSEL_API_NET_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rpc/ctx.h"

struct db;
#include "xapi_model.h"

/* Makes sure network @net's bridge exists on this host and is up (creating
 * an empty bridge when it is missing: never with a host NIC in it), and
 * copies its name into @bridge (@len >= IFNAMSIZ). A network with
 * managed=false must have its bridge already: BRIDGE_NOT_AVAILABLE [bridge].
 * Errors: HANDLE_INVALID, INTERNAL_ERROR for a netlink failure. */
bool net_network_ensure_bridge(struct server *srv, const char *net, char *bridge, size_t len,
                               struct xerr **errp);

/* Creates tap "vif<domid>.<device>" for VIF @vif_ref (host side MAC
 * fe:ff:ff:ff:ff:ff like XenServer's vifs, so the bridge never takes it as its
 * own; the network's MTU), puts the address lock of locking_mode locked on it
 * (an nf_tables chain: failing that, no tap), makes it a port of the network's
 * bridge (unless the VIF's effective locking_mode is disabled: then it stays
 * out of every bridge, so its traffic goes nowhere), brings it up, applies the
 * QoS rate limit (ifb<domid>.<device>; a failure is logged, not fatal), and
 * copies its name into @tap_name (@len >= IFNAMSIZ). A stale tap of that name
 * (a crash) is replaced. The VIF record is not changed: the caller records
 * currently_attached. Errors: HANDLE_INVALID, BRIDGE_NOT_AVAILABLE,
 * INTERNAL_ERROR. */
bool net_vif_attach(struct server *srv, const char *vif_ref, int64_t domid, char *tap_name,
                    size_t len, struct xerr **errp);
/* Removes the tap of VIF @vif_ref for domain @domid, with its address lock
 * chain and its ifb; no error when it is already gone. Errors: HANDLE_INVALID,
 * INTERNAL_ERROR. */
bool net_vif_detach(struct server *srv, const char *vif_ref, int64_t domid, struct xerr **errp);
/* The two halves of net_vif_detach: the tap of VIF @vif_ref for domain @domid
 * (false: no such VIF, or a name that could never have been made), and the
 * removal of a tap by name, which needs no record (a VIF destroyed since). */
bool net_vif_tap_of(struct server *srv, const char *vif_ref, int64_t domid, char *tap,
                    size_t len, struct xerr **errp);
int net_vif_tap_remove(const char *tap);

/* The tap name of a VIF: "vif<domid>.<device>" into @buf; false when it does
 * not fit in IFNAMSIZ. */
bool net_vif_tap_name(int64_t domid, const char *device, char *buf, size_t len);

/* Reads @tap's counters and updates VIF @vif_ref's VIF_metrics: io_read_kbs /
 * io_write_kbs as the guest sees them (read = what the tap sent to the guest,
 * i.e. the tap's tx) averaged since the last update, last_updated now. The
 * last sample is kept in the metrics' other_config (vessel_rx_bytes,
 * vessel_tx_bytes, vessel_sample_ms). Call it periodically (every 5 s, like
 * xapi's rrdd) for each attached VIF. Errors: HANDLE_INVALID, INTERNAL_ERROR
 * (no such tap). */
bool net_vif_metrics_update(struct server *srv, const char *vif_ref, const char *tap,
                            struct xerr **errp);

/* Records VIF @vif_ref as (un)plugged: currently_attached and
 * allowed_operations. For the domain manager after attach/detach. On the
 * qemu backend, @attached true is recorded only when the VM's running domain
 * has the VIF's NIC (an unplugged VIF stays unplugged over a reboot in place).
 * May be called inside a db batch (it only reads the store and xenops). */
bool net_vif_set_attached(struct server *srv, const char *vif_ref, bool attached,
                          struct xerr **errp);

/* Turns a negative errno from net/ into INTERNAL_ERROR naming @what. */
/* The tap of VIF @vif_ref into @tap (IFNAMSIZ) when a changed setting must
 * reach it now: attached to a running or paused VM on the qemu backend, tap
 * present. False otherwise (the setting applies at the next attach). */
bool net_vif_live_tap(struct server *srv, const char *vif_ref, char *tap);

/* Makes running tap @tap agree with VIF @vif_ref's QoS fields (a rate limit
 * on what the guest sends, or none). */
bool net_vif_qos_apply(struct server *srv, const char *vif_ref, const char *tap,
                       struct xerr **errp);
/* Makes running tap @tap agree with VIF @vif_ref's locking_mode and allowed
 * addresses (in or out of the bridge, the address filter). */
bool net_vif_locking_apply(struct server *srv, const char *vif_ref, const char *tap,
                           struct xerr **errp);

bool net_api_errno(struct xerr **errp, int rc, const char *what, const char *name);

/* ---- between api/pif.c, api/vlan.c and api/net_admin.c ---- */

struct net_link;
/* A PIF (physical, unplugged, managed, with PIF_metrics) for NIC @l of
 * @host and a network of its own, as PIF.scan makes them; *@ref_out (may be
 * NULL) is the PIF's new ref. */
bool net_pif_new(struct db *db, const char *host, const struct net_link *l, char **ref_out,
                 struct xerr **errp);

/* A new PIF_metrics record with @carrier; *@ref is new (free()). */
bool net_pif_metrics_new(struct db *db, bool carrier, char **ref, struct xerr **errp);
/* The VLAN link name of a PIF: "<device>.<tag>"; false when too long. */
bool net_vlan_link_name(const char *device, int64_t tag, char *buf, size_t len);
/* VLAN.create's work: the tagged link on this host, the network's bridge with
 * the link in it, the untagged PIF and the VLAN record. *@vlan / *@pif (either
 * may be NULL) are new refs. */
bool net_vlan_make(struct call_ctx *ctx, const char *tagged_pif, int64_t tag, const char *network,
                   char **vlan, char **pif, struct xerr **errp);
/* VLAN.destroy's work: the link and the records (untagged PIF, its metrics). */
bool net_vlan_remove(struct call_ctx *ctx, const char *vlan, struct xerr **errp);

#endif
