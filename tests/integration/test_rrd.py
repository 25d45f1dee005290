#!/usr/bin/env python3
"""tests/integration/test_rrd.py - metrics as xapi serves them, on the sim
backend: GET /rrd_updates in xapi's XML (rrdtool "xport") and JSON formats,
checked against xapi's documented layout (ocaml/libs/xapi-rrd
rrd_updates.ml: meta start/step/end/rows/columns/legend, rows newest first,
"CF:host:UUID:name" legends); its filters (cf, vm_uuid, host); GET /metrics
parsed by prometheus_client's own text-format parser; refusals without a
session or with bad parameters; the archives surviving a restart; the
host.* and VM.* data source messages (xcp-rrdd's semantics: standard and
non-standard sources, record, query, forget, errors); and a VBD's I/O
through its disk server (NBD writes) showing as xapi's vbd_<device>_* sources.
Usage: test_rrd.py BUILD/vesseld
"""
import calendar
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'storage'))
from harness import Tap, Vesseld, add_account, error, value, wait_for  # noqa: E402
from vhd_control import NbdClient  # noqa: E402

LEGEND = re.compile(r'^(AVERAGE|MIN|MAX):(host|vm):[0-9a-f-]{36}:[A-Za-z0-9_]+$')


def get(d, path):
    try:
        with urllib.request.urlopen(d.url(path), timeout=20) as r:
            return r.status, r.headers.get('Content-Type'), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get('Content-Type'), e.read().decode()


def parse_xml(text):
    root = ET.fromstring(text)
    meta = root.find('meta')
    legend = [e.text for e in meta.find('legend')]
    rows = [(int(r.find('t').text), [v.text for v in r.findall('v')]) for r in root.find('data')]
    return {k: int(meta.find(k).text) for k in ('start', 'step', 'end', 'rows', 'columns')}, legend, rows


def parse_json(text):
    doc = json.loads(text)
    m = doc['meta']
    return m, m['legend'], [(r['t'], r['values']) for r in doc['data']]


def well_formed(t, what, meta, legend, rows):
    t.ok(meta['rows'] == len(rows) and meta['columns'] == len(legend), what + ': rows and columns as meta says',
         (meta, len(rows), len(legend)))
    t.ok(all(len(v) == len(legend) for _, v in rows), what + ': one value per legend entry in every row')
    t.ok(all(LEGEND.match(x) for x in legend), what + ': legends are CF:host|vm:UUID:name', legend[:4])
    times = [r[0] for r in rows]
    t.ok(times == sorted(times, reverse=True) and all(a - b == meta['step'] for a, b in zip(times, times[1:])),
         what + ': rows newest first, one step apart', times[:5])
    t.ok(rows and rows[0][0] == meta['end'] and rows[-1][0] == meta['start'], what + ': start and end name the rows')


def column(legend, rows, suffix):
    idx = [i for i, x in enumerate(legend) if x.endswith(suffix)]
    return [float(v[idx[0]]) for _, v in rows] if idx else []


