/* api/vdi_nbd.c - VDIs over NBD with TLS (xapi-nbd's service) and VDI.get_nbd_info.
 *
 * The listener's thread accepts; each client gets a thread of its own that
 * runs the NBD library (nbd/nbd.h) over nbd/sock.c's transport, at most
 * VDI_NBD_MAX_CLIENTS at once (more are closed at once, as xapi-nbd refuses
 * them). When a client connects, the networks' purposes decide whether it
 * must negotiate TLS first (xapi_says_use_tls in xapi's ocaml/nbd/src/main.ml).
 * The export name is read as xapi-nbd reads it: the path is the VDI's uuid,
 * the query's session_id a session, which must be live and hold the vm-admin
 * role (xapi-nbd plugs a VBD into dom0 with that session, which needs
 * vm-admin; VDI.get_nbd_info, which hands the name out, needs it too). The
 * VDI is then served read-only, as xapi-nbd serves it
 * (Nbd_unix.Server.serve ~read_only:true), from its VHD chain opened
 * read-only, as GET /export_raw_vdi reads it: what the collector later folds
 * stays readable through the descriptors held.
 *
 * Memory per client is bounded: NBD_WORKERS threads, each with one payload
 * buffer of at most NBD_PAYLOAD bytes (one VHD block; the export advertises
 * it as its maximum block size), and GnuTLS's record buffers. A client must
 * finish negotiation (TLS handshake included) within cfg->negotiate_s.
 *
 * Refusals never reach the client as more than the NBD error (ERR_UNKNOWN
 * for a name that names no VDI, ERR_POLICY otherwise, ERR_TLS_REQD before
 * TLS); the reason is logged (vdi.nbd_refused), without the session ref,
 * which is a bearer token.
 *
 * Facts: xapi's ocaml/nbd/src/main.ml and ocaml/nbd/lib/consts.ml (port,
 * connection limit, export name, TLS choice), ocaml/xapi/xapi_vdi.ml
 * _get_nbd_info (the records), the NBD protocol (NetworkBlockDevice/nbd
 * doc/proto.md).
 */
#include "api/vdi_nbd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/storage_api.h"
#include "common/cleanup.h"
#include "common/errtext.h"
#include "common/log.h"
#include "db/db.h"
#include "http/http.h"
#include "http/tls_cert.h"
#include "http/tls_policy.h"
#include "nbd/nbd.h"
#include "nbd/sock.h"
#include "rpc/session.h"
#include "storage/sr_file.h"
#include "vhd/vhd.h"
#include "xapi_errors.h"
#include "xapi_handlers.h"
#include "xapi_model.h"

#define NBD_WORKERS 4u
#define NBD_PAYLOAD VHD_BLOCK_SIZE_DEFAULT

struct client {
    int fd;
    bool tls_required;
    char peer[64];
    struct client *next;
};

static struct {
    struct server *srv;
    struct vdi_nbd_config cfg;
    int fd;
    int port;
    pthread_t thread;
    bool running;
    pthread_mutex_t lock;
    pthread_cond_t idle;            /* n_clients fell to 0 */
    unsigned n_clients;
    bool stopping;
    struct client *clients;         /* under lock: to end them at stop */
} L = {.fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER, .idle = PTHREAD_COND_INITIALIZER};

/*==== Exports ====*/

struct vdi_export {
    struct nbd_export exp;
    struct vhd_chain *chain;
    char uuid[40];
    char name[48];      /* "/<uuid>": the canonical name (NBD_INFO_NAME), without the session */
};

static int
export_read(void *opaque, void *buf, uint64_t off, uint32_t len)
{
    struct vdi_export *e = opaque;
    return vhd_chain_read(e->chain, buf, off, len);
}

static int
export_flush(void *opaque)
{
    (void)opaque;
    return 0;
}

static int
export_status(void *opaque, uint64_t off, uint64_t len, uint64_t *run, bool *allocated)
{
    struct vdi_export *e = opaque;
    return vhd_chain_block_status(e->chain, off, len, run, allocated);
}

