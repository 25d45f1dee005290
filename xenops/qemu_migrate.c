/* xenops/qemu_migrate.c - live migration of a qemu domain (xenops.h "live
 * migration"): the source half (migrate over TLS, progress, cancel) and the
 * destination half (a device model started with -incoming defer, -S).
 *
 * Destination: qemu starts paused with `-incoming defer` as an incoming
 * domain (qemu.c invariant (6)); over QMP it gets its TLS credentials
 * (object-add tls-creds-x509, endpoint=server, verify-peer), the capability
 * late-block-activate (its images stay inactive, neither read nor written,
 * until `cont`: QEMU's docs/devel/migration.rst and qapi/migration.json), the
 * migration parameter tls-creds, and then migrate-incoming on the listen
 * address; with port 0 query-migrate's socket-address says which port it got.
 * Source: the same credentials as a client, tls-creds (and tls-hostname),
 * migrate, then query-migrate every 50 ms until completed, failed or
 * cancelled. A completed source is paused in postmigrate with its images
 * flushed and inactivated by QEMU; a failed or cancelled one is running again
 * if it ran before (QEMU restarts it; we make sure).
 *
 * Credentials: qemu runs under its own uid and cannot read the host's key
 * where it is, so each end gets a fresh directory in its dm/ holding QEMU's
 * file names (ca-cert.pem, server-/client-cert.pem, -key.pem), made with
 * O_EXCL|O_NOFOLLOW under a directory descriptor (qemu.c invariant (5): dm/
 * is qemu's, so nothing there is followed) and removed once the migration
 * ended.
 * Facts: QEMU qapi/migration.json (migrate, migrate-incoming, query-migrate,
 * MigrationParameters tls-creds/tls-hostname, MigrationCapability
 * late-block-activate), qapi/qom.json (TlsCredsX509Properties), QEMU docs
 * system/tls.rst ("TLS setup for network services": file names per endpoint).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/fileio.h"
#include "common/log.h"
#include "xenops/qemu_int.h"

#define TLS_OBJECT "vessel-migration-tls"

/* Copies @src into @dirfd/@name for qemu's uid (0600, its owner). */
static int
copy_for_qemu(int dirfd, const char *name, const char *src, uid_t uid, gid_t gid)
{
    char *text = NULL;
    size_t len = 0;
    int rc = fileio_read_all(src, 1u << 20, &text, &len);
    if (rc < 0)
        return rc;
    int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        free(text);
        return -errno;
    }
    rc = fileio_write_all(fd, text, len);
    free(text);
    if (rc == 0 && uid && fchown(fd, uid, gid) < 0)
        rc = -errno;
    close(fd);
    return rc;
}

static const char *const tls_files[] = {"ca-cert.pem", "server-cert.pem", "server-key.pem",
                                        "client-cert.pem", "client-key.pem"};

/* Removes the credentials directory @name of d's dm/. */
static void
tls_dir_remove(struct qdom *d, const char *name)
{
    pthread_mutex_lock(&d->lock);
    _cleanup_free_ char *path = NULL;
    if (asprintf(&path, "%s/%s", d->dm_dir, name) < 0)
        path = NULL;
    pthread_mutex_unlock(&d->lock);
    _cleanup_close_ int fd =
        path ? open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : -1;
    for (size_t i = 0; fd >= 0 && i < sizeof(tls_files) / sizeof(*tls_files); i++)
        unlinkat(fd, tls_files[i], 0);
    if (path)
        rmdir(path);
}

/* A new credentials directory in d's dm/ for @endpoint ("server" or
 * "client"), named into @name, and the QMP object that reads it. */
