/*
 * SPDX-License-Identifier: GPL-2.0-or-later OR MIT
 *
 * libFuzzer target: the guest library against a host whose every answer
 * comes from the fuzzer.  Register reads, the response written into the
 * request page (header fields and payload), the external buffer and the
 * port channel's data words are all fuzz input; the library must return
 * an error for whatever it cannot use and never touch memory it does not
 * own (ASan, UBSan).  The calls cover probe, negotiation, both channels,
 * the identity, certificate and KBS helpers and the certificate list
 * parser.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "coco-attest/guest.h"

#define BUF_LEN     (64u * 1024)

static struct {
    const uint8_t *in;
    size_t len, pos;
    uint64_t now;
} H;

static uint8_t page[COCA_PAGE_SIZE] __attribute__((aligned(4096)));
static uint8_t buf[BUF_LEN] __attribute__((aligned(4096)));

static uint8_t take8(void)
{
    return H.pos < H.len ? H.in[H.pos++] : 0;
}

static uint32_t take32(void)
{
    uint32_t v = 0;
    int i;

    for (i = 0; i < 4; i++) {
        v |= (uint32_t)take8() << (8 * i);
    }
    return v;
}

static void take(uint8_t *dst, size_t n)
{
    size_t avail = H.pos < H.len ? H.len - H.pos : 0;

    n = n < avail ? n : avail;
    memcpy(dst, H.in + H.pos, n);
    H.pos += n;
}

/*
 * The doorbell: answer in place, starting from the request header so that
 * the fuzzer mostly explores the fields it chooses to change.
 */
static void ring(void)
{
    uint8_t sel = take8();
    uint32_t len = take32() % (BUF_LEN + 64);

    page[8 + 3] |= 0x80;                        /* RESPONSE flag */
    if (sel & 1) {
        memcpy(page + 16, &(uint32_t){ take32() % 40 }, 4);   /* status */
    } else {
        memset(page + 16, 0, 4);
    }
    memcpy(page + 24, &len, 4);                 /* resp_len */
    if (sel & 2) {
        take(page, COCA_HDR_SIZE);              /* anything at all */
    }
    if (page[8] & COCA_FLAG_EXT_BUF) {
        take(buf, len < BUF_LEN ? len : BUF_LEN);
    } else {
        take(page + COCA_HDR_SIZE, COCA_INLINE_MAX);
    }
}

static uint32_t f_inl(void *ctx, uint16_t port)
{
    (void)ctx;
    (void)port;
    return take32();
}

static void f_outl(void *ctx, uint16_t port, uint32_t val)
{
    (void)ctx;
    if (port - COCA_DEFAULT_IOBASE == COCA_REG_CMD &&
        val == COCA_CMD_RING) {
        ring();
    }
}

static uint8_t f_inb(void *ctx, uint16_t port)
{
    (void)ctx;
    (void)port;
    return take8();
}

static void f_outw(void *ctx, uint16_t port, uint16_t val)
{
    (void)ctx;
    (void)port;
    (void)val;
}

static uint64_t f_now(void *ctx)
{
    (void)ctx;
    return H.now += 250 * 1000;     /* every wait ends within a few polls */
}

static const struct coca_ops ops = {
    .inl = f_inl, .outl = f_outl, .inb = f_inb, .outw = f_outw,
    .now_us = f_now,
    .page = page, .page_gpa = 0x100000,
    .buf = buf, .buf_gpa = 0x200000, .buf_len = BUF_LEN,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t out[BUF_LEN + 64], req[512];
    struct coca_dev d;
    struct coca_identity id;
    struct coca_kbs_config cfg;
    struct coca_kbs_reply reply;
    uint8_t nonce[COCA_NONCE_SIZE];
    uint32_t n = 0, session = 0, len = 0;
    const uint8_t *cert;

    H.in = data;
    H.len = size;
    H.pos = 0;
    H.now = 0;
    memset(page, 0, sizeof(page));
    memset(req, 0x5a, sizeof(req));

    if (coca_probe(&d, &ops, 0) != 0) {
        return 0;
    }
    coca_negotiate(&d, COCA_FEAT_ALL);
    coca_echo(&d, COCA_CH_PAGE, 0, req, 100, out, sizeof(out), &n);
    coca_echo(&d, COCA_CH_PORT, 0, req, 40, out, 64, &n);
    coca_get_identity(&d, &id);
    coca_get_nonce(&d, nonce);
    if (coca_get_ek_cert(&d, COCA_NV_EK_ECC_P256, out, sizeof(out), &n) ==
        0) {
        coca_cert_list_get(out, n, 0, &cert, &len);
        coca_cert_list_get(out, n, 7, &cert, &len);
    }
    coca_certify_ak(&d, COCA_AK_FORMAT_CSR, req, 200, out, sizeof(out), &n);
    coca_kbs_config(&d, &cfg);
    if (coca_kbs_open(&d, &session) == 0) {
        coca_kbs_forward(&d, session, COCA_KBS_POST, "/kbs/v0/auth",
                         "application/json", "{}", 2, out, sizeof(out),
                         &reply);
        coca_kbs_close(&d, session);
    }
    return 0;
}
