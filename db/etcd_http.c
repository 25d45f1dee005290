/* db/etcd_http.c - one POST to etcd's JSON gateway (db/etcd_http.h). */
#include "db/etcd_http.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/strbuf.h"

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
    CURLcode cc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    *sent = cc != CURLE_COULDNT_CONNECT && cc != CURLE_COULDNT_RESOLVE_HOST;
    if (cc != CURLE_OK) {
        snprintf(err, err_len, "etcd %s: %s", endpoint, curl_easy_strerror(cc));
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
