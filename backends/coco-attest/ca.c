/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * coco-attest-ca: per-instance certificate issuer (GnuTLS).
 *
 * -object coco-attest-ca,id=ca0,dir=/var/lib/coco-attest/<uuid>
 *
 * The directory is written by coco-attest-provision; everything in it is
 * checked when the object is created, so that a missing, unreadable,
 * expired or mismatched file stops QEMU at start-up rather than failing
 * the guest's first request.  While the VM runs, "coco-attest-provision
 * renew" replaces the issuing certificate before it expires: each
 * certification notices the change (stat) and loads the new set, checked
 * the same way, in the worker thread that signs; a set that would change
 * the instance's identity is refused and the loaded one kept.  QEMU is
 * GPLv2: this file uses GnuTLS, never OpenSSL.
 */

#include "qemu/osdep.h"
#include "qemu/bswap.h"
#include "qemu/cutils.h"
#include "qemu/error-report.h"
#include "qemu/module.h"
#include "qemu/stats64.h"
#include "qemu/thread.h"
#include "qemu/timer.h"
#include "qemu/uuid.h"
#include "qapi/error.h"
#include "qom/object_interfaces.h"
#include "system/coco-attest-backend.h"
#include "system/coco-attest-ca.h"
#include "system/system.h"
#include "trace.h"

#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>

#define CA_IDENTITY_FILE    "identity.conf"
#define CA_ISSUER_KEY_FILE  "issuer.key"
#define CA_ISSUER_CRT_FILE  "issuer.crt"
#define CA_CHAIN_FILE       "chain.pem"
#define CA_EK_DIR           "ek"
#define CA_EK_TEMPLATE_FILE "ek-template.crt"

/* EK profile extensions copied from the template, in this order */
static const char *const ca_ek_ext_oids[] = {
    "2.5.29.17",        /* subjectAltName: TPM manufacturer/model/version */
    "2.5.29.9",         /* subjectDirectoryAttributes: TPM specification */
    "2.5.29.37",        /* extKeyUsage: EK certificate */
};

/* TPM 2.0 algorithm and curve identifiers (TPM 2.0 Part 2) */
#define TPM_ALG_RSA         0x0001
#define TPM_ALG_NULL        0x0010
#define TPM_ALG_ECC         0x0023
#define TPM_ECC_NIST_P256   0x0003
#define TPM_ECC_NIST_P384   0x0004

/* TCG NV indices of EK certificates */
#define NV_EK_RSA2048       0x01c00002u
#define NV_EK_ECC_P256      0x01c0000au
#define NV_EK_ECC_P384      0x01c00016u

/* Google's GCE instance-info extension, copied when the issuer has it */
#define CA_OID_GCE              "1.3.6.1.4.1.11129.2.1.21"

/* TCG key purpose for attestation identity (AK) certificates */
#define TCG_KP_AIK_CERTIFICATE  "2.23.133.8.3"

/* certificates the backend issues live at most this long */
#define CA_MAX_LIFETIME_S   (24 * 3600)
#define CA_MAX_CSR          (16 * 1024)
#define CA_MAX_CERT_FILE    (16 * 1024)

/*
 * What a renewal replaces: the issuing key, its certificate, the chain
 * and the EK profile, loaded and checked as one set.  Workers hold a
 * reference while they sign, so that a reload never pulls the material
 * from under them.
 */
typedef struct CaMaterial {
    int refs;
    gnutls_x509_crt_t issuer;
    gnutls_privkey_t key;
    GPtrArray *chain;           /* GBytes: issuer then up to the root */
    GBytes *chain_pem;          /* the same, as chain.pem holds it */
    GBytes *identity_ext;       /* identity extension value, from issuer */
    GBytes *gce_ext;            /* GCE instance-info, if the issuer has it */
    GBytes *ek_ext[G_N_ELEMENTS(ca_ek_ext_oids)];   /* from the template */
    unsigned int ek_ext_critical[G_N_ELEMENTS(ca_ek_ext_oids)];
    uint8_t issuer_ski[64];
    size_t issuer_ski_len;
    time_t issuer_expiry;
} CaMaterial;

/* The files a renewal or a re-provisioning replaces (by rename) */
static const char *const ca_watched[] = {
    CA_IDENTITY_FILE, CA_ISSUER_KEY_FILE, CA_ISSUER_CRT_FILE, CA_CHAIN_FILE,
    CA_EK_TEMPLATE_FILE,
};

/* What stat() says of each of them: any change is worth a reload */
typedef struct CaStamp {
    struct {
        int err;
        dev_t dev;
        ino_t ino;
        off_t size;
        time_t mtime, ctime;
    } f[G_N_ELEMENTS(ca_watched)];
} CaStamp;

struct CocoAttestCa {
    Object parent_obj;

    /* properties: fixed once the object is created (ready) */
    char *dir;
    CocoAttestRate limit;       /* signatures per minute, burst */
    bool ready;

    CocoAttestClaims claims;    /* fixed: a reload never changes them */

    QemuMutex mat_lock;         /* guards the four below; workers only */
    CaMaterial *mat;
    CaStamp mat_stamp;          /* the files mat was loaded from */
    CaStamp refused_stamp;      /* the files of the last refused reload */
    bool refused;
    Stat64 not_after;           /* mat's expiry, for QMP */

    QemuMutex lock;             /* serialises signing and the EK state */
};

const CocoAttestClaims *coco_attest_ca_claims(CocoAttestCa *ca)
{
    return &ca->claims;
}

int64_t coco_attest_ca_not_after(CocoAttestCa *ca)
{
    return stat64_get(&ca->not_after);
}

bool coco_attest_ca_take_token(CocoAttestCa *ca)
{
    if (!coco_attest_rate_take(&ca->limit)) {
        trace_coco_attest_ca_rate_limited(ca->dir);
        return false;
    }
    return true;
}

static CaMaterial *ca_material_ref(CaMaterial *m)
{
    qatomic_inc(&m->refs);
    return m;
}

static void ca_material_unref(CaMaterial *m)
{
    size_t i;

    if (!m || qatomic_fetch_dec(&m->refs) != 1) {
        return;
    }
    if (m->key) {
        gnutls_privkey_deinit(m->key);
    }
    if (m->issuer) {
        gnutls_x509_crt_deinit(m->issuer);
    }
    if (m->chain) {
        g_ptr_array_unref(m->chain);
    }
    g_clear_pointer(&m->chain_pem, g_bytes_unref);
    g_clear_pointer(&m->identity_ext, g_bytes_unref);
    g_clear_pointer(&m->gce_ext, g_bytes_unref);
    for (i = 0; i < G_N_ELEMENTS(m->ek_ext); i++) {
        g_clear_pointer(&m->ek_ext[i], g_bytes_unref);
    }
    g_free(m);
}

static void ca_claims_clear(CocoAttestClaims *c)
{
    g_free(c->project_id);
    g_free(c->zone);
    g_free(c->instance_name);
    g_free(c->instance_id);
    g_free(c->oid);
    g_free(c->vm_uuid);
    memset(c, 0, sizeof(*c));
}

