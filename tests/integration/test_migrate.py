#!/usr/bin/env python3
"""tests/integration/test_migrate.py - live migration of a running guest (VM.pool_migrate).

A TCG test guest (pc machine) with a data disk (a VDI served by `vhd serve`) and a VIF
writes a counter every 100 ms: counter i goes to sector i of its disk (dd conv=fsync, so
it is on the disk server before the guest goes on) and only then to its console as
"TICK i". Ten localhost migrations (VM.pool_migrate to the VM's own host: xapi's
localhost_migration) move it to a new QEMU each time, its disks handed from the
source's disk servers to the destination's (single writer) and its VIF to a new tap on
the same bridge. Checked:
  - every migration succeeds, the record stays Running throughout (a poller sees no
    other power state), domid changes and resident_on stays this host, the guest
    ticks on afterwards, one qemu runs for it, the new tap is on the bridge and the
    old one gone;
  - a migration cancelled (task.cancel) while it runs ends with the task cancelled,
    the guest running on in its old domain, and no destination left (qemu, disk
    servers, tap);
  - VM.assert_can_migrate and VM.pool_migrate answer xapi's errors for a halted VM
    and a bad host;
  - afterwards (the VM shut down, its disk read offline): every counter the console
    reported as written is in its sector, and the console's counters go up by one
    each time, never repeating or going back: the guest never ran twice.
Usage: test_migrate.py BUILD/vesseld BUILD/vhd GUEST_DIR
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Tap, Vesseld, build_test_guest, console_log, console_type, error,  # noqa: E402
                     value, wait_for)

MiB = 1024 * 1024
HERE = os.path.dirname(os.path.abspath(__file__))
MIGRATIONS = 10
# the guest's ticker: a counter per 100 ms, on the disk (synced) before the console
TICKER = ("(i=0; while :; do i=$((i+1)); printf '%08d' $i | dd of=/dev/vda bs=512 seek=$i "
          "count=1 conv=sync,fsync 2>/dev/null && echo TICK $i; sleep 0.1; done) "
          "</dev/null >/dev/console 2>&1 &")
# non-zero memory for QEMU to send, so a migration lasts long enough to be cancelled
FILL = "dd if=/dev/urandom of=/fill bs=1M count=160 2>/dev/null; echo FILLED"


def log_tail(d):
    """vesseld's migration lines, for a failure's report."""
    with open(d.log_path, errors='replace') as f:
        return ''.join([ln for ln in f if 'migrat' in ln or 'incoming' in ln or 'xenops' in ln or 'geometry' in ln or
                          'disk.' in ln or 'qmp_error' in ln][-25:])


def ticks(d, uuid):
    return [int(n) for n in re.findall(r'TICK (\d+)', console_log(d, uuid))]


def last_tick(d, uuid):
    t = ticks(d, uuid)
    return t[-1] if t else 0


def qemus(uuid):
    out = subprocess.run(['pgrep', '-f', 'qemu-system-x86_64.*-uuid %s' % uuid],
                         capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


class StatePoller(threading.Thread):
    """Reads the VM's power_state every 50 ms: any value but Running is noted."""

    def __init__(self, d, vm):
        super().__init__(daemon=True)
        self.s, self.sess, self.vm = d.proxy(), d.login(), vm
        self.seen, self.stop, self.reads = set(), False, 0

    def run(self):
        while not self.stop:
            r = self.s.VM.get_power_state(self.sess, self.vm)
            if r.get('Status') == 'Success':
                self.seen.add(r['Value'])
                self.reads += 1
            time.sleep(0.05)


def make_vm(s, sess, guest, sr, net):
    tmpl = [r for r, v in value(s.VM.get_all_records(sess)).items()
            if v['name_label'] == 'Direct kernel boot'][0]
    vm = value(s.VM.clone(sess, tmpl, 'migrating'))
    value(s.VM.set_is_a_template(sess, vm, False))
    value(s.VM.set_PV_kernel(sess, vm, os.path.join(guest, 'bzImage')))
    value(s.VM.set_PV_ramdisk(sess, vm, os.path.join(guest, 'initramfs.cpio')))
    value(s.VM.set_PV_args(sess, vm, 'console=ttyS0 quiet vessel.noagent'))
    value(s.VM.remove_from_platform(sess, vm, 'machine'))
    value(s.VM.add_to_platform(sess, vm, 'machine', 'pc'))
    value(s.VM.add_to_platform(sess, vm, 'accel', 'tcg'))
    mem = str(256 * MiB)
    value(s.VM.set_memory_limits(sess, vm, mem, mem, mem, mem))
    vdi = value(s.VDI.create(sess, {'name_label': 'ticks', 'name_description': '', 'SR': sr,
                                    'virtual_size': str(16 * MiB), 'type': 'user',
                                    'sharable': False, 'read_only': False, 'other_config': {}}))
    value(s.VBD.create(sess, {'VM': vm, 'VDI': vdi, 'userdevice': '0', 'bootable': False,
                              'mode': 'RW', 'type': 'Disk', 'unpluggable': True, 'empty': False,
                              'other_config': {}, 'qos_algorithm_type': '',
                              'qos_algorithm_params': {}}))
    value(s.VIF.create(sess, {'device': '0', 'network': net, 'VM': vm, 'MAC': '', 'MTU': '1500',
                              'other_config': {}, 'qos_algorithm_type': '',
                              'qos_algorithm_params': {}}))
    return vm, vdi


