#!/usr/bin/env python3
"""bench/guests/api_bench.py - VM.start through the API vs bare qemu.

Measures, in one run on this machine:
  1. VM.start (sync call) to the guest's first console line and to its
     marker, through vesseld (qemu backend), against a bare
     qemu-system-x86_64 with the very command line vesseld gave that guest
     (bare_qemu.py: -sandbox, VGA+VNC, pvpanic, the agent's port, the
     balloon, the console on its socket), alternating, median of REPS; and
     the median time of each step of VM.start from vesseld's debug log;
  2. 10 guests started at once (Async.VM.start) until all print the marker;
  3. vesseld's RSS with 0 and with 10 running guests: memory per guest.
Usage: api_bench.py BUILD_DIR [REPS]
"""
import os
import select
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'tests', 'integration'))
from harness import Vesseld, value  # noqa: E402
from bare_qemu import Bare, peer_argv, vesseld_argv  # noqa: E402

MARKER = b'VESSEL-GUEST-UP'


def rss_kib(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return 0


def bare(argv):
    """Seconds to the first byte and to the marker of a bare qemu with the
    command line vesseld gave the guest (bare_qemu.py says what differs)."""
    b = Bare(argv)
    first = marker = None
    try:
        b.start()
        con = b.connect_console()
        out = b''
        while marker is None and time.monotonic() - b.t0 < 60:
            r, _, _ = select.select([con], [], [], 1)
            if not r:
                continue
            chunk = con.recv(4096)
            if not chunk:
                break
            if first is None:
                first = time.monotonic() - b.t0
            out += chunk
            if MARKER in out:
                marker = time.monotonic() - b.t0
    finally:
        b.close()
    return first, marker


def console(d, uuid):
    try:
        with open(os.path.join(d.dir, 'data', 'console', uuid + '.log'), 'rb') as f:
            return f.read()
    except OSError:
        return b''


def make_vm(s, sess, guest, name):
    tmpl = [r for r, v in value(s.VM.get_all_records(sess)).items()
            if v['name_label'] == 'Direct kernel boot'][0]
    vm = value(s.VM.clone(sess, tmpl, name))
    value(s.VM.set_is_a_template(sess, vm, False))
    value(s.VM.set_PV_kernel(sess, vm, os.path.join(guest, 'vmlinux')))
    value(s.VM.set_PV_ramdisk(sess, vm, os.path.join(guest, 'initramfs.cpio')))
    value(s.VM.set_PV_args(sess, vm, 'console=ttyS0 quiet'))
    value(s.VM.add_to_platform(sess, vm, 'accel', 'tcg'))
    return vm, value(s.VM.get_uuid(sess, vm))


def through_api(d, s, sess, vm, uuid, want_argv=False):
    t0 = time.monotonic()
    value(s.VM.start(sess, vm, False, False))
    argv = vesseld_argv(d, uuid)[0] if want_argv else None
    first = marker = None
    while marker is None and time.monotonic() - t0 < 60:
        out = console(d, uuid)
        if out and first is None:
            first = time.monotonic() - t0
        if MARKER in out:
            marker = time.monotonic() - t0
        time.sleep(0.005)
    value(s.VM.hard_shutdown(sess, vm))
    return (first, marker, argv) if want_argv else (first, marker)


def steps_since(d, offset, op):
    """The median time (ms) of each step of the VM.@op calls logged after
    @offset: vesseld's debug lines vm.power_steps (the call: begin, work,
    end), and for a start vm.start_steps, domains.start_steps and
    xenops.start_steps (the work: devices, qemu's spawn, QMP, cont, record),
    for a stop vm.stop_steps and domains.stop_steps (the domain gone, its
    disk servers gone, the records)."""
    events = ['vm.power_steps']
    if op == 'start':
        events += ['vm.start_steps', 'domains.start_steps', 'xenops.start_steps']
    else:
        events += ['vm.stop_steps', 'domains.stop_steps', 'xenops.destroy_steps',
                   'xenops.exit_steps']
    rows = {}
    with open(d.log_path) as f:
        f.seek(offset)
        for line in f:
            for ev in events:
                if ' %s ' % ev not in line:
                    continue
                fields = dict(kv.partition('=')[::2] for kv in line.split(' %s ' % ev, 1)[1].split())
                if ev == 'vm.power_steps' and fields.get('op') != op:
                    continue
                for k, v in fields.items():
                    if k.endswith('_ms'):
                        rows.setdefault(k[:-3], []).append(float(v))
    return {k: statistics.median(v) for k, v in rows.items()}


def main():
    build = os.path.abspath(sys.argv[1])
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    guest = os.path.join(build, 'bench-guest')
    subprocess.run(['sh', os.path.join(HERE, '..', '..', 'tests', 'guest', 'build-guest.sh'), guest],
                   check=True, capture_output=True)
    d = Vesseld(os.path.join(build, 'vesseld'), extra=['--backend', 'qemu', '--guest-kernel-dir', guest,
                                                           '--log-level', 'debug'])
    try:
        d.start()
        s = d.proxy()
        sess = d.login()
        vm, uuid = make_vm(s, sess, guest, 'bench')
        # the bare peer's command line: that of vesseld's qemu for this VM
        *_, argv = through_api(d, s, sess, vm, uuid, want_argv=True)
        argv = peer_argv(argv, os.path.join(guest, 'vmlinux'), os.path.join(guest, 'initramfs.cpio'))
        with open(d.log_path, 'a'):
            pass
        log_mark = os.path.getsize(d.log_path)
        api, raw = [], []
        for _ in range(reps):
            raw.append(bare(argv))
            with open(os.path.join(d.dir, 'data', 'console', uuid + '.log'), 'wb'):
                pass  # start each round with an empty log
            api.append(through_api(d, s, sess, vm, uuid))
        med = lambda xs, i: statistics.median(x[i] for x in xs if x[i] is not None)  # noqa: E731
        print('guest start (default machine: pc), median of %d (s)   bare qemu   through VM.start   ratio'
              % reps)
        for i, what in ((0, 'first console byte'), (1, 'guest marker')):
            b, a = med(raw, i), med(api, i)
            print('  %-28s %9.3f   %16.3f   %5.2f' % (what, b, a, a / b))
        steps = steps_since(d, log_mark, 'start')
        if steps:
            print('  VM.start steps, median ms: ' + ', '.join('%s %.2f' % kv for kv in steps.items()))
        rss0 = rss_kib(d.proc.pid)
        vms = [make_vm(s, sess, guest, 'bench-%d' % i) for i in range(10)]
        t0 = time.monotonic()
        tasks = [value(getattr(s, 'Async.VM.start')(sess, v, False, False)) for v, _ in vms]
        while any(MARKER not in console(d, u) for _, u in vms) and time.monotonic() - t0 < 180:
            time.sleep(0.05)
        all_up = time.monotonic() - t0
        failed = [t for t in tasks if value(s.task.get_status(sess, t)) != 'success']
        rss10 = rss_kib(d.proc.pid)
        print('10 guests started at once (Async.VM.start): all markers after %.2f s%s'
              % (all_up, ' (%d tasks failed)' % len(failed) if failed else ''))
        print('vesseld RSS: %.1f MiB idle, %.1f MiB with 10 guests: %.0f KiB per running guest'
              % (rss0 / 1024, rss10 / 1024, (rss10 - rss0) / 10))
        for v, _ in vms:
            s.VM.hard_shutdown(sess, v)
    finally:
        d.kill_all()
        d.cleanup()


if __name__ == '__main__':
    main()
