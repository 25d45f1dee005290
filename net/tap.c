/* net/tap.c - tap devices for VIFs, through the TUN driver's ioctls
 * (linux/if_tun.h; Documentation/networking/tuntap.rst).
 *
 * A VIF's tap is persistent: vesseld creates it, gives it the host-side MAC
 * and MTU and attaches it to the network's bridge; qemu gets it later as a
 * descriptor vesseld opens (net_tap_open, for xenops/taps.c), or, plugged
 * into a running guest, opens it by name (-netdev tap,ifname=...,script=no).
 * net_tap_open sets the flags qemu's own open sets (QEMU's
 * net/tap-linux.c, tap_open: no packet information, a virtio-net header
 * when the kernel has them). IFF_TUN_EXCL makes the create fail
 * rather than silently attach to a tap someone else made. Until the tap is
 * marked persistent it lives only while our fd is open, so a failure half way
 * is rolled back by closing the fd.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "net/net.h"

int
net_tap_create(const char *name, const struct net_tap_opts *o, int *fd_out)
{
    struct net_tap_opts def = {.owner = (uid_t)-1, .persistent = true};
    if (!o)
        o = &def;
    if (!net_name_valid(name) || (!o->persistent && !fd_out))
        return -EINVAL;
    if (net_link_exists(name))
        return -EEXIST;
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_TUN_EXCL;
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
    int rc = 0;
    if (ioctl(fd, TUNSETIFF, &ifr) < 0)
        rc = errno == EBUSY ? -EEXIST : -errno;
    if (rc == 0 && o->owner != (uid_t)-1 && ioctl(fd, TUNSETOWNER, (unsigned long)o->owner) < 0)
        rc = -errno;
    if (rc == 0 && o->mtu)
        rc = net_link_set_mtu(name, o->mtu);
    if (rc == 0 && o->mac)
        rc = net_link_set_mac(name, o->mac);
    if (rc == 0 && o->persistent && ioctl(fd, TUNSETPERSIST, 1UL) < 0)
        rc = -errno;
    if (rc < 0 || o->persistent) {
        close(fd); /* not persistent yet on failure: the tap goes with the fd */
        return rc;
    }
    *fd_out = fd;
    return 0;
}

int
net_tap_open(const char *name)
{
    if (strlen(name) >= IFNAMSIZ)
        return -EINVAL;
    /* as root TUNSETIFF would make a missing tap, off every bridge; qemu,
     * opening it as its own uid, could not: the start fails instead */
    if (if_nametoindex(name) == 0)
        return -ENODEV;
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    unsigned features = 0;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    if (ioctl(fd, TUNGETFEATURES, &features) == 0 && (features & IFF_VNET_HDR))
        ifr.ifr_flags |= IFF_VNET_HDR;
    memcpy(ifr.ifr_name, name, strlen(name) + 1);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}
