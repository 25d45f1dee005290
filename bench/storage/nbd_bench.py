#!/usr/bin/env python3
"""bench/storage/nbd_bench.py - read throughput of a VDI over NBD with TLS, against nbdkit.

A 512 MiB VDI filled with random bytes (every block allocated) is served by vesseld's NBD
server (TLS required: a network has the purpose nbd); `nbdkit --tls=require file` serves a
raw file of the same bytes with the same key and certificate. Both are read whole by
`nbdcopy URI null:` over TCP on 127.0.0.1, each client skipping certificate verification
the same way, in the same run, alternately, RUNS times each; the median is printed, with
the ratio vesseld/nbdkit. Two client shapes: nbdcopy's default (4 connections, both servers
advertise multi-conn) and --connections=1. Both sources sit in the page cache, so the
figures measure the servers (TLS, the VHD lookup) rather than the disk.
Usage: nbd_bench.py BUILD_DIR [RUNS=5]
"""
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'tests', 'integration'))
from harness import Vesseld, value  # noqa: E402

MiB = 1024 * 1024
SIZE = 512 * MiB


def wait_port(port, timeout=10):
    import socket
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(('127.0.0.1', port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def copy_seconds(uri, connections):
    args = ['nbdcopy'] + (['--connections=%d' % connections] if connections else []) + [uri, 'null:']
    t0 = time.monotonic()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - t0


def main():
    build = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    for tool in ('nbdcopy', 'nbdkit'):
        if not shutil.which(tool):
            print('nbd_bench: %s is not installed; skipped' % tool)
            return 0
    tmp = tempfile.mkdtemp(prefix='vessel-nbd-bench-')
    d = Vesseld(os.path.join(build, 'vesseld'), nbd=True, extra=['--backend', 'sim'])
    kit = None
    try:
        raw = os.path.join(tmp, 'disk.raw')
        with open(raw, 'wb') as f:
            for _ in range(SIZE // (8 * MiB)):
                f.write(os.urandom(8 * MiB))
        d.start()
        s = d.proxy()
        sess = d.login()
        sr = value(s.pool.get_all_records(sess)).popitem()[1]['default_SR']
        vdi = value(s.VDI.create(sess, {'name_label': 'bench', 'name_description': '', 'SR': sr,
                                        'virtual_size': str(SIZE), 'type': 'user',
                                        'sharable': False, 'read_only': False,
                                        'other_config': {}}))
        c = http.client.HTTPConnection('127.0.0.1', d.port, timeout=600)
        with open(raw, 'rb') as f:
            c.request('PUT', '/import_raw_vdi?vdi=%s&session_id=%s' % (vdi, sess), body=f,
                      headers={'Content-Length': str(SIZE)})
            r = c.getresponse()
            r.read()
        c.close()
        if r.status != 200:
            raise RuntimeError('import: %d' % r.status)
        net = value(s.network.get_all(sess))[0]
        value(s.network.add_purpose(sess, net, 'nbd'))
        uuid = value(s.VDI.get_uuid(sess, vdi))
        name = '/%s?session_id=%s' % (uuid, sess)
        ours = 'nbds://127.0.0.1:%d/%s?tls-verify-peer=false' % (
            d.nbd_port, urllib.parse.quote(name, safe='/:'))
        # nbdkit wants ca-cert.pem, server-cert.pem and server-key.pem in one directory
        pki = os.path.join(tmp, 'pki')
        os.makedirs(pki)
        tls = os.path.join(d.dir, 'data', 'tls')
        shutil.copy(os.path.join(tls, 'cert.pem'), os.path.join(pki, 'ca-cert.pem'))
        shutil.copy(os.path.join(tls, 'cert.pem'), os.path.join(pki, 'server-cert.pem'))
        shutil.copy(os.path.join(tls, 'key.pem'), os.path.join(pki, 'server-key.pem'))
        import socket
        sk = socket.socket()
        sk.bind(('127.0.0.1', 0))
        kport = sk.getsockname()[1]
        sk.close()
        kit = subprocess.Popen(['nbdkit', '-f', '--exit-with-parent', '-i', '127.0.0.1',
                                '-p', str(kport), '--tls=require', '--tls-certificates=' + pki,
                                'file', 'file=' + raw, 'cache=default'],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_port(kport):
            raise RuntimeError('nbdkit did not start')
        theirs = 'nbds://127.0.0.1:%d/?tls-verify-peer=false' % kport
        # warm both (page cache, TLS session set-up paths), then alternate
        copy_seconds(ours, 0)
        copy_seconds(theirs, 0)
        print('NBD read with TLS: %d MiB VDI (random, allocated), nbdcopy to null:, '
              'median of %d, 127.0.0.1' % (SIZE // MiB, runs))
        print('%-22s%14s%14s%8s' % ('client', 'vesseld MiB/s', 'nbdkit MiB/s', 'ratio'))
        for conns, label in ((0, 'nbdcopy (4 conns)'), (1, 'nbdcopy --connections=1')):
            a, b = [], []
            for _ in range(runs):
                a.append(copy_seconds(ours, conns))
                b.append(copy_seconds(theirs, conns))
            va = SIZE / MiB / statistics.median(a)
            vb = SIZE / MiB / statistics.median(b)
            print('%-22s%14.0f%14.0f%8.2f' % (label, va, vb, va / vb))
        return 0
    finally:
        if kit:
            kit.terminate()
            kit.wait(10)
        d.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