static void ca_stamp(const char *dir, CaStamp *s)
{
    size_t i;

    memset(s, 0, sizeof(*s));
    for (i = 0; i < G_N_ELEMENTS(ca_watched); i++) {
        g_autofree char *path = g_build_filename(dir, ca_watched[i], NULL);
        struct stat st;

        if (stat(path, &st) < 0) {
            s->f[i].err = errno;
            continue;
        }
        s->f[i].dev = st.st_dev;
        s->f[i].ino = st.st_ino;
        s->f[i].size = st.st_size;
        s->f[i].mtime = st.st_mtime;
        s->f[i].ctime = st.st_ctime;
    }
}

static bool ca_stamp_equal(const CaStamp *a, const CaStamp *b)
{
    size_t i;

    for (i = 0; i < G_N_ELEMENTS(a->f); i++) {
        if (a->f[i].err != b->f[i].err || a->f[i].dev != b->f[i].dev ||
            a->f[i].ino != b->f[i].ino || a->f[i].size != b->f[i].size ||
            a->f[i].mtime != b->f[i].mtime ||
            a->f[i].ctime != b->f[i].ctime) {
            return false;
        }
    }
    return true;
}

/* ------------------------------------------------------------------ */
/* Loading the instance directory                                      */
/* ------------------------------------------------------------------ */

static bool ca_read(const char *dir, const char *name, gnutls_datum_t *d,
                    Error **errp)
{
    g_autofree char *path = g_build_filename(dir, name, NULL);
    g_autoptr(GError) gerr = NULL;
    gchar *data;
    gsize len;

    if (!g_file_get_contents(path, &data, &len, &gerr)) {
        error_setg(errp, "coco-attest-ca: %s", gerr->message);
        return false;
    }
    if (len > CA_MAX_CERT_FILE) {
        g_free(data);
        error_setg(errp, "coco-attest-ca: %s is too large", path);
        return false;
    }
    d->data = (unsigned char *)data;
    d->size = len;
    return true;
}

static bool ca_load_claims(const char *dir, CocoAttestClaims *c,
                           Error **errp)
{
    g_autofree char *path = g_build_filename(dir, CA_IDENTITY_FILE, NULL);
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autoptr(GError) gerr = NULL;
    g_autofree char *num = NULL;
    QemuUUID uuid;

    if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, &gerr)) {
        error_setg(errp, "coco-attest-ca: %s: %s", path, gerr->message);
        return false;
    }
    c->project_id = g_key_file_get_string(kf, "identity", "project-id", NULL);
    num = g_key_file_get_string(kf, "identity", "project-number", NULL);
    c->zone = g_key_file_get_string(kf, "identity", "zone", NULL);
    c->instance_name = g_key_file_get_string(kf, "identity", "instance-name",
                                             NULL);
    c->instance_id = g_key_file_get_string(kf, "identity", "instance-id",
                                           NULL);
    c->vm_uuid = g_key_file_get_string(kf, "identity", "vm-uuid", NULL);
    c->oid = g_key_file_get_string(kf, "profile", "oid", NULL);
    c->ek_rekey = g_key_file_get_boolean(kf, "ek", "rekey", NULL);
    if (!c->project_id || !c->zone || !c->instance_name ||
        !c->instance_id || !c->oid || !num ||
        qemu_strtou64(num, NULL, 10, &c->project_number) < 0 ||
        (c->vm_uuid && qemu_uuid_parse(c->vm_uuid, &uuid) < 0)) {
        error_setg(errp, "coco-attest-ca: %s: incomplete or malformed "
                   "claims (re-provision the instance)", path);
        return false;
    }
    return true;
}

static bool ca_load_chain(const char *dir, CaMaterial *m, Error **errp)
{
    gnutls_datum_t pem = { 0 };
    gnutls_x509_crt_t *list = NULL;
    unsigned int n = 0, i;
    int ret;

    if (!ca_read(dir, CA_CHAIN_FILE, &pem, errp)) {
        return false;
    }
    m->chain_pem = g_bytes_new(pem.data, pem.size);
    ret = gnutls_x509_crt_list_import2(&list, &n, &pem, GNUTLS_X509_FMT_PEM,
                                       0);
    g_free(pem.data);
    if (ret < 0 || n < 2) {
        error_setg(errp, "coco-attest-ca: %s/%s: %s", dir, CA_CHAIN_FILE,
                   ret < 0 ? gnutls_strerror(ret) : "needs two certificates");
        goto out;
    }
    if (!gnutls_x509_crt_equals(list[0], m->issuer)) {
        error_setg(errp, "coco-attest-ca: %s/%s does not start with %s",
                   dir, CA_CHAIN_FILE, CA_ISSUER_CRT_FILE);
        ret = -1;
        goto out;
    }
    m->chain = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
    for (i = 0; i < n; i++) {
        gnutls_datum_t der;

        if (gnutls_x509_crt_export2(list[i], GNUTLS_X509_FMT_DER, &der) < 0) {
            error_setg(errp, "coco-attest-ca: cannot encode the chain");
            ret = -1;
            goto out;
        }
        g_ptr_array_add(m->chain, g_bytes_new(der.data, der.size));
        gnutls_free(der.data);
    }
    ret = 0;
out:
    for (i = 0; i < n; i++) {
        gnutls_x509_crt_deinit(list[i]);
    }
    gnutls_free(list);
    return ret == 0;
}

/* The EK profile: extensions of the template certificate to copy. */
static bool ca_load_ek_template(const char *dir, CaMaterial *m,
                                Error **errp)
{
    gnutls_datum_t pem = { 0 };
    gnutls_x509_crt_t tmpl = NULL;
    bool ok = false;
    size_t i;

    if (!ca_read(dir, CA_EK_TEMPLATE_FILE, &pem, errp)) {
        return false;
    }
    if (gnutls_x509_crt_init(&tmpl) < 0 ||
        gnutls_x509_crt_import(tmpl, &pem, GNUTLS_X509_FMT_PEM) < 0) {
        error_setg(errp, "coco-attest-ca: %s/%s: not a certificate",
                   dir, CA_EK_TEMPLATE_FILE);
        goto out;
    }
    for (i = 0; i < G_N_ELEMENTS(ca_ek_ext_oids); i++) {
        gnutls_datum_t ext;

        if (gnutls_x509_crt_get_extension_by_oid2(tmpl, ca_ek_ext_oids[i], 0,
                                                  &ext,
                                                  &m->ek_ext_critical[i])
            < 0) {
            error_setg(errp, "coco-attest-ca: %s/%s lacks extension %s",
                       dir, CA_EK_TEMPLATE_FILE, ca_ek_ext_oids[i]);
            goto out;
        }
        m->ek_ext[i] = g_bytes_new(ext.data, ext.size);
        gnutls_free(ext.data);
    }
    ok = true;
out:
    if (tmpl) {
        gnutls_x509_crt_deinit(tmpl);
    }
    g_free(pem.data);
    return ok;
}

/*
 * Load and check the issuing material of @dir for the identity extension
 * @oid: the key matches the certificate, which is a CA, has not expired
 * and carries the identity; the chain starts with it; the EK profile.
 */
