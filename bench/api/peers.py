#!/usr/bin/env python3
"""bench/api/peers.py - the request path against its peers (issue 18), in one run.

  python3 bench/api/peers.py BUILD_DIR [--seconds 4] [--runs 3] [--samples 3000]
                                       [--only wrk|python] [--threads N]

Starts its own vesseld (sim backend, temporary data dir, 127.0.0.1 port 0),
its own nginx (one worker, on a temporary prefix and a free port) and its own
libvirtd (on a temporary socket directory, with no driver modules: only the
test driver, which lives in libvirt.so itself), and measures, always
alternating vesseld and its peer so that the load of a shared machine hits
both alike:

1. VM.get_record over one keep-alive connection, `wrk -t1 -c1`: vesseld
   against nginx serving the very same reply bytes as a static file (the
   request is the same XML-RPC body; nginx gets it as GET, since its static
   handler refuses POST and answering through error_page would cost nginx an
   internal redirect; sendfile off: see NGINX_CONF). RUNS alternating runs of SECONDS each; the ratio of
   each vesseld run to the nginx run next to it, and their median. Goal >= 0.9.
2. The same with `wrk -t1 -c8` (nginx with one worker). Goal >= 0.9.
3. A Python client's p50 for a small call: VM.get_power_state through
   xmlrpc.client (what the XenAPI.py module wraps; one keep-alive
   connection) against libvirt's virDomainGetInfo (python3-libvirt,
   dom.info()) on `test+unix:///default`: the libvirt client library, its RPC
   over a unix socket, libvirtd's dispatch and the test driver's in-memory
   domain - the same layers as a vesseld call (client library, socket,
   daemon dispatch, an in-memory record), without a hypervisor behind
   either. Calls alternate in blocks of 100; p50 of each. The goal's client
   is Vessel's own Python client (client/python/vessel_xenapi.py, a drop-in
   for XenAPI.py: JSON-RPC, one send per call), on vesseld's unix socket
   (like for like with libvirt's). xmlrpc.client is measured too, on the unix
   socket and on TCP: its own HTTP layer costs more than the whole libvirt
   call. Goal <= 1.0.

Prints a table and one line starting with "PEERS_JSON ". A peer that is not
installed (nginx, wrk, libvirtd, python3-libvirt: bench/install-deps.sh) is
reported as skipped; the exit status is non-zero only if vesseld misbehaves.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import xmlrpc.client

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, '..', '..'))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'integration'))
from harness import ROOT_PASSWORD, UnixHTTPConnection, Vesseld  # noqa: E402
sys.path.insert(0, os.path.join(ROOT, 'client', 'python'))
import vessel_xenapi  # noqa: E402

GOAL_WRK = 0.9
GOAL_P50 = 1.0


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def xmlrpc_body(method, *params):
    """A compact XML-RPC call body, as the C clients send it."""
    ps = ''.join('<param><value>%s</value></param>' % p for p in params)
    return ('<methodCall><methodName>%s</methodName><params>%s</params></methodCall>'
            % (method, ps)).encode()


def session_and_template(d, originator):
    """A root session on @d and its first template (sorted by ref): the
    VM.get_record the request-path benches drive."""
    px = d.proxy()
    sess = px.session.login_with_password('root', ROOT_PASSWORD, '1.0', originator)['Value']
    vms = px.VM.get_all_records(sess)['Value']
    return sess, sorted(r for r, v in vms.items() if v['is_a_template'])[0]


def raw_post(port, body):
    """The exact reply body bytes of one POST /."""
    import http.client
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
    c.request('POST', '/', body=body, headers={'Content-Type': 'text/xml'})
    r = c.getresponse()
    data = r.read()
    c.close()
    if r.status != 200:
        raise RuntimeError('HTTP %d: %r' % (r.status, data[:300]))
    return data


# --------------------------------------------------------------------------- nginx

NGINX_CONF = """worker_processes 1;
daemon off;
pid {p}/nginx.pid;
error_log {p}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  # For a reply this small, one writev of head and body beats sendfile with
  # TCP_CORK around it (Debian's default: 3 more syscalls, ~20% fewer calls/s
  # here): the peer is nginx at its fastest.
  sendfile off;
  tcp_nopush off;
  tcp_nodelay on;
  open_file_cache max=16;
  keepalive_requests 100000000;
  keepalive_timeout 60s;
  client_body_temp_path {p}/t; proxy_temp_path {p}/t; fastcgi_temp_path {p}/t;
  uwsgi_temp_path {p}/t; scgi_temp_path {p}/t;
  server {{
    listen 127.0.0.1:{port};
    root {p}/www;
    default_type text/xml;
  }}
}}
"""


class Nginx:
    def __init__(self, tmp, reply):
        self.p = os.path.join(tmp, 'nginx')
        os.makedirs(os.path.join(self.p, 'www'))
        os.makedirs(os.path.join(self.p, 't'))
        with open(os.path.join(self.p, 'www', 'record.xml'), 'wb') as f:
            f.write(reply)
        self.port = free_port()
        with open(os.path.join(self.p, 'nginx.conf'), 'w') as f:
            f.write(NGINX_CONF.format(p=self.p, port=self.port))
        self.proc = subprocess.Popen(['nginx', '-p', self.p, '-c', os.path.join(self.p, 'nginx.conf')],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(('127.0.0.1', self.port), timeout=1).close()
                with open('/proc/%d/task/%d/children' % (self.proc.pid, self.proc.pid)) as f:
                    self.worker = int(f.read().split()[0])  # its one worker
                return
            except (OSError, IndexError):
                time.sleep(0.05)
        raise RuntimeError('nginx did not start')

    def stop(self):
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --------------------------------------------------------------------------- wrk

WRK_LUA = """wrk.method = "{method}"
wrk.path = "{path}"
wrk.headers["Content-Type"] = "text/xml"
wrk.body = [==[{body}]==]
"""


def wrk_script(tmp, name, method, path, body):
    fn = os.path.join(tmp, name + '.lua')
    with open(fn, 'w') as f:
        f.write(WRK_LUA.format(method=method, path=path, body=body.decode()))
    return fn


def cpu_ticks(pid):
    """utime + stime of @pid (all its threads), in clock ticks."""
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return int(fields[11]) + int(fields[12])


def wrk(port, script, conns, seconds, pid):
    """calls/s, and the server's CPU µs per call (@pid: the serving process)."""
    t0 = cpu_ticks(pid)
    out = subprocess.run(['wrk', '-t1', '-c%d' % conns, '-d%ds' % seconds, '-s', script,
                          'http://127.0.0.1:%d/' % port],
                         capture_output=True, text=True, timeout=seconds + 60).stdout
    ticks = cpu_ticks(pid) - t0
    m = re.search(r'Requests/sec:\s+([\d.]+)', out)
    n = re.search(r'(\d+) requests in', out)
    if not m or not n:
        raise RuntimeError('wrk printed no rate: %s' % out)
    if 'Non-2xx' in out or 'Socket errors' in out:
        raise RuntimeError('wrk saw errors: %s' % out)
    return float(m.group(1)), ticks * 1e6 / os.sysconf('SC_CLK_TCK') / int(n.group(1))


