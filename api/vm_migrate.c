/* api/vm_migrate.c - live migration: VM.pool_migrate's work (xapi's
 * ocaml/xapi/xapi_vm_migrate.ml pool_migrate, localhost_migration included).
 *
 * The order is the single-writer hand-over of the VM's disks (api/vm_migrate.h
 * draws it): the destination's disk servers start in standby (answer the NBD
 * handshake, read nothing but the footer, hold I/O), its device model starts
 * with -incoming and late-block-activate (its images inactive: QEMU neither
 * reads nor writes them before `cont`), the source migrates over TLS, QEMU
 * pauses the source at completion and flushes and inactivates its images;
 * once the destination holds the whole state the source's qemu goes and its
 * disk servers flush, close and exit; only then are the destination's servers
 * handed their chains (the BAT read for the first time) and the destination
 * continued. At no moment can two device models write a disk, and the VM's
 * record stays Running throughout (current_operations holds pool_migrate, so
 * the domains' own events are not applied meanwhile).
 *
 * TLS: both QEMUs present their host's certificate (DATA/tls, the HTTPS one)
 * and trust only the other end's (see migration_tls). Between two hosts of
 * the pool: api/vm_migrate_pool.c.
 */
#include "api/vm_migrate.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/domains.h"
#include "api/placement.h"
#include "api/vm_ops.h"
#include "common/log.h"
#include "db/db.h"
#include "http/tls_cert.h"
#include "xapi_errors.h"
#include "xenops/xenops.h"

/* The credentials both QEMUs use: this host's certificate and key (DATA/tls,
 * the HTTPS one). The trusted set is the peer's certificate alone: in a
 * localhost migration the same one; between two hosts the other host's
 * (@peer_ca, a PEM file the pool's host-to-host call brought: see
 * api/vm_migrate_pool.c), so that no certificate but that host's passes. */
static bool
migration_tls(struct server *srv, const char *peer_ca, struct xenops_tls *tls,
              struct xerr **errp)
{
    /* a host serving plain HTTP only has made none yet: the same one HTTPS
     * would make (its name, localhost, 127.0.0.1) */
    char why[256] = "";
    int rc = tls_cert_ensure(srv->tls_key_path, srv->tls_cert_path, NULL, why, sizeof(why));
    if (rc < 0)
        return xerr_internal(errp, "the host's certificate for migration: %s", why);
    tls->ca_path = peer_ca ? peer_ca : srv->tls_cert_path;
    tls->cert_path = srv->tls_cert_path;
    tls->key_path = srv->tls_key_path;
    return true;
}

/* ------------------------------------------------------------------ checks */

struct sr_shared_peek {
    bool shared;
};

static void
peek_sr_shared(void *opaque, const void *rec)
{
    ((struct sr_shared_peek *)opaque)->shared = ((const struct xapi_sr_record *)rec)->shared;
}

/* VM_REQUIRES_SR [vm, sr] for the first disk of @vm on an SR that is not
 * shared (the destination host could not see it). */
static bool
disks_on_shared_srs(struct call_ctx *ctx, const char *vm_ref, const struct xapi_vm_record *vm,
                    struct xerr **errp)
{
    for (size_t i = 0; i < vm->VBDs.n; i++) {
        struct xapi_vbd_record *vbd = NULL;
        char *sr = NULL;
        bool ok = db_get(ctx->db, &xapi_class_vbd, vm->VBDs.items[i], (void **)&vbd, NULL) &&
                  !vbd->empty && strcmp(vbd->VDI, "OpaqueRef:NULL") != 0 &&
                  db_get_field(ctx->db, &xapi_class_vdi, vbd->VDI,
                               xclass_field(&xapi_class_vdi, "SR"), &sr, NULL);
        struct sr_shared_peek p = {false};
        if (ok && !db_with(ctx->db, &xapi_class_sr, sr, peek_sr_shared, &p, NULL))
            p.shared = false;
        bool refused = ok && !p.shared;
        bool done = refused && (xerr_vm_requires_sr(errp, vm_ref, sr), true);
        xapi_vbd_record_free(vbd);
        free(sr);
        if (done)
            return false;
    }
    return true;
}

