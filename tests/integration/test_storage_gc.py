#!/usr/bin/env python3
"""tests/integration/test_storage_gc.py - live snapshots and the storage garbage
collector, against a real vesseld (--backend sim) whose VMs' disks are served by
real `vhd serve` processes.

A VM on the sim backend has no guest, but its disks are served over NBD exactly
as for qemu; qemu-io plays the guest on that socket, writing and reading with
patterns while snapshots are taken and chain nodes are folded away under it.
Every VHD left behind must pass `vhd check`; every byte is checked.
Usage: test_storage_gc.py BUILD/vesseld BUILD/vhd
"""
import glob
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import error, test_main, value, wait_for  # noqa: E402

MiB = 1024 * 1024
VHD_TOOL = None


def qemu_io(sock, *cmds):
    args = ['qemu-io', '-f', 'raw']
    for c in cmds:
        args += ['-c', c]
    r = subprocess.run(args + ['nbd+unix:///?socket=' + sock], capture_output=True, text=True,
                       timeout=60)
    out = r.stdout + r.stderr
    return r.returncode == 0 and 'failed' not in out and 'error' not in out.lower(), out


def chain_reads(path, checks):
    """Reads the chain at @path offline (`vhd convert --to raw`); checks is a
    list of (offset, length, byte)."""
    out = path + '.raw'
    if os.path.exists(out):
        os.unlink(out)
    r = subprocess.run([VHD_TOOL, 'convert', '--to', 'raw', path, out], capture_output=True,
                       text=True)
    if r.returncode != 0:
        return False, r.stderr
    try:
        with open(out, 'rb') as f:
            for off, length, byte in checks:
                f.seek(off)
                if f.read(length) != bytes([byte]) * length:
                    return False, 'offset %d is not 0x%02x' % (off, byte)
        return True, ''
    finally:
        os.unlink(out)


def all_sound(path):
    bad = []
    for f in glob.glob(os.path.join(path, '*.vhd')):
        r = subprocess.run([VHD_TOOL, 'check', f], capture_output=True, text=True)
        if r.returncode != 0:
            bad.append((os.path.basename(f), r.stdout + r.stderr))
    return not bad, bad


def bases(path):
    return sorted(glob.glob(os.path.join(path, '*.base.vhd')))


def depth(path, uuid):
    r = subprocess.run([VHD_TOOL, 'info', '--json', os.path.join(path, uuid + '.vhd')],
                       capture_output=True, text=True)
    m = re.search(r'"chain_depth"\s*:\s*(\d+)', r.stdout)
    return int(m.group(1)) if m else -1


def log_count(d, event):
    with open(d.log_path) as f:
        return f.read().count(event)


class Env:
    pass


def setup(t, d):
    e = Env()
    e.s = d.proxy()
    e.sess = d.login()
    s, sess = e.s, e.sess
    srs = value(s.SR.get_all_records(sess))
    e.sr = [r for r, v in srs.items() if v['other_config'].get('vessel-local') == 'true'][0]
    e.path = os.path.join(d.dir, 'data', 'sr', 'local')
    if not os.path.isdir(e.path):
        pbd = srs[e.sr]['PBDs'][0]
        e.path = value(s.PBD.get_device_config(sess, pbd))['path']
    vms = value(s.VM.get_all_records(sess))
    tmpl = [r for r, v in vms.items() if v['name_label'] == 'Direct kernel boot'][0]
    e.vm = value(s.VM.clone(sess, tmpl, 'gc'))
    value(s.VM.set_is_a_template(sess, e.vm, False))
    e.vdi = value(s.VDI.create(sess, {
        'name_label': 'gc-disk', 'name_description': '', 'SR': e.sr,
        'virtual_size': str(64 * MiB), 'type': 'user', 'sharable': False,
        'read_only': False, 'other_config': {}}))
    e.uuid = value(s.VDI.get_uuid(sess, e.vdi))
    value(s.VBD.create(sess, {
        'VM': e.vm, 'VDI': e.vdi, 'userdevice': '0', 'bootable': True, 'mode': 'RW',
        'type': 'Disk', 'unpluggable': True, 'empty': False, 'other_config': {},
        'qos_algorithm_type': '', 'qos_algorithm_params': {}}))
    value(s.VM.start(sess, e.vm, False, False))
    vm_uuid = value(s.VM.get_uuid(sess, e.vm))
    e.sock = os.path.join(d.dir, 'data', 'run', 'disks', vm_uuid + '.0.sock')
    t.ok(os.path.exists(e.sock), 'a running VM\'s disk is served on its NBD socket')
    return e


