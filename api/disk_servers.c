/* api/disk_servers.c - one `vhd serve` per disk of a running VM.
 *
 * The tapdisk of this platform: before a domain starts, each VBD with a VDI
 * gets its own `vhd serve --socket` process (read-only when the VBD or VDI
 * is), and the domain's device model connects to it over NBD. A disk server
 * is its own process, deprivileged by itself (tools/vhd/sandbox.c), so a
 * guest that breaks it reaches one disk and nothing else.
 *
 * The servers are detached (double fork, own session) so that they outlive a
 * restart of vesseld together with their guest. Their files in
 * DATA/run/disks/ find them again: <vm uuid>.<n>.pid (to stop them),
 * .sock (NBD, for the device model), .ctl (the control socket: pause and
 * reload, storage/serve_ctl.h) and .vdi (the SR directory and VDI uuid
 * served, so that a live snapshot or the collector finds every server of a
 * VDI).
 *
 * A live migration's destination gets its own servers of the same VDIs
 * before its source's stop (disk_servers_start_standby): `vhd serve
 * --standby`, under the names in-<vm uuid>.<n>.*, so that they live beside
 * the source's on one host. They answer the NBD handshake and hold all I/O;
 * they read nothing of the image but its footer copy until
 * disk_servers_activate hands them the chains, after the source's servers
 * flushed and closed (single writer), and renames them to the VM's names.
 *
 * One lock (disk_servers_lock) orders the moments when a VDI's files and
 * its servers must agree: a server starting or stopping, and the steps that
 * change a served VDI's chain (live snapshots, api/storage_gc.c).
 */
#include "api/disk_servers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "api/disk_order.h"
#include "api/helper_ids.h"
#include "api/pool_live.h"
#include "api/storage_api.h"
#include "common/cleanup.h"
#include "common/log.h"
#include "db/db.h"
#include "xapi_errors.h"
#include "storage/serve_ctl.h"
#include "storage/sr_file.h"

static void
disks_dir(struct server *srv, char *out, size_t len)
{
    snprintf(out, len, "%s/run/disks", srv->data_dir);
}

/* The vhd tool installed beside vesseld (build/vhd), else from PATH. */
static void
vhd_binary(char *out, size_t len)
{
    char self[2048];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = '\0';
            snprintf(out, len, "%s/vhd", self);
            if (access(out, X_OK) == 0)
                return;
        }
    }
    snprintf(out, len, "vhd");
}

/* Starts `vhd serve` detached, as root: it opens its chain and binds its
 * sockets, then takes @user ("UID:GID", or NULL: stays as we are) before it
 * serves (tools/vhd/serve.c). Returns its pid or a negative errno. */
static pid_t
spawn_server(const char *vhd, const char *socket_path, const char *control_path, const char *file,
             bool read_only, bool standby, const char *user)
{
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return -errno;
    pid_t child = fork();
    if (child < 0) {
        close(pipefd[0]);
        close(pipefd[1]);
        return -errno;
    }
    if (child == 0) {
        setsid();
        pid_t grand = fork();
        if (grand == 0) {
            int null = open("/dev/null", O_RDWR);
            if (null >= 0) {
                dup2(null, 0);
                dup2(null, 1);
            }
            sigset_t none;
            sigemptyset(&none);
            sigprocmask(SIG_SETMASK, &none, NULL);
            const char *argv[12];
            int i = 0;
            argv[i++] = vhd;
            argv[i++] = "serve";
            if (user) {
                argv[i++] = "--user";
                argv[i++] = user;
            }
            argv[i++] = "--socket";
            argv[i++] = socket_path;
            argv[i++] = "--control";
            argv[i++] = control_path;
            if (read_only)
                argv[i++] = "--read-only";
            if (standby)
                argv[i++] = "--standby";
            argv[i++] = file;
            argv[i] = NULL;
            execvp(vhd, (char *const *)argv);
            _exit(127);
        }
        ssize_t ignored = write(pipefd[1], &grand, sizeof(grand));
        (void)ignored;
        _exit(grand > 0 ? 0 : 1);
    }
    close(pipefd[1]);
    pid_t grand = -1;
    if (read(pipefd[0], &grand, sizeof(grand)) != (ssize_t)sizeof(grand))
        grand = -EIO;
    close(pipefd[0]);
    waitpid(child, NULL, 0);
    return grand;
}

static bool
add_disk(struct xenops_domain_config *cfg, const char *socket_path, bool read_only, bool cdrom)
{
    struct xenops_disk *disks = realloc(cfg->disks, (cfg->n_disks + 1) * sizeof(*disks));
    if (!disks)
        return false;
    cfg->disks = disks;
    struct xenops_disk *d = &disks[cfg->n_disks];
    memset(d, 0, sizeof(*d));
    if (!(d->path = strdup(socket_path)))
        return false;
    d->format = XENOPS_DISK_NBD;
    d->read_only = read_only || cdrom;
    d->cdrom = cdrom;
    cfg->n_disks++;
    return true;
}

/* A new file of ours in DATA/run/disks, which device models may pass
 * through: 0600 whatever the umask. */
static FILE *
fopen_private(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (fd >= 0 && !f)
        close(fd);
    return f;
}

/* The NBD socket is for the domain's device model alone (its uid, 0600; the
 * directory lets it pass, not list); the control socket is vesseld's (0600
 * root). Both were made by the server before it dropped to its own uid. */
static int
restrict_sockets(const char *sock, const char *ctl, unsigned qemu_uid)
{
    if (qemu_uid && chown(sock, qemu_uid, qemu_uid) < 0)
        return -errno;
    if (chmod(sock, 0600) < 0 || chmod(ctl, 0600) < 0)
        return -errno;
    return 0;
}

