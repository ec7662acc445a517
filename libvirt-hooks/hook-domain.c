/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The libvirt domain XML as the coco-attest hook reads it (libxml2 and
 * XPath): the domain's name and UUID, its coco-attest metadata, and the
 * group of its DAC seclabel.  Shared by the hook and its fuzzer.
 */

#include <limits.h>
#include <stdarg.h>
#include <string.h>

#include <glib.h>
#include <libxml/parser.h>
#include <libxml/relaxng.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>

#include "hook-domain.h"

/* docs/schemas/coco-attest-domain.rng, built in (embed.py) */
extern const char coca_domain_rng[];
extern const unsigned coca_domain_rng_len;

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

/* QEMU key=value options, split at single commas (",," is a comma) */
static GPtrArray *keyval_split(const char *s)
{
    GPtrArray *a = g_ptr_array_new_with_free_func(g_free);
    GString *cur = g_string_new(NULL);

    for (const char *p = s;; p++) {
        if (*p == ',' && p[1] == ',') {
            g_string_append_c(cur, ',');
            p++;
        } else if (*p == ',' || !*p) {
            g_ptr_array_add(a, g_string_free(cur, FALSE));
            if (!*p) {
                break;
            }
            cur = g_string_new(NULL);
        } else {
            g_string_append_c(cur, *p);
        }
    }
    return a;
}

/*
 * Whether an -object or -device argument may be of type @type: QEMU takes
 * the type from the implied first key or from @type_key=, and with a key
 * given twice the last one wins, so any of them counts.
 */
static gboolean keyval_names(GPtrArray *kv, const char *type_key,
                             const char *type)
{
    size_t kl = strlen(type_key);

    for (guint i = 0; i < kv->len; i++) {
        const char *t = g_ptr_array_index(kv, i);

        if ((i == 0 && !strchr(t, '=') && !g_ascii_strcasecmp(t, type)) ||
            (!strncmp(t, type_key, kl) && t[kl] == '=' &&
             !g_ascii_strcasecmp(t + kl + 1, type))) {
            return TRUE;
        }
    }
    return FALSE;
}

/* JSON that QEMU might read as one of ours: escapes hide names */
static gboolean json_suspect(const char *arg)
{
    g_autofree char *lower = g_ascii_strdown(arg, -1);

    return strchr(arg, '\\') || strstr(lower, "coco-attest");
}

/*
 * The only form the hook accepts, the one print-xml writes:
 * "coco-attest-ca,id=ID,dir=DIR" with optional rate= and burst=, each key
 * once, no ",," (QEMU would take the last of two dir=, which the hook
 * must not guess).
 */
static char *ca_strict_dir(GPtrArray *kv, const char *arg)
{
    static const char *const keys[] = { "id", "dir", "rate", "burst" };
    gboolean seen[G_N_ELEMENTS(keys)] = { FALSE };
    const char *dir = NULL;

    if (strstr(arg, ",,") || strcmp(g_ptr_array_index(kv, 0),
                                    "coco-attest-ca")) {
        return NULL;
    }
    for (guint i = 1; i < kv->len; i++) {
        const char *t = g_ptr_array_index(kv, i);
        const char *eq = strchr(t, '=');
        size_t k;

        for (k = 0; eq && k < G_N_ELEMENTS(keys); k++) {
            if (strlen(keys[k]) == (size_t)(eq - t) &&
                !strncmp(t, keys[k], eq - t)) {
                break;
            }
        }
        if (!eq || k == G_N_ELEMENTS(keys) || seen[k]) {
            return NULL;
        }
        seen[k] = TRUE;
        if (k == 1) {
            dir = eq + 1;
        }
    }
    return dir && *dir ? g_strdup(dir) : NULL;
}

char *coca_cmdline_ca_dir(const char *arg, gboolean *unreadable)
{
    g_autoptr(GPtrArray) kv = NULL;
    char *dir;

    if (arg[0] == '{') {
        *unreadable = json_suspect(arg);
        return NULL;
    }
    kv = keyval_split(arg);
    if (!keyval_names(kv, "qom-type", "coco-attest-ca")) {
        return NULL;
    }
    dir = ca_strict_dir(kv, arg);
    if (!dir) {
        *unreadable = TRUE;
    }
    return dir;
}

