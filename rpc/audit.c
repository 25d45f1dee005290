/* rpc/audit.c - appending to and rotating the audit log.
 *
 * Lines are formatted outside the lock and written with one write() under it,
 * so rotation and writers never interleave. No fsync per line: the audit log
 * is a record for people, not a journal the daemon replays, and a call's
 * latency must not carry a disk flush.
 */
#include "rpc/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

struct audit {
    pthread_mutex_t mu;
    char *path;
    int fd;
    size_t size;
    size_t max_bytes;
    bool warned;
};

static int
open_log(struct audit *a)
{
    a->fd = open(a->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (a->fd < 0)
        return -errno;
    struct stat st;
    a->size = fstat(a->fd, &st) == 0 ? (size_t)st.st_size : 0;
    return 0;
}

int
audit_open(const char *path, size_t max_bytes, struct audit **out)
{
    struct audit *a = calloc(1, sizeof(*a));
    if (!a || !(a->path = strdup(path))) {
        free(a);
        return -ENOMEM;
    }
    a->max_bytes = max_bytes;
    pthread_mutex_init(&a->mu, NULL);
    int rc = open_log(a);
    if (rc < 0) {
        audit_close(a);
        return rc;
    }
    *out = a;
    return 0;
}

void
audit_close(struct audit *a)
{
    if (!a)
        return;
    if (a->fd >= 0)
        close(a->fd);
    pthread_mutex_destroy(&a->mu);
    free(a->path);
    free(a);
}

/* audit.log.N-1 -> audit.log.N ... audit.log -> audit.log.1. Called locked. */
static void
rotate(struct audit *a)
{
    char from[PATH_MAX + 16], to[PATH_MAX + 16];
    const size_t n = sizeof(to);
    for (int i = AUDIT_KEEP_FILES - 1; i >= 1; i--) {
        snprintf(from, n, "%s.%d", a->path, i);
        snprintf(to, n, "%s.%d", a->path, i + 1);
        rename(from, to); /* a missing one is fine */
    }
    snprintf(to, n, "%s.1", a->path);
    close(a->fd);
    a->fd = -1;
    if (rename(a->path, to) != 0)
        log_warn_errno(errno, "audit.rotate", "path=%s", a->path);
    if (open_log(a) < 0)
        log_warn_errno(errno, "audit.open", "path=%s", a->path);
}

void
audit_session_id(const char *ref, char out[14])
{
    unsigned char h[32];
    if (!ref || !*ref) {
        snprintf(out, 14, "-");
        return;
    }
    gnutls_hash_fast(GNUTLS_DIG_SHA256, ref, strlen(ref), h);
    snprintf(out, 14, "#%02x%02x%02x%02x%02x%02x", h[0], h[1], h[2], h[3], h[4], h[5]);
}

/* Values are written bare when safe, else quoted with \" and \\ escaped and
 * control bytes dropped, so one call is always one line. */
static void
put_field(char *buf, size_t cap, size_t *len, const char *key, const char *v)
{
    if (!v || *len >= cap)
        return;
    bool bare = *v != '\0';
    for (const char *p = v; *p && bare; p++)
        bare = *p > ' ' && *p != '"' && *p != '\\' && *p != 0x7f;
    int n = snprintf(buf + *len, cap - *len, " %s=%s", key, bare ? "" : "\"");
    if (n < 0 || (size_t)n >= cap - *len) {
        *len = cap;
        return;
    }
    *len += (size_t)n;
    for (const char *p = v; *p && !bare && *len + 2 < cap; p++) {
        if ((unsigned char)*p < ' ' || *p == 0x7f)
            continue;
        if (*p == '"' || *p == '\\')
            buf[(*len)++] = '\\';
        buf[(*len)++] = *p;
    }
    for (const char *p = v; *p && bare && *len + 1 < cap; p++)
        buf[(*len)++] = *p;
    if (!bare && *len + 1 < cap)
        buf[(*len)++] = '"';
}

void
audit_write(struct audit *a, const struct audit_entry *e)
{
    if (!a)
        return;
    char line[2048], sid[14], ts[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
    audit_session_id(e->session, sid);
    size_t len = (size_t)snprintf(line, sizeof(line), "%s", ts);
    const size_t cap = sizeof(line) - 1; /* room for the newline */
    put_field(line, cap, &len, "user", e->user ? e->user : "");
    put_field(line, cap, &len, "session", sid);
    put_field(line, cap, &len, "peer", e->peer);
    put_field(line, cap, &len, "call", e->call);
    put_field(line, cap, &len, "self", e->self);
    put_field(line, cap, &len, "task", e->task);
    put_field(line, cap, &len, "outcome", e->outcome);
    if (len > cap)
        len = cap;
    line[len++] = '\n';
    pthread_mutex_lock(&a->mu);
    if (a->fd >= 0 && a->size + len > a->max_bytes && a->size > 0)
        rotate(a);
    ssize_t w = a->fd >= 0 ? write(a->fd, line, len) : -1;
    if (w == (ssize_t)len) {
        a->size += len;
    } else if (!a->warned) {
        a->warned = true;
        log_warn_errno(w < 0 ? errno : EIO, "audit.write", "path=%s", a->path);
    }
    pthread_mutex_unlock(&a->mu);
}

static bool
starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool
audit_wants(const struct xmsg *m)
{
    switch (m->kind) {
    case XM_GET_RECORD:
    case XM_GET_FIELD:
    case XM_GET_BY_UUID:
    case XM_GET_BY_NAME_LABEL:
    case XM_GET_ALL:
    case XM_GET_ALL_RECORDS:
    case XM_GET_ALL_WHERE:
    case XM_GET_ALL_RECORDS_WHERE:
    case XM_SPECIAL: /* event.from / event.next */
        return false;
    default:
        break;
    }
    /* Explicit messages that only read, by xapi's naming. */
    static const char *const reads[] = {"get_", "assert_", "compute_", "retrieve_", "list_",
                                        "query_", "probe", "test_"};
    for (size_t i = 0; i < sizeof(reads) / sizeof(reads[0]); i++)
        if (starts_with(m->name, reads[i]))
            return false;
    return !starts_with(m->wire_name, "event.");
}
