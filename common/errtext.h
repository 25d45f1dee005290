/* common/errtext.h - filling a caller's error-text buffer.
 *
 * Parsers and libraries below the XenAPI report why they failed in a
 * caller-supplied `char *why, size_t why_len` (the XenAPI layer turns it into
 * an error's message). This is the one way to fill it.
 */
#ifndef VESSEL_COMMON_ERRTEXT_H
#define VESSEL_COMMON_ERRTEXT_H

#include <stdarg.h>
#include <stddef.h>

/* Formats into @buf of @len bytes, truncating; NULL @buf or zero @len: no-op. */
void errtext_set(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void errtext_vset(char *buf, size_t len, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#endif