gboolean coca_cmdline_is_device(const char *arg)
{
    g_autoptr(GPtrArray) kv = NULL;

    if (arg[0] == '{') {
        return json_suspect(arg);
    }
    kv = keyval_split(arg);
    return keyval_names(kv, "driver", "coco-attest");
}

/*
 * Options that could undo what the hook checks: another -uuid (QEMU
 * takes the last), a configuration file or -set/-global reaching the
 * device or its backend.  NULL when @flag @value is harmless.
 */
static const char *cmdline_hazard(const char *flag, const char *value)
{
    g_autofree char *lower = g_ascii_strdown(value, -1);

    if (!strcmp(flag, "-uuid") || !strcmp(flag, "--uuid")) {
        return "-uuid (libvirt sets the domain's)";
    }
    if (!strcmp(flag, "-readconfig") || !strcmp(flag, "--readconfig")) {
        return "-readconfig";
    }
    if ((!strcmp(flag, "-set") || !strcmp(flag, "--set") ||
         !strcmp(flag, "-global") || !strcmp(flag, "--global")) &&
        strstr(lower, "coco-attest")) {
        return "-set or -global on coco-attest";
    }
    return NULL;
}

/*
 * The coco-attest arguments of <qemu:commandline>: each -object
 * coco-attest-ca's dir= and the number of -device coco-attest.
 */
static gboolean read_cmdline(xmlXPathContextPtr ctx, CocaDomain *d,
                             char **why)
{
    xmlXPathObjectPtr o = xmlXPathEvalExpression(
        (const xmlChar *)"/domain/qemu:commandline/qemu:arg/@value", ctx);
    g_autofree char *prev = g_strdup("");
    gboolean ok = TRUE;

    d->ca_dirs = g_ptr_array_new_with_free_func(g_free);
    for (int i = 0; o && o->nodesetval && i < o->nodesetval->nodeNr; i++) {
        xmlChar *v = xmlNodeGetContent(o->nodesetval->nodeTab[i]);
        char *arg = g_strdup(v ? (const char *)v : "");
        gboolean unreadable = FALSE;
        const char *hazard = cmdline_hazard(prev, arg);
        char *dir;

        xmlFree(v);
        if (hazard && !d->cmdline_hazard) {
            d->cmdline_hazard = g_strdup(hazard);
        }
        if (!strcmp(prev, "-object") || !strcmp(prev, "--object")) {
            dir = coca_cmdline_ca_dir(arg, &unreadable);
            if (dir) {
                g_ptr_array_add(d->ca_dirs, dir);
            }
        } else if (!strcmp(prev, "-device") || !strcmp(prev, "--device")) {
            d->n_devices += coca_cmdline_is_device(arg);
        }
        g_free(prev);
        prev = arg;
        if (unreadable) {
            *why = g_strdup("<qemu:commandline> gives -object coco-attest-ca "
                            "in a form the hook does not read: only "
                            "coco-attest-ca,id=ID,dir=DIR[,rate=N][,burst=N]"
                            " with each key once, as print-xml writes it "
                            "(no JSON, no ',,', no qom-type=)");
            ok = FALSE;
            break;
        }
    }
    xmlXPathFreeObject(o);
    return ok;
}

/* the first message of a RelaxNG validation, without its newline */
static void rng_error(void *ctx, const char *fmt, ...)
{
    GString *msg = ctx;
    va_list ap;

    if (msg->len) {
        return;
    }
    va_start(ap, fmt);
    g_string_append_vprintf(msg, fmt, ap);
    va_end(ap);
    while (msg->len && g_ascii_isspace(msg->str[msg->len - 1])) {
        g_string_truncate(msg, msg->len - 1);
    }
}

