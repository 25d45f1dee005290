#!/usr/bin/env python3
"""tests/integration/test_xva.py - VM export and import as XVA between two
vesselds (--backend sim, each with its own data directory).

A VM with a disk (data at known places, zeros elsewhere) and a NIC is
exported from A (uncompressed, gzip, zstd) and imported into B: the new VM
has the record, the disk reads back byte for byte (raw exports compared, and
`qemu-img compare` on them), the NIC is on the network of the same name with
a new MAC. The archive itself is read with Python's tarfile: ova.xml first,
1 MiB chunks with .xxhash members, zero chunks left out but the first and
last. An XVA written here independently (tarfile + hashlib SHA-1 .checksum
members, xapi's layout) imports. Truncated, checksum-damaged, hostile-name
and absurd-size archives are refused with their XenAPI error and leave
nothing behind: no new objects, no new files in B's SR. export_metadata then
import_metadata brings a destroyed VM back onto its disk.
Usage: test_xva.py BUILD/vesseld
"""
import gzip
import hashlib
import http.client
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Tap, Vesseld, add_account, value, wait_for  # noqa: E402

MiB = 1024 * 1024
DISK = 8 * MiB
BRIDGES = ['xvaa%d' % (os.getpid() % 10000), 'xvab%d' % (os.getpid() % 10000)]


def query(**kw):
    return '&'.join('%s=%s' % (k, v) for k, v in kw.items() if v is not None)


def request(d, method, path, body=None):
    c = http.client.HTTPConnection('127.0.0.1', d.port, timeout=120)
    c.request(method, path, body=body)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, dict(r.getheaders()), data


def sr_of(s, sess):
    pool = list(value(s.pool.get_all_records(sess)).values())[0]
    return pool['default_SR']


