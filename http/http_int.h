/* http/http_int.h - what http/http.c and http/http_stream.c share: the
 * request and server structures, and the few functions each calls of the
 * other. Not for use outside http/; the interface is http/http.h. The
 * request state machine, the invariants and the lock order are described
 * at the top of http/http.c.
 */
#ifndef VESSEL_HTTP_HTTP_INT_H
#define VESSEL_HTTP_HTTP_INT_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include <gnutls/gnutls.h>
#include <microhttpd.h>

#include "http/http.h"

struct body_pipe; /* http/http_stream.c */

/* A bulk transfer with a thread of its own (a streamed reply's producer, a
 * streamed body's consumer: http/http_stream.c), on srv->transfers until
 * it is done; http_server_stop() calls close() on each, srv->lock held, and
 * waits for the list to empty. */
struct xfer_node {
    struct xfer_node *prev, *next;
    void (*close)(struct xfer_node *n);
};

enum req_state {
    REQ_READING,   /* body arriving; the application has not seen the request */
    REQ_HANDLING,  /* the handler is running on the connection's thread */
    REQ_SUSPENDED, /* handler returned without replying; on srv->suspended */
    REQ_REPLIED,   /* reply stored in resp; the access handler queues it */
    REQ_TUNNEL,    /* tunnel reply stored; the access handler starts it */
    REQ_TUNNELING, /* a tunnel thread owns the socket; connection suspended */
    REQ_SENT,      /* response queued to MHD */
    REQ_DROPPED,   /* no reply will be sent; http_reply*() only frees */
};

struct http_kv {
    enum MHD_ValueKind kind;
    char *key;
    char *value;
};

struct http_listener {
    struct http_server *srv;
    struct MHD_Daemon *mhd;
    enum http_transport transport;
    int listen_fd; /* ours until MHD_start_daemon() succeeds, then MHD's */
    int port;
};

enum { LST_UNIX, LST_TCP, LST_TLS, LST_COUNT };

/* A stream route (http_server_add_stream_route). */
struct http_stream_route {
    char *method;
    char *path;
    http_stream_begin_fn *begin;
    void *opaque;
};

struct http_server {
    pthread_mutex_t lock;
    pthread_cond_t tunnels_done;
    atomic_uint refs; /* the server's own + one per live request */
    http_handler_fn *handler;
    void *opaque;
    bool debug;
    /* guarded by lock */
    bool stopping;
    struct http_request *suspended; /* REQ_SUSPENDED requests, doubly linked */
    unsigned n_suspended;
    struct http_request *tunnels; /* REQ_TUNNELING requests */
    unsigned n_tunnels;
    struct xfer_node *transfers; /* streamed replies and bodies with a thread */
    pthread_cond_t transfers_done;
    /* set up by start, read-only until stop */
    struct http_listener lst[LST_COUNT];
    char *unix_path;
    char *tls_key_pem, *tls_cert_pem; /* must outlive the TLS daemon */
    struct http_limit *limit;         /* per-address counts, TCP and TLS */
    unsigned unauth_timeout_s;
    unsigned max_per_address;
    unsigned tcp_max_connections;     /* per TCP/TLS listener, after the fd budget */
    /* guarded by lock; only grows until stop */
    struct http_stream_route routes[HTTP_MAX_STREAM_ROUTES];
    unsigned n_routes;
};

struct http_request {
    struct http_server *srv;
    struct MHD_Connection *conn;
    enum http_transport transport;
    atomic_uint refs;
    enum req_state state;
    struct http_request *prev, *next; /* srv->suspended or srv->tunnels */
    const char *method; /* in the request's own allocation (req_new) */
    const char *path;
    char *body;
    size_t body_len, body_cap;
    struct http_kv *kv; /* one allocation with its strings (req_copy_values) */
    size_t n_kv, kv_cap;
    char peer[INET6_ADDRSTRLEN];
    struct MHD_Response *resp; /* REQ_REPLIED; NULL there means "close" */
    unsigned status;
    http_tunnel_fn *tunnel_fn;
    void *tunnel_opaque;
    int tunnel_fd;               /* the connection's socket, REQ_TUNNELING */
    char *tunnel_headers;        /* extra "Name: value\r\n" lines of a 101, or NULL */
    gnutls_session_t tls;        /* the connection's TLS session, or NULL */
    /* a streamed body (stream routes): set when begin returned a sink, until
     * the body ended or the client left; only the connection's thread uses
     * them (the pipe's consumer calls the sink) */
    struct body_pipe *pipe;
    bool sink_active;
    bool pipe_was_full;          /* suspended for room: refresh the timeout */
    atomic_bool authenticated;   /* http_request_set_authenticated() */
};

/* http/http.c */
void server_unref(struct http_server *srv);
/* Stores @resp (NULL: close without a reply) as @req's reply and drops the
 * application's reference; any thread. */
void reply_store(struct http_request *req, unsigned status, struct MHD_Response *resp);
/* Content-Type, CORS, extra headers, and close after a 5xx, on @r. */
void response_decorate(struct MHD_Response *r, unsigned status, const char *content_type,
                       const char *const *headers, size_t n_headers);

/* http/http_stream.c */
/* Starts @fn(@arg) on a detached thread. */
bool spawn_detached(void *(*fn)(void *), void *arg);
/* For a stream route's request whose begin handed back @sink; srv->lock
 * held. NULL if no consumer could start (the caller aborts the sink). */
struct body_pipe *pipe_start(struct http_request *req, const struct http_body_sink *sink);
/* What MHD read of the body, on the connection's thread, all of it or none:
 * 1 taken (or discarded), 0 full (the connection is now suspended; nothing
 * taken), -ENOMEM. */
int pipe_offer(struct body_pipe *p, const char *data, size_t len);
/* The body is complete (@aborted false: the application's reference is
 * taken for finish()) or will never be; the caller must not touch @p after. */
void pipe_end(struct body_pipe *p, bool aborted);
/* At stop, srv->lock held: every streamed reply and body is closed (their
 * readers and writers end, the waiting connections are resumed). */
void transfers_close_all(struct http_server *srv);

#endif
