/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * coco-attest host-side provisioning (see provision.h), on OpenSSL 3.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <openssl/asn1t.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/store.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "provision.h"

#define PROVISION_ERROR (g_quark_from_static_string("coca-provision"))

/* ------------------------------------------------------------------ */
/* ASN.1: the instance identity extension and the TCG EK attributes    */
/* ------------------------------------------------------------------ */

/*
 * CocoAttestInstanceIdentity ::= SEQUENCE {
 *     version        INTEGER,          -- 1
 *     projectId      UTF8String,
 *     projectNumber  INTEGER,
 *     zone           UTF8String,
 *     instanceName   UTF8String,
 *     instanceId     UTF8String }
 */
typedef struct {
    ASN1_INTEGER *version;
    ASN1_UTF8STRING *project_id;
    ASN1_INTEGER *project_number;
    ASN1_UTF8STRING *zone;
    ASN1_UTF8STRING *instance_name;
    ASN1_UTF8STRING *instance_id;
} COCA_IDENTITY;

DECLARE_ASN1_FUNCTIONS(COCA_IDENTITY)
ASN1_SEQUENCE(COCA_IDENTITY) = {
    ASN1_SIMPLE(COCA_IDENTITY, version, ASN1_INTEGER),
    ASN1_SIMPLE(COCA_IDENTITY, project_id, ASN1_UTF8STRING),
    ASN1_SIMPLE(COCA_IDENTITY, project_number, ASN1_INTEGER),
    ASN1_SIMPLE(COCA_IDENTITY, zone, ASN1_UTF8STRING),
    ASN1_SIMPLE(COCA_IDENTITY, instance_name, ASN1_UTF8STRING),
    ASN1_SIMPLE(COCA_IDENTITY, instance_id, ASN1_UTF8STRING),
} ASN1_SEQUENCE_END(COCA_IDENTITY)
IMPLEMENT_ASN1_FUNCTIONS(COCA_IDENTITY)

/*
 * Google's GCE instance-info extension (go-tpm-tools server/verify.go),
 * so that existing verifiers read the identity unchanged:
 *
 * GCEInstanceInfo ::= SEQUENCE {
 *     zone               UTF8String,
 *     projectNumber      INTEGER,
 *     projectId          UTF8String,
 *     instanceId         INTEGER,
 *     instanceName       UTF8String,
 *     securityProperties [0] EXPLICIT SEQUENCE {
 *         securityVersion [0] EXPLICIT INTEGER OPTIONAL,
 *         isProduction    [1] EXPLICIT BOOLEAN OPTIONAL } OPTIONAL }
 */
typedef struct {
    ASN1_INTEGER *security_version;
    ASN1_BOOLEAN is_production;
} COCA_GCE_SECURITY;

DECLARE_ASN1_FUNCTIONS(COCA_GCE_SECURITY)
ASN1_SEQUENCE(COCA_GCE_SECURITY) = {
    ASN1_EXP_OPT(COCA_GCE_SECURITY, security_version, ASN1_INTEGER, 0),
    ASN1_EXP_OPT(COCA_GCE_SECURITY, is_production, ASN1_BOOLEAN, 1),
} ASN1_SEQUENCE_END(COCA_GCE_SECURITY)
IMPLEMENT_ASN1_FUNCTIONS(COCA_GCE_SECURITY)

typedef struct {
    ASN1_UTF8STRING *zone;
    ASN1_INTEGER *project_number;
    ASN1_UTF8STRING *project_id;
    ASN1_INTEGER *instance_id;
    ASN1_UTF8STRING *instance_name;
    COCA_GCE_SECURITY *security;
} COCA_GCE_INFO;

DECLARE_ASN1_FUNCTIONS(COCA_GCE_INFO)
ASN1_SEQUENCE(COCA_GCE_INFO) = {
    ASN1_SIMPLE(COCA_GCE_INFO, zone, ASN1_UTF8STRING),
    ASN1_SIMPLE(COCA_GCE_INFO, project_number, ASN1_INTEGER),
    ASN1_SIMPLE(COCA_GCE_INFO, project_id, ASN1_UTF8STRING),
    ASN1_SIMPLE(COCA_GCE_INFO, instance_id, ASN1_INTEGER),
    ASN1_SIMPLE(COCA_GCE_INFO, instance_name, ASN1_UTF8STRING),
    ASN1_EXP_OPT(COCA_GCE_INFO, security, COCA_GCE_SECURITY, 0),
} ASN1_SEQUENCE_END(COCA_GCE_INFO)
IMPLEMENT_ASN1_FUNCTIONS(COCA_GCE_INFO)

/* TPMSpecification ::= SEQUENCE { family UTF8String, level INTEGER,
 *                                 revision INTEGER } */
typedef struct {
    ASN1_UTF8STRING *family;
    ASN1_INTEGER *level;
    ASN1_INTEGER *revision;
} COCA_TPM_SPEC;

DECLARE_ASN1_FUNCTIONS(COCA_TPM_SPEC)
ASN1_SEQUENCE(COCA_TPM_SPEC) = {
    ASN1_SIMPLE(COCA_TPM_SPEC, family, ASN1_UTF8STRING),
    ASN1_SIMPLE(COCA_TPM_SPEC, level, ASN1_INTEGER),
    ASN1_SIMPLE(COCA_TPM_SPEC, revision, ASN1_INTEGER),
} ASN1_SEQUENCE_END(COCA_TPM_SPEC)
IMPLEMENT_ASN1_FUNCTIONS(COCA_TPM_SPEC)

/* SubjectDirectoryAttributes ::= SEQUENCE SIZE (1..MAX) OF Attribute */
typedef STACK_OF(X509_ATTRIBUTE) COCA_SDA;
DECLARE_ASN1_FUNCTIONS(COCA_SDA)
ASN1_ITEM_TEMPLATE(COCA_SDA) =
    ASN1_EX_TEMPLATE_TYPE(ASN1_TFLG_SEQUENCE_OF, 0, attrs, X509_ATTRIBUTE)
ASN1_ITEM_TEMPLATE_END(COCA_SDA)
IMPLEMENT_ASN1_FUNCTIONS(COCA_SDA)

/* TCG OIDs */
#define TCG_TPM_MANUFACTURER    "2.23.133.2.1"
#define TCG_TPM_MODEL           "2.23.133.2.2"
#define TCG_TPM_VERSION         "2.23.133.2.3"
#define TCG_TPM_SPECIFICATION   "2.23.133.2.16"
#define TCG_KP_EK_CERTIFICATE   "2.23.133.8.1"

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static gboolean ssl_fail(GError **errp, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "unknown OpenSSL error";

    if (e) {
        ERR_error_string_n(e, buf, sizeof(buf));
    }
    ERR_clear_error();
    g_set_error(errp, PROVISION_ERROR, 1, "%s: %s", what, buf);
    return FALSE;
}

