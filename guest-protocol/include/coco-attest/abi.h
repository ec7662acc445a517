/*
 * SPDX-License-Identifier: GPL-2.0-or-later OR MIT
 *
 * coco-attest guest ABI: the single definition of the device's registers,
 * message format, commands, status codes and feature bits.
 *
 * This header is shared verbatim by the QEMU device model, the qtests and
 * the freestanding guest library.  It depends on <stdint.h> only, builds
 * as C99 and C11, and describes a little-endian wire format: every
 * multi-byte field in a message is little-endian regardless of the host.
 * The normative description is docs/specs/coco-attest.rst.
 */

#ifndef COCO_ATTEST_ABI_H
#define COCO_ATTEST_ABI_H

#include <stdint.h>

/* Layout checks that work in C99 as well as C11 and C++. */
#define COCA_ABI_GLUE_(a, b) a##b
#define COCA_ABI_GLUE(a, b) COCA_ABI_GLUE_(a, b)
#define COCA_ABI_ASSERT(cond)                                            \
    typedef char COCA_ABI_GLUE(coca_abi_assert_, __LINE__)[(cond) ? 1 : -1]

/* ------------------------------------------------------------------ */
/* Discovery                                                           */
/* ------------------------------------------------------------------ */

/* "COCA" read as a little-endian 32-bit value */
#define COCA_SIGNATURE          0x41434f43u

/* Register-level (transport) ABI version, reported by COCA_REG_VERSION */
#define COCA_TRANSPORT_MAJOR    1
#define COCA_TRANSPORT_MINOR    0

/* Default I/O base: free on both the pc (i440fx) and q35 machines */
#define COCA_DEFAULT_IOBASE     0x580
#define COCA_IO_SIZE            0x20

/* fw_cfg file describing the device (for firmware/SVSM discovery) */
#define COCA_FW_CFG_FILE        "etc/coco-attest"

struct coca_fw_cfg {
    uint32_t signature;         /* COCA_SIGNATURE */
    uint16_t iobase;            /* I/O port base of the register window */
    uint8_t irq;                /* ISA IRQ, 0 = none (polling only) */
    uint8_t reserved;           /* zero */
    uint16_t transport_major;   /* COCA_TRANSPORT_MAJOR */
    uint16_t transport_minor;   /* COCA_TRANSPORT_MINOR */
};
COCA_ABI_ASSERT(sizeof(struct coca_fw_cfg) == 12);

/* ACPI: _HID "PRP0001" with _DSD compatible = COCA_ACPI_COMPATIBLE */
#define COCA_ACPI_COMPATIBLE    "qemu,coco-attest"

/* ------------------------------------------------------------------ */
/* Registers (offsets from iobase; 32-bit accesses only)              */
/* ------------------------------------------------------------------ */

#define COCA_REG_SIGNATURE      0x00    /* R: COCA_SIGNATURE */
#define COCA_REG_VERSION        0x04    /* R: major << 16 | minor */
#define COCA_REG_PAGE_LO        0x08    /* RW: request page GPA [31:0] */
#define COCA_REG_PAGE_HI        0x0c    /* RW: request page GPA [63:32] */
#define COCA_REG_CMD            0x10    /* W: COCA_CMD_*; R: COCA_RES_* */
#define COCA_REG_STATUS         0x14    /* R: COCA_STS_* */
#define COCA_REG_DATA           0x18    /* RW: port channel data */
#define COCA_REG_CRC            0x1c    /* RW: port channel CRC32C */

/* Values written to COCA_REG_CMD */
#define COCA_CMD_REGISTER_PAGE  0x01    /* register PAGE_HI:PAGE_LO */
#define COCA_CMD_RING           0x02    /* page channel doorbell */
#define COCA_CMD_PORT_BEGIN     0x03    /* start a port channel request */
#define COCA_CMD_PORT_SUBMIT    0x04    /* submit the streamed request */
#define COCA_CMD_ACK            0x05    /* clear DONE and the interrupt */
#define COCA_CMD_IRQ_ENABLE     0x06    /* raise the IRQ on completion */
#define COCA_CMD_IRQ_DISABLE    0x07
#define COCA_CMD_UNREGISTER     0x08    /* forget the request page */

