/* api/host_certs.c - the HTTPS server certificate: host.install_server_certificate,
 * reset_server_certificate, emergency_reset_server_certificate,
 * refresh_server_certificate.
 *
 * install checks what xapi's gencert library checks (ocaml/gencert/lib.ml),
 * in its order: the key is RSA of 2048 to 4096 bits (an unreadable key is
 * SERVER_CERTIFICATE_KEY_INVALID, another algorithm
 * SERVER_CERTIFICATE_KEY_ALGORITHM_NOT_SUPPORTED, another length
 * SERVER_CERTIFICATE_KEY_RSA_LENGTH_NOT_SUPPORTED); the certificate parses,
 * is valid now (NOT_VALID_YET / EXPIRED [now, bound], times as RFC 3339 UTC),
 * certifies that key (KEY_MISMATCH) and is signed with SHA-256 or SHA-512
 * (SIGNATURE_NOT_SUPPORTED); a non-empty chain holds one certificate at
 * least (CHAIN_INVALID). The key and the certificate (then the chain) are
 * written atomically over the listener's files.
 * reset (and its emergency form) makes a new self-signed pair as at first
 * start (http/tls_cert.h). Then, as xapi restarts stunnel, vesseld restarts
 * itself a second after answering (host.restart_agent's path) so the HTTPS
 * listener serves the new certificate.
 * refresh replaces xapi's host-internal certificate, the one pool members
 * use between themselves; a standalone host has none, so there is nothing
 * to replace.
 */
#include <errno.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/host_admin.h"
#include "common/fileio.h"
#include "common/log.h"
#include "db/db.h"
#include "http/tls_cert.h"
#include "rpc/ctx.h"
#include "xapi_errors.h"
#include "xapi_handlers.h"

static bool
host_exists(struct call_ctx *ctx, const char *host, struct xerr **errp)
{
    return db_exists(ctx->db, &xapi_class_host, host) ||
           xerr_handle_invalid(errp, "host", host);
}

static void
rfc3339(time_t t, char out[32])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static bool
check_key(gnutls_x509_privkey_t key, const char *pem, struct xerr **errp)
{
    gnutls_datum_t d = {(unsigned char *)pem, (unsigned)strlen(pem)};
    if (gnutls_x509_privkey_import(key, &d, GNUTLS_X509_FMT_PEM) < 0)
        return xerr_server_certificate_key_invalid(errp);
    unsigned bits = 0;
    int algo = gnutls_x509_privkey_get_pk_algorithm2(key, &bits);
    if (algo != GNUTLS_PK_RSA) {
        const char *name = gnutls_pk_get_name((gnutls_pk_algorithm_t)algo);
        return xerr_server_certificate_key_algorithm_not_supported(errp, name ? name : "unknown");
    }
    if (bits < 2048 || bits > 4096) {
        char len[16];
        snprintf(len, sizeof(len), "%u", bits);
        return xerr_server_certificate_key_rsa_length_not_supported(errp, len);
    }
    return true;
}

static bool
check_cert(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key, const char *pem,
           struct xerr **errp)
{
    gnutls_datum_t d = {(unsigned char *)pem, (unsigned)strlen(pem)};
    if (gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM) < 0)
        return xerr_server_certificate_invalid(errp);
    time_t now = time(NULL), from = gnutls_x509_crt_get_activation_time(crt),
           until = gnutls_x509_crt_get_expiration_time(crt);
    char now_s[32], bound[32];
    rfc3339(now, now_s);
    if (now < from) {
        rfc3339(from, bound);
        return xerr_server_certificate_not_valid_yet(errp, now_s, bound);
    }
    if (now > until) {
        rfc3339(until, bound);
        return xerr_server_certificate_expired(errp, now_s, bound);
    }
    unsigned char a[64], b[64];
    size_t na = sizeof(a), nb = sizeof(b);
    if (gnutls_x509_crt_get_key_id(crt, 0, a, &na) < 0 ||
        gnutls_x509_privkey_get_key_id(key, 0, b, &nb) < 0 || na != nb || memcmp(a, b, na) != 0)
        return xerr_server_certificate_key_mismatch(errp);
    int sign = gnutls_x509_crt_get_signature_algorithm(crt);
    gnutls_digest_algorithm_t hash = gnutls_sign_get_hash_algorithm((gnutls_sign_algorithm_t)sign);
    if (hash != GNUTLS_DIG_SHA256 && hash != GNUTLS_DIG_SHA512)
        return xerr_server_certificate_signature_not_supported(errp);
    return true;
}

