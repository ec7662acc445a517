#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Boot the bare-metal test guest on the project's QEMU with one scenario
# and check its verdict: isa-debug-exit status 33 and "PASS" on COM1.
#
#   run-baremetal.sh ELF MACHINE SCENARIO [EXTRA-DEVICE-PROPS]
#
# The QEMU binary comes from $COCA_QEMU (set by scripts/run-tests.sh).
set -uo pipefail
elf=$1 machine=$2 scenario=$3 props=${4:-}
qemu=${COCA_QEMU:-}
if [ -z "$qemu" ] || [ ! -x "$qemu" ]; then
    echo "COCA_QEMU must point at the built qemu-system-x86_64" >&2
    exit 1
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
timeout 60 "$qemu" -M "$machine" -m 128M -nodefaults -display none \
    -no-reboot -serial "file:$log" \
    -device isa-debug-exit,iobase=0xf4,iosize=4 \
    -device "coco-attest$props" \
    -kernel "$elf" -append "$scenario" < /dev/null
rc=$?
cat "$log"
if [ "$rc" -ne 33 ] || ! grep -q '^coco-attest guest: PASS' "$log"; then
    echo "bare-metal scenario '$scenario' on $machine failed (QEMU exit $rc)"
    exit 1
fi