def link_exists(name):
    return os.path.exists('/sys/class/net/%s' % name)


def bridge_of(tap):
    try:
        return os.path.basename(os.readlink('/sys/class/net/%s/master' % tap))
    except OSError:
        return None


def wait_task(s, sess, task, timeout=120):
    wait_for(lambda: value(s.task.get_status(sess, task)) not in ('pending', 'cancelling'),
             timeout)
    return value(s.task.get_record(sess, task))


def errors_checks(t, s, sess, vm, host):
    r = s.VM.pool_migrate(sess, vm, host, {})
    t.eq(error(r)[:1], ['VM_BAD_POWER_STATE'], 'pool_migrate of a halted VM: VM_BAD_POWER_STATE')
    r = s.VM.pool_migrate(sess, vm, 'OpaqueRef:nonesuch', {})
    t.eq(error(r)[:2], ['HANDLE_INVALID', 'host'], 'pool_migrate to no host: HANDLE_INVALID')
    r = s.VM.assert_can_migrate(sess, vm, {'host': host}, True, {}, {}, {}, {})
    t.eq(error(r)[:1], ['VM_BAD_POWER_STATE'], 'assert_can_migrate of a halted VM says why')


def cancel_check(t, d, s, sess, vm, uuid, host, bridge):
    """A migration cancelled while QEMU sends: the guest runs on where it was."""
    console = [c for c in value(s.VM.get_consoles(sess, vm))
               if value(s.console.get_protocol(sess, c)) == 'vt100'][0]
    out = console_type(d, sess, console, 'run ' + FILL, 'FILLED', 120)
    t.ok('FILLED' in out, 'the guest fills 160 MiB of its memory with random bytes', out[-200:])
    domid = value(s.VM.get_domid(sess, vm))
    cancelled = None
    for attempt in range(5):   # a migration may finish before the cancel lands: try again
        before = qemus(uuid)
        task = value(s.Async.VM.pool_migrate(sess, vm, host, {}))
        wait_for(lambda: float(value(s.task.get_progress(sess, task))) > 0.06 or
                 value(s.task.get_status(sess, task)) != 'pending', 60, 0.02)
        value(s.task.cancel(sess, task))
        rec = wait_task(s, sess, task)
        if rec['status'] == 'success':
            domid = value(s.VM.get_domid(sess, vm))
            continue
        cancelled = rec
        break
    t.ok(cancelled is not None, 'a migration is cancelled while it runs (in 5 tries)')
    if cancelled is None:
        return
    t.ok(cancelled['status'] == 'cancelled' or
         cancelled['error_info'][:1] == ['TASK_CANCELLED'],
         'the cancelled task ends cancelled', cancelled)
    t.eq(value(s.VM.get_power_state(sess, vm)), 'Running', 'the VM still runs after the cancel')
    t.eq(value(s.VM.get_domid(sess, vm)), domid, 'in its old domain')
    t.eq(qemus(uuid), before, 'its qemu is the one from before; the destination\'s is gone')
    t.ok(wait_for(lambda: not glob.glob(os.path.join(d.dir, 'data', 'run', 'disks', 'in-*')), 10),
         'no standby disk server is left')
    t.ok(bridge_of('vif%s.0' % domid) == bridge and
         len([n for n in os.listdir('/sys/class/net') if n.startswith('vif') and
              bridge_of(n) == bridge]) == 1, 'its tap is the only one on the bridge')
    n = last_tick(d, uuid)
    t.ok(wait_for(lambda: last_tick(d, uuid) > n + 3, 20), 'the guest ticks on after the cancel')


