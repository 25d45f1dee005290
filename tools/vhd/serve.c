/* tools/vhd/serve.c - `vhd serve`: one VHD chain exported over NBD on a unix socket.
 *
 * One process per disk (the tapdisk of this platform). Order of events: open the chain
 * (leaf read-write unless --read-only, parents read-only), bind the socket, block SIGTERM
 * and SIGINT and start the thread that waits for them, then enter the sandbox
 * (sandbox.c: no_new_privs, landlock, seccomp) and only then accept clients. Each client
 * gets a thread; the chain is not thread-safe, so every backend call holds chain_lock.
 * On SIGTERM/SIGINT the signal thread takes the lock (no request is half-done), flushes
 * and closes the chain (trailing footer written, fdatasync) and exits 0.
 * Facts: shared/spec/storage.md 3, 6.6; STYLE.md section 10.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "nbd/nbd.h"
#include "tools/vhd/sandbox.h"
#include "tools/vhd/vhd_tool.h"

static pthread_mutex_t chain_lock = PTHREAD_MUTEX_INITIALIZER;
static struct vhd_chain *chain;

static int
be_read(void *o, void *buf, uint64_t off, uint32_t len)
{
    pthread_mutex_lock(&chain_lock);
    int rc = vhd_chain_read(chain, buf, off, len);
    pthread_mutex_unlock(&chain_lock);
    return rc;
}

static int
be_write(void *o, const void *buf, uint64_t off, uint32_t len, bool fua)
{
    pthread_mutex_lock(&chain_lock);
    int rc = vhd_chain_write(chain, buf, off, len, fua);
    pthread_mutex_unlock(&chain_lock);
    return rc;
}

static int
be_flush(void *o)
{
    pthread_mutex_lock(&chain_lock);
    int rc = vhd_chain_flush(chain);
    pthread_mutex_unlock(&chain_lock);
    return rc;
}

static int
be_zero(void *o, uint64_t off, uint32_t len, bool fua)
{
    pthread_mutex_lock(&chain_lock);
    int rc = vhd_chain_zero(chain, off, len, fua);
    pthread_mutex_unlock(&chain_lock);
    return rc;
}

static int
be_block_status(void *o, uint64_t off, uint64_t len, uint64_t *run, bool *allocated)
{
    pthread_mutex_lock(&chain_lock);
    int rc = vhd_chain_block_status(chain, off, len, run, allocated);
    pthread_mutex_unlock(&chain_lock);
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

static void *
signal_main(void *arg)
{
    sigset_t *set = arg;
    int sig;
    sigwait(set, &sig);
    pthread_mutex_lock(&chain_lock);
    int rc = vhd_chain_close(chain);
    _exit(rc < 0 ? 1 : 0);
}

int
tool_cmd_serve(int argc, char **argv)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'},
        {"read-only", no_argument, NULL, 'r'},
        {NULL, 0, NULL, 0},
    };
    const char *sock = NULL;
    bool ro = false;
    int ch;
    while ((ch = getopt_long(argc, argv, "s:r", opts, NULL)) != -1) {
        if (ch == 's')
            sock = optarg;
        else if (ch == 'r')
            ro = true;
        else
            return 2;
    }
    if (!sock || optind != argc - 1) {
        fprintf(stderr, "vhd serve: usage: vhd serve --socket PATH [--read-only] FILE\n");
        return 2;
    }
    const char *file = argv[optind];
    int rc = vhd_chain_open(file, ro ? VHD_OPEN_RDONLY : VHD_OPEN_RDWR, &chain);
    if (rc < 0)
        return tool_fail("serve", rc, "%s", file);
    export = (struct nbd_export){.name = "", .description = file, .size = vhd_chain_size(chain),
                                 .read_only = ro, .ops = &vhd_ops};
    int lfd;
    rc = nbd_listen_unix(sock, &lfd);
    if (rc < 0) {
        vhd_chain_close(chain);
        return tool_fail("serve", rc, "cannot listen on %s", sock);
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
    for (;;) {
        int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            break;
        }
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &attr, client_main, (void *)(intptr_t)cfd) != 0)
            close(cfd);
        pthread_attr_destroy(&attr);
    }
    pthread_mutex_lock(&chain_lock);
    rc = vhd_chain_close(chain);
    return rc < 0 ? 1 : 0;
}