static const struct nbd_backend_ops export_ops = {
    .read = export_read, .flush = export_flush, .block_status = export_status,
};

static void
refused(const struct client *c, const char *vdi, const char *why)
{
    log_info("vdi.nbd_refused", "peer=%s vdi=%s reason=\"%s\"", c->peer, vdi, why);
}

/* Whether the session in @session may read VDIs (vm-admin, or local root). */
static bool
session_may_read(const char *session)
{
    struct session_info si = {0};
    struct xerr *err = NULL;
    if (!session_check(L.srv, session, &si, &err)) {
        xerr_free(err);
        return false;
    }
    bool ok = si.superuser || si.role >= XR_VM_ADMIN;
    session_info_release(&si);
    return ok;
}

static int
export_open(void *opaque, const char *name, bool tls, const struct nbd_export **out)
{
    struct client *c = opaque;
    (void)tls; /* a client that had to negotiate TLS got here only after it */
    char uuid[64], session[256];
    int rc = nbd_export_uri_parse(name, uuid, sizeof(uuid), "session_id", session,
                                  sizeof(session));
    if (rc == -ENOENT && name[0] == '/') {
        refused(c, uuid, "no session_id in the export name");
        return -EACCES;
    }
    if (rc < 0) {
        refused(c, "", "not an export name of the form /<vdi-uuid>?session_id=<ref>");
        return -ENOENT;
    }
    if (!session_may_read(session)) {
        refused(c, uuid, "the session is not valid or lacks the vm-admin role");
        return -EACCES;
    }
    _cleanup_free_ char *ref = NULL;
    if (!db_ref_by_uuid(L.srv->db, &xapi_class_vdi, uuid, &ref, NULL)) {
        refused(c, uuid, "no such VDI");
        return -ENOENT;
    }
    _cleanup_(xapi_vdi_record_freep) struct xapi_vdi_record *v = NULL;
    _cleanup_free_ char *sr_path = NULL;
    struct xerr *err = NULL;
    char path[4096];
    if (!db_get(L.srv->db, &xapi_class_vdi, ref, (void **)&v, NULL)) {
        refused(c, uuid, "no such VDI");
        return -ENOENT;
    }
    if (v->type == XAPI_VDI_TYPE_CBT_METADATA) {
        refused(c, uuid, "a cbt_metadata VDI has no data");
        return -EACCES;
    }
    if (!storage_sr_path(L.srv->db, L.srv->host_ref, v->SR, &sr_path, &err) ||
        sr_file_vdi_path(sr_path, v->uuid, path, sizeof(path)) < 0) {
        xerr_free(err);
        refused(c, uuid, "the VDI's SR is not a file SR plugged on this host");
        return -EACCES;
    }
    struct vdi_export *e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    rc = sr_file_chain_open(path, VHD_OPEN_RDONLY, &e->chain);
    if (rc < 0) {
        log_info("vdi.nbd_refused", "peer=%s vdi=%s reason=\"opening the chain\" err=%d "
                 "detail=\"%s\"", c->peer, uuid, -rc, vhd_last_error());
        free(e);
        return -EIO;
    }
    snprintf(e->uuid, sizeof(e->uuid), "%s", v->uuid);
    snprintf(e->name, sizeof(e->name), "/%s", v->uuid);
    e->exp = (struct nbd_export){.name = e->name, .description = NULL,
                                 .size = vhd_chain_size(e->chain), .read_only = true,
                                 .ops = &export_ops, .opaque = e, .n_workers = NBD_WORKERS,
                                 .max_payload = NBD_PAYLOAD};
    *out = &e->exp;
    return 0;
}

static void
export_close(void *opaque, const struct nbd_export *exp)
{
    (void)opaque;
    struct vdi_export *e = exp->opaque;
    vhd_chain_close(e->chain);
    free(e);
}

