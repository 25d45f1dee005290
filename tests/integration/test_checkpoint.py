#!/usr/bin/env python3
"""tests/integration/test_checkpoint.py - VM.checkpoint and VM.revert of a running guest.

The test guest (tests/guest/build-guest.sh) runs with a disk with changed
block tracking: between two live snapshots it writes known blocks, which
list_changed_blocks names exactly. It writes a
word into a file of its memory (the initramfs root) and onto its disk, and
counts on its console once a second. VM.checkpoint saves the running guest's
memory with its disks: the snapshot is Suspended, the VM runs on. The guest
then changes the word in both places and counts on. VM.revert to the
checkpoint leaves the VM Suspended (xapi: the snapshot's power state) with
the checkpoint's disk; VM.resume brings the checkpoint's memory back: the
counter goes on from its value at the checkpoint, not from where it was, and
the file holds the first word again.
Usage: test_checkpoint.py BUILD/vesseld BUILD/vhd GUEST_DIR
"""
import base64
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import console_log, console_type, guest_test_main, value, wait_for  # noqa: E402
from test_guests import MARKER, make_vm  # noqa: E402

MiB = 1024 * 1024
K64 = 64 * 1024


def blocks(b64):
    data = base64.b64decode(b64)
    return {i for i in range(len(data) * 8) if data[i // 8] & (0x80 >> (i % 8))}


def counts(text):
    return [int(n) for n in re.findall(r'VESSEL-COUNT-(\d+)', text)]


def disk_bytes(vhd, path, uuid, tmp):
    raw = os.path.join(tmp, uuid + '.raw')
    subprocess.run([vhd, 'convert', '--to', 'raw', os.path.join(path, uuid + '.vhd'), raw],
                   check=True, capture_output=True)
    with open(raw, 'rb') as f:
        data = f.read()
    os.unlink(raw)
    return data


def disk_head(vhd, path, uuid, tmp):
    return disk_bytes(vhd, path, uuid, tmp)[:64].split(b'\n')[0]


def checkpoint(t, d, vhd, guest, tmp):
    s = d.proxy()
    sess = d.login()
    sr = value(s.pool.get_all_records(sess)).popitem()[1]['default_SR']
    path = value(s.PBD.get_device_config(sess, value(s.SR.get_PBDs(sess, sr))[0]))['path']
    vm = make_vm(s, sess, guest, 'checkpoint-guest')
    uuid = value(s.VM.get_uuid(sess, vm))
    vdi = value(s.VDI.create(sess, {'name_label': 'data', 'name_description': '', 'SR': sr,
                                    'virtual_size': str(16 * MiB), 'type': 'user',
                                    'sharable': False, 'read_only': False, 'other_config': {}}))
    value(s.VBD.create(sess, {'VM': vm, 'VDI': vdi, 'userdevice': '0', 'bootable': False,
                              'mode': 'RW', 'type': 'Disk', 'unpluggable': True,
                              'empty': False, 'other_config': {}, 'qos_algorithm_type': '',
                              'qos_algorithm_params': {}}))
    value(s.VDI.enable_cbt(sess, vdi))
    value(s.VM.start(sess, vm, False, False))
    t.ok(wait_for(lambda: MARKER in console_log(d, uuid), 90), 'the guest is up')
    def console():  # a resumed guest has a console of its own
        return [c for c in value(s.VM.get_consoles(sess, vm))
                if value(s.console.get_protocol(sess, c)) == 'vt100'][0]

    def guest_cmd(cmd, tag):
        return console_type(d, sess, console(), 'run %s; echo VESSEL-%s' % (cmd, tag),
                            'VESSEL-' + tag, timeout=60)

    def write_word(word, tag):
        # conv=fsync: on the disk when dd exits, not in the guest's page cache
        out = guest_cmd('echo %s > /mark; echo %s-disk | dd of=/dev/vda bs=512 count=1 '
                        'conv=sync,fsync 2>/dev/null; sync' % (word, word), tag)
        return 'VESSEL-' + tag in out, out[-300:]

    ok, out = write_word('alpha', 'A')
    t.ok(ok, 'the guest writes alpha into its memory and onto its disk', out)

    # changed block tracking under a running guest: live snapshots around
    # known writes of the guest name exactly the 64 KiB blocks it wrote
    sa = value(s.VDI.snapshot(sess, vdi, {}))
    out = guest_cmd('dd if=/dev/urandom of=/dev/vda bs=65536 count=2 seek=80 conv=fsync '
                    '2>/dev/null; dd if=/dev/urandom of=/dev/vda bs=4096 count=1 seek=3073 '
                    'conv=fsync 2>/dev/null', 'W')
    sb = value(s.VDI.snapshot(sess, vdi, {}))
    got = blocks(value(s.VDI.list_changed_blocks(sess, sa, sb)))
    a, b = (disk_bytes(vhd, path, value(s.VDI.get_uuid(sess, v)), tmp) for v in (sa, sb))
    differ = {i for i in range(len(b) // K64) if a[i * K64:(i + 1) * K64] != b[i * K64:(i + 1) * K64]}
    # exactly the blocks whose content differs between the two snapshots (the
    # guest writes random data); a write the guest made before the first
    # snapshot that reached its disk only after it is one of them (seen under
    # load: block 0, written just before), so the test compares with what the
    # snapshots hold rather than with the guest's view of time
    t.ok(got == differ and {80, 81, 192} <= got,
         'the blocks a running guest wrote between two live snapshots, exactly',
         'reported %r, differing %r' % (sorted(got), sorted(differ)))
    for v in (sa, sb):
        value(s.VDI.destroy(sess, v))
    console_type(d, sess, console(), 'run (i=0; while :; do i=$((i+1)); echo VESSEL-COUNT-$i; '
                 'sleep 1; done) & echo VESSEL-CSTART', 'VESSEL-CSTART', timeout=60)
    t.ok(wait_for(lambda: len(counts(console_log(d, uuid))) >= 2, 60), 'the guest counts')
    before = max(counts(console_log(d, uuid)))
    cp = value(s.VM.checkpoint(sess, vm, 'cp'))
    after = max(counts(console_log(d, uuid)))
    rec = value(s.VM.get_record(sess, cp))
    t.eq((rec['is_a_snapshot'], rec['power_state'], rec['snapshot_info'].get(
          'power-state-at-snapshot'), value(s.VM.get_power_state(sess, vm))),
         (True, 'Suspended', 'Running', 'Running'),  # Record_util's words
         'VM.checkpoint: a Suspended snapshot of a running VM, which runs on')
    snap_vdi = [value(s.VBD.get_VDI(sess, b)) for b in rec['VBDs']]
    snap_vdi = [v for v in snap_vdi if v != 'OpaqueRef:NULL'][0]
    snap_vdi_uuid = value(s.VDI.get_uuid(sess, snap_vdi))
    t.eq(disk_head(vhd, path, snap_vdi_uuid, tmp), b'alpha-disk',
         "the checkpoint's disk holds what the guest wrote before it")

    ok, out = write_word('beta', 'B')
    t.ok(ok, 'after the checkpoint the guest writes beta', out)
    t.ok(wait_for(lambda: max(counts(console_log(d, uuid))) >= after + 3, 60),
         'and counts on')
    later = max(counts(console_log(d, uuid)))

    value(s.VM.revert(sess, cp))
    t.eq(value(s.VM.get_power_state(sess, vm)), 'Suspended',
         'VM.revert to a checkpoint leaves the VM Suspended (xapi)')
    vm_vdi = [value(s.VBD.get_VDI(sess, b)) for b in value(s.VM.get_VBDs(sess, vm))]
    vm_vdi_uuid = value(s.VDI.get_uuid(sess, [v for v in vm_vdi if v != 'OpaqueRef:NULL'][0]))
    vm_disk = disk_bytes(vhd, path, vm_vdi_uuid, tmp)
    t.ok(vm_disk[:10] == b'alpha-disk' and vm_disk == disk_bytes(vhd, path, snap_vdi_uuid, tmp),
         "after the revert the VM's disk equals the checkpoint's, byte for byte")
    seen = len(console_log(d, uuid))
    value(s.VM.resume(sess, vm, False, False))
    t.eq(value(s.VM.get_power_state(sess, vm)), 'Running', 'VM.resume of the reverted VM')
    t.ok(wait_for(lambda: counts(console_log(d, uuid)[seen:]), 60), 'the guest counts again')
    first = counts(console_log(d, uuid)[seen:])[0]
    t.ok(before <= first <= after + 1 and first < later,
         "the counter goes on from the checkpoint's value (%d before it, %d after it, %d "
         "before the revert; now %d)" % (before, after, later, first))
    out = guest_cmd('cat /mark', 'M')
    word = out.rsplit('VESSEL-M', 1)[0].split()
    t.ok(word[-1:] == ['alpha'], "the guest's memory is the checkpoint's", out[-200:])
    value(s.VM.hard_shutdown(sess, vm))
    t.eq(value(s.VM.get_power_state(sess, cp)), 'Suspended', 'the checkpoint keeps its memory')
    value(s.VM.destroy(sess, cp))
    t.ok(not os.path.exists(os.path.join(d.dir, 'data', 'suspend', rec['uuid'] + '.img')),
         "destroying the checkpoint removes its memory image")


def main():
    binary, vhd, guest = sys.argv[1], sys.argv[2], sys.argv[3]

    def body(t, d):
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint(t, d, vhd, guest, tmp)
    return guest_test_main(binary, guest, body, extra=['--cgroup-root', 'none'])


if __name__ == '__main__':
    sys.exit(main())
