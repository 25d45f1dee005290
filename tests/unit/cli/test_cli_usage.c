/* tests/unit/cli/test_cli_usage.c - every usage error of xe's hand-written
 * commands, with no server.
 *
 * Each case dispatches a command line through cli_dispatch with a client
 * whose unix socket does not exist: a usage error must be found before the
 * first call (the error is xe's own, XE_USAGE or INVALID_VALUE), and a
 * well-formed command must get as far as the transport (INTERNAL_ERROR
 * "xclient: ..."), which proves the check did not refuse it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "client/xclient.h"
#include "model/xmodel.h"

static struct cli_ctx ctx;
static struct xclient *xc;

/* Runs "xe <argv...>" (NULL-terminated) and returns its error, or NULL. */
static struct xerr *
run(const char *first, ...)
{
    char *argv[32];
    int argc = 0;
    va_list ap;
    va_start(ap, first);
    for (const char *s = first; s && argc < 32; s = va_arg(ap, const char *))
        argv[argc++] = (char *)s;
    va_end(ap);
    struct cli_opts o = {0};
    struct cli_args a = {0};
    char why[256];
    assert_int_equal(cli_parse_argv(argc, argv, &o, &a, why, sizeof(why)), 0);
    struct xerr *err = NULL;
    int rc = cli_dispatch(&ctx, &a, &err);
    assert_int_not_equal(rc, 0);
    assert_non_null(err);
    cli_opts_release(&o);
    cli_args_release(&a);
    return err;
}

/* The command fails with the usage message @want. */
#define USAGE(want, ...)                                                                          \
    do {                                                                                          \
        struct xerr *e_ = run(__VA_ARGS__, NULL);                                                 \
        assert_string_equal(e_->code, "XE_USAGE");                                                \
        assert_int_equal(e_->n_params, 1);                                                        \
        assert_string_equal(e_->params[0], want);                                                 \
        xerr_free(e_);                                                                            \
    } while (0)

/* The command fails with the XenAPI error @code raised by xe itself. */
#define CODE(want_code, ...)                                                                      \
    do {                                                                                          \
        struct xerr *e_ = run(__VA_ARGS__, NULL);                                                 \
        assert_string_equal(e_->code, want_code);                                                 \
        xerr_free(e_);                                                                            \
    } while (0)

/* The command passed every check and failed only at the (absent) server. */
#define REACHES_SERVER(...)                                                                       \
    do {                                                                                          \
        struct xerr *e_ = run(__VA_ARGS__, NULL);                                                 \
        assert_string_equal(e_->code, "INTERNAL_ERROR");                                          \
        assert_non_null(strstr(e_->n_params ? e_->params[0] : "", "xclient"));                    \
        xerr_free(e_);                                                                            \
    } while (0)

static void
test_required_from_table(void **state)
{
    (void)state;
    /* Every command with required parameters names the first missing one. */
    for (const struct cli_cmd *cmd = cli_commands; cmd->name; cmd++) {
        if (!*cmd->reqd)
            continue;
        char want[128];
        snprintf(want, sizeof(want), "Required parameter not found: %.*s",
                 (int)strcspn(cmd->reqd, ","), cmd->reqd);
        USAGE(want, cmd->name);
    }
    USAGE("Required parameter not found: name-label", "vdi-create", "sr-uuid=s",
          "virtual-size=1");
    USAGE("Required parameter not found: network-uuid", "vif-create", "vm-uuid=v", "device=0");
    USAGE("Required parameter not found: mode", "pif-reconfigure-ip", "uuid=u");
    USAGE("Required parameter not found: vlan", "vlan-create", "pif-uuid=p", "network-uuid=n");
    /* a flag is not a value */
    USAGE("Required parameter not found: uuid", "vdi-destroy", "--force");
}

