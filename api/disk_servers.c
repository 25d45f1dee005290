/* api/disk_servers.c - one `vhd serve` per disk of a running VM.
 *
 * The tapdisk of this platform: before a domain starts, each VBD with a VDI
 * gets its own `vhd serve --socket` process (read-only when the VBD or VDI
 * is), and the domain's device model connects to it over NBD. A disk server
 * is its own process, deprivileged by itself (tools/vhd/sandbox.c), so a
 * guest that breaks it reaches one disk and nothing else.
 *
 * The servers are detached (double fork, own session) so that they outlive a
 * restart of vesseld together with their guest; their pid files in
 * DATA/run/disks/<vm uuid>.<n>.pid find them again to stop them.
 */
#include "api/disk_servers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "api/storage_api.h"
#include "common/log.h"
#include "db/db.h"
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

/* Starts `vhd serve` detached; returns its pid or a negative errno. */
static pid_t
spawn_server(const char *vhd, const char *socket_path, const char *file, bool read_only)
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
            const char *argv[7];
            int i = 0;
            argv[i++] = vhd;
            argv[i++] = "serve";
            argv[i++] = "--socket";
            argv[i++] = socket_path;
            if (read_only)
                argv[i++] = "--read-only";
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
wait_for_socket(const char *path, pid_t pid)
{
    for (int i = 0; i < 500; i++) { /* 5 s */
        struct stat st;
        if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode))
            return true;
        if (kill(pid, 0) != 0)
            return false;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return false;
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

static bool
serve_one(struct server *srv, const struct xapi_vm_record *vm, const char *vbd_ref, unsigned n,
          struct xenops_domain_config *cfg, struct xerr **errp)
{
    struct xapi_vbd_record *vbd = NULL;
    struct xapi_vdi_record *vdi = NULL;
    char *sr_path = NULL;
    bool ok = db_get(srv->db, &xapi_class_vbd, vbd_ref, (void **)&vbd, errp);
    if (ok && (vbd->empty || strcmp(vbd->VDI, "OpaqueRef:NULL") == 0))
        goto out; /* an empty CD drive: nothing to serve */
    ok = ok && db_get(srv->db, &xapi_class_vdi, vbd->VDI, (void **)&vdi, errp) &&
         storage_sr_path(srv->db, srv->host_ref, vdi->SR, &sr_path, errp);
    if (!ok)
        goto out;
    char file[4096], dir[4096], sock[4200], pidfile[4200], vhd[2200];
    int rc = sr_file_vdi_path(sr_path, vdi->uuid, file, sizeof(file));
    if (rc < 0) {
        ok = storage_fail(errp, rc, vdi->SR, vbd->VDI);
        goto out;
    }
    disks_dir(srv, dir, sizeof(dir));
    snprintf(sock, sizeof(sock), "%s/%s.%u.sock", dir, vm->uuid, n);
    snprintf(pidfile, sizeof(pidfile), "%s/%s.%u.pid", dir, vm->uuid, n);
    unlink(sock);
    bool cdrom = vbd->type == XAPI_VBD_TYPE_CD;
    bool read_only = vbd->mode == XAPI_VBD_MODE_RO || vdi->read_only || cdrom;
    vhd_binary(vhd, sizeof(vhd));
    pid_t pid = spawn_server(vhd, sock, file, read_only);
    if (pid <= 0 || !wait_for_socket(sock, pid)) {
        if (pid > 0)
            kill(pid, SIGKILL);
        ok = xerr_raise(errp, "SR_BACKEND_FAILURE", "EIO", "", "the disk server did not start");
        goto out;
    }
    FILE *f = fopen(pidfile, "w");
    if (f) {
        fprintf(f, "%ld\n", (long)pid);
        fclose(f);
    }
    if (!add_disk(cfg, sock, read_only, cdrom))
        ok = xerr_nomem(errp);
    log_info("disk.serve", "vm=%s vdi=%s pid=%ld ro=%d", vm->uuid, vdi->uuid, (long)pid, read_only);
out:
    xapi_vbd_record_free(vbd);
    xapi_vdi_record_free(vdi);
    free(sr_path);
    return ok;
}

bool
disk_servers_start(struct server *srv, const char *vm_ref, const struct xapi_vm_record *vm,
                   struct xenops_domain_config *cfg, struct xerr **errp)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/run", srv->data_dir);
    mkdir(dir, 0700);
    disks_dir(srv, dir, sizeof(dir));
    mkdir(dir, 0700);
    (void)vm_ref;
    for (size_t i = 0; i < vm->VBDs.n; i++) {
        if (!serve_one(srv, vm, vm->VBDs.items[i], (unsigned)i, cfg, errp)) {
            disk_servers_stop(srv, vm->uuid);
            return false;
        }
    }
    return true;
}

void
disk_servers_stop(struct server *srv, const char *vm_uuid)
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
        char path[4400], sock[4400];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        snprintf(sock, sizeof(sock), "%s/%.*s.sock", dir, (int)(n - 4), e->d_name);
        FILE *f = fopen(path, "r");
        long pid = 0;
        if (f) {
            if (fscanf(f, "%ld", &pid) != 1)
                pid = 0;
            fclose(f);
        }
        /* SIGTERM: the server flushes and closes the chain before it exits. */
        if (pid > 1)
            kill((pid_t)pid, SIGTERM);
        unlink(path);
        unlink(sock);
    }
    closedir(d);
}
