/*
 * SPDX-License-Identifier: GPL-2.0-or-later OR MIT
 *
 * TAP output for the guest-side unit tests (one per test binary):
 *
 *     int ok = 1;
 *     EXPECT(x == 1);
 *     report("what it checks", ok);
 *     ...
 *     return tap_end();
 */

#ifndef COCO_ATTEST_TESTS_TAP_H
#define COCO_ATTEST_TESTS_TAP_H

#include <stdio.h>

static int passed, failed;

/* a failed check prints where it is and clears the case's "ok" */
#define EXPECT(cond)                                                      \
    do {                                                                  \
        if (!(cond)) {                                                    \
            printf("# %s:%d: %s\n", __FILE__, __LINE__, #cond);           \
            ok = 0;                                                       \
        }                                                                 \
    } while (0)

static inline void report(const char *name, int ok)
{
    printf("%s %s\n", ok ? "ok" : "not ok", name);
    fflush(stdout);
    if (ok) {
        passed++;
    } else {
        failed++;
    }
}

/* the plan and a summary; the exit status */
static inline int tap_end(void)
{
    printf("1..%d\n", passed + failed);
    printf("# %d passed, %d failed\n", passed, failed);
    return failed != 0;
}

#endif
