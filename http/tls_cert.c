/* http/tls_cert.c - generate, keep and fingerprint the HTTPS key and certificate.
 *
 * xapi ships a self-signed certificate made at first boot; clients either pin
 * it (XenCenter asks once, then compares the fingerprint) or ignore it (XO's
 * "allowUnauthorized"). We do the same with GnuTLS, in-process: an EC P-256
 * key and a v3 self-signed server certificate whose CN and first DNS SAN are
 * the host name, plus "localhost" and 127.0.0.1 so local tools verify too.
 *
 * Invariants:
 *  (1) the key file is never readable by others: it is created 0600 with
 *      O_EXCL under a temporary name and renamed into place whole;
 *  (2) an existing pair is never replaced: its fingerprint is the host's
 *      identity to clients that pinned it. Only "both files missing" leads
 *      to generation; the certificate is renamed into place before the key,
 *      and removed again if the key cannot be written, so a failed start
 *      leaves "both missing" (only a crash between the two renames leaves
 *      half a pair, which the next start reports instead of guessing).
 */
#include "http/tls_cert.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "common/cleanup.h"
#include "common/errtext.h"
#include "common/fileio.h"

#define TLS_CERT_VALID_SECS (10LL * 366 * 24 * 3600)
#define TLS_CERT_MAX_FILE (1u << 20)

static void
gnutls_datum_freep(gnutls_datum_t *d)
{
    gnutls_free(d->data);
    d->data = NULL;
}

static void
x509_privkey_freep(gnutls_x509_privkey_t *k)
{
    if (*k)
        gnutls_x509_privkey_deinit(*k);
}

static void
x509_crt_freep(gnutls_x509_crt_t *c)
{
    if (*c)
        gnutls_x509_crt_deinit(*c);
}

int
tls_cert_read_file(const char *path, char **out)
{
    return fileio_read_all(path, TLS_CERT_MAX_FILE, out, NULL);
}

/* @data to @path whole or not at all (invariant 1: the temporary is created
 * with @mode under O_EXCL). */
static int
write_file_atomic(const char *path, const gnutls_datum_t *data, mode_t mode)
{
    return fileio_write_atomic(path, data->data, data->size, mode);
}

static int
crt_fill(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key, const char *host)
{
    /* RFC 5280 4.1.2.2: positive, at most 20 octets; clear the top bit. */
    unsigned char serial[16];
    if (gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial)) < 0)
        return -1;
    serial[0] &= 0x7f;
    serial[0] |= 0x01; /* never a leading zero octet */
    static const unsigned char localhost_ip[4] = {127, 0, 0, 1};
    time_t now = time(NULL);
    if (gnutls_x509_crt_set_version(crt, 3) < 0 ||
        gnutls_x509_crt_set_serial(crt, serial, sizeof(serial)) < 0 ||
        /* a day of slack for clients whose clock runs behind ours */
        gnutls_x509_crt_set_activation_time(crt, now - 24 * 3600) < 0 ||
        gnutls_x509_crt_set_expiration_time(crt, (time_t)(now + TLS_CERT_VALID_SECS)) < 0 ||
        gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, host,
                                      (unsigned)strlen(host)) < 0 ||
        gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, host,
                                             (unsigned)strlen(host), GNUTLS_FSAN_SET) < 0 ||
        (strcmp(host, "localhost") != 0 &&
         gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, "localhost", 9,
                                              GNUTLS_FSAN_APPEND) < 0) ||
        gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, localhost_ip,
                                             sizeof(localhost_ip), GNUTLS_FSAN_APPEND) < 0 ||
        gnutls_x509_crt_set_key(crt, key) < 0 ||
        gnutls_x509_crt_set_basic_constraints(crt, 0, -1) < 0 ||
        gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE) < 0 ||
        gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0) < 0)
        return -1;
    unsigned char kid[64];
    size_t kid_len = sizeof(kid);
    if (gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA1, kid, &kid_len) < 0 ||
        gnutls_x509_crt_set_subject_key_id(crt, kid, kid_len) < 0)
        return -1;
    return gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0) < 0 ? -1 : 0;
}

