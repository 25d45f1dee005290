#!/usr/bin/env python3
"""tests/storage/control_test.py - `vhd serve --control`: pause, live snapshot by reload,
auto-resume, refused reloads, I/O stats; printed as TAP.

Usage: control_test.py PATH/TO/vhd
One NBD connection (vhd_control.NbdClient) stays open across every pause and reload, as
QEMU's does. The live snapshot follows vesseld's file steps: pause; hard-link the leaf
A.vhd to B.base.vhd; `vhd snapshot B.base.vhd C.vhd`; rename C.vhd over A.vhd; `reload 2`
with descriptors of (A.vhd, B.base.vhd). Then data written before reads back, new writes
land in the new leaf (`vhd info`), the base keeps the old bytes, `vhd check` passes. Also:
a read issued while paused waits for the reload; closing the control connection resumes;
wrong chains, wrong counts, stray descriptors and over-long lines are refused while the old
chain keeps serving; SIGTERM while paused exits 0.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vhd_control import Control, NbdClient  # noqa: E402

VHD = os.path.realpath(sys.argv[1])
D = tempfile.mkdtemp(prefix="vhd-control.")
MiB = 1 << 20
N = 0
FAILED = False


def ok(desc, cond, detail=""):
    global N, FAILED
    N += 1
    if cond:
        print("ok %d - %s" % (N, desc))
    else:
        FAILED = True
        print("not ok %d - %s" % (N, desc))
        for line in str(detail).splitlines()[:20]:
            print("# " + line)
    sys.stdout.flush()


def vhd(*args):
    return subprocess.run([VHD] + list(args), cwd=D, capture_output=True, text=True)


def p(name):
    return os.path.join(D, name)


def pattern(n, seed):
    return bytes((seed * 31 + i * 7 + (i >> 9)) & 0xFF for i in range(n))


def wait_sock(path):
    for _ in range(100):
        if os.path.exists(path):
            return True
        time.sleep(0.05)
    return False


def info(name):
    return json.loads(vhd("info", "--json", name).stdout)


class Reader(threading.Thread):
    """One read on a connection, in the background, to see whether a pause holds it."""

    def __init__(self, client, off, length):
        super().__init__(daemon=True)
        self.client, self.off, self.length, self.data = client, off, length, None

    def run(self):
        try:
            self.data = self.client.read(self.off, self.length)
        except Exception as e:   # noqa: BLE001 - reported by the test that checks data
            self.data = e


def standby_tests():
    """--standby: a live migration's destination server. It must read nothing but the
    footer copy of an image another server still writes, hold I/O until activated, and
    then see everything the first server flushed."""
    first = second = None
    try:
        r = vhd("create", "--size", "8M", "S.vhd")
        ok("create S.vhd", r.returncode == 0, r.stderr)
        first = subprocess.Popen([VHD, "serve", "--socket", p("s1.sock"), "--control",
                                  p("s1.ctl"), "S.vhd"], cwd=D)
        ok("the first server starts", wait_sock(p("s1.ctl")))
        n1 = NbdClient(p("s1.sock"))
        a = pattern(MiB, 7)
        n1.write(0, a)
        r = subprocess.run([VHD, "serve", "--socket", p("s2.sock"), "S.vhd", "--standby"],
                           cwd=D, capture_output=True, text=True)
        ok("--standby without --control is refused", r.returncode == 2, r.stderr)
        second = subprocess.Popen([VHD, "serve", "--standby", "--socket", p("s2.sock"),
                                   "--control", p("s2.ctl"), "S.vhd"], cwd=D)
        ok("a --standby server starts beside the writer", wait_sock(p("s2.ctl")))
        n2 = NbdClient(p("s2.sock"))
        ok("its NBD handshake gives the size from the footer", n2.size == 8 * MiB, n2.size)
        c2 = Control(p("s2.ctl"))
        r = c2.cmd("info")
        ok("info says standby", r == "ok depth=0 leaf= size=%d paused=1 standby=1" % (8 * MiB), r)
        reader = Reader(n2, 0, MiB)
        reader.start()
        reader.join(0.5)
        ok("a read waits in standby", reader.is_alive())
        c2.close()
        c2 = Control(p("s2.ctl"))
        reader.join(0.3)
        ok("closing the control connection does not end the standby", reader.is_alive())
        r = c2.cmd("resume")
        ok("resume is refused in standby", r.startswith("error EINVAL"), r)
        r = c2.reload([p("S.vhd")])
        ok("reload is refused in standby", r.startswith("error EINVAL"), r)
        b = pattern(MiB, 8)
        n1.write(2 * MiB, b)       # allocates a block after the standby server started
        n1.close()
        first.send_signal(signal.SIGTERM)
        ok("the first server flushes and exits", first.wait(10) == 0)
        first = None
        r = c2.reload([p("S.vhd")], command="activate")
        ok("activate 1 ends the standby", r == "ok", r)
        reader.join(5)
        ok("the held read completes with the first server's data",
           not reader.is_alive() and reader.data == a, repr(reader.data)[:80])
        ok("a block the first server allocated late reads back", n2.read(2 * MiB, MiB) == b)
        r = c2.reload([p("S.vhd")], command="activate")
        ok("a second activate is refused", r.startswith("error EINVAL"), r)
        n2.write(4 * MiB, a)
        n2.flush()
        n2.close()
        second.send_signal(signal.SIGTERM)
        ok("the second server exits 0", second.wait(10) == 0)
        second = None
        r = vhd("check", "S.vhd")
        ok("vhd check passes after the hand-over", r.returncode == 0, r.stdout + r.stderr)
    finally:
        for s in (first, second):
            if s:
                s.kill()
                s.wait()


def main():
    server = None
    try:
        r = vhd("create", "--size", "16M", "A.vhd")
        ok("create the VDI A.vhd", r.returncode == 0, r.stderr)
        server = subprocess.Popen([VHD, "serve", "--socket", p("nbd.sock"), "--control",
                                   p("ctl.sock"), "A.vhd"], cwd=D)
        ok("serve with --control starts", wait_sock(p("nbd.sock")) and wait_sock(p("ctl.sock")))
        nbd = NbdClient(p("nbd.sock"))
        ctl = Control(p("ctl.sock"))
        p1, p2 = pattern(MiB, 1), pattern(MiB, 2)
        nbd.write(0, p1)
        ok("write before the snapshot reads back", nbd.read(0, MiB) == p1)
        r = ctl.cmd("info")
        ok("info answers depth=1 and the size", r.startswith("ok depth=1 leaf=") and
           "size=%d" % (16 * MiB) in r, r)
        old_uuid = info("A.vhd")["image"]["uuid"]
        ok("info names the leaf's uuid", "leaf=%s" % old_uuid in r, r)
        r = ctl.cmd("stats")
        st = dict(kv.split("=") for kv in r.split()[1:]) if r.startswith("ok ") else {}
        ok("stats counts the write and the read so far (requests and bytes)",
           st.get("wr_reqs") == "1" and st.get("wr_bytes") == str(MiB) and
           st.get("rd_reqs") == "1" and st.get("rd_bytes") == str(MiB) and
           st.get("inflight") == "0" and int(st.get("wr_usec", "-1")) >= 0, r)
        nbd.read(0, 4096)
        st2 = dict(kv.split("=") for kv in ctl.cmd("stats").split()[1:])
        ok("stats: one more read of 4096 bytes", int(st2.get("rd_reqs", 0)) == 2 and
           int(st2.get("rd_bytes", 0)) == MiB + 4096, st2)

        # ---- live snapshot --------------------------------------------------------------
        ok("pause", ctl.cmd("pause") == "ok")
        r = ctl.cmd("pause")
        ok("second pause is EBUSY", r == "error EBUSY already paused", r)
        reader = Reader(nbd, 0, 4096)
        reader.start()
        reader.join(0.5)
        ok("a read waits while paused", reader.is_alive())
        os.link(p("A.vhd"), p("B.base.vhd"))
        r = vhd("snapshot", "B.base.vhd", "C.vhd")
        ok("snapshot the paused leaf's base", r.returncode == 0, r.stderr)
        os.rename(p("C.vhd"), p("A.vhd"))
        r = ctl.reload([p("A.vhd"), p("B.base.vhd")])
        ok("reload 2 (new leaf, base)", r == "ok", r)
        reader.join(5)
        ok("the waiting read completes after the reload with the old bytes",
           not reader.is_alive() and reader.data == p1[:4096], repr(reader.data)[:80])
        nbd.write(4 * MiB, p2)
        nbd.flush()
        ok("data written before the snapshot reads back", nbd.read(0, MiB) == p1)
        ok("data written after reads back", nbd.read(4 * MiB, MiB) == p2)
        r = ctl.cmd("info")
        new_uuid = info("A.vhd")["image"]["uuid"]
        ok("info: depth=2, the new leaf", r.startswith("ok depth=2 leaf=%s " % new_uuid), r)
        ok("the new leaf holds the new block only",
           info("A.vhd")["image"]["allocated_blocks"] == 1, info("A.vhd"))
        r = vhd("map", "--json", "B.base.vhd")
        ext = json.loads(r.stdout) if r.returncode == 0 else []
        ok("the base holds the old data only", ext and all(e["offset"] + e["length"] <= 4 * MiB
                                                          for e in ext), r.stdout + r.stderr)
        r = vhd("check", "A.vhd")
        ok("vhd check passes on the new chain (served)", r.returncode == 0, r.stdout + r.stderr)

        # ---- auto-resume ------------------------------------------------------------------
        ctl2 = Control(p("ctl.sock"))          # waits in the backlog until ctl closes
        ctl.close()
        ok("a second control connection is served after the first closes",
           ctl2.cmd("pause") == "ok")
        reader = Reader(nbd, 4 * MiB, 4096)
        reader.start()
        reader.join(0.3)
        held = reader.is_alive()
        ctl2.close()
        reader.join(5)
        ok("closing the control connection resumes the disk",
           held and not reader.is_alive() and reader.data == p2[:4096])

        # ---- refusals ------------------------------------------------------------------------
        ctl = Control(p("ctl.sock"))
        r = ctl.cmd("resume")
        ok("resume when not paused is an error", r == "error EINVAL not paused", r)
        r = ctl.reload([p("A.vhd"), p("B.base.vhd")])
        ok("reload when not paused is an error", r.startswith("error EINVAL"), r)
        r = ctl.cmd("frobnicate")
        ok("unknown command", r == "error EINVAL unknown command", r)
        fd = os.open(p("A.vhd"), os.O_RDONLY)
        r = ctl.cmd("info", [fd])
        os.close(fd)
        ok("descriptors with info are refused", r.startswith("error EINVAL descriptors"), r)
        ok("pause (for refused reloads)", ctl.cmd("pause") == "ok")
        r = vhd("create", "--size", "16M", "X.vhd")
        r = ctl.reload([p("A.vhd"), p("X.vhd")])
        ok("reload with a wrong parent: ESTALE", r.startswith("error ESTALE "), r)
        r = ctl.reload([p("A.vhd")])
        ok("reload without the parent: ENOENT", r.startswith("error ENOENT "), r)
        fd = os.open(p("A.vhd"), os.O_RDWR)
        r = ctl.cmd("reload 2", [fd])
        os.close(fd)
        ok("reload with fewer descriptors than N", r.startswith("error EINVAL"), r)
        for bad in ("reload 0", "reload 65", "reload x", "reload 1 2", "reload -1"):
            r = ctl.cmd(bad)
            ok("malformed '%s' refused" % bad, r.startswith("error EINVAL"), r)
        vhd("create", "--size", "32M", "Y.vhd")
        r = ctl.reload([p("Y.vhd")])
        ok("reload with another size: EINVAL", r.startswith("error EINVAL") and "size" in r, r)
        r = ctl.reload([p("B.base.vhd")], read_only=True)
        ok("reload of a read-only leaf descriptor: EBADF", r.startswith("error EBADF"), r)
        ok("still paused after refused reloads", ctl.cmd("info").endswith("paused=1"))
        ok("resume", ctl.cmd("resume") == "ok")
        ok("the old chain still serves", nbd.read(0, MiB) == p1 and nbd.read(4 * MiB, MiB) == p2)
        ctl.send("x" * 300)
        r = ctl.reply()
        ok("over-long line refused", r == "error EINVAL line too long", r)
        try:
            gone = ctl.sock.recv(1) == b""
        except OSError:
            gone = True
        ok("and the connection is closed", gone)
        ctl.close()
        fds = [os.open(p("A.vhd"), os.O_RDONLY) for _ in range(70)]
        ctl = Control(p("ctl.sock"))
        ok("pause", ctl.cmd("pause") == "ok")
        try:
            r = ctl.cmd("reload 64", fds)
        except OSError as e:      # the kernel caps SCM_RIGHTS at 253 per message; 70 is fine
            r = "sendmsg: %s" % e
        for fd in fds:
            os.close(fd)
        ok("70 descriptors for reload 64 refused", r.startswith("error EINVAL"), r)
        ok("nothing leaked: the server's descriptor count is back",
           len(os.listdir("/proc/%d/fd" % server.pid)) < 40,
           os.listdir("/proc/%d/fd" % server.pid))
        ok("resume", ctl.cmd("resume") == "ok")

        # ---- external reader, shutdown while paused -----------------------------------------
        nbd.close()
        r = subprocess.run(["qemu-io", "-f", "raw", "-c", "read -P 0 8M 1M",
                            "nbd+unix:///?socket=" + p("nbd.sock")], capture_output=True,
                           text=True)
        ok("qemu-io reads zeros where nothing was written", r.returncode == 0 and
           "Pattern verification failed" not in r.stdout, r.stdout + r.stderr)
        ok("pause before SIGTERM", ctl.cmd("pause") == "ok")
        server.send_signal(signal.SIGTERM)
        rc = server.wait(10)
        server = None
        ok("SIGTERM while paused exits 0", rc == 0, rc)
        r = vhd("check", "A.vhd")
        ok("vhd check passes after shutdown", r.returncode == 0, r.stdout + r.stderr)
        r = vhd("convert", "--to", "raw", "A.vhd", "A.raw")
        with open(p("A.raw"), "rb") as f:
            raw = f.read()
        ok("the whole disk reads as written", raw[:MiB] == p1 and raw[4 * MiB:5 * MiB] == p2 and
           raw[MiB:4 * MiB] == bytes(3 * MiB) and raw[5 * MiB:] == bytes(11 * MiB))
        standby_tests()
    finally:
        if server:
            server.kill()
            server.wait()
        shutil.rmtree(D, ignore_errors=True)
    print("1..%d" % N)
    return 1 if FAILED else 0


if __name__ == "__main__":
    socket.setdefaulttimeout(20)
    sys.exit(main())
