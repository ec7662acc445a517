# SPDX-License-Identifier: GPL-2.0-or-later
#
# Helpers to lay the coco-attest overlay (qemu-overlay/series) on a QEMU
# tree.  Sourced by build-qemu.sh and export-patches.sh.

OVERLAY=$TOP/qemu-overlay

overlay_entries() {
    grep -v '^#' "$OVERLAY/series" | grep -v '^[[:space:]]*$'
}

# overlay_files ENTRY: print "repo-path qemu-path" lines
overlay_files() {
    local f=$OVERLAY/$1.files src dst
    [ -f "$f" ] || return 0
    while read -r src dst; do
        case "$src" in ''|'#'*) continue ;; esac
        printf '%s %s\n' "$src" "${dst:-$src}"
    done < "$f"
}

# apply_entry ENTRY DIR: copy the entry's new files and apply its edits
apply_entry() {
    local e=$1 dir=$2 src dst
    while read -r src dst; do
        [ -f "$TOP/$src" ] || die "$e: $src is missing"
        mkdir -p "$dir/$(dirname "$dst")"
        cp "$TOP/$src" "$dir/$dst"
    done < <(overlay_files "$e")
    if [ -s "$OVERLAY/$e.diff" ]; then
        patch -d "$dir" -p1 -s -N -r - --no-backup-if-mismatch \
            < "$OVERLAY/$e.diff" || die "$e.diff does not apply to $dir"
    fi
}

# overlay_hash: content hash of everything the overlay consists of
overlay_hash() {
    local e
    {
        cat "$OVERLAY/series"
        for e in $(overlay_entries); do
            cat "$OVERLAY/$e".*
            overlay_files "$e" | while read -r src dst; do
                printf '%s %s\n' "$src" "$dst"
                cat "$TOP/$src"
            done
        done
    } | sha256sum | cut -c1-16
}
