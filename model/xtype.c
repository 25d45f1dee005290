/* model/xtype.c - free, copy, compare, encode and decode any XenAPI value by its
 * descriptor.
 *
 * The descriptors (build/generated/xapi_model.c) say what a field's C value
 * looks like (layouts: model/xtype.h); these functions are the only code that
 * walks them, so every class and field gets the same wire rules
 * (xapi's doc/content/xen-api/wire-protocol.md): ints accepted as decimal strings, enums in
 * any case and written in their canonical spelling, refs checked for the
 * OpaqueRef: shape, datetimes in the forms clients send.
 *
 * Defaults: each class has a template record built once from the schema's
 * defaults (xmodel_init); xrecord_new copies it.
 */
#include "model/xtype.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "model/xmodel.h"
#include "wire/jsonrpc.h"
#include "xapi_errors.h"

#define XAPI_NULL_REF "OpaqueRef:NULL"

/* ------------------------------------------------------------------ clear/init */

void
xtype_value_clear(const struct xtype *t, void *p)
{
    switch (t->kind) {
    case XT_STRING:
    case XT_REF: {
        char **s = p;
        free(*s);
        *s = NULL;
        break;
    }
    case XT_SET: {
        struct xset *s = p;
        for (size_t i = 0; i < s->n; i++)
            xtype_value_clear(t->elem, (char *)s->items + i * t->elem->size);
        free(s->items);
        s->items = NULL;
        s->n = 0;
        break;
    }
    case XT_MAP: {
        struct xmap *m = p;
        for (size_t i = 0; i < m->n; i++) {
            xtype_value_clear(t->key, (char *)m->keys + i * t->key->size);
            xtype_value_clear(t->elem, (char *)m->values + i * t->elem->size);
        }
        free(m->keys);
        free(m->values);
        m->keys = m->values = NULL;
        m->n = 0;
        break;
    }
    case XT_RECORD: {
        void **r = p;
        if (*r && t->cls)
            xrecord_free(t->cls, *r);
        *r = NULL;
        break;
    }
    case XT_OPTION: {
        void **o = p;
        if (*o) {
            xtype_value_clear(t->elem, *o);
            free(*o);
        }
        *o = NULL;
        break;
    }
    default:
        memset(p, 0, t->size);
        break;
    }
}

int
xtype_value_init(const struct xtype *t, void *p)
{
    memset(p, 0, t->size);
    switch (t->kind) {
    case XT_STRING:
        return (*(char **)p = strdup("")) ? 0 : -ENOMEM;
    case XT_REF:
        return (*(char **)p = strdup(XAPI_NULL_REF)) ? 0 : -ENOMEM;
    case XT_RECORD:
        if (!t->cls)
            return 0;
        return (*(void **)p = xrecord_new(t->cls)) ? 0 : -ENOMEM;
    default:
        return 0;
    }
}

/* ------------------------------------------------------------------ copy */

