#!/usr/bin/env python3
"""bench/parsers/attacks.py - what issue 11's parser attacks cost a vesseld.

Starts VESSELD on a fresh data dir and, as root, sends:
- map:    VM.set_other_config with KEYS keys (default 100,000) over JSON-RPC,
          then restarts vesseld (with LOAD_WITH when given: another build
          loading the same store) and times the start until ready;
- quoted: a 3.7 MB get_all_records_where expression of short quoted strings
          (XML-RPC, on a class with no records);
- chain:  a 35,000-term or-chain on VM.get_all_records_where (XML-RPC).
For each: the answer, vesseld's CPU time (utime + stime from /proc/PID/stat)
and VmRSS/VmHWM from /proc/PID/status. Run it on an old and a new build to
compare; docs/request-limits.md says what a current build answers.

Usage: attacks.py VESSELD map|quoted|chain [KEYS] [LOAD_WITH]
"""
import http.client
import json
import os
import sys
import time
import xmlrpc.client

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..',
                                'tests', 'integration'))
from harness import Vesseld, value  # noqa: E402


def status(pid):
    out = {}
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            k, _, v = line.partition(':')
            if k in ('VmHWM', 'VmRSS'):
                out[k] = '%d MB' % (int(v.split()[0]) // 1024)
    return out


def cpu(pid):
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def post(d, path, body, ctype):
    c = http.client.HTTPConnection('127.0.0.1', d.port, timeout=900)
    try:
        c.request('POST', path, body=body, headers={'Content-Type': ctype})
        r = c.getresponse()
        return r.status, r.read()[:200]
    except OSError as e:
        return None, repr(e)
    finally:
        c.close()


def measure(d, name, fn):
    pid = d.proc.pid
    c0, t0 = cpu(pid), time.time()
    st, body = fn()
    time.sleep(0.2)
    alive = d.proc.poll() is None
    print('%s: HTTP %s %r' % (name, st, body))
    print('  %.2f s wall, %s, %s' % (time.time() - t0,
                                     '%.2f s vesseld CPU' % (cpu(pid) - c0) if alive else
                                     'vesseld DIED (status %s)' % d.proc.returncode,
                                     status(pid) if alive else ''))


def main():
    binary, what = sys.argv[1], sys.argv[2]
    keys = int(sys.argv[3]) if len(sys.argv) > 3 else 100000
    load_with = sys.argv[4] if len(sys.argv) > 4 else None
    d = Vesseld(binary).start()
    try:
        sess = d.login()
        s = d.proxy()
        if what == 'map':
            vm = [r for r, v in value(s.VM.get_all_records(sess)).items()
                  if not v['is_control_domain']][0]
            big = {'k%06d' % i: 'v' for i in range(keys)}
            body = json.dumps({'jsonrpc': '2.0', 'method': 'VM.set_other_config',
                               'params': [sess, vm, big], 'id': 1}).encode()
            measure(d, 'VM.set_other_config, %d keys' % keys,
                    lambda: post(d, '/jsonrpc', body, 'application/json'))
            print('  keys stored: %d' % len(value(s.VM.get_other_config(sess, vm))))
            d.stop()
            if load_with:
                d.binary = load_with
            t0 = time.time()
            d.start(timeout=900)
            print('restart (%s): ready after %.2f s, %.2f s CPU, %s'
                  % (d.binary, time.time() - t0, cpu(d.proc.pid), status(d.proc.pid)))
        elif what == 'quoted':
            unit = 'field "name__label" = "yyyyyyyy" or '
            expr = unit * ((3700000 - 5) // len(unit)) + 'false'
            body = xmlrpc.client.dumps((sess, expr), 'Bond.get_all_records_where').encode()
            measure(d, '%d-byte expression, %d quoted strings' % (len(expr), expr.count('"') // 2),
                    lambda: post(d, '/', body, 'text/xml'))
        elif what == 'chain':
            expr = ' or '.join('field "name__label" = "x%d"' % i for i in range(35000))
            body = xmlrpc.client.dumps((sess, expr), 'VM.get_all_records_where').encode()
            measure(d, '35,000-term or-chain, %d bytes' % len(expr),
                    lambda: post(d, '/', body, 'text/xml'))
        else:
            sys.exit('usage: attacks.py VESSELD map|quoted|chain [KEYS] [LOAD_WITH]')
    finally:
        d.cleanup()


if __name__ == '__main__':
    main()
