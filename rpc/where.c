/* rpc/where.c - the expression language of get_all_records_where (used by xe).
 *
 * Grammar (xapi's ocaml/database/db_filter_parse.mly, restated):
 *   expr   := term ("or" term)*
 *   term   := factor ("and" factor)*
 *   factor := "not" factor | "(" expr ")" | "true" | "false" | "field" STR "=" STR
 * Keywords are matched in any case. STR is a double-quoted string in which a
 * backslash takes the next character literally (\" and \\). A field name uses
 * "__" where the model namespaces ("name__label"); a field the class lacks
 * matches nothing. Values compare as their wire text (enums by name, any case).
 * (xapi gives and/or one precedence, left to right, and allows no escapes;
 * this stricter reading is the one xe's expressions, a single and-chain of
 * field terms, mean the same under.)
 *
 * The expression is untrusted text from any read-only session, up to the
 * HTTP body limit (http/http.h), so:
 *  (1) a chain of and/or is one node with n children, built in a loop: the
 *      tree is no deeper than its nesting, and parsing, matching and freeing
 *      recurse at most a few frames per level of parentheses or `not`;
 *  (2) nesting is at most WHERE_MAX_DEPTH and the terms at most
 *      WHERE_MAX_TERMS; the parse stops at the first term over either, so a
 *      refused expression costs no more than an accepted one;
 *  (3) every allocation is sized by what it holds (a literal its own bytes, a
 *      chain its children), so memory is linear in the text.
 * Errors have the shape xapi gives a malformed expression, INVALID_VALUE
 * [expr, reason] (ocaml/xapi/exnHelper.ml maps Db_filter.Expression_error
 * so); xapi has no limits, so an expression over one is refused the same
 * way, with a reason that says which.
 */
#include "rpc/where.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "xapi_errors.h"

#define STR_(x) #x
#define XSTR(x) STR_(x)

enum where_op { W_TRUE, W_FALSE, W_FIELD, W_AND, W_OR, W_NOT };

struct where_node {
    enum where_op op;
    const struct xfield *field; /* W_FIELD: NULL when the class has no such field */
    char *value;                /* W_FIELD */
    size_t n;                   /* W_AND, W_OR: children; W_NOT: 1 */
    struct where_node **kids;
};

struct where_expr {
    const struct xclass *cls;
    struct where_node *root;
};

struct parser {
    const char *start, *p;
    const struct xclass *cls;
    size_t n_terms;
    const char *why; /* first error, static text; NULL while all is well */
    size_t why_at;   /* its offset in the text */
};

static void
node_free(struct where_node *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->n; i++)
        node_free(e->kids[i]); /* depth bounded by (1) and (2) */
    free(e->kids);
    free(e->value);
    free(e);
}

static void *
fail(struct parser *ps, const char *why)
{
    if (!ps->why) {
        ps->why = why;
        ps->why_at = (size_t)(ps->p - ps->start);
    }
    return NULL;
}

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

/* A double-quoted literal, unescaped, in a buffer of exactly its size (3). */
static char *
string_lit(struct parser *ps)
{
    skip_space(ps);
    if (*ps->p != '"')
        return fail(ps, "expected a double-quoted string");
    const char *s = ps->p + 1;
    size_t n = 0;
    for (; *s && *s != '"'; s++, n++)
        if (*s == '\\' && s[1])
            s++;
    if (*s != '"')
        return fail(ps, "unterminated string");
    char *out = malloc(n + 1);
    if (!out)
        return fail(ps, "out of memory");
    n = 0;
    for (s = ps->p + 1; *s != '"'; s++) {
        if (*s == '\\' && s[1])
            s++;
        out[n++] = *s;
    }
    out[n] = '\0';
    ps->p = s + 1;
    return out;
}

/* The class's field for an expression's name, each "__" standing for "_":
 * *@out, NULL when the class has none. false when out of memory. */
static bool
resolve_field(const struct xclass *cls, const char *name, const struct xfield **out)
{
    char *wire = malloc(strlen(name) + 1);
    if (!wire)
        return false;
    size_t n = 0;
    for (const char *s = name; *s; s++) {
        if (s[0] == '_' && s[1] == '_')
            s++;
        wire[n++] = *s;
    }
    wire[n] = '\0';
    *out = cls ? xclass_wire_field(cls, wire) : NULL; /* internal fields are not the wire's */
    free(wire);
    return true;
}

static struct where_node *
node_new(struct parser *ps, enum where_op op)
{
    struct where_node *e = calloc(1, sizeof(*e));
    if (!e)
        return fail(ps, "out of memory");
    e->op = op;
    return e;
}

/* A leaf: counts against WHERE_MAX_TERMS before anything is allocated (2). */
static struct where_node *
parse_term(struct parser *ps, enum where_op op, const char *at)
{
    if (++ps->n_terms > WHERE_MAX_TERMS) {
        ps->p = at; /* the error names where the first term too many starts */
        return fail(ps, "more than " XSTR(WHERE_MAX_TERMS) " terms");
    }
    struct where_node *e = node_new(ps, op);
    if (!e || op != W_FIELD)
        return e;
    char *name = string_lit(ps);
    skip_space(ps);
    if (name && *ps->p != '=')
        fail(ps, "expected =");
    if (!ps->why) {
        ps->p++;
        e->value = string_lit(ps);
    }
    if (!ps->why && !resolve_field(ps->cls, name, &e->field))
        fail(ps, "out of memory");
    free(name);
    if (ps->why) {
        node_free(e);
        return NULL;
    }
    return e;
}

