/* net/link.c - links through rtnetlink: list, query, delete, up/down, MTU,
 * MAC, counters; bridges and their ports; 802.1Q VLAN links.
 *
 * Every call is one request on its own NETLINK_ROUTE socket (nl_talk), so
 * there is no shared state and no thread-safety question; the cost (a socket
 * per call) is nothing next to what a bridge or a tap costs the kernel.
 * Attribute layouts: linux/if_link.h (IFLA_*, IFLA_INFO_*, IFLA_VLAN_ID),
 * rtnetlink(7). A "physical" link is what the kernel shows with a device
 * behind it in sysfs (/sys/class/net/<name>/device): NICs, not bridges, taps,
 * VLANs, veths, bonds or lo.
 */
#include <errno.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "net/net.h"
#include "net/nl.h"

#ifndef IFF_LOWER_UP
#define IFF_LOWER_UP 0x10000 /* linux/if.h, which clashes with net/if.h */
#endif

/* ------------------------------------------------------------------ plumbing */

static atomic_uint nl_seq;

int
nl_talk(struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
    struct mnl_socket *nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
    if (!nl)
        return -errno;
    if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
        int rc = -errno;
        mnl_socket_close(nl);
        return rc;
    }
    unsigned portid = mnl_socket_get_portid(nl);
    unsigned seq = atomic_fetch_add(&nl_seq, 1) + (unsigned)time(NULL);
    nlh->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
    nlh->nlmsg_seq = seq;
    int rc = 0;
    char *buf = malloc(NL_BUF_SIZE);
    if (!buf) {
        rc = -ENOMEM;
    } else if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
        rc = -errno;
    } else {
        for (;;) {
            ssize_t n = mnl_socket_recvfrom(nl, buf, NL_BUF_SIZE);
            if (n < 0) {
                rc = errno == EINTR ? 0 : -errno;
                if (rc == 0)
                    continue;
                break;
            }
            errno = 0;
            int r = mnl_cb_run(buf, (size_t)n, seq, portid, cb, data);
            if (r == MNL_CB_ERROR) {
                rc = errno ? -errno : -EIO;
                break;
            }
            if (r == MNL_CB_STOP)
                break;
        }
    }
    free(buf);
    mnl_socket_close(nl);
    return rc;
}

bool
net_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n >= IFNAMSIZ || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return false;
    for (const char *p = name; *p; p++)
        if (*p == '/' || *p == ':' || *p <= ' ' || *p == 0x7f)
            return false;
    return true;
}

int
nl_ifindex(const char *name)
{
    if (!net_name_valid(name))
        return -EINVAL;
    unsigned idx = if_nametoindex(name);
    return idx ? (int)idx : -ENODEV;
}

static struct nlmsghdr *
link_msg(char *buf, int type, unsigned flags, int ifindex)
{
    memset(buf, 0, NL_BUF_SIZE);
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = (unsigned short)type;
    nlh->nlmsg_flags = (unsigned short)flags;
    struct ifinfomsg *ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
    ifm->ifi_family = AF_UNSPEC;
    ifm->ifi_index = ifindex;
    return nlh;
}

/* ------------------------------------------------------------------ MACs */

int
net_mac_parse(const char *s, uint8_t mac[NET_MAC_LEN])
{
    if (!s || strlen(s) != NET_MAC_STRLEN - 1)
        return -EINVAL;
    for (int i = 0; i < NET_MAC_LEN; i++) {
        const char *p = s + 3 * i;
        unsigned v = 0;
        for (int j = 0; j < 2; j++) {
            char c = p[j];
            unsigned d;
            if (c >= '0' && c <= '9')
                d = (unsigned)(c - '0');
            else if (c >= 'a' && c <= 'f')
                d = (unsigned)(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F')
                d = (unsigned)(c - 'A' + 10);
            else
                return -EINVAL;
            v = v * 16 + d;
        }
        if (i < NET_MAC_LEN - 1 && p[2] != ':')
            return -EINVAL;
        mac[i] = (uint8_t)v;
    }
    return 0;
}

void
net_mac_format(const uint8_t mac[NET_MAC_LEN], char *buf)
{
    snprintf(buf, NET_MAC_STRLEN, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3],
             mac[4], mac[5]);
}

/* ------------------------------------------------------------------ parsing */

struct attr_table {
    const struct nlattr **tb;
    int max;
};

