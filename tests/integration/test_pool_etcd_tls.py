#!/usr/bin/env python3
"""tests/integration/test_pool_etcd_tls.py - a pool store in an etcd that
demands client certificates.

etcd started with --client-cert-auth answers only clients whose certificate
its --trusted-ca-file signed (etcd's docs, "Transport security model"):
without that, anyone who reaches its port on the pool's network could
rewrite the pool's database. A one-member etcd on the test's own loopback
address, https only, with a CA, a server and a client certificate the test
makes with openssl. Checks:
  - vesseld with --etcd-cacert, --etcd-cert and --etcd-key keeps its pool
    there (an object made through the API is a key under the prefix);
  - without a client certificate, with one another CA signed, or without the
    CA (the members' certificate cannot be verified) it does not start, and
    says why; a certificate without its key is refused at the options;
  - a standalone host started with the same options joins that pool with
    pool.join, and comes back on the pool's store after its restart.
usage: test_pool_etcd_tls.py VESSELD
"""
import base64
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT_PASSWORD, Tap, Vesseld, value, wait_for  # noqa: E402
from test_pool_join import ready_lines, wait_restarted  # noqa: E402
from test_pool_store import ETCD, die_with_parent, own_loopback  # noqa: E402

PORT = 23890  # on the test's own loopback address (own_loopback)


def openssl(*args):
    subprocess.run(['openssl'] + list(args), check=True, capture_output=True)


def make_pki(d, addr):
    """CA, the member's certificate for @addr, a client's, and a client
    certificate signed by another CA: {name: path}."""
    p = {k: os.path.join(d, k) for k in ('ca.crt', 'ca.key', 'other.crt', 'other.key',
                                          'server.crt', 'server.key', 'client.crt',
                                          'client.key', 'stranger.crt', 'stranger.key')}
    ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
    for ca in ('ca', 'other'):
        openssl('req', '-x509', *ec, '-keyout', p[ca + '.key'], '-out', p[ca + '.crt'],
                '-days', '2', '-subj', '/CN=vessel-test-%s' % ca)
    # the member's certificate is a client's too: etcd's JSON gateway dials
    # its own gRPC port with it
    for name, ca, ext in (('server', 'ca', 'subjectAltName=IP:%s\n'
                           'extendedKeyUsage=serverAuth,clientAuth' % addr),
                          ('client', 'ca', 'extendedKeyUsage=clientAuth'),
                          ('stranger', 'other', 'extendedKeyUsage=clientAuth')):
        csr, extfile = os.path.join(d, name + '.csr'), os.path.join(d, name + '.ext')
        with open(extfile, 'w') as f:
            f.write(ext + '\n')
        openssl('req', *ec, '-keyout', p[name + '.key'], '-out', csr,
                '-subj', '/CN=vessel-test-%s' % name)
        openssl('x509', '-req', '-in', csr, '-CA', p[ca + '.crt'], '-CAkey', p[ca + '.key'],
                '-CAcreateserial', '-out', p[name + '.crt'], '-days', '2', '-extfile', extfile)
    return p


class TlsEtcd:
    def __init__(self, root, pki, addr):
        self.url = 'https://%s:%d' % (addr, PORT)
        self.pki = pki
        d = os.path.join(root, 'etcd')
        os.makedirs(d)
        self.log_path = os.path.join(d, 'etcd.log')
        peer = 'http://%s:%d' % (addr, PORT + 1)
        self.proc = subprocess.Popen(
            [ETCD, '--name', 'm0', '--data-dir', os.path.join(d, 'data'),
             '--listen-client-urls', self.url, '--advertise-client-urls', self.url,
             '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
             '--initial-cluster', 'm0=' + peer, '--initial-cluster-state', 'new',
             '--cert-file', pki['server.crt'], '--key-file', pki['server.key'],
             '--client-cert-auth', '--trusted-ca-file', pki['ca.crt'],
             '--max-txn-ops', '4096'],
            stdout=open(self.log_path, 'a'), stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
        self.ctx = ssl.create_default_context(cafile=pki['ca.crt'])
        self.ctx.load_cert_chain(pki['client.crt'], pki['client.key'])

    def call(self, path, body):
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode())
        with urllib.request.urlopen(req, timeout=5, context=self.ctx) as r:
            return json.loads(r.read())

    def answers(self):
        try:
            return 'header' in self.call('/v3/kv/put', {'key': base64.b64encode(b'/h').decode(),
                                                        'value': ''})
        except (OSError, ValueError):
            return False

    def get(self, key):
        r = self.call('/v3/kv/range', {'key': base64.b64encode(key.encode()).decode()})
        return base64.b64decode(r['kvs'][0]['value']).decode() if r.get('kvs') else None

    def keys(self, prefix):
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        r = self.call('/v3/kv/range', {'key': base64.b64encode(prefix.encode()).decode(),
                                       'range_end': base64.b64encode(end.encode()).decode(),
                                       'keys_only': True})
        return [base64.b64decode(kv['key']).decode() for kv in r.get('kvs', [])]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()


