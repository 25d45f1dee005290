"""tests/integration/harness.py - start a real vesseld and talk to it.

Each test script starts its own vesseld on a fresh temporary data dir with an
ephemeral port (--listen 127.0.0.1:0), reads the port from the "vesseld.ready"
log line, and stops it at the end. Output is TAP, so every check counts.
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import xmlrpc.client

ROOT_PASSWORD = 'integration-root-pw'


class Tap:
    # the process's failed checks, all Taps together: Vesseld.cleanup then
    # shows its log, which the directory's removal would take with it
    failures = 0

    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, name, detail=None):
        self.n += 1
        if cond:
            print('ok %d - %s' % (self.n, name))
        else:
            self.failed += 1
            Tap.failures += 1
            print('not ok %d - %s' % (self.n, name))
            if detail is not None:
                for line in str(detail).splitlines()[:20]:
                    print('#   ' + line)
        sys.stdout.flush()
        return cond

    def eq(self, got, want, name):
        return self.ok(got == want, name, 'got:  %r\nwant: %r' % (got, want))

    def done(self):
        print('1..%d' % self.n)
        return 1 if self.failed else 0


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=30):
        super().__init__('localhost', timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


class UnixTransport(xmlrpc.client.Transport):
    def __init__(self, path):
        super().__init__()
        self.unix_path = path

    def make_connection(self, host):
        return UnixHTTPConnection(self.unix_path)


class Vesseld:
    def __init__(self, binary, data_dir=None, extra=(), tls=False, addr='127.0.0.1', wrap=(),
                 nbd=False, env=None):
        """@addr: the address it listens on and is reached at; @wrap: a
        command prefix (ip netns exec NS: a host in its own namespace); @nbd:
        the NBD listener on @addr, an ephemeral port (nbd_port), else none;
        @env: variables added to its environment."""
        self.binary = binary
        self.env = dict(env or {})
        self.addr = addr
        self.wrap = list(wrap)
        self.nbd = nbd
        self.nbd_port = None
        self.own_dir = data_dir is None
        self.dir = data_dir or tempfile.mkdtemp(prefix='vessel-it-')
        self.extra = list(extra)
        self.tls = tls
        self.tls_port = None
        self.proc = None
        self.port = None
        self.unix = None
        self.log_path = os.path.join(self.dir, 'vesseld.log')

    def start(self, timeout=20):
        pw = os.path.join(self.dir, 'rootpw')
        with open(pw, 'w') as f:
            f.write(ROOT_PASSWORD + '\n')
        log = open(self.log_path, 'a')
        log_start = log.tell()
        self.proc = subprocess.Popen(
            self.wrap +
            [self.binary, '--data-dir', os.path.join(self.dir, 'data'), '--listen', self.addr + ':0',
             '--tls-listen', self.addr + ':0' if self.tls else 'none', '--root-password-file', pw,
             '--nbd-listen', self.addr + ':0' if self.nbd else 'none'] +
            self.extra,
            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            env=dict(os.environ, **self.env) if self.env else None)
        deadline = time.time() + timeout
        while time.time() < deadline:
            with open(self.log_path) as f:
                f.seek(log_start)
                text = f.read()
            m = re.search(r'vesseld\.ready .*http_port=(\d+) .*https_port=(\d+) .*unix=(\S+)', text)
            if m:
                self.port = int(m.group(1))
                self.tls_port = int(m.group(2))
                self.unix = m.group(3)
                n = re.search(r'vesseld\.ready .*nbd_port=(\d+)', text)
                self.nbd_port = int(n.group(1)) if n else None
                return self
            if self.proc.poll() is not None:
                raise RuntimeError('vesseld exited with status %s: %s' % (self.proc.returncode, text[-2000:]))
            time.sleep(0.02)
        raise RuntimeError('vesseld did not become ready')

    def url(self, path='/'):
        return 'http://%s:%d%s' % (self.addr, self.port, path)

    def proxy(self, path='/'):
        return xmlrpc.client.ServerProxy(self.url(path), allow_none=False)

    def unix_proxy(self):
        return xmlrpc.client.ServerProxy('http://localhost/', transport=UnixTransport(self.unix))

    def login(self, user='root', password=ROOT_PASSWORD):
        r = self.proxy().session.login_with_password(user, password, '1.0', 'integration')
        if r['Status'] != 'Success':
            raise RuntimeError('login failed: %r' % r)
        return r['Value']

    def local_login(self, user='root', password=ROOT_PASSWORD):
        """A session on this host even when it is a pool member, which
        answers login_with_password with HOST_IS_SLAVE."""
        r = self.proxy().session.slave_local_login_with_password(user, password)
        if r['Status'] != 'Success':
            raise RuntimeError('login failed: %r' % r)
        return r['Value']

    def jsonrpc(self, method, params, version='2.0', req_id=1):
        body = {'method': method, 'params': params, 'id': req_id}
        if version:
            body['jsonrpc'] = version
        return self.post('/jsonrpc', json.dumps(body).encode(), 'application/json')

    def post(self, path, body, ctype='text/xml'):
        c = http.client.HTTPConnection(self.addr, self.port, timeout=30)
        c.request('POST', path, body=body, headers={'Content-Type': ctype})
        r = c.getresponse()
        data = r.read()
        headers = dict(r.getheaders())
        c.close()
        return r.status, headers, data

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode if self.proc else None
        self.proc = None
        return rc

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def kill_all(self):
        """Kills vesseld and what it left running: guests and disk servers
        outlive vesseld by design, so a test ends its own (disk servers name
        the data directory on their command line, device models work in
        their directory under it)."""
        self.kill()
        subprocess.run(['pkill', '-9', '-f', self.dir], capture_output=True)
        real = os.path.realpath(self.dir) + '/'
        for pid in os.listdir('/proc'):
            try:
                if pid.isdigit() and os.readlink('/proc/%s/cwd' % pid).startswith(real):
                    os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass

    def cleanup(self):
        self.kill_all()  # its disk servers and guests outlive it by design
        if Tap.failures or sys.exc_info()[0] is not None:
            self.show_log()
        if self.own_dir and not os.environ.get('VESSEL_KEEP'):
            shutil.rmtree(self.dir, ignore_errors=True)

    def show_log(self, n=40):
        """Prints, as TAP comments, the log's last @n warnings and errors and
        its last @n lines: after a failure, what the test's output keeps of
        a log its directory's removal takes (a test that passes its own
        directory, as the pool tests do, removes it itself)."""
        try:
            with open(self.log_path, errors='replace') as f:
                lines = f.read().splitlines()
        except OSError:
            return
        bad = [ln for ln in lines if ' warn ' in ln or ' error ' in ln][-n:]
        for title, part in (('warnings and errors', bad), ('last lines', lines[-n:])):
            print('# vesseld log %s, %s:' % (self.log_path, title))
            for ln in part:
                print('#   ' + ln[:400])
        sys.stdout.flush()


def value(r):
    """The Value of a Success reply, or raise with the ErrorDescription."""
    if isinstance(r, dict) and r.get('Status') == 'Success':
        return r['Value']
    raise AssertionError('call failed: %r' % (r,))


def error(r):
    """The ErrorDescription of a Failure reply, or None."""
    if isinstance(r, dict) and r.get('Status') == 'Failure':
        return r['ErrorDescription']
    return None


def wait_for(fn, timeout=30.0, step=0.1):
    """fn() until it is true or @timeout seconds pass; its last value."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = fn()
        if r:
            return r
        time.sleep(step)
    return fn()


