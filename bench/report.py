#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
#
# One report of every benchmark (not a test): reads
# build/bench/results.json, as bench/run-bench.sh, bench/bench-ca.py,
# bench/bench-kbs.sh and bench/bench-libvirt.sh left it, prints one table
# of the figures with their targets, and plots throughput against object
# size per channel to build/bench/throughput.png.

import json
import os
import sys

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(TOP, "build", "bench")


def fmt(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, float):
        v = f"{v:.2f}" if abs(v) < 100 else f"{v:.0f}"
    return f"{v}{unit}"


def rows_of(data):
    t = data.get("transport", {})
    by_size = {r["bytes"]: r for r in t.get("rows", [])}
    small, big = by_size.get(16, {}), by_size.get(max(by_size, default=0), {})
    e = t.get("exits-per-request", {})
    ca, kbs = data.get("ca", {}), data.get("kbs", {})
    lv = data.get("libvirt", {})
    return [
        ("transport", "16 B request time, fw_cfg DMA / page doorbell",
         fmt(small.get("page-raw-vs-fwcfg-dma"), "x"), ""),
        ("transport", "16 B request time, fw_cfg DMA / page + library",
         fmt(small.get("page-vs-fwcfg-dma"), "x"), ""),
        ("transport", "4 KiB throughput, page channel vs fw_cfg DMA",
         fmt(by_size.get(4096, {}).get("page-raw-throughput-vs-fwcfg-dma"),
             "x"), ">= 1x"),
        ("transport",
         f"{big.get('bytes', '-')} B throughput, page channel vs fw_cfg DMA",
         fmt(big.get("page-raw-throughput-vs-fwcfg-dma"), "x"), ">= 1x"),
        ("transport", "VM exits per request: page / port / fw_cfg DMA",
         f"{fmt(e.get('page-echo'))} / {fmt(e.get('port-echo'))} / "
         f"{fmt(e.get('fwcfg-dma-read'))}", "page: 1"),
        ("identity", "certificate issuance vs raw signing",
         fmt(ca.get("issuance-vs-raw-sign"), "x"), ">= 0.5x"),
        ("identity", "provisioning (in process) vs swtpm_setup",
         fmt(ca.get("provision-in-process-speedup-vs-swtpm"), "x"),
         ">= 100x"),
        ("libvirt", "hook prepare+release vs swtpm_setup",
         fmt(ca.get("hook-speedup-vs-swtpm"), "x"), ">= 100x"),
        ("libvirt", "virsh start: hook overhead, coco-attest domain",
         fmt(lv.get("hook-overhead-coco-attest-ms"), " ms"), ""),
        ("libvirt", "virsh define: coco-attest / plain domain",
         f"{fmt(lv.get('virsh-define-coco-attest-ms'), ' ms')} / "
         f"{fmt(lv.get('virsh-define-plain-domain-ms'), ' ms')}", "~1x"),
        ("kbs", "auth+attest+resource: device vs curl",
         fmt(kbs.get("device-vs-direct"), "x"), "<= 1.10x"),
        ("kbs", "vCPU progress, 2 s KBS delay vs idle",
         fmt(kbs.get("vcpu-progress-slow-kbs-vs-idle"), "x"), "~1x"),
    ]


def plot(data, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(python3-matplotlib missing: no plot)")
        return False
    rows = data.get("transport", {}).get("rows", [])
    if not rows:
        return False
    # bytes moved per 1000 TSC cycles; ECHO moves its bytes both ways
    series = [("page-raw", "page channel (doorbell)", 2),
              ("page", "page channel + guest library", 2),
              ("port", "port channel + guest library", 2),
              ("fwcfg-dma", "fw_cfg DMA (read)", 1),
              ("fwcfg-io", "fw_cfg port I/O (read)", 1)]
    fig, ax = plt.subplots(figsize=(8, 5))
    for key, label, ways in series:
        xs, ys = [], []
        for r in rows:
            c = r.get(key + "-cycles")
            if c:
                xs.append(r["bytes"])
                ys.append(ways * r["bytes"] * 1000 / c)
        if xs:
            ax.plot(xs, ys, marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("object size (bytes)")
    ax.set_ylabel("bytes moved per 1000 TSC cycles (TCG)")
    ax.set_title("coco-attest: throughput by object size and channel")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main():
    path = os.path.join(OUT, "results.json")
    try:
        data = json.load(open(path))
    except (OSError, ValueError) as e:
        sys.exit(f"no benchmark results ({e}): run ./coco-attest.sh bench")
    rows = rows_of(data)
    w = max(len(r[1]) for r in rows)
    print(f"{'area':<10} {'figure':<{w}} {'value':>16}  target")
    for area, what, value, target in rows:
        print(f"{area:<10} {what:<{w}} {value:>16}  {target}")
    png = os.path.join(OUT, "throughput.png")
    if plot(data, png):
        print(f"plot: {png}")
    print(f"JSON: {path}")


if __name__ == "__main__":
    main()
