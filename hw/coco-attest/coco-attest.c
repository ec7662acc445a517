/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * coco-attest: a paravirtual channel between a confidential guest's
 * service module (e.g. an SVSM hosting the vTPM) and the VMM.
 *
 * The guest ABI is defined in include/hw/coco-attest/abi.h and specified
 * in docs/specs/coco-attest.rst.  Two channels carry the same messages:
 *
 *  - the page channel: the guest registers a 4 KiB request page by GPA
 *    and rings a doorbell; optionally a larger, physically contiguous
 *    guest buffer carries the payload (COCA_FEAT_EXT_BUF);
 *  - the port channel: the message is streamed through a 32-bit data
 *    register and protected by a CRC32C.
 *
 * Guest memory is only ever accessed as RAM (MemTxAttrs.memory, plus an
 * explicit check that refuses ROM and device memory), copied in once and
 * parsed from the copy.  Work that may take long runs in the thread pool;
 * the vCPU sees COCA_STATUS_PENDING and polls or takes the interrupt.  An
 * epoch counter, bumped on reset, keeps late completions from touching
 * guest memory.
 */

#include "qemu/osdep.h"
#include "qemu/bitops.h"
#include "qemu/bswap.h"
#include "qemu/crc32c.h"
#include "qemu/cutils.h"
#include "qemu/host-utils.h"
#include "qemu/log.h"
#include "qemu/module.h"
#include "qemu/timer.h"
#include "qemu/rcu.h"
#include "qapi/error.h"
#include "qapi/qapi-events-coco-attest.h"
#include "block/aio.h"
#include "block/thread-pool.h"
#include "crypto/random.h"
#include "exec/address-spaces.h"
#include "exec/memory.h"
#include "hw/acpi/acpi_aml_interface.h"
#include "hw/core/cpu.h"
#include "hw/irq.h"
#include "hw/nvram/fw_cfg.h"
#include "hw/qdev-properties.h"
#include "hw/resettable.h"
#include "migration/vmstate.h"
#include "qemu/error-report.h"
#include "coco-attest-internal.h"
#include "trace.h"

#define COCA_HDR_STATUS_OFF offsetof(struct coca_hdr, status)