def console_type(d, sess, console_ref, line, expect, timeout=30.0):
    """Types @line on a vt100 console through CONNECT /console; returns what
    came back until @expect appeared (or the timeout)."""
    s = socket.create_connection((d.addr, d.port), timeout=timeout)
    s.sendall(('CONNECT /console?ref=%s&session_id=%s HTTP/1.1\r\nHost: x\r\n\r\n'
               % (console_ref, sess)).encode())
    data = b''
    while b'\r\n\r\n' not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b'\r\n\r\n')
    if not head.startswith(b'HTTP/1.1 200'):
        s.close()
        return head.decode(errors='replace')
    s.sendall(line.encode() + b'\n')
    out = rest
    deadline = time.time() + timeout
    while expect.encode() not in out and time.time() < deadline:
        try:
            chunk = s.recv(4096)
        except socket.timeout:
            break
        if not chunk:
            break
        out += chunk
    s.close()
    return out.decode(errors='replace')


def console_log(d, uuid):
    """What VM @uuid of vesseld @d printed on its serial console so far."""
    try:
        with open(os.path.join(d.dir, 'data', 'console', uuid + '.log'), errors='replace') as f:
            return f.read()
    except OSError:
        return ''


def add_account(d, sess, name, password, role):
    """A local account @name with one role (e.g. 'read-only'), the way the
    README says: `vesseld passwd`, a subject, then subject.add_to_roles (a new
    subject has no role). Returns the subject's ref."""
    vesseld = os.path.join(os.path.dirname(d.binary), 'vesseld')
    p = subprocess.run([vesseld, 'passwd', name, '--data-dir', os.path.join(d.dir, 'data')],
                       input=(password + '\n').encode(), capture_output=True)
    if p.returncode != 0:
        raise RuntimeError('vesseld passwd %s: %s' % (name, p.stderr))
    s = d.proxy()
    subj = value(s.subject.create(sess, {'subject_identifier': 'local:' + name,
                                         'other_config': {'subject-name': name}}))
    value(s.subject.add_to_roles(sess, subj, value(s.role.get_by_name_label(sess, role))[0]))
    return subj


