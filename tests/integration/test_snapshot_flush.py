#!/usr/bin/env python3
"""tests/integration/test_snapshot_flush.py - a write the guest saw complete is in every
live snapshot taken after it.

First, as the first version of test_checkpoint.py did: the first command typed
once the guest is up writes a sector and flushes it, then prints a marker; the
snapshot taken when the marker is seen holds the sector. That failed there
under load (3 runs in 16): the guest's tty still echoed what was typed until
its /init ran `stty -echo`, so the marker came back in the echo of the typed
line before the command ran, and the snapshot was taken before the write. The
test guest now says it is up only after `stty -echo` (tests/guest/build-guest.sh).

Then a TCG test guest writes sequence-numbered sectors onto its data disk from
several writers at once, each write followed by an fsync of the device
(`dd conv=fsync`: the guest kernel writes the page back, then sends a FLUSH,
and dd returns only when both completed; with oflag=direct busybox's dd
still went through the page cache here: the disk server saw a 4 KiB read and
a 4 KiB write for each 512-byte dd), and prints `W w i` on its console after
each. The test meanwhile takes live snapshots of the disk
(VDI.snapshot: the disk server is paused, the chain split, the server handed
the new chain; VM.snapshot runs the same code per disk). Before each
snapshot call it reads the console log: every write printed by then has
completed in the guest, so the snapshot must hold it. Each snapshot is then
read through GET /export_raw_vdi; it is read again one round later, after more
writes, and must not have changed (the server wrote into the new leaf, not
into the snapshot's base), then destroyed, so the collector also merges
leaves under the running guest between rounds (another pause of the server).
After a hard shutdown the VDI itself holds every write the guest reported.

Usage: test_snapshot_flush.py BUILD/vesseld GUEST_DIR [ROUNDS [MODE]]
ROUNDS: snapshots to take (default 8); MODE: `fsync` (the test), `cached`
(investigation: plain buffered `dd conv=sync` then `sync`, the writes of the
first version of test_checkpoint.py) or `unsynced` (the test's own check:
writes left in the guest's page cache, which it must report missing).
"""
import http.client
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import console_log, console_type, guest_test_main, value, wait_for  # noqa: E402
from test_guests import MARKER, make_vm  # noqa: E402

MiB = 1024 * 1024
SECTOR = 512
WRITERS = 3
STRIDE = 4096           # sectors per writer: 2 MiB each, no sector is written twice
FIRST = 64              # the first sector written (writer w writes FIRST + w * STRIDE + i)
WRITE_RE = re.compile(r'(?m)^W (\d) (\d+)\r?$')


def writer_cmd(mode):
    """One console line: WRITERS background loops, each writing its own sectors in
    order and printing `W w i` once sector i is written (and, in fsync mode, flushed)."""
    hold = ''
    if mode == 'fsync':
        dd = 'dd of=/dev/vda bs=512 count=1 seek=$s conv=sync,fsync 2>/dev/null'
    elif mode == 'cached':
        dd = 'dd of=/dev/vda bs=512 count=1 seek=$s conv=sync 2>/dev/null && sync'
    else:
        # unsynced: /dev/vda held open, so dd's close is not the last one (which
        # would write the device's dirty pages back) and nothing syncs: the
        # writes stay in the guest's page cache. The test must then fail.
        hold = 'exec 3</dev/vda; '
        dd = 'dd of=/dev/vda bs=512 count=1 seek=$s conv=sync 2>/dev/null'
    loop = ('(%si=0; while [ $i -lt %d ]; do s=$((%d + $w * %d + $i)); '
            "printf 'VESSEL-SEQ %%d %%d\\n' $w $i | %s && echo \"W $w $i\" || echo \"E $w $i\"; "
            'i=$((i + 1)); done) &' % (hold, STRIDE, FIRST, STRIDE, dd))
    ws = ' '.join(str(w) for w in range(WRITERS))
    return 'run for w in %s; do %s done; echo VESSEL-WSTART' % (ws, loop)


def sector_of(w, i):
    return FIRST + w * STRIDE + i


def expected(w, i):
    return ('VESSEL-SEQ %d %d\n' % (w, i)).encode().ljust(SECTOR, b'\0')


def written(text):
    """{(writer, index)} the guest reported done in console text @text."""
    return {(int(m.group(1)), int(m.group(2))) for m in WRITE_RE.finditer(text)}


