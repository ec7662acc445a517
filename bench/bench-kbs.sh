#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# KBS forwarding benchmark (not a test), one run against one test KBS
# (tests/kbs/kbs-env.sh, loopback HTTP):
#  - the auth -> attest -> resource exchange through -device coco-attest,
#    timed by the Linux guest around each forward (its own key generation
#    and decryption are not in the figure), next to the same three HTTP
#    requests made with curl from the host (curl's time_total);
#  - guest vCPU progress while the KBS takes 2 s to answer, relative to
#    the same work with no request pending.
# Figures are merged into build/bench/results.json.  Run after
# ./coco-attest.sh build.
#
#   bench/bench-kbs.sh [RUNS]
set -uo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${1:-5}
B=$TOP/build/project/guest-protocol
for f in "$B/linux-test-init" "$B/coco-attest-guest" \
         "$TOP/build/qemu-system-x86_64"; do
    [ -x "$f" ] || { echo "missing $f: run ./coco-attest.sh build" >&2; exit 1; }
done
VMLINUX=$(bash "$TOP/scripts/fetch-kernel.sh") || exit 1
. "$TOP/tests/kbs/kbs-env.sh"
OUT=$TOP/build/bench
tmp=$(mktemp -d)
trap 'kbs_env_stop; rm -rf "$tmp"' EXIT
kbs_env_start "$tmp/kbs" || { echo "the test KBS did not start" >&2; exit 1; }
"$TOP/tests/guest/mk-initramfs.sh" "$tmp/initramfs.cpio" \
    "$B/linux-test-init" "$B/coco-attest-guest"

guest() {   # guest EXTRA-CMDLINE: one boot, prints the console
    timeout 150 "$TOP/build/qemu-system-x86_64" -M q35 -m 256M -nodefaults \
        -display none -no-reboot -serial "file:$tmp/console.log" \
        -device isa-debug-exit,iobase=0xf4,iosize=4 \
        -object "coco-attest-kbs,id=kbs0,url=$COCA_KBS_URL,allow-http=on" \
        -device coco-attest,kbs=kbs0 \
        -kernel "$VMLINUX" -initrd "$tmp/initramfs.cpio" \
        -append "console=ttyS0 panic=-1 quiet memmap=1M\$0x7000000 coca.mem=0x7000000 coca.kbs=default/test/secret $1" \
        < /dev/null > /dev/null 2>&1
    cat "$tmp/console.log"
}

: > "$tmp/device.txt"
for i in $(seq "$RUNS"); do
    guest "" | grep -o 'kbs: forward_us .*' >> "$tmp/device.txt"
done
printf '%s' '{"delay": 2, "paths": ["/kbs/v0/attest"]}' > "$COCA_KBS_CONTROL"
guest "coca.kbs.progress" | grep -o 'kbs: progress .*' > "$tmp/progress.txt"
: > "$COCA_KBS_CONTROL"

python3 - "$COCA_KBS_URL" "$RUNS" "$tmp" "$OUT/results.json" <<'PY'
import base64, hashlib, json, os, re, statistics, subprocess, sys
from cryptography.hazmat.primitives.asymmetric import ec

url, runs, tmp, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]


def curl(args):
    r = subprocess.run(["curl", "-sS", "-o", f"{tmp}/body", "-w",
                        "%{http_code} %{time_total}", "-b", f"{tmp}/jar",
                        "-c", f"{tmp}/jar"] + args,
                       check=True, capture_output=True, text=True)
    code, t = r.stdout.split()
    assert code == "200", (args, code)
    return float(t) * 1e6, open(f"{tmp}/body", "rb").read()


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def direct():
    """The same three requests the guest makes, with curl."""
    if os.path.exists(f"{tmp}/jar"):
        os.unlink(f"{tmp}/jar")
    post = ["-H", "Content-Type: application/json", "--data-binary"]
    t1, body = curl(post + ['{"version":"0.4.0","tee":"sample",'
                            '"extra-params":""}', url + "/kbs/v0/auth"])
    nonce = json.loads(body)["nonce"]
    pub = ec.generate_private_key(ec.SECP256R1()).public_key().public_numbers()
    jwk = {"alg": "ECDH-ES+A256KW", "crv": "P-256", "kty": "EC",
           "x": b64u(pub.x.to_bytes(32, "big")),
           "y": b64u(pub.y.to_bytes(32, "big"))}
    canon = json.dumps({"additional-evidence": "", "nonce": nonce,
                        "tee-pubkey": jwk}, sort_keys=True,
                       separators=(",", ":"))
    rd = base64.b64encode(hashlib.sha384(canon.encode()).digest()).decode()
    att = json.dumps({"runtime-data": {"nonce": nonce, "tee-pubkey": jwk},
                      "tee-evidence": {"primary_evidence": {
                          "svn": "1", "report_data": rd},
                          "additional_evidence": ""}})
    t2, _ = curl(post + [att, url + "/kbs/v0/attest"])
    t3, _ = curl([url + "/kbs/v0/resource/default/test/secret"])
    return t1 + t2 + t3


dev = []
for line in open(f"{tmp}/device.txt"):
    dev.append(float(re.search(r"total=(\d+)", line).group(1)))
if not dev:
    sys.exit("the guest reported no exchange")
host = [direct() for _ in range(runs)]
prog = dict(re.findall(r"(\w+)=([0-9.]+)", open(f"{tmp}/progress.txt").read()))
d, h = statistics.median(dev), statistics.median(host)
res = {
    "exchange-through-device-ms": round(d / 1000, 2),
    "exchange-curl-direct-ms": round(h / 1000, 2),
    "device-vs-direct": round(d / h, 2),
    "vcpu-progress-slow-kbs-vs-idle": float(prog.get("ratio", 0)),
    "slow-kbs-wait-ms": float(prog.get("waited_ms", 0)),
    "notes": f"median of {len(dev)} guest runs and {runs} curl runs, "
             "loopback HTTP test KBS; device time measured in the TCG "
             "guest around each forward; progress = SHA-256 units/s while "
             "a 2 s attest is pending / units/s with nothing pending",
}
data = json.load(open(out)) if os.path.exists(out) else {}
data["kbs"] = res
os.makedirs(os.path.dirname(out), exist_ok=True)
with open(out, "w") as f:
    json.dump(data, f, indent=2)
    f.write("\n")
print("coco-attest KBS forwarding benchmark")
print(f"  auth+attest+resource through the device  {d / 1000:8.2f} ms")
print(f"  the same with curl from the host         {h / 1000:8.2f} ms")
print(f"  ratio (target <= 1.10)                   {d / h:8.2f}")
print(f"  vCPU progress, 2 s KBS delay vs idle     "
      f"{float(prog.get('ratio', 0)):8.2f}")
PY
