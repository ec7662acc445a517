#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# KBS forwarding end to end: a Linux guest (Debian's kernel, the test
# /init and coco-attest-guest) runs Trustee's protocol through
# -device coco-attest against the test KBS (tests/kbs/kbs-env.sh) and
# obtains a secret; the host must never see that secret in clear.  Prints
# TAP.
#
#   run-kbs-e2e.sh INIT TOOL
# Needs $COCA_QEMU, $COCA_VMLINUX and the COCA_KBS_* variables that
# kbs_env_start exports.
set -uo pipefail
INIT=$1 TOOL=$2
TOP=$(cd "$(dirname "$0")/../.." && pwd)
. "$TOP/tests/lib/tap.sh"
for v in COCA_QEMU COCA_VMLINUX COCA_KBS_URL COCA_KBS_SECRET; do
    if [ -z "${!v:-}" ]; then
        echo "1..0 # SKIP $v is not set (run the kbs suite)"
        exit 0
    fi
done
tmp=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT
"$TOP/tests/guest/mk-initramfs.sh" "$tmp/initramfs.cpio" "$INIT" "$TOOL"

faults() {   # faults JSON: the test KBS's fault injection
    printf '%s' "$1" > "$COCA_KBS_CONTROL.tmp" &&
        mv "$COCA_KBS_CONTROL.tmp" "$COCA_KBS_CONTROL"
}

# Record every QMP message (events included) until QEMU exits.
qmp_recorder() {   # qmp_recorder SOCKET LOG
    python3 - "$1" "$2" <<'PY' &
import json, socket, sys, time
path, log = sys.argv[1], sys.argv[2]
for _ in range(200):
    try:
        s = socket.socket(socket.AF_UNIX)
        s.connect(path)
        break
    except OSError:
        time.sleep(0.05)
else:
    sys.exit(1)
f = s.makefile("rw")
out = open(log, "w")
out.write(f.readline())
f.write(json.dumps({"execute": "qmp_capabilities"}) + "\n")
f.flush()
for line in f:
    out.write(line)
    out.flush()
PY
}

# boot NAME KBS-PROPS EXTRA-CMDLINE [QEMU ARGS...]: one guest run in
# $tmp/NAME; KBS-PROPS are the coco-attest-kbs properties (url=...)
boot() {
    local name=$1 props=$2 cmdline=$3 d=$tmp/$1 rc
    shift 3
    mkdir -p "$d"
    timeout 150 "$COCA_QEMU" -M q35 -m 256M -nodefaults -display none \
        -no-reboot -serial "file:$d/console.log" \
        -qmp "unix:$d/qmp.sock,server=on,wait=off" \
        -trace "enable=coco_attest*,file=$d/trace.log" \
        -device isa-debug-exit,iobase=0xf4,iosize=4 \
        "$@" \
        -object "coco-attest-kbs,id=kbs0,$props" \
        -device coco-attest,kbs=kbs0 \
        -kernel "$COCA_VMLINUX" -initrd "$tmp/initramfs.cpio" \
        -append "console=ttyS0 panic=-1 quiet memmap=1M\$0x7000000 coca.mem=0x7000000 $cmdline" \
        > "$d/stdout.log" 2> "$d/stderr.log" < /dev/null &
    local qemu=$!
    qmp_recorder "$d/qmp.sock" "$d/qmp.log"
    local rec=$!
    wait "$qemu"
    rc=$?
    wait "$rec" 2> /dev/null
    sed 's/^/# /' "$d/console.log" | grep -E 'kbs|PASS|FAIL' | head -n 30
    [ "$rc" -eq 33 ] && grep -q '^coco-attest Linux guest: PASS' "$d/console.log"
}

secret_line() {   # the guest's report of what it decrypted
    grep -q "kbs secret sha256=$COCA_KBS_SECRET_SHA256" "$tmp/$1/console.log"
}

