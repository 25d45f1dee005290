/* tests/unit/net/test_net.c - net/ against the real kernel, inside a network
 * namespace of its own: bridges, taps, VLAN links, ports, MTU, MAC, counters,
 * listing, IPv4 addresses, tbf rate limits (read back through netlink and
 * through `tc -j`, when tc is installed) and nf_tables address locks (made,
 * replaced, found, removed; that they drop is the guest network test's job).
 *
 * main() runs as a launcher first: as root, it creates namespace
 * vessel-test-<pid> (`ip netns add`), runs this same binary inside it
 * (`ip netns exec`, which also gives it that namespace's /sys), and deletes the
 * namespace afterwards whatever the child did. The child (VESSEL_TEST_NETNS
 * set) runs the cmocka cases. Without root, or where namespaces cannot be
 * made, it prints a TAP plan of 0 with "# SKIP" and succeeds. Nothing leaves
 * the namespace: its only links are the ones made here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net/net.h"

static int
sh(const char *cmd)
{
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static bool
has_link(const struct net_link *v, size_t n, const char *name, struct net_link *out)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].name, name) == 0) {
            if (out)
                *out = v[i];
            return true;
        }
    return false;
}

/* ------------------------------------------------------------------ pure helpers */

static void
test_names_and_macs(void **state)
{
    (void)state;
    assert_true(net_name_valid("xapi0"));
    assert_true(net_name_valid("vif12.3"));
    assert_false(net_name_valid(""));
    assert_false(net_name_valid("a/b"));
    assert_false(net_name_valid("with space"));
    assert_false(net_name_valid("0123456789abcdef")); /* 16 bytes: one too many */
    uint8_t mac[6];
    char s[NET_MAC_STRLEN];
    assert_int_equal(net_mac_parse("02:AB:cd:00:11:ff", mac), 0);
    net_mac_format(mac, s);
    assert_string_equal(s, "02:ab:cd:00:11:ff");
    assert_int_equal(net_mac_parse("02:ab:cd:00:11", mac), -EINVAL);
    assert_int_equal(net_mac_parse("02-ab-cd-00-11-ff", mac), -EINVAL);
    assert_int_equal(net_mac_parse("02:ab:cd:00:11:fg", mac), -EINVAL);
    assert_int_equal(net_netmask_to_prefix("255.255.255.0"), 24);
    assert_int_equal(net_netmask_to_prefix("255.255.255.255"), 32);
    assert_int_equal(net_netmask_to_prefix("0.0.0.0"), 0);
    assert_int_equal(net_netmask_to_prefix("255.0.255.0"), -EINVAL);
    assert_int_equal(net_netmask_to_prefix("nonsense"), -EINVAL);
}

/* ------------------------------------------------------------------ bridges */

static void
test_bridge_create_delete(void **state)
{
    (void)state;
    struct net_link l;
    assert_int_equal(net_bridge_create("tbr0", 1400), 0);
    assert_int_equal(net_link_get("tbr0", &l), 0);
    assert_string_equal(l.kind, "bridge");
    assert_int_equal(l.mtu, 1400);
    assert_false(l.physical);
    assert_false(l.up);
    assert_int_equal(net_bridge_create("tbr0", 0), -EEXIST);
    assert_int_equal(net_link_set_up("tbr0", true), 0);
    assert_int_equal(net_link_get("tbr0", &l), 0);
    assert_true(l.up);
    assert_int_equal(net_link_set_mtu("tbr0", 1300), 0);
    assert_int_equal(net_link_get("tbr0", &l), 0);
    assert_int_equal(l.mtu, 1300);
    assert_int_equal(net_bridge_delete("tbr0"), 0);
    assert_false(net_link_exists("tbr0"));
    assert_int_equal(net_bridge_delete("tbr0"), -ENODEV);
    assert_int_equal(net_link_get("tbr0", &l), -ENODEV);
    assert_int_equal(net_bridge_create("bad/name", 0), -EINVAL);
    assert_int_equal(net_bridge_create("tbr1", 12), -EINVAL);
}

