/* nbd/nbd.h - an NBD server (fixed newstyle, structured replies, base:allocation).
 *
 * Contract:
 *  - The server serves one export to one client per nbd_serve() call, in the calling
 *    thread, until the client disconnects (NBD_CMD_DISC, ABORT, EOF) or breaks the
 *    protocol. Returns 0 on an orderly end, a negative errno otherwise (-EPROTO: the client
 *    broke the protocol, -ECONNRESET: EOF mid-message). Never prints, never exits.
 *  - Every client message is validated before it is acted upon: option lengths are capped
 *    (NBD_MAX_OPTION_BYTES) and checked before the body is read, request ranges and flags
 *    are checked, a WRITE payload above NBD_MAX_PAYLOAD ends the connection without being
 *    allocated. Facts: the NBD protocol (NetworkBlockDevice/nbd doc/proto.md) (after NetworkBlockDevice/nbd
 *    doc/proto.md).
 *  - With n_workers <= 1 the backend is called from the serving thread only. With
 *    n_workers = N > 1, N threads (the caller and N - 1 it starts and joins before
 *    returning) take turns reading requests from the one connection: READ and BLOCK_STATUS
 *    then run concurrently (the backend's read and block_status must be thread-safe),
 *    while WRITE, WRITE_ZEROES, TRIM and FLUSH run one at a time in arrival order, each
 *    before the next request is even read (so a FLUSH covers every write received before
 *    it). Replies are whole: one simple reply or one structured chunk per send, under a
 *    lock (chunks of different requests may interleave, as the protocol allows). Each
 *    thread has its own payload buffer (up to NBD_MAX_PAYLOAD while a request needs it).
 *  - Backend functions return 0 or -errno
 *    (mapped to NBD errors: EPERM, EIO, ENOMEM, EINVAL, ENOSPC, EOVERFLOW, ENOTSUP).
 */
#ifndef VESSEL_NBD_H
#define VESSEL_NBD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define NBD_MAX_OPTION_BYTES (64u * 1024)
#define NBD_MAX_NAME_BYTES 4096u
#define NBD_MAX_PAYLOAD (32u * 1024 * 1024)
#define NBD_MIN_BLOCK 512u
#define NBD_PREF_BLOCK 4096u

/* Backend of an export. read, write and flush are required (write and flush may be NULL
 * for a read-only export); trim, zero and block_status are optional (NULL: trim is a no-op,
 * zero writes zeros through write, everything reads as data). */
struct nbd_backend_ops {
    int (*read)(void *opaque, void *buf, uint64_t off, uint32_t len);
    int (*write)(void *opaque, const void *buf, uint64_t off, uint32_t len, bool fua);
    int (*flush)(void *opaque);
    int (*trim)(void *opaque, uint64_t off, uint32_t len);
    int (*zero)(void *opaque, uint64_t off, uint32_t len, bool fua);
    /* Extent at @off, at most @len bytes: *run > 0, *allocated false = reads as zeros. */
    int (*block_status)(void *opaque, uint64_t off, uint64_t len, uint64_t *run,
                        bool *allocated);
};

struct nbd_export {
    const char *name;          /* "" is the default export; clients asking for "" get it too */
    const char *description;   /* may be NULL */
    uint64_t size;
    bool read_only;
    const struct nbd_backend_ops *ops;
    void *opaque;
    unsigned n_workers;        /* threads per connection, see above; capped at NBD_MAX_WORKERS */
    /* Largest READ/WRITE payload (advertised as the maximum block size; larger requests
     * are refused with EINVAL): what bounds a connection's memory, n_workers buffers of
     * this size. 0: NBD_MAX_PAYLOAD; at least NBD_PREF_BLOCK, at most NBD_MAX_PAYLOAD. */
    uint32_t max_payload;
};

#define NBD_MAX_WORKERS 16u

/* How the server moves bytes. recv fills exactly @len bytes (0) or fails (-errno,
 * -ECONNRESET at EOF); send writes all of @iov (0) or fails. */
struct nbd_transport {
    void *opaque;
    int (*recv)(void *opaque, void *buf, size_t len);
    int (*send)(void *opaque, const struct iovec *iov, int n_iov);
    /* Optional. Called after the ACK to NBD_OPT_STARTTLS went out (every reply before it
     * flushed): runs the TLS handshake, after which recv and send carry TLS records.
     * 0, or -errno (the connection ends). NULL: STARTTLS is answered ERR_POLICY.
     * A transport that buffers received bytes must fail here when any are buffered: the
     * client may send nothing between STARTTLS and the handshake (plaintext injection). */
    int (*starttls)(void *opaque);
    /* Optional. Negotiation ended and transmission starts (e.g. to lift a deadline that
     * bounds the handshake). */
    void (*negotiated)(void *opaque);
};

/* Serve @exp to the client behind @t. */
int nbd_serve(const struct nbd_transport *t, const struct nbd_export *exp);

/* A server whose exports are found by name at negotiation (NBD_OPT_INFO, NBD_OPT_GO,
 * NBD_OPT_EXPORT_NAME) rather than fixed. LIST is answered ERR_POLICY: names are not
 * enumerated. */
struct nbd_server {
    /* Before TLS (nbd_transport.starttls) every option but STARTTLS and ABORT is answered
     * NBD_REP_ERR_TLS_REQD, and EXPORT_NAME (which has no error reply) ends the
     * connection. After STARTTLS what was negotiated before is forgotten (proto.md). */
    bool tls_required;
    /* Finds export @name (NUL-terminated, no NUL inside, at most NBD_MAX_NAME_BYTES).
     * 0 and *@out (valid until close), or -ENOENT (answered ERR_UNKNOWN) or any other
     * -errno (ERR_POLICY: refused). @tls: whether the connection is under TLS by now. */
    int (*open)(void *opaque, const char *name, bool tls, const struct nbd_export **out);
    /* Releases an export open() gave (after INFO's reply, or when serving ends). */
    void (*close)(void *opaque, const struct nbd_export *exp);
    void *opaque;
};

/* Serve the exports of @srv to the client behind @t (result as nbd_serve). */
int nbd_serve_server(const struct nbd_transport *t, const struct nbd_server *srv);

/* The export-name form of a URI path with a query, as xapi's xapi-nbd reads it
 * ("/<vdi-uuid>?session_id=<ref>"): the path (the leading '/' dropped) into @path and the
 * first value of query parameter @key into @value, both percent-decoded and
 * NUL-terminated. 0; -EINVAL (no leading '/', a bad %-escape, a decoded NUL); -ENOENT
 * (no such parameter); -ENAMETOOLONG (a result does not fit its buffer). */
int nbd_export_uri_parse(const char *name, char *path, size_t path_len, const char *key,
                         char *value, size_t value_len);

/* Serve @exp on the connected socket @fd (not closed). */
int nbd_serve_fd(int fd, const struct nbd_export *exp);

/* Create a listening unix socket at @path (an existing socket file is replaced; any other
 * file there is an error, -EEXIST). On success *@out_fd is the socket (close-on-exec). */
int nbd_listen_unix(const char *path, int *out_fd);

#endif /* VESSEL_NBD_H */
