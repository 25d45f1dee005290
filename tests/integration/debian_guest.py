"""tests/integration/debian_guest.py - a real Debian 12 guest, through the XenAPI.

The guest is tests/guest/build-debian.sh's image: systemd to a serial getty,
its own cloud kernel and initramfs-tools initramfs (root=/dev/vda, a
whole-disk ext4 VDI), systemd-networkd taking an address by DHCP on every
wired link, qemu-guest-agent on the virtio-serial port org.qemu.guest_agent.0.

For a test:
    images = build(GUEST_DIR)                  # before entering a netns: it may download
    ...inside a network namespace of the test's own (harness.run_in_netns):
    d = Vesseld(binary, extra=['--backend', 'qemu', '--guest-kernel-dir', GUEST_DIR])
    net, dhcp = lan(s, sess, tmp)              # a network, its bridge's host address, dnsmasq
    g = debian_guest(d, s, sess, images, net, dhcp)
    g.vm, g.vdi, g.vbd, g.vif, g.uuid, g.mac, g.ip   # ip from dnsmasq's lease file
    ... VM.hard_shutdown etc.; dhcp.stop()
Nothing here leaves the namespace: the bridge, its address and dnsmasq live in it.
"""
import http.client
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import console_log, value, wait_for  # noqa: E402
import ext4_image  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT_PASSWORD = 'vessel'  # build-debian.sh's default
MiB = 1024 * 1024
BLOCK = 2 * MiB


