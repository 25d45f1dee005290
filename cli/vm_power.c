/* cli/vm_power.c - vm-start, vm-shutdown, vm-reboot, vm-suspend, vm-resume, vm-migrate,
 * vm-pause, vm-unpause, vm-reset-powerstate.
 *
 * Each selects its VMs (cli_select_vms: vm= or field filters, --multiple;
 * never templates, snapshots or control domains), checks its own flags
 * before any call (so usage errors need no server), then runs one Async
 * message per VM in turn and waits for it with progress; the first failure
 * stops the run and is reported. Messages and their states:
 * xapi's ocaml/xapi/xapi_vm_lifecycle.ml; the xe forms: section 8 (force=true or --force
 * makes shutdown and reboot hard; on=<host> turns start/resume into
 * start_on/resume_on; paused=true starts paused).
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cmds.h"
#include "client/xclient.h"
#include "xapi_client.h"

/* One power message as it is called for each selected VM. */
struct power_call {
    const char *method; /* "VM.start" */
    const char *label;  /* "Starting" */
    bool on;            /* *_on: on=<host> given */
    char *host;         /* *_on: the host ref (power_run resolves it); else NULL */
    bool flags;         /* takes (start_paused, force) */
    bool paused, force;
};

/* Arguments that are not VM filters. */
static const char *const power_skip[] = {"force", "on", "paused", NULL};

static bool
power_one(struct cli_ctx *c, const char *vm, const struct power_call *pc, struct xerr **errp)
{
    const struct xtype *t[4];
    const void *v[4];
    size_t n = 0;
    t[n] = &xapi_type_ref_VM;
    v[n++] = &vm;
    if (pc->host) {
        t[n] = &xapi_type_ref_host;
        v[n++] = &pc->host;
    }
    if (pc->flags) {
        t[n] = &xapi_type_bool;
        v[n++] = &pc->paused;
        t[n] = &xapi_type_bool;
        v[n++] = &pc->force;
    }
    const char *uuid = cli_ref_uuid(c, "VM", vm);
    char label[96];
    snprintf(label, sizeof(label), "%s VM %.8s", pc->label, uuid ? uuid : "?");
    return cli_async(c, pc->method, n, t, v, label, NULL, NULL, errp);
}

/* Selects the VMs of @a and runs @pc on each. */
static int
power_run(struct cli_ctx *c, const struct cli_args *a, struct power_call *pc, struct xerr **errp)
{
    struct xset refs = {0};
    bool ok = cli_select_vms(c, a, "vm", power_skip, CLI_VM_PLAIN, &refs, errp) &&
              (!pc->on || cli_host_arg(c, a, "on", &pc->host, errp));
    for (size_t i = 0; ok && i < refs.n; i++)
        ok = power_one(c, ((char **)refs.items)[i], pc, errp);
    xtype_value_clear(&xapi_type_string_set, &refs);
    free(pc->host);
    return ok ? 0 : 1;
}

static bool
force_arg(const struct cli_args *a, bool *force, struct xerr **errp)
{
    if (cli_arg_force(a, force) < 0)
        return cli_err_syntax(errp, "Syntax error: force=%s is not a boolean (true or false)",
                              cli_arg_get(a, "force"));
    return true;
}

static bool
paused_arg(const struct cli_args *a, bool *paused, struct xerr **errp)
{
    const char *v = cli_arg_get(a, "paused");
    *paused = false;
    if (v && !cli_parse_bool(v, paused))
        return cli_err_syntax(errp, "Syntax error: paused=%s is not a boolean (true or false)",
                              v);
    return true;
}

/* vm-start and vm-resume: (start_paused, force), on=<host> for the _on form. */
static int
start_or_resume(struct cli_ctx *c, const struct cli_args *a, bool resume, struct xerr **errp)
{
    struct power_call pc = {.flags = true, .label = resume ? "Resuming" : "Starting"};
    if (!force_arg(a, &pc.force, errp) || !paused_arg(a, &pc.paused, errp))
        return 1;
    pc.on = cli_arg_get(a, "on") != NULL;
    if (pc.on) {
        pc.method = resume ? "VM.resume_on" : "VM.start_on";
    } else {
        pc.method = resume ? "VM.resume" : "VM.start";
    }
    return power_run(c, a, &pc, errp);
}

int
cli_cmd_vm_start(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    return start_or_resume(c, a, false, errp);
}

int
cli_cmd_vm_resume(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    return start_or_resume(c, a, true, errp);
}

