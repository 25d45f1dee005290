/* net/addr.c - IPv4 addresses of a link through rtnetlink (RTM_*ADDR,
 * linux/if_addr.h).
 *
 * "Set" means "the link has exactly this address afterwards": the existing
 * IPv4 addresses are removed first, so reconfiguring a PIF from one static
 * address to another does not leave the old one behind. IPv6 is not touched.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h"
#include "net/nl.h"

#define ADDR_MAX 64

struct addr_list {
    int ifindex;
    size_t n;
    struct {
        uint32_t addr; /* network order */
        unsigned char prefix;
    } v[ADDR_MAX];
};

static int
addr_list_cb(const struct nlmsghdr *nlh, void *data)
{
    struct addr_list *al = data;
    if (nlh->nlmsg_type != RTM_NEWADDR)
        return MNL_CB_OK;
    const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
    if (ifa->ifa_family != AF_INET || (int)ifa->ifa_index != al->ifindex || al->n == ADDR_MAX)
        return MNL_CB_OK;
    const struct nlattr *tb[IFA_MAX + 1] = {0};
    if (nl_parse(nlh, sizeof(*ifa), tb, IFA_MAX) < 0)
        return MNL_CB_OK;
    const struct nlattr *a = tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
    if (!a || mnl_attr_get_payload_len(a) != 4)
        return MNL_CB_OK;
    memcpy(&al->v[al->n].addr, mnl_attr_get_payload(a), 4);
    al->v[al->n].prefix = ifa->ifa_prefixlen;
    al->n++;
    return MNL_CB_OK;
}

static struct nlmsghdr *
addr_msg(char *buf, int type, unsigned flags, int ifindex, unsigned prefix)
{
    memset(buf, 0, NL_BUF_SIZE);
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = (unsigned short)type;
    nlh->nlmsg_flags = (unsigned short)flags;
    struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
    ifa->ifa_family = AF_INET;
    ifa->ifa_prefixlen = (unsigned char)prefix;
    ifa->ifa_scope = RT_SCOPE_UNIVERSE;
    ifa->ifa_index = (unsigned)ifindex;
    return nlh;
}

static int
addr_list(const char *name, struct addr_list *al, char *buf)
{
    int idx = nl_ifindex(name);
    if (idx < 0)
        return idx;
    memset(al, 0, sizeof(*al));
    al->ifindex = idx;
    struct nlmsghdr *nlh = addr_msg(buf, RTM_GETADDR, NLM_F_DUMP, 0, 0);
    return nl_talk(nlh, addr_list_cb, al);
}

static int
addr_flush(const char *name, char *buf)
{
    struct addr_list *al = malloc(sizeof(*al));
    if (!al)
        return -ENOMEM;
    int rc = addr_list(name, al, buf);
    for (size_t i = 0; rc == 0 && i < al->n; i++) {
        struct nlmsghdr *nlh = addr_msg(buf, RTM_DELADDR, 0, al->ifindex, al->v[i].prefix);
        mnl_attr_put_u32(nlh, IFA_LOCAL, al->v[i].addr);
        rc = nl_talk(nlh, NULL, NULL);
        if (rc == -EADDRNOTAVAIL)
            rc = 0; /* gone meanwhile */
    }
    free(al);
    return rc;
}

int
net_addr_flush_ipv4(const char *name)
{
    char *buf = malloc(NL_BUF_SIZE);
    if (!buf)
        return -ENOMEM;
    int rc = addr_flush(name, buf);
    free(buf);
    return rc;
}

int
net_addr_set_ipv4(const char *name, const char *addr, unsigned prefix_len)
{
    struct in_addr a;
    if (!addr || inet_pton(AF_INET, addr, &a) != 1 || prefix_len > 32)
        return -EINVAL;
    int idx = nl_ifindex(name);
    if (idx < 0)
        return idx;
    char *buf = malloc(NL_BUF_SIZE);
    if (!buf)
        return -ENOMEM;
    int rc = addr_flush(name, buf);
    if (rc == 0) {
        struct nlmsghdr *nlh =
            addr_msg(buf, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, idx, prefix_len);
        mnl_attr_put_u32(nlh, IFA_LOCAL, a.s_addr);
        mnl_attr_put_u32(nlh, IFA_ADDRESS, a.s_addr);
        if (prefix_len < 31) {
            uint32_t mask = prefix_len ? htonl(~0u << (32 - prefix_len)) : 0;
            mnl_attr_put_u32(nlh, IFA_BROADCAST, a.s_addr | ~mask);
        }
        rc = nl_talk(nlh, NULL, NULL);
    }
    free(buf);
    return rc;
}

int
net_addr_get_ipv4(const char *name, char *out, size_t len, unsigned *prefix_len)
{
    char *buf = malloc(NL_BUF_SIZE);
    struct addr_list *al = malloc(sizeof(*al));
    int rc = buf && al ? addr_list(name, al, buf) : -ENOMEM;
    if (rc == 0 && al->n == 0)
        rc = -ENOENT;
    if (rc == 0) {
        struct in_addr a = {.s_addr = al->v[0].addr};
        if (!inet_ntop(AF_INET, &a, out, (socklen_t)len))
            rc = -ENOSPC;
        else if (prefix_len)
            *prefix_len = al->v[0].prefix;
    }
    free(al);
    free(buf);
    return rc;
}

int
net_netmask_to_prefix(const char *mask)
{
    struct in_addr a;
    if (!mask || inet_pton(AF_INET, mask, &a) != 1)
        return -EINVAL;
    uint32_t m = ntohl(a.s_addr);
    int n = 0;
    while (n < 32 && (m & (1u << (31 - n))))
        n++;
    if (n < 32 && (m << n) != 0)
        return -EINVAL; /* holes: 255.0.255.0 */
    return n;
}
