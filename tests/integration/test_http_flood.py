#!/usr/bin/env python3
"""tests/integration/test_http_flood.py - connection exhaustion (issue 11, finding 10).

The attack: thousands of idle TCP connections, no login needed, used to lock
every new client out (about 1,020 filled a listener; new clients waited up
to 120 s, TLS handshakes included). Here 5,000 idle connections are opened
to the plain listener and 5,000 to the TLS listener from 127.0.0.1, and while
they are all open a client logs in through each listener and the unix
socket: each login must succeed within 2 s. Then:
 - the idle connections are closed by vesseld after the unauthenticated
   timeout (--unauthenticated-timeout, shortened here);
 - a connection that made an authenticated call is kept past that timeout,
   and an event.from long poll longer than it is answered;
 - a non-loopback address (127.0.0.2) is held to --max-connections-per-address:
   connections beyond it are closed at once, other addresses are unaffected;
 - the daemon serves normally afterwards.
Usage: test_http_flood.py BUILD/vesseld   (FLOOD_N overrides 5000)
"""
import http.client
import os
import resource
import select
import socket
import ssl
import sys
import time
import xmlrpc.client

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT_PASSWORD, Tap, Vesseld, value  # noqa: E402

FLOOD_N = int(os.environ.get('FLOOD_N', '5000'))
UNAUTH_TIMEOUT_S = 3
PER_ADDRESS = 40


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need and (hard == resource.RLIM_INFINITY or hard >= need):
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def flood(port, n, source='127.0.0.1', timeout=15.0):
    """Opens @n idle connections to @port (non-blocking connects, then waits
    until each is established or fails). Returns (open sockets, failures)."""
    pending, failed = [], 0
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        if source != '127.0.0.1':
            s.bind((source, 0))
        rc = s.connect_ex(('127.0.0.1', port))
        if rc not in (0, 115):  # EINPROGRESS
            s.close()
            failed += 1
            continue
        pending.append(s)
    done = []
    p = select.poll()
    fds = {s.fileno(): s for s in pending}
    for fd in fds:
        p.register(fd, select.POLLOUT)
    deadline = time.time() + timeout
    while fds and time.time() < deadline:
        for fd, ev in p.poll(200):
            s = fds.pop(fd)
            p.unregister(fd)
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                done.append(s)
            else:
                s.close()
                failed += 1
    for s in fds.values():  # never established: counts as open (it is the attack)
        done.append(s)
    return done, failed


def timed(fn):
    t0 = time.time()
    try:
        r = fn()
        return r, time.time() - t0, None
    except Exception as exc:  # noqa: BLE001 - the test reports any failure
        return None, time.time() - t0, exc


def tls_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class TimeoutTransport(xmlrpc.client.Transport):
    def __init__(self, timeout, source=None):
        super().__init__()
        self.timeout = timeout
        self.source = source

    def make_connection(self, host):
        return http.client.HTTPConnection(host, timeout=self.timeout,
                                          source_address=(self.source, 0) if self.source else None)


class TimeoutSafeTransport(xmlrpc.client.SafeTransport):
    def __init__(self, timeout):
        super().__init__(context=tls_ctx())
        self.timeout = timeout

    def make_connection(self, host):
        return http.client.HTTPSConnection(host, timeout=self.timeout, context=tls_ctx())


def login_plain(d, timeout=10, source=None):
    s = xmlrpc.client.ServerProxy('http://127.0.0.1:%d/' % d.port,
                                  transport=TimeoutTransport(timeout, source))
    return value(s.session.login_with_password('root', ROOT_PASSWORD, '1.0', 'flood'))


def login_tls(d, timeout=10):
    s = xmlrpc.client.ServerProxy('https://127.0.0.1:%d/' % d.tls_port,
                                  transport=TimeoutSafeTransport(timeout))
    return value(s.session.login_with_password('root', ROOT_PASSWORD, '1.0', 'flood'))


def login_unix(d):
    return value(d.unix_proxy().session.login_with_password('root', ROOT_PASSWORD, '1.0', 'flood'))


def closed_by_peer(socks, wait_s):
    """How many of @socks read EOF (or reset) within @wait_s seconds (a TLS
    server may send an alert first: that is read and skipped), and the list of
    those still open."""
    p = select.poll()
    left = {s.fileno(): s for s in socks}
    for fd, s in left.items():
        s.setblocking(False)
        p.register(fd, select.POLLIN)
    closed = 0
    deadline = time.time() + wait_s
    while left and time.time() < deadline:
        for fd, ev in p.poll(200):
            try:
                data = left[fd].recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data = b''
            if data == b'':
                del left[fd]
                p.unregister(fd)
                closed += 1
    return closed, list(left.values())


