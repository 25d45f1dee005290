/* net/qdisc.c - rate limits through rtnetlink: a token bucket (tbf) as a
 * link's root qdisc (set, remove, read back), and the same applied to what a
 * link receives by redirecting its ingress through an ifb.
 *
 * This is how a VIF's rate limit is applied, as XenServer's limits what the
 * guest transmits: the guest's frames arrive on the tap's ingress, where only
 * an action can act (there is no queue to shape on ingress); act_mirred sends
 * each one out of a per-VIF ifb whose root tbf shapes it, and the ifb then
 * hands it back to the stack as received on the tap (act_police would drop
 * instead of shaping, and the test kernel lacks it anyway). The tbf carries
 * handle NET_TBF_HANDLE so that only ours is ever replaced or removed.
 * Facts: linux/pkt_sched.h (struct tc_tbf_qopt, TCA_TBF_*), linux/pkt_cls.h
 * (TCA_U32_*, struct tc_u32_sel), linux/tc_act/tc_mirred.h, drivers/net/ifb.c,
 * tc-mirred(8), net/sched/sch_tbf.c
 * (TCA_TBF_BURST gives the bucket in bytes, overriding qopt.buffer; a ratespec
 * with linklayer ethernet needs no rate table; qopt.limit is the queue in
 * bytes), tc-tbf(8), rtnetlink(7) (RTM_NEWQDISC, tcmsg).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/pkt_sched.h>
#include <linux/tc_act/tc_mirred.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h"
#include "net/nl.h"

#define NET_TBF_HANDLE 0x76650000u /* "ve":0, the major number of our qdiscs */

static struct nlmsghdr *
qdisc_msg(char *buf, int type, unsigned flags, int ifindex, unsigned handle)
{
    memset(buf, 0, NL_BUF_SIZE);
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
    nlh->nlmsg_type = (unsigned short)type;
    nlh->nlmsg_flags = (unsigned short)flags;
    struct tcmsg *tcm = mnl_nlmsg_put_extra_header(nlh, sizeof(*tcm));
    tcm->tcm_family = AF_UNSPEC;
    tcm->tcm_ifindex = ifindex;
    tcm->tcm_handle = handle;
    tcm->tcm_parent = TC_H_ROOT;
    return nlh;
}

/* ------------------------------------------------------------------ read */

struct qdisc_dump {
    int ifindex;
    struct net_qdisc *out;
    bool found;
};

static void
parse_tbf(const struct nlattr *opts, struct net_qdisc *q)
{
    const struct nlattr *tb[TCA_TBF_MAX + 1] = {0};
    if (nl_parse_nested(opts, tb, TCA_TBF_MAX) < 0)
        return;
    struct tc_tbf_qopt qopt;
    if (tb[TCA_TBF_PARMS] && mnl_attr_get_payload_len(tb[TCA_TBF_PARMS]) >= sizeof(qopt)) {
        memcpy(&qopt, mnl_attr_get_payload(tb[TCA_TBF_PARMS]), sizeof(qopt));
        q->rate_bytes_per_s = qopt.rate.rate;
        q->limit_bytes = qopt.limit;
    }
    if (tb[TCA_TBF_RATE64] && mnl_attr_get_payload_len(tb[TCA_TBF_RATE64]) >= 8)
        q->rate_bytes_per_s = mnl_attr_get_u64(tb[TCA_TBF_RATE64]);
}

static int
dump_cb(const struct nlmsghdr *nlh, void *data)
{
    struct qdisc_dump *qd = data;
    const struct tcmsg *tcm = mnl_nlmsg_get_payload(nlh);
    if (nlh->nlmsg_type != RTM_NEWQDISC || tcm->tcm_ifindex != qd->ifindex ||
        tcm->tcm_parent != TC_H_ROOT || qd->found)
        return MNL_CB_OK;
    const struct nlattr *tb[TCA_MAX + 1] = {0};
    if (nl_parse(nlh, sizeof(*tcm), tb, TCA_MAX) < 0)
        return MNL_CB_OK;
    struct net_qdisc *q = qd->out;
    memset(q, 0, sizeof(*q));
    qd->found = true;
    q->handle = tcm->tcm_handle;
    q->ours = tcm->tcm_handle == NET_TBF_HANDLE;
    if (tb[TCA_KIND] && mnl_attr_validate(tb[TCA_KIND], MNL_TYPE_NUL_STRING) == 0)
        snprintf(q->kind, sizeof(q->kind), "%s", mnl_attr_get_str(tb[TCA_KIND]));
    if (!strcmp(q->kind, "tbf") && tb[TCA_OPTIONS])
        parse_tbf(tb[TCA_OPTIONS], q);
    return MNL_CB_OK;
}

