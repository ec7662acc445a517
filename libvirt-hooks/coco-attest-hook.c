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
 * Domains without coco-attest metadata are ignored, unless their
 * <qemu:commandline> points into the hook's state directory.  At prepare
 * the command line must carry -object coco-attest-ca with this domain's
 * own instance directory and -device coco-attest.  Configuration:
 * /etc/coco-attest/hook.conf (or $COCO_ATTEST_HOOK_CONF), see
 * docs/libvirt.md; "coco-attest-hook --check-config [FILE]" checks one.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>
#include <libxml/parser.h>

#include "hook-conf.h"
#include "hook-domain.h"
#include "provision.h"

#define MAX_XML             (4 * 1024 * 1024)

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

/* --check-config [FILE]: what the hook would use, or why not */
static int check_config(const char *path)
{
    g_auto(CocaHookConf) hc = { 0 };
    g_autoptr(GError) err = NULL;

    if (!coca_hook_conf_load(path, &hc, &err)) {
        return refuse("%s", err->message);
    }
    printf("config=%s\nca-cert=%s\nca-key=%s\nstate-dir=%s\ngroup=%s\n"
           "validity-hours=%d\n", hc.path, hc.ca_cert, hc.ca_key,
           hc.state_dir, hc.group, hc.validity_hours);
    if (!getgrnam(hc.group)) {
        return refuse("%s: group '%s' does not exist", hc.path, hc.group);
    }
    return 0;
}

/*
 * The hook writes and deletes as root under the state directory: it must
 * be the hook's own (a real directory, owned by the hook's user and
 * writable by it alone), and an instance directory already there must be
 * a real directory of that user, never a symlink planted by someone
 * else.
 */
static int check_state(const char *name, const CocaHookConf *hc,
                       const char *dir)
{
    struct stat st;

    if (lstat(hc->state_dir, &st) == 0 &&
        (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
         (st.st_mode & (S_IWGRP | S_IWOTH)))) {
        return refuse("%s: the state directory %s must be a directory "
                      "(not a symlink) owned by uid %u and writable by it "
                      "alone", name, hc->state_dir, (unsigned)geteuid());
    }
    if (lstat(dir, &st) == 0 &&
        (!S_ISDIR(st.st_mode) || st.st_uid != geteuid())) {
        return refuse("%s: %s is not a directory the hook made (a symlink, "
                      "or owned by another user): refusing to touch it",
                      name, dir);
    }
    return 0;
}

/*
 * Whether path is, or may resolve to, something inside dir: lexically,
 * or through symlinks and /proc/self/root as QEMU would resolve it.
 */
static gboolean under_dir(const char *path, const char *dir)
{
    g_autofree char *cp = g_canonicalize_filename(path, "/");
    g_autofree char *cd = g_canonicalize_filename(dir, "/");
    g_autofree char *real = realpath(path, NULL);
    size_t n = strlen(cd);

    if (strstr(path, "/proc/")) {
        return TRUE;
    }
    return (!strncmp(cp, cd, n) && (cp[n] == '/' || !cp[n])) ||
           (real && !strncmp(real, cd, n) && (real[n] == '/' || !real[n]));
}

/*
 * The domain's <qemu:commandline> against its metadata, at prepare: the
 * device must be there when the metadata is, and its coco-attest-ca must
 * name this domain's own instance directory -- a command line copied
 * from another domain would otherwise hand that domain's identity over.
 */
static int check_cmdline(const char *name, const CocaDomain *d,
                         const CocaHookConf *hc)
{
    g_autofree char *dir = coca_hook_instance_dir(hc, d->uuid);

    if (!d->has_identity) {
        for (guint i = 0; i < d->ca_dirs->len; i++) {
            const char *o = g_ptr_array_index(d->ca_dirs, i);

            if (under_dir(o, hc->state_dir)) {
                return refuse("%s: -object coco-attest-ca,dir=%s is in the "
                              "hook's state directory, but the domain has "
                              "no coca:instance metadata, so nothing "
                              "provisions it: add the metadata "
                              "(docs/libvirt.md)", name, o);
            }
        }
        return 0;
    }
    if (d->cmdline_hazard) {
        return refuse("%s: <qemu:commandline> has %s, which could undo the "
                      "hook's checks of the coco-attest arguments", name,
                      d->cmdline_hazard);
    }
    if (!d->ca_dirs->len) {
        return refuse("%s: the domain has coca:instance metadata but no "
                      "-object coco-attest-ca in <qemu:commandline>, so it "
                      "would boot without its identity: add what "
                      "'coco-attest-provision print-xml --uuid %s' prints",
                      name, d->uuid);
    }
    for (guint i = 0; i < d->ca_dirs->len; i++) {
        const char *o = g_ptr_array_index(d->ca_dirs, i);

        /* byte for byte: "dir/ek/link/../.." is not this directory */
        if (strcmp(o, dir)) {
            return refuse("%s: -object coco-attest-ca names dir=%s, but "
                          "this domain's instance directory is %s (a "
                          "<qemu:commandline> copied from another "
                          "domain?): 'coco-attest-provision print-xml "
                          "--uuid %s' prints the right one",
                          name, o, dir, d->uuid);
        }
    }
    if (!d->n_devices) {
        return refuse("%s: <qemu:commandline> has -object coco-attest-ca "
                      "but no -device coco-attest", name);
    }
    return 0;
}

