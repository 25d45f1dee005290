/* nbd/transmission.c - the request loop after negotiation.
 *
 * With one thread (n_workers <= 1) requests are handled one at a time in arrival order
 * (replies therefore in order too). With N threads (nbd.h), the threads take turns at the
 * socket under recv_lock, leader/follower style (no queue, no hand-off between threads):
 * the holder reads one request; a READ or BLOCK_STATUS is executed and answered after
 * recv_lock is released, so several run at once; any other command is executed while
 * recv_lock is still held, so writes, zeroes, trims and flushes stay in arrival order and
 * a FLUSH runs only after every earlier write completed. Each reply (or structured chunk)
 * goes out in one send under send_lock. The first thread to meet DISC, EOF or an error
 * marks the connection done; the others finish what they hold and stop; nbd_transmission()
 * returns after joining them. Each 28-byte header is checked: magic (else the connection
 * ends), command, flags known for that command, range inside the export without 64-bit
 * overflow, length within NBD_MAX_PAYLOAD; a WRITE whose payload is too large ends the
 * connection before anything is allocated, a merely invalid WRITE has its payload read and
 * dropped so the stream stays in sync. READ with structured replies sends holes as
 * OFFSET_HOLE chunks (unless DF) and data as OFFSET_DATA, one writev per chunk.
 * BLOCK_STATUS needs the base:allocation context. Facts: the NBD protocol (NetworkBlockDevice/nbd doc/proto.md), 3.3.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "nbd/conn.h"
#include "nbd/proto.h"

int
nbd_conn_buffer(struct nbd_conn *c, size_t len)
{
    if (len <= c->buf_size && c->buf)
        return 0;
    size_t want = len < 64 * 1024 ? 64 * 1024 : len;
    uint8_t *b = realloc(c->buf, want);
    if (!b)
        return -ENOMEM;
    c->buf = b;
    c->buf_size = want;
    return 0;
}

static uint32_t
nbd_errno(int rc)
{
    switch (-rc) {
    case EPERM: case EROFS: return NBD_EPERM;
    case ENOMEM: return NBD_ENOMEM;
    case EINVAL: return NBD_EINVAL;
    case ENOSPC: case EFBIG: return NBD_ENOSPC;
    case EOVERFLOW: return NBD_EOVERFLOW;
    case ENOTSUP: return NBD_ENOTSUP;
    default: return NBD_EIO;
    }
}

/* Send one reply or chunk whole (under send_lock when threads share the connection). */
static int
conn_send(struct nbd_conn *c, const struct iovec *iov, int n_iov)
{
    if (!c->sh || c->send_held)
        return c->t->send(c->t->opaque, iov, n_iov);
    pthread_mutex_lock(&c->sh->send_lock);
    int rc = c->t->send(c->t->opaque, iov, n_iov);
    pthread_mutex_unlock(&c->sh->send_lock);
    return rc;
}

static int
simple_reply(struct nbd_conn *c, uint64_t cookie, int rc, const void *data, size_t len)
{
    uint8_t h[16];
    nbd_put32(h, NBD_SIMPLE_REPLY_MAGIC);
    nbd_put32(h + 4, rc < 0 ? nbd_errno(rc) : 0);
    nbd_put64(h + 8, cookie);
    struct iovec iov[2] = {{h, sizeof(h)}, {(void *)data, len}};
    return conn_send(c, iov, rc == 0 && len ? 2 : 1);
}

static int
chunk(struct nbd_conn *c, uint64_t cookie, uint16_t flags, uint16_t type, const void *p1,
      size_t l1, const void *p2, size_t l2)
{
    uint8_t h[20];
    nbd_put32(h, NBD_STRUCTURED_REPLY_MAGIC);
    nbd_put16(h + 4, flags);
    nbd_put16(h + 6, type);
    nbd_put64(h + 8, cookie);
    nbd_put32(h + 16, (uint32_t)(l1 + l2));
    struct iovec iov[3] = {{h, sizeof(h)}, {(void *)p1, l1}, {(void *)p2, l2}};
    return conn_send(c, iov, l2 ? 3 : l1 ? 2 : 1);
}

/* Reply with an error: simple before structured replies, an ERROR chunk after. */
static int
error_reply(struct nbd_conn *c, uint64_t cookie, int rc)
{
    if (!c->structured)
        return simple_reply(c, cookie, rc, NULL, 0);
    uint8_t e[6];
    nbd_put32(e, nbd_errno(rc));
    nbd_put16(e + 4, 0);
    return chunk(c, cookie, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR, e, sizeof(e), NULL, 0);
}

