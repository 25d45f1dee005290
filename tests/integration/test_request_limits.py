#!/usr/bin/env python3
"""tests/integration/test_request_limits.py - the request parsers cannot kill
or starve vesseld (issue 11, findings 2, 4 and 9; docs/request-limits.md).

For each limit it sends the largest request accepted and one just over, as a
read-only account where the call is a read (writes as root, since a read-only
session is refused before its arguments are decoded), and checks that the
one over gets its clean error, that vesseld keeps serving, and that time and
memory stay bounded (generous: 10 s a call, 512 MB peak resident). Then it
replays the attacks as reported: a 35,000-term and/or chain (SIGSEGV before),
a 3.7 MB expression of quoted strings (844 MB resident before), a
100,000-key other_config through VM.set_other_config and VM.create (43 s of
CPU before), and a restart with a large accepted map stored (39 s before,
with 100,000 keys). Measured figures are printed as TAP comments.

Usage: test_request_limits.py BUILD/vesseld
"""
import http.client
import json
import os
import subprocess
import sys
import time
import xmlrpc.client

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Tap, Vesseld, add_account, error, value  # noqa: E402

MAX_TERMS = 1024        # rpc/where.h WHERE_MAX_TERMS
MAX_DEPTH = 64          # rpc/where.h WHERE_MAX_DEPTH
MAX_MAP_KEYS = 10000    # model/xtype.h XTYPE_MAX_MAP_KEYS
MAX_BODY = 4 << 20      # http/http.h HTTP_MAX_BODY
TIME_BOUND_S = 10.0
MEM_BOUND_MB = 512


def proc_status(pid):
    out = {}
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            k, _, v = line.partition(':')
            if k in ('VmHWM', 'VmRSS'):
                out[k] = int(v.split()[0]) / 1024.0
    return out


def cpu_seconds(pid):
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


class Meter:
    """Wall time, vesseld's CPU time and VmHWM/VmRSS around one call."""

    def __init__(self, t, d):
        self.t, self.d = t, d

    def run(self, name, fn):
        pid = self.d.proc.pid
        before = proc_status(pid)
        c0, t0 = cpu_seconds(pid), time.time()
        try:
            result = fn()
        except Exception as e:  # reported by the caller's checks
            result = e
        wall = time.time() - t0
        alive = self.d.proc.poll() is None
        after = proc_status(pid) if alive else {'VmHWM': -1, 'VmRSS': -1}
        cpu = cpu_seconds(pid) - c0 if alive else -1
        print('# %s: %.2f s wall, %.2f s vesseld CPU, VmRSS %.0f -> %.0f MB, VmHWM %.0f -> %.0f MB'
              % (name, wall, cpu, before['VmRSS'], after['VmRSS'], before['VmHWM'], after['VmHWM']))
        sys.stdout.flush()
        self.t.ok(alive, '%s: vesseld still running' % name)
        self.t.ok(wall < TIME_BOUND_S, '%s: answered within %d s' % (name, TIME_BOUND_S),
                  '%.2f s' % wall)
        self.t.ok(0 <= after['VmHWM'] < MEM_BOUND_MB,
                  '%s: vesseld peak resident under %d MB' % (name, MEM_BOUND_MB),
                  '%.0f MB' % after['VmHWM'])
        return result


def xmlrpc_post(d, method, params, timeout=60):
    """A raw XML-RPC call (the body built here, so its size is known)."""
    body = xmlrpc.client.dumps(tuple(params), method).encode()
    c = http.client.HTTPConnection('127.0.0.1', d.port, timeout=timeout)
    c.request('POST', '/', body=body, headers={'Content-Type': 'text/xml'})
    r = c.getresponse()
    data = r.read()
    c.close()
    if r.status != 200:
        return r.status, data
    return r.status, xmlrpc.client.loads(data)[0][0]


