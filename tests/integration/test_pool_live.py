#!/usr/bin/env python3
"""tests/integration/test_pool_live.py - host leases, the master, the HA messages.

A 3-member etcd cluster on the test's own loopback address
(test_pool_store.Etcd), host A
(--store etcd) and members B and C (--pool-member), sim backend, each with
--address ADDR:PORT of its HTTPS listener (test_pool_store.pool_https) and a 5 s
lease.

Checks: every host is live; login on a member answers HOST_IS_SLAVE with the
master's address, slave_local_login stays local; designate_new_master moves
the master and back, emergency_transition_to_master takes it; the HA
messages and their errors. Failures (a host's power lost, a pulled cable,
fencing, HA restarts, the master's death) are test_pool_ha_netns.py's, with
hosts in network namespaces. Every process started here is killed by its pid.

usage: test_pool_live.py VESSELD
"""
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT_PASSWORD, Tap, Vesseld, error, value, wait_for  # noqa: E402
from test_pool_store import ETCD, Etcd, inventory_uuid, pool_https  # noqa: E402

TTL = 5


def host_by_uuid(api, sess):
    return {h['uuid']: ref for ref, h in value(api.host.get_all_records(sess)).items()}


def live_of(api, sess, host):
    return value(api.host_metrics.get_live(sess, value(api.host.get_metrics(sess, host))))


def start_host(binary, extra, k, data_dir=None):
    """Host number @k, its HTTPS listener at pool_https(k)."""
    v = Vesseld(binary, data_dir=data_dir, extra=extra + pool_https(k)[1])
    return v.start(timeout=40)


def make_vm(api, sess, name):
    tmpl = value(api.VM.get_by_name_label(sess, 'Other install media'))[0]
    vm = value(api.VM.clone(sess, tmpl, name))
    value(api.VM.set_is_a_template(sess, vm, False))
    return vm


def check_masters(t, hosts, by, addrs, names):
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
            t.eq(error(r), ['HOST_IS_SLAVE', addrs[mname]],
                 'login on member %s: HOST_IS_SLAVE with %s\'s address' % (n.upper(), mname.upper()))
    return mname


def main():
    binary = sys.argv[1]
    t = Tap()
    if not os.access(ETCD, os.X_OK):
        print('1..0 # SKIP %s is not installed' % ETCD)
        return 0
    root = tempfile.mkdtemp(prefix='vessel-it-etcd-')
    etcd = Etcd(root)
    hosts = {}
    dirs = []
    try:
        for i in range(3):
            etcd.start(i)
        t.ok(wait_for(etcd.writable, 30), 'a 3-member etcd cluster answers')
        prefix = '/vessel/it-live-%d' % os.getpid()
        common = ['--store', 'etcd', '--etcd-prefix', prefix, '--metrics-period', '3600',
                  '--lease-ttl', str(TTL), '--etcd-endpoints', etcd.endpoints(),
                  '--backend', 'sim']
        ports = {n: k for k, n in enumerate('abc')}   # pool_https(k)
        addrs = {n: pool_https(ports[n])[0] for n in 'abc'}
        extra = {'a': common, 'b': common + ['--pool-member'], 'c': common + ['--pool-member']}
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
             sorted(addrs.values()), 'host.address is --address')
        pool = value(A.pool.get_all(sa))[0]
        t.eq(value(A.pool.get_master(sa, pool)), by['a'], 'the first host is master')
        check_masters(t, hosts, by, addrs, 'abc')
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
        check_masters(t, hosts, by, addrs, 'abc')
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
        check_masters(t, hosts, by, addrs, 'abc')
        t.eq(error(C.pool.designate_new_master(sc, by['a'])), None, 'and A again')
        t.eq(value(A.pool.get_master(sa, pool)), by['a'], 'A is pool.master')

        # ---- the HA messages
        t.eq(error(A.pool.disable_ha(sa)), ['HA_NOT_ENABLED'], 'disable_ha with HA off: HA_NOT_ENABLED')
        t.eq(error(A.pool.set_ha_host_failures_to_tolerate(sa, pool, '-1')),
             ['INVALID_VALUE', 'ha_host_failures_to_tolerate', '-1'],
             'a negative number of failures: INVALID_VALUE')
        vm = make_vm(A, sa, 'protected')
        t.eq(error(A.VM.set_ha_restart_priority(sa, vm, 'always')),
             ['INVALID_VALUE', 'ha_restart_priority', 'always'], 'an unknown priority: INVALID_VALUE')
        t.eq(error(A.VM.set_ha_restart_priority(sa, vm, 'restart')), None, 'priority restart')
        t.eq(value(A.VM.get_ha_restart_priority(sa, vm)), 'restart', 'and it reads back')
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

        t.eq(error(A.pool.disable_ha(sa)), None, 'pool.disable_ha')
    finally:
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
