#!/usr/bin/env python3
"""tests/integration/test_guest_disk.py - a real guest whose root file system is a VDI.

The test guest's tree is made into an ext4 image (mke2fs -d, no mount needed),
imported into a VDI over HTTP (PUT /import_raw_vdi), and a TCG guest (pc
machine, virtio-blk over NBD from `vhd serve`) boots with vessel.root=/dev/vda:
its initramfs mounts the VDI and switch_roots into it. Then, with the guest
running: files written and synced, a live VM.snapshot, more files, the
snapshot destroyed and its base folded away under the running guest by the
garbage collector, more files. Every file is checked inside the guest and,
after shutdown, in the VDI's file system read offline (vhd convert, then
recovered as at boot - the journal replayed - and read with debugfs);
the snapshot holds exactly what was synced before it.
Usage: test_guest_disk.py BUILD/vesseld BUILD/vhd GUEST_DIR
"""
import glob
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import console_log, console_type, guest_test_main, value, wait_for  # noqa: E402
from depriv_checks import check_disk_servers, check_ids, QEMU_UID_BASE  # noqa: E402
import ext4_image  # noqa: E402

MiB = 1024 * 1024
HERE = os.path.dirname(os.path.abspath(__file__))


def rootfs_image(guest, tmp):
    """An ext4 image of the test guest's own tree, marked as a disk root."""
    tree = os.path.join(tmp, 'tree')
    os.makedirs(tree)
    with open(os.path.join(guest, 'initramfs.cpio'), 'rb') as f:
        subprocess.run(['cpio', '-idm', '--quiet'], stdin=f, cwd=tree, check=True)
    with open(os.path.join(tree, 'etc', 'vessel-root'), 'w') as f:
        f.write('root file system on a VDI\n')
    img = os.path.join(tmp, 'root.img')
    subprocess.run(['mke2fs', '-q', '-F', '-t', 'ext4', '-d', tree, '-L', 'vessel-root', img, '48M'],
                   check=True, capture_output=True)
    return img


def import_raw(d, sess, vdi, path):
    c = http.client.HTTPConnection('127.0.0.1', d.port, timeout=60)
    with open(path, 'rb') as f:
        body = f.read()
    c.request('PUT', '/import_raw_vdi?vdi=%s&session_id=%s' % (vdi, sess), body=body)
    r = c.getresponse()
    r.read()
    return r.status


def fs_files(vhd_tool, vhd_path, tmp, names):
    """{name: content or None} of files in the ext4 file system of the chain at @vhd_path."""
    raw = os.path.join(tmp, 'check.raw')
    if os.path.exists(raw):
        os.unlink(raw)
    subprocess.run([vhd_tool, 'convert', '--to', 'raw', vhd_path, raw], check=True,
                   capture_output=True)
    # crash-consistent (a live snapshot, a hard shutdown): recovered as at
    # boot, the journal replayed, before it is read (ext4_image.py says why);
    # a copy that does not check clean then is damage, not a crash
    clean, log = ext4_image.check(raw)
    if not clean:
        raise RuntimeError('the ext4 copy does not recover clean: %s' % log[-1000:])
    out = ext4_image.read_files(raw, names)
    os.unlink(raw)
    return out