static void
test_bridge_delete_refuses_other_kinds(void **state)
{
    (void)state;
    assert_int_equal(net_tap_create("ttap9", NULL, NULL), 0);
    assert_int_equal(net_bridge_delete("ttap9"), -EMEDIUMTYPE);
    assert_true(net_link_exists("ttap9"));
    assert_int_equal(net_bridge_delete("lo"), -EMEDIUMTYPE);
    assert_int_equal(net_link_delete("ttap9"), 0);
    assert_int_equal(net_link_delete("ttap9"), -ENODEV);
}

/* ------------------------------------------------------------------ taps and ports */

static void
test_tap_persistent(void **state)
{
    (void)state;
    const uint8_t mac[6] = {0xfe, 0xff, 0xff, 0xff, 0xff, 0x01};
    struct net_tap_opts o = {.owner = 1234, .persistent = true, .mtu = 1450, .mac = mac};
    assert_int_equal(net_tap_create("vif7.0", &o, NULL), 0);
    struct net_link l;
    assert_int_equal(net_link_get("vif7.0", &l), 0);
    assert_string_equal(l.kind, "tun");
    assert_int_equal(l.mtu, 1450);
    assert_true(l.has_mac);
    assert_memory_equal(l.mac, mac, 6);
    assert_int_equal(sh("test \"$(cat /sys/class/net/vif7.0/owner)\" = 1234"), 0);
    assert_int_equal(net_tap_create("vif7.0", &o, NULL), -EEXIST);
    assert_int_equal(net_link_delete("vif7.0"), 0);
    assert_false(net_link_exists("vif7.0"));
    /* a multicast MAC is refused and nothing is left behind */
    const uint8_t mcast[6] = {0x01, 0, 0, 0, 0, 1};
    o.mac = mcast;
    assert_int_equal(net_tap_create("vif7.1", &o, NULL), -EINVAL);
    assert_false(net_link_exists("vif7.1"));
}

static void
test_tap_fd_lifetime(void **state)
{
    (void)state;
    struct net_tap_opts o = {.owner = (uid_t)-1, .persistent = false};
    int fd = -1;
    assert_int_equal(net_tap_create("ttmp0", &o, NULL), -EINVAL);
    assert_int_equal(net_tap_create("ttmp0", &o, &fd), 0);
    assert_true(fd >= 0);
    assert_true(net_link_exists("ttmp0"));
    close(fd);
    assert_false(net_link_exists("ttmp0"));
}

/* net_tap_open attaches to a tap that exists, as qemu would, and never makes
 * one. */
static void
test_tap_open_existing_only(void **state)
{
    (void)state;
    assert_int_equal(net_tap_open("ttopen0"), -ENODEV);
    assert_false(net_link_exists("ttopen0"));
    assert_int_equal(net_tap_create("ttopen0", NULL, NULL), 0);
    int fd = net_tap_open("ttopen0");
    assert_true(fd >= 0);
    char path[64];
    snprintf(path, sizeof(path), "grep -qx 'iff:\tttopen0' /proc/%d/fdinfo/%d", (int)getpid(), fd);
    assert_int_equal(sh(path), 0);
    assert_int_equal(net_tap_open("ttopen0"), -EBUSY); /* one queue: one descriptor */
    close(fd);
    assert_true(net_link_exists("ttopen0")); /* persistent: it outlives us */
    assert_int_equal(net_link_delete("ttopen0"), 0);
}

