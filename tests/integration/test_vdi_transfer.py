#!/usr/bin/env python3
"""tests/integration/test_vdi_transfer.py - PUT /import_raw_vdi and GET
/export_raw_vdi against a real vesseld (--backend sim).

Raw data goes in and must come back byte for byte; a VHD export must read the
same in qemu-img (`-f vpc`, a reader nobody on the team wrote) and pass
`vhd check`; a VHD made by qemu-img must import. Errors the request's head
shows are HTTP statuses with the task failed; errors in an import's body answer
200 and fail the task (xapi's import_raw_vdi.ml answers 200 before reading the
body; Xen Orchestra's empty probe PUT depends on it); a 200 MiB round trip must not grow the server's RSS past
~50 MiB (sampled from /proc/PID/status while the bytes flow).
Usage: test_vdi_transfer.py BUILD/vesseld BUILD/vhd
"""
import base64
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT_PASSWORD, test_main, value, wait_for  # noqa: E402

MiB = 1024 * 1024


def vdi_args(sr, size, name='xfer'):
    return {'name_label': name, 'name_description': '', 'SR': sr, 'virtual_size': str(size),
            'type': 'user', 'sharable': False, 'read_only': False, 'other_config': {}}


def query(**kw):
    return '&'.join('%s=%s' % (k, v) for k, v in kw.items() if v is not None)


def put(d, path, body, headers=None, chunked=False):
    """PUT @body (bytes, or an iterable of bytes when chunked); (status, headers, data)."""
    c = http.client.HTTPConnection('127.0.0.1', d.port, timeout=120)
    h = dict(headers or {})
    if chunked:
        c.request('PUT', path, body=body, headers=h, encode_chunked=True)
    else:
        c.request('PUT', path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, dict(r.getheaders()), data


def put_refused(d, path, length):
    """Sends only the head of a PUT of @length bytes (Expect: 100-continue) and
    reads the answer the server gives from the head alone: (status, data)."""
    import socket
    sock = socket.create_connection(('127.0.0.1', d.port), timeout=30)
    sock.sendall(('PUT %s HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n'
                  'Expect: 100-continue\r\n\r\n' % (path, length)).encode())
    r = http.client.HTTPResponse(sock)
    r.begin()
    data = r.read()
    sock.close()
    return r.status, data


def get(d, path, headers=None, sink=None):
    """GET; the body is returned, or passed piece by piece to @sink."""
    c = http.client.HTTPConnection('127.0.0.1', d.port, timeout=120)
    c.request('GET', path, headers=headers or {})
    r = c.getresponse()
    if sink is None:
        data = r.read()
    else:
        data = b''
        while True:
            piece = r.read(1 << 20)
            if not piece:
                break
            sink(piece)
    c.close()
    return r.status, dict(r.getheaders()), data


def task_record(s, sess, task):
    return value(s.task.get_record(sess, task))


class RssWatch:
    """Samples VmRSS of @pid (kB) every 20 ms until stopped; keeps the peak."""

    def __init__(self, pid):
        self.pid = pid
        self.peak = 0
        self.first = None
        self.stop_flag = False
        self.thread = threading.Thread(target=self.run, daemon=True)

    def rss(self):
        with open('/proc/%d/status' % self.pid) as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1])
        return 0

    def run(self):
        while not self.stop_flag:
            r = self.rss()
            if self.first is None:
                self.first = r
            self.peak = max(self.peak, r)
            time.sleep(0.02)

    def __enter__(self):
        self.first = self.rss()
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag = True
        self.thread.join()


