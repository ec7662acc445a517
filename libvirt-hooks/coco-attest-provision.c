/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * coco-attest-provision: manage the host CA and per-instance identity
 * directories for -object coco-attest-ca.
 */

#define _GNU_SOURCE
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "hook-conf.h"
#include "hook-domain.h"
#include "provision.h"

static const char usage_text[] =
"usage: coco-attest-provision COMMAND [OPTIONS]\n"
"\n"
"commands:\n"
"  init-ca    create a host CA (ca.key, ca.crt) in --ca-dir\n"
"  provision  create or refresh an instance directory for given claims\n"
"  renew      re-issue an instance's issuing certificate, also while its\n"
"             VM runs (QEMU picks it up without a restart)\n"
"  verify     check an instance directory against the host CA\n"
"  purge      remove an instance directory's transient parts (--keep-ek)\n"
"             or all of it\n"
"  print-xml  a libvirt domain XML with the device added (--domain),\n"
"             or the <qemu:commandline> alone (--uuid)\n"
"\n"
"Run 'coco-attest-provision COMMAND --help' for the options.\n";

static int fail(GError *err)
{
    fprintf(stderr, "coco-attest-provision: %s\n", err->message);
    g_error_free(err);
    return 1;
}

static gboolean parse(GOptionEntry *entries, const char *cmd, int *argc,
                      char ***argv, GError **errp)
{
    g_autofree char *title = g_strdup_printf("%s - coco-attest-provision",
                                             cmd);
    g_autoptr(GOptionContext) ctx = g_option_context_new(title);

    g_option_context_add_main_entries(ctx, entries, NULL);
    if (!g_option_context_parse(ctx, argc, argv, errp)) {
        return FALSE;
    }
    if (*argc > 1) {
        g_set_error(errp, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                    "unexpected argument '%s'", (*argv)[1]);
        return FALSE;
    }
    return TRUE;
}

/* --ca-dir, or --ca-cert and --ca-key; false (and a message) if neither */
static gboolean ca_from_options(CocaCa *ca, const char *ca_dir,
                                const char *ca_cert, const char *ca_key,
                                char **cert_path, char **key_path)
{
    if (ca_dir) {
        *cert_path = g_build_filename(ca_dir, "ca.crt", NULL);
        *key_path = g_build_filename(ca_dir, "ca.key", NULL);
    }
    ca->cert_path = ca_cert ? (char *)ca_cert : *cert_path;
    ca->key_uri = ca_key ? (char *)ca_key : *key_path;
    if (!ca->cert_path || !ca->key_uri) {
        fprintf(stderr, "coco-attest-provision: give --ca-dir, or "
                "--ca-cert and --ca-key\n");
        return FALSE;
    }
    return TRUE;
}

static int cmd_init_ca(int argc, char **argv)
{
    g_autofree char *ca_dir = NULL, *cn = NULL;
    int days = 3650;
    GOptionEntry entries[] = {
        { "ca-dir", 0, 0, G_OPTION_ARG_FILENAME, &ca_dir,
          "directory for ca.key and ca.crt (required)", "DIR" },
        { "cn", 0, 0, G_OPTION_ARG_STRING, &cn,
          "common name (default: coco-attest host CA)", "NAME" },
        { "days", 0, 0, G_OPTION_ARG_INT, &days,
          "validity in days (default 3650)", "N" },
        { NULL },
    };
    GError *err = NULL;

    if (!parse(entries, "init-ca", &argc, &argv, &err)) {
        return fail(err);
    }
    if (!ca_dir || days < 1 || days > 36500) {
        fprintf(stderr, "coco-attest-provision: init-ca needs --ca-dir and "
                "1 <= --days <= 36500\n");
        return 2;
    }
    if (!coca_ca_init(ca_dir, cn ? cn : "coco-attest host CA", days, &err)) {
        return fail(err);
    }
    printf("created %s/ca.key and %s/ca.crt\n", ca_dir, ca_dir);
    return 0;
}

