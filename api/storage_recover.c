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

#include <stdlib.h>
#include <string.h>

#include "api/storage_api.h"
#include "common/log.h"
#include "db/db.h"
#include "storage/sr_file.h"
#include "xapi_model.h"

struct sr_list {
    char **refs;
    size_t n;
};

static bool
sr_collect(void *opaque, const char *ref, const void *rec)
{
    struct sr_list *l = opaque;
    const struct xapi_sr_record *s = rec;
    if ((strcmp(s->type, "ext") != 0 && strcmp(s->type, "file") != 0) || s->shared)
        return true;
    char **grown = realloc(l->refs, (l->n + 1) * sizeof(*grown));
    if (!grown)
        return false;
    l->refs = grown;
    if ((grown[l->n] = strdup(ref)))
        l->n++;
    return true;
}

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

unsigned
storage_recover(struct server *srv)
{
    struct sr_list l = {0};
    unsigned total = 0;
    db_foreach(srv->db, &xapi_class_sr, sr_collect, &l);
    for (size_t i = 0; i < l.n; i++) {
        char *path = NULL;
        struct xerr *err = NULL;
        struct sr_ctx c = {srv, l.refs[i]};
        unsigned n = 0;
        if (!storage_sr_path(srv->db, srv->host_ref, l.refs[i], &path, &err)) {
            xerr_free(err); /* not plugged here: nothing of ours to recover */
        } else if (sr_file_recover(path, committed, removed, &c, &n) < 0) {
            log_warn("storage.recover", "sr=%s error=\"%s\"", l.refs[i], sr_file_last_error());
        } else if (n) {
            log_info("storage.recovered", "sr=%s files=%u", l.refs[i], n);
            if (!storage_sr_refresh_vdis(srv->db, l.refs[i], path, &err))
                xerr_free(err); /* the collector's pass refreshes them again */
            total += n;
        }
        free(path);
        free(l.refs[i]);
    }
    free(l.refs);
    return total;
}
