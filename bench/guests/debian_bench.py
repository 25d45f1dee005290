#!/usr/bin/env python3
"""bench/guests/debian_bench.py - a real OS: VM.start to its address in the API.

Measures, in one run, the Debian 12 test guest (tests/guest/build-debian.sh)
from the start call to the moment its IPv4 address is known through the
guest agent:
  - through vesseld: VM.start, then VM_guest_metrics.networks "0/ip" polled
    every 0.2 s (the guest takes its address by DHCP from dnsmasq on the
    Vessel network's bridge);
  - bare qemu with the same machine, kernel, initramfs, disk (a copy of the
    image), NIC, agent channel and devices: its address asked from the
    agent directly (guest-network-get-interfaces every 0.2 s), the NIC on a
    tap on a bridge with the same dnsmasq;
and prints the ratio (median of REPS). Runs inside a network namespace of
its own. Root only.
Usage: debian_bench.py BUILD_DIR [REPS]
"""
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', '..', 'tests', 'integration'))
from harness import Vesseld, run_in_netns, value  # noqa: E402
import debian_guest  # noqa: E402


def agent_ipv4(sock_path, deadline):
    """Polls the agent on @sock_path until a non-loopback IPv4 appears."""
    while time.monotonic() < deadline:
        try:
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(1)
            s.connect(sock_path)
            s.sendall(b'{"execute":"guest-sync-delimited","arguments":{"id":4242}}\n'
                      b'{"execute":"guest-network-get-interfaces"}\n')
            buf = b''
            while buf.count(b'\n') < 2:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
            s.close()
            lines = [x.lstrip(b'\xff') for x in buf.split(b'\n') if x.strip()]
            for line in lines:
                ret = json.loads(line).get('return')
                for nic in ret if isinstance(ret, list) else []:
                    for a in nic.get('ip-addresses', []):
                        if a.get('ip-address-type') == 'ipv4' and not a['ip-address'].startswith('127.'):
                            return a['ip-address']
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    return None


def bare(images, tmp, bridge, mac):
    disk = os.path.join(tmp, 'bare.img')
    subprocess.run(['cp', '--sparse=always', images['image'], disk], check=True)
    tap = 'vbtap0'
    subprocess.run(['ip', 'tuntap', 'add', tap, 'mode', 'tap'], check=True)
    subprocess.run(['ip', 'link', 'set', tap, 'master', bridge, 'up'], check=True)
    sock = os.path.join(tmp, 'agent.sock')
    cmd = ['qemu-system-x86_64', '-machine', 'pc', '-accel', 'tcg', '-m', '256M', '-smp', '1',
           '-nodefaults', '-no-user-config', '-display', 'none', '-serial', 'null',
           '-vga', 'std', '-vnc', 'unix:%s/vnc.sock' % tmp, '-device', 'pvpanic',
           '-kernel', images['kernel'], '-initrd', images['initrd'],
           '-append', 'root=/dev/vda console=ttyS0',
           '-drive', 'file=%s,if=none,id=d0,format=raw' % disk, '-device', 'virtio-blk-pci,drive=d0',
           '-netdev', 'tap,id=n0,ifname=%s,script=no,downscript=no' % tap,
           '-device', 'virtio-net-pci,netdev=n0,mac=%s' % mac,
           '-chardev', 'socket,id=agent,path=%s,server=on,wait=off' % sock,
           '-device', 'virtio-serial-pci', '-device',
           'virtserialport,chardev=agent,name=org.qemu.guest_agent.0',
           '-device', 'virtio-balloon-pci']
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    while not os.path.exists(sock) and time.monotonic() - t0 < 10:
        time.sleep(0.01)
    ip = agent_ipv4(sock, t0 + 600)
    took = time.monotonic() - t0
    p.kill()
    p.wait()
    subprocess.run(['ip', 'link', 'del', tap])
    os.unlink(disk)
    return took if ip else None


def through_api(d, s, sess, g):
    t0 = time.monotonic()
    value(s.VM.start(sess, g.vm, False, False))
    took = None
    while time.monotonic() - t0 < 600:
        ref = value(s.VM.get_guest_metrics(sess, g.vm))
        if ref != 'OpaqueRef:NULL' and value(s.VM_guest_metrics.get_networks(sess, ref)).get('0/ip'):
            took = time.monotonic() - t0
            break
        time.sleep(0.2)
    value(s.VM.hard_shutdown(sess, g.vm))
    return took


def inner(build, guest_dir, reps):
    subprocess.run(['ip', 'link', 'set', 'lo', 'up'])
    images = debian_guest.build(guest_dir)
    tmp = tempfile.mkdtemp(prefix='vessel-debbench-')
    d = Vesseld(os.path.join(build, 'vesseld'), extra=['--backend', 'qemu', '--guest-kernel-dir', guest_dir])
    try:
        d.start()
        s = d.proxy()
        sess = d.login()
        net, dhcp = debian_guest.lan(s, sess, tmp)
        g = debian_guest.debian_guest(d, s, sess, images, net, dhcp, start=False)
        bridge = value(s.network.get_bridge(sess, net))
        api, raw = [], []
        for _ in range(reps):
            raw.append(bare(images, tmp, bridge, '02:00:00:00:be:01'))
            api.append(through_api(d, s, sess, g))
        dhcp.stop()
        ok_raw = [x for x in raw if x]
        ok_api = [x for x in api if x]
        b = statistics.median(ok_raw) if ok_raw else float('nan')
        a = statistics.median(ok_api) if ok_api else float('nan')
        print('Debian 12 guest, start to its IPv4 address known through the agent, median of %d (s)' % reps)
        print('  bare qemu (same devices, agent asked directly)  %8.2f   (%d/%d)' % (b, len(ok_raw), reps))
        print('  VM.start -> VM_guest_metrics.networks 0/ip       %8.2f   (%d/%d)' % (a, len(ok_api), reps))
        print('  ratio                                            %8.2f' % (a / b))
    finally:
        d.kill_all()
        d.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    build = os.path.abspath(sys.argv[1])
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    guest_dir = os.path.join(build, 'bench-debian')
    if len(sys.argv) > 3 and sys.argv[3] == '--inner':
        return inner(build, guest_dir, reps)
    if os.geteuid() != 0:
        print('debian_bench: needs root (a network namespace, taps)')
        return 0
    debian_guest.build(guest_dir)  # outside the namespace: it may download
    rc = run_in_netns('vessel-debbench', [sys.executable, os.path.abspath(__file__),
                                                       build, str(reps), '--inner'])
    return rc or 0


if __name__ == '__main__':
    sys.exit(main())
