/* http/static_files.c - the web UI's files, served read-only from one directory.
 *
 * vesseld serves the UI that `vite build` wrote (ui/, see ui/build.sh) on the
 * same listeners as the API, so the page and /jsonrpc share one origin and the
 * Content-Security-Policy can say 'self' for everything.
 *
 * A URL path is checked twice: lexically (absolute, no "." or ".." segment, no
 * empty segment, no backslash or NUL), then the joined path is resolved with
 * realpath() and must lie under the root resolved at open, so a symlink in
 * the directory cannot lead out of it. Only regular files are served; the
 * rest is left to the caller's routes (which answer 404).
 *
 * Caching (RFC 9111, RFC 9110 8.8.3): every reply has a strong ETag made of
 * the file's size, mtime and inode; If-None-Match answers 304. Files under
 * /assets/ carry a content hash in their names (Vite's default), so they are
 * "immutable" for a year; everything else (index.html) is "no-cache", i.e.
 * revalidated each time, so a rebuilt UI is picked up at the next load.
 *
 * Security headers on every reply: a CSP allowing this origin only (no inline
 * script, no eval, no third-party origin, no framing; UI_CSP says why inline
 * styles are allowed), X-Frame-Options DENY for browsers without
 * frame-ancestors, nosniff, and no Referer (the console's URL carries a
 * session id). The files hold no secret, so shared caches may keep them.
 */
#include "http/static_files.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

struct static_files {
    char *root; /* realpath() of the directory */
};

/* 'self' also allows ws:/wss: to this host (CSP Level 3, "self" source
 * matching), which the consoles need. img-src data: is for canvas-made
 * images (noVNC's cursor). style-src allows inline styles because xterm.js
 * writes its cell metrics and theme into <style> elements it makes at run
 * time; script stays 'self' only, and injected CSS cannot reach another
 * origin (img-src, font-src and connect-src are 'self'), which is what CSS
 * exfiltration would need. */
#define UI_CSP                                                                                    \
    "Content-Security-Policy: default-src 'self'; script-src 'self'; connect-src 'self'; "       \
    "img-src 'self' data:; style-src 'self' 'unsafe-inline'; font-src 'self'; "                  \
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

int
static_files_open(const char *dir, struct static_files **out)
{
    char *root = realpath(dir, NULL);
    if (!root)
        return -errno;
    struct stat st;
    if (stat(root, &st) < 0 || !S_ISDIR(st.st_mode)) {
        free(root);
        return -ENOTDIR;
    }
    struct static_files *sf = calloc(1, sizeof(*sf));
    if (!sf) {
        free(root);
        return -ENOMEM;
    }
    sf->root = root;
    *out = sf;
    return 0;
}

void
static_files_free(struct static_files *sf)
{
    if (!sf)
        return;
    free(sf->root);
    free(sf);
}

const char *
static_files_root(const struct static_files *sf)
{
    return sf->root;
}

/* Lexical check of a URL path: what a browser sends for a file we wrote. */
static bool
path_is_plain(const char *path)
{
    if (path[0] != '/')
        return false;
    if (strchr(path, '\\'))
        return false;
    const char *seg = path + 1;
    for (;;) {
        const char *end = strchr(seg, '/');
        size_t n = end ? (size_t)(end - seg) : strlen(seg);
        if (end && n == 0)
            return false; /* "//" */
        if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return false;
        if (!end)
            return true;
        seg = end + 1;
    }
}

int
static_files_resolve(const char *root, const char *path, char **out)
{
    if (!path_is_plain(path))
        return -EINVAL;
    if (strcmp(path, "/") == 0)
        path = "/index.html";
    size_t root_len = strlen(root);
    if (root_len + strlen(path) + 1 > PATH_MAX)
        return -ENOENT;
    char *joined = NULL;
    if (asprintf(&joined, "%s%s", root, path) < 0)
        return -ENOMEM;
    char *real = realpath(joined, NULL);
    int err = errno;
    free(joined);
    if (!real)
        return err == ENOMEM ? -ENOMEM : -ENOENT;
    /* Under the root: "<root>/..." (the root itself is a directory, refused below). */
    bool inside = strncmp(real, root, root_len) == 0 &&
                  (real[root_len] == '/' || (root_len == 1 && root[0] == '/'));
    struct stat st;
    if (!inside || stat(real, &st) < 0 || !S_ISREG(st.st_mode)) {
        free(real);
        return -ENOENT;
    }
    *out = real;
    return 0;
}

