/* rpc/where.c - the expression language of get_all_records_where and
 * get_all_where (xe sends it; XenCenter and scripts write it by hand).
 *
 * Language, exactly xapi's (ocaml/database/db_filter_lex.mll and
 * db_filter_parse.mly):
 *   tokens: blanks are ' ', '\t' and '\n' only; the keywords true, false,
 *           field, and, or, not, in lower case (matched as the longest token,
 *           so "trueand" is TRUE AND); '=', '(', ')'; a string is '"', any
 *           bytes but '"', '"' (no escapes: a backslash is itself). Anything
 *           else cannot be lexed.
 *   value := STRING | "field" STRING
 *   expr  := value "=" value | expr "and" expr | expr "or" expr | "not" expr
 *          | "true" | "false" | "(" expr ")"
 *   and/or share one precedence and group to the left ("a or b and c" is
 *   "(a or b) and c"); not is declared first, so it binds loosest and takes
 *   the whole chain to its right ("not a and b" is "not (a and b)").
 * Errors are xapi's for Db_filter.Expression_error (ocaml/xapi/exnHelper.ml):
 * INVALID_VALUE [expr, reason], the reason OCaml's text of the exception:
 * `Failure("lexing: empty token")` when a token cannot be lexed,
 * `Stdlib.Parsing.Parse_error` when the tokens do not parse. Whichever the
 * parser meets first, as xapi's parser pulls tokens one at a time.
 *
 * Matching: a field name uses "__" where the model namespaces
 * ("name__label"); a value is compared with the field's text as xapi's
 * database stores it (Schema.Value.marshal): strings and refs as they are,
 * bools "true"/"false", ints in decimal, enums by name (in any case here),
 * sets "('a' 'b')" and maps "(('k' 'v'))" with ' and \ escaped by a
 * backslash (ocaml/libs/sexpr/sExpr.ml). A field the class lacks matches
 * nothing (xapi fails the whole call then).
 *
 * The expression is untrusted text from any read-only session, up to the
 * HTTP body limit (http/http.h), so:
 *  (1) an and/or chain is one node holding its operands and operators, built
 *      in a loop: the tree is no deeper than its nesting, and parsing,
 *      matching and freeing recurse a few frames per `(` or `not`;
 *  (2) nesting (parentheses and nots) is at most WHERE_MAX_DEPTH and the
 *      terms (true, false, =) at most WHERE_MAX_TERMS; the parse stops at the
 *      first over either, so a refused expression costs no more than an
 *      accepted one; xapi has no limits, so the reason then says which;
 *  (3) every allocation is sized by what it holds, so memory is linear in
 *      the text.
 */
#include "rpc/where.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "xapi_errors.h"

#define STR_(x) #x
#define XSTR(x) STR_(x)

#define LEX_ERROR "Failure(\"lexing: empty token\")"
#define PARSE_ERROR "Stdlib.Parsing.Parse_error"

/*==== Tokens ====*/

enum tok { T_EOF, T_EQ, T_TRUE, T_FALSE, T_LPAREN, T_RPAREN, T_FIELD, T_AND, T_OR, T_NOT,
           T_STRING, T_BAD };

struct lexer {
    const char *p;
    enum tok tok;      /* the current token */
    const char *str;   /* T_STRING: its bytes (not terminated) */
    size_t str_len;
};

static void
lex_next(struct lexer *lx)
{
    static const struct {
        const char *word;
        enum tok tok;
    } words[] = {{"true", T_TRUE}, {"false", T_FALSE}, {"field", T_FIELD},
                 {"and", T_AND},   {"or", T_OR},       {"not", T_NOT}};
    while (*lx->p == ' ' || *lx->p == '\t' || *lx->p == '\n')
        lx->p++;
    char c = *lx->p;
    if (c == '\0') {
        lx->tok = T_EOF;
        return;
    }
    if (c == '=' || c == '(' || c == ')') {
        lx->tok = c == '=' ? T_EQ : c == '(' ? T_LPAREN : T_RPAREN;
        lx->p++;
        return;
    }
    if (c == '"') {
        const char *end = strchr(lx->p + 1, '"');
        if (!end) {
            lx->tok = T_BAD;
            return;
        }
        lx->tok = T_STRING;
        lx->str = lx->p + 1;
        lx->str_len = (size_t)(end - lx->str);
        lx->p = end + 1;
        return;
    }
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        size_t n = strlen(words[i].word);
        if (strncmp(lx->p, words[i].word, n) == 0) {
            lx->tok = words[i].tok;
            lx->p += n;
            return;
        }
    }
    lx->tok = T_BAD;
}