/* What a server's DATA/run/disks/<vm>.<slot>.vdi records (written by serve_begin). */
struct served {
    char sr_path[4096];
    char vdi[64];
    char vbd[128];
    bool rw; /* a fourth line "ro" says read-only; servers from before it: rw */
};

static bool read_served(const char *dir, const char *name, struct served *out);

struct vdi_users {
    const char *vm;   /* the VM being served: its own VBDs do not count */
    bool rw, any;     /* another running VM has the VDI attached (read-write) */
};

static void
peek_user_vm(void *opaque, const void *rec)
{
    const struct xapi_vm_record *vm = rec;
    bool *running = opaque;
    /* a suspended VM's disks are offline; the control domain shares safely */
    *running = !vm->is_control_domain && (vm->power_state == XAPI_VM_POWER_STATE_RUNNING ||
                                          vm->power_state == XAPI_VM_POWER_STATE_PAUSED);
}

static void served_here(struct server *srv, const char *vm_uuid, const char *vdi_uuid,
                        struct vdi_users *u);
static void release_if_unserved(struct server *srv, const char *vdi_uuid);

/* The pool-wide writer of a VDI: P/vdi-writer/<vdi uuid> names the host
 * whose disk server writes it, on that host's lease (api/pool_live.h), so
 * that two hosts starting guests on one VDI at once cannot both write it;
 * it goes with the host's lease when the host dies. */
static void
writer_key(const char *vdi_uuid, char *key, size_t len)
{
    snprintf(key, len, "vdi-writer/%s", vdi_uuid);
}

/* xapi_vbd_helpers.ml's sharing check at attach, from the records every host
 * of the pool shares (a shared SR's VDI may be attached on another host):
 * a VDI that is not sharable has one writer, or only readers.
 * VDI_IN_USE [vdi, "attach"] otherwise. */
static bool
assert_sharing(struct server *srv, const char *vdi_ref, const struct xapi_vdi_record *vdi,
               const char *vm_ref, const char *vm_uuid, bool read_only, struct xerr **errp)
{
    if (vdi->sharable)
        return true;
    struct vdi_users u = {vm_ref, false, false};
    /* this host's servers first: another VM's start may not have marked its
     * VBDs attached yet (disk_servers_lock orders the servers, not records) */
    served_here(srv, vm_uuid, vdi->uuid, &u);
    for (size_t i = 0; i < vdi->VBDs.n; i++) {
        struct xapi_vbd_record *b = NULL;
        if (!db_get(srv->db, &xapi_class_vbd, vdi->VBDs.items[i], (void **)&b, NULL))
            continue;
        bool running = false;
        if (b->currently_attached && strcmp(b->VM, u.vm) != 0)
            db_with(srv->db, &xapi_class_vm, b->VM, peek_user_vm, &running, NULL);
        if (running) {
            u.any = true;
            u.rw |= b->mode == XAPI_VBD_MODE_RW;
        }
        xapi_vbd_record_free(b);
    }
    if (u.rw || (!read_only && u.any)) {
        log_warn("disk.serve", "vdi=%s refused=in-use rw=%d", vdi->uuid, !read_only);
        return xerr_vdi_in_use(errp, vdi_ref, "attach");
    }
    return true;
}

/* A server being started: spawned, its files named, not yet known ready. */
struct starting {
    pid_t pid;
    int pidfd;
    bool read_only, cdrom, standby;
    char sock[4200], ctl[4200], vdi_uuid[64];
};

/* The prefix of a standby server's files: in-<vm uuid>.<n>.* */
#define STANDBY_PREFIX "in-"

/* Spawns the server of VBD @vbd_ref in slot @n, without waiting for it: its
 * pid file is written at once, so disk_servers_stop finds it whatever
 * happens next. *@empty: an empty drive, nothing to serve (st unused). */
