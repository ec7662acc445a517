/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * libFuzzer target: what the Linux guest tool does with a KBS's answers,
 * which reach it through an untrusted host: the JSON parser, base64 and
 * base64url decoding, and JWE decryption (ECDH-ES+A256KW, A256GCM) with a
 * fixed P-256 tee key.  The first byte picks the parser.
 */

#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "kbs-client.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* the tee key of the seed corpus's JWEs (test-kbs-client's vectors) */
static const char tee_key_pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgvcqXqixP0IcwP0BV\n"
    "pHOAFf9Uj6fDF1tfbq43GCXjCKShRANCAAQAtE8ZhVQod2oD85hEwQ0CLFv9fY7M\n"
    "LKGwhcedV6hV2HYP0aLZxZ+PvnUKM6qgX5HdBeUwkuMBNqRsbQKmN5Dc\n"
    "-----END PRIVATE KEY-----\n";
static EVP_PKEY *tee_key;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    BIO *b = BIO_new_mem_buf(tee_key_pem, -1);

    (void)argc;
    (void)argv;
    tee_key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (!tee_key) {
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *why = NULL;
    uint8_t *out = NULL;
    size_t out_len = 0;
    struct json_object *o;
    char *s;

    if (size < 1 || size > 256 * 1024) {
        return 0;
    }
    switch (data[0] % 4) {
    case 0:
        if (kbs_jwe_decrypt(tee_key, data + 1, size - 1, &out, &out_len,
                            &why) == KBS_EXIT_OK) {
            OPENSSL_cleanse(out, out_len);
            free(out);
        }
        break;
    case 1:
        o = kbs_json_parse(data + 1, size - 1);
        json_object_put(o);
        break;
    case 2:
        if (kbs_b64_decode((const char *)data + 1, size - 1, data[0] & 4,
                           &out, &out_len) == 0) {
            free(out);
        }
        break;
    default:
        s = strndup((const char *)data + 1, size - 1);
        if (s) {
            kbs_resource_ok(s);
            free(s);
        }
        break;
    }
    return 0;
}
