/* cli/cli.h - the parts of `xe` and the contract between them.
 *
 * xe is built in layers so that most of it is testable without a server:
 *   args.c     argv, ~/.xe and XE_EXTRA_ARGS into options and key=value args (pure)
 *   model.c    CLI names of classes and fields, text <-> typed values (pure)
 *   fmt.c      values and records as text, the aligned record blocks (pure)
 *   call.c     calls through the client, uuid <-> ref, errors, tasks and progress
 *   conn.c     which server, TLS pinning (~/.vessel/known_hosts), login
 *   generic.c  <class>-list and <class>-param-* for every class of the model
 *   select.c   VM selectors (vm= or field filters, --multiple), Async calls
 *   commands.c hand-written commands: the table, help, VM views, clone/install
 *   vm_power.c vm-start, vm-shutdown ... (one Async call per selected VM)
 *   vm_verbs.c vm-snapshot, snapshot-revert, vm-uninstall, vm-disk-add, CDs
 *   storage.c  vdi-*, vbd-*, sr-*, pbd-*
 *   network.c  network-*, vif-*, pif-*, vlan-create
 *   host.c     host-cpu-info, host-get-vms-which-prevent-evacuation
 *   console.c  console: the vt100 console over HTTP CONNECT
 *   tunnel.c   a raw HTTP connection to the server (console, transfers)
 *   transfer.c vm-export, vm-import, vdi-export, vdi-import (files over HTTP)
 *   vm_disks.c vm-disk-list, vm-cd-list
 *   main.c     main()
 * The syntax and output are those of xapi's xe (xapi's ocaml/xapi-cli-server/cli_frontend.ml and records.ml); the
 * transport is our XML-RPC client, not the thin-CLI protocol: every command
 * is a few API calls made here.
 *
 * Single-threaded. Functions that can fail for a user-visible reason take
 * `struct xerr **errp`; usage errors are XenAPI-shaped too (cli_usage_error)
 * so there is one printing path.
 */
#ifndef VESSEL_CLI_CLI_H
#define VESSEL_CLI_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/hashmap.h"
#include "common/strbuf.h"
#include "model/xerr.h"
#include "model/xtype.h"

/* ================================================================ args.c */

/* Connection options, from the command line, XE_EXTRA_ARGS, ~/.xe. */
struct cli_opts {
    char *server;       /* -s; NULL: local unix socket */
    int port;           /* -p; 0: 443, or 80 with nossl */
    char *username;     /* -u; default root */
    char *password;     /* -pw */
    char *passwordfile; /* -pwf: line 1 user, line 2 password (or a lone password) */
    char *unix_path;    /* --unix */
    bool nossl, insecure, debug;
    /* which of the above were given at this level, for precedence merging */
    unsigned set;
};

/* One command-line argument key[:subkey]=value, or a --flag (value NULL). */
struct cli_arg {
    char *key;
    char *subkey; /* NULL unless key:subkey=value */
    char *value;  /* NULL for a flag; "" for key= */
};

struct cli_args {
    char *command; /* NULL: none given */
    struct cli_arg *v;
    size_t n;
    bool minimal, multiple, all, force;
    bool progress; /* --progress: a bar for vdi-import/vdi-export */
};

/* Splits @argv (without argv[0]) into connection options and the command.
 * Options may appear anywhere. Returns 0, or -EINVAL with a reason in @why
 * ("Syntax error: ..." style text, without the prefix). */
int cli_parse_argv(int argc, char *const *argv, struct cli_opts *opts, struct cli_args *args,
                   char *why, size_t why_len);
/* Parses XE_EXTRA_ARGS: comma-separated (a comma escaped as "\,") options as
 * on the command line: "server=h,port=8080,nossl=true" or "-s,h,-p,8080". */
int cli_parse_extra_args(const char *s, struct cli_opts *opts, char *why, size_t why_len);
/* Parses ~/.xe text: key=value lines (server, port, username, password,
 * passwordfile, nossl, debug, unix, insecure); # comments; values may be in
 * double quotes. */
int cli_parse_rc(const char *text, struct cli_opts *opts, char *why, size_t why_len);
/* Fills fields of @dst that @dst does not set from @src (lower precedence). */
void cli_opts_merge(struct cli_opts *dst, const struct cli_opts *src);
void cli_opts_release(struct cli_opts *o);
void cli_args_release(struct cli_args *a);

/* Splits one token into key[:subkey]=value. A token without '=' is a
 * syntax error; the key is up to the first '=', the subkey follows the first
 * ':' of the key part. 0 or -EINVAL. */
int cli_arg_split(const char *tok, struct cli_arg *out);

