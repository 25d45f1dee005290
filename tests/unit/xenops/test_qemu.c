/* tests/unit/xenops/test_qemu.c - the qemu backend with a real tiny guest.
 *
 * The guest (tests/guest/build-guest.sh: the host's Debian cloud kernel, a
 * busybox initramfs and qemu-ga) prints VESSEL-GUEST-UP on its serial console
 * and obeys lines "echo WORD" there (the test's own probes: the backend never
 * types). Guests run under TCG with the uncompressed vmlinux (PVH entry) on pc
 * (agent, ACPI) or a bare microvm, 128 MiB, 1 vCPU; the ACPI case boots
 * without the agent. Each case cleans up its qemus; the run dir is a fresh
 * temp dir removed at the end.
 * Reattach: this binary re-executes itself as "child-start RUN_DIR UUID..."
 * (a process with no threads of ours, so fork is safe), which starts the
 * domains and exits without xenops_free(); the test then recovers them.
 * Debug: XENOPS_TEST_KEEP=1 keeps the run dir (qemu.log, console logs).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "xenops/xenops.h"

#define MARKER "VESSEL-GUEST-UP"
#define BOOT_TIMEOUT_MS 30000

static char run_dir[64];
static char guest_dir[512];
static char self_path[512];
static bool have_guest;

/* ---- events ---- */

struct rec_event {
    char uuid[37];
    enum xenops_event ev;
};

static pthread_mutex_t ev_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ev_cond = PTHREAD_COND_INITIALIZER;
static struct rec_event events[256];
static size_t n_events;

/* A slow consumer of HALTED (vesseld's stops the VM's disk servers). */
static unsigned halted_delay_ms;

static void
on_event(void *opaque, const char *uuid, enum xenops_event ev)
{
    (void)opaque;
    if (ev == XENOPS_EVENT_HALTED && halted_delay_ms)
        nanosleep(&(struct timespec){halted_delay_ms / 1000, (long)(halted_delay_ms % 1000) * 1000000},
                  NULL);
    pthread_mutex_lock(&ev_lock);
    if (n_events < 256) {
        snprintf(events[n_events].uuid, 37, "%s", uuid);
        events[n_events++].ev = ev;
    }
    pthread_cond_broadcast(&ev_cond);
    pthread_mutex_unlock(&ev_lock);
}

static uint64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Waits for (and consumes) the first event @ev of @uuid. */
static bool
wait_event(const char *uuid, enum xenops_event ev, unsigned timeout_ms)
{
    uint64_t end = now_ms() + timeout_ms;
    pthread_mutex_lock(&ev_lock);
    for (;;) {
        for (size_t i = 0; i < n_events; i++) {
            if (events[i].ev == ev && !strcmp(events[i].uuid, uuid)) {
                memmove(&events[i], &events[i + 1], (n_events - i - 1) * sizeof(events[0]));
                n_events--;
                pthread_mutex_unlock(&ev_lock);
                return true;
            }
        }
        if (now_ms() >= end)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&ev_cond, &ev_lock, &ts);
    }
    pthread_mutex_unlock(&ev_lock);
    fprintf(stderr, "# no %s event for %s\n", xenops_event_name(ev), uuid);
    return false;
}

/* ---- live console ---- */

static char live[65536];
static size_t live_len;

static void
on_console(void *opaque, const char *data, size_t len)
{
    (void)opaque;
    pthread_mutex_lock(&ev_lock);
    if (len > sizeof(live) - 1 - live_len)
        len = sizeof(live) - 1 - live_len;
    memcpy(live + live_len, data, len);
    live_len += len;
    live[live_len] = '\0';
    pthread_mutex_unlock(&ev_lock);
}

/* ---- guest ---- */