int
xtype_value_copy(const struct xtype *t, void *dst, const void *src)
{
    switch (t->kind) {
    case XT_STRING:
    case XT_REF: {
        const char *s = *(char *const *)src;
        *(char **)dst = strdup(s ? s : "");
        return *(char **)dst ? 0 : -ENOMEM;
    }
    case XT_SET: {
        const struct xset *s = src;
        struct xset *d = dst;
        d->n = 0;
        d->items = NULL;
        if (s->n == 0)
            return 0;
        d->items = calloc(s->n, t->elem->size);
        if (!d->items)
            return -ENOMEM;
        for (size_t i = 0; i < s->n; i++) {
            if (xtype_value_copy(t->elem, (char *)d->items + i * t->elem->size,
                                 (const char *)s->items + i * t->elem->size) < 0) {
                xtype_value_clear(t, d);
                return -ENOMEM;
            }
            d->n = i + 1;
        }
        return 0;
    }
    case XT_MAP: {
        const struct xmap *s = src;
        struct xmap *d = dst;
        d->n = 0;
        d->keys = d->values = NULL;
        if (s->n == 0)
            return 0;
        d->keys = calloc(s->n, t->key->size);
        d->values = calloc(s->n, t->elem->size);
        if (!d->keys || !d->values) {
            xtype_value_clear(t, d);
            return -ENOMEM;
        }
        for (size_t i = 0; i < s->n; i++) {
            if (xtype_value_copy(t->key, (char *)d->keys + i * t->key->size,
                                 (const char *)s->keys + i * t->key->size) < 0)
                goto fail;
            if (xtype_value_copy(t->elem, (char *)d->values + i * t->elem->size,
                                 (const char *)s->values + i * t->elem->size) < 0) {
                xtype_value_clear(t->key, (char *)d->keys + i * t->key->size);
                goto fail;
            }
            d->n = i + 1;
        }
        return 0;
    fail:
        xtype_value_clear(t, d);
        return -ENOMEM;
    }
    case XT_RECORD: {
        const void *r = *(void *const *)src;
        *(void **)dst = NULL;
        if (!r || !t->cls)
            return 0;
        *(void **)dst = xrecord_copy(t->cls, r);
        return *(void **)dst ? 0 : -ENOMEM;
    }
    case XT_OPTION: {
        const void *o = *(void *const *)src;
        *(void **)dst = NULL;
        if (!o)
            return 0;
        void *n = calloc(1, t->elem->size);
        if (!n || xtype_value_copy(t->elem, n, o) < 0) {
            free(n);
            return -ENOMEM;
        }
        *(void **)dst = n;
        return 0;
    }
    default:
        memcpy(dst, src, t->size);
        return 0;
    }
}

/* ------------------------------------------------------------------ equal */

bool
xtype_value_equal(const struct xtype *t, const void *a, const void *b)
{
    switch (t->kind) {
    case XT_STRING:
    case XT_REF: {
        const char *x = *(char *const *)a, *y = *(char *const *)b;
        return strcmp(x ? x : "", y ? y : "") == 0;
    }
    case XT_INT:
    case XT_DATETIME:
        return *(const int64_t *)a == *(const int64_t *)b;
    case XT_FLOAT:
        return *(const double *)a == *(const double *)b;
    case XT_BOOL:
        return *(const bool *)a == *(const bool *)b;
    case XT_ENUM:
        return *(const int *)a == *(const int *)b;
    case XT_SET: {
        const struct xset *x = a, *y = b;
        if (x->n != y->n)
            return false;
        for (size_t i = 0; i < x->n; i++)
            if (!xtype_value_equal(t->elem, (const char *)x->items + i * t->elem->size,
                                   (const char *)y->items + i * t->elem->size))
                return false;
        return true;
    }
    case XT_MAP: {
        const struct xmap *x = a, *y = b;
        if (x->n != y->n)
            return false;
        for (size_t i = 0; i < x->n; i++)
            if (!xtype_value_equal(t->key, (const char *)x->keys + i * t->key->size,
                                   (const char *)y->keys + i * t->key->size) ||
                !xtype_value_equal(t->elem, (const char *)x->values + i * t->elem->size,
                                   (const char *)y->values + i * t->elem->size))
                return false;
        return true;
    }
    case XT_RECORD: {
        const void *x = *(void *const *)a, *y = *(void *const *)b;
        if (!x || !y || !t->cls)
            return x == y;
        for (size_t i = 0; i < t->cls->n_fields; i++) {
            const struct xfield *f = &t->cls->fields[i];
            if (!xtype_value_equal(f->type, xrecord_field_cptr(x, f), xrecord_field_cptr(y, f)))
                return false;
        }
        return true;
    }
    case XT_OPTION: {
        const void *x = *(void *const *)a, *y = *(void *const *)b;
        if (!x || !y)
            return x == y;
        return xtype_value_equal(t->elem, x, y);
    }
    }
    return false;
}

/* ------------------------------------------------------------------ encode */

