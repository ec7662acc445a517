/*
 * SPDX-License-Identifier: GPL-2.0-or-later OR MIT
 *
 * coco-attest guest driver library (see coco-attest/guest.h).
 *
 * Shared memory is only ever touched through the volatile helpers below:
 * requests are written into it, responses are copied out of it once and
 * parsed from the copy.
 */

#include "coco-attest/guest.h"

/* fw_cfg legacy I/O interface */
#define FW_CFG_PORT_SEL     0x510
#define FW_CFG_PORT_DATA    0x511
#define FW_CFG_FILE_DIR     0x19
#define FW_CFG_NAME_LEN     56

/* ------------------------------------------------------------------ */
/* Little helpers (no C library)                                      */
/* ------------------------------------------------------------------ */

/*
 * Copies to and from shared memory: each byte is read or written exactly
 * once, in 32-bit units where both sides are aligned (4x fewer accesses,
 * which matters under emulation).
 */
static void copy_in(void *dst, const volatile void *src, uint32_t n)
{
    uint8_t *d = dst;
    const volatile uint8_t *s = src;

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if ((((uintptr_t)d | (uintptr_t)s) & 3) == 0) {
        for (; n >= 4; n -= 4, d += 4, s += 4) {
            uint32_t w = *(const volatile uint32_t *)s;

            d[0] = (uint8_t)w;
            d[1] = (uint8_t)(w >> 8);
            d[2] = (uint8_t)(w >> 16);
            d[3] = (uint8_t)(w >> 24);
        }
    }
#endif
    while (n--) {
        *d++ = *s++;
    }
}

static void copy_out(volatile void *dst, const void *src, uint32_t n)
{
    volatile uint8_t *d = dst;
    const uint8_t *s = src;

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if ((((uintptr_t)d | (uintptr_t)s) & 3) == 0) {
        for (; n >= 4; n -= 4, d += 4, s += 4) {
            *(volatile uint32_t *)d = (uint32_t)s[0] |
                                      (uint32_t)s[1] << 8 |
                                      (uint32_t)s[2] << 16 |
                                      (uint32_t)s[3] << 24;
        }
    }
#endif
    while (n--) {
        *d++ = *s++;
    }
}

static void mem_copy(void *dst, const void *src, uint32_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;

    while (n--) {
        *d++ = *s++;
    }
}

static void mem_zero(void *dst, uint32_t n)
{
    uint8_t *d = dst;

    while (n--) {
        *d++ = 0;
    }
}

static int mem_equal(const void *a, const void *b, uint32_t n)
{
    const uint8_t *x = a, *y = b;

    while (n--) {
        if (*x++ != *y++) {
            return 0;
        }
    }
    return 1;
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
    return get32(p) | (uint64_t)get32(p + 4) << 32;
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

static void barrier(const struct coca_ops *ops)
{
    if (ops->mb) {
        ops->mb(ops->ctx);
    } else {
        __asm__ __volatile__("" ::: "memory");
    }
}

static void dlog(const struct coca_dev *d, const char *msg)
{
    if (d->ops && d->ops->log) {
        d->ops->log(d->ops->ctx, msg);
    }
}

uint32_t coca_crc32c(uint32_t crc, const void *data, uint32_t len)
{
    const uint8_t *p = data;
    int k;

    crc = ~crc;
    while (len--) {
        crc ^= *p++;
        for (k = 0; k < 8; k++) {
            crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1)));
        }
    }
    return ~crc;
}

/* ------------------------------------------------------------------ */
/* Registers                                                           */
/* ------------------------------------------------------------------ */

static uint32_t reg_read(const struct coca_dev *d, uint16_t reg)
{
    return d->ops->inl(d->ops->ctx, (uint16_t)(d->iobase + reg));
}

static void reg_write(const struct coca_dev *d, uint16_t reg, uint32_t v)
{
    d->ops->outl(d->ops->ctx, (uint16_t)(d->iobase + reg), v);
}

/* Write a register command; return its COCA_RES_* result. */
static uint32_t reg_cmd(struct coca_dev *d, uint32_t cmd)
{
    uint32_t res;

    reg_write(d, COCA_REG_CMD, cmd);
    res = reg_read(d, COCA_REG_CMD);
    if (res != COCA_RES_OK) {
        d->last_result = res;
    }
    return res;
}

/* ------------------------------------------------------------------ */
/* Discovery                                                           */
/* ------------------------------------------------------------------ */

