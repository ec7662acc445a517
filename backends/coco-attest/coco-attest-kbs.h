/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * coco-attest-kbs: the host end of a confidential guest's connection to a
 * Key Broker Service (Trustee's KBS protocol).  The backend forwards HTTP
 * requests the guest built to one configured KBS and hands back the
 * answers; it never interprets protocol messages, computes no binding
 * data and never sees a released secret in clear (the KBS encrypts it to
 * a key only the guest holds).
 */

#ifndef SYSTEM_COCO_ATTEST_KBS_H
#define SYSTEM_COCO_ATTEST_KBS_H

#include "qom/object.h"

#define TYPE_COCO_ATTEST_KBS "coco-attest-kbs"
OBJECT_DECLARE_SIMPLE_TYPE(CocoAttestKbs, COCO_ATTEST_KBS)

/* Outcomes of a forwarded request, mapped to guest status codes */
typedef enum CocoAttestKbsResult {
    COCO_ATTEST_KBS_OK,             /* an HTTP answer, whatever its status */
    COCO_ATTEST_KBS_UNREACHABLE,    /* refused, reset, cut short */
    COCO_ATTEST_KBS_TIMEOUT,        /* no complete answer in time */
    COCO_ATTEST_KBS_TLS,            /* handshake or verification failed */
    COCO_ATTEST_KBS_TOO_LARGE,      /* answer over max-response */
    COCO_ATTEST_KBS_PROTOCOL,       /* malformed HTTP answer */
    COCO_ATTEST_KBS_FAILED,         /* host-side failure */
} CocoAttestKbsResult;

typedef struct CocoAttestKbsLimits {
    const char *url;
    uint32_t max_sessions;
    uint32_t session_timeout;       /* seconds */
    uint32_t max_response;          /* bytes */
    uint32_t timeout_ms;
} CocoAttestKbsLimits;

typedef struct CocoAttestKbsReply {
    uint16_t http_status;
    char *content_type;             /* NULL when the answer has none */
    GByteArray *body;
} CocoAttestKbsReply;

/* One guest session: a connection and a cookie jar of its own */
typedef struct CocoAttestKbsSession CocoAttestKbsSession;

void coco_attest_kbs_limits(CocoAttestKbs *kbs, CocoAttestKbsLimits *lim);

/*
 * coco_attest_kbs_take_token:
 * @kbs: the backend
 *
 * Account for one guest operation that reaches the KBS (opening a
 * session, forwarding a request) against the backend's rate and burst.
 * Main loop only.
 *
 * Returns: false when the guest is over its limit and must be refused.
 */
bool coco_attest_kbs_take_token(CocoAttestKbs *kbs);

/*
 * Is @method @path part of the KBS API the guest may reach?  POST
 * /kbs/v0/auth, POST /kbs/v0/attest and GET
 * /kbs/v0/resource/<repo>/<type>/<tag> (segments of [A-Za-z0-9._-], not
 * "." or "..") only.  @path is not NUL-terminated.
 */
bool coco_attest_kbs_path_allowed(bool post, const char *path, size_t len);

/* Main loop: a new session (never fails), and dropping a reference. */
CocoAttestKbsSession *coco_attest_kbs_session_new(CocoAttestKbs *kbs);
CocoAttestKbsSession *coco_attest_kbs_session_ref(CocoAttestKbsSession *s);
/* Abort a transfer running for @s (any thread); later ones fail at once */
void coco_attest_kbs_session_cancel(CocoAttestKbsSession *s);
void coco_attest_kbs_session_unref(CocoAttestKbsSession *s);

/*
 * Send one request on @s and wait for the answer: blocks for up to the
 * object's timeout, so call it from a worker thread (the thread pool),
 * never from a vCPU or with the BQL held.  One request per session at a
 * time.  The answer body may not exceed @max_response bytes nor the
 * object's max-response.  On COCO_ATTEST_KBS_OK @reply holds the answer
 * (free it with
 * coco_attest_kbs_reply_clear); otherwise *why says what failed.
 */
CocoAttestKbsResult coco_attest_kbs_forward(CocoAttestKbsSession *s,
                                            bool post, const char *path,
                                            const char *content_type,
                                            const uint8_t *body, size_t len,
                                            size_t max_response,
                                            CocoAttestKbsReply *reply,
                                            char **why);
void coco_attest_kbs_reply_clear(CocoAttestKbsReply *reply);

/*
 * Migration: a session's cookies (Netscape cookie-file lines, as of its
 * last completed request), and loading them into a fresh session on the
 * destination.  The loaded text is validated: at most
 * COCO_ATTEST_KBS_COOKIES_MAX bytes of printable ASCII, tabs and
 * newlines.
 */
#define COCO_ATTEST_KBS_COOKIES_MAX 2048
char *coco_attest_kbs_session_cookies(CocoAttestKbsSession *s);
bool coco_attest_kbs_session_set_cookies(CocoAttestKbsSession *s,
                                         const char *cookies, Error **errp);

#endif
