#!/usr/bin/env python3
"""bench/guests/migrate_bench.py - live migration: VM.pool_migrate vs two bare QEMUs.

The same guest both ways: the test guest (pc machine, TCG, 256 MiB, its kernel and
initramfs, a 16 MiB VHD disk over NBD from `vhd serve`) running a ticker that writes a
counter to its disk (fsync) and prints "TICK n" every 100 ms. Measured in one run:
  1. vesseld: REPS localhost migrations (VM.pool_migrate, sync call), each with the
     disk hand-over (destination's disk server in standby, activated after the
     source's exited) and new taps;
  2. bare: two qemu-system-x86_64 with the devices vesseld gives such a VM, migrating
     it REPS times back and forth over TCP on 127.0.0.1 with the same TLS credentials
     (the host certificate vesseld made, tls-creds-x509), the same capability
     (late-block-activate), both QEMUs on one `vhd serve` (no hand-over at all: what
     QEMU alone costs).
For each: QEMU's downtime (query-migrate on the source), the longest gap between two
ticks seen on the console around a migration (what the guest lost: the nominal 100 ms
included), and the total time (the API call; for bare, from starting the destination
qemu to it running). Medians; the ratio vesseld/bare. Goal: downtime <= 1.2x bare.
Usage: migrate_bench.py BUILD_DIR [REPS]
"""
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.join(HERE, '..', '..')
sys.path.insert(0, os.path.join(TOP, 'tests', 'integration'))
from harness import Vesseld, console_type, value, wait_for  # noqa: E402

MiB = 1024 * 1024
TICKER = ("(i=0; while :; do i=$((i+1)); printf '%08d' $i | dd of=/dev/vda bs=512 seek=$i "
          "count=1 conv=sync,fsync 2>/dev/null && echo TICK $i; sleep 0.1; done) "
          "</dev/null >/dev/console 2>&1 &")
ARGS = 'console=ttyS0 quiet vessel.noagent'


class TickWatch(threading.Thread):
    """Host arrival times of the guest's TICK lines, read from a file (vesseld's
    console log) or from serial sockets (bare qemu)."""

    def __init__(self, path=None):
        super().__init__(daemon=True)
        self.path, self.times, self.stop, self.socks = path, [], False, []
        self.lock = threading.Lock()

    def feed(self, text):
        now = time.monotonic()
        with self.lock:
            self.times.extend([now] * len(re.findall(r'TICK \d+', text)))

    def add_socket(self, s):
        t = threading.Thread(target=self._read_sock, args=(s,), daemon=True)
        t.start()

    def _read_sock(self, s):
        buf = ''
        while not self.stop:
            try:
                chunk = s.recv(4096)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk.decode(errors='replace')
            lines = buf.split('\n')
            buf = lines.pop()
            self.feed('\n'.join(lines))

    def run(self):
        if not self.path:
            return
        pos = 0
        while not self.stop:
            try:
                with open(self.path, errors='replace') as f:
                    f.seek(pos)
                    data = f.read()
            except OSError:
                data = ''
            cut = data.rfind('\n') + 1
            if cut:
                self.feed(data[:cut])
                pos += len(data[:cut].encode())
            time.sleep(0.005)

    def gap(self, t0, t1):
        """Longest interval between ticks that arrived from t0 to 2 s after t1."""
        with self.lock:
            ts = [t for t in self.times if t0 - 0.5 <= t <= t1 + 2.0]
        return max((b - a for a, b in zip(ts, ts[1:])), default=float('nan'))


# ---------------------------------------------------------------- vesseld


