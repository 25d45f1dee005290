/* wire/wire.c - streaming XML-RPC and JSON value writers, and the datetime form.
 *
 * Every value goes straight into the caller's strbuf: no tree, no allocation
 * per value (the strbuf grows by doubling). Text is escaped by scanning runs of
 * bytes that need nothing and appending each run with one memcpy; only the
 * bytes that need work (markup characters, control characters, bytes that are
 * not valid UTF-8) break a run. Facts: xapi's doc/content/xen-api/wire-protocol.md (XML-RPC
 * value encoding as ocaml-rpc writes it), 1.3 (JSON), RFC 8259 section 7
 * (JSON string escapes), XML 1.0 section 2.2 (the Char production: what may
 * appear in a document at all), RFC 3629 (UTF-8).
 *
 * Writer state (see wire/wire.h):
 *  (1) depth counts open containers and keeps counting past WIRE_MAX_DEPTH;
 *      while depth > WIRE_MAX_DEPTH nothing at all is written (overflow set),
 *      so begin/end pairs stay balanced and the output is merely truncated.
 *  (2) XML: has_elem[d] means "a <member> is open in the struct at depth d",
 *      closed by the next wire_member or by wire_end_struct.
 *  (3) JSON: has_elem[d] means "the next element at depth d needs a comma".
 *      wire_member writes the comma and the key, then clears has_elem[d], so
 *      the member's value (which sets it again) writes none.
 *
 * Datetimes are converted with the proleptic Gregorian day count (Howard
 * Hinnant's days_from_civil/civil_from_days), not gmtime_r/timegm, which take
 * the libc timezone lock on every call.
 */
#include "wire/wire.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xval.h"

/* ===================================================================== */
/* UTF-8 and escaping                                                     */
/* ===================================================================== */

/* Byte classes for the run scanner. */
enum {
    BC_SAFE = 0, /* copy as is */
    BC_ESC,      /* markup or escaped control character */
    BC_DROP,     /* control character XML cannot carry */
    BC_HIGH,     /* 0x80-0xff: start (or stray part) of a multi-byte sequence */
};

/* Class of each byte (GNU range designators; gcc and clang). */
static const unsigned char xml_class[256] = {
    [0x00 ... 0x08] = BC_DROP, /* TAB, LF safe */ [0x0b ... 0x0c] = BC_DROP,
    ['\r'] = BC_ESC,           [0x0e ... 0x1f] = BC_DROP,
    ['&'] = BC_ESC,            ['<'] = BC_ESC,    ['>'] = BC_ESC,    ['"'] = BC_ESC,
    [0x80 ... 0xff] = BC_HIGH,
};
static const unsigned char json_class[256] = {
    [0x00 ... 0x1f] = BC_ESC, ['"'] = BC_ESC, ['\\'] = BC_ESC, [0x80 ... 0xff] = BC_HIGH,
};

/* Length of the valid UTF-8 sequence at @p (at most @n bytes available), or 0
 * when the bytes there are not one (overlong forms, surrogates, > U+10FFFF and
 * truncated sequences are all invalid, RFC 3629 section 4). *@cp gets the
 * code point. */
static size_t
utf8_seq(const unsigned char *p, size_t n, uint32_t *cp)
{
    unsigned char c = p[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        if (n < 2 || (p[1] & 0xc0) != 0x80)
            return 0;
        *cp = ((uint32_t)(c & 0x1f) << 6) | (p[1] & 0x3f);
        return 2;
    }
    if (c >= 0xe0 && c <= 0xef) {
        if (n < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80)
            return 0;
        if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] >= 0xa0))
            return 0; /* overlong, or a UTF-16 surrogate */
        *cp = ((uint32_t)(c & 0x0f) << 12) | ((uint32_t)(p[1] & 0x3f) << 6) | (p[2] & 0x3f);
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (n < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80)
            return 0;
        if ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] >= 0x90))
            return 0; /* overlong, or beyond U+10FFFF */
        *cp = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(p[1] & 0x3f) << 12) |
              ((uint32_t)(p[2] & 0x3f) << 6) | (p[3] & 0x3f);
        return 4;
    }
    return 0;
}

/* How many bytes at @p (not a valid sequence, @n available) one U+FFFD
 * replaces: the maximal prefix of a valid sequence, at least one byte
 * (Unicode "substitution of maximal subparts", chapter 3.9). */