/* Map keys travel as strings whatever their type (xapi's doc/content/xen-api/wire-protocol.md). */
static void
key_to_text(const struct xtype *t, const void *p, char *buf, size_t len, const char **out)
{
    switch (t->kind) {
    case XT_STRING:
    case XT_REF:
        *out = *(char *const *)p ? *(char *const *)p : "";
        return;
    case XT_INT:
        snprintf(buf, len, "%" PRId64, *(const int64_t *)p);
        break;
    case XT_DATETIME:
        if (len >= 18)
            wire_format_datetime((time_t) * (const int64_t *)p, buf);
        break;
    case XT_FLOAT:
        snprintf(buf, len, "%.16g", *(const double *)p);
        break;
    case XT_BOOL:
        snprintf(buf, len, "%s", *(const bool *)p ? "true" : "false");
        break;
    case XT_ENUM:
        snprintf(buf, len, "%s", xenum_name(t->en, *(const int *)p));
        break;
    default:
        snprintf(buf, len, "?");
        break;
    }
    *out = buf;
}

void
xtype_value_encode(const struct xtype *t, const void *p, struct wire_writer *w)
{
    switch (t->kind) {
    case XT_STRING:
    case XT_REF:
        wire_string(w, *(char *const *)p);
        break;
    case XT_INT:
        wire_int(w, *(const int64_t *)p);
        break;
    case XT_FLOAT:
        wire_double(w, *(const double *)p);
        break;
    case XT_BOOL:
        wire_bool(w, *(const bool *)p);
        break;
    case XT_DATETIME:
        wire_datetime(w, (time_t) * (const int64_t *)p);
        break;
    case XT_ENUM:
        wire_string(w, xenum_name(t->en, *(const int *)p));
        break;
    case XT_SET: {
        const struct xset *s = p;
        wire_begin_array(w);
        for (size_t i = 0; i < s->n; i++)
            xtype_value_encode(t->elem, (const char *)s->items + i * t->elem->size, w);
        wire_end_array(w);
        break;
    }
    case XT_MAP: {
        const struct xmap *m = p;
        char buf[64];
        wire_begin_struct(w);
        for (size_t i = 0; i < m->n; i++) {
            const char *k;
            key_to_text(t->key, (const char *)m->keys + i * t->key->size, buf, sizeof(buf), &k);
            wire_member(w, k);
            xtype_value_encode(t->elem, (const char *)m->values + i * t->elem->size, w);
        }
        wire_end_struct(w);
        break;
    }
    case XT_RECORD: {
        const void *r = *(void *const *)p;
        if (r && t->cls)
            xrecord_encode(t->cls, r, w, false);
        else {
            wire_begin_struct(w);
            wire_end_struct(w);
        }
        break;
    }
    case XT_OPTION: {
        const void *o = *(void *const *)p;
        if (o)
            xtype_value_encode(t->elem, o, w);
        else
            wire_string(w, "");
        break;
    }
    }
}

/* ------------------------------------------------------------------ decode */

static bool
type_error(struct xerr **errp, const char *what)
{
    return xerr_field_type_error(errp, what);
}

