#!/usr/bin/env python3
"""tests/integration/test_guest_agent.py - guests that behave like real guests.

Inside a network namespace of its own: vesseld with the qemu backend, a
network whose bridge has the host's address 10.98.0.1/24, and VMs made from
the "Direct kernel boot" template as a user would, changing nothing but the
kernel, the ramdisk, the command line and the accelerator:
 1. the stock Debian cloud kernel (the bzImage) with the test initramfs in
    "plain" mode (it reports what it sees and never reads its console) finds
    its disk and its NIC, pings the host and another guest across the Vessel
    network, and powers off on clean_shutdown within vesseld's 10 s timeout;
 2. a guest running the QEMU guest agent: VM_guest_metrics (os_version,
    networks in xapi's keys, PV drivers) appear; clean_reboot and
    clean_shutdown go through the agent; vCPUs are plugged live and the
    balloon moves memory_actual; with the agent stopped in the guest the
    record goes not-live, clean_reboot is refused with VM_LACKS_FEATURE and
    clean_shutdown still works by the ACPI power button;
 3. a guest that ignores both: clean_shutdown fails with
    VM_SHUTDOWN_TIMEOUT, the VM stays Running, hard_shutdown works;
 4. a microvm VM answers set_VCPUs_number_live with OPERATION_NOT_ALLOWED;
 5. the product's sources contain no code that types on a guest's console.
Usage: test_guest_agent.py BUILD/vesseld GUEST_DIR
"""
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Tap, Vesseld, console_log, console_type, error, run_in_netns, value, wait_for  # noqa: E402

MARKER = 'VESSEL-GUEST-UP'
HOST = '10.98.0.1'
TIMEOUT_S = 10
TOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')


def ping(addr):
    return subprocess.run(['busybox', 'ping', '-c', '1', '-W', '2', addr],
                          capture_output=True).returncode == 0


def make_vm(s, sess, guest, name, net, args, kernel='vmlinux', vcpus_max=1):
    tmpl = [r for r, v in value(s.VM.get_all_records(sess)).items()
            if v['name_label'] == 'Direct kernel boot'][0]
    vm = value(s.VM.clone(sess, tmpl, name))
    value(s.VM.set_is_a_template(sess, vm, False))
    value(s.VM.set_PV_kernel(sess, vm, os.path.join(guest, kernel)))
    value(s.VM.set_PV_ramdisk(sess, vm, os.path.join(guest, 'initramfs.cpio')))
    value(s.VM.set_PV_args(sess, vm, 'console=ttyS0 quiet panic=-1 ' + args))
    value(s.VM.add_to_platform(sess, vm, 'accel', 'tcg'))
    if vcpus_max > 1:
        value(s.VM.set_VCPUs_max(sess, vm, str(vcpus_max)))
    if net:
        value(s.VIF.create(sess, {'device': '0', 'network': net, 'VM': vm, 'MAC': '', 'MTU': '1500',
                                  'other_config': {}, 'qos_algorithm_type': '',
                                  'qos_algorithm_params': {}}))
    return vm


def add_disk(s, sess, vm):
    srs = value(s.SR.get_all_records(sess))
    sr = [r for r, v in srs.items() if v['other_config'].get('vessel-local') == 'true'][0]
    vdi = value(s.VDI.create(sess, {'name_label': 'data', 'name_description': '', 'SR': sr,
                                    'virtual_size': str(16 << 20), 'type': 'user',
                                    'sharable': False, 'read_only': False, 'other_config': {}}))
    value(s.VBD.create(sess, {'VM': vm, 'VDI': vdi, 'userdevice': '0', 'bootable': False,
                              'mode': 'RW', 'type': 'Disk', 'unpluggable': True, 'empty': False,
                              'other_config': {}, 'qos_algorithm_type': '',
                              'qos_algorithm_params': {}}))


def guest_metrics(s, sess, vm):
    ref = value(s.VM.get_guest_metrics(sess, vm))
    return None if ref == 'OpaqueRef:NULL' else value(s.VM_guest_metrics.get_record(sess, ref))


def vt100_of(s, sess, vm):
    return [c for c in value(s.VM.get_consoles(sess, vm))
            if value(s.console.get_protocol(sess, c)) == 'vt100'][0]