static int cmd_provision(int argc, char **argv)
{
    g_autofree char *ca_dir = NULL, *ca_cert = NULL, *ca_key = NULL;
    g_autofree char *dir = NULL, *group = NULL, *ek_pub = NULL;
    g_autofree char *ek_nv = NULL, *project_number = NULL;
    g_auto(CocaClaims) c = { 0 };
    gboolean gce = FALSE, rekey = FALSE;
    int hours = 24;
    GOptionEntry entries[] = {
        { "ca-dir", 0, 0, G_OPTION_ARG_FILENAME, &ca_dir,
          "host CA directory (ca.crt, ca.key)", "DIR" },
        { "ca-cert", 0, 0, G_OPTION_ARG_FILENAME, &ca_cert,
          "host CA certificate (instead of --ca-dir)", "FILE" },
        { "ca-key", 0, 0, G_OPTION_ARG_STRING, &ca_key,
          "host CA key: a PEM file or an OpenSSL store URI such as "
          "pkcs11:... (instead of --ca-dir)", "URI" },
        { "instance-dir", 0, 0, G_OPTION_ARG_FILENAME, &dir,
          "the instance directory (required)", "DIR" },
        { "project-id", 0, 0, G_OPTION_ARG_STRING, &c.project_id,
          "project identifier (required)", "ID" },
        { "project-number", 0, 0, G_OPTION_ARG_STRING, &project_number,
          "project number (required)", "N" },
        { "zone", 0, 0, G_OPTION_ARG_STRING, &c.zone, "zone (required)",
          "ZONE" },
        { "instance-name", 0, 0, G_OPTION_ARG_STRING, &c.instance_name,
          "instance name (required)", "NAME" },
        { "instance-id", 0, 0, G_OPTION_ARG_STRING, &c.instance_id,
          "instance id, e.g. the domain UUID (required)", "ID" },
        { "uuid", 0, 0, G_OPTION_ARG_STRING, &c.vm_uuid,
          "the VM's UUID (QEMU -uuid, the libvirt domain UUID): QEMU "
          "refuses the directory for a machine with another -uuid", "UUID" },
        { "oid", 0, 0, G_OPTION_ARG_STRING, &c.oid,
          "identity extension OID (default " COCA_OID_IDENTITY ")", "OID" },
        { "gce", 0, 0, G_OPTION_ARG_NONE, &gce,
          "also emit Google's GCE instance-info extension (numeric "
          "instance-id)", NULL },
        { "ek-rekey", 0, 0, G_OPTION_ARG_NONE, &rekey,
          "allow the guest to certify a different EK later", NULL },
        { "validity-hours", 0, 0, G_OPTION_ARG_INT, &hours,
          "lifetime of the issuing certificate (default 24)", "H" },
        { "group", 0, 0, G_OPTION_ARG_STRING, &group,
          "make the directory root:GROUP 0750, files 0640 (QEMU's group)",
          "GROUP" },
        { "ek-pub", 0, 0, G_OPTION_ARG_FILENAME, &ek_pub,
          "issue the EK certificate for this public key (SPKI, DER or "
          "PEM) now", "FILE" },
        { "ek-nv", 0, 0, G_OPTION_ARG_STRING, &ek_nv,
          "TCG NV index of that EK certificate (default 0x01c0000a, "
          "ECC P-256; 0x01c00002 RSA-2048; 0x01c00016 P-384)", "INDEX" },
        { NULL },
    };
    CocaCa ca = { 0 };
    g_autofree char *cert_path = NULL, *key_path = NULL;
    gid_t gid = (gid_t)-1;
    uint32_t nv = 0x01c0000a;
    GError *err = NULL;
    char *end;

    if (!parse(entries, "provision", &argc, &argv, &err)) {
        return fail(err);
    }
    if (!dir || !project_number) {
        fprintf(stderr, "coco-attest-provision: provision needs "
                "--instance-dir and the claims (see --help)\n");
        return 2;
    }
    c.project_number = g_ascii_strtoull(project_number, &end, 10);
    if (!g_ascii_isdigit(*project_number) || *end) {
        fprintf(stderr, "coco-attest-provision: --project-number must be "
                "a decimal number\n");
        return 2;
    }
    if (hours < 1) {
        fprintf(stderr, "coco-attest-provision: bad --validity-hours\n");
        return 2;
    }
    c.validity_hours = hours;
    c.ek_rekey = rekey;
    c.gce = gce;
    if (ek_nv) {
        nv = strtoul(ek_nv, &end, 0);
        if (*end || (nv != 0x01c00002 && nv != 0x01c0000a &&
                     nv != 0x01c00016)) {
            fprintf(stderr, "coco-attest-provision: --ek-nv must be "
                    "0x01c00002, 0x01c0000a or 0x01c00016\n");
            return 2;
        }
    }
    if (!ca_from_options(&ca, ca_dir, ca_cert, ca_key, &cert_path,
                         &key_path)) {
        return 2;
    }
    if (group) {
        struct group *gr = getgrnam(group);

        if (!gr) {
            fprintf(stderr, "coco-attest-provision: no group '%s'\n", group);
            return 2;
        }
        gid = gr->gr_gid;
    }
    if (!coca_provision(&ca, dir, &c, gid, ek_pub, nv, &err)) {
        return fail(err);
    }
    printf("provisioned %s\n", dir);
    return 0;
}

