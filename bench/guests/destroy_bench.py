#!/usr/bin/env python3
"""bench/guests/destroy_bench.py - VM.hard_shutdown through the API vs a bare
kill -9 of the same qemu.

Measures, in one run on this machine, for running guests of the default
template (pc, the test guest):
  1. one guest: VM.hard_shutdown (sync call, through Vessel's Python client
     client/python/vessel_xenapi.py) until its qemu has exited and its disk
     servers and taps are gone, against kill -9 + waitpid of a bare qemu
     with the very command line vesseld gave the guest (bare_qemu.py),
     alternating, median of REPS;
  2. 30 guests at once: 30 VM.hard_shutdown calls, on a connection each,
     sent by one thread (CallsAtOnce), until all are gone, against kill -9
     of 30 bare qemus and their reaping;
  with devices, both also against the bare peers' kill with the cleanup
  vesseld owes, done as a script best does it (bare_destroy's `cleanup`):
  the taps deleted, the disk servers stopped.
Usage: destroy_bench.py BUILD_DIR [REPS] [N_AT_ONCE] [devices|plain]

With `devices` (the default) each guest has a data disk (a VDI, so a `vhd
serve` of its own) and a NIC (a VIF, so a tap on a bridge): the cleanup a
hard shutdown owes. The bare peer has the same command line, its disk
served by a `vhd serve` the bench starts and its tap made beforehand by the
bench, as vesseld makes a guest's, up and a port of the same bridge (a
persistent tap outlives qemu: were it qemu's own, its kill would include
the kernel's unregistering of the device, ~20 ms); its kill -9 leaves the
disk server and the tap, as a bare kill would, and its kill with `cleanup`
removes both as a script best does it. As root the bench runs in a network
namespace of its own (the bridge and taps are made there). `plain`: no
disk, no NIC (the rows of the first measurements).

vesseld's qemu is detached (it outlives vesseld), so its reaper is init, not
vesseld: its exit is taken when its pidfd fires (it is a zombie then, holding
no memory, device or socket). Waiting for init's waitpid would measure init:
this machine's init reaps orphans about every 2 s.
"""
import ctypes
import errno
import glob
import os
import re
import select
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import xmlrpc.client

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'tests', 'integration'))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, '..', '..', 'client', 'python'))
from harness import ROOT_PASSWORD, Vesseld, run_in_netns, value  # noqa: E402
import vessel_xenapi  # noqa: E402
from bare_qemu import Bare, peer_argv, vesseld_argv  # noqa: E402
from api_bench import make_vm, steps_since  # noqa: E402


# how long a guest runs before it is destroyed, alike for both peers
RUN_S = 2.0

LIBC = ctypes.CDLL(None, use_errno=True)
NETLINK_ROUTE, RTMGRP_LINK = 0, 1  # rtnetlink(7)
IN_DELETE, IN_MOVED_FROM = 0x200, 0x40  # inotify(7)


