/* http/tls_policy.c - the TLS versions and cipher suites offered to clients.
 *
 * libmicrohttpd sets its own priority cache on each TLS session when it
 * accepts the connection; http/http.c then calls tls_policy_apply() from the
 * connection-started notification, before the first byte of the handshake
 * is read, so the policy in force at accept time is the one negotiated.
 *
 * Invariants:
 *  (1) both caches are built once and never freed while the process runs:
 *      a session keeps a pointer into the cache it was given, and a switch
 *      only changes which one later sessions get;
 *  (2) the selector is an atomic flag, so the accept path takes no lock.
 *
 * Facts: xapi's host.ssl_legacy / host.set_ssl_legacy (ocaml/idl/
 * datamodel_host.ml; xapi before Stockholm re-enabled older protocol
 * versions with it, later versions refuse it); RFC 8996 (TLS 1.0 and 1.1
 * deprecated); RFC 9325 section 4.2 (AEAD suites with ECDHE recommended).
 */
#include "http/tls_policy.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc;
static gnutls_priority_t modern_cache, legacy_cache;
static atomic_bool legacy_on;

static void
policy_build(void)
{
    const char *err = NULL;
    if (gnutls_priority_init(&modern_cache, TLS_POLICY_MODERN, &err) < 0 ||
        gnutls_priority_init(&legacy_cache, TLS_POLICY_LEGACY, &err) < 0)
        init_rc = -EINVAL;
}

int
tls_policy_init(void)
{
    pthread_once(&init_once, policy_build);
    return init_rc;
}

int
tls_policy_set_legacy(bool legacy)
{
    int rc = tls_policy_init();
    if (rc == 0)
        atomic_store(&legacy_on, legacy);
    return rc;
}

bool
tls_policy_legacy(void)
{
    return atomic_load(&legacy_on);
}

int
tls_policy_apply(gnutls_session_t session)
{
    int rc = tls_policy_init();
    if (rc < 0)
        return GNUTLS_E_INVALID_REQUEST;
    return gnutls_priority_set(session, atomic_load(&legacy_on) ? legacy_cache : modern_cache);
}