bool
vm_migrate_check(struct call_ctx *ctx, const char *vm_ref, const struct xapi_vm_record *vm,
                 const char *host, struct xerr **errp)
{
    if (!db_exists(ctx->db, &xapi_class_host, host))
        return xerr_handle_invalid(errp, "host", host);
    if (!vm_op_check(vm, vm_ref, XAPI_VM_OPERATIONS_POOL_MIGRATE, errp))
        return false;
    /* the call was forwarded to the VM's host (datamodel "forward": vm); one
     * that still reaches another host names a VM that does not run here */
    if (strcmp(vm->resident_on, ctx->srv->host_ref) != 0)
        return xerr_operation_not_allowed(errp, "the VM does not run on the host that was "
                                          "asked to migrate it");
    if (strcmp(host, ctx->srv->host_ref) == 0)
        return true; /* a localhost migration: everything it needs is here */
    if (!disks_on_shared_srs(ctx, vm_ref, vm, errp))
        return false;
    /* xapi_vm_migrate.ml pool_migrate: assert_can_boot_here on the
     * destination (HOST_DISABLED, HOST_NOT_LIVE, its SRs, its memory) */
    return vm_can_boot_here(ctx, vm_ref, vm, host, true, errp);
}

/* ------------------------------------------------------------------ destination half */

bool
vm_migrate_receive_begin(struct server *srv, const char *vm_ref, const char *listen_host,
                         const char *geometry, const char *peer_ca, char *uri, size_t uri_len,
                         int64_t *domid, struct xerr **errp)
{
    struct xapi_vm_record *vm = NULL;
    if (!db_get(srv->db, &xapi_class_vm, vm_ref, (void **)&vm, errp))
        return false;
    struct xenops_tls tls;
    if (!migration_tls(srv, peer_ca, &tls, errp)) {
        xapi_vm_record_free(vm);
        return false;
    }
    char listen[300];
    snprintf(listen, sizeof(listen), strchr(listen_host, ':') ? "tcp:[%s]:0" : "tcp:%s:0",
             listen_host);
    log_info("vm.migrate_receive", "vm=%s listen=%s geometry=%s", vm->uuid, listen, geometry);
    bool ok = domains_receive(srv, vm_ref, vm, listen, geometry, &tls, domid, uri, uri_len,
                              errp);
    xapi_vm_record_free(vm);
    return ok;
}

bool
vm_migrate_receive_wait(struct server *srv, const char *vm_ref, struct xerr **errp)
{
    char *uuid = NULL;
    bool ok = db_get_field(srv->db, &xapi_class_vm, vm_ref, xclass_field(&xapi_class_vm, "uuid"),
                           &uuid, errp) &&
              domains_receive_wait(srv, uuid, errp);
    free(uuid);
    return ok;
}

bool
vm_migrate_receive_end(struct server *srv, const char *vm_ref, int64_t domid, bool commit,
                       struct xerr **errp)
{
    struct xapi_vm_record *vm = NULL;
    if (!db_get(srv->db, &xapi_class_vm, vm_ref, (void **)&vm, errp))
        return false;
    bool ok = true;
    if (commit) {
        /* the record still names the source: its disks' writer keys are the
         * source host's until the destination takes them over */
        char *source = NULL;
        db_get_field(srv->db, &xapi_class_host, vm->resident_on,
                     xclass_field(&xapi_class_host, "uuid"), &source, NULL);
        ok = domains_receive_commit(srv, vm->uuid, source, errp);
        free(source);
    } else
        domains_receive_abort(srv, vm, domid);
    xapi_vm_record_free(vm);
    return ok;
}

/* ------------------------------------------------------------------ source half */

struct send_progress {
    struct call_ctx *ctx;
    const char *uuid;
    double shown;
    bool cancel_passed;
};

static void
on_progress(void *opaque, const struct xenops_migrate_progress *p)
{
    struct send_progress *sp = opaque;
    /* a cancel that came before the migration's first look at it */
    if (!sp->cancel_passed && ctx_cancelled(sp->ctx)) {
        sp->cancel_passed = true;
        domains_cancel_waits(sp->ctx->srv, sp->uuid);
    }
    uint64_t all = p->ram_transferred + p->ram_remaining;
    double f = all ? (double)p->ram_transferred / (double)all : 0;
    double v = 0.05 + 0.9 * f;
    if (v > sp->shown) { /* later passes resend pages: never go back */
        sp->shown = v;
        ctx_progress(sp->ctx, v);
    }
}

bool
vm_migrate_send(struct call_ctx *ctx, const struct xapi_vm_record *vm, const char *uri,
                const char *peer_ca, const char *peer_name, uint64_t *paused_at_ms,
                struct xerr **errp)
{
    struct xenops_tls tls;
    if (!migration_tls(ctx->srv, peer_ca, &tls, errp))
        return false;
    struct send_progress sp = {ctx, vm->uuid, 0.05, false};
    struct xenops_migrate_stats st = {0};
    ctx_progress(ctx, 0.05);
    if (!domains_migrate_send(ctx->srv, vm->uuid, uri, &tls, peer_name, on_progress, &sp, &st, errp))
        return false;
    log_info("vm.migrate_sent", "vm=%s uri=%s total_ms=%" PRIu64 " downtime_ms=%" PRIu64
             " bytes=%" PRIu64, vm->uuid, uri, st.total_ms, st.downtime_ms, st.transferred);
    if (paused_at_ms)
        *paused_at_ms = st.paused_at_ms;
    return true;
}

