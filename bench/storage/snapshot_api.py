#!/usr/bin/env python3
"""bench/storage/snapshot_api.py - VDI.snapshot latency through the API.

- A 100 GiB (virtual) VDI on the local SR: 10 fresh disks snapshotted once, and
  one disk snapshotted 20 times in a row (a chain of 20), each call timed from
  request to reply (the goal: < 20 ms, independent of size). VDI.create refuses
  a virtual size above the SR's free space, so the 100 GiB disks are made with
  `vhd create` in the SR's directory and adopted by SR.scan.
- The same with a 1 GiB disk, to show the size does not matter.
- Rolling snapshots, as a backup tool takes them (snapshot, then destroy the
  previous one): with the garbage collector folding each old base away the
  chain stays short and the latency flat.
- A live snapshot: VDI.snapshot of a disk served to a running VM (sim
  backend: the disk server is real), the server paused for the file work.
Usage: snapshot_api.py BUILD_DIR
"""
import glob
import os
import statistics
import subprocess
import sys
import time
import uuid as uuidlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'tests', 'integration'))
from harness import Vesseld, value, wait_for  # noqa: E402


def main():
    build = sys.argv[1]
    d = Vesseld(os.path.join(build, 'vesseld'), extra=['--backend', 'sim'])
    try:
        d.start()
        s = d.proxy()
        sess = d.login()
        sr = value(s.pool.get_all_records(sess)).popitem()[1]['default_SR']
        path = value(s.PBD.get_device_config(sess, value(s.SR.get_PBDs(sess, sr))[0]))['path']

        def new_vdi(gib):
            u = str(uuidlib.uuid4())
            subprocess.run([os.path.join(build, 'vhd'), 'create', '--size', '%dG' % gib,
                            os.path.join(path, u + '.vhd')], check=True)
            value(s.SR.scan(sess, sr))
            return value(s.VDI.get_by_uuid(sess, u))

        def timed(vdi):
            t0 = time.monotonic()
            snap = value(s.VDI.snapshot(sess, vdi, {}))
            return (time.monotonic() - t0) * 1000, snap

        for gib in (100, 1):
            fresh = [timed(new_vdi(gib))[0] for _ in range(10)]
            vdi = new_vdi(gib)
            chain = [timed(vdi)[0] for _ in range(20)]
            print('VDI.snapshot of a %3d GiB disk: %.1f ms median (10 fresh disks); '
                  'in a chain of 20 snapshots: median %.1f ms, last %.1f ms'
                  % (gib, statistics.median(fresh), statistics.median(chain), chain[-1]))

        vdi = new_vdi(100)
        rolling, prev = [], None
        for _ in range(20):
            ms, snap = timed(vdi)
            rolling.append(ms)
            if prev:
                value(s.VDI.destroy(sess, prev))
                wait_for(lambda: len(glob.glob(os.path.join(path, '*.base.vhd'))) <= 60, 10)
            prev = snap
            time.sleep(0.3)  # the collector's turn
        print('rolling snapshots of a 100 GiB disk (each previous one destroyed, collector on): '
              'median %.1f ms, last %.1f ms' % (statistics.median(rolling), rolling[-1]))

        vms = value(s.VM.get_all_records(sess))
        tmpl = [r for r, v in vms.items() if v['name_label'] == 'Direct kernel boot'][0]
        vm = value(s.VM.clone(sess, tmpl, 'bench-live'))
        value(s.VM.set_is_a_template(sess, vm, False))
        live = new_vdi(100)
        value(s.VBD.create(sess, {'VM': vm, 'VDI': live, 'userdevice': '0', 'bootable': True,
                                  'mode': 'RW', 'type': 'Disk', 'unpluggable': True,
                                  'empty': False, 'other_config': {}, 'qos_algorithm_type': '',
                                  'qos_algorithm_params': {}}))
        value(s.VM.start(sess, vm, False, False))
        times = []
        for _ in range(10):
            ms, snap = timed(live)
            times.append(ms)
            value(s.VDI.destroy(sess, snap))
            time.sleep(0.3)
        print('live VDI.snapshot of a served 100 GiB disk (server paused, reloaded): '
              'median %.1f ms, max %.1f ms' % (statistics.median(times), max(times)))
        value(s.VM.hard_shutdown(sess, vm))
    finally:
        d.cleanup()


if __name__ == '__main__':
    main()
