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
#
# With COCA_SANITIZE=1 it builds a second flavour beside the first, in
# work/build-asan: clang, AddressSanitizer and UndefinedBehaviorSanitizer
# (--enable-asan, --enable-ubsan) and libFuzzer (--enable-fuzzing), which
# adds the
# qemu-fuzz-x86_64 binary; build/qemu-asan links to it.
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
    --enable-kvm
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
if [ "${COCA_SANITIZE:-0}" = 1 ]; then
    BLD=$WORK/build-asan
    CONFIGURE_ARGS+=(--cc=clang --cxx=clang++ --host-cc=clang
                     --enable-asan --enable-ubsan --enable-fuzzing)
    TARGETS=(qemu-system-x86_64 qemu-fuzz-x86_64
             tests/qtest/coco-attest-test)
fi

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
        > "$BLD.configure.log" 2>&1 ||
        { tail -n 30 "$BLD.configure.log"; die "configure failed"; }
    echo "$cfg_hash" > "$BLD/.coco-configure"
fi

log "building (ninja, $(nproc) jobs)"
ninja -C "$BLD" "${TARGETS[@]}" > "$BLD.ninja.log" 2>&1 ||
    { grep -E -B2 -A12 'error|FAILED' "$BLD.ninja.log" | head -n 80
      die "build failed (full log: $BLD.ninja.log)"; }

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
ln -sfn "$SRC" "$TOP/build/qemu-src"
if [ "${COCA_SANITIZE:-0}" = 1 ]; then
    ln -sfn "$BLD" "$TOP/build/qemu-asan"
    log "built: build/qemu-asan/qemu-system-x86_64 and qemu-fuzz-x86_64"
    exit 0
fi
ln -sfn "$BLD/qemu-system-x86_64" "$TOP/build/qemu-system-x86_64"
ln -sfn "$BLD" "$TOP/build/qemu"
log "built: build/qemu-system-x86_64"