static int
count_str(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* Waits until @needle occurs at least @times in the console ring. */
static bool
wait_console(struct xenops *x, const char *uuid, const char *needle, int times,
             unsigned timeout_ms)
{
    uint64_t end = now_ms() + timeout_ms;
    do {
        char *buf = NULL;
        size_t len = 0;
        if (xenops_console_read(x, uuid, &buf, &len) == 0) {
            int n = count_str(buf, needle);
            free(buf);
            if (n >= times)
                return true;
        }
        poll(NULL, 0, 50);
    } while (now_ms() < end);
    fprintf(stderr, "# console of %s: no %dx \"%s\"\n", uuid, times, needle);
    return false;
}

/* Sends "echo WORD" until the guest answers (the line is lost while the
 * guest's init is not reading yet). */
static bool
guest_echo(struct xenops *x, const char *uuid, const char *word, unsigned timeout_ms)
{
    char cmd[64], want[64];
    snprintf(cmd, sizeof(cmd), "echo %s\n", word);
    snprintf(want, sizeof(want), "VESSEL-ECHO %s", word);
    uint64_t end = now_ms() + timeout_ms;
    do {
        if (xenops_console_write(x, uuid, cmd, strlen(cmd)) < 0)
            return false;
        if (wait_console(x, uuid, want, 1, 1000))
            return true;
    } while (now_ms() < end);
    return false;
}

static void
make_cfg(struct xenops_domain_config *c, char *uuid, enum xenops_machine m)
{
    static char kernel[600], initrd[600];
    memset(c, 0, sizeof(*c));
    c->uuid = uuid;
    c->memory_bytes = 128u << 20;
    c->vcpus = 1;
    c->boot = XENOPS_BOOT_DIRECT;
    c->machine = m;
    /* the uncompressed kernel boots by its PVH entry on every machine, and
     * seconds sooner than the bzImage under TCG */
    snprintf(kernel, sizeof(kernel), "%s/vmlinux", guest_dir);
    /* microvm here is the bare machine (no ACPI: no agent, no power button),
     * for the cases that need neither */
    c->no_acpi = m == XENOPS_MACHINE_MICROVM;
    snprintf(initrd, sizeof(initrd), "%s/initramfs.cpio", guest_dir);
    c->kernel = kernel;
    c->initrd = initrd;
    c->cmdline = "console=ttyS0 quiet";
    c->accel = XENOPS_ACCEL_TCG;
    c->on_reboot = XENOPS_ACTION_RESTART;
}

static struct xenops *
new_x(void)
{
    struct xenops_init init = {.backend = "qemu", .run_dir = run_dir, .on_event = on_event,
                               .log_max_bytes = 8192};
    struct xenops *x = NULL;
    assert_int_equal(xenops_new(&init, &x), 0);
    return x;
}

/* Alive and not a zombie (an exited qemu waits a moment for init to reap it). */
static bool
pid_alive(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

/* ---- cases ---- */

static void
test_lifecycle(void **state)
{
    (void)state;
    if (!have_guest)
        skip();
    struct xenops *x = new_x();
    char uuid[] = "0e5a0000-0000-4000-8000-000000000001";
    struct xenops_domain_config c;
    make_cfg(&c, uuid, XENOPS_MACHINE_PC);
    uint64_t t0 = now_ms();
    assert_int_equal(xenops_domain_start(x, &c), 0);
    assert_int_equal(xenops_domain_start(x, &c), -EEXIST);
    assert_true(wait_console(x, uuid, MARKER, 1, BOOT_TIMEOUT_MS));
    fprintf(stderr, "# first console marker after %llu ms\n", (unsigned long long)(now_ms() - t0));

    struct xenops_stats st;
    assert_int_equal(xenops_domain_stats(x, uuid, &st), 0);
    assert_int_equal(st.power, XENOPS_POWER_RUNNING);
    assert_true(pid_alive(st.pid));
    assert_string_equal(st.accel, "tcg");
    assert_true(st.memory_actual_bytes > 0);
    assert_true(st.vcpu_time_ns[0] > 0);

    /* pause / unpause */
    assert_int_equal(xenops_domain_pause(x, uuid), 0);
    assert_true(wait_event(uuid, XENOPS_EVENT_PAUSED, 5000));
    assert_int_equal(xenops_domain_pause(x, uuid), -EBUSY);
    assert_int_equal(xenops_domain_stats(x, uuid, &st), 0);
    assert_int_equal(st.power, XENOPS_POWER_PAUSED);
    assert_int_equal(xenops_domain_unpause(x, uuid), 0);
    assert_true(wait_event(uuid, XENOPS_EVENT_RESUMED, 5000));
    assert_true(guest_echo(x, uuid, "one", 10000));
    /* enough output to rotate the log: the kernel's messages */
    assert_int_equal(xenops_console_write(x, uuid, "run dmesg\n", 10), 0);
    assert_true(wait_console(x, uuid, "Run /init", 1, 10000));

    /* the guest's agent answers: it tells who it is */
    struct xenops_guest_info *info = NULL;
    uint64_t end = now_ms() + 20000;
    while (xenops_agent_info(x, uuid, 3000, &info) != 0 && now_ms() < end)
        usleep(200000);
    assert_non_null(info);
    assert_string_equal(info->os_id, "vessel-test");
    assert_non_null(info->agent_version);
    xenops_guest_info_free(info);

    /* clean reboot (through the agent): the guest resets, qemu resets in place (on_reboot restart);
     * a live console subscriber sees the second boot */
    uint64_t sub = 0;
    assert_int_equal(xenops_console_subscribe_replay(x, uuid, on_console, NULL, &sub), 0);
    pthread_mutex_lock(&ev_lock);
    assert_non_null(strstr(live, "VESSEL-ECHO one")); /* the replay */
    live_len = 0;
    live[0] = '\0';
    pthread_mutex_unlock(&ev_lock);
    assert_int_equal(xenops_domain_reboot(x, uuid, false, 20000), 0);
    assert_true(wait_event(uuid, XENOPS_EVENT_REBOOTED, 5000));
    assert_true(wait_console(x, uuid, MARKER, 2, BOOT_TIMEOUT_MS));
    xenops_console_unsubscribe(x, uuid, sub);
    pthread_mutex_lock(&ev_lock);
    assert_non_null(strstr(live, MARKER));
    pthread_mutex_unlock(&ev_lock);

    /* suspend to a file, resume, the guest still answers */
    char img[128];
    snprintf(img, sizeof(img), "%s/suspend.img", run_dir);
    assert_int_equal(xenops_domain_suspend(x, uuid, img), 0);
    assert_true(wait_event(uuid, XENOPS_EVENT_SUSPENDED, 5000));
    assert_false(pid_alive(st.pid));
    struct stat sb;
    assert_int_equal(stat(img, &sb), 0);
    assert_true(sb.st_size > (1 << 20));
    assert_int_equal(xenops_domain_stats(x, uuid, &st), -ENOENT);
    assert_int_equal(xenops_domain_resume(x, &c, img), 0);
    assert_true(wait_event(uuid, XENOPS_EVENT_RESUMED, 5000));
    assert_true(guest_echo(x, uuid, "two", 10000));
    unlink(img);

    /* clean shutdown (through the agent): the guest powers off */
    end = now_ms() + 20000;
    while (xenops_agent_info(x, uuid, 3000, &info) != 0 && now_ms() < end)
        usleep(200000);
    xenops_guest_info_free(info);
    assert_int_equal(xenops_domain_stats(x, uuid, &st), 0);
    assert_int_equal(xenops_domain_shutdown(x, uuid, false, 20000), 0);
    assert_true(wait_event(uuid, XENOPS_EVENT_HALTED, 5000));
    assert_false(pid_alive(st.pid));
    assert_int_equal(xenops_domain_pause(x, uuid), -ENOENT);

    /* the console log outlived the domain, and was rotated (8 KiB limit) */
    char log[160];
    snprintf(log, sizeof(log), "%s/%s.log", run_dir, uuid);
    assert_int_equal(stat(log, &sb), 0);
    assert_true(sb.st_size > 0 && sb.st_size <= 8192);
    strcat(log, ".1");
    assert_int_equal(stat(log, &sb), 0);
    assert_true(sb.st_size > 0 && sb.st_size <= 8192);
    xenops_free(x);
}

/* The uid line of /proc/@pid/status: "real effective saved fs". */
static void
proc_ids(pid_t pid, char *uid_line, size_t len)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    uid_line[0] = '\0';
    while (f && fgets(line, sizeof(line), f))
        if (!strncmp(line, "Uid:", 4))
            snprintf(uid_line, len, "%s", line + 4);
    if (f)
        fclose(f);
}

/* A device model under its own uid boots from descriptors vesseld opened,
 * yet cannot read a file its uid may not: the initrd /etc/shadow (0640 or
 * stricter) fails qemu's start even when the check above xenops is bypassed
 * (issue 11: "so it could not open such a file anyway"). */
static void
test_deprivileged(void **state)
{
    (void)state;
    if (!have_guest || geteuid() != 0)
        skip();
    struct xenops *x = new_x();
    char uuid[] = "0e5a0000-0000-4000-8000-000000000009";
    struct xenops_domain_config c;
    make_cfg(&c, uuid, XENOPS_MACHINE_MICROVM);
    c.uid = c.gid = 200999;
    char *initrd = c.initrd;
    c.initrd = "/etc/shadow";
    assert_int_not_equal(xenops_domain_start(x, &c), 0);
    char path[160];
    snprintf(path, sizeof(path), "%s/%s", run_dir, uuid);
    assert_int_not_equal(access(path, F_OK), 0); /* nothing left behind */
    c.initrd = initrd;
    assert_int_equal(xenops_domain_start(x, &c), 0);
    assert_true(wait_console(x, uuid, MARKER, 1, BOOT_TIMEOUT_MS));
    struct xenops_stats st;
    assert_int_equal(xenops_domain_stats(x, uuid, &st), 0);
    char ids[256];
    proc_ids(st.pid, ids, sizeof(ids));
    assert_non_null(strstr(ids, "200999\t200999\t200999\t200999"));
    assert_true(st.vcpu_time_ns[0] > 0); /* vCPU thread ids mapped out of its PID namespace */
    assert_int_equal(xenops_domain_shutdown(x, uuid, true, 0), 0);
    assert_true(wait_event(uuid, XENOPS_EVENT_HALTED, 5000));
    xenops_free(x);
}

struct killed {
    pid_t pid;
    int calls;         /* XENOPS_DESTROYED */
    int exits;         /* XENOPS_EXITED */
    bool exited_first; /* EXITED came before DESTROYED */
    bool alive_at_exit; /* the device model still ran at EXITED */
};

static void
on_killed(void *opaque, enum xenops_destroy_step step)
{
    struct killed *k = opaque;
    if (step == XENOPS_DESTROYED) {
        k->calls++;
        return;
    }
    k->exits++;
    k->exited_first |= k->calls == 0;
    k->alive_at_exit |= pid_alive(k->pid);
}

/* true once no dead domain's directory is left aside in run_dir (the
 * supervisor removes it after announcing the exit) */
static bool
no_dir_aside(unsigned timeout_ms)
{
    uint64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        bool aside = false;
        DIR *d = opendir(run_dir);
        struct dirent *e;
        while (d && (e = readdir(d)))
            aside |= !strncmp(e->d_name, ".gone.", 6);
        if (d)
            closedir(d);
        if (!aside)
            return true;
        if (now_ms() >= deadline)
            return false;
        usleep(10000);
    }
}