#define COCA_LOG(fmt, ...) \
    qemu_log_mask(LOG_GUEST_ERROR, "coco-attest: " fmt "\n", ## __VA_ARGS__)

struct CocoAttestReq {
    CocoAttestState *s;
    uint32_t epoch;
    CocoAttestChan chan;
    struct coca_hdr hdr;        /* host byte order copy of the header */
    uint64_t page;              /* page channel: where the header lives */
    uint8_t *in;                /* private copy of the request payload */
    uint32_t in_len;
    uint8_t *out;               /* response payload */
    uint32_t out_len;
    uint32_t status;
    QEMUTimer *timer;           /* delayed start of deferred work */
    ThreadPoolFunc *work;       /* runs without the BQL, on in/out only */
    CocoAttestCa *ca;           /* for backend work (referenced) */
    uint32_t arg;               /* command argument parsed on the vCPU */
    uint8_t nonce[COCA_NONCE_SIZE];     /* consumed by this request */
    bool outstanding;           /* counted in CocoAttestState.outstanding */
    char *why;                  /* a failure to log on completion */
    /* KBS_FORWARD, parsed on the vCPU */
    CocoAttestKbsSession *ks;   /* referenced */
    uint32_t kbs_session;
    bool kbs_post;
    char *kbs_path;
    char *kbs_ctype;
    uint32_t kbs_body_off;
    uint32_t kbs_body_len;
    uint32_t kbs_max_response;
};

static const char *coca_chan_name(CocoAttestChan chan)
{
    switch (chan) {
    case COCA_CHAN_PAGE:
        return "page";
    case COCA_CHAN_PORT:
        return "port";
    default:
        return "none";
    }
}

uint64_t coco_attest_offered(CocoAttestState *s)
{
    uint64_t offered = s->features & COCA_FEAT_ALL;

    if (!s->isairq) {
        offered &= ~COCA_FEAT_IRQ;
    }
    if (!s->ca) {
        offered &= ~COCA_FEAT_IDENTITY;
    }
    if (!s->kbs) {
        offered &= ~COCA_FEAT_KBS;
    }
    return offered;
}

/* ------------------------------------------------------------------ */
/* Guest memory: RAM only, copied, every result checked               */
/* ------------------------------------------------------------------ */

static const MemTxAttrs coca_attrs = { .memory = true };

/*
 * True if [addr, addr + len) is entirely guest RAM: not MMIO, not ROM,
 * not device memory, not unassigned, and not wrapping around.
 */
static bool coca_is_ram(uint64_t addr, uint64_t len)
{
    uint64_t end;

    if (len == 0 || uadd64_overflow(addr, len, &end)) {
        return false;
    }

    RCU_READ_LOCK_GUARD();
    while (addr < end) {
        hwaddr xlat, l = end - addr;
        MemoryRegion *mr;

        mr = address_space_translate(&address_space_memory, addr, &xlat,
                                     &l, true, coca_attrs);
        if (!memory_region_is_ram(mr) || memory_region_is_rom(mr) ||
            memory_region_is_ram_device(mr) || l == 0) {
            return false;
        }
        addr += l;
    }
    return true;
}

static bool coca_read(uint64_t addr, void *buf, uint32_t len)
{
    if (!coca_is_ram(addr, len)) {
        return false;
    }
    return address_space_read(&address_space_memory, addr, coca_attrs,
                              buf, len) == MEMTX_OK;
}

static bool coca_write(uint64_t addr, const void *buf, uint32_t len)
{
    if (!coca_is_ram(addr, len)) {
        return false;
    }
    return address_space_write(&address_space_memory, addr, coca_attrs,
                               buf, len) == MEMTX_OK;
}

/* CRC32C as the spec defines it (iSCSI: init and final XOR all ones) */
static uint32_t coca_crc(const void *buf, uint32_t len)
{
    return crc32c(0xffffffff, buf, len);
}

static void coca_hdr_from_le(struct coca_hdr *h)
{
    h->magic = le32_to_cpu(h->magic);
    h->version = le16_to_cpu(h->version);
    h->command = le16_to_cpu(h->command);
    h->flags = le32_to_cpu(h->flags);
    h->seq = le32_to_cpu(h->seq);
    h->status = le32_to_cpu(h->status);
    h->req_len = le32_to_cpu(h->req_len);
    h->resp_len = le32_to_cpu(h->resp_len);
    h->reserved0 = le32_to_cpu(h->reserved0);
    h->buf_gpa = le64_to_cpu(h->buf_gpa);
    h->buf_len = le32_to_cpu(h->buf_len);
    h->reserved1 = le32_to_cpu(h->reserved1);
}

static void coca_hdr_to_le(struct coca_hdr *h)
{
    /* the conversion is its own inverse */
    coca_hdr_from_le(h);
}

/* ------------------------------------------------------------------ */
/* Interrupt and register results                                     */
/* ------------------------------------------------------------------ */

static void coca_update_irq(CocoAttestState *s)
{
    int level = s->isairq && s->irq_enabled && s->done;

    trace_coco_attest_irq(level);
    qemu_set_irq(s->irq, level);
}

static void coca_set_result(CocoAttestState *s, uint32_t cmd, uint32_t res)
{
    s->result = res;
    trace_coco_attest_result(cmd, res);
}

/* ------------------------------------------------------------------ */
/* Requests                                                            */
/* ------------------------------------------------------------------ */

static CocoAttestReq *coca_req_new(CocoAttestState *s, CocoAttestChan chan)
{
    CocoAttestReq *req = g_new0(CocoAttestReq, 1);

    object_ref(OBJECT(s));
    req->s = s;
    req->epoch = s->epoch;
    req->chan = chan;
    req->status = COCA_STATUS_OK;
    return req;
}

static void coca_req_free(CocoAttestReq *req)
{
    if (req->outstanding) {
        assert(req->s->outstanding > 0);
        req->s->outstanding--;
    }
    if (req->timer) {
        timer_free(req->timer);
    }
    g_free(req->in);
    g_free(req->out);
    g_free(req->why);
    if (req->ca) {
        object_unref(OBJECT(req->ca));
    }
    coco_attest_kbs_session_unref(req->ks);
    g_free(req->kbs_path);
    g_free(req->kbs_ctype);
    object_unref(OBJECT(req->s));
    g_free(req);
}

/* Capacity for the response payload of @req. */
static uint32_t coca_resp_cap(CocoAttestReq *req)
{
    if (req->chan == COCA_CHAN_PORT) {
        return req->s->max_object;
    }
    if (req->hdr.flags & COCA_FLAG_EXT_BUF) {
        return req->hdr.buf_len;
    }
    return COCA_INLINE_MAX;
}

static void coca_finish_page(CocoAttestReq *req)
{
    struct coca_hdr h = req->hdr;
    uint32_t status = req->status;
    uint32_t status_le;
    uint64_t dst = (h.flags & COCA_FLAG_EXT_BUF) ? h.buf_gpa
                                                 : req->page + COCA_HDR_SIZE;

    h.resp_len = 0;
    if (req->out_len > coca_resp_cap(req)) {
        status = COCA_STATUS_NO_SPACE;
        h.resp_len = req->out_len;
    } else if (req->out_len && !coca_write(dst, req->out, req->out_len)) {
        COCA_LOG("response buffer 0x%" PRIx64 "+0x%x is no longer RAM",
                 dst, req->out_len);
        status = COCA_STATUS_BAD_BUFFER;
    } else {
        h.resp_len = req->out_len;
    }
    req->status = status;

    h.flags |= COCA_FLAG_RESPONSE;
    coca_hdr_to_le(&h);
    /* everything but the status, which the guest may be polling */
    if (!coca_write(req->page, &h, COCA_HDR_STATUS_OFF) ||
        !coca_write(req->page + COCA_HDR_STATUS_OFF + 4,
                    (uint8_t *)&h + COCA_HDR_STATUS_OFF + 4,
                    COCA_HDR_SIZE - COCA_HDR_STATUS_OFF - 4)) {
        goto gone;
    }
    /* the payload and header must be visible before the status */
    smp_wmb();
    status_le = cpu_to_le32(status);
    if (!coca_write(req->page + COCA_HDR_STATUS_OFF, &status_le,
                    sizeof(status_le))) {
        goto gone;
    }
    return;

gone:
    COCA_LOG("request page 0x%" PRIx64 " is no longer RAM", req->page);
    req->status = COCA_STATUS_BAD_BUFFER;
}

static void coca_finish_port(CocoAttestReq *req)
{
    CocoAttestState *s = req->s;
    struct coca_hdr h = req->hdr;

    h.flags |= COCA_FLAG_RESPONSE;
    h.status = req->status;
    h.resp_len = req->out_len;
    s->port_len = COCA_HDR_SIZE;
    if (req->out_len > coca_resp_cap(req)) {
        h.status = COCA_STATUS_NO_SPACE;
    } else if (req->out_len) {
        /* (an error has no payload, and req->out is NULL then) */
        memcpy(s->port_buf + COCA_HDR_SIZE, req->out, req->out_len);
        s->port_len += req->out_len;
    }
    req->status = h.status;
    coca_hdr_to_le(&h);
    memcpy(s->port_buf, &h, COCA_HDR_SIZE);
    /* the guest reads whole words: the padding reads as zero */
    memset(s->port_buf + s->port_len, 0,
           ROUND_UP(s->port_len, 4) - s->port_len);
    s->port_pos = 0;
    s->port_crc = coca_crc(s->port_buf, s->port_len);
    s->port_response = true;
}

/* QMP events for management: rate-limited by the monitor */
static void coca_event(CocoAttestReq *req)
{
    static const char *const names[] = COCA_STATUS_NAMES;
    DeviceState *dev = DEVICE(req->s);
    g_autofree char *path = NULL;
    uint16_t cmd = req->hdr.command;
    const char *status;

    switch (req->status) {
    case COCA_STATUS_OK:
        if (cmd != COCA_OP_CERTIFY_EK && cmd != COCA_OP_CERTIFY_AK) {
            return;
        }
        path = object_get_canonical_path(OBJECT(dev));
        qapi_event_send_coco_attest_cert_issued(
            dev->id, path,
            cmd == COCA_OP_CERTIFY_EK ? COCO_ATTEST_CERT_KIND_EK
                                      : COCO_ATTEST_CERT_KIND_AK);
        return;
    case COCA_STATUS_BAD_HEADER:
    case COCA_STATUS_UNSUPPORTED:
    case COCA_STATUS_INVALID:
    case COCA_STATUS_NOT_NEGOTIATED:
    case COCA_STATUS_TOO_LARGE:
    case COCA_STATUS_BAD_BUFFER:
    case COCA_STATUS_FEATURE:
    case COCA_STATUS_BAD_SIGNATURE:
    case COCA_STATUS_NONCE:
    case COCA_STATUS_KBS_PATH:
    case COCA_STATUS_NO_SESSION:
        path = object_get_canonical_path(OBJECT(dev));
        qapi_event_send_coco_attest_guest_error(dev->id, path, cmd,
                                                names[req->status]);
        return;
    case COCA_STATUS_KBS_UNREACHABLE:
    case COCA_STATUS_KBS_TIMEOUT:
    case COCA_STATUS_KBS_TLS:
    case COCA_STATUS_KBS_TOO_LARGE:
    case COCA_STATUS_KBS_PROTOCOL:
    case COCA_STATUS_INTERNAL:
        if (cmd != COCA_OP_KBS_FORWARD || !req->kbs_path) {
            return;
        }
        status = names[req->status];
        path = object_get_canonical_path(OBJECT(dev));
        qapi_event_send_coco_attest_kbs_error(dev->id, path, status,
                                              req->kbs_path);
        return;
    default:
        return;
    }
}

/*
 * Deliver the response of @req to the guest and retire it.  Runs with the
 * BQL held, either synchronously from the register write or from a
 * main-loop callback.
 */
static void coca_complete(CocoAttestReq *req)
{
    CocoAttestState *s = req->s;

    if (req->epoch != s->epoch) {
        /* reset since submission: the guest memory is not ours any more */
        trace_coco_attest_stale_completion(req->hdr.seq, req->epoch,
                                           s->epoch);
        s->stat_dropped++;
        coca_req_free(req);
        return;
    }
    assert(s->inflight == req);
    if (!runstate_is_running() && !runstate_check(RUN_STATE_SUSPENDED) &&
        !current_cpu) {
        /*
         * No guest memory writes while the VM is stopped: its RAM may be
         * on its way to a migration destination.  Deliver on resume.  (A
         * vCPU still finishing an I/O access while the VM stops writes
         * before it is paused, which migration's final RAM pass covers.)
         * A suspended (S3) VM is not stopped: its RAM stays live, dirty
         * tracking covers it, and no resume would come to deliver it.
         */
        trace_coco_attest_parked(req->hdr.command, req->hdr.seq);
        s->parked = req;
        return;
    }
    if (req->why) {
        qemu_log_mask(LOG_GUEST_ERROR, "coco-attest: command 0x%x: %s\n",
                      req->hdr.command, req->why);
    }

    if (req->chan == COCA_CHAN_PAGE) {
        coca_finish_page(req);
    } else {
        coca_finish_port(req);
    }
    if (req->status != COCA_STATUS_OK) {
        s->stat_errors++;
    }
    coca_event(req);
    trace_coco_attest_complete(coca_chan_name(req->chan), req->hdr.command,
                               req->hdr.seq, req->status, req->out_len);
    s->inflight = NULL;
    s->done = true;
    coca_update_irq(s);
    coca_req_free(req);
}

static void coca_fail(CocoAttestReq *req, uint32_t status)
{
    req->status = status;
    req->out_len = 0;
    coca_complete(req);
}

/* Thread-pool completion: back on the main loop with the BQL. */
static void coca_work_done(void *opaque, int ret)
{
    CocoAttestReq *req = opaque;

    if (ret < 0 && req->status == COCA_STATUS_OK) {
        req->status = COCA_STATUS_INTERNAL;
        req->out_len = 0;
    }
    coca_complete(req);
}

static void coca_work_start(void *opaque)
{
    CocoAttestReq *req = opaque;

    timer_free(req->timer);
    req->timer = NULL;
    if (req->epoch != req->s->epoch) {
        coca_complete(req);         /* drops it */
        return;
    }
    thread_pool_submit_aio(req->work, req, coca_work_done, req);
}

/*
 * Complete @req later: @work runs in the thread pool (after @delay_ms of
 * virtual time, if non-zero) and must touch nothing but the request.  The
 * guest sees COCA_STATUS_PENDING until then.
 */
/*
 * Whether @req may hand work to the thread pool.  A request of an earlier
 * epoch (before a reset) may still be running there: until it has
 * finished, the guest's next one is answered RETRY, so that resetting
 * the device never lets a guest stack up work.
 */
static bool coca_may_defer(CocoAttestReq *req)
{
    if (req->s->outstanding) {
        COCA_LOG("command 0x%x: work from before the last reset is still "
                 "running, answering RETRY", req->hdr.command);
        coca_fail(req, COCA_STATUS_RETRY);
        return false;
    }
    return true;
}

/* Mark @req PENDING to the guest; false (and @req failed) if it cannot */
static bool coca_mark_pending(CocoAttestReq *req)
{
    uint32_t pending = cpu_to_le32(COCA_STATUS_PENDING);

    trace_coco_attest_pending(req->hdr.command, req->hdr.seq, req->epoch);
    if (req->chan == COCA_CHAN_PAGE &&
        !coca_write(req->page + COCA_HDR_STATUS_OFF, &pending,
                    sizeof(pending))) {
        coca_fail(req, COCA_STATUS_BAD_BUFFER);
        return false;
    }
    req->outstanding = true;
    req->s->outstanding++;
    return true;
}

static void coca_defer(CocoAttestReq *req, ThreadPoolFunc *work,
                       uint32_t delay_ms)
{
    req->work = work;
    if (!coca_mark_pending(req)) {
        return;
    }
    if (delay_ms) {
        req->timer = timer_new_ms(QEMU_CLOCK_VIRTUAL, coca_work_start, req);
        timer_mod(req->timer,
                  qemu_clock_get_ms(QEMU_CLOCK_VIRTUAL) + delay_ms);
    } else {
        thread_pool_submit_aio(work, req, coca_work_done, req);
    }
}

/* ------------------------------------------------------------------ */
/* Commands                                                            */
/* ------------------------------------------------------------------ */

static bool coca_alloc_out(CocoAttestReq *req, uint32_t len)
{
    req->out = g_try_malloc0(len);
    if (!req->out && len) {
        return false;
    }
    req->out_len = len;
    return true;
}

static void coca_op_negotiate(CocoAttestReq *req)
{
    CocoAttestState *s = req->s;
    struct coca_negotiate_req in;
    struct coca_negotiate_resp out = { 0 };
    uint16_t lo, hi;
    uint64_t offered = coco_attest_offered(s);

    if (req->in_len < sizeof(in)) {
        COCA_LOG("NEGOTIATE payload too short (%u bytes)", req->in_len);
        coca_fail(req, COCA_STATUS_INVALID);
        return;
    }
    memcpy(&in, req->in, sizeof(in));
    in.proto_min = le16_to_cpu(in.proto_min);
    in.proto_max = le16_to_cpu(in.proto_max);
    in.reserved = le32_to_cpu(in.reserved);
    in.features = le64_to_cpu(in.features);
    if (in.reserved || !in.proto_min || in.proto_min > in.proto_max) {
        COCA_LOG("NEGOTIATE: bad version range %u..%u or reserved 0x%x",
                 in.proto_min, in.proto_max, in.reserved);
        coca_fail(req, COCA_STATUS_INVALID);
        return;
    }

    lo = MAX(in.proto_min, COCA_PROTO_MIN);
    hi = MIN(in.proto_max, COCA_PROTO_MAX);
    out.proto_min = cpu_to_le16(COCA_PROTO_MIN);
    out.proto_max = cpu_to_le16(COCA_PROTO_MAX);
    out.offered = cpu_to_le64(offered);
    out.max_object = cpu_to_le32(s->max_object);
    out.inline_max = cpu_to_le32(COCA_INLINE_MAX);
    out.max_pending = cpu_to_le32(1);
    if (lo > hi) {
        COCA_LOG("NEGOTIATE: no common version (guest %u..%u)",
                 in.proto_min, in.proto_max);
        req->status = COCA_STATUS_VERSION;
        /* the previous agreement, if any, stays in force */
        out.proto = cpu_to_le16(s->negotiated ? s->proto : 0);
        out.negotiated = cpu_to_le64(s->negotiated ?
                                     s->negotiated_features : 0);
    } else {
        s->negotiated = true;
        s->proto = hi;
        s->negotiated_features = in.features & offered;
        out.proto = cpu_to_le16(hi);
        out.negotiated = cpu_to_le64(s->negotiated_features);
        trace_coco_attest_negotiate(hi, offered, s->negotiated_features);
    }
    if (!coca_alloc_out(req, sizeof(out))) {
        coca_fail(req, COCA_STATUS_INTERNAL);
        return;
    }
    memcpy(req->out, &out, sizeof(out));
    coca_complete(req);
}

/*
 * Runs in the thread pool (or inline): touches only the request's private
 * buffer.  The response is the request with the CRC filled in.
 */
static int coca_echo_work(void *opaque)
{
    CocoAttestReq *req = opaque;
    struct coca_echo e;
    uint32_t len = req->out_len - sizeof(e);

    memcpy(&e, req->out, sizeof(e));
    e.crc = (le32_to_cpu(e.flags) & COCA_ECHO_NO_CRC) ? 0 :
            cpu_to_le32(coca_crc(req->out + sizeof(e), len));
    memcpy(req->out, &e, sizeof(e));
    return 0;
}

static void coca_op_echo(CocoAttestReq *req)
{
    CocoAttestState *s = req->s;
    struct coca_echo e;

    if (req->in_len < sizeof(e)) {
        COCA_LOG("ECHO payload too short (%u bytes)", req->in_len);
        coca_fail(req, COCA_STATUS_INVALID);
        return;
    }
    memcpy(&e, req->in, sizeof(e));
    e.flags = le32_to_cpu(e.flags);
    e.crc = le32_to_cpu(e.crc);
    if ((e.flags & ~COCA_ECHO_FLAGS) || e.crc) {
        COCA_LOG("ECHO: reserved bits set (flags 0x%x crc 0x%x)",
                 e.flags, e.crc);
        coca_fail(req, COCA_STATUS_INVALID);
        return;
    }
    /* the request buffer becomes the response: no copy */
    req->out = g_steal_pointer(&req->in);
    req->out_len = req->in_len;
    if (e.flags & COCA_ECHO_ASYNC) {
        if (coca_may_defer(req)) {
            coca_defer(req, coca_echo_work, s->echo_delay_ms);
        }
        return;
    }
    coca_echo_work(req);
    coca_complete(req);
}

/* ------------------------------------------------------------------ */
/* Identity commands (COCA_FEAT_IDENTITY, a coco-attest-ca backend)    */
/* ------------------------------------------------------------------ */

static void coca_put_tlv(GByteArray *out, uint16_t tag, const void *val,
                         size_t len)
{
    struct coca_tlv t = {
        .tag = cpu_to_le16(tag),
        .len = cpu_to_le16(len),
    };

    g_byte_array_append(out, (const uint8_t *)&t, sizeof(t));
    g_byte_array_append(out, val, len);
}

static void coca_put_tlv_str(GByteArray *out, uint16_t tag, const char *s)
{
    coca_put_tlv(out, tag, s, MIN(strlen(s), UINT16_MAX));
}

static void coca_set_out(CocoAttestReq *req, GByteArray *out)
{
    req->out_len = out->len;
    req->out = g_byte_array_free(out, false);
}

static void coca_op_get_identity(CocoAttestReq *req)
{
    const CocoAttestClaims *c = coco_attest_ca_claims(req->s->ca);
    GByteArray *out = g_byte_array_new();
    uint64_t num = cpu_to_le64(c->project_number);

    coca_put_tlv_str(out, COCA_ID_PROJECT_ID, c->project_id);
    coca_put_tlv(out, COCA_ID_PROJECT_NUMBER, &num, sizeof(num));
    coca_put_tlv_str(out, COCA_ID_ZONE, c->zone);
    coca_put_tlv_str(out, COCA_ID_INSTANCE_NAME, c->instance_name);
    coca_put_tlv_str(out, COCA_ID_INSTANCE_ID, c->instance_id);
    coca_put_tlv_str(out, COCA_ID_OID, c->oid);
    coca_set_out(req, out);
    coca_complete(req);
}

static void coca_op_get_nonce(CocoAttestReq *req)
{
    CocoAttestState *s = req->s;
    Error *err = NULL;

    /* the host's CSPRNG: -seed makes qemu_guest_getrandom predictable */
    s->nonce_valid = false;
    if (qcrypto_random_bytes(s->nonce, sizeof(s->nonce), &err) < 0) {
        error_report_err(err);
        coca_fail(req, COCA_STATUS_INTERNAL);
        return;
    }
    s->nonce_valid = true;
    req->out = g_memdup2(s->nonce, sizeof(s->nonce));
    req->out_len = sizeof(s->nonce);
    coca_complete(req);
}

/* Worker side: turn a backend result into a status and a response. */
static void coca_ca_result(CocoAttestReq *req, CocoAttestCaResult r,
                           GPtrArray *certs)
{
    static const uint32_t status[] = {
        [COCO_ATTEST_CA_OK] = COCA_STATUS_OK,
        [COCO_ATTEST_CA_MALFORMED] = COCA_STATUS_INVALID,
        [COCO_ATTEST_CA_BAD_SIGNATURE] = COCA_STATUS_BAD_SIGNATURE,
        [COCO_ATTEST_CA_UNSUPPORTED_KEY] = COCA_STATUS_UNSUPPORTED_KEY,
        [COCO_ATTEST_CA_NOT_PROVISIONED] = COCA_STATUS_NOT_PROVISIONED,
        [COCO_ATTEST_CA_EXPIRED] = COCA_STATUS_EXPIRED,
        [COCO_ATTEST_CA_EK_MISMATCH] = COCA_STATUS_EK_MISMATCH,
        [COCO_ATTEST_CA_FAILED] = COCA_STATUS_INTERNAL,
    };
    struct coca_cert_list hdr = { 0 };
    GByteArray *out;
    guint i;

    req->status = status[r];
    if (r != COCO_ATTEST_CA_OK) {
        return;
    }
    out = g_byte_array_new();
    hdr.count = cpu_to_le32(certs->len);
    g_byte_array_append(out, (const uint8_t *)&hdr, sizeof(hdr));
    for (i = 0; i < certs->len; i++) {
        GBytes *der = g_ptr_array_index(certs, i);
        uint32_t len = cpu_to_le32(g_bytes_get_size(der));

        g_byte_array_append(out, (const uint8_t *)&len, sizeof(len));
        g_byte_array_append(out, g_bytes_get_data(der, NULL),
                            g_bytes_get_size(der));
    }
    g_ptr_array_unref(certs);
    coca_set_out(req, out);
}

/* Runs in the thread pool: reads a file from the instance directory. */
static int coca_ek_cert_work(void *opaque)
{
    CocoAttestReq *req = opaque;
    GPtrArray *certs = NULL;
    CocoAttestCaResult r = coco_attest_ca_ek_cert(req->ca, req->arg, &certs);

    coca_ca_result(req, r, certs);
    return 0;
}

static void coca_op_get_ek_cert(CocoAttestReq *req)
{
    struct coca_ek_cert_req r;

    if (req->in_len < sizeof(r)) {
        COCA_LOG("GET_EK_CERT payload too short (%u bytes)", req->in_len);
        coca_fail(req, COCA_STATUS_INVALID);
        return;
    }
    memcpy(&r, req->in, sizeof(r));
    req->arg = le32_to_cpu(r.nv_index);
    if (r.reserved || (req->arg != COCA_NV_EK_RSA2048 &&
                       req->arg != COCA_NV_EK_ECC_P256 &&
                       req->arg != COCA_NV_EK_ECC_P384)) {
        COCA_LOG("GET_EK_CERT: unknown NV index 0x%x or reserved bits",
                 req->arg);
        coca_fail(req, COCA_STATUS_INVALID);
        return;
    }
    if (!coca_may_defer(req)) {
        return;
    }
    req->ca = COCO_ATTEST_CA(object_ref(OBJECT(req->s->ca)));
    coca_defer(req, coca_ek_cert_work, 0);
}

/* Runs in the thread pool: parses the key, signs, persists. */
static int coca_certify_ek_work(void *opaque)
{
    CocoAttestReq *req = opaque;
    size_t off = sizeof(struct coca_certify_ek_req);
    struct coca_certify_ek_req r;
    GPtrArray *certs = NULL;
    CocoAttestCaResult res;

    memcpy(&r, req->in, sizeof(r));
    res = coco_attest_ca_certify_ek(req->ca, le32_to_cpu(r.nv_index),
                                    le32_to_cpu(r.format), req->in + off,
                                    req->in_len - off, &certs, &req->why);
    coca_ca_result(req, res, certs);
    return 0;
}

static void coca_op_certify_ek(CocoAttestReq *req)
{
    struct coca_certify_ek_req r;
    uint32_t nv, format;

    if (req->in_len <= sizeof(r)) {
        COCA_LOG("CERTIFY_EK payload too short (%u bytes)", req->in_len);
        coca_fail(req, COCA_STATUS_INVALID);
        return;
    }
    memcpy(&r, req->in, sizeof(r));
    nv = le32_to_cpu(r.nv_index);
    format = le32_to_cpu(r.format);
    if ((nv != COCA_NV_EK_RSA2048 && nv != COCA_NV_EK_ECC_P256 &&
         nv != COCA_NV_EK_ECC_P384) ||
        (format != COCA_KEY_FORMAT_SPKI &&
         format != COCA_KEY_FORMAT_TPMT_PUBLIC)) {
        COCA_LOG("CERTIFY_EK: unknown NV index 0x%x or format %u", nv,
                 format);
        coca_fail(req, COCA_STATUS_INVALID);
        return;
    }
    if (!coca_may_defer(req)) {
        return;
    }
    if (!coco_attest_ca_take_token(req->s->ca)) {
        COCA_LOG("CERTIFY_EK: signing rate limit reached");
        coca_fail(req, COCA_STATUS_RATE_LIMITED);
        return;
    }
    req->ca = COCO_ATTEST_CA(object_ref(OBJECT(req->s->ca)));
    coca_defer(req, coca_certify_ek_work, 0);
}

/* Runs in the thread pool: verifies the proof and signs. */
static int coca_certify_ak_work(void *opaque)
{
    CocoAttestReq *req = opaque;
    size_t off = sizeof(struct coca_certify_ak_req);
    GPtrArray *certs = NULL;
    CocoAttestCaResult r;

    if (req->arg == COCA_AK_FORMAT_TPM) {
        r = coco_attest_ca_certify_tpm_ak(req->ca, req->in + off,
                                          req->in_len - off, req->nonce,
                                          sizeof(req->nonce), &certs,
                                          &req->why);
    } else {
        r = coco_attest_ca_certify_csr(req->ca, req->in + off,
                                       req->in_len - off, &certs, &req->why);
    }
    coca_ca_result(req, r, certs);
    return 0;
}

static void coca_op_certify_ak(CocoAttestReq *req)
{
    struct coca_certify_ak_req r;

    if (req->in_len <= sizeof(r)) {
        COCA_LOG("CERTIFY_AK payload too short (%u bytes)", req->in_len);
        coca_fail(req, COCA_STATUS_INVALID);
        return;
    }
    memcpy(&r, req->in, sizeof(r));
    req->arg = le32_to_cpu(r.format);
    if (r.reserved || (req->arg != COCA_AK_FORMAT_CSR &&
                       req->arg != COCA_AK_FORMAT_TPM)) {
        COCA_LOG("CERTIFY_AK: unknown format %u or reserved bits", req->arg);
        coca_fail(req, COCA_STATUS_INVALID);
        return;
    }
    if (!coca_may_defer(req)) {
        return;
    }
    if (req->arg == COCA_AK_FORMAT_TPM) {
        /* the nonce is single use, whatever the outcome */
        if (!req->s->nonce_valid) {
            COCA_LOG("CERTIFY_AK: no fresh nonce (GET_NONCE first)");
            coca_fail(req, COCA_STATUS_NONCE);
            return;
        }
        memcpy(req->nonce, req->s->nonce, sizeof(req->nonce));
        req->s->nonce_valid = false;
    }
    if (!coco_attest_ca_take_token(req->s->ca)) {
        COCA_LOG("CERTIFY_AK: signing rate limit reached");
        coca_fail(req, COCA_STATUS_RATE_LIMITED);
        return;
    }
    req->ca = COCO_ATTEST_CA(object_ref(OBJECT(req->s->ca)));
    coca_defer(req, coca_certify_ak_work, 0);
}

/* ------------------------------------------------------------------ */
/* KBS forwarding (COCA_FEAT_KBS, a coco-attest-kbs backend)           */
/* ------------------------------------------------------------------ */

/* Largest answer body a KBS_FORWARD response can carry. */
static uint32_t coca_kbs_max_response(CocoAttestState *s)
{
    CocoAttestKbsLimits lim;

    coco_attest_kbs_limits(s->kbs, &lim);
    return MIN(lim.max_response, s->max_object -
               sizeof(struct coca_kbs_forward_resp) - COCA_KBS_CTYPE_MAX);
}

/* Largest request body a KBS_FORWARD request can carry. */
static uint32_t coca_kbs_max_body(CocoAttestState *s)
{
    return s->max_object - sizeof(struct coca_kbs_forward_req) -
           COCA_KBS_PATH_MAX - COCA_KBS_CTYPE_MAX;
}

static void coca_session_close(CocoAttestSession *ses)
{
    /* a transfer still running for it ends now, not at its timeout */
    coco_attest_kbs_session_cancel(ses->ks);
    coco_attest_kbs_session_unref(ses->ks);
    ses->ks = NULL;
    ses->id = 0;
}

/* Close the sessions idle for longer than the backend's session-timeout. */
static void coca_sessions_expire(CocoAttestState *s)
{
    int64_t now = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    CocoAttestKbsLimits lim;
    uint32_t i;

    coco_attest_kbs_limits(s->kbs, &lim);
    for (i = 0; i < s->n_sessions; i++) {
        CocoAttestSession *ses = &s->sessions[i];

        if (ses->id && now - ses->last_used > lim.session_timeout * 1000LL) {
            trace_coco_attest_kbs_session(ses->id, "expired");
            coca_session_close(ses);
        }
    }
}

static CocoAttestSession *coca_session_lookup(CocoAttestState *s,
                                              uint32_t id)
{
    uint32_t i;

    for (i = 0; id && i < s->n_sessions; i++) {
        if (s->sessions[i].id == id) {
            return &s->sessions[i];
        }
    }
    return NULL;
}

/* A session the guest names, if it is open and has not expired */
static CocoAttestSession *coca_session_find(CocoAttestState *s, uint32_t id)
{
    uint32_t i;

    coca_sessions_expire(s);
    for (i = 0; id && i < s->n_sessions; i++) {
        if (s->sessions[i].id == id) {
            return &s->sessions[i];
        }
    }
    return NULL;
}

static void coca_sessions_close_all(CocoAttestState *s)
{
    uint32_t i;

    for (i = 0; i < s->n_sessions; i++) {
        if (s->sessions[i].id) {
            coca_session_close(&s->sessions[i]);
        }
    }
}

static void coca_op_kbs_config(CocoAttestReq *req)
{
    CocoAttestState *s = req->s;
    struct coca_kbs_config out = { 0 };
    CocoAttestKbsLimits lim;

    coco_attest_kbs_limits(s->kbs, &lim);
    pstrcpy(out.protocol, sizeof(out.protocol), COCA_KBS_PROTOCOL);
    pstrcpy(out.url, sizeof(out.url), lim.url);
    out.max_sessions = cpu_to_le32(s->n_sessions);
    out.session_timeout = cpu_to_le32(lim.session_timeout);
    out.max_body = cpu_to_le32(coca_kbs_max_body(s));
    out.max_response = cpu_to_le32(coca_kbs_max_response(s));
    out.timeout_ms = cpu_to_le32(lim.timeout_ms);
    req->out = g_memdup2(&out, sizeof(out));
    req->out_len = sizeof(out);
    coca_complete(req);
}

/* KBS_OPEN and KBS_FORWARD reach the KBS: the backend's rate applies */
static bool coca_kbs_take_token(CocoAttestReq *req)
{
    if (!coco_attest_kbs_take_token(req->s->kbs)) {
        COCA_LOG("command 0x%x: KBS rate limit reached", req->hdr.command);
        req->s->stat_kbs_rate_limited++;
        coca_fail(req, COCA_STATUS_RATE_LIMITED);
        return false;
    }
    return true;
}

static void coca_op_kbs_open(CocoAttestReq *req)
{
    CocoAttestState *s = req->s;
    struct coca_kbs_session out = { 0 };
    CocoAttestSession *ses = NULL;
    Error *err = NULL;
    uint32_t i, id;

    coca_sessions_expire(s);
    for (i = 0; i < s->n_sessions && !ses; i++) {
        if (!s->sessions[i].id) {
            ses = &s->sessions[i];
        }
    }
    if (!ses) {
        COCA_LOG("KBS_OPEN: all %u sessions are in use", s->n_sessions);
        coca_fail(req, COCA_STATUS_BUSY);
        return;
    }
    if (!coca_kbs_take_token(req)) {
        return;
    }
    /* unguessable, never 0, never one still open */
    do {
        if (qcrypto_random_bytes(&id, sizeof(id), &err) < 0) {
            error_report_err(err);
            coca_fail(req, COCA_STATUS_INTERNAL);
            return;
        }
    } while (!id || coca_session_lookup(s, id));
    ses->id = id;
    ses->last_used = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    ses->ks = coco_attest_kbs_session_new(s->kbs);
    trace_coco_attest_kbs_session(ses->id, "opened");
    out.session = cpu_to_le32(ses->id);
    req->out = g_memdup2(&out, sizeof(out));
    req->out_len = sizeof(out);
    coca_complete(req);
}

static void coca_op_kbs_close(CocoAttestReq *req)
{
    struct coca_kbs_session in;
    CocoAttestSession *ses;

    if (req->in_len != sizeof(in)) {
        COCA_LOG("KBS_CLOSE payload is %u bytes, not %zu", req->in_len,
                 sizeof(in));
        coca_fail(req, COCA_STATUS_INVALID);
        return;
    }
    memcpy(&in, req->in, sizeof(in));
    if (in.reserved) {
        COCA_LOG("KBS_CLOSE: reserved field set");
        coca_fail(req, COCA_STATUS_INVALID);
        return;
    }
    ses = coca_session_find(req->s, le32_to_cpu(in.session));
    if (!ses) {
        COCA_LOG("KBS_CLOSE: no session %u", le32_to_cpu(in.session));
        coca_fail(req, COCA_STATUS_NO_SESSION);
        return;
    }
    trace_coco_attest_kbs_session(ses->id, "closed");
    coca_session_close(ses);
    coca_complete(req);
}

/* Runs in the thread pool: the HTTP exchange, on the request's copy. */
static int coca_kbs_forward_work(void *opaque)
{
    static const uint32_t status[] = {
        [COCO_ATTEST_KBS_OK] = COCA_STATUS_OK,
        [COCO_ATTEST_KBS_UNREACHABLE] = COCA_STATUS_KBS_UNREACHABLE,
        [COCO_ATTEST_KBS_TIMEOUT] = COCA_STATUS_KBS_TIMEOUT,
        [COCO_ATTEST_KBS_TLS] = COCA_STATUS_KBS_TLS,
        [COCO_ATTEST_KBS_TOO_LARGE] = COCA_STATUS_KBS_TOO_LARGE,
        [COCO_ATTEST_KBS_PROTOCOL] = COCA_STATUS_KBS_PROTOCOL,
        [COCO_ATTEST_KBS_FAILED] = COCA_STATUS_INTERNAL,
    };
    CocoAttestReq *req = opaque;
    struct coca_kbs_forward_resp hdr = { 0 };
    CocoAttestKbsReply reply;
    g_autofree char *why = NULL;
    CocoAttestKbsResult r;
    size_t ct_len;
    GByteArray *out;

    r = coco_attest_kbs_forward(req->ks, req->kbs_post, req->kbs_path,
                                req->kbs_ctype,
                                req->in + req->kbs_body_off,
                                req->kbs_body_len, req->kbs_max_response,
                                &reply, &why);
    req->status = status[r];
    if (r != COCO_ATTEST_KBS_OK) {
        /* the KBS's fault, not the guest's: traced by the backend */
        return 0;
    }
    ct_len = reply.content_type ? strlen(reply.content_type) : 0;
    hdr.http_status = cpu_to_le16(reply.http_status);
    hdr.ctype_len = cpu_to_le16(ct_len);
    hdr.body_len = cpu_to_le32(reply.body->len);
    out = g_byte_array_sized_new(sizeof(hdr) + ct_len + reply.body->len);
    g_byte_array_append(out, (const uint8_t *)&hdr, sizeof(hdr));
    g_byte_array_append(out, (const uint8_t *)reply.content_type, ct_len);
    g_byte_array_append(out, reply.body->data, reply.body->len);
    coco_attest_kbs_reply_clear(&reply);
    coca_set_out(req, out);
    return 0;
}

/* Back on the main loop: account for the exchange, then complete. */
static void coca_kbs_forward_done(void *opaque, int ret)
{
    CocoAttestReq *req = opaque;
    CocoAttestState *s = req->s;
    CocoAttestSession *ses;

    if (req->epoch == s->epoch) {
        s->stat_kbs_requests++;
        if (req->status != COCA_STATUS_OK) {
            s->stat_kbs_errors++;
        }
        /* its own request kept it busy, not idle: no expiry here */
        ses = coca_session_lookup(s, req->kbs_session);
        if (ses) {
            ses->last_used = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
        }
    }
    if (ret < 0 && req->status == COCA_STATUS_OK) {
        req->status = COCA_STATUS_INTERNAL;
        req->out_len = 0;
    }
    coca_complete(req);
}

/* Printable ASCII, as an HTTP header value needs */
static bool coca_printable(const uint8_t *p, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        if (p[i] < 0x20 || p[i] > 0x7e) {
            return false;
        }
    }
    return true;
}

