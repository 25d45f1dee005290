#!/usr/bin/env python3
"""tests/integration/test_cbt.py - VDI.enable_cbt, disable_cbt, list_changed_blocks.

A VDI with changed block tracking gets known writes between snapshots, made
the way a guest makes them: over NBD to `vhd serve` on the VDI's leaf (the
disk server VMs use), with qemu-io. list_changed_blocks between two snapshots
must name exactly the 64 KiB blocks written (bit i, most significant bit
first, as xapi's base64 bitmap), in either order, across three snapshots, and
still after the garbage collector folded the chain once a middle snapshot was
destroyed. Snapshots inherit the flag, clones and copies do not; the xapi
errors: a snapshot cannot change its flag, a VDI without tracking has no
metadata.

The logs outlive the data: after VDI.data_destroy of older snapshots (which
become type cbt_metadata) and after the collector folded the chain they
leave, list_changed_blocks between them still names exactly the blocks
written; data_destroy's refusals are xapi's; a leaf replaced outside vesseld
resets the disk's log (VDI_CBT_METADATA_INCONSISTENT) instead of answering
from a log that may have missed writes.
Usage: test_cbt.py BUILD/vesseld BUILD/vhd
"""
import base64
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Tap, Vesseld, error, value, wait_for  # noqa: E402

MiB = 1024 * 1024
K64 = 64 * 1024


