/*
 * SPDX-License-Identifier: GPL-2.0-or-later OR MIT
 *
 * The ABI header must compile without a C library (firmware, SVSM).
 */
#include "coco-attest/abi.h"

uint32_t coca_abi_freestanding_probe(void);

uint32_t coca_abi_freestanding_probe(void)
{
    struct coca_hdr h = { COCA_MSG_MAGIC, COCA_MSG_VERSION, COCA_OP_ECHO,
                          0, 0, COCA_STATUS_NONE, 0, 0, 0, 0, 0, 0 };

    return h.magic ^ h.status;
}
