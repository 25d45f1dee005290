/* net/nft.c - a VIF's address lock: an nf_tables chain for frames its tap
 * brings into the bridge.
 *
 * What a guest transmits enters the bridge from its tap; a bridge-family base
 * chain on the prerouting hook (one per tap, named after it, in table
 * "vessel"), whose every rule first matches the input interface's name, drops
 * every frame from that tap that does not come from the VIF's MAC and, for
 * IPv4/ARP/IPv6, from one of its allowed addresses; any other ethertype is
 * dropped too. Rules, in order, each for iifname == tap:
 *   (1) ether saddr != MAC                          -> drop
 *   (2) per IPv4 address A: ip saddr == A           -> accept
 *   (3) per IPv4 address A: arp sender ip == A      -> accept
 *   (4) per IPv6 address A: ip6 saddr == A          -> accept
 *   (5)                                               drop
 * so with no address at all nothing passes (xapi's "locked": no IP, no
 * traffic); frames from other ports match no rule (policy accept). Why the
 * bridge and not the tap's own ingress hook (netdev family): a rate limit
 * redirects the tap's ingress through an ifb (net/qdisc.c), and frames the
 * ifb hands back skip both tc and netfilter ingress - but not the bridge. A
 * tap out of any bridge (locking_mode disabled) reaches nothing anyway.
 * A chain is replaced whole, in one nfnetlink batch (the kernel applies a
 * batch atomically: no instant without the filter). Messages are built by
 * hand with libmnl (no libnftnl): the layouts are those of
 * linux/netfilter/nf_tables.h (NFTA_*), the batch of nfnetlink
 * (NFNL_MSG_BATCH_BEGIN/END, res_id NFNL_SUBSYS_NFTABLES); payload offsets:
 * Ethernet source at 6, type at 12; IPv4 source at 12, ARP sender IP at 14
 * (RFC 826, Ethernet/IPv4), IPv6 source at 8. Integers in attributes are
 * big-endian, as nf_tables wants.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

#include "net/net.h"
#include "net/nl.h"

#define NFT_TABLE "vessel"
#define NF_BR_PRE_ROUTING 0 /* linux/netfilter_bridge.h, which clashes with net/if.h */

struct batch {
    char *buf;
    struct mnl_nlmsg_batch *b;
    unsigned seq;
    unsigned n_ack; /* messages that will be acknowledged */
};

static struct nlmsghdr *
msg_put(struct batch *bt, int type, unsigned flags, int family)
{
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(mnl_nlmsg_batch_current(bt->b));
    nlh->nlmsg_type = (unsigned short)type;
    nlh->nlmsg_flags = (unsigned short)(NLM_F_REQUEST | flags);
    nlh->nlmsg_seq = bt->seq;
    struct nfgenmsg *g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));
    g->nfgen_family = (uint8_t)family;
    g->version = NFNETLINK_V0;
    g->res_id = htons(family == AF_UNSPEC ? NFNL_SUBSYS_NFTABLES : 0);
    if (flags & NLM_F_ACK)
        bt->n_ack++;
    return nlh;
}

static void
msg_end(struct batch *bt)
{
    mnl_nlmsg_batch_next(bt->b);
}

static struct nlmsghdr *
nft_put(struct batch *bt, int nft_msg, unsigned flags)
{
    return msg_put(bt, (NFNL_SUBSYS_NFTABLES << 8) | nft_msg, flags | NLM_F_ACK, NFPROTO_BRIDGE);
}

static int
batch_start(struct batch *bt)
{
    memset(bt, 0, sizeof(*bt));
    if (!(bt->buf = malloc(NL_BUF_SIZE)))
        return -ENOMEM;
    if (!(bt->b = mnl_nlmsg_batch_start(bt->buf, NL_BUF_SIZE / 2))) {
        free(bt->buf);
        return -ENOMEM;
    }
    bt->seq = (unsigned)time(NULL);
    msg_put(bt, NFNL_MSG_BATCH_BEGIN, 0, AF_UNSPEC);
    msg_end(bt);
    return 0;
}

static void
batch_free(struct batch *bt)
{
    mnl_nlmsg_batch_stop(bt->b);
    free(bt->buf);
}

/* Ends the batch, sends it, and reads one answer per acknowledged message:
 * 0, or the first error the kernel reports (it then applied nothing). */