/* Values read back from COCA_REG_CMD: result of the last register write */
#define COCA_RES_OK             0x00    /* accepted */
#define COCA_RES_BUSY           0x01    /* a request is in flight */
#define COCA_RES_BAD_PAGE       0x02    /* no/unaligned/non-RAM page */
#define COCA_RES_BAD_CMD        0x03    /* unknown COCA_CMD_* value */
#define COCA_RES_CRC            0x04    /* port channel CRC mismatch */
#define COCA_RES_STREAM         0x05    /* port stream over/underrun */
#define COCA_RES_NOT_READY      0x06    /* no response to read */
#define COCA_RES_NO_IRQ         0x07    /* device has no IRQ configured */

/* COCA_REG_STATUS bits */
#define COCA_STS_BUSY           (1u << 0)   /* a request is in flight */
#define COCA_STS_DONE           (1u << 1)   /* a response is ready */
#define COCA_STS_IRQ            (1u << 2)   /* interrupt line asserted */
#define COCA_STS_IRQ_ENABLED    (1u << 3)
#define COCA_STS_PAGE_VALID     (1u << 4)   /* a request page is registered */
#define COCA_STS_NEGOTIATED     (1u << 5)
#define COCA_STS_PORT_ACTIVE    (1u << 6)   /* PORT_BEGIN seen, not submitted */
#define COCA_STS_PORT_RESPONSE  (1u << 7)   /* DONE response is on DATA */

/* ------------------------------------------------------------------ */
/* Messages                                                            */
/* ------------------------------------------------------------------ */

#define COCA_MSG_MAGIC          COCA_SIGNATURE
#define COCA_MSG_VERSION        1
#define COCA_PAGE_SIZE          4096u

/* Header flags */
#define COCA_FLAG_EXT_BUF       (1u << 0)   /* payload in buf_gpa/buf_len */
#define COCA_FLAG_RESPONSE      (1u << 31)  /* set by the host */
#define COCA_FLAGS_GUEST        (COCA_FLAG_EXT_BUF)

/*
 * Every request and response starts with this header.  In the page
 * channel it sits at offset 0 of the registered page, followed by the
 * inline payload; in the port channel it is the first 48 bytes streamed
 * through COCA_REG_DATA.  The host writes the response header in place;
 * @status is written last.
 */
struct coca_hdr {
    uint32_t magic;         /* COCA_MSG_MAGIC */
    uint16_t version;       /* COCA_MSG_VERSION */
    uint16_t command;       /* COCA_OP_* */
    uint32_t flags;         /* COCA_FLAG_* */
    uint32_t seq;           /* chosen by the guest, echoed */
    uint32_t status;        /* COCA_STATUS_*, written last by the host */
    uint32_t req_len;       /* request payload bytes */
    uint32_t resp_len;      /* response payload bytes (or size needed) */
    uint32_t reserved0;     /* must be zero */
    uint64_t buf_gpa;       /* COCA_FLAG_EXT_BUF: 4 KiB-aligned buffer */
    uint32_t buf_len;       /* COCA_FLAG_EXT_BUF: buffer size in bytes */
    uint32_t reserved1;     /* must be zero */
};
COCA_ABI_ASSERT(sizeof(struct coca_hdr) == 48);

#define COCA_HDR_SIZE           48u
#define COCA_INLINE_MAX         (COCA_PAGE_SIZE - COCA_HDR_SIZE)

/* Commands (coca_hdr.command) */
#define COCA_OP_NEGOTIATE       0x0001
#define COCA_OP_ECHO            0x0002
#define COCA_OP_GET_IDENTITY    0x0010  /* needs COCA_FEAT_IDENTITY */
#define COCA_OP_GET_NONCE       0x0011  /* needs COCA_FEAT_IDENTITY */
#define COCA_OP_GET_EK_CERT     0x0012  /* needs COCA_FEAT_IDENTITY */
#define COCA_OP_CERTIFY_EK      0x0013  /* needs COCA_FEAT_IDENTITY */
#define COCA_OP_CERTIFY_AK      0x0014  /* needs COCA_FEAT_IDENTITY */
#define COCA_OP_KBS_CONFIG      0x0020  /* needs COCA_FEAT_KBS */
#define COCA_OP_KBS_OPEN        0x0021  /* needs COCA_FEAT_KBS */
#define COCA_OP_KBS_FORWARD     0x0022  /* needs COCA_FEAT_KBS */
#define COCA_OP_KBS_CLOSE       0x0023  /* needs COCA_FEAT_KBS */

