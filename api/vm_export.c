/* api/vm_export.c - GET /export and GET /export_metadata: a VM as an XVA.
 *
 *   GET /export?ref=<VM ref>|uuid=<uuid>[&use_compression=true|gzip|zstd]
 *   GET /export_metadata?ref=|uuid=[&export_snapshots=true|false]
 *
 * The checks (caller, VM, its power state and operations) run when the
 * request head is in; the VM then carries an "export" (or "metadata_export")
 * current operation until the reply is done, as xapi's export.ml with_vm_locked.
 * ova.xml comes from api/xva_meta.c. The disks follow in 1 MiB chunks read
 * on demand from each VDI's chain as the client takes the reply (chunked, no
 * Content-Length: the size of a sparse, compressed stream is known only at
 * its end), through wire/xva_write.c: memory is one chunk plus the
 * compressor's buffer whatever the disks' size. A chunk that reads as zeros
 * is left out unless it is a disk's first or last (xapi's stream_vdi.ml:
 * "First and last chunks are always written - it's a limitation of the XVA
 * format"); unallocated ranges are skipped without being read.
 *
 * Invariant: the task is finished and the VM's operation ended exactly once,
 * by exp_end(), on every path.
 */
#include "api/vm_export.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/forward.h"
#include "api/storage_api.h"
#include "api/transfer_auth.h"
#include "api/vm_ops.h"
#include "api/xva_meta.h"
#include "common/log.h"
#include "db/db.h"
#include "http/http.h"
#include "rpc/ctx.h"
#include "rpc/task.h"
#include "storage/sr_file.h"
#include "vhd/vhd.h"
#include "wire/xva.h"
#include "xapi_errors.h"
#include "xapi_model.h"

struct vm_export {
    struct server *srv;
    bool metadata;
    char *vm;
    char *task;
    enum xapi_vm_operations op;
    bool op_begun, ended, finished;
    struct xerr *err;
    struct xva_writer *w;
    struct xva_disk *disks;
    size_t n_disks, disk;
    uint64_t chunk;       /* next chunk of disks[disk] */
    uint64_t disk_size;   /* of the open chain */
    struct vhd_chain *chain;
    char *block;
    uint64_t total, done; /* disk bytes, for progress */
    double progress;
    uint64_t sent;
};

static void
exp_end(struct vm_export *x)
{
    if (x->ended)
        return;
    x->ended = true;
    if (x->op_begun)
        vm_op_end(x->srv->db, x->vm, x->task);
    char d[512];
    if (x->err) {
        task_finish_failure(x->srv, x->task, x->err);
        log_warn("vm.export", "vm=%s metadata=%d task=%s error=\"%s\"", x->vm, x->metadata,
                 x->task, xerr_describe(x->err, d, sizeof(d)));
    } else {
        task_finish_success(x->srv, x->task, "");
        log_info("vm.export", "vm=%s metadata=%d task=%s bytes=%" PRIu64 " disks=%zu", x->vm,
                 x->metadata, x->task, x->sent, x->n_disks);
    }
}

static void
exp_free(struct vm_export *x)
{
    if (!x)
        return;
    if (x->task)
        exp_end(x);
    if (x->chain)
        vhd_chain_close(x->chain);
    xva_writer_free(x->w);
    xva_disks_free(x->disks, x->n_disks);
    free(x->block);
    free(x->vm);
    free(x->task);
    xerr_free(x->err);
    free(x);
}

/*==== Streaming the disks ====*/

static int
storage_error(struct vm_export *x, int rc, const char *what)
{
    log_info("vm.export_detail", "vm=%s step=\"%s\" err=%d detail=\"%s\"", x->vm, what, -rc,
             vhd_last_error());
    if (!x->err) {
        if (rc == -ENOMEM)
            xerr_nomem(&x->err);
        else if (rc == -ENOENT)
            xerr_vdi_missing(&x->err, x->disks[x->disk].sr, x->disks[x->disk].vdi);
        else
            xerr_vdi_io_error(&x->err, "Device I/O errors");
    }
    return -EIO;
}

static int
open_disk(struct vm_export *x)
{
    const struct xva_disk *d = &x->disks[x->disk];
    char *dir = NULL;
    char path[4096];
    if (!storage_sr_path(x->srv->db, x->srv->host_ref, d->sr, &dir, &x->err))
        return -EIO;
    int rc = sr_file_vdi_path(dir, d->uuid, path, sizeof(path));
    free(dir);
    if (rc == 0)
        rc = sr_file_chain_open(path, VHD_OPEN_RDONLY, &x->chain);
    if (rc < 0)
        return storage_error(x, rc, "open");
    x->disk_size = vhd_chain_size(x->chain);
    x->chunk = 0;
    return 0;
}

