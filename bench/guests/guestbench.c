/* bench/guests/guestbench.c - guest start to first console output: through
 * xenops vs a bare qemu-system-x86_64 with the same arguments.
 *
 * Usage: guestbench GUEST_DIR N REPS
 * For each rep: start N guests at once (one thread each) through the qemu
 * backend and time, per guest, xenops_domain_start() call -> first console
 * line and -> the VESSEL-GUEST-UP marker; then the same N guests as bare
 * qemus: the argv xenops_qemu_argv() builds, minus -S (nobody would send
 * "cont"), spawned with posix_spawn, their console socket read directly.
 * Prints medians per mode and the ratio xenops/bare (goal <= 1.05).
 * Guests: microvm + vmlinux + the test initramfs, TCG, 128 MiB, 1 vCPU.
 * Built and run by bench/guests/run.sh.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "xenops/xenops.h"

#define MARKER "VESSEL-GUEST-UP"

extern char **environ;
static char guest_dir[512], run_dir[64];
static struct xenops *xo;

struct run {
    char uuid[37];
    double line_ms, marker_ms, start_ms; /* start_ms: xenops_domain_start() itself */
};
static double start_sum;
static unsigned start_n;
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;

static double
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void
make_cfg(struct xenops_domain_config *c, char *uuid)
{
    static char kernel[600], initrd[600];
    memset(c, 0, sizeof(*c));
    snprintf(kernel, sizeof(kernel), "%s/vmlinux", guest_dir);
    snprintf(initrd, sizeof(initrd), "%s/initramfs.cpio", guest_dir);
    c->uuid = uuid;
    c->memory_bytes = 128u << 20;
    c->vcpus = 1;
    c->boot = XENOPS_BOOT_DIRECT;
    c->machine = XENOPS_MACHINE_MICROVM;
    c->kernel = kernel;
    c->initrd = initrd;
    c->cmdline = "console=ttyS0 quiet";
    c->accel = XENOPS_ACCEL_TCG;
}

static void *
lib_one(void *arg)
{
    struct run *r = arg;
    struct xenops_domain_config c;
    make_cfg(&c, r->uuid);
    double t0 = now_ms();
    if (xenops_domain_start(xo, &c) < 0)
        return NULL;
    pthread_mutex_lock(&start_lock);
    start_sum += now_ms() - t0;
    start_n++;
    pthread_mutex_unlock(&start_lock);
    while (now_ms() - t0 < 120000 && r->marker_ms == 0) {
        char *buf = NULL;
        size_t len = 0;
        if (xenops_console_read(xo, r->uuid, &buf, &len) == 0) {
            if (r->line_ms == 0 && memchr(buf, '\n', len))
                r->line_ms = now_ms() - t0;
            if (strstr(buf, MARKER))
                r->marker_ms = now_ms() - t0;
            free(buf);
        }
        poll(NULL, 0, 2);
    }
    xenops_domain_shutdown(xo, r->uuid, true, 0);
    return NULL;
}

static void *
bare_one(void *arg)
{
    struct run *r = arg;
    struct xenops_domain_config c;
    make_cfg(&c, r->uuid);
    char dir[128], sock[200];
    snprintf(dir, sizeof(dir), "%s/bare-%s", run_dir, r->uuid);
    mkdir(dir, 0700);
    char **argv = NULL;
    size_t n = 0;
    if (xenops_qemu_argv(&c, "tcg", dir, NULL, &argv, &n) < 0)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) /* drop -S: a bare qemu has nobody to send "cont" */
        if (strcmp(argv[i], "-S"))
            argv[k++] = argv[i];
        else
            free(argv[i]);
    argv[k] = NULL;
    double t0 = now_ms();
    pid_t pid;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", 1, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", 1, 0);
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    for (size_t i = 0; i < k; i++)
        free(argv[i]);
    free(argv);
    if (rc)
        return NULL;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sock, sizeof(sock), "%s/console.sock", dir);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
    int fd = -1;
    while (now_ms() - t0 < 10000) {
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            break;
        close(fd);
        fd = -1;
        poll(NULL, 0, 1);
    }
    char buf[65536];
    size_t len = 0;
    while (fd >= 0 && now_ms() - t0 < 120000 && len < sizeof(buf) - 1) {
        ssize_t m = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (m <= 0)
            break;
        len += (size_t)m;
        buf[len] = '\0';
        if (r->line_ms == 0 && memchr(buf, '\n', len))
            r->line_ms = now_ms() - t0;
        if (strstr(buf, MARKER)) {
            r->marker_ms = now_ms() - t0;
            break;
        }
    }
    if (fd >= 0)
        close(fd);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    (void)!system(cmd);
    return NULL;
}

