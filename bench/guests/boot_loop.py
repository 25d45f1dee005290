#!/usr/bin/env python3
"""bench/guests/boot_loop.py - does a machine type boot the stock kernel every time?

Boots the test guest N times in a row (bare qemu, TCG, as vesseld would run
it) on each machine and kernel given, and counts the boots that reach the
guest's marker within 60 s: a hang is a boot that does not. This is how the
default machine type for direct kernel boot was chosen (docs/guests.md).
Usage: boot_loop.py GUEST_DIR [N] [MACHINE:KERNEL ...]
  default: 20 boots of pc:bzImage, pc:vmlinux, microvm,acpi=on:bzImage
"""
import os
import select
import statistics
import subprocess
import sys
import time

MARKER = b'VESSEL-GUEST-UP'


def boot(guest, machine, kernel, limit=60):
    cmd = ['qemu-system-x86_64', '-machine', machine, '-accel', 'tcg', '-m', '256M', '-nodefaults',
           '-no-user-config', '-display', 'none', '-serial', 'stdio',
           '-kernel', os.path.join(guest, kernel), '-initrd', os.path.join(guest, 'initramfs.cpio'),
           '-append', 'console=ttyS0 quiet vessel.noagent']
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = b''
    took = None
    while time.monotonic() - t0 < limit:
        r, _, _ = select.select([p.stdout], [], [], 0.5)
        if not r:
            continue
        chunk = os.read(p.stdout.fileno(), 4096)
        if not chunk:
            break
        out += chunk
        if MARKER in out:
            took = time.monotonic() - t0
            break
    p.kill()
    p.wait()
    return took


def main():
    guest = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    cases = sys.argv[3:] or ['pc:bzImage', 'pc:vmlinux', 'microvm,acpi=on:bzImage']
    print('machine:kernel                 boots  hangs  median to marker (s)')
    for case in cases:
        machine, kernel = case.rsplit(':', 1)
        times = [boot(guest, machine, kernel) for _ in range(n)]
        ok = [x for x in times if x is not None]
        print('%-30s %5d  %5d  %s' % (case, n, n - len(ok),
                                     '%.2f' % statistics.median(ok) if ok else '-'))


if __name__ == '__main__':
    main()
