#!/usr/bin/env python3
"""tests/integration/test_debian_guest.py - a real operating system as a guest.

A minimal Debian 12 (tests/guest/build-debian.sh, cached between runs) is
uploaded into a VDI (PUT /import_raw_vdi) and booted through the XenAPI
alone: a VM from the "Direct kernel boot" template with the image's own
kernel and initramfs (PV_kernel, PV_ramdisk under --guest-kernel-dir,
PV_args root=/dev/vda console=ttyS0), platform:machine=pc, a VBD of the VDI
and a VIF on a network. Inside a network namespace of its own, the
network's bridge gets the host address 10.98.0.1/24 and dnsmasq serves DHCP
on it, as a LAN would. Checked: the guest's own kernel boots, its
initramfs mounts root from the virtio disk, systemd reaches the serial
getty's "login:", the guest takes an address by DHCP and answers the host's
ping over the bridge, VM.hard_shutdown ends it, and the disk, exported
through GET /export_raw_vdi, checks clean once its journal is replayed (a
hard shutdown is a crash to the guest).
Usage: test_debian_guest.py BUILD/vesseld GUEST_DIR
"""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Tap, Vesseld, console_log, error, value, wait_for  # noqa: E402
import debian_guest  # noqa: E402


def ping(addr, count=1, wait=2):
    return subprocess.run(['busybox', 'ping', '-c', str(count), '-W', str(wait), addr],
                          capture_output=True).returncode == 0


def qemu_pids(uuid):
    out = subprocess.run(['pgrep', '-f', 'qemu-system-x86_64.*' + uuid], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def checks(t, d, guest_dir, tmp):
    s = d.proxy()
    sess = d.login()
    images = debian_guest.build(guest_dir)  # cached: built by the outer process
    with open(os.path.join(guest_dir, 'kernel-version')) as f:
        kver = f.read().strip()
    net, dhcp = debian_guest.lan(s, sess, tmp)
    try:
        g = debian_guest.debian_guest(d, s, sess, images, net, dhcp, name='debian-1')
        log = console_log(d, g.uuid)
        t.ok('Linux version ' + kver in log,
             'the guest boots its own kernel (%s), not the host\'s' % kver, log[:1500])
        t.ok('Reached target' in log and 'Multi-User System' in log,
             'systemd runs from the root file system on the VDI', log[-1500:])
        t.ok(g.booted, 'systemd reaches the serial getty\'s login: prompt (%s s)' %
             (g.boot_seconds and round(g.boot_seconds, 1)), log[-1500:])
        if not g.booted:
            return
        t.ok(g.ip is not None and g.ip.startswith('10.98.0.'),
             'the guest takes an address from the DHCP server on the bridge (%s, MAC %s)'
             % (g.ip, g.mac), open(dhcp.log).read()[-1500:] if os.path.exists(dhcp.log) else '')
        if g.ip:
            t.ok(wait_for(lambda: ping(g.ip, 1, 2), 60, 1),
                 'the guest answers the host\'s ping over the bridge')
        t.eq(value(s.VM.get_power_state(sess, g.vm)), 'Running', 'power_state Running')
        t.eq(error(s.VM.hard_shutdown(sess, g.vm)), None, 'VM.hard_shutdown')
        t.ok(value(s.VM.get_power_state(sess, g.vm)) == 'Halted' and not qemu_pids(g.uuid),
             'the guest is Halted and its device model gone')
        if g.ip:
            t.ok(not ping(g.ip, 1, 1), 'the guest answers no more')
        raw = os.path.join(tmp, 'after.img')
        t.eq(debian_guest.export_raw(d, sess, g.vdi, raw), 200,
             'the disk is exported through GET /export_raw_vdi')
        clean, out = debian_guest.fsck_crashed(raw)
        t.ok(clean, 'its ext4 checks clean once the journal is replayed', out[-1500:])
        os.unlink(raw)
        value(s.VM.destroy(sess, g.vm))
        value(s.VDI.destroy(sess, g.vdi))
    finally:
        dhcp.stop()


def inner(binary, guest_dir):
    t = Tap()
    subprocess.run(['ip', 'link', 'set', 'lo', 'up'])
    tmp = tempfile.mkdtemp(prefix='vessel-debian-')
    d = Vesseld(binary, extra=['--backend', 'qemu', '--guest-kernel-dir', guest_dir])
    try:
        d.start()
        checks(t, d, guest_dir, tmp)
    except Exception as exc:  # a crash of the test is a failure, with its reason
        import traceback
        t.ok(False, 'test raised %s' % type(exc).__name__, traceback.format_exc())
    finally:
        d.kill_all()
        d.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    return t.done()


def outer(argv):
    if os.geteuid() != 0:
        print('1..0 # SKIP needs root (debootstrap, a network namespace)')
        return 0
    for tool in ('debootstrap', 'dnsmasq', 'e2fsck', 'mkfs.ext4'):
        if not shutil.which(tool):
            print('1..0 # SKIP %s is not installed (scripts/install-deps.sh)' % tool)
            return 0
    guest_dir = os.path.abspath(argv[2])
    try:
        debian_guest.build(guest_dir)  # here: it may download, the namespace has no network
    except RuntimeError as exc:
        print('not ok 1 - build the Debian guest image')
        for line in str(exc).splitlines()[-20:]:
            print('#   ' + line)
        print('1..1')
        return 1
    rc = debian_guest.run_in_netns('vessel-deb', [sys.executable, os.path.abspath(__file__),
                                                  '--inner', argv[1], guest_dir])
    if rc is None:
        print('1..0 # SKIP no network namespace support')
        return 0
    return rc


if __name__ == '__main__':
    if len(sys.argv) > 1 and sys.argv[1] == '--inner':
        sys.exit(inner(sys.argv[2], sys.argv[3]))
    sys.exit(outer(sys.argv))
