#!/usr/bin/env python3
"""tests/integration/test_destroy_disk.py - a hard shutdown of a guest in the middle of
its disk writes loses none it was told were done, and leaves a sound VHD.

VM.hard_shutdown stops a guest's disk servers at the moment qemu gets SIGKILL, while
the kernel tears qemu down, rather than after its exit (api/domains.c): a server may
then be in the middle of a write qemu sent, or receive one after its SIGTERM. The
test guest writes sequence-numbered sectors onto its data disk from two writers at
once, each write followed by an fsync of the device (`dd conv=fsync`: dd returns
only once the write and the FLUSH after it completed), and prints `W r w i` after
each. Several rounds of: boot, writes flowing, VM.hard_shutdown, then
  - the disk server's files are gone when the call returns, and its process once an
    export of the VDI answered (the call does not wait for the server's flush and
    exit; the VDI's next operation does: api/disk_order.h);
  - `vhd check` passes on the VDI's file (the server's metadata, BAT and footer,
    ended consistent);
  - every write the guest reported in that round is on the disk (GET
    /export_raw_vdi);
  - the VM starts again, and its guest reads back the last write each writer
    reported before the shutdown.
Then, its disk server stopped with SIGSTOP, VM.hard_shutdown answers without it,
a VDI.resize waits until the server (SIGCONT) flushed and exited, and the
resized file checks sound.
Usage: test_destroy_disk.py BUILD/vesseld BUILD/vhd GUEST_DIR [ROUNDS [MODE]]
MODE: `fsync` (the test) or `unsynced` (the test's own check: the writes stay in the
guest's page cache, /dev/vda held open so that no close writes them back; the
test must then report writes lost).
"""
import glob
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import console_log, console_type, guest_test_main, value, wait_for  # noqa: E402
from test_guests import MARKER, make_vm  # noqa: E402

MiB = 1024 * 1024
SECTOR = 512
WRITERS = 2
STRIDE = 4096           # sectors per writer: no sector is written twice in a round
FIRST = 64
WRITE_RE = re.compile(r'(?m)^W (\d+) (\d) (\d+)\r?$')


def writer_cmd(r, mode):
    """One console line: WRITERS background loops, each writing its own sectors in
    order, flushed, and printing `W r w i` once sector i is on the disk."""
    hold, dd = '', 'dd of=/dev/vda bs=512 count=1 seek=$s conv=sync,fsync 2>/dev/null'
    if mode == 'unsynced':
        hold, dd = 'exec 3</dev/vda; ', dd.replace(',fsync', '')
    loop = ('(%si=0; while [ $i -lt %d ]; do s=$((%d + $w * %d + $i)); '
            "printf 'VESSEL-DESTROY %d %%d %%d\\n' $w $i | %s && echo \"W %d $w $i\"; "
            'i=$((i + 1)); done) &' % (hold, STRIDE, FIRST, STRIDE, r, dd, r))
    ws = ' '.join(str(w) for w in range(WRITERS))
    return 'run for w in %s; do %s done; echo VESSEL-WSTART-%d' % (ws, loop, r)


def sector_of(w, i):
    return FIRST + w * STRIDE + i


def expected(r, w, i):
    return ('VESSEL-DESTROY %d %d %d\n' % (r, w, i)).encode().ljust(SECTOR, b'\0')


def written(text, r):
    """{(writer, index)} the guest reported done in round @r."""
    return {(int(m.group(2)), int(m.group(3))) for m in WRITE_RE.finditer(text)
            if int(m.group(1)) == r}


def disk_bytes(d, sess, vdi):
    c = http.client.HTTPConnection('127.0.0.1', d.port, timeout=120)
    c.request('GET', '/export_raw_vdi?vdi=%s&session_id=%s&format=raw' % (vdi, sess))
    resp = c.getresponse()
    data = resp.read()
    c.close()
    if resp.status != 200:
        raise RuntimeError('export_raw_vdi: HTTP %d' % resp.status)
    return data


def server_pids(disks, uuid):
    """The pids of VM @uuid's disk servers, from their pid files in @disks."""
    pids = []
    for p in glob.glob(os.path.join(disks, uuid + '.*.pid')):
        with open(p) as f:
            pids.append(int(f.read()))
    return pids