static bool
parse_int64(const char *s, int64_t *out)
{
    if (!s || !*s)
        return false;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

static bool
decode_text(const struct xval *v, const char **out)
{
    if (v->kind == XVAL_STRING || v->kind == XVAL_DATETIME) {
        *out = v->str.s;
        return true;
    }
    return false;
}

/* Refs are OpaqueRef:<anything>: clients pass refs through, and a malformed
 * one is as unknown as a well-formed one that names nothing; HANDLE_INVALID
 * is raised where the ref is looked up. */
static bool
decode_scalar(const struct xtype *t, const struct xval *v, void *out, const char *what,
              struct xerr **errp)
{
    const char *s;
    switch (t->kind) {
    case XT_STRING:
    case XT_REF:
        if (v->kind == XVAL_NIL && t->kind == XT_REF)
            s = XAPI_NULL_REF;
        else if (!decode_text(v, &s))
            return type_error(errp, what);
        if (t->kind == XT_REF && *s == '\0')
            s = XAPI_NULL_REF;
        if (!(*(char **)out = strdup(s)))
            return xerr_nomem(errp);
        return true;
    case XT_INT: {
        int64_t i;
        if (v->kind == XVAL_INT)
            i = v->i;
        else if (v->kind == XVAL_STRING && parse_int64(v->str.s, &i))
            ;
        else if (v->kind == XVAL_DOUBLE && v->d == floor(v->d) && fabs(v->d) < 9.2e18)
            i = (int64_t)v->d;
        else if (v->kind == XVAL_STRING)
            return xerr_invalid_value(errp, what, v->str.s);
        else
            return type_error(errp, what);
        *(int64_t *)out = i;
        return true;
    }
    case XT_FLOAT: {
        double d;
        if (v->kind == XVAL_DOUBLE)
            d = v->d;
        else if (v->kind == XVAL_INT)
            d = (double)v->i;
        else if (v->kind == XVAL_STRING) {
            char *end;
            errno = 0;
            d = strtod(v->str.s, &end);
            if (errno || *end || !*v->str.s || !isfinite(d))
                return xerr_invalid_value(errp, what, v->str.s);
        } else
            return type_error(errp, what);
        *(double *)out = d;
        return true;
    }
    case XT_BOOL:
        if (v->kind == XVAL_BOOL)
            *(bool *)out = v->b;
        else if (v->kind == XVAL_STRING && (!strcasecmp(v->str.s, "true") || !strcmp(v->str.s, "1")))
            *(bool *)out = true;
        else if (v->kind == XVAL_STRING &&
                 (!strcasecmp(v->str.s, "false") || !strcmp(v->str.s, "0")))
            *(bool *)out = false;
        else
            return type_error(errp, what);
        return true;
    case XT_DATETIME: {
        time_t tt;
        if (v->kind == XVAL_INT) {
            *(int64_t *)out = v->i;
            return true;
        }
        if (!decode_text(v, &s))
            return type_error(errp, what);
        if (wire_parse_datetime(s, &tt) < 0)
            return xerr_invalid_value(errp, what, s);
        *(int64_t *)out = (int64_t)tt;
        return true;
    }
    case XT_ENUM: {
        if (!decode_text(v, &s))
            return type_error(errp, what);
        int e = xenum_parse(t->en, s);
        if (e < 0)
            return xerr_invalid_value(errp, what, s);
        *(int *)out = e;
        return true;
    }
    default:
        return type_error(errp, what);
    }
}

static bool
decode_key(const struct xtype *t, const char *text, void *out, const char *what,
           struct xerr **errp)
{
    struct xval tmp = {.kind = XVAL_STRING};
    tmp.str.s = (char *)text;
    tmp.str.len = strlen(text);
    return decode_scalar(t, &tmp, out, what, errp);
}

/* ---- duplicate keys: sort, then compare neighbours (O(n log n) worst case) */

struct key_order {
    const struct xtype *t;
    const char *keys;
};

static int
key_compare(const struct xtype *t, const void *a, const void *b)
{
    switch (t->kind) {
    case XT_STRING:
    case XT_REF: {
        const char *x = *(char *const *)a, *y = *(char *const *)b;
        return strcmp(x ? x : "", y ? y : "");
    }
    case XT_INT:
    case XT_DATETIME: {
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
        return (x > y) - (x < y);
    }
    case XT_FLOAT: {
        double x = *(const double *)a, y = *(const double *)b;
        return (x > y) - (x < y);
    }
    case XT_BOOL:
        return (int)*(const bool *)a - (int)*(const bool *)b;
    case XT_ENUM:
        return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b);
    default:
        return 0; /* keys are scalars (decode_key) */
    }
}

/* Orders key indices by key, then by index, so that equal keys are adjacent
 * with the earliest first. */
static int
key_index_compare(const void *pa, const void *pb, void *opaque)
{
    const struct key_order *o = opaque;
    size_t a = *(const size_t *)pa, b = *(const size_t *)pb;
    int c = key_compare(o->t, o->keys + a * o->t->size, o->keys + b * o->t->size);
    return c ? c : (a > b) - (a < b);
}