static CaMaterial *ca_load_material(const char *dir, const char *oid,
                                    Error **errp)
{
    CaMaterial *m = g_new0(CaMaterial, 1);
    gnutls_datum_t crt = { 0 }, key = { 0 }, ext = { 0 };
    gnutls_x509_privkey_t xkey = NULL;
    unsigned char crt_id[64], key_id[64];
    size_t crt_id_len = sizeof(crt_id), key_id_len = sizeof(key_id);
    unsigned int critical, is_ca;
    bool ok = false;
    int ret, pathlen;

    m->refs = 1;
    if (!ca_read(dir, CA_ISSUER_CRT_FILE, &crt, errp) ||
        !ca_read(dir, CA_ISSUER_KEY_FILE, &key, errp)) {
        goto out;
    }
    if (gnutls_x509_crt_init(&m->issuer) < 0 ||
        gnutls_x509_crt_import(m->issuer, &crt, GNUTLS_X509_FMT_PEM) < 0) {
        error_setg(errp, "coco-attest-ca: %s/%s: not a certificate",
                   dir, CA_ISSUER_CRT_FILE);
        goto out;
    }
    if (gnutls_x509_privkey_init(&xkey) < 0 ||
        gnutls_x509_privkey_import2(xkey, &key, GNUTLS_X509_FMT_PEM, NULL,
                                    GNUTLS_PKCS_PLAIN) < 0) {
        error_setg(errp, "coco-attest-ca: %s/%s: not a private key",
                   dir, CA_ISSUER_KEY_FILE);
        goto out;
    }
    if (gnutls_x509_crt_get_key_id(m->issuer, 0, crt_id, &crt_id_len) < 0 ||
        gnutls_x509_privkey_get_key_id(xkey, 0, key_id, &key_id_len) < 0 ||
        crt_id_len != key_id_len || memcmp(crt_id, key_id, key_id_len)) {
        error_setg(errp, "coco-attest-ca: %s does not match %s in %s",
                   CA_ISSUER_KEY_FILE, CA_ISSUER_CRT_FILE, dir);
        goto out;
    }
    ret = gnutls_x509_crt_get_basic_constraints(m->issuer, &critical,
                                                &is_ca, &pathlen);
    if (ret <= 0) {
        error_setg(errp, "coco-attest-ca: %s/%s is not a CA certificate",
                   dir, CA_ISSUER_CRT_FILE);
        goto out;
    }
    m->issuer_expiry = gnutls_x509_crt_get_expiration_time(m->issuer);
    if (m->issuer_expiry <= time(NULL)) {
        error_setg(errp, "coco-attest-ca: %s/%s has expired: re-provision "
                   "the instance", dir, CA_ISSUER_CRT_FILE);
        goto out;
    }
    m->issuer_ski_len = sizeof(m->issuer_ski);
    if (gnutls_x509_crt_get_subject_key_id(m->issuer, m->issuer_ski,
                                           &m->issuer_ski_len,
                                           &critical) < 0) {
        error_setg(errp, "coco-attest-ca: %s/%s has no subject key "
                   "identifier", dir, CA_ISSUER_CRT_FILE);
        goto out;
    }
    if (gnutls_x509_crt_get_extension_by_oid2(m->issuer, oid, 0, &ext,
                                              &critical) < 0) {
        error_setg(errp, "coco-attest-ca: %s/%s carries no identity "
                   "extension %s", dir, CA_ISSUER_CRT_FILE, oid);
        goto out;
    }
    m->identity_ext = g_bytes_new(ext.data, ext.size);
    gnutls_free(ext.data);
    if (gnutls_x509_crt_get_extension_by_oid2(m->issuer, CA_OID_GCE, 0,
                                              &ext, &critical) >= 0) {
        m->gce_ext = g_bytes_new(ext.data, ext.size);
        gnutls_free(ext.data);
    }
    if (gnutls_privkey_init(&m->key) < 0 ||
        gnutls_privkey_import_x509(m->key, xkey,
                                   GNUTLS_PRIVKEY_IMPORT_AUTO_RELEASE) < 0) {
        error_setg(errp, "coco-attest-ca: cannot use the issuing key");
        goto out;
    }
    xkey = NULL;                /* owned by m->key now */
    ok = ca_load_chain(dir, m, errp) && ca_load_ek_template(dir, m, errp);
out:
    if (xkey) {
        gnutls_x509_privkey_deinit(xkey);
    }
    if (key.data) {
        gnutls_memset(key.data, 0, key.size);
    }
    g_free(key.data);
    g_free(crt.data);
    if (!ok) {
        ca_material_unref(m);
        return NULL;
    }
    return m;
}

/*
 * A directory is bound to the VM it was provisioned for: identity.conf's
 * vm-uuid, or else an instance-id that is a UUID, must be the machine's
 * -uuid when it has one.  An instance-id that is no UUID (a GCE-style
 * number) binds nothing.
 */
static bool ca_check_uuid(CocoAttestCa *ca, Error **errp)
{
    const char *want = ca->claims.vm_uuid ?: ca->claims.instance_id;
    g_autofree char *mine = NULL, *theirs = NULL;
    QemuUUID uuid;

    if (!qemu_uuid_set || qemu_uuid_parse(want, &uuid) < 0 ||
        qemu_uuid_is_equal(&uuid, &qemu_uuid)) {
        return true;
    }
    mine = qemu_uuid_unparse_strdup(&qemu_uuid);
    theirs = qemu_uuid_unparse_strdup(&uuid);
    error_setg(errp, "coco-attest-ca: %s was provisioned for the VM with "
               "UUID %s, but this machine's -uuid is %s: a copied "
               "<qemu:commandline>? Each domain needs its own instance "
               "directory", ca->dir, theirs, mine);
    return false;
}

static void ca_complete(UserCreatable *uc, Error **errp)
{
    ERRP_GUARD();
    CocoAttestCa *ca = COCO_ATTEST_CA(uc);
    g_autofree char *conf = NULL;

    if (!ca->dir) {
        error_setg(errp, "coco-attest-ca: the 'dir' property is required");
        return;
    }
    if (!ca->limit.rate || !ca->limit.burst) {
        error_setg(errp, "coco-attest-ca: rate and burst must be positive");
        return;
    }
    ca_stamp(ca->dir, &ca->mat_stamp);
    if (!ca_load_claims(ca->dir, &ca->claims, errp)) {
        conf = g_build_filename(ca->dir, CA_IDENTITY_FILE, NULL);
        if (!g_file_test(conf, G_FILE_TEST_EXISTS)) {
            error_append_hint(errp, "Nothing has provisioned this instance "
                              "directory.\nUnder libvirt, the coco-attest "
                              "hook creates it when the domain starts: is "
                              "it installed in /etc/libvirt/hooks/qemu.d/, "
                              "was the daemon restarted or sent SIGHUP "
                              "since, and does the domain's <metadata> "
                              "carry <coca:instance>?\nWithout libvirt, "
                              "run: coco-attest-provision provision "
                              "--instance-dir %s ...\n", ca->dir);
        }
        return;
    }
    if (!ca_check_uuid(ca, errp)) {
        return;
    }
    ca->mat = ca_load_material(ca->dir, ca->claims.oid, errp);
    if (!ca->mat) {
        return;
    }
    stat64_set(&ca->not_after, ca->mat->issuer_expiry);
    coco_attest_rate_start(&ca->limit);
    ca->ready = true;
    trace_coco_attest_ca_loaded(ca->dir, ca->claims.instance_name,
                                ca->mat->chain->len);
}

/* ------------------------------------------------------------------ */
/* Renewal while the VM runs                                           */
/* ------------------------------------------------------------------ */

