#!/usr/bin/env bash
# bench/pool/run.sh - the pool store's benchmark (issue 15): a commit's
# latency on the etcd store against SQLite in the same run, and etcd's share
# of it (bench/pool/poolbench.c); then the same seen through the API, with
# event propagation from one vesseld to another (bench/pool/api_pool.py,
# its own 3-member etcd cluster).
#
#   bash bench/pool/run.sh [BUILD_DIR]        (default: $BUILD or ./build)
#
# Environment: POOLBENCH_SAMPLES (500), POOLAPI_SAMPLES (200), POOLSCALE_HOSTS (16),
# POOLSCALE_VMS (10000), POOLSCALE_REPS (5).
# Starts its own single-member etcd on free 127.0.0.1 ports in a temporary
# directory (killed by its pid at the end), runs poolbench against it and a
# SQLite store in the same directory. Prints a table and a POOLBENCH_JSON line.
set -eu -o pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-${BUILD:-build}}
case $build in /*) ;; *) build="$root/$build" ;; esac
poolbench="$build/bench/pool/poolbench"
[ -x "$poolbench" ] || { echo "bench/pool: no $poolbench (run make first)" >&2; exit 1; }
etcd=$(command -v etcd || true)
[ -n "$etcd" ] || { echo "bench/pool: etcd is not installed (scripts/install-deps.sh)" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vessel-poolbench.XXXXXX")
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
url=
for _ in 1 2 3; do
  cport=$(free_port) pport=$(free_port)
  url="http://127.0.0.1:$cport"
  "$etcd" --name bench --data-dir "$tmp/etcd" --listen-client-urls "$url" \
    --advertise-client-urls "$url" --listen-peer-urls "http://127.0.0.1:$pport" \
    --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
    --initial-cluster "bench=http://127.0.0.1:$pport" --max-txn-ops 4096 > "$tmp/etcd.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    curl -sf -m 1 "$url/health" 2>/dev/null | grep -q '"true"' && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  curl -sf -m 1 "$url/health" 2>/dev/null | grep -q '"true"' && break
  kill -KILL "$pid" 2>/dev/null || true  # a port was taken meanwhile: again
  wait "$pid" 2>/dev/null || true
  pid= url=
  rm -rf "$tmp/etcd"
done
if [ -z "$url" ]; then
  cat "$tmp/etcd.log" >&2
  echo "bench/pool: etcd did not start" >&2
  exit 1
fi

echo "bench/pool: $("$etcd" --version | head -n1), $(nproc) CPUs, $(uname -r), data in $(df -P "$tmp" | awk 'NR==2 {print $1}')" >&2
"$poolbench" --etcd "$url" --dir "$tmp" --samples "${POOLBENCH_SAMPLES:-500}" 2> "$tmp/poolbench.log" || {
  cat "$tmp/poolbench.log" >&2
  exit 1
}
python3 "$here/api_pool.py" "$build" "${POOLAPI_SAMPLES:-200}"
# VM.get_all_records in a pool of many sim hosts against one SQLite host with
# as many VMs (bench/pool/scale.py; about 4 minutes at the defaults)
python3 "$here/scale.py" "$build" "${POOLSCALE_HOSTS:-16}" "${POOLSCALE_VMS:-10000}" "${POOLSCALE_REPS:-5}"
