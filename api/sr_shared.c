/* api/sr_shared.c - a shared SR's PBDs across the pool's hosts
 * (api/sr_shared.h). */
#include "api/sr_shared.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/sr_records.h"
#include "api/storage_api.h"
#include "common/log.h"
#include "common/xval.h"
#include "db/db.h"
#include "rpc/peers.h"
#include "storage/sr_file.h"
#include "xapi_errors.h"
#include "xapi_model.h"

/* A PBD made here reaches another host's records through its watch of the
 * store, a few milliseconds later: its plug there is retried meanwhile. */
#define PLUG_TRIES 50
#define PLUG_RETRY_MS 100

struct names {
    char **v;
    size_t n;
    bool nomem;
};

static bool
names_add(struct names *l, const char *s)
{
    char **grown = realloc(l->v, (l->n + 1) * sizeof(*grown));
    if (!grown || !(grown[l->n] = strdup(s))) {
        if (grown)
            l->v = grown;
        l->nomem = true;
        return false;
    }
    l->v = grown;
    l->n++;
    return true;
}

static void
names_free(struct names *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static bool
host_one(void *opaque, const char *ref, const void *rec)
{
    (void)rec;
    return names_add(opaque, ref);
}

/* The PBDs of one SR: which hosts have one, and a device_config to copy. */
struct sr_pbds {
    const char *sr;
    struct names hosts;
    struct xapi_string_string_map config;
    bool have_config, nomem;
};

static bool
sr_pbd_one(void *opaque, const char *ref, const void *rec)
{
    struct sr_pbds *s = opaque;
    const struct xapi_pbd_record *p = rec;
    (void)ref;
    if (strcmp(p->SR, s->sr) != 0)
        return true;
    if (!names_add(&s->hosts, p->host))
        return false;
    if (!s->have_config) {
        s->have_config = xtype_value_copy(&xapi_type_string_string_map, &s->config,
                                          &p->device_config) == 0;
        s->nomem = !s->have_config;
    }
    return !s->nomem;
}

static void
sr_pbds_free(struct sr_pbds *s)
{
    names_free(&s->hosts);
    xtype_value_clear(&xapi_type_string_string_map, &s->config);
}

static bool
has(const struct names *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], s) == 0)
            return true;
    return false;
}

/* A PBD of @sr for @host with @config, unplugged; *@ref new. */
static bool
pbd_create(struct db *db, const char *sr, const char *host,
           const struct xapi_string_string_map *config, char **ref, struct xerr **errp)
{
    struct xapi_pbd_record *p = xrecord_new(&xapi_class_pbd);
    if (!p || !xstr_set(&p->host, host) || !xstr_set(&p->SR, sr)) {
        xapi_pbd_record_free(p);
        return xerr_nomem(errp);
    }
    xtype_value_clear(&xapi_type_string_string_map, &p->device_config);
    if (xtype_value_copy(&xapi_type_string_string_map, &p->device_config, config) < 0) {
        xapi_pbd_record_free(p);
        return xerr_nomem(errp);
    }
    p->currently_attached = false;
    return db_create(db, &xapi_class_pbd, NULL, p, ref, errp);
}

