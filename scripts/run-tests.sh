#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Run the named test suites against what build-qemu.sh and
# build-project.sh built, and print one summary line per suite and a
# closing "N passed, N failed" line.  Exits non-zero if anything failed.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

QBUILD=$QEMU_CACHE/work/build
PBUILD=$TOP/build/project
QEMU_BIN=$QBUILD/qemu-system-x86_64
PREFIX=
LOGDIR=$TOP/build/test-logs
mkdir -p "$LOGDIR"
passed=0
failed=0

# meson_suite NAME BUILD_DIR TEST...: run meson tests, count the results
meson_suite() {
    local name=$PREFIX$1 dir=$2 log=$LOGDIR/$PREFIX$1.log json ok bad cases
    local rc=0
    shift 2
    log "suite $name: $*"
    meson test -C "$dir" --no-rebuild --verbose "$@" > "$log" 2>&1 || rc=$?
    json=$dir/meson-logs/testlog.json
    ok=$(grep -c '"result": "OK"' "$json" || true)
    bad=$(grep -Ec '"result": "(FAIL|TIMEOUT|ERROR|UNEXPECTEDPASS)"' \
          "$json" || true)
    # qtests report their test cases as TAP subtests
    cases=$(grep -E '^ *[0-9]+/[0-9]+ .* OK ' "$log" |
            sed -nE 's/.* ([0-9]+) subtests passed.*/\1/p;t;s/.*/1/p' |
            awk '{ n += $1 } END { print n + 0 }')
    printf '  %-8s %3d ok, %d failed  (%s test cases; log %s)\n' "$name" \
        "$ok" "$bad" "${cases:-0}" "$log"
    if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then
        bad=1       # the harness itself failed
    fi
    if [ "$bad" -gt 0 ] || [ "$ok" -eq 0 ]; then
        grep -E 'not ok|FAIL|ERROR|assert|Error' "$log" | head -n 40
        failed=$((failed + bad + (ok == 0)))
    fi
    passed=$((passed + ok))
}

suite_abi() {
    meson_suite abi "$PBUILD" --suite abi
}

suite_guest() {
    local vmlinux
    vmlinux=$(bash "$TOP/scripts/fetch-kernel.sh") || {
        echo "  guest: could not fetch the test kernel"
        failed=$((failed + 1))
        return
    }
    test_instance
    COCA_QEMU=$QEMU_BIN COCA_VMLINUX=$vmlinux \
        meson_suite guest "$PBUILD" --suite guest
}

# A host CA and an instance directory (with a pre-provisioned P-256 EK
# certificate) for the qtests that exercise -object coco-attest-ca.
test_instance() {
    # fixtures: always the regular build (faketime and ASan do not mix)
    local d=$TOP/build/test-ca
    local P=$TOP/build/project/libvirt-hooks/coco-attest-provision
    # the renewal qtest provisions its own instance with it
    export COCA_PROVISION=${COCA_PROVISION:-$P}
    if [ -z "${COCA_CA_DIR:-}" ]; then
        rm -rf "$d"
        mkdir -p "$d"
        "$P" init-ca --ca-dir "$d/ca" > /dev/null &&
        openssl ecparam -name prime256v1 -genkey -noout -out "$d/ek.key" &&
        openssl pkey -in "$d/ek.key" -pubout -outform DER -out "$d/ek.der" &&
        "$P" provision --ca-dir "$d/ca" --instance-dir "$d/instance" \
            --project-id demo-project --project-number 123456789 \
            --zone europe-west4-a --instance-name vm1 \
            --instance-id 6d1f0a52-8b1c-4a77-9d0e-3f0b6e8c2a11 \
            --ek-pub "$d/ek.der" > /dev/null &&
        "$P" provision --ca-dir "$d/ca" --instance-dir "$d/instance-gce" \
            --project-id demo-project --project-number 123456789 \
            --zone europe-west4-a --instance-name vm2 \
            --instance-id 3560342035431930290 --gce > /dev/null &&
        faketime -f '-2d' "$P" provision --ca-dir "$d/ca" \
            --instance-dir "$d/instance-expired" --validity-hours 1 \
            --project-id demo-project --project-number 123456789 \
            --zone europe-west4-a --instance-name vm3 --instance-id 3 \
            > /dev/null ||
            die "could not provision the test instances"
        export COCA_CA_DIR=$d/instance COCA_CA_GCE_DIR=$d/instance-gce
        export COCA_CA_EXPIRED_DIR=$d/instance-expired
    fi
}

suite_ca() {
    test_instance
    meson_suite ca "$PBUILD" --suite ca
    meson_suite ca-qtest "$QBUILD" qtest-x86_64/coco-attest-test \
        --test-args '-p /x86_64/coco-attest/ca'
}

suite_libvirt() {
    local vmlinux
    vmlinux=$(bash "$TOP/scripts/fetch-kernel.sh") || {
        echo "  libvirt: could not fetch the test kernel"
        failed=$((failed + 1))
        return
    }
    COCA_QEMU_BUILD=$QBUILD COCA_VMLINUX=$vmlinux \
        meson_suite libvirt "$PBUILD" --suite libvirt
}

