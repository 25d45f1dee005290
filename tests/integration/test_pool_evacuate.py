#!/usr/bin/env python3
"""tests/integration/test_pool_evacuate.py - host.evacuate empties a host; pool.eject.

A 3-member etcd and two hosts A and B, each in its own network namespace
(pool_netns.py), qemu backend; a file SR with shared=true that both hosts see
(SR.create through A: a PBD per host), a network whose bridge each host makes.
Two test guests (test_migrate.py's: each writes counter i to sector i of its
disk on the shared SR and prints "TICK i" every 100 ms) run on B. Checked
through A:
  - with a disk of the second VM on B's local SR: host.get_vms_which_prevent_evacuation
    of B names exactly that VM, with VM_REQUIRES_SR [vm, sr];
    host.assert_can_evacuate raises CANNOT_EVACUATE_HOST ["VM_REQUIRES_SR,vm,sr"];
    host.evacuate raises VM_REQUIRES_SR [vm, sr] and moves nothing; A (nothing
    resident) has no VM preventing its evacuation;
  - with A disabled, B's VMs have nowhere to go: NO_HOSTS_AVAILABLE [vm] each;
  - host.evacuate with a network A has no PIF on: PIF_NOT_PRESENT [A, network],
    nothing moved;
  - the local disk destroyed: Async.host.evacuate of B succeeds with progress
    1.0; both VMs are Running, resident_on A, each with one qemu, in A's
    namespace, none left in B's namespace; B is still enabled (xapi's evacuate
    leaves the flag alone); nothing prevents B's evacuation any more; each guest
    ticks on in A's console;
  - `xe host-evacuate uuid=<A>` (the real xe binary) moves both back to B;
  - each guest's counters over both hosts' consoles never repeat and are
    1..N without a gap (it never ran twice, never stopped);
  - the guests shut down, pool.eject of B (nothing running there) returns B to a host of its own: B restarts,
    a login on B with B's own root password works, B lists only itself (its
    own inventory uuid) and is its own pool's master; A lists only A;
  - host.declare_dead: refused for A itself and for a live host (HOST_IS_LIVE
    [host]); a third host C (sim backend, its own namespace) with a running VM
    has everything in its namespace killed; once A sees C not live,
    declare_dead of C records the VM Halted (resident nowhere) and C disabled,
    and host.destroy of C then succeeds.
Measured, not asserted: the time each phase took and the migrations' QEMU
downtime (TAP comments).

usage: test_pool_evacuate.py VESSELD GUEST_DIR XE
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (ROOT_PASSWORD, Tap, Vesseld, build_test_guest, console_log,  # noqa: E402
                     console_type, error, value, wait_for)
from pool_netns import PoolNet, usable  # noqa: E402
from test_migrate import TICKER, make_vm  # noqa: E402
from test_migrate_pool import (PORT, last_tick, netns_of, qemus, report_downtimes, ticks,  # noqa: E402
                               vt100, wait_task)
from test_pool_join import wait_restarted, ready_lines  # noqa: E402
from test_pool_store import ETCD, Etcd, inventory_uuid  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MIB = 1024 * 1024


def qemus_in(node):
    """The qemu processes running in @node's namespace."""
    pids = subprocess.run(['ip', 'netns', 'pids', node.ns], capture_output=True,
                          text=True).stdout.split()
    out = []
    for p in pids:
        try:
            with open('/proc/%s/cmdline' % p, 'rb') as f:
                if b'qemu-system' in f.read():
                    out.append(int(p))
        except OSError:
            pass
    return out


def start_pool(t, binary, guest, root, net, hosts):
    """etcd on three namespaces, A the first host, B a member: (etcd, nodes, A, session)."""
    members = [net.add('e%d' % i) for i in range(3)]
    nodes = [net.add('ha'), net.add('hb')]
    etcd = Etcd(root, 3, addrs=[m.addr for m in members], wraps=[m.wrap() for m in members])
    for i in range(3):
        etcd.start(i)
    t.ok(wait_for(etcd.writable, 30), 'a 3-member etcd, one namespace per member, answers')
    common = ['--backend', 'qemu', '--guest-kernel-dir', guest, '--store', 'etcd',
              '--etcd-endpoints', etcd.endpoints(), '--etcd-prefix', '/vessel/evacuate',
              '--metrics-period', '3600']

    def https(node):
        return ['--tls-listen', '%s:%d' % (node.addr, PORT),
                '--address', '%s:%d' % (node.addr, PORT)]
    a = Vesseld(binary, extra=common + https(nodes[0]), addr=nodes[0].addr, wrap=nodes[0].wrap())
    hosts.append(a)
    a.start(timeout=60)
    b = Vesseld(binary, extra=common + https(nodes[1]) + ['--pool-member'], addr=nodes[1].addr,
                wrap=nodes[1].wrap())
    hosts.append(b)
    os.makedirs(os.path.join(b.dir, 'data'), mode=0o700)
    shutil.copy(os.path.join(a.dir, 'data', 'ptoken'), os.path.join(b.dir, 'data', 'ptoken'))
    b.start(timeout=60)
    A = a.proxy()
    sa = a.login()
    refs = {h['uuid']: ref for ref, h in value(A.host.get_all_records(sa)).items()}
    a.host_ref, b.host_ref = refs[inventory_uuid(a)], refs[inventory_uuid(b)]
    t.eq(len(refs), 2, 'two hosts of one pool, each in its own namespace')
    return etcd, nodes, A, sa


