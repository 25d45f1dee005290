/* tools/vhd/serve.c - `vhd serve`: one VHD chain exported over NBD on a unix socket, with an
 * optional control socket to pause the disk and swap its chain (live snapshots, GC).
 *
 * One process per disk (the tapdisk of this platform). Order of events: open the chain
 * (leaf read-write unless --read-only, parents read-only), bind the NBD socket and, with
 * --control, the control socket, with --user become that uid and gid (no groups), block
 * SIGTERM and SIGINT and start the thread that waits for them, then enter the sandbox (sandbox.c: no_new_privs, landlock, seccomp) and only
 * then accept clients. After that no file can be opened by path: a new chain can only
 * arrive as descriptors over the control socket (vhd_chain_open_fds()).
 *
 * Concurrency. Each NBD client gets --threads threads (default SERVE_WORKERS; nbd.h:
 * they take turns reading requests, run READs and BLOCK_STATUS in parallel, writes in
 * order), so one connection with a deep queue (QEMU, fio) is served in parallel;
 * --threads 1 serves requests one at a time with batched replies (less CPU per request). The chain sits behind chain_lock, a
 * writer-preferring rwlock: read and block_status share it (vhd/vhd.h allows concurrent
 * readers of a chain), write, zero and flush take it exclusively, and `pause` takes it
 * exclusively and keeps it until resume/reload/disconnect, so a pause waits for every
 * request in flight and blocks new ones. ctl_mutex orders the control thread against the
 * signal thread: `paused` and the `chain` pointer change only under it (and, for the
 * pointer, with chain_lock held exclusively). Lock order is ctl_mutex then chain_lock, with
 * one exception: the control thread takes ctl_mutex while it holds chain_lock for a pause.
 * That cannot deadlock: every other thread that takes both (the signal thread, main at
 * exit) reads `paused` under ctl_mutex and, when set, never waits for chain_lock (TSan's
 * lock-order-inversion report on these two locks is this case).
 * On SIGTERM/SIGINT the signal thread takes ctl_mutex and (unless paused, when the control
 * thread already holds it) chain_lock exclusively: no request is half-done; it flushes and
 * closes the chain (trailing footer written, fdatasync) and exits 0.
 *
 * Control protocol (--control PATH, a unix SOCK_STREAM socket; one connection is served at a
 * time, others wait in the backlog). The client sends one command line ending in "\n" (at
 * most 127 bytes with the newline) and reads the one-line reply before sending the next
 * command: descriptors are bound to the first command line completed after they arrive.
 * Replies are "ok[ DETAILS]\n" or "error ERRNAME SENTENCE\n" (ERRNAME as EINVAL, EBUSY...).
 *   pause        flush and freeze: waits for in-flight NBD requests, blocks new ones, flushes
 *                the chain (footer, fdatasync); "ok". While paused: "error EBUSY already
 *                paused". The pause ends with resume, a successful reload, or when this
 *                control connection closes (a dead client never leaves a guest frozen).
 *   reload N     with exactly N (1..64) descriptors in the same sendmsg (SCM_RIGHTS): the
 *                new chain, leaf first, each the parent of the one before; only while
 *                paused. Opened with vhd_chain_open_fds() (leaf read-write unless
 *                --read-only); its virtual size must equal the export's. On success the new
 *                chain replaces the old one (closed; flush errors go to stderr), the pause
 *                ends, "ok". On failure the old chain stays, still paused, "error ...".
 *                The received descriptors are closed in every case (the chain keeps dups).
 *   resume       end the pause; "ok" ("error EINVAL not paused" otherwise).
 *   info         "ok depth=N leaf=UUID size=BYTES paused=0|1"; in standby
 *                "ok depth=0 leaf= size=BYTES paused=1 standby=1".
 *   activate N   (with N descriptors, as reload) only in --standby: the server started
 *                without its chain (the size from the image's footer copy alone: another
 *                process, a live migration's source, may still be writing the image) and
 *                answers the NBD handshake but holds every request, as a pause does, until
 *                this hands it the chain; the standby outlives control connections, and
 *                resume and reload refuse it. "ok", or "error ..." and still in standby.
 *   stats        "ok rd_reqs=N rd_bytes=N rd_usec=N wr_reqs=N wr_bytes=N wr_usec=N inflight=N":
 *                counters since the server started (reads; writes including write-zeroes;
 *                the microseconds spent serving each kind, a request's latency summed) and
 *                the requests being served now. vesseld turns them into the VBD's I/O
 *                rates and latencies (xapi's vbd_<device>_* data sources).
 * Anything else, an over-long line (the connection is then closed), descriptors with any
 * other command or a count that differs from N: "error EINVAL ...", descriptors closed.
 * Facts: the NBD protocol (NetworkBlockDevice/nbd doc/proto.md), 6.6; STYLE.md section 10; unix(7) SCM_RIGHTS.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <stdint.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "nbd/nbd.h"
#include "tools/vhd/sandbox.h"
#include "tools/vhd/vhd_tool.h"

/* Threads per NBD connection by default (nbd.h, --threads): READ and BLOCK_STATUS of one
 * connection run on up to this many at once (chain_lock shared). */
