/* daemon/main.c - vesseld: the toolstack of one host.
 *
 * Start-up order matters: signals are blocked before any thread exists (only
 * the main thread takes SIGTERM/SIGINT, with sigtimedwait); the store is
 * opened and the host's objects made before a listener accepts, so the first
 * client already sees a complete pool; the pid file and the "ready" line come
 * last, once every listener is bound. The main thread then samples metrics
 * every METRICS_PERIOD_S seconds and runs housekeeping (expired sessions, old
 * tasks) once a minute until told to stop.
 *
 * `vesseld passwd USER` sets a local account's password (read from stdin)
 * in DATA/passwd; it works while the daemon runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api/bootstrap.h"
#include "api/console.h"
#include "api/disk_servers.h"
#include "api/vdi_nbd.h"
#include "api/vdi_transfer.h"
#include "api/vm_export.h"
#include "api/vm_import.h"
#include "api/domains.h"
#include "api/guest_metrics.h"
#include "api/guest_kernel.h"
#include "api/metrics.h"
#include "api/pool_conf.h"
#include "api/pool_eject.h"
#include "api/pool_live.h"
#include "api/rrd_store.h"
#include "api/storage_gc.h"
#include "api/storage_recover.h"
#include "api/vm_ops.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/workpool.h"
#include "daemon/data_dir.h"
#include "db/db.h"
#include "db/etcd_http.h"
#include "model/xmodel.h"
#include "rpc/audit.h"
#include "rpc/auth.h"
#include "rpc/dispatch.h"
#include "rpc/events.h"
#include "rpc/peers.h"
#include "rpc/session.h"
#include "http/static_files.h"
#include "rpc/task.h"
#include "xapi_model.h"

#define VESSELD_VERSION "0.1.0"
#define WORKERS_MIN 4 /* worker threads kept while idle */

/* The web UI's files (http/static_files.h), or NULL when there is none. */
static struct static_files *ui_files;
/* The host's and VMs' metrics (api/rrd_store.h), or NULL before start. */
static struct rrd_store *rrd_store;

struct options {
    const char *data_dir;
    const char *listen;
    const char *tls_listen;
    const char *nbd_listen;
    bool nbd_listen_given;
    unsigned nbd_negotiate_s;
    const char *unix_path;
    const char *root_password_file;
    const char *backend;
    const char *tls_cert;
    const char *tls_key;
    const char *audit_log;
    const char *ui_dir;
    int session_idle_s;
    int task_keep_s;
    int metrics_s;
    int storage_gc_s;
    unsigned threads;
    unsigned workers_max;
    int clean_shutdown_timeout_s;
    const char *kernel_dirs[16]; /* --guest-kernel-dir, repeatable */
    size_t n_kernel_dirs;
    long qemu_uid_base, vhd_uid_base; /* -1: the default */
    const char *cgroup_root;
    unsigned max_connections;
    unsigned max_per_address;
    unsigned unauth_timeout_s;
    const char *store;          /* sqlite or etcd */
    const char *etcd_endpoints; /* --etcd-endpoints, comma-separated URLs */
    const char *etcd_prefix;
    const char *etcd_cacert, *etcd_cert, *etcd_key; /* the host's TLS towards etcd */
    bool pool_member;
    const char *address; /* --address: host.address, how other hosts reach this one */
    bool store_given; /* --store: DATA/pool.conf is not read */
    int lease_ttl_s, lease_renew_ms;
};

