#!/usr/bin/env python3
"""tests/integration/test_guest_network.py - guests that answer on the wire.

Inside a network namespace of its own (nothing leaves it): vesseld with the
qemu backend, a network (a bridge with the host's address 10.99.0.1/24), two
test guests (guest 1 a pc, guest 2 a q35 machine; virtio-net, each
configuring eth0 from vessel.ip= on its command line) with a VIF each. The host pings both guests through the
bridge; guest 1 pings guest 2, typed on its serial console through the
console tunnel (CONNECT /console), which this test exercises too. Stopping
the guests removes their taps; destroying the network removes its bridge.
Usage: test_guest_network.py BUILD/vesseld GUEST_DIR
"""
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Tap, Vesseld, console_log, console_type, error, run_in_netns, value, wait_for  # noqa: E402

MARKER = 'VESSEL-GUEST-UP'


def ip(*args):
    return subprocess.run(['ip'] + list(args), capture_output=True, text=True)


def link_exists(name):
    return ip('link', 'show', name).returncode == 0


def ping(addr, count=1, wait=2):
    return subprocess.run(['busybox', 'ping', '-c', str(count), '-W', str(wait), addr],
                          capture_output=True).returncode == 0


def master_of(tap):
    out = ip('-o', 'link', 'show', tap).stdout
    return out.split(' master ')[1].split()[0] if ' master ' in out else None


def root_qdisc(tap):
    """(kind, rate in bytes/s) of @tap's root qdisc, from tc's JSON."""
    import json
    r = subprocess.run(['tc', '-j', 'qdisc', 'show', 'dev', tap], capture_output=True, text=True)
    try:
        q = [x for x in json.loads(r.stdout or '[]') if x.get('root')][0]
    except (ValueError, IndexError):
        return None, None
    return q.get('kind'), q.get('options', {}).get('rate')


def recv_time(d, sess, console, port, nbytes):
    """Seconds the guest takes to send @nbytes to the host (10.99.0.1:@port),
    from the first byte to the last; None when they do not all arrive."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(('10.99.0.1', port))
    srv.listen(1)
    srv.settimeout(30)
    console_type(d, sess, console, 'run dd if=/dev/zero bs=1024 count=%d 2>/dev/null | '
                 'nc 10.99.0.1 %d >/dev/null & echo VESSEL-NC-%d' % (nbytes // 1024, port, port),
                 'VESSEL-NC-%d' % port, 20)
    try:
        c, _ = srv.accept()
    except OSError:
        srv.close()
        return None
    c.settimeout(30)
    got, t0 = 0, None
    try:
        while got < nbytes:
            chunk = c.recv(65536)
            if not chunk:
                break
            if t0 is None:
                t0 = time.time()
            got += len(chunk)
    except OSError:
        pass
    c.close()
    srv.close()
    return time.time() - t0 if got >= nbytes and t0 else None


def make_vm(s, sess, guest, name, net, addr, machine='pc'):
    tmpl = [r for r, v in value(s.VM.get_all_records(sess)).items()
            if v['name_label'] == 'Direct kernel boot'][0]
    vm = value(s.VM.clone(sess, tmpl, name))
    value(s.VM.set_is_a_template(sess, vm, False))
    value(s.VM.set_PV_kernel(sess, vm, os.path.join(guest, 'bzImage')))
    value(s.VM.set_PV_ramdisk(sess, vm, os.path.join(guest, 'initramfs.cpio')))
    value(s.VM.set_PV_args(sess, vm, 'console=ttyS0 quiet vessel.ip=%s/24' % addr))
    value(s.VM.remove_from_platform(sess, vm, 'machine'))
    value(s.VM.add_to_platform(sess, vm, 'machine', machine))
    value(s.VM.add_to_platform(sess, vm, 'accel', 'tcg'))
    vif = value(s.VIF.create(sess, {'device': '0', 'network': net, 'VM': vm, 'MAC': '', 'MTU': '1500',
                                     'other_config': {}, 'qos_algorithm_type': '',
                                     'qos_algorithm_params': {}}))
    return vm, vif


def tun_fds(pid):
    """The taps process @pid holds descriptors of: the name each is attached
    to ('' once its tap is deleted), by the kernel's fdinfo."""
    out = []
    fd_dir = '/proc/%d/fd' % pid
    for fd in os.listdir(fd_dir):
        try:
            if os.readlink(os.path.join(fd_dir, fd)) != '/dev/net/tun':
                continue
            with open('/proc/%d/fdinfo/%s' % (pid, fd)) as f:
                out += [ln.split(':', 1)[1].strip() for ln in f if ln.startswith('iff:')]
        except OSError:
            pass  # closed meanwhile
    return out


