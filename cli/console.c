/* cli/console.c - `xe console`: the VM's text (vt100) console in the terminal.
 *
 * The server tunnels a console on HTTP: "CONNECT /console?ref=<console
 * ref>&session_id=<session>" answered by "HTTP/1.1 200 OK", then raw bytes
 * both ways (api/console.c: the last 64 KiB of output first, then live
 * output; what we send are the guest's keystrokes). The tunnel uses the
 * transport the rest of xe uses (cli/conn.c): the local unix socket, or TCP
 * to -s/-p, in TLS unless --nossl, trusting the certificate as xe's calls do
 * (the fingerprint saved in ~/.vessel/known_hosts, or --insecure).
 *
 * On a terminal, stdin goes raw (every key to the guest, Ctrl-] quits) and is
 * restored on every way out. Without one, stdin is copied to the guest and
 * the guest to stdout; after stdin's EOF the output is drained until the
 * guest has been quiet for a second (a live console never ends by itself).
 */
#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cmds.h"
#include "cli/conn.h"
#include "cli/tunnel.h"
#include "client/xclient.h"
#include "common/fileio.h"
#include "xapi_client.h"

#define CONSOLE_ESCAPE 0x1d /* Ctrl-] */
#define DRAIN_QUIET_MS 1000

/* Sends the CONNECT and reads the reply head; bytes after it go to stdout. */
static bool
tunnel_connect(struct tunnel *t, const char *console, const char *session, struct xerr **errp)
{
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "CONNECT /console?ref=%s&session_id=%s HTTP/1.1\r\nHost: localhost\r\n"
                     "User-Agent: xe-cli/Unix/0.2\r\n\r\n",
                     console, session);
    if (n < 0 || (size_t)n >= sizeof(req) || tunnel_send(t, req, (size_t)n) < 0)
        return xerr_internal(errp, "xe: console: cannot send the request");
    char head[4096];
    size_t len = 0;
    char *end = NULL;
    while (!end) {
        ssize_t r = len + 1 < sizeof(head) ? tunnel_recv(t, head + len, sizeof(head) - 1 - len)
                                           : -1;
        if (r <= 0)
            return xerr_internal(errp, "xe: console: the server closed the connection");
        len += (size_t)r;
        head[len] = '\0';
        end = strstr(head, "\r\n\r\n");
    }
    if (strncmp(head, "HTTP/1.1 200", 12) != 0 && strncmp(head, "HTTP/1.0 200", 12) != 0) {
        head[strcspn(head, "\r\n")] = '\0';
        return xerr_internal(errp, "xe: console: the server refused: %s", head);
    }
    size_t rest = len - (size_t)(end + 4 - head);
    if (rest)
        fwrite(end + 4, 1, rest, stdout);
    fflush(stdout);
    return true;
}

/* ------------------------------------------------------------------ the pump */

/* Copies both ways until Ctrl-] (@tty), the server closes, or (without a
 * tty) stdin ends and the guest is quiet. */
static bool
pump(struct tunnel *t, bool tty, struct xerr **errp)
{
    char buf[16384];
    bool in_open = true;
    for (;;) {
        bool pending = t->tls && gnutls_record_check_pending(t->tls) > 0;
        struct pollfd p[2] = {{t->fd, POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
        int timeout = pending ? 0 : in_open ? -1 : DRAIN_QUIET_MS;
        int rc = poll(p, in_open ? 2 : 1, timeout);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0)
            return xerr_internal(errp, "xe: console: poll: %s", strerror(errno));
        if (rc == 0 && !pending)
            return true; /* drained: quiet since stdin's EOF */
        if (pending || (p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t r = tunnel_recv(t, buf, sizeof(buf));
            if (r <= 0)
                return true; /* the server ended the console */
            if (fileio_write_all(STDOUT_FILENO, buf, (size_t)r) < 0)
                return true;
        }
        if (in_open && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t r = read(STDIN_FILENO, buf, sizeof(buf));
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                in_open = false;
                continue;
            }
            if (tty && memchr(buf, CONSOLE_ESCAPE, (size_t)r))
                return true;
            if (tunnel_send(t, buf, (size_t)r) < 0)
                return true;
        }
    }
}

/* ------------------------------------------------------------------ command */

/* The vt100 console of @vm; none: the VM is not running (consoles come with
 * a domain). */
static bool
text_console(struct cli_ctx *c, const char *vm, char **console, struct xerr **errp)
{
    struct xapi_ref_set cons = {0};
    if (!xc_vm_get_consoles(c->xc, vm, &cons, errp))
        return false;
    bool ok = true;
    *console = NULL;
    for (size_t i = 0; ok && i < cons.n && !*console; i++) {
        enum xapi_console_protocol proto;
        if ((ok = xc_console_get_protocol(c->xc, cons.items[i], &proto, errp)) &&
            proto == XAPI_CONSOLE_PROTOCOL_VT100 && !(*console = strdup(cons.items[i])))
            ok = xerr_nomem(errp);
    }
    xtype_value_clear(&xapi_type_string_set, &cons);
    if (ok && !*console)
        ok = cli_err_syntax(errp, "Error: the VM has no text console (is it running?)");
    return ok;
}

int
cli_cmd_console(struct cli_ctx *c, const struct cli_args *a, struct xerr **errp)
{
    static const char *const skip[] = {NULL};
    static const struct cli_opts local = {0};
    char *vm = NULL, *console = NULL;
    struct tunnel t = {.fd = -1};
    bool tty = isatty(STDIN_FILENO);
    bool ok = cli_select_one_vm(c, a, "vm", skip, CLI_VM_PLAIN, &vm, errp) &&
              text_console(c, vm, &console, errp) &&
              tunnel_open(c->opts ? c->opts : &local, &t, errp) &&
              tunnel_connect(&t, console, xclient_session(c->xc), errp);
    if (ok) {
        struct termios saved, raw;
        bool restore = tty && tcgetattr(STDIN_FILENO, &saved) == 0;
        if (restore) {
            fprintf(stderr, "xe: connected to the console; Ctrl-] quits\r\n");
            raw = saved;
            cfmakeraw(&raw);
            tcsetattr(STDIN_FILENO, TCSANOW, &raw);
        }
        ok = pump(&t, tty, errp);
        if (restore) {
            tcsetattr(STDIN_FILENO, TCSANOW, &saved);
            fprintf(stderr, "\n");
        }
    }
    tunnel_close(&t);
    free(vm);
    free(console);
    return ok ? 0 : 1;
}
