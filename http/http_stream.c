/* http/http_stream.c - bulk transfers beside the HTTP threads: a streamed
 * reply's producer thread and a streamed body's consumer thread (see the
 * two sections below), so that a disk read or write, or an XVA chunk's
 * compression, never holds up the other connections of an HTTP thread.
 */
#include "http/http_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A streamed reply's source. Its read function may block (a disk read, an
 * XVA export's compression of a 1 MiB chunk), and the HTTP thread that would
 * call it serves many other connections, so it runs on a producer thread of
 * its own instead, started at the first content read: the producer reads up
 * to STREAM_AHEAD blocks ahead; MHD's content reader takes from them, and
 * when none is ready it suspends the connection (libmicrohttpd allows that
 * from a content reader) and returns 0; the producer resumes it with the
 * next block.
 *
 * Lifetime: a reference for MHD (dropped by its free callback) and one for
 * the producer (dropped when it exits); the last calls free_fn, so free_fn
 * never runs while read does. A started source is on srv->transfers until
 * then; http_server_stop() resumes the waiting ones and waits for all.
 * src->conn is used outside MHD's callbacks only while src->waiting: MHD
 * never closes a suspended connection (invariant 2). Lock order: srv->lock,
 * then src->mu, then MHD's mutexes. */
#define STREAM_AHEAD 4

/* Read size of a streamed reply: MHD caps it at what the connection's memory
 * pool leaves free, so this is an upper bound. */
#define HTTP_STREAM_BLOCK (64u * 1024)

/* What the producer reads at once: several of MHD's reads, so that a
 * reader that outruns the producer suspends its connection once per few
 * of them, not at each. */
#define STREAM_READ_SIZE (256u * 1024)

/* A buffer of a streamed reply or body, queued or kept for reuse. */
struct xfer_block {
    struct xfer_block *next;
    size_t len, off;
    char data[];
};

/* Blocks in order, and the ones kept for reuse (no allocation per block);
 * under its owner's mutex. */
struct xfer_queue {
    struct xfer_block *head, *tail;
    struct xfer_block *spare;
    unsigned n; /* queued */
};

static void
xq_push(struct xfer_queue *q, struct xfer_block *b)
{
    b->next = NULL;
    if (q->tail)
        q->tail->next = b;
    else
        q->head = b;
    q->tail = b;
    q->n++;
}

/* The first block, which is taken off the queue. */
static struct xfer_block *
xq_pop(struct xfer_queue *q)
{
    struct xfer_block *b = q->head;
    q->head = b->next;
    if (!q->head)
        q->tail = NULL;
    q->n--;
    return b;
}

/* A block kept for reuse, or NULL. */
static struct xfer_block *
xq_spare(struct xfer_queue *q)
{
    struct xfer_block *b = q->spare;
    if (b)
        q->spare = b->next;
    return b;
}

static void
xq_recycle(struct xfer_queue *q, struct xfer_block *b)
{
    b->next = q->spare;
    q->spare = b;
}

static void
blocks_free(struct xfer_block *b)
{
    while (b) {
        struct xfer_block *next = b->next;
        free(b);
        b = next;
    }
}

static void
xq_free(struct xfer_queue *q)
{
    blocks_free(q->head);
    blocks_free(q->spare);
}

/* srv->lock held */
static void
transfer_link(struct http_server *srv, struct xfer_node *n)
{
    n->prev = NULL;
    n->next = srv->transfers;
    if (srv->transfers)
        srv->transfers->prev = n;
    srv->transfers = n;
}

/* srv->lock held; wakes a stop waiting for the list to empty */
static void
transfer_unlink(struct http_server *srv, struct xfer_node *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        srv->transfers = n->next;
    if (n->next)
        n->next->prev = n->prev;
    pthread_cond_broadcast(&srv->transfers_done);
}

/* Resumes @conn if it is suspended waiting for a transfer's thread (data to
 * send, room for the body); under the transfer's mutex, which guards
 * *@waiting. */
static void
wake_if_waiting(bool *waiting, struct MHD_Connection *conn)
{
    if (*waiting) {
        *waiting = false;
        MHD_resume_connection(conn);
    }
}

#define NODE_OWNER(n, type) ((type *)((char *)(n) - offsetof(type, node)))

