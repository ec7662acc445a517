/*
 * SPDX-License-Identifier: GPL-2.0-or-later OR MIT
 *
 * coco-attest guest driver library.
 *
 * Freestanding C99: no C library, no allocation, no global state.  The
 * platform (firmware, SVSM, an OS driver or a user-space tool) supplies a
 * small table of operations and the shared memory; all driver state lives
 * in a caller-allocated struct coca_dev.
 *
 * The host is untrusted: every response is copied out of shared memory
 * before it is parsed, and every length, sequence number and status is
 * checked against what was asked.  A malicious or broken host can make a
 * call fail with one of the COCA_E_* codes below; it can never make the
 * library write past a caller's buffer.
 *
 * Typical use:
 *
 *     struct coca_dev dev;
 *     if (coca_probe(&dev, &ops, 0) == 0 &&
 *         coca_negotiate(&dev, COCA_FEAT_ALL) == 0) {
 *         coca_echo(&dev, COCA_CH_AUTO, 0, data, len, out, cap, &n);
 *     }
 *
 * See docs/guest-library.md for the porting guide.
 */

#ifndef COCO_ATTEST_GUEST_H
#define COCO_ATTEST_GUEST_H

#include <stddef.h>
#include <stdint.h>
#include "coco-attest/abi.h"

/* Errors (negative return values); 0 is success. */
#define COCA_E_NODEV     (-1)   /* no device, or an unknown transport major */
#define COCA_E_INVAL     (-2)   /* bad argument from the caller */
#define COCA_E_BUSY      (-3)   /* a request is already in flight */
#define COCA_E_REFUSED   (-4)   /* the device refused a register command */
#define COCA_E_PROTO     (-5)   /* malformed response from the host */
#define COCA_E_CRC       (-6)   /* port channel response CRC mismatch */
#define COCA_E_TOOBIG    (-7)   /* the response does not fit the buffer */
#define COCA_E_TIMEOUT   (-8)   /* no response in time */
#define COCA_E_STATUS    (-9)   /* the host answered with a non-OK status */
#define COCA_E_AGAIN     (-10)  /* coca_poll(): still pending */
#define COCA_E_NOTREADY  (-11)  /* coca_negotiate() has not succeeded */
#define COCA_E_NOFEATURE (-12)  /* the call needs a feature not negotiated */
#define COCA_E_POLL_LIMIT (-13) /* no clock: d->poll_limit polls, no answer */

enum coca_channel {
    COCA_CH_AUTO = 0,   /* the session default (page if available) */
    COCA_CH_PAGE = 1,
    COCA_CH_PORT = 2,
};

/*
 * Platform operations.  inl/outl/inb/outw are mandatory.  page/page_gpa
 * describe one 4 KiB page of memory shared with the host (NULL: port
 * channel only); buf/buf_gpa/buf_len an optional larger, physically
 * contiguous, 4 KiB-aligned shared buffer for objects that do not fit
 * the page.  now_us and relax are optional.
 */
struct coca_ops {
    void *ctx;
    uint32_t (*inl)(void *ctx, uint16_t port);
    void (*outl)(void *ctx, uint16_t port, uint32_t val);
    uint8_t (*inb)(void *ctx, uint16_t port);
    void (*outw)(void *ctx, uint16_t port, uint16_t val);
    /* full memory barrier; NULL = compiler barrier only (x86 TSO) */
    void (*mb)(void *ctx);
    /* monotonic microseconds; NULL = count polls instead */
    uint64_t (*now_us)(void *ctx);
    /* called between polls (pause, yield); may be NULL */
    void (*relax)(void *ctx);
    /* optional diagnostics, one line without newline */
    void (*log)(void *ctx, const char *msg);
    volatile void *page;
    uint64_t page_gpa;
    volatile void *buf;
    uint64_t buf_gpa;
    uint32_t buf_len;
};

/*
 * How long a call waits for its answer: with ops->now_us, d->timeout_us
 * microseconds (COCA_E_TIMEOUT after that); without it, at most
 * d->poll_limit polls, at least one (COCA_E_POLL_LIMIT after that).
 * coca_probe() sets both defaults; the caller may change them at any
 * time.  Each RETRY resubmission starts a new wait.
 */
#define COCA_TIMEOUT_US_DEFAULT (10ull * 1000 * 1000)
#define COCA_POLL_LIMIT_DEFAULT 100000000u

