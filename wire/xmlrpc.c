/* wire/xmlrpc.c - XML-RPC bodies into xval trees, and XenAPI reply framing.
 *
 * Parsing is one pass of expat's callbacks over a fixed stack of frames, one
 * per open element; each element's allowed children are checked as it opens,
 * its text is converted as it closes, and the finished value is handed to the
 * frame below (a <param>, an array's <data>, a <member>, or the result). The
 * grammar is the XML-RPC specification's (methodCall, methodResponse, params,
 * param, value, the scalar types, array/data, struct/member/name) plus <nil/>
 * and <i8>; xapi's doc/content/xen-api/wire-protocol.md gives what XenAPI clients send and
 * expect.
 *
 * Hostile input (invariants of the parser):
 *  (1) no DOCTYPE at all: its start aborts the parse, so no entity is ever
 *      declared, expanded or fetched (billion laughs, XXE);
 *  (2) at most XMLRPC_MAX_DEPTH nested <array>/<struct>, and the frame stack
 *      is a fixed array: deeper input fails with -E2BIG before it costs
 *      memory;
 *  (3) every xval built so far is owned by exactly one frame or the result,
 *      so an abort at any callback frees everything in parse_state_release;
 *  (4) text is only kept where it can be a value; elsewhere it must be XML
 *      whitespace, which is ignored.
 * Memory is bounded by the body (the HTTP layer bounds that).
 */
#include "wire/xmlrpc.h"

#include <pthread.h>
#include <sys/random.h>
#include <errno.h>
#include <expat.h>
#include <limits.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/errtext.h"

/* Nested array/struct levels cost three frames each (value, array, data). */
#define MAX_FRAMES (3 * XMLRPC_MAX_DEPTH + 12)

enum elem {
    E_ROOT, /* below the document element; never on the stack */
    E_METHOD_CALL,
    E_METHOD_RESPONSE,
    E_METHOD_NAME,
    E_PARAMS,
    E_PARAM,
    E_FAULT,
    E_VALUE,
    E_STRING,
    E_INT, /* <int>, <i4>, <i8> */
    E_DOUBLE,
    E_BOOLEAN,
    E_DATETIME,
    E_BASE64,
    E_NIL,
    E_ARRAY,
    E_DATA,
    E_STRUCT,
    E_MEMBER,
    E_NAME,
    E_UNKNOWN,
};

static const struct {
    const char *tag;
    enum elem e;
} elem_names[] = {
    {"methodCall", E_METHOD_CALL}, {"methodResponse", E_METHOD_RESPONSE},
    {"methodName", E_METHOD_NAME}, {"params", E_PARAMS},
    {"param", E_PARAM},            {"fault", E_FAULT},
    {"value", E_VALUE},            {"string", E_STRING},
    {"int", E_INT},                {"i4", E_INT},
    {"i8", E_INT},                 {"double", E_DOUBLE},
    {"boolean", E_BOOLEAN},        {"dateTime.iso8601", E_DATETIME},
    {"base64", E_BASE64},          {"nil", E_NIL},
    {"array", E_ARRAY},            {"data", E_DATA},
    {"struct", E_STRUCT},          {"member", E_MEMBER},
    {"name", E_NAME},
};

enum parse_mode { MODE_CALL, MODE_RESPONSE, MODE_VALUE };

struct frame {
    enum elem e;
    struct xval *val; /* value: its one child's value; array/struct: the container;
                         member: its value; param/fault: its value */
    char *name;       /* member: its name */
    bool has_child;   /* value: a typed child was seen; array: <data> was seen */
};

struct parse_state {
    XML_Parser parser;
    enum parse_mode mode;
    struct frame stack[MAX_FRAMES];
    int n_frames;
    int nesting;          /* open <array>/<struct> (2) */
    struct strbuf text;   /* character data of the innermost element (4) */
    bool keep_text;       /* the innermost element's text can be a value */
    bool root_done;
    int err;              /* first error, 0 while fine */
    char *why;
    size_t why_len;
    /* results */
    char *method;
    struct xval *params;  /* call: the params array */
    struct xval *result;  /* response/fault/bare value */
    int n_results;
    bool fault;
    bool seen_body;       /* <params> (call) or <params>/<fault> (response) opened */
};

