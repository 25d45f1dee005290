/* rpc/peers.c - the pool secret and calls to other hosts (rpc/peers.h). */
#include "rpc/peers.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/xclient.h"
#include "common/cleanup.h"
#include "common/fileio.h"
#include "common/log.h"
#include "db/db.h"
#include "rpc/ctx.h"
#include "xapi_client.h"
#include "xapi_errors.h"
#include "xapi_model.h"

#define PEERS_IDLE_MAX 4

/* ------------------------------------------------------------------ the secret */

static void
secret_path(const char *data_dir, char *out, size_t len)
{
    snprintf(out, len, "%s/ptoken", data_dir);
}

/* The secret as written, without a trailing newline; NULL when there is none. */
static char *
secret_read(const char *data_dir)
{
    char path[4096];
    secret_path(data_dir, path, sizeof(path));
    char *s = NULL;
    if (fileio_read_all(path, 4096, &s, NULL) < 0)
        return NULL;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
        s[--n] = '\0';
    if (n == 0) {
        free(s);
        return NULL;
    }
    return s;
}

bool
pool_secret_check(const char *data_dir, const char *psecret)
{
    _cleanup_free_ char *mine = secret_read(data_dir);
    if (!mine || !psecret)
        return false;
    size_t a = strlen(mine), b = strlen(psecret);
    unsigned char diff = (unsigned char)(a != b);
    for (size_t i = 0; i < a; i++)
        diff |= (unsigned char)(mine[i] ^ (i < b ? psecret[i] : 0));
    return diff == 0;
}

/* ------------------------------------------------------------------ peers */

struct peer {
    char *host;    /* host ref */
    char *address; /* host.address the connections were made to */
    char *session; /* slave session on that host, or NULL */
    struct xclient *idle[PEERS_IDLE_MAX];
    size_t n_idle;
};

struct peers {
    pthread_mutex_t mu;
    struct peer *v;
    size_t n;
};

int
peers_new(struct peers **out)
{
    struct peers *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    pthread_mutex_init(&p->mu, NULL);
    *out = p;
    return 0;
}

static void
peer_drop_connections(struct peer *e)
{
    for (size_t i = 0; i < e->n_idle; i++)
        xclient_free(e->idle[i]);
    e->n_idle = 0;
    free(e->session);
    e->session = NULL;
}

void
peers_free(struct peers *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++) {
        peer_drop_connections(&p->v[i]);
        free(p->v[i].host);
        free(p->v[i].address);
    }
    free(p->v);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* The entry of @host made current for @address; NULL when out of memory.
 * Under p->mu. */
static struct peer *
peer_find(struct peers *p, const char *host, const char *address)
{
    struct peer *e = NULL;
    for (size_t i = 0; i < p->n && !e; i++)
        if (strcmp(p->v[i].host, host) == 0)
            e = &p->v[i];
    if (!e) {
        struct peer *grown = realloc(p->v, (p->n + 1) * sizeof(*grown));
        if (!grown)
            return NULL;
        p->v = grown;
        e = &p->v[p->n];
        memset(e, 0, sizeof(*e));
        if (!(e->host = strdup(host)))
            return NULL;
        p->n++;
    }
    if (!e->address || strcmp(e->address, address) != 0) {
        /* the host moved: what was open to the old address is no use */
        peer_drop_connections(e);
        free(e->address);
        if (!(e->address = strdup(address)))
            return NULL;
    }
    return e;
}

static bool
parse_port(const char *s, int *port)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v <= 0 || v > 65535)
        return false;
    *port = (int)v;
    return true;
}

bool
peers_parse_address(const char *address, char *host, size_t host_len, int *port)
{
    *port = 443;
    const char *colon = strchr(address, ':');
    size_t n;
    const char *start = address, *rest;
    if (address[0] == '[') { /* [V6] or [V6]:PORT */
        const char *end = strchr(address, ']');
        if (!end || (end[1] && end[1] != ':'))
            return false;
        start = address + 1;
        n = (size_t)(end - start);
        rest = end[1] ? end + 2 : NULL;
    } else if (colon && !strchr(colon + 1, ':')) { /* ADDR:PORT */
        n = (size_t)(colon - address);
        rest = colon + 1;
    } else { /* ADDR, or a bare V6 address */
        n = strlen(address);
        rest = NULL;
    }
    if (n == 0 || n >= host_len || (rest && !parse_port(rest, port)))
        return false;
    memcpy(host, start, n);
    host[n] = '\0';
    return true;
}

struct host_view {
    char *address;
    char *metrics;
};