static void
usage(FILE *out)
{
    fprintf(out,
            "Usage: vesseld [OPTION]...\n"
            "       vesseld passwd USER [--data-dir DIR]   (new password read from stdin)\n"
            "\n"
            "The Vessel toolstack: serves the XenAPI for this host.\n"
            "\n"
            "  --data-dir DIR            state directory (default ./var)\n"
            "  --listen HOST:PORT        plain HTTP listener (default 127.0.0.1:8080; none)\n"
            "  --tls-listen HOST:PORT    HTTPS listener (default 0.0.0.0:8443; none)\n"
            "  --nbd-listen HOST:PORT    NBD server of VDIs, TLS with the HTTPS certificate\n"
            "                            (default 0.0.0.0:10809, xapi-nbd's port; none)\n"
            "  --nbd-negotiate-timeout SECONDS  an NBD client that has not finished its\n"
            "                            handshake by then is dropped (default 10)\n"
            "  --unix PATH               local socket (default DIR/xapi.sock); logins on it\n"
            "                            are the local superuser\n"
            "  --tls-cert FILE           certificate (default DIR/tls/cert.pem, made on first start)\n"
            "  --tls-key FILE            key (default DIR/tls/key.pem, made on first start)\n"
            "  --audit-log FILE          who changed what (default DIR/audit.log, rotated at\n"
            "                            16 MiB, 5 kept; \"none\": no audit log)\n"
            "  --root-password-file FILE root's password on first start (default: generated,\n"
            "                            printed once, saved 0600 in DIR/root-password)\n"
            "  --backend qemu|sim|auto   guest backend (default auto)\n"
            "  --session-idle SECONDS    idle sessions expire (default 86400)\n"
            "  --task-keep SECONDS       finished tasks are kept (default 3900)\n"
            "  --metrics-period SECONDS  VM/host/VIF metrics sampled this often (default 15)\n"
            "  --storage-gc-period SECONDS  the storage collector runs this often, and soon\n"
            "                            after VDI.destroy and SR.scan (default 60)\n"
            "  --threads N               request threads per listener (default: half the\n"
            "                            CPUs, at least 1)\n"
            "  --workers-max N           most threads running Async and long calls at once;\n"
            "                            beyond it they queue, logged once (default 256)\n"
            "  --clean-shutdown-timeout SECONDS  how long clean_shutdown/clean_reboot wait\n"
            "                            for the guest (default 120)\n"
            "  --guest-kernel-dir DIR    guests boot kernels and ramdisks only from here\n"
            "                            (repeatable; default DIR/guest-kernels)\n"
            "  --qemu-uid-base N         each device model runs as uid and gid N + domid\n"
            "                            (default 200000 as root; 0: as vesseld)\n"
            "  --vhd-uid-base N          each disk server runs as N + domid (default 300000\n"
            "                            as root; 0: as vesseld)\n"
            "  --cgroup-root DIR         cgroup v2 mount for per-VM groups (default\n"
            "                            /sys/fs/cgroup; none: no groups)\n"
            "  --max-connections N       connections per TCP/TLS listener (default 10000;\n"
            "                            lowered to fit the descriptor limit)\n"
            "  --max-connections-per-address N  connections one client address may hold,\n"
            "                            TCP and TLS together (default 128; 127.0.0.1 and\n"
            "                            ::1 are not limited per address)\n"
            "  --unauthenticated-timeout SECONDS  a TCP/TLS connection that has made no\n"
            "                            authenticated request is closed after this many\n"
            "                            idle seconds (default 10; afterwards 120)\n"
            "  --store sqlite|etcd       where objects are kept: DIR/vessel.db (default), or\n"
            "                            a pool's etcd cluster (etcd 3.4 or later, v3 API);\n"
            "                            without it, DIR/pool.conf (written by pool.join)\n"
            "                            makes this host a member of that pool\n"
            "  --etcd-endpoints URL,...  the etcd members' client URLs, tried in turn\n"
            "                            (default http://127.0.0.1:2379)\n"
            "  --etcd-prefix PREFIX      the pool's keys in etcd, e.g. /vessel/pool0\n"
            "                            (default /vessel/default)\n"
            "  --etcd-cacert FILE        the CA of the etcd members' certificates (https\n"
            "                            endpoints)\n"
            "  --etcd-cert FILE, --etcd-key FILE  this host's client certificate and key,\n"
            "                            for an etcd started with --client-cert-auth (kept\n"
            "                            across pool.join and eject)\n"
            "  --pool-member             with --store etcd: join the pool already in the\n"
            "                            store as a host of its own (made at its first\n"
            "                            start); each vesseld runs its own VMs, SRs and\n"
            "                            metrics\n"
            "  --address ADDR[:PORT]     host.address: where clients and the pool's other\n"
            "                            hosts reach this host's HTTPS listener (default:\n"
            "                            the primary IPv4 address, port 443)\n"
            "  --lease-ttl S             with --store etcd: the host's lease, after which a\n"
            "                            silent host is not live (default 6)\n"
            "  --lease-renew-ms MS       how often the lease is renewed (default 1000)\n"
            "  --log-level error|warn|info|debug\n"
            "  --ui-dir DIR              the web UI's files, served at / (default: ui/ beside\n"
            "                            the vesseld binary, where the build puts them; none)\n"
            "  --help, --version\n"
            "\n"
            "When every listener accepts it writes DIR/vesseld.pid and logs one line\n"
            "\"vesseld.ready\". SIGTERM or SIGINT stops it cleanly.\n");
}

static char *
path_in(const char *dir, const char *name)
{
    char *p = NULL;
    if (asprintf(&p, "%s/%s", dir, name) < 0)
        return NULL;
    return p;
}

/* Opens the web UI's directory: --ui-dir, or ui/ beside this binary (the
 * build writes build/ui next to build/vesseld). A missing UI is not fatal:
 * the API works without it, and / then answers with a short text page. */
static void
open_ui_dir(const char *opt)
{
    if (opt && strcmp(opt, "none") == 0)
        return;
    char *dir = NULL;
    if (opt) {
        dir = strdup(opt);
    } else {
        char *exe = realpath("/proc/self/exe", NULL);
        char *slash = exe ? strrchr(exe, '/') : NULL;
        if (slash) {
            *slash = '\0';
            dir = path_in(exe, "ui");
        }
        free(exe);
    }
    if (!dir)
        return;
    int rc = static_files_open(dir, &ui_files);
    if (rc < 0)
        log_write_errno(opt ? LOG_WARN : LOG_INFO, -rc, "vesseld.ui", "dir=%s", dir);
    else
        log_info("vesseld.ui", "dir=%s", static_files_root(ui_files));
    free(dir);
}