/* NULL if @b makes the same claims as @a, else what differs */
static char *ca_claims_diff(const CocoAttestClaims *a,
                            const CocoAttestClaims *b)
{
    static const struct {
        const char *name;
        size_t off;
    } strs[] = {
        { "project-id", offsetof(CocoAttestClaims, project_id) },
        { "zone", offsetof(CocoAttestClaims, zone) },
        { "instance-name", offsetof(CocoAttestClaims, instance_name) },
        { "instance-id", offsetof(CocoAttestClaims, instance_id) },
        { "vm-uuid", offsetof(CocoAttestClaims, vm_uuid) },
        { "oid", offsetof(CocoAttestClaims, oid) },
    };
    size_t i;

    for (i = 0; i < G_N_ELEMENTS(strs); i++) {
        const char *x = *(char **)((char *)a + strs[i].off);
        const char *y = *(char **)((char *)b + strs[i].off);

        if (g_strcmp0(x, y)) {
            return g_strdup_printf("%s '%s' became '%s'", strs[i].name,
                                   x ?: "", y ?: "");
        }
    }
    if (a->project_number != b->project_number) {
        return g_strdup_printf("project-number %" PRIu64 " became %" PRIu64,
                               a->project_number, b->project_number);
    }
    if (a->ek_rekey != b->ek_rekey) {
        return g_strdup("the EK re-keying policy changed");
    }
    return NULL;
}

/*
 * Load what is on disk now, if it is a renewal of what the VM started
 * with: the same claims, an issuing certificate for the same identity.
 * Anything else keeps the loaded material, and is not tried again until
 * the files change.  Called with mat_lock held, from a worker thread.
 */
static void ca_reload(CocoAttestCa *ca, const CaStamp *stamp)
{
    CocoAttestClaims claims = { 0 };
    g_autofree char *diff = NULL;
    CaMaterial *m = NULL;
    Error *err = NULL;
    CaStamp after;

    if (!ca_load_claims(ca->dir, &claims, &err)) {
        goto refused;
    }
    diff = ca_claims_diff(&ca->claims, &claims);
    if (diff) {
        error_setg(&err, "coco-attest-ca: %s/%s: %s, but a running VM keeps "
                   "the identity it started with", ca->dir, CA_IDENTITY_FILE,
                   diff);
        goto refused;
    }
    m = ca_load_material(ca->dir, ca->claims.oid, &err);
    if (!m) {
        goto refused;
    }
    if (!g_bytes_equal(m->identity_ext, ca->mat->identity_ext) ||
        !m->gce_ext != !ca->mat->gce_ext ||
        (m->gce_ext && !g_bytes_equal(m->gce_ext, ca->mat->gce_ext))) {
        error_setg(&err, "coco-attest-ca: %s/%s certifies another identity "
                   "than the one loaded", ca->dir, CA_ISSUER_CRT_FILE);
        goto refused;
    }
    ca_material_unref(ca->mat);
    ca->mat = m;
    ca->mat_stamp = *stamp;
    ca->refused = false;
    stat64_set(&ca->not_after, m->issuer_expiry);
    trace_coco_attest_ca_reloaded(ca->dir, (int64_t)m->issuer_expiry);
    ca_claims_clear(&claims);
    return;

refused:
    ca_material_unref(m);
    ca_claims_clear(&claims);
    trace_coco_attest_ca_reload_refused(ca->dir, error_get_pretty(err));
    ca_stamp(ca->dir, &after);
    if (ca_stamp_equal(&after, stamp)) {
        /* not a set caught half-replaced: say so once */
        g_autoptr(GDateTime) t = g_date_time_new_from_unix_utc(
            ca->mat->issuer_expiry);
        g_autofree char *until = t ? g_date_time_format_iso8601(t) : NULL;

        warn_report("%s; keeping the loaded issuing certificate (valid "
                    "until %s)", error_get_pretty(err), until ?: "?");
        ca->refused_stamp = *stamp;
        ca->refused = true;
    }
    error_free(err);
}

/*
 * The material to sign with, after picking up a renewal on disk: stat()
 * of a few files when nothing changed.  Worker threads only (file I/O);
 * the caller drops the reference with ca_material_unref().
 */
static CaMaterial *ca_material_get(CocoAttestCa *ca)
{
    CaMaterial *m;
    CaStamp now;

    qemu_mutex_lock(&ca->mat_lock);
    ca_stamp(ca->dir, &now);
    if (!ca_stamp_equal(&now, &ca->mat_stamp) &&
        (!ca->refused || !ca_stamp_equal(&now, &ca->refused_stamp))) {
        ca_reload(ca, &now);
    }
    m = ca_material_ref(ca->mat);
    qemu_mutex_unlock(&ca->mat_lock);
    return m;
}

/* ------------------------------------------------------------------ */
/* Issuing                                                             */
/* ------------------------------------------------------------------ */

static GPtrArray *ca_chain_with(CaMaterial *m, const gnutls_datum_t *der)
{
    GPtrArray *certs = g_ptr_array_new_with_free_func(
        (GDestroyNotify)g_bytes_unref);
    guint i;

    g_ptr_array_add(certs, g_bytes_new(der->data, der->size));
    for (i = 0; i < m->chain->len; i++) {
        g_ptr_array_add(certs, g_bytes_ref(g_ptr_array_index(m->chain, i)));
    }
    return certs;
}

/*
 * An EK certificate with the chain it was issued under: the per-instance
 * issuing certificate is renewed at every start, but an EK certificate
 * is kept, so its chain is kept beside it (ek-<nv>.chain.pem).  Without
 * one, the chain of @m.
 */
static GPtrArray *ca_ek_chain(CocoAttestCa *ca, CaMaterial *m, uint32_t nv,
                              const gnutls_datum_t *der)
{
    g_autofree char *path = g_strdup_printf("%s/%s/ek-%08x.chain.pem",
                                            ca->dir, CA_EK_DIR, nv);
    g_autofree gchar *pem = NULL;
    gnutls_x509_crt_t *list = NULL;
    unsigned int n = 0, i;
    gnutls_datum_t d;
    gsize len;
    GPtrArray *certs;

    if (!g_file_get_contents(path, &pem, &len, NULL) ||
        len > CA_MAX_CERT_FILE) {
        return ca_chain_with(m, der);
    }
    d = (gnutls_datum_t) { .data = (unsigned char *)pem, .size = len };
    if (gnutls_x509_crt_list_import2(&list, &n, &d, GNUTLS_X509_FMT_PEM,
                                     0) < 0 || n == 0 || n > 7) {
        for (i = 0; i < n; i++) {
            gnutls_x509_crt_deinit(list[i]);
        }
        gnutls_free(list);
        return ca_chain_with(m, der);
    }
    certs = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
    g_ptr_array_add(certs, g_bytes_new(der->data, der->size));
    for (i = 0; i < n; i++) {
        gnutls_datum_t c;

        if (gnutls_x509_crt_export2(list[i], GNUTLS_X509_FMT_DER, &c) >= 0) {
            g_ptr_array_add(certs, g_bytes_new(c.data, c.size));
            gnutls_free(c.data);
        }
        gnutls_x509_crt_deinit(list[i]);
    }
    gnutls_free(list);
    return certs;
}

