#!/usr/bin/env python3
"""tests/integration/test_pyclient.py - client/python/vessel_xenapi.py, the
lean Python client that is a drop-in for XenAPI.py (issue 18).

Two parts:
  - against scripted HTTP servers (a socketserver per case, 127.0.0.1, an
    ephemeral port): chunked replies, a reply cut short, a garbage status
    line, Connection: close, a kept-alive connection the server closed while
    idle (one reconnect) and the cases where a call must not be sent twice,
    a 3 MB reply, the timeout option, HTTP and JSON-RPC errors, HOST_IS_SLAVE;
  - against a real vesseld (sim backend, TLS on): login, get_all and
    get_record, a XenAPI error with its details, the re-login after
    SESSION_INVALID and the error once logged out, event.from, the unix
    socket (xapi_local), TLS.
Every socket has a timeout, so a client that waits for a reply that never
comes fails the test instead of hanging it. Usage: test_pyclient.py BUILD/vesseld
"""
import json
import os
import socket
import socketserver
import ssl
import sys
import threading
import time
import xmlrpc.client

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, '..', '..', 'client', 'python'))
from harness import ROOT_PASSWORD, Tap, test_main  # noqa: E402
import vessel_xenapi as XenAPI  # noqa: E402

TIMEOUT = 10  # seconds; only reached when the client under test is broken

# --------------------------------------------------------------------------- scripted servers


class Scripted(socketserver.ThreadingTCPServer):
    """Serves each connection with script(handler, n) (n: 0 for the first
    connection); records the JSON-RPC requests it read, in order, and how
    many connections came."""
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, script):
        super().__init__(('127.0.0.1', 0), Handler)
        self.script = script
        self.requests = []
        self.connections = 0
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def url(self):
        return 'http://127.0.0.1:%d/' % self.server_address[1]

    def stop(self):
        self.shutdown()
        self.server_close()


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        self.request.settimeout(TIMEOUT)
        with self.server.lock:
            n = self.server.connections
            self.server.connections += 1
        try:
            self.server.script(self, n)
        except OSError:
            pass

    def read_request(self):
        """The next request's JSON body, or None at EOF."""
        line = self.rfile.readline()
        if not line:
            return None
        length = 0
        while True:
            h = self.rfile.readline()
            if h in (b'\r\n', b''):
                break
            name, _, val = h.partition(b':')
            if name.strip().lower() == b'content-length':
                length = int(val)
        req = json.loads(self.rfile.read(length))
        with self.server.lock:
            self.server.requests.append(req)
        return req

    def send(self, data):
        self.wfile.write(data)
        self.wfile.flush()


def reply_bytes(req, result, extra=b''):
    body = json.dumps({'jsonrpc': '2.0', 'result': result, 'id': req['id']}).encode()
    return (b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s'
            % (extra, len(body), body))


def answer_all(h, n):
    """A well-behaved server: answers every request with its method name."""
    while True:
        req = h.read_request()
        if req is None:
            return
        h.send(reply_bytes(req, req['method']))


def outcome(fn):
    """('ok', value) or ('raised', exception)."""
    try:
        return 'ok', fn()
    except Exception as e:  # noqa: BLE001 - the test looks at which one
        return 'raised', e


def with_server(script, fn):
    srv = Scripted(script)
    try:
        s = XenAPI.Session(srv.url(), timeout=TIMEOUT)
        try:
            return fn(srv, s)
        finally:
            s.close()
    finally:
        srv.stop()


def protocol_error(t, r, want, name):
    """@r is outcome() of a call that must fail with a ProtocolError whose
    message holds @want."""
    kind, e = r
    t.ok(kind == 'raised' and isinstance(e, XenAPI.ProtocolError) and want in str(e),
         name, 'got %s %r' % (kind, e))


