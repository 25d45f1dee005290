/* rpc/peers.h - calls from this host to the pool's other hosts.
 *
 * Hosts authenticate to each other with the pool secret (DATA/ptoken, as
 * xapi's /etc/xensource/ptoken: 32 random bytes in hex, made by the pool's
 * first host, given to a joiner by pool.join: api/pool_conf.h) through
 * session.slave_login(host, psecret), whose session has every permission
 * and is marked `pool` (a call made with it is never forwarded again). A
 * call goes over HTTPS to the peer's host.address (ADDR[:PORT], port 443 by
 * default) as XML-RPC, with the caller's task in the "task-id" header, as
 * xapi's message_forwarding.ml does_op_on. The peer's certificate is not
 * verified: pool TLS verification is not built yet.
 *
 * Each peer keeps its slave session and up to PEERS_IDLE_MAX idle
 * connections (an xclient is one connection and serves one thread at a
 * time), so concurrent forwarded calls each get their own connection.
 */
#ifndef VESSEL_RPC_PEERS_H
#define VESSEL_RPC_PEERS_H

#include <stdbool.h>
#include <stddef.h>

#include "common/xval.h"
#include "model/xerr.h"

struct server;
struct peers;

int peers_new(struct peers **out);
void peers_free(struct peers *p);

/* Whether @psecret is this host's pool secret (compared in constant time);
 * false when the host has none. */
bool pool_secret_check(const char *data_dir, const char *psecret);

/* host.address as ADDR[:PORT], [V6]:PORT or a bare IPv6 address into @host
 * and *@port (443 when none is given); false when it is not usable. */
bool peers_parse_address(const char *address, char *host, size_t host_len, int *port);

/* Calls @method on @host with @args (the peer's slave session put first when
 * @with_session), the peer reporting progress into @task (NULL: none). The
 * peer's reply value is *@out (free with xval_free); its XenAPI error is
 * *errp unchanged. HOST_OFFLINE [host] when the host's metrics say it is not
 * live; CANNOT_CONTACT_HOST [host] when it has no address, cannot be reached,
 * or the connection breaks before a reply. */
bool peers_call(struct server *srv, const char *host, const char *method, bool with_session,
                const struct xval *const *args, size_t n_args, const char *task,
                struct xval **out, struct xerr **errp);

#endif
