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
#include <fcntl.h>
#include <stdarg.h>
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

#define TLS_CERT_VALID_SECS (10LL * 366 * 24 * 3600)
#define TLS_CERT_MAX_FILE (1u << 20)

static void
why_set(char *why, size_t why_len, const char *fmt, ...)
{
    if (!why || why_len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
}

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

static void
freep(void *p)
{
    free(*(void **)p);
}

int
tls_cert_read_file(const char *path, char **out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    if (st.st_size < 0 || (unsigned long long)st.st_size > TLS_CERT_MAX_FILE) {
        close(fd);
        return -EFBIG;
    }
    size_t size = (size_t)st.st_size, got = 0;
    char *buf = malloc(size + 1);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            free(buf);
            close(fd);
            return -e;
        }
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    *out = buf;
    return 0;
}

/* Writes @data to @path through "@path.tmp" (O_EXCL, @mode) and rename(), so
 * that @path is either absent or whole (invariant 1). */
static int
write_file_atomic(const char *path, const gnutls_datum_t *data, mode_t mode)
{
    char *tmp __attribute__((cleanup(freep))) = NULL;
    if (asprintf(&tmp, "%s.tmp", path) < 0)
        return -ENOMEM;
    (void)unlink(tmp); /* a leftover of a crash between open and rename */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return -errno;
    size_t done = 0;
    while (done < data->size) {
        ssize_t n = write(fd, data->data + done, data->size - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return -e;
        }
        done += (size_t)n;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return -e;
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return -e;
    }
    return 0;
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
    gnutls_x509_privkey_t key __attribute__((cleanup(x509_privkey_freep))) = NULL;
    gnutls_x509_crt_t crt __attribute__((cleanup(x509_crt_freep))) = NULL;
    gnutls_datum_t key_pem __attribute__((cleanup(gnutls_datum_freep))) = {NULL, 0};
    gnutls_datum_t crt_pem __attribute__((cleanup(gnutls_datum_freep))) = {NULL, 0};
    int rc;

    if ((rc = gnutls_x509_privkey_init(&key)) < 0 ||
        (rc = gnutls_x509_privkey_generate(
             key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0)) < 0 ||
        (rc = gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &key_pem)) < 0) {
        why_set(why, why_len, "generating key: %s", gnutls_strerror(rc));
        return -EIO;
    }
    if (gnutls_x509_crt_init(&crt) < 0 || crt_fill(crt, key, host) < 0 ||
        (rc = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &crt_pem)) < 0) {
        why_set(why, why_len, "building self-signed certificate for %s", host);
        return -EIO;
    }
    /* certificate first, key last: see invariant 2 */
    if ((rc = write_file_atomic(cert_path, &crt_pem, 0644)) < 0) {
        why_set(why, why_len, "writing %s: %s", cert_path, strerror(-rc));
        return rc;
    }
    if ((rc = write_file_atomic(key_path, &key_pem, 0600)) < 0) {
        why_set(why, why_len, "writing %s: %s", key_path, strerror(-rc));
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
        why_set(why, why_len, "%s exists but %s does not; refusing to replace half a pair",
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
    char *pem __attribute__((cleanup(freep))) = NULL;
    int rc = tls_cert_read_file(cert_path, &pem);
    if (rc < 0)
        return rc;
    gnutls_x509_crt_t crt __attribute__((cleanup(x509_crt_freep))) = NULL;
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
