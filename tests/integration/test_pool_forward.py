"""tests/integration/test_pool_forward.py - one API across two hosts.

A 3-member etcd cluster on the test's own loopback address
(test_pool_store.py's Etcd), vesseld A (--store etcd, the pool's first host:
it makes DATA/ptoken) and vesseld B (--pool-member, given A's ptoken in its
data directory, as pool.join will), both with the sim backend and an HTTPS
listener that is their host.address.
Every call below goes to A; checks:
  - a VDI created on B's local SR through A is made by B (forward by SR);
  - VM.start_on(vm, B) through A leaves the VM resident on B, and B's own
    backend runs it (VM.pause on B with a slave session, which is never
    forwarded, works on it);
  - an error raised on B (VM_BAD_POWER_STATE) reaches A's caller unchanged;
  - a JSON-RPC caller of A gets B's answers and errors in JSON-RPC, typed
    as local answers;
  - Async.VM.snapshot of B's VM through A: A's task ends with B's result,
    resident_on B; a call B receives with a slave session and a task-id
    header reports its progress into that task;
  - task.cancel through A of that kind of task ends B's wait for a guest;
  - VM.hard_shutdown through A is forwarded to B (B's log has it, A's not);
  - VM.clone of the halted VM, whose disk is on B's SR, is made by B;
  - GET /export_raw_vdi of B's VDI on A answers 302 to B, which serves it;
  - VM.start without a host picks B when A lacks the memory (placement),
    and VM.get_possible_hosts and host.compute_free_memory agree;
  - session.slave_login refuses a wrong pool secret;
  - B killed: a call for B's VM through A answers CANNOT_CONTACT_HOST [B]
    (HOST_OFFLINE [B] once liveness marks B dead).
Every process started here is killed by its pid at the end.

usage: test_pool_forward.py VESSELD
"""
import http.client
import json
import os
import shutil
import ssl
import sys
import tempfile
import threading
import xmlrpc.client

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Tap, Vesseld, error, value, wait_for  # noqa: E402
from test_pool_store import ETCD, Etcd, inventory_uuid, pool_https, wait_task  # noqa: E402

MIB = 1024 * 1024


def log_text(v):
    with open(v.log_path) as f:
        return f.read()


def power_logged(v, uuid, op):
    return ('vm=%s op=%s' % (uuid, op)) in log_text(v)


def raw_call(v, method, params, headers):
    """An XML-RPC call with extra HTTP headers (xapi's task-id)."""
    c = http.client.HTTPConnection('127.0.0.1', v.port, timeout=60)
    c.request('POST', '/', body=xmlrpc.client.dumps(tuple(params), method),
              headers=dict({'Content-Type': 'text/xml'}, **headers))
    data = c.getresponse().read()
    c.close()
    return xmlrpc.client.loads(data)[0][0]


def set_memory(api, s, vm, size):
    value(api.VM.set_memory_limits(s, vm, str(size), str(size), str(size), str(size)))


def new_vm(api, s, name, memory):
    tmpl = value(api.VM.get_by_name_label(s, 'Other install media'))[0]
    vm = value(api.VM.clone(s, tmpl, name))
    value(api.VM.set_is_a_template(s, vm, False))
    set_memory(api, s, vm, memory)
    return vm


def local_sr(api, s, host):
    for pbd in value(api.PBD.get_all_records(s)).values():
        sr = value(api.SR.get_record(s, pbd['SR']))
        if pbd['host'] == host and sr['other_config'].get('vessel-local') == 'true':
            return pbd['SR']
    return None