/* A serial number: 16 random bytes, positive. */
static int ca_set_serial(gnutls_x509_crt_t crt)
{
    uint8_t serial[16];
    int ret = gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial));

    if (ret < 0) {
        return ret;
    }
    serial[0] = (serial[0] & 0x7f) | 0x40;
    return gnutls_x509_crt_set_serial(crt, serial, sizeof(serial));
}

/*
 * An RSA public exponent the policy accepts: odd, from 3 to 2^32 - 1.
 * The cost of checking a signature grows with the exponent's length.
 */
static bool ca_rsa_exponent_ok(gnutls_pubkey_t pub, char **why)
{
    gnutls_datum_t n = { 0 }, e = { 0 };
    uint64_t value = 0;
    bool ok = false;
    unsigned int i;

    if (gnutls_pubkey_export_rsa_raw2(pub, &n, &e, 0) < 0) {
        *why = g_strdup("cannot read the RSA key");
        return false;
    }
    for (i = 0; i < e.size && value <= UINT32_MAX; i++) {
        value = value << 8 | e.data[i];
    }
    ok = value >= 3 && value <= UINT32_MAX && (value & 1);
    if (!ok) {
        *why = g_strdup_printf("unsupported RSA exponent (%u bytes)",
                               e.size);
    }
    gnutls_free(n.data);
    gnutls_free(e.data);
    return ok;
}

/*
 * The key policy: RSA 2048 to 4096 bits with a small odd exponent, or
 * ECDSA on P-256 or P-384.  Checked before any signature work, so that
 * what one request can cost is bounded by the largest key accepted.
 */
static bool ca_key_acceptable(gnutls_pubkey_t pub, char **why)
{
    unsigned int bits = 0;
    int algo = gnutls_pubkey_get_pk_algorithm(pub, &bits);

    if (algo == GNUTLS_PK_RSA && bits >= 2048 && bits <= 4096) {
        return ca_rsa_exponent_ok(pub, why);
    }
    if (algo == GNUTLS_PK_ECDSA && (bits == 256 || bits == 384)) {
        return true;            /* NIST P-256 or P-384 */
    }
    *why = g_strdup_printf("unsupported key (%s, %u bits)",
                           gnutls_pk_get_name(algo), bits);
    return false;
}

/* The GCE instance-info extension, when the instance's profile has it */
static int ca_set_gce(CaMaterial *m, gnutls_x509_crt_t crt)
{
    if (!m->gce_ext) {
        return 0;
    }
    return gnutls_x509_crt_set_extension_by_oid(
        crt, CA_OID_GCE, g_bytes_get_data(m->gce_ext, NULL),
        g_bytes_get_size(m->gce_ext), 0);
}

/* Everything but the signature; returns a GnuTLS error code. */
static int ca_fill(CocoAttestCa *ca, CaMaterial *m, gnutls_x509_crt_t crt,
                   gnutls_pubkey_t pub, unsigned int key_usage,
                   const char *purpose, time_t now, time_t expiry)
{
    const CocoAttestClaims *c = &ca->claims;
    g_autofree char *dn = g_strdup_printf("O=%s,OU=%s,CN=%s,serialNumber=%s",
                                          c->project_id, c->zone,
                                          c->instance_name, c->instance_id);
    g_autofree char *uri = g_strdup_printf("spiffe://%s/coco-attest/%s/%s/%s",
                                           c->project_id, c->zone,
                                           c->instance_name,
                                           c->instance_id);
    uint8_t ski[64];
    size_t ski_len = sizeof(ski);
    int ret;

    ret = gnutls_x509_crt_set_version(crt, 3);
    if (ret < 0) {
        return ret;
    }
    ret = ca_set_serial(crt);
    if (ret < 0) {
        return ret;
    }
    ret = gnutls_x509_crt_set_activation_time(crt, now - 300);
    if (ret < 0) {
        return ret;
    }
    ret = gnutls_x509_crt_set_expiration_time(crt, expiry);
    if (ret < 0) {
        return ret;
    }
    ret = gnutls_x509_crt_set_pubkey(crt, pub);
    if (ret < 0) {
        return ret;
    }
    ret = gnutls_x509_crt_set_dn(crt, dn, NULL);
    if (ret < 0) {
        return ret;
    }
    ret = gnutls_x509_crt_set_basic_constraints(crt, 0, -1);
    if (ret < 0) {
        return ret;
    }
    ret = gnutls_x509_crt_set_key_usage(crt, key_usage);
    if (ret < 0) {
        return ret;
    }
    ret = gnutls_x509_crt_set_key_purpose_oid(crt, purpose, 0);
    if (ret < 0) {
        return ret;
    }
    ret = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_URI, uri,
                                               strlen(uri), GNUTLS_FSAN_SET);
    if (ret < 0) {
        return ret;
    }
    /* the identity, byte for byte as the host CA certified it */
    ret = gnutls_x509_crt_set_extension_by_oid(
        crt, c->oid, g_bytes_get_data(m->identity_ext, NULL),
        g_bytes_get_size(m->identity_ext), 0);
    if (ret < 0) {
        return ret;
    }
    ret = ca_set_gce(m, crt);
    if (ret < 0) {
        return ret;
    }
    ret = gnutls_pubkey_get_key_id(pub, 0, ski, &ski_len);
    if (ret < 0) {
        return ret;
    }
    ret = gnutls_x509_crt_set_subject_key_id(crt, ski, ski_len);
    if (ret < 0) {
        return ret;
    }
    return gnutls_x509_crt_set_authority_key_id(crt, m->issuer_ski,
                                                m->issuer_ski_len);
}

/*
 * Build and sign an end-entity certificate for pub: the subject and
 * every extension come from the instance's claims, never from the guest.
 */
static CocoAttestCaResult ca_issue(CocoAttestCa *ca, gnutls_pubkey_t pub,
                                   unsigned int key_usage,
                                   const char *purpose, GPtrArray **certs,
                                   char **why)
{
    CaMaterial *m = ca_material_get(ca);
    gnutls_x509_crt_t crt = NULL;
    gnutls_datum_t der = { 0 };
    time_t now = time(NULL);
    time_t expiry = MIN(now + CA_MAX_LIFETIME_S, m->issuer_expiry);
    CocoAttestCaResult res = COCO_ATTEST_CA_FAILED;
    int ret;

    if (now >= m->issuer_expiry) {
        *why = g_strdup("the issuing certificate has expired (renew the "
                        "instance directory)");
        res = COCO_ATTEST_CA_EXPIRED;
        goto out;
    }
    ret = gnutls_x509_crt_init(&crt);
    if (ret < 0) {
        *why = g_strdup(gnutls_strerror(ret));
        goto out;
    }
    ret = ca_fill(ca, m, crt, pub, key_usage, purpose, now, expiry);
    if (ret < 0) {
        *why = g_strdup_printf("building the certificate: %s",
                               gnutls_strerror(ret));
        goto out;
    }
    qemu_mutex_lock(&ca->lock);
    ret = gnutls_x509_crt_privkey_sign(crt, m->issuer, m->key,
                                       GNUTLS_DIG_SHA256, 0);
    qemu_mutex_unlock(&ca->lock);
    if (ret >= 0) {
        ret = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &der);
    }
    if (ret < 0) {
        *why = g_strdup_printf("signing: %s", gnutls_strerror(ret));
        goto out;
    }
    *certs = ca_chain_with(m, &der);
    res = COCO_ATTEST_CA_OK;
