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
  linux-image-cloud-amd64 busybox-static cpio lz4 iproute2 e2fsprogs util-linux
  qemu-guest-agent debootstrap dnsmasq-base grub-pc-bin grub-common xorriso mtools
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# QEMU from bookworm-backports (10.0): under bookworm's 7.2 a guest receiving
# network traffic while it is live-migrated can have its virtio-net state
# corrupted after it arrives (docs/guests.md, "A QEMU 7.2 defect"). Its
# utilities and guest agent come along, as the packages require.
QEMU_MIN=1:10.0
qemu_version=$(dpkg-query -W -f='${Version}' qemu-system-x86 2>/dev/null || echo 0)
backports=()
if ! dpkg --compare-versions "$qemu_version" ge "$QEMU_MIN"; then
  backports=(qemu-system-x86 qemu-utils qemu-guest-agent)
fi
# The web UI's build needs node >= 20 and npm; a node from elsewhere (its own
# npm inside) is kept, Debian's are installed only when there is none.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -eq 0 ] && [ ${#backports[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]} ${backports[*]}"
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
if [ ${#backports[@]} -gt 0 ] && ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  . "$(dirname "$0")/debian-mirror.sh"
  printf '%s\n' 'Types: deb' "URIs: $(debian_mirror bookworm)" 'Suites: bookworm-backports' \
    'Components: main' 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' |
    "${sudo_cmd[@]}" tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null
fi
"${sudo_cmd[@]}" apt-get update -qq
if [ ${#missing[@]} -gt 0 ]; then
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ ${#backports[@]} -gt 0 ]; then
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends -t bookworm-backports \
    "${backports[@]}" >/dev/null
fi