def main():
    binary = sys.argv[1]
    t = Tap()
    if not os.access(ETCD, os.X_OK):
        print('1..0 # SKIP %s is not installed' % ETCD)
        return 0
    root = tempfile.mkdtemp(prefix='vessel-it-etcd-')
    etcd = Etcd(root)
    a = b = None
    try:
        for i in range(3):
            etcd.start(i)
        t.ok(wait_for(etcd.writable, 30), 'a 3-member etcd cluster answers')
        common = ['--backend', 'sim', '--store', 'etcd', '--etcd-endpoints', etcd.endpoints(),
                  '--etcd-prefix', '/vessel/it-fwd-%d' % os.getpid(), '--metrics-period', '3600']

        # A's view of B's commits lags by 60 ms (a loaded host, a far etcd):
        # what A answers after a forwarded call must not depend on the lag
        a = Vesseld(binary, extra=common + pool_https(0)[1],
                    env={'VESSEL_TEST_WATCH_DELAY_MS': '60'}).start()
        ptoken = os.path.join(a.dir, 'data', 'ptoken')
        st = os.stat(ptoken)
        with open(ptoken) as f:
            secret = f.read().strip()
        t.ok(len(secret) == 64 and all(c in '0123456789abcdef' for c in secret) and
             st.st_mode & 0o777 == 0o600, 'the first host made DATA/ptoken: 32 bytes hex, 0600')
        b_addr, b_https = pool_https(1)
        b = Vesseld(binary, extra=common + b_https + ['--pool-member'])
        os.makedirs(os.path.join(b.dir, 'data'), mode=0o700)
        shutil.copy(ptoken, os.path.join(b.dir, 'data', 'ptoken'))
        b.start()
        A = a.proxy()
        sa = a.login()
        hosts = {h['uuid']: ref for ref, h in value(A.host.get_all_records(sa)).items()}
        ha, hb = hosts[inventory_uuid(a)], hosts[inventory_uuid(b)]

        # ---- slave_login: the pool secret, nothing else
        t.eq(error(A.session.slave_login(hb, '0' * 64)),
             ['SESSION_AUTHENTICATION_FAILED', hb, 'Pool credentials invalid'],
             'session.slave_login with a wrong secret is refused')
        slave = value(b.proxy().session.slave_login(ha, secret))
        t.ok(slave.startswith('OpaqueRef:'), 'session.slave_login with the pool secret')

        # ---- storage: a disk on B's local SR, made through A
        sr_b = local_sr(A, sa, hb)
        vdi = value(A.VDI.create(sa, {
            'SR': sr_b, 'virtual_size': str(64 * MIB), 'type': 'user', 'name_label': 'disk-b',
            'sharable': False, 'read_only': False, 'other_config': {}}))
        vdi_uuid = value(A.VDI.get_uuid(sa, vdi))
        sr_path = value(A.PBD.get_device_config(sa, value(A.SR.get_PBDs(sa, sr_b))[0]))
        files = os.listdir(sr_path['path']) if 'path' in sr_path else []
        t.ok(any(vdi_uuid in f for f in files) and sr_path['path'].startswith(b.dir),
             'VDI.create on B\'s local SR through A made its file in B\'s directory',
             '%s: %s' % (sr_path, files))

        # ---- VM.start_on(vm, B) through A
        vm = new_vm(A, sa, 'on-b', 256 * MIB)
        uuid = value(A.VM.get_uuid(sa, vm))
        # the sim's guest that ignores its power button (docs/guests.md)
        value(A.VM.add_to_other_config(sa, vm, 'sim-ignore-shutdown', 'true'))
        value(A.VBD.create(sa, {
            'VM': vm, 'VDI': vdi, 'userdevice': '0', 'bootable': True, 'mode': 'RW',
            'type': 'Disk', 'empty': False, 'other_config': {}, 'qos_algorithm_type': '',
            'qos_algorithm_params': {}}))
        r = A.VM.start_on(sa, vm, hb, False, False)
        t.ok(value(r) == '', 'VM.start_on(vm, B) through A succeeds', r)
        t.eq((value(A.VM.get_power_state(sa, vm)), value(A.VM.get_resident_on(sa, vm))),
             ('Running', hb), 'the VM is running, resident on B')
        t.ok(power_logged(b, uuid, 'start_on') and not power_logged(a, uuid, 'start_on'),
             'B started it, A did not')
        # a slave session's calls are never forwarded: this pause acts on B's
        # own backend, and fails there unless B runs the guest
        Bs = b.proxy()
        r = Bs.VM.pause(slave, vm)
        t.ok(error(r) is None and value(Bs.VM.get_power_state(slave, vm)) == 'Paused',
             'B\'s own backend runs it: VM.pause with B\'s local slave session works', r)
        value(Bs.VM.unpause(slave, vm))

        # ---- B's errors reach A's caller unchanged
        t.eq(error(A.VM.start_on(sa, vm, hb, False, False)),
             ['VM_BAD_POWER_STATE', vm, 'halted', 'running'],
             'VM.start_on of a running VM: B\'s VM_BAD_POWER_STATE, unchanged')
        t.eq(error(A.VM.set_VCPUs_number_live(sa, vm, '0')),
             error(Bs.VM.set_VCPUs_number_live(slave, vm, '0')),
             'a forwarded live change fails as it does on B itself')

        # ---- a JSON-RPC caller gets B's answer in its own codec, typed as a
        # local answer (the hosts speak XML-RPC between them)
        def jget(method, params):
            st, _, body = a.jsonrpc(method, params)
            return json.loads(body)
        here, there = jget('host.get_servertime', [sa, ha]), jget('host.get_servertime', [sa, hb])
        t.ok(type(there.get('result')) is type(here.get('result')) and
             len(there['result']) == len(here['result']),
             'JSON-RPC host.get_servertime of B through A: the local answer\'s form', (here, there))
        e = jget('VM.set_VCPUs_number_live', [sa, vm, 0]).get('error', {})
        t.eq([e.get('message')] + e.get('data', []), error(A.VM.set_VCPUs_number_live(sa, vm, '0')),
             'and B\'s errors as JSON-RPC errors')

        # ---- Async through A: B's result in A's task
        task = value(A.Async.VM.snapshot(sa, vm, 'snap-through-a'))
        status, err = wait_task(sa, A, task)
        result = value(A.task.get_result(sa, task))
        snaps = value(A.VM.get_snapshots(sa, vm))
        t.ok(status == 'success' and len(snaps) == 1 and snaps[0] in result,
             'Async.VM.snapshot through A: A\'s task holds B\'s result', (status, err, result))
        t.eq(value(A.task.get_resident_on(sa, task)), hb, 'the task says it ran on B')
        # the mechanism: a call B receives with a slave session and a task-id
        # header reports into that task, which nobody else touches here
        probe = value(A.task.create(sa, 'progress-probe', ''))
        r = raw_call(b, 'VM.snapshot', [slave, vm, 'snap-probe'], {'task-id': probe})
        # B wrote it; A sees it once the store's watch brought B's commit
        progress = float(wait_for(lambda: float(value(A.task.get_progress(sa, probe))), 20)
                         or 0.0)
        t.ok(r.get('Status') == 'Success' and 0.0 < progress < 1.0,
             'B reports its progress into the caller\'s task (%.2f)' % progress, r)

        # ---- task.cancel through A reaches the operation on B
        task = value(A.Async.VM.clean_shutdown(sa, vm))
        t.ok(wait_for(lambda: task in value(A.VM.get_current_operations(sa, vm)), 30),
             'Async.VM.clean_shutdown through A waits on B for a guest that ignores it')
        value(A.task.cancel(sa, task))
        status, err = wait_task(sa, A, task)
        t.eq((status, err, value(A.VM.get_power_state(sa, vm))),
             ('cancelled', ['TASK_CANCELLED', task], 'Running'),
             'task.cancel through A ends the wait on B; the guest keeps running')

        # ---- hard_shutdown through A runs on B
        r = A.VM.hard_shutdown(sa, vm)
        t.ok(error(r) is None and value(A.VM.get_power_state(sa, vm)) == 'Halted',
             'VM.hard_shutdown through A halts B\'s VM', r)
        t.ok(power_logged(b, uuid, 'hard_shutdown') and not power_logged(a, uuid, 'hard_shutdown'),
             'B shut it down, A did not')
        # read your writes across hosts: A answers a forwarded call only once
        # its own view holds what B changed, so the next call never meets the
        # old state (OTHER_OPERATION_IN_PROGRESS, VM_BAD_POWER_STATE)
        seen = []
        for _ in range(5):
            r1 = A.VM.start_on(sa, vm, hb, False, False)
            s1 = A.VM.get_power_state(sa, vm)
            r2 = A.VM.hard_shutdown(sa, vm)
            s2 = A.VM.get_power_state(sa, vm)
            seen.append((error(r1), value(s1), error(r2), value(s2)))
        t.eq(set(seen), {(None, 'Running', None, 'Halted')},
             'start_on B and hard_shutdown through A, back to back: A\'s view follows each')

        # ---- a halted VM's disk operation goes to its disks' host
        r = A.VM.clone(sa, vm, 'clone-on-b')
        clone_vdis = [value(A.VBD.get_VDI(sa, vbd))
                      for vbd in value(A.VM.get_VBDs(sa, value(r)))] if error(r) is None else []
        t.ok(len(clone_vdis) == 1 and value(A.VDI.get_SR(sa, clone_vdis[0])) == sr_b,
             'VM.clone through A of a halted VM with a disk on B: B clones it', r)

        # ---- transfer routes redirect to the disk's host
        c = http.client.HTTPConnection('127.0.0.1', a.port, timeout=30)
        c.request('GET', '/export_raw_vdi?vdi=%s&format=raw&session_id=%s' % (vdi, sa))
        resp = c.getresponse()
        resp.read()
        location = resp.getheader('Location') or ''
        c.close()
        t.ok(resp.status == 302 and location.startswith('https://%s/export_raw_vdi?'
                                                        % b_addr) and vdi in location,
             'GET /export_raw_vdi of B\'s VDI through A: 302 to B', (resp.status, location))
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        b_host, b_port = b_addr.rsplit(':', 1)
        c = http.client.HTTPSConnection(b_host, int(b_port), timeout=30, context=ctx)
        c.request('GET', location[len('https://' + b_addr):])
        resp = c.getresponse()
        length = resp.getheader('Content-Length')
        resp.read(4096)
        c.close()
        t.ok(resp.status == 200 and length == str(64 * MIB),
             'and B serves it', (resp.status, length))

        # ---- placement: A lacks the memory, B has it
        total = int(value(A.host_metrics.get_memory_total(sa, value(A.host.get_metrics(sa, ha)))))
        avail = int(value(A.host.compute_free_memory(sa, hb)))
        big = (total * 55 // 100) // MIB * MIB
        if avail < big + 256 * MIB:
            t.ok(True, '# SKIP the machine has %d MiB available, the check needs %d'
                 % (avail // MIB, (big + 256 * MIB) // MIB))
        else:
            fill = new_vm(A, sa, 'fills-a', big)
            value(A.VM.start_on(sa, fill, ha, False, False))
            free_a = int(value(A.host.compute_free_memory(sa, ha)))
            t.ok(free_a <= total - big, 'host.compute_free_memory counts A\'s guest (%d MiB left)'
                 % (free_a // MIB))
            wants = new_vm(A, sa, 'wants-room', big)
            t.eq(value(A.VM.get_possible_hosts(sa, wants)), [hb],
                 'VM.get_possible_hosts: only B has the room')
            t.eq(error(A.VM.assert_can_boot_here(sa, wants, ha))[0], 'HOST_NOT_ENOUGH_FREE_MEMORY',
                 'VM.assert_can_boot_here on A: not enough memory')
            r = A.VM.start(sa, wants, False, False)
            t.ok(error(r) is None and value(A.VM.get_resident_on(sa, wants)) == hb,
                 'VM.start without a host runs it on B', r)
            wuuid = value(A.VM.get_uuid(sa, wants))
            t.ok(power_logged(b, wuuid, 'start') and not power_logged(a, wuuid, 'start'),
                 'B started it')
            # two starts at once with room for one: each must not see the
            # memory the other is about to take
            value(A.VM.hard_shutdown(sa, wants))
            also = new_vm(A, sa, 'wants-room-too', big)
            results = {}

            def start(v):
                try:  # a proxy of its own: one connection per thread
                    results[v] = a.proxy().VM.start(sa, v, False, False)
                except Exception as ex:  # noqa: BLE001 - reported by the check
                    results[v] = {'Status': 'Failure', 'ErrorDescription': [repr(ex)]}
            starters = [threading.Thread(target=start, args=(v,)) for v in (wants, also)]
            for th in starters:
                th.start()
            for th in starters:
                th.join(120)
            ran = [v for v in (wants, also) if error(results.get(v, ['no answer'])) is None]
            refused = [error(results.get(v, ['no answer']))[0] for v in (wants, also) if v not in ran]
            t.ok(len(ran) == 1 and value(A.VM.get_resident_on(sa, ran[0])) == hb and
                 refused == ['HOST_NOT_ENOUGH_FREE_MEMORY'],
                 'two VM.start at once, room for one: one runs on B, the other is refused for memory',
                 results)
            for v in ran:
                value(A.VM.hard_shutdown(sa, v))
            # a live migration's destination admits the VM's memory as a start
            # does: the source's check may be overtaken by another start
            as_b = value(A.session.slave_login(hb, secret))
            err = error(A.VM.pool_migrate_receive_begin(as_b, wants, '', ''))
            t.eq(err and err[0], 'HOST_NOT_ENOUGH_FREE_MEMORY',
                 'a migration\'s receive on A, full: refused for memory before anything starts')
            value(A.VM.hard_shutdown(sa, fill))

        # ---- B unreachable
        value(A.VM.start_on(sa, vm, hb, False, False))
        b.kill()
        err = error(A.VM.hard_shutdown(sa, vm))
        t.ok(err in (['CANNOT_CONTACT_HOST', hb], ['HOST_OFFLINE', hb]),
             'B killed: a call for its VM through A answers CANNOT_CONTACT_HOST [B]', err)
        t.eq(value(A.VM.get_power_state(sa, vm)), 'Running', 'and changes nothing')
    except Exception as ex:  # noqa: BLE001 - report, then clean up
        t.ok(False, 'unexpected exception', repr(ex))
        for v in (a, b):
            if v:
                with open(v.log_path) as f:
                    for line in f.read().splitlines()[-15:]:
                        print('#   ' + line)
    finally:
        for v in (a, b):
            if v:
                v.kill_all()
                v.cleanup()
        etcd.stop_all()
        if not os.environ.get('VESSEL_KEEP'):
            shutil.rmtree(root, ignore_errors=True)
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
