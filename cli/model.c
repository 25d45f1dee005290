/* cli/model.c - the data model as xe names it, and user text into typed values.
 *
 * CLI names come from the descriptors, never from a table: a class is its
 * lower-case name with '_' as '-' (VM_metrics -> vm-metrics), a field its
 * wire name with '_' as '-' (name_label -> name-label, VCPUs_max -> VCPUs-max),
 * matched without regard to case (xapi's ocaml/xapi-cli-server/cli_frontend.ml and records.ml). Text typed by a
 * user becomes a value of the field's type here; every scalar goes through
 * xtype_value_decode so that the client accepts exactly what the server does.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"
#include "xapi_model.h"
#include "xapi_errors.h"

const struct cli_class_types *
cli_class_types(const struct xclass *cls)
{
    /* Built once, reachable until exit (descriptors are immutable). */
    static struct cli_class_types *all;
    if (!all && !(all = calloc(xapi_n_classes, sizeof(*all))))
        return NULL;
    struct cli_class_types *t = &all[cls->id];
    if (t->ref.name)
        return t;
    t->ref = (struct xtype){.kind = XT_REF, .name = "ref", .size = sizeof(char *),
                            .ref_class = cls->name, .cls = cls};
    t->record = (struct xtype){.kind = XT_RECORD, .name = "record", .size = sizeof(void *),
                               .ref_class = cls->name, .cls = cls};
    t->record_map = (struct xtype){.kind = XT_MAP, .name = "(ref -> record) map",
                                   .size = sizeof(struct xmap), .elem = &t->record,
                                   .key = &t->ref};
    t->ref_set = (struct xtype){.kind = XT_SET, .name = "ref set", .size = sizeof(struct xset),
                                .elem = &t->ref};
    return t;
}

static const char *
dashed(const char *s, char *buf, size_t len, bool lower)
{
    size_t i = 0;
    for (; s[i] && i + 1 < len; i++) {
        char ch = s[i] == '_' ? '-' : s[i];
        buf[i] = lower && ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
    }
    buf[i] = '\0';
    return buf;
}

const char *
cli_class_cli_name(const struct xclass *cls, char *buf, size_t len)
{
    return dashed(cls->name, buf, len, true);
}

const char *
cli_field_cli_name(const char *wire, char *buf, size_t len)
{
    return dashed(wire, buf, len, false);
}

/* Equal ignoring case, with '-' and '_' the same. */
static bool
name_eq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        int x = *a == '_' ? '-' : tolower((unsigned char)*a);
        int y = *b == '_' ? '-' : tolower((unsigned char)*b);
        if (x != y)
            return false;
    }
    return *a == *b;
}

const struct xclass *
cli_class_by_cli_name(const char *name)
{
    for (size_t i = 0; i < xapi_n_classes; i++)
        if (xapi_classes[i]->stored && name_eq(xapi_classes[i]->name, name))
            return xapi_classes[i];
    return NULL;
}

const struct xfield *
cli_field_find(const struct xclass *cls, const char *name)
{
    for (size_t i = 0; i < cls->n_fields; i++)
        if (!(cls->fields[i].flags & XF_REMOVED) && name_eq(cls->fields[i].name, name))
            return &cls->fields[i];
    return NULL;
}

/* xapi's records.ml shows, beside a record's own fields, the uuid and
 * name-label of the objects some of its references name, and xe filters and
 * prints them like fields: `xe vbd-list vm-uuid=<uuid> params=vdi-uuid`.
 * One table for every class: (class, CLI name, the reference field, the
 * referenced object's field). Rows whose class or field this model lacks are
 * never found. */
