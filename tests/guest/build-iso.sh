#!/bin/sh
# tests/guest/build-iso.sh - a BIOS-bootable CD image of the test guest.
#
# Usage: build-iso.sh OUTDIR
# Writes OUTDIR/guest.iso: GRUB for BIOS (El Torito, made by grub-mkrescue
# for i386-pc only) that boots the Debian cloud kernel and the busybox test
# initramfs of build-guest.sh (its outputs are made in OUTDIR too) with
# console=ttyS0. GRUB itself talks on the serial port (and the screen), so a
# guest booted from the CD by firmware shows GRUB, then the kernel, then the
# test guest's "VESSEL-GUEST-UP" on its serial console.
# Needs: grub-mkrescue (grub-common), grub-pc-bin, xorriso, mtools, and what
# build-guest.sh needs. Idempotent: the image is rebuilt only when missing or
# older than its inputs.
set -eu
out=${1:?usage: build-iso.sh OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
sh "$here/build-guest.sh" "$out"
out=$(cd "$out" && pwd)

command -v grub-mkrescue >/dev/null ||
    { echo "build-iso: grub-mkrescue not found (apt-get install grub-common)" >&2; exit 1; }
[ -d /usr/lib/grub/i386-pc ] ||
    { echo "build-iso: no GRUB for BIOS (apt-get install grub-pc-bin)" >&2; exit 1; }
command -v xorriso >/dev/null || { echo "build-iso: xorriso not found" >&2; exit 1; }

iso=$out/guest.iso
if [ -s "$iso" ] && [ "$iso" -nt "$0" ] && [ "$iso" -nt "$out/bzImage" ] &&
   [ "$iso" -nt "$out/initramfs.cpio" ]; then
    exit 0
fi
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
mkdir -p "$tree/boot/grub"
cp "$out/bzImage" "$tree/boot/vmlinuz"
cp "$out/initramfs.cpio" "$tree/boot/initramfs.cpio"
cat > "$tree/boot/grub/grub.cfg" <<'EOF'
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=1
menuentry 'Vessel test guest' {
    echo 'VESSEL-GRUB loading the kernel'
    linux /boot/vmlinuz console=ttyS0
    initrd /boot/initramfs.cpio
}
EOF
grub-mkrescue -d /usr/lib/grub/i386-pc -o "$iso.tmp" "$tree" > "$tree.log" 2>&1 ||
    { cat "$tree.log" >&2; rm -f "$tree.log" "$iso.tmp"; exit 1; }
rm -f "$tree.log"
chmod 0644 "$iso.tmp"
mv "$iso.tmp" "$iso"
