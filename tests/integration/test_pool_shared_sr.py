"""tests/integration/test_pool_shared_sr.py - a shared SR across a pool.

A 3-member etcd cluster on the test's own loopback address
(test_pool_store.py's Etcd), vesseld A (--store etcd, the pool's first host) and vesseld B (--pool-member with A's
secret), sim backend, HTTPS listeners that are their host.address; a file SR
in one directory both see (on one machine the hosts simply share it).
Checks:
  - SR.create(B, shared=true) through A: a PBD on each host with the same
    device_config, each plugged (B's made by B, A's plugged by A);
  - a VDI made through A is visible on B and B snapshots, clones, resizes
    and destroys VDIs of it itself (calls with B's slave session are never
    forwarded); with A's PBD unplugged a VDI.create through A runs on B
    (the task says where), and fails nowhere;
  - a VM whose disk is there starts on B (VM.start_on) and on A, and
    VM.get_possible_hosts names both; VDI.snapshot through A of the disk
    B's guest uses runs on B, which pauses its disk server;
  - a second VM with the same disk read-write cannot start on the other
    host while the first runs (VDI_IN_USE [vdi, attach]), nor on the same
    host, and can once the first is halted; the etcd key
    P/vdi-writer/<vdi uuid> names the writing host and goes with the last
    writer; a writer key of another host alone refuses a start;
  - PBD.unplug of B's PBD is not refused because of A's guest;
  - the collector of the SR runs on one host: the etcd key
    P/sr-gc/<sr uuid> names one host, whose log alone says it collects it,
    a VDI.create through the other host runs there, and it folds a chain
    there after a snapshot is destroyed;
  - host C joining gets a PBD of the SR, plugged; pool.eject of C removes
    that PBD and leaves the SR with A's and B's;
  - SR.destroy refuses while PBDs are plugged (SR_HAS_PBD), and after
    PBD.unplug of each (forwarded to its host) removes the SR, its PBDs,
    VDIs and files.
Every process started here is killed by its pid at the end.

usage: test_pool_shared_sr.py VESSELD
"""
import base64
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT_PASSWORD, Tap, Vesseld, error, value, wait_for  # noqa: E402
from test_pool_store import ETCD, Etcd, inventory_uuid, pool_https, wait_task  # noqa: E402

MIB = 1024 * 1024


def log_text(v):
    with open(v.log_path) as f:
        return f.read()


def ready_lines(v):
    return re.findall(r'vesseld\.ready .*http_port=(\d+) .*https_port=(\d+) .*unix=(\S+)',
                      log_text(v))


def wait_restarted(v, before, timeout=60):
    """pool.join/eject restart the same process: take its new ports."""
    if not wait_for(lambda: len(ready_lines(v)) > before, timeout):
        return False
    port, tls_port, unix = ready_lines(v)[-1]
    v.port, v.tls_port, v.unix = int(port), int(tls_port), unix
    return True


def new_vm(api, s, name, vdi):
    tmpl = value(api.VM.get_by_name_label(s, 'Other install media'))[0]
    vm = value(api.VM.clone(s, tmpl, name))
    value(api.VM.set_is_a_template(s, vm, False))
    size = str(128 * MIB)
    value(api.VM.set_memory_limits(s, vm, size, size, size, size))
    value(api.VBD.create(s, {
        'VM': vm, 'VDI': vdi, 'userdevice': '0', 'bootable': True, 'mode': 'RW',
        'type': 'Disk', 'empty': False, 'other_config': {}, 'qos_algorithm_type': '',
        'qos_algorithm_params': {}}))
    return vm


def settled(api, s, vm, state):
    """A forwarded call returns once its host committed; this host sees the
    commit when its watch brings it: wait for that before the next call."""
    return wait_for(lambda: value(api.VM.get_power_state(s, vm)) == state and
                    not value(api.VM.get_current_operations(s, vm)), 20)


