/* tests/fuzz/nbd_opts_fuzz.c - fuzz NBD negotiation of a server whose exports are found by
 * name (nbd_serve_server), with STARTTLS and TLS required.
 *
 * The first byte picks the policy (bit 0: TLS required, bit 1: the transport can start
 * TLS); the rest is what a client sends. STARTTLS only records that it happened (the TLS
 * record layer is GnuTLS's, not ours), so the whole option state machine runs in one
 * thread with no sockets: refusals before TLS, state forgotten after it, exports opened
 * and closed by INFO, GO, the meta-context options and EXPORT_NAME. Export names are read
 * with nbd_export_uri_parse as vesseld reads xapi-nbd's "/<uuid>?session_id=<ref>":
 * "/disk?session_id=ok" is served (a 1 MiB read-only disk), "/disk?..." with another
 * session is refused, anything else unknown. Every export opened must be closed once
 * (checked: an imbalance aborts). Corpus: tests/fuzz/corpus/nbd_opts/.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nbd/nbd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DISK_SIZE (1024 * 1024)

struct stream {
    const uint8_t *data;
    size_t size;
    size_t pos;
    int open;
};

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
fake_starttls(void *opaque)
{
    (void)opaque;
    return 0;
}

static int
be_read(void *o, void *buf, uint64_t off, uint32_t len)
{
    memset(buf, (int)(off & 0xff), len);
    return 0;
}

static int
be_status(void *o, uint64_t off, uint64_t len, uint64_t *run, bool *alloc)
{
    *alloc = off < DISK_SIZE / 2;
    uint64_t end = *alloc ? DISK_SIZE / 2 : DISK_SIZE;
    *run = end - off < len ? end - off : len;
    return 0;
}

static const struct nbd_backend_ops ops = {.read = be_read, .block_status = be_status};
static const struct nbd_export disk = {.name = "/disk", .size = DISK_SIZE, .read_only = true,
                                       .ops = &ops, .max_payload = 65536};

static int
s_open(void *opaque, const char *name, bool tls, const struct nbd_export **out)
{
    struct stream *s = opaque;
    char path[64], session[64];
    int rc = nbd_export_uri_parse(name, path, sizeof(path), "session_id", session,
                                  sizeof(session));
    if (rc < 0 || strcmp(path, "disk") != 0)
        return -ENOENT;
    if (strcmp(session, "ok") != 0)
        return -EACCES;
    s->open++;
    *out = &disk;
    return 0;
}

static void
s_close(void *opaque, const struct nbd_export *exp)
{
    struct stream *s = opaque;
    if (exp != &disk || --s->open < 0)
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct stream s = {data + 1, size - 1, 0, 0};
    struct nbd_transport t = {.opaque = &s, .recv = mem_recv, .send = mem_send,
                              .starttls = (data[0] & 2) ? fake_starttls : NULL};
    struct nbd_server srv = {.tls_required = data[0] & 1, .open = s_open, .close = s_close,
                             .opaque = &s};
    (void)nbd_serve_server(&t, &srv);
    if (s.open != 0)
        abort();
    return 0;
}
