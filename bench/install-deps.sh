#!/usr/bin/env bash
# bench/install-deps.sh - the peers the benchmarks measure vesseld against,
# installed when missing (bench/run calls it; the build and the tests do not
# need them): nginx and wrk (bench/api/peers.py: VM.get_record against nginx
# serving the same bytes), libvirtd and its Python binding (a small call
# against virDomainGetInfo). On a host with systemd, Debian's nginx package
# starts a default server on port 80; bench/api/peers.py runs its own.
set -euo pipefail
packages=(nginx-light wrk libvirt-daemon python3-libvirt)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "bench/install-deps: installing ${missing[*]}"
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
