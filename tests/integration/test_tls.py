#!/usr/bin/env python3
"""tests/integration/test_tls.py - TLS versions and suites (issue 11, finding 11).

The attack: a client offering only TLS 1.0 or 1.1 (CBC-SHA1 suites) was
served. Now the HTTPS listener speaks TLS 1.2 and 1.3 with AEAD suites and
ECDHE only, always: host.set_ssl_legacy(host, true) answers
VALUE_NOT_SUPPORTED and false is a no-op, as in xapi since Stockholm
(ocaml/xapi/xapi_host.ml).
Probed with the openssl command-line client (its security level lowered to
0 so that it still offers TLS 1.0/1.1 at all).
Usage: test_tls.py BUILD/vesseld
"""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Tap, Vesseld, add_account, error, value  # noqa: E402


def handshake(port, *args):
    """(negotiated protocol, cipher) of an openssl s_client handshake, or None."""
    p = subprocess.run(['openssl', 's_client', '-connect', '127.0.0.1:%d' % port] + list(args),
                       input=b'', capture_output=True, timeout=20)
    out = p.stdout.decode(errors='replace')
    cipher = proto = None
    for line in out.splitlines():
        line = line.strip()
        if line.startswith('New, ') and 'Cipher is' in line:  # "New, <suite's version>, ..."
            cipher = line.split('Cipher is')[1].strip()
            new_version = line.split(',')[1].strip()
        elif line.startswith('Protocol  :') or line.startswith('Protocol:'):
            proto = line.split(':', 1)[1].strip()  # the negotiated version
    if not cipher or cipher == '(NONE)':
        return None
    # TLS 1.3 sessions print no session block here; their suites are 1.3-only
    return (proto or new_version, cipher)


LOW = ['-cipher', 'DEFAULT@SECLEVEL=0']


def read_only_session(t, d, sess):
    add_account(d, sess, 'reader', 'reader-password', 'read-only')
    return value(d.proxy().session.login_with_password('reader', 'reader-password', '1.0', 'tls'))


def modern_only(t, port, when):
    t.ok(handshake(port, '-tls1', *LOW) is None, '%s: TLS 1.0 refused' % when)
    t.ok(handshake(port, '-tls1_1', *LOW) is None, '%s: TLS 1.1 refused' % when)
    r = handshake(port, '-tls1_2')
    t.ok(r and r[0] == 'TLSv1.2' and 'GCM' in r[1] or r and 'CHACHA20' in r[1],
         '%s: TLS 1.2 accepted with an AEAD suite (%s)' % (when, r))
    r = handshake(port, '-tls1_3')
    t.ok(r and r[0] == 'TLSv1.3', '%s: TLS 1.3 accepted (%s)' % (when, r))
    for suite in ('ECDHE-ECDSA-AES128-SHA', 'ECDHE-RSA-AES256-SHA', 'AES128-GCM-SHA256',
                  'AES256-SHA'):
        r = handshake(port, '-tls1_2', '-cipher', suite + '@SECLEVEL=0')
        t.ok(r is None, '%s: TLS 1.2 with %s (CBC-SHA1 or RSA key exchange) refused' % (when, suite))


def main():
    binary = sys.argv[1]
    t = Tap()
    if not shutil.which('openssl'):
        t.ok(True, '# SKIP no openssl client')
        return t.done()
    d = Vesseld(binary, tls=True, extra=['--backend', 'sim'])
    try:
        d.start()
        s = d.proxy()
        sess = d.login()
        host = value(s.host.get_all(sess))[0]
        t.eq(value(s.host.get_ssl_legacy(sess, host)), False, 'a new host has ssl_legacy false')
        modern_only(t, d.tls_port, 'default')

        reader = read_only_session(t, d, sess)
        e = error(s.host.set_ssl_legacy(reader, host, True))
        t.eq(e and e[0], 'RBAC_PERMISSION_DENIED', 'read-only may not call host.set_ssl_legacy')
        e = error(s.host.set_ssl_legacy(sess, 'OpaqueRef:nonexistent', True))
        t.eq(e and e[0], 'HANDLE_INVALID', 'host.set_ssl_legacy on a bad ref: HANDLE_INVALID')
        modern_only(t, d.tls_port, 'after refused calls')

        e = error(s.host.set_ssl_legacy(sess, host, True))
        t.eq(e, ['VALUE_NOT_SUPPORTED', 'value', 'true', 'Legacy SSL support has been removed'],
             'host.set_ssl_legacy true: VALUE_NOT_SUPPORTED, as xapi')
        t.eq(value(s.host.get_ssl_legacy(sess, host)), False, 'host.ssl_legacy stays false')
        r = handshake(d.tls_port, '-tls1_1', *LOW)
        t.ok(not r or r[0] != 'TLSv1.1', 'and TLS 1.1 stays refused (%s)' % (r,))
        t.eq(error(s.host.set_ssl_legacy(sess, host, False)), None,
             'host.set_ssl_legacy false: accepted, nothing to change')

        d.stop()
        d.start()
        s = d.proxy()
        sess = d.login()
        modern_only(t, d.tls_port, 'after a restart')
        t.ok(value(s.host.get_all(sess)) == [host], 'the daemon keeps serving')
    except Exception as exc:  # noqa: BLE001
        import traceback
        t.ok(False, 'test raised %s' % type(exc).__name__, traceback.format_exc())
    finally:
        d.stop()
        d.cleanup()
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