bool
vm_migrate_source_geometry(struct server *srv, const struct xapi_vm_record *vm, char *out,
                           size_t len)
{
    return domains_disk_geometry(srv, vm, out, len);
}

void
vm_migrate_send_stop(struct server *srv, const struct xapi_vm_record *vm)
{
    domains_migrate_source_stop(srv, vm);
}

void
vm_migrate_send_reap(struct server *srv, const struct xapi_vm_record *vm)
{
    domains_migrate_source_reap(srv, vm);
}

void
vm_migrate_send_lost(struct server *srv, const struct xapi_vm_record *vm)
{
    domains_migrate_source_release(srv, vm);
}

bool
vm_migrate_send_rollback(struct server *srv, const struct xapi_vm_record *vm, struct xerr **errp)
{
    return domains_migrate_rollback(srv, vm->uuid, errp);
}

/* ------------------------------------------------------------------ both on this host */

static uint64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A failure of the machinery becomes xapi's VM_MIGRATE_FAILED [vm, source,
 * destination, msg]; a cancel and a refusal stay what they are. */
bool
vm_migrate_failed(struct server *srv, const char *vm_ref, const char *destination,
                  struct xerr *err, struct xerr **errp)
{
    if (!err)
        return false;
    if (!strcmp(err->code, "TASK_CANCELLED") || !strcmp(err->code, "OPERATION_NOT_ALLOWED")) {
        if (errp && !*errp)
            *errp = err;
        else
            xerr_free(err);
        return false;
    }
    char msg[512];
    xerr_describe(err, msg, sizeof(msg));
    xerr_free(err);
    return xerr_vm_migrate_failed(errp, vm_ref, srv->host_ref, destination, msg);
}

static bool
migrate_local(struct call_ctx *ctx, const char *vm_ref, const struct xapi_vm_record *vm,
              int64_t *domid, bool *lost, struct xerr **errp)
{
    struct server *srv = ctx->srv;
    char uri[128];
    int64_t id = -1;
    *lost = false;
    if (ctx_cancelled(ctx))
        return xerr_task_cancelled(errp, "OpaqueRef:NULL");
    char geometry[1024];
    if (!vm_migrate_source_geometry(srv, vm, geometry, sizeof(geometry)))
        return xerr_operation_not_allowed(errp, "the VM has too many disks to migrate");
    if (!vm_migrate_receive_begin(srv, vm_ref, "127.0.0.1", geometry, NULL, uri, sizeof(uri),
                                  &id, errp))
        return false;
    if (!vm_migrate_send(ctx, vm, uri, NULL, NULL, NULL, errp)) {
        vm_migrate_receive_end(srv, vm_ref, id, false, NULL);
        return false;
    }
    /* the source is paused with its images released; until the destination
     * holds the whole state it can still take them back */
    uint64_t t0 = now_ms();
    if (!vm_migrate_receive_wait(srv, vm_ref, errp)) {
        vm_migrate_receive_end(srv, vm_ref, id, false, NULL);
        struct xerr *err = NULL;
        if (!vm_migrate_send_rollback(srv, vm, &err)) {
            *lost = true;
            xerr_free(err);
        }
        return false;
    }
    uint64_t t1 = now_ms();
    vm_migrate_send_stop(srv, vm);
    vm_migrate_send_reap(srv, vm);
    uint64_t t2 = now_ms();
    ctx_progress(ctx, 0.97);
    bool ok = vm_migrate_receive_end(srv, vm_ref, id, true, errp);
    /* the hand-over's share of the guest's pause, after QEMU's downtime */
    log_info("vm.migrate_handover", "vm=%s received_ms=%" PRIu64 " source_stopped_ms=%" PRIu64
             " destination_running_ms=%" PRIu64, vm->uuid, t1 - t0, t2 - t1, now_ms() - t2);
    if (!ok) {
        /* the source is gone and the destination cannot run: the VM is lost,
         * as in xapi when the destination fails after the source's end */
        vm_migrate_receive_end(srv, vm_ref, id, false, NULL);
        vm_migrate_send_lost(srv, vm);
        *lost = true;
        return false;
    }
    *domid = id;
    return true;
}

bool
vm_migrate_local(struct call_ctx *ctx, const char *vm_ref, const struct xapi_vm_record *vm,
                 int64_t *domid, bool *lost, struct xerr **errp)
{
    struct xerr *err = NULL;
    if (migrate_local(ctx, vm_ref, vm, domid, lost, &err))
        return true;
    return vm_migrate_failed(ctx->srv, vm_ref, ctx->srv->host_ref, err, errp);
}
