"""tests/integration/test_pool_catch_up.py - a forwarded call runs on a view
at least as new as the forwarding host's.

A 3-member etcd cluster on the test's own loopback address
(test_pool_store.py's Etcd) and three sim vesselds: A (the pool's first host),
B, whose follower sleeps LAG_MS before it applies each revision (the test aid
VESSEL_TEST_WATCH_DELAY_MS: a loaded host), and C, whose first etcd endpoint
is member 2 where every other host's is member 0. Every call goes to A;
checks:
  - a VM shut down through A, then at once VM.start_on(vm, B) through A: it
    runs on B. B's view still read it Running, and a host that ran the call
    on that view answered VM_BAD_POWER_STATE (seen in
    integration-pool-ha-netns after a cut cable: the host told to start a
    guest still had it running on another host);
  - the same with C while member 2, which C's view follows, is stopped
    (SIGSTOP: a watch that goes quiet without an error): C starts its watch
    again on another member rather than run the call on what it had.
Every process started here is killed by its pid at the end.

usage: test_pool_catch_up.py VESSELD
"""
import os
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Tap, Vesseld, error, value, wait_for  # noqa: E402
from test_pool_forward import new_vm  # noqa: E402
from test_pool_store import ETCD, Etcd, inventory_uuid, pool_https  # noqa: E402

MIB = 1024 * 1024
LAG_MS = 500    # B's follower sleeps this long before each revision it applies


def main():
    binary = sys.argv[1]
    t = Tap()
    if not os.access(ETCD, os.X_OK):
        print('1..0 # SKIP %s is not installed' % ETCD)
        return 0
    root = tempfile.mkdtemp(prefix='vessel-it-etcd-')
    etcd = Etcd(root)
    hosts = []
    try:
        for i in range(3):
            etcd.start(i)
        t.ok(wait_for(etcd.writable, 30), 'a 3-member etcd cluster answers')
        common = ['--backend', 'sim', '--store', 'etcd', '--etcd-prefix',
                  '/vessel/it-catch-up-%d' % os.getpid(), '--metrics-period', '3600']

        def host(k, endpoints, env=None, member=True):
            v = Vesseld(binary, env=env, extra=common + pool_https(k)[1] + [
                '--etcd-endpoints', ','.join(etcd.url(i) for i in endpoints)] +
                (['--pool-member'] if member else []))
            hosts.append(v)
            if member:
                os.makedirs(os.path.join(v.dir, 'data'), mode=0o700)
                shutil.copy(os.path.join(hosts[0].dir, 'data', 'ptoken'),
                            os.path.join(v.dir, 'data', 'ptoken'))
            return v.start()

        a = host(0, (0, 1, 2), member=False)
        b = host(1, (0, 1, 2), env={'VESSEL_TEST_WATCH_DELAY_MS': str(LAG_MS)})
        c = host(2, (2, 0, 1))
        A = a.proxy()
        sa = a.login()
        with open(os.path.join(a.dir, 'data', 'ptoken')) as f:
            secret = f.read().strip()

        def ref_of(v):
            return wait_for(lambda: {h['uuid']: r for r, h in value(A.host.get_all_records(sa))
                                     .items()}.get(inventory_uuid(v)), 30)

        def live(h):
            return value(A.host_metrics.get_live(sa, value(A.host.get_metrics(sa, h))))
        ha, hb, hc = ref_of(a), ref_of(b), ref_of(c)
        t.ok(all((ha, hb, hc)) and wait_for(lambda: live(hb) and live(hc), 30),
             'three hosts, B and C live')
        vm = new_vm(A, sa, 'late-view', 256 * MIB)

        def started_on_after_shutdown(v, h, stop_member=None):
            """@vm Running on A, seen so by @v; shut down through A, then at once
            VM.start_on(vm, @h) through A: (its result, what @v read just
            before, seconds the call took)."""
            # once on @h first: A's session there is made (a login on @h
            # waits for its own commit, and @h's view would catch up meanwhile)
            value(A.VM.start_on(sa, vm, h, False, False))
            value(A.VM.hard_shutdown(sa, vm))
            value(A.VM.start_on(sa, vm, ha, False, False))
            V = v.proxy()
            sv = value(V.session.slave_login(ha, secret))
            wait_for(lambda: value(V.VM.get_power_state(sv, vm)) == 'Running', 30)
            time.sleep(4 * LAG_MS / 1000)   # the start's last revisions, applied everywhere
            proc = etcd.procs[stop_member] if stop_member is not None else None
            if proc:
                os.kill(proc.pid, signal.SIGSTOP)
            try:
                value(A.VM.hard_shutdown(sa, vm))
                seen = value(V.VM.get_power_state(sv, vm))
                t0 = time.monotonic()
                r = A.VM.start_on(sa, vm, h, False, False)
                return r, seen, time.monotonic() - t0
            finally:
                if proc:
                    os.kill(proc.pid, signal.SIGCONT)

        r, seen, took = started_on_after_shutdown(b, hb)
        t.ok(error(r) is None and value(A.VM.get_resident_on(sa, vm)) == hb,
             'B lags: a VM shut down through A, then VM.start_on(vm, B): it runs on B, whose '
             'view read it %s just before (%.2f s)' % (seen, took), r)
        value(A.VM.hard_shutdown(sa, vm))

        r, seen, took = started_on_after_shutdown(c, hc, stop_member=2)
        t.ok(error(r) is None and value(A.VM.get_resident_on(sa, vm)) == hc,
             'C\'s etcd member stopped: the same start on C runs it there, whose view read it '
             '%s just before (%.2f s)' % (seen, took), r)
        value(A.VM.hard_shutdown(sa, vm))
    except Exception as ex:  # noqa: BLE001 - report, then clean up
        t.ok(False, 'unexpected exception', repr(ex))
        for v in hosts:
            with open(v.log_path) as f:
                for line in f.read().splitlines()[-10:]:
                    print('#   ' + line)
    finally:
        for v in hosts:
            v.kill_all()
            v.cleanup()
        etcd.stop_all()
        if not os.environ.get('VESSEL_KEEP'):
            shutil.rmtree(root, ignore_errors=True)
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