static int
attr_table_cb(const struct nlattr *a, void *data)
{
    struct attr_table *t = data;
    int type = mnl_attr_get_type(a);
    if (type >= 0 && type <= t->max)
        t->tb[type] = a;
    return MNL_CB_OK;
}

int
nl_parse(const struct nlmsghdr *nlh, size_t offset, const struct nlattr **tb, int max)
{
    struct attr_table t = {tb, max};
    return mnl_attr_parse(nlh, (unsigned int)offset, attr_table_cb, &t);
}

int
nl_parse_nested(const struct nlattr *nest, const struct nlattr **tb, int max)
{
    struct attr_table t = {tb, max};
    return mnl_attr_parse_nested(nest, attr_table_cb, &t);
}

struct attrs {
    const struct nlattr *tb[IFLA_MAX + 1];
};

static uint32_t
attr_u32(const struct nlattr *a)
{
    return a && mnl_attr_get_payload_len(a) >= 4 ? mnl_attr_get_u32(a) : 0;
}

static void
parse_linkinfo(const struct nlattr *li, struct net_link *l)
{
    const struct nlattr *info[IFLA_INFO_MAX + 1] = {0};
    if (nl_parse_nested(li, info, IFLA_INFO_MAX) < 0)
        return;
    if (info[IFLA_INFO_KIND] && mnl_attr_validate(info[IFLA_INFO_KIND], MNL_TYPE_STRING) == 0)
        snprintf(l->kind, sizeof(l->kind), "%.*s",
                 (int)strnlen(mnl_attr_get_str(info[IFLA_INFO_KIND]),
                              mnl_attr_get_payload_len(info[IFLA_INFO_KIND])),
                 mnl_attr_get_str(info[IFLA_INFO_KIND]));
    if (strcmp(l->kind, "vlan") == 0 && info[IFLA_INFO_DATA]) {
        const struct nlattr *v[IFLA_VLAN_MAX + 1] = {0};
        if (nl_parse_nested(info[IFLA_INFO_DATA], v, IFLA_VLAN_MAX) == 0 && v[IFLA_VLAN_ID] &&
            mnl_attr_get_payload_len(v[IFLA_VLAN_ID]) >= 2)
            l->vlan_id = mnl_attr_get_u16(v[IFLA_VLAN_ID]);
    }
}

