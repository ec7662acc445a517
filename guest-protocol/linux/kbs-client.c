/*
 * SPDX-License-Identifier: GPL-2.0-or-later OR MIT
 *
 * Trustee KBS client over coco-attest KBS forwarding (see kbs-client.h).
 *
 * The RCAR flow, as Trustee's KBS (protocol 0.4.0) and its "sample"
 * verifier expect it:
 *
 *   KBS_OPEN
 *   POST /kbs/v0/auth      {"version":"0.4.0","tee":"sample",
 *                           "extra-params":""}
 *                          -> 200 {"nonce":"<base64>","extra-params":...}
 *   POST /kbs/v0/attest    {"runtime-data":{"nonce":..,"tee-pubkey":..},
 *                           "tee-evidence":{"primary_evidence":{"svn":"1",
 *                           "report_data":"<base64 SHA-384 of the binding>"},
 *                           "additional_evidence":""}}
 *                          -> 200 {"token":"..."}
 *   GET  /kbs/v0/resource/REPO/TYPE/TAG
 *                          -> 200 JWE (ECDH-ES+A256KW, A256GCM)
 *   KBS_CLOSE
 *
 * The binding is SHA-384 over the RFC 8785 canonical JSON of
 * {"additional-evidence":"","nonce":..,"tee-pubkey":..}.  The host keeps
 * the kbs-session-id cookie per device session.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "kbs-client.h"

#define KBS_ALG         "ECDH-ES+A256KW"
#define KBS_ENC         "A256GCM"
#define KBS_TEE         "sample"
#define PATH_AUTH       "/kbs/v0/auth"
#define PATH_ATTEST     "/kbs/v0/attest"
#define PATH_RESOURCE   "/kbs/v0/resource/"
#define CTYPE_JSON      "application/json"

#define NONCE_MAX       1024    /* decoded bytes of a challenge nonce */
#define COORD_MAX       66      /* P-521 */
#define SHOW_MAX        200     /* host-supplied text echoed on errors */

/* ------------------------------------------------------------------ */
/* Base64                                                              */
/* ------------------------------------------------------------------ */

static const char b64_std[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *kbs_b64_encode(const uint8_t *p, size_t n, int url)
{
    const char *a = url ? b64_url : b64_std;
    size_t i, o = 0;
    char *s = malloc((n + 2) / 3 * 4 + 1);
    uint32_t v;

    if (!s) {
        return NULL;
    }
    for (i = 0; i + 2 < n; i += 3) {
        v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        s[o++] = a[v >> 18];
        s[o++] = a[(v >> 12) & 63];
        s[o++] = a[(v >> 6) & 63];
        s[o++] = a[v & 63];
    }
    if (n - i == 1) {
        v = (uint32_t)p[i] << 16;
        s[o++] = a[v >> 18];
        s[o++] = a[(v >> 12) & 63];
        if (!url) {
            s[o++] = '=';
            s[o++] = '=';
        }
    } else if (n - i == 2) {
        v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        s[o++] = a[v >> 18];
        s[o++] = a[(v >> 12) & 63];
        s[o++] = a[(v >> 6) & 63];
        if (!url) {
            s[o++] = '=';
        }
    }
    s[o] = 0;
    return s;
}

static int b64_val(char c, int url)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == (url ? '-' : '+')) {
        return 62;
    }
    if (c == (url ? '_' : '/')) {
        return 63;
    }
    return -1;
}