def disk_bytes(d, sess, vdi):
    """VDI @vdi's bytes through GET /export_raw_vdi, which opens the chain under the
    SR's name lock: the collector may be folding or relinking it meanwhile."""
    c = http.client.HTTPConnection('127.0.0.1', d.port, timeout=120)
    c.request('GET', '/export_raw_vdi?vdi=%s&session_id=%s&format=raw' % (vdi, sess))
    r = c.getresponse()
    data = r.read()
    c.close()
    if r.status != 200:
        raise RuntimeError('export_raw_vdi: HTTP %d' % r.status)
    return data


def present(data, w, i):
    off = sector_of(w, i) * SECTOR
    return data[off:off + SECTOR] == expected(w, i)


def run(t, d, guest, rounds, mode):
    s = d.proxy()
    sess = d.login()
    sr = value(s.pool.get_all_records(sess)).popitem()[1]['default_SR']
    vm = make_vm(s, sess, guest, 'snapshot-flush')
    uuid = value(s.VM.get_uuid(sess, vm))
    vdi = value(s.VDI.create(sess, {'name_label': 'data', 'name_description': '', 'SR': sr,
                                    'virtual_size': str(8 * MiB), 'type': 'user',
                                    'sharable': False, 'read_only': False, 'other_config': {}}))
    value(s.VBD.create(sess, {'VM': vm, 'VDI': vdi, 'userdevice': '0', 'bootable': False,
                              'mode': 'RW', 'type': 'Disk', 'unpluggable': True,
                              'empty': False, 'other_config': {}, 'qos_algorithm_type': '',
                              'qos_algorithm_params': {}}))
    # a second disk for the failed snapshot at the end (/dev/vdb)
    vdb = value(s.VDI.create(sess, {'name_label': 'answer-lost', 'name_description': '', 'SR': sr,
                                     'virtual_size': str(MiB), 'type': 'user',
                                     'sharable': False, 'read_only': False, 'other_config': {}}))
    value(s.VBD.create(sess, {'VM': vm, 'VDI': vdb, 'userdevice': '1', 'bootable': False,
                              'mode': 'RW', 'type': 'Disk', 'unpluggable': True,
                              'empty': False, 'other_config': {}, 'qos_algorithm_type': '',
                              'qos_algorithm_params': {}}))
    t0 = time.time()
    value(s.VM.start(sess, vm, False, False))
    if not t.ok(wait_for(lambda: MARKER in console_log(d, uuid), 90), 'the guest is up'):
        return
    con = [c for c in value(s.VM.get_consoles(sess, vm))
           if value(s.console.get_protocol(sess, c)) == 'vt100'][0]
    # test_checkpoint.py's first version: the first command typed once the guest
    # is up writes, then prints a marker; a snapshot taken on the marker holds
    # the write. That failed under load when the guest's tty still echoed: the
    # marker came back in the echo of the typed line, before the write ran.
    first = "run printf 'VESSEL-FIRST\\n' | dd of=/dev/vda bs=512 count=1 conv=sync,fsync " \
            "2>/dev/null; echo VESSEL-FIRST-DONE"
    out = console_type(d, sess, con, first, 'VESSEL-FIRST-DONE', timeout=60)
    t.ok('run printf' not in out, 'a command typed once the guest is up is not echoed back',
         out[-300:])
    snap = value(s.VDI.snapshot(sess, vdi, {}))
    head = disk_bytes(d, sess, snap)[:SECTOR]
    t.ok(head == b'VESSEL-FIRST\n'.ljust(SECTOR, b'\0'),
         'the write of the first command, reported by its marker, is in the snapshot taken next',
         'sector 0 of the snapshot begins %r' % head[:16])
    value(s.VDI.destroy(sess, snap))
    out = console_type(d, sess, con, writer_cmd(mode), 'VESSEL-WSTART', timeout=60)
    t.ok('VESSEL-WSTART' in out, 'the guest starts %d writers (%s)' % (WRITERS, mode), out[-300:])
    t1 = time.time()
    missing, changed, checked, ahead, seen = [], [], 0, 0, 0
    prev = None                                 # (round, snapshot, its bytes then)
    for r in range(rounds):
        # writes are flowing: at least one more since the previous snapshot
        if not wait_for(lambda: len(written(console_log(d, uuid))) > seen, 60):
            t.ok(False, 'the guest goes on writing (round %d)' % r,
                 console_log(d, uuid)[-500:])
            return
        done = written(console_log(d, uuid))    # all completed in the guest by now
        seen = len(done)
        snap = value(s.VDI.snapshot(sess, vdi, {}))
        data = disk_bytes(d, sess, snap)
        lost = sorted(k for k in done if not present(data, *k))
        missing += [(r, k) for k in lost]
        checked += len(done)
        # writes that reached the disk before the snapshot but were not yet
        # printed: the guest was writing at that moment
        ahead += sum(1 for w in range(WRITERS) for i in range(STRIDE)
                     if (w, i) not in done and present(data, w, i))
        if prev:
            if disk_bytes(d, sess, prev[1]) != prev[2]:
                changed.append(prev[0])
            value(s.VDI.destroy(sess, prev[1]))
        prev = (r, snap, data)
    t2 = time.time()
    lost_ok = answer_lost(t, d, s, sess, con, vdb)
    value(s.VM.hard_shutdown(sess, vm))
    head = disk_bytes(d, sess, vdb)[:2 * SECTOR]
    t.ok(head[:SECTOR] == b'VESSEL-A\n'.ljust(SECTOR, b'\0') and
         (not lost_ok or head[SECTOR:] == b'VESSEL-B\n'.ljust(SECTOR, b'\0')),
         'no write lost: the one before the failed snapshot is on the disk, and the one after '
         'failed in the guest or is on the disk too (%s)' % ('completed' if lost_ok else 'failed'),
         head[:16] + b'..' + head[SECTOR:SECTOR + 16])
    if prev:
        if disk_bytes(d, sess, prev[1]) != prev[2]:
            changed.append(prev[0])
        value(s.VDI.destroy(sess, prev[1]))
    log = console_log(d, uuid)
    t.eq(re.findall(r'(?m)^E \d \d+\r?$', log), [], 'every write of the guest succeeded')
    t.ok(not missing,
         '%d live snapshots hold every write the guest completed before each (%d '
         'write-snapshot pairs checked, %d writes were on the disk not yet reported)'
         % (rounds, checked, ahead),
         'missing (round, (writer, index)): %r' % missing[:20])
    t.eq(changed, [], 'a live snapshot does not change while the guest writes on')
    done = written(log)
    data = disk_bytes(d, sess, vdi)
    t.eq(sorted(k for k in done if not present(data, *k)), [],
         'after the guest stopped its disk holds all its %d reported writes' % len(done))
    print('# snapshot-flush mode=%s rounds=%d checked=%d ahead=%d missing=%d changed=%d '
          'writes=%d boot_s=%.1f rounds_s=%.1f' % (mode, rounds, checked, ahead, len(missing),
                                                 len(changed), len(done), t1 - t0, t2 - t1))


