/* xenops/xenops.c - the front end: picks a backend, checks arguments, and
 * forwards each call through the ops table (xenops_int.h).
 *
 * The two backends differ only behind struct xenops_ops; api/ cannot tell
 * which one it drives except by xenops_backend_name(). Argument checks live
 * here once so that both backends see only well-formed calls.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/fileio.h"
#include "xenops/xenops_int.h"

static const char *const event_names[] = {"halted",  "rebooted",  "crashed", "paused",
                                          "resumed", "suspended", "agent"};

const char *
xenops_event_name(enum xenops_event ev)
{
    return (unsigned)ev < sizeof(event_names) / sizeof(event_names[0]) ? event_names[ev] : "?";
}

void
xenops_strv_free(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

uint64_t
xenops_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t
xenops_realtime_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int
xenops_new(const struct xenops_init *init, struct xenops **out)
{
    const struct xenops_ops *ops = NULL;
    if (!init || !init->backend)
        return -EINVAL;
    if (!strcmp(init->backend, "qemu"))
        ops = &xenops_qemu_ops;
    else if (!strcmp(init->backend, "sim"))
        ops = &xenops_sim_ops;
    else
        return -EINVAL;
    if (ops == &xenops_qemu_ops && !init->run_dir)
        return -EINVAL;
    struct xenops *x = calloc(1, sizeof(*x));
    if (!x)
        return -ENOMEM;
    x->ops = ops;
    x->run_dir = init->run_dir ? strdup(init->run_dir) : NULL;
    x->log_dir = strdup(init->log_dir ? init->log_dir : init->run_dir ? init->run_dir : "/tmp");
    x->qemu_binary = strdup(init->qemu_binary ? init->qemu_binary : "qemu-system-x86_64");
    x->log_max_bytes = init->log_max_bytes ? init->log_max_bytes : 1u << 20;
    x->cgroup_root = init->cgroup_root ? strdup(init->cgroup_root) : NULL;
    x->sim_delay_ms = init->sim_delay_ms;
    x->on_event = init->on_event;
    x->opaque = init->opaque;
    int rc = 0;
    if ((init->run_dir && !x->run_dir) || !x->log_dir || !x->qemu_binary)
        rc = -ENOMEM;
    if (!rc && x->run_dir)
        rc = fileio_mkdir_p(x->run_dir, 0700);
    /* a qemu running as its own uid reaches its (chown'd, 0700) domain dir
     * and, through ../disks/, its disk servers' sockets: search, no listing */
    if (!rc && x->run_dir && chmod(x->run_dir, 0711) < 0)
        rc = -errno;
    if (!rc && ops == &xenops_qemu_ops)
        xenops_cgroup_probe(x);
    if (!rc && x->log_dir)
        rc = fileio_mkdir_p(x->log_dir, 0700);
    if (!rc)
        rc = ops->init(x);
    if (rc < 0) {
        free(x->run_dir);
        free(x->log_dir);
        free(x->qemu_binary);
        free(x->cgroup_root);
        free(x);
        return rc;
    }
    *out = x;
    return 0;
}

void
xenops_free(struct xenops *x)
{
    if (!x)
        return;
    x->ops->fini(x);
    free(x->run_dir);
    free(x->log_dir);
    free(x->qemu_binary);
    free(x->cgroup_root);
    free(x);
}

const char *
xenops_backend_name(const struct xenops *x)
{
    return x->ops->name;
}

int
xenops_recover(struct xenops *x, char ***uuids, size_t *n)
{
    int rc = x->ops->recover(x);
    if (rc < 0)
        return rc;
    if (!uuids)
        return 0;
    return x->ops->list(x, uuids, n);
}

int
xenops_domain_list(struct xenops *x, char ***uuids, size_t *n)
{
    if (!uuids || !n)
        return -EINVAL;
    return x->ops->list(x, uuids, n);
}

int
xenops_domain_start(struct xenops *x, const struct xenops_domain_config *cfg)
{
    int rc = xenops_config_check(cfg, NULL);
    return rc < 0 ? rc : x->ops->start(x, cfg, NULL);
}

int
xenops_domain_resume(struct xenops *x, const struct xenops_domain_config *cfg, const char *path)
{
    int rc = xenops_config_check(cfg, NULL);
    if (rc < 0)
        return rc;
    if (!path)
        return -EINVAL;
    return x->ops->start(x, cfg, path);
}

#define NEED_UUID(u)                                                                               \
    do {                                                                                           \
        if (!(u))                                                                                  \
            return -EINVAL;                                                                        \
    } while (0)

int
xenops_domain_pause(struct xenops *x, const char *uuid)
{
    NEED_UUID(uuid);
    return x->ops->pause(x, uuid);
}

