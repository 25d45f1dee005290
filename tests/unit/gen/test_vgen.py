#!/usr/bin/env python3
"""tests/unit/gen/test_vgen.py - golden-output test of gen/vgen.py on a tiny
schema (tests/unit/gen/tiny/). Any change to the generator shows here as a
diff; after reviewing it, regenerate with --update. Prints TAP."""
import difflib
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
VGEN = os.path.join(HERE, '..', '..', '..', 'gen', 'vgen.py')
FILES = ['xapi_model.h', 'xapi_model.c', 'xapi_errors.h', 'xapi_handlers.h', 'xapi_dispatch.c',
         'xapi_client.h']


def main():
    update = '--update' in sys.argv
    out = tempfile.mkdtemp(prefix='vgen-')
    n = 0
    failed = 0
    r = subprocess.run([sys.executable, VGEN, os.path.join(HERE, 'tiny'), out], capture_output=True, text=True)
    n += 1
    print('%s %d - vgen runs on the tiny schema' % ('ok' if r.returncode == 0 else 'not ok', n))
    failed += r.returncode != 0
    for f in FILES:
        n += 1
        got = open(os.path.join(out, f)).read() if os.path.exists(os.path.join(out, f)) else ''
        path = os.path.join(HERE, 'expected', f)
        if update:
            open(path, 'w').write(got)
        want = open(path).read() if os.path.exists(path) else None
        if got == want:
            print('ok %d - %s matches its golden file' % (n, f))
        else:
            failed += 1
            print('not ok %d - %s differs from its golden file' % (n, f))
            for line in list(difflib.unified_diff((want or '').splitlines(), got.splitlines(),
                                                  'expected', 'generated', lineterm=''))[:40]:
                print('#   ' + line)
    # a schema error is reported, not a traceback
    bad = tempfile.mkdtemp(prefix='vgen-bad-')
    with open(os.path.join(bad, 'x.json'), 'w') as fp:
        fp.write('{"class": "x", "fields": [{"name": "uuid", "type": "strang", "q": "DRO"}]}')
    r = subprocess.run([sys.executable, VGEN, bad, out], capture_output=True, text=True)
    n += 1
    ok = r.returncode != 0 and 'unknown type strang' in r.stderr
    failed += not ok
    print('%s %d - an unknown type is a clear generator error' % ('ok' if ok else 'not ok', n))
    print('1..%d' % n)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