/* The value of the last plain (no subkey) argument @key, or NULL. */
const char *cli_arg_get(const struct cli_args *a, const char *key);
/* A size in bytes: digits, then optionally a binary unit (B, K/KiB/KB,
 * M/MiB/MB, G/GiB/GB, T/TiB/TB; any case): "10GiB", "512M", "4096".
 * 0, or -EINVAL for anything else (negative, empty, overflow). */
int cli_parse_size(const char *text, int64_t *out);
/* Whether --force or force=<bool> asks for force: 0, or -EINVAL when
 * force= is not a boolean. --force wins over force=false. */
int cli_arg_force(const struct cli_args *a, bool *force);
/* Whether @v is a CLI boolean ("true/yes/on/1", "false/no/off/0"); sets *out. */
bool cli_parse_bool(const char *v, bool *out);

/* ================================================================ model.c */

/* Runtime type descriptors that the generated model has not for every class:
 * a ref, a record and the (ref -> record) map of get_all_records. */
struct cli_class_types {
    struct xtype ref, record, record_map, ref_set;
};
const struct cli_class_types *cli_class_types(const struct xclass *cls);

/* The class whose CLI name is @name ("vm", "vm-metrics", "sr"), or NULL. */
const struct xclass *cli_class_by_cli_name(const char *name);
/* "VM_metrics" -> "vm-metrics" into @buf. */
const char *cli_class_cli_name(const struct xclass *cls, char *buf, size_t len);
/* "name_label" -> "name-label" into @buf. */
const char *cli_field_cli_name(const char *wire, char *buf, size_t len);
/* The field whose CLI name is @name (case-insensitive; '_' accepted for '-'),
 * or NULL. Removed fields are not found. */
const struct xfield *cli_field_find(const struct xclass *cls, const char *name);
/* A field xapi's records.ml adds to a class: the uuid or name-label of the
 * object a reference field names (VBD "vm-uuid" = VBD.VM's uuid). */
struct cli_alias {
    const char *cls;       /* class name as in the model: "VBD" */
    const char *name;      /* CLI name: "vm-uuid" */
    const char *ref_field; /* wire name of the reference field: "VM" */
    const char *target;    /* "uuid" or "name_label" of the referenced object */
};
/* The alias of @cls named @name (case-insensitive, '_' for '-'), or NULL. */
const struct cli_alias *cli_alias_find(const struct xclass *cls, const char *name);
/* The aliases of @cls in table order: start with *@pos = 0; NULL at the end. */
const struct cli_alias *cli_alias_at(const struct xclass *cls, size_t *pos);
/* @al's reference field in @cls, or NULL when the model lacks it. */
const struct xfield *cli_alias_ref_field(const struct xclass *cls, const struct cli_alias *al);
/* " RO", " RW", "SRO", "SRW", "MRO", "MRW". */
const char *cli_field_qual(const struct xfield *f);

/* Resolves a uuid typed by the user to a ref of @ref_class (for ref-valued
 * fields and parameters); returns false with *errp set when none. */
typedef bool cli_uuid_to_ref_fn(void *opaque, const char *ref_class, const char *uuid,
                                char **ref, struct xerr **errp);

/* Parses user text @text as a value of @t into @out (uninitialised): ints,
 * floats, bools (true/false/yes/no/1/0), enums (any case), datetimes, refs
 * (a uuid, "" or OpaqueRef:...), sets ("a,b,c"), maps ("k1:v1,k2:v2").
 * Errors: INVALID_VALUE [what, text]. */
bool cli_value_parse(const struct xtype *t, const char *text, void *out, const char *what,
                     cli_uuid_to_ref_fn *resolve, void *opaque, struct xerr **errp);

/* ================================================================ fmt.c */

/* Returns the uuid of @ref (of @ref_class) or NULL when it names nothing;
 * the string stays valid for the life of the resolver. */
typedef const char *cli_ref_to_uuid_fn(void *opaque, const char *ref_class, const char *ref);

/* Appends @p (of type @t) as xe shows it: refs as uuids ("<not in database>"
 * for null or dangling ones), enums lower-case, bools true/false, sets
 * "a; b", maps "k: v; k2: v2", datetimes YYYYMMDDTHH:MM:SSZ. */
void cli_value_text(const struct xtype *t, const void *p, cli_ref_to_uuid_fn *resolve,
                    void *opaque, struct strbuf *out);

/* One record block: keys (already "name ( RW)"-decorated) and values; the
 * first key padded right, the others right-aligned, colons in one column
 * (width = longest key + 4). */
