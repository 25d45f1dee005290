/* model/xtype.h - runtime descriptors of the XenAPI data model, and the generic
 * operations driven by them.
 *
 * gen/vgen.py turns datamodel/<class>.json into C: a record struct per class plus
 * constant tables of these descriptors (types, fields with offsets, classes,
 * enums, messages). Everything that is the same for every field of every
 * class - free, copy, compare, encode to the wire, decode from the wire,
 * defaults - is written once here against the descriptors, instead of being
 * generated 3,000 times. Generated code holds data and typed declarations;
 * this file holds the only logic that walks them.
 *
 * C layout of a value of each kind (what a field at `offset` holds):
 *   XT_STRING, XT_REF   char *  (never NULL in a live record: "" / "OpaqueRef:NULL")
 *   XT_INT              int64_t
 *   XT_FLOAT            double
 *   XT_BOOL             bool
 *   XT_DATETIME         int64_t (seconds since the epoch, UTC)
 *   XT_ENUM             int     (index into the enum's values)
 *   XT_SET              struct xset { size_t n; void *items; }        items: n values of elem
 *   XT_MAP              struct xmap { size_t n; void *keys; void *values; }
 *   XT_RECORD           void *  (pointer to the class's record struct, or NULL)
 *   XT_OPTION           void *  (pointer to one value of elem, or NULL = none)
 * Generated typed containers (struct xapi_string_set ...) share these layouts.
 *
 * Thread-safety: descriptors are immutable; the functions touch only the
 * values they are given.
 */
#ifndef VESSEL_MODEL_XTYPE_H
#define VESSEL_MODEL_XTYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/xval.h"
#include "model/xerr.h"
#include "wire/wire.h"

enum xtype_kind {
    XT_STRING,
    XT_INT,
    XT_FLOAT,
    XT_BOOL,
    XT_DATETIME,
    XT_ENUM,
    XT_REF,
    XT_SET,
    XT_MAP,
    XT_RECORD,
    XT_OPTION,
};

struct xset {
    size_t n;
    void *items;
};

struct xmap {
    size_t n;
    void *keys;
    void *values;
};

/* Room for any one value, suitably aligned: decode into it, then move it. */
union xvalue_storage {
    struct xset s;
    struct xmap m;
    void *p;
    int64_t i;
    double d;
    bool b;
    int e;
};

struct xenum_desc {
    const char *name;            /* "vm_power_state" */
    const char *const *values;   /* canonical spelling: "Halted" */
    size_t n_values;
};

struct xclass;

struct xtype {
    enum xtype_kind kind;
    const char *name;            /* as in the schema: "(string -> string) map" */
    size_t size;                 /* sizeof one C value */
    const struct xtype *elem;    /* SET, OPTION: element; MAP: value */
    const struct xtype *key;     /* MAP */
    const struct xenum_desc *en; /* ENUM */
    const char *ref_class;       /* REF, RECORD: class name as spelled */
    const struct xclass *cls;    /* REF, RECORD: the class, NULL when not in our model */
};

enum xqual { XQ_DRO, XQ_SRO, XQ_RW };

enum xfield_flags {
    XF_DEPRECATED = 1 << 0,
    XF_REMOVED = 1 << 1,
    XF_MANDATORY = 1 << 2, /* constructor must name it (SRO/RW with no default) */
    XF_INTERNAL = 1 << 3,  /* kept in the store, never on the wire (a task's owner) */
};

struct xfield {
    const char *name; /* wire name: "name_label", "VCPUs_max" */
    const struct xtype *type;
    size_t offset;
    enum xqual qual;
    unsigned flags;
    const char *default_json; /* JSON text of the default, or NULL: the type's zero */
    /* A one-to-many reverse link (VM.VBDs <- VBD.VM): the set is kept by db/
     * from the forward ref field and never stored. NULL for plain fields. */
    const char *inverse_class;
    const char *inverse_field;
};

struct xclass {
    const char *name;  /* "VM" */
    const char *lower; /* "vm": event class names, permissions */
    unsigned id;       /* index into xapi_classes[] */
    size_t record_size;
    const struct xfield *fields;
    size_t n_fields;
    int uuid_field;       /* index, always present in stored classes */
    int name_label_field; /* index of name_label when the class has name.label, else -1 */
    bool ctor;            /* implicit create/destroy */
    bool get_all;         /* get_all / get_all_records exposed */
    bool events;          /* changes produce events */
    bool stored;          /* has records in the store */
    const char *default_role; /* role for implicit setters: the class's */
};

/* ---- generic value operations (t describes what p points at) ---- */

