/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * coco-attest: helpers the -object coco-attest-* backends share (rate
 * limits, properties fixed at creation).
 */

#include "qemu/osdep.h"
#include "qemu/timer.h"
#include "qapi/error.h"
#include "qapi/visitor.h"
#include "system/coco-attest-backend.h"

void coco_attest_rate_start(CocoAttestRate *r)
{
    r->tokens = r->burst;
    r->last_ns = qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
}

bool coco_attest_rate_take(CocoAttestRate *r)
{
    int64_t now = qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
    double elapsed_min = (now - r->last_ns) / 60e9;

    r->last_ns = now;
    r->tokens = MIN(r->burst, r->tokens + elapsed_min * r->rate);
    if (r->tokens < 1) {
        return false;
    }
    r->tokens -= 1;
    return true;
}

bool coco_attest_prop_settable(Object *obj, bool ready, const char *name,
                               Error **errp)
{
    if (ready) {
        error_setg(errp, "%s: %s cannot be changed once the object is "
                   "created", object_get_typename(obj), name);
        return false;
    }
    return true;
}

static void u32_prop_get(Object *obj, Visitor *v, const char *name,
                         void *opaque, Error **errp)
{
    const CocoAttestU32Prop *p = opaque;
    uint32_t value = *(uint32_t *)((char *)obj + p->offset);

    visit_type_uint32(v, name, &value, errp);
}

static void u32_prop_set(Object *obj, Visitor *v, const char *name,
                         void *opaque, Error **errp)
{
    const CocoAttestU32Prop *p = opaque;
    bool ready = *(bool *)((char *)obj + p->ready_offset);
    uint32_t value;

    if (!visit_type_uint32(v, name, &value, errp) ||
        !coco_attest_prop_settable(obj, ready, name, errp)) {
        return;
    }
    *(uint32_t *)((char *)obj + p->offset) = value;
}

void coco_attest_class_add_u32_props(ObjectClass *oc,
                                     const CocoAttestU32Prop *props,
                                     size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        object_class_property_add(oc, props[i].name, "uint32", u32_prop_get,
                                  u32_prop_set, NULL, (void *)&props[i]);
        object_class_property_set_description(oc, props[i].name,
                                              props[i].description);
    }
}