static struct where_node *parse_chain(struct parser *ps, int depth, enum where_op op);

static struct where_node *
parse_factor(struct parser *ps, int depth)
{
    if (depth > WHERE_MAX_DEPTH)
        return fail(ps, "nested deeper than " XSTR(WHERE_MAX_DEPTH));
    skip_space(ps);
    if (keyword(ps, "not")) {
        struct where_node *e = node_new(ps, W_NOT);
        if (!e)
            return NULL;
        struct where_node *kid = parse_factor(ps, depth + 1);
        if (!kid || !(e->kids = malloc(sizeof(*e->kids)))) {
            node_free(kid);
            node_free(e);
            return fail(ps, "out of memory"); /* a no-op when the kid failed */
        }
        e->kids[e->n++] = kid;
        return e;
    }
    if (*ps->p == '(') {
        ps->p++;
        struct where_node *e = parse_chain(ps, depth + 1, W_OR);
        skip_space(ps);
        if (e && *ps->p != ')') {
            node_free(e);
            return fail(ps, "expected )");
        }
        if (e)
            ps->p++;
        return e;
    }
    const char *at = ps->p;
    if (keyword(ps, "true"))
        return parse_term(ps, W_TRUE, at);
    if (keyword(ps, "false"))
        return parse_term(ps, W_FALSE, at);
    if (keyword(ps, "field"))
        return parse_term(ps, W_FIELD, at);
    return fail(ps, *ps->p ? "expected not, (, true, false or field" : "unexpected end");
}

/* "a or b or c" (@op W_OR, operands and-chains) or "a and b" (W_AND,
 * operands factors) as one node with n children (1); a chain of one is its
 * operand. Recursion depth: parse_chain(OR) -> parse_chain(AND) -> factor. */
static struct where_node *
parse_chain(struct parser *ps, int depth, enum where_op op)
{
    struct where_node *first =
        op == W_OR ? parse_chain(ps, depth, W_AND) : parse_factor(ps, depth);
    if (!first || !keyword(ps, op == W_OR ? "or" : "and"))
        return first;
    struct where_node *e = node_new(ps, op);
    size_t cap = 4;
    if (!e || !(e->kids = malloc(cap * sizeof(*e->kids)))) {
        node_free(e);
        node_free(first);
        return fail(ps, "out of memory");
    }
    e->kids[e->n++] = first;
    do {
        struct where_node *next =
            op == W_OR ? parse_chain(ps, depth, W_AND) : parse_factor(ps, depth);
        if (!next) {
            node_free(e);
            return NULL;
        }
        if (e->n == cap) {
            struct where_node **grown = realloc(e->kids, 2 * cap * sizeof(*grown));
            if (!grown) {
                node_free(next);
                node_free(e);
                return fail(ps, "out of memory");
            }
            e->kids = grown;
            cap *= 2;
        }
        e->kids[e->n++] = next;
    } while (keyword(ps, op == W_OR ? "or" : "and"));
    return e;
}

/* INVALID_VALUE [expr, reason]: the expression is echoed as xapi does, but
 * cut (on a UTF-8 boundary) so a refused 4 MiB text is not sent back whole. */
static bool
raise_invalid(const struct parser *ps, struct xerr **errp)
{
    enum { SHOWN = 256 };
    char shown[SHOWN + 4];
    size_t len = strlen(ps->start);
    if (len > SHOWN) {
        len = SHOWN;
        while (len > 0 && ((unsigned char)ps->start[len] & 0xc0) == 0x80)
            len--;
    }
    memcpy(shown, ps->start, len);
    strcpy(shown + len, strlen(ps->start) > len ? "..." : "");
    char reason[128];
    snprintf(reason, sizeof(reason), "%s at offset %zu", ps->why, ps->why_at);
    return xerr_invalid_value(errp, shown, reason);
}

struct where_expr *
where_compile(const struct xclass *cls, const char *expr, struct xerr **errp)
{
    struct parser ps = {.start = expr, .p = expr, .cls = cls};
    struct where_node *root = parse_chain(&ps, 0, W_OR);
    skip_space(&ps);
    if (root && *ps.p)
        fail(&ps, *ps.p == ')' ? "unbalanced )" : "expected and, or or the end");
    struct where_expr *e = NULL;
    if (!ps.why && !(e = malloc(sizeof(*e))))
        fail(&ps, "out of memory");
    if (ps.why) {
        node_free(root);
        raise_invalid(&ps, errp);
        return NULL;
    }
    e->cls = cls;
    e->root = root;
    return e;
}

void
where_free(struct where_expr *e)
{
    if (!e)
        return;
    node_free(e->root);
    free(e);
}

static bool
field_matches(const struct xfield *f, const void *rec, const char *value)
{
    if (!f)
        return false;
    const void *p = xrecord_field_cptr(rec, f);
    char buf[24];
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

/* Recursion depth is the tree's, bounded by (1) and (2). */
static bool
node_match(const struct where_node *e, const void *rec)
{
    switch (e->op) {
    case W_TRUE:
        return true;
    case W_FALSE:
        return false;
    case W_FIELD:
        return field_matches(e->field, rec, e->value);
    case W_AND:
        for (size_t i = 0; i < e->n; i++)
            if (!node_match(e->kids[i], rec))
                return false;
        return true;
    case W_OR:
        for (size_t i = 0; i < e->n; i++)
            if (node_match(e->kids[i], rec))
                return true;
        return false;
    case W_NOT:
        return !node_match(e->kids[0], rec);
    }
    return false;
}

bool
where_match(const struct where_expr *e, const void *rec)
{
    return node_match(e->root, rec);
}
