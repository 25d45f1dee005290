#!/usr/bin/env python3
"""tests/integration/test_migrate_pool.py - live migration between two hosts of a pool.

A 3-member etcd and two hosts A and B, each etcd member and each host in its own
network namespace (pool_netns.py: tap names vif<domid>.<n> are per namespace and
each vesseld counts domids from 1), qemu backend; a file SR with shared=true whose
directory both hosts see (SR.create through A: a PBD per host). The test guest
(test_migrate.py's) writes counter i to sector i of its disk on that SR (dd
conv=fsync) and only then prints "TICK i", every 100 ms, and has a VIF on a network
whose bridge each host makes in its own namespace. Checked:
  - the hidden VM.pool_migrate_receive_begin refuses any session but another
    host's slave session;
  - VM.pool_migrate and VM.assert_can_migrate refuse a halted VM
    (VM_BAD_POWER_STATE), a disabled destination (HOST_DISABLED) and a VM with a
    disk on a local SR (VM_REQUIRES_SR [vm, sr]);
  - migrations A->B->A... through A (forwarded to the VM's host), ten at least and
    more while 20 s last: each succeeds; afterwards the VM is Running, resident_on the
    destination with a new domid, its consoles name the destination's address; one
    qemu runs for it across both hosts and it is in the destination's namespace;
    its tap is on the destination's bridge of the network and its old tap on the
    source is gone; the guest ticks on in the destination's console; a poller
    through A sees only Running throughout;
  - `xe vm-migrate vm=<name> host=<uuid> live=true` and `host-uuid=<uuid>` through A
    move it there and back;
  - a migration cancelled (task.cancel through A) while QEMU sends leaves the VM
    running on its source, resident_on there, in its old domain, one qemu, no
    standby disk server on the destination, ticking on;
  - at the end (the VM shut down): the counters of both hosts' console logs put
    together never repeat (the guest never ran twice) and are 1..N without a gap,
    each host's stretch goes up by one, and every counter reported as written is
    in its sector of the VDI file.
Measured, not asserted: QEMU's downtime and the hand-over's share of each
migration (the source host's log lines vm.migrate_sent and vm.migrate_handover),
printed as TAP comments.

usage: test_migrate_pool.py VESSELD VHD GUEST_DIR XE
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT_PASSWORD, Tap, Vesseld, console_log, console_type, error, value, wait_for  # noqa: E402
from pool_netns import PoolNet, usable  # noqa: E402
from test_migrate import FILL, TICKER, make_vm  # noqa: E402
from test_pool_store import ETCD, Etcd, inventory_uuid  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MIB = 1024 * 1024
# the ten back and forth at least, then more while time allows
MIN_MIGRATIONS = 10
BUDGET_S = 20
PORT = 8443  # each host's HTTPS port, in its own namespace


def ticks(d, uuid):
    return [int(n) for n in re.findall(r'TICK (\d+)', console_log(d, uuid))]


def last_tick(d, uuid):
    t = ticks(d, uuid)
    return t[-1] if t else 0


def qemus(uuid):
    out = subprocess.run(['pgrep', '-f', 'qemu-system-x86_64.*-uuid %s' % uuid],
                         capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def netns_of(pid):
    return subprocess.run(['ip', 'netns', 'identify', str(pid)], capture_output=True,
                          text=True).stdout.strip()


def master_of(node, link):
    r = subprocess.run(['ip', '-n', node.ns, '-o', 'link', 'show', link], capture_output=True,
                       text=True).stdout
    m = re.search(r' master (\S+)', r)
    return m.group(1) if m else None


def log_lines(d, word):
    with open(d.log_path, errors='replace') as f:
        return [ln for ln in f if word in ln]


def vt100(api, sess, vm):
    return [c for c in value(api.VM.get_consoles(sess, vm))
            if value(api.console.get_protocol(sess, c)) == 'vt100'][0]


def wait_task(api, sess, task, timeout=120):
    wait_for(lambda: value(api.task.get_status(sess, task)) not in ('pending', 'cancelling'),
             timeout)
    return value(api.task.get_record(sess, task))


def refusals(t, A, sa, vm, hb, local_sr):
    """A disabled destination and a disk on a local SR, the VM running on A."""
    value(A.host.disable(sa, hb))
    r = A.VM.pool_migrate(sa, vm, hb, {})
    t.eq(error(r)[:2], ['HOST_DISABLED', hb], 'pool_migrate to a disabled host: HOST_DISABLED')
    value(A.host.enable(sa, hb))
    vdi = value(A.VDI.create(sa, {'name_label': 'local', 'name_description': '', 'SR': local_sr,
                                  'virtual_size': str(4 * MIB), 'type': 'user',
                                  'sharable': False, 'read_only': False, 'other_config': {}}))
    vbd = value(A.VBD.create(sa, {'VM': vm, 'VDI': vdi, 'userdevice': '3', 'bootable': False,
                                  'mode': 'RW', 'type': 'Disk', 'unpluggable': True,
                                  'empty': False, 'other_config': {},
                                  'qos_algorithm_type': '', 'qos_algorithm_params': {}}))
    r = A.VM.pool_migrate(sa, vm, hb, {})
    t.eq(error(r), ['VM_REQUIRES_SR', vm, local_sr],
         'pool_migrate of a VM with a disk on a local SR: VM_REQUIRES_SR [vm, sr]')
    r = A.VM.assert_can_migrate(sa, vm, {'host': hb}, True, {}, {}, {}, {})
    t.eq(error(r)[:1], ['VM_REQUIRES_SR'], 'assert_can_migrate says the same')
    value(A.VBD.destroy(sa, vbd))
    value(A.VDI.destroy(sa, vdi))
    r = A.VM.assert_can_migrate(sa, vm, {'host': hb}, True, {}, {}, {}, {})
    t.eq(error(r), None, 'with its disks all on the shared SR: it can migrate to B')
    r = A.VM.pool_migrate_receive_begin(sa, vm, '', '')
    t.eq(error(r)[:1], ['OPERATION_NOT_ALLOWED'],
         'the internal VM.pool_migrate_receive_begin refuses a client\'s session')


class StatePoller(threading.Thread):
    """Reads the VM's power_state through A every 50 ms: any value but Running is noted."""

    def __init__(self, d, vm):
        super().__init__(daemon=True)
        self.s, self.sess, self.vm = d.proxy(), d.login(), vm
        self.seen, self.stop, self.reads = set(), False, 0

    def run(self):
        while not self.stop:
            r = self.s.VM.get_power_state(self.sess, self.vm)
            if r.get('Status') == 'Success':
                self.seen.add(r['Value'])
                self.reads += 1
            time.sleep(0.05)


