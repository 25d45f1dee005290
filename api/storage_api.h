/* api/storage_api.h - what api/sr.c, vdi.c, vbd.c, pbd.c and vm_provision.c share:
 * the step from XenAPI records (SR, PBD, VDI, VBD) to the SR drivers of storage/.
 * The SR helpers are defined in api/sr_records.c, which calls no other file of
 * api/; VDI and VBD creation in api/vdi.c and api/vbd.c.
 *
 * Contract: every function takes errp last and returns success; records and
 * strings handed out are the caller's (free() / xapi_*_record_free). Any worker
 * thread may call them; they may be called inside a db_batch of the calling
 * thread (they only read and write through db/).
 */
#ifndef VESSEL_API_STORAGE_API_H
#define VESSEL_API_STORAGE_API_H

#include <stdbool.h>
#include <stdint.h>

#include "xapi_model.h"

struct call_ctx;
struct db;
struct server;

/* The local SR of this host on first start (idempotent): when no SR has
 * other_config:vessel-local=true, create one (type ext, DATA_DIR/sr/local)
 * with a plugged PBD for this host, and make it pool.default_SR (and the
 * suspend-image and crash-dump SR while those are unset). Needs srv->host_ref
 * and srv->pool_ref. */
bool sr_bootstrap_local(struct server *srv, struct xerr **errp);

/* The directory of @sr as seen from @host: its PBD there must be plugged.
 * Errors: HANDLE_INVALID, SR_HAS_NO_PBDS [sr] (no PBD on @host), SR_NOT_ATTACHED
 * [sr] (a PBD, unplugged). *@path is new (free()). */
bool storage_sr_path(struct db *db, const char *host, const char *sr, char **path,
                     struct xerr **errp);

/* Refresh @sr's physical_size, physical_utilisation (the file system's) and
 * virtual_allocation (its VDIs' virtual sizes). */
bool storage_sr_refresh(struct db *db, const char *sr, const char *path, struct xerr **errp);

/* The sizes and sm_config:vhd-parent of @sr's VDI records from their files
 * in @path (records are neither made nor dropped: that is SR.scan's), then
 * the SR's sizes. */
bool storage_sr_refresh_vdis(struct db *db, const char *sr, const char *path,
                             struct xerr **errp);

/* The refs of the unshared SRs of a type we drive (ext, file) that @keep (may
 * be NULL) accepts: the SRs whose files only this host writes. *@refs is new
 * (free each and the array), also when false is returned (out of memory: the
 * list is short). */
typedef bool storage_sr_keep_fn(const struct xapi_sr_record *sr);
bool storage_local_srs(struct db *db, storage_sr_keep_fn *keep, char ***refs, size_t *n);

/* After a PBD of @sr was plugged or unplugged: allowed_operations again, and
 * the sizes when @path (the directory, now plugged) is given. */
bool storage_sr_plugged(struct call_ctx *ctx, const char *sr, const char *path,
                        struct xerr **errp);

/* A storage/ failure @rc (-errno) of VDI @vdi (or "" ) on @sr as a XenAPI error:
 * -ENOENT VDI_MISSING [sr, vdi], anything else SR_BACKEND_FAILURE [errno name,
 * "", reason]. The reason names files by their base name only (the full text
 * goes to the log, event storage.error_detail). Returns false. */
bool storage_fail(struct xerr **errp, int rc, const char *sr, const char *vdi);
/* @in with every absolute path cut to its last component, into @out (always
 * terminated): a client never learns where the server keeps its files.
 * Returns @out. */
const char *storage_public_text(const char *in, char *out, size_t len);

/* VDI.create's work: the file (SR_FULL [requested, maximum] when it does not
 * fit) and the record built from @args (copied; virtual_size rounded up to
 * whole 2 MiB blocks). *@ref is new. Inside a batch that fails, the caller
 * deletes the file again with storage_vdi_delete_file. */
bool storage_vdi_create(struct call_ctx *ctx, const struct xapi_vdi_record *args, char **ref,
                        struct xerr **errp);
/* Deletes the file of the VDI whose uuid is @uuid on @sr (no record change). */
void storage_vdi_delete_file(struct call_ctx *ctx, const char *sr, const char *uuid);
/* Recomputes @vdi->allowed_operations from its state (attached VBDs counted by
 * the caller in @attached). false only when out of memory. */
bool storage_vdi_ops_refresh(struct xapi_vdi_record *vdi, bool attached);

/* VBD.create's checks and record (xapi's order: VDI type, CD read-only, empty
 * only for CDs, RW on a read-only VDI, userdevice valid and free). */
bool storage_vbd_create(struct call_ctx *ctx, const struct xapi_vbd_record *args, char **ref,
                        struct xerr **errp);

/* Checks the changed block log of VDI @vdi_uuid (in the SR at @path) against
 * its leaf; a leaf replaced outside vesseld resets the log, which is logged
 * and told as the message VDI_CBT_METADATA_INCONSISTENT (api/vdi_cbt.c). */
void vdi_cbt_check(struct call_ctx *ctx, const char *path, const char *vdi_uuid);
void vdi_cbt_check_srv(struct server *srv, const char *path, const char *vdi_uuid);

/* The words xapi's errors use for a VDI type (Record_util.vdi_type_to_string). */
const char *vdi_type_words(enum xapi_vdi_type t);
/* xapi's refusals tied to changed block tracking, for an operation on VDI
 * @v (@ref): one that @needs_data is refused on a cbt_metadata VDI
 * (VDI_INCOMPATIBLE_TYPE [vdi, "CBT metadata"]); one @refused_when_tracked
 * on a VDI with tracking (VDI_CBT_ENABLED [vdi]). */
bool vdi_cbt_op_check(const struct xapi_vdi_record *v, const char *ref, bool needs_data,
                      bool refused_when_tracked, struct xerr **errp);

#endif
