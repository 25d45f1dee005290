/* api/inventory.h - the host's identity, kept beside its data: DATA/inventory
 * holds INSTALLATION_UUID=<uuid> (the key of xapi's /etc/xensource-inventory).
 * In a pool the store holds every host's record; this file says which one is
 * this host, so it must outlive the store it first lived in (pool.join,
 * pool.eject). */
#ifndef VESSEL_API_INVENTORY_H
#define VESSEL_API_INVENTORY_H

#include <stdbool.h>

/* Reads the uuid into @uuid; 0, -ENOENT when there is no inventory yet, or
 * -EINVAL when the file names no well-formed uuid. */
int inventory_read(const char *data_dir, char uuid[37]);
/* Writes (atomically) the inventory naming @uuid. 0 or a negative errno. */
int inventory_write(const char *data_dir, const char *uuid);

#endif