def raw_round_trip(t, d, s, sess, vdi, tmp):
    data = os.urandom(8 * MiB)
    st, hdr, body = put(d, '/import_raw_vdi?' + query(vdi=vdi, format='raw', session_id=sess),
                        data)
    t.eq(st, 200, 'PUT raw 8 MiB: 200')
    task = hdr.get('Task-Id')
    t.ok(task and task.startswith('OpaqueRef:'), 'the reply names its task', hdr)
    if task:
        rec = task_record(s, sess, task)
        t.eq((rec['status'], float(rec['progress']), rec['name_label']),
             ('success', 1.0, 'VDI import'), 'the import task: success, progress 1.0')
    st, hdr, back = get(d, '/export_raw_vdi?' + query(vdi=vdi, format='raw', session_id=sess))
    t.eq(st, 200, 'GET raw: 200')
    t.eq(int(hdr.get('Content-Length', -1)), 16 * MiB, 'Content-Length is the virtual size')
    t.ok(back[:8 * MiB] == data and back[8 * MiB:] == bytes(8 * MiB),
         'the raw export reads what was imported, then zeros')
    raw = os.path.join(tmp, 'ref.raw')
    with open(raw, 'wb') as f:
        f.write(back)
    # the same with a cookie and with Basic auth, and a chunked upload
    st, _, back2 = get(d, '/export_raw_vdi?vdi=' + vdi, headers={'Cookie': 'session_id=' + sess})
    t.ok(st == 200 and back2 == back, 'session_id as a cookie; format defaults to raw')
    auth = base64.b64encode(('root:' + ROOT_PASSWORD).encode()).decode()
    pieces = [data[i:i + 300000] for i in range(0, len(data), 300000)]
    st, _, _ = put(d, '/import_raw_vdi?vdi=' + vdi, iter(pieces),
                   headers={'Authorization': 'Basic ' + auth}, chunked=True)
    t.eq(st, 200, 'chunked PUT with Basic auth: 200')
    bad = base64.b64encode(b'root:wrong').decode()
    st, hdr, _ = get(d, '/export_raw_vdi?vdi=' + vdi, headers={'Authorization': 'Basic ' + bad})
    t.eq(st, 401, 'a wrong Basic password: 401')
    # Xen Orchestra writes the paths with a slash before the query (issue 14)
    st, _, _ = put(d, '/import_raw_vdi/?' + query(vdi=vdi, format='raw', session_id=sess), data)
    t.eq(st, 200, 'PUT /import_raw_vdi/?... (as Xen Orchestra writes it): 200')
    st, _, back3 = get(d, '/export_raw_vdi/?' + query(vdi=vdi, format='raw', session_id=sess))
    t.ok(st == 200 and back3 == back, 'GET /export_raw_vdi/?... reads the same')
    return data, raw


