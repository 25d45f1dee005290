/* db/etcd_http.c - one POST to etcd's JSON gateway (db/etcd_http.h). */
#include "db/etcd_http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/strbuf.h"

static struct {
    char *ca, *cert, *key;
} tls;

static int
readable(const char *what, const char *file, char *why, size_t why_len)
{
    if (access(file, R_OK) == 0)
        return 0;
    int rc = -errno;
    snprintf(why, why_len, "%s %s: %s", what, file, strerror(-rc));
    return rc;
}

int
etcd_http_set_tls(const char *ca_file, const char *cert_file, const char *key_file, char *why,
                  size_t why_len)
{
    if (!cert_file != !key_file) {
        snprintf(why, why_len, "a client certificate and its key go together");
        return -EINVAL;
    }
    int rc = 0;
    if (ca_file && (rc = readable("the etcd CA", ca_file, why, why_len)) < 0)
        return rc;
    if (cert_file && ((rc = readable("the etcd client certificate", cert_file, why, why_len)) < 0 ||
                      (rc = readable("the etcd client key", key_file, why, why_len)) < 0))
        return rc;
    free(tls.ca);
    free(tls.cert);
    free(tls.key);
    tls.ca = ca_file ? strdup(ca_file) : NULL;
    tls.cert = cert_file ? strdup(cert_file) : NULL;
    tls.key = key_file ? strdup(key_file) : NULL;
    if ((ca_file && !tls.ca) || (cert_file && (!tls.cert || !tls.key))) {
        snprintf(why, why_len, "out of memory");
        return -ENOMEM;
    }
    return 0;
}

void
etcd_http_setup(CURL *c)
{
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    if (tls.ca)
        curl_easy_setopt(c, CURLOPT_CAINFO, tls.ca);
    if (tls.cert) {
        curl_easy_setopt(c, CURLOPT_SSLCERT, tls.cert);
        curl_easy_setopt(c, CURLOPT_SSLKEY, tls.key);
    }
}

static size_t
collect(char *data, size_t size, size_t n, void *opaque)
{
    strbuf_append(opaque, data, size * n);
    return size * n;
}

int
etcd_http_post(CURL *c, const char *endpoint, const char *path, const char *body,
               long connect_ms, long total_ms, json_t **resp, bool *sent, char *err,
               size_t err_len)
{
    char url[512];
    snprintf(url, sizeof(url), "%s%s", endpoint, path);
    struct strbuf out = STRBUF_INIT;
    long status = 0;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, total_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    char detail[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, detail);
    etcd_http_setup(c);
    CURLcode cc = curl_easy_perform(c);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    *sent = cc != CURLE_COULDNT_CONNECT && cc != CURLE_COULDNT_RESOLVE_HOST;
    if (cc != CURLE_OK) {
        /* a member that refuses the host's certificate (or its lack) drops
         * the connection, which curl reports as whatever step it was at */
        bool tls_refusal = strncmp(endpoint, "https:", 6) == 0 &&
                           (cc == CURLE_RECV_ERROR || cc == CURLE_SEND_ERROR ||
                            cc == CURLE_GOT_NOTHING || cc == CURLE_SSL_CONNECT_ERROR);
        /* the hint first: the error buffers of the callers are short */
        snprintf(err, err_len, "etcd %s: %s%s%s%s%s", endpoint,
                 tls_refusal ? "refused? (--client-cert-auth wants --etcd-cert, --etcd-key) " : "",
                 curl_easy_strerror(cc), detail[0] ? " (" : "", detail, detail[0] ? ")" : "");
        strbuf_release(&out);
        return -EIO;
    }
    json_t *r = json_loadb(out.buf ? out.buf : "", out.len, 0, NULL);
    strbuf_release(&out);
    if (!r) {
        snprintf(err, err_len, "etcd %s: HTTP %ld, not JSON", endpoint, status);
        return -EIO;
    }
    const char *msg = json_string_value(json_object_get(r, "error"));
    if (!msg)
        msg = json_string_value(json_object_get(r, "message"));
    if (status != 200 || msg) {
        /* etcd's default --max-txn-ops (128) is low for a host's first start */
        bool ops = msg && strstr(msg, "too many operations");
        snprintf(err, err_len, "etcd %s: %s%s", endpoint, msg ? msg : "unexpected answer",
                 ops ? " (start etcd with a larger --max-txn-ops)" : "");
        json_decref(r);
        return status >= 400 && status < 500 ? -EINVAL : -EIO;
    }
    *resp = r;
    return 0;
}