def data_source_checks(t, d, s, root, ro, host, vm, vm_uuid, host_uuid):
    """host.* and VM.* data sources, as xcp-rrdd answers them."""
    dss = value(s.host.get_data_sources(ro, host))
    by = {x['name_label']: x for x in dss}
    t.ok(set(dss[0]) == {'name_label', 'name_description', 'enabled', 'standard', 'units', 'min', 'max',
                         'value'}, 'host.get_data_sources: data_source records', dss[0])
    t.eq([x['name_label'] for x in dss], sorted(by), 'host.get_data_sources: sorted by name, each once')
    m = by.get('memory_total_kib', {})
    t.ok(m.get('enabled') and m.get('standard') and m.get('units') == 'KiB' and m.get('value') == 0.0,
         'memory_total_kib: enabled, standard, KiB, value 0 (as xapi lists it)', m)
    t.ok(by.get('cpu_avg', {}).get('max') == 1.0, 'cpu_avg: a fraction, max 1', by.get('cpu_avg'))
    v = value(s.host.query_data_source(ro, host, 'memory_total_kib'))
    t.ok(isinstance(v, float) and v > 1024, 'host.query_data_source memory_total_kib (read-only session)', v)
    e = error(s.host.query_data_source(ro, host, 'no_such_source'))
    t.ok(e and e[0] == 'INTERNAL_ERROR' and 'no_such_source' in e[1], 'query of an unknown source: INTERNAL_ERROR', e)
    e = error(s.host.record_data_source(ro, host, 'loadavg'))
    t.ok(e and e[0] == 'RBAC_PERMISSION_DENIED', 'host.record_data_source needs pool-operator', e)
    e = error(s.host.record_data_source(root, host, 'no_such_source'))
    t.ok(e and e[0] == 'INTERNAL_ERROR' and 'no_such_source' in e[1], 'record of an unknown source: INTERNAL_ERROR', e)
    e = error(s.host.get_data_sources(ro, 'OpaqueRef:nope'))
    t.ok(e and e[0] == 'HANDLE_INVALID', 'a bad host ref: HANDLE_INVALID', e)

    # A non-standard source (xapi's rrdp-netdev pif_<dev>_rx_errors): listed, not
    # recorded, not queryable, until record_data_source.
    errs = [x for x in dss if x['name_label'].startswith('pif_') and x['name_label'].endswith('_rx_errors')]
    if not value(s.PIF.get_all(root)):  # PIFs are this machine's physical NICs
        print('ok %d - non-standard sources # SKIP this host has no physical NIC, so no PIF' % (t.n + 1))
        t.n += 1
    elif t.ok(errs, 'a PIF gives a non-standard pif_<dev>_rx_errors source', sorted(by)):
        name = errs[0]['name_label']
        t.ok(not errs[0]['standard'] and not errs[0]['enabled'] and errs[0]['units'] == 'err/s',
             name + ': not standard, not enabled, err/s', errs[0])
        e = error(s.host.query_data_source(ro, host, name))
        t.ok(e and e[0] == 'INTERNAL_ERROR', 'query of a source not recorded: INTERNAL_ERROR', e)
        value(s.host.record_data_source(root, host, name))
        x = [y for y in value(s.host.get_data_sources(ro, host)) if y['name_label'] == name]
        t.ok(x and x[0]['enabled'] and not x[0]['standard'], 'record_data_source: now enabled', x)
        q = '/rrd_updates?session_id=%s&start=-30&interval=5&host=true&cf=AVERAGE' % ro
        got = wait_for(lambda: [v for v in column(*parse_xml(get(d, q)[2])[1:], 'host:%s:%s' % (host_uuid, name))
                                if v == v], timeout=20)
        t.ok(got and all(v >= 0 for v in got), 'and sampled into /rrd_updates from then on', got)
        t.ok(isinstance(value(s.host.query_data_source(ro, host, name)), float), 'and queryable')

    # forget: the history goes; a standard source starts again, empty.
    before = int(time.time()) - 10
    value(s.host.forget_data_source_archives(root, host, 'loadavg'))
    value(s.host.forget_data_source_archives(root, host, 'no_such_source'))
    t.ok(True, 'forget_data_source_archives of an unknown source is no error')
    _, legend, rows = parse_xml(get(d, '/rrd_updates?session_id=%s&start=-60&interval=5&host=true' % ro)[2])
    old = [r for r in rows if r[0] <= before]
    load = column(legend, old, 'AVERAGE:host:%s:loadavg' % host_uuid)
    mem = column(legend, old, 'AVERAGE:host:%s:memory_total_kib' % host_uuid)
    t.ok(old and all(v != v for v in load) and any(v == v for v in mem),
         'forget loadavg: its past is gone, the others keep theirs', (load[:3], mem[:3]))

    # The VM's.
    vds = {x['name_label']: x for x in value(s.VM.get_data_sources(ro, vm))}
    t.ok({'memory', 'memory_target', 'cpu0', 'vif_0_rx', 'vif_0_tx'} <= set(vds),
         'VM.get_data_sources: memory, memory_target, cpu0, vif_0_rx/tx', sorted(vds))
    t.ok(vds.get('memory', {}).get('units') == 'B' and vds['memory']['enabled'], 'memory: B, enabled', vds.get('memory'))
    v = value(s.VM.query_data_source(ro, vm, 'memory'))
    t.ok(isinstance(v, float) and v > 0, 'VM.query_data_source memory', v)
    e = error(s.VM.query_data_source(ro, vm, 'nope'))
    t.ok(e and e[0] == 'INTERNAL_ERROR', 'VM query of an unknown source: INTERNAL_ERROR', e)
    e = error(s.VM.record_data_source(ro, vm, 'memory'))
    t.ok(e and e[0] == 'RBAC_PERMISSION_DENIED', 'VM.record_data_source needs vm-admin', e)
    value(s.VM.record_data_source(root, vm, 'memory'))
    t.ok(True, 'VM.record_data_source of a recorded source changes nothing')
    e = error(s.VM.get_data_sources(ro, 'OpaqueRef:nope'))
    t.ok(e and e[0] == 'HANDLE_INVALID', 'a bad VM ref: HANDLE_INVALID', e)
    halted = [r for r, x in value(s.VM.get_all_records(root)).items()
              if not x['is_a_template'] and not x['is_control_domain'] and x['power_state'] == 'Halted']
    if halted:
        t.eq(value(s.VM.get_data_sources(ro, halted[0])), [], 'a halted VM has no data sources')
        e = error(s.VM.query_data_source(ro, halted[0], 'memory'))
        t.ok(e and e[0] == 'INTERNAL_ERROR' and 'VM: ' in e[1], 'query on a halted VM: INTERNAL_ERROR', e)


