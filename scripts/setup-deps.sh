#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Install every Debian package the project needs to build and test, on
# Debian 12 (bookworm) with bookworm-backports; adds the deb-src entries
# that `apt-get source` of the pinned QEMU needs. Idempotent: a machine
# that already has everything is left alone after a quick check.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

PKGS=(
    build-essential gcc-multilib git dpkg-dev rsync xz-utils lz4 cpio
    ca-certificates perl
    python3 python3-venv ninja-build pkgconf flex bison
    libglib2.0-dev libpixman-1-dev libfdt-dev zlib1g-dev
    libgnutls28-dev libcurl4-gnutls-dev libssl-dev openssl gnutls-bin
    libxml2-dev libxml2-utils
    seabios qemu-system-data ipxe-qemu
    python3-cryptography swtpm-tools faketime libfaketime libjson-c-dev
    clang libclang-rt-14-dev python3-matplotlib
)
BPO_PKGS=(meson python3-pycotap
          libvirt-daemon-system libvirt-clients libvirt-daemon-driver-qemu)

SRC_LIST=/etc/apt/sources.list.d/coco-attest.sources

need_root() {
    [ "$(id -u)" -eq 0 ] || die "installing packages needs root (run as root)"
}

all_installed() {
    local p
    for p in "${PKGS[@]}" "${BPO_PKGS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
            grep -q 'install ok installed' || return 1
    done
    # meson must be >= 1.5 (QEMU 10.0)
    local mv
    mv=$(dpkg-query -W -f='${Version}' meson)
    dpkg --compare-versions "$mv" ge 1.5 || return 1
    [ -f "$SRC_LIST" ] || return 1
    return 0
}

if all_installed; then
    log "build dependencies present"
    exit 0
fi
need_root

if [ ! -f "$SRC_LIST" ]; then
    log "adding bookworm-backports and deb-src entries ($SRC_LIST)"
    cat > "$SRC_LIST" <<SRC
# Added by coco-attest scripts/setup-deps.sh
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-backports $QEMU_DEB_SUITE
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    # Never let trixie binaries leak in: only its sources are wanted.
    cat > /etc/apt/preferences.d/coco-attest <<PREF
Package: *
Pin: release n=$QEMU_DEB_SUITE
Pin-Priority: 50
PREF
fi

export DEBIAN_FRONTEND=noninteractive
retry apt-get update -q || die "apt-get update failed"
retry apt-get install -y -q --no-install-recommends "${PKGS[@]}" ||
    die "apt-get install failed"
retry apt-get install -y -q --no-install-recommends -t bookworm-backports \
    "${BPO_PKGS[@]}" || die "apt-get install (bookworm-backports) failed"
all_installed || die "dependencies still missing after install"
log "build dependencies installed"
