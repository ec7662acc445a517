#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Build the project's own parts (top-level meson.build) in build/project.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

B=$TOP/build/project
if [ ! -f "$B/build.ninja" ]; then
    meson setup "$B" "$TOP" > /dev/null ||
        die "meson setup of the project failed"
fi
meson compile -C "$B" > "$B.log" 2>&1 ||
    { cat "$B.log"; die "project build failed"; }
