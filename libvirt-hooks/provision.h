/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * coco-attest host-side provisioning: the host CA and per-instance
 * identity directories.  Shared by the coco-attest-provision CLI and the
 * libvirt hook.
 *
 * An instance directory holds everything QEMU's coco-attest-ca backend
 * needs for one VM, and nothing more:
 *
 *   identity.conf   the claims and the certificate profile (GKeyFile):
 *                   [identity] project-id, project-number, zone,
 *                   instance-name, instance-id, and vm-uuid, the UUID of
 *                   the VM the directory is for (optional: QEMU refuses
 *                   the directory for a machine with another -uuid; when
 *                   absent, an instance-id that is a UUID binds instead);
 *                   [profile] oid, gce, validity-hours; [ek] rekey
 *   issuer.key      the per-instance issuing key (PKCS#8 PEM, EC P-256)
 *   issuer.crt      its certificate from the host CA: carries the
 *                   identity, CA:TRUE with pathlen 0, short validity
 *   chain.pem       issuer.crt then the host CA certificate
 *   root.crt        the host CA certificate (the trust anchor)
 *   ek-template.crt the EK certificate profile, as a certificate for a
 *                   throwaway key: QEMU copies its profile extensions
 *                   when it issues the real EK certificate
 *   ek/             persistent EK state, kept across re-provisioning:
 *                   ek-<nvindex>.crt (DER), ek-<nvindex>.pub (DER SPKI)
 *                   and ek-<nvindex>.chain.pem, the chain it was issued
 *                   under (the issuing certificate is renewed at every
 *                   start, the EK certificate is not)
 *
 * The host CA key never goes into an instance directory.
 *
 * Renewal (coca_renew) re-issues issuer.crt for the same issuer.key, and
 * rewrites chain.pem and root.crt, while QEMU runs: each is replaced by
 * a rename, and QEMU's backend notices the new files at its next
 * certification request and loads them if they certify the same
 * identity.  identity.conf, ek-template.crt and ek/ are left as they are.
 */

#ifndef COCO_ATTEST_PROVISION_H
#define COCO_ATTEST_PROVISION_H

#include <glib.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * The project's OID arc, under the unregistered UUID arc 2.25 (X.667):
 * 2.25.<UUID 00000000-0000-0000-1e4c-5a3d7f1b2c86>.  A UUID from the full
 * 128-bit range would be the textbook choice, but GnuTLS on Debian 12
 * (libtasn1 4.19) rejects certificates with OID arcs above 2^64 -- and
 * QEMU's backend and certtool must parse these certificates -- so the
 * UUID keeps 61 random bits below 2^63.  Operators with their own arc
 * configure it with --oid.
 */
#define COCA_OID_ARC            "2.25.2183219139539840134"
/* the default instance-identity extension OID */
#define COCA_OID_IDENTITY       COCA_OID_ARC ".1"
/* Google's GCE instance-info extension (go-tpm-tools) */
#define COCA_OID_GCE            "1.3.6.1.4.1.11129.2.1.21"

#define COCA_IDENTITY_FILE      "identity.conf"
#define COCA_ISSUER_KEY_FILE    "issuer.key"
#define COCA_ISSUER_CRT_FILE    "issuer.crt"
#define COCA_CHAIN_FILE         "chain.pem"
#define COCA_ROOT_FILE          "root.crt"
#define COCA_EK_TEMPLATE_FILE   "ek-template.crt"
#define COCA_EK_DIR             "ek"

typedef struct CocaClaims {
    char *project_id;
    uint64_t project_number;
    char *zone;
    char *instance_name;
    char *instance_id;          /* a UUID or a decimal number */
    char *vm_uuid;              /* the VM's UUID (QEMU -uuid), or NULL */
    char *oid;                  /* identity extension OID */
    gboolean gce;               /* also emit the GCE extension */
    gboolean ek_rekey;          /* allow a different EK later */
    unsigned validity_hours;    /* issuing certificate lifetime */
} CocaClaims;

typedef struct CocaCa {
    char *cert_path;
    char *key_uri;              /* a PEM path or an OpenSSL store URI */
} CocaCa;

void coca_claims_clear(CocaClaims *c);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(CocaClaims, coca_claims_clear)

/* Check claims for completeness and sane values. */
gboolean coca_claims_validate(const CocaClaims *c, GError **errp);

/* Read identity.conf from an instance directory. */
gboolean coca_claims_load(const char *instance_dir, CocaClaims *c,
                          GError **errp);

/* Create a host CA: ca.key (0600) and ca.crt in ca_dir. */
gboolean coca_ca_init(const char *ca_dir, const char *cn, unsigned days,
                      GError **errp);

/*
 * Provision (or re-provision) an instance directory.  The persistent EK
 * state is kept; everything else is replaced atomically.  With gid >= 0
 * the directory becomes root:gid 0750 and its files 0640, so that a QEMU
 * running in that group can read them and nothing else can.  With
 * ek_pub_path, the EK certificate for that public key (DER or PEM SPKI)
 * is issued now for NV index ek_nv.
 */
gboolean coca_provision(const CocaCa *ca, const char *instance_dir,
                        const CocaClaims *claims, gid_t gid,
                        const char *ek_pub_path, uint32_t ek_nv,
                        GError **errp);

/*
 * Renew the issuing certificate of a provisioned instance directory, which
 * a running QEMU may be using: a new issuer.crt for the same issuer.key and
 * claims, valid for validity_hours (0: identity.conf's validity-hours), from
 * the host CA, with chain.pem and root.crt to match; each file replaced
 * atomically, with the mode and group it had.  The claims, the EK profile
 * and the EK state are kept.
 */
gboolean coca_renew(const CocaCa *ca, const char *instance_dir,
                    unsigned validity_hours, GError **errp);

/* Check an instance directory: files, chain, validity, claims. */
gboolean coca_verify(const char *instance_dir, const char *ca_cert,
                     GError **errp);

/* Remove the transient parts (keep_ek) or everything. */
gboolean coca_purge(const char *instance_dir, gboolean keep_ek,
                    GError **errp);

#endif