def exited(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rpartition(')')[2].split()[0] in ('Z', 'X')
    except OSError:
        return True


def leftovers(d, uuid, pid, domid, deleted=()):
    """What of the domain is still there: its qemu (not yet exited), its
    disk servers' files, its taps (but those in @deleted)."""
    left = []
    if not exited(pid):
        left.append('qemu')
    if glob.glob(os.path.join(d.dir, 'data', 'run', 'disks', uuid + '.*')):
        left.append('disk servers')
    if [t for t in glob.glob('/sys/class/net/vif%d.*' % domid)
            if os.path.basename(t) not in deleted]:
        left.append('taps')
    return left


RTM_DELLINK, IFLA_IFNAME = 17, 3  # rtnetlink(7)


def deleted_links(data):
    """The names of the links an rtnetlink datagram says were deleted."""
    names = []
    off = 0
    while off + 16 <= len(data):
        length, kind = struct.unpack_from('IH', data, off)
        if length < 16:
            break
        if kind == RTM_DELLINK:
            a = off + 32  # nlmsghdr (16), ifinfomsg (16), then the attributes
            while a + 4 <= off + length:
                alen, atype = struct.unpack_from('HH', data, a)
                if alen < 4:
                    break
                if atype == IFLA_IFNAME:
                    names.append(data[a + 4:a + alen].split(b'\0')[0].decode())
                a += (alen + 3) & ~3
        off += (length + 3) & ~3
    return names


class GoneWatch:
    """Sees, on its own thread, when nothing of @doms [(uuid, pid, domid)] is
    left, while the call is under way: qemu's exit on its pidfd, the taps'
    removal in the kernel's link notifications (rtnetlink), the disk
    servers' files in inotify's. Each event is stamped as it arrives, so the
    time is the cleanup's own and not the bench's: checking after the reply,
    in turn, added the bench's half a millisecond of Python to vesseld's
    figure and none to the bare peer's."""

    def __init__(self, d, doms, timeout=30):
        self.d, self.doms = d, doms
        self.fds = []
        for _, pid, _ in doms:
            try:
                self.fds.append(os.pidfd_open(pid))
            except OSError:
                pass  # already reaped
        self.links = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        # 30 guests' taps going make more notifications than the default
        # buffer holds while the thread waits on the pidfds alone
        self.links.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.links.bind((0, RTMGRP_LINK))
        self.inotify = LIBC.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.inotify < 0:
            raise OSError(ctypes.get_errno(), 'inotify_init1')
        disks = os.path.join(d.dir, 'data', 'run', 'disks').encode()
        LIBC.inotify_add_watch(self.inotify, disks, IN_DELETE | IN_MOVED_FROM)
        self.deadline = time.monotonic() + timeout
        self.deleted = set()
        self.t_gone = None
        self.t_exited = None  # the last qemu's exit (its pidfd)
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self):
        live = list(self.fds)
        others = [self.links.fileno(), self.inotify]
        while time.monotonic() < self.deadline:
            # until qemu has exited, its pidfds alone: waking on each link or
            # file event to look for leftovers took, on a host of two CPUs,
            # the CPU the kernel's teardown of qemu needs, which the bare
            # peer's kill-and-wait never did (the events wait in the queues)
            r, _, _ = select.select(live or others, [], [], 0.5)
            t = time.monotonic()
            for fd in r:
                if fd in live:
                    live.remove(fd)
                    if not live:
                        self.t_exited = t
                elif fd == self.inotify:
                    os.read(fd, 65536)
                else:
                    try:
                        # a link is gone at its RTM_DELLINK: the kernel sends
                        # it just before the link leaves sysfs, and nothing
                        # follows to wake this thread once it has
                        self.deleted.update(deleted_links(self.links.recv(65536)))
                    except OSError as e:
                        # ENOBUFS: some notifications were dropped; each
                        # wake-up looks at what is left anyway
                        if e.errno != errno.ENOBUFS:
                            raise
            if not live and not any(leftovers(self.d, *x, self.deleted) for x in self.doms):
                self.t_gone = t
                return

    def wait(self):
        """The times (time.monotonic()) the last of it went, and the last
        qemu exited."""
        self.thread.join()
        for fd in self.fds:
            os.close(fd)
        os.close(self.inotify)
        self.links.close()
        if self.t_gone is None:
            raise RuntimeError('the destroyed domains left something behind')
        return self.t_gone, self.t_exited or self.t_gone


def domid_of(s, sess, vm):
    return int(value(s.VM.get_domid(sess, vm)))