int
net_qdisc_get(const char *name, struct net_qdisc *out)
{
    int idx = nl_ifindex(name);
    if (idx < 0)
        return idx;
    char *buf = malloc(NL_BUF_SIZE);
    if (!buf)
        return -ENOMEM;
    /* a dump of every link's qdiscs (older kernels ignore tcm_ifindex here) */
    struct nlmsghdr *nlh = qdisc_msg(buf, RTM_GETQDISC, NLM_F_DUMP, idx, 0);
    struct qdisc_dump qd = {.ifindex = idx, .out = out};
    int rc = nl_talk(nlh, dump_cb, &qd);
    free(buf);
    if (rc == 0 && !qd.found)
        rc = -ENOENT;
    return rc;
}

/* ------------------------------------------------------------------ change */

int
net_qdisc_tbf_set(const char *name, uint64_t rate_bytes_per_s)
{
    if (rate_bytes_per_s == 0)
        return -EINVAL;
    int idx = nl_ifindex(name);
    if (idx < 0)
        return idx;
    /* the bucket: 100 ms at the rate, at least 16 KiB (above any MTU, so no
     * packet is too big to pass); the queue behind it: another 200 ms */
    uint64_t burst = rate_bytes_per_s / 10 < 16384 ? 16384 : rate_bytes_per_s / 10;
    if (burst > UINT32_MAX / 4)
        burst = UINT32_MAX / 4;
    uint64_t limit = burst + rate_bytes_per_s / 5;
    struct tc_tbf_qopt qopt;
    memset(&qopt, 0, sizeof(qopt));
    qopt.rate.rate = rate_bytes_per_s >= UINT32_MAX ? UINT32_MAX : (uint32_t)rate_bytes_per_s;
    qopt.rate.linklayer = TC_LINKLAYER_ETHERNET;
    qopt.limit = limit > UINT32_MAX ? UINT32_MAX : (uint32_t)limit;
    /* qopt.buffer is the bucket in psched ticks (64 ns); TCA_TBF_BURST
     * overrides it, but old kernels read this one */
    uint64_t ticks = burst * 1000000000ull / rate_bytes_per_s / 64;
    qopt.buffer = ticks > UINT32_MAX ? UINT32_MAX : (uint32_t)ticks;
    char *buf = malloc(NL_BUF_SIZE);
    if (!buf)
        return -ENOMEM;
    struct nlmsghdr *nlh = qdisc_msg(buf, RTM_NEWQDISC, NLM_F_CREATE | NLM_F_REPLACE, idx,
                                     NET_TBF_HANDLE);
    mnl_attr_put_strz(nlh, TCA_KIND, "tbf");
    struct nlattr *opts = mnl_attr_nest_start(nlh, TCA_OPTIONS);
    mnl_attr_put(nlh, TCA_TBF_PARMS, sizeof(qopt), &qopt);
    if (rate_bytes_per_s >= UINT32_MAX)
        mnl_attr_put_u64(nlh, TCA_TBF_RATE64, rate_bytes_per_s);
    mnl_attr_put_u32(nlh, TCA_TBF_BURST, (uint32_t)burst);
    mnl_attr_nest_end(nlh, opts);
    int rc = nl_talk(nlh, NULL, NULL);
    free(buf);
    return rc;
}

int
net_qdisc_tbf_clear(const char *name)
{
    struct net_qdisc q;
    int rc = net_qdisc_get(name, &q);
    if (rc == -ENOENT || (rc == 0 && !q.ours))
        return 0; /* the kernel's default, or someone else's: not ours to remove */
    if (rc < 0)
        return rc;
    int idx = nl_ifindex(name);
    if (idx < 0)
        return idx;
    char *buf = malloc(NL_BUF_SIZE);
    if (!buf)
        return -ENOMEM;
    struct nlmsghdr *nlh = qdisc_msg(buf, RTM_DELQDISC, 0, idx, NET_TBF_HANDLE);
    rc = nl_talk(nlh, NULL, NULL);
    free(buf);
    return rc;
}

/* ------------------------------------------------------------------ what a link receives */

/* Every frame @tap receives goes out of @ifb instead (where a root tbf shapes
 * it) and comes back into the stack as if @tap had received it: an ingress
 * qdisc on @tap with one u32 filter matching everything, whose action is
 * mirred "egress redirect" to @ifb (linux/tc_act/tc_mirred.h; net/sched/
 * cls_u32.c: one key of mask 0 matches any packet; TC_U32_TERMINAL ends the
 * lookup there). */
#define INGRESS_HANDLE 0xffff0000u

static int
ingress_qdisc_add(int idx)
{
    char *buf = malloc(NL_BUF_SIZE);
    if (!buf)
        return -ENOMEM;
    struct nlmsghdr *nlh = qdisc_msg(buf, RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL, idx,
                                     INGRESS_HANDLE);
    ((struct tcmsg *)mnl_nlmsg_get_payload(nlh))->tcm_parent = TC_H_INGRESS;
    mnl_attr_put_strz(nlh, TCA_KIND, "ingress");
    int rc = nl_talk(nlh, NULL, NULL);
    free(buf);
    return rc;
}