static void
test_vm_selectors(void **state)
{
    (void)state;
    static const char *const verbs[] = {"vm-start",   "vm-shutdown", "vm-reboot", "vm-suspend",
                                        "vm-resume",  "vm-pause",    "vm-unpause", "vm-uninstall",
                                        "vm-cd-eject", "vm-vif-list", "console",   NULL};
    for (const char *const *v = verbs; *v; v++) {
        USAGE("Required parameter not found: vm", *v);
        USAGE("Required parameter not found: vm", *v, "--multiple");
        REACHES_SERVER(*v, "vm=web01");
        REACHES_SERVER(*v, "power-state=running", "--multiple"); /* a field filter selects */
    }
    /* the verb's own parameters do not select */
    USAGE("Required parameter not found: vm", "vm-start", "on=h1", "paused=true");
    USAGE("Required parameter not found: vm", "vm-shutdown", "force=true");
    USAGE("Required parameter not found: vm", "vm-snapshot", "new-name-label=s");
    USAGE("Required parameter not found: vm", "vm-disk-add", "disk-size=1GiB", "device=2");
    USAGE("Required parameter not found: vm", "vm-cd-insert", "cd-name=x.iso");
    USAGE("Required parameter not found: vm", "vm-clone", "new-name-label=x");
    USAGE("Required parameter not found: template", "vm-install", "new-name-label=x");
    USAGE("Required parameter not found: new-name-label", "vm-install", "template=t");
    USAGE("Required parameter not found: snapshot-uuid", "snapshot-revert");
    REACHES_SERVER("snapshot-revert", "uuid=u");
    REACHES_SERVER("vm-install", "template-uuid=t", "new-name-label=x");
}

static void
test_force_and_flags(void **state)
{
    (void)state;
    static const char *const verbs[] = {"vm-start", "vm-shutdown", "vm-reboot", "vm-resume",
                                        "vm-reset-powerstate", "vm-uninstall", NULL};
    for (const char *const *v = verbs; *v; v++)
        USAGE("Syntax error: force=maybe is not a boolean (true or false)", *v, "vm=x",
              "force=maybe");
    USAGE("Syntax error: paused=perhaps is not a boolean (true or false)", "vm-start", "vm=x",
          "paused=perhaps");
    USAGE("Syntax error: paused=2 is not a boolean (true or false)", "vm-resume", "vm=x",
          "paused=2");
    USAGE("This operation is extremely dangerous and may cause data loss. This operation must "
          "be forced (use --force).",
          "vm-reset-powerstate", "vm=x");
    REACHES_SERVER("vm-reset-powerstate", "vm=x", "--force");
    REACHES_SERVER("vm-shutdown", "vm=x", "--force");
    REACHES_SERVER("vm-reboot", "vm=x", "force=true");
    REACHES_SERVER("vm-start", "vm=x", "paused=true", "force=false");
    USAGE("Syntax error: force=x is not a boolean (true or false)", "vif-unplug", "uuid=u",
          "force=x");
}

static void
test_sizes_and_values(void **state)
{
    (void)state;
    USAGE("Syntax error: disk-size=big is not a size (bytes, or with a unit: 512MiB, 10GiB)",
          "vm-disk-add", "vm=x", "disk-size=big");
    USAGE("Syntax error: virtual-size=10XB is not a size (bytes, or with a unit: 512MiB, "
          "10GiB)",
          "vdi-create", "sr-uuid=s", "name-label=n", "virtual-size=10XB");
    USAGE("Syntax error: disk-size=-5 is not a size (bytes, or with a unit: 512MiB, 10GiB)",
          "vdi-resize", "uuid=u", "disk-size=-5");
    USAGE("Syntax error: physical-size=lots is not a size (bytes, or with a unit: 512MiB, "
          "10GiB)",
          "sr-create", "name-label=n", "type=file", "physical-size=lots");
    CODE("INVALID_VALUE", "vdi-create", "sr-uuid=s", "name-label=n", "virtual-size=1GiB",
         "type=bogus");
    USAGE("Syntax error: sharable=sure is not a boolean (true or false)", "vdi-create",
          "sr-uuid=s", "name-label=n", "virtual-size=1GiB", "sharable=sure");
    REACHES_SERVER("vdi-create", "sr-uuid=s", "name-label=n", "virtual-size=10GiB", "type=user");
    REACHES_SERVER("vdi-resize", "uuid=u", "disk-size=512MiB");
    /* vbd-create */
    USAGE("Required parameter not found: vdi-uuid", "vbd-create", "vm-uuid=v", "device=0");
    REACHES_SERVER("vbd-create", "vm-uuid=v", "device=3", "type=CD");
    CODE("INVALID_VALUE", "vbd-create", "vm-uuid=v", "device=0", "vdi-uuid=d", "mode=RX");
    CODE("INVALID_VALUE", "vbd-create", "vm-uuid=v", "device=0", "vdi-uuid=d", "type=Tape");
    USAGE("Syntax error: bootable=often is not a boolean (true or false)", "vbd-create",
          "vm-uuid=v", "device=0", "vdi-uuid=d", "bootable=often");
    REACHES_SERVER("vbd-create", "vm-uuid=v", "device=0", "vdi-uuid=d", "mode=ro",
                   "bootable=true");
    /* sr-create */
    USAGE("Syntax error: shared=maybe is not a boolean (true or false)", "sr-create",
          "name-label=n", "type=file", "shared=maybe");
    REACHES_SERVER("sr-create", "name-label=n", "type=file", "device-config:path=/tmp/x");
}