static size_t
utf8_invalid_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
    if (c < 0xc2 || c > 0xf4 || n < 2)
        return 1;
    unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c == 0xe0)
        lo = 0xa0;
    else if (c == 0xed)
        hi = 0x9f;
    else if (c == 0xf0)
        lo = 0x90;
    else if (c == 0xf4)
        hi = 0x8f;
    if (p[1] < lo || p[1] > hi)
        return 1;
    size_t k = 2;
    while (k < need && k < n && (p[k] & 0xc0) == 0x80)
        k++;
    return k;
}

static const char REPLACEMENT[] = "\xef\xbf\xbd"; /* U+FFFD */

/* Appends @s escaped as XML character data (also valid in an attribute value).
 * Invalid UTF-8 and the non-characters U+FFFE/U+FFFF (not XML Chars) become
 * U+FFFD; control characters other than TAB/LF/CR are dropped; CR is written
 * as &#13; so that it survives XML end-of-line normalisation. */
static void
xml_escape(struct strbuf *sb, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t run = 0, i = 0;
    while (i < len) {
        unsigned char cls = xml_class[p[i]];
        if (cls == BC_SAFE) {
            i++;
            continue;
        }
        if (cls == BC_HIGH) {
            uint32_t cp;
            size_t k = utf8_seq(p + i, len - i, &cp);
            if (k && cp != 0xfffe && cp != 0xffff) {
                i += k;
                continue;
            }
            strbuf_append(sb, s + run, i - run);
            strbuf_append(sb, REPLACEMENT, 3);
            i += k ? k : utf8_invalid_len(p + i, len - i);
            run = i;
            continue;
        }
        strbuf_append(sb, s + run, i - run);
        switch (p[i]) {
        case '&': strbuf_append(sb, "&amp;", 5); break;
        case '<': strbuf_append(sb, "&lt;", 4); break;
        case '>': strbuf_append(sb, "&gt;", 4); break;
        case '"': strbuf_append(sb, "&quot;", 6); break;
        case '\r': strbuf_append(sb, "&#13;", 5); break;
        default: break; /* BC_DROP */
        }
        run = ++i;
    }
    strbuf_append(sb, s + run, len - run);
}

/* Appends @s as a JSON string literal, quotes included (RFC 8259 section 7). */
static void
json_escape(struct strbuf *sb, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t run = 0, i = 0;
    strbuf_putc(sb, '"');
    while (i < len) {
        unsigned char cls = json_class[p[i]];
        if (cls == BC_SAFE) {
            i++;
            continue;
        }
        if (cls == BC_HIGH) {
            uint32_t cp;
            size_t k = utf8_seq(p + i, len - i, &cp);
            if (k) {
                i += k;
                continue;
            }
            strbuf_append(sb, s + run, i - run);
            strbuf_append(sb, REPLACEMENT, 3);
            i += utf8_invalid_len(p + i, len - i);
            run = i;
            continue;
        }
        strbuf_append(sb, s + run, i - run);
        switch (p[i]) {
        case '"': strbuf_append(sb, "\\\"", 2); break;
        case '\\': strbuf_append(sb, "\\\\", 2); break;
        case '\n': strbuf_append(sb, "\\n", 2); break;
        case '\r': strbuf_append(sb, "\\r", 2); break;
        case '\t': strbuf_append(sb, "\\t", 2); break;
        case '\b': strbuf_append(sb, "\\b", 2); break;
        case '\f': strbuf_append(sb, "\\f", 2); break;
        default: {
            char u[6] = {'\\', 'u', '0', '0', hex[p[i] >> 4], hex[p[i] & 15]};
            strbuf_append(sb, u, 6);
        }
        }
        run = ++i;
    }
    strbuf_append(sb, s + run, len - run);
    strbuf_putc(sb, '"');
}

void
wire_xml_escape(struct strbuf *sb, const char *s, size_t len)
{
    xml_escape(sb, s, len);
}

void
wire_json_escape(struct strbuf *sb, const char *s, size_t len)
{
    json_escape(sb, s, len);
}

/* ===================================================================== */
/* Writer                                                                 */
/* ===================================================================== */

void
wire_writer_init(struct wire_writer *w, enum wire_format format, struct strbuf *out)
{
    memset(w, 0, sizeof(*w));
    w->format = format;
    w->out = out;
}

