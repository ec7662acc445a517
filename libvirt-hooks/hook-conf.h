/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The coco-attest hook's configuration, /etc/coco-attest/hook.conf:
 * read by the hook and by coco-attest-provision (print-xml, renew), so
 * that both agree on the host CA and the state directory.
 */

#ifndef COCO_ATTEST_HOOK_CONF_H
#define COCO_ATTEST_HOOK_CONF_H

#include <glib.h>

#define COCA_HOOK_CONF          "/etc/coco-attest/hook.conf"
#define COCA_HOOK_CONF_ENV      "COCO_ATTEST_HOOK_CONF"
#define COCA_HOOK_STATE_DIR     "/var/lib/coco-attest"
#define COCA_HOOK_GROUP         "libvirt-qemu"
#define COCA_HOOK_VALIDITY      24
#define COCA_HOOK_VALIDITY_MAX  8760    /* a year */
#define COCA_HOOK_CONF_MAX      (64 * 1024)

typedef struct CocaHookConf {
    char *path;                 /* the file read */
    char *ca_cert;
    char *ca_key;               /* a PEM path or an OpenSSL store URI */
    char *state_dir;            /* absolute */
    char *group;
    int validity_hours;
} CocaHookConf;

/* $COCO_ATTEST_HOOK_CONF, or /etc/coco-attest/hook.conf */
const char *coca_hook_conf_path(void);

/*
 * Read and check a configuration (path NULL: coca_hook_conf_path()).
 * Refuses, naming the file, group and key: unknown groups and keys (a
 * typo would otherwise silently select a default), a key given twice, a
 * localised key, escapes, an empty value, a '#' after a value (GKeyFile
 * has no trailing comments: it would become part of the value), relative
 * paths, a state-dir of /, a validity outside 1..8760 hours, and a [ca]
 * without dir= or cert= and key=.  *hc is filled in part on
 * failure: coca_hook_conf_clear() it in every case.
 */
gboolean coca_hook_conf_load(const char *path, CocaHookConf *hc,
                             GError **errp);
void coca_hook_conf_clear(CocaHookConf *hc);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(CocaHookConf, coca_hook_conf_clear)

/* <state-dir>/<uuid>: the instance directory the hook provisions */
char *coca_hook_instance_dir(const CocaHookConf *hc, const char *uuid);

#endif
