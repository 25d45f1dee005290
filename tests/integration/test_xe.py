#!/usr/bin/env python3
"""tests/integration/test_xe.py - drive `xe` against a real vesseld, as a user would.

Usage: test_xe.py BUILD/xe BUILD/vesseld. Starts vesseld on a temporary data
dir (--listen 127.0.0.1:0 --tls-listen none), reads http_port and the unix
socket from its "vesseld.ready" line, runs xe over the unix socket and over
plain HTTP (-s/-p/--nossl with a password), checks outputs and exit codes, and
stops vesseld with SIGTERM. Prints TAP.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

PASSWORD = 'xe-integration-pw'


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, name, detail=None):
        self.n += 1
        print('%s %d - %s' % ('ok' if cond else 'not ok', self.n, name))
        if not cond:
            self.failed += 1
            for line in str(detail or '').splitlines()[:20]:
                print('#   ' + line)
        sys.stdout.flush()
        return cond

    def eq(self, got, want, name):
        return self.ok(got == want, name, 'got:  %r\nwant: %r' % (got, want))


def start_vesseld(exe, tmp):
    pwfile = os.path.join(tmp, 'pw')
    with open(pwfile, 'w') as f:
        f.write(PASSWORD + '\n')
    data = os.path.join(tmp, 'data')
    proc = subprocess.Popen([exe, '--data-dir', data, '--listen', '127.0.0.1:0',
                             '--tls-listen', 'none', '--root-password-file', pwfile,
                             '--backend', 'sim'],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    deadline = time.time() + 30
    while time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        m = re.search(r'vesseld\.ready .*http_port=(\d+).*unix=(\S+)', line)
        if m:
            return proc, int(m.group(1)), m.group(2)
    proc.kill()
    raise SystemExit('vesseld did not become ready')


class Xe:
    def __init__(self, exe, env):
        self.exe = exe
        self.env = env

    def __call__(self, *args, **kw):
        r = subprocess.run([self.exe] + list(args), capture_output=True, text=True,
                           env=self.env, timeout=60, **kw)
        return r.returncode, r.stdout, r.stderr


def main():
    xe_exe, vesseld_exe = sys.argv[1], sys.argv[2]
    tmp = tempfile.mkdtemp(prefix='vessel-xe-')
    t = Tap()
    proc = None
    try:
        proc, port, sock = start_vesseld(vesseld_exe, tmp)
        home = os.path.join(tmp, 'home')
        os.makedirs(home)
        env = dict(os.environ, HOME=home, XE_UNIX_SOCKET=sock)
        env.pop('XE_EXTRA_ARGS', None)
        xe = Xe(xe_exe, env)
        run(t, xe, port, home)
    finally:
        if proc:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    print('1..%d' % t.n)
    return 1 if t.failed else 0


def block_fields(text):
    """The first record block of xe's output as {field: value}."""
    out = {}
    for line in text.splitlines():
        if not line.strip():
            if out:
                break
            continue
        m = re.match(r'\s*(\S+) \((...)\)(?: \[DEPRECATED\])?\s*: ?(.*)$', line)
        if m:
            out[m.group(1)] = m.group(3)
    return out