def fake_server_cases(t):
    def chunked(h, n):
        while True:
            req = h.read_request()
            if req is None:
                return
            body = json.dumps({'jsonrpc': '2.0', 'result': {'value': 'x' * 300, 'n': '42'},
                               'id': req['id']}).encode()
            a, b = body[:7], body[7:]
            h.send(b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n')
            h.send(b'%x;ext=1\r\n%s\r\n' % (len(a), a))  # a chunk extension is ignored
            h.send(b'%X\r\n%s\r\n0\r\nX-Trailer: y\r\n\r\n' % (len(b), b))

    def run(srv, s):
        one = outcome(lambda: s.VM.get_all('s'))
        two = outcome(lambda: s.VM.get_all('s'))
        return one, two, srv.connections
    one, two, conns = with_server(chunked, run)
    want = ('ok', {'Status': 'Success', 'Value': {'value': 'x' * 300, 'n': '42'}})
    t.eq(one, want, 'chunked reply: the chunks joined, extension and trailer skipped')
    t.eq((two, conns), (want, 1), 'after a chunked reply the connection serves the next call')

    big = {'k%d' % i: 'v' * 100 for i in range(30000)}  # 3 MB, many reads

    def big_replies(h, n):
        req = h.read_request()
        body = json.dumps({'jsonrpc': '2.0', 'result': big, 'id': req['id']}).encode()
        h.send(b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n' % len(body))
        for i in range(0, len(body), 65000):
            h.send(body[i:i + 65000])
        req = h.read_request()
        body = json.dumps({'jsonrpc': '2.0', 'result': big, 'id': req['id']}).encode()
        h.send(b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n'
               % (len(body), body))
    r = with_server(big_replies, lambda srv, s: (s.VM.get_all('s'), s.VM.get_all('s')))
    t.eq(r, ({'Status': 'Success', 'Value': big},) * 2,
         'a 3 MB reply, by Content-Length and as one chunk, arrives whole')

    def cut(h, n):
        req = h.read_request()
        body = json.dumps({'jsonrpc': '2.0', 'result': 'abc', 'id': req['id']}).encode()
        h.send(b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s' % (len(body) + 50, body))
    r, reqs = with_server(cut, lambda srv, s: (outcome(lambda: s.VM.get_all('s')),
                                               len(srv.requests)))
    protocol_error(t, r, 'cut short', 'a reply shorter than its Content-Length: ProtocolError')
    t.eq(reqs, 1, 'a reply cut short is not a reason to send the call again')

    def cut_chunk(h, n):
        h.read_request()
        h.send(b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n{"jsonrpc"')
    r = with_server(cut_chunk, lambda srv, s: outcome(lambda: s.VM.get_all('s')))
    protocol_error(t, r, 'cut short', 'a chunked reply cut inside a chunk: ProtocolError')

    def garbage(h, n):
        h.read_request()
        h.send(b'SSH-2.0-OpenSSH_9.2\r\n')  # and keep the connection open
        h.rfile.read(1)
    r = with_server(garbage, lambda srv, s: outcome(lambda: s.VM.get_all('s')))
    protocol_error(t, r, 'garbage status line',
                   'a garbage status line: ProtocolError at once (the server keeps the '
                   'connection open)')

    def bad_status(h, n):
        h.read_request()
        h.send(b'HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\n{}')
    r = with_server(bad_status, lambda srv, s: outcome(lambda: s.VM.get_all('s')))
    protocol_error(t, r, 'garbage status line', 'a four-digit status: ProtocolError')

    def close_header(h, n):
        if n == 0:
            req = h.read_request()
            h.send(reply_bytes(req, 'first', b'Connection: close\r\n'))
            # the socket stays open: only the header says to go; a request
            # sent on it anyway is counted, and left unanswered
            h.read_request()
            return
        answer_all(h, n)
    r = with_server(close_header,
                    lambda srv, s: (outcome(lambda: s.VM.get_all('s')),
                                    outcome(lambda: s.VM.get_all('s')), srv.connections,
                                    len(srv.requests)))
    t.eq(r, (('ok', {'Status': 'Success', 'Value': 'first'}),
             ('ok', {'Status': 'Success', 'Value': 'VM.get_all'}), 2, 2),
         'Connection: close honoured: the next call on a new connection')

    idle_closed = threading.Event()

    def idle_close(h, n):
        req = h.read_request()
        h.send(reply_bytes(req, 'conn%d' % n))
        if n == 0:  # then end the kept-alive connection while it is idle
            h.request.shutdown(socket.SHUT_RDWR)
            idle_closed.set()
            return
        answer_all(h, n)

    def run_idle(srv, s):
        first = outcome(lambda: s.VM.get_all('s'))
        idle_closed.wait(TIMEOUT)
        return first, outcome(lambda: s.VM.get_all('s')), srv.connections, len(srv.requests)
    r = with_server(idle_close, run_idle)
    t.eq(r, (('ok', {'Status': 'Success', 'Value': 'conn0'}),
             ('ok', {'Status': 'Success', 'Value': 'conn1'}), 2, 2),
         'a kept-alive connection closed while idle: one reconnect, each call sent once')

    half_closed = threading.Event()

    def idle_half_close(h, n):
        req = h.read_request()
        h.send(reply_bytes(req, 'conn%d' % n))
        if n == 0:
            # the server's end is closed, its reading side still counts a
            # request sent on the dead connection
            h.request.shutdown(socket.SHUT_WR)
            half_closed.set()
            h.read_request()
            return
        answer_all(h, n)

    def run_long_idle(srv, s):
        first = outcome(lambda: s.VM.get_all('s'))
        half_closed.wait(TIMEOUT)
        time.sleep(XenAPI.IDLE_CHECK + 0.1)
        return first, outcome(lambda: s.VM.get_all('s')), srv.connections, len(srv.requests)
    r = with_server(idle_half_close, run_long_idle)
    t.eq(r, (('ok', {'Status': 'Success', 'Value': 'conn0'}),
             ('ok', {'Status': 'Success', 'Value': 'conn1'}), 2, 2),
         'a connection idle for longer than IDLE_CHECK and closed: nothing sent on it')

    def closed_unanswered(h, n):
        if n == 0:
            req = h.read_request()
            h.send(reply_bytes(req, 'first'))
            # the next request arrives; the connection closes before any byte
            # of its reply (the race with an idle close the client lost)
            h.read_request()
            return
        answer_all(h, n)
    r = with_server(closed_unanswered,
                    lambda srv, s: (outcome(lambda: s.VM.get_all('s')),
                                    outcome(lambda: s.VM.get_all('s')), srv.connections))
    t.eq(r, (('ok', {'Status': 'Success', 'Value': 'first'}),
             ('ok', {'Status': 'Success', 'Value': 'VM.get_all'}), 2),
         'a kept-alive connection closed before any reply byte: sent again on a new one')

    def never_twice(h, n):
        h.read_request()  # a first connection closed unanswered: the call may have run
    r, reqs = with_server(never_twice, lambda srv, s: (outcome(lambda: s.VM.start('s', 'vm')),
                                                       len(srv.requests)))
    protocol_error(t, r, 'closed before any reply',
                   'a new connection closed before any reply: ProtocolError')
    t.eq(reqs, 1, 'a call on a new connection is never sent twice')

    def twice_closed(h, n):
        req = h.read_request()
        if n == 0:
            h.send(reply_bytes(req, 'first'))
            h.read_request()
        # the retried call's connection closes unanswered as well: no third send
    r, reqs = with_server(twice_closed,
                          lambda srv, s: (outcome(lambda: s.VM.get_all('s')) and
                                          outcome(lambda: s.VM.start('s', 'vm')),
                                          len(srv.requests)))
    protocol_error(t, r, 'closed before any reply', 'reconnect once only: then ProtocolError')
    t.eq(reqs, 3, 'the call was sent at most twice (once per connection)')

    def silent(h, n):
        h.read_request()
        h.rfile.read(1)  # never answers; returns when the client goes
    srv = Scripted(silent)
    try:
        s = XenAPI.Session(srv.url(), timeout=0.3)
        kind, e = outcome(lambda: s.VM.start('s', 'vm'))
        t.ok(kind == 'raised' and isinstance(e, socket.timeout) and len(srv.requests) == 1,
             'Session(timeout=0.3) on a server that never answers: socket.timeout, sent once',
             repr((kind, e, srv.requests)))
        s.close()
    finally:
        srv.stop()

    def http_500(h, n):
        h.read_request()
        h.send(b'HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/html\r\n'
               b'Connection: close\r\nContent-Length: 21\r\n\r\n<html>bad json</html>')
    r = with_server(http_500, lambda srv, s: outcome(lambda: s.VM.get_all('s')))
    kind, e = r
    t.ok(kind == 'raised' and isinstance(e, xmlrpc.client.ProtocolError) and e.errcode == 500
         and 'bad json' in str(e),
         'HTTP 500: an xmlrpc.client.ProtocolError with errcode 500 and the body', repr(r))

    def not_json(h, n):
        req = h.read_request()
        h.send(b'HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{"result"')
        answer_all(h, n)
    r = with_server(not_json, lambda srv, s: outcome(lambda: s.VM.get_all('s')))
    protocol_error(t, r, 'not JSON', 'a 200 reply whose body is not JSON: ProtocolError')

    def v1_error(h, n):
        req = h.read_request()
        body = json.dumps({'result': None, 'error': ['HOST_IS_SLAVE', '192.0.2.1'],
                           'id': req['id']}).encode()
        h.send(b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s' % (len(body), body))
        req = h.read_request()
        body = json.dumps({'jsonrpc': '2.0', 'id': req['id'],
                           'error': {'code': 1, 'message': 'HOST_IS_SLAVE',
                                     'data': ['192.0.2.1']}}).encode()
        h.send(b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s' % (len(body), body))

    def login_twice(srv, s):
        return (outcome(lambda: s.xenapi.login_with_password('root', 'pw', '1.0', 't')),
                outcome(lambda: s.xenapi.login_with_password('root', 'pw', '1.0', 't')),
                [r['method'] for r in srv.requests], srv.requests[0]['params'])
    first, second, methods, params = with_server(v1_error, login_twice)
    for what, r in (('a v1 error array', first), ('a v2 error object', second)):
        kind, e = r
        t.ok(kind == 'raised' and isinstance(e, XenAPI.Failure) and
             e.details == ['HOST_IS_SLAVE', '192.0.2.1'] and
             str(e) == "['HOST_IS_SLAVE', '192.0.2.1']",
             'HOST_IS_SLAVE as %s reaches the caller as a Failure' % what, repr(r))
    t.eq((methods, params), (['session.login_with_password'] * 2, ['root', 'pw', '1.0', 't']),
         'login_with_password is sent as session.login_with_password without a session')


# --------------------------------------------------------------------------- vesseld


def vesseld_cases(t, d):
    s = XenAPI.Session(d.url(), timeout=TIMEOUT)
    t.eq(outcome(lambda: s.xenapi.VM.get_all())[1].__class__, xmlrpc.client.Fault,
         'a call before any login: Fault (You must log in), as XenAPI.py')
    s.xenapi.login_with_password('root', ROOT_PASSWORD, '1.0', 'test_pyclient')
    first = s.handle
    t.ok(isinstance(first, str) and first.startswith('OpaqueRef:'), 'login: handle is the ref')
    vms = s.xenapi.VM.get_all()
    t.ok(isinstance(vms, list) and vms and all(v.startswith('OpaqueRef:') for v in vms),
         'VM.get_all: a list of refs')
    rec = s.xenapi.VM.get_record(vms[0])
    t.ok(isinstance(rec, dict) and rec.get('uuid') and
         s.xenapi.VM.get_by_uuid(rec['uuid']) == vms[0], 'VM.get_record and get_by_uuid agree')
    t.ok(isinstance(rec['memory_static_max'], str) and rec['memory_static_max'].isdigit() and
         isinstance(rec['is_a_template'], bool),
         'ints come as strings and bools as bools, as XenAPI.py gives them', repr(rec)[:300])
    t.eq(sorted(s.xenapi_request('VM.get_all', ())), sorted(vms),
         "xenapi_request('VM.get_all', ()): the session put first, as xenapi.VM.get_all()")
    recs = s.xenapi.VM.get_all_records()
    t.eq(sorted(recs), sorted(vms), 'VM.get_all_records is keyed by the refs of get_all')

    n = XenAPI.Session(d.url(), timeout=TIMEOUT, native_ints=True)
    n.xenapi.login_with_password('root', ROOT_PASSWORD)
    t.eq(n.xenapi.VM.get_memory_static_max(vms[0]), int(rec['memory_static_max']),
         'native_ints=True: ints as Python ints')
    n.xenapi.logout()

    bad = 'OpaqueRef:00000000-0000-0000-0000-000000000bad'
    kind, e = outcome(lambda: s.xenapi.VM.get_record(bad))
    t.ok(kind == 'raised' and isinstance(e, XenAPI.Failure) and
         e.details == ['HANDLE_INVALID', 'VM', bad] and str(e) == str(['HANDLE_INVALID', 'VM', bad])
         and e._details_map() == {'0': 'HANDLE_INVALID', '1': 'VM', '2': bad},
         'HANDLE_INVALID: a Failure with its details', repr((kind, e)))
    raw = s.VM.get_record(s.handle, bad)
    t.eq(raw, {'Status': 'Failure', 'ErrorDescription': ['HANDLE_INVALID', 'VM', bad]},
         'session.VM.get_record(ref, ...): the raw reply, as ServerProxy gives it')

    # another client ends the session: the next call logs in again (XenAPI.py)
    other = XenAPI.Session(d.url(), timeout=TIMEOUT)
    t.eq(other.session.logout(first), {'Status': 'Success', 'Value': ''},
         'the session ended from another client')
    t.eq(s.VM.get_all(first)['ErrorDescription'], ['SESSION_INVALID', first],
         'a call with the ended session: SESSION_INVALID with the ref')
    t.eq(sorted(s.xenapi.VM.get_all()), sorted(vms),
         'after SESSION_INVALID the client logged in again and the call succeeded')
    t.ok(s.handle != first and s.handle.startswith('OpaqueRef:'), 'with a new session ref')

    token = getattr(s.xenapi.event, 'from')(['VM'], '', 0.0)['token']
    s.xenapi.VM.set_name_label(vms[0], 'renamed by test_pyclient')
    ev = getattr(s.xenapi.event, 'from')(['VM'], token, 5.0)
    hits = [e for e in ev['events'] if e['ref'] == vms[0] and e['operation'] == 'mod']
    t.ok(hits and hits[-1]['snapshot']['name_label'] == 'renamed by test_pyclient'
         and ev['token'] != token, "event.from: the rename as a 'mod' event and a new token",
         repr(ev)[:400])

    t.eq(s.API_version, '%s.%s' % (s.xenapi.host.get_API_version_major(
        s.xenapi.host.get_all()[0]), s.xenapi.host.get_API_version_minor(
        s.xenapi.host.get_all()[0])), 'API_version read from the master')

    old = s.handle
    s.xenapi.logout()
    t.eq(s.handle, None, 'logout forgets the session')
    t.eq(other.VM.get_all(old)['ErrorDescription'], ['SESSION_INVALID', old],
         'after logout the session ref is SESSION_INVALID on the server')
    kind, e = outcome(lambda: s.xenapi.VM.get_all())
    t.ok(kind == 'raised' and isinstance(e, xmlrpc.client.Fault) and e.faultCode == 401,
         'a call after logout: Fault 401 You must log in (no silent re-login)', repr(e))
    kind, e = outcome(lambda: s.xenapi.login_with_password('root', 'wrong-password'))
    t.ok(kind == 'raised' and isinstance(e, XenAPI.Failure) and
         e.details[0] == 'SESSION_AUTHENTICATION_FAILED', 'a wrong password: Failure', repr(e))
    s.close()

    with XenAPI.Session(d.url(), timeout=TIMEOUT) as c:
        c.xenapi.login_with_password('root', ROOT_PASSWORD)
        c.xenapi.pool.get_all()
        c.xenapi.logout()
    t.eq(c._conn.sock, None, 'with Session(...) as s: the connection closed at the end')

    u = XenAPI.xapi_local(d.unix)
    u.xenapi.login_with_password('root', 'any password: the socket is the superuser')
    t.eq(u.xenapi.VM.get_all_records().keys(), recs.keys(),
         'xapi_local(path): logged in over the unix socket, calls work')
    u.xenapi.logout()
    os.environ['XE_UNIX_SOCKET'] = d.unix
    u = XenAPI.xapi_local()
    u.xenapi.slave_local_login_with_password('root', '')
    t.ok(u.xenapi.host.get_all(), 'xapi_local() finds $XE_UNIX_SOCKET; slave_local login works')
    u.xenapi.logout()

    tls = 'https://127.0.0.1:%d/' % d.tls_port
    kind, e = outcome(lambda: XenAPI.Session(tls, timeout=TIMEOUT).xenapi.login_with_password(
        'root', ROOT_PASSWORD))
    t.ok(kind == 'raised' and isinstance(e, ssl.SSLError),
         'https: a self-signed certificate is refused by default', repr(e))
    h = XenAPI.Session(tls, ignore_ssl=True, timeout=TIMEOUT)
    h.xenapi.login_with_password('root', ROOT_PASSWORD)
    t.eq(sorted(h.xenapi.VM.get_all()), sorted(vms), 'https with ignore_ssl=True: calls work')
    t.eq(sorted(h.xenapi.VM.get_all()), sorted(vms), 'https: a second call on the connection')
    h.xenapi.logout()
    ctx = ssl.create_default_context(cafile=os.path.join(d.dir, 'data', 'tls', 'cert.pem'))
    ctx.check_hostname = False
    h = XenAPI.Session(tls, context=ctx, timeout=TIMEOUT)
    h.xenapi.login_with_password('root', ROOT_PASSWORD)
    t.ok(h.xenapi.pool.get_all(), 'https with a context trusting the host certificate')
    h.xenapi.logout()


def main():
    t = Tap()
    fake_server_cases(t)
    return test_main(sys.argv[1], vesseld_cases, ['--backend', 'sim'], tls=True, t=t)


if __name__ == '__main__':
    sys.exit(main())