/* ===================================================================== */
/* Errors                                                                 */
/* ===================================================================== */

__attribute__((format(printf, 3, 4))) static void
fail(struct parse_state *ps, int err, const char *fmt, ...)
{
    if (ps->err)
        return; /* the first error is the one reported */
    ps->err = err;
    if (ps->why && ps->why_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ps->why, ps->why_len, fmt, ap);
        va_end(ap);
    }
    if (ps->parser)
        XML_StopParser(ps->parser, XML_FALSE);
}

/* ===================================================================== */
/* Scalar text                                                            */
/* ===================================================================== */

static bool
is_xml_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool
all_space(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!is_xml_space(s[i]))
            return false;
    return true;
}

/* Trims XML whitespace from both ends of a NUL-terminated buffer, in place. */
static char *
trim(char *s, size_t *len)
{
    size_t n = *len;
    while (n && is_xml_space(s[n - 1]))
        n--;
    s[n] = '\0';
    while (*s && is_xml_space(*s)) {
        s++;
        n--;
    }
    *len = n;
    return s;
}

/* Decimal int64: [+-]?[0-9]+, nothing else, no overflow. */
static bool
parse_int64(const char *s, int64_t *out)
{
    bool neg = false;
    if (*s == '+' || *s == '-')
        neg = *s++ == '-';
    if (!*s)
        return false;
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        unsigned dgt = (unsigned)(*s - '0');
        if (v > (limit - dgt) / 10)
            return false;
        v = v * 10 + dgt;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

/* A finite decimal number: [+-]?digits[.digits][(e|E)[+-]digits], at least one
 * digit in the mantissa. No hex, no inf/nan, no overflow to infinity. */
static bool
parse_double(const char *s, double *out)
{
    const char *p = s;
    size_t digits = 0;
    if (*p == '+' || *p == '-')
        p++;
    while (*p >= '0' && *p <= '9') {
        p++;
        digits++;
    }
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            p++;
            digits++;
        }
    }
    if (!digits)
        return false;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (*p < '0' || *p > '9')
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p)
        return false;
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (*end || (errno == ERANGE && (d > 1.0 || d < -1.0)))
        return false; /* overflow; underflow to 0 or a denormal is fine */
    *out = d;
    return true;
}

/* The value of a closing scalar element, from its text, or NULL after fail(). */
static struct xval *
scalar_value(struct parse_state *ps, enum elem e)
{
    struct strbuf *t = &ps->text;
    char *s = t->buf ? t->buf : (char *)"";
    size_t len = t->len;
    struct xval *v = NULL;
    switch (e) {
    case E_STRING:
    case E_BASE64:
        v = xval_new_stringn(s, len);
        break;
    case E_DATETIME:
        v = xval_new_datetime(s);
        break;
    case E_NIL:
        if (!all_space(s, len)) {
            fail(ps, -EINVAL, "text inside <nil/>");
            return NULL;
        }
        v = xval_new_nil();
        break;
    case E_INT: {
        int64_t i;
        s = trim(s, &len);
        if (!parse_int64(s, &i)) {
            fail(ps, -EINVAL, "<int> is not a decimal 64-bit integer: \"%.40s\"", s);
            return NULL;
        }
        v = xval_new_int(i);
        break;
    }
    case E_DOUBLE: {
        double d;
        s = trim(s, &len);
        if (!parse_double(s, &d)) {
            fail(ps, -EINVAL, "<double> is not a finite number: \"%.40s\"", s);
            return NULL;
        }
        v = xval_new_double(d);
        break;
    }
    case E_BOOLEAN:
        s = trim(s, &len);
        if (strcmp(s, "0") != 0 && strcmp(s, "1") != 0) {
            fail(ps, -EINVAL, "<boolean> is neither 0 nor 1: \"%.40s\"", s);
            return NULL;
        }
        v = xval_new_bool(s[0] == '1');
        break;
    default:
        fail(ps, -EINVAL, "internal: not a scalar element");
        return NULL;
    }
    if (!v)
        fail(ps, -ENOMEM, "out of memory");
    return v;
}

