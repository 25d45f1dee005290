#!/bin/bash
# tests/storage/storage_test.sh - integration tests of the `vhd` tool, printed as TAP.
#
# Usage: storage_test.sh PATH/TO/vhd
# Covers: create/info/check; QEMU interop both ways for dynamic and fixed disks
# (qemu-img compare; qemu-img check cannot check vpc, spec 4.5); snapshot chains keeping
# each snapshot's bytes exact while the leaf changes (writes go through `vhd serve` with
# qemu-img convert -n); `vhd check` after every operation; `vhd serve` read by nbdinfo,
# nbdcopy and qemu-img; coalesce, resize (with BAT growth), repair, map --json; the hostile
# corpus (tests/storage/hostile, made by make_hostile.py) rejected without a crash.
set -u
VHD=$(realpath "$1")
HERE=$(cd "$(dirname "$0")" && pwd)
D=$(mktemp -d /tmp/vhd-storage.XXXXXX)
SERVER=
cleanup() { [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; rm -rf "$D"; }
trap cleanup EXIT
cd "$D"
N=0
FAILED=0
ok() {  # ok DESCRIPTION COMMAND...
    local desc=$1; shift
    N=$((N + 1))
    if "$@" >"$D/last.out" 2>&1; then
        echo "ok $N - $desc"
    else
        echo "not ok $N - $desc"; sed 's/^/# /' "$D/last.out" | head -20; FAILED=1
    fi
}
fails() {  # fails DESCRIPTION COMMAND...: the command must exit 1 (not crash, not 0)
    local desc=$1; shift
    N=$((N + 1))
    "$@" >"$D/last.out" 2>&1; local rc=$?
    if [ "$rc" -eq 1 ] || [ "$rc" -eq 2 ]; then echo "ok $N - $desc"
    else echo "not ok $N - $desc (exit $rc)"; sed 's/^/# /' "$D/last.out" | head -5; FAILED=1; fi
}
serve() {  # serve SOCKET ARGS... : start vhd serve in the background, wait for the socket
    rm -f "$1"
    "$VHD" serve --socket "$@" & SERVER=$!
    for _ in $(seq 50); do [ -S "$1" ] && return 0; sleep 0.05; done
    return 1
}
stop() { kill "$SERVER" && wait "$SERVER"; local rc=$?; SERVER=; return $rc; }
uri() { echo "nbd+unix:///?socket=$D/$1"; }
pattern() {  # pattern FILE SIZE_MIB SEED: deterministic non-zero data
    python3 -c "import random,sys; r=random.Random($3); sys.stdout.buffer.write(r.randbytes($2*1024*1024))" >"$1"
}
jsonget() { python3 -c "import json,sys; d=json.load(open('$1')); print(eval('d$2'))"; }

# --- create, info, check -------------------------------------------------------------
ok "create dynamic 64M" "$VHD" create --size 64M dyn.vhd
ok "check new dynamic" "$VHD" check dyn.vhd
"$VHD" info --json dyn.vhd >i.json
ok "info --json reports size and type" python3 -c \
  "import json; d=json.load(open('i.json'))['image']; assert (d['virtual_size'], d['type']) == (67108864, 'dynamic'), d"
ok "qemu-img sees exactly 64 MiB (creator tap)" bash -c \
  "qemu-img info -f vpc --output=json dyn.vhd | grep -q '\"virtual-size\": 67108864'"
ok "create fixed 8M" "$VHD" create --size 8M --type fixed fix.vhd
ok "check fixed" "$VHD" check fix.vhd
fails "create refuses existing file" "$VHD" create --size 8M fix.vhd
fails "create refuses size 1000" "$VHD" create --size 1000 odd.vhd
fails "create refuses 3T" "$VHD" create --size 3T big.vhd
ok "create 10G parses units" "$VHD" create --size 10G ten.vhd
ok "vhd --help" "$VHD" --help
fails "unknown command" "$VHD" frobnicate

# --- QEMU interop -----------------------------------------------------------------------
pattern a.raw 6 1; truncate -s 64M a.raw
ok "convert raw -> vhd" "$VHD" convert --to vhd a.raw a.vhd
ok "check converted" "$VHD" check a.vhd
ok "qemu-img compare raw vs our vhd" qemu-img compare -f raw -F vpc a.raw a.vhd
ok "qemu-img convert our vhd -> raw identical" bash -c "qemu-img convert -f vpc -O raw a.vhd q.raw && cmp q.raw a.raw"
ok "qemu-img dynamic vhd -> our raw identical" bash -c \
  "qemu-img convert -f raw -O vpc -o subformat=dynamic,force_size=on a.raw qd.vhd && '$VHD' check qd.vhd && '$VHD' convert --to raw qd.vhd qd.raw && cmp qd.raw a.raw"
ok "qemu-img CHS-sized dynamic vhd read" bash -c \
  "qemu-img convert -f raw -O vpc -o subformat=dynamic a.raw qc.vhd && '$VHD' check qc.vhd && '$VHD' convert --to raw qc.vhd qc.raw && qemu-img compare -f raw -F vpc qc.raw qc.vhd"
ok "qemu-img fixed vhd read" bash -c \
  "qemu-img convert -f raw -O vpc -o subformat=fixed,force_size=on a.raw qf.vhd && '$VHD' check qf.vhd && '$VHD' convert --to raw qf.vhd qf.raw && cmp qf.raw a.raw"
head -c 8M a.raw >a8.raw
ok "our fixed vhd written and read by qemu-img" bash -c \
  "'$VHD' convert --to vhd a8.raw d8.vhd && '$VHD' create --size 8M --type fixed f2.vhd && qemu-img convert -n -f vpc -O vpc d8.vhd f2.vhd && '$VHD' check f2.vhd && qemu-img compare -f vpc -F raw f2.vhd a8.raw && '$VHD' convert --to raw f2.vhd f2.raw && cmp f2.raw a8.raw"
ok "convert vhd -> vhd flattens" bash -c "'$VHD' convert --to vhd a.vhd flat.vhd && qemu-img compare -f vpc -F raw flat.vhd a.raw"

# --- serve ------------------------------------------------------------------------------
ok "serve starts (read-only)" serve s.sock --read-only a.vhd
ok "nbdinfo reads size" bash -c "nbdinfo --size '$(uri s.sock)' | grep -qx 67108864"
ok "nbdinfo --map shows data then hole" bash -c "nbdinfo --map '$(uri s.sock)' | head -1 | grep -q data"
ok "nbdcopy reads the disk exactly" bash -c "nbdcopy '$(uri s.sock)' nc.raw && cmp nc.raw a.raw"
ok "qemu-img convert from nbd exactly" bash -c "qemu-img convert -f raw '$(uri s.sock)' qn.raw && cmp qn.raw a.raw"
fails "read-only export refuses writes" qemu-img convert -n -f raw -O raw a.raw "$(uri s.sock)"
ok "serve stops cleanly on SIGTERM" stop

# --- snapshot chains: each snapshot keeps its bytes while the leaf changes ---------------
cp a.vhd leaf.vhd
ok "snapshot leaf -> s1" "$VHD" snapshot leaf.vhd s1.vhd
ok "check s1 chain" "$VHD" check s1.vhd
pattern w1.raw 3 2
cp a.raw expect1.raw; dd if=w1.raw of=expect1.raw bs=1M seek=2 conv=notrunc status=none
serve s.sock --threads 1 s1.vhd
ok "write 3M into s1 through vhd serve (one thread: corked replies)" qemu-img convert -n -f raw --target-image-opts w1.raw "driver=raw,offset=2097152,size=3145728,file.driver=nbd,file.path=$D/s.sock"
ok "serve s1 stops" stop
ok "check s1 after write" "$VHD" check s1.vhd
ok "s1 reads parent + new data" bash -c "'$VHD' convert --to raw s1.vhd r1.raw && cmp r1.raw expect1.raw"
ok "parent unchanged" bash -c "'$VHD' convert --to raw leaf.vhd r0.raw && cmp r0.raw a.raw"
ok "snapshot s1 -> s2" "$VHD" snapshot s1.vhd s2.vhd
pattern w2.raw 1 3
cp expect1.raw expect2.raw; dd if=w2.raw of=expect2.raw bs=512 seek=3 conv=notrunc status=none
serve s.sock s2.vhd
ok "sector-granular write into s2 via nbd" qemu-img convert -n -f raw --target-image-opts w2.raw "driver=raw,offset=1536,size=1048576,file.driver=nbd,file.path=$D/s.sock"
ok "nbdinfo --map of s2 reports allocation" bash -c "nbdinfo --map '$(uri s.sock)' | grep -q hole"
ok "serve s2 stops" stop
ok "check s2 after write" "$VHD" check s2.vhd
ok "s2 reads exact" bash -c "'$VHD' convert --to raw s2.vhd r2.raw && cmp r2.raw expect2.raw"
serve s.sock --read-only s2.vhd
ok "parallel nbdcopy of the s2 chain (cold bitmaps) exact" bash -c "nbdcopy --connections=4 --requests=64 --request-size=4096 '$(uri s.sock)' p2.raw && cmp p2.raw expect2.raw"
ok "serve s2 read-only stops" stop
serve s.sock --threads 1 --read-only s2.vhd
ok "one-thread serve: parallel nbdcopy exact" bash -c "nbdcopy --connections=2 --requests=64 --request-size=4096 '$(uri s.sock)' p3.raw && cmp p3.raw expect2.raw"
ok "one-thread serve: qemu-img convert exact" bash -c "qemu-img convert -f raw '$(uri s.sock)' q3.raw && cmp q3.raw expect2.raw"
ok "serve s2 one-thread stops" stop
fails "serve refuses --threads 0" "$VHD" serve --threads 0 --socket s.sock s2.vhd
ok "s1 still exact after s2 changed" bash -c "'$VHD' convert --to raw s1.vhd r1b.raw && cmp r1b.raw expect1.raw"
ok "map --json lists allocated ranges" bash -c "'$VHD' map --json s2.vhd >m.json && python3 -c 'import json;m=json.load(open(\"m.json\"));assert m[0][\"offset\"]==0 and sum(e[\"length\"] for e in m)>=6*2**20'"
ok "info shows chain depth 3" bash -c "'$VHD' info --json s2.vhd | grep -q '\"chain_depth\":3'"
fails "snapshot refuses another directory" "$VHD" snapshot s2.vhd /tmp/vhd-elsewhere-$$.vhd

# --- coalesce, resize, repair -----------------------------------------------------------
ok "coalesce s2 into s1" "$VHD" coalesce s2.vhd
ok "check s1 after coalesce" "$VHD" check s1.vhd
ok "s1 now holds s2's bytes" bash -c "'$VHD' convert --to raw s1.vhd r1c.raw && cmp r1c.raw expect2.raw"
ok "resize within BAT (fixed) 8M -> 16M" bash -c "'$VHD' resize --size 16M fix.vhd && '$VHD' check fix.vhd && qemu-img info -f vpc --output=json fix.vhd | grep -q '\"virtual-size\": 16777216'"
ok "resize dynamic 64M -> 1G moves blocks, keeps data" bash -c \
  "cp a.vhd g.vhd && '$VHD' resize --size 1G g.vhd && '$VHD' check g.vhd && '$VHD' convert --to raw g.vhd g.raw && cmp -n 67108864 g.raw a.raw && [ \$(stat -c %s g.raw) = 1073741824 ]"
fails "resize refuses shrinking" "$VHD" resize --size 32M a.vhd
cp a.vhd torn.vhd; truncate -s -512 torn.vhd
fails "check fails on a missing trailing footer" "$VHD" check torn.vhd
ok "repair restores the trailing footer" bash -c "'$VHD' repair torn.vhd && '$VHD' check torn.vhd && '$VHD' convert --to raw torn.vhd t.raw && cmp t.raw a.raw"

# --- hostile corpus ---------------------------------------------------------------------
bad=0; crashed=0; list=""
for f in "$HERE"/hostile/*.vhd; do
    cp "$f" "$D/"
done
for f in "$D"/*.vhd; do :; done
for f in "$HERE"/hostile/*.vhd; do
    b=$(basename "$f")
    "$VHD" check "$D/$b" >/dev/null 2>&1; rc=$?
    case "$b" in good-*) [ $rc -eq 0 ] || { bad=1; list="$list $b(rc=$rc)"; } ;;
                 *) [ $rc -eq 1 ] || { bad=1; list="$list $b(rc=$rc)"; } ;; esac
    for cmd in "info" "map" "convert --to raw"; do
        out=""; [ "$cmd" = "convert --to raw" ] && out="$D/conv-$b.raw"
        "$VHD" $cmd "$D/$b" $out >/dev/null 2>&1; rc=$?
        [ $rc -ge 126 ] && { crashed=1; list="$list $b($cmd crashed rc=$rc)"; }
    done
done
N=$((N + 1)); if [ $bad = 0 ]; then echo "ok $N - hostile corpus: check rejects each, accepts good-*"; else echo "not ok $N - hostile corpus:$list"; FAILED=1; fi
N=$((N + 1)); if [ $crashed = 0 ]; then echo "ok $N - hostile corpus: info/map/convert never crash"; else echo "not ok $N - crashes:$list"; FAILED=1; fi
echo "1..$N"
exit $FAILED
