/* xenops/qemu_agent.c - what a running qemu domain does with its guest's
 * cooperation: the guest agent (shutdown, reboot, the guest's description),
 * the balloon, and vCPU hotplug.
 *
 * The agent's channel is a chardev socket in qemu's directory, connected on
 * first use and kept; one exchange at a time (d->agent_lock). Whether the
 * guest holds its end open comes from QEMU's VSERPORT_CHANGE events
 * (xenops/qemu.c), but an open port is no proof that an agent listens, so
 * every exchange syncs first (xenops/qga.h) and a sync that times out means
 * "no agent". Facts: QEMU qapi/char.json (VSERPORT_CHANGE), qapi/machine.json
 * (query-hotpluggable-cpus, BALLOON_CHANGE, balloon), docs/system/cpu-hotplug.rst.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "xenops/qemu_int.h"
#include "xenops/qga.h"

/* How long the agent has to answer a sync: a listening agent answers in
 * milliseconds, even under TCG; a guest without one never does. */
#define AGENT_SYNC_MS 3000u

void
qdom_agent_close(struct qdom *d)
{
    if (d->agent_fd >= 0)
        close(d->agent_fd);
    d->agent_fd = -1;
    if (d->agent_in)
        d->agent_in->len = 0;
}

/* d->agent_lock held. */
static int
agent_connect(struct qdom *d)
{
    if (d->agent_fd >= 0)
        return 0;
    if (!d->agent_in && !(d->agent_in = calloc(1, sizeof(*d->agent_in))))
        return -ENOMEM;
    d->agent_in->len = 0;
    char path[4200];
    snprintf(path, sizeof(path), "%s/agent.sock", d->dm_dir);
    /* a domain started before the channel existed has no socket: give up at once */
    int fd = qmp_connect(path, d->pidfd, xenops_now_ms());
    if (fd < 0)
        return fd == -ETIMEDOUT ? -ENOTCONN : fd;
    int rc = peer_is(fd, d->pid);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    d->agent_fd = fd;
    return 0;
}

static int
agent_port(struct qdom *d)
{
    pthread_mutex_lock(&d->lock);
    int port = d->agent_port;
    pthread_mutex_unlock(&d->lock);
    return port;
}

/* After an exchange that failed with @rc: a broken channel is dropped (the
 * next use reconnects); a silent one stays (later syncs skip stale replies),
 * and a port we knew nothing about is taken as closed until the guest opens
 * it again. */
static void
agent_after_error(struct qdom *d, int rc)
{
    if (rc != -ETIMEDOUT && rc != -EIO)
        qdom_agent_close(d);
    if (rc == -ETIMEDOUT) {
        pthread_mutex_lock(&d->lock);
        if (d->agent_port < 0)
            d->agent_port = 0;
        pthread_mutex_unlock(&d->lock);
    }
}

int
qdom_agent_shutdown(struct qdom *d, const char *mode)
{
    if (agent_port(d) == 0)
        return -ENOTSUP;
    pthread_mutex_lock(&d->agent_lock);
    int rc = agent_connect(d);
    if (rc == 0)
        rc = qga_shutdown(d->agent_fd, d->agent_in, ++d->agent_seq, mode, AGENT_SYNC_MS);
    if (rc < 0)
        agent_after_error(d, rc);
    pthread_mutex_unlock(&d->agent_lock);
    if (rc == 0)
        log_info("xenops.agent_shutdown", "vm=%s mode=%s", d->uuid, mode);
    return rc == 0 ? 0 : -ENOTSUP; /* no agent took it: the caller decides */
}

int
qemu_agent_info(struct xenops *x, const char *uuid, unsigned timeout_ms,
                struct xenops_guest_info **out)
{
    _cleanup_(qdom_unrefp) struct qdom *d = qdom_get(x, uuid);
    if (!d)
        return -ENOENT;
    if (agent_port(d) == 0)
        return -ENOTCONN;
    pthread_mutex_lock(&d->agent_lock);
    int rc = agent_connect(d);
    if (rc == 0)
        rc = qga_guest_info(d->agent_fd, d->agent_in, &d->agent_seq, timeout_ms, out);
    if (rc < 0)
        agent_after_error(d, rc);
    pthread_mutex_unlock(&d->agent_lock);
    return rc;
}

/* ---- the balloon ---- */

int
qemu_set_memory_target(struct xenops *x, const char *uuid, uint64_t bytes)
{
    _cleanup_(qdom_unrefp) struct qdom *d = qdom_get(x, uuid);
    if (!d)
        return -ENOENT;
    if (bytes > d->cfg->memory_bytes)
        return -EINVAL;
    int rc = qdom_qmp_fd(d, json_pack("{s:s,s:{s:I}}", "execute", "balloon", "arguments", "value",
                                      (json_int_t)bytes),
                         -1, NULL);
    if (rc == 0)
        log_info("xenops.balloon", "vm=%s target=%" PRIu64, uuid, bytes);
    return rc == -ESRCH ? -ENOENT : rc;
}