def refusals(t, A, sa, a, b, vms, local_sr, netw):
    """The second VM has a disk on B's local SR: evacuation is refused, for it only."""
    ha, hb = a.host_ref, b.host_ref
    vm2 = vms[1]
    vdi = value(A.VDI.create(sa, {'name_label': 'local', 'name_description': '', 'SR': local_sr,
                                  'virtual_size': str(4 * MIB), 'type': 'user',
                                  'sharable': False, 'read_only': False, 'other_config': {}}))
    vbd = value(A.VBD.create(sa, {'VM': vm2, 'VDI': vdi, 'userdevice': '3', 'bootable': False,
                                  'mode': 'RW', 'type': 'Disk', 'unpluggable': True,
                                  'empty': False, 'other_config': {},
                                  'qos_algorithm_type': '', 'qos_algorithm_params': {}}))
    t.eq(value(A.host.get_vms_which_prevent_evacuation(sa, hb)),
         {vm2: ['VM_REQUIRES_SR', vm2, local_sr]},
         'get_vms_which_prevent_evacuation of B names exactly the VM with a local disk')
    t.eq(error(A.host.assert_can_evacuate(sa, hb)),
         ['CANNOT_EVACUATE_HOST', 'VM_REQUIRES_SR,%s,%s' % (vm2, local_sr)],
         'assert_can_evacuate: CANNOT_EVACUATE_HOST with xapi\'s encoding')
    t.eq(error(A.host.evacuate(sa, hb, 'OpaqueRef:NULL', '0')),
         ['VM_REQUIRES_SR', vm2, local_sr], 'host.evacuate: VM_REQUIRES_SR [vm, sr]')
    t.ok(all(value(A.VM.get_resident_on(sa, v)) == hb for v in vms), 'and nothing moved')
    t.eq(value(A.host.get_vms_which_prevent_evacuation(sa, ha)), {},
         'nothing prevents the evacuation of A, where nothing runs')
    value(A.host.disable(sa, ha))
    t.eq(value(A.host.get_vms_which_prevent_evacuation(sa, hb)),
         {v: ['NO_HOSTS_AVAILABLE', v] for v in vms},
         'with A disabled: NO_HOSTS_AVAILABLE [vm] for each VM of B')
    value(A.host.enable(sa, ha))
    value(A.VBD.destroy(sa, vbd))
    value(A.VDI.destroy(sa, vdi))
    t.eq(error(A.host.assert_can_evacuate(sa, hb)), None,
         'the local disk destroyed: B can be evacuated')
    t.eq(error(A.host.evacuate(sa, hb, netw, '0')), ['PIF_NOT_PRESENT', ha, netw],
         'evacuate over a network A has no PIF on: PIF_NOT_PRESENT [host, network]')
    t.ok(all(value(A.VM.get_resident_on(sa, v)) == hb for v in vms), 'and nothing moved')


def all_on(t, A, sa, vms, uuids, d, node, other, ticking, what):
    """Every VM Running on @d, its one qemu in @node's namespace, none in @other's;
    each guest ticks on in @d's console."""
    recs = [value(A.VM.get_record(sa, v)) for v in vms]
    t.ok(all(r['power_state'] == 'Running' and r['resident_on'] == d.host_ref for r in recs),
         '%s: every VM Running, resident_on %s' % (what, d.name),
         [(r['power_state'], r['resident_on']) for r in recs])
    q = [qemus(u) for u in uuids]
    t.ok(all(len(p) == 1 and netns_of(p[0]) == node.ns for p in q),
         '%s: one qemu per VM, in %s\'s namespace' % (what, d.name),
         [[(p, netns_of(p)) for p in x] for x in q])
    t.eq(qemus_in(other), [], '%s: no qemu left in the other host\'s namespace' % what)
    if ticking:
        marks = [last_tick(d, u) for u in uuids]
        t.ok(wait_for(lambda: all(last_tick(d, u) > m + 2 for u, m in zip(uuids, marks)), 30),
             '%s: both guests tick on in %s\'s console' % (what, d.name),
             [last_tick(d, u) for u in uuids])