static void coca_op_kbs_forward(CocoAttestReq *req)
{
    CocoAttestState *s = req->s;
    struct coca_kbs_forward_req r;
    CocoAttestSession *ses;
    uint16_t method, path_len, ctype_len;
    uint32_t body_len;
    const uint8_t *path, *ctype;

    if (req->in_len < sizeof(r)) {
        COCA_LOG("KBS_FORWARD payload too short (%u bytes)", req->in_len);
        coca_fail(req, COCA_STATUS_INVALID);
        return;
    }
    memcpy(&r, req->in, sizeof(r));
    method = le16_to_cpu(r.method);
    path_len = le16_to_cpu(r.path_len);
    ctype_len = le16_to_cpu(r.ctype_len);
    body_len = le32_to_cpu(r.body_len);
    if (r.reserved || !path_len || path_len > COCA_KBS_PATH_MAX ||
        ctype_len > COCA_KBS_CTYPE_MAX ||
        (uint64_t)sizeof(r) + path_len + ctype_len + body_len !=
        req->in_len) {
        COCA_LOG("KBS_FORWARD: path %u, content type %u and body %u bytes "
                 "do not make up the %u-byte payload (or reserved set)",
                 path_len, ctype_len, body_len, req->in_len);
        coca_fail(req, COCA_STATUS_INVALID);
        return;
    }
    if (body_len > coca_kbs_max_body(s)) {
        COCA_LOG("KBS_FORWARD: body of %u bytes over the limit of %u",
                 body_len, coca_kbs_max_body(s));
        coca_fail(req, COCA_STATUS_TOO_LARGE);
        return;
    }
    path = req->in + sizeof(r);
    ctype = path + path_len;
    if ((method != COCA_KBS_GET && method != COCA_KBS_POST) ||
        !coco_attest_kbs_path_allowed(method == COCA_KBS_POST,
                                      (const char *)path, path_len)) {
        COCA_LOG("KBS_FORWARD: method %u on '%.*s' is not in the KBS API",
                 method, (int)path_len, path);
        coca_fail(req, COCA_STATUS_KBS_PATH);
        return;
    }
    if (method == COCA_KBS_GET ? (ctype_len || body_len)
                               : (!ctype_len ||
                                  !coca_printable(ctype, ctype_len))) {
        COCA_LOG("KBS_FORWARD: a GET has no body or content type, a POST "
                 "a printable content type");
        coca_fail(req, COCA_STATUS_INVALID);
        return;
    }
    ses = coca_session_find(s, le32_to_cpu(r.session));
    if (!ses) {
        COCA_LOG("KBS_FORWARD: no session %u (closed or expired)",
                 le32_to_cpu(r.session));
        coca_fail(req, COCA_STATUS_NO_SESSION);
        return;
    }
    if (!coca_may_defer(req) || !coca_kbs_take_token(req)) {
        return;
    }
    ses->last_used = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    req->kbs_session = ses->id;
    req->ks = coco_attest_kbs_session_ref(ses->ks);
    req->kbs_post = method == COCA_KBS_POST;
    req->kbs_path = g_strndup((const char *)path, path_len);
    req->kbs_ctype = g_strndup((const char *)ctype, ctype_len);
    req->kbs_body_off = sizeof(r) + path_len + ctype_len;
    req->kbs_body_len = body_len;
    req->kbs_max_response = coca_kbs_max_response(s);

    /* always off the vCPU: the KBS may take seconds */
    if (!coca_mark_pending(req)) {
        return;
    }
    thread_pool_submit_aio(coca_kbs_forward_work, req, coca_kbs_forward_done,
                           req);
}

