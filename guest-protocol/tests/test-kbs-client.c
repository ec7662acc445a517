/*
 * SPDX-License-Identifier: GPL-2.0-or-later OR MIT
 *
 * Unit tests of the Linux tool's KBS client (linux/kbs-client.c), on the
 * host, under ASan/UBSan:
 *
 *  - the base64 and base64url codecs (RFC 4648 vectors, strictness);
 *  - tee-pubkey, the RFC 8785 binding and its SHA-384 against vectors
 *    computed with Python (json.dumps(sort_keys=True, separators=(',',
 *    ':')) is RFC 8785 for these ASCII values, hashlib.sha384);
 *  - JWE decryption of vectors made once with python3-cryptography
 *    (ECDH-ES+A256KW: ConcatKDFHash(SHA-256), aes_key_wrap; AESGCM with
 *    the protected header as AAD) for P-256 and P-521, with "aad" and
 *    "apu", and refusal of every tampered or foreign variant;
 *  - the whole `kbs get` flow against an in-process device and KBS that
 *    check the request bodies and the binding independently, answer
 *    with a JWE made here, and misbehave on request.
 */

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "kbs-client.h"
#include "tap.h"

/* ------------------------------------------------------------------ */
/* Vectors (python3-cryptography, generated once)                      */
/* ------------------------------------------------------------------ */

static const char key_p256[] =
    "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwE"
    "HBG0wawIBAQQgvcqXqixP0IcwP0BV\npHOAFf9Uj6fDF1tfbq43GCXjCKShRANCA"
    "AQAtE8ZhVQod2oD85hEwQ0CLFv9fY7M\nLKGwhcedV6hV2HYP0aLZxZ+PvnUKM6q"
    "gX5HdBeUwkuMBNqRsbQKmN5Dc\n-----END PRIVATE KEY-----\n";

static const char teepk_p256[] =
    "{\"alg\":\"ECDH-ES+A256KW\",\"crv\":\"P-256\",\"kty\":\"EC\",\"x"
    "\":\"ALRPGYVUKHdqA_OYRMENAixb_X2OzCyhsIXHnVeoVdg\",\"y\":\"dg_Ro"
    "tnFn4--dQozqqBfkd0F5TCS4wE2pGxtAqY3kNw\"}";

static const char nonce_p256[] =
    "4dTbgzqaI8IttewpLqrU+y5cumW1R4SCYDZapFsnKvI=";

static const char binding_p256[] =
    "{\"additional-evidence\":\"\",\"nonce\":\"4dTbgzqaI8IttewpLqrU+y"
    "5cumW1R4SCYDZapFsnKvI=\",\"tee-pubkey\":{\"alg\":\"ECDH-ES+A256K"
    "W\",\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"ALRPGYVUKHdqA_OYRME"
    "NAixb_X2OzCyhsIXHnVeoVdg\",\"y\":\"dg_RotnFn4--dQozqqBfkd0F5TCS4"
    "wE2pGxtAqY3kNw\"}}";

static const char rd_p256[] =
    "423a83767615aa192338673857d958e997dabcc1a647276e8f3bb27f11b7da68"
    "994e72aabfe99a5a395090451b18cf62";

static const char pt_p256[] =
    "73656372657420666f7220502d3235363a20000102030405060708090a0b0c0d"
    "0e0f101112131415161718191a1b1c1d1e1f2021222324252627";

static const char jwe_p256[] =
    "{\"protected\":\"eyJhbGciOiJFQ0RILUVTK0EyNTZLVyIsImVuYyI6IkEyNTZ"
    "HQ00iLCJlcGsiOnsiY3J2IjoiUC0yNTYiLCJrdHkiOiJFQyIsIngiOiJjUU9qWWJ"
    "hek9ub0o5R2c1NmZfVFdTMFZUa1g5bmlBUUViQW0wQlpmNnVRIiwieSI6IjFOU2F"
    "aWFlLRGw3N0RZWk9PbU44eG5KNTlZaDRKZHhfOEp0WXBRdW9HWUEifX0\",\"enc"
    "rypted_key\":\"ULKD-lv1cKN3kwrWQv17kWdSMKIzo5pCV2RPfP5Xqc7IoWjHu"
    "4-qyA\",\"iv\":\"2ed4-Y8JdvQR8YU_\",\"ciphertext\":\"Oj3EVXZ6YsL"
    "U4UYs23ygTM8RrQMExG5s5pXRXxgPUN3spxJKHgKCFOrml8d6n04uSNbglwp161u"
    "_oQ\",\"tag\":\"o7N50pw7Y5aWwarSPpOW5A\"}";

static const char jwe_p256_aad[] =
    "{\"protected\":\"eyJhbGciOiJFQ0RILUVTK0EyNTZLVyIsImVuYyI6IkEyNTZ"
    "HQ00iLCJlcGsiOnsiY3J2IjoiUC0yNTYiLCJrdHkiOiJFQyIsIngiOiJEckNXUWJ"
    "Bay1VTzgyNGZkQk9aYkJGMkdTRXEwY0NEdGpYM2dGSktGeVFNIiwieSI6InNNRUZ"
    "SVGxXbXRJZ2Z0YWxOZHEyMUx5LVlKVVFVdEluTHdWODdjZzBob2cifX0\",\"enc"
    "rypted_key\":\"BoO6Xlg-PlqGXZEasTAoXSgX04UjO1iKlgKpYVNKh8rk_r_zs"
    "rTrSg\",\"iv\":\"i1W5dUL1qJYcrFaj\",\"ciphertext\":\"75rcVD8WFuv"
    "XRahqlM3PNytkSD-BZqgp3MFp3C3o4Fuk2vDjkFRY7BWRQEoyAiGi3NH8xS9cNRS"
    "JTQ\",\"tag\":\"MOtm-yfOicRSUzfwgluJVA\",\"aad\":\"ZXh0cmE\"}";

static const char jwe_p256_apu[] =
    "{\"protected\":\"eyJhbGciOiJFQ0RILUVTK0EyNTZLVyIsImVuYyI6IkEyNTZ"
    "HQ00iLCJlcGsiOnsiY3J2IjoiUC0yNTYiLCJrdHkiOiJFQyIsIngiOiJFUjRtMkR"
    "kSXNldmRBb25aVXdNWnhNYXJLSG52bjVWNllEc2hqR1hsRVhjIiwieSI6InY5XzF"
    "sX1VBS3ZObFJlai1rV3ktaVhWVnF0Vzl6ZXltN2VWSXZueHZFZ1kifSwiYXB1Ijo"
    "iWVd4cFkyVSJ9\",\"encrypted_key\":\"upZSndzh3vy_gdbEeCxpxU1xANuY"
    "OTaoCp2B0jm62lbSBmEpVLSYuQ\",\"iv\":\"S83nsFPXj6tL9Psz\",\"ciphe"
    "rtext\":\"QADRWf_t1SK8B_7BSlzuHXOmf9l3f1uXAO-Z6kLEoK4K3BiEvtb31-"
    "0A7u-vBoXCzYNHn4uBTbyQhg\",\"tag\":\"GQjeyUvF0ROTRT2yr4XlMA\"}";

