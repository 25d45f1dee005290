#!/usr/bin/env python3
"""tests/integration/test_firmware_boot.py - a guest booted by its firmware from a CD.

tests/guest/build-iso.sh makes a BIOS-bootable CD image (GRUB for i386-pc,
with a serial terminal) holding the Debian cloud kernel and the busybox test
initramfs. Through the XenAPI alone: the image is uploaded into a VDI (PUT
/import_raw_vdi, like any disk), put in a read-only CD VBD of a VM made from
the "Other install media" template (q35, SeaBIOS, HVM_boot_policy "BIOS
order", its boot order kept), and the VM started. Checked: qemu is given no
kernel (the firmware boots), GRUB runs from the CD and says so on the serial
port, the kernel it loads brings the test guest up (VESSEL-GUEST-UP on the
console), and VM.hard_shutdown ends it.
Usage: test_firmware_boot.py BUILD/vesseld GUEST_DIR
"""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Tap, Vesseld, console_log, error, value, wait_for  # noqa: E402
import debian_guest  # noqa: E402

MARKER = 'VESSEL-GUEST-UP'
BLOCK = 2 * 1024 * 1024


def qemu_argv(uuid):
    """The command lines of the qemu processes of VM @uuid."""
    out = []
    for p in subprocess.run(['pgrep', '-f', 'qemu-system-x86_64.*' + uuid], capture_output=True,
                            text=True).stdout.split():
        try:
            with open('/proc/%s/cmdline' % p, 'rb') as f:
                out.append(f.read().split(b'\0'))
        except OSError:
            pass
    return out


def checks(t, d, iso):
    s = d.proxy()
    sess = d.login()
    size = (os.path.getsize(iso) + BLOCK - 1) // BLOCK * BLOCK
    vdi = value(s.VDI.create(sess, {'name_label': 'guest.iso', 'name_description': '',
                                    'SR': debian_guest.local_sr(s, sess), 'virtual_size': str(size),
                                    'type': 'user', 'sharable': False, 'read_only': False,
                                    'other_config': {}}))
    t.eq(debian_guest.import_raw(d, sess, vdi, iso), 200, 'the CD image is uploaded into a VDI')
    tmpl = [r for r, v in value(s.VM.get_all_records(sess)).items()
            if v['name_label'] == 'Other install media' and v['is_a_template']][0]
    vm = value(s.VM.clone(sess, tmpl, 'from-cd'))
    value(s.VM.set_is_a_template(sess, vm, False))
    value(s.VM.add_to_platform(sess, vm, 'accel', 'tcg'))
    rec = value(s.VM.get_record(sess, vm))
    t.ok(rec['HVM_boot_policy'] == 'BIOS order' and rec['platform'].get('machine') == 'q35'
         and not rec['PV_kernel'] and 'd' in rec['HVM_boot_params'].get('order', ''),
         'the template boots by firmware (BIOS order, q35, no kernel, a CD in the order: %r)'
         % rec['HVM_boot_params'])
    r = s.VBD.create(sess, {'VM': vm, 'VDI': vdi, 'userdevice': '3', 'bootable': True,
                            'mode': 'RO', 'type': 'CD', 'unpluggable': True, 'empty': False,
                            'other_config': {}, 'qos_algorithm_type': '',
                            'qos_algorithm_params': {}})
    t.eq(error(r), None, 'a read-only CD VBD of the VDI')
    if error(r):
        return
    uuid = value(s.VM.get_uuid(sess, vm))
    r = s.VM.start(sess, vm, False, False)
    t.eq(error(r), None, 'VM.start of the firmware-booted VM')
    if error(r):
        return
    argv = qemu_argv(uuid)
    t.ok(len(argv) == 1 and b'-kernel' not in argv[0] and b'ide-cd' in b' '.join(argv[0]),
         'qemu runs with a CD drive and no kernel of the host\'s: the firmware boots',
         argv and b' '.join(argv[0]).decode(errors='replace'))
    up = wait_for(lambda: MARKER in console_log(d, uuid), 300, 1)
    log = console_log(d, uuid)
    t.ok('VESSEL-GRUB' in log, 'GRUB runs from the CD (its serial terminal)', log[-1500:])
    t.ok('Linux version' in log and 'Command line: BOOT_IMAGE=/boot/vmlinuz console=ttyS0' in log,
         'GRUB loads the kernel from the CD with the command line of its grub.cfg', log[-1500:])
    t.ok(up, 'the guest from the CD comes up: %s on its console' % MARKER, log[-1500:])
    t.eq(error(s.VM.hard_shutdown(sess, vm)), None, 'VM.hard_shutdown')
    t.ok(value(s.VM.get_power_state(sess, vm)) == 'Halted' and not qemu_argv(uuid),
         'Halted, its device model gone')
    value(s.VM.destroy(sess, vm))
    value(s.VDI.destroy(sess, vdi))


def main():
    binary, guest = sys.argv[1], os.path.abspath(sys.argv[2])
    t = Tap()
    for tool in ('grub-mkrescue', 'xorriso'):
        if not shutil.which(tool):
            print('1..0 # SKIP %s is not installed (scripts/install-deps.sh)' % tool)
            return 0
    r = subprocess.run(['sh', os.path.join(debian_guest.HERE, '..', 'guest', 'build-iso.sh'), guest],
                       capture_output=True, text=True)
    if r.returncode != 0:
        t.ok(False, 'build the CD image', r.stderr[-2000:])
        return t.done()
    d = Vesseld(binary, extra=['--backend', 'qemu', '--guest-kernel-dir', guest])
    try:
        d.start()
        checks(t, d, os.path.join(guest, 'guest.iso'))
    except Exception as exc:  # a crash of the test is a failure, with its reason
        import traceback
        t.ok(False, 'test raised %s' % type(exc).__name__, traceback.format_exc())
    finally:
        d.kill_all()
        d.cleanup()
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