def wrk_pairs(d, nginx, v_script, n_script, conns, seconds, runs):
    """Alternating runs (the order flips each time); per-pair ratios."""
    v, n, v_cpu, n_cpu = [], [], [], []
    for i in range(runs):
        order = [('v', d.port, v_script, d.proc.pid), ('n', nginx.port, n_script, nginx.worker)]
        if i % 2:
            order.reverse()
        for who, port, script, pid in order:
            rate, cpu = wrk(port, script, conns, seconds, pid)
            (v if who == 'v' else n).append(rate)
            (v_cpu if who == 'v' else n_cpu).append(cpu)
    ratios = [a / b for a, b in zip(v, n)]
    return {'vesseld': v, 'nginx': n, 'ratios': ratios, 'median_ratio': statistics.median(ratios),
            'cpu_us_per_call': {'vesseld': statistics.median(v_cpu),
                                'nginx': statistics.median(n_cpu)}}


# --------------------------------------------------------------------------- libvirt

def import_libvirt():
    try:
        import libvirt  # noqa: F401
    except ImportError:
        # python3-libvirt is built for Debian's python3; another python3
        # first on PATH (pyenv) can load it from there.
        sys.path.append('/usr/lib/python3/dist-packages')
        try:
            import libvirt  # noqa: F401
        except ImportError:
            return None
    import libvirt
    libvirt.registerErrorHandler(lambda ctx, err: None, None)
    return libvirt


