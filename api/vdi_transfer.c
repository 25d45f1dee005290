/* api/vdi_transfer.c - PUT /import_raw_vdi and GET /export_raw_vdi.
 *
 * Both are stream routes of the HTTP front (http/http.h): the checks run when
 * the request head is in, before a byte of the body is read, so a refused
 * upload costs the client nothing. Then:
 *  - import, raw: the body is written into the VDI's chain from offset 0
 *    through the VHD library, gathered into whole 2 MiB blocks (an all-zero
 *    block is written with vhd_chain_zero, which keeps a dynamic disk sparse);
 *    bytes past the virtual size fail the transfer with VDI_TOO_SMALL;
 *  - import, vhd: the body goes to an unlinked work file in the SR directory,
 *    which the library then opens alone (every structural check of
 *    vhd_chain_open_fd; differencing images refused); a worker thread copies
 *    its content over the VDI's, zeroing what the image leaves unallocated;
 *  - export, raw: the chain is read on demand into the reply (Content-Length
 *    is the virtual size);
 *  - export, vhd: a worker converts the chain into an unlinked dynamic VHD
 *    work file (vhd_convert_to), which is then streamed.
 * Memory stays bounded by one block per transfer whatever the disk's size
 * (the HTTP front hands over the body in pieces as it arrives; the disk write
 * in the callback is the back-pressure).
 *
 * Invariants:
 *  (1) a transfer's task is finished exactly once, by xfer_end(), on every path
 *      (reply sent, client gone, server stopping);
 *  (2) a struct xfer is used by one thread at a time: the connection's thread
 *      while the body streams or the reply is read, a worker in between;
 *  (3) an import's HTTP status depends on its head alone: what the head
 *      decides (credentials, VDI, format, a Content-Length past the VDI's
 *      size) is refused with a 4xx before the body is read; once the body is
 *      accepted the answer is 200 with Task-Id, and anything wrong with the
 *      body (an empty or malformed image, a chunked body past the end) fails
 *      the task only. xapi's ocaml/xapi/import_raw_vdi.ml sends its 200 before
 *      reading the body; Xen Orchestra relies on it: before streaming it
 *      probes the route with an empty body and no task_id, and gives up on
 *      anything but 200 or a 302 redirect.
 *
 * Facts: xapi's doc/content/xen-api/wire-protocol.md (session_id as query parameter, cookie or
 * Basic auth; task_id) and 5 (tasks), the VHD specification (Microsoft's Virtual Hard Disk Image Format Specification) (VHD layout).
 */
#include "api/vdi_transfer.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/forward.h"
#include "api/storage_api.h"
#include "api/storage_gc.h"
#include "api/transfer_auth.h"
#include "api/vdi_delta.h"
#include "common/log.h"
#include "common/workpool.h"
#include "db/db.h"
#include "rpc/auth.h"
#include "rpc/ctx.h"
#include "http/http.h"
#include "rpc/session.h"
#include "rpc/task.h"
#include "storage/sr_file.h"
#include "vhd/vhd.h"
#include "xapi_errors.h"
#include "xapi_model.h"

#define XFER_BLOCK VHD_BLOCK_SIZE_DEFAULT
/* A delta's unit: xapi's CBT block (VDI.list_changed_blocks), so that the blocks a delta
 * holds are the blocks list_changed_blocks names between the same two VDIs. */
#define DELTA_BLOCK (64u * 1024)