/* Which feature each command needs (0: none beyond negotiation) */
static const struct {
    uint16_t op;
    uint64_t feature;
    void (*fn)(CocoAttestReq *req);
} coca_ops[] = {
    { COCA_OP_NEGOTIATE, 0, coca_op_negotiate },
    { COCA_OP_ECHO, COCA_FEAT_DIAG, coca_op_echo },
    { COCA_OP_GET_IDENTITY, COCA_FEAT_IDENTITY, coca_op_get_identity },
    { COCA_OP_GET_NONCE, COCA_FEAT_IDENTITY, coca_op_get_nonce },
    { COCA_OP_GET_EK_CERT, COCA_FEAT_IDENTITY, coca_op_get_ek_cert },
    { COCA_OP_CERTIFY_EK, COCA_FEAT_IDENTITY, coca_op_certify_ek },
    { COCA_OP_CERTIFY_AK, COCA_FEAT_IDENTITY, coca_op_certify_ak },
    { COCA_OP_KBS_CONFIG, COCA_FEAT_KBS, coca_op_kbs_config },
    { COCA_OP_KBS_OPEN, COCA_FEAT_KBS, coca_op_kbs_open },
    { COCA_OP_KBS_FORWARD, COCA_FEAT_KBS, coca_op_kbs_forward },
    { COCA_OP_KBS_CLOSE, COCA_FEAT_KBS, coca_op_kbs_close },
};