/* The smallest i such that key i equals an earlier key (the one a scan in
 * order meets first), n when all @n keys differ, or SIZE_MAX out of memory.
 * A pairwise scan was O(n^2): 43 s of CPU for one 100,000-key other_config
 * in a request, and again at every start for each stored one. A hash set
 * would be linear but FNV (common/hashmap.c) is unseeded, so keys chosen to
 * collide would make it quadratic again; sorting has no such worst case. */
static size_t
first_duplicate_key(const struct xtype *t, const void *keys, size_t n)
{
    if (n < 2)
        return n;
    size_t *idx = malloc(n * sizeof(*idx));
    if (!idx)
        return SIZE_MAX;
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    struct key_order o = {t, keys};
    qsort_r(idx, n, sizeof(*idx), key_index_compare, &o);
    size_t first = n;
    for (size_t i = 1; i < n; i++)
        if (idx[i] < first &&
            key_compare(t, (const char *)keys + idx[i - 1] * t->size,
                        (const char *)keys + idx[i] * t->size) == 0)
            first = idx[i];
    free(idx);
    return first;
}

/* ---- decoding; @limited: a client's argument (XTYPE_MAX_MAP_KEYS applies) */

static bool value_decode(const struct xtype *t, const struct xval *v, void *out,
                         const char *what, bool limited, struct xerr **errp);
static bool record_decode(const struct xclass *cls, const struct xval *v, void *rec,
                          bool lenient, bool ctor, bool limited, struct xerr **errp);

static bool
map_decode(const struct xtype *t, const struct xval *v, struct xmap *m, const char *what,
           bool limited, struct xerr **errp)
{
    if (v->kind != XVAL_STRUCT)
        return type_error(errp, what);
    if (v->st.n == 0)
        return true;
    if (limited && v->st.n > XTYPE_MAX_MAP_KEYS) {
        char n[48];
        snprintf(n, sizeof(n), "%zu keys", v->st.n);
        return xerr_value_not_supported(errp, what, n,
                          "a map holds at most " XTYPE_STR(XTYPE_MAX_MAP_KEYS) " keys");
    }
    m->keys = calloc(v->st.n, t->key->size);
    m->values = calloc(v->st.n, t->elem->size);
    if (!m->keys || !m->values) {
        xtype_value_clear(t, m);
        return xerr_nomem(errp);
    }
    for (size_t i = 0; i < v->st.n; i++) {
        void *k = (char *)m->keys + i * t->key->size;
        if (!decode_key(t->key, v->st.keys[i], k, what, errp)) {
            xtype_value_clear(t, m);
            return false;
        }
        if (!value_decode(t->elem, v->st.vals[i], (char *)m->values + i * t->elem->size, what,
                          limited, errp)) {
            xtype_value_clear(t->key, k);
            xtype_value_clear(t, m);
            return false;
        }
        m->n = i + 1;
    }
    size_t dup = first_duplicate_key(t->key, m->keys, m->n);
    if (dup == SIZE_MAX) {
        xtype_value_clear(t, m);
        return xerr_nomem(errp);
    }
    if (dup < m->n) {
        xtype_value_clear(t, m);
        return xerr_map_duplicate_key(errp, "", what, "", v->st.keys[dup]);
    }
    return true;
}

bool
xtype_value_decode(const struct xtype *t, const struct xval *v, void *out, const char *what,
                   struct xerr **errp)
{
    return value_decode(t, v, out, what, false, errp);
}

bool
xtype_arg_decode(const struct xtype *t, const struct xval *v, void *out, const char *what,
                 struct xerr **errp)
{
    return value_decode(t, v, out, what, true, errp);
}

