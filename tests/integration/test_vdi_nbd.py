#!/usr/bin/env python3
"""tests/integration/test_vdi_nbd.py - VDIs over NBD with TLS, as xapi-nbd serves them,
and VDI.get_nbd_info.

Runs inside a network namespace of its own (harness.run_in_netns), so that the NBD
server can listen on xapi's port 10809 and a PIF can carry an address: a veth is the
host's NIC (VESSEL_NET_EXTRA_NICS, as test_network_api.py), PIF.scan records it,
PIF.reconfigure_ip gives it 192.0.2.5. The host's certificate is one the test signs
with a CA of its own (SANs nbd.vessel.test, 192.0.2.5, 127.0.0.1), so that clients
verify the server as backup tools would.

A VDI gets known content, is snapshotted, and then changed; the snapshot must then read
back over NBD exactly as it was written:
  - get_nbd_info is empty until a network has the purpose nbd, then gives xapi's record
    (exportname /<uuid>?session_id=<session>, 192.0.2.5, 10809, the certificate, its
    DNS subject); a cbt_metadata VDI is refused as xapi refuses it (VDI_INCOMPATIBLE_TYPE,
    and ERR_POLICY over NBD);
  - nbdcopy (libnbd) and qemu-img, both verifying the certificate against the CA, read
    the snapshot equal to what was written, and not the VDI's later content;
  - a raw client (this script, with Python's ssl after STARTTLS) gets xapi-nbd's
    refusals: a made-up session, a logged-out session and a read-only account's session
    are refused (ERR_POLICY), an unknown VDI is unknown (ERR_UNKNOWN), a client that does
    not start TLS on an nbd network gets ERR_TLS_REQD, and EXPORT_NAME in clear is closed;
  - with insecure_nbd instead, a plain nbdcopy reads the snapshot; with both purposes on
    different networks, or none, a connection is closed before the greeting (xapi-nbd's
    "contradictory configuration" and "no network has purpose nbd");
  - 8 TLS clients at once read the snapshot correctly; 16 clients stalled in the
    handshake fill the server, a 17th is closed at once, and every stalled one (in
    clear, and after STARTTLS without a TLS handshake) is dropped once the negotiation
    deadline passed (--nbd-negotiate-timeout 8: long enough for the 17 connections to be
    made first even on a loaded machine); then a client is served again;
  - vesseld stops cleanly with a client still connected.
Usage: test_vdi_nbd.py BUILD/vesseld
"""
import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Tap, Vesseld, add_account, error, run_in_netns, value, wait_for  # noqa: E402

MiB = 1024 * 1024
SIZE = 64 * MiB
NIC, NIC_PEER = 'vnbd0', 'vnbd0p'
ADDR = '192.0.2.5'
PORT = 10809
SUBJECT = 'nbd.vessel.test'
IHAVEOPT = 0x49484156454F5054
OPT_EXPORT_NAME, OPT_ABORT, OPT_STARTTLS, OPT_GO = 1, 2, 5, 7
REP_ACK, REP_INFO = 1, 3
ERR_POLICY, ERR_TLS_REQD, ERR_UNKNOWN = 0x80000002, 0x80000005, 0x80000006


def run(*args, **kw):
    return subprocess.run(list(args), capture_output=True, text=True, **kw)


def make_pki(d):
    """A CA, and the host's key and certificate signed by it. Returns the CA directory
    (ca-cert.pem, as qemu's and libnbd's tls-certificates want it), cert and key paths."""
    ca_dir = os.path.join(d, 'ca')
    os.makedirs(ca_dir)
    ca_key, ca = os.path.join(d, 'ca.key'), os.path.join(ca_dir, 'ca-cert.pem')
    key, cert, csr = os.path.join(d, 'key.pem'), os.path.join(d, 'cert.pem'), os.path.join(d, 'srv.csr')
    ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
    run('openssl', 'req', '-x509', *ec, '-keyout', ca_key, '-out', ca, '-days', '2',
        '-subj', '/CN=vessel test CA', '-addext', 'basicConstraints=critical,CA:TRUE',
        '-addext', 'keyUsage=critical,keyCertSign,cRLSign', check=True)
    run('openssl', 'req', *ec, '-keyout', key, '-out', csr, '-subj', '/CN=' + SUBJECT, check=True)
    ext = os.path.join(d, 'ext.cnf')
    with open(ext, 'w') as f:
        f.write('subjectAltName=DNS:%s,IP:%s,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n'
                'keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' % (SUBJECT, ADDR))
    run('openssl', 'x509', '-req', '-in', csr, '-CA', ca, '-CAkey', ca_key, '-CAcreateserial',
        '-out', cert, '-days', '2', '-extfile', ext, check=True)
    return ca_dir, cert, key


