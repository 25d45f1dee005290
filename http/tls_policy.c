/* http/tls_policy.c - the TLS versions and cipher suites offered to clients.
 *
 * libmicrohttpd sets its own priority cache on each TLS session when it
 * accepts the connection; http/http.c then calls tls_policy_apply() from the
 * connection-started notification, before the first byte of the handshake
 * is read, so this policy is the one negotiated.
 *
 * Invariant: the cache is built once and never freed while the process runs,
 * since a session keeps a pointer into it.
 *
 * Facts: RFC 8996 (TLS 1.0 and 1.1 deprecated); RFC 9325 section 4.2 (AEAD
 * suites with ECDHE recommended); xapi's host.set_ssl_legacy (ocaml/xapi/
 * xapi_host.ml), which since Stockholm refuses to bring the old versions back.
 */
#include "http/tls_policy.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc;
static gnutls_priority_t modern_cache;

static void
policy_build(void)
{
    const char *err = NULL;
    if (gnutls_priority_init(&modern_cache, TLS_POLICY_MODERN, &err) < 0)
        init_rc = -EINVAL;
}

int
tls_policy_init(void)
{
    pthread_once(&init_once, policy_build);
    return init_rc;
}

int
tls_policy_apply(gnutls_session_t session)
{
    int rc = tls_policy_init();
    if (rc < 0)
        return GNUTLS_E_INVALID_REQUEST;
    return gnutls_priority_set(session, modern_cache);
}