def run(t, xe, port, home):
    # --- lists
    rc, out, err = xe('vm-list')
    t.eq(rc, 0, 'vm-list succeeds')
    t.ok('Control domain' in out, 'vm-list shows the control domain', out)
    t.ok('Direct kernel boot' not in out, 'vm-list hides templates', out)
    lines = [l for l in out.splitlines() if l.strip()]
    t.ok(lines and re.match(r'^uuid \( RO\) +: [0-9a-f-]{36}$', lines[0]), 'first key padded', out)
    colons = {l.index(': ') for l in lines}
    t.eq(len(colons), 1, 'colons of a block line up')
    t.ok(re.search(r'^ +power-state \( RO\): running$', out, re.M), 'power state lower-case', out)

    rc, out, err = xe('template-list', '--minimal')
    t.eq(rc, 0, 'template-list --minimal succeeds')
    t.ok(out.count(',') >= 1 and '\n' == out[-1] and ' ' not in out.strip(),
         'template-list --minimal is one comma-separated line', out)
    rc, out, err = xe('template-list', 'name-label=Direct kernel boot', 'params=uuid', '--minimal')
    tmpl = out.strip()
    t.ok(re.match(r'^[0-9a-f-]{36}$', tmpl), 'filter by name-label finds one template', out)

    rc, out, err = xe('host-list', '--minimal')
    host = out.strip()
    t.ok(rc == 0 and re.match(r'^[0-9a-f-]{36}$', host), 'host-list --minimal: one uuid', out)
    rc, out, err = xe('pool-list')
    t.ok(rc == 0 and 'master ( RO)' in out and host in out, 'pool-list shows the master uuid', out)

    # --- vm-install, vm-clone
    rc, out, err = xe('vm-install', 'template=Direct kernel boot', 'new-name-label=xe-web01')
    vm = out.strip()
    t.ok(rc == 0 and re.match(r'^[0-9a-f-]{36}$', vm), 'vm-install prints the new uuid', out + err)
    rc, out, err = xe('vm-param-get', 'uuid=' + vm, 'param-name=is-a-template')
    t.eq(out.strip(), 'false', 'the installed VM is not a template')
    rc, out, err = xe('vm-list', 'name-label=xe-web01', '--minimal')
    t.eq(out.strip(), vm, 'vm-list filter finds the new VM')
    rc, out, err = xe('vm-clone', 'vm=xe-web01', 'new-name-label=xe-web02')
    clone = out.strip()
    t.ok(rc == 0 and re.match(r'^[0-9a-f-]{36}$', clone) and clone != vm, 'vm-clone by name',
         out + err)
    rc, out, err = xe('vm-clone', 'vm=' + vm, 'new-name-label=xe-web02')
    t.eq(rc, 0, 'vm-clone by uuid')
    rc, out, err = xe('vm-clone', 'vm=xe-web02', 'new-name-label=x')
    t.ok(rc != 0 and 'Multiple matches' in err, 'ambiguous selector refused', err)
    rc, out, err = xe('vm-list', 'name-label=xe-web02', '--minimal')
    t.eq(out.count(','), 1, 'two VMs named xe-web02')

    # --- param-list / param-get / param-set with maps and sets
    rc, out, err = xe('vm-param-list', 'uuid=' + vm)
    f = block_fields(out)
    t.eq(f.get('uuid'), vm, 'param-list uuid')
    t.eq(f.get('name-label'), 'xe-web01', 'param-list name-label')
    t.eq(f.get('power-state'), 'halted', 'param-list power-state')
    t.ok(re.search(r'other-config \(MRW\)', out) and re.search(r'VBDs \(SRO\)', out),
         'param-list qualifiers for maps and sets', out)
    t.ok(re.match(r'^[0-9a-f-]{36}$', f.get('resident-on', '')) or
         f.get('resident-on') == '<not in database>', 'refs shown as uuids', f.get('resident-on'))

    rc, out, err = xe('vm-param-set', 'uuid=' + vm, 'other-config:foo=bar',
                      'name-description=made by xe', 'tags=a,b')
    t.eq(rc, 0, 'param-set map key, string and set')
    rc, out, err = xe('vm-param-get', 'uuid=' + vm, 'param-name=other-config', 'param-key=foo')
    t.eq(out, 'bar\n', 'param-get param-key')
    rc, out, err = xe('vm-param-get', 'uuid=' + vm, 'param-name=tags')
    t.eq(out, 'a; b\n', 'sets print as a; b')
    rc, out, err = xe('vm-param-set', 'uuid=' + vm, 'other-config:foo=baz')
    rc, out, err = xe('vm-param-get', 'uuid=' + vm, 'param-name=other-config', 'param-key=foo')
    t.eq(out, 'baz\n', 'param-set replaces an existing map key')
    rc, out, err = xe('vm-list', 'other-config:foo=baz', '--minimal')
    t.eq(out.strip(), vm, 'list filter on a map key')
    rc, out, err = xe('vm-param-add', 'uuid=' + vm, 'param-name=other-config', 'k2=v2')
    rc, out, err = xe('vm-param-get', 'uuid=' + vm, 'param-name=other-config')
    t.ok('foo: baz' in out and 'k2: v2' in out and '; ' in out, 'maps print k: v; k2: v2', out)
    rc, out, err = xe('vm-param-remove', 'uuid=' + vm, 'param-name=other-config', 'param-key=foo')
    rc, out, err = xe('vm-param-get', 'uuid=' + vm, 'param-name=other-config', 'param-key=foo')
    t.ok(rc != 0 and 'Key foo not found' in err, 'param-remove removed the key', out + err)
    rc, out, err = xe('vm-param-add', 'uuid=' + vm, 'param-name=tags', 'param-key=c')
    rc, out, err = xe('vm-param-remove', 'uuid=' + vm, 'param-name=tags', 'param-key=a')
    rc, out, err = xe('vm-param-get', 'uuid=' + vm, 'param-name=tags')
    t.eq(out, 'b; c\n', 'param-add / param-remove on a set')
    rc, out, err = xe('vm-param-clear', 'uuid=' + vm, 'param-name=other-config')
    rc, out, err = xe('vm-param-get', 'uuid=' + vm, 'param-name=other-config')
    t.eq(out, '\n', 'param-clear empties the map')
    rc, out, err = xe('vm-list', 'params=name-description', 'name-label=xe-web01')
    t.eq(out, 'name-description ( RW)    : made by xe\n\n', 'params= selects columns')

    rc, out, err = xe('pool-param-set', 'name-label=xe-pool')
    rc, out, err = xe('pool-list', 'params=name-label', '--minimal')
    t.eq(out, 'xe-pool\n', 'pool-param-set without uuid (the only pool)')

    # --- errors, in xe's words
    rc, out, err = xe('vm-frobnicate')
    t.ok(rc == 1 and err.startswith('Unknown command: vm-frobnicate'), 'unknown command', err)
    rc, out, err = xe('vm-param-list')
    t.ok(rc != 0 and 'Required parameter not found: uuid' in err, 'missing uuid', err)
    rc, out, err = xe('vm-param-get', 'uuid=' + vm)
    t.ok(rc != 0 and 'Required parameter not found: param-name' in err, 'missing param-name',
         err)
    rc, out, err = xe('vm-param-list', 'uuid=00000000-0000-0000-0000-000000000000')
    t.ok(rc != 0 and 'Error code: UUID_INVALID' in err and
         'Error parameters: VM, 00000000-0000-0000-0000-000000000000' in err,
         'server error: code and parameters', err)
    rc, out, err = xe('vm-param-set', 'uuid=' + vm, 'power-state=running')
    t.ok(rc != 0 and 'read-only' in err, 'read-only field refused', err)
    rc, out, err = xe('vm-param-set', 'uuid=' + vm, 'is-a-template=perhaps')
    t.ok(rc != 0 and 'INVALID_VALUE' in err, 'bad bool refused', err)
    rc, out, err = xe('vm-list', 'colour=blue')
    t.ok(rc != 0 and "Unknown field 'colour'" in err, 'unknown filter field', err)
    rc, out, err = xe('vm-list', '--bogus')
    t.ok(rc != 0 and err.startswith('Syntax error'), 'unknown flag', err)
    rc, out, err = xe('vm-install', 'new-name-label=x')
    t.ok(rc != 0 and 'Required parameter not found: template' in err, 'vm-install needs template',
         err)

    # --- help
    rc, out, err = xe('help', '--all', '--minimal')
    cmds = out.strip().split(',')
    t.ok(rc == 0 and 'vm-list' in cmds and 'vm-metrics-param-list' in cmds and 'sr-list' in cmds,
         'help --all --minimal lists generic commands for every class', out[:200])
    rc, out, err = xe('help', 'vm-param-set')
    t.ok(rc == 0 and 'reqd params     : uuid' in out and 'other-config:' in out,
         'help of a generic command names the fields', out)

    # --- event-wait: already true, and true later
    rc, out, err = xe('event-wait', 'class=vm', 'name-label=xe-web01', 'power-state=halted')
    t.eq(rc, 0, 'event-wait returns when a record already matches')
    waiter = subprocess.Popen([xe.exe, 'event-wait', 'class=vm', 'uuid=' + vm,
                               'name-description=ready', 'timeout=20'], env=xe.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    xe('vm-param-set', 'uuid=' + vm, 'name-description=ready')
    try:
        wrc = waiter.wait(timeout=20)
    except subprocess.TimeoutExpired:
        waiter.kill()
        wrc = -1
    t.eq(wrc, 0, 'event-wait wakes on a change')

    # --- over HTTP with a password
    rc, out, err = xe('-s', '127.0.0.1', '-p', str(port), '--nossl', '-u', 'root', '-pw', PASSWORD,
                      'vm-list', 'name-label=xe-web01', '--minimal')
    t.eq((rc, out.strip()), (0, vm), 'vm-list over HTTP with a password')
    rc, out, err = xe('-s', '127.0.0.1', '-p', str(port), '--nossl', '-pw', 'wrong', 'vm-list')
    t.ok(rc != 0 and 'SESSION_AUTHENTICATION_FAILED' in err, 'a wrong password is refused', err)
    with open(os.path.join(home, '.xe'), 'w') as f:
        f.write('server=127.0.0.1\nport=%d\nnossl=true\npassword=%s\n' % (port, PASSWORD))
    rc, out, err = xe('--debug', 'host-list', '--minimal')
    t.ok(rc == 0 and out.strip() == host and 'get_all_records_where' in err,
         '~/.xe gives server, port and password', out + err)
    os.unlink(os.path.join(home, '.xe'))
    env2 = dict(xe.env, XE_EXTRA_ARGS='server=127.0.0.1,port=%d,nossl=true,password=%s' %
                (port, PASSWORD))
    r = subprocess.run([xe.exe, 'pool-list', 'params=name-label', '--minimal'],
                       capture_output=True, text=True, env=env2, timeout=60)
    t.eq((r.returncode, r.stdout), (0, 'xe-pool\n'), 'XE_EXTRA_ARGS gives the connection')

    # --- uninstall
    rc, out, err = xe('vm-uninstall', 'vm=xe-web02', '--multiple')
    t.ok(rc != 0 and 'force' in err, 'vm-uninstall needs force', err)
    rc, out, err = xe('vm-uninstall', 'vm=xe-web02', '--multiple', '--force')
    t.eq(rc, 0, 'vm-uninstall --multiple --force')
    rc, out, err = xe('vm-list', 'name-label=xe-web02', '--minimal')
    t.eq(out, '\n', 'the uninstalled VMs are gone')


if __name__ == '__main__':
    sys.exit(main())