/* ===================================================================== */
/* Element callbacks                                                      */
/* ===================================================================== */

static enum elem
elem_lookup(const char *tag)
{
    for (size_t i = 0; i < sizeof(elem_names) / sizeof(elem_names[0]); i++)
        if (strcmp(tag, elem_names[i].tag) == 0)
            return elem_names[i].e;
    return E_UNKNOWN;
}

static bool
is_scalar(enum elem e)
{
    return e == E_STRING || e == E_INT || e == E_DOUBLE || e == E_BOOLEAN || e == E_DATETIME ||
           e == E_BASE64 || e == E_NIL;
}

/* Whether @child may open inside @parent (state of the parent frame @pf). */
static bool
child_allowed(const struct parse_state *ps, const struct frame *pf, enum elem child)
{
    enum elem parent = pf ? pf->e : E_ROOT;
    switch (parent) {
    case E_ROOT:
        if (ps->root_done)
            return false;
        return (ps->mode == MODE_CALL && child == E_METHOD_CALL) ||
               (ps->mode == MODE_RESPONSE && child == E_METHOD_RESPONSE) ||
               (ps->mode == MODE_VALUE && child == E_VALUE);
    case E_METHOD_CALL:
        return child == E_METHOD_NAME || child == E_PARAMS;
    case E_METHOD_RESPONSE:
        return child == E_PARAMS || child == E_FAULT;
    case E_PARAMS:
        return child == E_PARAM;
    case E_PARAM:
    case E_FAULT:
        return child == E_VALUE && !pf->val;
    case E_VALUE:
        return !pf->has_child && (is_scalar(child) || child == E_ARRAY || child == E_STRUCT);
    case E_ARRAY:
        return child == E_DATA && !pf->has_child;
    case E_DATA:
        return child == E_VALUE;
    case E_STRUCT:
        return child == E_MEMBER;
    case E_MEMBER:
        return (child == E_NAME && !pf->name) || (child == E_VALUE && !pf->val);
    default:
        return false; /* scalars, name, methodName hold text only */
    }
}

static const char *
elem_tag(enum elem e)
{
    for (size_t i = 0; i < sizeof(elem_names) / sizeof(elem_names[0]); i++)
        if (elem_names[i].e == e)
            return elem_names[i].tag;
    return "document";
}

static void XMLCALL
on_start(void *opaque, const XML_Char *tag, const XML_Char **attrs)
{
    struct parse_state *ps = opaque;
    struct frame *pf = ps->n_frames ? &ps->stack[ps->n_frames - 1] : NULL;
    enum elem e = elem_lookup(tag);
    if (ps->err)
        return;
    if (pf && ps->keep_text && !all_space(ps->text.buf, ps->text.len)) {
        fail(ps, -EINVAL, "text mixed with <%.40s> inside <%s>", tag, elem_tag(pf->e));
        return;
    }
    if (e == E_UNKNOWN || !child_allowed(ps, pf, e)) {
        fail(ps, -EINVAL, "unexpected <%.40s> inside %s", tag, pf ? elem_tag(pf->e) : "document");
        return;
    }
    if (ps->n_frames == MAX_FRAMES) {
        fail(ps, -E2BIG, "XML nested too deeply");
        return;
    }
    if (e == E_ARRAY || e == E_STRUCT) {
        if (++ps->nesting > XMLRPC_MAX_DEPTH) {
            fail(ps, -E2BIG, "arrays/structs nested deeper than %d", XMLRPC_MAX_DEPTH);
            return;
        }
    }
    if (pf && (pf->e == E_VALUE || pf->e == E_ARRAY))
        pf->has_child = true;
    struct frame *f = &ps->stack[ps->n_frames++];
    memset(f, 0, sizeof(*f));
    f->e = e;
    if (e == E_ARRAY)
        f->val = xval_new_array();
    else if (e == E_STRUCT)
        f->val = xval_new_struct();
    if ((e == E_ARRAY || e == E_STRUCT) && !f->val)
        fail(ps, -ENOMEM, "out of memory");
    if (e == E_METHOD_CALL && !ps->params && !(ps->params = xval_new_array()))
        fail(ps, -ENOMEM, "out of memory");
    if (e == E_METHOD_NAME && ps->method)
        fail(ps, -EINVAL, "more than one <methodName>");
    if (e == E_PARAMS || e == E_FAULT) {
        if (ps->seen_body)
            fail(ps, -EINVAL, "more than one <params> or <fault>");
        ps->seen_body = true;
    }
    strbuf_reset(&ps->text);
    ps->keep_text = e == E_VALUE || e == E_NAME || e == E_METHOD_NAME || is_scalar(e);
    (void)attrs; /* attributes carry nothing in XML-RPC; ignored */
}

