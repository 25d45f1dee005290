#!/usr/bin/env python3
"""bench/pool/scale.py - VM.get_all_records with many VMs in a pool of many hosts.

One etcd member on 127.0.0.1 and a pool of HOSTS vesseld (sim backend, the
first with --store etcd, the others --pool-member, each its own host record),
against one vesseld on SQLite (a single host) holding the same number of VMs,
in the same run. VMS VMs are made through the API (8 connections); then
VM.get_all_records is timed REPS times through the pool's first host, through
another member and through the single host. Also: each vesseld's RSS.
Prints a table and one line starting with "POOLSCALE_JSON ".
Usage: scale.py BUILD_DIR [HOSTS] [VMS] [REPS]   (defaults 16, 10000, 5)
"""
import http.client
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import xmlrpc.client

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'tests', 'integration'))
from harness import Vesseld, value, wait_for  # noqa: E402
from test_pool_store import Etcd  # noqa: E402


def rss_mib(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024.0
    return 0.0


def make_vms(d, sess, n, threads=8):
    """n halted VMs from the direct-boot template's record, 8 at a time."""
    tmpl_proxy = d.proxy()
    tmpl = value(tmpl_proxy.VM.get_by_name_label(sess, 'Direct kernel boot'))[0]
    rec = value(tmpl_proxy.VM.get_record(sess, tmpl))
    for k in ('uuid', 'allowed_operations', 'current_operations', 'power_state', 'VBDs',
              'VIFs', 'consoles', 'crash_dumps', 'VTPMs', 'snapshots', 'children',
              'attached_PCIs', 'blocked_operations', 'metrics', 'guest_metrics',
              'resident_on', 'scheduled_to_be_resident_on', 'domid', 'parent',
              'snapshot_of', 'snapshot_time', 'transportable_snapshot_id', 'is_a_snapshot',
              'last_boot_CPU_flags', 'last_booted_record', 'snapshot_info', 'snapshot_metadata',
              'bios_strings', 'is_control_domain', 'is_default_template', 'VUSBs', 'VGPUs',
              'pending_guidances', 'pending_guidances_recommended', 'pending_guidances_full',
              'is_vmss_snapshot', 'snapshot_schedule', 'requires_reboot', 'domain_type'):
        rec.pop(k, None)
    rec['is_a_template'] = False
    todo = list(range(n))
    lock = threading.Lock()
    errors = []

    def worker():
        p = d.proxy()
        while True:
            with lock:
                if not todo:
                    return
                i = todo.pop()
            r = dict(rec, name_label='scale-%05d' % i)
            res = p.VM.create(sess, r)
            if res['Status'] != 'Success':
                errors.append(res)
                return
    ths = [threading.Thread(target=worker) for _ in range(threads)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    if errors:
        raise RuntimeError('VM.create failed: %r' % errors[0])


def time_get_all(d, sess, reps):
    """Seconds per VM.get_all_records, request to the reply's last byte (p50
    of reps: the server's cost, not Python's parsing), and the records one
    parse of the reply holds."""
    body = xmlrpc.client.dumps((sess,), 'VM.get_all_records').encode()
    out, reply = [], b''
    for _ in range(reps):
        c = http.client.HTTPConnection('127.0.0.1', d.port, timeout=120)
        t0 = time.monotonic()
        c.request('POST', '/', body=body, headers={'Content-Type': 'text/xml'})
        reply = c.getresponse().read()
        out.append(time.monotonic() - t0)
        c.close()
    count = len(value(xmlrpc.client.loads(reply)[0][0]))
    return statistics.median(out), count, len(reply)


def main():
    build = sys.argv[1]
    hosts = int(sys.argv[2]) if len(sys.argv) > 2 else 16
    vms = int(sys.argv[3]) if len(sys.argv) > 3 else 10000
    reps = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    binary = os.path.join(build, 'vesseld')
    root = tempfile.mkdtemp(prefix='vessel-poolscale-')
    etcd = Etcd(root, n=1)
    pool, single = [], None
    try:
        etcd.start(0)
        if not wait_for(etcd.writable, 30):
            raise RuntimeError('etcd did not start')
        common = ['--backend', 'sim', '--store', 'etcd', '--etcd-endpoints', etcd.endpoints(),
                  '--etcd-prefix', '/vessel/scale', '--metrics-period', '3600']
        pool.append(Vesseld(binary, extra=common).start(timeout=60))
        for _ in range(hosts - 1):
            pool.append(Vesseld(binary, extra=common + ['--pool-member']).start(timeout=60))
        single = Vesseld(binary, extra=['--backend', 'sim', '--metrics-period', '3600']).start()
        first, member = pool[0], pool[-1]
        ps, ss = first.login(), single.login()
        n_hosts = len(value(first.proxy().host.get_all(ps)))
        t0 = time.monotonic()
        make_vms(first, ps, vms)
        made_pool = time.monotonic() - t0
        t0 = time.monotonic()
        make_vms(single, ss, vms)
        made_single = time.monotonic() - t0
        base = len(value(first.proxy().VM.get_all(ps)))
        # every member holds every VM once the watch brought them
        wait_for(lambda: len(value(member.proxy().VM.get_all(ps))) == base, 120)
        res = {}
        for name, d, sess in (('pool-first', first, ps), ('pool-member', member, ps),
                              ('single', single, ss)):
            secs, count, size = time_get_all(d, sess, reps)
            res[name] = {'seconds': secs, 'records': count, 'bytes': size,
                         'rss_mib': rss_mib(d.proc.pid)}
        ratio = res['pool-first']['seconds'] / res['single']['seconds']
        ratio_m = res['pool-member']['seconds'] / res['single']['seconds']
        print('pool of %d hosts (etcd, sim), %d VMs made in %.1f s (single host: %.1f s)'
              % (n_hosts, vms, made_pool, made_single))
        print('%-12s %10s %8s %8s %8s' % ('where', 'p50 s', 'records', 'MB', 'RSS MiB'))
        for name in ('pool-first', 'pool-member', 'single'):
            r = res[name]
            print('%-12s %10.3f %8d %8.1f %8.1f' % (name, r['seconds'], r['records'],
                                                   r['bytes'] / 1e6, r['rss_mib']))
        print('VM.get_all_records: pool/single %.2fx (first host), %.2fx (a member)'
              % (ratio, ratio_m))
        print('POOLSCALE_JSON ' + json.dumps({'hosts': n_hosts, 'vms': vms, 'results': res,
                                               'ratio_first': ratio, 'ratio_member': ratio_m,
                                               'create_s': {'pool': made_pool,
                                                            'single': made_single}}))
    finally:
        for d in pool + ([single] if single else []):
            d.kill()
            shutil.rmtree(d.dir, ignore_errors=True)
        etcd.stop_all()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
