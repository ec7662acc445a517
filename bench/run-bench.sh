#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Transport benchmark (not a test): in one bare-metal guest and one run,
# time ECHO round trips of 16 B to 64 KiB over the page and port
# channels (TSC, best of 8), read same-size blobs through fw_cfg DMA and
# fw_cfg port I/O, and count the I/O-port accesses (VM exits) one
# request of each kind takes, from QEMU's memory_region_ops_* trace
# events.  Prints a table and writes build/bench/results.json.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
"$TOP/coco-attest.sh" build >&2
OUT=$TOP/build/bench
mkdir -p "$OUT"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fwcfg=()
for n in 16 256 1024 4096 16384 65528; do
    head -c "$n" /dev/urandom > "$tmp/blob-$n"
    fwcfg+=(-fw_cfg "name=opt/coco-bench-$n,file=$tmp/blob-$n")
done
timeout 120 "$TOP/build/qemu-system-x86_64" -M q35 -m 128M -nodefaults \
    -display none -no-reboot -serial "file:$OUT/console.log" \
    -device isa-debug-exit,iobase=0xf4,iosize=4 -device coco-attest \
    "${fwcfg[@]}" \
    -trace memory_region_ops_read -trace memory_region_ops_write \
    -D "$tmp/trace.log" \
    -kernel "$TOP/build/project/guest-protocol/coco-attest-baremetal.elf" \
    -append bench < /dev/null || rc=$?
if [ "${rc:-0}" -ne 33 ]; then
    cat "$OUT/console.log" >&2
    echo "benchmark guest failed (exit ${rc:-0})" >&2
    exit 1
fi

python3 - "$OUT/console.log" "$tmp/trace.log" "$OUT/results.json" <<'PY'
import json, re, sys

console, trace, out = sys.argv[1:]
cycles = {}
for line in open(console, errors="replace"):
    m = re.match(r"bench (\S+) (\d+) (\d+)", line.strip())
    if m:
        cycles[(m.group(1), int(m.group(2)))] = int(m.group(3))

# I/O accesses between the guest's port-0x80 markers
exits, seg = {}, None
names = {0xc0: "page", 0xc1: "port", 0xc2: "fwcfg-select", 0xc3: "fwcfg-dma"}
for line in open(trace, errors="replace"):
    m = re.search(r"memory_region_ops_(read|write) .*addr (0x[0-9a-f]+) "
                  r"value (0x[0-9a-f]+) size \d+ name '([^']*)'", line)
    if not m:
        continue
    addr, value, name = int(m.group(2), 16), int(m.group(3), 16), m.group(4)
    if name != "coco-attest-io" and addr == 0x80 and m.group(1) == "write":
        seg = names.get(value)
        continue
    if seg:
        exits[seg] = exits.get(seg, 0) + 1

sizes = sorted({s for (_, s) in cycles})
rows = []
for s in sizes:
    r = {"bytes": s}
    for k in ("page-raw", "page", "port", "fwcfg-dma", "fwcfg-io"):
        r[k + "-cycles"] = cycles.get((k, s))
    dma = r["fwcfg-dma-cycles"]
    for k in ("page-raw", "page", "port", "fwcfg-io"):
        c = r[k + "-cycles"]
        # throughput ratio to fw_cfg DMA: > 1.0 means faster than DMA
        r[k + "-vs-fwcfg-dma"] = round(dma / c, 2) if c and dma else None
    # ECHO moves the bytes both ways, fw_cfg DMA one way
    if r["page-raw-cycles"] and dma:
        r["page-raw-throughput-vs-fwcfg-dma"] = round(
            2 * dma / r["page-raw-cycles"], 2)
    rows.append(r)

transport = {"rows": rows, "exits-per-request": {
    "page-echo": exits.get("page"), "port-echo": exits.get("port"),
    "fwcfg-dma-read": exits.get("fwcfg-dma")},
    "notes": "TSC cycles under TCG, best of 8 (fw_cfg I/O best of 4); "
             "ratios are fw_cfg DMA time / channel time for the same size "
             "(same guest, same run)"}
try:
    result = json.load(open(out))
except (OSError, ValueError):
    result = {}
result["transport"] = transport
with open(out, "w") as f:
    json.dump(result, f, indent=2)
    f.write("\n")

print("coco-attest transport benchmark (bare-metal guest, TCG, one run)")
print("TSC cycles, best of 8; x = fw_cfg DMA time / this (>1.0x is faster)")
cols = [("page-raw", "page doorbell"), ("page", "page+library"),
        ("port", "port+library"), ("fwcfg-dma", "fw_cfg DMA"),
        ("fwcfg-io", "fw_cfg I/O")]
print(f"{'bytes':>6}" + "".join(f" {h:>21}" for _, h in cols))
for r in rows:
    line = f"{r['bytes']:>6}"
    for k, _ in cols:
        v = r.get(k + "-cycles")
        x = r.get(k + "-vs-fwcfg-dma")
        cell = "-" if v is None else (f"{v} ({x}x)" if x is not None
                                       else f"{v}")
        line += f" {cell:>21}"
    print(line)
print("page channel throughput (bytes moved per cycle) vs fw_cfg DMA: " +
      ", ".join(f"{r['bytes']} B {r.get('page-raw-throughput-vs-fwcfg-dma')}x"
                for r in rows))
e = transport["exits-per-request"]
print(f"VM exits per 16 B request: page channel {e['page-echo']}, "
      f"port channel {e['port-echo']}, fw_cfg DMA read {e['fwcfg-dma-read']}")
print("page doorbell = the transport alone (request already in shared "
      "memory);\npage+library adds the guest library's copies and checks; "
      "ECHO moves the bytes both ways, fw_cfg one way.")
print(f"JSON: {out}")
PY