def migrate_checks(t, d, s, sess, vm, uuid, host, bridge):
    poller = StatePoller(d, vm)
    poller.start()
    for i in range(MIGRATIONS):
        domid = value(s.VM.get_domid(sess, vm))
        n = last_tick(d, uuid)
        r = s.VM.pool_migrate(sess, vm, host, {})
        if not t.ok(error(r) is None, 'migration %d succeeds' % (i + 1),
                    '%s\n%s' % (error(r), log_tail(d))):
            break
        new = value(s.VM.get_domid(sess, vm))
        t.ok(new != domid and value(s.VM.get_resident_on(sess, vm)) == host and
             value(s.VM.get_power_state(sess, vm)) == 'Running',
             'migration %d: Running on this host in a new domain %s' % (i + 1, new))
        # the old domain's taps go on a worker beside the call's last
        # records (api/domains.c: domains_detach_nics), not before its reply
        t.ok(len(qemus(uuid)) == 1 and bridge_of('vif%s.0' % new) == bridge and
             wait_for(lambda: not link_exists('vif%s.0' % domid), 5, 0.01),
             'migration %d: one qemu; its new tap on the bridge, the old one gone' % (i + 1),
             (qemus(uuid), os.listdir('/sys/class/net')))
        t.ok(wait_for(lambda: last_tick(d, uuid) > n + 2, 20),
             'migration %d: the guest ticks on (%d -> %d)' % (i + 1, n, last_tick(d, uuid)))
    poller.stop = True
    poller.join()
    t.ok(poller.reads > 0 and poller.seen == {'Running'},
         'the record showed only Running during the migrations (%d reads)' % poller.reads,
         poller.seen)


def disk_checks(t, d, s, sess, vm, uuid, vdi, sr_path, vhd_tool, tmp):
    seen = ticks(d, uuid)
    value(s.VM.hard_shutdown(sess, vm))
    t.ok(len(seen) > 100, 'the guest reported %d counters on its console' % len(seen))
    t.ok(seen == list(range(1, len(seen) + 1)),
         'the console counters go up by one, never repeat or go back: it never ran twice',
         [(a, b) for a, b in zip(seen, seen[1:]) if b != a + 1][:10])
    raw = os.path.join(tmp, 'ticks.raw')
    src = os.path.join(sr_path, value(s.VDI.get_uuid(sess, vdi)) + '.vhd')
    subprocess.run([vhd_tool, 'convert', '--to', 'raw', src, raw], check=True,
                   capture_output=True)
    with open(raw, 'rb') as f:
        disk = f.read()
    missing = [i for i in seen if disk[i * 512:i * 512 + 8] != b'%08d' % i]
    t.ok(not missing, 'every counter reported as written is in its sector on the disk',
         missing[:20])
    r = subprocess.run([vhd_tool, 'check', src], capture_output=True, text=True)
    t.ok(r.returncode == 0, 'vhd check passes on the VDI', r.stdout + r.stderr)


def main():
    binary, vhd_tool, guest = sys.argv[1], sys.argv[2], sys.argv[3]
    t = Tap()
    if not build_test_guest(t, guest):
        return t.done()
    tmp = tempfile.mkdtemp(prefix='vessel-migrate-')
    bridge = 'vbrmig%d' % (os.getpid() % 100000)
    d = Vesseld(binary, extra=['--backend', 'qemu', '--guest-kernel-dir', guest])
    try:
        d.start()
        s = d.proxy()
        sess = d.login()
        host = value(s.host.get_all(sess))[0]
        srs = value(s.SR.get_all_records(sess))
        sr = [r for r, v in srs.items() if v['other_config'].get('vessel-local') == 'true'][0]
        sr_path = value(s.PBD.get_device_config(sess, srs[sr]['PBDs'][0]))['path']
        net = value(s.network.create(sess, {'name_label': 'migration', 'name_description': '',
                                            'MTU': '1500', 'other_config': {},
                                            'bridge': bridge}))
        vm, vdi = make_vm(s, sess, guest, sr, net)
        uuid = value(s.VM.get_uuid(sess, vm))
        errors_checks(t, s, sess, vm, host)
        value(s.VM.start(sess, vm, False, False))
        up = wait_for(lambda: 'VESSEL-GUEST-UP' in console_log(d, uuid), 90)
        t.ok(up, 'the guest boots', console_log(d, uuid)[-1000:])
        if not up:
            return t.done()
        r = s.VM.assert_can_migrate(sess, vm, {'host': host}, True, {}, {}, {}, {})
        t.eq(error(r), None, 'VM.assert_can_migrate to its own host: yes')
        console = [c for c in value(s.VM.get_consoles(sess, vm))
                   if value(s.console.get_protocol(sess, c)) == 'vt100'][0]
        console_type(d, sess, console, 'run ' + TICKER, 'TICK 1', 30)
        t.ok(wait_for(lambda: last_tick(d, uuid) >= 5, 30), 'the guest ticks')
        migrate_checks(t, d, s, sess, vm, uuid, host, bridge)
        cancel_check(t, d, s, sess, vm, uuid, host, bridge)
        disk_checks(t, d, s, sess, vm, uuid, vdi, sr_path, vhd_tool, tmp)
    except Exception as exc:  # a crash of the test is a failure, with its reason
        import traceback
        t.ok(False, 'test raised %s' % type(exc).__name__, traceback.format_exc())
    finally:
        d.kill_all()
        d.cleanup()
        subprocess.run(['ip', 'link', 'del', bridge], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
