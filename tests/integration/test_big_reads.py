#!/usr/bin/env python3
"""tests/integration/test_big_reads.py - calls whose cost grows with the pool,
and password logins, do not hold up the other connections of their HTTP
thread (issue 18).

vesseld runs with one request thread per listener (--threads 1), so every
connection of a client shares the thread that reads its calls. A read of a
whole class (VM.get_all_records of 3,000 VMs: a reply of about 20 MB),
event.from from the empty token (every object of every class) and a batch of
password logins (yescrypt, ~20 ms each) are sent first; a small call
(VM.get_power_state) on another connection just after must be answered while
they are all still unanswered: none of them may have sent a byte by then.
Had they run on the HTTP thread, the small call would wait behind them.
Usage: test_big_reads.py BUILD/vesseld
"""
import os
import select
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT_PASSWORD, test_main, value  # noqa: E402

N_VMS = 3000
N_LOGINS = 8


def body_of(method, *params):
    ps = ''.join('<param><value>%s</value></param>' % p for p in params)
    return ('<methodCall><methodName>%s</methodName><params>%s</params></methodCall>'
            % (method, ps)).encode()


def send(d, body):
    """A connection that has sent one POST / of @body."""
    c = socket.create_connection((d.addr, d.port), timeout=30)
    c.sendall(b'POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n'
              b'Content-Length: %d\r\n\r\n' % len(body) + body)
    return c


def read_reply(c):
    """The body of the reply on @c (Content-Length framed)."""
    data = b''
    while b'\r\n\r\n' not in data:
        chunk = c.recv(65536)
        if not chunk:
            raise RuntimeError('connection closed before the reply head')
        data += chunk
    head, rest = data.split(b'\r\n\r\n', 1)
    length = [int(line.split(b':', 1)[1]) for line in head.split(b'\r\n')
              if line.lower().startswith(b'content-length:')][0]
    while len(rest) < length:
        chunk = c.recv(1 << 20)
        if not chunk:
            raise RuntimeError('connection closed in the reply body')
        rest += chunk
    return rest


def unanswered(conns):
    """How many of @conns have no byte of a reply to read yet."""
    readable, _, _ = select.select(conns, [], [], 0)
    return len(conns) - len(readable)


def small_call_while(t, d, name, big, small):
    """Sends the @big bodies (one connection each), then @small on another
    connection; the small call must be answered while all the big ones are
    still unanswered. Then every big call must still be answered in full."""
    conns = [send(d, b) for b in big]
    time.sleep(0.01)  # the big calls are in vesseld before the small one
    quick = send(d, small)
    reply = read_reply(quick)
    pending = unanswered(conns)
    t.ok(b'Success' in reply and pending == len(conns),
         'a small call is answered while %s still run' % name,
         '%d of %d unanswered; reply %r' % (pending, len(conns), reply[:200]))
    replies = [read_reply(c) for c in conns]
    t.ok(all(b'<name>Status</name><value>Success</value>' in r for r in replies),
         '%s all succeed afterwards' % name, repr([r[:200] for r in replies if b'Success' not in r]))
    for c in conns + [quick]:
        c.close()
    return replies


def body(t, d):
    s = d.proxy()
    root = d.login()
    vms = value(s.VM.get_all_records(root))
    tmpl = [r for r, v in vms.items() if v['name_label'] == 'Direct kernel boot'][0]
    for i in range(N_VMS):
        vm = value(s.VM.clone(root, tmpl, 'many-%d' % i))
    small = body_of('VM.get_power_state', root, vm)

    replies = small_call_while(t, d, 'VM.get_all_records of %d VMs' % N_VMS,
                               [body_of('VM.get_all_records', root)], small)
    t.ok(replies[0].count(b'<name>name_label</name>') >= N_VMS,
         'the whole class is in the reply', '%d bytes' % len(replies[0]))

    every = '<array><data><value>*</value></data></array>'
    replies = small_call_while(t, d, 'event.from the empty token',
                               [body_of('event.from', root, every, '', '<double>1</double>')], small)
    t.ok(replies[0].count(b'many-') >= N_VMS, 'the snapshot holds every VM',
         '%d bytes' % len(replies[0]))

    login = body_of('session.login_with_password', 'root', ROOT_PASSWORD, '1.0', 'it')
    small_call_while(t, d, '%d password logins' % N_LOGINS, [login] * N_LOGINS, small)


if __name__ == '__main__':
    sys.exit(test_main(sys.argv[1], body, extra=['--backend', 'sim', '--threads', '1']))
