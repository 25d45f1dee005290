/* cli/tunnel.c - a raw HTTP connection to the server for what is not an
 * XML-RPC call: the console's CONNECT tunnel (cli/console.c) and bulk
 * transfers (cli/transfer.c).
 *
 * It uses the transport the rest of xe uses (cli/conn.c): the local unix
 * socket, or TCP to -s/-p, in TLS unless --nossl, trusting the certificate as
 * xe's calls do (the fingerprint saved in ~/.vessel/known_hosts, or
 * --insecure).
 */
#include "cli/tunnel.h"

#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli/conn.h"

void
tunnel_close(struct tunnel *t)
{
    if (t->tls) {
        gnutls_bye(t->tls, GNUTLS_SHUT_RDWR);
        gnutls_deinit(t->tls);
    }
    if (t->cred)
        gnutls_certificate_free_credentials(t->cred);
    if (t->fd >= 0)
        close(t->fd);
}

/* ------------------------------------------------------------------ transport */

static int
connect_unix(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

static int
connect_tcp(const char *host, int port)
{
    char ps[16];
    snprintf(ps, sizeof(ps), "%d", port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, ps, &hints, &res) != 0)
        return -EHOSTUNREACH;
    int fd = -ECONNREFUSED;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            close(fd);
            fd = -errno;
        }
    }
    freeaddrinfo(res);
    return fd;
}

/* Whether the peer's certificate has SHA-256 fingerprint @pin (hex). */
static bool
peer_matches(gnutls_session_t s, const char *pin)
{
    unsigned n = 0;
    const gnutls_datum_t *certs = gnutls_certificate_get_peers(s, &n);
    unsigned char dig[32];
    size_t dlen = sizeof(dig);
    if (!certs || n == 0 || gnutls_fingerprint(GNUTLS_DIG_SHA256, &certs[0], dig, &dlen) < 0)
        return false;
    char hex[65];
    for (size_t i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", dig[i]);
    return strcasecmp(hex, pin) == 0;
}

static bool
tls_start(struct tunnel *t, const struct cli_opts *o, int port, struct xerr **errp)
{
    char hostport[300];
    snprintf(hostport, sizeof(hostport), "%s:%d", o->server, port);
    char *pin = o->insecure ? NULL : cli_conn_known_fingerprint(hostport);
    int rc = gnutls_certificate_allocate_credentials(&t->cred);
    if (rc >= 0 && !o->insecure && !pin)
        gnutls_certificate_set_x509_system_trust(t->cred);
    if (rc >= 0)
        rc = gnutls_init(&t->tls, GNUTLS_CLIENT);
    if (rc >= 0) {
        gnutls_set_default_priority(t->tls);
        gnutls_credentials_set(t->tls, GNUTLS_CRD_CERTIFICATE, t->cred);
        gnutls_server_name_set(t->tls, GNUTLS_NAME_DNS, o->server, strlen(o->server));
        if (!o->insecure && !pin)
            gnutls_session_set_verify_cert(t->tls, o->server, 0);
        gnutls_transport_set_int(t->tls, t->fd);
        do
            rc = gnutls_handshake(t->tls);
        while (rc < 0 && !gnutls_error_is_fatal(rc));
    }
    bool ok = rc >= 0;
    if (!ok)
        xerr_internal(errp, "xe: console: TLS with %s failed: %s", hostport, gnutls_strerror(rc));
    else if (pin && !peer_matches(t->tls, pin))
        ok = xerr_internal(errp, "xe: console: the certificate of %s is not the one saved in "
                                 "~/.vessel/known_hosts", hostport);
    free(pin);
    return ok;
}

bool
tunnel_open(const struct cli_opts *o, struct tunnel *t, struct xerr **errp)
{
    int port = o->port ? o->port : (o->nossl ? 80 : 443);
    const char *where = o->server ? o->server : cli_conn_unix_path(o);
    t->fd = o->server ? connect_tcp(o->server, port) : connect_unix(where);
    if (t->fd < 0)
        return xerr_internal(errp, "xe: console: cannot connect to %s: %s", where,
                             strerror(-t->fd));
    return !o->server || o->nossl || tls_start(t, o, port, errp);
}

ssize_t
tunnel_send(struct tunnel *t, const char *p, size_t n)
{
    size_t done = 0;
    while (done < n) {
        ssize_t w = t->tls ? gnutls_record_send(t->tls, p + done, n - done)
                           : send(t->fd, p + done, n - done, MSG_NOSIGNAL);
        if (w < 0 && (t->tls ? w == GNUTLS_E_INTERRUPTED || w == GNUTLS_E_AGAIN : errno == EINTR))
            continue;
        if (w <= 0)
            return -1;
        done += (size_t)w;
    }
    return (ssize_t)done;
}

/* 0 at EOF, -1 on error. */
ssize_t
tunnel_recv(struct tunnel *t, char *buf, size_t len)
{
    for (;;) {
        ssize_t r = t->tls ? gnutls_record_recv(t->tls, buf, len) : recv(t->fd, buf, len, 0);
        if (r >= 0)
            return r;
        if (t->tls ? r == GNUTLS_E_INTERRUPTED || r == GNUTLS_E_AGAIN : errno == EINTR)
            continue;
        return t->tls && r == GNUTLS_E_PREMATURE_TERMINATION ? 0 : -1;
    }
}