static int
read_first_line(const char *path, char *out, size_t len)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -errno;
    if (!fgets(out, (int)len, f))
        out[0] = '\0';
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
    return 0;
}

static int
write_secret_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    size_t len = strlen(text);
    int rc = write(fd, text, len) == (ssize_t)len && write(fd, "\n", 1) == 1 ? 0 : -EIO;
    if (fsync(fd) != 0 && rc == 0)
        rc = -errno;
    close(fd);
    return rc;
}

/* root gets a password on first start: the given one, or a generated one
 * shown once. Returns 0 or a negative errno. */
static int
ensure_root(struct auth *auth, const struct options *o)
{
    if (auth_has_user(auth, "root"))
        return 0;
    char pw[512];
    bool generated = false;
    if (o->root_password_file) {
        int rc = read_first_line(o->root_password_file, pw, sizeof(pw));
        if (rc < 0) {
            log_write_errno(LOG_ERROR, -rc, "vesseld.root_password", "file=%s",
                            o->root_password_file);
            return rc;
        }
        if (!pw[0]) {
            log_error("vesseld.root_password", "file=%s reason=empty", o->root_password_file);
            return -EINVAL;
        }
    } else {
        auth_random_password(pw, 21);
        generated = true;
    }
    int rc = auth_set_password(auth, "root", pw);
    if (rc == 0 && generated) {
        char *file = path_in(o->data_dir, "root-password");
        if (file && write_secret_file(file, pw) == 0)
            printf("vesseld: root password (shown once, saved in %s): %s\n", file, pw);
        else
            printf("vesseld: root password (shown once): %s\n", pw);
        fflush(stdout);
        free(file);
    }
    explicit_bzero(pw, sizeof(pw));
    return rc;
}

static int
cmd_passwd(int argc, char **argv)
{
    const char *dir = "./var";
    const char *user = NULL;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--data-dir") && i + 1 < argc)
            dir = argv[++i];
        else if (!user)
            user = argv[i];
    }
    if (!user) {
        fprintf(stderr, "usage: vesseld passwd USER [--data-dir DIR]\n");
        return 2;
    }
    char pw[512];
    if (!fgets(pw, sizeof(pw), stdin)) {
        fprintf(stderr, "vesseld passwd: no password on stdin\n");
        return 1;
    }
    pw[strcspn(pw, "\r\n")] = '\0';
    if (strlen(pw) < 8) {
        fprintf(stderr, "vesseld passwd: the password must have at least 8 characters\n");
        return 1;
    }
    char *file = path_in(dir, "passwd");
    struct auth *auth = NULL;
    int rc = file && fileio_mkdir_p(dir, 0700) == 0 ? auth_open(file, &auth) : -ENOMEM;
    if (rc == 0)
        rc = auth_set_password(auth, user, pw);
    explicit_bzero(pw, sizeof(pw));
    auth_close(auth);
    free(file);
    if (rc < 0) {
        fprintf(stderr, "vesseld passwd: %s\n", strerror(-rc));
        return 1;
    }
    return 0;
}