/* <coca:instance> against the shipped schema */
static gboolean validate_schema(xmlNodePtr inst, char **why)
{
    xmlRelaxNGParserCtxtPtr pc;
    xmlRelaxNGPtr schema = NULL;
    xmlRelaxNGValidCtxtPtr vc = NULL;
    xmlDocPtr doc = NULL;
    GString *msg = g_string_new(NULL);
    int rc = -1;

    pc = xmlRelaxNGNewMemParserCtxt(coca_domain_rng, coca_domain_rng_len);
    if (pc) {
        xmlRelaxNGSetParserErrors(pc, rng_error, rng_error, msg);
        schema = xmlRelaxNGParse(pc);
        xmlRelaxNGFreeParserCtxt(pc);
    }
    if (schema) {
        doc = xmlNewDoc((const xmlChar *)"1.0");
        vc = xmlRelaxNGNewValidCtxt(schema);
    }
    if (doc && vc) {
        xmlDocSetRootElement(doc, xmlDocCopyNode(inst, doc, 1));
        xmlRelaxNGSetValidErrors(vc, rng_error, rng_error, msg);
        rc = xmlDocGetRootElement(doc) ? xmlRelaxNGValidateDoc(vc, doc) : -1;
    }
    if (rc != 0) {
        *why = g_strdup_printf("the coca:instance metadata does not follow "
                               "the schema (coco-attest-domain.rng): %s",
                               msg->len ? msg->str : "invalid");
    }
    xmlRelaxNGFreeValidCtxt(vc);
    xmlRelaxNGFree(schema);
    xmlFreeDoc(doc);
    g_string_free(msg, TRUE);
    return rc == 0;
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
static xmlDocPtr read_domain_xml(const char *xml, gsize len, int options,
                                 char **why)
{
    xmlParserCtxtPtr pctx;
    xmlDocPtr doc;
    gboolean has_dtd = FALSE;
    int ns_ok;

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
                            XML_PARSE_NONET | options |
                            XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    ns_ok = pctx->nsWellFormed;
    xmlFreeParserCtxt(pctx);
    /* the subsets too, should a libxml2 ever build one without the call */
    if (has_dtd || (doc && (doc->intSubset || doc->extSubset))) {
        xmlFreeDoc(doc);
        *why = g_strdup("domain XML with a document type declaration "
                        "(<!DOCTYPE>) refused: libvirt never writes one");
        return NULL;
    }
    /*
     * An undeclared prefix leaves "qemu:commandline" an element of no
     * namespace, which a namespace declared later would capture: libvirt
     * never writes such XML
     */
    if (doc && !ns_ok) {
        xmlFreeDoc(doc);
        *why = g_strdup("the domain XML uses an undeclared namespace "
                        "prefix: libvirt never writes one");
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
    xmlNodePtr inst = NULL;
    g_autofree char *num = NULL, *gce = NULL, *rekey = NULL, *label = NULL;
    gboolean ok = FALSE;
    char *end;

    memset(d, 0, sizeof(*d));
    d->dac_gid = (gid_t)-1;
    doc = read_domain_xml(xml, len, 0, why);
    if (!doc) {
        return FALSE;
    }
    ctx = xmlXPathNewContext(doc);
    if (!ctx ||
        xmlXPathRegisterNs(ctx, (const xmlChar *)"coca",
                           (const xmlChar *)COCA_XMLNS) != 0 ||
        xmlXPathRegisterNs(ctx, (const xmlChar *)"qemu",
                           (const xmlChar *)QEMU_XMLNS) != 0) {
        *why = g_strdup("out of memory");
        goto out;
    }
    d->uuid = xpath_str(ctx, "/domain/uuid");
    d->name = xpath_str(ctx, "/domain/name");
    if (!d->uuid || !d->name) {
        *why = g_strdup("the domain XML has no uuid or name");
        goto out;
    }
    if (!read_cmdline(ctx, d, why)) {
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
        inst = d->has_identity ? o->nodesetval->nodeTab[0] : NULL;
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
            guint64 g = g_ascii_strtoull(colon + 2, NULL, 10);

            /* (gid_t)-1 means "none": never let a value wrap to it */
            if (g < G_MAXUINT32) {
                d->dac_gid = (gid_t)g;
            }
        }
    }
    /*
     * Reported by the caller after coca_claims_validate(), whose messages
     * say more than libxml2's ("Element project failed to validate
     * attributes")
     */
    validate_schema(inst, &d->schema_why);
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
    g_free(d->schema_why);
    g_free(d->cmdline_hazard);
    coca_claims_clear(&d->claims);
    if (d->ca_dirs) {
        g_ptr_array_unref(d->ca_dirs);
    }
}

gboolean coca_uuid_ok(const char *u)
{
    if (strlen(u) != 36) {
        return FALSE;
    }
    for (int i = 0; i < 36; i++) {
        gboolean dash = i == 8 || i == 13 || i == 18 || i == 23;

        if (dash ? u[i] != '-' : !g_ascii_isxdigit(u[i])) {
            return FALSE;
        }
    }
    return TRUE;
}

/* an element child of parent, in namespace ns, or NULL */
static xmlNodePtr child_element(xmlNodePtr parent, const char *name,
                                const char *ns)
{
    for (xmlNodePtr c = parent->children; c; c = c->next) {
        if (c->type == XML_ELEMENT_NODE &&
            !strcmp((const char *)c->name, name) &&
            (ns ? c->ns && !strcmp((const char *)c->ns->href, ns) :
             !c->ns)) {
            return c;
        }
    }
    return NULL;
}

/*
 * n, or the first <qemu:arg value=...> element after it: the arguments
 * as read_cmdline() sees them
 */
static xmlNodePtr next_arg(xmlNodePtr n)
{
    while (n && !(n->type == XML_ELEMENT_NODE &&
                  !strcmp((const char *)n->name, "arg") && n->ns &&
                  !strcmp((const char *)n->ns->href, QEMU_XMLNS) &&
                  xmlHasProp(n, (const xmlChar *)"value"))) {
        n = n->next;
    }
    return n;
}

static void add_arg(xmlNodePtr cmdline, xmlNsPtr ns, const char *value)
{
    xmlNodePtr a = xmlNewChild(cmdline, ns, (const xmlChar *)"arg", NULL);

    xmlSetProp(a, (const xmlChar *)"value", (const xmlChar *)value);
}

char *coca_domain_add_device(const char *xml, gsize len,
                             const char *instance_root, char **why)
{
    xmlDocPtr doc = read_domain_xml(xml, len, XML_PARSE_NOBLANKS, why);
    xmlNodePtr root, uuid_el, cmdline, last = NULL;
    GPtrArray *args;
    gboolean dropped;
    CocaDomain seen;
    xmlNsPtr ns;
    xmlChar *uuid = NULL, *out = NULL;
    g_autofree char *dir = NULL, *lower = NULL, *obj = NULL;
    char *ret = NULL;
    int out_len = 0;

    if (!doc) {
        return NULL;
    }
    root = xmlDocGetRootElement(doc);
    if (!root || strcmp((const char *)root->name, "domain") || root->ns) {
        *why = g_strdup("not a libvirt domain XML (no <domain> root)");
        goto out;
    }
    uuid_el = child_element(root, "uuid", NULL);
    uuid = uuid_el ? xmlNodeGetContent(uuid_el) : NULL;
    if (!uuid || !coca_uuid_ok(g_strstrip((char *)uuid))) {
        *why = g_strdup("the domain XML has no <uuid>: define the domain "
                        "first, then pipe 'virsh dumpxml --inactive NAME' "
                        "through print-xml --domain -");
        goto out;
    }
    /* what the hook would refuse in what stays of the command line */
    if (!coca_domain_parse(xml, len, &seen, why) || seen.cmdline_hazard) {
        if (!*why) {
            *why = g_strdup_printf("<qemu:commandline> has %s, which could "
                                   "undo the hook's checks: remove it",
                                   seen.cmdline_hazard);
        }
        coca_domain_clear(&seen);
        goto out;
    }
    coca_domain_clear(&seen);
    lower = g_ascii_strdown((const char *)uuid, -1);
    dir = g_build_filename(instance_root, lower, NULL);
    if (strchr(dir, ',')) {
        *why = g_strdup_printf("unusable instance directory '%s'", dir);
        goto out;
    }
    ns = xmlSearchNsByHref(doc, root, (const xmlChar *)QEMU_XMLNS);
    if (!ns) {
        if (xmlSearchNs(doc, root, (const xmlChar *)"qemu")) {
            *why = g_strdup("the domain XML uses the prefix 'qemu' for "
                            "another namespace");
            goto out;
        }
        ns = xmlNewNs(root, (const xmlChar *)QEMU_XMLNS,
                      (const xmlChar *)"qemu");
    }

    /*
     * Drop earlier coco-attest arguments, so that the result names this
     * domain only.  Arguments pair up as read_cmdline() reads them:
     * consecutive <qemu:arg value=...>, across every <qemu:commandline>.
     */
    /* until nothing is left: a removal can join two arguments anew */
    do {
        dropped = FALSE;
        args = g_ptr_array_new();
        for (xmlNodePtr c = root->children; c; c = c->next) {
            if (c->type == XML_ELEMENT_NODE &&
                !strcmp((const char *)c->name, "commandline") && c->ns &&
                !strcmp((const char *)c->ns->href, QEMU_XMLNS)) {
                last = c;
                for (xmlNodePtr a = next_arg(c->children); a;
                     a = next_arg(a->next)) {
                    g_ptr_array_add(args, a);
                }
            }
        }
        for (guint i = 0; i + 1 < args->len; i++) {
            xmlNodePtr a = g_ptr_array_index(args, i);
            xmlNodePtr val = g_ptr_array_index(args, i + 1);
            xmlChar *flag = xmlGetProp(a, (const xmlChar *)"value");
            xmlChar *v = xmlGetProp(val, (const xmlChar *)"value");
            gboolean unreadable = FALSE, drop = FALSE;
            char *cadir;

            if (flag && v && (!strcmp((char *)flag, "-object") ||
                              !strcmp((char *)flag, "--object"))) {
                cadir = coca_cmdline_ca_dir((char *)v, &unreadable);
                drop = cadir || unreadable;
                g_free(cadir);
            } else if (flag && v && (!strcmp((char *)flag, "-device") ||
                                     !strcmp((char *)flag, "--device"))) {
                drop = coca_cmdline_is_device((char *)v);
            }
            if (drop) {
                xmlUnlinkNode(a);
                xmlFreeNode(a);
                xmlUnlinkNode(val);
                xmlFreeNode(val);
                dropped = TRUE;
                i++;
            }
            xmlFree(flag);
            xmlFree(v);
        }
        g_ptr_array_unref(args);
    } while (dropped);
    /* last, so that no argument already there pairs differently */
    cmdline = last ? last : xmlNewChild(root, ns,
                                        (const xmlChar *)"commandline", NULL);
    obj = g_strdup_printf("coco-attest-ca,id=coca-ca0,dir=%s", dir);
    add_arg(cmdline, ns, "-object");
    add_arg(cmdline, ns, obj);
    add_arg(cmdline, ns, "-device");
    add_arg(cmdline, ns, "coco-attest,id=coca0,ca=coca-ca0");
    xmlDocDumpFormatMemoryEnc(doc, &out, &out_len, "UTF-8", 1);
    if (!out) {
        *why = g_strdup("out of memory");
        goto out;
    }
    /* libvirt's own dumps have no XML declaration */
    ret = g_strdup(g_str_has_prefix((char *)out, "<?xml") &&
                   strchr((char *)out, '\n') ?
                   strchr((char *)out, '\n') + 1 : (char *)out);
out:
    xmlFree(out);
    xmlFree(uuid);
    xmlFreeDoc(doc);
    return ret;
}
