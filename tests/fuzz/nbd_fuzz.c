/* tests/fuzz/nbd_fuzz.c - fuzz the NBD server with a client's byte stream.
 *
 * The input is everything a client sends (flags, options, requests, payloads); an
 * in-memory transport hands it to nbd_serve() and discards the replies, so the whole
 * state machine (negotiation and transmission) runs in one thread with no sockets. The
 * backend is a 1 MiB memory disk whose second half reads as a hole. Corpus:
 * tests/fuzz/corpus/nbd/ (made by tests/storage/make_nbd_corpus.py): a QEMU-like
 * session, and the hostile clients of
 * spec section 5 (huge option length, bad magic, oversized write, SET_META before
 * STRUCTURED_REPLY, BLOCK_STATUS without a context, ...).
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "nbd/nbd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DISK_SIZE (1024 * 1024)

struct stream {
    const uint8_t *data;
    size_t size;
    size_t pos;
};

static uint8_t disk[DISK_SIZE];

static int
mem_recv(void *opaque, void *buf, size_t len)
{
    struct stream *s = opaque;
    if (len > s->size - s->pos)
        return -ECONNRESET;
    memcpy(buf, s->data + s->pos, len);
    s->pos += len;
    return 0;
}

static int
mem_send(void *opaque, const struct iovec *iov, int n)
{
    for (int i = 0; i < n; i++) {
        if (iov[i].iov_len && !iov[i].iov_base)
            return -EFAULT;
    }
    return 0;
}

static int
be_read(void *o, void *buf, uint64_t off, uint32_t len)
{
    memcpy(buf, disk + off, len);
    return 0;
}

static int
be_write(void *o, const void *buf, uint64_t off, uint32_t len, bool fua)
{
    memcpy(disk + off, buf, len);
    return 0;
}

static int
be_flush(void *o)
{
    return 0;
}

static int
be_status(void *o, uint64_t off, uint64_t len, uint64_t *run, bool *alloc)
{
    uint64_t half = DISK_SIZE / 2;
    *alloc = off < half;
    uint64_t end = off < half ? half : DISK_SIZE;
    *run = end - off < len ? end - off : len;
    return 0;
}

static const struct nbd_backend_ops ops = {
    .read = be_read, .write = be_write, .flush = be_flush, .block_status = be_status,
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct stream s = {data, size, 0};
    struct nbd_transport t = {.opaque = &s, .recv = mem_recv, .send = mem_send};
    struct nbd_export rw = {.name = "", .size = DISK_SIZE, .ops = &ops};
    (void)nbd_serve(&t, &rw);
    s.pos = 0;
    struct nbd_export ro = {.name = "disk", .size = DISK_SIZE, .read_only = true, .ops = &ops};
    (void)nbd_serve(&t, &ro);
    return 0;
}