int coca_fw_cfg_find(const struct coca_ops *ops, struct coca_fw_cfg *info)
{
    uint8_t raw[64];
    uint32_t count, i, j, size;
    uint16_t sel;
    static const char want[] = COCA_FW_CFG_FILE;

    if (!ops || !ops->inb || !ops->outw || !info) {
        return COCA_E_INVAL;
    }
    ops->outw(ops->ctx, FW_CFG_PORT_SEL, FW_CFG_FILE_DIR);
    for (j = 0; j < 4; j++) {
        raw[j] = ops->inb(ops->ctx, FW_CFG_PORT_DATA);
    }
    count = (uint32_t)raw[0] << 24 | (uint32_t)raw[1] << 16 |
            (uint32_t)raw[2] << 8 | raw[3];
    /* a hostile directory can be long, but never makes us loop forever */
    if (count > 4096) {
        return COCA_E_PROTO;
    }
    for (i = 0; i < count; i++) {
        for (j = 0; j < sizeof(raw); j++) {
            raw[j] = ops->inb(ops->ctx, FW_CFG_PORT_DATA);
        }
        if (!mem_equal(raw + 8, want, sizeof(want))) {
            continue;
        }
        size = (uint32_t)raw[0] << 24 | (uint32_t)raw[1] << 16 |
               (uint32_t)raw[2] << 8 | raw[3];
        sel = (uint16_t)(raw[4] << 8 | raw[5]);
        if (size != sizeof(*info)) {
            return COCA_E_PROTO;
        }
        ops->outw(ops->ctx, FW_CFG_PORT_SEL, sel);
        for (j = 0; j < sizeof(*info); j++) {
            raw[j] = ops->inb(ops->ctx, FW_CFG_PORT_DATA);
        }
        info->signature = get32(raw);
        info->iobase = get16(raw + 4);
        info->irq = raw[6];
        info->reserved = raw[7];
        info->transport_major = get16(raw + 8);
        info->transport_minor = get16(raw + 10);
        if (info->signature != COCA_SIGNATURE) {
            return COCA_E_PROTO;
        }
        return 0;
    }
    return COCA_E_NODEV;
}