static void
exp_progress(struct vm_export *x, uint64_t n)
{
    x->done += n;
    transfer_progress(x->srv, x->task, &x->progress, x->done, x->total);
}

/* Appends the next chunk worth sending (or the archive's end) to the writer. */
static int
produce(struct vm_export *x)
{
    for (unsigned skipped = 0; x->disk < x->n_disks;) {
        if (!x->chain && open_disk(x) < 0)
            return -EIO;
        uint64_t off = x->chunk * XVA_CHUNK_SIZE;
        if (off >= x->disk_size) {
            vhd_chain_close(x->chain);
            x->chain = NULL;
            x->disk++;
            continue;
        }
        size_t len = x->disk_size - off < XVA_CHUNK_SIZE ? (size_t)(x->disk_size - off)
                                                          : XVA_CHUNK_SIZE;
        bool edge = x->chunk == 0 || off + len >= x->disk_size;
        uint64_t run = 0;
        bool allocated = true;
        if (!edge && vhd_chain_block_status(x->chain, off, len, &run, &allocated) == 0 &&
            !allocated && run >= len) {
            x->chunk++;
            exp_progress(x, len);
            if (++skipped % 256 == 0 && task_cancel_requested(x->srv, x->task))
                return xerr_task_cancelled(&x->err, x->task), -ECANCELED;
            continue;
        }
        int rc = vhd_chain_read(x->chain, x->block, off, len);
        if (rc < 0)
            return storage_error(x, rc, "read");
        uint64_t no = x->chunk++;
        exp_progress(x, len);
        if (task_cancel_requested(x->srv, x->task))
            return xerr_task_cancelled(&x->err, x->task), -ECANCELED;
        if (!edge && transfer_block_is_zero(x->block, len))
            continue;
        rc = xva_writer_chunk(x->w, x->disks[x->disk].prefix, no, x->block, len);
        return rc < 0 ? (xerr_nomem(&x->err), rc) : 0;
    }
    x->finished = true;
    int rc = xva_writer_end(x->w);
    return rc < 0 ? (xerr_nomem(&x->err), rc) : 0;
}

static ssize_t
exp_read(void *opaque, uint64_t pos, char *buf, size_t max)
{
    struct vm_export *x = opaque;
    const char *data;
    size_t avail;
    for (;;) {
        xva_writer_output(x->w, &data, &avail);
        if (avail > 0 || x->finished)
            break;
        int rc = produce(x);
        if (rc < 0)
            return rc;
    }
    if (avail == 0)
        return 0;
    size_t n = avail < max ? avail : max;
    memcpy(buf, data, n);
    xva_writer_consume(x->w, n);
    x->sent += n;
    return (ssize_t)n;
}

static void
exp_stream_free(void *opaque)
{
    struct vm_export *x = opaque;
    const char *data;
    size_t avail;
    xva_writer_output(x->w, &data, &avail);
    if (!x->err && (!x->finished || avail > 0))
        xerr_internal(&x->err, "the client went away after %" PRIu64 " bytes", x->sent);
    exp_free(x);
}

/*==== The request ====*/

static bool
query_bool(struct http_request *req, const char *key, bool dflt)
{
    const char *v = http_request_query(req, key);
    return v ? strcmp(v, "true") == 0 : dflt;
}

/* The VM named by ref= or uuid= (xapi's vm_from_request). */
static bool
vm_from_request(struct server *srv, struct http_request *req, char **vm, struct xerr **errp)
{
    const char *ref = http_request_query(req, "ref");
    const char *uuid = http_request_query(req, "uuid");
    if (ref) {
        if (!db_exists(srv->db, &xapi_class_vm, ref))
            return xerr_handle_invalid(errp, "VM", ref);
        return (*vm = strdup(ref)) != NULL || xerr_nomem(errp);
    }
    if (uuid)
        return db_ref_by_uuid(srv->db, &xapi_class_vm, uuid, vm, errp);
    return xerr_handle_invalid(errp, "VM", "");
}

/* The operation may run on the VM now: it is then marked as running. */
static bool
vm_lock(struct vm_export *x, struct xerr **errp)
{
    struct xapi_vm_record *vm = NULL;
    if (!db_get(x->srv->db, &xapi_class_vm, x->vm, (void **)&vm, errp))
        return false;
    bool ok = vm->is_control_domain
                  ? xerr_operation_not_allowed(errp, "This operation is not allowed on dom0")
                  : vm_op_check(vm, x->vm, x->op, errp);
    xapi_vm_record_free(vm);
    if (ok && (ok = vm_op_begin(x->srv->db, x->vm, x->op, x->task, errp)))
        x->op_begun = true;
    return ok;
}

