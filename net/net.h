/* net/net.h - host networking: bridges, taps, VLAN links, addresses, counters.
 *
 * A library with no XenAPI knowledge: api/ decides what a network, PIF or VIF
 * means and calls these to make it so. Everything goes through rtnetlink
 * (libmnl) in the network namespace of the calling thread, except tap creation
 * (the TUN ioctls on /dev/net/tun) and the "physical" test (a link is a real
 * NIC when /sys/class/net/<name>/device exists).
 *
 * Threads: any thread may call any function; each call opens its own netlink
 * socket and closes it before returning, so calls share no state. Nothing here
 * logs or exits.
 *
 * Errors: every function returns 0 or a negative errno. The ones callers meet:
 *   -ENODEV   a named link does not exist
 *   -EEXIST   a link of that name exists already (create functions)
 *   -EINVAL   a bad argument (name too long, tag above 4094, bad MAC)
 *   -EPERM    the caller lacks CAP_NET_ADMIN
 *   -EOPNOTSUPP  the kernel lacks the link kind (no 8021q module ...)
 *   -EMEDIUMTYPE a link is not of the kind the call expects (not a bridge)
 * other values are passed up from the kernel unchanged.
 */
#ifndef VESSEL_NET_NET_H
#define VESSEL_NET_NET_H

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define NET_MAC_LEN 6
#define NET_MAC_STRLEN 18 /* "aa:bb:cc:dd:ee:ff" and its NUL */

/* One link as the kernel reports it. */
struct net_link {
    char name[IFNAMSIZ];
    int ifindex;
    uint8_t mac[NET_MAC_LEN];
    bool has_mac;     /* false for links without an address (lo has 00:..:00, so true) */
    unsigned mtu;
    bool up;          /* administratively up (IFF_UP) */
    bool carrier;     /* lower layer up (IFLA_CARRIER; IFF_LOWER_UP when absent) */
    bool physical;    /* a real NIC: /sys/class/net/<name>/device exists */
    char kind[16];    /* IFLA_INFO_KIND: "bridge", "tun", "vlan", "veth"; "" for NICs, lo */
    int master;       /* ifindex of the bridge (or bond) it is a port of, 0 when none */
    int link;         /* IFLA_LINK: the parent of a VLAN, the peer index of a veth; 0 */
    unsigned vlan_id; /* for kind "vlan": the tag, else 0 */
};

/* Byte and packet counters of a link (IFLA_STATS64), as the kernel counts them
 * from the host's side: for a tap, rx is what the guest sent. */
struct net_link_stats {
    uint64_t rx_bytes;
    uint64_t tx_bytes;
    uint64_t rx_packets;
    uint64_t tx_packets;
};

/* ---- names and MACs ---- */

/* True when @name can name a link: 1..IFNAMSIZ-1 bytes, no '/', ':', blank,
 * not "." or "..". Functions below answer -EINVAL for any other. */
bool net_name_valid(const char *name);
/* Parses "aa:bb:cc:dd:ee:ff" (hex digits in any case, exactly 6 octets of
 * 2 digits); 0 or -EINVAL. */
int net_mac_parse(const char *s, uint8_t mac[NET_MAC_LEN]);
/* Lower-case "aa:bb:cc:dd:ee:ff" into @buf (at least NET_MAC_STRLEN). */
void net_mac_format(const uint8_t mac[NET_MAC_LEN], char *buf);

/* ---- links ---- */

/* Every link of the namespace. On success *@out is an array of *@n links
 * (free() it; may be NULL when *@n is 0), in ifindex order. */
int net_link_list(struct net_link **out, size_t *n);
/* One link by name: -ENODEV when there is none. */
int net_link_get(const char *name, struct net_link *out);
bool net_link_exists(const char *name);
/* Deletes any link (bridge, tap, VLAN, veth). -ENODEV when absent. Deleting a
 * bridge releases its ports, which stay. */
int net_link_delete(const char *name);
int net_link_set_up(const char *name, bool up);
int net_link_set_mtu(const char *name, unsigned mtu);
int net_link_set_mac(const char *name, const uint8_t mac[NET_MAC_LEN]);
int net_link_stats(const char *name, struct net_link_stats *out);

/* ---- bridges ---- */

/* Creates bridge @name (down; bring it up with net_link_set_up) with MTU @mtu
 * (0: the kernel's default, 1500). -EEXIST when a link of that name exists,
 * whatever its kind: the caller decides whether an existing bridge will do. */
int net_bridge_create(const char *name, unsigned mtu);
/* Deletes bridge @name: -ENODEV when absent, -EMEDIUMTYPE when @name is not
 * a bridge (never deletes a NIC by mistake). */
int net_bridge_delete(const char *name);
/* Makes link @port a port of bridge @bridge (-EMEDIUMTYPE when @bridge is not
 * a bridge; -EBUSY from the kernel when @port is a port elsewhere). */
int net_bridge_add_port(const char *bridge, const char *port);
/* Releases @port from @bridge: -ENOENT when it is not a port of @bridge. */
int net_bridge_remove_port(const char *bridge, const char *port);

/* ---- taps ---- */

struct net_tap_opts {
    uid_t owner;              /* (uid_t)-1: root only (no TUNSETOWNER) */
    bool persistent;          /* outlives the fd: opened again later, for qemu */
    unsigned mtu;             /* 0: kernel default */
    const uint8_t *mac;       /* host side MAC, NULL: random from the kernel */
};