static int
tls_setup(struct qdom *d, const char *endpoint, const struct xenops_tls *tls, char *name,
          size_t name_len)
{
    static unsigned seq;
    snprintf(name, name_len, "tls-%s-%u-%u", endpoint, (unsigned)getpid(),
             __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED));
    pthread_mutex_lock(&d->lock);
    _cleanup_free_ char *path = NULL;
    if (asprintf(&path, "%s/%s", d->dm_dir, name) < 0)
        path = NULL;
    uid_t uid = d->cfg->uid;
    gid_t gid = d->cfg->gid;
    pthread_mutex_unlock(&d->lock);
    if (!path)
        return -ENOMEM;
    if (mkdir(path, 0700) < 0)
        return -errno;
    _cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int rc = fd < 0 ? -errno : 0;
    char cert[32], key[32];
    snprintf(cert, sizeof(cert), "%s-cert.pem", endpoint);
    snprintf(key, sizeof(key), "%s-key.pem", endpoint);
    if (rc == 0)
        rc = copy_for_qemu(fd, "ca-cert.pem", tls->ca_path, uid, gid);
    if (rc == 0)
        rc = copy_for_qemu(fd, cert, tls->cert_path, uid, gid);
    if (rc == 0)
        rc = copy_for_qemu(fd, key, tls->key_path, uid, gid);
    if (rc == 0 && uid && fchown(fd, uid, gid) < 0)
        rc = -errno;
    if (rc < 0) {
        log_warn_errno(-rc, "xenops.migrate_tls", "vm=%s endpoint=%s", d->uuid, endpoint);
        tls_dir_remove(d, name);
        return rc;
    }
    /* an object of an earlier attempt goes first (an error: there was none) */
    qdom_qmp_fd(d, json_pack("{s:s,s:{s:s}}", "execute", "object-del", "arguments", "id",
                             TLS_OBJECT), -1, NULL);
    /* qemu's working directory is dm/: the name is relative to it */
    /* sanity-check off: the trusted set is the hosts' own self-signed
     * certificates (xapi's pool certificates are too), not a CA; GnuTLS trusts
     * a peer certificate that is itself in the trusted set, and QEMU's check
     * at load would refuse one without the CA basic constraint */
    rc = qdom_qmp_fd(d, json_pack("{s:s,s:{s:s,s:s,s:s,s:s,s:b,s:b}}", "execute", "object-add",
                                  "arguments", "qom-type", "tls-creds-x509", "id", TLS_OBJECT,
                                  "dir", name, "endpoint", endpoint, "verify-peer", 1,
                                  "sanity-check", 0),
                     -1, NULL);
    if (rc < 0)
        tls_dir_remove(d, name);
    return rc;
}

static int
qmp_args(struct qdom *d, const char *command, json_t *args, json_t **ret)
{
    return qdom_qmp_fd(d, json_pack("{s:s,s:o}", "execute", command, "arguments", args), -1, ret);
}

/* "tcp:HOST:PORT" of the listening incoming domain, from query-migrate's
 * socket-address (the port qemu bound when asked for port 0). */
static int
listen_uri(struct qdom *d, char *uri, size_t len)
{
    json_t *r = NULL;
    int rc = qdom_qmp(d, "query-migrate", &r);
    if (rc < 0)
        return rc;
    json_t *addr = json_array_get(json_object_get(r, "socket-address"), 0);
    const char *host = json_string_value(json_object_get(addr, "host"));
    const char *port = json_string_value(json_object_get(addr, "port"));
    rc = host && port ? 0 : -EIO;
    /* an IPv6 address goes in brackets in a URI */
    if (rc == 0)
        snprintf(uri, len, strchr(host, ':') ? "tcp:[%s]:%s" : "tcp:%s:%s", host, port);
    json_decref(r);
    return rc;
}

int
qemu_start_incoming(struct xenops *x, const struct xenops_domain_config *cfg, const char *listen,
                    const struct xenops_tls *tls, char *uri, size_t uri_len)
{
    _cleanup_(xenops_config_freep) struct xenops_domain_config *c = xenops_config_copy(cfg);
    if (!c)
        return -ENOMEM;
    c->start_paused = true;
    int rc = qemu_spawn_incoming(x, c);
    if (rc < 0)
        return rc;
    _cleanup_(qdom_unrefp) struct qdom *d = qdom_get_incoming(x, cfg->uuid);
    if (!d)
        return -EIO; /* it died already */
    char dir[64];
    const char *step = "tls";
    rc = tls_setup(d, "server", tls, dir, sizeof(dir));
    if (rc == 0 && (step = "capabilities"))
        rc = qmp_args(d, "migrate-set-capabilities",
                      json_pack("{s:[{s:s,s:b},{s:s,s:b}]}", "capabilities", "capability",
                                "late-block-activate", "state", 1, "capability", "events",
                                "state", 1),
                      NULL);
    if (rc == 0 && (step = "parameters"))
        rc = qmp_args(d, "migrate-set-parameters", json_pack("{s:s}", "tls-creds", TLS_OBJECT),
                      NULL);
    if (rc == 0 && (step = "listen"))
        rc = qmp_args(d, "migrate-incoming", json_pack("{s:s}", "uri", listen), NULL);
    if (rc == 0 && (step = "address"))
        rc = listen_uri(d, uri, uri_len);
    /* qemu loaded the credentials when the object was made; the listening
     * socket keeps them: the files go now */
    if (step[0] != 't')
        tls_dir_remove(d, dir);
    if (rc < 0) {
        log_warn_errno(-rc, "xenops.incoming_failed", "vm=%s step=%s", cfg->uuid, step);
        qdom_kill(d, XENOPS_EVENT_HALTED);
        return rc == -ESRCH ? -EIO : rc;
    }
    log_info("xenops.incoming", "vm=%s pid=%d uri=%s", cfg->uuid, (int)d->pid, uri);
    return 0;
}

