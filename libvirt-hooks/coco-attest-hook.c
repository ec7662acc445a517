/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * coco-attest libvirt qemu hook: provisions a domain's platform identity
 * from its <metadata> when it starts, removes the transient parts when it
 * stops.  Installed as /etc/libvirt/hooks/qemu.d/50-coco-attest; libvirt
 * runs it as "HOOK DOMAIN OPERATION SUB-OPERATION EXTRA" with the domain
 * XML on stdin.
 *
 *   prepare begin    parse and validate the metadata, provision
 *                    <state-dir>/<uuid>/ (a non-zero exit and a one-line
 *                    reason on stderr block the start)
 *   release end      remove the issuing key and the transient files,
 *                    keep the persistent EK state
 *   reconnect begin  never fails on a healthy instance
 *   restore/migrate  pass the XML through unchanged
 *
 * Domains without coco-attest metadata are ignored.  Configuration:
 * /etc/coco-attest/hook.conf (or $COCO_ATTEST_HOOK_CONF), see
 * docs/libvirt.md.
 */

#define _GNU_SOURCE
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>

#include "provision.h"

#define COCA_XMLNS          "https://coco-attest.invalid/xmlns/domain/1"
#define DEFAULT_CONF        "/etc/coco-attest/hook.conf"
#define DEFAULT_STATE_DIR   "/var/lib/coco-attest"
#define DEFAULT_GROUP       "libvirt-qemu"
#define MAX_XML             (4 * 1024 * 1024)

typedef struct HookConf {
    char *ca_cert;
    char *ca_key;
    char *state_dir;
    char *group;
    int validity_hours;
} HookConf;

