/* cli/generic.c - <class>-list and <class>-param-* for every class of the model.
 *
 * Nothing here names a class or a field: the commands walk the descriptors
 * (xapi_classes[], each class's fields with their types and qualifiers) and
 * call the implicit messages whose names xapi's ocaml/idl/datamodel_utils.ml (implicit messages) fixes:
 * get_all_records_where "true" for lists (filtered here, as xe does),
 * get_by_uuid, get_record, set_<f>, add_to_<f>/remove_from_<f> for maps,
 * add_<f>/remove_<f> for sets. A field that is not RW may still have a
 * hand-written setter (VM.set_VCPUs_max): param-set tries set_<f> and only an
 * unknown method means "read-only". The one table is the default columns of
 * a few lists, which is presentation, not marshalling.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"
#include "xapi_model.h"

const char *const cli_generic_ops[] = {"list",      "param-list",   "param-get", "param-set",
                                       "param-add", "param-remove", "param-clear", NULL};

/* Columns of <class>-list without params=, as xe shows them. Names that the
 * class does not have are skipped. */
static const struct {
    const char *cls;
    const char *cols;
} default_cols[] = {
    {"VM", "uuid,name-label,power-state"},
    {"task", "uuid,name-label,name-description,status,progress"},
    {"VBD", "uuid,VM,VDI,device,empty"},
    {"VIF", "uuid,VM,network,device,MAC"},
    {"PBD", "uuid,host,SR,currently-attached"},
    {"PIF", "uuid,device,currently-attached,VLAN,network"},
    {"message", "uuid,name,priority,class,obj-uuid,timestamp,body"},
    {"subject", "uuid,subject-identifier,other-config"},
    {"SM", "uuid,name-label,type"},
    {"SR", "uuid,name-label,name-description,type,content-type"},
    {"VDI", "uuid,name-label,name-description,virtual-size"},
    {"network", "uuid,name-label,name-description,bridge"},
    {"pool", "uuid,name-label,master"},
};

/* A column of a list or record: a field of the class, or an alias of
 * records.ml (the uuid or name-label of the object a reference names). */
struct col {
    const struct xfield *f;
    const struct cli_alias *alias;
};

/* The columns to show: from "a,b,c", or every field then every alias for
 * "all". Free *out with free(). */
static bool
select_fields(const struct xclass *cls, const char *spec, bool strict, struct col **out,
              size_t *n_out, struct xerr **errp)
{
    size_t n_alias = 0, pos = 0;
    while (cli_alias_at(cls, &pos))
        n_alias++;
    size_t cap = cls->n_fields + n_alias + 1;
    struct col *v = calloc(cap, sizeof(*v));
    size_t n = 0;
    if (!v)
        return xerr_nomem(errp);
    if (strcmp(spec, "all") == 0) {
        for (size_t i = 0; i < cls->n_fields; i++)
            if (!(cls->fields[i].flags & XF_REMOVED))
                v[n++].f = &cls->fields[i];
        pos = 0;
        for (const struct cli_alias *al; (al = cli_alias_at(cls, &pos));)
            v[n++].alias = al;
    } else {
        char *copy = strdup(spec);
        char *save = NULL;
        if (!copy) {
            free(v);
            return xerr_nomem(errp);
        }
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            const struct xfield *f = cli_field_find(cls, t);
            const struct cli_alias *al = f ? NULL : cli_alias_find(cls, t);
            if (!f && !al && strict) {
                cli_err_syntax(errp, "Unknown field '%s'", t);
                free(copy);
                free(v);
                return false;
            }
            if ((f || al) && n + 1 < cap)
                v[n++] = (struct col){f, al};
        }
        free(copy);
    }
    *out = v;
    *n_out = n;
    return true;
}

static const char *
default_columns(const struct xclass *cls)
{
    for (size_t i = 0; i < sizeof(default_cols) / sizeof(default_cols[0]); i++)
        if (strcmp(default_cols[i].cls, cls->name) == 0)
            return default_cols[i].cols;
    return cls->name_label_field >= 0 ? "uuid,name-label,name-description" : "uuid";
}