static uint64_t
migration_events(struct qdom *d)
{
    pthread_mutex_lock(&d->lock);
    uint64_t n = d->migration_events;
    pthread_mutex_unlock(&d->lock);
    return n;
}

/* Waits up to @ms for a MIGRATION event after the @seen-th, or a cancel after
 * the @cancels-th. The event only wakes: the state itself is asked (query-*),
 * so a QEMU that sends none is polled every @ms. The guest is paused at the
 * end of a migration until its waiter sees it, so the wait is on its pause. */
static void
migration_event_wait(struct qdom *d, uint64_t seen, uint64_t cancels, unsigned ms)
{
    uint64_t deadline = xenops_now_ms() + ms;
    pthread_mutex_lock(&d->lock);
    while (d->migration_events == seen && d->cancels == cancels && qdom_wait(d, deadline))
        ;
    pthread_mutex_unlock(&d->lock);
}

int
qemu_incoming_wait(struct xenops *x, const char *uuid, unsigned timeout_ms)
{
    _cleanup_(qdom_unrefp) struct qdom *d = qdom_get_incoming(x, uuid);
    if (!d)
        return -ENOENT;
    uint64_t deadline = xenops_now_ms() + timeout_ms;
    for (;;) {
        uint64_t seen = migration_events(d);
        json_t *r = NULL;
        int rc = qdom_qmp(d, "query-status", &r);
        if (rc < 0) /* qemu exits when the stream it loads fails */
            return rc == -ESRCH ? -EIO : rc;
        const char *st = json_string_value(json_object_get(r, "status"));
        bool waiting = st && !strcmp(st, "inmigrate");
        bool received = st && (!strcmp(st, "paused") || !strcmp(st, "prelaunch") ||
                               !strcmp(st, "postmigrate"));
        json_decref(r);
        if (received)
            return 0;
        if (!waiting)
            return -EIO;
        if (xenops_now_ms() >= deadline)
            return -ETIMEDOUT;
        pthread_mutex_lock(&d->lock);
        uint64_t cancels = d->cancels;
        pthread_mutex_unlock(&d->lock);
        migration_event_wait(d, seen, cancels, 50);
    }
}

/* The guest's NICs announce where they are now: QEMU's announce at the
 * end of the incoming migration came while the domain was paused (-S, until
 * the disks' hand-over), and QEMU holds back what a stopped domain's NICs send
 * (net/net.c qemu_can_send_packet) until they send again, so the switches
 * would go on sending the guest's frames to the source's port until its next
 * round or its own first frame (tens to hundreds of ms after `cont`). A
 * round now, as it runs: QEMU's default announce parameters
 * (qapi/net.json announce-self, qapi/migration.json announce-*). */
static void
announce(struct qdom *d)
{
    int rc = qmp_args(d, "announce-self",
                      json_pack("{s:i,s:i,s:i,s:i,s:s}", "initial", 50, "max", 550, "rounds", 5,
                                "step", 100, "id", "vessel-migrated"),
                      NULL);
    if (rc < 0) /* the guest's own traffic will tell the switches, later */
        log_warn_errno(-rc, "xenops.announce_failed", "vm=%s", d->uuid);
}

int
qemu_incoming_commit(struct xenops *x, const char *uuid)
{
    int rc = qdom_incoming_commit(x, uuid);
    _cleanup_(qdom_unrefp) struct qdom *d = rc == 0 ? qdom_get(x, uuid) : NULL;
    if (rc == 0 && !d)
        rc = -ENOENT;
    if (rc == 0)
        rc = qdom_qmp(d, "cont", NULL);
    if (rc == 0)
        announce(d);
    log_info("xenops.incoming_commit", "vm=%s rc=%d", uuid, rc);
    return rc == -ESRCH ? -EIO : rc;
}

int
qemu_incoming_abort(struct xenops *x, const char *uuid)
{
    _cleanup_(qdom_unrefp) struct qdom *d = qdom_get_incoming(x, uuid);
    if (!d)
        return -ENOENT;
    log_info("xenops.incoming_abort", "vm=%s pid=%d", uuid, (int)d->pid);
    return qdom_kill(d, XENOPS_EVENT_HALTED); /* silent (6): no event */
}

