#!/usr/bin/env python3
"""tests/integration/test_storage_crash.py - what a crash of vesseld leaves in
an SR is removed at the next start, and nothing else is (issue 11, finding 13).

vesseld is killed with SIGKILL between two steps of VDI.create, VDI.clone and
VDI.copy (VESSEL_TEST_CRASH_AT, common/testhook.h), and a work file of an
export is left as a crash leaves it. After each restart the orphans (the new
VDI's file, its intent, .part work files, a half-made snapshot base) must be
gone and logged, while a real VDI and a VHD a user put into the SR by hand
stay untouched (SR.scan still adopts the latter).
Usage: test_storage_crash.py BUILD/vesseld BUILD/vhd
"""
import os
import subprocess
import sys
import time
import uuid as uuidlib
import xmlrpc.client

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Tap, Vesseld, value  # noqa: E402

MiB = 1024 * 1024


def vdi_args(sr, size, name):
    return {'name_label': name, 'name_description': '', 'SR': sr, 'virtual_size': str(size),
            'type': 'user', 'sharable': False, 'read_only': False, 'other_config': {}}


def listing(sr_dir):
    return set(os.listdir(sr_dir))


def crash_during(t, d, point, call):
    """Starts vesseld to crash at @point, makes @call, waits for the SIGKILL."""
    os.environ['VESSEL_TEST_CRASH_AT'] = point
    try:
        d.start()
    finally:
        del os.environ['VESSEL_TEST_CRASH_AT']
    s = d.proxy()
    sess = d.login()
    try:
        call(s, sess)
        answered = True
    except (OSError, xmlrpc.client.ProtocolError, ConnectionError):
        answered = False
    try:
        rc = d.proc.wait(10)
    except Exception:
        rc = None
    t.ok(not answered and rc == -9, 'vesseld was killed at %s (status %r)' % (point, rc))
    d.proc = None


def log_text(d):
    with open(d.log_path) as f:
        return f.read()


def check_vhd(vhd_tool, path):
    r = subprocess.run([vhd_tool, 'check', path], capture_output=True, text=True)
    return r.returncode == 0, r.stdout + r.stderr


