#!/bin/sh
# bench/guests/run.sh - guest start to first console line, xenops vs bare qemu;
# live migration, VM.pool_migrate vs bare qemu (migrate_bench.py), and across two
# hosts in network namespaces over one link (migrate_net_bench.py: needs root, etcd).
#
# Usage: bench/guests/run.sh [BUILD_DIR] [REPS]
# Builds the test guest (tests/guest/build-guest.sh) and bench/guests/guestbench.c
# against BUILD_DIR's libxenops.a/libcommon.a (default: build), then runs one
# guest at a time and 10 at once; then the same through the API (VM.start,
# api_bench.py) and the destroy (VM.hard_shutdown against kill -9, 1 guest and
# 30 at once, destroy_bench.py), each against a bare qemu with the very command
# line vesseld gave the guest (bare_qemu.py). Figures go to stdout.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$top/build}" && pwd)
reps=${2:-3}
out=$build/bench-guests
mkdir -p "$out"
sh "$top/tests/guest/build-guest.sh" "$out/guest"
cc -std=c17 -O2 -D_GNU_SOURCE -I"$top" -o "$out/guestbench" "$here/guestbench.c" \
    "$build/xenops/libxenops.a" "$build/common/libcommon.a" -ljansson -lpthread
"$out/guestbench" "$out/guest" 1 "$reps"
"$out/guestbench" "$out/guest" 10 1
python3 "$here/api_bench.py" "$build" "$reps"
python3 "$here/destroy_bench.py" "$build" "$reps" 30
# live migration: VM.pool_migrate vs two bare QEMUs (downtime, tick gap, total)
python3 "$here/migrate_bench.py" "$build" "$reps"
# across hosts: VM.pool_migrate between two namespaced hosts vs two bare QEMUs, one
# in each namespace, over the same link; alternating reps (downtime, pings lost, total)
echo "python3 $here/migrate_net_bench.py $build $reps" >&2
python3 "$here/migrate_net_bench.py" "$build" "$reps"