def xe_evacuate(t, xe_exe, a, A, sa, host_uuid):
    x = subprocess.run([xe_exe, '-s', a.addr, '-p', str(a.port), '--nossl', '-u', 'root',
                        '-pw', ROOT_PASSWORD, 'host-evacuate', 'uuid=' + host_uuid],
                       capture_output=True, text=True, timeout=180)
    t.ok(x.returncode == 0, 'xe host-evacuate uuid=<A> succeeds', x.stdout + x.stderr)


def counters(t, hosts, vms, uuids, A, sa):
    for v, u in zip(vms, uuids):
        value(A.VM.hard_shutdown(sa, v))
        seen = sorted(ticks(hosts[0], u) + ticks(hosts[1], u))
        t.ok(len(seen) > 10 and len(seen) == len(set(seen)) and
             seen == list(range(1, len(seen) + 1)),
             'guest %s: %d counters over both consoles, 1..N, none twice' % (u[:8], len(seen)),
             [i for i in set(seen) if seen.count(i) > 1][:10] or seen[:5] + seen[-5:])


def eject(t, A, sa, a, b):
    ha, hb = a.host_ref, b.host_ref
    n = len(ready_lines(b))
    r = A.pool.eject(sa, hb)
    t.eq(r.get('Status'), 'Success', 'pool.eject of the evacuated B (%r)' %
         r.get('ErrorDescription'))
    t.ok(wait_restarted(b, n), 'B restarts on its own')
    B = b.proxy()
    sb = b.login(password=ROOT_PASSWORD)
    t.ok(sb.startswith('OpaqueRef:'), 'a login on B with its own root password works')
    mine = value(B.host.get_all(sb))
    t.ok(len(mine) == 1 and value(B.host.get_uuid(sb, mine[0])) == inventory_uuid(b),
         'B lists only itself, with its own host uuid')
    t.eq(value(B.pool.get_master(sb, value(B.pool.get_all(sb))[0])), mine[0],
         'B is the master of its own pool')
    t.eq(value(A.host.get_all(sa)), [ha], 'A lists only A')


def declare_dead(t, binary, net, etcd, A, sa, a, hosts):
    ha = a.host_ref
    node = net.add('hc')
    c = Vesseld(binary, extra=['--backend', 'sim', '--store', 'etcd', '--etcd-endpoints',
                               etcd.endpoints(), '--etcd-prefix', '/vessel/evacuate',
                               '--metrics-period', '3600', '--pool-member',
                               '--tls-listen', '%s:%d' % (node.addr, PORT),
                               '--address', '%s:%d' % (node.addr, PORT)],
                addr=node.addr, wrap=node.wrap())
    hosts.append(c)
    os.makedirs(os.path.join(c.dir, 'data'), mode=0o700)
    shutil.copy(os.path.join(a.dir, 'data', 'ptoken'), os.path.join(c.dir, 'data', 'ptoken'))
    c.start(timeout=60)
    hc = [r for r, h in value(A.host.get_all_records(sa)).items()
          if h['uuid'] == inventory_uuid(c)][0]
    tmpl = [r for r, v in value(A.VM.get_all_records(sa)).items()
            if v['name_label'] == 'Direct kernel boot'][0]
    vm = value(A.VM.clone(sa, tmpl, 'on-c'))
    value(A.VM.set_is_a_template(sa, vm, False))
    value(A.VM.start_on(sa, vm, hc, False, False))
    t.eq(error(A.host.declare_dead(sa, ha)), ['HOST_IS_LIVE', ha],
         'declare_dead of the host itself: HOST_IS_LIVE')
    t.eq(error(A.host.declare_dead(sa, hc)), ['HOST_IS_LIVE', hc],
         'declare_dead of a live host: HOST_IS_LIVE')
    net.kill_node(node)
    metrics = value(A.host.get_metrics(sa, hc))
    t.ok(wait_for(lambda: not value(A.host_metrics.get_live(sa, metrics)), 30),
         'C killed: A sees it not live')
    r = A.host.declare_dead(sa, hc)
    t.eq(error(r), None, 'declare_dead of the dead C')
    rec = value(A.VM.get_record(sa, vm))
    t.ok(rec['power_state'] == 'Halted' and rec['resident_on'] == 'OpaqueRef:NULL',
         'its VM is Halted, resident nowhere', (rec['power_state'], rec['resident_on']))
    t.eq(value(A.host.get_enabled(sa, hc)), False, 'C is disabled')
    t.eq(error(A.host.destroy(sa, hc)), None, 'host.destroy of C then succeeds')


