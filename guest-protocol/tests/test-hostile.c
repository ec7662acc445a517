/*
 * SPDX-License-Identifier: GPL-2.0-or-later OR MIT
 *
 * Unit tests of the guest library against a scripted host: an in-process
 * double of the device that speaks the ABI correctly, and then lies in
 * every way the library must survive (oversized lengths, truncated
 * responses, wrong sequence numbers, a status that changes during the
 * copy, garbage after the payload, bad CRCs, requests that never end).
 * Each case checks the error code and that no caller buffer was written
 * beyond what the call allows.
 */

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "coco-attest/guest.h"
#include "tap.h"

enum lie {
    LIE_NONE,
    LIE_SEQ,
    LIE_MAGIC,
    LIE_OP,
    LIE_NO_RESPONSE_FLAG,
    LIE_LEN_OVER_PAGE,
    LIE_LEN_OVER_BUF,
    LIE_STATUS_FLIP,
    LIE_GARBAGE_AFTER,
    LIE_NEG_SHORT,
    LIE_NEG_GRANTS_MORE,
    LIE_NEG_BAD_MAX,
    LIE_NEG_BAD_PROTO,
    LIE_ECHO_CRC,
    LIE_ECHO_DATA,
    LIE_ECHO_LEN,
    LIE_PORT_CRC,
    LIE_PORT_HUGE_LEN,
    LIE_PORT_NOT_READY,
    LIE_NEVER,
    LIE_STATUS_INVALID,
    LIE_NO_SPACE,
    LIE_PENDING_3,
    LIE_BAD_SIGNATURE,
    LIE_BAD_TRANSPORT,
    LIE_REFUSE_PAGE,
    LIE_FWCFG_HUGE_DIR,
    LIE_FWCFG_BAD_SIZE,
    LIE_SILENT_RING,
    LIE_ID_OVERLONG,
    LIE_ID_OVERRUN,
    LIE_ID_MISSING,
    LIE_ID_NUL,
    LIE_KBS_CFG_SHORT,
    LIE_KBS_CFG_LONG,
    LIE_KBS_CFG_PROTO_NUL,
    LIE_KBS_CFG_URL_NUL,
    LIE_KBS_CFG_RESERVED,
    LIE_KBS_SESSION_0,
    LIE_KBS_SESSION_RESERVED,
    LIE_KBS_OPEN_SHORT,
    LIE_KBS_OPEN_BUSY,
    LIE_KBS_CLOSE_PAYLOAD,
    LIE_KBS_HTTP_99,
    LIE_KBS_HTTP_600,
    LIE_KBS_HTTP_0,
    LIE_KBS_LEN_PLUS,
    LIE_KBS_LEN_MINUS,
    LIE_KBS_BODY_HUGE,
    LIE_KBS_CTYPE_LONG,
    LIE_KBS_CTYPE_NUL,
    LIE_KBS_CTYPE_CTRL,
    LIE_KBS_RESP_SHORT,
    LIE_KBS_STATUS_TIMEOUT,
    LIE_RETRY_ONCE,         /* migrated mid-request: RETRY, then honest */
    LIE_RETRY_ALWAYS,
    LIE_RETRY_PAYLOAD,      /* RETRY, and bytes in the caller's buffer */
};

#define BASE        COCA_DEFAULT_IOBASE
#define BUF_LEN     (64u * 1024)

struct fake {
    enum lie lie;
    uint8_t page[COCA_PAGE_SIZE] __attribute__((aligned(4096)));
    uint8_t buf[BUF_LEN] __attribute__((aligned(4096)));
    uint64_t staged;
    uint32_t result;
    int busy;               /* 1: page request, 2: port request */
    int polls_left;
    int retries_sent;       /* RETRY answers given */
    /* port channel */
    uint8_t in[COCA_HDR_SIZE + BUF_LEN];
    uint32_t in_len, in_crc;
    uint8_t out[COCA_HDR_SIZE + BUF_LEN + 4];
    uint32_t out_len, out_pos, out_crc;
    int port_resp;
    int data_reads;
    uint32_t status_reads;      /* STATUS register reads */
    uint32_t relaxes;           /* ops->relax calls */
    uint32_t never_polls;       /* polls of a LIE_NEVER request */
    /* fw_cfg */
    uint16_t fw_sel;
    uint8_t fw[4 + 64 + 12];
    uint32_t fw_len, fw_pos;
    /* time */
    uint64_t now;
    int mb_calls;
    /* polls before a request completes (0: at once) */
    uint32_t delay;
    uint32_t delay_each;        /* the delay of every page request */
    /* KBS */
    uint32_t kbs_timeout_ms;
    uint32_t kbs_resp_body;     /* forward answer: this many bytes, or echo */
    uint16_t kbs_http;
    int kbs_config_calls, kbs_forward_calls;
    uint8_t fwd[BUF_LEN];       /* the last KBS_FORWARD request payload */
    uint32_t fwd_len, fwd_flags;
    uint16_t ops_seen[8];       /* commands served (not NEGOTIATE, ECHO) */
    int nops;
};

static struct fake F;

static void le32(uint8_t *p, uint32_t v)
{
    p[0] = v;
    p[1] = v >> 8;
    p[2] = v >> 16;
    p[3] = v >> 24;
}

