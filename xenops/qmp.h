/* xenops/qmp.h - the QMP wire: line framing, connect, send (with an fd).
 * Internal to xenops/. Not thread-safe per connection: the qemu backend
 * serialises writers and has one reader (the domain's supervisor thread).
 */
#ifndef VESSEL_XENOPS_QMP_H
#define VESSEL_XENOPS_QMP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct qmp_reader {
    char buf[65536];
    size_t len;
};

/* Connects to the unix socket @path, retrying until @deadline_ms
 * (xenops_now_ms clock) while it does not exist or refuses; gives up early
 * when @pidfd (if >= 0) says the process died. A fd or -errno. */
int qmp_connect(const char *path, int pidfd, uint64_t deadline_ms);
/* Reads what is available; then *line is the next complete line (owned by
 * the reader, valid until the next call) or NULL. Returns 1 with a line, 0
 * when more is needed, -EPIPE at EOF, -errno on errors, -EMSGSIZE for a line
 * over 64 KiB. */
int qmp_read_line(struct qmp_reader *r, int fd, char **line);
/* The next line, blocking up to @timeout_ms. 1, or -ETIMEDOUT / as above. */
int qmp_read_line_wait(struct qmp_reader *r, int fd, char **line, unsigned timeout_ms);
/* Writes @cmd as one line; passes @pass_fd with it (SCM_RIGHTS) when >= 0. */
int qmp_send(int fd, json_t *cmd, int pass_fd);
/* Handshake on a fresh connection: greeting, qmp_capabilities, its reply. */
int qmp_handshake(struct qmp_reader *r, int fd, unsigned timeout_ms);

#endif
