/* wire/jsonrpc.c - JSON-RPC 1.0/2.0 requests into xval trees, and reply framing.
 *
 * jansson does the parsing (RFC 8259: UTF-8 checked, duplicate keys and NUL
 * bytes in strings rejected, trailing garbage rejected); this file adds what
 * jansson lacks and then walks its tree into an xval. Facts:
 * shared/spec/xenapi.md 1.3 (versions, id, params, reply shapes).
 *
 * Before jansson sees a body, one linear pre-scan outside string literals:
 *  (1) bounds the nesting of [ and { (jansson 2.14 only stops at 2048), so
 *      the recursive tree walk below is bounded too: -E2BIG beyond;
 *  (2) finds integer literals that do not fit int64, which jansson refuses
 *      ("too big integer"); the spec wants them as doubles, so such a body is
 *      copied with ".0" appended to each of those literals, which jansson then
 *      reads as reals. Integers that fit stay exact XVAL_INTs.
 * A pre-scan of invalid JSON may count wrongly; jansson rejects it anyway.
 */
#include "wire/jsonrpc.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/errtext.h"

/* Nesting allowed by json_parse_xval: anything our writer can produce, inside
 * a reply envelope. */
#define JSON_XVAL_MAX_DEPTH (WIRE_MAX_DEPTH + 2)

/* ===================================================================== */
/* Pre-scan                                                               */
/* ===================================================================== */

static bool
is_number_char(char c)
{
    return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

/* Whether @s (@len bytes) is an integer literal -?[0-9]+ outside int64. */
static bool
is_big_integer(const char *s, size_t len)
{
    bool neg = len && s[0] == '-';
    size_t i = neg ? 1 : 0;
    if (i == len)
        return false;
    for (size_t k = i; k < len; k++)
        if (s[k] < '0' || s[k] > '9')
            return false; /* a real, or not a number at all */
    while (i + 1 < len && s[i] == '0')
        i++; /* (invalid JSON, but do not misjudge it) */
    size_t digits = len - i;
    if (digits != 19)
        return digits > 19;
    return memcmp(s + i, neg ? "9223372036854775808" : "9223372036854775807", 19) > 0;
}

/* Scans @body (1)(2). With @rewrite non-NULL, also appends the body to it with
 * ".0" after each big integer. Returns -E2BIG when nested deeper than
 * @max_depth, else the number of big integers found. */
static long
prescan(const char *body, size_t len, int max_depth, struct strbuf *rewrite)
{
    int depth = 0;
    long n_big = 0;
    size_t copied = 0;
    for (size_t i = 0; i < len; i++) {
        char c = body[i];
        if (c == '"') {
            for (i++; i < len && body[i] != '"'; i++)
                if (body[i] == '\\')
                    i++;
        } else if (c == '[' || c == '{') {
            if (++depth > max_depth)
                return -E2BIG;
        } else if (c == ']' || c == '}') {
            depth--;
        } else if ((c >= '0' && c <= '9') || c == '-') {
            size_t start = i;
            while (i + 1 < len && is_number_char(body[i + 1]))
                i++;
            if (is_big_integer(body + start, i + 1 - start)) {
                n_big++;
                if (rewrite) {
                    strbuf_append(rewrite, body + copied, i + 1 - copied);
                    strbuf_append(rewrite, ".0", 2);
                    copied = i + 1;
                }
            }
        }
    }
    if (rewrite)
        strbuf_append(rewrite, body + copied, len - copied);
    return n_big;
}

/* ===================================================================== */
/* jansson tree to xval                                                   */
/* ===================================================================== */

/* Converts @j; NULL when out of memory. Depth is bounded by the pre-scan (1). */
static struct xval *
xval_from_json(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_NULL:
        return xval_new_nil();
    case JSON_TRUE:
        return xval_new_bool(true);
    case JSON_FALSE:
        return xval_new_bool(false);
    case JSON_INTEGER:
        return xval_new_int((int64_t)json_integer_value(j));
    case JSON_REAL:
        return xval_new_double(json_real_value(j));
    case JSON_STRING:
        return xval_new_stringn(json_string_value(j), json_string_length(j));
    case JSON_ARRAY: {
        struct xval *a = xval_new_array();
        size_t i;
        json_t *item;
        json_array_foreach(j, i, item) {
            if (!a || xval_array_append(a, xval_from_json(item)) < 0) {
                xval_free(a);
                return NULL;
            }
        }
        return a;
    }
    case JSON_OBJECT: {
        struct xval *s = xval_new_struct();
        const char *key;
        json_t *val;
        /* jansson keeps insertion order, so members stay in wire order */
        json_object_foreach((json_t *)j, key, val) {
            if (!s || xval_struct_append(s, key, xval_from_json(val)) < 0) {
                xval_free(s);
                return NULL;
            }
        }
        return s;
    }
    }
    return NULL;
}

