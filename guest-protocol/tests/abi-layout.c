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
    CHECK(offsetof(struct coca_hdr, magic), 0);
    CHECK(offsetof(struct coca_hdr, version), 4);
    CHECK(offsetof(struct coca_hdr, command), 6);
    CHECK(offsetof(struct coca_hdr, flags), 8);
    CHECK(offsetof(struct coca_hdr, seq), 12);
    CHECK(offsetof(struct coca_hdr, status), 16);
    CHECK(offsetof(struct coca_hdr, req_len), 20);
    CHECK(offsetof(struct coca_hdr, resp_len), 24);
    CHECK(offsetof(struct coca_hdr, reserved0), 28);
    CHECK(offsetof(struct coca_hdr, buf_gpa), 32);
    CHECK(offsetof(struct coca_hdr, buf_len), 40);
    CHECK(offsetof(struct coca_hdr, reserved1), 44);
    CHECK(sizeof(struct coca_hdr), COCA_HDR_SIZE);
    CHECK(COCA_INLINE_MAX, 4048);

    CHECK(offsetof(struct coca_fw_cfg, signature), 0);
    CHECK(offsetof(struct coca_fw_cfg, iobase), 4);
    CHECK(offsetof(struct coca_fw_cfg, irq), 6);
    CHECK(offsetof(struct coca_fw_cfg, transport_major), 8);
    CHECK(offsetof(struct coca_fw_cfg, transport_minor), 10);

    CHECK(offsetof(struct coca_negotiate_req, proto_min), 0);
    CHECK(offsetof(struct coca_negotiate_req, proto_max), 2);
    CHECK(offsetof(struct coca_negotiate_req, reserved), 4);
    CHECK(offsetof(struct coca_negotiate_req, features), 8);

    CHECK(offsetof(struct coca_negotiate_resp, proto), 0);
    CHECK(offsetof(struct coca_negotiate_resp, proto_min), 2);
    CHECK(offsetof(struct coca_negotiate_resp, proto_max), 4);
    CHECK(offsetof(struct coca_negotiate_resp, offered), 8);
    CHECK(offsetof(struct coca_negotiate_resp, negotiated), 16);
    CHECK(offsetof(struct coca_negotiate_resp, max_object), 24);
    CHECK(offsetof(struct coca_negotiate_resp, inline_max), 28);
    CHECK(offsetof(struct coca_negotiate_resp, max_pending), 32);

    CHECK(offsetof(struct coca_echo, flags), 0);
    CHECK(offsetof(struct coca_echo, crc), 4);

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