static gboolean id_chars_ok(const char *s, const char *extra)
{
    if (!s || !*s || strlen(s) > 128) {
        return FALSE;
    }
    for (; *s; s++) {
        if (!g_ascii_isalnum(*s) && !strchr(extra, *s)) {
            return FALSE;
        }
    }
    return TRUE;
}

void coca_claims_clear(CocaClaims *c)
{
    g_free(c->project_id);
    g_free(c->zone);
    g_free(c->instance_name);
    g_free(c->instance_id);
    g_free(c->vm_uuid);
    g_free(c->oid);
    memset(c, 0, sizeof(*c));
}

/* 8-4-4-4-12 hexadecimal digits, either case */
static gboolean is_uuid(const char *s)
{
    int i;

    if (!s || strlen(s) != 36) {
        return FALSE;
    }
    for (i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23 ? s[i] != '-'
                                                    : !g_ascii_isxdigit(s[i])) {
            return FALSE;
        }
    }
    return TRUE;
}

gboolean coca_claims_validate(const CocaClaims *c, GError **errp)
{
    ASN1_OBJECT *obj;

    if (!id_chars_ok(c->project_id, "-_.:")) {
        g_set_error(errp, PROVISION_ERROR, 1, "project-id must be 1-128 "
                    "characters of [A-Za-z0-9-_.:]");
        return FALSE;
    }
    if (!id_chars_ok(c->zone, "-_.")) {
        g_set_error(errp, PROVISION_ERROR, 1,
                    "zone must be 1-128 characters of [A-Za-z0-9-_.]");
        return FALSE;
    }
    if (!id_chars_ok(c->instance_name, "-_.")) {
        g_set_error(errp, PROVISION_ERROR, 1, "instance-name must be 1-128 "
                    "characters of [A-Za-z0-9-_.]");
        return FALSE;
    }
    if (!id_chars_ok(c->instance_id, "-")) {
        g_set_error(errp, PROVISION_ERROR, 1, "instance-id must be a UUID or "
                    "a number (1-128 characters of [A-Za-z0-9-])");
        return FALSE;
    }
    if (c->vm_uuid && !is_uuid(c->vm_uuid)) {
        g_set_error(errp, PROVISION_ERROR, 1, "the VM UUID '%s' is not a "
                    "UUID (8-4-4-4-12 hexadecimal digits)", c->vm_uuid);
        return FALSE;
    }
    if (c->oid) {
        obj = OBJ_txt2obj(c->oid, 1);
        if (!obj) {
            ERR_clear_error();
            g_set_error(errp, PROVISION_ERROR, 1,
                        "identity OID '%s' is not a dotted OID", c->oid);
            return FALSE;
        }
        ASN1_OBJECT_free(obj);
    }
    if (c->gce) {
        const char *p = c->instance_id;

        while (g_ascii_isdigit(*p)) {
            p++;
        }
        if (*p || strlen(c->instance_id) > 19) {
            g_set_error(errp, PROVISION_ERROR, 1, "the GCE profile needs a "
                        "numeric instance-id (at most 19 digits)");
            return FALSE;
        }
    }
    if (c->validity_hours < 1 || c->validity_hours > 24 * 366) {
        g_set_error(errp, PROVISION_ERROR, 1,
                    "validity must be between 1 hour and 366 days");
        return FALSE;
    }
    return TRUE;
}

gboolean coca_claims_load(const char *instance_dir, CocaClaims *c,
                          GError **errp)
{
    g_autofree char *path = g_build_filename(instance_dir,
                                             COCA_IDENTITY_FILE, NULL);
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autofree char *num = NULL;
    char *end;

    memset(c, 0, sizeof(*c));
    if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, errp)) {
        g_prefix_error(errp, "%s: ", path);
        return FALSE;
    }
    c->project_id = g_key_file_get_string(kf, "identity", "project-id",
                                          NULL);
    num = g_key_file_get_string(kf, "identity", "project-number", NULL);
    c->zone = g_key_file_get_string(kf, "identity", "zone", NULL);
    c->instance_name = g_key_file_get_string(kf, "identity",
                                             "instance-name", NULL);
    c->instance_id = g_key_file_get_string(kf, "identity", "instance-id",
                                           NULL);
    c->vm_uuid = g_key_file_get_string(kf, "identity", "vm-uuid", NULL);
    c->oid = g_key_file_get_string(kf, "profile", "oid", NULL);
    c->gce = g_key_file_get_boolean(kf, "profile", "gce", NULL);
    c->ek_rekey = g_key_file_get_boolean(kf, "ek", "rekey", NULL);
    c->validity_hours = g_key_file_get_integer(kf, "profile",
                                               "validity-hours", NULL);
    if (!num || !g_ascii_isdigit(*num) ||
        (errno = 0, c->project_number = g_ascii_strtoull(num, &end, 10),
         errno || *end)) {
        g_set_error(errp, PROVISION_ERROR, 1,
                    "%s: project-number is missing or not a number", path);
        return FALSE;
    }
    if (!coca_claims_validate(c, errp)) {
        g_prefix_error(errp, "%s: ", path);
        return FALSE;
    }
    return TRUE;
}

static char *claims_to_keyfile(const CocaClaims *c)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autofree char *num = g_strdup_printf("%" G_GUINT64_FORMAT,
                                           c->project_number);

    g_key_file_set_comment(kf, NULL, NULL,
                           " coco-attest instance identity: written by "
                           "coco-attest-provision, read by QEMU's\n"
                           " coco-attest-ca backend.  Do not edit: "
                           "re-provision instead.", NULL);
    g_key_file_set_string(kf, "identity", "project-id", c->project_id);
    g_key_file_set_string(kf, "identity", "project-number", num);
    g_key_file_set_string(kf, "identity", "zone", c->zone);
    g_key_file_set_string(kf, "identity", "instance-name", c->instance_name);
    g_key_file_set_string(kf, "identity", "instance-id", c->instance_id);
    if (c->vm_uuid) {
        g_autofree char *uuid = g_ascii_strdown(c->vm_uuid, -1);

        /* not a claim: QEMU checks it against its -uuid */
        g_key_file_set_string(kf, "identity", "vm-uuid", uuid);
    }
    g_key_file_set_string(kf, "profile", "oid",
                          c->oid ? c->oid : COCA_OID_IDENTITY);
    g_key_file_set_boolean(kf, "profile", "gce", c->gce);
    g_key_file_set_integer(kf, "profile", "validity-hours",
                           c->validity_hours);
    g_key_file_set_boolean(kf, "ek", "rekey", c->ek_rekey);
    return g_key_file_to_data(kf, NULL, NULL);
}