def vhd_size(vhd_tool, path):
    out = subprocess.run([vhd_tool, 'info', '--json', path], capture_output=True, text=True)
    return json.loads(out.stdout)['image']['virtual_size'] if out.returncode == 0 else None


def alive(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rpartition(')')[2].split()[0] not in ('Z', 'X')
    except OSError:
        return False


def read_back(d, s, sess, vm, last):
    """The sectors @last {w: i} as the guest reads them from its disk."""
    con = [c for c in value(s.VM.get_consoles(sess, vm))
           if value(s.console.get_protocol(sess, c)) == 'vt100'][0]
    reads = '; '.join("echo \"R %d $(dd if=/dev/vda bs=512 skip=%d count=1 2>/dev/null | "
                      "head -1)\"" % (w, sector_of(w, i)) for w, i in sorted(last.items()))
    out = console_type(d, sess, con, 'run %s; echo VESSEL-READ-DONE' % reads, 'VESSEL-READ-DONE',
                       timeout=60)
    return {int(m.group(1)): m.group(2) for m in re.finditer(r'(?m)^R (\d) (.*?)\r?$', out)}


def run(t, d, vhd_tool, guest, rounds, mode):
    s = d.proxy()
    sess = d.login()
    srs = value(s.SR.get_all_records(sess))
    sr = [r for r, v in srs.items() if v['other_config'].get('vessel-local') == 'true'][0]
    path = value(s.PBD.get_device_config(sess, srs[sr]['PBDs'][0]))['path']
    vm = make_vm(s, sess, guest, 'destroy-disk')
    uuid = value(s.VM.get_uuid(sess, vm))
    vdi = value(s.VDI.create(sess, {'name_label': 'data', 'name_description': '', 'SR': sr,
                                    'virtual_size': str(8 * MiB), 'type': 'user',
                                    'sharable': False, 'read_only': False, 'other_config': {}}))
    vhd_file = os.path.join(path, value(s.VDI.get_uuid(sess, vdi)) + '.vhd')
    value(s.VBD.create(sess, {'VM': vm, 'VDI': vdi, 'userdevice': '0', 'bootable': False,
                              'mode': 'RW', 'type': 'Disk', 'unpluggable': True,
                              'empty': False, 'other_config': {}, 'qos_algorithm_type': '',
                              'qos_algorithm_params': {}}))
    disks = os.path.join(d.dir, 'data', 'run', 'disks')
    last = {}
    for r in range(rounds):
        value(s.VM.start(sess, vm, False, False))
        if not t.ok(wait_for(lambda: console_log(d, uuid).count(MARKER) > r, 90),
                    'round %d: the guest is up' % r, console_log(d, uuid)[-500:]):
            return
        if last:
            got = read_back(d, s, sess, vm, last)
            want = {w: 'VESSEL-DESTROY %d %d %d' % (r - 1, w, i) for w, i in last.items()}
            t.eq(got, want, 'round %d: restarted, the guest reads the last write each writer '
                 'reported before the hard shutdown' % r)
        con = [c for c in value(s.VM.get_consoles(sess, vm))
               if value(s.console.get_protocol(sess, c)) == 'vt100'][0]
        out = console_type(d, sess, con, writer_cmd(r, mode), 'VESSEL-WSTART-%d' % r, timeout=60)
        if not t.ok('VESSEL-WSTART-%d' % r in out, 'round %d: the guest starts %d writers'
                    % (r, WRITERS), out[-300:]):
            return
        # writes are flowing (each a write and a flush): a few from every writer
        flowing = wait_for(lambda: all(sum(1 for k in written(console_log(d, uuid), r)
                                           if k[0] == w) >= 5 for w in range(WRITERS)), 60)
        if not t.ok(flowing, 'round %d: the writers go on writing' % r,
                    console_log(d, uuid)[-500:]):
            return
        servers = server_pids(disks, uuid)
        value(s.VM.hard_shutdown(sess, vm))
        t.ok(servers and not glob.glob(os.path.join(disks, uuid + '.*')),
             'round %d: when VM.hard_shutdown returns its disk server\'s files are gone' % r,
             'servers %r, files %r' % (servers, glob.glob(os.path.join(disks, uuid + '.*'))))
        done = written(console_log(d, uuid), r)  # every write the guest was told was done
        data = disk_bytes(d, sess, vdi)  # waits for the server's flush and exit
        t.ok(not any(alive(p) for p in servers),
             'round %d: once an export of the VDI answered, its disk server has exited' % r,
             'servers %r' % servers)
        check = subprocess.run([vhd_tool, 'check', vhd_file], capture_output=True, text=True)
        t.ok(check.returncode == 0, 'round %d: vhd check passes on the VDI' % r,
             check.stdout + check.stderr)
        lost = sorted(k for k in done
                      if data[sector_of(*k) * SECTOR:(sector_of(*k) + 1) * SECTOR] !=
                      expected(r, *k))
        t.ok(done and not lost, 'round %d: the disk holds all %d writes the guest reported'
             % (r, len(done)), 'lost (writer, index): %r' % lost[:20])
        last = {w: max(i for ww, i in done if ww == w) for w in range(WRITERS)}
    value(s.VM.start(sess, vm, False, False))
    if t.ok(wait_for(lambda: console_log(d, uuid).count(MARKER) > rounds, 90),
            'the VM starts after the last round'):
        got = read_back(d, s, sess, vm, last)
        t.eq(got, {w: 'VESSEL-DESTROY %d %d %d' % (rounds - 1, w, i) for w, i in last.items()},
             'the guest reads the last reported write of each writer of the last round')
    held_server(t, d, s, sess, vm, vdi, disks, uuid, vhd_tool, vhd_file)


def held_server(t, d, s, sess, vm, vdi, disks, uuid, vhd_tool, vhd_file):
    """A disk server that cannot exit yet (stopped by SIGSTOP): VM.hard_shutdown
    answers without waiting for it, and the VDI's next operation (VDI.resize)
    waits until it flushed and exited."""
    servers = server_pids(disks, uuid)
    if not t.ok(len(servers) == 1, 'the running VM has one disk server', servers):
        return
    pid = servers[0]
    os.kill(pid, signal.SIGSTOP)
    try:
        value(s.VM.hard_shutdown(sess, vm))
        t.ok(alive(pid), 'VM.hard_shutdown answers while its disk server has not exited')
        size = str(16 * MiB)
        done = {}

        def resize():
            try:
                done['r'] = d.proxy().VDI.resize(sess, vdi, size)
            except Exception as exc:  # reported by the check below
                done['r'] = exc
        th = threading.Thread(target=resize)
        th.start()
        th.join(1.5)  # the resize would answer in milliseconds if it did not wait
        t.ok(th.is_alive() and alive(pid),
             'VDI.resize waits while the stopped VM\'s disk server has not exited',
             'resize answered %r' % done.get('r'))
    finally:
        os.kill(pid, signal.SIGCONT)
    th.join(60)
    t.ok(not th.is_alive() and isinstance(done.get('r'), dict) and
         done['r'].get('Status') == 'Success',
         'VDI.resize succeeds once the server exited', repr(done.get('r')))
    t.ok(not alive(pid), 'the disk server exited before VDI.resize answered')
    t.eq(value(s.VDI.get_virtual_size(sess, vdi)), size, 'the VDI has its new size')
    check = subprocess.run([vhd_tool, 'check', vhd_file], capture_output=True, text=True)
    t.ok(check.returncode == 0 and vhd_size(vhd_tool, vhd_file) == int(size),
         'vhd check passes on the resized VDI, and its file has the new size',
         check.stdout + check.stderr)


def main():
    binary, vhd_tool, guest = sys.argv[1], sys.argv[2], sys.argv[3]
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    mode = sys.argv[5] if len(sys.argv) > 5 else 'fsync'
    return guest_test_main(binary, guest, lambda t, d: run(t, d, vhd_tool, guest, rounds, mode),
                           extra=['--cgroup-root', 'none'])


if __name__ == '__main__':
    sys.exit(main())
