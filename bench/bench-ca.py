#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Identity benchmark (not a test):
#  - certificate issuance through -device coco-attest (CERTIFY_AK from a
#    PKCS#10 CSR, the device's full path: copy-in, thread pool, GnuTLS
#    certificate building and signing, write-back), next to the raw
#    signing rate of the same per-instance issuing key measured in the
#    same run;
#  - provisioning one instance directory (coco-attest-provision) next to
#    swtpm_setup --create-ek-cert, libvirt's per-VM EK manufacturing.
# The "guest" is QEMU's qtest protocol (port I/O and guest memory), so
# no guest CPU emulation is in the measurement; constants come from the
# ABI header.  Figures are merged into build/bench/results.json.

import json
import os
import re
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QEMU = os.path.join(TOP, "build", "qemu-system-x86_64")
PROVISION = os.path.join(TOP, "build", "project", "libvirt-hooks",
                         "coco-attest-provision")
OUT = os.path.join(TOP, "build", "bench")


def abi():
    text = open(os.path.join(TOP, "guest-protocol/include/coco-attest/abi.h"),
                encoding="utf-8").read().replace("\\\n", " ")
    a = {}
    for line in text.splitlines():
        m = re.match(r"#define\s+(COCA_\w+)\s+(.+?)\s*(/\*.*)?$", line)
        if m and "(" not in m.group(1):
            e = re.sub(r"\b(0x[0-9a-fA-F]+|\d+)(ull|u)\b", r"\1", m.group(2))
            try:
                a[m.group(1)] = eval(e, {}, dict(a))
            except (NameError, SyntaxError):
                pass
    return a


A = abi()


class QTest:
    def __init__(self, sock):
        self.f = sock.makefile("rw", buffering=1)

    def cmd(self, line):
        self.f.write(line + "\n")
        while True:
            r = self.f.readline().strip()
            if r.startswith("OK"):
                return r[3:]
            if not r.startswith("IRQ"):
                raise RuntimeError(f"{line}: {r}")

    def outl(self, port, v):
        self.cmd(f"outl 0x{port:x} 0x{v:x}")

    def write(self, addr, data):
        self.cmd(f"write 0x{addr:x} {len(data)} 0x{data.hex()}")

    def readl(self, addr):
        return int(self.cmd(f"readl 0x{addr:x}"), 16)


def provision(ca, inst, extra=()):
    subprocess.run([PROVISION, "provision", "--ca-dir", ca, "--instance-dir",
                    inst, "--project-id", "bench", "--project-number", "1",
                    "--zone", "z", "--instance-name", "vm",
                    "--instance-id", "1", *extra],
                   check=True, stdout=subprocess.DEVNULL)


def issuance(tmp, n):
    ca, inst = os.path.join(tmp, "ca"), os.path.join(tmp, "inst")
    provision(ca, inst)
    lsock = socket.socket(socket.AF_UNIX)
    qpath = os.path.join(tmp, "qtest.sock")
    lsock.bind(qpath)
    lsock.listen(1)
    proc = subprocess.Popen(
        [QEMU, "-M", "q35", "-m", "128M", "-nodefaults", "-display", "none",
         "-accel", "qtest", "-qtest", f"unix:{qpath}", "-qtest-log",
         "/dev/null", "-object",
         f"coco-attest-ca,id=ca0,dir={inst},rate=100000000,burst=100000000",
         "-device", "coco-attest,ca=ca0"], stdin=subprocess.DEVNULL)
    try:
        qt = QTest(lsock.accept()[0])
        base, page = A["COCA_DEFAULT_IOBASE"], 0x100000
        qt.outl(base + A["COCA_REG_PAGE_LO"], page)
        qt.outl(base + A["COCA_REG_PAGE_HI"], 0)
        qt.outl(base + A["COCA_REG_CMD"], A["COCA_CMD_REGISTER_PAGE"])

        def ring(op, payload, seq):
            hdr = struct.pack("<IHHIIIIIIQII", A["COCA_MSG_MAGIC"],
                              A["COCA_MSG_VERSION"], op, 0, seq,
                              A["COCA_STATUS_NONE"], len(payload), 0, 0, 0,
                              0, 0)
            qt.write(page, hdr + payload)
            qt.outl(base + A["COCA_REG_CMD"], A["COCA_CMD_RING"])
            while True:
                st = qt.readl(page + 16)
                if st != A["COCA_STATUS_PENDING"]:
                    return st

        neg = struct.pack("<HHIQ", 1, 1, 0, A["COCA_FEAT_ALL"])
        assert ring(A["COCA_OP_NEGOTIATE"], neg, 1) == 0
        key = ec.generate_private_key(ec.SECP256R1())
        csr = subprocess.run(
            ["openssl", "req", "-new", "-key", "/dev/stdin", "-subj",
             "/CN=ak", "-outform", "DER"],
            input=key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()),
            capture_output=True, check=True).stdout
        req = struct.pack("<II", A["COCA_AK_FORMAT_CSR"], 0) + csr
        assert ring(A["COCA_OP_CERTIFY_AK"], req, 2) == 0
        t = time.perf_counter()
        for i in range(n):
            assert ring(A["COCA_OP_CERTIFY_AK"], req, 3 + i) == 0
        issued = n / (time.perf_counter() - t)
        # the qtest round trips alone, for scale: ECHO of the same size
        echo = struct.pack("<II", 0, 0) + bytes(len(csr))
        t = time.perf_counter()
        for i in range(n):
            assert ring(A["COCA_OP_ECHO"], echo, 10 ** 6 + i) == 0
        echo_rate = n / (time.perf_counter() - t)
    finally:
        proc.terminate()
        proc.wait()
    # raw signing with the same issuing key, same run
    ikey = serialization.load_pem_private_key(
        open(os.path.join(inst, "issuer.key"), "rb").read(), None)
    tbs = os.urandom(600)
    t = time.perf_counter()
    for _ in range(n):
        ikey.sign(tbs, ec.ECDSA(hashes.SHA256()))
    raw = n / (time.perf_counter() - t)
    return issued, raw, echo_rate