def qemu_pid(d, vm_uuid):
    with open(os.path.join(d.dir, 'data', 'run', vm_uuid, 'qemu.pid')) as f:
        return int(f.read())


def tap_fd_checks(t, d, uuid, tap):
    """The tap of a NIC given at start: vesseld opened it and passed it to
    qemu as a descriptor, and holds a copy (xenops/taps.c)."""
    pid = qemu_pid(d, uuid)
    with open('/proc/%d/cmdline' % pid, 'rb') as f:
        netdevs = [a.decode() for a in f.read().split(b'\0') if a.startswith(b'tap,')]
    t.ok(len(netdevs) == 1 and ',fd=' in netdevs[0] and 'ifname' not in netdevs[0],
         'qemu gets its tap as a descriptor, not a name', netdevs)
    t.ok(tap in tun_fds(pid), 'qemu\'s descriptor is tap %s' % tap, tun_fds(pid))
    t.ok(tap in tun_fds(d.proc.pid), 'vesseld holds a copy of it', tun_fds(d.proc.pid))


def hotplug_checks(t, d, s, sess, vms, net, vt100):
    """VIF.plug/unplug, locking_mode and QoS on guest 2's running VIF (step by
    step as the module doc says); returns the (new) proxy and session."""
    # guest 1 is a pc: ACPI PCI hotplug
    vm1, vif1 = vms[0]
    tap1 = 'vif%s.0' % value(s.VM.get_domid(sess, vm1))
    t.eq(error(s.VIF.unplug(sess, vif1)), None, 'pc guest: VIF.unplug')
    t.ok(not link_exists(tap1) and wait_for(lambda: not ping('10.99.0.11', 1, 1), 20, 0.5),
         'pc guest: unplugged, no tap, no answer')
    t.eq(error(s.VIF.plug(sess, vif1)), None, 'pc guest: VIF.plug')
    t.ok(wait_for(lambda: ping('10.99.0.11', 1, 2), 90, 1), 'pc guest: plugged, answers again')
    # guest 2 is a q35: PCIe native hotplug on its root ports
    vm2, vif2 = vms[1]
    addr2 = '10.99.0.12'
    tap2 = 'vif%s.0' % value(s.VM.get_domid(sess, vm2))
    t.eq(error(s.VIF.plug(sess, vif2)), ['DEVICE_ALREADY_ATTACHED', vif2],
         'VIF.plug of an attached VIF: DEVICE_ALREADY_ATTACHED')
    held = len(tun_fds(d.proc.pid))
    t.eq(error(s.VIF.unplug(sess, vif2)), None, 'VIF.unplug of a running guest\'s NIC')
    t.ok(not value(s.VIF.get_currently_attached(sess, vif2)) and not link_exists(tap2),
         'unplugged: currently_attached false, the tap is gone')
    t.eq(len(tun_fds(d.proc.pid)), held - 1, 'and vesseld let go of its descriptor of it')
    t.ok(wait_for(lambda: not ping(addr2, 1, 1), 20, 0.5), 'unplugged: the guest no longer answers')
    t.eq(error(s.VIF.unplug(sess, vif2)), ['DEVICE_ALREADY_DETACHED', vif2],
         'VIF.unplug of an unplugged VIF: DEVICE_ALREADY_DETACHED')
    t.eq(error(s.VIF.plug(sess, vif2)), None, 'VIF.plug hotplugs the NIC again')
    t.ok(value(s.VIF.get_currently_attached(sess, vif2)) and master_of(tap2) == 'vbrguest',
         'plugged: currently_attached, the tap is a port of the bridge again')
    t.ok(wait_for(lambda: ping(addr2, 1, 2), 90, 1), 'plugged: the guest answers again')

    # a VIF created on a running VM waits for VIF.plug, as in xapi
    vif3 = value(s.VIF.create(sess, {'device': '1', 'network': net, 'VM': vm2, 'MAC': '',
                                     'MTU': '1500', 'other_config': {}, 'qos_algorithm_type': '',
                                     'qos_algorithm_params': {}}))
    tap3 = 'vif%s.1' % value(s.VM.get_domid(sess, vm2))
    t.ok(not value(s.VIF.get_currently_attached(sess, vif3)) and not link_exists(tap3),
         'a VIF created on a running VM stays unplugged')
    t.eq(error(s.VIF.plug(sess, vif3)), None, 'VIF.plug of the new VIF')
    t.ok(value(s.VIF.get_currently_attached(sess, vif3)) and master_of(tap3) == 'vbrguest',
         'the new VIF is attached: its tap is on the bridge')
    t.eq(error(s.VIF.destroy(sess, vif3))[0], 'OPERATION_NOT_ALLOWED',
         'VIF.destroy of an attached VIF is refused')
    t.eq(error(s.VIF.unplug_force(sess, vif3)), None, 'VIF.unplug_force')
    t.ok(not link_exists(tap3) and not value(s.VIF.get_currently_attached(sess, vif3)),
         'unplug_force: the tap is gone, the VIF detached')
    t.eq(error(s.VIF.destroy(sess, vif3)), None, 'VIF.destroy after unplug')
    t.ok(wait_for(lambda: ping(addr2, 1, 2), 30, 1), 'guest 2 still answers on its first NIC')

    # locking_mode applies live
    value(s.VIF.set_locking_mode(sess, vif2, 'disabled'))
    t.eq(master_of(tap2), None, 'locking_mode disabled: the tap leaves the bridge at once')
    t.ok(wait_for(lambda: not ping(addr2, 1, 1), 20, 0.5), 'locking_mode disabled: no traffic')
    value(s.VIF.set_locking_mode(sess, vif2, 'network_default'))
    t.eq(master_of(tap2), 'vbrguest', 'locking_mode network_default: the tap is back on the bridge')
    t.ok(wait_for(lambda: ping(addr2, 1, 2), 30, 1), 'locking_mode network_default: traffic again')
    # the network's default moves a running VIF that follows it
    value(s.network.set_default_locking_mode(sess, net, 'disabled'))
    t.eq(master_of(tap2), None, 'network default disabled: a following tap leaves the bridge')
    value(s.network.set_default_locking_mode(sess, net, 'unlocked'))
    t.eq(master_of(tap2), 'vbrguest', 'network default unlocked: it is back')
    t.ok(wait_for(lambda: ping(addr2, 1, 2), 30, 1), 'and traffic passes again')
    value(s.VIF.set_locking_mode(sess, vif2, 'unlocked'))
    t.ok(master_of(tap2) == 'vbrguest' and ping(addr2, 2, 2), 'locking_mode unlocked: traffic')

    # locked: the guest may send from its MAC and allowed addresses only
    value(s.VIF.set_ipv4_allowed(sess, vif2, [addr2]))
    value(s.VIF.set_locking_mode(sess, vif2, 'locked'))
    t.ok(wait_for(lambda: ping(addr2, 1, 2), 20, 0.5), 'locked, its address allowed: traffic')
    value(s.VIF.set_ipv4_allowed(sess, vif2, ['10.99.0.99']))
    t.ok(wait_for(lambda: not ping(addr2, 1, 1), 20, 0.5),
         'locked, its address no longer allowed: its replies are dropped (live)')
    value(s.VIF.add_ipv4_allowed(sess, vif2, addr2))
    t.ok(wait_for(lambda: ping(addr2, 1, 2), 20, 0.5), 'add_ipv4_allowed of its address: traffic again')
    value(s.VIF.set_ipv4_allowed(sess, vif2, []))
    t.ok(wait_for(lambda: not ping(addr2, 1, 1), 20, 0.5), 'locked with no address: no traffic')
    value(s.VIF.set_locking_mode(sess, vif2, 'unlocked'))
    t.ok(wait_for(lambda: ping(addr2, 1, 2), 20, 0.5), 'unlocked again: traffic')

    # QoS: what the guest sends is shaped (ifb<domid>.<device> with a tbf),
    # applied live
    ifb2 = 'ifb' + tap2[3:]
    fast = recv_time(d, sess, vt100_of(s, sess, vm2), 5001, 393216)
    value(s.VIF.set_qos_algorithm_type(sess, vif2, 'ratelimit'))
    value(s.VIF.set_qos_algorithm_params(sess, vif2, {'kbps': '64'}))
    t.eq(root_qdisc(ifb2), ('tbf', 65536), 'QoS ratelimit kbps=64: a tbf of 65536 bytes/s on %s' % ifb2)
    f = subprocess.run(['tc', 'filter', 'show', 'dev', tap2, 'ingress'], capture_output=True, text=True).stdout
    t.ok('Redirect to device %s' % ifb2 in f, 'the tap\'s ingress is redirected through it', f)
    slow = recv_time(d, sess, vt100_of(s, sess, vm2), 5002, 393216)
    t.ok(slow is not None and slow >= 3.0 and (fast is None or slow > fast),
         'QoS: 384 KiB sent by the guest take >= 3 s at 64 KiB/s (took %s s; unlimited %s s)'
         % (slow and round(slow, 2), fast and round(fast, 2)))
    t.ok(ping(addr2, 2, 2), 'a rate-limited guest still answers')
    # locked and rate-limited at once: frames the ifb hands back are still
    # checked by the lock
    value(s.VIF.set_ipv4_allowed(sess, vif2, ['10.99.0.99']))
    value(s.VIF.set_locking_mode(sess, vif2, 'locked'))
    t.ok(wait_for(lambda: not ping(addr2, 1, 1), 20, 0.5),
         'locked and rate-limited, its address not allowed: its replies are dropped')
    value(s.VIF.set_ipv4_allowed(sess, vif2, [addr2]))
    t.ok(wait_for(lambda: ping(addr2, 1, 2), 20, 0.5), 'locked and rate-limited, its address allowed: traffic')
    value(s.VIF.set_locking_mode(sess, vif2, 'unlocked'))

    # a vesseld restart finds the hotplugged NIC (and the QoS follows a replug)
    d.kill()
    d.start()
    s = d.proxy()
    sess = d.login()
    t.ok(value(s.VIF.get_currently_attached(sess, vif2)), 'after a restart the hotplugged VIF is attached')
    t.eq(error(s.VIF.unplug(sess, vif2)), None, 'after a restart VIF.unplug finds the hotplugged NIC')
    t.ok(wait_for(lambda: not ping(addr2, 1, 1), 20, 0.5) and not link_exists(tap2),
         'after a restart: unplugged, no answer, no tap')
    t.eq(error(s.VIF.plug(sess, vif2)), None, 'after a restart VIF.plug')
    t.eq(root_qdisc(ifb2), ('tbf', 65536), 'the rate limit is applied at plug')
    t.ok(wait_for(lambda: ping(addr2, 1, 2), 90, 1), 'replugged after a restart: the guest answers')
    value(s.VIF.set_qos_algorithm_type(sess, vif2, ''))
    t.ok(not link_exists(ifb2) and 'Redirect' not in subprocess.run(
        ['tc', 'filter', 'show', 'dev', tap2, 'ingress'], capture_output=True, text=True).stdout,
        'QoS type "": the limit is removed live (no ifb, no redirect)')

    # a VM start after the restart: a new domid (adopted guest 1 keeps its
    # tap), and every VIF plugged again, unplugged or not
    value(s.VIF.unplug(sess, vif2))
    value(s.VM.hard_shutdown(sess, vm2))
    t.eq(error(s.VM.start(sess, vm2, False, False)), None, 'VM.start of guest 2 after the restart')
    dom1, dom2 = (value(s.VM.get_domid(sess, vm)) for vm in (vms[0][0], vm2))
    t.ok(dom1 != dom2 and link_exists('vif%s.0' % dom1) and link_exists('vif%s.0' % dom2),
         'it gets a domid of its own: both guests have their taps (%s, %s)' % (dom1, dom2))
    t.ok(value(s.VIF.get_currently_attached(sess, vif2)), 'VM.start plugs the VIF unplugged before')
    t.ok(wait_for(lambda: ping(addr2, 1, 2), 120, 1), 'restarted guest 2 answers')
    t.ok(ping('10.99.0.11', 2, 2), 'guest 1 still answers')
    return s, sess