/* ---- vCPU hotplug ---- */

struct cpu_slot {
    json_t *entry; /* borrowed from the query's reply */
    long long key; /* socket, die, core, thread: the order vCPUs come and go */
    const char *qom_path;
};

static int
cpu_slot_cmp(const void *a, const void *b)
{
    long long x = ((const struct cpu_slot *)a)->key, y = ((const struct cpu_slot *)b)->key;
    return x < y ? -1 : x > y;
}

static long long
prop(const json_t *props, const char *name)
{
    const json_t *v = json_object_get(props, name);
    return json_is_integer(v) ? json_integer_value(v) : 0;
}

/* Plugs the lowest free slot: device_add of the slot's CPU type with its
 * topology properties, named vcpu<socket>-<core>-<thread>. */
static int
cpu_plug(struct qdom *d, const json_t *entry)
{
    const json_t *props = json_object_get(entry, "props");
    const char *type = json_string_value(json_object_get(entry, "type"));
    if (!type || !json_is_object(props))
        return -EIO;
    char id[64];
    snprintf(id, sizeof(id), "vcpu%lld-%lld-%lld", prop(props, "socket-id"), prop(props, "core-id"),
             prop(props, "thread-id"));
    json_t *args = json_deep_copy(props);
    if (!args || json_object_set_new(args, "driver", json_string(type)) < 0 ||
        json_object_set_new(args, "id", json_string(id)) < 0) {
        json_decref(args);
        return -ENOMEM;
    }
    return qdom_qmp_fd(d, json_pack("{s:s,s:o}", "execute", "device_add", "arguments", args), -1,
                       NULL);
}

int
qemu_set_vcpus(struct xenops *x, const char *uuid, unsigned vcpus, unsigned timeout_ms)
{
    _cleanup_(qdom_unrefp) struct qdom *d = qdom_get(x, uuid);
    if (!d)
        return -ENOENT;
    if (d->cfg->machine == XENOPS_MACHINE_MICROVM)
        return -ENOTSUP; /* no ACPI CPU hotplug controller */
    unsigned max = d->cfg->vcpus_max ? d->cfg->vcpus_max : d->cfg->vcpus;
    if (vcpus > max)
        return -EINVAL;
    pthread_mutex_lock(&d->nic_lock); /* one hotplug at a time: it owns nic_waiting */
    json_t *cpus = NULL;
    int rc = qdom_qmp(d, "query-hotpluggable-cpus", &cpus);
    size_t n = json_array_size(cpus), plugged = 0;
    struct cpu_slot *slots = n ? calloc(n, sizeof(*slots)) : NULL;
    if (rc == 0 && n && !slots)
        rc = -ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        json_t *e = json_array_get(cpus, i);
        const json_t *props = json_object_get(e, "props");
        slots[i].entry = e;
        slots[i].key = ((prop(props, "socket-id") * 256 + prop(props, "die-id")) * 256 +
                        prop(props, "core-id")) * 256 + prop(props, "thread-id");
        slots[i].qom_path = json_string_value(json_object_get(e, "qom-path"));
        plugged += slots[i].qom_path != NULL;
    }
    if (slots)
        qsort(slots, n, sizeof(*slots), cpu_slot_cmp);
    /* grow from the lowest free slot up; shrink from the highest plugged one
     * down, only CPUs plugged by device_add (boot CPUs cannot be removed) */
    for (size_t i = 0; rc == 0 && plugged < vcpus && i < n; i++)
        if (!slots[i].qom_path && (rc = cpu_plug(d, slots[i].entry)) == 0)
            plugged++;
    for (size_t i = n; rc == 0 && plugged > vcpus && i-- > 0;) {
        const char *path = slots[i].qom_path;
        const char *prefix = "/machine/peripheral/";
        if (!path || strncmp(path, prefix, strlen(prefix)))
            continue;
        if ((rc = qdom_device_del(d, path + strlen(prefix), timeout_ms)) == 0)
            plugged--;
    }
    if (rc == 0 && plugged != vcpus)
        rc = -EINVAL; /* more boot CPUs than asked for: they cannot go */
    free(slots);
    json_decref(cpus);
    pthread_mutex_lock(&d->lock);
    d->cfg->vcpus = (unsigned)plugged; /* what the guest has now, whatever failed */
    pthread_mutex_unlock(&d->lock);
    int save = qdom_save_config(d);
    pthread_mutex_unlock(&d->nic_lock);
    if (save < 0)
        log_warn_errno(-save, "xenops.vcpus_config", "vm=%s: not recorded", uuid);
    log_info("xenops.vcpus", "vm=%s vcpus=%zu asked=%u rc=%d", uuid, plugged, vcpus, rc);
    return rc == -ESRCH ? -ENOENT : rc;
}
