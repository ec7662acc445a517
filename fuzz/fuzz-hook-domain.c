/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * libFuzzer target: the libvirt hook's reading of domain XML (libxml2,
 * XPath, the coco-attest metadata and the DAC seclabel) and the
 * validation of the identity claims it yields, as `prepare begin` runs
 * them on the XML libvirt passes.
 */

#include <stdint.h>
#include <stdlib.h>

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autofree char *why = NULL;
    CocaDomain d;

    if (size > 64 * 1024) {
        return 0;               /* the hook reads at most 4 MiB anyway */
    }
    if (coca_domain_parse((const char *)data, size, &d, &why)) {
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