static void
test_ports(void **state)
{
    (void)state;
    assert_int_equal(net_bridge_create("tbr2", 0), 0);
    assert_int_equal(net_bridge_create("tbr3", 0), 0);
    assert_int_equal(net_tap_create("vif8.0", NULL, NULL), 0);
    struct net_link br, tap;
    assert_int_equal(net_bridge_add_port("tbr2", "vif8.0"), 0);
    assert_int_equal(net_link_get("tbr2", &br), 0);
    assert_int_equal(net_link_get("vif8.0", &tap), 0);
    assert_int_equal(tap.master, br.ifindex);
    assert_int_equal(net_bridge_remove_port("tbr3", "vif8.0"), -ENOENT);
    assert_int_equal(net_bridge_add_port("vif8.0", "tbr3"), -EMEDIUMTYPE);
    assert_int_equal(net_bridge_add_port("tbr2", "nosuch0"), -ENODEV);
    assert_int_equal(net_bridge_remove_port("tbr2", "vif8.0"), 0);
    assert_int_equal(net_link_get("vif8.0", &tap), 0);
    assert_int_equal(tap.master, 0);
    /* deleting a bridge releases its ports, which stay */
    assert_int_equal(net_bridge_add_port("tbr3", "vif8.0"), 0);
    assert_int_equal(net_bridge_delete("tbr3"), 0);
    assert_int_equal(net_link_get("vif8.0", &tap), 0);
    assert_int_equal(tap.master, 0);
    assert_int_equal(net_link_delete("vif8.0"), 0);
    assert_int_equal(net_bridge_delete("tbr2"), 0);
}

/* ------------------------------------------------------------------ counters, listing */

static void
test_counters(void **state)
{
    (void)state;
    struct net_tap_opts o = {.owner = (uid_t)-1, .persistent = false};
    int fd = -1;
    assert_int_equal(net_tap_create("tcnt0", &o, &fd), 0);
    assert_int_equal(net_link_set_up("tcnt0", true), 0);
    struct net_link_stats st;
    assert_int_equal(net_link_stats("tcnt0", &st), 0);
    uint64_t rx0 = st.rx_bytes, rxp0 = st.rx_packets;
    /* what the "guest" writes into the tap is what the host receives: rx */
    unsigned char frame[60] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1, 0x88, 0xb5};
    for (int i = 0; i < 3; i++)
        assert_int_equal(write(fd, frame, sizeof(frame)), (ssize_t)sizeof(frame));
    assert_int_equal(net_link_stats("tcnt0", &st), 0);
    assert_int_equal(st.rx_packets - rxp0, 3);
    assert_int_equal(st.rx_bytes - rx0, 3 * sizeof(frame));
    close(fd);
    assert_int_equal(net_link_stats("tcnt0", &st), -ENODEV);
}

static void
test_list(void **state)
{
    (void)state;
    assert_int_equal(net_bridge_create("tbr4", 0), 0);
    assert_int_equal(net_tap_create("vif9.0", NULL, NULL), 0);
    assert_int_equal(net_bridge_add_port("tbr4", "vif9.0"), 0);
    struct net_link *v = NULL, l;
    size_t n = 0;
    assert_int_equal(net_link_list(&v, &n), 0);
    assert_true(n >= 3);
    assert_true(has_link(v, n, "lo", &l));
    assert_false(l.physical);
    assert_true(has_link(v, n, "tbr4", &l));
    assert_string_equal(l.kind, "bridge");
    int br = l.ifindex;
    assert_true(has_link(v, n, "vif9.0", &l));
    assert_string_equal(l.kind, "tun");
    assert_int_equal(l.master, br);
    assert_int_equal(l.mtu, 1500);
    for (size_t i = 1; i < n; i++)
        assert_true(v[i - 1].ifindex < v[i].ifindex);
    free(v);
    assert_int_equal(net_link_delete("vif9.0"), 0);
    assert_int_equal(net_bridge_delete("tbr4"), 0);
}

/* ------------------------------------------------------------------ VLANs */

static void
test_vlan(void **state)
{
    (void)state;
    assert_int_equal(sh("ip link add tveth0 type veth peer name tveth1"), 0);
    assert_int_equal(net_vlan_create("tveth0.42", "tveth0", 42), 0);
    struct net_link l, parent;
    assert_int_equal(net_link_get("tveth0.42", &l), 0);
    assert_int_equal(net_link_get("tveth0", &parent), 0);
    assert_string_equal(l.kind, "vlan");
    assert_int_equal(l.vlan_id, 42);
    assert_int_equal(l.link, parent.ifindex);
    assert_int_equal(net_vlan_create("tveth0.42", "tveth0", 43), -EEXIST);
    assert_int_equal(net_vlan_create("tveth0.4095", "tveth0", 4095), -EINVAL);
    assert_int_equal(net_vlan_create("tnone.5", "tnone", 5), -ENODEV);
    assert_int_equal(net_link_delete("tveth0.42"), 0);
    assert_int_equal(sh("ip link del tveth0"), 0);
}