int coca_probe(struct coca_dev *d, const struct coca_ops *ops,
               uint16_t iobase)
{
    struct coca_fw_cfg info;
    uint8_t irq = 0;

    if (!d || !ops || !ops->inl || !ops->outl) {
        return COCA_E_INVAL;
    }
    mem_zero(d, sizeof(*d));
    d->ops = ops;
    d->timeout_us = COCA_TIMEOUT_US_DEFAULT;
    d->poll_limit = COCA_POLL_LIMIT_DEFAULT;
    if (!iobase) {
        iobase = COCA_DEFAULT_IOBASE;
        if (ops->inb && ops->outw && coca_fw_cfg_find(ops, &info) == 0) {
            iobase = info.iobase;
            irq = info.irq;
        }
    }
    if (iobase > 0x10000 - COCA_IO_SIZE) {
        return COCA_E_INVAL;
    }
    d->iobase = iobase;
    d->irq = irq;
    if (reg_read(d, COCA_REG_SIGNATURE) != COCA_SIGNATURE) {
        return COCA_E_NODEV;
    }
    d->transport = reg_read(d, COCA_REG_VERSION);
    if (d->transport >> 16 != COCA_TRANSPORT_MAJOR) {
        dlog(d, "coco-attest: unknown transport major version");
        return COCA_E_NODEV;
    }
    d->channel = COCA_CH_PORT;
    if (ops->page) {
        if ((ops->page_gpa & (COCA_PAGE_SIZE - 1)) != 0) {
            return COCA_E_INVAL;
        }
        reg_write(d, COCA_REG_PAGE_LO, (uint32_t)ops->page_gpa);
        reg_write(d, COCA_REG_PAGE_HI, (uint32_t)(ops->page_gpa >> 32));
        if (reg_cmd(d, COCA_CMD_REGISTER_PAGE) != COCA_RES_OK) {
            dlog(d, "coco-attest: the device refused the request page");
            return COCA_E_REFUSED;
        }
        d->page_registered = 1;
        d->channel = COCA_CH_PAGE;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Requests                                                            */
/* ------------------------------------------------------------------ */

static void build_hdr(uint8_t *h, uint16_t op, uint32_t flags, uint32_t seq,
                      uint32_t req_len, uint64_t buf_gpa, uint32_t buf_len)
{
    mem_zero(h, COCA_HDR_SIZE);
    put32(h + 0, COCA_MSG_MAGIC);
    put16(h + 4, COCA_MSG_VERSION);
    put16(h + 6, op);
    put32(h + 8, flags);
    put32(h + 12, seq);
    put32(h + 16, COCA_STATUS_NONE);
    put32(h + 20, req_len);
    put64(h + 32, buf_gpa);
    put32(h + 40, buf_len);
}

/*
 * Check a response header copy against the request in flight.  Returns
 * 0 with *status and *len filled in, or COCA_E_PROTO.
 */
static int check_hdr(struct coca_dev *d, const uint8_t *h, uint32_t *status,
                     uint32_t *len)
{
    uint32_t flags = get32(h + 8);

    if (get32(h) != COCA_MSG_MAGIC || get16(h + 4) != COCA_MSG_VERSION ||
        get16(h + 6) != d->cur_op || get32(h + 12) != d->seq ||
        !(flags & COCA_FLAG_RESPONSE)) {
        dlog(d, "coco-attest: response header does not match the request");
        return COCA_E_PROTO;
    }
    *status = get32(h + 16);
    *len = get32(h + 24);
    return 0;
}

static int resolve_channel(struct coca_dev *d, enum coca_channel ch)
{
    if (ch == COCA_CH_AUTO) {
        ch = d->channel;
    }
    if (ch == COCA_CH_PAGE && !d->page_registered) {
        return COCA_E_INVAL;
    }
    return ch == COCA_CH_PAGE || ch == COCA_CH_PORT ? (int)ch : COCA_E_INVAL;
}

int coca_submit(struct coca_dev *d, enum coca_channel ch, uint16_t op,
                const void *req, uint32_t req_len, uint32_t resp_cap)
{
    const struct coca_ops *ops;
    uint8_t h[COCA_HDR_SIZE];
    uint32_t i, res, limit;
    int c;

    if (!d || !d->ops || (req_len && !req)) {
        return COCA_E_INVAL;
    }
    if (d->in_flight) {
        return COCA_E_BUSY;
    }
    ops = d->ops;
    c = resolve_channel(d, ch);
    if (c < 0) {
        return c;
    }
    limit = d->max_object ? d->max_object : COCA_INLINE_MAX;
    if (req_len > limit) {
        return COCA_E_TOOBIG;
    }
    d->seq++;
    d->cur_op = op;
    d->cur_chan = (uint8_t)c;
    d->cur_ext = 0;
    d->last_status = COCA_STATUS_NONE;

    if (c == COCA_CH_PAGE) {
        /* objects larger than the page go through the external buffer */
        if (req_len > COCA_INLINE_MAX || resp_cap > COCA_INLINE_MAX) {
            d->cur_ext = ops->buf && ops->buf_len &&
                         (d->negotiated & COCA_FEAT_EXT_BUF);
            if (!d->cur_ext && req_len > COCA_INLINE_MAX) {
                return COCA_E_NOFEATURE;
            }
        }
        if (d->cur_ext) {
            if (req_len > ops->buf_len) {
                return COCA_E_TOOBIG;
            }
            build_hdr(h, op, COCA_FLAG_EXT_BUF, d->seq, req_len,
                      ops->buf_gpa, ops->buf_len);
            copy_out(ops->buf, req, req_len);
        } else {
            build_hdr(h, op, 0, d->seq, req_len, 0, 0);
            copy_out((volatile uint8_t *)ops->page + COCA_HDR_SIZE, req,
                     req_len);
        }
        copy_out(ops->page, h, COCA_HDR_SIZE);
        barrier(ops);
        /*
         * One VM exit: the device writes PENDING or the final status into
         * the page before the doorbell write returns, so the result
         * register is only worth a second exit if it did not.
         */
        reg_write(d, COCA_REG_CMD, COCA_CMD_RING);
        barrier(ops);
        copy_in(h, (const volatile uint8_t *)ops->page + 16, 4);
        res = COCA_RES_OK;
        if (get32(h) == COCA_STATUS_NONE) {
            res = reg_read(d, COCA_REG_CMD);
            if (res == COCA_RES_OK) {
                /* accepted but nothing written: the host is broken */
                res = COCA_RES_BAD_PAGE;
            }
            d->last_result = res;
        }
    } else {
        uint32_t crc, word;
        const uint8_t *p = req;

        build_hdr(h, op, 0, d->seq, req_len, 0, 0);
        if (reg_cmd(d, COCA_CMD_PORT_BEGIN) != COCA_RES_OK) {
            return d->last_result == COCA_RES_BUSY ? COCA_E_BUSY
                                                   : COCA_E_REFUSED;
        }
        for (i = 0; i < COCA_HDR_SIZE; i += 4) {
            reg_write(d, COCA_REG_DATA, get32(h + i));
        }
        for (i = 0; i < req_len; i += 4) {
            uint8_t w[4] = { 0, 0, 0, 0 };

            mem_copy(w, p + i, req_len - i < 4 ? req_len - i : 4);
            word = get32(w);
            reg_write(d, COCA_REG_DATA, word);
        }
        crc = coca_crc32c(0, h, COCA_HDR_SIZE);
        crc = coca_crc32c(crc, req, req_len);
        reg_write(d, COCA_REG_CRC, crc);
        res = reg_cmd(d, COCA_CMD_PORT_SUBMIT);
    }
    if (res != COCA_RES_OK) {
        return res == COCA_RES_BUSY ? COCA_E_BUSY : COCA_E_REFUSED;
    }
    d->in_flight = 1;
    return 0;
}

static int poll_page(struct coca_dev *d, void *resp, uint32_t resp_cap,
                     uint32_t *resp_len)
{
    const struct coca_ops *ops = d->ops;
    const volatile uint8_t *page = ops->page;
    uint8_t h[COCA_HDR_SIZE], s[4];
    uint32_t status, hstatus, len, cap;

    copy_in(s, page + 16, 4);
    status = get32(s);
    if (status == COCA_STATUS_PENDING || status == COCA_STATUS_NONE) {
        return COCA_E_AGAIN;
    }
    d->in_flight = 0;
    /* the status is read before anything it vouches for */
    barrier(ops);
    copy_in(h, page, COCA_HDR_SIZE);
    if (check_hdr(d, h, &hstatus, &len) < 0) {
        return COCA_E_PROTO;
    }
    if (hstatus != status) {
        dlog(d, "coco-attest: status changed while reading the response");
        return COCA_E_PROTO;
    }
    d->last_status = status;
    if (status == COCA_STATUS_NO_SPACE) {
        *resp_len = len;
        return COCA_E_TOOBIG;
    }
    if (status == COCA_STATUS_RETRY && len) {
        /* nothing may land in a buffer the retry is sent from */
        dlog(d, "coco-attest: a RETRY answer with a payload");
        return COCA_E_PROTO;
    }
    cap = d->cur_ext ? ops->buf_len : COCA_INLINE_MAX;
    if (len > cap) {
        dlog(d, "coco-attest: response length exceeds the buffer offered");
        return COCA_E_PROTO;
    }
    *resp_len = len;
    if (len > resp_cap) {
        return COCA_E_TOOBIG;
    }
    if (len) {
        copy_in(resp, d->cur_ext ? (const volatile uint8_t *)ops->buf
                                  : page + COCA_HDR_SIZE, len);
    }
    return status == COCA_STATUS_OK ? 0 : COCA_E_STATUS;
}

static int poll_port(struct coca_dev *d, void *resp, uint32_t resp_cap,
                     uint32_t *resp_len)
{
    uint8_t h[COCA_HDR_SIZE], w[4];
    uint8_t *out = resp;
    uint32_t sts, status, len, i, crc, want;
    int err;

    sts = reg_read(d, COCA_REG_STATUS);
    if (sts & COCA_STS_BUSY) {
        return COCA_E_AGAIN;
    }
    d->in_flight = 0;
    if (!(sts & COCA_STS_PORT_RESPONSE)) {
        dlog(d, "coco-attest: no port response although the device is idle");
        return COCA_E_PROTO;
    }
    for (i = 0; i < COCA_HDR_SIZE; i += 4) {
        put32(h + i, reg_read(d, COCA_REG_DATA));
    }
    crc = coca_crc32c(0, h, COCA_HDR_SIZE);
    err = check_hdr(d, h, &status, &len);
    if (err < 0) {
        reg_cmd(d, COCA_CMD_ACK);
        return err;
    }
    d->last_status = status;
    *resp_len = len;
    if (status == COCA_STATUS_NO_SPACE) {
        len = 0;                /* no payload follows */
        err = COCA_E_TOOBIG;
    } else if (status == COCA_STATUS_RETRY && len) {
        dlog(d, "coco-attest: a RETRY answer with a payload");
        reg_cmd(d, COCA_CMD_ACK);
        return COCA_E_PROTO;
    } else if (len > (d->max_object ? d->max_object : COCA_INLINE_MAX)) {
        dlog(d, "coco-attest: response length exceeds the negotiated limit");
        reg_cmd(d, COCA_CMD_ACK);
        return COCA_E_PROTO;
    } else if (len > resp_cap) {
        /* never read more words than the caller's buffer holds */
        reg_cmd(d, COCA_CMD_ACK);
        return COCA_E_TOOBIG;
    }
    for (i = 0; i < len; i += 4) {
        put32(w, reg_read(d, COCA_REG_DATA));
        mem_copy(out + i, w, len - i < 4 ? len - i : 4);
        crc = coca_crc32c(crc, w, len - i < 4 ? len - i : 4);
    }
    want = reg_read(d, COCA_REG_CRC);
    reg_cmd(d, COCA_CMD_ACK);
    if (crc != want) {
        dlog(d, "coco-attest: port response CRC mismatch");
        return COCA_E_CRC;
    }
    if (err) {
        return err;
    }
    return status == COCA_STATUS_OK ? 0 : COCA_E_STATUS;
}

int coca_poll(struct coca_dev *d, void *resp, uint32_t resp_cap,
              uint32_t *resp_len)
{
    uint32_t dummy;

    if (!d || !d->ops || (resp_cap && !resp)) {
        return COCA_E_INVAL;
    }
    if (!d->in_flight) {
        return COCA_E_INVAL;
    }
    if (!resp_len) {
        resp_len = &dummy;
    }
    *resp_len = 0;
    return d->cur_chan == COCA_CH_PAGE ? poll_page(d, resp, resp_cap, resp_len)
                                       : poll_port(d, resp, resp_cap,
                                                   resp_len);
}

/*
 * Submit and wait: up to timeout_us with a clock, else up to
 * d->poll_limit polls (at least one).  A host that never answers (PENDING
 * in the page, BUSY in STATUS) cannot keep the guest here.
 */
static int submit_wait(struct coca_dev *d, enum coca_channel ch, uint16_t op,
                       const void *req, uint32_t req_len,
                       void *resp, uint32_t resp_cap, uint32_t *resp_len,
                       uint64_t timeout_us)
{
    const struct coca_ops *ops;
    uint64_t start = 0;
    uint32_t polls = 0;
    int err;

    err = coca_submit(d, ch, op, req, req_len, resp_cap);
    if (err < 0) {
        return err;
    }
    ops = d->ops;
    if (ops->now_us) {
        start = ops->now_us(ops->ctx);
    }
    for (;;) {
        err = coca_poll(d, resp, resp_cap, resp_len);
        if (err != COCA_E_AGAIN) {
            return err;
        }
        if (ops->now_us ? ops->now_us(ops->ctx) - start > timeout_us
                        : ++polls >= d->poll_limit) {
            /*
             * The request stays in flight on the device; the library
             * forgets it so that the caller can decide (reset, retry).
             */
            d->in_flight = 0;
            return ops->now_us ? COCA_E_TIMEOUT : COCA_E_POLL_LIMIT;
        }
        if (ops->relax) {
            ops->relax(ops->ctx);
        }
    }
}

/*
 * submit_wait, resubmitting when the host answers RETRY: the request was
 * in flight when the VM migrated, and its answer stayed on the source.
 * The request is sent again from the caller's buffer, a bounded number
 * of times.
 */
static int call_wait(struct coca_dev *d, enum coca_channel ch, uint16_t op,
                     const void *req, uint32_t req_len,
                     void *resp, uint32_t resp_cap, uint32_t *resp_len,
                     uint64_t timeout_us)
{
    uint32_t attempt;
    int err;

    for (attempt = 0;; attempt++) {
        err = submit_wait(d, ch, op, req, req_len, resp, resp_cap, resp_len,
                          timeout_us);
        if (err != COCA_E_STATUS || d->last_status != COCA_STATUS_RETRY ||
            attempt == COCA_RETRY_MAX) {
            return err;
        }
        d->retries++;
        dlog(d, "the host asked for a retry: resubmitting");
    }
}

int coca_call(struct coca_dev *d, enum coca_channel ch, uint16_t op,
              const void *req, uint32_t req_len,
              void *resp, uint32_t resp_cap, uint32_t *resp_len)
{
    if (!d) {
        return COCA_E_INVAL;
    }
    return call_wait(d, ch, op, req, req_len, resp, resp_cap, resp_len,
                     d->timeout_us);
}

/* ------------------------------------------------------------------ */
/* Typed commands                                                      */
/* ------------------------------------------------------------------ */

int coca_negotiate(struct coca_dev *d, uint64_t want)
{
    uint8_t req[sizeof(struct coca_negotiate_req)];
    uint8_t resp[sizeof(struct coca_negotiate_resp)];
    uint32_t len = 0;
    uint64_t offered, negotiated;
    uint32_t max_object, inline_max;
    uint16_t proto;
    int err;

    if (!d || !d->ops) {
        return COCA_E_INVAL;
    }
    mem_zero(req, sizeof(req));
    put16(req, COCA_PROTO_MIN);
    put16(req + 2, COCA_PROTO_MAX);
    put64(req + 8, want);
    err = coca_call(d, COCA_CH_AUTO, COCA_OP_NEGOTIATE, req, sizeof(req),
                    resp, sizeof(resp), &len);
    if (err == COCA_E_TOOBIG) {
        /* a longer response from a newer host: extensible, but the
         * library only needs the fields it knows */
        return COCA_E_PROTO;
    }
    if (err < 0) {
        return err;
    }
    if (len < sizeof(resp)) {
        dlog(d, "coco-attest: NEGOTIATE response too short");
        return COCA_E_PROTO;
    }
    proto = get16(resp);
    offered = get64(resp + 8);
    negotiated = get64(resp + 16);
    max_object = get32(resp + 24);
    inline_max = get32(resp + 28);
    /* the host may only grant what it offered and we asked for */
    if (proto < COCA_PROTO_MIN || proto > COCA_PROTO_MAX ||
        (negotiated & ~(offered & want)) ||
        max_object < COCA_MAX_OBJECT_MIN || max_object > COCA_MAX_OBJECT_MAX ||
        inline_max != COCA_INLINE_MAX) {
        dlog(d, "coco-attest: NEGOTIATE response out of range");
        return COCA_E_PROTO;
    }
    d->proto = proto;
    d->offered = offered;
    d->negotiated = negotiated;
    d->max_object = max_object;
    d->inline_max = inline_max;
    return 0;
}

int coca_echo(struct coca_dev *d, enum coca_channel ch, uint32_t flags,
              const void *data, uint32_t len,
              void *out, uint32_t out_cap, uint32_t *out_len)
{
    /*
     * The request and response need the echo header in front of the
     * data; build them in the caller's buffer to stay allocation-free:
     * out must hold len + 8 bytes.
     */
    uint8_t *o = out;
    uint32_t n = 0;
    int err;

    if (!d || (len && !data) || !out || !out_len) {
        return COCA_E_INVAL;
    }
    if (!d->proto) {
        return COCA_E_NOTREADY;
    }
    if (!(d->negotiated & COCA_FEAT_DIAG)) {
        return COCA_E_NOFEATURE;
    }
    if (len > 0xffffffffu - sizeof(struct coca_echo) ||
        out_cap < len + sizeof(struct coca_echo)) {
        return COCA_E_TOOBIG;
    }
    mem_copy(o + sizeof(struct coca_echo), data, len);
    put32(o, flags);
    put32(o + 4, 0);
    err = coca_call(d, ch, COCA_OP_ECHO, o, len + sizeof(struct coca_echo),
                    o, out_cap, &n);
    if (err < 0) {
        return err;
    }
    if (n != len + sizeof(struct coca_echo) || get32(o) != flags ||
        get32(o + 4) != ((flags & COCA_ECHO_NO_CRC) ? 0 :
                         coca_crc32c(0, o + sizeof(struct coca_echo), len)) ||
        !mem_equal(o + sizeof(struct coca_echo), data, len)) {
        dlog(d, "coco-attest: ECHO response does not match the request");
        return COCA_E_PROTO;
    }
    *out_len = len + sizeof(struct coca_echo);
    return 0;
}

/* Typed calls that need COCA_FEAT_IDENTITY */
static int need_identity(const struct coca_dev *d)
{
    if (!d || !d->ops) {
        return COCA_E_INVAL;
    }
    if (!d->proto) {
        return COCA_E_NOTREADY;
    }
    return (d->negotiated & COCA_FEAT_IDENTITY) ? 0 : COCA_E_NOFEATURE;
}

int coca_get_identity(struct coca_dev *d, struct coca_identity *id)
{
    uint8_t resp[1024];
    uint32_t len = 0, off = 0, seen = 0;
    int err = need_identity(d);

    if (err) {
        return err;
    }
    if (!id) {
        return COCA_E_INVAL;
    }
    err = coca_call(d, COCA_CH_AUTO, COCA_OP_GET_IDENTITY, 0, 0, resp,
                    sizeof(resp), &len);
    if (err) {
        return err;
    }
    mem_zero(id, sizeof(*id));
    while (off < len) {
        uint16_t tag, l;
        char *dst = 0;

        if (len - off < 4) {
            return COCA_E_PROTO;
        }
        tag = get16(resp + off);
        l = get16(resp + off + 2);
        off += 4;
        if (l > len - off) {
            dlog(d, "coco-attest: identity TLV runs past the response");
            return COCA_E_PROTO;
        }
        switch (tag) {
        case COCA_ID_PROJECT_ID:
            dst = id->project_id;
            break;
        case COCA_ID_ZONE:
            dst = id->zone;
            break;
        case COCA_ID_INSTANCE_NAME:
            dst = id->instance_name;
            break;
        case COCA_ID_INSTANCE_ID:
            dst = id->instance_id;
            break;
        case COCA_ID_OID:
            dst = id->oid;
            break;
        case COCA_ID_PROJECT_NUMBER:
            if (l != 8) {
                return COCA_E_PROTO;
            }
            id->project_number = get64(resp + off);
            break;
        default:
            break;              /* unknown tags are skipped */
        }
        if (dst) {
            uint32_t i;

            if (l > COCA_ID_STR_MAX) {
                dlog(d, "coco-attest: identity string too long");
                return COCA_E_PROTO;
            }
            for (i = 0; i < l; i++) {
                if (resp[off + i] == 0) {
                    return COCA_E_PROTO;
                }
                dst[i] = (char)resp[off + i];
            }
            dst[l] = 0;
        }
        if (tag < 32) {
            seen |= 1u << tag;
        }
        off += l;
    }
    /* every claim must be there */
    if ((seen & 0x7e) != 0x7e) {
        dlog(d, "coco-attest: identity claims incomplete");
        return COCA_E_PROTO;
    }
    return 0;
}

int coca_get_nonce(struct coca_dev *d, uint8_t nonce[COCA_NONCE_SIZE])
{
    uint32_t len = 0;
    int err = need_identity(d);

    if (err) {
        return err;
    }
    err = coca_call(d, COCA_CH_AUTO, COCA_OP_GET_NONCE, 0, 0, nonce,
                    COCA_NONCE_SIZE, &len);
    if (!err && len != COCA_NONCE_SIZE) {
        return COCA_E_PROTO;
    }
    return err;
}

int coca_cert_list_get(const uint8_t *list, uint32_t len, uint32_t index,
                       const uint8_t **der, uint32_t *der_len)
{
    uint32_t count, off = sizeof(struct coca_cert_list), i, n;

    if (!list || len < off) {
        return COCA_E_PROTO;
    }
    count = get32(list);
    if (count == 0 || count > COCA_CERT_LIST_MAX || get32(list + 4)) {
        return COCA_E_PROTO;
    }
    for (i = 0; i < count; i++) {
        if (len - off < 4) {
            return COCA_E_PROTO;
        }
        n = get32(list + off);
        off += 4;
        if (n == 0 || n > len - off) {
            return COCA_E_PROTO;
        }
        if (i == index && der && der_len) {
            *der = list + off;
            *der_len = n;
        }
        off += n;
    }
    if (off != len) {
        return COCA_E_PROTO;
    }
    return index < count ? (int)count : COCA_E_INVAL;
}

/* Send hdr8 + data built in buf, receive a certificate list into buf */
static int cert_call(struct coca_dev *d, uint16_t op, uint32_t a,
                     uint32_t b, const void *data, uint32_t data_len,
                     uint8_t *buf, uint32_t cap, uint32_t *len)
{
    int err = need_identity(d);

    if (err) {
        return err;
    }
    if (!buf || !len || (data_len && !data)) {
        return COCA_E_INVAL;
    }
    if (cap < 8 || data_len > cap - 8) {
        return COCA_E_TOOBIG;
    }
    put32(buf, a);
    put32(buf + 4, b);
    mem_copy(buf + 8, data, data_len);
    err = coca_call(d, COCA_CH_AUTO, op, buf, 8 + data_len, buf, cap, len);
    if (err) {
        return err;
    }
    err = coca_cert_list_get(buf, *len, 0, 0, 0);
    return err < 0 ? err : 0;
}

int coca_get_ek_cert(struct coca_dev *d, uint32_t nv_index,
                     uint8_t *buf, uint32_t cap, uint32_t *len)
{
    return cert_call(d, COCA_OP_GET_EK_CERT, nv_index, 0, 0, 0, buf, cap,
                     len);
}

int coca_certify_ek(struct coca_dev *d, uint32_t nv_index, uint32_t format,
                    const void *key, uint32_t key_len,
                    uint8_t *buf, uint32_t cap, uint32_t *len)
{
    return cert_call(d, COCA_OP_CERTIFY_EK, nv_index, format, key, key_len,
                     buf, cap, len);
}

int coca_certify_ak(struct coca_dev *d, uint32_t format,
                    const void *proof, uint32_t proof_len,
                    uint8_t *buf, uint32_t cap, uint32_t *len)
{
    return cert_call(d, COCA_OP_CERTIFY_AK, format, 0, proof, proof_len,
                     buf, cap, len);
}

/* ------------------------------------------------------------------ */
/* KBS forwarding (COCA_FEAT_KBS)                                      */
/* ------------------------------------------------------------------ */

static int need_kbs(const struct coca_dev *d)
{
    if (!d || !d->ops) {
        return COCA_E_INVAL;
    }
    if (!d->proto) {
        return COCA_E_NOTREADY;
    }
    return (d->negotiated & COCA_FEAT_KBS) ? 0 : COCA_E_NOFEATURE;
}

/* Length of a NUL-terminated string of at most max bytes, or -1. */
static int32_t str_len(const char *s, uint32_t max)
{
    uint32_t i;

    for (i = 0; i <= max; i++) {
        if (s[i] == 0) {
            return (int32_t)i;
        }
    }
    return -1;
}

/* Every byte printable ASCII (space allowed when spaces is set). */
static int printable(const uint8_t *s, uint32_t n, int spaces)
{
    while (n--) {
        if (*s > 0x7e || *s < (spaces ? 0x20 : 0x21)) {
            return 0;
        }
        s++;
    }
    return 1;
}

/* A NUL within the n bytes of a fixed-size string field. */
static int has_nul(const uint8_t *s, uint32_t n)
{
    while (n--) {
        if (*s++ == 0) {
            return 1;
        }
    }
    return 0;
}

int coca_kbs_config(struct coca_dev *d, struct coca_kbs_config *out)
{
    uint8_t r[sizeof(struct coca_kbs_config)];
    const uint8_t *n = r + sizeof(out->protocol) + sizeof(out->url);
    uint32_t len = 0;
    int err = need_kbs(d);

    if (err) {
        return err;
    }
    if (!out) {
        return COCA_E_INVAL;
    }
    err = coca_call(d, COCA_CH_AUTO, COCA_OP_KBS_CONFIG, 0, 0, r, sizeof(r),
                    &len);
    if (err == COCA_E_TOOBIG && d->last_status == COCA_STATUS_OK) {
        dlog(d, "coco-attest: KBS_CONFIG response too long");
        return COCA_E_PROTO;
    }
    if (err) {
        return err;
    }
    if (len != sizeof(r)) {
        dlog(d, "coco-attest: KBS_CONFIG response has the wrong length");
        return COCA_E_PROTO;
    }
    if (!has_nul(r, sizeof(out->protocol)) ||
        !has_nul(r + sizeof(out->protocol), sizeof(out->url)) ||
        get32(n + 20) != 0) {
        dlog(d, "coco-attest: KBS_CONFIG response malformed");
        return COCA_E_PROTO;
    }
    mem_copy(out->protocol, r, sizeof(out->protocol));
    mem_copy(out->url, r + sizeof(out->protocol), sizeof(out->url));
    out->max_sessions = get32(n);
    out->session_timeout = get32(n + 4);
    out->max_body = get32(n + 8);
    out->max_response = get32(n + 12);
    out->timeout_ms = get32(n + 16);
    out->reserved = 0;
    d->kbs_timeout_ms = out->timeout_ms;
    d->kbs_configured = 1;
    return 0;
}

int coca_kbs_open(struct coca_dev *d, uint32_t *session)
{
    uint8_t r[sizeof(struct coca_kbs_session)];
    uint32_t len = 0;
    int err = need_kbs(d);

    if (err) {
        return err;
    }
    if (!session) {
        return COCA_E_INVAL;
    }
    *session = 0;
    err = coca_call(d, COCA_CH_AUTO, COCA_OP_KBS_OPEN, 0, 0, r, sizeof(r),
                    &len);
    if (err == COCA_E_TOOBIG && d->last_status == COCA_STATUS_OK) {
        return COCA_E_PROTO;
    }
    if (err) {
        return err;
    }
    if (len != sizeof(r) || get32(r) == 0 || get32(r + 4) != 0) {
        dlog(d, "coco-attest: KBS_OPEN response malformed");
        return COCA_E_PROTO;
    }
    *session = get32(r);
    return 0;
}

int coca_kbs_close(struct coca_dev *d, uint32_t session)
{
    uint8_t q[sizeof(struct coca_kbs_session)];
    uint32_t len = 0;
    int err = need_kbs(d);

    if (err) {
        return err;
    }
    if (!session) {
        return COCA_E_INVAL;
    }
    put32(q, session);
    put32(q + 4, 0);
    err = coca_call(d, COCA_CH_AUTO, COCA_OP_KBS_CLOSE, q, sizeof(q), 0, 0,
                    &len);
    if (err == COCA_E_TOOBIG && d->last_status == COCA_STATUS_OK) {
        dlog(d, "coco-attest: KBS_CLOSE response has a payload");
        return COCA_E_PROTO;
    }
    return err;
}

int coca_kbs_forward(struct coca_dev *d, uint32_t session, uint16_t method,
                     const char *path, const char *ctype,
                     const void *body, uint32_t body_len,
                     uint8_t *buf, uint32_t cap,
                     struct coca_kbs_reply *reply)
{
    const uint32_t qh = sizeof(struct coca_kbs_forward_req);
    const uint32_t rh = sizeof(struct coca_kbs_forward_resp);
    int32_t pl, cl = 0;
    uint32_t len = 0, status, rcl, rbl;
    uint64_t timeout, total;
    int err = need_kbs(d);

    if (err) {
        return err;
    }
    if (!reply || !buf || !path || !session || (body_len && !body)) {
        return COCA_E_INVAL;
    }
    mem_zero(reply, sizeof(*reply));
    pl = str_len(path, COCA_KBS_PATH_MAX);
    if (ctype) {
        cl = str_len(ctype, COCA_KBS_CTYPE_MAX);
    }
    if (pl < 1 || cl < 0 || !printable((const uint8_t *)path, pl, 0) ||
        !printable((const uint8_t *)ctype, cl, 1)) {
        return COCA_E_INVAL;
    }
    if (method == COCA_KBS_GET ? cl != 0 || body_len != 0
                               : method != COCA_KBS_POST || cl == 0) {
        return COCA_E_INVAL;
    }
    total = (uint64_t)qh + (uint32_t)pl + (uint32_t)cl + body_len;
    if (total > cap) {
        reply->needed = total > 0xffffffffu ? 0xffffffffu : (uint32_t)total;
        return COCA_E_TOOBIG;
    }
    /* the host waits up to timeout_ms for the KBS: learn it first */
    if (!d->kbs_configured) {
        struct coca_kbs_config cfg;

        err = coca_kbs_config(d, &cfg);
        if (err) {
            return err;
        }
    }
    timeout = (uint64_t)d->kbs_timeout_ms * 1000 + COCA_KBS_TIMEOUT_MARGIN_US;
    if (timeout < d->timeout_us) {
        timeout = d->timeout_us;
    }

    put32(buf, session);
    put16(buf + 4, method);
    put16(buf + 6, (uint16_t)pl);
    put16(buf + 8, (uint16_t)cl);
    put16(buf + 10, 0);
    put32(buf + 12, body_len);
    mem_copy(buf + qh, path, (uint32_t)pl);
    mem_copy(buf + qh + pl, ctype, (uint32_t)cl);
    mem_copy(buf + qh + pl + cl, body, body_len);
    err = call_wait(d, COCA_CH_AUTO, COCA_OP_KBS_FORWARD, buf,
                    (uint32_t)total, buf, cap, &len, timeout);
    if (err == COCA_E_TOOBIG) {
        reply->needed = len;
    }
    if (err) {
        return err;
    }
    /* len <= cap: coca_call() checked it */
    if (len < rh) {
        dlog(d, "coco-attest: KBS_FORWARD response too short");
        return COCA_E_PROTO;
    }
    status = get16(buf);
    rcl = get16(buf + 2);
    rbl = get32(buf + 4);
    if (status < 100 || status > 599) {
        dlog(d, "coco-attest: KBS_FORWARD: HTTP status out of range");
        return COCA_E_PROTO;
    }
    if (rcl > COCA_KBS_CTYPE_MAX || rcl > len - rh ||
        rbl != len - rh - rcl) {
        dlog(d, "coco-attest: KBS_FORWARD response lengths do not add up");
        return COCA_E_PROTO;
    }
    if (!printable(buf + rh, rcl, 1)) {
        dlog(d, "coco-attest: KBS_FORWARD content type not printable");
        return COCA_E_PROTO;
    }
    reply->http_status = status;
    mem_copy(reply->ctype, buf + rh, rcl);
    reply->ctype[rcl] = 0;
    /* forward copy: the body moves down */
    mem_copy(buf, buf + rh + rcl, rbl);
    reply->body_len = rbl;
    return 0;
}

int coca_irq_enable(struct coca_dev *d, int on)
{
    if (!d || !d->ops) {
        return COCA_E_INVAL;
    }
    if (on && !(d->negotiated & COCA_FEAT_IRQ)) {
        return COCA_E_NOFEATURE;
    }
    return reg_cmd(d, on ? COCA_CMD_IRQ_ENABLE : COCA_CMD_IRQ_DISABLE) ==
           COCA_RES_OK ? 0 : COCA_E_REFUSED;
}

const char *coca_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
    case COCA_E_NODEV:
        return "no coco-attest device";
    case COCA_E_INVAL:
        return "invalid argument";
    case COCA_E_BUSY:
        return "a request is already in flight";
    case COCA_E_REFUSED:
        return "the device refused the command";
    case COCA_E_PROTO:
        return "malformed response from the host";
    case COCA_E_CRC:
        return "response CRC mismatch";
    case COCA_E_TOOBIG:
        return "response does not fit the buffer";
    case COCA_E_TIMEOUT:
        return "timed out";
    case COCA_E_STATUS:
        return "the host reported an error status";
    case COCA_E_AGAIN:
        return "still pending";
    case COCA_E_NOTREADY:
        return "not negotiated";
    case COCA_E_NOFEATURE:
        return "feature not negotiated";
    case COCA_E_POLL_LIMIT:
        return "no answer within the poll limit";
    }
    return "unknown error";
}

/* every status has a name */
COCA_ABI_ASSERT(sizeof((const char *[])COCA_STATUS_NAMES) /
                sizeof(const char *) == COCA_STATUS_COUNT);

const char *coca_status_name(uint32_t status)
{
    static const char *const names[] = COCA_STATUS_NAMES;
    if (status < sizeof(names) / sizeof(names[0])) {
        return names[status];
    }
    return status == COCA_STATUS_NONE ? "NONE" : "UNKNOWN";
}
