/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * coco-attest: device state shared by the device model and its QMP code.
 */

#ifndef HW_COCO_ATTEST_INTERNAL_H
#define HW_COCO_ATTEST_INTERNAL_H

#include "hw/isa/isa.h"
#include "hw/coco-attest/abi.h"
#include "qom/object.h"
#include "system/runstate.h"
#include "system/coco-attest-ca.h"
#include "system/coco-attest-kbs.h"

#define TYPE_COCO_ATTEST "coco-attest"
OBJECT_DECLARE_SIMPLE_TYPE(CocoAttestState, COCO_ATTEST)

typedef enum CocoAttestChan {
    COCA_CHAN_NONE,
    COCA_CHAN_PAGE,
    COCA_CHAN_PORT,
} CocoAttestChan;

typedef struct CocoAttestReq CocoAttestReq;

/* An open KBS session in the migration stream, followed by its cookies */
typedef struct QEMU_PACKED CocoAttestMigSession {
    uint32_t id;
    uint32_t idle_ms;
    uint32_t cookies_len;
} CocoAttestMigSession;

/* A guest's KBS session: a slot in CocoAttestState.sessions */
typedef struct CocoAttestSession {
    uint32_t id;                /* 0: the slot is free */
    int64_t last_used;          /* QEMU_CLOCK_REALTIME, ms */
    CocoAttestKbsSession *ks;
} CocoAttestSession;

struct CocoAttestState {
    ISADevice parent_obj;

    MemoryRegion io;
    qemu_irq irq;

    /* properties */
    uint16_t iobase;
    uint32_t isairq;
    uint64_t features;
    uint32_t max_object;
    uint32_t echo_delay_ms;
    CocoAttestCa *ca;
    CocoAttestKbs *kbs;

    /* register state */
    uint64_t page_staged;       /* PAGE_HI:PAGE_LO as written */
    uint64_t page;              /* registered request page */
    bool page_valid;
    uint32_t result;            /* COCA_RES_* of the last CMD write */
    bool done;
    bool irq_enabled;

    /* the current host nonce (single use) */
    uint8_t nonce[COCA_NONCE_SIZE];
    bool nonce_valid;

    /* negotiation */
    bool negotiated;
    uint16_t proto;
    uint64_t negotiated_features;

    /* port channel: one buffer for the request, then the response */
    uint8_t *port_buf;
    uint32_t port_cap;
    uint32_t port_len;
    uint32_t port_pos;
    uint32_t port_crc;
    bool port_active;
    bool port_response;

    /* the request in flight (at most one) */
    CocoAttestReq *inflight;
    uint32_t epoch;
    CocoAttestChan last_chan;

    /* KBS sessions (with a kbs backend): max-sessions slots */
    CocoAttestSession *sessions;
    uint32_t n_sessions;

    /*
     * Requests handed to the thread pool or a timer and not retired yet,
     * those of an earlier epoch included: a reset must not let a guest
     * stack up work.
     */
    uint32_t outstanding;

    /* statistics for query-coco-attest */
    uint64_t stat_requests;
    uint64_t stat_errors;
    uint64_t stat_dropped;
    uint64_t stat_kbs_requests;
    uint64_t stat_kbs_errors;
    uint64_t stat_kbs_rate_limited;

    /*
     * Migration.  A request completed while the VM is stopped (not
     * merely suspended) is parked and delivered when it runs again
     * (never, on a migration source);
     * the stream only says which channel had a request in flight, and
     * the destination answers it RETRY.
     */
    CocoAttestReq *parked;
    VMChangeStateEntry *vmstate_change;
    uint8_t mig_inflight;           /* CocoAttestChan */
    uint8_t mig_retry;              /* answer RETRY on this channel */
    uint8_t mig_last_chan;          /* CocoAttestChan */
    uint32_t mig_max_object;        /* what the guest was told */
    uint8_t mig_nonce[COCA_NONCE_SIZE];
    bool mig_nonce_valid;
    uint8_t *mig_kbs;               /* KBS session records */
    uint32_t mig_kbs_len;
    uint32_t mig_kbs_cap;
};

uint64_t coco_attest_offered(CocoAttestState *s);

#endif