bool
spawn_detached(void *(*fn)(void *), void *arg)
{
    pthread_attr_t attr;
    pthread_t thread;
    if (pthread_attr_init(&attr) != 0)
        return false;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&thread, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    return rc == 0;
}

struct stream_source {
    http_stream_read_fn *read;
    http_stream_free_fn *free_fn;
    void *opaque;
    struct http_server *srv; /* a reference */
    struct MHD_Connection *conn;
    struct xfer_node node; /* once started: srv->transfers, under srv->lock */
    bool started;          /* MHD's thread for the connection only */
    pthread_mutex_t mu;
    pthread_cond_t room;
    /* guarded by mu */
    struct xfer_queue q;
    uint64_t produced; /* the next read's position */
    unsigned refs;
    bool ended;   /* the read returned 0 or failed (err) */
    int err;
    bool waiting; /* the connection is suspended for the next block */
    bool closing; /* MHD is done with it, or the server stops */
};

static void
stream_release(struct stream_source *src)
{
    pthread_mutex_lock(&src->mu);
    bool last = --src->refs == 0;
    pthread_mutex_unlock(&src->mu);
    if (!last)
        return;
    if (src->free_fn)
        src->free_fn(src->opaque);
    struct http_server *srv = src->srv;
    if (src->started) {
        pthread_mutex_lock(&srv->lock);
        transfer_unlink(srv, &src->node);
        pthread_mutex_unlock(&srv->lock);
    }
    xq_free(&src->q);
    pthread_mutex_destroy(&src->mu);
    pthread_cond_destroy(&src->room);
    free(src);
    server_unref(srv);
}

/* At stop (srv->lock held): the reader ends the reply, the producer exits. */
static void
stream_close(struct xfer_node *n)
{
    struct stream_source *src = NODE_OWNER(n, struct stream_source);
    pthread_mutex_lock(&src->mu);
    src->closing = true;
    pthread_cond_signal(&src->room);
    wake_if_waiting(&src->waiting, src->conn);
    pthread_mutex_unlock(&src->mu);
}

static void *
stream_produce(void *arg)
{
    struct stream_source *src = arg;
    pthread_mutex_lock(&src->mu);
    while (!src->closing && !src->ended) {
        if (src->q.n >= STREAM_AHEAD) {
            pthread_cond_wait(&src->room, &src->mu);
            continue;
        }
        struct xfer_block *b = xq_spare(&src->q);
        uint64_t pos = src->produced;
        pthread_mutex_unlock(&src->mu);
        if (!b)
            b = malloc(sizeof(*b) + STREAM_READ_SIZE);
        ssize_t n = b ? src->read(src->opaque, pos, b->data, STREAM_READ_SIZE) : -ENOMEM;
        pthread_mutex_lock(&src->mu);
        if (n > 0 && (size_t)n <= STREAM_READ_SIZE) {
            b->len = (size_t)n;
            b->off = 0;
            xq_push(&src->q, b);
            src->produced += (uint64_t)n;
        } else {
            free(b);
            src->ended = true;
            src->err = n == 0 ? 0 : n < 0 ? (int)n : -EIO;
        }
        wake_if_waiting(&src->waiting, src->conn);
    }
    pthread_mutex_unlock(&src->mu);
    stream_release(src);
    return NULL;
}

/* At the first content read, on MHD's thread: the producer's reference and
 * thread, and a place on srv->transfers. false: the reply cannot go on. */
static bool
producer_start(struct stream_source *src)
{
    struct http_server *srv = src->srv;
    src->started = true;
    pthread_mutex_lock(&srv->lock);
    bool ok = !srv->stopping;
    if (ok)
        transfer_link(srv, &src->node);
    pthread_mutex_unlock(&srv->lock);
    if (!ok) {
        src->started = false;
        return false;
    }
    pthread_mutex_lock(&src->mu);
    src->refs++;
    pthread_mutex_unlock(&src->mu);
    if (!spawn_detached(stream_produce, src)) {
        pthread_mutex_lock(&src->mu);
        src->ended = true;
        src->err = -EAGAIN;
        pthread_mutex_unlock(&src->mu);
        stream_release(src); /* the producer's: MHD's remains */
    }
    return true;
}

