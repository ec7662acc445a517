#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# End to end with a real libvirtd (no systemd): install the hook, start
# virtlogd and libvirtd by hand, define a TCG domain whose <metadata>
# carries an identity and whose <qemu:commandline> adds the
# coco-attest-ca object and device, boot Debian's kernel with the guest
# tool, and check that the guest obtained its identity and certificates,
# that the hook provisioned and cleaned up, and that bad metadata stops
# `virsh start` with the hook's reason.  Prints TAP.
#
#   run-libvirtd-e2e.sh HOOK PROVISION INIT TOOL
# Needs root, libvirt, $COCA_QEMU_BUILD (the QEMU build directory) and
# $COCA_VMLINUX.
set -uo pipefail
HOOK=$(realpath "$1") P=$(realpath "$2") INIT=$(realpath "$3")
TOOL=$(realpath "$4")
TOP=$(cd "$(dirname "$0")/../.." && pwd)
UUID=0c0a7e57-1b2d-4c3e-8f40-5a6b7c8d9e0f
ENV_DOMAINS="coco-e2e coco-e2e-a coco-e2e-b coco-e2e-bad"
TAP_TIMES=1
. "$TOP/tests/lib/tap.sh"
. "$TOP/tests/libvirt/libvirtd-env.sh"
trap env_cleanup EXIT

env_setup
ok $? "libvirtd runs (started by hand, no systemd), the hook installed" ||
    { tap_end; exit 1; }

# wait (bounded) until the guest reported its verdict on the console
wait_verdict() {   # wait_verdict CONSOLE
    for _ in $(seq 600); do
        grep -Eq '^coco-attest Linux guest: (PASS|FAIL)' "$1" 2> /dev/null &&
            return 0
        sleep 0.2
    done
    return 1
}

# the EK certificate PEM the guest printed
ek_pem() {
    sed -n '/^ek certificate 0 (PEM):/,/END CERTIFICATE/p' "$1" | sed 1d
}

# --- a good domain --------------------------------------------------------
domain coco-e2e "$UUID" 4242 > "$W/good.xml"
$V define "$W/good.xml" > /dev/null
ok $? "virsh define with coco-attest metadata and qemu:commandline"
t0=$(date +%s%N)
$V start coco-e2e > "$W/start.out" 2>&1
ok $? "virsh start runs the hook and QEMU with the device"
t1=$(date +%s%N)
echo "# virsh start took $(( (t1 - t0) / 1000000 )) ms"
[ "$(stat -c '%a %U %G' "$STATE/$UUID")" = "750 root libvirt-qemu" ] &&
    [ "$(stat -c '%a %G' "$STATE/$UUID/issuer.key")" = "640 libvirt-qemu" ]
ok $? "the hook provisioned $STATE/<uuid> root:libvirt-qemu 0750/0640"
wait_verdict "$W/coco-e2e.console" &&
    grep -q '^coco-attest Linux guest: PASS' "$W/coco-e2e.console"
ok $? "the guest got identity, EK and AK certificates and verified them"
grep '^FAIL\|^PASS' "$W/coco-e2e.console" | sed 's/^/# /'
grep -q 'identity project-id=e2e-project project-number=4242 zone=test-zone-1 instance-name=coco-e2e instance-id='"$UUID" \
    "$W/coco-e2e.console"
ok $? "the identity the guest saw is exactly the domain's metadata"
ek_pem "$W/coco-e2e.console" > "$W/ek1.pem"
openssl x509 -in "$W/ek1.pem" -noout -text 2> /dev/null |
    grep -q "e2e-project.*test-zone-1.*coco-e2e"
ok $? "the EK certificate carries the metadata's claims"
q=$($V qemu-monitor-command coco-e2e '{"execute":"query-coco-attest"}')
grep -q '"negotiated":true' <<< "$q" && grep -q '"offered-features":13' <<< "$q"
ok $? "query-coco-attest through virsh qemu-monitor-command shows the device"
$V destroy coco-e2e > /dev/null
[ "$(ls "$STATE/$UUID")" = ek ] && [ -n "$(ls "$STATE/$UUID/ek")" ]
ok $? "virsh destroy: release end left only the EK state (written by QEMU)"

# --- a second start: the same EK certificate ---------------------------------
domain coco-e2e "$UUID" 4242 coca.reboot > "$W/good2.xml"
$V define "$W/good2.xml" > /dev/null
: > "$W/coco-e2e.console"
$V start coco-e2e > /dev/null 2>&1 && wait_verdict "$W/coco-e2e.console" &&
    grep -q '^coco-attest Linux guest: PASS' "$W/coco-e2e.console"