def live_snapshot(t, d, e):
    s, sess = e.s, e.sess
    ok, out = qemu_io(e.sock, 'write -P 0xaa 0 1M', 'write -P 0x11 20M 1M')
    t.ok(ok, 'the "guest" writes through vhd serve', out)
    snap = value(s.VM.snapshot(sess, e.vm, 'live'))
    t.eq(value(s.VM.get_power_state(sess, e.vm)), 'Running',
         'VM.snapshot of a running VM: allowed, and the VM keeps running')
    t.eq(value(s.VM.get_power_state(sess, snap)), 'Halted', 'the snapshot VM is Halted')
    svbd = value(s.VM.get_VBDs(sess, snap))[0]
    svdi = value(s.VBD.get_VDI(sess, svbd))
    suuid = value(s.VDI.get_uuid(sess, svdi))
    t.ok(value(s.VDI.get_is_a_snapshot(sess, svdi)), 'its disk is a snapshot VDI')
    # the guest goes on writing on the same connection's socket, into the new leaf
    ok, out = qemu_io(e.sock, 'write -P 0xbb 0 512k', 'read -P 0xbb 0 512k',
                      'read -P 0xaa 512k 512k', 'read -P 0x11 20M 1M')
    t.ok(ok, 'after the live snapshot the disk reads and writes on', out)
    ok, why = chain_reads(os.path.join(e.path, suuid + '.vhd'),
                          [(0, MiB, 0xaa), (20 * MiB, MiB, 0x11), (2 * MiB, MiB, 0)])
    t.ok(ok, 'the snapshot holds exactly what was written before it', why)
    ok, bad = all_sound(e.path)
    t.ok(ok, 'vhd check passes on every file after the live snapshot', bad)
    t.eq(depth(e.path, e.uuid), 2, 'the live VDI is now a child of the snapshot base')
    return snap, svdi


