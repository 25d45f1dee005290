/* common/xval.c - construction, lookup, comparison, copy and release of decoded wire values.
 *
 * Containers grow by doubling; a container's arrays always hold exactly n
 * owned children. Failure paths free what they were given so that parsers can
 * hand a child over and forget it.
 */
#include "common/xval.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static struct xval *
xval_alloc(enum xval_kind kind)
{
    struct xval *v = calloc(1, sizeof(*v));
    if (v)
        v->kind = kind;
    return v;
}

struct xval *
xval_new_nil(void)
{
    return xval_alloc(XVAL_NIL);
}

static struct xval *
xval_new_text(enum xval_kind kind, const char *s, size_t len)
{
    struct xval *v = xval_alloc(kind);
    if (!v)
        return NULL;
    v->str.s = malloc(len + 1);
    if (!v->str.s) {
        free(v);
        return NULL;
    }
    if (len)
        memcpy(v->str.s, s, len);
    v->str.s[len] = '\0';
    v->str.len = len;
    return v;
}

struct xval *
xval_new_stringn(const char *s, size_t len)
{
    return xval_new_text(XVAL_STRING, s, len);
}

struct xval *
xval_new_string(const char *s)
{
    return xval_new_text(XVAL_STRING, s ? s : "", s ? strlen(s) : 0);
}

struct xval *
xval_new_datetime(const char *text)
{
    return xval_new_text(XVAL_DATETIME, text ? text : "", text ? strlen(text) : 0);
}

struct xval *
xval_new_int(int64_t i)
{
    struct xval *v = xval_alloc(XVAL_INT);
    if (v)
        v->i = i;
    return v;
}

struct xval *
xval_new_double(double d)
{
    struct xval *v = xval_alloc(XVAL_DOUBLE);
    if (v)
        v->d = d;
    return v;
}

struct xval *
xval_new_bool(bool b)
{
    struct xval *v = xval_alloc(XVAL_BOOL);
    if (v)
        v->b = b;
    return v;
}

struct xval *
xval_new_array(void)
{
    return xval_alloc(XVAL_ARRAY);
}

struct xval *
xval_new_struct(void)
{
    return xval_alloc(XVAL_STRUCT);
}

/* Capacity is implicit: the next power of two >= n (0 -> 0). */
static bool
needs_growth(size_t n)
{
    return n == 0 || (n & (n - 1)) == 0;
}

static size_t
grown_capacity(size_t n)
{
    return n == 0 ? 4 : n * 2;
}

int
xval_array_append(struct xval *arr, struct xval *item)
{
    if (!item)
        return -ENOMEM;
    size_t n = arr->arr.n;
    if (needs_growth(n) && (n == 0 || n >= 4)) {
        struct xval **grown = realloc(arr->arr.items, grown_capacity(n) * sizeof(*grown));
        if (!grown) {
            xval_free(item);
            return -ENOMEM;
        }
        arr->arr.items = grown;
    }
    arr->arr.items[n] = item;
    arr->arr.n = n + 1;
    return 0;
}

int
xval_struct_append(struct xval *st, const char *key, struct xval *val)
{
    if (!val)
        return -ENOMEM;
    size_t n = st->st.n;
    if (needs_growth(n) && (n == 0 || n >= 4)) {
        size_t cap = grown_capacity(n);
        char **keys = realloc(st->st.keys, cap * sizeof(*keys));
        if (!keys) {
            xval_free(val);
            return -ENOMEM;
        }
        st->st.keys = keys;
        struct xval **vals = realloc(st->st.vals, cap * sizeof(*vals));
        if (!vals) {
            xval_free(val);
            return -ENOMEM;
        }
        st->st.vals = vals;
    }
    char *k = strdup(key);
    if (!k) {
        xval_free(val);
        return -ENOMEM;
    }
    st->st.keys[n] = k;
    st->st.vals[n] = val;
    st->st.n = n + 1;
    return 0;
}