static const struct cli_alias aliases[] = {
    {"VBD", "vm-uuid", "VM", "uuid"},
    {"VBD", "vm-name-label", "VM", "name_label"},
    {"VBD", "vdi-uuid", "VDI", "uuid"},
    {"VBD", "vdi-name-label", "VDI", "name_label"},
    {"VIF", "vm-uuid", "VM", "uuid"},
    {"VIF", "vm-name-label", "VM", "name_label"},
    {"VIF", "network-uuid", "network", "uuid"},
    {"VIF", "network-name-label", "network", "name_label"},
    {"VDI", "sr-uuid", "SR", "uuid"},
    {"VDI", "sr-name-label", "SR", "name_label"},
    {"PBD", "host-uuid", "host", "uuid"},
    {"PBD", "host-name-label", "host", "name_label"},
    {"PBD", "sr-uuid", "SR", "uuid"},
    {"PBD", "sr-name-label", "SR", "name_label"},
    {"PIF", "host-uuid", "host", "uuid"},
    {"PIF", "host-name-label", "host", "name_label"},
    {"PIF", "network-uuid", "network", "uuid"},
    {"PIF", "network-name-label", "network", "name_label"},
    {"console", "vm-uuid", "VM", "uuid"},
    {"console", "vm-name-label", "VM", "name_label"},
    {"crashdump", "vm-uuid", "VM", "uuid"},
    {"crashdump", "vm-name-label", "VM", "name_label"},
    {"crashdump", "vdi-uuid", "VDI", "uuid"},
    {"host_crashdump", "host-uuid", "host", "uuid"},
    {"host_cpu", "host-uuid", "host", "uuid"},
    {"host", "crash-dump-sr-uuid", "crash_dump_sr", "uuid"},
    {"host", "suspend-image-sr-uuid", "suspend_image_sr", "uuid"},
    {"host", "control-domain-uuid", "control_domain", "uuid"},
    {"PCI", "host-uuid", "host", "uuid"},
    {"PCI", "host-name-label", "host", "name_label"},
    {"PGPU", "host-uuid", "host", "uuid"},
    {"PGPU", "host-name-label", "host", "name_label"},
    {"PGPU", "gpu-group-uuid", "GPU_group", "uuid"},
    {"PGPU", "gpu-group-name-label", "GPU_group", "name_label"},
    {"PGPU", "pci-uuid", "PCI", "uuid"},
    {"VGPU", "vm-uuid", "VM", "uuid"},
    {"VGPU", "vm-name-label", "VM", "name_label"},
    {"VGPU", "gpu-group-uuid", "GPU_group", "uuid"},
    {"VGPU", "gpu-group-name-label", "GPU_group", "name_label"},
    {"VGPU", "type-uuid", "type", "uuid"},
    {"VTPM", "vm-uuid", "VM", "uuid"},
    {"VTPM", "vm-name-label", "VM", "name_label"},
    {"PUSB", "host-uuid", "host", "uuid"},
    {"PUSB", "host-name-label", "host", "name_label"},
    {"PUSB", "usb-group-uuid", "USB_group", "uuid"},
    {"VUSB", "vm-uuid", "VM", "uuid"},
    {"VUSB", "vm-name-label", "VM", "name_label"},
    {"VUSB", "usb-group-uuid", "USB_group", "uuid"},
    {"VUSB", "usb-group-name-label", "USB_group", "name_label"},
    {"PVS_proxy", "pvs-site-uuid", "site", "uuid"},
    {"PVS_proxy", "vif-uuid", "VIF", "uuid"},
    {"PVS_server", "pvs-site-uuid", "site", "uuid"},
    {"PVS_cache_storage", "host-uuid", "host", "uuid"},
    {"PVS_cache_storage", "sr-uuid", "SR", "uuid"},
    {"PVS_cache_storage", "vdi-uuid", "VDI", "uuid"},
    {"PVS_cache_storage", "pvs-site-uuid", "site", "uuid"},
};

const struct cli_alias *
cli_alias_find(const struct xclass *cls, const char *name)
{
    for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++)
        if (strcmp(aliases[i].cls, cls->name) == 0 && name_eq(aliases[i].name, name) &&
            cli_alias_ref_field(cls, &aliases[i]))
            return &aliases[i];
    return NULL;
}

const struct cli_alias *
cli_alias_at(const struct xclass *cls, size_t *pos)
{
    for (; *pos < sizeof(aliases) / sizeof(aliases[0]); (*pos)++)
        if (strcmp(aliases[*pos].cls, cls->name) == 0 && cli_alias_ref_field(cls, &aliases[*pos]))
            return &aliases[(*pos)++];
    return NULL;
}

const struct xfield *
cli_alias_ref_field(const struct xclass *cls, const struct cli_alias *al)
{
    const struct xfield *f = xclass_field(cls, al->ref_field);
    return f && f->type->kind == XT_REF && f->type->cls ? f : NULL;
}

const char *
cli_field_qual(const struct xfield *f)
{
    bool rw = f->qual == XQ_RW;
    if (f->type->kind == XT_SET)
        return rw ? "SRW" : "SRO";
    if (f->type->kind == XT_MAP)
        return rw ? "MRW" : "MRO";
    return rw ? " RW" : " RO";
}

/* ------------------------------------------------------------------ parsing */

