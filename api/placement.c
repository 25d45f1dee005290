/* api/placement.c - choosing a host for a VM, hosts' free memory
 * (api/placement.h). */
#include "api/placement.h"

#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "db/db.h"
#include "rpc/ctx.h"
#include "xapi_errors.h"
#include "xapi_model.h"

struct host_use {
    const char *host;
    int64_t used;
};

static bool
valid_ref(const char *ref)
{
    return ref[0] && strcmp(ref, "OpaqueRef:NULL") != 0;
}

static bool
add_guest(void *opaque, const char *ref, const void *rec)
{
    struct host_use *u = opaque;
    const struct xapi_vm_record *vm = rec;
    (void)ref;
    if (vm->is_control_domain || vm->is_a_template || vm->is_a_snapshot)
        return true;
    bool running = vm->power_state == XAPI_VM_POWER_STATE_RUNNING ||
                   vm->power_state == XAPI_VM_POWER_STATE_PAUSED;
    if ((running && strcmp(vm->resident_on, u->host) == 0) ||
        (valid_ref(vm->scheduled_to_be_resident_on) &&
         strcmp(vm->scheduled_to_be_resident_on, u->host) == 0))
        u->used += vm->memory_dynamic_max;
    return true;
}

struct host_mem {
    int64_t total, free;
    bool known;
};

static void
peek_metrics(void *opaque, const void *rec)
{
    const struct xapi_host_metrics_record *m = rec;
    struct host_mem *hm = opaque;
    hm->total = m->memory_total;
    hm->free = m->memory_free;
    hm->known = true;
}

static void
peek_metrics_ref(void *opaque, const void *rec)
{
    xstr_set(opaque, ((const struct xapi_host_record *)rec)->metrics);
}

int64_t
placement_host_free_memory(struct db *db, const char *host)
{
    _cleanup_free_ char *metrics = NULL;
    struct host_mem hm = {0};
    if (!db_with(db, &xapi_class_host, host, peek_metrics_ref, &metrics, NULL) || !metrics ||
        !db_with(db, &xapi_class_host_metrics, metrics, peek_metrics, &hm, NULL) || !hm.known)
        return -1;
    struct host_use u = {host, 0};
    db_foreach(db, &xapi_class_vm, add_guest, &u);
    int64_t left = hm.total - u.used;
    if (left < 0)
        left = 0;
    return hm.free < left ? hm.free : left;
}

struct candidate {
    char *host;
    int64_t free;
};

struct candidates {
    struct candidate *v;
    size_t n;
    bool oom;
};

static bool
collect_host(void *opaque, const char *ref, const void *rec)
{
    struct candidates *c = opaque;
    (void)rec;
    struct candidate *grown = realloc(c->v, (c->n + 1) * sizeof(*grown));
    if (!grown || !(grown[c->n].host = strdup(ref))) {
        if (grown)
            c->v = grown;
        c->oom = true;
        return false;
    }
    c->v = grown;
    c->n++;
    return true;
}

/* The order in which hosts are tried: affinity, this host, then most free
 * memory first. */
static int
rank(const struct candidate *a, const char *affinity, const char *self)
{
    if (strcmp(a->host, affinity) == 0)
        return 0;
    return strcmp(a->host, self) == 0 ? 1 : 2;
}

bool
placement_choose_host(struct call_ctx *ctx, const char *vm_ref, char **host, struct xerr **errp)
{
    *host = NULL;
    _cleanup_(xapi_vm_record_freep) struct xapi_vm_record *vm = NULL;
    if (!db_get(ctx->db, &xapi_class_vm, vm_ref, (void **)&vm, NULL))
        return true; /* the local handler answers HANDLE_INVALID */
    struct candidates c = {0};
    db_foreach(ctx->db, &xapi_class_host, collect_host, &c);
    bool ok = !c.oom || xerr_nomem(errp);
    for (size_t i = 0; ok && i < c.n; i++)
        c.v[i].free = placement_host_free_memory(ctx->db, c.v[i].host);
    /* insertion sort: a pool has a few hosts */
    for (size_t i = 1; ok && i < c.n; i++)
        for (size_t j = i; j > 0; j--) {
            int ra = rank(&c.v[j - 1], vm->affinity, ctx->srv->host_ref);
            int rb = rank(&c.v[j], vm->affinity, ctx->srv->host_ref);
            if (ra < rb || (ra == rb && c.v[j - 1].free >= c.v[j].free))
                break;
            struct candidate t = c.v[j - 1];
            c.v[j - 1] = c.v[j];
            c.v[j] = t;
        }
    const char *chosen = NULL;
    for (int memory = 1; ok && memory >= 0 && !chosen; memory--)
        for (size_t i = 0; i < c.n && !chosen; i++)
            if (vm_can_boot_here(ctx, vm_ref, vm, c.v[i].host, memory, NULL))
                chosen = c.v[i].host;
    if (ok && chosen && strcmp(chosen, ctx->srv->host_ref) != 0 && !(*host = strdup(chosen)))
        ok = xerr_nomem(errp);
    for (size_t i = 0; i < c.n; i++)
        free(c.v[i].host);
    free(c.v);
    return ok;
}