def migrations(t, A, sa, vm, uuid, hosts, nodes, addrs, bridge):
    """A->B->A... MIN_MIGRATIONS, then on until BUDGET_S seconds; returns how many
    were made."""
    poller = StatePoller(hosts[0], vm)
    poller.start()
    done = 0
    t0 = time.monotonic()
    where = 0
    while time.monotonic() - t0 < BUDGET_S or done < MIN_MIGRATIONS:
        dest = 1 - where
        d = hosts[dest]
        n = last_tick(d, uuid)
        old_tap = 'vif%s.0' % value(A.VM.get_domid(sa, vm))
        r = A.VM.pool_migrate(sa, vm, d.host_ref, {})
        if not t.ok(error(r) is None, 'migration %d (%s -> %s) succeeds' %
                    (done + 1, 'AB'[where], 'AB'[dest]), error(r)):
            break
        done += 1
        rec = value(A.VM.get_record(sa, vm))
        consoles = [value(A.console.get_location(sa, c)) for c in rec['consoles']]
        t.ok(rec['power_state'] == 'Running' and rec['resident_on'] == d.host_ref,
             'migration %d: Running, resident_on %s, domid %s' % (done, 'AB'[dest], rec['domid']),
             rec)
        t.ok(len(consoles) == 2 and all(addrs[dest] in c for c in consoles),
             'migration %d: its consoles are the destination\'s' % done, consoles)
        q = qemus(uuid)
        t.ok(len(q) == 1 and netns_of(q[0]) == nodes[dest].ns,
             'migration %d: one qemu for it, in %s\'s namespace' % (done, 'AB'[dest]),
             [(p, netns_of(p)) for p in q])
        tap = 'vif%s.0' % rec['domid']
        t.ok(master_of(nodes[dest], tap) == bridge and master_of(nodes[where], old_tap) is None,
             'migration %d: its tap %s is on %s\'s bridge %s; %s on %s is gone' %
             (done, tap, 'AB'[dest], bridge, old_tap, 'AB'[where]))
        t.ok(wait_for(lambda: last_tick(d, uuid) > n + 2, 30),
             'migration %d: the guest ticks on on %s (%d)' % (done, 'AB'[dest], last_tick(d, uuid)))
        where = dest
    poller.stop = True
    poller.join()
    t.ok(poller.reads > 0 and poller.seen == {'Running'},
         'the record showed only Running during the migrations (%d reads)' % poller.reads,
         poller.seen)
    return done, where