/* Fills @l (and @st when not NULL) from one RTM_NEWLINK answer. */
static int
parse_link(const struct nlmsghdr *nlh, struct net_link *l, struct net_link_stats *st)
{
    const struct ifinfomsg *ifm = mnl_nlmsg_get_payload(nlh);
    struct attrs at;
    memset(&at, 0, sizeof(at));
    memset(l, 0, sizeof(*l));
    if (nl_parse(nlh, sizeof(*ifm), at.tb, IFLA_MAX) < 0)
        return -EPROTO;
    l->ifindex = ifm->ifi_index;
    l->up = (ifm->ifi_flags & IFF_UP) != 0;
    l->carrier = (ifm->ifi_flags & IFF_LOWER_UP) != 0;
    const struct nlattr *a;
    if ((a = at.tb[IFLA_IFNAME]) && mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0)
        snprintf(l->name, sizeof(l->name), "%s", mnl_attr_get_str(a));
    if ((a = at.tb[IFLA_ADDRESS]) && mnl_attr_get_payload_len(a) == NET_MAC_LEN) {
        memcpy(l->mac, mnl_attr_get_payload(a), NET_MAC_LEN);
        l->has_mac = true;
    }
    l->mtu = attr_u32(at.tb[IFLA_MTU]);
    if ((a = at.tb[IFLA_CARRIER]) && mnl_attr_get_payload_len(a) >= 1)
        l->carrier = mnl_attr_get_u8(a) != 0;
    l->master = (int)attr_u32(at.tb[IFLA_MASTER]);
    l->link = (int)attr_u32(at.tb[IFLA_LINK]);
    if (at.tb[IFLA_LINKINFO])
        parse_linkinfo(at.tb[IFLA_LINKINFO], l);
    if (l->name[0]) {
        char path[64 + IFNAMSIZ];
        snprintf(path, sizeof(path), "/sys/class/net/%s/device", l->name);
        l->physical = access(path, F_OK) == 0;
    }
    if (st) {
        memset(st, 0, sizeof(*st));
        struct rtnl_link_stats64 s64;
        if ((a = at.tb[IFLA_STATS64]) && mnl_attr_get_payload_len(a) >= sizeof(s64)) {
            memcpy(&s64, mnl_attr_get_payload(a), sizeof(s64));
            st->rx_bytes = s64.rx_bytes;
            st->tx_bytes = s64.tx_bytes;
            st->rx_packets = s64.rx_packets;
            st->tx_packets = s64.tx_packets;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ queries */

struct one_link {
    struct net_link *l;
    struct net_link_stats *st;
    int rc;
    bool found;
};

static int
one_link_cb(const struct nlmsghdr *nlh, void *data)
{
    struct one_link *o = data;
    if (nlh->nlmsg_type != RTM_NEWLINK)
        return MNL_CB_OK;
    o->rc = parse_link(nlh, o->l, o->st);
    o->found = true;
    return MNL_CB_OK;
}

static int
link_query(const char *name, struct net_link *l, struct net_link_stats *st)
{
    if (!net_name_valid(name))
        return -EINVAL;
    char *buf = malloc(NL_BUF_SIZE);
    if (!buf)
        return -ENOMEM;
    struct nlmsghdr *nlh = link_msg(buf, RTM_GETLINK, 0, 0);
    mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
    struct one_link o = {.l = l, .st = st};
    int rc = nl_talk(nlh, one_link_cb, &o);
    free(buf);
    if (rc < 0)
        return rc;
    if (!o.found)
        return -ENODEV;
    return o.rc;
}

int
net_link_get(const char *name, struct net_link *out)
{
    return link_query(name, out, NULL);
}

bool
net_link_exists(const char *name)
{
    return nl_ifindex(name) > 0;
}

int
net_link_stats(const char *name, struct net_link_stats *out)
{
    struct net_link l;
    return link_query(name, &l, out);
}

struct link_list {
    struct net_link *v;
    size_t n, cap;
    int rc;
};

static int
list_cb(const struct nlmsghdr *nlh, void *data)
{
    struct link_list *ll = data;
    if (nlh->nlmsg_type != RTM_NEWLINK || ll->rc < 0)
        return MNL_CB_OK;
    if (ll->n == ll->cap) {
        size_t cap = ll->cap ? ll->cap * 2 : 16;
        struct net_link *v = realloc(ll->v, cap * sizeof(*v));
        if (!v) {
            ll->rc = -ENOMEM;
            return MNL_CB_OK;
        }
        ll->v = v;
        ll->cap = cap;
    }
    if (parse_link(nlh, &ll->v[ll->n], NULL) == 0)
        ll->n++;
    return MNL_CB_OK;
}

int
net_link_list(struct net_link **out, size_t *n)
{
    char *buf = malloc(NL_BUF_SIZE);
    if (!buf)
        return -ENOMEM;
    struct nlmsghdr *nlh = link_msg(buf, RTM_GETLINK, NLM_F_DUMP, 0);
    struct link_list ll = {0};
    int rc = nl_talk(nlh, list_cb, &ll);
    free(buf);
    if (rc == 0)
        rc = ll.rc;
    if (rc < 0) {
        free(ll.v);
        return rc;
    }
    *out = ll.v;
    *n = ll.n;
    return 0;
}

/* ------------------------------------------------------------------ changes */

/* One RTM_NEWLINK/DELLINK on link @name, with attributes added by @fill. */
typedef void link_fill_fn(struct nlmsghdr *nlh, const void *arg);

static int
link_change(const char *name, int type, link_fill_fn *fill, const void *arg, unsigned change,
            unsigned flags)
{
    int idx = nl_ifindex(name);
    if (idx < 0)
        return idx;
    char *buf = malloc(NL_BUF_SIZE);
    if (!buf)
        return -ENOMEM;
    struct nlmsghdr *nlh = link_msg(buf, type, 0, idx);
    struct ifinfomsg *ifm = mnl_nlmsg_get_payload(nlh);
    ifm->ifi_change = change;
    ifm->ifi_flags = flags;
    if (fill)
        fill(nlh, arg);
    int rc = nl_talk(nlh, NULL, NULL);
    free(buf);
    return rc;
}

int
net_link_delete(const char *name)
{
    return link_change(name, RTM_DELLINK, NULL, NULL, 0, 0);
}

int
net_link_set_up(const char *name, bool up)
{
    return link_change(name, RTM_NEWLINK, NULL, NULL, IFF_UP, up ? IFF_UP : 0);
}

static void
fill_mtu(struct nlmsghdr *nlh, const void *arg)
{
    mnl_attr_put_u32(nlh, IFLA_MTU, *(const unsigned *)arg);
}

int
net_link_set_mtu(const char *name, unsigned mtu)
{
    if (mtu < 68 || mtu > 65535)
        return -EINVAL;
    return link_change(name, RTM_NEWLINK, fill_mtu, &mtu, 0, 0);
}

static void
fill_mac(struct nlmsghdr *nlh, const void *arg)
{
    mnl_attr_put(nlh, IFLA_ADDRESS, NET_MAC_LEN, arg);
}

int
net_link_set_mac(const char *name, const uint8_t mac[NET_MAC_LEN])
{
    if (mac[0] & 1)
        return -EINVAL; /* a multicast address cannot name a link */
    return link_change(name, RTM_NEWLINK, fill_mac, mac, 0, 0);
}

/* ------------------------------------------------------------------ bridges */

/* A new link @name of @kind: IFLA_LINK @parent (0: none), nested data by @data. */
static int
link_create(const char *name, const char *kind, unsigned mtu, int parent, link_fill_fn *data,
            const void *arg)
{
    if (!net_name_valid(name))
        return -EINVAL;
    if (net_link_exists(name))
        return -EEXIST;
    char *buf = malloc(NL_BUF_SIZE);
    if (!buf)
        return -ENOMEM;
    struct nlmsghdr *nlh = link_msg(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0);
    mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
    if (mtu)
        mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
    if (parent > 0)
        mnl_attr_put_u32(nlh, IFLA_LINK, (uint32_t)parent);
    struct nlattr *li = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
    mnl_attr_put_strz(nlh, IFLA_INFO_KIND, kind);
    if (data) {
        struct nlattr *d = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
        data(nlh, arg);
        mnl_attr_nest_end(nlh, d);
    }
    mnl_attr_nest_end(nlh, li);
    int rc = nl_talk(nlh, NULL, NULL);
    free(buf);
    return rc;
}

int
net_ifb_create(const char *name)
{
    return link_create(name, "ifb", 0, 0, NULL, NULL);
}

int
net_bridge_create(const char *name, unsigned mtu)
{
    if (mtu && (mtu < 68 || mtu > 65535))
        return -EINVAL;
    return link_create(name, "bridge", mtu, 0, NULL, NULL);
}

/* 0 when @name is a bridge, and its ifindex in *@idx. */
static int
bridge_check(const char *name, int *idx)
{
    struct net_link l;
    int rc = net_link_get(name, &l);
    if (rc < 0)
        return rc;
    if (strcmp(l.kind, "bridge") != 0)
        return -EMEDIUMTYPE;
    *idx = l.ifindex;
    return 0;
}

int
net_bridge_delete(const char *name)
{
    int idx, rc = bridge_check(name, &idx);
    return rc < 0 ? rc : net_link_delete(name);
}

static void
fill_master(struct nlmsghdr *nlh, const void *arg)
{
    mnl_attr_put_u32(nlh, IFLA_MASTER, (uint32_t) * (const int *)arg);
}

int
net_bridge_add_port(const char *bridge, const char *port)
{
    int idx, rc = bridge_check(bridge, &idx);
    if (rc < 0)
        return rc;
    return link_change(port, RTM_NEWLINK, fill_master, &idx, 0, 0);
}

int
net_bridge_remove_port(const char *bridge, const char *port)
{
    int idx, rc = bridge_check(bridge, &idx);
    if (rc < 0)
        return rc;
    struct net_link p;
    if ((rc = net_link_get(port, &p)) < 0)
        return rc;
    if (p.master != idx)
        return -ENOENT;
    int none = 0;
    return link_change(port, RTM_NEWLINK, fill_master, &none, 0, 0);
}

/* ------------------------------------------------------------------ VLANs */

static void
fill_vlan(struct nlmsghdr *nlh, const void *arg)
{
    mnl_attr_put_u16(nlh, IFLA_VLAN_ID, (uint16_t) * (const unsigned *)arg);
}

int
net_vlan_create(const char *name, const char *parent, unsigned tag)
{
    if (tag > 4094)
        return -EINVAL;
    int pidx = nl_ifindex(parent);
    if (pidx < 0)
        return pidx;
    return link_create(name, "vlan", 0, pidx, fill_vlan, &tag);
}