void cli_print_block(FILE *out, const char *const *keys, const char *const *vals, size_t n);
/* "name-label ( RW)" into @sb. */
void cli_field_key(const struct xfield *f, struct strbuf *sb);
/* Appends @s with ',' and '\' escaped by '\' (for --minimal lists). */
void cli_minimal_escape(struct strbuf *sb, const char *s);

/* ================================================================ call.c */

struct xclient;

struct cli_ctx {
    struct xclient *xc;
    FILE *out, *err;
    bool progress_tty; /* stderr is a terminal: draw a bar */
    bool debug;
    struct hashmap uuids;        /* ref -> uuid cache (call.c) */
    const struct cli_opts *opts; /* how we connected (console.c opens its own) */
};

void cli_ctx_init(struct cli_ctx *c, struct xclient *xc);
void cli_ctx_release(struct cli_ctx *c);

/* A call built from typed arguments (session first): @method "VM.clone" or
 * "Async.VM.clone"; @rt NULL for void. Same contract as xclient_call_finish. */
bool cli_call(struct cli_ctx *c, const char *method, size_t n, const struct xtype *const *types,
              const void *const *vals, const struct xtype *rt, void *result, struct xerr **errp);

/* Records that @ref's uuid is @uuid (NULL: names nothing). */
void cli_cache_uuid(struct cli_ctx *c, const char *ref, const char *uuid);
/* cli_ref_to_uuid_fn over the client (cached). */
const char *cli_ref_uuid(void *opaque, const char *ref_class, const char *ref);
/* The name-label of @ref (of @ref_class), cached as uuids are; NULL when it
 * names nothing. */
const char *cli_ref_name_label(struct cli_ctx *c, const char *ref_class, const char *ref);
/* cli_uuid_to_ref_fn over the client (<class>.get_by_uuid). */
bool cli_uuid_ref(void *opaque, const char *ref_class, const char *uuid, char **ref,
                  struct xerr **errp);

/* Prints @e in xe's form on c->err: a friendly line for known codes, then
 * "Error code: CODE" and "Error parameters: p1, p2". */
