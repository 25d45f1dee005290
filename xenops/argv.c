/* xenops/argv.c - a domain config to a qemu-system-x86_64 command line.
 *
 * A pure function (no I/O, no globals): the golden tests in
 * tests/unit/xenops/qemu-argv/ pin its output. The shape:
 *  - -nodefaults -no-user-config: only the devices listed here exist;
 *  - -sandbox on with every deny group (obsolete, elevateprivileges, spawn,
 *    resourcecontrol): qemu needs none of them (suspend writes through an fd
 *    we pass it, not exec:);
 *  - -S always: the backend connects QMP and the console before the guest runs,
 *    so no early console byte is lost, then sends "cont" unless start_paused;
 *  - QMP and the serial console on unix sockets in the domain's run dir
 *    (qmp.sock, console.sock), VNC too (vnc.sock) where there is a display;
 *  - -action reboot=reset when on_reboot is RESTART (qemu resets in place, a
 *    RESET event tells us), reboot=shutdown otherwise (qemu exits, SHUTDOWN
 *    reason guest-reset); panic=none with a pvpanic device (pc/q35): the
 *    GUEST_PANICKED event lets the backend apply on_crash itself;
 *  - every machine has the guest agent's channel (a virtio-serial port named
 *    org.qemu.guest_agent.0 on agent.sock) and a virtio-balloon device: clean
 *    shutdown and reboot, the guest's metrics and live memory go through
 *    them, standard channels every distribution's qemu-guest-agent and
 *    kernel speak; nothing is ever typed on a guest's console;
 *  - microvm runs with ACPI (its GED delivers the power button and its DSDT
 *    lists the virtio-mmio devices, without which a stock kernel finds no
 *    disk) unless the config says no_acpi; pc and q35 get "-smp N,maxcpus=M"
 *    so vCPUs can be plugged later.
 * Facts: QEMU 7.2 qemu-options.hx (-action, -sandbox, -blockdev, -vnc unix:),
 * docs/system/i386/microvm.rst, qapi/block-core.json (BlockdevOptionsNbd),
 * docs/interop/qemu-ga.rst (the channel), docs/system/cpu-hotplug.rst.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "xenops/xenops_int.h"

struct argv_builder {
    char **v;
    size_t n, cap;
    bool oom;
};

__attribute__((format(printf, 2, 3))) static void
arg_add(struct argv_builder *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    if (b->n + 2 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        char **v = realloc(b->v, cap * sizeof(*v));
        if (!v) {
            b->oom = true;
            return;
        }
        b->v = v;
        b->cap = cap;
    }
    va_list ap;
    va_start(ap, fmt);
    int rc = vasprintf(&b->v[b->n], fmt, ap);
    va_end(ap);
    if (rc < 0) {
        b->oom = true;
        return;
    }
    b->v[++b->n] = NULL;
}

static const char *
machine_arg(const struct xenops_domain_config *cfg)
{
    switch (cfg->machine) {
    case XENOPS_MACHINE_MICROVM:
        return cfg->no_acpi ? "microvm,acpi=off" : "microvm,acpi=on";
    case XENOPS_MACHINE_PC:
        return "pc";
    case XENOPS_MACHINE_Q35:
        return "q35";
    }
    return "q35";
}

static void
add_disks(struct argv_builder *b, const struct xenops_domain_config *cfg)
{
    for (size_t i = 0; i < cfg->n_disks; i++) {
        const struct xenops_disk *d = &cfg->disks[i];
        const char *ro = d->read_only || d->cdrom ? "on" : "off";
        char node[XENOPS_DISK_ID_LEN], dev[XENOPS_DISK_ID_LEN];
        xenops_disk_ids(i, node, dev);
        arg_add(b, "-blockdev");
        if (d->format == XENOPS_DISK_NBD)
            arg_add(b, "driver=nbd,node-name=%s,server.type=unix,server.path=%s%s%s,read-only=%s",
                    node, d->path, d->export_name ? ",export=" : "",
                    d->export_name ? d->export_name : "", ro);
        else
            arg_add(b, "driver=raw,node-name=%s,file.driver=file,file.filename=%s,read-only=%s",
                    node, d->path, ro);
        arg_add(b, "-device");
        const char *driver = d->cdrom                                      ? "ide-cd"
                             : cfg->machine == XENOPS_MACHINE_MICROVM ? "virtio-blk-device"
                                                                        : "virtio-blk-pci";
        if (d->cyls && d->heads && d->secs && !d->cdrom)
            arg_add(b, "%s,drive=%s,id=%s,cyls=%u,heads=%u,secs=%u", driver, node, dev, d->cyls,
                    d->heads, d->secs);
        else
            arg_add(b, "%s,drive=%s,id=%s", driver, node, dev);
    }
}

/* NICs: virtio-net on the tap the caller made; script=no: the tap is already
 * on its bridge, and qemu's sandbox forbids spawning scripts anyway.
 * guest_announce=off: after a live migration QEMU announces the NIC's MAC
 * itself (RARP frames, which is what moves it in the switches) instead of
 * asking the guest to (VIRTIO_NET_F_GUEST_ANNOUNCE: a config interrupt, the
 * guest's gratuitous ARPs and its ack on the control queue). It was set
 * while QEMU 7.2 corrupted the virtio-net state of guests migrated under
 * traffic, a defect of QEMU's that the guest's announcement did not cause
 * (docs/guests.md, "A QEMU 7.2 defect"), and it stays: both ends of a
 * migration must offer the same features, and a pool's hosts are upgraded
 * one at a time. Hotplug adds NICs the same way (xenops/qemu.c). The ids
 * come from the tap's name (xenops_nic_ids), as for a NIC hotplugged later.
 * q35 has no hotplug on pcie.0: it gets XENOPS_Q35_PORTS PCIe root ports, and
 * each NIC sits on its own (xenops_config_assign_ports), so any NIC can be
 * unplugged and a new one plugged in a free port. */