# nothing the host has seen holds the secret in clear
host_blind() {   # host_blind NAME KBS-LOG
    local d=$tmp/$1 f
    for f in "$d/console.log" "$d/stdout.log" "$d/stderr.log" \
             "$d/trace.log" "$d/qmp.log" "$2"; do
        [ -e "$f" ] || { echo "# missing $f"; return 1; }
        if grep -qF -- "$COCA_KBS_SECRET" "$f"; then
            echo "# the secret is in $f"
            return 1
        fi
    done
}

# the resource the KBS sent was a JWE (and nothing else about it)
jwe_only() {   # jwe_only KBS-LOG
    python3 - "$1" <<'PY'
import json, sys
seen = 0
for line in open(sys.argv[1]):
    rec = json.loads(line)
    if rec.get("path", "").startswith("/kbs/v0/resource/") and \
       rec.get("status") == 200:
        jwe = json.loads(rec["response_body"])
        assert set(jwe) >= {"protected", "encrypted_key", "iv",
                            "ciphertext", "tag"}, jwe.keys()
        seen += 1
sys.exit(0 if seen else 1)
PY
}

faults ""
: > "$COCA_KBS_LOG"
boot http-p256 "url=$COCA_KBS_URL,allow-http=on" "coca.kbs=default/test/secret"
ok $? "HTTP, P-256: the guest completes auth, attest and resource"
secret_line http-p256
ok $? "HTTP, P-256: the guest decrypted the secret the KBS holds"
host_blind http-p256 "$COCA_KBS_LOG"
ok $? "the secret is not in QEMU's output, trace, QMP events or the KBS traffic"
jwe_only "$COCA_KBS_LOG"
ok $? "what crossed the host was the JWE"
grep -q 'coco_attest_kbs_reply.*/kbs/v0/resource/default/test/secret: HTTP 200' \
    "$tmp/http-p256/trace.log"
ok $? "the trace shows the forwarded requests (paths, status, sizes)"

: > "$COCA_KBS_TLS_LOG"
boot https-p521 "url=$COCA_KBS_TLS_URL,tls-creds=kbstls" \
    "coca.kbs=default/test/secret coca.kbs.curve=p521" \
    -object "tls-creds-x509,id=kbstls,dir=$COCA_KBS_TLS_DIR,endpoint=client"
ok $? "HTTPS (tls-creds-x509), P-521: the flow completes"
secret_line https-p521 && host_blind https-p521 "$COCA_KBS_TLS_LOG" &&
    jwe_only "$COCA_KBS_TLS_LOG"
ok $? "HTTPS, P-521: the secret decrypted in the guest, only the JWE on the host"

# a KBS that answers garbage: the guest says so, no crash, no hang
faults '{"garbage": true, "paths": ["/kbs/v0/auth"]}'
boot garbage "url=$COCA_KBS_URL,allow-http=on" \
    "coca.kbs=default/test/secret coca.kbs.expect=non-JSON"
ok $? "a non-JSON answer: the guest reports it and the VM runs on"
faults ""

# vCPU progress while the KBS takes 2 s to answer attest
faults '{"delay": 2, "paths": ["/kbs/v0/attest"]}'
boot progress "url=$COCA_KBS_URL,allow-http=on" "coca.kbs=default/test/secret coca.kbs.progress"
ok $? "a 2 s KBS delay: the flow completes"
faults ""
line=$(grep -o 'kbs: progress .*' "$tmp/progress/console.log" | tail -n 1)
echo "# $line"
python3 - "$line" <<'PY'
import re, sys
m = dict(re.findall(r"(\w+)=([0-9.]+)", sys.argv[1]))
waited, ratio = float(m["waited_ms"]), float(m["ratio"])
# the guest kept working while the request was pending
sys.exit(0 if waited >= 1900 and ratio >= 0.3 else 1)
PY
ok $? "the vCPU kept running during the delay (progress ratio above 0.3)"

tap_end