def build(outdir):
    """Builds (or takes from the cache) the Debian image into @outdir; returns
    {'image', 'kernel', 'initrd'} paths. Raises with the script's error."""
    r = subprocess.run(['sh', os.path.join(HERE, '..', 'guest', 'build-debian.sh'), outdir],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError('build-debian.sh failed: %s' % r.stderr[-2000:])
    outdir = os.path.abspath(outdir)
    return {'image': os.path.join(outdir, 'debian.img'),
            'kernel': os.path.join(outdir, 'vmlinuz'),
            'initrd': os.path.join(outdir, 'initrd.img')}


def import_raw(d, sess, vdi, path):
    """PUT /import_raw_vdi of the file at @path, streamed; the HTTP status."""
    c = http.client.HTTPConnection('127.0.0.1', d.port, timeout=300)
    with open(path, 'rb') as f:
        c.request('PUT', '/import_raw_vdi?vdi=%s&session_id=%s' % (vdi, sess), body=f,
                  headers={'Content-Length': str(os.path.getsize(path))})
        r = c.getresponse()
        r.read()
    c.close()
    return r.status


def export_raw(d, sess, vdi, path):
    """GET /export_raw_vdi into @path (sparse: all-zero blocks are skipped);
    the HTTP status."""
    c = http.client.HTTPConnection('127.0.0.1', d.port, timeout=300)
    c.request('GET', '/export_raw_vdi?vdi=%s&session_id=%s&format=raw' % (vdi, sess))
    r = c.getresponse()
    zero = bytes(BLOCK)
    with open(path, 'wb') as f:
        while True:
            chunk = r.read(BLOCK)
            if not chunk:
                break
            if chunk == zero[:len(chunk)]:
                f.seek(len(chunk), os.SEEK_CUR)
            else:
                f.write(chunk)
        f.truncate()
    c.close()
    return r.status


def fsck_crashed(path):
    """Checks the ext4 image at @path (a copy: it is written to) the way a
    crashed disk comes back: recovered as at boot, then a full read-only
    check must find nothing. Returns (clean, e2fsck's output)."""
    return ext4_image.check(path)


class Dhcp:
    """dnsmasq serving DHCP (no DNS) on @bridge, which gets @host/24."""

    def __init__(self, bridge, tmp, net='10.98.0'):
        self.bridge = bridge
        self.host = net + '.1'
        self.range = (net + '.100', net + '.199')
        self.leases = os.path.join(tmp, 'dnsmasq.leases')
        self.log = os.path.join(tmp, 'dnsmasq.log')
        self.proc = None

    def start(self):
        subprocess.run(['ip', 'addr', 'add', self.host + '/24', 'dev', self.bridge], check=True,
                       capture_output=True)
        subprocess.run(['ip', 'link', 'set', self.bridge, 'up'], check=True, capture_output=True)
        open(self.leases, 'w').close()
        # --user=root: the lease file stays writable in the test's directory
        self.proc = subprocess.Popen(
            ['dnsmasq', '--keep-in-foreground', '--conf-file=/dev/null', '--port=0',
             '--user=root', '--interface=' + self.bridge, '--bind-interfaces',
             '--except-interface=lo', '--dhcp-range=%s,%s,255.255.255.0,1h' % self.range,
             '--dhcp-leasefile=' + self.leases, '--dhcp-authoritative', '--log-dhcp',
             '--log-facility=' + self.log, '--pid-file='],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def lease(self, mac):
        """The address dnsmasq gave to @mac, from its lease file, or None.
        A line: expiry MAC address hostname client-id."""
        try:
            with open(self.leases) as f:
                for line in f:
                    w = line.split()
                    if len(w) >= 3 and w[1].lower() == mac.lower():
                        return w[2]
        except OSError:
            pass
        return None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def lan(s, sess, tmp, bridge='vbrdeb', net='10.98.0'):
    """A Vessel network on @bridge with the host at @net.1/24 and a DHCP
    server; returns (network ref, Dhcp)."""
    ref = value(s.network.create(sess, {'name_label': 'lan', 'name_description': '', 'MTU': '1500',
                                        'other_config': {}, 'bridge': bridge}))
    return ref, Dhcp(bridge, tmp, net).start()


def local_sr(s, sess):
    srs = value(s.SR.get_all_records(sess))
    return [r for r, v in srs.items() if v['other_config'].get('vessel-local') == 'true'][0]


class Guest:
    pass


def debian_guest(d, s, sess, images, net=None, dhcp=None, name='debian', machine='pc',
                 args='', start=True, boot_timeout=600):
    """A VM of the Debian image: a VDI with the image uploaded (PUT
    /import_raw_vdi), a VM from "Direct kernel boot" booting the image's
    kernel and initramfs with root=/dev/vda, platform:machine=@machine, a VBD
    and, given @net, a VIF on it. With @start, VM.start and waits for the
    serial getty's "login:" and (given @dhcp) the DHCP lease.
    Returns a Guest: vm, vdi, vbd, vif, uuid, mac, ip (None without a lease),
    booted (login: seen), boot_seconds. Raises when a call fails."""
    g = Guest()
    g.vif = g.mac = g.ip = None
    g.booted = False
    g.boot_seconds = g.started_at = None
    size = os.path.getsize(images['image'])
    size = (size + BLOCK - 1) // BLOCK * BLOCK
    g.vdi = value(s.VDI.create(sess, {'name_label': name + '-root', 'name_description': '',
                                      'SR': local_sr(s, sess), 'virtual_size': str(size),
                                      'type': 'user', 'sharable': False, 'read_only': False,
                                      'other_config': {}}))
    status = import_raw(d, sess, g.vdi, images['image'])
    if status != 200:
        raise RuntimeError('PUT /import_raw_vdi of the Debian image: HTTP %d' % status)
    tmpl = [r for r, v in value(s.VM.get_all_records(sess)).items()
            if v['name_label'] == 'Direct kernel boot' and v['is_a_template']][0]
    g.vm = value(s.VM.clone(sess, tmpl, name))
    value(s.VM.set_is_a_template(sess, g.vm, False))
    value(s.VM.set_PV_kernel(sess, g.vm, images['kernel']))
    value(s.VM.set_PV_ramdisk(sess, g.vm, images['initrd']))
    value(s.VM.set_PV_args(sess, g.vm, ('root=/dev/vda console=ttyS0 ' + args).strip()))
    value(s.VM.remove_from_platform(sess, g.vm, 'machine'))
    value(s.VM.add_to_platform(sess, g.vm, 'machine', machine))
    value(s.VM.add_to_platform(sess, g.vm, 'accel', 'tcg'))
    g.vbd = value(s.VBD.create(sess, {'VM': g.vm, 'VDI': g.vdi, 'userdevice': '0', 'bootable': True,
                                      'mode': 'RW', 'type': 'Disk', 'unpluggable': True,
                                      'empty': False, 'other_config': {}, 'qos_algorithm_type': '',
                                      'qos_algorithm_params': {}}))
    if net:
        g.vif = value(s.VIF.create(sess, {'device': '0', 'network': net, 'VM': g.vm, 'MAC': '',
                                          'MTU': '1500', 'other_config': {},
                                          'qos_algorithm_type': '', 'qos_algorithm_params': {}}))
        g.mac = value(s.VIF.get_MAC(sess, g.vif))
    g.uuid = value(s.VM.get_uuid(sess, g.vm))
    if not start:
        return g
    t0 = g.started_at = time.time()
    value(s.VM.start(sess, g.vm, False, False))
    g.booted = bool(wait_for(lambda: 'login:' in console_log(d, g.uuid), boot_timeout, 1))
    if g.booted:
        g.boot_seconds = time.time() - t0
    if g.booted and dhcp and g.mac:
        g.ip = wait_for(lambda: dhcp.lease(g.mac), 120, 1)
    return g