/*==== Tree ====*/

enum where_op { W_TRUE, W_FALSE, W_EQ, W_CHAIN, W_NOT };

struct where_value {
    const struct xfield *field; /* a field: NULL when the class has none */
    bool is_field;
    char *text; /* a literal */
};

struct where_node {
    enum where_op op;
    struct where_value lhs, rhs; /* W_EQ */
    size_t n;                    /* W_CHAIN: operands; W_NOT: 1 */
    struct where_node **kids;
    bool *is_or;                 /* W_CHAIN: the operator before kids[i], i >= 1 */
};

struct where_expr {
    const struct xclass *cls;
    struct where_node *root;
};

struct parser {
    struct lexer lx;
    const char *start;
    const struct xclass *cls;
    size_t n_terms;
    const char *why; /* first error, static text; NULL while all is well */
};

static void
node_free(struct where_node *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->n; i++)
        node_free(e->kids[i]); /* depth bounded by (1) and (2) */
    free(e->kids);
    free(e->is_or);
    free(e->lhs.text);
    free(e->rhs.text);
    free(e);
}

static void *
fail(struct parser *ps, const char *why)
{
    if (!ps->why)
        ps->why = why;
    return NULL;
}

/* The error for the current token: it could not be lexed, or not parsed. */
static void *
fail_here(struct parser *ps)
{
    return fail(ps, ps->lx.tok == T_BAD ? LEX_ERROR : PARSE_ERROR);
}

static void
advance(struct parser *ps)
{
    lex_next(&ps->lx);
}

/* The class's field for an expression's name, each "__" standing for "_":
 * *@out, NULL when the class has none. false when out of memory. */
static bool
resolve_field(const struct xclass *cls, const char *name, size_t len, const struct xfield **out)
{
    char *wire = malloc(len + 1);
    if (!wire)
        return false;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (name[i] == '_' && i + 1 < len && name[i + 1] == '_')
            i++;
        wire[n++] = name[i];
    }
    wire[n] = '\0';
    *out = cls ? xclass_wire_field(cls, wire) : NULL; /* internal fields are not the wire's */
    free(wire);
    return true;
}

