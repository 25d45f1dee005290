/* net/nl.h - net/'s private rtnetlink plumbing (libmnl): one request, its
 * answer. Not for use outside net/. */
#ifndef VESSEL_NET_NL_H
#define VESSEL_NET_NL_H

#include <libmnl/libmnl.h>
#include <stddef.h>

/* Buffer size for one request or one batch of answers. */
#define NL_BUF_SIZE 32768

/* Sends the request in @nlh (NLM_F_REQUEST and NLM_F_ACK are added, seq set)
 * on a fresh NETLINK_ROUTE socket and reads answers until the ACK or the end
 * of a dump, calling @cb (may be NULL) on each data message. Returns 0, the
 * negative errno of an NLMSG_ERROR, or of the socket calls. */
int nl_talk(struct nlmsghdr *nlh, mnl_cb_t cb, void *data);

/* Fills @tb[0..@max] (zeroed by the caller) with the attributes of a message
 * after its @offset-byte header, or of the nest @nest, by type; attributes of
 * a type above @max are skipped. Returns what libmnl's parser returns. */
int nl_parse(const struct nlmsghdr *nlh, size_t offset, const struct nlattr **tb, int max);
int nl_parse_nested(const struct nlattr *nest, const struct nlattr **tb, int max);

/* The ifindex of @name (checked with net_name_valid): > 0, or -EINVAL / -ENODEV. */
int nl_ifindex(const char *name);

#endif
