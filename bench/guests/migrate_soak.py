#!/usr/bin/env python3
"""bench/guests/migrate_soak.py - a busy, pinged guest migrated back and forth between two
bare QEMUs, until its kernel reports a crash or the count is reached: a soak, not a timing.

It finds faults of the pieces a migration goes through without vesseld in the way: the
disk servers, QEMU, the kernel. Two network namespaces on one link (pool_netns.py), a QEMU
in each with the device set vesseld gives a VM (the agent channel, pvpanic, balloon,
sandbox; --bare drops the agent channel and the sandbox), the test guest of
integration-migrate-pool with its two disks: it writes a counter to the first every 100 ms
and appends records to an ext4 file system on the second, fsyncing each (the test's
FS_TICKER), and answers pings every 10 ms. The destination starts with -incoming defer and
late-block-activate, the source quits once the destination has the state, and the
destination continues after --pause-ms (vesseld's disk hand-over takes that long).
Disks: --disks vhd (two `vhd serve`, --vhd-threads each), qemu-nbd, or raw (files).
Needs root. Usage:
  migrate_soak.py BUILD_DIR [--migrations N] [--pause-ms MS] [--announce-rounds N] [--disks vhd|qemu-nbd|raw]
                  [--vhd-threads N] [--tls] [--bare] [--idle-s S] [--accel ACCEL]
                  [--vhd PATH] [--qemu-arg '-OPTION VALUE']... [--kill-source]
                  [--announce]
--idle-s S runs S seconds without migrating instead (the control). Prints a line per
migration; exits 1 at the first crash, the guest's console in soak-console.log.
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'tests', 'integration'))
sys.path.insert(0, HERE)
from migrate_bench import Qmp, tls_object  # noqa: E402
from pool_netns import PoolNet, ip, usable  # noqa: E402
from test_migrate_pool import FS_TICKER, OOPS, Pinger, guest_links  # noqa: E402

SANDBOX = 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny'


class Soak:
    def __init__(self, args, tmp):
        self.a, self.tmp, self.n = args, tmp, 0
        self.log = open('soak-console.log', 'wb')
        self.lock = threading.Lock()
        self.text = b''
        # --standby: the source's disk geometry for the destination's devices, so that
        # QEMU does not read sector 0 from a server that holds it (as vesseld passes it)
        self.geometry = None

    def _read(self, sock):
        while True:
            try:
                d = sock.recv(65536)
            except OSError:
                return
            if not d:
                return
            with self.lock:
                self.text += d
                self.log.write(d)
                self.log.flush()

    def console(self):
        with self.lock:
            return self.text.decode(errors='replace')

    def disks(self):
        out = []
        for k in (0, 1):
            if self.a.disks == 'raw':
                out += ['-blockdev', 'driver=file,node-name=f%d,filename=%s/d%d.raw,locking=off'
                        % (k, self.tmp, k), '-blockdev', 'driver=raw,node-name=disk%d,file=f%d'
                        % (k, k)]
            else:
                sock = ('%s/d%d-%d.nbd' % (self.tmp, k, self.n) if self.a.standby
                        else '%s/d%d.nbd' % (self.tmp, k))
                out += ['-blockdev', 'driver=nbd,node-name=disk%d,server.type=unix,'
                        'server.path=%s' % (k, sock)]
            geo = self.geometry[k] if self.geometry else ''
            out += ['-device', 'virtio-blk-pci,drive=disk%d,id=vbd%d%s' % (k, k, geo)]
        return out

    def qemu(self, wrap, incoming, cmdline):
        self.n += 1
        name = '%s/q%d' % (self.tmp, self.n)
        cmd = list(wrap) + [
            self.a.qemu, '-machine', 'pc', '-accel', self.a.accel, '-m', '256M',
            '-smp', '1',
            '-nodefaults', '-no-user-config', '-S',
            '-chardev', 'socket,id=qmp,path=%s.qmp,server=on,wait=off' % name,
            '-mon', 'chardev=qmp,mode=control',
            '-chardev', 'socket,id=s0,path=%s.con,server=on,wait=off' % name,
            '-serial', 'chardev:s0', '-vga', 'std', '-vnc', 'unix:%s.vnc' % name,
            '-device', 'pvpanic', '-device', 'virtio-balloon-pci',
            '-kernel', os.path.join(self.a.guest, 'bzImage'),
            '-initrd', os.path.join(self.a.guest, 'initramfs.cpio'), '-append', cmdline,
            '-netdev', 'tap,id=net0,ifname=st0,script=no,downscript=no',
            '-device', 'virtio-net-pci,netdev=net0,mac=52:54:00:be:0c:0b'] + self.disks()
        if not self.a.bare:
            cmd += ['-sandbox', SANDBOX, '-action', 'reboot=shutdown,shutdown=poweroff,panic=none',
                    '-device', 'virtio-serial-pci,id=vserial0',
                    '-chardev', 'socket,id=agent,path=%s.agent,server=on,wait=off' % name,
                    '-device', 'virtserialport,chardev=agent,name=org.qemu.guest_agent.0']
        for extra in self.a.qemu_arg:
            cmd += extra.split(' ', 1)
        if incoming:
            cmd += ['-incoming', 'defer']
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        q = Qmp(name + '.qmp')
        con = socket.socket(socket.AF_UNIX)
        con.connect(name + '.con')
        threading.Thread(target=self._read, args=(con,), daemon=True).start()
        return p, q, con


def serve_disks(a, tmp, procs):
    subprocess.run(['truncate', '-s', '16M', tmp + '/d0.raw'], check=True)
    os.makedirs(tmp + '/tree')
    open(tmp + '/tree/records', 'w').close()
    subprocess.run(['mke2fs', '-q', '-F', '-t', 'ext4', '-d', tmp + '/tree', tmp + '/d1.raw',
                    '32M'], check=True, capture_output=True)
    vhd = a.vhd or os.path.join(a.build, 'vhd')
    for k in (0, 1):
        if a.standby:   # each QEMU gets its own servers (own_servers)
            subprocess.run([vhd, 'convert', '--to', 'vhd', '%s/d%d.raw' % (tmp, k),
                            '%s/d%d.vhd' % (tmp, k)], check=True, capture_output=True)
            continue
        sock, raw = '%s/d%d.nbd' % (tmp, k), '%s/d%d.raw' % (tmp, k)
        if a.disks == 'vhd':
            img = '%s/d%d.vhd' % (tmp, k)
            subprocess.run([vhd, 'convert', '--to', 'vhd', raw, img], check=True,
                           capture_output=True)
            procs.append(subprocess.Popen([vhd, 'serve', '--threads', str(a.vhd_threads),
                                           '--socket', sock, img]))
        elif a.disks == 'qemu-nbd':
            procs.append(subprocess.Popen(['qemu-nbd', '--shared=4', '-f', 'raw', '--socket',
                                           sock, raw]))
        else:
            continue
        for _ in range(400):
            if os.path.exists(sock):
                break
            time.sleep(0.025)


def own_servers(a, tmp, n, standby):
    """--standby: QEMU number @n's own two `vhd serve`, in standby for a destination
    (as vesseld's api/disk_servers.c), with control sockets; returns the processes."""
    vhd = a.vhd or os.path.join(a.build, 'vhd')
    procs = []
    for k in (0, 1):
        sock, ctl = '%s/d%d-%d.nbd' % (tmp, k, n), '%s/d%d-%d.ctl' % (tmp, k, n)
        procs.append(subprocess.Popen([vhd, 'serve', '--threads', str(a.vhd_threads), '--socket',
                                       sock, '--control', ctl] + (['--standby'] if standby
                                                                  else []) +
                                      ['%s/d%d.vhd' % (tmp, k)]))
        for _ in range(400):
            if os.path.exists(sock) and os.path.exists(ctl):
                break
            time.sleep(0.025)
    return procs


def activate(tmp, n):
    """Hands QEMU number @n's standby servers their images (`activate 1`)."""
    for k in (0, 1):
        fd = os.open('%s/d%d.vhd' % (tmp, k), os.O_RDWR)
        c = socket.socket(socket.AF_UNIX)
        c.connect('%s/d%d-%d.ctl' % (tmp, k, n))
        socket.send_fds(c, [b'activate 1\n'], [fd])
        reply = c.recv(256)
        c.close()
        os.close(fd)
        if not reply.startswith(b'ok'):
            raise RuntimeError('activate: %r' % reply)


RAM_MIB = 256


def compare_ram(qs, qd, tmp):
    """Both guests' RAM below RAM_MIB (the source stopped after its completion,
    the destination before `cont`: neither runs, so they must be equal), saved
    with pmemsave and compared page by page; the legacy VGA window
    (0xa0000-0xfffff, device memory) is skipped. A summary string."""
    files = []
    for q, side in ((qs, 'src'), (qd, 'dst')):
        path = os.path.join('/dev/shm', 'soak-%d-%s.ram' % (os.getpid(), side))
        r = q.cmd('pmemsave', val=0, size=RAM_MIB << 20, filename=path)
        if 'error' in r:
            return 'not compared: %r' % r['error']
        files.append(path)
    try:
        diff = []
        with open(files[0], 'rb') as f0, open(files[1], 'rb') as f1:
            addr = 0
            while True:
                a, b = f0.read(1 << 20), f1.read(1 << 20)
                if not a and not b:
                    break
                if a != b:
                    for off in range(0, max(len(a), len(b)), 4096):
                        page = addr + off
                        if a[off:off + 4096] != b[off:off + 4096] and \
                                not 0xa0000 <= page < 0x100000:
                            diff.append(page)
                addr += 1 << 20
        return ('equal' if not diff else '%d pages DIFFER: %s' %
                (len(diff), ' '.join('%#x' % x for x in diff[:16])))
    finally:
        for path in files:
            os.unlink(path)


def crashed(soak):
    return [m.group(0) for m in OOPS.finditer(soak.console())]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('build')
    ap.add_argument('--migrations', type=int, default=30)
    ap.add_argument('--pause-ms', type=int, default=200)
    ap.add_argument('--disks', choices=('vhd', 'qemu-nbd', 'raw'), default='vhd')
    ap.add_argument('--vhd-threads', type=int, default=8)
    ap.add_argument('--tls', action='store_true')
    ap.add_argument('--bare', action='store_true')
    ap.add_argument('--idle-s', type=int, default=0)
    ap.add_argument('--accel', default='tcg')
    ap.add_argument('--vhd', help='another vhd binary than BUILD_DIR/vhd')
    ap.add_argument('--standby', action='store_true',
                    help='each QEMU its own vhd serve; a destination\'s start in standby '
                    'and are activated once the source\'s exited, as in vesseld')
    ap.add_argument('--kill-source', action='store_true',
                    help='SIGKILL the source instead of quit, as vesseld does')
    ap.add_argument('--announce', action='store_true',
                    help='announce-self after cont, as vesseld does')
    ap.add_argument('--announce-rounds', type=int, default=None,
                    help="the destination's own announce rounds after the stream "
                         '(migrate-set-parameters announce-rounds; QEMU\'s default 5)')
    ap.add_argument('--compare-ram', action='store_true',
                    help="after each migration, before either QEMU goes on, save both "
                         "guests' RAM (pmemsave) and report the pages that differ")
    ap.add_argument('--qemu', default='qemu-system-x86_64',
                    help='another QEMU binary (with --qemu-arg "-L DIR" for its firmware)')
    ap.add_argument('--qemu-arg', action='append', default=[],
                    help='"-OPTION VALUE" added to both QEMUs (repeatable)')
    a = ap.parse_args()
    why = usable()
    if why:
        print('migrate_soak: ' + why)
        return 2
    a.build = os.path.abspath(a.build)
    a.guest = os.path.join(a.build, 'bench-guests', 'guest')
    subprocess.run(['sh', os.path.join(HERE, '..', '..', 'tests', 'guest', 'build-guest.sh'),
                    a.guest], check=True, capture_output=True)
    tmp = tempfile.mkdtemp(prefix='vessel-soak-')
    os.chmod(tmp, 0o755)
    net, outers, procs, pinger = PoolNet(), [], [], None
    soak = Soak(a, tmp)
    try:
        nodes = [net.add('sa'), net.add('sb')]
        bridge = 'vbrsk%d' % (os.getpid() % 10000)
        outers = guest_links(net, nodes, bridge)
        for n in nodes:
            ip('-n', n.ns, 'tuntap', 'add', 'st0', 'mode', 'tap')
            ip('-n', n.ns, 'link', 'set', 'st0', 'master', bridge)
            ip('-n', n.ns, 'link', 'set', 'st0', 'up')
        if a.tls:
            subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout',
                            tmp + '/key.pem', '-out', tmp + '/cert.pem', '-days', '2', '-subj',
                            '/CN=vessel-soak', '-addext', 'subjectAltName=DNS:vessel-soak'],
                           check=True, capture_output=True)
        serve_disks(a, tmp, procs)
        guest_ip = '%s.207' % net.prefix
        cmdline = 'console=ttyS0 quiet vessel.noagent vessel.ip=%s/24' % guest_ip
        at = 0
        src_servers = own_servers(a, tmp, 1, False) if a.standby else []
        procs.extend(src_servers)
        p, qs, con = soak.qemu(nodes[at].wrap(), False, cmdline)
        procs.append(p)
        qs.cmd('cont')
        deadline = time.time() + 120
        while 'VESSEL-GUEST-UP' not in soak.console():
            if time.time() > deadline:
                raise RuntimeError('the guest did not boot')
            time.sleep(0.2)
        con.sendall(('run ' + FS_TICKER + '\n').encode())
        time.sleep(3)
        pinger = Pinger(guest_ip).start()
        time.sleep(2)
        for k in range(a.idle_s // 5):
            time.sleep(5)
            print('idle %d s: %d pings answered, %d ticks, crash: %s' %
                  (5 * k + 5, pinger.count(), soak.console().count('TICK'), crashed(soak)),
                  flush=True)
            if crashed(soak):
                return 1
        for i in range(0 if a.idle_s else a.migrations):
            dst = 1 - at
            dst_servers = own_servers(a, tmp, soak.n + 1, True) if a.standby else []
            if a.standby:
                soak.geometry = [',cyls=%d,heads=%d,secs=%d' % tuple(
                    qs.cmd('qom-get', path='/machine/peripheral/vbd%d' % k,
                           property=prop)['return'] for prop in ('cyls', 'heads', 'secs'))
                    for k in (0, 1)]
            procs.extend(dst_servers)
            pd, qd, _ = soak.qemu(nodes[dst].wrap(), True, cmdline)
            procs.append(pd)
            qd.cmd('migrate-set-capabilities',
                   capabilities=[{'capability': 'late-block-activate', 'state': True}])
            if a.announce_rounds is not None:
                r = qd.cmd('migrate-set-parameters', **{'announce-rounds': a.announce_rounds})
                if 'error' in r:
                    raise RuntimeError('announce-rounds: %r' % r['error'])
            if a.tls:
                tls_object(qd, tmp, 'server', 'vessel-soak')
            qd.cmd('migrate-incoming', uri='tcp:%s:0' % nodes[dst].addr)
            port = qd.cmd('query-migrate')['return']['socket-address'][0]['port']
            if a.tls:
                tls_object(qs, tmp, 'client', 'vessel-soak')
            qs.cmd('migrate', uri='tcp:%s:%s' % (nodes[dst].addr, port))
            while True:
                r = qs.cmd('query-migrate')['return']
                if r.get('status') == 'completed':
                    break
                if r.get('status') in ('failed', 'cancelled'):
                    raise RuntimeError('migration %s: %s' % (r['status'], r.get('error-desc')))
                time.sleep(0.05)
            while qd.cmd('query-status')['return']['status'] == 'inmigrate':
                time.sleep(0.01)
            if a.compare_ram:
                print('migration %d: RAM %s' % (i + 1, compare_ram(qs, qd, tmp)), flush=True)
            time.sleep(a.pause_ms / 1000.0)
            if a.kill_source:
                p.kill()
            else:
                qs.cmd('quit')
            p.wait(10)
            if a.standby:   # the source's servers flush and exit, then the hand-over
                for sp in src_servers:
                    sp.terminate()
                    sp.wait(10)
                activate(tmp, soak.n)
                src_servers = dst_servers
            qd.cmd('cont')
            if a.announce:   # as vesseld after `cont` (xenops/qemu_migrate.c)
                qd.cmd('announce-self', initial=50, max=550, rounds=5, step=100,
                       id='soak')
            p, qs, at = pd, qd, dst
            time.sleep(2.5)
            print('migration %d: %d pings answered, crash: %s' %
                  (i + 1, pinger.count(), crashed(soak)), flush=True)
            if crashed(soak):
                return 1
        return 0
    finally:
        if pinger:
            pinger.close()
        for pr in procs:
            pr.kill()
            pr.wait()
        for o in outers:
            ip('link', 'del', o, check=False)
        net.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