out:
    gnutls_free(der.data);
    if (crt) {
        gnutls_x509_crt_deinit(crt);
    }
    ca_material_unref(m);
    return res;
}

CocoAttestCaResult coco_attest_ca_certify_csr(CocoAttestCa *ca,
                                              const uint8_t *csr,
                                              size_t len, GPtrArray **certs,
                                              char **why)
{
    gnutls_x509_crq_t crq = NULL;
    gnutls_pubkey_t pub = NULL;
    gnutls_datum_t d = { .data = (unsigned char *)csr, .size = len };
    CocoAttestCaResult res;
    int ret;

    if (len > CA_MAX_CSR) {
        *why = g_strdup_printf("CSR of %zu bytes is too large", len);
        return COCO_ATTEST_CA_MALFORMED;
    }
    if (gnutls_x509_crq_init(&crq) < 0) {
        *why = g_strdup("out of memory");
        return COCO_ATTEST_CA_FAILED;
    }
    ret = gnutls_x509_crq_import(crq, &d, GNUTLS_X509_FMT_DER);
    if (ret < 0) {
        *why = g_strdup_printf("not a PKCS#10 CSR: %s", gnutls_strerror(ret));
        res = COCO_ATTEST_CA_MALFORMED;
        goto out;
    }
    /* the policy first: only then is the signature worth checking */
    if (gnutls_pubkey_init(&pub) < 0 ||
        gnutls_pubkey_import_x509_crq(pub, crq, 0) < 0) {
        *why = g_strdup("cannot read the CSR's public key");
        res = COCO_ATTEST_CA_MALFORMED;
        goto out;
    }
    if (!ca_key_acceptable(pub, why)) {
        res = COCO_ATTEST_CA_UNSUPPORTED_KEY;
        goto out;
    }
    /* the CSR's own signature proves possession of the key */
    ret = gnutls_x509_crq_verify(crq, 0);
    if (ret < 0) {
        *why = g_strdup_printf("CSR signature: %s", gnutls_strerror(ret));
        res = COCO_ATTEST_CA_BAD_SIGNATURE;
        goto out;
    }
    res = ca_issue(ca, pub, GNUTLS_KEY_DIGITAL_SIGNATURE,
                   TCG_KP_AIK_CERTIFICATE, certs, why);
out:
    if (pub) {
        gnutls_pubkey_deinit(pub);
    }
    gnutls_x509_crq_deinit(crq);
    return res;
}

/* A bounded big-endian reader over a guest-supplied TPM structure */
typedef struct TpmReader {
    const uint8_t *p;
    size_t left;
    bool bad;
} TpmReader;

static uint16_t tpm_u16(TpmReader *r)
{
    uint16_t v;

    if (r->left < 2) {
        r->bad = true;
        return 0;
    }
    v = lduw_be_p(r->p);
    r->p += 2;
    r->left -= 2;
    return v;
}

static uint32_t tpm_u32(TpmReader *r)
{
    uint32_t v = (uint32_t)tpm_u16(r) << 16;

    return v | tpm_u16(r);
}

/* A TPM2B: size then bytes; returns them in place (NULL if truncated). */
static const uint8_t *tpm_2b(TpmReader *r, uint16_t *size)
{
    const uint8_t *p;

    *size = tpm_u16(r);
    if (r->bad || r->left < *size) {
        r->bad = true;
        return NULL;
    }
    p = r->p;
    r->p += *size;
    r->left -= *size;
    return p;
}

/* TPMT_SYM_DEF_OBJECT, TPMT_*_SCHEME, TPMT_KDF_SCHEME: alg [+ details] */
static void tpm_skip_alg(TpmReader *r, int details)
{
    if (tpm_u16(r) != TPM_ALG_NULL) {
        while (details--) {
            tpm_u16(r);
        }
    }
}

/*
 * Parse a TPMT_PUBLIC (RSA or ECC; TPM 2.0 Part 2, 12.2.4) into a GnuTLS
 * public key.  Every length is checked against the buffer; with rest the
 * bytes after the structure are returned there, else there must be none.
 */
static gnutls_pubkey_t tpmt_public_to_pubkey(const uint8_t *buf, size_t len,
                                             TpmReader *rest, char **why)
{
    TpmReader r = { .p = buf, .left = len };
    gnutls_pubkey_t pub = NULL;
    uint16_t type, size, xs, ys;
    const uint8_t *m, *x, *y;
    gnutls_datum_t a, b;
    uint8_t e[4];
    uint32_t exp;
    int ret = -1;

    type = tpm_u16(&r);
    tpm_u16(&r);                        /* nameAlg */
    tpm_u32(&r);                        /* objectAttributes */
    tpm_2b(&r, &size);                  /* authPolicy */
    tpm_skip_alg(&r, 2);                /* symmetric: keyBits, mode */
    tpm_skip_alg(&r, 1);                /* scheme: hashAlg */
    if (type == TPM_ALG_RSA) {
        tpm_u16(&r);                    /* keyBits */
        exp = tpm_u32(&r);
        m = tpm_2b(&r, &size);
        if (r.bad || size == 0) {
            goto bad;
        }
        stl_be_p(e, exp ? exp : 65537);
        a = (gnutls_datum_t) { .data = (unsigned char *)m, .size = size };
        b = (gnutls_datum_t) { .data = e, .size = sizeof(e) };
        ret = gnutls_pubkey_init(&pub);
        if (ret >= 0) {
            ret = gnutls_pubkey_import_rsa_raw(pub, &a, &b);
        }
    } else if (type == TPM_ALG_ECC) {
        uint16_t curve = tpm_u16(&r);

        tpm_skip_alg(&r, 1);            /* kdf: hashAlg */
        x = tpm_2b(&r, &xs);
        y = tpm_2b(&r, &ys);
        if (r.bad || (curve != TPM_ECC_NIST_P256 &&
                      curve != TPM_ECC_NIST_P384)) {
            goto bad;
        }
        a = (gnutls_datum_t) { .data = (unsigned char *)x, .size = xs };
        b = (gnutls_datum_t) { .data = (unsigned char *)y, .size = ys };
        ret = gnutls_pubkey_init(&pub);
        if (ret >= 0) {
            ret = gnutls_pubkey_import_ecc_raw(
                pub, curve == TPM_ECC_NIST_P256 ? GNUTLS_ECC_CURVE_SECP256R1
                                                : GNUTLS_ECC_CURVE_SECP384R1,
                &a, &b);
        }
    } else {
        goto bad;
    }
    if (ret >= 0 && (rest || r.left == 0)) {
        if (rest) {
            *rest = r;
        }
        return pub;
    }
bad:
    *why = g_strdup_printf("malformed or unsupported TPMT_PUBLIC (%zu "
                           "bytes)", len);
    if (pub) {
        gnutls_pubkey_deinit(pub);
    }
    return NULL;
}

/* Does the key fit the NV index's key type? */
static bool ca_ek_type_ok(gnutls_pubkey_t pub, uint32_t nv)
{
    unsigned int bits = 0;
    int algo = gnutls_pubkey_get_pk_algorithm(pub, &bits);

    switch (nv) {
    case NV_EK_RSA2048:
        return algo == GNUTLS_PK_RSA && bits == 2048;
    case NV_EK_ECC_P256:
        return algo == GNUTLS_PK_ECDSA && bits == 256;
    case NV_EK_ECC_P384:
        return algo == GNUTLS_PK_ECDSA && bits == 384;
    }
    return false;
}

