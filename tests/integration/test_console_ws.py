#!/usr/bin/env python3
"""tests/integration/test_console_ws.py - consoles over WebSocket (RFC 6455)
on the sim backend: the handshake, the vt100 stream in binary frames, and
the attacks and limits: a read-only account, a cookie session from another
origin, a bad key or version, an unmasked frame, an oversized frame, a
fragmented message, and a client that never reads. After each, vesseld must
still serve. Usage: test_console_ws.py BUILD/vesseld
"""
import base64
import hashlib
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Tap, Vesseld, add_account, value  # noqa: E402

GUID = b'258EAFA5-E914-47DA-95CA-C5AB0DC85B11'


def handshake(d, path, key=None, version='13', extra=''):
    """Opens a socket, sends a WebSocket GET for @path; returns (socket, status
    line, headers dict, bytes already read past the head)."""
    key = key or base64.b64encode(os.urandom(16)).decode()
    s = socket.create_connection(('127.0.0.1', d.port), timeout=10)
    s.sendall(('GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n'
               'Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: %s\r\n'
               'Sec-WebSocket-Protocol: binary\r\n%s\r\n' % (path, d.port, key, version, extra)).encode())
    data = b''
    while b'\r\n\r\n' not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b'\r\n\r\n')
    lines = head.decode(errors='replace').split('\r\n')
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(':')
        headers[k.strip().lower()] = v.strip()
    return s, lines[0], headers, rest, key


def frame(op, payload, fin=True, mask=True):
    b = bytes([(0x80 if fin else 0) | op])
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        b += bytes([m | n])
    elif n < 65536:
        b += bytes([m | 126]) + struct.pack('>H', n)
    else:
        b += bytes([m | 127]) + struct.pack('>Q', n)
    if not mask:
        return b + payload
    k = os.urandom(4)
    return b + k + bytes(c ^ k[i % 4] for i, c in enumerate(payload))


