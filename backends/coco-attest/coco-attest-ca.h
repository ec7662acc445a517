/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * coco-attest-ca: the per-instance certificate issuer behind
 * -device coco-attest.
 *
 * It loads an instance directory written by coco-attest-provision: the
 * identity claims, a per-instance issuing key and its certificate from
 * the host CA.  The host CA key never reaches QEMU.  Everything that
 * signs is thread-safe and meant to run in the thread pool, where it
 * also picks up a renewed issuing certificate (coco-attest-provision
 * renew) without a restart; the claims never change while the object
 * exists.
 */

#ifndef SYSTEM_COCO_ATTEST_CA_H
#define SYSTEM_COCO_ATTEST_CA_H

#include "qom/object.h"

#define TYPE_COCO_ATTEST_CA "coco-attest-ca"
OBJECT_DECLARE_SIMPLE_TYPE(CocoAttestCa, COCO_ATTEST_CA)

typedef struct CocoAttestClaims {
    char *project_id;
    uint64_t project_number;
    char *zone;
    char *instance_name;
    char *instance_id;
    char *vm_uuid;              /* the VM it was provisioned for, or NULL */
    char *oid;
    bool ek_rekey;
} CocoAttestClaims;

/* Outcomes of the signing calls, mapped to guest status codes by the device */
typedef enum CocoAttestCaResult {
    COCO_ATTEST_CA_OK,
    COCO_ATTEST_CA_MALFORMED,       /* not a CSR / key we can parse */
    COCO_ATTEST_CA_BAD_SIGNATURE,   /* proof of possession failed */
    COCO_ATTEST_CA_UNSUPPORTED_KEY, /* key type or size not accepted */
    COCO_ATTEST_CA_NOT_PROVISIONED, /* no such certificate */
    COCO_ATTEST_CA_EXPIRED,         /* the issuing certificate expired */
    COCO_ATTEST_CA_EK_MISMATCH,     /* another EK is certified already */
    COCO_ATTEST_CA_FAILED,          /* host-side failure */
} CocoAttestCaResult;

/* The claims the backend certifies (valid for the object's lifetime). */
const CocoAttestClaims *coco_attest_ca_claims(CocoAttestCa *ca);

/*
 * When the issuing certificate the backend signs with expires (seconds
 * since the Epoch); a renewal moves it once a certification request has
 * picked the new certificate up.  Any thread.
 */
int64_t coco_attest_ca_not_after(CocoAttestCa *ca);

/*
 * Consume one signature from the rate limit; false when the instance has
 * signed too much recently.  Main loop only.
 */
bool coco_attest_ca_take_token(CocoAttestCa *ca);

/*
 * Certify an attestation key from a PKCS#10 CSR (DER).  The CSR's
 * signature is the proof of possession; its subject, extensions and
 * attributes are ignored.  On success *certs holds the DER certificates
 * (GBytes) from the new one up to the host CA.  On failure *why says why,
 * for the log.  Thread-safe.
 */
CocoAttestCaResult coco_attest_ca_certify_csr(CocoAttestCa *ca,
                                              const uint8_t *csr,
                                              size_t len, GPtrArray **certs,
                                              char **why);

/* How an EK public key is given to coco_attest_ca_certify_ek() */
typedef enum CocoAttestKeyFormat {
    COCO_ATTEST_KEY_SPKI = 1,       /* DER SubjectPublicKeyInfo */
    COCO_ATTEST_KEY_TPMT_PUBLIC,    /* TPM 2.0 TPMT_PUBLIC */
} CocoAttestKeyFormat;

/*
 * Certify an EK for a TCG NV index (which fixes the key type) per the TCG
 * EK Credential Profile, and keep the result in the instance directory:
 * the same key later gets the same certificate; another key is refused
 * (COCO_ATTEST_CA_EK_MISMATCH) unless the policy allows re-keying.
 * Thread-safe; does file I/O.
 */
CocoAttestCaResult coco_attest_ca_certify_ek(CocoAttestCa *ca, uint32_t nv,
                                             CocoAttestKeyFormat format,
                                             const uint8_t *key, size_t len,
                                             GPtrArray **certs, char **why);

/*
 * Certify an attestation key in the TPM-native form: buf holds the AK's
 * TPMT_PUBLIC followed by a TPMT_SIGNATURE (ECDSA or RSASSA, SHA-256)
 * over SHA-256(nonce).  Thread-safe.
 */
CocoAttestCaResult coco_attest_ca_certify_tpm_ak(CocoAttestCa *ca,
                                                 const uint8_t *buf,
                                                 size_t len,
                                                 const uint8_t *nonce,
                                                 size_t nonce_len,
                                                 GPtrArray **certs,
                                                 char **why);

/*
 * The pre-provisioned EK certificate for a TCG NV index, with the chain,
 * or COCO_ATTEST_CA_NOT_PROVISIONED.  Thread-safe.
 */
CocoAttestCaResult coco_attest_ca_ek_cert(CocoAttestCa *ca, uint32_t nv,
                                          GPtrArray **certs);

#endif
