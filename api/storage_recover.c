/* api/storage_recover.c - crash leftovers of the SRs, removed at start.
 *
 * A SIGKILL during VDI.create, clone, snapshot or copy leaves a VDI file no
 * record owns, work files (.*.part), or a snapshot's half-made base link;
 * which of them are leftovers, and why a user's own <uuid>.vhd never is, is
 * storage/sr_file_intent.c's. This file picks the SRs (plugged here, of the
 * directory kinds, not shared: another host's creation could be in flight in
 * a shared one), answers "is this VDI committed" from the store, and reports
 * each removal in the log (event storage.recover, one line per file). No
 * message object is made: xapi's message names are a fixed list
 * (api_messages.ml) with none for this, and a crash is the host's business.
 */
#include "api/storage_recover.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/storage_api.h"
#include "common/log.h"
#include "db/db.h"
#include "storage/sr_file.h"
#include "xapi_model.h"

struct sr_ctx {
    struct server *srv;
    const char *sr;
};

static bool
committed(void *opaque, const char *uuid)
{
    struct sr_ctx *c = opaque;
    char *ref = NULL;
    bool found = db_ref_by_uuid(c->srv->db, &xapi_class_vdi, uuid, &ref, NULL);
    free(ref);
    return found;
}

static void
removed(void *opaque, const char *file, const char *why)
{
    struct sr_ctx *c = opaque;
    log_warn("storage.recover", "sr=%s file=%s removed=\"%s\"", c->sr, file, why);
}

struct tracked {
    const char *sr;
    char (*uuids)[37];
    size_t n;
};

static bool
collect_tracked(void *opaque, const char *ref, const void *rec)
{
    struct tracked *t = opaque;
    const struct xapi_vdi_record *v = rec;
    if (!v->cbt_enabled || v->is_a_snapshot || v->type == XAPI_VDI_TYPE_CBT_METADATA ||
        strcmp(v->SR, t->sr) != 0)
        return true;
    char(*grown)[37] = realloc(t->uuids, (t->n + 1) * sizeof(*grown));
    if (!grown)
        return false;
    t->uuids = grown;
    snprintf(t->uuids[t->n++], 37, "%s", v->uuid);
    return true;
}

/* At start, each tracked disk's log against its leaf: the disk servers kept
 * writing while vesseld was down, into the leaf node the log counts, so a
 * restart alone never needs a reset; a leaf replaced meanwhile does
 * (storage/sr_file_cbt.c). */
static void
check_tracked(struct server *srv, const char *sr, const char *path)
{
    struct tracked t = {sr, NULL, 0};
    db_foreach(srv->db, &xapi_class_vdi, collect_tracked, &t);
    for (size_t i = 0; i < t.n; i++)
        vdi_cbt_check_srv(srv, path, t.uuids[i]);
    free(t.uuids);
}

unsigned
storage_recover(struct server *srv)
{
    char **refs = NULL;
    size_t n_refs = 0;
    unsigned total = 0;
    storage_local_srs(srv->db, NULL, &refs, &n_refs); /* a short list on ENOMEM: recover those */
    for (size_t i = 0; i < n_refs; i++) {
        char *path = NULL;
        struct xerr *err = NULL;
        struct sr_ctx c = {srv, refs[i]};
        unsigned n = 0;
        if (!storage_sr_path(srv->db, srv->host_ref, refs[i], &path, &err)) {
            xerr_free(err); /* not plugged here: nothing of ours to recover */
        } else if (sr_file_recover(path, committed, removed, &c, &n) < 0) {
            log_warn("storage.recover", "sr=%s error=\"%s\"", refs[i], sr_file_last_error());
        } else {
            check_tracked(srv, refs[i], path);
        }
        if (path && n) {
            log_info("storage.recovered", "sr=%s files=%u", refs[i], n);
            if (!storage_sr_refresh_vdis(srv->db, refs[i], path, &err))
                xerr_free(err); /* the collector's pass refreshes them again */
            total += n;
        }
        free(path);
        free(refs[i]);
    }
    free(refs);
    return total;
}
