/* cli/main.c - xe: the command-line client of the XenAPI.
 *
 * Options come from the command line, then $XE_EXTRA_ARGS, then ~/.xe
 * (earlier wins; shared/spec/xenapi.md 8). A command is recognised before
 * connecting, so usage errors need no server; help needs none at all. Exit
 * status: 0 success, 1 any failure (the error printed on stderr in xe's form).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/conn.h"
#include "client/xclient.h"
#include "common/fileio.h"
#include "model/xmodel.h"

/* ~/.xe holds a few options; anything bigger is not one. */
#define XE_RC_MAX_BYTES (1u << 20)

/* Command line > XE_EXTRA_ARGS > ~/.xe. */
static int
gather_options(int argc, char **argv, struct cli_opts *opts, struct cli_args *args)
{
    char why[256] = "";
    if (cli_parse_argv(argc - 1, argv + 1, opts, args, why, sizeof(why)) < 0) {
        fprintf(stderr, "Syntax error: %s\n", why[0] ? why : "out of memory");
        return -1;
    }
    const char *extra = getenv("XE_EXTRA_ARGS");
    if (extra && *extra) {
        struct cli_opts env = {0};
        if (cli_parse_extra_args(extra, &env, why, sizeof(why)) < 0) {
            fprintf(stderr, "Syntax error: %s\n", why);
            cli_opts_release(&env);
            return -1;
        }
        cli_opts_merge(opts, &env);
        cli_opts_release(&env);
    }
    const char *home = getenv("HOME");
    char *path = NULL;
    if (home && asprintf(&path, "%s/.xe", home) >= 0) {
        char *text = NULL;
        fileio_read_all(path, XE_RC_MAX_BYTES, &text, NULL); /* none: no ~/.xe */
        struct cli_opts rc = {0};
        if (text && cli_parse_rc(text, &rc, why, sizeof(why)) < 0)
            fprintf(stderr, "xe: ignoring %s: %s\n", path, why);
        else
            cli_opts_merge(opts, &rc);
        cli_opts_release(&rc);
        free(text);
        free(path);
    }
    return 0;
}

int
main(int argc, char **argv)
{
    struct cli_opts opts = {0};
    struct cli_args args = {0};
    struct xerr *err = NULL;
    int status = 1;
    if (xmodel_init() < 0) {
        fprintf(stderr, "xe: out of memory\n");
        return 1;
    }
    if (gather_options(argc, argv, &opts, &args) < 0)
        goto out;
    if (!args.command) {
        cli_help(stdout, &args, &err);
        goto out;
    }
    if (strcmp(args.command, "help") == 0) {
        status = cli_help(stdout, &args, &err);
        goto out;
    }
    if (!cli_command_exists(args.command)) {
        fprintf(stderr, "Unknown command: %s\nFor usage run: 'xe help'\n", args.command);
        goto out;
    }
    struct xclient *xc = NULL;
    if (cli_connect(&opts, &xc, &err) && cli_login(xc, &opts, &err)) {
        struct cli_ctx ctx;
        cli_ctx_init(&ctx, xc);
        ctx.debug = opts.debug;
        ctx.opts = &opts;
        ctx.progress_tty = isatty(STDERR_FILENO);
        status = cli_dispatch(&ctx, &args, &err);
        cli_ctx_release(&ctx);
        cli_logout(xc);
    }
    xclient_free(xc);
out:
    if (err) {
        cli_print_error(NULL, err);
        status = status ? status : 1;
        xerr_free(err);
    }
    fflush(stdout);
    cli_opts_release(&opts);
    cli_args_release(&args);
    return status;
}
