/* http/http_limit.h - connections per client address, for the HTTP front.
 *
 * Internal to http/http.c. One table per server, shared by its TCP and TLS
 * listeners; any thread (a mutex inside). The loopback addresses 127.0.0.1
 * and ::1 are never limited here (local clients and a local reverse proxy
 * all share them); they count only against a listener's total.
 */
#ifndef VESSEL_RPC_HTTP_LIMIT_H
#define VESSEL_RPC_HTTP_LIMIT_H

#include <stdbool.h>
#include <sys/socket.h>

struct http_limit;
struct http_limit_entry;

/* A table allowing @max_per_address connections per address (0: no limit).
 * NULL when out of memory. Freed with http_limit_free() once no connection
 * holds an entry. */
struct http_limit *http_limit_new(unsigned max_per_address);
void http_limit_free(struct http_limit *lim);

/* Whether one more connection from @sa may be accepted (the accept policy).
 * Racy by design against http_limit_acquire() on other threads: an address
 * may exceed its limit by the number of listener threads at most. */
bool http_limit_admit(struct http_limit *lim, const struct sockaddr *sa, socklen_t len);

/* Counts an accepted connection from @sa. Returns the entry to pass to
 * http_limit_release() when it closes, or NULL (loopback, no limit, not an
 * IP address, out of memory: nothing to release). */
struct http_limit_entry *http_limit_acquire(struct http_limit *lim, const struct sockaddr *sa);
void http_limit_release(struct http_limit *lim, struct http_limit_entry *e);

/* Connections counted for @sa now (for tests). */
unsigned http_limit_count(struct http_limit *lim, const struct sockaddr *sa);

#endif
