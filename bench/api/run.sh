#!/usr/bin/env bash
# bench/api/run.sh - the XenAPI benchmark (issue 2): VM.get_record calls/s on
# one keep-alive connection, event.from wake-up latency, get_all_records of
# 10,000 VMs and vesseld's RSS with them.
#
#   bash bench/api/run.sh [BUILD_DIR]        (default: $BUILD or ./build)
#
# Then bench/api/peers.py: the request path against nginx (wrk, 1 and 8
# connections) and libvirt (a Python client's p50), with their own vesseld;
# and bench/api/allocs.py: heap allocations per small call (perf uprobes).
#
# Environment: APIBENCH_SECONDS (5), APIBENCH_SAMPLES (200), APIBENCH_VMS (10000),
# PEERS_SECONDS (4), PEERS_RUNS (3).
# Starts its own vesseld on a temporary data dir and a free 127.0.0.1 port,
# runs apibench against it, stops it. Prints a table and an APIBENCH_JSON line.
set -eu -o pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-${BUILD:-build}}
case $build in /*) ;; *) build="$root/$build" ;; esac
vesseld="$build/vesseld"
[ -x "$vesseld" ] || { echo "bench/api: no $vesseld (run make first)" >&2; exit 1; }

# apibench: from the meson build (subdir('bench/api')) or compiled here.
apibench="$build/bench/api/apibench"
if [ ! -x "$apibench" ] || [ "$here/apibench.c" -nt "$apibench" ]; then
  apibench="$build/bench-api/apibench"
  if [ ! -x "$apibench" ] || [ "$here/apibench.c" -nt "$apibench" ]; then
    mkdir -p "$build/bench-api"
    ${CC:-cc} -O2 -std=c17 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
      -Wmissing-prototypes -Wstrict-prototypes -Wvla -o "$apibench" "$here/apibench.c" -lm -pthread
  fi
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vessel-apibench.XXXXXX")
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$tmp/pw"
chmod 600 "$tmp/pw"
mkdir "$tmp/data"
"$vesseld" --data-dir "$tmp/data" --listen 127.0.0.1:0 --tls-listen none --nbd-listen none \
  --unix "$tmp/xapi.sock" --root-password-file "$tmp/pw" 2> "$tmp/vesseld.log" &
pid=$!
. "$root/scripts/vesseld-port.sh"
port=$(vesseld_port "$tmp/vesseld.log" "$pid" 150)
if [ -z "$port" ]; then
  cat "$tmp/vesseld.log" >&2
  echo "bench/api: vesseld did not become ready" >&2
  exit 1
fi

echo "bench/api: vesseld $(git -C "$root" describe --always --dirty 2>/dev/null || echo '?') pid $pid port $port, $(nproc) CPUs, $(uname -r)" >&2
"$apibench" --port "$port" --password-file "$tmp/pw" --pid "$pid" \
  --seconds "${APIBENCH_SECONDS:-5}" --samples "${APIBENCH_SAMPLES:-200}" --vms "${APIBENCH_VMS:-10000}"
cleanup  # its vesseld, with the VMs it made, is not the one peers.py measures
pid=
echo
python3 "$here/peers.py" "$build" --seconds "${PEERS_SECONDS:-4}" --runs "${PEERS_RUNS:-3}"
echo
python3 "$here/allocs.py" "$build"