def xe_checks(t, xe_exe, a, A, sa, vm, uuid, hosts):
    """xe vm-migrate with host= and host-uuid=, there and back."""
    for key in ('host', 'host-uuid'):
        where = 1 if value(A.VM.get_resident_on(sa, vm)) == hosts[1].host_ref else 0
        d = hosts[1 - where]
        n = last_tick(d, uuid)
        x = subprocess.run([xe_exe, '-s', a.addr, '-p', str(a.port), '--nossl', '-u', 'root',
                            '-pw', ROOT_PASSWORD, 'vm-migrate', 'vm=migrating',
                            '%s=%s' % (key, value(A.host.get_uuid(sa, d.host_ref))),
                            'live=true'], capture_output=True, text=True, timeout=120)
        t.ok(x.returncode == 0 and value(A.VM.get_resident_on(sa, vm)) == d.host_ref,
             'xe vm-migrate vm=migrating %s=<uuid> live=true moves it to %s' %
             (key, 'AB'[1 - where]), x.stdout + x.stderr)
        t.ok(wait_for(lambda: last_tick(d, uuid) > n + 2, 30), 'and it ticks on there')


def cancel_check(t, A, sa, vm, uuid, hosts, nodes, where):
    src, dst = hosts[where], hosts[1 - where]
    out = console_type(src, sa, vt100(A, sa, vm), 'run ' + FILL, 'FILLED', 120)
    t.ok('FILLED' in out, 'the guest fills 160 MiB of its memory', out[-200:])
    cancelled = None
    for attempt in range(5):   # a migration may finish before the cancel lands
        domid = value(A.VM.get_domid(sa, vm))
        before = qemus(uuid)
        task = value(A.Async.VM.pool_migrate(sa, vm, dst.host_ref, {}))
        wait_for(lambda: float(value(A.task.get_progress(sa, task))) > 0.06 or
                 value(A.task.get_status(sa, task)) != 'pending', 60, 0.02)
        value(A.task.cancel(sa, task))
        rec = wait_task(A, sa, task)
        if rec['status'] == 'success':
            src, dst = dst, src
            where = 1 - where
            continue
        cancelled = rec
        break
    if not t.ok(cancelled is not None, 'a migration is cancelled while it runs (in 5 tries)'):
        return
    t.ok(cancelled['status'] == 'cancelled' or cancelled['error_info'][:1] == ['TASK_CANCELLED'],
         'the cancelled task ends cancelled', cancelled)
    rec = value(A.VM.get_record(sa, vm))
    t.ok(rec['power_state'] == 'Running' and rec['resident_on'] == src.host_ref and
         rec['domid'] == domid, 'after the cancel the VM runs on its source, in its old domain',
         rec)
    t.ok(qemus(uuid) == before and netns_of(before[0]) == nodes[where].ns,
         'its qemu is the one from before; the destination\'s is gone')
    standby = os.path.join(dst.dir, 'data', 'run', 'disks')
    t.ok(wait_for(lambda: not [f for f in os.listdir(standby) if f.startswith('in-')]
                  if os.path.isdir(standby) else True, 10),
         'no standby disk server is left on the destination')
    n = last_tick(src, uuid)
    t.ok(wait_for(lambda: last_tick(src, uuid) > n + 3, 30),
         'the guest ticks on on its source after the cancel')