def hotplug(t, d, s, sess, sr, path, vm, guest_cmd, tmp):
    """VBD.plug of a second disk into the running guest, VBD.unplug out of it."""
    vdi = value(s.VDI.create(sess, {'name_label': 'data', 'name_description': '', 'SR': sr,
                                    'virtual_size': str(16 * MiB), 'type': 'user',
                                    'sharable': False, 'read_only': False, 'other_config': {}}))
    vbd = value(s.VBD.create(sess, {'VM': vm, 'VDI': vdi, 'userdevice': '1', 'bootable': False,
                                    'mode': 'RW', 'type': 'Disk', 'unpluggable': True,
                                    'empty': False, 'other_config': {}, 'qos_algorithm_type': '',
                                    'qos_algorithm_params': {}}))
    t.eq(value(s.VBD.get_currently_attached(sess, vbd)), False,
         'a VBD made on a running VM waits for VBD.plug')
    value(s.VBD.plug(sess, vbd))
    t.eq(value(s.VBD.get_currently_attached(sess, vbd)), True, 'VBD.plug: attached')
    def block_devices(tag):
        out = guest_cmd('echo BEGIN-%s; ls /sys/block | tr "\\n" " "' % tag, tag)
        return out.rsplit('BEGIN-%s' % tag, 1)[-1].split('VESSEL-%s' % tag)[0]

    seen = ''
    for i in range(20):
        seen = block_devices('BLK%d' % i)
        if 'vdb' in seen:
            break
        time.sleep(1)
    t.ok('vdb' in seen, 'the guest sees the hotplugged disk as vdb', seen[-300:])
    out = guest_cmd('echo hotplugged-data | dd of=/dev/vdb bs=512 count=1 conv=sync 2>/dev/null'
                    ' && sync && dd if=/dev/vdb bs=16 count=1 2>/dev/null', 'WROTE')
    t.ok('hotplugged-data' in out, 'the guest writes to it and reads it back', out[-300:])
    value(s.VBD.unplug(sess, vbd))
    t.eq(value(s.VBD.get_currently_attached(sess, vbd)), False, 'VBD.unplug: detached')
    gone = block_devices('BLKGONE')
    t.ok('vda' in gone and 'vdb' not in gone, 'the disk is gone from the guest', gone)
    raw = os.path.join(tmp, 'data.raw')
    subprocess.run([VHD, 'convert', '--to', 'raw', os.path.join(path, value(s.VDI.get_uuid(sess, vdi)) + '.vhd'),
                    raw], check=True, capture_output=True)
    with open(raw, 'rb') as f:
        head = f.read(32)
    os.unlink(raw)
    t.ok(head.startswith(b'hotplugged-data'), 'what the guest wrote is in the VDI after the unplug', head)
    value(s.VBD.destroy(sess, vbd))
    value(s.VDI.destroy(sess, vdi))


