#!/usr/bin/env python3
"""bench/guests/migrate_net_bench.py - live migration across hosts: VM.pool_migrate
against two bare QEMUs over the same link (issue 15's bench).

Two hosts in network namespaces on one pool link (tests/integration/pool_netns.py),
an etcd member in a third, a shared file SR; the guests' network spans both hosts
(each host's bridge has a port on the pool's bridge: test_migrate_pool.guest_links).
Two guests run side by side for the whole run, the same test guest (pc, TCG,
256 MiB, a 16 MiB disk over NBD from `vhd serve`, a virtio-net NIC, the ticker of
migrate_bench.py writing a counter to its disk every 100 ms):
  - vesseld: a VM migrated A<->B with VM.pool_migrate (sync call through A);
  - bare: two qemu-system-x86_64, one in each host's namespace, migrating it to
    the other's pool address with the same TLS credentials (the host certificate
    vesseld made, tls-creds-x509, verify-peer, tls-hostname) and capability
    (late-block-activate); both on one `vhd serve` (no hand-over: QEMU alone);
    migrate_bench.Bare with the namespaces' addresses.
Reps alternate, vesseld then bare, so that both see the same load (the machine is
shared). The test's namespace pings both guests every 10 ms. Per migration:
QEMU's downtime (query-migrate on the source); the guest's pause (the source's
STOP event .. the destination's RESUME, both by QEMU's own clocks, for both
peers; vesseld's steps after QEMU's completion are printed too, from its
vm.migrate_handover line); the pings lost (the longest time between the
sending of two answered pings); the longest time between two ping replies (that and how
late the guest answers on a fresh TCG QEMU); the longest tick gap; the total time
(the API call; bare: starting the destination .. it runs). Medians, and the
ratio vesseld/bare (goal: downtime <= 1.2x).
Needs root (namespaces) and etcd. Usage: migrate_net_bench.py BUILD_DIR [REPS]
"""
import math
import os
import re
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.join(HERE, '..', '..')
sys.path.insert(0, os.path.join(TOP, 'tests', 'integration'))
sys.path.insert(0, HERE)
from harness import Vesseld, console_type, value, wait_for  # noqa: E402
from migrate_bench import ARGS, TICKER, Bare, TickWatch  # noqa: E402
from pool_netns import PoolNet, ip, usable  # noqa: E402
from test_migrate import make_vm  # noqa: E402
from test_migrate_pool import PORT, Pinger, guest_links, log_lines, vt100  # noqa: E402
from test_pool_store import ETCD, Etcd, inventory_uuid  # noqa: E402

COLUMNS = ('QEMU downtime', 'guest paused', 'pings lost', 'longest reply gap',
           'longest tick gap', 'total time')


# vm.migrate_handover's steps: the destination has the whole state; the
# source's qemu killed and its disk servers gone; the destination runs and the
# record moved (its answer)
HANDOVER = ('received', 'source_stopped', 'destination_running', 'guest_paused')


# the pings sent until this long after the migration's end count: those lost
# at its end are seen only through the first answered after them (the bare
# peer's end is its `cont`, vesseld's its answer, after the record moved)
PING_AFTER = 1.0


def run_states(host, event):
    """When QEMU sent each of @host's @event (STOP, RESUME) events, by its own
    clock (seconds): vesseld logs them (xenops.run_state)."""
    return [int(re.search(r'qemu_time_us=(\d+)', ln).group(1)) / 1e6
            for ln in log_lines(host, 'xenops.run_state') if ' event=%s ' % event in ln]


def ticks_gap(watches, t0, t1):
    times = sorted(t for w in watches for t in w.times if t0 - 0.5 <= t <= t1 + 2.0)
    return max((b - a for a, b in zip(times, times[1:])), default=float('nan'))


def cert_name(path):
    """The common name of the certificate at @path (what tls-hostname must say)."""
    subject = ssl._ssl._test_decode_cert(path)['subject']
    return [v for rdn in subject for k, v in rdn if k == 'commonName'][0]


