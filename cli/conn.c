/* cli/conn.c - which server xe talks to, how it trusts it, and the login.
 *
 * Without -s, xe uses the local socket (--unix, $XE_UNIX_SOCKET, ./var/xapi.sock
 * when present, else /var/lib/vessel/xapi.sock), where any password logs in
 * as root. With -s it uses HTTPS on 443 (or -p), or plain HTTP with --nossl.
 * Servers' certificates are usually self-signed, so trust is on first use:
 * the SHA-256 fingerprint seen the first time is saved in
 * ~/.vessel/known_hosts as "host:port fingerprint" and required afterwards;
 * --insecure skips the check (and saves nothing).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/conn.h"
#include "client/xclient.h"
#include "xapi_client.h"
#include "xapi_errors.h"

#define DEFAULT_UNIX_LOCAL "./var/xapi.sock"
#define DEFAULT_UNIX_SYSTEM "/var/lib/vessel/xapi.sock"

static char *
known_hosts_path(void)
{
    const char *home = getenv("HOME");
    char *p = NULL;
    if (!home || !*home || asprintf(&p, "%s/.vessel/known_hosts", home) < 0)
        return NULL;
    return p;
}

/* The saved fingerprint of "host:port", or NULL. */
char *
cli_conn_known_fingerprint(const char *hostport)
{
    char *path = known_hosts_path();
    FILE *f = path ? fopen(path, "r") : NULL;
    free(path);
    if (!f)
        return NULL;
    char line[512], *found = NULL;
    size_t hl = strlen(hostport);
    while (!found && fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (strncmp(line, hostport, hl) == 0 && line[hl] == ' ')
            found = strdup(line + hl + 1);
    }
    fclose(f);
    return found;
}

static void
save_fingerprint(const char *hostport, const char *fp)
{
    const char *home = getenv("HOME");
    char *dir = NULL, *path = known_hosts_path();
    if (!path || !home || asprintf(&dir, "%s/.vessel", home) < 0) {
        free(path);
        return;
    }
    mkdir(dir, 0700);
    FILE *f = fopen(path, "a");
    if (f) {
        fprintf(f, "%s %s\n", hostport, fp);
        fclose(f);
        fprintf(stderr, "xe: new server %s: certificate SHA-256 %s saved in %s\n", hostport, fp,
                path);
    }
    free(dir);
    free(path);
}

/* Reads -pwf: "user\npassword", or a lone password line. */
static bool
read_password_file(const char *file, char **user, char **pw, struct xerr **errp)
{
    FILE *f = fopen(file, "r");
    if (!f)
        return xerr_xe_usage(errp, "Cannot read the password file");
    char l1[512] = "", l2[512] = "";
    bool two = fgets(l1, sizeof(l1), f) && fgets(l2, sizeof(l2), f);
    fclose(f);
    l1[strcspn(l1, "\r\n")] = '\0';
    l2[strcspn(l2, "\r\n")] = '\0';
    if (two) {
        free(*user);
        *user = strdup(l1);
        *pw = strdup(l2);
    } else {
        *pw = strdup(l1);
    }
    return *pw ? true : xerr_nomem(errp);
}

const char *
cli_conn_unix_path(const struct cli_opts *o)
{
    if (o->unix_path)
        return o->unix_path;
    const char *env = getenv("XE_UNIX_SOCKET");
    if (env && *env)
        return env;
    if (access(DEFAULT_UNIX_LOCAL, F_OK) == 0)
        return DEFAULT_UNIX_LOCAL;
    return DEFAULT_UNIX_SYSTEM;
}

bool
cli_connect(const struct cli_opts *o, struct xclient **out, struct xerr **errp)
{
    struct xclient_config cfg = {.transport = XCLIENT_UNIX, .timeout_ms = 0};
    char hostport[300] = "";
    char *pin = NULL;
    bool tofu = false;
    if (o->server) {
        cfg.transport = o->nossl ? XCLIENT_TCP : XCLIENT_TLS;
        cfg.host = o->server;
        cfg.port = o->port ? o->port : (o->nossl ? 80 : 443);
        snprintf(hostport, sizeof(hostport), "%s:%d", cfg.host, cfg.port);
        if (!o->nossl && o->insecure) {
            cfg.tls_insecure = true;
        } else if (!o->nossl) {
            pin = cli_conn_known_fingerprint(hostport);
            cfg.tls_fingerprint = pin;
            tofu = !pin;
            cfg.tls_insecure = tofu;
        }
    } else {
        cfg.unix_path = cli_conn_unix_path(o);
    }
    int rc = xclient_new(&cfg, out);
    free(pin);
    if (rc < 0)
        return xerr_internal(errp, "xe: cannot set up the connection: %s", strerror(-rc));
    if (tofu) {
        if (!xclient_connect(*out, errp))
            return false;
        const char *fp = xclient_peer_fingerprint(*out);
        if (fp)
            save_fingerprint(hostport, fp);
    }
    return true;
}

bool
cli_login(struct xclient *xc, const struct cli_opts *o, struct xerr **errp)
{
    char *user = strdup(o->username ? o->username : "root");
    char *pw = NULL;
    bool ok = user != NULL;
    if (!ok)
        return xerr_nomem(errp);
    if (o->password)
        pw = strdup(o->password);
    else if (o->passwordfile)
        ok = read_password_file(o->passwordfile, &user, &pw, errp);
    else if (!o->server)
        pw = strdup(""); /* the local socket takes any password */
    else
        ok = xerr_xe_usage(errp, "Required parameter not found: password (-pw or -pwf)");
    char *session = NULL;
    if (ok && !pw)
        ok = xerr_nomem(errp);
    if (ok)
        ok = xc_session_login_with_password(xc, user, pw, "1.1", "xe", &session, errp);
    if (ok)
        xclient_set_session(xc, session);
    if (pw)
        memset(pw, 0, strlen(pw));
    free(pw);
    free(user);
    free(session);
    return ok;
}

void
cli_logout(struct xclient *xc)
{
    struct xerr *err = NULL;
    if (xclient_session(xc) && !xc_session_logout(xc, &err))
        xerr_free(err);
}
