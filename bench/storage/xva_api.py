#!/usr/bin/env python3
"""bench/storage/xva_api.py - XVA export and import throughput against tar.

One VM with a 256 MiB disk holding 64 MiB of random bytes, 64 MiB of text
(compressible) and 128 MiB of zeros. In the same run:
- GET /export with use_compression none, gzip, zstd: seconds, MiB/s of the
  disk's virtual size, bytes on the wire;
- PUT /import of each archive (same host): seconds, MiB/s;
- the baseline: the same disk as a raw file (from /export_raw_vdi) through
  `tar cf -`, `tar cf - | gzip`, `tar cf - | zstd` and back (`tar xf`), timed
  the same way, on the same machine at the same moment.
The figures are machine-dependent and printed, not asserted; the `xva/tar`
column says how far the XVA path is from the tools a user would pipe.
Usage: xva_api.py BUILD_DIR
"""
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'tests', 'integration'))
from harness import Vesseld, value  # noqa: E402

MiB = 1024 * 1024
SIZE = 256 * MiB


def request(d, method, path, body=None, sink=None):
    c = http.client.HTTPConnection('127.0.0.1', d.port, timeout=600)
    c.request(method, path, body=body)
    r = c.getresponse()
    n = 0
    data = b''
    while True:
        piece = r.read(1 << 20)
        if not piece:
            break
        n += len(piece)
        if sink:
            sink.write(piece)
        else:
            data += piece
    c.close()
    return r.status, n, data


def timed(fn):
    t0 = time.monotonic()
    out = fn()
    return time.monotonic() - t0, out


def shell(cmd):
    subprocess.run(cmd, shell=True, check=True, stdout=subprocess.DEVNULL)


def main():
    build = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix='vessel-bench-xva-')
    d = Vesseld(os.path.join(build, 'vesseld'), extra=['--backend', 'sim'])
    rows = []
    try:
        d.start()
        s = d.proxy()
        sess = d.login()
        sr = value(s.pool.get_all_records(sess)).popitem()[1]['default_SR']
        tmpl = [r for r, v in value(s.VM.get_all_records(sess)).items()
                if v['name_label'] == 'Direct kernel boot'][0]
        vm = value(s.VM.clone(sess, tmpl, 'bench-xva'))
        value(s.VM.set_is_a_template(sess, vm, False))
        for vbd in value(s.VM.get_VBDs(sess, vm)):  # the template's disk: not measured
            vdi = value(s.VBD.get_VDI(sess, vbd))
            value(s.VBD.destroy(sess, vbd))
            if vdi != 'OpaqueRef:NULL':
                value(s.VDI.destroy(sess, vdi))
        vdi = value(s.VDI.create(sess, {'name_label': 'bench', 'name_description': '', 'SR': sr,
                                        'virtual_size': str(SIZE), 'type': 'user',
                                        'sharable': False, 'read_only': False,
                                        'other_config': {}}))
        blob = os.urandom(64 * MiB) + b''.join(b'line %08d of a log the guest wrote\n' % i
                                              for i in range(64 * MiB // 36 + 1))[:64 * MiB]
        blob += bytes(SIZE - len(blob))
        st, _, _ = request(d, 'PUT', '/import_raw_vdi?vdi=%s&format=raw&session_id=%s'
                           % (vdi, sess), blob)
        assert st == 200, st
        value(s.VBD.create(sess, {'VM': vm, 'VDI': vdi, 'userdevice': '0', 'bootable': True,
                                  'mode': 'RW', 'type': 'Disk', 'unpluggable': False,
                                  'empty': False, 'other_config': {},
                                  'qos_algorithm_type': '', 'qos_algorithm_params': {}}))
        raw = os.path.join(tmp, 'disk.raw')
        with open(raw, 'wb') as f:
            f.write(blob)
        del blob
        for comp in ('false', 'gzip', 'zstd'):
            path = os.path.join(tmp, 'vm-%s.xva' % comp)
            with open(path, 'wb') as f:
                secs, (st, n, _) = timed(lambda: request(
                    d, 'GET', '/export?ref=%s&use_compression=%s&session_id=%s'
                    % (vm, comp, sess), sink=f))
            assert st == 200, st
            with open(path, 'rb') as f:
                body = f.read()
            isecs, (ist, _, _) = timed(lambda: request(
                d, 'PUT', '/import?sr_id=%s&session_id=%s' % (sr, sess), body))
            assert ist == 200, ist
            rows.append(('xva ' + ('none' if comp == 'false' else comp), secs, n, isecs))
        for name, pack, unpack in (
                ('tar none', 'tar cf {o} -C {d} disk.raw', 'tar xf {o} -C {x}'),
                ('tar gzip', 'tar cf - -C {d} disk.raw | gzip -6 > {o}',
                 'gzip -dc {o} | tar xf - -C {x}'),
                ('tar zstd', 'tar cf - -C {d} disk.raw | zstd -q -3 > {o}',
                 'zstd -qdc {o} | tar xf - -C {x}')):
            out = os.path.join(tmp, name.replace(' ', '.'))
            x = os.path.join(tmp, 'x')
            os.makedirs(x, exist_ok=True)
            secs, _ = timed(lambda: shell(pack.format(o=out, d=tmp)))
            isecs, _ = timed(lambda: shell(unpack.format(o=out, x=x)))
            rows.append((name, secs, os.path.getsize(out), isecs))
            shutil.rmtree(x)
    finally:
        d.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    print('XVA export/import of a 256 MiB disk (64 MiB random, 64 MiB text, 128 MiB zeros)')
    print('%-10s %9s %10s %12s %9s %10s %8s %8s' % ('path', 'export s', 'MiB/s', 'bytes',
                                                  'import s', 'MiB/s', 'exp/tar', 'imp/tar'))
    base = {r[0].split()[1]: r for r in rows if r[0].startswith('tar')}
    for name, secs, n, isecs in rows:
        b = base[name.split()[1]]
        print('%-10s %9.2f %10.1f %12d %9.2f %10.1f %8.2f %8.2f' % (
            name, secs, SIZE / MiB / secs, n, isecs, SIZE / MiB / isecs, secs / b[1],
            isecs / b[3]))
    for name, secs, n, isecs in rows:
        print('bench.xva path="%s" export_s=%.3f import_s=%.3f bytes=%d' % (name, secs, isecs, n))


if __name__ == '__main__':
    main()