static void coca_dispatch(CocoAttestReq *req)
{
    CocoAttestState *s = req->s;
    uint16_t cmd = req->hdr.command;
    size_t i;

    s->inflight = req;
    s->last_chan = req->chan;
    s->stat_requests++;
    trace_coco_attest_request(coca_chan_name(req->chan), cmd, req->hdr.seq,
                              req->in_len);

    if (req->status != COCA_STATUS_OK) {
        /* header or transfer failure found while copying in */
        coca_fail(req, req->status);
        return;
    }
    for (i = 0; i < ARRAY_SIZE(coca_ops) && coca_ops[i].op != cmd; i++) {
        /* find the command */
    }
    if (i == ARRAY_SIZE(coca_ops)) {
        COCA_LOG("unknown command 0x%x", cmd);
        coca_fail(req, COCA_STATUS_UNSUPPORTED);
        return;
    }
    if (cmd != COCA_OP_NEGOTIATE && !s->negotiated) {
        COCA_LOG("command 0x%x before NEGOTIATE", cmd);
        coca_fail(req, COCA_STATUS_NOT_NEGOTIATED);
        return;
    }
    if (coca_ops[i].feature &&
        !(s->negotiated_features & coca_ops[i].feature)) {
        COCA_LOG("command 0x%x needs feature 0x%" PRIx64, cmd,
                 coca_ops[i].feature);
        coca_fail(req, COCA_STATUS_FEATURE);
        return;
    }
    coca_ops[i].fn(req);
}

/*
 * Check a request header (host byte order) against the channel it came
 * from and the limits in force.  Returns a COCA_STATUS_* value.
 */
static uint32_t coca_check_hdr(CocoAttestState *s, CocoAttestReq *req)
{
    struct coca_hdr *h = &req->hdr;
    uint64_t end;

    if (h->magic != COCA_MSG_MAGIC || h->version != COCA_MSG_VERSION) {
        COCA_LOG("bad magic 0x%x or version %u", h->magic, h->version);
        return COCA_STATUS_BAD_HEADER;
    }
    if ((h->flags & ~COCA_FLAGS_GUEST) || h->reserved0 || h->reserved1) {
        COCA_LOG("reserved header bits set (flags 0x%x)", h->flags);
        return COCA_STATUS_BAD_HEADER;
    }
    if (!(h->flags & COCA_FLAG_EXT_BUF)) {
        if (h->buf_gpa || h->buf_len) {
            COCA_LOG("buffer fields set without EXT_BUF");
            return COCA_STATUS_BAD_HEADER;
        }
        if (req->chan == COCA_CHAN_PAGE && h->req_len > COCA_INLINE_MAX) {
            COCA_LOG("inline request length %u > %u", h->req_len,
                     COCA_INLINE_MAX);
            return COCA_STATUS_TOO_LARGE;
        }
        return h->req_len > s->max_object ? COCA_STATUS_TOO_LARGE
                                          : COCA_STATUS_OK;
    }

    /* external buffer */
    if (req->chan == COCA_CHAN_PORT) {
        COCA_LOG("EXT_BUF on the port channel");
        return COCA_STATUS_BAD_HEADER;
    }
    if (!s->negotiated || !(s->negotiated_features & COCA_FEAT_EXT_BUF)) {
        COCA_LOG("EXT_BUF used but not negotiated");
        return COCA_STATUS_FEATURE;
    }
    if (!QEMU_IS_ALIGNED(h->buf_gpa, COCA_PAGE_SIZE) || !h->buf_len ||
        uadd64_overflow(h->buf_gpa, h->buf_len, &end)) {
        COCA_LOG("bad buffer 0x%" PRIx64 "+0x%x", h->buf_gpa, h->buf_len);
        return COCA_STATUS_BAD_BUFFER;
    }
    if (h->buf_len > s->max_object || h->req_len > h->buf_len) {
        COCA_LOG("buffer length %u / request length %u over the limit %u",
                 h->buf_len, h->req_len, s->max_object);
        return COCA_STATUS_TOO_LARGE;
    }
    if (h->buf_gpa < req->page + COCA_PAGE_SIZE && req->page < end) {
        COCA_LOG("buffer 0x%" PRIx64 "+0x%x overlaps the request page",
                 h->buf_gpa, h->buf_len);
        return COCA_STATUS_BAD_BUFFER;
    }
    if (!coca_is_ram(h->buf_gpa, h->buf_len)) {
        COCA_LOG("buffer 0x%" PRIx64 "+0x%x is not guest RAM",
                 h->buf_gpa, h->buf_len);
        return COCA_STATUS_BAD_BUFFER;
    }
    return COCA_STATUS_OK;
}

/* Copy the payload described by @req->hdr into a private buffer. */
static uint32_t coca_copy_in(CocoAttestReq *req, const uint8_t *port_data)
{
    uint32_t len = req->hdr.req_len;
    uint64_t src;

    req->in = g_try_malloc(MAX(len, 1));
    if (!req->in) {
        return COCA_STATUS_INTERNAL;
    }
    req->in_len = len;
    if (port_data) {
        memcpy(req->in, port_data, len);
        return COCA_STATUS_OK;
    }
    src = (req->hdr.flags & COCA_FLAG_EXT_BUF) ? req->hdr.buf_gpa
                                               : req->page + COCA_HDR_SIZE;
    if (len && !coca_read(src, req->in, len)) {
        return COCA_STATUS_BAD_BUFFER;
    }
    return COCA_STATUS_OK;
}

/* COCA_CMD_RING: the page channel doorbell. */
static void coca_ring(CocoAttestState *s)
{
    CocoAttestReq *req;

    s->done = false;
    s->port_response = false;
    coca_update_irq(s);
    if (!s->page_valid) {
        COCA_LOG("doorbell without a registered page");
        coca_set_result(s, COCA_CMD_RING, COCA_RES_BAD_PAGE);
        return;
    }
    req = coca_req_new(s, COCA_CHAN_PAGE);
    req->page = s->page;
    if (!coca_read(s->page, &req->hdr, COCA_HDR_SIZE)) {
        COCA_LOG("request page 0x%" PRIx64 " is not guest RAM", s->page);
        s->stat_errors++;
        coca_req_free(req);
        coca_set_result(s, COCA_CMD_RING, COCA_RES_BAD_PAGE);
        return;
    }
    coca_set_result(s, COCA_CMD_RING, COCA_RES_OK);
    coca_hdr_from_le(&req->hdr);
    req->status = coca_check_hdr(s, req);
    if (req->status == COCA_STATUS_OK) {
        req->status = coca_copy_in(req, NULL);
    }
    coca_dispatch(req);
}

/* COCA_CMD_PORT_SUBMIT: the port channel doorbell. */
static void coca_port_submit(CocoAttestState *s)
{
    CocoAttestReq *req;
    struct coca_hdr h;
    uint32_t crc, msg_len;

    s->done = false;
    s->port_response = false;
    coca_update_irq(s);
    if (!s->port_active) {
        COCA_LOG("PORT_SUBMIT without PORT_BEGIN");
        coca_set_result(s, COCA_CMD_PORT_SUBMIT, COCA_RES_STREAM);
        return;
    }
    s->port_active = false;
    if (s->port_len < COCA_HDR_SIZE) {
        COCA_LOG("port request shorter than a header (%u bytes)",
                 s->port_len);
        coca_set_result(s, COCA_CMD_PORT_SUBMIT, COCA_RES_STREAM);
        s->stat_errors++;
        return;
    }
    memcpy(&h, s->port_buf, COCA_HDR_SIZE);
    coca_hdr_from_le(&h);
    /* the stream must hold exactly the message, padded to 4 bytes */
    if (h.req_len > s->port_len - COCA_HDR_SIZE ||
        ROUND_UP(COCA_HDR_SIZE + h.req_len, 4) != s->port_len) {
        COCA_LOG("port stream of %u bytes does not match req_len %u",
                 s->port_len, h.req_len);
        coca_set_result(s, COCA_CMD_PORT_SUBMIT, COCA_RES_STREAM);
        s->stat_errors++;
        return;
    }
    msg_len = COCA_HDR_SIZE + h.req_len;
    crc = coca_crc(s->port_buf, msg_len);
    if (crc != s->port_crc) {
        COCA_LOG("port request CRC 0x%08x, expected 0x%08x", s->port_crc,
                 crc);
        coca_set_result(s, COCA_CMD_PORT_SUBMIT, COCA_RES_CRC);
        s->stat_errors++;
        return;
    }

    coca_set_result(s, COCA_CMD_PORT_SUBMIT, COCA_RES_OK);
    req = coca_req_new(s, COCA_CHAN_PORT);
    req->hdr = h;
    req->status = coca_check_hdr(s, req);
    if (req->status == COCA_STATUS_OK) {
        req->status = coca_copy_in(req, s->port_buf + COCA_HDR_SIZE);
    }
    coca_dispatch(req);
}

/* ------------------------------------------------------------------ */
/* Registers                                                           */
/* ------------------------------------------------------------------ */

static void coca_register_page(CocoAttestState *s)
{
    uint64_t gpa = s->page_staged;
    bool ok = QEMU_IS_ALIGNED(gpa, COCA_PAGE_SIZE) &&
              coca_is_ram(gpa, COCA_PAGE_SIZE);

    trace_coco_attest_register_page(gpa, ok);
    if (!ok) {
        COCA_LOG("refusing request page 0x%" PRIx64
                 " (unaligned or not guest RAM)", gpa);
        /* a registered page stays registered */
        coca_set_result(s, COCA_CMD_REGISTER_PAGE, COCA_RES_BAD_PAGE);
        return;
    }
    s->page = gpa;
    s->page_valid = true;
    coca_set_result(s, COCA_CMD_REGISTER_PAGE, COCA_RES_OK);
}

static void coca_cmd(CocoAttestState *s, uint32_t cmd)
{
    /* everything that would disturb the request in flight waits */
    bool busy = s->inflight != NULL;

    switch (cmd) {
    case COCA_CMD_ACK:
        s->done = false;
        s->port_response = false;
        coca_update_irq(s);
        coca_set_result(s, cmd, COCA_RES_OK);
        return;
    case COCA_CMD_IRQ_ENABLE:
        if (!(coco_attest_offered(s) & COCA_FEAT_IRQ)) {
            COCA_LOG("IRQ_ENABLE but the device offers no interrupt");
            coca_set_result(s, cmd, COCA_RES_NO_IRQ);
            return;
        }
        s->irq_enabled = true;
        coca_update_irq(s);
        coca_set_result(s, cmd, COCA_RES_OK);
        return;
    case COCA_CMD_IRQ_DISABLE:
        s->irq_enabled = false;
        coca_update_irq(s);
        coca_set_result(s, cmd, COCA_RES_OK);
        return;
    case COCA_CMD_REGISTER_PAGE:
    case COCA_CMD_UNREGISTER:
    case COCA_CMD_RING:
    case COCA_CMD_PORT_BEGIN:
    case COCA_CMD_PORT_SUBMIT:
        if (busy) {
            COCA_LOG("command 0x%x while a request is in flight", cmd);
            coca_set_result(s, cmd, COCA_RES_BUSY);
            return;
        }
        break;
    default:
        COCA_LOG("unknown register command 0x%x", cmd);
        coca_set_result(s, cmd, COCA_RES_BAD_CMD);
        return;
    }

    switch (cmd) {
    case COCA_CMD_REGISTER_PAGE:
        coca_register_page(s);
        break;
    case COCA_CMD_UNREGISTER:
        s->page_valid = false;
        coca_set_result(s, cmd, COCA_RES_OK);
        break;
    case COCA_CMD_RING:
        coca_ring(s);
        break;
    case COCA_CMD_PORT_BEGIN:
        s->port_active = true;
        s->port_response = false;
        s->port_len = 0;
        s->port_pos = 0;
        s->port_crc = 0;
        coca_set_result(s, cmd, COCA_RES_OK);
        break;
    case COCA_CMD_PORT_SUBMIT:
        coca_port_submit(s);
        break;
    }
}

