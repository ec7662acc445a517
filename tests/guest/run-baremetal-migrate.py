#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
#
# The guest library's RETRY path across live migrations: boot the
# bare-metal guest's "migrate" scenario with a 3 s echo delay, and twice,
# while its request is pending (first on the page channel, then on the
# port channel), migrate the VM to a file with QMP and start a new QEMU
# from that file.  The destination answers the pending request RETRY; the
# guest must resend it, finish, and exit with status 33 and PASS.
#
#   run-baremetal-migrate.py ELF     ($COCA_QEMU: the QEMU binary)

import json
import os
import socket
import subprocess
import sys
import tempfile
import time


class QMP:
    def __init__(self, path):
        for _ in range(200):
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(path)
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("no QMP socket " + path)
        self.f = self.sock.makefile("rw")
        self.f.readline()
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        self.f.write(json.dumps({"execute": name, "arguments": args}) + "\n")
        self.f.flush()
        while True:
            msg = json.loads(self.f.readline())
            if "return" in msg:
                return msg["return"]
            if "error" in msg:
                raise RuntimeError(f"{name}: {msg['error']['desc']}")


def start(qemu, elf, tmp, n, incoming=None):
    argv = [qemu, "-M", "q35", "-m", "128M", "-nodefaults",
            "-display", "none", "-no-reboot",
            "-serial", f"file:{tmp}/console-{n}.log",
            "-qmp", f"unix:{tmp}/qmp-{n}.sock,server=on,wait=off",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=4",
            "-device", "coco-attest,x-echo-delay-ms=3000",
            "-kernel", elf, "-append", "migrate"]
    if incoming:
        argv += ["-incoming", f"file:{incoming}"]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    return proc, QMP(f"{tmp}/qmp-{n}.sock")


def wait_pending(qmp, channel, deadline):
    while time.monotonic() < deadline:
        info = qmp.cmd("query-coco-attest")[0]
        if info["pending"] and info["channel"] == channel:
            return info
        time.sleep(0.02)
    raise RuntimeError(f"no request pending on the {channel} channel")


def main():
    qemu, elf = os.environ["COCA_QEMU"], sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="coca-mig-")
    deadline = time.monotonic() + 120
    procs = []
    try:
        proc, qmp = start(qemu, elf, tmp, 0)
        procs.append(proc)
        for n, channel in enumerate(("page", "port"), start=1):
            info = wait_pending(qmp, channel, deadline)
            print(f"# migration {n}: request {info['requests']} pending on "
                  f"the {channel} channel", flush=True)
            state = f"{tmp}/state-{n}"
            qmp.cmd("migrate", uri=f"file:{state}")
            while qmp.cmd("query-migrate").get("status") not in \
                    ("completed", "failed"):
                time.sleep(0.02)
            assert qmp.cmd("query-migrate")["status"] == "completed"
            qmp.cmd("quit")
            proc.wait(timeout=30)
            proc, qmp = start(qemu, elf, tmp, n, incoming=state)
            procs.append(proc)
        rc = proc.wait(timeout=max(1, deadline - time.monotonic()))
        log = "".join(open(f"{tmp}/console-{i}.log", errors="replace").read()
                      for i in range(3))
        print(log, end="")
        if rc != 33 or "coco-attest guest: PASS" not in log:
            print(f"migrated bare-metal guest failed (QEMU exit {rc})")
            return 1
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    sys.exit(main())