static void
add_nics(struct argv_builder *b, const struct xenops_domain_config *cfg)
{
    if (cfg->machine == XENOPS_MACHINE_Q35)
        for (unsigned k = 0; k < XENOPS_Q35_PORTS; k++) {
            arg_add(b, "-device");
            arg_add(b, "pcie-root-port,id=vport%u,chassis=%u,io-reserve=0", k, k + 1);
        }
    for (size_t i = 0; i < cfg->n_nics; i++) {
        const struct xenops_nic *n = &cfg->nics[i];
        char netdev[XENOPS_NIC_ID_LEN], dev[XENOPS_NIC_ID_LEN], bus[24] = "";
        xenops_nic_ids(n->tap, netdev, dev);
        if (cfg->machine == XENOPS_MACHINE_Q35 && n->port)
            snprintf(bus, sizeof(bus), ",bus=vport%u", n->port - 1);
        arg_add(b, "-netdev");
        if (n->qemu_fd)
            arg_add(b, "tap,id=%s,fd=%u", netdev, n->qemu_fd);
        else
            arg_add(b, "tap,id=%s,ifname=%s,script=no,downscript=no", netdev, n->tap);
        arg_add(b, "-device");
        arg_add(b, "%s,netdev=%s,mac=%s,id=%s%s,guest_announce=off",
                cfg->machine == XENOPS_MACHINE_MICROVM ? "virtio-net-device" : "virtio-net-pci",
                netdev, n->mac, dev, bus);
    }
}

/* The agent's channel and the balloon: virtio-mmio on microvm, PCI elsewhere. */
static void
add_agent_and_balloon(struct argv_builder *b, const struct xenops_domain_config *cfg,
                      const char *dom_dir)
{
    bool mmio = cfg->machine == XENOPS_MACHINE_MICROVM;
    arg_add(b, "-chardev");
    arg_add(b, "socket,id=agent,path=%s/agent.sock,server=on,wait=off", dom_dir);
    arg_add(b, "-device");
    arg_add(b, "%s,id=vserial0", mmio ? "virtio-serial-device" : "virtio-serial-pci");
    arg_add(b, "-device");
    arg_add(b, "virtserialport,chardev=agent,name=" XENOPS_AGENT_PORT ",id=" XENOPS_AGENT_DEVICE);
    arg_add(b, "-device");
    arg_add(b, "%s,id=balloon0", mmio ? "virtio-balloon-device" : "virtio-balloon-pci");
}

