/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The coco-attest hook's configuration (GKeyFile).
 */

#include <stdarg.h>
#include <string.h>

#include "hook-conf.h"

#define COCA_HOOK_CONF_ERROR (coca_hook_conf_error_quark())
G_DEFINE_QUARK(coca-hook-conf-error, coca_hook_conf_error)

static const char *const ca_keys[] = { "dir", "cert", "key", NULL };
static const char *const hook_keys[] = {
    "state-dir", "group", "validity-hours", NULL
};

const char *coca_hook_conf_path(void)
{
    const char *p = g_getenv(COCA_HOOK_CONF_ENV);

    return p && *p ? p : COCA_HOOK_CONF;
}

static gboolean fail(GError **errp, const char *path, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);

static gboolean fail(GError **errp, const char *path, const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(errp, COCA_HOOK_CONF_ERROR, 0, "%s: %s", path, msg);
    return FALSE;
}

/*
 * What GKeyFile accepts silently but an operator would not mean: a key
 * given twice (the last wins), a localised key ("state-dir[fr]="), an
 * escape sequence ("\\n", "\\s") in a value, an empty value.
 */
static gboolean check_lines(const char *text, const char *path,
                            GError **errp)
{
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash,
                                                       g_str_equal, g_free,
                                                       NULL);
    g_autofree char *group = g_strdup("");

    for (int i = 0; lines[i]; i++) {
        g_autofree char *key = NULL;
        char *l = g_strstrip(lines[i]);
        const char *eq;

        if (!*l || *l == '#') {
            continue;
        }
        if (*l == '[') {
            g_free(group);
            group = g_strdup(l);
            continue;
        }
        eq = strchr(l, '=');
        if (!eq) {
            continue;           /* GKeyFile has refused it already */
        }
        key = g_strstrip(g_strndup(l, eq - l));
        if (strchr(key, '[')) {
            return fail(errp, path, "line %d: localised key '%s' is not "
                        "supported", i + 1, key);
        }
        if (strchr(eq, '\\')) {
            return fail(errp, path, "line %d: %s: escape sequences are not "
                        "supported", i + 1, key);
        }
        if (!eq[1 + strspn(eq + 1, " \t")]) {
            return fail(errp, path, "line %d: %s= has no value", i + 1,
                        key);
        }
        if (!g_hash_table_add(seen, g_strconcat(group, key, NULL))) {
            return fail(errp, path, "line %d: %s %s= given twice", i + 1,
                        group, key);
        }
    }
    return TRUE;
}

/* an absolute path, not the root, printable */
static gboolean path_ok(const char *p)
{
    if (!g_path_is_absolute(p) || !strcmp(p, "/")) {
        return FALSE;
    }
    for (; *p; p++) {
        if (g_ascii_iscntrl(*p)) {
            return FALSE;
        }
    }
    return TRUE;
}

/* every group and key is one this file knows */
static gboolean check_names(GKeyFile *kf, const char *path, GError **errp)
{
    g_auto(GStrv) groups = g_key_file_get_groups(kf, NULL);

    for (char **g = groups; *g; g++) {
        const char *const *known;
        g_auto(GStrv) keys = NULL;

        if (!strcmp(*g, "ca")) {
            known = ca_keys;
        } else if (!strcmp(*g, "hook")) {
            known = hook_keys;
        } else {
            return fail(errp, path, "unknown group [%s] (groups: [ca], "
                        "[hook])", *g);
        }
        keys = g_key_file_get_keys(kf, *g, NULL, NULL);
        for (char **k = keys; k && *k; k++) {
            g_autofree char *v = NULL;
            const char *hash;

            if (!g_strv_contains(known, *k)) {
                g_autofree char *list = g_strjoinv("=, ", (char **)known);

                return fail(errp, path, "unknown key '%s' in [%s] (keys: "
                            "%s=)", *k, *g, list);
            }
            v = g_key_file_get_value(kf, *g, *k, NULL);
            hash = v ? strchr(v, '#') : NULL;
            if (hash && (hash == v || g_ascii_isspace(hash[-1]))) {
                return fail(errp, path, "[%s] %s='%s': a '#' after a value "
                            "is not a comment here; put comments on their "
                            "own lines", *g, *k, v);
            }
        }
    }
    return TRUE;
}

gboolean coca_hook_conf_load(const char *path, CocaHookConf *hc,
                             GError **errp)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autofree char *ca_dir = NULL, *hours = NULL, *text = NULL;
    GError *err = NULL;
    gsize len;
    char *end;

    memset(hc, 0, sizeof(*hc));
    hc->path = g_strdup(path ? path : coca_hook_conf_path());
    if (!g_file_get_contents(hc->path, &text, &len, &err) ||
        !g_key_file_load_from_data(kf, text, len, G_KEY_FILE_NONE, &err)) {
        fail(errp, hc->path, "%s", err->message);
        g_error_free(err);
        return FALSE;
    }
    if (len > COCA_HOOK_CONF_MAX) {
        return fail(errp, hc->path, "larger than %d bytes",
                    COCA_HOOK_CONF_MAX);
    }
    if (!check_lines(text, hc->path, errp) ||
        !check_names(kf, hc->path, errp)) {
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
        return fail(errp, hc->path, "[ca] needs dir=, or cert= and key=");
    }
    /* key= may also be an OpenSSL store URI (pkcs11:...) */
    if ((ca_dir && !path_ok(ca_dir)) || !path_ok(hc->ca_cert) ||
        (!path_ok(hc->ca_key) && !strchr(hc->ca_key, ':'))) {
        return fail(errp, hc->path, "[ca] dir=, cert= and key= must be "
                    "absolute paths (key= may be a URI such as pkcs11:)");
    }
    hc->state_dir = g_key_file_get_string(kf, "hook", "state-dir", NULL);
    if (!hc->state_dir) {
        hc->state_dir = g_strdup(COCA_HOOK_STATE_DIR);
    }
    if (!path_ok(hc->state_dir) ||
        strchr(hc->state_dir, ',') || strchr(hc->state_dir, '\'')) {
        return fail(errp, hc->path, "[hook] state-dir='%s' must be an "
                    "absolute path other than / without ',' or \"'\"",
                    hc->state_dir);
    }
    hc->group = g_key_file_get_string(kf, "hook", "group", NULL);
    if (!hc->group) {
        hc->group = g_strdup(COCA_HOOK_GROUP);
    }
    hc->validity_hours = COCA_HOOK_VALIDITY;
    hours = g_key_file_get_string(kf, "hook", "validity-hours", NULL);
    if (hours) {
        guint64 h;

        if (!g_ascii_isdigit(*hours) ||
            (h = g_ascii_strtoull(hours, &end, 10), *end) ||
            h < 1 || h > COCA_HOOK_VALIDITY_MAX) {
            return fail(errp, hc->path, "[hook] validity-hours='%s' must "
                        "be a number of hours, 1 to %d", hours,
                        COCA_HOOK_VALIDITY_MAX);
        }
        hc->validity_hours = (int)h;
    }
    return TRUE;
}

void coca_hook_conf_clear(CocaHookConf *hc)
{
    g_free(hc->path);
    g_free(hc->ca_cert);
    g_free(hc->ca_key);
    g_free(hc->state_dir);
    g_free(hc->group);
    memset(hc, 0, sizeof(*hc));
}

char *coca_hook_instance_dir(const CocaHookConf *hc, const char *uuid)
{
    g_autofree char *lower = g_ascii_strdown(uuid, -1);

    return g_build_filename(hc->state_dir, lower, NULL);
}
