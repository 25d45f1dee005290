/* api/host_evacuate.h - the memory half of an evacuation plan.
 *
 * host.evacuate (api/host_evacuate.c) moves every VM resident on a host to
 * the pool's other enabled hosts. Which host takes which VM is decided by
 * memory alone, as xapi's Xapi_ha_vm_failover.compute_evacuation_plan does
 * (ocaml/xapi/xapi_host.ml compute_evacuation_plan_no_wlb calls it); the
 * storage and state checks around it need the store and are in the .c file.
 * This part is pure so that tests/unit/api/ can check it.
 */
#ifndef VESSEL_API_HOST_EVACUATE_H
#define VESSEL_API_HOST_EVACUATE_H

#include <stddef.h>
#include <stdint.h>

/* A VM to place: @memory bytes (its memory_dynamic_max); *target is set to
 * one of the hosts, or NULL when none has the memory left. */
struct evac_vm {
    const char *ref;
    int64_t memory;
    const char *target;
};

/* A host that may take VMs: @free bytes it can still give (negative:
 * unknown, then it is not limited, as in api/placement.h's checks). */
struct evac_host {
    const char *ref;
    int64_t free;
};

/* Biggest VM first, each to the host with the most memory left that holds
 * it (ties: the earlier host; equal VMs keep their order); the hosts' free
 * memory goes down as VMs are placed. */
void evacuate_binpack(struct evac_vm *vms, size_t n_vms, struct evac_host *hosts,
                      size_t n_hosts);

#endif