/* Where the kernel has no 802.1Q (no 8021q module), the create fails cleanly
 * and leaves nothing: this case replaces test_vlan there (cmocka's TAP skip
 * reads as a failure to meson). */
static void
test_vlan_unsupported(void **state)
{
    (void)state;
    printf("# this kernel has no 802.1Q support: VLAN links checked for a clean failure\n");
    assert_int_equal(sh("ip link add tveth0 type veth peer name tveth1"), 0);
    assert_int_equal(net_vlan_create("tveth0.42", "tveth0", 42), -EOPNOTSUPP);
    assert_false(net_link_exists("tveth0.42"));
    assert_int_equal(sh("ip link del tveth0"), 0);
}

static bool
kernel_has_vlan(void)
{
    if (sh("ip link add tprobe0 type veth peer name tprobe1") != 0)
        return false;
    int rc = net_vlan_create("tprobe0.2", "tprobe0", 2);
    sh("ip link del tprobe0");
    return rc != -EOPNOTSUPP;
}

static void
test_vlan_links(void **state)
{
    if (kernel_has_vlan())
        test_vlan(state);
    else
        test_vlan_unsupported(state);
}

static void
test_vlan_args(void **state)
{
    (void)state;
    assert_int_equal(net_vlan_create("x.4095", "lo", 4095), -EINVAL);
    assert_int_equal(net_vlan_create("x.1", "nosuch0", 1), -ENODEV);
}

/* ------------------------------------------------------------------ addresses */

static void
test_ipv4(void **state)
{
    (void)state;
    char a[16];
    unsigned p = 0;
    assert_int_equal(net_bridge_create("tbr5", 0), 0);
    assert_int_equal(net_addr_get_ipv4("tbr5", a, sizeof(a), &p), -ENOENT);
    assert_int_equal(net_addr_set_ipv4("tbr5", "192.0.2.10", 24), 0);
    assert_int_equal(net_addr_get_ipv4("tbr5", a, sizeof(a), &p), 0);
    assert_string_equal(a, "192.0.2.10");
    assert_int_equal(p, 24);
    /* set replaces: one address afterwards */
    assert_int_equal(net_addr_set_ipv4("tbr5", "198.51.100.7", 30), 0);
    assert_int_equal(net_addr_get_ipv4("tbr5", a, sizeof(a), &p), 0);
    assert_string_equal(a, "198.51.100.7");
    assert_int_equal(p, 30);
    assert_int_equal(sh("test $(ip -4 -o addr show dev tbr5 | wc -l) = 1"), 0);
    assert_int_equal(net_addr_set_ipv4("tbr5", "300.1.1.1", 24), -EINVAL);
    assert_int_equal(net_addr_set_ipv4("tbr5", "192.0.2.1", 33), -EINVAL);
    assert_int_equal(net_addr_set_ipv4("nosuch0", "192.0.2.1", 24), -ENODEV);
    assert_int_equal(net_addr_flush_ipv4("tbr5"), 0);
    assert_int_equal(net_addr_get_ipv4("tbr5", a, sizeof(a), &p), -ENOENT);
    assert_int_equal(net_bridge_delete("tbr5"), 0);
}