/* value := STRING | "field" STRING (3: a literal is a buffer of its size). */
static bool
parse_value(struct parser *ps, struct where_value *v)
{
    v->is_field = ps->lx.tok == T_FIELD;
    if (v->is_field)
        advance(ps);
    if (ps->lx.tok != T_STRING) {
        fail_here(ps);
        return false;
    }
    if (v->is_field) {
        if (!resolve_field(ps->cls, ps->lx.str, ps->lx.str_len, &v->field)) {
            fail(ps, "out of memory");
            return false;
        }
    } else if (!(v->text = strndup(ps->lx.str, ps->lx.str_len))) {
        fail(ps, "out of memory");
        return false;
    }
    advance(ps);
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

static struct where_node *parse_chain(struct parser *ps, int depth);

/* A leaf counts against WHERE_MAX_TERMS before anything is allocated (2). */
static bool
count_term(struct parser *ps)
{
    if (++ps->n_terms <= WHERE_MAX_TERMS)
        return true;
    fail(ps, "more than " XSTR(WHERE_MAX_TERMS) " terms");
    return false;
}

/* An operand of a chain: not, (...), true, false or value = value. */
static struct where_node *
parse_operand(struct parser *ps, int depth)
{
    if (depth > WHERE_MAX_DEPTH)
        return fail(ps, "nested deeper than " XSTR(WHERE_MAX_DEPTH));
    switch (ps->lx.tok) {
    case T_NOT: {
        advance(ps);
        struct where_node *e = node_new(ps, W_NOT);
        if (!e)
            return NULL;
        /* not binds loosest: its operand is the whole chain to its right */
        struct where_node *kid = parse_chain(ps, depth + 1);
        if (!kid || !(e->kids = malloc(sizeof(*e->kids)))) {
            node_free(kid);
            node_free(e);
            return fail(ps, "out of memory"); /* a no-op when the kid failed */
        }
        e->kids[e->n++] = kid;
        return e;
    }
    case T_LPAREN: {
        advance(ps);
        struct where_node *e = parse_chain(ps, depth + 1);
        if (e && ps->lx.tok != T_RPAREN) {
            node_free(e);
            return fail_here(ps);
        }
        if (e)
            advance(ps);
        return e;
    }
    case T_TRUE:
    case T_FALSE: {
        enum where_op op = ps->lx.tok == T_TRUE ? W_TRUE : W_FALSE;
        if (!count_term(ps))
            return NULL;
        advance(ps);
        return node_new(ps, op);
    }
    case T_STRING:
    case T_FIELD: {
        if (!count_term(ps))
            return NULL;
        struct where_node *e = node_new(ps, W_EQ);
        bool ok = e && parse_value(ps, &e->lhs);
        if (ok && ps->lx.tok != T_EQ)
            ok = fail_here(ps);
        if (ok) {
            advance(ps);
            ok = parse_value(ps, &e->rhs);
        }
        if (!ok) {
            node_free(e);
            return NULL;
        }
        return e;
    }
    default:
        return fail_here(ps);
    }
}

/* operand ((and|or) operand)*: one node, evaluated left to right (1); a
 * chain of one is its operand. */
static struct where_node *
parse_chain(struct parser *ps, int depth)
{
    struct where_node *first = parse_operand(ps, depth);
    if (!first || (ps->lx.tok != T_AND && ps->lx.tok != T_OR))
        return first;
    struct where_node *e = node_new(ps, W_CHAIN);
    size_t cap = 4;
    if (!e || !(e->kids = malloc(cap * sizeof(*e->kids))) ||
        !(e->is_or = malloc(cap * sizeof(*e->is_or)))) {
        node_free(e);
        node_free(first);
        return fail(ps, "out of memory");
    }
    e->is_or[0] = false;
    e->kids[e->n++] = first;
    while (ps->lx.tok == T_AND || ps->lx.tok == T_OR) {
        bool is_or = ps->lx.tok == T_OR;
        advance(ps);
        struct where_node *next = parse_operand(ps, depth);
        if (!next) {
            node_free(e);
            return NULL;
        }
        if (e->n == cap) {
            struct where_node **kids = realloc(e->kids, 2 * cap * sizeof(*kids));
            if (kids)
                e->kids = kids;
            bool *ors = kids ? realloc(e->is_or, 2 * cap * sizeof(*ors)) : NULL;
            if (ors)
                e->is_or = ors;
            if (!kids || !ors) {
                node_free(next);
                node_free(e);
                return fail(ps, "out of memory");
            }
            cap *= 2;
        }
        e->is_or[e->n] = is_or;
        e->kids[e->n++] = next;
    }
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
    return xerr_invalid_value(errp, shown, ps->why);
}

struct where_expr *
where_compile(const struct xclass *cls, const char *expr, struct xerr **errp)
{
    struct parser ps = {.lx = {.p = expr}, .start = expr, .cls = cls};
    advance(&ps);
    struct where_node *root = parse_chain(&ps, 0);
    if (root && ps.lx.tok != T_EOF)
        fail_here(&ps);
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

/*==== Matching ====*/

/* One element of a set or map as xapi's database writes it: 'text' with '
 * and \ escaped. Compared against @want from *@pos on; false on mismatch. */
static bool
sexpr_string(const char *s, const char *want, size_t *pos)
{
    if (want[(*pos)++] != '\'')
        return false;
    for (; *s; s++) {
        if ((*s == '\'' || *s == '\\') && want[(*pos)++] != '\\')
            return false;
        if (want[(*pos)++] != *s)
            return false;
    }
    return want[(*pos)++] == '\'';
}

/* The text of one scalar of type @t at @p into @buf (or a pointer into the
 * record); NULL for a type the database has no text for here. */
static const char *
scalar_text(const struct xtype *t, const void *p, char *buf, size_t len)
{
    switch (t->kind) {
    case XT_STRING:
    case XT_REF:
        return *(char *const *)p;
    case XT_ENUM:
        return xenum_name(t->en, *(const int *)p);
    case XT_BOOL:
        return *(const bool *)p ? "true" : "false";
    case XT_INT:
        snprintf(buf, len, "%" PRId64, *(const int64_t *)p);
        return buf;
    default:
        return NULL;
    }
}

static bool
collection_matches(const struct xtype *t, const void *p, const char *want)
{
    size_t pos = 0;
    char buf[24], kbuf[24];
    if (want[pos++] != '(')
        return false;
    if (t->kind == XT_SET) {
        const struct xset *s = p;
        for (size_t i = 0; i < s->n; i++) {
            const char *v = scalar_text(t->elem, (const char *)s->items + i * t->elem->size, buf,
                                        sizeof(buf));
            if (!v || (i && want[pos++] != ' ') || !sexpr_string(v, want, &pos))
                return false;
        }
    } else {
        const struct xmap *m = p;
        for (size_t i = 0; i < m->n; i++) {
            const char *k = scalar_text(t->key, (const char *)m->keys + i * t->key->size, kbuf,
                                        sizeof(kbuf));
            const char *v = scalar_text(t->elem, (const char *)m->values + i * t->elem->size,
                                        buf, sizeof(buf));
            if (!k || !v || (i && want[pos++] != ' ') || want[pos++] != '(' ||
                !sexpr_string(k, want, &pos) || want[pos++] != ' ' ||
                !sexpr_string(v, want, &pos) || want[pos++] != ')')
                return false;
        }
    }
    return want[pos++] == ')' && want[pos] == '\0';
}

/* Whether field @f of @rec reads as @want. */
static bool
field_is(const struct xfield *f, const void *rec, const char *want)
{
    if (!f)
        return false;
    const void *p = xrecord_field_cptr(rec, f);
    if (f->type->kind == XT_SET || f->type->kind == XT_MAP)
        return collection_matches(f->type, p, want);
    char buf[24];
    const char *text = scalar_text(f->type, p, buf, sizeof(buf));
    if (!text)
        return false;
    return f->type->kind == XT_ENUM ? strcasecmp(text, want) == 0 : strcmp(text, want) == 0;
}

static bool
eq_match(const struct where_node *e, const void *rec)
{
    const struct where_value *a = &e->lhs, *b = &e->rhs;
    if (!a->is_field && !b->is_field)
        return strcmp(a->text, b->text) == 0;
    if (a->is_field && b->is_field) { /* both fields: compare their texts */
        if (!a->field || !b->field || a->field->type != b->field->type)
            return false;
        char buf[24];
        const char *t = scalar_text(b->field->type, xrecord_field_cptr(rec, b->field), buf,
                                    sizeof(buf));
        return t && field_is(a->field, rec, t);
    }
    return a->is_field ? field_is(a->field, rec, b->text) : field_is(b->field, rec, a->text);
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
    case W_EQ:
        return eq_match(e, rec);
    case W_CHAIN: {
        bool acc = node_match(e->kids[0], rec);
        for (size_t i = 1; i < e->n; i++) /* left to right: ((a op b) op c) */
            acc = e->is_or[i] ? acc || node_match(e->kids[i], rec)
                              : acc && node_match(e->kids[i], rec);
        return acc;
    }
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