/* Before a scalar or a container at the current depth: false when the writer
 * is past its depth limit (1). JSON: writes the separating comma (3). */
static bool
value_begin(struct wire_writer *w)
{
    if (w->depth > WIRE_MAX_DEPTH || w->depth < 0)
        return false;
    if (w->format == WIRE_JSON) {
        if (w->has_elem[w->depth])
            strbuf_putc(w->out, ',');
        w->has_elem[w->depth] = true;
    }
    return true;
}

/* Appends a short literal; sizeof - 1 is folded at compile time. */
#define PUT_LIT(sb, lit) strbuf_append((sb), (lit), sizeof(lit) - 1)

void
wire_stringn(struct wire_writer *w, const char *s, size_t len)
{
    if (!value_begin(w))
        return;
    if (w->format == WIRE_JSON) {
        json_escape(w->out, s, len);
        return;
    }
    PUT_LIT(w->out, "<value>");
    xml_escape(w->out, s, len);
    PUT_LIT(w->out, "</value>");
}

void
wire_raw_value(struct wire_writer *w, const char *bytes, size_t len)
{
    if (value_begin(w))
        strbuf_append(w->out, bytes, len);
}

void
wire_string(struct wire_writer *w, const char *s)
{
    if (!s)
        s = "";
    wire_stringn(w, s, strlen(s));
}

/* Decimal digits of @i into the end of @buf; returns the start. */
static char *
format_int64(int64_t i, char buf[24])
{
    char *p = buf + 24;
    uint64_t u = i < 0 ? (uint64_t)0 - (uint64_t)i : (uint64_t)i;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (i < 0)
        *--p = '-';
    return p;
}

void
wire_int(struct wire_writer *w, int64_t i)
{
    if (!value_begin(w))
        return;
    char buf[24];
    char *p = format_int64(i, buf);
    if (w->format == WIRE_JSON) {
        strbuf_append(w->out, p, (size_t)(buf + 24 - p));
        return;
    }
    PUT_LIT(w->out, "<value>");
    strbuf_append(w->out, p, (size_t)(buf + 24 - p));
    PUT_LIT(w->out, "</value>");
}

void
wire_int32(struct wire_writer *w, int32_t i)
{
    if (!value_begin(w))
        return;
    char buf[24];
    char *p = format_int64(i, buf);
    if (w->format == WIRE_JSON) {
        strbuf_append(w->out, p, (size_t)(buf + 24 - p));
        return;
    }
    PUT_LIT(w->out, "<value><i4>");
    strbuf_append(w->out, p, (size_t)(buf + 24 - p));
    PUT_LIT(w->out, "</i4></value>");
}

void
wire_double(struct wire_writer *w, double d)
{
    if (!value_begin(w))
        return;
    char buf[40];
    if (!isfinite(d))
        d = 0; /* neither format can carry NaN or infinity */
    if (w->format == WIRE_JSON) {
        /* the shortest of %.15g/%.16g/%.17g that reads back exactly (%.17g
         * always does); a number without '.' or exponent would read back as
         * an integer, so it gets ".0" */
        int n = 0;
        for (int prec = 15; prec <= 17; prec++) {
            n = snprintf(buf, sizeof(buf), "%.*g", prec, d);
            if (prec == 17 || strtod(buf, NULL) == d)
                break;
        }
        strbuf_append(w->out, buf, (size_t)n);
        if (!strpbrk(buf, ".eE"))
            PUT_LIT(w->out, ".0");
        return;
    }
    int n = snprintf(buf, sizeof(buf), "%.16g", d);
    PUT_LIT(w->out, "<value><double>");
    strbuf_append(w->out, buf, (size_t)n);
    PUT_LIT(w->out, "</double></value>");
}

void
wire_bool(struct wire_writer *w, bool b)
{
    if (!value_begin(w))
        return;
    if (w->format == WIRE_JSON) {
        if (b)
            PUT_LIT(w->out, "true");
        else
            PUT_LIT(w->out, "false");
        return;
    }
    if (b)
        PUT_LIT(w->out, "<value><boolean>1</boolean></value>");
    else
        PUT_LIT(w->out, "<value><boolean>0</boolean></value>");
}