bool
cli_fetch_all(struct cli_ctx *c, const struct xclass *cls, struct xmap *out, struct xerr **errp)
{
    const struct cli_class_types *ct = cli_class_types(cls);
    if (!ct)
        return xerr_nomem(errp);
    char method[128];
    snprintf(method, sizeof(method), "%s.get_all_records_where", cls->name);
    const char *expr = "true";
    const struct xtype *t = &xapi_type_string;
    const void *v = &expr;
    if (!cli_call(c, method, 1, &t, &v, &ct->record_map, out, errp))
        return false;
    for (size_t i = 0; i < out->n; i++) {
        const void *rec = ((void **)out->values)[i];
        cli_cache_uuid(c, ((char **)out->keys)[i], xrecord_uuid(cls, rec));
    }
    return true;
}

/* The field's value as text, into @sb (reset first). */
static void
field_text(struct cli_ctx *c, const void *rec, const struct xfield *f, struct strbuf *sb)
{
    strbuf_reset(sb);
    cli_value_text(f->type, xrecord_field_cptr(rec, f), cli_ref_uuid, c, sb);
    if (!sb->buf)
        strbuf_puts(sb, "");
}

/* An alias's value: the referenced object's uuid or name-label, or
 * "<not in database>" as xe shows a dangling reference. */
static void
alias_text(struct cli_ctx *c, const struct xclass *cls, const void *rec,
           const struct cli_alias *al, struct strbuf *sb)
{
    const struct xfield *rf = cli_alias_ref_field(cls, al);
    const char *ref = *(char *const *)xrecord_field_cptr(rec, rf);
    const char *v = strcmp(al->target, "uuid") == 0
                        ? cli_ref_uuid(c, rf->type->ref_class, ref)
                        : cli_ref_name_label(c, rf->type->ref_class, ref);
    strbuf_reset(sb);
    strbuf_puts(sb, v ? v : "<not in database>");
}

static void
col_text(struct cli_ctx *c, const struct xclass *cls, const void *rec, const struct col *col,
         struct strbuf *sb)
{
    if (col->alias)
        alias_text(c, cls, rec, col->alias, sb);
    else
        field_text(c, rec, col->f, sb);
}

static void
col_key(const struct col *col, struct strbuf *sb)
{
    if (col->alias)
        strbuf_printf(sb, "%s ( RO)", col->alias->name);
    else
        cli_field_key(col->f, sb);
}

/* Whether one filter holds: @value against the field's text, or with
 * @subkey against that key of a map (a missing key never matches). */
static bool
filter_holds(struct cli_ctx *c, const void *rec, const struct xfield *f, const char *subkey,
             const char *value)
{
    struct strbuf sb = STRBUF_INIT;
    bool ok = false;
    const struct xtype *t = f->type;
    if (subkey) {
        const struct xmap *m = xrecord_field_cptr(rec, f);
        for (size_t i = 0; i < m->n && !ok; i++) {
            strbuf_reset(&sb);
            cli_value_text(t->key, (const char *)m->keys + i * t->key->size, cli_ref_uuid, c,
                           &sb);
            if (strcmp(sb.buf ? sb.buf : "", subkey) != 0)
                continue;
            strbuf_reset(&sb);
            cli_value_text(t->elem, (const char *)m->values + i * t->elem->size, cli_ref_uuid,
                           c, &sb);
            ok = strcmp(sb.buf ? sb.buf : "", value) == 0;
        }
    } else {
        field_text(c, rec, f, &sb);
        bool ci = t->kind == XT_ENUM || t->kind == XT_BOOL;
        ok = ci ? strcasecmp(sb.buf, value) == 0 : strcmp(sb.buf, value) == 0;
        bool b;
        if (!ok && t->kind == XT_BOOL && cli_parse_bool(value, &b))
            ok = b == *(const bool *)xrecord_field_cptr(rec, f);
    }
    strbuf_release(&sb);
    return ok;
}

static bool
skipped(const char *key, const char *const *skip)
{
    for (; skip && *skip; skip++)
        if (strcmp(*skip, key) == 0)
            return true;
    return false;
}

bool
cli_record_matches(struct cli_ctx *c, const struct xclass *cls, const void *rec,
                   const struct cli_args *a, const char *const *skip, struct xerr **errp)
{
    for (size_t i = 0; i < a->n; i++) {
        const struct cli_arg *arg = &a->v[i];
        if (!arg->value || skipped(arg->key, skip))
            continue;
        const struct xfield *f = cli_field_find(cls, arg->key);
        const struct cli_alias *al = f ? NULL : cli_alias_find(cls, arg->key);
        if (al && !arg->subkey) {
            struct strbuf sb = STRBUF_INIT;
            alias_text(c, cls, rec, al, &sb);
            bool holds = strcmp(sb.buf ? sb.buf : "", arg->value) == 0;
            strbuf_release(&sb);
            if (!holds)
                return false;
            continue;
        }
        if (!f)
            return cli_err_syntax(errp, "Unknown field '%s'", arg->key);
        if (arg->subkey && f->type->kind != XT_MAP)
            return cli_err_syntax(errp, "Field '%s' is not a map", arg->key);
        if (!filter_holds(c, rec, f, arg->subkey, arg->value))
            return false;
    }
    return true;
}

