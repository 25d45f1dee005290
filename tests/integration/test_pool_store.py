"""tests/integration/test_pool_store.py - two vesseld on one pool store in etcd.

A 3-member etcd cluster on a loopback address of the test's own (fixed
ports, temporary directories), vesseld A (--store etcd) and vesseld B (--store etcd
--pool-member) on the same prefix, both with the sim backend. Checks: an
object made through one is read through the other; event.from on B sees A's
change (latency printed, not asserted); concurrent conflicting writes
through both lose no update and never start a VM twice; killing the etcd
leader changes nothing; losing quorum makes writes fail with a XenAPI error
and leaves no half-written change; writes work again once quorum returns.
Every process started here is killed by its pid at the end.

usage: test_pool_store.py VESSELD
"""
import ctypes
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import base64

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT_PASSWORD, Tap, Vesseld, error, value, wait_for  # noqa: E402

ETCD = '/usr/bin/etcd'
LEASE_TTL_S = 6  # vesseld's default --lease-ttl


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def own_loopback():
    """An address in 127.64.0.0/10 that only this test uses (the pid, which no
    concurrent test shares, spread over three octets): etcd's fixed ports on it
    can meet neither another test's etcd nor an ephemeral port some other
    process takes on 127.0.0.1 between a port's probe and etcd's bind."""
    pid = os.getpid()
    return '127.%d.%d.%d' % (64 + (pid >> 16) % 64, (pid >> 8) & 255, pid & 255)


def pool_https(k):
    """Host @k's HTTPS listener and host.address at a fixed port of the test's
    own loopback address (a host's address must be known before it starts, so
    it cannot be an ephemeral port): ('ADDR:PORT', vesseld arguments)."""
    addr = '%s:%d' % (own_loopback(), 24430 + k)
    return addr, ['--tls-listen', addr, '--address', addr]


def die_with_parent():
    # PR_SET_PDEATHSIG = 1: an etcd never outlives a crashed test
    ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGKILL)


class Etcd:
    """A 3-member cluster; members are killed and restarted by index."""

    def __init__(self, root, n=3, addrs=None, wraps=None):
        """@addrs: each member's address (default: the test's own loopback
        address; members in namespaces have addresses of their own); @wraps:
        each member's command prefix (e.g. ip netns exec NS)."""
        self.root = root
        self.n = n
        self.addrs = addrs or [own_loopback()] * n
        self.wraps = wraps or [[]] * n
        self.client = [23790 + i for i in range(n)]
        self.peer = [23800 + i for i in range(n)]
        self.procs = [None] * n
        self.cluster = ','.join('m%d=%s' % (i, self.peer_url(i)) for i in range(n))

    def url(self, i):
        return 'http://%s:%d' % (self.addrs[i], self.client[i])

    def peer_url(self, i):
        return 'http://%s:%d' % (self.addrs[i], self.peer[i])

    def endpoints(self):
        return ','.join(self.url(i) for i in range(self.n))

    def start(self, i):
        d = os.path.join(self.root, 'm%d' % i)
        os.makedirs(d, exist_ok=True)
        log = open(os.path.join(d, 'etcd.log'), 'a')
        self.procs[i] = subprocess.Popen(
            self.wraps[i] +
            [ETCD, '--name', 'm%d' % i, '--data-dir', os.path.join(d, 'data'),
             '--listen-client-urls', self.url(i), '--advertise-client-urls', self.url(i),
             '--listen-peer-urls', self.peer_url(i),
             '--initial-advertise-peer-urls', self.peer_url(i),
             '--initial-cluster', self.cluster, '--initial-cluster-state', 'new',
             '--initial-cluster-token', 'vessel-it-%d' % os.getpid(),
             # a host's first start writes its objects in one transaction
             '--max-txn-ops', '4096'],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)

    def kill(self, i):
        p = self.procs[i]
        if p and p.poll() is None:
            p.kill()
            p.wait()
        self.procs[i] = None

    def call(self, i, path, body, timeout=3):
        req = urllib.request.Request(self.url(i) + path, data=json.dumps(body).encode())
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())

    def status(self, i):
        try:
            return self.call(i, '/v3/maintenance/status', {})
        except (OSError, ValueError):
            return None

    def leader(self):
        """Index of the member that is leader, or None."""
        ids = {}
        for i in range(self.n):
            if self.procs[i]:
                st = self.status(i)
                if st:
                    ids[st['header']['member_id']] = i
                    lead = st.get('leader')
                    if lead in ids:
                        return ids[lead]
        for i in range(self.n):
            st = self.procs[i] and self.status(i)
            if st and st.get('leader') in ids:
                return ids[st['leader']]
        return None

    def writable(self):
        """A linearisable write through any live member succeeds."""
        key = base64.b64encode(b'/vessel-it-health').decode()
        for i in range(self.n):
            if self.procs[i]:
                try:
                    r = self.call(i, '/v3/kv/put', {'key': key, 'value': key}, timeout=5)
                    if 'header' in r:
                        return True
                except (OSError, ValueError):
                    pass
        return False

    def stop_all(self):
        for i in range(self.n):
            self.kill(i)


