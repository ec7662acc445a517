/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The libvirt domain XML as the coco-attest hook reads it.
 */

#ifndef COCO_ATTEST_HOOK_DOMAIN_H
#define COCO_ATTEST_HOOK_DOMAIN_H

#include <sys/types.h>
#include <glib.h>

#include "provision.h"

#define COCA_XMLNS  "https://coco-attest.invalid/xmlns/domain/1"

typedef struct CocaDomain {
    char *uuid;
    char *name;
    gboolean has_identity;
    CocaClaims claims;
    gid_t dac_gid;              /* from <seclabel model='dac'>, or -1 */
} CocaDomain;

/*
 * Parse the domain XML.  Returns FALSE with a reason for XML that is
 * broken, carries a DTD (<!DOCTYPE>, hence any entity declaration:
 * libvirt never writes one) or has invalid metadata; domains without
 * coco-attest metadata parse fine with has_identity FALSE.  Claims are
 * not validated here: coca_claims_validate() does that.  *d is filled
 * in part on failure: coca_domain_clear() it in every case.
 */
gboolean coca_domain_parse(const char *xml, gsize len, CocaDomain *d,
                           char **why);
void coca_domain_clear(CocaDomain *d);

/* 36 characters of hex digits and dashes */
gboolean coca_uuid_ok(const char *u);

#endif
