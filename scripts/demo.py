#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
#
# coco-attest main job (for now): boot the project's QEMU with
# -device coco-attest, play the guest through QEMU's qtest protocol
# (port I/O and guest memory, exactly what a guest driver does), and show
# what the device negotiated, both from the guest side and through QMP.
#
# Until the guest library and test guests land, this is the guest.  The
# constants come from the ABI header itself, so there is one source of
# truth.

import argparse
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ABI_H = os.path.join(TOP, "guest-protocol/include/coco-attest/abi.h")


def load_abi():
    """#define NAME value from abi.h, evaluated in order."""
    abi = {}
    text = open(ABI_H, encoding="utf-8").read().replace("\\\n", " ")
    for line in text.splitlines():
        m = re.match(r"#define\s+(COCA_\w+)\s+(.+?)\s*(/\*.*)?$", line)
        if not m or "(" in m.group(1):
            continue
        expr = m.group(2)
        if expr.startswith('"'):
            abi[m.group(1)] = expr.strip('"')
            continue
        expr = re.sub(r"\b(0x[0-9a-fA-F]+|\d+)(ull|u)\b", r"\1", expr)
        try:
            abi[m.group(1)] = eval(expr, {}, dict(abi))
        except (NameError, SyntaxError):
            pass
    return abi


A = load_abi()
HDR = struct.Struct("<IHHIIIIIIQII")
assert HDR.size == A["COCA_HDR_SIZE"]


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


class QTest:
    """The guest's view of the machine, over QEMU's qtest protocol."""

    def __init__(self, sock):
        self.f = sock.makefile("rw", buffering=1)

    def cmd(self, line):
        self.f.write(line + "\n")
        while True:
            resp = self.f.readline().strip()
            if not resp:
                raise RuntimeError("qtest connection closed")
            if resp.startswith("IRQ"):
                continue
            if not resp.startswith("OK"):
                raise RuntimeError(f"qtest: {line}: {resp}")
            return resp[3:]

    def outl(self, port, val):
        self.cmd(f"outl 0x{port:x} 0x{val:x}")

    def outw(self, port, val):
        self.cmd(f"outw 0x{port:x} 0x{val:x}")

    def inl(self, port):
        return int(self.cmd(f"inl 0x{port:x}"), 16)

    def inb(self, port):
        return int(self.cmd(f"inb 0x{port:x}"), 16)

    def write(self, addr, data):
        if data:
            self.cmd(f"write 0x{addr:x} {len(data)} 0x{data.hex()}")

    def read(self, addr, size):
        return bytes.fromhex(self.cmd(f"read 0x{addr:x} {size}")[2:])

    def clock_step(self, ns):
        self.cmd(f"clock_step {ns}")


class QMP:
    def __init__(self, path):
        for _ in range(100):
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                break
            except OSError:
                time.sleep(0.05)
        self.f = self.s.makefile("rw", buffering=1)
        json.loads(self.f.readline())
        self.execute("qmp_capabilities")

    def execute(self, cmd, **args):
        self.f.write(json.dumps({"execute": cmd, "arguments": args}) + "\n")
        while True:
            r = json.loads(self.f.readline())
            if "return" in r:
                return r["return"]
            if "error" in r:
                raise RuntimeError(f"{cmd}: {r['error']['desc']}")


