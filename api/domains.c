/* api/domains.c - VM records to domains, through a backend.
 *
 * Backends: "sim" keeps domains in memory (same calls, same outcomes, no
 * guest: the API can be exercised with thousands of VMs in seconds) and
 * "qemu" runs real guests through xenops/ when it is built in. The sim
 * backend lives here because it has no state worth a module: a table of
 * uuid -> (domid, paused). Suspend images are written as small files so that
 * resume finds what suspend left.
 */
#include "api/domains.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/hashmap.h"
#include "common/log.h"
#include "db/db.h"

struct sim_domain {
    char *uuid;
    int64_t domid;
    bool paused;
    int64_t memory;
};

struct domains {
    struct server *srv;
    char backend[8];
    pthread_mutex_t mu;
    struct hashmap sim; /* uuid -> struct sim_domain */
    int64_t next_domid;
};

static void
sim_free(void *p)
{
    struct sim_domain *d = p;
    free(d->uuid);
    free(d);
}

int
domains_open(struct server *srv, const char *backend, struct domains **out, char *why,
             size_t why_len)
{
    struct domains *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->srv = srv;
    pthread_mutex_init(&d->mu, NULL);
    hashmap_init(&d->sim);
    d->next_domid = 1;
    if (strcmp(backend, "qemu") == 0) {
        snprintf(why, why_len, "the qemu backend is not built into this vesseld yet");
        domains_close(d);
        return -ENOTSUP;
    }
    /* auto: qemu once xenops is built in; until then the simulator. */
    snprintf(d->backend, sizeof(d->backend), "sim");
    *out = d;
    return 0;
}

void
domains_close(struct domains *d)
{
    if (!d)
        return;
    hashmap_release_with(&d->sim, sim_free);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

const char *
domains_backend_name(const struct domains *d)
{
    return d->backend;
}

bool
domains_start(struct server *srv, const char *ref, const struct xapi_vm_record *vm, bool paused,
              int64_t *domid, struct xerr **errp)
{
    struct domains *d = srv->domains;
    struct sim_domain *s = calloc(1, sizeof(*s));
    if (!s || !(s->uuid = strdup(vm->uuid))) {
        free(s);
        return xerr_nomem(errp);
    }
    pthread_mutex_lock(&d->mu);
    if (hashmap_get(&d->sim, vm->uuid)) {
        pthread_mutex_unlock(&d->mu);
        sim_free(s);
        return xerr_internal(errp, "a domain for VM %s already exists", vm->uuid);
    }
    s->domid = d->next_domid++;
    s->paused = paused;
    s->memory = vm->memory_dynamic_max;
    int rc = hashmap_put(&d->sim, s->uuid, s);
    pthread_mutex_unlock(&d->mu);
    if (rc < 0) {
        sim_free(s);
        return xerr_nomem(errp);
    }
    *domid = s->domid;
    (void)ref;
    return true;
}

static struct sim_domain *
find_locked(struct domains *d, const char *uuid, struct xerr **errp)
{
    struct sim_domain *s = hashmap_get(&d->sim, uuid);
    if (!s)
        xerr_internal(errp, "no domain for VM %s", uuid);
    return s;
}

bool
domains_stop(struct server *srv, const char *uuid, bool clean, struct xerr **errp)
{
    struct domains *d = srv->domains;
    (void)clean;
    pthread_mutex_lock(&d->mu);
    struct sim_domain *s = hashmap_remove(&d->sim, uuid);
    pthread_mutex_unlock(&d->mu);
    if (!s)
        return xerr_internal(errp, "no domain for VM %s", uuid);
    sim_free(s);
    return true;
}

bool
domains_reboot(struct server *srv, const char *uuid, bool clean, struct xerr **errp)
{
    struct domains *d = srv->domains;
    (void)clean;
    pthread_mutex_lock(&d->mu);
    struct sim_domain *s = find_locked(d, uuid, errp);
    if (s)
        s->paused = false;
    pthread_mutex_unlock(&d->mu);
    return s != NULL;
}

bool
domains_pause(struct server *srv, const char *uuid, bool pause, struct xerr **errp)
{
    struct domains *d = srv->domains;
    pthread_mutex_lock(&d->mu);
    struct sim_domain *s = find_locked(d, uuid, errp);
    if (s)
        s->paused = pause;
    pthread_mutex_unlock(&d->mu);
    return s != NULL;
}

bool
domains_suspend(struct server *srv, const char *uuid, const char *path, struct xerr **errp)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
        mkdir(dir, 0700);
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return xerr_internal(errp, "cannot write the suspend image %s: %s", path, strerror(errno));
    static const char image[] = "vessel-sim-suspend-image\n";
    bool ok = write(fd, image, sizeof(image) - 1) == (ssize_t)(sizeof(image) - 1) && fsync(fd) == 0;
    close(fd);
    if (!ok)
        return xerr_internal(errp, "cannot write the suspend image %s", path);
    return domains_stop(srv, uuid, false, errp);
}

bool
domains_resume(struct server *srv, const char *ref, const struct xapi_vm_record *vm,
               const char *path, bool paused, int64_t *domid, struct xerr **errp)
{
    if (access(path, R_OK) != 0)
        return xerr_raise(errp, "VM_HAS_NO_SUSPEND_VDI", ref);
    if (!domains_start(srv, ref, vm, paused, domid, errp))
        return false;
    unlink(path); /* the image is consumed, as xapi destroys the suspend VDI */
    return true;
}

bool
domains_alive(struct server *srv, const char *uuid)
{
    struct domains *d = srv->domains;
    pthread_mutex_lock(&d->mu);
    bool alive = hashmap_get(&d->sim, uuid) != NULL;
    pthread_mutex_unlock(&d->mu);
    return alive;
}

int64_t
domains_memory_actual(struct server *srv, const char *uuid)
{
    struct domains *d = srv->domains;
    pthread_mutex_lock(&d->mu);
    struct sim_domain *s = hashmap_get(&d->sim, uuid);
    int64_t m = s ? s->memory : 0;
    pthread_mutex_unlock(&d->mu);
    return m;
}
