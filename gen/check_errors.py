#!/usr/bin/env python3
"""gen/check_errors.py - every XenAPI error is raised through its generated setter.

datamodel/errors.json declares each error code with its parameter names, and
gen/vgen.py writes one setter per code (xerr_vm_bad_power_state(errp, vm,
expected, actual)), so the arity can never be wrong and an undeclared code
cannot compile. This check keeps it that way: it fails when hand-written code
raises an error by passing its code as a string (xerr_raise(errp, "CODE", ...),
xerr_raise0, xerr_set_at with a literal), and names each place.

  check_errors.py SOURCE_ROOT STAMP        the build's check (writes STAMP when clean)
  check_errors.py SOURCE_ROOT --rewrite    turns each literal raise into its setter

Generated code and model/xerr.[ch] (which implement the setters) are exempt.
"""
import json
import os
import re
import sys

SCANNED = ('api', 'cli', 'client', 'common', 'daemon', 'db', 'http', 'model', 'net', 'nbd',
           'rpc', 'storage', 'tools', 'vhd', 'wire', 'xenops')
EXEMPT = ('model/xerr.c', 'model/xerr.h')
RAISE = re.compile(r'xerr_(raise0?|set_at)\(\s*(?P<errp>[^,()]+(?:\([^()]*\))?)\s*,\s*'
                   r'(?:[^,]*,\s*[^,]*,\s*)?"(?P<code>[A-Za-z_][A-Za-z0-9_]*)"')


def declared(root):
    with open(os.path.join(root, 'datamodel', 'errors.json')) as f:
        return {e['code']: e['params'] for e in json.load(f)['errors']}


def sources(root):
    for top in SCANNED:
        for d, _, names in os.walk(os.path.join(root, top)):
            for n in sorted(names):
                if n.endswith(('.c', '.h')):
                    p = os.path.join(d, n)
                    if os.path.relpath(p, root) not in EXEMPT:
                        yield p


def find(root):
    for p in sources(root):
        with open(p) as f:
            text = f.read()
        for m in RAISE.finditer(text):
            line = text.count('\n', 0, m.start()) + 1
            yield p, line, m


def rewrite(root, codes):
    """xerr_raise(E, "CODE", a, b) -> xerr_code(E, a, b); xerr_raise0(E, "CODE") -> xerr_code(E)."""
    pat = re.compile(r'xerr_raise(0?)\(\s*([^,()]+(?:\([^()]*\))?)\s*,\s*"([A-Za-z_][A-Za-z0-9_]*)"\s*(,\s*|\))')
    for p in sources(root):
        with open(p) as f:
            text = f.read()
        new = pat.sub(lambda m: 'xerr_%s(%s%s' % (m.group(3).lower(), m.group(2).strip(),
                                                  ', ' if m.group(4).startswith(',') else ')'),
                      text)
        if new != text and '"xapi_errors.h"' not in new:
            # the setters are declared there: include it after the last local include
            last = list(re.finditer(r'^#include "[^"]+"\n', new, re.M))
            at = last[-1].end() if last else 0
            new = new[:at] + '#include "xapi_errors.h"\n' + new[at:]
        if new != text:
            with open(p, 'w') as f:
                f.write(new)
            print('rewrote', os.path.relpath(p, root))


def main(argv):
    root = argv[1]
    codes = declared(root)
    if len(argv) > 2 and argv[2] == '--rewrite':
        rewrite(root, codes)
        return 0
    bad = []
    for p, line, m in find(root):
        code = m.group('code')
        why = 'undeclared code' if code not in codes else 'use xerr_%s()' % code.lower()
        bad.append('%s:%d: error %s raised by its string: %s' % (
            os.path.relpath(p, root), line, code, why))
    if bad:
        sys.stderr.write('\n'.join(bad) + '\n%d error(s) raised around their generated setters '
                         '(gen/check_errors.py)\n' % len(bad))
        return 1
    with open(argv[2], 'w') as f:
        f.write('ok\n')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
