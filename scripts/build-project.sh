#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Build the project's own parts (top-level meson.build) in build/project,
# or with COCA_SANITIZE=1 in build/project-asan with the host tools under
# ASan and UBSan.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

B=$TOP/build/project
opts=()
if [ "${COCA_SANITIZE:-0}" = 1 ]; then
    B=$TOP/build/project-asan
    opts=(-Dsanitize=true)
fi
if [ ! -f "$B/build.ninja" ]; then
    meson setup "$B" "$TOP" "${opts[@]}" > /dev/null ||
        die "meson setup of the project failed"
fi
meson compile -C "$B" > "$B.log" 2>&1 ||
    { cat "$B.log"; die "project build failed"; }
