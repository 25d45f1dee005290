/* api/vm_migrate_pool.c - VM.pool_migrate to another host of the pool.
 *
 * The source host (the VM's, where rpc/dispatch.c forwarded the call) runs
 * api/vm_migrate.h's source half and calls the destination half on the
 * other host through three hidden Vessel-internal messages (xapi has hidden
 * internal messages too, e.g. session.slave_login), made with the pool
 * secret's slave session (rpc/peers.h) and refused to any other session:
 *
 *   VM.pool_migrate_receive_begin(vm, geometry, certificate)
 *       -> {"uri": "tcp:ADDR:PORT", "domid": N, "certificate": PEM}
 *       standby disk servers and `qemu -incoming` on the destination's
 *       address, its QEMU trusting only the source host's certificate
 *   VM.pool_migrate_receive_wait(vm)       the whole state has arrived
 *   VM.pool_migrate_receive_end(vm, domid, commit)
 *       commit: disk servers activated, `cont`, the record moved here;
 *       else the destination undone
 *
 * The order is vm_migrate_local's: the destination waits first; the source
 * sends over TLS; only once the destination holds the whole state does the
 * source's qemu go and its disk servers flush and exit; then the destination
 * activates and continues. Anything failing before the source is gone
 * leaves the VM running on the source and aborts the destination.
 *
 * TLS: each end's QEMU trusts the two hosts' HTTPS certificates only (the
 * two certificates cross in begin's arguments and answer, over the
 * host-to-host connection authenticated by the pool secret), and the source
 * checks that the destination's certificate names host.hostname of the
 * destination (its certificate's CN: http/tls_cert.h). That channel does not
 * verify the peer's certificate itself (rpc/peers.h): pool TLS verification
 * is not built.
 */
#include "api/vm_migrate.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/domains.h"
#include "api/placement.h"
#include "common/fileio.h"
#include "common/log.h"
#include "db/db.h"
#include "http/tls_cert.h"
#include "rpc/peers.h"
#include "xapi_errors.h"
#include "xapi_handlers.h"

static uint64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* QEMU's trusted set for a migration with another host: the peer host's
 * certificate @pem and this host's own (QEMU checks its own certificate
 * against the set when it loads them), in DATA/migrate-<vm uuid>-<role>.pem
 * (removed by the caller once QEMU has its copy). */
static bool
peer_ca_write(struct server *srv, const char *vm_uuid, const char *role, const char *pem,
              char *path, size_t len, struct xerr **errp)
{
    if (!pem || !strstr(pem, "-----BEGIN CERTIFICATE-----"))
        return xerr_operation_not_allowed(errp, "the other host sent no certificate for the "
                                          "migration");
    char *own = NULL;
    if (tls_cert_read_file(srv->tls_cert_path, &own) < 0)
        return xerr_internal(errp, "the host's certificate for migration: unreadable");
    size_t a = strlen(pem), b = strlen(own);
    char *both = malloc(a + b + 2);
    if (!both) {
        free(own);
        return xerr_nomem(errp);
    }
    /* its own first: QEMU checks its own certificate against the first
     * certificate of the set whose name is its issuer's, and on one
     * machine two hosts' certificates may have the same name */
    snprintf(both, a + b + 2, "%s%s%s", own, b && own[b - 1] == '\n' ? "" : "\n", pem);
    free(own);
    snprintf(path, len, "%s/migrate-%s-%s.pem", srv->data_dir, vm_uuid, role);
    int rc = fileio_write_atomic(path, both, strlen(both), 0600);
    free(both);
    if (rc < 0)
        return xerr_internal(errp, "writing %s: %s", path, strerror(-rc));
    return true;
}

static char *
own_certificate(struct server *srv, struct xerr **errp)
{
    char why[256] = "", *pem = NULL;
    if (tls_cert_ensure(srv->tls_key_path, srv->tls_cert_path, NULL, why, sizeof(why)) < 0 ||
        tls_cert_read_file(srv->tls_cert_path, &pem) < 0) {
        xerr_internal(errp, "the host's certificate for migration: %s", why);
        return NULL;
    }
    return pem;
}

/* Only another host of the pool (its slave session) runs a destination. */
static bool
from_pool(struct call_ctx *ctx, struct xerr **errp)
{
    return ctx->pool_session ||
           xerr_operation_not_allowed(errp, "an internal message between the pool's hosts");
}

/* ------------------------------------------------------------------ destination */