def jsonrpc_post(d, method, params, timeout=60):
    body = json.dumps({'jsonrpc': '2.0', 'method': method, 'params': params, 'id': 1}).encode()
    c = http.client.HTTPConnection('127.0.0.1', d.port, timeout=timeout)
    c.request('POST', '/jsonrpc', body=body, headers={'Content-Type': 'application/json'})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, json.loads(data) if r.status == 200 else data


def json_error(reply):
    if isinstance(reply, dict) and 'error' in reply:
        e = reply['error']
        return [e.get('message')] + list(e.get('data') or [])
    return None


def read_only_session(t, d, root):
    """A local account holding read-only and nothing else (README "Accounts")."""
    s = d.proxy()
    subj = add_account(d, root, 'reader', 'reader-password', 'read-only')
    ro = value(s.role.get_by_name_label(root, 'read-only'))[0]
    t.eq(value(s.subject.get_roles(root, subj)), [ro], 'the account holds read-only only')
    return value(s.session.login_with_password('reader', 'reader-password', '1.0', 'limits'))


def chain(n, sep=' or ', term='field "name__label" = "x%d"'):
    return sep.join(term % i if '%d' in term else term for i in range(n))


def still_serves(t, d, sess, what):
    r = d.proxy().VM.get_all(sess)
    t.ok(isinstance(value(r), list), 'vesseld still serves after %s' % what)


def where_limits(t, d, m, ro):
    s = d.proxy()
    # the largest accepted: MAX_TERMS terms, the last one matching a template
    expr = chain(MAX_TERMS - 1) + ' or field "name__label" = "Other install media"'
    r = m.run('where: %d terms (the limit)' % MAX_TERMS,
              lambda: s.VM.get_all_records_where(ro, expr))
    t.ok(isinstance(r, dict) and len(value(r)) == 1, 'an expression at the term limit is served')
    # ... and by length: one literal filling a body at the limit
    pad = MAX_BODY - len(xmlrpc.client.dumps((ro, 'field "name__label" = ""'),
                                             'VM.get_all_records_where').encode())
    expr = 'field "name__label" = "%s"' % ('z' * pad)
    st, r = m.run('where: one %d-byte literal (body at the limit)' % pad,
                  lambda: xmlrpc_post(d, 'VM.get_all_records_where', [ro, expr]))
    t.ok(st == 200 and r.get('Status') == 'Success' and r['Value'] == {},
         'an expression filling the body limit is served', (st, str(r)[:200]))
    # the deepest accepted nesting
    expr = '(' * MAX_DEPTH + 'true' + ')' * MAX_DEPTH
    t.ok(isinstance(value(s.VM.get_all_where(ro, expr)), list), 'nesting at the limit is served')
    expr = 'not ' * MAX_DEPTH + 'true'
    t.ok(isinstance(value(s.VM.get_all_where(ro, expr)), list), '%d nots are served' % MAX_DEPTH)
    # one over each
    expr = chain(MAX_TERMS + 1)
    e = error(m.run('where: %d terms (one over)' % (MAX_TERMS + 1),
                    lambda: s.VM.get_all_records_where(ro, expr)))
    t.ok(e and e[0] == 'INVALID_VALUE' and len(e) == 3 and e[1] == expr[:256] + '...' and
         e[2] == 'more than %d terms' % MAX_TERMS,
         'one term over: INVALID_VALUE [expr (cut), reason]', e and [x[:80] for x in e])
    for expr, why in [('(' * (MAX_DEPTH + 1) + 'true' + ')' * (MAX_DEPTH + 1), 'parentheses'),
                      ('not ' * (MAX_DEPTH + 1) + 'true', 'nots')]:
        e = error(s.VM.get_all_where(ro, expr))
        t.ok(e and e[0] == 'INVALID_VALUE' and 'nested deeper than %d' % MAX_DEPTH in e[2],
             '%d nested %s: INVALID_VALUE' % (MAX_DEPTH + 1, why), e)
    e = error(s.VM.get_all_records_where(ro, 'field "x" ='))
    t.ok(e and e[0] == 'INVALID_VALUE' and e[1] == 'field "x" =', 'malformed: INVALID_VALUE', e)
    still_serves(t, d, ro, 'refused expressions')