struct coca_dev {
    const struct coca_ops *ops;
    uint16_t iobase;
    uint8_t irq;
    uint8_t page_registered;
    uint32_t transport;             /* VERSION register */
    uint64_t timeout_us;            /* per wait, default 10 s */
    uint32_t poll_limit;            /* polls per wait without now_us */
    enum coca_channel channel;      /* session default */
    /* from NEGOTIATE */
    uint16_t proto;
    uint64_t offered;
    uint64_t negotiated;
    uint32_t max_object;
    uint32_t inline_max;
    /* the request in flight */
    uint32_t seq;
    uint16_t cur_op;
    uint8_t in_flight;
    uint8_t cur_chan;
    uint8_t cur_ext;
    uint32_t last_status;           /* host status of the last response */
    uint32_t last_result;           /* COCA_RES_* of a refused command */
    uint32_t retries;               /* requests resubmitted after RETRY */
    /* KBS forwarding: the host's per-request timeout (KBS_CONFIG) */
    uint32_t kbs_timeout_ms;
    uint8_t kbs_configured;         /* kbs_timeout_ms is known */
};

/* fw_cfg discovery: fills *info from the "etc/coco-attest" file. */
int coca_fw_cfg_find(const struct coca_ops *ops, struct coca_fw_cfg *info);

/*
 * Find the device at iobase (0: ask fw_cfg, then try the default),
 * check signature and transport version, and register the page if the
 * platform provided one.
 */
int coca_probe(struct coca_dev *d, const struct coca_ops *ops,
               uint16_t iobase);

/* Negotiate protocol version 1 and the wanted features. */
int coca_negotiate(struct coca_dev *d, uint64_t want);

/*
 * Send one request and wait for its response.  req/req_len is the
 * payload, resp/resp_cap the caller's buffer; *resp_len receives the
 * response length (with COCA_E_TOOBIG: the length needed).  With
 * COCA_E_STATUS, d->last_status holds the host status.  After
 * COCA_E_TIMEOUT or COCA_E_POLL_LIMIT (see COCA_POLL_LIMIT_DEFAULT) the
 * request may still be in flight on the device.  A RETRY answer
 * (the VM migrated while the request was in flight) is handled here: the
 * request is sent again from req, up to COCA_RETRY_MAX times, counted in
 * d->retries.  coca_submit()/coca_poll() users see RETRY themselves.
 */
#define COCA_RETRY_MAX  4
int coca_call(struct coca_dev *d, enum coca_channel ch, uint16_t op,
              const void *req, uint32_t req_len,
              void *resp, uint32_t resp_cap, uint32_t *resp_len);

/*
 * The same in two steps, for callers that poll themselves (or wait for
 * the interrupt).  resp_cap tells coca_submit() how large a response to
 * make room for: above COCA_INLINE_MAX the page channel uses the
 * external buffer.
 */
int coca_submit(struct coca_dev *d, enum coca_channel ch, uint16_t op,
                const void *req, uint32_t req_len, uint32_t resp_cap);
int coca_poll(struct coca_dev *d, void *resp, uint32_t resp_cap,
              uint32_t *resp_len);

/*
 * ECHO (needs COCA_FEAT_DIAG): sends data, checks the host's CRC32C and
 * the echoed bytes; out receives the echoed data.
 */
int coca_echo(struct coca_dev *d, enum coca_channel ch, uint32_t flags,
              const void *data, uint32_t len,
              void *out, uint32_t out_cap, uint32_t *out_len);

/* Identity claims as the host asserts them (COCA_OP_GET_IDENTITY) */
#define COCA_ID_STR_MAX 128
struct coca_identity {
    char project_id[COCA_ID_STR_MAX + 1];
    uint64_t project_number;
    char zone[COCA_ID_STR_MAX + 1];
    char instance_name[COCA_ID_STR_MAX + 1];
    char instance_id[COCA_ID_STR_MAX + 1];
    char oid[COCA_ID_STR_MAX + 1];
};

/* Needs COCA_FEAT_IDENTITY.  Strings are NUL-terminated. */
int coca_get_identity(struct coca_dev *d, struct coca_identity *id);
int coca_get_nonce(struct coca_dev *d, uint8_t nonce[COCA_NONCE_SIZE]);

/*
 * Certificate requests.  buf (cap bytes) receives the certificate list;
 * the requests that send data build it in buf too, so cap must also hold
 * 8 bytes more than the key or proof.  *len is the list's length; walk
 * it with coca_cert_list_get().
 */
