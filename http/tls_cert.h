/* http/tls_cert.h - the HTTPS listener's key and certificate.
 *
 * Any thread; no shared state. Functions return 0 or a negative errno and,
 * where they take @why, a one-line reason for the log.
 */
#ifndef VESSEL_HTTP_TLS_CERT_H
#define VESSEL_HTTP_TLS_CERT_H

#include <stddef.h>

/* Makes sure @key_path and @cert_path exist. If both are missing, generates an
 * EC P-256 key (written 0600) and a self-signed certificate for @hostname
 * (CN and DNS SAN; also SANs "localhost" and 127.0.0.1; NULL: gethostname()),
 * valid 10 years, random serial. If both exist they are left alone (not
 * validated here: the TLS layer reports a bad pair). One without the other
 * is -ENOENT: replacing half a pair would silently change the host's
 * identity. Other errors: -EIO (GnuTLS failure), the errno of a file write. */
int tls_cert_ensure(const char *key_path, const char *cert_path, const char *hostname,
                    char *why, size_t why_len);

/* Reads a whole file (a PEM) into a new NUL-terminated string, freed with
 * free(). 0 or -errno (-EFBIG beyond 1 MiB). */
int tls_cert_read_file(const char *path, char **out);

/* SHA-256 fingerprint of the first certificate in PEM file @cert_path, as
 * upper-case hex pairs joined by ':' (95 characters + NUL: @out_len >= 96).
 * 0, -errno reading the file, -EINVAL (not a certificate), -ERANGE. */
int tls_cert_fingerprint(const char *cert_path, char *out, size_t out_len);

#endif
