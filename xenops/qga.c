/* xenops/qga.c - the QEMU guest agent's wire: sync, call, shutdown, and the
 * guest's description (xenops/qga.h says why every exchange syncs first).
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "xenops/qga.h"
#include "xenops/xenops_int.h"

/* The next JSON object from the agent, with any 0xFF delimiter bytes before
 * it dropped (*delimited tells whether there was one). */
static int
read_object(int fd, struct qmp_reader *r, uint64_t deadline, json_t **out, bool *delimited)
{
    for (;;) {
        uint64_t now = xenops_now_ms();
        if (now >= deadline)
            return -ETIMEDOUT;
        char *line;
        int rc = qmp_read_line_wait(r, fd, &line, (unsigned)(deadline - now));
        if (rc < 0)
            return rc;
        *delimited = false;
        while ((unsigned char)*line == 0xff) {
            *delimited = true;
            line++;
        }
        json_t *j = json_loads(line, 0, NULL);
        if (json_is_object(j)) {
            *out = j;
            return 0;
        }
        json_decref(j); /* noise before a delimiter: a half reply of a timed-out call */
    }
}

static int
send_command(int fd, const char *cmd, json_t *args)
{
    json_t *c = json_pack("{s:s}", "execute", cmd);
    if (!c || (args && json_object_set(c, "arguments", args) < 0)) {
        json_decref(c);
        return -ENOMEM;
    }
    int rc = qmp_send(fd, c, -1);
    json_decref(c);
    return rc;
}

int
qga_sync(int fd, struct qmp_reader *r, uint64_t id, unsigned timeout_ms)
{
    json_t *args = json_pack("{s:I}", "id", (json_int_t)id);
    int rc = args ? send_command(fd, "guest-sync-delimited", args) : -ENOMEM;
    json_decref(args);
    uint64_t deadline = xenops_now_ms() + timeout_ms;
    while (rc == 0) {
        json_t *j = NULL;
        bool delimited;
        if ((rc = read_object(fd, r, deadline, &j, &delimited)) < 0)
            break;
        json_t *ret = json_object_get(j, "return");
        bool ours = delimited && json_is_integer(ret) && (uint64_t)json_integer_value(ret) == id;
        json_decref(j);
        if (ours)
            return 0; /* anything else was a stale reply: keep reading */
    }
    return rc;
}

int
qga_call(int fd, struct qmp_reader *r, uint64_t id, const char *cmd, json_t *args,
         unsigned timeout_ms, json_t **ret)
{
    int rc = qga_sync(fd, r, id, timeout_ms);
    if (rc == 0)
        rc = send_command(fd, cmd, args);
    json_decref(args);
    json_t *j = NULL;
    bool delimited;
    if (rc == 0)
        rc = read_object(fd, r, xenops_now_ms() + timeout_ms, &j, &delimited);
    if (rc == 0 && !json_object_get(j, "return"))
        rc = -EIO;
    if (rc == 0 && ret)
        *ret = json_incref(json_object_get(j, "return"));
    json_decref(j);
    return rc;
}

int
qga_shutdown(int fd, struct qmp_reader *r, uint64_t id, const char *mode, unsigned timeout_ms)
{
    int rc = qga_sync(fd, r, id, timeout_ms);
    json_t *args = json_pack("{s:s}", "mode", mode);
    if (rc == 0)
        rc = args ? send_command(fd, "guest-shutdown", args) : -ENOMEM;
    json_decref(args);
    return rc;
}

/* ---- the guest's description ---- */

static char *
str_of(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? strdup(s) : NULL;
}

static void
nic_from_json(struct xenops_guest_nic *n, const json_t *j)
{
    n->name = str_of(j, "name");
    n->mac = str_of(j, "hardware-address");
    const json_t *addrs = json_object_get(j, "ip-addresses");
    size_t count = json_array_size(addrs);
    n->ipv4 = calloc(count + 1, sizeof(char *));
    n->ipv6 = calloc(count + 1, sizeof(char *));
    if (!n->ipv4 || !n->ipv6)
        return;
    size_t i;
    const json_t *a;
    json_array_foreach(addrs, i, a) {
        const char *type = json_string_value(json_object_get(a, "ip-address-type"));
        char *ip = str_of(a, "ip-address");
        if (ip && type && !strcmp(type, "ipv4"))
            n->ipv4[n->n_ipv4++] = ip;
        else if (ip && type && !strcmp(type, "ipv6"))
            n->ipv6[n->n_ipv6++] = ip;
        else
            free(ip);
    }
}

