#!/usr/bin/env bash
# Vessel integration test: the `xen-api` npm connector against vesseld.
#
#   tests/integration/run-node.sh BUILD_DIR
#
# Installs the pinned connector (tests/integration/node/package-lock.json)
# with `npm ci` into BUILD_DIR/node-connector (only when missing or stale),
# starts its own vesseld (BUILD_DIR/vesseld) on a temporary data dir and a
# free 127.0.0.1 port, runs node/connector.test.mjs with node's test runner
# and prints its TAP on stdout. Everything else (npm, vesseld logs) goes to
# stderr. vesseld is stopped and the data dir removed on exit.
set -u -o pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${1:?usage: run-node.sh BUILD_DIR}
build=$(cd "$build" && pwd)
src="$here/node"
work="$build/node-connector"
vesseld="$build/vesseld"

bail() { echo "TAP version 13"; echo "Bail out! $*"; exit 1; }

command -v node >/dev/null 2>&1 || bail "node is not installed"
command -v npm >/dev/null 2>&1 || bail "npm is not installed"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || bail "node >= 20 needed, found $(node --version)"
[ -x "$vesseld" ] || bail "no vesseld in $build"

# ---- connector install (cached in the build dir) ---------------------------
mkdir -p "$work"
# test_pool_xo.py installs into the same folder: one npm ci at a time
exec 9> "$work/.vessel-install.lock"
flock 9
stamp="$work/.vessel-lock.sha256"
want=$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -d' ' -f1)
if [ ! -d "$work/node_modules/xen-api" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  cp "$src/package.json" "$src/package-lock.json" "$work/"
  rm -f "$stamp"
  if ! (cd "$work" && npm ci --no-audit --no-fund --loglevel=error) >&2; then
    bail "npm ci failed in $work (is the npm registry reachable?)"
  fi
  echo "$want" > "$stamp"
fi
exec 9>&-
# ESM resolves bare imports from the importing file's folder, so the test
# runs from the install folder.
cp "$src/connector.test.mjs" "$work/"

# ---- vesseld -----------------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vessel-node.XXXXXX")
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

password="node-$RANDOM-$RANDOM-$$"
printf '%s\n' "$password" > "$tmp/pw"
chmod 600 "$tmp/pw"
mkdir "$tmp/data"
"$vesseld" --data-dir "$tmp/data" --listen 127.0.0.1:0 --tls-listen none --nbd-listen none \
  --unix "$tmp/xapi.sock" --root-password-file "$tmp/pw" 2> "$tmp/vesseld.log" &
pid=$!

. "$here/../../scripts/vesseld-port.sh"
port=$(vesseld_port "$tmp/vesseld.log" "$pid")
if [ -z "$port" ]; then
  cat "$tmp/vesseld.log" >&2
  bail "vesseld did not become ready"
fi

# ---- the test -----------------------------------------------------------------
cd "$work" || bail "cannot cd to $work"
# node's TAP puts YAML diagnostics (assertion diffs with blank lines) under
# each test; meson's TAP parser rejects a YAML block with a blank line, so
# every indented line becomes a "#" comment.
VESSEL_URL="http://127.0.0.1:$port" VESSEL_PASSWORD="$password" NODE_ENV=test \
  timeout 60 node --test --test-reporter=tap --test-timeout=30000 --test-force-exit connector.test.mjs |
  sed -u 's/^\([[:space:]]\)/#\1/'
rc=${PIPESTATUS[0]}

if ! kill -0 "$pid" 2>/dev/null; then
  echo "# vesseld died during the test; its log:" >&2
  rc=1
fi
if [ "$rc" -ne 0 ]; then
  sed 's/^/# vesseld: /' "$tmp/vesseld.log" | tail -n 40 >&2
fi
exit "$rc"