static bool ca_write_file(const char *path, const void *data, size_t len,
                          char **why)
{
    g_autoptr(GError) gerr = NULL;

    /* g_file_set_contents_full writes a temporary file and renames it */
    if (!g_file_set_contents_full(path, data, len,
                                  G_FILE_SET_CONTENTS_CONSISTENT, 0640,
                                  &gerr)) {
        *why = g_strdup(gerr->message);
        return false;
    }
    return true;
}

CocoAttestCaResult coco_attest_ca_certify_ek(CocoAttestCa *ca, uint32_t nv,
                                             CocoAttestKeyFormat format,
                                             const uint8_t *key, size_t len,
                                             GPtrArray **certs, char **why)
{
    g_autofree char *pub_path = g_strdup_printf("%s/%s/ek-%08x.pub",
                                                ca->dir, CA_EK_DIR, nv);
    g_autofree char *crt_path = g_strdup_printf("%s/%s/ek-%08x.crt",
                                                ca->dir, CA_EK_DIR, nv);
    g_autofree char *chain_path = g_strdup_printf("%s/%s/ek-%08x.chain.pem",
                                                  ca->dir, CA_EK_DIR, nv);
    g_autofree gchar *old = NULL, *old_crt = NULL;
    CaMaterial *m = NULL;
    gnutls_pubkey_t pub = NULL;
    gnutls_x509_crt_t crt = NULL;
    gnutls_datum_t spki = { 0 }, der = { 0 }, d;
    gsize old_len, old_crt_len;
    CocoAttestCaResult res = COCO_ATTEST_CA_MALFORMED;
    size_t i;
    int ret;

    if (len > CA_MAX_CSR) {
        *why = g_strdup_printf("EK public key of %zu bytes", len);
        return COCO_ATTEST_CA_MALFORMED;
    }
    if (format == COCO_ATTEST_KEY_TPMT_PUBLIC) {
        pub = tpmt_public_to_pubkey(key, len, NULL, why);
        if (!pub) {
            return COCO_ATTEST_CA_MALFORMED;
        }
    } else {
        d = (gnutls_datum_t) { .data = (unsigned char *)key, .size = len };
        if (gnutls_pubkey_init(&pub) < 0 ||
            gnutls_pubkey_import(pub, &d, GNUTLS_X509_FMT_DER) < 0) {
            *why = g_strdup("not a DER SubjectPublicKeyInfo");
            goto out;
        }
    }
    if (!ca_ek_type_ok(pub, nv)) {
        *why = g_strdup_printf("key type does not match NV index 0x%08x", nv);
        res = COCO_ATTEST_CA_UNSUPPORTED_KEY;
        goto out;
    }
    if (gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &spki) < 0) {
        res = COCO_ATTEST_CA_FAILED;
        goto out;
    }

    m = ca_material_get(ca);
    qemu_mutex_lock(&ca->lock);
    if (g_file_get_contents(pub_path, &old, &old_len, NULL)) {
        if (old_len == spki.size && !memcmp(old, spki.data, old_len) &&
            g_file_get_contents(crt_path, &old_crt, &old_crt_len, NULL) &&
            old_crt_len && old_crt_len <= CA_MAX_CERT_FILE) {
            /* the same EK again: the same certificate, stable */
            d = (gnutls_datum_t) { .data = (unsigned char *)old_crt,
                                   .size = old_crt_len };
            *certs = ca_ek_chain(ca, m, nv, &d);
            res = COCO_ATTEST_CA_OK;
            goto unlock;
        }
        if (!ca->claims.ek_rekey) {
            *why = g_strdup_printf("NV index 0x%08x already has another EK "
                                   "and the policy forbids re-keying", nv);
            res = COCO_ATTEST_CA_EK_MISMATCH;
            goto unlock;
        }
    }
    res = COCO_ATTEST_CA_FAILED;
    ret = gnutls_x509_crt_init(&crt);
    if (ret >= 0) {
        ret = gnutls_x509_crt_set_version(crt, 3);
    }
    if (ret >= 0) {
        ret = ca_set_serial(crt);
    }
    if (ret >= 0) {
        ret = gnutls_x509_crt_set_activation_time(crt, time(NULL) - 300);
    }
    if (ret >= 0) {
        /* an EK lives as long as its TPM: 99991231235959Z */
        ret = gnutls_x509_crt_set_expiration_time(
            crt, GNUTLS_X509_NO_WELL_DEFINED_EXPIRATION);
    }
    if (ret >= 0) {
        ret = gnutls_x509_crt_set_pubkey(crt, pub);
    }
    for (i = 0; ret >= 0 && i < G_N_ELEMENTS(ca_ek_ext_oids); i++) {
        ret = gnutls_x509_crt_set_extension_by_oid(
            crt, ca_ek_ext_oids[i], g_bytes_get_data(m->ek_ext[i], NULL),
            g_bytes_get_size(m->ek_ext[i]), m->ek_ext_critical[i]);
    }
    if (ret >= 0) {
        ret = gnutls_x509_crt_set_basic_constraints(crt, 0, -1);
    }
    if (ret >= 0) {
        ret = gnutls_x509_crt_set_key_usage(
            crt, nv == NV_EK_RSA2048 ? GNUTLS_KEY_KEY_ENCIPHERMENT
                                     : GNUTLS_KEY_KEY_AGREEMENT);
    }
    if (ret >= 0) {
        ret = gnutls_x509_crt_set_extension_by_oid(
            crt, ca->claims.oid, g_bytes_get_data(m->identity_ext, NULL),
            g_bytes_get_size(m->identity_ext), 0);
    }
    if (ret >= 0) {
        ret = ca_set_gce(m, crt);
    }
    if (ret >= 0) {
        ret = gnutls_x509_crt_set_authority_key_id(crt, m->issuer_ski,
                                                   m->issuer_ski_len);
    }
    if (ret >= 0) {
        ret = gnutls_x509_crt_privkey_sign(crt, m->issuer, m->key,
                                           GNUTLS_DIG_SHA256, 0);
    }
    if (ret >= 0) {
        ret = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &der);
    }
    if (ret < 0) {
        *why = g_strdup_printf("issuing the EK certificate: %s",
                               gnutls_strerror(ret));
        goto unlock;
    }
    /* chain, certificate, then the key that marks the set complete */
    if (!ca_write_file(chain_path, g_bytes_get_data(m->chain_pem, NULL),
                       g_bytes_get_size(m->chain_pem), why) ||
        !ca_write_file(crt_path, der.data, der.size, why) ||
        !ca_write_file(pub_path, spki.data, spki.size, why)) {
        goto unlock;
    }
    *certs = ca_chain_with(m, &der);
    res = COCO_ATTEST_CA_OK;
unlock:
    qemu_mutex_unlock(&ca->lock);
out:
    ca_material_unref(m);
    gnutls_free(der.data);
    gnutls_free(spki.data);
    if (crt) {
        gnutls_x509_crt_deinit(crt);
    }
    if (pub) {
        gnutls_pubkey_deinit(pub);
    }
    return res;
}

