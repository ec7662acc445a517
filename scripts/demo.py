#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
#
# coco-attest main job: boot a Linux guest (Debian's cloud kernel, PVH)
# on the project's QEMU with -device coco-attest, let the in-guest tool
# coco-attest-guest probe, negotiate and exchange objects over both
# channels, obtain its platform identity and certificates (with
# --instance-dir) and a secret from a Key Broker Service (with --kbs: the
# project's test KBS, started here on loopback), then show what the guest
# saw and what QEMU reports through QMP.  A machine-readable copy goes to
# build/demo/result.json.

import argparse
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT = os.path.join(TOP, "build", "project", "guest-protocol")


class QMP:
    def __init__(self, path, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("QEMU's QMP socket did not appear")
                time.sleep(0.05)
        self.f = self.s.makefile("rw", buffering=1)
        json.loads(self.f.readline())
        self.execute("qmp_capabilities")

    def execute(self, cmd, **args):
        self.f.write(json.dumps({"execute": cmd, "arguments": args}) + "\n")
        while True:
            line = self.f.readline()
            if not line:
                raise RuntimeError(f"QMP closed during {cmd}")
            r = json.loads(line)
            if "return" in r:
                return r["return"]
            if "error" in r:
                raise RuntimeError(f"{cmd}: {r['error']['desc']}")


KBS_RESOURCE = "default/demo/secret"
KBS_PROTOCOL = "0.4.0"


def start_kbs(tmp, out_dir):
    """The test KBS on loopback, holding a fresh secret."""
    secret = os.path.join(tmp, "kbs-secret")
    with open(secret, "w") as f:
        f.write("demo-secret-" + os.urandom(16).hex())
    port_file = os.path.join(tmp, "kbs.port")
    log = os.path.join(out_dir, "kbs-traffic.log")
    if os.path.exists(log):
        os.unlink(log)
    proc = subprocess.Popen([sys.executable,
                             os.path.join(TOP, "tests/kbs/kbs-server.py"),
                             "--port-file", port_file, "--log", log,
                             "--resource", f"{KBS_RESOURCE}={secret}"])
    for _ in range(100):
        if os.path.exists(port_file):
            break
        if proc.poll() is not None:
            raise RuntimeError("the test KBS did not start")
        time.sleep(0.1)
    with open(port_file) as f:
        port = int(f.read())
    return {"proc": proc, "url": f"http://127.0.0.1:{port}",
            "secret": secret, "log": log}


def check_kbs(kbs, console, result):
    """Did the guest get the KBS's secret, and did the host never see it?"""
    with open(kbs["secret"], "rb") as f:
        secret = f.read()
    g = result.get("guest", {}).get("kbs-secret", {})
    seen = False
    for path in (console, kbs["log"]):
        with open(path, "rb") as f:
            seen = seen or secret in f.read()
    result["kbs"] = {
        "url": kbs["url"], "resource": KBS_RESOURCE,
        "guest-sha256": g.get("sha256"), "guest-bytes": g.get("bytes"),
        "match": g.get("sha256") == hashlib.sha256(secret).hexdigest(),
        "host-saw-secret": seen,
    }


def parse_guest(console, out_dir):
    """What the guest printed, as data; certificates saved as PEM files."""
    out = {"steps": [], "echo": [], "certificates": {}, "files": []}
    pem, pem_name = None, None
    for line in console.splitlines():
        line = line.strip()
        m = re.match(r"(\S+) certificate (\d+) \(PEM\):$", line)
        if m:
            pem_name = f"{m.group(1)}-{m.group(2)}.pem"
            continue
        if line == "-----BEGIN CERTIFICATE-----" and pem_name:
            pem = [line]
            continue
        if pem is not None:
            pem.append(line)
            if line == "-----END CERTIFICATE-----":
                path = os.path.join(out_dir, pem_name)
                with open(path, "w") as f:
                    f.write("\n".join(pem) + "\n")
                out["files"].append(path)
                pem, pem_name = None, None
            continue
        m = re.match(r"(\S+) certificate: (.*)$", line)
        if m:
            out["certificates"][m.group(1)] = m.group(2)
            continue
        if line.startswith("identity "):
            out["identity"] = dict(kv.split("=", 1)
                                   for kv in line.split()[1:])
            continue
        m = re.match(r"(PASS|FAIL): (.*)", line)
        if m:
            out["steps"].append({"result": m.group(1), "step": m.group(2)})
        elif line.startswith("device "):
            out["device"] = dict(kv.split("=", 1) for kv in line.split()[1:])
        elif line.startswith("negotiated "):
            out["negotiated"] = dict(kv.split("=", 1)
                                     for kv in line.split()[1:])
        elif line.startswith("echo ok "):
            out["echo"].append(dict(kv.split("=", 1)
                                    for kv in line.split()[2:]))
        elif line.startswith("kbs secret sha256="):
            m = re.match(r"kbs secret sha256=([0-9a-f]{64}) \((\d+) bytes",
                         line)
            if m:
                out["kbs-secret"] = {"sha256": m.group(1),
                                     "bytes": int(m.group(2))}
        elif re.match(r"kbs: (auth|attest|resource) ", line):
            out.setdefault("kbs", []).append(line[5:])
        elif line.startswith("coco-attest Linux guest: P") or \
                line.startswith("coco-attest Linux guest: F"):
            out["verdict"] = line.split(": ", 1)[1]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--qemu", default=os.path.join(TOP, "build",
                                                   "qemu-system-x86_64"))
    ap.add_argument("--vmlinux", required=True)
    ap.add_argument("--machine", default="q35")
    ap.add_argument("--device", default="coco-attest,id=coca0",
                    help="the -device argument")
    ap.add_argument("--out", default=os.path.join(TOP, "build", "demo"))
    ap.add_argument("--instance-dir",
                    help="provisioned instance: adds -object coco-attest-ca")
    ap.add_argument("--kbs", action="store_true",
                    help="start the test KBS with a fresh secret and add "
                         "-object coco-attest-kbs")
    args = ap.parse_args()

    os.makedirs(args.out, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="coco-demo-")
    initrd = os.path.join(tmp, "initramfs.cpio")
    console = os.path.join(args.out, "console.log")
    qmp_path = os.path.join(tmp, "qmp.sock")
    root = []
    objects, device, extra = [], args.device, ""
    if args.instance_dir:
        root = [os.path.join(args.instance_dir, "root.crt")]
        objects = ["-object",
                   f"coco-attest-ca,id=ca0,dir={args.instance_dir}"]
        device += ",ca=ca0"
        extra = " coca.ca"
    kbs = start_kbs(tmp, args.out) if args.kbs else None
    if kbs:
        objects += ["-object", f"coco-attest-kbs,id=kbs0,url={kbs['url']},allow-http=on"]
        device += ",kbs=kbs0"
        extra += f" coca.kbs={KBS_RESOURCE}"
    subprocess.run([os.path.join(TOP, "tests/guest/mk-initramfs.sh"), initrd,
                    os.path.join(PROJECT, "linux-test-init"),
                    os.path.join(PROJECT, "coco-attest-guest")] + root,
                   check=True)
    argv = [args.qemu, "-M", args.machine, "-m", "256M", "-nodefaults",
            "-display", "none", "-no-reboot",
            "-serial", f"file:{console}",
            "-qmp", f"unix:{qmp_path},server=on,wait=off",
            *objects, "-device", device,
            "-kernel", args.vmlinux, "-initrd", initrd,
            "-append", "console=ttyS0 panic=-1 quiet memmap=1M$0x7000000 "
                       "coca.mem=0x7000000 coca.hold" + extra]
    print("booting:", " ".join(argv), flush=True)
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    result = {"qemu": argv}
    try:
        qmp = QMP(qmp_path)
        text = ""
        while "coco-attest Linux guest: P" not in text and \
                "coco-attest Linux guest: F" not in text:
            if proc.poll() is not None:
                raise RuntimeError("QEMU exited before the guest finished")
            if time.monotonic() - start > 120:
                raise RuntimeError("the guest did not finish in 120 s")
            time.sleep(0.2)
            with open(console, errors="replace") as f:
                text = f.read()
        result["boot-to-verdict-s"] = round(time.monotonic() - start, 2)
        v = qmp.execute("query-version")["qemu"]
        result["qemu-version"] = f"{v['major']}.{v['minor']}.{v['micro']}"
        result["guest"] = parse_guest(text, args.out)
        result["query-coco-attest"] = qmp.execute("query-coco-attest")
        qmp.execute("quit")
    finally:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        if kbs:
            kbs["proc"].terminate()
            kbs["proc"].wait(timeout=10)
            check_kbs(kbs, console, result)
        shutil.rmtree(tmp, ignore_errors=True)

    with open(os.path.join(args.out, "result.json"), "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")

    g = result["guest"]
    d, n = g.get("device", {}), g.get("negotiated", {})
    q = result["query-coco-attest"][0] if result["query-coco-attest"] else {}
    print()
    print(f"QEMU {result['qemu-version']} with -device {args.device}: "
          f"Linux guest finished in {result['boot-to-verdict-s']} s")
    print(f"  device (guest view)     iobase {d.get('iobase')}, "
          f"irq {d.get('irq')}, transport {d.get('transport')}")
    print(f"  negotiated              version {n.get('version')}, "
          f"offered {n.get('offered')}, accepted {n.get('negotiated')}")
    print(f"  limits                  max object {n.get('max-object')} B, "
          f"inline {n.get('inline-max')} B")
    for e in g["echo"]:
        print(f"  echo                    {e['bytes']:>6} B over "
              f"{e['channel']:<14} crc {e['crc']}")
    if "identity" in g:
        i = g["identity"]
        print(f"  platform identity       project {i['project-id']} "
              f"({i['project-number']}), zone {i['zone']}")
        print(f"                          instance {i['instance-name']} "
              f"id {i['instance-id']}")
        print(f"                          extension OID {i['oid']}")
    for name, desc in g["certificates"].items():
        print(f"  {name + ' certificate':<24}{desc}")
    for s in g["steps"]:
        print(f"  {s['result']:<5} {s['step']}")
    if args.instance_dir:
        for f in ("root.crt", "chain.pem", "identity.conf"):
            shutil.copy(os.path.join(args.instance_dir, f), args.out)
        ek = os.path.join(args.instance_dir, "ek", "ek-01c0000a.crt")
        if os.path.exists(ek):
            subprocess.run(["openssl", "x509", "-inform", "DER", "-in", ek,
                            "-out", os.path.join(args.out, "ek.pem")],
                           check=True)
            g["files"].append(os.path.join(args.out, "ek.pem"))
        # the host checks what the guest got, with standard tools
        for leaf in ("ek.pem", "ak-0.pem", "ak-tpm-0.pem"):
            path = os.path.join(args.out, leaf)
            if not os.path.exists(path):
                continue
            v = subprocess.run(["openssl", "verify", "-CAfile",
                                os.path.join(args.out, "root.crt"),
                                "-untrusted",
                                os.path.join(args.out, "chain.pem"), path],
                               capture_output=True, text=True)
            ok_v = v.returncode == 0
            result.setdefault("host-verify", {})[leaf] = ok_v
            print(f"  openssl verify (host)   {leaf}: "
                  f"{'OK' if ok_v else 'FAILED ' + v.stderr.strip()}")
        print(f"  artifacts               {args.out}/: root.crt, chain.pem, "
              f"identity.conf, " +
              ", ".join(os.path.basename(f) for f in g["files"]))
    if kbs:
        k = result["kbs"]
        print(f"  KBS (Trustee {KBS_PROTOCOL})     {kbs['url']}: "
              + ", ".join(g.get("kbs", [])))
        print(f"  KBS secret (guest)      {k.get('guest-bytes')} bytes, "
              f"sha256 {k.get('guest-sha256', 'none')[:16]}...: "
              f"{'the KBS resource ' + KBS_RESOURCE if k['match'] else 'MISMATCH'}")
        print(f"  host saw the secret     "
              f"{'no (only its JWE was forwarded)' if not k['host-saw-secret'] else 'YES'}")
    if q:
        print(f"  QMP query-coco-attest   negotiated={q['negotiated']} "
              f"version={q['version']} features=0x{q['negotiated-features']:x}"
              f" channel={q['channel']} requests={q['requests']} "
              f"errors={q['errors']} kbs-requests={q['kbs-requests']}")
    print(f"  guest verdict           {g.get('verdict', 'none')}")
    print(f"  console log             {console}")
    print(f"  machine-readable copy   {os.path.join(args.out, 'result.json')}")
    with open(os.path.join(args.out, "result.json"), "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    ok = g.get("verdict", "").startswith("PASS") and \
        all(s["result"] == "PASS" for s in g["steps"]) and \
        all(result.get("host-verify", {}).values()) and \
        (not kbs or (result["kbs"]["match"] and
                     not result["kbs"]["host-saw-secret"]))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
