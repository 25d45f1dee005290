#!/usr/bin/env python3
"""tests/integration/test_vdi_delta.py - VHD deltas: GET /export_raw_vdi?format=vhd&base=
and PUT /import_raw_vdi?format=vhd of a delta, checked against VDI.list_changed_blocks.

A tracked VDI is written the way a guest writes it (qemu-io over NBD to `vhd serve` on its
leaf, as test_cbt.py does): a first life over the whole disk, snapshot s1, known writes
(unaligned ones included), snapshot s2. Then:
  - the delta from s1 to s2 is a differencing VHD (read here with a small parser of the
    VHD layout: footer, header, BAT, sector bitmaps) whose parent is s1's image, and the
    64 KiB blocks in which it holds sectors are exactly list_changed_blocks(s1, s2), which
    holds every written block;
  - applied with PUT /import_raw_vdi?format=vhd onto a copy of s1, it reproduces s2 byte for
    byte (qemu-img compare of both exported raw), and leaves the copy's other blocks as
    they were (the copy is not s2 before, is after);
  - a second round (s3) applied on top of that copy reproduces s3: deltas chain;
  - a delta against an unrelated VDI still reproduces the VDI when applied to that VDI's copy;
  - base= with format=raw is refused (INVALID_VALUE), an unknown base is HANDLE_INVALID.
Usage: test_vdi_delta.py BUILD/vesseld BUILD/vhd
"""
import base64
import http.client
import os
import shutil
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Tap, Vesseld, value  # noqa: E402

MiB = 1024 * 1024
K64 = 64 * 1024
SIZE = 16 * MiB