static const char jwe_p256_wrong_curve[] =
    "{\"protected\":\"eyJhbGciOiJFQ0RILUVTK0EyNTZLVyIsImVuYyI6IkEyNTZ"
    "HQ00iLCJlcGsiOnsiY3J2IjoiUC01MjEiLCJrdHkiOiJFQyIsIngiOiJBS19lQm4"
    "wN2pKVkhzVjRlYW82LU5SdWlLT3FlREh5SG1Nekoxcl9QbnI2U2p2bi01Nm5zVFY"
    "5WU9iRHVWdlNjRHRaUEw1WFVEeUI3bEp4eTB2M2Rvelp6IiwieSI6IkFFV1p3cXN"
    "zX2JGSjJHdXhfY0o3V2tBQmd1TTRaQTU0YU00Y0dvbUcweV8ycU42dnRybkEyU08"
    "wNlBpalpaRmxUZGhMbTRXMFVqcjZOeDJGUlFyMGR2X0sifX0\",\"encrypted_k"
    "ey\":\"ODZOBevqsf-K6McWgT5LtoM2_CeRINScDHfZM5_uu14IyfisenRXbg\","
    "\"iv\":\"pS1JmMvZcoMslc_J\",\"ciphertext\":\"cDlqTDcT5bFNGwt10_2"
    "qhL8W8lwUPO8-s_GswrSCsZ_mcG66xHPduUk5E89zbax1qcg71xdel_rg6A\",\""
    "tag\":\"v6Qe7c_mIOWeLVabuG58vA\"}";

static const char jwe_p256_empty[] =
    "{\"protected\":\"eyJhbGciOiJFQ0RILUVTK0EyNTZLVyIsImVuYyI6IkEyNTZ"
    "HQ00iLCJlcGsiOnsiY3J2IjoiUC0yNTYiLCJrdHkiOiJFQyIsIngiOiJCVTlwY29"
    "HVnRmV1JmLXotYUUwMDd2YmF4SWhiT1FBRXJGX2xXdjEtSERnIiwieSI6Ikl2akZ"
    "JblROX1phYm5PQUNkMTJIeHV6b2hkU1pwVURZS1kwa2loMlV3ajAifX0\",\"enc"
    "rypted_key\":\"kXCAgBKD3-nmfPeDsJwlddSp985JpjuVbK-tFwGBRC7IVPkyE"
    "mAudA\",\"iv\":\"M0SBnjihkplM1T9U\",\"ciphertext\":\"\",\"tag\":"
    "\"TuUls0sfM_4mHrmGwCI4nQ\"}";

static const char key_p521[] =
    "-----BEGIN PRIVATE KEY-----\nMIHuAgEAMBAGByqGSM49AgEGBSuBBAAjBIH"
    "WMIHTAgEBBEIA6vqHAfFLxjyYZquM\nTOc6Q2RuB0cH3qftsm9Bt/WsOkIgCEvEM"
    "N9NBcCtt94idn5f3be7KqCVA/qBLusH\nkiWVgbehgYkDgYYABACIaYxxzFRV3kl"
    "gRTB4XUWa8Po8xYacTfCscoAv5tmxFXlY\nhrZull73pnTgfBQ0ooLNmYH1PzC2d"
    "tq/QIvWys8hhwDZpCjsulWgDJp5K0Ad+1Mx\nxxydN0sDv3QTP6xJNKydTcrap0w"
    "ErUnoI3GkA65Tm5ylsgmxdU1rJgeys/P9A6bq\nbA==\n-----END PRIVATE KE"
    "Y-----\n";

static const char teepk_p521[] =
    "{\"alg\":\"ECDH-ES+A256KW\",\"crv\":\"P-521\",\"kty\":\"EC\",\"x"
    "\":\"AIhpjHHMVFXeSWBFMHhdRZrw-jzFhpxN8KxygC_m2bEVeViGtm6WXvemdOB"
    "8FDSigs2ZgfU_MLZ22r9Ai9bKzyGH\",\"y\":\"ANmkKOy6VaAMmnkrQB37UzHH"
    "HJ03SwO_dBM_rEk0rJ1NytqnTAStSegjcaQDrlObnKWyCbF1TWsmB7Kz8_0Dpups"
    "\"}";

static const char nonce_p521[] =
    "8NBL6Km9iQdA3f2VdHp36JSmqxt1njujFLAQBteMbWA=";

static const char binding_p521[] =
    "{\"additional-evidence\":\"\",\"nonce\":\"8NBL6Km9iQdA3f2VdHp36J"
    "Smqxt1njujFLAQBteMbWA=\",\"tee-pubkey\":{\"alg\":\"ECDH-ES+A256K"
    "W\",\"crv\":\"P-521\",\"kty\":\"EC\",\"x\":\"AIhpjHHMVFXeSWBFMHh"
    "dRZrw-jzFhpxN8KxygC_m2bEVeViGtm6WXvemdOB8FDSigs2ZgfU_MLZ22r9Ai9b"
    "KzyGH\",\"y\":\"ANmkKOy6VaAMmnkrQB37UzHHHJ03SwO_dBM_rEk0rJ1Nytqn"
    "TAStSegjcaQDrlObnKWyCbF1TWsmB7Kz8_0Dpups\"}}";

static const char rd_p521[] =
    "2931c992102c301e399346e3c238f3282477b0e41168cadf8e2a483891ffb1bd"
    "32bbb4296d179cfdc7744696007b692b";

static const char pt_p521[] =
    "73656372657420666f7220502d3532313a20000102030405060708090a0b0c0d"
    "0e0f101112131415161718191a1b1c1d1e1f2021222324252627";

static const char jwe_p521[] =
    "{\"protected\":\"eyJhbGciOiJFQ0RILUVTK0EyNTZLVyIsImVuYyI6IkEyNTZ"
    "HQ00iLCJlcGsiOnsiY3J2IjoiUC01MjEiLCJrdHkiOiJFQyIsIngiOiJBU1lCc1l"
    "Bd3NhT2ZHaGNRMDNMbnM3bTl3a0l5cGJLbndBWDR6eTZqSVB5YklzVVUxckJGODZ"
    "qQmo5WllaSHhaRTJVWkU3aWZQQklvMDlkUTdyQVp5ckJLIiwieSI6IkFXWmgyS05"
    "WT05oMGFLZjd4U1locTdMTEtYWjNlOUNpYmFBbFdXVzJkN0I3QjNIOVgwWTRqaEh"
    "GVEJha2VRMzJybEtySkc1c0JnNWZYVnhzdGt4V2JKSUIifX0\",\"encrypted_k"
    "ey\":\"xFXXqysMHoPKv-8q00tyDrF8hxLgZnareXNsT6moP1aZkFv6-wzlUQ\","
    "\"iv\":\"w850BFQffDwYHXP2\",\"ciphertext\":\"-2d7vyDiQhimx_Emkfa"
    "U9BAzX183rECYK3cuYAubxqViyJcVH4uU_gG2i_Hx7QhqSQazV196UNPDfw\",\""
    "tag\":\"jvkSjQj_Ht-SQlJ3BshN_A\"}";


/* ------------------------------------------------------------------ */


static EVP_PKEY *load_key(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;

    BIO_free(b);
    return k;
}

static int hex_is(const uint8_t *p, size_t n, const char *hex)
{
    char h[3];
    size_t i;

    if (strlen(hex) != 2 * n) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        snprintf(h, sizeof(h), "%02x", p[i]);
        if (memcmp(h, hex + 2 * i, 2)) {
            return 0;
        }
    }
    return 1;
}

/* Decrypt a JWE text; returns the exit code, the plaintext in *pt */
static int decrypt(EVP_PKEY *k, const char *jwe, uint8_t **pt, size_t *n,
                   const char **why)
{
    return kbs_jwe_decrypt(k, (const uint8_t *)jwe, strlen(jwe), pt, n, why);
}

/* ---- editing JWE text (through json-c, independent of the client) ---- */