def where_attacks(t, d, m, ro):
    s = d.proxy()
    # finding 2: a 35,000-term chain (SIGSEGV in where_match before)
    for sep in (' or ', ' and '):
        expr = chain(35000, sep)
        e = error(m.run('attack: 35,000-term%s-chain, %d bytes, XML-RPC' % (sep.rstrip(), len(expr)),
                        lambda: s.VM.get_all_records_where(ro, expr)))
        t.eq(e and e[0], 'INVALID_VALUE', '35,000-term%s-chain: INVALID_VALUE' % sep.rstrip())
    expr = chain(35000, ' or ', 'true')
    st, r = m.run('attack: 35,000-term chain, JSON-RPC',
                  lambda: jsonrpc_post(d, 'VM.get_all_where', [ro, expr]))
    t.eq(json_error(r) and json_error(r)[0], 'INVALID_VALUE', '... over JSON-RPC too')
    # finding 4: a 3.7 MB expression of short literals (844 MB resident before)
    unit = 'field "name__label" = "yyyyyyyy" or '
    expr = unit * ((3700000 - 5) // len(unit)) + 'false'
    st, r = m.run('attack: %.1f MB of quoted strings' % (len(expr) / 1e6),
                  lambda: xmlrpc_post(d, 'VM.get_all_records_where', [ro, expr]))
    t.ok(st == 200 and r.get('ErrorDescription', [''])[0] == 'INVALID_VALUE',
         'many quoted strings: INVALID_VALUE', (st, str(r)[:200]))
    still_serves(t, d, ro, 'the where attacks')


def body_limit(t, d, m, ro):
    # exactly at the limit: XML allows whitespace after the document element
    call = xmlrpc.client.dumps((ro,), 'VM.get_all').encode()
    body = call + b' ' * (MAX_BODY - len(call))

    def post(b):
        c = http.client.HTTPConnection('127.0.0.1', d.port, timeout=60)
        c.request('POST', '/', body=b, headers={'Content-Type': 'text/xml'})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, data
    st, data = m.run('body of %d bytes (the limit)' % len(body), lambda: post(body))
    t.ok(st == 200 and b'Success' in data, 'a body at the limit is served', (st, data[:120]))
    st, data = m.run('body of %d bytes (one over)' % (len(body) + 1), lambda: post(body + b' '))
    t.ok(st == 413 and data == b'request body over the limit of 4194304 bytes\n',
         'one byte over: 413 naming the limit, read by a client that sent it all', (st, data[:120]))
    still_serves(t, d, ro, 'an over-limit body')


def map_limits(t, d, m, root, ro):
    s = d.proxy()
    template = value(s.VM.get_by_name_label(root, 'Other install media'))[0]
    vm = value(s.VM.clone(root, template, 'limits'))
    big = {'k%06d' % i: 'v' for i in range(MAX_MAP_KEYS)}
    st, r = m.run('map: set_other_config with %d keys (the limit), JSON-RPC' % MAX_MAP_KEYS,
                  lambda: jsonrpc_post(d, 'VM.set_other_config', [root, vm, big]))
    t.ok(st == 200 and 'result' in r, 'a map at the key limit is stored', str(r)[:200])
    n = len(value(s.VM.get_other_config(ro, vm)))
    t.eq(n, MAX_MAP_KEYS, 'read back whole (as read-only)')
    e = error(s.VM.add_to_other_config(root, vm, 'one-more', 'v'))
    t.ok(e and e[0] == 'VALUE_NOT_SUPPORTED' and e[1] == 'other_config',
         'add_to_other_config past the limit: VALUE_NOT_SUPPORTED', e)
    over = dict(big, extra='v')
    r = m.run('map: set_other_config with %d keys (one over), XML-RPC' % len(over),
              lambda: s.VM.set_other_config(root, vm, over))
    e = error(r)
    t.ok(e == ['VALUE_NOT_SUPPORTED', 'other_config', '%d keys' % len(over),
               'a map holds at most %d keys' % MAX_MAP_KEYS],
         'one key over: VALUE_NOT_SUPPORTED [field, value, reason]', e)
    # finding 9 replayed: 100,000 keys (43 s of CPU per call before)
    attack = {'k%06d' % i: 'v' for i in range(100000)}
    st, r = m.run('attack: 100,000-key other_config, VM.set_other_config',
                  lambda: jsonrpc_post(d, 'VM.set_other_config', [root, vm, attack]))
    t.eq(json_error(r) and json_error(r)[0], 'VALUE_NOT_SUPPORTED', '100,000 keys: VALUE_NOT_SUPPORTED')
    st, r = m.run('attack: 100,000-key other_config, VM.create',
                  lambda: jsonrpc_post(d, 'VM.create', [root, {'name_label': 'x',
                                                               'other_config': attack}]))
    t.eq(json_error(r) and json_error(r)[0], 'VALUE_NOT_SUPPORTED', '... in VM.create too')
    st, r = m.run('attack: 100,000-key other_config as read-only',
                  lambda: jsonrpc_post(d, 'VM.set_other_config', [ro, vm, attack]))
    t.eq(json_error(r) and json_error(r)[0], 'RBAC_PERMISSION_DENIED',
         'read-only: refused before the map is decoded')
    dup = {'k%06d' % i: 'v' for i in range(MAX_MAP_KEYS - 1)}
    body = xmlrpc.client.dumps((root, vm, dup), 'VM.set_other_config')
    body = body.replace('</struct>', '<member><name>k000017</name><value>v</value></member></struct>')
    c = http.client.HTTPConnection('127.0.0.1', d.port, timeout=60)
    c.request('POST', '/', body=body.encode(), headers={'Content-Type': 'text/xml'})
    e = error(xmlrpc.client.loads(c.getresponse().read())[0][0])
    c.close()
    t.ok(e and e[0] == 'MAP_DUPLICATE_KEY' and e[-1] == 'k000017',
         'a duplicate as the last of %d keys: MAP_DUPLICATE_KEY' % MAX_MAP_KEYS, e)
    t.eq(len(value(s.VM.get_other_config(ro, vm))), MAX_MAP_KEYS, 'refused writes changed nothing')
    still_serves(t, d, ro, 'the map attacks')
    return vm


def restart_loads_fast(t, d, vm):
    t.eq(d.stop(), 0, 'vesseld stops cleanly')
    t0 = time.time()
    d.start()
    took = time.time() - t0
    print('# restart with a %d-key map stored: ready after %.2f s, %.2f s CPU, VmHWM %.0f MB'
          % (MAX_MAP_KEYS, took, cpu_seconds(d.proc.pid), proc_status(d.proc.pid)['VmHWM']))
    t.ok(took < TIME_BOUND_S, 'restart with a map at the limit stored: ready within %d s'
         % TIME_BOUND_S, '%.2f s' % took)
    root = d.login()
    t.eq(len(value(d.proxy().VM.get_other_config(root, vm))), MAX_MAP_KEYS,
         'the map is loaded whole')


def main():
    t = Tap()
    d = Vesseld(sys.argv[1])
    try:
        d.start()
        root = d.login()
        ro = read_only_session(t, d, root)
        m = Meter(t, d)
        where_limits(t, d, m, ro)
        where_attacks(t, d, m, ro)
        body_limit(t, d, m, ro)
        vm = map_limits(t, d, m, root, ro)
        restart_loads_fast(t, d, vm)
    except Exception as e:
        t.ok(False, 'unexpected exception', repr(e))
        if d.proc:
            with open(d.log_path) as f:
                print('# ' + f.read()[-2000:].replace('\n', '\n# '))
    finally:
        d.cleanup()
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
