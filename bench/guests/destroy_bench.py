#!/usr/bin/env python3
"""bench/guests/destroy_bench.py - VM.hard_shutdown through the API vs a bare
kill -9 of the same qemu.

Measures, in one run on this machine, for running guests of the default
template (pc, the test guest):
  1. one guest: VM.hard_shutdown (sync call) until its qemu has exited and
     its disk servers and taps are gone, against kill -9 + waitpid of a bare
     qemu with the very command line vesseld gave the guest (bare_qemu.py),
     alternating, median of REPS;
  2. 30 guests at once: 30 clients each calling VM.hard_shutdown, until all
     are gone, against kill -9 of 30 bare qemus and their reaping.
Usage: destroy_bench.py BUILD_DIR [REPS] [N_AT_ONCE]

vesseld's qemu is detached (it outlives vesseld), so its reaper is init, not
vesseld: its exit is taken when its pidfd fires (it is a zombie then, holding
no memory, device or socket). Waiting for init's waitpid would measure init:
this machine's init reaps orphans about every 2 s.
"""
import glob
import os
import select
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'tests', 'integration'))
sys.path.insert(0, HERE)
from harness import Vesseld, value  # noqa: E402
from bare_qemu import Bare, peer_argv, vesseld_argv  # noqa: E402
from api_bench import make_vm, steps_since  # noqa: E402


# how long a guest runs before it is destroyed, alike for both peers
RUN_S = 2.0


def exited(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rpartition(')')[2].split()[0] in ('Z', 'X')
    except OSError:
        return True


def leftovers(d, uuid, pid, domid):
    """What of the domain is still there: its qemu (not yet exited), its
    disk servers' files, its taps."""
    left = []
    if not exited(pid):
        left.append('qemu')
    if glob.glob(os.path.join(d.dir, 'data', 'run', 'disks', uuid + '.*')):
        left.append('disk servers')
    if glob.glob('/sys/class/net/vif%d.*' % domid):
        left.append('taps')
    return left


def wait_gone(d, doms, timeout=30):
    """Waits until nothing of @doms [(uuid, pid, domid)] is left; exits are
    seen on pidfds, the rest polled at 0.2 ms."""
    fds = []
    for _, pid, _ in doms:
        try:
            fds.append(os.pidfd_open(pid))
        except OSError:
            pass  # already reaped
    deadline = time.monotonic() + timeout
    while fds and time.monotonic() < deadline:
        r, _, _ = select.select(fds, [], [], 1)
        for fd in r:
            os.close(fd)
            fds.remove(fd)
    while any(leftovers(d, *x) for x in doms) and time.monotonic() < deadline:
        time.sleep(0.0002)
    return time.monotonic()


def domid_of(s, sess, vm):
    return int(value(s.VM.get_domid(sess, vm)))


def api_destroy(d, vms):
    """@vms [(proxy, session, vm, uuid)], all running: seconds from the
    hard_shutdown calls to all gone, and to the last reply."""
    doms = []
    for s, sess, vm, uuid in vms:
        _, pid = vesseld_argv(d, uuid)
        doms.append((uuid, pid, domid_of(s, sess, vm)))
    errors = []

    def one(s, sess, vm):
        r = s.VM.hard_shutdown(sess, vm)
        if r['Status'] != 'Success':
            errors.append(r)

    threads = [threading.Thread(target=one, args=(s, sess, vm)) for s, sess, vm, _ in vms]
    t0 = time.monotonic()
    if len(threads) == 1:
        one(*vms[0][:3])
    else:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    t_reply = time.monotonic()
    t1 = wait_gone(d, doms)
    if errors:
        raise RuntimeError('hard_shutdown failed: %r' % errors[0])
    return t1 - t0, t_reply - t0


def bare_destroy(argv, n):
    peers = [Bare(argv) for _ in range(n)]
    try:
        for b in peers:
            b.start()
        for b in peers:
            b.connect_console()
        time.sleep(RUN_S)
        t0 = time.monotonic()
        for b in peers:
            b.proc.kill()
        for b in peers:
            b.proc.wait()
        return time.monotonic() - t0
    finally:
        for b in peers:
            b.close()


def main():
    build = os.path.abspath(sys.argv[1])
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    n_many = int(sys.argv[3]) if len(sys.argv) > 3 else 30
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
        value(s.VM.start(sess, vm, False, False))
        argv = peer_argv(vesseld_argv(d, uuid)[0], os.path.join(guest, 'vmlinux'),
                         os.path.join(guest, 'initramfs.cpio'))
        value(s.VM.hard_shutdown(sess, vm))
        log_mark = os.path.getsize(d.log_path)
        api, raw = [], []
        for _ in range(reps):
            raw.append(bare_destroy(argv, 1))
            value(s.VM.start(sess, vm, False, False))
            time.sleep(RUN_S)
            api.append(api_destroy(d, [(s, sess, vm, uuid)]))
        b, a = statistics.median(raw), statistics.median(x[0] for x in api)
        reply = statistics.median(x[1] for x in api)
        print('guest destroy (default machine: pc), median of %d (ms)   bare kill -9   VM.hard_shutdown   ratio'
              % reps)
        print('  %-43s %12.1f   %16.1f   %5.2f' % ('1 guest: to qemu exited, taps and disks gone',
                                                   b * 1e3, a * 1e3, a / b))
        print('  %-43s %12s   %16.1f' % ('  of which to the reply', '', reply * 1e3))
        steps = steps_since(d, log_mark, 'hard_shutdown')
        if steps:
            print('  VM.hard_shutdown steps, median ms: ' +
                  ', '.join('%s %.2f' % kv for kv in steps.items()))
        many = []
        for i in range(n_many):
            p = d.proxy()
            many.append((p, sess) + make_vm(p, sess, guest, 'bench-%d' % i))
        tasks = [value(getattr(s, 'Async.VM.start')(sess, v, False, False)) for _, _, v, _ in many]
        deadline = time.monotonic() + 300
        while (any(value(s.task.get_status(sess, t)) == 'pending' for t in tasks) and
               time.monotonic() < deadline):
            time.sleep(0.1)
        time.sleep(RUN_S)
        log_mark = os.path.getsize(d.log_path)
        a, reply = api_destroy(d, many)
        b = bare_destroy(argv, n_many)
        print('  %-43s %12.1f   %16.1f   %5.2f' % ('%d guests at once' % n_many, b * 1e3, a * 1e3,
                                                   a / b))
        print('  %-43s %12s   %16.1f' % ('  of which to the last reply', '', reply * 1e3))
        steps = steps_since(d, log_mark, 'hard_shutdown')
        if steps:
            print('  VM.hard_shutdown steps, median ms: ' +
                  ', '.join('%s %.2f' % kv for kv in steps.items()))
    finally:
        d.kill_all()
        d.cleanup()


if __name__ == '__main__':
    main()