struct xfer {
    struct server *srv;
    bool import;
    bool vhd;              /* format=vhd */
    char *vdi;             /* the VDI's ref */
    char *sr;              /* its SR's ref ("" until known) */
    char *task;            /* the task reporting progress */
    char sr_path[4096];    /* the SR's directory */
    char path[4096];       /* the VDI's file */
    char base_path[4096];  /* export with base=: the base VDI's file ("" without) */
    uint64_t vsize;        /* the VDI's virtual size */
    int64_t body_len;      /* import: Content-Length, -1 when chunked */
    struct vhd_chain *chain;
    char vdi_uuid[37];     /* import: registered with the collector as a writer */
    struct xerr *err;      /* the first failure; the transfer then only drains */
    double progress;       /* last reported */
    bool ended;            /* invariant 1 */
    /* import raw: the block being gathered */
    char *block;
    uint64_t block_off;
    size_t block_fill;
    uint64_t received;
    /* import vhd: the body; export vhd: the converted image */
    int fd;
    uint64_t fd_limit;
    /* export */
    uint64_t total, sent;
    struct http_request *req; /* while a worker holds the transfer */
};

/*==== Errors, tasks, replies ====*/

/* Records the first failure of @x; returns false. */
static bool
xfer_fail(struct xfer *x, struct xerr **err)
{
    return xerr_propagate(&x->err, err);
}

static void
xfer_progress(struct xfer *x, uint64_t done, uint64_t total)
{
    transfer_progress(x->srv, x->task, &x->progress, done, total);
}

/* Whether the task was cancelled; records TASK_CANCELLED then. */
static bool
xfer_cancelled(struct xfer *x)
{
    if (!task_cancel_requested(x->srv, x->task))
        return false;
    struct xerr *e = NULL;
    xerr_task_cancelled(&e, x->task);
    xfer_fail(x, &e);
    return true;
}

/* Finishes the task (invariant 1): success unless x->err. */
static void
xfer_end(struct xfer *x)
{
    if (x->ended)
        return;
    x->ended = true;
    char d[512];
    if (x->err) {
        task_finish_failure(x->srv, x->task, x->err);
        log_warn("vdi.transfer", "op=%s vdi=%s format=%s task=%s error=\"%s\"",
                 x->import ? "import" : "export", x->vdi, x->vhd ? "vhd" : "raw", x->task,
                 xerr_describe(x->err, d, sizeof(d)));
    } else {
        /* an import's result is the VDI, as xapi's import_raw_vdi.ml completes it */
        char result[160] = "";
        if (x->import && x->vdi)
            snprintf(result, sizeof(result), "<value>%s</value>", x->vdi);
        task_finish_success(x->srv, x->task, result);
        log_info("vdi.transfer", "op=%s vdi=%s format=%s task=%s bytes=%" PRIu64,
                 x->import ? "import" : "export", x->vdi, x->vhd ? "vhd" : "raw", x->task,
                 x->import ? x->received : x->sent);
    }
}

static void
xfer_free(struct xfer *x)
{
    if (!x)
        return;
    xfer_end(x);
    if (x->chain)
        vhd_chain_close(x->chain);
    if (x->vdi_uuid[0])
        storage_gc_writer_end(x->vdi_uuid);
    if (x->fd >= 0)
        close(x->fd);
    free(x->block);
    free(x->vdi);
    free(x->sr);
    free(x->task);
    xerr_free(x->err);
    free(x);
}

/* Answers @req from @x's outcome and frees @x. An import that got past its
 * head answers 200 with its task whatever the body held (invariant 3): the
 * task carries the error. */
static void
xfer_reply_and_free(struct xfer *x, struct http_request *req)
{
    xfer_end(x);
    /* invariant 3: an accepted import answers 200, its task carries the error */
    transfer_reply_outcome(req, x->task, x->import ? NULL : x->err);
    xfer_free(x);
}

/*==== The common preamble ====*/

static bool
vbd_attached_visit(void *opaque, const char *ref, const void *rec)
{
    const struct xapi_vbd_record *v = rec;
    struct {
        const char *vdi;
        bool attached;
    } *f = opaque;
    if (v->currently_attached && strcmp(v->VDI, f->vdi) == 0) {
        f->attached = true;
        return false;
    }
    return true;
}

static bool
vdi_attached(struct db *db, const char *vdi)
{
    struct {
        const char *vdi;
        bool attached;
    } f = {vdi, false};
    db_foreach(db, &xapi_class_vbd, vbd_attached_visit, &f);
    return f.attached;
}