static bool
exp_prepare(struct vm_export *x, struct http_request *req, struct xerr **errp)
{
    struct xva_meta_opts opts = {
        .with_snapshot_metadata = x->metadata && query_bool(req, "export_snapshots", true),
        .preserve_power_state = x->metadata,
    };
    const char *vms[] = {x->vm};
    struct strbuf xml = STRBUF_INIT;
    enum xva_compression comp =
        x->metadata ? XVA_COMPRESS_NONE : xva_compression_parse(http_request_query(req, "use_compression"));
    bool ok = vm_lock(x, errp) &&
              xva_meta_build(x->srv->db, x->srv->host_ref, vms, 1, &opts, &xml,
                             x->metadata ? NULL : &x->disks, &x->n_disks, errp);
    if (ok && (!(x->w = xva_writer_new(comp)) || !(x->block = malloc(XVA_CHUNK_SIZE)) ||
               xva_writer_file(x->w, XVA_OVA_XML, xml.buf, xml.len, (uint64_t)time(NULL)) < 0))
        ok = xerr_nomem(errp);
    strbuf_release(&xml);
    for (size_t i = 0; ok && i < x->n_disks; i++)
        x->total += x->disks[i].virtual_size;
    if (ok && x->metadata) {
        x->finished = true;
        if (xva_writer_end(x->w) < 0)
            ok = xerr_nomem(errp);
    }
    return ok;
}

static int
exp_body(void *ctx, const char *data, size_t len)
{
    return 0; /* a GET's body means nothing */
}

static void
exp_finish(void *ctx, struct http_request *req)
{
    struct vm_export *x = ctx;
    char task_hdr[160];
    snprintf(task_hdr, sizeof(task_hdr), "Task-Id: %s", x->task);
    const char *hdrs[] = {task_hdr, "Content-Disposition: attachment; filename=\"export.xva\""};
    int64_t length = -1;
    if (x->metadata) { /* all of it is in memory: say how long, as xapi does */
        const char *data;
        size_t avail;
        xva_writer_output(x->w, &data, &avail);
        length = (int64_t)avail;
    }
    http_reply_stream(req, 200, "application/octet-stream", hdrs, 2, length, exp_read,
                      exp_stream_free, x);
}

static void
exp_abort(void *ctx)
{
    struct vm_export *x = ctx;
    xerr_internal(&x->err, "the client went away");
    exp_free(x);
}

static bool
begin(struct server *srv, struct http_request *req, struct http_body_sink *sink, bool metadata)
{
    struct transfer_caller who = {0};
    struct xerr *err = NULL;
    struct vm_export *x = NULL;
    const char *perm = metadata ? "http/get_export_metadata" : "http/get_export";
    /* a VM whose disks are another host's: export there (xapi's export.ml) */
    const char *ref = http_request_query(req, "ref");
    if (!metadata && forward_transfer_redirect(srv, req, perm, FORWARD_VM,
                                               ref ? ref : http_request_query(req, "uuid"), !ref))
        return false;
    if (transfer_authorise(srv, req, perm, &who, &err)) {
        x = calloc(1, sizeof(*x));
        if (!x)
            xerr_nomem(&err);
        else if (transfer_task(srv, req, &who, metadata ? "VM.export_metadata" : "VM.export",
                               &x->task, &err)) {
            x->srv = srv;
            x->metadata = metadata;
            x->op = metadata ? XAPI_VM_OPERATIONS_METADATA_EXPORT : XAPI_VM_OPERATIONS_EXPORT;
            if (vm_from_request(srv, req, &x->vm, &err) && exp_prepare(x, req, &err)) {
                free(who.user);
                *sink = (struct http_body_sink){exp_body, exp_finish, exp_abort, x};
                return true;
            }
        }
    }
    free(who.user);
    if (x && x->task && !x->err)
        x->err = xerr_copy(err);
    if (x && !x->vm)
        x->vm = strdup("");
    transfer_reply_error(req, x ? x->task : NULL, err);
    xerr_free(err);
    exp_free(x);
    return false;
}

static bool
begin_export(void *opaque, struct http_request *req, struct http_body_sink *sink)
{
    return begin(opaque, req, sink, false);
}

static bool
begin_export_metadata(void *opaque, struct http_request *req, struct http_body_sink *sink)
{
    return begin(opaque, req, sink, true);
}

bool
vm_export_register(struct server *srv, struct http_server *http)
{
    static const struct transfer_route routes[] = {
        {"/export", begin_export},
        {"/export/", begin_export},
        {"/export_metadata", begin_export_metadata},
        {"/export_metadata/", begin_export_metadata},
    };
    return transfer_add_routes(srv, http, "GET", routes, sizeof(routes) / sizeof(routes[0]));
}
