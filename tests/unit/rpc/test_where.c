/* tests/unit/rpc/test_where.c - get_all_records_where's expression language
 * (rpc/where.c): what matches, what is refused and how, and that hostile
 * expressions cost bounded stack and linear memory (issue 11, findings 2, 4).
 *
 * Records are VMs built from the generated model; matching runs on this
 * thread's stack, so a recursion as deep as a 35,000-term chain would crash
 * the test (as it crashed vesseld), not just fail it.
 */
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/strbuf.h"
#include "model/xmodel.h"
#include "rpc/where.h"
#include "xapi_model.h"

static struct xapi_vm_record *vm;

static int
setup(void **state)
{
    vm = xapi_vm_record_new();
    assert_non_null(vm);
    xstr_set(&vm->name_label, "web \"one\"");
    xstr_set(&vm->name_description, "a\\b");
    vm->power_state = XAPI_VM_POWER_STATE_RUNNING;
    vm->is_a_template = false;
    vm->VCPUs_max = 4;
    return 0;
}

static int
teardown(void **state)
{
    xrecord_free(&xapi_class_vm, vm);
    return 0;
}

/* 1 match, 0 no match, -1 refused (*@err then holds the error). */
static int
eval(const char *expr, struct xerr **err)
{
    struct where_expr *e = where_compile(&xapi_class_vm, expr, err);
    if (!e)
        return -1;
    int r = where_match(e, vm);
    where_free(e);
    return r;
}

static void
assert_refused(const char *expr, const char *reason_part)
{
    struct xerr *err = NULL;
    assert_int_equal(eval(expr, &err), -1);
    assert_non_null(err);
    assert_string_equal(err->code, "INVALID_VALUE");
    assert_int_equal(err->n_params, 2);
    assert_true(strlen(err->params[0]) <= 256 + 3);
    assert_int_equal(strncmp(err->params[0], expr, strlen(err->params[0]) > 256 ? 256 : strlen(err->params[0])), 0);
    if (!strstr(err->params[1], reason_part))
        fail_msg("reason %s lacks %s", err->params[1], reason_part);
    xerr_free(err);
}

static void
test_basics(void **state)
{
    assert_int_equal(eval("true", NULL), 1);
    assert_int_equal(eval("false", NULL), 0);
    assert_int_equal(eval(" \t\ntrue\n", NULL), 1);
    assert_int_equal(eval("field \"power_state\" = \"Running\"", NULL), 1);
    assert_int_equal(eval("field \"power_state\" = \"running\"", NULL), 1); /* enums any case */
    assert_int_equal(eval("field \"power_state\" = \"Halted\"", NULL), 0);
    assert_int_equal(eval("field \"VCPUs__max\" = \"4\"", NULL), 1);
    assert_int_equal(eval("field \"is_a_template\" = \"false\"", NULL), 1);
    assert_int_equal(eval("field \"no_such_field\" = \"\"", NULL), 0);
    assert_int_equal(eval("not field \"no_such_field\" = \"\"", NULL), 1);
    /* either side may be a field or a literal */
    assert_int_equal(eval("\"4\" = field \"VCPUs__max\"", NULL), 1);
    assert_int_equal(eval("\"a\" = \"a\"", NULL), 1);
    assert_int_equal(eval("\"a\" = \"b\"", NULL), 0);
    assert_int_equal(eval("field \"name__label\" = field \"name__label\"", NULL), 1);
    /* no blank is needed between tokens; keywords are the longest match */
    assert_int_equal(eval("field\"VCPUs__max\"=\"4\"and(true)", NULL), 1);
    assert_int_equal(eval("notfalse", NULL), 1);
    assert_int_equal(eval("(true)or(false)", NULL), 1);
}

/* xapi's db_filter_parse.mly: and/or one precedence, to the left; not the
 * loosest, taking the whole chain to its right. */
static void
test_precedence(void **state)
{
    assert_int_equal(eval("true or false and false", NULL), 0);   /* (t or f) and f */
    assert_int_equal(eval("true or (false and false)", NULL), 1);
    assert_int_equal(eval("false and false or true", NULL), 1);   /* (f and f) or t */
    assert_int_equal(eval("false and (false or true)", NULL), 0);
    assert_int_equal(eval("not false and false", NULL), 1);       /* not (f and f) */
    assert_int_equal(eval("(not false) and false", NULL), 0);
    assert_int_equal(eval("true and not true or true", NULL), 0); /* t and not (t or t) */
    assert_int_equal(eval("not not true", NULL), 1);
    assert_int_equal(eval("false or false or false or true", NULL), 1);
    assert_int_equal(eval("true and true and true and false", NULL), 0);
}

