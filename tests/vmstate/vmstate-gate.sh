#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Migration compatibility gate: the coco-attest section of QEMU's
# -dump-vmstate output must stay loadable from the checked-in golden
# file (tests/vmstate/coco-attest.json), as QEMU's own
# scripts/vmstate-static-checker.py judges it.  An accidental change to
# the migration stream (a field removed, resized, reordered, a version
# bumped past what older builds send) fails here.  The script also checks
# that the checker catches such a change.  Prints TAP.
#
#   vmstate-gate.sh QEMU QEMU-SOURCE-TREE [--update]
set -uo pipefail
QEMU=$1 SRC=$2
TOP=$(cd "$(dirname "$0")/../.." && pwd)
GOLDEN=$TOP/tests/vmstate/coco-attest.json
CHECKER=$SRC/scripts/vmstate-static-checker.py
. "$TOP/tests/lib/tap.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# our section (plus the machine record the checker compares first)
dump() {   # dump OUT
    "$QEMU" -M q35 -nodefaults -dump-vmstate "$tmp/all.json" &&
    python3 - "$tmp/all.json" "$1" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
out = {k: d[k] for k in ("vmschkmachine", "coco-attest")}
with open(sys.argv[2], "w") as f:
    json.dump(out, f, indent=2, sort_keys=True)
    f.write("\n")
PY
}

dump "$tmp/now.json"
ok $? "-dump-vmstate has a coco-attest section"
if [ "${3:-}" = --update ]; then
    cp "$tmp/now.json" "$GOLDEN"
    echo "# golden file updated: $GOLDEN"
fi
python3 "$CHECKER" -s "$GOLDEN" -d "$tmp/now.json" > "$tmp/check.log" 2>&1
rc=$?
sed 's/^/# /' "$tmp/check.log"
ok $rc "a stream from the golden layout loads into this build"

# the gate can fail: a field dropped from the stream is caught
python3 - "$tmp/now.json" "$tmp/broken.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
fields = d["coco-attest"]["Description"]["Fields"]
d["coco-attest"]["Description"]["Fields"] = [
    f for f in fields if f["field"] != "port_crc"]
json.dump(d, open(sys.argv[2], "w"))
PY
python3 "$CHECKER" -s "$GOLDEN" -d "$tmp/broken.json" > /dev/null 2>&1
[ $? -ne 0 ]
ok $? "a dropped field is reported as a break"
tap_end
