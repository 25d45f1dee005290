/* api/vm_devices.h - carrying a VM's VBDs (with their disks) and VIFs over to
 * another VM record: what VM.clone, copy, snapshot and revert share. */
#ifndef VESSEL_API_VM_DEVICES_H
#define VESSEL_API_VM_DEVICES_H

#include <stdbool.h>

#include "xapi_model.h"

struct call_ctx;

enum vm_copy_mode {
    VM_COPY_CLONE,    /* disks: VDI.clone; NICs: new MACs */
    VM_COPY_COPY,     /* disks: VDI.copy into @sr (NULL ref: each disk's own SR) */
    VM_COPY_SNAPSHOT, /* disks: VDI.snapshot, skipping @ignore_vdis; NICs keep MACs */
};

/* Gives VM @dst a copy of each VBD and VIF of @src. On failure the disks made
 * so far are destroyed again (VBD/VIF records of @dst are the caller's to
 * remove, with @dst). */
bool vm_devices_copy(struct call_ctx *ctx, const struct xapi_vm_record *src, const char *dst,
                     enum vm_copy_mode mode, const char *sr, const struct xapi_ref_set *ignore_vdis,
                     struct xerr **errp);

#endif