def etcd_stall(etcd, seconds):
    """Stops every member of @etcd (SIGSTOP) and, on a thread it returns,
    lets them go on after @seconds."""
    procs = [p for p in etcd.procs if p]
    for p in procs:
        os.kill(p.pid, signal.SIGSTOP)

    def resume():
        time.sleep(seconds)
        for p in procs:
            os.kill(p.pid, signal.SIGCONT)
    th = threading.Thread(target=resume)
    th.start()
    return th


def vdi_args(sr, label, size=16 * MIB):
    return {'SR': sr, 'virtual_size': str(size), 'type': 'user', 'name_label': label,
            'name_description': '', 'sharable': False, 'read_only': False, 'other_config': {}}


def pbds_of(api, s, sr):
    """host -> (PBD ref, record) of @sr's PBDs."""
    out = {}
    for ref in value(api.SR.get_PBDs(s, sr)):
        rec = value(api.PBD.get_record(s, ref))
        out[rec['host']] = (ref, rec)
    return out


def etcd_key(etcd, key):
    """The value of @key, or None."""
    k = base64.b64encode(key.encode()).decode()
    for i in range(etcd.n):
        if etcd.procs[i]:
            try:
                kvs = etcd.call(i, '/v3/kv/range', {'key': k}).get('kvs', [])
                return base64.b64decode(kvs[0]['value']).decode() if kvs else None
            except (OSError, ValueError):
                pass
    return None


def etcd_write(etcd, key, val):
    """Puts @key = @val (None: deletes it), no lease."""
    k = base64.b64encode(key.encode()).decode()
    for i in range(etcd.n):
        if etcd.procs[i]:
            try:
                if val is None:
                    return 'header' in etcd.call(i, '/v3/kv/deleterange', {'key': k})
                v = base64.b64encode(val.encode()).decode()
                return 'header' in etcd.call(i, '/v3/kv/put', {'key': k, 'value': v})
            except (OSError, ValueError):
                pass
    return False


