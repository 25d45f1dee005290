/* api/storage_gc.h - the storage garbage collector of this host.
 *
 * A background thread folds away the chain nodes of file SRs that no
 * snapshot needs any more (storage/sr_file.h, "garbage collection"), pausing
 * a running guest's disk only for the final merge of a small leaf. It runs
 * every period, and soon after storage_gc_kick (VDI.destroy, SR.scan).
 */
#ifndef VESSEL_API_STORAGE_GC_H
#define VESSEL_API_STORAGE_GC_H

#include <stdbool.h>

#include "rpc/ctx.h"

/* Starts the thread (once per process); @period_s between passes. */
void storage_gc_start(struct server *srv, unsigned period_s);
/* Asks for a pass soon. A no-op before storage_gc_start. */
void storage_gc_kick(struct server *srv);
/* Stops the thread after the step in progress. */
void storage_gc_stop(struct server *srv);

/* Writers other than disk servers (a VDI import, VDI.copy into a VDI): the
 * collector leaves VDI @uuid's leaf alone between begin and end; no merge or
 * split of it is under way when begin returns. false when out of memory. */
bool storage_gc_writer_begin(const char *uuid);
void storage_gc_writer_end(const char *uuid);

#endif
