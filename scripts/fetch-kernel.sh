#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Fetch the current Debian 12 cloud kernel for the Linux end-to-end test
# guest (apt-get download: never installed on the host) and extract the
# uncompressed vmlinux, which QEMU boots directly through PVH (no
# in-guest decompression, ~1.8 s to /init under TCG).  Prints the path of
# the vmlinux.  Cached per kernel ABI under the coco-attest cache.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

FLAVOUR=cloud-amd64
# The ABI moves with every kernel update: resolve it from the metapackage.
abi=$(apt-cache depends "linux-image-$FLAVOUR" 2>/dev/null |
      sed -n 's/.*Depends: linux-image-\(.*\)$/\1/p' | head -n 1)
[ -n "$abi" ] || die "cannot resolve linux-image-$FLAVOUR (apt-get update?)"
dir=$CACHE_ROOT/kernel/$abi
if [ -s "$dir/vmlinux" ]; then
    echo "$dir/vmlinux"
    exit 0
fi
log "fetching linux-image-$abi (apt-get download)"
tmp=$(mktemp -d)
chmod 755 "$tmp"
# apt downloads as _apt when it can write there: no sandbox warning
chown _apt "$tmp" 2>/dev/null || true
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && retry apt-get download -q "linux-image-$abi" >&2) ||
    die "apt-get download linux-image-$abi failed"
dpkg-deb --fsys-tarfile "$tmp"/linux-image-*.deb |
    tar -x -C "$tmp" "./boot/vmlinuz-$abi"
# The bzImage payload of the cloud flavour is LZ4 (legacy frame format):
# find its magic and decompress from there.
off=$(python3 - "$tmp/boot/vmlinuz-$abi" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
print(data.find(b"\x02\x21\x4c\x18"))
PY
)
[ "$off" -ge 0 ] || die "no LZ4 payload in vmlinuz-$abi"
mkdir -p "$dir"
tail -c +$((off + 1)) "$tmp/boot/vmlinuz-$abi" |
    lz4 -dc > "$tmp/vmlinux" 2>/dev/null || true
head -c 4 "$tmp/vmlinux" | grep -q 'ELF' ||
    die "could not extract vmlinux from vmlinuz-$abi"
mv "$tmp/vmlinux" "$dir/vmlinux"
echo "$dir/vmlinux"