#define TPM_ALG_SHA256      0x000b
#define TPM_ALG_RSASSA      0x0014
#define TPM_ALG_ECDSA       0x0018

CocoAttestCaResult coco_attest_ca_certify_tpm_ak(CocoAttestCa *ca,
                                                 const uint8_t *buf,
                                                 size_t len,
                                                 const uint8_t *nonce,
                                                 size_t nonce_len,
                                                 GPtrArray **certs,
                                                 char **why)
{
    TpmReader r;
    gnutls_pubkey_t pub;
    gnutls_datum_t data = { .data = (unsigned char *)nonce,
                            .size = nonce_len };
    gnutls_datum_t sig = { 0 }, a, b;
    gnutls_sign_algorithm_t algo;
    const uint8_t *x, *y;
    uint16_t sig_alg, hash, xs, ys;
    CocoAttestCaResult res = COCO_ATTEST_CA_MALFORMED;
    int ret;

    if (len > CA_MAX_CSR) {
        *why = g_strdup_printf("TPM AK proof of %zu bytes", len);
        return COCO_ATTEST_CA_MALFORMED;
    }
    pub = tpmt_public_to_pubkey(buf, len, &r, why);
    if (!pub) {
        return COCO_ATTEST_CA_MALFORMED;
    }
    /* TPMT_SIGNATURE: sigAlg, hash, then the algorithm's fields */
    sig_alg = tpm_u16(&r);
    hash = tpm_u16(&r);
    if (sig_alg == TPM_ALG_ECDSA) {
        x = tpm_2b(&r, &xs);
        y = tpm_2b(&r, &ys);
        if (!r.bad) {
            a = (gnutls_datum_t) { .data = (unsigned char *)x, .size = xs };
            b = (gnutls_datum_t) { .data = (unsigned char *)y, .size = ys };
            if (gnutls_encode_rs_value(&sig, &a, &b) < 0) {
                r.bad = true;
            }
        }
        algo = gnutls_pk_to_sign(GNUTLS_PK_ECDSA, GNUTLS_DIG_SHA256);
    } else if (sig_alg == TPM_ALG_RSASSA) {
        x = tpm_2b(&r, &xs);
        if (!r.bad) {
            sig.data = gnutls_malloc(xs);
            memcpy(sig.data, x, xs);
            sig.size = xs;
        }
        algo = GNUTLS_SIGN_RSA_SHA256;
    } else {
        r.bad = true;
        algo = GNUTLS_SIGN_UNKNOWN;
    }
    if (r.bad || r.left || hash != TPM_ALG_SHA256) {
        *why = g_strdup("malformed or unsupported TPMT_SIGNATURE "
                        "(ECDSA or RSASSA with SHA-256 expected)");
        goto out;
    }
    if (!ca_key_acceptable(pub, why)) {
        res = COCO_ATTEST_CA_UNSUPPORTED_KEY;
        goto out;
    }
    /* the AK signed SHA-256(nonce): proof of possession, and freshness */
    ret = gnutls_pubkey_verify_data2(pub, algo, 0, &data, &sig);
    if (ret < 0) {
        *why = g_strdup_printf("AK signature over the nonce: %s",
                               gnutls_strerror(ret));
        res = COCO_ATTEST_CA_BAD_SIGNATURE;
        goto out;
    }
    res = ca_issue(ca, pub, GNUTLS_KEY_DIGITAL_SIGNATURE,
                   TCG_KP_AIK_CERTIFICATE, certs, why);
out:
    gnutls_free(sig.data);
    gnutls_pubkey_deinit(pub);
    return res;
}

CocoAttestCaResult coco_attest_ca_ek_cert(CocoAttestCa *ca, uint32_t nv,
                                          GPtrArray **certs)
{
    g_autofree char *name = g_strdup_printf("%s/ek-%08x.crt", CA_EK_DIR, nv);
    g_autofree char *path = g_build_filename(ca->dir, name, NULL);
    g_autofree gchar *data = NULL;
    gnutls_datum_t der;
    CaMaterial *m;
    gsize len;

    if (!g_file_get_contents(path, &data, &len, NULL)) {
        return COCO_ATTEST_CA_NOT_PROVISIONED;
    }
    if (len == 0 || len > CA_MAX_CERT_FILE) {
        return COCO_ATTEST_CA_FAILED;
    }
    der.data = (unsigned char *)data;
    der.size = len;
    m = ca_material_get(ca);
    *certs = ca_ek_chain(ca, m, nv, &der);
    ca_material_unref(m);
    return COCO_ATTEST_CA_OK;
}

/* ------------------------------------------------------------------ */
/* QOM                                                                 */
/* ------------------------------------------------------------------ */

static char *ca_get_dir(Object *obj, Error **errp)
{
    return g_strdup(COCO_ATTEST_CA(obj)->dir);
}

static void ca_set_dir(Object *obj, const char *value, Error **errp)
{
    CocoAttestCa *ca = COCO_ATTEST_CA(obj);

    /* worker threads read it */
    if (!coco_attest_prop_settable(obj, ca->ready, "dir", errp)) {
        return;
    }
    g_free(ca->dir);
    ca->dir = g_strdup(value);
}

static void ca_instance_init(Object *obj)
{
    CocoAttestCa *ca = COCO_ATTEST_CA(obj);

    ca->limit.rate = 60;
    ca->limit.burst = 10;
    stat64_init(&ca->not_after, 0);
    qemu_mutex_init(&ca->mat_lock);
    qemu_mutex_init(&ca->lock);
}

static void ca_instance_finalize(Object *obj)
{
    CocoAttestCa *ca = COCO_ATTEST_CA(obj);

    ca_material_unref(ca->mat);
    ca_claims_clear(&ca->claims);
    g_free(ca->dir);
    qemu_mutex_destroy(&ca->mat_lock);
    qemu_mutex_destroy(&ca->lock);
}

static const CocoAttestU32Prop ca_u32_props[] = {
    COCO_ATTEST_U32_PROP(CocoAttestCa, limit.rate, "rate",
        "certificates the instance may have issued per minute "
        "(default: 60)"),
    COCO_ATTEST_U32_PROP(CocoAttestCa, limit.burst, "burst",
        "certificates the instance may have issued at once after a "
        "quiet period (default: 10)"),
};

static void ca_class_init(ObjectClass *oc, void *data)
{
    UserCreatableClass *ucc = USER_CREATABLE_CLASS(oc);

    ucc->complete = ca_complete;
    object_class_property_add_str(oc, "dir", ca_get_dir, ca_set_dir);
    object_class_property_set_description(oc, "dir",
        "instance directory written by coco-attest-provision");
    coco_attest_class_add_u32_props(oc, ca_u32_props,
                                    G_N_ELEMENTS(ca_u32_props));
}

static const TypeInfo ca_info = {
    .name = TYPE_COCO_ATTEST_CA,
    .parent = TYPE_OBJECT,
    .instance_size = sizeof(CocoAttestCa),
    .instance_init = ca_instance_init,
    .instance_finalize = ca_instance_finalize,
    .class_init = ca_class_init,
    .interfaces = (InterfaceInfo[]) {
        { TYPE_USER_CREATABLE },
        { }
    },
};

static void ca_register_types(void)
{
    type_register_static(&ca_info);
}

type_init(ca_register_types)
