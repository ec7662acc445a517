/*
 * SPDX-License-Identifier: GPL-2.0-or-later OR MIT
 *
 * Trustee KBS client (RCAR protocol 0.4.0, "sample" TEE) over the
 * coco-attest device's KBS forwarding: `coco-attest-guest kbs ...`.
 *
 * The host relays HTTP only; everything the host or the KBS returns is
 * untrusted and validated here, and the secret (a JWE) is decrypted in
 * the guest with an ephemeral EC key that never leaves it.
 */

#ifndef COCO_ATTEST_KBS_CLIENT_H
#define COCO_ATTEST_KBS_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "coco-attest/guest.h"

/* Exit codes of `coco-attest-guest kbs ...` (1: probe/negotiate failed) */
#define KBS_EXIT_OK         0
#define KBS_EXIT_USAGE      2   /* bad arguments */
#define KBS_EXIT_DEVICE     3   /* the device or host refused (status) */
#define KBS_EXIT_HTTP       4   /* the KBS answered an HTTP error */
#define KBS_EXIT_PROTOCOL   5   /* the KBS's answer is malformed */
#define KBS_EXIT_JWE        6   /* the secret could not be decrypted */
#define KBS_EXIT_LOCAL      7   /* local failure (keys, memory, output) */

struct kbs_get_opts {
    const char *resource;   /* REPO/TYPE/TAG */
    const char *curve;      /* "P-256" (default) or "P-521" */
    int sha256;             /* print only the secret's SHA-256 */
    int progress;           /* measure vCPU progress while pending */
    const char *out;        /* write the secret there (else stdout) */
};

/* `kbs config`: print the host's KBS configuration */
int kbs_cmd_config(struct coca_dev *d);

/* `kbs get REPO/TYPE/TAG`: the whole RCAR flow; returns a KBS_EXIT_* */
int kbs_cmd_get(struct coca_dev *d, const struct kbs_get_opts *o);

/*
 * The library's relax hook for `kbs` commands: a pause, or with
 * --progress a batch of the measurement's work unit while a forwarded
 * request is pending.
 */
void kbs_relax(void *ctx);

/* REPO/TYPE/TAG, each segment [A-Za-z0-9._-]+ and not "." or ".." */
int kbs_resource_ok(const char *resource);

/* "p256", "P-256" ... -> "P-256" / "P-521", or NULL */
const char *kbs_curve_name(const char *arg);

/* ---- building blocks, exposed for tests/test-kbs-client.c ---- */

/* Base64 (url: RFC 4648 §5 without padding; else §4 with padding). */
char *kbs_b64_encode(const uint8_t *p, size_t n, int url);
/*
 * Strict decoding: alphabet, padding (none for url) and zero unused bits
 * are checked.  Returns 0 and a malloc'd *out (NUL-terminated as a
 * convenience, not counted in *out_len), or -1.
 */
int kbs_b64_decode(const char *s, size_t n, int url, uint8_t **out,
                   size_t *out_len);

/* The JWK curve of an EC key ("P-256", "P-521") and its coordinate size */
const char *kbs_key_curve(EVP_PKEY *key, size_t *coord);

/*
 * tee-pubkey of an EC key: {"alg":"ECDH-ES+A256KW","crv":..,"kty":"EC",
 * "x":..,"y":..}, already in RFC 8785 canonical form.  malloc'd or NULL.
 */
char *kbs_tee_pubkey(EVP_PKEY *key);

/*
 * The canonical (RFC 8785) JSON that report_data binds:
 * {"additional-evidence":"","nonce":NONCE,"tee-pubkey":TEE_PUBKEY}.
 * NULL if the nonce is not standard base64.
 */
char *kbs_binding_json(const char *nonce, const char *tee_pubkey);

/* report_data = SHA-384 of the binding; 0 or -1 */
int kbs_report_data(const char *binding, uint8_t out[48]);

/*
 * Strict JSON parse of an untrusted body (json-c): the whole body must be
 * one JSON value (whitespace around it allowed), no NUL bytes.  Returns
 * a json_object (the caller puts it) or NULL.
 */
struct json_object *kbs_json_parse(const uint8_t *body, size_t len);

/*
 * Decrypt the resource JWE (flattened JSON serialisation, ECDH-ES+A256KW
 * and A256GCM) with the ephemeral private key.  Returns KBS_EXIT_OK with
 * a malloc'd *pt (*pt_len bytes), KBS_EXIT_PROTOCOL for a malformed JWE,
 * or KBS_EXIT_JWE when it does not decrypt or uses other algorithms;
 * *why then holds a static one-line reason.
 */
int kbs_jwe_decrypt(EVP_PKEY *key, const uint8_t *body, size_t len,
                    uint8_t **pt, size_t *pt_len, const char **why);

#endif /* COCO_ATTEST_KBS_CLIENT_H */
