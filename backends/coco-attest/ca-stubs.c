/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * coco-attest-ca for builds without GnuTLS: the object type does not
 * exist, so none of these can be reached.
 */

#include "qemu/osdep.h"
#include "system/coco-attest-ca.h"

const CocoAttestClaims *coco_attest_ca_claims(CocoAttestCa *ca)
{
    g_assert_not_reached();
}

int64_t coco_attest_ca_not_after(CocoAttestCa *ca)
{
    g_assert_not_reached();
}

bool coco_attest_ca_take_token(CocoAttestCa *ca)
{
    g_assert_not_reached();
}

CocoAttestCaResult coco_attest_ca_certify_csr(CocoAttestCa *ca,
                                              const uint8_t *csr,
                                              size_t len, GPtrArray **certs,
                                              char **why)
{
    g_assert_not_reached();
}

CocoAttestCaResult coco_attest_ca_certify_ek(CocoAttestCa *ca, uint32_t nv,
                                             CocoAttestKeyFormat format,
                                             const uint8_t *key, size_t len,
                                             GPtrArray **certs, char **why)
{
    g_assert_not_reached();
}

CocoAttestCaResult coco_attest_ca_certify_tpm_ak(CocoAttestCa *ca,
                                                 const uint8_t *buf,
                                                 size_t len,
                                                 const uint8_t *nonce,
                                                 size_t nonce_len,
                                                 GPtrArray **certs,
                                                 char **why)
{
    g_assert_not_reached();
}

CocoAttestCaResult coco_attest_ca_ek_cert(CocoAttestCa *ca, uint32_t nv,
                                          GPtrArray **certs)
{
    g_assert_not_reached();
}