def stock_kernel_guest(t, d, s, sess, guest, net):
    """Check 1: the bzImage, a plain guest, the default machine."""
    other = make_vm(s, sess, guest, 'peer', net, 'vessel.ip=10.98.0.12/24')
    plain = make_vm(s, sess, guest, 'plain', net,
                    'vessel.plain vessel.ip=10.98.0.11/24 vessel.ping=%s vessel.ping=10.98.0.12' % HOST,
                    kernel='bzImage')
    add_disk(s, sess, plain)
    t.eq(value(s.VM.get_platform(sess, plain)).get('machine'), 'pc',
         'the "Direct kernel boot" template makes pc machines')
    value(s.VM.start(sess, other, False, False))
    u_other = value(s.VM.get_uuid(sess, other))
    t.ok(wait_for(lambda: MARKER in console_log(d, u_other), 120), 'the peer guest is up')
    value(s.VM.start(sess, plain, False, False))
    u = value(s.VM.get_uuid(sess, plain))
    got = wait_for(lambda: (lambda c: c if 'VESSEL-PING 10.98.0.12' in c else None)(console_log(d, u)), 180)
    log = console_log(d, u)
    parts = log.split('VESSEL-PARTITIONS')[-1].split('VESSEL-LINKS')[0] if 'VESSEL-PARTITIONS' in log else ''
    t.ok(re.search(r'\bvda\b', parts), 'the stock kernel sees its disk (/proc/partitions)', parts[-300:])
    links = log.split('VESSEL-LINKS')[-1] if 'VESSEL-LINKS' in log else ''
    t.ok('eth0' in links, 'and its NIC', links[:300])
    t.ok(got and ('VESSEL-PING %s ok' % HOST) in log, 'it pings the host across the Vessel network',
         log[-400:])
    t.ok('VESSEL-PING 10.98.0.12 ok' in log, 'and another guest')
    t.ok(ping('10.98.0.11'), 'the host pings it')
    t0 = time.time()
    r = s.VM.clean_shutdown(sess, plain)
    t.eq(error(r), None, 'clean_shutdown of the stock guest succeeds within the %d s timeout (%.1f s)'
         % (TIMEOUT_S, time.time() - t0))
    t.eq(value(s.VM.get_power_state(sess, plain)), 'Halted', 'it is Halted')
    value(s.VM.hard_shutdown(sess, other))