static char *json_text(struct json_object *o)
{
    char *s = strdup(json_object_to_json_string_ext(
                         o, JSON_C_TO_STRING_PLAIN |
                            JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
    return s;
}

/* The JWE with member set to value (a string), or removed (NULL) */
static char *jwe_set(const char *jwe, const char *member, const char *value)
{
    struct json_object *o = json_tokener_parse(jwe);

    if (value) {
        json_object_object_add(o, member, json_object_new_string(value));
    } else {
        json_object_object_del(o, member);
    }
    return json_text(o);
}

static char *b64url_of(const uint8_t *p, size_t n)
{
    return kbs_b64_encode(p, n, 1);
}

/* A base64url member with one bit flipped in its decoded bytes */
static char *jwe_flip(const char *jwe, const char *member, size_t byte)
{
    struct json_object *o = json_tokener_parse(jwe), *v;
    uint8_t *raw;
    size_t n;
    char *enc, *r;

    json_object_object_get_ex(o, member, &v);
    kbs_b64_decode(json_object_get_string(v), json_object_get_string_len(v),
                   1, &raw, &n);
    raw[byte % n] ^= 0x01;
    enc = b64url_of(raw, n);
    r = jwe_set(jwe, member, enc);
    free(raw);
    free(enc);
    json_object_put(o);
    return r;
}

/*
 * The JWE with its protected header edited: key (or "epk.key") set to a
 * string value, removed (NULL), or for "epk.y!" the y coordinate's last
 * bit flipped.
 */
static char *jwe_hdr(const char *jwe, const char *key, const char *value)
{
    struct json_object *o = json_tokener_parse(jwe), *p, *h, *t;
    uint8_t *raw;
    size_t n;
    char *enc, *r, *txt;

    json_object_object_get_ex(o, "protected", &p);
    kbs_b64_decode(json_object_get_string(p), json_object_get_string_len(p),
                   1, &raw, &n);
    h = json_tokener_parse((const char *)raw);
    free(raw);
    t = h;
    if (!strncmp(key, "epk.", 4)) {
        json_object_object_get_ex(h, "epk", &t);
        key += 4;
    }
    if (!strcmp(key, "y!")) {
        struct json_object *y;
        uint8_t *c;
        size_t cl;
        char *e;

        json_object_object_get_ex(t, "y", &y);
        kbs_b64_decode(json_object_get_string(y),
                       json_object_get_string_len(y), 1, &c, &cl);
        c[cl - 1] ^= 1;
        e = b64url_of(c, cl);
        json_object_object_add(t, "y", json_object_new_string(e));
        free(c);
        free(e);
    } else if (value) {
        json_object_object_add(t, key, json_object_new_string(value));
    } else {
        json_object_object_del(t, key);
    }
    txt = json_text(h);
    enc = b64url_of((const uint8_t *)txt, strlen(txt));
    r = jwe_set(jwe, "protected", enc);
    free(txt);
    free(enc);
    json_object_put(o);
    return r;
}

/* ------------------------------------------------------------------ */

static void test_base64(void)
{
    static const struct {
        const char *raw, *std, *url;
    } v[] = {
        { "", "", "" },
        { "f", "Zg==", "Zg" },
        { "fo", "Zm8=", "Zm8" },
        { "foo", "Zm9v", "Zm9v" },
        { "foob", "Zm9vYg==", "Zm9vYg" },
        { "fooba", "Zm9vYmE=", "Zm9vYmE" },
        { "foobar", "Zm9vYmFy", "Zm9vYmFy" },
        { "\xfb\xff\xbf", "+/+/", "-_-_" },
    };
    static const char *const bad_std[] = {
        "Zg", "Zg=", "Z===", "Zh==", "Zm9=", "Zm8=Zm8=", "Zm9v\n", "-_-_",
        "Zm9v Yg==", "====", "Zg==Zg==",
    };
    static const char *const bad_url[] = {
        "Z", "Zg==", "Zh", "Zm9", "+/+/", "Zm9v=", "Zm 9", "Zm9vY",
    };
    uint8_t *d;
    size_t n, i;
    char *e;
    int ok = 1;

    for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        size_t rl = strlen(v[i].raw);

        e = kbs_b64_encode((const uint8_t *)v[i].raw, rl, 0);
        EXPECT(e && !strcmp(e, v[i].std));
        free(e);
        e = kbs_b64_encode((const uint8_t *)v[i].raw, rl, 1);
        EXPECT(e && !strcmp(e, v[i].url));
        free(e);
        EXPECT(kbs_b64_decode(v[i].std, strlen(v[i].std), 0, &d, &n) == 0 &&
               n == rl && !memcmp(d, v[i].raw, rl));
        free(d);
        EXPECT(kbs_b64_decode(v[i].url, strlen(v[i].url), 1, &d, &n) == 0 &&
               n == rl && !memcmp(d, v[i].raw, rl));
        free(d);
    }
    for (i = 0; i < sizeof(bad_std) / sizeof(bad_std[0]); i++) {
        if (kbs_b64_decode(bad_std[i], strlen(bad_std[i]), 0, &d, &n) !=
            -1 || d) {
            printf("# accepted std \"%s\"\n", bad_std[i]);
            ok = 0;
        }
    }
    for (i = 0; i < sizeof(bad_url) / sizeof(bad_url[0]); i++) {
        if (kbs_b64_decode(bad_url[i], strlen(bad_url[i]), 1, &d, &n) !=
            -1 || d) {
            printf("# accepted url \"%s\"\n", bad_url[i]);
            ok = 0;
        }
    }
    /* an embedded NUL is not part of any alphabet */
    EXPECT(kbs_b64_decode("Zm\0v", 4, 0, &d, &n) == -1);
    report("base64-codecs", ok);
}

static void test_binding(const char *name, const char *pem,
                         const char *teepk, const char *nonce,
                         const char *binding, const char *rd)
{
    EVP_PKEY *k = load_key(pem);
    char *pk = kbs_tee_pubkey(k), *b;
    uint8_t d[48];
    int ok = 1;

    EXPECT(k && pk && !strcmp(pk, teepk));
    b = kbs_binding_json(nonce, pk ? pk : "");
    EXPECT(b && !strcmp(b, binding));
    EXPECT(b && kbs_report_data(b, d) == 0 && hex_is(d, 48, rd));
    free(b);
    /* the nonce must be standard base64 */
    EXPECT(!kbs_binding_json("", teepk));
    EXPECT(!kbs_binding_json("abc", teepk));
    EXPECT(!kbs_binding_json("ab\"c", teepk));
    EXPECT(!kbs_binding_json("ab-_", teepk));
    EXPECT(!kbs_binding_json("YWJj\\", teepk));
    free(pk);
    EVP_PKEY_free(k);
    report(name, ok);
}

static void test_jcs_escaping(void)
{
    /*
     * A nonce never needs escaping (its alphabet is checked), so the
     * only escaping visible is through the tee-pubkey, which is
     * copied verbatim: a fixed known answer keeps the layout pinned.
     */
    static const char want[] =
        "{\"additional-evidence\":\"\",\"nonce\":\"AAEC/+8=\","
        "\"tee-pubkey\":{\"k\":1}}";
    char *b = kbs_binding_json("AAEC/+8=", "{\"k\":1}");
    uint8_t d[48];
    int ok = 1;

    EXPECT(b && !strcmp(b, want));
    /* SHA-384 of the string above (python3 hashlib) */
    EXPECT(b && kbs_report_data(b, d) == 0 &&
           hex_is(d, 48, "50046ac9630618f614fd63a0ec0e7831f9f24e2f6576e464"
                         "b48061fced036ee922b4c8d19529ffd9e11b64fe00c67aab"));
    free(b);
    report("binding-layout-and-solidus", ok);
}

static void jwe_ok(const char *name, const char *pem, const char *jwe,
                   const char *pt_hex)
{
    EVP_PKEY *k = load_key(pem);
    uint8_t *pt = NULL;
    size_t n = 0;
    const char *why = NULL;
    int ok = 1, rc;

    rc = decrypt(k, jwe, &pt, &n, &why);
    if (rc) {
        printf("# %d: %s\n", rc, why);
    }
    EXPECT(rc == KBS_EXIT_OK && why == NULL);
    EXPECT(hex_is(pt, n, pt_hex));
    free(pt);
    EVP_PKEY_free(k);
    report(name, ok);
}

/* A refused JWE (takes ownership of jwe) */
static void jwe_bad(const char *name, const char *pem, char *jwe, int want,
                    const char *why_part)
{
    EVP_PKEY *k = load_key(pem);
    uint8_t *pt = (uint8_t *)"x";
    size_t n = 1;
    const char *why = NULL;
    int ok = 1, rc;

    rc = decrypt(k, jwe, &pt, &n, &why);
    printf("# %s: %d %s\n", name, rc, why ? why : "(none)");
    EXPECT(rc == want);
    EXPECT(pt == NULL && n == 0);
    EXPECT(why && strstr(why, why_part));
    free(jwe);
    EVP_PKEY_free(k);
    report(name, ok);
}

static void test_jwe(void)
{
    EVP_PKEY *k;
    uint8_t *pt;
    size_t n;
    const char *why;
    int ok;

    jwe_ok("jwe-p256", key_p256, jwe_p256, pt_p256);
    jwe_ok("jwe-p521", key_p521, jwe_p521, pt_p521);
    jwe_ok("jwe-p256-aad-member", key_p256, jwe_p256_aad, pt_p256);
    jwe_ok("jwe-p256-apu", key_p256, jwe_p256_apu, pt_p256);
    jwe_ok("jwe-p256-empty-secret", key_p256, jwe_p256_empty, "");

    jwe_bad("jwe-tampered-tag", key_p256, jwe_flip(jwe_p256, "tag", 3),
            KBS_EXIT_JWE, "GCM");
    jwe_bad("jwe-tampered-tag-p521", key_p521, jwe_flip(jwe_p521, "tag", 15),
            KBS_EXIT_JWE, "GCM");
    jwe_bad("jwe-tampered-ciphertext", key_p256,
            jwe_flip(jwe_p256, "ciphertext", 0), KBS_EXIT_JWE, "GCM");
    jwe_bad("jwe-tampered-iv", key_p256, jwe_flip(jwe_p256, "iv", 5),
            KBS_EXIT_JWE, "GCM");
    jwe_bad("jwe-tampered-encrypted-key", key_p256,
            jwe_flip(jwe_p256, "encrypted_key", 17), KBS_EXIT_JWE,
            "unwrap");
    jwe_bad("jwe-tampered-encrypted-key-p521", key_p521,
            jwe_flip(jwe_p521, "encrypted_key", 39), KBS_EXIT_JWE,
            "unwrap");
    jwe_bad("jwe-tampered-aad-member", key_p256,
            jwe_set(jwe_p256_aad, "aad", "ZXh0cmU"), KBS_EXIT_JWE, "GCM");
    jwe_bad("jwe-aad-member-not-base64url", key_p256,
            jwe_set(jwe_p256_aad, "aad", "ZXh0cmF"), KBS_EXIT_PROTOCOL,
            "aad");
    jwe_bad("jwe-aad-member-dropped", key_p256,
            jwe_set(jwe_p256_aad, "aad", NULL), KBS_EXIT_JWE, "GCM");
    jwe_bad("jwe-apu-dropped", key_p256, jwe_hdr(jwe_p256_apu, "apu", NULL),
            KBS_EXIT_JWE, "unwrap");
    jwe_bad("jwe-epk-off-curve", key_p256, jwe_hdr(jwe_p256, "epk.y!", NULL),
            KBS_EXIT_JWE, "not a point");
    jwe_bad("jwe-epk-off-curve-p521", key_p521,
            jwe_hdr(jwe_p521, "epk.y!", NULL), KBS_EXIT_JWE, "not a point");
    /* a valid point, but not the sender's: another ECDH result */
    {
        struct json_object *pk = json_tokener_parse(teepk_p256), *x, *y;
        char *a, *b;

        json_object_object_get_ex(pk, "x", &x);
        json_object_object_get_ex(pk, "y", &y);
        a = jwe_hdr(jwe_p256, "epk.x", json_object_get_string(x));
        b = jwe_hdr(a, "epk.y", json_object_get_string(y));
        free(a);
        jwe_bad("jwe-epk-other-point", key_p256, b, KBS_EXIT_JWE, "unwrap");
        json_object_put(pk);
    }
    jwe_bad("jwe-epk-wrong-curve", key_p256, strdup(jwe_p256_wrong_curve),
            KBS_EXIT_JWE, "curve");
    jwe_bad("jwe-p256-to-p521-key", key_p521, strdup(jwe_p256),
            KBS_EXIT_JWE, "curve");
    jwe_bad("jwe-epk-crv-relabelled", key_p256,
            jwe_hdr(jwe_p256, "epk.crv", "P-521"), KBS_EXIT_JWE, "curve");
    jwe_bad("jwe-epk-not-ec", key_p256, jwe_hdr(jwe_p256, "epk.kty", "OKP"),
            KBS_EXIT_JWE, "epk");
    jwe_bad("jwe-epk-missing", key_p256, jwe_hdr(jwe_p256, "epk", NULL),
            KBS_EXIT_JWE, "epk");
    jwe_bad("jwe-epk-x-short", key_p256, jwe_hdr(jwe_p256, "epk.x", "AAAA"),
            KBS_EXIT_JWE, "coordinates");
    jwe_bad("jwe-epk-x-padded", key_p256,
            jwe_hdr(jwe_p256, "epk.x",
                    "cQOjYbazOnoJ9Gg56f_TWS0VTkX9niAQEbAm0BZf6uQ="),
            KBS_EXIT_JWE, "coordinates");
    jwe_bad("jwe-alg-rsa", key_p256, jwe_hdr(jwe_p256, "alg", "RSA-OAEP-256"),
            KBS_EXIT_JWE, "alg");
    jwe_bad("jwe-alg-direct", key_p256, jwe_hdr(jwe_p256, "alg", "ECDH-ES"),
            KBS_EXIT_JWE, "alg");
    jwe_bad("jwe-enc-a128gcm", key_p256, jwe_hdr(jwe_p256, "enc", "A128GCM"),
            KBS_EXIT_JWE, "enc");
    jwe_bad("jwe-zip", key_p256, jwe_hdr(jwe_p256, "zip", "DEF"),
            KBS_EXIT_JWE, "zip");
    jwe_bad("jwe-iv-short", key_p256, jwe_set(jwe_p256, "iv", "AAAAAAAAAAAA"),
            KBS_EXIT_JWE, "size");
    jwe_bad("jwe-tag-short", key_p256, jwe_set(jwe_p256, "tag", "AAAA"),
            KBS_EXIT_JWE, "size");
    jwe_bad("jwe-encrypted-key-short", key_p256,
            jwe_set(jwe_p256, "encrypted_key", "AAAA"), KBS_EXIT_JWE,
            "size");
    jwe_bad("jwe-tag-padded", key_p256,
            jwe_set(jwe_p256, "tag", "o7N50pw7Y5aWwarSPpOW5A=="),
            KBS_EXIT_PROTOCOL, "tag");
    jwe_bad("jwe-tag-std-alphabet", key_p256,
            jwe_set(jwe_p256, "tag", "o7N50pw7Y5aWwarSPpOW+A"),
            KBS_EXIT_PROTOCOL, "tag");
    jwe_bad("jwe-no-ciphertext", key_p256,
            jwe_set(jwe_p256, "ciphertext", NULL), KBS_EXIT_PROTOCOL,
            "ciphertext");
    jwe_bad("jwe-no-protected", key_p256,
            jwe_set(jwe_p256, "protected", NULL), KBS_EXIT_PROTOCOL,
            "protected");
    jwe_bad("jwe-protected-not-json", key_p256,
            jwe_set(jwe_p256, "protected", "bm90IGpzb24"), KBS_EXIT_PROTOCOL,
            "protected header");
    jwe_bad("jwe-not-json", key_p256, strdup("<html>401</html>"),
            KBS_EXIT_PROTOCOL, "non-JSON");
    jwe_bad("jwe-array", key_p256, strdup("[1,2]"), KBS_EXIT_PROTOCOL,
            "object");

    /* NUL bytes inside the body are refused before parsing */
    ok = 1;
    k = load_key(key_p256);
    {
        char b[sizeof(jwe_p256) + 2];

        memcpy(b, jwe_p256, sizeof(jwe_p256));
        b[sizeof(jwe_p256) - 1] = 0;
        b[sizeof(jwe_p256)] = ' ';
        EXPECT(kbs_jwe_decrypt(k, (const uint8_t *)b, sizeof(jwe_p256) + 1,
                               &pt, &n, &why) == KBS_EXIT_PROTOCOL);
        memcpy(b, jwe_p256, sizeof(jwe_p256) - 1);
        b[sizeof(jwe_p256) - 1] = 'x';
        EXPECT(kbs_jwe_decrypt(k, (const uint8_t *)b, sizeof(jwe_p256),
                               &pt, &n, &why) == KBS_EXIT_PROTOCOL);
    }
    EVP_PKEY_free(k);
    report("jwe-body-nul-and-trailing-bytes", ok);
}

/* ------------------------------------------------------------------ */
/* The whole flow against an in-process device and KBS                 */
/* ------------------------------------------------------------------ */

#define IOBASE      COCA_DEFAULT_IOBASE
#define XBUF_LEN    (64u * 1024)
#define SESSION     42
#define RESOURCE    "default/sample/test"
#define SECRET      "the KBS secret, only ever seen in the guest"

enum scen {
    S_OK,
    S_CFG_PROTO,
    S_OPEN_BUSY,
    S_AUTH_TIMEOUT,
    S_AUTH_401,
    S_AUTH_GARBAGE,
    S_NONCE_BAD,
    S_TOKEN_MISSING,
    S_RES_401,
    S_RES_TAMPER,
    S_RES_NOT_JSON,
    S_RES_OTHER_KEY,
};

static struct {
    uint8_t page[COCA_PAGE_SIZE] __attribute__((aligned(4096)));
    uint8_t xbuf[XBUF_LEN] __attribute__((aligned(4096)));
    uint8_t resp[XBUF_LEN + 64];
    enum scen scen;
    uint32_t result;
    /* a forwarded request held back for delay polls */
    uint32_t delay, pend_polls;
    int pending;
    uint32_t status, len;
    /* the KBS */
    int opened, closed, auths, attests, resources;
    char nonce[64];
    char crv[8];
    EVP_PKEY *to;               /* the guest's tee-pubkey */
    char error[256];            /* the first check the fake saw fail */
} D;

static uint32_t r32(const uint8_t *p)
{
    return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t r16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static void w32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static void w16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void w64(uint8_t *p, uint64_t v)
{
    w32(p, (uint32_t)v);
    w32(p + 4, (uint32_t)(v >> 32));
}

static void fake_error(const char *fmt, ...)
{
    va_list ap;

    if (D.error[0]) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(D.error, sizeof(D.error), fmt, ap);
    va_end(ap);
}

/* base64 through OpenSSL's encoder, not the client's */
static char *t_b64(const uint8_t *p, size_t n, int url)
{
    char *s = malloc(4 * ((n + 2) / 3) + 1), *q;

    EVP_EncodeBlock((unsigned char *)s, p, (int)n);
    if (url) {
        for (q = s; *q; q++) {
            *q = *q == '+' ? '-' : *q == '/' ? '_' : *q;
        }
        q = strchr(s, '=');
        if (q) {
            *q = 0;
        }
    }
    return s;
}

static int t_unb64(const char *s, int url, uint8_t *out, size_t cap)
{
    size_t n = strlen(s), pad, i;
    char t[1024];
    int l;

    if (n + 4 >= sizeof(t)) {
        return -1;
    }
    memcpy(t, s, n);
    for (i = 0; url && i < n; i++) {
        t[i] = t[i] == '-' ? '+' : t[i] == '_' ? '/' : t[i];
    }
    while (n % 4) {
        t[n++] = '=';
    }
    t[n] = 0;
    pad = (n && t[n - 1] == '=') + (n > 1 && t[n - 2] == '=');
    if (3 * n / 4 > cap + 2) {
        return -1;
    }
    {
        uint8_t tmp[1024];

        l = EVP_DecodeBlock(tmp, (unsigned char *)t, (int)n);
        if (l < 0 || (size_t)l - pad > cap) {
            return -1;
        }
        memcpy(out, tmp, (size_t)l - pad);
    }
    return l - (int)pad;
}

static const char *jstr(struct json_object *o, const char *k)
{
    struct json_object *v;

    if (!o || !json_object_object_get_ex(o, k, &v) ||
        !json_object_is_type(v, json_type_string)) {
        return NULL;
    }
    return json_object_get_string(v);
}

static struct json_object *jobj(struct json_object *o, const char *k)
{
    struct json_object *v;

    if (!o || !json_object_object_get_ex(o, k, &v) ||
        !json_object_is_type(v, json_type_object)) {
        return NULL;
    }
    return v;
}

static EVP_PKEY *t_point(const char *crv, const char *x64, const char *y64)
{
    uint8_t pub[1 + 2 * 66];
    size_t c = !strcmp(crv, "P-256") ? 32 : 66;
    OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
    OSSL_PARAM *p = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    EVP_PKEY *k = NULL;

    pub[0] = 4;
    if (t_unb64(x64, 1, pub + 1, c) == (int)c &&
        t_unb64(y64, 1, pub + 1 + c, c) == (int)c &&
        OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME,
                                        (char *)crv, 0) &&
        OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, pub,
                                         1 + 2 * c) &&
        (p = OSSL_PARAM_BLD_to_param(b)) && EVP_PKEY_fromdata_init(ctx) == 1) {
        EVP_PKEY_fromdata(ctx, &k, EVP_PKEY_PUBLIC_KEY, p);
    }
    OSSL_PARAM_free(p);
    OSSL_PARAM_BLD_free(b);
    EVP_PKEY_CTX_free(ctx);
    return k;
}

