#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Linux end-to-end test: boot Debian's cloud kernel (PVH, vmlinux from
# scripts/fetch-kernel.sh, $COCA_VMLINUX) on the project's QEMU
# ($COCA_QEMU) with an initramfs holding coco-attest-guest and a test
# /init, and check the verdict (isa-debug-exit status 33, PASS lines).
#
#   run-linux.sh INIT TOOL
set -uo pipefail
init=$1 tool=$2
for v in COCA_QEMU COCA_VMLINUX; do
    if [ ! -e "${!v:-}" ]; then
        echo "$v must point at the built QEMU / the fetched vmlinux" >&2
        exit 1
    fi
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# With an instance directory ($COCA_CA_DIR): the identity path too, on a
# copy without a pre-provisioned EK, so that the guest's first boot
# certifies its own.
ca_args=() root=
if [ -n "${COCA_CA_DIR:-}" ]; then
    cp -a "$COCA_CA_DIR" "$tmp/instance"
    rm -f "$tmp/instance/ek/"*
    ca_args=(-object "coco-attest-ca,id=ca0,dir=$tmp/instance")
    root=$tmp/instance/root.crt
fi
"$(dirname "$0")/mk-initramfs.sh" "$tmp/initramfs.cpio" "$init" "$tool" \
    $root
# 1 MiB of guest RAM reserved for the page channel (request page + 64 KiB)
timeout 120 "$COCA_QEMU" -M q35 -m 256M -nodefaults -display none \
    -no-reboot -serial "file:$tmp/console.log" \
    -device isa-debug-exit,iobase=0xf4,iosize=4 \
    "${ca_args[@]}" \
    -device "coco-attest,x-echo-delay-ms=10${root:+,ca=ca0}" \
    -kernel "$COCA_VMLINUX" -initrd "$tmp/initramfs.cpio" \
    -append "console=ttyS0 panic=-1 quiet memmap=1M\$0x7000000 coca.mem=0x7000000${root:+ coca.ca}" \
    < /dev/null
rc=$?
cat "$tmp/console.log"
if [ "$rc" -ne 33 ] ||
   ! grep -q '^coco-attest Linux guest: PASS' "$tmp/console.log"; then
    echo "Linux end-to-end test failed (QEMU exit $rc)"
    exit 1
fi
