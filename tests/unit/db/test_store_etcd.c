/* tests/unit/db/test_store_etcd.c - the object store on etcd (db/store_etcd.c)
 * against a real etcd: a single member on ephemeral 127.0.0.1 ports in a
 * temporary directory, started here and killed (by its pid) at the end.
 * Two stores opened on one prefix stand for two hosts of a pool; the host
 * leases (db/etcd_lease.c) are tested on the same member.
 * Skipped when etcd is not installed. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "db/db.h"
#include "db/etcd_lease.h"
#include "model/xmodel.h"
#include "xapi_errors.h"
#include "xapi_model.h"

#define ETCD_BIN "/usr/bin/etcd"
#define WAIT_S 20 /* a bound for a failing test, not a speed expectation */

static pid_t etcd_pid;
static char etcd_dir[64];
static char endpoint[64];
static int prefix_n;

static int
free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static void
sleep_ms(int ms)
{
    nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000L}, NULL);
}

static char *
spec(const char *prefix)
{
    char *s = NULL;
    assert_true(asprintf(&s, "etcd:%s;%s", endpoint, prefix) > 0);
    return s;
}

static struct db *
open_store(const char *prefix)
{
    char *path = spec(prefix);
    char why[256] = "";
    struct db *db = NULL;
    int rc = db_open(path, &db, why, sizeof(why));
    if (rc < 0)
        fail_msg("db_open %s: %s", path, why);
    free(path);
    return db;
}

static void
stop_etcd(void)
{
    if (etcd_pid > 0) {
        kill(etcd_pid, SIGKILL);
        waitpid(etcd_pid, NULL, 0);
        etcd_pid = 0;
    }
    if (etcd_dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", etcd_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "# could not remove %s\n", etcd_dir);
        etcd_dir[0] = 0;
    }
}

static int
start_etcd(void)
{
    snprintf(etcd_dir, sizeof(etcd_dir), "/tmp/vessel-test-etcd-XXXXXX");
    if (!mkdtemp(etcd_dir))
        return -1;
    for (int attempt = 0; attempt < 5; attempt++) {
        int cport = free_port(), pport = free_port();
        char curl[64], purl[64], cluster[96], data[96], log[96];
        snprintf(curl, sizeof(curl), "http://127.0.0.1:%d", cport);
        snprintf(purl, sizeof(purl), "http://127.0.0.1:%d", pport);
        snprintf(cluster, sizeof(cluster), "t=%s", purl);
        snprintf(data, sizeof(data), "%s/data", etcd_dir);
        snprintf(log, sizeof(log), "%s/etcd.log", etcd_dir);
        pid_t pid = fork();
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlives a crashed test */
            if (!freopen(log, "a", stdout) || !freopen(log, "a", stderr))
                _exit(126);
            execl(ETCD_BIN, ETCD_BIN, "--name", "t", "--data-dir", data, "--listen-client-urls",
                  curl, "--advertise-client-urls", curl, "--listen-peer-urls", purl,
                  "--initial-advertise-peer-urls", purl, "--initial-cluster", cluster,
                  "--max-txn-ops", "4096", (char *)NULL);
            _exit(127);
        }
        etcd_pid = pid;
        snprintf(endpoint, sizeof(endpoint), "%s", curl);
        for (int i = 0; i < WAIT_S * 10; i++) {
            if (waitpid(pid, NULL, WNOHANG) == pid) {
                etcd_pid = 0; /* a port was taken meanwhile: again */
                break;
            }
            char *path = NULL, why[256];
            struct db *db = NULL;
            if (asprintf(&path, "etcd:%s;/probe", curl) > 0 &&
                db_open(path, &db, why, sizeof(why)) == 0) {
                db_close(db);
                free(path);
                return 0;
            }
            free(path);
            sleep_ms(100);
        }
        if (etcd_pid) {
            stop_etcd();
            return -1;
        }
    }
    return -1;
}

/* Each test has a prefix of its own: a fresh, empty pool. */
struct pair {
    char prefix[64];
    struct db *a, *b;
};

static int
setup(void **state)
{
    struct pair *p = calloc(1, sizeof(*p));
    snprintf(p->prefix, sizeof(p->prefix), "/vessel-test/%d", ++prefix_n);
    p->a = open_store(p->prefix);
    p->b = open_store(p->prefix);
    *state = p;
    return 0;
}

static int
teardown(void **state)
{
    struct pair *p = *state;
    db_close(p->a);
    db_close(p->b);
    free(p);
    return 0;
}

