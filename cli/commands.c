/* cli/commands.c - xe's hand-written commands, the command table and help.
 *
 * Commands other than the generic <class>-<verb> ones (generic.c) are the
 * views and verbs xe users expect (shared/spec/xenapi.md 8): vm-list hides
 * templates and snapshots, template-list and snapshot-list show them;
 * vm-clone, vm-copy and vm-install run as Async calls with progress;
 * event-wait blocks on event.from until a record matches. VM verbs select
 * their VM with vm=<name-label or uuid> or field filters, and refuse several
 * matches unless --multiple. VM lifecycle commands (vm-start, vm-shutdown ...)
 * are absent: the server does not build VM.start and friends yet, so there are
 * no client stubs for them.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cli/cli.h"
#include "client/xclient.h"
#include "xapi_client.h"

/* ------------------------------------------------------------------ selectors */

/* The refs of the VMs @a selects with @sel= (uuid or name-label) and any
 * field filters not in @skip. At least one; one unless --multiple. */
static bool
select_vms(struct cli_ctx *c, const struct cli_args *a, const char *sel,
           const char *const *skip, bool templates, struct xset *out, struct xerr **errp)
{
    const struct xclass *cls = &xapi_class_vm;
    const char *want = cli_arg_get(a, sel);
    bool filtered = want != NULL;
    for (size_t i = 0; i < a->n; i++)
        if (a->v[i].value && strcmp(a->v[i].key, sel) != 0) {
            bool sk = false;
            for (const char *const *s = skip; *s; s++)
                sk |= strcmp(*s, a->v[i].key) == 0;
            filtered |= !sk;
        }
    if (!filtered)
        return cli_err_required(errp, sel);
    const struct cli_class_types *ct = cli_class_types(cls);
    struct xmap all = {0};
    if (!cli_fetch_all(c, cls, &all, errp))
        return false;
    size_t n_skip = 0;
    while (skip[n_skip])
        n_skip++;
    const char **skip2 = calloc(n_skip + 2, sizeof(*skip2));
    bool ok = skip2 != NULL;
    if (!ok)
        xerr_nomem(errp);
    for (size_t i = 0; ok && i < n_skip; i++)
        skip2[i] = skip[i];
    if (ok)
        skip2[n_skip] = sel;
    for (size_t i = 0; ok && i < all.n; i++) {
        const struct xapi_vm_record *vm = ((void **)all.values)[i];
        if (want && strcmp(vm->uuid, want) != 0 && strcmp(vm->name_label, want) != 0)
            continue;
        if (templates && !vm->is_a_template)
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
        ok = cli_err_syntax(errp, templates ? "No matching templates found"
                                            : "No matching VMs found");
    else if (ok && out->n > 1 && !a->multiple)
        ok = cli_err_syntax(errp, "Multiple matches found for selector %s=%s: use --multiple "
                                  "or a uuid",
                            sel, want ? want : "");
    if (!ok)
        xtype_value_clear(&xapi_type_string_set, out);
    return ok;
}

static bool
select_one_vm(struct cli_ctx *c, const struct cli_args *a, const char *sel,
              const char *const *skip, bool templates, char **ref, struct xerr **errp)
{
    struct cli_args one = *a;
    one.multiple = false;
    struct xset refs = {0};
    if (!select_vms(c, &one, sel, skip, templates, &refs, errp))
        return false;
    *ref = strdup(((char **)refs.items)[0]);
    xtype_value_clear(&xapi_type_string_set, &refs);
    return *ref ? true : xerr_nomem(errp);
}

/* Runs Async.@method and waits for its ref result. */
static bool
async_ref(struct cli_ctx *c, const char *method, size_t n, const struct xtype *const *types,
          const void *const *vals, const char *label, char **result, struct xerr **errp)
{
    char amethod[160];
    snprintf(amethod, sizeof(amethod), "Async.%s", method);
    char *task = NULL;
    if (!cli_call(c, amethod, n, types, vals, &xapi_type_string, &task, errp))
        return false;
    bool ok = cli_task_wait(c, task, label, &xapi_type_string, result, errp);
    free(task);
    return ok;
}

static void
print_uuid_of(struct cli_ctx *c, const char *cls, const char *ref)
{
    const char *uuid = cli_ref_uuid(c, cls, ref);
    fprintf(c->out, "%s\n", uuid ? uuid : ref);
}

/* ------------------------------------------------------------------ VM views */

static int
cmd_vm_list(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    static const char *const extra[] = {"is-a-template=false", "is-a-snapshot=false", NULL};
    return cli_cmd_list(c, &xapi_class_vm, a, extra, NULL, errp) ? 0 : 1;
}

static int
cmd_template_list(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    static const char *const extra[] = {"is-a-template=true", NULL};
    return cli_cmd_list(c, &xapi_class_vm, a, extra, "uuid,name-label,name-description", errp)
               ? 0
               : 1;
}

static int
cmd_snapshot_list(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    static const char *const extra[] = {"is-a-snapshot=true", NULL};
    return cli_cmd_list(c, &xapi_class_vm, a, extra, "uuid,name-label,name-description", errp)
               ? 0
               : 1;
}

/* ------------------------------------------------------------------ VM verbs */

static bool
sr_arg(struct cli_ctx *c, const struct cli_args *a, char **sr, struct xerr **errp)
{
    const char *uuid = cli_arg_get(a, "sr-uuid");
    if (!uuid) {
        *sr = strdup("OpaqueRef:NULL");
        return *sr ? true : xerr_nomem(errp);
    }
    return cli_uuid_ref(c, "SR", uuid, sr, errp);
}

/* VM.clone, or VM.copy when @copy (into sr-uuid=, or the VM's own SRs). */
static bool
clone_or_copy(struct cli_ctx *c, const char *vm, const char *name, bool copy, const char *sr,
              char **new_vm, struct xerr **errp)
{
    const struct xtype *t[3] = {&xapi_type_ref_VM, &xapi_type_string, &xapi_type_ref_SR};
    const void *v[3] = {&vm, &name, &sr};
    return async_ref(c, copy ? "VM.copy" : "VM.clone", copy ? 3 : 2, t, v,
                     copy ? "Copying" : "Cloning", new_vm, errp);
}

static int
cmd_vm_clone_copy(struct cli_ctx *c, const struct cli_args *a, bool copy, struct xerr **errp)
{
    static const char *const skip[] = {"new-name-label", "new-name-description", "sr-uuid", NULL};
    const char *name = cli_arg_get(a, "new-name-label");
    if (!name)
        return cli_err_required(errp, "new-name-label"), 1;
    char *vm = NULL, *sr = NULL, *new_vm = NULL;
    bool ok = select_one_vm(c, a, "vm", skip, false, &vm, errp) && sr_arg(c, a, &sr, errp) &&
              clone_or_copy(c, vm, name, copy, sr, &new_vm, errp);
    const char *desc = cli_arg_get(a, "new-name-description");
    if (ok && desc)
        ok = xc_vm_set_name_description(c->xc, new_vm, desc, errp);
    if (ok)
        print_uuid_of(c, "VM", new_vm);
    free(vm);
    free(sr);
    free(new_vm);
    return ok ? 0 : 1;
}

static int
cmd_vm_clone(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    return cmd_vm_clone_copy(c, a, false, errp);
}

static int
cmd_vm_copy(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    return cmd_vm_clone_copy(c, a, true, errp);
}

/* vm-install: clone the template (copy when sr-uuid= names an SR), then make
 * the result a VM. VM.provision (creating the disks the template's
 * other-config:disks asks for) is not built in the server yet, so templates'
 * disks are not created. */
static int
cmd_vm_install(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    static const char *const skip[] = {"new-name-label", "new-name-description", "sr-uuid",
                                       "sr-name-label", NULL};
    const char *name = cli_arg_get(a, "new-name-label");
    if (!cli_arg_get(a, "template") && !cli_arg_get(a, "template-uuid") &&
        !cli_arg_get(a, "template-name"))
        return cli_err_required(errp, "template"), 1;
    if (!name)
        return cli_err_required(errp, "new-name-label"), 1;
    const char *sel = cli_arg_get(a, "template") ? "template"
                      : cli_arg_get(a, "template-uuid") ? "template-uuid"
                                                        : "template-name";
    char *tmpl = NULL, *sr = NULL, *new_vm = NULL;
    bool ok = select_one_vm(c, a, sel, skip, true, &tmpl, errp) && sr_arg(c, a, &sr, errp) &&
              clone_or_copy(c, tmpl, name, cli_arg_get(a, "sr-uuid") != NULL, sr, &new_vm, errp) &&
              xc_vm_set_is_a_template(c->xc, new_vm, false, errp);
    const char *desc = cli_arg_get(a, "new-name-description");
    if (ok && desc)
        ok = xc_vm_set_name_description(c->xc, new_vm, desc, errp);
    if (ok)
        print_uuid_of(c, "VM", new_vm);
    free(tmpl);
    free(sr);
    free(new_vm);
    return ok ? 0 : 1;
}

/* vm-uninstall: VM.destroy of each selected VM. Its disks are left alone
 * (VDI.destroy of the VM's own disks comes with the storage manager). */
static int
cmd_vm_uninstall(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    static const char *const skip[] = {"force", NULL};
    const char *force = cli_arg_get(a, "force");
    bool f = a->force;
    if (force && !cli_parse_bool(force, &f))
        return cli_err_syntax(errp, "Syntax error: force=%s is not a boolean", force), 1;
    if (!f)
        return cli_err_syntax(errp, "This operation destroys VMs: add force=true (or --force)"),
               1;
    struct xset refs = {0};
    if (!select_vms(c, a, "vm", skip, false, &refs, errp))
        return 1;
    bool ok = true;
    for (size_t i = 0; ok && i < refs.n; i++)
        ok = xc_vm_destroy(c->xc, ((char **)refs.items)[i], errp);
    xtype_value_clear(&xapi_type_string_set, &refs);
    return ok ? 0 : 1;
}

/* ------------------------------------------------------------------ tasks, users */

static int
cmd_task_cancel(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    char *ref = NULL;
    bool ok = cli_ref_from_uuid_arg(c, &xapi_class_task, a, &ref, errp) &&
              xc_task_cancel(c->xc, ref, errp);
    free(ref);
    return ok ? 0 : 1;
}

static int
cmd_user_password_change(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    const char *old = cli_arg_get(a, "old");
    const char *new_pw = cli_arg_get(a, "new");
    if (!new_pw)
        return cli_err_required(errp, "new"), 1;
    return xc_session_change_password(c->xc, old ? old : "", new_pw, errp) ? 0 : 1;
}

/* ------------------------------------------------------------------ event-wait */

/* Whether @rec meets every condition (field=value, field=/=value). */
static bool
conditions_hold(struct cli_ctx *c, const struct xclass *cls, const void *rec,
                const struct cli_args *a, struct xerr **errp)
{
    for (size_t i = 0; i < a->n; i++) {
        struct cli_arg arg = a->v[i];
        if (!arg.value || strcmp(arg.key, "class") == 0 || strcmp(arg.key, "timeout") == 0)
            continue;
        bool negate = strncmp(arg.value, "/=", 2) == 0;
        if (negate)
            arg.value += 2;
        struct cli_args one = {.v = &arg, .n = 1};
        struct xerr *e = NULL;
        bool m = cli_record_matches(c, cls, rec, &one, NULL, &e);
        if (e)
            return xerr_propagate(errp, &e);
        if (m == negate)
            return false;
    }
    return true;
}

/* Checks the events of one event.from batch; *@token becomes the next token. */
static bool
scan_batch(struct cli_ctx *c, const struct xclass *cls, const struct cli_args *a,
           const struct xval *batch, char **token, bool *found, struct xerr **errp)
{
    const struct xval *evs = batch->kind == XVAL_STRUCT ? xval_struct_get(batch, "events") : NULL;
    const struct xval *tok = batch->kind == XVAL_STRUCT ? xval_struct_get(batch, "token") : NULL;
    if (!evs || evs->kind != XVAL_ARRAY || !tok || tok->kind != XVAL_STRING)
        return xerr_internal(errp, "xe: unexpected event.from reply");
    for (size_t i = 0; i < evs->arr.n && !*found; i++) {
        const struct xval *ev = evs->arr.items[i];
        const struct xval *op = xval_struct_get(ev, "operation");
        const struct xval *snap = xval_struct_get(ev, "snapshot");
        if (!snap || snap->kind != XVAL_STRUCT || (op && op->kind == XVAL_STRING &&
                                                   strcmp(op->str.s, "del") == 0))
            continue;
        void *rec = xrecord_new(cls);
        if (!rec)
            return xerr_nomem(errp);
        struct xerr *e = NULL;
        if (xrecord_decode(cls, snap, rec, true, false, &e))
            *found = conditions_hold(c, cls, rec, a, &e);
        xrecord_free(cls, rec);
        if (e)
            return xerr_propagate(errp, &e);
    }
    free(*token);
    *token = strdup(tok->str.s);
    return *token ? true : xerr_nomem(errp);
}

static int
cmd_event_wait(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    const char *cname = cli_arg_get(a, "class");
    if (!cname)
        return cli_err_required(errp, "class"), 1;
    const struct xclass *cls = cli_class_by_cli_name(cname);
    if (!cls || !cls->events)
        return cli_err_syntax(errp, "Unknown class '%s'", cname), 1;
    const char *timeout_s = cli_arg_get(a, "timeout");
    double timeout = timeout_s ? atof(timeout_s) : 0;
    time_t end = timeout > 0 ? time(NULL) + (time_t)timeout + 1 : 0;
    char *token = strdup("");
    bool found = false, ok = token != NULL;
    while (ok && !found) {
        struct xval *classes = xval_new_array(), *tokv = xval_new_string(token),
                    *to = xval_new_double(30.0), *batch = NULL;
        if (classes)
            xval_array_append(classes, xval_new_string(cls->name));
        const struct xval *args[3] = {classes, tokv, to};
        if (!classes || !tokv || !to)
            ok = xerr_nomem(errp);
        else
            ok = xclient_call_xval(c->xc, "event.from", true, args, 3, &batch, errp) &&
                 scan_batch(c, cls, a, batch, &token, &found, errp);
        xval_free(classes);
        xval_free(tokv);
        xval_free(to);
        xval_free(batch);
        if (ok && !found && end && time(NULL) >= end)
            ok = cli_err_syntax(errp, "Timed out waiting for the event");
    }
    free(token);
    return ok ? 0 : 1;
}

/* ------------------------------------------------------------------ table */

static int cmd_help(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp);

const struct cli_cmd cli_commands[] = {
    {"help", cmd_help, "", "--all,--minimal", "Print help: the commands, or one command's."},
    {"vm-list", cmd_vm_list, "", "params,--minimal,<field filters>",
     "List the VMs (the control domain included; templates and snapshots are hidden)."},
    {"template-list", cmd_template_list, "", "params,--minimal,<field filters>",
     "List the templates."},
    {"snapshot-list", cmd_snapshot_list, "", "params,--minimal,<field filters>",
     "List the VM snapshots."},
    {"vm-clone", cmd_vm_clone, "new-name-label", "vm,new-name-description,<vm filters>",
     "Clone a halted VM (fast copy of its disks); prints the new VM's uuid."},
    {"vm-copy", cmd_vm_copy, "new-name-label", "vm,new-name-description,sr-uuid,<vm filters>",
     "Copy a halted VM (full copy of its disks, into sr-uuid= if given)."},
    {"vm-install", cmd_vm_install, "template,new-name-label",
     "template-uuid,template-name,new-name-description,sr-uuid",
     "Install a new VM from a template (clone, or copy into sr-uuid=); prints its uuid. "
     "VM.provision is not built yet: template disks are not created."},
    {"vm-uninstall", cmd_vm_uninstall, "", "vm,force,--multiple,<vm filters>",
     "Destroy the selected VMs (their disks are kept); needs force=true."},
    {"task-cancel", cmd_task_cancel, "uuid", "", "Ask a pending task to cancel."},
    {"event-wait", cmd_event_wait, "class", "timeout,<field>=<value>,<field>=/=<value>",
     "Block until an object of the class meets every condition."},
    {"user-password-change", cmd_user_password_change, "new", "old",
     "Change the password of the logged-in user."},
    {NULL, NULL, NULL, NULL, NULL},
};

const struct cli_cmd *
cli_command_find(const char *name)
{
    for (const struct cli_cmd *cmd = cli_commands; cmd->name; cmd++)
        if (strcmp(cmd->name, name) == 0)
            return cmd;
    return NULL;
}

/* Splits "<class>-<op>" for a generic op; false when @name is none. */
static bool
generic_split(const char *name, const struct xclass **cls, const char **op)
{
    for (const char *const *o = cli_generic_ops; *o; o++) {
        size_t nl = strlen(name), ol = strlen(*o);
        if (nl <= ol + 1 || strcmp(name + nl - ol, *o) != 0 || name[nl - ol - 1] != '-')
            continue;
        char cname[128];
        if (nl - ol - 1 >= sizeof(cname))
            return false;
        memcpy(cname, name, nl - ol - 1);
        cname[nl - ol - 1] = '\0';
        if ((*cls = cli_class_by_cli_name(cname))) {
            *op = *o;
            return true;
        }
    }
    return false;
}

bool
cli_command_exists(const char *name)
{
    const struct xclass *cls;
    const char *op;
    return cli_command_find(name) || generic_split(name, &cls, &op);
}

int
cli_dispatch(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    const struct cli_cmd *cmd = cli_command_find(a->command);
    const struct xclass *cls;
    const char *op;
    if (cmd)
        return cmd->run(c, a, errp);
    if (generic_split(a->command, &cls, &op))
        return cli_generic_run(c, cls, op, a, errp);
    cli_err_syntax(errp, "Unknown command: %s\nFor usage run: 'xe help'", a->command);
    return 1;
}

/* ------------------------------------------------------------------ help */

/* Every command name, hand-written first, then <class>-<op> for each class. */
static void
each_command(bool all, void (*fn)(void *opaque, const char *name), void *opaque)
{
    for (const struct cli_cmd *cmd = cli_commands; cmd->name; cmd++)
        fn(opaque, cmd->name);
    for (size_t i = 0; i < xapi_n_classes; i++) {
        const struct xclass *cls = xapi_classes[i];
        if (!cls->stored || (!all && !cls->get_all))
            continue;
        char cname[128], name[192];
        cli_class_cli_name(cls, cname, sizeof(cname));
        for (const char *const *o = cli_generic_ops; *o; o++) {
            snprintf(name, sizeof(name), "%s-%s", cname, *o);
            if (!cli_command_find(name))
                fn(opaque, name);
        }
    }
}

struct name_list {
    FILE *out;
    bool minimal;
    size_t n;
};

static void
print_name(void *opaque, const char *name)
{
    struct name_list *l = opaque;
    if (l->minimal)
        fprintf(l->out, "%s%s", l->n ? "," : "", name);
    else
        fprintf(l->out, "%s%s", l->n % 4 ? ", " : (l->n ? ",\n    " : "    "), name);
    l->n++;
}

/* The generic command's parameters: fields where they apply. */
static void
generic_params(const struct xclass *cls, const char *op, struct strbuf *reqd,
               struct strbuf *optional)
{
    bool list = strcmp(op, "list") == 0, set = strcmp(op, "param-set") == 0;
    if (!list)
        strbuf_puts(reqd, strcmp(op, "param-list") == 0 || set ? "uuid" : "uuid,param-name");
    if (strcmp(op, "param-get") == 0 || strcmp(op, "param-add") == 0 ||
        strcmp(op, "param-remove") == 0)
        strbuf_puts(optional, "param-key");
    if (!list && !set)
        return;
    if (list)
        strbuf_puts(optional, "params,--minimal");
    for (size_t i = 0; i < cls->n_fields; i++) {
        const struct xfield *f = &cls->fields[i];
        char name[128];
        if ((f->flags & XF_REMOVED) || (set && f->qual != XQ_RW))
            continue;
        cli_field_cli_name(f->name, name, sizeof(name));
        strbuf_printf(optional, "%s%s%s", optional->len ? "," : "", name,
                      f->type->kind == XT_MAP ? ":" : "");
    }
}

static void
print_command_help(FILE *out, const char *name, const char *reqd, const char *optional,
                   const char *desc, bool minimal)
{
    if (minimal) {
        /* one line of parameter names, for completion */
        fprintf(out, "%s%s%s\n", reqd, *reqd && *optional ? "," : "", optional);
        return;
    }
    fprintf(out, "command name            : %s\n", name);
    fprintf(out, "        reqd params     : %s\n", reqd);
    fprintf(out, "        optional params : %s\n", optional);
    fprintf(out, "        description     : %s\n", desc);
}

int
cli_help(FILE *out, const struct cli_args *a, struct xerr **errp)
{
    const char *topic = NULL;
    for (size_t i = 0; i < a->n; i++)
        if (!a->v[i].value)
            topic = a->v[i].key;
    if (topic) {
        const struct cli_cmd *cmd = cli_command_find(topic);
        const struct xclass *cls;
        const char *op;
        if (cmd) {
            print_command_help(out, cmd->name, cmd->reqd, cmd->optional, cmd->help, a->minimal);
            return 0;
        }
        if (!generic_split(topic, &cls, &op)) {
            cli_err_syntax(errp, "Unknown command: %s\nFor usage run: 'xe help'", topic);
            return 1;
        }
        struct strbuf reqd = STRBUF_INIT, optional = STRBUF_INIT;
        strbuf_puts(&reqd, "");
        strbuf_puts(&optional, "");
        generic_params(cls, op, &reqd, &optional);
        char desc[256];
        snprintf(desc, sizeof(desc), "The %s verb of class %s (generated from the data model).",
                 op, cls->name);
        print_command_help(out, topic, reqd.buf, optional.buf, desc, a->minimal);
        strbuf_release(&reqd);
        strbuf_release(&optional);
        return 0;
    }
    struct name_list l = {out, a->minimal, 0};
    if (!a->minimal)
        fprintf(out, "Usage: xe <command> [-s server] [-p port] [-u user] [-pw password | -pwf "
                     "file] [--nossl] [--insecure] [--unix path] [key=value ...]\n\n"
                     "%s commands:\n",
                a->all ? "All" : "Common");
    each_command(a->all, print_name, &l);
    fprintf(out, "\n");
    if (!a->minimal && !a->all)
        fprintf(out, "\nFor every command: xe help --all. For one: xe help <command>.\n");
    return 0;
}

static int
cmd_help(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    return cli_help(c->out, a, errp);
}