static int cmd_renew(int argc, char **argv)
{
    g_autofree char *ca_dir = NULL, *ca_cert = NULL, *ca_key = NULL;
    g_autofree char *dir = NULL;
    g_autofree char *cert_path = NULL, *key_path = NULL;
    int hours = -1;
    GOptionEntry entries[] = {
        { "instance-dir", 0, 0, G_OPTION_ARG_FILENAME, &dir,
          "the instance directory (required)", "DIR" },
        { "ca-dir", 0, 0, G_OPTION_ARG_FILENAME, &ca_dir,
          "host CA directory (ca.crt, ca.key)", "DIR" },
        { "ca-cert", 0, 0, G_OPTION_ARG_FILENAME, &ca_cert,
          "host CA certificate (instead of --ca-dir)", "FILE" },
        { "ca-key", 0, 0, G_OPTION_ARG_STRING, &ca_key,
          "host CA key: a PEM file or an OpenSSL store URI (instead of "
          "--ca-dir)", "URI" },
        { "validity-hours", 0, 0, G_OPTION_ARG_INT, &hours,
          "lifetime of the new issuing certificate (default: the "
          "directory's validity-hours)", "H" },
        { NULL },
    };
    CocaCa ca = { 0 };
    GError *err = NULL;

    if (!parse(entries, "renew", &argc, &argv, &err)) {
        return fail(err);
    }
    if (!dir) {
        fprintf(stderr, "coco-attest-provision: renew needs "
                "--instance-dir\n");
        return 2;
    }
    if (hours != -1 && (hours < 1 || hours > 24 * 366)) {
        fprintf(stderr, "coco-attest-provision: --validity-hours must be "
                "between 1 and 8784\n");
        return 2;
    }
    if (!ca_from_options(&ca, ca_dir, ca_cert, ca_key, &cert_path,
                         &key_path)) {
        return 2;
    }
    if (!coca_renew(&ca, dir, hours < 0 ? 0 : hours, &err)) {
        return fail(err);
    }
    printf("renewed %s\n", dir);
    return 0;
}

static int cmd_verify(int argc, char **argv)
{
    g_autofree char *dir = NULL, *ca_cert = NULL;
    GOptionEntry entries[] = {
        { "instance-dir", 0, 0, G_OPTION_ARG_FILENAME, &dir,
          "the instance directory (required)", "DIR" },
        { "ca-cert", 0, 0, G_OPTION_ARG_FILENAME, &ca_cert,
          "trust anchor (default: the directory's root.crt)", "FILE" },
        { NULL },
    };
    GError *err = NULL;

    if (!parse(entries, "verify", &argc, &argv, &err)) {
        return fail(err);
    }
    if (!dir) {
        fprintf(stderr, "coco-attest-provision: verify needs "
                "--instance-dir\n");
        return 2;
    }
    if (!coca_verify(dir, ca_cert, &err)) {
        return fail(err);
    }
    printf("%s: OK\n", dir);
    return 0;
}

static int cmd_purge(int argc, char **argv)
{
    g_autofree char *dir = NULL;
    gboolean keep_ek = FALSE;
    GOptionEntry entries[] = {
        { "instance-dir", 0, 0, G_OPTION_ARG_FILENAME, &dir,
          "the instance directory (required)", "DIR" },
        { "keep-ek", 0, 0, G_OPTION_ARG_NONE, &keep_ek,
          "keep the persistent EK state (what a VM stop does)", NULL },
        { NULL },
    };
    GError *err = NULL;

    if (!parse(entries, "purge", &argc, &argv, &err)) {
        return fail(err);
    }
    if (!dir) {
        fprintf(stderr, "coco-attest-provision: purge needs "
                "--instance-dir\n");
        return 2;
    }
    if (!coca_purge(dir, keep_ek, &err)) {
        return fail(err);
    }
    return 0;
}

