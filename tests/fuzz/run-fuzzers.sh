#!/bin/sh
# tests/fuzz/run-fuzzers.sh - run every libFuzzer target of a clang build briefly.
#
# Usage: tests/fuzz/run-fuzzers.sh BUILD_DIR [SECONDS]
#   BUILD_DIR  a build configured with CC=clang -Dfuzz=true (holds *_libfuzzer)
#   SECONDS    how long each target runs (default 10)
#
# Each <name>_libfuzzer runs over a temporary copy of tests/fuzz/corpus/<name>/
# (the source corpus is never written to) and prints one TAP line. A crash,
# leak or timeout makes the line "not ok", keeps the reproducer under
# BUILD_DIR/fuzz-artifacts/<name>/ and makes the script exit 1. Turn a
# reproducer into a corpus file once the bug is fixed, so the gcc replay test
# keeps checking it.
set -u

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 BUILD_DIR [SECONDS]" >&2
    exit 2
fi
build=$1
secs=${2:-10}
case $secs in
    ''|*[!0-9]*) echo "$0: SECONDS must be a whole number" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
corpus_root=$here/corpus

targets=$(find "$build" -type f -name '*_libfuzzer' -perm -u+x 2>/dev/null | sort)
n=$(printf '%s\n' "$targets" | grep -c . || true)
if [ "$n" -eq 0 ]; then
    echo "1..0 # SKIP no *_libfuzzer binaries in $build (configure with CC=clang -Dfuzz=true)"
    exit 0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vessel-fuzz.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM

echo "1..$n"
i=0
failed=0
for bin in $targets; do
    i=$((i + 1))
    name=$(basename "$bin" _libfuzzer)
    work=$tmp/$name
    mkdir -p "$work/corpus" "$work/artifacts"
    if [ -d "$corpus_root/$name" ]; then
        cp -R "$corpus_root/$name/." "$work/corpus/"
    fi
    log=$work/log
    "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$work/artifacts/" "$work/corpus" >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    if [ $rc -eq 0 ]; then
        echo "ok $i - $name (${runs:-?} runs in ${secs}s)"
    else
        failed=1
        keep=$build/fuzz-artifacts/$name
        mkdir -p "$keep"
        cp "$work/artifacts/"* "$keep/" 2>/dev/null
        cp "$log" "$keep/log"
        echo "not ok $i - $name (exit $rc; reproducers and log in $keep)"
        grep -E 'ERROR|SUMMARY|round trip failed|deadly signal' "$log" | head -n 5 | sed 's/^/# /'
    fi
done
exit $failed