/*==== Connections ====*/

/* xapi_says_use_tls: 1 TLS required, 0 not, -1 refuse (both purposes, or none). */
struct purposes {
    bool nbd, insecure;
};

static bool
purposes_visit(void *opaque, const char *ref, const void *rec)
{
    (void)ref;
    struct purposes *p = opaque;
    const struct xapi_network_record *n = rec;
    for (size_t i = 0; i < n->purpose.n; i++) {
        p->nbd |= n->purpose.items[i] == XAPI_NETWORK_PURPOSE_NBD;
        p->insecure |= n->purpose.items[i] == XAPI_NETWORK_PURPOSE_INSECURE_NBD;
    }
    return true;
}

static int
tls_choice(void)
{
    struct purposes p = {false, false};
    db_foreach(L.srv->db, &xapi_class_network, purposes_visit, &p);
    return p.nbd == p.insecure ? -1 : p.nbd;
}

/* The client's end: it leaves the list, its socket is closed and it is freed under the
 * lock, so that vdi_nbd_stop never shuts a descriptor already reused, and nothing of it is
 * left once the last client is counted out. */
static void
client_end(struct client *c)
{
    pthread_mutex_lock(&L.lock);
    for (struct client **pp = &L.clients; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    close(c->fd);
    free(c);
    if (--L.n_clients == 0)
        pthread_cond_broadcast(&L.idle);
    pthread_mutex_unlock(&L.lock);
}

static void *
client_main(void *arg)
{
    struct client *c = arg;
    gnutls_certificate_credentials_t cred = NULL;
    /* read per connection: a renewed certificate is served at once */
    if (gnutls_certificate_allocate_credentials(&cred) < 0 ||
        gnutls_certificate_set_x509_key_file(cred, L.cfg.cert_path, L.cfg.key_path,
                                             GNUTLS_X509_FMT_PEM) < 0) {
        log_warn("vdi.nbd_tls", "peer=%s reason=\"cannot load the host's key and certificate\"",
                 c->peer);
        if (cred)
            gnutls_certificate_free_credentials(cred);
        cred = NULL;
    }
    struct nbd_sock *sock = NULL;
    int rc = -EACCES;
    if ((cred || !c->tls_required) &&
        (rc = nbd_sock_new(c->fd, cred, tls_policy_apply, L.cfg.negotiate_s * 1000u, &sock)) == 0) {
        struct nbd_server s = {.tls_required = c->tls_required, .open = export_open,
                               .close = export_close, .opaque = c};
        rc = nbd_serve_server(nbd_sock_transport(sock), &s);
    }
    log_info("vdi.nbd_end", "peer=%s tls=%d rc=%d", c->peer, sock && nbd_sock_tls(sock), rc);
    nbd_sock_free(sock);
    if (cred)
        gnutls_certificate_free_credentials(cred);
    client_end(c);
    return NULL;
}

static void
peer_name(int fd, char *out, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    snprintf(out, len, "?");
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) != 0)
        return;
    char host[48] = "";
    int port = 0;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        port = ntohs(a->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        port = ntohs(a->sin6_port);
    }
    snprintf(out, len, "%s:%d", host, port);
}

static void
accept_one(int fd)
{
    struct client *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return;
    }
    c->fd = fd;
    peer_name(fd, c->peer, sizeof(c->peer));
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int tls = tls_choice();
    pthread_mutex_lock(&L.lock);
    bool full = L.n_clients >= VDI_NBD_MAX_CLIENTS, stopping = L.stopping;
    if (!full && !stopping && tls >= 0) {
        L.n_clients++;
        c->next = L.clients;
        L.clients = c;
    }
    pthread_mutex_unlock(&L.lock);
    if (full || stopping || tls < 0) {
        log_info("vdi.nbd_refused", "peer=%s reason=\"%s\"", c->peer,
                 stopping ? "stopping"
                 : full   ? "too many clients"
                          : "no network has exactly one of the purposes nbd, insecure_nbd");
        close(fd);
        free(c);
        return;
    }
    c->tls_required = tls == 1;
    pthread_attr_t attr;
    pthread_t t;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, client_main, c) != 0) {
        log_warn("vdi.nbd_refused", "peer=%s reason=\"no thread for the client\"", c->peer);
        client_end(c);
    }
    pthread_attr_destroy(&attr);
}

