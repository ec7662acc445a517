/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * libFuzzer target: the libvirt hook's reading of domain XML (libxml2,
 * XPath, the coco-attest metadata, its RelaxNG schema, the
 * <qemu:commandline> and the DAC seclabel) and the validation of the
 * identity claims it yields, as `prepare begin` runs them on the XML
 * libvirt passes; and print-xml --domain's editing of that XML, whose
 * output must parse again with exactly its own instance directory.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>
#include <libxml/parser.h>

#include "hook-domain.h"
#include "provision.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void quiet(void *ctx, const char *msg, ...)
{
    (void)ctx;
    (void)msg;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    xmlInitParser();
    xmlSetGenericErrorFunc(NULL, quiet);
    return 0;
}

/*
 * print-xml --domain, on XML the hook reads: the result parses too, and
 * names this domain's directory only
 */
static void check_add_device(const uint8_t *data, size_t size)
{
    g_autofree char *why = NULL, *why2 = NULL, *out = NULL, *dir = NULL;
    CocaDomain d;

    out = coca_domain_add_device((const char *)data, size, "/srv/coca",
                                 &why);
    if (!out) {
        return;
    }
    if (!coca_domain_parse(out, strlen(out), &d, &why2)) {
        abort();                /* its own output must parse */
    }
    dir = g_strdup_printf("/srv/coca/%s", d.uuid);
    for (char *p = dir; *p; p++) {
        *p = g_ascii_tolower(*p);
    }
    if (d.ca_dirs->len != 1 || d.n_devices != 1 ||
        strcmp(g_ptr_array_index(d.ca_dirs, 0), dir)) {
        abort();
    }
    coca_domain_clear(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autofree char *why = NULL;
    CocaDomain d;

    if (size > 64 * 1024) {
        return 0;               /* the hook reads at most 4 MiB anyway */
    }
    if (coca_domain_parse((const char *)data, size, &d, &why)) {
        check_add_device(data, size);
        if (d.has_identity) {
            GError *err = NULL;

            if (!coca_claims_validate(&d.claims, &err)) {
                g_error_free(err);
            }
        }
        if (d.uuid) {
            coca_uuid_ok(d.uuid);
        }
    }
    coca_domain_clear(&d);
    return 0;
}