def answer_lost(t, d, s, sess, con, vdi):
    """A live snapshot whose disk server took the new chain but whose answer
    never came (test point VESSEL_TEST_RELOAD_ANSWER_LOST): vesseld must not
    undo the split under a server that writes into the new leaf. Returns
    whether the guest's write after it completed."""
    out = console_type(d, sess, con, "run printf 'VESSEL-A\\n' | dd of=/dev/vdb bs=512 count=1 "
                       "conv=sync,fsync 2>/dev/null && echo VESSEL-A-DONE", 'VESSEL-A-DONE',
                       timeout=60)
    t.ok('VESSEL-A-DONE' in out, 'the guest writes its second disk', out[-200:])
    uuid = value(s.VDI.get_uuid(sess, vdi))
    with open(d.reload_trigger, 'w') as f:
        f.write(uuid)
    before = set(value(s.VDI.get_all(sess)))
    r = s.VDI.snapshot(sess, vdi, {})
    os.unlink(d.reload_trigger)
    t.ok(r.get('Status') == 'Failure' and set(value(s.VDI.get_all(sess))) == before,
         'a live snapshot whose disk server did not answer fails and makes no VDI', r)
    out = console_type(d, sess, con, "run printf 'VESSEL-B\\n' | dd of=/dev/vdb bs=512 count=1 "
                       "seek=1 conv=sync,fsync 2>/dev/null && echo VESSEL-B-DONE || "
                       "echo VESSEL-B-FAILED; echo VESSEL-B-END", 'VESSEL-B-END', timeout=90)
    return 'VESSEL-B-DONE' in out


def main():
    binary, guest = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    mode = sys.argv[4] if len(sys.argv) > 4 else 'fsync'
    trigger = os.path.join(os.environ.get('TMPDIR', '/tmp'), 'vessel-reload-lost-%d' % os.getpid())

    def body(t, d):
        d.reload_trigger = trigger
        run(t, d, guest, rounds, mode)
    return guest_test_main(binary, guest, body, extra=['--cgroup-root', 'none'],
                           env={'VESSEL_TEST_RELOAD_ANSWER_LOST': trigger})


if __name__ == '__main__':
    sys.exit(main())