def disk_checks(t, A, sa, vm, uuid, vdi, hosts, shared, vhd_tool, root):
    per_host = [ticks(h, uuid) for h in hosts]
    value(A.VM.hard_shutdown(sa, vm))
    seen = sorted(per_host[0] + per_host[1])
    t.ok(len(seen) > 100, 'the guest reported %d counters on the two consoles' % len(seen))
    t.ok(len(seen) == len(set(seen)), 'no counter was reported twice: the guest never ran twice',
         [i for i in set(seen) if seen.count(i) > 1][:10])
    t.ok(seen == list(range(1, len(seen) + 1)), 'the counters are 1..%d without a gap' % len(seen))
    t.ok(all(b > a for p in per_host for a, b in zip(p, p[1:])),
         'on each host the counters only go up')
    raw = os.path.join(root, 'ticks.raw')
    src = os.path.join(shared, value(A.VDI.get_uuid(sa, vdi)) + '.vhd')
    subprocess.run([vhd_tool, 'convert', '--to', 'raw', src, raw], check=True,
                   capture_output=True)
    with open(raw, 'rb') as f:
        disk = f.read()
    missing = [i for i in seen if disk[i * 512:i * 512 + 8] != b'%08d' % i]
    t.ok(not missing, 'every counter reported as written is in its sector on the disk',
         missing[:20])


