/* cli/fmt.c - values and records as xe prints them.
 *
 * Output rules (shared/spec/xenapi.md 8): one block per record, a blank line
 * between blocks; each line `<field> (<q>): <value>` with the colons in one
 * column, at the longest key + 4: the first key is padded on the right, the
 * others on the left. Sets print "a; b", maps "k: v; k2: v2", refs as the
 * uuid of what they name, booleans true/false, enums lower-case (power states
 * "running"). --minimal lists join values with ',' and escape ',' as "\,".
 * The ref -> uuid lookup is a callback, so this file needs no server.
 */
#include <ctype.h>
#include <inttypes.h>
#include <string.h>

#include "cli/cli.h"
#include "wire/wire.h"

static void
put_lower(struct strbuf *out, const char *s)
{
    for (; *s; s++)
        strbuf_putc(out, (char)tolower((unsigned char)*s));
}

void
cli_value_text(const struct xtype *t, const void *p, cli_ref_to_uuid_fn *resolve, void *opaque,
               struct strbuf *out)
{
    switch (t->kind) {
    case XT_STRING:
        strbuf_puts(out, *(char *const *)p);
        break;
    case XT_INT:
        strbuf_printf(out, "%" PRId64, *(const int64_t *)p);
        break;
    case XT_FLOAT:
        strbuf_printf(out, "%g", *(const double *)p);
        break;
    case XT_BOOL:
        strbuf_puts(out, *(const bool *)p ? "true" : "false");
        break;
    case XT_DATETIME: {
        char buf[WIRE_DATETIME_SIZE];
        wire_format_datetime((time_t) * (const int64_t *)p, buf);
        strbuf_puts(out, buf);
        break;
    }
    case XT_ENUM:
        put_lower(out, xenum_name(t->en, *(const int *)p));
        break;
    case XT_REF: {
        const char *ref = *(char *const *)p;
        const char *uuid = resolve && ref && strcmp(ref, "OpaqueRef:NULL") != 0
                               ? resolve(opaque, t->ref_class, ref)
                               : NULL;
        strbuf_puts(out, uuid ? uuid : "<not in database>");
        break;
    }
    case XT_SET: {
        const struct xset *s = p;
        for (size_t i = 0; i < s->n; i++) {
            if (i)
                strbuf_puts(out, "; ");
            cli_value_text(t->elem, (const char *)s->items + i * t->elem->size, resolve, opaque,
                           out);
        }
        break;
    }
    case XT_MAP: {
        const struct xmap *m = p;
        for (size_t i = 0; i < m->n; i++) {
            if (i)
                strbuf_puts(out, "; ");
            cli_value_text(t->key, (const char *)m->keys + i * t->key->size, resolve, opaque,
                           out);
            strbuf_puts(out, ": ");
            cli_value_text(t->elem, (const char *)m->values + i * t->elem->size, resolve,
                           opaque, out);
        }
        break;
    }
    case XT_OPTION: {
        const void *o = *(void *const *)p;
        if (o)
            cli_value_text(t->elem, o, resolve, opaque, out);
        break;
    }
    case XT_RECORD:
        strbuf_puts(out, *(void *const *)p ? "<record>" : "");
        break;
    }
}

void
cli_field_key(const struct xfield *f, struct strbuf *sb)
{
    char name[128];
    strbuf_printf(sb, "%s (%s)", cli_field_cli_name(f->name, name, sizeof(name)),
                  cli_field_qual(f));
    if (f->flags & XF_DEPRECATED)
        strbuf_puts(sb, " [DEPRECATED]");
}

void
cli_print_block(FILE *out, const char *const *keys, const char *const *vals, size_t n)
{
    int width = 0;
    for (size_t i = 0; i < n; i++) {
        int l = (int)strlen(keys[i]);
        if (l > width)
            width = l;
    }
    width += 4;
    for (size_t i = 0; i < n; i++) {
        if (i == 0)
            fprintf(out, "%-*s: %s\n", width, keys[i], vals[i]);
        else
            fprintf(out, "%*s: %s\n", width, keys[i], vals[i]);
    }
}

void
cli_minimal_escape(struct strbuf *sb, const char *s)
{
    for (; *s; s++) {
        if (*s == ',' || *s == '\\')
            strbuf_putc(sb, '\\');
        strbuf_putc(sb, *s);
    }
}
