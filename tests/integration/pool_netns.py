"""tests/integration/pool_netns.py - a pool network on one machine.

A bridge in the test's own namespace (the administrator's side, address
.1 of a /24 chosen from the test's pid) and a network namespace per node (an
etcd member or a host), joined to the bridge by a veth pair whose outer end
the test can take down: that is a node's cable pulled, as opposed to its
processes killed. Nodes reach each other and the test reaches them at their
pool address; 127.0.0.1 in a node is its own.

Everything is named after the test's pid (interface names stay within the
kernel's 15 characters), and close() kills what runs in the namespaces and
removes them and the bridge, so concurrent tests and a crashed run's leftovers
never meet.
"""
import os
import subprocess


def ip(*args, check=True):
    return subprocess.run(['ip'] + list(args), check=check, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def usable():
    """None when network namespaces, veths and bridges can be made here, else why not."""
    if os.geteuid() != 0:
        return 'needs root (network namespaces)'
    probe = 'vessel-probe-%d' % os.getpid()
    r = ip('netns', 'add', probe, check=False)
    if r.returncode != 0:
        return 'ip netns add failed: ' + r.stderr.strip()
    ip('netns', 'del', probe, check=False)
    return None


class Node:
    def __init__(self, net, index, name):
        self.name = name
        self.ns = 'vessel-%d-%s' % (os.getpid(), name)
        self.addr = '%s.%d' % (net.prefix, 10 + index)
        self.outer = 'vp%x-%d' % (os.getpid() & 0xffff, index)   # on the bridge
        self.inner = 'eth0'

    def wrap(self):
        """The command prefix that runs a program in this node."""
        return ['ip', 'netns', 'exec', self.ns]


class PoolNet:
    def __init__(self):
        pid = os.getpid()
        self.prefix = '10.%d.%d' % (100 + (pid >> 8) % 100, pid & 255)
        self.bridge = 'vpb%x' % (pid & 0xffff)
        self.nodes = []
        ip('link', 'add', self.bridge, 'type', 'bridge')
        ip('addr', 'add', self.prefix + '.1/24', 'dev', self.bridge)
        ip('link', 'set', self.bridge, 'up')

    def add(self, name):
        n = Node(self, len(self.nodes), name)
        self.nodes.append(n)
        ip('netns', 'add', n.ns)
        ip('link', 'add', n.outer, 'type', 'veth', 'peer', 'name', n.inner, 'netns', n.ns)
        ip('link', 'set', n.outer, 'master', self.bridge)
        ip('link', 'set', n.outer, 'up')
        ip('-n', n.ns, 'addr', 'add', n.addr + '/24', 'dev', n.inner)
        ip('-n', n.ns, 'link', 'set', n.inner, 'up')
        ip('-n', n.ns, 'link', 'set', 'lo', 'up')
        return n

    def cut(self, node):
        """The node's cable pulled: nothing in or out, its processes untouched."""
        ip('link', 'set', node.outer, 'down')

    def mend(self, node):
        ip('link', 'set', node.outer, 'up')

    def kill_node(self, node):
        """SIGKILL to everything running in the node (a host's power lost)."""
        r = ip('netns', 'pids', node.ns, check=False)
        for pid in r.stdout.split():
            try:
                os.kill(int(pid), 9)
            except (ProcessLookupError, ValueError):
                pass

    def close(self):
        for n in self.nodes:
            self.kill_node(n)
            # the pair goes with its outer end even when a process that copied
            # the mount table (a new mount namespace) still pins the netns
            ip('link', 'del', n.outer, check=False)
            ip('netns', 'del', n.ns, check=False)
        ip('link', 'del', self.bridge, check=False)