static char *
new_vm(struct db *db, const char *name)
{
    struct xapi_vm_record *vm = xapi_vm_record_new();
    free(vm->name_label);
    vm->name_label = strdup(name);
    char *ref = NULL;
    struct xerr *err = NULL;
    if (!db_create(db, &xapi_class_vm, NULL, vm, &ref, &err)) {
        char d[256];
        fail_msg("create: %s", xerr_describe(err, d, sizeof(d)));
    }
    return ref;
}

static char *
name_of(struct db *db, const char *ref)
{
    char *name = NULL;
    if (!db_get_field(db, &xapi_class_vm, ref, xclass_field(&xapi_class_vm, "name_label"), &name,
                      NULL))
        return NULL;
    return name;
}

/* Polls @db until its VM @ref is named @want (NULL: until it is gone). */
static bool
wait_name(struct db *db, const char *ref, const char *want)
{
    for (int i = 0; i < WAIT_S * 100; i++) {
        char *got = name_of(db, ref);
        bool done = want ? got && strcmp(got, want) == 0 : !db_exists(db, &xapi_class_vm, ref);
        free(got);
        if (done)
            return true;
        sleep_ms(10);
    }
    return false;
}

static bool
wait_gen(struct db *db, uint64_t gen)
{
    for (int i = 0; i < WAIT_S * 100 && db_generation(db) < gen; i++)
        sleep_ms(10);
    return db_generation(db) >= gen;
}

static bool
set_name(struct db *db, const char *ref, const char *name, struct xerr **errp)
{
    return db_set_field(db, &xapi_class_vm, ref, xclass_field(&xapi_class_vm, "name_label"),
                        &name, errp);
}


/* ------------------------------------------------------------------ a cuttable link */

/* A TCP relay to etcd on its own port: cutting it closes every connection
 * and refuses new ones, as a host cut off from etcd sees it. */
struct relay {
    int port, target;
    int lfd;
    int fds[64][2];
    bool watch[64];         /* the connection carries a /v3/watch stream */
    volatile int freeze_watch; /* set: etcd's side of watch streams is not read */
    int n;
    pthread_t th;
    volatile int stop;
};

static int
tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void *
relay_main(void *opaque)
{
    struct relay *r = opaque;
    while (!r->stop) {
        struct pollfd p[129];
        int np = 0;
        p[np++] = (struct pollfd){.fd = r->lfd, .events = POLLIN};
        for (int i = 0; i < r->n; i++) {
            p[np++] = (struct pollfd){.fd = r->fds[i][0], .events = POLLIN};
            p[np++] = (struct pollfd){.fd = r->fds[i][1],
                                      .events = r->freeze_watch && r->watch[i] ? 0 : POLLIN};
        }
        if (poll(p, (nfds_t)np, 50) <= 0)
            continue;
        int polled = r->n; /* an accepted connection waits for the next poll */
        if ((p[0].revents & POLLIN) && r->n < 64) {
            int c = accept(r->lfd, NULL, NULL), e = c >= 0 ? tcp_connect(r->target) : -1;
            if (c >= 0 && e >= 0) {
                r->fds[r->n][0] = c;
                r->fds[r->n][1] = e;
                r->watch[r->n] = false;
                r->n++;
            } else if (c >= 0) {
                close(c);
            }
        }
        for (int i = 0; i < polled; i++) {
            for (int side = 0; side < 2; side++) {
                short ev = p[1 + 2 * i + side].revents;
                if (!ev || r->fds[i][0] < 0)
                    continue;
                char buf[65536];
                ssize_t got = read(r->fds[i][side], buf, sizeof(buf));
                if (side == 0 && got > 0 && memmem(buf, (size_t)got, "/v3/watch", 9))
                    r->watch[i] = true;
                if (got <= 0 || write(r->fds[i][!side], buf, (size_t)got) != got) {
                    close(r->fds[i][0]);
                    close(r->fds[i][1]);
                    r->fds[i][0] = r->fds[i][1] = -1;
                }
            }
        }
        int k = 0;
        for (int i = 0; i < r->n; i++)
            if (r->fds[i][0] >= 0) {
                r->fds[k][0] = r->fds[i][0];
                r->fds[k][1] = r->fds[i][1];
                r->watch[k] = r->watch[i];
                k++;
            }
        r->n = k;
    }
    return NULL;
}

static void
relay_start(struct relay *r)
{
    r->lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(r->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)r->port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(r->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(r->lfd, 16), 0);
    getsockname(r->lfd, (struct sockaddr *)&a, &len);
    r->port = ntohs(a.sin_port);
    r->n = 0;
    r->stop = 0;
    pthread_create(&r->th, NULL, relay_main, r);
}