int kbs_b64_decode(const char *s, size_t n, int url, uint8_t **out,
                   size_t *out_len)
{
    size_t data = n, i, o = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    uint8_t *b;

    *out = NULL;
    *out_len = 0;
    if (!s) {
        return -1;
    }
    if (!url) {
        /* padded to a multiple of 4 with at most two '=' */
        if (n % 4) {
            return -1;
        }
        if (n && s[n - 1] == '=') {
            data--;
            if (s[n - 2] == '=') {
                data--;
            }
        }
    }
    if (data % 4 == 1) {
        return -1;
    }
    b = malloc(data / 4 * 3 + 3);
    if (!b) {
        return -1;
    }
    for (i = 0; i < data; i++) {
        int v = b64_val(s[i], url);

        if (v < 0) {
            free(b);
            return -1;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            b[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc) {
        /* non-zero unused bits: not the canonical encoding */
        free(b);
        return -1;
    }
    b[o] = 0;
    *out = b;
    *out_len = o;
    return 0;
}

/* ------------------------------------------------------------------ */
/* JSON text                                                           */
/* ------------------------------------------------------------------ */

struct sb {
    char *p;
    size_t len, cap;
    int err;
};

static void sb_add(struct sb *b, const char *s, size_t n)
{
    if (b->err) {
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *p = realloc(b->p, cap);

        if (!p) {
            b->err = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void sb_str(struct sb *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

/*
 * A JSON string literal as RFC 8785 serialises it: '"' and '\' escaped,
 * control characters as \b \t \n \f \r or \u00xx, everything else
 * verbatim.  Only ASCII is expected here (every value is from a
 * controlled alphabet); anything else is an error.
 */
static void sb_json_string(struct sb *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";

    sb_add(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char e[7];

        if (c >= 0x80) {
            b->err = 1;
            return;
        }
        switch (c) {
        case '"':
            sb_add(b, "\\\"", 2);
            break;
        case '\\':
            sb_add(b, "\\\\", 2);
            break;
        case '\b':
            sb_add(b, "\\b", 2);
            break;
        case '\t':
            sb_add(b, "\\t", 2);
            break;
        case '\n':
            sb_add(b, "\\n", 2);
            break;
        case '\f':
            sb_add(b, "\\f", 2);
            break;
        case '\r':
            sb_add(b, "\\r", 2);
            break;
        default:
            if (c < 0x20) {
                memcpy(e, "\\u00", 4);
                e[4] = hex[c >> 4];
                e[5] = hex[c & 15];
                sb_add(b, e, 6);
            } else {
                sb_add(b, (const char *)&c, 1);
            }
        }
    }
    sb_add(b, "\"", 1);
}

static char *sb_done(struct sb *b)
{
    if (b->err || !b->p) {
        free(b->p);
        return NULL;
    }
    return b->p;
}

struct json_object *kbs_json_parse(const uint8_t *body, size_t len)
{
    struct json_tokener *tok;
    struct json_object *o;

    if (!body || len == 0 || len > INT_MAX || memchr(body, 0, len)) {
        return NULL;
    }
    tok = json_tokener_new();
    if (!tok) {
        return NULL;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
                                JSON_TOKENER_VALIDATE_UTF8);
    o = json_tokener_parse_ex(tok, (const char *)body, (int)len);
    if (o && (json_tokener_get_error(tok) != json_tokener_success ||
              json_tokener_get_parse_end(tok) != len)) {
        json_object_put(o);
        o = NULL;
    }
    json_tokener_free(tok);
    return o;
}

/* A string member: 0 with *s and *n, or -1 (missing or not a string) */
static int get_str(struct json_object *o, const char *key, const char **s,
                   size_t *n)
{
    struct json_object *v;

    if (!json_object_object_get_ex(o, key, &v) ||
        !json_object_is_type(v, json_type_string)) {
        return -1;
    }
    *s = json_object_get_string(v);
    *n = (size_t)json_object_get_string_len(v);
    return 0;
}

static int str_is(struct json_object *o, const char *key, const char *want)
{
    const char *s;
    size_t n;

    return get_str(o, key, &s, &n) == 0 && n == strlen(want) &&
           !memcmp(s, want, n);
}

/* A base64url member, decoded: 0, or -1 (missing, not a string, bad) */
static int get_b64url(struct json_object *o, const char *key, uint8_t **b,
                      size_t *n)
{
    const char *s;
    size_t sl;

    *b = NULL;
    *n = 0;
    if (get_str(o, key, &s, &sl)) {
        return -1;
    }
    return kbs_b64_decode(s, sl, 1, b, n);
}

/* Host-supplied text made safe for a one-line message */
static void show(char *dst, size_t cap, const char *s, size_t n)
{
    size_t i, o = 0;

    for (i = 0; i < n && o + 4 < cap; i++) {
        unsigned char c = (unsigned char)s[i];

        dst[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
        if (o >= SHOW_MAX) {
            memcpy(dst + o, "...", 3);
            o += 3;
            break;
        }
    }
    dst[o] = 0;
}

/* ------------------------------------------------------------------ */
/* Keys, binding, report data                                          */
/* ------------------------------------------------------------------ */

const char *kbs_curve_name(const char *arg)
{
    if (!strcasecmp(arg, "p256") || !strcasecmp(arg, "P-256") ||
        !strcasecmp(arg, "prime256v1")) {
        return "P-256";
    }
    if (!strcasecmp(arg, "p521") || !strcasecmp(arg, "P-521") ||
        !strcasecmp(arg, "secp521r1")) {
        return "P-521";
    }
    return NULL;
}

const char *kbs_key_curve(EVP_PKEY *key, size_t *coord)
{
    char name[64];
    const char *crv;

    if (!key || !EVP_PKEY_is_a(key, "EC") ||
        !EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME,
                                        name, sizeof(name), NULL)) {
        return NULL;
    }
    crv = kbs_curve_name(name);
    if (crv && coord) {
        *coord = !strcmp(crv, "P-256") ? 32 : 66;
    }
    return crv;
}

char *kbs_tee_pubkey(EVP_PKEY *key)
{
    BIGNUM *x = NULL, *y = NULL;
    uint8_t bx[COORD_MAX], by[COORD_MAX];
    char *sx = NULL, *sy = NULL;
    struct sb b = { 0 };
    const char *crv;
    size_t coord = 0;

    crv = kbs_key_curve(key, &coord);
    if (!crv || !EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &x) ||
        !EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &y) ||
        BN_bn2binpad(x, bx, (int)coord) != (int)coord ||
        BN_bn2binpad(y, by, (int)coord) != (int)coord ||
        !(sx = kbs_b64_encode(bx, coord, 1)) ||
        !(sy = kbs_b64_encode(by, coord, 1))) {
        b.err = 1;
    }
    /* keys in RFC 8785 order: alg, crv, kty, x, y */
    sb_str(&b, "{\"alg\":");
    sb_json_string(&b, KBS_ALG);
    sb_str(&b, ",\"crv\":");
    sb_json_string(&b, crv ? crv : "");
    sb_str(&b, ",\"kty\":\"EC\",\"x\":");
    sb_json_string(&b, sx ? sx : "");
    sb_str(&b, ",\"y\":");
    sb_json_string(&b, sy ? sy : "");
    sb_str(&b, "}");
    BN_free(x);
    BN_free(y);
    free(sx);
    free(sy);
    return sb_done(&b);
}

/* A challenge nonce: canonical standard base64 of 1..NONCE_MAX bytes */
static int nonce_ok(const char *nonce, size_t n)
{
    uint8_t *raw;
    size_t rl;

    if (kbs_b64_decode(nonce, n, 0, &raw, &rl)) {
        return 0;
    }
    free(raw);
    return rl >= 1 && rl <= NONCE_MAX;
}

char *kbs_binding_json(const char *nonce, const char *tee_pubkey)
{
    struct sb b = { 0 };

    if (!nonce || !tee_pubkey || !nonce_ok(nonce, strlen(nonce))) {
        return NULL;
    }
    /* RFC 8785 member order: "additional-evidence" < "nonce" < "tee-pubkey" */
    sb_str(&b, "{\"additional-evidence\":\"\",\"nonce\":");
    sb_json_string(&b, nonce);
    sb_str(&b, ",\"tee-pubkey\":");
    sb_str(&b, tee_pubkey);
    sb_str(&b, "}");
    return sb_done(&b);
}

int kbs_report_data(const char *binding, uint8_t out[48])
{
    unsigned int n = 0;

    if (EVP_Digest(binding, strlen(binding), out, &n, EVP_sha384(), NULL) !=
        1 || n != 48) {
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* JWE                                                                 */
/* ------------------------------------------------------------------ */

/* The peer's public key from its JWK coordinates, checked on the curve */
static EVP_PKEY *ec_point(const char *crv, const uint8_t *x, const uint8_t *y,
                          size_t coord)
{
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL, *chk = NULL;
    EVP_PKEY *pk = NULL;
    uint8_t pub[1 + 2 * COORD_MAX];

    pub[0] = 0x04;              /* uncompressed point */
    memcpy(pub + 1, x, coord);
    memcpy(pub + 1 + coord, y, coord);
    if (!bld ||
        !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
                                         !strcmp(crv, "P-256") ? "P-256"
                                                               : "P-521",
                                         0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub,
                                          1 + 2 * coord) ||
        !(params = OSSL_PARAM_BLD_to_param(bld)) ||
        !(ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) ||
        EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1 ||
        !(chk = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL)) ||
        EVP_PKEY_public_check(chk) != 1) {
        EVP_PKEY_free(pk);
        pk = NULL;
        ERR_clear_error();
    }
    EVP_PKEY_CTX_free(chk);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    return pk;
}

static void be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/*
 * KEK = Concat KDF (RFC 7518 §4.6.2, SHA-256, one round for 256 bits):
 * SHA-256(00000001 || Z || OtherInfo), OtherInfo = AlgorithmID ||
 * PartyUInfo || PartyVInfo || SuppPubInfo, each datum length-prefixed.
 */
static int concat_kdf(const uint8_t *z, size_t zl, const uint8_t *apu,
                      size_t apul, const uint8_t *apv, size_t apvl,
                      uint8_t kek[32])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    uint8_t w[4];
    unsigned int n = 0;
    int ok;

    ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;
    be32(w, 1);
    ok = ok && EVP_DigestUpdate(md, w, 4) == 1 &&
         EVP_DigestUpdate(md, z, zl) == 1;
    be32(w, sizeof(KBS_ALG) - 1);
    ok = ok && EVP_DigestUpdate(md, w, 4) == 1 &&
         EVP_DigestUpdate(md, KBS_ALG, sizeof(KBS_ALG) - 1) == 1;
    be32(w, (uint32_t)apul);
    ok = ok && EVP_DigestUpdate(md, w, 4) == 1 &&
         EVP_DigestUpdate(md, apu, apul) == 1;
    be32(w, (uint32_t)apvl);
    ok = ok && EVP_DigestUpdate(md, w, 4) == 1 &&
         EVP_DigestUpdate(md, apv, apvl) == 1;
    be32(w, 256);
    ok = ok && EVP_DigestUpdate(md, w, 4) == 1 &&
         EVP_DigestFinal_ex(md, kek, &n) == 1 && n == 32;
    EVP_MD_CTX_free(md);
    return ok ? 0 : -1;
}

int kbs_jwe_decrypt(EVP_PKEY *key, const uint8_t *body, size_t len,
                    uint8_t **pt, size_t *pt_len, const char **why)
{
    struct json_object *jwe = NULL, *hdr = NULL, *epk, *v;
    uint8_t *hraw = NULL, *ek = NULL, *iv = NULL, *ct = NULL, *tag = NULL;
    uint8_t *ex = NULL, *ey = NULL, *apu = NULL, *apv = NULL, *out = NULL;
    size_t hl = 0, ekl = 0, ivl = 0, ctl = 0, tagl = 0, exl = 0, eyl = 0;
    size_t apul = 0, apvl = 0, coord = 0, zl = 0, pl = 0, al = 0;
    const char *prot, *aad_s = NULL, *crv;
    char *aad = NULL;
    uint8_t z[COORD_MAX], kek[32], cek[32];
    EVP_PKEY *peer = NULL;
    EVP_PKEY_CTX *dctx = NULL;
    EVP_CIPHER_CTX *c = NULL;
    int rc = KBS_EXIT_PROTOCOL, n = 0, m = 0;

#define FAIL(code, msg)     \
    do {                    \
        rc = (code);        \
        *why = (msg);       \
        goto out;           \
    } while (0)

    *pt = NULL;
    *pt_len = 0;
    *why = "internal error";
    crv = kbs_key_curve(key, &coord);
    if (!crv) {
        FAIL(KBS_EXIT_LOCAL, "the ephemeral key is not P-256 or P-521");
    }
    jwe = kbs_json_parse(body, len);
    if (!jwe) {
        FAIL(KBS_EXIT_PROTOCOL, "the KBS answered a non-JSON body");
    }
    if (!json_object_is_type(jwe, json_type_object)) {
        FAIL(KBS_EXIT_PROTOCOL, "the JWE is not a JSON object");
    }
    /* the protected header */
    if (get_str(jwe, "protected", &prot, &pl) || pl == 0 ||
        kbs_b64_decode(prot, pl, 1, &hraw, &hl)) {
        FAIL(KBS_EXIT_PROTOCOL, "the JWE has no base64url \"protected\"");
    }
    hdr = kbs_json_parse(hraw, hl);
    if (!hdr || !json_object_is_type(hdr, json_type_object)) {
        FAIL(KBS_EXIT_PROTOCOL, "the JWE protected header is not a JSON "
             "object");
    }
    if (!str_is(hdr, "alg", KBS_ALG)) {
        FAIL(KBS_EXIT_JWE, "the JWE alg is not " KBS_ALG);
    }
    if (!str_is(hdr, "enc", KBS_ENC)) {
        FAIL(KBS_EXIT_JWE, "the JWE enc is not " KBS_ENC);
    }
    if (json_object_object_get_ex(hdr, "zip", NULL) ||
        json_object_object_get_ex(hdr, "crit", NULL)) {
        FAIL(KBS_EXIT_JWE, "the JWE uses zip or crit (not supported)");
    }
    if (!json_object_object_get_ex(hdr, "epk", &epk) ||
        !json_object_is_type(epk, json_type_object) ||
        !str_is(epk, "kty", "EC")) {
        FAIL(KBS_EXIT_JWE, "the JWE has no EC \"epk\"");
    }
    if (!str_is(epk, "crv", crv)) {
        FAIL(KBS_EXIT_JWE, "the JWE epk is not on the tee-pubkey's curve");
    }
    if (get_b64url(epk, "x", &ex, &exl) || get_b64url(epk, "y", &ey, &eyl) ||
        exl != coord || eyl != coord) {
        FAIL(KBS_EXIT_JWE, "the JWE epk coordinates are malformed");
    }
    if ((json_object_object_get_ex(hdr, "apu", NULL) &&
         get_b64url(hdr, "apu", &apu, &apul)) ||
        (json_object_object_get_ex(hdr, "apv", NULL) &&
         get_b64url(hdr, "apv", &apv, &apvl))) {
        FAIL(KBS_EXIT_PROTOCOL, "the JWE apu/apv are not base64url");
    }
    /* the other members */
    if (get_b64url(jwe, "encrypted_key", &ek, &ekl) ||
        get_b64url(jwe, "iv", &iv, &ivl) ||
        get_b64url(jwe, "ciphertext", &ct, &ctl) ||
        get_b64url(jwe, "tag", &tag, &tagl)) {
        FAIL(KBS_EXIT_PROTOCOL, "the JWE lacks a base64url encrypted_key, "
             "iv, ciphertext or tag");
    }
    if (ekl != 40 || ivl != 12 || tagl != 16 || ctl > INT_MAX) {
        FAIL(KBS_EXIT_JWE, "the JWE encrypted_key, iv or tag has the wrong "
             "size");
    }
    if (json_object_object_get_ex(jwe, "aad", &v)) {
        uint8_t *raw;
        size_t rl;

        if (get_str(jwe, "aad", &aad_s, &al) ||
            kbs_b64_decode(aad_s, al, 1, &raw, &rl)) {
            FAIL(KBS_EXIT_PROTOCOL, "the JWE aad is not base64url");
        }
        free(raw);
    }
    /* AAD = ASCII(protected) [ "." ASCII(aad) ] */
    al = aad_s ? strlen(aad_s) : 0;
    aad = malloc(pl + 1 + al + 1);
    if (!aad) {
        FAIL(KBS_EXIT_LOCAL, "out of memory");
    }
    memcpy(aad, prot, pl);
    if (aad_s) {
        aad[pl] = '.';
        memcpy(aad + pl + 1, aad_s, al);
        al = pl + 1 + al;
    } else {
        al = pl;
    }

    /* ECDH with the epk, which must be a point on the curve */
    peer = ec_point(crv, ex, ey, coord);
    if (!peer) {
        FAIL(KBS_EXIT_JWE, "the JWE epk is not a point on the curve");
    }
    zl = sizeof(z);
    if (!(dctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL)) ||
        EVP_PKEY_derive_init(dctx) != 1 ||
        EVP_PKEY_derive_set_peer_ex(dctx, peer, 1) != 1 ||
        EVP_PKEY_derive(dctx, z, &zl) != 1 || zl != coord) {
        FAIL(KBS_EXIT_JWE, "ECDH with the JWE epk failed");
    }
    if (concat_kdf(z, zl, apu, apul, apv, apvl, kek)) {
        FAIL(KBS_EXIT_LOCAL, "SHA-256 failed");
    }
    /* CEK = AES-256 key unwrap (RFC 3394) */
    c = EVP_CIPHER_CTX_new();
    if (!c) {
        FAIL(KBS_EXIT_LOCAL, "out of memory");
    }
    EVP_CIPHER_CTX_set_flags(c, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
    if (EVP_DecryptInit_ex(c, EVP_aes_256_wrap(), NULL, kek, NULL) != 1 ||
        EVP_DecryptUpdate(c, cek, &n, ek, (int)ekl) != 1 || n != 32 ||
        EVP_DecryptFinal_ex(c, cek + n, &m) != 1 || m != 0) {
        FAIL(KBS_EXIT_JWE, "the JWE encrypted_key does not unwrap (wrong "
             "key or tampered)");
    }
    /* plaintext = AES-256-GCM */
    out = malloc(ctl + 1);
    if (!out || EVP_CIPHER_CTX_reset(c) != 1) {
        FAIL(KBS_EXIT_LOCAL, "out of memory");
    }
    n = 0;
    m = 0;
    if (EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, (int)ivl, NULL) != 1 ||
        EVP_DecryptInit_ex(c, NULL, NULL, cek, iv) != 1 ||
        EVP_DecryptUpdate(c, NULL, &n, (const uint8_t *)aad, (int)al) != 1 ||
        EVP_DecryptUpdate(c, out, &n, ct, (int)ctl) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, (int)tagl, tag) != 1 ||
        EVP_DecryptFinal_ex(c, out + n, &m) != 1) {
        FAIL(KBS_EXIT_JWE, "the JWE does not decrypt (GCM tag mismatch)");
    }
    *pt = out;
    *pt_len = (size_t)n + (size_t)m;
    out = NULL;
    rc = KBS_EXIT_OK;
    *why = NULL;
out:
#undef FAIL
    ERR_clear_error();
    OPENSSL_cleanse(z, sizeof(z));
    OPENSSL_cleanse(kek, sizeof(kek));
    OPENSSL_cleanse(cek, sizeof(cek));
    if (out) {
        OPENSSL_cleanse(out, ctl + 1);
        free(out);
    }
    EVP_CIPHER_CTX_free(c);
    EVP_PKEY_CTX_free(dctx);
    EVP_PKEY_free(peer);
    free(aad);
    free(hraw);
    free(ek);
    free(iv);
    free(ct);
    free(tag);
    free(ex);
    free(ey);
    free(apu);
    free(apv);
    json_object_put(hdr);
    json_object_put(jwe);
    return rc;
}

/* ------------------------------------------------------------------ */
/* vCPU progress while a request is pending (--progress)              */
/* ------------------------------------------------------------------ */

#define UNIT_BYTES      4096
#define BATCH_US        1000

static struct {
    int active;                 /* a forwarded request is pending */
    uint64_t units;
    EVP_MD_CTX *md;
    EVP_MD *sha;
    uint8_t buf[UNIT_BYTES];
} prog;

static uint64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* The unit of work: SHA-256 of 4 KiB, chained so it cannot be skipped */
static void work_unit(void)
{
    unsigned int n;

    EVP_DigestInit_ex(prog.md, prog.sha, NULL);
    EVP_DigestUpdate(prog.md, prog.buf, sizeof(prog.buf));
    EVP_DigestFinal_ex(prog.md, prog.buf, &n);
    prog.units++;
}

/* Units for about a millisecond: the baseline and the relax hook alike */
static void work_batch(void)
{
    uint64_t t0 = now_us();

    do {
        work_unit();
    } while (now_us() - t0 < BATCH_US);
}

void kbs_relax(void *ctx)
{
    (void)ctx;
    if (prog.active) {
        work_batch();
        return;
    }
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static int progress_init(void)
{
    prog.md = EVP_MD_CTX_new();
    prog.sha = EVP_MD_fetch(NULL, "SHA256", NULL);
    memset(prog.buf, 0x5c, sizeof(prog.buf));
    return prog.md && prog.sha ? 0 : -1;
}

static void progress_fini(void)
{
    EVP_MD_CTX_free(prog.md);
    EVP_MD_free(prog.sha);
    prog.md = NULL;
    prog.sha = NULL;
    prog.active = 0;
}

/* Units per second of the unit of work, measured for about 1 s */
static double progress_baseline(void)
{
    uint64_t t0, dt;

    prog.units = 0;
    t0 = now_us();
    do {
        work_batch();
        dt = now_us() - t0;
    } while (dt < 1000000);
    return (double)prog.units * 1e6 / (double)dt;
}

/* ------------------------------------------------------------------ */
/* The flow                                                            */
/* ------------------------------------------------------------------ */

struct kbs {
    struct coca_dev *d;
    uint32_t session;
    uint8_t *buf;
    uint32_t cap;
    struct coca_kbs_reply r;
    /* --progress */
    int progress;
    double baseline, pending_rate;
    uint64_t longest_us;
    int measured;
    /* time each forward took, as the guest sees it (auth, attest, ...) */
    uint64_t fwd_us[3];
    unsigned nfwd;
};

/* A failed library call, in one line */
static int device_error(const char *what, int err, const struct coca_dev *d,
                        uint32_t needed)
{
    if (err == COCA_E_STATUS) {
        fprintf(stderr, "kbs: %s: %s\n", what,
                coca_status_name(d->last_status));
    } else if (err == COCA_E_TOOBIG) {
        fprintf(stderr, "kbs: %s: %s (%" PRIu32 " bytes needed)\n", what,
                d->last_status == COCA_STATUS_NO_SPACE
                    ? "NO_SPACE" : "the answer does not fit the buffer",
                needed);
    } else if (err == COCA_E_NOFEATURE) {
        fprintf(stderr, "kbs: %s: the device does not offer KBS forwarding "
                "(COCA_FEAT_KBS)\n", what);
    } else {
        fprintf(stderr, "kbs: %s: %s\n", what, coca_strerror(err));
    }
    return KBS_EXIT_DEVICE;
}

/* A non-200 answer, with the KBS's ErrorInformation when there is one */
static int http_error(const char *path, const struct kbs *k)
{
    struct json_object *o = kbs_json_parse(k->buf, k->r.body_len);
    const char *s;
    size_t n;
    char type[SHOW_MAX + 8] = "", detail[SHOW_MAX + 8] = "";

    if (o && json_object_is_type(o, json_type_object)) {
        if (!get_str(o, "type", &s, &n)) {
            show(type, sizeof(type), s, n);
        }
        if (!get_str(o, "detail", &s, &n)) {
            show(detail, sizeof(detail), s, n);
        }
    }
    json_object_put(o);
    fprintf(stderr, "kbs: %s: HTTP %" PRIu32 "%s%s%s%s\n", path,
            k->r.http_status, type[0] ? ": " : "", type,
            detail[0] ? ": " : "", detail);
    return KBS_EXIT_HTTP;
}

/* Forward one request; 0 with a 200 answer in k->buf, or an exit code */
static int forward(struct kbs *k, uint16_t method, const char *path,
                   const char *body)
{
    uint64_t t0, dt;
    int err;

    prog.units = 0;
    prog.active = k->progress;
    t0 = now_us();
    err = coca_kbs_forward(k->d, k->session, method, path,
                           method == COCA_KBS_POST ? CTYPE_JSON : NULL,
                           body, body ? (uint32_t)strlen(body) : 0,
                           k->buf, k->cap, &k->r);
    dt = now_us() - t0;
    prog.active = 0;
    if (k->nfwd < sizeof(k->fwd_us) / sizeof(k->fwd_us[0])) {
        k->fwd_us[k->nfwd++] = dt;
    }
    if (k->progress && dt > k->longest_us) {
        k->longest_us = dt;
        k->pending_rate = dt ? (double)prog.units * 1e6 / (double)dt : 0;
        k->measured = 1;
    }
    if (err) {
        return device_error(path, err, k->d, k->r.needed);
    }
    if (k->r.http_status != 200) {
        return http_error(path, k);
    }
    return 0;
}

/* A 200 answer that must be a JSON object */
static struct json_object *answer_object(const char *path, const struct kbs *k)
{
    struct json_object *o = kbs_json_parse(k->buf, k->r.body_len);

    if (!o) {
        fprintf(stderr, "kbs: %s: the KBS answered a non-JSON body\n", path);
        return NULL;
    }
    if (!json_object_is_type(o, json_type_object)) {
        fprintf(stderr, "kbs: %s: the KBS answered JSON that is not an "
                "object\n", path);
        json_object_put(o);
        return NULL;
    }
    return o;
}

int kbs_resource_ok(const char *r)
{
    int segs = 0;

    while (*r) {
        size_t n = strspn(r, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                             "abcdefghijklmnopqrstuvwxyz0123456789._-");

        if (n == 0 || (n == 1 && r[0] == '.') ||
            (n == 2 && r[0] == '.' && r[1] == '.')) {
            return 0;
        }
        segs++;
        r += n;
        if (*r == '/') {
            r++;
            if (!*r) {
                return 0;
            }
        } else if (*r) {
            return 0;
        }
    }
    return segs == 3;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);

        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int output_secret(const struct kbs_get_opts *o, const uint8_t *s,
                         size_t n)
{
    if (o->out) {
        int fd = open(o->out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        if (fd < 0 || write_all(fd, s, n) || close(fd)) {
            fprintf(stderr, "kbs: %s: %s\n", o->out, strerror(errno));
            return KBS_EXIT_LOCAL;
        }
    }
    if (o->sha256) {
        uint8_t md[32];
        unsigned int ml = 0, i;

        if (EVP_Digest(s, n, md, &ml, EVP_sha256(), NULL) != 1) {
            fprintf(stderr, "kbs: SHA-256 failed\n");
            return KBS_EXIT_LOCAL;
        }
        printf("kbs secret sha256=");
        for (i = 0; i < ml; i++) {
            printf("%02x", md[i]);
        }
        printf(" (%zu bytes)\n", n);
    } else if (!o->out) {
        if (write_all(1, s, n)) {
            fprintf(stderr, "kbs: stdout: %s\n", strerror(errno));
            return KBS_EXIT_LOCAL;
        }
    }
    return fflush(stdout) ? KBS_EXIT_LOCAL : KBS_EXIT_OK;
}

/* The configuration, checked for what this client speaks */
static int config(struct coca_dev *d, struct coca_kbs_config *c)
{
    int err = coca_kbs_config(d, c);

    if (err) {
        return device_error("config", err, d, 0);
    }
    return 0;
}

int kbs_cmd_config(struct coca_dev *d)
{
    struct coca_kbs_config c;
    char proto[sizeof(c.protocol) + 8], url[sizeof(c.url) + 8];
    int rc = config(d, &c);

    if (rc) {
        return rc;
    }
    show(proto, sizeof(proto), c.protocol, strlen(c.protocol));
    show(url, sizeof(url), c.url, strlen(c.url));
    printf("kbs config protocol=%s url=%s max-sessions=%" PRIu32
           " session-timeout=%" PRIu32 " max-body=%" PRIu32
           " max-response=%" PRIu32 " timeout-ms=%" PRIu32 "\n", proto, url,
           c.max_sessions, c.session_timeout, c.max_body, c.max_response,
           c.timeout_ms);
    return KBS_EXIT_OK;
}

/* auth, attest, resource; the session is open */
static int flow(struct kbs *k, const struct kbs_get_opts *o, EVP_PKEY *key,
                uint8_t **secret, size_t *secret_len)
{
    static const char auth[] = "{\"version\":\"" COCA_KBS_PROTOCOL "\","
                               "\"tee\":\"" KBS_TEE "\","
                               "\"extra-params\":\"\"}";
    struct json_object *ch = NULL, *tok = NULL;
    char *nonce = NULL, *teepk = NULL, *binding = NULL, *rd64 = NULL;
    char *attest = NULL, path[COCA_KBS_PATH_MAX + 1];
    uint8_t rd[48];
    const char *s, *why;
    size_t n;
    struct sb b = { 0 };
    int rc;

    /* auth: the challenge */
    rc = forward(k, COCA_KBS_POST, PATH_AUTH, auth);
    if (rc) {
        goto out;
    }
    fprintf(stderr, "kbs: auth %" PRIu32 "\n", k->r.http_status);
    rc = KBS_EXIT_PROTOCOL;
    ch = answer_object(PATH_AUTH, k);
    if (!ch) {
        goto out;
    }
    if (get_str(ch, "nonce", &s, &n)) {
        fprintf(stderr, "kbs: %s: the challenge has no string \"nonce\"\n",
                PATH_AUTH);
        goto out;
    }
    if (!nonce_ok(s, n) || !(nonce = strndup(s, n))) {
        fprintf(stderr, "kbs: %s: the challenge nonce is not standard "
                "base64\n", PATH_AUTH);
        goto out;
    }

    /* attest: evidence bound to the nonce and the ephemeral key */
    rc = KBS_EXIT_LOCAL;
    teepk = kbs_tee_pubkey(key);
    binding = teepk ? kbs_binding_json(nonce, teepk) : NULL;
    if (!binding || kbs_report_data(binding, rd) ||
        !(rd64 = kbs_b64_encode(rd, sizeof(rd), 0))) {
        fprintf(stderr, "kbs: cannot build the evidence\n");
        goto out;
    }
    sb_str(&b, "{\"runtime-data\":{\"nonce\":");
    sb_json_string(&b, nonce);
    sb_str(&b, ",\"tee-pubkey\":");
    sb_str(&b, teepk);
    sb_str(&b, "},\"tee-evidence\":{\"primary_evidence\":{\"svn\":\"1\","
               "\"report_data\":");
    sb_json_string(&b, rd64);
    sb_str(&b, "},\"additional_evidence\":\"\"}}");
    attest = sb_done(&b);
    if (!attest) {
        fprintf(stderr, "kbs: out of memory\n");
        goto out;
    }
    rc = forward(k, COCA_KBS_POST, PATH_ATTEST, attest);
    if (rc) {
        goto out;
    }
    rc = KBS_EXIT_PROTOCOL;
    tok = answer_object(PATH_ATTEST, k);
    if (!tok) {
        goto out;
    }
    if (get_str(tok, "token", &s, &n) || n == 0) {
        fprintf(stderr, "kbs: %s: the answer has no \"token\"\n",
                PATH_ATTEST);
        goto out;
    }
    fprintf(stderr, "kbs: attest %" PRIu32 " (token %zu bytes)\n",
            k->r.http_status, n);

    /* the resource, a JWE to the ephemeral key */
    snprintf(path, sizeof(path), PATH_RESOURCE "%s", o->resource);
    rc = forward(k, COCA_KBS_GET, path, NULL);
    if (rc) {
        goto out;
    }
    fprintf(stderr, "kbs: resource %" PRIu32 "\n", k->r.http_status);
    rc = kbs_jwe_decrypt(key, k->buf, k->r.body_len, secret, secret_len,
                         &why);
    if (rc) {
        fprintf(stderr, "kbs: %s: %s\n", path, why);
    }
out:
    json_object_put(ch);
    json_object_put(tok);
    free(nonce);
    free(teepk);
    free(binding);
    free(rd64);
    free(attest);
    return rc;
}

int kbs_cmd_get(struct coca_dev *d, const struct kbs_get_opts *o)
{
    struct kbs k;
    struct coca_kbs_config c;
    EVP_PKEY *key = NULL;
    uint8_t *secret = NULL;
    size_t secret_len = 0;
    const char *crv = o->curve ? o->curve : "P-256";
    int rc, err;

    memset(&k, 0, sizeof(k));
    k.d = d;
    k.progress = o->progress;
    if (!o->resource || !kbs_resource_ok(o->resource) ||
        strlen(PATH_RESOURCE) + strlen(o->resource) > COCA_KBS_PATH_MAX) {
        fprintf(stderr, "kbs: the resource must be REPO/TYPE/TAG, each of "
                "[A-Za-z0-9._-]\n");
        return KBS_EXIT_USAGE;
    }
    if (k.progress) {
        if (progress_init()) {
            fprintf(stderr, "kbs: cannot set up the progress measurement\n");
            progress_fini();
            return KBS_EXIT_LOCAL;
        }
        k.baseline = progress_baseline();
    }
    rc = config(d, &c);
    if (rc) {
        goto out;
    }
    if (strcmp(c.protocol, COCA_KBS_PROTOCOL)) {
        char p[sizeof(c.protocol) + 8];

        show(p, sizeof(p), c.protocol, strlen(c.protocol));
        fprintf(stderr, "kbs: the host speaks KBS protocol %s, this client "
                COCA_KBS_PROTOCOL "\n", p);
        rc = KBS_EXIT_DEVICE;
        goto out;
    }
    k.cap = d->max_object;
    k.buf = malloc(k.cap);
    key = EVP_EC_gen(crv);
    if (!k.buf || !key) {
        fprintf(stderr, "kbs: cannot make an ephemeral %s key\n", crv);
        rc = KBS_EXIT_LOCAL;
        goto out;
    }
    err = coca_kbs_open(d, &k.session);
    if (err) {
        rc = device_error("open", err, d, 0);
        goto out;
    }
    rc = flow(&k, o, key, &secret, &secret_len);
    err = coca_kbs_close(d, k.session);
    if (err) {
        /* the secret, if any, is not affected */
        device_error(rc ? "close" : "close (ignored)", err, d, 0);
    }
    if (!rc && k.nfwd == 3) {
        /* the exchange itself, without the guest's own crypto */
        fprintf(stderr, "kbs: forward_us auth=%" PRIu64 " attest=%" PRIu64
                " resource=%" PRIu64 " total=%" PRIu64 "\n", k.fwd_us[0],
                k.fwd_us[1], k.fwd_us[2],
                k.fwd_us[0] + k.fwd_us[1] + k.fwd_us[2]);
    }
    if (k.measured) {
        fprintf(stderr, "kbs: progress baseline=%.0f pending=%.0f ratio=%.2f "
                "waited_ms=%" PRIu64 "\n", k.baseline, k.pending_rate,
                k.baseline > 0 ? k.pending_rate / k.baseline : 0.0,
                k.longest_us / 1000);
    }
    if (!rc) {
        rc = output_secret(o, secret, secret_len);
    }
out:
    if (secret) {
        OPENSSL_cleanse(secret, secret_len);
        free(secret);
    }
    EVP_PKEY_free(key);
    free(k.buf);
    progress_fini();
    return rc;
}
