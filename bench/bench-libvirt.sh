#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# libvirt benchmark (not a test): `virsh define` time of a plain and a
# coco-attest domain (the latter carries <qemu:commandline>; with a QEMU
# built without KVM, libvirt re-probed it at every define), and
# `virsh start` time of the same TCG domain
#   - without the coco-attest hook installed (a plain domain),
#   - with the hook installed, for a plain domain (what every other VM on
#     the host pays: the hook runs and ignores it),
#   - with the hook and coco-attest metadata and device (the hook provisions
#     the instance at prepare; QEMU loads it),
# each started and destroyed N times in one run against a real libvirtd
# (see tests/libvirt/libvirtd-env.sh).  `virsh start` returns once QEMU is
# running, so guest boot is not in the figure.  Figures are merged into
# build/bench/results.json.  Needs root; run after ./coco-attest.sh build.
#
#   bench/bench-libvirt.sh [N]
set -uo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
N=${1:-7}
B=$TOP/build/project
HOOK=$B/libvirt-hooks/coco-attest-hook P=$B/libvirt-hooks/coco-attest-provision
INIT=$B/guest-protocol/linux-test-init TOOL=$B/guest-protocol/coco-attest-guest
for f in "$HOOK" "$P" "$INIT" "$TOOL" "$TOP/build/qemu/qemu-system-x86_64"; do
    [ -x "$f" ] || { echo "missing $f: run ./coco-attest.sh build" >&2; exit 1; }
done
COCA_QEMU_BUILD=$(realpath "$TOP/build/qemu")
COCA_VMLINUX=$(bash "$TOP/scripts/fetch-kernel.sh") || exit 1
export COCA_QEMU_BUILD COCA_VMLINUX
ENV_DOMAINS="coco-bench-plain coco-bench-coca"
. "$TOP/tests/libvirt/libvirtd-env.sh"
trap env_cleanup EXIT
env_setup || { echo "libvirtd did not start" >&2; exit 1; }

domain coco-bench-plain 5c0a7e57-1b2d-4c3e-8f40-5a6b7c8d9e0f none \
    > "$W/plain.xml"
domain coco-bench-coca 6c0a7e57-1b2d-4c3e-8f40-5a6b7c8d9e0f 7 \
    > "$W/coca.xml"
# the first define makes libvirt probe the emulator once: not measured
$V define "$W/plain.xml" > /dev/null && $V define "$W/coca.xml" > /dev/null ||
    exit 1

# median `virsh define` time in ms over N defines of an existing domain
define_ms() {   # define_ms XML
    local i t0 t1 all=()
    for i in $(seq "$N"); do
        t0=$(date +%s%N)
        $V define "$1" > /dev/null || { echo "virsh define $1 failed" >&2; return 1; }
        t1=$(date +%s%N)
        all+=($(( (t1 - t0) / 1000 )))
    done
    printf '%s\n' "${all[@]}" | sort -n |
        awk '{ v[NR] = $1 } END { printf "%.1f", v[int((NR + 1) / 2)] / 1000 }'
}
def_plain=$(define_ms "$W/plain.xml") || exit 1
def_coca=$(define_ms "$W/coca.xml") || exit 1

# median `virsh start` time in ms over N start/destroy cycles
start_ms() {   # start_ms DOMAIN
    local i t0 t1 all=()
    for i in $(seq "$N"); do
        t0=$(date +%s%N)
        $V start "$1" > /dev/null || { echo "virsh start $1 failed" >&2; return 1; }
        t1=$(date +%s%N)
        $V destroy "$1" > /dev/null
        all+=($(( (t1 - t0) / 1000 )))
    done
    printf '%s\n' "${all[@]}" | sort -n |
        awk '{ v[NR] = $1 } END { printf "%.1f", v[int((NR + 1) / 2)] / 1000 }'
}

env_hook remove
without=$(start_ms coco-bench-plain) || exit 1
env_hook
with_plain=$(start_ms coco-bench-plain) || exit 1
with_coca=$(start_ms coco-bench-coca) || exit 1

mkdir -p "$TOP/build/bench"
python3 - "$TOP/build/bench/results.json" "$N" "$without" "$with_plain" \
    "$with_coca" "$def_plain" "$def_coca" <<'PY'
import json, os, sys
path, n, without, plain, coca, dplain, dcoca = sys.argv[1], int(
    sys.argv[2]), *map(float, sys.argv[3:])
data = json.load(open(path)) if os.path.exists(path) else {}
data["libvirt"] = {
    "virsh-start-without-hook-ms": without,
    "virsh-start-with-hook-plain-domain-ms": plain,
    "virsh-start-with-hook-coco-attest-ms": coca,
    "hook-overhead-plain-domain-ms": round(plain - without, 1),
    "hook-overhead-coco-attest-ms": round(coca - without, 1),
    "virsh-define-plain-domain-ms": dplain,
    "virsh-define-coco-attest-ms": dcoca,
    "notes": f"median of {n} virsh start/destroy cycles, TCG q35, real "
             "libvirtd; virsh start returns when QEMU runs",
}
with open(path, "w") as f:
    json.dump(data, f, indent=2)
    f.write("\n")
print("coco-attest libvirt benchmark (median virsh start, ms)")
print(f"  without the hook, plain domain           {without:8.1f}")
print(f"  with the hook, plain domain              {plain:8.1f}"
      f"  (+{plain - without:.1f})")
print(f"  with the hook, coco-attest domain        {coca:8.1f}"
      f"  (+{coca - without:.1f})")
print("median virsh define of an existing domain, ms")
print(f"  plain domain                             {dplain:8.1f}")
print(f"  coco-attest domain                       {dcoca:8.1f}")
PY