static void
relay_cut(struct relay *r)
{
    r->stop = 1;
    pthread_join(r->th, NULL);
    close(r->lfd);
    for (int i = 0; i < r->n; i++) {
        close(r->fds[i][0]);
        close(r->fds[i][1]);
    }
    r->n = 0;
}

static size_t
keep_answer(char *data, size_t size, size_t n, void *opaque)
{
    char *buf = opaque;
    size_t have = strlen(buf), len = size * n;
    if (have + len < 4096) {
        memcpy(buf + have, data, len);
        buf[have + len] = 0;
    }
    return len;
}

/* POSTs @body to etcd; its answer's header.revision. */
static uint64_t
etcd_post(const char *path, const char *body)
{
    char url[128], answer[4096] = "";
    snprintf(url, sizeof(url), "%s%s", endpoint, path);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, keep_answer);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, answer);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_cleanup(c);
    const char *r = strstr(answer, "\"revision\":\"");
    assert_non_null(r);
    return strtoull(r + strlen("\"revision\":\""), NULL, 10);
}

/* ------------------------------------------------------------------ tests */

static void
test_other_store_sees_writes(void **state)
{
    struct pair *p = *state;
    char *vm = new_vm(p->a, "made-on-a");
    assert_true(wait_name(p->b, vm, "made-on-a"));
    assert_true(set_name(p->b, vm, "renamed-on-b", NULL));
    assert_true(wait_name(p->a, vm, "renamed-on-b"));
    assert_true(db_destroy(p->a, &xapi_class_vm, vm, NULL));
    assert_true(wait_name(p->b, vm, NULL));
    free(vm);
}

struct seen {
    int adds, mods, dels;
};

static void
count_changes(void *opaque, const struct xclass *cls, enum db_change_op op, const char *ref,
              uint64_t gen, const void *rec)
{
    struct seen *s = opaque;
    if (op == DB_CHANGE_ADD)
        s->adds++;
    else if (op == DB_CHANGE_MOD)
        s->mods++;
    else
        s->dels++;
}

static void
test_generation_is_the_revision(void **state)
{
    struct pair *p = *state;
    char *vm = new_vm(p->a, "g");
    assert_true(wait_name(p->a, vm, "g"));
    uint64_t gen = db_generation(p->a);
    /* A third store loads at the revision the others reached, with the same generations. */
    assert_true(wait_gen(p->b, gen));
    struct db *c = open_store(p->prefix);
    assert_true(db_generation(c) >= gen);
    assert_true(set_name(c, vm, "g2", NULL));
    /* read-your-writes for event.from: the change is in c's generation as
     * soon as the write returns */
    uint64_t mask[4] = {0}, now = 0;
    mask[xapi_class_vm.id / 64] |= 1ull << (xapi_class_vm.id % 64);
    struct seen s = {0};
    assert_true(db_changes_since(c, gen, mask, count_changes, &s, &now));
    assert_int_equal(s.mods, 1);
    assert_true(wait_name(p->a, vm, "g2"));
    assert_true(wait_name(p->b, vm, "g2"));
    /* Each host's generation follows the etcd revisions: one commit later,
     * all three agree on the generation of the change. */
    uint64_t ga = db_generation(p->a), gb = db_generation(p->b);
    assert_true(wait_gen(c, ga));
    assert_int_equal(ga, gb);
    assert_true(ga > gen);
    db_close(c);
    free(vm);
}

static void
test_changes_reach_the_other_store(void **state)
{
    struct pair *p = *state;
    uint64_t mask[4] = {0};
    mask[xapi_class_vm.id / 64] |= 1ull << (xapi_class_vm.id % 64);
    char *a = new_vm(p->a, "a");
    assert_true(wait_name(p->b, a, "a"));
    uint64_t token = db_generation(p->b);
    char *b = new_vm(p->a, "b");                         /* add */
    assert_true(db_touch(p->a, &xapi_class_vm, a, NULL)); /* mod, then del */
    assert_true(db_destroy(p->a, &xapi_class_vm, a, NULL));
    assert_true(set_name(p->a, b, "b-done", NULL));
    assert_true(wait_name(p->b, b, "b-done"));
    struct seen s = {0};
    uint64_t now = 0;
    assert_true(db_changes_since(p->b, token, mask, count_changes, &s, &now));
    assert_int_equal(s.adds, 1);
    assert_int_equal(s.mods, 0);
    assert_int_equal(s.dels, 1);
    assert_int_equal(now, db_generation(p->b));
    /* the deletion survives a restart: the tombstone is in etcd */
    struct db *c = open_store(p->prefix);
    struct seen s2 = {0};
    assert_true(db_changes_since(c, token, mask, count_changes, &s2, &now));
    assert_int_equal(s2.dels, 1);
    assert_int_equal(s2.adds, 1);
    db_close(c);
    free(a);
    free(b);
}