static bool
invalid(struct xerr **errp, const char *what, const char *text)
{
    return xerr_invalid_value(errp, what, text);
}

/* Next item of a comma-separated list (commas escaped as "\,") into a new
 * string; *@p advances past it. NULL at the end or when out of memory. */
static char *
next_item(const char **p, bool *oom)
{
    if (!**p)
        return NULL;
    size_t len = strlen(*p);
    char *item = malloc(len + 1);
    if (!item) {
        *oom = true;
        return NULL;
    }
    size_t n = 0;
    const char *s = *p;
    for (; *s && *s != ','; s++) {
        if (*s == '\\' && (s[1] == ',' || s[1] == '\\'))
            s++;
        item[n++] = *s;
    }
    item[n] = '\0';
    *p = *s ? s + 1 : s;
    return item;
}

static bool
parse_container(const struct xtype *t, const char *text, void *out, const char *what,
                cli_uuid_to_ref_fn *resolve, void *opaque, struct xerr **errp)
{
    bool is_map = t->kind == XT_MAP;
    size_t cap = 0, n = 0;
    for (const char *s = text; *s; s++)
        cap += *s == ',';
    cap += 1;
    void *keys = is_map ? calloc(cap, t->key->size) : NULL;
    void *vals = calloc(cap, t->elem->size);
    struct xmap *m = out;
    struct xset *set = out;
    if (is_map) {
        m->keys = keys;
        m->values = vals;
        m->n = 0;
    } else {
        set->items = vals;
        set->n = 0;
    }
    if (!vals || (is_map && !keys)) {
        xtype_value_clear(t, out);
        return xerr_nomem(errp);
    }
    const char *p = text;
    bool oom = false;
    for (char *item; (item = next_item(&p, &oom)); free(item)) {
        bool ok;
        if (is_map) {
            char *colon = strchr(item, ':');
            if (!colon) {
                invalid(errp, what, item);
                free(item);
                xtype_value_clear(t, out);
                return false;
            }
            *colon = '\0';
            ok = cli_value_parse(t->key, item, (char *)keys + n * t->key->size, what, resolve,
                                 opaque, errp) &&
                 (cli_value_parse(t->elem, colon + 1, (char *)vals + n * t->elem->size, what,
                                  resolve, opaque, errp) ||
                  (xtype_value_clear(t->key, (char *)keys + n * t->key->size), false));
        } else {
            ok = cli_value_parse(t->elem, item, (char *)vals + n * t->elem->size, what, resolve,
                                 opaque, errp);
        }
        if (!ok) {
            free(item);
            xtype_value_clear(t, out);
            return false;
        }
        n++;
        if (is_map)
            m->n = n;
        else
            set->n = n;
    }
    if (oom) {
        xtype_value_clear(t, out);
        return xerr_nomem(errp);
    }
    return true;
}

bool
cli_value_parse(const struct xtype *t, const char *text, void *out, const char *what,
                cli_uuid_to_ref_fn *resolve, void *opaque, struct xerr **errp)
{
    switch (t->kind) {
    case XT_BOOL: {
        bool b;
        if (!cli_parse_bool(text, &b))
            return invalid(errp, what, text);
        *(bool *)out = b;
        return true;
    }
    case XT_REF:
        if (!*text || strncmp(text, "OpaqueRef:", 10) == 0 || !resolve) {
            char *r = strdup(*text ? text : "OpaqueRef:NULL");
            if (!r)
                return xerr_nomem(errp);
            *(char **)out = r;
            return true;
        }
        return resolve(opaque, t->ref_class, text, (char **)out, errp);
    case XT_SET:
    case XT_MAP:
        return parse_container(t, text, out, what, resolve, opaque, errp);
    case XT_OPTION: {
        void *o = calloc(1, t->elem->size);
        if (!o)
            return xerr_nomem(errp);
        if (!cli_value_parse(t->elem, text, o, what, resolve, opaque, errp)) {
            free(o);
            return false;
        }
        *(void **)out = o;
        return true;
    }
    case XT_RECORD:
        return invalid(errp, what, text);
    default: {
        struct xval *v = xval_new_string(text);
        if (!v)
            return xerr_nomem(errp);
        struct xerr *e = NULL;
        bool ok = xtype_value_decode(t, v, out, what, &e);
        xval_free(v);
        if (!ok) {
            xerr_free(e);
            return invalid(errp, what, text);
        }
        return true;
    }
    }
}