bool
sr_shared_pbds_create(struct server *srv, const char *sr, struct xerr **errp)
{
    struct names hosts = {0};
    struct sr_pbds s = {.sr = sr};
    db_foreach(srv->db, &xapi_class_host, host_one, &hosts);
    db_foreach(srv->db, &xapi_class_pbd, sr_pbd_one, &s);
    bool ok = (!hosts.nomem && !s.hosts.nomem && !s.nomem) || xerr_nomem(errp);
    if (ok && !s.have_config)
        ok = xerr_sr_has_no_pbds(errp, sr);
    for (size_t i = 0; ok && i < hosts.n; i++) {
        if (has(&s.hosts, hosts.v[i]))
            continue;
        char *pbd = NULL;
        if (!(ok = pbd_create(srv->db, sr, hosts.v[i], &s.config, &pbd, errp)))
            break;
        /* forwarding would send PBD.plug there too: call its host directly */
        struct xval *arg = xval_new_string(pbd), *out = NULL;
        struct xerr *err = NULL;
        bool plugged = false;
        for (int tries = 0; !plugged && tries < PLUG_TRIES; tries++) {
            if (err) { /* the PBD had not reached that host's records yet */
                xerr_free(err);
                err = NULL;
                usleep(PLUG_RETRY_MS * 1000);
            }
            plugged = arg ? peers_call(srv, hosts.v[i], "PBD.plug", true,
                                       (const struct xval *const *)&arg, 1, NULL, &out, &err)
                          : xerr_nomem(&err);
            if (!plugged && (!err || strcmp(err->code, "HANDLE_INVALID") != 0))
                break;
        }
        if (!plugged) {
            char d[256];
            log_warn("sr.shared.plug", "sr=%s host=%s pbd=%s plugged=false error=\"%s\"", sr,
                     hosts.v[i], pbd, xerr_describe(err, d, sizeof(d)));
        } else {
            log_info("sr.shared.plug", "sr=%s host=%s pbd=%s plugged=true", sr, hosts.v[i], pbd);
        }
        xerr_free(err);
        xval_free(arg);
        xval_free(out);
        free(pbd);
    }
    names_free(&hosts);
    sr_pbds_free(&s);
    return ok;
}

/* ------------------------------------------------------------------ at start */

static bool
shared_sr_one(void *opaque, const char *ref, const void *rec)
{
    const struct xapi_sr_record *s = rec;
    if (!s->shared || (strcmp(s->type, "ext") != 0 && strcmp(s->type, "file") != 0))
        return true;
    return names_add(opaque, ref);
}

static bool
set_attached(void *opaque, void *rec, struct xerr **errp)
{
    (void)opaque, (void)errp;
    ((struct xapi_pbd_record *)rec)->currently_attached = true;
    return true;
}

/* This host's new PBD @pbd of @sr plugged, as PBD.plug does. */
static bool
plug_here(struct server *srv, const char *sr, const char *pbd,
          const struct xapi_string_string_map *config, struct xerr **errp)
{
    const char *path = xmap_get_str((const struct xmap *)config, "path");
    if (!path || !path[0])
        return xerr_invalid_value(errp, "device_config:path", "");
    int rc = sr_file_attach(path, false);
    if (rc < 0)
        return storage_fail(errp, rc, sr, NULL);
    return db_update(srv->db, &xapi_class_pbd, pbd, set_attached, NULL, errp) &&
           sr_ops_refresh(srv->db, sr, errp) && storage_sr_refresh(srv->db, sr, path, errp);
}

void
sr_bootstrap_shared(struct server *srv)
{
    struct names srs = {0};
    db_foreach(srv->db, &xapi_class_sr, shared_sr_one, &srs);
    for (size_t i = 0; i < srs.n; i++) {
        struct sr_pbds s = {.sr = srs.v[i]};
        db_foreach(srv->db, &xapi_class_pbd, sr_pbd_one, &s);
        char *pbd = NULL;
        struct xerr *err = NULL;
        if (!s.nomem && !s.hosts.nomem && s.have_config && !has(&s.hosts, srv->host_ref)) {
            bool ok = pbd_create(srv->db, srs.v[i], srv->host_ref, &s.config, &pbd, &err) &&
                      plug_here(srv, srs.v[i], pbd, &s.config, &err);
            char d[256] = "";
            if (err)
                xerr_describe(err, d, sizeof(d));
            log_write(ok ? LOG_INFO : LOG_WARN, "sr.shared.pbd",
                      "sr=%s host=%s pbd=%s plugged=%s error=\"%s\"", srs.v[i], srv->host_ref,
                      pbd ? pbd : "", ok ? "true" : "false", d);
        }
        xerr_free(err);
        free(pbd);
        sr_pbds_free(&s);
    }
    names_free(&srs);
}