ok $? "second start of the same domain"
ek_pem "$W/coco-e2e.console" > "$W/ek2.pem"
[ -s "$W/ek2.pem" ] && cmp -s "$W/ek1.pem" "$W/ek2.pem"
ok $? "the second start returns the same EK certificate"
$V destroy coco-e2e > /dev/null

# --- two domains at once: distinct issuing keys ------------------------------
U2=2c0a7e57-1b2d-4c3e-8f40-5a6b7c8d9e0f
U3=3c0a7e57-1b2d-4c3e-8f40-5a6b7c8d9e0f
domain coco-e2e-a "$U2" 1 > "$W/a.xml"
domain coco-e2e-b "$U3" 2 > "$W/b.xml"
$V define "$W/a.xml" > /dev/null && $V define "$W/b.xml" > /dev/null
$V start coco-e2e-a > /dev/null 2>&1 & pa=$!
$V start coco-e2e-b > /dev/null 2>&1 & pb=$!
wait $pa && wait $pb
ok $? "two domains start concurrently"
! cmp -s "$STATE/$U2/issuer.key" "$STATE/$U3/issuer.key" &&
    ! cmp -s "$STATE/$U2/issuer.crt" "$STATE/$U3/issuer.crt" &&
    grep -q 'instance-name=coco-e2e-a' "$STATE/$U2/identity.conf" &&
    grep -q 'instance-name=coco-e2e-b' "$STATE/$U3/identity.conf"
ok $? "they get distinct issuing keys and certificates"
$V destroy coco-e2e-a > /dev/null 2>&1
$V destroy coco-e2e-b > /dev/null 2>&1

# --- refusals: virsh start fails with the hook's reason, nothing left ----------
refused() {   # refused WHAT MESSAGE XML-FILE
    local out u
    u=$(sed -n 's|.*<uuid>\(.*\)</uuid>.*|\1|p' "$3")
    $V define "$3" > /dev/null 2>&1
    out=$($V start coco-e2e-bad 2>&1)
    if [ $? -ne 0 ] && grep -qF -- "$2" <<< "$out" &&
       [ "$($V domstate coco-e2e-bad 2>/dev/null)" = "shut off" ] &&
       [ ! -e "$STATE/$u" ]; then
        ok 0 "$1"
    else
        echo "# $out"
        ok 1 "$1"
    fi
}
BADU=1c0a7e57-1b2d-4c3e-8f40-5a6b7c8d9e0f
domain coco-e2e-bad "$BADU" "12x" > "$W/bad.xml"
refused "bad metadata (malformed number): refused with the reason" \
    "decimal number" "$W/bad.xml"
domain coco-e2e-bad "$BADU" 1 "" "$(printf 'z%.0s' $(seq 200))" \
    > "$W/bad2.xml"
refused "bad metadata (oversized zone): refused" "zone must be" \
    "$W/bad2.xml"
sed "s|<coca:zone>|<coca:profile gce='maybe'/><coca:zone>|" "$W/bad.xml" |
    sed "s|number='12x'|number='1'|" > "$W/bad3.xml"
refused "bad metadata (unknown profile value): refused" "yes or no" \
    "$W/bad3.xml"
sed "s|<coca:zone>test-zone-1</coca:zone>||" "$W/bad3.xml" |
    sed "s|<coca:profile gce='maybe'/>||" > "$W/bad4.xml"
refused "bad metadata (missing zone): refused" "zone must be" "$W/bad4.xml"
# dumpxml | edit | define of the first domain: its own UUID and
# metadata, the first domain's instance directory
domain coco-e2e-bad "$BADU" 1 | sed "s|$STATE/$BADU|$STATE/$UUID|" \
    > "$W/copied.xml"
refused "a command line copied from another domain: refused" \
    "copied from another domain" "$W/copied.xml"
domain coco-e2e-bad "$BADU" 1 > "$W/ok-meta.xml"
mv "$W/ca/ca.key" "$W/ca/ca.key.away"
refused "an unreadable CA key: refused, named" "ca.key" "$W/ok-meta.xml"
mv "$W/ca/ca.key.away" "$W/ca/ca.key"

# a full disk under the state directory: a 64 KiB tmpfs, nearly filled
if mount -t tmpfs -o size=64k,mode=755 tmpfs "$STATE" 2> /dev/null; then
    head -c 57344 /dev/zero > "$STATE/filler"
    refused "a full state disk: refused with the system's reason" \
        "No space left on device" "$W/ok-meta.xml"
    [ "$(ls -A "$STATE")" = filler ]
    ok $? "a full state disk: nothing half-written left behind"
    umount "$STATE"
else
    skip "a full state disk: refused (cannot mount a tmpfs here)"
    skip "a full state disk: nothing left behind"
fi

tap_end