/* An export's base= (xapi's Importexport.base_vdi_of_req): a VDI of the same SR, whose
 * file the delta names as its parent; only with format=vhd (a raw stream has no way to
 * say which blocks it leaves out). */
static bool
xfer_base(struct xfer *x, struct server *srv, const struct xapi_vdi_record *rec, const char *base)
{
    struct xapi_vdi_record *b = NULL;
    bool ok = false;
    if (!x->vhd)
        xerr_invalid_value(&x->err, "base", base);
    else if (!db_get(srv->db, &xapi_class_vdi, base, (void **)&b, NULL))
        xerr_handle_invalid(&x->err, "VDI", base);
    else if (strcmp(b->SR, rec->SR) != 0)
        xerr_invalid_value(&x->err, "base", base); /* no shared history across SRs */
    else if (sr_file_vdi_path(x->sr_path, b->uuid, x->base_path, sizeof(x->base_path)) < 0)
        storage_fail(&x->err, -ENAMETOOLONG, rec->SR, base);
    else
        ok = true;
    xapi_vdi_record_free(b);
    return ok;
}

/* Everything but the data: who, which VDI, which format, which task. Before
 * the task exists errors go to *@errp only; after, also into x->err. */
static bool
xfer_prepare(struct server *srv, struct http_request *req, bool import, struct xfer **out,
             struct xerr **errp)
{
    const char *perm = import ? "http/put_import_raw_vdi" : "http/get_export_raw_vdi";
    struct transfer_caller who = {0};
    if (!transfer_authorise(srv, req, perm, &who, errp))
        return false;
    struct xfer *x = calloc(1, sizeof(*x));
    if (!x) {
        free(who.user);
        return xerr_nomem(errp);
    }
    x->srv = srv;
    x->import = import;
    x->fd = -1;
    x->body_len = -1;
    bool have_task =
        transfer_task(srv, req, &who, import ? "VDI import" : "VDI export", &x->task, errp);
    free(who.user);
    if (!have_task) {
        free(x);
        return false;
    }
    *out = x;
    const char *vdi = http_request_query(req, "vdi");
    const char *format = http_request_query(req, "format");
    struct xapi_vdi_record *rec = NULL;
    char *sr_path = NULL;
    bool ok = false;
    if (!(x->vdi = strdup(vdi ? vdi : "")))
        xerr_nomem(&x->err);
    else if (format && strcmp(format, "raw") != 0 && strcmp(format, "vhd") != 0)
        xerr_invalid_value(&x->err, "format", format);
    else if (!vdi || !db_get(srv->db, &xapi_class_vdi, vdi, (void **)&rec, NULL))
        xerr_handle_invalid(&x->err, "VDI", vdi ? vdi : "");
    else if (!(x->sr = strdup(rec->SR)))
        xerr_nomem(&x->err);
    else if (!storage_sr_path(srv->db, srv->host_ref, rec->SR, &sr_path, &x->err))
        ;
    else if (import && rec->read_only)
        xerr_vdi_readonly(&x->err, vdi);
    else if (import && vdi_attached(srv->db, vdi))
        xerr_vdi_in_use(&x->err, vdi, "import_raw_vdi");
    else if (snprintf(x->sr_path, sizeof(x->sr_path), "%s", sr_path) >= (int)sizeof(x->sr_path) ||
             sr_file_vdi_path(sr_path, rec->uuid, x->path, sizeof(x->path)) < 0)
        storage_fail(&x->err, -ENAMETOOLONG, rec->SR, vdi);
    else
        ok = true;
    if (ok && import) { /* the collector leaves the VDI alone while it is written */
        if (storage_gc_writer_begin(rec->uuid))
            snprintf(x->vdi_uuid, sizeof(x->vdi_uuid), "%s", rec->uuid);
        else
            ok = xerr_nomem(&x->err);
    }
    x->vhd = format && strcmp(format, "vhd") == 0;
    const char *base = import ? NULL : http_request_query(req, "base");
    if (ok && base)
        ok = xfer_base(x, srv, rec, base);
    if (rec)
        x->vsize = (uint64_t)rec->virtual_size;
    xapi_vdi_record_free(rec);
    free(sr_path);
    if (!ok)
        return xerr_set_at(errp, x->err->file, x->err->line, x->err->code, x->err->n_params,
                           (const char *const *)x->err->params);
    return true;
}