static int
batch_send(struct batch *bt)
{
    msg_put(bt, NFNL_MSG_BATCH_END, 0, AF_UNSPEC);
    msg_end(bt);
    struct mnl_socket *nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
    if (!nl)
        return -errno;
    struct timeval tv = {.tv_sec = 5};
    int rc = 0;
    if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0 ||
        setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
        mnl_socket_sendto(nl, mnl_nlmsg_batch_head(bt->b), mnl_nlmsg_batch_size(bt->b)) < 0)
        rc = -errno;
    char *buf = rc == 0 ? malloc(NL_BUF_SIZE) : NULL;
    if (rc == 0 && !buf)
        rc = -ENOMEM;
    for (unsigned acks = 0; rc == 0 && acks < bt->n_ack;) {
        ssize_t n = mnl_socket_recvfrom(nl, buf, NL_BUF_SIZE);
        if (n < 0) {
            rc = errno == EINTR ? 0 : errno == EAGAIN ? -ETIMEDOUT : -errno;
            continue;
        }
        int len = (int)n;
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; rc == 0 && mnl_nlmsg_ok(h, len);
             h = mnl_nlmsg_next(h, &len)) {
            if (h->nlmsg_type != NLMSG_ERROR)
                continue;
            const struct nlmsgerr *e = mnl_nlmsg_get_payload(h);
            if (e->error < 0)
                rc = e->error;
            else
                acks++;
        }
    }
    free(buf);
    mnl_socket_close(nl);
    return rc;
}

/* ------------------------------------------------------------------ expressions */

static void
expr_payload(struct nlmsghdr *nlh, unsigned base, unsigned offset, unsigned len)
{
    struct nlattr *el = mnl_attr_nest_start(nlh, NFTA_LIST_ELEM);
    mnl_attr_put_strz(nlh, NFTA_EXPR_NAME, "payload");
    struct nlattr *d = mnl_attr_nest_start(nlh, NFTA_EXPR_DATA);
    mnl_attr_put_u32(nlh, NFTA_PAYLOAD_DREG, htonl(NFT_REG_1));
    mnl_attr_put_u32(nlh, NFTA_PAYLOAD_BASE, htonl(base));
    mnl_attr_put_u32(nlh, NFTA_PAYLOAD_OFFSET, htonl(offset));
    mnl_attr_put_u32(nlh, NFTA_PAYLOAD_LEN, htonl(len));
    mnl_attr_nest_end(nlh, d);
    mnl_attr_nest_end(nlh, el);
}

static void
expr_cmp(struct nlmsghdr *nlh, enum nft_cmp_ops op, const void *data, size_t len)
{
    struct nlattr *el = mnl_attr_nest_start(nlh, NFTA_LIST_ELEM);
    mnl_attr_put_strz(nlh, NFTA_EXPR_NAME, "cmp");
    struct nlattr *d = mnl_attr_nest_start(nlh, NFTA_EXPR_DATA);
    mnl_attr_put_u32(nlh, NFTA_CMP_SREG, htonl(NFT_REG_1));
    mnl_attr_put_u32(nlh, NFTA_CMP_OP, htonl(op));
    struct nlattr *v = mnl_attr_nest_start(nlh, NFTA_CMP_DATA);
    mnl_attr_put(nlh, NFTA_DATA_VALUE, len, data);
    mnl_attr_nest_end(nlh, v);
    mnl_attr_nest_end(nlh, d);
    mnl_attr_nest_end(nlh, el);
}

static void
expr_iifname(struct nlmsghdr *nlh, const char *tap)
{
    char name[IFNAMSIZ] = {0}; /* compared whole: NUL-padded */
    snprintf(name, sizeof(name), "%s", tap);
    struct nlattr *el = mnl_attr_nest_start(nlh, NFTA_LIST_ELEM);
    mnl_attr_put_strz(nlh, NFTA_EXPR_NAME, "meta");
    struct nlattr *d = mnl_attr_nest_start(nlh, NFTA_EXPR_DATA);
    mnl_attr_put_u32(nlh, NFTA_META_DREG, htonl(NFT_REG_1));
    mnl_attr_put_u32(nlh, NFTA_META_KEY, htonl(NFT_META_IIFNAME));
    mnl_attr_nest_end(nlh, d);
    mnl_attr_nest_end(nlh, el);
    expr_cmp(nlh, NFT_CMP_EQ, name, sizeof(name));
}