def blocks(b64):
    data = base64.b64decode(b64)
    return {i for i in range(len(data) * 8) if data[i // 8] & (0x80 >> (i % 8))}


def expect(writes):
    out = set()
    for off, n in writes:
        out.update(range(off // K64, (off + n - 1) // K64 + 1))
    return out


def guest_write(vhd, leaf, sock, writes, pattern):
    """Writes (offset, length) ranges into @leaf through `vhd serve` over NBD."""
    srv = subprocess.Popen([vhd, 'serve', '--socket', sock, leaf],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        while not os.path.exists(sock) and time.time() < deadline:
            time.sleep(0.02)
        cmds = []
        for off, n in writes:
            cmds += ['-c', 'write -P 0x%02x %d %d' % (pattern, off, n)]
        subprocess.run(['qemu-io', '-f', 'raw', 'nbd+unix:///?socket=' + sock] + cmds,
                       check=True, capture_output=True)
    finally:
        srv.terminate()
        srv.wait(10)
        if os.path.exists(sock):
            os.unlink(sock)


def vhd_sectors(data):
    """(type, parent uuid, virtual size, set of allocated 512-byte sectors) of a dynamic or
    differencing VHD image held in @data (Microsoft's VHD specification: footer, dynamic
    disk header, BAT, a sector bitmap before each block)."""
    footer = data[-512:]
    assert footer[0:8] == b'conectix', 'no footer cookie'
    data_offset = struct.unpack('>Q', footer[16:24])[0]
    size = struct.unpack('>Q', footer[48:56])[0]
    dtype = struct.unpack('>I', footer[60:64])[0]
    hdr = data[data_offset:data_offset + 1024]
    assert hdr[0:8] == b'cxsparse', 'no dynamic header cookie'
    bat_off = struct.unpack('>Q', hdr[16:24])[0]
    n_bat = struct.unpack('>I', hdr[28:32])[0]
    block = struct.unpack('>I', hdr[32:36])[0]
    parent = hdr[40:56]
    spb = block // 512
    bm_bytes = ((spb + 7) // 8 + 511) // 512 * 512
    sectors = set()
    for i in range(n_bat):
        e = struct.unpack('>I', data[bat_off + 4 * i:bat_off + 4 * i + 4])[0]
        if e == 0xFFFFFFFF:
            continue
        bm = data[e * 512:e * 512 + bm_bytes]
        for s in range(spb):
            if bm[s // 8] & (0x80 >> (s % 8)):
                sectors.add(i * spb + s)
    return dtype, parent, size, sectors


def request(d, method, path, body=None):
    c = http.client.HTTPConnection('127.0.0.1', d.port, timeout=120)
    c.request(method, path, body=body)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def main():
    vesseld, vhd = sys.argv[1], sys.argv[2]
    t = Tap()
    for tool in ('qemu-io', 'qemu-img'):
        if not shutil.which(tool):
            print('1..0 # SKIP %s (qemu-utils) is not installed' % tool)
            return 0
    d = Vesseld(vesseld, extra=['--backend', 'sim'])
    try:
        d.start()
        s = d.proxy()
        sess = d.login()
        sr = value(s.pool.get_all_records(sess)).popitem()[1]['default_SR']
        path = value(s.PBD.get_device_config(sess, value(s.SR.get_PBDs(sess, sr))[0]))['path']
        sock = os.path.join(d.dir, 'nbd.sock')

        def new_vdi(name):
            return value(s.VDI.create(sess, {'name_label': name, 'name_description': '',
                                             'SR': sr, 'virtual_size': str(SIZE),
                                             'type': 'user', 'sharable': False,
                                             'read_only': False, 'other_config': {}}))

        def export(vdi, fmt, base=None):
            q = '/export_raw_vdi?vdi=%s&format=%s&session_id=%s' % (vdi, fmt, sess)
            return request(d, 'GET', q + ('&base=' + base if base else ''))

        def raw_file(vdi, name):
            st, data = export(vdi, 'raw')
            p = os.path.join(d.dir, name)
            with open(p, 'wb') as f:
                f.write(data)
            return st, p

        def same(a, b):
            st1, p1 = raw_file(a, 'a.raw')
            st2, p2 = raw_file(b, 'b.raw')
            r = subprocess.run(['qemu-img', 'compare', '-f', 'raw', '-F', 'raw', p1, p2],
                               capture_output=True, text=True)
            return st1 == 200 and st2 == 200 and r.returncode == 0

        def apply(vdi, delta):
            st, _ = request(d, 'PUT', '/import_raw_vdi?vdi=%s&format=vhd&session_id=%s' % (vdi, sess),
                            delta)
            return st

        vdi = new_vdi('delta')
        leaf = os.path.join(path, value(s.VDI.get_uuid(sess, vdi)) + '.vhd')
        value(s.VDI.enable_cbt(sess, vdi))
        guest_write(vhd, leaf, sock, [(0, SIZE)], 0x11)  # the disk's first life
        s1 = value(s.VDI.snapshot(sess, vdi, {}))
        w1 = [(K64, K64), (3 * MiB + 100, 100), (10 * MiB, 128 * 1024), (SIZE - 512, 512)]
        guest_write(vhd, leaf, sock, w1, 0xab)
        s2 = value(s.VDI.snapshot(sess, vdi, {}))
        lcb = blocks(value(s.VDI.list_changed_blocks(sess, s1, s2)))
        t.ok(lcb >= expect(w1), 'list_changed_blocks(s1, s2) holds every written block',
             sorted(lcb))

        st, delta = export(s2, 'vhd', s1)
        t.eq(st, 200, 'GET /export_raw_vdi?format=vhd&base=s1 of s2: 200')
        dtype, parent, size, sectors = vhd_sectors(delta)
        s1_uuid = value(s.VDI.get_uuid(sess, s1))
        t.eq((dtype, size), (4, SIZE), 'the delta is a differencing VHD of the VDI\'s size')
        with open(os.path.join(path, s1_uuid + '.vhd'), 'rb') as f:
            f.seek(-512, 2)
            s1_id = f.read(512)[68:84]
        t.eq(parent, s1_id, "its parent is s1's image (by uuid)")
        held = {sec * 512 // K64 for sec in sectors}
        t.eq(held, lcb, 'the 64 KiB blocks it holds are exactly list_changed_blocks(s1, s2)')
        t.eq(len(sectors), len(lcb) * (K64 // 512), 'each whole (the CBT granularity)')

        copy = value(s.VDI.copy(sess, s1, sr))
        t.ok(not same(copy, s2), 'a copy of s1 differs from s2')
        t.eq(apply(copy, delta), 200, 'PUT /import_raw_vdi?format=vhd of the delta onto it: 200')
        t.ok(same(copy, s2), 'the copy now equals s2 byte for byte (qemu-img compare)')

        w2 = [(5 * MiB, 3 * K64), (K64 + 10, 20)]
        guest_write(vhd, leaf, sock, w2, 0xcd)
        s3 = value(s.VDI.snapshot(sess, vdi, {}))
        st, delta2 = export(s3, 'vhd', s2)
        t.eq({sec * 512 // K64 for sec in vhd_sectors(delta2)[3]},
             blocks(value(s.VDI.list_changed_blocks(sess, s2, s3))),
             'the second delta holds list_changed_blocks(s2, s3)')
        t.eq(apply(copy, delta2), 200, 'and applies on top of the first')
        t.ok(same(copy, s3), 'giving s3 byte for byte')

        other = new_vdi('other')
        st, delta3 = export(s3, 'vhd', other)
        other_copy = value(s.VDI.copy(sess, other, sr))
        t.ok(st == 200 and apply(other_copy, delta3) == 200 and same(other_copy, s3),
             'a delta against an unrelated VDI still makes its copy equal to the VDI')

        st, body = export(s2, 'raw', s1)
        t.eq((st, body.decode().split()[:2]), (400, ['INVALID_VALUE', 'base']),
             'base= with format=raw: INVALID_VALUE')
        st, body = export(s2, 'vhd', 'OpaqueRef:nope')
        t.eq((st, body.decode().split()[:3]), (404, ['HANDLE_INVALID', 'VDI', 'OpaqueRef:nope']),
             'an unknown base: HANDLE_INVALID')
        left = [f for f in os.listdir(path) if f.endswith('.part')]
        t.eq(left, [], 'no work file is left in the SR')
        t.ok(d.stop() == 0, 'vesseld stops cleanly')
    except Exception as e:  # report, then clean up
        t.ok(False, 'unexpected exception', repr(e))
    finally:
        d.cleanup()
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
