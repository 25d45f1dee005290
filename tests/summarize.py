#!/usr/bin/env python3
"""Counts test cases over meson testlog.json files and TAP files.

A TAP test counts each "ok"/"not ok" line (SKIP/TODO counted as skipped);
a test without TAP lines counts once by its result. A test that crashed or
timed out after some passing lines counts one more failure. Prints per-run
failures, each with its first "not ok" lines (CI shows only the output's
tail, where the test logs are long gone), then the closing line "N passed,
N failed, N skipped".
"""
import json
import os
import re
import sys

TAP = re.compile(r'^(not ok|ok)\b(.*)$')
SHOWN = 8     # "not ok" lines quoted per failed test
DETAIL = 2    # and diagnostic lines after each


def not_ok_lines(text):
    """The test's first failed cases, each with the start of its diagnostic."""
    out, shown, detail = [], 0, 0
    for ln in text.splitlines():
        ln = ln.strip()
        if ln.startswith('not ok'):
            shown += 1
            detail = 0
            if shown <= SHOWN:
                out.append('    ' + ln[:200])
        elif ln.startswith('#') and 0 < shown <= SHOWN and detail < DETAIL:
            detail += 1
            out.append('      ' + ln[:200])
        elif ln.startswith('ok'):
            detail = DETAIL
    if shown > SHOWN:
        out.append('    ... %d more' % (shown - SHOWN))
    return out


def count_tap(text):
    passed = failed = skipped = 0
    for line in text.splitlines():
        m = TAP.match(line.strip())
        if not m:
            continue
        rest = m.group(2)
        if '# SKIP' in rest.upper() or '# TODO' in rest.upper():
            skipped += 1
        elif m.group(1) == 'ok':
            passed += 1
        else:
            failed += 1
    return passed, failed, skipped


def main(d):
    total = [0, 0, 0]
    failures = []
    for fn in sorted(os.listdir(d)):
        path = os.path.join(d, fn)
        run = fn.rsplit('.', 1)[0]
        if fn == 'summary.txt':
            continue
        if fn.endswith('.tap'):
            p, f, s = count_tap(open(path, errors='replace').read())
            total[0] += p; total[1] += f; total[2] += s
            if f:
                failures.append('%s: %d failed' % (run, f))
            continue
        if not fn.endswith('.json'):
            continue
        for line in open(path, errors='replace'):
            line = line.strip()
            if not line:
                continue
            t = json.loads(line)
            res = t.get('result', '')
            p, f, s = count_tap(t.get('stdout') or '')
            if p + f + s == 0:
                if res == 'OK':
                    p = 1
                elif res == 'SKIP':
                    s = 1
                else:
                    f = 1
            elif res not in ('OK', 'SKIP', 'EXPECTEDFAIL') and f == 0:
                f = 1  # crashed or timed out after the cases it printed
            total[0] += p; total[1] += f; total[2] += s
            if f:
                failures.append('%s: %s (%s)' % (run, t.get('name'), res))
                failures.extend(not_ok_lines(t.get('stdout') or ''))
    for x in failures:
        print(x if x.startswith(' ') else 'FAILED ' + x)
    line = '%d passed, %d failed, %d skipped' % tuple(total)
    print(line)
    with open(os.path.join(d, 'summary.txt'), 'w') as fp:
        fp.write(line + '\n')
    return 1 if total[1] else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else '.test-results'))