static bool
serve_begin(struct server *srv, const struct xapi_vm_record *vm, int64_t domid,
            const char *vbd_ref, unsigned n, bool standby, struct starting *st, bool *empty,
            struct xerr **errp)
{
    const char *prefix = standby ? STANDBY_PREFIX : "";
    bool claimed = false;
    struct xapi_vbd_record *vbd = NULL;
    struct xapi_vdi_record *vdi = NULL;
    char *sr_path = NULL;
    *empty = false;
    st->pid = -1;
    st->pidfd = -1;
    bool ok = db_get(srv->db, &xapi_class_vbd, vbd_ref, (void **)&vbd, errp);
    if (ok && (vbd->empty || strcmp(vbd->VDI, "OpaqueRef:NULL") == 0)) {
        *empty = true; /* an empty CD drive: nothing to serve */
        goto out;
    }
    ok = ok && db_get(srv->db, &xapi_class_vdi, vbd->VDI, (void **)&vdi, errp) &&
         storage_sr_path(srv->db, srv->host_ref, vdi->SR, &sr_path, errp);
    if (!ok)
        goto out;
    char file[4096], dir[4096], pidfile[4200], vdifile[4200], vhd[2200];
    int rc = sr_file_vdi_path(sr_path, vdi->uuid, file, sizeof(file));
    if (rc < 0) {
        ok = storage_fail(errp, rc, vdi->SR, vbd->VDI);
        goto out;
    }
    disks_dir(srv, dir, sizeof(dir));
    snprintf(st->sock, sizeof(st->sock), "%s/%s%s.%u.sock", dir, prefix, vm->uuid, n);
    snprintf(st->ctl, sizeof(st->ctl), "%s/%s%s.%u.ctl", dir, prefix, vm->uuid, n);
    snprintf(pidfile, sizeof(pidfile), "%s/%s%s.%u.pid", dir, prefix, vm->uuid, n);
    snprintf(vdifile, sizeof(vdifile), "%s/%s%s.%u.vdi", dir, prefix, vm->uuid, n);
    snprintf(st->vdi_uuid, sizeof(st->vdi_uuid), "%s", vdi->uuid);
    unlink(st->sock);
    unlink(st->ctl);
    st->cdrom = vbd->type == XAPI_VBD_TYPE_CD;
    st->read_only = vbd->mode == XAPI_VBD_MODE_RO || vdi->read_only || st->cdrom;
    /* a migration's standby writes nothing until its source let go */
    if (!standby &&
        !assert_sharing(srv, vbd->VDI, vdi, vbd->VM, vm->uuid, st->read_only, errp)) {
        ok = false;
        goto out;
    }
    char key[80];
    writer_key(vdi->uuid, key, sizeof(key));
    if (!standby && !st->read_only && !vdi->sharable) {
        if (!pool_live_hold(srv, key)) {
            log_warn("disk.serve", "vdi=%s refused=writer-elsewhere", vdi->uuid);
            ok = xerr_vdi_in_use(errp, vbd->VDI, "attach");
            goto out;
        }
        claimed = true;
    }
    vhd_binary(vhd, sizeof(vhd));
    unsigned vhd_uid = domains_vhd_uid(srv, domid);
    char user[32];
    snprintf(user, sizeof(user), "%u:%u", vhd_uid, vhd_uid);
    st->standby = standby;
    st->pid = spawn_server(vhd, st->sock, st->ctl, file, st->read_only, standby,
                           vhd_uid ? user : NULL);
    if (st->pid > 0)
        st->pidfd = (int)syscall(SYS_pidfd_open, st->pid, 0);
    if (st->pid <= 0 || st->pidfd < 0) {
        if (st->pid > 0)
            kill(st->pid, SIGKILL);
        ok = xerr_sr_backend_failure(errp, "EIO", "", "the disk server did not start");
        goto out;
    }
    FILE *f = fopen_private(pidfile);
    if (f) {
        fprintf(f, "%ld\n", (long)st->pid);
        fclose(f);
    }
    if ((f = fopen_private(vdifile))) {
        fprintf(f, "%s\n%s\n%s\n%s\n", sr_path, vdi->uuid, vbd_ref,
                st->read_only ? "ro" : "rw");
        fclose(f);
    }
out:
    if (claimed && !ok)
        release_if_unserved(srv, vdi->uuid);
    xapi_vbd_record_free(vbd);
    xapi_vdi_record_free(vdi);
    free(sr_path);
    return ok;
}

static bool
is_socket(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* Waits (5 s at most) until each of the @n servers in @st has bound its
 * sockets (the control socket is bound after the NBD one: both exist once it
 * does). Woken by inotify on the directory and by the servers' pidfds, not a
 * timer: servers started together come up together. False when one exited
 * or the time ran out. */
static bool
wait_ready(const char *dir, struct starting *st, size_t n)
{
    _cleanup_close_ int ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (ino >= 0 && inotify_add_watch(ino, dir, IN_CREATE | IN_MOVED_TO) < 0) {
        close(ino);
        ino = -1;
    }
    uint64_t deadline = log_clock_us() + 5000000;
    for (;;) {
        size_t ready = 0;
        for (size_t i = 0; i < n; i++)
            ready += is_socket(st[i].ctl);
        if (ready == n)
            return true;
        uint64_t now = log_clock_us();
        if (now >= deadline)
            return false;
        struct pollfd p[65];
        size_t k = 0;
        p[k++] = (struct pollfd){.fd = ino, .events = POLLIN};
        for (size_t i = 0; i < n && k < 65; i++)
            p[k++] = (struct pollfd){.fd = st[i].pidfd, .events = POLLIN};
        /* without inotify (a full table of watches), a 10 ms tick */
        int wait_ms = ino >= 0 ? (int)((deadline - now) / 1000) + 1 : 10;
        if (poll(p, k, wait_ms) < 0 && errno != EINTR)
            return false;
        for (size_t i = 1; i < k; i++)
            if (p[i].revents)
                return false; /* a server exited: it serves nothing */
        char buf[4096];
        while (ino >= 0 && read(ino, buf, sizeof(buf)) > 0)
            ;
    }
}

/* A ready server's sockets restricted and its disk added to @cfg. */
static bool
serve_finish(struct server *srv, const struct xapi_vm_record *vm, int64_t domid,
             const struct starting *st, struct xenops_domain_config *cfg, struct xerr **errp)
{
    if (restrict_sockets(st->sock, st->ctl, domains_qemu_uid(srv, domid)) < 0)
        return xerr_sr_backend_failure(errp, "EIO", "", "the disk server did not start");
    if (!add_disk(cfg, st->sock, st->read_only, st->cdrom))
        return xerr_nomem(errp);
    log_info("disk.serve", "vm=%s vdi=%s pid=%ld ro=%d standby=%d", vm->uuid, st->vdi_uuid,
             (long)st->pid, st->read_only, st->standby);
    return true;
}

static int slot_now(struct server *srv, const struct xapi_vm_record *vm, const char *vbd_ref);

/* Starts the servers of @vbds (slots from cfg->n_disks on, in order; empty
 * drives take none) all at once, then waits for them together. On failure
 * the servers begun stay for the caller's disk_servers_stop (standby ones:
 * disk_servers_stop_standby). @standby: a migration's destination, which
 * serves exactly the disks its source serves, in the same slots. */
static bool
serve_many(struct server *srv, const struct xapi_vm_record *vm, int64_t domid,
           char *const *vbds, size_t n_vbds, unsigned first_slot, bool standby,
           struct xenops_domain_config *cfg, struct xerr **errp)
{
    if (n_vbds > 64)
        return xerr_operation_not_allowed(errp, "a VM may have 64 disks at most");
    struct starting st[64];
    size_t n = 0;
    bool ok = true;
    for (size_t i = 0; ok && i < n_vbds; i++) {
        bool empty;
        unsigned slot = first_slot + (unsigned)n;
        if (standby) {
            int now = slot_now(srv, vm, vbds[i]);
            if (now < 0)
                continue; /* unplugged on the source: unplugged here */
            /* the destination's devices must be the source's, in the same places */
            if ((unsigned)now != slot) {
                ok = xerr_operation_not_allowed(errp, "the VM's disks were hot-plugged out of "
                                                "order: its destination cannot lay them out as "
                                                "its source has them");
                break;
            }
        }
        ok = serve_begin(srv, vm, domid, vbds[i], slot, standby, &st[n], &empty, errp);
        if (ok && !empty)
            n++;
    }
    char dir[4096];
    disks_dir(srv, dir, sizeof(dir));
    if (ok && n && !wait_ready(dir, st, n))
        ok = xerr_sr_backend_failure(errp, "EIO", "", "the disk server did not start");
    for (size_t i = 0; ok && i < n; i++)
        ok = serve_finish(srv, vm, domid, &st[i], cfg, errp);
    for (size_t i = 0; i < n; i++)
        close(st[i].pidfd);
    return ok;
}

/* DATA/run and DATA/run/disks: searchable (not listable) by the device
 * models, which reach their disk sockets as ../../disks/ from their own
 * directories (xenops/qemu.c); DATA itself stays 0700. */
static void
make_disks_dir(struct server *srv)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/run", srv->data_dir);
    mkdir(dir, 0711);
    chmod(dir, 0711);
    disks_dir(srv, dir, sizeof(dir));
    mkdir(dir, 0711);
    chmod(dir, 0711);
}