def put_raw(d, sess, vdi, data):
    import http.client
    c = http.client.HTTPConnection('127.0.0.1', d.port, timeout=120)
    c.request('PUT', '/import_raw_vdi?vdi=%s&format=raw&session_id=%s' % (vdi, sess), body=data)
    r = c.getresponse()
    r.read()
    c.close()
    return r.status


def nbd_uri(name, tls=True, ca_dir=None, host=ADDR):
    uri = '%s://%s:%d/%s' % ('nbds' if tls else 'nbd', host, PORT, urllib.parse.quote(name, safe='/:'))
    return uri + ('?tls-certificates=' + ca_dir if tls and ca_dir else '')


def recvall(s, n):
    b = b''
    while len(b) < n:
        try:
            chunk = s.recv(n - len(b))
        except (ConnectionResetError, ssl.SSLError):
            chunk = b''
        if not chunk:
            return None
        b += chunk
    return b


def send_opt(s, opt, data=b''):
    s.sendall(struct.pack('>QII', IHAVEOPT, opt, len(data)) + data)


def opt_reply(s):
    h = recvall(s, 20)
    if h is None:
        return None, b''
    _, _, typ, ln = struct.unpack('>QIII', h)
    return typ, recvall(s, ln) if ln else b''


def greet(host=ADDR):
    """A connection that read the greeting and sent its flags, or None if closed first."""
    s = socket.create_connection((host, PORT), timeout=30)
    g = recvall(s, 18)
    if g is None:
        s.close()
        return None
    s.sendall(struct.pack('>I', 3))
    return s


def starttls(s, ca_dir):
    send_opt(s, OPT_STARTTLS)
    typ, _ = opt_reply(s)
    if typ != REP_ACK:
        return None, typ
    ctx = ssl.create_default_context(cafile=os.path.join(ca_dir, 'ca-cert.pem'))
    return ctx.wrap_socket(s, server_hostname=ADDR), typ


def go(s, name):
    """The first reply type to NBD_OPT_GO that is not INFO (REP_ACK: served)."""
    n = name.encode()
    send_opt(s, OPT_GO, struct.pack('>I', len(n)) + n + struct.pack('>H', 0))
    while True:
        typ, _ = opt_reply(s)
        if typ != REP_INFO:
            return typ


def go_tls(name, ca_dir):
    s = greet()
    if s is None:
        return 'closed'
    t, typ = starttls(s, ca_dir)
    if t is None:
        s.close()
        return typ
    r = go(t, name)
    t.close()
    return r


def closed_soon(s, timeout):
    """Whether the server closes @s (EOF) within @timeout seconds."""
    s.settimeout(timeout)
    try:
        while True:
            b = s.recv(4096)
            if not b:
                return True
    except (ConnectionResetError, ssl.SSLError):
        return True
    except socket.timeout:
        return False