const char *
static_files_content_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},
        {".map", "application/json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".woff2", "font/woff2"},
        {".woff", "font/woff"},
        {".txt", "text/plain; charset=utf-8"},
        {".wasm", "application/wasm"},
    };
    const char *dot = strrchr(name, '.');
    const char *slash = strrchr(name, '/');
    if (dot && (!slash || dot > slash)) {
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
            if (strcasecmp(dot, types[i].ext) == 0)
                return types[i].type;
        }
    }
    return "application/octet-stream";
}

/* Whether If-None-Match (a list of entity tags, or "*") names @etag; weak
 * comparison, as RFC 9110 13.1.2 asks for this header. */
static bool
etag_matches(const char *header, const char *etag)
{
    if (!header)
        return false;
    const char *p = header;
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        if (*p == '*')
            return true;
        if (p[0] == 'W' && p[1] == '/')
            p += 2;
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n && n == strlen(etag) && memcmp(p, etag, n) == 0)
            return true;
        if (!end)
            break;
        p = end + 1;
    }
    return false;
}

static char *
read_whole(const char *path, size_t *len_out, int *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        *err = errno;
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > STATIC_FILES_MAX_BYTES) {
        *err = EFBIG;
        close(fd);
        return NULL;
    }
    size_t want = (size_t)st.st_size, have = 0;
    char *buf = malloc(want + 1);
    if (!buf) {
        *err = ENOMEM;
        close(fd);
        return NULL;
    }
    while (have < want) {
        ssize_t n = read(fd, buf + have, want - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* shrank while we read: serve what is there */
        have += (size_t)n;
    }
    close(fd);
    *len_out = have;
    return buf;
}

bool
static_files_handle(struct static_files *sf, struct http_request *req)
{
    if (!sf)
        return false;
    const char *method = http_request_method(req);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return false;
    const char *path = http_request_path(req);
    char *file = NULL;
    if (static_files_resolve(sf->root, path, &file) < 0)
        return false;

    struct stat st;
    if (stat(file, &st) < 0) {
        free(file);
        return false;
    }
    char etag[96];
    snprintf(etag, sizeof(etag), "\"%llx-%llx-%llx\"", (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtim.tv_sec * 1000000000ull + (unsigned long long)st.st_mtim.tv_nsec,
             (unsigned long long)st.st_ino);
    char etag_header[128];
    snprintf(etag_header, sizeof(etag_header), "ETag: %s", etag);
    bool hashed = strncmp(path, "/assets/", 8) == 0;
    const char *headers[] = {
        UI_CSP,
        "X-Frame-Options: DENY",
        "X-Content-Type-Options: nosniff",
        "Referrer-Policy: no-referrer",
        "Cross-Origin-Opener-Policy: same-origin",
        hashed ? "Cache-Control: public, max-age=31536000, immutable" : "Cache-Control: no-cache",
        etag_header,
    };
    size_t n_headers = sizeof(headers) / sizeof(headers[0]);
    const char *type = static_files_content_type(file);

    if (etag_matches(http_request_header(req, "If-None-Match"), etag)) {
        free(file);
        http_reply_with_headers(req, 304, NULL, headers, n_headers, "", 0);
        return true;
    }
    size_t len = 0;
    int err = 0;
    char *body = read_whole(file, &len, &err);
    free(file);
    if (!body) {
        static const char msg[] = "cannot read this file\n";
        http_reply_with_headers(req, 500, "text/plain; charset=utf-8", headers, n_headers, msg,
                                sizeof(msg) - 1);
        return true;
    }
    http_reply_with_headers(req, 200, type, headers, n_headers, body, len);
    free(body);
    return true;
}