static void
expr_verdict(struct nlmsghdr *nlh, int verdict)
{
    struct nlattr *el = mnl_attr_nest_start(nlh, NFTA_LIST_ELEM);
    mnl_attr_put_strz(nlh, NFTA_EXPR_NAME, "immediate");
    struct nlattr *d = mnl_attr_nest_start(nlh, NFTA_EXPR_DATA);
    mnl_attr_put_u32(nlh, NFTA_IMMEDIATE_DREG, htonl(NFT_REG_VERDICT));
    struct nlattr *data = mnl_attr_nest_start(nlh, NFTA_IMMEDIATE_DATA);
    struct nlattr *v = mnl_attr_nest_start(nlh, NFTA_DATA_VERDICT);
    mnl_attr_put_u32(nlh, NFTA_VERDICT_CODE, htonl((uint32_t)verdict));
    mnl_attr_nest_end(nlh, v);
    mnl_attr_nest_end(nlh, data);
    mnl_attr_nest_end(nlh, d);
    mnl_attr_nest_end(nlh, el);
}

/* A rule in chain @tap: iifname == @tap [ethertype == @type (when not 0)]
 * [@off/@len of the network header == @addr (when @addr)] -> @verdict; (1)
 * when @mac. */
static void
rule_put(struct batch *bt, const char *tap, const uint8_t *mac, uint16_t type, unsigned off,
         const void *addr, size_t len, int verdict)
{
    struct nlmsghdr *nlh = nft_put(bt, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND);
    mnl_attr_put_strz(nlh, NFTA_RULE_TABLE, NFT_TABLE);
    mnl_attr_put_strz(nlh, NFTA_RULE_CHAIN, tap);
    struct nlattr *list = mnl_attr_nest_start(nlh, NFTA_RULE_EXPRESSIONS);
    expr_iifname(nlh, tap);
    if (mac) {
        expr_payload(nlh, NFT_PAYLOAD_LL_HEADER, 6, NET_MAC_LEN);
        expr_cmp(nlh, NFT_CMP_NEQ, mac, NET_MAC_LEN);
    }
    if (type) {
        uint16_t be = htons(type);
        expr_payload(nlh, NFT_PAYLOAD_LL_HEADER, 12, 2);
        expr_cmp(nlh, NFT_CMP_EQ, &be, 2);
    }
    if (addr) {
        expr_payload(nlh, NFT_PAYLOAD_NETWORK_HEADER, off, (unsigned)len);
        expr_cmp(nlh, NFT_CMP_EQ, addr, len);
    }
    expr_verdict(nlh, verdict);
    mnl_attr_nest_end(nlh, list);
    msg_end(bt);
}

/* ------------------------------------------------------------------ chains */

static void
chain_flush_delete(struct batch *bt, const char *tap)
{
    struct nlmsghdr *nlh = nft_put(bt, NFT_MSG_DELRULE, 0);
    mnl_attr_put_strz(nlh, NFTA_RULE_TABLE, NFT_TABLE);
    mnl_attr_put_strz(nlh, NFTA_RULE_CHAIN, tap);
    msg_end(bt);
    nlh = nft_put(bt, NFT_MSG_DELCHAIN, 0);
    mnl_attr_put_strz(nlh, NFTA_CHAIN_TABLE, NFT_TABLE);
    mnl_attr_put_strz(nlh, NFTA_CHAIN_NAME, tap);
    msg_end(bt);
}

/* Asks before it deletes: a batch costs the kernel's commit (8-20 ms here,
 * RCU grace periods) even when it fails for want of the chain, and most taps
 * have none (locking_mode not locked), while a GETCHAIN is a plain read
 * (~0.04 ms). Only vesseld writes table "vessel", and a tap's name is used by
 * one domain at a time, so nothing makes the chain between the two. */
int
net_lock_clear(const char *tap)
{
    if (!net_name_valid(tap))
        return -EINVAL;
    if (net_lock_present(tap) == 0)
        return 0; /* an error asking: the delete below tells */
    struct batch bt;
    int rc = batch_start(&bt);
    if (rc < 0)
        return rc;
    chain_flush_delete(&bt, tap);
    rc = batch_send(&bt);
    batch_free(&bt);
    return rc == -ENOENT ? 0 : rc; /* no table or no chain: nothing to clear */
}

