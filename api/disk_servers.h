/* api/disk_servers.h - the disk servers (`vhd serve`) of a VM's domain.
 *
 * disk_servers_start adds one NBD disk to @cfg per VBD of @vm that has a VDI
 * (starting its server first); disk_servers_stop stops every server of the VM
 * named by its uuid (idempotent: nothing running is fine). */
#ifndef VESSEL_API_DISK_SERVERS_H
#define VESSEL_API_DISK_SERVERS_H

#include <stdbool.h>

#include "rpc/ctx.h"
#include "xapi_model.h"
#include "xenops/xenops.h"

bool disk_servers_start(struct server *srv, const char *vm_ref, const struct xapi_vm_record *vm,
                        struct xenops_domain_config *cfg, struct xerr **errp);
void disk_servers_stop(struct server *srv, const char *vm_uuid);

#endif