class Guest:
    PAGE = 0x100000          # 1 MiB: guest RAM on every PC machine
    BUF = 0x200000           # external buffer for large objects

    def __init__(self, qt, base):
        self.qt, self.base, self.seq = qt, base, 0

    def reg(self, off):
        return self.qt.inl(self.base + off)

    def cmd(self, c):
        self.qt.outl(self.base + A["COCA_REG_CMD"], c)
        return self.reg(A["COCA_REG_CMD"])

    def header(self, op, req_len, flags=0, buf=0, buf_len=0):
        self.seq += 1
        return HDR.pack(A["COCA_MSG_MAGIC"], A["COCA_MSG_VERSION"], op,
                        flags, self.seq, A["COCA_STATUS_NONE"], req_len, 0,
                        0, buf, buf_len, 0)

    def check(self, h, op):
        magic, ver, cmd, flags, seq = h[:5]
        if (magic != A["COCA_MSG_MAGIC"] or cmd != op or seq != self.seq or
                not flags & A["COCA_FLAG_RESPONSE"]):
            raise RuntimeError(f"malformed response header {h}")

    def page(self, op, payload, ext=False):
        """One request over the page channel: returns (status, payload)."""
        if ext:
            hdr = self.header(op, len(payload), A["COCA_FLAG_EXT_BUF"],
                              self.BUF, A["COCA_MAX_OBJECT_MIN"])
            self.qt.write(self.BUF, payload)
        else:
            hdr = self.header(op, len(payload))
            self.qt.write(self.PAGE + HDR.size, payload)
        self.qt.write(self.PAGE, hdr)
        res = self.cmd(A["COCA_CMD_RING"])
        if res != A["COCA_RES_OK"]:
            raise RuntimeError(f"doorbell refused: result {res}")
        for _ in range(10000):
            h = HDR.unpack(self.qt.read(self.PAGE, HDR.size))
            if h[5] != A["COCA_STATUS_PENDING"]:
                break
            self.qt.clock_step(10 * 1000 * 1000)
        self.check(h, op)
        status, resp_len = h[5], h[7]
        cap = A["COCA_MAX_OBJECT_MIN"] if ext else A["COCA_INLINE_MAX"]
        if resp_len > cap:
            raise RuntimeError("response larger than the buffer")
        src = self.BUF if ext else self.PAGE + HDR.size
        return status, self.qt.read(src, resp_len) if resp_len else b""

    def port(self, op, payload):
        """One request over the port-only channel."""
        msg = self.header(op, len(payload)) + payload
        msg_padded = msg + b"\0" * (-len(msg) % 4)
        if self.cmd(A["COCA_CMD_PORT_BEGIN"]) != A["COCA_RES_OK"]:
            raise RuntimeError("PORT_BEGIN refused")
        for i in range(0, len(msg_padded), 4):
            self.qt.outl(self.base + A["COCA_REG_DATA"],
                         struct.unpack_from("<I", msg_padded, i)[0])
        self.qt.outl(self.base + A["COCA_REG_CRC"], crc32c(msg))
        res = self.cmd(A["COCA_CMD_PORT_SUBMIT"])
        if res != A["COCA_RES_OK"]:
            raise RuntimeError(f"PORT_SUBMIT refused: result {res}")
        words = [self.reg(A["COCA_REG_DATA"]) for _ in range(HDR.size // 4)]
        raw = struct.pack("<12I", *words)
        h = HDR.unpack(raw)
        self.check(h, op)
        n = h[7] if h[5] == A["COCA_STATUS_OK"] else 0
        if n > A["COCA_MAX_OBJECT_MIN"]:
            raise RuntimeError("response larger than the buffer")
        data = b"".join(struct.pack("<I", self.reg(A["COCA_REG_DATA"]))
                        for _ in range((n + 3) // 4))[:n]
        if self.reg(A["COCA_REG_CRC"]) != crc32c(raw + data):
            raise RuntimeError("response CRC mismatch")
        self.cmd(A["COCA_CMD_ACK"])
        return h[5], data


def fw_cfg_file(qt, name):
    """Read a fw_cfg file through the legacy I/O interface."""
    qt.outw(0x510, 0x19)                        # FW_CFG_FILE_DIR
    count = struct.unpack(">I", bytes(qt.inb(0x511) for _ in range(4)))[0]
    for _ in range(count):
        ent = bytes(qt.inb(0x511) for _ in range(64))
        size, sel = struct.unpack(">IH", ent[:6])
        if ent[8:].split(b"\0")[0].decode() == name:
            qt.outw(0x510, sel)
            return bytes(qt.inb(0x511) for _ in range(size))
    return None


def echo_payload(data, flags=0):
    return struct.pack("<II", flags, 0) + data


def check_echo(status, resp, data, flags=0):
    ok = (status == A["COCA_STATUS_OK"] and
          resp[8:] == data and
          struct.unpack_from("<II", resp) == (flags, crc32c(data)))
    return ok


def feature_names(mask):
    names = [n[len("COCA_FEAT_"):] for n, v in A.items()
             if n.startswith("COCA_FEAT_") and n != "COCA_FEAT_ALL"
             and mask & v]
    return ",".join(names) or "-"


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--qemu", default=os.path.join(TOP, "build",
                                                   "qemu-system-x86_64"))
    ap.add_argument("--machine", default="q35")
    ap.add_argument("--device", default="coco-attest,id=coca0",
                    help="the -device argument")
    ap.add_argument("--out", default=os.path.join(TOP, "build", "demo"))
    args = ap.parse_args()

    os.makedirs(args.out, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="coco-demo-")
    qtest_path = os.path.join(tmp, "qtest.sock")
    qmp_path = os.path.join(tmp, "qmp.sock")
    lsock = socket.socket(socket.AF_UNIX)
    lsock.bind(qtest_path)
    lsock.listen(1)
    lsock.settimeout(30)
    argv = [args.qemu, "-M", args.machine, "-m", "256M", "-nodefaults",
            "-display", "none", "-accel", "qtest",
            "-qtest", f"unix:{qtest_path}", "-qtest-log", "/dev/null",
            "-qmp", f"unix:{qmp_path},server=on,wait=off",
            "-device", args.device + ",x-echo-delay-ms=50"]
    print("booting:", " ".join(argv))
    proc = subprocess.Popen(argv)
    result = {"qemu": argv}
    try:
        conn, _ = lsock.accept()
        qt = QTest(conn)
        qmp = QMP(qmp_path)
        version = qmp.execute("query-version")["qemu"]
        result["qemu-version"] = "%d.%d.%d" % (version["major"],
                                               version["minor"],
                                               version["micro"])

        raw = fw_cfg_file(qt, A["COCA_FW_CFG_FILE"])
        if raw is None:
            raise RuntimeError("fw_cfg file %s missing" %
                               A["COCA_FW_CFG_FILE"])
        sig, iobase, irq, _, tmaj, tmin = struct.unpack("<IHBBHH", raw)
        g = Guest(qt, iobase)
        if g.reg(A["COCA_REG_SIGNATURE"]) != A["COCA_SIGNATURE"]:
            raise RuntimeError("no coco-attest signature at 0x%x" % iobase)
        result["discovery"] = {"fw_cfg-iobase": iobase, "irq": irq,
                               "transport": f"{tmaj}.{tmin}"}

        qt.outl(iobase + A["COCA_REG_PAGE_LO"], g.PAGE)
        qt.outl(iobase + A["COCA_REG_PAGE_HI"], 0)
        if g.cmd(A["COCA_CMD_REGISTER_PAGE"]) != A["COCA_RES_OK"]:
            raise RuntimeError("request page refused")
        req = struct.pack("<HHIQ", A["COCA_PROTO_MIN"], A["COCA_PROTO_MAX"],
                          0, A["COCA_FEAT_ALL"])
        status, resp = g.page(A["COCA_OP_NEGOTIATE"], req)
        if status != A["COCA_STATUS_OK"]:
            raise RuntimeError(f"NEGOTIATE failed: status {status}")
        (proto, pmin, pmax, _, offered, negotiated, max_object, inline_max,
         max_pending, _) = struct.unpack("<HHHHQQIIII", resp[:40])
        result["negotiated"] = {
            "version": proto, "host-versions": f"{pmin}..{pmax}",
            "offered": offered, "negotiated": negotiated,
            "offered-names": feature_names(offered),
            "negotiated-names": feature_names(negotiated),
            "max-object": max_object, "inline-max": inline_max,
            "max-pending": max_pending}

        checks = {}
        data = bytes(range(256)) * 4
        checks["echo-page-1KiB"] = check_echo(
            *g.page(A["COCA_OP_ECHO"], echo_payload(data)), data)
        checks["echo-port-1KiB"] = check_echo(
            *g.port(A["COCA_OP_ECHO"], echo_payload(data)), data)
        big = bytes((i * 7) & 0xFF for i in range(max_object - 8))
        checks["echo-page-64KiB-ext-buf"] = check_echo(
            *g.page(A["COCA_OP_ECHO"], echo_payload(big), ext=True), big)
        checks["echo-async"] = check_echo(
            *g.page(A["COCA_OP_ECHO"],
                    echo_payload(data, A["COCA_ECHO_ASYNC"])),
            data, A["COCA_ECHO_ASYNC"])
        result["checks"] = checks
        result["query-coco-attest"] = qmp.execute("query-coco-attest")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)

    with open(os.path.join(args.out, "result.json"), "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")

    n = result["negotiated"]
    q = result["query-coco-attest"][0]
    print()
    print(f"QEMU {result['qemu-version']} with -device {args.device}")
    print(f"  discovered via fw_cfg   iobase 0x{iobase:x}, irq {irq}, "
          f"transport {tmaj}.{tmin}")
    print(f"  negotiated version      {n['version']} "
          f"(host speaks {n['host-versions']})")
    print(f"  offered features        0x{n['offered']:x} "
          f"({n['offered-names']})")
    print(f"  negotiated features     0x{n['negotiated']:x} "
          f"({n['negotiated-names']})")
    print(f"  limits                  max object {n['max-object']} B, "
          f"inline {n['inline-max']} B, {n['max-pending']} in flight")
    for name, ok in checks.items():
        print(f"  {name:<24}{'ok' if ok else 'FAILED'}")
    print(f"  QMP query-coco-attest   negotiated={q['negotiated']} "
          f"version={q['version']} channel={q['channel']} "
          f"requests={q['requests']} errors={q['errors']}")
    print(f"  machine-readable copy   {os.path.join(args.out, 'result.json')}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
