/* common/strbuf.c - growable byte buffer with sticky out-of-memory state.
 *
 * Growth doubles the capacity (amortised O(1) appends). After the first failed
 * allocation every append is a no-op, so encoders check once at the end.
 */
#include "common/strbuf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

void
strbuf_init(struct strbuf *sb)
{
    sb->buf = NULL;
    sb->len = 0;
    sb->cap = 0;
    sb->oom = false;
}

/* Replies of tens of MiB (get_all_records of thousands of VMs) spend more
 * time in page faults than in encoding; backed by transparent huge pages,
 * a 64 MiB buffer takes 32 faults instead of 16,384. Such buffers are
 * allocated 2 MiB-aligned (and still released with free()). */
#define HUGE_BUFFER (8u << 20)
#define HUGE_PAGE (2u << 20)

static char *
huge_alloc(size_t *cap)
{
    size_t rounded = (*cap + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    char *p = aligned_alloc(HUGE_PAGE, rounded);
    if (!p)
        return NULL;
    madvise(p, rounded, MADV_HUGEPAGE); /* advice only: failure is harmless */
    *cap = rounded;
    return p;
}

static bool
strbuf_reserve(struct strbuf *sb, size_t extra)
{
    if (sb->oom)
        return false;
    if (extra > SIZE_MAX - sb->len - 1) {
        sb->oom = true;
        return false;
    }
    size_t need = sb->len + extra + 1;
    if (need <= sb->cap)
        return true;
    size_t cap = sb->cap ? sb->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *grown;
    if (cap >= HUGE_BUFFER) {
        grown = huge_alloc(&cap);
        if (grown && sb->len)
            memcpy(grown, sb->buf, sb->len + 1);
        if (grown)
            free(sb->buf);
    } else {
        grown = realloc(sb->buf, cap);
    }
    if (!grown) {
        sb->oom = true;
        return false;
    }
    sb->buf = grown;
    sb->cap = cap;
    return true;
}

void
strbuf_reserve_more(struct strbuf *sb, size_t extra)
{
    strbuf_reserve(sb, extra);
}

void
strbuf_append_grow(struct strbuf *sb, const char *data, size_t len)
{
    if (!strbuf_reserve(sb, len))
        return;
    if (len)
        memcpy(sb->buf + sb->len, data, len);
    sb->len += len;
    sb->buf[sb->len] = '\0';
}

void
strbuf_puts(struct strbuf *sb, const char *s)
{
    strbuf_append(sb, s, strlen(s));
}

void
strbuf_putc(struct strbuf *sb, char c)
{
    strbuf_append(sb, &c, 1);
}

void
strbuf_vprintf(struct strbuf *sb, const char *fmt, va_list ap)
{
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (n < 0) {
        sb->oom = true;
        return;
    }
    if (!strbuf_reserve(sb, (size_t)n))
        return;
    vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
    sb->len += (size_t)n;
}

void
strbuf_printf(struct strbuf *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    strbuf_vprintf(sb, fmt, ap);
    va_end(ap);
}

void
strbuf_reset(struct strbuf *sb)
{
    sb->len = 0;
    if (sb->buf)
        sb->buf[0] = '\0';
}

bool
strbuf_ok(const struct strbuf *sb)
{
    return !sb->oom;
}

char *
strbuf_steal(struct strbuf *sb, size_t *len_out)
{
    if (sb->oom) {
        strbuf_release(sb);
        return NULL;
    }
    if (!sb->buf && !strbuf_reserve(sb, 0))
        return NULL;
    if (!sb->buf)
        return NULL;
    sb->buf[sb->len] = '\0';
    char *out = sb->buf;
    if (len_out)
        *len_out = sb->len;
    strbuf_init(sb);
    return out;
}

void
strbuf_release(struct strbuf *sb)
{
    free(sb->buf);
    strbuf_init(sb);
}