class Reader:
    def __init__(self, s, rest):
        self.s = s
        self.buf = rest

    def need(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def frame(self):
        h = self.need(2)
        n = h[1] & 0x7F
        if n == 126:
            n = struct.unpack('>H', self.need(2))[0]
        elif n == 127:
            n = struct.unpack('>Q', self.need(8))[0]
        return h[0] & 0x0F, self.need(n), bool(h[1] & 0x80)

    def until(self, text, timeout=10):
        """Binary payloads until @text appeared; returns them joined."""
        got = b''
        deadline = time.time() + timeout
        while text not in got and time.time() < deadline:
            op, p, _ = self.frame()
            if op == 2:
                got += p
            elif op == 8:
                break
        return got


def alive(t, d, root, what):
    t.ok(value(d.proxy().session.get_this_host(root, root)).startswith('OpaqueRef:'),
         'vesseld still serves after ' + what)


def main():
    t = Tap()
    d = Vesseld(sys.argv[1], extra=['--backend', 'sim'])
    try:
        d.start()
        root = d.login()
        add_account(d, root, 'reader', 'reader-password', 'read-only')
        s = d.proxy()
        vms = value(s.VM.get_all_records(root))
        tmpl = [r for r, v in vms.items() if v['name_label'] == 'Direct kernel boot'][0]
        vm = value(s.VM.clone(root, tmpl, 'ws'))
        value(s.VM.set_is_a_template(root, vm, False))
        value(s.VM.start(root, vm, False, False))
        cons = {value(s.console.get_protocol(root, c)): c for c in value(s.VM.get_consoles(root, vm))}
        vt = cons['vt100']
        path = '/console?ref=%s&session_id=%s' % (vt, root)

        # 1. The handshake and the stream.
        c, status, hdr, rest, key = handshake(d, path)
        want = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        t.ok(status.startswith('HTTP/1.1 101'), 'WebSocket upgrade answers 101', status)
        t.eq(hdr.get('sec-websocket-accept'), want, 'Sec-WebSocket-Accept per RFC 6455 4.2.2')
        t.eq(hdr.get('sec-websocket-protocol'), 'binary', 'the binary subprotocol noVNC asks for')
        r = Reader(c, rest)
        t.ok(b'VESSEL-GUEST-UP' in r.until(b'VESSEL-GUEST-UP'), 'the console replay comes in binary frames')
        c.sendall(frame(2, b'ping-me'))
        t.ok(b'ping-me' in r.until(b'ping-me'), 'typed bytes reach the guest and are echoed')
        # fragmented: text start, a ping between, the continuation
        c.sendall(frame(1, b'frag-', fin=False) + frame(9, b'p1') + frame(0, b'ment'))
        op, p, masked = r.frame()
        while op == 2:  # echo of earlier bytes may still be in flight
            op, p, masked = r.frame()
        t.eq((op, p, masked), (10, b'p1', False), 'a ping between fragments gets its pong, unmasked')
        t.ok(b'frag-ment' in r.until(b'frag-ment'), 'a fragmented message is streamed whole')
        c.sendall(frame(8, struct.pack('>H', 1000)))
        op, p, _ = r.frame()
        while op == 2:
            op, p, _ = r.frame()
        t.eq((op, p), (8, struct.pack('>H', 1000)), 'a close frame is echoed')
        c.close()

        # 2. Handshake refusals.
        for what, kw, code in [('a bad key', {'key': 'short'}, '400'),
                               ('version 8', {'version': '8'}, '426')]:
            c, status, hdr, _, _ = handshake(d, path, **kw)
            t.ok(status.split(' ')[1:2] == [code], '%s: %s' % (what, code), status)
            c.close()
        ro = d.login('reader', 'reader-password')
        c, status, _, _, _ = handshake(d, '/console?ref=%s&session_id=%s' % (vt, ro))
        t.ok(' 403 ' in status, 'a read-only session may not open a console (403)', status)
        c.close()
        # A page on another origin riding the user's cookie (cross-site WebSocket hijacking).
        c, status, _, _, _ = handshake(d, '/console?ref=%s' % vt,
                                       extra='Cookie: session_id=%s\r\nOrigin: https://evil.example\r\n' % root)
        t.ok(' 403 ' in status, 'a cookie session from another origin is refused (403)', status)
        c.close()
        c, status, _, _, _ = handshake(d, '/console?ref=%s' % vt,
                                       extra='Cookie: session_id=%s\r\nOrigin: http://127.0.0.1:%d\r\n'
                                       % (root, d.port))
        t.ok(status.startswith('HTTP/1.1 101'), 'the same cookie from this origin is fine', status)
        c.close()
        alive(t, d, root, 'refused handshakes')

        # 3. Protocol errors and limits.
        c, status, _, rest, _ = handshake(d, path)
        c.sendall(frame(2, b'abc', mask=False))
        r = Reader(c, rest)
        op, p = 2, b''
        while op == 2:
            op, p, _ = r.frame()
        t.eq((op, p), (8, struct.pack('>H', 1002)), 'an unmasked client frame: close 1002')
        c.close()
        c, status, _, rest, _ = handshake(d, path)
        c.sendall(bytes([0x82, 0xFF]) + struct.pack('>Q', 2 << 20) + b'mask')
        r = Reader(c, rest)
        op, p = 2, b''
        try:
            while op == 2:
                op, p, _ = r.frame()
        except EOFError:
            op = None
        t.eq((op, p[:2]), (8, struct.pack('>H', 1009)), 'a 2 MiB frame (limit 1 MiB): close 1009')
        c.close()
        alive(t, d, root, 'protocol errors')

        # 4. A client that sends a lot and never reads: the daemon keeps serving.
        c, status, _, rest, _ = handshake(d, path)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        blob = frame(2, b'x' * 60000)
        t0 = time.time()
        sent = 0
        c.settimeout(2)
        try:
            while time.time() - t0 < 5:
                c.sendall(blob)
                sent += len(blob)
        except (socket.timeout, OSError):
            pass
        alive(t, d, root, 'a client that never reads (%d bytes sent)' % sent)
        c.close()
    finally:
        d.stop()
        d.cleanup()
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
