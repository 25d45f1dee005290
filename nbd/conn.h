/* nbd/conn.h - one client connection's state (private to nbd/).
 *
 * Negotiated in handshake.c, used by transmission.c. Big-endian helpers for the wire.
 */
#ifndef VESSEL_NBD_CONN_H
#define VESSEL_NBD_CONN_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "nbd/nbd.h"

/* State the threads of one connection share (nbd_export.n_workers > 1; transmission.c).
 * recv_lock is held while a request header and its payload are read and, for every command
 * but READ and BLOCK_STATUS, while it executes; send_lock around each reply or chunk. */
struct nbd_shared {
    pthread_mutex_t recv_lock;
    pthread_mutex_t send_lock;
    bool done;                 /* under recv_lock: no more requests are read */
    int rc;                    /* under recv_lock: the connection's result */
};

/* One thread's view of a connection: the negotiated fields are shared read-only (copied),
 * the payload buffer is the thread's own. */
struct nbd_conn {
    const struct nbd_transport *t;
    const struct nbd_server *srv;  /* finds exports by name */
    const struct nbd_export *exp;  /* the export chosen (GO, EXPORT_NAME), then served */
    bool fixed;                /* srv serves one export (nbd_serve): LIST names it */
    bool tls;                  /* STARTTLS done */
    bool no_zeroes;
    bool structured;
    bool meta_base_allocation;
    uint8_t *buf;              /* payload buffer, grown up to NBD_MAX_PAYLOAD */
    size_t buf_size;
    struct nbd_shared *sh;     /* NULL: one thread serves the connection */
    bool send_held;            /* this thread holds sh->send_lock for a whole reply */
};

static inline void
nbd_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void
nbd_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void
nbd_put64(uint8_t *p, uint64_t v)
{
    nbd_put32(p, (uint32_t)(v >> 32));
    nbd_put32(p + 4, (uint32_t)v);
}

static inline uint16_t
nbd_get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t
nbd_get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t
nbd_get64(const uint8_t *p)
{
    return (uint64_t)nbd_get32(p) << 32 | nbd_get32(p + 4);
}

/* The largest READ/WRITE payload of the export being served. */
static inline uint32_t
nbd_max_payload(const struct nbd_export *exp)
{
    uint32_t m = exp->max_payload;
    if (m == 0 || m > NBD_MAX_PAYLOAD)
        return NBD_MAX_PAYLOAD;
    return m < NBD_PREF_BLOCK ? NBD_PREF_BLOCK : m;
}

/* 0: go to transmission; 1: orderly end (ABORT); <0: error. */
int nbd_handshake(struct nbd_conn *c);
int nbd_transmission(struct nbd_conn *c);
uint16_t nbd_transmission_flags(const struct nbd_export *exp);
int nbd_conn_buffer(struct nbd_conn *c, size_t len);

#endif /* VESSEL_NBD_CONN_H */