static int
ingress_qdisc_del(int idx)
{
    char *buf = malloc(NL_BUF_SIZE);
    if (!buf)
        return -ENOMEM;
    struct nlmsghdr *nlh = qdisc_msg(buf, RTM_DELQDISC, 0, idx, INGRESS_HANDLE);
    ((struct tcmsg *)mnl_nlmsg_get_payload(nlh))->tcm_parent = TC_H_INGRESS;
    int rc = nl_talk(nlh, NULL, NULL);
    free(buf);
    return rc;
}

static int
redirect_filter_add(int idx, int ifb_idx)
{
    char *buf = malloc(NL_BUF_SIZE);
    if (!buf)
        return -ENOMEM;
    struct nlmsghdr *nlh = qdisc_msg(buf, RTM_NEWTFILTER, NLM_F_CREATE | NLM_F_EXCL, idx, 0);
    struct tcmsg *tcm = mnl_nlmsg_get_payload(nlh);
    tcm->tcm_parent = INGRESS_HANDLE;
    tcm->tcm_info = TC_H_MAKE(1u << 16, htons(ETH_P_ALL)); /* prio 1, every protocol */
    mnl_attr_put_strz(nlh, TCA_KIND, "u32");
    struct nlattr *opts = mnl_attr_nest_start(nlh, TCA_OPTIONS);
    struct {
        struct tc_u32_sel sel;
        struct tc_u32_key key;
    } s;
    memset(&s, 0, sizeof(s));
    s.sel.flags = TC_U32_TERMINAL;
    s.sel.nkeys = 1; /* mask 0 at offset 0: matches all */
    mnl_attr_put(nlh, TCA_U32_SEL, sizeof(s), &s);
    struct nlattr *acts = mnl_attr_nest_start(nlh, TCA_U32_ACT);
    struct nlattr *a1 = mnl_attr_nest_start(nlh, 1); /* the first action */
    mnl_attr_put_strz(nlh, TCA_ACT_KIND, "mirred");
    struct nlattr *ao = mnl_attr_nest_start(nlh, TCA_ACT_OPTIONS);
    struct tc_mirred m;
    memset(&m, 0, sizeof(m));
    m.action = TC_ACT_STOLEN;
    m.eaction = TCA_EGRESS_REDIR;
    m.ifindex = (uint32_t)ifb_idx;
    mnl_attr_put(nlh, TCA_MIRRED_PARMS, sizeof(m), &m);
    mnl_attr_nest_end(nlh, ao);
    mnl_attr_nest_end(nlh, a1);
    mnl_attr_nest_end(nlh, acts);
    mnl_attr_nest_end(nlh, opts);
    int rc = nl_talk(nlh, NULL, NULL);
    free(buf);
    return rc;
}

int
net_rx_limit_set(const char *name, const char *ifb, uint64_t rate_bytes_per_s)
{
    if (rate_bytes_per_s == 0 || !net_name_valid(ifb))
        return -EINVAL;
    int idx = nl_ifindex(name);
    if (idx < 0)
        return idx;
    int rc = net_ifb_create(ifb);
    if (rc < 0 && rc != -EEXIST)
        return rc;
    struct net_link l;
    if ((rc = net_link_get(ifb, &l)) < 0)
        return rc;
    if (strcmp(l.kind, "ifb") != 0)
        return -EMEDIUMTYPE; /* never redirect into someone else's link */
    if ((rc = net_link_set_up(ifb, true)) < 0 ||
        (rc = net_qdisc_tbf_set(ifb, rate_bytes_per_s)) < 0)
        return rc;
    /* a fresh ingress qdisc: whatever filters were there go with the old one */
    rc = ingress_qdisc_del(idx);
    if (rc < 0 && rc != -ENOENT && rc != -EINVAL)
        return rc;
    if ((rc = ingress_qdisc_add(idx)) < 0)
        return rc;
    if ((rc = redirect_filter_add(idx, l.ifindex)) < 0)
        ingress_qdisc_del(idx); /* rollback: no half-made redirect */
    return rc;
}

int
net_rx_limit_clear(const char *name, const char *ifb)
{
    int idx = nl_ifindex(name);
    int rc = idx > 0 ? ingress_qdisc_del(idx) : 0;
    if (rc == -ENOENT || rc == -EINVAL || idx == -ENODEV)
        rc = 0; /* none there (the kernel says EINVAL for a missing ingress qdisc) */
    else if (idx < 0)
        rc = idx;
    struct net_link l;
    if (rc == 0 && net_link_get(ifb, &l) == 0 && strcmp(l.kind, "ifb") == 0)
        rc = net_link_delete(ifb);
    return rc == -ENODEV ? 0 : rc;
}
