#!/usr/bin/env python3
"""bench/api/allocs.py - heap allocations per small call (issue 18), a count
that does not depend on the machine's load.

  python3 bench/api/allocs.py BUILD_DIR [PEER_VESSELD]

Starts vesseld (sim backend, one request thread), drives VM.get_record over
one keep-alive connection with `wrk -t1 -c1` for 2 s, and counts glibc's
free() calls in vesseld meanwhile with `perf stat` on an uprobe (added once
with `perf probe`; root). frees per call is the number of allocations a call
makes and releases. With PEER_VESSELD (another build, usually the commit
before a change to the request path) the same for it, and the difference.
The throughput under the probes is not a figure: each probe traps.
Needs perf and wrk (bench/install-deps.sh); says so and exits 0 without.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'tests', 'integration'))
sys.path.insert(0, HERE)
from harness import Vesseld  # noqa: E402
from peers import session_and_template, wrk_script, xmlrpc_body  # noqa: E402

LIBC = '/lib/x86_64-linux-gnu/libc.so.6'
EVENT = 'probe_libc:free'
SECONDS = 2


def probe_ready():
    listed = subprocess.run(['perf', 'probe', '-l'], capture_output=True, text=True).stdout
    if EVENT in listed:
        return True
    r = subprocess.run(['perf', 'probe', '-x', LIBC, '-a', 'free'], capture_output=True, text=True)
    return r.returncode == 0


def frees_per_call(binary):
    d = Vesseld(binary, extra=['--backend', 'sim', '--threads', '1'])
    tmp = tempfile.mkdtemp(prefix='vessel-allocs-')
    try:
        d.start()
        sess, tpl = session_and_template(d, 'allocs')
        script = wrk_script(tmp, 'v', 'POST', '/', xmlrpc_body('VM.get_record', sess, tpl))
        out_file = os.path.join(tmp, 'stat.txt')
        # the count covers wrk's whole run, and the idle time around it
        stat = subprocess.Popen(['perf', 'stat', '-x,', '-e', EVENT, '-p', str(d.proc.pid),
                                 '-o', out_file, '--', 'sleep', str(SECONDS + 1)])
        time.sleep(0.3)
        out = subprocess.run(['wrk', '-t1', '-c1', '-d%ds' % SECONDS, '-s', script,
                              'http://127.0.0.1:%d/' % d.port],
                             capture_output=True, text=True, timeout=60).stdout
        stat.wait()
        calls = int(re.search(r'(\d+) requests in', out).group(1))
        with open(out_file) as f:
            frees = [int(line.split(',')[0]) for line in f if EVENT in line][0]
        return frees / calls, calls
    finally:
        d.stop()
        d.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    if not shutil.which('perf') or not shutil.which('wrk'):
        print('allocs: skipped (perf or wrk not installed)')
        return
    if not probe_ready():
        print('allocs: skipped (cannot add an uprobe on %s: not root?)' % LIBC)
        return
    binaries = [os.path.join(os.path.abspath(sys.argv[1]), 'vesseld')] + sys.argv[2:3]
    results = []
    for b in binaries:
        per_call, calls = frees_per_call(b)
        results.append(per_call)
        print('%-50s %6.2f frees per VM.get_record (%d calls)' % (b, per_call, calls))
    if len(results) == 2:
        print('difference: %+.2f per call' % (results[0] - results[1]))


if __name__ == '__main__':
    main()