static int refuse(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

/* One line on stderr: libvirt shows it in the virsh start error. */
static int refuse(const char *fmt, ...)
{
    va_list ap;

    fputs("coco-attest: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

static gboolean load_conf(HookConf *hc, GError **errp)
{
    const char *path = g_getenv("COCO_ATTEST_HOOK_CONF");
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autofree char *ca_dir = NULL;

    if (!path) {
        path = DEFAULT_CONF;
    }
    if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, errp)) {
        g_prefix_error(errp, "%s: ", path);
        return FALSE;
    }
    ca_dir = g_key_file_get_string(kf, "ca", "dir", NULL);
    hc->ca_cert = g_key_file_get_string(kf, "ca", "cert", NULL);
    hc->ca_key = g_key_file_get_string(kf, "ca", "key", NULL);
    if (ca_dir && !hc->ca_cert) {
        hc->ca_cert = g_build_filename(ca_dir, "ca.crt", NULL);
    }
    if (ca_dir && !hc->ca_key) {
        hc->ca_key = g_build_filename(ca_dir, "ca.key", NULL);
    }
    if (!hc->ca_cert || !hc->ca_key) {
        g_set_error(errp, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_NOT_FOUND,
                    "%s: [ca] needs dir=, or cert= and key=", path);
        return FALSE;
    }
    hc->state_dir = g_key_file_get_string(kf, "hook", "state-dir", NULL);
    if (!hc->state_dir) {
        hc->state_dir = g_strdup(DEFAULT_STATE_DIR);
    }
    hc->group = g_key_file_get_string(kf, "hook", "group", NULL);
    hc->validity_hours = g_key_file_get_integer(kf, "hook", "validity-hours",
                                                NULL);
    if (hc->validity_hours <= 0) {
        hc->validity_hours = 24;
    }
    return TRUE;
}

/* The text of the first node matching expr, or NULL */
static char *xpath_str(xmlXPathContextPtr ctx, const char *expr)
{
    xmlXPathObjectPtr o = xmlXPathEvalExpression((const xmlChar *)expr, ctx);
    char *ret = NULL;

    if (o && o->nodesetval && o->nodesetval->nodeNr > 0) {
        xmlChar *s = xmlNodeGetContent(o->nodesetval->nodeTab[0]);

        if (s) {
            ret = g_strstrip(g_strdup((const char *)s));
            xmlFree(s);
        }
    }
    xmlXPathFreeObject(o);
    return ret;
}

static gboolean parse_bool(const char *s, gboolean *out)
{
    if (!s) {
        return TRUE;
    }
    if (!strcmp(s, "yes") || !strcmp(s, "true")) {
        *out = TRUE;
    } else if (!strcmp(s, "no") || !strcmp(s, "false")) {
        *out = FALSE;
    } else {
        return FALSE;
    }
    return TRUE;
}

typedef struct Domain {
    char *uuid;
    char *name;
    gboolean has_identity;
    CocaClaims claims;
    gid_t dac_gid;              /* from <seclabel model='dac'>, or -1 */
} Domain;

/*
 * Parse the domain XML.  Returns FALSE with a reason for XML that is
 * broken or metadata that is invalid; domains without coco-attest
 * metadata parse fine with has_identity FALSE.
 */
static gboolean parse_domain(const char *xml, gsize len, Domain *d,
                             char **why)
{
    xmlDocPtr doc;
    xmlXPathContextPtr ctx = NULL;
    g_autofree char *num = NULL, *gce = NULL, *rekey = NULL, *label = NULL;
    gboolean ok = FALSE;
    char *end;

    memset(d, 0, sizeof(*d));
    d->dac_gid = (gid_t)-1;
    doc = xmlReadMemory(xml, len, "domain.xml", NULL,
                        XML_PARSE_NONET |
                        XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc) {
        *why = g_strdup("the domain XML does not parse");
        return FALSE;
    }
    ctx = xmlXPathNewContext(doc);
    if (!ctx ||
        xmlXPathRegisterNs(ctx, (const xmlChar *)"coca",
                           (const xmlChar *)COCA_XMLNS) != 0) {
        *why = g_strdup("out of memory");
        goto out;
    }
    d->uuid = xpath_str(ctx, "/domain/uuid");
    d->name = xpath_str(ctx, "/domain/name");
    if (!d->uuid || !d->name) {
        *why = g_strdup("the domain XML has no uuid or name");
        goto out;
    }
    {
        xmlXPathObjectPtr o = xmlXPathEvalExpression(
            (const xmlChar *)"/domain/metadata/coca:instance", ctx);

        d->has_identity = o && o->nodesetval && o->nodesetval->nodeNr > 0;
        if (d->has_identity && o->nodesetval->nodeNr > 1) {
            xmlXPathFreeObject(o);
            *why = g_strdup("more than one coca:instance in <metadata>");
            goto out;
        }
        xmlXPathFreeObject(o);
    }
    if (!d->has_identity) {
        ok = TRUE;
        goto out;
    }

#define I "/domain/metadata/coca:instance/"
    d->claims.project_id = xpath_str(ctx, I "coca:project/@id");
    num = xpath_str(ctx, I "coca:project/@number");
    d->claims.zone = xpath_str(ctx, I "coca:zone");
    d->claims.instance_name = xpath_str(ctx, I "coca:name");
    d->claims.instance_id = xpath_str(ctx, I "coca:id");
    d->claims.oid = xpath_str(ctx, I "coca:profile/@oid");
    gce = xpath_str(ctx, I "coca:profile/@gce");
    rekey = xpath_str(ctx, I "coca:ek/@rekey");
#undef I
    if (!d->claims.instance_name) {
        d->claims.instance_name = g_strdup(d->name);
    }
    if (!d->claims.instance_id) {
        d->claims.instance_id = g_strdup(d->uuid);
    }
    if (!num || !g_ascii_isdigit(*num) ||
        (d->claims.project_number = g_ascii_strtoull(num, &end, 10),
         *end)) {
        *why = g_strdup("coca:project needs a decimal number attribute");
        goto out;
    }
    if (!parse_bool(gce, &d->claims.gce) ||
        !parse_bool(rekey, &d->claims.ek_rekey)) {
        *why = g_strdup("coca:profile/@gce and coca:ek/@rekey are yes or "
                        "no");
        goto out;
    }
    /* <seclabel type='...' model='dac'><label>+UID:+GID</label> */
    label = xpath_str(ctx, "/domain/seclabel[@model='dac']/label");
    if (label) {
        const char *colon = strchr(label, ':');

        if (colon && colon[1] == '+' && g_ascii_isdigit(colon[2])) {
            d->dac_gid = (gid_t)g_ascii_strtoull(colon + 2, NULL, 10);
        }
    }
    ok = TRUE;
out:
    xmlXPathFreeContext(ctx);
    xmlFreeDoc(doc);
    return ok;
}

static void domain_clear(Domain *d)
{
    g_free(d->uuid);
    g_free(d->name);
    coca_claims_clear(&d->claims);
}

static gboolean uuid_ok(const char *u)
{
    return strlen(u) == 36 && strspn(u, "0123456789abcdefABCDEF-") == 36;
}

int main(int argc, char **argv)
{
    g_autofree char *xml = NULL, *why = NULL, *dir = NULL;
    g_autoptr(GError) err = NULL;
    GString *in = g_string_new(NULL);
    HookConf hc = { 0 };
    Domain d;
    CocaCa ca;
    char buf[65536];
    size_t n;
    gid_t gid;
    const char *op, *sub;
    int rc = 0;

    if (argc < 4) {
        fprintf(stderr, "usage: %s DOMAIN OPERATION SUB-OPERATION [EXTRA] "
                "< domain.xml\n", argv[0]);
        return 2;
    }
    op = argv[2];
    sub = argv[3];
    while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0) {
        if (in->len + n > MAX_XML) {
            return refuse("domain XML larger than %d bytes", MAX_XML);
        }
        g_string_append_len(in, buf, n);
    }
    /* XML filters: hand the document back untouched */
    if ((!strcmp(op, "restore") || !strcmp(op, "migrate")) &&
        !strcmp(sub, "begin")) {
        fwrite(in->str, 1, in->len, stdout);
        g_string_free(in, TRUE);
        return 0;
    }
    if (strcmp(op, "prepare") && strcmp(op, "release") &&
        strcmp(op, "reconnect")) {
        g_string_free(in, TRUE);
        return 0;
    }
    if (!parse_domain(in->str, in->len, &d, &why)) {
        g_string_free(in, TRUE);
        /* a running domain must never be killed by the hook */
        if (!strcmp(op, "reconnect")) {
            return 0;
        }
        return refuse("%s: %s", argv[1], why);
    }
    g_string_free(in, TRUE);
    if (!d.has_identity) {
        domain_clear(&d);
        return 0;
    }
    if (!uuid_ok(d.uuid)) {
        rc = refuse("%s: unexpected domain uuid '%s'", argv[1], d.uuid);
        goto out;
    }
    if (!load_conf(&hc, &err)) {
        rc = strcmp(op, "reconnect") ? refuse("%s", err->message) : 0;
        goto out;
    }
    dir = g_build_filename(hc.state_dir, d.uuid, NULL);

    if (!strcmp(op, "release") && !strcmp(sub, "end")) {
        /* the VM is gone: the issuing key goes, the EK state stays */
        if (!coca_purge(dir, TRUE, &err)) {
            rc = refuse("%s", err->message);
        }
        goto out;
    }
    if (!strcmp(op, "reconnect")) {
        if (!coca_verify(dir, NULL, &err)) {
            fprintf(stderr, "coco-attest: %s: %s (the domain keeps "
                    "running)\n", argv[1], err->message);
        }
        goto out;
    }
    if (strcmp(op, "prepare") || strcmp(sub, "begin")) {
        goto out;
    }

    gid = d.dac_gid;
    if (gid == (gid_t)-1) {
        struct group *gr = getgrnam(hc.group ? hc.group : DEFAULT_GROUP);

        if (!gr) {
            rc = refuse("group '%s' does not exist (set [hook] group= in "
                        "the configuration)",
                        hc.group ? hc.group : DEFAULT_GROUP);
            goto out;
        }
        gid = gr->gr_gid;
    }
    d.claims.validity_hours = hc.validity_hours;
    if (!coca_claims_validate(&d.claims, &err)) {
        rc = refuse("%s: %s", argv[1], err->message);
        goto out;
    }
    ca.cert_path = hc.ca_cert;
    ca.key_uri = hc.ca_key;
    if (g_mkdir_with_parents(hc.state_dir, 0755) < 0 ||
        !coca_provision(&ca, dir, &d.claims, gid, NULL, 0, &err)) {
        rc = refuse("%s: %s", argv[1],
                    err ? err->message : "cannot create the state directory");
        goto out;
    }
out:
    domain_clear(&d);
    g_free(hc.ca_cert);
    g_free(hc.ca_key);
    g_free(hc.state_dir);
    g_free(hc.group);
    return rc;
}