/* A storage failure @rc at step @what of the transfer. An import whose image
 * is unusable is IMPORT_ERROR; an export that cannot read the VDI is what
 * xapi's export_raw_vdi.ml answers, VDI_IO_ERROR ["Device I/O errors"] (or
 * VDI_MISSING when its file is gone); a failure of the host itself (memory,
 * space for the work file) INTERNAL_ERROR. No answer names a server path:
 * the VHD library's text does, so it goes to the log (vdi.transfer_detail)
 * and an import's reason is cut to file names. */
static void
xfer_storage_fail(struct xfer *x, int rc, const char *what)
{
    const char *why = vhd_last_error()[0] ? vhd_last_error() : strerror(-rc);
    log_info("vdi.transfer_detail", "op=%s vdi=%s step=\"%s\" err=%d detail=\"%s\"",
             x->import ? "import" : "export", x->vdi ? x->vdi : "", what, -rc, why);
    struct xerr *e = NULL;
    char pub[256];
    bool unreadable = rc == -EINVAL || rc == -EFBIG || rc == -ELOOP || rc == -ESTALE ||
                      rc == -EIO || rc == -ENOENT;
    if (rc == -ENOMEM)
        xerr_nomem(&e);
    else if (x->import && unreadable && rc != -EIO)
        xerr_import_error(&e, storage_public_text(why, pub, sizeof(pub)));
    else if (!x->import && rc == -ENOENT && x->sr && x->sr[0])
        xerr_vdi_missing(&e, x->sr, x->vdi);
    else if (!x->import && unreadable)
        xerr_vdi_io_error(&e, "Device I/O errors");
    else
        xerr_internal(&e, "%s: %s", what, strerror(-rc));
    xfer_fail(x, &e);
}

/* Answers a refused request: with the task when there is one. */
static bool
xfer_refuse(struct http_request *req, struct xfer *x, struct xerr *err)
{
    transfer_reply_error(req, x ? x->task : NULL, err);
    xerr_free(err);
    xfer_free(x); /* finishes the task as failure (x->err) */
    return false;
}

/*==== Import ====*/

/* Writes the gathered block to the chain. */
static bool
raw_block_flush(struct xfer *x)
{
    if (x->block_fill == 0)
        return true;
    int rc = transfer_block_is_zero(x->block, x->block_fill)
                 ? vhd_chain_zero(x->chain, x->block_off, x->block_fill, false)
                 : vhd_chain_write(x->chain, x->block, x->block_off, x->block_fill, false);
    if (rc < 0) {
        xfer_storage_fail(x, rc, "write");
        return false;
    }
    x->block_off += x->block_fill;
    x->block_fill = 0;
    xfer_progress(x, x->received, x->body_len >= 0 ? (uint64_t)x->body_len : x->vsize);
    return !xfer_cancelled(x);
}

/* A body longer than the target takes: VDI_TOO_SMALL [vdi, size it would need]. */
static int
fail_too_small(struct xfer *x, size_t len)
{
    char min[32];
    snprintf(min, sizeof(min), "%" PRIu64, x->received + len);
    struct xerr *e = NULL;
    xerr_vdi_too_small(&e, x->vdi, min);
    xfer_fail(x, &e);
    return -EFBIG;
}

