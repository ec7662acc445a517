#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# A Linux guest for libvirt: Debian's cloud kernel (vmlinux, booted
# directly) and an initramfs whose /init runs the coco-attest guest tool
# (identity, EK and AK certificates, verified against the host CA) and
# prints its verdict on the serial console.  Written world-readable into
# DIR (default /var/lib/libvirt/images/coco-attest), where libvirt's QEMU
# user can read it: not under root's home or cache.
#
#   guest-image.sh [DIR]
# The trust anchor is the host CA certificate the hook uses ([ca] in
# $COCO_ATTEST_HOOK_CONF or /etc/coco-attest/hook.conf).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

DIR=${1:-/var/lib/libvirt/images/coco-attest}
B=$TOP/build/project
INIT=$B/guest-protocol/linux-test-init
TOOL=$B/guest-protocol/coco-attest-guest
HOOK=$B/libvirt-hooks/coco-attest-hook
for f in "$INIT" "$TOOL" "$HOOK"; do
    [ -x "$f" ] || die "missing $f: run ./coco-attest.sh build"
done
conf=$("$HOOK" --check-config) ||
    die "the hook configuration does not load (./coco-attest.sh install?)"
ca_cert=$(sed -n 's/^ca-cert=//p' <<< "$conf")
[ -r "$ca_cert" ] || die "cannot read the host CA certificate $ca_cert"
vmlinux=$(bash "$TOP/scripts/fetch-kernel.sh")

umask 022
mkdir -p "$DIR"
chmod 755 "$DIR"
install -m 0644 "$vmlinux" "$DIR/vmlinux"
bash "$TOP/tests/guest/mk-initramfs.sh" "$DIR/initramfs.cpio.tmp" "$INIT" \
    "$TOOL" "$ca_cert"
chmod 644 "$DIR/initramfs.cpio.tmp"
mv "$DIR/initramfs.cpio.tmp" "$DIR/initramfs.cpio"
echo "$DIR/vmlinux"
echo "$DIR/initramfs.cpio"
