/* http/static_files.h - the web UI's files, served read-only from one directory.
 *
 * Any request thread may call these once the set is open; the set is never
 * changed after static_files_open() and holds no lock.
 */
#ifndef VESSEL_RPC_STATIC_FILES_H
#define VESSEL_RPC_STATIC_FILES_H

#include <stdbool.h>
#include <stddef.h>

#include "http/http.h"

#define STATIC_FILES_MAX_BYTES (32u << 20) /* larger files are refused (500), never streamed */

struct static_files;

/* Opens the directory @dir (resolved with realpath() now; later requests are
 * checked against that resolved root). 0 and *@out, or -ENOENT/-ENOTDIR/-EACCES
 * (@dir unusable) or -ENOMEM. Free with static_files_free(). */
int static_files_open(const char *dir, struct static_files **out);
void static_files_free(struct static_files *sf);
/* The resolved root directory, borrowed from @sf. */
const char *static_files_root(const struct static_files *sf);

/* Answers @req when it is a GET or HEAD for a file of the set ("/" is
 * index.html) and returns true; returns false, without answering, for any
 * other method or for a path with no such file, so the caller's other routes
 * see it. @sf may be NULL (no UI: always false). Every reply carries the UI's
 * security headers (Content-Security-Policy, X-Frame-Options, ...). */
bool static_files_handle(struct static_files *sf, struct http_request *req);

/* ---- Pure helpers, exposed for the unit test ---- */

/* The file under @root that URL path @path names: a new string (free()) in
 * *@out and 0, or -ENOENT (no such regular file, or it resolves outside
 * @root through a symlink), -EINVAL (not absolute, "..", a NUL, a backslash,
 * or an empty segment), -ENOMEM. @root must already be a realpath(). */
int static_files_resolve(const char *root, const char *path, char **out);
/* The Content-Type for a file name, by extension; "application/octet-stream"
 * when unknown. */
const char *static_files_content_type(const char *name);

#endif
