/* common/xval.h - a decoded wire value: the tree both RPC codecs parse into.
 *
 * XML-RPC and JSON-RPC requests are parsed into this one shape so that the
 * generated decoders (build/generated/) check types once, whatever the codec.
 * A value keeps what the wire said: an untyped XML-RPC <value>text</value> is
 * an XVAL_STRING, <int>/<i4>/<i8> and JSON integers are XVAL_INT, and a
 * <dateTime.iso8601> stays text in XVAL_DATETIME; coercion to the declared
 * XenAPI type (ints sent as strings, datetimes in several forms) is the
 * decoder's job, not the parser's.
 *
 * Values are trees: every node has exactly one owner. Not thread-safe; a tree
 * belongs to the call that parsed it.
 */
#ifndef VESSEL_COMMON_XVAL_H
#define VESSEL_COMMON_XVAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum xval_kind {
    XVAL_NIL,      /* XML-RPC <nil/>, JSON null */
    XVAL_STRING,   /* str: NUL-terminated, len excludes the NUL; may hold no NUL inside */
    XVAL_INT,      /* i */
    XVAL_DOUBLE,   /* d */
    XVAL_BOOL,     /* b */
    XVAL_DATETIME, /* str: the text as sent, e.g. "20261122T15:04:05Z" */
    XVAL_ARRAY,    /* arr */
    XVAL_STRUCT,   /* st: keys unique is NOT guaranteed; duplicates are kept in order */
};

struct xval {
    enum xval_kind kind;
    union {
        struct {
            char *s;
            size_t len;
        } str;
        int64_t i;
        double d;
        bool b;
        struct {
            struct xval **items;
            size_t n;
        } arr;
        struct {
            char **keys;
            struct xval **vals;
            size_t n;
        } st;
    };
};

/* Constructors. Each returns a new node owned by the caller (free with
 * xval_free), or NULL when out of memory. xval_new_string copies @s. */
struct xval *xval_new_nil(void);
struct xval *xval_new_string(const char *s);
struct xval *xval_new_stringn(const char *s, size_t len);
struct xval *xval_new_int(int64_t i);
struct xval *xval_new_double(double d);
struct xval *xval_new_bool(bool b);
struct xval *xval_new_datetime(const char *text);
struct xval *xval_new_array(void);
struct xval *xval_new_struct(void);

/* Append @item to array @arr, taking ownership of @item (also on failure,
 * when it is freed). Returns 0 or -ENOMEM. */
int xval_array_append(struct xval *arr, struct xval *item);
/* Append member @key (copied) = @val (owned, freed on failure). 0 or -ENOMEM. */
int xval_struct_append(struct xval *st, const char *key, struct xval *val);

/* The value of the first member named @key, or NULL. Borrowed. */
const struct xval *xval_struct_get(const struct xval *st, const char *key);

/* Frees @v and everything below it. NULL is fine. */
void xval_free(struct xval *v);
void xval_freep(struct xval **v);

/* Deep copy, or NULL when out of memory. */
struct xval *xval_copy(const struct xval *v);

/* Whether @a and @b are the same tree: same kinds, same scalars (doubles
 * compared by value, NaN equal to NaN, 0.0 and -0.0 different), same items
 * and members in the same order. NULL equals only NULL. */
bool xval_equal(const struct xval *a, const struct xval *b);

/* The XenAPI type name a value most looks like, for error messages. */
const char *xval_kind_name(enum xval_kind k);

#endif
