/* cli/data_sources.c - xe host-data-source-list, vm-data-source-list.
 *
 * As xapi's cli_operations.ml (data_source_to_kvs): one block per data
 * source, its name, description, whether it is recorded and standard, its
 * range and units; numbers as OCaml's string_of_float writes them.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cmds.h"
#include "xapi_client.h"

/* OCaml's string_of_float: "%.12g", with a "." when that reads as an integer. */
static void
ocaml_float(double v, char *out, size_t len)
{
    if (isnan(v)) {
        snprintf(out, len, "nan");
        return;
    }
    if (isinf(v)) {
        snprintf(out, len, "%sinf", v < 0 ? "-" : "");
        return;
    }
    snprintf(out, len, "%.12g", v);
    if (!strpbrk(out, ".e"))
        strncat(out, ".", len - strlen(out) - 1);
}

static void
print_sources(struct cli_ctx *c, const struct xapi_data_source_record_set *set)
{
    for (size_t i = 0; i < set->n; i++) {
        const struct xapi_data_source_record *ds = set->items[i];
        char min[40], max[40];
        ocaml_float(ds->min, min, sizeof(min));
        ocaml_float(ds->max, max, sizeof(max));
        const char *keys[] = {"name_label", "name_description", "enabled", "standard", "min",
                              "max", "units"};
        const char *vals[] = {ds->name_label, ds->name_description,
                              ds->enabled ? "true" : "false", ds->standard ? "true" : "false",
                              min, max, ds->units};
        cli_print_block(c->out, keys, vals, 7);
        fputc('\n', c->out);
    }
}

int
cli_cmd_host_data_source_list(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    const char *key = cli_arg_get(a, "uuid") ? "uuid" : cli_arg_get(a, "host") ? "host"
                                                                              : "name-label";
    char *host = NULL;
    struct xapi_data_source_record_set set = {0};
    bool ok = cli_host_arg(c, a, key, &host, errp) &&
              xc_host_get_data_sources(c->xc, host, &set, errp);
    if (ok)
        print_sources(c, &set);
    xtype_value_clear(&xapi_type_data_source_record_set, &set);
    free(host);
    return ok ? 0 : 1;
}

int
cli_cmd_vm_data_source_list(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    static const char *const skip[] = {NULL};
    char *vm = NULL;
    struct xapi_data_source_record_set set = {0};
    bool ok = cli_select_one_vm(c, a, "vm", skip, CLI_VM_ANY, &vm, errp) &&
              xc_vm_get_data_sources(c->xc, vm, &set, errp);
    if (ok)
        print_sources(c, &set);
    xtype_value_clear(&xapi_type_data_source_record_set, &set);
    free(vm);
    return ok ? 0 : 1;
}
