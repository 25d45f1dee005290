/* tools/vhd/util.c - size parsing, error messages, progress bar and JSON strings for `vhd`.
 *
 * The progress bar is drawn only when stderr is a terminal (scripts and tests see clean
 * output) and at most ~10 times a second. Sizes use binary units as the tool's help says.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tools/vhd/vhd_tool.h"

int
tool_parse_size(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-')
        return -EINVAL;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s)
        return errno == ERANGE ? -ERANGE : -EINVAL;
    unsigned shift = 0;
    switch (*end) {
    case '\0': break;
    case 'K': case 'k': shift = 10; break;
    case 'M': case 'm': shift = 20; break;
    case 'G': case 'g': shift = 30; break;
    case 'T': case 't': shift = 40; break;
    default: return -EINVAL;
    }
    if (*end && end[1] != '\0' && strcmp(end + 1, "iB") != 0 && strcmp(end + 1, "B") != 0)
        return -EINVAL;
    if (shift && v > (UINT64_MAX >> shift))
        return -ERANGE;
    *out = (uint64_t)v << shift;
    return 0;
}

int
tool_fail(const char *cmd, int rc, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "vhd %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    const char *why = vhd_last_error();
    if (why && *why)
        fprintf(stderr, ": %s\n", why);
    else
        fprintf(stderr, ": %s\n", strerror(rc < 0 ? -rc : rc));
    return 1;
}

static bool progress_drawn;

void
tool_progress(void *opaque, uint64_t done, uint64_t total)
{
    static struct timespec last;
    if (!isatty(STDERR_FILENO) || total == 0)
        return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long ms = (now.tv_sec - last.tv_sec) * 1000 + (now.tv_nsec - last.tv_nsec) / 1000000;
    if (ms < 100 && done < total)
        return;
    last = now;
    unsigned pct = (unsigned)(done * 100 / total);
    char bar[41];
    memset(bar, '#', pct * 40 / 100);
    memset(bar + pct * 40 / 100, '.', 40 - pct * 40 / 100);
    bar[40] = '\0';
    fprintf(stderr, "\r%s [%s] %3u%%", opaque ? (const char *)opaque : "", bar, pct);
    progress_drawn = true;
}

void
tool_progress_end(void)
{
    if (progress_drawn)
        fputc('\n', stderr);
    progress_drawn = false;
}

void
tool_json_string(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}