static int
raw_write(struct xfer *x, const char *data, size_t len)
{
    if (len > x->vsize - x->received)
        return fail_too_small(x, len);
    x->received += len;
    while (len > 0) {
        size_t n = XFER_BLOCK - x->block_fill < len ? XFER_BLOCK - x->block_fill : len;
        memcpy(x->block + x->block_fill, data, n);
        x->block_fill += n;
        data += n;
        len -= n;
        if (x->block_fill == XFER_BLOCK && !raw_block_flush(x))
            return -EIO;
    }
    return 0;
}

static int
vhd_body_write(struct xfer *x, const char *data, size_t len)
{
    if (len > x->fd_limit - x->received)
        return fail_too_small(x, len);
    for (size_t done = 0; done < len;) {
        ssize_t n = write(x->fd, data + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            xfer_storage_fail(x, -errno, "work file");
            return -EIO;
        }
        done += (size_t)n;
    }
    x->received += len;
    xfer_progress(x, x->received / 2, x->body_len > 0 ? (uint64_t)x->body_len : x->fd_limit);
    return 0;
}

static int
import_write(void *ctx, const char *data, size_t len)
{
    struct xfer *x = ctx;
    if (x->err)
        return -ECANCELED;
    return x->vhd ? vhd_body_write(x, data, len) : raw_write(x, data, len);
}

/* Copies the image open as @src over the VDI, block by block. */
static bool
vhd_copy_into(struct xfer *x, struct vhd_chain *src)
{
    uint64_t ssize = vhd_chain_size(src);
    if (ssize > x->vsize) {
        char min[32];
        snprintf(min, sizeof(min), "%" PRIu64, ssize);
        struct xerr *e = NULL;
        xerr_vdi_too_small(&e, x->vdi, min);
        return xfer_fail(x, &e);
    }
    for (uint64_t off = 0; off < x->vsize; off += XFER_BLOCK) {
        uint64_t len = x->vsize - off < XFER_BLOCK ? x->vsize - off : XFER_BLOCK;
        uint64_t run = 0;
        bool allocated = true;
        if (off >= ssize) {
            allocated = false;
        } else {
            if (len > ssize - off)
                len = ssize - off; /* the rest of the VDI is zeroed below */
            if (vhd_chain_block_status(src, off, len, &run, &allocated) == 0 && run < len)
                allocated = true; /* partly allocated: copy all of it */
        }
        if (off >= ssize) {
            int rc = vhd_chain_zero(x->chain, off, x->vsize - off, false);
            if (rc < 0) {
                xfer_storage_fail(x, rc, "zero");
                return false;
            }
            break;
        }
        int rc = allocated ? vhd_chain_read(src, x->block, off, (size_t)len) : 0;
        if (rc < 0) {
            xfer_storage_fail(x, rc, "read the image");
            return false;
        }
        rc = allocated && !transfer_block_is_zero(x->block, (size_t)len)
                 ? vhd_chain_write(x->chain, x->block, off, (size_t)len, false)
                 : vhd_chain_zero(x->chain, off, len, false);
        if (rc < 0) {
            xfer_storage_fail(x, rc, "write");
            return false;
        }
        xfer_progress(x, x->vsize + off, 2 * x->vsize);
        if (xfer_cancelled(x))
            return false;
    }
    return true;
}

/* A differencing image is a delta (what GET /export_raw_vdi?format=vhd&base= gives, and
 * Xen Orchestra's incremental restores send): the sectors it holds are written over the
 * VDI and every other sector is left as it is, as xapi's vhd-tool writes only the data a
 * VHD stream carries. Its parent is not looked for: the VDI it is applied to stands for
 * it. */