def guest_checks(t, d, vhd_tool, guest, tmp):
    s = d.proxy()
    sess = d.login()
    srs = value(s.SR.get_all_records(sess))
    sr = [r for r, v in srs.items() if v['other_config'].get('vessel-local') == 'true'][0]
    path = value(s.PBD.get_device_config(sess, srs[sr]['PBDs'][0]))['path']
    vdi = value(s.VDI.create(sess, {'name_label': 'root', 'name_description': '', 'SR': sr,
                                    'virtual_size': str(64 * MiB), 'type': 'user',
                                    'sharable': False, 'read_only': False, 'other_config': {}}))
    uuid = value(s.VDI.get_uuid(sess, vdi))
    t.eq(import_raw(d, sess, vdi, rootfs_image(guest, tmp)), 200,
         'an ext4 root file system is imported into a VDI')
    tmpl = [r for r, v in value(s.VM.get_all_records(sess)).items()
            if v['name_label'] == 'Direct kernel boot'][0]
    vm = value(s.VM.clone(sess, tmpl, 'disk-guest'))
    value(s.VM.set_is_a_template(sess, vm, False))
    value(s.VM.set_PV_kernel(sess, vm, os.path.join(guest, 'bzImage')))
    value(s.VM.set_PV_ramdisk(sess, vm, os.path.join(guest, 'initramfs.cpio')))
    value(s.VM.set_PV_args(sess, vm, 'console=ttyS0 quiet vessel.root=/dev/vda'))
    value(s.VM.remove_from_platform(sess, vm, 'machine'))
    value(s.VM.add_to_platform(sess, vm, 'machine', 'pc'))
    value(s.VM.add_to_platform(sess, vm, 'accel', 'tcg'))
    value(s.VBD.create(sess, {'VM': vm, 'VDI': vdi, 'userdevice': '0', 'bootable': True,
                              'mode': 'RW', 'type': 'Disk', 'unpluggable': True, 'empty': False,
                              'other_config': {}, 'qos_algorithm_type': '',
                              'qos_algorithm_params': {}}))
    value(s.VM.start(sess, vm, False, False))
    vm_uuid = value(s.VM.get_uuid(sess, vm))
    up = wait_for(lambda: 'VESSEL-GUEST-UP' in console_log(d, vm_uuid), 90)
    log = console_log(d, vm_uuid)
    t.ok(up and 'VESSEL-ROOT-UP' in log,
         'the guest runs from its root file system on the VDI, served by vhd serve', log[-1500:])
    if not up:
        return
    # issue 11: the disk servers apart, each NBD socket its qemu's alone
    qemu = [int(p) for p in subprocess.run(['pgrep', '-f', 'qemu-system-x86_64.*' + vm_uuid],
                                           capture_output=True, text=True).stdout.split()]
    qemu_uid = check_ids(t, qemu[0], QEMU_UID_BASE, 'qemu') if qemu else None
    check_disk_servers(t, d, vm_uuid, qemu_uid)
    console = [c for c in value(s.VM.get_consoles(sess, vm))
               if value(s.console.get_protocol(sess, c)) == 'vt100'][0]

    def guest(cmd, tag):
        return console_type(d, sess, console, 'run %s; echo VESSEL-%s' % (cmd, tag),
                            'VESSEL-%s' % tag, 60)

    out = guest('echo alpha > /alpha && sync && cat /etc/vessel-root', 'DONE1')
    t.ok('root file system on a VDI' in out, 'the guest writes a file on its root and syncs', out)
    snap = value(s.VM.snapshot(sess, vm, 'live'))
    t.eq(value(s.VM.get_power_state(sess, vm)), 'Running', 'a live VM.snapshot of the guest')
    svdi = value(s.VBD.get_VDI(sess, value(s.VM.get_VBDs(sess, snap))[0]))
    suuid = value(s.VDI.get_uuid(sess, svdi))
    out = guest("echo beta > /beta && sync && cat /alpha /beta | tr '\\n' +", 'DONE2')
    t.ok('alpha+beta+' in out, 'the guest writes on after the snapshot', out)
    files = fs_files(vhd_tool, os.path.join(path, suuid + '.vhd'), tmp, ['alpha', 'beta'])
    t.eq(files, {'alpha': 'alpha', 'beta': None},
         'the snapshot holds what was synced before it, and nothing after')
    value(s.VM.destroy(sess, snap))
    value(s.VDI.destroy(sess, svdi))
    t.ok(wait_for(lambda: not glob.glob(os.path.join(path, '*.base.vhd')), 30),
         'the collector folds the snapshot\'s base away while the guest runs')
    out = guest("echo gamma > /gamma && sync && cat /alpha /beta /gamma | tr '\\n' +", 'DONE3')
    t.ok('alpha+beta+gamma+' in out, 'the guest reads and writes on after the merge', out)
    hotplug(t, d, s, sess, sr, path, vm, guest, tmp)
    value(s.VM.hard_shutdown(sess, vm))
    files = fs_files(vhd_tool, os.path.join(path, uuid + '.vhd'), tmp, ['alpha', 'beta', 'gamma'])
    t.eq(files, {'alpha': 'alpha', 'beta': 'beta', 'gamma': 'gamma'},
         'after shutdown the VDI holds every file the guest synced')
    r = subprocess.run([vhd_tool, 'check', os.path.join(path, uuid + '.vhd')], capture_output=True,
                       text=True)
    t.ok(r.returncode == 0, 'vhd check passes on the VDI', r.stdout + r.stderr)


VHD = None


def main():
    global VHD
    binary, vhd_tool, guest = sys.argv[1], sys.argv[2], sys.argv[3]
    VHD = vhd_tool
    if not shutil.which('mke2fs') or not shutil.which('debugfs'):
        print('1..0 # SKIP e2fsprogs (mke2fs, debugfs) is not installed')
        return 0
    tmp = tempfile.mkdtemp(prefix='vessel-gdisk-')
    return guest_test_main(binary, guest, lambda t, d: guest_checks(t, d, vhd_tool, guest, tmp),
                           after=lambda: shutil.rmtree(tmp, ignore_errors=True))


if __name__ == '__main__':
    sys.exit(main())