def disk_content():
    """8 MiB: random first MiB, zeros, a pattern at 3.5 MiB, zeros, random last 100 KiB."""
    data = bytearray(DISK)
    data[0:MiB] = os.urandom(MiB)
    data[3 * MiB + MiB // 2:4 * MiB + 1000] = b'\xa5' * (MiB // 2 + 1000)
    data[DISK - 100 * 1024:] = os.urandom(100 * 1024)
    return bytes(data)


def make_vm(d, s, sess, content):
    vms = value(s.VM.get_all_records(sess))
    tmpl = [r for r, v in vms.items() if v['name_label'] == 'Direct kernel boot'][0]
    vm = value(s.VM.clone(sess, tmpl, 'xva-vm'))
    value(s.VM.set_is_a_template(sess, vm, False))
    value(s.VM.set_name_description(sess, vm, 'exported by test_xva'))
    sr = sr_of(s, sess)
    vdi = value(s.VDI.create(sess, {'name_label': 'xva-disk', 'name_description': 'd0', 'SR': sr,
                                    'virtual_size': str(DISK), 'type': 'user',
                                    'sharable': False, 'read_only': False,
                                    'other_config': {'k': 'v'}}))
    st, _, _ = request(d, 'PUT', '/import_raw_vdi?' + query(vdi=vdi, format='raw',
                                                            session_id=sess), content)
    assert st == 200, st
    value(s.VBD.create(sess, {'VM': vm, 'VDI': vdi, 'userdevice': '0', 'bootable': True,
                              'mode': 'RW', 'type': 'Disk', 'unpluggable': False,
                              'empty': False, 'other_config': {}, 'qos_algorithm_type': '',
                              'qos_algorithm_params': {}}))
    net = value(s.network.create(sess, {'name_label': 'xva-net', 'name_description': '',
                                        'MTU': '1500', 'other_config': {},
                                        'bridge': BRIDGES[0]}))
    value(s.VIF.create(sess, {'device': '0', 'network': net, 'VM': vm, 'MAC': '', 'MTU': '1500',
                              'other_config': {}, 'qos_algorithm_type': '',
                              'qos_algorithm_params': {}}))
    return vm, vdi, net


def counts(s, sess):
    return tuple(len(value(getattr(s, c).get_all(sess))) for c in ('VM', 'VDI', 'VBD', 'VIF',
                                                                     'network'))


def sr_files(d):
    root = os.path.join(d.dir, 'data', 'sr')
    out = set()
    for dirpath, _, files in os.walk(root):
        out.update(os.path.join(dirpath, f) for f in files)
    return out


def raw_of(d, sess, vdi):
    st, _, data = request(d, 'GET', '/export_raw_vdi?' + query(vdi=vdi, format='raw',
                                                               session_id=sess))
    assert st == 200, st
    return data


def import_xva(d, s, sess, body, **kw):
    """PUT /import; (status, error list or None, new VM refs)."""
    st, hdr, data = request(d, 'PUT', '/import?' + query(session_id=sess, **kw), body)
    task = hdr.get('Task-Id')
    rec = value(s.task.get_record(sess, task)) if task else None
    if st == 200:
        result = rec['result']
        refs = [x for x in result.replace('<value>', ' ').replace('</value>', ' ').split()
                if x.startswith('OpaqueRef:')]
        return st, None, refs, rec
    return st, data.decode().split(), [], rec


def check_archive(t, blob):
    tf = tarfile.open(fileobj=io.BytesIO(blob), mode='r:')
    names = tf.getnames()
    t.eq(names[0], 'ova.xml', 'the archive starts with ova.xml')
    chunks = [n for n in names if n.count('/') == 1 and n.split('/')[1].isdigit()]
    nos = [int(n.split('/')[1]) for n in chunks]
    t.eq(nos, [0, 3, 4, 7], 'chunks: the first, the two with data, the last (zeros left out)')
    ok = True
    for n in chunks:
        data = tf.extractfile(n).read()
        x = tf.extractfile(n + '.xxhash').read()
        ok = ok and len(x) == 16 and x == x.upper() and len(data) == MiB
    t.ok(ok, 'each chunk is 1 MiB and followed by a 16-hex-digit .xxhash member')
    ova = tf.extractfile('ova.xml').read().decode()
    t.ok(ova.startswith('<value><struct><member><name>version</name>') and
         '<name>export_vsn</name><value><i4>2</i4></value>' in ova,
         'ova.xml: an XML-RPC struct with version (export_vsn 2) and objects')
    classes = [c for c in ('VM', 'VBD', 'VIF', 'network', 'VDI', 'SR')
               if '<name>class</name><value>%s</value>' % c in ova]
    t.eq(classes, ['VM', 'VBD', 'VIF', 'network', 'VDI', 'SR'],
         'ova.xml holds the VM, VBD, VIF, network, VDI and SR')
    t.ok('OpaqueRef:' not in ova.replace('OpaqueRef:NULL', ''),
         'no reference of the exporting host is left in ova.xml')


def round_trip(t, a, b, sa, sb, sess_a, sess_b, vm, vdi, content, tmp):
    uuid = value(sa.VM.get_uuid(sess_a, vm))
    st, hdr, blob = request(a, 'GET', '/export?' + query(uuid=uuid, session_id=sess_a))
    t.eq(st, 200, 'GET /export: 200')
    t.ok(hdr.get('Task-Id', '').startswith('OpaqueRef:'), 'the export names its task')
    if hdr.get('Task-Id'):
        # the body's end can reach the client before the server closed the
        # task and the VM's lock: a client waits for the task (test_vdi_transfer.py)
        wait_for(lambda: value(sa.task.get_status(sess_a, hdr['Task-Id'])) != 'pending', 10)
        rec = value(sa.task.get_record(sess_a, hdr['Task-Id']))
        t.eq((rec['status'], float(rec['progress'])), ('success', 1.0), 'export task: success')
    t.eq(value(sa.VM.get_current_operations(sess_a, vm)), {}, 'the VM is unlocked after export')
    check_archive(t, blob)
    for comp, magic in (('gzip', b'\x1f\x8b'), ('zstd', b'\x28\xb5\x2f\xfd')):
        st, _, cblob = request(a, 'GET', '/export?' + query(ref=vm, session_id=sess_a,
                                                            use_compression=comp))
        t.ok(st == 200 and cblob[:len(magic)] == magic and len(cblob) < len(blob),
             'use_compression=%s: a smaller %s stream' % (comp, comp))
        st, err, refs, _ = import_xva(b, sb, sess_b, cblob, sr_id=sr_of(sb, sess_b))
        t.ok(st == 200 and len(refs) == 1, 'the %s export imports' % comp, err)
        if refs:
            new_vdi = disk_of(sb, sess_b, refs[0])
            t.ok(raw_of(b, sess_b, new_vdi) == content, '%s import: the disk is equal' % comp)
            destroy_vm(sb, sess_b, refs[0])
    before = counts(sb, sess_b)
    st, err, refs, rec = import_xva(b, sb, sess_b, blob, sr_id=sr_of(sb, sess_b))
    t.eq((st, err, len(refs)), (200, None, 1), 'PUT /import: 200, the task names one VM')
    if not refs:
        return
    t.eq((rec['status'], float(rec['progress'])), ('success', 1.0), 'import task: success')
    new = refs[0]
    r = value(sb.VM.get_record(sess_b, new))
    old = value(sa.VM.get_record(sess_a, vm))
    t.eq((r['name_label'], r['name_description'], r['memory_static_max'], r['VCPUs_max'],
          r['PV_kernel'], r['power_state']),
         (old['name_label'], old['name_description'], old['memory_static_max'],
          old['VCPUs_max'], old['PV_kernel'], 'Halted'), 'the imported VM keeps its record')
    t.ok(r['uuid'] != old['uuid'], 'a new uuid (restore=false)')
    t.eq(r['current_operations'], {}, 'the imported VM is not left locked')
    new_vdi = disk_of(sb, sess_b, new)
    vr = value(sb.VDI.get_record(sess_b, new_vdi))
    t.eq((vr['name_label'], vr['name_description'], vr['virtual_size'], vr['other_config'].get('k')),
         ('xva-disk', 'd0', str(DISK), 'v'), 'the imported VDI keeps its record')
    back = raw_of(b, sess_b, new_vdi)
    t.ok(back == content, 'the imported disk reads the same bytes as the original')
    ra, rb = os.path.join(tmp, 'a.raw'), os.path.join(tmp, 'b.raw')
    with open(ra, 'wb') as f:
        f.write(raw_of(a, sess_a, vdi))
    with open(rb, 'wb') as f:
        f.write(back)
    if shutil.which('qemu-img'):
        p = subprocess.run(['qemu-img', 'compare', '-f', 'raw', '-F', 'raw', ra, rb],
                           capture_output=True, text=True)
        t.eq(p.returncode, 0, 'qemu-img compare: the two disks are identical')
    vifs = r['VIFs']
    t.eq(len(vifs), 1, 'one VIF imported')
    if vifs:
        vif = value(sb.VIF.get_record(sess_b, vifs[0]))
        net = value(sb.network.get_record(sess_b, vif['network']))
        old_vif = value(sa.VIF.get_record(sess_a, old['VIFs'][0]))
        t.eq(net['name_label'], 'xva-net', 'the VIF is on the network of the same name')
        t.ok(vif['MAC'] != old_vif['MAC'] and vif['MAC'], 'a new MAC (restore=false)',
             (vif['MAC'], old_vif['MAC']))
    after = counts(sb, sess_b)
    t.eq(tuple(x - y for x, y in zip(after, before)), (1, 1, 1, 1, 0),
         'one VM, VDI, VBD and VIF more; the network was found by name')
    destroy_vm(sb, sess_b, new)


def disk_of(s, sess, vm):
    for vbd in value(s.VM.get_VBDs(sess, vm)):
        r = value(s.VBD.get_record(sess, vbd))
        if r['type'] == 'Disk':
            return r['VDI']
    return None


def destroy_vm(s, sess, vm):
    vdis = [value(s.VBD.get_VDI(sess, v)) for v in value(s.VM.get_VBDs(sess, vm))]
    value(s.VM.destroy(sess, vm))
    for v in vdis:
        if v != 'OpaqueRef:NULL':
            value(s.VDI.destroy(sess, v))


# ---- an XVA written here, following xapi's layout (export.ml, stream_vdi.ml)

def xmlrpc_value(v):
    from xml.sax.saxutils import escape
    if isinstance(v, bool):
        return '<value><boolean>%d</boolean></value>' % v
    if isinstance(v, int):
        return '<value><i4>%d</i4></value>' % v
    if isinstance(v, dict):
        return '<value><struct>%s</struct></value>' % ''.join(
            '<member><name>%s</name>%s</member>' % (escape(k), xmlrpc_value(x))
            for k, x in v.items())
    if isinstance(v, list):
        return '<value><array><data>%s</data></array></value>' % ''.join(map(xmlrpc_value, v))
    return '<value>%s</value>' % escape(v)


def independent_xva(content, vsize, extra_members=(), corrupt=False, vdi_size=None):
    vm = {'uuid': '6e5d3b2a-0000-4000-8000-000000000001', 'name_label': 'indie',
          'name_description': 'written by hand', 'power_state': 'Halted',
          'user_version': '1', 'is_a_template': False, 'memory_static_max': str(256 * MiB),
          'memory_dynamic_max': str(256 * MiB), 'memory_dynamic_min': str(256 * MiB),
          'memory_static_min': str(128 * MiB), 'VCPUs_max': '1', 'VCPUs_at_startup': '1',
          'actions_after_shutdown': 'destroy', 'actions_after_reboot': 'restart',
          'actions_after_crash': 'restart', 'PV_bootloader': '', 'PV_kernel': '',
          'PV_ramdisk': '', 'PV_args': '', 'HVM_boot_policy': 'BIOS order',
          'HVM_boot_params': {'order': 'c'}, 'platform': {}, 'other_config': {},
          'VBDs': ['Ref:1'], 'VIFs': [], 'domain_type': 'hvm', 'some_future_field': 'x',
          'resident_on': 'Ref:99', 'affinity': 'OpaqueRef:NULL'}
    vbd = {'uuid': '6e5d3b2a-0000-4000-8000-000000000002', 'VM': 'Ref:0', 'VDI': 'Ref:2',
           'userdevice': '0', 'bootable': True, 'mode': 'RW', 'type': 'Disk',
           'unpluggable': False, 'empty': False, 'other_config': {},
           'qos_algorithm_type': '', 'qos_algorithm_params': {}, 'currently_attached': False}
    vdi = {'uuid': '6e5d3b2a-0000-4000-8000-000000000003', 'name_label': 'indie-disk',
           'name_description': '', 'SR': 'Ref:3', 'virtual_size': str(vdi_size or vsize),
           'type': 'user', 'sharable': False, 'read_only': False, 'other_config': {},
           'sm_config': {}, 'VBDs': ['Ref:1']}
    sr = {'uuid': '6e5d3b2a-0000-4000-8000-000000000004', 'name_label': 'Local storage',
          'content_type': 'user', 'type': 'ext', 'VDIs': ['Ref:2']}
    objs = [{'class': 'VM', 'id': 'Ref:0', 'snapshot': vm},
            {'class': 'VBD', 'id': 'Ref:1', 'snapshot': vbd},
            {'class': 'VDI', 'id': 'Ref:2', 'snapshot': vdi},
            {'class': 'SR', 'id': 'Ref:3', 'snapshot': sr}]
    header = {'version': {'hostname': 'elsewhere', 'date': '2026-01-01',
                          'product_version': '8.3.0', 'product_brand': 'XCP-ng',
                          'build_number': 'x', 'xapi_major': 24, 'xapi_minor': 0,
                          'export_vsn': 2},
              'objects': objs}
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode='w', format=tarfile.USTAR_FORMAT) as tf:
        def add(name, data):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
        add('ova.xml', xmlrpc_value(header).encode())
        last = (vsize - 1) // MiB
        for no in range(last + 1):
            block = content[no * MiB:(no + 1) * MiB]
            if no not in (0, last) and block == bytes(len(block)):
                continue
            add('Ref:2/%08d' % no, block)
            digest = hashlib.sha1(block).hexdigest()
            if corrupt and no == last:
                digest = hashlib.sha1(block + b'!').hexdigest()
            add('Ref:2/%08d.checksum' % no, digest.encode())
        for name, data in extra_members:
            add(name, data)
    return bio.getvalue()