/* A JWE to the guest's key, the way Trustee's KBS makes one */
static char *make_jwe(EVP_PKEY *to, const char *crv, const uint8_t *pt,
                      size_t n, int tamper)
{
    static const uint8_t oi[] = {
        0, 0, 0, 14, 'E', 'C', 'D', 'H', '-', 'E', 'S', '+', 'A', '2', '5',
        '6', 'K', 'W', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0,
    };
    EVP_PKEY *eph = EVP_EC_gen(crv);
    EVP_PKEY_CTX *dc = EVP_PKEY_CTX_new_from_pkey(NULL, eph, NULL);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    uint8_t z[66], kdf[4 + 66 + sizeof(oi)], kek[32], cek[32], ek[48];
    uint8_t iv[12], tag[16], xy[66], ct[256];
    size_t zl = sizeof(z), coord = !strcmp(crv, "P-256") ? 32 : 66;
    unsigned int kl;
    int l, l2;
    BIGNUM *bn = NULL;
    struct json_object *h = json_object_new_object();
    struct json_object *epk = json_object_new_object();
    struct json_object *j = json_object_new_object();
    char *s, *prot;

    EVP_PKEY_derive_init(dc);
    EVP_PKEY_derive_set_peer(dc, to);
    EVP_PKEY_derive(dc, z, &zl);
    memcpy(kdf, "\0\0\0\1", 4);
    memcpy(kdf + 4, z, zl);
    memcpy(kdf + 4 + zl, oi, sizeof(oi));
    EVP_Digest(kdf, 4 + zl + sizeof(oi), kek, &kl, EVP_sha256(), NULL);
    RAND_bytes(cek, sizeof(cek));
    RAND_bytes(iv, sizeof(iv));
    EVP_CIPHER_CTX_set_flags(c, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
    EVP_EncryptInit_ex(c, EVP_aes_256_wrap(), NULL, kek, NULL);
    EVP_EncryptUpdate(c, ek, &l, cek, 32);
    EVP_EncryptFinal_ex(c, ek + l, &l2);

    json_object_object_add(h, "alg", json_object_new_string("ECDH-ES+A256KW"));
    json_object_object_add(h, "enc", json_object_new_string("A256GCM"));
    json_object_object_add(epk, "crv", json_object_new_string(crv));
    json_object_object_add(epk, "kty", json_object_new_string("EC"));
    EVP_PKEY_get_bn_param(eph, OSSL_PKEY_PARAM_EC_PUB_X, &bn);
    BN_bn2binpad(bn, xy, (int)coord);
    BN_free(bn);
    bn = NULL;
    s = t_b64(xy, coord, 1);
    json_object_object_add(epk, "x", json_object_new_string(s));
    free(s);
    EVP_PKEY_get_bn_param(eph, OSSL_PKEY_PARAM_EC_PUB_Y, &bn);
    BN_bn2binpad(bn, xy, (int)coord);
    BN_free(bn);
    s = t_b64(xy, coord, 1);
    json_object_object_add(epk, "y", json_object_new_string(s));
    free(s);
    json_object_object_add(h, "epk", epk);
    s = (char *)json_object_to_json_string_ext(h, JSON_C_TO_STRING_PLAIN);
    prot = t_b64((const uint8_t *)s, strlen(s), 1);

    EVP_CIPHER_CTX_reset(c);
    EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, cek, iv);
    EVP_EncryptUpdate(c, NULL, &l, (const uint8_t *)prot, (int)strlen(prot));
    EVP_EncryptUpdate(c, ct, &l, pt, (int)n);
    EVP_EncryptFinal_ex(c, ct + l, &l2);
    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, tag);
    if (tamper) {
        tag[0] ^= 0x80;
    }
    json_object_object_add(j, "protected", json_object_new_string(prot));
    free(prot);
    s = t_b64(ek, 40, 1);
    json_object_object_add(j, "encrypted_key", json_object_new_string(s));
    free(s);
    s = t_b64(iv, 12, 1);
    json_object_object_add(j, "iv", json_object_new_string(s));
    free(s);
    s = t_b64(ct, n, 1);
    json_object_object_add(j, "ciphertext", json_object_new_string(s));
    free(s);
    s = t_b64(tag, 16, 1);
    json_object_object_add(j, "tag", json_object_new_string(s));
    free(s);
    s = strdup(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
    json_object_put(j);
    json_object_put(h);
    EVP_CIPHER_CTX_free(c);
    EVP_PKEY_CTX_free(dc);
    EVP_PKEY_free(eph);
    return s;
}

