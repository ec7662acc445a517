/*
 * SPDX-License-Identifier: GPL-2.0-or-later OR MIT
 *
 * Pin the wire layout of every ABI structure: the offsets below are the
 * ones docs/specs/coco-attest.rst specifies.  A change to abi.h that
 * moves a field fails here on every compiler and word size we build for.
 */
#include <stddef.h>
#include <stdio.h>
#include "coco-attest/abi.h"

static int failures;

#define CHECK(expr, want)                                                 \
    do {                                                                  \
        unsigned long got_ = (unsigned long)(expr);                       \
        if (got_ != (unsigned long)(want)) {                              \
            printf("FAIL %s = %lu, want %lu\n", #expr, got_,              \
                   (unsigned long)(want));                                \
            failures++;                                                   \
        }                                                                 \
    } while (0)

int main(void)
{
#define OFF(type, field, want) CHECK(offsetof(type, field), want);
#define SIZE(type, want) CHECK(sizeof(type), want);
#include "abi-offsets.h"
    CHECK(COCA_HDR_SIZE, 48);
    CHECK(COCA_INLINE_MAX, 4048);

    /* "COCA" in memory order */
    {
        union {
            uint32_t v;
            unsigned char b[4];
        } sig = { COCA_SIGNATURE };
        CHECK(sig.b[0] == 'C' && sig.b[1] == 'O' && sig.b[2] == 'C' &&
              sig.b[3] == 'A', 1);
    }

    if (failures) {
        printf("%d layout checks failed\n", failures);
        return 1;
    }
    printf("abi layout ok (%zu-bit)\n", sizeof(void *) * 8);
    return 0;
}
