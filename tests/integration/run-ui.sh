#!/usr/bin/env bash
# Vessel integration test: the web UI in a real browser.
#
#   tests/integration/run-ui.sh BUILD_DIR [TEST [BACKEND]]
#
# TEST is a file of ui/tests/ (default browser.test.mjs), BACKEND vesseld's
# --backend (default sim; vnc.test.mjs needs qemu).
# Headless Chromium (Debian's `chromium`, /usr/bin/chromium) driven by
# playwright-core (ui/package-lock.json; installed by ui/build.sh at build
# time) against a vesseld of its own: BACKEND, a temporary data dir, a
# free 127.0.0.1 port, the UI the build wrote to BUILD_DIR/ui. Accounts: root
# and "reader" (read-only). Screenshots go to BUILD_DIR/ui-screenshots/.
# Prints the TAP of ui/tests/browser.test.mjs on stdout; everything else
# (vesseld's log) on stderr. vesseld is stopped and its data dir removed on exit.
set -u -o pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ui_src=$(cd "$here/../../ui" && pwd)
build=${1:?usage: run-ui.sh BUILD_DIR [TEST [BACKEND]]}
build=$(cd "$build" && pwd)
test_file=${2:-browser.test.mjs}
backend=${3:-sim}
vesseld="$build/vesseld"
chromium=${VESSEL_CHROMIUM:-/usr/bin/chromium}

bail() { echo "TAP version 13"; echo "Bail out! $*"; exit 1; }

[ -x "$vesseld" ] || bail "no vesseld in $build"
[ -f "$build/ui/index.html" ] || bail "no UI in $build/ui (is npm installed? see scripts/install-deps.sh)"
[ -d "$ui_src/node_modules/playwright-core" ] || bail "playwright-core missing: ui/build.sh runs npm ci"
[ -x "$chromium" ] || bail "no $chromium (scripts/install-deps.sh installs Debian's chromium)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vessel-ui.XXXXXX")
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  fi
  # qemu guests and disk servers outlive vesseld by design: end ours, each
  # by its pid (they name our data dir on their command line).
  for p in $(pgrep -f -- "$tmp/data" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

password="ui-$RANDOM-$RANDOM-$$"
reader_password="reader-$RANDOM-$RANDOM"
printf '%s\n' "$password" > "$tmp/pw"
chmod 600 "$tmp/pw"
mkdir -m 700 "$tmp/data"
printf '%s\n' "$reader_password" | "$vesseld" passwd reader --data-dir "$tmp/data" >&2 ||
  bail "vesseld passwd reader failed"
"$vesseld" --data-dir "$tmp/data" --listen 127.0.0.1:0 --tls-listen none --nbd-listen none --backend "$backend" \
  --unix "$tmp/xapi.sock" --root-password-file "$tmp/pw" --ui-dir "$build/ui" \
  --metrics-period 1 2> "$tmp/vesseld.log" &
pid=$!

. "$here/../../scripts/vesseld-port.sh"
port=$(vesseld_port "$tmp/vesseld.log" "$pid")
if [ -z "$port" ]; then
  cat "$tmp/vesseld.log" >&2
  bail "vesseld did not become ready"
fi

shots="$build/ui-screenshots"
mkdir -p "$shots"
cd "$ui_src" || bail "cannot cd to $ui_src"
# See run-node.sh: node's YAML diagnostics become TAP comments for meson.
VESSEL_URL="http://127.0.0.1:$port" VESSEL_PASSWORD="$password" VESSEL_READER_PASSWORD="$reader_password" \
  VESSEL_CHROMIUM="$chromium" VESSEL_SCREENSHOTS="$shots" VESSEL_TMP="$tmp" \
  timeout 200 node --test --test-reporter=tap --test-timeout=60000 --test-concurrency=1 --test-force-exit \
  "tests/$test_file" |
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
