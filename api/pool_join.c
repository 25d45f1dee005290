/* api/pool_join.c - pool.join and pool.join_force, run on the joining host
 * (xapi's ocaml/xapi/xapi_pool.ml join_common), and what the master answers
 * a joiner: pool.initial_auth (the pool secret) and pool.get_store_settings
 * (the pool's etcd endpoints and prefix: Vessel's own, hidden, pool-admin).
 *
 * The joiner logs in to the master over HTTPS (ADDR[:PORT], default 443; the
 * certificate is not verified, as xapi's first, "unverified" connection of a
 * join), runs xapi's pre-join checks that apply to Vessel, asks for the
 * secret and the store settings, then writes its own objects into the pool's
 * store itself, in one etcd transaction (all or none), under their own refs
 * and uuids:
 *  - its host record, host_metrics, host_cpus, control domain;
 *  - its PIFs with their metrics; each PIF's network is the pool's network
 *    with the same bridge (xapi's create_or_get_network_on_master), or the
 *    joiner's own, carried, when the pool has none;
 *  - its SRs (all local: a shared SR refuses the join) with their PBDs and
 *    VDIs;
 *  - its halted and suspended VMs (templates and snapshots that are not the
 *    built-in templates included) whose disks are all on those SRs, with their
 *    VBDs, VIFs (networks mapped as the PIFs') and metrics. xapi exports every
 *    VM's metadata to the new master with restore:true (keeping uuids) during
 *    the join (Importexport.remote_metadata_export_import), and refuses a
 *    joiner with running VMs: so the VMs are the pool's, not lost, as here.
 * Not carried: the pool object, roles, SMs, built-in templates (the pool has
 * its own), sessions, tasks, messages, blobs.
 *
 * Then DATA/ptoken and DATA/pool.conf are written and vesseld restarts a
 * second after the reply (host.restart_agent's path); at start pool.conf
 * puts it on the pool's store as a member (daemon/main.c). Its SQLite
 * database stays in DATA/vessel.db, unused while it is a member.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/pool_conf.h"
#include "api/pool_objects.h"
#include "api/host_admin.h"
#include "rpc/ctx.h"
#include "rpc/peers.h"
#include "client/xclient.h"
#include "common/log.h"
#include "db/db.h"
#include "xapi_client.h"
#include "xapi_handlers.h"
#include "xapi_model.h"

#define JOIN_TIMEOUT_MS 30000

/* ------------------------------------------------------------------ checks on this host */

struct local_facts {
    const char *host;
    size_t hosts, running, with_ops, shared_srs, bonds, vlans;
    bool ha;
};

static bool
count_host(void *opaque, const char *ref, const void *rec)
{
    (void)ref;
    (void)rec;
    ((struct local_facts *)opaque)->hosts++;
    return true;
}

static bool
count_vm(void *opaque, const char *ref, const void *rec)
{
    struct local_facts *f = opaque;
    const struct xapi_vm_record *vm = rec;
    (void)ref;
    /* Paused counts as running: its qemu lives on this host (xapi's check
     * names Running only; Xen's paused domain would stay behind too). */
    if (!vm->is_control_domain && (vm->power_state == XAPI_VM_POWER_STATE_RUNNING ||
                                   vm->power_state == XAPI_VM_POWER_STATE_PAUSED))
        f->running++;
    if (vm->current_operations.n)
        f->with_ops++;
    return true;
}

static bool
count_sr(void *opaque, const char *ref, const void *rec)
{
    const struct xapi_sr_record *sr = rec;
    (void)ref;
    if (sr->shared && !sr->is_tools_sr)
        ((struct local_facts *)opaque)->shared_srs++;
    return true;
}

static bool
count_any(void *opaque, const char *ref, const void *rec)
{
    (void)ref;
    (void)rec;
    (*(size_t *)opaque)++;
    return true;
}

static bool
pool_ha(void *opaque, const char *ref, const void *rec)
{
    (void)ref;
    ((struct local_facts *)opaque)->ha |= ((const struct xapi_pool_record *)rec)->ha_enabled;
    return true;
}

