#!/usr/bin/env python3
"""tests/integration/test_pool_live.py - host leases, the master, HA fencing.

A 3-member etcd cluster on 127.0.0.1 (test_pool_store.Etcd), host A
(--store etcd) and members B and C (--pool-member), each with --address
127.0.0.1:PORT of its HTTPS listener and a 5 s lease. C reaches etcd only
through a TCP proxy this test owns, runs the qemu backend and the test guest
(tests/guest/build-guest.sh); A and B are sim hosts.

Checks: every host is live; login on a member answers HOST_IS_SLAVE with the
master's address, slave_local_login stays local; designate_new_master moves
the master and back, emergency_transition_to_master takes it; SIGKILL of B makes it not live once its lease ends (and
it is live again when restarted); SIGKILL of the master makes another host
pool.master, where login works; the HA messages' errors; with HA on, cutting
C from etcd (the proxy dies) kills C's guest before C's live key expires
(fencing), C starts nothing again, and the master restarts C's protected VM
on itself; a short cut (back before the lease ends) leaves the fenced guest
running again exactly once; with HA off a cut only makes C not live, and C is
live again once back. Times are
printed, not asserted. Every process started here is killed by its pid.

usage: test_pool_live.py VESSELD GUEST_DIR
"""
import base64
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT_PASSWORD, Tap, Vesseld, console_log, error, value, wait_for  # noqa: E402
from test_pool_store import ETCD, Etcd, free_port, inventory_uuid  # noqa: E402

TTL = 5
MARKER = 'VESSEL-GUEST-UP'


class Proxy:
    """Forwards each listening port to one etcd member. cut() closes the
    listeners and every connection at once, as a link going down would
    leave the host behind it without etcd; restore() listens again on the
    same ports."""

    def __init__(self, targets):
        self.targets = targets
        self.ports = [0] * len(targets)
        self.listeners = []
        self.conns = []
        self.lock = threading.Lock()
        self.dead = True
        self.restore()

    def endpoints(self):
        return ','.join('http://127.0.0.1:%d' % p for p in self.ports)

    def restore(self):
        with self.lock:
            self.dead = False
            self.listeners = []
            for i, target in enumerate(self.targets):
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(('127.0.0.1', self.ports[i]))
                s.listen(64)
                self.ports[i] = s.getsockname()[1]
                self.listeners.append(s)
                threading.Thread(target=self.accept, args=(s, target), daemon=True).start()

    def accept(self, listener, target):
        while True:
            try:
                c, _ = listener.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(target, timeout=2)
            except OSError:
                c.close()
                continue
            with self.lock:
                if self.dead:
                    c.close()
                    u.close()
                    return
                self.conns += [c, u]
            threading.Thread(target=self.pump, args=(c, u), daemon=True).start()

    def pump(self, a, b):
        try:
            while True:
                r, _, _ = select.select([a, b], [], [], 0.5)
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        return
                    (b if s is a else a).sendall(data)
        except (OSError, ValueError):
            pass
        finally:
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass

    def cut(self):
        with self.lock:
            self.dead = True
            for s in self.listeners + self.conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self.listeners, self.conns = [], []


def etcd_has(etcd, key):
    """Whether @key exists, read through any member."""
    k = base64.b64encode(key.encode()).decode()
    for i in range(etcd.n):
        try:
            r = etcd.call(i, '/v3/kv/range', {'key': k}, timeout=2)
            return bool(r.get('kvs'))
        except (OSError, ValueError):
            continue
    return None


def host_by_uuid(api, sess):
    return {h['uuid']: ref for ref, h in value(api.host.get_all_records(sess)).items()}


def live_of(api, sess, host):
    return value(api.host_metrics.get_live(sess, value(api.host.get_metrics(sess, host))))


def start_host(binary, extra, port, data_dir=None):
    v = Vesseld(binary, data_dir=data_dir,
                extra=extra + ['--tls-listen', '127.0.0.1:%d' % port,
                               '--address', '127.0.0.1:%d' % port])
    return v.start(timeout=40)