/* Hands the finished value @v (owned) of a closed <value> to the frame below. */
static void
deliver_value(struct parse_state *ps, struct frame *pf, struct xval *v)
{
    if (!pf) {
        ps->result = v;
        return;
    }
    switch (pf->e) {
    case E_PARAM:
    case E_FAULT:
    case E_MEMBER:
        pf->val = v;
        return;
    case E_DATA: {
        struct frame *arr = &ps->stack[ps->n_frames - 2]; /* data is always in an array */
        if (xval_array_append(arr->val, v) < 0)
            fail(ps, -ENOMEM, "out of memory");
        return;
    }
    default:
        xval_free(v);
        fail(ps, -EINVAL, "internal: value in <%s>", elem_tag(pf->e));
    }
}

/* Closes frame @f (already popped) whose parent is @pf (NULL at the root). */
static void
close_frame(struct parse_state *ps, struct frame *f, struct frame *pf)
{
    if (is_scalar(f->e)) {
        pf->val = scalar_value(ps, f->e); /* pf is a <value> (child_allowed) */
        return;
    }
    switch (f->e) {
    case E_VALUE: {
        struct xval *v = f->val;
        f->val = NULL;
        if (!f->has_child && !(v = xval_new_stringn(ps->text.buf ? ps->text.buf : "",
                                                    ps->text.len))) {
            fail(ps, -ENOMEM, "out of memory");
            return;
        }
        if (!v) {
            fail(ps, -EINVAL, "empty typed <value>");
            return;
        }
        deliver_value(ps, pf, v);
        return;
    }
    case E_ARRAY:
    case E_STRUCT:
        ps->nesting--;
        pf->val = f->val; /* pf is a <value> */
        f->val = NULL;
        return;
    case E_NAME:
        if (!(pf->name = strdup(ps->text.buf ? ps->text.buf : "")))
            fail(ps, -ENOMEM, "out of memory");
        return;
    case E_MEMBER: {
        if (!f->name || !f->val) {
            fail(ps, -EINVAL, "<member> without %s", f->name ? "<value>" : "<name>");
            return;
        }
        struct xval *v = f->val;
        f->val = NULL;
        if (xval_struct_append(pf->val, f->name, v) < 0)
            fail(ps, -ENOMEM, "out of memory");
        return;
    }
    case E_METHOD_NAME:
        if (!ps->text.len) {
            fail(ps, -EINVAL, "empty <methodName>");
            return;
        }
        if (!(ps->method = strdup(ps->text.buf)))
            fail(ps, -ENOMEM, "out of memory");
        return;
    case E_PARAM:
    case E_FAULT: {
        if (!f->val) {
            fail(ps, -EINVAL, "<%s> without <value>", elem_tag(f->e));
            return;
        }
        struct xval *v = f->val;
        f->val = NULL;
        if (ps->mode == MODE_CALL) {
            if (xval_array_append(ps->params, v) < 0)
                fail(ps, -ENOMEM, "out of memory");
            return;
        }
        if (ps->n_results++) {
            xval_free(v);
            fail(ps, -EINVAL, "methodResponse with more than one param or fault");
            return;
        }
        ps->result = v;
        ps->fault = f->e == E_FAULT;
        return;
    }
    case E_METHOD_CALL:
        if (!ps->method)
            fail(ps, -EINVAL, "methodCall without <methodName>");
        return;
    case E_METHOD_RESPONSE:
        if (!ps->n_results)
            fail(ps, -EINVAL, "methodResponse without a param or fault");
        return;
    default:
        return; /* params, data: nothing of their own */
    }
}