def run_in_netns(prefix, argv):
    """Runs @argv in a network namespace made for it (named @prefix-PID) and
    removes the namespace (killing what is left in it) afterwards; its exit
    status, or None when no namespace can be made."""
    ns = '%s-%d' % (prefix, os.getpid())
    if subprocess.run(['ip', 'netns', 'add', ns], capture_output=True).returncode != 0:
        return None
    try:
        return subprocess.run(['ip', 'netns', 'exec', ns] + list(argv)).returncode
    finally:
        for pid in subprocess.run(['ip', 'netns', 'pids', ns], capture_output=True,
                                  text=True).stdout.split():
            try:
                os.kill(int(pid), 9)
            except (OSError, ValueError):
                pass
        subprocess.run(['ip', 'netns', 'del', ns])


def build_test_guest(t, guest):
    """Builds, or brings up to date, the test guest (kernel and busybox
    initramfs) in @guest with tests/guest/build-guest.sh; False, as a failed
    check on @t with the script's errors, when it cannot."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'guest',
                          'build-guest.sh')
    r = subprocess.run(['sh', script, guest], capture_output=True, text=True)
    if r.returncode != 0:
        t.ok(False, 'build the test guest', r.stderr)
        return False
    return True


def test_main(binary, body, extra=(), tls=False, env=None, after=None, t=None):
    """The frame of a test of one vesseld: started with @extra, body(t, d)
    run (an exception in it is a failed check with its traceback), then its
    guests and disk servers (which outlive vesseld by design) killed, the data
    dir removed and after() called, whatever happened. Returns the exit status
    for sys.exit."""
    import traceback
    t = t or Tap()
    d = Vesseld(binary, tls=tls, env=env, extra=list(extra))
    try:
        d.start()
        body(t, d)
    except Exception as exc:  # a crash of the test is a failure, with its reason
        t.ok(False, 'test raised %s' % type(exc).__name__, traceback.format_exc())
    finally:
        d.kill_all()
        d.cleanup()
        if after:
            after()
    return t.done()


def guest_test_main(binary, guest, body, extra=(), tls=False, env=None, after=None):
    """test_main for a test of real guests: the test guest built first, and
    vesseld on the qemu backend with it."""
    t = Tap()
    if not build_test_guest(t, guest):
        return t.done()
    return test_main(binary, body, ['--backend', 'qemu', '--guest-kernel-dir', guest] + list(extra),
                     tls=tls, env=env, after=after, t=t)
