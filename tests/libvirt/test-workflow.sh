#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The operator's workflow from docs/libvirt.md, run exactly as the docs
# give it (the block after "<!-- workflow -->"), then the documented
# removal (after "<!-- workflow-remove -->"), against a real libvirtd:
# install under /usr/local and /etc, reload the daemon, a guest image,
# define, add the device, start, read the guest's console.  Prints TAP.
#
# It installs into the real system, so it runs only where that is
# wanted: CI (a fresh machine) or COCA_TEST_INSTALL=1.  Needs root.
set -uo pipefail
TOP=$(cd "$(dirname "$0")/../.." && pwd)
TAP_TIMES=1
. "$TOP/tests/lib/tap.sh"
V="virsh -q -c qemu:///system"
DOC=$TOP/docs/libvirt.md
LINK=/etc/libvirt/hooks/qemu.d/50-coco-attest
CONSOLE=/var/log/libvirt/qemu/coco-vm1-serial.log
T=$(mktemp -d)
started=0

if [ "${CI:-}" != true ] && [ -z "${COCA_TEST_INSTALL:-}" ]; then
    skip "the documented workflow (it installs into /usr/local and /etc: runs under CI=true or COCA_TEST_INSTALL=1)"
    tap_end
    exit 0
fi

block() {   # block MARKER: the fenced block after <!-- MARKER -->
    sed -n "/^<!-- $1 -->\$/,/^\`\`\`\$/p" "$DOC" | sed '1,2d;$d'
}
had_link=0
[ -e "$LINK" ] && had_link=1
cleanup() {
    $V destroy coco-vm1 > /dev/null 2>&1
    $V undefine coco-vm1 > /dev/null 2>&1
    # leave the system's hooks as they were: a second qemu.d hook would
    # see every other test's domains
    [ "$had_link" = 1 ] || rm -f "$LINK"
    if [ "$started" = 1 ]; then
        kill "$(cat /run/libvirtd.pid)" "$(cat /run/virtlogd.pid)" \
            2> /dev/null
        for _ in $(seq 300); do
            pgrep -x libvirtd > /dev/null || pgrep -x virtlogd > /dev/null ||
                break
            sleep 0.1
        done
    else
        pkill -HUP -x libvirtd
        pkill -HUP -x virtqemud
    fi
    rm -rf "$T"
}
trap cleanup EXIT

block workflow > "$T/workflow.sh"
block workflow-remove > "$T/remove.sh"
[ -s "$T/workflow.sh" ] && [ -s "$T/remove.sh" ]
ok $? "docs/libvirt.md has the workflow and the removal blocks" ||
    { tap_end; exit 1; }

# a daemon, as a host has one (no systemd here: started by hand); one
# that an earlier test stopped may still hold its pid file for a while
if ! $V version > /dev/null 2>&1; then
    for _ in $(seq 300); do
        pgrep -x libvirtd > /dev/null || break
        sleep 0.1
    done
    # a virtlogd left running (it outlives a killed test) is reused
    pgrep -x virtlogd > /dev/null || virtlogd -d
    libvirtd -d && started=1
    for _ in $(seq 100); do
        $V version > /dev/null 2>&1 && break
        sleep 0.1
    done
fi
$V version > /dev/null 2>&1
ok $? "a libvirt daemon runs"
$V destroy coco-vm1 > /dev/null 2>&1
$V undefine coco-vm1 > /dev/null 2>&1
rm -f "$CONSOLE"

(cd "$TOP" && bash -e "$T/workflow.sh") > "$T/out" 2>&1
rc=$?
sed 's/^/# /' "$T/out" | grep -v '^# \[coco-attest\]' | tail -n 30
ok $rc "the documented workflow runs as pasted, to the end"
uuid=$($V domuuid coco-vm1 2> /dev/null)
grep -q '^coco-attest Linux guest: PASS' "$T/out"
ok $? "the guest got its identity, EK and AK certificates and verified them"
grep -q "^identity project-id=my-project project-number=123456789 zone=europe-west4-a instance-name=coco-vm1 instance-id=$uuid" \
    "$T/out"
ok $? "its identity is the example's metadata and the UUID libvirt chose"
$V dumpxml coco-vm1 | grep -q '<emulator>/usr/local/bin/qemu-system-x86_64</emulator>' &&
    [ "$(stat -c '%a %U %G' "/var/lib/coco-attest/$uuid")" = \
      "750 root libvirt-qemu" ] &&
    pgrep -f '^/usr/local/bin/qemu-system-x86_64 .*coco-vm1' > /dev/null
ok $? "it runs the installed QEMU, with the hook's instance directory"

(cd "$TOP" && bash -e "$T/remove.sh") > "$T/rm.out" 2>&1 &&
    ! $V dominfo coco-vm1 > /dev/null 2>&1 &&
    [ ! -e "/var/lib/coco-attest/$uuid" ]
ok $? "the documented removal leaves no domain and no instance directory"

tap_end