/* Status codes (coca_hdr.status) */
#define COCA_STATUS_OK                  0   /* success */
#define COCA_STATUS_PENDING             1   /* accepted, not complete yet */
#define COCA_STATUS_RETRY               2   /* not executed: resubmit */
#define COCA_STATUS_BAD_HEADER          3   /* magic/version/flags/reserved */
#define COCA_STATUS_UNSUPPORTED         4   /* unknown command */
#define COCA_STATUS_INVALID             5   /* malformed payload */
#define COCA_STATUS_NOT_NEGOTIATED      6   /* NEGOTIATE first */
#define COCA_STATUS_NO_SPACE            7   /* resp_len = bytes needed */
#define COCA_STATUS_TOO_LARGE           8   /* request exceeds a limit */
#define COCA_STATUS_BAD_BUFFER          9   /* external buffer refused */
#define COCA_STATUS_VERSION             10  /* no common protocol version */
#define COCA_STATUS_FEATURE             11  /* feature not negotiated */
#define COCA_STATUS_INTERNAL            12  /* host-side failure */
#define COCA_STATUS_NOT_PROVISIONED     13  /* no such certificate */
#define COCA_STATUS_RATE_LIMITED        14  /* too many signatures */
#define COCA_STATUS_BAD_SIGNATURE       15  /* proof of possession failed */
#define COCA_STATUS_UNSUPPORTED_KEY     16  /* key type/size not accepted */
#define COCA_STATUS_EXPIRED             17  /* instance material expired */
#define COCA_STATUS_EK_MISMATCH         18  /* another EK was certified */
#define COCA_STATUS_NONCE               19  /* no fresh nonce: GET_NONCE */
#define COCA_STATUS_KBS_UNREACHABLE     20  /* refused, reset or cut short */
#define COCA_STATUS_KBS_TIMEOUT         21  /* no full answer in time */
#define COCA_STATUS_KBS_TLS             22  /* TLS handshake/verification */
#define COCA_STATUS_KBS_TOO_LARGE       23  /* answer over the host limit */
#define COCA_STATUS_KBS_PATH            24  /* method/path not in the API */
#define COCA_STATUS_NO_SESSION          25  /* unknown/closed/expired */
#define COCA_STATUS_BUSY                26  /* all KBS sessions in use */
#define COCA_STATUS_KBS_PROTOCOL        27  /* malformed HTTP answer */

/* The guest writes this into coca_hdr.status before ringing */
/* The names of the statuses above, indexed by value (logs, QMP events) */
#define COCA_STATUS_NAMES {                                             \
    "OK", "PENDING", "RETRY", "BAD_HEADER", "UNSUPPORTED", "INVALID",   \
    "NOT_NEGOTIATED", "NO_SPACE", "TOO_LARGE", "BAD_BUFFER", "VERSION", \
    "FEATURE", "INTERNAL", "NOT_PROVISIONED", "RATE_LIMITED",           \
    "BAD_SIGNATURE", "UNSUPPORTED_KEY", "EXPIRED", "EK_MISMATCH",       \
    "NONCE", "KBS_UNREACHABLE", "KBS_TIMEOUT", "KBS_TLS",               \
    "KBS_TOO_LARGE", "KBS_PATH", "NO_SESSION", "BUSY", "KBS_PROTOCOL",  \
}
#define COCA_STATUS_COUNT       28

#define COCA_STATUS_NONE                0xffffffffu

/* Protocol versions negotiated by COCA_OP_NEGOTIATE */
#define COCA_PROTO_MIN          1
#define COCA_PROTO_MAX          1

/* Feature bits (64-bit masks) */
#define COCA_FEAT_EXT_BUF       (1ull << 0)  /* multi-page guest buffers */
#define COCA_FEAT_IRQ           (1ull << 1)  /* completion interrupt */
#define COCA_FEAT_DIAG          (1ull << 2)  /* COCA_OP_ECHO diagnostics */
#define COCA_FEAT_IDENTITY      (1ull << 3)  /* identity, EK and AK certs */
#define COCA_FEAT_KBS           (1ull << 4)  /* KBS forwarding */
#define COCA_FEAT_ALL           (COCA_FEAT_EXT_BUF | COCA_FEAT_IRQ | \
                                 COCA_FEAT_DIAG | COCA_FEAT_IDENTITY | \
                                 COCA_FEAT_KBS)

/* Limits */
#define COCA_MAX_OBJECT_MIN     (64u * 1024)    /* every host offers this */
#define COCA_MAX_OBJECT_MAX     (1024u * 1024)  /* no host offers more */

