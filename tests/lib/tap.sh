# SPDX-License-Identifier: GPL-2.0-or-later
#
# TAP helpers for the project's shell tests.  Sourced, never executed.
#   ok STATUS DESCRIPTION   record one result (STATUS 0 = pass)
#   skip DESCRIPTION        record one skipped check
#   tap_end                 print the plan and the summary; fail if any did

n=0
failed=0

ok() {
    n=$((n + 1))
    if [ "$1" = 0 ]; then
        echo "ok $n - $2"
    else
        echo "not ok $n - $2"
        failed=$((failed + 1))
    fi
}

skip() {
    n=$((n + 1))
    echo "ok $n # SKIP $1"
}

tap_end() {
    echo "1..$n"
    echo "# $((n - failed)) passed, $failed failed"
    [ "$failed" -eq 0 ]
}