static int
parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"data-dir", required_argument, NULL, 'd'},
        {"listen", required_argument, NULL, 'l'},
        {"tls-listen", required_argument, NULL, 't'},
        {"nbd-listen", required_argument, NULL, 'n'},
        {"nbd-negotiate-timeout", required_argument, NULL, 'O'},
        {"unix", required_argument, NULL, 'u'},
        {"root-password-file", required_argument, NULL, 'r'},
        {"backend", required_argument, NULL, 'b'},
        {"tls-cert", required_argument, NULL, 'c'},
        {"tls-key", required_argument, NULL, 'k'},
        {"audit-log", required_argument, NULL, 'A'},
        {"session-idle", required_argument, NULL, 'S'},
        {"task-keep", required_argument, NULL, 'K'},
        {"metrics-period", required_argument, NULL, 'M'},
        {"storage-gc-period", required_argument, NULL, 'G'},
        {"threads", required_argument, NULL, 'T'},
        {"workers-max", required_argument, NULL, 'W'},
        {"clean-shutdown-timeout", required_argument, NULL, 'C'},
        {"guest-kernel-dir", required_argument, NULL, 'g'},
        {"qemu-uid-base", required_argument, NULL, 'Q'},
        {"vhd-uid-base", required_argument, NULL, 'D'},
        {"cgroup-root", required_argument, NULL, 'R'},
        {"max-connections", required_argument, NULL, 'N'},
        {"max-connections-per-address", required_argument, NULL, 'P'},
        {"unauthenticated-timeout", required_argument, NULL, 'U'},
        {"log-level", required_argument, NULL, 'L'},
        {"ui-dir", required_argument, NULL, 'w'},
        {"store", required_argument, NULL, 's'},
        {"etcd-endpoints", required_argument, NULL, 'e'},
        {"etcd-prefix", required_argument, NULL, 'p'},
        {"pool-member", no_argument, NULL, 'm'},
        {"address", required_argument, NULL, 'a'},
        {"lease-ttl", required_argument, NULL, 1002},
        {"lease-renew-ms", required_argument, NULL, 1003},
        {"etcd-cacert", required_argument, NULL, 1004},
        {"etcd-cert", required_argument, NULL, 1005},
        {"etcd-key", required_argument, NULL, 1006},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'd': o->data_dir = optarg; break;
        case 'l': o->listen = optarg; break;
        case 't': o->tls_listen = optarg; break;
        case 'n':
            o->nbd_listen = optarg;
            o->nbd_listen_given = true;
            break;
        case 'O': {
            long v = atol(optarg);
            if (v < 1 || v > 3600) {
                fprintf(stderr, "vesseld: --nbd-negotiate-timeout takes 1 to 3600 seconds\n");
                return 2;
            }
            o->nbd_negotiate_s = (unsigned)v;
            break;
        }
        case 'u': o->unix_path = optarg; break;
        case 'A': o->audit_log = optarg; break;
        case 'w': o->ui_dir = optarg; break;
        case 'r': o->root_password_file = optarg; break;
        case 'b':
            if (strcmp(optarg, "qemu") && strcmp(optarg, "sim") && strcmp(optarg, "auto")) {
                fprintf(stderr, "vesseld: --backend takes qemu, sim or auto\n");
                return 2;
            }
            o->backend = optarg;
            break;
        case 'c': o->tls_cert = optarg; break;
        case 'k': o->tls_key = optarg; break;
        case 'S': o->session_idle_s = atoi(optarg); break;
        case 'K': o->task_keep_s = atoi(optarg); break;
        case 'M':
            o->metrics_s = atoi(optarg);
            if (o->metrics_s < 1 || o->metrics_s > 3600) {
                fprintf(stderr, "vesseld: --metrics-period takes 1 to 3600 seconds\n");
                return 2;
            }
            break;
        case 'G':
            o->storage_gc_s = atoi(optarg);
            if (o->storage_gc_s < 1 || o->storage_gc_s > 86400) {
                fprintf(stderr, "vesseld: --storage-gc-period takes 1 to 86400 seconds\n");
                return 2;
            }
            break;
        case 'T': o->threads = (unsigned)atoi(optarg); break;
        case 'W':
            o->workers_max = (unsigned)atoi(optarg);
            if (o->workers_max < WORKERS_MIN || o->workers_max > 65536) {
                fprintf(stderr, "vesseld: --workers-max takes %d to 65536\n", WORKERS_MIN);
                return 2;
            }
            break;
        case 'C':
            o->clean_shutdown_timeout_s = atoi(optarg);
            if (o->clean_shutdown_timeout_s < 1 || o->clean_shutdown_timeout_s > 86400) {
                fprintf(stderr, "vesseld: --clean-shutdown-timeout takes 1 to 86400 seconds\n");
                return 2;
            }
            break;
        case 'g':
            if (o->n_kernel_dirs == sizeof(o->kernel_dirs) / sizeof(o->kernel_dirs[0])) {
                fprintf(stderr, "vesseld: at most 16 --guest-kernel-dir\n");
                return 2;
            }
            o->kernel_dirs[o->n_kernel_dirs++] = optarg;
            break;
        case 'Q':
        case 'D': {
            char *end;
            long v = strtol(optarg, &end, 10);
            /* the range must stay clear of root and of uid_t's top (-1 means "unchanged") */
            if (*end || v < 0 || (v > 0 && v < 1000) || v > 2000000000L) {
                fprintf(stderr, "vesseld: --%s takes 0 or 1000 to 2000000000\n",
                        c == 'Q' ? "qemu-uid-base" : "vhd-uid-base");
                return 2;
            }
            *(c == 'Q' ? &o->qemu_uid_base : &o->vhd_uid_base) = v;
            break;
        }
        case 'R': o->cgroup_root = optarg; break;
        case 'N':
        case 'P':
        case 'U': {
            long v = atol(optarg);
            if (v < 1 || v > 1000000) {
                fprintf(stderr, "vesseld: --%s takes 1 to 1000000\n",
                        c == 'N' ? "max-connections"
                        : c == 'P' ? "max-connections-per-address"
                                   : "unauthenticated-timeout");
                return 2;
            }
            *(c == 'N' ? &o->max_connections
              : c == 'P' ? &o->max_per_address
                         : &o->unauth_timeout_s) = (unsigned)v;
            break;
        }
        case 'L': {
            int level = log_parse_level(optarg);
            if (level < 0) {
                fprintf(stderr, "vesseld: --log-level takes error, warn, info or debug\n");
                return 2;
            }
            log_set_level((enum log_level)level);
            break;
        }
        case 's':
            o->store_given = true;
            if (strcmp(optarg, "sqlite") && strcmp(optarg, "etcd")) {
                fprintf(stderr, "vesseld: --store takes sqlite or etcd\n");
                return 2;
            }
            o->store = optarg;
            break;
        case 'e':
            if (strchr(optarg, ';')) {
                fprintf(stderr, "vesseld: --etcd-endpoints takes URLs separated by commas\n");
                return 2;
            }
            o->etcd_endpoints = optarg;
            break;
        case 'p':
            /* ';' separates the endpoints from the prefix in the store's spec (db/store.h) */
            if (optarg[0] != '/' || strpbrk(optarg, ";@")) {
                fprintf(stderr, "vesseld: --etcd-prefix starts with / and has no ; or @\n");
                return 2;
            }
            o->etcd_prefix = optarg;
            break;
        case 'm': o->pool_member = true; break;
        case 'a': o->address = optarg; break;
        case 1002:
        case 1003: {
            int v = atoi(optarg);
            if (c == 1002 ? v < 2 || v > 3600 : v < 100 || v > 60000) {
                fprintf(stderr, "vesseld: %s\n", c == 1002 ? "--lease-ttl takes 2 to 3600 s"
                                                          : "--lease-renew-ms takes 100 to 60000");
                return 2;
            }
            *(c == 1002 ? &o->lease_ttl_s : &o->lease_renew_ms) = v;
            break;
        }
        case 1004: o->etcd_cacert = optarg; break;
        case 1005: o->etcd_cert = optarg; break;
        case 1006: o->etcd_key = optarg; break;
        case 'h': usage(stdout); return 1;
        case 'V': printf("vesseld %s\n", VESSELD_VERSION); return 1;
        default: usage(stderr); return 2;
        }
    }
    if (strcmp(o->store, "etcd") && (o->pool_member || o->etcd_endpoints || o->etcd_prefix)) {
        fprintf(stderr, "vesseld: --etcd-endpoints, --etcd-prefix and --pool-member need "
                        "--store etcd\n");
        return 2;
    }
    if (!o->lease_ttl_s)
        o->lease_ttl_s = POOL_LIVE_TTL_S;
    if (!o->lease_renew_ms) /* at least three renewals before fencing starts */
        o->lease_renew_ms = o->lease_ttl_s * 1000 / 4 < POOL_LIVE_RENEW_MS ? o->lease_ttl_s * 1000 / 4
                                                                           : POOL_LIVE_RENEW_MS;
    if (o->lease_renew_ms * 3 > o->lease_ttl_s * 1000) {
        /* fencing starts at TTL - TTL/3 (api/pool_live.c): renewals must come well before */
        fprintf(stderr, "vesseld: --lease-renew-ms must be at most a third of --lease-ttl\n");
        return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "vesseld: unexpected argument %s\n", argv[optind]);
        return 2;
    }
    return 0;
}

