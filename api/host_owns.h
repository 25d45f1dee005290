/* api/host_owns.h - what this vesseld manages: in a pool every host sees
 * every host's objects, and each acts only on its own (a VM resident or
 * being started here; a PBD of this host: storage_sr_path). */
#ifndef VESSEL_API_HOST_OWNS_H
#define VESSEL_API_HOST_OWNS_H

#include <stdbool.h>
#include <string.h>

#include "xapi_model.h"

static inline bool
host_owns_vm(const char *host_ref, const struct xapi_vm_record *vm)
{
    return host_ref && ((vm->resident_on && strcmp(vm->resident_on, host_ref) == 0) ||
                        (vm->scheduled_to_be_resident_on &&
                         strcmp(vm->scheduled_to_be_resident_on, host_ref) == 0));
}

#endif
