/* api/vdi_nbd.h - VDIs over NBD on TCP, as xapi's xapi-nbd serves them, and
 * VDI.get_nbd_info (api/vdi_nbd.c).
 *
 * One listener per vesseld (`--nbd-listen`, default 0.0.0.0:10809, the IANA
 * port xapi-nbd uses). A client names a VDI with the export name
 * "/<vdi-uuid>?session_id=<session ref>"; it is served read-only from the
 * VDI's VHD chain. Whether TLS is required follows the networks' purposes,
 * decided when a client connects: `nbd` on some network requires it,
 * `insecure_nbd` alone does not, both or neither refuse the connection
 * (ocaml/nbd/src/main.ml, xapi_says_use_tls).
 */
#ifndef VESSEL_API_VDI_NBD_H
#define VESSEL_API_VDI_NBD_H

#include <stddef.h>

#include "rpc/ctx.h"

#define VDI_NBD_PORT 10809          /* IANA's, xapi-nbd's Consts.standard_nbd_port */
#define VDI_NBD_MAX_CLIENTS 16      /* xapi-nbd's Consts.connection_limit */

struct vdi_nbd_config {
    const char *listen;             /* "HOST:PORT" (http_parse_listen) */
    const char *cert_path;          /* the host's certificate (PEM) and key, as HTTPS */
    const char *key_path;
    const char *hostname;           /* for a certificate made on first use */
    unsigned negotiate_s;           /* a client's whole negotiation must fit in this */
};

/* Binds the listener and starts its thread. 0, or -errno with @why (one line). */
int vdi_nbd_start(struct server *srv, const struct vdi_nbd_config *cfg, char *why,
                  size_t why_len);
/* The port listened on (the real one after ":0"), 0 when not listening. */
int vdi_nbd_port(void);
/* Stops accepting, ends every connection and waits for their threads. */
void vdi_nbd_stop(void);

#endif