/* A datetime's text as it came in (XVAL_DATETIME) or as formatted. */
static void
write_datetime_text(struct wire_writer *w, const char *s, size_t len)
{
    if (w->format == WIRE_JSON) {
        json_escape(w->out, s, len);
        return;
    }
    PUT_LIT(w->out, "<value><dateTime.iso8601>");
    xml_escape(w->out, s, len);
    PUT_LIT(w->out, "</dateTime.iso8601></value>");
}

void
wire_datetime(struct wire_writer *w, time_t t)
{
    if (!value_begin(w))
        return;
    char buf[WIRE_DATETIME_SIZE];
    wire_format_datetime(t, buf);
    write_datetime_text(w, buf, WIRE_DATETIME_SIZE - 1);
}

/* Opens a container: false (and nothing written) past the limit (1). */
static bool
container_begin(struct wire_writer *w)
{
    if (w->depth >= WIRE_MAX_DEPTH) {
        w->depth++;
        w->overflow = true;
        return false;
    }
    if (!value_begin(w))
        return false;
    w->depth++;
    w->has_elem[w->depth] = false;
    return true;
}

/* Closes a container: false when the matching begin wrote nothing (1). */
static bool
container_end(struct wire_writer *w)
{
    if (w->depth <= 0)
        return false; /* unbalanced end: a caller bug; write nothing */
    if (w->depth > WIRE_MAX_DEPTH) {
        w->depth--;
        return false;
    }
    return true;
}

void
wire_begin_array(struct wire_writer *w)
{
    if (!container_begin(w))
        return;
    if (w->format == WIRE_JSON)
        strbuf_putc(w->out, '[');
    else
        PUT_LIT(w->out, "<value><array><data>");
}

void
wire_end_array(struct wire_writer *w)
{
    if (!container_end(w))
        return;
    w->depth--;
    if (w->format == WIRE_JSON)
        strbuf_putc(w->out, ']');
    else
        PUT_LIT(w->out, "</data></array></value>");
}

void
wire_begin_struct(struct wire_writer *w)
{
    if (!container_begin(w))
        return;
    if (w->format == WIRE_JSON)
        strbuf_putc(w->out, '{');
    else
        PUT_LIT(w->out, "<value><struct>");
}

void
wire_membern(struct wire_writer *w, const char *name, size_t len)
{
    if (w->depth > WIRE_MAX_DEPTH || w->depth < 0)
        return;
    bool *open = &w->has_elem[w->depth];
    if (w->format == WIRE_JSON) {
        if (*open)
            strbuf_putc(w->out, ',');
        json_escape(w->out, name, len);
        strbuf_putc(w->out, ':');
        *open = false; /* (3) */
        return;
    }
    if (*open)
        PUT_LIT(w->out, "</member><member><name>");
    else
        PUT_LIT(w->out, "<member><name>");
    xml_escape(w->out, name, len);
    PUT_LIT(w->out, "</name>");
    *open = true; /* (2) */
}

void
wire_member(struct wire_writer *w, const char *name)
{
    if (!name)
        name = "";
    wire_membern(w, name, strlen(name));
}

void
wire_end_struct(struct wire_writer *w)
{
    if (!container_end(w))
        return;
    if (w->format == WIRE_JSON) {
        strbuf_putc(w->out, '}');
    } else if (w->has_elem[w->depth]) {
        PUT_LIT(w->out, "</member></struct></value>");
    } else {
        PUT_LIT(w->out, "</struct></value>");
    }
    w->depth--;
}

void
wire_xval(struct wire_writer *w, const struct xval *v)
{
    if (!v) {
        wire_string(w, "");
        return;
    }
    switch (v->kind) {
    case XVAL_NIL:
        if (!value_begin(w))
            return;
        if (w->format == WIRE_JSON)
            PUT_LIT(w->out, "null");
        else
            PUT_LIT(w->out, "<value><nil/></value>");
        return;
    case XVAL_STRING:
        wire_stringn(w, v->str.s, v->str.len);
        return;
    case XVAL_INT:
        wire_int(w, v->i);
        return;
    case XVAL_DOUBLE:
        wire_double(w, v->d);
        return;
    case XVAL_BOOL:
        wire_bool(w, v->b);
        return;
    case XVAL_DATETIME:
        if (value_begin(w))
            write_datetime_text(w, v->str.s, v->str.len);
        return;
    case XVAL_ARRAY:
        wire_begin_array(w);
        for (size_t i = 0; i < v->arr.n; i++)
            wire_xval(w, v->arr.items[i]);
        wire_end_array(w);
        return;
    case XVAL_STRUCT:
        wire_begin_struct(w);
        for (size_t i = 0; i < v->st.n; i++) {
            wire_member(w, v->st.keys[i]);
            wire_xval(w, v->st.vals[i]);
        }
        wire_end_struct(w);
        return;
    }
}