/* Whether the user filtered on field @key already. */
static bool
has_filter(const struct cli_args *a, const char *key)
{
    for (size_t i = 0; i < a->n; i++)
        if (a->v[i].value && !a->v[i].subkey && strcasecmp(a->v[i].key, key) == 0)
            return true;
    return false;
}

static void
print_record(struct cli_ctx *c, const struct xclass *cls, const void *rec,
             const struct col *fields, size_t n)
{
    char **keys = calloc(n ? n : 1, sizeof(char *));
    char **vals = calloc(n ? n : 1, sizeof(char *));
    for (size_t i = 0; keys && vals && i < n; i++) {
        struct strbuf k = STRBUF_INIT, v = STRBUF_INIT;
        col_key(&fields[i], &k);
        col_text(c, cls, rec, &fields[i], &v);
        keys[i] = strbuf_steal(&k, NULL);
        vals[i] = strbuf_steal(&v, NULL);
    }
    if (keys && vals)
        cli_print_block(c->out, (const char *const *)keys, (const char *const *)vals, n);
    for (size_t i = 0; i < n; i++) {
        free(keys ? keys[i] : NULL);
        free(vals ? vals[i] : NULL);
    }
    free(keys);
    free(vals);
}

bool
cli_cmd_list(struct cli_ctx *c, const struct xclass *cls, const struct cli_args *a,
             const char *const *extra, const char *columns, struct xerr **errp)
{
    const struct cli_class_types *ct = cli_class_types(cls);
    const char *params = cli_arg_get(a, "params");
    struct col *fields = NULL;
    size_t n_fields = 0;
    if (!select_fields(cls, params ? params : columns ? columns : default_columns(cls),
                       params != NULL, &fields, &n_fields, errp))
        return false;
    /* Implicit filters (vm-list hides templates) unless the user chose. */
    struct cli_args implicit = {0};
    struct cli_arg extra_args[8];
    size_t n_extra = 0;
    for (; extra && extra[n_extra] && n_extra < 8; n_extra++)
        if (cli_arg_split(extra[n_extra], &extra_args[n_extra]) < 0)
            break;
    struct cli_arg kept[8];
    size_t n_kept = 0;
    for (size_t i = 0; i < n_extra; i++)
        if (!has_filter(a, extra_args[i].key))
            kept[n_kept++] = extra_args[i];
    implicit.v = kept;
    implicit.n = n_kept;

    struct xmap all = {0};
    bool ok = cli_fetch_all(c, cls, &all, errp);
    static const char *const skip[] = {"params", NULL};
    struct strbuf minimal = STRBUF_INIT;
    size_t shown = 0;
    for (size_t i = 0; ok && i < all.n; i++) {
        const void *rec = ((void **)all.values)[i];
        struct xerr *ferr = NULL;
        bool match = cli_record_matches(c, cls, rec, &implicit, NULL, &ferr) &&
                     cli_record_matches(c, cls, rec, a, skip, &ferr);
        if (ferr) {
            ok = xerr_propagate(errp, &ferr);
            break;
        }
        if (!match)
            continue;
        if (a->minimal) {
            if (shown)
                strbuf_putc(&minimal, ',');
            if (n_fields > 0) {
                struct strbuf v = STRBUF_INIT;
                col_text(c, cls, rec, &fields[0], &v);
                cli_minimal_escape(&minimal, v.buf);
                strbuf_release(&v);
            }
        } else {
            print_record(c, cls, rec, fields, n_fields);
            fprintf(c->out, "\n");
        }
        shown++;
    }
    if (ok && a->minimal)
        fprintf(c->out, "%s\n", minimal.buf ? minimal.buf : "");
    strbuf_release(&minimal);
    xtype_value_clear(&ct->record_map, &all);
    for (size_t i = 0; i < n_extra; i++) {
        free(extra_args[i].key);
        free(extra_args[i].subkey);
        free(extra_args[i].value);
    }
    free(fields);
    return ok;
}