static bool
vhd_apply_delta(struct xfer *x, struct vhd_chain *src)
{
    uint64_t ssize = vhd_chain_size(src);
    if (ssize > x->vsize) {
        char min[32];
        snprintf(min, sizeof(min), "%" PRIu64, ssize);
        struct xerr *e = NULL;
        xerr_vdi_too_small(&e, x->vdi, min);
        return xfer_fail(x, &e);
    }
    for (uint64_t off = 0; off < ssize;) {
        uint64_t run = 0;
        bool allocated = false;
        uint64_t want = ssize - off < XFER_BLOCK ? ssize - off : XFER_BLOCK;
        int rc = vhd_chain_block_status(src, off, want, &run, &allocated);
        if (rc == 0 && run == 0)
            rc = -EIO;
        if (rc == 0 && allocated) {
            rc = vhd_chain_read(src, x->block, off, (size_t)run);
            if (rc == 0)
                rc = vhd_chain_write(x->chain, x->block, off, (size_t)run, false);
        }
        if (rc < 0) {
            xfer_storage_fail(x, rc, allocated ? "apply the delta" : "read the image");
            return false;
        }
        off += run;
        xfer_progress(x, x->vsize + off, x->vsize + ssize);
        if (xfer_cancelled(x))
            return false;
    }
    return true;
}

static void
vhd_import_job(void *opaque)
{
    struct xfer *x = opaque;
    struct http_request *req = x->req;
    struct vhd_chain *src = NULL;
    int rc = vhd_chain_open_fd(x->fd, VHD_OPEN_RDONLY, &src);
    struct vhd_info info;
    if (rc < 0) {
        xfer_storage_fail(x, rc == -EIO ? -EINVAL : rc, "not a valid VHD");
    } else if ((rc = vhd_chain_info(src, 0, &info)) < 0) {
        xfer_storage_fail(x, rc, "not a valid VHD");
    } else if ((rc = sr_file_chain_open(x->path, VHD_OPEN_RDWR, &x->chain)) < 0) {
        xfer_storage_fail(x, rc, "open the VDI");
    } else if (info.type == VHD_TYPE_DIFF ? vhd_apply_delta(x, src) : vhd_copy_into(x, src)) {
        rc = vhd_chain_close(x->chain);
        x->chain = NULL;
        if (rc < 0)
            xfer_storage_fail(x, rc, "flush");
    } /* on failure xfer_free closes x->chain */
    vhd_chain_close(src);
    xfer_reply_and_free(x, req);
}

static void
xfer_job_dropped(void *opaque)
{
    struct xfer *x = opaque;
    struct xerr *e = NULL;
    xerr_internal(&e, "the server is stopping");
    xfer_fail(x, &e);
    xfer_reply_and_free(x, x->req);
}

static void
import_finish(void *ctx, struct http_request *req)
{
    struct xfer *x = ctx;
    if (!x->err && x->body_len >= 0 && x->received != (uint64_t)x->body_len) {
        struct xerr *e = NULL;
        xerr_import_error_premature_eof(&e);
        xfer_fail(x, &e);
    }
    if (x->err || !x->vhd) {
        if (!x->err && raw_block_flush(x)) {
            int rc = vhd_chain_close(x->chain);
            x->chain = NULL;
            if (rc < 0)
                xfer_storage_fail(x, rc, "flush");
        }
        xfer_reply_and_free(x, req);
        return;
    }
    x->req = req; /* the rest (parse, copy) is long: a worker's job */
    if (workpool_submit(x->srv->workers, vhd_import_job, xfer_job_dropped, x) < 0)
        xfer_job_dropped(x);
}

static void
xfer_abort(void *ctx)
{
    struct xfer *x = ctx;
    struct xerr *e = NULL;
    xerr_import_error_premature_eof(&e); /* the client went away */
    xfer_fail(x, &e);
    xfer_free(x);
}

/* A fresh work file name in the SR directory (sr_file ignores .*.part). */
static void
xfer_work_file(struct xfer *x, char *path, size_t len)
{
    char uuid[37];
    db_uuid_generate(uuid);
    snprintf(path, len, "%s/.xfer-%s.part", x->sr_path, uuid);
}

