/* tools/vhd/main.c - `vhd`: create, inspect, check, snapshot, convert and serve VHD files.
 *
 * The tool is a thin shell over vhd/ and nbd/ (it knows no XenAPI): main() picks the
 * command, each command parses its own options (getopt_long) and maps library -errno to a
 * message and an exit status: 0 success, 1 failure, 2 usage. Facts: shared/spec/storage.md.
 */
#include <stdio.h>
#include <string.h>

#include "tools/vhd/vhd_tool.h"

struct tool_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *usage;
};

static const struct tool_command commands[] = {
    {"create", tool_cmd_create, "create --size SIZE [--type dynamic|fixed] FILE"},
    {"snapshot", tool_cmd_snapshot, "snapshot PARENT CHILD"},
    {"info", tool_cmd_info, "info [--json] FILE"},
    {"check", tool_cmd_check, "check FILE"},
    {"repair", tool_cmd_repair, "repair FILE"},
    {"coalesce", tool_cmd_coalesce, "coalesce CHILD"},
    {"resize", tool_cmd_resize, "resize --size SIZE FILE"},
    {"convert", tool_cmd_convert, "convert --to raw|vhd IN OUT"},
    {"map", tool_cmd_map, "map [--json] FILE"},
    {"serve", tool_cmd_serve,
     "serve --socket PATH [--control PATH] [--read-only] [--threads N] [--user UID[:GID]] FILE"},
};

static void
usage(FILE *out)
{
    fprintf(out, "usage: vhd COMMAND [OPTIONS] ARGS\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  vhd %s\n", commands[i].usage);
    fprintf(out,
            "\nSIZE is bytes or a number with K, M, G or T (binary units), a multiple of 512.\n"
            "vhd check exits 0 only when the file and its parents are sound.\n"
            "Parents of differencing disks are found by file name in the child's directory.\n");
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (!strcmp(argv[1], commands[i].name)) {
            for (int k = 2; k < argc; k++) {
                if (!strcmp(argv[k], "--help") || !strcmp(argv[k], "-h")) {
                    printf("usage: vhd %s\n", commands[i].usage);
                    return 0;
                }
            }
            return commands[i].run(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "vhd: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
