/* xenops/kvm.c - does KVM really run a guest here?
 *
 * /dev/kvm existing is not enough: under nested or emulated virtualisation
 * (this project's CI host) KVM_CREATE_VM works and the guest then hangs. So
 * the probe boots a real guest: SeaBIOS loads a 512-byte boot sector whose
 * code writes 0x2a to an isa-debug-exit port, which makes qemu exit with
 * status (0x2a << 1) | 1 = 85. Only that status within the time limit means
 * KVM works; anything else (hang, error, other status) means TCG. The probe
 * runs once per process; its result is cached.
 * Facts: QEMU hw/misc/debugexit.c (exit code), SeaBIOS boot from floppy/hd
 * (0x55 0xaa signature at offset 510, loaded at 0x7c00).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "common/log.h"
#include "xenops/xenops_int.h"

static pthread_mutex_t probe_lock = PTHREAD_MUTEX_INITIALIZER;
static const char *probe_result;

/* Runs the boot sector under @accel; true when it exits with status 85 in time. */
static bool
probe_run(const char *qemu, const char *accel, unsigned timeout_ms)
{
    char img[] = "/tmp/vessel-kvmprobe-XXXXXX";
    int fd = mkstemp(img);
    if (fd < 0)
        return false;
    unsigned char sector[512] = {0xb0, 0x2a, 0xe6, 0xf4, 0xf4, 0xeb, 0xfe}; /* mov al,42; out 0xf4,al; hlt; jmp $ */
    sector[510] = 0x55;
    sector[511] = 0xaa;
    bool ok = write(fd, sector, sizeof(sector)) == (ssize_t)sizeof(sector);
    close(fd);
    char drive[128];
    snprintf(drive, sizeof(drive), "file=%s,format=raw,if=floppy", img);
    pid_t pid = ok ? fork() : -1;
    if (pid == 0) {
        int nul = open("/dev/null", O_RDWR);
        dup2(nul, 0);
        dup2(nul, 1);
        dup2(nul, 2);
        execlp(qemu, qemu, "-M", "pc", "-accel", accel, "-nodefaults", "-no-user-config",
               "-display", "none", "-m", "16", "-device", "isa-debug-exit,iobase=0xf4,iosize=4",
               "-drive", drive, "-boot", "a", (char *)NULL);
        _exit(127);
    }
    ok = false;
    if (pid > 0) {
        int status = 0;
        uint64_t end = xenops_now_ms() + timeout_ms;
        pid_t r;
        while ((r = waitpid(pid, &status, WNOHANG)) == 0 && xenops_now_ms() < end)
            poll(NULL, 0, 10);
        if (r == 0) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
        } else if (r == pid) {
            ok = WIFEXITED(status) && WEXITSTATUS(status) == 85;
        }
    }
    unlink(img);
    return ok;
}

const char *
xenops_kvm_probe(const char *qemu_binary, unsigned timeout_ms)
{
    pthread_mutex_lock(&probe_lock);
    if (!probe_result) {
        const char *qemu = qemu_binary ? qemu_binary : "qemu-system-x86_64";
        bool kvm = access("/dev/kvm", R_OK | W_OK) == 0 && probe_run(qemu, "kvm", timeout_ms);
        probe_result = kvm ? "kvm" : "tcg";
        log_info("xenops.kvm_probe", "accel=%s", probe_result);
    }
    const char *r = probe_result;
    pthread_mutex_unlock(&probe_lock);
    return r;
}

/* For the tests: the same boot sector under any accelerator, uncached. */
bool xenops_probe_accel(const char *qemu_binary, const char *accel, unsigned timeout_ms);
bool
xenops_probe_accel(const char *qemu_binary, const char *accel, unsigned timeout_ms)
{
    return probe_run(qemu_binary ? qemu_binary : "qemu-system-x86_64", accel, timeout_ms);
}