def vbd_checks(t, d, s, root, ro, vm_uuid):
    """I/O through the disk server shows as xapi's vbd_<device>_* sources."""
    disks = os.path.join(d.dir, 'data', 'run', 'disks')
    socks = [x for x in os.listdir(disks) if x.startswith(vm_uuid) and x.endswith('.sock')]
    if not t.ok(socks, 'the VM\'s disk is served', os.listdir(disks)):
        return
    nbd = NbdClient(os.path.join(disks, socks[0]))
    q = '/rrd_updates?session_id=%s&start=-30&interval=5&vm_uuid=%s&cf=AVERAGE' % (ro, vm_uuid)

    def written():
        # keep writing (4 MiB per try) until a sample shows it
        for i in range(4):
            nbd.write(i * (1 << 20), bytes([i + 1]) * (1 << 20))
        nbd.read(0, 1 << 20)
        _, legend, rows = parse_xml(get(d, q)[2])
        w = [v for v in column(legend, rows, ':vbd_xvda_write') if v == v and v > 0]
        return (legend, rows) if w else None
    got = wait_for(written, timeout=30, step=1)
    nbd.close()
    if not t.ok(got, 'NBD writes to the VM\'s disk server show as vbd_xvda_write > 0'):
        return
    legend, rows = got
    names = {x.rsplit(':', 1)[1] for x in legend}
    want = {'vbd_xvda_' + k for k in ('read', 'write', 'read_latency', 'write_latency', 'iops_read', 'iops_write',
                                      'iops_total', 'io_throughput_read', 'io_throughput_write',
                                      'io_throughput_total', 'iowait', 'inflight')}
    t.ok(want <= names, 'xapi\'s rrdp-iostat names for the VBD', sorted(names))
    iops = [v for v in column(legend, rows, ':vbd_xvda_iops_write') if v == v and v > 0]
    lat = [v for v in column(legend, rows, ':vbd_xvda_write_latency') if v == v and v > 0]
    t.ok(iops and lat, 'write IOPS and latency are measured', (iops[:3], lat[:3]))
    tput = [v for v in column(legend, rows, ':vbd_xvda_io_throughput_write') if v == v and v > 0]
    wb = [v for v in column(legend, rows, ':vbd_xvda_write') if v == v and v > 0]
    t.ok(tput and wb and abs(max(tput) * 1048576 - max(wb)) < 1e-6 * max(wb) + 1,
         'io_throughput_write is write in MiB/s', (tput[:2], wb[:2]))


