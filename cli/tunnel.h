/* cli/tunnel.h - a raw connection to the server (console, transfers).
 * Single-threaded, as the rest of xe. */
#ifndef VESSEL_CLI_TUNNEL_H
#define VESSEL_CLI_TUNNEL_H

#include <gnutls/gnutls.h>
#include <stdbool.h>
#include <sys/types.h>

#include "cli/cli.h"

struct tunnel {
    int fd;
    gnutls_session_t tls; /* NULL: plain */
    gnutls_certificate_credentials_t cred;
};

/* Connects to the server @o names (TLS unless nossl). On failure *errp is
 * INTERNAL_ERROR ["xe: console: ..."]; close @t with tunnel_close() either way. */
bool tunnel_open(const struct cli_opts *o, struct tunnel *t, struct xerr **errp);
void tunnel_close(struct tunnel *t);
/* All of @p, or -1. */
ssize_t tunnel_send(struct tunnel *t, const char *p, size_t n);
/* Up to @len bytes; 0 at EOF, -1 on error. */
ssize_t tunnel_recv(struct tunnel *t, char *buf, size_t len);

#endif