static void
test_reverse_links_follow(void **state)
{
    struct pair *p = *state;
    char *vm = new_vm(p->a, "with-disk");
    /* The VM and a VBD pointing at it arrive on b in one revision. */
    db_batch_begin(p->a);
    char *vm2 = new_vm(p->a, "in-batch");
    struct xapi_vbd_record *vbd = xapi_vbd_record_new();
    free(vbd->VM);
    vbd->VM = strdup(vm2);
    char *vbd_ref = NULL;
    assert_true(db_create(p->a, &xapi_class_vbd, NULL, vbd, &vbd_ref, NULL));
    assert_true(db_batch_end(p->a, true, NULL));
    assert_true(wait_name(p->b, vm2, "in-batch"));
    struct xapi_vm_record *got = NULL;
    assert_true(db_get(p->b, &xapi_class_vm, vm2, (void **)&got, NULL));
    assert_int_equal(got->VBDs.n, 1);
    xapi_vm_record_free(got);
    /* Moving the VBD on a updates both VMs' sets on b. */
    const char *to = vm;
    assert_true(db_set_field(p->a, &xapi_class_vbd, vbd_ref, xclass_field(&xapi_class_vbd, "VM"),
                             &to, NULL));
    assert_true(set_name(p->a, vm, "moved", NULL));
    assert_true(wait_name(p->b, vm, "moved"));
    assert_true(db_get(p->b, &xapi_class_vm, vm2, (void **)&got, NULL));
    assert_int_equal(got->VBDs.n, 0);
    xapi_vm_record_free(got);
    assert_true(db_get(p->b, &xapi_class_vm, vm, (void **)&got, NULL));
    assert_int_equal(got->VBDs.n, 1);
    xapi_vm_record_free(got);
    free(vm);
    free(vm2);
    free(vbd_ref);
}

struct rename {
    struct db *db;
    const char *ref, *name;
    bool ok;
};

static void *
rename_main(void *opaque)
{
    struct rename *r = opaque;
    r->ok = set_name(r->db, r->ref, r->name, NULL);
    return NULL;
}

/* A batch of b's that read the VM before a changed it commits nothing. */
static void
test_lost_compare_and_swap(void **state)
{
    struct pair *p = *state;
    char *vm = new_vm(p->a, "base");
    assert_true(wait_name(p->b, vm, "base"));
    db_batch_begin(p->b);
    assert_true(set_name(p->b, vm, "from-b", NULL)); /* inside b's batch: not yet committed */
    char *other = NULL;
    struct xapi_vm_record *rec = xapi_vm_record_new();
    free(rec->name_label);
    rec->name_label = strdup("b-also-made-this");
    assert_true(db_create(p->b, &xapi_class_vm, NULL, rec, &other, NULL));
    /* a commits meanwhile (from another thread: a thread holds one store's batch at a time) */
    struct rename r = {p->a, vm, "from-a", false};
    pthread_t t;
    pthread_create(&t, NULL, rename_main, &r);
    pthread_join(t, NULL);
    assert_true(r.ok);
    struct xerr *err = NULL;
    assert_false(db_batch_end(p->b, true, &err));
    assert_non_null(err);
    assert_string_equal(err->code, "TOO_BUSY");
    xerr_free(err);
    /* b's memory is back as it was, then a's change arrives; nothing of
     * b's batch reached etcd (a never sees the VM b created). */
    assert_false(db_exists(p->b, &xapi_class_vm, other));
    assert_true(wait_name(p->b, vm, "from-a"));
    assert_true(wait_gen(p->a, db_generation(p->b)));
    assert_false(db_exists(p->a, &xapi_class_vm, other));
    char *n = name_of(p->a, vm);
    assert_string_equal(n, "from-a");
    free(n);
    free(other);
    free(vm);
}

/* Read-modify-write from both stores at once: every increment lands. */
struct incr {
    struct db *db;
    const char *ref;
    int times;
    bool ok;
};

static bool
incr_cb(void *opaque, void *rec, struct xerr **errp)
{
    (void)opaque;
    (void)errp;
    struct xapi_vm_record *vm = rec;
    char buf[32];
    snprintf(buf, sizeof(buf), "%d", atoi(vm->name_label) + 1);
    free(vm->name_label);
    vm->name_label = strdup(buf);
    return vm->name_label != NULL;
}

static void *
incr_main(void *opaque)
{
    struct incr *in = opaque;
    in->ok = true;
    for (int i = 0; i < in->times; i++) {
        struct xerr *err = NULL;
        if (!db_update(in->db, &xapi_class_vm, in->ref, incr_cb, NULL, &err)) {
            char d[256];
            fprintf(stderr, "# update: %s\n", xerr_describe(err, d, sizeof(d)));
            xerr_free(err);
            in->ok = false;
        }
    }
    return NULL;
}