static bool
value_decode(const struct xtype *t, const struct xval *v, void *out, const char *what,
             bool limited, struct xerr **errp)
{
    memset(out, 0, t->size);
    switch (t->kind) {
    case XT_SET: {
        struct xset *s = out;
        if (v->kind != XVAL_ARRAY)
            return type_error(errp, what);
        if (v->arr.n == 0)
            return true;
        s->items = calloc(v->arr.n, t->elem->size);
        if (!s->items)
            return xerr_nomem(errp);
        for (size_t i = 0; i < v->arr.n; i++) {
            if (!value_decode(t->elem, v->arr.items[i], (char *)s->items + i * t->elem->size,
                              what, limited, errp)) {
                xtype_value_clear(t, s);
                return false;
            }
            s->n = i + 1;
        }
        return true;
    }
    case XT_MAP:
        return map_decode(t, v, out, what, limited, errp);
    case XT_RECORD: {
        if (!t->cls)
            return type_error(errp, what);
        if (v->kind != XVAL_STRUCT)
            return type_error(errp, what);
        void *r = xrecord_new(t->cls);
        if (!r)
            return xerr_nomem(errp);
        if (!record_decode(t->cls, v, r, false, false, limited, errp)) {
            xrecord_free(t->cls, r);
            return false;
        }
        *(void **)out = r;
        return true;
    }
    case XT_OPTION: {
        if (v->kind == XVAL_NIL)
            return true;
        void *o = calloc(1, t->elem->size);
        if (!o)
            return xerr_nomem(errp);
        if (!value_decode(t->elem, v, o, what, limited, errp)) {
            free(o);
            return false;
        }
        *(void **)out = o;
        return true;
    }
    default:
        return decode_scalar(t, v, out, what, errp);
    }
}

bool
xtype_ctor_decode(const struct xtype *t, const struct xval *v, void *out, const char *what,
                  struct xerr **errp)
{
    *(void **)out = NULL;
    if (t->kind != XT_RECORD || !t->cls || v->kind != XVAL_STRUCT)
        return type_error(errp, what);
    void *r = xrecord_new(t->cls);
    if (!r)
        return xerr_nomem(errp);
    if (!record_decode(t->cls, v, r, false, true, true, errp)) {
        xrecord_free(t->cls, r);
        return false;
    }
    *(void **)out = r;
    return true;
}

/* ------------------------------------------------------------------ records */

void *
xrecord_new(const struct xclass *cls)
{
    const void *tmpl = xmodel_template(cls);
    if (tmpl)
        return xrecord_copy(cls, tmpl);
    /* Before xmodel_init (building the templates themselves): type zeroes. */
    void *rec = calloc(1, cls->record_size);
    if (!rec)
        return NULL;
    for (size_t i = 0; i < cls->n_fields; i++) {
        const struct xfield *f = &cls->fields[i];
        if (xtype_value_init(f->type, xrecord_field_ptr(rec, f)) < 0) {
            xrecord_free(cls, rec);
            return NULL;
        }
    }
    return rec;
}

void
xrecord_free(const struct xclass *cls, void *rec)
{
    if (!rec)
        return;
    for (size_t i = 0; i < cls->n_fields; i++)
        xtype_value_clear(cls->fields[i].type, xrecord_field_ptr(rec, &cls->fields[i]));
    free(rec);
}

void *
xrecord_copy(const struct xclass *cls, const void *rec)
{
    void *c = calloc(1, cls->record_size);
    if (!c)
        return NULL;
    for (size_t i = 0; i < cls->n_fields; i++) {
        const struct xfield *f = &cls->fields[i];
        if (xtype_value_copy(f->type, xrecord_field_ptr(c, f), xrecord_field_cptr(rec, f)) < 0) {
            xrecord_free(cls, c);
            return NULL;
        }
    }
    return c;
}

void
xrecord_encode(const struct xclass *cls, const void *rec, struct wire_writer *w, bool stored_only)
{
    wire_begin_struct(w);
    for (size_t i = 0; i < cls->n_fields; i++) {
        const struct xfield *f = &cls->fields[i];
        if ((stored_only && f->inverse_class) || (!stored_only && (f->flags & XF_INTERNAL)))
            continue;
        wire_member(w, f->name);
        xtype_value_encode(f->type, xrecord_field_cptr(rec, f), w);
    }
    wire_end_struct(w);
}