static void
fs_from_json(struct xenops_guest_fs *f, const json_t *j)
{
    f->mountpoint = str_of(j, "mountpoint");
    f->type = str_of(j, "type");
    const json_t *total = json_object_get(j, "total-bytes"), *used = json_object_get(j, "used-bytes");
    f->total_bytes = json_is_integer(total) && json_integer_value(total) > 0
                         ? (uint64_t)json_integer_value(total)
                         : 0;
    f->used_bytes = json_is_integer(used) && json_integer_value(used) > 0
                        ? (uint64_t)json_integer_value(used)
                        : 0;
}

struct xenops_guest_info *
qga_info_from_json(const json_t *info, const json_t *osinfo, const json_t *ifaces,
                   const json_t *fsinfo)
{
    struct xenops_guest_info *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    g->agent_version = str_of(info, "version");
    g->os_id = str_of(osinfo, "id");
    g->os_name = str_of(osinfo, "name");
    g->os_pretty_name = str_of(osinfo, "pretty-name");
    g->os_version = str_of(osinfo, "version");
    g->os_version_id = str_of(osinfo, "version-id");
    g->kernel_release = str_of(osinfo, "kernel-release");
    g->kernel_version = str_of(osinfo, "kernel-version");
    g->machine = str_of(osinfo, "machine");
    size_t n = json_array_size(ifaces);
    if (n && (g->nics = calloc(n, sizeof(*g->nics))))
        for (size_t i = 0; i < n; i++)
            nic_from_json(&g->nics[g->n_nics++], json_array_get(ifaces, i));
    n = json_array_size(fsinfo);
    if (n && (g->fs = calloc(n, sizeof(*g->fs))))
        for (size_t i = 0; i < n; i++)
            fs_from_json(&g->fs[g->n_fs++], json_array_get(fsinfo, i));
    return g;
}

int
qga_guest_info(int fd, struct qmp_reader *r, uint64_t *id, unsigned timeout_ms,
               struct xenops_guest_info **out)
{
    static const char *const cmds[] = {"guest-info", "guest-get-osinfo",
                                       "guest-network-get-interfaces", "guest-get-fsinfo"};
    json_t *ret[4] = {NULL, NULL, NULL, NULL};
    int rc = 0;
    for (size_t i = 0; i < 4 && rc == 0; i++) {
        rc = qga_call(fd, r, ++*id, cmds[i], NULL, timeout_ms, &ret[i]);
        if (rc == -EIO && i > 0)
            rc = 0; /* an agent without the command: that part stays empty */
    }
    if (rc == 0 && !(*out = qga_info_from_json(ret[0], ret[1], ret[2], ret[3])))
        rc = -ENOMEM;
    for (size_t i = 0; i < 4; i++)
        json_decref(ret[i]);
    return rc;
}

void
xenops_guest_info_free(struct xenops_guest_info *g)
{
    if (!g)
        return;
    char *strs[] = {g->agent_version, g->os_id, g->os_name, g->os_pretty_name, g->os_version,
                    g->os_version_id, g->kernel_release, g->kernel_version, g->machine};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        free(strs[i]);
    for (size_t i = 0; i < g->n_nics; i++) {
        struct xenops_guest_nic *n = &g->nics[i];
        for (size_t k = 0; k < n->n_ipv4; k++)
            free(n->ipv4[k]);
        for (size_t k = 0; k < n->n_ipv6; k++)
            free(n->ipv6[k]);
        free(n->ipv4);
        free(n->ipv6);
        free(n->name);
        free(n->mac);
    }
    free(g->nics);
    for (size_t i = 0; i < g->n_fs; i++) {
        free(g->fs[i].mountpoint);
        free(g->fs[i].type);
    }
    free(g->fs);
    free(g);
}

void
xenops_guest_info_freep(struct xenops_guest_info **g)
{
    xenops_guest_info_free(*g);
}
