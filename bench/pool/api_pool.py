#!/usr/bin/env python3
"""bench/pool/api_pool.py - the pool store seen through the API (issue 15).

A 3-member etcd cluster on 127.0.0.1 and three vesseld (sim backend): S on
SQLite, A on etcd, B on the same etcd prefix (--pool-member). Measures, in one
run:
- VM.set_name_label, request to reply, on S and on A (a write's whole cost
  through the API on each store);
- event propagation: B (or S itself) blocks in event.from on class vm, A (or
  S) sends VM.set_name_label; the time from just before the write's request
  to the moment the event.from reply arrived, p50/p99.
Prints a table and one line starting with "POOLAPI_JSON ".
Usage: api_pool.py BUILD_DIR [SAMPLES]
"""
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'tests', 'integration'))
from harness import Vesseld, value, wait_for  # noqa: E402
from test_pool_store import Etcd  # noqa: E402


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p / 100))]


def writes(d, sess, vm, n):
    s = d.proxy()
    out = []
    for i in range(n):
        t0 = time.monotonic()
        value(s.VM.set_name_label(sess, vm, 'w-%d' % i))
        out.append((time.monotonic() - t0) * 1000)
    return out


def propagation(writer, wsess, reader, rsess, vm, n):
    """Write through @writer, event.from through @reader: ms per sample."""
    r = reader.proxy()
    token = value(getattr(r.event, 'from')(rsess, ['vm'], '', 0.0))['token']
    w = writer.proxy()
    out = []
    for i in range(n):
        got = {}
        ready = threading.Event()

        def poll(tok=token):
            ready.set()
            while True:
                res = value(getattr(reader.proxy().event, 'from')(rsess, ['vm'], tok, 30.0))
                tok = res['token']
                if any(e['ref'] == vm and e['snapshot']['name_label'] == 'p-%d' % i
                       for e in res['events']):
                    got['at'] = time.monotonic()
                    got['token'] = tok
                    return
        th = threading.Thread(target=poll)
        th.start()
        ready.wait()
        time.sleep(0.01)  # let the poll reach the server
        t0 = time.monotonic()
        value(w.VM.set_name_label(wsess, vm, 'p-%d' % i))
        th.join(35)
        out.append((got['at'] - t0) * 1000)
        token = got['token']
    return out


def main():
    build = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    binary = os.path.join(build, 'vesseld')
    root = tempfile.mkdtemp(prefix='vessel-poolapi-')
    etcd = Etcd(root)
    ds = []
    try:
        for i in range(3):
            etcd.start(i)
        if not wait_for(etcd.writable, 30):
            raise RuntimeError('etcd did not start')
        sim = ['--backend', 'sim', '--metrics-period', '3600']
        pool = sim + ['--store', 'etcd', '--etcd-endpoints', etcd.endpoints(),
                      '--etcd-prefix', '/vessel/bench-%d' % os.getpid()]
        s = Vesseld(binary, extra=sim).start()
        ds.append(s)
        a = Vesseld(binary, extra=pool).start()
        ds.append(a)
        b = Vesseld(binary, extra=pool + ['--pool-member']).start()
        ds.append(b)
        ss, sa, sb = s.login(), a.login(), b.local_login()  # B is a member: HOST_IS_SLAVE

        def new_vm(d, sess):
            p = d.proxy()
            tmpl = value(p.VM.get_by_name_label(sess, 'Other install media'))[0]
            vm = value(p.VM.clone(sess, tmpl, 'bench'))
            value(p.VM.set_is_a_template(sess, vm, False))
            return vm
        vs, va = new_vm(s, ss), new_vm(a, sa)
        wait_for(lambda: b.proxy().VM.get_uuid(sb, va).get('Status') == 'Success', 20)

        w_s = writes(s, ss, vs, n)
        w_a = writes(a, sa, va, n)
        p_s = propagation(s, ss, s, ss, vs, n // 2)
        p_ab = propagation(a, sa, b, sb, va, n // 2)
        rows = [('VM.set_name_label on SQLite (one host)', w_s),
                ('VM.set_name_label on etcd (pool)', w_a),
                ('event: write on S -> event.from on S', p_s),
                ('event: write on A -> event.from on B', p_ab)]
        print('%-42s %8s %8s %8s' % ('through the API (ms)', 'p50', 'p99', 'max'))
        for name, v in rows:
            print('%-42s %8.2f %8.2f %8.2f' % (name, statistics.median(v), pct(v, 99), max(v)))
        print('POOLAPI_JSON ' + json.dumps({
            'bench': 'pool-api', 'samples': n,
            'set_name_label_ms': {'sqlite_p50': round(statistics.median(w_s), 3),
                                  'etcd_p50': round(statistics.median(w_a), 3),
                                  'etcd_p99': round(pct(w_a, 99), 3)},
            'event_propagation_ms': {'local_sqlite_p50': round(statistics.median(p_s), 3),
                                     'a_to_b_p50': round(statistics.median(p_ab), 3),
                                     'a_to_b_p99': round(pct(p_ab, 99), 3)}}))
        return 0
    finally:
        for d in ds:
            d.cleanup()
        etcd.stop_all()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