static uint64_t
u64_of(json_t *o, const char *key)
{
    json_int_t v = json_integer_value(json_object_get(o, key));
    return v > 0 ? (uint64_t)v : 0;
}

/* Cancels the running migration and waits (5 s) for QEMU to say it ended. */
static void
cancel_and_wait(struct qdom *d)
{
    qdom_qmp(d, "migrate_cancel", NULL);
    uint64_t deadline = xenops_now_ms() + 5000;
    while (xenops_now_ms() < deadline) {
        json_t *r = NULL;
        if (qdom_qmp(d, "query-migrate", &r) < 0)
            return;
        const char *st = json_string_value(json_object_get(r, "status"));
        bool over = !st || !strcmp(st, "cancelled") || !strcmp(st, "failed") ||
                    !strcmp(st, "completed");
        json_decref(r);
        if (over)
            return;
        poll(NULL, 0, 20);
    }
}

/* total-time and downtime of a completed migration. QEMU says "completed"
 * before it has computed them (migration/migration.c: the state changes in
 * migration_completion, the times in migration_calculate_complete after it),
 * answering 0 meanwhile: ask again, for up to a second. */
static void
completed_times(struct qdom *d, json_t *r, struct xenops_migrate_stats *out)
{
    out->total_ms = u64_of(r, "total-time");
    out->downtime_ms = u64_of(r, "downtime");
    for (int i = 0; i < 100 && !out->total_ms; i++) {
        poll(NULL, 0, 10);
        json_t *again = NULL;
        if (qdom_qmp(d, "query-migrate", &again) < 0)
            return;
        out->total_ms = u64_of(again, "total-time");
        out->downtime_ms = u64_of(again, "downtime");
        json_decref(again);
    }
}

int
qemu_migrate_send(struct xenops *x, const char *uuid, const char *dest_uri,
                  const struct xenops_tls *tls, const char *tls_hostname, xenops_migrate_fn *fn,
                  void *opaque, struct xenops_migrate_stats *out)
{
    _cleanup_(qdom_unrefp) struct qdom *d = qdom_get(x, uuid);
    if (!d)
        return -ENOENT;
    json_t *r = NULL;
    int rc = qdom_qmp(d, "query-status", &r);
    bool was_running = rc == 0 && json_is_true(json_object_get(r, "running"));
    json_decref(r);
    if (rc < 0)
        return rc == -ESRCH ? -ENOENT : rc;
    pthread_mutex_lock(&d->lock);
    uint64_t cancels = d->cancels;
    pthread_mutex_unlock(&d->lock);
    char dir[64];
    rc = tls_setup(d, "client", tls, dir, sizeof(dir));
    bool tls_made = rc == 0;
    if (rc == 0) /* MIGRATION events end the waits below at once */
        rc = qmp_args(d, "migrate-set-capabilities",
                      json_pack("{s:[{s:s,s:b}]}", "capabilities", "capability", "events",
                                "state", 1),
                      NULL);
    if (rc == 0) {
        json_t *params = json_pack("{s:s}", "tls-creds", TLS_OBJECT);
        if (params && tls_hostname)
            json_object_set_new(params, "tls-hostname", json_string(tls_hostname));
        rc = qmp_args(d, "migrate-set-parameters", params, NULL);
    }
    /* QEMU's total-time counts from the `migrate` command (migrate_init), so
     * this plus total-time less downtime is when it stopped the guest */
    uint64_t started = xenops_now_ms();
    if (rc == 0)
        rc = qmp_args(d, "migrate", json_pack("{s:s}", "uri", dest_uri), NULL);
    bool completed = false, cancelled = false;
    while (rc == 0 && !completed) {
        pthread_mutex_lock(&d->lock);
        cancelled = d->cancels != cancels;
        pthread_mutex_unlock(&d->lock);
        if (cancelled) {
            cancel_and_wait(d);
            rc = -ECANCELED;
            break;
        }
        r = NULL;
        uint64_t seen = migration_events(d);
        if ((rc = qdom_qmp(d, "query-migrate", &r)) < 0)
            break;
        const char *st = json_string_value(json_object_get(r, "status"));
        json_t *ram = json_object_get(r, "ram");
        struct xenops_migrate_progress p = {
            .status = st ? st : "?",
            .ram_total = u64_of(ram, "total"),
            .ram_transferred = u64_of(ram, "transferred"),
            .ram_remaining = u64_of(ram, "remaining"),
            .passes = u64_of(ram, "dirty-sync-count"),
        };
        if (fn)
            fn(opaque, &p);
        if (st && !strcmp(st, "completed")) {
            completed = true;
            /* its exit, whenever it comes, is no halt of the VM (6) */
            pthread_mutex_lock(&d->lock);
            d->silent = true;
            pthread_mutex_unlock(&d->lock);
            if (out) {
                completed_times(d, r, out);
                out->transferred = p.ram_transferred;
                out->paused_at_ms = started + out->total_ms - out->downtime_ms;
            }
        } else if (!st || !strcmp(st, "failed") || !strcmp(st, "cancelled")) {
            json_t *desc = json_object_get(r, "error-desc");
            log_warn("xenops.migrate_failed", "vm=%s status=%s error=\"%s\"", uuid,
                     st ? st : "?", json_is_string(desc) ? json_string_value(desc) : "");
            rc = -EIO;
        }
        json_decref(r);
        /* the time from QEMU's completion to our seeing it is on the
         * guest's pause (the hand-over starts then): its event ends the
         * wait; without one, progress is asked ten times a second */
        if (rc == 0 && !completed)
            migration_event_wait(d, seen, cancels, 100);
    }
    if (tls_made)
        tls_dir_remove(d, dir);
    if (rc < 0 && was_running) {
        /* QEMU restarts a source whose migration failed; make sure it runs */
        r = NULL;
        if (qdom_qmp(d, "query-status", &r) == 0 && !json_is_true(json_object_get(r, "running")))
            qdom_qmp(d, "cont", NULL);
        json_decref(r);
    }
    log_info("xenops.migrate", "vm=%s uri=%s rc=%d%s", uuid, dest_uri, rc,
             cancelled ? " cancelled" : "");
    return rc == -ESRCH ? -EIO : rc;
}

