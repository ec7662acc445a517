/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * coco-attest-kbs for builds without libcurl: the object type does not
 * exist, so a device can never be linked to one and none of these can be
 * reached.  The path check is the exception: it needs no libcurl.
 */

#include "qemu/osdep.h"
#include "system/coco-attest-kbs.h"

bool coco_attest_kbs_path_allowed(bool post, const char *path, size_t len)
{
    return false;
}

bool coco_attest_kbs_take_token(CocoAttestKbs *kbs)
{
    g_assert_not_reached();
}

void coco_attest_kbs_limits(CocoAttestKbs *kbs, CocoAttestKbsLimits *lim)
{
    g_assert_not_reached();
}

CocoAttestKbsSession *coco_attest_kbs_session_new(CocoAttestKbs *kbs)
{
    g_assert_not_reached();
}

CocoAttestKbsSession *coco_attest_kbs_session_ref(CocoAttestKbsSession *s)
{
    g_assert_not_reached();
}

void coco_attest_kbs_session_cancel(CocoAttestKbsSession *s)
{
    g_assert_not_reached();
}

void coco_attest_kbs_session_unref(CocoAttestKbsSession *s)
{
    g_assert_not_reached();
}

CocoAttestKbsResult coco_attest_kbs_forward(CocoAttestKbsSession *s,
                                            bool post, const char *path,
                                            const char *content_type,
                                            const uint8_t *body, size_t len,
                                            size_t max_response,
                                            CocoAttestKbsReply *reply,
                                            char **why)
{
    g_assert_not_reached();
}

void coco_attest_kbs_reply_clear(CocoAttestKbsReply *reply)
{
    g_assert_not_reached();
}

char *coco_attest_kbs_session_cookies(CocoAttestKbsSession *s)
{
    g_assert_not_reached();
}

bool coco_attest_kbs_session_set_cookies(CocoAttestKbsSession *s,
                                         const char *cookies, Error **errp)
{
    g_assert_not_reached();
}
