#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Build the pinned QEMU with the coco-attest overlay.
#
# The overlaid source tree and the build directory live in the cache
# ($XDG_CACHE_HOME/coco-attest/qemu-<version>/work) and are updated in
# place: only files whose content changed are rewritten, so ninja only
# rebuilds what the change touched.  build/ in the repository links to
# the results.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/overlay.sh"

bash "$TOP/scripts/setup-deps.sh"
bash "$TOP/scripts/fetch-qemu.sh"

WORK=$QEMU_CACHE/work
SRC=$WORK/src
BLD=$WORK/build
FIRMWARE_DIRS=/usr/share/qemu:/usr/share/seabios:/usr/lib/ipxe/qemu
CONFIGURE_ARGS=(
    --python=/usr/bin/python3
    --target-list=x86_64-softmmu
    --without-default-features
    --enable-werror
    --disable-docs
    --enable-tcg
    --enable-fdt=system
    --enable-gnutls
    --enable-curl
    --disable-install-blobs
    --disable-download
    --firmwarepath=$FIRMWARE_DIRS
)
TARGETS=(
    qemu-system-x86_64
    tests/qtest/coco-attest-test
    tests/qtest/qmp-cmd-test
    tests/qtest/device-introspect-test
    tests/qtest/qom-test
)

mkdir -p "$WORK"
hash=$(overlay_hash)
if [ "$(cat "$WORK/overlay.hash" 2>/dev/null)" != "$hash" ]; then
    log "laying the overlay ($hash) on qemu $QEMU_VERSION"
    stage=$WORK/stage
    rm -rf "$stage"
    cp -a "$QEMU_CACHE/debian-src" "$stage"
    for e in $(overlay_entries); do
        apply_entry "$e" "$stage"
    done
    mkdir -p "$SRC"
    # rewrite only what differs, so unchanged files keep their mtime
    rsync -rlpc --delete "$stage/" "$SRC/"
    rm -rf "$stage"
    echo "$hash" > "$WORK/overlay.hash"
fi

cfg_hash=$(printf '%s\n' "${CONFIGURE_ARGS[@]}" | sha256sum | cut -c1-16)
if [ ! -f "$BLD/build.ninja" ] ||
   [ "$(cat "$BLD/.coco-configure" 2>/dev/null)" != "$cfg_hash" ]; then
    log "configuring qemu"
    rm -rf "$BLD"
    mkdir -p "$BLD"
    (cd "$BLD" && "$SRC/configure" "${CONFIGURE_ARGS[@]}") \
        > "$WORK/configure.log" 2>&1 ||
        { tail -n 30 "$WORK/configure.log"; die "configure failed"; }
    echo "$cfg_hash" > "$BLD/.coco-configure"
fi

log "building (ninja, $(nproc) jobs)"
ninja -C "$BLD" "${TARGETS[@]}" > "$WORK/ninja.log" 2>&1 ||
    { grep -E -B2 -A12 'error|FAILED' "$WORK/ninja.log" | head -n 80
      die "build failed (full log: $WORK/ninja.log)"; }

# A build-tree QEMU relocates its firmware path under qemu-bundle/: point
# those directories at Debian's firmware packages, so that neither users
# nor tests need -L.
IFS=: read -r -a fwdirs <<< "$FIRMWARE_DIRS"
for d in "${fwdirs[@]}"; do
    link=$BLD/qemu-bundle$d
    if [ ! -e "$link" ] || [ -L "$link" ]; then
        mkdir -p "$(dirname "$link")"
        ln -sfn "$d" "$link"
    fi
done

mkdir -p "$TOP/build"
ln -sfn "$BLD/qemu-system-x86_64" "$TOP/build/qemu-system-x86_64"
ln -sfn "$BLD" "$TOP/build/qemu"
ln -sfn "$SRC" "$TOP/build/qemu-src"
log "built: build/qemu-system-x86_64"
