/* tools/vhd/vhd_tool.h - shared pieces of the `vhd` command-line tool.
 *
 * Each command is a function `int tool_cmd_NAME(int argc, char **argv)` returning the
 * process exit status (0 success, 1 failure, 2 usage error); argv[0] is the command name.
 * Commands print their result on stdout and errors on stderr as "vhd NAME: message".
 */
#ifndef VESSEL_TOOLS_VHD_TOOL_H
#define VESSEL_TOOLS_VHD_TOOL_H

#include <stdbool.h>
#include <stdint.h>

#include "vhd/vhd.h"

int tool_cmd_create(int argc, char **argv);
int tool_cmd_snapshot(int argc, char **argv);
int tool_cmd_info(int argc, char **argv);
int tool_cmd_check(int argc, char **argv);
int tool_cmd_repair(int argc, char **argv);
int tool_cmd_coalesce(int argc, char **argv);
int tool_cmd_resize(int argc, char **argv);
int tool_cmd_convert(int argc, char **argv);
int tool_cmd_map(int argc, char **argv);
int tool_cmd_serve(int argc, char **argv);

/* Parse "10G", "512M", "64K", "1T" (binary units) or plain bytes. -EINVAL if malformed,
 * -ERANGE on overflow. */
int tool_parse_size(const char *s, uint64_t *out);

/* Print "vhd CMD: FMT: reason" where reason is vhd_last_error() or strerror(-rc). Returns 1. */
int tool_fail(const char *cmd, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Progress callback for the library: draws a bar on stderr when stderr is a terminal. */
void tool_progress(void *opaque, uint64_t done, uint64_t total);
/* Finish the progress line (if one was drawn). */
void tool_progress_end(void);

/* Write @s as a JSON string literal (quotes included) to stdout. */
void tool_json_string(const char *s);

#endif /* VESSEL_TOOLS_VHD_TOOL_H */