static void
local_facts(struct db *db, struct local_facts *f)
{
    db_foreach(db, &xapi_class_host, count_host, f);
    db_foreach(db, &xapi_class_vm, count_vm, f);
    db_foreach(db, &xapi_class_sr, count_sr, f);
    db_foreach(db, &xapi_class_bond, count_any, &f->bonds);
    db_foreach(db, &xapi_class_vlan, count_any, &f->vlans);
    db_foreach(db, &xapi_class_pool, pool_ha, f);
}

/* ------------------------------------------------------------------ the master */

struct master {
    struct xclient *xc;
    char *pool;
    struct xapi_pool_record *pool_rec;
    struct xapi_host_record *host; /* the master */
};

static void
master_close(struct master *m)
{
    if (m->xc && xclient_session(m->xc))
        xc_session_logout(m->xc, NULL);
    xclient_free(m->xc);
    free(m->pool);
    xapi_pool_record_free(m->pool_rec);
    xapi_host_record_free(m->host);
    memset(m, 0, sizeof(*m));
}

/* A transport failure of our client (rather than a XenAPI error the master
 * sent) is INTERNAL_ERROR ["xclient: ..."] (client/xclient.h). */
static bool
transport_failed(const struct xerr *e)
{
    return e && strcmp(e->code, "INTERNAL_ERROR") == 0 && e->n_params &&
           strncmp(e->params[0], "xclient:", 8) == 0;
}

static bool
master_open(struct master *m, const char *address, const char *user, const char *password,
            struct xerr **errp)
{
    char host[256];
    int port;
    if (!peers_parse_address(address, host, sizeof(host), &port))
        return xerr_joining_host_connection_failed(errp);
    struct xclient_config cfg = {.transport = XCLIENT_TLS, .host = host, .port = port,
                                 .tls_insecure = true, .timeout_ms = JOIN_TIMEOUT_MS};
    if (xclient_new(&cfg, &m->xc) < 0)
        return xerr_nomem(errp);
    struct xerr *err = NULL;
    char *session = NULL;
    if (!xc_session_login_with_password(m->xc, user, password, "2.21", "vessel pool.join",
                                        &session, &err)) {
        if (transport_failed(err)) {
            char d[256];
            log_warn("pool.join", "master=%s error=\"%s\"", address,
                     xerr_describe(err, d, sizeof(d)));
            xerr_free(err);
            return xerr_joining_host_connection_failed(errp);
        }
        return xerr_propagate(errp, &err);
    }
    xclient_set_session(m->xc, session);
    free(session);
    struct xapi_ref_set pools = {0, NULL};
    bool ok = xc_pool_get_all(m->xc, &pools, &err) && pools.n > 0 &&
              (m->pool = strdup(pools.items[0])) &&
              xc_pool_get_record(m->xc, m->pool, &m->pool_rec, &err) &&
              xc_host_get_record(m->xc, m->pool_rec->master, &m->host, &err);
    xtype_value_clear(&xapi_type_ref_pool_set, &pools);
    if (!ok) {
        if (!err || transport_failed(err)) {
            xerr_free(err);
            return xerr_joining_host_service_failed(errp);
        }
        return xerr_propagate(errp, &err);
    }
    return true;
}

/* ------------------------------------------------------------------ pre-join checks */

static const char *
sw(const struct xapi_host_record *h, const char *key)
{
    const char *v = xmap_get_str((const struct xmap *)&h->software_version, key);
    return v ? v : "";
}

/* xapi's pre_join_checks, in its order, those that apply to Vessel (no
 * licences, clustering, SR-IOV, tunnels, external auth or updates here). */
