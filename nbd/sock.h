/* nbd/sock.h - a TCP socket transport for nbd_serve_server(): plain until STARTTLS, then
 * TLS through GnuTLS, with a deadline on negotiation.
 *
 * Contract:
 *  - Until the transport's negotiated() hook runs (nbd_serve_server calls it when
 *    transmission starts) every read and write must complete before a deadline set at
 *    creation: a client that stalls or trickles its handshake (TLS's included) is dropped
 *    with -ETIMEDOUT. Afterwards reads wait without limit (an idle backup client is
 *    legitimate) and a write that makes no progress for NBD_SOCK_SEND_TIMEOUT_MS fails.
 *  - Before TLS, reads are unbuffered, so nothing a client sends after STARTTLS can have
 *    been read in clear (no plaintext injection into the TLS stream).
 *  - With TLS, one thread may receive while another sends (the NBD library's recv and
 *    send locks), the use GnuTLS allows on one session; a reply's header shares a record
 *    with the start of its payload.
 *  - shutdown(2) of the socket, from any thread, ends every wait of the connection.
 *  - The socket is not closed by this module.
 */
#ifndef VESSEL_NBD_SOCK_H
#define VESSEL_NBD_SOCK_H

#include <gnutls/gnutls.h>
#include <stdbool.h>

#include "nbd/nbd.h"

#define NBD_SOCK_SEND_TIMEOUT_MS 120000

struct nbd_sock;

/* TLS set-up of a server session (priorities, ...): 0 or a GnuTLS error code. */
typedef int nbd_sock_tls_init_fn(gnutls_session_t session);

/* A transport on connected socket @fd. @cred: the server's certificate credentials (NULL:
 * STARTTLS is refused); @init is applied to each new TLS session (may be NULL).
 * @negotiate_ms bounds negotiation. 0 and *@out, or -ENOMEM. Free with nbd_sock_free(). */
int nbd_sock_new(int fd, gnutls_certificate_credentials_t cred, nbd_sock_tls_init_fn *init,
                 unsigned negotiate_ms, struct nbd_sock **out);
const struct nbd_transport *nbd_sock_transport(struct nbd_sock *s);
/* Whether TLS was negotiated. */
bool nbd_sock_tls(const struct nbd_sock *s);
/* Ends TLS politely when it can (close_notify, best effort) and frees @s. */
void nbd_sock_free(struct nbd_sock *s);

#endif /* VESSEL_NBD_SOCK_H */