/* DER of the identity extension value */
static unsigned char *identity_der(const CocaClaims *c, int *len)
{
    COCA_IDENTITY *id = COCA_IDENTITY_new();
    unsigned char *der = NULL;

    if (!id ||
        !ASN1_INTEGER_set(id->version, 1) ||
        !ASN1_STRING_set(id->project_id, c->project_id, -1) ||
        !ASN1_INTEGER_set_uint64(id->project_number, c->project_number) ||
        !ASN1_STRING_set(id->zone, c->zone, -1) ||
        !ASN1_STRING_set(id->instance_name, c->instance_name, -1) ||
        !ASN1_STRING_set(id->instance_id, c->instance_id, -1)) {
        COCA_IDENTITY_free(id);
        return NULL;
    }
    *len = i2d_COCA_IDENTITY(id, &der);
    COCA_IDENTITY_free(id);
    return *len > 0 ? der : NULL;
}

static gboolean add_ext_der(X509 *crt, const char *oid, int critical,
                            const unsigned char *der, int len)
{
    ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
    ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
    X509_EXTENSION *ext = NULL;
    gboolean ok = FALSE;

    if (obj && os && ASN1_OCTET_STRING_set(os, der, len)) {
        ext = X509_EXTENSION_create_by_OBJ(NULL, obj, critical, os);
        ok = ext && X509_add_ext(crt, ext, -1);
    }
    X509_EXTENSION_free(ext);
    ASN1_OCTET_STRING_free(os);
    ASN1_OBJECT_free(obj);
    return ok;
}

static gboolean add_ext_conf(X509 *crt, X509 *issuer, int nid,
                             const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;
    gboolean ok;

    X509V3_set_ctx(&ctx, issuer, crt, NULL, NULL, 0);
    ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
    ok = ext && X509_add_ext(crt, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

/* DER of the GCE instance-info extension (instance-id must be numeric) */
static unsigned char *gce_der(const CocaClaims *c, int *len)
{
    COCA_GCE_INFO *g = COCA_GCE_INFO_new();
    unsigned char *der = NULL;
    uint64_t id = g_ascii_strtoull(c->instance_id, NULL, 10);

    if (!g ||
        !ASN1_STRING_set(g->zone, c->zone, -1) ||
        !ASN1_INTEGER_set_uint64(g->project_number, c->project_number) ||
        !ASN1_STRING_set(g->project_id, c->project_id, -1) ||
        !ASN1_INTEGER_set_uint64(g->instance_id, id) ||
        !ASN1_STRING_set(g->instance_name, c->instance_name, -1) ||
        !(g->security = COCA_GCE_SECURITY_new())) {
        COCA_GCE_INFO_free(g);
        return NULL;
    }
    ASN1_INTEGER_free(g->security->security_version);
    g->security->security_version = NULL;
    /* go-tpm-tools reads the extension only from production instances */
    g->security->is_production = 0xff;
    *len = i2d_COCA_GCE_INFO(g, &der);
    COCA_GCE_INFO_free(g);
    return *len > 0 ? der : NULL;
}

/* The identity: our extension, optionally GCE's, and a SPIFFE-style URI */
static gboolean add_identity(X509 *crt, X509 *issuer, const CocaClaims *c)
{
    g_autofree char *uri = NULL;
    unsigned char *der;
    int len = 0;
    gboolean ok;

    der = identity_der(c, &len);
    if (!der) {
        return FALSE;
    }
    ok = add_ext_der(crt, c->oid ? c->oid : COCA_OID_IDENTITY, 0, der, len);
    OPENSSL_free(der);
    if (ok && c->gce) {
        der = gce_der(c, &len);
        ok = der && add_ext_der(crt, COCA_OID_GCE, 0, der, len);
        OPENSSL_free(der);
    }
    uri = g_strdup_printf("URI:spiffe://%s/coco-attest/%s/%s/%s",
                          c->project_id, c->zone, c->instance_name,
                          c->instance_id);
    return ok && add_ext_conf(crt, issuer, NID_subject_alt_name, uri);
}

static gboolean set_serial_and_validity(X509 *crt, long not_after_s)
{
    unsigned char rnd[16];
    BIGNUM *bn;
    ASN1_INTEGER *serial;
    gboolean ok;

    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        return FALSE;
    }
    rnd[0] &= 0x7f;             /* positive, 127 bits of entropy */
    rnd[0] |= 0x40;             /* and always 16 bytes long */
    bn = BN_bin2bn(rnd, sizeof(rnd), NULL);
    serial = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
    ok = serial && X509_set_serialNumber(crt, serial) &&
         X509_gmtime_adj(X509_getm_notBefore(crt), -300) &&
         X509_gmtime_adj(X509_getm_notAfter(crt), not_after_s);
    ASN1_INTEGER_free(serial);
    BN_free(bn);
    return ok;
}

static EVP_PKEY *load_key(const char *uri, GError **errp)
{
    OSSL_STORE_CTX *st;
    EVP_PKEY *pkey = NULL;
    g_autofree char *u = NULL;

    /* a URI (pkcs11:..., file:///...) goes as is, a path made absolute */
    {
        const char *scheme = g_uri_peek_scheme(uri);

        u = scheme && strlen(scheme) > 1 ? g_strdup(uri)
                                         : g_canonicalize_filename(uri, NULL);
        if (u[0] == '/' && access(u, R_OK) < 0) {
            g_set_error(errp, PROVISION_ERROR, 1, "%s: %s", uri,
                        g_strerror(errno));
            return NULL;
        }
    }
    st = OSSL_STORE_open(u, NULL, NULL, NULL, NULL);
    if (!st) {
        ssl_fail(errp, uri);
        return NULL;
    }
    while (!pkey && !OSSL_STORE_eof(st)) {
        OSSL_STORE_INFO *info = OSSL_STORE_load(st);

        if (info && OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY) {
            pkey = OSSL_STORE_INFO_get1_PKEY(info);
        }
        OSSL_STORE_INFO_free(info);
        if (!info && OSSL_STORE_error(st)) {
            break;
        }
    }
    OSSL_STORE_close(st);
    if (!pkey) {
        ssl_fail(errp, uri);
        g_prefix_error(errp, "no private key in ");
    }
    return pkey;
}

static X509 *load_cert(const char *path, GError **errp)
{
    FILE *f = fopen(path, "r");
    X509 *x;

    if (!f) {
        g_set_error(errp, PROVISION_ERROR, 1, "%s: %s", path,
                    g_strerror(errno));
        return NULL;
    }
    x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (!x) {
        ssl_fail(errp, path);
    }
    return x;
}

static char *pem_of_cert(X509 *x)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data = NULL, *out = NULL;
    long n;

    if (b && PEM_write_bio_X509(b, x)) {
        n = BIO_get_mem_data(b, &data);
        out = g_strndup(data, n);
    }
    BIO_free(b);
    return out;
}

