#!/usr/bin/env python3
"""bench/http/flood_login.py - how long a login takes while idle connections flood vesseld.

  python3 bench/http/flood_login.py BUILD/vesseld [N]     (N idle connections
                                                           per TCP listener, default 5000)
  LOWER_NOFILE=1 ...   starts vesseld with a soft RLIMIT_NOFILE of 1024 (systemd's default)

Starts its own vesseld (sim backend, plain + TLS + unix listeners; no new
options, so it runs any build, old or new), opens N idle TCP connections to
each TCP listener from 127.0.0.1, then times one login through each listener
and the unix socket (30 s client timeout). The regression test with the same
attack and its assertions is tests/integration/test_http_flood.py.
"""
import os
import resource
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..',
                                'tests', 'integration'))
import test_http_flood as flood  # noqa: E402
from harness import Vesseld  # noqa: E402


def main():
    binary = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if os.environ.get('LOWER_NOFILE'):
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    d = Vesseld(binary, tls=True, extra=['--backend', 'sim'])
    try:
        d.start()
        flood.raise_nofile(2 * n + 512)
        socks = []
        for port in (d.port, d.tls_port):
            opened, failed = flood.flood(port, n, timeout=5)
            socks += opened
            print('%d idle connections to port %d (%d failed)' % (len(opened), port, failed))
        for name, fn in (('plain', lambda: flood.login_plain(d, timeout=30)),
                         ('tls', lambda: flood.login_tls(d, timeout=30)),
                         ('unix', lambda: flood.login_unix(d))):
            _, dt, exc = flood.timed(fn)
            print('login %-5s %.3f s %s' % (name, dt, repr(exc) if exc else 'ok'))
        for s in socks:
            s.close()
    finally:
        d.stop()
        d.cleanup()


if __name__ == '__main__':
    main()