#define SERVE_WORKERS 8
#define CONTROL_LINE_MAX 128
#define CONTROL_MAX_FDS 64

static pthread_rwlock_t chain_lock;
static pthread_mutex_t ctl_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct vhd_chain *chain;     /* swapped only with ctl_mutex and chain_lock (excl.) */
static bool paused;                 /* chain_lock held exclusively by the control thread */
static bool standby;                /* --standby until "activate": chain NULL, paused, and a
                                     * closed control connection does not end it */
static sem_t standby_held;          /* posted once the control thread holds the standby */
static bool read_only;

/*==== NBD backend ======================================================================*/

/* I/O counters for "stats": relaxed atomics, read whole by the control thread. */
static atomic_ullong rd_reqs, rd_bytes, rd_usec, wr_reqs, wr_bytes, wr_usec;
static atomic_uint inflight;

static uint64_t
usec_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t
io_begin(void)
{
    atomic_fetch_add_explicit(&inflight, 1, memory_order_relaxed);
    return usec_now();
}

static void
io_end(bool write, uint64_t t0, uint64_t len)
{
    uint64_t us = usec_now() - t0;
    atomic_fetch_add_explicit(write ? &wr_reqs : &rd_reqs, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(write ? &wr_bytes : &rd_bytes, len, memory_order_relaxed);
    atomic_fetch_add_explicit(write ? &wr_usec : &rd_usec, us, memory_order_relaxed);
    atomic_fetch_sub_explicit(&inflight, 1, memory_order_relaxed);
}

static int
be_read(void *o, void *buf, uint64_t off, uint32_t len)
{
    uint64_t t0 = io_begin();
    pthread_rwlock_rdlock(&chain_lock);
    int rc = vhd_chain_read(chain, buf, off, len);
    pthread_rwlock_unlock(&chain_lock);
    io_end(false, t0, len);
    return rc;
}

static int
be_write(void *o, const void *buf, uint64_t off, uint32_t len, bool fua)
{
    uint64_t t0 = io_begin();
    pthread_rwlock_wrlock(&chain_lock);
    int rc = vhd_chain_write(chain, buf, off, len, fua);
    pthread_rwlock_unlock(&chain_lock);
    io_end(true, t0, len);
    return rc;
}

static int
be_flush(void *o)
{
    pthread_rwlock_wrlock(&chain_lock);
    int rc = vhd_chain_flush(chain);
    pthread_rwlock_unlock(&chain_lock);
    return rc;
}

static int
be_zero(void *o, uint64_t off, uint32_t len, bool fua)
{
    uint64_t t0 = io_begin();
    pthread_rwlock_wrlock(&chain_lock);
    int rc = vhd_chain_zero(chain, off, len, fua);
    pthread_rwlock_unlock(&chain_lock);
    io_end(true, t0, len);
    return rc;
}

static int
be_block_status(void *o, uint64_t off, uint64_t len, uint64_t *run, bool *allocated)
{
    pthread_rwlock_rdlock(&chain_lock);
    int rc = vhd_chain_block_status(chain, off, len, run, allocated);
    pthread_rwlock_unlock(&chain_lock);
    return rc;
}

/* TRIM is advisory and a no-op (spec 3.3: never clear bits in a differencing leaf). */
static const struct nbd_backend_ops vhd_ops = {
    .read = be_read,
    .write = be_write,
    .flush = be_flush,
    .zero = be_zero,
    .block_status = be_block_status,
};

static struct nbd_export export;

static void *
client_main(void *arg)
{
    int fd = (int)(intptr_t)arg;
    nbd_serve_fd(fd, &export);     /* a client's protocol error ends only its connection */
    close(fd);
    return NULL;
}

/*==== control socket ===================================================================*/

struct ctl_conn {
    int fd;
    char line[CONTROL_LINE_MAX];
    size_t len;                     /* bytes in line[] */
    int fds[CONTROL_MAX_FDS];
    unsigned n_fds;
    bool fds_overflow;              /* more descriptors than fit arrived: command fails */
};

static void
ctl_close_fds(struct ctl_conn *cc)
{
    for (unsigned i = 0; i < cc->n_fds; i++)
        close(cc->fds[i]);
    cc->n_fds = 0;
    cc->fds_overflow = false;
}

/* Reply one line. The command's descriptors are closed first: once the client has the
 * reply, the server holds none of them (the chain keeps its own dups). */
static int
ctl_reply(struct ctl_conn *cc, const char *fmt, ...)
{
    ctl_close_fds(cc);
    char out[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, sizeof(out) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return 0;
    size_t len = (size_t)n < sizeof(out) - 1 ? (size_t)n : sizeof(out) - 2;
    for (size_t i = 0; i < len; i++) {
        if (out[i] == '\n' || out[i] == '\r')
            out[i] = ' ';       /* one reply, one line, whatever a sentence holds */
    }
    out[len++] = '\n';
    for (size_t done = 0; done < len;) {
        ssize_t w = send(cc->fd, out + done, len - done, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return 0;           /* the client went away: the read side will see it */
        done += (size_t)w;
    }
    return 0;
}

/* Reply "error ERRNAME SENTENCE" for -errno @rc. Returns 0, like every ctl_ command. */
static int
ctl_error(struct ctl_conn *cc, int rc, const char *sentence)
{
    const char *name = strerrorname_np(-rc);
    return ctl_reply(cc, "error %s %s", name ? name : "EIO", sentence);
}

/* Collect descriptors of @m into @cc (every one, even past the cap: those are closed). */
static void
ctl_take_fds(struct ctl_conn *cc, struct msghdr *m)
{
    if (m->msg_flags & MSG_CTRUNC)
        cc->fds_overflow = true;        /* the kernel dropped (and closed) the excess */
    for (struct cmsghdr *h = CMSG_FIRSTHDR(m); h; h = CMSG_NXTHDR(m, h)) {
        if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        const unsigned char *data = CMSG_DATA(h);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, data + i * sizeof(int), sizeof(int));
            if (cc->n_fds < CONTROL_MAX_FDS) {
                cc->fds[cc->n_fds++] = fd;
            } else {
                close(fd);
                cc->fds_overflow = true;
            }
        }
    }
}

/* Read more bytes (and descriptors). 0, or -1 at EOF/error. */
static int
ctl_fill(struct ctl_conn *cc)
{
    union {
        char buf[CMSG_SPACE(CONTROL_MAX_FDS * sizeof(int))];
        struct cmsghdr align;
    } cbuf;
    struct iovec iov = {cc->line + cc->len, sizeof(cc->line) - cc->len};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.buf,
                       .msg_controllen = sizeof(cbuf.buf)};
    ssize_t n;
    do {
        n = recvmsg(cc->fd, &m, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n > 0 || (n == 0 && m.msg_controllen > 0))
        ctl_take_fds(cc, &m);
    if (n <= 0)
        return -1;
    cc->len += (size_t)n;
    return 0;
}

static int
ctl_pause(struct ctl_conn *cc)
{
    pthread_mutex_lock(&ctl_mutex);
    if (paused) {
        pthread_mutex_unlock(&ctl_mutex);
        return ctl_error(cc, -EBUSY, "already paused");
    }
    pthread_rwlock_wrlock(&chain_lock);     /* waits for every request in flight */
    int rc = vhd_chain_flush(chain);
    if (rc < 0)
        pthread_rwlock_unlock(&chain_lock);
    else
        paused = true;
    pthread_mutex_unlock(&ctl_mutex);
    if (rc < 0)
        return ctl_error(cc, rc, "flush failed: not paused");
    return ctl_reply(cc, "ok");
}

/* End the pause (caller holds ctl_mutex). */
static void
ctl_unpause_locked(void)
{
    if (paused && !standby) {
        paused = false;
        pthread_rwlock_unlock(&chain_lock);
    }
}

static int
ctl_resume(struct ctl_conn *cc)
{
    pthread_mutex_lock(&ctl_mutex);
    bool was = paused, sb = standby;
    ctl_unpause_locked();
    pthread_mutex_unlock(&ctl_mutex);
    if (sb)
        return ctl_error(cc, -EINVAL, "in standby: activate ends it");
    if (!was)
        return ctl_error(cc, -EINVAL, "not paused");
    return ctl_reply(cc, "ok");
}

/* reload, or with @activate the end of a standby (the first chain this server opens) */
static int
ctl_reload(struct ctl_conn *cc, unsigned n, bool activate)
{
    if (cc->fds_overflow || n != cc->n_fds)
        return ctl_error(cc, -EINVAL, "the descriptor count differs from N");
    pthread_mutex_lock(&ctl_mutex);
    if (!paused || standby != activate) {
        bool sb = standby;
        pthread_mutex_unlock(&ctl_mutex);
        return ctl_error(cc, -EINVAL, sb ? "in standby: activate ends it"
                                      : activate ? "not in standby" : "not paused");
    }
    struct vhd_chain *next;
    int rc = vhd_chain_open_fds(cc->fds, n, read_only ? VHD_OPEN_RDONLY : VHD_OPEN_RDWR, &next);
    if (rc < 0) {
        pthread_mutex_unlock(&ctl_mutex);
        const char *why = vhd_last_error();
        return ctl_error(cc, rc, why[0] ? why : strerror(-rc));
    }
    if (vhd_chain_size(next) != export.size) {
        pthread_mutex_unlock(&ctl_mutex);
        vhd_chain_close(next);
        return ctl_error(cc, -EINVAL, "the new chain's virtual size differs from the export's");
    }
    struct vhd_chain *old = chain;
    chain = next;
    rc = vhd_chain_close(old);
    if (rc < 0)
        fprintf(stderr, "vhd serve: closing the previous chain: %s\n", strerror(-rc));
    standby = false;
    ctl_unpause_locked();
    pthread_mutex_unlock(&ctl_mutex);
    return ctl_reply(cc, "ok");
}

static int
ctl_info(struct ctl_conn *cc)
{
    pthread_mutex_lock(&ctl_mutex);     /* the chain pointer is stable under it */
    bool p = paused;
    if (standby) {
        pthread_mutex_unlock(&ctl_mutex);
        return ctl_reply(cc, "ok depth=0 leaf= size=%llu paused=1 standby=1",
                         (unsigned long long)export.size);
    }
    if (!p)
        pthread_rwlock_rdlock(&chain_lock);
    struct vhd_info in;
    char uuid[37];
    vhd_chain_info(chain, 0, &in);
    vhd_uuid_format(in.uuid, uuid);
    unsigned depth = vhd_chain_depth(chain);
    if (!p)
        pthread_rwlock_unlock(&chain_lock);
    pthread_mutex_unlock(&ctl_mutex);
    return ctl_reply(cc, "ok depth=%u leaf=%s size=%llu paused=%d", depth, uuid,
              (unsigned long long)in.size_bytes, p);
}

static int
ctl_stats(struct ctl_conn *cc)
{
#define LOAD(x) (unsigned long long)atomic_load_explicit(&(x), memory_order_relaxed)
    return ctl_reply(cc, "ok rd_reqs=%llu rd_bytes=%llu rd_usec=%llu wr_reqs=%llu wr_bytes=%llu "
                     "wr_usec=%llu inflight=%u", LOAD(rd_reqs), LOAD(rd_bytes), LOAD(rd_usec),
                     LOAD(wr_reqs), LOAD(wr_bytes), LOAD(wr_usec),
                     atomic_load_explicit(&inflight, memory_order_relaxed));
#undef LOAD
}

/* "reload N": N in 1..CONTROL_MAX_FDS, digits only. 0 if malformed. */
static unsigned
parse_count(const char *s)
{
    unsigned v = 0;
    if (!*s || strlen(s) > 2)
        return 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return 0;
        v = v * 10 + (unsigned)(*s - '0');
    }
    return v <= CONTROL_MAX_FDS ? v : 0;
}

