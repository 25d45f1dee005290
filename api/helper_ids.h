/* api/helper_ids.h - the uids a domain's helper processes run under. */
#ifndef VESSEL_API_HELPER_IDS_H
#define VESSEL_API_HELPER_IDS_H

#include <stdint.h>

#include "rpc/ctx.h"

/* The uid (and gid) the device model / the disk servers of domain @domid
 * run under; 0 when they run as vesseld (--qemu-uid-base / --vhd-uid-base 0). */
unsigned domains_qemu_uid(const struct server *srv, int64_t domid);
unsigned domains_vhd_uid(const struct server *srv, int64_t domid);

#endif
