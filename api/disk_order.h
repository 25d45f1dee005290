/* api/disk_order.h - disk_servers_lock, moved out of api/disk_servers.h. */
#ifndef VESSEL_API_DISK_ORDER_H
#define VESSEL_API_DISK_ORDER_H

/* The lock that orders a served VDI's chain changes against its servers
 * starting and stopping. Held around pause ... reload ... resume. */
void disk_servers_lock(void);
void disk_servers_unlock(void);

#endif