def closed_after_a_byte(socks):
    """Of @socks, still open long after the server's idle timeout, how many
    close once a byte is sent on each. With the accept queue full, Linux drops
    a handshake's last ACK (tcp_abort_on_overflow 0) and in the end forgets
    the connection, while the client's side stays established and silent:
    no process ever had it to close. The byte shows it: the server's kernel
    resets it, or (a SYN cookie still valid) makes it then, and vesseld takes
    it and closes it after its timeout. A connection vesseld held all along
    stays open."""
    for s in socks:
        try:
            s.send(b'G')
        except OSError:
            pass
    return closed_by_peer(socks, UNAUTH_TIMEOUT_S + 5)[0]


def the_flood(t, d):
    socks = []
    t0 = time.time()
    for port, name in ((d.port, 'plain'), (d.tls_port, 'TLS')):
        open_, failed = flood(port, FLOOD_N)
        socks += open_
        t.ok(failed == 0, '%d idle connections to the %s listener from 127.0.0.1 (%d failed)'
             % (FLOOD_N, name, failed))
    print('# flood of %d connections opened in %.2f s' % (len(socks), time.time() - t0))
    for name, fn in (('plain HTTP', lambda: login_plain(d)), ('HTTPS', lambda: login_tls(d)),
                     ('the unix socket', lambda: login_unix(d))):
        r, dt, exc = timed(fn)
        print('# login through %s during the flood: %.3f s' % (name, dt))
        t.ok(exc is None and r and dt <= 2.0,
             'a login through %s succeeds within 2 s while the flood is open (%.3f s)' % (name, dt),
             repr(exc))
    # the flood has sent nothing: vesseld closes it after the short timeout.
    # Generous, and it returns as soon as all are closed: a slow build (ASan)
    # lets the listen backlog overflow, and a dropped SYN is sent again after
    # 1, 3, 7, 15, 31 and 63 s, so some connections are accepted late (one run
    # had 51 of 10000 still open after 33 s)
    n, still = closed_by_peer(socks, UNAUTH_TIMEOUT_S + 90)
    lost = closed_after_a_byte(still) if still else 0
    # at least half by themselves: a vesseld that only timed out connections
    # that sent something would pass the byte's check alone
    t.ok(n + lost == len(socks) and n >= len(socks) // 2,
         'vesseld closed the %d idle unauthenticated connections after %d s (%d closed, %d more '
         'once sent a byte: the kernel dropped them with the accept queue full)'
         % (len(socks), UNAUTH_TIMEOUT_S, n, lost))
    for s in socks:
        s.close()


def authenticated_keepalive(t, d):
    c = http.client.HTTPConnection('127.0.0.1', d.port, timeout=10)

    def call(method, *args):
        """(status, decoded reply) over @c, or None when @c was closed."""
        body = xmlrpc.client.dumps(args, method).encode()
        try:
            c.request('POST', '/', body=body, headers={'Content-Type': 'text/xml'})
            r = c.getresponse()
            return r.status, xmlrpc.client.loads(r.read())[0][0]
        except (http.client.HTTPException, OSError):
            return None

    r = call('session.login_with_password', 'root', ROOT_PASSWORD, '1.0', 'keepalive')
    t.ok(r and r[0] == 200 and r[1]['Status'] == 'Success', 'a login on a keep-alive connection', r)
    sess = r[1]['Value']
    time.sleep(UNAUTH_TIMEOUT_S + 2)
    r = call('host.get_all', sess)
    t.ok(r and r[1]['Status'] == 'Success',
         'the connection that logged in is still open after the unauthenticated timeout', r)
    time.sleep(UNAUTH_TIMEOUT_S + 2)
    r = call('host.get_all', sess)
    t.ok(r and r[1]['Status'] == 'Success', 'and after another such pause', r)
    c.close()
    c = http.client.HTTPConnection('127.0.0.1', d.port, timeout=10)
    r = call('session.login_with_password', 'root', 'wrong-password', '1.0', 'keepalive')
    t.ok(r and r[1]['Status'] == 'Failure', 'a failed login on another connection', r)
    time.sleep(UNAUTH_TIMEOUT_S + 2)
    t.ok(call('host.get_all', sess) is None,
         'that connection was closed after the unauthenticated timeout')
    c.close()
    # a long poll longer than the short timeout, on a fresh connection
    s = xmlrpc.client.ServerProxy('http://127.0.0.1:%d/' % d.port,
                                  transport=TimeoutTransport(UNAUTH_TIMEOUT_S * 4))
    token = value(getattr(s.event, 'from')(sess, ['pool'], '', 1.0))['token']
    s = xmlrpc.client.ServerProxy('http://127.0.0.1:%d/' % d.port,
                                  transport=TimeoutTransport(UNAUTH_TIMEOUT_S * 4))
    t0 = time.time()
    r = getattr(s.event, 'from')(sess, ['pool'], token, float(UNAUTH_TIMEOUT_S * 2))
    dt = time.time() - t0
    t.ok(isinstance(r, dict) and r.get('Status') == 'Success' and dt >= UNAUTH_TIMEOUT_S * 2 - 0.5,
         'an event.from waiting %d s (longer than that timeout) is answered (%.1f s)'
         % (UNAUTH_TIMEOUT_S * 2, dt), repr(r)[:300])


