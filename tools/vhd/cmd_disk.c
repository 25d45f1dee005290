/* tools/vhd/cmd_disk.c - `vhd create`, `snapshot`, `resize`, `coalesce`, `check`, `repair`.
 *
 * Commands that change or judge a disk. Each is a few lines over one vhd/ call; `check`
 * and `repair` print the library's report, one problem per line, and exit 0 only when the
 * chain is sound.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "tools/vhd/vhd_tool.h"

static int
usage_error(const char *cmd, const char *msg)
{
    fprintf(stderr, "vhd %s: %s (see vhd %s --help)\n", cmd, msg, cmd);
    return 2;
}

/* Options shared by create and resize: --size and --type. */
static int
parse_size_opts(int argc, char **argv, uint64_t *size, enum vhd_type *type, bool *have_size)
{
    static const struct option opts[] = {
        {"size", required_argument, NULL, 's'},
        {"type", required_argument, NULL, 't'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    *have_size = false;
    while ((ch = getopt_long(argc, argv, "s:t:", opts, NULL)) != -1) {
        switch (ch) {
        case 's':
            if (tool_parse_size(optarg, size) < 0)
                return usage_error(argv[0], "invalid --size (use bytes or 10G/512M/64K)");
            *have_size = true;
            break;
        case 't':
            if (!type)
                return usage_error(argv[0], "--type is not an option of this command");
            if (!strcmp(optarg, "dynamic"))
                *type = VHD_TYPE_DYNAMIC;
            else if (!strcmp(optarg, "fixed"))
                *type = VHD_TYPE_FIXED;
            else
                return usage_error(argv[0], "--type must be dynamic or fixed");
            break;
        default:
            return 2;
        }
    }
    if (!*have_size)
        return usage_error(argv[0], "--size is required");
    if (optind != argc - 1)
        return usage_error(argv[0], "expected exactly one FILE");
    return 0;
}

int
tool_cmd_create(int argc, char **argv)
{
    uint64_t size = 0;
    enum vhd_type type = VHD_TYPE_DYNAMIC;
    bool have;
    int rc = parse_size_opts(argc, argv, &size, &type, &have);
    if (rc)
        return rc;
    rc = vhd_create(argv[optind], size, type);
    if (rc < 0)
        return tool_fail("create", rc, "%s", argv[optind]);
    return 0;
}

int
tool_cmd_resize(int argc, char **argv)
{
    uint64_t size = 0;
    bool have;
    int rc = parse_size_opts(argc, argv, &size, NULL, &have);
    if (rc)
        return rc;
    rc = vhd_resize(argv[optind], size);
    if (rc < 0)
        return tool_fail("resize", rc, "%s", argv[optind]);
    return 0;
}

int
tool_cmd_snapshot(int argc, char **argv)
{
    if (argc != 3)
        return usage_error("snapshot", "expected PARENT CHILD");
    int rc = vhd_snapshot(argv[1], argv[2]);
    if (rc < 0)
        return tool_fail("snapshot", rc, "%s -> %s", argv[1], argv[2]);
    return 0;
}

int
tool_cmd_coalesce(int argc, char **argv)
{
    if (argc != 2)
        return usage_error("coalesce", "expected CHILD");
    int rc = vhd_coalesce(argv[1], tool_progress, "coalesce");
    tool_progress_end();
    if (rc < 0)
        return tool_fail("coalesce", rc, "%s", argv[1]);
    return 0;
}

static void
print_report(const struct vhd_check_report *r)
{
    for (unsigned i = 0; i < r->n_repaired && i < 8; i++)
        printf("repaired: %s\n", r->repaired[i]);
    for (unsigned i = 0; i < r->n_problems && i < VHD_CHECK_MAX_PROBLEMS; i++)
        printf("problem: %s\n", r->problems[i]);
    if (r->n_problems > VHD_CHECK_MAX_PROBLEMS)
        printf("problem: ... and %u more\n", r->n_problems - VHD_CHECK_MAX_PROBLEMS);
}

int
tool_cmd_check(int argc, char **argv)
{
    if (argc != 2)
        return usage_error("check", "expected FILE");
    struct vhd_check_report r;
    int rc = vhd_check(argv[1], &r);
    print_report(&r);
    if (rc == -EINVAL) {
        fprintf(stderr, "vhd check: %s: %u problem(s)\n", argv[1], r.n_problems);
        return 1;
    }
    if (rc < 0)
        return tool_fail("check", rc, "%s", argv[1]);
    printf("%s is valid\n", argv[1]);
    return 0;
}

int
tool_cmd_repair(int argc, char **argv)
{
    if (argc != 2)
        return usage_error("repair", "expected FILE");
    struct vhd_check_report r;
    int rc = vhd_repair(argv[1], &r);
    print_report(&r);
    if (rc == -EINVAL) {
        fprintf(stderr, "vhd repair: %s: %u problem(s) remain\n", argv[1], r.n_problems);
        return 1;
    }
    if (rc < 0)
        return tool_fail("repair", rc, "%s", argv[1]);
    printf("%s is valid%s\n", argv[1], r.n_repaired ? " after repair" : "");
    return 0;
}
