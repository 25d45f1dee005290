#!/usr/bin/env python3
"""tests/integration/test_guests.py - real guests (qemu, TCG here) through the API.

The test guest (tests/guest/build-guest.sh: the Debian cloud kernel and a
busybox initramfs) prints VESSEL-GUEST-UP on its serial console and obeys
"poweroff", "reboot", "crash" and "echo WORD" lines typed on it. A VM is made
from the "Direct kernel boot" template and driven through start, pause,
clean shutdown, reboot, suspend/resume, a crash of its device model, and a
kill -9 of vesseld with two guests running.
Usage: test_guests.py BUILD/vesseld GUEST_DIR
"""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import console_log, error, guest_test_main, value, wait_for  # noqa: E402
from depriv_checks import cgroup2_root, check_device_model  # noqa: E402

MARKER = 'VESSEL-GUEST-UP'






def qemu_pids(uuid):
    out = subprocess.run(['pgrep', '-f', 'qemu-system-x86_64.*' + uuid], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def make_vm(s, sess, guest, name):
    tmpl = [r for r, v in value(s.VM.get_all_records(sess)).items()
            if v['name_label'] == 'Direct kernel boot'][0]
    vm = value(s.VM.clone(sess, tmpl, name))
    value(s.VM.set_is_a_template(sess, vm, False))
    value(s.VM.set_PV_kernel(sess, vm, os.path.join(guest, 'vmlinux')))
    value(s.VM.set_PV_ramdisk(sess, vm, os.path.join(guest, 'initramfs.cpio')))
    value(s.VM.set_PV_args(sess, vm, 'console=ttyS0 quiet panic=-1'))
    value(s.VM.add_to_platform(sess, vm, 'accel', 'tcg'))
    value(s.VM.set_VCPUs_params(sess, vm, {'weight': '512', 'cap': '50'}))
    return vm


def lifecycle(t, d, guest):
    s = d.proxy()
    sess = d.login()
    vm = make_vm(s, sess, guest, 'guest-1')
    uuid = value(s.VM.get_uuid(sess, vm))
    t0 = time.time()
    r = s.VM.start(sess, vm, False, False)
    t.eq(error(r), None, 'VM.start of a direct-boot guest')
    up = wait_for(lambda: MARKER in console_log(d, uuid), 60)
    t.ok(up, 'the guest prints its marker on the serial console (%.1f s)' % (time.time() - t0))
    rec = value(s.VM.get_record(sess, vm))
    t.eq(rec['power_state'], 'Running', 'power_state Running')
    t.ok(len(qemu_pids(uuid)) == 1, 'one qemu runs for the VM')
    # issue 11: the device model apart (uid, no_new_privs, namespaces, cgroup)
    mem = int(value(s.VM.get_memory_dynamic_max(sess, vm)))
    mem = (mem + (1 << 20) - 1) & ~((1 << 20) - 1)
    check_device_model(t, d, qemu_pids(uuid)[0], uuid, cgroup2_root(), weight='200',
                       cap='50000 100000', memory=str(mem + (256 << 20) + mem // 16 + (1 << 30)))
    metrics = value(s.VM.get_metrics(sess, vm))

    def sampled():
        m = value(s.VM_metrics.get_record(sess, metrics))
        return m if int(m['memory_actual']) > 0 and '0' in m['VCPUs_utilisation'] and \
            m['VCPUs_utilisation']['0'] > 0 else None

    m = wait_for(sampled, 10)
    t.ok(m, 'VM_metrics sampled from the guest: memory_actual and VCPUs_utilisation', m)
    value(s.VM.pause(sess, vm))
    t.eq(value(s.VM.get_power_state(sess, vm)), 'Paused', 'pause')
    value(s.VM.unpause(sess, vm))
    t.eq(value(s.VM.get_power_state(sess, vm)), 'Running', 'unpause')
    r = s.VM.clean_shutdown(sess, vm)
    t.eq(error(r), None, 'clean_shutdown: the guest powers off when asked')
    t.eq(value(s.VM.get_power_state(sess, vm)), 'Halted', 'Halted after clean_shutdown')
    t.ok(wait_for(lambda: not qemu_pids(uuid), 10), 'no qemu left behind')
    value(s.VM.start(sess, vm, False, False))
    wait_for(lambda: console_log(d, uuid).count(MARKER) >= 2, 60)
    n = console_log(d, uuid).count(MARKER)
    r = s.VM.hard_reboot(sess, vm)
    t.eq(error(r), None, 'hard_reboot')
    t.ok(wait_for(lambda: console_log(d, uuid).count(MARKER) > n, 60), 'the guest boots again after a reboot')
    t.eq(value(s.VM.get_power_state(sess, vm)), 'Running', 'Running after reboot')
    r = s.VM.suspend(sess, vm)
    t.eq(error(r), None, 'suspend')
    t.eq(value(s.VM.get_power_state(sess, vm)), 'Suspended', 'Suspended')
    t.ok(wait_for(lambda: not qemu_pids(uuid), 10), 'a suspended VM has no qemu')
    r = s.VM.resume(sess, vm, False, False)
    t.eq(error(r), None, 'resume')
    t.eq(value(s.VM.get_power_state(sess, vm)), 'Running', 'Running after resume')
    # crash: the device model dies; actions_after_crash=destroy leaves it Halted
    value(s.VM.set_actions_after_crash(sess, vm, 'destroy'))
    for pid in qemu_pids(uuid):
        os.kill(pid, signal.SIGKILL)
    t.ok(wait_for(lambda: value(s.VM.get_power_state(sess, vm)) == 'Halted', 15),
         'a killed device model is noticed: the VM goes Halted (crash action destroy)')
    value(s.VM.destroy(sess, vm))


def survive_restart(t, d, guest):
    s = d.proxy()
    sess = d.login()
    vms = [make_vm(s, sess, guest, 'keep-%d' % i) for i in range(2)]
    uuids = [value(s.VM.get_uuid(sess, v)) for v in vms]
    for v in vms:
        value(s.VM.start(sess, v, False, False))
    for u in uuids:
        wait_for(lambda u=u: MARKER in console_log(d, u), 60)
    pids = {u: qemu_pids(u) for u in uuids}
    d.kill()  # SIGKILL: no goodbye
    d.start()
    s = d.proxy()
    sess = d.login()
    t.ok(all(qemu_pids(u) == pids[u] for u in uuids), 'both guests kept running while vesseld was dead')
    t.ok(all(value(s.VM.get_power_state(sess, v)) == 'Running' for v in vms),
         'after the restart both VMs are Running')
    for v, u in zip(vms, uuids):
        r = s.VM.hard_shutdown(sess, v)
        t.eq(error(r), None, 'the recovered VM is managed: hard_shutdown works')
        t.ok(wait_for(lambda u=u: not qemu_pids(u), 10), 'its qemu is gone')
        value(s.VM.destroy(sess, v))


def main():
    binary, guest = sys.argv[1], sys.argv[2]

    def body(t, d):
        lifecycle(t, d, guest)
        survive_restart(t, d, guest)
    cg = cgroup2_root()
    return guest_test_main(binary, guest, body,
                           extra=['--metrics-period', '1', '--cgroup-root', cg or 'none'])


if __name__ == '__main__':
    sys.exit(main())
