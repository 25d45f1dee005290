#!/usr/bin/env python3
"""tests/storage/vhd_control.py - a client of `vhd serve --control` (and a tiny NBD client).

The control protocol is documented in tools/vhd/serve.c and docs/storage.md: one command line
per round trip, descriptors (SCM_RIGHTS) in the same sendmsg as a `reload N` line, one reply
line. Used by control_test.py; also a command-line helper:

    vhd_control.py SOCKET pause|resume|info
    vhd_control.py SOCKET reload LEAF [PARENT...]   (LEAF opened read-write unless --ro)
    vhd_control.py SOCKET activate LEAF [PARENT...] (ends a --standby server's standby)

NbdClient speaks just enough NBD (fixed newstyle, NBD_OPT_EXPORT_NAME, simple replies) to
keep one connection open across a pause and a reload, as QEMU does.
"""
import array
import os
import socket
import struct
import sys


class Control:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""

    def send(self, line, fds=()):
        data = line.encode() + b"\n"
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
        self.sock.sendmsg([data], anc)

    def reply(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("control connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def cmd(self, line, fds=()):
        self.send(line, fds)
        return self.reply()

    def reload(self, paths, read_only=False, command="reload"):
        fds = [os.open(p, os.O_RDONLY if (i or read_only) else os.O_RDWR)
               for i, p in enumerate(paths)]
        try:
            return self.cmd("%s %d" % (command, len(fds)), fds)
        finally:
            for fd in fds:
                os.close(fd)

    def close(self):
        self.sock.close()


class NbdClient:
    REQ = 0x25609513
    REPLY = 0x67446698

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        magic, opt, hflags = struct.unpack(">QQH", self._recv(18))
        assert magic == 0x4E42444D41474943 and opt == 0x49484156454F5054, "not NBD"
        self.sock.sendall(struct.pack(">I", 3))       # FIXED_NEWSTYLE | NO_ZEROES
        self.sock.sendall(struct.pack(">QII", opt, 1, 0))   # EXPORT_NAME ""
        self.size, self.flags = struct.unpack(">QH", self._recv(10))
        self.cookie = 0

    def _recv(self, n):
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("NBD connection closed")
            out += chunk
        return out

    def _request(self, typ, off, length, payload=b"", flags=0):
        self.cookie += 1
        self.sock.sendall(struct.pack(">IHHQQI", self.REQ, flags, typ, self.cookie, off, length)
                          + payload)
        magic, err, cookie = struct.unpack(">IIQ", self._recv(16))
        assert magic == self.REPLY and cookie == self.cookie, "bad reply"
        if err:
            raise OSError(err, "NBD error %d" % err)
        return self._recv(length) if typ == 0 else b""

    def read(self, off, length):
        return self._request(0, off, length)

    def write(self, off, data, fua=False):
        self._request(1, off, len(data), data, flags=1 if fua else 0)

    def flush(self):
        self._request(3, 0, 0)

    def close(self):
        try:
            self.sock.sendall(struct.pack(">IHHQQI", self.REQ, 0, 2, 0, 0, 0))   # DISC
        finally:
            self.sock.close()


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    ro = "--ro" in argv
    args = [a for a in argv[1:] if a != "--ro"]
    c = Control(args[0])
    if args[1] in ("reload", "activate"):
        print(c.reload(args[2:], read_only=ro, command=args[1]))
    else:
        print(c.cmd(" ".join(args[1:])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