static void XMLCALL
on_end(void *opaque, const XML_Char *tag)
{
    struct parse_state *ps = opaque;
    (void)tag; /* expat has checked it matches the open element */
    if (ps->err || ps->n_frames == 0)
        return;
    struct frame f = ps->stack[--ps->n_frames];
    struct frame *pf = ps->n_frames ? &ps->stack[ps->n_frames - 1] : NULL;
    close_frame(ps, &f, pf);
    xval_free(f.val); /* (3): whatever close_frame did not hand on */
    free(f.name);
    if (!pf)
        ps->root_done = true;
    strbuf_reset(&ps->text);
    /* back in the parent: its text after a child is never a value */
    ps->keep_text = false;
}

static void XMLCALL
on_text(void *opaque, const XML_Char *s, int len)
{
    struct parse_state *ps = opaque;
    if (ps->err || ps->n_frames == 0)
        return;
    struct frame *f = &ps->stack[ps->n_frames - 1];
    if (!ps->keep_text || (f->e == E_VALUE && f->has_child)) {
        if (!all_space(s, (size_t)len))
            fail(ps, -EINVAL, "unexpected text inside <%s>", elem_tag(f->e));
        return;
    }
    strbuf_append(&ps->text, s, (size_t)len);
    if (!strbuf_ok(&ps->text))
        fail(ps, -ENOMEM, "out of memory");
}

static void XMLCALL
on_doctype(void *opaque, const XML_Char *name, const XML_Char *sysid, const XML_Char *pubid,
           int has_internal_subset)
{
    (void)name, (void)sysid, (void)pubid, (void)has_internal_subset;
    fail(opaque, -EINVAL, "DOCTYPE declarations are not allowed"); /* (1) */
}

static void XMLCALL
on_entity_decl(void *opaque, const XML_Char *name, int is_param, const XML_Char *value,
               int value_len, const XML_Char *base, const XML_Char *sysid,
               const XML_Char *pubid, const XML_Char *notation)
{
    (void)name, (void)is_param, (void)value, (void)value_len, (void)base, (void)sysid,
        (void)pubid, (void)notation;
    fail(opaque, -EINVAL, "entity declarations are not allowed"); /* (1) */
}

/* ===================================================================== */
/* Driver                                                                 */
/* ===================================================================== */

/* expat draws a hash salt from getrandom(2) for every new parser unless given
 * one: a syscall per request. One random salt per process keeps the
 * protection against crafted hash collisions without it. */
static unsigned long hash_salt;
static pthread_once_t hash_salt_once = PTHREAD_ONCE_INIT;

/* Each thread keeps one parser and resets it for the next body: creating and
 * freeing one per call was a tenth of a small call's CPU (issue 18).
 * XML_ParserReset returns it to the state of a new one (handlers and salt
 * cleared, the document forgotten), keeping its memory. */
static pthread_key_t parser_key;

static void
parser_key_free(void *p)
{
    XML_ParserFree(p);
}