/* /kbs/v0/attest: check the evidence binds the nonce and the key */
static int kbs_attest(const char *body, char *out, size_t cap)
{
    struct json_object *a = json_tokener_parse(body);
    struct json_object *rt = jobj(a, "runtime-data");
    struct json_object *pk = jobj(rt, "tee-pubkey");
    struct json_object *ev = jobj(a, "tee-evidence");
    struct json_object *pe = jobj(ev, "primary_evidence");
    struct json_object *b, *bp;
    const char *rd = jstr(pe, "report_data"), *s;
    uint8_t want[48], got[64];
    unsigned int l;
    int http = 401;

    if (!pk || !rd || !jstr(rt, "nonce") || strcmp(jstr(rt, "nonce"), D.nonce)
        || !jstr(pe, "svn") || strcmp(jstr(pe, "svn"), "1") ||
        !jstr(ev, "additional_evidence") ||
        strcmp(jstr(ev, "additional_evidence"), "") ||
        !jstr(pk, "alg") || strcmp(jstr(pk, "alg"), "ECDH-ES+A256KW") ||
        !jstr(pk, "kty") || strcmp(jstr(pk, "kty"), "EC") ||
        !jstr(pk, "crv") || strcmp(jstr(pk, "crv"), D.crv) ||
        !jstr(pk, "x") || !jstr(pk, "y")) {
        fake_error("attest body: %s", body);
        goto out;
    }
    /* the binding, serialised here by json-c with sorted members */
    b = json_object_new_object();
    bp = json_object_new_object();
    json_object_object_add(bp, "alg", json_object_new_string(jstr(pk, "alg")));
    json_object_object_add(bp, "crv", json_object_new_string(jstr(pk, "crv")));
    json_object_object_add(bp, "kty", json_object_new_string(jstr(pk, "kty")));
    json_object_object_add(bp, "x", json_object_new_string(jstr(pk, "x")));
    json_object_object_add(bp, "y", json_object_new_string(jstr(pk, "y")));
    json_object_object_add(b, "additional-evidence",
                           json_object_new_string(""));
    json_object_object_add(b, "nonce", json_object_new_string(D.nonce));
    json_object_object_add(b, "tee-pubkey", bp);
    s = json_object_to_json_string_ext(b, JSON_C_TO_STRING_PLAIN |
                                          JSON_C_TO_STRING_NOSLASHESCAPE);
    EVP_Digest(s, strlen(s), want, &l, EVP_sha384(), NULL);
    json_object_put(b);
    if (t_unb64(rd, 0, got, sizeof(got)) != 48 || memcmp(got, want, 48) ||
        strlen(rd) != 64) {
        fake_error("report_data does not bind the nonce and tee-pubkey");
        goto out;
    }
    EVP_PKEY_free(D.to);
    D.to = t_point(D.crv, jstr(pk, "x"), jstr(pk, "y"));
    if (!D.to) {
        fake_error("tee-pubkey is not a point");
        goto out;
    }
    http = 200;
    snprintf(out, cap, D.scen == S_TOKEN_MISSING ? "{\"tok\":1}"
                                                 : "{\"token\":\"t.o.k\"}");
out:
    if (http != 200) {
        snprintf(out, cap, "{\"type\":\"https://github.com/"
                 "confidential-containers/kbs/errors/AttestationFailed\","
                 "\"detail\":\"Attestation failed\"}");
    }
    json_object_put(a);
    return http;
}