static int
ok_reply(struct nbd_conn *c, uint64_t cookie, int rc)
{
    if (rc < 0)
        return error_reply(c, cookie, rc);
    return simple_reply(c, cookie, 0, NULL, 0);
}

/* A structured READ: holes as OFFSET_HOLE chunks, data as OFFSET_DATA. The data is read
 * into c->buf first (at its offset in the request: do_read sized it) and the chunks go out
 * after, back to back, under send_lock when threads share the connection: no chunk of
 * another reply comes between them. The protocol allows that, but with it QEMU 7.2 guests
 * crashed far more often after live migrations (docs/storage.md, "Interleaved replies").
 * A read error before anything was sent is one ERROR chunk. */
#define READ_CHUNKS_MAX 32

struct read_chunk {
    uint32_t at, len;
    bool hole;
};

static int
do_read_structured(struct nbd_conn *c, uint64_t cookie, uint16_t flags, uint64_t off,
                   uint32_t len)
{
    const struct nbd_backend_ops *ops = c->exp->ops;
    struct read_chunk ch[READ_CHUNKS_MAX];
    unsigned n = 0;
    for (uint32_t done = 0; done < len; n++) {
        uint64_t run = len - done;
        bool alloc = true;
        /* the last slot takes the rest as data: a hole read as data is zeros */
        if (ops->block_status && !(flags & NBD_CMD_FLAG_DF) && n < READ_CHUNKS_MAX - 1) {
            int rc = ops->block_status(c->exp->opaque, off + done, len - done, &run, &alloc);
            if (rc < 0)
                return error_reply(c, cookie, rc);
            if (run == 0 || run > len - done)
                run = len - done;   /* defensive: a backend must not return these */
        }
        if (alloc) {
            int rc = ops->read(c->exp->opaque, c->buf + done, off + done, (uint32_t)run);
            if (rc < 0)
                return error_reply(c, cookie, rc);
        }
        ch[n] = (struct read_chunk){done, (uint32_t)run, !alloc};
        done += (uint32_t)run;
    }
    if (c->sh) {
        pthread_mutex_lock(&c->sh->send_lock);
        c->send_held = true;
    }
    int rc = 0;
    for (unsigned i = 0; i < n && rc == 0; i++) {
        uint16_t cf = i + 1 == n ? NBD_REPLY_FLAG_DONE : 0;
        uint8_t hdr[12];
        nbd_put64(hdr, off + ch[i].at);
        if (ch[i].hole) {
            nbd_put32(hdr + 8, ch[i].len);
            rc = chunk(c, cookie, cf, NBD_REPLY_TYPE_OFFSET_HOLE, hdr, 12, NULL, 0);
        } else {
            rc = chunk(c, cookie, cf, NBD_REPLY_TYPE_OFFSET_DATA, hdr, 8, c->buf + ch[i].at,
                       ch[i].len);
        }
    }
    if (c->sh) {
        c->send_held = false;
        pthread_mutex_unlock(&c->sh->send_lock);
    }
    return rc;
}

static int
do_read(struct nbd_conn *c, uint64_t cookie, uint16_t flags, uint64_t off, uint32_t len)
{
    int rc = nbd_conn_buffer(c, len);
    if (rc < 0)
        return error_reply(c, cookie, rc);
    if (c->structured)
        return do_read_structured(c, cookie, flags, off, len);
    rc = c->exp->ops->read(c->exp->opaque, c->buf, off, len);
    return simple_reply(c, cookie, rc, c->buf, len);
}

static int
do_block_status(struct nbd_conn *c, uint64_t cookie, uint16_t flags, uint64_t off, uint32_t len)
{
    const struct nbd_backend_ops *ops = c->exp->ops;
    uint32_t max = (flags & NBD_CMD_FLAG_REQ_ONE) ? 1 : NBD_MAX_EXTENTS;
    int rc = nbd_conn_buffer(c, 4 + (size_t)max * 8);
    if (rc < 0)
        return error_reply(c, cookie, rc);
    nbd_put32(c->buf, NBD_META_BASE_ALLOCATION_ID);
    uint32_t n = 0;
    uint64_t done = 0;
    while (done < len && n < max) {
        uint64_t run = len - done;
        bool alloc = true;
        if (ops->block_status) {
            rc = ops->block_status(c->exp->opaque, off + done, len - done, &run, &alloc);
            if (rc < 0)
                return error_reply(c, cookie, rc);
            if (run == 0 || run > len - done)
                run = len - done;
        }
        nbd_put32(c->buf + 4 + n * 8, (uint32_t)run);
        nbd_put32(c->buf + 8 + n * 8, alloc ? 0 : NBD_STATE_HOLE | NBD_STATE_ZERO);
        n++;
        done += run;
    }
    return chunk(c, cookie, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_BLOCK_STATUS, c->buf,
                 4 + (size_t)n * 8, NULL, 0);
}

