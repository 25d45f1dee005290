/* api/guest_metrics.h - VM_guest_metrics from the guests' agents.
 *
 * The QEMU guest agent plays the part of XenServer's guest tools: while it
 * answers, a running VM has a VM_guest_metrics record (its OS, its addresses
 * per VIF, its file systems, the agent's version as PV_drivers_version) and
 * the features that need the guest's help (a clean reboot); when it stops
 * answering the record stays, marked not live, without those features; when
 * the VM halts the record goes, as xapi's force_state_reset does.
 */
#ifndef VESSEL_API_GUEST_METRICS_H
#define VESSEL_API_GUEST_METRICS_H

#include <stdbool.h>

struct server;
struct xerr;
struct xapi_vm_record;

/* Starts the thread that asks every running VM's agent each @period_s
 * seconds, and at once after a kick. 0 or -errno. */
int guest_metrics_start(struct server *srv, unsigned period_s);
/* An agent's port opened or closed (any thread): ask again now. */
void guest_metrics_kick(struct server *srv);
void guest_metrics_stop(struct server *srv);
/* Within the caller's batch, before @vm (a copy of the record) is marked
 * halted or suspended: destroys its VM_guest_metrics. */
bool guest_metrics_forget(struct server *srv, const struct xapi_vm_record *vm,
                          struct xerr **errp);

#endif