/*
 * Write a file with a mode.  With WRITE_ATOMIC it goes through a temporary
 * and a rename, so a reader sees the old or the new content; with
 * WRITE_DURABLE it is fsync'd first.  Files in a private staging directory
 * need neither: the directory itself is renamed into place.
 */
enum {
    WRITE_ATOMIC = 1,
    WRITE_DURABLE = 2,
};

static gboolean write_file(const char *dir, const char *name,
                           const void *data, gsize len, mode_t mode,
                           gid_t gid, int flags, GError **errp)
{
    g_autofree char *path = g_build_filename(dir, name, NULL);
    g_autofree char *tmp = NULL;
    const char *p = data;
    int fd;

    if (flags & WRITE_ATOMIC) {
        tmp = g_strdup_printf("%s.tmp-XXXXXX", path);
        fd = g_mkstemp_full(tmp, O_WRONLY | O_CLOEXEC, mode);
    } else {
        tmp = g_strdup(path);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    }
    if (fd < 0) {
        g_set_error(errp, PROVISION_ERROR, 1, "%s: %s", tmp,
                    g_strerror(errno));
        return FALSE;
    }
    while (len) {
        ssize_t n = write(fd, p, len);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            goto fail;
        }
        p += n;
        len -= n;
    }
    if (fchmod(fd, mode) < 0 ||
        (gid != (gid_t)-1 && fchown(fd, 0, gid) < 0) ||
        ((flags & WRITE_DURABLE) && fsync(fd) < 0)) {
        goto fail;
    }
    if (close(fd) < 0) {
        fd = -1;
        goto fail;
    }
    if ((flags & WRITE_ATOMIC) && rename(tmp, path) < 0) {
        g_set_error(errp, PROVISION_ERROR, 1, "%s: %s", path,
                    g_strerror(errno));
        unlink(tmp);
        return FALSE;
    }
    return TRUE;

fail:
    g_set_error(errp, PROVISION_ERROR, 1, "%s: %s", tmp, g_strerror(errno));
    if (fd >= 0) {
        close(fd);
    }
    unlink(tmp);
    return FALSE;
}

/* make the renames into a directory durable */
static gboolean sync_dir(const char *path, GError **errp)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0 || fsync(fd) < 0) {
        g_set_error(errp, PROVISION_ERROR, 1, "%s: %s", path,
                    g_strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return FALSE;
    }
    close(fd);
    return TRUE;
}

static gboolean make_dir(const char *path, mode_t mode, gid_t gid,
                         GError **errp)
{
    if (g_mkdir_with_parents(path, mode) < 0 || chmod(path, mode) < 0 ||
        (gid != (gid_t)-1 && chown(path, 0, gid) < 0)) {
        g_set_error(errp, PROVISION_ERROR, 1, "%s: %s", path,
                    g_strerror(errno));
        return FALSE;
    }
    return TRUE;
}

/* rename dir_from/name to dir_to/name */
static gboolean move_in(const char *from_dir, const char *name,
                        const char *to_dir, GError **errp)
{
    g_autofree char *from = g_build_filename(from_dir, name, NULL);
    g_autofree char *to = g_build_filename(to_dir, name, NULL);

    if (rename(from, to) < 0) {
        g_set_error(errp, PROVISION_ERROR, 1, "%s: %s", to,
                    g_strerror(errno));
        return FALSE;
    }
    return TRUE;
}

/*
 * Lock an instance directory against a concurrent provision, renew or
 * purge (a renewal timer firing as the domain starts, say): an open
 * descriptor holding flock(LOCK_EX), or -1 with errp set.
 */
static int lock_dir(const char *path, GError **errp)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    while (fd >= 0 && flock(fd, LOCK_EX) < 0) {
        if (errno != EINTR) {
            close(fd);
            fd = -1;
        }
    }
    if (fd < 0) {
        g_set_error(errp, PROVISION_ERROR, 1, "%s: %s", path,
                    g_strerror(errno));
    }
    return fd;
}

/* Remove a directory of plain files and subdirectories we created. */
static void remove_tree(const char *path)
{
    g_autoptr(GDir) d = g_dir_open(path, 0, NULL);
    const char *n;

    while (d && (n = g_dir_read_name(d))) {
        g_autofree char *p = g_build_filename(path, n, NULL);

        if (g_file_test(p, G_FILE_TEST_IS_DIR) &&
            !g_file_test(p, G_FILE_TEST_IS_SYMLINK)) {
            remove_tree(p);
        } else {
            unlink(p);
        }
    }
    rmdir(path);
}

/* ------------------------------------------------------------------ */
/* Host CA                                                             */
/* ------------------------------------------------------------------ */

gboolean coca_ca_init(const char *ca_dir, const char *cn, unsigned days,
                      GError **errp)
{
    g_autofree char *key_path = g_build_filename(ca_dir, "ca.key", NULL);
    g_autofree char *pem = NULL;
    EVP_PKEY *key = NULL;
    X509 *crt = NULL;
    X509_NAME *name;
    BIO *b = NULL;
    char *kdata;
    long klen;
    gboolean ok = FALSE;

    g_autofree char *crt_path = g_build_filename(ca_dir, "ca.crt", NULL);

    /* a ca.crt alone may be the anchor of a key kept in an HSM */
    if (g_file_test(key_path, G_FILE_TEST_EXISTS) ||
        g_file_test(crt_path, G_FILE_TEST_EXISTS)) {
        g_set_error(errp, PROVISION_ERROR, 1, "%s exists: refusing to "
                    "overwrite a CA",
                    g_file_test(key_path, G_FILE_TEST_EXISTS) ? key_path :
                    crt_path);
        return FALSE;
    }
    if (!make_dir(ca_dir, 0700, (gid_t)-1, errp)) {
        return FALSE;
    }
    key = EVP_EC_gen("P-384");
    crt = X509_new();
    if (!key || !crt || !X509_set_version(crt, 2) ||
        !set_serial_and_validity(crt, (long)days * 86400) ||
        !X509_set_pubkey(crt, key)) {
        ssl_fail(errp, "creating the CA");
        goto out;
    }
    name = X509_get_subject_name(crt);
    if (!X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                                    (const unsigned char *)"coco-attest",
                                    -1, -1, 0) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                    (const unsigned char *)cn, -1, -1, 0) ||
        !X509_set_issuer_name(crt, name) ||
        !add_ext_conf(crt, crt, NID_basic_constraints, "critical,CA:TRUE") ||
        !add_ext_conf(crt, crt, NID_key_usage,
                      "critical,keyCertSign,cRLSign") ||
        !add_ext_conf(crt, crt, NID_subject_key_identifier, "hash") ||
        !X509_sign(crt, key, EVP_sha384())) {
        ssl_fail(errp, "creating the CA certificate");
        goto out;
    }
    b = BIO_new(BIO_s_mem());
    if (!b || !PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL)) {
        ssl_fail(errp, "encoding the CA key");
        goto out;
    }
    klen = BIO_get_mem_data(b, &kdata);
    pem = pem_of_cert(crt);
    ok = write_file(ca_dir, "ca.key", kdata, klen, 0600, (gid_t)-1,
                    WRITE_ATOMIC | WRITE_DURABLE, errp) &&
         write_file(ca_dir, "ca.crt", pem, strlen(pem), 0644, (gid_t)-1,
                    WRITE_ATOMIC | WRITE_DURABLE, errp);