def vessel_run(build, guest, reps, tmp):
    d = Vesseld(os.path.join(build, 'vesseld'),
                extra=['--backend', 'qemu', '--guest-kernel-dir', guest])
    rows = []
    try:
        d.start()
        s = d.proxy()
        sess = d.login()
        host = value(s.host.get_all(sess))[0]
        srs = value(s.SR.get_all_records(sess))
        sr = [r for r, v in srs.items() if v['other_config'].get('vessel-local') == 'true'][0]
        tmpl = [r for r, v in value(s.VM.get_all_records(sess)).items()
                if v['name_label'] == 'Direct kernel boot'][0]
        vm = value(s.VM.clone(sess, tmpl, 'bench'))
        value(s.VM.set_is_a_template(sess, vm, False))
        value(s.VM.set_PV_kernel(sess, vm, os.path.join(guest, 'bzImage')))
        value(s.VM.set_PV_ramdisk(sess, vm, os.path.join(guest, 'initramfs.cpio')))
        value(s.VM.set_PV_args(sess, vm, ARGS))
        value(s.VM.remove_from_platform(sess, vm, 'machine'))
        value(s.VM.add_to_platform(sess, vm, 'machine', 'pc'))
        value(s.VM.add_to_platform(sess, vm, 'accel', 'tcg'))
        mem = str(256 * MiB)
        value(s.VM.set_memory_limits(sess, vm, mem, mem, mem, mem))
        vdi = value(s.VDI.create(sess, {'name_label': 'ticks', 'name_description': '', 'SR': sr,
                                        'virtual_size': str(16 * MiB), 'type': 'user',
                                        'sharable': False, 'read_only': False,
                                        'other_config': {}}))
        value(s.VBD.create(sess, {'VM': vm, 'VDI': vdi, 'userdevice': '0', 'bootable': False,
                                  'mode': 'RW', 'type': 'Disk', 'unpluggable': True,
                                  'empty': False, 'other_config': {},
                                  'qos_algorithm_type': '', 'qos_algorithm_params': {}}))
        uuid = value(s.VM.get_uuid(sess, vm))
        log = os.path.join(d.dir, 'data', 'console', uuid + '.log')
        value(s.VM.start(sess, vm, False, False))
        watch = TickWatch(log)
        watch.start()
        wait_for(lambda: os.path.exists(log) and 'VESSEL-GUEST-UP' in open(log).read(), 90)
        console = [c for c in value(s.VM.get_consoles(sess, vm))
                   if value(s.console.get_protocol(sess, c)) == 'vt100'][0]
        console_type(d, sess, console, 'run ' + TICKER, 'TICK 1', 30)
        time.sleep(2)
        for _ in range(reps):
            t0 = time.monotonic()
            value(s.VM.pool_migrate(sess, vm, host, {}))
            t1 = time.monotonic()
            time.sleep(2.5)
            with open(d.log_path) as f:
                downs = re.findall(r'vm\.migrate_sent .*downtime_ms=(\d+)', f.read())
            rows.append((int(downs[-1]), watch.gap(t0, t1) * 1000, (t1 - t0) * 1000))
        watch.stop = True
        value(s.VM.hard_shutdown(sess, vm))
        cert = os.path.join(d.dir, 'data', 'tls')
        shutil.copy(os.path.join(cert, 'cert.pem'), os.path.join(tmp, 'cert.pem'))
        shutil.copy(os.path.join(cert, 'key.pem'), os.path.join(tmp, 'key.pem'))
    finally:
        d.kill_all()
        d.cleanup()
    return rows


# ---------------------------------------------------------------- bare qemu


class Qmp:
    def __init__(self, path):
        for _ in range(400):
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                break
            except OSError:
                time.sleep(0.025)
        self.f = self.s.makefile('rwb')
        self.f.readline()
        self.events = []   # those that came while a command waited
        self.cmd('qmp_capabilities')

    def _read(self):
        line = self.f.readline()
        if not line:
            raise RuntimeError('QMP closed')
        return json.loads(line)

    def cmd(self, c, **a):
        self.f.write((json.dumps({'execute': c, 'arguments': a}) + '\n').encode())
        self.f.flush()
        while True:
            r = self._read()
            if 'event' not in r:
                return r
            self.events.append(r)

    def event(self, name, pred=lambda data: True):
        """The first @name event whose data satisfies @pred, kept or awaited
        (blocking); it alone is consumed."""
        seen = 0
        while True:
            for i in range(seen, len(self.events)):
                e = self.events[i]
                if e['event'] == name and pred(e.get('data', {})):
                    return self.events.pop(i)
            seen = len(self.events)
            self.events.append(self._read())


def qemu_time(event):
    """When QEMU sent @event, by its own clock (wall time, seconds)."""
    return event['timestamp']['seconds'] + event['timestamp']['microseconds'] / 1e6