def vt100_of(s, sess, vm):
    return [c for c in value(s.VM.get_consoles(sess, vm))
            if value(s.console.get_protocol(sess, c)) == 'vt100'][0]


def inner(binary, guest):
    t = Tap()
    ip('link', 'set', 'lo', 'up')
    d = Vesseld(binary, extra=['--backend', 'qemu', '--guest-kernel-dir', guest])
    try:
        d.start()
        s = d.proxy()
        sess = d.login()
        net = value(s.network.create(sess, {'name_label': 'guests', 'name_description': '', 'MTU': '1500',
                                            'other_config': {}, 'bridge': 'vbrguest'}))
        t.ok(link_exists('vbrguest'), 'network.create made the bridge')
        ip('addr', 'add', '10.99.0.1/24', 'dev', 'vbrguest')
        vms = [make_vm(s, sess, guest, 'net-%d' % i, net, '10.99.0.1%d' % i, m)
               for i, m in ((1, 'pc'), (2, 'q35'))]
        for vm, _ in vms:
            r = s.VM.start(sess, vm, False, False)
            t.eq(error(r), None, 'VM.start of a guest with a VIF')
        uuids = [value(s.VM.get_uuid(sess, vm)) for vm, _ in vms]
        for u in uuids:
            t.ok(wait_for(lambda u=u: MARKER in console_log(d, u), 90), 'guest %s is up' % u[:8])
        for vm, vif in vms:
            rec = value(s.VIF.get_record(sess, vif))
            domid = value(s.VM.get_domid(sess, vm))
            tap = 'vif%s.0' % domid
            t.ok(rec['currently_attached'] and link_exists(tap), 'the VIF is attached: tap %s exists' % tap)
            master = ip('-o', 'link', 'show', tap).stdout
            t.ok('master vbrguest' in master, 'the tap is a port of the network\'s bridge', master)
            tap_fd_checks(t, d, value(s.VM.get_uuid(sess, vm)), tap)
        for addr in ('10.99.0.11', '10.99.0.12'):
            p = subprocess.run(['busybox', 'ping', '-c', '3', '-W', '3', addr], capture_output=True, text=True)
            t.eq(p.returncode, 0, 'the host pings guest %s through the bridge' % addr)
        vt100 = [c for c in value(s.VM.get_consoles(sess, vms[0][0]))
                 if value(s.console.get_protocol(sess, c)) == 'vt100'][0]
        out = console_type(d, sess, vt100, 'run ping -c 3 -W 3 10.99.0.12 && echo VESSEL-PING-OK',
                           'VESSEL-PING-OK', 60)
        t.ok(MARKER in out, 'the console tunnel replays the guest\'s earlier output')
        t.ok('VESSEL-PING-OK' in out, 'guest 1 pings guest 2 (typed on its serial console)', out[-500:])
        rfb = [c for c in value(s.VM.get_consoles(sess, vms[0][0]))
               if value(s.console.get_protocol(sess, c)) == 'rfb'][0]
        out = console_type(d, sess, rfb, '', 'RFB 003', 10)
        t.ok(out.startswith('RFB 003'), 'the rfb console reaches the guest\'s own VNC server '
             '(in the device model\'s directory, its peer checked)', out[:200])
        s, sess = hotplug_checks(t, d, s, sess, vms, net, vt100)
        taps = ['vif%s.0' % value(s.VM.get_domid(sess, vm)) for vm, _ in vms]
        # taps go after hard_shutdown's reply (api/domains.c:
        # domains_detach_nics): a start right after makes taps of its new
        # domid, never meeting the old ones
        for vm, _ in vms:
            value(s.VM.hard_shutdown(sess, vm))
            value(s.VM.start(sess, vm, False, False))
        again = ['vif%s.0' % value(s.VM.get_domid(sess, vm)) for vm, _ in vms]
        t.ok(not set(again) & set(taps) and all(master_of(x) == 'vbrguest' for x in again),
             'a start right after hard_shutdown: new taps (%s), on the bridge' % ' '.join(again))
        t.ok(wait_for(lambda: not any(link_exists(x) for x in taps), 10, 0.05),
             'and the old taps (%s) go' % ' '.join(taps))
        for vm, _ in vms:
            value(s.VM.hard_shutdown(sess, vm))
        t.ok(wait_for(lambda: not any(link_exists(x) for x in again), 10, 0.05),
             'stopped guests leave no tap behind')
        t.ok(wait_for(lambda: tun_fds(d.proc.pid) == [], 10, 0.05),
             'and vesseld holds no tap descriptor (its supervisor closed them after the exits)',
             tun_fds(d.proc.pid))
        for vm, vif in vms:
            value(s.VM.destroy(sess, vm))
        value(s.network.destroy(sess, net))
        t.ok(not link_exists('vbrguest'), 'destroying the network removes its bridge')
        t.eq(d.stop(), 0, 'SIGTERM stops vesseld cleanly (under ASan: no leak)')
    except Exception as exc:
        import traceback
        t.ok(False, 'test raised %s' % type(exc).__name__, traceback.format_exc())
    finally:
        d.kill_all()
        d.cleanup()
    return t.done()


def outer(argv):
    if os.geteuid() != 0:
        print('1..0 # SKIP needs root to make a network namespace')
        return 0
    guest = argv[2]
    if True:  # build-guest.sh is idempotent and rebuilds what changed
        r = subprocess.run(['sh', os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'guest',
                                               'build-guest.sh'), guest], capture_output=True, text=True)
        if r.returncode != 0:
            print('not ok 1 - build the test guest\n1..1')
            return 1
    rc = run_in_netns('vessel-gnet', [sys.executable, os.path.abspath(__file__), '--inner', argv[1], guest])
    if rc is None:
        print('1..0 # SKIP no network namespace support')
        return 0
    return rc


if __name__ == '__main__':
    if len(sys.argv) > 1 and sys.argv[1] == '--inner':
        sys.exit(inner(sys.argv[2], sys.argv[3]))
    sys.exit(outer(sys.argv))