out:
    BIO_free(b);
    X509_free(crt);
    EVP_PKEY_free(key);
    return ok;
}

/* ------------------------------------------------------------------ */
/* Certificates                                                        */
/* ------------------------------------------------------------------ */

static X509 *issue_issuer(X509 *ca_crt, EVP_PKEY *ca_key, EVP_PKEY *key,
                          const CocaClaims *c, GError **errp)
{
    X509 *crt = X509_new();
    X509_NAME *name;
    g_autofree char *cn = g_strdup_printf("%s issuing CA", c->instance_name);

    if (!crt || !X509_set_version(crt, 2) ||
        !set_serial_and_validity(crt, (long)c->validity_hours * 3600) ||
        !X509_set_pubkey(crt, key) ||
        !X509_set_issuer_name(crt, X509_get_subject_name(ca_crt))) {
        goto fail;
    }
    name = X509_get_subject_name(crt);
    if (!X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                                    (const unsigned char *)c->project_id,
                                    -1, -1, 0) ||
        !X509_NAME_add_entry_by_txt(name, "OU", MBSTRING_UTF8,
                                    (const unsigned char *)c->zone,
                                    -1, -1, 0) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                    (const unsigned char *)cn, -1, -1, 0) ||
        !X509_NAME_add_entry_by_txt(name, "serialNumber", MBSTRING_UTF8,
                                    (const unsigned char *)c->instance_id,
                                    -1, -1, 0) ||
        /* may sign end-entity certificates only */
        !add_ext_conf(crt, ca_crt, NID_basic_constraints,
                      "critical,CA:TRUE,pathlen:0") ||
        !add_ext_conf(crt, ca_crt, NID_key_usage,
                      "critical,keyCertSign,cRLSign") ||
        !add_ext_conf(crt, ca_crt, NID_subject_key_identifier, "hash") ||
        !add_ext_conf(crt, ca_crt, NID_authority_key_identifier,
                      "keyid:always") ||
        !add_identity(crt, ca_crt, c) ||
        !X509_sign(crt, ca_key, EVP_sha384())) {
        goto fail;
    }
    return crt;
fail:
    ssl_fail(errp, "issuing the instance certificate");
    X509_free(crt);
    return NULL;
}

/*
 * An EK certificate per the TCG EK Credential Profile: empty subject,
 * critical SAN with the TPM manufacturer/model/version, the TPM
 * specification in subjectDirectoryAttributes, CA:FALSE, the EK EKU, key
 * usage by key type, and the instance identity.
 */
static X509 *issue_ek(X509 *issuer, EVP_PKEY *issuer_key, EVP_PKEY *ek,
                      const CocaClaims *c, GError **errp)
{
    X509 *crt = X509_new();
    X509_NAME *dn = X509_NAME_new();
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    GENERAL_NAME *gen = GENERAL_NAME_new();
    COCA_TPM_SPEC *spec = COCA_TPM_SPEC_new();
    COCA_SDA *sda = sk_X509_ATTRIBUTE_new_null();
    X509_ATTRIBUTE *attr = NULL;
    ASN1_STRING *spec_seq = NULL;
    unsigned char *der = NULL;
    int len;
    gboolean rsa = EVP_PKEY_is_a(ek, "RSA");

    if (!crt || !dn || !gens || !gen || !spec || !sda ||
        !X509_set_version(crt, 2) ||
        /* the EK lives as long as the TPM: no well-defined expiry */
        !set_serial_and_validity(crt, 0) ||
        !ASN1_TIME_set_string(X509_getm_notAfter(crt), "99991231235959Z") ||
        !X509_set_pubkey(crt, ek) ||
        !X509_set_issuer_name(crt, X509_get_subject_name(issuer))) {
        goto fail;
    }
    /* SAN: DirName { manufacturer "id:434F4341" (COCA), model, version } */
    if (!X509_NAME_add_entry_by_txt(dn, TCG_TPM_MANUFACTURER, MBSTRING_UTF8,
                                    (const unsigned char *)"id:434F4341",
                                    -1, -1, 0) ||
        !X509_NAME_add_entry_by_txt(dn, TCG_TPM_MODEL, MBSTRING_UTF8,
                                    (const unsigned char *)"coco-attest vTPM",
                                    -1, -1, 0) ||
        !X509_NAME_add_entry_by_txt(dn, TCG_TPM_VERSION, MBSTRING_UTF8,
                                    (const unsigned char *)"id:00010000",
                                    -1, -1, 0)) {
        goto fail;
    }
    gen->type = GEN_DIRNAME;
    gen->d.directoryName = dn;
    dn = NULL;
    if (!sk_GENERAL_NAME_push(gens, gen)) {
        goto fail;
    }
    gen = NULL;
    if (!X509_add1_ext_i2d(crt, NID_subject_alt_name, gens, 1, 0)) {
        goto fail;
    }
    /* subjectDirectoryAttributes: tpmSpecification 2.0, level 0, rev 138 */
    if (!ASN1_STRING_set(spec->family, "2.0", -1) ||
        !ASN1_INTEGER_set(spec->level, 0) ||
        !ASN1_INTEGER_set(spec->revision, 138)) {
        goto fail;
    }
    len = i2d_COCA_TPM_SPEC(spec, &der);
    spec_seq = ASN1_STRING_type_new(V_ASN1_SEQUENCE);
    if (len <= 0 || !spec_seq || !ASN1_STRING_set(spec_seq, der, len)) {
        goto fail;
    }
    attr = X509_ATTRIBUTE_create(OBJ_txt2nid(TCG_TPM_SPECIFICATION) !=
                                 NID_undef ? OBJ_txt2nid(TCG_TPM_SPECIFICATION)
                                 : OBJ_create(TCG_TPM_SPECIFICATION,
                                              "tpmSpecification",
                                              "TPM Specification"),
                                 V_ASN1_SEQUENCE, spec_seq);
    spec_seq = NULL;
    OPENSSL_free(der);
    der = NULL;
    if (!attr || !sk_X509_ATTRIBUTE_push(sda, attr)) {
        goto fail;
    }
    attr = NULL;
    len = i2d_COCA_SDA(sda, &der);
    if (len <= 0 || !add_ext_der(crt, "2.5.29.9", 0, der, len)) {
        goto fail;
    }
    if (!add_ext_conf(crt, issuer, NID_basic_constraints,
                      "critical,CA:FALSE") ||
        !add_ext_conf(crt, issuer, NID_key_usage,
                      rsa ? "critical,keyEncipherment"
                          : "critical,keyAgreement") ||
        !add_ext_conf(crt, issuer, NID_ext_key_usage,
                      TCG_KP_EK_CERTIFICATE) ||
        !add_ext_conf(crt, issuer, NID_authority_key_identifier,
                      "keyid:always")) {
        goto fail;
    }
    /* identity: the extensions only (the SAN is the TPM's DirName) */
    OPENSSL_free(der);
    der = identity_der(c, &len);
    if (!der || !add_ext_der(crt, c->oid ? c->oid : COCA_OID_IDENTITY, 0,
                             der, len)) {
        goto fail;
    }
    if (c->gce) {
        OPENSSL_free(der);
        der = gce_der(c, &len);
        if (!der || !add_ext_der(crt, COCA_OID_GCE, 0, der, len)) {
            goto fail;
        }
    }
    if (!X509_sign(crt, issuer_key, EVP_sha256())) {
        goto fail;
    }
    OPENSSL_free(der);
    sk_X509_ATTRIBUTE_pop_free(sda, X509_ATTRIBUTE_free);
    COCA_TPM_SPEC_free(spec);
    GENERAL_NAMES_free(gens);
    return crt;

fail:
    ssl_fail(errp, "issuing the EK certificate");
    OPENSSL_free(der);
    ASN1_STRING_free(spec_seq);
    X509_ATTRIBUTE_free(attr);
    sk_X509_ATTRIBUTE_pop_free(sda, X509_ATTRIBUTE_free);
    COCA_TPM_SPEC_free(spec);
    GENERAL_NAME_free(gen);
    GENERAL_NAMES_free(gens);
    X509_NAME_free(dn);
    X509_free(crt);
    return NULL;
}

