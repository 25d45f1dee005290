/* tools/vhd/sandbox.c - what `vhd serve` gives up before it reads a byte from a client.
 *
 * Three layers, strongest available first:
 *  1. PR_SET_NO_NEW_PRIVS: no exec can ever gain privileges (and it is required for 2, 3).
 *  2. Landlock (Linux >= 5.13, if the kernel has it): every filesystem access right that
 *     ABI v1 knows is handled and none granted, so no path can be opened, created, removed
 *     or executed any more. Files opened before (the chain, the listening socket) stay
 *     usable. Missing Landlock is tolerated ("where available").
 *  3. seccomp-bpf allowlist (x86_64, aarch64): only the system calls an NBD server needs on
 *     file descriptors it already has. Anything else fails with EPERM (not a kill, so a
 *     sanitizer runtime or glibc probing an optional call degrades instead of dying).
 *     clone3 fails with ENOSYS so glibc falls back to clone, which is allowed only with
 *     CLONE_THREAD (new threads for new connections, never new processes).
 * Privileges kept, and why: read/pread/pwrite/fdatasync/ftruncate/fallocate on the chain's
 * open files (serve and write the disk, allocate blocks); accept/recv/send/shutdown on
 * sockets (the NBD and control listening sockets, their connections); recvmsg also brings
 * descriptors (SCM_RIGHTS) of a new chain over the control socket, used with fcntl (dup,
 * access mode) and fstat: Landlock governs opening paths, not using received descriptors; mmap/munmap/mprotect/brk/madvise
 * (malloc, thread stacks); futex/clone(CLONE_THREAD)/set_robust_list/rseq (threads);
 * rt_sig* and sigtimedwait (orderly shutdown on SIGTERM); clock_gettime, getrandom, getpid, gettid,
 * tgkill (libc internals, abort). Not kept: open/openat, exec, socket/bind/connect, ptrace,
 * mount, kill of other processes, file creation or removal of any kind.
 * Facts: STYLE.md section 10; Linux man pages seccomp(2), landlock(7).
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "tools/vhd/sandbox.h"

static int
landlock_restrict(void)
{
#ifdef SYS_landlock_create_ruleset
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    if (abi < 1)
        return 0;       /* not available: tolerated */
    struct landlock_ruleset_attr attr = {
        .handled_access_fs = LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |
                             LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR |
                             LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |
                             LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR |
                             LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK |
                             LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK |
                             LANDLOCK_ACCESS_FS_MAKE_SYM,
    };
    int fd = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0);
    if (fd < 0)
        return 0;
    long rc = syscall(SYS_landlock_restrict_self, fd, 0);
    close(fd);
    return rc == 0 ? 1 : -errno;
#else
    return 0;
#endif
}

#if defined(__x86_64__)
#define SANDBOX_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SANDBOX_ARCH AUDIT_ARCH_AARCH64
#endif

#ifdef SANDBOX_ARCH
static const int allowed[] = {
    SYS_read, SYS_write, SYS_readv, SYS_writev, SYS_pread64, SYS_pwrite64, SYS_preadv,
    SYS_pwritev, SYS_recvfrom, SYS_recvmsg, SYS_sendto, SYS_sendmsg, SYS_accept, SYS_accept4,
    SYS_shutdown, SYS_getsockopt, SYS_setsockopt, SYS_close, SYS_fstat, SYS_newfstatat,
    SYS_lseek, SYS_fsync, SYS_fdatasync, SYS_ftruncate, SYS_fallocate, SYS_fcntl, SYS_mmap,
    SYS_munmap, SYS_mremap, SYS_mprotect, SYS_madvise, SYS_brk, SYS_futex, SYS_set_robust_list,
    SYS_rt_sigreturn, SYS_rt_sigprocmask, SYS_rt_sigaction, SYS_rt_sigtimedwait,
    SYS_sigaltstack, SYS_exit, SYS_exit_group, SYS_clock_gettime, SYS_clock_nanosleep,
    SYS_nanosleep, SYS_getrandom, SYS_gettid, SYS_getpid, SYS_tgkill, SYS_sched_yield,
    SYS_restart_syscall, SYS_ppoll, SYS_sched_getaffinity,
#ifdef SYS_rseq
    SYS_rseq,
#endif
#ifdef SYS_poll
    SYS_poll,
#endif
};

#define N_ALLOWED (sizeof(allowed) / sizeof(allowed[0]))

static int
seccomp_restrict(void)
{
    /* arch (3) + nr load (1) + allowlist (2 each) + clone3 (2) + clone (4) + default (1) */
    struct sock_filter prog[4 + 2 * N_ALLOWED + 2 + 4 + 1];
    size_t n = 0;
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                             offsetof(struct seccomp_data, arch));
    prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SANDBOX_ARCH, 1, 0);
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                             offsetof(struct seccomp_data, nr));
    for (size_t i = 0; i < N_ALLOWED; i++) {
        prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
                                                 (unsigned)allowed[i], 0, 1);
        prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    }
    prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone3, 0, 1);
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS);
    prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 0, 3);
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                             offsetof(struct seccomp_data, args[0]));
    prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD, 0, 1);
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM);
    struct sock_fprog fprog = {.len = (unsigned short)n, .filter = prog};
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog) != 0)
        return -errno;
    return 1;
}
#else
static int
seccomp_restrict(void)
{
    return 0;   /* unknown architecture: no allowlist, landlock and no_new_privs remain */
}
#endif

int
sandbox_enter(unsigned *layers)
{
    *layers = 0;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return -errno;
    *layers |= SANDBOX_NO_NEW_PRIVS;
    int rc = landlock_restrict();
    if (rc < 0)
        return rc;
    if (rc > 0)
        *layers |= SANDBOX_LANDLOCK;
    rc = seccomp_restrict();
    if (rc < 0)
        return rc;
    if (rc > 0)
        *layers |= SANDBOX_SECCOMP;
    return 0;
}