class CallsAtOnce:
    """XML-RPC calls of @method, one per tuple of @param_sets, sent at once
    by one thread, each on a keep-alive connection of its own opened
    beforehand, and their replies read as they come (select). Thirty
    Python threads, one per call, spread the calls' sending over 10 to
    500 ms on a host whose CPUs the guests fill: a thread descheduled while
    it holds the GIL stalls the others (a convoy). That measured the bench's
    client; the bare peer's kills come from one thread's loop, and so do
    these calls."""

    def __init__(self, d, method, param_sets):
        self.bodies = [xmlrpc.client.dumps(tuple(ps), method).encode() for ps in param_sets]
        self.socks = []
        for _ in self.bodies:
            c = socket.create_connection(('127.0.0.1', d.port))
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.socks.append(c)
        self.host = '127.0.0.1:%d' % d.port

    def send(self):
        for c, body in zip(self.socks, self.bodies):
            c.sendall(b'POST / HTTP/1.1\r\nHost: %s\r\nContent-Type: text/xml\r\n'
                      b'Content-Length: %d\r\n\r\n%s' % (self.host.encode(), len(body), body))

    def replies(self, timeout=60):
        """The decoded results, in the calls' order, once all have come."""
        bufs = {c: b'' for c in self.socks}
        done = {}
        deadline = time.monotonic() + timeout
        while len(done) < len(self.socks):
            if time.monotonic() > deadline:
                raise RuntimeError('%d replies missing' % (len(self.socks) - len(done)))
            r, _, _ = select.select([c for c in self.socks if c not in done], [], [], 1)
            for c in r:
                data = c.recv(65536)
                if not data:
                    raise RuntimeError('vesseld closed a connection before its reply')
                bufs[c] += data
                head, sep, body = bufs[c].partition(b'\r\n\r\n')
                m = re.search(rb'(?im)^content-length:\s*(\d+)', head)
                if sep and m and len(body) >= int(m.group(1)):
                    done[c] = xmlrpc.client.loads(body[:int(m.group(1))])[0][0]
        return [done[c] for c in self.socks]

    def close(self):
        for c in self.socks:
            c.close()


def api_destroy(d, vms, client=None):
    """@vms [(proxy, session, vm, uuid)], all running: seconds from the
    hard_shutdown calls to all gone, to the last reply, and to the last qemu's
    exit. One VM: the call
    through @client (a vessel_xenapi session's xenapi); more: CallsAtOnce."""
    doms = []
    for s, sess, vm, uuid in vms:
        _, pid = vesseld_argv(d, uuid)
        doms.append((uuid, pid, domid_of(s, sess, vm)))
    calls = None if client else CallsAtOnce(d, 'VM.hard_shutdown', [(sess, vm) for _, sess, vm, _ in vms])
    try:
        watch = GoneWatch(d, doms)
        t0 = time.monotonic()
        if calls:
            calls.send()
            results = calls.replies()
        else:
            client.VM.hard_shutdown(vms[0][2])  # raises its Failure
            results = []
        t_reply = time.monotonic()
        t1, t_exited = watch.wait()
    finally:
        if calls:
            calls.close()
    failed = [r for r in results if r.get('Status') != 'Success']
    if failed:
        raise RuntimeError('hard_shutdown failed: %r' % failed[0])
    return t1 - t0, t_reply - t0, t_exited - t0


MiB = 1024 * 1024
BRIDGE = 'vbrdestroy'