bool
xrecord_decode(const struct xclass *cls, const struct xval *v, void *rec, bool lenient, bool ctor,
               struct xerr **errp)
{
    return record_decode(cls, v, rec, lenient, ctor, false, errp);
}

static bool
record_decode(const struct xclass *cls, const struct xval *v, void *rec, bool lenient, bool ctor,
              bool limited, struct xerr **errp)
{
    if (v->kind != XVAL_STRUCT)
        return type_error(errp, cls->name);
    for (size_t i = 0; i < v->st.n; i++) {
        /* Stored data (lenient) carries internal fields; a client never sets them. */
        const struct xfield *f = lenient ? xclass_field(cls, v->st.keys[i])
                                         : xclass_wire_field(cls, v->st.keys[i]);
        if (!f || (ctor && f->qual == XQ_DRO)) {
            if (lenient || (ctor && f))
                continue; /* xapi ignores fields a constructor does not take */
            return type_error(errp, v->st.keys[i]);
        }
        union xvalue_storage tmp;
        if (!value_decode(f->type, v->st.vals[i], &tmp, f->name, limited, errp))
            return false;
        void *slot = xrecord_field_ptr(rec, f);
        xtype_value_clear(f->type, slot);
        memcpy(slot, &tmp, f->type->size);
    }
    if (ctor) {
        for (size_t i = 0; i < cls->n_fields; i++) {
            const struct xfield *f = &cls->fields[i];
            if ((f->flags & XF_MANDATORY) && !(f->flags & XF_REMOVED) &&
                !xval_struct_get(v, f->name))
                return xerr_field_type_error(errp, f->name);
        }
    }
    return true;
}

const struct xfield *
xclass_field(const struct xclass *cls, const char *name)
{
    /* Classes have at most ~150 fields; a scan beats a hash at this size. */
    for (size_t i = 0; i < cls->n_fields; i++)
        if (strcmp(cls->fields[i].name, name) == 0)
            return &cls->fields[i];
    return NULL;
}

const struct xfield *
xclass_wire_field(const struct xclass *cls, const char *name)
{
    const struct xfield *f = xclass_field(cls, name);
    return f && !(f->flags & XF_INTERNAL) ? f : NULL;
}

/* ------------------------------------------------------------------ enums, sets, maps */

int
xenum_parse(const struct xenum_desc *en, const char *s)
{
    for (size_t i = 0; i < en->n_values; i++)
        if (strcasecmp(en->values[i], s) == 0)
            return (int)i;
    return -1;
}

const char *
xenum_name(const struct xenum_desc *en, int v)
{
    if (v < 0 || (size_t)v >= en->n_values)
        return "";
    return en->values[v];
}

bool
xstr_set(char **slot, const char *v)
{
    char *c = strdup(v ? v : "");
    if (!c)
        return false;
    free(*slot);
    *slot = c;
    return true;
}

bool
xset_contains_str(const struct xset *s, const char *v)
{
    char *const *items = s->items;
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(items[i], v) == 0)
            return true;
    return false;
}

int
xset_add_str(struct xset *s, const char *v)
{
    if (xset_contains_str(s, v))
        return 0;
    return xset_append_str(s, v);
}

int
xset_append_str(struct xset *s, const char *v)
{
    char *c = strdup(v);
    char **items = realloc(s->items, (s->n + 1) * sizeof(char *));
    if (!c || !items) {
        free(c);
        if (items)
            s->items = items;
        return -ENOMEM;
    }
    items[s->n++] = c;
    s->items = items;
    return 0;
}

bool
xset_remove_str(struct xset *s, const char *v)
{
    char **items = s->items;
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(items[i], v) == 0) {
            free(items[i]);
            memmove(&items[i], &items[i + 1], (s->n - i - 1) * sizeof(char *));
            s->n--;
            return true;
        }
    }
    return false;
}

