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
n=0
failed=0
started_daemons=0

ok() {
    n=$((n + 1))
    if [ "$1" = 0 ]; then
        echo "ok $n - $2"
    else
        echo "not ok $n - $2"
        failed=$((failed + 1))
    fi
}

cleanup() {
    for d in coco-e2e coco-e2e-bad; do
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
    rm -rf "$W"
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

domain() {   # domain NAME UUID PROJECT-NUMBER
    cat <<XML
<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>$1</name>
  <uuid>$2</uuid>
  <metadata>
    <coca:instance xmlns:coca='https://coco-attest.invalid/xmlns/domain/1'>
      <coca:project id='e2e-project' number='$3'/>
      <coca:zone>test-zone-1</coca:zone>
    </coca:instance>
  </metadata>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>$W/vmlinux</kernel>
    <initrd>$W/initramfs.cpio</initrd>
    <cmdline>console=ttyS0 panic=-1 quiet memmap=1M\$0x7000000 coca.mem=0x7000000 coca.ca</cmdline>
  </os>
  <on_reboot>destroy</on_reboot>
  <devices>
    <emulator>$W/qemu/qemu-system-x86_64</emulator>
    <serial type='file'><source path='$W/$1.console'/></serial>
    <console type='file'><source path='$W/$1.console'/></console>
  </devices>
  <qemu:commandline>
    <qemu:arg value='-object'/>
    <qemu:arg value='coco-attest-ca,id=ca0,dir=$STATE/$2'/>
    <qemu:arg value='-device'/>
    <qemu:arg value='coco-attest,ca=ca0'/>
    <qemu:arg value='-device'/>
    <qemu:arg value='isa-debug-exit,iobase=0xf4,iosize=4'/>
  </qemu:commandline>
</domain>
XML
}

# --- a good domain --------------------------------------------------------
domain coco-e2e "$UUID" 4242 > "$W/good.xml"
$V define "$W/good.xml" > /dev/null
ok $? "virsh define with coco-attest metadata and qemu:commandline"
t0=$(date +%s.%N)
$V start coco-e2e > "$W/start.out" 2>&1
ok $? "virsh start runs the hook and QEMU with the device"
[ "$(stat -c '%a %U %G' "$STATE/$UUID")" = "750 root libvirt-qemu" ] &&
    [ "$(stat -c '%a %G' "$STATE/$UUID/issuer.key")" = "640 libvirt-qemu" ]
ok $? "the hook provisioned $STATE/<uuid> root:libvirt-qemu 0750/0640"
# the guest finishes and leaves through isa-debug-exit
for _ in $(seq 600); do
    [ "$($V domstate coco-e2e 2>/dev/null)" = "shut off" ] && break
    sleep 0.2
done
echo "# domain ran for $(echo "$(date +%s.%N) - $t0" | bc 2>/dev/null || echo '?') s"
grep -q '^coco-attest Linux guest: PASS' "$W/coco-e2e.console"
ok $? "the guest got identity, EK and AK certificates and verified them"
grep -q 'identity project-id=e2e-project project-number=4242 zone=test-zone-1 instance-name=coco-e2e' \
    "$W/coco-e2e.console"
ok $? "the identity the guest saw is the domain's metadata"
grep '^FAIL\|^PASS' "$W/coco-e2e.console" | sed 's/^/# /'
[ "$(ls "$STATE/$UUID")" = ek ] && [ -n "$(ls "$STATE/$UUID/ek")" ]
ok $? "release end left only the EK state, which QEMU wrote as libvirt-qemu"

# --- bad metadata blocks the start ------------------------------------------
domain coco-e2e-bad 1c0a7e57-1b2d-4c3e-8f40-5a6b7c8d9e0f "12x" \
    > "$W/bad.xml"
$V define "$W/bad.xml" > /dev/null 2>&1
out=$($V start coco-e2e-bad 2>&1)
[ $? -ne 0 ] && grep -q 'coco-attest: .*decimal number' <<< "$out"
ok $? "bad metadata: virsh start fails with the hook's reason"
[ "$($V domstate coco-e2e-bad 2>/dev/null)" = "shut off" ]
ok $? "and the domain stays shut off"

echo "1..$n"
echo "# $((n - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
