#!/usr/bin/env bash
# Builds the web UI (Vue 3 + TypeScript, Vite) into the build directory.
#
#   ui/build.sh OUT_DIR
#
# Run by ninja on every build (meson's custom_target 'ui', always stale), so
# it is quick when nothing changed: `npm ci` runs only when package-lock.json
# differs from the one last installed, and `vite build` only when a source
# file differs from the last build (a hash of them is kept in OUT_DIR). The
# packages go to ui/node_modules (git-ignored); nothing else is written in
# the source tree.
set -euo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:?usage: build.sh OUT_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)

command -v npm >/dev/null || { echo "ui/build.sh: npm is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
# Vite 8 needs node 20.19 or later (Debian 12's own nodejs is 18).
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a==20&&b>=19)?0:1)' ||
  { echo "ui/build.sh: node >= 20.19 is needed, found $(node --version)" >&2; exit 1; }

lock_sum=$(sha256sum "$src/package-lock.json" | cut -d' ' -f1)
stamp="$src/node_modules/.vessel-lock.sha256"
if [ ! -d "$src/node_modules" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$lock_sum" ]; then
  echo "ui/build.sh: npm ci" >&2
  (cd "$src" && npm ci --no-audit --no-fund --loglevel=error) >&2
  echo "$lock_sum" > "$stamp"
fi

inputs=(index.html vite.config.ts tsconfig.json package-lock.json build.sh src)
[ -d "$src/public" ] && inputs+=(public)
src_sum=$( (cd "$src" && find "${inputs[@]}" -type f | LC_ALL=C sort | xargs sha256sum) | sha256sum | cut -d' ' -f1)
if [ -f "$out/index.html" ] && [ "$(cat "$out/.vessel-src.sha256" 2>/dev/null)" = "$src_sum" ]; then
  exit 0
fi
(cd "$src" && node_modules/.bin/vue-tsc --noEmit) >&2
(cd "$src" && node_modules/.bin/vite build --logLevel warn --outDir "$out" --emptyOutDir) >&2
echo "$src_sum" > "$out/.vessel-src.sha256"