static ssize_t
stream_source_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream_source *src = cls;
    (void)pos; /* MHD reads in order: the producer keeps the position */
    if (max == 0)
        return 0; /* MHD asks again with room */
    if (!src->started && !producer_start(src))
        return MHD_CONTENT_READER_END_WITH_ERROR;
    pthread_mutex_lock(&src->mu);
    size_t n = 0;
    while (n < max && src->q.head) {
        struct xfer_block *b = src->q.head;
        size_t take = b->len - b->off < max - n ? b->len - b->off : max - n;
        memcpy(buf + n, b->data + b->off, take);
        n += take;
        b->off += take;
        if (b->off == b->len) {
            xq_recycle(&src->q, xq_pop(&src->q));
            pthread_cond_signal(&src->room);
        }
    }
    ssize_t ret = (ssize_t)n;
    if (n == 0) {
        if (src->closing || (src->ended && src->err))
            ret = MHD_CONTENT_READER_END_WITH_ERROR; /* MHD closes the connection */
        else if (src->ended)
            ret = MHD_CONTENT_READER_END_OF_STREAM;
        else {
            src->waiting = true;
            MHD_suspend_connection(src->conn);
        }
    }
    pthread_mutex_unlock(&src->mu);
    return ret;
}

static void
stream_source_free(void *cls)
{
    struct stream_source *src = cls;
    pthread_mutex_lock(&src->mu);
    src->closing = true;
    src->waiting = false; /* never set here: MHD does not close a suspended connection */
    pthread_cond_signal(&src->room);
    pthread_mutex_unlock(&src->mu);
    stream_release(src);
}

void
http_reply_stream(struct http_request *req, unsigned status, const char *content_type,
                  const char *const *headers, size_t n_headers, int64_t content_length,
                  http_stream_read_fn *read, http_stream_free_fn *free_fn, void *opaque)
{
    struct stream_source *src = malloc(sizeof(*src));
    if (!src) {
        if (free_fn)
            free_fn(opaque);
        reply_store(req, status, NULL); /* closed without a reply */
        return;
    }
    *src = (struct stream_source){.read = read, .free_fn = free_fn, .opaque = opaque,
                                  .srv = req->srv, .conn = req->conn,
                                  .node = {.close = stream_close}, .refs = 1};
    atomic_fetch_add(&req->srv->refs, 1);
    pthread_mutex_init(&src->mu, NULL);
    pthread_cond_init(&src->room, NULL);
    uint64_t size = content_length < 0 ? MHD_SIZE_UNKNOWN : (uint64_t)content_length;
    /* once created, the response owns src (MHD calls stream_source_free) */
    struct MHD_Response *r = MHD_create_response_from_callback(
        size, HTTP_STREAM_BLOCK, stream_source_read, src, stream_source_free);
    if (!r) {
        stream_source_free(src);
        reply_store(req, status, NULL);
        return;
    }
    response_decorate(r, status, content_type, headers, n_headers);
    reply_store(req, status, r);
}

/*==== Streamed bodies: written on a consumer thread ====*/

/* A stream route's body goes through a pipe: the connection's thread copies
 * each piece MHD reads into it, and a consumer thread of the body's own
 * calls the sink's write() (a disk write, an XVA import's decompression),
 * then finish() or abort(), so the HTTP thread serves its other connections
 * meanwhile. Back-pressure: with PIPE_MAX_PIECES queued, the connection is
 * suspended with the bytes not taken (MHD offers them again on resume) until
 * the consumer has taken one out. Pieces are reused, not freed, until the
 * body ends.
 *
 * The connection's thread stops touching a pipe once it has ended it
 * (pipe_end); the consumer frees it when it exits. A pipe is on srv->transfers
 * until then; http_server_stop() closes them (the rest of a body is
 * discarded, the suspended connections resumed) and waits for all. p->conn
 * is used outside MHD's callbacks only while p->waiting (invariant 2). Lock
 * order: srv->lock, then p->mu, then MHD's mutexes. */
#define PIPE_PIECE (64u * 1024)
#define PIPE_MAX_PIECES 16 /* 1 MiB */

struct body_pipe {
    struct http_server *srv; /* a reference */
    struct http_request *req;
    struct MHD_Connection *conn;
    struct http_body_sink sink;
    struct xfer_node node; /* srv->transfers, under srv->lock */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* guarded by mu */
    struct xfer_queue q;
    bool ended;   /* the body is complete: finish() once written */
    bool aborted; /* the client left, or the server stopped: abort() */
    bool failed;  /* a write failed: the rest is discarded */
    bool closing; /* the server stops: take nothing more */
    bool waiting; /* the connection is suspended for room */
};