static void
peek_host(void *opaque, const void *rec)
{
    const struct xapi_host_record *h = rec;
    struct host_view *v = opaque;
    v->address = strdup(h->address);
    v->metrics = strdup(h->metrics);
}

static void
peek_live(void *opaque, const void *rec)
{
    *(bool *)opaque = ((const struct xapi_host_metrics_record *)rec)->live;
}

static bool
cannot_contact(const char *host, const char *why, struct xerr **errp)
{
    log_warn("peers.unreachable", "host=%s reason=\"%s\"", host, why);
    return xerr_cannot_contact_host(errp, host);
}

static bool
slave_login(struct server *srv, struct xclient *xc, const char *host, char **session,
            struct xerr **errp)
{
    _cleanup_free_ char *secret = secret_read(srv->data_dir);
    if (!secret)
        return xerr_internal(errp, "this host has no pool secret (%s/ptoken)", srv->data_dir);
    struct xerr *err = NULL;
    xclient_set_task_id(xc, NULL);
    if (xc_session_slave_login(xc, srv->host_ref, secret, session, &err))
        return true;
    if (xclient_transport_failed(xc)) {
        cannot_contact(host, err->n_params ? err->params[0] : err->code, errp);
        xerr_free(err);
        return false;
    }
    *errp = err;
    return false;
}

static bool
session_lost(const struct xerr *err, const char *session)
{
    return strcmp(err->code, "SESSION_INVALID") == 0 && err->n_params >= 1 &&
           strcmp(err->params[0], session) == 0;
}

bool
peers_call(struct server *srv, const char *host, const char *method, bool with_session,
           const struct xval *const *args, size_t n_args, const char *task, struct xval **out,
           struct xerr **errp)
{
    struct host_view v = {0};
    if (!db_with(srv->db, &xapi_class_host, host, peek_host, &v, errp))
        return false;
    _cleanup_free_ char *address = v.address;
    _cleanup_free_ char *metrics = v.metrics;
    if (!address || !metrics)
        return xerr_nomem(errp);
    bool live = true;
    db_with(srv->db, &xapi_class_host_metrics, metrics, peek_live, &live, NULL);
    if (!live) /* message_forwarding.ml check_live */
        return xerr_host_offline(errp, host);
    char name[256];
    int port;
    if (!peers_parse_address(address, name, sizeof(name), &port))
        return cannot_contact(host, "no usable host.address", errp);

    struct peers *p = srv->peers;
    struct xclient *xc = NULL;
    char *session = NULL;
    pthread_mutex_lock(&p->mu);
    struct peer *e = peer_find(p, host, address);
    if (e && e->n_idle)
        xc = e->idle[--e->n_idle];
    if (e && e->session)
        session = strdup(e->session);
    pthread_mutex_unlock(&p->mu);
    if (!e)
        return xerr_nomem(errp);
    if (!xc) {
        struct xclient_config cfg = {.transport = XCLIENT_TLS, .host = name, .port = port,
                                     .tls_insecure = true};
        if (xclient_new(&cfg, &xc) < 0) {
            free(session);
            return xerr_nomem(errp);
        }
    }
    /* the peer runs the call on a view at least as new as ours (rpc/dispatch.c) */
    xclient_set_generation(xc, db_generation(srv->db));
    bool ok = false;
    for (int attempt = 0; attempt < 2; attempt++) {
        struct xerr *err = NULL;
        if (!session && !slave_login(srv, xc, host, &session, errp))
            break;
        xclient_set_session(xc, session);
        if (xclient_set_task_id(xc, task) < 0) {
            xerr_nomem(errp);
            break;
        }
        if (xclient_call_xval(xc, method, with_session, args, n_args, out, &err)) {
            ok = true;
            break;
        }
        if (xclient_transport_failed(xc)) {
            cannot_contact(host, err->n_params ? err->params[0] : err->code, errp);
            xerr_free(err);
            break;
        }
        if (attempt == 0 && session_lost(err, session)) {
            /* the peer expired our session: log in again, once */
            xerr_free(err);
            free(session);
            session = NULL;
            continue;
        }
        *errp = err; /* the peer's own answer, unchanged */
        break;
    }
    bool healthy = !xclient_transport_failed(xc);
    xclient_set_task_id(xc, NULL);
    pthread_mutex_lock(&p->mu);
    e = peer_find(p, host, address);
    if (e && healthy && session && (!e->session || strcmp(e->session, session) != 0)) {
        free(e->session);
        e->session = strdup(session);
    }
    if (e && healthy && e->n_idle < PEERS_IDLE_MAX) {
        e->idle[e->n_idle++] = xc;
        xc = NULL;
    }
    pthread_mutex_unlock(&p->mu);
    xclient_free(xc);
    free(session);
    return ok;
}