const struct xval *
xval_struct_get(const struct xval *st, const char *key)
{
    if (!st || st->kind != XVAL_STRUCT)
        return NULL;
    for (size_t i = 0; i < st->st.n; i++)
        if (strcmp(st->st.keys[i], key) == 0)
            return st->st.vals[i];
    return NULL;
}

void
xval_free(struct xval *v)
{
    if (!v)
        return;
    switch (v->kind) {
    case XVAL_STRING:
    case XVAL_DATETIME:
        free(v->str.s);
        break;
    case XVAL_ARRAY:
        for (size_t i = 0; i < v->arr.n; i++)
            xval_free(v->arr.items[i]);
        free(v->arr.items);
        break;
    case XVAL_STRUCT:
        for (size_t i = 0; i < v->st.n; i++) {
            free(v->st.keys[i]);
            xval_free(v->st.vals[i]);
        }
        free(v->st.keys);
        free(v->st.vals);
        break;
    default:
        break;
    }
    free(v);
}

void
xval_freep(struct xval **v)
{
    xval_free(*v);
    *v = NULL;
}

struct xval *
xval_copy(const struct xval *v)
{
    if (!v)
        return NULL;
    switch (v->kind) {
    case XVAL_NIL:
        return xval_new_nil();
    case XVAL_STRING:
    case XVAL_DATETIME:
        return xval_new_text(v->kind, v->str.s, v->str.len);
    case XVAL_INT:
        return xval_new_int(v->i);
    case XVAL_DOUBLE:
        return xval_new_double(v->d);
    case XVAL_BOOL:
        return xval_new_bool(v->b);
    case XVAL_ARRAY: {
        struct xval *a = xval_new_array();
        for (size_t i = 0; a && i < v->arr.n; i++)
            if (xval_array_append(a, xval_copy(v->arr.items[i])) < 0)
                xval_freep(&a);
        return a;
    }
    case XVAL_STRUCT: {
        struct xval *s = xval_new_struct();
        for (size_t i = 0; s && i < v->st.n; i++)
            if (xval_struct_append(s, v->st.keys[i], xval_copy(v->st.vals[i])) < 0)
                xval_freep(&s);
        return s;
    }
    }
    return NULL;
}

static bool
double_same(double a, double b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    return a == b && signbit(a) == signbit(b);
}

bool
xval_equal(const struct xval *a, const struct xval *b)
{
    if (!a || !b)
        return a == b;
    if (a->kind != b->kind)
        return false;
    switch (a->kind) {
    case XVAL_NIL:
        return true;
    case XVAL_STRING:
    case XVAL_DATETIME:
        return a->str.len == b->str.len && memcmp(a->str.s, b->str.s, a->str.len) == 0;
    case XVAL_INT:
        return a->i == b->i;
    case XVAL_DOUBLE:
        return double_same(a->d, b->d);
    case XVAL_BOOL:
        return a->b == b->b;
    case XVAL_ARRAY:
        if (a->arr.n != b->arr.n)
            return false;
        for (size_t i = 0; i < a->arr.n; i++)
            if (!xval_equal(a->arr.items[i], b->arr.items[i]))
                return false;
        return true;
    case XVAL_STRUCT:
        if (a->st.n != b->st.n)
            return false;
        for (size_t i = 0; i < a->st.n; i++)
            if (strcmp(a->st.keys[i], b->st.keys[i]) != 0 ||
                !xval_equal(a->st.vals[i], b->st.vals[i]))
                return false;
        return true;
    }
    return false;
}

const char *
xval_kind_name(enum xval_kind k)
{
    switch (k) {
    case XVAL_NIL: return "nil";
    case XVAL_STRING: return "string";
    case XVAL_INT: return "int";
    case XVAL_DOUBLE: return "float";
    case XVAL_BOOL: return "bool";
    case XVAL_DATETIME: return "datetime";
    case XVAL_ARRAY: return "array";
    case XVAL_STRUCT: return "struct";
    }
    return "unknown";
}
