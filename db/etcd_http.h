/* db/etcd_http.h - one request to etcd's v3 JSON gateway over HTTP/1.1
 * (libcurl), shared by the pool store (db/store_etcd.c) and the leases
 * (db/etcd_lease.c). Any thread, each with its own CURL handle. */
#ifndef VESSEL_DB_ETCD_HTTP_H
#define VESSEL_DB_ETCD_HTTP_H

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* The host's identity towards etcd, for the whole process (vesseld
 * --etcd-cacert, --etcd-cert, --etcd-key): the CA that signed the members'
 * certificates (https endpoints), and the client certificate and key that
 * etcd started with --client-cert-auth demands (etcd's docs, "Transport
 * security model"). Set once at start, before any store or lease opens;
 * NULLs leave curl's defaults. 0, or -errno with the reason in @why. */
int etcd_http_set_tls(const char *ca_file, const char *cert_file, const char *key_file,
                      char *why, size_t why_len);
/* The options every request to etcd carries, after each curl_easy_reset:
 * HTTP/1.1 (the gateway's JSON, and its watch streams line by line, as
 * this code reads them; over TLS curl would offer HTTP/2), and the TLS
 * identity above. */
void etcd_http_setup(CURL *c);

/* POSTs @body to @endpoint@path, connecting within @connect_ms and done
 * within @total_ms. 0 and *@resp (json_decref) when etcd answered 200 with
 * no error; else -EIO, or -EINVAL when etcd refused the request itself
 * (HTTP 4xx: bad or too large, which sending again cannot change), with the
 * reason in @err. *@sent is false when the request surely never reached etcd
 * (no connection). */
int etcd_http_post(CURL *c, const char *endpoint, const char *path, const char *body,
                   long connect_ms, long total_ms, json_t **resp, bool *sent, char *err,
                   size_t err_len);

#endif
