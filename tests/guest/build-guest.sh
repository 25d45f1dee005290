#!/bin/sh
# tests/guest/build-guest.sh - build Vessel's tiny test guest.
#
# Usage: build-guest.sh OUTDIR
# Writes OUTDIR/initramfs.cpio (busybox-static + /init), OUTDIR/bzImage (a
# copy of the host's Debian cloud kernel) and OUTDIR/vmlinux (the same kernel
# decompressed, for -M microvm's PVH entry: the bzImage payload is LZ4; its
# frame magic 02 21 4c 18 is found and decompressed with lz4 -dc).
#
# The guest's /init (the contract the xenops tests and bench rely on):
#  - prints "VESSEL-GUEST-UP" on the serial console once it runs and, unless
#    vessel.plain, once its console no longer echoes what is typed (a command
#    typed from then on is never echoed back before it ran);
#  - loads the ACPI power button (button.ko, evdev.ko from the host's modules)
#    and runs busybox acpid, so an ACPI power-button press (QMP
#    system_powerdown on pc/q35) runs poweroff -f;
#  - loads virtio-net (pc/q35) and, given vessel.ip=ADDR/PREFIX on its command
#    line, sets that address on eth0, and keeps doing so (once a second) for
#    any eth* without an IPv4 address: a NIC hotplugged later (VIF.plug) comes
#    up with the same address;
#  - starts the QEMU guest agent (qemu-ga, copied from the host with its
#    libraries) on the virtio-serial port org.qemu.guest_agent.0, unless
#    vessel.noagent; vessel.noacpid leaves the power button unheard (a guest
#    that ignores clean shutdowns when both are given);
#  - vessel.plain: reports /proc/partitions and its links on the console, pings
#    each vessel.ping=ADDR, and never reads the console;
#  - otherwise reads lines from the serial console: "poweroff" -> poweroff -f,
#    "reboot" -> reboot -f, "crash" -> sysrq crash (panic), "echo WORD" -> prints
#    "VESSEL-ECHO WORD", "run CMD" -> sh -c CMD (debugging); anything else is
#    ignored. Without ACPI (microvm) "poweroff" resets instead: see /init.
# Needs: busybox (static), cpio, lz4, qemu-guest-agent (for qemu-ga). Idempotent: outputs are rebuilt only when
# missing.
set -eu
out=${1:?usage: build-guest.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
# tests that share OUTDIR run at the same time (meson runs guest tests two at
# a time): one builds, the others wait and find the outputs made
exec 9>"$out/.build.lock"
flock 9

kernel=${VESSEL_GUEST_KERNEL:-$(ls /boot/vmlinuz-*-cloud-amd64 2>/dev/null | sort -V | tail -n 1)}
[ -n "$kernel" ] && [ -r "$kernel" ] || { echo "build-guest: no cloud kernel in /boot" >&2; exit 1; }
kver=${kernel#/boot/vmlinuz-}
busybox=$(command -v busybox || true)
[ -n "$busybox" ] || { echo "build-guest: busybox not found" >&2; exit 1; }
command -v cpio >/dev/null || { echo "build-guest: cpio not found (apt-get install cpio)" >&2; exit 1; }

if [ ! -s "$out/bzImage" ]; then
    cp "$kernel" "$out/bzImage.tmp" && mv "$out/bzImage.tmp" "$out/bzImage"
fi

if [ ! -s "$out/vmlinux" ]; then
    off=$(grep -obUaP '\x02\x21\x4c\x18' "$kernel" | head -n 1 | cut -d: -f1)
    [ -n "$off" ] || { echo "build-guest: no lz4 payload in $kernel" >&2; exit 1; }
    # lz4 stops at the end of its frame(s); trailing bytes give a warning only.
    tail -c +"$((off + 1))" "$kernel" | lz4 -dc > "$out/vmlinux.tmp" 2>/dev/null || true
    [ -s "$out/vmlinux.tmp" ] || { echo "build-guest: lz4 payload did not decompress" >&2; exit 1; }
    mv "$out/vmlinux.tmp" "$out/vmlinux"
fi

if [ ! -s "$out/initramfs.cpio" ] || [ "$0" -nt "$out/initramfs.cpio" ]; then
    root=$(mktemp -d)
    trap 'rm -rf "$root"' EXIT
    mkdir -p "$root/bin" "$root/sbin" "$root/dev" "$root/proc" "$root/sys" "$root/etc" \
             "$root/lib/modules"
    cp "$busybox" "$root/bin/busybox"
    for m in kernel/drivers/acpi/button.ko kernel/drivers/input/evdev.ko; do
        f=/lib/modules/$kver/$m
        [ -r "$f" ] && cp "$f" "$root/lib/modules/" || true
    done
    # virtio-net over PCI (pc/q35 guests), numbered so /init loads them in
    # dependency order (modules.dep of the cloud kernel)
    n=0
    for m in drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_legacy_dev \
             drivers/virtio/virtio_pci_modern_dev drivers/virtio/virtio_pci drivers/virtio/virtio_mmio \
             net/core/failover drivers/net/net_failover drivers/net/virtio_net \
             drivers/block/virtio_blk drivers/char/virtio_console drivers/virtio/virtio_balloon; do
        n=$((n + 1))
        f=/lib/modules/$kver/kernel/$m.ko
        [ -r "$f" ] && cp "$f" "$root/lib/modules/$(printf %02d $n)-$(basename "$m").ko" || true
    done
    # the QEMU guest agent, as every distribution packages it (qemu-guest-agent),
    # with the libraries it links: Vessel shuts guests down and learns their
    # addresses through it. qemu-ga runs shutdown(8) for guest-shutdown.
    ga=$(command -v qemu-ga || echo /usr/sbin/qemu-ga)
    if [ -x "$ga" ]; then
        mkdir -p "$root/usr/sbin" "$root/sbin"
        cp "$ga" "$root/usr/sbin/qemu-ga"
        for lib in $(ldd "$ga" | grep -o '/[^ ]*'); do
            mkdir -p "$root$(dirname "$lib")"
            cp -L "$lib" "$root$lib"
        done
        cat > "$root/sbin/shutdown" <<'SHUTDOWN'
#!/bin/sh
# shutdown(8) as qemu-ga calls it: -h/-P power off, -r reboot, -H halt
case " $* " in
*" -r "*) reboot -f ;;
*) poweroff -f ;;
esac
SHUTDOWN
        chmod 755 "$root/sbin/shutdown"
    fi
    printf 'NAME="Vessel test guest"\nID=vessel-test\nVERSION_ID="1.0"\nPRETTY_NAME="Vessel test guest 1.0"\n' \
        > "$root/etc/os-release"
    # busybox acpid runs /etc/acpi/<action> for an event; PWRF/00000080 is
    # its default action name for the power button (busybox util-linux/acpid.c)
    mkdir -p "$root/etc/acpi/PWRF"
    printf '#!/bin/sh\npoweroff -f\n' > "$root/etc/acpi/PWRF/00000080"
    chmod 755 "$root/etc/acpi/PWRF/00000080"
    cat > "$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t devtmpfs dev /dev 2>/dev/null