static bool
begin_import(void *opaque, struct http_request *req, struct http_body_sink *sink)
{
    struct server *srv = opaque;
    struct xfer *x = NULL;
    struct xerr *err = NULL;
    /* a VDI on another host's SR: import there (xapi's import_raw_vdi.ml) */
    if (forward_transfer_redirect(srv, req, "http/put_import_raw_vdi", FORWARD_VDI,
                                  http_request_query(req, "vdi"), false))
        return false;
    if (!xfer_prepare(srv, req, true, &x, &err))
        return xfer_refuse(req, x, err);
    const char *cl = http_request_header(req, "Content-Length");
    if (cl)
        x->body_len = (int64_t)strtoull(cl, NULL, 10);
    /* a dynamic image of the whole disk: the data, a bitmap sector per block,
     * the BAT and the headers; anything larger is not an image of this VDI */
    x->fd_limit = x->vsize + x->vsize / 1024 + (16u << 20);
    uint64_t limit = x->vhd ? x->fd_limit : x->vsize;
    if (x->body_len > 0 && (uint64_t)x->body_len > limit) {
        char min[32];
        snprintf(min, sizeof(min), "%" PRId64, x->body_len);
        xerr_vdi_too_small(&x->err, x->vdi, min);
    } else if (x->vhd) {
        char path[4200];
        xfer_work_file(x, path, sizeof(path));
        x->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (x->fd < 0)
            xfer_storage_fail(x, -errno, "work file");
        else
            unlink(path); /* nothing is left behind, whatever happens */
        x->block = malloc(XFER_BLOCK);
        if (!x->block)
            xerr_nomem(&x->err);
    } else {
        int rc = sr_file_chain_open(x->path, VHD_OPEN_RDWR, &x->chain);
        if (rc < 0)
            xfer_storage_fail(x, rc, "open the VDI");
        else if (!(x->block = malloc(XFER_BLOCK)))
            xerr_nomem(&x->err);
        else
            x->vsize = vhd_chain_size(x->chain); /* the file's word over the record's */
    }
    if (x->err)
        return xfer_refuse(req, x, xerr_copy(x->err));
    *sink = (struct http_body_sink){import_write, import_finish, xfer_abort, x};
    return true;
}

/*==== Export ====*/

static ssize_t
export_read(void *opaque, uint64_t pos, char *buf, size_t max)
{
    struct xfer *x = opaque;
    if (pos >= x->total)
        return 0;
    size_t len = x->total - pos < max ? (size_t)(x->total - pos) : max;
    int rc;
    if (x->fd >= 0) {
        ssize_t n = pread(x->fd, buf, len, (off_t)pos);
        rc = n < 0 ? -errno : n == 0 ? -EIO : 0;
        if (n > 0)
            len = (size_t)n;
    } else {
        rc = vhd_chain_read(x->chain, buf, pos, len);
    }
    if (rc < 0) {
        xfer_storage_fail(x, rc, "read");
        return rc;
    }
    x->sent = pos + len;
    uint64_t done = x->vhd ? x->total + x->sent : x->sent;
    xfer_progress(x, done, x->vhd ? 2 * x->total : x->total);
    if ((x->sent & (XFER_BLOCK - 1)) < len && xfer_cancelled(x))
        return -ECANCELED;
    return (ssize_t)len;
}

static void
export_free(void *opaque)
{
    struct xfer *x = opaque;
    if (!x->err && x->sent != x->total)
        xerr_internal(&x->err, "the client went away after %" PRIu64 " of %" PRIu64 " bytes",
                      x->sent, x->total);
    xfer_free(x);
}

static void
export_reply(struct xfer *x, struct http_request *req)
{
    char hdr[160];
    snprintf(hdr, sizeof(hdr), "Task-Id: %s", x->task);
    const char *hdrs[] = {hdr};
    http_reply_stream(req, 200, x->vhd ? "application/vhd" : "application/octet-stream", hdrs, 1,
                      (int64_t)x->total, export_read, export_free, x);
}