def collect_leaf(t, d, e, snap, svdi):
    """Destroying the snapshot leaves a base with one child: the collector merges
    the running leaf into it, pausing its disk server only for that."""
    s, sess = e.s, e.sess
    merges = log_count(d, 'gc.merge')
    # a writer busy on the disk while the collector works under it
    writes = ['write -P 0x77 %d 64k' % (52 * MiB + i * 65536) for i in range(128)]
    args = ['qemu-io', '-f', 'raw'] + sum([['-c', w] for w in writes], [])
    writer = subprocess.Popen(args + ['nbd+unix:///?socket=' + e.sock], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    value(s.VM.destroy(sess, snap))
    value(s.VDI.destroy(sess, svdi))
    out = writer.communicate(timeout=60)[0]
    t.ok(writer.returncode == 0 and 'failed' not in out, 'a writer busy during the collection saw no error',
         out[-500:])
    t.ok(wait_for(lambda: not bases(e.path), 20), 'the collector folds the base away (VDI.destroy kicks it)',
         bases(e.path))
    t.ok(log_count(d, 'gc.merge') > merges, 'by a merge of the small running leaf')
    t.eq(depth(e.path, e.uuid), 1, 'the VDI is a single file again')
    ok, out = qemu_io(e.sock, 'read -P 0xbb 0 512k', 'read -P 0xaa 512k 512k',
                      'read -P 0x11 20M 1M', 'write -P 0xcc 4M 1M', 'read -P 0xcc 4M 1M',
                      'read -P 0x77 52M 8M')
    t.ok(ok, 'the running disk reads the same and writes on after the merge', out)
    t.ok(wait_for(lambda: 'vhd-parent' not in value(s.VDI.get_sm_config(sess, e.vdi)), 10),
         'sm_config:vhd-parent is gone from the VDI record')
    ok, bad = all_sound(e.path)
    t.ok(ok, 'vhd check passes after the merge', bad)


def collect_interior_and_big_leaf(t, d, e):
    """Two snapshots, the older destroyed: an interior node is folded while the
    disk runs. Then a leaf with more than 16 MiB of data is split before it is
    merged, so that the guest never waits for a big copy."""
    s, sess = e.s, e.sess
    snap1 = value(s.VM.snapshot(sess, e.vm, 's1'))
    ok, out = qemu_io(e.sock, 'write -P 0xd1 8M 2M')
    t.ok(ok, 'writes between two snapshots', out)
    snap2 = value(s.VM.snapshot(sess, e.vm, 's2'))
    vdi1 = value(s.VBD.get_VDI(sess, value(s.VM.get_VBDs(sess, snap1))[0]))
    vdi2 = value(s.VBD.get_VDI(sess, value(s.VM.get_VBDs(sess, snap2))[0]))
    uuid2 = value(s.VDI.get_uuid(sess, vdi2))
    t.eq(depth(e.path, e.uuid), 3, 'two live snapshots make a chain of three')
    folds = log_count(d, 'gc.coalesce')
    value(s.VM.destroy(sess, snap1))
    value(s.VDI.destroy(sess, vdi1))
    t.ok(wait_for(lambda: depth(e.path, e.uuid) == 2, 20),
         'the older snapshot\'s base is folded into its parent', depth(e.path, e.uuid))
    t.ok(log_count(d, 'gc.coalesce') > folds, 'as an interior coalesce')
    t.eq(len(bases(e.path)), 1, 'one base is left: the newer snapshot still needs it')
    ok, why = chain_reads(os.path.join(e.path, uuid2 + '.vhd'),
                          [(0, 512 * 1024, 0xbb), (512 * 1024, 512 * 1024, 0xaa),
                           (4 * MiB, MiB, 0xcc), (8 * MiB, 2 * MiB, 0xd1), (20 * MiB, MiB, 0x11)])
    t.ok(ok, 'the newer snapshot reads exactly as before the fold', why)
    ok, out = qemu_io(e.sock, 'read -P 0xd1 8M 2M', 'read -P 0xbb 0 512k',
                      'write -P 0xe1 30M 20M')
    t.ok(ok, 'the running disk reads the same after the fold and takes 20 MiB more', out)
    splits = log_count(d, 'gc.split')
    value(s.VM.destroy(sess, snap2))
    value(s.VDI.destroy(sess, vdi2))
    t.ok(wait_for(lambda: not bases(e.path), 30), 'every base is collected', bases(e.path))
    t.ok(log_count(d, 'gc.split') > splits, 'the 20 MiB leaf was split first, not merged paused')
    t.eq(depth(e.path, e.uuid), 1, 'the VDI is a single file again')
    ok, out = qemu_io(e.sock, 'read -P 0xe1 30M 20M', 'read -P 0xd1 8M 2M',
                      'read -P 0xbb 0 512k', 'read -P 0x11 20M 1M', 'read -P 0 60M 1M')
    t.ok(ok, 'the running disk reads every byte as written', out)
    paused = [int(m) for m in re.findall(r'gc\.merge .*paused_us=(\d+)', open(d.log_path).read())]
    print('# merge pauses (us): %s' % paused)
    ok, bad = all_sound(e.path)
    t.ok(ok, 'vhd check passes after all of it', bad)


def hotplug_sim(t, d, e):
    """VBD.plug/unplug on a running VM: the disk server starts and stops (the
    sim backend has no device model; a qemu guest is in test_guest_disk.py)."""
    s, sess = e.s, e.sess
    vdi = new_vdi(s, sess, e.sr, 8 * MiB, 'hot')
    vbd = value(s.VBD.create(sess, {
        'VM': e.vm, 'VDI': vdi, 'userdevice': '1', 'bootable': False, 'mode': 'RW',
        'type': 'Disk', 'unpluggable': True, 'empty': False, 'other_config': {},
        'qos_algorithm_type': '', 'qos_algorithm_params': {}}))
    t.eq(value(s.VBD.get_currently_attached(sess, vbd)), False, 'a new VBD of a running VM is unplugged')
    e2 = error(s.VBD.unplug(sess, vbd))
    t.eq(e2, ['DEVICE_ALREADY_DETACHED', vbd], 'VBD.unplug of an unplugged VBD')
    value(s.VBD.plug(sess, vbd))
    sock = e.sock.replace('.0.sock', '.1.sock')
    t.ok(value(s.VBD.get_currently_attached(sess, vbd)) and os.path.exists(sock),
         'VBD.plug: attached, its disk server in slot 1')
    t.eq(error(s.VBD.plug(sess, vbd)), ['DEVICE_ALREADY_ATTACHED', vbd], 'VBD.plug twice')
    ok, out = qemu_io(sock, 'write -P 0x3c 0 1M')
    t.ok(ok, 'the hotplugged disk takes writes', out)
    value(s.VM.pause(sess, e.vm))
    value(s.VM.unpause(sess, e.vm))
    t.eq(value(s.VBD.get_currently_attached(sess, vbd)), True, 'still attached after a pause')
    value(s.VBD.unplug(sess, vbd))
    t.ok(not value(s.VBD.get_currently_attached(sess, vbd)) and not os.path.exists(sock),
         'VBD.unplug: detached, the server gone')
    value(s.VM.pause(sess, e.vm))
    value(s.VM.unpause(sess, e.vm))
    t.eq(value(s.VBD.get_currently_attached(sess, vbd)), False, 'still unplugged after a pause')
    vfile = os.path.join(e.path, value(s.VDI.get_uuid(sess, vdi)) + '.vhd')
    ok, why = chain_reads(vfile, [(0, MiB, 0x3c), (MiB, MiB, 0)])
    t.ok(ok, 'the server flushed every write before it went', why)
    cd = value(s.VBD.create(sess, {
        'VM': e.vm, 'VDI': 'OpaqueRef:NULL', 'userdevice': '3', 'bootable': False, 'mode': 'RO',
        'type': 'CD', 'unpluggable': True, 'empty': True, 'other_config': {},
        'qos_algorithm_type': '', 'qos_algorithm_params': {}}))
    err = error(s.VBD.plug(sess, cd))
    t.ok(err and err[0] in ('OPERATION_NOT_ALLOWED', 'DEVICE_ALREADY_ATTACHED'),
         'a CD drive is not hotplugged', err)
    for ref in (vbd, cd):
        value(s.VBD.destroy(sess, ref))
    value(s.VDI.destroy(sess, vdi))


def after_stop(t, d, e):
    s, sess = e.s, e.sess
    value(s.VM.hard_shutdown(sess, e.vm))
    t.ok(not os.path.exists(e.sock), 'the disk server is gone with the VM')
    ok, why = chain_reads(os.path.join(e.path, e.uuid + '.vhd'),
                          [(0, 512 * 1024, 0xbb), (512 * 1024, 512 * 1024, 0xaa),
                           (4 * MiB, MiB, 0xcc), (8 * MiB, 2 * MiB, 0xd1),
                           (20 * MiB, MiB, 0x11), (30 * MiB, 20 * MiB, 0xe1),
                           (52 * MiB, 8 * MiB, 0x77)])
    t.ok(ok, 'after shutdown the VDI\'s file holds every write of the run', why)
    # a halted VM's snapshot chain is collected the same way, nobody paused
    snap = value(s.VM.snapshot(sess, e.vm, 'halted'))
    svdi = value(s.VBD.get_VDI(sess, value(s.VM.get_VBDs(sess, snap))[0]))
    value(s.VM.destroy(sess, snap))
    value(s.VDI.destroy(sess, svdi))
    t.ok(wait_for(lambda: not bases(e.path), 20), 'a halted VM\'s chain is collected too')
    ok, bad = all_sound(e.path)
    t.ok(ok, 'vhd check passes at the end', bad)


def serve_write(path, cmd):
    """qemu-io on a VDI's file through a private `vhd serve` (vesseld not using it)."""
    sock = path + '.sock'
    srv = subprocess.Popen([VHD_TOOL, 'serve', '--socket', sock, path],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: os.path.exists(sock), 5)
        return qemu_io(sock, cmd)
    finally:
        srv.terminate()
        srv.wait(10)
        if os.path.exists(sock):
            os.unlink(sock)


def new_vdi(s, sess, sr, size, name):
    return value(s.VDI.create(sess, {
        'name_label': name, 'name_description': '', 'SR': sr, 'virtual_size': str(size),
        'type': 'user', 'sharable': False, 'read_only': False, 'other_config': {}}))


def copy_into(t, d, e):
    """VDI.copy into an existing VDI: whole, and incremental from a base."""
    s, sess = e.s, e.sess
    expect = [(0, 512 * 1024, 0xbb), (512 * 1024, 512 * 1024, 0xaa), (4 * MiB, MiB, 0xcc),
              (8 * MiB, 2 * MiB, 0xd1), (20 * MiB, MiB, 0x11), (30 * MiB, 20 * MiB, 0xe1),
              (52 * MiB, 8 * MiB, 0x77), (60 * MiB, 4 * MiB, 0)]
    target = new_vdi(s, sess, e.sr, 64 * MiB, 'target')
    tfile = os.path.join(e.path, value(s.VDI.get_uuid(sess, target)) + '.vhd')
    ok, _ = serve_write(tfile, 'write -P 0x99 60M 1M')  # junk the copy must clear
    t.eq(value(s.VDI.copy(sess, e.vdi, 'OpaqueRef:NULL', 'OpaqueRef:NULL', target)), target,
         'VDI.copy into_vdi returns the target')
    ok, why = chain_reads(tfile, expect)
    t.ok(ok, 'the target reads exactly as the source, zeros included', why)
    # incremental: the target holds snapshot s0; only blocks s1 changed are sent
    s0 = value(s.VDI.snapshot(sess, e.vdi, {}))
    value(s.VM.start(sess, e.vm, False, False))
    ok, out = qemu_io(e.sock, 'write -P 0x42 12M 1M')
    value(s.VM.hard_shutdown(sess, e.vm))
    s1 = value(s.VDI.snapshot(sess, e.vdi, {}))
    ok2, _ = serve_write(tfile, 'write -P 0x55 2M 64k')  # where s0 == s1: must stay
    t.ok(ok and ok2, 'a change between two snapshots, a marker in the target', out)
    value(s.VDI.copy(sess, s1, 'OpaqueRef:NULL', s0, target))
    ok, why = chain_reads(tfile, [(12 * MiB, MiB, 0x42), (2 * MiB, 65536, 0x55),
                                  (8 * MiB, 2 * MiB, 0xd1)])
    t.ok(ok, 'with base_vdi only the changed blocks are written', why)
    small = new_vdi(s, sess, e.sr, 8 * MiB, 'small')
    err = error(s.VDI.copy(sess, e.vdi, 'OpaqueRef:NULL', 'OpaqueRef:NULL', small))
    t.ok(err and err[0] == 'VDI_TOO_SMALL' and err[1] == small, 'into a smaller VDI: VDI_TOO_SMALL', err)
    value(s.VDI.set_read_only(sess, target, True))
    err = error(s.VDI.copy(sess, e.vdi, 'OpaqueRef:NULL', 'OpaqueRef:NULL', target))
    t.ok(err and err[0] == 'VDI_READONLY', 'into a read-only VDI: VDI_READONLY', err)
    err = error(s.VDI.copy(sess, e.vdi, 'OpaqueRef:NULL', 'OpaqueRef:NULL', e.vdi))
    t.ok(err and err[0] == 'VALUE_NOT_SUPPORTED', 'into itself: refused', err)
    for v in (s0, s1, target, small):
        value(s.VDI.destroy(sess, v))
    t.ok(wait_for(lambda: not bases(e.path), 20), 'the snapshots\' bases are collected')


def switches(t, d, e):
    """SM's switches: VDI other_config:leaf-coalesce=false keeps a leaf's chain,
    SR other_config:coalesce=false keeps the whole SR's."""
    s, sess = e.s, e.sess
    value(s.VDI.add_to_other_config(sess, e.vdi, 'leaf-coalesce', 'false'))
    snap = value(s.VDI.snapshot(sess, e.vdi, {}))
    value(s.VDI.destroy(sess, snap))
    value(s.SR.scan(sess, e.sr))
    time.sleep(1.5)
    t.eq(len(bases(e.path)), 1, 'leaf-coalesce=false: the base stays')
    value(s.VDI.remove_from_other_config(sess, e.vdi, 'leaf-coalesce'))
    value(s.SR.add_to_other_config(sess, e.sr, 'coalesce', 'false'))
    value(s.SR.scan(sess, e.sr))
    time.sleep(1.5)
    t.eq(len(bases(e.path)), 1, 'SR coalesce=false: the base stays')
    value(s.SR.remove_from_other_config(sess, e.sr, 'coalesce'))
    value(s.SR.scan(sess, e.sr))
    t.ok(wait_for(lambda: not bases(e.path), 20), 'without the switches SR.scan gets it collected')


def restart_collects(t, d, e):
    """A base left with one child while vesseld was down is collected at start."""
    s, sess = e.s, e.sess
    snap = value(s.VDI.snapshot(sess, e.vdi, {}))
    snap_file = os.path.join(e.path, value(s.VDI.get_uuid(sess, snap)) + '.vhd')
    t.eq(len(bases(e.path)), 1, 'a VDI.snapshot makes a base')
    d.stop()
    os.unlink(snap_file)  # as if its destroy had been cut short by a crash
    d.start()
    t.ok(wait_for(lambda: not bases(e.path), 20), 'the collector runs at start')
    ok, bad = all_sound(e.path)
    t.ok(ok, 'vhd check passes after the start-up collection', bad)


def main():
    global VHD_TOOL
    binary, VHD_TOOL = sys.argv[1], sys.argv[2]
    return test_main(binary, run, ['--backend', 'sim', '--storage-gc-period', '3600'])


def run(t, d):
    e = setup(t, d)
    snap, svdi = live_snapshot(t, d, e)
    collect_leaf(t, d, e, snap, svdi)
    collect_interior_and_big_leaf(t, d, e)
    hotplug_sim(t, d, e)
    after_stop(t, d, e)
    copy_into(t, d, e)
    switches(t, d, e)
    restart_collects(t, d, e)


if __name__ == '__main__':
    sys.exit(main())
