#!/usr/bin/env bash
# bench/ui/run.sh - the web UI's numbers (issue 16):
#   1. the bundle: each file of BUILD/ui/assets, raw and gzipped, and what the
#      first page load fetches (index.html's script and style);
#   2. first render of a pool with N sim VMs (default 1000) in headless
#      Chromium: from the login click to the VM list showing all N rows
#      ("time to interactive"), and to the tree showing them;
#      and, as its peer, the same objects fetched by a client that draws
#      nothing (event.from from token ""): the ratio is the UI's own cost;
#   3. metrics collection cost: vesseld's CPU use with M running sim VMs
#      (default 50, a disk each, so each step also reads their disk
#      servers' counters) sampled every 5 s, over 60 s, against the same
#      vesseld with no VM running, and the sampler's own time per step (its
#      rrd.sample debug lines) as a share of the 5 s step.
#
#   bash bench/ui/run.sh BUILD_DIR [N_VMS [N_RUNNING]]
set -u -o pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(cd "${1:?usage: run.sh BUILD_DIR [N_VMS [N_RUNNING]]}" && pwd)
n_vms=${2:-1000}
n_running=${3:-50}

echo "--- bundle (build/ui/assets) ---"
total_raw=0; total_gz=0
for f in "$build"/ui/assets/*; do
  raw=$(stat -c %s "$f"); gz=$(gzip -9c "$f" | wc -c)
  printf '%-40s %8d B  %7d B gzipped\n' "$(basename "$f")" "$raw" "$gz"
  total_raw=$((total_raw + raw)); total_gz=$((total_gz + gz))
done
first_gz=0
for a in $(grep -o '/assets/[^"]*' "$build/ui/index.html"); do
  first_gz=$((first_gz + $(gzip -9c "$build/ui$a" | wc -c)))
done
echo "all assets: $total_raw B, $total_gz B gzipped; first load (index.html's script and style): $first_gz B gzipped"
echo "bench.ui.bundle_first_load_gzip_bytes=$first_gz"
echo "bench.ui.bundle_total_gzip_bytes=$total_gz"
echo "bench.ui.bundle_first_load_share=$(awk -v a="$first_gz" -v b="$total_gz" 'BEGIN { printf "%.2f", a / b }')"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vessel-uibench.XXXXXX")
pid=
cleanup() {
  [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  # the disk servers of the running VMs outlive vesseld by design: end
  # ours, each by its pid (they name our data dir on their command line)
  for p in $(pgrep -f -- "$tmp/data" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
password="bench-$RANDOM-$RANDOM"
printf '%s\n' "$password" > "$tmp/pw"
mkdir -m 700 "$tmp/data"
"$build/vesseld" --data-dir "$tmp/data" --listen 127.0.0.1:0 --tls-listen none --nbd-listen none --backend sim \
  --unix "$tmp/xapi.sock" --root-password-file "$tmp/pw" --log-level debug 2> "$tmp/vesseld.log" &
pid=$!
port=
for _ in $(seq 100); do
  port=$(sed -n 's/.*vesseld\.ready.* http_port=\([0-9][0-9]*\).*/\1/p' "$tmp/vesseld.log" | head -n1)
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { echo "vesseld did not start" >&2; exit 1; }

VESSEL_URL="http://127.0.0.1:$port" VESSEL_PASSWORD="$password" VESSEL_TMP="$tmp" \
  VESSEL_UI_SRC="$root/ui" VESSEL_PID="$pid" VESSEL_LOG="$tmp/vesseld.log" \
  node "$here/bench.mjs" "$n_vms" "$n_running"