/* Parses @text with jansson after the pre-scan; NULL with a reason on failure. */
static json_t *
load_json(const char *text, size_t len, int max_depth, size_t flags, int *rc, char *why,
          size_t why_len)
{
    long n_big = prescan(text, len, max_depth, NULL);
    if (n_big < 0) {
        errtext_set(why, why_len, "JSON nested deeper than %d", max_depth);
        *rc = -E2BIG;
        return NULL;
    }
    struct strbuf copy = STRBUF_INIT;
    if (n_big > 0) {
        prescan(text, len, max_depth, &copy); /* (2) */
        if (!strbuf_ok(&copy)) {
            strbuf_release(&copy);
            errtext_set(why, why_len, "out of memory");
            *rc = -ENOMEM;
            return NULL;
        }
        text = copy.buf;
        len = copy.len;
    }
    json_error_t err;
    json_t *root = json_loadb(text, len, flags | JSON_REJECT_DUPLICATES, &err);
    strbuf_release(&copy);
    if (!root) {
        errtext_set(why, why_len, "JSON error at line %d column %d: %s", err.line, err.column,
                err.text);
        *rc = json_error_code(&err) == json_error_out_of_memory ? -ENOMEM : -EINVAL;
    }
    return root;
}

int
json_parse_xval(const char *text, size_t len, struct xval **out, char *why, size_t why_len)
{
    int rc = 0;
    if (why && why_len)
        why[0] = '\0';
    json_t *root = load_json(text, len, JSON_XVAL_MAX_DEPTH, JSON_DECODE_ANY, &rc, why,
                             why_len);
    if (!root)
        return rc;
    struct xval *v = xval_from_json(root);
    json_decref(root);
    if (!v) {
        errtext_set(why, why_len, "out of memory");
        return -ENOMEM;
    }
    *out = v;
    return 0;
}

/* ===================================================================== */
/* Requests                                                               */
/* ===================================================================== */

/* Fills @call from the request object @root; 0 or -EINVAL/-ENOMEM. */
static int
call_from_json(json_t *root, struct jsonrpc_call *call, char *why, size_t why_len)
{
    if (!json_is_object(root)) {
        errtext_set(why, why_len, "a JSON-RPC request must be an object");
        return -EINVAL;
    }
    json_t *ver = json_object_get(root, "jsonrpc");
    if (ver && !(json_is_string(ver) && strcmp(json_string_value(ver), "2.0") == 0)) {
        errtext_set(why, why_len, "unsupported \"jsonrpc\" version (only \"2.0\" is)");
        return -EINVAL;
    }
    call->version = ver ? JSONRPC_V2 : JSONRPC_V1;

    json_t *method = json_object_get(root, "method");
    if (!json_is_string(method) || json_string_length(method) == 0) {
        errtext_set(why, why_len, "\"method\" missing or not a non-empty string");
        return -EINVAL;
    }
    json_t *id = json_object_get(root, "id");
    if (!json_is_string(id) && !json_is_integer(id)) {
        errtext_set(why, why_len, "\"id\" missing or not a string or integer");
        return -EINVAL;
    }
    json_t *params = json_object_get(root, "params");
    if (params && !json_is_array(params) && !(call->version == JSONRPC_V2 &&
                                               json_is_object(params))) {
        errtext_set(why, why_len, "\"params\" must be an array%s",
                call->version == JSONRPC_V2 ? " or an object" : "");
        return -EINVAL;
    }
    if (!params && call->version == JSONRPC_V1) {
        errtext_set(why, why_len, "\"params\" missing (required in JSON-RPC 1.0)");
        return -EINVAL;
    }

    call->method = strdup(json_string_value(method));
    call->id = xval_from_json(id);
    if (!params) {
        call->params = xval_new_array();
    } else if (json_is_array(params)) {
        call->params = xval_from_json(params);
    } else { /* v2 named params: one struct argument */
        call->params = xval_new_array();
        if (call->params && xval_array_append(call->params, xval_from_json(params)) < 0)
            xval_freep(&call->params);
    }
    if (!call->method || !call->id || !call->params) {
        errtext_set(why, why_len, "out of memory");
        return -ENOMEM;
    }
    return 0;
}