mount -t proc proc /proc
mount -t sysfs sys /sys
for m in /lib/modules/*.ko; do [ -e "$m" ] && insmod "$m" 2>/dev/null; done
mkdir -p /var/log /var/run
noacpid=
noagent=
plain=
pings=
for a in $(cat /proc/cmdline); do
    case "$a" in
    vessel.noacpid) noacpid=1 ;;
    vessel.noagent) noagent=1 ;;
    vessel.plain) plain=1 ;;
    vessel.ping=*) pings="$pings ${a#vessel.ping=}" ;;
    esac
done
[ -z "$noacpid" ] && [ -e /lib/modules/evdev.ko ] && acpid -c /etc/acpi -l /dev/null 2>/dev/null
# the agent on its virtio-serial port (udev would name it /dev/virtio-ports/<name>)
if [ -z "$noagent" ] && [ -x /usr/sbin/qemu-ga ]; then
    (for i in 1 2 3 4 5 6 7 8 9 10; do
        for p in /sys/class/virtio-ports/*; do
            [ "$(cat "$p/name" 2>/dev/null)" = org.qemu.guest_agent.0 ] || continue
            exec /usr/sbin/qemu-ga -m virtio-serial -p "/dev/${p##*/}" -t /var/run
        done
        sleep 0.5
    done) </dev/null >/dev/null 2>&1 &
