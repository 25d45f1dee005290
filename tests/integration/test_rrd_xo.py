#!/usr/bin/env python3
"""tests/integration/test_rrd_xo.py - /rrd_updates with several running VMs
(no vm_uuid: every VM's sources and the host's), parsed by Xen Orchestra's
own parser: xo-server's src/xapi-stats.mjs (XapiStats.getHostStats and
getVmStats, unmodified) run by node against vesseld (node-xo/xo-stats.mjs).

xo-server is not published on npm, so its file comes from, in order:
$XO_XAPI_STATS (the file), $XO_SRC (a xen-orchestra checkout), or
raw.githubusercontent.com at the pinned commit below; its sha256 must match.
When none is reachable the checks that need it are skipped and say so. Its
npm dependencies are pinned in node-xo/package-lock.json (npm ci into
BUILD/node-xo); @xen-orchestra/xapi is replaced by a one-function shim
(node-xo/xapi-shim: parseDateTime) because the real package cannot be
installed from npm (its dependency @vates/parse-duration answers 404).
Usage: test_rrd_xo.py BUILD/vesseld
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, '..', 'storage'))
from harness import Tap, Vesseld, value, wait_for  # noqa: E402
from vhd_control import NbdClient  # noqa: E402

XO_COMMIT = 'bb4daac07a4477c9cca01205b5c3934afa08be24'
XO_PATH = 'packages/xo-server/src/xapi-stats.mjs'
XO_SHA256 = '035cbd356e0dd24753dcb770c839f01f24b7e347b934bc7c943d6a1eb307d507'
N_VMS = 3


def xo_source():
    """(text, where) of xo-server's xapi-stats.mjs, or (None, why not)."""
    tried = []
    if os.environ.get('XO_XAPI_STATS'):
        tried.append(os.environ['XO_XAPI_STATS'])
    if os.environ.get('XO_SRC'):
        tried.append(os.path.join(os.environ['XO_SRC'], XO_PATH))
    for p in tried:
        if os.path.exists(p):
            with open(p, 'rb') as f:
                return f.read(), p
    url = 'https://raw.githubusercontent.com/vatesfr/xen-orchestra/%s/%s' % (XO_COMMIT, XO_PATH)
    try:
        with urllib.request.urlopen(url, timeout=20) as r:
            return r.read(), url
    except (urllib.error.URLError, OSError) as e:
        return None, 'not in %s and %s unreachable (%s)' % (tried or 'XO_XAPI_STATS/XO_SRC', url, e)


