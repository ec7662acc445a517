#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# coco-attest entry point.
#
#   ./coco-attest.sh demo            set up, build, run the main job
#   ./coco-attest.sh test [SUITE...] set up, build, run test suites
#   ./coco-attest.sh build           set up and build only
#   ./coco-attest.sh install         install QEMU, the hook, the CLI and
#                                    a default configuration under
#                                    /usr/local and /etc ($DESTDIR,
#                                    $PREFIX)
#   ./coco-attest.sh guest-image [DIR]
#                                    a Linux guest kernel and initramfs
#                                    for libvirt (default
#                                    /var/lib/libvirt/images/coco-attest)
#   ./coco-attest.sh export-patches [DIR]
#                                    write the QEMU change as a
#                                    git format-patch series
#   ./coco-attest.sh bench           run every benchmark, one report
#   ./coco-attest.sh fuzz [SECONDS]  fuzz every target (default 300 s)
#
# Suites: abi guest ca kbs migration libvirt qtest patches sanitize fuzz
# (default: all).  Everything is idempotent; expensive steps are cached
# under ${XDG_CACHE_HOME:-~/.cache}/coco-attest.
set -euo pipefail
. "$(dirname "$0")/scripts/lib.sh"

ALL_SUITES=(abi guest ca kbs migration libvirt qtest patches sanitize fuzz)

usage() {
    sed -n '4,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit "${1:-0}"
}

build_all() {
    bash "$TOP/scripts/build-qemu.sh"
    bash "$TOP/scripts/build-project.sh"
}

cmd=${1:-}
[ -n "$cmd" ] || usage 1
shift
case "$cmd" in
build)
    build_all
    ;;
demo)
    build_all
    vmlinux=$(bash "$TOP/scripts/fetch-kernel.sh")
    # a host CA (kept) and a freshly provisioned demo instance
    P=$TOP/build/project/libvirt-hooks/coco-attest-provision
    D=$TOP/build/demo
    mkdir -p "$D"
    [ -f "$D/ca/ca.key" ] || "$P" init-ca --ca-dir "$D/ca" > /dev/null
    [ ! -d "$D/instance" ] || "$P" purge --instance-dir "$D/instance"
    "$P" provision --ca-dir "$D/ca" --instance-dir "$D/instance" \
        --project-id demo-project --project-number 123456789 \
        --zone europe-west4-a --instance-name demo-vm \
        --instance-id 6d1f0a52-8b1c-4a77-9d0e-3f0b6e8c2a11 > /dev/null
    python3 "$TOP/scripts/demo.py" --vmlinux "$vmlinux" \
        --instance-dir "$D/instance" --kbs "$@"
    ;;
test)
    suites=("$@")
    [ ${#suites[@]} -gt 0 ] || suites=("${ALL_SUITES[@]}")
    for s in "${suites[@]}"; do
        case " ${ALL_SUITES[*]} " in
        *" $s "*) ;;
        *) die "unknown suite '$s' (suites: ${ALL_SUITES[*]})" ;;
        esac
    done
    build_all
    exec bash "$TOP/scripts/run-tests.sh" "${suites[@]}"
    ;;
install)
    build_all
    exec bash "$TOP/scripts/install.sh"
    ;;
guest-image)
    build_all
    exec bash "$TOP/scripts/guest-image.sh" "$@"
    ;;
bench)
    build_all
    bash "$TOP/bench/run-bench.sh"
    /usr/bin/python3 "$TOP/bench/bench-ca.py"
    bash "$TOP/bench/bench-kbs.sh"
    bash "$TOP/bench/bench-libvirt.sh" ||
        log "bench-libvirt.sh failed (it needs root and libvirt): skipped"
    echo
    /usr/bin/python3 "$TOP/bench/report.py"
    ;;
fuzz)
    build_all
    exec bash "$TOP/scripts/fuzz.sh" "${1:-300}"
    ;;
export-patches)
    bash "$TOP/scripts/setup-deps.sh"
    bash "$TOP/scripts/fetch-qemu.sh"
    bash "$TOP/scripts/export-patches.sh" "$@"
    ;;
-h|--help|help)
    usage 0
    ;;
*)
    usage 1
    ;;
esac
