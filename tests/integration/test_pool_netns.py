"""tests/integration/test_pool_netns.py - a pool store over a real network.

Three etcd members and two vesseld (sim backend), each in its own network
namespace on one pool bridge (tests/integration/pool_netns.py), so that a
failure can be a pulled cable rather than a killed process: connections then
hang instead of being refused, and only the store's own timeouts end them.
Checks: each vesseld is its own host of the one pool; a change through one is
seen through the other; with host B's cable pulled, A keeps working and B,
once its cable is back, catches up with what A wrote meanwhile and writes
again; one etcd member's power lost changes nothing; two members' cables
pulled (no quorum) make a write fail with a XenAPI error in bounded time,
with nothing half-written, and writes work again once they are back.

usage: test_pool_netns.py VESSELD
"""
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Tap, Vesseld, value, wait_for  # noqa: E402
from pool_netns import PoolNet, usable  # noqa: E402
from test_pool_store import ETCD, Etcd  # noqa: E402


def names(api, sess):
    return {r['name_label'] for r in value(api.VM.get_all_records(sess)).values()
            if not r['is_control_domain'] and not r['is_a_template']}


def make_vm(api, sess, label):
    tmpl = value(api.VM.get_by_name_label(sess, 'Other install media'))[0]
    vm = value(api.VM.clone(sess, tmpl, label))
    value(api.VM.set_is_a_template(sess, vm, False))
    return vm


def main():
    binary = sys.argv[1]
    t = Tap()
    why = usable() or (None if os.access(ETCD, os.X_OK) else ETCD + ' is not installed')
    if why:
        print('1..0 # SKIP ' + why)
        return 0
    root = tempfile.mkdtemp(prefix='vessel-it-netns-')
    net = PoolNet()
    etcd = None
    hosts = []
    try:
        members = [net.add('e%d' % i) for i in range(3)]
        ha, hb = net.add('ha'), net.add('hb')
        etcd = Etcd(root, 3, addrs=[m.addr for m in members], wraps=[m.wrap() for m in members])
        for i in range(3):
            etcd.start(i)
        t.ok(wait_for(etcd.writable, 30), 'a 3-member etcd, one namespace per member, answers')
        common = ['--backend', 'sim', '--store', 'etcd', '--etcd-endpoints', etcd.endpoints(),
                  '--etcd-prefix', '/vessel/netns', '--metrics-period', '3600']
        a = Vesseld(binary, extra=common, addr=ha.addr, wrap=ha.wrap())
        hosts.append(a)
        a.start(timeout=60)
        b = Vesseld(binary, extra=common + ['--pool-member'], addr=hb.addr, wrap=hb.wrap())
        hosts.append(b)
        b.start(timeout=60)
        A, B = a.proxy(), b.proxy()
        sa, sb = a.login(), b.local_login()  # B is a member: HOST_IS_SLAVE
        t.eq(len(value(A.host.get_all(sa))), 2,
             'two hosts of one pool, each in its own namespace')

        make_vm(A, sa, 'before-cut')
        t.ok(wait_for(lambda: 'before-cut' in names(B, sb), 20),
             'a VM made through A is read through B')

        # ---- B's cable pulled: A goes on; B catches up once it is back
        net.cut(hb)
        t0 = time.monotonic()
        during = make_vm(A, sa, 'during-cut')
        t.ok(value(A.VM.get_name_label(sa, during)) == 'during-cut',
             'with B cut off, writes through A go on (%.1f s)' % (time.monotonic() - t0))
        time.sleep(3)  # longer than a keep-alive probe: B's watch sees a dead link
        net.mend(hb)
        t.ok(wait_for(lambda: 'during-cut' in names(B, sb), 60),
             'B, its cable back, has what A wrote meanwhile')
        vb = make_vm(B, sb, 'after-mend')
        t.ok(wait_for(lambda: 'after-mend' in names(A, sa), 20) and
             value(A.VM.get_name_label(sa, vb)) == 'after-mend',
             'and writes through B reach A again')

        # ---- one member's power lost: nothing changes
        net.kill_node(members[0])
        etcd.kill(0)  # reaps it
        ok = all(make_vm(X, s, 'one-member-down-%d' % i) for i, (X, s) in
                 enumerate(((A, sa), (B, sb))))
        t.ok(ok and wait_for(lambda: {'one-member-down-0', 'one-member-down-1'}
                             <= names(A, sa) and {'one-member-down-0', 'one-member-down-1'}
                             <= names(B, sb), 20),
             'one etcd member lost: writes through both hosts still work and are seen by both')

        # ---- two cables pulled: no quorum, a clear error, nothing half-written
        net.cut(members[1])
        before = names(A, sa)
        t0 = time.monotonic()
        tmpl = value(A.VM.get_by_name_label(sa, 'Other install media'))[0]
        r = A.VM.clone(sa, tmpl, 'no-quorum')
        took = time.monotonic() - t0
        t.ok(r['Status'] == 'Failure',
             'without quorum a write fails with a XenAPI error after %.1f s: %s'
             % (took, r.get('ErrorDescription')))
        etcd.start(0)  # its data dir survived: it rejoins
        net.mend(members[1])
        t.ok(wait_for(etcd.writable, 60), 'quorum back')
        t.eq(names(A, sa) - before, set(), 'the failed clone left nothing behind')
        make_vm(A, sa, 'quorum-back')
        t.ok(wait_for(lambda: 'quorum-back' in names(B, sb), 30),
             'writes work again and reach the other host')
    finally:
        for h in hosts:
            h.kill_all()
        if etcd:
            etcd.stop_all()
        net.close()
        for h in hosts:
            shutil.rmtree(h.dir, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
