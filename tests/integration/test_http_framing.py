#!/usr/bin/env python3
"""tests/integration/test_http_framing.py - ambiguous message framing (issue 11, finding 16).

The attack: a request with two different Content-Length headers was served
(libmicrohttpd reads the body by the first one and ignores the rest), as was
one with Content-Length and Transfer-Encoding together; a proxy in front
that picks the other header would see a different request boundary
(request smuggling). Over a raw socket, with no login: each such request
gets 400 (RFC 9110 8.6, RFC 9112 6.3) and the connection is closed, so the
bytes after it are never read as a request; an unknown transfer coding gets
501 (RFC 9112 6.1); repeated identical Content-Lengths and plain chunked
bodies still work; the daemon keeps serving.
Usage: test_http_framing.py BUILD/vesseld
"""
import os
import socket
import sys
import xmlrpc.client

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Tap, Vesseld, value  # noqa: E402

BODY = xmlrpc.client.dumps((), 'system.listMethods').encode()
SMUGGLED = b'GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n'


def exchange(d, head, body=b'', wait=5):
    """Sends @head (lines joined with CRLF) and @body; returns every byte the
    server sent until it closed (or @wait seconds passed)."""
    s = socket.create_connection(('127.0.0.1', d.port), timeout=wait)
    s.sendall(('\r\n'.join(head) + '\r\n\r\n').encode() + body)
    out = b''
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except socket.timeout:
        out += b'<still open>'
    s.close()
    return out


def status_of(reply):
    try:
        return int(reply.split(b' ', 2)[1])
    except (IndexError, ValueError):
        return None


def main():
    binary = sys.argv[1]
    t = Tap()
    d = Vesseld(binary, extra=['--backend', 'sim'])
    try:
        d.start()
        n = len(BODY)
        base = ['POST / HTTP/1.1', 'Host: x', 'Content-Type: text/xml']

        r = exchange(d, base + ['Content-Length: %d' % n, 'Content-Length: %d' % (n + len(SMUGGLED))],
                     BODY + SMUGGLED)
        t.eq(status_of(r), 400, 'two different Content-Length headers: 400')
        t.ok(r.count(b'HTTP/1.1') == 1 and r.endswith(b'<still open>') is False,
             'and the connection is closed: nothing after it is read as a request', r[-200:])

        r = exchange(d, base + ['Content-Length: %d' % (n + len(SMUGGLED)), 'Content-Length: %d' % n],
                     BODY + SMUGGLED)
        t.eq(status_of(r), 400, 'the same two in the other order: 400')

        r = exchange(d, base + ['Content-Length: %d, %d' % (n, n + 5)], BODY + SMUGGLED)
        t.eq(status_of(r), 400, 'one Content-Length with two values: 400')

        chunked = b'%x\r\n' % n + BODY + b'\r\n0\r\n\r\n'
        r = exchange(d, base + ['Transfer-Encoding: chunked', 'Content-Length: %d' % len(chunked)],
                     chunked)
        t.eq(status_of(r), 400, 'Transfer-Encoding with Content-Length: 400')
        r = exchange(d, base + ['Content-Length: 4', 'Transfer-Encoding: chunked'], chunked)
        t.eq(status_of(r), 400, 'Content-Length before Transfer-Encoding: 400')

        r = exchange(d, base + ['Transfer-Encoding: gzip'], BODY)
        t.eq(status_of(r), 501, 'an unknown transfer coding: 501')
        r = exchange(d, base + ['Transfer-Encoding: chunked', 'Transfer-Encoding: chunked'], chunked)
        t.eq(status_of(r), 501, 'Transfer-Encoding repeated: 501')

        r = exchange(d, base + ['Content-Length: %d' % n, 'Content-Length: %d' % n, 'Connection: close'],
                     BODY)
        t.eq(status_of(r), 200, 'a repeated identical Content-Length is still served')
        t.ok(b'session.login_with_password' in r, 'with the right body')

        r = exchange(d, base + ['Transfer-Encoding: chunked', 'Connection: close'], chunked)
        t.eq(status_of(r), 200, 'a chunked body alone is still served')

        sess = d.login()
        t.ok(value(d.proxy().host.get_all(sess)), 'the daemon keeps serving')
    except Exception as exc:  # noqa: BLE001
        import traceback
        t.ok(False, 'test raised %s' % type(exc).__name__, traceback.format_exc())
    finally:
        d.stop()
        d.cleanup()
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