/*
 * The state directory print-xml names: --state-dir, else hook.conf's
 * (when there is one), else the hook's default.
 */
static char *hook_state_dir(const char *opt, GError **errp)
{
    g_auto(CocaHookConf) hc = { 0 };
    const char *path = coca_hook_conf_path();

    if (opt) {
        return g_strdup(opt);
    }
    if (!g_file_test(path, G_FILE_TEST_EXISTS)) {
        return g_strdup(COCA_HOOK_STATE_DIR);
    }
    if (!coca_hook_conf_load(path, &hc, errp)) {
        return NULL;
    }
    return g_strdup(hc.state_dir);
}

static int cmd_print_xml(int argc, char **argv)
{
    g_autofree char *uuid = NULL, *state = NULL, *dir = NULL;
    g_autofree char *domain = NULL, *xml = NULL, *out = NULL, *why = NULL;
    g_autofree char *root = NULL;
    gsize len = 0;
    GOptionEntry entries[] = {
        { "uuid", 0, 0, G_OPTION_ARG_STRING, &uuid,
          "print the <qemu:commandline> for the domain with this UUID",
          "UUID" },
        { "domain", 0, 0, G_OPTION_ARG_FILENAME, &domain,
          "print this domain XML ('-': standard input, e.g. from virsh "
          "dumpxml --inactive) with the command line added or replaced",
          "FILE" },
        { "state-dir", 0, 0, G_OPTION_ARG_FILENAME, &state,
          "the hook's state directory (default: hook.conf's, else "
          COCA_HOOK_STATE_DIR ")", "DIR" },
        { NULL },
    };
    GError *err = NULL;

    if (!parse(entries, "print-xml", &argc, &argv, &err)) {
        return fail(err);
    }
    if (!uuid == !domain || (uuid && !coca_uuid_ok(uuid))) {
        fprintf(stderr, "coco-attest-provision: print-xml needs --domain "
                "FILE, or --uuid with the domain's UUID\n");
        return 2;
    }
    root = hook_state_dir(state, &err);
    if (!root) {
        return fail(err);
    }
    if (domain) {
        gboolean ok;

        if (!strcmp(domain, "-")) {
            GIOChannel *in = g_io_channel_unix_new(0);

            g_io_channel_set_encoding(in, NULL, NULL);
            ok = g_io_channel_read_to_end(in, &xml, &len, &err) ==
                 G_IO_STATUS_NORMAL;
            g_io_channel_unref(in);
        } else {
            ok = g_file_get_contents(domain, &xml, &len, &err);
        }
        if (!ok) {
            return fail(err);
        }
        out = coca_domain_add_device(xml, len, root, &why);
        if (!out) {
            fprintf(stderr, "coco-attest-provision: %s: %s\n", domain, why);
            return 1;
        }
        fputs(out, stdout);
        return 0;
    }
    {
        g_autofree char *lower = g_ascii_strdown(uuid, -1);

        dir = g_build_filename(root, lower, NULL);
    }
    if (strchr(dir, '\'') || strchr(dir, '<') || strchr(dir, '&') ||
        strchr(dir, ',')) {
        fprintf(stderr, "coco-attest-provision: unusable state directory "
                "'%s'\n", dir);
        return 2;
    }
    /* the root element needs xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0' */
    printf("  <qemu:commandline>\n"
           "    <qemu:arg value='-object'/>\n"
           "    <qemu:arg value='coco-attest-ca,id=coca-ca0,dir=%s'/>\n"
           "    <qemu:arg value='-device'/>\n"
           "    <qemu:arg value='coco-attest,id=coca0,ca=coca-ca0'/>\n"
           "  </qemu:commandline>\n", dir);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {
        { "init-ca", cmd_init_ca },
        { "provision", cmd_provision },
        { "renew", cmd_renew },
        { "verify", cmd_verify },
        { "purge", cmd_purge },
        { "print-xml", cmd_print_xml },
    };
    size_t i;

    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(usage_text, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (i = 0; i < G_N_ELEMENTS(cmds); i++) {
        if (!strcmp(argv[1], cmds[i].name)) {
            return cmds[i].fn(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "coco-attest-provision: unknown command '%s'\n%s",
            argv[1], usage_text);
    return 2;
}
