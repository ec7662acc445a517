#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Emit the QEMU change as a `git format-patch` series against the
# unpatched upstream QEMU tree, one commit per qemu-overlay/series entry.
#
#   export-patches.sh [--check] [OUTDIR]   (default OUTDIR: build/patches)
#
# With --check, also verify that the series applies with `git am` to a
# fresh upstream tree and that QEMU's scripts/checkpatch.pl reports no
# errors.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/overlay.sh"

check=0
if [ "${1:-}" = --check ]; then
    check=1
    shift
fi
OUT=$(realpath -m "${1:-$TOP/build/patches}")
UP=$QEMU_CACHE/upstream
[ -f "$UP/.complete" ] || die "no upstream tree: run scripts/fetch-qemu.sh"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export GIT_AUTHOR_NAME="coco-attest developers"
export GIT_AUTHOR_EMAIL="devel@coco-attest.invalid"
export GIT_COMMITTER_NAME=$GIT_AUTHOR_NAME
export GIT_COMMITTER_EMAIL=$GIT_AUTHOR_EMAIL
export GIT_AUTHOR_DATE="2026-11-22T00:00:00Z"
export GIT_COMMITTER_DATE=$GIT_AUTHOR_DATE
signoff="Signed-off-by: $GIT_AUTHOR_NAME <$GIT_AUTHOR_EMAIL>"

# The whole upstream tree, so that `git am` is checked against exactly
# what a distribution or upstream would apply it to.
repo=$tmp/qemu
cp -a "$UP" "$repo"
rm -f "$repo/.complete"
git -C "$repo" init -q
git -C "$repo" config gc.auto 0
git -C "$repo" add -A
git -C "$repo" commit -q -m "QEMU $QEMU_VERSION"
git -C "$repo" tag base

for e in $(overlay_entries); do
    apply_entry "$e" "$repo"
    git -C "$repo" add -A
    { cat "$OVERLAY/$e.msg"; echo; echo "$signoff"; } |
        git -C "$repo" commit -q -F -
done

rm -rf "$OUT"
mkdir -p "$OUT"
git -C "$repo" format-patch -q --no-signature -o "$OUT" base..HEAD
(cd "$OUT" && ls -1 ./*.patch | sed 's|^\./||' > series)
log "wrote $(wc -l < "$OUT/series") patches to $OUT"

if [ "$check" = 1 ]; then
    git -C "$repo" checkout -q -b am-check base
    (cd "$repo" && git am -q "$OUT"/*.patch) ||
        die "the series does not apply to upstream QEMU $QEMU_VERSION"
    [ -z "$(git -C "$repo" diff am-check master)" ] ||
        die "git am result differs from the overlay"
    log "git am: the series applies cleanly to upstream $QEMU_VERSION"
    (cd "$repo" && ./scripts/checkpatch.pl "$OUT"/*.patch) ||
        die "checkpatch.pl reported errors"
    log "checkpatch.pl: no errors"
fi
