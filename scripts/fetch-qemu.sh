#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Fetch the pinned QEMU source package with `apt-get source`, verify the
# upstream tarball checksum and unpack it with Debian's patches applied.
# Results are cached under $XDG_CACHE_HOME/coco-attest/qemu-<version>/:
#   dl/        the .dsc, .orig.tar.xz and .debian.tar.xz as downloaded
#   debian-src the Debian-patched tree (read-only reference)
#   upstream   the unpatched upstream tree (for the patch-series check)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

mkdir -p "$QEMU_CACHE/dl"
dl=$QEMU_CACHE/dl
dsc=$dl/qemu_${QEMU_DEB_VERSION#*:}.dsc

if [ ! -f "$dl/.complete" ]; then
    log "fetching qemu $QEMU_DEB_VERSION source with apt-get source"
    (cd "$dl" && retry apt-get source --download-only -q \
        "qemu=$QEMU_DEB_VERSION") || die "apt-get source qemu=$QEMU_DEB_VERSION \
failed: the pinned version may have left the archive (see README, 'Pinned QEMU')"
    touch "$dl/.complete"
fi
echo "$QEMU_ORIG_SHA256  $dl/$QEMU_ORIG" | sha256sum -c --quiet - ||
    die "checksum mismatch for $QEMU_ORIG (delete $dl and retry)"

if [ ! -f "$QEMU_CACHE/debian-src/.complete" ]; then
    log "unpacking with Debian patches (dpkg-source -x)"
    rm -rf "$QEMU_CACHE/debian-src"
    dpkg-source -x "$dsc" "$QEMU_CACHE/debian-src" >/dev/null
    touch "$QEMU_CACHE/debian-src/.complete"
fi

if [ ! -f "$QEMU_CACHE/upstream/.complete" ]; then
    log "unpacking the unpatched upstream tree"
    rm -rf "$QEMU_CACHE/upstream"
    mkdir -p "$QEMU_CACHE/upstream"
    tar -xJf "$dl/$QEMU_ORIG" -C "$QEMU_CACHE/upstream" --strip-components=1
    touch "$QEMU_CACHE/upstream/.complete"
fi
log "qemu source ready in $QEMU_CACHE"
