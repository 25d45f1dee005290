#!/bin/sh
# tests/fuzz/run-fuzzers.sh - run every libFuzzer target of a clang build briefly.
#
# Usage: tests/fuzz/run-fuzzers.sh BUILD_DIR [SECONDS]
#   BUILD_DIR  a build configured with CC=clang -Dfuzz=true (holds *_libfuzzer)
#   SECONDS    how long each target runs (default 10)
#   FUZZ_JOBS  (environment) how many targets run at once (default 2: a
#              libFuzzer process takes one core, so the stage's wall time is
#              n * SECONDS / FUZZ_JOBS while each target still gets SECONDS)
#
# Each <name>_libfuzzer runs over a temporary copy of tests/fuzz/corpus/<name>/
# (the source corpus is never written to) and prints one TAP line (in the
# order of the names, whichever finishes first). A crash,
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
pids=
trap 'rm -rf "$tmp"' EXIT
# shellcheck disable=SC2086
trap 'kill $pids 2>/dev/null; exit 130' INT TERM

jobs=${FUZZ_JOBS:-2}
case $jobs in
    ''|*[!0-9]*|0) echo "$0: FUZZ_JOBS must be a whole number above 0" >&2; exit 2 ;;
esac

# fuzz NAME BIN: one target over its corpus copy; its exit status in
# $tmp/NAME/rc (a background job's own status is only known to wait)
fuzz() {
    "$2" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$tmp/$1/artifacts/" "$tmp/$1/corpus" >"$tmp/$1/log" 2>&1
    echo $? >"$tmp/$1/rc"
}

# report I NAME: its TAP line once it is done; keeps what a failure left
# (sh has no locals: its variables are r_*)
report() {
    r_work=$tmp/$2
    r_log=$r_work/log
    r_rc=$(cat "$r_work/rc" 2>/dev/null || echo 125)
    r_runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$r_log" | tail -n 1)
    if [ "$r_rc" -eq 0 ]; then
        echo "ok $1 - $2 (${r_runs:-?} runs in ${secs}s)"
    else
        failed=1
        r_keep=$build/fuzz-artifacts/$2
        mkdir -p "$r_keep"
        cp "$r_work/artifacts/"* "$r_keep/" 2>/dev/null
        cp "$r_log" "$r_keep/log"
        echo "not ok $1 - $2 (exit $r_rc; reproducers and log in $r_keep)"
        grep -E 'ERROR|SUMMARY|round trip failed|deadly signal' "$r_log" | head -n 5 | sed 's/^/# /'
    fi
}

echo "1..$n"
i=0
done_n=0
failed=0
names=
for bin in $targets; do
    i=$((i + 1))
    name=$(basename "$bin" _libfuzzer)
    work=$tmp/$name
    mkdir -p "$work/corpus" "$work/artifacts"
    if [ -d "$corpus_root/$name" ]; then
        cp -R "$corpus_root/$name/." "$work/corpus/"
    fi
    fuzz "$name" "$bin" &
    pids="$pids $!"
    names="$names $name"
    # a window of $jobs running targets, reported in order: they all run
    # for the same SECONDS, so the oldest is the next to finish (the lists
    # are split on purpose: names are [a-z_]*, pids digits)
    if [ $((i - done_n)) -ge "$jobs" ]; then
        # shellcheck disable=SC2086
        set -- $pids
        wait "$1"
        shift
        pids=$*
        # shellcheck disable=SC2086
        set -- $names
        done_n=$((done_n + 1))
        report "$done_n" "$1"
        shift
        names=$*
    fi
done
for pid in $pids; do
    wait "$pid"
done
for name in $names; do
    done_n=$((done_n + 1))
    report "$done_n" "$name"
done
exit $failed