static bool
pre_join_checks(struct call_ctx *ctx, const struct master *m, bool force, struct xerr **errp)
{
    struct local_facts f = {.host = ctx->srv->host_ref};
    local_facts(ctx->db, &f);
    struct xapi_host_record *me = NULL;
    if (!db_get(ctx->db, &xapi_class_host, ctx->srv->host_ref, (void **)&me, errp))
        return false;
    bool ok = false;
    char mine[48], theirs[48];
    if (f.ha || m->pool_rec->ha_enabled)
        xerr_ha_is_enabled(errp);
    else if (strcmp(m->host->uuid, me->uuid) == 0)
        xerr_operation_not_allowed(errp, f.hosts > 1 ? "Host is already part of a pool"
                                                     : "Host cannot become slave of itself");
    else if (f.hosts > 1)
        xerr_joining_host_cannot_be_master_of_other_hosts(errp);
    else if (f.running)
        xerr_joining_host_cannot_have_running_vms(errp);
    else if (f.with_ops)
        xerr_joining_host_cannot_have_vms_with_current_operations(errp);
    else if (!force && (strcmp(sw(me, "xapi"), sw(m->host, "xapi")) ||
                        strcmp(sw(me, "platform_name"), sw(m->host, "platform_name")) ||
                        strcmp(sw(me, "platform_version"), sw(m->host, "platform_version"))))
        xerr_hosts_not_homogeneous(errp, "Software version differs");
    else if (!force &&
             strcmp(xmap_get_str((const struct xmap *)&me->cpu_info, "vendor") ?: "",
                    xmap_get_str((const struct xmap *)&m->pool_rec->cpu_info, "vendor") ?: ""))
        xerr_hosts_not_homogeneous(errp, "CPUs differ");
    else if (f.shared_srs)
        xerr_joining_host_cannot_contain_shared_srs(errp);
    else if (f.bonds)
        xerr_pool_joining_host_has_bonds(errp);
    else if (f.vlans)
        xerr_pool_joining_host_has_non_management_vlans(errp);
    else if (me->API_version_major != m->host->API_version_major ||
             me->API_version_minor != m->host->API_version_minor) {
        snprintf(mine, sizeof(mine), "%lld.%lld", (long long)me->API_version_major,
                 (long long)me->API_version_minor);
        snprintf(theirs, sizeof(theirs), "%lld.%lld", (long long)m->host->API_version_major,
                 (long long)m->host->API_version_minor);
        xerr_pool_joining_host_must_have_same_api_version(errp, mine, theirs);
    } else if (strcmp(sw(me, "db_schema"), sw(m->host, "db_schema")))
        xerr_pool_joining_host_must_have_same_db_schema(errp, sw(me, "db_schema"),
                                                        sw(m->host, "db_schema"));
    else
        ok = true;
    xapi_host_record_free(me);
    return ok;
}

/* ------------------------------------------------------------------ the messages */