/* Creates tap @name (IFF_TAP | IFF_NO_PI, down). With @o->persistent the fd
 * is closed and @fd_out may be NULL; otherwise *@fd_out is the open tap (the
 * link lives while it is open; close() it). NULL @o: root-owned, persistent,
 * defaults. -EEXIST when a link of that name exists. */
int net_tap_create(const char *name, const struct net_tap_opts *o, int *fd_out);
/* Opens the existing tap @name as qemu would (IFF_TAP | IFF_NO_PI, with
 * IFF_VNET_HDR when the kernel has it): its descriptor, or -errno; -ENODEV
 * when no link has that name (as root, TUNSETIFF would make one). */
int net_tap_open(const char *name);

/* ---- rate limits (net/qdisc.c) ---- */

/* A link's root qdisc as the kernel reports it. */
struct net_qdisc {
    char kind[16];             /* "tbf", "noqueue", "fq_codel", "pfifo_fast" ... */
    unsigned handle;
    bool ours;                 /* a tbf put there by net_qdisc_tbf_set */
    uint64_t rate_bytes_per_s; /* tbf only */
    uint32_t limit_bytes;      /* tbf only: the queue behind the bucket */
};

/* Makes a token bucket of @rate_bytes_per_s the root qdisc of link @name
 * (replacing whatever root qdisc it had): what the link transmits - for a tap,
 * what the guest receives - is shaped to that rate. Bucket: 100 ms of the rate,
 * at least 16 KiB; queue: 200 ms more, then drops. -EINVAL for a zero rate,
 * -ENOENT/-EOPNOTSUPP from a kernel without sch_tbf. */
int net_qdisc_tbf_set(const char *name, uint64_t rate_bytes_per_s);
/* Removes the tbf net_qdisc_tbf_set put on @name (the kernel's default comes
 * back); 0 when there is none, and leaves a root qdisc someone else made. */
int net_qdisc_tbf_clear(const char *name);
/* The root qdisc of @name: -ENOENT when the kernel reports none. */
int net_qdisc_get(const char *name, struct net_qdisc *out);
/* Shapes what link @name receives (for a VIF's tap: what the guest sends) to
 * @rate_bytes_per_s: makes ifb link @ifb (or reuses it if it is an ifb: any
 * other kind is -EMEDIUMTYPE), up, with a tbf as above, and redirects every
 * frame arriving on @name through it (an ingress qdisc on @name with a u32
 * match-all filter and a mirred egress-redirect action). Replaces an earlier
 * setting. Needs sch_ingress, cls_u32, act_mirred and ifb: the kernel's error
 * otherwise (-ENOENT, -EOPNOTSUPP ...), with nothing left on @name. */
int net_rx_limit_set(const char *name, const char *ifb, uint64_t rate_bytes_per_s);
/* Undoes net_rx_limit_set: @name's ingress qdisc and ifb @ifb go; 0 when
 * there were none. */
int net_rx_limit_clear(const char *name, const char *ifb);
/* Creates an ifb link @name (down). */
int net_ifb_create(const char *name);

/* ---- address locks (net/nft.c) ---- */

#include <netinet/in.h>

/* What a locked VIF may send: frames from @mac only, and of those only IPv4
 * and ARP from an address of @v4, IPv6 from an address of @v6. */
struct net_lock {
    const uint8_t *mac;          /* NET_MAC_LEN bytes */
    const struct in_addr *v4;
    size_t n_v4;                 /* at most 64 */
    const struct in6_addr *v6;
    size_t n_v6;                 /* at most 64 */
};

/* Filters what link @tap brings into a bridge (for a VIF's tap: what the
 * guest sends) per @l: an nf_tables bridge-family chain named @tap in table
 * "vessel" on the prerouting hook, its rules matching iifname @tap, replacing
 * any earlier one. Traffic towards the guest is not filtered, nor what @tap
 * sends outside a bridge. -EINVAL for bad arguments; the kernel's error
 * (-EOPNOTSUPP, -ENOENT ...) without nf_tables bridge support. */
int net_lock_set(const char *tap, const struct net_lock *l);
/* Removes @tap's chain; 0 when there is none. */
int net_lock_clear(const char *tap);
/* 1 when @tap has a chain, 0 when not, or -errno. */
int net_lock_present(const char *tap);

/* ---- VLANs ---- */

/* Creates link @name, 802.1Q tag @tag (0..4094; 0 is priority-tagged) on top of @parent (down).
 * -EOPNOTSUPP when the kernel has no VLAN support. */
int net_vlan_create(const char *name, const char *parent, unsigned tag);

/* ---- IPv4 addresses ---- */

/* Replaces every IPv4 address of @name by @addr/@prefix_len (dotted quad,
 * 0..32). */
int net_addr_set_ipv4(const char *name, const char *addr, unsigned prefix_len);
/* Removes every IPv4 address of @name. */
int net_addr_flush_ipv4(const char *name);
/* The first IPv4 address of @name into @buf (INET_ADDRSTRLEN) and its prefix
 * length: -ENOENT when it has none. */
int net_addr_get_ipv4(const char *name, char *buf, size_t len, unsigned *prefix_len);
/* Dotted netmask ("255.255.255.0") to a prefix length; -EINVAL when not a
 * contiguous mask. */
int net_netmask_to_prefix(const char *mask);

#endif
