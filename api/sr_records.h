/* api/sr_records.h - what api/sr.c takes from api/sr_records.c beyond
 * api/storage_api.h: PBD lookups, the SR's allowed operations, scans, and
 * dropping VDI records. Same contract as storage_api.h.
 */
#ifndef VESSEL_API_SR_RECORDS_H
#define VESSEL_API_SR_RECORDS_H

#include <stdbool.h>
#include <stddef.h>

#include "xapi_model.h"

struct db;

/* db_foreach over PBDs: finds @sr's PBD on @host (when set) and counts its
 * plugged PBDs. ref and path are new (free()). */
struct pbd_find {
    const char *sr, *host;
    char *ref;      /* the PBD of sr on host */
    char *path;     /* its device_config:path */
    bool attached;
    size_t n_attached; /* PBDs of sr plugged anywhere */
};
bool pbd_find_one(void *opaque, const char *ref, const void *rec);

/* Sets @s's allowed_operations for an SR of a type we drive, plugged (@attached) or
 * not. false only when out of memory. */
bool sr_ops_set(struct xapi_sr_record *s, bool attached);
/* Recomputes @sr's allowed_operations from whether any PBD of it is plugged. */
bool sr_ops_refresh(struct db *db, const char *sr, struct xerr **errp);

/* The VDI records of @sr reconciled with the files in @path: sizes and
 * vhd-parent refreshed; with @adopt (SR.scan) records dropped for VDIs whose
 * file is gone and made for files without one. Then the SR's sizes. */
bool sr_scan_path(struct db *db, const char *sr, const char *path, bool adopt,
                  struct xerr **errp);

/* db_foreach collecting refs whose char * field at @field_offset equals @match. */
struct ref_list {
    const char *match;
    size_t field_offset; /* offset of the char * field compared with match */
    char **refs;
    size_t n;
    bool nomem;
};
bool ref_list_one(void *opaque, const char *ref, const void *rec);
void ref_list_free(struct ref_list *l);

/* Destroys VDI @ref's record and its VBDs' (not its file). */
bool vdi_records_drop(struct db *db, const char *ref, struct xerr **errp);

#endif