/* The HTTP routes: console tunnels, the UI's files, then the RPC endpoints. */
static void
vesseld_http(void *opaque, struct http_request *req)
{
    if (console_http_handle(opaque, req))
        return;
    if (rrd_store_http_handle(rrd_store, req))
        return;
    if (static_files_handle(ui_files, req))
        return;
    rpc_handle_http(opaque, req);
}

/* The worker pool at its cap: jobs now wait for each other (--workers-max). */
static void
workers_saturated(void *opaque, const struct workpool_stats *st)
{
    (void)opaque;
    log_warn("vesseld.workers_saturated", "threads=%u queued=%zu times=%lu", st->threads,
             st->queued, st->saturations);
}

/* Removes --store, --etcd-endpoints, --etcd-prefix (with their values) and
 * --pool-member from @argv, in place. */
static void
drop_store_args(char **argv)
{
    static const char *const with_value[] = {"--store", "--etcd-endpoints", "--etcd-prefix"};
    int out = 1;
    for (int i = 1; argv[i]; i++) {
        bool drop = strcmp(argv[i], "--pool-member") == 0, skip_next = false;
        for (size_t k = 0; k < 3 && !drop; k++) {
            size_t n = strlen(with_value[k]);
            if (strncmp(argv[i], with_value[k], n) == 0 && (argv[i][n] == '\0' || argv[i][n] == '='))
                drop = true, skip_next = argv[i][n] == '\0';
        }
        if (!drop)
            argv[out++] = argv[i];
        else if (skip_next && argv[i + 1])
            i++;
    }
    argv[out] = NULL;
}

static void
housekeeping(struct server *srv)
{
    unsigned s = session_gc(srv), t = task_gc(srv);
    if (s || t)
        log_info("vesseld.gc", "sessions=%u tasks=%u", s, t);
}

