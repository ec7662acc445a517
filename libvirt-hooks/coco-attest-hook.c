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

#include "hook-domain.h"
#include "provision.h"

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

int main(int argc, char **argv)
{
    g_autofree char *xml = NULL, *why = NULL, *dir = NULL;
    g_autoptr(GError) err = NULL;
    GString *in = g_string_new(NULL);
    HookConf hc = { 0 };
    CocaDomain d;
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
            g_string_free(in, TRUE);
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
    if (!coca_domain_parse(in->str, in->len, &d, &why)) {
        g_string_free(in, TRUE);
        coca_domain_clear(&d);
        /* a running domain must never be killed by the hook */
        if (!strcmp(op, "reconnect")) {
            return 0;
        }
        return refuse("%s: %s", argv[1], why);
    }
    g_string_free(in, TRUE);
    if (!d.has_identity) {
        coca_domain_clear(&d);
        return 0;
    }
    if (!coca_uuid_ok(d.uuid)) {
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
    coca_domain_clear(&d);
    g_free(hc.ca_cert);
    g_free(hc.ca_key);
    g_free(hc.state_dir);
    g_free(hc.group);
    return rc;
}