/* The KBS: fills body (NUL-terminated), returns the HTTP status */
static int kbs(uint16_t method, const char *path, const char *ct,
               const char *body, char *out, size_t cap, uint32_t *status)
{
    static const char auth[] =
        "{\"version\":\"0.4.0\",\"tee\":\"sample\",\"extra-params\":\"\"}";

    *status = COCA_STATUS_OK;
    out[0] = 0;
    if (!strcmp(path, "/kbs/v0/auth")) {
        uint8_t n[32];
        char *s;

        D.auths++;
        if (method != COCA_KBS_POST || strcmp(ct, "application/json") ||
            strcmp(body, auth)) {
            fake_error("auth request: %s %s", ct, body);
            return 400;
        }
        switch (D.scen) {
        case S_AUTH_TIMEOUT:
            *status = COCA_STATUS_KBS_TIMEOUT;
            return 0;
        case S_AUTH_401:
            snprintf(out, cap, "{\"type\":\"https://github.com/"
                     "confidential-containers/kbs/errors/PolicyDeny\","
                     "\"detail\":\"denied\\n by\\u0007policy\"}");
            return 401;
        case S_AUTH_GARBAGE:
            snprintf(out, cap, "<html>502 Bad Gateway</html>");
            return 200;
        case S_NONCE_BAD:
            snprintf(out, cap, "{\"nonce\":\"ab-_cd==\","
                     "\"extra-params\":\"\"}");
            return 200;
        default:
            break;
        }
        RAND_bytes(n, sizeof(n));
        s = t_b64(n, sizeof(n), 0);
        snprintf(D.nonce, sizeof(D.nonce), "%s", s);
        free(s);
        snprintf(out, cap, "{\"nonce\":\"%s\",\"extra-params\":\"\"}",
                 D.nonce);
        return 200;
    }
    if (!strcmp(path, "/kbs/v0/attest")) {
        D.attests++;
        if (method != COCA_KBS_POST || strcmp(ct, "application/json")) {
            fake_error("attest content type %s", ct);
            return 400;
        }
        return kbs_attest(body, out, cap);
    }
    if (!strcmp(path, "/kbs/v0/resource/" RESOURCE)) {
        char *j;

        D.resources++;
        if (method != COCA_KBS_GET || ct[0] || body[0]) {
            fake_error("resource request %u %s %s", method, ct, body);
            return 400;
        }
        if (!D.to || D.scen == S_RES_401) {
            return 401;
        }
        if (D.scen == S_RES_NOT_JSON) {
            snprintf(out, cap, "not json");
            return 200;
        }
        if (D.scen == S_RES_OTHER_KEY) {
            EVP_PKEY *other = EVP_EC_gen(D.crv);

            j = make_jwe(other, D.crv, (const uint8_t *)SECRET,
                         strlen(SECRET), 0);
            EVP_PKEY_free(other);
        } else {
            j = make_jwe(D.to, D.crv, (const uint8_t *)SECRET,
                         strlen(SECRET), D.scen == S_RES_TAMPER);
        }
        snprintf(out, cap, "%s", j);
        free(j);
        return 200;
    }
    fake_error("unexpected path %s", path);
    return 404;
}