static void
test_hard_shutdown_and_crash(void **state)
{
    (void)state;
    if (!have_guest)
        skip();
    struct xenops *x = new_x();
    char a[] = "0e5a0000-0000-4000-8000-000000000002";
    char b[] = "0e5a0000-0000-4000-8000-000000000003";
    struct xenops_domain_config ca, cb;
    make_cfg(&ca, a, XENOPS_MACHINE_MICROVM);
    make_cfg(&cb, b, XENOPS_MACHINE_MICROVM);
    assert_int_equal(xenops_domain_start(x, &ca), 0);
    assert_int_equal(xenops_domain_start(x, &cb), 0);
    struct xenops_stats sa, sb;
    assert_int_equal(xenops_domain_stats(x, a, &sa), 0);
    assert_int_equal(xenops_domain_stats(x, b, &sb), 0);

    /* microvm without ACPI has no agent channel it can find, no power
     * button: a clean shutdown cannot be asked for (nothing is typed) */
    assert_int_equal(xenops_domain_shutdown(x, a, false, 1000), -ENOTSUP);
    assert_true(pid_alive(sa.pid));
    /* the hard shutdown returns only once its exit events are out, however
     * slow their consumer: no late HALTED can meet a next start */
    halted_delay_ms = 300;
    assert_int_equal(xenops_domain_shutdown(x, a, true, 0), 0);
    halted_delay_ms = 0;
    assert_true(wait_event(a, XENOPS_EVENT_HALTED, 0));
    assert_false(pid_alive(sa.pid));

    uint64_t t0 = now_ms();
    assert_int_equal(kill(sb.pid, SIGKILL), 0);
    assert_true(wait_event(b, XENOPS_EVENT_CRASHED, 5000));
    fprintf(stderr, "# crash seen after %llu ms\n", (unsigned long long)(now_ms() - t0));
    assert_true(wait_event(b, XENOPS_EVENT_HALTED, 5000));
    char path[160];
    snprintf(path, sizeof(path), "%s/%s", run_dir, b);
    assert_int_not_equal(access(path, F_OK), 0); /* nothing left behind */

    /* on_crash restart: a new qemu replaces the killed one */
    cb.on_crash = XENOPS_ACTION_RESTART;
    assert_int_equal(xenops_domain_start(x, &cb), 0);
    assert_int_equal(xenops_domain_stats(x, b, &sb), 0);
    pid_t old = sb.pid;
    assert_int_equal(kill(old, SIGKILL), 0);
    assert_true(wait_event(b, XENOPS_EVENT_CRASHED, 5000));
    assert_true(wait_event(b, XENOPS_EVENT_REBOOTED, 10000));
    assert_int_equal(xenops_domain_stats(x, b, &sb), 0);
    assert_int_not_equal(sb.pid, old);
    assert_true(pid_alive(sb.pid));
    /* the split hard shutdown: the caller's callback runs once between the
     * SIGKILL and the wait, and once after qemu's exit; the call returns as a
     * hard shutdown does (exit events out, the domain's directory gone at
     * once, its files soon) */
    struct killed k = {.pid = sb.pid};
    assert_int_equal(xenops_domain_destroy(x, b, on_killed, &k), 0);
    assert_int_equal(k.calls, 1);
    assert_int_equal(k.exits, 1);
    assert_false(k.exited_first);
    assert_false(k.alive_at_exit);
    assert_true(wait_event(b, XENOPS_EVENT_HALTED, 0));
    assert_false(pid_alive(sb.pid));
    assert_int_not_equal(access(path, F_OK), 0);
    assert_true(no_dir_aside(5000));
    assert_int_equal(xenops_domain_destroy(x, b, on_killed, &k), -ENOENT);
    assert_int_equal(k.calls, 1);
    assert_int_equal(k.exits, 1);
    xenops_free(x);
}