/* ===================================================================== */
/* Datetimes                                                              */
/* ===================================================================== */

/* Days since 1970-01-01 of a proleptic Gregorian date (m 1-12). */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void
civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static void
put2(char *p, unsigned v)
{
    p[0] = (char)('0' + v / 10 % 10);
    p[1] = (char)('0' + v % 10);
}

void
wire_format_datetime(time_t t, char buf[WIRE_DATETIME_SIZE])
{
    /* Clamp to what four year digits can say: 0000-01-01 .. 9999-12-31. */
    const int64_t min_t = -62167219200LL, max_t = 253402300799LL;
    int64_t s = (int64_t)t;
    if (s < min_t)
        s = min_t;
    if (s > max_t)
        s = max_t;
    int64_t days = s >= 0 ? s / 86400 : -((-s + 86399) / 86400);
    int64_t secs = s - days * 86400;
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    put2(buf, (unsigned)(y / 100));
    put2(buf + 2, (unsigned)(y % 100));
    put2(buf + 4, m);
    put2(buf + 6, d);
    buf[8] = 'T';
    put2(buf + 9, (unsigned)(secs / 3600));
    buf[11] = ':';
    put2(buf + 12, (unsigned)(secs / 60 % 60));
    buf[14] = ':';
    put2(buf + 15, (unsigned)(secs % 60));
    buf[17] = 'Z';
    buf[18] = '\0';
}

/* Reads exactly @n decimal digits at *@p. */
static bool
read_digits(const char **p, int n, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (unsigned)(c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

/* "HH:MM" / "HHMM" / "HH" after a sign; seconds east of UTC. */
static bool
read_offset(const char **p, int *secs)
{
    unsigned hh, mm = 0;
    if (!read_digits(p, 2, &hh))
        return false;
    if (**p == ':') {
        (*p)++;
        if (!read_digits(p, 2, &mm))
            return false;
    } else if (**p >= '0' && **p <= '9' && !read_digits(p, 2, &mm)) {
        return false;
    }
    if (hh > 23 || mm > 59)
        return false;
    *secs = (int)(hh * 3600 + mm * 60);
    return true;
}

static bool
is_leap(unsigned y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int
wire_parse_datetime(const char *s, time_t *out)
{
    static const unsigned mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const char *p = s;
    unsigned y, mo, d, h, mi, sec;
    if (!s || !read_digits(&p, 4, &y))
        return -EINVAL;
    if (*p == '-') {
        p++;
        if (!read_digits(&p, 2, &mo) || *p++ != '-' || !read_digits(&p, 2, &d))
            return -EINVAL;
    } else if (!read_digits(&p, 2, &mo) || !read_digits(&p, 2, &d)) {
        return -EINVAL;
    }
    if (*p != 'T' && *p != 't' && *p != ' ')
        return -EINVAL;
    p++;
    if (!read_digits(&p, 2, &h))
        return -EINVAL;
    if (*p == ':') {
        p++;
        if (!read_digits(&p, 2, &mi) || *p++ != ':' || !read_digits(&p, 2, &sec))
            return -EINVAL;
    } else if (!read_digits(&p, 2, &mi) || !read_digits(&p, 2, &sec)) {
        return -EINVAL;
    }
    if (*p == '.' || *p == ',') { /* fractional seconds: ignored */
        p++;
        if (*p < '0' || *p > '9')
            return -EINVAL;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    int offset = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1;
        if (!read_offset(&p, &offset))
            return -EINVAL;
        offset *= sign;
    }
    if (*p != '\0')
        return -EINVAL;
    if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 60)
        return -EINVAL;
    if (d > mdays[mo - 1] + (mo == 2 && is_leap(y)))
        return -EINVAL;
    int64_t t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset;
    if ((int64_t)(time_t)t != t)
        return -EINVAL; /* only where time_t is 32 bits */
    *out = (time_t)t;
    return 0;
}