def main():
    t = Tap()
    d = Vesseld(sys.argv[1], extra=['--backend', 'sim'])
    try:
        d.start()
        root = d.login()
        add_account(d, root, 'reader', 'reader-password', 'read-only')
        ro = d.login('reader', 'reader-password')
        s = d.proxy()
        vms = value(s.VM.get_all_records(root))
        tmpl = [r for r, v in vms.items() if v['name_label'] == 'Direct kernel boot'][0]
        vm = value(s.VM.clone(root, tmpl, 'rrd'))
        value(s.VM.set_is_a_template(root, vm, False))
        srs = value(s.SR.get_all_records(root))
        sr = [r for r, x in srs.items() if x['content_type'] == 'user'][0]
        vdi = value(s.VDI.create(root, {'SR': sr, 'virtual_size': str(16 << 20), 'type': 'user', 'sharable': False,
                                        'read_only': False, 'other_config': {}, 'name_label': 'rrd disk',
                                        'name_description': '', 'sm_config': {}, 'xenstore_data': {}, 'tags': []}))
        value(s.VBD.create(root, {'VM': vm, 'VDI': vdi, 'userdevice': '0', 'bootable': True, 'mode': 'RW',
                                  'type': 'Disk', 'empty': False, 'other_config': {}, 'qos_algorithm_type': '',
                                  'qos_algorithm_params': {}}))
        halted = value(s.VM.clone(root, vm, 'rrd halted'))
        value(s.VM.set_is_a_template(root, halted, False))
        net = list(value(s.network.get_all_records(root)).keys())[0]
        value(s.VIF.create(root, {'device': '0', 'network': net, 'VM': vm, 'MAC': '', 'MTU': '1500',
                                  'other_config': {}, 'qos_algorithm_type': '', 'qos_algorithm_params': {}}))
        value(s.VM.start(root, vm, False, False))
        vm_uuid = value(s.VM.get_uuid(root, vm))
        host_uuid = value(s.host.get_uuid(root, value(s.session.get_this_host(root, root))))

        q = '/rrd_updates?session_id=%s&start=-120&interval=5&host=true' % ro
        deadline = time.time() + 30
        legend, rows = [], []
        while time.time() < deadline:
            status, _, text = get(d, q)
            if status == 200:
                meta, legend, rows = parse_xml(text)
                mem = column(legend, rows, 'vm:%s:memory' % vm_uuid)
                if len([x for x in mem if x == x]) >= 2:
                    break
            time.sleep(1)
        t.eq(status, 200, 'GET /rrd_updates with a read-only session: 200')
        well_formed(t, 'XML', meta, legend, rows)
        t.eq(meta['step'], 5, 'XML: interval=5 gives the 5 s archive')
        for name in ('host:%s:cpu_avg' % host_uuid, 'host:%s:memory_total_kib' % host_uuid,
                     'host:%s:memory_free_kib' % host_uuid, 'host:%s:loadavg' % host_uuid,
                     'vm:%s:memory' % vm_uuid, 'vm:%s:cpu0' % vm_uuid, 'vm:%s:vif_0_rx' % vm_uuid,
                     'vm:%s:vif_0_tx' % vm_uuid):
            t.ok(all(('%s:%s' % (cf, name)) in legend for cf in ('AVERAGE', 'MIN', 'MAX')),
                 'legend has ' + name.split(':', 2)[0] + ' ' + name.rsplit(':', 1)[1] + ' for each CF')
        total = [x for x in column(legend, rows, 'host:%s:memory_total_kib' % host_uuid) if x == x]
        t.ok(total and total[0] > 1024, 'host memory_total_kib is read from /proc/meminfo', total[:2])
        mem = [x for x in column(legend, rows, 'vm:%s:memory' % vm_uuid) if x == x]
        t.ok(len(mem) >= 2 and mem[0] > 0, 'the VM memory has data points', mem[:3])

        status, ctype, text = get(d, q + '&json=true&cf=AVERAGE')
        meta, legend, rows = parse_json(text)
        t.ok(status == 200 and ctype.startswith('application/json'), 'json=true: JSON', ctype)
        well_formed(t, 'JSON', meta, legend, rows)
        t.ok(all(x.startswith('AVERAGE:') for x in legend), 'cf=AVERAGE keeps AVERAGE only')
        t.ok(all(isinstance(v, str) for _, vals in rows for v in vals),
             'JSON values are strings, as xapi writes them ("NaN", "0.0", "%0.15g")')

        # As Xen Orchestra's xo-server asks (src/xapi-stats.mjs): start = the host's
        # servertime - 120 steps + 1 step, cf=AVERAGE, host=true, json=true; it
        # insists that meta.step is the step it asked for, splits each legend
        # with /^AVERAGE:([^:]+):(.+):(.+)$/ and knows these names.
        st = value(s.host.get_servertime(ro, value(s.session.get_this_host(ro, ro))))
        now = calendar.timegm(time.strptime(str(st).rstrip('Z')[:17], '%Y%m%dT%H:%M:%S'))
        status, _, text = get(d, '/rrd_updates?session_id=%s&cf=AVERAGE&host=true&interval=5&json=true&start=%d'
                              % (ro, now - 600 + 5))
        meta, legend, rows = parse_json(text)
        t.eq(meta['step'], 5, 'xo-server\'s query gets the step it asked for (5)')
        split = [re.match(r'^AVERAGE:([^:]+):(.+):(.+)$', x).groups() for x in legend]
        host_names = {n for k, u, n in split if k == 'host' and u == host_uuid}
        vm_names = {n for k, u, n in split if k == 'vm' and u == vm_uuid}
        t.ok({'loadavg', 'memory_free_kib', 'memory_total_kib', 'cpu0', 'pif_eth0_rx'} <= host_names
             or {'loadavg', 'memory_free_kib', 'memory_total_kib', 'cpu0'} <= host_names,
             'host names xo-server charts: loadavg, memory_free_kib, memory_total_kib, cpuN', sorted(host_names))
        t.ok({'memory', 'memory_target', 'cpu0'} <= vm_names, 'VM names xo-server charts: memory, memory_target, cpuN',
             sorted(vm_names))
        t.ok(all(v == 'NaN' or not (float(v) != float(v)) for _, vals in rows for v in vals),
             'every value is a number or "NaN" (xo-server\'s parseNumber)')

        status, _, text = get(d, '/rrd_updates?session_id=%s&start=-120&interval=5&vm_uuid=%s' % (ro, vm_uuid))
        _, legend, _ = parse_xml(text)
        t.ok(legend and all(':vm:%s:' % vm_uuid in x for x in legend), 'vm_uuid= and no host=true: that VM only')
        status, _, text = get(d, '/rrd_updates?session_id=%s&start=-3600&interval=60&host=true' % ro)
        meta, legend, rows = parse_xml(text)
        t.eq(meta['step'], 60, 'interval=60: the 1-minute archive')

        # The whole rrds, as xapi dumps them (Rrd.xml_to_output).
        status, _, text = get(d, '/host_rrd?session_id=%s' % ro)
        r = ET.fromstring(text)
        rras = r.findall('rra')
        ds = [x.find('name').text for x in r.findall('ds')]
        t.ok(status == 200 and r.find('version').text == '0003' and r.find('step').text == '5',
             'GET /host_rrd: version 0003, step 5', status)
        t.ok('cpu_avg' in ds and 'memory_total_kib' in ds, 'host_rrd lists its data sources', ds)
        t.eq(sorted((x.find('cf').text, int(x.find('pdp_per_row').text), len(x.find('database'))) for x in rras),
             sorted((cf, p, n) for cf in ('AVERAGE', 'MIN', 'MAX')
                    for p, n in ((1, 120), (12, 120), (720, 168), (17280, 366))),
             'host_rrd: AVERAGE, MIN, MAX at 5 s x 120, 1 min x 120, 1 h x 168, 1 day x 366')
        t.ok(all(len(row) == len(ds) for x in rras for row in x.find('database')), 'host_rrd: one value per ds a row')
        status, _, text = get(d, '/vm_rrd?session_id=%s&uuid=%s' % (ro, vm_uuid))
        t.ok(status == 200 and 'memory' in [x.find('name').text for x in ET.fromstring(text).findall('ds')],
             'GET /vm_rrd?uuid=: that VM\'s rrd', status)
        status, _, _ = get(d, '/vm_rrd?session_id=%s&uuid=00000000-0000-0000-0000-000000000000' % ro)
        t.eq(status, 404, 'vm_rrd of a VM with no metrics: 404')

        for what, path, code in [
                ('no session', '/rrd_updates?start=-60&host=true', 401),
                ('a bad session', '/rrd_updates?session_id=OpaqueRef:nope&start=-60&host=true', 401),
                ('no start', '/rrd_updates?session_id=%s&host=true' % ro, 400),
                ('a bad cf', '/rrd_updates?session_id=%s&start=-60&cf=MEDIAN' % ro, 400),
                ('a bad interval', '/rrd_updates?session_id=%s&start=-60&interval=x' % ro, 400),
                ('/metrics without a session', '/metrics', 401),
                ('/host_rrd without a session', '/host_rrd', 401),
                ('/vm_rrd without uuid', '/vm_rrd?session_id=%s' % ro, 400)]:
            status, _, _ = get(d, path)
            t.eq(status, code, '%s: %d' % (what, code))
        t.ok(value(s.session.get_this_host(root, root)).startswith('OpaqueRef:'), 'vesseld serves after refusals')

        status, ctype, text = get(d, '/metrics?session_id=%s' % ro)
        t.ok(status == 200 and ctype.startswith('text/plain; version=0.0.4'), 'GET /metrics: Prometheus text', ctype)
        try:
            try:
                from prometheus_client.parser import text_string_to_metric_families
            except ImportError:  # a python3 other than Debian's (pyenv): use Debian's package
                sys.path.append('/usr/lib/python3/dist-packages')
                from prometheus_client.parser import text_string_to_metric_families
            fams = {f.name: f for f in text_string_to_metric_families(text)}
            host_samples = [x for x in fams['vessel_host'].samples if x.labels.get('ds') == 'memory_total_kib']
            vm_samples = [x for x in fams['vessel_vm'].samples if x.labels.get('vm') == vm_uuid]
            t.ok(host_samples and host_samples[0].value > 0, 'prometheus_client parses /metrics: host memory')
            t.ok(any(x.labels['ds'] == 'memory' for x in vm_samples), 'and the running VM\'s memory')
        except ImportError:
            t.ok(False, 'prometheus_client is installed (scripts/install-deps.sh)')

        host = value(s.session.get_this_host(root, root))
        data_source_checks(t, d, s, root, ro, host, vm, vm_uuid, host_uuid)
        vbd_checks(t, d, s, root, ro, vm_uuid)

        # Restart: the archives come back from DATA/rrd/.
        before = time.time()
        d.stop()
        d.start()
        root = d.login()
        status, _, text = get(d, '/rrd_updates?session_id=%s&start=-300&interval=5&host=true&cf=AVERAGE' % root)
        if status != 200:  # the first sample after a restart lands on the next 5 s boundary
            time.sleep(6)
            status, _, text = get(d, '/rrd_updates?session_id=%s&start=-300&interval=5&host=true&cf=AVERAGE' % root)
        meta, legend, rows = parse_xml(text)
        old = [r for r in rows if r[0] < before - 5]
        vals = column(legend, old, 'host:%s:memory_total_kib' % host_uuid)
        t.ok(any(x == x for x in vals), 'host samples from before the restart are still served', vals[:5])
        t.ok(os.path.exists(os.path.join(d.dir, 'data', 'rrd', vm_uuid + '.rrd')), 'the VM rrd is kept in DATA/rrd/')
    finally:
        d.stop()
        d.cleanup()
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
