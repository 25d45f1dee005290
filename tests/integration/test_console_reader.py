#!/usr/bin/env python3
"""tests/integration/test_console_reader.py - a slow console reader (issue 11, finding 14).

The attack: connect to a guest's vt100 console (CONNECT /console, a
vm-operator's right) and never read. Output used to be written to each
reader from the guest's supervisor thread, so the guest's console stalled
for everyone: the other readers and the console log stopped.
Here, with the test guest (tests/guest/build-guest.sh) under qemu: reader A
connects with a tiny receive buffer and never reads (and A2 likewise over
TLS); reader B keeps reading;
the guest prints about 2 MB. B must receive all of it, the console log must
keep being written to the end, and A must be dropped (its connection closed,
having received far less than the output) once it is more than vesseld's
per-reader bound (1 MiB) behind. A new reader then works as before.
Usage: test_console_reader.py BUILD/vesseld GUEST_DIR
"""
import os
import socket
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import console_log, console_type, guest_test_main, value, wait_for  # noqa: E402
from test_guests import MARKER, make_vm  # noqa: E402

N_LINES = 20000
LINE_PAD = 'x' * 80
END = 'VESSEL-FLOOD-2-END'  # typed as $((1+1)): the tty's echo of the command differs


def open_console(d, sess, console, rcvbuf=None, tls=False):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(30)
    s.connect(('127.0.0.1', d.tls_port if tls else d.port))
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s)
    s.sendall(('CONNECT /console?ref=%s&session_id=%s HTTP/1.1\r\nHost: x\r\n\r\n'
               % (console, sess)).encode())
    head = b''
    while b'\r\n\r\n' not in head:
        chunk = s.recv(1)  # byte by byte: leave the console's bytes in the socket
        if not chunk:
            break
        head += chunk
    return s, head


class Reader(threading.Thread):
    def __init__(self, sock):
        super().__init__(daemon=True)
        self.sock = sock
        self.data = bytearray()
        self.eof = False

    def run(self):
        self.sock.settimeout(1)
        while True:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not chunk:
                break
            self.data += chunk
        self.eof = True


def drain(sock, wait_s):
    """Reads @sock until EOF or @wait_s seconds of silence: (bytes, saw EOF)."""
    sock.settimeout(wait_s)
    n = 0
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return n, True
            n += len(chunk)
    except socket.timeout:
        return n, False
    except OSError:  # a reset, or a TLS stream cut without close_notify
        return n, True


def log_bytes(d, uuid):
    base = os.path.join(d.dir, 'data', 'console', uuid + '.log')
    return sum(os.path.getsize(p) for p in (base, base + '.1') if os.path.exists(p))


def scenario(t, d, guest):
    s = d.proxy()
    sess = d.login()
    vm = make_vm(s, sess, guest, 'console-reader')
    uuid = value(s.VM.get_uuid(sess, vm))
    value(s.VM.start(sess, vm, False, False))
    t.ok(wait_for(lambda: MARKER in console_log(d, uuid), 90), 'the guest is up')
    console = [c for c in value(s.VM.get_consoles(sess, vm))
               if value(s.console.get_protocol(sess, c)) == 'vt100'][0]

    stalled, head = open_console(d, sess, console, rcvbuf=4096)
    t.ok(head.startswith(b'HTTP/1.1 200'), 'reader A connects (and will never read)', head)
    stalled_tls, head = open_console(d, sess, console, rcvbuf=4096, tls=True)
    t.ok(head.startswith(b'HTTP/1.1 200'), 'reader A2 connects over TLS (and will never read)', head)
    reader_sock, head = open_console(d, sess, console)
    t.ok(head.startswith(b'HTTP/1.1 200'), 'reader B connects', head)
    b = Reader(reader_sock)
    b.start()

    log0 = log_bytes(d, uuid)
    cmd = ('run i=0; while [ $i -lt %d ]; do echo VESSEL-FLOOD-$i-%s; i=$((i+1)); done; '
           'echo VESSEL-FLOOD-$((1+1))-END' % (N_LINES, LINE_PAD))
    reader_sock.sendall(cmd.encode() + b'\n')
    total = N_LINES * (len('VESSEL-FLOOD--') + 5 + len(LINE_PAD) + 1)
    t0 = time.time()
    got_end = wait_for(lambda: END.encode() in b.data[-4096:], 300, 0.5)
    dt = time.time() - t0
    print('# guest printed ~%d bytes in %.1f s; reader B got %d bytes' % (total, dt, len(b.data)))
    t.ok(got_end, 'reader B received the whole output while A never read (%d bytes)' % len(b.data))
    t.ok(all(('VESSEL-FLOOD-%d-' % i).encode() in b.data for i in (0, N_LINES // 2, N_LINES - 1)),
         'including its first, middle and last lines')
    t.ok(wait_for(lambda: END in console_log(d, uuid), 30), 'the console log was written to the end')
    t.ok(log_bytes(d, uuid) - log0 >= min(total, 1 << 20),
         'the console log grew with the output (%d bytes)' % (log_bytes(d, uuid) - log0))

    n, eof = drain(stalled, 15)
    t.ok(eof, 'reader A was dropped: its connection is closed')
    t.ok(n < total // 2, 'A got only what was buffered before it was dropped (%d of ~%d bytes)' % (n, total))
    n, eof = drain(stalled_tls, 15)
    t.ok(eof, 'reader A2 (TLS) was dropped: its connection is closed')
    t.ok(n < total // 2, 'A2 got only what was buffered before (%d of ~%d bytes)' % (n, total))
    stalled_tls.close()
    with open(d.log_path) as f:
        t.ok('console.reader_dropped' in f.read(), 'vesseld logged console.reader_dropped')
    stalled.close()
    reader_sock.close()

    out = console_type(d, sess, console, 'echo still-here', 'VESSEL-ECHO still-here', 30)
    t.ok('VESSEL-ECHO still-here' in out, 'a new reader types and reads as before')
    value(s.VM.hard_shutdown(sess, vm))
    t.ok(value(s.host.get_all(sess)), 'the daemon keeps serving')


def main():
    binary, guest = sys.argv[1], os.path.abspath(sys.argv[2])
    return guest_test_main(binary, guest, lambda t, d: scenario(t, d, guest), tls=True,
                           extra=['--cgroup-root', 'none'])


if __name__ == '__main__':
    sys.exit(main())