def bare_qemu(guest, tmp, name, nbd, incoming, wrap=(), nic=None, args=ARGS):
    """A qemu with the devices vesseld gives this VM (api_bench.py's set and the disk),
    run through @wrap (a namespace's `ip netns exec NS`); @nic: (tap, mac) for a
    virtio-net NIC on that tap, as vesseld gives a VIF."""
    cmd = list(wrap) + [
           'qemu-system-x86_64', '-machine', 'pc', '-accel', 'tcg', '-m', '256M', '-smp', '1',
           '-nodefaults', '-no-user-config', '-S',
           '-chardev', 'socket,id=qmp,path=%s/%s.qmp,server=on,wait=off' % (tmp, name),
           '-mon', 'chardev=qmp,mode=control',
           '-chardev', 'socket,id=s0,path=%s/%s.con,server=on,wait=off' % (tmp, name),
           '-serial', 'chardev:s0', '-vga', 'std', '-vnc', 'unix:%s/%s.vnc' % (tmp, name),
           '-device', 'pvpanic',
           '-chardev', 'socket,id=agent,path=%s/%s.agent,server=on,wait=off' % (tmp, name),
           '-device', 'virtio-serial-pci', '-device',
           'virtserialport,chardev=agent,name=org.qemu.guest_agent.0',
           '-device', 'virtio-balloon-pci',
           '-blockdev', 'driver=nbd,node-name=disk0,server.type=unix,server.path=%s' % nbd,
           '-device', 'virtio-blk-pci,drive=disk0,id=vbd0',
           '-kernel', os.path.join(guest, 'bzImage'),
           '-initrd', os.path.join(guest, 'initramfs.cpio'), '-append', args]
    if nic:
        cmd += ['-netdev', 'tap,id=net0,ifname=%s,script=no,downscript=no' % nic[0],
                '-device', 'virtio-net-pci,netdev=net0,mac=%s' % nic[1]]
    if incoming:
        cmd += ['-incoming', 'defer']
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    q = Qmp('%s/%s.qmp' % (tmp, name))
    con = socket.socket(socket.AF_UNIX)
    con.connect('%s/%s.con' % (tmp, name))
    return p, q, con


def tls_dir(tmp, endpoint):
    d = os.path.join(tmp, 'tls-' + endpoint)
    os.makedirs(d, exist_ok=True)
    shutil.copy(os.path.join(tmp, 'cert.pem'), os.path.join(d, 'ca-cert.pem'))
    shutil.copy(os.path.join(tmp, 'cert.pem'), os.path.join(d, endpoint + '-cert.pem'))
    shutil.copy(os.path.join(tmp, 'key.pem'), os.path.join(d, endpoint + '-key.pem'))
    return d


def tls_object(q, tmp, endpoint, hostname=None):
    q.cmd('object-del', id='tls-' + endpoint)   # an earlier migration's, if any
    q.cmd('object-add', **{'qom-type': 'tls-creds-x509', 'id': 'tls-' + endpoint,
                           'dir': tls_dir(tmp, endpoint), 'endpoint': endpoint,
                           'verify-peer': True, 'sanity-check': False})
    params = {'tls-creds': 'tls-' + endpoint}
    if hostname:
        params['tls-hostname'] = hostname
    q.cmd('migrate-set-parameters', **params)