static void
hash_salt_init(void)
{
    unsigned long v = 0;
    while (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
        ;
    hash_salt = v | 1; /* expat treats 0 as "draw your own" */
    if (pthread_key_create(&parser_key, parser_key_free) != 0)
        abort(); /* only at the process's first parse, out of keys */
}

/* A parser in the state of a new one: the thread's own, or a new one when
 * the thread's is in use (a parse inside a parse) or cannot be reset. */
static XML_Parser
parser_get(void)
{
    pthread_once(&hash_salt_once, hash_salt_init);
    XML_Parser p = pthread_getspecific(parser_key);
    if (p) {
        pthread_setspecific(parser_key, NULL);
        if (XML_ParserReset(p, "UTF-8"))
            return p;
        XML_ParserFree(p);
    }
    /* The encoding argument overrides any declaration: the body is UTF-8. */
    return XML_ParserCreate("UTF-8");
}

/* Gives @p back to the thread (or frees it when the thread has one). */
static void
parser_put(XML_Parser p)
{
    if (!p)
        return;
    if (pthread_getspecific(parser_key) || pthread_setspecific(parser_key, p) != 0)
        XML_ParserFree(p);
}

static void
parse_state_release(struct parse_state *ps)
{
    for (int i = 0; i < ps->n_frames; i++) {
        xval_free(ps->stack[i].val);
        free(ps->stack[i].name);
    }
    ps->n_frames = 0;
    strbuf_release(&ps->text);
    free(ps->method);
    xval_free(ps->params);
    xval_free(ps->result);
    parser_put(ps->parser);
    ps->parser = NULL;
}


/* Runs the parser over @body; 0 with the results in @ps, or a negative errno. */
static int
parse_run(struct parse_state *ps, enum parse_mode mode, const char *body, size_t len,
          char *why, size_t why_len)
{
    memset(ps, 0, sizeof(*ps));
    ps->mode = mode;
    ps->why = why;
    ps->why_len = why_len;
    if (why && why_len)
        why[0] = '\0';
    strbuf_init(&ps->text);
    ps->parser = parser_get();
    if (!ps->parser) {
        errtext_set(why, why_len, "%s", "out of memory");
        return -ENOMEM;
    }
    XML_SetHashSalt(ps->parser, hash_salt);
    XML_SetUserData(ps->parser, ps);
    XML_SetElementHandler(ps->parser, on_start, on_end);
    XML_SetCharacterDataHandler(ps->parser, on_text);
    XML_SetStartDoctypeDeclHandler(ps->parser, on_doctype);
    XML_SetEntityDeclHandler(ps->parser, on_entity_decl);
    XML_SetParamEntityParsing(ps->parser, XML_PARAM_ENTITY_PARSING_NEVER);

    enum XML_Status st = XML_STATUS_OK;
    while (st == XML_STATUS_OK && !ps->err) {
        int chunk = len > INT_MAX / 2 ? INT_MAX / 2 : (int)len;
        bool last = (size_t)chunk == len;
        st = XML_Parse(ps->parser, body, chunk, last);
        body += chunk;
        len -= (size_t)chunk;
        if (last)
            break;
    }
    if (ps->err)
        return ps->err;
    if (st != XML_STATUS_OK) {
        enum XML_Error code = XML_GetErrorCode(ps->parser);
        if (why && why_len)
            snprintf(why, why_len, "XML error at line %lu column %lu: %s",
                     (unsigned long)XML_GetCurrentLineNumber(ps->parser),
                     (unsigned long)XML_GetCurrentColumnNumber(ps->parser),
                     XML_ErrorString(code));
        return code == XML_ERROR_NO_MEMORY ? -ENOMEM : -EINVAL;
    }
    if (!ps->root_done) {
        errtext_set(why, why_len, "%s", "no document element");
        return -EINVAL;
    }
    return 0;
}

/* ===================================================================== */
/* Fast path: the common call                                             */
/* ===================================================================== */

/* Most calls are a method name and a few plain ASCII string params (refs,
 * uuids, names) in one shape, as the XenAPI SDKs and xe write them. For such
 * a body, expat's set-up costs more than the whole parse (issue 18), so it is
 * read here; any other body - another type, a reference, a byte outside
 * printable ASCII, a comment, an attribute, a self-closing tag - goes to
 * expat, whose result this one equals (tests/fuzz/xmlrpc_fuzz.c compares the
 * two on every input it accepts):
 *
 *   body  := [decl] S? "<methodCall>" S? "<methodName>" NAME "</methodName>" S?
 *            "<params>" S? (param S?)* "</params>" S? "</methodCall>" S?
 *   decl  := <?xml version="1.0"?> | <?xml version='1.0'?>
 *   param := "<param>" S? "<value>" (TEXT | "<string>" TEXT "</string>")
 *            "</value>" S? "</param>"
 *   NAME  := one or more of 0x21-0x7e but < > &;  TEXT := zero or more of
 *            0x20-0x7e but < > &, TAB, LF;  S := spaces, TABs, LFs, CRs
 */
struct fast {
    const char *p, *end;
};

static void
fast_space(struct fast *f)
{
    while (f->p < f->end && is_xml_space(*f->p))
        f->p++;
}

static bool
fast_lit(struct fast *f, const char *lit, size_t n)
{
    if ((size_t)(f->end - f->p) < n || memcmp(f->p, lit, n) != 0)
        return false;
    f->p += n;
    return true;
}

#define FAST_LIT(f, lit) fast_lit((f), (lit), sizeof(lit) - 1)

/* Text up to the next '<': its length, or -1 when a byte is not plain. */
static ptrdiff_t
fast_text(struct fast *f, bool name)
{
    const char *start = f->p;
    for (; f->p < f->end && *f->p != '<'; f->p++) {
        unsigned char c = (unsigned char)*f->p;
        bool plain = c >= 0x20 && c <= 0x7e && c != '>' && c != '&';
        if (!plain && (name || (c != '\t' && c != '\n')))
            return -1;
        if (name && c == ' ')
            return -1;
    }
    if (f->p == f->end)
        return -1;
    return f->p - start;
}

/* 1 with the results, 0 when the body is not of the fast shape (nothing
 * allocated), or -ENOMEM. */
static int
fast_parse_call(const char *body, size_t len, char **method, struct xval **params)
{
    struct fast f = {body, body + len};
    if (!FAST_LIT(&f, "<?xml version=\"1.0\"?>"))
        (void)FAST_LIT(&f, "<?xml version='1.0'?>");
    fast_space(&f);
    if (!FAST_LIT(&f, "<methodCall>"))
        return 0;
    fast_space(&f);
    if (!FAST_LIT(&f, "<methodName>"))
        return 0;
    const char *name = f.p;
    ptrdiff_t name_len = fast_text(&f, true);
    if (name_len <= 0 || !FAST_LIT(&f, "</methodName>"))
        return 0;
    fast_space(&f);
    if (!FAST_LIT(&f, "<params>"))
        return 0;
    /* Count first: nothing is allocated for a body that then goes to expat. */
    const char *params_at = f.p;
    size_t n = 0;
    for (;;) {
        fast_space(&f);
        if (FAST_LIT(&f, "</params>"))
            break;
        if (!FAST_LIT(&f, "<param>"))
            return 0;
        fast_space(&f);
        if (!FAST_LIT(&f, "<value>"))
            return 0;
        bool typed = FAST_LIT(&f, "<string>");
        if (fast_text(&f, false) < 0)
            return 0;
        if (typed && !FAST_LIT(&f, "</string>"))
            return 0;
        if (!FAST_LIT(&f, "</value>"))
            return 0;
        fast_space(&f);
        if (!FAST_LIT(&f, "</param>"))
            return 0;
        n++;
    }
    fast_space(&f);
    if (!FAST_LIT(&f, "</methodCall>"))
        return 0;
    fast_space(&f);
    if (f.p != f.end)
        return 0;

    struct xval *arr = xval_new_array();
    char *m = strndup(name, (size_t)name_len);
    if (!arr || !m)
        goto oom;
    f.p = params_at;
    for (size_t i = 0; i < n; i++) { /* the shape is known now: no checks */
        fast_space(&f);
        FAST_LIT(&f, "<param>");
        fast_space(&f);
        FAST_LIT(&f, "<value>");
        bool typed = FAST_LIT(&f, "<string>");
        const char *text = f.p;
        ptrdiff_t text_len = fast_text(&f, false);
        struct xval *v = xval_new_stringn(text, (size_t)text_len);
        if (!v || xval_array_append(arr, v) < 0) {
            xval_free(v);
            goto oom;
        }
        if (typed)
            FAST_LIT(&f, "</string>");
        FAST_LIT(&f, "</value>");
        fast_space(&f);
        FAST_LIT(&f, "</param>");
    }
    *method = m;
    *params = arr;
    return 1;
oom:
    xval_free(arr);
    free(m);
    return -ENOMEM;
}

int
xmlrpc_parse_call(const char *body, size_t len, char **method, struct xval **params,
                  char *why, size_t why_len)
{
    int rc = fast_parse_call(body, len, method, params);
    if (rc == 1) {
        if (why && why_len)
            why[0] = '\0';
        return 0;
    }
    if (rc < 0) {
        errtext_set(why, why_len, "%s", "out of memory");
        return rc;
    }
    return xmlrpc_parse_call_expat(body, len, method, params, why, why_len);
}

int
xmlrpc_parse_call_expat(const char *body, size_t len, char **method, struct xval **params,
                        char *why, size_t why_len)
{
    struct parse_state ps;
    int rc = parse_run(&ps, MODE_CALL, body, len, why, why_len);
    if (rc == 0) {
        *method = ps.method;
        *params = ps.params;
        ps.method = NULL;
        ps.params = NULL;
    }
    parse_state_release(&ps);
    return rc;
}

int
xmlrpc_parse_response(const char *body, size_t len, struct xval **value, char *why,
                      size_t why_len)
{
    struct parse_state ps;
    int rc = parse_run(&ps, MODE_RESPONSE, body, len, why, why_len);
    if (rc == 0) {
        *value = ps.result;
        ps.result = NULL;
        if (ps.fault) {
            errtext_set(why, why_len, "%s", "XML-RPC fault");
            rc = -EPROTO;
        }
    }
    parse_state_release(&ps);
    return rc;
}

int
xmlrpc_parse_value(const char *text, size_t len, struct xval **value, char *why,
                   size_t why_len)
{
    struct parse_state ps;
    int rc = parse_run(&ps, MODE_VALUE, text, len, why, why_len);
    if (rc == 0) {
        *value = ps.result;
        ps.result = NULL;
    }
    parse_state_release(&ps);
    return rc;
}

/* ===================================================================== */
/* Framing                                                                */
/* ===================================================================== */

#define PUT_LIT(sb, lit) strbuf_append((sb), (lit), sizeof(lit) - 1)

#define RESPONSE_HEAD "<?xml version=\"1.0\"?><methodResponse><params><param>"
#define RESPONSE_TAIL "</param></params></methodResponse>"
#define STATUS_HEAD(status)                                                          \
    RESPONSE_HEAD "<value><struct><member><name>Status</name><value>" status         \
                  "</value></member><member><name>"

void
xmlrpc_begin_success(struct wire_writer *w)
{
    PUT_LIT(w->out, STATUS_HEAD("Success") "Value</name>");
}

void
xmlrpc_end_success(struct wire_writer *w)
{
    PUT_LIT(w->out, "</member></struct></value>" RESPONSE_TAIL);
}

void
xmlrpc_write_failure(struct wire_writer *w, const char *code, const char *const *params,
                     size_t n_params)
{
    PUT_LIT(w->out, STATUS_HEAD("Failure") "ErrorDescription</name>");
    wire_begin_array(w);
    wire_string(w, code);
    for (size_t i = 0; i < n_params; i++)
        wire_string(w, params[i]);
    wire_end_array(w);
    PUT_LIT(w->out, "</member></struct></value>" RESPONSE_TAIL);
}

void
xmlrpc_begin_bare(struct wire_writer *w)
{
    PUT_LIT(w->out, RESPONSE_HEAD);
}

void
xmlrpc_end_bare(struct wire_writer *w)
{
    PUT_LIT(w->out, RESPONSE_TAIL);
}

void
xmlrpc_begin_call(struct wire_writer *w, const char *method)
{
    PUT_LIT(w->out, "<?xml version=\"1.0\"?><methodCall><methodName>");
    wire_xml_escape(w->out, method, strlen(method));
    PUT_LIT(w->out, "</methodName><params>");
}

void
xmlrpc_begin_param(struct wire_writer *w)
{
    PUT_LIT(w->out, "<param>");
}

void
xmlrpc_end_param(struct wire_writer *w)
{
    PUT_LIT(w->out, "</param>");
}

void
xmlrpc_end_call(struct wire_writer *w)
{
    PUT_LIT(w->out, "</params></methodCall>");
}
