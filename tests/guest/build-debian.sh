#!/bin/sh
# tests/guest/build-debian.sh - build a real operating system as a test guest.
#
# Usage: build-debian.sh OUTDIR
# Writes OUTDIR/debian.img (a sparse raw ext4 image of a minimal Debian 12:
# the whole disk is the file system, no partition table, for direct kernel
# boot with root=/dev/vda), OUTDIR/vmlinuz and OUTDIR/initrd.img (the guest's
# own cloud kernel and the initramfs that initramfs-tools made for it, so the
# guest has matching /lib/modules). Boot it with
#   root=/dev/vda console=ttyS0
# What the guest does (the contract tests/integration/debian_guest.py relies on):
#  - systemd boots to a serial getty on ttyS0 ("login:"); root's password is
#    $VESSEL_DEBIAN_ROOT_PASSWORD as built (default "vessel");
#  - systemd-networkd takes an IPv4 address by DHCP on every en*/eth* link
#    (the client identifier is the MAC, so guests of one image differ);
#  - qemu-guest-agent starts when the virtio-serial port
#    org.qemu.guest_agent.0 appears (the package's udev rule);
#  - /etc/machine-id is empty: each guest makes its own at its first boot.
#
# Built with debootstrap --variant=minbase from the Debian mirror apt on this
# machine uses (or $VESSEL_DEBIAN_MIRROR); no loop device, no mount of the
# image: mkfs.ext4 -d fills it from the tree. Needs root (chroot), debootstrap,
# e2fsprogs, and the network to reach the mirror on a fresh build.
#
# Cache: the result is kept in ${VESSEL_GUEST_CACHE:-/var/cache/vessel-test-guests}/
# debian-<hash>/, the hash taken over the package list and this script, and
# reused when present. A build goes into a temporary directory beside it and
# is renamed into place when complete, under a lock (flock), so concurrent
# runs build once and an interrupted build is never seen (its leftovers are
# removed by the next build). Builds of other versions of the script are
# removed once unused for two days.
set -eu
out=${1:?usage: build-debian.sh OUTDIR}

suite=bookworm
packages="systemd systemd-sysv udev dbus kmod qemu-guest-agent initramfs-tools linux-image-cloud-amd64
iproute2 iputils-ping e2fsprogs procps"
root_password=${VESSEL_DEBIAN_ROOT_PASSWORD:-vessel}

self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
hash=$( (printf '%s\n%s\n%s\n' "$suite" "$packages" "$root_password"; cat "$self") |
        sha256sum | cut -c1-16)
cache=${VESSEL_GUEST_CACHE:-/var/cache/vessel-test-guests}
final=$cache/debian-$hash

. "$(dirname "$self")/../../scripts/debian-mirror.sh"

