"""tests/integration/test_pool_join.py - pool.join and pool.eject.

A 3-member etcd cluster on the test's own loopback address
(test_pool_store.py's), host A started with --store etcd (HTTPS on an
ephemeral port), hosts B and C standalone on SQLite (C with an explicit
--store sqlite), all with the sim backend. Checks: refused joins (a wrong
password, no HTTPS at the address, a master on SQLite, a running VM on the
joiner, joining oneself) change nothing; B joins A through pool.join and C
through `xe pool-join`, each keeping its host uuid, PIFs, local SR with its
PBD and VDIs, and its halted VM, with A's secret; A then lists three hosts;
a VM that B starts stays running when C restarts (each vesseld reconciles
only its own VMs); pool.eject refuses a host with a running VM and the
master; host.disable/enable; host.destroy refuses a live host; pool.eject of
C returns C to a host of its own (its host uuid, local SR and VDIs, its VM,
which starts; login works) while A lists two hosts; C joins again without
being ejected by a stale mark; xe host-disable, host-enable and pool-eject
on the master. Every process started here is killed by its pid at the end.

usage: test_pool_join.py VESSELD XE
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT_PASSWORD, Tap, Vesseld, error, value, wait_for  # noqa: E402
from test_pool_store import ETCD, Etcd  # noqa: E402


def ready_lines(v):
    with open(v.log_path) as f:
        return re.findall(r'vesseld\.ready .*http_port=(\d+) .*https_port=(\d+) .*unix=(\S+)',
                          f.read())


def wait_restarted(v, before, timeout=60):
    """After pool.join/eject the same process executes itself again: wait
    for its next ready line and take the new ports from it."""
    if not wait_for(lambda: len(ready_lines(v)) > before, timeout):
        return False
    port, tls_port, unix = ready_lines(v)[-1]
    v.port, v.tls_port, v.unix = int(port), int(tls_port), unix
    return True


def one_line(text):
    return ' '.join(text.split())


def host_objects(api, sess, host):
    """host -> (uuid, PIF uuids, {local SR uuid: [VDI uuids]}, PBD uuids)."""
    rec = value(api.host.get_record(sess, host))
    pifs = sorted(value(api.PIF.get_uuid(sess, p)) for p in rec['PIFs'])
    srs, pbds = {}, []
    for pbd in rec['PBDs']:
        pr = value(api.PBD.get_record(sess, pbd))
        pbds.append(pr['uuid'])
        sr = value(api.SR.get_record(sess, pr['SR']))
        if not sr['shared']:
            srs[sr['uuid']] = sorted(value(api.VDI.get_uuid(sess, v)) for v in sr['VDIs'])
    return rec['uuid'], pifs, srs, sorted(pbds)


def by_uuid(api, sess, cls, uuid):
    r = getattr(api, cls).get_by_uuid(sess, uuid)
    return r.get('Value')


def make_halted_vm(api, sess, label):
    """A halted VM with one disk on the host's local SR: (vm uuid, vdi uuid)."""
    pool = value(api.pool.get_all(sess))[0]
    sr = value(api.pool.get_default_SR(sess, pool))
    tmpl = value(api.VM.get_by_name_label(sess, 'Direct kernel boot'))[0]
    vm = value(api.VM.clone(sess, tmpl, label))
    value(api.VM.set_is_a_template(sess, vm, False))
    vdi = value(api.VDI.create(sess, {'name_label': label + '-disk', 'name_description': '',
                                      'SR': sr, 'virtual_size': str(4 << 20), 'type': 'user',
                                      'sharable': False, 'read_only': False,
                                      'other_config': {}}))
    value(api.VBD.create(sess, {'VM': vm, 'VDI': vdi, 'userdevice': '0', 'bootable': True,
                                'mode': 'RW', 'type': 'Disk', 'empty': False,
                                'other_config': {}, 'qos_algorithm_type': '',
                                'qos_algorithm_params': {}}))
    return value(api.VM.get_uuid(sess, vm)), value(api.VDI.get_uuid(sess, vdi))


