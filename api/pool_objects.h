/* api/pool_objects.h - a host's own objects, moved between stores: into the
 * pool's by pool.join, back into a fresh SQLite database by pool.eject.
 *
 * A host's own objects are: its host record, host_metrics, host_cpus; its
 * PIFs with their metrics and the networks they (and its VMs' VIFs) are on;
 * its local (not shared) SRs, i.e. those with a PBD of this host, with their
 * PBDs and VDIs; its control domain, the VMs resident on it, and the halted
 * or suspended VMs (not the built-in templates) whose disks are all on its
 * SRs, with their VBDs, VIFs and metrics. Copies keep refs and uuids; a
 * network is the destination's network with the same bridge when it has
 * one (xapi's create_or_get_network_on_master), else carried.
 */
#ifndef VESSEL_API_POOL_OBJECTS_H
#define VESSEL_API_POOL_OBJECTS_H

#include <stdbool.h>
#include <stddef.h>

#include "model/xerr.h"
#include "model/xtype.h"

struct db;

struct refs {
    char **v;
    size_t n;
};

bool refs_has(const struct refs *r, const char *ref);
/* Appends @ref unless null ("", OpaqueRef:NULL) or present. */
bool refs_add(struct refs *r, const char *ref);
void refs_free(struct refs *r);
bool ref_is_null(const char *ref);

struct owned {
    struct refs host, host_metrics, cpus, networks, pif_metrics, pifs, srs, pbds, vdis,
        vm_metrics, guest_metrics, vms, vbds, vifs;
    /* the host's PBDs of shared SRs: the SRs stay the pool's, so these are
     * deleted with the host but never copied */
    struct refs shared_pbds;
    struct refs net_from, net_to; /* a network of @from and its ref in @to */
};

/* Finds @host's objects in @from; @to decides the networks. With
 * @diskless_need_affinity, a halted VM without disks is this host's only
 * when its affinity is this host (in a pool such a VM is nobody's own). */
bool pool_objects_find(struct db *from, struct db *to, const char *host,
                       bool diskless_need_affinity, struct owned *o, struct xerr **errp);
/* Creates copies of @o's objects in @to (call inside a db_batch of @to). */
bool pool_objects_copy(struct db *from, struct db *to, const struct owned *o,
                       struct xerr **errp);
/* Destroys @o's objects in @db but the networks (they are the pool's). */
bool pool_objects_delete(struct db *db, const struct owned *o, struct xerr **errp);
void pool_objects_free(struct owned *o);
/* Creates copies of the objects @r of @cls in @to (same refs and uuids). */
bool pool_objects_copy_refs(struct db *from, struct db *to, const struct xclass *cls,
                            const struct refs *r, struct xerr **errp);

#endif