int
cli_cmd_vm_shutdown(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    bool force;
    if (!force_arg(a, &force, errp))
        return 1;
    struct power_call pc = {.method = force ? "VM.hard_shutdown" : "VM.clean_shutdown",
                            .label = "Shutting down"};
    return power_run(c, a, &pc, errp);
}

int
cli_cmd_vm_reboot(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    bool force;
    if (!force_arg(a, &force, errp))
        return 1;
    struct power_call pc = {.method = force ? "VM.hard_reboot" : "VM.clean_reboot",
                            .label = "Rebooting"};
    return power_run(c, a, &pc, errp);
}

int
cli_cmd_vm_suspend(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    struct power_call pc = {.method = "VM.suspend", .label = "Suspending"};
    return power_run(c, a, &pc, errp);
}

int
cli_cmd_vm_pause(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    struct power_call pc = {.method = "VM.pause", .label = "Pausing"};
    return power_run(c, a, &pc, errp);
}

int
cli_cmd_vm_unpause(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    struct power_call pc = {.method = "VM.unpause", .label = "Unpausing"};
    return power_run(c, a, &pc, errp);
}

/* Marks the VM Halted without touching a domain: for a VM whose host died.
 * xe insists on force, and so do we. */
int
cli_cmd_vm_reset_powerstate(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    bool force;
    if (!force_arg(a, &force, errp))
        return 1;
    if (!force)
        return cli_err_syntax(errp, "This operation is extremely dangerous and may cause data "
                                    "loss. This operation must be forced (use --force)."),
               1;
    struct power_call pc = {.method = "VM.power_state_reset", .label = "Resetting"};
    return power_run(c, a, &pc, errp);
}

/* vm-migrate within the pool (xapi's cli_operations.ml vm_migrate without
 * remote-master): host=<name or uuid> (host-uuid= and host-name= are its old
 * spellings), VM.pool_migrate per selected VM with the options
 * {"force", "live", "copy"} each "true" or "false" (default "false") and
 * "compress" when given. Migration to another pool (remote-master, vdi:,
 * vif:) is not built. */
static const char *const migrate_skip[] = {"host", "host-uuid", "host-name", "live", "force",
                                           "copy", "compress", NULL};

static bool
migrate_options(const struct cli_args *a, struct xapi_string_string_map *opts,
                struct xerr **errp)
{
    static const char *const flags[] = {"force", "live", "copy"};
    for (size_t i = 0; i < 3; i++) {
        const char *v = cli_arg_get(a, flags[i]);
        bool b = false;
        if (v && !cli_parse_bool(v, &b))
            return cli_err_syntax(errp, "Syntax error: %s=%s is not a boolean (true or false)",
                                  flags[i], v);
        if (xmap_put_str((struct xmap *)opts, flags[i], b ? "true" : "false") < 0)
            return xerr_nomem(errp);
    }
    const char *compress = cli_arg_get(a, "compress");
    if (compress && xmap_put_str((struct xmap *)opts, "compress", compress) < 0)
        return xerr_nomem(errp);
    return true;
}

int
cli_cmd_vm_migrate(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    if (cli_arg_get(a, "remote-master"))
        return cli_err_syntax(errp, "Error: migration to another pool (remote-master) is not "
                                    "supported"),
               1;
    const char *key = cli_arg_get(a, "host")        ? "host"
                      : cli_arg_get(a, "host-uuid") ? "host-uuid"
                      : cli_arg_get(a, "host-name") ? "host-name"
                                                    : NULL;
    if (!key)
        return cli_err_syntax(errp, "No destination host specified"), 1;
    struct xapi_string_string_map opts = {0};
    struct xset refs = {0};
    char *host = NULL;
    bool ok = migrate_options(a, &opts, errp) &&
              cli_select_vms(c, a, "vm", migrate_skip, CLI_VM_PLAIN, &refs, errp) &&
              cli_host_arg(c, a, key, &host, errp);
    for (size_t i = 0; ok && i < refs.n; i++) {
        const char *vm = ((char **)refs.items)[i];
        const struct xtype *t[3] = {&xapi_type_ref_VM, &xapi_type_ref_host,
                                    &xapi_type_string_string_map};
        const void *v[3] = {&vm, &host, &opts};
        const char *uuid = cli_ref_uuid(c, "VM", vm);
        char label[96];
        snprintf(label, sizeof(label), "Migrating VM %.8s", uuid ? uuid : "?");
        ok = cli_async(c, "VM.pool_migrate", 3, t, v, label, NULL, NULL, errp);
    }
    xtype_value_clear(&xapi_type_string_set, &refs);
    xtype_value_clear(&xapi_type_string_string_map, &opts);
    free(host);
    return ok ? 0 : 1;
}
