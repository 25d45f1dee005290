/* storage/serve_ctl.h - the client side of `vhd serve --control`.
 *
 * A disk server runs sandboxed and cannot open files, so when its VDI's
 * chain changes under it (a live snapshot, the collector) it is paused, and
 * then handed the new chain as open descriptors. The protocol is in
 * docs/storage.md; this is the part vesseld speaks. A server stays paused
 * while the connection that paused it is open, and resumes by itself when it
 * closes - so a vesseld that dies mid-step never leaves a guest frozen.
 */
#ifndef VESSEL_STORAGE_SERVE_CTL_H
#define VESSEL_STORAGE_SERVE_CTL_H

#include <stddef.h>

/* Connects to the control socket @path: *@fd (close it to let go). */
int serve_ctl_connect(const char *path, int *fd);

/* Sends @line (without its newline) with @n_fds descriptors attached, and
 * reads the one-line reply into @reply. 0 for "ok ...", -EIO with the reply
 * kept for "error ...", -EPROTO for anything else, -ETIMEDOUT after 60 s. */
int serve_ctl_command(int fd, const char *line, const int *fds, unsigned n_fds, char *reply,
                      size_t len);

#endif