/* COCA_OP_NEGOTIATE */
struct coca_negotiate_req {
    uint16_t proto_min;     /* lowest protocol version the guest speaks */
    uint16_t proto_max;     /* highest */
    uint32_t reserved;      /* must be zero */
    uint64_t features;      /* features the guest accepts */
};
COCA_ABI_ASSERT(sizeof(struct coca_negotiate_req) == 16);

struct coca_negotiate_resp {
    uint16_t proto;         /* chosen version, 0 when none */
    uint16_t proto_min;     /* host range, always filled in */
    uint16_t proto_max;
    uint16_t reserved0;
    uint64_t offered;       /* features the host offers */
    uint64_t negotiated;    /* offered & requested: now in force */
    uint32_t max_object;    /* largest payload, either direction */
    uint32_t inline_max;    /* COCA_INLINE_MAX */
    uint32_t max_pending;   /* requests in flight at once (1) */
    uint32_t reserved1;
};
COCA_ABI_ASSERT(sizeof(struct coca_negotiate_resp) == 40);

/* COCA_OP_ECHO (needs COCA_FEAT_DIAG): payload = this header + data */
#define COCA_ECHO_ASYNC         (1u << 0)   /* complete off the vCPU */
#define COCA_ECHO_NO_CRC        (1u << 1)   /* skip the CRC (benchmarks) */
#define COCA_ECHO_FLAGS         (COCA_ECHO_ASYNC | COCA_ECHO_NO_CRC)

struct coca_echo {
    uint32_t flags;         /* request: COCA_ECHO_*; response: same */
    uint32_t crc;           /* response: CRC32C of the data received */
};
COCA_ABI_ASSERT(sizeof(struct coca_echo) == 8);

/*
 * COCA_OP_GET_IDENTITY: no request payload; the response is a sequence
 * of TLVs (struct coca_tlv, then len value bytes, no padding).  Receivers
 * skip tags they do not know.  Strings are UTF-8 without a terminator.
 */
struct coca_tlv {
    uint16_t tag;           /* COCA_ID_* */
    uint16_t len;           /* value bytes that follow */
};
COCA_ABI_ASSERT(sizeof(struct coca_tlv) == 4);

#define COCA_ID_PROJECT_ID      1   /* string */
#define COCA_ID_PROJECT_NUMBER  2   /* uint64 */
#define COCA_ID_ZONE            3   /* string */
#define COCA_ID_INSTANCE_NAME   4   /* string */
#define COCA_ID_INSTANCE_ID     5   /* string */
#define COCA_ID_OID             6   /* string: the identity extension OID */

/* COCA_OP_GET_NONCE: no request payload; the response is the nonce */
#define COCA_NONCE_SIZE         32

/*
 * Certificate lists (GET_EK_CERT, CERTIFY_AK responses): this header,
 * then count entries of a uint32 length and that many DER bytes, from
 * the end-entity certificate up to the host CA.
 */
struct coca_cert_list {
    uint32_t count;
    uint32_t reserved;      /* zero */
};
COCA_ABI_ASSERT(sizeof(struct coca_cert_list) == 8);
#define COCA_CERT_LIST_MAX      8   /* no list holds more certificates */

/* TCG NV indices of EK certificates (COCA_OP_GET_EK_CERT) */
#define COCA_NV_EK_RSA2048      0x01c00002u
#define COCA_NV_EK_ECC_P256     0x01c0000au
#define COCA_NV_EK_ECC_P384     0x01c00016u

struct coca_ek_cert_req {
    uint32_t nv_index;      /* COCA_NV_EK_* */
    uint32_t reserved;      /* zero */
};
COCA_ABI_ASSERT(sizeof(struct coca_ek_cert_req) == 8);

/*
 * COCA_OP_CERTIFY_EK: this header, then the EK public key.  The first
 * certification of an NV index is kept by the host: later requests with
 * the same key get the same certificate, a different key is refused with
 * COCA_STATUS_EK_MISMATCH unless the instance's policy allows re-keying.
 */
#define COCA_KEY_FORMAT_SPKI        1   /* DER SubjectPublicKeyInfo */
#define COCA_KEY_FORMAT_TPMT_PUBLIC 2   /* TPM 2.0 TPMT_PUBLIC (big-endian) */

struct coca_certify_ek_req {
    uint32_t nv_index;      /* COCA_NV_EK_*: also fixes the key type */
    uint32_t format;        /* COCA_KEY_FORMAT_* */
};
COCA_ABI_ASSERT(sizeof(struct coca_certify_ek_req) == 8);