static bool
join_common(struct call_ctx *ctx, const char *address, const char *user, const char *password,
            bool force, struct xerr **errp)
{
    struct master m = {0};
    struct pool_conf conf = {0};
    char *secret = NULL;
    struct xapi_string_string_map settings = {0};
    bool ok = master_open(&m, address, user, password, errp) &&
              pre_join_checks(ctx, &m, force, errp);
    struct xerr *err = NULL;
    if (ok && (!xc_pool_initial_auth(m.xc, &secret, &err) ||
               !xc_pool_get_store_settings(m.xc, &settings, &err)))
        ok = transport_failed(err) ? (xerr_free(err), xerr_joining_host_service_failed(errp))
                                   : xerr_propagate(errp, &err);
    if (ok) {
        const struct xmap *s = (const struct xmap *)&settings;
        const char *store = xmap_get_str(s, "store"), *ep = xmap_get_str(s, "endpoints"),
                   *prefix = xmap_get_str(s, "prefix");
        conf.store = strdup(store ? store : "");
        conf.endpoints = strdup(ep ? ep : "");
        conf.prefix = strdup(prefix ? prefix : "");
        if (!conf.store || !conf.endpoints || !conf.prefix)
            ok = xerr_nomem(errp);
        else if (!pool_conf_valid(&conf))
            ok = xerr_operation_not_allowed(
                errp, "the pool's master keeps its database on this host only: a pool's "
                      "master runs with --store etcd");
    }
    master_close(&m);
    struct db *pool = NULL;
    if (ok) {
        char *spec = NULL, why[256] = "";
        if (asprintf(&spec, "etcd:%s;%s", conf.endpoints, conf.prefix) < 0)
            spec = NULL;
        int rc = spec ? db_open(spec, &pool, why, sizeof(why)) : -ENOMEM;
        free(spec);
        if (rc < 0) {
            log_warn("pool.join", "store=%s prefix=%s reason=\"%s\"", conf.endpoints, conf.prefix,
                     why);
            ok = xerr_joining_host_service_failed(errp);
        }
    }
    if (ok) {
        struct owned o;
        ok = pool_objects_find(ctx->db, pool, ctx->srv->host_ref, false, &o, errp);
        if (ok) {
            db_batch_begin(pool);
            ok = db_batch_end(pool, pool_objects_copy(ctx->db, pool, &o, errp), errp);
            if (ok)
                log_info("pool.join", "carried srs=%zu vdis=%zu pifs=%zu networks=%zu vms=%zu",
                         o.srs.n, o.vdis.n, o.pifs.n, o.networks.n, o.vms.n);
            pool_objects_free(&o);
        }
    }
    db_close(pool);
    int rc = 0;
    if (ok && ((rc = pool_secret_write(ctx->srv->data_dir, secret)) < 0 ||
               (rc = pool_conf_write(ctx->srv->data_dir, &conf)) < 0))
        ok = xerr_internal(errp, "cannot write the pool's settings in %s: %s",
                           ctx->srv->data_dir, strerror(-rc));
    if (ok) {
        log_info("pool.join", "master=%s prefix=%s restart_in_s=1", address, conf.prefix);
        ctx->srv->restart_store_from_data_dir = true;
        ctx->srv->restart_requested = true;
        ok = host_agent_stop_soon(errp);
    }
    if (secret)
        explicit_bzero(secret, strlen(secret));
    free(secret);
    xtype_value_clear(&xapi_type_string_string_map, &settings);
    pool_conf_clear(&conf);
    return ok;
}

bool
api_pool_join(struct call_ctx *ctx, const char *master_address, const char *master_username,
              const char *master_password, struct xerr **errp)
{
    return join_common(ctx, master_address, master_username, master_password, false, errp);
}

/* join_force skips what xapi's force skips: the homogeneity of software
 * versions and CPU vendors. */
bool
api_pool_join_force(struct call_ctx *ctx, const char *master_address,
                    const char *master_username, const char *master_password,
                    struct xerr **errp)
{
    return join_common(ctx, master_address, master_username, master_password, true, errp);
}

/* The pool secret (xapi's Pool.initial_auth, hidden): made on first use. */
bool
api_pool_initial_auth(struct call_ctx *ctx, char **result, struct xerr **errp)
{
    int rc = pool_secret_ensure(ctx->srv->data_dir, result);
    return rc < 0 ? xerr_internal(errp, "pool secret: %s", strerror(-rc)) : true;
}

/* Where the pool's objects are: what a joiner needs besides the secret.
 * Vessel's own (xapi's slaves read the master's database over its own
 * protocol instead); hidden from clients' lists and pool-admin only. */
bool
api_pool_get_store_settings(struct call_ctx *ctx, struct xapi_string_string_map *result,
                            struct xerr **errp)
{
    const char *spec = ctx->srv->store_spec ? ctx->srv->store_spec : "";
    char *endpoints = NULL;
    const char *semi = strchr(spec, ';');
    bool etcd = strncmp(spec, "etcd:", 5) == 0 && semi;
    if (etcd && !(endpoints = strndup(spec + 5, (size_t)(semi - spec - 5))))
        return xerr_nomem(errp);
    struct xmap *m = (struct xmap *)result;
    bool ok = xtype_value_init(&xapi_type_string_string_map, result) == 0 &&
              xmap_put_str(m, "store", etcd ? "etcd" : "sqlite") == 0 &&
              (!etcd || (xmap_put_str(m, "endpoints", endpoints) == 0 &&
                         xmap_put_str(m, "prefix", semi + 1) == 0));
    free(endpoints);
    return ok ? true : xerr_nomem(errp);
}