def report_downtimes(t, hosts):
    sent = [ln for h in hosts for ln in log_lines(h, 'vm.migrate_sent')]
    hand = [ln for h in hosts for ln in log_lines(h, 'vm.migrate_handover')]
    down = [int(m) for ln in sent for m in re.findall(r'downtime_ms=(\d+)', ln)]
    total = [int(m) for ln in sent for m in re.findall(r'total_ms=(\d+)', ln)]
    over = [sum(int(x) for x in re.findall(r'_ms=(\d+)', ln)) for ln in hand]
    if down:
        print('# qemu downtime ms: min %d median %d max %d (%d migrations)' %
              (min(down), sorted(down)[len(down) // 2], max(down), len(down)))
        print('# qemu total ms: median %d' % sorted(total)[len(total) // 2])
    if over:
        print('# hand-over after qemu (wait+source gone+destination running) ms: min %d '
              'median %d max %d' % (min(over), sorted(over)[len(over) // 2], max(over)))


def main():
    binary, vhd_tool, guest, xe_exe = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    t = Tap()
    why = usable() or (None if os.access(ETCD, os.X_OK) else ETCD + ' is not installed')
    if why:
        print('1..0 # SKIP ' + why)
        return 0
    r = subprocess.run(['sh', os.path.join(HERE, '..', 'guest', 'build-guest.sh'), guest],
                       capture_output=True, text=True)
    if r.returncode != 0:
        t.ok(False, 'build the test guest', r.stderr)
        return t.done()
    root = tempfile.mkdtemp(prefix='vessel-it-migpool-')
    shared = os.path.join(root, 'shared-sr')
    bridge = 'vbrmp%d' % (os.getpid() % 100000)
    net = PoolNet()
    etcd = None
    hosts = []
    try:
        members = [net.add('e%d' % i) for i in range(3)]
        nodes = [net.add('ha'), net.add('hb')]
        etcd = Etcd(root, 3, addrs=[m.addr for m in members], wraps=[m.wrap() for m in members])
        for i in range(3):
            etcd.start(i)
        t.ok(wait_for(etcd.writable, 30), 'a 3-member etcd, one namespace per member, answers')
        common = ['--backend', 'qemu', '--guest-kernel-dir', guest, '--store', 'etcd',
                  '--etcd-endpoints', etcd.endpoints(), '--etcd-prefix', '/vessel/migpool',
                  '--metrics-period', '3600']

        def https(node):
            return ['--tls-listen', '%s:%d' % (node.addr, PORT),
                    '--address', '%s:%d' % (node.addr, PORT)]
        a = Vesseld(binary, extra=common + https(nodes[0]), addr=nodes[0].addr,
                    wrap=nodes[0].wrap())
        hosts.append(a)
        a.start(timeout=60)
        b = Vesseld(binary, extra=common + https(nodes[1]) + ['--pool-member'],
                    addr=nodes[1].addr, wrap=nodes[1].wrap())
        hosts.append(b)
        os.makedirs(os.path.join(b.dir, 'data'), mode=0o700)
        shutil.copy(os.path.join(a.dir, 'data', 'ptoken'), os.path.join(b.dir, 'data', 'ptoken'))
        b.start(timeout=60)
        A = a.proxy()
        sa = a.login()
        refs = {h['uuid']: ref for ref, h in value(A.host.get_all_records(sa)).items()}
        a.host_ref, b.host_ref = refs[inventory_uuid(a)], refs[inventory_uuid(b)]
        ha, hb = a.host_ref, b.host_ref
        t.eq(len(refs), 2, 'two hosts of one pool, each in its own namespace')

        sr = value(A.SR.create(sa, hb, {'path': shared}, '0', 'shared', '', 'file', 'user',
                               True, {}))
        t.ok(wait_for(lambda: len(value(A.SR.get_PBDs(sa, sr))) == 2 and
                      all(value(A.PBD.get_currently_attached(sa, p))
                          for p in value(A.SR.get_PBDs(sa, sr))), 30),
             'a shared file SR with a plugged PBD on each host')
        srs = value(A.SR.get_all_records(sa))
        local_sr = [ref for ref, v in srs.items() if v['other_config'].get('vessel-local') ==
                    'true' and any(value(A.PBD.get_host(sa, p)) == ha for p in v['PBDs'])][0]
        netw = value(A.network.create(sa, {'name_label': 'migration', 'name_description': '',
                                           'MTU': '1500', 'other_config': {},
                                           'bridge': bridge}))
        vm, vdi = make_vm(A, sa, guest, sr, netw)
        uuid = value(A.VM.get_uuid(sa, vm))
        r = A.VM.pool_migrate(sa, vm, hb, {})
        t.eq(error(r)[:1], ['VM_BAD_POWER_STATE'], 'pool_migrate of a halted VM: VM_BAD_POWER_STATE')
        value(A.VM.start_on(sa, vm, ha, False, False))
        up = wait_for(lambda: 'VESSEL-GUEST-UP' in console_log(a, uuid), 120)
        if not t.ok(up, 'the guest boots on A', console_log(a, uuid)[-1000:]):
            return t.done()
        refusals(t, A, sa, vm, hb, local_sr)
        console_type(a, sa, vt100(A, sa, vm), 'run ' + TICKER, 'TICK 1', 30)
        t.ok(wait_for(lambda: last_tick(a, uuid) >= 5, 30), 'the guest ticks on A')
        addrs = ['%s:%d' % (n.addr, PORT) for n in nodes]
        done, where = migrations(t, A, sa, vm, uuid, hosts, nodes, addrs, bridge)
        print('# %d migrations (at least %d, on for %d s)' % (done, MIN_MIGRATIONS, BUDGET_S))
        xe_checks(t, xe_exe, a, A, sa, vm, uuid, hosts)
        cancel_check(t, A, sa, vm, uuid, hosts, nodes, value(A.VM.get_resident_on(sa, vm)) == hb
                     and 1 or 0)
        disk_checks(t, A, sa, vm, uuid, vdi, hosts, shared, vhd_tool, root)
        report_downtimes(t, hosts)
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