static void
ctl_command(struct ctl_conn *cc, char *line)
{
    if (strncmp(line, "reload ", 7) == 0) {
        unsigned n = parse_count(line + 7);
        if (n == 0)
            ctl_error(cc, -EINVAL, "reload takes a count from 1 to 64");
        else
            ctl_reload(cc, n, false);
    } else if (strncmp(line, "activate ", 9) == 0) {
        unsigned n = parse_count(line + 9);
        if (n == 0)
            ctl_error(cc, -EINVAL, "activate takes a count from 1 to 64");
        else
            ctl_reload(cc, n, true);
    } else if (cc->n_fds > 0 || cc->fds_overflow) {
        ctl_error(cc, -EINVAL, "descriptors sent with a command that takes none");
    } else if (strcmp(line, "pause") == 0) {
        ctl_pause(cc);
    } else if (strcmp(line, "resume") == 0) {
        ctl_resume(cc);
    } else if (strcmp(line, "info") == 0) {
        ctl_info(cc);
    } else if (strcmp(line, "stats") == 0) {
        ctl_stats(cc);
    } else {
        ctl_error(cc, -EINVAL, "unknown command");
    }
    ctl_close_fds(cc);
}

/* Serve one control connection until it closes; then end a pause it left behind. */
static void
ctl_serve(int fd)
{
    struct ctl_conn cc = {.fd = fd};
    for (;;) {
        char *nl = memchr(cc.line, '\n', cc.len);
        if (!nl) {
            if (cc.len == sizeof(cc.line)) {
                ctl_error(&cc, -EINVAL, "line too long");
                break;
            }
            if (ctl_fill(&cc) < 0)
                break;
            continue;
        }
        *nl = '\0';
        if (nl > cc.line && nl[-1] == '\r')
            nl[-1] = '\0';
        ctl_command(&cc, cc.line);
        size_t used = (size_t)(nl + 1 - cc.line);
        memmove(cc.line, nl + 1, cc.len - used);
        cc.len -= used;
    }
    ctl_close_fds(&cc);
    pthread_mutex_lock(&ctl_mutex);
    ctl_unpause_locked();
    pthread_mutex_unlock(&ctl_mutex);
}