/* COCA_OP_CERTIFY_AK: this header, then the proof in the given format */
#define COCA_AK_FORMAT_CSR      1   /* PKCS#10 CSR, DER */
/*
 * TPM-native: the AK's TPMT_PUBLIC, then a TPMT_SIGNATURE by the AK
 * (TPM2_Sign) over SHA-256 of the current host nonce (COCA_OP_GET_NONCE),
 * which the request consumes.  Both big-endian as the TPM marshals them.
 */
#define COCA_AK_FORMAT_TPM      2

struct coca_certify_ak_req {
    uint32_t format;        /* COCA_AK_FORMAT_* */
    uint32_t reserved;      /* zero */
};
COCA_ABI_ASSERT(sizeof(struct coca_certify_ak_req) == 8);

/*
 * KBS forwarding (COCA_FEAT_KBS).  The host relays HTTP requests from the
 * guest to one Key Broker Service (Trustee's KBS protocol) and returns its
 * answers verbatim; the guest builds every protocol message and evidence
 * itself and decrypts the secret (a JWE) itself.  The host keeps a cookie
 * jar per session, which is what carries the KBS's kbs-session-id.
 */
#define COCA_KBS_PROTOCOL       "0.4.0"     /* KBS protocol version */
#define COCA_KBS_URL_MAX        256         /* bytes, with the NUL */

/* COCA_OP_KBS_CONFIG: no request payload; the response is */
struct coca_kbs_config {
    char protocol[16];      /* NUL-terminated, COCA_KBS_PROTOCOL */
    char url[COCA_KBS_URL_MAX]; /* the KBS base URL, NUL-terminated */
    uint32_t max_sessions;  /* sessions open at once */
    uint32_t session_timeout; /* seconds idle before a session expires */
    uint32_t max_body;      /* largest request body the host forwards */
    uint32_t max_response;  /* largest answer body the host accepts */
    uint32_t timeout_ms;    /* per request, connection included */
    uint32_t reserved;      /* zero */
};
COCA_ABI_ASSERT(sizeof(struct coca_kbs_config) == 296);

/*
 * COCA_OP_KBS_OPEN: no request payload, responds with this; COCA_OP_KBS_CLOSE
 * takes it as its request and has no response payload.  Session 0 is never
 * handed out.
 */
struct coca_kbs_session {
    uint32_t session;
    uint32_t reserved;      /* zero */
};
COCA_ABI_ASSERT(sizeof(struct coca_kbs_session) == 8);

#define COCA_KBS_GET            1
#define COCA_KBS_POST           2

#define COCA_KBS_PATH_MAX       255 /* bytes of path */
#define COCA_KBS_CTYPE_MAX      127 /* bytes of content type */

/*
 * COCA_OP_KBS_FORWARD request: this header, then path_len bytes of path,
 * ctype_len bytes of content type and body_len bytes of body, nothing
 * else (req_len is the exact sum).  Paths: POST /kbs/v0/auth, POST
 * /kbs/v0/attest, GET /kbs/v0/resource/<repo>/<type>/<tag> with segments
 * of [A-Za-z0-9._-] (not "." or ".."); no query.  A GET has no body and
 * no content type; a POST has a content type of printable ASCII.
 */
struct coca_kbs_forward_req {
    uint32_t session;       /* from COCA_OP_KBS_OPEN */
    uint16_t method;        /* COCA_KBS_GET or COCA_KBS_POST */
    uint16_t path_len;      /* 1..COCA_KBS_PATH_MAX */
    uint16_t ctype_len;     /* 0..COCA_KBS_CTYPE_MAX */
    uint16_t reserved;      /* zero */
    uint32_t body_len;      /* up to coca_kbs_config.max_body */
};
COCA_ABI_ASSERT(sizeof(struct coca_kbs_forward_req) == 16);

/*
 * COCA_OP_KBS_FORWARD response (status COCA_STATUS_OK whatever the HTTP
 * status): this header, then ctype_len bytes of the answer's content type
 * and body_len bytes of its body.
 */
struct coca_kbs_forward_resp {
    uint16_t http_status;   /* 100..599 */
    uint16_t ctype_len;     /* 0..COCA_KBS_CTYPE_MAX */
    uint32_t body_len;
};
COCA_ABI_ASSERT(sizeof(struct coca_kbs_forward_resp) == 8);

#endif /* COCO_ATTEST_ABI_H */
