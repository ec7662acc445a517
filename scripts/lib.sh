# SPDX-License-Identifier: GPL-2.0-or-later
#
# Shared settings and helpers for the coco-attest build scripts.
# Sourced, never executed.

QEMU_VERSION=10.0.13
QEMU_DEB_VERSION=1:10.0.13+ds-0+deb13u1
QEMU_DEB_SUITE=trixie
QEMU_ORIG=qemu_10.0.13+ds.orig.tar.xz
QEMU_ORIG_SHA256=6a0888e806c2ffc0c5f0733e974f9aea55491950d3c47c98669c8b236dde59ae

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE_ROOT=${XDG_CACHE_HOME:-$HOME/.cache}/coco-attest
QEMU_CACHE=$CACHE_ROOT/qemu-$QEMU_VERSION

log() { printf '[coco-attest] %s\n' "$*" >&2; }
die() { printf '[coco-attest] error: %s\n' "$*" >&2; exit 1; }

# Run a command, retrying a few times (apt-get races a lists lock on
# freshly booted machines, mirrors hiccup).
retry() {
    local n=0
    until "$@"; do
        n=$((n + 1))
        [ "$n" -ge 5 ] && return 1
        log "retrying ($n/5): $*"
        sleep $((n * 3))
    done
}
