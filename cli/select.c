/* cli/select.c - what xe's verbs act on: VM selectors, SRs, hosts, Async calls.
 *
 * VM verbs take vm=<name-label or uuid> or any field filter of the VM class
 * (power-state=running, other-config:k=v); more than one match is refused
 * unless --multiple (xapi's ocaml/xapi-cli-server/cli_frontend.ml and records.ml). Like xapi's select_vms, the
 * power verbs never match templates, snapshots or control domains, so that
 * `xe vm-shutdown power-state=running --multiple` leaves dom0 alone. VMs are
 * fetched with one get_all_records_where and filtered here, as the lists are.
 *
 * Long calls run as Async.<message> and are waited on with cli_task_wait
 * (a bar on a terminal, plain lines otherwise).
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "client/xclient.h"
#include "xapi_client.h"

static bool
kind_matches(const struct xapi_vm_record *vm, enum cli_vm_kind kind)
{
    if (vm->is_control_domain)
        return false;
    switch (kind) {
    case CLI_VM_PLAIN:
        return !vm->is_a_template && !vm->is_a_snapshot;
    case CLI_VM_TEMPLATE:
        return vm->is_a_template;
    case CLI_VM_SNAPSHOT:
        return vm->is_a_snapshot;
    case CLI_VM_ANY:
        return true;
    }
    return false;
}

static const char *
kind_noun(enum cli_vm_kind kind)
{
    return kind == CLI_VM_TEMPLATE ? "templates" : kind == CLI_VM_SNAPSHOT ? "snapshots" : "VMs";
}

/* Whether any argument other than @sel and @skip filters the VMs. */
static bool
has_selector(const struct cli_args *a, const char *sel, const char *const *skip)
{
    for (size_t i = 0; i < a->n; i++) {
        if (!a->v[i].value)
            continue;
        if (strcmp(a->v[i].key, sel) == 0)
            return true;
        bool skipped = false;
        for (const char *const *s = skip; *s && !skipped; s++)
            skipped = strcmp(*s, a->v[i].key) == 0;
        if (!skipped)
            return true;
    }
    return false;
}

/* @skip plus @sel, NULL-terminated, in *out (freed by the caller). */
static bool
skip_with(const char *const *skip, const char *sel, const char ***out, struct xerr **errp)
{
    size_t n = 0;
    while (skip[n])
        n++;
    const char **v = calloc(n + 2, sizeof(*v));
    if (!v)
        return xerr_nomem(errp);
    memcpy(v, skip, n * sizeof(*v));
    v[n] = sel;
    *out = v;
    return true;
}

bool
cli_select_vms(struct cli_ctx *c, const struct cli_args *a, const char *sel,
               const char *const *skip, enum cli_vm_kind kind, struct xset *out,
               struct xerr **errp)
{
    const struct xclass *cls = &xapi_class_vm;
    const char *want = cli_arg_get(a, sel);
    if (!has_selector(a, sel, skip))
        return cli_err_required(errp, sel);
    const struct cli_class_types *ct = cli_class_types(cls);
    const char **skip2 = NULL;
    if (!skip_with(skip, sel, &skip2, errp))
        return false;
    struct xmap all = {0};
    bool ok = cli_fetch_all(c, cls, &all, errp);
    for (size_t i = 0; ok && i < all.n; i++) {
        const struct xapi_vm_record *vm = ((void **)all.values)[i];
        if (want && strcmp(vm->uuid, want) != 0 && strcmp(vm->name_label, want) != 0)
            continue;
        if (!kind_matches(vm, kind))
            continue;
        struct xerr *ferr = NULL;
        if (!cli_record_matches(c, cls, vm, a, skip2, &ferr)) {
            if (ferr)
                ok = xerr_propagate(errp, &ferr);
            continue;
        }
        if (xset_add_str(out, ((char **)all.keys)[i]) < 0)
            ok = xerr_nomem(errp);
    }
    free(skip2);
    xtype_value_clear(&ct->record_map, &all);
    if (ok && out->n == 0)
        ok = cli_err_syntax(errp, "Error: No matching %s found", kind_noun(kind));
    else if (ok && out->n > 1 && !a->multiple)
        ok = cli_err_syntax(errp,
                            "Multiple matches found for selector %s=%s: use --multiple or a uuid",
                            sel, want ? want : "");
    if (!ok)
        xtype_value_clear(&xapi_type_string_set, out);
    return ok;
}

bool
cli_select_one_vm(struct cli_ctx *c, const struct cli_args *a, const char *sel,
                  const char *const *skip, enum cli_vm_kind kind, char **ref, struct xerr **errp)
{
    struct cli_args one = *a;
    one.multiple = false;
    struct xset refs = {0};
    if (!cli_select_vms(c, &one, sel, skip, kind, &refs, errp))
        return false;
    *ref = strdup(((char **)refs.items)[0]);
    xtype_value_clear(&xapi_type_string_set, &refs);
    return *ref ? true : xerr_nomem(errp);
}