suite_qtest() {
    local more=(qtest-x86_64/qmp-cmd-test qtest-x86_64/device-introspect-test
                qtest-x86_64/qom-test)
    test_instance
    # the sanitizer build has only the device's own qtest
    [ -z "$PREFIX" ] || more=()
    # QEMU gives a qtest 60 s; the device's 66 cases outside the ca, kbs
    # and migration paths take 47 s on 2 cores, several times that under
    # ASan: five times the limit
    meson_suite qtest "$QBUILD" -t 5 qtest-x86_64/coco-attest-test \
        "${more[@]}"
}

# The test KBS (HTTP and HTTPS) for the device's KBS forwarding: its
# self-test, the KBS qtests and the Linux guest end to end.
suite_kbs() {
    local vmlinux
    vmlinux=$(bash "$TOP/scripts/fetch-kernel.sh") || {
        echo "  kbs: could not fetch the test kernel"
        failed=$((failed + 1))
        return
    }
    . "$TOP/tests/kbs/kbs-env.sh"
    if ! kbs_env_start "$TOP/build/kbs-test"; then
        echo "  kbs: the test KBS did not start"
        failed=$((failed + 1))
        return
    fi
    meson_suite kbs-qtest "$QBUILD" qtest-x86_64/coco-attest-test \
        --test-args '-p /x86_64/coco-attest/kbs'
    COCA_QEMU=$QEMU_BIN COCA_VMLINUX=$vmlinux \
        meson_suite kbs "$PBUILD" --suite kbs
    kbs_env_stop
}

# tap_script NAME CMD...: a TAP script run directly, counted as one test
tap_script() {
    local name=$PREFIX$1 log=$LOGDIR/$PREFIX$1.log
    shift
    log "suite $name: $*"
    if "$@" > "$log" 2>&1; then
        printf '  %-8s   1 ok, 0 failed  (%s test cases; log %s)\n' "$name" \
            "$(grep -c '^ok ' "$log")" "$log"
        passed=$((passed + 1))
    else
        grep -E '^not ok|^#' "$log" | head -n 40
        printf '  %-8s   0 ok, 1 failed  (log %s)\n' "$name" "$log"
        failed=$((failed + 1))
    fi
}

# Live migration and power states: the migration qtests and their
# matrix (with the test KBS for the session and pending-exchange cases,
# and the CA for the nonce case), system_reset, S3, stop/cont and quit
# with a request pending, the vmstate compatibility gate, and a
# bare-metal guest migrated while its request is pending.
suite_migration() {
    test_instance
    . "$TOP/tests/kbs/kbs-env.sh"
    if ! kbs_env_start "$TOP/build/kbs-test"; then
        echo "  migration: the test KBS did not start"
        failed=$((failed + 1))
        return
    fi
    meson_suite migration "$QBUILD" qtest-x86_64/coco-attest-test \
        -t 10 --test-args '-p /x86_64/coco-attest/migration'
    meson_suite power "$QBUILD" qtest-x86_64/coco-attest-test \
        --test-args '-p /x86_64/coco-attest/power'
    kbs_env_stop
    # (a reset with a KBS exchange pending is in the kbs suite)
    meson_suite reset "$QBUILD" qtest-x86_64/coco-attest-test \
        --test-args '-p /x86_64/coco-attest/async/reset'
    tap_script vmstate bash "$TOP/tests/vmstate/vmstate-gate.sh" \
        "$QEMU_BIN" "$TOP/build/qemu-src"
    COCA_QEMU=$QEMU_BIN \
        meson_suite migration-guest "$PBUILD" --suite migration
}

suite_patches() {
    local log=$LOGDIR/patches.log
    log "suite patches: export, git am on upstream $QEMU_VERSION, checkpatch"
    if bash "$TOP/scripts/export-patches.sh" --check > "$log" 2>&1; then
        printf '  %-8s   1 ok, 0 failed  (%s)\n' patches \
            "$(grep -c '' "$TOP/build/patches/series" 2>/dev/null) patches"
        passed=$((passed + 1))
    else
        tail -n 40 "$log"
        printf '  %-8s   0 ok, 1 failed  (log %s)\n' patches "$log"
        failed=$((failed + 1))
    fi
}

# The same suites on QEMU built with clang, ASan and UBSan, and the host
# tools with ASan and UBSan (results prefixed "san-").  LeakSanitizer is
# off for QEMU, whose exit path does not free everything.
suite_sanitize() {
    log "sanitizer build: QEMU (clang, ASan, UBSan, libFuzzer) and host tools"
    COCA_SANITIZE=1 bash "$TOP/scripts/build-qemu.sh" &&
        COCA_SANITIZE=1 bash "$TOP/scripts/build-project.sh" || {
        echo "  sanitize: the sanitizer build failed"
        failed=$((failed + 1))
        return
    }
    (
        QBUILD=$QEMU_CACHE/work/build-asan
        PBUILD=$TOP/build/project-asan
        QEMU_BIN=$QBUILD/qemu-system-x86_64
        PREFIX=san-
        export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=1
        export UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1
        for s in qtest guest ca kbs migration; do
            "suite_$s"
        done
        echo "$passed $failed" > "$LOGDIR/.sanitize-counts"
    )
    read -r passed failed < "$LOGDIR/.sanitize-counts"
}

# Bounded fuzzing of every target (scripts/fuzz.sh), after replaying the
# kept reproducers.
suite_fuzz() {
    tap_script fuzz bash "$TOP/scripts/fuzz.sh" "${COCA_FUZZ_SECONDS:-45}"
}

for s in "$@"; do
    "suite_$s"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