int
main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "passwd") == 0)
        return cmd_passwd(argc, argv);
    struct options o = {
        .data_dir = "./var",
        .listen = "127.0.0.1:8080",
        .tls_listen = "0.0.0.0:8443",
        .nbd_listen = "0.0.0.0:10809",
        .nbd_negotiate_s = 10,
        .backend = "auto",
        .session_idle_s = 86400,
        .task_keep_s = 3900,
        .metrics_s = METRICS_PERIOD_S,
        .storage_gc_s = 60,
        .workers_max = 256,
        .clean_shutdown_timeout_s = 120,
        .qemu_uid_base = -1,
        .vhd_uid_base = -1,
        .cgroup_root = "/sys/fs/cgroup",
        .store = "sqlite",
    };
    int rc = parse_options(argc, argv, &o);
    if (rc)
        return rc == 1 ? 0 : rc;

    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* Everything vesseld creates is its own: the store holds bearer tokens. */
    umask(077);
    if ((rc = fileio_mkdir_p(o.data_dir, 0700)) < 0) {
        log_write_errno(LOG_ERROR, -rc, "vesseld.data_dir", "dir=%s", o.data_dir);
        return 1;
    }
    if ((rc = data_dir_make_private(o.data_dir)) < 0) {
        log_write_errno(LOG_ERROR, -rc, "vesseld.data_dir",
                        "dir=%s reason=\"must be a directory owned by this user, mode 0700\"",
                        o.data_dir);
        return 1;
    }
    /* Paths recorded in the store (SR directories, sockets) must not depend
     * on the directory vesseld was started from. */
    char *data_dir_abs = realpath(o.data_dir, NULL);
    if (!data_dir_abs) {
        log_write_errno(LOG_ERROR, errno, "vesseld.data_dir", "dir=%s", o.data_dir);
        return 1;
    }
    o.data_dir = data_dir_abs;
    /* A pool member's store is the pool's (DATA/pool.conf, written by
     * pool.join); an explicit --store wins. */
    struct pool_conf pc = {0};
    if (!o.store_given) {
        char pwhy[256];
        int prc = pool_conf_read(o.data_dir, &pc, pwhy, sizeof(pwhy));
        if (prc == 0) {
            o.store = "etcd";
            o.etcd_endpoints = pc.endpoints;
            o.etcd_prefix = pc.prefix;
            o.pool_member = true;
        } else if (prc != -ENOENT) {
            log_error("vesseld.pool_conf", "dir=%s reason=\"%s\"", o.data_dir, pwhy);
            return 1;
        }
    }
    char tls_why[300];
    if ((o.etcd_cacert || o.etcd_cert || o.etcd_key) &&
        etcd_http_set_tls(o.etcd_cacert, o.etcd_cert, o.etcd_key, tls_why, sizeof(tls_why)) < 0) {
        log_error("vesseld.etcd_tls", "reason=\"%s\"", tls_why);
        pool_conf_clear(&pc);
        free(data_dir_abs);
        return 1;
    }
    char *db_path = NULL;
    if (strcmp(o.store, "etcd") == 0) {
        if (asprintf(&db_path, "etcd:%s;%s",
                     o.etcd_endpoints ? o.etcd_endpoints : "http://127.0.0.1:2379",
                     o.etcd_prefix ? o.etcd_prefix : "/vessel/default") < 0)
            db_path = NULL;
    } else {
        db_path = path_in(o.data_dir, "vessel.db");
    }
    char *passwd_path = path_in(o.data_dir, "passwd");
    char *tls_dir = path_in(o.data_dir, "tls");
    char *cert = o.tls_cert ? strdup(o.tls_cert) : path_in(o.data_dir, "tls/cert.pem");
    char *key = o.tls_key ? strdup(o.tls_key) : path_in(o.data_dir, "tls/key.pem");
    char *unix_path = o.unix_path ? strdup(o.unix_path) : path_in(o.data_dir, "xapi.sock");
    char *pid_path = path_in(o.data_dir, "vesseld.pid");
    char *audit_path = o.audit_log ? strdup(o.audit_log) : path_in(o.data_dir, "audit.log");
    if (!audit_path || !db_path || !passwd_path || !tls_dir || !cert || !key || !unix_path || !pid_path) {
        log_error("vesseld.start", "reason=out-of-memory");
        return 1;
    }
    fileio_mkdir_p(tls_dir, 0700);

    /* helpers get ids of their own only when we can hand them out */
    bool root = geteuid() == 0;
    struct server srv = {.data_dir = o.data_dir,
                         .store_spec = db_path,
                         .session_idle_s = o.session_idle_s,
                         .task_keep_s = o.task_keep_s,
                         .clean_shutdown_timeout_s = o.clean_shutdown_timeout_s,
                         .qemu_uid_base = (unsigned)(o.qemu_uid_base >= 0 ? o.qemu_uid_base
                                                     : root ? 200000 : 0),
                         .vhd_uid_base = (unsigned)(o.vhd_uid_base >= 0 ? o.vhd_uid_base
                                                    : root ? 300000 : 0),
                         .cgroup_root = strcmp(o.cgroup_root, "none") ? o.cgroup_root : NULL,
                         .tls_cert_path = cert,
                         .tls_key_path = key};
    if (srv.qemu_uid_base && srv.vhd_uid_base &&
        (srv.qemu_uid_base > srv.vhd_uid_base ? srv.qemu_uid_base - srv.vhd_uid_base
                                              : srv.vhd_uid_base - srv.qemu_uid_base) < 65536) {
        /* each range is base + domid mod 65536 (api/domains.c) */
        log_error("vesseld.uid_base", "qemu=%u vhd=%u reason=\"the ranges overlap\"",
                  srv.qemu_uid_base, srv.vhd_uid_base);
        return 1;
    }
    const char *bad_dir = NULL;
    if ((rc = guest_kernel_dirs_init(&srv, o.kernel_dirs, o.n_kernel_dirs, &bad_dir)) < 0) {
        log_write_errno(LOG_ERROR, -rc, "vesseld.guest_kernel_dir", "dir=%s", bad_dir);
        return 1;
    }
    char why[512] = "";
    struct xerr *err = NULL;
    struct http_server *http = NULL;
    int status = 1;
    vm_ops_register();
    if (xmodel_init() < 0) {
        log_error("vesseld.start", "reason=data-model-defaults");
        goto out;
    }
    if ((rc = db_open(db_path, &srv.db, why, sizeof(why))) < 0) {
        log_error("vesseld.db", "path=%s reason=\"%s\"", db_path, why);
        goto out;
    }
    /* Jobs may wait minutes (a guest's clean shutdown): the pool grows so that
     * they never delay another job's start (common/workpool.h). */
    struct workpool_config wc = {.min_threads = WORKERS_MIN, .max_threads = o.workers_max,
                                 .idle_ms = 10000, .on_saturated = workers_saturated};
    if (tasks_new(&srv.tasks) < 0 || workpool_start(&wc, &srv.workers) < 0 ||
        auth_open(passwd_path, &srv.auth) < 0) {
        log_error("vesseld.start", "reason=out-of-memory");
        goto out;
    }
    if (strcmp(audit_path, "none") != 0 &&
        (rc = audit_open(audit_path, AUDIT_MAX_BYTES, &srv.audit)) < 0) {
        log_write_errno(LOG_ERROR, -rc, "vesseld.audit_log", "path=%s", audit_path);
        goto out;
    }
    if (ensure_root(srv.auth, &o) < 0)
        goto out;
    /* calls to the pool's other hosts, with the pool secret (rpc/peers.h) */
    if (peers_new(&srv.peers) < 0) {
        log_error("vesseld.start", "reason=out-of-memory");
        goto out;
    }
    if (!bootstrap_run(&srv, o.pool_member, &err)) {
        char d[512];
        log_error("vesseld.bootstrap", "error=\"%s\"", xerr_describe(err, d, sizeof(d)));
        goto out;
    }
    if (o.address && !db_set_field(srv.db, &xapi_class_host, srv.host_ref,
                                   xclass_field(&xapi_class_host, "address"), &o.address, &err)) {
        char d[512];
        log_error("vesseld.address", "error=\"%s\"", xerr_describe(err, d, sizeof(d)));
        goto out;
    }
    if (!o.pool_member && strcmp(o.store, "etcd") == 0) {
        /* the pool's first host makes the pool secret; members get it from
         * pool.join (pool.initial_auth) */
        char *secret = NULL;
        if ((rc = pool_secret_ensure(o.data_dir, &secret)) < 0)
            log_warn_errno(-rc, "vesseld.ptoken", "dir=%s", o.data_dir);
        if (secret)
            explicit_bzero(secret, strlen(secret));
        free(secret);
    }
    if ((rc = domains_open(&srv, o.backend, vm_lifecycle_on_domain_event, &srv.domains, why,
                           sizeof(why))) < 0) {
        log_error("vesseld.backend", "backend=%s reason=\"%s\"", o.backend, why);
        goto out;
    }
    vm_lifecycle_reconcile(&srv); /* this host's VMs and SRs only */
    storage_recover(&srv);        /* before any call can start a storage operation */
    if (events_start(&srv, &srv.events) < 0) {
        log_error("vesseld.start", "reason=events-thread");
        goto out;
    }
    db_set_commit_hook(srv.db, events_on_commit, srv.events);

    if ((rc = rrd_store_start(&srv, &rrd_store)) < 0) {
        log_write_errno(LOG_ERROR, -rc, "vesseld.rrd", "dir=%s/rrd", o.data_dir);
        goto out;
    }
    srv.rrd = rrd_store;
    open_ui_dir(o.ui_dir);
    char hostname[256] = "localhost";
    gethostname(hostname, sizeof(hostname) - 1);
    struct http_config hc = {
        .unix_path = unix_path,
        .listen = o.listen,
        .tls_listen = o.tls_listen,
        .tls_key_pem_path = key,
        .tls_cert_pem_path = cert,
        .tls_hostname = hostname,
        .n_threads = o.threads,
        .max_connections = o.max_connections,
        .max_per_address = o.max_per_address,
        .unauth_timeout_s = o.unauth_timeout_s,
        .handler = vesseld_http,
        .opaque = &srv,
    };
    if ((rc = http_server_start(&hc, &http, why, sizeof(why))) < 0) {
        log_error("vesseld.listen", "reason=\"%s\"", why);
        goto out;
    }
    struct pool_live_config lc = {
        .etcd_spec = strncmp(db_path, "etcd:", 5) == 0 ? db_path + 5 : NULL,
        .ttl_s = o.lease_ttl_s,
        .renew_ms = o.lease_renew_ms,
    };
    if ((rc = pool_live_start(&srv, &lc, why, sizeof(why))) < 0) {
        log_error("vesseld.lease", "reason=\"%s\"", why);
        goto out;
    }
    disk_servers_claim_writers(&srv); /* one writer per VDI in the pool, again */
    if (!vdi_transfer_register(&srv, http) || !vm_export_register(&srv, http) ||
        !vm_import_register(&srv, http))
        goto out;
    if (strcmp(o.nbd_listen, "none") != 0) {
        struct vdi_nbd_config nc = {.listen = o.nbd_listen, .cert_path = cert, .key_path = key,
                                    .hostname = hostname, .negotiate_s = o.nbd_negotiate_s};
        if ((rc = vdi_nbd_start(&srv, &nc, why, sizeof(why))) < 0) {
            /* the default port may be another vesseld's on a shared test machine: only a
             * listener asked for by name is worth refusing to start */
            if (o.nbd_listen_given) {
                log_error("vesseld.nbd_listen", "reason=\"%s\"", why);
                goto out;
            }
            log_warn("vesseld.nbd_listen", "reason=\"%s\" nbd=off", why);
        }
    }
    char pid[32];
    snprintf(pid, sizeof(pid), "%ld", (long)getpid());
    int fd = open(pid_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
        ssize_t ignored = write(fd, pid, strlen(pid));
        (void)ignored;
        close(fd);
    }
    log_write(LOG_INFO, "vesseld.ready",
              "http=%s http_port=%d https=%s https_port=%d unix=%s data=%s backend=%s "
              "nbd_port=%d", o.listen,
              http_server_port(http), o.tls_listen, http_server_tls_port(http), unix_path,
              o.data_dir, domains_backend_name(srv.domains), vdi_nbd_port());

    storage_gc_start(&srv, (unsigned)o.storage_gc_s);
    if ((rc = pool_eject_watch_start(&srv)) < 0)
        log_warn_errno(-rc, "vesseld.pool_eject", "pool.eject of this host will time out");
    if ((rc = guest_metrics_start(&srv, 10)) < 0)
        log_warn_errno(-rc, "vesseld.guest_metrics", "no guest metrics: the thread did not start");

    /* Metrics every --metrics-period seconds, garbage collection every minute. */
    unsigned gc_every = (unsigned)((60 + o.metrics_s - 1) / o.metrics_s);
    for (unsigned ticks = 1;; ticks++) {
        struct timespec tick = {o.metrics_s, 0};
        int sig = sigtimedwait(&stop_signals, NULL, &tick);
        if (sig == SIGTERM || sig == SIGINT) {
            log_info("vesseld.stop", "signal=%s", sig == SIGTERM ? "TERM" : "INT");
            break;
        }
        metrics_update(&srv);
        if (ticks % gc_every == 0)
            housekeeping(&srv);
    }
    status = 0;
