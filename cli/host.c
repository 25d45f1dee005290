/* cli/host.c - host-cpu-info and host-get-vms-which-prevent-evacuation.
 *
 * host-cpu-info prints host.cpu_info as one block, the keys xe shows first
 * (cpu_count, socket_count, vendor, speed, modelname, family, model,
 * stepping, flags, features), each filled from the host's host_cpu records
 * when cpu_info lacks it, then any other cpu_info keys.
 *
 * host-get-vms-which-prevent-evacuation: host.get_vms_which_prevent_evacuation,
 * printed as xapi's xe does: uuid, name-label and reason (the error code and
 * its parameters joined by ",") per VM.
 *
 * host-evacuate: host.evacuate of the host uuid= (or name-label=) names, the
 * pool master without it, with network-uuid= and batch-size= (xapi's
 * cli_operations.ml host_evacuate), waiting for its task.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cmds.h"
#include "client/xclient.h"
#include "xapi_client.h"

/* ------------------------------------------------------------------ host-cpu-info */

static const char *
map_get(const struct xapi_string_string_map *m, const char *key)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->keys[i], key) == 0)
            return m->values[i];
    return NULL;
}

/* What the host_cpu records say for @key (the first CPU's, cpu_count = n). */
static char *
from_cpus(const struct xapi_host_cpu_record *cpu, size_t n, const char *key)
{
    char *s = NULL;
    if (strcmp(key, "cpu_count") == 0)
        return asprintf(&s, "%zu", n) < 0 ? NULL : s;
    if (!cpu)
        return NULL;
    if (strcmp(key, "vendor") == 0)
        return strdup(cpu->vendor);
    if (strcmp(key, "modelname") == 0)
        return strdup(cpu->modelname);
    if (strcmp(key, "stepping") == 0)
        return strdup(cpu->stepping);
    if (strcmp(key, "flags") == 0)
        return strdup(cpu->flags);
    if (strcmp(key, "features") == 0)
        return strdup(cpu->features);
    int64_t v = strcmp(key, "speed") == 0    ? cpu->speed
                : strcmp(key, "family") == 0 ? cpu->family
                : strcmp(key, "model") == 0  ? cpu->model
                                             : -1;
    return v >= 0 && asprintf(&s, "%" PRId64, v) >= 0 ? s : NULL;
}

static bool
first_cpu(struct cli_ctx *c, const char *host, struct xapi_host_cpu_record **cpu, size_t *n,
          struct xerr **errp)
{
    struct xapi_ref_set cpus = {0};
    if (!xc_host_get_host_cpus(c->xc, host, &cpus, errp))
        return false;
    *n = cpus.n;
    bool ok = cpus.n == 0 || xc_host_cpu_get_record(c->xc, cpus.items[0], cpu, errp);
    xtype_value_clear(&xapi_type_string_set, &cpus);
    return ok;
}

int
cli_cmd_host_cpu_info(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    static const char *const first[] = {"cpu_count", "socket_count", "vendor",   "speed",
                                        "modelname", "family",       "model",    "stepping",
                                        "flags",     "features",     NULL};
    char *host = NULL;
    struct xapi_string_string_map info = {0};
    struct xapi_host_cpu_record *cpu = NULL;
    size_t n_cpus = 0;
    bool ok = cli_host_arg(c, a, "uuid", &host, errp) &&
              xc_host_get_cpu_info(c->xc, host, &info, errp) &&
              first_cpu(c, host, &cpu, &n_cpus, errp);
    size_t cap = info.n + 16, n = 0;
    const char **keys = calloc(cap, sizeof(*keys));
    char **vals = calloc(cap, sizeof(*vals));
    if (ok && (!keys || !vals))
        ok = xerr_nomem(errp);
    for (const char *const *k = first; ok && *k; k++) {
        const char *v = map_get(&info, *k);
        char *s = v ? strdup(v) : from_cpus(cpu, n_cpus, *k);
        if (s) {
            keys[n] = *k;
            vals[n++] = s;
        }
    }
    for (size_t i = 0; ok && i < info.n; i++) {
        bool shown = false;
        for (const char *const *k = first; *k && !shown; k++)
            shown = strcmp(*k, info.keys[i]) == 0;
        if (!shown && (vals[n] = strdup(info.values[i])))
            keys[n++] = info.keys[i];
    }
    if (ok)
        cli_print_block(c->out, keys, (const char *const *)vals, n);
    for (size_t i = 0; i < n; i++)
        free(vals[i]);
    free(vals);
    free(keys);
    xapi_host_cpu_record_free(cpu);
    xtype_value_clear(&xapi_type_string_string_map, &info);
    free(host);
    return ok ? 0 : 1;
}