def agent_guest(t, d, s, sess, guest, net):
    """Check 2: the guest agent."""
    vm = make_vm(s, sess, guest, 'agent', net, 'vessel.ip=10.98.0.21/24', vcpus_max=2)
    value(s.VM.set_memory_limits(sess, vm, str(128 << 20), str(256 << 20), str(256 << 20), str(256 << 20)))
    value(s.VM.start(sess, vm, False, False))
    u = value(s.VM.get_uuid(sess, vm))
    t.ok(wait_for(lambda: MARKER in console_log(d, u), 120), 'the agent guest is up')
    gm = wait_for(lambda: (lambda g: g if g and g['networks'].get('0/ip') else None)(
        guest_metrics(s, sess, vm)), 60)
    t.ok(gm, 'VM.guest_metrics appears with the guest\'s address', gm)
    gm = gm or {}
    t.eq(gm.get('networks', {}).get('0/ip'), '10.98.0.21', 'networks 0/ip is the guest\'s IPv4 address')
    t.eq(gm.get('networks', {}).get('0/ipv4/0'), '10.98.0.21', 'networks 0/ipv4/0 too')
    # its link-local IPv6 address comes a moment after the link is up (DAD):
    # the next period's report has it
    t.ok(wait_for(lambda: any(k.startswith('0/ipv6/') for k in
                              (guest_metrics(s, sess, vm) or {}).get('networks', {})), 30),
         'and its IPv6 addresses')
    t.eq(gm.get('os_version', {}).get('name'), 'Vessel test guest 1.0', 'os_version name from os-release')
    t.ok(gm.get('os_version', {}).get('uname', '').endswith('cloud-amd64'), 'os_version uname')
    t.ok(gm.get('PV_drivers_detected') and gm.get('PV_drivers_version', {}).get('major'),
         'PV_drivers_detected with the agent\'s version', gm.get('PV_drivers_version'))
    t.eq((gm.get('live'), gm.get('can_use_hotplug_vbd'), gm.get('can_use_hotplug_vif')),
         (True, 'yes', 'yes'), 'live, hotplug usable')
    t.ok('clean_reboot' in value(s.VM.get_allowed_operations(sess, vm)), 'clean_reboot is allowed')
    # vCPUs and memory, live
    metrics = value(s.VM.get_metrics(sess, vm))
    t.eq(error(s.VM.set_VCPUs_number_live(sess, vm, '2')), None, 'set_VCPUs_number_live 2')
    t.eq((value(s.VM.get_VCPUs_at_startup(sess, vm)), value(s.VM_metrics.get_VCPUs_number(sess, metrics))),
         ('2', '2'), 'VCPUs_at_startup and VM_metrics.VCPUs_number follow')
    # device_add returns when QEMU has the CPU; the guest's kernel takes the
    # ACPI notification a moment later: ask until it shows (or 30 s)
    con = vt100_of(s, sess, vm)
    tries = [0]

    def cpus_listed():
        # the console replays what came before: read only between this try's markers
        tries[0] += 1
        n = tries[0]
        out = console_type(d, sess, con, 'run echo VESSEL-CPUS-%d; ls /sys/devices/system/cpu; '
                           'echo VESSEL-CPUS-END-%d' % (n, n), 'VESSEL-CPUS-END-%d' % n, 20)
        return 'cpu1' in out.split('VESSEL-CPUS-%d' % n)[-1].split('VESSEL-CPUS-END-%d' % n)[0]
    t.ok(wait_for(cpus_listed, 30, 1), 'the guest sees the plugged vCPU')
    t.eq(error(s.VM.set_VCPUs_number_live(sess, vm, '3'))[0:2],
         ['INVALID_VALUE', 'VCPU values must satisfy: 0 < VCPUs \u2264 VCPUs_max'],
         'more than VCPUs_max: INVALID_VALUE')
    t.eq(error(s.VM.set_memory_dynamic_range(sess, vm, str(128 << 20), str(160 << 20))), None,
         'set_memory_dynamic_range while running')
    t.ok(wait_for(lambda: int(value(s.VM_metrics.get_memory_actual(sess, metrics))) <= 160 << 20, 30),
         'memory_actual follows the balloon down',
         value(s.VM_metrics.get_memory_actual(sess, metrics)))
    # clean reboot through the agent
    n = console_log(d, u).count(MARKER)
    t.eq(error(s.VM.clean_reboot(sess, vm)), None, 'clean_reboot through the agent')
    t.ok(wait_for(lambda: console_log(d, u).count(MARKER) > n, 120), 'the guest boots again')
    t.ok(wait_for(lambda: (guest_metrics(s, sess, vm) or {}).get('live'), 60), 'its agent is back')
    # suspended and resumed, the guest's agent is found again (QEMU reports
    # no port event for a port that was open before the suspend)
    t.eq(error(s.VM.suspend(sess, vm)), None, 'suspend')
    t.eq(value(s.VM.get_guest_metrics(sess, vm)), 'OpaqueRef:NULL', 'a suspended VM has no guest metrics')
    t.eq(error(s.VM.resume(sess, vm, False, False)), None, 'resume')
    t.ok(wait_for(lambda: (guest_metrics(s, sess, vm) or {}).get('live') and
                  'clean_reboot' in value(s.VM.get_allowed_operations(sess, vm)), 30),
         'after resume its agent answers again: guest metrics live, clean_reboot allowed')
    # the agent stopped in the guest
    console_type(d, sess, vt100_of(s, sess, vm), 'run killall qemu-ga; echo VESSEL-KILLED', 'VESSEL-KILLED', 20)
    t.ok(wait_for(lambda: not (guest_metrics(s, sess, vm) or {}).get('live', True), 40),
         'with its agent stopped the guest metrics are not live')
    gm = guest_metrics(s, sess, vm) or {}
    t.eq((gm.get('PV_drivers_detected'), gm.get('PV_drivers_version')), (False, {}),
         'and no PV drivers')
    t.eq(gm.get('networks', {}).get('0/ip'), '10.98.0.21', 'the last known address stays')
    t.ok('clean_reboot' not in value(s.VM.get_allowed_operations(sess, vm)),
         'clean_reboot is no longer allowed')
    t.eq(error(s.VM.clean_reboot(sess, vm)), ['VM_LACKS_FEATURE', vm], 'clean_reboot: VM_LACKS_FEATURE [vm]')
    t.eq(error(s.VM.clean_shutdown(sess, vm)), None, 'clean_shutdown still works: the ACPI power button')
    t.eq(value(s.VM.get_guest_metrics(sess, vm)), 'OpaqueRef:NULL', 'a halted VM has no guest metrics')


def deaf_guest(t, d, s, sess, guest):
    """Check 3: a guest that ignores every request."""
    vm = make_vm(s, sess, guest, 'deaf', None, 'vessel.noagent vessel.noacpid')
    value(s.VM.start(sess, vm, False, False))
    u = value(s.VM.get_uuid(sess, vm))
    t.ok(wait_for(lambda: MARKER in console_log(d, u), 120), 'the deaf guest is up')
    t0 = time.time()
    e = error(s.VM.clean_shutdown(sess, vm))
    t.eq(e, ['VM_SHUTDOWN_TIMEOUT', vm, '%d.' % TIMEOUT_S],
         'clean_shutdown fails with VM_SHUTDOWN_TIMEOUT after its timeout (%.1f s)' % (time.time() - t0))
    t.eq(value(s.VM.get_power_state(sess, vm)), 'Running', 'the VM stays Running')
    out = console_type(d, sess, vt100_of(s, sess, vm), 'echo still', 'VESSEL-ECHO still', 20)
    t.ok('VESSEL-ECHO still' in out, 'and its guest still runs')
    t.eq(error(s.VM.hard_shutdown(sess, vm)), None, 'hard_shutdown works')
    t.eq(value(s.VM.get_power_state(sess, vm)), 'Halted', 'Halted')