static int slot_of(const char *dir, const char *vm_uuid, const char *vbd_ref);

static void
peek_served_vbd(void *opaque, const void *rec)
{
    const struct xapi_vbd_record *b = rec;
    *(bool *)opaque = b->currently_attached && !b->empty && strcmp(b->VDI, "OpaqueRef:NULL") != 0;
}

/* Whether this host serves any disk of VM @vm_uuid. */
static bool
serves_vm(const char *dir, const char *vm_uuid)
{
    char path[4400];
    for (unsigned n = 0; n < 64; n++) {
        snprintf(path, sizeof(path), "%s/%s.%u.pid", dir, vm_uuid, n);
        if (access(path, F_OK) == 0)
            return true;
    }
    return false;
}

/* The slot of a VBD of @vm served now, or -1: a migration's destination
 * serves exactly the disks its source has (an unplugged VBD stays unplugged).
 * A source on another host of the pool: its attached disks as the records
 * show them, in the VM's VBD order as its start laid them out (a source
 * whose disks were hot-plugged since lays them out otherwise: its QEMU then
 * refuses the stream and the VM runs on at its source). */
static int
slot_now(struct server *srv, const struct xapi_vm_record *vm, const char *vbd_ref)
{
    char dir[4096];
    disks_dir(srv, dir, sizeof(dir));
    if (serves_vm(dir, vm->uuid))
        return slot_of(dir, vm->uuid, vbd_ref);
    int k = 0;
    for (size_t i = 0; i < vm->VBDs.n; i++) {
        bool served = false;
        db_with(srv->db, &xapi_class_vbd, vm->VBDs.items[i], peek_served_vbd, &served, NULL);
        if (strcmp(vm->VBDs.items[i], vbd_ref) == 0)
            return served ? k : -1;
        k += served;
    }
    return -1;
}

static bool
start_servers(struct server *srv, const struct xapi_vm_record *vm, int64_t domid, bool standby,
              struct xenops_domain_config *cfg, struct xerr **errp)
{
    make_disks_dir(srv);
    disk_servers_lock();
    /* a server's slot is its disk's index in @cfg, which names the disk in the
     * device model ("vbd<slot>"): hotplug finds both by it (empty drives have none) */
    bool ok = serve_many(srv, vm, domid, vm->VBDs.items, vm->VBDs.n, (unsigned)cfg->n_disks,
                         standby, cfg, errp);
    disk_servers_unlock();
    return ok;
}

bool
disk_servers_start(struct server *srv, const char *vm_ref, const struct xapi_vm_record *vm,
                   int64_t domid, struct xenops_domain_config *cfg, struct xerr **errp)
{
    (void)vm_ref;
    bool ok = start_servers(srv, vm, domid, false, cfg, errp);
    if (!ok)
        disk_servers_stop(srv, vm->uuid);
    return ok;
}

bool
disk_servers_start_standby(struct server *srv, const struct xapi_vm_record *vm, int64_t domid,
                           struct xenops_domain_config *cfg, struct xerr **errp)
{
    bool ok = start_servers(srv, vm, domid, true, cfg, errp);
    if (!ok)
        disk_servers_stop_standby(srv, vm->uuid);
    return ok;
}

/* Waits up to 10 s for the servers behind @pidfds to exit, and closes the
 * pidfds: a server flushes its chain on SIGTERM, and nothing may change the
 * VDI's files before that. Each pidfd is readable once its process exited
 * (reaped or not: the servers are detached, init reaps them), so no timer. */
static void
wait_exited(int *pidfds, size_t n)
{
    uint64_t deadline = log_clock_us() + 10000000;
    size_t left = n;
    while (left) {
        struct pollfd p[256];
        size_t k = 0;
        for (size_t i = 0; i < n && k < 256; i++)
            if (pidfds[i] >= 0)
                p[k++] = (struct pollfd){.fd = pidfds[i], .events = POLLIN};
        uint64_t now = log_clock_us();
        if (now >= deadline) {
            log_warn("disk.stop", "a disk server did not exit within 10 s");
            break;
        }
        if (poll(p, k, (int)((deadline - now) / 1000) + 1) < 0 && errno != EINTR)
            break;
        for (size_t j = 0; j < k; j++)
            for (size_t i = 0; p[j].revents && i < n; i++)
                if (pidfds[i] == p[j].fd) {
                    close(pidfds[i]);
                    pidfds[i] = -1;
                    left--;
                }
    }
    for (size_t i = 0; i < n; i++)
        if (pidfds[i] >= 0)
            close(pidfds[i]);
}