static void *
control_main(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    if (standby) {
        /* the standby is a pause this thread holds from the start (it alone
         * unlocks chain_lock after a pause: a rwlock is released by its holder) */
        pthread_mutex_lock(&ctl_mutex);
        pthread_rwlock_wrlock(&chain_lock);
        paused = true;
        pthread_mutex_unlock(&ctl_mutex);
        sem_post(&standby_held);
    }
    for (;;) {
        int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);  /* no spin */
            if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE)
                continue;
            return NULL;
        }
        ctl_serve(cfd);
        close(cfd);
    }
}

/*==== process ==========================================================================*/

static void *
signal_main(void *arg)
{
    sigset_t *set = arg;
    int sig;
    sigwait(set, &sig);
    pthread_mutex_lock(&ctl_mutex);
    if (!paused)                        /* paused: the control thread holds it for us */
        pthread_rwlock_wrlock(&chain_lock);
    int rc = vhd_chain_close(chain);
    _exit(rc < 0 ? 1 : 0);
}

static int
start_thread(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    return -rc;
}

static int
init_lock(void)
{
    pthread_rwlockattr_t a;
    pthread_rwlockattr_init(&a);
    /* a stream of shared readers must not starve a write or a pause */
    pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    int rc = pthread_rwlock_init(&chain_lock, &a);
    pthread_rwlockattr_destroy(&a);
    return -rc;
}