def main():
    binary = sys.argv[1]
    t = Tap()
    if not os.access(ETCD, os.X_OK):
        print('1..0 # SKIP %s is not installed' % ETCD)
        return 0
    root = tempfile.mkdtemp(prefix='vessel-it-shared-')
    shared = os.path.join(root, 'shared-sr')
    etcd = Etcd(root)
    a = b = c = None
    try:
        for i in range(3):
            etcd.start(i)
        t.ok(wait_for(etcd.writable, 30), 'a 3-member etcd cluster answers')
        prefix = '/vessel/it-shared-%d' % os.getpid()
        sim = ['--backend', 'sim', '--metrics-period', '3600', '--storage-gc-period', '1']
        common = sim + ['--store', 'etcd', '--etcd-endpoints', etcd.endpoints(),
                        '--etcd-prefix', prefix]
        a_addr, a_https = pool_https(0)
        a = Vesseld(binary, extra=common + a_https).start()
        ptoken = os.path.join(a.dir, 'data', 'ptoken')
        b = Vesseld(binary, extra=common + pool_https(1)[1] + ['--pool-member'])
        os.makedirs(os.path.join(b.dir, 'data'), mode=0o700)
        shutil.copy(ptoken, os.path.join(b.dir, 'data', 'ptoken'))
        b.start()
        A, B = a.proxy(), b.proxy()
        sa = a.login()
        with open(ptoken) as f:
            secret = f.read().strip()
        hosts = {h['uuid']: ref for ref, h in value(A.host.get_all_records(sa)).items()}
        ha, hb = hosts[inventory_uuid(a)], hosts[inventory_uuid(b)]
        sb = value(B.session.slave_login(hb, secret))  # B's own: never forwarded

        # ---- SR.create(B, shared) through A: a PBD on every host, plugged
        sr = value(A.SR.create(sa, hb, {'path': shared}, '0', 'shared', '', 'file', 'user',
                               True, {}))
        sr_uuid = value(A.SR.get_uuid(sa, sr))
        # B made B's PBD: A sees it once its watch brought it
        wait_for(lambda: len(pbds_of(A, sa, sr)) == 2 and
                 all(p['currently_attached'] for _, p in pbds_of(A, sa, sr).values()), 20)
        pbds = pbds_of(A, sa, sr)
        t.eq(sorted(pbds), sorted([ha, hb]), 'SR.create(shared=true): a PBD on each host')
        t.ok(all(p['currently_attached'] and p['device_config'].get('path') == shared
                 for _, p in pbds.values()),
             'each plugged, with the same device_config:path', pbds)
        t.ok('sr.shared.plug sr=%s host=%s' % (sr, ha) in log_text(b) and
             'plugged=true' in log_text(b), 'B (which made the SR) had A plug its PBD')

        # ---- VDIs: made through A, used on B
        vdi = value(A.VDI.create(sa, vdi_args(sr, 'disk')))
        vdi_uuid = value(A.VDI.get_uuid(sa, vdi))
        t.ok(os.path.exists(os.path.join(shared, vdi_uuid + '.vhd')),
             'VDI.create through A made its file in the shared directory')
        t.ok(wait_for(lambda: B.VDI.get_SR(sb, vdi).get('Value') == sr, 20), 'B sees the VDI')
        snap = B.VDI.snapshot(sb, vdi, {})
        t.ok(error(snap) is None, 'VDI.snapshot on B itself', snap)
        clone = B.VDI.clone(sb, vdi, {})
        t.ok(error(clone) is None, 'VDI.clone on B itself', clone)
        r = B.VDI.resize(sb, value(clone), str(32 * MIB))
        t.ok(error(r) is None and
             wait_for(lambda: int(value(A.VDI.get_virtual_size(sa, value(clone)))) == 32 * MIB,
                      20), 'VDI.resize on B itself, seen by A', r)
        clone_uuid = value(A.VDI.get_uuid(sa, value(clone)))
        r = B.VDI.destroy(sb, value(clone))
        t.ok(error(r) is None and not os.path.exists(os.path.join(shared, clone_uuid + '.vhd')),
             'VDI.destroy on B itself', r)

        # ---- with A's PBD unplugged, A forwards VDI operations to B
        pbd_a, pbd_b = pbds[ha][0], pbds[hb][0]
        value(A.PBD.unplug(sa, pbd_a))
        task = value(A.Async.VDI.create(sa, vdi_args(sr, 'made-on-b')))
        status, err = wait_task(sa, A, task)
        t.ok(status == 'success' and value(A.task.get_resident_on(sa, task)) == hb,
             'A\'s PBD unplugged: Async.VDI.create through A ran on B', (status, err))
        value(A.PBD.plug(sa, pbd_a))
        t.ok(value(A.PBD.get_currently_attached(sa, pbd_a)), 'PBD.plug of A\'s PBD again')

        # ---- a VM on the shared SR starts on either host
        vm1 = new_vm(A, sa, 'agile-1', vdi)
        t.eq(sorted(value(A.VM.get_possible_hosts(sa, vm1))), sorted([ha, hb]),
             'VM.get_possible_hosts names both hosts')
        r = A.VM.start_on(sa, vm1, hb, False, False)
        t.ok(error(r) is None and settled(A, sa, vm1, 'Running') and
             value(A.VM.get_resident_on(sa, vm1)) == hb, 'VM.start_on(B): running on B', r)
        vm1_uuid = value(A.VM.get_uuid(sa, vm1))
        t.ok(('disk.serve vm=%s vdi=%s' % (vm1_uuid, vdi_uuid)) in log_text(b),
             'B serves its disk')
        # a change of the chain of a disk B serves runs on B, which pauses its server
        task = value(A.Async.VDI.snapshot(sa, vdi, {}))
        status, err = wait_task(sa, A, task)
        t.ok(status == 'success' and value(A.task.get_resident_on(sa, task)) == hb and
             ('vdi.snapshot_live vdi=%s servers=1' % vdi_uuid) in log_text(b),
             'VDI.snapshot through A of the disk B serves: made by B, its server paused',
             (status, err))
        value(A.VM.hard_shutdown(sa, vm1))
        settled(A, sa, vm1, 'Halted')
        r = A.VM.start_on(sa, vm1, ha, False, False)
        t.ok(error(r) is None and value(A.VM.get_resident_on(sa, vm1)) == ha,
             'VM.start_on(A): running on A', r)
        writer = '%s/vdi-writer/%s' % (prefix, vdi_uuid)
        t.eq(etcd_key(etcd, writer), inventory_uuid(a),
             'the VDI\'s writer key in etcd names A while A\'s guest writes it')
        # B decides from the records A wrote: wait until its watch brought them
        vbd1 = value(A.VM.get_VBDs(sa, vm1))[0]
        t.ok(wait_for(lambda: value(B.VBD.get_currently_attached(sb, vbd1)) and
                      value(B.VM.get_resident_on(sb, vm1)) == ha, 20),
             'B sees the disk attached on A')

        # ---- one writer per VDI, pool-wide
        vm2 = new_vm(A, sa, 'agile-2', vdi)
        t.eq(error(A.VM.start_on(sa, vm2, hb, False, False)), ['VDI_IN_USE', vdi, 'attach'],
             'a second VM with the disk read-write cannot start on B while A runs the first')
        t.eq(error(A.VM.start_on(sa, vm2, ha, False, False)), ['VDI_IN_USE', vdi, 'attach'],
             'nor on A beside the first')
        t.eq(value(A.VM.get_power_state(sa, vm2)), 'Halted', 'and stays halted')
        r = A.PBD.unplug(sa, pbd_b)
        t.ok(error(r) is None, 'B\'s PBD unplugs although A\'s guest uses the SR', r)
        value(A.PBD.plug(sa, pbd_b))
        t.eq(error(A.PBD.unplug(sa, pbd_a))[:1], ['VDI_IN_USE'],
             'A\'s PBD does not, while A\'s guest uses it')
        value(A.VM.hard_shutdown(sa, vm1))
        settled(A, sa, vm1, 'Halted')
        t.ok(wait_for(lambda: not value(B.VBD.get_currently_attached(sb, vbd1)), 20),
             'B sees the first VM\'s disk detached')
        r = A.VM.start_on(sa, vm2, hb, False, False)
        t.ok(error(r) is None and settled(A, sa, vm2, 'Running') and
             value(A.VM.get_resident_on(sa, vm2)) == hb,
             'once the first VM is halted the second starts on B', r)
        value(A.VM.hard_shutdown(sa, vm2))
        settled(A, sa, vm2, 'Halted')
        t.ok(wait_for(lambda: etcd_key(etcd, writer) is None, 20),
             'the writer key goes when the last writer stops')
        # two hosts starting at once: the second finds the first's writer key
        # before any record says the disk is attached
        etcd_write(etcd, writer, inventory_uuid(b))
        t.eq(error(A.VM.start_on(sa, vm1, ha, False, False)), ['VDI_IN_USE', vdi, 'attach'],
             'a writer key of another host refuses the start (no record says so yet)')
        etcd_write(etcd, writer, None)
        r = A.VM.start_on(sa, vm1, ha, False, False)
        t.ok(error(r) is None, 'and once it is gone the VM starts', r)
        value(A.VM.hard_shutdown(sa, vm1))
        settled(A, sa, vm1, 'Halted')

        # ---- one collector for the SR
        key = '%s/sr-gc/%s' % (prefix, sr_uuid)
        holder = wait_for(lambda: etcd_key(etcd, key), 20)
        uuids = {inventory_uuid(a): a, inventory_uuid(b): b}
        t.ok(holder in uuids, 'the etcd key sr-gc/<sr> names one host (%s)' % holder)
        line = 'gc.shared sr=%s collector=this-host' % sr_uuid
        owner = uuids.get(holder)
        other = b if owner is a else a
        t.ok(owner and wait_for(lambda: line in log_text(owner), 20) and
             line not in log_text(other), 'only that host\'s log says it collects the SR')
        # the SR's operations run on its collector's host (xapi's SR master)
        hosts_by_uuid = {inventory_uuid(a): ha, inventory_uuid(b): hb}
        other_api, other_s = (B, sb) if owner is a else (A, sa)
        task = value(other_api.Async.VDI.create(other_s, vdi_args(sr, 'on-the-collector')))
        status, err = wait_task(other_s, other_api, task)
        t.ok(status == 'success' and
             value(other_api.task.get_resident_on(other_s, task)) == hosts_by_uuid.get(holder),
             'VDI.create through the other host runs on the collector\'s host', (status, err))
        # the same while etcd stalls longer than a request to it may take (a
        # loaded machine): which host runs the call is this host's own view
        # of the collector's key, not an answer from etcd that may not come
        stall = etcd_stall(etcd, 2.5)
        task = value(other_api.Async.VDI.create(other_s, vdi_args(sr, 'during-a-stall')))
        stall.join()
        status, err = wait_task(other_s, other_api, task)
        t.ok(status == 'success' and
             value(other_api.task.get_resident_on(other_s, task)) == hosts_by_uuid.get(holder),
             'and while etcd stalls for 2.5 s too', (status, err))
        # the snapshot destroyed leaves a base with a single child: folded
        folded = r'gc\.(merge|split|coalesce) sr=' + re.escape(shared) + ' '
        before = len(re.findall(folded, log_text(owner))) if owner else 0
        value(A.VDI.destroy(sa, value(snap)))
        t.ok(owner and wait_for(lambda: len(re.findall(folded, log_text(owner))) > before, 30) and
             not re.search(folded, log_text(other)),
             'the collector\'s host folds the chain, the other host does not')

        # ---- C joins: a PBD of the shared SR; ejected: the PBD goes, the SR stays
        c = Vesseld(binary, extra=sim + pool_https(2)[1]).start()
        C = c.proxy()
        sc = c.login()
        n = len(ready_lines(c))
        r = C.pool.join(sc, a_addr, 'root', ROOT_PASSWORD)
        t.ok(error(r) is None and wait_restarted(c, n), 'C joins the pool', r)
        hc = value(A.host.get_by_uuid(sa, inventory_uuid(c)))
        got = wait_for(lambda: hc in pbds_of(A, sa, sr) and
                       pbds_of(A, sa, sr)[hc][1]['currently_attached'], 20)
        pc = pbds_of(A, sa, sr).get(hc)
        t.ok(got and pc[1]['currently_attached'] and
             pc[1]['device_config'].get('path') == shared,
             'C has a PBD of the shared SR, plugged, with its device_config', pc)
        n = len(ready_lines(c))
        r = A.pool.eject(sa, hc)
        t.ok(error(r) is None and wait_restarted(c, n), 'pool.eject of C', r)
        t.eq(sorted(pbds_of(A, sa, sr)), sorted([ha, hb]),
             'C\'s PBD of the shared SR went with it; A\'s and B\'s stay')
        C = c.proxy()
        sc = c.login()
        t.ok(sr_uuid not in [value(C.SR.get_uuid(sc, s)) for s in value(C.SR.get_all(sc))],
             'C on its own does not have the shared SR')

        # ---- SR.destroy: PBDs unplugged first, then everything goes
        t.eq(error(A.SR.destroy(sa, sr)), ['SR_HAS_PBD', sr],
             'SR.destroy refuses while PBDs are plugged')
        for host, (ref, _) in pbds_of(A, sa, sr).items():
            value(A.PBD.unplug(sa, ref))
        wait_for(lambda: not any(p['currently_attached'] for _, p in pbds_of(A, sa, sr).values()),
                 20)
        r = A.SR.destroy(sa, sr)
        t.ok(error(r) is None, 'SR.destroy once every PBD is unplugged', r)
        left = [p for p in value(A.PBD.get_all_records(sa)).values() if p['SR'] == sr]
        t.ok(error(A.SR.get_record(sa, sr)) is not None and not left and
             error(A.VDI.get_record(sa, vdi)) is not None,
             'the SR, its PBDs and VDIs are gone')
        t.ok(not os.path.exists(os.path.join(shared, vdi_uuid + '.vhd')),
             'and its files')
    finally:
        for v in (a, b, c):
            if v:
                v.stop()
                v.kill_all()  # disk servers outlive vesseld by design
        etcd.stop_all()
        if t.failed == 0:
            shutil.rmtree(root, ignore_errors=True)
            for v in (a, b, c):
                if v and v.own_dir:
                    shutil.rmtree(v.dir, ignore_errors=True)
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