static int
cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double
median(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp);
    return n ? v[n / 2] : 0;
}

/* Runs @reps rounds of @n guests at once in @mode; medians into *line, *marker. */
static void
round_trip(void *(*fn)(void *), unsigned n, unsigned reps, double *line, double *marker)
{
    struct run *runs = calloc((size_t)n * reps, sizeof(*runs));
    double *l = calloc((size_t)n * reps, sizeof(double)), *m = calloc((size_t)n * reps, sizeof(double));
    pthread_t *t = calloc(n, sizeof(*t));
    size_t got = 0;
    for (unsigned rep = 0; rep < reps; rep++) {
        for (unsigned i = 0; i < n; i++) {
            struct run *r = &runs[rep * n + i];
            snprintf(r->uuid, sizeof(r->uuid), "be4c0000-0000-4000-8000-%06u%06u", rep, i);
            pthread_create(&t[i], NULL, fn, r);
        }
        for (unsigned i = 0; i < n; i++)
            pthread_join(t[i], NULL);
        for (unsigned i = 0; i < n; i++) {
            struct run *r = &runs[rep * n + i];
            if (r->marker_ms > 0) {
                l[got] = r->line_ms;
                m[got++] = r->marker_ms;
            }
        }
    }
    *line = median(l, got);
    *marker = median(m, got);
    if (got < (size_t)n * reps)
        fprintf(stderr, "guestbench: %zu of %u guests never showed the marker\n", got, n * reps);
    free(runs);
    free(l);
    free(m);
    free(t);
}

int
main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: guestbench GUEST_DIR N REPS\n");
        return 2;
    }
    snprintf(guest_dir, sizeof(guest_dir), "%s", argv[1]);
    unsigned n = (unsigned)atoi(argv[2]), reps = (unsigned)atoi(argv[3]);
    snprintf(run_dir, sizeof(run_dir), "/tmp/vxb-XXXXXX");
    if (!mkdtemp(run_dir))
        return 1;
    struct xenops_init init = {.backend = "qemu", .run_dir = run_dir};
    if (xenops_new(&init, &xo) < 0)
        return 1;
    double bl, bm, ll, lm;
    /* alternate bare and library so load drifts hit both alike */
    double sbl = 0, sbm = 0, sll = 0, slm = 0;
    for (unsigned rep = 0; rep < reps; rep++) {
        round_trip(bare_one, n, 1, &bl, &bm);
        round_trip(lib_one, n, 1, &ll, &lm);
        sbl += bl, sbm += bm, sll += ll, slm += lm;
    }
    bl = sbl / reps, bm = sbm / reps, ll = sll / reps, lm = slm / reps;
    printf("guests at once: %u, rounds: %u (TCG, microvm, 128 MiB)\n", n, reps);
    printf("%-8s first line %8.1f ms   marker %8.1f ms\n", "bare", bl, bm);
    printf("%-8s first line %8.1f ms   marker %8.1f ms\n", "xenops", ll, lm);
    printf("ratio xenops/bare: first line %.3f, marker %.3f\n", bl > 0 ? ll / bl : 0,
           bm > 0 ? lm / bm : 0);
    printf("xenops_domain_start() (spawn, QMP, console, cont): mean %.1f ms\n",
           start_n ? start_sum / start_n : 0);
    xenops_free(xo);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", run_dir);
    (void)!system(cmd);
    return 0;
}