static void
export_convert_progress(void *opaque, uint64_t done, uint64_t total)
{
    struct xfer *x = opaque;
    xfer_progress(x, done, 2 * total);
}

/* The delta from the base to the VDI (api/vdi_delta.h) as a differencing VHD at @path. */
static int
delta_write(struct xfer *x, const char *path)
{
    uint8_t *bits = NULL;
    size_t n_bits = 0;
    int rc = vdi_delta_blocks(x->sr_path, x->base_path, x->path, DELTA_BLOCK, &bits, &n_bits,
                              NULL);
    if (rc == 0)
        rc = vdi_delta_write(x->chain, x->base_path, path, bits, DELTA_BLOCK,
                             export_convert_progress, x);
    free(bits);
    return rc;
}

static void
vhd_export_job(void *opaque)
{
    struct xfer *x = opaque;
    struct http_request *req = x->req;
    char path[4200];
    xfer_work_file(x, path, sizeof(path));
    int rc = x->base_path[0] ? delta_write(x, path)
                             : vhd_convert_to(x->chain, path, true, export_convert_progress, x);
    if (rc == 0) {
        x->fd = open(path, O_RDONLY | O_CLOEXEC);
        rc = x->fd < 0 ? -errno : 0;
    }
    unlink(path); /* the open descriptor keeps it while it streams */
    struct stat st;
    if (rc == 0 && fstat(x->fd, &st) < 0)
        rc = -errno;
    if (rc < 0) {
        xfer_storage_fail(x, rc, "convert");
        xfer_reply_and_free(x, req);
        return;
    }
    vhd_chain_close(x->chain);
    x->chain = NULL;
    x->total = (uint64_t)st.st_size;
    export_reply(x, req);
}

static void
export_finish(void *ctx, struct http_request *req)
{
    struct xfer *x = ctx;
    int rc = sr_file_chain_open(x->path, VHD_OPEN_RDONLY, &x->chain);
    if (rc < 0) {
        xfer_storage_fail(x, rc, "open the VDI");
        xfer_reply_and_free(x, req);
        return;
    }
    if (!x->vhd) {
        x->total = vhd_chain_size(x->chain);
        export_reply(x, req);
        return;
    }
    x->req = req;
    if (workpool_submit(x->srv->workers, vhd_export_job, xfer_job_dropped, x) < 0)
        xfer_job_dropped(x);
}

static int
export_write(void *ctx, const char *data, size_t len)
{
    return 0; /* a GET's body means nothing */
}

static void
export_abort(void *ctx)
{
    struct xfer *x = ctx;
    xerr_internal(&x->err, "the client went away");
    xfer_free(x);
}

static bool
begin_export(void *opaque, struct http_request *req, struct http_body_sink *sink)
{
    struct server *srv = opaque;
    struct xfer *x = NULL;
    struct xerr *err = NULL;
    if (forward_transfer_redirect(srv, req, "http/get_export_raw_vdi", FORWARD_VDI,
                                  http_request_query(req, "vdi"), false))
        return false;
    if (!xfer_prepare(srv, req, false, &x, &err))
        return xfer_refuse(req, x, err);
    *sink = (struct http_body_sink){export_write, export_finish, export_abort, x};
    return true;
}

/*==== Registration ====*/

bool
vdi_transfer_register(struct server *srv, struct http_server *http)
{
    /* Both spellings: Xen Orchestra writes "/import_raw_vdi/?..."; xapi finds a
     * handler by the longest matching path prefix (http_svr.ml), so it takes both. */
    static const struct transfer_route puts[] = {{"/import_raw_vdi", begin_import},
                                                 {"/import_raw_vdi/", begin_import}};
    static const struct transfer_route gets[] = {{"/export_raw_vdi", begin_export},
                                                 {"/export_raw_vdi/", begin_export}};
    if (!transfer_add_routes(srv, http, "PUT", puts, 2) ||
        !transfer_add_routes(srv, http, "GET", gets, 2))
        return false;
    return true;
}