class DevBare(Bare):
    """A bare peer whose disk is served by a `vhd serve` of its own and whose
    tap qemu makes: vesseld's argv with the NBD socket and the tap's name
    changed, nothing else."""

    def __init__(self, argv, vhd_tool, index):
        super().__init__(argv)
        self.vhd_tool = vhd_tool
        self.server = None
        self.tap = 'bdestroy%d' % index

    def start(self):
        subprocess.run(['ip', 'tuntap', 'add', 'dev', self.tap, 'mode', 'tap'], check=True)
        # up, and a port of the bench's bridge, as a guest's tap is: its
        # deletion then owes what a guest's does (its close, its port's
        # removal)
        subprocess.run(['ip', 'link', 'set', self.tap, 'master', BRIDGE, 'up'], check=True)
        img = os.path.join(self.dir, 'disk.vhd')
        sock = os.path.join(self.dir, 'disk.sock')
        subprocess.run([self.vhd_tool, 'create', '--size', '8M', img], check=True,
                       capture_output=True)
        self.server = subprocess.Popen([self.vhd_tool, 'serve', '--socket', sock, img],
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not os.path.exists(sock) and time.monotonic() < deadline:
            time.sleep(0.001)
        out = []
        for a in self.argv:
            a = re.sub(r'server\.path=[^,]*', 'server.path=' + sock, a)
            a = re.sub(r'ifname=[^,]*', 'ifname=' + self.tap, a)
            out.append(a)
        self.argv = out
        super().start()

    def close(self):
        super().close()
        if self.server:
            self.server.terminate()
            self.server.wait()
        subprocess.run(['ip', 'link', 'del', self.tap], capture_output=True)


NLM_F_REQUEST = 1  # netlink(7)


def dellink_request(index):
    """An RTM_DELLINK request for link @index, no acknowledgement asked."""
    body = struct.pack('BxHiII', socket.AF_UNSPEC, 0, index, 0, 0)  # ifinfomsg
    return struct.pack('IHHII', 16 + len(body), RTM_DELLINK, NLM_F_REQUEST, 1, 0) + body


def bare_destroy(argv, n, vhd_tool=None, cleanup=False):
    """Seconds from kill -9 of @n bare qemus until they are reaped. With
    @cleanup (and devices), what vesseld's hard shutdown also owes, done as
    a script best does it: once a qemu is reaped, its disk server's SIGTERM
    and its tap's deletion (a netlink request on a thread of its own,
    TapDeleter); until the servers exited and the taps' RTM_DELLINK came
    (GoneWatch's 'gone')."""
    peers = [DevBare(argv, vhd_tool, i) if vhd_tool else Bare(argv) for i in range(n)]
    cleanup = cleanup and vhd_tool is not None
    events, deleters = None, []
    try:
        for b in peers:
            b.start()
        for b in peers:
            b.connect_console()
        if cleanup:
            events = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
            events.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            events.bind((0, RTMGRP_LINK))
            deleters = [TapDeleter(b.tap) for b in peers]
        time.sleep(RUN_S)
        t0 = time.monotonic()
        for b in peers:
            b.proc.kill()
        for i, b in enumerate(peers):
            b.proc.wait()
            if cleanup:
                deleters[i].start()
                b.server.terminate()
        if cleanup:
            for b in peers:
                b.server.wait()
            left = {b.tap for b in peers}
            deadline = time.monotonic() + 30
            while left and time.monotonic() < deadline:
                if select.select([events], [], [], 1)[0]:
                    left.difference_update(deleted_links(events.recv(65536)))
            if left:
                raise RuntimeError('the bare taps %s were not deleted' % sorted(left))
        return time.monotonic() - t0
    finally:
        for t in deleters:
            t.close()
        if events:
            events.close()
        for b in peers:
            b.close()


class TapDeleter(threading.Thread):
    """Deletes tap @name on a thread of its own: the kernel handles a netlink
    request inside the sender's sendmsg, and a tap's deletion returns only
    once the device is released (about 20 ms here), well after its
    RTM_DELLINK; a script's main thread must not wait in it (vesseld
    deletes taps on a worker thread for the same reason)."""

    def __init__(self, name):
        super().__init__()
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        self.request = dellink_request(socket.if_nametoindex(name))

    def run(self):
        self.sock.send(self.request)

    def close(self):
        if self.ident is not None:
            self.join()
        self.sock.close()


def add_devices(s, sess, vm, net):
    """A data disk and a NIC for @vm."""
    sr = value(s.pool.get_all_records(sess)).popitem()[1]['default_SR']
    vdi = value(s.VDI.create(sess, {'name_label': 'data', 'name_description': '', 'SR': sr,
                                    'virtual_size': str(8 * MiB), 'type': 'user',
                                    'sharable': False, 'read_only': False, 'other_config': {}}))
    value(s.VBD.create(sess, {'VM': vm, 'VDI': vdi, 'userdevice': '0', 'bootable': False,
                              'mode': 'RW', 'type': 'Disk', 'unpluggable': True,
                              'empty': False, 'other_config': {}, 'qos_algorithm_type': '',
                              'qos_algorithm_params': {}}))
    value(s.VIF.create(sess, {'device': '0', 'network': net, 'VM': vm, 'MAC': '', 'MTU': '1500',
                              'other_config': {}, 'qos_algorithm_type': '',
                              'qos_algorithm_params': {}}))


def main():
    if os.geteuid() == 0 and '--inner' not in sys.argv and 'plain' not in sys.argv[4:]:
        rc = run_in_netns('vessel-destroy-bench', [sys.executable, os.path.abspath(__file__),
                                                   '--inner'] + sys.argv[1:])
        if rc is not None:
            sys.exit(rc)
    args = [a for a in sys.argv[1:] if a != '--inner']
    build = os.path.abspath(args[0])
    reps = int(args[1]) if len(args) > 1 else 5
    n_many = int(args[2]) if len(args) > 2 else 30
    devices = (args[3] if len(args) > 3 else 'devices') == 'devices'
    vhd_tool = os.path.join(build, 'vhd') if devices else None
    if '--inner' in sys.argv:
        subprocess.run(['ip', 'link', 'set', 'lo', 'up'], check=True)
    guest = os.path.join(build, 'bench-guest')
    subprocess.run(['sh', os.path.join(HERE, '..', '..', 'tests', 'guest', 'build-guest.sh'), guest],
                   check=True, capture_output=True)
    d = Vesseld(os.path.join(build, 'vesseld'), extra=['--backend', 'qemu', '--guest-kernel-dir', guest,
                                                       '--log-level', 'debug'])
    try:
        d.start()
        s = d.proxy()
        sess = d.login()
        # the timed call goes through Vessel's Python client (bench/api/peers.py
        # measures it against libvirt's): what xmlrpc.client adds is its own
        lean = vessel_xenapi.Session('http://127.0.0.1:%d' % d.port)
        lean.login_with_password('root', ROOT_PASSWORD)
        net = None
        if devices:
            net = value(s.network.create(sess, {'name_label': 'bench', 'name_description': '',
                                                'MTU': '1500', 'other_config': {},
                                                'bridge': BRIDGE}))
        vm, uuid = make_vm(s, sess, guest, 'bench')
        if devices:
            add_devices(s, sess, vm, net)
        value(s.VM.start(sess, vm, False, False))
        argv = peer_argv(vesseld_argv(d, uuid)[0], os.path.join(guest, 'vmlinux'),
                         os.path.join(guest, 'initramfs.cpio'))
        value(s.VM.hard_shutdown(sess, vm))
        log_mark = os.path.getsize(d.log_path)
        api, raw, rawc = [], [], []
        for _ in range(reps):
            raw.append(bare_destroy(argv, 1, vhd_tool))
            if devices:
                rawc.append(bare_destroy(argv, 1, vhd_tool, cleanup=True))
            value(s.VM.start(sess, vm, False, False))
            time.sleep(RUN_S)
            api.append(api_destroy(d, [(s, sess, vm, uuid)], lean.xenapi))
        b, a = statistics.median(raw), statistics.median(x[0] for x in api)
        reply = statistics.median(x[1] for x in api)
        print('guest destroy (default machine: pc, %s), median of %d (ms)   bare kill -9   '
              'VM.hard_shutdown   ratio' % ('a disk and a NIC' if devices else 'no devices', reps))
        print('  %-43s %12.1f   %16.1f   %5.2f' % ('1 guest: to qemu exited, taps and disks gone',
                                                   b * 1e3, a * 1e3, a / b))
        print('  %-43s %12s   %16.1f   %5.2f' % ('  of which to the reply', '', reply * 1e3,
                                                   reply / b))
        # the literal check: the call until qemu is gone, against the
        # kill until it is reaped (the taps and disk servers go after)
        exited = statistics.median(x[2] for x in api)
        print('  %-43s %12s   %16.1f   %5.2f' % ('  of which to qemu exited', '', exited * 1e3,
                                                   exited / b))
        # each API destroy against the bare kill just before it: the
        # machine's load (other work on it) moves both alike
        print('  %-43s %12s   %16s   %5.2f / %.2f / %.2f' % (
            'median of the %d pairs\' ratios: gone / reply / exited' % reps, '', '',
            statistics.median(x[0] / r for x, r in zip(api, raw)),
            statistics.median(x[1] / r for x, r in zip(api, raw)),
            statistics.median(x[2] / r for x, r in zip(api, raw))))
        if rawc:
            # the peer that owes what vesseld owes: the cleanup's own cost
            c = statistics.median(rawc)
            print('  %-43s %12.1f   %16.1f   %5.2f' % ('  against a bare kill + the same cleanup', c * 1e3,
                                                       a * 1e3, a / c))
            print('  %-43s %12s   %16s   %5.2f' % ('  (median of the pairs\' ratios)', '', '',
                                                   statistics.median(x[0] / r for x, r in zip(api, rawc))))
        steps = steps_since(d, log_mark, 'hard_shutdown')
        if steps:
            print('  VM.hard_shutdown steps, median ms: ' +
                  ', '.join('%s %.2f' % kv for kv in steps.items()))
        # what any call costs the client: the reply's floor above the kill
        for name, call in (('vessel_xenapi', lambda: lean.xenapi.VM.get_power_state(vm)),
                           ('xmlrpc.client', lambda: value(s.VM.get_power_state(sess, vm)))):
            rtt = []
            for _ in range(max(reps, 21)):
                t0 = time.monotonic()
                call()
                rtt.append(time.monotonic() - t0)
            print('  %-43s %12s   %16.2f' % ('a call\'s round trip (VM.get_power_state, %s)'
                                            % name, '', statistics.median(rtt) * 1e3))
        many = []
        for i in range(n_many):
            p = d.proxy()
            many.append((p, sess) + make_vm(p, sess, guest, 'bench-%d' % i))
            if devices:
                add_devices(p, sess, many[-1][2], net)
        tasks = [value(getattr(s, 'Async.VM.start')(sess, v, False, False)) for _, _, v, _ in many]
        deadline = time.monotonic() + 300
        while (any(value(s.task.get_status(sess, t)) == 'pending' for t in tasks) and
               time.monotonic() < deadline):
            time.sleep(0.1)
        # a start that failed would show later as a guest without a qemu
        ended = [(t, value(s.task.get_status(sess, t))) for t in tasks]
        failed = [(status, value(s.task.get_error_info(sess, t)))
                  for t, status in ended if status != 'success']
        if failed:
            raise RuntimeError('%d of %d starts did not succeed: %r'
                               % (len(failed), len(tasks), failed[0]))
        time.sleep(RUN_S)
        log_mark = os.path.getsize(d.log_path)
        a, reply, _ = api_destroy(d, many)
        b = bare_destroy(argv, n_many, vhd_tool)
        print('  %-43s %12.1f   %16.1f   %5.2f' % ('%d guests at once (one thread, a connection each)' % n_many,
                                                   b * 1e3, a * 1e3, a / b))
        print('  %-43s %12s   %16.1f' % ('  of which to the last reply', '', reply * 1e3))
        if devices:
            c = bare_destroy(argv, n_many, vhd_tool, cleanup=True)
            print('  %-43s %12.1f   %16.1f   %5.2f' % ('  against bare kills + the same cleanup', c * 1e3,
                                                       a * 1e3, a / c))
        steps = steps_since(d, log_mark, 'hard_shutdown')
        if steps:
            print('  VM.hard_shutdown steps, median ms: ' +
                  ', '.join('%s %.2f' % kv for kv in steps.items()))
    finally:
        d.kill_all()
        d.cleanup()


if __name__ == '__main__':
    main()