static uint32_t serve(uint16_t op, const uint8_t *req, uint32_t req_len,
                      uint8_t *resp, uint32_t *len)
{
    *len = 0;
    switch (op) {
    case COCA_OP_NEGOTIATE:
        memset(resp, 0, 40);
        w16(resp, 1);
        w16(resp + 2, 1);
        w16(resp + 4, 1);
        w64(resp + 8, COCA_FEAT_ALL);
        w64(resp + 16, (r32(req + 8) | (uint64_t)r32(req + 12) << 32) &
                       COCA_FEAT_ALL);
        w32(resp + 24, XBUF_LEN);
        w32(resp + 28, COCA_INLINE_MAX);
        w32(resp + 32, 1);
        *len = 40;
        return COCA_STATUS_OK;
    case COCA_OP_KBS_CONFIG:
        memset(resp, 0, 296);
        strcpy((char *)resp, D.scen == S_CFG_PROTO ? "0.5.0" : "0.4.0");
        strcpy((char *)resp + 16, "http://127.0.0.1:8080");
        w32(resp + 272, 2);
        w32(resp + 276, 300);
        w32(resp + 280, 65536);
        w32(resp + 284, 65536);
        w32(resp + 288, 3000);
        *len = 296;
        return COCA_STATUS_OK;
    case COCA_OP_KBS_OPEN:
        if (D.scen == S_OPEN_BUSY) {
            return COCA_STATUS_BUSY;
        }
        D.opened++;
        w32(resp, SESSION);
        w32(resp + 4, 0);
        *len = 8;
        return COCA_STATUS_OK;
    case COCA_OP_KBS_CLOSE:
        if (req_len != 8 || r32(req) != SESSION || r32(req + 4)) {
            fake_error("close request");
            return COCA_STATUS_INVALID;
        }
        D.closed++;
        return COCA_STATUS_OK;
    case COCA_OP_KBS_FORWARD: {
        static char path[256], ct[128], body[XBUF_LEN], out[XBUF_LEN];
        uint32_t pl, cl, bl, st;
        int http;
        size_t ol;

        pl = r16(req + 6);
        cl = r16(req + 8);
        bl = r32(req + 12);
        if (req_len < 16 || req_len != 16 + pl + cl + bl ||
            r16(req + 10) || bl >= sizeof(body)) {
            fake_error("forward request layout");
            return COCA_STATUS_INVALID;
        }
        if (r32(req) != SESSION || D.opened == D.closed) {
            return COCA_STATUS_NO_SESSION;
        }
        memcpy(path, req + 16, pl);
        path[pl] = 0;
        memcpy(ct, req + 16 + pl, cl);
        ct[cl] = 0;
        memcpy(body, req + 16 + pl + cl, bl);
        body[bl] = 0;
        http = kbs(r16(req + 4), path, ct, body, out, sizeof(out), &st);
        if (st != COCA_STATUS_OK) {
            return st;
        }
        ol = strlen(out);
        w16(resp, (uint16_t)http);
        if (ol && http == 200) {
            w16(resp + 2, 16);
            memcpy(resp + 8, "application/json", 16);
            cl = 16;
        } else {
            w16(resp + 2, 0);   /* Trustee's errors have no content type */
            cl = 0;
        }
        w32(resp + 4, (uint32_t)ol);
        memcpy(resp + 8 + cl, out, ol);
        *len = 8 + cl + (uint32_t)ol;
        return COCA_STATUS_OK;
    }
    }
    return COCA_STATUS_UNSUPPORTED;
}

static void complete(void)
{
    uint8_t *h = D.page;
    int ext = r32(h + 8) & COCA_FLAG_EXT_BUF;

    if (D.status != COCA_STATUS_NO_SPACE) {
        memcpy(ext ? D.xbuf : D.page + COCA_HDR_SIZE, D.resp, D.len);
    }
    w32(h + 8, r32(h + 8) | COCA_FLAG_RESPONSE);
    w32(h + 24, D.len);
    w32(h + 16, D.status);
}

static void ring(void)
{
    uint8_t *h = D.page;
    int ext = r32(h + 8) & COCA_FLAG_EXT_BUF;
    uint32_t cap = ext ? r32(h + 40) : COCA_INLINE_MAX;
    uint16_t op = r16(h + 6);

    D.status = serve(op, ext ? D.xbuf : D.page + COCA_HDR_SIZE, r32(h + 20),
                     D.resp, &D.len);
    if (D.len > cap) {
        D.status = COCA_STATUS_NO_SPACE;
    }
    if (op == COCA_OP_KBS_FORWARD && D.delay) {
        /* completed off the vCPU, some polls later */
        D.pending = 1;
        D.pend_polls = D.delay;
        w32(h + 16, COCA_STATUS_PENDING);
        return;
    }
    complete();
}

static uint32_t d_inl(void *ctx, uint16_t port)
{
    (void)ctx;
    switch (port - IOBASE) {
    case COCA_REG_SIGNATURE:
        return COCA_SIGNATURE;
    case COCA_REG_VERSION:
        return 1u << 16;
    case COCA_REG_CMD:
        return D.result;
    }
    return 0;
}

static void d_outl(void *ctx, uint16_t port, uint32_t v)
{
    (void)ctx;
    if (port - IOBASE != COCA_REG_CMD) {
        return;
    }
    D.result = COCA_RES_OK;
    if (v == COCA_CMD_RING) {
        ring();
    }
}

