/* http/fetch.h - GET one URL (http or https) and hand its body over in pieces.
 *
 * For the server's own downloads (VM.import's url): HTTP/1.1, one request per
 * connection, Content-Length, chunked or read-to-close bodies; https verified
 * against the system's CAs and the URL's host name. Blocking; any thread.
 */
#ifndef VESSEL_HTTP_FETCH_H
#define VESSEL_HTTP_FETCH_H

#include <stddef.h>

/* The next @len (> 0) bytes of the body: 0 to go on, or a negative errno to
 * stop (returned by http_fetch). */
typedef int http_fetch_body_fn(void *opaque, const char *data, size_t len);

/* GETs @url, every read and write bounded by @timeout_ms. 0 when the whole
 * body was handed to @fn; -EINVAL a URL that is not http(s)://host[:port]/...;
 * -EHOSTUNREACH (no address), -ECONNREFUSED and other connect errors;
 * -EPROTO a TLS failure, a malformed reply or a status other than 200;
 * -EPIPE a body that stops early; -ETIMEDOUT; or what @fn returned. @why
 * says which in one line. */
int http_fetch(const char *url, int timeout_ms, http_fetch_body_fn *fn, void *opaque, char *why,
               size_t why_len);

#endif
