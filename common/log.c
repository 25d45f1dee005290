/* common/log.c - formats a whole line into a buffer, then one write(2). */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum log_level log_threshold = LOG_INFO;
static const char *const level_names[] = {"error", "warn", "info", "debug"};

void
log_set_level(enum log_level level)
{
    log_threshold = level;
}

int
log_parse_level(const char *name)
{
    for (int i = 0; i <= LOG_DEBUG; i++)
        if (strcmp(level_names[i], name) == 0)
            return i;
    return -1;
}

static void
log_vwrite(enum log_level level, int err, const char *event, const char *fmt, va_list ap)
{
    if (level > log_threshold)
        return;
    char line[2048];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    size_t off = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%SZ ", &tm);
    off += (size_t)snprintf(line + off, sizeof(line) - off, "%s %s ", level_names[level], event);
    if (off < sizeof(line))
        off += (size_t)vsnprintf(line + off, sizeof(line) - off, fmt, ap);
    if (err && off < sizeof(line))
        off += (size_t)snprintf(line + off, sizeof(line) - off, " err=%s", strerror(err));
    if (off >= sizeof(line) - 1)
        off = sizeof(line) - 2;
    line[off++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, line, off);
    (void)ignored;
}

void
log_write(enum log_level level, const char *event, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level, 0, event, fmt, ap);
    va_end(ap);
}

void
log_write_errno(enum log_level level, int err, const char *event, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level, err, event, fmt, ap);
    va_end(ap);
}

uint64_t
log_clock_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}