def provisioning(tmp, n):
    ca = os.path.join(tmp, "ca")
    times = []
    for i in range(n):
        t = time.perf_counter()
        provision(ca, os.path.join(tmp, f"p{i}"))
        times.append(time.perf_counter() - t)
    os.makedirs(os.path.join(tmp, "lib"))
    sw = []
    if shutil.which("swtpm_setup"):
        for i in range(3):
            st = os.path.join(tmp, f"swtpm{i}")
            os.makedirs(st)
            t = time.perf_counter()
            subprocess.run(["swtpm_setup", "--tpm2", "--tpmstate", st,
                            "--create-ek-cert", "--lock-nvram", "--overwrite",
                            "--config", "/etc/swtpm_setup.conf"],
                           check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            sw.append(time.perf_counter() - t)
    lib = subprocess.run([os.path.join(os.path.dirname(PROVISION),
                                       "bench-provision"), ca,
                          os.path.join(tmp, "lib"), str(n)], check=True,
                         capture_output=True,
                         text=True).stdout
    # the libvirt hook, prepare then release, as libvirt runs it
    hook = os.path.join(os.path.dirname(PROVISION), "coco-attest-hook")
    conf = os.path.join(tmp, "hook.conf")
    with open(conf, "w") as f:
        f.write(f"[ca]\ndir={ca}\n[hook]\nstate-dir={tmp}/hook\n"
                "group=root\n")
    uuid = "6d1f0a52-8b1c-4a77-9d0e-3f0b6e8c2a11"
    xml = (f"<domain><name>vm</name><uuid>{uuid}</uuid><metadata>"
           "<coca:instance xmlns:coca='https://coco-attest.invalid/xmlns/"
           "domain/1'><coca:project id='p' number='1'/><coca:zone>z"
           "</coca:zone></coca:instance></metadata></domain>").encode()
    env = dict(os.environ, COCO_ATTEST_HOOK_CONF=conf)
    hook_t = []
    for _ in range(n):
        t = time.perf_counter()
        for op, sub in (("prepare", "begin"), ("release", "end")):
            subprocess.run([hook, "vm", op, sub, "-"], input=xml, env=env,
                           check=True)
        hook_t.append(time.perf_counter() - t)
    return (statistics.median(times), float(lib) / 1000,
            statistics.median(sw) if sw else None, statistics.median(hook_t))


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    os.makedirs(OUT, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="coca-bench-")
    try:
        subprocess.run([PROVISION, "init-ca", "--ca-dir",
                        os.path.join(tmp, "ca")], check=True,
                       stdout=subprocess.DEVNULL)
        issued, raw, echo_rate = issuance(tmp, n)
        prov, prov_lib, swtpm, hook = provisioning(tmp, 20)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res = {
        "issuance-per-s": round(issued, 1),
        "raw-sign-per-s": round(raw, 1),
        "issuance-vs-raw-sign": round(issued / raw, 3),
        "qtest-echo-round-trips-per-s": round(echo_rate, 1),
        "provision-ms": round(prov * 1000, 1),
        "provision-in-process-ms": round(prov_lib * 1000, 1),
        "hook-prepare-release-ms": round(hook * 1000, 1),
        "hook-speedup-vs-swtpm": round(swtpm / hook, 1) if swtpm else None,
        "swtpm-setup-ms": round(swtpm * 1000, 1) if swtpm else None,
        "provision-speedup-vs-swtpm": round(swtpm / prov, 1) if swtpm else None,
        "provision-in-process-speedup-vs-swtpm":
            round(swtpm / prov_lib, 1) if swtpm else None,
        "notes": "issuance: CERTIFY_AK (P-256 CSR, P-256 issuing key) through "
                 "the device over the qtest protocol, one request at a time "
                 "(one core); raw: ECDSA P-256/SHA-256 signatures with the "
                 "same issuing key (OpenSSL via python3-cryptography)",
    }
    path = os.path.join(OUT, "results.json")
    data = {}
    if os.path.exists(path):
        with open(path) as f:
            data = json.load(f)
    data["ca"] = res
    with open(path, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    print("coco-attest identity benchmark")
    print(f"  certificates issued through the device  {issued:8.0f} /s")
    print(f"  raw ECDSA P-256 signing, same key       {raw:8.0f} /s")
    print(f"  ratio (target >= 0.5)                   "
          f"{res['issuance-vs-raw-sign']:8.3f}")
    print(f"  (qtest round trips of a same-size ECHO  {echo_rate:8.0f} /s)")
    print(f"  provisioning one instance (CLI)         {prov * 1000:8.1f} ms")
    print(f"  provisioning one instance (in-process)  "
          f"{prov_lib * 1000:8.1f} ms")
    print(f"  libvirt hook, prepare + release         {hook * 1000:8.1f} ms")
    if swtpm:
        print(f"  swtpm_setup --create-ek-cert            "
              f"{swtpm * 1000:8.1f} ms")
        print(f"  speed-up CLI / in-process (>= 100x)     "
              f"{swtpm / prov:8.1f}x / {swtpm / prov_lib:.1f}x")
        print(f"  hook vs swtpm_setup (target >= 100x)    "
              f"{swtpm / hook:8.1f}x")
    print(f"JSON: {path}")


if __name__ == "__main__":
    sys.exit(main())
