#!/usr/bin/env bash
# Installs the Debian 12 packages Vessel builds and tests with, only those
# missing (so `make` is quick and quiet once they are there).
set -euo pipefail
packages=(
  build-essential pkg-config meson ninja-build python3 clang
  libmicrohttpd-dev libjansson-dev libexpat1-dev libsqlite3-dev libgnutls28-dev libcrypt-dev
  libcmocka-dev libmnl-dev zlib1g-dev libzstd-dev libxxhash-dev nettle-dev
  libcurl4-openssl-dev etcd-server etcd-client
  chromium python3-prometheus-client
  qemu-utils libnbd-bin nbdkit curl openssl
  qemu-system-x86 linux-image-cloud-amd64 busybox-static cpio lz4 iproute2 e2fsprogs util-linux
  qemu-guest-agent debootstrap dnsmasq-base grub-pc-bin grub-common xorriso mtools
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# The web UI's build needs node >= 20 and npm; a node from elsewhere (its own
# npm inside) is kept, Debian's are installed only when there is none.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
