"""tests/integration/depriv_checks.py - is a helper process deprivileged?

Issue 11 ("device models apart"): every qemu runs under a uid of its own, with
PR_SET_NO_NEW_PRIVS, in its own mount, PID and IPC namespaces and in its VM's
cgroup v2 group with the VM's limits; every vhd serve under a uid of its own.
These read what the kernel says about a process (/proc/PID/status, ns/,
cgroup) and compare it with vesseld's own.
"""
import os

QEMU_UID_BASE = 200000  # vesseld's defaults when it runs as root
VHD_UID_BASE = 300000


def cgroup2_root():
    """A cgroup v2 mount to give vesseld (--cgroup-root), or None."""
    with open('/proc/mounts') as f:
        mounts = [line.split() for line in f]
    roots = [m[1] for m in mounts if m[2] == 'cgroup2']
    return '/sys/fs/cgroup' if '/sys/fs/cgroup' in roots else (roots[0] if roots else None)


def status(pid):
    out = {}
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            k, _, v = line.partition(':')
            out[k] = v.split()
    return out


def vesseld_pid(d):
    return d.proc.pid


def check_ids(t, pid, base, what):
    st = status(pid)
    uids, gids = [int(x) for x in st['Uid']], [int(x) for x in st['Gid']]
    t.ok(len(set(uids)) == 1 and uids[0] >= base and uids[0] < base + 65536,
         '%s runs as a uid of its own range (real, effective, saved, fs: %s)' % (what, uids), st['Uid'])
    t.ok(len(set(gids)) == 1 and gids[0] == uids[0], '%s: gid the same, not 0' % what, st['Gid'])
    t.eq(st['Groups'], [], '%s: no supplementary groups' % what)
    t.eq(st['NoNewPrivs'], ['1'], '%s: NoNewPrivs 1' % what)
    t.eq(st['CapEff'], ['0000000000000000'], '%s: no effective capability' % what)
    return uids[0]


def check_device_model(t, d, pid, uuid, cgroup_root, weight=None, cap=None, memory=None):
    """qemu @pid of VM @uuid: ids, namespaces, cgroup and its limits."""
    uid = check_ids(t, pid, QEMU_UID_BASE, 'qemu')
    me = vesseld_pid(d)
    for ns in ('mnt', 'pid', 'ipc'):
        t.ok(os.readlink('/proc/%d/ns/%s' % (pid, ns)) != os.readlink('/proc/%d/ns/%s' % (me, ns)),
             'qemu has a %s namespace of its own' % ns)
    t.eq(status(pid)['NSpid'][-1], '1', 'qemu is pid 1 in its PID namespace')
    with open('/proc/%d/cgroup' % pid) as f:
        v2 = [line.strip().split(':', 2)[2] for line in f if line.startswith('0::')]
    group = '/vessel.slice/vm-%s' % uuid
    if cgroup_root is None:
        t.ok(True, 'qemu cgroup # SKIP no cgroup v2 on this host')
        return uid
    t.ok(v2 and v2[0].endswith(group), 'qemu is in its VM\'s cgroup (%s)' % group, v2)
    gdir = cgroup_root + group
    limits = {'cpu.weight': weight, 'cpu.max': cap, 'memory.max': memory}
    for name, want in limits.items():
        path = os.path.join(gdir, name)
        if want is None:
            continue
        if not os.path.exists(path):
            t.ok(True, '%s # SKIP the %s controller is not enabled on this host' %
                 (name, name.split('.')[0]))
            continue
        with open(path) as f:
            t.eq(f.read().strip(), want, 'the VM\'s cgroup has %s %s' % (name, want))
    return uid


def vhd_serve_pids(d, uuid):
    out = []
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            with open('/proc/%s/cmdline' % pid, 'rb') as f:
                argv = f.read().split(b'\0')
        except OSError:
            continue
        if b'serve' in argv and any(uuid.encode() in a and d.dir.encode() in a for a in argv):
            out.append(int(pid))
    return out


def check_disk_servers(t, d, uuid, qemu_uid=None):
    pids = vhd_serve_pids(d, uuid)
    t.ok(pids, 'the VM has disk servers', pids)
    for pid in pids:
        uid = check_ids(t, pid, VHD_UID_BASE, 'vhd serve %d' % pid)
        t.ok(uid != qemu_uid, 'vhd serve runs under another uid than its qemu')
    disks = os.path.join(d.dir, 'data', 'run', 'disks')
    socks = [f for f in os.listdir(disks) if f.startswith(uuid) and f.endswith('.sock')]
    for s in socks:
        st = os.stat(os.path.join(disks, s))
        t.ok(st.st_mode & 0o777 == 0o600 and (qemu_uid is None or st.st_uid == qemu_uid),
             'NBD socket %s: its qemu\'s alone (0600)' % s, oct(st.st_mode))