static uint32_t coca_status(CocoAttestState *s)
{
    return (s->inflight ? COCA_STS_BUSY : 0) |
           (s->done ? COCA_STS_DONE : 0) |
           (s->isairq && s->irq_enabled && s->done ? COCA_STS_IRQ : 0) |
           (s->irq_enabled ? COCA_STS_IRQ_ENABLED : 0) |
           (s->page_valid ? COCA_STS_PAGE_VALID : 0) |
           (s->negotiated ? COCA_STS_NEGOTIATED : 0) |
           (s->port_active ? COCA_STS_PORT_ACTIVE : 0) |
           (s->port_response ? COCA_STS_PORT_RESPONSE : 0);
}

static uint64_t coca_io_read(void *opaque, hwaddr addr, unsigned size)
{
    CocoAttestState *s = opaque;
    uint32_t val = 0;

    switch (addr) {
    case COCA_REG_SIGNATURE:
        return COCA_SIGNATURE;
    case COCA_REG_VERSION:
        return (COCA_TRANSPORT_MAJOR << 16) | COCA_TRANSPORT_MINOR;
    case COCA_REG_PAGE_LO:
        return (uint32_t)s->page_staged;
    case COCA_REG_PAGE_HI:
        return s->page_staged >> 32;
    case COCA_REG_CMD:
        return s->result;
    case COCA_REG_STATUS:
        return coca_status(s);
    case COCA_REG_DATA:
        if (!s->port_response) {
            COCA_LOG("DATA read with no port response ready");
            coca_set_result(s, COCA_REG_DATA, COCA_RES_NOT_READY);
            return 0;
        }
        if (s->port_pos >= ROUND_UP(s->port_len, 4)) {
            COCA_LOG("DATA read past the end of the response");
            coca_set_result(s, COCA_REG_DATA, COCA_RES_STREAM);
            return 0;
        }
        /* bytes past port_len were zeroed when the response was built */
        val = ldl_le_p(s->port_buf + s->port_pos);
        s->port_pos += 4;
        s->result = COCA_RES_OK;
        return val;
    case COCA_REG_CRC:
        return s->port_response ? s->port_crc : 0;
    }
    return 0;
}

static void coca_io_write(void *opaque, hwaddr addr, uint64_t val,
                          unsigned size)
{
    CocoAttestState *s = opaque;

    switch (addr) {
    case COCA_REG_PAGE_LO:
        s->page_staged = deposit64(s->page_staged, 0, 32, val);
        return;
    case COCA_REG_PAGE_HI:
        s->page_staged = deposit64(s->page_staged, 32, 32, val);
        return;
    case COCA_REG_CMD:
        coca_cmd(s, val);
        return;
    case COCA_REG_DATA:
        if (!s->port_active || s->inflight) {
            COCA_LOG("DATA write outside PORT_BEGIN..PORT_SUBMIT");
            coca_set_result(s, COCA_REG_DATA, s->inflight ? COCA_RES_BUSY
                                                          : COCA_RES_STREAM);
            return;
        }
        if (s->port_len + 4 > s->port_cap) {
            COCA_LOG("port request overruns %u bytes", s->port_cap);
            coca_set_result(s, COCA_REG_DATA, COCA_RES_STREAM);
            s->port_active = false;
            s->stat_errors++;
            return;
        }
        stl_le_p(s->port_buf + s->port_len, val);
        s->port_len += 4;
        s->result = COCA_RES_OK;
        return;
    case COCA_REG_CRC:
        if (s->port_active) {
            s->port_crc = val;
        }
        return;
    default:
        COCA_LOG("write to read-only register 0x%" HWADDR_PRIx, addr);
    }
}

static const MemoryRegionOps coca_io_ops = {
    .read = coca_io_read,
    .write = coca_io_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = {
        .min_access_size = 4,
        .max_access_size = 4,
    },
};

/* ------------------------------------------------------------------ */
/* Device lifecycle                                                    */
/* ------------------------------------------------------------------ */

/* ------------------------------------------------------------------ */
/* Migration                                                           */
/* ------------------------------------------------------------------ */

static const char *const coca_feature_names[] = {
    "EXT_BUF", "IRQ", "DIAG", "IDENTITY", "KBS",
};

