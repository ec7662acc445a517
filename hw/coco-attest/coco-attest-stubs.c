/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * coco-attest: QMP commands for builds without the device.
 */

#include "qemu/osdep.h"
#include "qapi/qapi-commands-coco-attest.h"

CocoAttestInfoList *qmp_query_coco_attest(Error **errp)
{
    return NULL;
}
