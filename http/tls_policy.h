/* http/tls_policy.h - which TLS versions and cipher suites the HTTPS listener
 * offers: TLS 1.3 and 1.2 only, whatever host.set_ssl_legacy is asked (as
 * in xapi since Stockholm). Process-wide; any thread.
 */
#ifndef VESSEL_HTTP_TLS_POLICY_H
#define VESSEL_HTTP_TLS_POLICY_H

#include <gnutls/gnutls.h>

/* GnuTLS priority strings (gnutls_priority_init(3), "Priority strings" in
 * the GnuTLS manual). Modern: TLS 1.3 and 1.2, AEAD ciphers, ECDHE key
 * exchange only (no CBC, no SHA-1 MACs, no RSA key transport). */
#define TLS_POLICY_MODERN                                                                    \
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:"     \
    "+CHACHA20-POLY1305:-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:%SERVER_PRECEDENCE"

/* Builds the priority cache once (later calls return 0 at once). 0 or
 * -EINVAL (GnuTLS refused the string: a build without some cipher). */
int tls_policy_init(void);
/* Applies the policy to @session (a server session not yet
 * handshaking). 0 or a negative GnuTLS error code. */
int tls_policy_apply(gnutls_session_t session);

#endif