int
xenops_domain_unpause(struct xenops *x, const char *uuid)
{
    NEED_UUID(uuid);
    return x->ops->unpause(x, uuid);
}

int
xenops_domain_shutdown(struct xenops *x, const char *uuid, bool hard, unsigned timeout_ms)
{
    NEED_UUID(uuid);
    return x->ops->shutdown(x, uuid, hard, timeout_ms);
}

int
xenops_domain_destroy(struct xenops *x, const char *uuid, xenops_destroy_fn *step,
                      void *opaque)
{
    NEED_UUID(uuid);
    return x->ops->destroy ? x->ops->destroy(x, uuid, step, opaque) : -ENOTSUP;
}

int
xenops_domain_kill(struct xenops *x, const char *uuid)
{
    NEED_UUID(uuid);
    return x->ops->kill ? x->ops->kill(x, uuid) : -ENOTSUP;
}

int
xenops_domain_reboot(struct xenops *x, const char *uuid, bool hard, unsigned timeout_ms)
{
    NEED_UUID(uuid);
    return x->ops->reboot(x, uuid, hard, timeout_ms);
}

int
xenops_domain_cancel_waits(struct xenops *x, const char *uuid)
{
    NEED_UUID(uuid);
    return x->ops->cancel_waits(x, uuid);
}

int
xenops_domain_suspend(struct xenops *x, const char *uuid, const char *path)
{
    NEED_UUID(uuid);
    if (!path)
        return -EINVAL;
    return x->ops->suspend(x, uuid, path);
}

int
xenops_domain_stats(struct xenops *x, const char *uuid, struct xenops_stats *out)
{
    NEED_UUID(uuid);
    memset(out, 0, sizeof(*out));
    return x->ops->stats(x, uuid, out);
}

int
xenops_console_read(struct xenops *x, const char *uuid, char **buf, size_t *len)
{
    NEED_UUID(uuid);
    return x->ops->console_read(x, uuid, buf, len);
}

int
xenops_console_subscribe(struct xenops *x, const char *uuid, xenops_console_fn *fn, void *opaque,
                         uint64_t *id)
{
    NEED_UUID(uuid);
    if (!fn || !id)
        return -EINVAL;
    return x->ops->console_subscribe(x, uuid, fn, opaque, false, id);
}

int
xenops_console_subscribe_replay(struct xenops *x, const char *uuid, xenops_console_fn *fn,
                                void *opaque, uint64_t *id)
{
    NEED_UUID(uuid);
    if (!fn || !id)
        return -EINVAL;
    return x->ops->console_subscribe(x, uuid, fn, opaque, true, id);
}

void
xenops_console_unsubscribe(struct xenops *x, const char *uuid, uint64_t id)
{
    if (uuid)
        x->ops->console_unsubscribe(x, uuid, id);
}

int
xenops_console_write(struct xenops *x, const char *uuid, const char *data, size_t len)
{
    NEED_UUID(uuid);
    return x->ops->console_write(x, uuid, data, len);
}

int
xenops_console_vnc_path(struct xenops *x, const char *uuid, char **path)
{
    NEED_UUID(uuid);
    return x->ops->vnc_path(x, uuid, path);
}

int
xenops_nic_plug(struct xenops *x, const char *uuid, const struct xenops_nic *nic)
{
    NEED_UUID(uuid);
    if (!nic || !nic->tap || !nic->mac)
        return -EINVAL;
    unsigned m[6];
    char end;
    if (!*nic->tap || strlen(nic->tap) > 15 || strpbrk(nic->tap, ",= /") ||
        sscanf(nic->mac, "%2x:%2x:%2x:%2x:%2x:%2x%c", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5],
               &end) != 6)
        return -EINVAL; /* what xenops_config_check asks of a NIC at start */
    return x->ops->nic_plug ? x->ops->nic_plug(x, uuid, nic) : -ENOTSUP;
}

int
xenops_nic_unplug(struct xenops *x, const char *uuid, const char *tap, bool force,
                  unsigned timeout_ms)
{
    NEED_UUID(uuid);
    if (!tap)
        return -EINVAL;
    return x->ops->nic_unplug ? x->ops->nic_unplug(x, uuid, tap, force, timeout_ms) : -ENOTSUP;
}

int
xenops_disk_plug(struct xenops *x, const char *uuid, unsigned slot, const struct xenops_disk *disk)
{
    NEED_UUID(uuid);
    if (!disk || !disk->path || disk->format != XENOPS_DISK_NBD || slot > 255 ||
        strpbrk(disk->path, ","))
        return -EINVAL;
    if (disk->cdrom)
        return -ENOTSUP; /* an IDE CD drive cannot be hotplugged: insert/eject it */
    return x->ops->disk_plug ? x->ops->disk_plug(x, uuid, slot, disk) : -ENOTSUP;
}

