#!/usr/bin/env python3
"""bench/api/python_jsonrpc.py - is the XenAPI's JSON-RPC cheaper for a Python
client than XML-RPC through xmlrpc.client? (issue 18: the Python p50 goal)

  python3 bench/api/python_jsonrpc.py BUILD_DIR [--samples 3000]

Starts its own vesseld (sim backend) and, when installed, its own libvirtd
(bench/api/peers.py's), and measures the p50 of one small call,
VM.get_power_state, on one keep-alive TCP connection, in alternating blocks
of 100 calls (peers.p50_compare):
  - xmlrpc.client.ServerProxy (what XenAPI.py wraps);
  - JSON-RPC 2.0 on /jsonrpc through http.client.HTTPConnection + json (what
    XenAPI.py's JSON-RPC mode and most hand-written clients do);
  - JSON-RPC in one send on a plain socket (no http.client);
  - client/python/vessel_xenapi.py, the client Vessel ships (a drop-in for
    XenAPI.py: session.xenapi.VM.get_power_state(vm), its session put first);
  - libvirt's virDomainGetInfo (dom.info()), the peer of the goal.
Prints the p50s and each one's ratio to libvirt.
"""
import argparse
import http.client
import json
import os
import shutil
import socket
import sys
import tempfile
import xmlrpc.client

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, '..', '..', 'tests', 'integration'))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'client', 'python'))
from harness import ROOT_PASSWORD, Vesseld  # noqa: E402
from peers import Libvirtd, import_libvirt, p50_compare  # noqa: E402
import vessel_xenapi  # noqa: E402


class JsonHttpClient:
    """JSON-RPC through http.client, one connection kept."""

    def __init__(self, port):
        self.c = http.client.HTTPConnection('127.0.0.1', port)
        self.n = 0

    def call(self, method, *params):
        self.n += 1
        body = json.dumps({'jsonrpc': '2.0', 'method': method, 'params': params, 'id': self.n})
        self.c.request('POST', '/jsonrpc', body=body, headers={'Content-Type': 'application/json'})
        r = json.loads(self.c.getresponse().read())
        if 'result' not in r:
            raise RuntimeError('%s: %r' % (method, r))
        return r['result']


class JsonLeanClient:
    """JSON-RPC with the request in one send and the reply read by its
    Content-Length: what the HTTP layer costs when it is thin."""

    def __init__(self, port):
        self.s = socket.create_connection(('127.0.0.1', port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b''
        self.n = 0

    def call(self, method, *params):
        self.n += 1
        body = json.dumps({'jsonrpc': '2.0', 'method': method, 'params': params,
                           'id': self.n}).encode()
        self.s.sendall(b'POST /jsonrpc HTTP/1.1\r\nHost: 127.0.0.1\r\n'
                       b'Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s'
                       % (len(body), body))
        while True:
            end = self.buf.find(b'\r\n\r\n')
            if end >= 0:
                head = self.buf[:end].lower()
                i = head.find(b'content-length:')
                j = head.find(b'\r\n', i)
                n = int(head[i + 15:j if j > 0 else None])
                if len(self.buf) >= end + 4 + n:
                    reply = self.buf[end + 4:end + 4 + n]
                    self.buf = self.buf[end + 4 + n:]
                    return json.loads(reply)['result']
            chunk = self.s.recv(65536)
            if not chunk:
                raise RuntimeError('connection closed')
            self.buf += chunk


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('build')
    ap.add_argument('--samples', type=int, default=3000)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix='vessel-pyjson-')
    d = Vesseld(os.path.join(os.path.abspath(a.build), 'vesseld'), extra=['--backend', 'sim'])
    lv = None
    try:
        d.start()
        x = xmlrpc.client.ServerProxy(d.url())
        sess = x.session.login_with_password('root', ROOT_PASSWORD, '1.0', 'bench')['Value']
        vms = x.VM.get_all_records(sess)['Value']
        tpl = next(iter(vms))
        jh, jl = JsonHttpClient(d.port), JsonLeanClient(d.port)
        vx = vessel_xenapi.Session(d.url())
        vx.xenapi.login_with_password('root', ROOT_PASSWORD, '1.0', 'bench')
        want = x.VM.get_power_state(sess, tpl)['Value']
        if jh.call('VM.get_power_state', sess, tpl) != want or \
                jl.call('VM.get_power_state', sess, tpl) != want or \
                vx.xenapi.VM.get_power_state(tpl) != want:
            raise RuntimeError('JSON-RPC answers differ from XML-RPC')
        calls = {'xmlrpc.client': lambda: x.VM.get_power_state(sess, tpl),
                 'JSON-RPC, http.client + json': lambda: jh.call('VM.get_power_state', sess, tpl),
                 'JSON-RPC, one send (no http.client)':
                     lambda: jl.call('VM.get_power_state', sess, tpl),
                 'vessel_xenapi (client/python)': lambda: vx.xenapi.VM.get_power_state(tpl)}
        libvirt = import_libvirt()
        if libvirt and shutil.which('libvirtd'):
            lv = Libvirtd(tmp)
            dom = libvirt.open(lv.uri).lookupByName('test')
            calls["libvirt virDomainGetInfo"] = dom.info
        p = p50_compare(calls, a.samples)
        base = p.get('libvirt virDomainGetInfo')
        print('VM.get_power_state from Python, one keep-alive connection: p50 (us)%s'
              % ('   ratio to libvirt' if base else ''))
        for k, v in p.items():
            print('  %-40s %8.1f%s' % (k, v, '   %5.2f' % (v / base) if base else ''))
    finally:
        if lv:
            lv.stop()
        d.stop()
        d.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