bool
cli_print_record(struct cli_ctx *c, const struct xclass *cls, const void *rec, const char *spec,
                 struct xerr **errp)
{
    struct col *cols = NULL;
    size_t n = 0;
    if (!select_fields(cls, spec, true, &cols, &n, errp))
        return false;
    print_record(c, cls, rec, cols, n);
    fprintf(c->out, "\n");
    free(cols);
    return true;
}

bool
cli_ref_from_uuid_arg(struct cli_ctx *c, const struct xclass *cls, const struct cli_args *a,
                      char **ref, struct xerr **errp)
{
    const char *uuid = cli_arg_get(a, "uuid");
    if (!uuid && strcmp(cls->name, "pool") == 0) {
        /* There is one pool: xe lets pool-param-* omit it. */
        const struct cli_class_types *ct = cli_class_types(cls);
        struct xmap all = {0};
        if (!cli_fetch_all(c, cls, &all, errp))
            return false;
        bool ok = all.n == 1 ? (*ref = strdup(((char **)all.keys)[0])) != NULL
                             : cli_err_required(errp, "uuid");
        xtype_value_clear(&ct->record_map, &all);
        return ok;
    }
    if (!uuid)
        return cli_err_required(errp, "uuid");
    return cli_uuid_ref(c, cls->name, uuid, ref, errp);
}

static bool
get_record(struct cli_ctx *c, const struct xclass *cls, const char *ref, void **rec,
           struct xerr **errp)
{
    char method[128];
    snprintf(method, sizeof(method), "%s.get_record", cls->name);
    const struct cli_class_types *ct = cli_class_types(cls);
    const struct xtype *t = &ct->ref;
    const void *v = &ref;
    return cli_call(c, method, 1, &t, &v, &ct->record, rec, errp);
}

static bool
cmd_param_list(struct cli_ctx *c, const struct xclass *cls, const struct cli_args *a,
               struct xerr **errp)
{
    char *ref = NULL;
    void *rec = NULL;
    if (!cli_ref_from_uuid_arg(c, cls, a, &ref, errp) || !get_record(c, cls, ref, &rec, errp)) {
        free(ref);
        return false;
    }
    struct col *fields = NULL;
    size_t n = 0;
    bool ok = select_fields(cls, "all", false, &fields, &n, errp);
    if (ok) {
        print_record(c, cls, rec, fields, n);
        fprintf(c->out, "\n");
    }
    free(fields);
    xrecord_free(cls, rec);
    free(ref);
    return ok;
}

/* The field named by param-name=, which must be given. */
static bool
param_field(const struct xclass *cls, const struct cli_args *a, const struct xfield **f,
            struct xerr **errp)
{
    const char *name = cli_arg_get(a, "param-name");
    if (!name)
        return cli_err_required(errp, "param-name");
    if (!(*f = cli_field_find(cls, name)))
        return cli_err_syntax(errp, "Unknown field '%s'", name);
    return true;
}

/* param-get of an alias (param-name=vm-uuid). */
static bool
alias_param_get(struct cli_ctx *c, const struct xclass *cls, const struct cli_args *a,
                const struct cli_alias *al, struct xerr **errp)
{
    char *ref = NULL;
    void *rec = NULL;
    if (!cli_ref_from_uuid_arg(c, cls, a, &ref, errp) || !get_record(c, cls, ref, &rec, errp)) {
        free(ref);
        return false;
    }
    struct strbuf sb = STRBUF_INIT;
    alias_text(c, cls, rec, al, &sb);
    fprintf(c->out, "%s\n", sb.buf ? sb.buf : "");
    strbuf_release(&sb);
    xrecord_free(cls, rec);
    free(ref);
    return true;
}