class Bare:
    """A guest in bare QEMUs migrated back and forth between @ends, each a dict:
    'wrap' (command prefix: a namespace), 'addr' (the destination's listen
    address), 'tap' (None: no NIC); over TCP with TLS (tmp/cert.pem, key.pem:
    a vesseld's host certificate; @tls_hostname the name it bears, else the
    address's) and late-block-activate, both QEMUs on one `vhd serve` (no
    hand-over: what QEMU alone costs). Rows per migration: QEMU's downtime, the
    longest tick gap, the total (starting the destination .. it runs), the
    guest's pause (the source's STOP .. the destination's RESUME, by QEMU's
    clocks). Driven by QEMU's MIGRATION events (capability `events`), as
    vesseld is: the destination runs as soon as it has the whole state."""

    def __init__(self, build, guest, tmp, ends=None, args=ARGS, mac='52:54:00:be:0c:01',
                 tls_hostname=None):
        self.build, self.guest, self.tmp, self.args, self.mac = build, guest, tmp, args, mac
        self.ends = ends or [{'wrap': (), 'addr': '127.0.0.1', 'tap': None}] * 2
        self.tls_hostname = tls_hostname
        self.watch = TickWatch()
        self.procs, self.server, self.at, self.n = [], None, 0, 0

    def _qemu(self, end, incoming):
        self.n += 1
        e = self.ends[end]
        return bare_qemu(self.guest, self.tmp, 'q%d' % self.n, self.nbd, incoming, e['wrap'],
                         (e['tap'], self.mac) if e['tap'] else None, self.args)

    def start(self):
        vhd = os.path.join(self.build, 'vhd')
        img = os.path.join(self.tmp, 'bare.vhd')
        subprocess.run([vhd, 'create', '--size', '16M', img], check=True, capture_output=True)
        self.nbd = os.path.join(self.tmp, 'bare.nbd')
        self.server = subprocess.Popen([vhd, 'serve', '--socket', self.nbd, img])
        for _ in range(200):
            if os.path.exists(self.nbd):
                break
            time.sleep(0.025)
        self.src, self.qs, con = self._qemu(0, False)
        self.procs.append(self.src)
        self.qs.cmd('cont')
        buf = b''
        con.settimeout(90)
        while b'VESSEL-GUEST-UP' not in buf:
            buf += con.recv(4096)
        con.settimeout(None)
        self.watch.add_socket(con)
        con.sendall(('run ' + TICKER + '\n').encode())
        return self

    def migrate(self):
        dst_end = 1 - self.at
        t0 = time.monotonic()   # the destination's start counts, as in VM.pool_migrate
        dst, qd, dcon = self._qemu(dst_end, True)
        self.procs.append(dst)
        self.watch.add_socket(dcon)
        qd.cmd('migrate-set-capabilities',
               capabilities=[{'capability': 'late-block-activate', 'state': True},
                             {'capability': 'events', 'state': True}])
        self.qs.cmd('migrate-set-capabilities',
                    capabilities=[{'capability': 'events', 'state': True}])
        self.qs.events.clear()
        tls_object(qd, self.tmp, 'server')
        qd.cmd('migrate-incoming', uri='tcp:%s:0' % self.ends[dst_end]['addr'])
        port = qd.cmd('query-migrate')['return']['socket-address'][0]['port']
        tls_object(self.qs, self.tmp, 'client', self.tls_hostname)
        self.qs.cmd('migrate', uri='tcp:%s:%s' % (self.ends[dst_end]['addr'], port))
        over = ('completed', 'failed', 'cancelled')
        end = self.qs.event('MIGRATION', lambda d: d.get('status') in over)['data']['status']
        if end != 'completed':
            raise RuntimeError('bare migration ' + end)
        qd.event('MIGRATION', lambda d: d.get('status') in over)
        while qd.cmd('query-status')['return']['status'] == 'inmigrate':
            time.sleep(0.001)
        # late-block-activate: QEMU inactivated the source's images at the
        # completion, so the destination may run before the source goes
        qd.cmd('cont')
        t1 = time.monotonic()
        while True:
            r = self.qs.cmd('query-migrate')['return']
            # QEMU says completed before it has computed the times (0 meanwhile)
            if r.get('total-time'):
                break
            time.sleep(0.005)
        paused = qemu_time(qd.event('RESUME')) - qemu_time(self.qs.event('STOP'))
        self.qs.cmd('quit')
        self.src.wait(10)
        self.src, self.qs, self.at = dst, qd, dst_end
        return [r['downtime'], None, (t1 - t0) * 1000, paused * 1000, t0, t1]

    def close(self):
        self.watch.stop = True
        for p in self.procs:
            p.kill()
            p.wait()
        if self.server:
            self.server.kill()
            self.server.wait()


def bare_run(build, guest, reps, tmp):
    bare = Bare(build, guest, tmp)
    rows = []
    try:
        bare.start()
        time.sleep(2)
        for _ in range(reps):
            row = bare.migrate()
            time.sleep(2.5)
            row[1] = bare.watch.gap(row[4], row[5]) * 1000
            rows.append(tuple(row[:3]))
    finally:
        bare.close()
    return rows


def med(rows, k):
    return statistics.median(r[k] for r in rows)


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(TOP, 'build'))
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    guest = os.path.join(build, 'bench-guests', 'guest')
    subprocess.run(['sh', os.path.join(TOP, 'tests', 'guest', 'build-guest.sh'), guest],
                   check=True, capture_output=True)
    tmp = tempfile.mkdtemp(prefix='vessel-migbench-')
    try:
        vessel = vessel_run(build, guest, reps, tmp)
        bare = bare_run(build, guest, reps, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print('live migration, %d each, medians (ms); guest: pc TCG 256 MiB, ticker every 100 ms'
          % reps)
    print('%-28s %10s %10s %8s' % ('', 'VM.pool_migrate', 'bare qemu', 'ratio'))
    for k, name in ((0, 'QEMU downtime'), (1, 'longest tick gap'), (2, 'total time')):
        v, b = med(vessel, k), med(bare, k)
        print('%-28s %15.0f %10.0f %7.2fx' % (name, v, b, v / b if b else float('nan')))
    print('per migration (downtime, tick gap, total): vesseld %s' %
          [tuple(round(x) for x in r) for r in vessel])
    print('                                            bare    %s' %
          [tuple(round(x) for x in r) for r in bare])
    return 0


if __name__ == '__main__':
    sys.exit(main())
