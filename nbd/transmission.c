/* nbd/transmission.c - the request loop after negotiation.
 *
 * Requests are handled one at a time in arrival order (replies therefore in order too,
 * which the protocol allows). Each 28-byte header is checked: magic (else the connection
 * ends), command, flags known for that command, range inside the export without 64-bit
 * overflow, length within NBD_MAX_PAYLOAD; a WRITE whose payload is too large ends the
 * connection before anything is allocated, a merely invalid WRITE has its payload read and
 * dropped so the stream stays in sync. READ with structured replies sends holes as
 * OFFSET_HOLE chunks (unless DF) and data as OFFSET_DATA, one writev per chunk.
 * BLOCK_STATUS needs the base:allocation context. Facts: shared/spec/storage.md 3.2, 3.3.
 */
#include <errno.h>
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

static int
simple_reply(struct nbd_conn *c, uint64_t cookie, int rc, const void *data, size_t len)
{
    uint8_t h[16];
    nbd_put32(h, NBD_SIMPLE_REPLY_MAGIC);
    nbd_put32(h + 4, rc < 0 ? nbd_errno(rc) : 0);
    nbd_put64(h + 8, cookie);
    struct iovec iov[2] = {{h, sizeof(h)}, {(void *)data, len}};
    return c->t->send(c->t->opaque, iov, rc == 0 && len ? 2 : 1);
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
    return c->t->send(c->t->opaque, iov, l2 ? 3 : l1 ? 2 : 1);
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

static int
do_read_structured(struct nbd_conn *c, uint64_t cookie, uint16_t flags, uint64_t off,
                   uint32_t len)
{
    const struct nbd_backend_ops *ops = c->exp->ops;
    uint32_t done = 0;
    while (done < len) {
        uint64_t run = len - done;
        bool alloc = true;
        if (ops->block_status && !(flags & NBD_CMD_FLAG_DF)) {
            int rc = ops->block_status(c->exp->opaque, off + done, len - done, &run, &alloc);
            if (rc < 0)
                return error_reply(c, cookie, rc);
            if (run == 0 || run > len - done)
                run = len - done;   /* defensive: a backend must not return these */
        }
        if (flags & NBD_CMD_FLAG_DF)
            alloc = true;
        bool last = done + run == len;
        uint16_t cf = last ? NBD_REPLY_FLAG_DONE : 0;
        uint8_t hdr[12];
        nbd_put64(hdr, off + done);
        int rc;
        if (!alloc) {
            nbd_put32(hdr + 8, (uint32_t)run);
            rc = chunk(c, cookie, cf, NBD_REPLY_TYPE_OFFSET_HOLE, hdr, 12, NULL, 0);
        } else {
            rc = ops->read(c->exp->opaque, c->buf, off + done, (uint32_t)run);
            if (rc < 0)
                return error_reply(c, cookie, rc);
            rc = chunk(c, cookie, cf, NBD_REPLY_TYPE_OFFSET_DATA, hdr, 8, c->buf, run);
        }
        if (rc < 0)
            return rc;
        done += (uint32_t)run;
    }
    return 0;
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
    if ((type == NBD_CMD_READ || type == NBD_CMD_WRITE) && len > NBD_MAX_PAYLOAD)
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
    int rc = nbd_conn_buffer(c, len < NBD_MAX_PAYLOAD ? len : NBD_MAX_PAYLOAD);
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
        if (len > NBD_MAX_PAYLOAD)
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

int
nbd_transmission(struct nbd_conn *c)
{
    for (;;) {
        uint8_t h[28];
        int rc = c->t->recv(c->t->opaque, h, sizeof(h));
        if (rc < 0)
            return rc;
        if (nbd_get32(h) != NBD_REQUEST_MAGIC)
            return -EPROTO;
        rc = handle_request(c, h);
        if (rc != 0)
            return rc > 0 ? 0 : rc;
    }
}