def refused(t, b, sb, sess_b, body, want, what):
    before, files = counts(sb, sess_b), sr_files(b)
    st, err, refs, rec = import_xva(b, sb, sess_b, body, sr_id=sr_of(sb, sess_b))
    t.ok(st >= 400 and err and err[0] == want, '%s: refused with %s' % (what, want), (st, err))
    t.eq(rec and rec['status'], 'failure', '%s: the task failed' % what)
    t.eq(counts(sb, sess_b), before, '%s: no VM, VDI, VBD, VIF or network left behind' % what)
    t.eq(sr_files(b) - files, set(), '%s: no file left in the SR' % what)


def independent(t, b, sb, sess_b):
    content = disk_content()
    for label, blob in (('tar', independent_xva(content, DISK)),
                        ('tar.gz', gzip.compress(independent_xva(content, DISK), 1))):
        st, err, refs, _ = import_xva(b, sb, sess_b, blob)
        t.ok(st == 200 and len(refs) == 1, 'an independently written XVA (%s, SHA-1 .checksum) '
             'imports into the default SR' % label, err)
        if not refs:
            continue
        r = value(sb.VM.get_record(sess_b, refs[0]))
        t.eq((r['name_label'], r['HVM_boot_policy'], r['resident_on']),
             ('indie', 'BIOS order', 'OpaqueRef:NULL'),
             'its VM record (a dangling reference becomes NULL)')
        t.ok(raw_of(b, sess_b, disk_of(sb, sess_b, refs[0])) == content, 'its disk reads back')
        destroy_vm(sb, sess_b, refs[0])
    good = independent_xva(content, DISK)
    refused(t, b, sb, sess_b, good[:len(good) // 2], 'IMPORT_ERROR_PREMATURE_EOF',
            'a truncated archive')
    refused(t, b, sb, sess_b, gzip.compress(good, 1)[:-100], 'IMPORT_ERROR_PREMATURE_EOF',
            'a truncated gzip archive')
    refused(t, b, sb, sess_b, independent_xva(content, DISK, corrupt=True),
            'IMPORT_ERROR_SOME_CHECKSUMS_FAILED', 'a chunk whose checksum does not match')
    refused(t, b, sb, sess_b, independent_xva(content, DISK, extra_members=[('../../evil', b'x')]),
            'IMPORT_ERROR', 'a member named ../../evil')
    refused(t, b, sb, sess_b, independent_xva(content, DISK, extra_members=[('/etc/evil', b'x')]),
            'IMPORT_ERROR', 'a member with an absolute name')
    refused(t, b, sb, sess_b, independent_xva(content, DISK, vdi_size=2 * MiB),
            'IMPORT_ERROR', 'chunks beyond the disk\'s virtual size')
    refused(t, b, sb, sess_b, independent_xva(content, DISK, vdi_size=1 << 60),
            'SR_FULL', 'a disk of 2^60 bytes')
    refused(t, b, sb, sess_b, b'not an archive at all' * 100, 'IMPORT_ERROR',
            'bytes that are no archive')


def refusals(t, a, sa, sess_a, vm):
    """Who may export, and when: xapi's RBAC (vm-admin) and the VM's state."""
    add_account(a, sess_a, 'xva-ro', 'xva-ro-pw', 'read-only')
    ro = value(sa.session.login_with_password('xva-ro', 'xva-ro-pw', '1.0', 'test'))
    st, _, body = request(a, 'GET', '/export?' + query(ref=vm, session_id=ro))
    t.ok(st == 403 and body.decode().startswith('RBAC_PERMISSION_DENIED http/get_export'),
         'a read-only session may not export: 403 RBAC_PERMISSION_DENIED', (st, body))
    st, _, body = request(a, 'PUT', '/import?' + query(session_id=ro), b'x' * 1024)
    t.ok(st == 403 and body.decode().startswith('RBAC_PERMISSION_DENIED http/put_import'),
         'nor import', (st, body))
    st, _, body = request(a, 'GET', '/export?' + query(ref='OpaqueRef:nonesuch',
                                                      session_id=sess_a))
    t.ok(st == 404 and body.decode().startswith('HANDLE_INVALID VM'),
         'an unknown VM: 404 HANDLE_INVALID', (st, body))
    st, _, body = request(a, 'GET', '/export?' + query(uuid=vm))
    t.eq(st, 401, 'no session: 401')
    value(sa.VM.start(sess_a, vm, False, False))
    st, _, body = request(a, 'GET', '/export?' + query(ref=vm, session_id=sess_a))
    t.ok(st == 409 and body.decode().startswith('VM_BAD_POWER_STATE ' + vm),
         'a running VM is not exported: 409 VM_BAD_POWER_STATE', (st, body))
    value(sa.VM.hard_shutdown(sess_a, vm))
    t.eq(value(sa.VM.get_current_operations(sess_a, vm)), {},
         'a refused export leaves no operation on the VM')


def metadata(t, a, sa, sess_a, vm, vdi):
    uuid = value(sa.VM.get_uuid(sess_a, vm))
    snap = value(sa.VM.snapshot(sess_a, vm, 'xva-snap'))
    snap_uuid = value(sa.VM.get_uuid(sess_a, snap))
    snap_vdis = [value(sa.VBD.get_VDI(sess_a, x)) for x in value(sa.VM.get_VBDs(sess_a, snap))]
    st, hdr, blob = request(a, 'GET', '/export_metadata?' + query(uuid=uuid, session_id=sess_a))
    t.ok(st == 200 and int(hdr.get('Content-Length', -1)) == len(blob),
         'GET /export_metadata: 200 with a Content-Length')
    tf = tarfile.open(fileobj=io.BytesIO(blob))
    t.eq(tf.getnames(), ['ova.xml'], 'a metadata export holds ova.xml alone')
    ova = tf.extractfile('ova.xml').read().decode()
    t.ok(snap_uuid in ova and '<name>is_a_snapshot</name><value><boolean>1</boolean>' in ova,
         'export_snapshots (default true): the snapshot is in ova.xml')
    value(sa.VM.destroy(sess_a, snap))
    value(sa.VM.destroy(sess_a, vm))
    st, hdr, data = request(a, 'PUT', '/import_metadata?' + query(session_id=sess_a, restore='true'),
                            blob)
    t.eq(st, 200, 'PUT /import_metadata: 200')
    task = value(sa.task.get_record(sess_a, hdr['Task-Id'])) if hdr.get('Task-Id') else {}
    recs = value(sa.VM.get_all_records(sess_a))
    vms = [r for r, v in recs.items() if v['uuid'] == uuid]
    snaps = [r for r, v in recs.items() if v['uuid'] == snap_uuid]
    t.eq((len(vms), len(snaps)), (1, 1), 'restore=true brings the VM and its snapshot back, '
         'uuids kept')
    if vms and snaps:
        t.eq(disk_of(sa, sess_a, vms[0]), vdi, 'its VBD is on the same VDI, found by uuid')
        s = recs[snaps[0]]
        t.eq((s['is_a_snapshot'], s['snapshot_of'], snaps[0] in recs[vms[0]]['snapshots']),
             (True, vms[0], True), 'the snapshot is a snapshot of the imported VM again')
        t.eq([value(sa.VBD.get_VDI(sess_a, x)) for x in s['VBDs']], snap_vdis,
             'the snapshot\'s disks are its own VDIs again')
        t.ok(vms[0] in task.get('result', '') and snaps[0] not in task.get('result', ''),
             'the task\'s result names the VM, not its snapshot', task.get('result'))
        value(sa.VM.destroy(sess_a, snaps[0]))
        for v in snap_vdis:
            value(sa.VDI.destroy(sess_a, v))


def serve_files(files):
    """A local HTTP server for {path: bytes}; returns (server, base url)."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = files.get(self.path)
            if body is None:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, 'http://127.0.0.1:%d' % srv.server_address[1]


def url_import(t, b, sb, sess_b):
    """VM.import: the server downloads the XVA itself (sync and Async)."""
    content = disk_content()
    srv, base = serve_files({'/vm.xva': independent_xva(content, DISK),
                             '/cut.xva': independent_xva(content, DISK)[:300000]})
    try:
        sr = sr_of(sb, sess_b)
        r = getattr(sb.VM, 'import')(sess_b, base + '/vm.xva', sr, False, False)
        refs = r.get('Value') if r.get('Status') == 'Success' else None
        t.ok(refs and len(refs) == 1, 'VM.import(url): the new VM', r)
        if refs:
            t.ok(raw_of(b, sess_b, disk_of(sb, sess_b, refs[0])) == content,
                 'VM.import(url): its disk reads back')
            destroy_vm(sb, sess_b, refs[0])
        task = value(getattr(sb.Async.VM, 'import')(sess_b, base + '/vm.xva', sr, False, False))
        import time
        deadline = time.time() + 60
        while value(sb.task.get_status(sess_b, task)) == 'pending' and time.time() < deadline:
            time.sleep(0.1)
        rec = value(sb.task.get_record(sess_b, task))
        got = [x for x in rec['result'].replace('<', ' ').replace('>', ' ').split()
               if x.startswith('OpaqueRef:')]
        t.ok(rec['status'] == 'success' and len(got) == 1,
             'Async.VM.import: the task names the new VM', rec)
        for vm in got:
            destroy_vm(sb, sess_b, vm)
        before, files = counts(sb, sess_b), sr_files(b)
        for path, want, what in (('/cut.xva', 'IMPORT_ERROR_PREMATURE_EOF', 'a cut download'),
                                 ('/missing.xva', 'IMPORT_ERROR', 'a 404'),
                                 (None, 'IMPORT_ERROR', 'a URL that is not http(s)')):
            url = base + path if path else 'ftp://127.0.0.1/x.xva'
            r = getattr(sb.VM, 'import')(sess_b, url, sr, False, False)
            e = r.get('ErrorDescription') or ['']
            t.eq(e[0], want, 'VM.import of %s: %s' % (what, want))
        t.eq((counts(sb, sess_b), sr_files(b) - files), (before, set()),
             'failed URL imports leave no object and no file behind')
    finally:
        srv.shutdown()


def main():
    binary = sys.argv[1]
    t = Tap()
    a = Vesseld(binary, extra=['--backend', 'sim'])
    b = Vesseld(binary, extra=['--backend', 'sim'])
    tmp = tempfile.mkdtemp(prefix='vessel-it-xva-')
    try:
        a.start()
        b.start()
        sa, sb = a.proxy(), b.proxy()
        sess_a, sess_b = a.login(), b.login()
        content = disk_content()
        vm, vdi, net = make_vm(a, sa, sess_a, content)
        net_b = value(sb.network.create(sess_b, {'name_label': 'xva-net', 'name_description': '',
                                                 'MTU': '1500', 'other_config': {},
                                                 'bridge': BRIDGES[1]}))
        round_trip(t, a, b, sa, sb, sess_a, sess_b, vm, vdi, content, tmp)
        independent(t, b, sb, sess_b)
        url_import(t, b, sb, sess_b)
        refusals(t, a, sa, sess_a, vm)
        metadata(t, a, sa, sess_a, vm, vdi)
        for s, sess, n in ((sb, sess_b, net_b),):
            value(s.network.destroy(sess, n))
        for r, v in value(sa.VM.get_all_records(sess_a)).items():
            if v['name_label'] == 'xva-vm':
                value(sa.VM.destroy(sess_a, r))
        value(sa.network.destroy(sess_a, net))
    finally:
        a.cleanup()
        b.cleanup()
        for br in BRIDGES:  # network.create made them on this host
            subprocess.run(['ip', 'link', 'del', br], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    t.done()


if __name__ == '__main__':
    main()