static void
test_acpi_shutdown_pc(void **state)
{
    (void)state;
    if (!have_guest)
        skip();
    struct xenops *x = new_x();
    char u[] = "0e5a0000-0000-4000-8000-000000000004";
    struct xenops_domain_config c;
    make_cfg(&c, u, XENOPS_MACHINE_PC);
    c.cmdline = "console=ttyS0 quiet vessel.noagent";
    assert_int_equal(xenops_domain_start(x, &c), 0);
    char *vnc = NULL;
    assert_int_equal(xenops_console_vnc_path(x, u, &vnc), 0);
    free(vnc);
    assert_true(wait_console(x, u, MARKER, 1, BOOT_TIMEOUT_MS));
    /* acpid runs just before the marker; give it a moment to open the button */
    assert_true(guest_echo(x, u, "acpi", 10000));
    /* no agent: no clean reboot (ACPI has no such button); the power button works */
    assert_int_equal(xenops_domain_reboot(x, u, false, 20000), -ENOTSUP);
    assert_int_equal(xenops_domain_shutdown(x, u, false, 20000), 0);
    assert_true(wait_event(u, XENOPS_EVENT_HALTED, 5000));
    xenops_free(x);
}

static void
test_reattach(void **state)
{
    (void)state;
    if (!have_guest)
        skip();
    char a[] = "0e5a0000-0000-4000-8000-000000000005";
    char b[] = "0e5a0000-0000-4000-8000-000000000006";
    pid_t child = fork();
    if (child == 0) {
        execl(self_path, self_path, "child-start", run_dir, guest_dir, a, b, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    struct xenops *x = new_x();
    char **v = NULL;
    size_t n = 0;
    assert_int_equal(xenops_recover(x, &v, &n), 0);
    assert_int_equal(n, 2);
    assert_true((!strcmp(v[0], a) && !strcmp(v[1], b)) || (!strcmp(v[0], b) && !strcmp(v[1], a)));
    xenops_strv_free(v, n);
    struct xenops_stats st;
    assert_int_equal(xenops_domain_stats(x, a, &st), 0);
    assert_true(pid_alive(st.pid));
    assert_true(guest_echo(x, a, "back", BOOT_TIMEOUT_MS));
    /* hard reboot of an adopted domain: reset in place, the guest boots again */
    int markers = 0;
    char *buf = NULL;
    size_t len = 0;
    assert_int_equal(xenops_console_read(x, a, &buf, &len), 0);
    markers = count_str(buf, MARKER);
    free(buf);
    assert_int_equal(xenops_domain_reboot(x, a, true, 0), 0);
    assert_true(wait_event(a, XENOPS_EVENT_REBOOTED, 5000));
    assert_true(wait_console(x, a, MARKER, markers + 1, BOOT_TIMEOUT_MS));
    /* supervision works on an adopted domain: a crash is seen */
    assert_int_equal(xenops_domain_stats(x, b, &st), 0);
    kill(st.pid, SIGKILL);
    assert_true(wait_event(b, XENOPS_EVENT_CRASHED, 5000));
    assert_int_equal(xenops_domain_shutdown(x, a, true, 0), 0);
    assert_true(wait_event(a, XENOPS_EVENT_HALTED, 5000));
    xenops_free(x);
}

static void
test_kvm_probe(void **state)
{
    (void)state;
    const char *accel = xenops_kvm_probe(NULL, 3000);
    assert_true(!strcmp(accel, "kvm") || !strcmp(accel, "tcg"));
    /* the probe's guest itself works (under TCG) */
    bool xenops_probe_accel(const char *qemu_binary, const char *accel, unsigned timeout_ms);
    assert_true(xenops_probe_accel(NULL, "tcg", 15000));
}

/* ---- setup ---- */

static int
child_start(int argc, char **argv)
{
    snprintf(run_dir, sizeof(run_dir), "%s", argv[2]);
    snprintf(guest_dir, sizeof(guest_dir), "%s", argv[3]);
    struct xenops_init init = {.backend = "qemu", .run_dir = run_dir};
    struct xenops *x = NULL;
    if (xenops_new(&init, &x) < 0)
        return 1;
    for (int i = 4; i < argc; i++) {
        struct xenops_domain_config c;
        make_cfg(&c, argv[i], XENOPS_MACHINE_MICROVM);
        if (xenops_domain_start(x, &c) < 0)
            return 2;
    }
    _exit(0); /* dies like a SIGKILLed toolstack: no xenops_free() */
}

/* A shell script that kills every process working in our run dir (set once
 * run_dir is): our qemus, whose command lines name their files relative to
 * it. */
static char leftover_script[256];

/* Kills every qemu of ours (a failed case may leave one: they are detached,
 * nobody else would). Async-signal-safe: a timeout's SIGTERM runs it too. */
static void
kill_leftovers(void)
{
    if (!leftover_script[0])
        return;
    pid_t p = fork();
    if (p == 0) {
        char *const args[] = {"sh", "-c", leftover_script, NULL};
        char *const env[] = {"PATH=/usr/bin:/bin", NULL};
        execve("/bin/sh", args, env);
        _exit(127);
    }
    if (p > 0)
        waitpid(p, NULL, 0);
}

/* meson's timeout (SIGTERM) ends the run before group_teardown: its qemus,
 * detached, would run on for good */
static void
on_terminate(int sig)
{
    (void)sig;
    kill_leftovers();
    _exit(1);
}

static int
group_setup(void **state)
{
    (void)state;
    const char *script = getenv("XENOPS_GUEST_SCRIPT");
    const char *dir = getenv("XENOPS_GUEST_DIR");
    snprintf(run_dir, sizeof(run_dir), "/tmp/vxq-XXXXXX");
    if (!mkdtemp(run_dir))
        return -1;
    snprintf(leftover_script, sizeof(leftover_script),
             "for p in /proc/[0-9]*; do case $(readlink $p/cwd) in %s/*) "
             "kill -9 ${p#/proc/};; esac; done 2>/dev/null",
             run_dir);
    struct sigaction sa = {.sa_handler = on_terminate};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (!script || !dir)
        return 0;
    snprintf(guest_dir, sizeof(guest_dir), "%s", dir);
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "sh '%s' '%s' >&2", script, dir);
    have_guest = system(cmd) == 0;
    return 0;
}

static int
group_teardown(void **state)
{
    (void)state;
    kill_leftovers();
    if (!getenv("XENOPS_TEST_KEEP")) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", run_dir);
        (void)!system(cmd);
    }
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc >= 4 && !strcmp(argv[1], "child-start"))
        return child_start(argc, argv);
    if (!realpath("/proc/self/exe", self_path))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lifecycle),
        cmocka_unit_test(test_hard_shutdown_and_crash),
        cmocka_unit_test(test_reattach),
        cmocka_unit_test(test_acpi_shutdown_pc),
        cmocka_unit_test(test_kvm_probe),
        cmocka_unit_test(test_deprivileged),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