def pool(build, guest, root, net, nodes, etcd):
    common = ['--backend', 'qemu', '--guest-kernel-dir', guest, '--store', 'etcd',
              '--etcd-endpoints', etcd.endpoints(), '--etcd-prefix', '/vessel/migbench',
              '--metrics-period', '3600']
    hosts = []
    for i, n in enumerate(nodes):
        d = Vesseld(os.path.join(build, 'vesseld'),
                    extra=common + ['--tls-listen', '%s:%d' % (n.addr, PORT),
                                    '--address', '%s:%d' % (n.addr, PORT)] +
                    (['--pool-member'] if i else []), addr=n.addr, wrap=n.wrap())
        hosts.append(d)
        if i:
            os.makedirs(os.path.join(d.dir, 'data'), mode=0o700)
            shutil.copy(os.path.join(hosts[0].dir, 'data', 'ptoken'),
                        os.path.join(d.dir, 'data', 'ptoken'))
        d.start(timeout=60)
    return hosts


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(TOP, 'build'))
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    why = usable() or (None if os.access(ETCD, os.X_OK) else ETCD + ' is not installed')
    if why:
        print('migrate_net_bench: skipped: ' + why)
        return 0
    guest = os.path.join(build, 'bench-guests', 'guest')
    subprocess.run(['sh', os.path.join(TOP, 'tests', 'guest', 'build-guest.sh'), guest],
                   check=True, capture_output=True)
    root = tempfile.mkdtemp(prefix='vessel-mignetbench-')
    bridge = 'vbrmb%d' % (os.getpid() % 100000)
    net = PoolNet()
    etcd, hosts, outers, pingers, bare, watches = None, [], [], [], None, []
    rows = {'vesseld': [], 'bare': []}
    steps = []
    try:
        member = net.add('e0')
        nodes = [net.add('ha'), net.add('hb')]
        outers = guest_links(net, nodes, bridge)
        for n in nodes:   # the bare QEMUs' taps, on the same bridges
            ip('-n', n.ns, 'tuntap', 'add', 'bt0', 'mode', 'tap')
            ip('-n', n.ns, 'link', 'set', 'bt0', 'master', bridge)
            ip('-n', n.ns, 'link', 'set', 'bt0', 'up')
        etcd = Etcd(root, 1, addrs=[member.addr], wraps=[member.wrap()])
        etcd.start(0)
        if not wait_for(etcd.writable, 30):
            raise RuntimeError('etcd did not start')
        hosts = pool(build, guest, root, net, nodes, etcd)
        a, b = hosts
        A, sa = a.proxy(), a.login()
        refs = {h['uuid']: ref for ref, h in value(A.host.get_all_records(sa)).items()}
        a.host_ref, b.host_ref = refs[inventory_uuid(a)], refs[inventory_uuid(b)]
        shared = os.path.join(root, 'shared-sr')
        sr = value(A.SR.create(sa, b.host_ref, {'path': shared}, '0', 'shared', '', 'file',
                               'user', True, {}))
        wait_for(lambda: all(value(A.PBD.get_currently_attached(sa, p))
                             for p in value(A.SR.get_PBDs(sa, sr))), 30)
        netw = value(A.network.create(sa, {'name_label': 'bench', 'name_description': '',
                                           'MTU': '1500', 'other_config': {},
                                           'bridge': bridge}))
        vm, _ = make_vm(A, sa, guest, sr, netw)
        vm_ip, bare_ip = '%s.200' % net.prefix, '%s.201' % net.prefix
        value(A.VM.set_PV_args(sa, vm, ARGS + ' vessel.ip=%s/24' % vm_ip))
        uuid = value(A.VM.get_uuid(sa, vm))
        value(A.VM.start_on(sa, vm, a.host_ref, False, False))
        logs = [os.path.join(h.dir, 'data', 'console', uuid + '.log') for h in hosts]
        watches = [TickWatch(p) for p in logs]
        for w in watches:
            w.start()
        if not wait_for(lambda: os.path.exists(logs[0]) and
                        'VESSEL-GUEST-UP' in open(logs[0]).read(), 120):
            raise RuntimeError('the guest did not boot on A')
        console_type(a, sa, vt100(A, sa, vm), 'run ' + TICKER, 'TICK 1', 30)

        tls = os.path.join(a.dir, 'data', 'tls')
        for f in ('cert.pem', 'key.pem'):
            shutil.copy(os.path.join(tls, f), os.path.join(root, f))
        ends = [{'wrap': n.wrap(), 'addr': n.addr, 'tap': 'bt0'} for n in nodes]
        bare = Bare(build, guest, root, ends, args=ARGS + ' vessel.ip=%s/24' % bare_ip,
                    tls_hostname=cert_name(os.path.join(root, 'cert.pem'))).start()
        pingers = [Pinger(vm_ip).start(), Pinger(bare_ip).start()]
        if not wait_for(lambda: all(p.count() > 20 for p in pingers), 60):
            raise RuntimeError('the guests do not answer pings')
        time.sleep(2)
        where = 0
        for _ in range(reps):
            src, dst = hosts[where], hosts[1 - where]
            handed = len(log_lines(src, 'vm.migrate_handover'))
            stops, resumes = len(run_states(src, 'STOP')), len(run_states(dst, 'RESUME'))
            t0 = time.monotonic()
            value(A.VM.pool_migrate(sa, vm, dst.host_ref, {}))
            t1 = time.monotonic()
            time.sleep(2.5)
            sent = log_lines(src, 'vm.migrate_sent')[-1]
            hand = log_lines(src, 'vm.migrate_handover')[handed]
            steps.append([int(re.search(r' %s_ms=(\d+)' % k, hand).group(1)) for k in HANDOVER])
            paused = run_states(dst, 'RESUME')[resumes] - run_states(src, 'STOP')[stops]
            lost, _, late, _, _ = pingers[0].gap(t0 - 0.5, t1 + PING_AFTER)
            rows['vesseld'].append((int(re.search(r'downtime_ms=(\d+)', sent).group(1)),
                                    paused * 1000,
                                    lost * 1000, late * 1000, ticks_gap(watches, t0, t1) * 1000,
                                    (t1 - t0) * 1000))
            where = 1 - where
            row = bare.migrate()
            time.sleep(2.5)
            lost, _, late, _, _ = pingers[1].gap(row[4] - 0.5, row[5] + PING_AFTER)
            rows['bare'].append((row[0], row[3], lost * 1000, late * 1000,
                                 bare.watch.gap(row[4], row[5]) * 1000, row[2]))
    finally:
        for p in pingers:
            p.close()
        for w in watches:
            w.stop = True
        if bare:
            bare.close()
        for h in hosts:
            h.kill_all()
        if etcd:
            etcd.stop_all()
        for o in outers:
            ip('link', 'del', o, check=False)
        net.close()
        for h in hosts:
            h.cleanup()
        shutil.rmtree(root, ignore_errors=True)
    v, b = rows['vesseld'], rows['bare']
    print('live migration across two hosts (namespaces on one link), %d each, alternating, '
          'medians (ms); guest: pc TCG 256 MiB, ticker every 100 ms, pinged every 10 ms' % reps)
    print('%-20s %15s %10s %8s' % ('', 'VM.pool_migrate', 'bare qemu', 'ratio'))
    for k, name in enumerate(COLUMNS):
        mv, mb = statistics.median(r[k] for r in v), statistics.median(r[k] for r in b)
        print('%-20s %15.0f %10.0f %7.2fx' % (name, mv, mb, mv / mb if mb else float('nan')))
    print('vesseld\'s hand-over after QEMU\'s completion (%s), medians (ms): %s' % (
        ', '.join(HANDOVER), ', '.join('%.0f' % statistics.median(s[k] for s in steps)
                                       for k in range(len(HANDOVER)))))
    print('per migration (%s):' % ', '.join(COLUMNS))
    # a gap with no ticks or replies in its window is infinite: printed as such
    def row(r):
        return tuple(round(x) if math.isfinite(x) else x for x in r)
    print('  vesseld %s' % [row(r) for r in v])
    print('  bare    %s' % [row(r) for r in b])
    return 0


if __name__ == '__main__':
    sys.exit(main())
