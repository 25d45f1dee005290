/* rpc/where.c - the expression language of get_all_records_where (used by xe).
 *
 * Grammar (xapi's Db_filter, restated):
 *   expr   := term ("or" term)*
 *   term   := factor ("and" factor)*
 *   factor := "not" factor | "(" expr ")" | "true" | "false" | "field" STR "=" STR
 * STR is a double-quoted string with \" and \\ escapes. A field name uses "__"
 * where the model namespaces ("name__label"); a field the class lacks matches
 * nothing. Values compare as their wire text (enums by name, any case).
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rpc/implicit.h"

enum where_op { W_TRUE, W_FALSE, W_FIELD, W_AND, W_OR, W_NOT };

struct where_expr {
    enum where_op op;
    char *field;
    char *value;
    struct where_expr *a, *b;
};

struct parser {
    const char *p;
    bool bad;
};

static void
skip_space(struct parser *ps)
{
    while (isspace((unsigned char)*ps->p))
        ps->p++;
}

static bool
keyword(struct parser *ps, const char *kw)
{
    skip_space(ps);
    size_t n = strlen(kw);
    if (strncasecmp(ps->p, kw, n) == 0 && !isalnum((unsigned char)ps->p[n]) && ps->p[n] != '_') {
        ps->p += n;
        return true;
    }
    return false;
}

static char *
string_lit(struct parser *ps)
{
    skip_space(ps);
    if (*ps->p != '"') {
        ps->bad = true;
        return NULL;
    }
    ps->p++;
    size_t cap = strlen(ps->p) + 1, n = 0;
    char *out = malloc(cap);
    if (!out) {
        ps->bad = true;
        return NULL;
    }
    while (*ps->p && *ps->p != '"') {
        if (*ps->p == '\\' && ps->p[1])
            ps->p++;
        out[n++] = *ps->p++;
    }
    if (*ps->p != '"') {
        free(out);
        ps->bad = true;
        return NULL;
    }
    ps->p++;
    out[n] = '\0';
    return out;
}

static struct where_expr *parse_expr(struct parser *ps, int depth);

static struct where_expr *
node(enum where_op op)
{
    return calloc(1, sizeof(struct where_expr));
}

static struct where_expr *
parse_factor(struct parser *ps, int depth)
{
    if (depth > 64) {
        ps->bad = true;
        return NULL;
    }
    struct where_expr *e = NULL;
    skip_space(ps);
    if (keyword(ps, "not")) {
        if ((e = node(W_NOT))) {
            e->op = W_NOT;
            e->a = parse_factor(ps, depth + 1);
        }
    } else if (*ps->p == '(') {
        ps->p++;
        e = parse_expr(ps, depth + 1);
        skip_space(ps);
        if (*ps->p == ')')
            ps->p++;
        else
            ps->bad = true;
        return e;
    } else if (keyword(ps, "true")) {
        if ((e = node(W_TRUE)))
            e->op = W_TRUE;
    } else if (keyword(ps, "false")) {
        if ((e = node(W_FALSE)))
            e->op = W_FALSE;
    } else if (keyword(ps, "field")) {
        if ((e = node(W_FIELD))) {
            e->op = W_FIELD;
            e->field = string_lit(ps);
            skip_space(ps);
            if (*ps->p == '=')
                ps->p++;
            else
                ps->bad = true;
            if (!ps->bad)
                e->value = string_lit(ps);
        }
    } else {
        ps->bad = true;
    }
    if (!e)
        ps->bad = true;
    return e;
}

static struct where_expr *
parse_binary(struct parser *ps, int depth, bool is_or)
{
    struct where_expr *left = is_or ? parse_binary(ps, depth, false) : parse_factor(ps, depth);
    while (!ps->bad && keyword(ps, is_or ? "or" : "and")) {
        struct where_expr *e = node(W_AND);
        if (!e) {
            ps->bad = true;
            break;
        }
        e->op = is_or ? W_OR : W_AND;
        e->a = left;
        e->b = is_or ? parse_binary(ps, depth, false) : parse_factor(ps, depth);
        left = e;
    }
    return left;
}

static struct where_expr *
parse_expr(struct parser *ps, int depth)
{
    return parse_binary(ps, depth, true);
}

struct where_expr *
where_compile(const char *expr, struct xerr **errp)
{
    struct parser ps = {expr, false};
    struct where_expr *e = parse_expr(&ps, 0);
    skip_space(&ps);
    if (ps.bad || *ps.p) {
        where_free(e);
        xerr_raise(errp, "INVALID_VALUE", "expr", expr);
        return NULL;
    }
    return e;
}

void
where_free(struct where_expr *e)
{
    if (!e)
        return;
    where_free(e->a);
    where_free(e->b);
    free(e->field);
    free(e->value);
    free(e);
}

static bool
field_matches(const struct xclass *cls, const void *rec, const char *name, const char *value)
{
    char wire[128];
    size_t n = 0;
    for (const char *s = name; *s && n < sizeof(wire) - 1; s++) {
        if (s[0] == '_' && s[1] == '_')
            s++;
        wire[n++] = *s;
    }
    wire[n] = '\0';
    const struct xfield *f = xclass_wire_field(cls, wire);
    if (!f)
        return false;
    const void *p = xrecord_field_cptr(rec, f);
    char buf[64];
    switch (f->type->kind) {
    case XT_STRING:
    case XT_REF:
        return strcmp(*(char *const *)p, value) == 0;
    case XT_ENUM:
        return strcasecmp(xenum_name(f->type->en, *(const int *)p), value) == 0;
    case XT_BOOL:
        return strcasecmp(*(const bool *)p ? "true" : "false", value) == 0;
    case XT_INT:
        snprintf(buf, sizeof(buf), "%" PRId64, *(const int64_t *)p);
        return strcmp(buf, value) == 0;
    default:
        return false;
    }
}

bool
where_match(const struct where_expr *e, const struct xclass *cls, const void *rec)
{
    switch (e->op) {
    case W_TRUE:
        return true;
    case W_FALSE:
        return false;
    case W_FIELD:
        return field_matches(cls, rec, e->field, e->value);
    case W_AND:
        return where_match(e->a, cls, rec) && where_match(e->b, cls, rec);
    case W_OR:
        return where_match(e->a, cls, rec) || where_match(e->b, cls, rec);
    case W_NOT:
        return !where_match(e->a, cls, rec);
    }
    return false;
}
