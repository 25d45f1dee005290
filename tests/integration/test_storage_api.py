#!/usr/bin/env python3
"""tests/integration/test_storage_api.py - SR, PBD, VDI, VBD and VM.provision
driven over XML-RPC against a real vesseld, with the files checked on disk.

Data is written into VHDs with qemu-io and read back with qemu-img (a VHD
reader nobody on the team wrote); every VHD left behind must pass `vhd check`.
Usage: test_storage_api.py BUILD/vesseld BUILD/vhd
"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import error, test_main, value, wait_for  # noqa: E402

MiB = 1024 * 1024
NULL = 'OpaqueRef:NULL'


def vhd_check(vhd_tool, path):
    r = subprocess.run([vhd_tool, 'check', path], capture_output=True, text=True)
    return r.returncode == 0, r.stdout + r.stderr


VHD_TOOL = None


def chain_write(path, pattern, off, length):
    """Writes through `vhd serve` (qemu cannot write differencing VHDs) with qemu-io."""
    sock = path + '.sock'
    if os.path.exists(sock):
        os.unlink(sock)
    srv = subprocess.Popen([VHD_TOOL, 'serve', '--socket', sock, path],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        r = subprocess.run(['qemu-io', '-f', 'raw', '-c',
                            'write -P 0x%02x %d %d' % (pattern, off, length),
                            'nbd+unix:///?socket=' + sock], capture_output=True, text=True)
        return r.returncode == 0, r.stdout + r.stderr
    finally:
        srv.terminate()
        srv.wait(10)
        if os.path.exists(sock):
            os.unlink(sock)


def chain_raw(path, out):
    """The whole virtual disk of the chain at @path, read by `vhd convert`."""
    if os.path.exists(out):
        os.unlink(out)
    r = subprocess.run([VHD_TOOL, 'convert', '--to', 'raw', path, out], capture_output=True,
                       text=True)
    if r.returncode != 0:
        raise AssertionError('vhd convert %s: %s' % (path, r.stderr))
    with open(out, 'rb') as f:
        return f.read()


def qemu_raw(path, out):
    """A parentless VHD's disk as qemu-img reads it (an independent reader)."""
    if os.path.exists(out):
        os.unlink(out)
    r = subprocess.run(['qemu-img', 'convert', '-f', 'vpc', '-O', 'raw', path, out],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError('qemu-img convert %s: %s' % (path, r.stderr))
    with open(out, 'rb') as f:
        return f.read()


def wait_task(s, sess, task, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        rec = value(s.task.get_record(sess, task))
        if rec['status'] != 'pending':
            return rec
        time.sleep(0.05)
    raise AssertionError('task did not finish')


def vdi_args(sr, size, name='disk'):
    return {'name_label': name, 'name_description': '', 'SR': sr, 'virtual_size': str(size),
            'type': 'user', 'sharable': False, 'read_only': False, 'other_config': {}}


def vbd_args(vm, vdi, userdevice, type_='Disk', mode='RW', empty=False):
    return {'VM': vm, 'VDI': vdi, 'userdevice': userdevice, 'bootable': False, 'mode': mode,
            'type': type_, 'unpluggable': True, 'empty': empty, 'other_config': {},
            'qos_algorithm_type': '', 'qos_algorithm_params': {}}


def sr_basics(t, d, s, sess, host, tmp):
    types = value(s.SR.get_supported_types(sess))
    t.ok('ext' in types and 'file' in types, 'SR.get_supported_types names ext and file', types)
    e = error(s.SR.create(sess, host, {'path': tmp + '/x'}, '0', 'x', '', 'lvm', 'user', False, {}))
    t.eq(e, ['SR_UNKNOWN_DRIVER', 'lvm'], 'SR.create of an unknown type: SR_UNKNOWN_DRIVER [type]')
    path = os.path.join(tmp, 'sr1')
    sr = value(s.SR.create(sess, host, {'path': path}, '0', 'it-sr', 'd', 'ext', 'user', False, {}))
    rec = value(s.SR.get_record(sess, sr))
    t.ok(os.path.isdir(path), 'SR.create makes the directory')
    t.eq(len(rec['PBDs']), 1, 'SR.create makes one PBD')
    pbd = value(s.PBD.get_record(sess, rec['PBDs'][0]))
    t.ok(pbd['currently_attached'] and pbd['host'] == host and
         pbd['device_config'].get('path') == path, 'the PBD is plugged, on this host, with the path')
    t.ok(int(rec['physical_size']) > 0 and int(rec['physical_utilisation']) > 0,
         'physical_size and physical_utilisation are set', rec)
    t.ok('vdi_create' in rec['allowed_operations'] and 'scan' in rec['allowed_operations'],
         'allowed_operations of a plugged SR', rec['allowed_operations'])
    value(s.SR.set_name_label(sess, sr, 'renamed-sr'))
    value(s.SR.set_name_description(sess, sr, 'descr'))
    rec = value(s.SR.get_record(sess, sr))
    t.eq((rec['name_label'], rec['name_description']), ('renamed-sr', 'descr'),
         'SR.set_name_label / set_name_description')
    return sr, path


def vdi_lifecycle(t, d, s, sess, sr, path, vhd_tool, tmp):
    vdi = value(s.VDI.create(sess, vdi_args(sr, 10 * MiB + 1)))
    rec = value(s.VDI.get_record(sess, vdi))
    f = os.path.join(path, rec['uuid'] + '.vhd')
    t.ok(os.path.exists(f), 'VDI.create makes <uuid>.vhd')
    t.eq(rec['virtual_size'], str(12 * MiB), 'virtual_size rounded up to whole 2 MiB blocks')
    t.eq(rec['sm_config'].get('vdi_type'), 'vhd', 'sm_config:vdi_type=vhd')
    t.ok(vdi in value(s.SR.get_VDIs(sess, sr)), 'SR.VDIs lists it')
    ok, out = vhd_check(vhd_tool, f)
    t.ok(ok, 'vhd check passes on the new VDI', out)
    e = error(s.VDI.create(sess, vdi_args(sr, 1 << 60)))
    t.ok(e and e[0] == 'SR_FULL' and len(e) == 3, 'an absurd size is SR_FULL [requested, maximum]', e)
    value(s.VDI.set_name_label(sess, vdi, 'disk-a'))
    value(s.VDI.set_name_description(sess, vdi, 'first disk'))
    value(s.VDI.set_read_only(sess, vdi, True))
    value(s.VDI.set_sharable(sess, vdi, True))
    rec = value(s.VDI.get_record(sess, vdi))
    t.eq((rec['name_label'], rec['name_description'], rec['read_only'], rec['sharable']),
         ('disk-a', 'first disk', True, True), 'VDI.set_name_label/description/read_only/sharable')
    value(s.VDI.set_read_only(sess, vdi, False))
    value(s.VDI.set_sharable(sess, vdi, False))
    gone = value(s.VDI.create(sess, vdi_args(sr, 4 * MiB)))
    gf = os.path.join(path, value(s.VDI.get_uuid(sess, gone)) + '.vhd')
    value(s.VDI.destroy(sess, gone))
    t.ok(not os.path.exists(gf), 'VDI.destroy removes the file')
    t.eq(error(s.VDI.get_record(sess, gone))[0], 'HANDLE_INVALID', 'VDI.destroy removes the record')
    return vdi, f


def snapshots(t, d, s, sess, sr, path, vdi, f, vhd_tool, tmp):
    ok, out = chain_write(f, 0xab, 0, MiB)
    t.ok(ok, 'qemu-io writes into the VDI through vhd serve', out)
    t.ok(qemu_raw(f, os.path.join(tmp, 'q.raw'))[:MiB] == b'\xab' * MiB,
         'qemu-img reads the data of the (parentless) VDI')
    before = chain_raw(f, os.path.join(tmp, 'before.raw'))
    task = value(getattr(s, 'Async.VDI.snapshot')(sess, vdi, {}))
    rec = wait_task(s, sess, task)
    t.ok(rec['status'] == 'success', 'Async.VDI.snapshot succeeds', rec)
    snap = rec['result'].replace('<value>', '').replace('</value>', '')
    srec = value(s.VDI.get_record(sess, snap))
    vrec = value(s.VDI.get_record(sess, vdi))
    t.ok(srec['is_a_snapshot'] and srec['snapshot_of'] == vdi and
         srec['snapshot_time'] != '19700101T00:00:00Z', 'is_a_snapshot, snapshot_of, snapshot_time', srec)
    t.ok(snap in vrec['snapshots'], 'VDI.snapshots of the source lists it')
    base = srec['sm_config'].get('vhd-parent')
    t.ok(base and vrec['sm_config'].get('vhd-parent') == base,
         'source and snapshot share the hidden base (sm_config:vhd-parent)', (base, vrec['sm_config']))
    t.ok(os.path.exists(os.path.join(path, '%s.base.vhd' % base)), 'the base file exists')
    sf = os.path.join(path, srec['uuid'] + '.vhd')
    ok, out = chain_write(f, 0xcd, 512 * 1024, MiB)
    t.ok(ok, 'the leaf keeps changing after the snapshot', out)
    t.ok(chain_raw(sf, os.path.join(tmp, 'snap.raw')) == before, 'the snapshot keeps its data exact')
    after = chain_raw(f, os.path.join(tmp, 'after.raw'))
    t.ok(after != before and after[512 * 1024:512 * 1024 + 16] == b'\xcd' * 16,
         'the VDI reads its new data')
    snap2 = value(s.VDI.snapshot(sess, vdi, {}))
    s2f = os.path.join(path, value(s.VDI.get_uuid(sess, snap2)) + '.vhd')
    ok, out = chain_write(f, 0xef, 0, 4096)
    t.ok(chain_raw(s2f, os.path.join(tmp, 's2.raw')) == after and
         chain_raw(sf, os.path.join(tmp, 'snap.raw')) == before,
         'a chain of snapshots: each keeps its own data')
    clone = value(s.VDI.clone(sess, snap, {}))
    crec = value(s.VDI.get_record(sess, clone))
    cf = os.path.join(path, crec['uuid'] + '.vhd')
    t.ok(not crec['is_a_snapshot'] and crec['snapshot_of'] == NULL, 'a clone is not a snapshot')
    t.ok(chain_raw(cf, os.path.join(tmp, 'clone.raw')) == before, 'the clone reads the snapshot data')
    for p in (f, sf, s2f, cf):
        ok, out = vhd_check(vhd_tool, p)
        t.ok(ok, 'vhd check passes on %s' % os.path.basename(p), out)
    # resize: grow only, data kept
    e = error(s.VDI.resize(sess, clone, str(2 * MiB)))
    t.ok(e and e[0] == 'VDI_TOO_SMALL' and e[1] == clone, 'shrinking is VDI_TOO_SMALL [vdi, size]', e)
    value(s.VDI.resize(sess, clone, str(64 * MiB)))
    t.eq(value(s.VDI.get_virtual_size(sess, clone)), str(64 * MiB), 'VDI.resize grows virtual_size')
    data = chain_raw(cf, os.path.join(tmp, 'clone2.raw'))
    t.ok(len(data) == 64 * MiB and data[:len(before)] == before and
         data[len(before):] == bytes(64 * MiB - len(before)), 'resize keeps the data, new space reads 0')
    ok, out = vhd_check(vhd_tool, cf)
    t.ok(ok, 'vhd check passes after resize', out)
    # destroying the snapshots and clone leaves the VDI sound, bases cleaned up
    for v in (snap, snap2, clone):
        value(s.VDI.destroy(sess, v))
    # the destroys kick the collector, which folds the bases away: the files are
    # read behind its back below, so wait until it is done with this chain
    t.ok(wait_for(lambda: not glob.glob(os.path.join(path, '*.base.vhd')), 30),
         'the collector folds the bases the snapshots left')
    t.ok(chain_raw(f, os.path.join(tmp, 'final.raw'))[:4096] == b'\xef' * 4096,
         'the VDI still reads its data after its snapshots are destroyed')
    ok, out = vhd_check(vhd_tool, f)
    t.ok(ok, 'vhd check passes on the VDI afterwards', out)


def copy_scan(t, d, s, sess, host, sr, path, vdi, f, vhd_tool, tmp):
    path2 = os.path.join(tmp, 'sr2')
    sr2 = value(s.SR.create(sess, host, {'path': path2}, '0', 'sr2', '', 'file', 'user', True, {}))
    t.eq(value(s.SR.get_shared(sess, sr2)), True, 'the shared flag is kept')
    task = value(getattr(s, 'Async.VDI.copy')(sess, vdi, sr2, NULL, NULL))
    rec = wait_task(s, sess, task)
    t.ok(rec['status'] == 'success', 'Async.VDI.copy into another SR succeeds', rec)
    copy = rec['result'].replace('<value>', '').replace('</value>', '')
    crec = value(s.VDI.get_record(sess, copy))
    cf = os.path.join(path2, crec['uuid'] + '.vhd')
    t.ok(crec['SR'] == sr2 and os.path.exists(cf), 'the copy is in the other SR')
    t.ok(qemu_raw(cf, os.path.join(tmp, 'c.raw')) == chain_raw(f, os.path.join(tmp, 'o.raw')),
         'the copy reads the same data (qemu-img reads the copy)')
    t.ok('vhd-parent' not in crec['sm_config'], 'the copy is flattened (no parent)')
    ok, out = vhd_check(vhd_tool, cf)
    t.ok(ok, 'vhd check passes on the copy', out)
    # scan: a VHD made behind our back appears, a vanished one goes
    import uuid as uuidlib
    u = str(uuidlib.uuid4())
    r = subprocess.run([vhd_tool, 'create', '--size', '8M', os.path.join(path2, u + '.vhd')],
                       capture_output=True, text=True)
    t.ok(r.returncode == 0, 'vhd create behind the server\'s back', r.stderr)
    os.unlink(cf)
    value(s.SR.scan(sess, sr2))
    found = value(s.VDI.get_by_uuid(sess, u))
    t.eq(value(s.VDI.get_virtual_size(sess, found)), str(8 * MiB), 'SR.scan adopts the new VHD')
    t.eq(error(s.VDI.get_record(sess, copy))[0], 'HANDLE_INVALID', 'SR.scan drops a VDI whose file vanished')
    damaged = value(s.VDI.create(sess, vdi_args(sr2, MiB)))
    with open(os.path.join(path2, value(s.VDI.get_uuid(sess, damaged)) + '.vhd'), 'r+b') as f:
        f.truncate(100)
    value(s.SR.scan(sess, sr2))
    t.ok(value(s.VDI.get_uuid(sess, damaged)), 'SR.scan keeps a VDI whose file is there but unreadable')
    value(s.VDI.destroy(sess, damaged))
    # PBD unplug: VDI operations need a plugged SR
    pbd = value(s.SR.get_PBDs(sess, sr2))[0]
    value(s.PBD.unplug(sess, pbd))
    t.eq(value(s.PBD.get_currently_attached(sess, pbd)), False, 'PBD.unplug')
    e = error(s.VDI.create(sess, vdi_args(sr2, MiB)))
    t.eq(e, ['SR_NOT_ATTACHED', sr2], 'VDI.create on an unplugged SR: SR_NOT_ATTACHED [sr]')
    value(s.PBD.plug(sess, pbd))
    t.eq(value(s.PBD.get_currently_attached(sess, pbd)), True, 'PBD.plug')
    e = error(s.SR.destroy(sess, sr2))
    t.eq(e, ['SR_HAS_PBD', sr2], 'SR.destroy with a plugged PBD: SR_HAS_PBD')
    value(s.PBD.unplug(sess, pbd))
    value(s.SR.destroy(sess, sr2))
    t.ok(not os.path.exists(os.path.join(path2, u + '.vhd')), 'SR.destroy deletes the files')
    t.eq(error(s.VDI.get_record(sess, found))[0], 'HANDLE_INVALID', 'SR.destroy drops the VDIs')
    t.eq(error(s.PBD.get_record(sess, pbd))[0], 'HANDLE_INVALID', 'SR.destroy drops the PBDs')
    # forget / introduce
    path3 = os.path.join(tmp, 'sr3')
    sr3 = value(s.SR.create(sess, host, {'path': path3}, '0', 'sr3', '', 'ext', 'user', False, {}))
    v3 = value(s.VDI.create(sess, vdi_args(sr3, MiB)))
    u3 = value(s.VDI.get_uuid(sess, v3))
    sr3_uuid = value(s.SR.get_uuid(sess, sr3))
    value(s.PBD.unplug(sess, value(s.SR.get_PBDs(sess, sr3))[0]))
    value(s.SR.forget(sess, sr3))
    t.ok(os.path.exists(os.path.join(path3, u3 + '.vhd')), 'SR.forget keeps the files')
    probe = value(s.SR.probe(sess, host, {'path': path3}, 'ext', {}))
    t.ok('<UUID>%s</UUID>' % sr3_uuid in probe, 'SR.probe of the directory names the forgotten SR',
         probe)
    t.ok('<UUID>' not in value(s.SR.probe(sess, host, {'path': tmp}, 'ext', {})),
         'SR.probe of a directory that holds no SR: an empty SRlist')
    e = error(s.SR.probe(sess, host, {'path': tmp + '/none'}, 'ext', {}))
    t.ok(e and e[0] == 'SR_BACKEND_FAILURE' and 'No such file' in e[3], 'SR.probe of a missing path', e)
    e = error(s.SR.probe(sess, host, {}, 'ext', {}))
    t.ok(e and e[0] == 'SR_BACKEND_FAILURE', 'SR.probe without a path', e)
    # issue 11, finding 16: SR.introduce stored any string as the uuid
    n_srs = len(value(s.SR.get_all(sess)))
    for bad in ('not-a-uuid', '../../../etc/passwd', sr3_uuid + 'x', sr3_uuid[:-1] + 'g',
                sr3_uuid.replace('-', '_')):
        e = error(s.SR.introduce(sess, bad, 'bad', '', 'ext', 'user', False, {}))
        t.eq(e, ['INVALID_VALUE', 'uuid', bad], 'SR.introduce %r: INVALID_VALUE [uuid, value]' % bad)
    t.eq(len(value(s.SR.get_all(sess))), n_srs, 'no SR record was made for them')
    e = error(s.SR.introduce(sess, value(s.SR.get_uuid(sess, sr)), 'dup', '', 'ext', 'user',
                             False, {}))
    t.eq(e and e[0], 'SR_UUID_EXISTS', 'SR.introduce of a uuid in use: SR_UUID_EXISTS (xapi_sr.ml)')
    fresh = value(s.SR.introduce(sess, '', 'fresh', '', 'ext', 'user', False, {}))
    t.ok(len(value(s.SR.get_uuid(sess, fresh))) == 36, 'SR.introduce with "": a new uuid')
    value(s.SR.forget(sess, fresh))
    sr3 = value(s.SR.introduce(sess, sr3_uuid.upper(), 'sr3', '', 'ext', 'user', False, {}))
    t.eq(value(s.SR.get_uuid(sess, sr3)), sr3_uuid, 'SR.introduce with the old uuid (any case)')
    pbd3 = value(s.PBD.create(sess, {'host': host, 'SR': sr3, 'device_config': {'path': path3},
                                     'other_config': {}}))
    value(s.PBD.plug(sess, pbd3))
    value(s.SR.scan(sess, sr3))
    t.ok(value(s.VDI.get_by_uuid(sess, u3)), 'PBD.plug + SR.scan bring the VDI back')
    r = subprocess.run([vhd_tool, 'resize', '--size', '16M', os.path.join(path3, u3 + '.vhd')],
                       capture_output=True, text=True)
    value(s.SR.update(sess, sr3))
    t.eq(value(s.VDI.get_virtual_size(sess, value(s.VDI.get_by_uuid(sess, u3)))), str(16 * MiB),
         'SR.update refreshes the sizes from the files (a resize behind our back)')


def vbds(t, d, s, sess, sr, vdi, templates):
    vm = value(s.VM.clone(sess, templates['Other install media'], 'vbd-vm'))
    before = value(s.VM.get_allowed_VBD_devices(sess, vm))
    vbd = value(s.VBD.create(sess, vbd_args(vm, vdi, '0')))
    after = value(s.VM.get_allowed_VBD_devices(sess, vm))
    t.ok('0' in before and '0' not in after and set(before) - set(after) == {'0'} and
         after[0] == '1', 'VM.get_allowed_VBD_devices: the free slots, a taken one gone', after)
    e = error(s.VM.get_allowed_VBD_devices(sess, 'OpaqueRef:nonexistent'))
    t.eq(e and e[0], 'HANDLE_INVALID', 'get_allowed_VBD_devices of no VM: HANDLE_INVALID')
    rec = value(s.VBD.get_record(sess, vbd))
    t.ok(rec['VM'] == vm and rec['VDI'] == vdi and not rec['currently_attached'], 'VBD.create')
    t.ok(vbd in value(s.VM.get_VBDs(sess, vm)) and vbd in value(s.VDI.get_VBDs(sess, vdi)),
         'VM.VBDs and VDI.VBDs list it')
    e = error(s.VBD.create(sess, vbd_args(vm, vdi, '0')))
    t.eq(e, ['DEVICE_ALREADY_EXISTS', '0'], 'a taken userdevice: DEVICE_ALREADY_EXISTS')
    e = error(s.VBD.create(sess, vbd_args(vm, vdi, 'xvda')))
    t.eq(e, ['DEVICE_ALREADY_EXISTS', 'xvda'], 'name and number forms of a slot compare equal')
    e = error(s.VBD.create(sess, vbd_args(vm, vdi, 'bogus')))
    t.eq(e, ['INVALID_DEVICE', 'bogus'], 'a bad userdevice: INVALID_DEVICE')
    e = error(s.VBD.create(sess, vbd_args(vm, NULL, '3', 'CD', 'RW', True)))
    t.eq(e, ['VBD_CDS_MUST_BE_READONLY'], 'a RW CD: VBD_CDS_MUST_BE_READONLY')
    e = error(s.VBD.create(sess, vbd_args(vm, NULL, '3', 'Disk', 'RW', True)))
    t.ok(e and e[0] == 'VBD_NOT_REMOVABLE_MEDIA', 'only CDs may be empty', e)
    auto = value(s.VBD.create(sess, vbd_args(vm, vdi, 'autodetect')))
    t.eq(value(s.VBD.get_userdevice(sess, auto)), '1', 'autodetect takes the first free slot')
    value(s.VBD.destroy(sess, auto))
    cd = value(s.VBD.create(sess, vbd_args(vm, NULL, '3', 'CD', 'RO', True)))
    t.eq(error(s.VBD.eject(sess, cd)), ['VBD_IS_EMPTY', cd], 'eject of an empty CD: VBD_IS_EMPTY')
    value(s.VBD.insert(sess, cd, vdi))
    t.eq((value(s.VBD.get_VDI(sess, cd)), value(s.VBD.get_empty(sess, cd))), (vdi, False),
         'VBD.insert puts the VDI in')
    t.eq(error(s.VBD.insert(sess, cd, vdi)), ['VBD_NOT_EMPTY', cd], 'insert into a full CD: VBD_NOT_EMPTY')
    value(s.VBD.eject(sess, cd))
    t.eq(value(s.VBD.get_empty(sess, cd)), True, 'VBD.eject empties it')
    t.eq(error(s.VBD.eject(sess, vbd)), ['VBD_NOT_REMOVABLE_MEDIA', vbd],
         'eject of a disk: VBD_NOT_REMOVABLE_MEDIA')
    e = error(s.VBD.plug(sess, vbd))
    t.ok(e and e[0] in ('VM_BAD_POWER_STATE', 'OPERATION_NOT_ALLOWED'),
         'VBD.plug on a halted VM is refused', e)
    e = error(s.VBD.unplug(sess, vbd))
    t.ok(e and e[0] in ('VM_BAD_POWER_STATE', 'OPERATION_NOT_ALLOWED', 'DEVICE_ALREADY_DETACHED'),
         'VBD.unplug on a halted VM is refused', e)
    return vm, vbd


def provision(t, d, s, sess, sr, path, templates):
    pool = value(s.pool.get_all(sess))[0]
    if value(s.pool.get_default_SR(sess, pool)) == NULL:
        value(s.pool.set_default_SR(sess, pool, sr))
    default_sr = value(s.pool.get_default_SR(sess, pool))
    vm = value(s.VM.clone(sess, templates['Direct kernel boot'], 'prov-vm'))
    task = value(getattr(s, 'Async.VM.provision')(sess, vm))
    rec = wait_task(s, sess, task)
    t.ok(rec['status'] == 'success', 'Async.VM.provision succeeds', rec)
    vrec = value(s.VM.get_record(sess, vm))
    t.ok(not vrec['is_a_template'] and 'disks' not in vrec['other_config'],
         'provision: is_a_template false, disks removed')
    t.eq(len(vrec['VBDs']), 1, 'one VBD per disk')
    if vrec['VBDs']:
        b = value(s.VBD.get_record(sess, vrec['VBDs'][0]))
        v = value(s.VDI.get_record(sess, b['VDI']))
        t.ok(b['userdevice'] == '0' and b['bootable'] and b['mode'] == 'RW' and b['type'] == 'Disk',
             'the VBD: device 0, bootable, RW Disk', b)
        t.ok(v['virtual_size'] == str(1 << 30) and v['SR'] == default_sr and
             v['sm_config'].get('vmhint') == vrec['uuid'] and
             v['name_description'] == 'Created by template provisioner',
             'the VDI: size, default SR, vmhint', v)
        sr_path = value(s.PBD.get_device_config(sess, value(s.SR.get_PBDs(sess, v['SR']))[0]))['path']
        t.ok(os.path.exists(os.path.join(sr_path, v['uuid'] + '.vhd')), 'the VDI file exists')
    e = error(s.VM.provision(sess, vm))
    t.eq(e, ['PROVISION_ONLY_ALLOWED_ON_TEMPLATE'], 'provision of a VM: PROVISION_ONLY_ALLOWED_ON_TEMPLATE')
    # a bad SR uuid: UUID_INVALID, nothing made
    vm2 = value(s.VM.clone(sess, templates['Direct kernel boot'], 'prov-bad'))
    bad = '00000000-0000-0000-0000-000000000000'
    xml = ('<provision><disk device="0" size="2097152" sr="%s" bootable="true" type="system"/>'
           '<disk device="1" size="2097152" sr="%s" bootable="false" type="user"/></provision>'
           % (value(s.SR.get_uuid(sess, sr)), bad))
    value(s.VM.remove_from_other_config(sess, vm2, 'disks'))
    value(s.VM.add_to_other_config(sess, vm2, 'disks', xml))
    n_vdis = len(value(s.VDI.get_all(sess)))
    n_files = len(os.listdir(path))
    e = error(s.VM.provision(sess, vm2))
    t.eq(e, ['UUID_INVALID', 'sr', bad], 'an unknown SR uuid in the XML: UUID_INVALID ["sr", uuid]')
    t.ok(len(value(s.VDI.get_all(sess))) == n_vdis and len(os.listdir(path)) == n_files and
         value(s.VM.get_is_a_template(sess, vm2)), 'a failed provision leaves nothing behind')
    # a failure half way (second disk too big) rolls the first back
    xml = ('<provision><disk device="0" size="2097152" sr="" bootable="true" type="system"/>'
           '<disk device="1" size="%d" sr="" bootable="false" type="user"/></provision>' % (1 << 60))
    value(s.VM.remove_from_other_config(sess, vm2, 'disks'))
    value(s.VM.add_to_other_config(sess, vm2, 'disks', xml))
    e = error(s.VM.provision(sess, vm2))
    t.ok(e and e[0] == 'SR_FULL', 'a disk that does not fit: SR_FULL', e)
    t.ok(len(value(s.VDI.get_all(sess))) == n_vdis and len(value(s.VM.get_VBDs(sess, vm2))) == 0 and
         value(s.VM.get_is_a_template(sess, vm2)), 'the disk made before the failure is rolled back')
    return vm


def local_sr(t, d, s, sess):
    srs = value(s.SR.get_all_records(sess))
    local = [r for r, v in srs.items() if v['other_config'].get('vessel-local') == 'true']
    if not local:
        print('# no local SR: sr_bootstrap_local is not called at start yet')
        return
    pool = value(s.pool.get_all(sess))[0]
    t.eq(len(local), 1, 'one local SR')
    t.eq(value(s.pool.get_default_SR(sess, pool)), local[0], 'pool.default_SR is the local SR')
    pbds = srs[local[0]]['PBDs']
    t.ok(pbds and value(s.PBD.get_currently_attached(sess, pbds[0])), 'the local SR is plugged')


def main():
    global VHD_TOOL
    binary, vhd_tool = sys.argv[1], sys.argv[2]
    VHD_TOOL = vhd_tool
    tmp = tempfile.mkdtemp(prefix='vessel-sit-')
    return test_main(binary, lambda t, d: run(t, d, vhd_tool, tmp),
                     after=lambda: shutil.rmtree(tmp, ignore_errors=True))


def run(t, d, vhd_tool, tmp):
    s = d.proxy()
    sess = d.login()
    pool = value(s.pool.get_all_records(sess))
    host = list(pool.values())[0]['master']
    vms = value(s.VM.get_all_records(sess))
    templates = {v['name_label']: r for r, v in vms.items() if v['is_a_template']}
    local_sr(t, d, s, sess)
    sr, path = sr_basics(t, d, s, sess, host, tmp)
    vdi, f = vdi_lifecycle(t, d, s, sess, sr, path, vhd_tool, tmp)
    snapshots(t, d, s, sess, sr, path, vdi, f, vhd_tool, tmp)
    copy_scan(t, d, s, sess, host, sr, path, vdi, f, vhd_tool, tmp)
    vm, vbd = vbds(t, d, s, sess, sr, vdi, templates)
    provision(t, d, s, sess, sr, path, templates)
    in_use_check(t, d, sess, vdi, vbd)


def in_use_check(t, d, sess, vdi, vbd):
    """VDI_IN_USE needs an attached VBD, and no VM runs in this build: stop
    vesseld, mark the VBD attached in its store, start it again."""
    import sqlite3
    d.stop()
    db_file = None
    for root, _dirs, files in os.walk(os.path.join(d.dir, 'data')):
        for name in files:
            if name.endswith('.db'):
                db_file = os.path.join(root, name)
    if not db_file:
        t.ok(False, 'found the store file')
        return
    con = sqlite3.connect(db_file)
    tables = [r[0] for r in con.execute("select name from sqlite_master where type='table'")]
    changed = 0
    for tbl in tables:
        cols = [r[1] for r in con.execute('pragma table_info("%s")' % tbl)]
        if 'ref' in cols and 'data' in cols:
            for ref, data in con.execute('select ref, data from "%s" where ref = ?' % tbl, (vbd,)):
                data = data.replace('"currently_attached":false', '"currently_attached":true')
                con.execute('update "%s" set data = ? where ref = ?' % tbl, (data, ref))
                changed += 1
    con.commit()
    con.close()
    if not changed:
        print('# store layout unknown: VDI_IN_USE not checked')
        d.start()
        return
    d.start()
    s = d.proxy()
    sess = d.login()
    e = error(s.VDI.destroy(sess, vdi))
    t.eq(e, ['VDI_IN_USE', vdi, 'destroy'], 'VDI.destroy with an attached VBD: VDI_IN_USE [vdi, destroy]')
    e = error(s.VBD.destroy(sess, vbd))
    t.ok(e and e[0] == 'OPERATION_NOT_ALLOWED', 'VBD.destroy of an attached VBD: OPERATION_NOT_ALLOWED', e)


if __name__ == '__main__':
    sys.exit(main())