static EVP_PKEY *load_pubkey(const char *path, GError **errp)
{
    g_autofree char *data = NULL;
    gsize len;
    const unsigned char *p;
    EVP_PKEY *pk = NULL;
    BIO *b;

    if (!g_file_get_contents(path, &data, &len, errp)) {
        return NULL;
    }
    p = (const unsigned char *)data;
    pk = d2i_PUBKEY(NULL, &p, len);
    if (!pk) {
        ERR_clear_error();
        b = BIO_new_mem_buf(data, len);
        pk = b ? PEM_read_bio_PUBKEY(b, NULL, NULL, NULL) : NULL;
        BIO_free(b);
    }
    if (!pk) {
        ssl_fail(errp, path);
        g_prefix_error(errp, "not a public key (DER or PEM SPKI): ");
    }
    return pk;
}

/* The host CA: its certificate and its key, which must match */
static gboolean load_ca(const CocaCa *ca, X509 **crt, EVP_PKEY **key,
                        GError **errp)
{
    *crt = load_cert(ca->cert_path, errp);
    if (!*crt) {
        return FALSE;
    }
    *key = load_key(ca->key_uri, errp);
    if (!*key) {
        return FALSE;
    }
    if (X509_check_private_key(*crt, *key) != 1) {
        ERR_clear_error();
        g_set_error(errp, PROVISION_ERROR, 1, "the CA key does not match "
                    "%s", ca->cert_path);
        return FALSE;
    }
    if (X509_cmp_current_time(X509_get0_notAfter(*crt)) <= 0) {
        g_set_error(errp, PROVISION_ERROR, 1, "the CA certificate %s has "
                    "expired", ca->cert_path);
        return FALSE;
    }
    return TRUE;
}

/* ------------------------------------------------------------------ */
/* Instance directories                                                */
/* ------------------------------------------------------------------ */

