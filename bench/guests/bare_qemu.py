"""bench/guests/bare_qemu.py - the bare peer of a guest vesseld runs: the very
same qemu command line, started by the bench itself.

vesseld's qemu is read from /proc/<pid>/cmdline (its pid is in the domain's
run directory), so the peer has every argument it has: the machine, -sandbox
with its deny groups, -action, VGA and VNC, pvpanic, the agent's
virtio-serial port, the balloon, QMP and the console on unix sockets. Only
what cannot carry over changes: -S goes (nobody sends "cont"), the kernel and
initrd named as the descriptors vesseld passed (/proc/self/fd/4, 5) become
their paths, a tap passed as a descriptor (fd=N) is named (qemu opens it
itself), and the sockets are made in a directory of the bench's. What the
peer lacks is the toolstack's: its own uid, namespaces and cgroup, the QMP
handshake, the database. So the ratio measures the toolstack alone.
"""
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

QEMU_FD_KERNEL = '/proc/self/fd/4'
QEMU_FD_INITRD = '/proc/self/fd/5'


def tap_by_name(pid, arg):
    """A -netdev tap whose tap vesseld passed as a descriptor (fd=N), as the
    bare peer must say it: by the tap's name, which the kernel gives for the
    descriptor (iff: in /proc/PID/fdinfo/N), with the options qemu's own
    open of a tap goes with."""
    m = re.match(r'tap,id=([^,]*),fd=(\d+)$', arg)
    if not m:
        return arg
    with open('/proc/%d/fdinfo/%s' % (pid, m.group(2))) as f:
        name = [ln.split(None, 1)[1].strip() for ln in f if ln.startswith('iff:')][0]
    return 'tap,id=%s,ifname=%s,script=no,downscript=no' % (m.group(1), name)


def vesseld_argv(d, uuid):
    """The command line of the qemu vesseld runs for VM @uuid."""
    with open(os.path.join(d.dir, 'data', 'run', uuid, 'qemu.pid')) as f:
        pid = int(f.read())
    with open('/proc/%d/cmdline' % pid, 'rb') as f:
        argv = [a.decode() for a in f.read().split(b'\0')[:-1]]
    return [tap_by_name(pid, a) for a in argv], pid


def peer_argv(argv, kernel, initrd):
    out = []
    for a in argv:
        if a == '-S':
            continue
        out.append(kernel if a == QEMU_FD_KERNEL else initrd if a == QEMU_FD_INITRD else a)
    return out


class Bare:
    """One bare qemu: started in its own directory (the argv names its
    sockets relative to the working directory, as vesseld's does)."""

    def __init__(self, argv):
        self.dir = tempfile.mkdtemp(prefix='vessel-bench-bare-')
        self.argv = argv
        self.proc = None
        self.con = None

    def start(self):
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(self.argv, cwd=self.dir, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def connect_console(self, timeout=10):
        """The console socket exists before the guest runs (chardevs are made
        before the machine starts): connecting as soon as it is there loses no
        guest output."""
        path = os.path.join(self.dir, 'console.sock')
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
                self.con = s
                return s
            except OSError:
                s.close()
                if self.proc.poll() is not None:
                    break
                time.sleep(0.001)
        raise RuntimeError('bare qemu made no console socket')

    def kill(self):
        """kill -9 and reap: the bare destroy."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
        if self.proc:
            self.proc.wait()

    def close(self):
        self.kill()
        if self.con:
            self.con.close()
        shutil.rmtree(self.dir, ignore_errors=True)