static uint16_t
allowed_flags(uint16_t type)
{
    switch (type) {
    case NBD_CMD_READ: return NBD_CMD_FLAG_DF;
    case NBD_CMD_WRITE: return NBD_CMD_FLAG_FUA;
    case NBD_CMD_WRITE_ZEROES: return NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE;
    case NBD_CMD_TRIM: return NBD_CMD_FLAG_FUA;
    case NBD_CMD_BLOCK_STATUS: return NBD_CMD_FLAG_REQ_ONE;
    default: return 0;
    }
}

/* Validate a request; 0 if it may run, -errno for the reply. */
static int
validate(struct nbd_conn *c, uint16_t flags, uint16_t type, uint64_t off, uint32_t len)
{
    if (type > NBD_CMD_BLOCK_STATUS || type == NBD_CMD_CACHE)
        return -EINVAL;
    if (flags & ~allowed_flags(type))
        return -EINVAL;
    if (type == NBD_CMD_FLUSH)
        return len == 0 && off == 0 ? 0 : -EINVAL;
    if (len == 0)
        return -EINVAL;
    if (off > c->exp->size || len > c->exp->size - off)
        return (type == NBD_CMD_WRITE || type == NBD_CMD_WRITE_ZEROES) ? -ENOSPC : -EINVAL;
    if ((type == NBD_CMD_READ || type == NBD_CMD_WRITE) && len > nbd_max_payload(c->exp))
        return -EINVAL;
    if (c->exp->read_only && (type == NBD_CMD_WRITE || type == NBD_CMD_TRIM ||
                              type == NBD_CMD_WRITE_ZEROES))
        return -EPERM;
    if (type == NBD_CMD_BLOCK_STATUS && !(c->structured && c->meta_base_allocation))
        return -EINVAL;
    return 0;
}

static int
do_zero(struct nbd_conn *c, uint64_t off, uint32_t len, bool fua)
{
    const struct nbd_backend_ops *ops = c->exp->ops;
    if (ops->zero)
        return ops->zero(c->exp->opaque, off, len, fua);
    uint32_t max = nbd_max_payload(c->exp);
    int rc = nbd_conn_buffer(c, len < max ? len : max);
    if (rc < 0)
        return rc;
    memset(c->buf, 0, c->buf_size);
    for (uint32_t done = 0; done < len && rc == 0;) {
        uint32_t n = len - done < c->buf_size ? len - done : (uint32_t)c->buf_size;
        rc = ops->write(c->exp->opaque, c->buf, off + done, n, fua);
        done += n;
    }
    return rc;
}

/* One request. 0: continue, 1: client disconnected, <0: connection error. */
static int
handle_request(struct nbd_conn *c, const uint8_t h[28])
{
    uint16_t flags = nbd_get16(h + 4), type = nbd_get16(h + 6);
    uint64_t cookie = nbd_get64(h + 8), off = nbd_get64(h + 16);
    uint32_t len = nbd_get32(h + 24);
    const struct nbd_backend_ops *ops = c->exp->ops;
    void *o = c->exp->opaque;
    if (type == NBD_CMD_DISC)
        return 1;
    int v = validate(c, flags, type, off, len);
    if (type == NBD_CMD_WRITE) {
        if (len > nbd_max_payload(c->exp))
            return -EPROTO;             /* cannot stay in sync without reading it all */
        int rc = nbd_conn_buffer(c, len);
        if (rc == 0)
            rc = c->t->recv(c->t->opaque, c->buf, len);
        if (rc < 0)
            return rc;
        if (v == 0)
            v = ops->write(o, c->buf, off, len, flags & NBD_CMD_FLAG_FUA);
        return ok_reply(c, cookie, v);
    }
    if (v < 0)
        return error_reply(c, cookie, v);
    switch (type) {
    case NBD_CMD_READ:
        return do_read(c, cookie, flags, off, len);
    case NBD_CMD_FLUSH:
        return ok_reply(c, cookie, ops->flush ? ops->flush(o) : 0);
    case NBD_CMD_TRIM: {
        int rc = ops->trim ? ops->trim(o, off, len) : 0;
        if (rc == 0 && (flags & NBD_CMD_FLAG_FUA) && ops->flush)
            rc = ops->flush(o);
        return ok_reply(c, cookie, rc);
    }
    case NBD_CMD_WRITE_ZEROES:
        return ok_reply(c, cookie, do_zero(c, off, len, flags & NBD_CMD_FLAG_FUA));
    case NBD_CMD_BLOCK_STATUS:
        return do_block_status(c, cookie, flags, off, len);
    default:
        return error_reply(c, cookie, -EINVAL);   /* defensive: validate() refused it */
    }
}