const void *
xmap_find_str(const struct xtype *t, const struct xmap *m, const char *key)
{
    char buf[64];
    for (size_t i = 0; i < m->n; i++) {
        const char *k;
        key_to_text(t->key, (const char *)m->keys + i * t->key->size, buf, sizeof(buf), &k);
        if (strcmp(k, key) == 0)
            return (const char *)m->values + i * t->elem->size;
    }
    return NULL;
}

const char *
xmap_get_str(const struct xmap *m, const char *key)
{
    char *const *keys = m->keys;
    char *const *values = m->values;
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(keys[i], key) == 0)
            return values[i];
    return NULL;
}

int
xmap_put_str(struct xmap *m, const char *key, const char *value)
{
    char **keys = m->keys;
    char **values = m->values;
    for (size_t i = 0; i < m->n; i++) {
        if (strcmp(keys[i], key) == 0) {
            char *v = strdup(value);
            if (!v)
                return -ENOMEM;
            free(values[i]);
            values[i] = v;
            return 0;
        }
    }
    char *k = strdup(key), *v = strdup(value);
    char **nk = realloc(m->keys, (m->n + 1) * sizeof(char *));
    if (nk)
        m->keys = nk;
    char **nv = realloc(m->values, (m->n + 1) * sizeof(char *));
    if (nv)
        m->values = nv;
    if (!k || !v || !nk || !nv) {
        free(k);
        free(v);
        return -ENOMEM;
    }
    nk[m->n] = k;
    nv[m->n] = v;
    m->n++;
    return 0;
}

bool
xmap_remove_key(const struct xtype *t, struct xmap *m, const char *key)
{
    char buf[64];
    for (size_t i = 0; i < m->n; i++) {
        const char *k;
        void *kp = (char *)m->keys + i * t->key->size;
        key_to_text(t->key, kp, buf, sizeof(buf), &k);
        if (strcmp(k, key) != 0)
            continue;
        xtype_value_clear(t->key, kp);
        xtype_value_clear(t->elem, (char *)m->values + i * t->elem->size);
        size_t rest = m->n - i - 1;
        memmove(kp, (char *)kp + t->key->size, rest * t->key->size);
        memmove((char *)m->values + i * t->elem->size, (char *)m->values + (i + 1) * t->elem->size,
                rest * t->elem->size);
        m->n--;
        return true;
    }
    return false;
}

/* ------------------------------------------------------------------ templates */

static void **templates; /* by class id; built once by xmodel_init, then read-only */

const void *
xmodel_template(const struct xclass *cls)
{
    /* only classes kept in the store have templates (data_source has none) */
    return templates && cls->stored ? templates[cls->id] : NULL;
}

int
xmodel_init(void)
{
    if (templates)
        return 0;
    void **t = calloc(xapi_n_classes, sizeof(*t));
    if (!t)
        return -ENOMEM;
    for (size_t c = 0; c < xapi_n_classes; c++) {
        const struct xclass *cls = xapi_classes[c];
        void *rec = xrecord_new(cls); /* type zeroes: templates is still NULL */
        if (!rec)
            return -ENOMEM;
        for (size_t i = 0; i < cls->n_fields; i++) {
            const struct xfield *f = &cls->fields[i];
            if (!f->default_json)
                continue;
            struct xval *v = NULL;
            struct xerr *err = NULL;
            char why[128];
            union xvalue_storage tmp;
            if (json_parse_xval(f->default_json, strlen(f->default_json), &v, why, sizeof(why)) < 0 ||
                !xtype_value_decode(f->type, v, &tmp, f->name, &err)) {
                /* A schema default that does not decode is a generator bug. */
                fprintf(stderr, "vesseld: bad default for %s.%s: %s\n", cls->name, f->name,
                        f->default_json);
                xval_free(v);
                xerr_free(err);
                xrecord_free(cls, rec);
                return -EINVAL;
            }
            xval_free(v);
            void *slot = xrecord_field_ptr(rec, f);
            xtype_value_clear(f->type, slot);
            memcpy(slot, &tmp, f->type->size);
        }
        t[c] = rec;
    }
    templates = t;
    return 0;
}
