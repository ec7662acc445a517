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
#define QEMU_XMLNS  "http://libvirt.org/schemas/domain/qemu/1.0"

typedef struct CocaDomain {
    char *uuid;
    char *name;
    gboolean has_identity;
    CocaClaims claims;
    gid_t dac_gid;              /* from <seclabel model='dac'>, or -1 */
    char *schema_why;           /* why the metadata fails the schema */
    /* from <qemu:commandline> */
    GPtrArray *ca_dirs;         /* dir= of each -object coco-attest-ca */
    guint n_devices;            /* -device coco-attest */
    char *cmdline_hazard;       /* an option that could undo the checks */
} CocaDomain;

/*
 * Parse the domain XML.  Returns FALSE with a reason for XML that is
 * broken, carries a DTD (<!DOCTYPE>, hence any entity declaration:
 * libvirt never writes one), has metadata that is invalid, or a
 * coco-attest argument in <qemu:commandline> the hook cannot read;
 * domains without coco-attest metadata parse fine with has_identity
 * FALSE.  Metadata that does not follow the shipped RelaxNG schema
 * (docs/schemas/coco-attest-domain.rng, built in) parses, with the reason
 * in schema_why: callers refuse it after coca_claims_validate(), whose
 * messages are more precise.  *d is filled in part on failure:
 * coca_domain_clear() it in every case.
 */
gboolean coca_domain_parse(const char *xml, gsize len, CocaDomain *d,
                           char **why);
void coca_domain_clear(CocaDomain *d);

/*
 * The dir= of a "-object coco-attest-ca,..." argument in QEMU's key=value
 * syntax (",," is a comma), "" when it has none, or NULL when the
 * argument is not a coco-attest-ca.  *unreadable is set for a JSON
 * object naming coco-attest-ca, which the hook does not parse.
 */
char *coca_cmdline_ca_dir(const char *arg, gboolean *unreadable);
/* whether a -device argument is coco-attest (key=value or JSON) */
gboolean coca_cmdline_is_device(const char *arg);

/*
 * The domain XML with the <qemu:commandline> arguments coco-attest needs
 * for instance directory <instance_root>/<uuid>: -object coco-attest-ca
 * and -device coco-attest, replacing any earlier ones (a copy of another
 * domain's included).  NULL with a reason for XML that does not parse
 * or has no <uuid> (a domain libvirt has not defined yet).
 */
char *coca_domain_add_device(const char *xml, gsize len,
                             const char *instance_root, char **why);

/* 36 characters of hex digits and dashes */
gboolean coca_uuid_ok(const char *u);

#endif
