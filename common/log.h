/* common/log.h - one logger: levels, an event name, key=value fields.
 *
 * A line: "2026-11-24T11:02:03Z info vm.start vm=6c1e domid=3". The level
 * is checked before formatting; lines go to stderr (systemd's journal or the
 * terminal under make run) in one write, so threads never interleave a line.
 * Never log passwords or whole session refs.
 */
#ifndef VESSEL_COMMON_LOG_H
#define VESSEL_COMMON_LOG_H

#include <stdint.h>

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

void log_set_level(enum log_level level);
int log_parse_level(const char *name); /* level or -1 */
__attribute__((format(printf, 3, 4))) void log_write(enum log_level level, const char *event,
                                                     const char *fmt, ...);
/* Appends err=<strerror(err)>. */
__attribute__((format(printf, 4, 5))) void log_write_errno(enum log_level level, int err,
                                                           const char *event, const char *fmt, ...);
extern enum log_level log_threshold;

/* CLOCK_MONOTONIC in microseconds: the durations of the debug lines that time
 * an operation's steps (vm.start_steps, xenops.start_steps). */
uint64_t log_clock_us(void);

#define log_error(ev, ...) log_write(LOG_ERROR, (ev), __VA_ARGS__)
#define log_warn(ev, ...) log_write(LOG_WARN, (ev), __VA_ARGS__)
#define log_info(ev, ...)                                                                          \
    do {                                                                                           \
        if (log_threshold >= LOG_INFO)                                                             \
            log_write(LOG_INFO, (ev), __VA_ARGS__);                                                \
    } while (0)
#define log_debug(ev, ...)                                                                         \
    do {                                                                                           \
        if (log_threshold >= LOG_DEBUG)                                                            \
            log_write(LOG_DEBUG, (ev), __VA_ARGS__);                                               \
    } while (0)
#define log_warn_errno(err, ev, ...) log_write_errno(LOG_WARN, (err), (ev), __VA_ARGS__)

#endif