int
tool_cmd_serve(int argc, char **argv)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'},
        {"control", required_argument, NULL, 'c'},
        {"read-only", no_argument, NULL, 'r'},
        {"threads", required_argument, NULL, 't'},
        {"user", required_argument, NULL, 'u'},
        {"standby", no_argument, NULL, 'S'},
        {NULL, 0, NULL, 0},
    };
    const char *sock = NULL, *ctl = NULL;
    unsigned long uid = 0, gid = 0;
    bool set_user = false;
    unsigned threads = SERVE_WORKERS;
    int ch;
    while ((ch = getopt_long(argc, argv, "s:c:rt:u:S", opts, NULL)) != -1) {
        if (ch == 'S') {
            standby = true;
        } else if (ch == 'u') {
            char *end;
            uid = strtoul(optarg, &end, 10);
            gid = *end == ':' ? strtoul(end + 1, &end, 10) : uid;
            if (*end || uid == 0 || gid == 0 || uid >= UINT32_MAX || gid >= UINT32_MAX) {
                fprintf(stderr, "vhd serve: --user takes UID[:GID], not root\n");
                return 2;
            }
            set_user = true;
        } else if (ch == 's') {
            sock = optarg;
        } else if (ch == 'c') {
            ctl = optarg;
        } else if (ch == 't') {
            char *end;
            unsigned long v = strtoul(optarg, &end, 10);
            if (*end || v < 1 || v > NBD_MAX_WORKERS) {
                fprintf(stderr, "vhd serve: --threads takes 1 to %u\n", NBD_MAX_WORKERS);
                return 2;
            }
            threads = (unsigned)v;
        } else if (ch == 'r') {
            read_only = true;
        } else {
            return 2;
        }
    }
    if (!sock || optind != argc - 1 || (standby && !ctl)) {
        fprintf(stderr, "vhd serve: usage: vhd serve --socket PATH [--control PATH] "
                        "[--read-only] [--threads N] [--user UID[:GID]] [--standby] FILE "
                        "(--standby needs --control)\n");
        return 2;
    }
    const char *file = argv[optind];
    int rc = init_lock();
    if (rc < 0)
        return tool_fail("serve", rc, "cannot create the chain lock");
    uint64_t size = 0;
    if (standby) {
        /* another process may still write the image: its footer copy alone */
        if ((rc = vhd_peek_size(file, &size)) < 0)
            return tool_fail("serve", rc, "%s", file);
    } else {
        rc = vhd_chain_open(file, read_only ? VHD_OPEN_RDONLY : VHD_OPEN_RDWR, &chain);
        if (rc < 0)
            return tool_fail("serve", rc, "%s", file);
        size = vhd_chain_size(chain);
    }
    export = (struct nbd_export){.name = "", .description = file, .size = size,
                                 .read_only = read_only, .ops = &vhd_ops,
                                 .n_workers = threads};
    int lfd, cfd = -1;
    rc = nbd_listen_unix(sock, &lfd);
    if (rc < 0) {
        vhd_chain_close(chain);
        return tool_fail("serve", rc, "cannot listen on %s", sock);
    }
    if (ctl && (rc = nbd_listen_unix(ctl, &cfd)) < 0) {
        vhd_chain_close(chain);
        return tool_fail("serve", rc, "cannot listen on %s", ctl);
    }
    /* Opened and bound: from here on the chain's descriptors and the two
     * listening sockets are all it needs, so it stops being root (a uid of
     * its own per domain, vesseld's choice: api/disk_servers.c) before any
     * thread exists and before a byte is read from a client. */
    if (set_user && (setgroups(0, NULL) < 0 || setresgid((gid_t)gid, (gid_t)gid, (gid_t)gid) < 0 ||
                     setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid) < 0)) {
        rc = -errno;
        vhd_chain_close(chain);
        return tool_fail("serve", rc, "cannot become uid %lu gid %lu", uid, gid);
    }
    static sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    pthread_t sig_thread;
    if (pthread_create(&sig_thread, NULL, signal_main, &set) != 0) {
        vhd_chain_close(chain);
        return tool_fail("serve", -EAGAIN, "cannot start the signal thread");
    }
    unsigned layers;
    rc = sandbox_enter(&layers);
    if (rc < 0) {
        vhd_chain_close(chain);     /* refusing to serve unconfined is correct */
        return tool_fail("serve", rc, "cannot enter the sandbox");
    }
    bool held_wait = standby;      /* read before another thread may change it */
    if (held_wait)
        sem_init(&standby_held, 0, 0);
    if (cfd >= 0 && (rc = start_thread(control_main, (void *)(intptr_t)cfd)) < 0) {
        vhd_chain_close(chain);
        return tool_fail("serve", rc, "cannot start the control thread");
    }
    while (held_wait && sem_wait(&standby_held) < 0) /* no request before the standby holds */
        ;
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            break;
        }
        if (start_thread(client_main, (void *)(intptr_t)fd) < 0)
            close(fd);
    }
    pthread_mutex_lock(&ctl_mutex);
    if (!paused)
        pthread_rwlock_wrlock(&chain_lock);
    rc = vhd_chain_close(chain);
    return rc < 0 ? 1 : 0;
}