/* No QMP quit: QEMU's teardown of a paused source would only delay the
 * guest's pause, and the images it could have flushed were flushed and
 * released at the completion (migration/migration.c inactivates them). */
int
qemu_migrate_finish(struct xenops *x, const char *uuid, bool wait)
{
    _cleanup_(qdom_unrefp) struct qdom *d = qdom_get(x, uuid);
    if (!d)
        return -ENOENT;
    pthread_mutex_lock(&d->lock);
    d->silent = true;
    pthread_mutex_unlock(&d->lock);
    int rc = qdom_sigkill(d);
    /* qemu's exit, not our later close, is then the taps' last close: their
     * carrier drops and the bridge forgets the guest's MAC on this host at
     * once, as the destination takes over (xenops/taps.c) */
    if (rc == 0)
        qdom_taps_close(d, NULL);
    if (rc == 0 && wait && !qdom_wait_exit(d, 5000))
        rc = -EIO;
    return rc;
}

int
qemu_migrate_rollback(struct xenops *x, const char *uuid)
{
    _cleanup_(qdom_unrefp) struct qdom *d = qdom_get(x, uuid);
    if (!d)
        return -ENOENT;
    pthread_mutex_lock(&d->lock);
    d->silent = false;
    pthread_mutex_unlock(&d->lock);
    /* cont after a completed migration takes the images back (QEMU's qmp_cont
     * reactivates them in postmigrate) */
    int rc = qdom_qmp(d, "cont", NULL);
    log_info("xenops.migrate_rollback", "vm=%s rc=%d", uuid, rc);
    return rc == -ESRCH ? -ENOENT : rc;
}

int
qemu_disk_geometry(struct xenops *x, const char *uuid, unsigned slot, unsigned *cyls,
                   unsigned *heads, unsigned *secs)
{
    _cleanup_(qdom_unrefp) struct qdom *d = qdom_get(x, uuid);
    if (!d)
        return -ENOENT;
    char node[XENOPS_DISK_ID_LEN], dev[XENOPS_DISK_ID_LEN], path[64];
    xenops_disk_ids(slot, node, dev);
    snprintf(path, sizeof(path), "/machine/peripheral/%s", dev);
    static const char *const props[] = {"cyls", "heads", "secs"};
    unsigned *out[] = {cyls, heads, secs};
    for (size_t i = 0; i < 3; i++) {
        json_t *r = NULL;
        int rc = qmp_args(d, "qom-get", json_pack("{s:s,s:s}", "path", path, "property",
                                                  props[i]), &r);
        if (rc < 0)
            return rc == -ESRCH ? -ENOENT : rc;
        *out[i] = json_is_integer(r) ? (unsigned)json_integer_value(r) : 0;
        json_decref(r);
    }
    return 0;
}