static bool
cmd_param_get(struct cli_ctx *c, const struct xclass *cls, const struct cli_args *a,
              struct xerr **errp)
{
    const struct xfield *f;
    char *ref = NULL;
    void *rec = NULL;
    const char *pname = cli_arg_get(a, "param-name");
    const struct cli_alias *al =
        pname && !cli_field_find(cls, pname) ? cli_alias_find(cls, pname) : NULL;
    if (al)
        return alias_param_get(c, cls, a, al, errp);
    if (!param_field(cls, a, &f, errp) || !cli_ref_from_uuid_arg(c, cls, a, &ref, errp))
        return false;
    if (!get_record(c, cls, ref, &rec, errp)) {
        free(ref);
        return false;
    }
    const char *key = cli_arg_get(a, "param-key");
    bool ok = true;
    struct strbuf sb = STRBUF_INIT;
    if (key && f->type->kind == XT_MAP) {
        const struct xmap *m = xrecord_field_cptr(rec, f);
        bool found = false;
        for (size_t i = 0; i < m->n && !found; i++) {
            strbuf_reset(&sb);
            cli_value_text(f->type->key, (const char *)m->keys + i * f->type->key->size,
                           cli_ref_uuid, c, &sb);
            if (strcmp(sb.buf ? sb.buf : "", key) != 0)
                continue;
            strbuf_reset(&sb);
            cli_value_text(f->type->elem, (const char *)m->values + i * f->type->elem->size,
                           cli_ref_uuid, c, &sb);
            found = true;
        }
        if (!found)
            ok = cli_err_syntax(errp, "Key %s not found in map", key);
    } else if (key) {
        ok = cli_err_syntax(errp, "Field '%s' is not a map: param-key does not apply", f->name);
    } else {
        field_text(c, rec, f, &sb);
    }
    if (ok)
        fprintf(c->out, "%s\n", sb.buf ? sb.buf : "");
    strbuf_release(&sb);
    xrecord_free(cls, rec);
    free(ref);
    return ok;
}

/* Calls <Class>.<verb><field>(self, args...) with @n typed values after self. */
static bool
field_call(struct cli_ctx *c, const struct xclass *cls, const char *verb, const struct xfield *f,
           const char *ref, size_t n, const struct xtype *const *types, const void *const *vals,
           struct xerr **errp)
{
    char method[160];
    snprintf(method, sizeof(method), "%s.%s%s", cls->name, verb, f->name);
    const struct xtype *all_t[3] = {&cli_class_types(cls)->ref};
    const void *all_v[3] = {&ref};
    for (size_t i = 0; i < n && i < 2; i++) {
        all_t[i + 1] = types[i];
        all_v[i + 1] = vals[i];
    }
    struct xerr *err = NULL;
    if (cli_call(c, method, n + 1, all_t, all_v, NULL, NULL, &err))
        return true;
    if (strcmp(err->code, "MESSAGE_METHOD_UNKNOWN") == 0 && f->qual != XQ_RW) {
        xerr_free(err);
        char name[128];
        return cli_err_syntax(errp, "Error: parameter '%s' is read-only",
                              cli_field_cli_name(f->name, name, sizeof(name)));
    }
    return xerr_propagate(errp, &err);
}

/* Parses @text as a value of @t, calls, and frees the value. */
static bool
typed_text(struct cli_ctx *c, const struct xtype *t, const char *text, const char *what,
           union xvalue_storage *out, struct xerr **errp)
{
    memset(out, 0, sizeof(*out));
    return cli_value_parse(t, text, out, what, cli_uuid_ref, c, errp);
}

/* map field: remove then add, so that the value replaces an existing key. */
static bool
map_put(struct cli_ctx *c, const struct xclass *cls, const struct xfield *f, const char *ref,
        const char *key, const char *value, struct xerr **errp)
{
    union xvalue_storage k, v;
    if (!typed_text(c, f->type->key, key, f->name, &k, errp))
        return false;
    if (!typed_text(c, f->type->elem, value, f->name, &v, errp)) {
        xtype_value_clear(f->type->key, &k);
        return false;
    }
    const struct xtype *t[2] = {f->type->key, f->type->elem};
    const void *vals[2] = {&k, &v};
    bool ok = field_call(c, cls, "remove_from_", f, ref, 1, t, vals, errp) &&
              field_call(c, cls, "add_to_", f, ref, 2, t, vals, errp);
    xtype_value_clear(f->type->key, &k);
    xtype_value_clear(f->type->elem, &v);
    return ok;
}

static bool
cmd_param_set(struct cli_ctx *c, const struct xclass *cls, const struct cli_args *a,
              struct xerr **errp)
{
    char *ref = NULL;
    if (!cli_ref_from_uuid_arg(c, cls, a, &ref, errp))
        return false;
    bool ok = true;
    for (size_t i = 0; ok && i < a->n; i++) {
        const struct cli_arg *arg = &a->v[i];
        if (!arg->value || (!arg->subkey && strcmp(arg->key, "uuid") == 0))
            continue;
        const struct xfield *f = cli_field_find(cls, arg->key);
        if (!f) {
            ok = cli_err_syntax(errp, "Unknown field '%s'", arg->key);
        } else if (arg->subkey) {
            ok = f->type->kind == XT_MAP
                     ? map_put(c, cls, f, ref, arg->subkey, arg->value, errp)
                     : cli_err_syntax(errp, "Field '%s' is not a map", arg->key);
        } else {
            union xvalue_storage v;
            if (!(ok = typed_text(c, f->type, arg->value, f->name, &v, errp)))
                break;
            const void *vp = &v;
            ok = field_call(c, cls, "set_", f, ref, 1, &f->type, &vp, errp);
            xtype_value_clear(f->type, &v);
        }
    }
    free(ref);
    return ok;
}

