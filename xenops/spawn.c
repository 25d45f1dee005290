/* xenops/spawn.c - a domain's qemu, started apart: its own uid, namespaces
 * and cgroup, only the descriptors it needs (the details: child_exec).
 *
 * The caller (xenops/qemu.c) finds, opens and allocates everything first, into
 * a struct xenops_spawn_plan: the processes forked here belong to a threaded
 * program and make only async-signal-safe calls. Facts: unshare(2),
 * pid_namespaces(7), mount_namespaces(7) (MS_PRIVATE), ipc_namespaces(7),
 * prctl(2) PR_SET_NO_NEW_PRIVS, setresuid(2), cgroups(7) (cgroup.procs).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "xenops/xenops_int.h"

/* In the grandchild (pid 1 of its own PID namespace when @own_ns): becomes
 * qemu or _exit()s, writing errno to @errfd.
 * What it gives up before exec, and what qemu keeps (docs/security.md):
 *  - uid and gid become the domain's own (setresuid/setresgid, no
 *    supplementary groups but kvm under KVM): qemu cannot read another
 *    domain's memory (ptrace, /proc/PID/mem), its sockets or vesseld's files;
 *  - PR_SET_NO_NEW_PRIVS: no setuid binary or file capability regains any;
 *  - a mount namespace of its own with private propagation (nothing it could
 *    mount would reach the host), an IPC namespace (no SysV IPC or POSIX
 *    message queue of the host), a PID namespace (it sees no other process
 *    to signal; it is pid 1 there);
 *  - the domain's cgroup: its CPU and memory are bounded by the VM's;
 *  - descriptors: stdio (stdout and stderr to qemu.log), the resume image,
 *    the kernel and the initrd as fds 3-5, which vesseld opened (qemu reads
 *    the files as /proc/self/fd/N: it needs no path to them), the NICs' taps
 *    from fd 7 (xenops/taps.c), nothing else.
 * It keeps: its working directory (its dm/ directory: QMP, console and VNC
 *  sockets, made by qemu), the path ../../disks/ to its disk servers' sockets
 *  (connect only: each is owned by its uid), /dev/net/tun for a NIC
 *  hotplugged later (its tap owned by its uid), /dev/kvm through the kvm
 *  group. Then qemu's own -sandbox
 *  (seccomp) takes away spawning, privilege changes and obsolete calls. */
__attribute__((noreturn)) static void
child_exec(const struct xenops_spawn_plan *p, bool own_ns, int errfd)
{
    /* first, while its number is still ours (the shuffle below may reuse it),
     * and before a byte of qemu runs; a failure leaves it unlimited */
    if (p->cgroup_fd >= 0)
        (void)!write(p->cgroup_fd, "0", 1);
    /* move what we keep above the low fds first, so no dup2 clobbers another
     * (the taps' copies above every number they will take) */
    int nic[XENOPS_NIC_FDS];
    size_t n_nic = p->n_nic_fds < XENOPS_NIC_FDS ? p->n_nic_fds : XENOPS_NIC_FDS;
    for (size_t i = 0; i < n_nic; i++)
        if ((nic[i] = fcntl(p->nic_fds[i], F_DUPFD, QEMU_FD_NIC0 + XENOPS_NIC_FDS)) < 0)
            goto fail;
    errfd = fcntl(errfd, F_DUPFD_CLOEXEC, 10);
    int keep[3];
    for (int i = 0; i < 3; i++)
        keep[i] = p->keep[i] >= 0 ? fcntl(p->keep[i], F_DUPFD, 10) : -1;
    int nul = open("/dev/null", O_RDWR);
    if (errfd < 0 || nul < 0 || (p->keep[0] >= 0 && keep[0] < 0) ||
        (p->keep[1] >= 0 && keep[1] < 0) || (p->keep[2] >= 0 && keep[2] < 0))
        goto fail;
    if (dup2(nul, 0) < 0 || dup2(p->logfd, 1) < 0 || dup2(p->logfd, 2) < 0)
        goto fail;
    for (int i = 0; i < 3; i++)
        if (keep[i] >= 0 ? dup2(keep[i], QEMU_FD_RESUME + i) < 0 : (close(QEMU_FD_RESUME + i), false))
            goto fail;
    if (dup2(errfd, QEMU_FD_ERR) < 0 || fcntl(QEMU_FD_ERR, F_SETFD, FD_CLOEXEC) < 0)
        goto fail;
    errfd = QEMU_FD_ERR;
    for (size_t i = 0; i < n_nic; i++)
        if (dup2(nic[i], QEMU_FD_NIC0 + (int)i) < 0)
            goto fail;
    syscall(SYS_close_range, QEMU_FD_NIC0 + (unsigned)n_nic, ~0U, 0);
    if (own_ns && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        goto fail;
    if (chdir(p->dm_dir) < 0)
        goto fail;
    if (p->uid && (setgroups(p->n_groups, p->groups) < 0 ||
                   setresgid(p->gid, p->gid, p->gid) < 0 ||
                   setresuid(p->uid, p->uid, p->uid) < 0))
        goto fail;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        goto fail;
    signal(SIGPIPE, SIG_DFL);
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    execv(p->bin, p->argv);
fail:;
    int e = errno;
    if (errfd >= 0)
        (void)!write(errfd, &e, sizeof(e));
    _exit(127);
}

/* What the middle process reports: qemu's pid (as our namespace sees it),
 * and why it has no namespaces of its own (0 when it has). */
struct spawn_report {
    pid_t pid;
    int ns_errno;
};

/* Double fork: qemu's parent is gone before we return, so init reaps it and
 * it outlives us. The middle process makes the namespaces: unshare(2) with
 * CLONE_NEWPID puts its next child, not itself, in the new PID namespace, so
 * that child (qemu) is pid 1 there while we see and supervise it by its pid
 * here (pidfd, kill, /proc), and adopt it again after a restart from the pid
 * file as before. Where the kernel refuses the namespaces (a container
 * without CAP_SYS_ADMIN) qemu runs without them and *@ns_errno says why.
 * Returns qemu's pid or -errno (exec failures included). */
pid_t
xenops_spawn_detached(const struct xenops_spawn_plan *plan, int *ns_errno)
{
    int pidpipe[2], errpipe[2];
    if (pipe2(pidpipe, O_CLOEXEC) < 0)
        return -errno;
    if (pipe2(errpipe, O_CLOEXEC) < 0) {
        close(pidpipe[0]);
        close(pidpipe[1]);
        return -errno;
    }
    pid_t mid = fork();
    if (mid == 0) {
        setsid();
        struct spawn_report r = {0};
        if (unshare(CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC) < 0)
            r.ns_errno = errno;
        r.pid = fork();
        if (r.pid < 0)
            r.pid = -errno;
        if (r.pid == 0)
            child_exec(plan, r.ns_errno == 0, errpipe[1]);
        (void)!write(pidpipe[1], &r, sizeof(r));
        _exit(0);
    }
    close(pidpipe[1]);
    close(errpipe[1]);
    struct spawn_report r = {.pid = -1};
    int err = 0;
    if (mid < 0)
        err = errno;
    else
        waitpid(mid, NULL, 0);
    if (!err && read(pidpipe[0], &r, sizeof(r)) != sizeof(r))
        err = EIO;
    if (!err && r.pid < 0)
        err = -r.pid;
    int child_err;
    if (!err && read(errpipe[0], &child_err, sizeof(child_err)) == sizeof(child_err))
        err = child_err; /* the exec failed */
    close(pidpipe[0]);
    close(errpipe[0]);
    *ns_errno = r.ns_errno;
    return err ? -err : r.pid;
}
