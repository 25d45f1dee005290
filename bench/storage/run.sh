#!/bin/bash
# bench/storage/run.sh - vhd serve vs nbdkit (raw) and qemu-nbd (vpc); coalesce; snapshot.
#
# Usage: bench/storage/run.sh PATH/TO/vhd [SIZE_GIB=1] [RUNTIME_S=5]
# Then, when vesseld is beside vhd (a build directory): nbd_bench.py, VDI reads over NBD
# with TLS against nbdkit --tls=require.
# Method (bench/storage): fio's nbd engine over a unix socket, one job, seq =
# 1 MiB at QD8, rand = 4 KiB at QD32; every target measured in the same session on the same
# machine, interleaved, reported as a ratio. The VHD is a QEMU-made dynamic disk, filled
# once (allocating), then served by qemu-nbd -f vpc and by vhd serve in turn; nbdkit serves
# a raw file of the same size. Coalesce: a child holding SIZE/2 GiB of random data merged
# into its parent, vs qemu-img commit of a qcow2 overlay of the same data. Snapshot: median
# of 5 `vhd snapshot` of a 100 GiB disk vs `qemu-img create -f qcow2 -b` (the O(1) anchor),
# and the same at the end of a 20-deep chain of a 67 GiB disk.
set -eu
VHD=$(realpath "$1"); SZ=${2:-1}; RT=${3:-5}
HERE=$(cd "$(dirname "$0")" && pwd)
D=$(mktemp -d /tmp/vhd-bench.XXXXXX); P=
trap '[ -n "$P" ] && kill $P 2>/dev/null; rm -rf "$D"' EXIT
cd "$D"
waitsock() { for _ in $(seq 100); do [ -S "$1" ] && return 0; sleep 0.05; done; return 1; }
fiojob() {  # fiojob SOCK RW BS QD -> prints MiB/s and IOPS
    fio --name=j --ioengine=nbd --uri="nbd+unix:///?socket=$1" --rw="$2" --bs="$3" \
        --iodepth="$4" --time_based --runtime="$RT" --ramp_time=1 --output-format=json 2>/dev/null |
    sed -n '/^{/,$p' | python3 -c '
import json,sys; j=json.load(sys.stdin)["jobs"][0]; s=j["read"] if j["read"]["io_bytes"] else j["write"]
print("%.0f %.0f" % (s["bw_bytes"]/1048576, s["iops"]))'
}
matrix() {  # matrix SOCK -> "seqr seqw randr randw" (MiB/s MiB/s IOPS IOPS)
    local a b c d
    a=$(fiojob "$1" read 1M 8 | cut -d' ' -f1); b=$(fiojob "$1" write 1M 8 | cut -d' ' -f1)
    c=$(fiojob "$1" randread 4k 32 | cut -d' ' -f2); d=$(fiojob "$1" randwrite 4k 32 | cut -d' ' -f2)
    echo "$a $b $c $d"
}
truncate -s ${SZ}G disk.raw
qemu-img create -q -f vpc -o subformat=dynamic,force_size=on disk.vhd ${SZ}G
# fill both with data so the matrices measure allocated images
qemu-nbd -t -f vpc -k "$D/q.sock" disk.vhd & P=$!; waitsock "$D/q.sock"
fio --name=fill --ioengine=nbd --uri="nbd+unix:///?socket=$D/q.sock" --rw=write --bs=1M --iodepth=8 \
    --size=${SZ}G --output-format=json >/dev/null 2>&1; kill $P; wait $P 2>/dev/null || true; P=
nbdkit -U "$D/k.sock" -P "$D/k.pid" file file="$D/disk.raw"; waitsock "$D/k.sock"
fio --name=fill --ioengine=nbd --uri="nbd+unix:///?socket=$D/k.sock" --rw=write --bs=1M --iodepth=8 \
    --size=${SZ}G --output-format=json >/dev/null 2>&1
K=$(matrix "$D/k.sock"); kill "$(cat "$D/k.pid")"
qemu-nbd -t -f vpc -k "$D/q.sock" disk.vhd & P=$!; waitsock "$D/q.sock"
Q=$(matrix "$D/q.sock"); kill $P; wait $P 2>/dev/null || true; P=
"$VHD" serve --socket "$D/v.sock" disk.vhd & P=$!; waitsock "$D/v.sock"
V=$(matrix "$D/v.sock"); kill $P; wait $P 2>/dev/null || true; P=
"$VHD" check disk.vhd >/dev/null

