/* tests/unit/xenops/test_qga.c - the guest agent's wire (xenops/qga.c)
 * against a scripted agent on the other end of a socketpair: a sync skips
 * stale replies and noise, a silent channel times out, an error reply is
 * -EIO, guest-shutdown waits for no answer, and the guest's description is
 * read in qemu-ga's shapes (QEMU qga/qapi-schema.json).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "xenops/qga.h"

/* The agent's side: for each command it reads, the reply the test chose. */
struct agent {
    int fd;
    const char *const *replies; /* "%llu" is the sync id; NULL: say nothing */
    size_t n;
    char seen[8][64];           /* the commands it got */
};

static void *
agent_run(void *arg)
{
    struct agent *a = arg;
    struct qmp_reader r = {.len = 0};
    for (size_t i = 0; i < a->n; i++) {
        char *line;
        if (qmp_read_line_wait(&r, a->fd, &line, 5000) != 1)
            break;
        json_t *cmd = json_loads(line, 0, NULL);
        const char *name = json_string_value(json_object_get(cmd, "execute"));
        snprintf(a->seen[i], sizeof(a->seen[i]), "%s", name ? name : "?");
        unsigned long long id =
            (unsigned long long)json_integer_value(json_object_get(json_object_get(cmd, "arguments"), "id"));
        json_decref(cmd);
        if (!a->replies[i])
            continue;
        char out[4096];
        int len = snprintf(out, sizeof(out), a->replies[i], id);
        if (write(a->fd, out, (size_t)len) != len)
            break;
    }
    return NULL;
}

static void
with_agent(const char *const *replies, size_t n, void (*body)(int fd, struct agent *a))
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    struct agent a = {.fd = sv[1], .replies = replies, .n = n};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, agent_run, &a), 0);
    body(sv[0], &a);
    close(sv[0]);
    pthread_join(t, NULL);
    close(sv[1]);
}

static void
sync_skips_stale(int fd, struct agent *a)
{
    static struct qmp_reader r;
    r.len = 0;
    assert_int_equal(qga_sync(fd, &r, 7, 2000), 0);
    assert_string_equal(a->seen[0], "guest-sync-delimited");
}

static void
test_sync_skips_stale_replies(void **state)
{
    /* a late reply of an earlier call, a stale sync of another id, then ours */
    static const char *const replies[] = {
        "{\"return\": {\"version\": \"1\"}}\n\xff{\"return\": 3}\n\xff{\"return\": %llu}\n"};
    with_agent(replies, 1, sync_skips_stale);
}

static void
silent(int fd, struct agent *a)
{
    static struct qmp_reader r;
    r.len = 0;
    assert_int_equal(qga_sync(fd, &r, 1, 200), -ETIMEDOUT);
}

static void
test_no_agent_times_out(void **state)
{
    static const char *const replies[] = {NULL};
    with_agent(replies, 1, silent);
}

static void
error_reply(int fd, struct agent *a)
{
    static struct qmp_reader r;
    r.len = 0;
    json_t *ret = NULL;
    assert_int_equal(qga_call(fd, &r, 2, "guest-get-fsinfo", NULL, 2000, &ret), -EIO);
    assert_null(ret);
    assert_string_equal(a->seen[1], "guest-get-fsinfo");
}

static void
test_error_reply_is_eio(void **state)
{
    static const char *const replies[] = {
        "\xff{\"return\": %llu}\n",
        "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"no\"}}\n"};
    with_agent(replies, 2, error_reply);
}

static void
shutdown_body(int fd, struct agent *a)
{
    static struct qmp_reader r;
    r.len = 0;
    assert_int_equal(qga_shutdown(fd, &r, 9, "reboot", 2000), 0);
}

static void
test_shutdown_needs_no_answer(void **state)
{
    static const char *const replies[] = {"\xff{\"return\": %llu}\n", NULL};
    with_agent(replies, 2, shutdown_body);
}

static void
test_info_from_json(void **state)
{
    json_t *info = json_loads("{\"version\":\"7.2.19\",\"supported_commands\":[]}", 0, NULL);
    json_t *os = json_loads("{\"id\":\"debian\",\"name\":\"Debian GNU/Linux\",\"pretty-name\":"
                            "\"Debian GNU/Linux 12 (bookworm)\",\"version-id\":\"12\","
                            "\"kernel-release\":\"6.1.0-57-cloud-amd64\",\"machine\":\"x86_64\"}",
                            0, NULL);
    json_t *ifs = json_loads(
        "[{\"name\":\"lo\",\"ip-addresses\":[{\"ip-address-type\":\"ipv4\",\"ip-address\":"
        "\"127.0.0.1\",\"prefix\":8}]},{\"name\":\"eth0\",\"hardware-address\":"
        "\"aa:bb:cc:00:00:01\",\"ip-addresses\":[{\"ip-address-type\":\"ipv4\",\"ip-address\":"
        "\"10.0.0.2\",\"prefix\":24},{\"ip-address-type\":\"ipv6\",\"ip-address\":\"fe80::1\","
        "\"prefix\":64},{\"ip-address-type\":\"bogus\",\"ip-address\":\"x\"}]}]",
        0, NULL);
    json_t *fs = json_loads("[{\"mountpoint\":\"/\",\"type\":\"ext4\",\"total-bytes\":1000,"
                            "\"used-bytes\":400},{\"mountpoint\":\"/run\",\"type\":\"tmpfs\"}]",
                            0, NULL);
    struct xenops_guest_info *g = qga_info_from_json(info, os, ifs, fs);
    assert_non_null(g);
    assert_string_equal(g->agent_version, "7.2.19");
    assert_string_equal(g->os_pretty_name, "Debian GNU/Linux 12 (bookworm)");
    assert_string_equal(g->os_version_id, "12");
    assert_string_equal(g->kernel_release, "6.1.0-57-cloud-amd64");
    assert_int_equal(g->n_nics, 2);
    assert_null(g->nics[0].mac);
    assert_string_equal(g->nics[1].mac, "aa:bb:cc:00:00:01");
    assert_int_equal(g->nics[1].n_ipv4, 1);
    assert_string_equal(g->nics[1].ipv4[0], "10.0.0.2");
    assert_int_equal(g->nics[1].n_ipv6, 1);
    assert_int_equal(g->n_fs, 2);
    assert_int_equal(g->fs[0].total_bytes, 1000);
    assert_int_equal(g->fs[1].total_bytes, 0);
    xenops_guest_info_free(g);
    /* an agent that lacks every optional command: only its version */
    g = qga_info_from_json(info, NULL, NULL, NULL);
    assert_non_null(g);
    assert_null(g->os_id);
    assert_int_equal(g->n_nics, 0);
    xenops_guest_info_free(g);
    json_decref(info);
    json_decref(os);
    json_decref(ifs);
    json_decref(fs);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sync_skips_stale_replies),
        cmocka_unit_test(test_no_agent_times_out),
        cmocka_unit_test(test_error_reply_is_eio),
        cmocka_unit_test(test_shutdown_needs_no_answer),
        cmocka_unit_test(test_info_from_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