/* The VDIs whose writing servers a stop ended: their writer keys go once
 * the servers exited (flushed) and no other server here serves them. */
#define STOPPED_MAX 64
struct stopped {
    char vdi[STOPPED_MAX][64];
    size_t n;
};

static void
release_stopped(struct server *srv, const struct stopped *st)
{
    for (size_t i = 0; i < st->n; i++)
        release_if_unserved(srv, st->vdi[i]);
}

/* Stops the server whose files are DATA/run/disks/@base.* (base "<vm>.<n>")
 * and forgets them; its pidfd goes to @pidfds for wait_exited, and the VDI
 * it wrote to @stp. */
static void
stop_one(const char *dir, const char *base, int *pidfds, size_t *n_pids, size_t max,
         struct stopped *stp)
{
    char path[4400];
    struct served sv;
    snprintf(path, sizeof(path), "%s.vdi", base);
    if (stp && stp->n < STOPPED_MAX && read_served(dir, path, &sv) && sv.rw &&
        strncmp(base, STANDBY_PREFIX, strlen(STANDBY_PREFIX)) != 0)
        snprintf(stp->vdi[stp->n++], sizeof(stp->vdi[0]), "%s", sv.vdi);
    snprintf(path, sizeof(path), "%s/%s.pid", dir, base);
    FILE *f = fopen(path, "r");
    long pid = 0;
    if (f) {
        if (fscanf(f, "%ld", &pid) != 1)
            pid = 0;
        fclose(f);
    }
    /* SIGTERM: the server flushes and closes the chain before it exits. The
     * pidfd first, so the signal and the wait reach that process and no
     * other that took its number. */
    int pidfd = pid > 1 ? (int)syscall(SYS_pidfd_open, (pid_t)pid, 0) : -1;
    if (pidfd >= 0) {
        syscall(SYS_pidfd_send_signal, pidfd, SIGTERM, NULL, 0);
        if (*n_pids < max)
            pidfds[(*n_pids)++] = pidfd;
        else
            close(pidfd);
    }
    unlink(path);
    static const char *const kinds[] = {"sock", "ctl", "vdi"};
    for (size_t k = 0; k < 3; k++) {
        snprintf(path, sizeof(path), "%s/%s.%s", dir, base, kinds[k]);
        unlink(path);
    }
}

static void stop_named(struct server *srv, const char *name, bool release);

void
disk_servers_stop(struct server *srv, const char *vm_uuid)
{
    stop_named(srv, vm_uuid, true);
}

void
disk_servers_stop_handing_over(struct server *srv, const char *vm_uuid)
{
    stop_named(srv, vm_uuid, false);
}

void
disk_servers_release_writer(struct server *srv, const char *vdi_uuid)
{
    disk_servers_lock();
    release_if_unserved(srv, vdi_uuid);
    disk_servers_unlock();
}

void
disk_servers_stop_standby(struct server *srv, const char *vm_uuid)
{
    char name[64];
    snprintf(name, sizeof(name), STANDBY_PREFIX "%s", vm_uuid);
    stop_named(srv, name, true);
}

/* The servers a stop signalled: their exits to wait for, then the writer
 * keys of the VDIs they wrote to give up. */
struct signalled {
    int pidfds[256];
    size_t n_pids;
    struct stopped stp;
};

/* Sends SIGTERM to every server whose files are @vm_uuid.<n>.* (@vm_uuid:
 * "<uuid>" or "in-<uuid>") and forgets their files. Under the lock. */
static void
signal_named(struct server *srv, const char *vm_uuid, struct signalled *sg)
{
    char dir[4096];
    disks_dir(srv, dir, sizeof(dir));
    DIR *d = opendir(dir);
    if (!d)
        return;
    size_t ulen = strlen(vm_uuid);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (strncmp(e->d_name, vm_uuid, ulen) != 0 || e->d_name[ulen] != '.' || n < 4 ||
            strcmp(e->d_name + n - 4, ".pid") != 0)
            continue;
        char base[256];
        snprintf(base, sizeof(base), "%.*s", (int)(n - 4), e->d_name);
        stop_one(dir, base, sg->pidfds, &sg->n_pids, sizeof(sg->pidfds) / sizeof(*sg->pidfds),
                 &sg->stp);
    }
    closedir(d);
}

/* Stops every server of @vm_uuid and waits for their exits, and with
 * @release gives up the writer keys of the VDIs they wrote. */
static void
stop_named(struct server *srv, const char *vm_uuid, bool release)
{
    struct signalled sg = {.n_pids = 0};
    disk_servers_lock_to_stop();
    signal_named(srv, vm_uuid, &sg);
    wait_exited(sg.pidfds, sg.n_pids);
    if (release)
        release_stopped(srv, &sg.stp);
    disk_servers_unlock();
}

/* A standalone host's servers hold no writer key (pool_live_shared), so
 * nothing is left to do after their exits but to say so. */
static void *
stop_behind_main(void *arg)
{
    struct signalled *sg = arg;
    wait_exited(sg->pidfds, sg->n_pids);
    disk_servers_behind_end();
    free(sg);
    return NULL;
}

void
disk_servers_stop_behind(struct server *srv, const char *vm_uuid)
{
    struct signalled *sg = pool_live_shared(srv) ? NULL : calloc(1, sizeof(*sg));
    if (!sg) {
        /* in a pool another host may start the VM next: the writer keys
         * must be gone by the reply (pool_live_hold does not wait) */
        stop_named(srv, vm_uuid, true);
        return;
    }
    disk_servers_lock_to_stop();
    signal_named(srv, vm_uuid, sg);
    pthread_t t;
    bool behind = sg->n_pids > 0;
    if (behind) {
        disk_servers_behind_begin();
        if ((behind = pthread_create(&t, NULL, stop_behind_main, sg) == 0))
            pthread_detach(t);
        else
            disk_servers_behind_end();
    }
    if (!behind) {
        wait_exited(sg->pidfds, sg->n_pids);
        free(sg);
    }
    disk_servers_unlock();
}