fi
# vessel.ip=ADDR/PREFIX on the kernel command line configures eth0, and any
# NIC hotplugged later (a background loop: no hotplug helper runs here)
vip=
vroot=
for a in $(cat /proc/cmdline); do
    case "$a" in
    vessel.ip=*) vip=${a#vessel.ip=} ;;
    vessel.root=*) vroot=${a#vessel.root=} ;;
    esac
done
# vessel.root=DEV: the root file system is on a disk (the same tree, marked by
# /etc/vessel-root); this initramfs mounts it and hands over, as a distribution's does.
if [ -n "$vroot" ] && [ ! -e /etc/vessel-root ]; then
    mkdir -p /newroot
    for i in 1 2 3 4 5 6 7 8 9 10; do [ -b "$vroot" ] && break; sleep 0.5; done
    if mount -t ext4 "$vroot" /newroot; then
        umount /proc /sys 2>/dev/null
        exec switch_root /newroot /init
    fi
    echo VESSEL-ROOT-FAILED > /dev/console
fi
[ -e /etc/vessel-root ] && echo VESSEL-ROOT-UP > /dev/console
if [ -n "$vip" ]; then
    ip link set eth0 up 2>/dev/null && ip addr add "$vip" dev eth0
    (while :; do
        for n in /sys/class/net/eth*; do
            i=${n##*/}
            [ -e "$n" ] || continue
            ip -4 addr show dev "$i" | grep -q inet && continue
            ip link set "$i" up && ip addr add "$vip" dev "$i"
        done
        sleep 1
    done) </dev/null >/dev/null 2>&1 &
fi
# vessel.plain: a guest that only reports what it sees and never reads its
# console (what a stock system's boot shows: its disks, its NICs, a ping)
if [ -n "$plain" ]; then
    echo VESSEL-GUEST-UP > /dev/console
    { echo VESSEL-PARTITIONS; cat /proc/partitions; echo VESSEL-LINKS; ip -o link; } > /dev/console
    for target in $pings; do
        for i in 1 2 3 4 5 6 7 8 9 10; do
            ping -c 1 -W 1 "$target" >/dev/null 2>&1 && break
        done
        ping -c 1 -W 1 "$target" >/dev/null 2>&1 && echo "VESSEL-PING $target ok" > /dev/console ||
            echo "VESSEL-PING $target failed" > /dev/console
    done
    while :; do sleep 3600; done
fi
exec < /dev/console > /dev/console 2>&1
stty -echo 2>/dev/null
# only now: a line typed before stty -echo is echoed back whole, so a test's
# "run CMD; echo MARK" would show MARK before CMD ran (seen under load)
echo VESSEL-GUEST-UP
while read -r cmd arg; do
    case "$cmd" in
    # without ACPI (microvm here) a guest cannot power itself off: it resets,
    # and the toolstack that asked for the power-off makes qemu exit on reset
    poweroff) if [ -d /sys/firmware/acpi/tables ]; then poweroff -f; else reboot -f; fi ;;
    run) sh -c "$arg" ;;
    reboot) reboot -f ;;
    crash) echo c > /proc/sysrq-trigger ;;
    echo) echo "VESSEL-ECHO $arg" ;;
    esac
done
while :; do sleep 3600; done
INIT
    chmod 755 "$root/init"
    (cd "$root" && find . | cpio -o -H newc --quiet) > "$out/initramfs.cpio.tmp"
    mv "$out/initramfs.cpio.tmp" "$out/initramfs.cpio"
fi
# world-readable: device models run under uids of their own and reopen the
# files vesseld hands them (docs/security.md); guest kernels are no secret
chmod 0644 "$out/bzImage" "$out/vmlinux" "$out/initramfs.cpio"
