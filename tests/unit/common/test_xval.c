/* tests/unit/common/test_xval.c - the decoded value tree: build, look up,
 * compare, copy, free (leaks and double frees show under the sanitizer build).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xval.h"

static void
test_scalars(void **state)
{
    (void)state;
    struct xval *v = xval_new_string("abc");
    assert_int_equal(v->kind, XVAL_STRING);
    assert_string_equal(v->str.s, "abc");
    assert_int_equal(v->str.len, 3);
    xval_free(v);
    v = xval_new_string(NULL);
    assert_string_equal(v->str.s, "");
    assert_int_equal(v->str.len, 0);
    xval_free(v);
    v = xval_new_stringn("abcdef", 2); /* copies exactly len bytes, NUL-terminated */
    assert_string_equal(v->str.s, "ab");
    assert_int_equal(v->str.len, 2);
    xval_free(v);
    v = xval_new_datetime("20260821T02:00:23Z");
    assert_int_equal(v->kind, XVAL_DATETIME);
    assert_string_equal(v->str.s, "20260821T02:00:23Z");
    xval_free(v);
    v = xval_new_int(INT64_MIN);
    assert_true(v->i == INT64_MIN);
    xval_free(v);
    v = xval_new_double(-2.5);
    assert_true(v->d == -2.5);
    xval_free(v);
    v = xval_new_bool(true);
    assert_true(v->b);
    xval_free(v);
    v = xval_new_nil();
    assert_int_equal(v->kind, XVAL_NIL);
    xval_freep(&v);
    assert_null(v);
    xval_free(NULL);
}

static void
test_containers_grow(void **state)
{
    (void)state;
    struct xval *a = xval_new_array();
    struct xval *s = xval_new_struct();
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(xval_array_append(a, xval_new_int(i)), 0);
        char key[16];
        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(xval_struct_append(s, key, xval_new_int(i * 2)), 0);
    }
    assert_int_equal(a->arr.n, 1000);
    assert_int_equal(s->st.n, 1000);
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(a->arr.items[i]->i, i);
        char key[16];
        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(xval_struct_get(s, key)->i, i * 2);
    }
    assert_null(xval_struct_get(s, "missing"));
    assert_null(xval_struct_get(a, "k1"));
    assert_null(xval_struct_get(NULL, "k1"));
    /* a NULL item (failed constructor) is refused */
    assert_int_equal(xval_array_append(a, NULL), -ENOMEM);
    assert_int_equal(xval_struct_append(s, "x", NULL), -ENOMEM);
    assert_int_equal(a->arr.n, 1000);
    xval_free(a);
    xval_free(s);
}

static void
test_duplicate_keys_kept_in_order(void **state)
{
    (void)state;
    struct xval *s = xval_new_struct();
    assert_int_equal(xval_struct_append(s, "a", xval_new_int(1)), 0);
    assert_int_equal(xval_struct_append(s, "b", xval_new_int(2)), 0);
    assert_int_equal(xval_struct_append(s, "a", xval_new_int(3)), 0);
    assert_int_equal(s->st.n, 3);
    assert_int_equal(xval_struct_get(s, "a")->i, 1); /* the first wins */
    assert_string_equal(s->st.keys[2], "a");
    xval_free(s);
}

static struct xval *
sample(void)
{
    struct xval *s = xval_new_struct();
    struct xval *a = xval_new_array();
    xval_array_append(a, xval_new_string("x"));
    xval_array_append(a, xval_new_double(NAN));
    xval_array_append(a, xval_new_nil());
    xval_struct_append(s, "list", a);
    xval_struct_append(s, "t", xval_new_datetime("19700101T00:00:00Z"));
    xval_struct_append(s, "b", xval_new_bool(false));
    xval_struct_append(s, "i", xval_new_int(-1));
    xval_struct_append(s, "e", xval_new_struct());
    return s;
}

static void
test_copy_and_equal(void **state)
{
    (void)state;
    struct xval *s = sample();
    struct xval *c = xval_copy(s);
    assert_non_null(c);
    assert_ptr_not_equal(c, s);
    assert_true(xval_equal(s, c));
    assert_true(xval_equal(NULL, NULL));
    assert_false(xval_equal(s, NULL));
    /* a deep copy: changing the copy leaves the original */
    c->st.vals[0]->arr.items[0]->str.s[0] = 'y';
    assert_false(xval_equal(s, c));
    assert_string_equal(s->st.vals[0]->arr.items[0]->str.s, "x");
    xval_free(c);

    struct xval *x = xval_new_string("1"), *y = xval_new_int(1);
    assert_false(xval_equal(x, y)); /* kinds differ */
    xval_free(x);
    xval_free(y);
    x = xval_new_string("19700101T00:00:00Z");
    y = xval_new_datetime("19700101T00:00:00Z");
    assert_false(xval_equal(x, y));
    xval_free(x);
    xval_free(y);
    x = xval_new_double(0.0);
    y = xval_new_double(-0.0);
    assert_false(xval_equal(x, y));
    xval_free(x);
    xval_free(y);
    x = xval_new_stringn("a\0b", 3);
    y = xval_new_stringn("a\0c", 3);
    assert_false(xval_equal(x, y));
    xval_free(x);
    xval_free(y);
    /* order of members matters */
    x = xval_new_struct();
    y = xval_new_struct();
    xval_struct_append(x, "a", xval_new_nil());
    xval_struct_append(x, "b", xval_new_nil());
    xval_struct_append(y, "b", xval_new_nil());
    xval_struct_append(y, "a", xval_new_nil());
    assert_false(xval_equal(x, y));
    xval_free(x);
    xval_free(y);
    assert_null(xval_copy(NULL));
    xval_free(s);
}

static void
test_kind_names(void **state)
{
    (void)state;
    assert_string_equal(xval_kind_name(XVAL_STRING), "string");
    assert_string_equal(xval_kind_name(XVAL_INT), "int");
    assert_string_equal(xval_kind_name(XVAL_DOUBLE), "float");
    assert_string_equal(xval_kind_name(XVAL_BOOL), "bool");
    assert_string_equal(xval_kind_name(XVAL_DATETIME), "datetime");
    assert_string_equal(xval_kind_name(XVAL_ARRAY), "array");
    assert_string_equal(xval_kind_name(XVAL_STRUCT), "struct");
    assert_string_equal(xval_kind_name(XVAL_NIL), "nil");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalars),
        cmocka_unit_test(test_containers_grow),
        cmocka_unit_test(test_duplicate_keys_kept_in_order),
        cmocka_unit_test(test_copy_and_equal),
        cmocka_unit_test(test_kind_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