static uint32_t rd32(const uint8_t *p)
{
    return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

static void le64(uint8_t *p, uint64_t v)
{
    le32(p, v);
    le32(p + 4, v >> 32);
}

/*
 * The honest host: compute the response payload of a request, then let
 * the scenario spoil it.  Returns the status.
 */
static uint32_t serve(const uint8_t *h, const uint8_t *req, uint8_t *resp,
                      uint32_t *len)
{
    uint16_t op = h[6] | h[7] << 8;
    uint32_t req_len = rd32(h + 20);

    *len = 0;
    if (op == COCA_OP_NEGOTIATE) {
        uint64_t want = rd32(req + 8) | (uint64_t)rd32(req + 12) << 32;
        memset(resp, 0, 40);
        resp[0] = 1;
        resp[2] = 1;
        resp[4] = 1;
        le64(resp + 8, COCA_FEAT_ALL);
        le64(resp + 16, want & COCA_FEAT_ALL);
        le32(resp + 24, BUF_LEN);
        le32(resp + 28, COCA_INLINE_MAX);
        le32(resp + 32, 1);
        *len = 40;
        switch (F.lie) {
        case LIE_NEG_SHORT:
            *len = 20;
            break;
        case LIE_NEG_GRANTS_MORE:
            le64(resp + 16, COCA_FEAT_ALL | 1ull << 40);
            break;
        case LIE_NEG_BAD_MAX:
            le32(resp + 24, 100);
            break;
        case LIE_NEG_BAD_PROTO:
            resp[0] = 9;
            break;
        default:
            break;
        }
        return COCA_STATUS_OK;
    }
    if (op == COCA_OP_ECHO) {
        memcpy(resp, req, req_len);
        le32(resp + 4, coca_crc32c(0, req + 8, req_len - 8));
        *len = req_len;
        if (F.lie == LIE_ECHO_CRC) {
            resp[4] ^= 1;
        } else if (F.lie == LIE_ECHO_DATA && req_len > 8) {
            resp[8] ^= 0x80;
        } else if (F.lie == LIE_ECHO_LEN) {
            *len = req_len - 1;
        }
        return COCA_STATUS_OK;
    }
    if (F.nops < 8) {
        F.ops_seen[F.nops++] = op;
    }
    if (op == COCA_OP_KBS_CONFIG) {
        static const char url[] = "http://10.0.2.2:8080";

        F.kbs_config_calls++;
        memset(resp, 0, 296);
        strcpy((char *)resp, "0.4.0");
        strcpy((char *)resp + 16, url);
        le32(resp + 272, 4);
        le32(resp + 276, 300);
        le32(resp + 280, 65536);
        le32(resp + 284, 65536);
        le32(resp + 288, F.kbs_timeout_ms);
        *len = 296;
        switch (F.lie) {
        case LIE_KBS_CFG_SHORT:
            *len = 292;
            break;
        case LIE_KBS_CFG_LONG:
            *len = 300;
            break;
        case LIE_KBS_CFG_PROTO_NUL:
            memset(resp, 'p', 16);
            break;
        case LIE_KBS_CFG_URL_NUL:
            memset(resp + 16, 'u', 256);
            break;
        case LIE_KBS_CFG_RESERVED:
            le32(resp + 292, 1);
            break;
        default:
            break;
        }
        return COCA_STATUS_OK;
    }
    if (op == COCA_OP_KBS_OPEN) {
        if (F.lie == LIE_KBS_OPEN_BUSY) {
            return COCA_STATUS_BUSY;
        }
        le32(resp, F.lie == LIE_KBS_SESSION_0 ? 0 : 7);
        le32(resp + 4, F.lie == LIE_KBS_SESSION_RESERVED ? 1 : 0);
        *len = F.lie == LIE_KBS_OPEN_SHORT ? 4 : 8;
        return COCA_STATUS_OK;
    }
    if (op == COCA_OP_KBS_CLOSE) {
        if (req_len != 8 || rd32(req + 4) != 0) {
            return COCA_STATUS_INVALID;
        }
        if (rd32(req) != 7) {
            return COCA_STATUS_NO_SESSION;
        }
        if (F.lie == LIE_KBS_CLOSE_PAYLOAD) {
            le32(resp, 0);
            *len = 4;
        }
        return COCA_STATUS_OK;
    }
    if (op == COCA_OP_KBS_FORWARD) {
        static const char ct[] = "application/json";
        uint32_t pl, cl, bl, rcl = sizeof(ct) - 1, rbl, i;
        const uint8_t *rbody;

        F.kbs_forward_calls++;
        memcpy(F.fwd, req, req_len);
        F.fwd_len = req_len;
        F.fwd_flags = rd32(h + 8);
        if (req_len < 16) {
            return COCA_STATUS_INVALID;
        }
        pl = req[6] | req[7] << 8;
        cl = req[8] | req[9] << 8;
        bl = rd32(req + 12);
        if (req_len != 16 + pl + cl + bl || req[10] || req[11]) {
            return COCA_STATUS_INVALID;
        }
        if (rd32(req) != 7) {
            return COCA_STATUS_NO_SESSION;
        }
        if (F.lie == LIE_KBS_STATUS_TIMEOUT) {
            return COCA_STATUS_KBS_TIMEOUT;
        }
        rbody = req + 16 + pl + cl;
        rbl = bl;
        if (F.kbs_resp_body) {
            rbl = F.kbs_resp_body;
            for (i = 0; i < rbl; i++) {
                resp[8 + rcl + i] = (uint8_t)(i * 7 + 3);
            }
        } else {
            memcpy(resp + 8 + rcl, rbody, rbl);
        }
        memcpy(resp + 8, ct, rcl);
        resp[0] = (uint8_t)F.kbs_http;
        resp[1] = F.kbs_http >> 8;
        resp[2] = rcl;
        resp[3] = 0;
        le32(resp + 4, rbl);
        *len = 8 + rcl + rbl;
        switch (F.lie) {
        case LIE_KBS_HTTP_99:
            resp[0] = 99;
            resp[1] = 0;
            break;
        case LIE_KBS_HTTP_600:
            resp[0] = 600 & 0xff;
            resp[1] = 600 >> 8;
            break;
        case LIE_KBS_HTTP_0:
            resp[0] = resp[1] = 0;
            break;
        case LIE_KBS_LEN_PLUS:
            resp[*len] = 0;
            *len += 1;
            break;
        case LIE_KBS_LEN_MINUS:
            *len -= 1;
            break;
        case LIE_KBS_BODY_HUGE:
            le32(resp + 4, 0xffffffffu);
            break;
        case LIE_KBS_CTYPE_LONG:
            /* 128 bytes of content type, the total still adds up */
            memset(resp + 8, 'a', 128);
            memset(resp + 8 + 128, 'b', 4);
            resp[2] = 128;
            le32(resp + 4, 4);
            *len = 8 + 128 + 4;
            break;
        case LIE_KBS_CTYPE_NUL:
            resp[8 + 4] = 0;
            break;
        case LIE_KBS_CTYPE_CTRL:
            resp[8 + 4] = '\n';
            break;
        case LIE_KBS_RESP_SHORT:
            *len = 6;
            break;
        default:
            break;
        }
        return COCA_STATUS_OK;
    }
    if (op == COCA_OP_GET_IDENTITY) {
        static const char *const vals[] = {
            NULL, "proj", NULL, "zone-a", "vm1", "1234", "1.2.3",
        };
        uint32_t off = 0;
        int tag;

        for (tag = 1; tag <= 6; tag++) {
            uint32_t l = tag == 2 ? 8 : strlen(vals[tag]);

            if (F.lie == LIE_ID_MISSING && tag == 3) {
                continue;
            }
            if (F.lie == LIE_ID_OVERLONG && tag == 4) {
                l = 200;
            }
            resp[off] = tag;
            resp[off + 1] = 0;
            resp[off + 2] = l;
            resp[off + 3] = 0;
            if (tag == 2) {
                le64(resp + off + 4, 77);
            } else if (l == 200) {
                memset(resp + off + 4, 'x', l);
            } else {
                memcpy(resp + off + 4, vals[tag], l);
            }
            if (F.lie == LIE_ID_NUL && tag == 5) {
                resp[off + 5] = 0;
            }
            off += 4 + l;
        }
        if (F.lie == LIE_ID_OVERRUN) {
            resp[off] = 9;
            resp[off + 1] = 0;
            resp[off + 2] = 0xff;
            resp[off + 3] = 0;
            off += 4;
        }
        *len = off;
        return COCA_STATUS_OK;
    }
    return COCA_STATUS_UNSUPPORTED;
}

static void complete_page(void)
{
    uint8_t *h = F.page;
    uint32_t flags = rd32(h + 8), len, status;
    int ext = flags & COCA_FLAG_EXT_BUF;
    uint8_t *payload = ext ? F.buf : F.page + COCA_HDR_SIZE;
    static uint8_t resp[BUF_LEN];

    status = serve(h, payload, resp, &len);
    memcpy(payload, resp, len);
    if (F.lie == LIE_GARBAGE_AFTER) {
        memset(payload + len, 0xee, 64);
    }
    if (F.lie == LIE_LEN_OVER_PAGE) {
        len = COCA_INLINE_MAX + 1;
    } else if (F.lie == LIE_LEN_OVER_BUF) {
        len = ext ? BUF_LEN + 4 : COCA_INLINE_MAX + 4;
    } else if (F.lie == LIE_STATUS_INVALID) {
        status = COCA_STATUS_INVALID;
        len = 0;
    } else if (F.lie == LIE_NO_SPACE) {
        status = COCA_STATUS_NO_SPACE;
        len = 123456;
    } else if (F.lie == LIE_RETRY_ALWAYS ||
               (F.lie == LIE_RETRY_ONCE && !F.retries_sent)) {
        status = COCA_STATUS_RETRY;
        len = 0;
        F.retries_sent++;
    } else if (F.lie == LIE_RETRY_PAYLOAD) {
        status = COCA_STATUS_RETRY;
        len = 16;
    }
    le32(h + 8, flags | COCA_FLAG_RESPONSE);
    le32(h + 24, len);
    if (F.lie == LIE_SEQ) {
        le32(h + 12, rd32(h + 12) + 1);
    } else if (F.lie == LIE_MAGIC) {
        h[0] ^= 1;
    } else if (F.lie == LIE_OP) {
        h[6] ^= 0x40;
    } else if (F.lie == LIE_NO_RESPONSE_FLAG) {
        le32(h + 8, flags);
    }
    le32(h + 16, status);
}

static void complete_port(void)
{
    uint8_t *h = F.out;
    uint32_t len, status;

    memcpy(h, F.in, COCA_HDR_SIZE);
    status = serve(F.in, F.in + COCA_HDR_SIZE, F.out + COCA_HDR_SIZE, &len);
    le32(h + 8, rd32(h + 8) | COCA_FLAG_RESPONSE);
    if (F.lie == LIE_PORT_HUGE_LEN) {
        len = 0xfffffff0u;
    } else if (F.lie == LIE_SEQ) {
        le32(h + 12, rd32(h + 12) + 1);
    }
    le32(h + 16, status);
    le32(h + 24, len);
    F.out_len = COCA_HDR_SIZE + (len < BUF_LEN ? len : 0);
    memset(F.out + F.out_len, 0, 4);
    F.out_crc = coca_crc32c(0, F.out, F.out_len);
    if (F.lie == LIE_PORT_CRC) {
        F.out_crc ^= 1;
    }
    F.out_pos = 0;
    F.port_resp = F.lie != LIE_PORT_NOT_READY;
}

/*
 * A request that never completes (LIE_NEVER) is answered after this many
 * polls all the same, so that a library that would poll forever fails
 * its case instead of hanging the test.
 */
#define NEVER_WATCHDOG  20000000u

static void finish(int page)
{
    if (F.lie == LIE_NEVER && ++F.never_polls < NEVER_WATCHDOG) {
        return;
    }
    if (F.lie == LIE_PENDING_3 && F.polls_left-- > 0) {
        return;
    }
    if (F.delay) {
        F.delay--;
        return;
    }
    F.busy = 0;
    if (page) {
        complete_page();
    } else {
        complete_port();
    }
}

static uint32_t f_inl(void *ctx, uint16_t port)
{
    (void)ctx;
    switch (port - BASE) {
    case COCA_REG_SIGNATURE:
        return F.lie == LIE_BAD_SIGNATURE ? 0xffffffff : COCA_SIGNATURE;
    case COCA_REG_VERSION:
        return F.lie == LIE_BAD_TRANSPORT ? 2u << 16 : 1u << 16;
    case COCA_REG_CMD:
        return F.result;
    case COCA_REG_STATUS:
        F.status_reads++;
        if (F.busy == 2) {
            /* an asynchronous port request makes progress when polled */
            finish(0);
        }
        return (F.busy ? COCA_STS_BUSY : COCA_STS_DONE) |
               (F.port_resp ? COCA_STS_PORT_RESPONSE : 0);
    case COCA_REG_DATA:
        F.data_reads++;
        if (F.out_pos + 4 > sizeof(F.out)) {
            return 0;
        }
        F.out_pos += 4;
        return rd32(F.out + F.out_pos - 4);
    case COCA_REG_CRC:
        return F.out_crc;
    }
    return 0xffffffff;
}

static void f_outl(void *ctx, uint16_t port, uint32_t v)
{
    (void)ctx;
    switch (port - BASE) {
    case COCA_REG_PAGE_LO:
        F.staged = (F.staged & ~0xffffffffull) | v;
        return;
    case COCA_REG_PAGE_HI:
        F.staged = (F.staged & 0xffffffffull) | (uint64_t)v << 32;
        return;
    case COCA_REG_DATA:
        if (F.in_len + 4 <= sizeof(F.in)) {
            le32(F.in + F.in_len, v);
            F.in_len += 4;
        }
        return;
    case COCA_REG_CRC:
        F.in_crc = v;
        return;
    case COCA_REG_CMD:
        break;
    default:
        return;
    }
    F.result = COCA_RES_OK;
    switch (v) {
    case COCA_CMD_REGISTER_PAGE:
        if (F.lie == LIE_REFUSE_PAGE) {
            F.result = COCA_RES_BAD_PAGE;
        }
        return;
    case COCA_CMD_RING:
        if (F.lie == LIE_SILENT_RING) {
            return;     /* "accepted", but the page is never touched */
        }
        F.busy = 1;
        F.mb_calls = 0;
        if (F.delay_each) {
            F.delay = F.delay_each;
        }
        le32(F.page + 16, COCA_STATUS_PENDING);
        if (F.lie != LIE_PENDING_3 && F.lie != LIE_NEVER) {
            finish(1);
        }
        return;
    case COCA_CMD_PORT_BEGIN:
        F.in_len = 0;
        F.port_resp = 0;
        return;
    case COCA_CMD_PORT_SUBMIT:
        if (coca_crc32c(0, F.in, COCA_HDR_SIZE + rd32(F.in + 20)) !=
            F.in_crc) {
            F.result = COCA_RES_CRC;
            return;
        }
        F.busy = 2;
        if (F.lie != LIE_PENDING_3 && F.lie != LIE_NEVER) {
            finish(0);
        }
        return;
    case COCA_CMD_ACK:
        F.port_resp = 0;
        return;
    }
}

static uint8_t f_inb(void *ctx, uint16_t port)
{
    (void)ctx;
    (void)port;
    return F.fw_pos < F.fw_len ? F.fw[F.fw_pos++] : 0;
}

static void f_outw(void *ctx, uint16_t port, uint16_t v)
{
    (void)ctx;
    (void)port;
    F.fw_sel = v;
    F.fw_pos = 0;
    memset(F.fw, 0, sizeof(F.fw));
    if (v == 0x19) {
        /* a directory of one file: "etc/coco-attest", 12 bytes, sel 0x30 */
        uint32_t count = F.lie == LIE_FWCFG_HUGE_DIR ? 0x7fffffff : 1;
        F.fw[0] = count >> 24;
        F.fw[1] = count >> 16;
        F.fw[2] = count >> 8;
        F.fw[3] = count;
        F.fw[4 + 3] = F.lie == LIE_FWCFG_BAD_SIZE ? 200 : 12;
        F.fw[4 + 5] = 0x30;
        strcpy((char *)F.fw + 4 + 8, COCA_FW_CFG_FILE);
        F.fw_len = 4 + 64;
    } else if (v == 0x30) {
        le32(F.fw, COCA_SIGNATURE);
        F.fw[4] = BASE & 0xff;
        F.fw[5] = BASE >> 8;
        F.fw[6] = 5;
        F.fw[8] = 1;
        F.fw_len = 12;
    } else {
        F.fw_len = 0;
    }
}

static void f_mb(void *ctx)
{
    (void)ctx;
    /* barriers since the doorbell: 1 after the ring, 2 in the poll */
    F.mb_calls++;
    if (F.lie == LIE_STATUS_FLIP && F.mb_calls == 2) {
        /* the host rewrites the status between the read and the copy */
        le32(F.page + 16, COCA_STATUS_INVALID);
    }
}

static uint64_t f_now(void *ctx)
{
    (void)ctx;
    return F.now += 1000;
}

static void f_relax(void *ctx)
{
    (void)ctx;
    F.relaxes++;
    if (F.busy == 1) {
        finish(1);
    }
}

static struct coca_ops ops_page = {
    .inl = f_inl, .outl = f_outl, .inb = f_inb, .outw = f_outw,
    .mb = f_mb, .now_us = f_now, .relax = f_relax,
    .page_gpa = 0x100000, .buf_gpa = 0x200000, .buf_len = BUF_LEN,
};

/* no clock: the library counts polls */
static struct coca_ops ops_page_noclock = {
    .inl = f_inl, .outl = f_outl, .inb = f_inb, .outw = f_outw,
    .mb = f_mb, .relax = f_relax,
    .page_gpa = 0x100000, .buf_gpa = 0x200000, .buf_len = BUF_LEN,
};

static struct coca_ops ops_port = {
    .inl = f_inl, .outl = f_outl, .inb = f_inb, .outw = f_outw,
    .mb = f_mb, .now_us = f_now,
};

static struct coca_ops ops_port_noclock = {
    .inl = f_inl, .outl = f_outl, .inb = f_inb, .outw = f_outw,
    .mb = f_mb,
};

/* ------------------------------------------------------------------ */


static void reset_fake(enum lie lie)
{
    memset(&F, 0, sizeof(F));
    F.lie = lie;
    F.polls_left = 3;
    F.kbs_timeout_ms = 2000;
    F.kbs_http = 200;
    ops_page.page = F.page;
    ops_page.buf = F.buf;
    ops_page_noclock.page = F.page;
    ops_page_noclock.buf = F.buf;
}

/* A probed and negotiated device on the given channel, honest so far. */
static int ready(struct coca_dev *d, struct coca_ops *ops, enum lie lie)
{
    reset_fake(LIE_NONE);
    if (coca_probe(d, ops, 0) || coca_negotiate(d, COCA_FEAT_ALL)) {
        return -1;
    }
    F.lie = lie;
    return 0;
}

/* ECHO through a canary-guarded buffer; returns the library's result. */
static int guarded_echo(struct coca_dev *d, enum coca_channel ch,
                        uint32_t len, uint32_t cap, int *canary_ok)
{
    static uint8_t data[BUF_LEN], out[BUF_LEN + 64];
    uint32_t n = 0, i;
    int err;

    for (i = 0; i < len; i++) {
        data[i] = (uint8_t)(i * 13 + 1);
    }
    memset(out, 0xa5, sizeof(out));
    err = coca_echo(d, ch, 0, data, len, out, cap, &n);
    *canary_ok = 1;
    for (i = cap; i < sizeof(out); i++) {
        if (out[i] != 0xa5) {
            *canary_ok = 0;
        }
    }
    return err;
}

static void echo_case(const char *name, struct coca_ops *ops,
                      enum coca_channel ch, enum lie lie, uint32_t len,
                      uint32_t cap, int want)
{
    struct coca_dev d;
    int ok = 1, canary, err;

    EXPECT(ready(&d, ops, lie) == 0);
    err = guarded_echo(&d, ch, len, cap, &canary);
    if (err != want) {
        printf("# got %d (%s), want %d (%s)\n", err, coca_strerror(err),
               want, coca_strerror(want));
    }
    EXPECT(err == want);
    EXPECT(canary);
    /* the library is usable again with an honest host */
    F.lie = LIE_NONE;
    F.busy = 0;
    err = guarded_echo(&d, ch, 16, 64, &canary);
    EXPECT(err == 0 || lie == LIE_NEVER);
    report(name, ok);
}

static void neg_case(const char *name, enum lie lie, int want)
{
    struct coca_dev d;
    int ok = 1, err;

    reset_fake(lie);
    EXPECT(coca_probe(&d, &ops_page, 0) == 0);
    err = coca_negotiate(&d, COCA_FEAT_ALL);
    EXPECT(err == want);
    EXPECT(want != 0 || d.negotiated == COCA_FEAT_ALL);
    EXPECT(want == 0 || d.proto == 0);
    report(name, ok);
}

static void probe_case(const char *name, enum lie lie, int want)
{
    struct coca_dev d;
    int ok = 1;

    reset_fake(lie);
    EXPECT(coca_probe(&d, &ops_page, 0) == want);
    report(name, ok);
}

/* ------------------------------------------------------------------ */
/* Waiting without a clock: d->poll_limit polls                        */
/* ------------------------------------------------------------------ */

/*
 * Poll limit cases on one channel (the fake host answers a page request
 * at poll delay + 1, a port request at poll delay): an answer at the
 * last poll allowed is taken, a request that stays PENDING (page) or
 * BUSY (port) ends in COCA_E_POLL_LIMIT after exactly poll_limit polls,
 * and the device is usable again.
 */
static void poll_limit_case(const char *name, struct coca_ops *ops,
                            enum coca_channel ch)
{
    const uint32_t limit = 1000;
    struct coca_dev d;
    int ok = 1, canary, err;

    EXPECT(ready(&d, ops, LIE_NONE) == 0);
    EXPECT(d.poll_limit == COCA_POLL_LIMIT_DEFAULT);
    d.poll_limit = limit;
    F.delay = ch == COCA_CH_PAGE ? limit - 1 : limit;
    EXPECT(guarded_echo(&d, ch, 10, 64, &canary) == 0 && canary);

    F.lie = LIE_NEVER;
    F.status_reads = F.relaxes = F.never_polls = 0;
    err = guarded_echo(&d, ch, 10, 64, &canary);
    if (err != COCA_E_POLL_LIMIT) {
        printf("# got %d (%s) after %u polls\n", err, coca_strerror(err),
               F.never_polls);
    }
    EXPECT(err == COCA_E_POLL_LIMIT && canary && !d.in_flight);
    /* polls: STATUS reads on the port, relax between page polls */
    EXPECT(ch == COCA_CH_PAGE ? F.relaxes == limit - 1
                              : F.status_reads == limit);
    EXPECT(!strcmp(coca_strerror(err), "no answer within the poll limit"));

    F.lie = LIE_NONE;
    F.busy = 0;
    EXPECT(guarded_echo(&d, ch, 16, 64, &canary) == 0 && canary);
    report(name, ok);
}

static void no_clock_tests(void)
{
    struct coca_dev d;
    int ok, canary;

    poll_limit_case("no-clock-page-pending-poll-limit", &ops_page_noclock,
                    COCA_CH_PAGE);
    poll_limit_case("no-clock-port-busy-poll-limit", &ops_port_noclock,
                    COCA_CH_PORT);

    /* the default budget: a slow host answering well within it */
    ok = 1;
    EXPECT(ready(&d, &ops_page_noclock, LIE_NONE) == 0);
    EXPECT(d.poll_limit == COCA_POLL_LIMIT_DEFAULT &&
           d.timeout_us == COCA_TIMEOUT_US_DEFAULT);
    F.delay = 200000;
    EXPECT(guarded_echo(&d, COCA_CH_PAGE, 10, 64, &canary) == 0 && canary);
    report("no-clock-default-limit-waits-for-slow-host", ok);

    /* a limit of 0 still polls once */
    ok = 1;
    EXPECT(ready(&d, &ops_port_noclock, LIE_NEVER) == 0);
    d.poll_limit = 0;
    F.status_reads = 0;
    EXPECT(guarded_echo(&d, COCA_CH_PORT, 10, 64, &canary) ==
           COCA_E_POLL_LIMIT && canary);
    EXPECT(F.status_reads == 1);
    F.lie = LIE_NONE;
    EXPECT(guarded_echo(&d, COCA_CH_PORT, 10, 64, &canary) == 0);
    report("no-clock-poll-limit-0-polls-once", ok);

    /* each RETRY resubmission starts a new wait */
    ok = 1;
    EXPECT(ready(&d, &ops_page_noclock, LIE_RETRY_ONCE) == 0);
    d.poll_limit = 100;
    F.delay_each = 80;          /* 81 polls each, 162 in all */
    EXPECT(guarded_echo(&d, COCA_CH_PAGE, 10, 64, &canary) == 0);
    EXPECT(d.retries == 1 && F.relaxes == 160);
    report("no-clock-poll-limit-per-resubmission", ok);
}

/* ------------------------------------------------------------------ */
/* KBS forwarding                                                      */
/* ------------------------------------------------------------------ */

#define KBS_CAP     1024
#define CANARY      64

static uint8_t kbs_buf[BUF_LEN + CANARY];

static int canary_intact(uint32_t cap)
{
    uint32_t i;

    for (i = cap; i < cap + CANARY; i++) {
        if (kbs_buf[i] != 0xa5) {
            return 0;
        }
    }
    return 1;
}

/* POST body through a canary-guarded buffer of cap bytes */
static int kbs_post(struct coca_dev *d, const char *body, uint32_t cap,
                    struct coca_kbs_reply *r)
{
    memset(kbs_buf, 0xa5, sizeof(kbs_buf));
    return coca_kbs_forward(d, 7, COCA_KBS_POST, "/kbs/v0/auth",
                            "application/json", body, strlen(body),
                            kbs_buf, cap, r);
}

static void kbs_config_case(const char *name, enum lie lie, int want)
{
    struct coca_dev d;
    struct coca_kbs_config c;
    int ok = 1, err;

    EXPECT(ready(&d, &ops_page, lie) == 0);
    memset(&c, 0x5a, sizeof(c));
    err = coca_kbs_config(&d, &c);
    if (err != want) {
        printf("# got %d (%s), want %d\n", err, coca_strerror(err), want);
    }
    EXPECT(err == want);
    if (!want) {
        EXPECT(!strcmp(c.protocol, COCA_KBS_PROTOCOL));
        EXPECT(!strcmp(c.url, "http://10.0.2.2:8080"));
        EXPECT(c.max_sessions == 4 && c.session_timeout == 300 &&
               c.max_body == 65536 && c.max_response == 65536 &&
               c.timeout_ms == 2000 && c.reserved == 0);
        EXPECT(d.kbs_configured && d.kbs_timeout_ms == 2000);
    } else {
        EXPECT(!d.kbs_configured);
    }
    report(name, ok);
}

static void kbs_open_case(const char *name, enum lie lie, int want)
{
    struct coca_dev d;
    uint32_t s = 99;
    int ok = 1;

    EXPECT(ready(&d, &ops_page, lie) == 0);
    EXPECT(coca_kbs_open(&d, &s) == want);
    EXPECT(want ? s == 0 : s == 7);
    report(name, ok);
}

static void kbs_forward_case(const char *name, struct coca_ops *ops,
                             enum lie lie, int want)
{
    struct coca_dev d;
    struct coca_kbs_reply r;
    int ok = 1, err;

    EXPECT(ready(&d, ops, lie) == 0);
    memset(&r, 0x5a, sizeof(r));
    err = kbs_post(&d, "{\"a\":1}", KBS_CAP, &r);
    if (err != want) {
        printf("# got %d (%s), want %d\n", err, coca_strerror(err), want);
    }
    EXPECT(err == want);
    EXPECT(canary_intact(KBS_CAP));
    if (!want) {
        EXPECT(r.http_status == 200 && r.body_len == 7 &&
               !memcmp(kbs_buf, "{\"a\":1}", 7) &&
               !strcmp(r.ctype, "application/json"));
    }
    /* usable again with an honest host */
    F.lie = LIE_NONE;
    EXPECT(kbs_post(&d, "{}", KBS_CAP, &r) == 0 && r.body_len == 2);
    report(name, ok);
}

static void kbs_tests(void)
{
    static const struct {
        const char *name;
        enum lie lie;
        int want;
    } fwd_lies[] = {
        { "kbs-forward-http-99", LIE_KBS_HTTP_99, COCA_E_PROTO },
        { "kbs-forward-http-600", LIE_KBS_HTTP_600, COCA_E_PROTO },
        { "kbs-forward-http-0", LIE_KBS_HTTP_0, COCA_E_PROTO },
        { "kbs-forward-trailing-byte", LIE_KBS_LEN_PLUS, COCA_E_PROTO },
        { "kbs-forward-body-short", LIE_KBS_LEN_MINUS, COCA_E_PROTO },
        { "kbs-forward-body-len-huge", LIE_KBS_BODY_HUGE, COCA_E_PROTO },
        { "kbs-forward-ctype-too-long", LIE_KBS_CTYPE_LONG, COCA_E_PROTO },
        { "kbs-forward-ctype-nul", LIE_KBS_CTYPE_NUL, COCA_E_PROTO },
        { "kbs-forward-ctype-control", LIE_KBS_CTYPE_CTRL, COCA_E_PROTO },
        { "kbs-forward-response-short", LIE_KBS_RESP_SHORT, COCA_E_PROTO },
        { "kbs-forward-status-timeout", LIE_KBS_STATUS_TIMEOUT,
          COCA_E_STATUS },
        { "kbs-forward-wrong-seq", LIE_SEQ, COCA_E_PROTO },
    };
    struct coca_dev d;
    struct coca_kbs_reply r;
    uint32_t s, i;
    int ok;

    /* configuration */
    kbs_config_case("kbs-config-honest", LIE_NONE, 0);
    kbs_config_case("kbs-config-short", LIE_KBS_CFG_SHORT, COCA_E_PROTO);
    kbs_config_case("kbs-config-long", LIE_KBS_CFG_LONG, COCA_E_PROTO);
    kbs_config_case("kbs-config-protocol-no-nul", LIE_KBS_CFG_PROTO_NUL,
                    COCA_E_PROTO);
    kbs_config_case("kbs-config-url-no-nul", LIE_KBS_CFG_URL_NUL,
                    COCA_E_PROTO);
    kbs_config_case("kbs-config-reserved", LIE_KBS_CFG_RESERVED,
                    COCA_E_PROTO);

    /* sessions */
    kbs_open_case("kbs-open-honest", LIE_NONE, 0);
    kbs_open_case("kbs-open-session-0", LIE_KBS_SESSION_0, COCA_E_PROTO);
    kbs_open_case("kbs-open-reserved", LIE_KBS_SESSION_RESERVED,
                  COCA_E_PROTO);
    kbs_open_case("kbs-open-short", LIE_KBS_OPEN_SHORT, COCA_E_PROTO);
    kbs_open_case("kbs-open-busy", LIE_KBS_OPEN_BUSY, COCA_E_STATUS);

    ok = 1;
    EXPECT(ready(&d, &ops_page, LIE_NONE) == 0);
    EXPECT(coca_kbs_close(&d, 7) == 0);
    EXPECT(coca_kbs_close(&d, 8) == COCA_E_STATUS &&
           d.last_status == COCA_STATUS_NO_SESSION);
    EXPECT(coca_kbs_close(&d, 0) == COCA_E_INVAL);
    F.lie = LIE_KBS_CLOSE_PAYLOAD;
    EXPECT(coca_kbs_close(&d, 7) == COCA_E_PROTO);
    report("kbs-close", ok);

    /* the forwarded request, byte for byte, and the answer */
    ok = 1;
    EXPECT(ready(&d, &ops_page, LIE_NONE) == 0);
    EXPECT(coca_kbs_open(&d, &s) == 0 && s == 7);
    F.nops = 0;
    memset(&r, 0x5a, sizeof(r));
    EXPECT(kbs_post(&d, "{\"x\":\"y\"}", KBS_CAP, &r) == 0);
    /* the host's timeout was learnt first */
    EXPECT(F.nops == 2 && F.ops_seen[0] == COCA_OP_KBS_CONFIG &&
           F.ops_seen[1] == COCA_OP_KBS_FORWARD);
    EXPECT(F.fwd_len == 16 + 12 + 16 + 9);
    EXPECT(rd32(F.fwd) == 7 && F.fwd[4] == COCA_KBS_POST && F.fwd[5] == 0 &&
           F.fwd[6] == 12 && F.fwd[8] == 16 && rd32(F.fwd + 12) == 9 &&
           !F.fwd[10] && !F.fwd[11]);
    EXPECT(!memcmp(F.fwd + 16, "/kbs/v0/auth" "application/json"
                   "{\"x\":\"y\"}", 12 + 16 + 9));
    EXPECT(!(F.fwd_flags & COCA_FLAG_EXT_BUF));
    EXPECT(r.http_status == 200 && r.body_len == 9 &&
           !strcmp(r.ctype, "application/json") &&
           !memcmp(kbs_buf, "{\"x\":\"y\"}", 9));
    EXPECT(canary_intact(KBS_CAP));
    /* a GET: no content type, no body */
    F.nops = 0;
    F.kbs_resp_body = 300;
    F.kbs_http = 401;
    memset(kbs_buf, 0xa5, sizeof(kbs_buf));
    EXPECT(coca_kbs_forward(&d, 7, COCA_KBS_GET, "/kbs/v0/resource/a/b/c",
                            NULL, NULL, 0, kbs_buf, KBS_CAP, &r) == 0);
    EXPECT(F.nops == 1);
    EXPECT(F.fwd_len == 16 + 22 && F.fwd[4] == COCA_KBS_GET &&
           F.fwd[6] == 22 && F.fwd[8] == 0 && rd32(F.fwd + 12) == 0 &&
           !memcmp(F.fwd + 16, "/kbs/v0/resource/a/b/c", 22));
    EXPECT(r.http_status == 401 && r.body_len == 300 &&
           kbs_buf[299] == (uint8_t)(299 * 7 + 3));
    EXPECT(canary_intact(KBS_CAP));
    report("kbs-forward-request-layout", ok);

    /* bodies larger than the page go through the external buffer */
    ok = 1;
    EXPECT(ready(&d, &ops_page, LIE_NONE) == 0);
    {
        static uint8_t big[20000];

        for (i = 0; i < sizeof(big); i++) {
            big[i] = (uint8_t)(i * 5 + 1);
        }
        memset(kbs_buf, 0xa5, sizeof(kbs_buf));
        EXPECT(coca_kbs_forward(&d, 7, COCA_KBS_POST, "/kbs/v0/attest",
                                "application/json", big, sizeof(big),
                                kbs_buf, BUF_LEN, &r) == 0);
        EXPECT(F.fwd_flags & COCA_FLAG_EXT_BUF);
        EXPECT(F.fwd_len == 16 + 14 + 16 + sizeof(big) &&
               !memcmp(F.fwd + 16 + 14 + 16, big, sizeof(big)));
        EXPECT(r.body_len == sizeof(big) &&
               !memcmp(kbs_buf, big, sizeof(big)));
        EXPECT(canary_intact(BUF_LEN));
        /* and through the port channel */
        EXPECT(ready(&d, &ops_port, LIE_NONE) == 0);
        memset(kbs_buf, 0xa5, sizeof(kbs_buf));
        EXPECT(coca_kbs_forward(&d, 7, COCA_KBS_POST, "/kbs/v0/attest",
                                "application/json", big, 5001, kbs_buf,
                                6000, &r) == 0);
        EXPECT(r.body_len == 5001 && !memcmp(kbs_buf, big, 5001));
        EXPECT(canary_intact(6000));
    }
    report("kbs-forward-large-bodies", ok);

    /* the answer does not fit the caller's buffer */
    ok = 1;
    EXPECT(ready(&d, &ops_page, LIE_NONE) == 0);
    F.kbs_resp_body = 2000;
    EXPECT(kbs_post(&d, "{}", KBS_CAP, &r) == COCA_E_TOOBIG);
    EXPECT(r.needed == 8 + 16 + 2000 && r.body_len == 0);
    EXPECT(canary_intact(KBS_CAP));
    EXPECT(ready(&d, &ops_port, LIE_NONE) == 0);
    F.kbs_resp_body = 2000;
    EXPECT(kbs_post(&d, "{}", KBS_CAP, &r) == COCA_E_TOOBIG);
    EXPECT(canary_intact(KBS_CAP));
    F.kbs_resp_body = 0;
    EXPECT(kbs_post(&d, "{}", KBS_CAP, &r) == 0);
    report("kbs-forward-body-larger-than-buffer", ok);

    for (i = 0; i < sizeof(fwd_lies) / sizeof(fwd_lies[0]); i++) {
        kbs_forward_case(fwd_lies[i].name, &ops_page, fwd_lies[i].lie,
                         fwd_lies[i].want);
    }
    kbs_forward_case("kbs-forward-lengths-port", &ops_port, LIE_KBS_LEN_PLUS,
                     COCA_E_PROTO);
    kbs_forward_case("kbs-forward-http-port", &ops_port, LIE_KBS_HTTP_600,
                     COCA_E_PROTO);
    ok = 1;
    EXPECT(ready(&d, &ops_page, LIE_KBS_STATUS_TIMEOUT) == 0);
    EXPECT(kbs_post(&d, "{}", KBS_CAP, &r) == COCA_E_STATUS);
    EXPECT(d.last_status == COCA_STATUS_KBS_TIMEOUT &&
           !strcmp(coca_status_name(d.last_status), "KBS_TIMEOUT"));
    report("kbs-forward-status-name", ok);
    /* a configuration the library refuses stops the forward too */
    ok = 1;
    EXPECT(ready(&d, &ops_page, LIE_KBS_CFG_URL_NUL) == 0);
    EXPECT(kbs_post(&d, "{}", KBS_CAP, &r) == COCA_E_PROTO);
    EXPECT(F.kbs_forward_calls == 0);
    report("kbs-forward-bad-config", ok);

    /* caller mistakes never reach the host */
    ok = 1;
    EXPECT(ready(&d, &ops_page, LIE_NONE) == 0);
    {
        char longpath[COCA_KBS_PATH_MAX + 2], longct[COCA_KBS_CTYPE_MAX + 2];

        memset(longpath, 'p', sizeof(longpath) - 1);
        longpath[0] = '/';
        longpath[sizeof(longpath) - 1] = 0;
        memset(longct, 'c', sizeof(longct) - 1);
        longct[sizeof(longct) - 1] = 0;
        EXPECT(coca_kbs_forward(&d, 0, COCA_KBS_POST, "/kbs/v0/auth", "a/b",
                                "{}", 2, kbs_buf, KBS_CAP, &r) ==
               COCA_E_INVAL);
        EXPECT(coca_kbs_forward(&d, 7, 3, "/kbs/v0/auth", "a/b", "{}", 2,
                                kbs_buf, KBS_CAP, &r) == COCA_E_INVAL);
        EXPECT(coca_kbs_forward(&d, 7, COCA_KBS_GET, "/kbs/v0/auth", NULL,
                                "{}", 2, kbs_buf, KBS_CAP, &r) ==
               COCA_E_INVAL);
        EXPECT(coca_kbs_forward(&d, 7, COCA_KBS_GET, "/kbs/v0/auth", "a/b",
                                NULL, 0, kbs_buf, KBS_CAP, &r) ==
               COCA_E_INVAL);
        EXPECT(coca_kbs_forward(&d, 7, COCA_KBS_POST, "/kbs/v0/auth", "",
                                "{}", 2, kbs_buf, KBS_CAP, &r) ==
               COCA_E_INVAL);
        EXPECT(coca_kbs_forward(&d, 7, COCA_KBS_POST, "", "a/b", "{}", 2,
                                kbs_buf, KBS_CAP, &r) == COCA_E_INVAL);
        EXPECT(coca_kbs_forward(&d, 7, COCA_KBS_POST, "/a b", "a/b", "{}",
                                2, kbs_buf, KBS_CAP, &r) == COCA_E_INVAL);
        EXPECT(coca_kbs_forward(&d, 7, COCA_KBS_POST, longpath, "a/b", "{}",
                                2, kbs_buf, KBS_CAP, &r) == COCA_E_INVAL);
        longpath[COCA_KBS_PATH_MAX] = 0;
        EXPECT(coca_kbs_forward(&d, 7, COCA_KBS_POST, longpath, longct,
                                "{}", 2, kbs_buf, KBS_CAP, &r) ==
               COCA_E_INVAL);
        EXPECT(coca_kbs_forward(&d, 7, COCA_KBS_POST, "/kbs/v0/auth",
                                "a\nb", "{}", 2, kbs_buf, KBS_CAP, &r) ==
               COCA_E_INVAL);
        EXPECT(coca_kbs_forward(&d, 7, COCA_KBS_POST, "/kbs/v0/auth", "a/b",
                                NULL, 2, kbs_buf, KBS_CAP, &r) ==
               COCA_E_INVAL);
        EXPECT(coca_kbs_forward(&d, 7, COCA_KBS_POST, "/kbs/v0/auth", "a/b",
                                "{}", 2, kbs_buf, KBS_CAP, NULL) ==
               COCA_E_INVAL);
        /* the request must fit buf: 16 + 12 + 3 + 2 */
        EXPECT(coca_kbs_forward(&d, 7, COCA_KBS_POST, "/kbs/v0/auth", "a/b",
                                "{}", 2, kbs_buf, 32, &r) == COCA_E_TOOBIG &&
               r.needed == 33);
        EXPECT(F.nops == 0);    /* nothing reached the host */
        /* the longest path and content type do go through */
        longct[COCA_KBS_CTYPE_MAX] = 0;
        EXPECT(coca_kbs_forward(&d, 7, COCA_KBS_POST, longpath, longct,
                                "{}", 2, kbs_buf, KBS_CAP, &r) == 0);
    }
    report("kbs-forward-caller-mistakes", ok);

    ok = 1;
    reset_fake(LIE_NONE);
    EXPECT(coca_probe(&d, &ops_page, 0) == 0);
    EXPECT(coca_kbs_open(&d, &s) == COCA_E_NOTREADY);
    EXPECT(coca_negotiate(&d, COCA_FEAT_ALL & ~COCA_FEAT_KBS) == 0);
    EXPECT(coca_kbs_open(&d, &s) == COCA_E_NOFEATURE);
    EXPECT(coca_kbs_config(&d, &(struct coca_kbs_config){ .reserved = 0 })
           == COCA_E_NOFEATURE);
    EXPECT(kbs_post(&d, "{}", KBS_CAP, &r) == COCA_E_NOFEATURE);
    EXPECT(coca_kbs_close(&d, 7) == COCA_E_NOFEATURE);
    report("kbs-needs-feature", ok);

    /*
     * Timeouts: the fake clock advances 1 ms per reading.  A forward
     * waits for the host's timeout_ms plus the margin, well past the
     * default 10 s that other calls get.
     */
    ok = 1;
    EXPECT(ready(&d, &ops_page, LIE_NONE) == 0);
    F.kbs_timeout_ms = 30000;
    EXPECT(coca_kbs_config(&d, &(struct coca_kbs_config){ .reserved = 0 })
           == 0);
    F.delay = 20000;            /* ~20 s */
    EXPECT(kbs_post(&d, "{}", KBS_CAP, &r) == 0 && r.body_len == 2);
    F.delay = 20000;
    {
        int canary;

        EXPECT(guarded_echo(&d, COCA_CH_PAGE, 10, 64, &canary) ==
               COCA_E_TIMEOUT);
    }
    report("kbs-forward-waits-for-host-timeout", ok);

    ok = 1;
    EXPECT(ready(&d, &ops_page, LIE_NONE) == 0);
    F.kbs_timeout_ms = 30000;
    EXPECT(coca_kbs_config(&d, &(struct coca_kbs_config){ .reserved = 0 })
           == 0);
    F.lie = LIE_NEVER;
    F.now = 0;
    EXPECT(kbs_post(&d, "{}", KBS_CAP, &r) == COCA_E_TIMEOUT);
    printf("# gave up after %llu ms\n", (unsigned long long)F.now / 1000);
    EXPECT(F.now >= 35000000ull && F.now < 35100000ull);
    report("kbs-forward-timeout-is-host-timeout-plus-margin", ok);

    ok = 1;
    EXPECT(ready(&d, &ops_page, LIE_NONE) == 0);
    F.kbs_timeout_ms = 100;     /* never less than d->timeout_us */
    F.lie = LIE_NEVER;
    F.now = 0;
    EXPECT(kbs_post(&d, "{}", KBS_CAP, &r) == COCA_E_TIMEOUT);
    EXPECT(F.now >= 10000000ull && F.now < 10100000ull);
    report("kbs-forward-timeout-at-least-default", ok);

    /*
     * Without a clock a forward is bounded by d->poll_limit like any
     * call: a host that answers within it is waited for, one that stays
     * PENDING is given up on.
     */
    ok = 1;
    EXPECT(ready(&d, &ops_page_noclock, LIE_NONE) == 0);
    d.poll_limit = 1000;
    EXPECT(coca_kbs_config(&d, &(struct coca_kbs_config){ .reserved = 0 })
           == 0);
    F.delay = 999;              /* answered at the 1000th poll */
    EXPECT(kbs_post(&d, "{}", KBS_CAP, &r) == 0 && r.body_len == 2);
    F.lie = LIE_NEVER;
    F.never_polls = 0;
    EXPECT(kbs_post(&d, "{}", KBS_CAP, &r) == COCA_E_POLL_LIMIT);
    printf("# gave up after %u polls\n", F.never_polls + 1);
    EXPECT(F.never_polls == 999 && !d.in_flight);
    EXPECT(canary_intact(KBS_CAP));
    F.lie = LIE_NONE;
    F.busy = 0;
    EXPECT(kbs_post(&d, "{}", KBS_CAP, &r) == 0 && r.body_len == 2);
    report("kbs-forward-no-clock-poll-limit", ok);

    ok = 1;
    for (s = COCA_STATUS_KBS_UNREACHABLE; s <= COCA_STATUS_KBS_PROTOCOL;
         s++) {
        static const char *const want[] = {
            "KBS_UNREACHABLE", "KBS_TIMEOUT", "KBS_TLS", "KBS_TOO_LARGE",
            "KBS_PATH", "NO_SESSION", "BUSY", "KBS_PROTOCOL",
        };

        EXPECT(!strcmp(coca_status_name(s),
                       want[s - COCA_STATUS_KBS_UNREACHABLE]));
    }
    EXPECT(!strcmp(coca_status_name(28), "UNKNOWN"));
    report("kbs-status-names", ok);
}

int main(void)
{
    struct coca_dev d;
    struct coca_fw_cfg info;
    int ok;

    printf("# guest library against a scripted host\n");

    /* honest host */
    reset_fake(LIE_NONE);
    ok = 1;
    EXPECT(coca_fw_cfg_find(&ops_page, &info) == 0);
    EXPECT(info.iobase == BASE && info.irq == 5);
    EXPECT(coca_probe(&d, &ops_page, 0) == 0);
    EXPECT(d.irq == 5 && d.page_registered);
    EXPECT(coca_echo(&d, COCA_CH_PAGE, 0, "x", 1, F.in, 64, &(uint32_t){0})
           == COCA_E_NOTREADY);
    EXPECT(coca_negotiate(&d, COCA_FEAT_DIAG | COCA_FEAT_EXT_BUF) == 0);
    EXPECT(d.negotiated == (COCA_FEAT_DIAG | COCA_FEAT_EXT_BUF));
    EXPECT(d.max_object == BUF_LEN);
    report("honest-probe-negotiate", ok);
    echo_case("honest-echo-page", &ops_page, COCA_CH_PAGE, LIE_NONE, 100,
              200, 0);
    echo_case("honest-echo-page-64k", &ops_page, COCA_CH_PAGE, LIE_NONE,
              BUF_LEN - 8, BUF_LEN, 0);
    echo_case("honest-echo-port", &ops_page, COCA_CH_PORT, LIE_NONE, 333,
              400, 0);
    echo_case("honest-echo-port-only", &ops_port, COCA_CH_AUTO, LIE_NONE,
              5000, 6000, 0);
    echo_case("async-completes-after-polls", &ops_page, COCA_CH_PAGE,
              LIE_PENDING_3, 10, 64, 0);
    echo_case("async-port-completes-after-polls", &ops_page, COCA_CH_PORT,
              LIE_PENDING_3, 10, 64, 0);

    /* a lying host */
    echo_case("wrong-seq-page", &ops_page, COCA_CH_PAGE, LIE_SEQ, 10, 64,
              COCA_E_PROTO);
    echo_case("wrong-seq-port", &ops_page, COCA_CH_PORT, LIE_SEQ, 10, 64,
              COCA_E_PROTO);
    echo_case("wrong-magic", &ops_page, COCA_CH_PAGE, LIE_MAGIC, 10, 64,
              COCA_E_PROTO);
    echo_case("wrong-command", &ops_page, COCA_CH_PAGE, LIE_OP, 10, 64,
              COCA_E_PROTO);
    echo_case("no-response-flag", &ops_page, COCA_CH_PAGE,
              LIE_NO_RESPONSE_FLAG, 10, 64, COCA_E_PROTO);
    echo_case("oversized-len-inline", &ops_page, COCA_CH_PAGE,
              LIE_LEN_OVER_PAGE, 10, 64, COCA_E_PROTO);
    echo_case("oversized-len-ext-buf", &ops_page, COCA_CH_PAGE,
              LIE_LEN_OVER_BUF, 5000, BUF_LEN, COCA_E_PROTO);
    echo_case("status-changes-during-copy", &ops_page, COCA_CH_PAGE,
              LIE_STATUS_FLIP, 10, 64, COCA_E_PROTO);
    echo_case("garbage-after-payload", &ops_page, COCA_CH_PAGE,
              LIE_GARBAGE_AFTER, 10, 18, 0);
    echo_case("echo-wrong-crc", &ops_page, COCA_CH_PAGE, LIE_ECHO_CRC, 10, 64,
              COCA_E_PROTO);
    echo_case("echo-wrong-data", &ops_page, COCA_CH_PAGE, LIE_ECHO_DATA, 10,
              64, COCA_E_PROTO);
    echo_case("truncated-echo", &ops_page, COCA_CH_PAGE, LIE_ECHO_LEN, 10, 64,
              COCA_E_PROTO);
    echo_case("truncated-echo-port", &ops_page, COCA_CH_PORT, LIE_ECHO_LEN,
              10, 64, COCA_E_PROTO);
    echo_case("port-bad-crc", &ops_page, COCA_CH_PORT, LIE_PORT_CRC, 10, 64,
              COCA_E_CRC);
    echo_case("port-huge-len", &ops_page, COCA_CH_PORT, LIE_PORT_HUGE_LEN, 10,
              64, COCA_E_PROTO);
    echo_case("port-no-response", &ops_page, COCA_CH_PORT, LIE_PORT_NOT_READY,
              10, 64, COCA_E_PROTO);
    echo_case("ring-accepted-but-page-untouched", &ops_page, COCA_CH_PAGE,
              LIE_SILENT_RING, 10, 64, COCA_E_REFUSED);
    echo_case("never-completes", &ops_page, COCA_CH_PAGE, LIE_NEVER, 10, 64,
              COCA_E_TIMEOUT);
    echo_case("error-status", &ops_page, COCA_CH_PAGE, LIE_STATUS_INVALID,
              10, 64, COCA_E_STATUS);
    echo_case("no-space", &ops_page, COCA_CH_PAGE, LIE_NO_SPACE, 10, 64,
              COCA_E_TOOBIG);
    echo_case("caller-buffer-too-small", &ops_page, COCA_CH_PAGE, LIE_NONE,
              10, 12, COCA_E_TOOBIG);

    /* RETRY (a migration mid-request): resent, a bounded number of times */
    {
        int canary;

        ok = 1;
        EXPECT(ready(&d, &ops_page, LIE_RETRY_ONCE) == 0);
        EXPECT(guarded_echo(&d, COCA_CH_PAGE, 100, 200, &canary) == 0);
        EXPECT(canary && d.retries == 1 && F.retries_sent == 1);
        report("retry-resubmitted-transparently", ok);
        ok = 1;
        EXPECT(ready(&d, &ops_page, LIE_RETRY_ALWAYS) == 0);
        EXPECT(guarded_echo(&d, COCA_CH_PAGE, 100, 200, &canary) ==
               COCA_E_STATUS);
        EXPECT(d.last_status == COCA_STATUS_RETRY);
        EXPECT(d.retries == COCA_RETRY_MAX);
        EXPECT(F.retries_sent == COCA_RETRY_MAX + 1);
        report("retry-forever-gives-up", ok);
    }
    echo_case("retry-with-payload", &ops_page, COCA_CH_PAGE,
              LIE_RETRY_PAYLOAD, 10, 64, COCA_E_PROTO);

    no_clock_tests();

    /* the port channel never reads more words than the caller can hold */
    ok = 1;
    EXPECT(ready(&d, &ops_page, LIE_PORT_HUGE_LEN) == 0);
    F.data_reads = 0;
    {
        int canary;

        EXPECT(guarded_echo(&d, COCA_CH_PORT, 10, 64, &canary) ==
               COCA_E_PROTO);
        EXPECT(canary);
    }
    EXPECT(F.data_reads == COCA_HDR_SIZE / 4);
    report("port-reads-bounded", ok);

    neg_case("negotiate-truncated", LIE_NEG_SHORT, COCA_E_PROTO);
    neg_case("negotiate-grants-unasked", LIE_NEG_GRANTS_MORE, COCA_E_PROTO);
    neg_case("negotiate-bad-max-object", LIE_NEG_BAD_MAX, COCA_E_PROTO);
    neg_case("negotiate-bad-version", LIE_NEG_BAD_PROTO, COCA_E_PROTO);
    neg_case("negotiate-wrong-seq", LIE_SEQ, COCA_E_PROTO);

    probe_case("probe-bad-signature", LIE_BAD_SIGNATURE, COCA_E_NODEV);
    probe_case("probe-unknown-transport", LIE_BAD_TRANSPORT, COCA_E_NODEV);
    probe_case("probe-page-refused", LIE_REFUSE_PAGE, COCA_E_REFUSED);

    reset_fake(LIE_FWCFG_HUGE_DIR);
    ok = 1;
    EXPECT(coca_fw_cfg_find(&ops_page, &info) == COCA_E_PROTO);
    report("fw-cfg-huge-directory", ok);
    reset_fake(LIE_FWCFG_BAD_SIZE);
    ok = 1;
    EXPECT(coca_fw_cfg_find(&ops_page, &info) == COCA_E_PROTO);
    /* probing still finds the device at the default port */
    EXPECT(coca_probe(&d, &ops_page, 0) == 0);
    report("fw-cfg-bad-file-size", ok);

    /* caller mistakes */
    ok = 1;
    EXPECT(ready(&d, &ops_port, LIE_NONE) == 0);
    EXPECT(coca_call(&d, COCA_CH_PAGE, COCA_OP_ECHO, NULL, 0, NULL, 0, NULL)
           == COCA_E_INVAL);
    EXPECT(coca_submit(&d, COCA_CH_PORT, COCA_OP_ECHO, NULL, 1, 0) ==
           COCA_E_INVAL);
    EXPECT(coca_submit(&d, COCA_CH_PORT, COCA_OP_ECHO, F.in, BUF_LEN + 1, 0)
           == COCA_E_TOOBIG);
    report("caller-mistakes", ok);

    ok = 1;
    EXPECT(coca_crc32c(0, "123456789", 9) == 0xe3069283u);
    report("crc32c-check-value", ok);

    /* identity claims */
    {
        static const struct {
            const char *name;
            enum lie lie;
            int want;
        } id_cases[] = {
            { "identity-honest", LIE_NONE, 0 },
            { "identity-string-too-long", LIE_ID_OVERLONG, COCA_E_PROTO },
            { "identity-tlv-overrun", LIE_ID_OVERRUN, COCA_E_PROTO },
            { "identity-claim-missing", LIE_ID_MISSING, COCA_E_PROTO },
            { "identity-embedded-nul", LIE_ID_NUL, COCA_E_PROTO },
        };
        size_t i;

        for (i = 0; i < sizeof(id_cases) / sizeof(id_cases[0]); i++) {
            struct coca_identity id;

            ok = 1;
            EXPECT(ready(&d, &ops_page, id_cases[i].lie) == 0);
            EXPECT(coca_get_identity(&d, &id) == id_cases[i].want);
            if (!id_cases[i].want) {
                EXPECT(!strcmp(id.project_id, "proj") &&
                       id.project_number == 77 &&
                       !strcmp(id.instance_name, "vm1") &&
                       !strcmp(id.oid, "1.2.3"));
            }
            report(id_cases[i].name, ok);
        }
    }

    /* certificate lists from the host */
    {
        uint8_t l[64];
        const uint8_t *der;
        uint32_t dl;

        memset(l, 0, sizeof(l));
        le32(l, 2);
        le32(l + 8, 3);
        memcpy(l + 12, "abc", 3);
        le32(l + 15, 2);
        memcpy(l + 19, "de", 2);
        ok = 1;
        EXPECT(coca_cert_list_get(l, 21, 1, &der, &dl) == 2 && dl == 2 &&
               der == l + 19);
        EXPECT(coca_cert_list_get(l, 21, 2, &der, &dl) == COCA_E_INVAL);
        EXPECT(coca_cert_list_get(l, 22, 0, &der, &dl) == COCA_E_PROTO);
        EXPECT(coca_cert_list_get(l, 20, 0, &der, &dl) == COCA_E_PROTO);
        EXPECT(coca_cert_list_get(l, 7, 0, &der, &dl) == COCA_E_PROTO);
        le32(l + 15, 0xfffffffe);
        EXPECT(coca_cert_list_get(l, 21, 0, &der, &dl) == COCA_E_PROTO);
        le32(l + 15, 2);
        le32(l, 0);
        EXPECT(coca_cert_list_get(l, 21, 0, &der, &dl) == COCA_E_PROTO);
        le32(l, 0x7fffffff);
        EXPECT(coca_cert_list_get(l, 21, 0, &der, &dl) == COCA_E_PROTO);
        le32(l, 2);
        le32(l + 4, 1);
        EXPECT(coca_cert_list_get(l, 21, 0, &der, &dl) == COCA_E_PROTO);
        report("cert-list-bounds", ok);
    }

    kbs_tests();

    return tap_end();
}