bool
api_vm_pool_migrate_receive_begin(struct call_ctx *ctx, const char *vm_ref,
                                  const char *geometry, const char *certificate,
                                  struct xapi_string_string_map *result, struct xerr **errp)
{
    struct server *srv = ctx->srv;
    if (!from_pool(ctx, errp))
        return false;
    struct xapi_vm_record *vm = NULL;
    struct xapi_host_record *h = NULL;
    if (!db_get(ctx->db, &xapi_class_vm, vm_ref, (void **)&vm, errp))
        return false;
    char listen[256] = "", ca[4200] = "", uri[128] = "", id[32];
    int port = 0;
    int64_t domid = -1;
    char *pem = NULL;
    /* the source checked the memory here, but another start or migration
     * may be on its way to it: the memory is promised until receive_end */
    bool admitted = placement_admit(srv, vm_ref, vm->memory_dynamic_max, errp);
    bool ok = admitted && db_get(ctx->db, &xapi_class_host, srv->host_ref, (void **)&h, errp);
    if (ok && !peers_parse_address(h->address, listen, sizeof(listen), &port))
        ok = xerr_operation_not_allowed(errp, "this host's address is not usable for a "
                                        "migration");
    ok = ok && (pem = own_certificate(srv, errp)) &&
         peer_ca_write(srv, vm->uuid, "source", certificate, ca, sizeof(ca), errp) &&
         vm_migrate_receive_begin(srv, vm_ref, listen, geometry, ca, uri, sizeof(uri), &domid,
                                  errp);
    if (ca[0])
        unlink(ca); /* QEMU has its copy (xenops/xenops.h xenops_tls) */
    snprintf(id, sizeof(id), "%" PRId64, domid);
    if (ok && (xmap_put_str((struct xmap *)result, "uri", uri) < 0 ||
               xmap_put_str((struct xmap *)result, "domid", id) < 0 ||
               xmap_put_str((struct xmap *)result, "certificate", pem) < 0)) {
        vm_migrate_receive_end(srv, vm_ref, domid, false, NULL);
        ok = xerr_nomem(errp);
    }
    if (!ok && admitted)
        placement_release(vm_ref);
    if (ok)
        log_info("vm.migrate_receive_begin", "vm=%s uri=%s domid=%" PRId64, vm->uuid, uri,
                 domid);
    free(pem);
    xapi_host_record_free(h);
    xapi_vm_record_free(vm);
    return ok;
}

bool
api_vm_pool_migrate_receive_wait(struct call_ctx *ctx, const char *vm_ref, struct xerr **errp)
{
    return from_pool(ctx, errp) && vm_migrate_receive_wait(ctx->srv, vm_ref, errp);
}

bool
api_vm_pool_migrate_receive_end(struct call_ctx *ctx, const char *vm_ref, int64_t domid,
                                bool commit, struct xerr **errp)
{
    if (!from_pool(ctx, errp))
        return false;
    /* running here now: the record follows (resident_on, domid, consoles) */
    bool ok = vm_migrate_receive_end(ctx->srv, vm_ref, domid, commit, errp) &&
              (!commit || vm_lifecycle_record_migrated(ctx->srv, vm_ref, domid, errp));
    placement_release(vm_ref); /* resident_on counts it now, or it did not come */
    return ok;
}

/* ------------------------------------------------------------------ source */

/* @method on the destination @host with the VM first and up to two more
 * arguments; *@out its answer (may be NULL). */
static bool
call_dest(struct call_ctx *ctx, const char *host, const char *method, const char *vm_ref,
          struct xval *a1, struct xval *a2, struct xval **out, struct xerr **errp)
{
    struct xval *args[3] = {xval_new_string(vm_ref), a1, a2};
    size_t n = a2 ? 3 : a1 ? 2 : 1;
    struct xval *res = NULL;
    bool ok = true;
    for (size_t i = 0; i < n; i++)
        ok = ok && args[i];
    ok = ok ? peers_call(ctx->srv, host, method, true, (const struct xval *const *)args, n,
                         NULL, &res, errp)
            : xerr_nomem(errp);
    for (size_t i = 0; i < n; i++)
        xval_free(args[i]);
    if (ok && out)
        *out = res;
    else
        xval_free(res);
    return ok;
}

static void
dest_abort(struct call_ctx *ctx, const char *host, const char *vm_ref, int64_t domid)
{
    struct xerr *err = NULL;
    if (!call_dest(ctx, host, "VM.pool_migrate_receive_end", vm_ref, xval_new_int(domid),
                   xval_new_bool(false), NULL, &err)) {
        char d[256];
        log_warn("vm.migrate_abort_failed", "vm=%s host=%s error=\"%s\"", vm_ref, host,
                 xerr_describe(err, d, sizeof(d)));
        xerr_free(err);
    }
}