int
net_lock_set(const char *tap, const struct net_lock *l)
{
    if (!net_name_valid(tap) || !l || l->n_v4 > 64 || l->n_v6 > 64)
        return -EINVAL;
    int rc = net_lock_clear(tap); /* a chain left from an earlier tap of that name */
    if (rc < 0)
        return rc;
    struct batch bt;
    if ((rc = batch_start(&bt)) < 0)
        return rc;
    struct nlmsghdr *nlh = nft_put(&bt, NFT_MSG_NEWTABLE, NLM_F_CREATE);
    mnl_attr_put_strz(nlh, NFTA_TABLE_NAME, NFT_TABLE);
    msg_end(&bt);
    nlh = nft_put(&bt, NFT_MSG_NEWCHAIN, NLM_F_CREATE);
    mnl_attr_put_strz(nlh, NFTA_CHAIN_TABLE, NFT_TABLE);
    mnl_attr_put_strz(nlh, NFTA_CHAIN_NAME, tap);
    mnl_attr_put_strz(nlh, NFTA_CHAIN_TYPE, "filter");
    mnl_attr_put_u32(nlh, NFTA_CHAIN_POLICY, htonl(NF_ACCEPT));
    struct nlattr *hook = mnl_attr_nest_start(nlh, NFTA_CHAIN_HOOK);
    mnl_attr_put_u32(nlh, NFTA_HOOK_HOOKNUM, htonl(NF_BR_PRE_ROUTING));
    mnl_attr_put_u32(nlh, NFTA_HOOK_PRIORITY, htonl((uint32_t)-200)); /* filter, as ebtables */
    mnl_attr_nest_end(nlh, hook);
    msg_end(&bt);
    rule_put(&bt, tap, l->mac, 0, 0, NULL, 0, NF_DROP);                          /* (1) */
    for (size_t i = 0; i < l->n_v4; i++) {
        rule_put(&bt, tap, NULL, 0x0800, 12, &l->v4[i], 4, NF_ACCEPT);            /* (2) */
        rule_put(&bt, tap, NULL, 0x0806, 14, &l->v4[i], 4, NF_ACCEPT);            /* (3) */
    }
    for (size_t i = 0; i < l->n_v6; i++)
        rule_put(&bt, tap, NULL, 0x86dd, 8, &l->v6[i], 16, NF_ACCEPT);           /* (4) */
    rule_put(&bt, tap, NULL, 0, 0, NULL, 0, NF_DROP);                            /* (5) */
    rc = batch_send(&bt);
    batch_free(&bt);
    return rc;
}

/* ------------------------------------------------------------------ query */

static int
chain_cb(const struct nlmsghdr *nlh, void *data)
{
    (void)nlh;
    *(bool *)data = true;
    return MNL_CB_OK;
}

int
net_lock_present(const char *tap)
{
    if (!net_name_valid(tap))
        return -EINVAL;
    char *buf = malloc(NL_BUF_SIZE);
    if (!buf)
        return -ENOMEM;
    memset(buf, 0, NL_BUF_SIZE);
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETCHAIN;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    nlh->nlmsg_seq = (unsigned)time(NULL);
    struct nfgenmsg *g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));
    g->nfgen_family = NFPROTO_BRIDGE;
    g->version = NFNETLINK_V0;
    mnl_attr_put_strz(nlh, NFTA_CHAIN_TABLE, NFT_TABLE);
    mnl_attr_put_strz(nlh, NFTA_CHAIN_NAME, tap);
    bool found = false;
    int rc = 0;
    struct mnl_socket *nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
    if (!nl || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0 ||
        mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
        rc = -errno;
    while (rc == 0) {
        ssize_t n = mnl_socket_recvfrom(nl, buf, NL_BUF_SIZE);
        if (n < 0) {
            rc = -errno;
            break;
        }
        int r = mnl_cb_run(buf, (size_t)n, nlh->nlmsg_seq, mnl_socket_get_portid(nl), chain_cb,
                           &found);
        if (r == MNL_CB_ERROR)
            rc = -errno;
        if (r != MNL_CB_OK)
            break;
    }
    if (nl)
        mnl_socket_close(nl);
    free(buf);
    if (rc == -ENOENT)
        return 0;
    return rc < 0 ? rc : found;
}