def refused(t, binary, etcd, prefix, tls_args, what, why_re):
    """A vesseld on @etcd with @tls_args does not start, and its log says why."""
    v = Vesseld(binary, extra=['--backend', 'sim', '--store', 'etcd', '--etcd-endpoints',
                               etcd.url, '--etcd-prefix', prefix] + tls_args)
    try:
        v.start(timeout=60)
        t.ok(False, '%s: vesseld does not start' % what, 'it started')
    except RuntimeError as exc:
        import re
        t.ok(re.search(why_re, str(exc), re.I) is not None,
             '%s: vesseld does not start, and says why' % what, str(exc)[-600:])
        print('# %s: %s' % (what, ' '.join(str(exc).split())[-300:]))
    finally:
        v.cleanup()


def run(t, binary, root):
    addr = own_loopback()
    pki = make_pki(root, addr)
    etcd = TlsEtcd(root, pki, addr)
    a = b = None
    try:
        if not t.ok(wait_for(etcd.answers, 30), 'etcd answers a client with a certificate',
                    open(etcd.log_path).read()[-1500:]):
            return
        prefix = '/vessel/tls-%d' % os.getpid()
        tls = ['--etcd-cacert', pki['ca.crt'], '--etcd-cert', pki['client.crt'],
               '--etcd-key', pki['client.key']]
        a = Vesseld(binary, tls=True, extra=['--backend', 'sim', '--metrics-period', '3600',
                                             '--store', 'etcd', '--etcd-endpoints', etcd.url,
                                             '--etcd-prefix', prefix] + tls).start(timeout=60)
        A, sa = a.proxy(), a.login()
        pool = value(A.pool.get_all(sa))[0]
        value(A.pool.set_name_label(sa, pool, 'tls-pool'))
        stored = etcd.get('%s/obj/pool/%s' % (prefix, pool))
        t.ok(stored and 'tls-pool' in stored,
             'vesseld with a client certificate keeps the pool in etcd (the pool\'s new name '
             'is in its key)', etcd.keys(prefix + '/')[:5])

        refused(t, binary, etcd, prefix + '-x', ['--etcd-cacert', pki['ca.crt']],
                'without a client certificate', r'etcd.*client-cert-auth wants --etcd-cert')
        refused(t, binary, etcd, prefix + '-x',
                ['--etcd-cacert', pki['ca.crt'], '--etcd-cert', pki['stranger.crt'],
                 '--etcd-key', pki['stranger.key']],
                'with a client certificate of another CA', r'etcd.*client-cert-auth wants --etcd-cert')
        refused(t, binary, etcd, prefix + '-x',
                ['--etcd-cert', pki['client.crt'], '--etcd-key', pki['client.key']],
                'without the members\' CA', r'etcd.*(certificate|SSL)')
        refused(t, binary, etcd, prefix + '-x', ['--etcd-cert', pki['client.crt']],
                'a certificate without its key', r'go together')
        t.ok(not any(k.startswith(prefix + '-x') for k in etcd.keys('/vessel/')),
             'none of the refused ones wrote to etcd')

        b = Vesseld(binary, tls=True, extra=['--backend', 'sim', '--metrics-period', '3600'] +
                    tls).start()
        B, sb = b.proxy(), b.login()
        n = len(ready_lines(b))
        r = B.pool.join(sb, '127.0.0.1:%d' % a.tls_port, 'root', ROOT_PASSWORD)
        t.eq(r.get('Status'), 'Success', 'a host started with the same options joins the pool '
             '(%r)' % r.get('ErrorDescription'))
        if t.ok(wait_restarted(b, n), 'and restarts onto the pool\'s store'):
            B, sb = b.proxy(), None
            t.ok(wait_for(lambda: len(value(A.host.get_all(sa))) == 2, 30),
                 'the master sees both hosts')
            r = B.session.login_with_password('root', ROOT_PASSWORD, '1.0', 'test')
            t.eq(r.get('ErrorDescription', [''])[0], 'HOST_IS_SLAVE',
                 'the joined host answers as a member of the pool')
    finally:
        for v in (a, b):
            if v:
                v.cleanup()
        etcd.stop()


def main():
    binary = sys.argv[1]
    t = Tap()
    if not os.access(ETCD, os.X_OK) or not shutil.which('openssl'):
        print('1..0 # SKIP etcd or openssl is not installed')
        return 0
    root = tempfile.mkdtemp(prefix='vessel-it-etcd-tls-')
    try:
        run(t, binary, root)
    except Exception as exc:  # a crash of the test is a failure, with its reason
        import traceback
        t.ok(False, 'test raised %s' % type(exc).__name__, traceback.format_exc())
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