/* A task's owner is kept in the store, never on the wire: an expression
 * cannot name it, so it cannot be probed one guess at a time. */
static void
test_internal_fields_unnamed(void **state)
{
    struct xapi_task_record *task = xapi_task_record_new();
    assert_non_null(task);
    xstr_set(&task->owner, "root");
    xstr_set(&task->name_label, "t");
    struct where_expr *e = where_compile(&xapi_class_task, "field \"owner\" = \"root\"", NULL);
    assert_non_null(e);
    assert_false(where_match(e, task));
    where_free(e);
    e = where_compile(&xapi_class_task, "field \"name__label\" = \"t\"", NULL);
    assert_true(where_match(e, task));
    where_free(e);
    xrecord_free(&xapi_class_task, task);
}

/* Strings have no escapes: a backslash is a byte like any other, and a
 * string ends at the next double quote. */
static void
test_strings(void **state)
{
    assert_int_equal(eval("field \"name__description\" = \"a\\b\"", NULL), 1);
    assert_int_equal(eval("field \"name__description\" = \"a\\\\b\"", NULL), 0);
    assert_int_equal(eval("field \"name__label\" = \"web \"one\"\"", NULL), -1);
    assert_int_equal(eval("field \"name__label\" = \"line\none\"", NULL), 0);
    /* sets and maps as xapi's database writes them (sExpr.ml) */
    xstr_set(&vm->name_label, "it's");
    assert_int_equal(eval("field \"tags\" = \"()\"", NULL), 1);
    assert_int_equal(eval("field \"other_config\" = \"()\"", NULL), 1);
    assert_int_equal(xset_add_str((struct xset *)&vm->tags, "a'b"), 0);
    assert_int_equal(xset_add_str((struct xset *)&vm->tags, "c"), 0);
    assert_int_equal(eval("field \"tags\" = \"('a\\'b' 'c')\"", NULL), 1);
    assert_int_equal(eval("field \"tags\" = \"('a'b' 'c')\"", NULL), 0);
    assert_int_equal(xmap_put_str((struct xmap *)&vm->other_config, "k", "v\\"), 0);
    assert_int_equal(eval("field \"other_config\" = \"(('k' 'v\\\\'))\"", NULL), 1);
    assert_int_equal(eval("field \"other_config\" = \"(('k' 'v'))\"", NULL), 0);
}

static void
test_malformed(void **state)
{
    static const char *const lexing[] = {
        "TRUE", "True", "true\r", "field 'x' = 'y'", "field \"x", "trueish", "true and bogus",
        "field x = \"y\"", "field \"a\" = \"b\" && true",
    };
    static const char *const parsing[] = {
        "", "   ", "field \"x\" =", "field \"x\" \"y\"", "true and", "true or or true",
        "(true", "true)", "true true", "not", "\"x\"", "field \"x\"", "field = \"x\"",
        "field \"a\" = \"b\" and (field \"a\" = ", "()", "true = true", "\"a\" = true",
        "field field \"a\" = \"b\"", "\"a\" == \"b\"",
    };
    for (size_t i = 0; i < sizeof(lexing) / sizeof(lexing[0]); i++)
        assert_refused(lexing[i], "Failure(\"lexing: empty token\")");
    for (size_t i = 0; i < sizeof(parsing) / sizeof(parsing[0]); i++)
        assert_refused(parsing[i], "Stdlib.Parsing.Parse_error");
    /* exactly xapi's error: INVALID_VALUE [the expression, OCaml's text] */
    struct xerr *err = NULL;
    assert_int_equal(eval("true and bogus", &err), -1);
    assert_string_equal(err->params[0], "true and bogus");
    assert_string_equal(err->params[1], "Failure(\"lexing: empty token\")");
    xerr_free(err);
    err = NULL;
    assert_int_equal(eval("true true", &err), -1);
    assert_string_equal(err->params[1], "Stdlib.Parsing.Parse_error");
    xerr_free(err);
    /* the first bad token decides, as xapi's parser pulls one at a time */
    assert_refused("true true X", "Stdlib.Parsing.Parse_error");
    assert_refused("true X true", "lexing: empty token");
}

/* Builds "T sep T sep ... T" with @n terms. */
static char *
chain(const char *term, const char *sep, size_t n)
{
    struct strbuf sb = STRBUF_INIT;
    for (size_t i = 0; i < n; i++) {
        if (i)
            strbuf_puts(&sb, sep);
        strbuf_puts(&sb, term);
    }
    return strbuf_steal(&sb, NULL);
}