def blocks(b64):
    data = base64.b64decode(b64)
    return {i for i in range(len(data) * 8) if data[i // 8] & (0x80 >> (i % 8))}


def guest_write(vhd, leaf, sock, writes):
    """Writes (offset, length) ranges into @leaf through `vhd serve` over NBD."""
    srv = subprocess.Popen([vhd, 'serve', '--socket', sock, leaf],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        while not os.path.exists(sock) and time.time() < deadline:
            time.sleep(0.02)
        cmds = []
        for off, n in writes:
            cmds += ['-c', 'write -P 0xab %d %d' % (off, n)]
        subprocess.run(['qemu-io', '-f', 'raw', 'nbd+unix:///?socket=' + sock] + cmds,
                       check=True, capture_output=True)
    finally:
        srv.terminate()
        srv.wait(10)
        if os.path.exists(sock):
            os.unlink(sock)


def expect(writes):
    out = set()
    for off, n in writes:
        out.update(range(off // K64, (off + n - 1) // K64 + 1))
    return out


def chain_depth(vhd, leaf):
    import json
    out = subprocess.run([vhd, 'info', '--json', leaf], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)['chain_depth']


def data_destroy_checks(t, s, sess, sr, path, vhd, sock, new_vdi, tmpl):
    vdi = new_vdi('cbt-dd')
    uuid = value(s.VDI.get_uuid(sess, vdi))
    leaf = os.path.join(path, uuid + '.vhd')
    value(s.VDI.enable_cbt(sess, vdi))
    guest_write(vhd, leaf, sock, [(0, 4 * MiB)])
    a = value(s.VDI.snapshot(sess, vdi, {}))
    wa = [(2 * K64, K64), (7 * MiB + 1, 3)]
    guest_write(vhd, leaf, sock, wa)
    b = value(s.VDI.snapshot(sess, vdi, {}))
    wb = [(12 * MiB, 2 * K64 + 5)]
    guest_write(vhd, leaf, sock, wb)
    c = value(s.VDI.snapshot(sess, vdi, {}))
    wc = [(15 * MiB, 512)]
    guest_write(vhd, leaf, sock, wc)

    e = error(s.VDI.data_destroy(sess, vdi))
    t.eq(e, ['OPERATION_NOT_ALLOWED', 'VDI is not a snapshot: ' + vdi],
         'data_destroy of a VDI that is not a snapshot: OPERATION_NOT_ALLOWED')
    plain = new_vdi('plain-dd')
    plain_snap = value(s.VDI.snapshot(sess, plain, {}))
    t.eq(error(s.VDI.data_destroy(sess, plain_snap)), ['VDI_NO_CBT_METADATA', plain_snap],
         'data_destroy of an untracked snapshot: VDI_NO_CBT_METADATA')
    vm = value(s.VM.clone(sess, tmpl, 'cbt-dd-vm'))
    for vbd in value(s.VM.get_VBDs(sess, vm)):
        value(s.VBD.destroy(sess, vbd))
    vbd = value(s.VBD.create(sess, {'VM': vm, 'VDI': b, 'userdevice': '1', 'bootable': False,
                                    'mode': 'RO', 'type': 'Disk', 'unpluggable': True,
                                    'empty': False, 'other_config': {},
                                    'qos_algorithm_type': '', 'qos_algorithm_params': {}}))
    t.eq((error(s.VDI.data_destroy(sess, b)), value(s.VDI.get_type(sess, b))),
         (['VDI_IN_USE', b, 'data_destroy'], 'user'),
         'data_destroy while a VBD still names it: VDI_IN_USE after xapi\'s wait, type kept')
    value(s.VBD.destroy(sess, vbd))
    value(s.VM.destroy(sess, vm))

    value(s.VDI.data_destroy(sess, a))
    a_uuid = value(s.VDI.get_uuid(sess, a))
    t.eq((value(s.VDI.get_type(sess, a)), os.path.exists(os.path.join(path, a_uuid + '.vhd'))),
         ('cbt_metadata', False), 'data_destroy: the data goes, the VDI is type cbt_metadata')
    t.eq(error(s.VDI.data_destroy(sess, a)), None, 'data_destroy again: nothing to do')
    refused = ['VDI_INCOMPATIBLE_TYPE', a, 'CBT metadata']  # Record_util's words
    t.eq([error(s.VDI.snapshot(sess, a, {})), error(s.VDI.clone(sess, a, {})),
          error(s.VDI.copy(sess, a, sr, 'OpaqueRef:NULL', 'OpaqueRef:NULL')),
          error(s.VDI.resize(sess, a, str(32 * MiB))), error(s.VDI.enable_cbt(sess, a))],
         [refused] * 5, 'a cbt_metadata VDI has no data to snapshot, clone, copy or resize')
    t.eq(error(s.VDI.set_on_boot(sess, vdi, 'reset')), ['VDI_CBT_ENABLED', vdi],
         'a tracked VDI cannot be reset on boot: VDI_CBT_ENABLED')
    t.eq(blocks(value(s.VDI.list_changed_blocks(sess, a, b))), expect(wa),
         'list_changed_blocks from a data-destroyed snapshot: exactly the blocks written')
    value(s.VDI.data_destroy(sess, b))
    t.eq(blocks(value(s.VDI.list_changed_blocks(sess, a, c))), expect(wa) | expect(wb),
         'between two data-destroyed snapshots and a later one: both rounds')
    t.eq(blocks(value(s.VDI.list_changed_blocks(sess, b, vdi))), expect(wb) | expect(wc),
         'from a data-destroyed snapshot to the disk itself')
    value(s.SR.scan(sess, sr))
    t.eq(value(s.VDI.get_type(sess, a)), 'cbt_metadata', 'SR.scan keeps a VDI that is its log')
    # a, b and s-base layers gone: the collector folds the chain to base + leaf
    # (plus c's layer); a tracked leaf itself is never merged
    folded = wait_for(lambda: chain_depth(vhd, leaf) <= 3, timeout=60)
    t.ok(folded, 'the collector folded the chain the destroyed data left (depth %d)'
         % chain_depth(vhd, leaf))
    t.eq((blocks(value(s.VDI.list_changed_blocks(sess, a, c))),
          blocks(value(s.VDI.list_changed_blocks(sess, c, vdi)))),
         (expect(wa) | expect(wb), expect(wc)), 'after the collector: still exact')
    value(s.VDI.destroy(sess, b))
    t.eq(blocks(value(s.VDI.list_changed_blocks(sess, a, c))), expect(wa) | expect(wb),
         'destroying a middle log hands its blocks to the next one')

    # a leaf replaced behind vesseld's back may have missed writes: reset
    os.unlink(leaf)
    subprocess.run([vhd, 'create', '--size', str(16 * MiB), leaf], check=True,
                   capture_output=True)
    e = error(s.VDI.list_changed_blocks(sess, a, vdi))
    msgs = [m for m in value(s.message.get_all_records(sess)).values()
            if m['name'] == 'VDI_CBT_METADATA_INCONSISTENT' and m['obj_uuid'] == uuid]
    t.eq((e, len(msgs)), (['VDI_NO_CBT_METADATA', a], 1),
         'a leaf replaced outside vesseld: the log is reset and says so')
    for v in (a, c, plain_snap, plain, vdi):
        value(s.VDI.destroy(sess, v))


def crash_checks(t, d, vhd, sock):
    """A crash between a snapshot's files (its log made, the disk's restarted)
    and its record: at start the snapshot goes and its blocks return to the
    disk's log; a restart by itself resets nothing."""
    import xmlrpc.client
    s = d.proxy()
    sess = d.login()
    sr = value(s.pool.get_all_records(sess)).popitem()[1]['default_SR']
    path = value(s.PBD.get_device_config(sess, value(s.SR.get_PBDs(sess, sr))[0]))['path']
    vdi = value(s.VDI.create(sess, {'name_label': 'cbt-crash', 'name_description': '', 'SR': sr,
                                    'virtual_size': str(16 * MiB), 'type': 'user',
                                    'sharable': False, 'read_only': False, 'other_config': {}}))
    uuid = value(s.VDI.get_uuid(sess, vdi))
    leaf = os.path.join(path, uuid + '.vhd')
    value(s.VDI.enable_cbt(sess, vdi))
    s1 = value(s.VDI.snapshot(sess, vdi, {}))
    w = [(4 * MiB, 3 * K64), (9 * MiB + 7, 1)]
    guest_write(vhd, leaf, sock, w)
    d.stop()
    os.environ['VESSEL_TEST_CRASH_AT'] = 'vdi.clone.before_commit'
    try:
        d.start()
    finally:
        del os.environ['VESSEL_TEST_CRASH_AT']
    s = d.proxy()
    sess = d.login()
    try:
        s.VDI.snapshot(sess, vdi, {})
        answered = True
    except (OSError, xmlrpc.client.ProtocolError, ConnectionError):
        answered = False
    rc = d.proc.wait(10)
    d.proc = None
    t.ok(not answered and rc == -9, 'vesseld killed between a snapshot\'s files and its record')
    d.start()
    s = d.proxy()
    sess = d.login()
    snaps = value(s.VDI.get_snapshots(sess, vdi))
    logs = sorted(f for f in os.listdir(path) if f.endswith('.cbtlog'))
    t.eq((snaps, blocks(value(s.VDI.list_changed_blocks(sess, s1, vdi)))), ([s1], expect(w)),
         'after the crash: the half-made snapshot is gone, its blocks back with the disk')
    t.ok(all(f[:36] in (uuid, value(s.VDI.get_uuid(sess, s1))) or not f.startswith(uuid)
             for f in logs) and len([f for f in logs if f.startswith(uuid)]) == 1,
         'and its log with it', logs)
    w2 = [(0, 512)]
    guest_write(vhd, leaf, sock, w2)
    d.stop()
    d.start()
    s = d.proxy()
    sess = d.login()
    s2 = value(s.VDI.snapshot(sess, vdi, {}))
    msgs = [m for m in value(s.message.get_all_records(sess)).values()
            if m['name'] == 'VDI_CBT_METADATA_INCONSISTENT' and m['obj_uuid'] == uuid]
    t.eq((blocks(value(s.VDI.list_changed_blocks(sess, s1, s2))), len(msgs)),
         (expect(w) | expect(w2), 0), 'a restart resets nothing: no write could be missed')
    for v in (s1, s2, vdi):
        value(s.VDI.destroy(sess, v))


def main():
    vesseld, vhd = sys.argv[1], sys.argv[2]
    t = Tap()
    if not shutil.which('qemu-io'):
        print('1..0 # SKIP qemu-io (qemu-utils) is not installed')
        return 0
    d = Vesseld(vesseld, extra=['--backend', 'sim'])
    try:
        d.start()
        s = d.proxy()
        sess = d.login()
        sr = value(s.pool.get_all_records(sess)).popitem()[1]['default_SR']
        path = value(s.PBD.get_device_config(sess, value(s.SR.get_PBDs(sess, sr))[0]))['path']
        sock = os.path.join(d.dir, 'nbd.sock')

        def new_vdi(name):
            return value(s.VDI.create(sess, {'name_label': name, 'name_description': '',
                                             'SR': sr, 'virtual_size': str(16 * MiB),
                                             'type': 'user', 'sharable': False,
                                             'read_only': False, 'other_config': {}}))

        vdi = new_vdi('cbt')
        leaf = os.path.join(path, value(s.VDI.get_uuid(sess, vdi)) + '.vhd')
        value(s.VDI.enable_cbt(sess, vdi))
        t.eq(value(s.VDI.get_cbt_enabled(sess, vdi)), True, 'enable_cbt sets cbt_enabled')
        t.eq((error(s.VDI.enable_cbt(sess, vdi)), value(s.VDI.get_cbt_enabled(sess, vdi))),
             (None, True), 'enable_cbt is idempotent')
        guest_write(vhd, leaf, sock, [(0, 16 * MiB)])  # the disk's first life
        s1 = value(s.VDI.snapshot(sess, vdi, {}))
        t.eq(value(s.VDI.get_cbt_enabled(sess, s1)), True, 'a snapshot inherits cbt_enabled')
        clone = value(s.VDI.clone(sess, vdi, {}))
        t.eq(value(s.VDI.get_cbt_enabled(sess, clone)), False, 'a clone starts untracked')

        w1 = [(K64, K64), (3 * MiB + 100, 100), (10 * MiB, 128 * 1024), (16 * MiB - 512, 512)]
        guest_write(vhd, leaf, sock, w1)
        s2 = value(s.VDI.snapshot(sess, vdi, {}))
        got = blocks(value(s.VDI.list_changed_blocks(sess, s1, s2)))
        t.eq(sorted(got), sorted(expect(w1)), 'list_changed_blocks(s1, s2): exactly the written '
             '64 KiB blocks')
        raw = base64.b64decode(value(s.VDI.list_changed_blocks(sess, s1, s2)))
        t.eq(len(raw), 16 * MiB // K64 // 8, 'the bitmap covers vdi_to at one bit per 64 KiB')
        t.eq(blocks(value(s.VDI.list_changed_blocks(sess, s2, s1))), got, 'in either order')
        t.eq(blocks(value(s.VDI.list_changed_blocks(sess, s1, s1))), set(), 'a VDI against itself')
        t.eq(blocks(value(s.VDI.list_changed_blocks(sess, s1, vdi))), got,
             'against the (unattached) VDI itself')

        w2 = [(5 * MiB, 3 * K64), (K64 + 10, 20)]
        guest_write(vhd, leaf, sock, w2)
        s3 = value(s.VDI.snapshot(sess, vdi, {}))
        t.eq(blocks(value(s.VDI.list_changed_blocks(sess, s2, s3))), expect(w2),
             'list_changed_blocks(s2, s3): the second round alone')
        t.eq(blocks(value(s.VDI.list_changed_blocks(sess, s1, s3))), expect(w1) | expect(w2),
             'list_changed_blocks(s1, s3): both rounds')
        value(s.VDI.destroy(sess, s2))
        time.sleep(2)  # the collector may fold s2's base away meanwhile; either way:
        t.eq(blocks(value(s.VDI.list_changed_blocks(sess, s1, s3))), expect(w1) | expect(w2),
             'after s2 is destroyed (and its base folded): still both rounds')

        vms = value(s.VM.get_all_records(sess))
        tmpl = [r for r, v in vms.items() if v['name_label'] == 'Direct kernel boot'][0]
        vm = value(s.VM.clone(sess, tmpl, 'cbt-vm'))
        value(s.VM.set_is_a_template(sess, vm, False))
        for vbd in value(s.VM.get_VBDs(sess, vm)):
            value(s.VBD.destroy(sess, vbd))
        value(s.VBD.create(sess, {'VM': vm, 'VDI': vdi, 'userdevice': '0', 'bootable': True,
                                  'mode': 'RW', 'type': 'Disk', 'unpluggable': False,
                                  'empty': False, 'other_config': {},
                                  'qos_algorithm_type': '', 'qos_algorithm_params': {}}))
        value(s.VM.start(sess, vm, False, False))
        e = error(s.VDI.list_changed_blocks(sess, s1, vdi))
        t.eq(e, ['VDI_IN_USE', vdi, 'list_changed_blocks'],
             'vdi_to attached to a running VM: VDI_IN_USE')
        value(s.VM.hard_shutdown(sess, vm))
        value(s.VM.destroy(sess, vm))

        data_destroy_checks(t, s, sess, sr, path, vhd, sock, new_vdi, tmpl)

        crash_checks(t, d, vhd, sock)
        s = d.proxy()
        sess = d.login()

        plain = new_vdi('plain')
        e = error(s.VDI.list_changed_blocks(sess, plain, s3))
        t.eq(e, ['VDI_NO_CBT_METADATA', plain], 'a VDI without tracking: VDI_NO_CBT_METADATA')
        e = error(s.VDI.enable_cbt(sess, s1))
        t.eq(e, ['OPERATION_NOT_ALLOWED', 'VDI is a snapshot: ' + s1],
             'a snapshot cannot change its tracking')
        value(s.VDI.disable_cbt(sess, vdi))
        t.eq(value(s.VDI.get_cbt_enabled(sess, vdi)), False, 'disable_cbt clears cbt_enabled')
        e = error(s.VDI.list_changed_blocks(sess, s1, vdi))
        t.eq(e, ['VDI_NO_CBT_METADATA', vdi], 'and list_changed_blocks on it is refused')
        t.eq(blocks(value(s.VDI.list_changed_blocks(sess, s1, s3))), expect(w1) | expect(w2),
             'its snapshots keep theirs')
        for v in (s1, s3, clone, plain, vdi):
            value(s.VDI.destroy(sess, v))
    finally:
        d.cleanup()
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
