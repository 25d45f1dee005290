/* cli/transfer.c - vm-export, vm-import, vdi-export, vdi-import: files to and
 * from the server's HTTP transfer routes.
 *
 * As xapi's xe (ocaml/xapi-cli-server/cli_operations.ml export_common,
 * vm_import, vdi_export, vdi_import): xe makes a task, names it in the URL
 * (task_id=, with session_id=), moves the bytes over a raw connection
 * (cli/tunnel.c) and then reads the outcome from the task - its error_info
 * on failure, the new VMs on import. A terminal shows a bar: for uploads the
 * bytes sent, for downloads (chunked: the size is unknown) the task's
 * progress polled twice a second on the API connection.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cmds.h"
#include "cli/tunnel.h"
#include "client/xclient.h"
#include "common/fileio.h"
#include "xapi_client.h"

#define IO_BUF (256 * 1024)

struct reply {
    unsigned status;
    int64_t length; /* -1: none */
    bool chunked;
    char *rest;     /* body bytes read with the head */
    size_t rest_len;
};

/* Reads the reply head; what follows it is kept in r->rest. */
static bool
read_head(struct tunnel *t, struct reply *r, struct xerr **errp)
{
    char *buf = malloc(IO_BUF + 1);
    size_t len = 0;
    char *end = NULL;
    if (!buf)
        return xerr_nomem(errp);
    while (!end) {
        ssize_t n = len < IO_BUF ? tunnel_recv(t, buf + len, IO_BUF - len) : -1;
        if (n <= 0) {
            free(buf);
            return xerr_internal(errp, "xe: the server closed the connection");
        }
        len += (size_t)n;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    *end = '\0';
    r->status = 0;
    sscanf(buf, "HTTP/%*s %u", &r->status);
    r->length = -1;
    for (char *line = strstr(buf, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
        const char *h = line + 2;
        if (strncasecmp(h, "Content-Length:", 15) == 0)
            r->length = strtoll(h + 15, NULL, 10);
        else if (strncasecmp(h, "Transfer-Encoding:", 18) == 0 && strcasestr(h, "chunked"))
            r->chunked = true;
    }
    r->rest_len = len - (size_t)(end + 4 - buf);
    memmove(buf, end + 4, r->rest_len);
    r->rest = buf;
    return true;
}

/* The body's next bytes: those read with the head first. */
static ssize_t
body_recv(struct tunnel *t, struct reply *r, char *buf, size_t max)
{
    if (r->rest_len) {
        size_t n = r->rest_len < max ? r->rest_len : max;
        memcpy(buf, r->rest, n);
        memmove(r->rest, r->rest + n, r->rest_len - n);
        r->rest_len -= n;
        return (ssize_t)n;
    }
    return tunnel_recv(t, buf, max);
}

/* One line of a chunked body (a chunk's size line or the CRLF after data). */
static bool
chunk_line(struct tunnel *t, struct reply *r, char *line, size_t cap)
{
    size_t n = 0;
    for (;;) {
        char ch;
        if (body_recv(t, r, &ch, 1) != 1 || n + 1 >= cap)
            return false;
        if (ch == '\n')
            break;
        if (ch != '\r')
            line[n++] = ch;
    }
    line[n] = '\0';
    return true;
}

struct progress {
    struct cli_ctx *c;
    const char *label, *task;
    int64_t start, last_poll;
    int shown;
};

static void
progress_init(struct progress *p, struct cli_ctx *c, const char *label, const char *task)
{
    *p = (struct progress){c, label, task, cli_mono_ms(), 0, c->progress_tty ? -1 : 0};
}

static void
progress_bytes(struct progress *p, uint64_t done, uint64_t total)
{
    if (total)
        cli_progress_draw(p->c, p->label, (double)done / (double)total,
                          cli_mono_ms() - p->start, &p->shown);
}

/* The task's progress, at most twice a second. */
static void
progress_task(struct progress *p)
{
    int64_t now = cli_mono_ms();
    if (now - p->last_poll < 500)
        return;
    p->last_poll = now;
    double v = 0;
    struct xerr *e = NULL;
    if (xc_task_get_progress(p->c->xc, p->task, &v, &e))
        cli_progress_draw(p->c, p->label, v < 0 ? 0 : v, now - p->start, &p->shown);
    xerr_free(e);
}

static void
progress_end(struct progress *p, bool ok)
{
    if (p->c->progress_tty && ok) /* a short transfer shows its full bar too */
        cli_progress_draw(p->c, p->label, 1.0, cli_mono_ms() - p->start, &p->shown);
    if (p->c->progress_tty && p->shown >= 0)
        fprintf(p->c->err, "\n");
}

/* The body into @fd. */
static bool
body_to_fd(struct tunnel *t, struct reply *r, int fd, struct progress *p, struct xerr **errp)
{
    char *buf = malloc(IO_BUF);
    if (!buf)
        return xerr_nomem(errp);
    uint64_t got = 0;
    int64_t left = r->chunked ? 0 : r->length;
    bool ok = true;
    for (;;) {
        if (r->chunked && left == 0) {
            char line[64];
            if (got && !chunk_line(t, r, line, sizeof(line))) /* CRLF after data */
                break;
            if (!chunk_line(t, r, line, sizeof(line))) {
                ok = xerr_internal(errp, "xe: the transfer stopped early");
                break;
            }
            left = strtoll(line, NULL, 16);
            if (left <= 0)
                break;
        }
        size_t want = left > 0 && (uint64_t)left < IO_BUF ? (size_t)left : IO_BUF;
        if (!r->chunked && r->length >= 0 && left == 0)
            break;
        ssize_t n = body_recv(t, r, buf, want);
        if (n <= 0) {
            if (r->chunked || r->length >= 0)
                ok = xerr_internal(errp, "xe: the transfer stopped early");
            break;
        }
        if (fileio_write_all(fd, buf, (size_t)n) < 0) {
            ok = xerr_internal(errp, "xe: cannot write the file: %s", strerror(errno));
            break;
        }
        got += (size_t)n;
        if (left > 0)
            left -= n;
        if (r->length > 0)
            progress_bytes(p, got, (uint64_t)r->length);
        else
            progress_task(p);
    }
    free(buf);
    return ok;
}

/* Sends @fd's @size bytes as the body. */
static bool
fd_to_tunnel(struct tunnel *t, int fd, uint64_t size, struct progress *p, struct xerr **errp)
{
    char *buf = malloc(IO_BUF);
    if (!buf)
        return xerr_nomem(errp);
    uint64_t sent = 0;
    bool ok = true;
    while (ok && sent < size) {
        ssize_t n = read(fd, buf, IO_BUF);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            ok = xerr_internal(errp, "xe: cannot read the file: %s",
                               n < 0 ? strerror(errno) : "it became shorter");
        else if (tunnel_send(t, buf, (size_t)n) < 0)
            ok = false; /* the server stopped reading: its answer says why */
        else
            progress_bytes(p, sent += (size_t)n, size);
    }
    free(buf);
    return ok;
}

/* One request: GET (@fd written) or PUT (@fd read, @size bytes) of @path
 * (query included). The outcome comes from task @task afterwards. */
static bool
transfer(struct cli_ctx *c, const char *method, const char *path, int fd, uint64_t size,
         const char *task, const char *label, struct xerr **errp)
{
    struct tunnel t = {.fd = -1};
    struct reply r = {0};
    struct progress p;
    progress_init(&p, c, label, task);
    char head[2048];
    int n = strcmp(method, "PUT") == 0
                ? snprintf(head, sizeof(head),
                           "PUT %s HTTP/1.1\r\nHost: localhost\r\nUser-Agent: xe-cli/Unix/0.2\r\n"
                           "Content-Length: %" PRIu64 "\r\nConnection: close\r\n\r\n",
                           path, size)
                : snprintf(head, sizeof(head),
                           "GET %s HTTP/1.1\r\nHost: localhost\r\nUser-Agent: xe-cli/Unix/0.2\r\n"
                           "Connection: close\r\n\r\n",
                           path);
    bool ok = n > 0 && (size_t)n < sizeof(head);
    if (!ok)
        xerr_internal(errp, "xe: request too long");
    ok = ok && tunnel_open(c->opts, &t, errp);
    if (ok && tunnel_send(&t, head, (size_t)n) < 0)
        ok = xerr_internal(errp, "xe: cannot send the request");
    /* a PUT the server stops reading early is answered all the same: read on */
    bool body_ok = ok && (strcmp(method, "PUT") != 0 || fd_to_tunnel(&t, fd, size, &p, errp));
    struct xerr *head_err = NULL;
    bool have_head = ok && read_head(&t, &r, &head_err);
    bool good = have_head && r.status == 200;
    if (good && strcmp(method, "GET") == 0)
        body_ok = body_to_fd(&t, &r, fd, &p, errp);
    progress_end(&p, good && body_ok);
    free(r.rest);
    tunnel_close(&t);
    if (!ok)
        return false;
    if (!have_head)
        return body_ok ? xerr_propagate(errp, &head_err) : (xerr_free(head_err), false);
    if (!good)
        return xerr_internal(errp, "xe: the server answered HTTP %u", r.status);
    return body_ok;
}

/* Whether task @task finishes within @ms (the server finishes a transfer's
 * task as it replies, or just after the last byte of a streamed reply). */
static bool
task_settles(struct cli_ctx *c, const char *task, int ms)
{
    for (int64_t end = cli_mono_ms() + ms;;) {
        enum xapi_task_status_type st = XAPI_TASK_STATUS_TYPE_PENDING;
        struct xerr *e = NULL;
        if (!xc_task_get_status(c->xc, task, &st, &e)) {
            xerr_free(e);
            return false;
        }
        if (st != XAPI_TASK_STATUS_TYPE_PENDING)
            return true;
        if (cli_mono_ms() > end)
            return false;
        usleep(50 * 1000);
    }
}

/* Task @task's outcome (the server finished it, or fails it now that the
 * connection is gone): its result decoded as @rt, or its error. */
static bool
task_outcome(struct cli_ctx *c, const char *task, const char *label, const struct xtype *rt,
             void *result, struct xerr **errp)
{
    bool tty = c->progress_tty;
    c->progress_tty = false; /* the bar was drawn by the transfer */
    bool ok = cli_task_wait(c, task, label, rt, result, errp);
    c->progress_tty = tty;
    return ok;
}

/* Makes the task, runs the transfer, reads the outcome. @query has no
 * session_id/task_id: they are added here. */
static bool
run_transfer(struct cli_ctx *c, const char *method, const char *route, const char *query,
             int fd, uint64_t size, const char *label, const struct xtype *rt, void *result,
             struct xerr **errp)
{
    char *task = NULL;
    if (!xc_task_create(c->xc, label, "", &task, errp))
        return false;
    struct strbuf path = STRBUF_INIT;
    strbuf_printf(&path, "%s?session_id=%s&task_id=%s%s%s", route, xclient_session(c->xc), task,
                  query[0] ? "&" : "", query);
    struct xerr *terr = NULL;
    bool moved = strbuf_ok(&path) && transfer(c, method, path.buf, fd, size, task, label, &terr);
    strbuf_release(&path);
    if (!moved && !task_settles(c, task, 2000)) {
        /* the server never took the task (the request was refused before it) */
        struct xerr *ignored = NULL;
        if (!xc_task_destroy(c->xc, task, &ignored))
            xerr_free(ignored);
        free(task);
        if (!terr)
            xerr_internal(&terr, "xe: %s failed", label);
        return xerr_propagate(errp, &terr);
    }
    /* the task knows best; the transport's error only when it says nothing */
    bool ok = task_outcome(c, task, label, rt, result, errp);
    if (ok && !moved) {
        ok = false;
        if (terr)
            xerr_propagate(errp, &terr);
        else
            xerr_internal(errp, "xe: %s failed", label);
    }
    xerr_free(terr);
    free(task);
    return ok;
}

static int
open_out(const char *filename, struct xerr **errp)
{
    int fd = open(filename, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        xerr_internal(errp, "xe: cannot create %s: %s", filename, strerror(errno));
    return fd;
}

static int
open_in(const char *filename, uint64_t *size, struct xerr **errp)
{
    int fd = open(filename, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        xerr_internal(errp, "xe: cannot open %s: %s", filename, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *size = (uint64_t)st.st_size;
    return fd;
}

/*==== The commands ====*/

/* vm-export and snapshot-export-to-template: the VM is @vm_uuid's when
 * given (checked to be a snapshot), else the one the selectors name. */
static int
export_vm(struct cli_ctx *c, const struct cli_args *a, const char *snapshot_uuid,
          struct xerr **errp)
{
    static const char *const skip[] = {"filename", "metadata", "compress", "preserve-power-state",
                                       "include-snapshots", "excluded-device-types", NULL};
    const char *filename = cli_arg_get(a, "filename");
    bool metadata = false, snapshots = false;
    const char *m = cli_arg_get(a, "metadata"), *s = cli_arg_get(a, "include-snapshots");
    if ((m && !cli_parse_bool(m, &metadata)) || (s && !cli_parse_bool(s, &snapshots)))
        return cli_err_syntax(errp, "Error: metadata= and include-snapshots= take true or false"),
               1;
    const char *compress = cli_arg_get(a, "compress");
    bool cbool;
    if (compress && cli_parse_bool(compress, &cbool))
        compress = cbool ? "true" : "false";
    else if (compress && strcmp(compress, "gzip") != 0 && strcmp(compress, "zstd") != 0)
        return cli_err_syntax(errp, "Error: compress= takes true, false, gzip or zstd"), 1;
    char *vm = NULL;
    if (snapshot_uuid) {
        struct xerr *e = NULL;
        bool snap = false;
        if (!xc_vm_get_by_uuid(c->xc, snapshot_uuid, &vm, &e) ||
            !xc_vm_get_is_a_snapshot(c->xc, vm, &snap, &e) || !snap) {
            xerr_free(e);
            free(vm);
            /* xapi's words (cli_operations.ml vm_export_aux) */
            return cli_err_syntax(errp, "This operation can only be performed on a VM snapshot. "
                                        "%s is not a VM snapshot.", snapshot_uuid),
                   1;
        }
    } else if (!cli_select_one_vm(c, a, "vm", skip, CLI_VM_ANY, &vm, errp)) {
        return 1;
    }
    int fd = open_out(filename, errp);
    bool ok = fd >= 0;
    if (ok) {
        char query[512];
        snprintf(query, sizeof(query), "ref=%s&use_compression=%s&export_snapshots=%s", vm,
                 compress ? compress : "false", snapshots ? "true" : "false");
        ok = run_transfer(c, "GET", metadata ? "/export_metadata" : "/export", query, fd, 0,
                          "Export", NULL, NULL, errp);
        if (close(fd) < 0 && ok)
            ok = xerr_internal(errp, "xe: cannot write %s: %s", filename, strerror(errno));
        if (!ok)
            unlink(filename);
    }
    free(vm);
    if (ok)
        fprintf(c->out, "Export succeeded\n");
    return ok ? 0 : 1;
}

int
cli_cmd_vm_export(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    return export_vm(c, a, NULL, errp);
}

int
cli_cmd_snapshot_export_to_template(struct cli_ctx *c, const struct cli_args *a,
                                    struct xerr **errp)
{
    return export_vm(c, a, cli_arg_get(a, "snapshot-uuid"), errp);
}

/* vm-import url=: the server downloads the XVA itself (VM.import). */
static bool
import_url(struct cli_ctx *c, const char *url, const char *sr, bool preserve, bool force,
           struct xapi_ref_set *vms, struct xerr **errp)
{
    const struct xtype *types[] = {&xapi_type_string, &xapi_type_string, &xapi_type_bool,
                                   &xapi_type_bool};
    const void *vals[] = {&url, &sr, &preserve, &force};
    return cli_async(c, "VM.import", 4, types, vals, "Import", &xapi_type_ref_VM_set, vms,
                     errp);
}

int
cli_cmd_vm_import(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    const char *filename = cli_arg_get(a, "filename");
    const char *url = cli_arg_get(a, "url");
    if (url && filename)
        return cli_err_syntax(errp, "Invalid arguments. The 'url' and 'filename' parameters "
                                    "should not both be specified."),
               1;
    if (!url && !filename)
        return cli_err_required(errp, "filename"), 1;
    bool preserve = false, force = false, metadata = false;
    const char *pv = cli_arg_get(a, "preserve"), *mv = cli_arg_get(a, "metadata");
    if ((pv && !cli_parse_bool(pv, &preserve)) || (mv && !cli_parse_bool(mv, &metadata)) ||
        cli_arg_force(a, &force) < 0)
        return cli_err_syntax(errp, "Error: preserve=, metadata= and force= take true or false"),
               1;
    char *sr = NULL;
    bool given = false;
    if (!metadata && !cli_sr_arg(c, a, true, &sr, &given, errp))
        return 1;
    uint64_t size = 0;
    int fd = url ? -1 : open_in(filename, &size, errp);
    struct xapi_ref_set vms = {0};
    bool ok = url ? import_url(c, url, sr ? sr : "OpaqueRef:NULL", preserve, force, &vms, errp)
                  : fd >= 0;
    if (ok && !url) {
        char query[512];
        snprintf(query, sizeof(query), "restore=%s&force=%s%s%s", preserve ? "true" : "false",
                 force ? "true" : "false", sr ? "&sr_id=" : "", sr ? sr : "");
        ok = run_transfer(c, "PUT", metadata ? "/import_metadata" : "/import", query, fd, size,
                          "Import", &xapi_type_ref_VM_set, &vms, errp);
        close(fd);
    }
    if (ok) {
        struct strbuf line = STRBUF_INIT;
        for (size_t i = 0; i < vms.n; i++) {
            const char *uuid = cli_ref_uuid(c, "VM", ((char **)vms.items)[i]);
            strbuf_printf(&line, "%s%s", i ? "," : "", uuid ? uuid : "");
        }
        fprintf(c->out, "%s\n", line.buf ? line.buf : "");
        strbuf_release(&line);
    }
    xtype_value_clear(&xapi_type_ref_VM_set, &vms);
    free(sr);
    return ok ? 0 : 1;
}

static bool
vdi_format(const struct cli_args *a, const char **format, struct xerr **errp)
{
    *format = cli_arg_get(a, "format");
    if (*format && strcmp(*format, "raw") != 0 && strcmp(*format, "vhd") != 0)
        return cli_err_syntax(errp, "Error: format= takes raw or vhd");
    return true;
}

/* --progress or progress=true: the bar (xapi's xe draws one only then). */
static void
vdi_progress(struct cli_ctx *c, const struct cli_args *a, bool *saved)
{
    *saved = c->progress_tty;
    bool on = a->progress;
    const char *v = cli_arg_get(a, "progress");
    if (v)
        cli_parse_bool(v, &on);
    c->progress_tty = c->progress_tty && on;
}

int
cli_cmd_vdi_export(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    const char *format;
    char *vdi = NULL, *base = NULL;
    if (!vdi_format(a, &format, errp) || !cli_ref_arg(c, a, "uuid", "VDI", &vdi, errp))
        return 1;
    const char *base_uuid = cli_arg_get(a, "base");
    if (base_uuid && !cli_uuid_ref(c, "VDI", base_uuid, &base, errp)) {
        free(vdi);
        return 1;
    }
    const char *filename = cli_arg_get(a, "filename");
    int fd = open_out(filename, errp);
    bool ok = fd >= 0, tty;
    vdi_progress(c, a, &tty);
    if (ok) {
        char query[512];
        snprintf(query, sizeof(query), "vdi=%s&format=%s%s%s", vdi, format ? format : "raw",
                 base ? "&base=" : "", base ? base : "");
        ok = run_transfer(c, "GET", "/export_raw_vdi", query, fd, 0, "VDI export", NULL, NULL,
                          errp);
        if (close(fd) < 0 && ok)
            ok = xerr_internal(errp, "xe: cannot write %s: %s", filename, strerror(errno));
        if (!ok)
            unlink(filename);
    }
    c->progress_tty = tty;
    free(vdi);
    free(base);
    return ok ? 0 : 1;
}

int
cli_cmd_vdi_import(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    const char *format;
    char *vdi = NULL;
    if (!vdi_format(a, &format, errp) || !cli_ref_arg(c, a, "uuid", "VDI", &vdi, errp))
        return 1;
    uint64_t size = 0;
    int fd = open_in(cli_arg_get(a, "filename"), &size, errp);
    bool ok = fd >= 0, tty;
    vdi_progress(c, a, &tty);
    if (ok) {
        char query[512];
        snprintf(query, sizeof(query), "vdi=%s&format=%s", vdi, format ? format : "raw");
        ok = run_transfer(c, "PUT", "/import_raw_vdi", query, fd, size, "VDI import", NULL, NULL,
                          errp);
        close(fd);
    }
    c->progress_tty = tty;
    free(vdi);
    return ok ? 0 : 1;
}
