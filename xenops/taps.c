/* xenops/taps.c - a domain's taps, opened by vesseld and passed to qemu.
 *
 * qemu is given each NIC's tap as a descriptor (-netdev tap,fd=N) instead of
 * opening it by name, and vesseld keeps its own copy of the descriptor until
 * qemu has exited. Two things follow:
 *  - qemu's exit no longer closes the tap's last descriptor. That close
 *    detaches the tap's queue (the kernel's tun_chr_close: under the RTNL
 *    lock, with an RCU grace period, synchronize_net), on qemu's way out
 *    and so on every hard shutdown's path. Ours is closed after the exit,
 *    on the supervisor's thread (xenops/qemu.c). In alternating runs of
 *    bench/guests/destroy_bench.py, SIGKILL to the exit seen took 0.4 ms
 *    more than the bare kill with the descriptors held here, 0.9-1.3 ms
 *    more with qemu opening its taps;
 *  - qemu needs no access to /dev/net/tun for the NICs it starts with (a
 *    NIC hotplugged later is still opened by name, xenops/qemu.c).
 * A tap has carrier while a descriptor is attached to it, and its bridge
 * forgets the MACs behind a port that loses carrier. Our copy keeps a dead
 * qemu's taps up until it is closed, so it is closed before anything slow
 * (the supervisor's mount namespace teardown, an RCU grace period), and a
 * migration's source, whose guest now lives on another host, drops it at
 * the SIGKILL: there qemu's exit closes the taps' last descriptors, as
 * before, and no frame for the guest goes into a dead tap meanwhile.
 * The tap is opened as qemu would open it (net_tap_open); with fd= qemu
 * probes the virtio-net header from the descriptor. Facts: QEMU's -netdev
 * tap documentation (fd=).
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "net/net.h"
#include "xenops/qemu_int.h"

int
qdom_taps_open(struct qdom *d, struct xenops_domain_config *view)
{
    size_t n = view->n_nics < XENOPS_NIC_FDS ? view->n_nics : XENOPS_NIC_FDS;
    for (size_t i = 0; i < n; i++) {
        int fd = net_tap_open(view->nics[i].tap);
        if (fd < 0)
            return fd;
        pthread_mutex_lock(&d->lock);
        d->taps[d->n_taps].fd = fd;
        snprintf(d->taps[d->n_taps].name, sizeof(d->taps[0].name), "%s", view->nics[i].tap);
        d->n_taps++;
        pthread_mutex_unlock(&d->lock);
        view->nics[i].qemu_fd = QEMU_FD_NIC0 + (unsigned)i;
    }
    return 0;
}

void
qdom_taps_fds(struct qdom *d, int *fds, size_t *n)
{
    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < d->n_taps; i++)
        fds[i] = d->taps[i].fd;
    *n = d->n_taps;
    pthread_mutex_unlock(&d->lock);
}

void
qdom_taps_close(struct qdom *d, const char *name)
{
    int fds[XENOPS_NIC_FDS];
    size_t n = 0;
    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < d->n_taps;) {
        if (name && strcmp(d->taps[i].name, name) != 0) {
            i++;
            continue;
        }
        fds[n++] = d->taps[i].fd;
        d->taps[i] = d->taps[--d->n_taps];
    }
    pthread_mutex_unlock(&d->lock);
    for (size_t i = 0; i < n; i++)
        close(fds[i]); /* the tap's last descriptor: RTNL, outside our lock */
}
