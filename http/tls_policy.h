/* http/tls_policy.h - which TLS versions and cipher suites the HTTPS listener
 * offers to a new connection.
 *
 * Process-wide: one policy for every TLS listener, switched at run time by
 * host.set_ssl_legacy. A switch applies to connections accepted afterwards;
 * established ones keep what they negotiated. Any thread.
 */
#ifndef VESSEL_RPC_TLS_POLICY_H
#define VESSEL_RPC_TLS_POLICY_H

#include <stdbool.h>

#include <gnutls/gnutls.h>

/* GnuTLS priority strings (gnutls_priority_init(3), "Priority strings" in
 * the GnuTLS manual). Modern: TLS 1.3 and 1.2, AEAD ciphers, ECDHE key
 * exchange only (no CBC, no SHA-1 MACs, no RSA key transport). Legacy:
 * GnuTLS's NORMAL set with TLS 1.0 and 1.1 allowed again. */
#define TLS_POLICY_MODERN                                                                    \
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:"     \
    "+CHACHA20-POLY1305:-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:%SERVER_PRECEDENCE"
#define TLS_POLICY_LEGACY                                                                    \
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:+VERS-TLS1.1:+VERS-TLS1.0:%SERVER_PRECEDENCE"

/* Builds both priority caches once (later calls return 0 at once). 0 or
 * -EINVAL (GnuTLS refused a string: a build without some cipher). */
int tls_policy_init(void);
/* Selects the legacy (true) or modern (false) policy for new connections.
 * Calls tls_policy_init() if needed; 0 or its error. */
int tls_policy_set_legacy(bool legacy);
bool tls_policy_legacy(void);
/* Applies the current policy to @session (a server session not yet
 * handshaking). 0 or a negative GnuTLS error code. */
int tls_policy_apply(gnutls_session_t session);

#endif
