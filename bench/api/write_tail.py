#!/usr/bin/env python3
"""bench/api/write_tail.py - a write's latency and its tail: N VM.set_name_label
calls in a row through Vessel's Python client (client/python/vessel_xenapi.py),
each a commit on the default store (SQLite), against the same calls on another
vesseld binary (the peer: usually the build of the commit before a change to
the write path), alternating runs so that both see the same load.

  python3 bench/api/write_tail.py BUILD_DIR [PEER_VESSELD] [N] [RUNS]

Without PEER_VESSELD it measures BUILD_DIR's vesseld alone. Prints, per run,
the median, the 99th and 99.9th percentiles, the maximum and how many calls
took over 5 ms (SQLite's checkpoint: it copies the WAL into the database with
two fsyncs in the commit that takes the WAL past 1,000 pages, ~25 ms on this
project's test machine, while every reader waits), then the medians' ratio.
Defaults: N 3000, RUNS 2.
"""
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'tests', 'integration'))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'client', 'python'))
from harness import ROOT_PASSWORD, Vesseld, value  # noqa: E402
import vessel_xenapi  # noqa: E402


def run(binary, n):
    d = Vesseld(binary, extra=[]).start()
    try:
        s, sess = d.proxy(), d.login()
        tmpl = value(s.VM.get_by_name_label(sess, 'Other install media'))[0]
        vm = value(s.VM.clone(sess, tmpl, 'write-tail'))
        x = vessel_xenapi.Session('http://127.0.0.1:%d' % d.port)
        x.login_with_password('root', ROOT_PASSWORD)
        took = []
        for i in range(n):
            t0 = time.perf_counter()
            x.xenapi.VM.set_name_label(vm, 'write-tail-%d' % i)
            took.append((time.perf_counter() - t0) * 1e3)
        return sorted(took)
    finally:
        d.kill_all()
        d.cleanup()


def report(name, took):
    def pct(p):
        return took[min(len(took) - 1, int(len(took) * p))]
    p50 = statistics.median(took)
    print('  %-14s p50 %.3f  p99 %.3f  p99.9 %.3f  max %.3f ms  over 5 ms: %d'
          % (name, p50, pct(0.99), pct(0.999), took[-1], sum(1 for t in took if t > 5)))
    return p50


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else 'build')
    peer = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2] != '-' else None
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 3000
    runs = int(sys.argv[4]) if len(sys.argv) > 4 else 2
    print('VM.set_name_label x %d in a row, per run:' % n)
    ratios = []
    for _ in range(runs):
        if peer:
            base = report('peer', run(peer, n))
        mine = report('this build', run(os.path.join(build, 'vesseld'), n))
        if peer:
            ratios.append(mine / base)
    if ratios:
        print('p50 this build / peer: %.2f (median of %d runs)' % (statistics.median(ratios),
                                                                  len(ratios)))


if __name__ == '__main__':
    main()