static int
generate_pair(const char *key_path, const char *cert_path, const char *host, char *why,
              size_t why_len)
{
    gnutls_x509_privkey_t key _cleanup_(x509_privkey_freep) = NULL;
    gnutls_x509_crt_t crt _cleanup_(x509_crt_freep) = NULL;
    gnutls_datum_t key_pem _cleanup_(gnutls_datum_freep) = {NULL, 0};
    gnutls_datum_t crt_pem _cleanup_(gnutls_datum_freep) = {NULL, 0};
    int rc;

    if ((rc = gnutls_x509_privkey_init(&key)) < 0 ||
        (rc = gnutls_x509_privkey_generate(
             key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0)) < 0 ||
        (rc = gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &key_pem)) < 0) {
        errtext_set(why, why_len, "generating key: %s", gnutls_strerror(rc));
        return -EIO;
    }
    if (gnutls_x509_crt_init(&crt) < 0 || crt_fill(crt, key, host) < 0 ||
        (rc = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &crt_pem)) < 0) {
        errtext_set(why, why_len, "building self-signed certificate for %s", host);
        return -EIO;
    }
    /* certificate first, key last: see invariant 2 */
    if ((rc = write_file_atomic(cert_path, &crt_pem, 0644)) < 0) {
        errtext_set(why, why_len, "writing %s: %s", cert_path, strerror(-rc));
        return rc;
    }
    if ((rc = write_file_atomic(key_path, &key_pem, 0600)) < 0) {
        errtext_set(why, why_len, "writing %s: %s", key_path, strerror(-rc));
        (void)unlink(cert_path); /* back to "both missing": the next start retries */
        return rc;
    }
    return 0;
}

int
tls_cert_ensure(const char *key_path, const char *cert_path, const char *hostname, char *why,
                size_t why_len)
{
    bool key_there = access(key_path, F_OK) == 0;
    bool cert_there = access(cert_path, F_OK) == 0;
    if (key_there && cert_there)
        return 0;
    if (key_there != cert_there) {
        errtext_set(why, why_len, "%s exists but %s does not; refusing to replace half a pair",
                key_there ? key_path : cert_path, key_there ? cert_path : key_path);
        return -ENOENT;
    }
    char host[256];
    if (hostname && *hostname) {
        snprintf(host, sizeof(host), "%s", hostname);
    } else if (gethostname(host, sizeof(host)) != 0 || !host[0]) {
        snprintf(host, sizeof(host), "localhost");
    }
    host[sizeof(host) - 1] = '\0';
    return generate_pair(key_path, cert_path, host, why, why_len);
}

int
tls_cert_fingerprint(const char *cert_path, char *out, size_t out_len)
{
    char *pem _cleanup_free_ = NULL;
    int rc = tls_cert_read_file(cert_path, &pem);
    if (rc < 0)
        return rc;
    gnutls_x509_crt_t crt _cleanup_(x509_crt_freep) = NULL;
    gnutls_datum_t in = {(unsigned char *)pem, (unsigned)strlen(pem)};
    unsigned char digest[32];
    size_t digest_len = sizeof(digest);
    if (gnutls_x509_crt_init(&crt) < 0 ||
        gnutls_x509_crt_import(crt, &in, GNUTLS_X509_FMT_PEM) < 0 ||
        gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, digest, &digest_len) < 0 ||
        digest_len != sizeof(digest))
        return -EINVAL;
    if (out_len < digest_len * 3)
        return -ERANGE;
    for (size_t i = 0; i < digest_len; i++)
        snprintf(out + 3 * i, 4, i + 1 < digest_len ? "%02X:" : "%02X", digest[i]);
    return 0;
}