def vhd_formats(t, d, s, sess, vdi, data, raw, vhd_tool, tmp):
    out = os.path.join(tmp, 'export.vhd')
    st, hdr, body = get(d, '/export_raw_vdi?' + query(vdi=vdi, format='vhd', session_id=sess))
    t.eq(st, 200, 'GET vhd: 200')
    with open(out, 'wb') as f:
        f.write(body)
    r = subprocess.run(['qemu-img', 'compare', '-f', 'vpc', '-F', 'raw', out, raw],
                       capture_output=True, text=True)
    t.ok(r.returncode == 0, 'qemu-img compare: the vhd export holds the same data',
         r.stdout + r.stderr)
    r = subprocess.run([vhd_tool, 'check', out], capture_output=True, text=True)
    t.ok(r.returncode == 0, 'vhd check passes on the vhd export', r.stdout + r.stderr)
    t.ok(len(body) < 12 * MiB, 'the vhd export is sparse (%d bytes)' % len(body))

    # a VHD made by qemu-img, dynamic then fixed, imported and read back raw
    for subformat in ('dynamic', 'fixed'):
        src = os.path.join(tmp, 'src-%s.raw' % subformat)
        other = os.urandom(3 * MiB) + bytes(5 * MiB) + os.urandom(MiB)
        with open(src, 'wb') as f:
            f.write(other)
        img = os.path.join(tmp, 'q-%s.vhd' % subformat)
        subprocess.run(['qemu-img', 'convert', '-f', 'raw', '-O', 'vpc', '-o',
                        'subformat=' + subformat + ',force_size=on', src, img], check=True)
        with open(img, 'rb') as f:
            st, hdr, body = put(d, '/import_raw_vdi?' + query(vdi=vdi, format='vhd',
                                                              session_id=sess), f.read())
        t.eq(st, 200, 'PUT a %s VHD made by qemu-img: 200' % subformat, )
        if st != 200:
            print('#   ' + body.decode(errors='replace'))
        st, _, back = get(d, '/export_raw_vdi?' + query(vdi=vdi, session_id=sess))
        t.ok(back[:len(other)] == other and back[len(other):] == bytes(16 * MiB - len(other)),
             'the %s VHD import replaced the content' % subformat)

    # hostile: garbage, a truncated image: 200, the task fails
    st, hdr, _ = put(d, '/import_raw_vdi?' + query(vdi=vdi, format='vhd', session_id=sess),
                     os.urandom(MiB))
    rec = task_record(s, sess, hdr.get('Task-Id'))
    t.ok(st == 200 and rec['status'] == 'failure' and rec['error_info'][0] == 'IMPORT_ERROR',
         'PUT of garbage as vhd: 200, the task failed with IMPORT_ERROR', (st, rec))
    with open(os.path.join(tmp, 'q-dynamic.vhd'), 'rb') as f:
        img = f.read()
    st, hdr, _ = put(d, '/import_raw_vdi?' + query(vdi=vdi, format='vhd', session_id=sess),
                     img[:len(img) // 2])
    rec = task_record(s, sess, hdr.get('Task-Id'))
    t.ok(st == 200 and rec['status'] == 'failure', 'PUT of a truncated vhd: the task failed',
         (st, rec))
    base = os.path.join(tmp, 'base.vhd')
    child = os.path.join(tmp, 'child.vhd')
    subprocess.run([vhd_tool, 'create', '--size', '16M', base], check=True, capture_output=True)
    subprocess.run([vhd_tool, 'snapshot', base, child], check=True, capture_output=True)
    _, _, before = get(d, '/export_raw_vdi?' + query(vdi=vdi, session_id=sess))
    with open(child, 'rb') as f:
        st, hdr, _ = put(d, '/import_raw_vdi?' + query(vdi=vdi, format='vhd', session_id=sess),
                         f.read())
    rec = task_record(s, sess, hdr.get('Task-Id'))
    _, _, after = get(d, '/export_raw_vdi?' + query(vdi=vdi, session_id=sess))
    t.ok(st == 200 and rec['status'] == 'success' and after == before,
         'a differencing VHD is a delta (test_vdi_delta.py): an empty one changes nothing',
         (st, rec))


def xo_probe_then_stream(t, d, s, sess, vdi, vhd_tool, tmp):
    """Xen Orchestra's putResource (packages/xen-api): for a streamed body it
    first sends the same PUT with an empty body, Content-Length 0 and no
    task_id ("this request will fail on purpose") to catch a 302 redirect;
    it throws on any other error status. On 200 it sends the real request,
    with its task_id, and waits for that task."""
    img = os.path.join(tmp, 'xo.vhd')
    subprocess.run([vhd_tool, 'create', '--size', '16M', img], check=True, capture_output=True)
    with open(img, 'rb') as f:
        data = f.read()
    path = '/import_raw_vdi/?' + query(format='vhd', vdi=vdi, session_id=sess)
    st, hdr, _ = put(d, path, b'', headers={'Content-Length': '0'})
    probe = hdr.get('Task-Id')
    rec = task_record(s, sess, probe) if probe else {}
    t.ok(st == 200 and rec.get('status') == 'failure',
         'XO\'s empty probe PUT (format=vhd, no task): 200, its own task failed', (st, rec))
    task = value(s.task.create(sess, 'VDI import', ''))
    st, hdr, _ = put(d, path + '&task_id=' + task, data,
                     headers={'Content-Length': str(len(data))})
    rec = task_record(s, sess, task)
    t.ok(st == 200 and hdr.get('Task-Id') == task and rec['status'] == 'success' and
         rec['result'] == '<value>%s</value>' % vdi,
         'XO\'s real PUT: 200, its task succeeded with the VDI as result', (st, rec))
    st, _, back = get(d, '/export_raw_vdi?' + query(vdi=vdi, session_id=sess))
    t.ok(st == 200 and back == bytes(16 * MiB), 'the streamed (empty) image replaced the content')


def errors(t, d, s, sess, vdi):
    st, hdr, body = put(d, '/import_raw_vdi?' + query(vdi=vdi, session_id='OpaqueRef:bogus'),
                        b'x' * 10)
    t.ok(st == 401 and body.startswith(b'SESSION_INVALID'), 'a bad session: 401', (st, body))
    st, _, _ = get(d, '/export_raw_vdi?vdi=' + vdi)
    t.eq(st, 401, 'no credentials at all: 401')
    st, _, body = get(d, '/export_raw_vdi?' + query(vdi='OpaqueRef:nope', session_id=sess))
    t.ok(st == 404 and body.startswith(b'HANDLE_INVALID'), 'an unknown VDI: 404', (st, body))
    st, _, body = get(d, '/export_raw_vdi?' + query(vdi=vdi, format='qcow2', session_id=sess))
    t.ok(st == 400 and body.startswith(b'INVALID_VALUE'), 'a bad format: 400', (st, body))
    task = value(s.task.create(sess, 'client task', ''))
    st, body = put_refused(d, '/import_raw_vdi?' + query(vdi=vdi, session_id=sess, task_id=task),
                           17 * MiB)
    t.ok(st == 400 and body.startswith(b'VDI_TOO_SMALL'),
         'a body longer than the VDI (Content-Length): 400 VDI_TOO_SMALL', (st, body))
    rec = task_record(s, sess, task)
    t.ok(rec['status'] == 'failure' and rec['error_info'][0] == 'VDI_TOO_SMALL',
         'the client task failed with VDI_TOO_SMALL', rec)
    pieces = [bytes(MiB)] * 17
    st, hdr, _ = put(d, '/import_raw_vdi?' + query(vdi=vdi, session_id=sess), iter(pieces),
                     chunked=True)
    rec = task_record(s, sess, hdr.get('Task-Id'))
    t.ok(st == 200 and rec['status'] == 'failure' and rec['error_info'][0] == 'VDI_TOO_SMALL',
         'a chunked body longer than the VDI: 200, the task failed with VDI_TOO_SMALL',
         (st, rec))
    task = value(s.task.create(sess, 'client task 2', ''))
    st, hdr, _ = get(d, '/export_raw_vdi?' + query(vdi=vdi, session_id=sess, task_id=task))
    # the last byte reaches the client before the server's write of it has
    # returned and it can close the task: a client waits for the task, as
    # XO does (its event loop), not for the body's end
    wait_for(lambda: task_record(s, sess, task)['status'] != 'pending', 10)
    rec = task_record(s, sess, task)
    t.ok(st == 200 and hdr.get('Task-Id') == task and rec['status'] == 'success' and
         float(rec['progress']) == 1.0, 'task_id: the client task reports the export', rec)


def export_failures(t, d, s, sess, sr):
    """Issue 11, finding 16: an export that cannot read its VDI answers what
    xapi's export_raw_vdi.ml does, never IMPORT_ERROR, and no answer names a
    server path (the log does)."""
    sr_dir = os.path.join(d.dir, 'data', 'sr', 'local')
    secret = os.path.join(d.dir, 'data')
    vdi = value(s.VDI.create(sess, vdi_args(sr, 4 * MiB, 'damaged')))
    uuid = value(s.VDI.get_uuid(sess, vdi))
    with open(os.path.join(sr_dir, uuid + '.vhd'), 'r+b') as f:
        size = f.seek(0, 2)
        f.seek(0)
        f.write(b'\xff' * 1024)        # the footer copy, and the header behind it
        f.seek(size - 512)
        f.write(b'\xff' * 512)         # and the footer itself
    for fmt in ('raw', 'vhd'):
        task = value(s.task.create(sess, 'export ' + fmt, ''))
        st, _, body = get(d, '/export_raw_vdi?' + query(vdi=vdi, format=fmt, session_id=sess,
                                                        task_id=task))
        rec = task_record(s, sess, task)
        t.ok(st == 500 and body == b'VDI_IO_ERROR Device I/O errors\n',
             'export (%s) of a damaged VDI: VDI_IO_ERROR, not IMPORT_ERROR' % fmt, (st, body))
        t.eq(rec['error_info'], ['VDI_IO_ERROR', 'Device I/O errors'],
             'the task fails with the same error (%s)' % fmt)
        t.ok(secret.encode() not in body and secret not in repr(rec),
             'no server path in the answer or the task (%s)' % fmt, (body, rec))
    os.unlink(os.path.join(sr_dir, uuid + '.vhd'))
    st, _, body = get(d, '/export_raw_vdi?' + query(vdi=vdi, session_id=sess))
    t.ok(st == 404 and body == ('VDI_MISSING %s %s\n' % (sr, vdi)).encode(),
         'export of a VDI whose file is gone: 404 VDI_MISSING [sr, vdi]', (st, body))
    st, _, body = put(d, '/import_raw_vdi?' + query(vdi=vdi, session_id=sess), b'x' * 512)
    t.ok(st >= 400 and secret.encode() not in body and b'/' not in body,
         'import into it: refused without a server path', (st, body))
    e = s.VDI.resize(sess, vdi, str(8 * MiB))
    t.ok(e['Status'] == 'Failure' and secret not in repr(e), 'API errors name no server path', e)
    with open(d.log_path) as f:
        log = f.read()
    t.ok('vdi.transfer_detail' in log and sr_dir in log, 'the log keeps the detail with the path')
    t.ok(value(s.VDI.get_all(sess)) is not None, 'vesseld keeps serving')
    value(s.VDI.forget(sess, vdi))


def big_transfer(t, d, s, sess, sr, tmp):
    size = 200 * MiB
    vdi = value(s.VDI.create(sess, vdi_args(sr, size, 'big')))
    pid = d.proc.pid
    chunk = os.urandom(MiB)

    def body():
        for i in range(200):
            yield chunk[i:] + chunk[:i]

    with RssWatch(pid) as w:
        st, _, _ = put(d, '/import_raw_vdi?' + query(vdi=vdi, session_id=sess), body(),
                       chunked=True)
    t.eq(st, 200, 'PUT 200 MiB: 200')
    t.ok(w.peak - w.first < 50 * 1024, 'RSS grew by %d KiB during the import (< 50 MiB)'
         % (w.peak - w.first))
    state = {'n': 0, 'ok': True}

    def sink(piece):
        off = state['n']
        i = off // MiB
        want = (chunk[i:] + chunk[:i])
        lo = off % MiB
        # pieces are 1 MiB reads but may straddle: compare piecewise
        pos = 0
        while pos < len(piece):
            i = (off + pos) // MiB
            want = chunk[i:] + chunk[:i]
            lo = (off + pos) % MiB
            n = min(len(piece) - pos, MiB - lo)
            if piece[pos:pos + n] != want[lo:lo + n]:
                state['ok'] = False
            pos += n
        state['n'] += len(piece)

    with RssWatch(pid) as w:
        st, _, _ = get(d, '/export_raw_vdi?' + query(vdi=vdi, session_id=sess), sink=sink)
    t.ok(st == 200 and state['n'] == size and state['ok'], 'GET 200 MiB reads it back exactly')
    t.ok(w.peak - w.first < 50 * 1024, 'RSS grew by %d KiB during the export (< 50 MiB)'
         % (w.peak - w.first))
    value(s.VDI.destroy(sess, vdi))


def main():
    binary, vhd_tool = sys.argv[1], sys.argv[2]
    tmp = tempfile.mkdtemp(prefix='vessel-xfer-')
    return test_main(binary, lambda t, d: run(t, d, vhd_tool, tmp), ['--backend', 'sim'],
                     after=lambda: shutil.rmtree(tmp, ignore_errors=True))


def run(t, d, vhd_tool, tmp):
    s = d.proxy()
    sess = d.login()
    st, _, _ = get(d, '/export_raw_vdi')
    if not t.ok(st == 401, 'the transfer routes are registered', 'status %d' % st):
        return
    pool = value(s.pool.get_all(sess))[0]
    sr = value(s.pool.get_default_SR(sess, pool))
    vdi = value(s.VDI.create(sess, vdi_args(sr, 16 * MiB)))
    data, raw = raw_round_trip(t, d, s, sess, vdi, tmp)
    vhd_formats(t, d, s, sess, vdi, data, raw, vhd_tool, tmp)
    xo_probe_then_stream(t, d, s, sess, vdi, vhd_tool, tmp)
    errors(t, d, s, sess, vdi)
    export_failures(t, d, s, sess, sr)
    big_transfer(t, d, s, sess, sr, tmp)
    r = subprocess.run([vhd_tool, 'check', os.path.join(
        d.dir, 'data', 'sr', 'local', value(s.VDI.get_uuid(sess, vdi)) + '.vhd')],
        capture_output=True, text=True)
    t.ok(r.returncode == 0, 'the VDI passes vhd check after every transfer',
         r.stdout + r.stderr)
    leftovers = [n for n in os.listdir(os.path.join(d.dir, 'data', 'sr', 'local'))
                 if n.endswith('.part')]
    t.eq(leftovers, [], 'no work files are left in the SR')


if __name__ == '__main__':
    sys.exit(main())