#define COCA_MIG_ERROR(fmt, ...) \
    error_report("coco-attest: incoming migration: " fmt, ## __VA_ARGS__)

/*
 * The destination answers a request that was in flight on the source
 * with RETRY: its answer, if any, stayed behind.  Runs when the VM starts.
 */
static void coca_answer_retry(CocoAttestState *s, CocoAttestChan chan)
{
    CocoAttestReq *req = coca_req_new(s, chan);

    if (chan == COCA_CHAN_PAGE) {
        req->page = s->page;
        if (!coca_read(s->page, &req->hdr, COCA_HDR_SIZE)) {
            COCA_LOG("request page 0x%" PRIx64 " is no longer RAM: the "
                     "request in flight at migration gets no answer",
                     s->page);
            coca_req_free(req);
            return;
        }
    } else {
        memcpy(&req->hdr, s->port_buf, COCA_HDR_SIZE);
    }
    coca_hdr_from_le(&req->hdr);
    trace_coco_attest_migration_retry(coca_chan_name(chan),
                                      req->hdr.command, req->hdr.seq);
    s->inflight = req;
    coca_fail(req, COCA_STATUS_RETRY);
}

static void coca_vm_state_change(void *opaque, bool running, RunState state)
{
    CocoAttestState *s = opaque;
    CocoAttestReq *req = s->parked;

    if (!running) {
        return;
    }
    if (req) {
        s->parked = NULL;
        coca_complete(req);
    }
    if (s->mig_retry != COCA_CHAN_NONE) {
        CocoAttestChan chan = s->mig_retry;

        s->mig_retry = COCA_CHAN_NONE;
        coca_answer_retry(s, chan);
    }
}

/* Open KBS sessions as records (ids, idle time, cookies) */
static void coca_kbs_pack(CocoAttestState *s)
{
    int64_t now = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    uint32_t i, off = 0;

    for (i = 0; i < s->n_sessions; i++) {
        CocoAttestSession *ses = &s->sessions[i];
        g_autofree char *cookies = NULL;
        CocoAttestMigSession rec;
        size_t len;

        if (!ses->id) {
            continue;
        }
        cookies = coco_attest_kbs_session_cookies(ses->ks);
        len = MIN(strlen(cookies), COCO_ATTEST_KBS_COOKIES_MAX);
        rec.id = cpu_to_le32(ses->id);
        rec.idle_ms = cpu_to_le32(MIN(now - ses->last_used, UINT32_MAX));
        rec.cookies_len = cpu_to_le32(len);
        memcpy(s->mig_kbs + off, &rec, sizeof(rec));
        memcpy(s->mig_kbs + off + sizeof(rec), cookies, len);
        off += sizeof(rec) + len;
    }
    s->mig_kbs_len = off;
}

static bool coca_kbs_unpack(CocoAttestState *s)
{
    int64_t now = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    uint32_t off = 0, n = 0, i;

    coca_sessions_close_all(s);
    while (off < s->mig_kbs_len) {
        g_autofree char *cookies = NULL;
        CocoAttestMigSession rec;
        Error *err = NULL;
        CocoAttestSession *ses;
        uint32_t id, len;

        if (s->mig_kbs_len - off < sizeof(rec)) {
            COCA_MIG_ERROR("truncated KBS session record");
            return false;
        }
        memcpy(&rec, s->mig_kbs + off, sizeof(rec));
        off += sizeof(rec);
        id = le32_to_cpu(rec.id);
        len = le32_to_cpu(rec.cookies_len);
        if (len > COCO_ATTEST_KBS_COOKIES_MAX || len > s->mig_kbs_len - off) {
            COCA_MIG_ERROR("KBS session %u: %u bytes of cookies", id, len);
            return false;
        }
        for (i = 0; i < n; i++) {
            if (s->sessions[i].id == id) {
                break;
            }
        }
        if (!id || i < n || n == s->n_sessions) {
            COCA_MIG_ERROR("KBS session %u: zero, duplicate or more than "
                           "max-sessions (%u)", id, s->n_sessions);
            return false;
        }
        cookies = g_strndup((const char *)s->mig_kbs + off, len);
        off += len;
        ses = &s->sessions[n++];
        ses->ks = coco_attest_kbs_session_new(s->kbs);
        if (strlen(cookies) != len ||
            !coco_attest_kbs_session_set_cookies(ses->ks, cookies, &err)) {
            COCA_MIG_ERROR("KBS session %u: %s", id,
                           err ? error_get_pretty(err) : "NUL in cookies");
            error_free(err);
            coco_attest_kbs_session_unref(ses->ks);
            ses->ks = NULL;
            return false;
        }
        ses->id = id;
        ses->last_used = now - le32_to_cpu(rec.idle_ms);
    }
    return true;
}

static void coca_reset_enter(Object *obj, ResetType type);

/*
 * A stream replaces the whole device state, and nothing from before may
 * pass for the stream's.  An incoming migration or loadvm starts from a
 * reset device; xen-load-devices-state loads into a used one (on Xen
 * machines: elsewhere QEMU refuses its streams), so work from before (a
 * request in flight or parked, KBS sessions) goes here, as at a reset.
 */
static int coca_pre_load(void *opaque)
{
    CocoAttestState *s = opaque;

    coca_reset_enter(OBJECT(s), RESET_TYPE_COLD);
    s->mig_kbs_len = 0;
    return 0;
}

static int coca_pre_save(void *opaque)
{
    CocoAttestState *s = opaque;

    /* a request in flight is not drained: the destination says RETRY */
    s->mig_inflight = s->inflight ? s->inflight->chan : COCA_CHAN_NONE;
    s->mig_last_chan = s->last_chan;
    s->mig_max_object = s->max_object;
    /*
     * A nonce is single use: only one not consumed yet migrates.  A
     * TPM-format CERTIFY_AK in flight consumed its nonce, so its resent
     * request is answered NONCE and the guest fetches a fresh one.
     */
    memcpy(s->mig_nonce, s->nonce, sizeof(s->nonce));
    s->mig_nonce_valid = s->nonce_valid;
    if (s->sessions) {
        coca_kbs_pack(s);
    }
    return 0;
}

/* Early in the stream: what the guest negotiated must be offered here */
static bool coca_features_valid(void *opaque, int version_id)
{
    CocoAttestState *s = opaque;
    uint64_t missing = s->negotiated_features & ~coco_attest_offered(s);
    g_autoptr(GString) names = g_string_new("");
    size_t i;

    if (!missing) {
        return true;
    }
    for (i = 0; i < 64; i++) {
        if (missing & (1ull << i)) {
            g_string_append_printf(names, "%s%s", names->len ? ", " : "",
                                   i < ARRAY_SIZE(coca_feature_names) ?
                                   coca_feature_names[i] : "unknown");
        }
    }
    COCA_MIG_ERROR("the guest negotiated feature(s) %s (0x%" PRIx64 ") "
                   "that this device does not offer (features=0x%" PRIx64
                   "%s%s)", names->str, missing, s->features,
                   s->ca ? "" : ", no ca", s->kbs ? "" : ", no kbs");
    return false;
}

/*
 * Before the port buffer is read into: it must fit.  This runs on save
 * too, so it checks only what the device itself always keeps true: a
 * response has any length (a 9-byte ECHO answer is 57 bytes), a request
 * being streamed grows by whole words.
 */
static bool coca_port_len_valid(void *opaque, int version_id)
{
    CocoAttestState *s = opaque;

    if (s->port_len > s->port_cap) {
        COCA_MIG_ERROR("port stream of %u bytes (this device holds %u)",
                       s->port_len, s->port_cap);
        return false;
    }
    if (s->port_active && s->port_len % 4) {
        COCA_MIG_ERROR("port request of %u bytes is not whole words",
                       s->port_len);
        return false;
    }
    return true;
}

static bool coca_kbs_len_valid(void *opaque, int version_id)
{
    CocoAttestState *s = opaque;

    if (s->mig_kbs_len > s->mig_kbs_cap) {
        COCA_MIG_ERROR("%u bytes of KBS sessions (this device holds %u)",
                       s->mig_kbs_len, s->mig_kbs_cap);
        return false;
    }
    return true;
}

/* Everything else the stream says is checked before it is used. */
static int coca_post_load(void *opaque, int version_id)
{
    CocoAttestState *s = opaque;

    if (s->negotiated ? s->proto < COCA_PROTO_MIN || s->proto > COCA_PROTO_MAX
                      : s->proto || s->negotiated_features) {
        COCA_MIG_ERROR("protocol version %u (negotiated %d)", s->proto,
                       s->negotiated);
        return -EINVAL;
    }
    /*
     * Not "is it RAM": that is checked at every access, and here it would
     * depend on whether the chipset's state (PAM, SMRAM) has loaded yet,
     * and fail a migration because the guest remapped its own page.
     */
    if (s->page_valid && (!QEMU_IS_ALIGNED(s->page, COCA_PAGE_SIZE) ||
                          s->page > UINT64_MAX - COCA_PAGE_SIZE)) {
        COCA_MIG_ERROR("request page 0x%" PRIx64 " is not a page address",
                       s->page);
        return -EINVAL;
    }
    if (s->result > COCA_RES_NO_IRQ || s->mig_last_chan > COCA_CHAN_PORT ||
        s->mig_inflight > COCA_CHAN_PORT) {
        COCA_MIG_ERROR("result %u, channel %u or request in flight %u out "
                       "of range", s->result, s->mig_last_chan,
                       s->mig_inflight);
        return -EINVAL;
    }
    if (s->irq_enabled && !(coco_attest_offered(s) & COCA_FEAT_IRQ)) {
        COCA_MIG_ERROR("interrupt enabled, but this device has none");
        return -EINVAL;
    }
    /*
     * The DATA register reads whole words at port_pos from a response
     * padded to a word: port_pos must be a word inside that padding, and
     * the CRC the guest checks must be the response's.
     */
    if (!s->port_response) {
        s->port_pos = 0;        /* meaningful only while reading one */
    }
    if ((s->port_active && s->port_response) ||
        s->port_pos % 4 || s->port_pos > ROUND_UP(s->port_len, 4) ||
        (s->port_response && s->port_len < COCA_HDR_SIZE)) {
        COCA_MIG_ERROR("inconsistent port channel state (read position %u "
                       "of %u bytes, active %d, response %d)", s->port_pos,
                       s->port_len, s->port_active, s->port_response);
        return -EINVAL;
    }
    if (s->port_response &&
        s->port_crc != coca_crc(s->port_buf, s->port_len)) {
        COCA_MIG_ERROR("port response CRC 0x%08x does not match its %u "
                       "bytes", s->port_crc, s->port_len);
        return -EINVAL;
    }
    if ((s->mig_inflight == COCA_CHAN_PAGE && !s->page_valid) ||
        (s->mig_inflight == COCA_CHAN_PORT &&
         (s->port_active || s->port_response ||
          s->port_len < COCA_HDR_SIZE))) {
        COCA_MIG_ERROR("a request in flight on a channel that cannot have "
                       "one");
        return -EINVAL;
    }
    if (s->mig_inflight != COCA_CHAN_NONE && s->done) {
        COCA_MIG_ERROR("a request both in flight and done");
        return -EINVAL;
    }
    if (s->mig_max_object > s->max_object) {
        COCA_MIG_ERROR("the guest was told max-object %u, this device has "
                       "%u", s->mig_max_object, s->max_object);
        return -EINVAL;
    }
    if ((s->negotiated_features & COCA_FEAT_KBS) && !coca_kbs_unpack(s)) {
        return -EINVAL;
    }
    memcpy(s->nonce, s->mig_nonce, sizeof(s->nonce));
    s->nonce_valid = s->mig_nonce_valid;
    /* the bytes after the stream read as zero, as on the source */
    memset(s->port_buf + s->port_len, 0, s->port_cap - s->port_len);
    s->last_chan = s->mig_last_chan;
    s->mig_retry = s->mig_inflight;
    return 0;
}


/* A completion parked while the VM was stopped will never be delivered */
static void coca_drop_parked(CocoAttestState *s)
{
    if (s->parked) {
        trace_coco_attest_stale_completion(s->parked->hdr.seq,
                                           s->parked->epoch, s->epoch);
        coca_req_free(s->parked);
        s->parked = NULL;
        s->stat_dropped++;
    }
}

static void coca_reset_enter(Object *obj, ResetType type)
{
    CocoAttestState *s = COCO_ATTEST(obj);
    CocoAttestReq *req = s->inflight;

    /*
     * Waking from S3 is not a new boot: the guest's memory, and the
     * service module's state in it, survived the suspend, and so does
     * the device's.  A request pending across the suspend completes.
     */
    if (type == RESET_TYPE_WAKEUP) {
        trace_coco_attest_wakeup(req != NULL);
        return;
    }
    s->epoch++;
    trace_coco_attest_reset(s->epoch, req != NULL);
    coca_drop_parked(s);
    s->mig_retry = COCA_CHAN_NONE;
    /*
     * A request in flight keeps running to completion on its private
     * buffers; coca_complete() then sees the old epoch and drops it.
     */
    s->inflight = NULL;
    s->page_staged = 0;
    s->page = 0;
    s->page_valid = false;
    s->result = COCA_RES_OK;
    s->done = false;
    s->irq_enabled = false;
    s->negotiated = false;
    s->proto = 0;
    s->negotiated_features = 0;
    s->port_active = false;
    s->port_response = false;
    s->port_len = 0;
    s->port_pos = 0;
    s->port_crc = 0;
    s->last_chan = COCA_CHAN_NONE;
    s->nonce_valid = false;
    memset(s->nonce, 0, sizeof(s->nonce));
    /* the guest's KBS sessions end with it (cookies, connections) */
    coca_sessions_close_all(s);
    if (s->port_buf) {
        memset(s->port_buf, 0, s->port_cap);
    }
}

static void coca_reset_hold(Object *obj, ResetType type)
{
    coca_update_irq(COCO_ATTEST(obj));
}

/*
 * The register window must not overlap ports something else already
 * decodes: one of the two would hide the other (fw_cfg at 0x510, PCI
 * configuration at 0xcf8, a COM port).  Only what is mapped when the
 * device is realized is seen: a device created later on the command
 * line, or ports that firmware or the guest maps afterwards (PCI I/O
 * BARs, the ACPI PM block), are not.  On the machines with an ISA bus
 * (pc, q35, microvm) its I/O space is the root of the I/O address
 * space, so addresses in it are port numbers.
 */
static bool coca_check_ports(CocoAttestState *s, Error **errp)
{
    MemoryRegion *io = isa_address_space_io(ISA_DEVICE(s));
    hwaddr first = s->iobase, last = first + COCA_IO_SIZE - 1;
    hwaddr addr = first;

    while (addr <= last) {
        MemoryRegionSection sec = memory_region_find(io, addr,
                                                     last - addr + 1);
        Object *owner;
        hwaddr lo, hi;

        if (!sec.mr) {
            break;
        }
        if (sec.mr == io) {
            /* where no device decodes, the I/O space itself answers */
            addr = sec.offset_within_address_space + int128_get64(sec.size);
            memory_region_unref(sec.mr);
            continue;
        }
        /* the whole of the region, not just the part in the window */
        lo = sec.offset_within_address_space;
        if (sec.offset_within_region <= lo) {
            lo -= sec.offset_within_region;
        }
        hi = MIN(lo + memory_region_size(sec.mr) - 1, 0xffff);
        owner = memory_region_owner(sec.mr);
        error_setg(errp, "ports 0x%" HWADDR_PRIx "-0x%" HWADDR_PRIx
                   " overlap '%s'%s%s at 0x%" HWADDR_PRIx "-0x%"
                   HWADDR_PRIx "; choose another iobase", first, last,
                   memory_region_name(sec.mr) ?: "(unnamed)",
                   owner ? " of " : "",
                   owner ? object_get_typename(owner) : "", lo, hi);
        memory_region_unref(sec.mr);
        return false;
    }
    return true;
}

/* A property of another device that names the ISA interrupt it uses */
static bool coca_is_irq_prop(const ObjectProperty *prop)
{
    return (!strcmp(prop->name, "irq") ||
            g_str_has_suffix(prop->name, "-irq")) &&
           prop->type && (g_str_has_prefix(prop->type, "int") ||
                          g_str_has_prefix(prop->type, "uint"));
}

/*
 * ISA interrupts are not shared: two devices driving one line overwrite
 * each other's level.  QEMU does not record which line a device uses,
 * but the ISA devices that take one say so in a property, "irq" by
 * convention (isa-serial, isa-parallel, isa-fdc, mc146818rtc, ne2k_isa,
 * tpm-tis, isa-ipmi-kcs, ...) and "kbd-irq", "mouse-irq" for i8042:
 * look for the device's line in those of the other devices on the bus.
 * Users that are not such ISA devices are not seen: devices created
 * later, PIIX IDE in compatibility mode (14, 15), the ACPI SCI (9), the
 * FPU error line (13), and the lines firmware routes PCI interrupts to.
 */
static bool coca_check_irq(CocoAttestState *s, Error **errp)
{
    DeviceState *dev = DEVICE(s);
    BusState *bus = qdev_get_parent_bus(dev);
    BusChild *kid;

    QTAILQ_FOREACH(kid, &bus->children, sibling) {
        DeviceState *other = kid->child;
        ObjectPropertyIterator iter;
        ObjectProperty *prop;

        if (other == dev || !other->realized) {
            continue;
        }
        object_property_iter_init(&iter, OBJECT(other));
        while ((prop = object_property_iter_next(&iter))) {
            if (!coca_is_irq_prop(prop) ||
                object_property_get_int(OBJECT(other), prop->name,
                                        NULL) != s->isairq) {
                continue;
            }
            error_setg(errp, "irq %u is already used by %s%s%s%s (its %s "
                       "property); choose another irq, or 0 for none",
                       s->isairq, object_get_typename(OBJECT(other)),
                       other->id ? " '" : "", other->id ?: "",
                       other->id ? "'" : "", prop->name);
            return false;
        }
    }
    return true;
}

static void coca_realize(DeviceState *dev, Error **errp)
{
    CocoAttestState *s = COCO_ATTEST(dev);
    ISADevice *isa = ISA_DEVICE(dev);
    FWCfgState *fw_cfg = fw_cfg_find();
    bool ambiguous = false;
    struct coca_fw_cfg *info;

    object_resolve_path_type("", TYPE_COCO_ATTEST, &ambiguous);
    if (ambiguous) {
        error_setg(errp, "at most one coco-attest device is supported");
        return;
    }
    if (s->max_object < COCA_MAX_OBJECT_MIN ||
        s->max_object > COCA_MAX_OBJECT_MAX ||
        !QEMU_IS_ALIGNED(s->max_object, COCA_PAGE_SIZE)) {
        error_setg(errp, "max-object must be a multiple of %u between %u "
                   "and %u bytes", COCA_PAGE_SIZE, COCA_MAX_OBJECT_MIN,
                   COCA_MAX_OBJECT_MAX);
        return;
    }
    if (s->iobase > 0x10000 - COCA_IO_SIZE ||
        !QEMU_IS_ALIGNED(s->iobase, 4)) {
        error_setg(errp, "iobase 0x%x must be 4-byte aligned and leave room "
                   "for %u ports below 0x10000", s->iobase, COCA_IO_SIZE);
        return;
    }
    if (s->isairq == 2 || s->isairq > 15) {
        error_setg(errp, "irq %u is not a usable ISA interrupt "
                   "(0 = none, 1-15 but not 2)", s->isairq);
        return;
    }
    if (!coca_check_ports(s, errp) ||
        (s->isairq && !coca_check_irq(s, errp))) {
        return;
    }

    if (s->kbs) {
        CocoAttestKbsLimits lim;

        coco_attest_kbs_limits(s->kbs, &lim);
        s->n_sessions = lim.max_sessions;
        s->sessions = g_new0(CocoAttestSession, s->n_sessions);
        s->mig_kbs_cap = s->n_sessions * (sizeof(CocoAttestMigSession) +
                                          COCO_ATTEST_KBS_COOKIES_MAX);
        s->mig_kbs = g_malloc0(s->mig_kbs_cap);
    }
    s->vmstate_change = qdev_add_vm_change_state_handler(dev,
                                                         coca_vm_state_change,
                                                         s);

    if (s->isairq) {
        s->irq = isa_get_irq(isa, s->isairq);
    }
    s->port_cap = COCA_HDR_SIZE + s->max_object;
    s->port_buf = g_malloc0(s->port_cap);

    memory_region_init_io(&s->io, OBJECT(s), &coca_io_ops, s,
                          "coco-attest-io", COCA_IO_SIZE);
    isa_register_ioport(isa, &s->io, s->iobase);

    if (fw_cfg) {
        info = g_new0(struct coca_fw_cfg, 1);
        info->signature = cpu_to_le32(COCA_SIGNATURE);
        info->iobase = cpu_to_le16(s->iobase);
        info->irq = s->isairq;
        info->transport_major = cpu_to_le16(COCA_TRANSPORT_MAJOR);
        info->transport_minor = cpu_to_le16(COCA_TRANSPORT_MINOR);
        fw_cfg_add_file(fw_cfg, COCA_FW_CFG_FILE, info, sizeof(*info));
    }
}

static void coca_unrealize(DeviceState *dev)
{
    CocoAttestState *s = COCO_ATTEST(dev);

    /* a request still in flight must not touch the device any more */
    s->epoch++;
    s->inflight = NULL;
    coca_drop_parked(s);
    qemu_del_vm_change_state_handler(s->vmstate_change);
    g_free(s->mig_kbs);
    s->mig_kbs = NULL;
    g_free(s->port_buf);
    s->port_buf = NULL;
    coca_sessions_close_all(s);
    g_free(s->sessions);
    s->sessions = NULL;
    s->n_sessions = 0;
}

static void coca_instance_init(Object *obj)
{
    CocoAttestState *s = COCO_ATTEST(obj);

    /* DEFINE_PROP_UINT64_CHECKMASK leaves the default to us */
    s->features = COCA_FEAT_ALL;
}

static void coca_build_aml(AcpiDevAmlIf *adev, Aml *scope)
{
    CocoAttestState *s = COCO_ATTEST(adev);
    Aml *dev = aml_device("COCA");
    Aml *crs = aml_resource_template();
    Aml *dsd = aml_package(2);
    Aml *props = aml_package(1);
    Aml *compat = aml_package(2);

    /*
     * No ACPI ID is allocated for this device: use the PRP0001 mechanism,
     * which lets OS drivers match on a "compatible" string.
     */
    aml_append(dev, aml_name_decl("_HID", aml_string("PRP0001")));
    aml_append(dev, aml_name_decl("_UID", aml_int(0)));
    aml_append(crs, aml_io(AML_DECODE16, s->iobase, s->iobase, 4,
                           COCA_IO_SIZE));
    if (s->isairq) {
        aml_append(crs, aml_irq_no_flags(s->isairq));
    }
    aml_append(dev, aml_name_decl("_CRS", crs));
    aml_append(compat, aml_string("compatible"));
    aml_append(compat, aml_string(COCA_ACPI_COMPATIBLE));
    aml_append(props, compat);
    aml_append(dsd, aml_touuid("DAFFD814-6EBA-4D8C-8A91-BC9BBF4AA301"));
    aml_append(dsd, props);
    aml_append(dev, aml_name_decl("_DSD", dsd));
    aml_append(dev, aml_name_decl("_STA", aml_int(0xF)));
    aml_append(scope, dev);
}

static bool coca_kbs_needed(void *opaque)
{
    CocoAttestState *s = opaque;

    return s->negotiated_features & COCA_FEAT_KBS;
}

static const VMStateDescription coca_vmstate_kbs = {
    .name = "coco-attest/kbs",
    .version_id = 1,
    .minimum_version_id = 1,
    .needed = coca_kbs_needed,
    .fields = (const VMStateField[]) {
        VMSTATE_UNUSED(4),      /* was a session id counter */
        VMSTATE_UINT64(stat_kbs_requests, CocoAttestState),
        VMSTATE_UINT64(stat_kbs_errors, CocoAttestState),
        VMSTATE_UINT32(mig_kbs_len, CocoAttestState),
        VMSTATE_VALIDATE("KBS sessions fit", coca_kbs_len_valid),
        VMSTATE_VBUFFER_UINT32(mig_kbs, CocoAttestState, 0, NULL,
                               mig_kbs_len),
        VMSTATE_END_OF_LIST()
    },
};

/* Sent only once the guest was refused for its KBS rate */
static bool coca_kbs_limits_needed(void *opaque)
{
    CocoAttestState *s = opaque;

    return s->stat_kbs_rate_limited != 0;
}

static const VMStateDescription coca_vmstate_kbs_limits = {
    .name = "coco-attest/limits",   /* no "coco-attest/kbs" prefix */
    .version_id = 1,
    .minimum_version_id = 1,
    .needed = coca_kbs_limits_needed,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT64(stat_kbs_rate_limited, CocoAttestState),
        VMSTATE_END_OF_LIST()
    },
};

