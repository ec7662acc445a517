/*
 * SPDX-License-Identifier: GPL-2.0-or-later OR MIT
 *
 * The ABI header must compile without a C library (firmware, SVSM), and
 * have the same layout there: checked at compile time, because the
 * 32-bit build cannot necessarily run on the build host.
 */
#include <stddef.h>
#include "coco-attest/abi.h"

/* own prefix: abi-offsets.h line numbers may repeat abi.h's */
#define OFF_ASSERT(cond) \
    typedef char COCA_ABI_GLUE(coca_off_assert_, __LINE__)[(cond) ? 1 : -1]
#define OFF(type, field, want) OFF_ASSERT(offsetof(type, field) == (want));
#define SIZE(type, want) OFF_ASSERT(sizeof(type) == (want));
#include "abi-offsets.h"

uint32_t coca_abi_freestanding_probe(void);

uint32_t coca_abi_freestanding_probe(void)
{
    struct coca_hdr h = { COCA_MSG_MAGIC, COCA_MSG_VERSION, COCA_OP_ECHO,
                          0, 0, COCA_STATUS_NONE, 0, 0, 0, 0, 0, 0 };

    return h.magic ^ h.status;
}