static uint64_t d_now(void *ctx)
{
    struct timespec ts;

    (void)ctx;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void d_relax(void *ctx)
{
    kbs_relax(ctx);
    if (D.pending && --D.pend_polls == 0) {
        D.pending = 0;
        complete();
    }
}

/* Run `kbs get` with stdout and stderr captured into log */
static int run_get(enum scen scen, const struct kbs_get_opts *o, char *log,
                   size_t cap)
{
    struct coca_ops ops = {
        .inl = d_inl, .outl = d_outl, .now_us = d_now, .relax = d_relax,
        .page = D.page, .page_gpa = 0x10000, .buf = D.xbuf,
        .buf_gpa = 0x20000, .buf_len = XBUF_LEN,
    };
    struct coca_dev dev;
    FILE *tmp = tmpfile();
    int s1, s2, rc;
    size_t n;

    EVP_PKEY_free(D.to);
    memset(&D, 0, sizeof(D));
    D.scen = scen;
    strcpy(D.crv, o->curve ? o->curve : "P-256");
    if (coca_probe(&dev, &ops, IOBASE) ||
        coca_negotiate(&dev, COCA_FEAT_ALL)) {
        fclose(tmp);
        return -1;
    }
    D.delay = o->progress ? 200 : 3;
    fflush(stdout);
    fflush(stderr);
    s1 = dup(1);
    s2 = dup(2);
    dup2(fileno(tmp), 1);
    dup2(fileno(tmp), 2);
    rc = kbs_cmd_get(&dev, o);
    fflush(stdout);
    fflush(stderr);
    dup2(s1, 1);
    dup2(s2, 2);
    close(s1);
    close(s2);
    rewind(tmp);
    n = fread(log, 1, cap - 1, tmp);
    log[n] = 0;
    fclose(tmp);
    EVP_PKEY_free(D.to);
    D.to = NULL;
    /* the log as TAP comments */
    {
        char *l = log, *e;

        while (*l) {
            e = strchr(l, '\n');
            printf("#   %.*s\n", e ? (int)(e - l) : (int)strlen(l), l);
            if (!e) {
                break;
            }
            l = e + 1;
        }
    }
    if (D.error[0]) {
        printf("# the fake KBS saw: %s\n", D.error);
    }
    return rc;
}

static void flow_ok(const char *name, const char *curve, int progress)
{
    struct kbs_get_opts o = {
        .resource = RESOURCE, .curve = curve, .sha256 = 1,
        .progress = progress,
    };
    static char log[16384];
    char want[128];
    uint8_t md[32];
    unsigned int ml, i;
    int ok = 1;

    EXPECT(run_get(S_OK, &o, log, sizeof(log)) == KBS_EXIT_OK);
    EXPECT(!D.error[0]);
    EXPECT(D.opened == 1 && D.closed == 1 && D.auths == 1 &&
           D.attests == 1 && D.resources == 1);
    EXPECT(strstr(log, "kbs: auth 200\n"));
    EXPECT(strstr(log, "kbs: attest 200 (token 5 bytes)\n"));
    EXPECT(strstr(log, "kbs: resource 200\n"));
    EVP_Digest(SECRET, strlen(SECRET), md, &ml, EVP_sha256(), NULL);
    strcpy(want, "kbs secret sha256=");
    for (i = 0; i < ml; i++) {
        sprintf(want + strlen(want), "%02x", md[i]);
    }
    sprintf(want + strlen(want), " (%zu bytes)\n", strlen(SECRET));
    EXPECT(strstr(log, want));
    /* with --sha256 the secret itself is never printed */
    EXPECT(!strstr(log, SECRET));
    if (progress) {
        const char *p = strstr(log, "kbs: progress baseline=");
        double base = 0, pend = 0, ratio = 0;
        unsigned long waited = 0;

        EXPECT(p && sscanf(p, "kbs: progress baseline=%lf pending=%lf "
                           "ratio=%lf waited_ms=%lu", &base, &pend, &ratio,
                           &waited) == 4);
        EXPECT(base > 0 && pend > 0 && ratio > 0.2 && waited >= 100);
    } else {
        EXPECT(!strstr(log, "kbs: progress"));
    }
    report(name, ok);
}

static void flow_bad(const char *name, enum scen scen, const char *resource,
                     int want, const char *msg)
{
    struct kbs_get_opts o = {
        .resource = resource, .curve = "P-256", .sha256 = 1,
    };
    static char log[16384];
    int ok = 1, rc;

    rc = run_get(scen, &o, log, sizeof(log));
    EXPECT(rc == want);
    EXPECT(strstr(log, msg));
    EXPECT(!strstr(log, "kbs secret"));
    EXPECT(D.opened == D.closed);   /* closed on every path */
    EXPECT(!D.error[0]);
    report(name, ok);
}

static void test_flow(void)
{
    struct kbs_get_opts o = { .resource = RESOURCE, .curve = "P-256" };
    static char log[16384];
    char path[] = "/tmp/test-kbs-client-XXXXXX";
    int ok, fd;

    flow_ok("flow-p256", "P-256", 0);
    flow_ok("flow-p521", "P-521", 0);
    flow_ok("flow-progress", "P-256", 1);

    /* the secret to stdout, or to a file */
    ok = 1;
    EXPECT(run_get(S_OK, &o, log, sizeof(log)) == 0);
    EXPECT(strstr(log, "kbs: resource 200\nkbs: forward_us auth="));
    EXPECT(strstr(log, " total=") && strstr(log, "\n" SECRET));
    report("flow-secret-to-stdout", ok);
    ok = 1;
    fd = mkstemp(path);
    close(fd);
    o.out = path;
    EXPECT(run_get(S_OK, &o, log, sizeof(log)) == 0);
    EXPECT(!strstr(log, SECRET));
    {
        char b[128] = "";
        FILE *f = fopen(path, "r");
        size_t n = f ? fread(b, 1, sizeof(b) - 1, f) : 0;

        b[n] = 0;
        EXPECT(!strcmp(b, SECRET));
        if (f) {
            fclose(f);
        }
    }
    unlink(path);
    report("flow-secret-to-file", ok);

    flow_bad("flow-host-protocol-version", S_CFG_PROTO, RESOURCE,
             KBS_EXIT_DEVICE, "kbs: the host speaks KBS protocol 0.5.0");
    flow_bad("flow-no-free-session", S_OPEN_BUSY, RESOURCE, KBS_EXIT_DEVICE,
             "kbs: open: BUSY\n");
    flow_bad("flow-kbs-timeout", S_AUTH_TIMEOUT, RESOURCE, KBS_EXIT_DEVICE,
             "kbs: /kbs/v0/auth: KBS_TIMEOUT\n");
    flow_bad("flow-http-error-information", S_AUTH_401, RESOURCE,
             KBS_EXIT_HTTP, "kbs: /kbs/v0/auth: HTTP 401: https://github.com/"
             "confidential-containers/kbs/errors/PolicyDeny: denied? by?"
             "policy\n");
    flow_bad("flow-auth-garbage", S_AUTH_GARBAGE, RESOURCE,
             KBS_EXIT_PROTOCOL,
             "kbs: /kbs/v0/auth: the KBS answered a non-JSON body\n");
    flow_bad("flow-nonce-not-base64", S_NONCE_BAD, RESOURCE,
             KBS_EXIT_PROTOCOL, "nonce is not standard base64");
    flow_bad("flow-no-token", S_TOKEN_MISSING, RESOURCE, KBS_EXIT_PROTOCOL,
             "kbs: /kbs/v0/attest: the answer has no \"token\"");
    flow_bad("flow-resource-401", S_RES_401, RESOURCE, KBS_EXIT_HTTP,
             "kbs: /kbs/v0/resource/" RESOURCE ": HTTP 401\n");
    flow_bad("flow-resource-tampered", S_RES_TAMPER, RESOURCE, KBS_EXIT_JWE,
             "kbs: /kbs/v0/resource/" RESOURCE ": the JWE does not decrypt");
    flow_bad("flow-resource-other-key", S_RES_OTHER_KEY, RESOURCE,
             KBS_EXIT_JWE, "does not unwrap");
    flow_bad("flow-resource-not-json", S_RES_NOT_JSON, RESOURCE,
             KBS_EXIT_PROTOCOL, "the KBS answered a non-JSON body");
    flow_bad("flow-bad-resource-two-segments", S_OK, "a/b", KBS_EXIT_USAGE,
             "REPO/TYPE/TAG");
    flow_bad("flow-bad-resource-dotdot", S_OK, "a/../b", KBS_EXIT_USAGE,
             "REPO/TYPE/TAG");
    flow_bad("flow-bad-resource-query", S_OK, "a/b/c?x=1", KBS_EXIT_USAGE,
             "REPO/TYPE/TAG");
}

int main(void)
{
    printf("# KBS client\n");
    test_base64();
    test_binding("binding-p256", key_p256, teepk_p256, nonce_p256,
                 binding_p256, rd_p256);
    test_binding("binding-p521", key_p521, teepk_p521, nonce_p521,
                 binding_p521, rd_p521);
    test_jcs_escaping();
    test_jwe();
    test_flow();
    return tap_end();
}