int coca_get_ek_cert(struct coca_dev *d, uint32_t nv_index,
                     uint8_t *buf, uint32_t cap, uint32_t *len);
int coca_certify_ek(struct coca_dev *d, uint32_t nv_index, uint32_t format,
                    const void *key, uint32_t key_len,
                    uint8_t *buf, uint32_t cap, uint32_t *len);
int coca_certify_ak(struct coca_dev *d, uint32_t format,
                    const void *proof, uint32_t proof_len,
                    uint8_t *buf, uint32_t cap, uint32_t *len);

/*
 * Certificate index of a list received from the host: validates the
 * whole list (count, every length, exact total) and points *der at the
 * index-th DER certificate, inside list.  Returns the number of
 * certificates, or COCA_E_PROTO / COCA_E_INVAL.
 */
int coca_cert_list_get(const uint8_t *list, uint32_t len, uint32_t index,
                       const uint8_t **der, uint32_t *der_len);

/*
 * KBS forwarding (needs COCA_FEAT_KBS).  The host relays HTTP requests to
 * one Trustee KBS; the guest builds every message and decrypts the secret
 * itself (see docs/guest-library.md).
 *
 * coca_kbs_config() reads the host's KBS configuration: strings are
 * NUL-terminated, reserved is zero, or COCA_E_PROTO.  It also records the
 * host's timeout_ms in the coca_dev for coca_kbs_forward().
 *
 * coca_kbs_open() opens a session (never 0); coca_kbs_close() ends it.
 */
int coca_kbs_config(struct coca_dev *d, struct coca_kbs_config *out);
int coca_kbs_open(struct coca_dev *d, uint32_t *session);
int coca_kbs_close(struct coca_dev *d, uint32_t session);

/* What the KBS answered (coca_kbs_forward()) */
struct coca_kbs_reply {
    uint32_t http_status;                   /* 100..599 */
    uint32_t body_len;                      /* body bytes, at buf[0] */
    uint32_t needed;                        /* COCA_E_TOOBIG: cap needed */
    char ctype[COCA_KBS_CTYPE_MAX + 1];     /* NUL-terminated, "" if none */
};

/*
 * Margin added to the host's timeout_ms for coca_kbs_forward(): the host
 * answers COCA_STATUS_KBS_TIMEOUT itself once timeout_ms has passed.
 */
#define COCA_KBS_TIMEOUT_MARGIN_US  (5ull * 1000 * 1000)

/*
 * Forward one HTTP request to the KBS.  method is COCA_KBS_GET (ctype
 * NULL or "", no body) or COCA_KBS_POST (ctype printable ASCII); path
 * (1..COCA_KBS_PATH_MAX bytes) and ctype (up to COCA_KBS_CTYPE_MAX) are
 * NUL-terminated.  The request is built in buf, so cap must hold
 * 16 + path + ctype + body bytes (body must not overlap buf); the
 * response body lands at buf[0] (reply->body_len bytes) and cap must
 * hold 8 + its content type + body, else COCA_E_TOOBIG with
 * reply->needed set.  Any HTTP status is a success of the call: check
 * reply->http_status.  Host statuses (COCA_STATUS_KBS_*, NO_SESSION ...)
 * are COCA_E_STATUS with d->last_status.
 *
 * The host completes forwarding asynchronously and may take up to its
 * timeout_ms (KBS_CONFIG), so this call waits for
 * max(d->timeout_us, timeout_ms + COCA_KBS_TIMEOUT_MARGIN_US) with a
 * clock; without one, d->poll_limit polls as every call (a platform
 * without a clock sizes it for the KBS).  It reads the configuration
 * first if coca_kbs_config() was not called on d.
 */
int coca_kbs_forward(struct coca_dev *d, uint32_t session, uint16_t method,
                     const char *path, const char *ctype,
                     const void *body, uint32_t body_len,
                     uint8_t *buf, uint32_t cap,
                     struct coca_kbs_reply *reply);

/* Ask for the completion interrupt (needs COCA_FEAT_IRQ). */
int coca_irq_enable(struct coca_dev *d, int on);

/* CRC32C as used by the port channel and ECHO. */
uint32_t coca_crc32c(uint32_t crc, const void *data, uint32_t len);

/* A short English description of a COCA_E_* code. */
const char *coca_strerror(int err);

/* A short name for a COCA_STATUS_* value. */
const char *coca_status_name(uint32_t status);

#endif /* COCO_ATTEST_GUEST_H */