int main(int argc, char **argv)
{
    g_autofree char *why = NULL, *dir = NULL;
    g_autoptr(GError) err = NULL;
    GString *in;
    g_auto(CocaHookConf) hc = { 0 };
    CocaDomain d;
    CocaCa ca;
    char buf[65536];
    size_t n;
    gid_t gid;
    const char *op, *sub;
    gboolean have_conf;
    int rc = 0;

    if (argc >= 2 && !strcmp(argv[1], "--check-config")) {
        return check_config(argc >= 3 ? argv[2] : NULL);
    }
    if (argc < 4) {
        fprintf(stderr, "usage: %s DOMAIN OPERATION SUB-OPERATION [EXTRA] "
                "< domain.xml\n"
                "       %s --check-config [FILE]\n", argv[0], argv[0]);
        return 2;
    }
    op = argv[2];
    sub = argv[3];
    /* XML filters: hand the document back untouched, whatever its size */
    if ((!strcmp(op, "restore") || !strcmp(op, "migrate")) &&
        !strcmp(sub, "begin")) {
        while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0) {
            if (fwrite(buf, 1, n, stdout) != n) {
                return 1;
            }
        }
        return 0;
    }
    if (strcmp(op, "prepare") && strcmp(op, "release") &&
        strcmp(op, "reconnect")) {
        return 0;
    }
    in = g_string_new(NULL);
    while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0) {
        if (in->len + n > MAX_XML) {
            g_string_free(in, TRUE);
            /* never fail a running or stopping domain over it */
            return strcmp(op, "prepare") ? 0 :
                   refuse("domain XML larger than %d bytes", MAX_XML);
        }
        g_string_append_len(in, buf, n);
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
    if (!coca_uuid_ok(d.uuid)) {
        rc = d.has_identity ?
             refuse("%s: unexpected domain uuid '%s'", argv[1], d.uuid) : 0;
        goto out;
    }
    have_conf = coca_hook_conf_load(NULL, &hc, &err);
    if (!d.has_identity) {
        /* other domains are none of the hook's business ... */
        if (have_conf && !strcmp(op, "prepare") && !strcmp(sub, "begin")) {
            /* ... unless they point into its state directory */
            rc = check_cmdline(argv[1], &d, &hc);
        }
        goto out;
    }
    if (!have_conf) {
        rc = strcmp(op, "reconnect") ? refuse("%s", err->message) : 0;
        goto out;
    }
    dir = coca_hook_instance_dir(&hc, d.uuid);

    if (!strcmp(op, "release") && !strcmp(sub, "end")) {
        /* the VM is gone: the issuing key goes, the EK state stays */
        rc = check_state(argv[1], &hc, dir);
        if (rc) {
            goto out;
        }
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
        struct group *gr = getgrnam(hc.group);

        if (!gr) {
            rc = refuse("group '%s' does not exist (set [hook] group= in "
                        "%s)", hc.group, hc.path);
            goto out;
        }
        gid = gr->gr_gid;
    }
    d.claims.validity_hours = hc.validity_hours;
    /* QEMU refuses the directory in a machine with another -uuid */
    d.claims.vm_uuid = g_ascii_strdown(d.uuid, -1);
    if (!coca_claims_validate(&d.claims, &err)) {
        rc = refuse("%s: %s", argv[1], err->message);
        goto out;
    }
    if (d.schema_why) {
        rc = refuse("%s: %s", argv[1], d.schema_why);
        goto out;
    }
    rc = check_cmdline(argv[1], &d, &hc);
    if (rc) {
        goto out;
    }
    ca.cert_path = hc.ca_cert;
    ca.key_uri = hc.ca_key;
    if (g_mkdir_with_parents(hc.state_dir, 0755) < 0) {
        rc = refuse("%s: cannot create %s: %s", argv[1], hc.state_dir,
                    g_strerror(errno));
        goto out;
    }
    rc = check_state(argv[1], &hc, dir);
    if (rc) {
        goto out;
    }
    if (!coca_provision(&ca, dir, &d.claims, gid, NULL, 0, &err)) {
        rc = refuse("%s: %s", argv[1],
                    err ? err->message : "cannot create the state directory");
        goto out;
    }
out:
    coca_domain_clear(&d);
    return rc;
}