static const char *
str_of(const struct xval *st, const char *key)
{
    const struct xval *v = st && st->kind == XVAL_STRUCT ? xval_struct_get(st, key) : NULL;
    return v && v->kind == XVAL_STRING ? v->str.s : NULL;
}

/* The destination's hostname, which its certificate names (its CN). */
static char *
dest_hostname(struct call_ctx *ctx, const char *host)
{
    char *name = NULL;
    if (!db_get_field(ctx->db, &xapi_class_host, host, xclass_field(&xapi_class_host, "hostname"),
                      &name, NULL) ||
        !name[0]) {
        free(name);
        return NULL;
    }
    return name;
}

static bool
migrate_pool(struct call_ctx *ctx, const char *vm_ref, const struct xapi_vm_record *vm,
             const char *host, bool *lost, struct xerr **errp)
{
    struct server *srv = ctx->srv;
    *lost = false;
    if (ctx_cancelled(ctx))
        return xerr_task_cancelled(errp, "OpaqueRef:NULL");
    char geometry[1024];
    if (!vm_migrate_source_geometry(srv, vm, geometry, sizeof(geometry)))
        return xerr_operation_not_allowed(errp, "the VM has too many disks to migrate");
    char *pem = own_certificate(srv, errp);
    if (!pem)
        return false;
    struct xval *begun = NULL;
    bool ok = call_dest(ctx, host, "VM.pool_migrate_receive_begin", vm_ref,
                        xval_new_string(geometry), xval_new_string(pem), &begun, errp);
    free(pem);
    if (!ok)
        return false;
    const char *uri = str_of(begun, "uri"), *id_text = str_of(begun, "domid");
    int64_t domid = id_text ? strtoll(id_text, NULL, 10) : -1;
    char ca[4200] = "";
    char *name = dest_hostname(ctx, host);
    ok = uri && id_text
             ? peer_ca_write(srv, vm->uuid, "destination", str_of(begun, "certificate"), ca,
                             sizeof(ca), errp)
             : xerr_internal(errp, "the destination's answer has no uri or domid");
    uint64_t paused_at = 0;
    ok = ok && vm_migrate_send(ctx, vm, uri, ca, name, &paused_at, errp);
    if (ca[0])
        unlink(ca);
    free(name);
    if (!ok) { /* cancelled or failed: the source runs on */
        dest_abort(ctx, host, vm_ref, domid);
        xval_free(begun);
        return false;
    }
    /* the source is paused with its images released; until the destination
     * holds the whole state it can still take them back */
    uint64_t t0 = now_ms();
    if (!call_dest(ctx, host, "VM.pool_migrate_receive_wait", vm_ref, NULL, NULL, NULL, errp)) {
        dest_abort(ctx, host, vm_ref, domid);
        struct xerr *err = NULL;
        if (!vm_migrate_send_rollback(srv, vm, &err)) {
            *lost = true;
            xerr_free(err);
        }
        xval_free(begun);
        return false;
    }
    uint64_t t1 = now_ms();
    vm_migrate_send_stop(srv, vm); /* the source's qemu killed, its disk servers flushed, closed */
    uint64_t t2 = now_ms();
    ctx_progress(ctx, 0.97);
    ok = call_dest(ctx, host, "VM.pool_migrate_receive_end", vm_ref, xval_new_int(domid),
                   xval_new_bool(true), NULL, errp);
    uint64_t t3 = now_ms();
    /* guest_paused_ms: from QEMU stopping the source to the destination's
     * answer that it runs (its `cont` and the record's move), the guest's
     * whole pause as this host sees it, an upper bound */
    log_info("vm.migrate_handover", "vm=%s host=%s received_ms=%" PRIu64
             " source_stopped_ms=%" PRIu64 " destination_running_ms=%" PRIu64
             " guest_paused_ms=%" PRIu64,
             vm->uuid, host, t1 - t0, t2 - t1, t3 - t2,
             paused_at && paused_at <= t3 ? t3 - paused_at : 0);
    vm_migrate_send_reap(srv, vm);
    if (!ok) {
        /* the source is gone and the destination cannot run: the VM is lost,
         * as in xapi when the destination fails after the source's end */
        dest_abort(ctx, host, vm_ref, domid);
        vm_migrate_send_lost(srv, vm);
        *lost = true;
    }
    xval_free(begun);
    return ok;
}

bool
vm_migrate_pool(struct call_ctx *ctx, const char *vm_ref, const struct xapi_vm_record *vm,
                const char *host, bool *lost, struct xerr **errp)
{
    struct xerr *err = NULL;
    if (migrate_pool(ctx, vm_ref, vm, host, lost, &err))
        return true;
    return vm_migrate_failed(ctx->srv, vm_ref, host, err, errp);
}
