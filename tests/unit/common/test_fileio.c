/* tests/unit/common/test_fileio.c - common/fileio.c, common/cleanup.h, common/errtext.c.
 *
 * Each helper against the cases its callers met: files larger than the bound,
 * files that are not regular (/proc), pipes that take writes in pieces, a
 * rename that fails and must leave the old file, mkdir -p through existing and
 * missing parents and through a file.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/cleanup.h"
#include "common/errtext.h"
#include "common/fileio.h"

static char dir[64];

static int
setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/vessel-fileio-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int
teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void
in_dir(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s/%s", dir, name);
}

static void
test_read_all(void **state)
{
    char p[128];
    in_dir(p, sizeof(p), "f");
    assert_int_equal(fileio_write_atomic(p, "hello\n", 6, 0600), 0);
    _cleanup_free_ char *s = NULL;
    size_t n = 0;
    assert_int_equal(fileio_read_all(p, 6, &s, &n), 0);
    assert_int_equal(n, 6);
    assert_string_equal(s, "hello\n");
    char *big = NULL;
    assert_int_equal(fileio_read_all(p, 5, &big, NULL), -EFBIG);
    assert_null(big);
    in_dir(p, sizeof(p), "empty");
    assert_int_equal(fileio_write_atomic(p, "", 0, 0600), 0);
    _cleanup_free_ char *e = NULL;
    assert_int_equal(fileio_read_all(p, 10, &e, &n), 0);
    assert_int_equal(n, 0);
    assert_string_equal(e, "");
    assert_int_equal(fileio_read_all("/nonexistent/x", 10, &big, NULL), -ENOENT);
}

static void
test_read_all_of_proc(void **state)
{
    /* /proc files say size 0 and are read in pieces */
    _cleanup_free_ char *s = NULL;
    size_t n = 0;
    assert_int_equal(fileio_read_all("/proc/self/status", 1 << 20, &s, &n), 0);
    assert_true(n > 100);
    assert_non_null(strstr(s, "VmRSS"));
    char *small = NULL;
    assert_int_equal(fileio_read_all("/proc/self/status", 10, &small, NULL), -EFBIG);
}

static void
test_write_all_through_a_pipe(void **state)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    size_t len = 200000; /* more than a pipe holds: the writer must loop */
    char *buf = malloc(len);
    assert_non_null(buf);
    for (size_t i = 0; i < len; i++)
        buf[i] = (char)(i * 7);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        _exit(fileio_write_all(fds[1], buf, len) == 0 ? 0 : 1);
    }
    close(fds[1]);
    size_t got = 0;
    char chunk[4096];
    ssize_t r;
    int same = 1;
    while ((r = read(fds[0], chunk, sizeof(chunk))) > 0) {
        same &= memcmp(chunk, buf + got, (size_t)r) == 0;
        got += (size_t)r;
    }
    int status;
    waitpid(pid, &status, 0);
    close(fds[0]);
    free(buf);
    assert_int_equal(got, len);
    assert_true(same);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    signal(SIGPIPE, SIG_IGN);
    assert_int_equal(pipe(fds), 0);
    close(fds[0]);
    assert_int_equal(fileio_write_all(fds[1], "x", 1), -EPIPE);
    close(fds[1]);
}

static void
test_send_all_on_a_socket(void **state)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(fileio_send_all(sv[0], "hello", 5), 0);
    char buf[8] = "";
    assert_int_equal(read(sv[1], buf, sizeof(buf)), 5);
    assert_memory_equal(buf, "hello", 5);
    close(sv[1]);
    /* a peer that is gone: -EPIPE, and no SIGPIPE kills the caller */
    signal(SIGPIPE, SIG_DFL);
    assert_int_equal(fileio_send_all(sv[0], "x", 1), -EPIPE);
    close(sv[0]);
}

static void
test_write_atomic_replaces_or_keeps(void **state)
{
    char p[128];
    in_dir(p, sizeof(p), "a");
    assert_int_equal(fileio_write_atomic(p, "old", 3, 0640), 0);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640 & ~umask(022));
    umask(022);
    assert_int_equal(fileio_write_atomic(p, "new!", 4, 0600), 0);
    _cleanup_free_ char *s = NULL;
    assert_int_equal(fileio_read_all(p, 100, &s, NULL), 0);
    assert_string_equal(s, "new!");
    /* a target that is a directory: the rename fails, nothing is left behind */
    char d[128];
    in_dir(d, sizeof(d), "adir");
    assert_int_equal(mkdir(d, 0700), 0);
    char sub[160];
    snprintf(sub, sizeof(sub), "%s/x", d);
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_true(fileio_write_atomic(d, "x", 1, 0600) < 0);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "ls %s | grep -c tmp", dir);
    FILE *f = popen(cmd, "r");
    char out[16] = "";
    assert_non_null(fgets(out, sizeof(out), f));
    pclose(f);
    assert_string_equal(out, "0\n");
}

static void
test_mkdir_p(void **state)
{
    char p[160];
    in_dir(p, sizeof(p), "x/y//z");
    assert_int_equal(fileio_mkdir_p(p, 0700), 0);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(fileio_mkdir_p(p, 0700), 0); /* again: fine */
    char f[160];
    in_dir(f, sizeof(f), "file");
    assert_int_equal(fileio_write_atomic(f, "x", 1, 0600), 0);
    char under[200];
    snprintf(under, sizeof(under), "%s/sub", f);
    assert_int_equal(fileio_mkdir_p(under, 0700), -ENOTDIR);
    assert_int_equal(fileio_mkdir_p(f, 0700), -ENOTDIR);
}

static void
test_cleanup_and_steal(void **state)
{
    char p[128];
    in_dir(p, sizeof(p), "c");
    int kept;
    {
        _cleanup_close_ int fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        kept = steal_fd(&fd);
        assert_int_equal(fd, -1);
    }
    assert_int_equal(fcntl(kept, F_GETFD), FD_CLOEXEC); /* not closed by the scope */
    int closed;
    {
        _cleanup_close_ int fd = dup(kept);
        closed = fd;
        errno = 1234;
    }
    assert_int_equal(errno, 1234); /* close at scope exit keeps errno */
    assert_int_equal(fcntl(closed, F_GETFD), -1);
    close(kept);
    char *out;
    {
        _cleanup_free_ char *s = strdup("x");
        out = steal_ptr(&s);
        assert_null(s);
    }
    assert_string_equal(out, "x");
    free(out);
}

static void
test_errtext(void **state)
{
    char why[8];
    errtext_set(why, sizeof(why), "%s %d", "abcdef", 42);
    assert_string_equal(why, "abcdef ");
    errtext_set(NULL, 0, "ignored %d", 1);
    errtext_set(why, 0, "ignored %d", 1);
    assert_string_equal(why, "abcdef ");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_all),
        cmocka_unit_test(test_read_all_of_proc),
        cmocka_unit_test(test_write_all_through_a_pipe),
        cmocka_unit_test(test_send_all_on_a_socket),
        cmocka_unit_test(test_write_atomic_replaces_or_keeps),
        cmocka_unit_test(test_mkdir_p),
        cmocka_unit_test(test_cleanup_and_steal),
        cmocka_unit_test(test_errtext),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