static void *
accept_main(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept4(L.fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN)
                continue;
            if (__atomic_load_n(&L.stopping, __ATOMIC_ACQUIRE))
                return NULL;
            if (errno == EMFILE || errno == ENFILE || errno == ENOMEM || errno == ENOBUFS) {
                usleep(100000); /* out of descriptors: let connections end */
                continue;
            }
            log_warn_errno(errno, "vdi.nbd_accept", "the NBD listener stops");
            return NULL;
        }
        accept_one(fd);
    }
}

int
vdi_nbd_start(struct server *srv, const struct vdi_nbd_config *cfg, char *why, size_t why_len)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (http_parse_listen(cfg->listen, &ss, &len) < 0) {
        errtext_set(why, why_len, "bad NBD listen address \"%s\" (want HOST:PORT or [V6]:PORT)",
                    cfg->listen);
        return -EINVAL;
    }
    char cwhy[256] = "";
    int rc = tls_cert_ensure(cfg->key_path, cfg->cert_path, cfg->hostname, cwhy, sizeof(cwhy));
    if (rc < 0) {
        errtext_set(why, why_len, "the host's TLS key and certificate: %s", cwhy);
        return rc;
    }
    if (tls_policy_init() < 0) {
        errtext_set(why, why_len, "the TLS policy is not supported by this GnuTLS");
        return -EINVAL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ss.ss_family == AF_INET6)
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 64) != 0) {
        int e = errno;
        errtext_set(why, why_len, "NBD listen on %s: %s", cfg->listen, strerror(e));
        close(fd);
        return -e;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    int port = 0;
    if (getsockname(fd, (struct sockaddr *)&bound, &blen) == 0)
        port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                 : ((struct sockaddr_in *)&bound)->sin_port);
    L.srv = srv;
    L.cfg = *cfg;
    L.fd = fd;
    L.stopping = false;
    if (pthread_create(&L.thread, NULL, accept_main, NULL) != 0) {
        close(fd);
        L.fd = -1;
        errtext_set(why, why_len, "NBD listener thread: %s", strerror(EAGAIN));
        return -EAGAIN;
    }
    L.running = true;
    __atomic_store_n(&L.port, port, __ATOMIC_RELEASE);
    return 0;
}

int
vdi_nbd_port(void)
{
    return __atomic_load_n(&L.port, __ATOMIC_ACQUIRE);
}

void
vdi_nbd_stop(void)
{
    if (!L.running)
        return;
    __atomic_store_n(&L.port, 0, __ATOMIC_RELEASE);
    pthread_mutex_lock(&L.lock);
    __atomic_store_n(&L.stopping, true, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&L.lock);
    shutdown(L.fd, SHUT_RDWR); /* wakes accept() */
    pthread_join(L.thread, NULL);
    close(L.fd);
    L.fd = -1;
    pthread_mutex_lock(&L.lock);
    for (struct client *c = L.clients; c; c = c->next)
        shutdown(c->fd, SHUT_RDWR); /* every wait of the client's threads ends */
    while (L.n_clients > 0)
        pthread_cond_wait(&L.idle, &L.lock);
    pthread_mutex_unlock(&L.lock);
    L.running = false;
}

/*==== VDI.get_nbd_info ====*/

struct refs {
    size_t n, cap;
    char **items;
    bool nomem;
};

static void
refs_add(struct refs *r, const char *s)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 8;
        char **it = realloc(r->items, cap * sizeof(*it));
        if (!it) {
            r->nomem = true;
            return;
        }
        r->items = it;
        r->cap = cap;
    }
    if (!(r->items[r->n] = strdup(s)))
        r->nomem = true;
    else
        r->n++;
}