gboolean coca_provision(const CocaCa *ca, const char *dir,
                        const CocaClaims *claims, gid_t gid,
                        const char *ek_pub_path, uint32_t ek_nv,
                        GError **errp)
{
    g_autofree char *ek_dir = g_build_filename(dir, COCA_EK_DIR, NULL);
    g_autofree char *identity = NULL;
    g_autofree char *issuer_pem = NULL, *root_pem = NULL, *chain = NULL;
    g_autofree char *tmpl_pem = NULL, *stage = NULL;
    g_autofree char *ek_crt_name = NULL, *ek_pub_name = NULL;
    g_autofree char *ek_chain_name = NULL;
    gboolean created = FALSE;
    EVP_PKEY *ca_key = NULL, *key = NULL, *ek = NULL, *tmpl_key = NULL;
    X509 *ca_crt = NULL, *crt = NULL, *ek_crt = NULL, *tmpl = NULL;
    BIO *b = NULL;
    char *kdata;
    long klen;
    mode_t dmode = gid != (gid_t)-1 ? 0750 : 0700;
    mode_t fmode = gid != (gid_t)-1 ? 0640 : 0600;
    gboolean ok = FALSE;
    int lock = -1;

    if (!coca_claims_validate(claims, errp)) {
        return FALSE;
    }
    if (!load_ca(ca, &ca_crt, &ca_key, errp)) {
        goto out;
    }
    key = EVP_EC_gen("P-256");
    if (!key) {
        ssl_fail(errp, "generating the issuing key");
        goto out;
    }
    crt = issue_issuer(ca_crt, ca_key, key, claims, errp);
    if (!crt) {
        goto out;
    }
    if (ek_pub_path) {
        ek = load_pubkey(ek_pub_path, errp);
        if (!ek) {
            goto out;
        }
        ek_crt = issue_ek(crt, key, ek, claims, errp);
        if (!ek_crt) {
            goto out;
        }
    }
    /*
     * The EK profile for QEMU, which issues EK certificates at first boot
     * and has no ASN.1 encoder: a certificate for a throwaway key whose
     * profile extensions it copies.
     */
    tmpl_key = EVP_EC_gen("P-256");
    tmpl = tmpl_key ? issue_ek(crt, key, tmpl_key, claims, errp) : NULL;
    if (!tmpl) {
        goto out;
    }

    /*
     * Every file is written in a staging directory first and only then
     * renamed into place, so that a failure (a full disk, say) leaves the
     * previous instance untouched and no half-written one.  The instance
     * files are transient: libvirt's prepare hook writes them again at every
     * start, so only the persistent EK state is fsync'd (six fsyncs were
     * most of the hook's cost).
     */
    created = !g_file_test(dir, G_FILE_TEST_IS_DIR);
    /* QEMU's group writes the EK state it creates at first boot */
    if (!make_dir(dir, dmode, gid, errp) ||
        (lock = lock_dir(dir, errp)) < 0 ||
        !make_dir(ek_dir, gid != (gid_t)-1 ? 02770 : 0700, gid, errp)) {
        goto out;
    }
    stage = g_build_filename(dir, ".provision-XXXXXX", NULL);
    if (!g_mkdtemp_full(stage, 0700)) {
        g_set_error(errp, PROVISION_ERROR, 1, "%s: %s", stage,
                    g_strerror(errno));
        g_clear_pointer(&stage, g_free);
        goto out;
    }
    b = BIO_new(BIO_s_mem());
    if (!b || !PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL)) {
        ssl_fail(errp, "encoding the issuing key");
        goto out;
    }
    klen = BIO_get_mem_data(b, &kdata);
    identity = claims_to_keyfile(claims);
    issuer_pem = pem_of_cert(crt);
    root_pem = pem_of_cert(ca_crt);
    tmpl_pem = pem_of_cert(tmpl);
    chain = g_strconcat(issuer_pem, root_pem, NULL);
    if (!write_file(stage, COCA_IDENTITY_FILE, identity, strlen(identity),
                    fmode, gid, 0, errp) ||
        !write_file(stage, COCA_ROOT_FILE, root_pem, strlen(root_pem), fmode,
                    gid, 0, errp) ||
        !write_file(stage, COCA_EK_TEMPLATE_FILE, tmpl_pem, strlen(tmpl_pem),
                    fmode, gid, 0, errp) ||
        !write_file(stage, COCA_CHAIN_FILE, chain, strlen(chain), fmode, gid,
                    0, errp) ||
        !write_file(stage, COCA_ISSUER_CRT_FILE, issuer_pem,
                    strlen(issuer_pem), fmode, gid, 0, errp) ||
        !write_file(stage, COCA_ISSUER_KEY_FILE, kdata, klen, fmode, gid, 0,
                    errp)) {
        goto out;
    }
    if (ek_crt) {
        unsigned char *der = NULL, *pub = NULL;
        int dlen = i2d_X509(ek_crt, &der);
        int plen = i2d_PUBKEY(ek, &pub);

        ek_crt_name = g_strdup_printf("ek-%08x.crt", ek_nv);
        ek_pub_name = g_strdup_printf("ek-%08x.pub", ek_nv);
        ek_chain_name = g_strdup_printf("ek-%08x.chain.pem", ek_nv);
        ok = dlen > 0 && plen > 0 &&
             write_file(stage, ek_chain_name, chain, strlen(chain), fmode,
                        gid, WRITE_DURABLE, errp) &&
             write_file(stage, ek_pub_name, pub, plen, fmode, gid,
                        WRITE_DURABLE, errp) &&
             write_file(stage, ek_crt_name, der, dlen, fmode, gid,
                        WRITE_DURABLE, errp);
        OPENSSL_free(der);
        OPENSSL_free(pub);
        if (!ok) {
            goto out;
        }
        ok = FALSE;
    }
    /* all written: move into place, the key last (it completes the set) */
    {
        static const char *const order[] = {
            COCA_IDENTITY_FILE, COCA_ROOT_FILE, COCA_EK_TEMPLATE_FILE,
            COCA_CHAIN_FILE, COCA_ISSUER_CRT_FILE, COCA_ISSUER_KEY_FILE,
        };
        size_t i;

        for (i = 0; i < G_N_ELEMENTS(order); i++) {
            if (!move_in(stage, order[i], dir, errp)) {
                goto out;
            }
        }
        if (ek_crt && (!move_in(stage, ek_chain_name, ek_dir, errp) ||
                       !move_in(stage, ek_crt_name, ek_dir, errp) ||
                       !move_in(stage, ek_pub_name, ek_dir, errp) ||
                       !sync_dir(ek_dir, errp))) {
            goto out;
        }
    }
    ok = TRUE;
out:
    if (stage) {
        remove_tree(stage);
    }
    if (!ok && created) {
        remove_tree(dir);
    }
    if (lock >= 0) {
        close(lock);
    }
    BIO_free(b);
    X509_free(tmpl);
    X509_free(ek_crt);
    X509_free(crt);
    X509_free(ca_crt);
    EVP_PKEY_free(tmpl_key);
    EVP_PKEY_free(ek);
    EVP_PKEY_free(key);
    EVP_PKEY_free(ca_key);
    return ok;
}