int
jsonrpc_parse_call(const char *body, size_t len, struct jsonrpc_call *call, char *why,
                   size_t why_len)
{
    int rc = 0;
    memset(call, 0, sizeof(*call));
    if (why && why_len)
        why[0] = '\0';
    /* the envelope object and the params array are two levels */
    json_t *root = load_json(body, len, JSONRPC_MAX_DEPTH + 2, 0, &rc, why, why_len);
    if (!root)
        return rc;
    rc = call_from_json(root, call, why, why_len);
    json_decref(root);
    if (rc < 0)
        jsonrpc_call_release(call);
    return rc;
}

void
jsonrpc_call_release(struct jsonrpc_call *call)
{
    free(call->method);
    xval_free(call->params);
    xval_free(call->id);
    memset(call, 0, sizeof(*call));
}

/* ===================================================================== */
/* Framing                                                                */
/* ===================================================================== */

#define PUT_LIT(sb, lit) strbuf_append((sb), (lit), sizeof(lit) - 1)

/* The next value the writer writes at its current depth is the first there. */
static void
next_value_first(struct wire_writer *w)
{
    if (w->depth >= 0 && w->depth <= WIRE_MAX_DEPTH)
        w->has_elem[w->depth] = false;
}

static void
write_id(struct wire_writer *w, const struct xval *id)
{
    PUT_LIT(w->out, ",\"id\":");
    if (!id || (id->kind != XVAL_STRING && id->kind != XVAL_INT)) {
        PUT_LIT(w->out, "null");
    } else {
        next_value_first(w);
        wire_xval(w, id);
    }
    strbuf_putc(w->out, '}');
}

void
jsonrpc_begin_success(struct wire_writer *w, enum jsonrpc_version version)
{
    if (version == JSONRPC_V2)
        PUT_LIT(w->out, "{\"jsonrpc\":\"2.0\",\"result\":");
    else
        PUT_LIT(w->out, "{\"result\":");
    next_value_first(w);
}

void
jsonrpc_end_success(struct wire_writer *w, enum jsonrpc_version version,
                    const struct xval *id)
{
    if (version != JSONRPC_V2)
        PUT_LIT(w->out, ",\"error\":null");
    write_id(w, id);
}

/* "s1","s2",... */
static void
write_string_list(struct strbuf *sb, const char *const *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i)
            strbuf_putc(sb, ',');
        const char *s = items[i] ? items[i] : "";
        wire_json_escape(sb, s, strlen(s));
    }
}

void
jsonrpc_write_failure(struct wire_writer *w, enum jsonrpc_version version,
                      const struct xval *id, const char *code, const char *const *params,
                      size_t n_params)
{
    if (!code)
        code = "";
    if (version == JSONRPC_V2) {
        PUT_LIT(w->out, "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":1,\"message\":");
        wire_json_escape(w->out, code, strlen(code));
        PUT_LIT(w->out, ",\"data\":[");
        write_string_list(w->out, params, n_params);
        PUT_LIT(w->out, "]}");
    } else {
        PUT_LIT(w->out, "{\"result\":null,\"error\":[");
        wire_json_escape(w->out, code, strlen(code));
        if (n_params)
            strbuf_putc(w->out, ',');
        write_string_list(w->out, params, n_params);
        strbuf_putc(w->out, ']');
    }
    write_id(w, id);
}

void
jsonrpc_begin_call(struct wire_writer *w, const char *method, int64_t id)
{
    PUT_LIT(w->out, "{\"jsonrpc\":\"2.0\",\"method\":");
    wire_json_escape(w->out, method, strlen(method));
    strbuf_printf(w->out, ",\"id\":%lld,\"params\":[", (long long)id);
    next_value_first(w);
}

void
jsonrpc_end_call(struct wire_writer *w)
{
    PUT_LIT(w->out, "]}");
}