bool
cli_async(struct cli_ctx *c, const char *method, size_t n, const struct xtype *const *types,
          const void *const *vals, const char *label, const struct xtype *rt, void *result,
          struct xerr **errp)
{
    char amethod[160];
    snprintf(amethod, sizeof(amethod), "Async.%s", method);
    char *task = NULL;
    if (!cli_call(c, amethod, n, types, vals, &xapi_type_string, &task, errp))
        return false;
    bool ok = cli_task_wait(c, task, label, rt, result, errp);
    free(task);
    return ok;
}

void
cli_print_uuid_of(struct cli_ctx *c, const char *cls, const char *ref)
{
    const char *uuid = cli_ref_uuid(c, cls, ref);
    fprintf(c->out, "%s\n", uuid ? uuid : ref);
}

bool
cli_ref_arg(struct cli_ctx *c, const struct cli_args *a, const char *key, const char *cls_name,
            char **ref, struct xerr **errp)
{
    const char *uuid = cli_arg_get(a, key);
    if (!uuid)
        return cli_err_required(errp, key);
    return cli_uuid_ref(c, cls_name, uuid, ref, errp);
}

/* The only pool's ref (there is one per server). */
static bool
the_pool(struct cli_ctx *c, char **pool, struct xerr **errp)
{
    struct xapi_ref_set pools = {0};
    if (!xc_pool_get_all(c->xc, &pools, errp))
        return false;
    bool ok = pools.n > 0 ? (*pool = strdup(((char **)pools.items)[0])) != NULL
                          : xerr_internal(errp, "xe: the server has no pool");
    xtype_value_clear(&xapi_type_string_set, &pools);
    return ok;
}

/* The SR whose name-label is @name: exactly one. */
static bool
sr_by_name(struct cli_ctx *c, const char *name, char **sr, struct xerr **errp)
{
    struct xapi_ref_set srs = {0};
    if (!xc_sr_get_by_name_label(c->xc, name, &srs, errp))
        return false;
    bool ok = srs.n == 1 ? (*sr = strdup(((char **)srs.items)[0])) != NULL
              : srs.n == 0 ? cli_err_syntax(errp, "Error: No matching SRs found")
                           : cli_err_syntax(errp, "Multiple SRs are named '%s': use sr-uuid=",
                                            name);
    xtype_value_clear(&xapi_type_string_set, &srs);
    return ok;
}

bool
cli_sr_arg(struct cli_ctx *c, const struct cli_args *a, bool need, char **sr, bool *given,
           struct xerr **errp)
{
    const char *uuid = cli_arg_get(a, "sr-uuid");
    const char *name = cli_arg_get(a, "sr-name-label");
    *given = uuid || name;
    if (uuid)
        return cli_uuid_ref(c, "SR", uuid, sr, errp);
    if (name)
        return sr_by_name(c, name, sr, errp);
    char *pool = NULL;
    if (!the_pool(c, &pool, errp))
        return false;
    bool ok = xc_pool_get_default_sr(c->xc, pool, sr, errp);
    free(pool);
    if (ok && need && (!*sr || strcmp(*sr, "OpaqueRef:NULL") == 0 || !**sr)) {
        free(*sr);
        *sr = NULL;
        return cli_err_syntax(errp, "Error: the pool has no default SR: give sr-uuid=");
    }
    return ok;
}

bool
cli_host_arg(struct cli_ctx *c, const struct cli_args *a, const char *key, char **host,
             struct xerr **errp)
{
    const char *want = cli_arg_get(a, key);
    if (!want) {
        char *pool = NULL;
        if (!the_pool(c, &pool, errp))
            return false;
        bool ok = xc_pool_get_master(c->xc, pool, host, errp);
        free(pool);
        return ok;
    }
    struct xerr *e = NULL;
    if (xc_host_get_by_uuid(c->xc, want, host, &e))
        return true;
    xerr_free(e);
    struct xapi_ref_set hosts = {0};
    if (!xc_host_get_by_name_label(c->xc, want, &hosts, errp))
        return false;
    bool ok = hosts.n == 1 ? (*host = strdup(((char **)hosts.items)[0])) != NULL
                           : cli_err_syntax(errp, "Error: No matching hosts found");
    xtype_value_clear(&xapi_type_string_set, &hosts);
    return ok;
}

int
cli_verb_on_uuid(struct cli_ctx *c, const struct cli_args *a, const char *cls_name,
                 cli_ref_verb_fn *fn, struct xerr **errp)
{
    char *ref = NULL;
    bool ok = cli_ref_arg(c, a, "uuid", cls_name, &ref, errp) && fn(c->xc, ref, errp);
    free(ref);
    return ok ? 0 : 1;
}

bool
cli_typed_arg(struct cli_ctx *c, const struct cli_args *a, const char *key,
              const struct xtype *t, void *out, bool *given, struct xerr **errp)
{
    const char *text = cli_arg_get(a, key);
    *given = text != NULL;
    if (!text)
        return true;
    return cli_value_parse(t, text, out, key, c ? cli_uuid_ref : NULL, c, errp);
}