def checks(t, d, tmp, ca_dir, cert_path):
    s = d.proxy()
    sess = d.login()
    host = value(s.pool.get_all_records(sess)).popitem()[1]['master']
    sr = value(s.pool.get_all_records(sess)).popitem()[1]['default_SR']
    vdi = value(s.VDI.create(sess, {'name_label': 'nbd', 'name_description': '', 'SR': sr,
                                    'virtual_size': str(SIZE), 'type': 'user', 'sharable': False,
                                    'read_only': False, 'other_config': {}}))
    # content A: data at the start and at 33 MiB, zeros elsewhere
    a = bytearray(SIZE)
    a[0:3 * MiB] = os.urandom(3 * MiB)
    a[33 * MiB:34 * MiB] = os.urandom(MiB)
    expect = os.path.join(tmp, 'expect.raw')
    with open(expect, 'wb') as f:
        f.write(a)
    t.eq(put_raw(d, sess, vdi, bytes(a[:34 * MiB])), 200, 'the VDI gets known content')
    snap = value(s.VDI.snapshot(sess, vdi, {}))
    snap_uuid = value(s.VDI.get_uuid(sess, snap))
    t.eq(put_raw(d, sess, vdi, b'\xee' * MiB), 200, 'and is changed after its snapshot')

    t.eq(value(s.VDI.get_nbd_info(sess, snap)), [], 'get_nbd_info: empty while no network has an NBD purpose')
    value(s.PIF.scan(sess, host))
    pif = [r for r, p in value(s.PIF.get_all_records(sess)).items() if p['device'] == NIC][0]
    value(s.PIF.reconfigure_ip(sess, pif, 'Static', ADDR, '255.255.255.0', '', ''))
    net = value(s.PIF.get_network(sess, pif))
    t.eq(value(s.VDI.get_nbd_info(sess, snap)), [], 'and while the PIF\'s network has none')
    value(s.PIF.plug(sess, pif))
    t.eq(value(s.VDI.get_nbd_info(sess, snap)), [], 'and while it has none, its PIF plugged')
    value(s.network.add_purpose(sess, net, 'nbd'))
    info = value(s.VDI.get_nbd_info(sess, snap))
    cert = open(cert_path).read()
    want = {'exportname': '/%s?session_id=%s' % (snap_uuid, sess), 'address': ADDR, 'port': str(PORT),
            'cert': cert, 'subject': SUBJECT}
    t.eq(info, [want], "get_nbd_info: xapi's record for the PIF's address on the nbd network")
    name = info[0]['exportname'] if info else want['exportname']
    meta = value(s.VDI.create(sess, {'name_label': 'meta', 'name_description': '', 'SR': sr,
                                     'virtual_size': str(MiB), 'type': 'cbt_metadata',
                                     'sharable': False, 'read_only': False, 'other_config': {}}))
    t.eq(error(s.VDI.get_nbd_info(sess, meta)), ['VDI_INCOMPATIBLE_TYPE', meta, 'cbt_metadata'],
         'get_nbd_info of a cbt_metadata VDI: VDI_INCOMPATIBLE_TYPE')
    meta_name = '/%s?session_id=%s' % (value(s.VDI.get_uuid(sess, meta)), sess)

    # real clients, verifying the host against the CA
    out = os.path.join(tmp, 'nbdcopy.raw')
    r = run('nbdcopy', nbd_uri(name, ca_dir=ca_dir), out)
    t.ok(r.returncode == 0 and open(out, 'rb').read() == bytes(a),
         'nbdcopy over NBD with TLS reads the snapshot as written', r.stderr)
    os.unlink(out)
    qemu_obj = 'tls-creds-x509,id=tls0,dir=%s,endpoint=client' % ca_dir
    opts = 'driver=nbd,host=%s,port=%d,export=%s,tls-creds=tls0' % (ADDR, PORT, name)
    r = run('qemu-img', 'compare', '--object', qemu_obj, '--image-opts', opts,
            'driver=raw,file.filename=' + expect)
    t.ok(r.returncode == 0, 'qemu-img compare over NBD with TLS: the snapshot equals its content',
         r.stdout + r.stderr)
    r = run('nbdinfo', '--map', nbd_uri(name, ca_dir=ca_dir))
    holes = [ln.split() for ln in r.stdout.splitlines() if 'hole' in ln]
    t.ok(r.returncode == 0 and any(int(h[0]) <= 34 * MiB and int(h[0]) + int(h[1]) >= SIZE
                                   for h in holes),
         'base:allocation reports the unwritten end as a hole', r.stdout + r.stderr)
    vdi_uuid = value(s.VDI.get_uuid(sess, vdi))
    r = run('qemu-img', 'compare', '--object', qemu_obj, '--image-opts',
            opts.replace(snap_uuid, vdi_uuid), 'driver=raw,file.filename=' + expect)
    t.eq(r.returncode, 1, 'and the VDI itself, changed since, differs from it')

    # refusals, as a raw client sees them
    t.eq(go_tls('/%s?session_id=OpaqueRef:00000000-0000-0000-0000-000000000000' % snap_uuid, ca_dir),
         ERR_POLICY, 'a made-up session: ERR_POLICY')
    t.eq(go_tls('/%s' % snap_uuid, ca_dir), ERR_POLICY, 'no session: ERR_POLICY')
    t.eq(go_tls('/%s?session_id=%s' % ('0' * 8 + '-0000-0000-0000-' + '0' * 12, sess), ca_dir),
         ERR_UNKNOWN, 'an unknown VDI: ERR_UNKNOWN')
    t.eq(go_tls('not-a-uri', ca_dir), ERR_UNKNOWN, 'a name of another form: ERR_UNKNOWN')
    t.eq(go_tls(meta_name, ca_dir), ERR_POLICY, 'a cbt_metadata VDI: ERR_POLICY')
    add_account(d, sess, 'nbdreader', 'pw-nbdreader', 'read-only')
    ro = value(d.proxy().session.login_with_password('nbdreader', 'pw-nbdreader', '1.0', 'test'))
    t.eq(go_tls('/%s?session_id=%s' % (snap_uuid, ro), ca_dir), ERR_POLICY,
         'a read-only session (vm-admin is needed): ERR_POLICY')
    old = d.login()
    t.eq(go_tls('/%s?session_id=%s' % (snap_uuid, old), ca_dir), REP_ACK, 'another root session is served')
    value(s.session.logout(old))
    t.eq(go_tls('/%s?session_id=%s' % (snap_uuid, old), ca_dir), ERR_POLICY,
         'the same session once logged out: ERR_POLICY')
    c = greet()
    t.eq(go(c, name) if c else 'closed', ERR_TLS_REQD, 'no STARTTLS on an nbd network: ERR_TLS_REQD')
    c.close()
    c = greet()
    send_opt(c, OPT_EXPORT_NAME, name.encode())
    t.ok(closed_soon(c, 10), 'EXPORT_NAME in clear there: closed')
    c.close()
    r = run('nbdcopy', nbd_uri(name, tls=False), 'null:')
    t.ok(r.returncode != 0, 'a plain nbdcopy is refused', r.stderr)
    t.ok(sess not in open(d.log_path).read(),
         'no session ref is written to the log')

    # insecure_nbd: clear text allowed; both purposes or none: closed at once
    value(s.network.remove_purpose(sess, net, 'nbd'))
    value(s.network.add_purpose(sess, net, 'insecure_nbd'))
    r = run('nbdcopy', nbd_uri(name, tls=False), out)
    t.ok(r.returncode == 0 and open(out, 'rb').read() == bytes(a),
         'insecure_nbd: a plain nbdcopy reads the snapshot', r.stderr)
    os.unlink(out)
    t.eq(len(value(s.VDI.get_nbd_info(sess, snap))), 1, 'get_nbd_info names it on insecure_nbd too')
    n2 = value(s.network.create(sess, {'name_label': 'tls', 'name_description': '', 'MTU': '1500',
                                       'other_config': {}}))
    value(s.network.add_purpose(sess, n2, 'nbd'))
    t.eq(greet(), None, 'nbd and insecure_nbd on two networks: closed before the greeting')
    value(s.network.remove_purpose(sess, net, 'insecure_nbd'))
    value(s.network.remove_purpose(sess, n2, 'nbd'))
    t.eq(greet(), None, 'no NBD purpose anywhere: closed before the greeting')
    t.eq(value(s.VDI.get_nbd_info(sess, snap)), [], 'and get_nbd_info is empty again')
    value(s.network.add_purpose(sess, net, 'nbd'))

    # many clients at once
    procs = [subprocess.Popen(['nbdcopy', '--connections=1', nbd_uri(name, ca_dir=ca_dir),
                               os.path.join(tmp, 'm%d.raw' % i)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for i in range(8)]
    rcs = [p.wait(300) for p in procs]
    same = all(open(os.path.join(tmp, 'm%d.raw' % i), 'rb').read() == bytes(a) for i in range(8)
               if rcs[i] == 0)
    t.ok(rcs == [0] * 8 and same, '8 TLS clients at once each read the snapshot', rcs)
    for i in range(8):
        if os.path.exists(os.path.join(tmp, 'm%d.raw' % i)):
            os.unlink(os.path.join(tmp, 'm%d.raw' % i))

    # stalled clients: 15 in clear, 1 after STARTTLS's ACK without a TLS handshake
    def hold():
        # a client that just ended may still be counted for a moment: try again then
        deadline = time.time() + 30
        while time.time() < deadline:
            x = greet()
            if x is not None:
                return x
            time.sleep(0.1)
        return None

    stalled = [hold() for _ in range(15)]
    c = hold()
    send_opt(c, OPT_STARTTLS)
    t.eq(opt_reply(c)[0], REP_ACK, 'STARTTLS is acknowledged')
    stalled.append(c)
    t.ok(all(x is not None for x in stalled), '16 clients stalled in negotiation are held')
    t.eq(greet(), None, 'a 17th is closed at once (xapi-nbd\'s 16)')
    t.ok(all(closed_soon(x, 60) for x in stalled), 'every stalled client is dropped after the deadline')
    for x in stalled:
        x.close()
    t.ok(wait_for(lambda: go_tls(name, ca_dir) == REP_ACK, 30), 'and a client is served again')
    # one negotiated client stays connected through the stop
    c = greet()
    tc, _ = starttls(c, ca_dir)
    t.eq(go(tc, name), REP_ACK, 'a client in transmission')
    t.ok(d.stop() == 0, 'vesseld stops cleanly with it connected')
    t.ok(closed_soon(tc, 10), 'and its connection is closed')


def inner(binary):
    t = Tap()
    for ln in (['link', 'set', 'lo', 'up'], ['link', 'add', NIC, 'type', 'veth', 'peer', 'name', NIC_PEER],
               ['link', 'set', NIC, 'up'], ['link', 'set', NIC_PEER, 'up']):
        run('ip', *ln, check=True)
    os.environ['VESSEL_NET_EXTRA_NICS'] = NIC
    tmp = tempfile.mkdtemp(prefix='vessel-nbd-')
    ca_dir, cert, key = make_pki(tmp)
    d = Vesseld(binary, nbd=True, extra=['--backend', 'sim', '--tls-cert', cert, '--tls-key', key,
                                         '--nbd-listen', '0.0.0.0:%d' % PORT,
                                         '--nbd-negotiate-timeout', '8'])
    try:
        d.start()
        t.eq(d.nbd_port, PORT, 'the NBD server listens on xapi\'s port')
        checks(t, d, tmp, ca_dir, cert)
    except Exception as e:  # report, then clean up
        t.ok(False, 'unexpected exception', repr(e))
        try:
            with open(d.log_path) as f:
                for line in f.read().splitlines()[-15:]:
                    print('# ' + line)
        except OSError:
            pass
    finally:
        d.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    return t.done()


def main():
    if len(sys.argv) > 2 and sys.argv[1] == '--inner':
        return inner(sys.argv[2])
    for tool in ('nbdcopy', 'nbdinfo', 'qemu-img', 'openssl', 'ip'):
        if not shutil.which(tool):
            print('1..0 # SKIP %s is not installed' % tool)
            return 0
    if os.geteuid() != 0:
        print('1..0 # SKIP needs root to make a network namespace')
        return 0
    rc = run_in_netns('vessel-nbd', [sys.executable, os.path.abspath(__file__), '--inner'] + sys.argv[1:])
    if rc is None:
        print('1..0 # SKIP no network namespace support')
        return 0
    return rc


if __name__ == '__main__':
    sys.exit(main())