/* ------------------------------------------------------------------ hotplug */


static bool
read_served(const char *dir, const char *name, struct served *out)
{
    char path[4400];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool ok = fgets(out->sr_path, sizeof(out->sr_path), f) &&
              fgets(out->vdi, sizeof(out->vdi), f) && fgets(out->vbd, sizeof(out->vbd), f);
    char mode[8] = "";
    out->rw = !ok || !fgets(mode, sizeof(mode), f) || strncmp(mode, "ro", 2) != 0;
    fclose(f);
    out->sr_path[strcspn(out->sr_path, "\n")] = '\0';
    out->vdi[strcspn(out->vdi, "\n")] = '\0';
    out->vbd[strcspn(out->vbd, "\n")] = '\0';
    return ok;
}

/* The servers of VDI @vdi_uuid on this host for VMs other than @vm_uuid
 * (a migration's standby servers write nothing: left out), into @u. */
static void
served_here(struct server *srv, const char *vm_uuid, const char *vdi_uuid, struct vdi_users *u)
{
    char dir[4096];
    disks_dir(srv, dir, sizeof(dir));
    DIR *d = opendir(dir);
    if (!d)
        return;
    size_t ulen = strlen(vm_uuid);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        struct served sv;
        if (n < 4 || strcmp(e->d_name + n - 4, ".vdi") != 0 ||
            strncmp(e->d_name, STANDBY_PREFIX, strlen(STANDBY_PREFIX)) == 0 ||
            (strncmp(e->d_name, vm_uuid, ulen) == 0 && e->d_name[ulen] == '.') ||
            !read_served(dir, e->d_name, &sv) || strcasecmp(sv.vdi, vdi_uuid) != 0)
            continue;
        u->any = true;
        u->rw |= sv.rw;
    }
    closedir(d);
}

/* Releases VDI @vdi_uuid's writer key unless a server here still serves
 * it (a migration's standby on this host included: it writes next). */
static void
release_if_unserved(struct server *srv, const char *vdi_uuid)
{
    char dir[4096], key[80];
    disks_dir(srv, dir, sizeof(dir));
    DIR *d = opendir(dir);
    bool served = false;
    struct dirent *e;
    while (d && !served && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        struct served sv;
        served = n > 4 && strcmp(e->d_name + n - 4, ".vdi") == 0 &&
                 read_served(dir, e->d_name, &sv) && strcasecmp(sv.vdi, vdi_uuid) == 0;
    }
    if (d)
        closedir(d);
    if (!served) {
        writer_key(vdi_uuid, key, sizeof(key));
        pool_live_release(srv, key);
    }
}

void
disk_servers_claim_writers(struct server *srv)
{
    char dir[4096], key[80];
    disks_dir(srv, dir, sizeof(dir));
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        struct served sv;
        if (n < 4 || strcmp(e->d_name + n - 4, ".vdi") != 0 ||
            strncmp(e->d_name, STANDBY_PREFIX, strlen(STANDBY_PREFIX)) == 0 ||
            !read_served(dir, e->d_name, &sv) || !sv.rw)
            continue;
        writer_key(sv.vdi, key, sizeof(key));
        if (!pool_live_hold(srv, key))
            log_warn("disk.writer", "vdi=%s held=false reason=\"another host holds its writer "
                     "key, or etcd did not answer\"", sv.vdi);
    }
    if (d)
        closedir(d);
}

/* The slot of VM @vm_uuid's server for VBD @vbd_ref, or -1. */
static int
slot_of(const char *dir, const char *vm_uuid, const char *vbd_ref)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    size_t ulen = strlen(vm_uuid);
    int slot = -1;
    struct dirent *e;
    while (slot < 0 && (e = readdir(d))) {
        unsigned n;
        char tail[8];
        struct served sv;
        if (strncmp(e->d_name, vm_uuid, ulen) == 0 &&
            sscanf(e->d_name + ulen, ".%u.%7s", &n, tail) == 2 && strcmp(tail, "vdi") == 0 &&
            read_served(dir, e->d_name, &sv) && strcmp(sv.vbd, vbd_ref) == 0)
            slot = (int)n;
    }
    closedir(d);
    return slot;
}

bool
disk_servers_plug(struct server *srv, const struct xapi_vm_record *vm, const char *vbd_ref,
                  unsigned *slot, struct xenops_disk *disk, struct xerr **errp)
{
    char dir[4096];
    disks_dir(srv, dir, sizeof(dir));
    struct xenops_domain_config one = {0};
    disk_servers_lock();
    /* the first slot no server of the VM holds: the device names "vbd<slot>"
     * of disks given at start are free again once they were unplugged */
    unsigned n = 0;
    for (; n < 256; n++) {
        char path[4400];
        snprintf(path, sizeof(path), "%s/%s.%u.pid", dir, vm->uuid, n);
        if (access(path, F_OK) != 0)
            break;
    }
    char *one_vbd = (char *)vbd_ref;
    bool ok = n < 256 ? serve_many(srv, vm, vm->domid, &one_vbd, 1, n, false, &one, errp)
                      : xerr_operation_not_allowed(errp, "every disk slot of the VM is taken");
    if (!ok && n < 256) { /* the server begun, if any, goes again */
        char base[256];
        int pidfds[1];
        size_t n_pids = 0;
        struct stopped stp = {.n = 0};
        snprintf(base, sizeof(base), "%s.%u", vm->uuid, n);
        stop_one(dir, base, pidfds, &n_pids, 1, &stp);
        wait_exited(pidfds, n_pids);
        release_stopped(srv, &stp);
    }
    disk_servers_unlock();
    if (ok && one.n_disks != 1)
        ok = xerr_operation_not_allowed(errp, "an empty drive has nothing to plug");
    if (ok) {
        *disk = one.disks[0];
        *slot = n;
    } else {
        for (size_t i = 0; i < one.n_disks; i++)
            free(one.disks[i].path);
    }
    free(one.disks);
    return ok;
}

