/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * coco-attest: what the -object coco-attest-* backends share.
 */

#ifndef SYSTEM_COCO_ATTEST_BACKEND_H
#define SYSTEM_COCO_ATTEST_BACKEND_H

#include "qom/object.h"

/*
 * A token bucket: @rate operations per minute on average, at most @burst
 * at once after a quiet period.  Used from the main loop only.
 */
typedef struct CocoAttestRate {
    uint32_t rate;
    uint32_t burst;
    double tokens;
    int64_t last_ns;            /* QEMU_CLOCK_REALTIME */
} CocoAttestRate;

/* Fill the bucket (when the backend is created). */
void coco_attest_rate_start(CocoAttestRate *r);

/* Take one token; false when the bucket is empty. */
bool coco_attest_rate_take(CocoAttestRate *r);

/*
 * A uint32 class property that can be set while the object is being
 * created, and is read-only once it is: requests running in worker
 * threads read what the object was created with.  @ready_offset locates
 * the object's bool that says it is complete.
 */
typedef struct CocoAttestU32Prop {
    const char *name;
    size_t offset;
    size_t ready_offset;
    const char *description;
} CocoAttestU32Prop;

#define COCO_ATTEST_U32_PROP(type, field, name, desc) \
    { (name), offsetof(type, field), offsetof(type, ready), (desc) }

void coco_attest_class_add_u32_props(ObjectClass *oc,
                                     const CocoAttestU32Prop *props,
                                     size_t n);

/* For string properties: an error if @obj is complete already. */
bool coco_attest_prop_settable(Object *obj, bool ready, const char *name,
                               Error **errp);

#endif