/* A thread of a shared connection frees a payload buffer larger than this after a READ. */
#define NBD_IDLE_BUFFER (4u * 1024 * 1024)

/* Read one request header: 0, or -errno (-EPROTO on a bad magic). */
static int
recv_header(struct nbd_conn *c, uint8_t h[28])
{
    int rc = c->t->recv(c->t->opaque, h, 28);
    if (rc == 0 && nbd_get32(h) != NBD_REQUEST_MAGIC)
        rc = -EPROTO;
    return rc;
}

/* Record how the connection ended (the first word wins). Caller holds recv_lock. */
static void
conn_finish(struct nbd_shared *sh, int rc)
{
    if (!sh->done) {
        sh->done = true;
        sh->rc = rc > 0 ? 0 : rc;
    }
}

/* One thread's turn-taking loop over a shared connection. */
static void *
serve_shared(void *arg)
{
    struct nbd_conn *c = arg;
    struct nbd_shared *sh = c->sh;
    for (;;) {
        pthread_mutex_lock(&sh->recv_lock);
        if (sh->done) {
            pthread_mutex_unlock(&sh->recv_lock);
            return NULL;
        }
        uint8_t h[28];
        int rc = recv_header(c, h);
        uint16_t type = nbd_get16(h + 6);
        bool parallel = rc == 0 && (type == NBD_CMD_READ || type == NBD_CMD_BLOCK_STATUS);
        if (parallel)
            pthread_mutex_unlock(&sh->recv_lock);
        if (rc == 0)
            rc = handle_request(c, h);
        if (parallel && c->buf_size > NBD_IDLE_BUFFER) {
            free(c->buf);       /* bound what an idle thread keeps */
            c->buf = NULL;
            c->buf_size = 0;
        }
        if (parallel && rc != 0)
            pthread_mutex_lock(&sh->recv_lock);
        if (rc != 0)
            conn_finish(sh, rc);
        if (!parallel || rc != 0)
            pthread_mutex_unlock(&sh->recv_lock);
        if (rc != 0)
            return NULL;
    }
}

static int
transmission_threads(struct nbd_conn *c, unsigned n)
{
    struct nbd_shared sh = {.rc = 0};
    pthread_mutex_init(&sh.recv_lock, NULL);
    pthread_mutex_init(&sh.send_lock, NULL);
    struct nbd_conn *peers = calloc(n - 1, sizeof(*peers));
    pthread_t *tids = calloc(n - 1, sizeof(*tids));
    unsigned started = 0;
    c->sh = &sh;
    for (unsigned i = 0; peers && tids && i < n - 1; i++) {
        peers[i] = *c;
        peers[i].buf = NULL;
        peers[i].buf_size = 0;
        if (pthread_create(&tids[i], NULL, serve_shared, &peers[i]) != 0)
            break;          /* fewer threads: still correct */
        started++;
    }
    serve_shared(c);
    for (unsigned i = 0; i < started; i++) {
        pthread_join(tids[i], NULL);
        free(peers[i].buf);
    }
    free(peers);
    free(tids);
    c->sh = NULL;
    pthread_mutex_destroy(&sh.recv_lock);
    pthread_mutex_destroy(&sh.send_lock);
    return sh.rc;
}

int
nbd_transmission(struct nbd_conn *c)
{
    unsigned n = c->exp->n_workers;
    if (n > 1)
        return transmission_threads(c, n < NBD_MAX_WORKERS ? n : NBD_MAX_WORKERS);
    for (;;) {
        uint8_t h[28];
        int rc = recv_header(c, h);
        if (rc < 0)
            return rc;
        rc = handle_request(c, h);
        if (rc != 0)
            return rc > 0 ? 0 : rc;
    }
}
