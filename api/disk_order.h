/* api/disk_order.h - the lock that orders the moments when a VDI's files
 * and its disk servers must agree: a server starting or stopping, and the
 * steps that change a served VDI's chain (live snapshots, the collector).
 * Held around pause ... reload ... resume.
 *
 * A hard shutdown's stop ends behind its call (disk_servers_stop_behind,
 * api/disk_servers.h): its servers are signalled under the lock, and a
 * thread waits for their exits. Until they exited, disk_servers_lock and
 * disk_servers_settle wait, so that nothing reads or changes those VDIs'
 * files before their servers flushed and closed them. */
#ifndef VESSEL_API_DISK_ORDER_H
#define VESSEL_API_DISK_ORDER_H

/* Takes the lock, then waits until no stop is behind (none begins while
 * the lock is held). */
void disk_servers_lock(void);
/* Takes the lock at once: a stop signals servers whose files it forgets,
 * and reads or changes no VDI, so it need not wait for others behind (the
 * exit of a hard shutdown's guest stops its servers again, and finds none). */
void disk_servers_lock_to_stop(void);
void disk_servers_unlock(void);

/* Returns once no stop is behind: before a VDI's files are opened outside
 * the lock (storage_sr_path). */
void disk_servers_settle(void);

/* One more stop behind (under the lock), one fewer (it wakes the waiters). */
void disk_servers_behind_begin(void);
void disk_servers_behind_end(void);

#endif
