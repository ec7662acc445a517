# SPDX-License-Identifier: GPL-2.0-or-later
#
# TAP helpers for the project's shell tests.  Sourced, never executed.
#   ok STATUS DESCRIPTION   record one result (STATUS 0 = pass)
#   skip DESCRIPTION        record one skipped check
#   tap_end                 print the plan and the summary; fail if any did
# With TAP_TIMES=1, each result is followed by a "# took N ms" line: the
# time since the previous result (timeouts are set from these).

n=0
failed=0
tap_t0=$(date +%s%N)

ok() {
    local now
    n=$((n + 1))
    if [ "$1" = 0 ]; then
        echo "ok $n - $2"
    else
        echo "not ok $n - $2"
        failed=$((failed + 1))
    fi
    if [ "${TAP_TIMES:-0}" = 1 ]; then
        now=$(date +%s%N)
        echo "# took $(( (now - tap_t0) / 1000000 )) ms"
        tap_t0=$now
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