# coalesce vs qemu-img commit, SIZE/2 GiB of random data
HALF=$((SZ * 512))
head -c ${HALF}M /dev/urandom > data.raw
"$VHD" create --size ${SZ}G base.vhd; "$VHD" snapshot base.vhd child.vhd
"$VHD" serve --socket "$D/c.sock" child.vhd & P=$!; waitsock "$D/c.sock"
nbdcopy data.raw "nbd+unix:///?socket=$D/c.sock"; kill $P; wait $P 2>/dev/null || true; P=
t0=$(date +%s.%N); "$VHD" coalesce child.vhd; t1=$(date +%s.%N)
CO=$(python3 -c "print('%.0f' % ($HALF / ($t1 - $t0)))")
qemu-img create -q -f qcow2 base.qcow2 ${SZ}G
qemu-img convert -q -f raw -O qcow2 -B base.qcow2 -F qcow2 data.raw ov.qcow2
t0=$(date +%s.%N); qemu-img commit -q -f qcow2 ov.qcow2; t1=$(date +%s.%N)
QC=$(python3 -c "print('%.0f' % ($HALF / ($t1 - $t0)))")

# snapshot latency of a 100 GiB disk (median of 5, ms)
"$VHD" create --size 100G big.vhd; qemu-img create -q -f qcow2 big.qcow2 100G
sn=(); qn=()
for i in 1 2 3 4 5; do
    t0=$(date +%s%N); "$VHD" snapshot big.vhd "s$i.vhd"; t1=$(date +%s%N); sn+=($(( (t1 - t0) / 1000 )))
    t0=$(date +%s%N); qemu-img create -q -f qcow2 -b big.qcow2 -F qcow2 "o$i.qcow2"; t1=$(date +%s%N); qn+=($(( (t1 - t0) / 1000 )))
done
med() { printf '%s\n' "$@" | sort -n | sed -n 3p; }
SN=$(med "${sn[@]}"); QN=$(med "${qn[@]}")

# snapshot latency at depth 20 of a 67 GiB chain (median of 5, ms): the parent chain is
# validated by links, not BATs, so this should stay close to the fresh-disk figure
"$VHD" create --size 67G d0.vhd; qemu-img create -q -f qcow2 d0.qcow2 67G
for i in $(seq 1 19); do
    "$VHD" snapshot "d$((i - 1)).vhd" "d$i.vhd"
    qemu-img create -q -f qcow2 -b "d$((i - 1)).qcow2" -F qcow2 "d$i.qcow2"
done
sd=(); qd=()
for i in 1 2 3 4 5; do
    t0=$(date +%s%N); "$VHD" snapshot d19.vhd "x$i.vhd"; t1=$(date +%s%N); sd+=($(( (t1 - t0) / 1000 )))
    t0=$(date +%s%N); qemu-img create -q -f qcow2 -b d19.qcow2 -F qcow2 "x$i.qcow2"; t1=$(date +%s%N); qd+=($(( (t1 - t0) / 1000 )))
done
SD=$(med "${sd[@]}"); QD=$(med "${qd[@]}")

python3 - "$K" "$Q" "$V" "$CO" "$QC" "$SN" "$QN" "$SZ" "$RT" "$SD" "$QD" <<'PY'
import sys
k, q, v = (list(map(float, a.split())) for a in sys.argv[1:4])
co, qc, sn, qn = map(float, sys.argv[4:8])
sd, qd = map(float, sys.argv[10:12])
print(f"vhd serve benchmark: {sys.argv[8]} GiB image, {sys.argv[9]} s per fio run, fio nbd engine, unix socket")
print(f"{'metric':<24}{'vhd serve':>12}{'nbdkit raw':>12}{'ratio':>8}{'qemu-nbd vpc':>14}{'ratio':>8}")
names = ["seq read MiB/s", "seq write MiB/s", "rand read 4k IOPS", "rand write 4k IOPS"]
for i, n in enumerate(names):
    print(f"{n:<24}{v[i]:>12.0f}{k[i]:>12.0f}{v[i]/k[i]:>8.2f}{q[i]:>14.0f}{v[i]/q[i]:>8.2f}")
print(f"{'coalesce MiB/s':<24}{co:>12.0f}{'':>12}{'':>8}{qc:>14.0f}{co/qc:>8.2f}   (peer: qemu-img commit qcow2)")
print(f"{'snapshot 100G ms':<24}{sn/1000:>12.1f}{'':>12}{'':>8}{qn/1000:>14.1f}{qn/sn:>8.2f}   (peer: qemu-img create -b; ratio = peer/ours)")
print(f"{'snapshot depth 20 ms':<24}{sd/1000:>12.1f}{'':>12}{'':>8}{qd/1000:>14.1f}{qd/sd:>8.2f}   (67 GiB chain; peer: qemu-img create -b on a qcow2 chain)")
PY
if [ -x "$(dirname "$VHD")/vesseld" ]; then
    echo
    python3 "$HERE/nbd_bench.py" "$(dirname "$VHD")"
fi