static bool
check_chain(const char *pem, struct xerr **errp)
{
    if (!pem[0])
        return true; /* no chain */
    gnutls_x509_crt_t *list = NULL;
    unsigned n = 0;
    gnutls_datum_t d = {(unsigned char *)pem, (unsigned)strlen(pem)};
    int rc = gnutls_x509_crt_list_import2(&list, &n, &d, GNUTLS_X509_FMT_PEM, 0);
    for (unsigned i = 0; rc >= 0 && i < n; i++)
        gnutls_x509_crt_deinit(list[i]);
    gnutls_free(list);
    return (rc >= 0 && n > 0) || xerr_server_certificate_chain_invalid(errp);
}

/* The listener's key and certificate files, or INTERNAL_ERROR. */
static bool
cert_paths(struct call_ctx *ctx, struct xerr **errp)
{
    if (!ctx->srv->tls_cert_path || !ctx->srv->tls_key_path)
        return xerr_internal(errp, "no HTTPS key and certificate paths");
    return true;
}

bool
api_host_install_server_certificate(struct call_ctx *ctx, const char *host,
                                    const char *certificate, const char *private_key,
                                    const char *certificate_chain, struct xerr **errp)
{
    if (!host_exists(ctx, host, errp) || !cert_paths(ctx, errp))
        return false;
    gnutls_x509_privkey_t key = NULL;
    gnutls_x509_crt_t crt = NULL;
    if (gnutls_x509_privkey_init(&key) < 0 || gnutls_x509_crt_init(&crt) < 0) {
        if (key)
            gnutls_x509_privkey_deinit(key);
        return xerr_nomem(errp);
    }
    bool ok = check_key(key, private_key, errp) && check_cert(crt, key, certificate, errp) &&
              check_chain(certificate_chain, errp);
    gnutls_x509_crt_deinit(crt);
    gnutls_x509_privkey_deinit(key);
    if (!ok)
        return false;
    size_t nc = strlen(certificate), nch = strlen(certificate_chain);
    char *bundle = malloc(nc + nch + 2);
    if (!bundle)
        return xerr_nomem(errp);
    memcpy(bundle, certificate, nc);
    size_t len = nc;
    if (nch) {
        if (len && bundle[len - 1] != '\n')
            bundle[len++] = '\n';
        memcpy(bundle + len, certificate_chain, nch);
        len += nch;
    }
    int rc = fileio_write_atomic(ctx->srv->tls_key_path, private_key, strlen(private_key), 0600);
    if (rc == 0)
        rc = fileio_write_atomic(ctx->srv->tls_cert_path, bundle, len, 0644);
    free(bundle);
    if (rc < 0)
        return xerr_internal(errp, "writing the server certificate: %s", strerror(-rc));
    log_info("host.install_server_certificate", "restart_in_s=1");
    ctx->srv->restart_requested = true;
    return host_agent_stop_soon(errp);
}

/* A new self-signed pair, then a restart to serve it. */
static bool
reset_certificate(struct call_ctx *ctx, struct xerr **errp)
{
    if (!cert_paths(ctx, errp))
        return false;
    char key_tmp[4200], cert_tmp[4200], why[256] = "";
    snprintf(key_tmp, sizeof(key_tmp), "%s.new", ctx->srv->tls_key_path);
    snprintf(cert_tmp, sizeof(cert_tmp), "%s.new", ctx->srv->tls_cert_path);
    unlink(key_tmp);
    unlink(cert_tmp);
    int rc = tls_cert_ensure(key_tmp, cert_tmp, NULL, why, sizeof(why));
    if (rc == 0 && rename(key_tmp, ctx->srv->tls_key_path) < 0)
        rc = -errno;
    if (rc == 0 && rename(cert_tmp, ctx->srv->tls_cert_path) < 0)
        rc = -errno;
    if (rc < 0) {
        unlink(key_tmp);
        unlink(cert_tmp);
        return xerr_internal(errp, "a new server certificate: %s",
                             why[0] ? why : strerror(-rc));
    }
    log_info("host.reset_server_certificate", "restart_in_s=1");
    ctx->srv->restart_requested = true;
    return host_agent_stop_soon(errp);
}

bool
api_host_reset_server_certificate(struct call_ctx *ctx, const char *host, struct xerr **errp)
{
    return host_exists(ctx, host, errp) && reset_certificate(ctx, errp);
}

bool
api_host_emergency_reset_server_certificate(struct call_ctx *ctx, struct xerr **errp)
{
    return reset_certificate(ctx, errp);
}

bool
api_host_refresh_server_certificate(struct call_ctx *ctx, const char *host, struct xerr **errp)
{
    return host_exists(ctx, host, errp); /* no host-internal certificate (see the header) */
}