out:
    srv.stopping = true;
    pool_eject_watch_stop(&srv);
    storage_gc_stop(&srv);
    guest_metrics_stop(&srv);
    events_stop(srv.events); /* answers long polls while their connections live */
    if (srv.db) /* the store's follower thread commits until db_close */
        db_set_commit_hook(srv.db, NULL, NULL);
    vdi_nbd_stop();
    http_server_stop(http);
    pool_live_stop(&srv); /* revokes the lease: this host is not live any more */
    srv.rrd = NULL;
    rrd_store_stop(rrd_store); /* saves the rrds in DATA/rrd/ */
    static_files_free(ui_files);
    events_free(srv.events);
    workpool_stop(srv.workers);
    disk_servers_settle(); /* a hard shutdown's servers, before srv goes */
    domains_close(srv.domains);
    tasks_free(srv.tasks);
    peers_free(srv.peers);
    auth_close(srv.auth);
    audit_close(srv.audit);
    db_close(srv.db);
    xerr_free(err);
    if (status == 0)
        unlink(pid_path);
    free(srv.pool_ref);
    free(srv.host_ref);
    free(db_path);
    pool_conf_clear(&pc);
    free(passwd_path);
    free(tls_dir);
    free(cert);
    free(key);
    free(unix_path);
    free(pid_path);
    free(audit_path);
    free(data_dir_abs);
    guest_kernel_dirs_free(&srv);
    if (status == 0 && srv.restart_requested) {
        /* host.restart_agent: the same program and options, a fresh process
         * image (guests and their disk servers are found again at start) */
        if (srv.restart_store_from_data_dir)
            drop_store_args(argv);
        log_info("vesseld.restart", "exec=/proc/self/exe");
        execv("/proc/self/exe", argv);
        log_error("vesseld.restart", "exec failed: %s", strerror(errno));
        return 1;
    }
    return status;
}
