#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Build the Linux test guest's initramfs: /init and /coco-attest-guest.
#
#   mk-initramfs.sh OUT.cpio INIT TOOL [ROOT-CA-CERT]
set -euo pipefail
out=$1 init=$2 tool=$3 root=${4:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$init" "$tmp/init"
cp "$tool" "$tmp/coco-attest-guest"
if [ -n "$root" ]; then
    cp "$root" "$tmp/root.crt"  # the trust anchor handed to the guest
fi
(cd "$tmp" && find . | LC_ALL=C sort |
    cpio -o -H newc --owner=0:0 --quiet) > "$out"