def make_guest(api, sess, guest, name):
    tmpl = value(api.VM.get_by_name_label(sess, 'Direct kernel boot'))[0]
    vm = value(api.VM.clone(sess, tmpl, name))
    value(api.VM.set_is_a_template(sess, vm, False))
    value(api.VM.set_PV_kernel(sess, vm, os.path.join(guest, 'vmlinux')))
    value(api.VM.set_PV_ramdisk(sess, vm, os.path.join(guest, 'initramfs.cpio')))
    value(api.VM.set_PV_args(sess, vm, 'console=ttyS0 quiet panic=-1'))
    value(api.VM.add_to_platform(sess, vm, 'accel', 'tcg'))
    return vm


def qemu_pids(uuid):
    out = subprocess.run(['pgrep', '-f', 'qemu-system-x86_64.*' + uuid],
                         capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def check_masters(t, hosts, by, ports, names):
    """Login on each member answers HOST_IS_SLAVE with the master's address."""
    A = hosts['a'].proxy()
    sa = hosts['a'].local_login()
    master = value(A.pool.get_master(sa, value(A.pool.get_all(sa))[0]))
    mname = [n for n in names if by[n] == master][0]
    for n in names:
        r = hosts[n].proxy().session.login_with_password('root', ROOT_PASSWORD, '1.0', 'it')
        if n == mname:
            t.eq(error(r), None, 'login on the master %s works' % n.upper())
        else:
            t.eq(error(r), ['HOST_IS_SLAVE', '127.0.0.1:%d' % ports[mname]],
                 'login on member %s: HOST_IS_SLAVE with %s\'s address' % (n.upper(), mname.upper()))
    return mname


def main():
    binary, guest = sys.argv[1], os.path.abspath(sys.argv[2])
    t = Tap()
    if not os.access(ETCD, os.X_OK):
        print('1..0 # SKIP %s is not installed' % ETCD)
        return 0
    r = subprocess.run(['sh', os.path.join(os.path.dirname(__file__), '..', 'guest',
                                           'build-guest.sh'), guest],
                       capture_output=True, text=True)
    if r.returncode != 0:
        t.ok(False, 'build the test guest', r.stderr)
        return t.done()
    root = tempfile.mkdtemp(prefix='vessel-it-etcd-')
    etcd = Etcd(root)
    proxy = None
    hosts = {}
    dirs = []
    try:
        for i in range(3):
            etcd.start(i)
        t.ok(wait_for(etcd.writable, 30), 'a 3-member etcd cluster answers')
        prefix = '/vessel/it-live-%d' % os.getpid()
        proxy = Proxy([('127.0.0.1', p) for p in etcd.client])
        common = ['--store', 'etcd', '--etcd-prefix', prefix, '--metrics-period', '3600',
                  '--lease-ttl', str(TTL), '--guest-kernel-dir', guest]
        direct = ['--etcd-endpoints', etcd.endpoints()]
        ports = {n: free_port() for n in 'abc'}
        extra = {'a': common + direct + ['--backend', 'sim'],
                 'b': common + direct + ['--backend', 'sim', '--pool-member'],
                 'c': common + ['--etcd-endpoints', proxy.endpoints(), '--backend', 'qemu',
                                '--pool-member']}
        for n in 'abc':
            hosts[n] = start_host(binary, extra[n], ports[n])
            dirs.append(hosts[n].dir)
        A = hosts['a'].proxy()
        sa = hosts['a'].login()
        by_uuid = host_by_uuid(A, sa)
        by = {n: by_uuid.get(inventory_uuid(hosts[n])) for n in 'abc'}
        t.ok(all(by.values()) and len(set(by.values())) == 3, 'three hosts in the pool')
        t.ok(wait_for(lambda: all(live_of(A, sa, by[n]) for n in 'abc'), 15),
             'every host is live (host_metrics.live)')
        t.eq(sorted(value(A.host.get_address(sa, by[n])) for n in 'abc'),
             sorted('127.0.0.1:%d' % ports[n] for n in 'abc'), 'host.address is --address')
        pool = value(A.pool.get_all(sa))[0]
        t.eq(value(A.pool.get_master(sa, pool)), by['a'], 'the first host is master')
        check_masters(t, hosts, by, ports, 'abc')
        sb = hosts['b'].local_login()
        t.ok(sb.startswith('OpaqueRef:'), 'slave_local_login_with_password on a member works')
        r = hosts['b'].unix_proxy().session.login_with_password('root', '', '1.0', 'xe')
        t.eq(error(r), None, 'login on a member\'s local socket stays local (xe there works)')

        # ---- a planned hand-over and back
        t0 = time.time()
        r = A.pool.designate_new_master(sa, by['b'])
        t.eq(error(r), None, 'pool.designate_new_master(B)')
        print('# designate_new_master returned in %.2f s' % (time.time() - t0))
        t.eq(value(A.pool.get_master(sa, pool)), by['b'], 'B is pool.master')
        check_masters(t, hosts, by, ports, 'abc')
        B = hosts['b'].proxy()
        t.eq(error(B.pool.designate_new_master(sb, by['b'])), None, 'designating the master is a no-op')
        t.eq(error(B.pool.designate_new_master(sb, by['a'])), None, 'and back to A')
        t.eq(value(A.pool.get_master(sa, pool)), by['a'], 'A is pool.master again')
        t.eq(error(A.pool.designate_new_master(sa, 'OpaqueRef:nonsense')),
             ['HANDLE_INVALID', 'host', 'OpaqueRef:nonsense'], 'designating no host: HANDLE_INVALID')
        t.eq(value(A.pool.recover_slaves(sa)) and sorted(value(A.pool.recover_slaves(sa))),
             sorted([by['b'], by['c']]), 'pool.recover_slaves on the master: the live members')

        C = hosts['c'].proxy()
        sc = hosts['c'].local_login()
        t.eq(value(C.pool.recover_slaves(sc)), [], 'pool.recover_slaves on a member: nothing')
        t.eq(error(C.pool.emergency_transition_to_master(sc)), None,
             'pool.emergency_transition_to_master on member C')
        t.ok(wait_for(lambda: value(A.pool.get_master(sa, pool)) == by['c'], 10),
             'C is pool.master')
        check_masters(t, hosts, by, ports, 'abc')
        t.eq(error(C.pool.designate_new_master(sc, by['a'])), None, 'and A again')
        t.eq(value(A.pool.get_master(sa, pool)), by['a'], 'A is pool.master')

        # ---- a member dies: not live once its lease ends
        t0 = time.time()
        hosts['b'].kill()
        gone = wait_for(lambda: not live_of(A, sa, by['b']), TTL + 15, 0.05)
        t.ok(gone, 'SIGKILL of B: B is not live after its lease')
        print('# B not live %.2f s after SIGKILL (lease TTL %d s)' % (time.time() - t0, TTL))
        hosts['b'] = start_host(binary, extra['b'], ports['b'], data_dir=hosts['b'].dir)
        t.ok(wait_for(lambda: live_of(A, sa, by['b']), 15), 'B restarted is live again')

        # ---- the master dies: another host takes over
        t0 = time.time()
        hosts['a'].kill()
        B = hosts['b'].proxy()

        def new_master():
            m = B.pool.get_master(sb, pool)
            return value(m) if not error(m) and value(m) != by['a'] else None
        m = wait_for(new_master, TTL + 15, 0.05)
        took = time.time() - t0
        t.ok(m in (by['b'], by['c']), 'SIGKILL of the master A: B or C is pool.master')
        print('# new master %.2f s after SIGKILL of the master (lease TTL %d s)' % (took, TTL))
        name = 'b' if m == by['b'] else 'c'
        r = hosts[name].proxy().session.login_with_password('root', ROOT_PASSWORD, '1.0', 'it')
        t.eq(error(r), None, 'login on the new master %s works' % name.upper())
        t.ok(wait_for(lambda: not live_of(B, sb, by['a']), 10), 'A is not live')
        hosts['a'] = start_host(binary, extra['a'], ports['a'], data_dir=hosts['a'].dir)
        t.ok(wait_for(lambda: live_of(B, sb, by['a']), 15), 'A restarted is live, a member now')
        r = hosts['a'].proxy().session.login_with_password('root', ROOT_PASSWORD, '1.0', 'it')
        t.eq(error(r), ['HOST_IS_SLAVE', '127.0.0.1:%d' % ports[name]],
             'login on A: HOST_IS_SLAVE with the new master\'s address')
        sm = value(hosts[name].proxy().session.login_with_password('root', ROOT_PASSWORD, '1.0',
                                                                    'it'))
        t.eq(error(hosts[name].proxy().pool.designate_new_master(sm, by['a'])), None,
             'designate_new_master(A) moves it back')
        A = hosts['a'].proxy()
        sa = value(A.session.login_with_password('root', ROOT_PASSWORD, '1.0', 'it'))

        # ---- the HA messages
        t.eq(error(A.pool.disable_ha(sa)), ['HA_NOT_ENABLED'], 'disable_ha with HA off: HA_NOT_ENABLED')
        t.eq(error(A.pool.set_ha_host_failures_to_tolerate(sa, pool, '-1')),
             ['INVALID_VALUE', 'ha_host_failures_to_tolerate', '-1'],
             'a negative number of failures: INVALID_VALUE')
        vm = make_guest(A, sa, guest, 'protected')
        t.eq(error(A.VM.set_ha_restart_priority(sa, vm, 'always')),
             ['INVALID_VALUE', 'ha_restart_priority', 'always'], 'an unknown priority: INVALID_VALUE')
        t.eq(error(A.VM.set_ha_restart_priority(sa, vm, 'restart')), None, 'priority restart')
        # a guest that dies restarts where it ran: unless its host fenced it
        value(A.VM.set_actions_after_shutdown(sa, vm, 'restart'))
        value(A.VM.set_actions_after_crash(sa, vm, 'restart'))

        # ---- the guest on C; with HA off, a cut costs C its liveness, not its guest
        uuid = value(A.VM.get_uuid(sa, vm))
        t.eq(error(C.VM.start(sc, vm, False, False)), None, 'VM.start of the protected guest on C')
        t.ok(wait_for(lambda: MARKER in console_log(hosts['c'], uuid), 90),
             'the guest runs on C (its console marker)')
        t.eq(value(A.VM.get_resident_on(sa, vm)), by['c'], 'resident_on C')
        pids = qemu_pids(uuid)
        t.ok(len(pids) == 1, 'one qemu runs it')
        proxy.cut()
        t.ok(wait_for(lambda: not live_of(A, sa, by['c']), TTL + 15, 0.05),
             'HA off: C cut off from etcd is not live once its lease ends')
        time.sleep(1)
        t.eq(qemu_pids(uuid), pids, 'HA off: no fencing, C\'s guest runs on')
        t.eq(value(A.VM.get_power_state(sa, vm)), 'Running', 'and its VM stays Running')
        proxy.restore()
        t.ok(wait_for(lambda: live_of(A, sa, by['c']), 20),
             'C back on etcd: live again with a new lease')
        srs = value(A.SR.get_all(sa))
        t.eq(error(A.pool.enable_ha(sa, srs[:1], {})), None, 'pool.enable_ha')
        t.eq(error(A.pool.enable_ha(sa, [], {})), ['HA_IS_ENABLED'], 'again: HA_IS_ENABLED')
        t.eq(value(A.pool.get_ha_statefiles(sa, pool)), [], 'no state file: leases are the heartbeat')
        t.eq(error(A.pool.designate_new_master(sa, by['b'])), ['HA_IS_ENABLED'],
             'designate_new_master with HA on: HA_IS_ENABLED (as xapi)')
        n = value(A.pool.ha_compute_max_host_failures_to_tolerate(sa))
        t.ok(n == '2' or n == 2, 'ha_compute_max_host_failures_to_tolerate: 2 of 3 hosts', n)
        t.eq(error(A.pool.set_ha_host_failures_to_tolerate(sa, pool, '1')), None,
             'set_ha_host_failures_to_tolerate 1')
        t.eq(error(A.pool.ha_prevent_restarts_for(sa, '0')), None, 'ha_prevent_restarts_for 0')

        # ---- fencing: C cut off from etcd kills its guest before its lease ends
        t.eq(qemu_pids(uuid), pids, 'the guest still runs on C')
        key = '%s/live/%s' % (prefix, inventory_uuid(hosts['c']))
        t.ok(etcd_has(etcd, key), 'C\'s live key exists')
        events = {}

        def watch():
            t_end = time.time() + TTL + 20
            while time.time() < t_end and len(events) < 2:
                if 'qemu' not in events and not qemu_pids(uuid):
                    events['qemu'] = time.time()
                if 'key' not in events and etcd_has(etcd, key) is False:
                    events['key'] = time.time()
                time.sleep(0.02)
        w = threading.Thread(target=watch)
        t_cut = time.time()
        proxy.cut()
        w.start()
        w.join()
        t.ok('qemu' in events, 'fencing: C\'s guest is killed')
        t.ok('key' in events, 'C\'s lease ends')
        t.ok('qemu' in events and 'key' in events and events['qemu'] < events['key'],
             'the guest died before C\'s lease ended')
        if len(events) == 2:
            print('# cut at 0: guest killed at %.2f s, lease ended at %.2f s (TTL %d s, margin '
                  '%.2f s)' % (events['qemu'] - t_cut, events['key'] - t_cut, TTL,
                               events['key'] - events['qemu']))

        def restarted():
            rec = value(A.VM.get_record(sa, vm))
            return rec if rec['power_state'] == 'Running' and rec['resident_on'] == by['a'] else None
        rec = wait_for(restarted, 30, 0.05)
        t.ok(rec, 'the master restarts the protected VM on itself')
        if rec:
            print('# restarted on the master %.2f s after the cut' % (time.time() - t_cut))
        t.ok(not live_of(A, sa, by['c']), 'C is not live')
        time.sleep(1)
        t.eq(qemu_pids(uuid), [], 'C did not start the fenced guest again: it ran once at a time')

        # ---- a short cut: fenced, back before the lease ends (or just after)
        proxy.restore()
        t.ok(wait_for(lambda: live_of(A, sa, by['c']), 20), 'C back: live again')
        vm2 = make_guest(A, sa, guest, 'protected-2')
        value(A.VM.set_ha_restart_priority(sa, vm2, 'restart'))
        uuid2 = value(A.VM.get_uuid(sa, vm2))
        t.eq(error(C.VM.start(sc, vm2, False, False)), None, 'a second protected guest on C')
        t.ok(wait_for(lambda: len(qemu_pids(uuid2)) == 1, 30), 'it runs')
        proxy.cut()
        killed = wait_for(lambda: not qemu_pids(uuid2), TTL + 10, 0.02)
        proxy.restore()
        t.ok(killed, 'fenced')

        def settled():
            rec = value(A.VM.get_record(sa, vm2))
            return rec if rec['power_state'] == 'Running' else None
        rec = wait_for(settled, 30, 0.1)
        t.ok(rec and rec['resident_on'] in (by['a'], by['c']), 'the guest runs again')
        time.sleep(1)
        rec = value(A.VM.get_record(sa, vm2))
        where = 'C' if rec['resident_on'] == by['c'] else 'A'
        t.eq(len(qemu_pids(uuid2)), 1 if where == 'C' else 0,
             'once: on C when its lease survived the cut, else on the master only')
        print('# short cut: the guest runs again on %s (%s)' %
              (where, 'the lease was renewed in time' if where == 'C' else 'the lease ended'))
        t.eq(error(A.pool.disable_ha(sa)), None, 'pool.disable_ha')
    finally:
        if proxy:
            proxy.cut()
        for h in hosts.values():
            h.kill_all()
        if not os.environ.get('VESSEL_KEEP'):
            for d in dirs:
                shutil.rmtree(d, ignore_errors=True)
        etcd.stop_all()
        shutil.rmtree(root, ignore_errors=True)
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
