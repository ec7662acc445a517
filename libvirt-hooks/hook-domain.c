/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The libvirt domain XML as the coco-attest hook reads it (libxml2 and
 * XPath): the domain's name and UUID, its coco-attest metadata, and the
 * group of its DAC seclabel.  Shared by the hook and its fuzzer.
 */

#include <limits.h>
#include <string.h>

#include <glib.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>

#include "hook-domain.h"

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

/*
 * SAX internalSubset: called for every <!DOCTYPE ...>, before anything
 * inside it (entity and parameter entity declarations, an external
 * subset) is parsed.  libvirt never writes a DTD, so a document with one
 * is refused, and parsing stops here: no entity is ever declared,
 * expanded or loaded.
 */
static void refuse_dtd(void *ctx, const xmlChar *name,
                       const xmlChar *external_id, const xmlChar *system_id)
{
    xmlParserCtxtPtr pctx = ctx;

    (void)name;
    (void)external_id;
    (void)system_id;
    *(gboolean *)pctx->_private = TRUE;
    xmlStopParser(pctx);
}

/*
 * The domain XML as a tree, or NULL with a reason.  No network, no
 * entity substitution, no DTD loading, and no DTD at all.
 */
static xmlDocPtr read_domain_xml(const char *xml, gsize len, char **why)
{
    xmlParserCtxtPtr pctx;
    xmlDocPtr doc;
    gboolean has_dtd = FALSE;

    if (len > INT_MAX) {
        *why = g_strdup("the domain XML is too large");
        return NULL;
    }
    pctx = xmlNewParserCtxt();
    if (!pctx || !pctx->sax) {
        xmlFreeParserCtxt(pctx);
        *why = g_strdup("out of memory");
        return NULL;
    }
    pctx->sax->internalSubset = refuse_dtd;
    pctx->_private = &has_dtd;
    doc = xmlCtxtReadMemory(pctx, xml, (int)len, "domain.xml", NULL,
                            XML_PARSE_NONET |
                            XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    xmlFreeParserCtxt(pctx);
    /* the subsets too, should a libxml2 ever build one without the call */
    if (has_dtd || (doc && (doc->intSubset || doc->extSubset))) {
        xmlFreeDoc(doc);
        *why = g_strdup("domain XML with a document type declaration "
                        "(<!DOCTYPE>) refused: libvirt never writes one");
        return NULL;
    }
    if (!doc) {
        *why = g_strdup("the domain XML does not parse");
    }
    return doc;
}

gboolean coca_domain_parse(const char *xml, gsize len, CocaDomain *d,
                           char **why)
{
    xmlDocPtr doc;
    xmlXPathContextPtr ctx = NULL;
    g_autofree char *num = NULL, *gce = NULL, *rekey = NULL, *label = NULL;
    gboolean ok = FALSE;
    char *end;

    memset(d, 0, sizeof(*d));
    d->dac_gid = (gid_t)-1;
    doc = read_domain_xml(xml, len, why);
    if (!doc) {
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

void coca_domain_clear(CocaDomain *d)
{
    g_free(d->uuid);
    g_free(d->name);
    coca_claims_clear(&d->claims);
}

gboolean coca_uuid_ok(const char *u)
{
    return strlen(u) == 36 && strspn(u, "0123456789abcdefABCDEF-") == 36;
}
