"""tests/integration/ext4_image.py - read a copy of a guest's ext4 disk offline.

A disk copied from a running guest (a live snapshot) or left by a guest that
was killed (VM.hard_shutdown) is crash-consistent, not clean: what the guest
synced is committed in the ext4 journal, but the metadata may not yet be
written back to its home blocks (jbd2 checkpoints lazily, the block device's
writeback runs on a timer). Tools that read the file system offline
(debugfs, e2fsck -n) do not replay the journal, so what they see depends on
how far that writeback had got: a synced file can read as absent. Such a
copy is read the way a crashed disk is mounted: recovered first, as at boot
(e2fsck -p: the journal replayed, orphan inodes released, summary counters
fixed; anything a crash does not explain stops it with exit 4), then read.
Only ever run on a copy: recovery writes to the image.
"""
import subprocess


def recover(path):
    """Recovers the image at @path as a boot-time fsck would; (ok, output).
    e2fsck's exit status 1 or 2 says it fixed something (here the replay)."""
    r = subprocess.run(['e2fsck', '-f', '-p', path], capture_output=True, text=True)
    return r.returncode in (0, 1, 2), 'e2fsck -f -p: exit %d\n%s' % (r.returncode,
                                                                    r.stdout + r.stderr)


def check(path):
    """Recovers the image, then a full read-only check must find nothing
    (e2fsck -fn exits 0); (clean, output of both)."""
    ok, out = recover(path)
    r = subprocess.run(['e2fsck', '-fn', path], capture_output=True, text=True)
    out += '\ne2fsck -fn: exit %d\n%s' % (r.returncode, r.stdout + r.stderr)
    return ok and r.returncode == 0, out


def read_files(path, names):
    """{name: content (stripped) or None when absent} of files by absolute
    name in the (recovered) image at @path, read with debugfs."""
    out = {}
    for n in names:
        r = subprocess.run(['debugfs', '-R', 'cat /%s' % n.lstrip('/'), path],
                           capture_output=True, text=True)
        out[n] = r.stdout.strip() if r.returncode == 0 and r.stdout else None
    return out