gboolean coca_renew(const CocaCa *ca, const char *dir, unsigned hours,
                    GError **errp)
{
    g_autofree char *crt_path = g_build_filename(dir, COCA_ISSUER_CRT_FILE,
                                                 NULL);
    g_autofree char *key_path = g_build_filename(dir, COCA_ISSUER_KEY_FILE,
                                                 NULL);
    g_autofree char *issuer_pem = NULL, *root_pem = NULL, *chain = NULL;
    g_autofree char *stage = NULL;
    g_auto(CocaClaims) claims = { 0 };
    EVP_PKEY *ca_key = NULL, *key = NULL;
    X509 *ca_crt = NULL, *old = NULL, *crt = NULL;
    const char *missing;
    struct stat st;
    gid_t gid = (gid_t)-1;
    gboolean ok = FALSE;
    int lock;

    if (!g_file_test(dir, G_FILE_TEST_IS_DIR)) {
        g_set_error(errp, PROVISION_ERROR, 1, "%s: no such instance "
                    "directory (provision it first)", dir);
        return FALSE;
    }
    lock = lock_dir(dir, errp);
    if (lock < 0) {
        return FALSE;
    }
    if (!coca_claims_load(dir, &claims, errp)) {
        goto out;
    }
    if (hours) {
        claims.validity_hours = hours;
        if (!coca_claims_validate(&claims, errp)) {
            goto out;
        }
    }
    /* the instance's own key: renewal certifies it again */
    missing = stat(key_path, &st) < 0 ? key_path
              : stat(crt_path, &st) < 0 ? crt_path : NULL;
    if (missing) {
        g_set_error(errp, PROVISION_ERROR, 1, "%s: %s (the directory is "
                    "purged or incomplete: provision it again)", missing,
                    g_strerror(errno));
        goto out;
    }
    if (!load_ca(ca, &ca_crt, &ca_key, errp)) {
        goto out;
    }
    key = load_key(key_path, errp);
    old = key ? load_cert(crt_path, errp) : NULL;
    if (!old) {
        goto out;
    }
    if (X509_check_private_key(old, key) != 1) {
        ERR_clear_error();
        g_set_error(errp, PROVISION_ERROR, 1, "%s does not match %s: "
                    "provision the directory again", key_path, crt_path);
        goto out;
    }
    crt = issue_issuer(ca_crt, ca_key, key, &claims, errp);
    if (!crt) {
        goto out;
    }
    /* each file replaced by a rename: QEMU reads the old or the new one */
    if (geteuid() == 0) {
        gid = st.st_gid;
    }
    stage = g_build_filename(dir, ".renew-XXXXXX", NULL);
    if (!g_mkdtemp_full(stage, 0700)) {
        g_set_error(errp, PROVISION_ERROR, 1, "%s: %s", stage,
                    g_strerror(errno));
        g_clear_pointer(&stage, g_free);
        goto out;
    }
    issuer_pem = pem_of_cert(crt);
    root_pem = pem_of_cert(ca_crt);
    chain = g_strconcat(issuer_pem, root_pem, NULL);
    if (!write_file(stage, COCA_ROOT_FILE, root_pem, strlen(root_pem),
                    st.st_mode & 0777, gid, 0, errp) ||
        !write_file(stage, COCA_CHAIN_FILE, chain, strlen(chain),
                    st.st_mode & 0777, gid, 0, errp) ||
        !write_file(stage, COCA_ISSUER_CRT_FILE, issuer_pem,
                    strlen(issuer_pem), st.st_mode & 0777, gid, 0, errp) ||
        /* the certificate last: it is what QEMU checks the others by */
        !move_in(stage, COCA_ROOT_FILE, dir, errp) ||
        !move_in(stage, COCA_CHAIN_FILE, dir, errp) ||
        !move_in(stage, COCA_ISSUER_CRT_FILE, dir, errp)) {
        goto out;
    }
    ok = TRUE;
out:
    if (stage) {
        remove_tree(stage);
    }
    X509_free(crt);
    X509_free(old);
    X509_free(ca_crt);
    EVP_PKEY_free(key);
    EVP_PKEY_free(ca_key);
    close(lock);
    return ok;
}

gboolean coca_verify(const char *dir, const char *ca_cert, GError **errp)
{
    g_autofree char *crt_path = g_build_filename(dir, COCA_ISSUER_CRT_FILE,
                                                 NULL);
    g_autofree char *key_path = g_build_filename(dir, COCA_ISSUER_KEY_FILE,
                                                 NULL);
    g_autofree char *root_path = g_build_filename(dir, COCA_ROOT_FILE, NULL);
    g_auto(CocaClaims) claims = { 0 };
    X509 *crt = NULL, *root = NULL;
    EVP_PKEY *key = NULL;
    X509_STORE *store = NULL;
    X509_STORE_CTX *ctx = NULL;
    gboolean ok = FALSE;

    if (!coca_claims_load(dir, &claims, errp)) {
        return FALSE;
    }
    crt = load_cert(crt_path, errp);
    root = crt ? load_cert(ca_cert ? ca_cert : root_path, errp) : NULL;
    key = root ? load_key(key_path, errp) : NULL;
    if (!key) {
        goto out;
    }
    if (X509_check_private_key(crt, key) != 1) {
        ERR_clear_error();
        g_set_error(errp, PROVISION_ERROR, 1,
                    "%s does not match %s", key_path, crt_path);
        goto out;
    }
    store = X509_STORE_new();
    ctx = X509_STORE_CTX_new();
    if (!store || !ctx || !X509_STORE_add_cert(store, root) ||
        !X509_STORE_CTX_init(ctx, store, crt, NULL)) {
        ssl_fail(errp, "verifying");
        goto out;
    }
    if (X509_verify_cert(ctx) != 1) {
        g_set_error(errp, PROVISION_ERROR, 1, "%s: %s", crt_path,
                    X509_verify_cert_error_string(
                        X509_STORE_CTX_get_error(ctx)));
        goto out;
    }
    ok = TRUE;
out:
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    EVP_PKEY_free(key);
    X509_free(root);
    X509_free(crt);
    return ok;
}

static gboolean purge_locked(const char *dir, gboolean keep_ek,
                             GError **errp)
{
    static const char *const transient[] = {
        COCA_ISSUER_KEY_FILE, COCA_ISSUER_CRT_FILE, COCA_CHAIN_FILE,
        COCA_ROOT_FILE, COCA_EK_TEMPLATE_FILE, COCA_IDENTITY_FILE,
    };
    g_autofree char *ek_dir = g_build_filename(dir, COCA_EK_DIR, NULL);
    size_t i;

    /* the key first: without it the directory is unusable at once */
    for (i = 0; i < G_N_ELEMENTS(transient); i++) {
        g_autofree char *p = g_build_filename(dir, transient[i], NULL);

        if (unlink(p) < 0 && errno != ENOENT) {
            g_set_error(errp, PROVISION_ERROR, 1, "%s: %s", p,
                        g_strerror(errno));
            return FALSE;
        }
    }
    if (keep_ek) {
        return TRUE;
    }
    if (g_file_test(ek_dir, G_FILE_TEST_IS_DIR)) {
        g_autoptr(GDir) d = g_dir_open(ek_dir, 0, errp);
        const char *n;

        if (!d) {
            return FALSE;
        }
        while ((n = g_dir_read_name(d))) {
            g_autofree char *p = g_build_filename(ek_dir, n, NULL);

            if (unlink(p) < 0) {
                g_set_error(errp, PROVISION_ERROR, 1, "%s: %s", p,
                            g_strerror(errno));
                return FALSE;
            }
        }
        if (rmdir(ek_dir) < 0) {
            g_set_error(errp, PROVISION_ERROR, 1, "%s: %s", ek_dir,
                        g_strerror(errno));
            return FALSE;
        }
    }
    if (rmdir(dir) < 0 && errno != ENOENT) {
        g_set_error(errp, PROVISION_ERROR, 1, "%s: %s", dir,
                    g_strerror(errno));
        return FALSE;
    }
    return TRUE;
}

gboolean coca_purge(const char *dir, gboolean keep_ek, GError **errp)
{
    gboolean ok;
    int lock;

    if (!g_file_test(dir, G_FILE_TEST_IS_DIR)) {
        return purge_locked(dir, keep_ek, errp);
    }
    lock = lock_dir(dir, errp);
    if (lock < 0) {
        return FALSE;
    }
    ok = purge_locked(dir, keep_ek, errp);
    close(lock);
    return ok;
}