class Libvirtd:
    """libvirtd on a private socket directory, loading no driver module."""

    def __init__(self, tmp):
        self.dir = os.path.join(tmp, 'libvirt')
        run = os.path.join(self.dir, 'run')
        empty = os.path.join(self.dir, 'no-drivers')
        os.makedirs(run)
        os.makedirs(empty)
        conf = os.path.join(self.dir, 'libvirtd.conf')
        with open(conf, 'w') as f:
            f.write('unix_sock_dir = "%s"\nauth_unix_rw = "none"\nauth_unix_ro = "none"\n'
                    'log_outputs = "3:stderr"\n' % run)
        env = dict(os.environ, LIBVIRT_DRIVER_DIR=empty)
        self.log = open(os.path.join(self.dir, 'libvirtd.log'), 'w')
        self.proc = subprocess.Popen(['libvirtd', '-f', conf, '-p', os.path.join(self.dir, 'pid')],
                                     env=env, stdout=self.log, stderr=self.log,
                                     stdin=subprocess.DEVNULL)
        self.sock = os.path.join(run, 'libvirt-sock')
        deadline = time.time() + 15
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError('libvirtd did not start')
            time.sleep(0.05)
        self.uri = 'test+unix:///default?socket=%s' % self.sock

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def p50_compare(calls, samples, block=100):
    """calls: {name: fn}. Alternating blocks of @block calls; p50 (µs) of each."""
    t = {name: [] for name in calls}
    for fn in calls.values():  # warm-up
        for _ in range(200):
            fn()
    clock = time.perf_counter_ns
    while min(len(v) for v in t.values()) < samples:
        for name, fn in calls.items():
            ts = t[name]
            for _ in range(block):
                t0 = clock()
                fn()
                ts.append(clock() - t0)
    return {name: statistics.median(v) / 1000.0 for name, v in t.items()}


# --------------------------------------------------------------------------- python clients

class KeepAliveUnixTransport(xmlrpc.client.Transport):
    """xmlrpc.client over a unix socket, one connection kept (the harness's
    transport connects for every call, which is not what a client does)."""

    def __init__(self, path):
        super().__init__()
        self.unix_path = path

    def make_connection(self, host):
        if self._connection and host == self._connection[0]:
            return self._connection[1]
        self._connection = host, UnixHTTPConnection(self.unix_path)
        return self._connection[1]