/* At stop (srv->lock held): the rest of the body is discarded; MHD's stop
 * then aborts it. */
static void
pipe_close(struct xfer_node *n)
{
    struct body_pipe *p = NODE_OWNER(n, struct body_pipe);
    pthread_mutex_lock(&p->mu);
    p->closing = true;
    wake_if_waiting(&p->waiting, p->conn);
    pthread_mutex_unlock(&p->mu);
}

static void
pipe_free(struct body_pipe *p)
{
    struct http_server *srv = p->srv;
    pthread_mutex_lock(&srv->lock);
    transfer_unlink(srv, &p->node);
    pthread_mutex_unlock(&srv->lock);
    xq_free(&p->q);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
    server_unref(srv);
}

static void *
pipe_consume(void *arg)
{
    struct body_pipe *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->q.head && !p->ended && !p->aborted)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->aborted || !p->q.head)
            break;
        struct xfer_block *piece = xq_pop(&p->q);
        wake_if_waiting(&p->waiting, p->conn);
        bool write = !p->failed;
        pthread_mutex_unlock(&p->mu);
        bool failed = write && p->sink.write(p->sink.ctx, piece->data, piece->len) < 0;
        pthread_mutex_lock(&p->mu);
        xq_recycle(&p->q, piece);
        if (failed)
            p->failed = true; /* read on, discard: finish() answers */
    }
    bool aborted = p->aborted;
    pthread_mutex_unlock(&p->mu);
    if (aborted)
        p->sink.abort(p->sink.ctx);
    else
        p->sink.finish(p->sink.ctx, p->req); /* the application's reference is taken */
    pipe_free(p);
    return NULL;
}

struct body_pipe *
pipe_start(struct http_request *req, const struct http_body_sink *sink)
{
    struct http_server *srv = req->srv;
    struct body_pipe *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    *p = (struct body_pipe){.srv = srv, .req = req, .conn = req->conn, .sink = *sink,
                            .node = {.close = pipe_close}};
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    /* on the list first: the consumer takes srv->lock to leave it */
    transfer_link(srv, &p->node);
    atomic_fetch_add(&srv->refs, 1);
    if (!spawn_detached(pipe_consume, p)) {
        transfer_unlink(srv, &p->node);
        atomic_fetch_sub(&srv->refs, 1); /* not the last: the caller holds one */
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv);
        free(p);
        return NULL;
    }
    return p;
}

/* What MHD read of the body, on the connection's thread, all of it or none
 * (MHD may not offer a remainder again before more bytes arrive): 1 taken
 * (or discarded after a failed write, or when the server stops), 0 full (the
 * connection is now suspended; nothing taken), -ENOMEM. */
int
pipe_offer(struct body_pipe *p, const char *data, size_t len)
{
    pthread_mutex_lock(&p->mu);
    if (p->failed || p->closing) {
        pthread_mutex_unlock(&p->mu);
        return 1;
    }
    if (p->q.n >= PIPE_MAX_PIECES) {
        p->waiting = true;
        MHD_suspend_connection(p->conn);
        pthread_mutex_unlock(&p->mu);
        return 0;
    }
    while (len > 0) {
        struct xfer_block *piece = xq_spare(&p->q);
        if (!piece) {
            pthread_mutex_unlock(&p->mu);
            piece = malloc(sizeof(*piece) + PIPE_PIECE);
            pthread_mutex_lock(&p->mu);
            if (!piece) {
                pthread_mutex_unlock(&p->mu);
                return -ENOMEM;
            }
        }
        size_t n = len < PIPE_PIECE ? len : PIPE_PIECE;
        memcpy(piece->data, data, n);
        piece->len = n;
        xq_push(&p->q, piece);
        data += n;
        len -= n;
    }
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return 1;
}

/* The body is complete (@aborted false: the application's reference is
 * taken for finish()) or will never be; on the connection's thread, which
 * must not touch @p afterwards. */
void
pipe_end(struct body_pipe *p, bool aborted)
{
    pthread_mutex_lock(&p->mu);
    if (aborted)
        p->aborted = true;
    else
        p->ended = true;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void
transfers_close_all(struct http_server *srv)
{
    for (struct xfer_node *n = srv->transfers; n; n = n->next)
        n->close(n);
}
