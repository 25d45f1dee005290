/* cli/conn.h - connecting xe to a server and logging in (cli/conn.c). */
#ifndef VESSEL_CLI_CONN_H
#define VESSEL_CLI_CONN_H

#include "cli/cli.h"

struct xclient;

/* A client for the server @o names (see conn.c for the defaults); with TLS
 * to a server not yet in ~/.vessel/known_hosts, connects at once and saves
 * its fingerprint. *out is freed with xclient_free (also after a failure,
 * when set). */
bool cli_connect(const struct cli_opts *o, struct xclient **out, struct xerr **errp);
/* session.login_with_password with -u/-pw/-pwf (root and any password on the
 * local socket); the session is set on @xc. */
bool cli_login(struct xclient *xc, const struct cli_opts *o, struct xerr **errp);
/* The unix socket xe uses without -s (conn.c's defaults). */
const char *cli_conn_unix_path(const struct cli_opts *o);
/* The saved TLS fingerprint of "host:port" (~/.vessel/known_hosts), or NULL;
 * freed by the caller. */
char *cli_conn_known_fingerprint(const char *hostport);
/* session.logout, errors ignored. */
void cli_logout(struct xclient *xc);

#endif
