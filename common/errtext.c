/* common/errtext.c - filling a caller's error-text buffer. */
#include "common/errtext.h"

#include <stdio.h>

void
errtext_vset(char *buf, size_t len, const char *fmt, va_list ap)
{
    if (!buf || !len)
        return;
    vsnprintf(buf, len, fmt, ap);
}

void
errtext_set(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    errtext_vset(buf, len, fmt, ap);
    va_end(ap);
}