void
disk_servers_unplug(struct server *srv, const char *vm_uuid, const char *vbd_ref)
{
    char dir[4096], base[256];
    disks_dir(srv, dir, sizeof(dir));
    int pidfds[1];
    size_t n_pids = 0;
    disk_servers_lock();
    int n = slot_of(dir, vm_uuid, vbd_ref);
    if (n >= 0) {
        struct stopped stp = {.n = 0};
        snprintf(base, sizeof(base), "%s.%d", vm_uuid, n);
        stop_one(dir, base, pidfds, &n_pids, 1, &stp);
        wait_exited(pidfds, n_pids);
        release_stopped(srv, &stp);
    }
    disk_servers_unlock();
}

int
disk_servers_slot(struct server *srv, const char *vm_uuid, const char *vbd_ref)
{
    char dir[4096];
    disks_dir(srv, dir, sizeof(dir));
    /* without the lock: callers may hold a db batch, and the lock's holders read the db */
    return slot_of(dir, vm_uuid, vbd_ref);
}

/* ------------------------------------------------------------------ I/O counters */

int
disk_servers_stats(struct server *srv, const char *vm_uuid, const char *vbd_ref,
                   struct disk_io_stats *out)
{
    char dir[4096], ctl[4200], reply[256];
    disks_dir(srv, dir, sizeof(dir));
    int slot = slot_of(dir, vm_uuid, vbd_ref);
    if (slot < 0)
        return -ENOENT;
    snprintf(ctl, sizeof(ctl), "%s/%s.%d.ctl", dir, vm_uuid, slot);
    int fd = -1, rc = serve_ctl_connect(ctl, &fd);
    if (rc < 0)
        return rc;
    /* A server serves one control connection at a time: while a snapshot
     * holds it paused, give up on this sample rather than wait. */
    struct timeval tv = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    rc = serve_ctl_command(fd, "stats", NULL, 0, reply, sizeof(reply));
    close(fd);
    if (rc < 0)
        return rc;
    struct disk_io_stats st = {0};
    if (sscanf(reply, "ok rd_reqs=%" SCNu64 " rd_bytes=%" SCNu64 " rd_usec=%" SCNu64
                      " wr_reqs=%" SCNu64 " wr_bytes=%" SCNu64 " wr_usec=%" SCNu64 " inflight=%u",
               &st.rd_reqs, &st.rd_bytes, &st.rd_usec, &st.wr_reqs, &st.wr_bytes, &st.wr_usec,
               &st.inflight) != 7)
        return -EPROTO;
    *out = st;
    return 0;
}

/* ------------------------------------------------------------------ pause and reload */

struct disk_pause {
    char *sr_path, *uuid;
    int fds[32];       /* control connections, each holding one server paused */
    size_t n;
    size_t reloaded;   /* fds[0..reloaded) took the new chain */
    bool refused;      /* fds[reloaded] answered that it kept its old chain */
};

int
disk_servers_pause(struct server *srv, const char *sr_path, const char *uuid,
                   struct disk_pause **out)
{
    struct disk_pause *p = calloc(1, sizeof(*p));
    if (!p || !(p->sr_path = strdup(sr_path)) || !(p->uuid = strdup(uuid))) {
        disk_servers_resume(p);
        return -ENOMEM;
    }
    char dir[4096];
    disks_dir(srv, dir, sizeof(dir));
    DIR *d = opendir(dir);
    int rc = 0;
    struct dirent *e;
    while (d && rc == 0 && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        struct served sv;
        if (n < 4 || strcmp(e->d_name + n - 4, ".vdi") != 0 || !read_served(dir, e->d_name, &sv) ||
            strcmp(sv.sr_path, sr_path) != 0 || strcasecmp(sv.vdi, uuid) != 0)
            continue;
        if (p->n == sizeof(p->fds) / sizeof(*p->fds)) {
            rc = -E2BIG;
            break;
        }
        char ctl[4400], reply[256];
        snprintf(ctl, sizeof(ctl), "%s/%.*s.ctl", dir, (int)(n - 4), e->d_name);
        int fd = -1;
        if ((rc = serve_ctl_connect(ctl, &fd)) < 0) {
            log_error("disk.pause", "vdi=%s control=%s error=\"%s\"", uuid, ctl, strerror(-rc));
            break;
        }
        if ((rc = serve_ctl_command(fd, "pause", NULL, 0, reply, sizeof(reply))) < 0) {
            log_error("disk.pause", "vdi=%s control=%s reply=\"%s\"", uuid, ctl, reply);
            close(fd);
            break;
        }
        p->fds[p->n++] = fd;
    }
    if (d)
        closedir(d);
    if (rc < 0) {
        disk_servers_resume(p);
        return rc;
    }
    *out = p;
    return 0;
}

size_t
disk_servers_paused_count(const struct disk_pause *p)
{
    return p ? p->n : 0;
}

/* A test point: the file VESSEL_TEST_RELOAD_ANSWER_LOST names holds the
 * uuid of a VDI whose servers' answers to a reload are lost (they took the
 * new chain, vesseld does not know it): what a server that hangs after
 * reloading looks like (tests/integration/test_snapshot_flush.py). */
static bool
reload_answer_lost(const char *uuid)
{
    const char *path = getenv("VESSEL_TEST_RELOAD_ANSWER_LOST");
    char want[64] = "";
    FILE *f = path ? fopen(path, "re") : NULL;
    if (!f)
        return false;
    bool lost = fgets(want, sizeof(want), f) && strncmp(want, uuid, strlen(uuid)) == 0;
    fclose(f);
    return lost;
}