def microvm_guest(t, s, sess, guest):
    """Check 4: what a machine cannot give is refused, not ignored."""
    vm = make_vm(s, sess, guest, 'micro', None, '', vcpus_max=2)
    value(s.VM.remove_from_platform(sess, vm, 'machine'))
    value(s.VM.add_to_platform(sess, vm, 'machine', 'microvm'))
    value(s.VM.start(sess, vm, False, False))
    e = error(s.VM.set_VCPUs_number_live(sess, vm, '2'))
    t.eq(e and e[0], 'OPERATION_NOT_ALLOWED', 'microvm: set_VCPUs_number_live is OPERATION_NOT_ALLOWED', )
    t.ok(e and 'microvm' in e[1], 'saying why', e)
    t.ok('changing_VCPUs_live' not in value(s.VM.get_allowed_operations(sess, vm)),
         'and not among its allowed operations')
    value(s.VM.hard_shutdown(sess, vm))
    value(s.VM.remove_from_platform(sess, vm, 'machine'))
    value(s.VM.add_to_platform(sess, vm, 'machine', 'q53'))
    e = error(s.VM.start(sess, vm, False, False))
    t.eq(e and e[:3], ['VALUE_NOT_SUPPORTED', 'platform:machine', 'q53'],
         'an unknown machine type is refused at start, not replaced silently')
    t.eq(value(s.VM.get_power_state(sess, vm)), 'Halted', 'and nothing runs')


def no_console_typing(t):
    """Check 5: only the console endpoint (what a user types) writes to a
    guest's console; no product code sends it commands."""
    writers = []
    for folder in ('api', 'xenops', 'rpc', 'daemon', 'http', 'cli', 'storage', 'net'):
        for root, _, files in os.walk(os.path.join(TOP, folder)):
            for f in files:
                if not f.endswith('.c'):
                    continue
                path = os.path.join(root, f)
                text = open(path, errors='replace').read()
                for m in re.finditer(r'(xenops_)?console_write\s*\(', text):
                    writers.append(os.path.relpath(path, TOP))
    allowed = {'api/console.c', 'xenops/xenops.c', 'xenops/qemu.c', 'xenops/sim.c'}
    t.ok(set(writers) <= allowed, 'console writes only relay what a user types (api/console.c)',
         sorted(set(writers) - allowed))
    for f in ('xenops/qemu.c', 'xenops/qemu_agent.c', 'api/domains.c', 'api/vm_lifecycle.c'):
        text = open(os.path.join(TOP, f)).read()
        t.ok(not re.search(r'"\\n?(poweroff|reboot)\\n"', text), '%s types no command' % f)


def inner(binary, guest):
    t = Tap()
    subprocess.run(['ip', 'link', 'set', 'lo', 'up'])
    d = Vesseld(binary, extra=['--backend', 'qemu', '--guest-kernel-dir', guest, '--metrics-period', '1',
                               '--clean-shutdown-timeout', str(TIMEOUT_S)])
    try:
        d.start()
        s = d.proxy()
        sess = d.login()
        net = value(s.network.create(sess, {'name_label': 'agents', 'name_description': '', 'MTU': '1500',
                                            'other_config': {}, 'bridge': 'vbragent'}))
        subprocess.run(['ip', 'addr', 'add', HOST + '/24', 'dev', 'vbragent'])
        no_console_typing(t)
        stock_kernel_guest(t, d, s, sess, guest, net)
        agent_guest(t, d, s, sess, guest, net)
        deaf_guest(t, d, s, sess, guest)
        microvm_guest(t, s, sess, guest)
        t.eq(d.stop(), 0, 'SIGTERM stops vesseld cleanly')
    except Exception as exc:
        import traceback
        t.ok(False, 'test raised %s' % type(exc).__name__, traceback.format_exc())
    finally:
        d.kill_all()
        d.cleanup()
    return t.done()


def outer(argv):
    if os.geteuid() != 0:
        print('1..0 # SKIP needs root to make a network namespace')
        return 0
    guest = argv[2]
    r = subprocess.run(['sh', os.path.join(TOP, 'tests', 'guest', 'build-guest.sh'), guest],
                       capture_output=True, text=True)
    if r.returncode != 0:
        print('not ok 1 - build the test guest\n1..1')
        return 1
    rc = run_in_netns('vessel-agent', [sys.executable, os.path.abspath(__file__), '--inner', argv[1], guest])
    if rc is None:
        print('1..0 # SKIP no network namespace support')
        return 0
    return rc


if __name__ == '__main__':
    if len(sys.argv) > 1 and sys.argv[1] == '--inner':
        sys.exit(inner(sys.argv[2], sys.argv[3]))
    sys.exit(outer(sys.argv))