/* ------------------------------------------------------------------ evacuation */

static bool
print_blocker(struct cli_ctx *c, const char *vm, const char *reason, bool *any,
              struct xerr **errp)
{
    struct xapi_vm_record *r = NULL;
    if (!xc_vm_get_record(c->xc, vm, &r, errp))
        return false;
    if (!r->is_control_domain) {
        const char *keys[3] = {"uuid ( RO)", "name-label ( RW)", "reason ( RO)"};
        const char *vals[3] = {r->uuid, r->name_label, reason};
        if (*any)
            fprintf(c->out, "\n");
        cli_print_block(c->out, keys, vals, 3);
        *any = true;
    }
    xapi_vm_record_free(r);
    return true;
}

int
cli_cmd_host_get_vms_which_prevent_evacuation(struct cli_ctx *c, const struct cli_args *a,
                                              struct xerr **errp)
{
    char *host = NULL;
    struct xapi_ref_string_set_map vms = {0};
    bool ok = cli_host_arg(c, a, "uuid", &host, errp) &&
              xc_host_get_vms_which_prevent_evacuation(c->xc, host, &vms, errp);
    bool any = false;
    for (size_t i = 0; ok && i < vms.n; i++) {
        size_t len = 1;
        for (size_t k = 0; k < vms.values[i].n; k++)
            len += strlen(vms.values[i].items[k]) + 1;
        char *reason = calloc(len, 1);
        if (!reason) {
            ok = xerr_nomem(errp);
            break;
        }
        for (size_t k = 0; k < vms.values[i].n; k++) {
            if (k)
                strcat(reason, ",");
            strcat(reason, vms.values[i].items[k]);
        }
        ok = print_blocker(c, vms.keys[i], reason, &any, errp);
        free(reason);
    }
    xtype_value_clear(&xapi_type_ref_VM_string_set_map, &vms);
    free(host);
    return ok ? 0 : 1;
}

int
cli_cmd_host_evacuate(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    const char *batch = cli_arg_get(a, "batch-size"), *net_uuid = cli_arg_get(a, "network-uuid");
    char *end = NULL;
    int64_t batch_size = batch ? strtoll(batch, &end, 10) : 0;
    if (batch && (!*batch || *end || batch_size < 0))
        return cli_err_syntax(errp, "Syntax error: batch-size=%s is not a number", batch), 1;
    char *host = NULL, *network = NULL;
    bool ok = cli_host_arg(c, a, "uuid", &host, errp) &&
              (net_uuid ? cli_uuid_ref(c, "network", net_uuid, &network, errp)
                        : (network = strdup("OpaqueRef:NULL")) != NULL || xerr_nomem(errp));
    if (ok) {
        const struct xtype *t[3] = {&xapi_type_ref_host, &xapi_type_ref_network, &xapi_type_int};
        const void *v[3] = {&host, &network, &batch_size};
        ok = cli_async(c, "host.evacuate", 3, t, v, "Evacuating host", NULL, NULL, errp);
    }
    free(host);
    free(network);
    return ok ? 0 : 1;
}