static bool
refs_has(const struct refs *r, const char *s)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->items[i], s) == 0)
            return true;
    return false;
}

static void
refs_free(struct refs *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->items[i]);
    free(r->items);
}

struct hosts_of_sr {
    const char *sr;
    struct refs hosts;
};

static bool
pbd_visit(void *opaque, const char *ref, const void *rec)
{
    (void)ref;
    struct hosts_of_sr *h = opaque;
    const struct xapi_pbd_record *p = rec;
    if (p->currently_attached && strcmp(p->SR, h->sr) == 0 && !refs_has(&h->hosts, p->host))
        refs_add(&h->hosts, p->host);
    return true;
}

static bool
nbd_network_visit(void *opaque, const char *ref, const void *rec)
{
    struct refs *nets = opaque;
    const struct xapi_network_record *n = rec;
    for (size_t i = 0; i < n->purpose.n; i++) {
        if (n->purpose.items[i] == XAPI_NETWORK_PURPOSE_NBD ||
            n->purpose.items[i] == XAPI_NETWORK_PURPOSE_INSECURE_NBD) {
            refs_add(nets, ref);
            break;
        }
    }
    return true;
}

struct host_ips {
    const char *host;
    const struct refs *nets;
    struct refs ips;
};

/* xapi's get_ips: the IPv4 address then the IPv6 ones of each attached PIF of the host on
 * an NBD network. PIF.IPv6 holds "address/prefix": the prefix is dropped here, since a
 * client needs an address to connect to (xapi passes the entry as it is). */
static bool
pif_visit(void *opaque, const char *ref, const void *rec)
{
    (void)ref;
    struct host_ips *h = opaque;
    const struct xapi_pif_record *p = rec;
    if (!p->currently_attached || strcmp(p->host, h->host) != 0 || !refs_has(h->nets, p->network))
        return true;
    if (p->IP && p->IP[0])
        refs_add(&h->ips, p->IP);
    for (size_t i = 0; i < p->IPv6.n; i++) {
        char a[128];
        snprintf(a, sizeof(a), "%s", p->IPv6.items[i]);
        a[strcspn(a, "/")] = 0;
        if (a[0])
            refs_add(&h->ips, a);
    }
    return true;
}

/* The certificate's subject as xapi's _get_nbd_info picks it: the least DNS name among
 * the strict ones, or among the wildcard ones (without their "*.") when there is no strict
 * one; NULL when the certificate has none. */
static char *
cert_subject(const char *pem)
{
    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) < 0)
        return NULL;
    gnutls_datum_t d = {(unsigned char *)pem, (unsigned)strlen(pem)};
    char *strict = NULL, *wild = NULL;
    if (gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM) >= 0) {
        for (unsigned seq = 0;; seq++) {
            char name[256];
            size_t len = sizeof(name) - 1;
            int type = gnutls_x509_crt_get_subject_alt_name(crt, seq, name, &len, NULL);
            if (type == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
                break;
            if (type != GNUTLS_SAN_DNSNAME)
                continue;
            name[len] = 0;
            bool w = strncmp(name, "*.", 2) == 0;
            const char *n = w ? name + 2 : name;
            char **slot = w ? &wild : &strict;
            if (!*slot || strcmp(n, *slot) < 0) {
                free(*slot);
                *slot = strdup(n);
            }
        }
    }
    gnutls_x509_crt_deinit(crt);
    if (strict) {
        free(wild);
        return strict;
    }
    return wild;
}