int
disk_servers_reload(struct disk_pause *p)
{
    if (p->n == 0)
        return 0;
    int fds[64];
    unsigned n_fds = 0;
    int rc = sr_file_vdi_chain_fds(p->sr_path, p->uuid, fds, 64, &n_fds);
    if (rc < 0) {
        log_error("disk.reload", "vdi=%s error=\"%s\"", p->uuid, sr_file_last_error());
        return rc;
    }
    char line[32];
    snprintf(line, sizeof(line), "reload %u", n_fds);
    p->reloaded = 0;
    p->refused = false;
    for (size_t i = 0; i < p->n && rc == 0; i++) {
        char reply[256] = "";
        rc = serve_ctl_command(p->fds[i], line, fds, n_fds, reply, sizeof(reply));
        if (rc == 0 && reload_answer_lost(p->uuid))
            rc = -ETIMEDOUT;
        if (rc < 0)
            log_error("disk.reload", "vdi=%s reply=\"%s\" error=\"%s\"", p->uuid, reply,
                      strerror(-rc));
        else
            p->reloaded++;
        /* "error ...": vhd serve keeps its old chain when it cannot open the new one */
        p->refused = rc == -EIO;
    }
    for (unsigned i = 0; i < n_fds; i++)
        close(fds[i]);
    return rc;
}

bool
disk_servers_all_on_old_chain(const struct disk_pause *p)
{
    return p->n == 0 || (p->reloaded == 0 && p->refused);
}

void
disk_servers_abandon(struct disk_pause *p)
{
    for (size_t i = p ? p->reloaded : 0; p && i < p->n; i++) {
        struct ucred peer;
        socklen_t len = sizeof(peer);
        if (getsockopt(p->fds[i], SOL_SOCKET, SO_PEERCRED, &peer, &len) == 0 && peer.pid > 1) {
            log_error("disk.abandon", "vdi=%s pid=%ld", p->uuid, (long)peer.pid);
            kill(peer.pid, SIGKILL);
        }
    }
    disk_servers_resume(p);
}

void
disk_servers_resume(struct disk_pause *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        close(p->fds[i]); /* a server resumes when its pausing connection closes */
    free(p->sr_path);
    free(p->uuid);
    free(p);
}

/* ------------------------------------------------------------------ migration hand-over */

bool
disk_servers_activate(struct server *srv, const char *vm_uuid, const char *from_host,
                      struct xerr **errp)
{
    char dir[4096], prefix[64];
    disks_dir(srv, dir, sizeof(dir));
    snprintf(prefix, sizeof(prefix), STANDBY_PREFIX "%s.", vm_uuid);
    size_t plen = strlen(prefix);
    disk_servers_lock();
    DIR *d = opendir(dir);
    int rc = 0;
    struct dirent *e;
    while (d && rc == 0 && (e = readdir(d))) {
        unsigned n;
        char tail[8];
        struct served sv;
        if (strncmp(e->d_name, prefix, plen) != 0 ||
            sscanf(e->d_name + plen, "%u.%7s", &n, tail) != 2 || strcmp(tail, "vdi") != 0 ||
            !read_served(dir, e->d_name, &sv))
            continue;
        /* the VDI's pool-wide writer moves here from the source host, whose
         * servers have exited (flushed) and kept it for this hand-over */
        char key[80];
        writer_key(sv.vdi, key, sizeof(key));
        if (sv.rw && !pool_live_take(srv, key, from_host)) {
            log_error("disk.activate", "vdi=%s error=\"another host holds its writer key\"",
                      sv.vdi);
            rc = -EBUSY;
            break;
        }
        /* the chain as it is on disk now, after the source's servers closed it */
        int fds[64];
        unsigned n_fds = 0;
        char ctl[4400], line[32], reply[256] = "";
        snprintf(ctl, sizeof(ctl), "%s/%s%u.ctl", dir, prefix, n);
        if ((rc = sr_file_vdi_chain_fds(sv.sr_path, sv.vdi, fds, 64, &n_fds)) < 0) {
            log_error("disk.activate", "vdi=%s error=\"%s\"", sv.vdi, sr_file_last_error());
            break;
        }
        int cfd = -1;
        snprintf(line, sizeof(line), "activate %u", n_fds);
        if ((rc = serve_ctl_connect(ctl, &cfd)) == 0)
            rc = serve_ctl_command(cfd, line, fds, n_fds, reply, sizeof(reply));
        if (cfd >= 0)
            close(cfd);
        for (unsigned i = 0; i < n_fds; i++)
            close(fds[i]);
        if (rc < 0) {
            log_error("disk.activate", "vdi=%s reply=\"%s\" error=\"%s\"", sv.vdi, reply,
                      strerror(-rc));
            break;
        }
        /* the VM's names: the device model is connected already, a socket's
         * name is only for new connections */
        static const char *const kinds[] = {"sock", "ctl", "vdi", "pid"};
        for (size_t k = 0; k < 4; k++) {
            char from[4400], to[4400];
            snprintf(from, sizeof(from), "%s/%s%u.%s", dir, prefix, n, kinds[k]);
            snprintf(to, sizeof(to), "%s/%s.%u.%s", dir, vm_uuid, n, kinds[k]);
            if (rename(from, to) < 0 && rc == 0)
                rc = -errno;
        }
        log_info("disk.activate", "vm=%s vdi=%s slot=%u rc=%d", vm_uuid, sv.vdi, n, rc);
    }
    if (d)
        closedir(d);
    disk_servers_unlock();
    if (rc < 0)
        return xerr_sr_backend_failure(errp, "EIO", "",
                                       "a migrated disk's server could not be activated");
    return true;
}