int
xenops_qemu_argv(const struct xenops_domain_config *cfg, const char *accel, const char *dom_dir,
                 const char *qemu_binary, char ***argv, size_t *n)
{
    int rc = xenops_config_check(cfg, NULL);
    if (rc < 0)
        return rc;
    if (!accel || (strcmp(accel, "kvm") && strcmp(accel, "tcg")) || !dom_dir)
        return -EINVAL;
    /* the ports the backend would give (it passes a config that has them) */
    _cleanup_(xenops_config_freep) struct xenops_domain_config *own = xenops_config_copy(cfg);
    if (!own)
        return -ENOMEM;
    xenops_config_assign_ports(own);
    cfg = own;
    struct argv_builder b = {0};
    bool display = cfg->machine != XENOPS_MACHINE_MICROVM;
    arg_add(&b, "%s", qemu_binary ? qemu_binary : "qemu-system-x86_64");
    arg_add(&b, "-name");
    arg_add(&b, "guest=%s,debug-threads=on", cfg->name ? cfg->name : cfg->uuid);
    arg_add(&b, "-uuid");
    arg_add(&b, "%s", cfg->uuid);
    arg_add(&b, "-machine");
    arg_add(&b, "%s", machine_arg(cfg));
    arg_add(&b, "-accel");
    arg_add(&b, "%s", accel);
    if (!strcmp(accel, "kvm")) {
        arg_add(&b, "-cpu");
        arg_add(&b, "host");
    }
    arg_add(&b, "-m");
    arg_add(&b, "%" PRIu64 "M", cfg->memory_bytes >> 20);
    arg_add(&b, "-smp");
    if (cfg->machine != XENOPS_MACHINE_MICROVM && cfg->vcpus_max > cfg->vcpus)
        arg_add(&b, "%u,maxcpus=%u", cfg->vcpus, cfg->vcpus_max);
    else
        arg_add(&b, "%u", cfg->vcpus);
    arg_add(&b, "-nodefaults");
    arg_add(&b, "-no-user-config");
    arg_add(&b, "-sandbox");
    arg_add(&b, "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny");
    arg_add(&b, "-S");
    arg_add(&b, "-action");
    arg_add(&b, "reboot=%s,shutdown=poweroff,panic=none",
            cfg->on_reboot == XENOPS_ACTION_RESTART ? "reset" : "shutdown");
    arg_add(&b, "-chardev");
    arg_add(&b, "socket,id=qmp,path=%s/qmp.sock,server=on,wait=off", dom_dir);
    arg_add(&b, "-mon");
    arg_add(&b, "chardev=qmp,mode=control");
    arg_add(&b, "-chardev");
    arg_add(&b, "socket,id=serial0,path=%s/console.sock,server=on,wait=off", dom_dir);
    arg_add(&b, "-serial");
    arg_add(&b, "chardev:serial0");
    if (display) {
        arg_add(&b, "-vga");
        arg_add(&b, "std");
        arg_add(&b, "-vnc");
        arg_add(&b, "unix:%s/vnc.sock", dom_dir);
        arg_add(&b, "-device");
        arg_add(&b, "pvpanic");
    } else {
        arg_add(&b, "-display");
        arg_add(&b, "none");
    }
    if (cfg->boot == XENOPS_BOOT_DIRECT) {
        arg_add(&b, "-kernel");
        arg_add(&b, "%s", cfg->kernel);
        if (cfg->initrd) {
            arg_add(&b, "-initrd");
            arg_add(&b, "%s", cfg->initrd);
        }
        if (cfg->cmdline) {
            arg_add(&b, "-append");
            arg_add(&b, "%s", cfg->cmdline);
        }
    } else {
        arg_add(&b, "-boot");
        arg_add(&b, "order=%s", cfg->boot_order ? cfg->boot_order : "cd");
    }
    add_disks(&b, cfg);
    add_nics(&b, cfg);
    add_agent_and_balloon(&b, cfg, dom_dir);
    if (b.oom) {
        xenops_strv_free(b.v, b.n);
        return -ENOMEM;
    }
    *argv = b.v;
    *n = b.n;
    return 0;
}