static bool
info_add(struct xapi_vdi_nbd_server_info_record_set *out, const char *exportname,
         const char *address, int port, const char *cert, const char *subject)
{
    struct xapi_vdi_nbd_server_info_record **it =
        realloc(out->items, (out->n + 1) * sizeof(*it));
    if (!it)
        return false;
    out->items = it;
    struct xapi_vdi_nbd_server_info_record *r = xapi_vdi_nbd_server_info_record_new();
    if (!r)
        return false;
    out->items[out->n++] = r;
    free(r->exportname);
    free(r->address);
    free(r->cert);
    free(r->subject);
    r->exportname = strdup(exportname);
    r->address = strdup(address);
    r->cert = strdup(cert);
    r->subject = strdup(subject);
    r->port = port;
    return r->exportname && r->address && r->cert && r->subject;
}

/* The host's certificate and its subject (Host.hostname when it names none). */
static bool
host_cert(struct call_ctx *ctx, const char *host, char **cert, char **subject,
          struct xerr **errp)
{
    if (!api_host_get_server_certificate(ctx, host, cert, errp))
        return false;
    *subject = cert_subject(*cert);
    if (*subject)
        return true;
    _cleanup_(xapi_host_record_freep) struct xapi_host_record *h = NULL;
    if (db_get(ctx->db, &xapi_class_host, host, (void **)&h, NULL)) {
        log_warn("vdi.nbd_info", "host=%s reason=\"no DNS name in the certificate: "
                 "Host.hostname is the subject\"", host);
        *subject = strdup(h->hostname ? h->hostname : "");
    } else {
        *subject = strdup("");
    }
    return *subject || xerr_nomem(errp);
}

/* xapi_vdi.ml _get_nbd_info: one record per address of each host that has the VDI's SR
 * attached, on a network whose purpose is nbd or insecure_nbd. Only this host serves NBD
 * here (another host's records would name a server this one cannot vouch for), and none
 * when the NBD listener is off (`--nbd-listen none`). */
bool
api_vdi_get_nbd_info(struct call_ctx *ctx, const char *self,
                     struct xapi_vdi_nbd_server_info_record_set *result, struct xerr **errp)
{
    _cleanup_(xapi_vdi_record_freep) struct xapi_vdi_record *v = NULL;
    if (!db_get(ctx->db, &xapi_class_vdi, self, (void **)&v, errp))
        return false;
    if (v->type == XAPI_VDI_TYPE_CBT_METADATA)
        return xerr_vdi_incompatible_type(errp, self, "cbt_metadata");
    result->n = 0;
    result->items = NULL;
    int port = vdi_nbd_port();
    struct hosts_of_sr hs = {.sr = v->SR};
    struct refs nets = {0};
    db_foreach(ctx->db, &xapi_class_pbd, pbd_visit, &hs);
    db_foreach(ctx->db, &xapi_class_network, nbd_network_visit, &nets);
    bool ok = !hs.hosts.nomem && !nets.nomem;
    char *exportname = NULL;
    if (ok && asprintf(&exportname, "/%s?session_id=%s", v->uuid, ctx->session) < 0) {
        exportname = NULL;
        ok = false;
    }
    if (!ok)
        xerr_nomem(errp);
    for (size_t i = 0; ok && port > 0 && i < hs.hosts.n; i++) {
        const char *host = hs.hosts.items[i];
        if (strcmp(host, ctx->srv->host_ref) != 0)
            continue;
        struct host_ips hi = {.host = host, .nets = &nets};
        db_foreach(ctx->db, &xapi_class_pif, pif_visit, &hi);
        char *cert = NULL, *subject = NULL;
        if (hi.ips.nomem)
            ok = xerr_nomem(errp);
        else if (hi.ips.n && !host_cert(ctx, host, &cert, &subject, errp))
            ok = false;
        for (size_t k = 0; ok && k < hi.ips.n; k++)
            if (!info_add(result, exportname, hi.ips.items[k], port, cert, subject))
                ok = xerr_nomem(errp);
        free(cert);
        free(subject);
        refs_free(&hi.ips);
    }
    free(exportname);
    refs_free(&hs.hosts);
    refs_free(&nets);
    return ok; /* the wrapper frees a partial result */
}