def main():
    binary, xe_exe = sys.argv[1], sys.argv[2]
    t = Tap()
    if not os.access(ETCD, os.X_OK):
        print('1..0 # SKIP %s is not installed' % ETCD)
        return 0
    root = tempfile.mkdtemp(prefix='vessel-it-join-')
    etcd = Etcd(root)
    a = b = c = None
    try:
        for i in range(3):
            etcd.start(i)
        t.ok(wait_for(etcd.writable, 30), 'a 3-member etcd cluster answers')
        sim = ['--backend', 'sim', '--metrics-period', '3600']
        a = Vesseld(binary, extra=sim + ['--store', 'etcd', '--etcd-endpoints', etcd.endpoints(),
                                         '--etcd-prefix', '/vessel/join-%d' % os.getpid()],
                    tls=True).start()
        b = Vesseld(binary, extra=sim, tls=True).start()
        # an explicit --store: the restarts of join and eject drop it
        c = Vesseld(binary, extra=sim + ['--store', 'sqlite']).start()
        A, B, C = a.proxy(), b.proxy(), c.proxy()
        sa, sb, sc = a.login(), b.login(), c.login()
        master = '127.0.0.1:%d' % a.tls_port
        ha = value(A.pool.get_master(sa, value(A.pool.get_all(sa))[0]))

        hb0 = value(B.host.get_all(sb))[0]
        vm_b, vdi_b = make_halted_vm(B, sb, 'vm-of-b')
        before_b = host_objects(B, sb, hb0)
        hc0 = value(C.host.get_all(sc))[0]
        vm_c, vdi_c = make_halted_vm(C, sc, 'vm-of-c')
        before_c = host_objects(C, sc, hc0)

        # ---- refused joins change nothing
        t.eq(error(B.pool.join(sb, master, 'root', 'wrong-password'))[:1],
             ['SESSION_AUTHENTICATION_FAILED'], 'a wrong password is refused')
        t.eq(error(B.pool.join(sb, '127.0.0.1:%d' % a.port, 'root', ROOT_PASSWORD))[:1],
             ['JOINING_HOST_CONNECTION_FAILED'], 'a master that does not speak HTTPS there: '
             'JOINING_HOST_CONNECTION_FAILED')
        t.eq(error(C.pool.join(sc, '127.0.0.1:%d' % b.tls_port, 'root', ROOT_PASSWORD)),
             ['OPERATION_NOT_ALLOWED', 'the pool\'s master keeps its database on this host '
              'only: a pool\'s master runs with --store etcd'],
             'a master on SQLite is refused')
        tmpl = value(C.VM.get_by_name_label(sc, 'Direct kernel boot'))[0]
        running = value(C.VM.clone(sc, tmpl, 'running-on-c'))
        value(C.VM.set_is_a_template(sc, running, False))
        value(C.VM.start(sc, running, False, False))
        t.eq(error(C.pool.join(sc, master, 'root', ROOT_PASSWORD)),
             ['JOINING_HOST_CANNOT_HAVE_RUNNING_VMS'], 'a joiner with a running VM is refused')
        t.eq(len(value(A.host.get_all(sa))), 1, 'after the refusals the pool still has one host')
        t.ok(not os.path.exists(os.path.join(b.dir, 'data', 'pool.conf')) and
             not os.path.exists(os.path.join(c.dir, 'data', 'pool.conf')),
             'and the refused joiners have no pool.conf')
        t.eq(error(A.pool.join(sa, master, 'root', ROOT_PASSWORD))[:1], ['OPERATION_NOT_ALLOWED'],
             'the master cannot join itself')
        value(C.VM.hard_shutdown(sc, running))
        vdis = [value(C.VBD.get_VDI(sc, v)) for v in value(C.VM.get_VBDs(sc, running))]
        value(C.VM.destroy(sc, running))
        for vdi in vdis:
            value(C.VDI.destroy(sc, vdi))
        before_c = host_objects(C, sc, hc0)

        # ---- B joins through the API
        n = len(ready_lines(b))
        r = B.pool.join(sb, master, 'root', ROOT_PASSWORD)
        t.eq(r.get('Status'), 'Success', 'pool.join answers before the restart (%r)' %
             r.get('ErrorDescription'))
        t.ok(wait_restarted(b, n), 'B restarts onto the pool store')
        with open(os.path.join(b.dir, 'data', 'pool.conf')) as f:
            conf = f.read()
        t.ok('"etcd"' in conf and '/vessel/join-' in conf, 'B\'s pool.conf names the pool store')
        t.eq(oct(os.stat(os.path.join(b.dir, 'data', 'ptoken')).st_mode & 0o777), '0o600',
             'B has the pool secret, 0600')
        with open(os.path.join(b.dir, 'data', 'ptoken')) as f1, \
                open(os.path.join(a.dir, 'data', 'ptoken')) as f2:
            t.ok(f1.read() == f2.read(), 'the secret is the one A made')

        # ---- C joins through xe
        n = len(ready_lines(c))
        env = dict(os.environ, HOME=c.dir, XE_UNIX_SOCKET=c.unix)
        env.pop('XE_EXTRA_ARGS', None)
        x = subprocess.run([xe_exe, 'pool-join', 'master-address=' + master,
                            'master-username=root', 'master-password=' + ROOT_PASSWORD],
                           capture_output=True, text=True, env=env, timeout=60)
        t.ok(x.returncode == 0 and 'join pool' in x.stdout, 'xe pool-join (%s%s)' %
             (one_line(x.stdout), one_line(x.stderr)))
        t.ok(wait_restarted(c, n), 'C restarts onto the pool store')

        # ---- A sees three hosts, each with its own objects
        hosts = value(A.host.get_all(sa))
        t.eq(len(hosts), 3, 'A lists three hosts')
        hb = by_uuid(A, sa, 'host', before_b[0])
        hc = by_uuid(A, sa, 'host', before_c[0])
        t.ok(hb == hb0 and hc == hc0, 'B and C keep their host refs and uuids')
        t.eq(host_objects(A, sa, hb), before_b, 'B\'s PIFs, local SR with its VDIs, PBD are the pool\'s')
        t.eq(host_objects(A, sa, hc), before_c, 'C\'s PIFs, local SR with its VDIs, PBD are the pool\'s')
        _, pifs_a, srs_a, pbds_a = host_objects(A, sa, ha)
        t.ok(len(srs_a) == 1 and len(pbds_a) >= 1, 'A keeps its own local SR and PBD')
        nets = {h: {value(A.PIF.get_network(sa, p)) for p in value(A.host.get_PIFs(sa, h))}
                for h in (ha, hb, hc)}
        t.ok(nets[hb] == nets[ha] and nets[hc] == nets[ha],
             'the joiners\' PIFs are on the pool\'s networks of the same bridge (%s)' % nets)
        vm = by_uuid(A, sa, 'VM', vm_b)
        t.ok(vm and value(A.VM.get_power_state(sa, vm)) == 'Halted' and
             value(A.VDI.get_uuid(sa, value(A.VBD.get_VDI(sa, value(A.VM.get_VBDs(sa, vm))[0]))))
             == vdi_b, 'B\'s halted VM and its disk are in the pool')
        t.eq(len([v for v in value(A.VM.get_all_records(sa)).values() if v['is_control_domain']]),
             3, 'a control domain per host')

        # ---- each vesseld runs its own VMs: B starts its VM; C restarted
        # (its reconcile sees no such domain of its own) leaves it running
        B = b.proxy()
        sbl = value(B.session.slave_local_login_with_password('root', ROOT_PASSWORD))
        vm = by_uuid(A, sa, 'VM', vm_b)
        r = B.VM.start(sbl, vm, False, False)
        t.eq(r.get('Status'), 'Success', 'B starts its VM (%r)' % r.get('ErrorDescription'))
        t.ok(wait_for(lambda: value(A.VM.get_resident_on(sa, vm)) == hb, 20),
             'A sees it running on B')
        C = c.proxy()
        scl = value(C.session.slave_local_login_with_password('root', ROOT_PASSWORD))
        n = len(ready_lines(c))
        value(C.host.restart_agent(scl, hc))
        t.ok(wait_restarted(c, n), 'C restarts (host.restart_agent)')
        t.eq((value(A.VM.get_power_state(sa, vm)), value(A.VM.get_resident_on(sa, vm))),
             ('Running', hb), 'C restarted leaves B\'s running VM alone')
        t.eq(error(A.pool.eject(sa, hb)), ['OPERATION_NOT_ALLOWED', 'VM resident on host'],
             'pool.eject refuses a host with a running VM')
        t.eq(len(value(A.host.get_all(sa))), 3,
             'and the pool keeps its three hosts')
        value(B.VM.hard_shutdown(sbl, vm))

        value(A.host.disable(sa, hb))
        t.eq(value(A.host.get_enabled(sa, hb)), False, 'host.disable clears enabled')
        value(A.host.enable(sa, hb))
        t.eq(value(A.host.get_enabled(sa, hb)), True, 'host.enable sets it again')
        t.eq(error(A.host.destroy(sa, ha)), ['HOST_IS_LIVE', ha], 'host.destroy refuses this host')
        t.eq(error(A.host.destroy(sa, hb)), ['HOST_IS_LIVE', hb],
             'host.destroy refuses a live member')

        # ---- pool.eject
        t.eq(error(A.pool.eject(sa, ha))[:1], ['INTERNAL_ERROR'],
             'pool.eject of the master is refused (xapi\'s Cannot_eject_master)')
        n = len(ready_lines(c))
        r = A.pool.eject(sa, hc)
        t.eq(r.get('Status'), 'Success', 'pool.eject of C (%r)' % r.get('ErrorDescription'))
        t.ok(wait_restarted(c, n), 'C restarts on its own')
        t.eq(sorted(value(A.host.get_all(sa))), sorted([ha, hb]), 'A lists two hosts')
        t.eq(by_uuid(A, sa, 'VM', vm_c), None, 'C\'s VM left the pool with it')
        t.ok(not os.path.exists(os.path.join(c.dir, 'data', 'pool.conf')),
             'C has no pool.conf any more')
        C = c.proxy()
        sc = c.login()
        t.ok(sc.startswith('OpaqueRef:'), 'login on C works')
        t.eq(value(C.host.get_all(sc)), [hc0], 'C is a single host, with its own host uuid')
        t.eq(value(C.pool.get_master(sc, value(C.pool.get_all(sc))[0])), hc0,
             'C is the master of its own pool')
        t.eq(host_objects(C, sc, hc0), before_c, 'C keeps its PIFs, local SR with its VDIs, PBD')
        vm = by_uuid(C, sc, 'VM', vm_c)
        t.ok(vm and value(A.VM.get_power_state(sa, by_uuid(A, sa, 'VM', vm_b))) == 'Halted' and
             value(C.VM.get_power_state(sc, vm)) == 'Halted', 'C\'s halted VM is back on C')
        tmpl = value(C.VM.get_by_name_label(sc, 'Direct kernel boot'))
        t.eq(len(tmpl), 1, 'C has the built-in templates again')
        r = C.VM.start(sc, vm, False, False)
        t.eq(r.get('Status'), 'Success', 'C starts its VM from its own SR (%r)' %
             r.get('ErrorDescription'))
        value(C.VM.hard_shutdown(sc, vm))

        # ---- and C may join again, its objects under the same refs
        before_c = host_objects(C, sc, hc0)
        n = len(ready_lines(c))
        r = C.pool.join(sc, master, 'root', ROOT_PASSWORD)
        t.eq(r.get('Status'), 'Success', 'C joins again (%r)' % r.get('ErrorDescription'))
        t.ok(wait_restarted(c, n), 'C restarts onto the pool store again')
        t.eq(sorted(value(A.host.get_all(sa))), sorted([ha, hb, hc0]), 'A lists three hosts again')
        t.eq(host_objects(A, sa, hc0), before_c, 'with C\'s objects')
        # a mark carried in would have C leave within its watch's 200 ms
        time.sleep(2)
        t.ok(hc0 in value(A.host.get_all(sa)) and len(ready_lines(c)) == n + 1,
             'and C stays (no eject mark came with it)')

        # ---- xe on the master: host-disable, host-enable, pool-eject
        env = dict(os.environ, HOME=a.dir, XE_UNIX_SOCKET=a.unix)
        env.pop('XE_EXTRA_ARGS', None)

        def xe(*args):
            return subprocess.run([xe_exe] + list(args), capture_output=True, text=True,
                                  env=env, timeout=90)
        x = xe('host-disable', 'uuid=' + before_c[0])
        t.ok(x.returncode == 0 and value(A.host.get_enabled(sa, hc0)) is False,
             'xe host-disable uuid= (%s)' % one_line(x.stderr))
        x = xe('host-enable', 'uuid=' + before_c[0])
        t.ok(x.returncode == 0 and value(A.host.get_enabled(sa, hc0)) is True,
             'xe host-enable uuid= (%s)' % one_line(x.stderr))
        n = len(ready_lines(c))
        x = xe('pool-eject', 'host-uuid=' + before_c[0])
        t.ok(x.returncode == 0 and 'new pool' in x.stdout, 'xe pool-eject (%s%s)' %
             (one_line(x.stdout), one_line(x.stderr)))
        t.ok(wait_restarted(c, n), 'C restarts on its own again')
        t.eq(sorted(value(A.host.get_all(sa))), sorted([ha, hb]), 'A lists two hosts again')
        x = xe('pool-eject', 'host-uuid=' + value(A.host.get_uuid(sa, ha)))
        t.ok(x.returncode != 0 and 'Cannot_eject_master' in x.stderr,
             'xe pool-eject of the master fails (%s)' % one_line(x.stderr))
    finally:
        for v in (a, b, c):
            if v:
                v.stop()
                v.kill_all()  # disk servers outlive vesseld by design
        etcd.stop_all()
        if t.failed == 0:
            shutil.rmtree(root, ignore_errors=True)
            for v in (a, b, c):
                if v and v.own_dir:
                    shutil.rmtree(v.dir, ignore_errors=True)
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
