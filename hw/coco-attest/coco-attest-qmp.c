/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * coco-attest: QMP commands.
 */

#include "qemu/osdep.h"
#include "qapi/qapi-commands-coco-attest.h"
#include "hw/qdev-core.h"
#include "coco-attest-internal.h"

static const CocoAttestChannel coca_chan_to_qapi[] = {
    [COCA_CHAN_NONE] = COCO_ATTEST_CHANNEL_NONE,
    [COCA_CHAN_PAGE] = COCO_ATTEST_CHANNEL_PAGE,
    [COCA_CHAN_PORT] = COCO_ATTEST_CHANNEL_PORT,
};

static int coca_query_one(Object *obj, void *opaque)
{
    CocoAttestInfoList ***tail = opaque;
    CocoAttestState *s;
    CocoAttestInfo *info;
    DeviceState *dev;
    uint32_t i;

    s = (CocoAttestState *)object_dynamic_cast(obj, TYPE_COCO_ATTEST);
    if (!s) {
        return 0;
    }
    dev = DEVICE(s);
    info = g_new0(CocoAttestInfo, 1);
    info->id = g_strdup(dev->id);
    info->qom_path = object_get_canonical_path(obj);
    info->iobase = s->iobase;
    info->irq = s->isairq;
    info->offered_features = coco_attest_offered(s);
    info->negotiated = s->negotiated;
    info->version = s->proto;
    info->negotiated_features = s->negotiated_features;
    info->max_object = s->max_object;
    info->channel = coca_chan_to_qapi[s->last_chan];
    info->pending = s->inflight != NULL;
    info->requests = s->stat_requests;
    info->errors = s->stat_errors;
    info->dropped = s->stat_dropped;
    for (i = 0; i < s->n_sessions; i++) {
        info->kbs_sessions += s->sessions[i].id != 0;
    }
    info->kbs_requests = s->stat_kbs_requests;
    info->kbs_errors = s->stat_kbs_errors;
    info->kbs_rate_limited = s->stat_kbs_rate_limited;
    if (s->ca) {
        info->has_ca_not_after = true;
        info->ca_not_after = coco_attest_ca_not_after(s->ca);
    }
    QAPI_LIST_APPEND(*tail, info);
    return 0;
}

CocoAttestInfoList *qmp_query_coco_attest(Error **errp)
{
    CocoAttestInfoList *head = NULL, **tail = &head;

    object_child_foreach_recursive(object_get_root(), coca_query_one, &tail);
    return head;
}