/* Nothing made by a case may outlive it. */
static void
test_tbf(void **state)
{
    (void)state;
    struct net_qdisc q;
    assert_int_equal(net_tap_create("vif8.0", NULL, NULL), 0);
    assert_int_equal(net_link_set_up("vif8.0", true), 0);
    assert_int_equal(net_qdisc_tbf_set("vif8.0", 0), -EINVAL);
    assert_int_equal(net_qdisc_tbf_clear("vif8.0"), 0); /* none of ours: nothing to do */
    assert_int_equal(net_qdisc_tbf_set("vif8.0", 65536), 0);
    assert_int_equal(net_qdisc_get("vif8.0", &q), 0);
    assert_string_equal(q.kind, "tbf");
    assert_true(q.ours);
    assert_int_equal(q.rate_bytes_per_s, 65536);
    assert_int_equal(q.limit_bytes, 16384 + 65536 / 5);
    if (sh("command -v tc >/dev/null") == 0)
        assert_int_equal(sh("tc -j qdisc show dev vif8.0 | grep -q '\"kind\":\"tbf\".*\"rate\":65536'"),
                         0);
    /* replaced in place; a rate above 32 bits goes as TCA_TBF_RATE64 */
    assert_int_equal(net_qdisc_tbf_set("vif8.0", 5000000000ull), 0);
    assert_int_equal(net_qdisc_get("vif8.0", &q), 0);
    assert_int_equal(q.rate_bytes_per_s, 5000000000ull);
    assert_int_equal(net_qdisc_tbf_clear("vif8.0"), 0);
    assert_int_equal(net_qdisc_get("vif8.0", &q), 0);
    assert_string_not_equal(q.kind, "tbf");
    assert_false(q.ours);
    assert_int_equal(net_qdisc_tbf_set("nosuch0", 1000), -ENODEV);
    assert_int_equal(net_link_delete("vif8.0"), 0);
}

static void
test_rx_limit(void **state)
{
    (void)state;
    struct net_qdisc q;
    assert_int_equal(net_tap_create("vif8.1", NULL, NULL), 0);
    assert_int_equal(net_rx_limit_clear("vif8.1", "ifb8.1"), 0); /* nothing there: fine */
    assert_int_equal(net_rx_limit_set("vif8.1", "ifb8.1", 0), -EINVAL);
    int rc = net_rx_limit_set("vif8.1", "ifb8.1", 65536);
    if (rc == -ENOENT || rc == -EOPNOTSUPP) {
        printf("# this kernel lacks ifb, ingress, u32 or mirred (%d)\n", rc);
        net_rx_limit_clear("vif8.1", "ifb8.1");
        assert_int_equal(net_link_delete("vif8.1"), 0);
        return;
    }
    assert_int_equal(rc, 0);
    struct net_link l;
    assert_int_equal(net_link_get("ifb8.1", &l), 0);
    assert_string_equal(l.kind, "ifb");
    assert_true(l.up);
    assert_int_equal(net_qdisc_get("ifb8.1", &q), 0);
    assert_string_equal(q.kind, "tbf");
    assert_int_equal(q.rate_bytes_per_s, 65536);
    if (sh("command -v tc >/dev/null") == 0)
        assert_int_equal(sh("tc filter show dev vif8.1 ingress | grep -q 'Redirect to device ifb8.1'"),
                         0);
    assert_int_equal(net_rx_limit_set("vif8.1", "ifb8.1", 131072), 0); /* replaced */
    assert_int_equal(net_qdisc_get("ifb8.1", &q), 0);
    assert_int_equal(q.rate_bytes_per_s, 131072);
    if (sh("command -v tc >/dev/null") == 0)
        assert_int_equal(sh("test $(tc filter show dev vif8.1 ingress | grep -c Redirect) = 1"), 0);
    assert_int_equal(net_rx_limit_clear("vif8.1", "ifb8.1"), 0);
    assert_false(net_link_exists("ifb8.1"));
    if (sh("command -v tc >/dev/null") == 0)
        assert_int_equal(sh("test -z \"$(tc filter show dev vif8.1 ingress 2>/dev/null)\""), 0);
    /* a link of that name that is not an ifb is never used nor deleted */
    assert_int_equal(net_bridge_create("ifb8.2", 0), 0);
    assert_int_equal(net_rx_limit_set("vif8.1", "ifb8.2", 65536), -EMEDIUMTYPE);
    assert_int_equal(net_rx_limit_clear("vif8.1", "ifb8.2"), 0);
    assert_true(net_link_exists("ifb8.2"));
    assert_int_equal(net_link_delete("ifb8.2"), 0);
    assert_int_equal(net_link_delete("vif8.1"), 0);
}

