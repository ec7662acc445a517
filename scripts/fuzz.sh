#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Fuzz every target for SECONDS each (default 300) and print TAP:
#   guest, hook-domain, kbs-client   libFuzzer targets in fuzz/ (clang,
#                                    ASan, UBSan; build/fuzz)
#   qemu-coco-attest                 the device through its ports and page
#                                    (QEMU's fuzzer, the sanitizer build)
# Each target first replays its kept reproducers (fuzz/regressions/NAME/),
# then runs from its seed corpus (fuzz/corpus/NAME/) plus what earlier
# runs found (build/fuzz-work/NAME/, not in git).  A crash fails the run
# and leaves its input in build/fuzz-work/crash-NAME-*: minimise it, fix
# the bug, and add the input to fuzz/regressions/NAME/.
#
#   scripts/fuzz.sh [SECONDS]    (./coco-attest.sh fuzz [SECONDS])
set -uo pipefail
. "$(dirname "$0")/lib.sh"
SECS=${1:-300}
W=$TOP/build/fuzz-work
mkdir -p "$W"
. "$TOP/tests/lib/tap.sh"

bash "$TOP/scripts/setup-deps.sh" > "$W/setup.log" 2>&1 ||
    { cat "$W/setup.log"; die "installing the dependencies failed"; }

# the project's targets: a clang build of fuzz/ only
B=$TOP/build/fuzz
if [ ! -f "$B/build.ninja" ]; then
    CC=clang meson setup "$B" "$TOP" -Dfuzzing=true > "$W/meson.log" 2>&1 ||
        { cat "$W/meson.log"; die "meson setup of the fuzz targets failed"; }
fi
ninja -C "$B" > "$W/ninja.log" 2>&1 ||
    { tail -n 40 "$W/ninja.log"; die "building the fuzz targets failed"; }

# QEMU's, and a deterministic instance directory for its CA backend
COCA_SANITIZE=1 bash "$TOP/scripts/build-qemu.sh" > "$W/qemu-build.log" 2>&1 ||
    { tail -n 40 "$W/qemu-build.log"; die "the sanitizer QEMU build failed"; }
bash "$TOP/scripts/build-project.sh" > /dev/null
P=$TOP/build/project/libvirt-hooks/coco-attest-provision
rm -rf "$W/ca" "$W/instance"
"$P" init-ca --ca-dir "$W/ca" > /dev/null &&
"$P" provision --ca-dir "$W/ca" --instance-dir "$W/instance" \
    --project-id fuzz --project-number 1 --zone fuzz-zone \
    --instance-name fuzz-vm --instance-id fuzz-id > /dev/null ||
    die "provisioning the fuzz instance failed"
export COCA_FUZZ_CA_DIR=$W/instance

run_target() {   # run_target NAME BINARY [ARGS...]
    local name=$1 bin=$2 rc f
    shift 2
    mkdir -p "$W/$name"
    rm -f "$W/crash-$name-"*
    # every kept reproducer must pass
    rc=0
    for f in "$TOP/fuzz/regressions/$name/"*; do
        [ -f "$f" ] && [ "${f##*/}" != README ] || continue
        "$bin" "$@" "$f" > "$W/$name-replay.log" 2>&1 || {
            rc=1
            echo "# reproducer $(basename "$f") fails again:"
            tail -n 20 "$W/$name-replay.log" | sed 's/^/#   /'
        }
    done
    ok $rc "$name: the kept reproducers pass"
    "$bin" "$@" -max_total_time="$SECS" -timeout=20 -rss_limit_mb=4096 \
        -artifact_prefix="$W/crash-$name-" -print_final_stats=1 \
        "$W/$name" "$TOP/fuzz/corpus/$name" > "$W/$name.log" 2>&1
    rc=$?
    grep -E '^(stat::number_of_executed_units|Done)' "$W/$name.log" |
        sed 's/^/# /'
    grep -E 'cov: ' "$W/$name.log" | tail -n 1 | sed 's/^/# /'
    if [ $rc -ne 0 ] || ls "$W/crash-$name-"* > /dev/null 2>&1; then
        grep -E -A20 'ERROR|runtime error|SUMMARY' "$W/$name.log" |
            head -n 40 | sed 's/^/# /'
        rc=1
    fi
    ok $rc "$name: $SECS s of fuzzing, no crash"
}

for t in guest hook-domain kbs-client; do
    run_target "$t" "$B/fuzz/fuzz-$t"
done
(
    # QEMU's sanitizers: leaks at exit are QEMU's, not the target's; UBSan
    # is built recoverable, so make it stop at the first report
    export ASAN_OPTIONS=detect_leaks=0
    export UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1
    run_target qemu-coco-attest \
        "$QEMU_CACHE/work/build-asan/qemu-fuzz-x86_64" \
        --fuzz-target=coco-attest
    echo "$n $failed" > "$W/.counts"
)
read -r n failed < "$W/.counts"
tap_end
