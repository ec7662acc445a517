# SPDX-License-Identifier: GPL-2.0-or-later
#
# A real libvirtd for the end-to-end test and the libvirt benchmark
# (sourced): a QEMU, kernel and initramfs libvirt-qemu can read under $W,
# a CA, the hook installed before the daemon starts (or a SIGHUP to a
# daemon left running), and domain XML with coco-attest metadata.
#
# Needs root, libvirt, the build, $COCA_VMLINUX and, before
# sourcing: HOOK P INIT TOOL TOP (absolute paths) and ENV_DOMAINS (the
# domain names to clean up).  KEEP=1 keeps $W for inspection.

V="virsh -q -c qemu:///system"
W=/var/lib/coco-attest-e2e       # world-traversable: QEMU runs as libvirt-qemu
STATE=$W/state
HOOK_LINK=/etc/libvirt/hooks/qemu.d/50-coco-attest-e2e
started_daemons=0

env_cleanup() {
    local d p pids= alive
    for d in $ENV_DOMAINS; do
        $V destroy "$d" > /dev/null 2>&1
        $V undefine "$d" > /dev/null 2>&1
    done
    if [ "$started_daemons" = 1 ]; then
        [ -f /run/libvirtd.pid ] && pids="$pids $(cat /run/libvirtd.pid)"
        [ -f /run/virtlogd.pid ] && pids="$pids $(cat /run/virtlogd.pid)"
        # by PID, never pkill; and wait, so that the next run starts clean
        for p in $pids; do
            kill "$p" 2> /dev/null
        done
        for _ in $(seq 300); do
            alive=0
            for p in $pids; do
                kill -0 "$p" 2> /dev/null && alive=1
            done
            [ "$alive" = 0 ] && break
            sleep 0.1
        done
    fi
    rm -f "$HOOK_LINK"
    mountpoint -q "$STATE" && umount "$STATE"
    [ -n "${KEEP:-}" ] || rm -rf "$W"
}

# install (or, with "remove", take away) the hook and make libvirtd see it
env_hook() {
    if [ "${1:-}" = remove ]; then
        rm -f "$HOOK_LINK"
    else
        mkdir -p "$(dirname "$HOOK_LINK")"
        # libvirt passes the daemon's environment: point at our config
        cat > "$HOOK_LINK" <<SH
#!/bin/sh
COCO_ATTEST_HOOK_CONF=$W/hook.conf exec $HOOK "\$@"
SH
        chmod 755 "$HOOK_LINK"
    fi
    if [ -f /run/libvirtd.pid ] && kill -0 "$(cat /run/libvirtd.pid)" 2> /dev/null; then
        kill -HUP "$(cat /run/libvirtd.pid)"
        sleep 1
    fi
}

env_setup() {
    rm -rf "$W"
    mkdir -p "$STATE"
    chmod 755 "$W"
    # QEMU as `install` lays it out (no qemu-bundle/: the firmware comes
    # from Debian's packages), where libvirt-qemu can execute it
    DESTDIR=$W/root COCO_NO_CA=1 bash "$TOP/scripts/install.sh" \
        > /dev/null || return 1
    cp "$COCA_VMLINUX" "$W/vmlinux"
    "$P" init-ca --ca-dir "$W/ca" > /dev/null
    "$TOP/tests/guest/mk-initramfs.sh" "$W/initramfs.cpio" "$INIT" "$TOOL" \
        "$W/ca/ca.crt"
    chmod 644 "$W/vmlinux" "$W/initramfs.cpio"
    cat > "$W/hook.conf" <<CONF
[ca]
dir=$W/ca
[hook]
state-dir=$STATE
CONF
    env_hook
    if ! $V version > /dev/null 2>&1; then
        # one left running (a daemon outlives a killed test) is reused
        pgrep -x virtlogd > /dev/null || virtlogd -d || return 1
        libvirtd -d || return 1
        started_daemons=1
        for _ in $(seq 100); do
            $V version > /dev/null 2>&1 && break
            sleep 0.1
        done
    fi
    $V version > /dev/null 2>&1
}

# domain XML: with coco-attest metadata and device, or (PROJECT-NUMBER
# "none") a plain domain with neither
domain() {   # domain NAME UUID PROJECT-NUMBER [EXTRA-CMDLINE [ZONE]]
    local meta= cmdline=
    if [ "$3" != none ]; then
        meta="  <metadata>
    <coca:instance xmlns:coca='https://coco-attest.invalid/xmlns/domain/1'>
      <coca:project id='e2e-project' number='$3'/>
      <coca:zone>${5:-test-zone-1}</coca:zone>
    </coca:instance>
  </metadata>"
        cmdline=$("$P" print-xml --uuid "$2" --state-dir "$STATE" |
            sed "s|  </qemu:commandline>|    <qemu:arg value='-device'/>\n    <qemu:arg value='isa-debug-exit,iobase=0xf4,iosize=4'/>\n  </qemu:commandline>|")
    fi
    cat <<XML
<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>$1</name>
  <uuid>$2</uuid>
$meta
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
    <emulator>$W/root/usr/local/bin/qemu-system-x86_64</emulator>
    <serial type='file'><source path='$W/$1.console'/></serial>
    <console type='file'><source path='$W/$1.console'/></console>
  </devices>
$cmdline
</domain>
XML
}
