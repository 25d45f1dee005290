/* api/xva_meta.h - a VM's ova.xml, built from the store as xapi's export.ml
 * builds it, and the list of disks whose data follows it in an XVA.
 *
 * Any worker or connection thread may call it; it only reads the store.
 */
#ifndef VESSEL_API_XVA_META_H
#define VESSEL_API_XVA_META_H

#include <stdbool.h>
#include <stdint.h>

#include "common/strbuf.h"
#include "model/xerr.h"

struct db;

struct xva_disk {
    char prefix[32]; /* "Ref:<n>": the disk's id in ova.xml and its tar directory */
    char *vdi;       /* the VDI's ref */
    char *sr;        /* its SR's ref */
    char *uuid;      /* its uuid (the file name in the SR) */
    uint64_t virtual_size;
};

struct xva_meta_opts {
    bool with_snapshot_metadata; /* also the VM's snapshots (export_metadata) */
    bool preserve_power_state;   /* keep power state and currently_attached */
};

/* ova.xml for @vms (n of them) into @xml, and in *@disks (*@n_disks) the
 * disks of the first VM to stream: its VBDs' VDIs that are not CDs and not
 * on an iso SR, sorted by prefix as xapi's stream_vdi.ml does. Errors:
 * HANDLE_INVALID [VM, ref], out of memory. Free the disks with
 * xva_disks_free(). */
bool xva_meta_build(struct db *db, const char *host, const char *const *vms, size_t n_vms,
                    const struct xva_meta_opts *opts, struct strbuf *xml,
                    struct xva_disk **disks, size_t *n_disks, struct xerr **errp);
void xva_disks_free(struct xva_disk *disks, size_t n);

#endif
