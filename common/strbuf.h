/* common/strbuf.h - a growable byte buffer for building replies and queries.
 *
 * Appends never fail silently: on allocation failure the buffer remembers it
 * (oom = true), later appends are no-ops, and the one check at the end
 * (strbuf_ok) tells the caller. This keeps encoders free of per-append checks.
 * The content is always NUL-terminated (when len > 0 or after strbuf_init).
 */
#ifndef VESSEL_COMMON_STRBUF_H
#define VESSEL_COMMON_STRBUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct strbuf {
    char *buf;
    size_t len;
    size_t cap;
    bool oom;
};

#define STRBUF_INIT {NULL, 0, 0, false}

void strbuf_init(struct strbuf *sb);
/* The slow path of strbuf_append: grows the buffer first. */
void strbuf_append_grow(struct strbuf *sb, const char *data, size_t len);
/* Makes room for @extra more bytes at once (e.g. before a known large reply). */
void strbuf_reserve_more(struct strbuf *sb, size_t extra);

/* Inline: encoders call it for every tag and value; when the bytes fit (the
 * common case) it is a memcpy. */
static inline void
strbuf_append(struct strbuf *sb, const char *data, size_t len)
{
    /* len <= PTRDIFF_MAX also tells the compiler the memcpy is bounded */
    if (!sb->oom && len <= PTRDIFF_MAX && len < sb->cap - sb->len) {
        if (len) /* memcpy(p, NULL, 0) is undefined */
            memcpy(sb->buf + sb->len, data, len);
        sb->len += len;
        sb->buf[sb->len] = '\0';
        return;
    }
    strbuf_append_grow(sb, data, len);
}
void strbuf_puts(struct strbuf *sb, const char *s);
void strbuf_putc(struct strbuf *sb, char c);
__attribute__((format(printf, 2, 3))) void strbuf_printf(struct strbuf *sb, const char *fmt, ...);
void strbuf_vprintf(struct strbuf *sb, const char *fmt, va_list ap);
void strbuf_reset(struct strbuf *sb); /* len = 0, keeps the memory */
bool strbuf_ok(const struct strbuf *sb);
/* Hands the buffer to the caller (free() it); the strbuf is empty afterwards.
 * Returns NULL when an append had failed. Never returns NULL for an empty,
 * healthy buffer: it returns "" then. */
char *strbuf_steal(struct strbuf *sb, size_t *len_out);
void strbuf_release(struct strbuf *sb);

#endif