def npm_install(build):
    src = os.path.join(HERE, 'node-xo')
    work = os.path.join(build, 'node-xo')
    stamp = os.path.join(work, '.vessel-lock.sha256')
    want = hashlib.sha256(b''.join(open(os.path.join(src, f), 'rb').read()
                                   for f in ('package.json', 'package-lock.json', 'xapi-shim/index.mjs'))).hexdigest()
    have = open(stamp).read() if os.path.exists(stamp) else ''
    if have != want or not os.path.isdir(os.path.join(work, 'node_modules')):
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(src, work)
        r = subprocess.run(['npm', 'ci', '--no-audit', '--no-fund', '--loglevel=error'], cwd=work,
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            return None, r.stderr[-2000:]
        with open(stamp, 'w') as f:
            f.write(want)
    shutil.copy(os.path.join(src, 'xo-stats.mjs'), work)
    return work, ''


def numbers(xs):
    return [x for x in (xs or []) if x is not None]


def main():
    t = Tap()
    vesseld = sys.argv[1]
    d = Vesseld(vesseld, extra=['--backend', 'sim'])
    try:
        d.start()
        root = d.login()
        s = d.proxy()
        host = value(s.session.get_this_host(root, root))
        host_uuid = value(s.host.get_uuid(root, host))
        recs = value(s.VM.get_all_records(root))
        tmpl = [r for r, v in recs.items() if v['name_label'] == 'Direct kernel boot'][0]
        sr = [r for r, x in value(s.SR.get_all_records(root)).items() if x['content_type'] == 'user'][0]
        net = list(value(s.network.get_all_records(root)).keys())[0]
        vms = []
        for i in range(N_VMS):
            vm = value(s.VM.clone(root, tmpl, 'xo-%d' % i))
            value(s.VM.set_is_a_template(root, vm, False))
            value(s.VIF.create(root, {'device': '0', 'network': net, 'VM': vm, 'MAC': '', 'MTU': '1500',
                                      'other_config': {}, 'qos_algorithm_type': '', 'qos_algorithm_params': {}}))
            if i == 0:
                vdi = value(s.VDI.create(root, {'SR': sr, 'virtual_size': str(16 << 20), 'type': 'user',
                                                'sharable': False, 'read_only': False, 'other_config': {},
                                                'name_label': 'xo disk', 'name_description': '', 'sm_config': {},
                                                'xenstore_data': {}, 'tags': []}))
                value(s.VBD.create(root, {'VM': vm, 'VDI': vdi, 'userdevice': '0', 'bootable': True, 'mode': 'RW',
                                          'type': 'Disk', 'empty': False, 'other_config': {},
                                          'qos_algorithm_type': '', 'qos_algorithm_params': {}}))
            value(s.VM.start(root, vm, False, False))
            vms.append({'ref': vm, 'uuid': value(s.VM.get_uuid(root, vm))})

        # Disk I/O on the first VM, through its disk server, until a sample shows it.
        disks = os.path.join(d.dir, 'data', 'run', 'disks')
        sock = [x for x in os.listdir(disks) if x.startswith(vms[0]['uuid']) and x.endswith('.sock')][0]
        nbd = NbdClient(os.path.join(disks, sock))
        q = d.url('/rrd_updates?session_id=%s&start=-60&interval=5&host=true&cf=AVERAGE' % root)

        def ready():
            for i in range(2):
                nbd.write(i << 20, bytes([i + 7]) * (1 << 20))
            nbd.read(0, 1 << 20)
            try:
                with urllib.request.urlopen(q, timeout=20) as r:
                    doc = ET.fromstring(r.read())
            except urllib.error.HTTPError:
                return None
            legend = [e.text for e in doc.find('meta').find('legend')]
            rows = [[v.text for v in r.findall('v')] for r in doc.find('data')]
            col = [i for i, x in enumerate(legend) if x.endswith(':vbd_xvda_write')]
            mem = [all(any(x == 'AVERAGE:vm:%s:memory' % vm['uuid'] for x in legend) for vm in vms)]
            return legend if col and mem[0] and any(float(r[col[0]]) > 0 for r in rows[:3]) else None
        legend = wait_for(ready, timeout=40, step=1)
        nbd.close()
        t.ok(legend, 'no vm_uuid: one /rrd_updates holds every running VM and the host')
        owners = {x.split(':')[2] for x in (legend or []) if x.split(':')[1] == 'vm'}
        t.eq(owners, {vm['uuid'] for vm in vms}, 'each of the %d running VMs, no other' % N_VMS)
        t.ok(any(x.startswith('AVERAGE:host:%s:' % host_uuid) for x in legend or []), 'and the host (host=true)')

        text, where = xo_source()
        if text is not None and hashlib.sha256(text).hexdigest() != XO_SHA256:
            t.ok(False, 'xo-server xapi-stats.mjs from %s has the pinned sha256' % where)
            return t.done()
        if text is None:
            print('ok %d - Xen Orchestra\'s parser # SKIP %s' % (t.n + 1, where))
            t.n += 1
            return t.done()
        work, why = npm_install(os.path.dirname(os.path.abspath(vesseld)))
        if not t.ok(work, 'npm ci of xo-server\'s stats dependencies (node-xo/package-lock.json)', why):
            return t.done()
        with open(os.path.join(work, 'xapi-stats.mjs'), 'wb') as f:
            f.write(text)
        env = dict(os.environ, VESSEL_URL=d.url('/').rstrip('/'), VESSEL_SESSION=root, HOST_REF=host,
                   HOST_UUID=host_uuid, VMS=json.dumps(vms))
        r = subprocess.run(['node', 'xo-stats.mjs'], cwd=work, env=env, capture_output=True, text=True,
                           timeout=120)
        if not t.ok(r.returncode == 0, 'xo-server\'s XapiStats parses vesseld\'s /rrd_updates (%s)' % where,
                    r.stderr[-2000:]):
            return t.done()
        out = json.loads(r.stdout)
        h = out['host']
        t.eq((h['interval'], out['hostMinutes']['interval']), (5, 60),
             'getHostStats: the granularity asked for (seconds: 5, minutes: 60)')
        hs = h['stats']
        t.ok(numbers(hs.get('memory')) and numbers(hs.get('memoryFree')) and numbers(hs.get('load')),
             'host: memory, memoryFree, load have points', sorted(hs))
        t.ok(numbers(hs.get('cpus', {}).get('0')), 'host: cpus[0] has points', hs.get('cpus', {}).keys())
        # xo-server asks again only when its cached document is a step old
        t.ok(1 <= out['requests'] < 1 + N_VMS, 'xo-server\'s cache: the host\'s /rrd_updates serves the VMs too',
             out['requests'])
        for i, vm in enumerate(vms):
            st = out['vms'][vm['uuid']]
            v = st['stats']
            t.ok(st['interval'] == 5 and numbers(v.get('memory')) and numbers(v.get('memoryTarget')) and
                 numbers(v.get('cpus', {}).get('0')),
                 'VM %d: memory, memoryTarget, cpus[0] have points' % i, sorted(v))
            t.ok('0' in v.get('vifs', {}).get('rx', {}) and '0' in v.get('vifs', {}).get('tx', {}),
                 'VM %d: vifs rx/tx [0]' % i, v.get('vifs'))
        v = out['vms'][vms[0]['uuid']]['stats']
        t.ok(any(x > 0 for x in numbers(v.get('xvds', {}).get('w', {}).get('a'))),
             'VM 0: xvds.w.a (vbd_xvda_write) shows the disk writes', v.get('xvds'))
        t.ok(any(x > 0 for x in numbers(v.get('iops', {}).get('w', {}).get('a'))) and
             any(x > 0 for x in numbers(v.get('vbdLatency', {}).get('w', {}).get('a'))) and
             any(x > 0 for x in numbers(v.get('ioThroughput', {}).get('w', {}).get('a'))),
             'VM 0: iops, vbdLatency and ioThroughput of xvda', {k: v.get(k) for k in ('iops', 'vbdLatency')})
        t.ok('xvds' not in out['vms'][vms[1]['uuid']]['stats'], 'VM 1 (no disk): no xvds')
    finally:
        d.stop()
        d.cleanup()
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