static void
test_no_lost_update(void **state)
{
    struct pair *p = *state;
    char *vm = new_vm(p->a, "0");
    assert_true(wait_name(p->b, vm, "0"));
    enum { THREADS = 4, TIMES = 15 };
    struct incr in[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        in[i] = (struct incr){i % 2 ? p->b : p->a, vm, TIMES, false};
        pthread_create(&t[i], NULL, incr_main, &in[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        assert_true(in[i].ok);
    }
    char want[16];
    snprintf(want, sizeof(want), "%d", THREADS * TIMES);
    assert_true(wait_name(p->a, vm, want));
    assert_true(wait_name(p->b, vm, want));
    free(vm);
}


/* Refs destroyed by the churn threads, watched by a checker. */
static struct {
    pthread_mutex_t mu;
    char *refs[1024];
    int n;
    volatile int done;
    int revived;
} destroyed = {.mu = PTHREAD_MUTEX_INITIALIZER};

struct churn {
    struct db *db;
    const char *vm;
    int times;
    bool ok;
};

static void *
revival_check(void *opaque)
{
    struct db *db = opaque;
    while (!destroyed.done) {
        pthread_mutex_lock(&destroyed.mu);
        int n = destroyed.n;
        pthread_mutex_unlock(&destroyed.mu);
        for (int i = 0; i < n; i++)
            if (db_exists(db, &xapi_class_vbd, destroyed.refs[i]))
                destroyed.revived++;
    }
    return NULL;
}

/* Creates and destroys VBDs of one VM. */
static void *
churn_main(void *opaque)
{
    struct churn *c = opaque;
    c->ok = true;
    for (int i = 0; i < c->times && c->ok; i++) {
        struct xapi_vbd_record *vbd = xapi_vbd_record_new();
        free(vbd->VM);
        vbd->VM = strdup(c->vm);
        char *ref = NULL;
        struct xerr *err = NULL;
        c->ok = db_create(c->db, &xapi_class_vbd, NULL, vbd, &ref, &err) &&
                db_destroy(c->db, &xapi_class_vbd, ref, &err);
        pthread_mutex_lock(&destroyed.mu);
        if (c->ok && destroyed.n < 1024) {
            destroyed.refs[destroyed.n++] = ref;
            ref = NULL;
        }
        pthread_mutex_unlock(&destroyed.mu);
        if (err) {
            char d[256];
            fprintf(stderr, "# churn: %s\n", xerr_describe(err, d, sizeof(d)));
            xerr_free(err);
        }
        free(ref);
    }
    return NULL;
}

static void
gen_of(void *opaque, const struct xclass *cls, enum db_change_op op, const char *ref,
       uint64_t gen, const void *rec)
{
    struct {
        const char *ref;
        uint64_t gen;
    } *want = opaque;
    if (strcmp(ref, want->ref) == 0)
        want->gen = gen;
}

/* The watch brings a store's own commits back after they were applied: a
 * creation arriving after the object's deletion must not revive it (nor
 * touch, through its links, what it pointed at). */
static void
test_own_commits_come_back(void **state)
{
    struct pair *p = *state;
    char *vm = new_vm(p->a, "holder");
    /* several writers at once, so that the watch falls behind them */
    struct churn c[4];
    pthread_t t[4], checker;
    pthread_create(&checker, NULL, revival_check, p->a);
    for (int i = 0; i < 4; i++) {
        c[i] = (struct churn){p->a, vm, 100, false};
        pthread_create(&t[i], NULL, churn_main, &c[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_true(c[i].ok);
    }
    assert_true(set_name(p->a, vm, "end", NULL));
    struct {
        const char *ref;
        uint64_t gen;
    } want = {vm, 0};
    uint64_t mask[4] = {0}, now;
    mask[xapi_class_vm.id / 64] |= 1ull << (xapi_class_vm.id % 64);
    db_report_all(p->a, mask, gen_of, &want, &now);
    assert_true(want.gen > 0);
    assert_true(wait_gen(p->a, want.gen)); /* every own commit has come back */
    destroyed.done = 1;
    pthread_join(checker, NULL);
    for (int i = 0; i < destroyed.n; i++)
        free(destroyed.refs[i]);
    assert_int_equal(destroyed.revived, 0); /* no destroyed VBD was ever seen again */
    assert_int_equal(db_count(p->a, &xapi_class_vbd), 0);
    struct xapi_vm_record *got = NULL;
    assert_true(db_get(p->a, &xapi_class_vm, vm, (void **)&got, NULL));
    assert_int_equal(got->VBDs.n, 0);
    xapi_vm_record_free(got);
    /* the VM's generation is still its key's: a batch (no retry) commits */
    db_batch_begin(p->a);
    assert_true(set_name(p->a, vm, "after", NULL));
    assert_true(db_batch_end(p->a, true, NULL));
    free(vm);
}

/* A watch whose member stops sending (cut off from the others, not from
 * us) is noticed when our own commit does not come back, and starts again
 * on the next member. */
static void
test_stale_watch_moves_on(void **state)
{
    struct pair *p = *state;
    char *vm = new_vm(p->a, "watched");
    struct relay r = {.target = atoi(strrchr(endpoint, ':') + 1)};
    relay_start(&r);
    char *path = NULL;
    assert_true(asprintf(&path, "etcd:http://127.0.0.1:%d,%s;%s", r.port, endpoint, p->prefix) > 0);
    char why[256] = "";
    struct db *c = NULL;
    assert_int_equal(db_open(path, &c, why, sizeof(why)), 0);
    assert_true(wait_name(c, vm, "watched"));
    r.freeze_watch = 1;
    assert_true(set_name(c, vm, "written-by-c", NULL)); /* through the relay, not a watch */
    struct {
        const char *ref;
        uint64_t gen;
    } want = {vm, 0};
    uint64_t mask[4] = {0}, now;
    mask[xapi_class_vm.id / 64] |= 1ull << (xapi_class_vm.id % 64);
    db_report_all(c, mask, gen_of, &want, &now);
    /* the write returned once its commit came back: through another member */
    assert_true(now >= want.gen);
    assert_true(set_name(p->a, vm, "from-a-later", NULL));
    assert_true(wait_name(c, vm, "from-a-later"));
    db_close(c);
    relay_cut(&r);
    free(path);
    free(vm);
}

/* A host cut off from etcd while the others wrote and etcd compacted its
 * history: when it is back, it catches up by reading the prefix again. */
static void
test_catch_up_after_compaction(void **state)
{
    struct pair *p = *state;
    char *stay = new_vm(p->a, "stay"), *gone = new_vm(p->a, "gone");
    struct relay r = {.target = atoi(strrchr(endpoint, ':') + 1)};
    relay_start(&r);
    char *path = NULL;
    assert_true(asprintf(&path, "etcd:http://127.0.0.1:%d;%s", r.port, p->prefix) > 0);
    char why[256] = "";
    struct db *c = NULL;
    assert_int_equal(db_open(path, &c, why, sizeof(why)), 0);
    assert_true(wait_name(c, gone, "gone"));
    uint64_t token = db_generation(c);
    relay_cut(&r);
    assert_true(set_name(p->a, stay, "changed-while-cut", NULL));
    assert_true(db_destroy(p->a, &xapi_class_vm, gone, NULL));
    char *made = new_vm(p->a, "made-while-cut");
    char body[64];
    uint64_t rev = etcd_post("/v3/kv/put", "{\"key\":\"L2NvbXBhY3Q=\",\"value\":\"eA==\"}");
    snprintf(body, sizeof(body), "{\"revision\":\"%llu\",\"physical\":true}",
             (unsigned long long)rev);
    etcd_post("/v3/kv/compaction", body);
    relay_start(&r); /* the same port again */
    assert_true(wait_name(c, stay, "changed-while-cut"));
    assert_true(wait_name(c, made, "made-while-cut"));
    assert_false(db_exists(c, &xapi_class_vm, gone));
    /* event.from from before the cut reports all three */
    uint64_t mask[4] = {0};
    mask[xapi_class_vm.id / 64] |= 1ull << (xapi_class_vm.id % 64);
    struct seen s = {0};
    uint64_t now;
    assert_true(db_changes_since(c, token, mask, count_changes, &s, &now));
    assert_int_equal(s.adds, 1);
    assert_int_equal(s.mods, 1);
    assert_int_equal(s.dels, 1);
    db_close(c);
    relay_cut(&r);
    free(path);
    free(stay);
    free(gone);
    free(made);
}

/* A transaction etcd refuses as it stands (too large) fails with etcd's
 * reason, and memory keeps nothing of it. */
static void
test_refused_batch_fails_cleanly(void **state)
{
    struct pair *p = *state;
    size_t before = db_count(p->a, &xapi_class_vm);
    db_batch_begin(p->a);
    for (int i = 0; i < 1000; i++) {
        struct xapi_vm_record *vm = xapi_vm_record_new();
        assert_true(db_create(p->a, &xapi_class_vm, NULL, vm, NULL, NULL));
    }
    struct xerr *err = NULL;
    assert_false(db_batch_end(p->a, true, &err));
    assert_non_null(err);
    assert_string_equal(err->code, "INTERNAL_ERROR");
    /* etcd's reason: its gRPC layer's size limit (2 MiB) or --max-request-bytes */
    assert_true(strstr(err->params[0], "larger than max") || strstr(err->params[0], "too large"));
    xerr_free(err);
    assert_int_equal(db_count(p->a, &xapi_class_vm), before);
    /* and the store goes on */
    char *vm = new_vm(p->a, "after");
    assert_true(wait_name(p->b, vm, "after"));
    free(vm);
}

/* ---- host leases (db/etcd_lease.c) on the same etcd ---- */

static struct etcd_lease *
open_leases(const char *prefix)
{
    char *s = NULL, why[256] = "";
    struct etcd_lease *el = NULL;
    assert_true(asprintf(&s, "%s;%s", endpoint, prefix) > 0);
    if (etcd_lease_open(s, 1000, &el, why, sizeof(why)) < 0)
        fail_msg("etcd_lease_open %s: %s", s, why);
    free(s);
    return el;
}

static void
test_lease_grant_renew_revoke(void **state)
{
    struct pair *p = *state;
    struct etcd_lease *el = open_leases(p->prefix);
    int64_t id = 0;
    int ttl = 0;
    assert_int_equal(etcd_lease_grant(el, 5, &id, &ttl), 0);
    assert_int_equal(ttl, 5);
    assert_int_equal(etcd_lease_put(el, "live/h1", "{\"x\":1}", id), 0);
    char *v = NULL;
    int64_t on = 0;
    assert_int_equal(etcd_lease_get(el, "live/h1", &v, &on), 0);
    assert_string_equal(v, "{\"x\":1}");
    assert_int_equal(on, id);
    free(v);
    assert_int_equal(etcd_lease_keepalive(el, id, &ttl), 0);
    assert_int_equal(ttl, 5);
    assert_int_equal(etcd_lease_revoke(el, id), 0);
    assert_int_equal(etcd_lease_get(el, "live/h1", &v, NULL), -ENOENT); /* went with it */
    assert_int_equal(etcd_lease_keepalive(el, id, &ttl), -ENOENT);
    etcd_lease_close(el);
}

static void
test_lease_create_if_absent(void **state)
{
    struct pair *p = *state;
    struct etcd_lease *el = open_leases(p->prefix);
    int64_t a, b;
    int ttl;
    assert_int_equal(etcd_lease_grant(el, 5, &a, &ttl), 0);
    assert_int_equal(etcd_lease_grant(el, 5, &b, &ttl), 0);
    bool created = false, done = true;
    assert_int_equal(etcd_lease_create(el, "master", "A", a, &created), 0);
    assert_true(created);
    assert_int_equal(etcd_lease_create(el, "master", "B", b, &created), 0);
    assert_false(created); /* only one candidate wins */
    assert_int_equal(etcd_lease_replace(el, "master", "B", "C", b, &done), 0);
    assert_false(done); /* it holds A */
    assert_int_equal(etcd_lease_replace(el, "master", "A", "B", b, &done), 0);
    assert_true(done);
    assert_int_equal(etcd_lease_delete(el, "master", "A"), 0); /* not A's any more */
    char *v = NULL;
    int64_t on = 0;
    assert_int_equal(etcd_lease_get(el, "master", &v, &on), 0);
    assert_string_equal(v, "B");
    assert_int_equal(on, b);
    free(v);
    assert_int_equal(etcd_lease_revoke(el, b), 0); /* the holder's lease ends: the key too */
    assert_int_equal(etcd_lease_get(el, "master", &v, NULL), -ENOENT);
    assert_int_equal(etcd_lease_revoke(el, a), 0);
    etcd_lease_close(el);
}

struct lease_seen {
    pthread_mutex_t lock;
    int resets, synced, puts, deletes;
    char last[64];
};

static void
on_watch(void *opaque, enum etcd_watch_event ev, const char *key, const char *value)
{
    (void)value;
    struct lease_seen *s = opaque;
    pthread_mutex_lock(&s->lock);
    if (ev == ETCD_WATCH_RESET)
        s->resets++;
    else if (ev == ETCD_WATCH_SYNCED)
        s->synced++;
    else if (ev == ETCD_WATCH_PUT)
        s->puts++;
    else
        s->deletes++;
    if (key)
        snprintf(s->last, sizeof(s->last), "%s", key);
    pthread_mutex_unlock(&s->lock);
}

static int
lease_seen_count(struct lease_seen *s, int *field)
{
    pthread_mutex_lock(&s->lock);
    int n = *field;
    pthread_mutex_unlock(&s->lock);
    return n;
}

static bool
lease_wait_count(struct lease_seen *s, int *field, int n, int ms)
{
    for (int i = 0; i < ms / 10; i++) {
        if (lease_seen_count(s, field) >= n)
            return true;
        sleep_ms(10);
    }
    return false;
}

/* A watch lists what is there, then reports puts and the expiry of an
 * unrenewed lease's key as a deletion. */
static void
test_lease_expiry_is_watched(void **state)
{
    struct pair *p = *state;
    struct etcd_lease *el = open_leases(p->prefix);
    int64_t keep, lapse;
    int ttl;
    assert_int_equal(etcd_lease_grant(el, 30, &keep, &ttl), 0);
    assert_int_equal(etcd_lease_grant(el, 2, &lapse, &ttl), 0);
    assert_int_equal(etcd_lease_put(el, "live/old", "1", keep), 0);
    assert_int_equal(etcd_lease_put(el, "master", "not-in-range", keep), 0);
    struct lease_seen s = {.lock = PTHREAD_MUTEX_INITIALIZER};
    assert_int_equal(etcd_lease_watch(el, "live/", on_watch, &s), 0);
    assert_true(lease_wait_count(&s, &s.synced, 1, WAIT_S * 1000));
    assert_int_equal(lease_seen_count(&s, &s.puts), 1); /* live/old, not master */
    assert_int_equal(etcd_lease_put(el, "live/new", "2", lapse), 0);
    assert_true(lease_wait_count(&s, &s.puts, 2, WAIT_S * 1000));
    assert_true(lease_wait_count(&s, &s.deletes, 1, WAIT_S * 1000)); /* nobody renewed it */
    pthread_mutex_lock(&s.lock);
    assert_string_equal(s.last, "live/new");
    pthread_mutex_unlock(&s.lock);
    char *v = NULL;
    assert_int_equal(etcd_lease_get(el, "live/old", &v, NULL), 0);
    free(v);
    etcd_lease_revoke(el, keep);
    etcd_lease_close(el);
}

/* Nothing answers: a renewal fails within the timeout, not later. */
static void
test_lease_unreachable_fails_in_time(void **state)
{
    (void)state;
    char *s = NULL, why[256] = "";
    struct etcd_lease *el = NULL;
    int port = free_port(); /* nothing listens there */
    assert_true(asprintf(&s, "http://127.0.0.1:%d;/vessel-test/none", port) > 0);
    assert_int_equal(etcd_lease_open(s, 300, &el, why, sizeof(why)), 0);
    struct timespec t0, t1;
    int ttl;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(etcd_lease_keepalive(el, 1, &ttl), -EIO);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    assert_true(ms < 5000); /* a bound for a broken timeout, not a speed expectation */
    assert_non_null(strstr(etcd_lease_error(), "etcd"));
    etcd_lease_close(el);
    free(s);
    assert_int_equal(etcd_lease_open("no-prefix", 300, &el, why, sizeof(why)), -EINVAL);
}

/* Last: with etcd gone, a write fails cleanly and memory keeps the old record. */
static void
test_etcd_gone(void **state)
{
    struct pair *p = *state;
    char *vm = new_vm(p->a, "kept");
    stop_etcd();
    struct xerr *err = NULL;
    assert_false(set_name(p->a, vm, "lost", &err));
    assert_non_null(err);
    assert_string_equal(err->code, "INTERNAL_ERROR");
    xerr_free(err);
    char *n = name_of(p->a, vm);
    assert_string_equal(n, "kept");
    free(n);
    char why[256] = "";
    struct db *db = NULL;
    char *path = spec(p->prefix);
    assert_true(db_open(path, &db, why, sizeof(why)) < 0);
    assert_non_null(strstr(why, "etcd"));
    free(path);
    free(vm);
}

int
main(void)
{
    if (access(ETCD_BIN, X_OK) != 0) {
        printf("1..0 # SKIP %s is not installed\n", ETCD_BIN);
        return 0;
    }
    if (xmodel_init() < 0 || start_etcd() < 0) {
        fprintf(stderr, "could not start etcd (log in %s)\n", etcd_dir);
        stop_etcd();
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_other_store_sees_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_generation_is_the_revision, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changes_reach_the_other_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reverse_links_follow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_compare_and_swap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_lost_update, setup, teardown),
        cmocka_unit_test_setup_teardown(test_own_commits_come_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_watch_moves_on, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catch_up_after_compaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_batch_fails_cleanly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_grant_renew_revoke, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_create_if_absent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_expiry_is_watched, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_unreachable_fails_in_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_etcd_gone, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    stop_etcd();
    return rc;
}
