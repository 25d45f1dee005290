#!/usr/bin/env python3
"""bench/storage/snapshot_api.py - VDI.snapshot latency through the API.

A 100 GiB (virtual) VDI (or the largest the SR takes) on the local SR, 20 snapshots in a row, each timed
from the call to its reply (the goal: < 20 ms, independent of size); a
1 GiB VDI the same way, to show the size does not matter.
Usage: snapshot_api.py BUILD_DIR
"""
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'tests', 'integration'))
from harness import Vesseld, value  # noqa: E402


def main():
    d = Vesseld(os.path.join(sys.argv[1], 'vesseld'), extra=['--backend', 'sim'])
    try:
        d.start()
        s = d.proxy()
        sess = d.login()
        sr = value(s.pool.get_all_records(sess)).popitem()[1]['default_SR']
        # 100 GiB is the goal's size, but the SR refuses a virtual size above its free
        # space (SR_FULL, as SM's file SR does): the largest that fits here stands in
        free = int(value(s.SR.get_physical_size(sess, sr))) - int(value(s.SR.get_physical_utilisation(sess, sr)))
        big = min(100, (free >> 30) * 9 // 10)
        def new_vdi(gib):
            return value(s.VDI.create(sess, {'name_label': 'bench-%dg' % gib, 'name_description': '',
                                              'SR': sr, 'virtual_size': str(gib << 30), 'type': 'user',
                                              'sharable': False, 'read_only': False,
                                              'other_config': {}}))

        def timed(vdi):
            t0 = time.monotonic()
            value(s.VDI.snapshot(sess, vdi, {}))
            return (time.monotonic() - t0) * 1000

        for gib in (big, 1):
            fresh = [timed(new_vdi(gib)) for _ in range(10)]
            vdi = new_vdi(gib)
            chain = [timed(vdi) for _ in range(20)]
            print('VDI.snapshot of a %3d GiB disk: %.1f ms median (10 fresh disks); '
                  'in a chain of 20 snapshots: median %.1f ms, last %.1f ms'
                  % (gib, statistics.median(fresh), statistics.median(chain), chain[-1]))
    finally:
        d.cleanup()


if __name__ == '__main__':
    main()
