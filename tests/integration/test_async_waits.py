#!/usr/bin/env python3
"""tests/integration/test_async_waits.py - long waits do not block other calls
(issue 11, finding 15).

Guests that ignore the power button (sim VMs with
other_config:sim-ignore-shutdown=true, docs/guests.md) make clean_shutdown
wait its whole timeout. A vm-operator issues more such shutdowns, Async and
synchronous, than the old fixed pool had threads (4) and than vesseld has HTTP
threads (--threads 2); while they all wait, another account's Async.VM.clone
and plain calls must complete within 2 s, and every wait must end with xapi's
VM_SHUTDOWN_TIMEOUT [vm, timeout] once the (shortened) timeout has passed.
Usage: test_async_waits.py BUILD/vesseld
"""
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Tap, Vesseld, add_account, error, value  # noqa: E402

TIMEOUT_S = 6   # --clean-shutdown-timeout: long enough to act while they wait
N_ASYNC = 10    # more than the old pool's 4 threads
N_SYNC = 3      # more than --threads 2


def operator(t, d, s, root):
    """A vm-operator account 'olga', logged in."""
    add_account(d, root, 'olga', 'olga-password', 'vm-operator')
    return value(s.session.login_with_password('olga', 'olga-password', '1.0', 'it'))


def stubborn_vms(s, root, tmpl, n, prefix):
    vms = []
    for i in range(n):
        vm = value(s.VM.clone(root, tmpl, '%s-%d' % (prefix, i)))
        value(s.VM.set_is_a_template(root, vm, False))
        value(s.VM.add_to_other_config(root, vm, 'sim-ignore-shutdown', 'true'))
        value(s.VM.start(root, vm, False, False))
        vms.append(vm)
    return vms


def task_wait(s, sess, task, limit):
    deadline = time.time() + limit
    while time.time() < deadline:
        if value(s.task.get_status(sess, task)) != 'pending':
            break
        time.sleep(0.02)
    return value(s.task.get_record(sess, task))


def main():
    t = Tap()
    d = Vesseld(sys.argv[1], extra=['--backend', 'sim', '--threads', '2',
                                    '--clean-shutdown-timeout', str(TIMEOUT_S)])
    try:
        d.start()
        s = d.proxy()
        root = d.login()
        olga = operator(t, d, s, root)
        vms = value(s.VM.get_all_records(root))
        tmpl = [r for r, v in vms.items() if v['name_label'] == 'Direct kernel boot'][0]
        other = value(s.VM.clone(root, tmpl, 'to-clone'))
        value(s.VM.set_is_a_template(root, other, False))
        waiting = stubborn_vms(s, root, tmpl, N_ASYNC, 'stubborn')
        sync_waiting = stubborn_vms(s, root, tmpl, N_SYNC, 'stubborn-sync')

        # the attack: olga asks every stubborn guest to shut down
        t0 = time.time()
        tasks = [value(getattr(s, 'Async.VM.clean_shutdown')(olga, vm)) for vm in waiting]
        sync_errors = {}

        def sync_shutdown(vm):
            sync_errors[vm] = error(d.proxy().VM.clean_shutdown(olga, vm))
        threads = [threading.Thread(target=sync_shutdown, args=(vm,)) for vm in sync_waiting]
        for th in threads:
            th.start()
        time.sleep(0.5)  # all of them are waiting for their guests now
        pending = [value(s.task.get_status(root, tk)) for tk in tasks]
        t.eq(pending.count('pending'), N_ASYNC, 'all %d clean shutdowns wait' % N_ASYNC)

        # meanwhile another account's calls start at once
        c0 = time.time()
        t.ok(value(s.VM.get_all(root)) is not None, 'a synchronous call is answered')
        sync_s = time.time() - c0
        t.ok(sync_s < 2.0, 'a synchronous call while %d sync waits hold no HTTP thread: %.3f s'
             % (N_SYNC, sync_s))
        c0 = time.time()
        clone_task = value(getattr(s, 'Async.VM.clone')(root, other, 'cloned-meanwhile'))
        rec = task_wait(s, root, clone_task, 2.0)
        clone_s = time.time() - c0
        t.eq(rec['status'], 'success', 'Async.VM.clone completes while they wait')
        t.ok(clone_s < 2.0, 'Async.VM.clone within 2 s: %.3f s' % clone_s)
        t.ok(time.time() - t0 < TIMEOUT_S, 'and before any wait ended')

        # every wait ends with xapi's timeout error, after the timeout
        recs = [task_wait(s, root, tk, TIMEOUT_S + 20) for tk in tasks]
        done_s = time.time() - t0
        t.eq([r['status'] for r in recs], ['failure'] * N_ASYNC, 'every Async wait fails')
        want = [['VM_SHUTDOWN_TIMEOUT', vm, '%d.' % TIMEOUT_S] for vm in waiting]
        t.eq([r['error_info'] for r in recs], want, 'VM_SHUTDOWN_TIMEOUT [vm, timeout]')
        t.ok(done_s >= TIMEOUT_S - 0.5, 'the guests were given the whole timeout: %.1f s' % done_s)
        t.ok(done_s < TIMEOUT_S + 10, 'the waits ran side by side, not one after another: %.1f s'
             % done_s)
        for th in threads:
            th.join(TIMEOUT_S + 20)
        t.eq(sorted(map(tuple, sync_errors.values())),
             sorted(('VM_SHUTDOWN_TIMEOUT', vm, '%d.' % TIMEOUT_S) for vm in sync_waiting),
             'synchronous clean_shutdown: the same error')
        states = {value(s.VM.get_power_state(root, vm)) for vm in waiting + sync_waiting}
        t.eq(states, {'Running'}, 'the guests that ignored it still run')
        t.eq(value(s.VM.get_current_operations(root, waiting[0])), {},
             'no operation left recorded')

        # a clean reboot waits the same way; hard shutdown still works
        task = value(getattr(s, 'Async.VM.clean_reboot')(olga, waiting[0]))
        rec = task_wait(s, root, task, TIMEOUT_S + 20)
        t.eq(rec['error_info'], ['VM_SHUTDOWN_TIMEOUT', waiting[0], '%d.' % TIMEOUT_S],
             'clean_reboot of a guest that ignores it: VM_SHUTDOWN_TIMEOUT')
        t.eq(error(s.VM.hard_shutdown(olga, waiting[0])), None, 'hard_shutdown does not ask')
        t.eq(value(s.VM.get_power_state(root, waiting[0])), 'Halted', 'and halts it')
        # an ordinary guest still shuts down cleanly at once
        plain = value(s.VM.clone(root, tmpl, 'plain'))
        value(s.VM.set_is_a_template(root, plain, False))
        value(s.VM.start(root, plain, False, False))
        c0 = time.time()
        t.eq(error(s.VM.clean_shutdown(olga, plain)), None, 'a willing guest shuts down cleanly')
        t.ok(time.time() - c0 < 2.0, 'without waiting for the timeout')
        t.ok(value(s.VM.get_all(olga)) is not None, 'vesseld keeps serving')
        with open(d.log_path) as f:
            log = f.read()
        t.ok('workers_saturated' not in log, 'the worker pool never hit its cap')
    finally:
        d.stop()
        d.cleanup()
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