void cli_print_error(struct cli_ctx *c, const struct xerr *e);
/* Usage errors, raised as xerr so that they print through one path. */
bool cli_err_required(struct xerr **errp, const char *param);
bool cli_err_syntax(struct xerr **errp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Milliseconds of a monotonic clock. */
int64_t cli_mono_ms(void);
/* Shows @progress (0..1) of @label: a bar redrawn in place on a terminal
 * (c->progress_tty), else a line per 10% after the first second. Start with
 * *@last_shown = -1 on a terminal, 0 otherwise. */
void cli_progress_draw(struct cli_ctx *c, const char *label, double progress, int64_t elapsed_ms,
                       int *last_shown);

/* Waits for task @task (polling every 200 ms; a progress bar on a tty) and
 * returns its result decoded as @rt (NULL: ignore it), then destroys the task.
 * A failed task's error_info becomes *errp. */
bool cli_task_wait(struct cli_ctx *c, const char *task, const char *label, const struct xtype *rt,
                   void *result, struct xerr **errp);

/* ================================================================ generic.c */

/* Records of @cls: all of them, in a (ref -> record) map of cli_class_types. */
bool cli_fetch_all(struct cli_ctx *c, const struct xclass *cls, struct xmap *out,
                   struct xerr **errp);
/* Whether record @rec matches every filter argument of @a (field=value,
 * map:key=value), ignoring the keys in @skip (NULL-terminated). */
bool cli_record_matches(struct cli_ctx *c, const struct xclass *cls, const void *rec,
                        const struct cli_args *a, const char *const *skip, struct xerr **errp);

/* <class>-list with @a; @extra: filters added when the user gave no value for
 * the same field ("is-a-template=false" for vm-list, NULL-terminated);
 * @columns: the columns without params= (NULL: the class's default). */
bool cli_cmd_list(struct cli_ctx *c, const struct xclass *cls, const struct cli_args *a,
                  const char *const *extra, const char *columns, struct xerr **errp);
/* Runs "<class>-<op>" when @op is a generic verb; returns -1 when it is not
 * one, else 0/1 for success/failure (errors printed into *errp). */
int cli_generic_run(struct cli_ctx *c, const struct xclass *cls, const char *op,
                    const struct cli_args *a, struct xerr **errp);
/* The generic verbs, NULL-terminated: "list", "param-list", ... */
extern const char *const cli_generic_ops[];
/* Prints @rec of @cls as one block of the columns @spec names ("a,b,c" or
 * "all": fields and records.ml aliases alike); an unknown name is xe's
 * "Unknown field" error. */
bool cli_print_record(struct cli_ctx *c, const struct xclass *cls, const void *rec,
                      const char *spec, struct xerr **errp);
/* Ref of the object of @cls named by uuid=<uuid> in @a. */
bool cli_ref_from_uuid_arg(struct cli_ctx *c, const struct xclass *cls, const struct cli_args *a,
                           char **ref, struct xerr **errp);

/* ================================================================ select.c */

/* Which VMs a selector may match. */
enum cli_vm_kind {
    CLI_VM_PLAIN,     /* VMs: no templates, snapshots or control domains (power verbs) */
    CLI_VM_TEMPLATE,  /* templates (snapshots included) */
    CLI_VM_SNAPSHOT,  /* snapshots */
    CLI_VM_ANY,       /* any VM but a control domain (vm-clone, vm-copy) */
};

/* The refs of the VMs @a selects with @sel= (uuid or name-label) and any
 * field filters not in @skip (NULL-terminated). At least one, and only one
 * unless --multiple. Errors (usage-shaped): "Required parameter not found:
 * <sel>" when nothing selects, "Error: No matching VMs found", "Multiple
 * matches ..."; and the server's. *out is cleared on failure. */
bool cli_select_vms(struct cli_ctx *c, const struct cli_args *a, const char *sel,
                    const char *const *skip, enum cli_vm_kind kind, struct xset *out,
                    struct xerr **errp);
/* The one VM selected (as cli_select_vms without --multiple); *ref is freed
 * by the caller. */
bool cli_select_one_vm(struct cli_ctx *c, const struct cli_args *a, const char *sel,
                       const char *const *skip, enum cli_vm_kind kind, char **ref,
                       struct xerr **errp);
/* Runs Async.@method (arguments as cli_call) and waits for its task with
 * progress labelled @label; the result decoded as @rt (NULL: none). */
bool cli_async(struct cli_ctx *c, const char *method, size_t n, const struct xtype *const *types,
               const void *const *vals, const char *label, const struct xtype *rt, void *result,
               struct xerr **errp);
/* Prints the uuid of @ref (of class @cls) on a line of its own. */
void cli_print_uuid_of(struct cli_ctx *c, const char *cls, const char *ref);
/* The SR named by sr-uuid= or sr-name-label=, else the pool's default SR
 * (*sr "OpaqueRef:NULL" when there is none and @need is false). *@given says
 * whether the user named one. Errors: UUID_INVALID, "No matching SRs found",
 * "No default SR" when @need and there is none. */
bool cli_sr_arg(struct cli_ctx *c, const struct cli_args *a, bool need, char **sr, bool *given,
                struct xerr **errp);
/* The ref of the object of class @cls_name whose uuid is the value of @key=
 * (required: "Required parameter not found: <key>"). */
bool cli_ref_arg(struct cli_ctx *c, const struct cli_args *a, const char *key,
                 const char *cls_name, char **ref, struct xerr **errp);
/* A client stub on one object: xc_vbd_plug, xc_sr_scan ... */
typedef bool cli_ref_verb_fn(struct xclient *xc, const char *ref, struct xerr **errp);
/* Runs @fn on the object of class @cls_name named by uuid=: 0 or 1. */
int cli_verb_on_uuid(struct cli_ctx *c, const struct cli_args *a, const char *cls_name,
                     cli_ref_verb_fn *fn, struct xerr **errp);
/* Parses @key='s value as a value of @t into @out (an enum, a map ...) when
 * given; true and *@given false when absent. Errors: INVALID_VALUE [key, text]. */
bool cli_typed_arg(struct cli_ctx *c, const struct cli_args *a, const char *key,
                   const struct xtype *t, void *out, bool *given, struct xerr **errp);
/* The host named by @key= (uuid or name-label), or the pool master without it. */
bool cli_host_arg(struct cli_ctx *c, const struct cli_args *a, const char *key, char **host,
                  struct xerr **errp);

/* ================================================================ commands.c */

struct cli_cmd {
    const char *name;
    int (*run)(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp);
    const char *reqd;     /* comma-separated parameter names */
    const char *optional; /* comma-separated parameter names */
    const char *help;
};
extern const struct cli_cmd cli_commands[];
const struct cli_cmd *cli_command_find(const char *name);
/* Whether every parameter of @cmd->reqd is given (with a value); else
 * "Required parameter not found: <name>" for the first missing one. */
bool cli_check_required(const struct cli_cmd *cmd, const struct cli_args *a, struct xerr **errp);
/* Whether @name is a hand-written or a generic command. */
bool cli_command_exists(const char *name);
/* Runs the command of @a: 0 success, 1 failure (with *errp set), 2 usage. */
int cli_dispatch(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp);
/* `xe help [--all] [--minimal] [command]`, also without a connection. */
int cli_help(FILE *out, const struct cli_args *a, struct xerr **errp);

#endif