static void
test_long_chains(void **state)
{
    /* The largest accepted: WHERE_MAX_TERMS terms, matched without recursion
     * per term (the last term decides, so every term is visited). */
    char *s = chain("false", " or ", WHERE_MAX_TERMS - 1);
    char *t = NULL;
    assert_true(asprintf(&t, "%s or field \"power_state\" = \"Running\"", s) > 0);
    assert_int_equal(eval(t, NULL), 1);
    free(s);
    free(t);
    s = chain("true", " and ", WHERE_MAX_TERMS);
    assert_int_equal(eval(s, NULL), 1);
    free(s);
    s = chain("true and false", " or ", WHERE_MAX_TERMS / 2);
    assert_int_equal(eval(s, NULL), 0);
    free(s);
    /* One over, and the attack's 35,000 (finding 2): refused, not crashed. */
    s = chain("true", " or ", WHERE_MAX_TERMS + 1);
    assert_refused(s, "more than 1024 terms");
    free(s);
    s = chain("field \"name__label\" = \"x\"", " and ", 35000);
    assert_refused(s, "more than 1024 terms");
    free(s);
    s = chain("true", " or ", 35000);
    assert_refused(s, "more than 1024 terms");
    free(s);
}

/* "not not ... x" and "((( x )))" with @n levels. */
static char *
nested(const char *open, const char *close, size_t n, const char *inner)
{
    struct strbuf sb = STRBUF_INIT;
    for (size_t i = 0; i < n; i++)
        strbuf_puts(&sb, open);
    strbuf_puts(&sb, inner);
    for (size_t i = 0; i < n; i++)
        strbuf_puts(&sb, close);
    return strbuf_steal(&sb, NULL);
}

static void
test_deep_nesting(void **state)
{
    char *s = nested("(", ")", WHERE_MAX_DEPTH, "true");
    assert_int_equal(eval(s, NULL), 1);
    free(s);
    s = nested("not ", "", WHERE_MAX_DEPTH, "true");
    assert_int_equal(eval(s, NULL), 1); /* an even number of nots */
    free(s);
    s = nested("(not ", ")", WHERE_MAX_DEPTH / 2, "false");
    assert_int_equal(eval(s, NULL), 0);
    free(s);
    s = nested("(true and (false or ", "))", WHERE_MAX_DEPTH / 2, "true"); /* two levels each */
    assert_int_equal(eval(s, NULL), 1);
    free(s);
    s = nested("(", ")", WHERE_MAX_DEPTH + 1, "true");
    assert_refused(s, "nested deeper than 64");
    free(s);
    s = nested("not ", "", WHERE_MAX_DEPTH + 1, "true");
    assert_refused(s, "nested deeper than 64");
    free(s);
    /* Far deeper than any stack would survive unbounded: refused at 65. */
    s = nested("(", ")", 1000000, "true");
    assert_refused(s, "nested deeper than 64");
    free(s);
    s = nested("not ", "", 1000000, "true");
    assert_refused(s, "nested deeper than 64");
    free(s);
}

static size_t
heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

/* Finding 4: a literal allocated the rest of the text, so n strings cost
 * n * len bytes. Now a compiled expression holds about its own size. */
static void
test_memory_linear(void **state)
{
    /* 1,000 terms (2,000 literals) in a 4 MiB-class text: the literals are
     * long so that "the rest of the text" per literal would be megabytes. */
    struct strbuf sb = STRBUF_INIT;
    char lit[2001];
    memset(lit, 'v', sizeof(lit) - 1);
    lit[sizeof(lit) - 1] = '\0';
    for (int i = 0; i < 1000; i++)
        strbuf_printf(&sb, "%sfield \"name__label\" = \"%s\"", i ? " or " : "", lit);
    size_t len = sb.len;
    char *text = strbuf_steal(&sb, NULL);
    size_t before = heap_in_use();
    struct xerr *err = NULL;
    struct where_expr *e = where_compile(&xapi_class_vm, text, &err);
    assert_non_null(e);
    size_t held = heap_in_use() - before;
    print_message("# %zu-byte expression holds %zu bytes compiled\n", len, held);
    assert_true(held < 2 * len);
    assert_int_equal(where_match(e, vm), 0);
    where_free(e);
    /* The refused attack shape (many short literals past the term limit)
     * leaves nothing behind. */
    free(text);
    text = chain("field \"name__label\" = \"yyyyyyyy\"", " or ", 120000);
    before = heap_in_use();
    assert_null(where_compile(&xapi_class_vm, text, &err));
    assert_true(heap_in_use() <= before + 1024); /* the error itself */
    xerr_free(err);
    free(text);
}

int
main(void)
{
    if (xmodel_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_basics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_precedence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_strings, setup, teardown),
        cmocka_unit_test(test_internal_fields_unnamed),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_chains, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deep_nesting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory_linear, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