def wait_task(sess, api, task, timeout=60):
    def finished():
        st = value(api.task.get_status(sess, task))
        return st if st != 'pending' else None
    status = wait_for(finished, timeout)
    err = value(api.task.get_error_info(sess, task))
    return status, err


def inventory_uuid(vesseld):
    with open(os.path.join(vesseld.dir, 'data', 'inventory')) as f:
        for line in f:
            if line.startswith('INSTALLATION_UUID='):
                return line.split('=', 1)[1].strip().strip("'")
    return None


def check_identity(t, a, b, A, sa):
    """B (--pool-member) has its own host record, PIFs on the pool's networks
    and its own local SR; the pool and its master stay A's."""
    hosts = value(A.host.get_all_records(sa))
    ua, ub = inventory_uuid(a), inventory_uuid(b)
    by_uuid = {h['uuid']: ref for ref, h in hosts.items()}
    t.ok(len(hosts) == 2 and ua in by_uuid and ub in by_uuid and ua != ub,
         'two hosts, each the one its data directory\'s inventory names (%s)'
         % sorted(by_uuid))
    ha, hb = by_uuid.get(ua), by_uuid.get(ub)
    pools = value(A.pool.get_all(sa))
    t.ok(len(pools) == 1 and value(A.pool.get_master(sa, pools[0])) == ha,
         'one pool, its master still A')
    pifs = value(A.PIF.get_all_records(sa)).values()
    nets_a = {p['network'] for p in pifs if p['host'] == ha}
    nets_b = {p['network'] for p in pifs if p['host'] == hb}
    t.eq(nets_b, nets_a, 'B\'s PIFs are on the networks of A\'s bridges (none made twice)')
    local = {}
    for pbd in value(A.PBD.get_all_records(sa)).values():
        sr = value(A.SR.get_record(sa, pbd['SR']))
        if sr['other_config'].get('vessel-local') == 'true':
            local.setdefault(pbd['host'], []).append(pbd['SR'])
    t.ok(len(local.get(ha, [])) == 1 and len(local.get(hb, [])) == 1 and
         local[ha] != local[hb], 'each host has its own local SR, plugged on it')
    t.eq(len([v for v in value(A.VM.get_all_records(sa)).values()
              if v['is_control_domain']]), 2, 'a control domain per host')
    b.stop()
    b.start()
    t.eq(sorted(value(A.host.get_all(sa))), sorted([ha, hb]),
         'B restarted is the same host (no third host record)')