static void
test_network_values(void **state)
{
    (void)state;
    USAGE("Syntax error: MTU=9 is not a number from 68 to 65535", "network-create",
          "name-label=n", "MTU=9");
    USAGE("Syntax error: MTU=abc is not a number from 68 to 65535", "vif-create", "vm-uuid=v",
          "network-uuid=n", "device=0", "MTU=abc");
    REACHES_SERVER("network-create", "name-label=n", "MTU=9000", "bridge=xbr0");
    CODE("INVALID_VALUE", "pif-reconfigure-ip", "uuid=u", "mode=bogus");
    USAGE("Required parameter not found: IP", "pif-reconfigure-ip", "uuid=u", "mode=static");
    USAGE("Required parameter not found: netmask", "pif-reconfigure-ip", "uuid=u",
          "mode=static", "IP=10.0.0.2");
    REACHES_SERVER("pif-reconfigure-ip", "uuid=u", "mode=dhcp");
    USAGE("Syntax error: vlan=5000 is not a VLAN tag (0 to 4094)", "vlan-create", "pif-uuid=p",
          "network-uuid=n", "vlan=5000");
    USAGE("Syntax error: vlan=x is not a VLAN tag (0 to 4094)", "vlan-create", "pif-uuid=p",
          "network-uuid=n", "vlan=x");
    REACHES_SERVER("vlan-create", "pif-uuid=p", "network-uuid=n", "vlan=42");
}

static void
test_help_knows_every_command(void **state)
{
    (void)state;
    for (const struct cli_cmd *cmd = cli_commands; cmd->name; cmd++) {
        assert_true(cli_command_exists(cmd->name));
        assert_non_null(cmd->help);
        assert_true(strlen(cmd->help) > 10);
    }
    static const char *const added[] = {
        "vm-start",    "vm-shutdown", "vm-reboot",      "vm-suspend",     "vm-resume",
        "vm-pause",    "vm-unpause",  "vm-reset-powerstate", "vm-snapshot", "snapshot-revert",
        "vm-disk-add", "vm-cd-insert", "vm-cd-eject",   "vm-vif-list",    "vdi-create",
        "vdi-destroy", "vdi-snapshot", "vdi-clone",     "vdi-copy",       "vdi-resize",
        "vbd-create",  "vbd-plug",    "vbd-unplug",     "vbd-destroy",    "sr-create",
        "sr-scan",     "sr-destroy",  "sr-forget",      "pbd-plug",       "pbd-unplug",
        "network-create", "network-destroy", "vif-create", "vif-plug",    "vif-unplug",
        "vif-destroy", "pif-scan",    "pif-reconfigure-ip", "vlan-create", "host-cpu-info",
        "host-get-vms-which-prevent-evacuation", "task-list", "task-cancel", "console", NULL};
    for (const char *const *n = added; *n; n++)
        assert_true(cli_command_exists(*n));
}

int
main(void)
{
    if (xmodel_init() < 0)
        return 1;
    struct xclient_config cfg = {.transport = XCLIENT_UNIX,
                                 .unix_path = "/nonexistent/vessel-xe-test.sock"};
    if (xclient_new(&cfg, &xc) < 0)
        return 1;
    cli_ctx_init(&ctx, xc);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_required_from_table),
        cmocka_unit_test(test_vm_selectors),
        cmocka_unit_test(test_force_and_flags),
        cmocka_unit_test(test_sizes_and_values),
        cmocka_unit_test(test_network_values),
        cmocka_unit_test(test_help_knows_every_command),
    };
    int rc = cmocka_run_group_tests_name("cli-usage", tests, NULL, NULL);
    cli_ctx_release(&ctx);
    xclient_free(xc);
    return rc;
}