# debootstrap mounts /proc, /sys and (in a container) binds /dev nodes into
# the tree; it unmounts them when it exits, but not when it is killed. What is
# still mounted under @1 is unmounted (deepest first) before the tree goes.
unmount_under() {
    awk -v d="$1/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

remove_tree() {
    unmount_under "$1"
    rm -rf --one-file-system "$1"
}

build() {
    tmp=$1
    root=$tmp/root
    command -v debootstrap >/dev/null || { echo "build-debian: debootstrap not found" >&2; return 1; }
    url=$(debian_mirror "$suite")
    echo "build-debian: debootstrap $suite from $url into $tmp" >&2
    debootstrap --variant=minbase --include="$(echo $packages | tr ' ' ',')" \
        "$suite" "$root" "$url" > "$tmp/debootstrap.log" 2>&1 ||
        { tail -n 30 "$tmp/debootstrap.log" >&2; return 1; }

    echo 'root:'"$root_password" | chroot "$root" chpasswd
    echo vessel-debian > "$root/etc/hostname"
    printf '127.0.0.1\tlocalhost\n127.0.1.1\tvessel-debian\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
        > "$root/etc/hosts"
    printf '/dev/vda\t/\text4\terrors=remount-ro\t0\t1\n' > "$root/etc/fstab"
    # empty: systemd makes a machine id at the first boot of each guest
    # (machine-id(5)); systemd-firstboot would ask on the console, so it is masked
    : > "$root/etc/machine-id"
    rm -f "$root/var/lib/dbus/machine-id"
    mkdir -p "$root/etc/systemd/network" "$root/etc/systemd/system/getty.target.wants" \
             "$root/etc/systemd/system/multi-user.target.wants" \
             "$root/etc/systemd/system/sockets.target.wants" \
             "$root/etc/systemd/system/network-online.target.wants"
    cat > "$root/etc/systemd/network/80-vessel-dhcp.network" <<'EOF'
# every wired link takes its address by DHCP, as on a real LAN
[Match]
Name=en* eth*

[Network]
DHCP=ipv4

[DHCPv4]
ClientIdentifier=mac
EOF
    # systemctl enable by hand (its links), as systemctl needs a running
    # systemd or --root, and the links are all it makes
    ln -sf /lib/systemd/system/systemd-networkd.service \
        "$root/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
    ln -sf /lib/systemd/system/systemd-networkd.socket \
        "$root/etc/systemd/system/sockets.target.wants/systemd-networkd.socket"
    ln -sf /lib/systemd/system/serial-getty@.service \
        "$root/etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service"
    ln -sf /dev/null "$root/etc/systemd/system/systemd-firstboot.service"
    # nothing here waits for the network; a guest without a DHCP server would
    # otherwise hold network-online.target for two minutes
    ln -sf /dev/null "$root/etc/systemd/system/systemd-networkd-wait-online.service"
    # qemu-guest-agent: its unit is started by the package's udev rule when the
    # port appears; pulled in here as well, bound to the port's device
    # (started only once the device is there)
    if [ -f "$root/lib/systemd/system/qemu-guest-agent.service" ]; then
        mkdir -p "$root/etc/systemd/system/dev-virtio\\x2dports-org.qemu.guest_agent.0.device.wants"
        ln -sf /lib/systemd/system/qemu-guest-agent.service \
            "$root/etc/systemd/system/dev-virtio\\x2dports-org.qemu.guest_agent.0.device.wants/qemu-guest-agent.service"
    else
        echo "build-debian: qemu-guest-agent.service missing" >&2
        return 1
    fi

    kver=$(ls "$root/lib/modules" | sort -V | tail -n 1)
    [ -n "$kver" ] && [ -s "$root/boot/vmlinuz-$kver" ] && [ -s "$root/boot/initrd.img-$kver" ] ||
        { echo "build-debian: no kernel or initramfs in the guest's /boot" >&2; return 1; }
    cp "$root/boot/vmlinuz-$kver" "$tmp/vmlinuz"
    cp "$root/boot/initrd.img-$kver" "$tmp/initrd.img"
    echo "$kver" > "$tmp/kernel-version"

    # what a running guest does not need
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
           "$root"/var/log/*.log "$root/debootstrap"
    used=$(du -sm "$root" | cut -f1)
    size=$((used + used / 5 + 200))
    mkfs.ext4 -q -F -L debian-root -d "$root" "$tmp/debian.img" "${size}M"
    chmod 0644 "$tmp/debian.img" "$tmp/vmlinuz" "$tmp/initrd.img"
    remove_tree "$root"
}

mkdir -p "$cache" "$out"
if [ ! -s "$final/debian.img" ]; then
    exec 9> "$cache/.debian-$hash.lock"
    flock 9
    if [ ! -s "$final/debian.img" ]; then
        # leftovers of an interrupted build (the lock is ours: nobody builds)
        for old in "$cache/.debian-$hash".tmp.*; do
            [ -d "$old" ] && remove_tree "$old"
        done
        tmp=$(mktemp -d "$cache/.debian-$hash.tmp.XXXXXX")
        trap 'remove_tree "$tmp"' EXIT
        trap 'exit 130' INT TERM HUP
        start=$(date +%s)
        build "$tmp"
        echo "build-debian: built in $(($(date +%s) - start)) s" >&2
        rm -f "$tmp/debootstrap.log"
        chmod 0755 "$tmp"
        touch "$tmp/.used"
        mv -T "$tmp" "$final"
        trap - EXIT INT TERM HUP
    fi
    exec 9>&-
fi

# Builds of other versions of this script (other hashes) unused for two days
# go; .used is touched at each use, so a checkout still testing keeps its own.
touch "$final/.used"
find "$cache" -mindepth 1 -maxdepth 1 -type d -name 'debian-*' ! -name "debian-$hash" |
    while read -r d; do
        [ -n "$(find "$d" -maxdepth 1 -name .used -mmin -2880)" ] && continue
        rm -rf --one-file-system "$d"
        rm -f "$cache/.${d##*/}.lock"
    done

# OUTDIR gets copies (sparse): the cache must not change under a caller that
# writes to them. OUTDIR/.debian-hash says which build they are.
if [ "$(cat "$out/.debian-hash" 2>/dev/null)" != "$hash" ] || [ ! -s "$out/debian.img" ]; then
    rm -f "$out/.debian-hash"
    for f in kernel-version vmlinuz initrd.img debian.img; do
        cp --sparse=always "$final/$f" "$out/$f.tmp"
        mv "$out/$f.tmp" "$out/$f"
    done
    echo "$hash" > "$out/.debian-hash"
fi
chmod 0644 "$out/vmlinuz" "$out/initrd.img" "$out/debian.img"
echo "$out/debian.img"