/* Frees what the value owns (not @p itself) and zeroes it. */
void xtype_value_clear(const struct xtype *t, void *p);
/* Deep-copies *@src into @dst (uninitialised). 0 or -ENOMEM (dst then zeroed). */
int xtype_value_copy(const struct xtype *t, void *dst, const void *src);
/* The type's zero value: "" for strings, OpaqueRef:NULL for refs, empty containers. */
int xtype_value_init(const struct xtype *t, void *p);
bool xtype_value_equal(const struct xtype *t, const void *a, const void *b);
/* Writes the value to @w in wire form. */
void xtype_value_encode(const struct xtype *t, const void *p, struct wire_writer *w);
/* Decodes @v into @out (uninitialised; on failure left zeroed). Accepts what
 * clients send: ints as decimal strings, datetimes as strings, enum names in any
 * case, doubles for floats given as ints. Errors: FIELD_TYPE_ERROR [what] for a
 * shape mismatch, INVALID_VALUE [what, value] for a bad enum or number,
 * MAP_DUPLICATE_KEY [, what, , key] for a key given twice (found in
 * O(n log n)). */
bool xtype_value_decode(const struct xtype *t, const struct xval *v, void *out, const char *what,
                        struct xerr **errp);

/* Most keys one map may have in what a client sends (docs/request-limits.md).
 * XenAPI maps hold tens of keys; the limit keeps one
 * call's decoding, storing and every later load of the record small. Replies
 * and the store are decoded without it (a record stored by an older build
 * still loads). */
#define XTYPE_MAX_MAP_KEYS 10000
#define XTYPE_STR_(x) #x
#define XTYPE_STR(x) XTYPE_STR_(x)

/* xtype_value_decode for an argument a client sent: the same, and a map
 * (at any depth, records' fields included) with more than
 * XTYPE_MAX_MAP_KEYS keys is VALUE_NOT_SUPPORTED [what, "<n> keys", reason]. */
bool xtype_arg_decode(const struct xtype *t, const struct xval *v, void *out, const char *what,
                      struct xerr **errp);

/* Decodes a constructor's record argument (@t an XT_RECORD): defaults for
 * what is not given, SRO/RW fields only, mandatory ones required; the limits
 * of xtype_arg_decode apply. */
bool xtype_ctor_decode(const struct xtype *t, const struct xval *v, void *out, const char *what,
                       struct xerr **errp);

/* ---- records ---- */

/* A new record of @cls with every field at its schema default (or the type's
 * zero). NULL when out of memory. Free with xrecord_free. */
void *xrecord_new(const struct xclass *cls);
void xrecord_free(const struct xclass *cls, void *rec);
void *xrecord_copy(const struct xclass *cls, const void *rec);
/* All fields as a struct keyed by wire name; with @stored_only, the reverse
 * link sets are left out (db/ rebuilds them). */
void xrecord_encode(const struct xclass *cls, const void *rec, struct wire_writer *w,
                    bool stored_only);
/* Fills fields of @rec from the members of struct @v. Members not named keep
 * their value; unknown members are ignored when @lenient (stored data written
 * by another version), else FIELD_TYPE_ERROR. With @ctor, SRO/RW fields only
 * may be given and XF_MANDATORY ones must be. */
bool xrecord_decode(const struct xclass *cls, const struct xval *v, void *rec, bool lenient,
                    bool ctor, struct xerr **errp);

static inline void *
xrecord_field_ptr(void *rec, const struct xfield *f)
{
    return (char *)rec + f->offset;
}

static inline const void *
xrecord_field_cptr(const void *rec, const struct xfield *f)
{
    return (const char *)rec + f->offset;
}

const struct xfield *xclass_field(const struct xclass *cls, const char *name);
/* The field as clients may name it: NULL for XF_INTERNAL ones. */
const struct xfield *xclass_wire_field(const struct xclass *cls, const char *name);
static inline const char *
xrecord_uuid(const struct xclass *cls, const void *rec)
{
    return *(char *const *)xrecord_field_cptr(rec, &cls->fields[cls->uuid_field]);
}

/* Enum helpers: index of @s (case-insensitive) or -1; canonical name or "". */
int xenum_parse(const struct xenum_desc *en, const char *s);
const char *xenum_name(const struct xenum_desc *en, int v);

/* Replaces the string in @slot with a copy of @v (NULL: ""), freeing the old
 * one. false when out of memory (the slot is unchanged then). */
bool xstr_set(char **slot, const char *v);

/* Set helpers on string-like sets (strings, refs). */
bool xset_contains_str(const struct xset *s, const char *v);
int xset_add_str(struct xset *s, const char *v);     /* no-op when present; 0 / -ENOMEM */
/* Appends @v without looking for it first: for callers that know it is absent. */
int xset_append_str(struct xset *s, const char *v);
bool xset_remove_str(struct xset *s, const char *v); /* true when removed */
/* (string -> string) maps and other maps with string-like keys. */
const void *xmap_find_str(const struct xtype *t, const struct xmap *m, const char *key);
const char *xmap_get_str(const struct xmap *m, const char *key); /* string values only */
int xmap_put_str(struct xmap *m, const char *key, const char *value); /* replaces */
bool xmap_remove_key(const struct xtype *t, struct xmap *m, const char *key);

/* Classes of the model (generated). */
extern const struct xclass *const xapi_classes[];
extern const size_t xapi_n_classes;
const struct xclass *xapi_class_by_name(const char *name);       /* exact spelling */
const struct xclass *xapi_class_by_name_ci(const char *name);    /* any case */

#endif