def main():
    binary, guest, xe_exe = sys.argv[1], sys.argv[2], sys.argv[3]
    t = Tap()
    why = usable() or (None if os.access(ETCD, os.X_OK) else ETCD + ' is not installed')
    if why:
        print('1..0 # SKIP ' + why)
        return 0
    if not build_test_guest(t, guest):
        return t.done()
    root = tempfile.mkdtemp(prefix='vessel-it-evac-')
    shared = os.path.join(root, 'shared-sr')
    bridge = 'vbrev%d' % (os.getpid() % 100000)
    net = PoolNet()
    etcd = None
    hosts = []
    t0 = time.monotonic()

    def phase(name):
        print('# %5.1f s %s' % (time.monotonic() - t0, name))
    try:
        etcd, nodes, A, sa = start_pool(t, binary, guest, root, net, hosts)
        a, b = hosts
        a.name, b.name = 'A', 'B'
        ha, hb = a.host_ref, b.host_ref
        sr = value(A.SR.create(sa, hb, {'path': shared}, '0', 'shared', '', 'file', 'user',
                               True, {}))
        t.ok(wait_for(lambda: len(value(A.SR.get_PBDs(sa, sr))) == 2 and
                      all(value(A.PBD.get_currently_attached(sa, p))
                          for p in value(A.SR.get_PBDs(sa, sr))), 30),
             'a shared file SR with a plugged PBD on each host')
        srs = value(A.SR.get_all_records(sa))
        local_sr = [ref for ref, v in srs.items() if v['other_config'].get('vessel-local') ==
                    'true' and any(value(A.PBD.get_host(sa, p)) == hb for p in v['PBDs'])][0]
        netw = value(A.network.create(sa, {'name_label': 'evacuation', 'name_description': '',
                                           'MTU': '1500', 'other_config': {},
                                           'bridge': bridge}))
        phase('pool up')
        vms = []
        for i in range(2):
            vm, _ = make_vm(A, sa, guest, sr, netw)
            value(A.VM.set_name_label(sa, vm, 'evac-%d' % (i + 1)))
            value(A.VM.start_on(sa, vm, hb, False, False))
            vms.append(vm)
        uuids = [value(A.VM.get_uuid(sa, v)) for v in vms]
        up = wait_for(lambda: all('VESSEL-GUEST-UP' in console_log(b, u) for u in uuids), 120)
        if not t.ok(up, 'both guests boot on B', [console_log(b, u)[-300:] for u in uuids]):
            return t.done()
        for v, u in zip(vms, uuids):
            console_type(b, sa, vt100(A, sa, v), 'run ' + TICKER, 'TICK 1', 30)
        t.ok(wait_for(lambda: all(last_tick(b, u) >= 3 for u in uuids), 30),
             'both guests tick on B')

        phase('guests ticking on B')
        refusals(t, A, sa, a, b, vms, local_sr, netw)
        phase('refusals')

        task = value(A.Async.host.evacuate(sa, hb, 'OpaqueRef:NULL', '0'))
        rec = wait_task(A, sa, task, 180)
        phase('evacuated B (Async)')
        t.ok(rec['status'] == 'success' and float(rec['progress']) == 1.0,
             'Async host.evacuate of B succeeds, progress 1.0',
             (rec['status'], rec['progress'], rec['error_info']))
        all_on(t, A, sa, vms, uuids, a, nodes[0], nodes[1], True, 'evacuate B')
        t.eq(value(A.host.get_enabled(sa, hb)), True, 'B is still enabled')
        t.eq(value(A.host.get_vms_which_prevent_evacuation(sa, hb)), {},
             'nothing prevents B\'s evacuation any more')

        xe_evacuate(t, xe_exe, a, A, sa, value(A.host.get_uuid(sa, ha)))
        phase('evacuated A (xe)')
        all_on(t, A, sa, vms, uuids, b, nodes[1], nodes[0], True, 'xe host-evacuate A')


        counters(t, hosts, vms, uuids, A, sa)
        report_downtimes(t, hosts)
        phase('counters checked')
        eject(t, A, sa, a, b)
        phase('B ejected')
        declare_dead(t, binary, net, etcd, A, sa, a, hosts)
        phase('C declared dead')
    except Exception as exc:  # a crash of the test is a failure, with its reason
        import traceback
        t.ok(False, 'test raised %s' % type(exc).__name__, traceback.format_exc())
    finally:
        for h in hosts:
            h.kill_all()
        if etcd:
            etcd.stop_all()
        net.close()
        for h in hosts:
            h.cleanup()
        shutil.rmtree(root, ignore_errors=True)
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