/*
 * New state goes into subsections whose .needed tests a negotiated
 * feature, so that a guest that did not negotiate it migrates to an
 * older destination.
 */
static const VMStateDescription coca_vmstate = {
    .name = "coco-attest",
    .version_id = 1,
    .minimum_version_id = 1,
    .pre_save = coca_pre_save,
    .pre_load = coca_pre_load,
    .post_load = coca_post_load,
    .fields = (const VMStateField[]) {
        VMSTATE_BOOL(negotiated, CocoAttestState),
        VMSTATE_UINT16(proto, CocoAttestState),
        VMSTATE_UINT64(negotiated_features, CocoAttestState),
        VMSTATE_VALIDATE("negotiated features offered", coca_features_valid),
        VMSTATE_UINT64(page_staged, CocoAttestState),
        VMSTATE_UINT64(page, CocoAttestState),
        VMSTATE_BOOL(page_valid, CocoAttestState),
        VMSTATE_UINT32(result, CocoAttestState),
        VMSTATE_BOOL(done, CocoAttestState),
        VMSTATE_BOOL(irq_enabled, CocoAttestState),
        VMSTATE_UINT8(mig_inflight, CocoAttestState),
        VMSTATE_UINT8(mig_last_chan, CocoAttestState),
        VMSTATE_BOOL(mig_nonce_valid, CocoAttestState),
        VMSTATE_UINT8_ARRAY(mig_nonce, CocoAttestState, COCA_NONCE_SIZE),
        VMSTATE_BOOL(port_active, CocoAttestState),
        VMSTATE_BOOL(port_response, CocoAttestState),
        VMSTATE_UINT32(port_pos, CocoAttestState),
        VMSTATE_UINT32(port_crc, CocoAttestState),
        VMSTATE_UINT32(port_len, CocoAttestState),
        VMSTATE_VALIDATE("port stream fits", coca_port_len_valid),
        VMSTATE_VBUFFER_UINT32(port_buf, CocoAttestState, 0, NULL, port_len),
        VMSTATE_UINT64(stat_requests, CocoAttestState),
        VMSTATE_UINT64(stat_errors, CocoAttestState),
        VMSTATE_UINT64(stat_dropped, CocoAttestState),
        VMSTATE_UINT32(mig_max_object, CocoAttestState),
        VMSTATE_END_OF_LIST()
    },
    .subsections = (const VMStateDescription * const []) {
        &coca_vmstate_kbs,
        &coca_vmstate_kbs_limits,
        NULL
    },
};

static const Property coca_properties[] = {
    DEFINE_PROP_UINT16("iobase", CocoAttestState, iobase,
                       COCA_DEFAULT_IOBASE),
    DEFINE_PROP_UINT32("irq", CocoAttestState, isairq, 0),
    DEFINE_PROP_UINT64_CHECKMASK("features", CocoAttestState, features,
                                 COCA_FEAT_ALL),
    DEFINE_PROP_UINT32("max-object", CocoAttestState, max_object,
                       COCA_MAX_OBJECT_MIN),
    DEFINE_PROP_UINT32("x-echo-delay-ms", CocoAttestState, echo_delay_ms,
                       0),
    DEFINE_PROP_LINK("ca", CocoAttestState, ca, TYPE_COCO_ATTEST_CA,
                     CocoAttestCa *),
    DEFINE_PROP_LINK("kbs", CocoAttestState, kbs, TYPE_COCO_ATTEST_KBS,
                     CocoAttestKbs *),
};

static void coca_class_init(ObjectClass *klass, void *data)
{
    DeviceClass *dc = DEVICE_CLASS(klass);
    ResettableClass *rc = RESETTABLE_CLASS(klass);
    AcpiDevAmlIfClass *adevc = ACPI_DEV_AML_IF_CLASS(klass);

    dc->realize = coca_realize;
    dc->unrealize = coca_unrealize;
    dc->vmsd = &coca_vmstate;
    dc->desc = "Confidential computing attestation channel";
    device_class_set_props(dc, coca_properties);
    object_class_property_set_description(klass, "iobase",
        "I/O port base of the 32-port register window");
    object_class_property_set_description(klass, "irq",
        "ISA interrupt raised on completion, 0 for none (polling)");
    object_class_property_set_description(klass, "features",
        "feature bits offered to the guest (default: all this QEMU has): "
        "bit 0 external buffers, 1 interrupt, 2 diagnostics, "
        "3 identity, 4 KBS forwarding");
    object_class_property_set_description(klass, "max-object",
        "largest payload in bytes, a multiple of 4096 from 64 KiB to 1 MiB");
    object_class_property_set_description(klass, "ca",
        "coco-attest-ca object: enables the identity commands");
    object_class_property_set_description(klass, "kbs",
        "coco-attest-kbs object: enables KBS forwarding");
    object_class_property_set_description(klass, "x-echo-delay-ms",
        "test only: delay asynchronous ECHO completions (virtual time)");
    set_bit(DEVICE_CATEGORY_MISC, dc->categories);
    rc->phases.enter = coca_reset_enter;
    rc->phases.hold = coca_reset_hold;
    adevc->build_dev_aml = coca_build_aml;
}

static const TypeInfo coca_info = {
    .name = TYPE_COCO_ATTEST,
    .parent = TYPE_ISA_DEVICE,
    .instance_size = sizeof(CocoAttestState),
    .instance_init = coca_instance_init,
    .class_init = coca_class_init,
    .interfaces = (InterfaceInfo[]) {
        { TYPE_ACPI_DEV_AML_IF },
        { },
    },
};

static void coca_register_types(void)
{
    type_register_static(&coca_info);
}

type_init(coca_register_types)
