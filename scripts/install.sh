#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Install what ./coco-attest.sh build built, under $DESTDIR (default /)
# and $PREFIX (default /usr/local), in places libvirt's QEMU user can
# read and execute:
#
#   $PREFIX/bin/qemu-system-x86_64     QEMU with the device; its firmware
#                                      comes from Debian's seabios,
#                                      ipxe-qemu and qemu-system-data
#                                      (/usr/share/qemu, built in)
#   $PREFIX/bin/coco-attest-provision  the operator's CLI
#   $PREFIX/libexec/coco-attest/coco-attest-hook
#   /etc/libvirt/hooks/qemu.d/50-coco-attest -> the hook
#   $PREFIX/share/coco-attest/         the metadata schema, the example
#                                      hook.conf and domain XML
#   /etc/coco-attest/hook.conf         from the example, if absent
#   /etc/coco-attest/ca/               a host CA with a file key, unless
#                                      one exists (or COCO_NO_CA is set)
#
# Prints each path it wrote.  Never overwrites a configuration or a CA.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

R=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
B=$TOP/build/project/libvirt-hooks
QEMU_BIN=$(realpath "$TOP/build/qemu/qemu-system-x86_64" 2>/dev/null) ||
    die "no QEMU build: run ./coco-attest.sh build"
[ -x "$B/coco-attest-hook" ] || die "no project build: run ./coco-attest.sh build"

umask 022
put() {   # put MODE SOURCE DEST
    install -D -m "$1" "$2" "$R$3"
    echo "$R$3"
}
# the binary only: without qemu-bundle/ beside it, QEMU looks for its
# firmware in the --firmwarepath it was built with (Debian's packages)
put 0755 "$QEMU_BIN" "$PREFIX/bin/qemu-system-x86_64"
put 0755 "$B/coco-attest-provision" "$PREFIX/bin/coco-attest-provision"
put 0755 "$B/coco-attest-hook" "$PREFIX/libexec/coco-attest/coco-attest-hook"
put 0644 "$TOP/docs/schemas/coco-attest-domain.rng" \
    "$PREFIX/share/coco-attest/coco-attest-domain.rng"
put 0644 "$TOP/libvirt-hooks/hook.conf.example" \
    "$PREFIX/share/coco-attest/hook.conf.example"
put 0644 "$TOP/docs/examples/coco-vm1.xml" \
    "$PREFIX/share/coco-attest/coco-vm1.xml"
mkdir -p "$R/etc/libvirt/hooks/qemu.d" "$R/etc/coco-attest"
ln -sfn "$PREFIX/libexec/coco-attest/coco-attest-hook" \
    "$R/etc/libvirt/hooks/qemu.d/50-coco-attest"
echo "$R/etc/libvirt/hooks/qemu.d/50-coco-attest"
if [ ! -e "$R/etc/coco-attest/hook.conf" ]; then
    put 0644 "$TOP/libvirt-hooks/hook.conf.example" /etc/coco-attest/hook.conf
fi
# a CA only where there is none: a ca.crt alone may go with a key in an
# HSM (hook.conf's key=pkcs11:...)
if [ ! -e "$R/etc/coco-attest/ca/ca.key" ] &&
   [ ! -e "$R/etc/coco-attest/ca/ca.crt" ] && [ -z "${COCO_NO_CA:-}" ]; then
    "$B/coco-attest-provision" init-ca --ca-dir "$R/etc/coco-attest/ca" \
        > /dev/null
    echo "$R/etc/coco-attest/ca/ca.crt"
    log "created a host CA in $R/etc/coco-attest/ca (file key)"
fi
log "installed; make libvirt read the hook: send virtqemud (or libvirtd)" \
    "a SIGHUP, or restart it"
