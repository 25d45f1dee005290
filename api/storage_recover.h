/* api/storage_recover.h - what a crash of vesseld left in this host's SRs.
 *
 * Called once at start, after the store is open and before any listener
 * accepts a call (no storage operation may be in flight: storage/sr_file.h,
 * sr_file_recover). Never fails the start: an SR that cannot be read is
 * logged and left for the next one.
 */
#ifndef VESSEL_API_STORAGE_RECOVER_H
#define VESSEL_API_STORAGE_RECOVER_H

#include "rpc/ctx.h"

/* Removes the leftovers of every file SR plugged on this host that this host
 * alone writes (not shared), logging each file (storage.recover) and a
 * summary per SR; records are refreshed from the files after a removal.
 * Returns how many files were removed. */
unsigned storage_recover(struct server *srv);

#endif