# --------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('build')
    ap.add_argument('--seconds', type=int, default=4)
    ap.add_argument('--runs', type=int, default=3)
    ap.add_argument('--samples', type=int, default=3000)
    ap.add_argument('--only', choices=['wrk', 'python'])
    ap.add_argument('--threads', type=int, default=0, help="vesseld --threads (0: its default)")
    a = ap.parse_args()
    binary = os.path.join(os.path.abspath(a.build), 'vesseld')
    extra = ['--backend', 'sim']
    if a.threads:
        extra += ['--threads', str(a.threads)]
    tmp = tempfile.mkdtemp(prefix='vessel-peers-')
    os.chmod(tmp, 0o755)  # nginx's worker runs as nobody
    d = Vesseld(binary, extra=extra)
    nginx = lv = None
    res = {'bench': 'api-peers', 'cpus': os.cpu_count(), 'loadavg_1m': os.getloadavg()[0]}
    skipped = []
    try:
        d.start()
        sess, tpl = session_and_template(d, 'peers')
        rec_req = xmlrpc_body('VM.get_record', sess, tpl)
        reply = raw_post(d.port, rec_req)
        res['get_record_bytes'] = len(reply)
        print('peers: vesseld pid %d port %d; VM.get_record reply %d bytes; load %.2f'
              % (d.proc.pid, d.port, len(reply), res['loadavg_1m']), file=sys.stderr)

        if a.only in (None, 'wrk'):
            if shutil.which('nginx') and shutil.which('wrk'):
                nginx = Nginx(tmp, reply)
                vs = wrk_script(tmp, 'vesseld', 'POST', '/', rec_req)
                ns = wrk_script(tmp, 'nginx', 'GET', '/record.xml', rec_req)
                # nginx must answer the same bytes
                import http.client
                c = http.client.HTTPConnection('127.0.0.1', nginx.port, timeout=10)
                c.request('GET', '/record.xml')
                got = c.getresponse()
                body = got.read()
                c.close()
                if got.status != 200 or body != reply:
                    raise RuntimeError('nginx answered %d, %d bytes' % (got.status, len(body)))
                for conns in (1, 8):
                    r = wrk_pairs(d, nginx, vs, ns, conns, a.seconds, a.runs)
                    res['wrk_c%d' % conns] = r
            else:
                skipped.append('wrk/nginx (not installed: bash bench/install-deps.sh)')

        if a.only in (None, 'python'):
            libvirt = import_libvirt()
            if libvirt and shutil.which('libvirtd'):
                lv = Libvirtd(tmp)
                conn = libvirt.open(lv.uri)
                dom = conn.lookupByName('test')
                tcp = xmlrpc.client.ServerProxy(d.url())
                unix = xmlrpc.client.ServerProxy('http://localhost/',
                                                 transport=KeepAliveUnixTransport(d.unix))
                vx = vessel_xenapi.xapi_local(d.unix)
                vx.xenapi.login_with_password('root', ROOT_PASSWORD, '1.0', 'peers')
                for r in (tcp.VM.get_power_state(sess, tpl), unix.VM.get_power_state(sess, tpl),
                          {'Status': 'Success', 'Value': vx.xenapi.VM.get_power_state(tpl)}):
                    if r != {'Status': 'Success', 'Value': 'Halted'}:
                        raise RuntimeError('VM.get_power_state: %r' % r)
                p = p50_compare({'vesseld_unix': lambda: unix.VM.get_power_state(sess, tpl),
                                 'vesseld_tcp': lambda: tcp.VM.get_power_state(sess, tpl),
                                 'vesseld_client': lambda: vx.xenapi.VM.get_power_state(tpl),
                                 'libvirt': dom.info}, a.samples)
                vx.xenapi.logout()
                conn.close()
                res['python_p50_us'] = p
                for k in ('unix', 'tcp', 'client'):
                    res['python_p50_ratio_' + k] = p['vesseld_' + k] / p['libvirt']
                res['libvirt'] = {'version': libvirt.getVersion(), 'uri': 'test+unix:///default'}
            else:
                skipped.append('libvirt (libvirtd or python3-libvirt not installed)')
    finally:
        if nginx:
            nginx.stop()
        if lv:
            lv.stop()
        d.stop()
        d.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)

    def verdict(ok):
        return 'ok' if ok else 'MISSED'

    print('\nRequest path vs peers (%d CPUs, load %.2f; vesseld and peer alternate)'
          % (res['cpus'], res['loadavg_1m']))
    print('%-52s %10s %10s %7s %8s' % ('measure', 'vesseld', 'peer', 'ratio', 'goal'))
    for conns in (1, 8):
        r = res.get('wrk_c%d' % conns)
        if not r:
            continue
        print('%-52s %10.0f %10.0f %7.2f %8s' % (
            'VM.get_record calls/s, wrk -t1 -c%d vs nginx (1 worker)' % conns,
            statistics.median(r['vesseld']), statistics.median(r['nginx']), r['median_ratio'],
            '>= %.1f %s' % (GOAL_WRK, verdict(r['median_ratio'] >= GOAL_WRK))))
        print('%-52s %s' % ('  per-run ratios', ' '.join('%.3f' % x for x in r['ratios'])))
        c = r['cpu_us_per_call']
        print('%-52s %10.1f %10.1f %7.2f' % ('  server CPU µs per call (median)', c['vesseld'],
                                            c['nginx'], c['vesseld'] / c['nginx']))
    if 'python_p50_us' in res:
        p = res['python_p50_us']
        print('%-52s %10.1f %10.1f %7.2f %8s' % (
            'Python p50 µs: VM.get_power_state (unix) vs GetInfo', p['vesseld_client'],
            p['libvirt'], res['python_p50_ratio_client'],
            '<= %.1f %s' % (GOAL_P50, verdict(res['python_p50_ratio_client'] <= GOAL_P50))))
        print('%-52s %10.1f %10.1f %7.2f' % ('  the same through xmlrpc.client (unix)',
                                            p['vesseld_unix'], p['libvirt'],
                                            res['python_p50_ratio_unix']))
        print('%-52s %10.1f %10.1f %7.2f' % ('  the same through xmlrpc.client (TCP)',
                                            p['vesseld_tcp'], p['libvirt'],
                                            res['python_p50_ratio_tcp']))
    for s in skipped:
        print('skipped: ' + s)
    res['skipped'] = skipped
    print('PEERS_JSON ' + json.dumps(res, separators=(',', ':')))
    return 0


if __name__ == '__main__':
    sys.exit(main())
