/* tests/fuzz/map_decode_fuzz.c - fuzz target for decoding maps and records
 * (model/xtype.c) from both wire codecs.
 *
 * An input starting with '<' is an XML-RPC <value>, anything else JSON; the
 * tree is decoded as a (string -> string) map, an (int -> float) map and a
 * network constructor record, both as a client's argument (with the key
 * limit) and as a reply or stored data would be (without). Checks:
 *  - a decoded map has no two equal keys, and a refused one names a key
 *    that is repeated (MAP_DUPLICATE_KEY) or is over the limit;
 *  - the two decodings agree on everything but the limit: below it they
 *    succeed or fail alike, with the same error code;
 *  - what decodes encodes back to JSON that decodes to an equal value.
 * A mismatch aborts: libFuzzer reports it as a crash. The corpus holds the
 * shapes of issue 11's finding 9 (many keys, a duplicate at the end), small.
 *
 * Debugging a failure: build the gcc replay (tests/fuzz/map_decode_replay)
 * and run it on the crashing file; it prints which check failed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/strbuf.h"
#include "model/xmodel.h"
#include "wire/jsonrpc.h"
#include "wire/xmlrpc.h"
#include "xapi_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "map_decode_fuzz: check failed: %s\n", what);
        abort();
    }
}

static void
check_distinct(const struct xtype *t, const struct xmap *m)
{
    if (m->n > 2000)
        return; /* pairwise is the slow check this replaces; small maps suffice */
    for (size_t i = 0; i < m->n; i++)
        for (size_t j = 0; j < i; j++)
            check(!xtype_value_equal(t->key, (const char *)m->keys + i * t->key->size,
                                     (const char *)m->keys + j * t->key->size),
                  "a decoded map has distinct keys");
}

/* Encodes @p (of type @t) as JSON, parses and decodes it again: equal. */
static void
check_round_trip(const struct xtype *t, const void *p)
{
    struct strbuf sb = STRBUF_INIT;
    struct wire_writer w;
    wire_writer_init(&w, WIRE_JSON, &sb);
    xtype_value_encode(t, p, &w);
    size_t len = 0;
    char *text = strbuf_steal(&sb, &len);
    check(text != NULL, "out of memory");
    struct xval *v = NULL;
    char why[128];
    check(json_parse_xval(text, len, &v, why, sizeof(why)) == 0, "encoded JSON parses");
    union xvalue_storage again;
    check(xtype_value_decode(t, v, &again, "again", NULL), "encoded value decodes");
    check(xtype_value_equal(t, p, &again), "round trip gives an equal value");
    xtype_value_clear(t, &again);
    xval_free(v);
    free(text);
}

static void
decode_map(const struct xtype *t, const struct xval *v)
{
    union xvalue_storage plain, arg;
    struct xerr *e1 = NULL, *e2 = NULL;
    bool ok1 = xtype_value_decode(t, v, &plain, "m", &e1);
    bool ok2 = xtype_arg_decode(t, v, &arg, "m", &e2);
    bool over = v->kind == XVAL_STRUCT && v->st.n > XTYPE_MAX_MAP_KEYS;
    if (ok1) {
        check_distinct(t, &plain.m);
        check_round_trip(t, &plain);
        xtype_value_clear(t, &plain);
    } else {
        check(e1 != NULL, "a failure has an error");
        if (strcmp(e1->code, "MAP_DUPLICATE_KEY") == 0) {
            size_t n = 0;
            for (size_t i = 0; i < v->st.n; i++)
                n += strcmp(v->st.keys[i], e1->params[3]) == 0;
            /* the key as sent; an equal key may be spelled otherwise ("7", "07") */
            check(n >= 1, "the duplicate named is one of the keys sent");
        }
    }
    if (over) {
        check(!ok2 && strcmp(e2->code, "VALUE_NOT_SUPPORTED") == 0, "over the limit: refused");
    } else {
        check(ok1 == ok2, "below the limit both decodings agree");
        check(ok1 || strcmp(e1->code, e2->code) == 0, "with the same error");
    }
    if (ok2)
        xtype_value_clear(t, &arg);
    xerr_free(e1);
    xerr_free(e2);
}

static void
decode_record(const struct xval *v)
{
    struct xapi_network_record *n = NULL;
    struct xerr *err = NULL;
    if (xtype_ctor_decode(&xapi_type_network_record, v, &n, "args", &err)) {
        check_distinct(&xapi_type_string_string_map, (struct xmap *)&n->other_config);
        xapi_network_record_free(n);
    }
    xerr_free(err);
    if (v->kind != XVAL_STRUCT)
        return;
    n = xapi_network_record_new(); /* as the store loads a row */
    check(n != NULL, "out of memory");
    err = NULL;
    xrecord_decode(&xapi_class_network, v, n, true, false, &err);
    xerr_free(err);
    xapi_network_record_free(n);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        check(xmodel_init() == 0, "xmodel_init");
        ready = true;
    }
    struct xval *v = NULL;
    char why[256];
    int rc = size && data[0] == '<'
                 ? xmlrpc_parse_value((const char *)data, size, &v, why, sizeof(why))
                 : json_parse_xval((const char *)data, size, &v, why, sizeof(why));
    if (rc < 0)
        return 0;
    decode_map(&xapi_type_string_string_map, v);
    decode_map(&xapi_type_int_float_map, v);
    decode_record(v);
    xval_free(v);
    return 0;
}