/* param-add, param-remove: sets take param-key= (comma-separated values);
 * maps take key=value pairs (add) or param-key= (remove). */
static bool
cmd_param_add_remove(struct cli_ctx *c, const struct xclass *cls, const struct cli_args *a,
                     bool add, struct xerr **errp)
{
    const struct xfield *f;
    char *ref = NULL;
    if (!param_field(cls, a, &f, errp))
        return false;
    const struct xtype *t = f->type;
    if (t->kind != XT_SET && t->kind != XT_MAP)
        return cli_err_syntax(errp, "Field '%s' is neither a set nor a map", f->name);
    const char *key = cli_arg_get(a, "param-key");
    if (!key && (t->kind == XT_SET || !add))
        return cli_err_required(errp, "param-key");
    if (!cli_ref_from_uuid_arg(c, cls, a, &ref, errp))
        return false;
    bool ok = true;
    if (t->kind == XT_MAP && add) {
        for (size_t i = 0; ok && i < a->n; i++) {
            const struct cli_arg *arg = &a->v[i];
            if (!arg->value || arg->subkey || strcmp(arg->key, "uuid") == 0 ||
                strcmp(arg->key, "param-name") == 0 || strcmp(arg->key, "param-key") == 0)
                continue;
            ok = map_put(c, cls, f, ref, arg->key, arg->value, errp);
        }
    } else {
        /* each comma-separated item of param-key */
        const struct xtype *it = t->kind == XT_SET ? t->elem : t->key;
        const char *verb = t->kind == XT_SET ? (add ? "add_" : "remove_") : "remove_from_";
        struct xset items = {0};
        struct xtype list_t = {.kind = XT_SET, .name = "items", .size = sizeof(struct xset),
                               .elem = it};
        if ((ok = cli_value_parse(&list_t, key, &items, f->name, cli_uuid_ref, c, errp))) {
            for (size_t i = 0; ok && i < items.n; i++) {
                const void *vp = (const char *)items.items + i * it->size;
                ok = field_call(c, cls, verb, f, ref, 1, &it, &vp, errp);
            }
            xtype_value_clear(&list_t, &items);
        }
    }
    free(ref);
    return ok;
}

static bool
cmd_param_clear(struct cli_ctx *c, const struct xclass *cls, const struct cli_args *a,
                struct xerr **errp)
{
    const struct xfield *f;
    char *ref = NULL;
    if (!param_field(cls, a, &f, errp) || !cli_ref_from_uuid_arg(c, cls, a, &ref, errp))
        return false;
    union xvalue_storage v;
    bool ok = xtype_value_init(f->type, &v) == 0;
    if (!ok)
        xerr_nomem(errp);
    const void *vp = &v;
    ok = ok && field_call(c, cls, "set_", f, ref, 1, &f->type, &vp, errp);
    xtype_value_clear(f->type, &v);
    free(ref);
    return ok;
}

int
cli_generic_run(struct cli_ctx *c, const struct xclass *cls, const char *op,
                const struct cli_args *a, struct xerr **errp)
{
    bool ok;
    if (strcmp(op, "list") == 0)
        ok = cli_cmd_list(c, cls, a, NULL, NULL, errp);
    else if (strcmp(op, "param-list") == 0)
        ok = cmd_param_list(c, cls, a, errp);
    else if (strcmp(op, "param-get") == 0)
        ok = cmd_param_get(c, cls, a, errp);
    else if (strcmp(op, "param-set") == 0)
        ok = cmd_param_set(c, cls, a, errp);
    else if (strcmp(op, "param-add") == 0)
        ok = cmd_param_add_remove(c, cls, a, true, errp);
    else if (strcmp(op, "param-remove") == 0)
        ok = cmd_param_add_remove(c, cls, a, false, errp);
    else if (strcmp(op, "param-clear") == 0)
        ok = cmd_param_clear(c, cls, a, errp);
    else
        return -1;
    return ok ? 0 : 1;
}
