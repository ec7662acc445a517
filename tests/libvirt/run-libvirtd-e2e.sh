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
V="virsh -q -c qemu:///system"
W=/var/lib/coco-attest-e2e       # world-traversable: QEMU runs as libvirt-qemu
STATE=$W/state
UUID=0c0a7e57-1b2d-4c3e-8f40-5a6b7c8d9e0f
started_daemons=0
. "$TOP/tests/lib/tap.sh"

cleanup() {
    for d in coco-e2e coco-e2e-a coco-e2e-b coco-e2e-bad; do
        $V destroy "$d" > /dev/null 2>&1
        $V undefine "$d" > /dev/null 2>&1
    done
    if [ "$started_daemons" = 1 ]; then
        local pids=
        [ -f /run/libvirtd.pid ] && pids="$pids $(cat /run/libvirtd.pid)"
        [ -f /run/virtlogd.pid ] && pids="$pids $(cat /run/virtlogd.pid)"
        # by PID, never pkill; and wait, so that the next run starts clean
        for p in $pids; do
            kill "$p" 2> /dev/null
        done
        for _ in $(seq 50); do
            alive=0
            for p in $pids; do
                kill -0 "$p" 2> /dev/null && alive=1
            done
            [ "$alive" = 0 ] && break
            sleep 0.1
        done
    fi
    rm -f /etc/libvirt/hooks/qemu.d/50-coco-attest-e2e
    [ -n "${KEEP:-}" ] || rm -rf "$W"
}
trap cleanup EXIT

# --- a QEMU, kernel and initramfs libvirt-qemu can read ----------------
rm -rf "$W"
mkdir -p "$W/qemu" "$STATE"
chmod 755 "$W" "$W/qemu"
cp "$COCA_QEMU_BUILD/qemu-system-x86_64" "$W/qemu/"
# the binary finds its firmware through qemu-bundle/, as in the build tree
cp -a "$COCA_QEMU_BUILD/qemu-bundle" "$W/qemu/"
cp "$COCA_VMLINUX" "$W/vmlinux"
"$P" init-ca --ca-dir "$W/ca" > /dev/null
"$TOP/tests/guest/mk-initramfs.sh" "$W/initramfs.cpio" "$INIT" "$TOOL" \
    "$W/ca/ca.crt"
chmod 644 "$W/vmlinux" "$W/initramfs.cpio"

# --- the hook, installed before the daemon starts -----------------------
mkdir -p /etc/libvirt/hooks/qemu.d /etc/coco-attest
cat > "$W/hook.conf" <<CONF
[ca]
dir=$W/ca
[hook]
state-dir=$STATE
CONF
# libvirt passes the daemon's environment: point the hook at our config
cat > /etc/libvirt/hooks/qemu.d/50-coco-attest-e2e <<SH
#!/bin/sh
COCO_ATTEST_HOOK_CONF=$W/hook.conf exec $HOOK "\$@"
SH
chmod 755 /etc/libvirt/hooks/qemu.d/50-coco-attest-e2e

if $V version > /dev/null 2>&1; then
    kill -HUP "$(cat /run/libvirtd.pid)"      # make it see the hook
    sleep 1
else
    virtlogd -d && libvirtd -d || { echo "not ok 1 - start libvirtd"; exit 1; }
    started_daemons=1
    for _ in $(seq 100); do $V version > /dev/null 2>&1 && break; sleep 0.1; done
fi
$V version > /dev/null 2>&1
ok $? "libvirtd runs (started by hand, no systemd)"

domain() {   # domain NAME UUID PROJECT-NUMBER [EXTRA-CMDLINE [ZONE]]
    cat <<XML
<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>$1</name>
  <uuid>$2</uuid>
  <metadata>
    <coca:instance xmlns:coca='https://coco-attest.invalid/xmlns/domain/1'>
      <coca:project id='e2e-project' number='$3'/>
      <coca:zone>${5:-test-zone-1}</coca:zone>
    </coca:instance>
  </metadata>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>$W/vmlinux</kernel>
    <initrd>$W/initramfs.cpio</initrd>
    <cmdline>console=ttyS0 panic=-1 quiet memmap=1M\$0x7000000 coca.mem=0x7000000 coca.ca coca.hold ${4:-}</cmdline>
  </os>
  <on_reboot>destroy</on_reboot>
  <devices>
    <emulator>$W/qemu/qemu-system-x86_64</emulator>
    <serial type='file'><source path='$W/$1.console'/></serial>
    <console type='file'><source path='$W/$1.console'/></console>
  </devices>
$("$P" print-xml --uuid "$2" --state-dir "$STATE" |
  sed "s|  </qemu:commandline>|    <qemu:arg value='-device'/>\n    <qemu:arg value='isa-debug-exit,iobase=0xf4,iosize=4'/>\n  </qemu:commandline>|")
</domain>
XML
}

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
domain coco-e2e-bad "$BADU" 1 > "$W/ok-meta.xml"
mv "$W/ca/ca.key" "$W/ca/ca.key.away"
refused "an unreadable CA key: refused, named" "ca.key" "$W/ok-meta.xml"
mv "$W/ca/ca.key.away" "$W/ca/ca.key"

tap_end