def main():
    binary, vhd_tool = sys.argv[1], sys.argv[2]
    t = Tap()
    d = Vesseld(binary, extra=['--backend', 'sim'])
    try:
        d.start()
        s = d.proxy()
        sess = d.login()
        pool = value(s.pool.get_all(sess))[0]
        sr = value(s.pool.get_default_SR(sess, pool))
        # the collector would fold bases behind the test's back
        value(s.SR.add_to_other_config(sess, sr, 'coalesce', 'false'))
        sr_dir = os.path.join(d.dir, 'data', 'sr', 'local')
        keep = value(s.VDI.create(sess, vdi_args(sr, 8 * MiB, 'keep')))
        keep_uuid = value(s.VDI.get_uuid(sess, keep))
        src = value(s.VDI.create(sess, vdi_args(sr, 8 * MiB, 'src')))
        src_uuid = value(s.VDI.get_uuid(sess, src))
        user_uuid = str(uuidlib.uuid4())
        user_file = os.path.join(sr_dir, user_uuid + '.vhd')
        subprocess.run([vhd_tool, 'create', '--size', '8M', user_file], check=True,
                       capture_output=True)
        d.stop()
        before = listing(sr_dir)

        # 1. VDI.create: the file is made, the record not yet committed
        crash_during(t, d, 'vdi.create.before_commit',
                     lambda s, sess: s.VDI.create(sess, vdi_args(sr, 8 * MiB, 'lost')))
        left = listing(sr_dir) - before
        t.ok(len([n for n in left if n.endswith('.vhd')]) == 1 and
             len([n for n in left if n.endswith('.intent')]) == 1,
             'the crash left a VDI file and its intent', sorted(left))
        d.start()
        s, sess = d.proxy(), d.login()
        t.eq(listing(sr_dir), before, 'restart: the uncommitted VDI.create is gone')
        log = log_text(d)
        t.ok(all('storage.recover' in log and n in log for n in left),
             'each removed file is logged', [ln for ln in log.splitlines() if 'recover' in ln])
        t.ok('uncommitted VDI (create)' in log, 'with the reason')
        d.stop()

        # 2. VDI.clone: files made, records not committed
        crash_during(t, d, 'vdi.clone.before_commit', lambda s, sess: s.VDI.clone(sess, src, {}))
        left = listing(sr_dir) - before
        t.ok(any(n.endswith('.base.vhd') for n in left) and
             len([n for n in left if n.endswith('.intent')]) == 1,
             'the clone left a base, the new VDI and its intent', sorted(left))
        d.start()
        s, sess = d.proxy(), d.login()
        now = listing(sr_dir)
        t.eq(sorted(n for n in now - before if not n.endswith('.base.vhd')), [],
             'restart: the clone\'s VDI and intent are gone (its base stays: src is its child)')
        ok, out = check_vhd(vhd_tool, os.path.join(sr_dir, src_uuid + '.vhd'))
        t.ok(ok, 'the cloned VDI passes vhd check', out)
        t.eq(value(s.VDI.get_uuid(sess, src)), src_uuid, 'and keeps its record')
        before = now
        d.stop()

        # 3. VDI.clone stopped inside the snapshot: base linked, work file, no rename
        crash_during(t, d, 'sr_file.snapshot.before_rename',
                     lambda s, sess: s.VDI.clone(sess, keep, {}))
        left = listing(sr_dir) - before
        base = [n for n in left if n.endswith('.base.vhd')]
        t.ok(len(base) == 1 and '.%s.part' % keep_uuid in left and
             os.stat(os.path.join(sr_dir, base[0])).st_ino ==
             os.stat(os.path.join(sr_dir, keep_uuid + '.vhd')).st_ino,
             'the crash left a base that is a link of the leaf, and a work file', sorted(left))
        d.start()
        s, sess = d.proxy(), d.login()
        t.eq(listing(sr_dir), before, 'restart: link, work file, new VDI and intent are gone')
        ok, out = check_vhd(vhd_tool, os.path.join(sr_dir, keep_uuid + '.vhd'))
        t.ok(ok and os.stat(os.path.join(sr_dir, keep_uuid + '.vhd')).st_nlink == 1,
             'the VDI is whole again: one name, passes vhd check', out)
        t.ok('unfinished snapshot of %s.vhd' % keep_uuid in log_text(d),
             'the base link is reported as an unfinished snapshot')
        d.stop()

        # 4. VDI.copy: the copy renamed into place, no record
        crash_during(t, d, 'vdi.copy.before_commit',
                     lambda s, sess: s.VDI.copy(sess, keep, sr, 'OpaqueRef:NULL',
                                                'OpaqueRef:NULL'))
        t.eq(len(listing(sr_dir) - before), 2, 'the copy left a VDI file and its intent')
        # 5. an export's work file, as a crash during its conversion leaves it
        work = os.path.join(sr_dir, '.xfer-%s.part' % uuidlib.uuid4())
        with open(work, 'wb') as f:
            f.write(b'\0' * 4096)
        d.start()
        s, sess = d.proxy(), d.login()
        t.eq(listing(sr_dir), before, 'restart: the copy and the export work file are gone')
        t.ok(work in log_text(d) and 'work file' in log_text(d), 'the work file is logged')

        # what was never a leftover
        t.ok(os.path.exists(user_file), 'the VHD a user put into the SR is untouched')
        ok, out = check_vhd(vhd_tool, user_file)
        t.ok(ok, 'and intact', out)
        t.eq(value(s.VDI.get_uuid(sess, keep)), keep_uuid, 'the real VDI keeps its record')
        value(s.SR.scan(sess, sr))
        t.ok(value(s.VDI.get_by_uuid(sess, user_uuid)).startswith('OpaqueRef:'),
             'SR.scan still adopts the user\'s VHD')
        uuids = sorted(value(s.VDI.get_record(sess, v))['uuid'] for v in value(s.VDI.get_all(sess))
                       if value(s.VDI.get_SR(sess, v)) == sr)
        t.eq(uuids, sorted([keep_uuid, src_uuid, user_uuid]), 'no VDI record for any orphan')
        fresh = value(s.VDI.clone(sess, keep, {}))
        t.ok(fresh.startswith('OpaqueRef:'), 'VDI.clone works after recovery')
        t.eq([n for n in os.listdir(sr_dir) if n.endswith('.intent')], [],
             'a committed clone leaves no intent')
        with open(d.log_path) as f:
            n_start = f.read().count('storage.recover ')
        d.stop()
        d.start()
        with open(d.log_path) as f:
            t.eq(f.read().count('storage.recover '), n_start,
                 'a clean restart removes nothing')
    finally:
        d.stop()
        d.cleanup()
    return t.done()


if __name__ == '__main__':
    sys.exit(main())