def main():
    binary = sys.argv[1]
    t = Tap()
    if not os.access(ETCD, os.X_OK):
        print('1..0 # SKIP %s is not installed' % ETCD)
        return 0
    root = tempfile.mkdtemp(prefix='vessel-it-etcd-')
    etcd = Etcd(root)
    a = b = None
    try:
        for i in range(3):
            etcd.start(i)
        t.ok(wait_for(etcd.writable, 30), 'a 3-member etcd cluster answers')
        common = ['--backend', 'sim', '--store', 'etcd', '--etcd-endpoints', etcd.endpoints(),
                  '--etcd-prefix', '/vessel/it-%d' % os.getpid(), '--metrics-period', '3600']
        a = Vesseld(binary, extra=common).start()
        b = Vesseld(binary, extra=common + ['--pool-member']).start()
        A, B = a.proxy(), b.proxy()
        sa, sb = a.login(), b.local_login()  # B is a member: HOST_IS_SLAVE

        # ---- an object made through A is read through B
        tmpl = value(A.VM.get_by_name_label(sa, 'Other install media'))[0]
        vm = value(A.VM.clone(sa, tmpl, 'made-on-a'))
        value(A.VM.set_is_a_template(sa, vm, False))
        t.eq(wait_for(lambda: B.VM.get_name_label(sb, vm).get('Value') == 'made-on-a', 20) and
             value(B.VM.get_name_label(sb, vm)), 'made-on-a', 'a VM cloned through A is read through B')
        t.eq(wait_for(lambda: value(B.VM.get_is_a_template(sb, vm)) is False, 20) and
             value(B.VM.get_record(sb, vm)), value(A.VM.get_record(sa, vm)),
             'with every field as A has it')
        uuid = value(A.VM.get_uuid(sa, vm))
        t.eq(value(B.VM.get_by_uuid(sb, uuid)), vm, 'B finds it by uuid')

        # ---- each vesseld is its own host of the one pool
        check_identity(t, a, b, A, sa)
        B = b.proxy()  # restarted: a new port

        # ---- event.from on B sees A's changes
        token = value(getattr(B.event, 'from')(sb, ['vm'], '', 0.0))['token']
        latencies = []
        seen_all = True
        for i in range(10):
            got = {}

            def poll(tok=token):
                r = value(getattr(b.proxy().event, 'from')(sb, ['vm'], tok, 30.0))
                got['at'] = time.time()
                got['r'] = r
            th = threading.Thread(target=poll)
            th.start()
            time.sleep(0.2)  # the poll is waiting (only makes the measure fair)
            value(A.VM.set_name_label(sa, vm, 'event-%d' % i))
            replied = time.time()
            th.join(35)
            r = got.get('r')
            names = [e['snapshot']['name_label'] for e in (r['events'] if r else [])
                     if e['ref'] == vm and e['operation'] == 'mod']
            seen_all = seen_all and ('event-%d' % i) in names
            if r:
                latencies.append(got['at'] - replied)
                token = r['token']
        t.ok(seen_all, 'event.from on B reports each change made through A')
        print('# event propagation A -> B after A replied: p50 %.1f ms, max %.1f ms (%d samples;'
              ' negative: B reported before A\'s reply arrived)' %
              (statistics.median(latencies) * 1000, max(latencies) * 1000, len(latencies)))
        t.ok(token.split(',')[0].isdigit() and int(token.split(',')[0]) > 0,
             'the event token is an etcd revision', token)

        # ---- concurrent read-modify-writes through both lose no update
        errors = []

        def add_keys(api, sess, who, n):
            for k in range(n):
                r = api.VM.add_to_other_config(sess, vm, '%s-%d' % (who, k), 'v')
                if error(r):
                    errors.append(error(r))
        ths = [threading.Thread(target=add_keys, args=(x.proxy(), s, '%s%d' % (name, j), 10))
               for (x, s, name) in ((a, sa, 'a'), (b, sb, 'b')) for j in range(2)]
        for th in ths:
            th.start()
        for th in ths:
            th.join(120)
        t.eq(errors, [], 'concurrent VM.add_to_other_config through A and B all succeed')
        want = sorted('%s%d-%d' % (n, j, k) for n in 'ab' for j in range(2) for k in range(10))

        def keys(api, sess):
            oc = value(api.VM.get_other_config(sess, vm))
            return sorted(k for k in oc if k[0] in 'ab' and '-' in k)
        t.eq(wait_for(lambda: keys(A, sa) == want, 20) and keys(A, sa), want,
             'every key is there through A: no update lost')
        t.eq(wait_for(lambda: keys(B, sb) == want, 20) and keys(B, sb), want,
             'and through B')

        # ---- current_operations stays an atomic claim across both
        starts = 0
        doubles = 0
        for round_ in range(3):
            tasks = []
            for (api, sess) in ((A, sa), (B, sb)):
                tasks.append((api, sess, value(api.Async.VM.start(sess, vm, False, False))))
            results = [wait_task(sess, api, task) for (api, sess, task) in tasks]
            ok = [i for i, (st, _) in enumerate(results) if st == 'success']
            failed = [err for (st, err) in results if st != 'success']
            starts += len(ok)
            doubles += len(ok) > 1
            if len(ok) != 1 or any(e and e[0] not in ('OTHER_OPERATION_IN_PROGRESS',
                                                      'VM_BAD_POWER_STATE', 'TOO_BUSY')
                                   for e in failed):
                print('# round %d: %r' % (round_, results))
            winner_api, winner_sess, _ = tasks[ok[0]] if ok else (A, sa, None)
            value(winner_api.VM.hard_shutdown(winner_sess, vm))
            wait_for(lambda: value(A.VM.get_power_state(sa, vm)) == 'Halted' and
                     value(B.VM.get_power_state(sb, vm)) == 'Halted', 20)
        t.eq((starts, doubles), (3, 0), 'two Async.VM.start at once through A and B: one runs, '
             'the other is refused (3 rounds)')

        # ---- a name change racing a destroy: both hosts agree the VM is gone
        victim = value(A.VM.clone(sa, tmpl, 'victim'))
        wait_for(lambda: not error(B.VM.get_uuid(sb, victim)), 20)
        res = {}
        t1 = threading.Thread(target=lambda: res.__setitem__(
            'name', a.proxy().VM.set_name_label(sa, victim, 'renamed')))
        def destroy():
            # A batch of several objects that lost a compare-and-swap answers
            # TOO_BUSY, nothing written: the client tries again.
            for _ in range(20):
                r = b.proxy().VM.destroy(sb, victim)
                res.setdefault('destroy_tries', []).append(r)
                if error(r) != ['TOO_BUSY']:
                    break
            res['destroy'] = r
        t2 = threading.Thread(target=destroy)
        t1.start()
        t2.start()
        t1.join(60)
        t2.join(60)
        t.ok(not error(res.get('destroy')), 'VM.destroy through B while A renames it (TOO_BUSY '
             'answers: %d)' % (len(res.get('destroy_tries', [])) - 1), res)
        gone = wait_for(lambda: error(A.VM.get_uuid(sa, victim)) and error(B.VM.get_uuid(sb, victim)), 20)
        t.ok(gone and gone[0] == 'HANDLE_INVALID', 'afterwards neither host has it (no rename '
             'resurrects it)', res)

        # ---- killing the etcd leader changes nothing visible
        leader = wait_for(etcd.leader, 10)
        t.ok(leader is not None, 'the cluster has a leader')
        etcd.kill(leader)
        value(A.VM.set_name_label(sa, vm, 'after-leader-died'))
        t.eq(wait_for(lambda: value(B.VM.get_name_label(sb, vm)) == 'after-leader-died', 30) and
             value(B.VM.get_name_label(sb, vm)), 'after-leader-died',
             'with one member killed, a write through A reaches B')
        value(B.VM.set_name_label(sb, vm, 'written-on-b'))
        t.eq(wait_for(lambda: value(A.VM.get_name_label(sa, vm)) == 'written-on-b', 30) and
             value(A.VM.get_name_label(sa, vm)), 'written-on-b', 'and one through B reaches A')

        # ---- losing quorum: writes fail cleanly, reads go on
        second = wait_for(etcd.leader, 20)
        t.ok(second is not None and second != leader, 'the two left elected a new leader')
        etcd.kill(second)  # the last member is a follower without a leader
        before = value(A.VM.get_record(sa, vm))
        r = A.VM.set_name_label(sa, vm, 'during-outage')
        e = error(r)
        t.ok(e is not None and e[0] == 'INTERNAL_ERROR' and 'etcd' in ' '.join(e),
             'without quorum a write fails with INTERNAL_ERROR naming etcd', r)
        print('# %r' % (e,))
        r = A.VM.clone(sa, tmpl, 'clone-during-outage')
        t.ok(error(r) is not None, 'a clone (several objects in one commit) fails too', r)
        t.eq(value(A.VM.get_name_label(sa, vm)), before['name_label'],
             'reads still answer, with the record as it was')

        # ---- a host cut off from etcd for 2/3 of its lease may name a master
        # that is no more, itself included: it takes no login
        def login_error(api):
            return error(api.session.login_with_password('root', ROOT_PASSWORD, '1.0', 'it'))
        t.eq(wait_for(lambda: login_error(A) == ['HOST_IN_EMERGENCY_MODE'], LEASE_TTL_S + 10) and
             login_error(A), ['HOST_IN_EMERGENCY_MODE'],
             'cut off from etcd, the master answers a login HOST_IN_EMERGENCY_MODE')
        # B's lease renews on its own schedule: its silence may start later
        t.eq(wait_for(lambda: login_error(B) == ['HOST_IN_EMERGENCY_MODE'], 5) and
             login_error(B), ['HOST_IN_EMERGENCY_MODE'],
             'and so does the member, rather than naming a master it cannot vouch for')

        # ---- quorum returns: writes work again, nothing half-written appeared
        etcd.start(leader)
        etcd.start(second)
        t.ok(wait_for(etcd.writable, 60), 'the cluster has quorum again')
        ok = wait_for(lambda: not error(A.VM.set_name_label(sa, vm, 'after-quorum')), 30)
        t.ok(ok, 'a write through A succeeds again')
        t.ok(wait_for(lambda: login_error(A) is None, 30), 'and A takes logins again')
        # each host is back once its own lease renews (a second apart at most)
        to_a = ['HOST_IS_SLAVE', value(A.host.get_address(sa, value(
            A.pool.get_master(sa, value(A.pool.get_all(sa))[0]))))]
        t.eq(wait_for(lambda: login_error(B) == to_a, 30) and login_error(B), to_a,
             'B answers HOST_IS_SLAVE again, naming A')
        t.eq(wait_for(lambda: value(B.VM.get_name_label(sb, vm)) == 'after-quorum', 30) and
             value(B.VM.get_name_label(sb, vm)), 'after-quorum', 'and B sees it')
        for (api, sess, who) in ((A, sa, 'A'), (B, sb, 'B')):
            t.eq(value(api.VM.get_by_name_label(sess, 'clone-during-outage')), [],
                 'the clone that failed during the outage exists nowhere (%s)' % who)
        oc = value(B.VM.get_other_config(sb, vm))
        t.eq(sorted(k for k in oc if k[0] in 'ab' and '-' in k), want,
             'earlier writes all survived the outage')
        t.eq(a.stop(), 0, 'A stops cleanly')
        t.eq(b.stop(), 0, 'B stops cleanly')
    except Exception as ex:  # a crash is a failed test, not a hang
        t.ok(False, 'unexpected exception', repr(ex))
        for v in (a, b):
            if v:
                with open(v.log_path) as f:
                    for line in f.read().splitlines()[-15:]:
                        print('#   ' + line)
    finally:
        for v in (a, b):
            if v:
                v.cleanup()
        etcd.stop_all()
        if not os.environ.get('VESSEL_KEEP'):
            shutil.rmtree(root, ignore_errors=True)
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
