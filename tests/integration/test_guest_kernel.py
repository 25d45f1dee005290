#!/usr/bin/env python3
"""tests/integration/test_guest_kernel.py - guest kernels only from allowed directories.

Issue 11, finding 5: PV_kernel and PV_ramdisk accepted any host path and the
device model ran as root, so a vm-admin booted a guest with /etc/shadow as its
initrd and read it. As xapi (xapi_xenops.ml kernel_path), VM.start resolves
both and refuses, with INVALID_VALUE [field, file, reason], anything that is
not a regular file under a --guest-kernel-dir, before anything starts. The
attack is made by a vm-admin account: /etc/shadow directly, through a
symlink in the allowed directory, and through allowed/../../etc/shadow; the
VM stays Halted, no disk server or device model starts, the daemon serves on.
Runs on the sim backend: the check sits above the backend (api/domains.c).
Usage: test_guest_kernel.py BUILD/vesseld
"""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Tap, Vesseld, add_account, error, value  # noqa: E402


def vm_admin_session(t, d, s, sess):
    subj = add_account(d, sess, 'mallory', 'mallory-password', 'vm-admin')
    vm_admin = value(s.role.get_by_name_label(sess, 'vm-admin'))[0]
    t.eq(value(s.subject.get_roles(sess, subj)), [vm_admin], 'the attacker is a vm-admin, no more')
    return value(s.session.login_with_password('mallory', 'mallory-password', '1.0', 'it'))


def served_files(d, uuid):
    disks = os.path.join(d.dir, 'data', 'run', 'disks')
    return [f for f in (os.listdir(disks) if os.path.isdir(disks) else []) if f.startswith(uuid)]


def main():
    binary = sys.argv[1]
    t = Tap()
    allowed = tempfile.mkdtemp(prefix='vessel-kernels-')
    kernel = os.path.join(allowed, 'vmlinux')
    with open(kernel, 'wb') as f:
        f.write(b'not really a kernel')
    os.chmod(kernel, 0o644)
    os.chmod(allowed, 0o755)
    os.symlink('/etc/shadow', os.path.join(allowed, 'shadow-link'))
    os.mkdir(os.path.join(allowed, 'subdir'))
    d = Vesseld(binary, extra=['--backend', 'sim', '--guest-kernel-dir', allowed])
    try:
        d.start()
        s = d.proxy()
        root = d.login()
        mallory = vm_admin_session(t, d, s, root)
        tmpl = [r for r, v in value(s.VM.get_all_records(root)).items()
                if v['name_label'] == 'Direct kernel boot'][0]
        vm = value(s.VM.clone(mallory, tmpl, 'exfiltrate'))
        value(s.VM.set_is_a_template(mallory, vm, False))
        uuid = value(s.VM.get_uuid(mallory, vm))
        # a disk, so that a check made too late would show as a disk server
        pool = value(s.pool.get_all(root))[0]
        sr = value(s.pool.get_default_SR(root, pool))
        vdi = value(s.VDI.create(mallory, {'name_label': 'd', 'name_description': '', 'SR': sr,
                                           'virtual_size': str(4 << 20), 'type': 'user',
                                           'sharable': False, 'read_only': False,
                                           'other_config': {}}))
        value(s.VBD.create(mallory, {'VM': vm, 'VDI': vdi, 'userdevice': '0', 'bootable': True,
                                     'mode': 'RW', 'type': 'Disk', 'unpluggable': True,
                                     'empty': False, 'other_config': {},
                                     'qos_algorithm_type': '', 'qos_algorithm_params': {}}))
        value(s.VM.set_PV_kernel(mallory, vm, kernel))
        up = '../' * (len(os.path.realpath(allowed).strip('/').split('/')) + 1)
        attacks = [
            ('ramdisk', '/etc/shadow', 'the ramdisk /etc/shadow'),
            ('ramdisk', os.path.join(allowed, 'shadow-link'), 'a symlink in the allowed dir to /etc/shadow'),
            ('ramdisk', os.path.join(allowed, up + 'etc/shadow'), 'allowed/../../etc/shadow'),
            ('ramdisk', os.path.join(allowed, 'subdir'), 'a directory in the allowed dir'),
            ('ramdisk', os.path.join(allowed, 'missing'), 'a missing file'),
            ('kernel', '/etc/shadow', 'the kernel /etc/shadow'),
        ]
        for field, path, what in attacks:
            if field == 'kernel':
                value(s.VM.set_PV_ramdisk(mallory, vm, ''))
                value(s.VM.set_PV_kernel(mallory, vm, path))
            else:
                value(s.VM.set_PV_ramdisk(mallory, vm, path))
            e = error(s.VM.start(mallory, vm, False, False))
            t.ok(e and e[0] == 'INVALID_VALUE' and e[1] == field and e[2] == path and len(e) == 4,
                 'VM.start refused: %s -> INVALID_VALUE [%s, file, reason]' % (what, field), e)
            t.eq(value(s.VM.get_power_state(root, vm)), 'Halted', '%s: the VM stays Halted' % what)
            t.eq(served_files(d, uuid), [], '%s: no disk server was started' % what)
        e = error(s.VM.start(mallory, vm, False, False))
        t.ok('Is not in any of the allowed' in (e or ['', '', '', ''])[3],
             'the reason names the allowed directories', e)
        # the daemon still serves, and an allowed kernel starts
        value(s.VM.set_PV_kernel(mallory, vm, kernel))
        value(s.VM.set_PV_ramdisk(mallory, vm, ''))
        e = error(s.VM.start(mallory, vm, False, False))
        t.eq(e, None, 'a kernel from the allowed directory starts (the daemon serves on)')
        t.eq(value(s.VM.get_power_state(root, vm)), 'Running', 'Running')
        value(s.VM.hard_shutdown(root, vm))
        # a relative path cannot make the daemon's working directory count
        value(s.VM.set_PV_kernel(mallory, vm, 'vmlinux'))
        e = error(s.VM.start(mallory, vm, False, False))
        t.eq(e and e[0], 'INVALID_VALUE', 'a relative kernel path is refused')
    finally:
        d.kill_all()
        d.cleanup()
        subprocess.run(['rm', '-rf', allowed])
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
