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
ping over the bridge. Its qemu-guest-agent (Debian's package) gives
VM_guest_metrics: the DHCP address in networks (waited for up to 60 s from
VM.start), an os_version naming Debian 12; clean_reboot goes through the
agent; with the agent stopped in the guest (systemctl, typed on its console by
the test),
clean_reboot is refused with VM_LACKS_FEATURE and clean_shutdown powers it
off by ACPI, leaving a clean file system. Started again, VM.hard_shutdown
ends it, and the disk, exported through GET /export_raw_vdi, checks clean
once its journal is replayed (a hard shutdown is a crash to the guest).
Usage: test_debian_guest.py BUILD/vesseld GUEST_DIR
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Tap, Vesseld, console_log, console_type, error, run_in_netns, value, wait_for  # noqa: E402
import debian_guest  # noqa: E402


def ping(addr, count=1, wait=2):
    return subprocess.run(['busybox', 'ping', '-c', str(count), '-W', str(wait), addr],
                          capture_output=True).returncode == 0


def qemu_pids(uuid):
    out = subprocess.run(['pgrep', '-f', 'qemu-system-x86_64.*' + uuid], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def guest_metrics(s, sess, vm):
    ref = value(s.VM.get_guest_metrics(sess, vm))
    return None if ref == 'OpaqueRef:NULL' else value(s.VM_guest_metrics.get_record(sess, ref))


def agent_checks(t, d, s, sess, g, tmp):
    """The guest agent: metrics, clean reboot, and what is left without it."""
    left = max(5, 60 - (time.time() - g.started_at))
    gm = wait_for(lambda: (lambda m: m if m and g.ip and m['networks'].get('0/ip') == g.ip else None)(
        guest_metrics(s, sess, g.vm)), left, 0.5)
    # 60 s from VM.start is a timeout, not a goal: timings belong to bench/
    t.ok(gm, 'VM_guest_metrics.networks shows its address %s (%.1f s after VM.start)'
         % (g.ip, time.time() - g.started_at), guest_metrics(s, sess, g.vm))
    gm = gm or guest_metrics(s, sess, g.vm) or {}
    osv = gm.get('os_version', {})
    t.ok('Debian GNU/Linux 12' in osv.get('name', '') and osv.get('distro') == 'debian' and
         osv.get('major') == '12', 'os_version names Debian 12', osv)
    t.ok(gm.get('PV_drivers_detected') and gm.get('live'), 'the agent counts as guest tools, live')
    n = console_log(d, g.uuid).count('login:')
    t.eq(error(s.VM.clean_reboot(sess, g.vm)), None, 'clean_reboot through the agent')
    t.ok(wait_for(lambda: console_log(d, g.uuid).count('login:') > n, 600, 1),
         'the guest comes back to login:')
    t.ok(wait_for(lambda: (guest_metrics(s, sess, g.vm) or {}).get('live'), 120, 1),
         'its agent answers again after the reboot')
    # stop the agent inside the guest, as an administrator would
    con = [c for c in value(s.VM.get_consoles(sess, g.vm))
           if value(s.console.get_protocol(sess, c)) == 'vt100'][0]
    # each line waits for its prompt: what is typed early goes to the wrong
    # reader (the console's replay holds the boot's output, "#1 SMP" too)
    console_type(d, sess, con, 'root', 'Password:', 60)
    console_type(d, sess, con, debian_guest.ROOT_PASSWORD, 'root@vessel-debian:~#', 60)
    out = console_type(d, sess, con, 'systemctl stop qemu-guest-agent; echo VESSEL-$((6*7))',
                       'VESSEL-42', 60)
    t.ok('VESSEL-42' in out, 'the agent is stopped in the guest', out[-500:])
    t.ok(wait_for(lambda: not (guest_metrics(s, sess, g.vm) or {}).get('live', True), 60, 1),
         'its guest metrics go not live')
    t.eq(error(s.VM.clean_reboot(sess, g.vm)), ['VM_LACKS_FEATURE', g.vm],
         'without the agent clean_reboot is refused: VM_LACKS_FEATURE')
    t0 = time.time()
    t.eq(error(s.VM.clean_shutdown(sess, g.vm)), None,
         'clean_shutdown still works, by the ACPI power button')
    t.ok(value(s.VM.get_power_state(sess, g.vm)) == 'Halted',
         'Halted after %.1f s' % (time.time() - t0))
    raw = os.path.join(tmp, 'clean.img')
    debian_guest.export_raw(d, sess, g.vdi, raw)
    r = subprocess.run(['e2fsck', '-fn', raw], capture_output=True, text=True)
    t.eq(r.returncode, 0, 'after a clean shutdown its file system is clean without any recovery')
    os.unlink(raw)


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
        agent_checks(t, d, s, sess, g, tmp)
        n = console_log(d, g.uuid).count('login:')
        value(s.VM.start(sess, g.vm, False, False))
        t.ok(wait_for(lambda: console_log(d, g.uuid).count('login:') > n, 600, 1),
             'started again, it reaches login:')
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
    rc = run_in_netns('vessel-deb', [sys.executable, os.path.abspath(__file__),
                                                  '--inner', argv[1], guest_dir])
    if rc is None:
        print('1..0 # SKIP no network namespace support')
        return 0
    return rc


if __name__ == '__main__':
    if len(sys.argv) > 1 and sys.argv[1] == '--inner':
        sys.exit(inner(sys.argv[2], sys.argv[3]))
    sys.exit(outer(sys.argv))