def per_address(t, d):
    socks, failed = flood(d.port, PER_ADDRESS, source='127.0.0.2')
    t.ok(failed == 0 and len(socks) == PER_ADDRESS,
         '%d idle connections from 127.0.0.2 (its limit)' % PER_ADDRESS)
    time.sleep(0.5)
    r, dt, exc = timed(lambda: login_plain(d, timeout=5, source='127.0.0.2'))
    t.ok(exc is not None and dt < 4, 'one more from 127.0.0.2 is refused at once (%.3f s)' % dt, repr(r))
    r, dt, exc = timed(lambda: login_plain(d, timeout=5))
    t.ok(exc is None and dt <= 2.0, 'another address still logs in (%.3f s)' % dt, repr(exc))
    for s in socks:
        s.close()
    time.sleep(0.5)
    r, dt, exc = timed(lambda: login_plain(d, timeout=5, source='127.0.0.2'))
    t.ok(exc is None, '127.0.0.2 logs in again once its connections are closed', repr(exc))


def still_serving(t, d):
    for name, fn in (('plain HTTP', lambda: login_plain(d)), ('HTTPS', lambda: login_tls(d)),
                     ('the unix socket', lambda: login_unix(d))):
        r, dt, exc = timed(fn)
        t.ok(exc is None and r, 'after the flood a login through %s works (%.3f s)' % (name, dt), repr(exc))
    sess = d.login()
    hosts = value(d.proxy().host.get_all(sess))
    t.eq(len(hosts), 1, 'and calls are served (host.get_all)')


def main():
    binary = sys.argv[1]
    t = Tap()
    have = raise_nofile(2 * FLOOD_N + 512)
    if have < 2 * FLOOD_N + 512:
        t.ok(False, 'this test needs %d descriptors (RLIMIT_NOFILE is %d)' % (2 * FLOOD_N + 512, have))
        return t.done()
    d = Vesseld(binary, tls=True,
                extra=['--backend', 'sim', '--unauthenticated-timeout', str(UNAUTH_TIMEOUT_S),
                       '--max-connections-per-address', str(PER_ADDRESS)])
    try:
        # vesseld starts with systemd's default soft limit and must raise it
        # itself; this process keeps what it raised (setrlimit is per process)
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        try:
            d.start()
        finally:
            raise_nofile(2 * FLOOD_N + 512)
        t.ok(d.tls_port > 0, 'vesseld listens on plain HTTP, HTTPS and a unix socket')
        with open('/proc/%d/limits' % d.proc.pid) as f:
            soft = [line.split()[3] for line in f if line.startswith('Max open files')][0]
        t.ok(soft == 'unlimited' or int(soft) >= 2 * FLOOD_N + 1024,
             'vesseld started with a soft RLIMIT_NOFILE of 1024 and raised it (%s)' % soft)
        the_flood(t, d)
        authenticated_keepalive(t, d)
        per_address(t, d)
        still_serving(t, d)
        t.ok(d.proc.poll() is None, 'vesseld is still running')
    except Exception as exc:  # noqa: BLE001
        import traceback
        t.ok(False, 'test raised %s' % type(exc).__name__, traceback.format_exc())
    finally:
        d.stop()
        d.cleanup()
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