int
xenops_disk_unplug(struct xenops *x, const char *uuid, unsigned slot, unsigned timeout_ms)
{
    NEED_UUID(uuid);
    if (slot > 255)
        return -EINVAL;
    return x->ops->disk_unplug ? x->ops->disk_unplug(x, uuid, slot, timeout_ms) : -ENOTSUP;
}

int
xenops_nic_present(struct xenops *x, const char *uuid, const char *tap)
{
    NEED_UUID(uuid);
    if (!tap)
        return -EINVAL;
    return x->ops->nic_present ? x->ops->nic_present(x, uuid, tap) : -ENOTSUP;
}

int
xenops_agent_info(struct xenops *x, const char *uuid, unsigned timeout_ms,
                  struct xenops_guest_info **out)
{
    NEED_UUID(uuid);
    if (!out)
        return -EINVAL;
    *out = NULL;
    return x->ops->agent_info ? x->ops->agent_info(x, uuid, timeout_ms, out) : -ENOTSUP;
}

int
xenops_domain_set_memory_target(struct xenops *x, const char *uuid, uint64_t bytes)
{
    NEED_UUID(uuid);
    if (bytes < (16u << 20) || bytes % (1u << 20))
        return -EINVAL;
    return x->ops->set_memory_target(x, uuid, bytes);
}

int
xenops_domain_set_vcpus(struct xenops *x, const char *uuid, unsigned vcpus, unsigned timeout_ms)
{
    NEED_UUID(uuid);
    if (vcpus < 1 || vcpus > 64)
        return -EINVAL;
    return x->ops->set_vcpus(x, uuid, vcpus, timeout_ms);
}

/* ---- live migration ---- */

int
xenops_domain_start_incoming(struct xenops *x, const struct xenops_domain_config *cfg,
                             const char *listen, const struct xenops_tls *tls, char *uri,
                             size_t uri_len)
{
    int rc = xenops_config_check(cfg, NULL);
    if (rc < 0)
        return rc;
    if (!listen || !tls || !tls->ca_path || !tls->cert_path || !tls->key_path || !uri ||
        uri_len < 16)
        return -EINVAL;
    return x->ops->start_incoming ? x->ops->start_incoming(x, cfg, listen, tls, uri, uri_len)
                                  : -ENOTSUP;
}

int
xenops_domain_incoming_wait(struct xenops *x, const char *uuid, unsigned timeout_ms)
{
    NEED_UUID(uuid);
    return x->ops->incoming_wait ? x->ops->incoming_wait(x, uuid, timeout_ms) : -ENOTSUP;
}

int
xenops_domain_incoming_commit(struct xenops *x, const char *uuid)
{
    NEED_UUID(uuid);
    return x->ops->incoming_commit ? x->ops->incoming_commit(x, uuid) : -ENOTSUP;
}

int
xenops_domain_incoming_abort(struct xenops *x, const char *uuid)
{
    NEED_UUID(uuid);
    return x->ops->incoming_abort ? x->ops->incoming_abort(x, uuid) : -ENOTSUP;
}

int
xenops_domain_migrate_send(struct xenops *x, const char *uuid, const char *dest_uri,
                           const struct xenops_tls *tls, const char *tls_hostname,
                           xenops_migrate_fn *fn, void *opaque, struct xenops_migrate_stats *out)
{
    NEED_UUID(uuid);
    if (!dest_uri || strncmp(dest_uri, "tcp:", 4) != 0 || !tls || !tls->ca_path ||
        !tls->cert_path || !tls->key_path)
        return -EINVAL;
    return x->ops->migrate_send
               ? x->ops->migrate_send(x, uuid, dest_uri, tls, tls_hostname, fn, opaque, out)
               : -ENOTSUP;
}

int
xenops_domain_migrate_finish(struct xenops *x, const char *uuid, bool wait)
{
    NEED_UUID(uuid);
    return x->ops->migrate_finish ? x->ops->migrate_finish(x, uuid, wait) : -ENOTSUP;
}

int
xenops_domain_migrate_rollback(struct xenops *x, const char *uuid)
{
    NEED_UUID(uuid);
    return x->ops->migrate_rollback ? x->ops->migrate_rollback(x, uuid) : -ENOTSUP;
}

int
xenops_disk_geometry(struct xenops *x, const char *uuid, unsigned slot, unsigned *cyls,
                     unsigned *heads, unsigned *secs)
{
    NEED_UUID(uuid);
    if (!cyls || !heads || !secs)
        return -EINVAL;
    return x->ops->disk_geometry ? x->ops->disk_geometry(x, uuid, slot, cyls, heads, secs)
                                 : -ENOTSUP;
}