static void
test_lock(void **state)
{
    (void)state;
    const uint8_t mac[6] = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
    struct in_addr v4[2];
    struct in6_addr v6[1];
    inet_pton(AF_INET, "10.0.0.2", &v4[0]);
    inet_pton(AF_INET, "10.0.0.3", &v4[1]);
    inet_pton(AF_INET6, "fd00::2", &v6[0]);
    struct net_lock l = {.mac = mac, .v4 = v4, .n_v4 = 2, .v6 = v6, .n_v6 = 1};
    assert_int_equal(net_tap_create("vif9.0", NULL, NULL), 0);
    assert_int_equal(net_lock_present("vif9.0"), 0);
    assert_int_equal(net_lock_clear("vif9.0"), 0); /* nothing there: fine */
    int rc = net_lock_set("vif9.0", &l);
    if (rc == -EOPNOTSUPP || rc == -EAFNOSUPPORT || rc == -EPROTONOSUPPORT) {
        printf("# this kernel has no nf_tables bridge support (%d)\n", rc);
        assert_int_equal(net_link_delete("vif9.0"), 0);
        return;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(net_lock_present("vif9.0"), 1);
    l.n_v4 = 0; /* replaced whole */
    assert_int_equal(net_lock_set("vif9.0", &l), 0);
    assert_int_equal(net_lock_present("vif9.0"), 1);
    if (sh("command -v nft >/dev/null") == 0)
        assert_int_equal(sh("nft list chain bridge vessel vif9.0 | grep -q 'fd00::2'"), 0);
    assert_int_equal(net_lock_clear("vif9.0"), 0);
    assert_int_equal(net_lock_present("vif9.0"), 0);
    assert_int_equal(net_lock_set("vif9.0", &(struct net_lock){.mac = mac}), 0); /* no address */
    assert_int_equal(net_lock_clear("vif9.0"), 0);
    assert_int_equal(net_lock_set("vif9/0", &l), -EINVAL);
    assert_int_equal(net_link_delete("vif9.0"), 0);
}

static void
test_nothing_left(void **state)
{
    (void)state;
    struct net_link *v = NULL;
    size_t n = 0;
    assert_int_equal(net_link_list(&v, &n), 0);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(v[i].name, "lo");
    free(v);
}

/* ------------------------------------------------------------------ launcher */

static int
run_cases(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_and_macs),
        cmocka_unit_test(test_bridge_create_delete),
        cmocka_unit_test(test_bridge_delete_refuses_other_kinds),
        cmocka_unit_test(test_tap_persistent),
        cmocka_unit_test(test_tap_fd_lifetime),
        cmocka_unit_test(test_tap_open_existing_only),
        cmocka_unit_test(test_ports),
        cmocka_unit_test(test_counters),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_vlan_links),
        cmocka_unit_test(test_vlan_args),
        cmocka_unit_test(test_ipv4),
        cmocka_unit_test(test_tbf),
        cmocka_unit_test(test_rx_limit),
        cmocka_unit_test(test_lock),
        cmocka_unit_test(test_nothing_left),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

static int
skip_all(const char *why)
{
    printf("1..0 # SKIP %s\n", why);
    return 0;
}

int
main(int argc, char **argv)
{
    (void)argc;
    if (getenv("VESSEL_TEST_NETNS"))
        return run_cases();
    if (geteuid() != 0)
        return skip_all("needs root to make a network namespace");
    char ns[64], cmd[160];
    snprintf(ns, sizeof(ns), "vessel-test-%ld", (long)getpid());
    snprintf(cmd, sizeof(cmd), "ip netns add %s 2>/dev/null", ns);
    if (sh(cmd) != 0)
        return skip_all("no network namespace support (ip netns add failed)");
    setenv("VESSEL_TEST_NETNS", ns, 1);
    pid_t pid = fork();
    if (pid == 0) {
        char self[4096];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n < 0)
            _exit(127);
        self[n] = '\0';
        execlp("ip", "ip", "netns", "exec", ns, self, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    if (pid > 0)
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
    snprintf(cmd, sizeof(cmd), "ip netns del %s", ns);
    int del = sh(cmd);
    (void)argv;
    if (pid < 0 || del != 0)
        return 1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
