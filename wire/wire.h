/* wire/wire.h - streaming value writers: one interface, an XML-RPC and a JSON body.
 *
 * Replies are written straight from typed records into a strbuf, with no
 * intermediate tree: the generated encoders call these functions in order
 * (begin_struct, member, <value>, member, <value>, end_struct ...). The same
 * JSON writer also serialises records for the store (db/), so a record has
 * one encoder for the wire and the disk.
 *
 * Value conventions (xapi's doc/content/xen-api/wire-protocol.md, 1.3):
 *   XML-RPC: strings untyped <value>text</value>, XML-escaped (& < > " and
 *   CR as &#13;), control characters other than TAB/LF/CR dropped, invalid
 *   UTF-8 and U+FFFE/U+FFFF as U+FFFD; int64 untyped (a string);
 *   int32 as <i4> (event.from valid_ref_counts only); double <double>%.16g;
 *   bool <boolean>0|1; datetime <dateTime.iso8601>YYYYMMDDTHH:MM:SSZ.
 *   No whitespace between tags anywhere (a real client breaks on it).
 *   JSON: strings escaped per RFC 8259 (invalid UTF-8 replaced by U+FFFD),
 *   int64 and int32 as integer literals, double as a number (the shortest
 *   %.15g/%.16g/%.17g form that reads back exactly, with ".0" added when it
 *   would look like an integer; never NaN: NaN/inf are written as 0, in XML
 *   too), bool true/false, datetime as a string in the
 *   same YYYYMMDDTHH:MM:SSZ form.
 *
 * A writer is used by one thread at a time. Nesting depth is bounded by
 * WIRE_MAX_DEPTH; deeper begin_* calls set w->overflow and write nothing.
 */
#ifndef VESSEL_WIRE_WIRE_H
#define VESSEL_WIRE_WIRE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "common/strbuf.h"

#define WIRE_MAX_DEPTH 64

enum wire_format { WIRE_XMLRPC, WIRE_JSON };

struct wire_writer {
    enum wire_format format;
    struct strbuf *out;
    int depth;
    bool overflow;
    /* JSON: whether the container at each depth already has an element, so
     * the next one is preceded by a comma. */
    bool has_elem[WIRE_MAX_DEPTH + 1];
};

void wire_writer_init(struct wire_writer *w, enum wire_format format, struct strbuf *out);

void wire_string(struct wire_writer *w, const char *s);   /* NULL is written as "" */
/* As wire_string, with an explicit length (@s need not be NUL-terminated). */
void wire_stringn(struct wire_writer *w, const char *s, size_t len);
void wire_int(struct wire_writer *w, int64_t i);
void wire_int32(struct wire_writer *w, int32_t i);
void wire_double(struct wire_writer *w, double d);
void wire_bool(struct wire_writer *w, bool b);
void wire_datetime(struct wire_writer *w, time_t t);        /* UTC seconds */
void wire_begin_array(struct wire_writer *w);
void wire_end_array(struct wire_writer *w);
void wire_begin_struct(struct wire_writer *w);
/* Inside a struct: the next value written is member @name's. */
void wire_member(struct wire_writer *w, const char *name);
void wire_membern(struct wire_writer *w, const char *name, size_t len);
void wire_end_struct(struct wire_writer *w);
/* Appends @len bytes that a writer of the same format wrote for one whole
 * value, starting at depth 0 (a record encoded earlier: db/enc_cache.h), as
 * the next value here (JSON: with the comma it needs). */
void wire_raw_value(struct wire_writer *w, const char *bytes, size_t len);
/* Writes a decoded value back out (used to echo JSON-RPC ids, and by tests). */
struct xval;
void wire_xval(struct wire_writer *w, const struct xval *v);

/* Formats @t as YYYYMMDDTHH:MM:SSZ (18 characters) and a NUL into @buf, which
 * must hold WIRE_DATETIME_SIZE (19) bytes. Times outside years 0000-9999 are
 * clamped to the nearest end. */
#define WIRE_DATETIME_SIZE 19
void wire_format_datetime(time_t t, char buf[WIRE_DATETIME_SIZE]);
/* Parses the datetime forms clients send: 20261122T15:04:05Z, with or without
 * the Z, RFC 3339 2026-11-22T15:04:05Z / +hh:mm offsets, fractional seconds
 * ignored. Missing zone = UTC. Returns 0 and sets *out, or -EINVAL. */
int wire_parse_datetime(const char *s, time_t *out);

/* The escapers behind the writers, for framing code that writes raw text:
 * XML character data (& < > " escaped, CR as &#13;, other control characters
 * dropped, invalid UTF-8 as U+FFFD) and a quoted JSON string literal. */
void wire_xml_escape(struct strbuf *sb, const char *s, size_t len);
void wire_json_escape(struct strbuf *sb, const char *s, size_t len);

#endif
